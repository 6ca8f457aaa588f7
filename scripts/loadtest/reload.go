package main

import (
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// stormConfig is the valid configuration the reload storm is at: every
// instance's timeout, whether a tenth of the instances is left out, and
// the partner account's entry.
type stormConfig struct {
	timeout time.Duration
	removed bool
	// account says whether the configuration has the partner account;
	// variant picks its entry (see accountEntry), the next one at every
	// valid configuration the storm writes.
	account bool
	variant int
	// webhooks gives the instances their webhook_token.
	webhooks bool
}

func (c stormConfig) spec(invalid bool) configSpec {
	s := configSpec{timeout: c.timeout, invalid: invalid, webhooks: c.webhooks, account: c.accountEntry()}
	if c.removed {
		s.leaveOut = func(i int) bool { return i%10 == 0 }
	}
	return s
}

// accountEntry is the partner account's entry of the configuration, nil
// without one. Its eight variants alternate its name (another account
// to the exporter, whose listing is made anew), its name_prefix (other
// names for the same instances) and an include filter (half of them).
// refresh_interval cannot be under 10 s: the name makes each valid reload
// list.
func (c stormConfig) accountEntry() *accountConfig {
	if !c.account {
		return nil
	}
	a := &accountConfig{name: "partner-a", prefix: "pa-"}
	if c.variant%2 == 1 {
		a.name = "partner-b"
	}
	if c.variant/2%2 == 1 {
		a.prefix = "pb-"
	}
	if c.variant/4%2 == 1 {
		a.include = []string{listedPrefix + "[0-9]*[02468]"}
	}
	return a
}

// watches reports whether the account entry a watches an instance of that
// name in the exporter (a listed instance's, with a's prefix and through
// its filter); false for a nil a.
func (a *accountConfig) watches(name string) bool {
	if a == nil {
		return false
	}
	rest, ok := strings.CutPrefix(name, a.prefix)
	if !ok || !strings.HasPrefix(rest, listedPrefix) {
		return false
	}
	for _, re := range a.include {
		if !regexp.MustCompile("^(?:" + re + ")$").MatchString(rest) {
			return false
		}
	}
	return true
}

// isListed reports whether a name in the exporter is a listed instance's,
// with any prefix.
func isListed(name string) bool { return strings.Contains(name, listedPrefix) }

// census counts a scrape's whatsapp_up series of configured and of listed
// instances.
func census(r scrapeResult) (configured, listed int) {
	for name := range r.up {
		if isListed(name) {
			listed++
		} else {
			configured++
		}
	}
	return configured, listed
}

// listedRange is the fewest and most listed instances scrapes showed.
type listedRange struct {
	mu       sync.Mutex
	n        int
	min, max int
}

func (l *listedRange) add(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 || n < l.min {
		l.min = n
	}
	l.max = max(l.max, n)
	l.n++
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
	if e.listed > 0 {
		u.addPartnerAccount(e.listed, e.latency)
	}
	path := filepath.Join(e.dir, "config.yml")
	cur := stormConfig{timeout: 5 * time.Second, account: e.listed > 0, webhooks: e.notify > 0}
	good, err := u.writeConfig(path, cur.spec(false))
	if err != nil {
		return err
	}
	x, err := e.startExporterWith(path, e.notify > 0)
	if err != nil {
		return err
	}
	defer e.finish(x)
	full := len(good)
	reduced := full - (full+9)/10 // without the instances i%10 == 0
	e.header("%d instances answering in %s; %d scrapers every 1 s; %g reloads/s for %s cycling timeout 5s/6s, %d instances out/in, an invalid config (unknown field); every 10th by POST /-/reload",
		e.instances, e.latency, e.scrapers, e.rate, e.duration, full-reduced)
	if e.listed > 0 {
		fmt.Printf("   a GREEN-API partner account lists about %d instances, its listing changing every %s; each valid config has the account's next variant (name, name_prefix, include filter), listed anew\n",
			e.listed, accountStep)
	}
	if e.notify > 0 {
		fmt.Printf("   %g notifications/s to /webhook/greenapi (at most %d in flight): configured and listed instances, right, wrong and no tokens, other kinds, malformed bodies\n",
			e.notify, notifySenders)
	}

	before := x.proc()
	listingsBefore := u.listingCalls()
	stopSampling := sample(x, 500*time.Millisecond)
	stats := newScrapeStats(e.timeout)
	var partial, sawFailed atomic.Int64
	var partialMu sync.Mutex
	partialCounts := map[int]bool{} // the counts of those partial scrapes
	var listedSeen listedRange
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
					n, listed := census(r)
					if n != full && n != reduced {
						partial.Add(1)
						partialMu.Lock()
						partialCounts[n] = true
						partialMu.Unlock()
					}
					listedSeen.add(listed)
					if r.reloadOK == 0 {
						sawFailed.Add(1)
					}
				}
				e.sleepUntil(began.Add(time.Second))
			}
		})
	}
	stopNotifier := func() *notifyStats { return nil }
	if e.notify > 0 {
		stopNotifier = e.notifier(x, u, e.notify)
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
		if valid {
			cur.variant++
		}
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
	ns := stopNotifier()
	listings := u.listingCalls() - listingsBefore
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
	if e.listed > 0 {
		t.row("-- partner account during the storm", "")
		t.row("account variants written", "%d (one per valid config, each another account or name_prefix or filter)", rc.written[0]+rc.written[1])
		t.row("listings (upstream getInstances calls)", "%d: %.1f/s", listings, float64(listings)/e.duration.Seconds())
		listedSeen.mu.Lock()
		t.row("listed instances in whatsapp_up, min / max", "%d / %d over %d scrapes (a listing holds at most %d)", listedSeen.min, listedSeen.max, listedSeen.n, e.listed+e.listed/4)
		listedSeen.mu.Unlock()
	}
	if ns != nil {
		t.row("-- notifications during the storm", "")
		ns.rows(t, e.notify)
	}
	t.row("-- scrapes during the storm", "")
	stats.rows(t)
	seen := ""
	if len(partialCounts) > 0 {
		var counts []string
		for _, n := range slices.Sorted(maps.Keys(partialCounts))[:min(5, len(partialCounts))] {
			counts = append(counts, strconv.Itoa(n))
		}
		seen = "; seen " + strings.Join(counts, ", ") + ": an instance has none before its first result"
	}
	t.row("whatsapp_up count neither config's", "%d scrapes (want %d or %d configured instances%s)", partial.Load(), full, reduced, seen)
	t.row("scrapes showing a failed reload", "%d", sawFailed.Load())
	t.flush()

	if x.alive() && e.sleepUntil(time.Now().Add(2*time.Second)) {
		e.finalReloadCheck(x, u, path, cur, ns)
	}
	t = newTable()
	t.row("-- whole run", "")
	t.row("exporter alive", "%v", x.alive())
	procRows(t, before, x.proc(), pk, stats.maxGoroutines)
	callRows(t, u.stats(), u.n)
	if u.listed > 0 {
		t.row("listings (upstream getInstances calls)", "%d", u.listingCalls())
		ls := u.listedStats()
		t.row("listed instances' provider calls", "%d; per instance min %d / median %d / max %d; %d of %d never called (not all are listed)",
			ls.total, ls.min, ls.median, ls.max, len(ls.never), u.listed)
		t.row("listed instances' spacing violations", "%d %s", ls.under, examples(ls.violators))
	}
	t.flush()
	return nil
}

