package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	promcfg "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v2"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

// The Wachat client is tested over real HTTP, as the GREEN-API client is:
// each row starts an httptest server on loopback that serves a response
// body from testdata/wachat, and the client is built from a YAML
// configuration as in production. api_url carries a path prefix, as
// Wachat's own base URL does.

const (
	// wachatTestInstance needs escaping in a query: a space and an &.
	wachatTestInstance = "t1_a b&c"
	wachatTestMethod   = "instanceState"
	wachatTestPrefix   = "/api/v1"
	// wachatTestSlack bounds how long any call may take; calls are
	// expected to return far sooner.
	wachatTestSlack = 5 * time.Second
)

// wachatTestKeys are the API keys every row runs with: one whose
// characters are escaped in a URL path, a query, JSON and HTML, and a plain
// one as long as real keys are.
var wachatTestKeys = []struct{ name, key string }{
	{"escaped_key", "wk_live/s3cr3t+k3y=AbCd&Ef/9a8b7c6d5e4f"},
	{"plain_key", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
}

type wachatCase struct {
	name  string
	serve greenAPIServe
	// refused points the client at a port nobody listens on.
	refused bool
	// deadline of the call's context; 0 means wachatTestSlack.
	deadline time.Duration

	wantState  string // when wantReason is empty
	wantReason string
	// wantRetryAfter are the inclusive bounds of Error.RetryAfter.
	wantRetryAfter [2]time.Duration
	// wantText are pieces the error text must hold.
	wantText []string
}

type wachatRequest struct {
	method, path, escapedPath, rawQuery string
	query                               url.Values
	authorization, accept               string
	apikey                              []string
}

type wachatRecorder struct {
	mu   sync.Mutex
	reqs []wachatRequest
}

func (rec *wachatRecorder) add(r *http.Request) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = append(rec.reqs, wachatRequest{
		method:        r.Method,
		path:          r.URL.Path,
		escapedPath:   r.URL.EscapedPath(),
		rawQuery:      r.URL.RawQuery,
		query:         r.URL.Query(),
		authorization: r.Header.Get("Authorization"),
		accept:        r.Header.Get("Accept"),
		apikey:        r.Header.Values("Apikey"),
	})
}

func (rec *wachatRecorder) requests() []wachatRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]wachatRequest(nil), rec.reqs...)
}

// wachatFixture reads a file of testdata/wachat.
func wachatFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "wachat", name))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	return b
}

// wachatJSONEscape is the key as a JSON encoder that escapes "/" (PHP) and
// "&" (Go) writes it inside a string.
func wachatJSONEscape(s string) string {
	b, _ := json.Marshal(s) // escapes & < > as \u00xx
	return strings.ReplaceAll(strings.Trim(string(b), `"`), "/", `\/`)
}

// wachatReply serves a fixture with a status and header pairs. Servers
// that echo what they were sent are simulated by placeholders: {{AUTH}}
// becomes the Authorization header, {{KEY}} the key taken from it,
// {{KEY_QUERY}}, {{KEY_PATH}} and {{KEY_JSON}} the key query-, path- and
// JSON-escaped.
func wachatReply(t *testing.T, status int, fixture string, header ...string) greenAPIServe {
	t.Helper()
	body := wachatFixture(t, fixture)
	if len(header)%2 != 0 {
		t.Fatalf("wachatReply: odd header list %q", header)
	}
	return func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		auth := r.Header.Get("Authorization")
		key := strings.TrimPrefix(auth, "Bearer ")
		b := bytes.ReplaceAll(body, []byte("{{AUTH}}"), []byte(auth))
		b = bytes.ReplaceAll(b, []byte("{{KEY_QUERY}}"), []byte(url.QueryEscape(key)))
		b = bytes.ReplaceAll(b, []byte("{{KEY_PATH}}"), []byte(url.PathEscape(key)))
		b = bytes.ReplaceAll(b, []byte("{{KEY_JSON}}"), []byte(wachatJSONEscape(key)))
		b = bytes.ReplaceAll(b, []byte("{{KEY}}"), []byte(key))
		w.Header().Set("Content-Type", greenAPIContentType(fixture))
		for k := 0; k < len(header); k += 2 {
			w.Header().Set(header[k], header[k+1])
		}
		w.WriteHeader(status)
		_, _ = w.Write(b)
	}
}

