package waalerts_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/amwebhook"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/waalerts"
)

// The tests of this file run the real collector against the simulator on
// loopback: the sender's choice sees the states the collector requested,
// and the messages arrive at the simulator's send endpoints.

const (
	amToken    = "alertmanager-token-0123456789"
	greenID    = "1101000042"
	greenToken = "green-secret-token-0001"
	wachatName = "ops_wachat_instance"
	wachatKey  = "wachat-secret-key-0001"
	recipient1 = "4915100000001"
	recipient2 = "4915100000002"
)

type rig struct {
	sim  *simulator.Simulator
	c    *collector.Collector
	s    *waalerts.Sender
	url  string
	logs *testlog.Buffer
}

// startRig watches two sender instances, ops-green (GREEN-API) and
// ops-wachat (Wachat), both authorized unless states say otherwise,
// and serves the receiver with them as senders, in that order.
func startRig(t *testing.T, greenState, wachatState string, extra string) *rig {
	t.Helper()
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, greenID, greenToken, simulator.Behaviour{State: greenState})
	sim.Set(simulator.Wachat, wachatName, wachatKey, simulator.Behaviour{State: wachatState})
	simURL := exportertest.StartSimulator(t, sim)
	yml := "instances:\n" +
		simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "ops-green", greenID, greenToken) +
		simulator.ProviderOf(simulator.Wachat).Config(simURL, "ops-wachat", wachatName, wachatKey) +
		"alertmanager:\n  bearer_token: " + amToken + "\n" +
		"whatsapp_alerts:\n  senders: [ops-green, ops-wachat]\n  recipients: ['+" + recipient1 + "', '" + recipient2 + "']\n" + extra
	cfg, err := config.Load([]byte(yml), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := testlog.New()
	c := collector.New(logger, collector.Options{Concurrency: 4, UserAgent: "test"})
	t.Cleanup(c.Close)
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	s := waalerts.New(logger, c)
	s.Update(cfg)
	if !s.Enabled() {
		t.Fatal("not enabled")
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &rig{sim: sim, c: c, s: s, url: srv.URL, logs: logs}
}

// blocked is WhatsAppInstanceBlocked as alerts/whatsapp.rules.yml writes
// it and Alertmanager 0.28.1 sends it (notify/webhook Message,
// template.Alert).
func blocked(status, name, provider string, startsAt time.Time) amwebhook.Alert {
	a := amwebhook.Alert{
		Status: status,
		Labels: map[string]string{"alertname": "WhatsAppInstanceBlocked", "severity": "critical", "job": "whatsapp",
			"instance": "exporter:10040", "provider": provider, "name": name, "state": "blocked"},
		Annotations: map[string]string{
			"summary":     "WhatsApp instance " + name + " is blocked",
			"description": "WhatsApp instance " + name + " (" + provider + ") is blocked: it cannot send.",
			"runbook_url": "https://github.com/whatsapp-exporter/whatsapp_exporter/blob/main/alerts/RUNBOOK.md#whatsappinstanceblocked",
		},
		StartsAt:    startsAt,
		Fingerprint: "6e2c3a0f0b9d1c2e",
	}
	if status == amwebhook.Resolved {
		a.EndsAt = startsAt.Add(20 * time.Minute)
	}
	return a
}

func (r *rig) post(t *testing.T, token string, status string, alerts ...amwebhook.Alert) (int, string) {
	t.Helper()
	body, err := json.Marshal(amwebhook.Message{Version: "4", GroupKey: `{}/{alertname=~"WhatsApp.+"}:{name="shop"}`, Receiver: "whatsapp-pager",
		Status: status, Alerts: alerts, ExternalURL: "http://alertmanager:9093"})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, r.url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sentBy lists the simulator's messages as provider/instance→to.
func sentBy(msgs []simulator.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Provider+"/"+m.Instance+"→"+m.To)
	}
	return out
}

func equal(a, b []string) bool { return strings.Join(a, "|") == strings.Join(b, "|") }

func gather(t *testing.T, s *waalerts.Sender) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		b.WriteString(mf.String() + "\n")
	}
	return b.String()
}

