package collector

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// The GREEN-API client is tested with harness_client_test.go:
// each row starts a loopback server that serves a documented response body
// from testdata/greenapi, and the client is built from a YAML
// configuration as in production.

const (
	greenAPITestID     = "1101000001"
	greenAPITestMethod = "getStateInstance"
)

// greenAPITestTokens are the tokens every row runs with: one whose
// characters are escaped in a URL path and a query, and a plain one as long
// as real tokens are.
var greenAPITestTokens = []struct{ name, token string }{
	{"escaped_token", "s3cr3t/tok+en="},
	{"plain_token", "d75b3a66374942c5b3c019c698abc2067e151558acbd412492"},
}

// greenAPIReply serves a fixture of testdata/greenapi with a status and
// header pairs. In the body, {{PATH}} becomes the escaped request path and
// {{DECODED_PATH}} the decoded one, as servers that echo the URL do.
func greenAPIReply(t *testing.T, status int, fixture string, header ...string) providerServe {
	t.Helper()
	return replyFixture(t, "greenapi", status, fixture, func(r *http.Request) []string {
		return []string{"{{PATH}}", r.URL.EscapedPath(), "{{DECODED_PATH}}", r.URL.Path}
	}, header...)
}

// greenAPIPadded returns a body of exactly n bytes holding the authorized
// state followed by spaces.
func greenAPIPadded(n int) []byte {
	return paddedBody(`{"stateInstance":"authorized"}`, n)
}

// greenAPIYAML is a configuration with one GREEN-API instance.
func greenAPIYAML(apiURL, token string) string {
	return instanceYAML("greenapi", "id_instance", greenAPITestID, "api_token", token, "api_url", apiURL)
}

// greenAPITarget is the test instance with a token, behind an api_url
// path prefix.
func greenAPITarget(label, token, prefix string) providerTarget {
	p := prefix + "/waInstance" + greenAPITestID + "/getStateInstance/"
	return providerTarget{
		label:    label,
		provider: "greenapi",
		method:   greenAPITestMethod,
		name:     greenAPITestID, // the default name is the id
		secret:   token,
		apiPath:  prefix,
		yaml:     func(apiURL string) string { return greenAPIYAML(apiURL, token) },
		request:  wantRequest{path: p + token, escapedPath: p + url.PathEscape(token)},
		logURL:   "/waInstance" + greenAPITestID + "/getStateInstance/<secret>",
	}
}

func init() {
	providerTests["greenapi"] = providerTest{
		targets:   greenAPITargets,
		stateBody: func(state string) string { return `{"stateInstance":"` + state + `"}` },
		goodState: "authorized",
	}
}

// greenAPITargets are the test instance with each test token.
func greenAPITargets() []providerTarget {
	var targets []providerTarget
	for _, tok := range greenAPITestTokens {
		targets = append(targets, greenAPITarget(tok.name, tok.token, ""))
	}
	return targets
}