// wachatPadded returns a body of exactly n bytes holding the open state
// followed by spaces.
func wachatPadded(n int) []byte {
	b := []byte(`{"success":true,"instance":{"state":"open"}}`)
	return append(b, bytes.Repeat([]byte(" "), n-len(b))...)
}

// wachatYAML is a configuration with one Wachat instance.
func wachatYAML(apiURL, key string) string {
	return fmt.Sprintf("instances:\n  - provider: wachat\n    instance_name: %s\n    api_key: %s\n    api_url: %s\n",
		strconv.Quote(wachatTestInstance), strconv.Quote(key), strconv.Quote(apiURL))
}

// wachatLoad resolves a configuration as the exporter does.
func wachatLoad(t *testing.T, content, dir string) *config.Config {
	t.Helper()
	cfg, err := config.Load([]byte(content), dir, config.Options{})
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	if len(cfg.Instances) != 1 {
		t.Fatalf("config.Load: got %d instances, want 1", len(cfg.Instances))
	}
	return cfg
}

// wachatSpecOf returns the Wachat spec of a loaded instance.
func wachatSpecOf(t *testing.T, inst config.Instance) *WachatSpec {
	t.Helper()
	s, ok := inst.Spec.(*WachatSpec)
	if !ok {
		t.Fatalf("spec is %T, want *WachatSpec", inst.Spec)
	}
	return s
}

