package server_test

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/server"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

func TestEndToEndDemo(t *testing.T) {
	simURL := exportertest.StartSimulator(t, simulator.Demo())
	e := exportertest.Start(t, exportertest.Inline(simulator.DemoConfig(simURL)), time.Second)
	text := exportertest.Scrape(t, e.URL, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"10"}})
	mfs := exportertest.Parse(t, text)

	states := exportertest.CheckOneHot(t, mfs)
	providers := map[string]bool{}
	for _, m := range mfs["whatsapp_up"].GetMetric() {
		providers[exportertest.Label(m, "provider")] = true
	}
	if len(providers) != len(config.Providers()) {
		t.Errorf("the demo shows providers %v, want every provider: %v", providers, config.Providers())
	}
	// At start the demo instances report what their first step says.
	up := exportertest.UpValues(mfs)
	for _, p := range simulator.Providers() {
		for _, d := range p.Demo {
			wantState, wantUp := p.Reads(d.Steps[0].Behaviour)
			if states[d.Name] != wantState || (up[d.Name] == 1) != wantUp {
				t.Errorf("demo instance %s: state %q up %v, want %q %v", d.Name, states[d.Name], up[d.Name], wantState, wantUp)
			}
		}
	}
	// Nothing failed at start, and a failure reason appears with its
	// first failure. A call that timed out says the machine was busy
	// (the demo server answers at once), not that the demo is wrong.
	for _, m := range mfs["whatsapp_api_request_errors_total"].GetMetric() {
		if reason := exportertest.Label(m, "reason"); reason != "timeout" {
			t.Errorf("error series at demo start: %s %s reason %s, want none", exportertest.Label(m, "name"), exportertest.Label(m, "method"), reason)
		}
	}
	for _, name := range []string{
		"whatsapp_exporter_build_info", "whatsapp_exporter_config_last_reload_successful",
		"whatsapp_exporter_config_last_reload_success_timestamp_seconds",
		"whatsapp_api_request_duration_seconds", "whatsapp_provider_request_duration_seconds",
		"whatsapp_last_update_timestamp_seconds", "whatsapp_exporter_scrape_unrefreshed_instances",
		"whatsapp_exporter_instances", "whatsapp_exporter_calls_queued", "whatsapp_exporter_calls_in_flight",
	} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	if v := mfs["whatsapp_exporter_config_last_reload_successful"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("whatsapp_exporter_config_last_reload_successful = %v, want 1", v)
	}
	// The calls of this scrape are already counted in it.
	for _, m := range mfs["whatsapp_api_request_duration_seconds"].GetMetric() {
		if m.GetSummary().GetSampleCount() != 1 {
			t.Errorf("whatsapp_api_request_duration_seconds_count{name=%q} = %v after one scrape, want 1", exportertest.Label(m, "name"), m.GetSummary().GetSampleCount())
		}
	}
	if v := exportertest.Gauge(t, mfs, "whatsapp_exporter_scrape_unrefreshed_instances"); v != 0 {
		t.Errorf("whatsapp_exporter_scrape_unrefreshed_instances = %v, want 0", v)
	}
	exportertest.PromtoolCheckMetrics(t, text)
}

// faultSimulator has, for every provider, an instance in every state, one
// for every special answer and one for every fault, all with the same
// secret; it returns their configuration and what the exporter is to read
// from each.
func faultSimulator(t testing.TB, secret string) (string, map[string]reading) {
	sim := simulator.New()
	simURL := exportertest.StartSimulator(t, sim)
	var cfg strings.Builder
	cfg.WriteString("instances:\n")
	want := map[string]reading{}
	n := 0
	for _, p := range simulator.Providers() {
		add := func(name string, b simulator.Behaviour) {
			n++
			id := fmt.Sprint(1101000000 + n)
			sim.Set(p.Name, id, secret, b)
			// Short enough for the hanging instances to time out within
			// the scrape.
			cfg.WriteString(p.Config(simURL, name, id, secret, "timeout: 1s"))
			state, up := p.Reads(b)
			want[name] = reading{p.Name, state, up}
		}
		for _, s := range collector.ProviderStates(p.Name) {
			add(p.Name+"-state-"+s, simulator.Behaviour{State: s})
		}
		add(p.Name+"-unknown-value", simulator.Behaviour{State: "pendingPassword"})
		for k, sp := range p.Specials {
			add(fmt.Sprintf("%s-special-%d", p.Name, k), simulator.Behaviour{State: sp.State})
		}
		for _, f := range p.AllFaults() {
			add(p.Name+"-fault-"+string(f), simulator.Behaviour{Fault: f, RetryAfter: 30 * time.Second})
		}
	}
	return cfg.String(), want
}

