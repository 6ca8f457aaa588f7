package collector

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// The whatsmeow family's client is tested with harness_client_test.go:
// each row starts a loopback server that serves a body from
// testdata/whatsmeow, and the client is built from a YAML configuration
// as in production. Each server of the family (a row of whatsmeowServers)
// is a target of its own, behind an api_url path prefix.

const (
	// whatsmeowTestInstance needs escaping in a URL path (GOWA's device ID
	// is in it).
	whatsmeowTestInstance = "shop a/b"
	whatsmeowTestPrefix   = "/wa"
	// whatsmeowTestKey has characters escaped in a path, a query and JSON.
	whatsmeowTestKey = "tok/s3cr3t+k3y=AbCd&Ef:9a8b7c6d5e4f"
)

// whatsmeowReply serves a fixture of testdata/whatsmeow; {{KEY}} becomes
// the key the request carried, as a server that echoes it would send it.
func whatsmeowReply(t *testing.T, status int, fixture string, header ...string) providerServe {
	t.Helper()
	return replyFixture(t, "whatsmeow", status, fixture, func(r *http.Request) []string {
		key := r.Header.Get("apikey") + r.Header.Get("Token")
		if enc, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Basic "); ok {
			dec, _ := base64.StdEncoding.DecodeString(enc)
			key = string(dec)
		}
		return []string{"{{KEY}}", escapeJSON(key)}
	}, header...)
}

// whatsmeowTarget is the test instance on a server of the family.
func whatsmeowTarget(server string) providerTarget {
	req := wantRequest{notInURL: whatsmeowTestKey}
	switch server {
	case "evolution-go":
		req.path, req.escapedPath, req.keyHeaders = whatsmeowTestPrefix+"/instance/status", whatsmeowTestPrefix+"/instance/status", http.Header{"Apikey": {whatsmeowTestKey}}
	case "wuzapi":
		req.path, req.escapedPath, req.keyHeaders = whatsmeowTestPrefix+"/session/status", whatsmeowTestPrefix+"/session/status", http.Header{"Token": {whatsmeowTestKey}}
	case "gowa":
		req.path = whatsmeowTestPrefix + "/devices/" + whatsmeowTestInstance + "/status"
		req.escapedPath = whatsmeowTestPrefix + "/devices/" + url.PathEscape(whatsmeowTestInstance) + "/status"
		req.authorization = "Basic " + base64.StdEncoding.EncodeToString([]byte(whatsmeowTestKey))
	}
	return providerTarget{
		label:    server,
		provider: "whatsmeow",
		method:   whatsmeowMethod,
		name:     whatsmeowTestInstance,
		secret:   whatsmeowTestKey,
		apiPath:  whatsmeowTestPrefix,
		yaml: func(apiURL string) string {
			return instanceYAML("whatsmeow", "server", server, "instance_name", whatsmeowTestInstance, "api_key", whatsmeowTestKey, "api_url", apiURL)
		},
		request: req,
		logURL:  "/status",
	}
}

func init() {
	providerTests["whatsmeow"] = providerTest{
		targets: func() []providerTarget {
			return []providerTarget{whatsmeowTarget("evolution-go"), whatsmeowTarget("wuzapi"), whatsmeowTarget("gowa")}
		},
		// Evolution Go's answer (the first target's).
		stateBody: func(state string) string {
			c, l := state == whatsmeowLoggedIn || state == whatsmeowPairing, state == whatsmeowLoggedIn || state == whatsmeowDisconnected
			return `{"message":"success","data":{"Connected":` + bools(c) + `,"LoggedIn":` + bools(l) + `}}`
		},
		goodState:   whatsmeowLoggedIn,
		fixedStates: true,
	}
}

