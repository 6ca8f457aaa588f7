package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// The meta-fleet scenario: WABAs of Meta's WhatsApp Cloud API, one
// exporter account each, whose numbers come with the WABA's listing
// (collector/meta_accounts.go). The exporter must spend each WABA's
// request budget deliberately (docs/meta.md, "The request budget"): one
// listing per refresh_interval and page, whatever the scrapes, fewer as
// the usage Graph reports climbs, and none while Graph says the budget is
// spent. Two phases, each with a fresh simulator and exporter:
//
//  1. active WABAs (5 000 requests an hour): the requests per WABA
//     against refresh_interval, memory and /metrics at -wabas × -numbers;
//  2. WABAs of 200 requests an hour, most of which the business's own
//     software (calls of this harness straight into the simulator) has
//     spent, in tiers: the exporter stretches its interval, and no WABA
//     gets an 80007 answer, but those whose budget was spent before the
//     exporter's first call, which get exactly one.

// metaGraphPath is where the simulator serves Graph.
const metaGraphPath = "/meta/" + simulator.MetaVersion

// metaDefaultRefresh is the exporter's refresh_interval of a WABA
// (collector/meta.go).
const metaDefaultRefresh = time.Minute

// metaPageSize is the numbers a listing asks for per page
// (collector/meta_accounts.go).
const metaPageSize = 100

func metaWABAToken(w int) string { return secretMarker + "meta-" + strconv.Itoa(w) }
func metaAccountName(w int) string {
	return fmt.Sprintf("waba-%04d", w)
}

// metaPhoneID is the phone-number ID of number n of WABA w: 15 digits.
func metaPhoneID(w, n int) string {
	return strconv.FormatInt(106540000000000+int64(w)*100000+int64(n), 10)
}

// metaTier is a group of WABAs whose budget the business's own software
// spends as well: pre calls before the exporter starts, during more
// spread evenly over the phase. pre equal to the budget is a budget
// spent before the exporter's first call.
type metaTier struct {
	name        string
	pre, during int
}

// metaPhase is one exporter run against a fresh simulator.
type metaPhase struct {
	name   string
	budget int // requests per WABA per hour
	tiers  []metaTier
}

// graphCounts are the requests of one WABA the exporter made, as the
// simulator answered them.
type graphCounts struct {
	requests  int // all of them
	listings  int // GET /{waba_id}: a listing's first page
	pages     int // GET /{waba_id}/phone_numbers: its next pages
	numbers   int // GET /{phone_number_id}: a number on its own
	refused   int // code 80007: beyond the WABA's budget
	appRefuse int // code 4: beyond the app's
	failed    int // other answers than 200
	// firstListing and lastListing are when the first and last listing
	// began.
	firstListing, lastListing time.Time
	told                      int // highest call_count (percent) Graph told
}

// graphCounter counts the requests the exporter makes, per WABA, in front
// of the simulator. The calls of "the business's own software" go to the
// simulator directly and are not counted.
type graphCounter struct {
	next     http.Handler
	byWABA   map[string]int // WABA ID -> index
	byNumber map[string]int // phone-number ID -> its WABA's index

	mu    sync.Mutex
	wabas []graphCounts
	other int // requests of no known WABA or number
}

// recorder keeps the status and the start of an error body.
type recorder struct {
	http.ResponseWriter
	status int
	body   []byte
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status != http.StatusOK && len(r.body) < 1024 {
		r.body = append(r.body, b[:min(len(b), 1024-len(r.body))]...)
	}
	return r.ResponseWriter.Write(b)
}

