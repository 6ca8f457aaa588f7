package main

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// fleetConfig serves n simulated instances per provider and returns their
// configuration, each with a secret that must never be shown.
func fleetConfig(t *testing.T, sim *simulator.Simulator, n int, b simulator.Behaviour) (string, []string) {
	t.Helper()
	simURL := startSimulator(t, sim)
	var cfg strings.Builder
	cfg.WriteString("instances:\n")
	var names []string
	for _, p := range simulator.Providers() {
		for i := range n {
			name := fmt.Sprintf("%s-%d", p.Name, i)
			id := fmt.Sprint(1101000000 + i)
			sim.Set(p.Name, id, "fleet-secret-"+id, b)
			cfg.WriteString(p.Config(simURL, name, id, "fleet-secret-"+id))
			names = append(names, name)
		}
	}
	return cfg.String(), names
}

func TestProbe(t *testing.T) {
	sim := simulator.New()
	cfg, names := fleetConfig(t, sim, 2, simulator.Behaviour{State: "connecting"})
	sim.Set(simulator.GreenAPI, "1101000000", "fleet-secret-1101000000", simulator.Behaviour{State: "blocked"})
	e := startExporter(t, configSource{inline: []byte(cfg)}, time.Minute)

	code, body := get(t, e.url+"/probe?target=greenapi-0", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"5"}})
	if code != http.StatusOK {
		t.Fatalf("/probe?target=greenapi-0: HTTP %d\n%s", code, body)
	}
	mfs := parse(t, body)
	if states := checkOneHot(t, mfs); len(states) != 1 || states["greenapi-0"] != "blocked" {
		t.Errorf("/probe answered for %v, want greenapi-0 blocked only", states)
	}
	for _, own := range []string{"go_goroutines", "whatsapp_exporter_build_info"} {
		if _, ok := mfs[own]; ok {
			t.Errorf("/probe holds the exporter's own %s; it belongs to /metrics", own)
		}
	}
	// The exporter's own metrics alone, without a call.
	calls := sim.Calls(simulator.Wachat, "1101000001")
	code, body = get(t, e.url+"/exporter-metrics", nil)
	own := parse(t, body)
	if _, ok := own["whatsapp_exporter_build_info"]; code != http.StatusOK || !ok {
		t.Errorf("/exporter-metrics: HTTP %d without build info:\n%s", code, body)
	}
	if _, ok := own["whatsapp_up"]; ok || sim.Calls(simulator.Wachat, "1101000001") != calls {
		t.Errorf("/exporter-metrics shows or calls instances")
	}
	promtoolCheckMetrics(t, body)
	promtoolCheckMetrics(t, body)
	if n := sim.Calls(simulator.GreenAPI, "1101000001"); n != 0 {
		t.Errorf("probing one instance called another %d times", n)
	}

	for _, tc := range []struct{ query, want string }{
		{"", "target parameter is missing"},
		{"?target=", "target parameter is missing"},
		{"?target=nope", `no instance named "nope"`},
		{"?target=" + url.QueryEscape("http://evil.example/"), "no instance named"},
		{"?target=" + url.QueryEscape("fleet-secret-1101000000"), "no instance named"},
	} {
		code, body := get(t, e.url+"/probe"+tc.query, nil)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("/probe%s: HTTP %d %q, want 400 with %q", tc.query, code, body, tc.want)
		}
	}
	// Every configured instance can be probed.
	for _, name := range names {
		if code, body := get(t, e.url+"/probe?target="+url.QueryEscape(name), nil); code != http.StatusOK || !strings.Contains(body, `name="`+name+`"`) {
			t.Errorf("/probe?target=%s: HTTP %d\n%s", name, code, body)
		}
	}
}