func bools(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// whatsmeowCommonCases are the rows every server answers alike: failures
// that are no state.
func whatsmeowCommonCases(t *testing.T) []providerCase {
	reply := func(status int, fixture string, header ...string) providerServe {
		return whatsmeowReply(t, status, fixture, header...)
	}
	cases := []providerCase{
		{name: "429 Retry-After seconds", serve: reply(429, "empty.txt", "Retry-After", "12"),
			wantReason: ReasonRateLimited, wantRetryAfter: [2]time.Duration{12 * time.Second, 12 * time.Second}},
		{name: "502 nginx html", serve: reply(502, "html_502.html"), wantReason: ReasonServerError, wantText: []string{"HTTP 502", "Bad Gateway"}},
		{name: "503 empty", serve: reply(503, "empty.txt"), wantReason: ReasonServerError},
		{name: "200 JSON null", serve: reply(200, "null.json"), wantReason: ReasonBadResponse},
		{name: "200 JSON array", serve: reply(200, "array.json"), wantReason: ReasonBadResponse},
		{name: "200 text", serve: reply(200, "text_200.txt"), wantReason: ReasonBadResponse, wantText: []string{"not JSON"}},
		{name: "200 html", serve: reply(200, "html_502.html"), wantReason: ReasonBadResponse},
		{name: "200 empty body", serve: reply(200, "empty.txt"), wantReason: ReasonBadResponse},
		{name: "200 booleans as strings", serve: reply(200, "evogo_strings.json"), wantReason: ReasonBadResponse, wantText: []string{"no booleans"}},
		{name: "200 no booleans", serve: reply(200, "evogo_data_empty.json"), wantReason: ReasonBadResponse},
		// A successful answer is never quoted: it may hold the account's
		// number (a jid) in a version whose fields differ.
		{name: "200 no booleans, a jid", serve: replyBytes(200, []byte(`{"code":200,"data":{"Connected":null,"LoggedIn":true,"jid":"5511999999999:12@s.whatsapp.net"},"success":true}`)),
			wantReason: ReasonBadResponse, wantText: []string{"no booleans"}, wantNotText: []string{"5511999999999"}},
		{name: "401 echoing the key", serve: reply(401, "echo_key.json"), wantReason: ReasonUnauthorized, wantText: []string{"HTTP 401", "<secret>"}},
		{name: "500 echoing the key", serve: reply(500, "echo_key.json"), wantReason: ReasonServerError},
	}
	return cases
}

// TestWhatsmeowBodyLimitsAndTransport: the body limit and the transport
// failures, which the servers share (api.go): run against one server, to
// keep the package's parallel load (4 MiB bodies, hanging servers) down.
func TestWhatsmeowBodyLimitsAndTransport(t *testing.T) {
	t.Parallel()
	runProviderCases(t, []providerTarget{whatsmeowTarget("evolution-go")}, func(*testing.T) []providerCase {
		return append(bodySizeCases(func(n int) []byte {
			return paddedBody(`{"message":"success","data":{"Connected":true,"LoggedIn":true}}`, n)
		}, whatsmeowLoggedIn), transportCases()...)
	})
}

// TestWhatsmeowCommonAnswers: every server's client classifies the
// failures, never quotes the key, and sends its request as its server
// expects it (path, header, nothing secret in the URL).
func TestWhatsmeowCommonAnswers(t *testing.T) {
	t.Parallel()
	runProviderCases(t, providerTests["whatsmeow"].targets(), whatsmeowCommonCases)
}

// TestWhatsmeowEvolutionGoAnswers: Evolution Go's answers as its handler
// writes them: 200 with capitalised keys only while connected, 400
// "client disconnected" and "no active session found" as states, 401 for
// a wrong token (which is also an unknown instance).
func TestWhatsmeowEvolutionGoAnswers(t *testing.T) {
	t.Parallel()
	runProviderCases(t, []providerTarget{whatsmeowTarget("evolution-go")}, func(t *testing.T) []providerCase {
		reply := func(status int, fixture string) providerServe { return whatsmeowReply(t, status, fixture) }
		return []providerCase{
			{name: "200 logged in", serve: reply(200, "evogo_logged_in.json"), wantState: whatsmeowLoggedIn},
			{name: "200 waiting for the QR code", serve: reply(200, "evogo_pairing.json"), wantState: whatsmeowPairing},
			{name: "200 keys as the documentation writes them", serve: reply(200, "evogo_doc_lowercase.json"), wantState: whatsmeowLoggedIn},
			{name: "400 client disconnected", serve: reply(400, "evogo_client_disconnected.json"), wantState: whatsmeowDisconnected},
			{name: "400 no active session", serve: reply(400, "evogo_no_session.json"), wantState: whatsmeowLoggedOut},
			{name: "500 client disconnected is no state", serve: reply(500, "evogo_client_disconnected.json"), wantReason: ReasonServerError,
				wantText: []string{"client disconnected"}},
			{name: "200 null Connected", serve: reply(200, "evogo_null_connected.json"), wantReason: ReasonBadResponse},
			{name: "401 not authorized", serve: reply(401, "evogo_not_authorized.json"), wantReason: ReasonUnauthorized,
				wantText: []string{"HTTP 401", "not authorized", "instance's token"}},
			{name: "400 wuzapi's no session is no state", serve: reply(400, "wuzapi_no_session.json"), wantReason: ReasonClientError},
		}
	})
}

// TestWhatsmeowWuzapiAnswers: wuzapi's envelope, each combination of the
// pair, and its 500 "No session" as logged out.
func TestWhatsmeowWuzapiAnswers(t *testing.T) {
	t.Parallel()
	runProviderCases(t, []providerTarget{whatsmeowTarget("wuzapi")}, func(t *testing.T) []providerCase {
		reply := func(status int, fixture string) providerServe { return whatsmeowReply(t, status, fixture) }
		return []providerCase{
			{name: "200 logged in", serve: reply(200, "wuzapi_logged_in.json"), wantState: whatsmeowLoggedIn},
			{name: "200 logged in, not connected", serve: reply(200, "wuzapi_disconnected.json"), wantState: whatsmeowDisconnected},
			{name: "200 connected, not logged in", serve: reply(200, "wuzapi_pairing.json"), wantState: whatsmeowPairing},
			{name: "200 neither", serve: reply(200, "wuzapi_logged_out.json"), wantState: whatsmeowLoggedOut},
			{name: "500 No session", serve: reply(500, "wuzapi_no_session.json"), wantState: whatsmeowLoggedOut},
			{name: "401 unauthorized", serve: reply(401, "wuzapi_unauthorized.json"), wantReason: ReasonUnauthorized,
				wantText: []string{"unauthorized", "user's token"}},
			{name: "400 Evolution Go's client disconnected is no state", serve: reply(400, "evogo_client_disconnected.json"), wantReason: ReasonClientError},
		}
	})
}

// TestWhatsmeowGOWAAnswers: GOWA's results block, and its error shape.
func TestWhatsmeowGOWAAnswers(t *testing.T) {
	t.Parallel()
	runProviderCases(t, []providerTarget{whatsmeowTarget("gowa")}, func(t *testing.T) []providerCase {
		reply := func(status int, fixture string) providerServe { return whatsmeowReply(t, status, fixture) }
		return []providerCase{
			{name: "200 logged in", serve: reply(200, "gowa_logged_in.json"), wantState: whatsmeowLoggedIn},
			{name: "200 neither", serve: reply(200, "gowa_logged_out.json"), wantState: whatsmeowLoggedOut},
			{name: "200 Evolution Go's shape is no state", serve: reply(200, "evogo_logged_in.json"), wantReason: ReasonBadResponse},
			{name: "400 device not found", serve: reply(400, "gowa_not_found.json"), wantReason: ReasonClientError,
				wantText: []string{"HTTP 400", "device shop not found"}},
			{name: "401 basic auth refused", serve: reply(401, "empty.txt"), wantReason: ReasonUnauthorized, wantText: []string{"user:password"}},
		}
	})
}

// TestWhatsmeowPairStates: the four combinations of the pair.
func TestWhatsmeowPairStates(t *testing.T) {
	for _, tc := range []struct {
		connected, loggedIn bool
		want                string
	}{
		{true, true, whatsmeowLoggedIn}, {false, true, whatsmeowDisconnected},
		{true, false, whatsmeowPairing}, {false, false, whatsmeowLoggedOut},
	} {
		if got := whatsmeowPairState(tc.connected, tc.loggedIn); got != tc.want {
			t.Errorf("whatsmeowPairState(%v, %v) = %q, want %q", tc.connected, tc.loggedIn, got, tc.want)
		}
	}
}

// TestWhatsmeowServerField: server is required and names a row; the
// error names the field, the instance and the choices.
func TestWhatsmeowServerField(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, server, want string }{
		{"missing", "", "server is required"},
		{"unknown", "waha", `server "waha" is not one of evolution-go, wuzapi, gowa`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fields []string
			if tc.server != "" {
				fields = append(fields, "server", tc.server)
			}
			fields = append(fields, "instance_name", "shop", "api_key", "key-that-stays-secret", "api_url", "http://127.0.0.1:1")
			_, err := config.Load([]byte(instanceYAML("whatsmeow", fields...)), t.TempDir(), config.Options{})
			checkConfigError(t, err, []string{"instances[0]", tc.want}, "key-that-stays-secret")
		})
	}
}

// TestWhatsmeowServersAreRows: every row is complete, so that a fourth
// server is a row and nothing else.
func TestWhatsmeowServersAreRows(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range whatsmeowServers {
		if s.name == "" || seen[s.name] || s.path == nil || s.header == nil || len(s.connected) == 0 || len(s.loggedIn) == 0 || s.keyNames == "" {
			t.Errorf("server row %q is incomplete or repeated", s.name)
		}
		seen[s.name] = true
		if p := s.path("x"); !strings.HasPrefix(p, "/") {
			t.Errorf("%s: path %q is not rooted", s.name, p)
		}
		for _, es := range s.states {
			if !slices.Contains(whatsmeowStates, es.state) {
				t.Errorf("%s: error answer %q maps to %q, not a state", s.name, es.message, es.state)
			}
		}
	}
}
