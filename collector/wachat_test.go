package collector

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// The Wachat client is tested with harness_client_test.go, as the
// GREEN-API client is: each row starts a loopback server that serves a
// response body from testdata/wachat, and the client is built from a YAML
// configuration as in production. api_url carries a path prefix, as
// Wachat's own base URL does.

const (
	// wachatTestInstance needs escaping in a query: a space and an &.
	wachatTestInstance = "t1_a b&c"
	wachatTestMethod   = "instanceState"
	wachatTestPrefix   = "/api/v1"
)

// wachatTestKeys are the API keys every row runs with: one whose
// characters are escaped in a URL path, a query, JSON and HTML, and a plain
// one as long as real keys are.
var wachatTestKeys = []struct{ name, key string }{
	{"escaped_key", "wk_live/s3cr3t+k3y=AbCd&Ef/9a8b7c6d5e4f"},
	{"plain_key", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
}

// wachatReply serves a fixture of testdata/wachat with a status and header
// pairs. Servers that echo what they were sent are simulated by
// placeholders: {{AUTH}} becomes the Authorization header, {{KEY}} the key
// taken from it, {{KEY_QUERY}}, {{KEY_PATH}} and {{KEY_JSON}} the key
// query-, path- and JSON-escaped.
func wachatReply(t *testing.T, status int, fixture string, header ...string) providerServe {
	t.Helper()
	return replyFixture(t, "wachat", status, fixture, func(r *http.Request) []string {
		auth := r.Header.Get("Authorization")
		key := strings.TrimPrefix(auth, "Bearer ")
		return []string{
			"{{AUTH}}", auth,
			"{{KEY_QUERY}}", url.QueryEscape(key),
			"{{KEY_PATH}}", url.PathEscape(key),
			"{{KEY_JSON}}", escapeJSON(key),
			"{{KEY}}", key,
		}
	}, header...)
}

// wachatPadded returns a body of exactly n bytes holding the open state
// followed by spaces.
func wachatPadded(n int) []byte {
	return paddedBody(`{"success":true,"instance":{"state":"open"}}`, n)
}

// wachatYAML is a configuration with one Wachat instance.
func wachatYAML(apiURL, instance, key string) string {
	return instanceYAML("wachat", "instance_name", instance, "api_key", key, "api_url", apiURL)
}

// wachatRequest is the one request the client is to send: the instance
// name in the query, the key as a bearer key and nowhere in the URL.
func wachatRequest(prefix, instance, key string) wantRequest {
	return wantRequest{
		path:          prefix + "/instance/state",
		escapedPath:   prefix + "/instance/state",
		query:         url.Values{"instanceName": {instance}},
		authorization: "Bearer " + key,
		notInURL:      key,
	}
}

// wachatTarget is an instance with a key, behind an api_url path prefix.
func wachatTarget(label, instance, key, prefix string) providerTarget {
	return providerTarget{
		label:    label,
		provider: "wachat",
		method:   wachatTestMethod,
		name:     instance, // the default name is the instance name
		secret:   key,
		apiPath:  prefix,
		yaml:     func(apiURL string) string { return wachatYAML(apiURL, instance, key) },
		request:  wachatRequest(prefix, instance, key),
		logURL:   "/instance/state?instanceName=",
	}
}

func init() {
	providerTests["wachat"] = providerTest{
		targets: wachatTargets,
		stateBody: func(state string) string {
			return `{"success":true,"instance":{"apiInstanceName":"x","state":"` + state + `"}}`
		},
		goodState: "open",
	}
}

// wachatTargets are the test instance with each test key.
func wachatTargets() []providerTarget {
	var targets []providerTarget
	for _, k := range wachatTestKeys {
		targets = append(targets, wachatTarget(k.name, wachatTestInstance, k.key, wachatTestPrefix))
	}
	return targets
}

func wachatCases(t *testing.T) []providerCase {
	retryDate := retryDateIn30s
	reply := func(status int, fixture string, header ...string) providerServe {
		return wachatReply(t, status, fixture, header...)
	}
	notFoundText := []string{"HTTP 404", strconv.Quote(wachatTestInstance), "instance_name", "Instance not found"}
	cases := []providerCase{
		// The documented 200 bodies and the other Baileys states.
		{name: "200 open documented example 1", serve: reply(200, "state_open_doc1.json"), wantState: "open"},
		{name: "200 open documented example 2", serve: reply(200, "state_open_doc2.json"), wantState: "open"},
		{name: "200 open with null picture", serve: reply(200, "state_open_null_picture.json"), wantState: "open"},
		{name: "200 open sent as text/html", serve: reply(200, "state_open_doc1.json", "Content-Type", "text/html"), wantState: "open"},
		{name: "200 connecting", serve: reply(200, "state_connecting.json"), wantState: "connecting"},
		{name: "200 close", serve: reply(200, "state_close.json"), wantState: "close"},
		{name: "201 open", serve: reply(201, "state_open_doc2.json"), wantState: "open"},
		{name: "200 no success field", serve: reply(200, "state_no_success_field.json"), wantState: "open"},
		// Which block the state is taken from.
		{name: "200 state only in data block", serve: reply(200, "state_data_only.json"), wantState: "close"},
		{name: "200 no normalized block", serve: reply(200, "state_data_only_no_normalized_block.json"), wantState: "connecting"},
		{name: "200 empty normalized state", serve: reply(200, "state_normalized_empty_data_open.json"), wantState: "open"},
		{name: "200 null normalized state", serve: reply(200, "state_normalized_null_data_close.json"), wantState: "close"},
		{name: "200 no data block", serve: reply(200, "state_normalized_only.json"), wantState: "connecting"},
		{name: "200 blocks disagree, normalized wins", serve: reply(200, "state_disagree.json"), wantState: "open"},
		// Unknown values are returned raw; the collector maps them.
		{name: "200 unknown state refused", serve: reply(200, "state_unknown_refused.json"), wantState: "refused"},

		// Unauthorized.
		{name: "401 invalid key", serve: reply(401, "error_invalid_key.json"), wantReason: ReasonUnauthorized,
			wantText: []string{"HTTP 401", "Invalid API key"}},
		{name: "403 invalid key", serve: reply(403, "error_invalid_key.json"), wantReason: ReasonUnauthorized,
			wantText: []string{"HTTP 403", "Invalid API key"}},
		{name: "401 empty body", serve: reply(401, "empty.txt"), wantReason: ReasonUnauthorized, wantText: []string{"HTTP 401"}},

		// Not found: the configured instance name is wrong.
		{name: "404 instance not found", serve: reply(404, "error_not_found.json"), wantReason: ReasonClientError, wantText: notFoundText},
		{name: "404 html", serve: reply(404, "html_200.html"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 404", "check api_url"}, wantNotText: []string{"no instance named"}},

		// Rate limiting.
		{name: "429 Retry-After seconds", serve: reply(429, "error_rate_limited.json", "Retry-After", "12"),
			wantReason: ReasonRateLimited, wantRetryAfter: [2]time.Duration{12 * time.Second, 12 * time.Second},
			wantText: []string{"HTTP 429", "Too many requests"}},
		{name: "429 Retry-After HTTP date", serve: reply(429, "error_rate_limited.json", "Retry-After", retryDate),
			wantReason: ReasonRateLimited, wantRetryAfter: [2]time.Duration{20 * time.Second, 30 * time.Second}},
		{name: "429 no Retry-After", serve: reply(429, "error_rate_limited.json"), wantReason: ReasonRateLimited},
		{name: "429 garbled Retry-After", serve: reply(429, "empty.txt", "Retry-After", "soon"), wantReason: ReasonRateLimited},

		// Other 4xx.
		{name: "400 bad request", serve: reply(400, "error_bad_request.json"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 400", "instanceName is required"}},
		{name: "422 invalid key body", serve: reply(422, "error_invalid_key.json"), wantReason: ReasonClientError},

		// 5xx.
		{name: "500 json", serve: reply(500, "error_internal.json"), wantReason: ReasonServerError,
			wantText: []string{"HTTP 500", "Internal server error"}},
		{name: "502 nginx html", serve: reply(502, "html_502.html"), wantReason: ReasonServerError,
			wantText: []string{"HTTP 502", "Bad Gateway"}},
		{name: "503 html", serve: reply(503, "html_503.html"), wantReason: ReasonServerError, wantText: []string{"HTTP 503"}},
		{name: "504 empty body", serve: reply(504, "empty.txt"), wantReason: ReasonServerError},

		// Bodies that hold no state.
		{name: "200 success false", serve: reply(200, "error_200_success_false.json"), wantReason: ReasonBadResponse,
			wantText: []string{"HTTP 200", "success is false", "Instance is not connected"}},
		{name: "200 success false invalid key", serve: reply(200, "error_invalid_key.json"), wantReason: ReasonBadResponse,
			wantText: []string{"Invalid API key"}},
		{name: "200 success true empty data", serve: reply(200, "success_true_empty_data.json"), wantReason: ReasonBadResponse,
			wantText: []string{"no instance state"}},
		{name: "200 success true only", serve: reply(200, "success_true_only.json"), wantReason: ReasonBadResponse},
		{name: "200 both states empty", serve: reply(200, "state_both_empty.json"), wantReason: ReasonBadResponse},
		{name: "200 numeric state", serve: reply(200, "state_number.json"), wantReason: ReasonBadResponse},
		{name: "200 JSON null", serve: reply(200, "null.json"), wantReason: ReasonBadResponse},
		{name: "200 JSON array", serve: reply(200, "array.json"), wantReason: ReasonBadResponse},
		{name: "200 html", serve: reply(200, "html_200.html"), wantReason: ReasonBadResponse},
		{name: "200 text", serve: reply(200, "text_200.txt"), wantReason: ReasonBadResponse},
		{name: "200 empty body", serve: reply(200, "empty.txt"), wantReason: ReasonBadResponse},
		{name: "204 no content", serve: reply(204, "empty.txt"), wantReason: ReasonBadResponse},

		// Error bodies that echo the key: the error text must not.
		{name: "401 echoing the key", serve: reply(401, "error_echo_key.json"), wantReason: ReasonUnauthorized,
			wantText: []string{"Invalid API key", "<secret>"}},
		{name: "401 echoing the Authorization header", serve: reply(401, "error_echo_auth.json"), wantReason: ReasonUnauthorized,
			wantText: []string{"Bearer <secret>"}},
		{name: "403 echoing the key escaped", serve: reply(403, "error_echo_key_escaped.json"), wantReason: ReasonUnauthorized,
			wantText: []string{"query form <secret>", "path form <secret>"}},
		{name: "401 echoing the key at the excerpt's cut", serve: reply(401, "error_echo_key_long.json"), wantReason: ReasonUnauthorized},
		{name: "404 echoing the key", serve: reply(404, "error_echo_key.json"), wantReason: ReasonClientError, wantText: notFoundText[:3]},
		{name: "429 echoing the key", serve: reply(429, "error_echo_key.json", "Retry-After", "3"), wantReason: ReasonRateLimited,
			wantRetryAfter: [2]time.Duration{3 * time.Second, 3 * time.Second}},
		{name: "500 echoing the key", serve: reply(500, "error_echo_key.json"), wantReason: ReasonServerError},
		{name: "502 html echoing the Authorization header", serve: reply(502, "html_echo_key_502.html"), wantReason: ReasonServerError},
		{name: "200 success false echoing the key", serve: reply(200, "error_echo_key.json"), wantReason: ReasonBadResponse},
		{name: "200 success false echoing the Authorization header", serve: reply(200, "error_echo_auth.json"), wantReason: ReasonBadResponse},
	}
	cases = append(cases, bodySizeCases(wachatPadded, "open")...)
	return append(cases, transportCases()...)
}

func TestWachatState(t *testing.T) {
	t.Parallel()
	runProviderCases(t, wachatTargets(), wachatCases)
}

// TestWachatRequestURL checks the URL built from api_url variants.
func TestWachatRequestURL(t *testing.T) {
	t.Parallel()
	key := wachatTestKeys[0].key
	for _, tc := range []struct{ name, suffix, prefix string }{
		{"no prefix", "", ""},
		{"no prefix trailing slash", "/", ""},
		{"api prefix", "/api/v1", "/api/v1"},
		{"api prefix trailing slash", "/api/v1/", "/api/v1"},
		{"proxy prefix", "/proxy/wachat/api/v1", "/proxy/wachat/api/v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := wachatTarget(tc.name, wachatTestInstance, key, tc.prefix)
			tg.apiPath = tc.suffix // api_url as written; requests go to tc.prefix
			runProviderCase(t, providerCase{serve: wachatReply(t, 200, "state_open_doc1.json"), wantState: "open"}, tg)
		})
	}
}

// TestWachatInstanceNameEscaping checks that the server receives exactly
// the configured instance name, whatever characters it holds.
func TestWachatInstanceNameEscaping(t *testing.T) {
	t.Parallel()
	key := wachatTestKeys[1].key
	for _, name := range []string{
		"t1_mq9r2jov_jakarta_store",
		"t1_a b&c",
		"a+b=c;d",
		"x#y?z/w",
		"100%25 %zz",
		"toko_jakarta_é_名前",
		"instanceName=evil&instanceName=other",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runProviderCase(t, providerCase{serve: wachatReply(t, 200, "state_close.json"), wantState: "close"},
				wachatTarget(name, name, key, wachatTestPrefix))
		})
	}
}

// TestWachatNotFoundNamesInstance: a 404 means the configured
// instance_name is wrong; the error says so and names it.
func TestWachatNotFoundNamesInstance(t *testing.T) {
	t.Parallel()
	err := runFailingCall(t, wachatTargets()[1], wachatReply(t, 404, "error_not_found.json"), ReasonClientError)
	want := `client_error: HTTP 404: no instance named "t1_a b&c"; check instance_name: "Instance not found"`
	if err.Error() != want {
		t.Errorf("error text = %q, want %q", err.Error(), want)
	}
}

// TestWachatErrorTextRedactsEncodedKey: a server that echoes the key in a
// JSON error message may escape it ("/" as "\/" in PHP, "&" as "\u0026" in
// Go), so that the body does not hold the key in any URL form; decoding
// the message restores the key, and the error text's excerpt may cut it so
// that no whole form is left to redact. The key must not appear, whole or
// in part, in any form.
func TestWachatErrorTextRedactsEncodedKey(t *testing.T) {
	t.Parallel()
	tg := wachatTargets()[0]
	if escapeJSON(tg.secret) == tg.secret {
		t.Fatalf("key %q has nothing to escape in JSON", tg.secret)
	}
	for _, tc := range []struct {
		name, fixture string
		status        int
		reason        string
	}{
		{"401 JSON-escaped key", "error_echo_key_json_escaped.json", 401, ReasonUnauthorized},
		{"200 success false JSON-escaped key", "error_echo_key_json_escaped.json", 200, ReasonBadResponse},
		{"401 JSON-escaped key at the excerpt's cut", "error_echo_key_json_escaped_long.json", 401, ReasonUnauthorized},
		{"200 success false JSON-escaped key at the excerpt's cut", "error_echo_key_json_escaped_long.json", 200, ReasonBadResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runFailingCall(t, tg, wachatReply(t, tc.status, tc.fixture), tc.reason)
		})
	}
}

// TestWachatConcurrentCalls shares one client among goroutines, as
// scrapes do.
func TestWachatConcurrentCalls(t *testing.T) {
	t.Parallel()
	runConcurrentCalls(t, wachatTargets()[0], wachatReply(t, 200, "state_connecting.json"), 8, "connecting")
}

// TestWachatViaCollector goes through collector.New and Update, the path
// main uses, and checks the state series, up, and the call metrics.
func TestWachatViaCollector(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, fixture string
		status        int
		wantState     string
		wantUp        float64
		wantReason    string
	}{
		{"open", "state_open_doc2.json", 200, "open", 1, ""},
		{"close", "state_close.json", 200, "close", 1, ""},
		{"unknown state refused", "state_unknown_refused.json", 200, StateUnknown, 1, ""},
		{"unauthorized", "error_invalid_key.json", 401, StateUnknown, 0, ReasonUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := wachatTargets()[0]
			root, rec := startRecordingServer(t, wachatReply(t, tc.status, tc.fixture))
			c, logs := newTestCollector(t, loadConfig(t, tg.yaml(root+tg.apiPath), t.TempDir()))
			values, mfs := scrapeValues(t, c)
			labels := ",name=" + wachatTestInstance + ",provider=wachat"
			want := map[string]float64{
				"whatsapp_up" + labels: tc.wantUp,
				"whatsapp_api_request_duration_seconds_count,method=" + wachatTestMethod + labels: 1,
			}
			for _, s := range []string{"open", "connecting", "close", StateUnknown} {
				v := 0.0
				if s == tc.wantState {
					v = 1
				}
				want["whatsapp_instance_state"+labels+",state="+s] = v
			}
			for _, r := range Reasons {
				v := 0.0
				if r == tc.wantReason {
					v = 1
				}
				want["whatsapp_api_request_errors_total,method="+wachatTestMethod+labels+",reason="+r] = v
			}
			checkValues(t, values, want)
			for _, mf := range mfs {
				if mf.GetName() == "whatsapp_instance_state" && len(mf.GetMetric()) != 4 {
					t.Errorf("%d whatsapp_instance_state series, want 4 (open, connecting, close, unknown)", len(mf.GetMetric()))
				}
			}
			checkRequest(t, rec.one(t), tg.request)
			checkNoLeak(t, "log output", logs.String(), tg.secret)
		})
	}
}

