package waalerts

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzWhatsAppNotification feeds any body to the receiver: no panic, an
// answer from a fixed set that never holds a number or the token, and
// every text sent bounded, valid UTF-8, with at most the lines of
// maxListed alerts.
func FuzzWhatsAppNotification(f *testing.F) {
	for _, seed := range []string{
		string(notification(f, "firing", blockedAlert("shop", "greenapi", t0.Add(-time.Minute)))),
		string(notification(f, "resolved", blockedAlert("first", "greenapi", t0))),
		`{"version":"4","status":"firing","truncatedAlerts":18446744073709551615,"alerts":[{"status":"firing","labels":{"alertname":"\n\n2. x","name":"\u2028"},"annotations":{"runbook_url":"https://a/\u0000"},"startsAt":"0001-01-01T00:00:00Z"}]}`,
		`{"version":"4","alerts":null}`,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	fk := newFake(working("greenapi", "first"), working("wachat", "second"))
	s := New(nil, nil)
	s.inst = fk
	s.now = func() time.Time { return t0 }
	s.Update(fakeConfig(f, []string{"first", "second"}, []string{"4915100000001"}, ""))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/alertmanager/whatsapp", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		// Each input on its own: no message sent before, no window.
		fk.mu.Lock()
		fk.sent = nil
		fk.mu.Unlock()
		s.limiter.update(nil, 0, 0)
		s.limiter.update([]string{"4915100000001"}, 1, time.Hour)
		s.Handler().ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest:
		default:
			t.Fatalf("answer %d %q", rec.Code, rec.Body)
		}
		if a := rec.Body.String(); strings.Contains(a, "4915100000001") || strings.Contains(a, testToken) {
			t.Fatalf("answer %q", a)
		}
		for _, m := range fk.messages() {
			if n := utf8.RuneCountInString(m.text); n > maxText || !utf8.ValidString(m.text) || strings.Count(m.text, "\n") > 3+4*maxListed {
				t.Fatalf("text of %d characters, %d lines, valid %t", n, strings.Count(m.text, "\n"), utf8.ValidString(m.text))
			}
		}
	})
}
