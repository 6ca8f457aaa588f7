package remediation

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRemediationWebhook sends Alertmanager's receiver any body with the
// right token: it never panics, answers 200 or a 4xx that names no part of
// the request, reboots only instances of the fleet that are in starting,
// each at most once, never more than the brake allows, and a resend of
// the same body reboots nothing more.
func FuzzRemediationWebhook(f *testing.F) {
	const token = "fuzz-alertmanager-token-01"
	for _, seed := range []string{
		`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"provider":"greenapi","name":"s1","remediation":"reboot"}}]}`,
		`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"provider":"greenapi","name":"ok","remediation":"reboot"}},{"status":"resolved","labels":{"provider":"greenapi","name":"s2","remediation":"reboot"}}]}`,
		`{"version":"4","alerts":[{"status":"firing","labels":{"provider":"evolution","name":"s1","remediation":"reboot"}}]}`,
		`{"version":"4","alerts":[{"status":"firing","labels":{"provider":"greenapi","name":"s1\u0000","remediation":"REBOOT"}}]}`,
		`{"version":"4","alerts":null}`, `{"version":4}`, `[]`, `null`, "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, fleet, _, _ := testEngine(t, "alertmanager: {bearer_token: "+token+"}\nremediation: {brake: {min_actions: 2, max_share: 0.01}}\n")
		for _, n := range []string{"s1", "s2", "s3"} {
			fleet.add(gr, n, "starting")
		}
		fleet.add(gr, "ok", "authorized")
		h := e.Handler()
		for range 2 {
			req := httptest.NewRequest(http.MethodPost, "/alertmanager/remediate", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK && (rec.Code < 400 || rec.Code > 499) {
				t.Fatalf("HTTP %d", rec.Code)
			}
			if rec.Code != http.StatusOK && len(body) > 8 && strings.Contains(rec.Body.String(), string(body)) {
				t.Fatalf("the answer quotes the request: %q", rec.Body.String())
			}
		}
		total := 0
		for _, n := range []string{"s1", "s2", "s3", "ok"} {
			_, r := fleet.calls(n)
			if r > 1 || (n == "ok" && r > 0) {
				t.Fatalf("%s rebooted %d times", n, r)
			}
			total += r
		}
		if total > 2 {
			t.Fatalf("%d reboots, over the brake's 2", total)
		}
	})
}