// TestWachatProvider checks the registration: states, method, config.
func TestWachatProvider(t *testing.T) {
	t.Parallel()
	p := providerOf("wachat")
	if p == nil {
		t.Fatal("provider wachat is not registered")
	}
	if want := []string{"open", "connecting", "close"}; !slices.Equal(p.States, want) {
		t.Errorf("States = %q, want %q", p.States, want)
	}
	if want := []string{"close", "connecting", "open"}; !slices.Equal(ProviderStates("wachat"), want) {
		t.Errorf("ProviderStates = %q, want %q", ProviderStates("wachat"), want)
	}
	if want := []string{wachatTestMethod}; !slices.Equal(p.Methods, want) {
		t.Errorf("Methods = %q, want %q", p.Methods, want)
	}
	if !slices.Contains(config.Providers(), "wachat") {
		t.Errorf("config.Providers() = %q, want wachat among them", config.Providers())
	}
	if p.Config.IdentityField != "instance_name" {
		t.Errorf("IdentityField = %q, want instance_name", p.Config.IdentityField)
	}
}

// wachatConfigKey is the key of the configuration tests; no error text may
// hold it.
const wachatConfigKey = "wk_cfg/S3cr3t+Key=Value"

// TestWachatConfigDefaults: name defaults to instance_name, api_url to
// Wachat's public API, timeout to the default.
func TestWachatConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg := loadConfig(t, `instances:
  - provider: wachat
    instance_name: t1_mq9r2jov_jakarta_store
    api_key: "`+wachatConfigKey+`"
`, t.TempDir())
	s := specOf[*WachatSpec](t, cfg.Instances[0].Spec)
	if got := cfg.Instances[0].Name(); got != "t1_mq9r2jov_jakarta_store" {
		t.Errorf("name = %q, want the instance name", got)
	}
	if got := cfg.Instances[0].Provider(); got != "wachat" {
		t.Errorf("provider = %q, want wachat", got)
	}
	if s.APIURL != "https://app.wachat.net/api/v1" {
		t.Errorf("api_url = %q, want https://app.wachat.net/api/v1", s.APIURL)
	}
	if s.InstanceName != "t1_mq9r2jov_jakarta_store" {
		t.Errorf("instance_name = %q", s.InstanceName)
	}
	if s.Secret() != wachatConfigKey {
		t.Errorf("key = %q, want %q", s.Secret(), wachatConfigKey)
	}
	if time.Duration(s.Timeout) != config.DefaultTimeout {
		t.Errorf("timeout = %v, want %v", s.Timeout, config.DefaultTimeout)
	}
}

