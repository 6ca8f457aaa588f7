package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// testExporter serves the exporter's real HTTP handler on loopback.
type testExporter struct {
	*exporter
	url  string
	logs *testlog.Buffer
}

func startExporter(t testing.TB, src configSource, minInterval time.Duration) *testExporter {
	t.Helper()
	return startExporterWith(t, src, collector.Options{Concurrency: 32, MinInterval: minInterval, UserAgent: "test"})
}

// startExporterWith is startExporter with the collector's options.
func startExporterWith(t testing.TB, src configSource, opts collector.Options) *testExporter {
	t.Helper()
	logger, logs := testlog.New()
	e := newExporter(logger, src, exporterOptions{
		timeoutOffset: 500 * time.Millisecond,
		maxRequests:   40,
		collector:     opts,
	})
	t.Cleanup(e.collector.Close)
	if err := e.reload(); err != nil {
		t.Fatalf("loading the configuration: %v", err)
	}
	h, err := e.handler("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testExporter{exporter: e, url: srv.URL, logs: logs}
}

func startSimulator(t testing.TB, sim *simulator.Simulator) string {
	t.Helper()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(t testing.TB, rawURL string, header http.Header) (int, string) {
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

func scrape(t testing.TB, base string, header http.Header) string {
	t.Helper()
	code, body := get(t, base+"/metrics", header)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: HTTP %d\n%s", code, body)
	}
	return body
}

func parse(t testing.TB, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return mfs
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// checkOneHot asserts that every instance has one series per state of its
// provider plus unknown, exactly one of them 1, and returns the states.
func checkOneHot(t *testing.T, mfs map[string]*dto.MetricFamily) map[string]string {
	t.Helper()
	type key struct{ provider, name string }
	seen := map[key][]string{}
	current := map[string]string{}
	for _, m := range mfs["whatsapp_instance_state"].GetMetric() {
		k := key{label(m, "provider"), label(m, "name")}
		seen[k] = append(seen[k], label(m, "state"))
		if m.GetGauge().GetValue() == 1 {
			if prev, dup := current[k.name]; dup {
				t.Errorf("instance %s: states %s and %s are both 1", k.name, prev, label(m, "state"))
			}
			current[k.name] = label(m, "state")
		} else if m.GetGauge().GetValue() != 0 {
			t.Errorf("instance %s: state %s has value %v", k.name, label(m, "state"), m.GetGauge().GetValue())
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

func upValues(mfs map[string]*dto.MetricFamily) map[string]float64 {
	up := map[string]float64{}
	for _, m := range mfs["whatsapp_up"].GetMetric() {
		up[label(m, "name")] = m.GetGauge().GetValue()
	}
	return up
}

func promtoolCheckMetrics(t *testing.T, text string) {
	t.Helper()
	promtool := testtool.Require(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestEndToEndDemo(t *testing.T) {
	simURL := startSimulator(t, simulator.Demo())
	e := startExporter(t, configSource{inline: []byte(simulator.DemoConfig(simURL))}, time.Second)
	text := scrape(t, e.url, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"10"}})
	mfs := parse(t, text)

	states := checkOneHot(t, mfs)
	providers := map[string]bool{}
	for _, m := range mfs["whatsapp_up"].GetMetric() {
		providers[label(m, "provider")] = true
	}
	if len(providers) != len(config.Providers()) {
		t.Errorf("the demo shows providers %v, want every provider: %v", providers, config.Providers())
	}
	// At start the demo instances report what their first step says.
	up := upValues(mfs)
	for _, p := range simulator.Providers() {
		for _, d := range p.Demo {
			wantState, wantUp := p.Reads(d.Steps[0].Behaviour)
			if states[d.Name] != wantState || (up[d.Name] == 1) != wantUp {
				t.Errorf("demo instance %s: state %q up %v, want %q %v", d.Name, states[d.Name], up[d.Name], wantState, wantUp)
			}
		}
	}
	// Nothing failed at start, and a failure reason appears with its
	// first failure.
	if n := len(mfs["whatsapp_api_request_errors_total"].GetMetric()); n != 0 {
		t.Errorf("%d error series at demo start, want none", n)
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
			t.Errorf("whatsapp_api_request_duration_seconds_count{name=%q} = %v after one scrape, want 1", label(m, "name"), m.GetSummary().GetSampleCount())
		}
	}
	if v := gauge(t, mfs, "whatsapp_exporter_scrape_unrefreshed_instances"); v != 0 {
		t.Errorf("whatsapp_exporter_scrape_unrefreshed_instances = %v, want 0", v)
	}
	promtoolCheckMetrics(t, text)
}

// faultSimulator has, for every provider, an instance in every state, one
// for every special answer and one for every fault, all with the same
// secret; it returns their configuration and what the exporter is to read
// from each.
func faultSimulator(t testing.TB, secret string) (string, map[string]reading) {
	sim := simulator.New()
	simURL := startSimulator(t, sim)
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
	e := startExporter(t, configSource{inline: []byte(cfg)}, time.Second)
	// The hanging instances time out (1 s) within the scrape.
	text := scrape(t, e.url, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"3"}})
	mfs := parse(t, text)
	states := checkOneHot(t, mfs)
	up := upValues(mfs)
	for name, w := range want {
		if states[name] != w.state || (up[name] == 1) != w.up {
			t.Errorf("instance %s: state %q up %v, want %q %v", name, states[name], up[name], w.state, w.up)
		}
	}
	promtoolCheckMetrics(t, text)
}

// TestScrapeTimeoutFromHeader: a scrape answers within the timeout
// Prometheus announces, with what it has; a call it could not wait for
// goes on to its own timeout and the next scrape reports it.
func TestScrapeTimeoutFromHeader(t *testing.T) {
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1", "tok", simulator.Behaviour{Fault: simulator.FaultHang})
	sim.Set(simulator.GreenAPI, "2", "tok", simulator.Behaviour{State: "authorized"})
	simURL := startSimulator(t, sim)
	cfg := fmt.Sprintf("instances:\n"+
		"  - {name: hung, provider: greenapi, api_url: %q, id_instance: 1, api_token: tok, timeout: 4s}\n"+
		"  - {name: fine, provider: greenapi, api_url: %q, id_instance: 2, api_token: tok, timeout: 4s}\n", simURL, simURL)
	e := startExporter(t, configSource{inline: []byte(cfg)}, 0)
	// The client's own 30 s limit fails the test if the scrape does not
	// answer within Prometheus' 1 s.
	mfs := parse(t, scrape(t, e.url, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"1"}}))
	up := upValues(mfs)
	if _, reported := up["hung"]; reported || up["fine"] != 1 {
		t.Fatalf("whatsapp_up = %v, want fine 1 and hung not yet reported", up)
	}
	if v := gauge(t, mfs, "whatsapp_exporter_scrape_unrefreshed_instances"); v != 1 {
		t.Errorf("whatsapp_exporter_scrape_unrefreshed_instances = %v, want 1", v)
	}
	// The hung call ends at its own 4 s, a timeout that later scrapes show.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		mfs = parse(t, scrape(t, e.url, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"1"}}))
		if v, ok := upValues(mfs)["hung"]; ok {
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
		if label(m, "name") == "hung" {
			errs[label(m, "reason")] = m.GetCounter().GetValue()
		}
	}
	if errs["timeout"] != 1 {
		t.Fatalf("hung instance errors %v, want one timeout", errs)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "7", "endpoint-token", simulator.Behaviour{State: "authorized"})
	simURL := startSimulator(t, sim)
	e := startExporter(t, configSource{inline: []byte(fmt.Sprintf(
		"instances:\n  - {provider: greenapi, api_url: %q, id_instance: 7, api_token: endpoint-token}\n", simURL))}, time.Second)

	if code, body := get(t, e.url+"/-/healthy", nil); code != 200 || !strings.Contains(body, "Healthy") {
		t.Errorf("/-/healthy: %d %q", code, body)
	}
	code, body := get(t, e.url+"/", nil)
	if code != 200 || !strings.Contains(body, `href="/metrics"`) || !strings.Contains(body, `href="/config"`) {
		t.Errorf("landing page: HTTP %d, links to /metrics and /config missing:\n%s", code, body)
	}
	code, body = get(t, e.url+"/config", nil)
	if code != 200 || !strings.Contains(body, "api_token: <secret>") || !strings.Contains(body, `name: "7"`) || strings.Contains(body, "endpoint-token") {
		t.Errorf("/config: HTTP %d, want the instance with its token as <secret>:\n%s", code, body)
	}
	if code, _ := get(t, e.url+"/-/reload", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: HTTP %d, want 405", code)
	}
}

func post(t testing.TB, rawURL string) (int, string) {
	t.Helper()
	resp, err := http.Post(rawURL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func gauge(t *testing.T, mfs map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	if !ok || len(mf.GetMetric()) != 1 {
		t.Fatalf("metric %s missing", name)
	}
	return mf.GetMetric()[0].GetGauge().GetValue()
}

func TestReloadKeepsTheOldConfigOnError(t *testing.T) {
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1", "tok1", simulator.Behaviour{State: "authorized"})
	sim.Set(simulator.GreenAPI, "2", "tok2", simulator.Behaviour{State: "blocked"})
	simURL := startSimulator(t, sim)
	file := filepath.Join(t.TempDir(), "whatsapp_exporter.yml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	one := fmt.Sprintf("instances:\n  - {name: one, provider: greenapi, api_url: %q, id_instance: 1, api_token: tok1}\n", simURL)
	write(one)
	e := startExporter(t, configSource{file: file}, 0)

	write(one + "  - {name: one, provider: greenapi, api_url: " + simURL + ", id_instance: 2, api_token: tok2}\n")
	code, body := post(t, e.url+"/-/reload")
	if code != http.StatusInternalServerError || !strings.Contains(body, file) || !strings.Contains(body, "duplicate") {
		t.Fatalf("reload of a config with a duplicate name: HTTP %d %q; want 500 naming the file and the duplicate", code, body)
	}
	mfs := parse(t, scrape(t, e.url, nil))
	if v := gauge(t, mfs, "whatsapp_exporter_config_last_reload_successful"); v != 0 {
		t.Errorf("reload_successful = %v after a failed reload, want 0", v)
	}
	if up := upValues(mfs); len(up) != 1 || up["one"] != 1 {
		t.Errorf("after a failed reload the old instances should serve: whatsapp_up %v", up)
	}

	write(one + "  - {name: two, provider: greenapi, api_url: " + simURL + ", id_instance: 2, api_token: tok2}\n")
	if code, body := post(t, e.url+"/-/reload"); code != http.StatusOK {
		t.Fatalf("reload of a good config: HTTP %d %q", code, body)
	}
	mfs = parse(t, scrape(t, e.url, nil))
	if v := gauge(t, mfs, "whatsapp_exporter_config_last_reload_successful"); v != 1 {
		t.Errorf("reload_successful = %v, want 1", v)
	}
	if up := upValues(mfs); len(up) != 2 {
		t.Errorf("after reload: whatsapp_up %v, want instances one and two", up)
	}
	if states := checkOneHot(t, mfs); states["two"] != "blocked" {
		t.Errorf("instance two reports %q, want blocked", states["two"])
	}
}

// TestTokenNeverLeaks drives every failure of every provider with debug
// logging on and looks for the secret (GREEN-API token, Wachat and
// Evolution API keys) everywhere the exporter writes.
func TestTokenNeverLeaks(t *testing.T) {
	const token = "LeakCheck-9f2c/7e+a=" // escapes differently in paths and queries
	// The tokens of the instances an account's listing returns.
	const listedToken = "ListedLeak-4d1e/9b+c="
	// A secret of Evolution API webhooks' URL path: one path segment.
	const pathSecret = "PathLeak-7c3a90d1e5"
	forms := []string{token, url.PathEscape(token), url.QueryEscape(token), "LeakCheck-9f2c",
		listedToken, url.PathEscape(listedToken), url.QueryEscape(listedToken), "ListedLeak-4d1e", pathSecret}

	cfg, _ := faultSimulator(t, token)
	// Transport failures whose Go errors quote the URL.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String()
	closed.Close()
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	// Redirects to another host, which would receive the token in the
	// path, the Referer or the apikey header if they were followed.
	var foreignHits atomic.Int64
	foreign := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { foreignHits.Add(1) }))
	t.Cleanup(foreign.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(foreign.URL, "127.0.0.1", "localhost", 1)+r.URL.RequestURI(), http.StatusFound)
	}))
	t.Cleanup(redirector.Close)
	// Every provider meets every transport failure.
	for _, p := range simulator.Providers() {
		for k, base := range []struct {
			label, url string
			extra      []string
		}{
			{"refused", closedURL, nil},
			{"tls-mismatch", strings.Replace(plain.URL, "http://", "https://", 1), nil},
			{"proxy-down", plain.URL, []string{fmt.Sprintf("proxy_url: %q", closedURL)}},
			{"no-such-host", "http://no-such-host.invalid", nil},
			{"redirected", redirector.URL, nil},
		} {
			cfg += p.Config(base.url, p.Name+"-"+base.label, fmt.Sprint(k+1), token, base.extra...)
		}
	}

	// Accounts: each provider's account, keyed by the token, lists
	// instances whose own tokens are the token too (GREEN-API's partner
	// listing and Evolution API's hold them); another cannot be reached.
	accountSim := simulator.New()
	accountURL := startSimulator(t, accountSim)
	accounts := "accounts:\n"
	for _, p := range simulator.Providers() {
		if p.Account == nil {
			continue
		}
		secret := listedToken
		if p.Name == simulator.Wachat {
			secret = token // Wachat's instances answer to the account's key
		}
		accountSim.Set(p.Name, "1102000001", secret, simulator.Behaviour{State: p.States[0]})
		accountSim.Set(p.Name, "1102000002", secret, simulator.Behaviour{Fault: simulator.FaultUnauthorized})
		accountSim.SetAccount(p.Name, token, simulator.Member{ID: "1102000001", Name: "found-" + p.Name + "-1"}, simulator.Member{ID: "1102000002", Name: "found-" + p.Name + "-2"})
		accounts += p.AccountConfig(accountURL, "found-"+p.Name, token, `name_prefix: "`+p.Name+`-"`)
		accounts += p.AccountConfig(closedURL, "refused-"+p.Name, token)
	}
	// Notifications: the webhook credentials are the token, and Evolution
	// API's events carry the instance's token in apikey.
	for _, p := range simulator.Providers() {
		if p.Notification == nil {
			continue
		}
		extra := []string{fmt.Sprintf("webhook_token: %q", token)}
		if p.Name == simulator.Evolution {
			extra = append(extra, fmt.Sprintf("webhook_jwt_key: %q", token), fmt.Sprintf("webhook_path_secret: %q", pathSecret))
		}
		cfg += p.Config(closedURL, p.Name+"-webhook", "1103000001", token, extra...)
	}
	file := filepath.Join(t.TempDir(), "whatsapp_exporter.yml")
	if err := os.WriteFile(file, []byte(cfg+accounts), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startExporterWith(t, configSource{file: file}, collector.Options{Concurrency: 32, UserAgent: "test", Notifications: true})
	// Until the accounts' first listings are in.
	found := func() (n int) {
		for _, in := range e.collector.Instances() {
			if strings.HasPrefix(in.Account, "found-") {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(20 * time.Second); found() < 2*len(simulator.Providers()); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the accounts found %d instances:\n%s", found(), e.logs)
		}
	}
	var seen strings.Builder
	receiver := httptest.NewServer(e.webhookServer(defaultWebhookTimeouts).Handler)
	t.Cleanup(receiver.Close)
	notify := func(path, auth string, body []byte) {
		status, header, answer := testtool.Notify(t, nil, receiver.URL+path, auth, body)
		fmt.Fprintf(&seen, "%d %s %s\n", status, header, answer)
	}
	accepted := 0
	sim := simulator.New()
	for _, p := range simulator.Providers() {
		if p.Notification == nil {
			continue
		}
		jwt := "Bearer " + simulator.SignJWT(token, map[string]any{"exp": time.Now().Add(time.Minute).Unix()})
		base := "/webhook/" + p.Name
		for k, auth := range []string{"Bearer " + token, token, jwt, "Bearer wrong", "", "jwt_key: " + token} {
			n, _ := sim.NotificationOf(p.Name, "1103000001", simulator.Behaviour{State: p.States[k%2]}, token, time.Now().Add(time.Duration(k+1)*time.Second))
			notify(base+n.Path, auth, n.Body)
		}
		n, _ := sim.NotificationOf(p.Name, "1103009999", simulator.Behaviour{State: p.States[0]}, token, time.Now())
		body := n.Body
		notify(base+n.Path, token, body)                                                              // unknown instance
		notify(base+n.Path, token, append(body[:len(body)-1:len(body)-1], []byte(`,"x":"`+token)...)) // malformed
		notify(base+n.Path, token, append(body[:len(body)-1:len(body)-1], []byte(`,"x":"`+strings.Repeat(token, 5000)+`"}`)...))
		notify(base+"/"+pathSecret+"x"+n.Path, "", body) // a wrong secret in the path
		accepted += 2
		if p.Name == simulator.Evolution {
			n, _ := sim.NotificationOf(p.Name, "1103000001", simulator.Behaviour{State: "open"}, token, time.Now().Add(time.Minute))
			notify(base+"/"+pathSecret+n.Path, "", n.Body)
			accepted++
		}
	}
	if n := strings.Count(seen.String(), "200 "); n < accepted {
		t.Errorf("%d notifications accepted, want at least %d:\n%s", n, accepted, seen.String())
	}
	for range 2 {
		seen.WriteString(scrape(t, e.url, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"3"}}))
	}
	_, body := get(t, e.url+"/config", nil)
	seen.WriteString(body)
	if !strings.Contains(body, "found:") || !strings.Contains(body, "<secret>") {
		t.Errorf("/config shows no instance found by an account or no <secret>:\n%s", body)
	}
	_, body = get(t, e.url+"/sd", nil)
	seen.WriteString(body)
	_, body = get(t, e.url+"/exporter-metrics", nil)
	seen.WriteString(body)
	// A reload that fails on a field of an instance that has the token.
	if err := os.WriteFile(file, []byte(cfg+fmt.Sprintf("  - {name: bad, provider: greenapi, id_instance: x1, api_token: %q}\n", token)+accounts), 0o600); err != nil {
		t.Fatal(err)
	}
	_, body = post(t, e.url+"/-/reload")
	seen.WriteString(body)
	if !strings.Contains(body, "id_instance") {
		t.Errorf("reload error does not name the field: %q", body)
	}
	logs := e.logs.String()
	seen.WriteString(logs)
	if n := foreignHits.Load(); n != 0 {
		t.Errorf("a redirect carried %d requests to another host", n)
	}
	for _, want := range []string{"reason=network", "reason=timeout", "reason=unauthorized", "reason=bad_response", "reason=redirect", "url=http"} {
		if !strings.Contains(logs, want) {
			t.Errorf("debug logs lack %q; the test does not exercise what it claims", want)
		}
	}
	for _, f := range forms {
		if strings.Contains(seen.String(), f) {
			i := strings.Index(seen.String(), f)
			t.Errorf("token form %q leaked: …%s…", f, seen.String()[max(0, i-200):i])
		}
	}
}

