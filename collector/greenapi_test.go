package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

// The GREEN-API client is tested over real HTTP: each row starts an
// httptest server on loopback that serves a documented response body from
// testdata/greenapi, and the client is built from a YAML configuration as
// in production.

const (
	greenAPITestID     = "1101000001"
	greenAPITestMethod = "getStateInstance"
	// greenAPITestSlack bounds how long any call may take; calls are
	// expected to return far sooner.
	greenAPITestSlack = 5 * time.Second
)

// greenAPITestTokens are the tokens every row runs with: one whose
// characters are escaped in a URL path and a query, and a plain one as long
// as real tokens are.
var greenAPITestTokens = []struct{ name, token string }{
	{"escaped_token", "s3cr3t/tok+en="},
	{"plain_token", "d75b3a66374942c5b3c019c698abc2067e151558acbd412492"},
}

// greenAPIServe answers one request; stop is closed when the row ends, so
// that a handler that hangs lets the server shut down.
type greenAPIServe func(w http.ResponseWriter, r *http.Request, stop <-chan struct{})

type greenAPICase struct {
	name  string
	serve greenAPIServe
	// refused points the client at a port nobody listens on.
	refused bool
	// deadline of the call's context; 0 means greenAPITestSlack.
	deadline time.Duration

	wantState  string // when wantReason is empty
	wantReason string
	// wantRetryAfter are the inclusive bounds of Error.RetryAfter.
	wantRetryAfter [2]time.Duration
}

type greenAPIRequest struct {
	method, path, escapedPath, accept string
}

type greenAPIRecorder struct {
	mu   sync.Mutex
	reqs []greenAPIRequest
}

func (rec *greenAPIRecorder) add(r *http.Request) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = append(rec.reqs, greenAPIRequest{
		method:      r.Method,
		path:        r.URL.Path,
		escapedPath: r.URL.EscapedPath(),
		accept:      r.Header.Get("Accept"),
	})
}

func (rec *greenAPIRecorder) requests() []greenAPIRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]greenAPIRequest(nil), rec.reqs...)
}

// greenAPIFixture reads a file of testdata/greenapi.
func greenAPIFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "greenapi", name))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	return b
}

// greenAPIContentType is the Content-Type a server would send with a
// fixture.
func greenAPIContentType(fixture string) string {
	switch filepath.Ext(fixture) {
	case ".json":
		return "application/json"
	case ".html":
		return "text/html; charset=utf-8"
	default:
		return "text/plain; charset=utf-8"
	}
}

// greenAPIReply serves a fixture with a status and header pairs. In the
// body, {{PATH}} becomes the escaped request path and {{DECODED_PATH}} the
// decoded one, as servers that echo the URL do.
func greenAPIReply(t *testing.T, status int, fixture string, header ...string) greenAPIServe {
	t.Helper()
	body := greenAPIFixture(t, fixture)
	if len(header)%2 != 0 {
		t.Fatalf("greenAPIReply: odd header list %q", header)
	}
	return func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		b := bytes.ReplaceAll(body, []byte("{{PATH}}"), []byte(r.URL.EscapedPath()))
		b = bytes.ReplaceAll(b, []byte("{{DECODED_PATH}}"), []byte(r.URL.Path))
		w.Header().Set("Content-Type", greenAPIContentType(fixture))
		for k := 0; k < len(header); k += 2 {
			w.Header().Set(header[k], header[k+1])
		}
		w.WriteHeader(status)
		_, _ = w.Write(b)
	}
}

// greenAPIReplyBytes serves a generated body.
func greenAPIReplyBytes(status int, body []byte) greenAPIServe {
	return func(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body) // fails once the client gives up on a large body
	}
}

// greenAPIHang never answers.
func greenAPIHang(_ http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
	select {
	case <-r.Context().Done():
	case <-stop:
	}
}

// greenAPIHangInBody sends the status line and the start of the body, then
// stalls.
func greenAPIHangInBody(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "100")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"stateInst`))
	w.(http.Flusher).Flush()
	greenAPIHang(w, r, stop)
}

// greenAPIHijackClose closes the connection without answering.
func greenAPIHijackClose(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	_ = conn.Close()
}

// greenAPIGarbage answers with something that is not HTTP.
func greenAPIGarbage(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	_, _ = buf.WriteString("SSH-2.0-OpenSSH_9.6\r\n\r\n")
	_ = buf.Flush()
	_ = conn.Close()
}

// greenAPITruncatedBody promises 100 bytes, sends a few and drops the
// connection.
func greenAPITruncatedBody(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "100")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"stateInstance":"auth`))
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

