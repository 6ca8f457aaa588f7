package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/server"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// The WhatsApp receiver's end-to-end tests: a real Alertmanager with the
// shipped routes sends the notifications of its WhatsApp receiver to the
// exporter's (/alertmanager/whatsapp, authenticated by the bearer token),
// which sends them through the simulator's instances.

const (
	waToken      = "e2e-alertmanager-token-0123"
	waRecipient  = "4915100000077"
	waGreenID    = "1101000077"
	waGreenToken = "e2e-green-sender-token"
	waWachat     = "e2e_wachat_sender"
	waWachatKey  = "e2e-wachat-sender-key"
)

// startWhatsAppExporter runs the exporter in process with its
// Alertmanager receivers served on loopback, watching the instances of
// extra and two senders: ops-green (GREEN-API), then ops-wachat (Wachat),
// in the states given. It returns the exporter and the URL of its
// WhatsApp receiver.
func startWhatsAppExporter(t *testing.T, sim *simulator.Simulator, simURL, greenState, wachatState, extra string) (*exportertest.Exporter, string) {
	t.Helper()
	sim.Set(simulator.GreenAPI, waGreenID, waGreenToken, simulator.Behaviour{State: greenState})
	sim.Set(simulator.Wachat, waWachat, waWachatKey, simulator.Behaviour{State: wachatState})
	e := exportertest.Start(t, exportertest.Inline("instances:\n"+extra+
		simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "ops-green", waGreenID, waGreenToken)+
		simulator.ProviderOf(simulator.Wachat).Config(simURL, "ops-wachat", waWachat, waWachatKey)+
		"alertmanager:\n  bearer_token: "+waToken+"\n"+
		"whatsapp_alerts:\n  senders: [ops-green, ops-wachat]\n  recipients: ['+"+waRecipient+"']\n"), 0)
	srv := httptest.NewServer(e.AlertmanagerHandler(""))
	t.Cleanup(srv.Close)
	return e, srv.URL + server.AlertmanagerWhatsAppPath
}

// startWhatsAppAlertmanager runs Alertmanager with the shipped routes,
// their WhatsApp receiver ("whatsapp": notAuthorized, blocked, banned,
// yellowCard) a webhook to the exporter's with its bearer token, every
// other receiver the sink.
func startWhatsAppAlertmanager(t *testing.T, receiverURL string) (string, *testtool.WebhookSink, *testlog.Buffer) {
	t.Helper()
	const receiver = "whatsapp"
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
	e, receiverURL := startWhatsAppExporter(t, sim, simURL, "authorized", "open",
		simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "e2e-shop", "1101000001", "e2e-token"))
	waLogs := e.Logs
	amAddr, _, amLogs := startWhatsAppAlertmanager(t, receiverURL)
	prom := startPrometheus(t, scrapeConfig(singleEndpoint, strings.TrimPrefix(e.URL, "http://")), amAddr)

	prom.waitScrapes(t, sim, "1101000001")
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

	// The exporter's /metrics counts both messages, and Alertmanager's
	// requests; nothing of the recipient's number.
	code, metrics := exportertest.Get(t, e.URL+"/metrics", nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d", code)
	}
	sent := 0
	for _, m := range sim.Messages() {
		if m.Instance == waGreenID {
			sent++
		}
	}
	if want := fmt.Sprintf(`whatsapp_alert_messages_total{result="sent",sender="ops-green",sender_provider="greenapi"} %d`, sent); !strings.Contains(metrics, want+"\n") {
		t.Errorf("/metrics lacks %s", want)
	}
	if regexp.MustCompile(`(?m)^whatsapp_alertmanager_requests_total\{outcome="accepted",receiver="whatsapp"\} [1-9]`).FindString(metrics) == "" {
		t.Errorf("/metrics counts no accepted request of Alertmanager to the WhatsApp receiver")
	}
	exportertest.PromtoolCheckMetrics(t, metrics)
	for _, secret := range []string{waRecipient, waToken, waGreenToken, waWachatKey, "is blocked"} {
		if strings.Contains(waLogs.String(), secret) {
			t.Errorf("the exporter's logs hold %q", secret)
		}
		if strings.Contains(metrics, secret) {
			t.Errorf("/metrics holds %q", secret)
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
	e, receiverURL := startWhatsAppExporter(t, sim, simURL, "notAuthorized", "open", "")
	waLogs := e.Logs
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
