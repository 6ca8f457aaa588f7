package main

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// secretMarker starts every simulated token; it must never appear in the
// exporter's output or log.
const secretMarker = "tok-"

func instanceID(i int) string    { return strconv.Itoa(1101000000 + i) }
func instanceName(i int) string  { return fmt.Sprintf("inst-%05d", i) }
func instanceToken(i int) string { return secretMarker + strconv.Itoa(i) }

// upstream serves the simulator on a loopback port and can be stopped and
// started again on the same port.
type upstream struct {
	sim  *simulator.Simulator
	n    int
	addr string
	srv  *http.Server
}

// newUpstream serves n authorized GREEN-API instances answering after
// latency. The simulator counts calls less than 1 s apart, GREEN-API's
// limit, in Spacing.Under.
func newUpstream(n int, latency time.Duration) (*upstream, error) {
	sim := simulator.New()
	sim.SetRateLimit(time.Second)
	for i := range n {
		sim.Set(simulator.GreenAPI, instanceID(i), instanceToken(i), simulator.Behaviour{State: "authorized", Latency: latency})
	}
	u := &upstream{sim: sim, n: n, addr: "127.0.0.1:0"}
	return u, u.start()
}

func (u *upstream) url() string { return "http://" + u.addr }

// start listens on the upstream's port (a free one the first time),
// retrying for a few seconds while the port is still taken.
func (u *upstream) start() error {
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if ln, err = net.Listen("tcp", u.addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	u.addr = ln.Addr().String()
	u.srv = &http.Server{Handler: u.sim, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = u.srv.Serve(ln) }()
	return nil
}

// stop closes the listener and every connection, in flight or idle.
func (u *upstream) stop() { _ = u.srv.Close() }

// callStats summarise the calls the simulator received.
type callStats struct {
	total             int64
	min, median, max  int64    // per instance
	never             []string // names of the instances never called
	under             int64    // intervals shorter than 1 s, all instances
	minGap            time.Duration
	instancesWithGaps int      // instances called twice or more
	violators         []string // names of the instances with intervals under 1 s
}

func (u *upstream) stats() callStats {
	var cs callStats
	calls := make([]int64, u.n)
	for i := range u.n {
		sp := u.sim.Spacing(simulator.GreenAPI, instanceID(i))
		calls[i] = u.sim.Calls(simulator.GreenAPI, instanceID(i))
		cs.total += calls[i]
		if calls[i] == 0 {
			cs.never = append(cs.never, instanceName(i))
		}
		cs.under += sp.Under
		if sp.Under > 0 {
			cs.violators = append(cs.violators, instanceName(i))
		}
		if sp.Calls >= 2 {
			if cs.instancesWithGaps == 0 || sp.MinGap < cs.minGap {
				cs.minGap = sp.MinGap
			}
			cs.instancesWithGaps++
		}
	}
	slices.Sort(calls)
	if u.n > 0 {
		cs.min, cs.median, cs.max = calls[0], calls[u.n/2], calls[u.n-1]
	}
	return cs
}

// configSpec describes an exporter configuration of the upstream's
// instances.
type configSpec struct {
	leaveOut func(i int) bool // instances not in the file; nil keeps all
	timeout  time.Duration    // per instance; 0 leaves the default
	invalid  bool             // adds an unknown field to the first instance
}

// writeConfig writes the configuration atomically (rename) and returns the
// names of its instances.
func (u *upstream) writeConfig(path string, c configSpec) (map[string]bool, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriter(f)
	names := map[string]bool{}
	fmt.Fprintln(w, "instances:")
	for i := range u.n {
		if c.leaveOut != nil && c.leaveOut(i) {
			continue
		}
		names[instanceName(i)] = true
		fmt.Fprintf(w, "  - name: %s\n    provider: greenapi\n    api_url: %s\n    id_instance: %s\n    api_token: %s\n",
			instanceName(i), u.url(), instanceID(i), instanceToken(i))
		if c.timeout > 0 {
			fmt.Fprintf(w, "    timeout: %s\n", c.timeout)
		}
		if c.invalid && len(names) == 1 {
			fmt.Fprintln(w, "    colour: blue")
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return names, os.Rename(tmp, path)
}
