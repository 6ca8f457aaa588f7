package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
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
	for k, want := range map[string]string{"severity": "critical", "provider": "waha", "name": "e2e-waha", "state": "FAILED", "job": "whatsapp"} {
		if a.Labels[k] != want {
			t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], want, a.Labels)
		}
	}
	if !strings.Contains(a.Annotations["description"], "ban") || !strings.Contains(a.Annotations["runbook_url"], "RUNBOOK.md#whatsappinstancefailed") {
		t.Errorf("annotations %v", a.Annotations)
	}
	for _, v := range a.Annotations {
		if strings.Contains(v, key) {
			t.Errorf("an annotation holds the API key: %q", v)
		}
	}
	pipe.wait(t, 60*time.Second, "firing WhatsAppInstanceFailed at whatsapp", alert("WhatsAppInstanceFailed", "firing", "whatsapp"))

	sim.Set(simulator.Waha, session, key, simulator.Behaviour{State: "WORKING"})
	pipe.wait(t, 120*time.Second, "resolved WhatsAppInstanceFailed", alert("WhatsAppInstanceFailed", "resolved", "whatsapp-pager"))
	pipe.onlyAlerts(t, func(name string) bool { return name == "WhatsAppInstanceFailed" })
}
