package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
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
// running against the demo simulator, with the alerting rules loaded, and
// runs every dashboard query with its variables substituted.
func TestDashboardQueriesReturnData(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	prometheus := testtool.Require(t, "prometheus")
	simURL := startSimulator(t, simulator.Demo())
	e := startExporter(t, configSource{inline: []byte(simulator.DemoConfig(simURL))}, 0)

	dir := t.TempDir()
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	promCfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: whatsapp
    static_configs: [{targets: [%q]}]
`, strings.TrimPrefix(e.url, "http://"))
	for name, content := range map[string]string{"rules.yml": testtool.ShortenDurations(string(rules)), "prometheus.yml": promCfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := testtool.FreeAddr(t)
	logs := testtool.StartProcess(t, addr, "/-/ready", prometheus,
		"--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)

	query := func(q string) (int, error) {
		resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return 0, err
		}
		if r.Status != "success" {
			return 0, fmt.Errorf("%s", r.Error)
		}
		return len(r.Data.Result), nil
	}
	// The demo's instance demo-sales starts notAuthorized, so an alert fires
	// once the shortened for has passed; rates need a few scrapes.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		n, err := query(`ALERTS{alertname=~"WhatsApp.+", alertstate="firing"}`)
		if err == nil && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no WhatsApp alert fired: %v\n%s", err, logs)
		}
	}

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
			n, err := query(q)
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
