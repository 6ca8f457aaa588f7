package collector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.yaml.in/yaml/v2"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// The Evolution API client is tested with harness_client_test.go,
// like the GREEN-API client: each row starts a loopback server that serves
// a response body from testdata/evolution, and the client is built from a
// YAML configuration as in production.

const (
	// evolutionTestName needs escaping in a URL path: a slash and a space.
	evolutionTestName   = "shop/eu 1"
	evolutionTestMethod = "connectionState"
)

// evolutionTestKeys are the API keys and api_url path prefixes every row
// runs with: a key whose characters are escaped in a URL path and a query
// (and differently in each), behind a reverse-proxy prefix, and a plain key
// shaped like Evolution API's generated ones on a bare server URL.
var evolutionTestKeys = []struct{ name, key, prefix string }{
	{"escaped_key_with_prefix", "evo/k3y+s=cr t", "/evolution/v2"},
	{"plain_key", "429683C4C977415CAAFCCE10F7D57E11", ""},
}

// evolutionReply serves a fixture of testdata/evolution with a status and
// header pairs. In the body, {{NAME}} becomes the instance name the request
// asked for (as Evolution API echoes it), and {{KEY}}, {{KEY_PATH}} and
// {{KEY_QUERY}} the apikey header's value, raw, path-escaped and
// query-escaped, as a server that echoes its request would.
func evolutionReply(t *testing.T, status int, fixture string, header ...string) providerServe {
	t.Helper()
	return replyFixture(t, "evolution", status, fixture, func(r *http.Request) []string {
		name := r.URL.Path[strings.LastIndex(r.URL.Path, "/connectionState/")+len("/connectionState/"):]
		key := r.Header.Get("apikey")
		return []string{
			"{{NAME}}", name,
			"{{KEY}}", key,
			"{{KEY_PATH}}", url.PathEscape(key),
			"{{KEY_QUERY}}", url.QueryEscape(key),
		}
	}, header...)
}

// evolutionPadded returns a body of exactly n bytes holding the open state
// followed by spaces.
func evolutionPadded(n int) []byte {
	return paddedBody(`{"instance":{"instanceName":"x","state":"open"}}`, n)
}

// evolutionYAML is a configuration with one Evolution API instance.
func evolutionYAML(apiURL, name, key string) string {
	return instanceYAML("evolution", "instance_name", name, "api_key", key, "api_url", apiURL)
}

// evolutionRequest is the one request the client is to send: the instance
// name in the path, the key in the apikey header.
func evolutionRequest(prefix, name, key string) wantRequest {
	p := prefix + "/instance/connectionState/"
	return wantRequest{path: p + name, escapedPath: p + url.PathEscape(name), keyHeaders: http.Header{"Apikey": {key}}}
}

// evolutionTarget is an instance with a key, behind an api_url path
// prefix.
func evolutionTarget(label, instance, key, prefix string) providerTarget {
	return providerTarget{
		label:    label,
		provider: "evolution",
		method:   evolutionTestMethod,
		name:     instance, // the default name is the instance name
		secret:   key,
		apiPath:  prefix,
		yaml:     func(apiURL string) string { return evolutionYAML(apiURL, instance, key) },
		request:  evolutionRequest(prefix, instance, key),
		logURL:   prefix + "/instance/connectionState/",
	}
}

func init() {
	providerTests["evolution"] = providerTest{
		targets:   evolutionTargets,
		stateBody: func(state string) string { return `{"instance":{"instanceName":"x","state":"` + state + `"}}` },
		goodState: "open",
	}
}

// evolutionTargets are the test instance with each test key and prefix.
func evolutionTargets() []providerTarget {
	var targets []providerTarget
	for _, k := range evolutionTestKeys {
		targets = append(targets, evolutionTarget(k.name, evolutionTestName, k.key, k.prefix))
	}
	return targets
}

