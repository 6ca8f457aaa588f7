package collector

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

// redactEnv is a GREEN-API partner account and configured instances on
// a loopback server whose listing fails, when told to, with an error
// page that quotes every secret of the configuration.
type redactEnv struct {
	url     string
	failing atomic.Bool
	// page is the body of the failing listing.
	page atomic.Pointer[string]
	c    *Collector
	logs *testlog.Buffer
}

const (
	redactPartner = "Partner-Token-0123456789"
	redactListed1 = "Listed-Token-One-0123456789"
	redactListed2 = "Listed-Token-Two-0123456789"
	redactDeleted = "Deleted-Token-0123456789ab"
	redactShop    = "Shop-Token-0123456789abcd"
	redactHook    = "Shop-Webhook-0123456789ab"
	redactAcctHk  = "Account-Webhook-Key-012345"
	redactBearer  = "Bearer/Secret+0123456789="
	redactAdded   = "Added-Token-0123456789abc"
)

func newRedactEnv(t *testing.T) *redactEnv {
	t.Helper()
	env := &redactEnv{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/partner/getInstances/"+redactPartner && env.failing.Load():
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(*env.page.Load()))
		case r.URL.Path == "/partner/getInstances/"+redactPartner:
			fmt.Fprintf(w, `[{"idInstance":1101000001,"name":"one","apiTokenInstance":%q,"typeInstance":"whatsapp"},`+
				`{"idInstance":1101000002,"name":"two","apiTokenInstance":%q,"typeInstance":"whatsapp"},`+
				`{"idInstance":1101000003,"name":"gone","apiTokenInstance":%q,"typeInstance":"whatsapp","deleted":true}]`,
				redactListed1, redactListed2, redactDeleted)
		case strings.HasPrefix(r.URL.Path, "/waInstance1101000009/") && env.failing.Load():
			// The configured instance's own call fails with the page too.
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte(*env.page.Load()))
		case strings.Contains(r.URL.Path, "/getStateInstance/"):
			_, _ = w.Write([]byte(`{"stateInstance":"authorized"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	env.url = srv.URL
	logger, logs := testlog.New()
	env.c, env.logs = New(logger, Options{Concurrency: 4}), logs
	t.Cleanup(env.c.Close)
	return env
}

// load applies a configuration of the partner account, the instance shop
// and the instances extra.
func (env *redactEnv) load(t *testing.T, extra string) {
	t.Helper()
	yml := fmt.Sprintf(`instances:
  - {name: shop, provider: greenapi, api_url: %[1]q, id_instance: "1101000009", api_token: %[2]q, webhook_token: %[3]q, authorization: {credentials: %[4]q}}
%[5]saccounts:
  - {name: partner, provider: greenapi, api_url: %[1]q, instance_api_url: %[1]q, partner_token: %[6]q, webhook_key: %[7]q, refresh_interval: 1h, exclude: ["two"]}
`, env.url, redactShop, redactHook, redactBearer, extra, redactPartner, redactAcctHk)
	cfg, err := config.Load([]byte(yml), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.c.Update(cfg); err != nil {
		t.Fatal(err)
	}
}

// list makes the partner list now, after its first listing.
func (env *redactEnv) list(t *testing.T) {
	t.Helper()
	a := accountNamed(t, env.c, "partner")
	waitFor(t, "the first listing", func() bool { return listingDone(env.c, a) })
	listNow(env.c, a)
}

// failWith makes the listing fail with an error page quoting secrets, in
// the forms an echo takes.
func (env *redactEnv) failWith(secrets ...string) {
	var b strings.Builder
	b.WriteString("<h1>upstream error</h1> tokens:")
	for _, s := range secrets {
		b.WriteString(" " + s)
	}
	// A query-escaped echo of a URL, as a proxy's error page shows it.
	b.WriteString(" url=?t=" + url.QueryEscape(redactBearer))
	page := b.String()
	env.page.Store(&page)
	env.failing.Store(true)
}

// TestFailingListingHidesEveryKnownSecret: a failing partner listing,
// and a failing state call, whose error page quotes the tokens of the
// instances the listing gave (watched or filtered out), of the configured
// ones, their webhook tokens (given, or derived from the account's key),
// the account's key and the HTTP settings' secrets, put none of them in
// the logs, /metrics or /probe; nor after a reload that adds an instance,
// whose token the next failure quotes.
func TestFailingListingHidesEveryKnownSecret(t *testing.T) {
	t.Parallel()
	env := newRedactEnv(t)
	env.load(t, "")
	env.list(t)
	if got := env.c.Instances(); len(got) != 2 {
		t.Fatalf("watching %d instances, want shop and one (two is filtered out)", len(got))
	}
	// The webhook token derived for the instance one from the account's
	// key, too.
	derived := deriveWebhookSecret(redactAcctHk, derivedToken, "1101000001")
	// Not the deleted row's: a listing keeps nothing of the rows it
	// leaves out, so their tokens are not known.
	all := []string{redactPartner, redactListed1, redactListed2, redactShop, redactHook, redactAcctHk, redactBearer, derived}
	env.failWith(all...)
	env.list(t)

	scrape := written(t, env.c.Refresh(context.Background()))
	logs := env.logs.String()
	for _, want := range []string{"Listing failing", "State request failing", "upstream error"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("no %q in the logs:\n%s", want, logs)
		}
	}
	var out strings.Builder
	out.WriteString(logs)
	out.WriteString(scrape)
	for _, name := range []string{"one", "shop"} {
		s, err := env.c.RefreshInstance(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString(written(t, s))
	}
	out.WriteString(gatherAccountMetrics(t, env.c))
	for _, s := range all {
		checkNoLeak(t, "logs, /metrics and /probe", out.String(), s)
	}

	// A reload adds an instance; the listing, still failing, now quotes
	// its token too.
	env.load(t, fmt.Sprintf("  - {name: added, provider: greenapi, api_url: %q, id_instance: \"1101000010\", api_token: %q}\n", env.url, redactAdded))
	env.failWith(append(all, redactAdded)...)
	env.list(t)
	logs = env.logs.String()
	if n := strings.Count(logs, `msg="Call failed" provider=greenapi account=partner`); n != 2 {
		t.Fatalf("%d failed listings logged, want 2:\n%s", n, logs)
	}
	for _, s := range append(all, redactAdded) {
		checkNoLeak(t, "logs after the reload", logs, s)
	}
}

// TestRedactor: every form of every secret, the longest first, and
// short ones.
func TestRedactor(t *testing.T) {
	t.Parallel()
	r := newRedactor()
	for _, s := range []string{"abc", "Token-0123456789", "Token-0123456789-longer", `a/b+c"d&e<0123456789`} {
		r.addSecret(s)
	}
	r.done()
	for in, want := range map[string]string{
		"":                                 "",
		"nothing here":                     "nothing here",
		"x Token-0123456789 y":             "x <secret> y",
		"Token-0123456789-longer!":         "<secret>!",
		"Token-0123456789Token-0123456789": "<secret><secret>",
		"xabcx":                            "x<secret>x",
		`a\/b+c\"d\u0026e\u003c0123456789`: "<secret>",
		"a%2Fb%2Bc%22d%26e%3C0123456789":   "<secret>",
		`a/b+c"d&amp;e<0123456789`:         "<secret>",
		"Token-012345678":                  "Token-012345678",
	} {
		if got := r.redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
	var nilR *redactor
	if got := nilR.redact("Token-0123456789"); got != "Token-0123456789" {
		t.Errorf("nil redactor changed the text: %q", got)
	}
	// A secret that begins before the cut is hidden whole; what comes
	// after the part kept is not searched.
	for _, long := range []string{
		strings.Repeat("x", 295) + "Token-0123456789" + strings.Repeat("y", 100_000),
		strings.Repeat("Token-0123456789-longer", 40),
		strings.Repeat("é", 290) + "Token-0123456789" + strings.Repeat("é", 3) + "abc" + strings.Repeat("y", 1000),
		strings.Repeat("x", 298) + "abc" + strings.Repeat("y", 1000),
	} {
		got := shorten(r.redactHead(long, 300), 300)
		if strings.Contains(got, "Token-") || strings.Contains(got, "ab") || !strings.HasSuffix(got, "…") {
			t.Errorf("cut text ends %q", got[max(0, len(got)-60):])
		}
		if len(got) > 4*300+len("…") {
			t.Errorf("cut text of %d bytes", len(got))
		}
	}
}

// fleetSecrets loads a configuration of n GREEN-API instances, each with
// its token and webhook token, into a collector.
func fleetSecrets(tb testing.TB, n int) (*Collector, []string) {
	tb.Helper()
	var yml strings.Builder
	yml.WriteString("instances:\n")
	tokens := make([]string, 0, 2*n)
	for i := range n {
		tok, hook := fleetToken(i)
		tokens = append(tokens, tok, hook)
		fmt.Fprintf(&yml, "  - {name: i%05d, provider: greenapi, api_url: \"http://upstream.invalid\", id_instance: \"%d\", api_token: %q, webhook_token: %q}\n",
			i, 1101000000+i, tok, hook)
	}
	cfg, err := config.Load([]byte(yml.String()), tb.TempDir(), config.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	c := New(nil, Options{})
	tb.Cleanup(c.Close)
	if err := c.Update(cfg); err != nil {
		tb.Fatal(err)
	}
	return c, tokens
}

// TestRedactor10000 hides every one of 10 000 instances' tokens and
// webhook tokens, alike but for their last digits (BenchmarkRedactor
// builds the same from a configuration, and measures).
func TestRedactor10000(t *testing.T) {
	t.Parallel()
	r := newRedactor()
	var tokens []string
	for i := range 10_000 {
		tok, hook := fleetToken(i)
		tokens = append(tokens, tok, hook)
		r.addSecret(tok)
		r.addSecret(hook)
	}
	r.done()
	for i, tok := range tokens {
		if got := r.redact("HTTP 500: \"" + tok + "\""); got != `HTTP 500: "<secret>"` {
			t.Fatalf("secret %d: %q", i, got)
		}
	}
}

// fleetToken is the token and the webhook token of instance i of a fleet.
func fleetToken(i int) (token, hook string) {
	return fmt.Sprintf("%050x", 0xabc000000+i), fmt.Sprintf("hook-%020d", i)
}

// BenchmarkRedactor measures, at 10 000 instances (20 000 secrets), the
// building of a snapshot's redactor (once per snapshot, at its first
// error) and what it keeps, and the redaction of a 300-byte error text
// and of one that quotes a whole 64 KiB body.
func BenchmarkRedactor(b *testing.B) {
	c, tokens := fleetSecrets(b, 10_000)
	snap := c.current()
	b.Run("build", func(b *testing.B) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var r *redactor
		for range b.N {
			r = buildRedactor(snap)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc)-float64(before.HeapAlloc), "kept-B")
		runtime.KeepAlive(r)
	})
	r := c.knownSecrets()
	text := "HTTP 500: " + strings.Repeat("no secret here, ", 17) + tokens[4711]
	b.Run("error-300B", func(b *testing.B) {
		for range b.N {
			_ = r.redactHead(text, maxErrorRunes)
		}
	})
	body := strings.Repeat("<p>an error page without a secret</p>", 64<<10/37)
	b.Run("error-64KiB", func(b *testing.B) {
		for range b.N {
			_ = shorten(r.redactHead(body, maxErrorRunes), maxErrorRunes)
		}
	})
	b.Run("whole-64KiB", func(b *testing.B) {
		for range b.N {
			_ = r.redact(body)
		}
	})
	// A log line as the collector writes one, through the redacting
	// handler and without it.
	for name, h := range map[string]slog.Handler{
		"log-line":       &redactingHandler{inner: slog.NewTextHandler(io.Discard, nil), known: c.knownSecrets},
		"log-line-plain": slog.NewTextHandler(io.Discard, nil),
	} {
		logger := slog.New(h).With("provider", "greenapi", "name", "i04711")
		b.Run(name, func(b *testing.B) {
			for range b.N {
				logger.Warn("State request failing", "reason", ReasonServerError, "err", text)
			}
		})
	}
}
