package e2e

import (
	"bufio"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/grafana"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// historyScrape is the scrape interval of the backfilled history: the one
// the README recommends for fleets.
const historyScrape = time.Minute

// TestDashboardsHistory runs every dashboard query as Grafana would over
// hours of data scraped every minute, backfilled into a real Prometheus
// with promtool: in the single-endpoint mode with two replicas in the job
// (job whatsapp), in the multi-target mode (job whatsapp-multi, the
// exporter's own metrics in job whatsapp-exporter), with the data source's
// default settings and with its scrape interval set to 1m, over an hour
// and over six. Every panel must show data over the whole range.
func TestDashboardsHistory(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	promtool := testtool.Require(t, "promtool")
	grafana.Require(t)

	// What the exporter exposes, from a real one: instances working, not
	// working and failing for every provider, and accounts.
	sim := simulator.New()
	simURL := exportertest.StartSimulator(t, sim)
	var cfg strings.Builder
	cfg.WriteString("instances:\n")
	var names []string
	accounts := "accounts:\n"
	for i, p := range simulator.Providers() {
		working := workingState(p)
		notWorking := p.States[slices.IndexFunc(p.States, func(s string) bool { return s != working })]
		for j, b := range []simulator.Behaviour{{State: working}, {State: notWorking}, {Fault: simulator.FaultServerError}} {
			name, id := fmt.Sprintf("%s-%d", p.Name, j), fmt.Sprintf("11030%02d%03d", i, j)
			sim.Set(p.Name, id, "history-secret-"+id, b)
			cfg.WriteString(p.Config(simURL, name, id, "history-secret-"+id))
			names = append(names, name)
		}
		if p.Account != nil && p.Name != "evolution" { // an Evolution API key lists every instance of the server
			id := fmt.Sprintf("11031%02d000", i)
			sim.Set(p.Name, id, "history-secret-"+id, simulator.Behaviour{State: working})
			sim.SetAccount(p.Name, "history-key-"+p.Name, simulator.Member{ID: id, Name: "listed"})
			accounts += p.AccountConfig(simURL, p.Name+"-account", "history-key-"+p.Name)
		}
	}
	cfg.WriteString(accounts)
	e := exportertest.Start(t, exportertest.Inline(cfg.String()), 0)
	// The configured instances and one per account.
	testtool.WaitFor(t, "every instance refreshed", func() bool {
		return strings.Count(exportertest.Scrape(t, e.URL, nil), "\nwhatsapp_up{") >= len(names)+strings.Count(accounts, "\n")-1
	})
	single := exportertest.Parse(t, exportertest.Scrape(t, e.URL, nil))
	own := exportertest.Parse(t, exportertest.FetchOK(t, e.URL+"/exporter-metrics"))
	probes := map[string]map[string]*dto.MetricFamily{}
	for _, name := range exportertest.SDTargets(t, e.URL) {
		probes[name] = exportertest.Parse(t, exportertest.FetchOK(t, e.URL+"/probe?target="+url.QueryEscape(name)))
	}

	// Seven hours of it, every minute; the instance whose state changes
	// halfway is the first one.
	end := time.Now().Truncate(historyScrape)
	start := end.Add(-7 * time.Hour)
	h := &history{start: start, end: end, flip: names[0], flipAt: start.Add(210 * time.Minute)}
	// names[0] is its provider's working instance; names[2] fails.
	for _, r := range []string{"replica-a:10040", "replica-b:10040"} {
		h.add(single, map[string]string{"job": "whatsapp", "instance": r})
	}
	for name, mfs := range probes {
		h.add(mfs, map[string]string{"job": "whatsapp-multi", "instance": name})
	}
	h.add(own, map[string]string{"job": "whatsapp-exporter", "instance": "exporter:10040"})
	dir := t.TempDir()
	file := filepath.Join(dir, "history.om")
	h.write(t, file)
	data := filepath.Join(dir, "data")
	began := time.Now()
	testtool.Run(t, promtool, "tsdb", "create-blocks-from", "openmetrics", file, data)
	if fi, err := os.Stat(file); err == nil {
		t.Logf("backfilled %d series, %d MB of OpenMetrics, in %v", h.count(), fi.Size()>>20, time.Since(began).Round(time.Millisecond))
	}
	prom := startPrometheusOn(t, data, "", "")

	for _, sel := range []selection{
		{"whatsapp", ".*", names[0]},
		{"whatsapp-multi", ".*", names[0]},
		{".*", ".*", names[0]},
		{"whatsapp", "greenapi", "greenapi-2"}, // failing
	} {
		for _, ds := range []grafana.DataSource{{}, {ScrapeInterval: historyScrape}} {
			for _, span := range []time.Duration{time.Hour, 6 * time.Hour} {
				t.Run(fmt.Sprintf("%s/scrape interval %v/%v", sel, ds.ScrapeInterval, span), func(t *testing.T) {
					runs := runDashboards(t, prom, sel, ds, end.Add(-span), end, false)
					// No rules ran on the history: no alerts. An instance
					// that does not fail has no failures. The instances
					// are polled: no disconnect reasons (the live demo
					// has one).
					healthy := !strings.HasSuffix(sel.name, "-2")
					mayBeEmpty := func(expr string) bool {
						failures := strings.Contains(expr, "errors_total") && !strings.Contains(expr, "duration")
						// No instance of the history reads its queue: the
						// queue panels are checked with data on the demo.
						// Meta's panels are checked with data on the demo
						// (TestDashboardsLive), which has a WABA and its
						// numbers' health.
						return strings.Contains(expr, "ALERTS") || (failures && healthy && strings.Contains(expr, "name=~")) || queueMayBeEmpty(sel, expr, nil) ||
							strings.Contains(expr, "whatsapp_instance_disconnect_reason") || strings.Contains(expr, "whatsapp_meta_")
					}
					checkPanels(t, prom, sel, runs, end, mayBeEmpty)
					for _, r := range runs {
						if !r.empty() || !mayBeEmpty(r.rq.Expr) {
							checkCoverage(t, sel, r)
						}
					}
				})
			}
		}
	}
}

// checkCoverage checks a range query has a value at nearly every step:
// a window too short for the scrape interval leaves gaps.
func checkCoverage(t *testing.T, sel selection, r panelRun) {
	t.Helper()
	if r.rq.Instant || r.err != nil {
		return
	}
	steps := int(r.rq.End.Sub(r.rq.Start)/r.rq.Step) + 1
	covered := map[float64]bool{}
	for _, s := range r.matrix {
		for _, v := range s.Values {
			covered[v[0].(float64)] = true
		}
	}
	if float64(len(covered)) < 0.95*float64(steps) {
		t.Errorf("%s with %s: values at %d of %d steps of %v (rate window %v)\n%s",
			r.q.Name, sel, len(covered), steps, r.rq.Step, r.rq.RateInterval, r.rq.Expr)
	}
}

// history writes series in the OpenMetrics format promtool backfills.
type history struct {
	start, end time.Time
	flip       string    // the instance whose state changes
	flipAt     time.Time // from its scraped state to notAuthorized or close
	families   map[string][]historySeries
}

type historySeries struct {
	labels string
	value  func(at time.Time, minute int) float64
}

// add adds the series of a scrape, with extra target labels, evolving
// them over the history: counters grow by their scraped value every
// scrape, timestamps follow the time, gauges stay.
func (h *history) add(mfs map[string]*dto.MetricFamily, target map[string]string) {
	if h.families == nil {
		h.families = map[string][]historySeries{}
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for k, v := range target {
				labels[k] = v
			}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			name := mf.GetName()
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				h.series(name, labels, counter(m.GetCounter().GetValue()))
			case dto.MetricType_SUMMARY:
				h.series(name+"_sum", labels, counter(m.GetSummary().GetSampleSum()))
				h.series(name+"_count", labels, counter(float64(m.GetSummary().GetSampleCount())))
			case dto.MetricType_HISTOGRAM:
				for _, b := range m.GetHistogram().GetBucket() {
					if math.IsInf(b.GetUpperBound(), 1) {
						continue // the parser may keep it; it is written below
					}
					le := map[string]string{"le": fmt.Sprint(b.GetUpperBound())}
					for k, v := range labels {
						le[k] = v
					}
					h.series(name+"_bucket", le, counter(float64(b.GetCumulativeCount())))
				}
				inf := map[string]string{"le": "+Inf"}
				for k, v := range labels {
					inf[k] = v
				}
				h.series(name+"_bucket", inf, counter(float64(m.GetHistogram().GetSampleCount())))
				h.series(name+"_sum", labels, counter(m.GetHistogram().GetSampleSum()))
				h.series(name+"_count", labels, counter(float64(m.GetHistogram().GetSampleCount())))
			default:
				h.series(name, labels, h.gauge(name, labels, m.GetGauge().GetValue()+m.GetUntyped().GetValue()))
			}
		}
	}
}