// noLeaks fails when a number, a token or a text is in the logs or the
// metrics.
func (r *rig) noLeaks(t *testing.T, texts ...string) {
	t.Helper()
	metrics := gather(t, r.s)
	for _, s := range append([]string{recipient1, recipient2, amToken, greenToken, wachatKey}, texts...) {
		if strings.Contains(r.logs.String(), s) {
			t.Errorf("the logs hold %q:\n%s", s, r.logs)
		}
		if strings.Contains(metrics, s) {
			t.Errorf("the metrics hold %q", s)
		}
	}
}

// A blocked instance's alert arrives at each recipient as one message
// through the first sender, with the expected text.
func TestBlockedAlertReachesEveryRecipient(t *testing.T) {
	t.Parallel()
	r := startRig(t, "authorized", "open", "")
	start := time.Now().Add(-12*time.Minute - 30*time.Second)
	if code, body := r.post(t, amToken, "firing", blocked("firing", "shop", "evolution", start)); code != 200 {
		t.Fatalf("answer %d %s\n%s", code, body, r.logs)
	}
	msgs := r.sim.Messages()
	if want := []string{"greenapi/" + greenID + "→" + recipient1, "greenapi/" + greenID + "→" + recipient2}; !equal(sentBy(msgs), want) {
		t.Fatalf("sent %v, want %v", sentBy(msgs), want)
	}
	want := "*FIRING* (1 alert)\n\n" +
		"1. WhatsAppInstanceBlocked: shop (evolution), state blocked, firing for 12m\n" +
		"WhatsApp instance shop is blocked\n" +
		"https://github.com/whatsapp-exporter/whatsapp_exporter/blob/main/alerts/RUNBOOK.md#whatsappinstanceblocked"
	for _, m := range msgs {
		if m.Text != want {
			t.Errorf("text to %s:\n%s\nwant:\n%s", m.To, m.Text, want)
		}
	}
	if got := counterOf(t, r.s, "whatsapp_alert_messages_total", "greenapi", "ops-green", "sent"); got != 2 {
		t.Errorf("sent by ops-green: %v, want 2", got)
	}
	r.noLeaks(t, "is blocked")
}

func TestResolvedAlert(t *testing.T) {
	t.Parallel()
	r := startRig(t, "authorized", "open", "")
	if code, body := r.post(t, amToken, "resolved", blocked("resolved", "shop", "evolution", time.Now().Add(-time.Hour))); code != 200 {
		t.Fatalf("answer %d %s", code, body)
	}
	msgs := r.sim.Messages()
	if len(msgs) != 2 || !strings.HasPrefix(msgs[0].Text, "*RESOLVED* (1 alert)\n\n1. WhatsAppInstanceBlocked: shop (evolution), state blocked, resolved after 20m\n") {
		t.Errorf("sent %+v", msgs)
	}
}

// The first sender is not authorized (the collector's fresh state
// request says so): the second, of another provider, sends; the first
// sends nothing, though GREEN-API would queue it.
func TestFallbackWhenFirstSenderIsDown(t *testing.T) {
	t.Parallel()
	r := startRig(t, "notAuthorized", "open", "")
	if code, body := r.post(t, amToken, "firing", blocked("firing", "shop", "evolution", time.Now())); code != 200 {
		t.Fatalf("answer %d %s\n%s", code, body, r.logs)
	}
	if want := []string{"wachat/" + wachatName + "→" + recipient1, "wachat/" + wachatName + "→" + recipient2}; !equal(sentBy(r.sim.Messages()), want) {
		t.Errorf("sent %v, want %v", sentBy(r.sim.Messages()), want)
	}
	if got := counterOf(t, r.s, "whatsapp_alert_sender_skips_total", "greenapi", "ops-green", waalerts.SkipNotWorking); got != 1 {
		t.Errorf("skips of ops-green: %v, want 1 (looked at once per notification)", got)
	}
	r.noLeaks(t)
}

// A send that fails at the provider falls back to the next sender.
func TestFallbackOnSendFailure(t *testing.T) {
	t.Parallel()
	r := startRig(t, "authorized", "open", "")
	r.sim.SetSend(simulator.GreenAPI, greenID, simulator.SendBehaviour{Fault: simulator.FaultServerError})
	if code, body := r.post(t, amToken, "firing", blocked("firing", "shop", "evolution", time.Now())); code != 200 {
		t.Fatalf("answer %d %s\n%s", code, body, r.logs)
	}
	if want := []string{"wachat/" + wachatName + "→" + recipient1, "wachat/" + wachatName + "→" + recipient2}; !equal(sentBy(r.sim.Messages()), want) {
		t.Errorf("sent %v, want %v", sentBy(r.sim.Messages()), want)
	}
	if got := counterOf(t, r.s, "whatsapp_alert_send_failures_total", "greenapi", "ops-green", "server_error"); got != 1 {
		t.Errorf("failures of ops-green: %v, want 1 (not tried again for the second recipient)", got)
	}
	r.noLeaks(t)
}