func TestServiceDiscovery(t *testing.T) {
	sim := simulator.New()
	cfg, names := fleetConfig(t, sim, 3, simulator.Behaviour{State: "open"})
	e := startExporter(t, configSource{inline: []byte(cfg)}, time.Minute)
	code, body := get(t, e.url+"/sd", nil)
	if code != http.StatusOK {
		t.Fatalf("/sd: HTTP %d", code)
	}
	var groups []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(body), &groups); err != nil {
		t.Fatalf("/sd is not HTTP SD JSON: %v\n%s", err, body)
	}
	var got []string
	for _, g := range groups {
		p := g.Labels["__meta_whatsapp_provider"]
		if len(g.Labels) != 1 || p == "" {
			t.Errorf("group labels %v, want only __meta_whatsapp_provider", g.Labels)
		}
		for _, target := range g.Targets {
			if !strings.HasPrefix(target, p+"-") {
				t.Errorf("target %s in the group of provider %s", target, p)
			}
		}
		got = append(got, g.Targets...)
	}
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("/sd targets %v, want %v", got, names)
	}
	if strings.Contains(body, "fleet-secret") || strings.Contains(body, "http") {
		t.Errorf("/sd holds a secret or a URL:\n%s", body)
	}
	// No call is made to answer /sd.
	for _, p := range simulator.Providers() {
		if n := sim.Calls(p.Name, "1101000000"); n != 0 {
			t.Errorf("/sd called %s %d times", p.Name, n)
		}
	}
}

