package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// TestMetaQualityRedReachesPager runs the simulator's Graph API, the
// exporter, a real Prometheus with the shipped rules (a minute made 2 s)
// and a real Alertmanager with the shipped routes: a Cloud API number
// whose quality drops from GREEN to RED pages (WhatsAppMetaQualityRed at
// whatsapp-pager) and resolves once GREEN again; a CONNECTED number fires
// no generic alert on the way (WhatsAppInstanceNotWorking leaves Meta's
// numbers alone).
func TestMetaQualityRedReachesPager(t *testing.T) {
	t.Parallel() // minutes of waiting for Prometheus and polls; run beside the others
	if testing.Short() {
		t.Skip("starts Prometheus and Alertmanager")
	}
	const id, token = "106540352242922", "e2e-meta-system-user-token"
	number := func(quality string) simulator.Behaviour {
		return simulator.Behaviour{State: "CONNECTED", Meta: &simulator.MetaNumber{Quality: quality, Limit: "TIER_2K"}}
	}
	sim := simulator.New()
	sim.Set(simulator.Meta, id, token, number("GREEN"))
	simURL := exportertest.StartSimulator(t, sim)
	// The shortest poll_interval: Meta's budget is per hour, not per
	// minute, so the rules' shortened durations do not shorten it.
	e := exportertest.Start(t, exportertest.Inline("instances:\n"+
		simulator.ProviderOf(simulator.Meta).Config(simURL, "e2e-meta", id, token, "poll_interval: 20s")), 0)
	pipe := startAlertPipeline(t, e.URL)
	pipe.prom.waitQuery(t, 60*time.Second, `whatsapp_meta_quality_rating{name="e2e-meta", rating="GREEN"} == 1`, func(s []sample) bool { return len(s) == 1 })

	sim.Set(simulator.Meta, id, token, number("RED"))
	a := pipe.wait(t, 120*time.Second, "firing WhatsAppMetaQualityRed at whatsapp-pager", alert("WhatsAppMetaQualityRed", "firing", "whatsapp-pager"))
	checkLabels(t, a, map[string]string{"severity": "critical", "provider": "meta", "name": "e2e-meta", "rating": "RED", "job": "whatsapp"})
	if !strings.Contains(a.Annotations["description"], "e2e-meta") || !strings.Contains(a.Annotations["runbook_url"], "RUNBOOK.md#whatsappmetaqualityred") {
		t.Errorf("annotations %v", a.Annotations)
	}
	checkAnnotationsHide(t, a, token, id)

	sim.Set(simulator.Meta, id, token, number("GREEN"))
	pipe.wait(t, 120*time.Second, "resolved WhatsAppMetaQualityRed", alert("WhatsAppMetaQualityRed", "resolved", "whatsapp-pager"))
	pipe.onlyAlerts(t, func(name string) bool { return name == "WhatsAppMetaQualityRed" })
}