// buildBinary compiles the exporter once per test binary run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "whatsapp_exporter-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "whatsapp_exporter")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// startBinary runs the exporter and waits until it serves.
func startBinary(t *testing.T, args ...string) (*exec.Cmd, string, *testlog.Buffer) {
	t.Helper()
	return startBinaryEnv(t, nil, args...)
}

// startBinaryEnv is startBinary with an environment (nil: the test's).
func startBinaryEnv(t *testing.T, env []string, args ...string) (*exec.Cmd, string, *testlog.Buffer) {
	t.Helper()
	addr := testtool.FreeAddr(t)
	logs := &testlog.Buffer{}
	cmd := exec.Command(binary(t), append(args, "--web.listen-address="+addr)...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/-/healthy"); err == nil {
			resp.Body.Close()
			return cmd, base, logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter did not start:\n%s", logs)
		}
	}
}

func TestBinaryDemo(t *testing.T) {
	cmd, base, logs := startBinary(t, "--demo")
	mfs := parse(t, scrape(t, base, nil))
	states := checkOneHot(t, mfs)
	configured := 0
	for _, p := range simulator.Providers() {
		for _, d := range p.Demo {
			configured++
			if _, ok := states[d.Name]; !ok {
				t.Errorf("demo instance %s missing: %v", d.Name, states)
			}
		}
	}
	// The demo's accounts find more, once their first listing is in.
	for deadline := time.Now().Add(20 * time.Second); len(states) <= configured; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the demo's accounts found no instance: %v", states)
		}
		states = checkOneHot(t, parse(t, scrape(t, base, nil)))
	}
	// SIGTERM shuts down gracefully.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs)
	}
	if !strings.Contains(logs.String(), "Shutting down") {
		t.Errorf("no shutdown log:\n%s", logs)
	}
}