func greenAPICases(t *testing.T) []providerCase {
	retryDate := retryDateIn30s
	pastDate := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	reply := func(status int, fixture string, header ...string) providerServe {
		return greenAPIReply(t, status, fixture, header...)
	}
	cases := []providerCase{
		// 200 with each documented state.
		{name: "200 authorized", serve: reply(200, "authorized.json"), wantState: "authorized"},
		{name: "200 notAuthorized", serve: reply(200, "notAuthorized.json"), wantState: "notAuthorized"},
		{name: "200 blocked", serve: reply(200, "blocked.json"), wantState: "blocked"},
		{name: "200 sleepMode", serve: reply(200, "sleepMode.json"), wantState: "sleepMode"},
		{name: "200 starting", serve: reply(200, "starting.json"), wantState: "starting"},
		{name: "200 yellowCard", serve: reply(200, "yellowCard.json"), wantState: "yellowCard"},
		{name: "200 authorized sent as text/plain", serve: reply(200, "authorized.json", "Content-Type", "text/plain"), wantState: "authorized"},
		// Unknown values are returned raw; the collector maps them.
		{name: "200 unknown state suspended", serve: reply(200, "unknown_state.json"), wantState: "suspended"},
		{name: "200 unknown state pendingPassword", serve: reply(200, "unknown_state_pending_password.json"), wantState: "pendingPassword"},

		// 400 texts that report a state.
		{name: "400 starting text", serve: reply(400, "text_starting.txt"), wantState: "starting"},
		{name: "400 starting text capitalized", serve: reply(400, "text_starting_capitalized.txt"), wantState: "starting"},
		{name: "400 not authorized text", serve: reply(400, "text_not_authorized.txt"), wantState: "notAuthorized"},
		{name: "400 starting or not authorized text", serve: reply(400, "text_starting_or_not_authorized.txt"), wantState: "starting"},
		// Other 400s.
		{name: "400 expired", serve: reply(400, "text_expired.txt"), wantState: "expired"},
		{name: "400 expired, documented text", serve: reply(400, "text_expired_renew.txt"), wantState: "expired"},
		{name: "400 deleted", serve: reply(400, "text_deleted.txt"), wantReason: ReasonClientError},
		{name: "400 validation failed", serve: reply(400, "text_validation.txt"), wantReason: ReasonClientError},
		{name: "400 bad request data", serve: reply(400, "text_bad_request_data.txt"), wantReason: ReasonClientError},
		{name: "400 nginx html", serve: reply(400, "html_400.html"), wantReason: ReasonClientError},
		{name: "400 empty body", serve: reply(400, "empty.txt"), wantReason: ReasonClientError},
		{name: "400 echoing decoded path", serve: reply(400, "text_400_echo_decoded.txt"), wantReason: ReasonClientError},

		// Unauthorized.
		{name: "200 code 401 body", serve: reply(200, "code401.json"), wantReason: ReasonUnauthorized},
		{name: "401", serve: reply(401, "code401.json"), wantReason: ReasonUnauthorized},
		{name: "403", serve: reply(403, "text_forbidden.txt"), wantReason: ReasonUnauthorized},

		// Rate limiting.
		{name: "429 Retry-After seconds", serve: reply(429, "text_too_many_requests.txt", "Retry-After", "7"),
			wantReason: ReasonRateLimited, wantRetryAfter: [2]time.Duration{7 * time.Second, 7 * time.Second}},
		{name: "429 Retry-After HTTP date", serve: reply(429, "text_too_many_requests.txt", "Retry-After", retryDate),
			wantReason: ReasonRateLimited, wantRetryAfter: [2]time.Duration{20 * time.Second, 30 * time.Second}},
		{name: "429 no Retry-After", serve: reply(429, "empty.txt"), wantReason: ReasonRateLimited},
		{name: "429 garbled Retry-After", serve: reply(429, "empty.txt", "Retry-After", "soon"), wantReason: ReasonRateLimited},
		{name: "429 Retry-After in the past", serve: reply(429, "empty.txt", "Retry-After", pastDate), wantReason: ReasonRateLimited},

		// Quota.
		{name: "466 quota exceeded", serve: reply(466, "quota_466.json"), wantReason: ReasonQuotaExceeded},

		// Other 4xx.
		{name: "404", serve: reply(404, "text_not_found.txt"), wantReason: ReasonClientError},
		{name: "404 echoing path", serve: reply(404, "text_404_echo.txt"), wantReason: ReasonClientError},
		{name: "418", serve: reply(418, "text_teapot.txt"), wantReason: ReasonClientError},

		// 5xx.
		{name: "500", serve: reply(500, "code500.json"), wantReason: ReasonServerError},
		{name: "502 nginx html", serve: reply(502, "html_502.html"), wantReason: ReasonServerError},
		{name: "503 nginx html", serve: reply(503, "html_503.html"), wantReason: ReasonServerError},

		// Bodies that hold no state.
		{name: "200 html", serve: reply(200, "html_200.html"), wantReason: ReasonBadResponse},
		{name: "200 text", serve: reply(200, "text_200.txt"), wantReason: ReasonBadResponse},
		{name: "200 empty body", serve: reply(200, "empty.txt"), wantReason: ReasonBadResponse},
		{name: "204 no content", serve: reply(204, "empty.txt"), wantReason: ReasonBadResponse},
		{name: "200 JSON array", serve: reply(200, "array.json"), wantReason: ReasonBadResponse},
		{name: "200 wrong shape", serve: reply(200, "wrong_shape.json"), wantReason: ReasonBadResponse},
		{name: "200 empty stateInstance", serve: reply(200, "empty_state.json"), wantReason: ReasonBadResponse},
		{name: "200 null stateInstance", serve: reply(200, "state_null.json"), wantReason: ReasonBadResponse},
		{name: "200 numeric stateInstance", serve: reply(200, "state_number.json"), wantReason: ReasonBadResponse},
		// The instance is still being created (GREEN-API's partner guide).
		{name: "200 JSON null", serve: reply(200, "null.json"), wantState: "creating"},
	}
	cases = append(cases, bodySizeCases(greenAPIPadded, "authorized")...)
	return append(cases, transportCases()...)
}

