package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	promcfg "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v2"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

// The Evolution API client is tested over real HTTP, like the GREEN-API
// client: each row starts an httptest server on loopback that serves a
// response body from testdata/evolution, and the client is built from a
// YAML configuration as in production.

const (
	// evolutionTestName needs escaping in a URL path: a slash and a space.
	evolutionTestName   = "shop/eu 1"
	evolutionTestMethod = "connectionState"
	// evolutionTestSlack bounds how long any call may take; calls are
	// expected to return far sooner.
	evolutionTestSlack = 5 * time.Second
)

// evolutionTestKeys are the API keys and api_url path prefixes every row
// runs with: a key whose characters are escaped in a URL path and a query
// (and differently in each), behind a reverse-proxy prefix, and a plain key
// shaped like Evolution API's generated ones on a bare server URL.
var evolutionTestKeys = []struct{ name, key, prefix string }{
	{"escaped_key_with_prefix", "evo/k3y+s=cr t", "/evolution/v2"},
	{"plain_key", "429683C4C977415CAAFCCE10F7D57E11", ""},
}

// evolutionServe answers one request; stop is closed when the test ends,
// so that a handler that hangs lets the server shut down. The GREEN-API
// tests' transport handlers (greenAPIHang and others) have this type.
type evolutionServe func(w http.ResponseWriter, r *http.Request, stop <-chan struct{})

type evolutionCase struct {
	name  string
	serve evolutionServe
	// refused points the client at a port nobody listens on.
	refused bool
	// deadline of the call's context; 0 means evolutionTestSlack.
	deadline time.Duration

	wantState  string // when wantReason is empty
	wantReason string
	// wantRetryAfter are the inclusive bounds of Error.RetryAfter.
	wantRetryAfter [2]time.Duration
	// wantText are pieces the error text must hold.
	wantText []string
}

type evolutionRequest struct {
	method, path, escapedPath, rawQuery, accept string
	apikey                                      []string
}

type evolutionRecorder struct {
	mu   sync.Mutex
	reqs []evolutionRequest
}

func (rec *evolutionRecorder) add(r *http.Request) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = append(rec.reqs, evolutionRequest{
		method:      r.Method,
		path:        r.URL.Path,
		escapedPath: r.URL.EscapedPath(),
		rawQuery:    r.URL.RawQuery,
		accept:      r.Header.Get("Accept"),
		apikey:      r.Header.Values("apikey"),
	})
}

func (rec *evolutionRecorder) requests() []evolutionRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]evolutionRequest(nil), rec.reqs...)
}

// evolutionStartServer starts a loopback server that records the requests
// and answers with serve.
func evolutionStartServer(t *testing.T, serve evolutionServe) (string, *evolutionRecorder) {
	t.Helper()
	rec := &evolutionRecorder{}
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r)
		serve(w, r, stop)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // runs before srv.Close
	return srv.URL, rec
}

// evolutionFixture reads a file of testdata/evolution.
func evolutionFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "evolution", name))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	return b
}

// evolutionReply serves a fixture with a status and header pairs. In the
// body, {{NAME}} becomes the instance name the request asked for (as
// Evolution API echoes it), and {{KEY}}, {{KEY_PATH}} and {{KEY_QUERY}} the
// apikey header's value, raw, path-escaped and query-escaped, as a server
// that echoes its request would.
func evolutionReply(t *testing.T, status int, fixture string, header ...string) evolutionServe {
	t.Helper()
	body := evolutionFixture(t, fixture)
	if len(header)%2 != 0 {
		t.Fatalf("evolutionReply: odd header list %q", header)
	}
	return func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		name := r.URL.Path[strings.LastIndex(r.URL.Path, "/connectionState/")+len("/connectionState/"):]
		key := r.Header.Get("apikey")
		b := bytes.ReplaceAll(body, []byte("{{NAME}}"), []byte(name))
		b = bytes.ReplaceAll(b, []byte("{{KEY}}"), []byte(key))
		b = bytes.ReplaceAll(b, []byte("{{KEY_PATH}}"), []byte(url.PathEscape(key)))
		b = bytes.ReplaceAll(b, []byte("{{KEY_QUERY}}"), []byte(url.QueryEscape(key)))
		w.Header().Set("Content-Type", greenAPIContentType(fixture))
		for k := 0; k < len(header); k += 2 {
			w.Header().Set(header[k], header[k+1])
		}
		w.WriteHeader(status)
		_, _ = w.Write(b)
	}
}