// reading is what the exporter is to report for an instance.
type reading struct {
	provider, state string
	up              bool
}

// TestSimulatorKnowsEveryProvider: the simulator describes exactly the
// providers the exporter has, with the same states.
func TestSimulatorKnowsEveryProvider(t *testing.T) {
	var names []string
	for _, p := range simulator.Providers() {
		names = append(names, p.Name)
		states := slices.Sorted(slices.Values(p.States))
		if want := collector.ProviderStates(p.Name); !slices.Equal(states, want) {
			t.Errorf("simulator %s states %v, exporter %v", p.Name, states, want)
		}
	}
	if !slices.Equal(names, config.Providers()) {
		t.Errorf("simulated providers %v, exporter providers %v", names, config.Providers())
	}
}

func TestEndToEndEveryStateAndFault(t *testing.T) {
	cfg, want := faultSimulator(t, "e2e-token")
	e := exportertest.Start(t, exportertest.Inline(cfg), time.Second)
	// The hanging instances time out (1 s) within the scrape.
	text := exportertest.Scrape(t, e.URL, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"3"}})
	mfs := exportertest.Parse(t, text)
	states := exportertest.CheckOneHot(t, mfs)
	up := exportertest.UpValues(mfs)
	for name, w := range want {
		if states[name] != w.state || (up[name] == 1) != w.up {
			t.Errorf("instance %s: state %q up %v, want %q %v", name, states[name], up[name], w.state, w.up)
		}
	}
	exportertest.PromtoolCheckMetrics(t, text)
}

// TestScrapeTimeoutFromHeader: a scrape answers within the timeout
// Prometheus announces, with what it has; a call it could not wait for
// goes on to its own timeout and the next scrape reports it.
func TestScrapeTimeoutFromHeader(t *testing.T) {
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1", "tok", simulator.Behaviour{Fault: simulator.FaultHang})
	sim.Set(simulator.GreenAPI, "2", "tok", simulator.Behaviour{State: "authorized"})
	simURL := exportertest.StartSimulator(t, sim)
	cfg := fmt.Sprintf("instances:\n"+
		"  - {name: hung, provider: greenapi, api_url: %q, id_instance: 1, api_token: tok, timeout: 4s}\n"+
		"  - {name: fine, provider: greenapi, api_url: %q, id_instance: 2, api_token: tok, timeout: 4s}\n", simURL, simURL)
	e := exportertest.Start(t, exportertest.Inline(cfg), 0)
	// The client's own 30 s limit fails the test if the scrape does not
	// answer within Prometheus' 1 s.
	mfs := exportertest.Parse(t, exportertest.Scrape(t, e.URL, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"1"}}))
	up := exportertest.UpValues(mfs)
	if _, reported := up["hung"]; reported || up["fine"] != 1 {
		t.Fatalf("whatsapp_up = %v, want fine 1 and hung not yet reported", up)
	}
	if v := exportertest.Gauge(t, mfs, "whatsapp_exporter_scrape_unrefreshed_instances"); v != 1 {
		t.Errorf("whatsapp_exporter_scrape_unrefreshed_instances = %v, want 1", v)
	}
	// The hung call ends at its own 4 s, a timeout that later scrapes show.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		mfs = exportertest.Parse(t, exportertest.Scrape(t, e.URL, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"1"}}))
		if v, ok := exportertest.UpValues(mfs)["hung"]; ok {
			if v != 0 {
				t.Fatalf("whatsapp_up{name=hung} = %v, want 0", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hung instance's timeout never showed")
		}
	}
	errs := map[string]float64{}
	for _, m := range mfs["whatsapp_api_request_errors_total"].GetMetric() {
		if exportertest.Label(m, "name") == "hung" {
			errs[exportertest.Label(m, "reason")] = m.GetCounter().GetValue()
		}
	}
	if errs["timeout"] != 1 {
		t.Fatalf("hung instance errors %v, want one timeout", errs)
	}
}

