package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

// The harness every provider's client tests (<provider>_test.go) share.
// Each client is tested over real HTTP: a row starts an httptest server on
// loopback that serves a response body from testdata/<provider>, and the
// client is built from a YAML configuration as in production. Each
// provider's test file registers itself in providerTests, so that the
// tests that concern every provider (redirects, echoed secrets, fuzzing)
// run for it too.

// providerServe answers one request; stop is closed when the test ends, so
// that a handler that hangs lets the server shut down.
type providerServe func(w http.ResponseWriter, r *http.Request, stop <-chan struct{})

// providerCase is one row of a provider's State table.
type providerCase struct {
	name  string
	serve providerServe
	// refused points the client at a port nobody listens on.
	refused bool
	// deadline of the call's context; 0 means providerTestSlack.
	deadline time.Duration

	wantState  string // when wantReason is empty
	wantReason string
	// wantRetryAfter are the inclusive bounds of Error.RetryAfter.
	wantRetryAfter [2]time.Duration
	// wantText are pieces the error text must hold, wantNotText pieces
	// it must not.
	wantText, wantNotText []string
}

// providerTarget is the instance a provider's table rows run against.
type providerTarget struct {
	// label names the subtest of the target's rows.
	label            string
	provider, method string
	// name is the instance's name, the default one of its configuration.
	name string
	// secret is the token or key, which no error text or log line may hold.
	secret string
	// apiPath is appended to the server's URL to make api_url.
	apiPath string
	// yaml is a configuration of the instance with api_url apiURL.
	yaml func(apiURL string) string
	// request is the request the client is to send, relative to the server.
	request wantRequest
	// logURL is a piece of the URL each call's debug line must hold.
	logURL string
}

// runProviderCases runs every row of cases against every target, all in
// parallel.
func runProviderCases(t *testing.T, targets []providerTarget, cases func(t *testing.T) []providerCase) {
	for _, tg := range targets {
		t.Run(tg.label, func(t *testing.T) {
			t.Parallel()
			for _, tc := range cases(t) {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					runProviderCase(t, tc, tg)
				})
			}
		})
	}
}

// runProviderCase makes one State call as tc sets up and checks its result,
// the request the server saw, the log output and the call metrics.
func runProviderCase(t *testing.T, tc providerCase, tg providerTarget) {
	var (
		serverURL string
		rec       *requestRecorder
	)
	if tc.refused {
		serverURL = refusedURL(t)
	} else {
		serverURL, rec = startRecordingServer(t, tc.serve)
	}
	c := newTestClient(t, tg.provider, tg.yaml(serverURL+tg.apiPath))
	if got := c.spec.Base().Name; got != tg.name {
		t.Fatalf("default name = %q, want %q", got, tg.name)
	}

	deadline := tc.deadline
	if deadline == 0 {
		deadline = providerTestSlack
	}
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	start := time.Now()
	state, err := c.State(ctx)
	if elapsed := time.Since(start); elapsed >= providerTestSlack {
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
		for _, not := range tc.wantNotText {
			if strings.Contains(err.Error(), not) {
				t.Errorf("error text %q holds %q", err.Error(), not)
			}
		}
		if e.RetryAfter < tc.wantRetryAfter[0] || e.RetryAfter > tc.wantRetryAfter[1] {
			t.Errorf("RetryAfter = %v, want between %v and %v", e.RetryAfter, tc.wantRetryAfter[0], tc.wantRetryAfter[1])
		}
		checkNoLeak(t, "error text", err.Error(), tg.secret)
	}
	logs := c.logs.String()
	checkNoLeak(t, "log output", logs, tg.secret)
	// Every call is logged at debug level, with the URL it went to.
	if !strings.Contains(logs, "method="+tg.method) || !strings.Contains(logs, tg.logURL) {
		t.Errorf("no debug line for the call to %s in the logs:\n%s", tg.logURL, logs)
	}

	if rec != nil {
		checkRequest(t, rec.one(t), tg.request)
	}
	checkCallMetrics(t, c.metrics, tg.provider, tg.name, tg.method, tc.wantReason)
}

