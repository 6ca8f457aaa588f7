package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// setup serves n simulated instances and starts an exporter configured with
// all of them.
func (e *env) setup(n int) (*upstream, *exporter, error) {
	u, err := newUpstream(n, e.latency)
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(e.dir, fmt.Sprintf("config-%d.yml", n))
	if _, err := u.writeConfig(path, configSpec{}); err != nil {
		u.stop()
		return nil, nil, err
	}
	x, err := e.startExporter(path)
	if err != nil {
		u.stop()
		return nil, nil, err
	}
	return u, x, nil
}

// running reports whether a loop should go on until end.
func (e *env) running(x *exporter, end time.Time) bool {
	return time.Now().Before(end) && e.ctx.Err() == nil && x.alive()
}

func runConcurrent(e *env) error {
	u, x, err := e.setup(e.instances)
	if err != nil {
		return err
	}
	defer u.stop()
	defer e.finish(x)
	spread := e.timeout
	if e.lockstep {
		spread = 0
	}
	e.header("%d instances answering in %s; %d scrapers in a loop for %s, announced timeout %s; their first scrapes spread over %s",
		e.instances, e.latency, e.scrapers, e.duration, e.timeout, spread)

	before := x.proc()
	stopSampling := sample(x, 500*time.Millisecond)
	stats := newScrapeStats(e.timeout)
	start := time.Now()
	end := start.Add(e.duration)
	var wg sync.WaitGroup
	for i := range e.scrapers {
		wg.Go(func() {
			// Spread out, as independent Prometheus servers are.
			e.sleepUntil(start.Add(spread * time.Duration(i) / time.Duration(e.scrapers)))
			s := newScraper(x, e.timeout)
			for e.running(x, end) {
				r := e.scrape(s)
				stats.add(r)
				if r.overLimit() {
					e.sleepUntil(time.Now().Add(time.Second))
				}
			}
		})
	}
	wg.Wait()
	pk := stopSampling()

	t := newTable()
	stats.rows(t)
	procRows(t, before, x.proc(), pk, stats.maxGoroutines)
	callRows(t, u.stats(), u.n)
	t.flush()
	return nil
}

// flapPhase is a third of the flap scenario.
type flapPhase struct {
	name   string
	wantUp bool // every instance up (else every one down) once it settles
	began  time.Time
	stats  *scrapeStats
	n      int
	// settled is the number of the phase's first scrape in which every
	// instance had the phase's expected state, 0 while none did.
	settled   int
	settledIn time.Duration // from the start of the phase to that scrape
	reasons   map[string]float64
}

func (p *flapPhase) add(r scrapeResult, instances int, began time.Time) {
	p.stats.add(r)
	p.n++
	if r.err != nil {
		return
	}
	p.reasons = r.reasons
	up, down := r.upDown()
	if p.settled == 0 && ((p.wantUp && up == instances) || (!p.wantUp && down == instances)) {
		p.settled, p.settledIn = p.n, began.Sub(p.began)
	}
}

func runFlap(e *env) error {
	u, x, err := e.setup(e.instances)
	if err != nil {
		return err
	}
	defer u.stop()
	defer e.finish(x)
	third := e.duration / 3
	e.header("%d instances answering in %s; a scrape every %s for %s (announced timeout %s); the upstream is stopped from %s to %s",
		e.instances, e.latency, e.interval, e.duration, e.timeout, dur(third), dur(2*third))

	before := x.proc()
	stopSampling := sample(x, 500*time.Millisecond)
	phases := []*flapPhase{
		{name: "before: upstream up", wantUp: true},
		{name: "down: upstream stopped", wantUp: false},
		{name: "after: upstream back", wantUp: true},
	}
	for _, p := range phases {
		p.stats = newScrapeStats(e.timeout)
	}
	s := newScraper(x, e.timeout)
	start := time.Now()
	phases[0].began = start
	cur, extra := 0, 0
	for k := 0; ; k++ {
		at := start.Add(time.Duration(k) * e.interval)
		// Stop or start the upstream at the phase boundaries before at.
		for cur < 2 && !start.Add(time.Duration(cur+1)*third).After(at) {
			if !e.sleepUntil(start.Add(time.Duration(cur+1) * third)) {
				break
			}
			cur++
			if cur == 1 {
				u.stop()
			} else if err := u.start(); err != nil {
				return err
			}
			phases[cur].began = time.Now()
		}
		if at.Sub(start) >= e.duration || !e.sleepUntil(at) || !x.alive() {
			break
		}
		began := time.Now()
		phases[cur].add(e.scrape(s), u.n, began)
	}
	// Not all back within -duration: go on a little to see when they are.
	after := phases[2]
	for ; cur == 2 && after.settled == 0 && extra < 30 && x.alive(); extra++ {
		if !e.sleepUntil(time.Now().Add(max(e.interval, 100*time.Millisecond))) {
			break
		}
		began := time.Now()
		after.add(e.scrape(s), u.n, began)
	}
	pk := stopSampling()

	t := newTable()
	var prev map[string]float64
	for i, p := range phases {
		if p.began.IsZero() {
			t.row("-- "+p.name, "not reached")
			continue
		}
		t.row("-- "+p.name, "from %s", dur(p.began.Sub(start)))
		p.stats.rows(t)
		t.row("errors by reason in the phase", "%s", reasonDelta(p.reasons, prev))
		t.row("errors by reason, total at its end", "%s", reasonDelta(p.reasons, nil))
		want := "all up"
		if !p.wantUp {
			want = "all down"
		}
		switch {
		case p.settled > 0:
			t.row(want, "at scrape %d of the phase, %s after it began", p.settled, dur(p.settledIn))
		case i == 2:
			t.row(want, "NOT within %d scrapes (%d beyond -duration)", p.n, extra)
		default:
			t.row(want, "not within the phase's %d scrapes", p.n)
		}
		if p.reasons != nil {
			prev = p.reasons
		}
	}
	if after.settled > 0 && extra > 0 {
		t.row("note", "recovery needed %d scrapes beyond -duration", extra)
	}
	t.row("-- whole run", "")
	procRows(t, before, x.proc(), pk, -1)
	callRows(t, u.stats(), u.n)
	t.flush()
	return nil
}