// wachatNewClient builds the client of one instance the way the collector
// does: resolved Spec, HTTP client from its HTTP settings, API with fresh
// metrics.
func wachatNewClient(t *testing.T, apiURL, key string) (Client, *apiMetrics, *testlog.Buffer) {
	t.Helper()
	cfg := wachatLoad(t, wachatYAML(apiURL, key), t.TempDir())
	spec := cfg.Instances[0].Spec
	ws := wachatSpecOf(t, cfg.Instances[0])
	if ws.Name != wachatTestInstance {
		t.Fatalf("default name = %q, want the instance name %q", ws.Name, wachatTestInstance)
	}
	hc, err := promcfg.NewClientFromConfig(ws.HTTPClientConfig, "whatsapp_exporter")
	if err != nil {
		t.Fatalf("HTTP client: %v", err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	logger, logs := testlog.New()
	m := newAPIMetrics()
	p := providers["wachat"]
	m.init(p.Name, ws.Name, p.Methods)
	api := &API{
		client:   hc,
		logger:   logger.With("provider", p.Name, "name", ws.Name),
		provider: p.Name,
		name:     ws.Name,
		metrics:  m,
	}
	c, err := p.NewClient(spec, api)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c, m, logs
}

// wachatStartServer starts a loopback server that records the requests
// and answers every path with serve; it returns the server's root URL.
func wachatStartServer(t *testing.T, serve greenAPIServe) (string, *wachatRecorder) {
	t.Helper()
	rec := &wachatRecorder{}
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r)
		serve(w, r, stop)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // runs before srv.Close
	return srv.URL, rec
}

// wachatLeak reports the first form of key, or long piece of one, found in
// text: raw, path-, query-, JSON- and HTML-escaped.
func wachatLeak(text, key string) (string, bool) {
	if leak, ok := greenAPILeak(text, key); ok {
		return leak, true
	}
	for _, form := range []string{wachatJSONEscape(key), strings.ReplaceAll(key, "&", "&amp;")} {
		if form != key && strings.Contains(text, form) {
			return form, true
		}
	}
	return "", false
}

// wachatCheckMetrics checks that exactly one call was counted, failed with
// wantReason if it is set.
func wachatCheckMetrics(t *testing.T, m *apiMetrics, wantReason string) {
	t.Helper()
	wachatCheckCalls(t, m, 1)
	for _, r := range Reasons {
		want := 0.0
		if r == wantReason {
			want = 1
		}
		if got := testutil.ToFloat64(m.errors.WithLabelValues("wachat", wachatTestInstance, wachatTestMethod, r)); got != want {
			t.Errorf("whatsapp_api_request_errors_total{reason=%q} = %v, want %v", r, got, want)
		}
	}
	// Only the instanceState method exists: nothing else was counted.
	if n := testutil.CollectAndCount(m.errors, "whatsapp_api_request_errors_total"); n != len(Reasons) {
		t.Errorf("whatsapp_api_request_errors_total has %d series, want %d", n, len(Reasons))
	}
	if n := testutil.CollectAndCount(m.duration, "whatsapp_api_request_duration_seconds"); n != 1 {
		t.Errorf("whatsapp_api_request_duration_seconds has %d series, want 1", n)
	}
	if c := greenAPIHistogramCount(t, m.duration.WithLabelValues("wachat", wachatTestInstance, wachatTestMethod)); c != 1 {
		t.Errorf("whatsapp_api_request_duration_seconds count = %d, want 1", c)
	}
}

// wachatCheckCalls checks whatsapp_api_requests_total.
func wachatCheckCalls(t *testing.T, m *apiMetrics, want int) {
	t.Helper()
	if got := testutil.ToFloat64(m.requests.WithLabelValues("wachat", wachatTestInstance, wachatTestMethod)); got != float64(want) {
		t.Errorf("whatsapp_api_requests_total{method=%q} = %v, want %d", wachatTestMethod, got, want)
	}
	if n := testutil.CollectAndCount(m.requests, "whatsapp_api_requests_total"); n != 1 {
		t.Errorf("whatsapp_api_requests_total has %d series, want 1", n)
	}
}

// wachatCheckRequest checks the one request the client is to send.
func wachatCheckRequest(t *testing.T, r wachatRequest, prefix, instance, key string) {
	t.Helper()
	if r.method != http.MethodGet {
		t.Errorf("method = %s, want GET", r.method)
	}
	wantPath := prefix + "/instance/state"
	if r.path != wantPath || r.escapedPath != wantPath {
		t.Errorf("path = %q (escaped %q), want %q", r.path, r.escapedPath, wantPath)
	}
	if len(r.query) != 1 || len(r.query["instanceName"]) != 1 || r.query.Get("instanceName") != instance {
		t.Errorf("query %q decodes to %v, want exactly instanceName=%q", r.rawQuery, r.query, instance)
	}
	if want := "Bearer " + key; r.authorization != want {
		t.Errorf("Authorization = %q, want %q", r.authorization, want)
	}
	if len(r.apikey) != 0 {
		t.Errorf("Apikey header %q sent; Wachat takes a bearer key", r.apikey)
	}
	if !strings.Contains(r.accept, "application/json") {
		t.Errorf("Accept = %q, want application/json", r.accept)
	}
	if leak, ok := wachatLeak(r.escapedPath+"?"+r.rawQuery, key); ok {
		t.Errorf("URL %q holds the key (%q)", r.escapedPath+"?"+r.rawQuery, leak)
	}
}

func wachatCases(t *testing.T) []wachatCase {
	retryDate := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	reply := func(status int, fixture string, header ...string) greenAPIServe {
		return wachatReply(t, status, fixture, header...)
	}
	notFoundText := []string{"HTTP 404", strconv.Quote(wachatTestInstance), "instance_name", "Instance not found"}
	return []wachatCase{
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
			wantText: []string{"HTTP 404", strconv.Quote(wachatTestInstance), "instance_name"}},

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
		{name: "200 body of exactly 64 KiB", serve: greenAPIReplyBytes(200, wachatPadded(maxBodyBytes)), wantState: "open"},
		{name: "200 body of 64 KiB plus one byte", serve: greenAPIReplyBytes(200, wachatPadded(maxBodyBytes+1)), wantReason: ReasonBadResponse,
			wantText: []string{"larger than"}},
		{name: "200 body of 4 MiB", serve: greenAPIReplyBytes(200, wachatPadded(4<<20)), wantReason: ReasonBadResponse},

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

		// Transport failures.
		{name: "server hangs", serve: greenAPIHang, deadline: 200 * time.Millisecond, wantReason: ReasonTimeout},
		{name: "server hangs in the body", serve: greenAPIHangInBody, deadline: 200 * time.Millisecond, wantReason: ReasonTimeout},
		{name: "server closes the connection", serve: greenAPIHijackClose, wantReason: ReasonNetwork},
		{name: "server drops the connection in the body", serve: greenAPITruncatedBody, wantReason: ReasonNetwork},
		{name: "server does not speak HTTP", serve: greenAPIGarbage, wantReason: ReasonNetwork},
		{name: "connection refused", refused: true, wantReason: ReasonNetwork},
	}
}