// greenAPIPadded returns a body of exactly n bytes holding the authorized
// state followed by spaces.
func greenAPIPadded(n int) []byte {
	b := []byte(`{"stateInstance":"authorized"}`)
	return append(b, bytes.Repeat([]byte(" "), n-len(b))...)
}

// greenAPIYAML is a configuration with one GREEN-API instance.
func greenAPIYAML(apiURL, token string) string {
	return fmt.Sprintf("instances:\n  - provider: greenapi\n    id_instance: %q\n    api_token: %s\n    api_url: %s\n",
		greenAPITestID, strconv.Quote(token), strconv.Quote(apiURL))
}

// greenAPILoad resolves a configuration as the exporter does.
func greenAPILoad(t *testing.T, apiURL, token string) *config.Config {
	t.Helper()
	cfg, err := config.Load([]byte(greenAPIYAML(apiURL, token)), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	if len(cfg.Instances) != 1 {
		t.Fatalf("config.Load: got %d instances, want 1", len(cfg.Instances))
	}
	return cfg
}

// greenAPINewClient builds the client of one instance the way the
// collector does: resolved Spec, HTTP client from its HTTP settings, API
// with fresh metrics.
func greenAPINewClient(t *testing.T, apiURL, token string) (Client, *apiMetrics, *testlog.Buffer) {
	t.Helper()
	cfg := greenAPILoad(t, apiURL, token)
	spec := cfg.Instances[0].Spec
	gs, ok := spec.(*GreenAPISpec)
	if !ok {
		t.Fatalf("spec is %T, want *GreenAPISpec", spec)
	}
	if gs.Name != greenAPITestID {
		t.Fatalf("default name = %q, want the id %q", gs.Name, greenAPITestID)
	}
	hc, err := promcfg.NewClientFromConfig(gs.HTTPClientConfig, "whatsapp_exporter")
	if err != nil {
		t.Fatalf("HTTP client: %v", err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	logger, logs := testlog.New()
	m := newAPIMetrics()
	p := providers["greenapi"]
	m.init(p.Name, gs.Name, p.Methods)
	api := &API{
		client:   hc,
		logger:   logger,
		provider: p.Name,
		name:     gs.Name,
		metrics:  m,
	}
	c, err := p.NewClient(spec, api)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c, m, logs
}

// greenAPIRefusedURL returns the URL of a loopback port that was just
// closed.
func greenAPIRefusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return "http://" + addr
}

// greenAPIStartServer starts a loopback server that records the requests
// and answers with serve.
func greenAPIStartServer(t *testing.T, serve greenAPIServe) (string, *greenAPIRecorder) {
	t.Helper()
	rec := &greenAPIRecorder{}
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r)
		serve(w, r, stop)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // runs before srv.Close
	return srv.URL, rec
}

// greenAPISecretForms are the forms a token can take in a text.
func greenAPISecretForms(token string) []string {
	return []string{token, url.PathEscape(token), url.QueryEscape(token)}
}

// greenAPILeak reports the first form of token, or long piece of one, found
// in text. Pieces catch a token cut in two by truncation.
func greenAPILeak(text, token string) (string, bool) {
	const piece = 12
	for _, form := range greenAPISecretForms(token) {
		if strings.Contains(text, form) {
			return form, true
		}
		for k := 0; k+piece <= len(form) && len(form) > piece+4; k++ {
			if p := form[k : k+piece]; strings.Contains(text, p) {
				return p, true
			}
		}
	}
	return "", false
}

// greenAPICheckMetrics checks that exactly one call was counted, failed
// with wantReason if it is set.
func greenAPICheckMetrics(t *testing.T, m *apiMetrics, name, wantReason string) {
	t.Helper()
	if got := testutil.ToFloat64(m.requests.WithLabelValues("greenapi", name, greenAPITestMethod)); got != 1 {
		t.Errorf("whatsapp_api_requests_total = %v, want 1", got)
	}
	for _, r := range Reasons {
		want := 0.0
		if r == wantReason {
			want = 1
		}
		if got := testutil.ToFloat64(m.errors.WithLabelValues("greenapi", name, greenAPITestMethod, r)); got != want {
			t.Errorf("whatsapp_api_request_errors_total{reason=%q} = %v, want %v", r, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.duration, "whatsapp_api_request_duration_seconds"); n != 1 {
		t.Errorf("whatsapp_api_request_duration_seconds has %d series, want 1", n)
	}
	if c := greenAPIHistogramCount(t, m.duration.WithLabelValues("greenapi", name, greenAPITestMethod)); c != 1 {
		t.Errorf("whatsapp_api_request_duration_seconds count = %d, want 1", c)
	}
}

// greenAPIHistogramCount returns how many observations a histogram holds.
func greenAPIHistogramCount(t *testing.T, o prometheus.Observer) uint64 {
	t.Helper()
	m, ok := o.(prometheus.Metric)
	if !ok {
		t.Fatalf("observer %T is not a metric", o)
	}
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatalf("writing histogram: %v", err)
	}
	return pb.GetHistogram().GetSampleCount()
}

func greenAPICases(t *testing.T) []greenAPICase {
	retryDate := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	pastDate := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	reply := func(status int, fixture string, header ...string) greenAPIServe {
		return greenAPIReply(t, status, fixture, header...)
	}
	return []greenAPICase{
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
		{name: "400 expired", serve: reply(400, "text_expired.txt"), wantReason: ReasonClientError},
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
		{name: "200 JSON null", serve: reply(200, "null.json"), wantReason: ReasonBadResponse},
		{name: "200 body of exactly 64 KiB", serve: greenAPIReplyBytes(200, greenAPIPadded(maxBodyBytes)), wantState: "authorized"},
		{name: "200 body of 64 KiB plus one byte", serve: greenAPIReplyBytes(200, greenAPIPadded(maxBodyBytes+1)), wantReason: ReasonBadResponse},
		{name: "200 body of 4 MiB", serve: greenAPIReplyBytes(200, greenAPIPadded(4<<20)), wantReason: ReasonBadResponse},

		// Transport failures.
		{name: "server hangs", serve: greenAPIHang, deadline: 200 * time.Millisecond, wantReason: ReasonTimeout},
		{name: "server hangs in the body", serve: greenAPIHangInBody, deadline: 200 * time.Millisecond, wantReason: ReasonTimeout},
		{name: "server closes the connection", serve: greenAPIHijackClose, wantReason: ReasonNetwork},
		{name: "server drops the connection in the body", serve: greenAPITruncatedBody, wantReason: ReasonNetwork},
		{name: "server does not speak HTTP", serve: greenAPIGarbage, wantReason: ReasonNetwork},
		{name: "connection refused", refused: true, wantReason: ReasonNetwork},
	}
}

func TestGreenAPIState(t *testing.T) {
	for _, tok := range greenAPITestTokens {
		t.Run(tok.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range greenAPICases(t) {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					greenAPIRunCase(t, tc, tok.token)
				})
			}
		})
	}
}