func (g *graphCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	g.next.ServeHTTP(rec, r)

	id, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, metaGraphPath+"/"), "/")
	i, isWABA := g.byWABA[id]
	if !isWABA {
		var ok bool
		if i, ok = g.byNumber[id]; !ok {
			g.mu.Lock()
			g.other++
			g.mu.Unlock()
			return
		}
	}
	told := -1
	var usage map[string][]struct {
		CallCount int `json:"call_count"`
	}
	if json.Unmarshal([]byte(rec.Header().Get("X-Business-Use-Case-Usage")), &usage) == nil {
		for _, es := range usage {
			for _, e := range es {
				told = max(told, e.CallCount)
			}
		}
	}
	var body struct {
		Error struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(rec.body, &body)

	g.mu.Lock()
	defer g.mu.Unlock()
	c := &g.wabas[i]
	c.requests++
	switch {
	case isWABA && rest == "":
		c.listings++
		if c.firstListing.IsZero() {
			c.firstListing = began
		}
		c.lastListing = began
	case isWABA:
		c.pages++
	default:
		c.numbers++
	}
	c.told = max(c.told, told)
	switch {
	case rec.status == http.StatusOK:
	case body.Error.Code == 80007:
		c.refused++
	case body.Error.Code == 4:
		c.appRefuse++
	default:
		c.failed++
	}
}

func (g *graphCounter) snapshot() ([]graphCounts, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.wabas), g.other
}

// metaVariant makes a few numbers of each WABA unhealthy, as in a real
// fleet: their series differ (health errors, quality).
func metaVariant(n int) (string, *simulator.MetaNumber) {
	switch {
	case n%100 == 42:
		return "CONNECTED", &simulator.MetaNumber{Health: simulator.MetaHealth{Phone: simulator.MetaEntity{
			CanSend: "BLOCKED", Errors: []simulator.MetaHealthError{simulator.MetaPaymentError}}}}
	case n%97 == 5:
		return "FLAGGED", &simulator.MetaNumber{Quality: "RED", Health: simulator.MetaHealth{Phone: simulator.MetaEntity{
			CanSend: "LIMITED", Info: []string{simulator.MetaDisplayNamePending}}}}
	case n%50 == 7:
		return "CONNECTED", &simulator.MetaNumber{Quality: "YELLOW"}
	}
	return "CONNECTED", nil
}

// spend makes one call of the business's own software against WABA w's
// budget: its first number's node, with the WABA's token, straight into
// the simulator.
func spend(sim *simulator.Simulator, w int) {
	req := httptest.NewRequest(http.MethodGet, metaGraphPath+"/"+metaPhoneID(w, 0)+"?fields=id,status", nil)
	req.Header.Set("Authorization", "Bearer "+metaWABAToken(w))
	sim.ServeHTTP(httptest.NewRecorder(), req)
}

func runMetaFleet(e *env) error {
	switch {
	case e.wabas < 1 || e.wabas > 9999 || e.numbers < 1 || e.numbers > 99999:
		return fmt.Errorf("-wabas must be between 1 and 9 999, -numbers between 1 and 99 999")
	case e.refresh != 0 && e.refresh < 20*time.Second:
		return fmt.Errorf("-refresh must be 0 (the default, 1m) or at least 20s, the exporter's shortest")
	case e.interval <= 0:
		return fmt.Errorf("-interval must be positive")
	}
	refresh := cmpDur(e.refresh, metaDefaultRefresh)
	e.header("%d WABAs of %d numbers (%d numbers) answering in %s; refresh_interval %s; a scrape every %s for %s, twice",
		e.wabas, e.numbers, e.wabas*e.numbers, e.latency, refresh, e.interval, e.duration)

	b := simulator.MetaNewBudget
	pct := func(p int) int { return b * p / 100 }
	phases := []metaPhase{
		{name: "phase 1: active WABAs", budget: simulator.MetaActiveBudget, tiers: []metaTier{{name: "exporter alone"}}},
		{name: "phase 2: budgets of 200 an hour, spent by others", budget: b, tiers: []metaTier{
			{name: "exporter alone"},
			{name: "others spent 60 %", pre: pct(60)},
			{name: "others spent 80 %", pre: pct(80)},
			{name: "others spent 89 %", pre: pct(89)},
			{name: "others spent 98 %", pre: pct(98)},
			{name: "others spent it all", pre: b},
			{name: "others climb 40 → 93 %", pre: pct(40), during: pct(53)},
		}},
	}
	var medians []float64
	for _, p := range phases {
		if e.ctx.Err() != nil {
			break
		}
		m, err := e.metaPhase(p, refresh)
		if err != nil {
			return err
		}
		medians = append(medians, m)
	}
	if len(medians) == 2 {
		fmt.Printf("\n-- requests per WABA over %s, median: %.0f with active WABAs, %.0f with budgets of 200 others have spent\n",
			e.duration, medians[0], medians[1])
	}
	return nil
}

