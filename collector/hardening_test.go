package collector

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// Tests of what an attacker or a careless operator can do to the clients
// and the collector: redirects, echoed secrets, reloads during calls,
// huge Retry-After values.

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

// TestRedirectToAnotherHostIsRefused: a redirect must not carry a secret
// (GREEN-API's in the path and so in Referer, the others' in headers) to
// another host, and what that host answers is not the instance's state.
func TestRedirectToAnotherHostIsRefused(t *testing.T) {
	for _, tg := range everyTarget(t) {
		t.Run(tg.provider, func(t *testing.T) {
			foreignURL, foreign := startRecordingServer(t, func(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
				_, _ = w.Write([]byte(stateBody(tg, goodState(tg))))
			})
			// Another name for the loopback host, as a redirect to an
			// attacker's host would have.
			foreignURL = strings.Replace(foreignURL, "127.0.0.1", "localhost", 1)
			originURL, _ := startRecordingServer(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
				http.Redirect(w, r, foreignURL+r.URL.RequestURI(), http.StatusFound)
			})
			c := newTestClient(t, tg.provider, tg.yaml(originURL+tg.apiPath))
			state, err := callState(t, c)
			e := checkReason(t, err, ReasonRedirect)
			if state != "" {
				t.Errorf("state %q from the foreign host", state)
			}
			if !strings.Contains(e.Error(), "another host") || !strings.Contains(e.Error(), strings.TrimPrefix(foreignURL, "http://")) {
				t.Errorf("error %q does not say the redirect went to another host, and which", e)
			}
			if n := len(foreign.requests()); n != 0 {
				t.Errorf("the foreign host received %d requests: %+v", n, foreign.requests())
			}
			checkNoLeak(t, "error text", e.Error(), tg.secret)
			checkNoLeak(t, "log output", c.logs.String(), tg.secret)
			checkCallMetrics(t, c.metrics, tg.provider, tg.name, tg.method, ReasonRedirect)
		})
	}
}

// TestRedirectFromHTTPSToHTTPIsRefused: never downgrade, even to the same
// host name.
func TestRedirectFromHTTPSToHTTPIsRefused(t *testing.T) {
	for _, tg := range everyTarget(t) {
		t.Run(tg.provider, func(t *testing.T) {
			plainURL, plain := startRecordingServer(t, func(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
				_, _ = w.Write([]byte(stateBody(tg, goodState(tg))))
			})
			tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, plainURL+r.URL.RequestURI(), http.StatusMovedPermanently)
			}))
			t.Cleanup(tlsSrv.Close)
			yml := tg.yaml(tlsSrv.URL+tg.apiPath) + "    tls_config: {insecure_skip_verify: true}\n"
			c := newTestClient(t, tg.provider, yml)
			_, err := callState(t, c)
			e := checkReason(t, err, ReasonRedirect)
			if !strings.Contains(e.Error(), "from https to plain http") {
				t.Errorf("error %q does not name the downgrade", e)
			}
			if n := len(plain.requests()); n != 0 {
				t.Errorf("the plain http server received %d requests", n)
			}
			checkNoLeak(t, "log output", c.logs.String(), tg.secret)
		})
	}
}

// TestRedirectWithinTheOriginIsFollowed: a server may move its API within
// itself; the secret is already there, but no Referer repeats it.
func TestRedirectWithinTheOriginIsFollowed(t *testing.T) {
	for _, tg := range everyTarget(t) {
		t.Run(tg.provider, func(t *testing.T) {
			var referers []string
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasPrefix(r.URL.Path, "/moved") {
					http.Redirect(w, r, "/moved"+r.URL.RequestURI(), http.StatusTemporaryRedirect)
					return
				}
				calls.Add(1)
				referers = append(referers, r.Header.Get("Referer"))
				_, _ = w.Write([]byte(stateBody(tg, goodState(tg))))
			}))
			t.Cleanup(srv.Close)
			c := newTestClient(t, tg.provider, tg.yaml(srv.URL+tg.apiPath))
			checkState(t, c, goodState(tg))
			if calls.Load() != 1 || referers[0] != "" {
				t.Errorf("redirected requests %d with Referer %q, want 1 without", calls.Load(), referers)
			}
		})
	}
}

