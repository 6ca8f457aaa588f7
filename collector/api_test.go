package collector

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

// TestAPIGetCutsErrorTextsAfterRedaction puts a secret across the point
// where API.Get cuts long error texts: cutting first would leave a prefix
// of the secret that no longer matches it.
func TestAPIGetCutsErrorTextsAfterRedaction(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdefghijklmnopqrstuv"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(srv.Close)
	logger, logs := testlog.New()
	api := &API{client: srv.Client(), logs: logTo(logger), metrics: newProviderMetrics().observer("test", newInstanceStats(newMethodSet("m")))}
	api.addSecret(secret)
	for _, at := range []int{maxErrorRunes - 20, maxErrorRunes - 10, maxErrorRunes - 1} {
		prefix := strings.Repeat("x", at-len(ReasonBadResponse)-2)
		_, err := api.Get(t.Context(), "m", srv.URL, nil, func(Response) (string, error) {
			return "", newError(ReasonBadResponse, "%s%s and more text after it", prefix, secret)
		})
		if err == nil || !strings.HasSuffix(err.Error(), "…") && !strings.Contains(err.Error(), "<secret>") {
			t.Fatalf("secret at %d: error %v is neither cut nor redacted", at, err)
		}
		checkNoLeak(t, fmt.Sprintf("error text with the secret at rune %d", at), err.Error(), secret)
		for k := 4; k <= len(secret); k++ {
			if strings.HasSuffix(strings.TrimSuffix(err.Error(), "…"), secret[:k]) {
				t.Errorf("secret at %d: error text ends in the first %d bytes of the secret", at, k)
			}
		}
	}
	checkNoLeak(t, "log output", logs.String(), secret)
}

// TestDecodedEchoOfSecretIsRedacted: an answer that echoes the secret
// with every character escaped escapes redaction of the raw body; it must
// not reach a log line once decoded.
func TestDecodedEchoOfSecretIsRedacted(t *testing.T) {
	t.Parallel()
	for _, tg := range everyTarget(t) {
		if providerTests[tg.provider].fixedStates {
			continue
		}
		t.Run(tg.provider, func(t *testing.T) {
			t.Parallel()
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

// TestUserAgent: every call names the exporter.
func TestUserAgent(t *testing.T) {
	t.Parallel()
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("User-Agent"))
		_, _ = w.Write([]byte(`{"stateInstance":"authorized"}`))
	}))
	t.Cleanup(srv.Close)
	logger, _ := testlog.New()
	c := New(logger, Options{Concurrency: 1, UserAgent: "whatsapp_exporter/1.2.3"})
	t.Cleanup(c.Close)
	if err := c.Update(loadConfig(t, greenAPITargets()[0].yaml(srv.URL), t.TempDir())); err != nil {
		t.Fatal(err)
	}
	scrapeOnce(t, c)
	if ua, _ := got.Load().(string); ua != "whatsapp_exporter/1.2.3" {
		t.Errorf("User-Agent %q", ua)
	}
}
