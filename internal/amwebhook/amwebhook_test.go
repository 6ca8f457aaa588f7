package amwebhook_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/amwebhook"
)

// message is what Alertmanager v0.28.1 sends (notify/webhook's Message):
// its field names, as its webhook documentation lists them.
const message = `{"receiver":"whatsapp-exporter-remediation","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"WhatsAppInstanceStartingRemediate","name":"shop","provider":"greenapi","remediation":"reboot"},"annotations":{"summary":"Anna's shop"},"startsAt":"2026-12-02T09:00:00.123Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus/graph","fingerprint":"1f2e3d4c5b6a7988"}],"groupLabels":{"name":"shop","provider":"greenapi"},"commonLabels":{"alertname":"WhatsAppInstanceStartingRemediate"},"commonAnnotations":{},"externalURL":"http://alertmanager:9093","version":"4","groupKey":"{}:{name=\"shop\"}","truncatedAlerts":2}`

const token = "am-bearer-0123456789abcdef"

func post(body io.Reader, auth string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/alertmanager/remediate", body)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}

func TestRead(t *testing.T) {
	m, err := amwebhook.Read(post(strings.NewReader(message), "Bearer "+token), token)
	if err != nil {
		t.Fatal(err)
	}
	a := m.Alerts[0]
	if m.Version != "4" || m.TruncatedAlerts != 2 || m.GroupLabels["name"] != "shop" || a.Status != amwebhook.Firing ||
		a.Labels["remediation"] != "reboot" || a.Fingerprint != "1f2e3d4c5b6a7988" ||
		!a.StartsAt.Equal(time.Date(2026, 12, 2, 9, 0, 0, 123e6, time.UTC)) || !a.EndsAt.IsZero() {
		t.Errorf("decoded %+v", m)
	}
	// No token configured: the caller's web configuration authenticates.
	if _, err := amwebhook.Read(post(strings.NewReader(message), ""), ""); err != nil {
		t.Errorf("without a token: %v", err)
	}
}

func TestReadRefuses(t *testing.T) {
	endless := io.MultiReader(strings.NewReader(`{"version":"4","x":"`), neverEnding{})
	for _, tc := range []struct {
		name   string
		req    *http.Request
		want   error
		status int
	}{
		{"no token", post(strings.NewReader(message), ""), amwebhook.ErrUnauthorized, 401},
		{"wrong token", post(strings.NewReader(message), "Bearer "+token+"x"), amwebhook.ErrUnauthorized, 401},
		{"basic, not bearer", post(strings.NewReader(message), "Basic "+token), amwebhook.ErrUnauthorized, 401},
		{"GET", httptest.NewRequest(http.MethodGet, "/", nil), amwebhook.ErrMethod, 405},
		{"not JSON", post(strings.NewReader("Anna's secret <html>"), "Bearer "+token), amwebhook.ErrMalformed, 400},
		{"wrong type", post(strings.NewReader(`{"version":"4","alerts":"Anna's secret"}`), "Bearer "+token), amwebhook.ErrMalformed, 400},
		{"version 3", post(strings.NewReader(`{"version":"3"}`), "Bearer "+token), amwebhook.ErrMalformed, 400},
		{"bad status", post(strings.NewReader(`{"version":"4","alerts":[{"status":"Anna's secret"}]}`), "Bearer "+token), amwebhook.ErrMalformed, 400},
		{"endless", post(endless, "Bearer "+token), amwebhook.ErrTooLarge, 413},
	} {
		_, err := amwebhook.Read(tc.req, token)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			continue
		}
		if got := amwebhook.Status(err); got != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.status)
		}
		// The errors never quote the request: it may carry a token, or
		// people's words.
		if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "Anna") {
			t.Errorf("%s: the error quotes the request: %v", tc.name, err)
		}
	}
}

// neverEnding is a body that never ends.
type neverEnding struct{}

func (neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func TestCountAlerts(t *testing.T) {
	got := map[string]int{}
	ctx := amwebhook.WithAlertCounter(context.Background(), func(outcome string, n int) { got[outcome] += n })
	amwebhook.CountAlerts(ctx, "ok", 2)
	amwebhook.CountAlerts(ctx, "ok", 1)
	amwebhook.CountAlerts(context.Background(), "ok", 5) // no counter: nothing to count
	if got["ok"] != 3 || len(got) != 1 {
		t.Errorf("counted %v", got)
	}
}
