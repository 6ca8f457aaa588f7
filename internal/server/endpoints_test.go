package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

func TestHTTPEndpoints(t *testing.T) {
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "7", "endpoint-token", simulator.Behaviour{State: "authorized"})
	simURL := exportertest.StartSimulator(t, sim)
	e := exportertest.Start(t, exportertest.Inline(fmt.Sprintf(
		"instances:\n  - {provider: greenapi, api_url: %q, id_instance: 7, api_token: endpoint-token}\n", simURL)), time.Second)

	if code, body := exportertest.Get(t, e.URL+"/-/healthy", nil); code != 200 || !strings.Contains(body, "Healthy") {
		t.Errorf("/-/healthy: %d %q", code, body)
	}
	code, body := exportertest.Get(t, e.URL+"/", nil)
	if code != 200 || !strings.Contains(body, `href="/metrics"`) || !strings.Contains(body, `href="/config"`) {
		t.Errorf("landing page: HTTP %d, links to /metrics and /config missing:\n%s", code, body)
	}
	code, body = exportertest.Get(t, e.URL+"/config", nil)
	if code != 200 || !strings.Contains(body, "api_token: <secret>") || !strings.Contains(body, `name: "7"`) || strings.Contains(body, "endpoint-token") {
		t.Errorf("/config: HTTP %d, want the instance with its token as <secret>:\n%s", code, body)
	}
	if code, _ := exportertest.Get(t, e.URL+"/-/reload", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: HTTP %d, want 405", code)
	}
}

// fleetConfig serves n simulated instances per provider and returns their
// configuration, each with a secret that must never be shown.
func fleetConfig(t *testing.T, sim *simulator.Simulator, n int, b simulator.Behaviour) (string, []string) {
	t.Helper()
	simURL := exportertest.StartSimulator(t, sim)
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
	e := exportertest.Start(t, exportertest.Inline(cfg), time.Minute)

	code, body := exportertest.Get(t, e.URL+"/probe?target=greenapi-0", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"5"}})
	if code != http.StatusOK {
		t.Fatalf("/probe?target=greenapi-0: HTTP %d\n%s", code, body)
	}
	mfs := exportertest.Parse(t, body)
	if states := exportertest.CheckOneHot(t, mfs); len(states) != 1 || states["greenapi-0"] != "blocked" {
		t.Errorf("/probe answered for %v, want greenapi-0 blocked only", states)
	}
	for _, own := range []string{"go_goroutines", "whatsapp_exporter_build_info"} {
		if _, ok := mfs[own]; ok {
			t.Errorf("/probe holds the exporter's own %s; it belongs to /metrics", own)
		}
	}
	// The exporter's own metrics alone, without a call.
	calls := sim.Calls(simulator.Wachat, "1101000001")
	code, body = exportertest.Get(t, e.URL+"/exporter-metrics", nil)
	own := exportertest.Parse(t, body)
	if _, ok := own["whatsapp_exporter_build_info"]; code != http.StatusOK || !ok {
		t.Errorf("/exporter-metrics: HTTP %d without build info:\n%s", code, body)
	}
	if _, ok := own["whatsapp_up"]; ok || sim.Calls(simulator.Wachat, "1101000001") != calls {
		t.Errorf("/exporter-metrics shows or calls instances")
	}
	exportertest.PromtoolCheckMetrics(t, body)
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
		code, body := exportertest.Get(t, e.URL+"/probe"+tc.query, nil)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("/probe%s: HTTP %d %q, want 400 with %q", tc.query, code, body, tc.want)
		}
	}
	// Every configured instance can be probed.
	for _, name := range names {
		if code, body := exportertest.Get(t, e.URL+"/probe?target="+url.QueryEscape(name), nil); code != http.StatusOK || !strings.Contains(body, `name="`+name+`"`) {
			t.Errorf("/probe?target=%s: HTTP %d\n%s", name, code, body)
		}
	}
}

func TestServiceDiscovery(t *testing.T) {
	sim := simulator.New()
	cfg, names := fleetConfig(t, sim, 3, simulator.Behaviour{State: "open"})
	e := exportertest.Start(t, exportertest.Inline(cfg), time.Minute)
	code, body := exportertest.Get(t, e.URL+"/sd", nil)
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