func TestCheckRedirect(t *testing.T) {
	req := func(raw string) *http.Request {
		r, err := http.NewRequest(http.MethodGet, raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Referer", "https://api.example/waInstance1/getStateInstance/token")
		return r
	}
	for _, tc := range []struct {
		from, to string
		ok       bool
	}{
		{"https://api.example/secret-path", "https://api.example/b", true},
		{"https://api.example/secret-path", "https://API.example:443/b", true},
		{"http://api.example/secret-path", "http://api.example:80/b", true},
		{"https://api.example/secret-path", "http://api.example/b", false},
		{"http://api.example/secret-path", "https://api.example/b", false},
		{"https://api.example/secret-path", "https://api.example:8443/b", false},
		{"https://api.example/secret-path", "https://evil.example/secret-path", false},
		{"https://api.example/secret-path", "https://api.example.evil.example/secret-path", false},
		{"http://127.0.0.1:1/secret-path", "http://[::1]:1/secret-path", false},
	} {
		r := req(tc.to)
		err := checkRedirect(r, []*http.Request{req(tc.from)})
		if (err == nil) != tc.ok {
			t.Errorf("%s -> %s: error %v, want allowed %v", tc.from, tc.to, err, tc.ok)
		}
		if err == nil && r.Header.Get("Referer") != "" {
			t.Errorf("%s -> %s: Referer kept", tc.from, tc.to)
		}
		if err != nil && strings.Contains(err.Error(), "/secret-path") {
			t.Errorf("%s -> %s: error %q names the path, which can hold a token", tc.from, tc.to, err)
		}
	}
	via := make([]*http.Request, maxRedirects)
	for i := range via {
		via[i] = req("https://api.example/secret-path")
	}
	if err := checkRedirect(req("https://api.example/b"), via); err == nil {
		t.Errorf("redirect number %d followed", maxRedirects+1)
	}
}

// TestDecodedEchoOfSecretIsRedacted: an answer that echoes the secret
// with every character escaped escapes redaction of the raw body; it must
// not reach a log line once decoded.
func TestDecodedEchoOfSecretIsRedacted(t *testing.T) {
	for _, tg := range everyTarget(t) {
		t.Run(tg.provider, func(t *testing.T) {
			var escaped strings.Builder
			for _, r := range tg.secret {
				fmt.Fprintf(&escaped, `\u%04x`, r)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte(stateBody(tg, escaped.String())))
			}))
			t.Cleanup(srv.Close)
			cfg := loadConfig(t, tg.yaml(srv.URL+tg.apiPath), t.TempDir())
			c, logs := newTestCollector(t, cfg)
			values, _ := scrapeValues(t, c)
			key := fmt.Sprintf("whatsapp_instance_state,name=%s,provider=%s,state=unknown", tg.name, tg.provider)
			if values[key] != 1 {
				t.Errorf("%s = %v, want 1", key, values[key])
			}
			if !strings.Contains(logs.String(), "does not know") {
				t.Errorf("the echoed value was not logged as an unknown state:\n%s", logs)
			}
			checkNoLeak(t, "log output", logs.String(), tg.secret)
		})
	}
}

