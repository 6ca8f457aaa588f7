package e2e

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

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/grafana"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
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

// scrapeConfig is the scrape configuration of docs/fleets.md for a mode: job
// whatsapp, and in the multi-target mode job whatsapp-exporter for the
// exporter's own metrics.
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
  - job_name: whatsapp-exporter
    metrics_path: /exporter-metrics
    static_configs: [{targets: [%q]}]
`, exporter, exporter, exporter)
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
	return startPrometheusOn(t, "", scrapeConfigs, alertmanager)
}

// startPrometheusOn is startPrometheus on the TSDB in dataDir, a new one
// when empty.
func startPrometheusOn(t *testing.T, dataDir, scrapeConfigs, alertmanager string) *promServer {
	t.Helper()
	return startPrometheusWith(t, dataDir, 2, scrapeConfigs, alertmanager)
}

// startPrometheusScaled is startPrometheus with the shipped rules' minute
// made perMinute seconds rather than 2. The remediation's tests need it:
// the fixed latencies between an alert firing and its effect being
// evaluated (Alertmanager's group_wait, the provider's one request a
// second, a scrape, an evaluation: 3 to 6 seconds on a loaded machine) do
// not shrink with the rules, and at 2 seconds a minute they eat most of
// the 5 minutes the rules leave between the request to reboot and the
// page for a reboot that did not come.
func startPrometheusScaled(t *testing.T, perMinute int, scrapeConfigs, alertmanager string) *promServer {
	t.Helper()
	return startPrometheusWith(t, "", perMinute, scrapeConfigs, alertmanager)
}

// startPrometheusWith is startPrometheusOn with a minute of the rules made
// perMinute seconds.
func startPrometheusWith(t *testing.T, dataDir string, perMinute int, scrapeConfigs, alertmanager string) *promServer {
	t.Helper()
	prometheus := testtool.Require(t, "prometheus")
	dir := t.TempDir()
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n"
	if alertmanager != "" {
		cfg += fmt.Sprintf("alerting:\n  alertmanagers:\n    - static_configs: [{targets: [%q]}]\n", alertmanager)
	}
	cfg += "scrape_configs:\n" + scrapeConfigs
	for name, content := range map[string]string{"rules.yml": testtool.ScaleDurations(string(rules), perMinute), "prometheus.yml": cfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := testtool.FreeAddr(t)
	logs := testtool.StartProcess(t, addr, "/-/ready", prometheus,
		"--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+dataDir,
		"--web.listen-address="+addr, "--rules.alert.resend-delay=1s")
	return &promServer{addr: addr, logs: logs}
}

// sample is one element of an instant vector.
type sample = grafana.Sample

// query runs an instant query now.
func (p *promServer) query(q string) ([]sample, error) {
	var v []sample
	err := p.api("/api/v1/query", url.Values{"query": {q}}, "vector", &v)
	return v, err
}

// queryAt runs an instant query at a time.
func (p *promServer) queryAt(q string, at time.Time) ([]sample, error) {
	var v []sample
	err := p.api("/api/v1/query", url.Values{"query": {q}, "time": {formatTime(at)}}, "vector", &v)
	return v, err
}

// series is an element of a range query's matrix.
type series struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}

// queryRange runs a range query.
func (p *promServer) queryRange(q string, start, end time.Time, step time.Duration) ([]series, error) {
	var m []series
	err := p.api("/api/v1/query_range", url.Values{
		"query": {q}, "start": {formatTime(start)}, "end": {formatTime(end)}, "step": {fmt.Sprint(step.Seconds())},
	}, "matrix", &m)
	return m, err
}

func formatTime(t time.Time) string {
	return fmt.Sprintf("%.3f", float64(t.UnixMilli())/1000)
}

// api calls Prometheus's HTTP API and decodes a result of the given type.
func (p *promServer) api(path string, params url.Values, resultType string, result any) error {
	resp, err := http.PostForm("http://"+p.addr+path, params)
	if err != nil {
		return err
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
		return err
	}
	if r.Status != "success" {
		return fmt.Errorf("%s", r.Error)
	}
	if r.Data.ResultType != resultType {
		return fmt.Errorf("result type %s, want %s", r.Data.ResultType, resultType)
	}
	return json.Unmarshal(r.Data.Result, result)
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

// waitScrapes waits until the simulator's GREEN-API instance id has
// been called twice: Prometheus scrapes the exporter that watches it.
func (p *promServer) waitScrapes(t *testing.T, sim *simulator.Simulator, id string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); sim.Calls(simulator.GreenAPI, id) < 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus does not scrape the exporter:\n%s", p.logs)
		}
	}
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