func greenAPIRunCase(t *testing.T, tc greenAPICase, token string) {
	var (
		apiURL string
		rec    *greenAPIRecorder
	)
	if tc.refused {
		apiURL = greenAPIRefusedURL(t)
	} else {
		apiURL, rec = greenAPIStartServer(t, tc.serve)
	}
	client, m, logs := greenAPINewClient(t, apiURL, token)

	deadline := tc.deadline
	if deadline == 0 {
		deadline = greenAPITestSlack
	}
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	start := time.Now()
	state, err := client.State(ctx)
	if elapsed := time.Since(start); elapsed >= greenAPITestSlack {
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
		if leak, ok := greenAPILeak(err.Error(), token); ok {
			t.Errorf("error text %q holds the token (%q)", err.Error(), leak)
		}
	}
	if leak, ok := greenAPILeak(logs.String(), token); ok {
		t.Errorf("log output holds the token (%q):\n%s", leak, logs.String())
	}

	if rec != nil {
		reqs := rec.requests()
		if len(reqs) != 1 {
			t.Fatalf("server saw %d requests, want 1: %+v", len(reqs), reqs)
		}
		r := reqs[0]
		wantPath := "/waInstance" + greenAPITestID + "/getStateInstance/" + token
		wantEscaped := "/waInstance" + greenAPITestID + "/getStateInstance/" + url.PathEscape(token)
		if r.method != http.MethodGet {
			t.Errorf("method = %s, want GET", r.method)
		}
		if r.path != wantPath {
			t.Errorf("path = %q, want %q", r.path, wantPath)
		}
		if r.escapedPath != wantEscaped {
			t.Errorf("escaped path = %q, want %q", r.escapedPath, wantEscaped)
		}
		if !strings.Contains(r.accept, "application/json") {
			t.Errorf("Accept = %q, want application/json", r.accept)
		}
	}
	greenAPICheckMetrics(t, m, greenAPITestID, tc.wantReason)
}

