package e2e

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/server"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// TestWahaFailedReachesPager runs the simulator's WAHA, the exporter, a
// real Prometheus with the shipped rules (a minute made 2 s) and a real
// Alertmanager with the shipped routes: a WORKING session that turns
// FAILED (a ban or a logout: WAHA does not tell them apart) pages
// (WhatsAppInstanceFailed at whatsapp-pager, with its WhatsApp copy) and
// resolves once WORKING again; a WORKING session fires nothing, and
// NotWorking, which the FAILED state also satisfies, is inhibited.
func TestWahaFailedReachesPager(t *testing.T) {
	t.Parallel() // minutes of waiting for Prometheus; run beside the others
	if testing.Short() {
		t.Skip("starts Prometheus and Alertmanager")
	}
	const session, key = "default", "e2e-waha-key"
	sim := simulator.New()
	sim.Set(simulator.Waha, session, key, simulator.Behaviour{State: "WORKING"})
	simURL := exportertest.StartSimulator(t, sim)
	e := exportertest.Start(t, exportertest.Inline("instances:\n"+
		simulator.ProviderOf(simulator.Waha).Config(simURL, "e2e-waha", session, key)), 0)
	pipe := startAlertPipeline(t, e.URL)
	pipe.prom.waitQuery(t, 60*time.Second, `whatsapp_instance_state{name="e2e-waha", state="WORKING"} == 1`, func(s []sample) bool { return len(s) == 1 })

	sim.Set(simulator.Waha, session, key, simulator.Behaviour{State: "FAILED"})
	a := pipe.wait(t, 120*time.Second, "firing WhatsAppInstanceFailed at whatsapp-pager", alert("WhatsAppInstanceFailed", "firing", "whatsapp-pager"))
	checkLabels(t, a, map[string]string{"severity": "critical", "provider": "waha", "name": "e2e-waha", "state": "FAILED", "job": "whatsapp"})
	if !strings.Contains(a.Annotations["description"], "ban") || !strings.Contains(a.Annotations["runbook_url"], "RUNBOOK.md#whatsappinstancefailed") {
		t.Errorf("annotations %v", a.Annotations)
	}
	checkAnnotationsHide(t, a, key)
	pipe.wait(t, 60*time.Second, "firing WhatsAppInstanceFailed at whatsapp", alert("WhatsAppInstanceFailed", "firing", "whatsapp"))

	sim.Set(simulator.Waha, session, key, simulator.Behaviour{State: "WORKING"})
	pipe.wait(t, 120*time.Second, "resolved WhatsAppInstanceFailed", alert("WhatsAppInstanceFailed", "resolved", "whatsapp-pager"))
	pipe.onlyAlerts(t, func(name string) bool { return name == "WhatsAppInstanceFailed" })
}

// TestWhatsmeowTemporaryBanReachesPager follows a wuzapi user (the
// whatsmeow family) temporarily banned: wuzapi's TemporaryBan
// notification, signed with the user's HMAC key, reaches the exporter's
// receiver; the next polls read disconnected, and the reason
// temporary_ban, which outlasts the state, pages (WhatsAppInstanceBanned
// at whatsapp-pager) until the user is logged_in again.
// WhatsAppInstanceDisconnectedTooLong stays quiet and NotWorking is
// inhibited: the pager hears of the ban alone.
func TestWhatsmeowTemporaryBanReachesPager(t *testing.T) {
	t.Parallel() // minutes of waiting for Prometheus; run beside the others
	if testing.Short() {
		t.Skip("starts Prometheus and Alertmanager")
	}
	const id, token, hmacKey = "wuzapi-e2e", "e2e-wuzapi-token", "e2e-wuzapi-hmac-key"
	sim := simulator.New()
	sim.Set(simulator.Whatsmeow, id, token, simulator.Behaviour{State: "logged_in"})
	sim.SetWebhook(simulator.Whatsmeow, id, simulator.WebhookAuth{HMACKey: hmacKey})
	simURL := exportertest.StartSimulator(t, sim)
	cfg := "instances:\n" + simulator.ProviderOf(simulator.Whatsmeow).Config(simURL, "e2e-wuzapi", id, token, fmt.Sprintf("webhook_hmac_key: %q", hmacKey))
	e := exportertest.StartWith(t, exportertest.Inline(cfg), collector.Options{Concurrency: 4, Notifications: true})
	receiver := httptest.NewServer(e.Receiver(server.DefaultReceiverTimeouts).Handler)
	t.Cleanup(receiver.Close)
	exportertest.PushNotifications(t, sim, receiver.URL, func(err error) { t.Errorf("notification: %v", err) })
	pipe := startAlertPipeline(t, e.URL)
	pipe.prom.waitQuery(t, 60*time.Second, `whatsapp_instance_state{name="e2e-wuzapi", state="logged_in"} == 1`, func(s []sample) bool { return len(s) == 1 })

	sim.Set(simulator.Whatsmeow, id, token, simulator.Behaviour{State: simulator.WhatsmeowTemporaryBan})
	a := pipe.wait(t, 120*time.Second, "firing WhatsAppInstanceBanned at whatsapp-pager", alert("WhatsAppInstanceBanned", "firing", "whatsapp-pager"))
	checkLabels(t, a, map[string]string{"severity": "critical", "provider": "whatsmeow", "name": "e2e-wuzapi", "reason": "temporary_ban", "job": "whatsapp"})
	if !strings.Contains(a.Annotations["description"], "temporarily") || !strings.Contains(a.Annotations["runbook_url"], "RUNBOOK.md#whatsappinstancebanned") {
		t.Errorf("annotations %v", a.Annotations)
	}
	checkAnnotationsHide(t, a, token, hmacKey)
	// The polls read disconnected by now; the ban still pages.
	pipe.prom.waitQuery(t, 60*time.Second, `whatsapp_instance_state{name="e2e-wuzapi", state="disconnected"} == 1`, func(s []sample) bool { return len(s) == 1 })

	sim.Set(simulator.Whatsmeow, id, token, simulator.Behaviour{State: "logged_in"})
	pipe.wait(t, 120*time.Second, "resolved WhatsAppInstanceBanned", alert("WhatsAppInstanceBanned", "resolved", "whatsapp-pager"))
	pipe.onlyAlerts(t, func(name string) bool { return name == "WhatsAppInstanceBanned" })
}