// bodySizeCases are the rows about the body size limit: body(n) is a body
// of exactly n bytes that reports wantState.
func bodySizeCases(body func(n int) []byte, wantState string) []providerCase {
	return []providerCase{
		{name: "200 body of exactly 64 KiB", serve: replyBytes(200, body(maxBodyBytes)), wantState: wantState},
		{name: "200 body of 64 KiB plus one byte", serve: replyBytes(200, body(maxBodyBytes+1)), wantReason: ReasonBadResponse,
			wantText: []string{"larger than"}},
		{name: "200 body of 4 MiB", serve: replyBytes(200, body(4<<20)), wantReason: ReasonBadResponse},
	}
}

// transportCases are the rows of transport failures, the same for every
// provider.
func transportCases() []providerCase {
	return []providerCase{
		{name: "server hangs", serve: serveHang, deadline: 200 * time.Millisecond, wantReason: ReasonTimeout},
		{name: "server hangs in the body", serve: serveHangInBody, deadline: 200 * time.Millisecond, wantReason: ReasonTimeout},
		{name: "server closes the connection", serve: serveHijackClose, wantReason: ReasonNetwork},
		{name: "server drops the connection in the body", serve: serveTruncatedBody, wantReason: ReasonNetwork},
		{name: "server does not speak HTTP", serve: serveGarbage, wantReason: ReasonNetwork},
		{name: "connection refused", refused: true, wantReason: ReasonNetwork},
	}
}

// recordedRequest is what a test server saw of one request.
type recordedRequest struct {
	method, path, escapedPath, rawQuery string
	query                               url.Values
	authorization, accept               string
	// keyHeaders are the headers other than the ones every client sends
	// (see plainHeaders): those that carry a provider's key.
	keyHeaders http.Header
}

// plainHeaders are the headers every request has, whatever its provider
// (api.go and net/http's transport): what is left carries a key.
var plainHeaders = []string{"Accept", "Accept-Encoding", "Authorization", "Content-Length", "Content-Type", "User-Agent"}

type requestRecorder struct {
	mu   sync.Mutex
	reqs []recordedRequest
}

func (rec *requestRecorder) add(r *http.Request) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = append(rec.reqs, recordedRequest{
		method:        r.Method,
		path:          r.URL.Path,
		escapedPath:   r.URL.EscapedPath(),
		rawQuery:      r.URL.RawQuery,
		query:         r.URL.Query(),
		authorization: r.Header.Get("Authorization"),
		accept:        r.Header.Get("Accept"),
		keyHeaders:    keyHeaders(r.Header),
	})
}

// keyHeaders is h without plainHeaders.
func keyHeaders(h http.Header) http.Header {
	k := h.Clone()
	for _, name := range plainHeaders {
		k.Del(name)
	}
	return k
}

func (rec *requestRecorder) requests() []recordedRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]recordedRequest(nil), rec.reqs...)
}

// one returns the only request the server saw; it fails the test unless
// the server saw exactly one.
func (rec *requestRecorder) one(t *testing.T) recordedRequest {
	t.Helper()
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("server saw %d requests, want 1: %+v", len(reqs), reqs)
	}
	return reqs[0]
}

// startRecordingServer starts a loopback server that records the requests
// and answers every path with serve; it returns the server's root URL.
func startRecordingServer(t *testing.T, serve providerServe) (string, *requestRecorder) {
	t.Helper()
	rec := &requestRecorder{}
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r)
		serve(w, r, stop)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // runs before srv.Close
	return srv.URL, rec
}