// finalReloadCheck loads a last good configuration by POST, then an
// invalid one by SIGHUP and by POST, and checks that the exporter rejects
// it and keeps serving exactly the good configuration's instances, and of
// the listed ones only those its account entry watches. It compares the
// exporter's count of notifications with the answers ns received.
func (e *env) finalReloadCheck(x *exporter, u *upstream, path string, cur stormConfig, ns *notifyStats) {
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
	acct := cur.accountEntry()
	var missing, stale []string
	for name := range good {
		if _, ok := r.up[name]; !ok {
			missing = append(missing, name)
		}
	}
	for name := range r.names {
		if !good[name] && !acct.watches(name) {
			stale = append(stale, name)
		}
	}
	configured, listed := census(r)
	verdict := "correct"
	if configured != len(good) || len(missing) > 0 {
		verdict = "WRONG"
		e.fail("after rejecting an invalid configuration the exporter serves %d configured instances, not the %d of the last good one", configured, len(good))
	}
	t.row("whatsapp_up series vs last good config", "%d vs %d: %s", configured, len(good), verdict)
	t.row("config instances without whatsapp_up", "%d %s", len(missing), examples(missing))
	if acct != nil {
		filter := "no filter"
		if len(acct.include) > 0 {
			filter = "include " + strings.Join(acct.include, ", ")
		}
		t.row("listed instances watched", "%d (account %s, name_prefix %s, %s)", listed, acct.name, acct.prefix, filter)
	}
	t.row("stale: series of instances neither configured nor listed", "%d %s", len(stale), examples(stale))
	if len(stale) > 0 {
		e.fail("%d instances neither in the configuration nor watched by its account still have whatsapp_* series", len(stale))
	}
	if ns != nil {
		ns.mu.Lock()
		answered := 0
		for _, n := range ns.status {
			answered += n
		}
		ns.mu.Unlock()
		var counted float64
		var out []string
		for _, o := range slices.Sorted(maps.Keys(r.notified)) {
			counted += r.notified[o]
			out = append(out, fmt.Sprintf("%s %g", o, r.notified[o]))
		}
		t.row("notifications the exporter counted", "%g, %d answered (whatsapp_exporter_webhook_notifications_total: %s)", counted, answered, orNone(strings.Join(out, ", ")))
	}
}

func examples(names []string) string {
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return "e.g. " + strings.Join(names[:min(5, len(names))], ", ")
}