func TestWachatState(t *testing.T) {
	for _, k := range wachatTestKeys {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range wachatCases(t) {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					wachatRunCase(t, tc, k.key)
				})
			}
		})
	}
}

func wachatRunCase(t *testing.T, tc wachatCase, key string) {
	var (
		root string
		rec  *wachatRecorder
	)
	if tc.refused {
		root = greenAPIRefusedURL(t)
	} else {
		root, rec = wachatStartServer(t, tc.serve)
	}
	client, m, logs := wachatNewClient(t, root+wachatTestPrefix, key)

	deadline := tc.deadline
	if deadline == 0 {
		deadline = wachatTestSlack
	}
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	start := time.Now()
	state, err := client.State(ctx)
	if elapsed := time.Since(start); elapsed >= wachatTestSlack {
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
		for _, want := range tc.wantText {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error text %q does not hold %q", err.Error(), want)
			}
		}
		if e.RetryAfter < tc.wantRetryAfter[0] || e.RetryAfter > tc.wantRetryAfter[1] {
			t.Errorf("RetryAfter = %v, want between %v and %v", e.RetryAfter, tc.wantRetryAfter[0], tc.wantRetryAfter[1])
		}
		if leak, ok := wachatLeak(err.Error(), key); ok {
			t.Errorf("error text %q holds the key (%q)", err.Error(), leak)
		}
	}
	if leak, ok := wachatLeak(logs.String(), key); ok {
		t.Errorf("log output holds the key (%q):\n%s", leak, logs.String())
	}
	// Every call is logged at debug level, with the URL it went to.
	if !strings.Contains(logs.String(), "method="+wachatTestMethod) || !strings.Contains(logs.String(), "/instance/state?instanceName=") {
		t.Errorf("no debug line for the call in the logs:\n%s", logs.String())
	}

	if rec != nil {
		reqs := rec.requests()
		if len(reqs) != 1 {
			t.Fatalf("server saw %d requests, want 1: %+v", len(reqs), reqs)
		}
		wachatCheckRequest(t, reqs[0], wachatTestPrefix, wachatTestInstance, key)
	}
	wachatCheckMetrics(t, m, tc.wantReason)
}

// TestWachatRequestURL checks the URL built from api_url variants.
func TestWachatRequestURL(t *testing.T) {
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
			root, rec := wachatStartServer(t, wachatReply(t, 200, "state_open_doc1.json"))
			client, m, _ := wachatNewClient(t, root+tc.suffix, key)
			ctx, cancel := context.WithTimeout(t.Context(), wachatTestSlack)
			defer cancel()
			state, err := client.State(ctx)
			if err != nil || state != "open" {
				t.Fatalf("State() = %q, %v; want open", state, err)
			}
			reqs := rec.requests()
			if len(reqs) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(reqs))
			}
			wachatCheckRequest(t, reqs[0], tc.prefix, wachatTestInstance, key)
			wachatCheckMetrics(t, m, "")
		})
	}
}

