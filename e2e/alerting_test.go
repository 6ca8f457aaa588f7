package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
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
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized"})
	simURL := exportertest.StartSimulator(t, sim)
	e := exportertest.Start(t, exportertest.Inline("instances:\n"+
		simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "e2e-shop", "1101000001", "e2e-token")), 0)

	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if short := testtool.ShortenDurations(string(rules)); !strings.Contains(short, "for: 6s") || !strings.Contains(short, "[20s]") || strings.Contains(short, "for: 3m") {
		t.Fatalf("shortening the durations failed:\n%s", short)
	}
	pipe := startAlertPipeline(t, e.URL)

	// Wait for the first scrapes, then block the number.
	pipe.prom.waitScrapes(t, sim, "1101000001")
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "blocked"})
	a := pipe.wait(t, 60*time.Second, "firing WhatsAppInstanceBlocked at whatsapp-pager", alert("WhatsAppInstanceBlocked", "firing", "whatsapp-pager"))
	checkLabels(t, a, map[string]string{"severity": "critical", "provider": "greenapi", "name": "e2e-shop", "state": "blocked", "job": "whatsapp"})
	if !strings.Contains(a.Annotations["description"], "e2e-shop") || !strings.Contains(a.Annotations["runbook_url"], "RUNBOOK.md#whatsappinstanceblocked") {
		t.Errorf("annotations %v", a.Annotations)
	}

	// Authorized again reaches the operator as the resolved notification.
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized"})
	pipe.wait(t, 60*time.Second, "resolved WhatsAppInstanceBlocked", alert("WhatsAppInstanceBlocked", "resolved", "whatsapp-pager"))

	// Nothing else fired along the way.
	pipe.onlyAlerts(t, func(name string) bool { return name == "WhatsAppInstanceBlocked" })
}

// TestQueueAlertEndToEnd follows an authorized instance whose outgoing
// queue grows to Alertmanager, and back once it drains.
func TestQueueAlertEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Prometheus and Alertmanager")
	}
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized"})
	simURL := exportertest.StartSimulator(t, sim)
	e := exportertest.Start(t, exportertest.Inline("instances:\n"+
		simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "e2e-queue", "1101000001", "e2e-token", "messages_queue: true")), 0)
	pipe := startAlertPipeline(t, e.URL)
	pipe.prom.waitQuery(t, 30*time.Second, `whatsapp_outgoing_queue_messages{name="e2e-queue"} == 0`, func(s []sample) bool { return len(s) == 1 })

	// Authorized, and three more messages queued every second.
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized", QueueRate: 3})
	a := pipe.wait(t, 120*time.Second, "firing WhatsAppInstanceQueueGrowing at whatsapp-pager", alert("WhatsAppInstanceQueueGrowing", "firing", "whatsapp-pager"))
	checkLabels(t, a, map[string]string{"severity": "critical", "provider": "greenapi", "name": "e2e-queue", "job": "whatsapp"})
	if !strings.Contains(a.Annotations["runbook_url"], "#whatsappinstancequeuegrowing") {
		t.Errorf("annotations %v", a.Annotations)
	}

	// The queue drains: resolved.
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized"})
	pipe.wait(t, 120*time.Second, "resolved WhatsAppInstanceQueueGrowing", alert("WhatsAppInstanceQueueGrowing", "resolved", "whatsapp-pager"))
	pipe.onlyAlerts(t, func(name string) bool { return strings.HasPrefix(name, "WhatsAppInstanceQueue") })
}

// TestNotWorkingAlertEndToEnd runs the exporter's binary against an
// Evolution API 1.8 instance that cannot reach WhatsApp: it goes
// connecting, close (Baileys' 408, connection lost), connecting, ... for
// ever, and the server pushes each close with its code. No state lasts
// for the `for` of its own alert, so NotAuthorized and ConnectingTooLong
// never fire; WhatsAppInstanceNotWorking reaches the pager, its
// description naming the states and the reason, and resolves once the
// instance is open again.
func TestNotWorkingAlertEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Prometheus and Alertmanager")
	}
	const id, key = "e2e-bot", "e2e-key"
	auth := simulator.WebhookAuth{PathSecret: "e2e-path-secret-0123456789"}
	sim := simulator.New()
	sim.SetEvolutionVersion(simulator.Evolution18) // pushes every close, with its code
	sim.Set(simulator.Evolution, id, key, simulator.Behaviour{State: "open"})
	sim.SetWebhook(simulator.Evolution, id, auth)
	simURL := exportertest.StartSimulator(t, sim)
	cfg := filepath.Join(t.TempDir(), "whatsapp_exporter.yml")
	testtool.WriteFiles(t, filepath.Dir(cfg), map[string]string{filepath.Base(cfg): "instances:\n" +
		simulator.ProviderOf(simulator.Evolution).Config(simURL, id, id, key, auth.Config()...)})
	receiver := testtool.FreeAddr(t)
	_, base, logs := exportertest.StartBinary(t, "--config.file="+cfg, "--webhook.listen-address="+receiver)
	exportertest.PushNotifications(t, sim, "http://"+receiver, func(err error) { t.Errorf("notification: %v\n%s", err, logs) })
	pipe := startAlertPipeline(t, base)
	pipe.prom.waitQuery(t, 30*time.Second, `whatsapp_instance_state{name="e2e-bot", state="open"} == 1`, func(s []sample) bool { return len(s) == 1 })

	// The durations are shortened to 2 s a minute: NotAuthorized's 3m
	// is 6 s, ConnectingTooLong's 5m 10 s, NotWorking's 10m 20 s. Each
	// state lasts less than its alert's `for`, and longer than a scrape
	// (1 s), so Prometheus sees both, as a real instance retrying every
	// ten seconds or so is seen by scrapes a minute apart.
	sim.Schedule(simulator.Evolution, id, key,
		simulator.Step{Behaviour: simulator.Behaviour{State: "connecting", Reason: 408}, For: 2 * time.Second},
		simulator.Step{Behaviour: simulator.Behaviour{State: "close", Reason: 408}, For: 3 * time.Second})
	a := pipe.wait(t, 60*time.Second, "firing WhatsAppInstanceNotWorking at whatsapp-pager", alert("WhatsAppInstanceNotWorking", "firing", "whatsapp-pager"))
	checkLabels(t, a, map[string]string{"severity": "critical", "provider": "evolution", "name": id, "job": "whatsapp"})
	if _, ok := a.Labels["state"]; ok {
		t.Errorf("NotWorking has a state label, which would restart its `for` at each change: %v", a.Labels)
	}
	desc := a.Annotations["description"]
	if !regexp.MustCompile(`^evolution instance e2e-bot has been in no working state for 10 minutes \(seen: close, connecting\) and is (close|connecting) now \(last disconnection: connection_lost\)\.`).MatchString(desc) ||
		!strings.Contains(a.Annotations["runbook_url"], "RUNBOOK.md#whatsappinstancenotworking") {
		t.Errorf("annotations %v", a.Annotations)
	}
	t.Logf("description: %s", desc)

	// Open again: resolved.
	sim.Set(simulator.Evolution, id, key, simulator.Behaviour{State: "open"})
	pipe.wait(t, 30*time.Second, "resolved WhatsAppInstanceNotWorking", alert("WhatsAppInstanceNotWorking", "resolved", "whatsapp-pager"))

	// Neither state lasted for its own alert.
	pipe.onlyAlerts(t, func(name string) bool { return name == "WhatsAppInstanceNotWorking" })
}
