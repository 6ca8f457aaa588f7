package collector

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// The WAHA client is tested with harness_client_test.go, as the other
// providers' are: each row starts a loopback server that serves a
// response body from testdata/waha, and the client is built from a YAML
// configuration as in production. Then its account listing
// (accounts_test.go's harness), its notifications, and a server of the
// simulator end to end.

const (
	// wahaTestSession needs escaping in a URL path: a slash and a space.
	wahaTestSession = "shop/eu 1"
	wahaTestMethod  = "getSession"
	// wahaTestNumber is the phone number of the fixtures' me.id: never
	// in an error, a log line or the exposition.
	wahaTestNumber = "79111111"
)

// wahaTestKeys are the API keys and api_url path prefixes every row runs
// with: a key whose characters are escaped in a path, a query and JSON,
// behind a reverse proxy's prefix, and a plain key shaped like WAHA's
// generated ones on a bare server URL.
var wahaTestKeys = []struct{ name, key, prefix string }{
	{"escaped_key_with_prefix", "waha/k3y+s=cr t&\"x", "/waha"},
	{"plain_key", "321c0c5f4b0d4ac8a1d2c3b4e5f60718", ""},
}

// wahaReply serves a fixture of testdata/waha with a status and header
// pairs; {{KEY}} and {{KEY_QUERY}} become the X-Api-Key header's value,
// raw and query-escaped, as a server that echoes its request would.
func wahaReply(t *testing.T, status int, fixture string, header ...string) providerServe {
	t.Helper()
	return replyFixture(t, "waha", status, fixture, func(r *http.Request) []string {
		key := r.Header.Get("X-Api-Key")
		return []string{"{{KEY_QUERY}}", url.QueryEscape(key), "{{KEY}}", escapeJSON(key)}
	}, header...)
}

func wahaPadded(n int) []byte {
	return paddedBody(`{"name":"default","status":"WORKING"}`, n)
}

func wahaYAML(apiURL, session, key string) string {
	return instanceYAML("waha", "session", session, "api_key", key, "api_url", apiURL)
}

// wahaTarget is a session with a key, behind an api_url path prefix: the
// session in the path, the key in X-Api-Key and nowhere in the URL.
func wahaTarget(label, session, key, prefix string) providerTarget {
	p := prefix + "/api/sessions/"
	return providerTarget{
		label:    label,
		provider: "waha",
		method:   wahaTestMethod,
		name:     session, // the default name is the session's
		secret:   key,
		apiPath:  prefix,
		yaml:     func(apiURL string) string { return wahaYAML(apiURL, session, key) },
		request:  wantRequest{path: p + session, escapedPath: p + url.PathEscape(session), keyHeaders: http.Header{"X-Api-Key": {key}}, notInURL: key},
		logURL:   p,
	}
}

func init() {
	providerTests["waha"] = providerTest{
		targets:   wahaTargets,
		stateBody: func(state string) string { return `{"name":"default","status":"` + state + `"}` },
		goodState: "WORKING",
	}
	listingTargets["waha"] = listingTarget{
		provider: "waha",
		yaml: func(u string) string {
			return fmt.Sprintf("  - {name: server, provider: waha, api_url: %q, api_key: %q}\n", u, listingSecrets[0])
		},
		path:        "/api/sessions",
		checkHeader: func(h http.Header) bool { return h.Get("X-Api-Key") == listingSecrets[0] },
	}
	// The list is live: every row carries its session's state.
	listingCases["waha"] = []listingCase{
		{fixture: "list_doc.json", status: 200, want: []string{"default default  WORKING"}},
		{fixture: "list_all.json", status: 200, want: []string{
			"support support  WORKING", "onboarding onboarding  SCAN_QR_CODE", "passkey passkey  PASSKEY_REQUIRED",
			"confirm confirm  PASSKEY_CONFIRMATION_REQUIRED", "booting booting  STARTING", "blocked blocked  FAILED",
			"archive archive  STOPPED"}},
		{fixture: "empty.json", status: 200},
		{fixture: "malformed_row.json", status: 200, want: []string{"ok ok  WORKING", "no-status no-status  unknown", "also-ok also-ok  FAILED"}, malformed: 5},
		{fixture: "not_array.json", status: 200, wantErr: ReasonBadResponse},
		{body: `{"message":"Unauthorized","statusCode":401}`, status: 401, wantErr: ReasonUnauthorized},
		{body: `{"message":"Forbidden resource","error":"Forbidden","statusCode":403}`, status: 403, wantErr: ReasonUnauthorized},
		{body: `{"message":"Cannot GET /api/sessions","error":"Not Found","statusCode":404}`, status: 404, wantErr: ReasonClientError},
		{body: "Too Many Requests", status: 429, header: []string{"Retry-After", "30"}, wantErr: ReasonRateLimited},
		{body: `{"statusCode":500,"error":"boom","stack":"Error: boom"}`, status: 500, wantErr: ReasonServerError},
		{body: "{", status: 200, wantErr: ReasonBadResponse},
	}
}

