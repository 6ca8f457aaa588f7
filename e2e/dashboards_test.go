package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/grafana"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

func TestDashboardMetricsExist(t *testing.T) {
	simURL := exportertest.StartSimulator(t, simulator.Demo())
	e := exportertest.Start(t, exportertest.Inline(simulator.DemoConfig(simURL)), 0)
	// A family is exposed when its TYPE line is: the failures by reason
	// have no sample before the first failure.
	text := exportertest.Scrape(t, e.URL, nil)
	used := 0
	for _, q := range testtool.DashboardQueries(t, dashboardsDir) {
		for _, m := range regexp.MustCompile(`\bwhatsapp_\w+`).FindAllString(q.Target.Expr, -1) {
			used++
			family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
			// internal/remediation's families: its counters and the
			// instance's status appear with the first action, and the
			// demo configuration here has no remediation section.
			if strings.HasPrefix(family, "whatsapp_remediation_") {
				continue
			}
			if !strings.Contains(text, "\n# TYPE "+family+" ") {
				t.Errorf("%s uses %s, which the exporter does not expose", q.Name, m)
			}
		}
	}
	if used < 10 {
		t.Fatalf("only %d metric uses found in the dashboards", used)
	}
}

// TestDashboardsLive has a real Prometheus scrape the exporter running
// against the demo simulator, in each mode, with one and with two
// replicas in the job, and checks every panel: it has data, its counts
// count each instance once, its state codes are the instances' states, and
// its tables, after Grafana's transformations, have one full row per
// instance.
func TestDashboardsLive(t *testing.T) {
	t.Parallel() // a minute or two of waiting for Prometheus and refreshes; run beside the others
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	grafana.Require(t)
	for _, c := range []struct {
		mode     scrapeMode
		replicas int
	}{{singleEndpoint, 1}, {singleEndpoint, 2}, {multiTarget, 1}} {
		t.Run(fmt.Sprintf("%s/%d", c.mode, c.replicas), func(t *testing.T) {
			t.Parallel()
			simURL := exportertest.StartSimulator(t, simulator.Demo())
			var addrs []string
			for range c.replicas {
				e := exportertest.Start(t, exportertest.Inline(simulator.DemoConfig(simURL)), 0)
				addrs = append(addrs, strings.TrimPrefix(e.URL, "http://"))
			}
			cfg := scrapeConfig(c.mode, addrs[0])
			if c.mode == singleEndpoint {
				cfg = fmt.Sprintf("  - job_name: whatsapp\n    static_configs: [{targets: [%s]}]\n", quoteAll(addrs))
			}
			prom := startPrometheus(t, cfg, "")
			// The demo's instance demo-sales starts notAuthorized, so an
			// alert fires once the shortened for has passed; by then
			// every replica has been scraped a few times.
			prom.waitQuery(t, 90*time.Second, `ALERTS{alertname=~"WhatsApp.+", alertstate="firing"}`, func(v []sample) bool { return len(v) > 0 })
			// Every replica scraped: a table's instances are all there.
			prom.waitQuery(t, 30*time.Second, fmt.Sprintf(`count(up{job="whatsapp"} == 1) >= %d`, c.replicas), func(v []sample) bool { return len(v) == 1 })
			to := time.Now()
			for _, sel := range demoSelections() {
				// Prometheus holds a minute of data: too little for a range
				// query at the dashboards' one-minute minimum step. The
				// range queries are checked on hours of data in
				// TestDashboardsHistory.
				runs := runDashboards(t, prom, sel, grafana.DataSource{}, to.Add(-time.Hour), to, true)
				checkPanels(t, prom, sel, runs, to, demoMayBeEmpty(sel))
				checkDemoReasons(t, sel, runs)
			}
		})
	}
}