// refusedURL returns the URL of a loopback port that was just closed.
func refusedURL(t *testing.T) string {
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

// wantRequest is the request a client is to send. Every client sends a GET
// that accepts JSON.
type wantRequest struct {
	path, escapedPath string
	// query is the decoded query; nil means no query at all.
	query url.Values
	// authorization is the header's value; empty means it is not sent.
	authorization string
	// keyHeaders are the other headers that carry the key (Evolution API's
	// apikey, WAHA's X-Api-Key, wuzapi's Token), exactly: no other is
	// sent.
	keyHeaders http.Header
	// notInURL, if set, is a secret the URL must not hold in any form.
	notInURL string
}

// checkRequest checks a request the server saw against want.
func checkRequest(t *testing.T, r recordedRequest, want wantRequest) {
	t.Helper()
	if r.method != http.MethodGet {
		t.Errorf("method = %s, want GET", r.method)
	}
	if r.path != want.path {
		t.Errorf("path = %q, want %q", r.path, want.path)
	}
	if r.escapedPath != want.escapedPath {
		t.Errorf("escaped path = %q, want %q", r.escapedPath, want.escapedPath)
	}
	switch {
	case want.query == nil && r.rawQuery != "":
		t.Errorf("query = %q, want none", r.rawQuery)
	case want.query != nil && !equalValues(r.query, want.query):
		t.Errorf("query %q decodes to %v, want exactly %v", r.rawQuery, r.query, want.query)
	}
	if r.authorization != want.authorization {
		t.Errorf("Authorization = %q, want %q", r.authorization, want.authorization)
	}
	if !equalValues(url.Values(r.keyHeaders), url.Values(want.keyHeaders)) {
		t.Errorf("key headers = %q, want %q", r.keyHeaders, want.keyHeaders)
	}
	if !strings.Contains(r.accept, "application/json") {
		t.Errorf("Accept = %q, want application/json", r.accept)
	}
	if want.notInURL != "" {
		u := r.escapedPath + "?" + r.rawQuery
		if leak, ok := secretLeak(u, want.notInURL); ok {
			t.Errorf("URL %q holds the secret (%q)", u, leak)
		}
	}
}

// equalValues reports whether two decoded queries hold the same values.
func equalValues(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}

// readFixture reads testdata/<dir>/<name>.
func readFixture(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", dir, name))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	return b
}

// fixtureContentType is the Content-Type a server would send with a
// fixture.
func fixtureContentType(fixture string) string {
	switch filepath.Ext(fixture) {
	case ".json":
		return "application/json"
	case ".html":
		return "text/html; charset=utf-8"
	default:
		return "text/plain; charset=utf-8"
	}
}

// replyFixture serves testdata/<dir>/<fixture> with a status and header
// pairs. Servers that echo what they were sent are simulated by
// placeholders: placeholders returns, for a request, the pairs of
// placeholder and value to replace in the body.
func replyFixture(t *testing.T, dir string, status int, fixture string, placeholders func(r *http.Request) []string, header ...string) providerServe {
	t.Helper()
	body := string(readFixture(t, dir, fixture))
	if len(header)%2 != 0 {
		t.Fatalf("replyFixture: odd header list %q", header)
	}
	return func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		b := strings.NewReplacer(placeholders(r)...).Replace(body)
		w.Header().Set("Content-Type", fixtureContentType(fixture))
		for k := 0; k < len(header); k += 2 {
			v := header[k+1]
			if v == retryDateIn30s {
				v = time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
			}
			w.Header().Set(header[k], v)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(b))
	}
}

// retryDateIn30s, as a header value of replyFixture, is the HTTP date 30 s
// after the answer: written when the server answers, not when the table
// is made, so that a slow run (-race, a loaded machine) cannot move it
// out of the bounds a row checks.
const retryDateIn30s = "{{HTTP_DATE_IN_30S}}"

// replyBytes serves a generated body.
func replyBytes(status int, body []byte) providerServe {
	return func(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body) // fails once the client gives up on a large body
	}
}