func wahaTargets() []providerTarget {
	var targets []providerTarget
	for _, k := range wahaTestKeys {
		targets = append(targets, wahaTarget(k.name, wahaTestSession, k.key, k.prefix))
	}
	return targets
}

func wahaCases(t *testing.T) []providerCase {
	reply := func(status int, fixture string, header ...string) providerServe {
		return wahaReply(t, status, fixture, header...)
	}
	cases := []providerCase{
		// Each status, the documented answer first.
		{name: "200 WORKING documented example", serve: reply(200, "session_working_doc.json"), wantState: "WORKING",
			wantNotText: []string{wahaTestNumber}},
		{name: "200 STOPPED", serve: reply(200, "session_stopped.json"), wantState: "STOPPED"},
		{name: "200 STARTING", serve: reply(200, "session_starting.json"), wantState: "STARTING"},
		{name: "200 SCAN_QR_CODE", serve: reply(200, "session_scan_qr_code.json"), wantState: "SCAN_QR_CODE"},
		{name: "200 PASSKEY_REQUIRED", serve: reply(200, "session_passkey_required.json"), wantState: "PASSKEY_REQUIRED"},
		{name: "200 PASSKEY_CONFIRMATION_REQUIRED", serve: reply(200, "session_passkey_confirmation_required.json"), wantState: "PASSKEY_CONFIRMATION_REQUIRED"},
		{name: "200 FAILED", serve: reply(200, "session_failed.json"), wantState: "FAILED"},
		// The session's config may echo the key (an HMAC key, a custom
		// header): a successful answer is never quoted.
		{name: "200 echoing the key in its config", serve: reply(200, "session_echo_key.json"), wantState: "WORKING"},
		// An unknown value is returned raw; the collector maps it.
		{name: "200 unknown status", serve: reply(200, "session_unknown_status.json"), wantState: "RESTRICTED"},

		// WAHA's errors, in NestJS's shapes.
		{name: "401 documented body", serve: reply(401, "error_401.json"), wantReason: ReasonUnauthorized,
			wantText: []string{"HTTP 401", "Unauthorized"}},
		{name: "403 a key scoped to another session", serve: reply(403, "error_403.json"), wantReason: ReasonUnauthorized,
			wantText: []string{"HTTP 403", "Forbidden resource"}},
		{name: "404 unknown session", serve: reply(404, "error_404_session.json"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 404", strconv.Quote(wahaTestSession), "check session", "Session not found"}},
		{name: "404 route WAHA does not serve", serve: reply(404, "error_404_route.json"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 404", "check api_url", "Cannot GET"}, wantNotText: []string{"no session named"}},
		{name: "404 html", serve: reply(404, "html_404.html"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 404", "check api_url"}, wantNotText: []string{"no session named"}},
		{name: "404 empty", serve: reply(404, "empty.txt"), wantReason: ReasonClientError, wantText: []string{"check api_url"}},
		{name: "400 validation", serve: reply(400, "error_400.json"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 400", "all must be a boolean value", "Bad Request"}},
		{name: "429", serve: reply(429, "empty.txt", "Retry-After", "7"), wantReason: ReasonRateLimited,
			wantRetryAfter: [2]time.Duration{7 * time.Second, 7 * time.Second}},
		{name: "429 Retry-After HTTP date", serve: reply(429, "empty.txt", "Retry-After", retryDateIn30s), wantReason: ReasonRateLimited,
			wantRetryAfter: [2]time.Duration{20 * time.Second, 30 * time.Second}},
		{name: "500 exception filter body", serve: reply(500, "error_500.json"), wantReason: ReasonServerError,
			wantText: []string{"HTTP 500", "Session status is not as expected"}, wantNotText: []string{"manager.abc.js"}},
		{name: "500 echoing the key", serve: reply(500, "error_500_echo_key.json"), wantReason: ReasonServerError,
			wantText: []string{"HTTP 500", "<secret>"}},
		{name: "502 nginx html", serve: reply(502, "html_502.html"), wantReason: ReasonServerError, wantText: []string{"HTTP 502"}},

		// Answers that are not a session.
		{name: "200 no status", serve: reply(200, "session_no_status.json"), wantReason: ReasonBadResponse,
			wantText: []string{"no status"}},
		{name: "200 null status", serve: reply(200, "session_null_status.json"), wantReason: ReasonBadResponse},
		{name: "200 JSON null", serve: reply(200, "null.json"), wantReason: ReasonBadResponse},
		{name: "200 JSON array", serve: reply(200, "array.json"), wantReason: ReasonBadResponse},
		{name: "200 html", serve: reply(200, "html_502.html"), wantReason: ReasonBadResponse},
		{name: "200 empty", serve: reply(200, "empty.txt"), wantReason: ReasonBadResponse},
	}
	cases = append(cases, bodySizeCases(wahaPadded, "WORKING")...)
	return append(cases, transportCases()...)
}

// TestWahaState runs every answer of WAHA's against the client: states,
// errors and failures classified, no key nor number in any output.
func TestWahaState(t *testing.T) {
	t.Parallel()
	runProviderCases(t, wahaTargets(), wahaCases)
}

// TestWahaRequestURL checks the URL built from api_url and session name
// variants: the name escaped as one path segment.
func TestWahaRequestURL(t *testing.T) {
	t.Parallel()
	const key = "waha-key"
	for _, tc := range []struct{ name, suffix, prefix, session string }{
		{"plain", "", "", "default"},
		{"trailing slash", "/", "", "default"},
		{"path prefix", "/proxy/waha/", "/proxy/waha", "default"},
		{"name with query and fragment characters", "", "", "a?b#c&d=e"},
		{"name with percent and plus", "", "", "100%+1"},
		{"name with non-ASCII", "", "", "магазин ü"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := wahaTarget(tc.name, tc.session, key, tc.prefix)
			tg.apiPath = tc.suffix
			runProviderCase(t, providerCase{serve: wahaReply(t, 200, "session_scan_qr_code.json"), wantState: "SCAN_QR_CODE"}, tg)
		})
	}
}

// TestWahaHMACDocumentedExample checks the HMAC against the worked example
// of waha-docs' events page: its body, key and X-Webhook-Hmac.
func TestWahaHMACDocumentedExample(t *testing.T) {
	t.Parallel()
	body := []byte(`{"event":"message","session":"default","engine":"WEBJS"}`)
	const sig = "208f8a55dde9e05519e898b10b89bf0d0b3b0fdf11fdbf09b6b90476301b98d8097c462b2b17a6ce93b6b47a136cf2e78a33a63f6752c2c1631777076153fa89"
	w := webhookHMAC{key: "my-secret-key"}
	h := http.Header{"X-Webhook-Hmac": {sig}, "X-Webhook-Hmac-Algorithm": {"sha512"}}
	if !w.authorizesWAHA(h, body) {
		t.Fatal("the documented example is refused")
	}
	if got := simulator.WahaHMAC("my-secret-key", body); got != sig {
		t.Errorf("simulator's HMAC = %s, want the documented %s", got, sig)
	}
}

// TestWahaWebhookAuthorize: only the HMAC of the exact body with the
// session's key is taken.
func TestWahaWebhookAuthorize(t *testing.T) {
	t.Parallel()
	const key = "HMAC-KEY-0123456789"
	body := readFixture(t, "waha/webhook", "session_status_full.json")
	good := simulator.WahaHMAC(key, body)
	spec := &WahaSpec{webhookHMAC: webhookHMAC{key: key}}
	for _, tc := range []struct {
		name   string
		header http.Header
		body   []byte
		spec   *WahaSpec
		want   Authorization
	}{
		{"right HMAC", http.Header{"X-Webhook-Hmac": {good}, "X-Webhook-Hmac-Algorithm": {"sha512"}}, body, spec, Authorized},
		{"right HMAC, no algorithm header", http.Header{"X-Webhook-Hmac": {good}}, body, spec, Authorized},
		{"right HMAC in upper case", http.Header{"X-Webhook-Hmac": {strings.ToUpper(good)}}, body, spec, Authorized},
		{"another algorithm", http.Header{"X-Webhook-Hmac": {good}, "X-Webhook-Hmac-Algorithm": {"sha256"}}, body, spec, Refused},
		{"two signatures", http.Header{"X-Webhook-Hmac": {good, good}}, body, spec, Refused},
		{"another key", http.Header{"X-Webhook-Hmac": {simulator.WahaHMAC("other", body)}}, body, spec, Refused},
		{"body changed", http.Header{"X-Webhook-Hmac": {good}}, append([]byte(" "), body...), spec, Refused},
		{"truncated", http.Header{"X-Webhook-Hmac": {good[:64]}}, body, spec, Refused},
		{"not hex", http.Header{"X-Webhook-Hmac": {strings.Repeat("z", 128)}}, body, spec, Refused},
		{"no signature", http.Header{}, body, spec, Refused},
		{"the key itself", http.Header{"X-Webhook-Hmac": {key}}, body, spec, Refused},
		{"no key configured", http.Header{"X-Webhook-Hmac": {good}}, body, &WahaSpec{}, NoCredentials},
	} {
		if got := wahaWebhook.Authorize(tc.spec, Credentials{Header: tc.header, Body: tc.body}, time.Now()); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestWahaNotificationDecode reads the documented events and refuses what
// is not one, never quoting the body.
func TestWahaNotificationDecode(t *testing.T) {
	t.Parallel()
	received := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, fixture, body string
		state, id           string
		at                  time.Time
		absolute            bool
		err                 bool
	}{
		// No timestamp of its own: the last transition's, the current status.
		{name: "documented example", fixture: "session_status_doc.json", state: "WORKING", id: "default", at: time.UnixMilli(1700000003000), absolute: true},
		{name: "with the event's timestamp", fixture: "session_status_full.json", state: "FAILED", id: "default", at: time.UnixMilli(1741249702485), absolute: true},
		{name: "passkey, no transitions", fixture: "session_status_passkey.json", state: "PASSKEY_REQUIRED", id: "default", at: received},
		{name: "another event", fixture: "message.json", id: "default", at: received},
		{name: "another event with any payload", body: `{"event":"message.any","session":"s","payload":[1,"x"]}`, id: "s", at: received},
		{name: "last transition is another status", body: `{"event":"session.status","session":"s","payload":{"status":"FAILED","statuses":[{"status":"WORKING","timestamp":1700000000000}]}}`,
			state: "FAILED", id: "s", at: received},
		{name: "fractional timestamp", body: `{"event":"session.status","session":"s","timestamp":1.5,"payload":{"status":"STOPPED"}}`, state: "STOPPED", id: "s", at: received},
		{name: "negative timestamp", body: `{"event":"session.status","session":"s","timestamp":-1,"payload":{"status":"STOPPED"}}`, state: "STOPPED", id: "s", at: received},
		{name: "no session", body: `{"event":"session.status","payload":{"status":"WORKING"}}`, err: true},
		{name: "no status", body: `{"event":"session.status","session":"s","payload":{}}`, err: true},
		{name: "payload not an object", body: `{"event":"session.status","session":"s","payload":"WORKING"}`, err: true},
		{name: "no event", body: `{"session":"s"}`, err: true},
		{name: "not JSON", body: `<xml/>`, err: true},
	} {
		body := []byte(tc.body)
		if tc.fixture != "" {
			body = readFixture(t, "waha/webhook", tc.fixture)
		}
		n, err := decodeWahaNotification(body, received)
		if tc.err {
			if err == nil {
				t.Errorf("%s: decoded %+v, want an error", tc.name, n)
			} else if strings.Contains(err.Error(), "WORKING") || strings.Contains(err.Error(), `"s"`) {
				t.Errorf("%s: error %q quotes the body", tc.name, err)
			}
			continue
		}
		if err != nil || n.State != tc.state || n.ID != tc.id || !n.At.Equal(tc.at) || n.Absolute != tc.absolute {
			t.Errorf("%s: %+v, %v; want state %q, id %q, at %v (absolute %v)", tc.name, n, err, tc.state, tc.id, tc.at, tc.absolute)
		}
	}
}

// TestWahaStatusAnswers: WAHA retries every failure, so only what a
// retry or WAHA's log can help with is answered as one.
func TestWahaStatusAnswers(t *testing.T) {
	t.Parallel()
	want := map[string]int{
		OutcomeAccepted: 200, OutcomeStale: 200, OutcomeIgnored: 200, OutcomeTooLarge: 200,
		OutcomeUnauthorized: 401, OutcomeUnknownInstance: 401, OutcomeMalformed: 400, OutcomeIncomplete: 408,
	}
	for o, code := range want {
		if got := wahaStatus(o); got != code {
			t.Errorf("%s: %d, want %d", o, got, code)
		}
	}
}

// wahaWebhookEnv is a collector watching two sessions of a simulated WAHA
// server, one with an HMAC key, with its receiver served.
func wahaWebhookEnv(t *testing.T) (*Collector, *simulator.Simulator, string, *testlog.Buffer) {
	t.Helper()
	sim := simulator.New()
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	sim.Set(simulator.Waha, "default", "WAHA-KEY-0123456789", simulator.Behaviour{State: "WORKING"})
	sim.Set(simulator.Waha, "other", "WAHA-KEY-0123456789", simulator.Behaviour{State: "WORKING"})
	yml := fmt.Sprintf(`instances:
  - {name: shop, provider: waha, api_url: %[1]q, session: default, api_key: WAHA-KEY-0123456789, webhook_hmac_key: HMAC-KEY-0123456789}
  - {name: nokey, provider: waha, api_url: %[1]q, session: other, api_key: WAHA-KEY-0123456789}
`, simSrv.URL+"/waha")
	e := startWebhookEnv(t, sim, yml)
	return e.c, e.sim, e.receiver, e.logs
}

// TestWahaNotificationThroughReceiver: the simulator's signed
// session.status reaches the receiver and changes the state at once; the
// same event without the key's signature, or for a session without a key,
// is refused; another event is acknowledged unread.
func TestWahaNotificationThroughReceiver(t *testing.T) {
	t.Parallel()
	c, sim, receiver, logs := wahaWebhookEnv(t)
	if st, _ := stateIn(written(t, c.Refresh(context.Background())), "shop"); st != "WORKING" {
		t.Fatalf("polled state %q, want WORKING", st)
	}
	sim.Set(simulator.Waha, "default", "WAHA-KEY-0123456789", simulator.Behaviour{State: "FAILED"})
	sim.SetWebhook(simulator.Waha, "default", simulator.WebhookAuth{HMACKey: "HMAC-KEY-0123456789"})
	if status, err := sim.Notify(t.Context(), nil, receiver, simulator.Waha, "default"); err != nil || status != 200 {
		t.Fatalf("signed session.status: %d, %v; want 200", status, err)
	}
	if st, notified := stateIn(written(t, storedScrape(c, true)), "shop"); st != "FAILED" || !notified {
		t.Errorf("after the notification: %q (from a notification %v), want FAILED from it", st, notified)
	}

	// Signed with another key: refused, and WAHA is told (its log shows it).
	sim.SetWebhook(simulator.Waha, "default", simulator.WebhookAuth{HMACKey: "WRONG-KEY"})
	if status, _ := sim.Notify(t.Context(), nil, receiver, simulator.Waha, "default"); status != http.StatusUnauthorized {
		t.Errorf("wrongly signed: %d, want 401", status)
	}
	// A session without webhook_hmac_key takes none.
	sim.SetWebhook(simulator.Waha, "other", simulator.WebhookAuth{HMACKey: "HMAC-KEY-0123456789"})
	if status, _ := sim.Notify(t.Context(), nil, receiver, simulator.Waha, "other"); status != http.StatusUnauthorized {
		t.Errorf("session without a key: %d, want 401", status)
	}
	// Another event: 200, unread, unsigned or not.
	status, _, answer := testtool.Notify(t, nil, receiver+"/webhook/waha", "", readFixture(t, "waha/webhook", "message.json"))
	if status != 200 || strings.TrimSpace(answer) != OutcomeIgnored {
		t.Errorf("message event: %d %q, want 200 ignored", status, answer)
	}
	out := written(t, storedScrape(c, true)) + logs.String()
	for _, s := range []string{"HMAC-KEY-0123456789", "WRONG-KEY", "WAHA-KEY-0123456789", "79001234567", wahaTestNumber, "Hi there"} {
		checkNoLeak(t, "exposition and logs", out, s)
	}
}

// TestWahaServerAccount: a WAHA server's sessions are found and their
// states taken from the one listing (STOPPED ones too), without a call per
// session; neither the sessions' HMAC keys nor their numbers show.
func TestWahaServerAccount(t *testing.T) {
	t.Parallel()
	env := accountEnv{newTestEnv(t, Options{MinInterval: time.Second})}
	for id, st := range map[string]string{"support": "WORKING", "onboarding": "SCAN_QR_CODE", "blocked": "FAILED", "archive": "STOPPED"} {
		env.sim.Set(simulator.Waha, id, "waha-server-key", simulator.Behaviour{State: st})
	}
	env.sim.SetAccount(simulator.Waha, "waha-server-key",
		simulator.Member{ID: "support"}, simulator.Member{ID: "onboarding"}, simulator.Member{ID: "blocked"}, simulator.Member{ID: "archive"})
	if err := env.load(t, "", env.account(simulator.Waha, "server", "waha-server-key", "webhook_hmac_key: SERVER-HMAC-KEY-0123")); err != nil {
		t.Fatal(err)
	}
	env.list(t)
	text := written(t, env.c.Refresh(context.Background()))
	for name, want := range map[string]string{"support": "WORKING", "onboarding": "SCAN_QR_CODE", "blocked": "FAILED", "archive": "STOPPED"} {
		if st, _ := stateIn(text, name); st != want {
			t.Errorf("%s: %q, want %q", name, st, want)
		}
		if n := env.sim.Calls(simulator.Waha, name); n != 0 {
			t.Errorf("%s called %d times, want none: the listing is its state request", name, n)
		}
	}
	out := text + env.logs.String() + gatherAccountMetrics(t, env.c)
	for _, s := range []string{"waha-server-key", "SERVER-HMAC-KEY-0123", "79001234567"} {
		checkNoLeak(t, "exposition, account metrics and logs", out, s)
	}
	// The found sessions take the server's HMAC key: a signed
	// session.status of one of them is taken.
	for _, in := range env.c.current().byID["waha\x00support"] {
		body := []byte(`{"event":"session.status","session":"support","timestamp":1,"payload":{"status":"FAILED"}}`)
		h := http.Header{"X-Webhook-Hmac": {simulator.WahaHMAC("SERVER-HMAC-KEY-0123", body)}}
		if got := wahaWebhook.Authorize(in.spec, Credentials{Header: h, Body: body}, time.Now()); got != Authorized {
			t.Errorf("a found session refuses the server's signature: %v", got)
		}
	}
}

// FuzzWahaNotification sends any body to /webhook/waha, signed with the
// session's key and not: no panic, a status of wahaStatus's, an outcome
// as the answer, and neither the key nor anything of the body's payload
// in the answer or the logs.
func FuzzWahaNotification(f *testing.F) {
	for _, name := range []string{"session_status_doc.json", "session_status_full.json", "session_status_passkey.json", "message.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "waha", "webhook", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"event":"session.status","session":"default","timestamp":9007199254740993,"payload":{"status":"WORKING","statuses":[{"status":"WORKING","timestamp":-1}]}}`))
	logger, logs := testlog.New()
	c := New(logger, Options{Concurrency: 1, MinInterval: time.Hour, Notifications: true})
	f.Cleanup(c.Close)
	cfg, err := config.Load([]byte(`instances:
  - {name: shop, provider: waha, api_url: "http://127.0.0.1:1", session: default, api_key: FUZZ-WAHA-API-KEY, webhook_hmac_key: FUZZ-WAHA-HMAC-KEY}
`), f.TempDir(), config.Options{})
	if err != nil {
		f.Fatal(err)
	}
	if err := c.Update(cfg); err != nil {
		f.Fatal(err)
	}
	h := c.Webhooks()
	allowed := map[int]bool{200: true, 400: true, 401: true, 408: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, signed := range []bool{true, false} {
			req := httptest.NewRequest(http.MethodPost, "/webhook/waha", strings.NewReader(string(body)))
			if signed {
				req.Header.Set("X-Webhook-Hmac", simulator.WahaHMAC("FUZZ-WAHA-HMAC-KEY", body))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			answer := strings.TrimSpace(w.Body.String())
			if !allowed[w.Code] || !slices.Contains(Outcomes[:], answer) {
				t.Errorf("signed %v: HTTP %d %q", signed, w.Code, answer)
			}
			if w.Code != wahaStatus(answer) {
				t.Errorf("signed %v: HTTP %d for %s, want %d", signed, w.Code, answer, wahaStatus(answer))
			}
		}
		if out := logs.Take(); strings.Contains(out, "FUZZ-WAHA") || strings.Contains(out, "7911111") {
			t.Errorf("a secret or a number reached the logs:\n%s", out)
		}
	})
}
