package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/waalerts"
)

// The WhatsApp receiver's end-to-end tests: a real Alertmanager with the
// shipped routes sends the notifications of its WhatsApp receiver to the
// exporter's, which sends them through the simulator's instances.

const (
	waToken      = "e2e-alertmanager-token-0123"
	waRecipient  = "4915100000077"
	waGreenID    = "1101000077"
	waGreenToken = "e2e-green-sender-token"
	waWachat     = "e2e_wachat_sender"
	waWachatKey  = "e2e-wachat-sender-key"
)

// startWhatsAppReceiver serves the WhatsApp receiver in process, with two
// senders watched by a collector of its own: ops-green (GREEN-API), then
// ops-wachat (Wachat), in the states given.
func startWhatsAppReceiver(t *testing.T, sim *simulator.Simulator, simURL, greenState, wachatState string) (string, *testlog.Buffer) {
	t.Helper()
	sim.Set(simulator.GreenAPI, waGreenID, waGreenToken, simulator.Behaviour{State: greenState})
	sim.Set(simulator.Wachat, waWachat, waWachatKey, simulator.Behaviour{State: wachatState})
	yml := "instances:\n" +
		simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "ops-green", waGreenID, waGreenToken) +
		simulator.ProviderOf(simulator.Wachat).Config(simURL, "ops-wachat", waWachat, waWachatKey) +
		"alertmanager:\n  bearer_token: " + waToken + "\n" +
		"whatsapp_alerts:\n  senders: [ops-green, ops-wachat]\n  recipients: ['+" + waRecipient + "']\n"
	cfg, err := config.Load([]byte(yml), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := testlog.New()
	c := collector.New(logger, collector.Options{Concurrency: 4, UserAgent: "e2e"})
	t.Cleanup(c.Close)
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	s := waalerts.New(logger, c)
	s.Update(cfg)
	mux := http.NewServeMux()
	mux.Handle("/alertmanager/whatsapp", s.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/alertmanager/whatsapp", logs
}

// startWhatsAppAlertmanager runs Alertmanager with the shipped routes,
// their WhatsApp receiver a webhook to the WhatsApp receiver with its
// bearer token, every other receiver the sink. The shipped configuration's
// receiver is "whatsapp" (notAuthorized, blocked, banned, yellowCard);
// before it had one, the pager's stands in.
func startWhatsAppAlertmanager(t *testing.T, receiverURL string) (string, *testtool.WebhookSink, *testlog.Buffer) {
	t.Helper()
	shipped, err := os.ReadFile(alertmanagerFile)
	if err != nil {
		t.Fatal(err)
	}
	receiver := "whatsapp-pager"
	if strings.Contains(string(shipped), "\n  - name: whatsapp\n") {
		receiver = "whatsapp"
	}
	sink := testtool.NewWebhookSink(t)
	addr, logs := testtool.StartAlertmanagerWith(t, alertmanagerFile, sink.URL, testtool.AlertmanagerOptions{
		Webhooks: map[string]testtool.Webhook{receiver: {URL: receiverURL, BearerToken: waToken, SendResolved: true}},
	})
	return addr, sink, logs
}

// waitMessage waits for a message at the simulator whose text match
// accepts, failing with the logs after limit.
func waitMessage(t *testing.T, sim *simulator.Simulator, limit time.Duration, what string, match func(simulator.Message) bool, logs ...*testlog.Buffer) simulator.Message {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
		for _, m := range sim.Messages() {
			if match(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, l := range logs {
				b.WriteString(l.String())
			}
			t.Fatalf("no %s within %v; messages %+v\n%s", what, limit, sim.Messages(), b.String())
		}
	}
}

// TestWhatsAppAlertEndToEnd follows a blocked instance from the
// simulator through the exporter, a real Prometheus with the shipped
// rules and a real Alertmanager with the shipped routes to a WhatsApp
// message at the simulator, and back as the resolved message.
func TestWhatsAppAlertEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Prometheus and Alertmanager")
	}
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized"})
	simURL := exportertest.StartSimulator(t, sim)
	e := exportertest.Start(t, exportertest.Inline("instances:\n"+
		simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "e2e-shop", "1101000001", "e2e-token")), 0)
	receiverURL, waLogs := startWhatsAppReceiver(t, sim, simURL, "authorized", "open")
	amAddr, _, amLogs := startWhatsAppAlertmanager(t, receiverURL)
	prom := startPrometheus(t, scrapeConfig(singleEndpoint, strings.TrimPrefix(e.URL, "http://")), amAddr)

	for deadline := time.Now().Add(30 * time.Second); sim.Calls(simulator.GreenAPI, "1101000001") < 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus does not scrape the exporter:\n%s", prom.logs)
		}
	}
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "blocked"})
	isBlocked := func(status string) func(simulator.Message) bool {
		return func(m simulator.Message) bool {
			return strings.HasPrefix(m.Text, "*"+status+"*") && strings.Contains(m.Text, "WhatsAppInstanceBlocked: e2e-shop (greenapi), state blocked")
		}
	}
	m := waitMessage(t, sim, 90*time.Second, "message of the firing WhatsAppInstanceBlocked", isBlocked("FIRING"), waLogs, amLogs, prom.logs)
	if m.Provider != simulator.GreenAPI || m.Instance != waGreenID || m.To != waRecipient {
		t.Errorf("sent through %s/%s to %s, want greenapi/%s to %s", m.Provider, m.Instance, m.To, waGreenID, waRecipient)
	}
	for _, want := range []string{", firing for ", "\nWhatsApp instance e2e-shop is blocked\n", "/alerts/RUNBOOK.md#whatsappinstanceblocked"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}

	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized"})
	waitMessage(t, sim, 90*time.Second, "message of the resolved WhatsAppInstanceBlocked", isBlocked("RESOLVED"), waLogs, amLogs, prom.logs)

	for _, secret := range []string{waRecipient, waToken, waGreenToken, waWachatKey, "is blocked"} {
		if strings.Contains(waLogs.String(), secret) {
			t.Errorf("the receiver's logs hold %q", secret)
		}
	}
}