// TestCollectorRemovedInstanceStaysRemoved: a call in flight when a reload
// removes its instance must not bring its series back.
func TestCollectorRemovedInstanceStaysRemoved(t *testing.T) {
	env := newTestEnv(t, Options{})
	keep := env.add(simulator.GreenAPI, "keep", "1", simulator.Behaviour{State: "authorized"})
	env.load(t, keep, env.add(simulator.GreenAPI, "gone", "2", simulator.Behaviour{State: "authorized", Latency: 500 * time.Millisecond}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		testutil.CollectAndCount(env.c.Scrape(context.Background()))
	}()
	for env.sim.Calls(simulator.GreenAPI, "2") == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	env.load(t, keep) // while the call of "gone" is in flight
	<-done
	for _, metric := range []string{"whatsapp_api_requests_total", "whatsapp_api_request_errors_total", "whatsapp_api_request_duration_seconds"} {
		if err := testutil.CollectAndCompare(env.c, strings.NewReader(""), metric); err != nil && strings.Contains(err.Error(), `name="gone"`) {
			t.Errorf("%s of the removed instance came back:\n%v", metric, err)
		}
	}
	if n := testutil.CollectAndCount(env.c, "whatsapp_api_requests_total"); n != 1 {
		t.Errorf("%d request series, want only the kept instance's", n)
	}
}

// TestCollectorSettingChangeKeepsRateLimitMemory: changing an instance's
// settings is no reason to call it before its shared result or its
// Retry-After expires.
func TestCollectorSettingChangeKeepsRateLimitMemory(t *testing.T) {
	env := newTestEnv(t, Options{MinInterval: time.Minute})
	instance := func(id, timeout string, b simulator.Behaviour) string {
		return strings.Replace(env.add(simulator.GreenAPI, "i"+id, id, b), "timeout: 2s", "timeout: "+timeout, 1)
	}
	fresh := simulator.Behaviour{State: "authorized"}
	limited := simulator.Behaviour{Fault: simulator.FaultRateLimited, RetryAfter: 2 * time.Minute}
	for k := range 6 {
		timeout := []string{"2s", "3s"}[k%2]
		env.load(t, instance("1", timeout, fresh), instance("2", timeout, limited))
		testutil.CollectAndCount(env.c.Scrape(context.Background()))
	}
	for _, id := range []string{"1", "2"} {
		if n := env.sim.Calls(simulator.GreenAPI, id); n != 1 {
			t.Errorf("instance %s called %d times across 6 reloads that flip its timeout, want 1", id, n)
		}
	}
	// Another identity (another id_instance) is another instance.
	env.load(t, instance("3", "2s", fresh))
	testutil.CollectAndCount(env.c.Scrape(context.Background()))
	if n := env.sim.Calls(simulator.GreenAPI, "3"); n != 1 {
		t.Errorf("new instance called %d times, want 1", n)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"10", 10 * time.Second},
		{" 10 ", 10 * time.Second},
		{"300", maxRetryAfter},
		{"301", maxRetryAfter},
		{"9300000000", maxRetryAfter},              // overflowed to a negative duration
		{"18446744074", maxRetryAfter},             // wrapped to 0.29 s
		{"99999999999999999999999", maxRetryAfter}, // beyond uint64
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"Fri, 31 Dec 9999 23:59:59 GMT", maxRetryAfter},
	} {
		if got := retryAfter(http.Header{"Retry-After": {tc.value}}, now); got != tc.want {
			t.Errorf("Retry-After %q: %v, want %v", tc.value, got, tc.want)
		}
	}
}

// deadlineClient records the deadline of each call's context.
type deadlineClient struct{ deadline chan time.Time }

func (d deadlineClient) State(ctx context.Context) (string, error) {
	dl, _ := ctx.Deadline()
	d.deadline <- dl
	<-ctx.Done()
	return "", transportError(ctx, ctx.Err())
}