func evolutionCases(t *testing.T) []providerCase {
	retryDate := retryDateIn30s
	reply := func(status int, fixture string, header ...string) providerServe {
		return evolutionReply(t, status, fixture, header...)
	}
	quotedName := strconv.Quote(evolutionTestName)
	cases := []providerCase{
		// 200 with each documented state.
		{name: "200 open", serve: reply(200, "open.json"), wantState: "open"},
		{name: "200 connecting", serve: reply(200, "connecting.json"), wantState: "connecting"},
		{name: "200 close", serve: reply(200, "close.json"), wantState: "close"},
		{name: "200 open sent as text/plain", serve: reply(200, "open.json", "Content-Type", "text/plain"), wantState: "open"},
		{name: "201 open", serve: reply(201, "open.json"), wantState: "open"},
		// An unknown value is returned raw; the collector maps it.
		{name: "200 unknown state refused", serve: reply(200, "refused.json"), wantState: "refused"},
		// The instance exists but is not loaded: the call worked, no state.
		{name: "200 instance without state", serve: reply(200, "not_loaded.json"), wantState: StateUnknown},
		{name: "200 empty state", serve: reply(200, "empty_state.json"), wantState: StateUnknown},
		{name: "200 null state", serve: reply(200, "state_null.json"), wantState: StateUnknown},

		// Unauthorized.
		{name: "401 Evolution body", serve: reply(401, "error_401.json"), wantReason: ReasonUnauthorized,
			wantText: []string{"HTTP 401", "Unauthorized"}},
		{name: "401 message as a plain string", serve: reply(401, "error_401_string.json"), wantReason: ReasonUnauthorized,
			wantText: []string{"HTTP 401", "Invalid API key"}},
		{name: "401 text", serve: reply(401, "text_401.txt"), wantReason: ReasonUnauthorized,
			wantText: []string{"HTTP 401", "Unauthorized"}},
		{name: "401 echoing the key", serve: reply(401, "error_401_echo_key.json"), wantReason: ReasonUnauthorized,
			wantText: []string{"HTTP 401", "Invalid apikey", "<secret>"}},
		{name: "403 Evolution body", serve: reply(403, "error_403.json"), wantReason: ReasonUnauthorized,
			wantText: []string{"HTTP 403", "Missing global api key"}},

		// Not found: the instance name is wrong.
		{name: "404 Evolution body", serve: reply(404, "error_404.json"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 404", "instance_name", quotedName, "instance does not exist"}},
		{name: "404 echoing the key", serve: reply(404, "error_404_echo_key.json"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 404", "instance_name", quotedName, "instance does not exist", "<secret>"}},
		// Not found: the path is wrong (Evolution API's own 404 handler
		// answers "Cannot GET /path" in its error shape), or api_url
		// leads to something else that answers 404.
		{name: "404 wrong path", serve: reply(404, "error_404_wrong_path.json"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 404", "check api_url", "Cannot GET"}, wantNotText: []string{"no instance named"}},
		{name: "404 html", serve: reply(404, "html_404.html"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 404", "check api_url", "Cannot GET"}, wantNotText: []string{"no instance named"}},
		{name: "404 empty body", serve: reply(404, "empty.txt"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 404", "check api_url"}, wantNotText: []string{"no instance named"}},

		// Other 4xx.
		{name: "400 Evolution body", serve: reply(400, "error_400.json"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 400", "Bad Request", "instanceName"}},
		{name: "400 empty body", serve: reply(400, "empty.txt"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 400"}},

		// Rate limiting.
		{name: "429 Retry-After seconds", serve: reply(429, "error_429.json", "Retry-After", "7"),
			wantReason: ReasonRateLimited, wantRetryAfter: [2]time.Duration{7 * time.Second, 7 * time.Second},
			wantText: []string{"HTTP 429", "Too Many Requests"}},
		{name: "429 Retry-After HTTP date", serve: reply(429, "error_429.json", "Retry-After", retryDate),
			wantReason: ReasonRateLimited, wantRetryAfter: [2]time.Duration{20 * time.Second, 30 * time.Second}},
		{name: "429 no Retry-After", serve: reply(429, "empty.txt"), wantReason: ReasonRateLimited},
		{name: "429 garbled Retry-After", serve: reply(429, "empty.txt", "Retry-After", "soon"), wantReason: ReasonRateLimited},

		// 5xx.
		{name: "500 Evolution body", serve: reply(500, "error_500.json"), wantReason: ReasonServerError,
			wantText: []string{"HTTP 500", "Connection Closed"}},
		{name: "500 echoing the key", serve: reply(500, "error_500_echo_key.json"), wantReason: ReasonServerError,
			wantText: []string{"HTTP 500", "<secret>"}},
		{name: "500 JSON null", serve: reply(500, "null.json"), wantReason: ReasonServerError,
			wantText: []string{"HTTP 500", "null"}},
		{name: "502 nginx html", serve: reply(502, "html_502.html"), wantReason: ReasonServerError,
			wantText: []string{"HTTP 502", "502 Bad Gateway"}},
		{name: "503 nginx html", serve: reply(503, "html_503.html"), wantReason: ReasonServerError,
			wantText: []string{"HTTP 503"}},

		// Bodies that hold no instance object.
		{name: "200 JSON without an instance object", serve: reply(200, "flat.json"), wantReason: ReasonBadResponse,
			wantText: []string{"HTTP 200", "no instance object"}},
		{name: "200 empty JSON object", serve: reply(200, "empty_object.json"), wantReason: ReasonBadResponse},
		{name: "200 instance null", serve: reply(200, "instance_null.json"), wantReason: ReasonBadResponse},
		{name: "200 instance a string", serve: reply(200, "instance_string.json"), wantReason: ReasonBadResponse},
		{name: "200 numeric state", serve: reply(200, "state_number.json"), wantReason: ReasonBadResponse},
		{name: "200 JSON array", serve: reply(200, "array.json"), wantReason: ReasonBadResponse},
		{name: "200 JSON null", serve: reply(200, "null.json"), wantReason: ReasonBadResponse},
		{name: "200 html", serve: reply(200, "html_200.html"), wantReason: ReasonBadResponse,
			wantText: []string{"HTTP 200", "Sign in"}},
		{name: "200 not JSON", serve: reply(200, "text_200.txt"), wantReason: ReasonBadResponse,
			wantText: []string{"HTTP 200", `"OK"`}},
		{name: "200 empty body", serve: reply(200, "empty.txt"), wantReason: ReasonBadResponse},
		{name: "204 no content", serve: reply(204, "empty.txt"), wantReason: ReasonBadResponse},
	}
	cases = append(cases, bodySizeCases(evolutionPadded, "open")...)
	return append(cases, transportCases()...)
}

func TestEvolutionState(t *testing.T) {
	t.Parallel()
	runProviderCases(t, evolutionTargets(), evolutionCases)
}

// TestEvolutionRequestURL checks the URL built from api_url and
// instance_name variants.
func TestEvolutionRequestURL(t *testing.T) {
	t.Parallel()
	const key = "evo/k3y+s=cr t"
	for _, tc := range []struct{ name, suffix, prefix, instance string }{
		{"plain", "", "", "shop"},
		{"trailing slash", "/", "", "shop"},
		{"path prefix", "/proxy/evolution", "/proxy/evolution", "shop"},
		{"path prefix with trailing slash", "/proxy/evolution/", "/proxy/evolution", "shop"},
		{"name with slash and space", "/proxy", "/proxy", "shop/eu 1"},
		{"name with query and fragment characters", "", "", "a?b#c&d=e"},
		{"name with percent and plus", "", "", "100%+1"},
		{"name with non-ASCII", "", "", "магазин ü"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := evolutionTarget(tc.name, tc.instance, key, tc.prefix)
			tg.apiPath = tc.suffix // api_url as written; requests go to tc.prefix
			runProviderCase(t, providerCase{serve: evolutionReply(t, 200, "connecting.json"), wantState: "connecting"}, tg)
		})
	}
}

// TestEvolutionErrorTextRedactsTruncatedKey: a server that echoes its
// request in an error message can place the key where the error text's
// excerpt is cut. The part of the key before the cut must not appear
// either.
func TestEvolutionErrorTextRedactsTruncatedKey(t *testing.T) {
	t.Parallel()
	for _, tg := range evolutionTargets() {
		t.Run(tg.label, func(t *testing.T) {
			t.Parallel()
			err := runFailingCall(t, tg, evolutionReply(t, 500, "error_500_echo_key.json"), ReasonServerError)
			if !strings.HasSuffix(err.Error(), "…") {
				t.Errorf("error text %q was not cut; the test no longer exercises truncation", err.Error())
			}
		})
	}
}

// TestEvolutionConcurrentCalls shares one client among goroutines, as
// scrapes do.
func TestEvolutionConcurrentCalls(t *testing.T) {
	t.Parallel()
	runConcurrentCalls(t, evolutionTargets()[0], evolutionReply(t, 200, "close.json"), 8, "close")
}

// TestEvolutionViaCollector goes through New, Update and Scrape, the path
// main uses. An instance that is not loaded is up with state unknown and
// logs no warning; an unknown state value is up with state unknown and
// logs one.
func TestEvolutionViaCollector(t *testing.T) {
	t.Parallel()
	const key = "evo/k3y+s=cr t"
	fixtures := map[string]struct {
		status  int
		fixture string
	}{
		"notloaded":  {200, "not_loaded.json"},
		"emptystate": {200, "empty_state.json"},
		"refusing":   {200, "refused.json"},
		"shop":       {200, "open.json"},
		"wrongkey":   {401, "error_401_echo_key.json"},
		"missing":    {404, "error_404.json"},
	}
	serves := map[string]providerServe{}
	for name, f := range fixtures {
		serves[name] = evolutionReply(t, f.status, f.fixture)
	}
	serverURL, rec := startRecordingServer(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
		name := strings.TrimPrefix(r.URL.Path, "/evo/instance/connectionState/")
		serve, ok := serves[name]
		if !ok {
			http.Error(w, "unexpected path "+r.URL.Path, http.StatusTeapot)
			return
		}
		serve(w, r, stop)
	})
	var yml strings.Builder
	yml.WriteString("instances:\n")
	for _, name := range []string{"emptystate", "missing", "notloaded", "refusing", "shop", "wrongkey"} {
		fmt.Fprintf(&yml, "  - provider: evolution\n    instance_name: %s\n    api_key: %s\n    api_url: %s\n    timeout: 2s\n",
			name, strconv.Quote(key), strconv.Quote(serverURL+"/evo"))
	}
	cfg, err := config.Load([]byte(yml.String()), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	c, logs := newTestCollector(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), providerTestSlack)
	defer cancel()

	want := stateHeader +
		stateLines("evolution", "emptystate", StateUnknown, true) +
		stateLines("evolution", "missing", StateUnknown, false) +
		stateLines("evolution", "notloaded", StateUnknown, true) +
		stateLines("evolution", "refusing", StateUnknown, true) +
		stateLines("evolution", "shop", "open", true) +
		stateLines("evolution", "wrongkey", StateUnknown, false) +
		upHeader +
		upLine("evolution", "emptystate", true) +
		upLine("evolution", "missing", false) +
		upLine("evolution", "notloaded", true) +
		upLine("evolution", "refusing", true) +
		upLine("evolution", "shop", true) +
		upLine("evolution", "wrongkey", false)
	if err := testutil.GatherAndCompare(scrapeOf(c, ctx), strings.NewReader(want), "whatsapp_instance_state", "whatsapp_up"); err != nil {
		t.Fatal(err)
	}

	// The call metrics, with method label connectionState: one call each,
	// and the failures by reason.
	var wantCalls strings.Builder
	wantCalls.WriteString("# HELP whatsapp_api_request_errors_total " + errorsFamily.help + "\n# TYPE whatsapp_api_request_errors_total counter\n")
	wantCalls.WriteString("whatsapp_api_request_errors_total{method=\"connectionState\",name=\"missing\",provider=\"evolution\",reason=\"client_error\"} 1\n")
	wantCalls.WriteString("whatsapp_api_request_errors_total{method=\"connectionState\",name=\"wrongkey\",provider=\"evolution\",reason=\"unauthorized\"} 1\n")
	names := []string{"emptystate", "missing", "notloaded", "refusing", "shop", "wrongkey"}
	if err := testutil.GatherAndCompare(scrapeOf(c, ctx), strings.NewReader(wantCalls.String()), "whatsapp_api_request_errors_total"); err != nil {
		t.Error(err)
	}
	values, _ := scrapeValues(t, c)
	for _, name := range names {
		if k := "whatsapp_api_request_duration_seconds_count,method=connectionState,name=" + name + ",provider=evolution"; values[k] != 1 {
			t.Errorf("%s = %v, want 1", k, values[k])
		}
	}
	if got := len(rec.requests()); got != len(names) {
		t.Errorf("server saw %d requests, want %d", got, len(names))
	}

	// Only the unknown value is warned about; an instance that is not
	// loaded, or has an empty state, is not.
	out := logs.String()
	const unknownMsg = "Provider reported a state the exporter does not know"
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "level=WARN") {
			continue
		}
		for _, name := range []string{"notloaded", "emptystate", "shop"} {
			if strings.Contains(line, "name="+name+" ") || strings.HasSuffix(line, "name="+name) {
				t.Errorf("warning logged for instance %s: %s", name, line)
			}
		}
	}
	if !strings.Contains(out, `level=WARN msg="`+unknownMsg+`; exposing it as unknown" provider=evolution name=refusing raw_state="\"refused\""`) {
		t.Errorf("no warning for the unknown state refused in the logs:\n%s", out)
	}
	if n := strings.Count(out, unknownMsg); n != 1 {
		t.Errorf("%d warnings about unknown states, want 1:\n%s", n, out)
	}
	// The failures are logged, at warn, without the key the 401 echoed.
	if !strings.Contains(out, `level=WARN msg="State request failing" provider=evolution name=wrongkey reason=unauthorized`) {
		t.Errorf("no warning for the failing instance in the logs:\n%s", out)
	}
	checkNoLeak(t, "log output", out, key)
}

// evolutionConfigYAML is one Evolution API instance with extra lines.
func evolutionConfigYAML(lines ...string) string {
	var b strings.Builder
	b.WriteString("instances:\n  - provider: evolution\n")
	for _, l := range lines {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

func TestEvolutionConfig(t *testing.T) {
	t.Parallel()
	const (
		apiURL = "api_url: https://evolution.example.com/"
		key    = "Secr3t-Evolution-Key"
	)
	t.Run("name defaults to instance_name", func(t *testing.T) {
		t.Parallel()
		cfg := loadConfig(t, evolutionConfigYAML("instance_name: 'shop/eu 1'", "api_key: "+key, apiURL), t.TempDir())
		es := specOf[*EvolutionSpec](t, cfg.Instances[0].Spec)
		if es.Name != "shop/eu 1" || cfg.Instances[0].Name() != "shop/eu 1" {
			t.Errorf("name = %q, want the instance name", es.Name)
		}
		if es.Provider != "evolution" {
			t.Errorf("provider = %q", es.Provider)
		}
		if es.APIURL != "https://evolution.example.com" {
			t.Errorf("api_url = %q, want it without the trailing slash", es.APIURL)
		}
		if es.Secret() != key {
			t.Errorf("resolved key = %q, want %q", es.Secret(), key)
		}
		if time.Duration(es.Timeout) != config.DefaultTimeout {
			t.Errorf("timeout = %v, want the default %v", time.Duration(es.Timeout), config.DefaultTimeout)
		}
	})
	t.Run("explicit name wins", func(t *testing.T) {
		t.Parallel()
		cfg := loadConfig(t, evolutionConfigYAML("name: eu-shop", "instance_name: shop", "api_key: "+key, apiURL), t.TempDir())
		es := specOf[*EvolutionSpec](t, cfg.Instances[0].Spec)
		if es.Name != "eu-shop" || es.InstanceName != "shop" {
			t.Errorf("name, instance_name = %q, %q; want eu-shop, shop", es.Name, es.InstanceName)
		}
	})

	for _, tc := range []struct {
		name      string
		lines     []string
		wantField string
		wantText  []string
	}{
		{"api_url missing", []string{"instance_name: shop", "api_key: " + key}, "api_url", []string{"api_url", "required", "evolution"}},
		{"instance_name missing", []string{"api_key: " + key, apiURL}, "instance_name", []string{"instance_name", "required"}},
		{"api_key and api_key_file missing", []string{"instance_name: shop", apiURL}, "api_key", []string{"api_key", "api_key_file", "required"}},
		{"api_key and api_key_file both set", []string{"instance_name: shop", "api_key: " + key, "api_key_file: evo.key", apiURL}, "api_key", []string{"api_key", "api_key_file", "not both"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load([]byte(evolutionConfigYAML(tc.lines...)), t.TempDir(), config.Options{})
			if err == nil {
				t.Fatal("config.Load succeeded, want an error")
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v holds no *config.FieldError", err)
			}
			if fe.Field != tc.wantField {
				t.Errorf("field = %q, want %q (error: %v)", fe.Field, tc.wantField, err)
			}
			for _, w := range tc.wantText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not hold %q", err.Error(), w)
				}
			}
			if strings.Contains(err.Error(), key) {
				t.Errorf("error %q holds the api key", err.Error())
			}
		})
	}

	t.Run("unknown field", func(t *testing.T) {
		t.Parallel()
		_, err := config.Load([]byte(evolutionConfigYAML("instance_name: shop", "api_key: "+key, apiURL, "apikey: x")), t.TempDir(), config.Options{})
		if err == nil || !strings.Contains(err.Error(), "apikey") {
			t.Errorf("config.Load error = %v, want one naming the unknown field apikey", err)
		}
	})

	// api_key_file is read relative to the configuration's directory,
	// trimmed, and its key is sent in the apikey header.
	t.Run("api_key_file works", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "evo.key"), []byte("  "+key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		serverURL, rec := startRecordingServer(t, evolutionReply(t, 200, "open.json"))
		cfg, err := config.Load([]byte(evolutionConfigYAML("instance_name: shop", "api_key_file: evo.key", "api_url: "+serverURL)), dir, config.Options{})
		if err != nil {
			t.Fatalf("config.Load: %v", err)
		}
		c := clientFromConfig(t, cfg)
		checkState(t, c, "open")
		if reqs := rec.requests(); len(reqs) != 1 {
			t.Errorf("server saw %d requests, want 1: %+v", len(reqs), reqs)
		} else {
			checkRequest(t, reqs[0], evolutionRequest("", "shop", key))
		}
		checkCallMetrics(t, c.metrics, "evolution", "shop", evolutionTestMethod, "")

		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("yaml.Marshal: %v", err)
		}
		if strings.Contains(string(out), key) {
			t.Errorf("marshalled configuration holds the key:\n%s", out)
		}
		if !strings.Contains(string(out), "api_key_file: evo.key") {
			t.Errorf("marshalled configuration lacks api_key_file:\n%s", out)
		}
	})

	t.Run("marshalled api_key is <secret>", func(t *testing.T) {
		t.Parallel()
		cfg := loadConfig(t, evolutionConfigYAML("instance_name: shop", "api_key: "+key, apiURL), t.TempDir())
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("yaml.Marshal: %v", err)
		}
		s := string(out)
		if strings.Contains(s, key) {
			t.Errorf("marshalled configuration holds the key:\n%s", s)
		}
		for _, want := range []string{"api_key: <secret>", "provider: evolution", "instance_name: shop", "name: shop"} {
			if !strings.Contains(s, want) {
				t.Errorf("marshalled configuration lacks %q:\n%s", want, s)
			}
		}
		// What is marshalled loads again, to the same instance (but for the
		// key, which no longer is one).
		back, err := config.Load(out, t.TempDir(), config.Options{})
		if err != nil {
			t.Fatalf("loading the marshalled configuration: %v\n%s", err, s)
		}
		if got := specOf[*EvolutionSpec](t, back.Instances[0].Spec); got.InstanceName != "shop" || got.APIURL != "https://evolution.example.com" {
			t.Errorf("reloaded instance_name, api_url = %q, %q", got.InstanceName, got.APIURL)
		}
	})

	t.Run("provider lists the Baileys states", func(t *testing.T) {
		t.Parallel()
		got := strings.Join(ProviderStates("evolution"), ",")
		if got != "close,connecting,open" {
			t.Errorf("ProviderStates(evolution) = %s, want close,connecting,open", got)
		}
		if m := providerOf("evolution").Methods; len(m) != 1 || m[0] != evolutionTestMethod {
			t.Errorf("methods = %q, want [%s]", m, evolutionTestMethod)
		}
	})
}