// TestGreenAPIRequestURL checks the URL built from api_url variants.
func TestGreenAPIRequestURL(t *testing.T) {
	const token = "s3cr3t/tok+en="
	for _, tc := range []struct{ name, suffix, prefix string }{
		{"plain", "", ""},
		{"trailing slash", "/", ""},
		{"path prefix", "/proxy/green", "/proxy/green"},
		{"path prefix with trailing slash", "/proxy/green/", "/proxy/green"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			apiURL, rec := greenAPIStartServer(t, greenAPIReply(t, 200, "authorized.json"))
			client, m, _ := greenAPINewClient(t, apiURL+tc.suffix, token)
			ctx, cancel := context.WithTimeout(t.Context(), greenAPITestSlack)
			defer cancel()
			state, err := client.State(ctx)
			if err != nil || state != "authorized" {
				t.Fatalf("State() = %q, %v; want authorized", state, err)
			}
			reqs := rec.requests()
			if len(reqs) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(reqs))
			}
			want := tc.prefix + "/waInstance" + greenAPITestID + "/getStateInstance/" + url.PathEscape(token)
			if reqs[0].escapedPath != want {
				t.Errorf("escaped path = %q, want %q", reqs[0].escapedPath, want)
			}
			greenAPICheckMetrics(t, m, greenAPITestID, "")
		})
	}
}

// TestGreenAPIErrorTextRedactsTruncatedToken: a server that echoes the
// request path in an error body (here a Spring-Boot-style 404) can place the
// token where the error text's excerpt of the body is cut. The part of the
// token before the cut must not appear either.
func TestGreenAPIErrorTextRedactsTruncatedToken(t *testing.T) {
	token := greenAPITestTokens[1].token // 50 characters, like real tokens
	apiURL, _ := greenAPIStartServer(t, greenAPIReply(t, 404, "json_404_echo.json"))
	client, _, logs := greenAPINewClient(t, apiURL, token)
	ctx, cancel := context.WithTimeout(t.Context(), greenAPITestSlack)
	defer cancel()
	_, err := client.State(ctx)
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonClientError {
		t.Fatalf("State() error = %v, want reason %s", err, ReasonClientError)
	}
	if leak, ok := greenAPILeak(err.Error(), token); ok {
		t.Errorf("error text %q holds part of the token (%q)", err.Error(), leak)
	}
	if leak, ok := greenAPILeak(logs.String(), token); ok {
		t.Errorf("log output holds part of the token (%q):\n%s", leak, logs.String())
	}
}

// TestGreenAPIConcurrentCalls shares one client among goroutines, as
// scrapes do.
func TestGreenAPIConcurrentCalls(t *testing.T) {
	const n = 8
	apiURL, rec := greenAPIStartServer(t, greenAPIReply(t, 200, "yellowCard.json"))
	client, m, _ := greenAPINewClient(t, apiURL, greenAPITestTokens[0].token)
	ctx, cancel := context.WithTimeout(t.Context(), greenAPITestSlack)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			state, err := client.State(ctx)
			if err == nil && state != "yellowCard" {
				err = fmt.Errorf("state %q, want yellowCard", state)
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
	if got := testutil.ToFloat64(m.requests.WithLabelValues("greenapi", greenAPITestID, greenAPITestMethod)); got != n {
		t.Errorf("whatsapp_api_requests_total = %v, want %d", got, n)
	}
}

// TestGreenAPIViaCollector goes through collector.New and Update, the path
// main uses, and checks the call reaches the server and is counted.
func TestGreenAPIViaCollector(t *testing.T) {
	token := greenAPITestTokens[0].token
	apiURL, rec := greenAPIStartServer(t, greenAPIReply(t, 200, "sleepMode.json"))
	cfg := greenAPILoad(t, apiURL, token)
	c := New(slog.New(slog.DiscardHandler), Options{Concurrency: 4})
	if err := c.Update(cfg); err != nil {
		t.Fatalf("Update: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), greenAPITestSlack)
	defer cancel()
	// As main serves /metrics: the states first, then the call metrics.
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
			key := mf.GetName()
			for _, lp := range mt.GetLabel() {
				key += "," + lp.GetName() + "=" + lp.GetValue()
			}
			switch {
			case mt.GetGauge() != nil:
				values[key] = mt.GetGauge().GetValue()
			case mt.GetCounter() != nil:
				values[key] = mt.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{
		"whatsapp_instance_state,name=" + greenAPITestID + ",provider=greenapi,state=sleepMode":                                       1,
		"whatsapp_instance_state,name=" + greenAPITestID + ",provider=greenapi,state=authorized":                                      0,
		"whatsapp_up,name=" + greenAPITestID + ",provider=greenapi":                                                                   1,
		"whatsapp_api_requests_total,method=getStateInstance,name=" + greenAPITestID + ",provider=greenapi":                           1,
		"whatsapp_api_request_errors_total,method=getStateInstance,name=" + greenAPITestID + ",provider=greenapi,reason=bad_response": 0,
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
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("server saw %d requests, want 1", len(reqs))
	}
	if want := "/waInstance" + greenAPITestID + "/getStateInstance/" + url.PathEscape(token); reqs[0].escapedPath != want {
		t.Errorf("escaped path = %q, want %q", reqs[0].escapedPath, want)
	}
}