func TestBinaryConfigCheckAndSIGHUP(t *testing.T) {
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1", "tok1", simulator.Behaviour{State: "authorized"})
	sim.Set(simulator.GreenAPI, "2", "tok2", simulator.Behaviour{State: "yellowCard"})
	simURL := startSimulator(t, sim)
	dir := t.TempDir()
	file := filepath.Join(dir, "whatsapp_exporter.yml")
	good := fmt.Sprintf("instances:\n  - {name: one, provider: greenapi, api_url: %q, id_instance: 1, api_token_file: tok1.txt}\n", simURL)
	for name, content := range map[string]string{"whatsapp_exporter.yml": good, "tok1.txt": "tok1\n", "bad.yml": "instances:\n  - {name: one, provider: greenapi, id_instance: 1, api_token: tok1, colour: blue}\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	out, err := exec.Command(binary(t), "--config.check", "--config.file="+file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK, 1 instances") {
		t.Errorf("--config.check of a good file: %v %s", err, out)
	}
	bad := filepath.Join(dir, "bad.yml")
	out, err = exec.Command(binary(t), "--config.check", "--config.file="+bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), bad) || !strings.Contains(string(out), "colour") || !strings.Contains(string(out), `"one"`) {
		t.Errorf("--config.check of a file with an unknown field: %v %s; want failure naming file, instance and field", err, out)
	}
	if strings.Contains(string(out), "tok1") {
		t.Errorf("--config.check printed the token: %s", out)
	}

	cmd, base, logs := startBinary(t, "--config.file="+file)
	if up := upValues(parse(t, scrape(t, base, nil))); len(up) != 1 {
		t.Fatalf("whatsapp_up %v, want one instance", up)
	}
	if err := os.WriteFile(file, []byte(good+fmt.Sprintf("  - {name: two, provider: greenapi, api_url: %q, id_instance: 2, api_token: tok2}\n", simURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if states := checkOneHot(t, parse(t, scrape(t, base, nil))); states["two"] == "yellowCard" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not load the new instance:\n%s", logs)
		}
	}
}

