package collector

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

// The accounts' harness: an account's listing over real HTTP
// (runListingCases), and a collector with accounts against the simulator
// (accountEnv).

// listingCase is one answer of a listing and what the lister makes of it.
type listingCase struct {
	fixture string // in testdata/<provider>/accounts; "" for body
	body    string
	status  int
	header  []string
	// want are the listed instances as "name id skip state"; wantErr the
	// reason of a failure.
	want      []string
	malformed int
	// skipped are the rows counted as not watched, by reason.
	skipped map[string]int
	wantErr string
}

// listingTarget is a provider's account as the tests configure it.
type listingTarget struct {
	provider string
	// yaml is the account's entry for an api_url.
	yaml func(apiURL string) string
	// path and header are where and how the listing authenticates.
	path        string
	checkHeader func(h http.Header) bool
	// tokens says the listing passes on each instance's own token, which
	// its calls need (GREEN-API, Evolution Go, wuzapi).
	tokens bool
}

// newTestLister builds the lister of a provider's account pointed at
// apiURL, with a logger to search.
func newTestLister(t *testing.T, tg listingTarget, apiURL string) (Lister, *testlog.Buffer) {
	t.Helper()
	cfg, err := config.Load([]byte("accounts:\n"+tg.yaml(apiURL)), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	spec := cfg.Accounts[0].Spec
	p := providerOf(tg.provider)
	hc, err := clientPool{}.renew().get(spec.Account().HTTPClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := testlog.New()
	api := &API{client: hc, logs: logTo(logger), metrics: newProviderMetrics().observer(p.Name, newInstanceStats(listingMethods(p)))}
	l, err := p.Account.NewLister(spec, api)
	if err != nil {
		t.Fatal(err)
	}
	return l, logs
}

func runListingCases(t *testing.T, label string, tg listingTarget, cases []listingCase) {
	provider := tg.provider
	for _, tc := range cases {
		name := tc.fixture
		if name == "" {
			name = fmt.Sprintf("%d %.20s (%d bytes)", tc.status, tc.body, len(tc.body))
		}
		t.Run(label+"/"+name, func(t *testing.T) {
			t.Parallel()
			body := tc.body
			if tc.fixture != "" {
				b, err := os.ReadFile(filepath.Join("testdata", provider, "accounts", tc.fixture))
				if err != nil {
					t.Fatal(err)
				}
				body = string(b)
				for k, s := range listingSecrets[1:] {
					body = strings.ReplaceAll(body, fmt.Sprintf("{{TOKEN_%d}}", k+1), s)
				}
			}
			var sawPath string
			var authOK bool
			url, _ := startRecordingServer(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
				sawPath, authOK = r.URL.Path, tg.checkHeader(r.Header)
				for k := 0; k+1 < len(tc.header); k += 2 {
					w.Header().Set(tc.header[k], tc.header[k+1])
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(body))
			})
			l, logs := newTestLister(t, tg, url)
			ctx, cancel := context.WithTimeout(t.Context(), providerTestSlack)
			defer cancel()
			got, err := l.List(ctx)
			if sawPath != tg.path || !authOK {
				t.Errorf("request to %q, credentials right %v; want %q", sawPath, authOK, tg.path)
			}
			out := logs.String()
			if tc.wantErr != "" {
				e := checkReason(t, err, tc.wantErr)
				if tc.wantErr == ReasonRateLimited && e.RetryAfter != 30*time.Second {
					t.Errorf("RetryAfter %v, want 30s", e.RetryAfter)
				}
				out += e.Error()
			} else {
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				var have []string
				for _, in := range got.Instances {
					fields := []string{in.Name, in.ID, in.Skip, in.State}
					if in.Disconnect != 0 {
						fields = append(fields, strconv.Itoa(in.Disconnect))
					}
					have = append(have, strings.Join(fields, " "))
					if in.Token != "" && !slices.Contains(listingSecrets, in.Token) {
						t.Errorf("instance %s: token %q is none of the fixture's", in.Name, in.Token)
					}
					if !tg.tokens && in.Token != "" {
						t.Errorf("instance %s: the %s listing passed on a token it does not need", in.Name, provider)
					}
				}
				if !slices.Equal(have, tc.want) || got.Malformed != tc.malformed || !maps.Equal(got.Skipped, tc.skipped) {
					t.Errorf("listed %q with %d malformed, skipped %v; want %q with %d, %v", have, got.Malformed, got.Skipped, tc.want, tc.malformed, tc.skipped)
				}
			}
			for _, s := range listingSecrets {
				checkNoLeak(t, "error text and logs", out, s)
			}
		})
	}
}

// accountEnv is a collector and a simulator with accounts.
type accountEnv struct {
	*testEnv
}

// account returns the configuration of an account of provider, with
// extra fields.
func (env accountEnv) account(provider, name, key string, extra ...string) string {
	return simulator.ProviderOf(provider).AccountConfig(env.srv.URL, name, key, append([]string{"refresh_interval: 1h"}, extra...)...)
}

func (env accountEnv) load(t *testing.T, instances, accounts string) error {
	t.Helper()
	yml := ""
	if instances != "" {
		yml += "instances:\n" + instances
	}
	if accounts != "" {
		yml += "accounts:\n" + accounts
	}
	cfg, err := config.Load([]byte(yml), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return env.c.Update(cfg)
}

// list makes every account list now, as its refresh would.
func (env accountEnv) list(t *testing.T) {
	t.Helper()
	for _, a := range accountsOf(env.c) {
		// The account's own first listing, run by the scheduler when it
		// was configured, may still be in flight: let it end first, or
		// its result could land after this one's (the scheduler never
		// runs two calls of one account at once; this helper would).
		// The scheduled listing may also come after this one: listNow
		// applies the listings, whichever came last.
		waitFor(t, "the scheduled listing to end", func() bool { return listingDone(env.c, a) })
		listNow(env.c, a)
	}
}

// watched is the instances the collector watches, "account/name".
func (env accountEnv) watched() []string {
	var out []string
	for _, in := range env.c.Instances() {
		out = append(out, in.Account+"/"+in.Name)
	}
	slices.Sort(out)
	return out
}

func newAccountEnv(t *testing.T) accountEnv {
	env := accountEnv{newTestEnv(t, Options{MinInterval: time.Second})}
	for i := range 6 {
		id := fmt.Sprint(1101000000 + i)
		env.sim.Set(simulator.GreenAPI, id, "tok-"+id, simulator.Behaviour{State: "authorized"})
	}
	for _, name := range []string{"t1_a", "t1_b", "t1_c"} {
		env.sim.Set(simulator.Wachat, name, "agency-key", simulator.Behaviour{State: "connecting"})
	}
	return env
}

// gatherAccountMetrics renders the account metrics in the text format.
func gatherAccountMetrics(t *testing.T, c *Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(accountMetricsOf(c))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