// evolutionReplyBytes serves a generated body.
func evolutionReplyBytes(status int, body []byte) evolutionServe {
	return func(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body) // fails once the client gives up on a large body
	}
}

// evolutionPadded returns a body of exactly n bytes holding the open state
// followed by spaces.
func evolutionPadded(n int) []byte {
	b := []byte(`{"instance":{"instanceName":"x","state":"open"}}`)
	return append(b, bytes.Repeat([]byte(" "), n-len(b))...)
}

// evolutionYAML is a configuration with one Evolution API instance.
func evolutionYAML(apiURL, name, key string) string {
	return fmt.Sprintf("instances:\n  - provider: evolution\n    instance_name: %s\n    api_key: %s\n    api_url: %s\n",
		strconv.Quote(name), strconv.Quote(key), strconv.Quote(apiURL))
}

// evolutionLoad resolves a configuration as the exporter does.
func evolutionLoad(t *testing.T, yml string) *config.Config {
	t.Helper()
	cfg, err := config.Load([]byte(yml), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	if len(cfg.Instances) != 1 {
		t.Fatalf("config.Load: got %d instances, want 1", len(cfg.Instances))
	}
	return cfg
}

// evolutionClientFromConfig builds the client of a configuration's only
// instance the way the collector does: resolved Spec, HTTP client from its
// HTTP settings, API with fresh metrics.
func evolutionClientFromConfig(t *testing.T, cfg *config.Config) (Client, *apiMetrics, *testlog.Buffer, *EvolutionSpec) {
	t.Helper()
	spec := cfg.Instances[0].Spec
	es, ok := spec.(*EvolutionSpec)
	if !ok {
		t.Fatalf("spec is %T, want *EvolutionSpec", spec)
	}
	hc, err := promcfg.NewClientFromConfig(es.HTTPClientConfig, "whatsapp_exporter")
	if err != nil {
		t.Fatalf("HTTP client: %v", err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	logger, logs := testlog.New()
	m := newAPIMetrics()
	p := providers["evolution"]
	m.init(p.Name, es.Name, p.Methods)
	api := &API{
		client:   hc,
		logger:   logger.With("provider", p.Name, "name", es.Name),
		provider: p.Name,
		name:     es.Name,
		metrics:  m,
	}
	c, err := p.NewClient(spec, api)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c, m, logs, es
}

// evolutionNewClient loads a configuration of one instance named
// evolutionTestName and builds its client.
func evolutionNewClient(t *testing.T, apiURL, key string) (Client, *apiMetrics, *testlog.Buffer) {
	t.Helper()
	c, m, logs, es := evolutionClientFromConfig(t, evolutionLoad(t, evolutionYAML(apiURL, evolutionTestName, key)))
	if es.Name != evolutionTestName {
		t.Fatalf("default name = %q, want the instance name %q", es.Name, evolutionTestName)
	}
	return c, m, logs
}

// evolutionCheckMetrics checks that exactly one call was counted, failed
// with wantReason if it is set.
func evolutionCheckMetrics(t *testing.T, m *apiMetrics, name, wantReason string) {
	t.Helper()
	if got := testutil.ToFloat64(m.requests.WithLabelValues("evolution", name, evolutionTestMethod)); got != 1 {
		t.Errorf("whatsapp_api_requests_total = %v, want 1", got)
	}
	for _, r := range Reasons {
		want := 0.0
		if r == wantReason {
			want = 1
		}
		if got := testutil.ToFloat64(m.errors.WithLabelValues("evolution", name, evolutionTestMethod, r)); got != want {
			t.Errorf("whatsapp_api_request_errors_total{reason=%q} = %v, want %v", r, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.errors, "whatsapp_api_request_errors_total"); n != len(Reasons) {
		t.Errorf("whatsapp_api_request_errors_total has %d series, want %d", n, len(Reasons))
	}
	if n := testutil.CollectAndCount(m.duration, "whatsapp_api_request_duration_seconds"); n != 1 {
		t.Errorf("whatsapp_api_request_duration_seconds has %d series, want 1", n)
	}
	if c := greenAPIHistogramCount(t, m.duration.WithLabelValues("evolution", name, evolutionTestMethod)); c != 1 {
		t.Errorf("whatsapp_api_request_duration_seconds count = %d, want 1", c)
	}
}

// evolutionCheckNoLeak fails when text holds the key in any of its URL
// forms, or a long piece of one (greenAPILeak).
func evolutionCheckNoLeak(t *testing.T, what, text, key string) {
	t.Helper()
	if leak, ok := greenAPILeak(text, key); ok {
		t.Errorf("%s holds the api key (%q):\n%s", what, leak, text)
	}
}

func evolutionCases(t *testing.T) []evolutionCase {
	retryDate := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	reply := func(status int, fixture string, header ...string) evolutionServe {
		return evolutionReply(t, status, fixture, header...)
	}
	quotedName := strconv.Quote(evolutionTestName)
	return []evolutionCase{
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
		{name: "404 html", serve: reply(404, "html_404.html"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 404", quotedName, "Cannot GET"}},
		{name: "404 empty body", serve: reply(404, "empty.txt"), wantReason: ReasonClientError,
			wantText: []string{"HTTP 404", quotedName}},

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
		{name: "200 body of exactly 64 KiB", serve: evolutionReplyBytes(200, evolutionPadded(maxBodyBytes)), wantState: "open"},
		{name: "200 body of 64 KiB plus one byte", serve: evolutionReplyBytes(200, evolutionPadded(maxBodyBytes+1)), wantReason: ReasonBadResponse,
			wantText: []string{"larger than"}},
		{name: "200 body of 4 MiB", serve: evolutionReplyBytes(200, evolutionPadded(4<<20)), wantReason: ReasonBadResponse},

		// Transport failures.
		{name: "server hangs", serve: greenAPIHang, deadline: 200 * time.Millisecond, wantReason: ReasonTimeout},
		{name: "server hangs in the body", serve: greenAPIHangInBody, deadline: 200 * time.Millisecond, wantReason: ReasonTimeout},
		{name: "server closes the connection", serve: greenAPIHijackClose, wantReason: ReasonNetwork},
		{name: "server drops the connection in the body", serve: greenAPITruncatedBody, wantReason: ReasonNetwork},
		{name: "server does not speak HTTP", serve: greenAPIGarbage, wantReason: ReasonNetwork},
		{name: "connection refused", refused: true, wantReason: ReasonNetwork},
	}
}

func TestEvolutionState(t *testing.T) {
	for _, k := range evolutionTestKeys {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range evolutionCases(t) {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					evolutionRunCase(t, tc, k.key, k.prefix)
				})
			}
		})
	}
}

func evolutionRunCase(t *testing.T, tc evolutionCase, key, prefix string) {
	var (
		serverURL string
		rec       *evolutionRecorder
	)
	if tc.refused {
		serverURL = greenAPIRefusedURL(t)
	} else {
		serverURL, rec = evolutionStartServer(t, tc.serve)
	}
	client, m, logs := evolutionNewClient(t, serverURL+prefix, key)

	deadline := tc.deadline
	if deadline == 0 {
		deadline = evolutionTestSlack
	}
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	start := time.Now()
	state, err := client.State(ctx)
	if elapsed := time.Since(start); elapsed >= evolutionTestSlack {
		t.Errorf("State took %v", elapsed)
	}

	if tc.wantReason == "" {
		if err != nil {
			t.Fatalf("State() error = %v, want state %q", err, tc.wantState)
		}
		if state != tc.wantState {
			t.Errorf("State() = %q, want %q", state, tc.wantState)
		}
	} else {
		var e *Error
		switch {
		case err == nil:
			t.Fatalf("State() = %q, want an error with reason %s", state, tc.wantReason)
		case !errors.As(err, &e):
			t.Fatalf("State() error %T %v is not an *Error", err, err)
		}
		if e.Reason != tc.wantReason {
			t.Errorf("reason = %s, want %s (error: %v)", e.Reason, tc.wantReason, err)
		}
		if state != "" {
			t.Errorf("State() returned state %q with an error", state)
		}
		if !strings.HasPrefix(err.Error(), e.Reason+": ") {
			t.Errorf("error text %q does not start with its reason", err.Error())
		}
		if e.RetryAfter < tc.wantRetryAfter[0] || e.RetryAfter > tc.wantRetryAfter[1] {
			t.Errorf("RetryAfter = %v, want between %v and %v", e.RetryAfter, tc.wantRetryAfter[0], tc.wantRetryAfter[1])
		}
		for _, want := range tc.wantText {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error text %q does not hold %q", err.Error(), want)
			}
		}
		evolutionCheckNoLeak(t, "error text", err.Error(), key)
	}
	evolutionCheckNoLeak(t, "log output", logs.String(), key)

	if rec != nil {
		reqs := rec.requests()
		if len(reqs) != 1 {
			t.Fatalf("server saw %d requests, want 1: %+v", len(reqs), reqs)
		}
		r := reqs[0]
		wantPath := prefix + "/instance/connectionState/" + evolutionTestName
		wantEscaped := prefix + "/instance/connectionState/" + url.PathEscape(evolutionTestName)
		if r.method != http.MethodGet {
			t.Errorf("method = %s, want GET", r.method)
		}
		if r.path != wantPath {
			t.Errorf("path = %q, want %q", r.path, wantPath)
		}
		if r.escapedPath != wantEscaped {
			t.Errorf("escaped path = %q, want %q", r.escapedPath, wantEscaped)
		}
		if r.rawQuery != "" {
			t.Errorf("query = %q, want none (the key goes in a header)", r.rawQuery)
		}
		if len(r.apikey) != 1 || r.apikey[0] != key {
			t.Errorf("apikey header = %q, want exactly [%q]", r.apikey, key)
		}
		if !strings.Contains(r.accept, "application/json") {
			t.Errorf("Accept = %q, want application/json", r.accept)
		}
	}
	evolutionCheckMetrics(t, m, evolutionTestName, tc.wantReason)
}

// TestEvolutionRequestURL checks the URL built from api_url and
// instance_name variants.
func TestEvolutionRequestURL(t *testing.T) {
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
			serverURL, rec := evolutionStartServer(t, evolutionReply(t, 200, "connecting.json"))
			client, m, _, es := evolutionClientFromConfig(t, evolutionLoad(t, evolutionYAML(serverURL+tc.suffix, tc.instance, key)))
			if es.Name != tc.instance {
				t.Errorf("default name = %q, want the instance name %q", es.Name, tc.instance)
			}
			ctx, cancel := context.WithTimeout(t.Context(), evolutionTestSlack)
			defer cancel()
			state, err := client.State(ctx)
			if err != nil || state != "connecting" {
				t.Fatalf("State() = %q, %v; want connecting", state, err)
			}
			reqs := rec.requests()
			if len(reqs) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if want := tc.prefix + "/instance/connectionState/" + url.PathEscape(tc.instance); r.escapedPath != want {
				t.Errorf("escaped path = %q, want %q", r.escapedPath, want)
			}
			if want := tc.prefix + "/instance/connectionState/" + tc.instance; r.path != want {
				t.Errorf("path = %q, want %q", r.path, want)
			}
			if r.rawQuery != "" {
				t.Errorf("query = %q, want none", r.rawQuery)
			}
			if len(r.apikey) != 1 || r.apikey[0] != key {
				t.Errorf("apikey header = %q, want [%q]", r.apikey, key)
			}
			evolutionCheckMetrics(t, m, tc.instance, "")
		})
	}
}

