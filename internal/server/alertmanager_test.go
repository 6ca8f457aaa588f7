package server_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/server"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

const (
	amTestToken = "AmLeak-5c1f0e9d8b7a6f43"
	// carolUsers is a web configuration with basic auth: exporter-toolkit's
	// own test data (web/testdata/web_config_users_noTLS.good.yml), whose
	// user carol's password is carol123.
	carolUsers = "basic_auth_users:\n  carol: $2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu\n"
)

// amConfig is a configuration of one GREEN-API instance in starting
// (the simulator's, at simURL) with the alerting sections given.
func amConfig(t *testing.T, sections string) (cfg string, sim *simulator.Simulator) {
	t.Helper()
	sim = simulator.New()
	simURL := exportertest.StartSimulator(t, sim)
	sim.Set(simulator.GreenAPI, "1101000001", "inst-token-0001", simulator.Behaviour{State: "starting"})
	sim.SetReboot(simulator.GreenAPI, "1101000001", simulator.RebootBehaviour{})
	return sections + fmt.Sprintf("instances:\n  - {name: stuck, provider: greenapi, api_url: %q, id_instance: 1101000001, api_token: inst-token-0001}\n", simURL), sim
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const rebootStuck = `{"version":"4","status":"firing","receiver":"remediation","alerts":[{"status":"firing","labels":{"alertname":"WhatsAppInstanceStarting","provider":"greenapi","name":"stuck","remediation":"reboot"},"annotations":{},"startsAt":"2026-12-02T09:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"1"}]}`

func amPost(t *testing.T, url, auth, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAlertmanagerNeverOpen: with neither a bearer token nor basic auth
// the receivers are refused at start (CheckAlertmanagerAuth), and every
// request is refused if a reload removes the token while they are served.
func TestAlertmanagerNeverOpen(t *testing.T) {
	cfg, sim := amConfig(t, fmt.Sprintf("alertmanager: {bearer_token: %q}\nremediation: {}\n", amTestToken))
	file := writeFile(t, "whatsapp_exporter.yml", cfg)
	e := exportertest.Start(t, exportertest.File(file), time.Second)
	tlsOnly := writeFile(t, "web-tls.yml", "tls_server_config: {}\n")
	users := writeFile(t, "web-users.yml", carolUsers)
	bad := writeFile(t, "web-bad.yml", "basic_auth_user: {}\n")
	if err := e.CheckAlertmanagerAuth(""); err != nil {
		t.Errorf("with a token: %v", err)
	}
	srv := httptest.NewServer(e.AlertmanagerHandler(""))
	t.Cleanup(srv.Close)

	// The token goes: the receivers refuse everything, to both paths.
	noToken, _ := amConfig(t, "remediation: {}\n")
	if err := os.WriteFile(file, []byte(noToken), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := e.CheckAlertmanagerAuth(""); !errors.Is(err, server.ErrAlertmanagerOpen) {
		t.Errorf("no token, no web config: %v", err)
	}
	if err := e.CheckAlertmanagerAuth(tlsOnly); !errors.Is(err, server.ErrAlertmanagerOpen) {
		t.Errorf("no token, TLS only: %v", err)
	}
	if err := e.CheckAlertmanagerAuth(users); err != nil {
		t.Errorf("no token, basic auth: %v", err)
	}
	if err := e.CheckAlertmanagerAuth(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a web config with a typo: %v", err)
	}
	for _, path := range []string{server.AlertmanagerRemediatePath, server.AlertmanagerWhatsAppPath} {
		for _, auth := range []string{"", "Bearer " + amTestToken, "Bearer anything"} {
			if status := amPost(t, srv.URL+path, auth, rebootStuck); status != http.StatusUnauthorized {
				t.Errorf("%s with %q and no authentication configured: HTTP %d", path, auth, status)
			}
		}
	}
	if n := sim.Reboots(simulator.GreenAPI, "1101000001"); n != 0 {
		t.Errorf("%d reboots", n)
	}
	text := exportertest.Scrape(t, e.URL, nil)
	if !strings.Contains(text, `whatsapp_alertmanager_requests_total{outcome="unauthorized",receiver="remediation"} 3`) {
		t.Errorf("refusals not counted:\n%s", exportertest.GrepLines(text, "whatsapp_alertmanager"))
	}
	if !strings.Contains(e.Logs.String(), "would be open to anyone") {
		t.Errorf("the refusal is not logged:\n%s", e.Logs)
	}
}

// TestAlertmanagerReceiverMetrics: a reboot through the listener's
// handler, and the metrics it leaves, checked by promtool.
func TestAlertmanagerReceiverMetrics(t *testing.T) {
	cfg, sim := amConfig(t, fmt.Sprintf("alertmanager: {bearer_token: %q}\nremediation: {}\n", amTestToken))
	e := exportertest.Start(t, exportertest.Inline(cfg), time.Second)
	text := exportertest.Scrape(t, e.URL, nil)
	if !strings.Contains(text, "whatsapp_remediation_enabled 0") {
		t.Errorf("remediation enabled before its receiver is served:\n%s", exportertest.GrepLines(text, "remediation"))
	}
	srv := httptest.NewServer(e.Alertmanager("").Handler)
	t.Cleanup(srv.Close)
	if status := amPost(t, srv.URL+server.AlertmanagerRemediatePath, "Bearer "+amTestToken, rebootStuck); status != http.StatusOK {
		t.Fatalf("HTTP %d\n%s", status, e.Logs)
	}
	if status := amPost(t, srv.URL+server.AlertmanagerRemediatePath, "Bearer "+amTestToken, `{"version":"4"`); status != http.StatusBadRequest {
		t.Errorf("malformed: HTTP %d", status)
	}
	if n := sim.Reboots(simulator.GreenAPI, "1101000001"); n != 1 {
		t.Errorf("%d reboots, want 1", n)
	}
	text = exportertest.Scrape(t, e.URL, nil)
	for _, want := range []string{
		"whatsapp_remediation_enabled 1",
		`whatsapp_remediation_actions_total{action="reboot",name="stuck",provider="greenapi",reason="",result="done"} 1`,
		`whatsapp_remediation_status{action="reboot",name="stuck",provider="greenapi",status="waiting"} 1`,
		`whatsapp_alertmanager_requests_total{outcome="accepted",receiver="remediation"} 1`,
		`whatsapp_alertmanager_requests_total{outcome="malformed",receiver="remediation"} 1`,
		`whatsapp_alertmanager_alerts_total{outcome="ok",receiver="remediation"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %s in\n%s", want, exportertest.GrepLines(text, "whatsapp_re")+exportertest.GrepLines(text, "whatsapp_alertmanager"))
		}
	}
	exportertest.PromtoolCheckMetrics(t, text)
	for _, secret := range []string{amTestToken, "inst-token-0001"} {
		if strings.Contains(text+e.Logs.String(), secret) {
			t.Errorf("%s written", secret)
		}
	}
}

// TestAlertmanagerRequestsInFlightBounded: requests that hold their
// bodies back take the receivers' slots; one more is answered 503 (which
// Alertmanager retries) rather than held, and once they end a genuine
// request is served.
func TestAlertmanagerRequestsInFlightBounded(t *testing.T) {
	cfg, _ := amConfig(t, fmt.Sprintf("alertmanager: {bearer_token: %q}\nremediation: {dry_run: true}\n", amTestToken))
	e := exportertest.Start(t, exportertest.Inline(cfg), time.Second)
	srv := httptest.NewServer(e.AlertmanagerHandler(""))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	var conns []net.Conn
	for range 16 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		// Before srv.Close, which waits for their requests to end.
		t.Cleanup(func() { conn.Close() })
		// The headers, and a body that has not come yet: the handler
		// waits for it inside its slot.
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n{", server.AlertmanagerRemediatePath, amTestToken)
	}
	// The slots fill as the server reads those requests.
	for text := ""; !strings.Contains(text, "whatsapp_alertmanager_requests_in_flight 16"); runtime.Gosched() {
		text = exportertest.Scrape(t, e.URL, nil)
	}
	if status := amPost(t, srv.URL+server.AlertmanagerRemediatePath, "Bearer "+amTestToken, rebootStuck); status != http.StatusServiceUnavailable {
		t.Fatalf("a 17th request at once: HTTP %d, want 503", status)
	}
	// A wrong token is refused as such: it never needed a slot.
	if status := amPost(t, srv.URL+server.AlertmanagerRemediatePath, "Bearer "+amTestToken+"x", rebootStuck); status != http.StatusUnauthorized {
		t.Errorf("a wrong token while every slot is taken: HTTP %d, want 401", status)
	}
	for _, c := range conns {
		c.Close()
	}
	// The server sees the connections end as it reads from them.
	served := false
	for range 1000 {
		status := amPost(t, srv.URL+server.AlertmanagerRemediatePath, "Bearer "+amTestToken, rebootStuck)
		if status == http.StatusOK {
			served = true
			break
		}
		if status != http.StatusServiceUnavailable {
			t.Fatalf("after the slow senders left: HTTP %d", status)
		}
		runtime.Gosched()
	}
	if !served {
		t.Fatal("the slots are not given back when the slow senders leave")
	}
	if text := exportertest.Scrape(t, e.URL, nil); !strings.Contains(text, `whatsapp_alertmanager_requests_total{outcome="error",receiver="remediation"}`) {
		t.Errorf("the refusal is not counted:\n%s", exportertest.GrepLines(text, "alertmanager_requests"))
	}
}
