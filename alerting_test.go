package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

const (
	rulesFile        = "alerts/whatsapp.rules.yml"
	alertmanagerFile = "alerts/alertmanager.yml"
)

// TestAlertingEndToEnd runs the simulator, the exporter, a real Prometheus
// with the shipped rules (durations shortened) and a real Alertmanager with
// the shipped routes, and follows a blocked instance to the webhook and
// back.
func TestAlertingEndToEnd(t *testing.T) {
	t.Parallel() // minutes of waiting for Prometheus and refreshes; run beside the others
	if testing.Short() {
		t.Skip("starts Prometheus and Alertmanager")
	}
	sink := testtool.NewWebhookSink(t)
	amAddr, amLogs := testtool.StartAlertmanager(t, alertmanagerFile, sink.URL)

	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized"})
	simURL := startSimulator(t, sim)
	e := startExporter(t, configSource{inline: []byte("instances:\n" +
		simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "e2e-shop", "1101000001", "e2e-token"))}, 0)

	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if short := testtool.ShortenDurations(string(rules)); !strings.Contains(short, "for: 6s") || !strings.Contains(short, "[20s]") || strings.Contains(short, "for: 3m") {
		t.Fatalf("shortening the durations failed:\n%s", short)
	}
	prom := startPrometheus(t, scrapeConfig(singleEndpoint, strings.TrimPrefix(e.url, "http://")), amAddr)
	promLogs := prom.logs

	// Wait for the first scrapes, then block the number.
	for deadline := time.Now().Add(30 * time.Second); sim.Calls(simulator.GreenAPI, "1101000001") < 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus does not scrape the exporter:\n%s", promLogs)
		}
	}
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "blocked"})
	blocked := func(status string) func(testtool.Notification, testtool.Alert) bool {
		return func(n testtool.Notification, a testtool.Alert) bool {
			return a.Labels["alertname"] == "WhatsAppInstanceBlocked" && a.Status == status && n.Receiver == "whatsapp-pager"
		}
	}
	a := sink.Wait(t, 60*time.Second, "firing WhatsAppInstanceBlocked at whatsapp-pager", blocked("firing"), amLogs, promLogs)
	for k, want := range map[string]string{"severity": "critical", "provider": "greenapi", "name": "e2e-shop", "state": "blocked", "job": "whatsapp"} {
		if a.Labels[k] != want {
			t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], want, a.Labels)
		}
	}
	if !strings.Contains(a.Annotations["description"], "e2e-shop") || !strings.Contains(a.Annotations["runbook_url"], "RUNBOOK.md#whatsappinstanceblocked") {
		t.Errorf("annotations %v", a.Annotations)
	}

	// Authorized again reaches the operator as the resolved notification.
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized"})
	sink.Wait(t, 60*time.Second, "resolved WhatsAppInstanceBlocked", blocked("resolved"), amLogs, promLogs)

	// Nothing else fired along the way.
	for _, n := range sink.Notifications() {
		for _, a := range n.Alerts {
			if a.Labels["alertname"] != "WhatsAppInstanceBlocked" {
				t.Errorf("unexpected notification %s %v", a.Status, a.Labels)
			}
		}
	}
}

// TestQueueAlertEndToEnd follows an authorized instance whose outgoing
// queue grows to Alertmanager, and back once it drains.
func TestQueueAlertEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Prometheus and Alertmanager")
	}
	sink := testtool.NewWebhookSink(t)
	amAddr, amLogs := testtool.StartAlertmanager(t, alertmanagerFile, sink.URL)
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized"})
	simURL := startSimulator(t, sim)
	e := startExporter(t, configSource{inline: []byte("instances:\n" +
		simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "e2e-queue", "1101000001", "e2e-token", "messages_queue: true"))}, 0)
	prom := startPrometheus(t, scrapeConfig(singleEndpoint, strings.TrimPrefix(e.url, "http://")), amAddr)
	prom.waitQuery(t, 30*time.Second, `whatsapp_outgoing_queue_messages{name="e2e-queue"} == 0`, func(s []sample) bool { return len(s) == 1 })

	// Authorized, and three more messages queued every second.
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized", QueueRate: 3})
	growing := func(status string) func(testtool.Notification, testtool.Alert) bool {
		return func(n testtool.Notification, a testtool.Alert) bool {
			return a.Labels["alertname"] == "WhatsAppInstanceQueueGrowing" && a.Status == status && n.Receiver == "whatsapp-pager"
		}
	}
	a := sink.Wait(t, 120*time.Second, "firing WhatsAppInstanceQueueGrowing at whatsapp-pager", growing("firing"), amLogs, prom.logs)
	for k, want := range map[string]string{"severity": "critical", "provider": "greenapi", "name": "e2e-queue", "job": "whatsapp"} {
		if a.Labels[k] != want {
			t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], want, a.Labels)
		}
	}
	if !strings.Contains(a.Annotations["runbook_url"], "#whatsappinstancequeuegrowing") {
		t.Errorf("annotations %v", a.Annotations)
	}

	// The queue drains: resolved.
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized"})
	sink.Wait(t, 120*time.Second, "resolved WhatsAppInstanceQueueGrowing", growing("resolved"), amLogs, prom.logs)
	for _, n := range sink.Notifications() {
		for _, a := range n.Alerts {
			if !strings.HasPrefix(a.Labels["alertname"], "WhatsAppInstanceQueue") {
				t.Errorf("unexpected notification %s %v", a.Status, a.Labels)
			}
		}
	}
}
