package collector

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	promcfg "github.com/prometheus/common/config"
)

// TestRedirectToAnotherHostIsRefused: a redirect must not carry a secret
// (GREEN-API's in the path and so in Referer, the others' in headers) to
// another host, and what that host answers is not the instance's state.
func TestRedirectToAnotherHostIsRefused(t *testing.T) {
	t.Parallel()
	for _, tg := range everyTarget(t) {
		t.Run(tg.provider, func(t *testing.T) {
			t.Parallel()
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
	t.Parallel()
	for _, tg := range everyTarget(t) {
		t.Run(tg.provider, func(t *testing.T) {
			t.Parallel()
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
	t.Parallel()
	for _, tg := range everyTarget(t) {
		t.Run(tg.provider, func(t *testing.T) {
			t.Parallel()
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
	t.Parallel()
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

func TestRedirectPolicyOnlyWhenFollowing(t *testing.T) {
	t.Parallel()
	for _, follow := range []bool{true, false} {
		cfg := promcfg.DefaultHTTPClientConfig
		cfg.FollowRedirects = follow
		hc, err := clientPool{}.renew().get(cfg)
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
