package config_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

const oneInstance = `
instances:
  - {provider: fake, name: shop, ref: "1", password: p}
`

func TestAlertingSections(t *testing.T) {
	t.Parallel()
	cfg, _, err := testtool.LoadYAML(t, oneInstance+`
alertmanager:
  bearer_token_file: secrets/am
remediation:
  dry_run: true
  reboot_states: [starting, yellowCard]
whatsapp_alerts:
  senders: [shop, backup]
  recipients: ["+79001234567", "4915112345678"]
`, map[string]string{"secrets/am": "am-token-" + secretValue + "\n"}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Alertmanager.Token() != "am-token-"+secretValue {
		t.Errorf("token not read from its file")
	}
	rm := cfg.Remediation
	if !rm.DryRun || time.Duration(rm.Window) != config.DefaultRemediationWindow || time.Duration(rm.RecheckAfter) != config.DefaultRecheckAfter ||
		!slices.Equal(rm.RebootStates, []string{"starting", "yellowCard"}) ||
		rm.Brake.MaxShare != config.DefaultBrakeMaxShare || rm.Brake.MinActions != config.DefaultBrakeMinActions || time.Duration(rm.Brake.Window) != config.DefaultBrakeWindow {
		t.Errorf("remediation: %+v", rm)
	}
	wa := cfg.WhatsAppAlerts
	if !slices.Equal(wa.Recipients, []string{"79001234567", "4915112345678"}) || wa.RateLimit.Messages != config.DefaultRecipientMessages || time.Duration(wa.RateLimit.Per) != config.DefaultRecipientPer {
		t.Errorf("whatsapp_alerts: %+v", wa)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), secretValue) {
		t.Errorf("the marshalled configuration shows the token:\n%s", out)
	}
	// People's numbers are not shown either, but for their last digits.
	if strings.Contains(string(out), "9001234567") || !strings.Contains(string(out), "<number …67>") {
		t.Errorf("the marshalled configuration shows the recipients' numbers:\n%s", out)
	}

	// Without the remediation section nothing is rebooted; the default
	// states are starting only (yellowCard is opt-in).
	cfg, _, err = testtool.LoadYAML(t, oneInstance+"remediation: {}\n", nil, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Remediation.RebootStates, []string{"starting"}) || cfg.Remediation.DryRun {
		t.Errorf("defaults: %+v", cfg.Remediation)
	}
	if cfg.Alertmanager.Token() != "" {
		t.Error("a token without an alertmanager section")
	}
}

func TestAlertingSectionErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yaml, want string }{
		{"alertmanager: {bearer_token: short}", "alertmanager: field bearer_token: shorter than 16 characters"},
		{"alertmanager: {bearer_token: " + secretValue + ", bearer_token_file: f}", "alertmanager: field bearer_token: set bearer_token or bearer_token_file, not both"},
		{"alertmanager: {bearer_token_file: missing}", "alertmanager: field bearer_token_file:"},
		{"alertmanager: {token: x}", "field token not found"},
		{"remediation: {reboot_states: [blocked]}", `remediation: field reboot_states: "blocked": want one of starting, yellowCard`},
		{"remediation: {reboot_states: [starting, starting]}", `remediation: field reboot_states: "starting" listed twice`},
		{"remediation: {window: 1m, recheck_after: 2m}", "remediation: field recheck_after: must be positive and shorter than window (1m)"},
		{"remediation: {brake: {max_share: 1.5}}", "remediation: field brake.max_share: must be between 0 and 1"},
		{"remediation: {dry: true}", "field dry not found"},
		{"whatsapp_alerts: {recipients: ['79001234567']}", "whatsapp_alerts: field senders: at least one sender instance is required"},
		{"whatsapp_alerts: {senders: [a, a], recipients: ['79001234567']}", `whatsapp_alerts: field senders: "a" listed twice`},
		{"whatsapp_alerts: {senders: [a]}", "whatsapp_alerts: field recipients: at least one number is required"},
		{"whatsapp_alerts: {senders: [a], recipients: ['call me']}", "whatsapp_alerts: field recipients[0]: want a number with its country code"},
		{"whatsapp_alerts: {senders: [a], recipients: ['+79001234567', '79001234567']}", "whatsapp_alerts: field recipients[1]: listed twice"},
		{"whatsapp_alerts: {senders: [a], recipients: ['79001234567'], rate_limit: {messages: -1}}", "whatsapp_alerts: field rate_limit: messages and per must be positive"},
	} {
		_, _, err := testtool.LoadYAML(t, oneInstance+tc.yaml+"\n", nil, config.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %q", tc.yaml, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secretValue) {
			t.Errorf("%s: the error quotes the token", tc.yaml)
		}
	}
}