// TestUnrefreshedIsLoggedOnce: instances a scrape could not refresh are
// said once in a while, with what to do, not per instance and scrape.
func TestUnrefreshedIsLoggedOnce(t *testing.T) {
	sim := simulator.New()
	cfg, _ := fleetConfig(t, sim, 3, simulator.Behaviour{State: "open", Latency: 3 * time.Second})
	e := exportertest.Start(t, exportertest.Inline(cfg), 0)
	for range 3 {
		mfs := exportertest.Parse(t, exportertest.Scrape(t, e.URL, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"0.5"}}))
		if v := exportertest.Gauge(t, mfs, "whatsapp_exporter_scrape_unrefreshed_instances"); v == 0 {
			t.Errorf("unrefreshed %v, want the slow instances", v)
		}
	}
	logs := e.Logs.String()
	if n := strings.Count(logs, "could not be refreshed"); n != 1 || !strings.Contains(logs, "--api.concurrency") || !strings.Contains(logs, "/probe") {
		t.Errorf("%d warnings about unrefreshed instances, want 1 naming --api.concurrency and /probe:\n%s", n, logs)
	}
}

func TestMetricsGzip(t *testing.T) {
	sim := simulator.New()
	cfg, _ := fleetConfig(t, sim, 2, simulator.Behaviour{State: "open"})
	e := exportertest.Start(t, exportertest.Inline(cfg), time.Minute)
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("headers %v", resp.Header)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	exportertest.CheckOneHot(t, exportertest.Parse(t, string(text)))
	exportertest.PromtoolCheckMetrics(t, string(text))
	for header, want := range map[string]bool{"gzip": true, "br, gzip;q=0.5": true, "gzip;q=0": false, "identity": false, "": false, "GZIP": true} {
		if got := server.AcceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", header, got, want)
		}
	}
}

// TestMaxRequests: scrapes beyond --web.max-requests are refused at once
// instead of piling up.
func TestMaxRequests(t *testing.T) {
	sim := simulator.New()
	cfg, _ := fleetConfig(t, sim, 1, simulator.Behaviour{State: "open", Latency: 2 * time.Second})
	e := exportertest.StartOptions(t, exportertest.Inline(cfg), server.Options{
		TimeoutOffset: 500 * time.Millisecond,
		MaxRequests:   2, // --web.max-requests=2
		Collector:     collector.Options{Concurrency: 32, UserAgent: "test"},
	})
	srv := e.URL
	var wg sync.WaitGroup
	codes := make(chan int, 6)
	for range 6 {
		wg.Go(func() {
			resp, err := http.Get(srv + "/metrics")
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusOK] < 1 || count[http.StatusServiceUnavailable] < 1 || count[http.StatusOK]+count[http.StatusServiceUnavailable] != 6 {
		t.Errorf("6 scrapes at once with --web.max-requests=2: %v, want some 200 and the rest 503", count)
	}
}

// BenchmarkScrape100 measures one scrape of 100 GREEN-API instances whose
// API answers in 50 ms, with no result sharing, through the HTTP handler.
// cpu-ms/scrape includes the in-process simulator's share.
func BenchmarkScrape100(b *testing.B) {
	sim := simulator.New()
	simURL := exportertest.StartSimulator(b, sim)
	var cfg strings.Builder
	cfg.WriteString("instances:\n")
	for i := range 100 {
		id := fmt.Sprint(1101000000 + i)
		sim.Set(simulator.GreenAPI, id, "tok", simulator.Behaviour{State: "authorized", Latency: 50 * time.Millisecond})
		fmt.Fprintf(&cfg, "  - {name: i%d, provider: greenapi, api_url: %q, id_instance: %s, api_token: tok}\n", i, simURL, id)
	}
	e := exportertest.Start(b, exportertest.Inline(cfg.String()), 0)
	exportertest.Scrape(b, e.URL, nil) // warm the connection pools
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	for range b.N {
		exportertest.Scrape(b, e.URL, nil)
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) / time.Duration(b.N)
	b.ReportMetric(float64(cpu)/float64(time.Millisecond), "cpu-ms/scrape")
}
