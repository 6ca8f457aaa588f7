package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// stormConfig is the valid configuration the reload storm is at: every
// instance's timeout, and whether a tenth of the instances is left out.
type stormConfig struct {
	timeout time.Duration
	removed bool
}

func (c stormConfig) spec(invalid bool) configSpec {
	s := configSpec{timeout: c.timeout, invalid: invalid}
	if c.removed {
		s.leaveOut = func(i int) bool { return i%10 == 0 }
	}
	return s
}

// reloadCounts are the reloads the storm sent.
type reloadCounts struct {
	written    [3]int // timeout changes, removals or re-additions, invalid
	sighups    int
	posts      int
	postErrors int // no HTTP answer
	postTimes  []time.Duration
	unexpected []string // POST answers other than 200 for a valid config, 500 for an invalid one
}

// post reloads by POST /-/reload and checks the answer: 200 for a valid
// configuration, 500 for an invalid one, and no token in the error text.
func (e *env) post(x *exporter, valid bool, rc *reloadCounts) int {
	rc.posts++
	start := time.Now()
	code, body, err := x.postReload()
	rc.postTimes = append(rc.postTimes, time.Since(start))
	if err != nil {
		rc.postErrors++
		return 0
	}
	if strings.Contains(body, secretMarker) {
		e.fail("LEAK: a token in the answer of POST /-/reload: %s", shorten(body, 300))
	}
	want := http.StatusOK
	if !valid {
		want = http.StatusInternalServerError
	}
	if code != want {
		rc.unexpected = append(rc.unexpected, fmt.Sprintf("HTTP %d for a %s config: %s", code, validity(valid), shorten(strings.TrimSpace(body), 200)))
		if code >= 500 || valid != (code == http.StatusOK) {
			e.fail("POST /-/reload of a %s configuration answered HTTP %d", validity(valid), code)
		}
	}
	return code
}

func validity(valid bool) string {
	if valid {
		return "valid"
	}
	return "invalid"
}

func runReloadStorm(e *env) error {
	u, err := newUpstream(e.instances, e.latency)
	if err != nil {
		return err
	}
	defer u.stop()
	path := filepath.Join(e.dir, "config.yml")
	cur := stormConfig{timeout: 5 * time.Second}
	good, err := u.writeConfig(path, cur.spec(false))
	if err != nil {
		return err
	}
	x, err := e.startExporter(path)
	if err != nil {
		return err
	}
	defer e.finish(x)
	full := len(good)
	reduced := full - (full+9)/10 // without the instances i%10 == 0
	e.header("%d instances answering in %s; %d scrapers every 1 s; %g reloads/s for %s cycling timeout 5s/6s, %d instances out/in, an invalid config (unknown field); every 10th by POST /-/reload",
		e.instances, e.latency, e.scrapers, e.rate, e.duration, full-reduced)

	before := x.proc()
	stopSampling := sample(x, 500*time.Millisecond)
	stats := newScrapeStats(e.timeout)
	var partial, sawFailed atomic.Int64
	end := time.Now().Add(e.duration)
	var wg sync.WaitGroup
	for range e.scrapers {
		wg.Go(func() {
			s := newScraper(x, e.timeout)
			for e.running(x, end) {
				began := time.Now()
				r := e.scrape(s)
				stats.add(r)
				if r.err == nil {
					if n := len(r.up); n != full && n != reduced {
						partial.Add(1)
					}
					if r.reloadOK == 0 {
						sawFailed.Add(1)
					}
				}
				e.sleepUntil(began.Add(time.Second))
			}
		})
	}

	var rc reloadCounts
	var writeErr error
	tick := time.NewTicker(time.Duration(float64(time.Second) / e.rate))
	for i := 0; e.running(x, end); i++ {
		kind := i % 3
		switch kind {
		case 0:
			cur.timeout = 11*time.Second - cur.timeout // 5s <-> 6s
		case 1:
			cur.removed = !cur.removed
		}
		valid := kind != 2
		if _, writeErr = u.writeConfig(path, cur.spec(!valid)); writeErr != nil {
			break
		}
		rc.written[kind]++
		if i%10 == 9 {
			e.post(x, valid, &rc)
		} else {
			x.signal(syscall.SIGHUP)
			rc.sighups++
		}
		select {
		case <-tick.C:
		case <-e.ctx.Done():
		}
	}
	tick.Stop()
	wg.Wait()
	pk := stopSampling()
	if writeErr != nil {
		return writeErr
	}

	t := newTable()
	t.row("reloads sent", "%d: %d SIGHUP, %d POST /-/reload", rc.sighups+rc.posts, rc.sighups, rc.posts)
	t.row("configs written", "%d timeout changes, %d removals or re-additions, %d invalid", rc.written[0], rc.written[1], rc.written[2])
	t.row("POST answers as expected", "%d of %d (200 valid, 500 invalid); %d without answer", rc.posts-len(rc.unexpected)-rc.postErrors, rc.posts, rc.postErrors)
	t.row("POST /-/reload time p50 / max", "%s / %s", dur(percentile(rc.postTimes, 0.5)), dur(percentile(rc.postTimes, 1)))
	for _, msg := range rc.unexpected[:min(3, len(rc.unexpected))] {
		t.row("  unexpected", "%s", msg)
	}
	t.row("-- scrapes during the storm", "")
	stats.rows(t)
	t.row("whatsapp_up count neither config's", "%d scrapes (want %d or %d)", partial.Load(), full, reduced)
	t.row("scrapes showing a failed reload", "%d", sawFailed.Load())
	t.flush()

	if x.alive() && e.sleepUntil(time.Now().Add(2*time.Second)) {
		e.finalReloadCheck(x, u, path, cur)
	}
	t = newTable()
	t.row("-- whole run", "")
	t.row("exporter alive", "%v", x.alive())
	procRows(t, before, x.proc(), pk, stats.maxGoroutines)
	callRows(t, u.stats(), u.n)
	t.flush()
	return nil
}

