package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/grafana"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// TestSingleFailureCounted: an instance that fails once, with a reason it
// never failed with before, is seen by a real Prometheus.
// whatsapp_api_request_errors_total{reason} appears with that failure, at
// 1, so increase() of it is 0: the failure is lost to it.
// whatsapp_api_request_failures_total was there at 0 before, so increase()
// counts it; the overview's "Failing API calls" table shows it with its
// reason, and the reason's alert (WhatsAppApiRateLimited) starts at it.
func TestSingleFailureCounted(t *testing.T) {
	t.Parallel() // seconds of waiting for Prometheus's scrapes
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	const id, secret = "1105000001", "e2e-once-secret"
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, id, secret, simulator.Behaviour{State: "authorized"})
	simURL := exportertest.StartSimulator(t, sim)
	e := exportertest.Start(t, exportertest.Inline("instances:\n"+
		simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "once", id, secret)), 0)
	prom := startPrometheus(t, scrapeConfig(singleEndpoint, strings.TrimPrefix(e.URL, "http://")), "")
	some := func(v []sample) bool { return len(v) > 0 }

	failures := `whatsapp_api_request_failures_total{job="whatsapp", name="once", method="getStateInstance"}`
	byReason := `whatsapp_api_request_errors_total{job="whatsapp", name="once", method="getStateInstance", reason="rate_limited"}`
	// Prometheus has seen the instance working, without failures.
	prom.waitQuery(t, 60*time.Second, `count_over_time(`+failures+`[5m]) >= 3 and `+failures+` == 0`, some)

	// One failure: a 429 whose Retry-After holds the instance's calls
	// (up to 5 minutes), so that no other call follows it.
	sim.Set(simulator.GreenAPI, id, secret, simulator.Behaviour{Fault: simulator.FaultRateLimited, RetryAfter: time.Hour})
	prom.waitQuery(t, 60*time.Second, `count_over_time(`+byReason+`[5m]) >= 3`, some)
	prom.waitQuery(t, 60*time.Second, `count_over_time(ALERTS{alertname="WhatsAppApiRateLimited", name="once"}[5m]) > 0`, some)
	at := time.Now()

	value := func(q string) (float64, bool) {
		t.Helper()
		v := mustQueryAt(t, prom, q, at)
		if len(v) == 0 {
			return 0, false
		}
		if len(v) > 1 {
			t.Fatalf("%s: %d series, want one: %v", q, len(v), v)
		}
		f, err := strconv.ParseFloat(v[0].Value[1].(string), 64)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return f, true
	}
	// Exactly one failure happened, and both counters hold it.
	for _, q := range []string{failures, byReason} {
		if v, ok := value(q); v != 1 || !ok {
			t.Fatalf("%s = %v (present %v), want 1: the test is of a single failure", q, v, ok)
		}
	}
	if v, ok := value(`increase(` + failures + `[5m])`); !ok || v < 1 || v >= 1.5 {
		t.Errorf("increase(whatsapp_api_request_failures_total[5m]) = %v (present %v), want the failure, 1 extrapolated", v, ok)
	}
	// What the by-reason counter alone shows: nothing, which is why the
	// dashboards and alerts do not count failures with increase() of it.
	if v, _ := value(`increase(` + byReason + `[5m])`); v != 0 {
		t.Errorf("increase(whatsapp_api_request_errors_total[5m]) = %v: a series first seen at 1 was expected to show no increase; "+
			"if Prometheus counts it now, docs/metrics.md#counting-every-failure is to be told", v)
	}

	// The overview's table of failing calls, as Grafana queries it over
	// the last hour.
	runs := runDashboards(t, prom, selection{"whatsapp", ".*", "once"}, grafana.DataSource{ScrapeInterval: time.Second}, at.Add(-time.Hour), at, true)
	found := false
	for _, r := range runs {
		if r.q.Dashboard.UID != "whatsapp-overview" || r.q.Panel == nil || r.q.Panel.Title != "Failing API calls" {
			continue
		}
		found = true
		if r.err != nil {
			t.Fatalf("%s: %v", r.q.Name, r.err)
		}
		if got := keys(r.vector, "name", "reason"); len(got) != 1 || got[0] != "name=once,reason=rate_limited" || r.vector[0].Value[1] != "1" {
			t.Errorf("Failing API calls shows %v, want the one rate_limited failure of once", r.vector)
		}
	}
	if !found {
		t.Fatal("no panel Failing API calls in the overview")
	}
}