// An alert about the first sender goes through the other, though the
// first still looks authorized (its state may lag).
func TestAlertAboutTheSenderGoesThroughTheOther(t *testing.T) {
	t.Parallel()
	r := startRig(t, "authorized", "open", "")
	if code, body := r.post(t, amToken, "firing", blocked("firing", "ops-green", "greenapi", time.Now())); code != 200 {
		t.Fatalf("answer %d %s", code, body)
	}
	for _, m := range r.sim.Messages() {
		if m.Provider != simulator.Wachat {
			t.Errorf("sent through %s/%s", m.Provider, m.Instance)
		}
	}
	if n := len(r.sim.Messages()); n != 2 {
		t.Errorf("%d messages", n)
	}
}

// No sender works: 503, so that Alertmanager retries (its other
// integrations are not held); nothing is queued at the providers.
func TestNoSenderAnswers503(t *testing.T) {
	t.Parallel()
	r := startRig(t, "yellowCard", "close", "")
	code, body := r.post(t, amToken, "firing", blocked("firing", "shop", "evolution", time.Now()))
	if code != http.StatusServiceUnavailable {
		t.Errorf("answer %d %s, want 503", code, body)
	}
	if n := len(r.sim.Messages()); n != 0 {
		t.Errorf("%d messages sent", n)
	}
	if got := counterOf(t, r.s, "whatsapp_alert_messages_total", "", "", waalerts.ResultNoSender); got != 2 {
		t.Errorf("no_sender: %v, want 2", got)
	}
	// Once a sender works, Alertmanager's retry goes through.
	r.sim.Set(simulator.Wachat, wachatName, wachatKey, simulator.Behaviour{State: "open"})
	if _, err := r.c.Check(t.Context(), "ops-wachat"); err != nil {
		t.Fatal(err)
	}
	if code, body := r.post(t, amToken, "firing", blocked("firing", "shop", "evolution", time.Now())); code != 200 || len(r.sim.Messages()) != 2 {
		t.Errorf("retry: %d %s, %d messages", code, body, len(r.sim.Messages()))
	}
}

// Over the recipients' limit: not sent, counted, and 200.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	r := startRig(t, "authorized", "open", "  rate_limit: {messages: 1, per: 1h}\n")
	if code, _ := r.post(t, amToken, "firing", blocked("firing", "shop", "evolution", time.Now().Add(-time.Minute))); code != 200 {
		t.Fatal(code)
	}
	code, body := r.post(t, amToken, "firing", blocked("firing", "bank", "evolution", time.Now()))
	if code != 200 || !strings.Contains(body, "2 rate-limited") {
		t.Errorf("answer %d %q", code, body)
	}
	if n := len(r.sim.Messages()); n != 2 {
		t.Errorf("%d messages, want 2 (one per recipient)", n)
	}
	if got := counterOf(t, r.s, "whatsapp_alert_messages_total", "", "", waalerts.ResultRateLimited); got != 2 {
		t.Errorf("rate_limited: %v", got)
	}
}

func TestRefusedRequests(t *testing.T) {
	t.Parallel()
	r := startRig(t, "authorized", "open", "")
	if code, _ := r.post(t, "wrong-token-0123456789", "firing", blocked("firing", "shop", "evolution", time.Now())); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	resp, err := http.Post(r.url, "application/json", strings.NewReader(`{"version":"4","alerts":[`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, r.url, strings.NewReader(`{"version":"4","alerts":[`))
	req.Header.Set("Authorization", "Bearer "+amToken)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("malformed: %d", resp.StatusCode)
	}
	if n := len(r.sim.Messages()); n != 0 {
		t.Errorf("%d messages", n)
	}
	r.noLeaks(t)
}

// counterOf is the value of one series of the sender's metrics, found by
// its label values in the order sender_provider, sender, result or
// reason; 0 when there is no such series.
func counterOf(t *testing.T, s *waalerts.Sender, name string, values ...string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			last := got["result"] + got["reason"]
			if got["sender_provider"] == values[0] && got["sender"] == values[1] && last == values[2] {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
