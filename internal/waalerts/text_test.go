package waalerts

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/amwebhook"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

const runbookBlocked = "https://github.com/whatsapp-exporter/whatsapp_exporter/blob/main/alerts/RUNBOOK.md#whatsappinstanceblocked"

// blockedAlert is an alert as alerts/whatsapp.rules.yml writes
// WhatsAppInstanceBlocked and Alertmanager 0.28.1 sends it (notify/webhook
// Message, template.Alert).
func blockedAlert(name, provider string, startsAt time.Time) amwebhook.Alert {
	return amwebhook.Alert{
		Status: amwebhook.Firing,
		Labels: map[string]string{"alertname": "WhatsAppInstanceBlocked", "severity": "critical", "job": "whatsapp",
			"instance": "exporter:10040", "provider": provider, "name": name, "state": "blocked"},
		Annotations: map[string]string{
			"summary":     "WhatsApp instance " + name + " is blocked",
			"description": "a long text that a phone does not need",
			"runbook_url": runbookBlocked,
		},
		StartsAt:     startsAt,
		EndsAt:       startsAt.Add(time.Hour),
		GeneratorURL: "http://prometheus:9090/graph?g0.expr=...",
		Fingerprint:  "b1f1c2d3e4f5a6b7" + name,
	}
}

func TestFormatFiringAlert(t *testing.T) {
	m := &amwebhook.Message{Version: "4", Status: amwebhook.Firing, Alerts: []amwebhook.Alert{blockedAlert("shop", "greenapi", t0.Add(-12*time.Minute))}}
	got := Format(m, t0)
	want := "*FIRING* (1 alert)\n\n" +
		"1. WhatsAppInstanceBlocked: shop (greenapi), state blocked, firing for 12m\n" +
		"WhatsApp instance shop is blocked\n" +
		runbookBlocked
	if got != want {
		t.Errorf("Format:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(got, "long text") || strings.Contains(got, "prometheus:9090") {
		t.Errorf("the description or the generator URL is in the text:\n%s", got)
	}
}

func TestFormatResolvedAlert(t *testing.T) {
	a := blockedAlert("shop", "greenapi", t0.Add(-3*time.Hour))
	a.Status, a.EndsAt = amwebhook.Resolved, t0.Add(-time.Hour+-5*time.Minute)
	got := Format(&amwebhook.Message{Version: "4", Status: amwebhook.Resolved, Alerts: []amwebhook.Alert{a}}, t0)
	if !strings.HasPrefix(got, "*RESOLVED* (1 alert)\n\n1. WhatsAppInstanceBlocked: shop (greenapi), state blocked, resolved after 1h55m\n") {
		t.Errorf("Format:\n%s", got)
	}
}

// A group with both: firing first, then resolved, whatever the order
// Alertmanager sent.
func TestFormatMixedGroupListsFiringFirst(t *testing.T) {
	r := blockedAlert("old", "wachat", t0.Add(-time.Hour))
	r.Status, r.EndsAt = amwebhook.Resolved, t0.Add(-time.Minute)
	f := blockedAlert("new", "evolution", t0.Add(-30*time.Second))
	got := Format(&amwebhook.Message{Version: "4", Status: amwebhook.Firing, Alerts: []amwebhook.Alert{r, f}}, t0)
	if !strings.HasPrefix(got, "*FIRING* (2 alerts)\n\n1. WhatsAppInstanceBlocked: new (evolution), state blocked, firing for 30s") ||
		!strings.Contains(got, "\n\n2. WhatsAppInstanceBlocked: old (wachat), state blocked, resolved after 59m") {
		t.Errorf("Format:\n%s", got)
	}
}

// However many alerts and however long their labels, the text lists
// maxListed of them and stays far below GREEN-API's 20 000 characters.
func TestFormatHugeGroupIsBounded(t *testing.T) {
	long := strings.Repeat("ж", 5000)
	a := blockedAlert(long, long, t0.Add(-time.Minute))
	a.Labels["alertname"], a.Labels["state"] = long, long
	a.Annotations["summary"] = long
	a.Annotations["runbook_url"] = "https://example.com/" + strings.Repeat("a", maxRunbook-20)
	alerts := make([]amwebhook.Alert, 10000) // sharing their maps
	for k := range alerts {
		alerts[k] = a
	}
	got := Format(&amwebhook.Message{Version: "4", Status: amwebhook.Firing, Alerts: alerts, TruncatedAlerts: 5}, t0)
	if n := utf8.RuneCountInString(got); n > maxText {
		t.Errorf("%d characters, want at most %d", n, maxText)
	}
	if c := strings.Count(got, "\n\n1"); c != 2 { // 1. and 10.
		t.Errorf("listed %d alerts starting with 1, want 2 (1. and 10.):\n%.500s", c, got)
	}
	if !strings.HasSuffix(got, "\n\nand 9995 more") {
		t.Errorf("the end of the text: %q", got[len(got)-40:])
	}
	if !strings.Contains(got, "*FIRING* (10005 alerts)") {
		t.Errorf("header: %.80q", got)
	}
	t.Logf("longest text: %d characters", utf8.RuneCountInString(got))
}

func TestFormatCountsUnlistedByStatus(t *testing.T) {
	var alerts []amwebhook.Alert
	for k := range 12 {
		a := blockedAlert("i"+string(rune('a'+k)), "greenapi", t0.Add(-time.Minute))
		if k%2 == 0 {
			a.Status, a.EndsAt = amwebhook.Resolved, t0
		}
		alerts = append(alerts, a)
	}
	got := Format(&amwebhook.Message{Version: "4", Status: amwebhook.Firing, Alerts: alerts}, t0)
	if !strings.HasSuffix(got, "and 2 more (0 firing, 2 resolved)") {
		t.Errorf("Format ends with %q", got[len(got)-40:])
	}
}

// A label or annotation cannot add lines of its own (a forged alert), and
// only an http(s) link is written as the runbook.
func TestFormatFieldsStayOnTheirLine(t *testing.T) {
	a := blockedAlert("shop\n\n2. WhatsAppInstanceBlocked: bank", "greenapi\r", t0.Add(-time.Minute))
	a.Annotations["summary"] = "line\u2028two\x00"
	a.Annotations["runbook_url"] = "javascript:alert(1)"
	got := Format(&amwebhook.Message{Version: "4", Status: amwebhook.Firing, Alerts: []amwebhook.Alert{a}}, t0)
	if strings.Count(got, "\n") != 3 || strings.Contains(got, "javascript") || strings.Contains(got, "\x00") {
		t.Errorf("Format:\n%q", got)
	}
	for _, u := range []string{"ftp://x/y", "https://user:pw@example.com/", "/relative", "https://ex ample.com"} {
		if runbook(u) != "" {
			t.Errorf("runbook(%q) kept", u)
		}
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second:              "45s",
		12*time.Minute + time.Second:  "12m",
		3 * time.Hour:                 "3h",
		3*time.Hour + 5*time.Minute:   "3h5m",
		50 * time.Hour:                "2d2h",
		48*time.Hour + 10*time.Minute: "2d",
	} {
		if got := duration(d); got != want {
			t.Errorf("duration(%v) = %q, want %q", d, got, want)
		}
	}
}
