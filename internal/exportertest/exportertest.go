// Package exportertest runs the exporter for tests, in process (its real
// HTTP handler on loopback) or as its built binary, beside the provider
// simulator, and reads what it serves: the tests of internal/server, of
// package main (collector_test.go) and the end-to-end suites of e2e/ share
// it.
//
// It is apart from internal/testtool because it imports the exporter's
// packages, whose own tests import testtool.
package exportertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/server"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// Exporter is an exporter serving its real HTTP handler on loopback.
type Exporter struct {
	*server.Exporter
	// URL is where it serves, http://127.0.0.1:port.
	URL string
	// Logs holds its log, at debug level.
	Logs *testlog.Buffer
}

// Start serves an exporter with the configuration of src until the test
// ends; minInterval is --api.min-interval.
func Start(t testing.TB, src server.ConfigSource, minInterval time.Duration) *Exporter {
	t.Helper()
	return StartWith(t, src, collector.Options{Concurrency: 32, MinInterval: minInterval, UserAgent: "test"})
}

// StartWith is Start with the collector's options.
func StartWith(t testing.TB, src server.ConfigSource, opts collector.Options) *Exporter {
	t.Helper()
	return StartOptions(t, src, server.Options{
		TimeoutOffset: 500 * time.Millisecond,
		MaxRequests:   40,
		Collector:     opts,
	})
}

// StartOptions is Start with all the exporter's options.
func StartOptions(t testing.TB, src server.ConfigSource, opts server.Options) *Exporter {
	t.Helper()
	logger, logs := testlog.New()
	e := server.New(logger, src, opts)
	t.Cleanup(e.Close)
	if err := e.Reload(); err != nil {
		t.Fatalf("loading the configuration: %v", err)
	}
	h, err := e.Handler("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Exporter{Exporter: e, URL: srv.URL, Logs: logs}
}

// Inline is the source of a configuration held in memory.
func Inline(cfg string) server.ConfigSource { return server.ConfigSource{Inline: []byte(cfg)} }

// File is the source of a configuration file.
func File(path string) server.ConfigSource { return server.ConfigSource{File: path} }

// StartSimulator serves sim on loopback until the test ends and returns
// its URL.
func StartSimulator(t testing.TB, sim *simulator.Simulator) string {
	t.Helper()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return srv.URL
}

// PushNotifications has sim push its instances' changes to the
// notification receiver at baseURL, as the providers would, until the
// test ends, and waits for it to stop then; report (nil: none) hears of
// each delivery that failed.
func PushNotifications(t testing.TB, sim *simulator.Simulator, baseURL string, report func(error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sim.SendNotifications(ctx, baseURL, report)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// Get GETs rawURL with header and returns the status and the body.
func Get(t testing.TB, rawURL string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// FetchOK GETs rawURL and returns the body, failing the test unless the
// answer is 200.
func FetchOK(t testing.TB, rawURL string) string {
	t.Helper()
	code, body := Get(t, rawURL, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d\n%s", rawURL, code, body)
	}
	return body
}

// Post POSTs an empty body to rawURL and returns the status and the body.
func Post(t testing.TB, rawURL string) (int, string) {
	t.Helper()
	resp, err := http.Post(rawURL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Scrape GETs base's /metrics with header, failing unless the answer is
// 200.
func Scrape(t testing.TB, base string, header http.Header) string {
	t.Helper()
	code, body := Get(t, base+"/metrics", header)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: HTTP %d\n%s", code, body)
	}
	return body
}

// Parse parses the text exposition format.
func Parse(t testing.TB, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return mfs
}

// Label is the value of a metric's label, "" when it has none.
func Label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// CheckOneHot asserts that every instance has one series per state of its
// provider plus unknown, exactly one of them 1, and returns the states.
func CheckOneHot(t testing.TB, mfs map[string]*dto.MetricFamily) map[string]string {
	t.Helper()
	type key struct{ provider, name string }
	seen := map[key][]string{}
	current := map[string]string{}
	for _, m := range mfs["whatsapp_instance_state"].GetMetric() {
		k := key{Label(m, "provider"), Label(m, "name")}
		seen[k] = append(seen[k], Label(m, "state"))
		if m.GetGauge().GetValue() == 1 {
			if prev, dup := current[k.name]; dup {
				t.Errorf("instance %s: states %s and %s are both 1", k.name, prev, Label(m, "state"))
			}
			current[k.name] = Label(m, "state")
		} else if m.GetGauge().GetValue() != 0 {
			t.Errorf("instance %s: state %s has value %v", k.name, Label(m, "state"), m.GetGauge().GetValue())
		}
	}
	if len(seen) == 0 {
		t.Fatal("no whatsapp_instance_state series")
	}
	for k, states := range seen {
		want := append(collector.ProviderStates(k.provider), collector.StateUnknown)
		slices.Sort(want)
		slices.Sort(states)
		if !slices.Equal(states, want) {
			t.Errorf("instance %s: states %v, want %v", k.name, states, want)
		}
		if _, ok := current[k.name]; !ok {
			t.Errorf("instance %s: no state is 1", k.name)
		}
	}
	return current
}

// UpValues is whatsapp_up by instance name.
func UpValues(mfs map[string]*dto.MetricFamily) map[string]float64 {
	up := map[string]float64{}
	for _, m := range mfs["whatsapp_up"].GetMetric() {
		up[Label(m, "name")] = m.GetGauge().GetValue()
	}
	return up
}

// Gauge is the value of a metric with a single series, failing the test
// when it has none or more.
func Gauge(t testing.TB, mfs map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	if !ok || len(mf.GetMetric()) != 1 {
		t.Fatalf("metric %s missing", name)
	}
	return mf.GetMetric()[0].GetGauge().GetValue()
}

// PromtoolCheckMetrics runs promtool check metrics on an exposition and
// fails the test on any complaint.
func PromtoolCheckMetrics(t testing.TB, text string) {
	t.Helper()
	promtool := testtool.Require(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// SDTargets are the targets base's /sd gives, sorted.
func SDTargets(t testing.TB, base string) []string {
	t.Helper()
	code, body := Get(t, base+"/sd", nil)
	if code != http.StatusOK {
		t.Fatalf("/sd: HTTP %d", code)
	}
	var groups []struct {
		Targets []string `json:"targets"`
	}
	if err := json.Unmarshal([]byte(body), &groups); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range groups {
		out = append(out, g.Targets...)
	}
	slices.Sort(out)
	return out
}

// GrepLines are the lines of text that hold sub.
func GrepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