// reasonDelta formats the error counters by reason, less prev.
func reasonDelta(now, prev map[string]float64) string {
	if now == nil {
		return "no successful scrape"
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(now)) {
		if d := now[k] - prev[k]; d != 0 {
			out = append(out, fmt.Sprintf("%s=%g", k, d))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, " ")
}

func runSoak(e *env) error {
	u, x, err := e.setup(e.instances)
	if err != nil {
		return err
	}
	defer u.stop()
	defer e.finish(x)
	const every = 10 * time.Second
	e.header("%d instances answering in %s; a scrape every %s (announced timeout %s) for %s; readings every %s",
		e.instances, e.latency, e.interval, e.timeout, e.duration, every)

	type point struct {
		at         time.Duration
		p          procStats
		goroutines float64
	}
	var points []point
	start := time.Now()
	record := func(r scrapeResult) {
		pt := point{time.Since(start), x.proc(), r.goroutines}
		points = append(points, pt)
		fmt.Printf("  %8s  %10s  %10s  %10.0f  %5d  %8.2f\n", dur(pt.at.Round(time.Second)), sizeOf(pt.p.rss), sizeOf(pt.p.hwm), pt.goroutines, pt.p.fds, pt.p.cpu.Seconds())
	}
	fmt.Printf("  %8s  %10s  %10s  %10s  %5s  %8s\n", "elapsed", "RSS", "VmHWM", "goroutines", "fds", "CPU s")

	stats := newScrapeStats(e.timeout)
	s := newScraper(x, e.timeout)
	var last scrapeResult
	next, sampled := start, false
	for k := 0; ; k++ {
		at := start.Add(time.Duration(k) * e.interval)
		if at.Sub(start) >= e.duration || !e.sleepUntil(at) || !x.alive() {
			break
		}
		r := e.scrape(s)
		stats.add(r)
		if r.err == nil {
			last = r
		}
		if sampled = !time.Now().Before(next); sampled {
			record(last)
			next = next.Add(every)
		}
	}
	if x.alive() && !sampled {
		record(last)
	}

	t := newTable()
	if len(points) > 0 {
		first, end := points[0], points[len(points)-1]
		var maxRSS, maxFDs, maxG point
		for _, pt := range points {
			if pt.p.rss > maxRSS.p.rss {
				maxRSS = pt
			}
			if pt.p.fds > maxFDs.p.fds {
				maxFDs = pt
			}
			if pt.goroutines > maxG.goroutines {
				maxG = pt
			}
		}
		t.row("RSS first / last / max", "%s / %s / %s (at %s); last-first %+.1f MiB",
			sizeOf(first.p.rss), sizeOf(end.p.rss), sizeOf(maxRSS.p.rss), dur(maxRSS.at.Round(time.Second)), float64(end.p.rss-first.p.rss)/(1<<20))
		t.row("goroutines first / last / max", "%.0f / %.0f / %.0f (at %s)", first.goroutines, end.goroutines, maxG.goroutines, dur(maxG.at.Round(time.Second)))
		t.row("fds first / last / max", "%d / %d / %d (at %s)", first.p.fds, end.p.fds, maxFDs.p.fds, dur(maxFDs.at.Round(time.Second)))
		t.row("CPU", "%.2f s over %s", end.p.cpu.Seconds(), dur(end.at.Round(time.Second)))
	}
	stats.rows(t)
	callRows(t, u.stats(), u.n)
	t.flush()
	return nil
}

// sizeResult is one size of the sizing scenario.
type sizeResult struct {
	n          int
	limit      time.Duration
	walls      []time.Duration
	ups        []float64
	cpuPerCall time.Duration
	cpuPerScr  time.Duration
	rss, hwm   int64
	heap       float64 // go_memstats_heap_inuse_bytes in the last scrape
	bytes      float64 // of /metrics per instance
	series     float64 // per instance
}

func runSizing(e *env) error {
	var sizes []int
	for f := range strings.SplitSeq(e.sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-sizes: %q is not a positive number", f)
		}
		sizes = append(sizes, n)
	}
	conc := concurrencyOf(e.exporterArgs)
	e.header("sizes %v; latency %s; %d scrapes each, %s apart, announced timeout %s; --api.concurrency %d",
		sizes, e.latency, e.scrapes, e.interval, e.timeout, conc)

	var results []sizeResult
	for _, n := range sizes {
		if e.ctx.Err() != nil {
			break
		}
		r, err := e.size(n, conc)
		if err != nil {
			return err
		}
		results = append(results, r)
	}

	fmt.Println("\n-- summary (limit = latency x ceil(instances / concurrency))")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  instances\tlimit\tscrape wall times\tshare up after each\tCPU/call\tCPU/scrape\tRSS\tVmHWM\theap in use\tbytes/instance\tseries/instance")
	for _, r := range results {
		var walls, ups []string
		for i := range r.walls {
			walls = append(walls, dur(r.walls[i]))
			ups = append(ups, pct(r.ups[i]))
		}
		fmt.Fprintf(w, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.1f\n", r.n, dur(r.limit), strings.Join(walls, " "), strings.Join(ups, " "),
			dur(r.cpuPerCall), dur(r.cpuPerScr), sizeOf(r.rss), sizeOf(r.hwm), sizeOf(int64(r.heap)), r.bytes, r.series)
	}
	return w.Flush()
}