// TestEvolutionErrorTextRedactsTruncatedKey: a server that echoes its
// request in an error message can place the key where the error text's
// excerpt is cut. The part of the key before the cut must not appear
// either.
func TestEvolutionErrorTextRedactsTruncatedKey(t *testing.T) {
	for _, k := range evolutionTestKeys {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			serverURL, _ := evolutionStartServer(t, evolutionReply(t, 500, "error_500_echo_key.json"))
			client, _, logs := evolutionNewClient(t, serverURL+k.prefix, k.key)
			ctx, cancel := context.WithTimeout(t.Context(), evolutionTestSlack)
			defer cancel()
			_, err := client.State(ctx)
			var e *Error
			if !errors.As(err, &e) || e.Reason != ReasonServerError {
				t.Fatalf("State() error = %v, want reason %s", err, ReasonServerError)
			}
			if !strings.HasSuffix(err.Error(), "…") {
				t.Errorf("error text %q was not cut; the test no longer exercises truncation", err.Error())
			}
			evolutionCheckNoLeak(t, "error text", err.Error(), k.key)
			evolutionCheckNoLeak(t, "log output", logs.String(), k.key)
		})
	}
}

// TestEvolutionConcurrentCalls shares one client among goroutines, as
// scrapes do.
func TestEvolutionConcurrentCalls(t *testing.T) {
	const n = 8
	serverURL, rec := evolutionStartServer(t, evolutionReply(t, 200, "close.json"))
	client, m, _ := evolutionNewClient(t, serverURL, evolutionTestKeys[0].key)
	ctx, cancel := context.WithTimeout(t.Context(), evolutionTestSlack)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			state, err := client.State(ctx)
			if err == nil && state != "close" {
				err = fmt.Errorf("state %q, want close", state)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := len(rec.requests()); got != n {
		t.Errorf("server saw %d requests, want %d", got, n)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("evolution", evolutionTestName, evolutionTestMethod)); got != n {
		t.Errorf("whatsapp_api_requests_total = %v, want %d", got, n)
	}
}

// TestEvolutionViaCollector goes through New, Update and Scrape, the path
// main uses. An instance that is not loaded is up with state unknown and
// logs no warning; an unknown state value is up with state unknown and
// logs one.
func TestEvolutionViaCollector(t *testing.T) {
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
	serves := map[string]evolutionServe{}
	for name, f := range fixtures {
		serves[name] = evolutionReply(t, f.status, f.fixture)
	}
	serverURL, rec := evolutionStartServer(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
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
	logger, logs := testlog.New()
	c := New(logger, Options{Concurrency: 4})
	if err := c.Update(cfg); err != nil {
		t.Fatalf("Update: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), evolutionTestSlack)
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
	if err := testutil.CollectAndCompare(c.Scrape(ctx), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	// The call metrics, with method label connectionState.
	var wantCalls strings.Builder
	wantCalls.WriteString("# HELP whatsapp_api_request_errors_total Calls to the provider API that failed, by reason.\n# TYPE whatsapp_api_request_errors_total counter\n")
	failed := map[string]string{"missing": ReasonClientError, "wrongkey": ReasonUnauthorized}
	names := []string{"emptystate", "missing", "notloaded", "refusing", "shop", "wrongkey"}
	for _, name := range names {
		for _, r := range Reasons {
			fmt.Fprintf(&wantCalls, "whatsapp_api_request_errors_total{method=\"connectionState\",name=%q,provider=\"evolution\",reason=%q} %d\n",
				name, r, map[bool]int{false: 0, true: 1}[failed[name] == r])
		}
	}
	wantCalls.WriteString("# HELP whatsapp_api_requests_total Calls the exporter made to the provider API.\n# TYPE whatsapp_api_requests_total counter\n")
	for _, name := range names {
		fmt.Fprintf(&wantCalls, "whatsapp_api_requests_total{method=\"connectionState\",name=%q,provider=\"evolution\"} 1\n", name)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(wantCalls.String()), "whatsapp_api_requests_total", "whatsapp_api_request_errors_total"); err != nil {
		t.Error(err)
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
	evolutionCheckNoLeak(t, "log output", out, key)
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
	const (
		apiURL = "api_url: https://evolution.example.com/"
		key    = "Secr3t-Evolution-Key"
	)
	t.Run("name defaults to instance_name", func(t *testing.T) {
		cfg := evolutionLoad(t, evolutionConfigYAML("instance_name: 'shop/eu 1'", "api_key: "+key, apiURL))
		es := cfg.Instances[0].Spec.(*EvolutionSpec)
		if es.Name != "shop/eu 1" || cfg.Instances[0].Name() != "shop/eu 1" {
			t.Errorf("name = %q, want the instance name", es.Name)
		}
		if es.Provider != "evolution" {
			t.Errorf("provider = %q", es.Provider)
		}
		if es.APIURL != "https://evolution.example.com" {
			t.Errorf("api_url = %q, want it without the trailing slash", es.APIURL)
		}
		if es.key != key {
			t.Errorf("resolved key = %q, want %q", es.key, key)
		}
		if time.Duration(es.Timeout) != config.DefaultTimeout {
			t.Errorf("timeout = %v, want the default %v", time.Duration(es.Timeout), config.DefaultTimeout)
		}
	})
	t.Run("explicit name wins", func(t *testing.T) {
		cfg := evolutionLoad(t, evolutionConfigYAML("name: eu-shop", "instance_name: shop", "api_key: "+key, apiURL))
		es := cfg.Instances[0].Spec.(*EvolutionSpec)
		if es.Name != "eu-shop" || es.InstanceName != "shop" {
			t.Errorf("name, instance_name = %q, %q; want eu-shop, shop", es.Name, es.InstanceName)
		}
	})
	t.Run("environment expansion", func(t *testing.T) {
		env := map[string]string{"EVO_NAME": "shop", "EVO_KEY": key}
		cfg, err := config.Load([]byte(evolutionConfigYAML("instance_name: ${EVO_NAME}", "api_key: ${EVO_KEY}", apiURL)), t.TempDir(),
			config.Options{ExpandEnv: true, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
		if err != nil {
			t.Fatalf("config.Load: %v", err)
		}
		es := cfg.Instances[0].Spec.(*EvolutionSpec)
		if es.Name != "shop" || es.InstanceName != "shop" || es.key != key {
			t.Errorf("name, instance_name, key = %q, %q, %q", es.Name, es.InstanceName, es.key)
		}
	})

	for _, tc := range []struct {
		name      string
		lines     []string
		wantField string
		wantText  []string
	}{
		{"api_url missing", []string{"instance_name: shop", "api_key: " + key}, "api_url", []string{"api_url", "required", "evolution"}},
		{"api_url not http", []string{"instance_name: shop", "api_key: " + key, "api_url: ftp://evolution.example.com"}, "api_url", []string{"api_url"}},
		{"api_url with a query", []string{"instance_name: shop", "api_key: " + key, "api_url: https://evolution.example.com/?apikey=x"}, "api_url", []string{"api_url"}},
		{"instance_name missing", []string{"api_key: " + key, apiURL}, "instance_name", []string{"instance_name", "required"}},
		{"instance_name blank", []string{"instance_name: '  '", "api_key: " + key, apiURL}, "instance_name", []string{"instance_name", "required"}},
		{"api_key and api_key_file missing", []string{"instance_name: shop", apiURL}, "api_key", []string{"api_key", "api_key_file", "required"}},
		{"api_key and api_key_file both set", []string{"instance_name: shop", "api_key: " + key, "api_key_file: evo.key", apiURL}, "api_key", []string{"api_key", "api_key_file", "not both"}},
		{"api_key_file does not exist", []string{"instance_name: shop", "api_key_file: nonexistent.key", apiURL}, "api_key_file", []string{"api_key_file", "nonexistent.key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
		_, err := config.Load([]byte(evolutionConfigYAML("instance_name: shop", "api_key: "+key, apiURL, "apikey: x")), t.TempDir(), config.Options{})
		if err == nil || !strings.Contains(err.Error(), "apikey") {
			t.Errorf("config.Load error = %v, want one naming the unknown field apikey", err)
		}
	})

	t.Run("api_key_file empty", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "evo.key"), []byte(" \n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := config.Load([]byte(evolutionConfigYAML("instance_name: shop", "api_key_file: evo.key", apiURL)), dir, config.Options{})
		if err == nil || !strings.Contains(err.Error(), "api_key_file") || !strings.Contains(err.Error(), "empty") {
			t.Errorf("config.Load error = %v, want one saying api_key_file is empty", err)
		}
	})

	// api_key_file is read relative to the configuration's directory,
	// trimmed, and its key is sent in the apikey header.
	t.Run("api_key_file works", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "evo.key"), []byte("  "+key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		serverURL, rec := evolutionStartServer(t, evolutionReply(t, 200, "open.json"))
		cfg, err := config.Load([]byte(evolutionConfigYAML("instance_name: shop", "api_key_file: evo.key", "api_url: "+serverURL)), dir, config.Options{})
		if err != nil {
			t.Fatalf("config.Load: %v", err)
		}
		client, m, _, es := evolutionClientFromConfig(t, cfg)
		ctx, cancel := context.WithTimeout(t.Context(), evolutionTestSlack)
		defer cancel()
		if state, err := client.State(ctx); err != nil || state != "open" {
			t.Fatalf("State() = %q, %v; want open", state, err)
		}
		reqs := rec.requests()
		if len(reqs) != 1 || len(reqs[0].apikey) != 1 || reqs[0].apikey[0] != key {
			t.Errorf("requests = %+v, want one with apikey %q", reqs, key)
		}
		evolutionCheckMetrics(t, m, es.Name, "")

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
		cfg := evolutionLoad(t, evolutionConfigYAML("instance_name: shop", "api_key: "+key, apiURL))
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
		if got := back.Instances[0].Spec.(*EvolutionSpec); got.InstanceName != "shop" || got.APIURL != "https://evolution.example.com" {
			t.Errorf("reloaded instance_name, api_url = %q, %q", got.InstanceName, got.APIURL)
		}
	})

	t.Run("provider lists the Baileys states", func(t *testing.T) {
		got := strings.Join(ProviderStates("evolution"), ",")
		if got != "close,connecting,open" {
			t.Errorf("ProviderStates(evolution) = %s, want close,connecting,open", got)
		}
		if m := providers["evolution"].Methods; len(m) != 1 || m[0] != evolutionTestMethod {
			t.Errorf("methods = %q, want [%s]", m, evolutionTestMethod)
		}
	})
}