func TestBinaryVersion(t *testing.T) {
	out, err := exec.Command(binary(t), "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "whatsapp_exporter, version") {
		t.Fatalf("--version: %v %s", err, out)
	}
}

// BenchmarkScrape100 measures one scrape of 100 GREEN-API instances whose
// API answers in 50 ms, with no result sharing, through the HTTP handler.
// cpu-ms/scrape includes the in-process simulator's share.
func BenchmarkScrape100(b *testing.B) {
	sim := simulator.New()
	simURL := startSimulator(b, sim)
	var cfg strings.Builder
	cfg.WriteString("instances:\n")
	for i := range 100 {
		id := fmt.Sprint(1101000000 + i)
		sim.Set(simulator.GreenAPI, id, "tok", simulator.Behaviour{State: "authorized", Latency: 50 * time.Millisecond})
		fmt.Fprintf(&cfg, "  - {name: i%d, provider: greenapi, api_url: %q, id_instance: %s, api_token: tok}\n", i, simURL, id)
	}
	e := startExporter(b, configSource{inline: []byte(cfg.String())}, 0)
	scrape(b, e.url, nil) // warm the connection pools
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	for range b.N {
		scrape(b, e.url, nil)
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) / time.Duration(b.N)
	b.ReportMetric(float64(cpu)/float64(time.Millisecond), "cpu-ms/scrape")
}
