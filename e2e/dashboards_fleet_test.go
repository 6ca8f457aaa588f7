package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/grafana"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// TestDashboardsFleet watches 1 000 simulated instances, five of them
// unwell, with two exporter replicas in the job: the overview's attention
// panels show exactly those five, and the dashboards stay readable (a few
// series per graph, whatever the fleet's size).
func TestDashboardsFleet(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	grafana.Require(t)
	const fleet = 1000
	// unwell are the instances not working: their state, and whether
	// their state requests work.
	unwell := map[string]struct {
		state string
		up    string
	}{
		"greenapi-7":   {"notAuthorized", "1"},
		"greenapi-42":  {"yellowCard", "1"},
		"greenapi-77":  {"blocked", "1"},
		"wachat-100":   {"close", "1"},
		"evolution-50": {"connecting", "1"},
		"greenapi-150": {"unknown", "0"}, // answers HTTP 500
	}
	sim := simulator.New()
	simURL := exportertest.StartSimulator(t, sim)
	var cfg strings.Builder
	cfg.WriteString("instances:\n")
	// Meta's numbers are paced by its request budget (poll_interval, 20 s
	// at least), not polled at each 5 s scrape as these are: the fleet is
	// the providers polled per scrape. Meta's panels are checked on the
	// demo's WABA (TestDashboardsLive).
	providers := slices.DeleteFunc(simulator.Providers(), func(p *simulator.Provider) bool { return p.Name == simulator.Meta })
	for i := range fleet {
		p := providers[i%len(providers)]
		name := fmt.Sprintf("%s-%d", p.Name, i/len(providers))
		id := fmt.Sprint(1104000000 + i)
		b := simulator.Behaviour{State: workingState(p)}
		if u, ok := unwell[name]; ok {
			b = simulator.Behaviour{State: u.state}
			if u.up == "0" {
				b = simulator.Behaviour{Fault: simulator.FaultServerError}
			}
		}
		sim.Set(p.Name, id, "fleet-secret-"+id, b)
		cfg.WriteString(p.Config(simURL, name, id, "fleet-secret-"+id))
	}
	var addrs []string
	for range 2 {
		e := exportertest.Start(t, exportertest.Inline(cfg.String()), 5*time.Second)
		addrs = append(addrs, strings.TrimPrefix(e.URL, "http://"))
	}
	prom := startPrometheus(t, fmt.Sprintf(`  - job_name: whatsapp
    scrape_interval: 5s
    scrape_timeout: 4s
    static_configs: [{targets: [%s]}]
`, quoteAll(addrs)), "")
	prom.waitQuery(t, 60*time.Second, `count(max by (provider, name) (whatsapp_up{job="whatsapp"}) >= 0) == 1000 and on () count(up{job="whatsapp"} == 1) == 2`,
		func(v []sample) bool { return len(v) == 1 })
	// Rates and increases need two scrapes of each replica.
	prom.waitQuery(t, 60*time.Second, `count(rate(whatsapp_api_request_duration_seconds_count{job="whatsapp"}[1m]) > 0) >= 2000 and on () count(increase(whatsapp_api_request_errors_total{job="whatsapp"}[1m]) > 0) == 2`,
		func(v []sample) bool { return len(v) == 1 })
	at := time.Now()
	sel := selection{"whatsapp", ".*", "greenapi-7"}
	runs := runDashboards(t, prom, sel, grafana.DataSource{ScrapeInterval: 5 * time.Second}, at.Add(-time.Hour), at, true)
	// No alerting rules, no accounts, no disconnect reasons (Evolution
	// API tells them in notifications and listings; the fleet is polled);
	// greenapi-7's calls work.
	checkPanels(t, prom, sel, runs, at, func(expr string) bool {
		failures := strings.Contains(expr, "errors_total") && !strings.Contains(expr, "duration")
		return strings.Contains(expr, "ALERTS") || strings.Contains(expr, "whatsapp_account_") || (failures && strings.Contains(expr, "name=~")) ||
			strings.Contains(expr, "whatsapp_instance_disconnect_reason") ||
			queueMayBeEmpty(sel, expr, nil) || // the fleet reads no queue; the demo does
			strings.Contains(expr, "whatsapp_meta_") // nor has it Meta's numbers
	})

	panel := func(uid, title string) []panelRun {
		var out []panelRun
		for _, r := range runs {
			if r.q.Dashboard.UID == uid && r.q.Panel != nil && r.q.Panel.Title == title {
				out = append(out, r)
			}
		}
		if len(out) == 0 {
			t.Fatalf("no panel %q in %s", title, uid)
		}
		return out
	}
	value := func(r panelRun) string {
		if len(r.vector) != 1 {
			t.Fatalf("%s: %d values, want one: %v", r.q.Name, len(r.vector), r.vector)
		}
		return r.vector[0].Value[1].(string)
	}
	if got := value(panel("whatsapp-overview", "Not working")[0]); got != strconv.Itoa(len(unwell)) {
		t.Errorf("Not working shows %s, want %d", got, len(unwell))
	}
	if got := value(panel("whatsapp-overview", "State requests failing")[0]); got != "1" {
		t.Errorf("State requests failing shows %s, want 1", got)
	}
	if got := value(panel("whatsapp-overview", "Banned numbers")[0]); got != "1" {
		t.Errorf("Banned numbers shows %s, want 1 (greenapi-77, blocked)", got)
	}
	if got := value(panel("whatsapp-overview", "Instances")[0]); got != strconv.Itoa(fleet) {
		t.Errorf("Instances shows %s, want %d", got, fleet)
	}

	// The table of instances not working, as Grafana draws it.
	nw := panel("whatsapp-overview", "Instances not working")
	frames := grafana.Transform(t, panelData(nw))[0]
	if len(frames) != 1 {
		t.Fatalf("Instances not working: %d frames", len(frames))
	}
	rows := frames[0].Rows()
	var shown []string
	for _, row := range rows {
		name := fmt.Sprint(row["name"])
		shown = append(shown, name)
		u := unwell[name]
		if row["state"] != u.state || fmt.Sprint(row["Value #C"]) != u.up {
			t.Errorf("Instances not working: %s shows state %v, state requests %v; want %s, %s", name, row["state"], row["Value #C"], u.state, u.up)
		}
		if f, ok := row["Value #B"].(float64); !ok || f < 0 || f > 600 {
			t.Errorf("Instances not working: %s not working for %v", name, row["Value #B"])
		}
	}
	slices.Sort(shown)
	if want := slices.Sorted(maps.Keys(unwell)); !slices.Equal(shown, want) {
		t.Errorf("Instances not working shows %v, want %v", shown, want)
	}

	failing := panel("whatsapp-overview", "Failing API calls")[0]
	if got := keys(failing.vector, "name", "reason"); !slices.Equal(got, []string{"name=greenapi-150,reason=server_error"}) {
		t.Errorf("Failing API calls shows %v", got)
	}

	// Readable at this size: graphs and stats draw a few series, not one
	// per instance; only the table of all instances lists them all.
	for _, r := range runs {
		if r.q.Panel == nil || r.q.Panel.Type == "table" {
			continue
		}
		if n := len(r.vector); n > 12 {
			t.Errorf("%s: %d series with %d instances; a panel for the fleet should aggregate", r.q.Name, n, fleet)
		}
	}
	all := panel("whatsapp-overview", "All instances")
	if n := len(all[0].vector); n != fleet {
		t.Errorf("All instances lists %d, want %d", n, fleet)
	}
}