// size measures one instance count with a fresh exporter.
func (e *env) size(n, conc int) (sizeResult, error) {
	r := sizeResult{n: n, limit: e.latency * time.Duration((n+conc-1)/conc)}
	u, x, err := e.setup(n)
	if err != nil {
		return r, err
	}
	defer u.stop()
	defer e.finish(x)
	fmt.Printf("\n-- %d instances: limit %s\n", n, dur(r.limit))

	before, calls := x.proc(), u.stats().total
	s := newScraper(x, e.timeout)
	start := time.Now()
	var last scrapeResult
	for k := range e.scrapes {
		if !e.sleepUntil(start.Add(time.Duration(k)*e.interval)) || !x.alive() {
			break
		}
		last = e.scrape(s)
		up, _ := last.upDown()
		r.walls = append(r.walls, last.latency)
		r.ups = append(r.ups, float64(up)/float64(n))
		fmt.Printf("  scrape %d: %s (%.2fx the limit; headers after %s), %s, %s up, %s, %d series\n", k+1, dur(last.latency),
			last.latency.Seconds()/r.limit.Seconds(), dur(last.headers), last.outcome(), pct(float64(up)/float64(n)), sizeOf(last.bytes), last.series)
	}
	after := x.proc()
	if len(r.walls) > 0 {
		r.cpuPerScr = (after.cpu - before.cpu) / time.Duration(len(r.walls))
	}
	if made := u.stats().total - calls; made > 0 {
		r.cpuPerCall = (after.cpu - before.cpu) / time.Duration(made)
		fmt.Printf("  exporter CPU %.2f s for %d provider calls (harness: %.2f s)\n", (after.cpu - before.cpu).Seconds(), made, (after.harness - before.harness).Seconds())
	}
	r.rss, r.hwm, r.heap = after.rss, after.hwm, last.heap
	r.bytes, r.series = float64(last.bytes)/float64(n), float64(last.series)/float64(n)
	return r, nil
}

// concurrencyOf reads --api.concurrency from the exporter's arguments; the
// last one counts, as for the exporter.
func concurrencyOf(args string) int {
	conc := 64 // the exporter's default --api.concurrency
	f := strings.Fields(args)
	for i, a := range f {
		v, ok := strings.CutPrefix(a, "--api.concurrency=")
		if !ok && a == "--api.concurrency" && i+1 < len(f) {
			v, ok = f[i+1], true
		}
		if n, err := strconv.Atoi(v); ok && err == nil && n > 0 {
			conc = n
		}
	}
	return conc
}