func counter(v float64) func(time.Time, int) float64 {
	return func(_ time.Time, minute int) float64 { return v * float64(minute+1) }
}

func (h *history) gauge(name string, labels map[string]string, v float64) func(time.Time, int) float64 {
	flips := labels["name"] == h.flip
	switch {
	case name == "whatsapp_instance_state_since_timestamp_seconds":
		return func(at time.Time, _ int) float64 {
			if flips && !at.Before(h.flipAt) {
				return float64(h.flipAt.Unix())
			}
			return float64(h.start.Unix())
		}
	case strings.HasSuffix(name, "_timestamp_seconds") && v > 0:
		return func(at time.Time, _ int) float64 { return float64(at.Unix()) - 1 }
	case name == "whatsapp_instance_state" && flips:
		after := 0.0
		if labels["state"] == "notAuthorized" || labels["state"] == "close" {
			after = 1
		}
		return func(at time.Time, _ int) float64 {
			if !at.Before(h.flipAt) {
				return after
			}
			return v
		}
	}
	return func(time.Time, int) float64 { return v }
}

func (h *history) series(name string, labels map[string]string, value func(time.Time, int) float64) {
	var pairs []string
	for k, v := range labels {
		pairs = append(pairs, fmt.Sprintf("%s=%q", k, v))
	}
	slices.Sort(pairs)
	h.families[name] = append(h.families[name], historySeries{labels: "{" + strings.Join(pairs, ",") + "}", value: value})
}

func (h *history) count() int {
	n := 0
	for _, s := range h.families {
		n += len(s)
	}
	return n
}

func (h *history) write(t *testing.T, file string) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	var names []string
	for name := range h.families {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		// Every series as unknown: PromQL does not read types, and the
		// sample names stay what the exporter exposes.
		fmt.Fprintf(w, "# TYPE %s unknown\n", name)
		for _, s := range h.families[name] {
			minute := 0
			for at := h.start; !at.After(h.end); at = at.Add(historyScrape) {
				fmt.Fprintf(w, "%s%s %v %d\n", name, s.labels, s.value(at, minute), at.Unix())
				minute++
			}
		}
	}
	fmt.Fprintln(w, "# EOF")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