func TestGreenAPIState(t *testing.T) {
	t.Parallel()
	runProviderCases(t, greenAPITargets(), greenAPICases)
}

// TestGreenAPIRequestURL checks the URL built from api_url variants.
func TestGreenAPIRequestURL(t *testing.T) {
	t.Parallel()
	const token = "s3cr3t/tok+en="
	for _, tc := range []struct{ name, suffix, prefix string }{
		{"plain", "", ""},
		{"trailing slash", "/", ""},
		{"path prefix", "/proxy/green", "/proxy/green"},
		{"path prefix with trailing slash", "/proxy/green/", "/proxy/green"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := greenAPITarget(tc.name, token, tc.prefix)
			tg.apiPath = tc.suffix // api_url as written; requests go to tc.prefix
			runProviderCase(t, providerCase{serve: greenAPIReply(t, 200, "authorized.json"), wantState: "authorized"}, tg)
		})
	}
}

// TestGreenAPIErrorTextRedactsTruncatedToken: a server that echoes the
// request path in an error body (here a Spring-Boot-style 404) can place the
// token where the error text's excerpt of the body is cut. The part of the
// token before the cut must not appear either.
func TestGreenAPIErrorTextRedactsTruncatedToken(t *testing.T) {
	t.Parallel()
	tg := greenAPITargets()[1] // a token of 50 characters, like real ones
	runFailingCall(t, tg, greenAPIReply(t, 404, "json_404_echo.json"), ReasonClientError)
}

// TestGreenAPIConcurrentCalls shares one client among goroutines, as
// scrapes do.
func TestGreenAPIConcurrentCalls(t *testing.T) {
	t.Parallel()
	runConcurrentCalls(t, greenAPITargets()[0], greenAPIReply(t, 200, "yellowCard.json"), 8, "yellowCard")
}

// TestGreenAPIViaCollector goes through collector.New and Update, the path
// main uses, and checks the call reaches the server and is counted.
func TestGreenAPIViaCollector(t *testing.T) {
	t.Parallel()
	tg := greenAPITargets()[0]
	apiURL, rec := startRecordingServer(t, greenAPIReply(t, 200, "sleepMode.json"))
	c, logs := newTestCollector(t, loadConfig(t, tg.yaml(apiURL), t.TempDir()))
	values, _ := scrapeValues(t, c)
	checkValues(t, values, map[string]float64{
		"whatsapp_instance_state,name=" + greenAPITestID + ",provider=greenapi,state=sleepMode":                                       1,
		"whatsapp_instance_state,name=" + greenAPITestID + ",provider=greenapi,state=authorized":                                      0,
		"whatsapp_up,name=" + greenAPITestID + ",provider=greenapi":                                                                   1,
		"whatsapp_api_request_duration_seconds_count,method=getStateInstance,name=" + greenAPITestID + ",provider=greenapi":           1,
		"whatsapp_api_request_errors_total,method=getStateInstance,name=" + greenAPITestID + ",provider=greenapi,reason=bad_response": 0,
	})
	checkRequest(t, rec.one(t), tg.request)
	checkNoLeak(t, "log output", logs.String(), tg.secret)
}