// paddedBody returns a body of exactly n bytes: js followed by spaces.
func paddedBody(js string, n int) []byte {
	return append([]byte(js), bytes.Repeat([]byte(" "), n-len(js))...)
}

// serveHang never answers.
func serveHang(_ http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
	select {
	case <-r.Context().Done():
	case <-stop:
	}
}

// serveHangInBody sends the status line and the start of the body, then
// stalls.
func serveHangInBody(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "100")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"stateInst`))
	w.(http.Flusher).Flush()
	serveHang(w, r, stop)
}

// serveHijackClose closes the connection without answering.
func serveHijackClose(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	_ = conn.Close()
}

// serveGarbage answers with something that is not HTTP.
func serveGarbage(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	_, _ = buf.WriteString("SSH-2.0-OpenSSH_9.6\r\n\r\n")
	_ = buf.Flush()
	_ = conn.Close()
}

// serveTruncatedBody promises 100 bytes, sends a few and drops the
// connection.
func serveTruncatedBody(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "100")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"stateInstance":"auth`))
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

// testClient is a provider client built as the collector builds it, with
// the call metrics and the log output it writes to.
type testClient struct {
	Client
	spec    config.Spec
	metrics testCallMetrics
	logs    *testlog.Buffer
}

// testCallMetrics are where a test client records its calls.
type testCallMetrics struct {
	stats    *instanceStats
	provider *providerMetrics
}

// newTestClient loads a configuration of one instance of provider and
// builds its client.
func newTestClient(t *testing.T, provider, yml string) *testClient {
	t.Helper()
	cfg := loadConfig(t, yml, t.TempDir())
	if got := cfg.Instances[0].Provider(); got != provider {
		t.Fatalf("provider = %q, want %q", got, provider)
	}
	return clientFromConfig(t, cfg)
}

