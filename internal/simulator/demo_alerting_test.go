package simulator_test

import (
	"slices"
	"testing"

	_ "github.com/whatsapp-exporter/whatsapp_exporter/collector" // registers the providers
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// TestDemoConfigAlerting: the demo's configuration loads with a live
// remediation, a bearer token for Alertmanager, and WhatsApp alerts whose
// senders are demo instances.
func TestDemoConfigAlerting(t *testing.T) {
	cfg, err := config.Load([]byte(simulator.DemoConfig("http://127.0.0.1:1")), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Alertmanager.Token() != simulator.DemoAlertmanagerToken {
		t.Error("the demo's Alertmanager token is not set")
	}
	if cfg.Remediation == nil || cfg.Remediation.DryRun {
		t.Errorf("remediation = %+v, want live", cfg.Remediation)
	}
	wa := cfg.WhatsAppAlerts
	if wa == nil || !slices.Equal(wa.Senders, []string{simulator.DemoAlertSender, simulator.DemoAlertFallback}) ||
		!slices.Equal(wa.Recipients, []string{simulator.DemoAlertRecipient}) {
		t.Fatalf("whatsapp_alerts = %+v", wa)
	}
	names := map[string]string{}
	for _, in := range cfg.Instances {
		names[in.Spec.Base().Name] = in.Provider()
	}
	for _, sender := range wa.Senders {
		if names[sender] == "" {
			t.Errorf("sender %s is no demo instance", sender)
		}
	}
	for _, name := range []string{"demo-stuck", "demo-stuck-hard", "demo-yellow"} {
		if names[name] != "greenapi" {
			t.Errorf("no GREEN-API demo instance %s", name)
		}
	}
}