// TestWachatConfigExplicit: explicit name and api_url win; a trailing
// slash is dropped.
func TestWachatConfigExplicit(t *testing.T) {
	t.Parallel()
	cfg := loadConfig(t, `instances:
  - name: jakarta
    provider: wachat
    instance_name: t1_mq9r2jov_jakarta_store
    api_key: "`+wachatConfigKey+`"
    api_url: https://wachat.example.com/api/v1/
    timeout: 3s
`, t.TempDir())
	s := specOf[*WachatSpec](t, cfg.Instances[0].Spec)
	if s.Name != "jakarta" {
		t.Errorf("name = %q, want jakarta", s.Name)
	}
	if s.APIURL != "https://wachat.example.com/api/v1" {
		t.Errorf("api_url = %q, want https://wachat.example.com/api/v1", s.APIURL)
	}
	if time.Duration(s.Timeout) != 3*time.Second {
		t.Errorf("timeout = %v, want 3s", s.Timeout)
	}
}

// TestWachatConfigKeyFile: api_key_file is read relative to the config's
// directory, or as an absolute path, and trimmed.
func TestWachatConfigKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "wachat.key"), []byte("  "+wachatConfigKey+"\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"secrets/wachat.key", filepath.Join(dir, "secrets", "wachat.key")} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			cfg := loadConfig(t, `instances:
  - provider: wachat
    instance_name: t1_x_store
    api_key_file: `+strconv.Quote(file)+`
`, dir)
			s := specOf[*WachatSpec](t, cfg.Instances[0].Spec)
			if s.Secret() != wachatConfigKey {
				t.Errorf("key = %q, want %q", s.Secret(), wachatConfigKey)
			}
			out, err := yaml.Marshal(cfg)
			if err != nil {
				t.Fatalf("yaml.Marshal: %v", err)
			}
			if strings.Contains(string(out), "S3cr3t") {
				t.Errorf("marshalled config holds the key:\n%s", out)
			}
			if !strings.Contains(string(out), "api_key_file: "+file) {
				t.Errorf("marshalled config lacks api_key_file:\n%s", out)
			}
		})
	}

	// The key file reaches the server as the bearer key.
	root, rec := startRecordingServer(t, wachatReply(t, 200, "state_open_doc1.json"))
	cfg := loadConfig(t, `instances:
  - provider: wachat
    instance_name: t1_x_store
    api_key_file: secrets/wachat.key
    api_url: `+strconv.Quote(root+wachatTestPrefix)+`
`, dir)
	c := clientFromConfig(t, cfg)
	checkState(t, c, "open")
	checkRequest(t, rec.one(t), wachatRequest(wachatTestPrefix, "t1_x_store", wachatConfigKey))
}

// TestWachatConfigMarshalHidesKey: the loaded configuration marshals with
// api_key as <secret>.
func TestWachatConfigMarshalHidesKey(t *testing.T) {
	t.Parallel()
	cfg := loadConfig(t, `instances:
  - provider: wachat
    instance_name: t1_mq9r2jov_jakarta_store
    api_key: "`+wachatConfigKey+`"
`, t.TempDir())
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatalf("yaml.Marshal: %v", err)
	}
	text := string(out)
	checkNoLeak(t, "marshalled config", text, wachatConfigKey)
	for _, want := range []string{
		"api_key: <secret>",
		"provider: wachat",
		"instance_name: t1_mq9r2jov_jakarta_store",
		"name: t1_mq9r2jov_jakarta_store",
		"api_url: https://app.wachat.net/api/v1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("marshalled config lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "api_key_file") {
		t.Errorf("marshalled config shows an unset api_key_file:\n%s", text)
	}
}

// TestWachatConfigErrors: the errors name Wachat's fields, never the key.
func TestWachatConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "wachat.key"), []byte(wachatConfigKey), 0o600); err != nil {
		t.Fatal(err)
	}
	key := "    api_key: \"" + wachatConfigKey + "\"\n"
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"missing instance_name", "  - provider: wachat\n" + key,
			[]string{"instance_name", "required"}},
		{"missing key", "  - provider: wachat\n    instance_name: t1_x\n",
			[]string{"api_key", "required", "api_key_file"}},
		{"both key and key file", "  - provider: wachat\n    instance_name: t1_x\n" + key + "    api_key_file: wachat.key\n",
			[]string{"api_key", "api_key_file", "not both"}},
		{"unknown field", "  - provider: wachat\n    instance_name: t1_x\n    apikey: x\n" + key,
			[]string{"with instance_name t1_x", "apikey"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load([]byte("instances:\n"+tc.yaml), dir, config.Options{})
			checkConfigError(t, err, tc.want, wachatConfigKey)
		})
	}
}