// clientFromConfig builds the client of a configuration's only instance the
// way the collector does: resolved Spec, HTTP client from its HTTP
// settings, API with fresh metrics and a logger that names the instance.
func clientFromConfig(t *testing.T, cfg *config.Config) *testClient {
	t.Helper()
	spec := cfg.Instances[0].Spec
	base := spec.Base()
	p := providerOf(base.Provider)
	if p == nil {
		t.Fatalf("provider %q is not registered", base.Provider)
	}
	if want := p.Config.NewSpec(); reflect.TypeOf(spec) != reflect.TypeOf(want) {
		t.Fatalf("spec is %T, want %T", spec, want)
	}
	hc, err := clientPool{}.renew().get(base.HTTPClientConfig)
	if err != nil {
		t.Fatalf("HTTP client: %v", err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	qs, ok := spec.(queueSpec)
	logger, logs := testlog.New()
	m := testCallMetrics{stats: newInstanceStats(methodsOf(p, ok && qs.watchesQueue(false))), provider: newProviderMetrics()}
	api := &API{
		client:  hc,
		logs:    logTo(logger.With("provider", p.Name, "name", base.Name)),
		metrics: m.provider.observer(p.Name, m.stats),
	}
	c, err := p.NewClient(spec, api)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return &testClient{Client: c, spec: spec, metrics: m, logs: logs}
}

// callState makes one State call bounded by providerTestSlack.
func callState(t *testing.T, c Client) (string, error) {
	ctx, cancel := context.WithTimeout(t.Context(), providerTestSlack)
	defer cancel()
	return c.State(ctx)
}

// checkState fails the test unless one State call returns want.
func checkState(t *testing.T, c Client, want string) {
	t.Helper()
	if state, err := callState(t, c); err != nil || state != want {
		t.Fatalf("State() = %q, %v; want %s", state, err, want)
	}
}

// checkReason fails the test unless err is an *Error with reason.
func checkReason(t *testing.T, err error, reason string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Reason != reason {
		t.Fatalf("State() error = %v, want reason %s", err, reason)
	}
	return e
}

// runConcurrentCalls shares one client of tg among n goroutines, as
// scrapes that overlap do: each State call must return want, and each
// request and call be seen.
func runConcurrentCalls(t *testing.T, tg providerTarget, serve providerServe, n int, want string) {
	t.Helper()
	serverURL, rec := startRecordingServer(t, serve)
	c := newTestClient(t, tg.provider, tg.yaml(serverURL+tg.apiPath))
	ctx, cancel := context.WithTimeout(t.Context(), providerTestSlack)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			state, err := c.State(ctx)
			if err == nil && state != want {
				err = fmt.Errorf("state %q, want %s", state, want)
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
		checkRequest(t, r, tg.request)
	}
	checkCallCount(t, c.metrics, tg.provider, tg.name, tg.method, n)
}

// runFailingCall makes one State call of tg's client to a server that
// answers with serve, checks that it fails with reason and that neither
// the error text nor the log output holds the secret, and returns the
// error.
func runFailingCall(t *testing.T, tg providerTarget, serve providerServe, reason string) error {
	t.Helper()
	serverURL, _ := startRecordingServer(t, serve)
	c := newTestClient(t, tg.provider, tg.yaml(serverURL+tg.apiPath))
	_, err := callState(t, c)
	checkReason(t, err, reason)
	checkNoLeak(t, "error text", err.Error(), tg.secret)
	checkNoLeak(t, "log output", c.logs.String(), tg.secret)
	return err
}

// checkCallMetrics checks that exactly one call of the only method was
// counted, failed with wantReason if it is set.
func checkCallMetrics(t *testing.T, m testCallMetrics, provider, name, method, wantReason string) {
	t.Helper()
	checkCallCount(t, m, provider, name, method, 1)
	calls := &m.stats.calls[slices.Index(m.stats.methods, method)]
	for k, r := range Reasons {
		want := uint64(0)
		if r == wantReason {
			want = 1
		}
		if got := calls.errors[k].Load(); got != want {
			t.Errorf("whatsapp_api_request_errors_total{reason=%q} = %v, want %v", r, got, want)
		}
	}
	if c := histogramCount(t, m.provider.duration.WithLabelValues(provider, method)); c != 1 {
		t.Errorf("whatsapp_provider_request_duration_seconds count = %d, want 1", c)
	}
}

// checkCallCount checks the call count of the provider's only method.
func checkCallCount(t *testing.T, m testCallMetrics, provider, name, method string, want int) {
	t.Helper()
	if len(m.stats.methods) != 1 || m.stats.methods[0] != method {
		t.Fatalf("%s/%s methods %v, want only %s", provider, name, m.stats.methods, method)
	}
	if got := m.stats.calls[0].count.Load(); got != uint64(want) {
		t.Errorf("whatsapp_api_request_duration_seconds_count{method=%q} = %v, want %d", method, got, want)
	}
}

// providerTests describe each provider's client tests to the tests that
// run for every provider; each provider's test file registers its own.
var providerTests = map[string]providerTest{}

type providerTest struct {
	targets func() []providerTarget
	// stateBody is a successful answer reporting state, written into a
	// JSON string as is (so it may hold escapes).
	stateBody func(state string) string
	// goodState is a state stateBody reports as is.
	goodState string
	// fixedStates is set when the client never returns text of the
	// answer as the state (the whatsmeow family maps two booleans onto
	// its own states): no answer can echo a secret into a state.
	fixedStates bool
}

// everyTarget is one test instance of each registered provider.
func everyTarget(t *testing.T) []providerTarget {
	var targets []providerTarget
	for _, name := range config.Providers() {
		pt, ok := providerTests[name]
		if !ok {
			t.Fatalf("provider %s has no providerTests entry in its test file", name)
		}
		targets = append(targets, pt.targets()[0])
	}
	return targets
}

func stateBody(tg providerTarget, state string) string {
	return providerTests[tg.provider].stateBody(state)
}

func goodState(tg providerTarget) string { return providerTests[tg.provider].goodState }