// TestWachatInstanceNameEscaping checks that the server receives exactly
// the configured instance name, whatever characters it holds.
func TestWachatInstanceNameEscaping(t *testing.T) {
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
			root, rec := wachatStartServer(t, wachatReply(t, 200, "state_close.json"))
			cfg := wachatLoad(t, fmt.Sprintf("instances:\n  - provider: wachat\n    instance_name: %s\n    api_key: %s\n    api_url: %s\n",
				strconv.Quote(name), strconv.Quote(key), strconv.Quote(root+wachatTestPrefix)), t.TempDir())
			api := &API{client: http.DefaultClient, logger: slog.New(slog.DiscardHandler), provider: "wachat", name: name, metrics: newAPIMetrics()}
			client, err := providers["wachat"].NewClient(cfg.Instances[0].Spec, api)
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), wachatTestSlack)
			defer cancel()
			if state, err := client.State(ctx); err != nil || state != "close" {
				t.Fatalf("State() = %q, %v; want close", state, err)
			}
			reqs := rec.requests()
			if len(reqs) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(reqs))
			}
			wachatCheckRequest(t, reqs[0], wachatTestPrefix, name, key)
		})
	}
}

// TestWachatNotFoundNamesInstance: a 404 means the configured
// instance_name is wrong; the error says so and names it.
func TestWachatNotFoundNamesInstance(t *testing.T) {
	root, _ := wachatStartServer(t, wachatReply(t, 404, "error_not_found.json"))
	client, _, _ := wachatNewClient(t, root+wachatTestPrefix, wachatTestKeys[1].key)
	ctx, cancel := context.WithTimeout(t.Context(), wachatTestSlack)
	defer cancel()
	_, err := client.State(ctx)
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonClientError {
		t.Fatalf("State() error = %v, want reason %s", err, ReasonClientError)
	}
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
	key := wachatTestKeys[0].key
	if wachatJSONEscape(key) == key {
		t.Fatalf("key %q has nothing to escape in JSON", key)
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
			root, _ := wachatStartServer(t, wachatReply(t, tc.status, tc.fixture))
			client, _, logs := wachatNewClient(t, root+wachatTestPrefix, key)
			ctx, cancel := context.WithTimeout(t.Context(), wachatTestSlack)
			defer cancel()
			_, err := client.State(ctx)
			var e *Error
			if !errors.As(err, &e) || e.Reason != tc.reason {
				t.Fatalf("State() error = %v, want reason %s", err, tc.reason)
			}
			if leak, ok := wachatLeak(err.Error(), key); ok {
				t.Errorf("error text %q holds part of the key (%q)", err.Error(), leak)
			}
			if leak, ok := wachatLeak(logs.String(), key); ok {
				t.Errorf("log output holds part of the key (%q):\n%s", leak, logs.String())
			}
		})
	}
}

// TestWachatConcurrentCalls shares one client among goroutines, as
// scrapes do.
func TestWachatConcurrentCalls(t *testing.T) {
	const n = 8
	root, rec := wachatStartServer(t, wachatReply(t, 200, "state_connecting.json"))
	client, m, _ := wachatNewClient(t, root+wachatTestPrefix, wachatTestKeys[0].key)
	ctx, cancel := context.WithTimeout(t.Context(), wachatTestSlack)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			state, err := client.State(ctx)
			if err == nil && state != "connecting" {
				err = fmt.Errorf("state %q, want connecting", state)
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
	reqs := rec.requests()
	if len(reqs) != n {
		t.Errorf("server saw %d requests, want %d", len(reqs), n)
	}
	for _, r := range reqs {
		wachatCheckRequest(t, r, wachatTestPrefix, wachatTestInstance, wachatTestKeys[0].key)
	}
	wachatCheckCalls(t, m, n)
}

// TestWachatViaCollector goes through collector.New and Update, the path
// main uses, and checks the state series, up, and the call metrics.
func TestWachatViaCollector(t *testing.T) {
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
			key := wachatTestKeys[0].key
			root, rec := wachatStartServer(t, wachatReply(t, tc.status, tc.fixture))
			cfg := wachatLoad(t, wachatYAML(root+wachatTestPrefix, key), t.TempDir())
			logger, logs := testlog.New()
			c := New(logger, Options{Concurrency: 4})
			if err := c.Update(cfg); err != nil {
				t.Fatalf("Update: %v", err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), wachatTestSlack)
			defer cancel()
			states := prometheus.NewPedanticRegistry()
			states.MustRegister(c.Scrape(ctx))
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(c)
			mfs, err := prometheus.Gatherers{states, reg}.Gather()
			if err != nil {
				t.Fatalf("Gather: %v", err)
			}
			values := map[string]float64{}
			for _, mf := range mfs {
				for _, mt := range mf.GetMetric() {
					k := mf.GetName()
					for _, lp := range mt.GetLabel() {
						k += "," + lp.GetName() + "=" + lp.GetValue()
					}
					switch {
					case mt.GetGauge() != nil:
						values[k] = mt.GetGauge().GetValue()
					case mt.GetCounter() != nil:
						values[k] = mt.GetCounter().GetValue()
					}
				}
			}
			labels := ",name=" + wachatTestInstance + ",provider=wachat"
			want := map[string]float64{
				"whatsapp_up" + labels: tc.wantUp,
				"whatsapp_api_requests_total,method=" + wachatTestMethod + labels: 1,
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
			for k, v := range want {
				got, ok := values[k]
				if !ok {
					t.Errorf("no series %s", k)
					continue
				}
				if got != v {
					t.Errorf("%s = %v, want %v", k, got, v)
				}
			}
			for _, mf := range mfs {
				if mf.GetName() == "whatsapp_instance_state" && len(mf.GetMetric()) != 4 {
					t.Errorf("%d whatsapp_instance_state series, want 4 (open, connecting, close, unknown)", len(mf.GetMetric()))
				}
			}
			reqs := rec.requests()
			if len(reqs) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(reqs))
			}
			wachatCheckRequest(t, reqs[0], wachatTestPrefix, wachatTestInstance, key)
			if leak, ok := wachatLeak(logs.String(), key); ok {
				t.Errorf("log output holds the key (%q):\n%s", leak, logs.String())
			}
		})
	}
}

