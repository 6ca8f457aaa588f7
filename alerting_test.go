package main

import (
	"fmt"
	"os"
	"path/filepath"
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
	if testing.Short() {
		t.Skip("starts Prometheus and Alertmanager")
	}
	prometheus := testtool.Require(t, "prometheus")
	sink := testtool.NewWebhookSink(t)
	amAddr, amLogs := testtool.StartAlertmanager(t, alertmanagerFile, sink.URL)

	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized"})
	simURL := startSimulator(t, sim)
	e := startExporter(t, configSource{inline: []byte("instances:\n" +
		simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "e2e-shop", "1101000001", "e2e-token"))}, 0)

	dir := t.TempDir()
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	short := testtool.ShortenDurations(string(rules))
	if !strings.Contains(short, "for: 6s") || !strings.Contains(short, "[20s]") || strings.Contains(short, "for: 3m") {
		t.Fatalf("shortening the durations failed:\n%s", short)
	}
	promCfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{targets: [%q]}]
scrape_configs:
  - job_name: whatsapp
    static_configs: [{targets: [%q]}]
`, amAddr, strings.TrimPrefix(e.url, "http://"))
	for name, content := range map[string]string{"rules.yml": short, "prometheus.yml": promCfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	promAddr := testtool.FreeAddr(t)
	promLogs := testtool.StartProcess(t, promAddr, "/-/ready", prometheus,
		"--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--rules.alert.resend-delay=1s")

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
