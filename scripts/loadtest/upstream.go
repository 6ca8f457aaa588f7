package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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

// webhookToken is a configured instance's webhook_token, which its
// notifications carry.
func webhookToken(i int) string { return secretMarker + "wh-" + strconv.Itoa(i) }

// The partner account: its instances have ids, names and tokens of their
// own, apart from the configured ones, and share the account's
// webhook_token.
const (
	partnerToken      = secretMarker + "partner"
	accountWebhookKey = secretMarker + "wh-account-key-0123456789"
	listedPrefix      = "acct-" // of the names in the listing, before name_prefix
)

func listedID(j int) string    { return strconv.Itoa(1102000000 + j) }
func listedName(j int) string  { return fmt.Sprintf("%s%04d", listedPrefix, j) }
func listedToken(j int) string { return secretMarker + "l" + strconv.Itoa(j) }

// upstream serves the simulator on a loopback port and can be stopped and
// started again on the same port.
type upstream struct {
	sim  *simulator.Simulator
	n    int
	addr string
	srv  *http.Server
	// handler serves in place of sim when set (a wrapper of it).
	handler http.Handler
	// listed is the number of instances of the partner account (see
	// addPartnerAccount), members of its listings or not; 0 without one.
	listed int
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
	var h http.Handler = u.sim
	if u.handler != nil {
		h = u.handler
	}
	u.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
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

// stats are the calls of the configured instances.
func (u *upstream) stats() callStats { return u.statsOf(u.n, instanceID, instanceName) }

// listedStats are the calls of the partner account's instances.
func (u *upstream) listedStats() callStats { return u.statsOf(u.listed, listedID, listedName) }

func (u *upstream) statsOf(n int, id, name func(int) string) callStats {
	var cs callStats
	calls := make([]int64, n)
	for i := range n {
		sp := u.sim.Spacing(simulator.GreenAPI, id(i))
		calls[i] = u.sim.Calls(simulator.GreenAPI, id(i))
		cs.total += calls[i]
		if calls[i] == 0 {
			cs.never = append(cs.never, name(i))
		}
		cs.under += sp.Under
		if sp.Under > 0 {
			cs.violators = append(cs.violators, name(i))
		}
		if sp.Calls >= 2 {
			if cs.instancesWithGaps == 0 || sp.MinGap < cs.minGap {
				cs.minGap = sp.MinGap
			}
			cs.instancesWithGaps++
		}
	}
	slices.Sort(calls)
	if n > 0 {
		cs.min, cs.median, cs.max = calls[0], calls[n/2], calls[n-1]
	}
	return cs
}

// accountStep is how long each listing of the partner account lasts.
const accountStep = 3 * time.Second

// addPartnerAccount serves a GREEN-API partner account (GET
// /partner/getInstances/{partnerToken}) whose listing changes every
// accountStep, cycling through four listings of about n instances, all
// answering getStateInstance as the configured ones do: all n; a quarter
// gone, a tenth expired and a Telegram instance; all back, a tenth
// deleted; another quarter gone and n/4 new ones. No listing loses half of
// the previous one's rows, which the exporter would hold for 15 s.
func (u *upstream) addPartnerAccount(n int, latency time.Duration) {
	u.listed = n + n/4
	for j := range u.listed {
		u.sim.Set(simulator.GreenAPI, listedID(j), listedToken(j), simulator.Behaviour{State: "authorized", Latency: latency})
	}
	members := func(keep func(j int) bool, flag func(m *simulator.Member, j int)) []simulator.Member {
		var ms []simulator.Member
		for j := range u.listed {
			if !keep(j) {
				continue
			}
			m := simulator.Member{ID: listedID(j), Name: listedName(j)}
			if flag != nil {
				flag(&m, j)
			}
			ms = append(ms, m)
		}
		return ms
	}
	all := func(j int) bool { return j < n }
	steps := []simulator.AccountStep{
		{For: accountStep, Latency: latency, Members: members(all, nil)},
		{For: accountStep, Latency: latency, Members: append(members(func(j int) bool { return all(j) && j%4 != 0 },
			func(m *simulator.Member, j int) { m.Expired = j%10 == 5 }),
			simulator.Member{ID: "7103000000", Name: "news", Product: "telegram"})},
		{For: accountStep, Latency: latency, Members: members(all, func(m *simulator.Member, j int) { m.Deleted = j%10 == 3 })},
		{For: accountStep, Latency: latency, Members: members(func(j int) bool { return j >= n || j%4 != 2 }, nil)},
	}
	u.sim.ScheduleAccount(simulator.GreenAPI, partnerToken, steps...)
}

// listingCalls is how many listing requests the partner account received.
func (u *upstream) listingCalls() int64 { return u.sim.ListCalls(simulator.GreenAPI, partnerToken) }

// configSpec describes an exporter configuration of the upstream's
// instances.
type configSpec struct {
	leaveOut func(i int) bool // instances not in the file; nil keeps all
	timeout  time.Duration    // per instance; 0 leaves the default
	invalid  bool             // adds an unknown field to the first instance
	webhooks bool             // gives every instance its webhook_token
	account  *accountConfig   // the partner account's entry; nil for none
}

// accountConfig is the entry of the partner account (see
// addPartnerAccount).
type accountConfig struct {
	name    string   // the account's name: another one is another account, listed anew
	prefix  string   // name_prefix
	include []string // regular expressions of the names watched; none for all
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
		if c.webhooks {
			fmt.Fprintf(w, "    webhook_token: %s\n", webhookToken(i))
		}
		if c.invalid && len(names) == 1 {
			fmt.Fprintln(w, "    colour: blue")
		}
	}
	if a := c.account; a != nil {
		fmt.Fprintf(w, "accounts:\n  - name: %s\n    provider: greenapi\n    api_url: %s\n    partner_token: %s\n    instance_api_url: %s\n",
			a.name, u.url(), partnerToken, u.url())
		fmt.Fprintf(w, "    refresh_interval: 10s\n    name_prefix: %s\n    webhook_key: %s\n", a.prefix, accountWebhookKey)
		if c.timeout > 0 {
			fmt.Fprintf(w, "    timeout: %s\n", c.timeout)
		}
		if len(a.include) > 0 {
			fmt.Fprintln(w, "    include:")
			for _, re := range a.include {
				fmt.Fprintf(w, "      - '%s'\n", re)
			}
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

// listedWebhookToken is the webhookUrlToken of a partner's instance: the
// exporter derives it from the account's webhook_key, as whoever sets the
// instance's webhook does (docs/notifications.md).
func listedWebhookToken(id string) string {
	m := hmac.New(sha256.New, []byte(accountWebhookKey))
	m.Write([]byte("token:" + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
