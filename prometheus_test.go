package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// A real Prometheus for the end-to-end tests, scraping the exporter in
// either mode with the shipped rules, durations shortened.

// scrapeMode is how Prometheus scrapes the exporter.
type scrapeMode string

const (
	singleEndpoint scrapeMode = "single-endpoint" // /metrics, every instance
	multiTarget    scrapeMode = "multi-target"    // /sd and /probe, one target per instance
)

var scrapeModes = []scrapeMode{singleEndpoint, multiTarget}

// scrapeConfig is the scrape job of the README for a mode, job whatsapp,
// at a 1 s interval.
func scrapeConfig(mode scrapeMode, exporter string) string {
	if mode == singleEndpoint {
		return fmt.Sprintf(`  - job_name: whatsapp
    static_configs: [{targets: [%q]}]
`, exporter)
	}
	return fmt.Sprintf(`  - job_name: whatsapp
    metrics_path: /probe
    http_sd_configs:
      - url: http://%s/sd
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: %q
`, exporter, exporter)
}

type promServer struct {
	addr string
	logs *testlog.Buffer
}

// startPrometheus runs Prometheus with the shipped rules (durations
// shortened) and the given scrape configs; alertmanager, if not empty, is
// the address alerts go to.
func startPrometheus(t *testing.T, scrapeConfigs, alertmanager string) *promServer {
	t.Helper()
	prometheus := testtool.Require(t, "prometheus")
	dir := t.TempDir()
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n"
	if alertmanager != "" {
		cfg += fmt.Sprintf("alerting:\n  alertmanagers:\n    - static_configs: [{targets: [%q]}]\n", alertmanager)
	}
	cfg += "scrape_configs:\n" + scrapeConfigs
	for name, content := range map[string]string{"rules.yml": testtool.ShortenDurations(string(rules)), "prometheus.yml": cfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := testtool.FreeAddr(t)
	logs := testtool.StartProcess(t, addr, "/-/ready", prometheus,
		"--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--rules.alert.resend-delay=1s")
	return &promServer{addr: addr, logs: logs}
}

// sample is one element of an instant vector.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs an instant query.
func (p *promServer) query(q string) ([]sample, error) {
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s", r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s", r.Data.ResultType)
	}
	var v []sample
	err = json.Unmarshal(r.Data.Result, &v)
	return v, err
}

// keys renders samples as sorted "label=value,..." strings of the named
// labels.
func keys(samples []sample, labels ...string) []string {
	var out []string
	for _, s := range samples {
		var parts []string
		for _, l := range labels {
			parts = append(parts, l+"="+s.Metric[l])
		}
		out = append(out, strings.Join(parts, ","))
	}
	slices.Sort(out)
	return out
}

// waitQuery polls q until ok accepts its result, failing after limit.
func (p *promServer) waitQuery(t *testing.T, limit time.Duration, q string, ok func([]sample) bool) []sample {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(250 * time.Millisecond) {
		v, err := p.query(q)
		if err == nil && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v %v\n%s", q, v, err, p.logs)
		}
	}
}