func cmpDur(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// metaPhase runs one phase and returns the median requests per WABA.
func (e *env) metaPhase(p metaPhase, refresh time.Duration) (float64, error) {
	fmt.Printf("\n-- %s (%d requests per WABA per hour)\n", p.name, p.budget)
	sim := simulator.New()
	g := &graphCounter{next: sim, byWABA: map[string]int{}, byNumber: map[string]int{}, wabas: make([]graphCounts, e.wabas)}
	tierOf := func(w int) metaTier { return p.tiers[w%len(p.tiers)] }
	members := make([][]simulator.Member, e.wabas)
	for w := range e.wabas {
		tok := metaWABAToken(w)
		sim.SetMetaWABA(tok, simulator.MetaWABA{Name: metaAccountName(w), Budget: p.budget})
		g.byWABA[simulator.MetaWABAID(tok)] = w
		for n := range e.numbers {
			id := metaPhoneID(w, n)
			state, m := metaVariant(n)
			sim.Set(simulator.Meta, id, secretMarker+"n"+id, simulator.Behaviour{State: state, Latency: e.latency, Meta: m})
			members[w] = append(members[w], simulator.Member{ID: id})
			g.byNumber[id] = w
		}
		sim.SetAccount(simulator.Meta, tok, members[w]...)
	}
	// What others spent before the exporter starts: calls of a number's
	// node straight into the simulator, which wait the number's latency:
	// 50 at a time per WABA. The listing's latency is set after them.
	var wg sync.WaitGroup
	others := make([]int, e.wabas)
	for w := range e.wabas {
		if pre := tierOf(w).pre; pre > 0 {
			others[w] = pre
			wg.Go(func() {
				sem := make(chan struct{}, 50)
				var inner sync.WaitGroup
				for range pre {
					sem <- struct{}{}
					inner.Go(func() { spend(sim, w); <-sem })
				}
				inner.Wait()
			})
		}
	}
	wg.Wait()
	for w := range e.wabas {
		sim.ScheduleAccount(simulator.Meta, metaWABAToken(w), simulator.AccountStep{Members: members[w], Latency: e.latency})
	}

	u := &upstream{sim: sim, addr: "127.0.0.1:0", handler: g}
	if err := u.start(); err != nil {
		return 0, err
	}
	defer u.stop()
	path := filepath.Join(e.dir, fmt.Sprintf("config-meta-%d.yml", p.budget))
	if err := writeMetaConfig(path, u.url()+metaGraphPath, e.wabas, e.refresh); err != nil {
		return 0, err
	}
	began := time.Now()
	x, err := e.startExporter(path)
	if err != nil {
		return 0, err
	}
	finished := false
	defer func() {
		if !finished {
			e.finish(x)
		}
	}()

	// Others who go on spending during the phase.
	stopOthers := make(chan struct{})
	var spenders sync.WaitGroup
	var othersMu sync.Mutex
	for w := range e.wabas {
		during := tierOf(w).during
		if during == 0 {
			continue
		}
		spenders.Go(func() {
			every := e.duration / time.Duration(during+1)
			t := time.NewTicker(every)
			defer t.Stop()
			for range during {
				select {
				case <-stopOthers:
					return
				case <-e.ctx.Done():
					return
				case <-t.C:
				}
				spenders.Go(func() { spend(sim, w) })
				othersMu.Lock()
				others[w]++
				othersMu.Unlock()
			}
		})
	}

	before := x.proc()
	stopSampling := sample(x, 500*time.Millisecond)
	stats := newScrapeStats(e.timeout)
	s := newScraper(x, e.timeout)
	exposed := map[string]float64{}
	exposedType := map[string]float64{}
	var last scrapeResult
	var walls []string
	start := time.Now()
	for k := 0; ; k++ {
		at := start.Add(time.Duration(k) * e.interval)
		if at.Sub(start) >= e.duration || !e.sleepUntil(at) || !x.alive() {
			break
		}
		r := e.scrape(s)
		stats.add(r)
		walls = append(walls, dur(r.latency))
		if r.err != nil {
			fmt.Printf("  scrape %2d at %6s: %s\n", k+1, dur(at.Sub(start).Round(time.Second)), r.outcome())
			continue
		}
		last = r
		for b, v := range r.metaUsage {
			exposed[b] = max(exposed[b], v)
		}
		for t, v := range r.metaUsageType {
			exposedType[t] = max(exposedType[t], v)
		}
		up, _ := r.upDown()
		fmt.Printf("  scrape %2d at %6s: %s, %s, %s, %d series, %d numbers up, highest usage exposed %.2f\n", k+1,
			dur(at.Sub(start).Round(time.Second)), dur(r.latency), r.outcome(), sizeOf(r.bytes), r.series, up, maxOf(r.metaUsage))
	}
	// Count over the whole -duration, not up to the last scrape.
	e.sleepUntil(start.Add(e.duration))
	close(stopOthers)
	counts, other := g.snapshot()
	elapsed := time.Since(began)
	pk := stopSampling()
	after := x.proc()
	spenders.Wait()
	finished = true
	e.finish(x)

	// The bound: one listing at the start and one per refresh_interval
	// after the end of the last, each of ceil(numbers/100) pages.
	pagesPer := (e.numbers + metaPageSize - 1) / metaPageSize
	bound := (int(elapsed/refresh) + 1) * pagesPer
	var over, numberCalls, refusedLegit []string
	var reqs []int
	total, failed, appRefused, refused := 0, 0, 0, 0
	for w, c := range counts {
		reqs = append(reqs, c.requests)
		total += c.requests
		failed += c.failed
		appRefused += c.appRefuse
		refused += c.refused
		if c.requests > bound {
			over = append(over, fmt.Sprintf("%s (%d)", metaAccountName(w), c.requests))
		}
		if c.numbers > 0 {
			numberCalls = append(numberCalls, metaAccountName(w))
		}
		spent := tierOf(w).pre >= p.budget
		if c.refused > 1 || c.refused > 0 && !spent {
			refusedLegit = append(refusedLegit, fmt.Sprintf("%s (%d)", metaAccountName(w), c.refused))
		}
	}

	t := newTable()
	stats.rows(t)
	t.row("scrape wall times", "%s", strings.Join(walls, " "))
	procRows(t, before, after, pk, stats.maxGoroutines)
	n := float64(e.wabas * e.numbers)
	up, _ := last.upDown()
	t.row("/metrics at the last scrape", "%s, %d series, %d numbers up: %.0f bytes and %.1f series per number",
		sizeOf(last.bytes), last.series, up, float64(last.bytes)/n, float64(last.series)/n)
	t.row("Graph requests", "%d in %s (%.0f an hour); per WABA min %d / median %d / max %d",
		total, dur(elapsed.Round(time.Second)), float64(total)/elapsed.Hours(), slices.Min(reqs), median(reqs), slices.Max(reqs))
	t.row("  allowed per WABA", "%d: (%s / refresh_interval %s + 1) listings × %d pages", bound, dur(elapsed.Round(time.Second)), refresh, pagesPer)
	t.row("  per WABA an hour, steady", "%s  (listings after the first, per hour since the first)", steadyRate(counts, pagesPer))
	t.row("  of numbers on their own", "%d WABAs %s", len(numberCalls), examples(numberCalls))
	t.row("  answered 80007 / code 4 / other errors", "%d / %d / %d; requests of no WABA: %d", refused, appRefused, failed, other)
	t.row("usage exposed, highest", "%s  (whatsapp_meta_api_usage_ratio over all scrapes)", usageTypes(exposedType))
	t.flush()

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  tier\tWABAs\tothers' calls\texporter's requests per WABA min/median/max\trefused (80007)\tGraph told the exporter, highest\tusage exposed, highest\tbudget spent at the end, highest\tinterval by docs/meta.md at the first usage")
	for i, tier := range p.tiers {
		var rq, tl []int
		var ex []float64
		var sim0 []float64
		nRefused, nOthers := 0, 0
		for wi := i; wi < e.wabas; wi += len(p.tiers) {
			c := counts[wi]
			rq = append(rq, c.requests)
			tl = append(tl, c.told)
			ex = append(ex, exposed[metaAccountName(wi)])
			nRefused += c.refused
			othersMu.Lock()
			nOthers = max(nOthers, others[wi])
			othersMu.Unlock()
			calls, budget := sim.MetaUsage(simulator.MetaWABAID(metaWABAToken(wi)))
			sim0 = append(sim0, float64(calls)/float64(budget))
		}
		if len(rq) == 0 {
			continue
		}
		first := math.Min(1, float64(tier.pre+1)/float64(p.budget))
		fmt.Fprintf(w, "  %s\t%d\t%d\t%d / %d / %d\t%d\t%d %%\t%.2f\t%s\t%s\n", tier.name, len(rq), nOthers, slices.Min(rq), median(rq), slices.Max(rq),
			nRefused, slices.Max(tl), slices.Max(ex), pctOf(slices.Max(sim0)), expectedInterval(refresh, first, tier.pre >= p.budget))
	}
	_ = w.Flush()

	if len(over) > 0 {
		e.fail("%s: %d WABAs got more requests than refresh_interval allows (%d): %s", p.name, len(over), bound, examples(over))
	}
	if len(numberCalls) > 0 {
		e.fail("%s: the exporter called numbers of %d WABAs on their own rather than by the listing: %s", p.name, len(numberCalls), examples(numberCalls))
	}
	if len(refusedLegit) > 0 {
		e.fail("%s: %d WABAs got requests beyond their budget (80007 where the budget had room, or again after Graph said it was spent): %s",
			p.name, len(refusedLegit), examples(refusedLegit))
	}
	if appRefused > 0 {
		e.fail("%s: %d requests beyond the app's budget (code 4)", p.name, appRefused)
	}
	return float64(median(reqs)), nil
}

// writeMetaConfig writes one meta account per WABA.
func writeMetaConfig(path, apiURL string, wabas int, refresh time.Duration) error {
	var b strings.Builder
	b.WriteString("accounts:\n")
	for w := range wabas {
		tok := metaWABAToken(w)
		fmt.Fprintf(&b, "  - name: %s\n    provider: meta\n    api_url: %s\n    waba_id: \"%s\"\n    access_token: %s\n",
			metaAccountName(w), apiURL, simulator.MetaWABAID(tok), tok)
		if refresh > 0 {
			fmt.Fprintf(&b, "    refresh_interval: %s\n", refresh)
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

func median(v []int) int {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

func maxOf(m map[string]float64) float64 {
	best := 0.0
	for _, v := range m {
		best = max(best, v)
	}
	return best
}

func pctOf(f float64) string { return fmt.Sprintf("%.1f %%", 100*f) }

func usageTypes(m map[string]float64) string {
	if len(m) == 0 {
		return "none exposed"
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, fmt.Sprintf("%s %.3f", k, m[k]))
	}
	return strings.Join(out, ", ")
}

// steadyRate is the median rate of the WABAs listed twice or more, from
// their first listing to their last.
func steadyRate(counts []graphCounts, pagesPer int) string {
	var rates []float64
	for _, c := range counts {
		if c.listings >= 2 {
			if span := c.lastListing.Sub(c.firstListing); span > 0 {
				rates = append(rates, float64((c.listings-1)*pagesPer)/span.Hours())
			}
		}
	}
	if len(rates) == 0 {
		return "n/a (no WABA listed twice)"
	}
	slices.Sort(rates)
	sum := 0.0
	for _, r := range rates {
		sum += r
	}
	return fmt.Sprintf("median %.1f (min %.1f, max %.1f; %d WABAs listed twice or more, %.0f an hour together)",
		rates[len(rates)/2], rates[0], rates[len(rates)-1], len(rates), sum)
}

// expectedInterval is the interval docs/meta.md's curve gives at usage u
// (the share of the budget after the exporter's first request).
func expectedInterval(every time.Duration, u float64, spent bool) string {
	if spent {
		return "none until access is regained (≤ 1h)"
	}
	f := 1.0
	switch {
	case u >= 0.9:
		f = 15
	case u > 0.5:
		f = 1 + 3*(u-0.5)/0.4
	}
	return fmt.Sprintf("%s (×%.2g at %.1f %%)", dur(time.Duration(float64(every)*f).Round(time.Second)), f, 100*u)
}