// TestMaxRequests: scrapes beyond --web.max-requests are refused at once
// instead of piling up.
func TestMaxRequests(t *testing.T) {
	sim := simulator.New()
	cfg, _ := fleetConfig(t, sim, 1, simulator.Behaviour{State: "open", Latency: 2 * time.Second})
	e := startExporter(t, configSource{inline: []byte(cfg)}, 0)
	h, err := (&exporter{logger: e.logger, src: e.src, opts: exporterOptions{maxRequests: 2, timeoutOffset: e.opts.timeoutOffset}, collector: e.collector, registry: e.registry}).handler("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	srv := hs.URL
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

func TestMetricsGzip(t *testing.T) {
	sim := simulator.New()
	cfg, _ := fleetConfig(t, sim, 2, simulator.Behaviour{State: "open"})
	e := startExporter(t, configSource{inline: []byte(cfg)}, time.Minute)
	req, _ := http.NewRequest(http.MethodGet, e.url+"/metrics", nil)
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
	checkOneHot(t, parse(t, string(text)))
	promtoolCheckMetrics(t, string(text))
	for header, want := range map[string]bool{"gzip": true, "br, gzip;q=0.5": true, "gzip;q=0": false, "identity": false, "": false, "GZIP": true} {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", header, got, want)
		}
	}
}

// TestMultiTargetModeEndToEnd: a real Prometheus discovers one target per
// instance from /sd and scrapes /probe for each; another scrapes /metrics.
// The shipped recording rules and alerts see the same states in both.
func TestMultiTargetModeEndToEnd(t *testing.T) {
	t.Parallel() // minutes of waiting for Prometheus and refreshes; run beside the others
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	sim := simulator.New()
	simURL := startSimulator(t, sim)
	var cfg strings.Builder
	cfg.WriteString("instances:\n")
	for _, in := range []struct {
		provider, name, id string
		b                  simulator.Behaviour
	}{
		{simulator.GreenAPI, "shop", "1", simulator.Behaviour{State: "blocked"}},
		{simulator.GreenAPI, "sales", "2", simulator.Behaviour{State: "authorized"}},
		{simulator.GreenAPI, "rejected", "3", simulator.Behaviour{Fault: simulator.FaultUnauthorized}},
		{simulator.Wachat, "store", "t1_store", simulator.Behaviour{State: "close"}},
		{simulator.Evolution, "bot", "bot", simulator.Behaviour{State: "open"}},
	} {
		sim.Set(in.provider, in.id, "e2e-secret", in.b)
		cfg.WriteString(simulator.ProviderOf(in.provider).Config(simURL, in.name, in.id, "e2e-secret"))
	}
	e := startExporter(t, configSource{inline: []byte(cfg.String())}, time.Second)
	addr := strings.TrimPrefix(e.url, "http://")

	proms := map[scrapeMode]*promServer{}
	for _, mode := range scrapeModes {
		proms[mode] = startPrometheus(t, scrapeConfig(mode, addr), "")
	}
	firing := `ALERTS{alertstate="firing", alertname=~"WhatsApp.+"}`
	wantAlerts := []string{
		"alertname=WhatsAppApiUnauthorized,provider=greenapi,name=rejected,state=",
		"alertname=WhatsAppInstanceBlocked,provider=greenapi,name=shop,state=blocked",
		"alertname=WhatsAppInstanceNotAuthorized,provider=wachat,name=store,state=close",
		// Alertmanager silences these while the two above fire.
		"alertname=WhatsAppInstanceNotWorking,provider=greenapi,name=shop,state=",
		"alertname=WhatsAppInstanceNotWorking,provider=wachat,name=store,state=",
		"alertname=WhatsAppInstanceStateUnknown,provider=greenapi,name=rejected,state=",
	}
	results := map[scrapeMode]map[string][]string{}
	for _, mode := range scrapeModes {
		p := proms[mode]
		p.waitQuery(t, 90*time.Second, firing, func(v []sample) bool {
			return slices.Equal(keys(v, "alertname", "provider", "name", "state"), wantAlerts)
		})
		results[mode] = map[string][]string{}
		for _, q := range []struct {
			query  string
			labels []string
		}{
			{`whatsapp_instance_state == 1`, []string{"provider", "name", "state"}},
			{`whatsapp_up`, []string{"provider", "name", "__value__"}},
			{`whatsapp_exporter:up`, []string{"job", "__value__"}},
			{firing, []string{"alertname", "provider", "name", "state"}},
		} {
			v, err := p.query(q.query)
			if err != nil {
				t.Fatalf("%s: %s: %v", mode, q.query, err)
			}
			for i := range v {
				v[i].Metric["__value__"] = fmt.Sprint(v[i].Value[1])
			}
			results[mode][q.query] = keys(v, q.labels...)
		}
	}
	for q, single := range results[singleEndpoint] {
		if multi := results[multiTarget][q]; !slices.Equal(single, multi) {
			t.Errorf("%s:\n  single endpoint %v\n  multi-target    %v", q, single, multi)
		}
	}
	if got := results[singleEndpoint]["whatsapp_exporter:up"]; !slices.Equal(got, []string{"job=whatsapp,__value__=1"}) {
		t.Errorf("whatsapp_exporter:up %v", got)
	}
	// One target per instance, the instance label its name.
	v, err := proms[multiTarget].query(`up{job="whatsapp"}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(v, "instance"); !slices.Equal(got, []string{"instance=bot", "instance=rejected", "instance=sales", "instance=shop", "instance=store"}) {
		t.Errorf("multi-target targets %v", got)
	}
}

// TestUnrefreshedIsLoggedOnce: instances a scrape could not refresh are
// said once in a while, with what to do, not per instance and scrape.
func TestUnrefreshedIsLoggedOnce(t *testing.T) {
	sim := simulator.New()
	cfg, _ := fleetConfig(t, sim, 3, simulator.Behaviour{State: "open", Latency: 3 * time.Second})
	e := startExporter(t, configSource{inline: []byte(cfg)}, 0)
	for range 3 {
		mfs := parse(t, scrape(t, e.url, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"0.5"}}))
		if v := gauge(t, mfs, "whatsapp_exporter_scrape_unrefreshed_instances"); v == 0 {
			t.Errorf("unrefreshed %v, want the slow instances", v)
		}
	}
	logs := e.logs.String()
	if n := strings.Count(logs, "could not be refreshed"); n != 1 || !strings.Contains(logs, "--api.concurrency") || !strings.Contains(logs, "/probe") {
		t.Errorf("%d warnings about unrefreshed instances, want 1 naming --api.concurrency and /probe:\n%s", n, logs)
	}
}
