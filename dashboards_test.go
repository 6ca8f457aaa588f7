package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

func TestDashboardMetricsExist(t *testing.T) {
	simURL := startSimulator(t, simulator.Demo())
	e := startExporter(t, configSource{inline: []byte(simulator.DemoConfig(simURL))}, 0)
	// A family is exposed when its TYPE line is: the failures by reason
	// have no sample before the first failure.
	text := scrape(t, e.url, nil)
	used := 0
	for name, q := range testtool.DashboardQueries(t, "dashboards") {
		for _, m := range regexp.MustCompile(`\bwhatsapp_\w+`).FindAllString(q, -1) {
			used++
			family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
			if !strings.Contains(text, "\n# TYPE "+family+" ") {
				t.Errorf("%s uses %s, which the exporter does not expose", name, m)
			}
		}
	}
	if used < 10 {
		t.Fatalf("only %d metric uses found in the dashboards", used)
	}
}

// TestDashboardQueriesReturnData has a real Prometheus scrape the exporter
// running against the demo simulator, in each mode, with the alerting
// rules loaded, and runs every dashboard query with its variables
// substituted.
func TestDashboardQueriesReturnData(t *testing.T) {
	t.Parallel() // minutes of waiting for Prometheus and refreshes; run beside the others
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	for _, mode := range scrapeModes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			simURL := startSimulator(t, simulator.Demo())
			e := startExporter(t, configSource{inline: []byte(simulator.DemoConfig(simURL))}, 0)
			prom := startPrometheus(t, scrapeConfig(mode, strings.TrimPrefix(e.url, "http://")), "")
			// The demo's instance demo-sales starts notAuthorized, so an
			// alert fires once the shortened for has passed; rates need a
			// few scrapes.
			prom.waitQuery(t, 60*time.Second, `ALERTS{alertname=~"WhatsApp.+", alertstate="firing"}`, func(v []sample) bool { return len(v) > 0 })
			checkDashboardQueries(t, prom)
		})
	}
}

func checkDashboardQueries(t *testing.T, prom *promServer) {
	queries := testtool.DashboardQueries(t, "dashboards")
	selections := []map[string]string{{"$job": ".*", "$provider": ".*", "$name": ".*"}} // All
	for _, p := range simulator.Providers() {
		selections = append(selections, map[string]string{"$job": "whatsapp", "$provider": p.Name, "$name": p.Demo[0].Name})
	}
	for _, vars := range selections {
		vars["$__rate_interval"] = "15s"
		for name, q := range queries {
			for k, v := range vars {
				q = strings.ReplaceAll(q, k, v)
			}
			if strings.Contains(q, "$") {
				t.Errorf("%s: variable left after substitution: %s", name, q)
				continue
			}
			v, err := prom.query(q)
			n := len(v)
			// Failure panels may rightly be empty while nothing failed (a
			// reason appears with its first failure), alert panels for a
			// healthy selection; every other panel must show data.
			failures := strings.HasPrefix(q, "sum by (reason)") || strings.HasPrefix(q, "sum by (name, reason)")
			switch {
			case err != nil:
				t.Errorf("%s with %v: Prometheus rejects the query: %v\n%s", name, vars, err, q)
			case n == 0 && failures:
			case n == 0 && !strings.Contains(q, "ALERTS"):
				t.Errorf("%s with %v: no data\n%s", name, vars, q)
			case n == 0 && vars["$name"] == ".*":
				t.Errorf("%s: no data for all instances\n%s", name, q)
			}
		}
	}
}