// TestWachatProvider checks the registration: states, method, config.
func TestWachatProvider(t *testing.T) {
	p, ok := providers["wachat"]
	if !ok {
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
	cfg := wachatLoad(t, `instances:
  - provider: wachat
    instance_name: t1_mq9r2jov_jakarta_store
    api_key: "`+wachatConfigKey+`"
`, t.TempDir())
	s := wachatSpecOf(t, cfg.Instances[0])
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
	if s.key != wachatConfigKey {
		t.Errorf("key = %q, want %q", s.key, wachatConfigKey)
	}
	if time.Duration(s.Timeout) != config.DefaultTimeout {
		t.Errorf("timeout = %v, want %v", s.Timeout, config.DefaultTimeout)
	}
}

// TestWachatConfigExplicit: explicit name and api_url win; a trailing
// slash is dropped.
func TestWachatConfigExplicit(t *testing.T) {
	cfg := wachatLoad(t, `instances:
  - name: jakarta
    provider: wachat
    instance_name: t1_mq9r2jov_jakarta_store
    api_key: "`+wachatConfigKey+`"
    api_url: https://wachat.example.com/api/v1/
    timeout: 3s
`, t.TempDir())
	s := wachatSpecOf(t, cfg.Instances[0])
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
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "wachat.key"), []byte("  "+wachatConfigKey+"\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"secrets/wachat.key", filepath.Join(dir, "secrets", "wachat.key")} {
		t.Run(file, func(t *testing.T) {
			cfg := wachatLoad(t, `instances:
  - provider: wachat
    instance_name: t1_x_store
    api_key_file: `+strconv.Quote(file)+`
`, dir)
			s := wachatSpecOf(t, cfg.Instances[0])
			if s.key != wachatConfigKey {
				t.Errorf("key = %q, want %q", s.key, wachatConfigKey)
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
	root, rec := wachatStartServer(t, wachatReply(t, 200, "state_open_doc1.json"))
	cfg := wachatLoad(t, `instances:
  - provider: wachat
    instance_name: t1_x_store
    api_key_file: secrets/wachat.key
    api_url: `+strconv.Quote(root+wachatTestPrefix)+`
`, dir)
	api := &API{client: http.DefaultClient, logger: slog.New(slog.DiscardHandler), provider: "wachat", name: "t1_x_store", metrics: newAPIMetrics()}
	client, err := providers["wachat"].NewClient(cfg.Instances[0].Spec, api)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wachatTestSlack)
	defer cancel()
	if state, err := client.State(ctx); err != nil || state != "open" {
		t.Fatalf("State() = %q, %v; want open", state, err)
	}
	if reqs := rec.requests(); len(reqs) != 1 {
		t.Fatalf("server saw %d requests, want 1", len(reqs))
	} else {
		wachatCheckRequest(t, reqs[0], wachatTestPrefix, "t1_x_store", wachatConfigKey)
	}
}

// TestWachatConfigEnv: instance_name and api_key expand ${VAR} when
// expansion is on.
func TestWachatConfigEnv(t *testing.T) {
	env := map[string]string{"WACHAT_INSTANCE": "t1_env_store", "WACHAT_KEY": wachatConfigKey}
	cfg, err := config.Load([]byte(`instances:
  - provider: wachat
    instance_name: ${WACHAT_INSTANCE}
    api_key: ${WACHAT_KEY}
`), t.TempDir(), config.Options{ExpandEnv: true, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	s := wachatSpecOf(t, cfg.Instances[0])
	if s.InstanceName != "t1_env_store" || s.Name != "t1_env_store" {
		t.Errorf("instance_name = %q, name = %q, want t1_env_store", s.InstanceName, s.Name)
	}
	if s.key != wachatConfigKey {
		t.Errorf("key = %q, want %q", s.key, wachatConfigKey)
	}
}

// TestWachatConfigMarshalHidesKey: the loaded configuration marshals with
// api_key as <secret>.
func TestWachatConfigMarshalHidesKey(t *testing.T) {
	cfg := wachatLoad(t, `instances:
  - provider: wachat
    instance_name: t1_mq9r2jov_jakarta_store
    api_key: "`+wachatConfigKey+`"
`, t.TempDir())
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatalf("yaml.Marshal: %v", err)
	}
	text := string(out)
	if leak, ok := wachatLeak(text, wachatConfigKey); ok {
		t.Errorf("marshalled config holds the key (%q):\n%s", leak, text)
	}
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

// TestWachatConfigErrors: every error names the field and never the key.
func TestWachatConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "empty.key"), []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
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
		{"blank instance_name", "  - provider: wachat\n    instance_name: \"  \"\n" + key,
			[]string{"instance_name", "required"}},
		{"missing key", "  - provider: wachat\n    instance_name: t1_x\n",
			[]string{"api_key", "required", "api_key_file"}},
		{"both key and key file", "  - provider: wachat\n    instance_name: t1_x\n" + key + "    api_key_file: wachat.key\n",
			[]string{"api_key", "api_key_file", "not both"}},
		{"missing key file", "  - provider: wachat\n    instance_name: t1_x\n    api_key_file: nope.key\n",
			[]string{"api_key_file", "nope.key"}},
		{"empty key file", "  - provider: wachat\n    instance_name: t1_x\n    api_key_file: empty.key\n",
			[]string{"api_key_file", "empty"}},
		{"api_url not http", "  - provider: wachat\n    instance_name: t1_x\n    api_url: ftp://app.wachat.net/api/v1\n" + key,
			[]string{"api_url"}},
		{"api_url with query", "  - provider: wachat\n    instance_name: t1_x\n    api_url: https://app.wachat.net/api/v1?instanceName=x\n" + key,
			[]string{"api_url", "query"}},
		{"unknown field", "  - provider: wachat\n    instance_name: t1_x\n    apikey: x\n" + key,
			[]string{"with instance_name t1_x", "apikey"}},
		{"duplicate instance_name", "  - provider: wachat\n    instance_name: t1_x\n" + key + "  - provider: wachat\n    instance_name: t1_x\n" + key,
			[]string{"t1_x", "duplicate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load([]byte("instances:\n"+tc.yaml), dir, config.Options{})
			if err == nil {
				t.Fatalf("config.Load succeeded, want an error holding %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not hold %q", err.Error(), w)
				}
			}
			if leak, ok := wachatLeak(err.Error(), wachatConfigKey); ok {
				t.Errorf("error %q holds the key (%q)", err.Error(), leak)
			}
		})
	}
}