// TestCallEndsBeforeTheScrapeDeadline: a scrape answers by its deadline,
// so the call it starts must end before it, however short the deadline.
func TestCallEndsBeforeTheScrapeDeadline(t *testing.T) {
	for _, budget := range []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 3 * time.Second} {
		c := New(discardLogger(), Options{Concurrency: 1})
		rec := deadlineClient{deadline: make(chan time.Time, 1)}
		tg := &target{provider: providers["greenapi"], name: "x", timeout: time.Minute, client: rec, logger: discardLogger(), mem: &memory{}}
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		scrapeDeadline, _ := ctx.Deadline()
		o := c.observe(ctx, tg)
		cancel()
		if o.up || o.reason != ReasonTimeout {
			t.Errorf("budget %v: outcome %+v, want a timeout", budget, o)
		}
		if dl := <-rec.deadline; !dl.Before(scrapeDeadline) {
			t.Errorf("budget %v: the call's deadline is %v after the scrape's", budget, dl.Sub(scrapeDeadline))
		}
	}
}

// TestClientPoolIsLinear: 2 000 instances with distinct HTTP settings
// cost about one comparison each, not one per pair (reload took 8 s for
// 4 000 of them); equal settings share a client, secrets tell apart.
func TestClientPoolIsLinear(t *testing.T) {
	var comparisons atomic.Int64
	defer func(orig func(a, b promcfg.HTTPClientConfig) bool) { sameSettings = orig }(sameSettings)
	sameSettings = func(a, b promcfg.HTTPClientConfig) bool {
		comparisons.Add(1)
		return sameSettingsDeep(a, b)
	}
	const n = 2000
	var yml strings.Builder
	yml.WriteString("instances:\n")
	for i := range n {
		fmt.Fprintf(&yml, "  - {name: i%d, provider: greenapi, id_instance: %d, api_token: t, proxy_url: \"http://proxy-%d.example:3128\"}\n", i, i+1, i)
	}
	// Two that share settings, and two that differ only in a secret.
	yml.WriteString("  - {name: s1, provider: greenapi, id_instance: 9001, api_token: t, proxy_url: \"http://shared.example:3128\"}\n")
	yml.WriteString("  - {name: s2, provider: greenapi, id_instance: 9002, api_token: t, proxy_url: \"http://shared.example:3128\"}\n")
	yml.WriteString("  - {name: b1, provider: greenapi, id_instance: 9003, api_token: t, basic_auth: {username: u, password: one}}\n")
	yml.WriteString("  - {name: b2, provider: greenapi, id_instance: 9004, api_token: t, basic_auth: {username: u, password: two}}\n")
	cfg, err := config.Load([]byte(yml.String()), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := New(discardLogger(), Options{})
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	// A reload that keeps every instance reuses every client.
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if got := comparisons.Load(); got > 8*n {
		t.Errorf("%d comparisons of HTTP settings for %d instances and a reload, want about one per instance", got, n)
	}
	byName := map[string]*http.Client{}
	for _, tg := range c.targets {
		byName[tg.name] = tg.http
	}
	if byName["s1"] != byName["s2"] {
		t.Error("instances with equal settings do not share a client")
	}
	if byName["b1"] == byName["b2"] || byName["i1"] == byName["i2"] {
		t.Error("instances with different settings share a client")
	}
	if got := len(c.clients); got < n {
		t.Errorf("%d settings keys for %d distinct settings", got, n)
	}
}

func TestRedirectPolicyOnlyWhenFollowing(t *testing.T) {
	for _, follow := range []bool{true, false} {
		cfg := promcfg.DefaultHTTPClientConfig
		cfg.FollowRedirects = follow
		hc, err := clientPool{}.renew().get(cfg, "test")
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://other.invalid/", http.StatusFound)
		}))
		resp, err := hc.Get(srv.URL)
		srv.Close()
		switch {
		case follow && err == nil:
			t.Error("follow_redirects: true followed a redirect to another host")
		case !follow && (err != nil || resp.StatusCode != http.StatusFound):
			t.Errorf("follow_redirects: false: %v, want the 302 itself", err)
		}
		if !follow && err == nil {
			resp.Body.Close()
		}
		if follow && err != nil && !strings.Contains(err.Error(), "refused") {
			t.Errorf("follow_redirects: true: error %v, want a refused redirect", err)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
