package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// exporter is a running exporter process.
type exporter struct {
	cmd     *exec.Cmd
	base    string // http://host:port
	hook    string // http://host:port of the notification receiver; empty when off
	logPath string
	done    chan struct{}
	waitErr error // valid once done is closed
}

var exporterSeq atomic.Int32

// startExporter runs the binary on a free loopback port and waits until it
// answers /-/healthy.
func (e *env) startExporter(configPath string) (*exporter, error) {
	return e.startExporterWith(configPath, false)
}

// startExporterWith is startExporter that, with webhooks, also starts the
// notification receiver (--webhook.listen-address) on a port of its own
// and waits until it accepts connections.
func (e *env) startExporterWith(configPath string, webhooks bool) (*exporter, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	extra := strings.Fields(e.exporterArgs)
	args := []string{"--config.file=" + configPath, "--web.listen-address=" + addr}
	hookAddr := ""
	if webhooks {
		if hookAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		args = append(args, "--webhook.listen-address="+hookAddr)
	}
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--log.level") }) {
		args = append(args, "--log.level=warn")
	}
	x := &exporter{
		base:    "http://" + addr,
		logPath: filepath.Join(e.dir, fmt.Sprintf("exporter-%d.log", exporterSeq.Add(1))),
		done:    make(chan struct{}),
	}
	logFile, err := os.Create(x.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy
	x.cmd = exec.Command(e.bin, append(args, extra...)...)
	x.cmd.Stdout, x.cmd.Stderr = logFile, logFile
	if err := x.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { x.waitErr = x.cmd.Wait(); close(x.done) }()

	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if !x.alive() {
			return nil, fmt.Errorf("the exporter exited at start (%v); its log:\n%s", x.waitErr, tail(x.logPath, 30))
		}
		if resp, err := http.Get(x.base + "/-/healthy"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && listening(hookAddr) {
				if hookAddr != "" {
					x.hook = "http://" + hookAddr
				}
				return x, nil
			}
		}
		if time.Now().After(deadline) || e.ctx.Err() != nil {
			_ = x.cmd.Process.Kill()
			<-x.done
			return nil, fmt.Errorf("the exporter did not answer /-/healthy (or accept notifications) within 30s; its log:\n%s", tail(x.logPath, 30))
		}
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// listening reports whether addr accepts connections; true for "".
func listening(addr string) bool {
	if addr == "" {
		return true
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

func (x *exporter) alive() bool {
	select {
	case <-x.done:
		return false
	default:
		return true
	}
}

func (x *exporter) signal(sig os.Signal) { _ = x.cmd.Process.Signal(sig) }

// postReload POSTs /-/reload and returns the status and body.
func (x *exporter) postReload() (int, string, error) {
	resp, err := http.Post(x.base+"/-/reload", "", nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// raceExitCode is the exit status of a program built with -race that
// reported a race (GORACE exitcode, 66 by default).
const raceExitCode = 66

// finish stops the exporter and checks that it was alive, stops cleanly
// and logged no secret, panic or data race. It prints a summary of the log.
func (e *env) finish(x *exporter) {
	switch {
	case !x.alive() && e.ctx.Err() != nil && x.waitErr == nil:
		// Interrupted: the exporter got the terminal's SIGINT as well.
	case !x.alive():
		e.fail("the exporter died during the scenario: %v", x.waitErr)
		last := tail(x.logPath, 40)
		if strings.TrimSpace(last) == "" {
			last = "(empty)"
		}
		fmt.Printf("\n  exporter DIED (%v); last lines of its log:\n%s\n", x.waitErr, indent(last))
	default:
		x.signal(syscall.SIGTERM)
		select {
		case <-x.done:
			var exit *exec.ExitError
			switch {
			case e.race && errors.As(x.waitErr, &exit) && exit.ExitCode() == raceExitCode:
				e.fail("the exporter exited %d on SIGTERM: the race detector's status, for the races it reported", raceExitCode)
			case x.waitErr != nil:
				e.fail("the exporter did not shut down cleanly on SIGTERM: %v", x.waitErr)
			}
		case <-time.After(15 * time.Second):
			_ = x.cmd.Process.Kill()
			<-x.done
			e.fail("the exporter did not stop within 15s of SIGTERM")
		}
	}
	ls, err := scanLog(x.logPath)
	if err != nil {
		e.fail("cannot read the exporter log: %v", err)
		return
	}
	for _, l := range ls.leaks {
		e.fail("LEAK: a token in the exporter log: %s", l)
	}
	for _, l := range ls.fatal {
		e.fail("the exporter log reports: %s", l)
	}
	for _, r := range ls.races {
		e.fail("DATA RACE: %s", r.summary())
		fmt.Printf("\n  the exporter's race report:\n%s\n", indent(strings.Join(r.lines, "\n")))
	}
	fmt.Printf("  exporter log: %d lines, %s", ls.lines, sizeOf(ls.bytes))
	for i, m := range ls.top(3) {
		sep := "; "
		if i == 0 {
			sep = "; most frequent: "
		}
		fmt.Printf("%s%dx %q", sep, ls.msgs[m], m)
	}
	fmt.Println()
}

// procStats are readings of /proc/<pid>.
type procStats struct {
	rss, hwm int64         // bytes
	cpu      time.Duration // user + system
	fds      int
	harness  time.Duration // CPU of this process (simulator, scrapers) at the same time
}

// clockTick is the unit of utime and stime in /proc/<pid>/stat
// (sysconf(_SC_CLK_TCK), 100 on Linux).
const clockTick = 10 * time.Millisecond

func (x *exporter) proc() procStats {
	var p procStats
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		p.harness = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	pid := x.cmd.Process.Pid
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for line := range strings.Lines(string(status)) {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				p.rss = kb << 10
			case "VmHWM:":
				p.hwm = kb << 10
			}
		}
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name, which is in parentheses and may
		// hold spaces: utime and stime are fields 14 and 15 of the line.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 {
			f := strings.Fields(string(stat[i+1:]))
			if len(f) > 12 {
				ut, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				p.cpu = time.Duration(ut+st) * clockTick
			}
		}
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		p.fds = len(fds)
	}
	return p
}

// peaks are the largest readings of a sampler.
type peaks struct {
	rss int64
	fds int
}

// sample reads /proc every interval until the returned function is called,
// which returns the peaks.
func sample(x *exporter, every time.Duration) func() peaks {
	stop, done := make(chan struct{}), make(chan peaks)
	go func() {
		var pk peaks
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if x.alive() {
				p := x.proc()
				pk.rss, pk.fds = max(pk.rss, p.rss), max(pk.fds, p.fds)
			}
			select {
			case <-t.C:
			case <-stop:
				done <- pk
				return
			}
		}
	}()
	return func() peaks { close(stop); return <-done }
}

// logSummary is what scanLog found in an exporter log.
type logSummary struct {
	bytes int64
	lines int
	msgs  map[string]int // by logfmt msg
	leaks []string       // lines with a token
	fatal []string       // panics, fatal errors
	races []raceReport   // the first few data races
}

// raceReport is one report of the race detector, from its WARNING line to
// the line of = that ends it.
type raceReport struct{ lines []string }

// maxRaceLines bounds a race report kept; its first frames say where.
const maxRaceLines = 60

// summary names the first frame of each access: "Read at ... by
// goroutine 98: main.run.func1() main.go:96; Previous write ...".
func (r raceReport) summary() string {
	var parts []string
	for i, l := range r.lines {
		t := strings.TrimSpace(l)
		if !strings.Contains(t, " at 0x") && !strings.HasPrefix(t, "Previous ") {
			continue
		}
		access, _, _ := strings.Cut(t, " at 0x")
		if i+2 < len(r.lines) {
			fn := strings.TrimSpace(r.lines[i+1])
			file, _, _ := strings.Cut(strings.TrimSpace(r.lines[i+2]), " +0x")
			access += ": " + fn + " " + filepath.Base(file)
		}
		parts = append(parts, access)
	}
	if len(parts) == 0 {
		return "(no stack)"
	}
	return strings.Join(parts, "; ")
}

var msgRE = regexp.MustCompile(`\bmsg=("(?:[^"\\]|\\.)*"|\S+)`)

func scanLog(path string) (logSummary, error) {
	ls := logSummary{msgs: map[string]int{}}
	f, err := os.Open(path)
	if err != nil {
		return ls, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var race *raceReport // being read
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			ls.bytes += int64(len(line))
			ls.lines++
			line = strings.TrimRight(line, "\n")
			if strings.Contains(line, secretMarker) && len(ls.leaks) < 5 {
				ls.leaks = append(ls.leaks, shorten(line, 300))
			}
			for _, bad := range []string{"panic:", "fatal error:"} {
				if strings.Contains(line, bad) && len(ls.fatal) < 5 {
					ls.fatal = append(ls.fatal, shorten(line, 300))
				}
			}
			switch {
			case strings.Contains(line, "WARNING: DATA RACE"):
				ls.races = append(ls.races, raceReport{})
				race = &ls.races[len(ls.races)-1]
			case race != nil && strings.HasPrefix(line, "=================="):
				race = nil
			case race != nil && len(race.lines) < maxRaceLines:
				race.lines = append(race.lines, line)
			}
			if len(ls.races) > 5 {
				ls.races, race = ls.races[:5], nil
			}
			if m := msgRE.FindStringSubmatch(line); m != nil {
				msg := m[1]
				if unq, err := strconv.Unquote(msg); err == nil {
					msg = unq
				}
				ls.msgs[msg]++
			}
		}
		if errors.Is(err, io.EOF) {
			return ls, nil
		}
		if err != nil {
			return ls, err
		}
	}
}

// top returns the n most frequent messages.
func (ls logSummary) top(n int) []string {
	msgs := slices.Collect(maps.Keys(ls.msgs))
	slices.SortFunc(msgs, func(a, b string) int {
		if c := ls.msgs[b] - ls.msgs[a]; c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return msgs[:min(n, len(msgs))]
}

// tail returns the last n lines of a file, reading at most its last 64 KiB.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 64<<10 {
		_, _ = f.Seek(-64<<10, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func cpus() string { return fmt.Sprintf("%d CPUs", runtime.NumCPU()) }