// TestWhatsAppAlertFallbackEndToEnd posts an alert to Alertmanager's API
// while the first sender is not authorized: the message goes through the
// second, of another provider, and nothing through the first (GREEN-API
// would have queued it for 24 hours).
func TestWhatsAppAlertFallbackEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Alertmanager")
	}
	sim := simulator.New()
	simURL := exportertest.StartSimulator(t, sim)
	receiverURL, waLogs := startWhatsAppReceiver(t, sim, simURL, "notAuthorized", "open")
	amAddr, _, amLogs := startWhatsAppAlertmanager(t, receiverURL)

	// An alert as the shipped rules write it (alerts/whatsapp.rules.yml),
	// in Alertmanager's API v2 (POST /api/v2/alerts, postableAlerts).
	alerts := []map[string]any{{
		"labels": map[string]string{"alertname": "WhatsAppInstanceYellowCard", "severity": "critical", "job": "whatsapp",
			"provider": "evolution", "name": "e2e-sales", "state": "yellowCard"},
		"annotations": map[string]string{"summary": "WhatsApp instance e2e-sales got a yellow card",
			"runbook_url": "https://github.com/whatsapp-exporter/whatsapp_exporter/blob/main/alerts/RUNBOOK.md#whatsappinstanceyellowcard"},
		"startsAt": time.Now().Add(-5 * time.Minute).UTC().Format(time.RFC3339),
	}}
	body, err := json.Marshal(alerts)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+amAddr+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Alertmanager's API: HTTP %d", resp.StatusCode)
	}
	m := waitMessage(t, sim, 60*time.Second, "message of WhatsAppInstanceYellowCard", func(m simulator.Message) bool {
		return strings.Contains(m.Text, "WhatsAppInstanceYellowCard: e2e-sales (evolution), state yellowCard, firing for 5m")
	}, waLogs, amLogs)
	if m.Provider != simulator.Wachat || m.Instance != waWachat || m.To != waRecipient {
		t.Errorf("sent through %s/%s to %s, want wachat/%s", m.Provider, m.Instance, m.To, waWachat)
	}
	for _, m := range sim.Messages() {
		if m.Provider == simulator.GreenAPI {
			t.Errorf("a message went through the GREEN-API sender, which is not authorized: %+v", m)
		}
	}
}