// finalReloadCheck loads a last good configuration by POST, then an
// invalid one by SIGHUP and by POST, and checks that the exporter rejects
// it and keeps serving exactly the good configuration's instances.
func (e *env) finalReloadCheck(x *exporter, u *upstream, path string, cur stormConfig) {
	t := newTable()
	defer t.flush()
	t.row("-- after the storm", "")
	var rc reloadCounts
	good, err := u.writeConfig(path, cur.spec(false))
	if err != nil {
		t.row("error", "%v", err)
		return
	}
	t.row("last good config by POST", "HTTP %d, %d instances", e.post(x, true, &rc), len(good))
	other := cur
	other.removed = !cur.removed
	if _, err := u.writeConfig(path, other.spec(true)); err != nil {
		t.row("error", "%v", err)
		return
	}
	x.signal(syscall.SIGHUP)
	s := newScraper(x, e.timeout)
	sent := time.Now()
	var r scrapeResult
	for deadline := sent.Add(10 * time.Second); time.Now().Before(deadline) && x.alive(); time.Sleep(100 * time.Millisecond) {
		if r = e.scrape(s); r.err == nil && r.reloadOK == 0 {
			break
		}
	}
	if r.err != nil {
		t.row("error", "scrape: %s", r.outcome())
		return
	}
	if r.reloadOK == 0 {
		t.row("invalid config by SIGHUP", "rejected: last_reload_successful 0 within %s", dur(time.Since(sent)))
	} else {
		t.row("invalid config by SIGHUP", "WRONG: last_reload_successful still %g after 10s", r.reloadOK)
		e.fail("an invalid configuration sent by SIGHUP did not set whatsapp_exporter_config_last_reload_successful to 0")
	}
	t.row("invalid config by POST", "HTTP %d", e.post(x, false, &rc))
	for _, msg := range rc.unexpected {
		t.row("  unexpected", "%s", msg)
	}
	r = e.scrape(s)
	var missing, stale []string
	for name := range good {
		if _, ok := r.up[name]; !ok {
			missing = append(missing, name)
		}
	}
	for name := range r.names {
		if !good[name] {
			stale = append(stale, name)
		}
	}
	verdict := "correct"
	if len(r.up) != len(good) || len(missing) > 0 {
		verdict = "WRONG"
		e.fail("after rejecting an invalid configuration the exporter serves %d instances, not the %d of the last good one", len(r.up), len(good))
	}
	t.row("whatsapp_up series vs last good config", "%d vs %d: %s", len(r.up), len(good), verdict)
	t.row("config instances without whatsapp_up", "%d %s", len(missing), examples(missing))
	t.row("stale: series of instances not in config", "%d %s", len(stale), examples(stale))
	if len(stale) > 0 {
		e.fail("%d instances not in the configuration still have whatsapp_* series", len(stale))
	}
}

func examples(names []string) string {
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return "e.g. " + strings.Join(names[:min(5, len(names))], ", ")
}
