package collector

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// The tests' harness, by kind:
//
//   - harness_test.go (this file): what every kind of test shares: a
//     polling helper, the checks that no secret leaks, configurations,
//     and collectors scraped as main serves /metrics, against the
//     simulator (testEnv) or a server of the test's own.
//   - harness_client_test.go: each provider's client over real HTTP,
//     row by row (runProviderCases).
//   - harness_accounts_test.go: accounts' listings, and collectors with
//     accounts (accountEnv).
//   - harness_webhook_test.go: collectors that receive notifications
//     (webhookEnv).
//   - internals_test.go: the only way into the collector's internals.

// TestMain runs more tests at once than go test's default, GOMAXPROCS:
// the tests are independent, and most of their time goes to waiting for a
// deadline, a timeout or a server, not to the processors. The tests that
// cannot share the process with others (TestClientPoolIsLinear swaps
// sameSettings) are not parallel. An explicit -test.parallel wins, and
// fuzzing keeps its default (there the flag counts the fuzzing workers).
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" || f.Name == "test.fuzz" })
	if !set {
		if err := flag.Set("test.parallel", strconv.Itoa(4*runtime.GOMAXPROCS(0))); err != nil {
			panic(err)
		}
	}
	m.Run()
}

// providerTestSlack bounds how long any call may take; calls are expected
// to return far sooner.
const providerTestSlack = 5 * time.Second

// waitFor polls cond until it holds, failing after a limit far above any
// expected wait. It is the tests' only polling loop: a test waits for an
// event this way, never for a fixed time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testtool.WaitFor(t, what, cond)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// escapeJSON is s as a JSON encoder that escapes "/" (PHP) and "&" (Go)
// writes it inside a string.
func escapeJSON(s string) string {
	b, _ := json.Marshal(s) // escapes & < > as \u00xx
	return strings.ReplaceAll(strings.Trim(string(b), `"`), "/", `\/`)
}

// secretLeak reports the first form of secret found in text: raw, path-
// or query-escaped, or a long piece of one of these (a secret cut in two
// by truncation), or JSON- or HTML-escaped.
func secretLeak(text, secret string) (string, bool) {
	const piece = 12
	for _, form := range []string{secret, url.PathEscape(secret), url.QueryEscape(secret)} {
		if strings.Contains(text, form) {
			return form, true
		}
		for k := 0; k+piece <= len(form) && len(form) > piece+4; k++ {
			if p := form[k : k+piece]; strings.Contains(text, p) {
				return p, true
			}
		}
	}
	for _, form := range []string{escapeJSON(secret), strings.ReplaceAll(secret, "&", "&amp;")} {
		if form != secret && strings.Contains(text, form) {
			return form, true
		}
	}
	return "", false
}

// checkNoLeak fails when text, described by what, holds secret in any of
// its forms (secretLeak).
func checkNoLeak(t *testing.T, what, text, secret string) {
	t.Helper()
	if leak, ok := secretLeak(text, secret); ok {
		t.Errorf("%s holds the secret (%q):\n%s", what, leak, text)
	}
}

// instanceYAML is a configuration with one instance of provider; fields
// are pairs of field name and value, each value quoted.
func instanceYAML(provider string, fields ...string) string {
	var b strings.Builder
	b.WriteString("instances:\n  - provider: " + provider + "\n")
	for k := 0; k+1 < len(fields); k += 2 {
		fmt.Fprintf(&b, "    %s: %q\n", fields[k], fields[k+1])
	}
	return b.String()
}

// loadConfig resolves a configuration of one instance, read from dir, as
// the exporter does.
func loadConfig(t *testing.T, yml, dir string) *config.Config {
	t.Helper()
	cfg, err := config.Load([]byte(yml), dir, config.Options{})
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	if len(cfg.Instances) != 1 {
		t.Fatalf("config.Load: got %d instances, want 1", len(cfg.Instances))
	}
	return cfg
}

// specOf returns a Spec as the provider's type S.
func specOf[S config.Spec](t *testing.T, spec config.Spec) S {
	t.Helper()
	s, ok := spec.(S)
	if !ok {
		var want S
		t.Fatalf("spec is %T, want %T", spec, want)
	}
	return s
}

// checkConfigError checks that a configuration error holds every piece of
// want and not the secret.
func checkConfigError(t *testing.T, err error, want []string, secret string) {
	t.Helper()
	if err == nil {
		t.Fatalf("config.Load succeeded, want an error holding %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not hold %q", err.Error(), w)
		}
	}
	checkNoLeak(t, "error", err.Error(), secret)
}

// histogramCount returns how many observations a histogram holds.
func histogramCount(t *testing.T, o prometheus.Observer) uint64 {
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

// scrapeOf is one scrape of a collector, as main serves /metrics: the
// instances refreshed within ctx and written in the text format, parsed
// back. Use it with testutil.GatherAndCompare.
func scrapeOf(c *Collector, ctx context.Context) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return gathered(c.Refresh(ctx)).Gather()
	})
}

// gathered is what a scrape wrote, parsed back.
func gathered(s *Scrape) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		var b strings.Builder
		if _, err := s.WriteTo(&b); err != nil {
			return nil, err
		}
		return parseText(b.String())
	})
}

// parseText parses the text exposition format, in order.
func parseText(text string) ([]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("%w in:\n%s", err, text)
	}
	// As a registry gives them: label pairs sorted by name, series by
	// their labels.
	out := make([]*dto.MetricFamily, 0, len(mfs))
	key := func(m *dto.Metric) string {
		var b strings.Builder
		for _, lp := range m.GetLabel() {
			b.WriteString(lp.GetValue() + "\xff")
		}
		return b.String()
	}
	for _, name := range slices.Sorted(maps.Keys(mfs)) {
		for _, m := range mfs[name].GetMetric() {
			slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
		}
		slices.SortFunc(mfs[name].Metric, func(a, b *dto.Metric) int { return strings.Compare(key(a), key(b)) })
		out = append(out, mfs[name])
	}
	return out, nil
}

// scrapeOnce refreshes every instance, waiting for their calls.
func scrapeOnce(t *testing.T, c *Collector) {
	t.Helper()
	if _, err := scrapeOf(c, context.Background()).Gather(); err != nil {
		t.Fatal(err)
	}
}

// errorCount is the named instance's failures of a method by reason.
func errorCount(t *testing.T, c *Collector, name, method, reason string) uint64 {
	t.Helper()
	stats := statsOf(targetNamed(t, c, name))
	return stats.calls[slices.Index(stats.methods, method)].errors[slices.Index(Reasons[:], reason)].Load()
}

// newTestCollector builds a collector, as main does, for cfg.
func newTestCollector(t *testing.T, cfg *config.Config) (*Collector, *testlog.Buffer) {
	t.Helper()
	logger, logs := testlog.New()
	c := New(logger, Options{Concurrency: 4, MinInterval: time.Minute})
	t.Cleanup(c.Close)
	if err := c.Update(cfg); err != nil {
		t.Fatalf("Update: %v", err)
	}
	return c, logs
}

// exposition is what a scrape writes, without refreshing anything.
func exposition(t *testing.T, c *Collector) string {
	t.Helper()
	return written(t, storedScrape(c, false))
}

// written is a scrape in the text format.
func written(t *testing.T, s *Scrape) string {
	t.Helper()
	var b strings.Builder
	if _, err := s.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// scrapeValues scrapes c once as main serves /metrics. It returns every
// gauge, counter and summary count and sum keyed by its name and its label
// pairs ("name,label=value,..."), and the families.
func scrapeValues(t *testing.T, c *Collector) (map[string]float64, []*dto.MetricFamily) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), providerTestSlack)
	defer cancel()
	mfs, err := scrapeOf(c, ctx).Gather()
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	values := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var pairs []string
			for _, lp := range mt.GetLabel() {
				pairs = append(pairs, lp.GetName()+"="+lp.GetValue())
			}
			slices.Sort(pairs)
			labels := ""
			for _, p := range pairs {
				labels += "," + p
			}
			switch {
			case mt.GetGauge() != nil:
				values[mf.GetName()+labels] = mt.GetGauge().GetValue()
			case mt.GetCounter() != nil:
				values[mf.GetName()+labels] = mt.GetCounter().GetValue()
			case mt.GetSummary() != nil:
				values[mf.GetName()+"_count"+labels] = float64(mt.GetSummary().GetSampleCount())
				values[mf.GetName()+"_sum"+labels] = mt.GetSummary().GetSampleSum()
			case mt.GetUntyped() != nil:
				values[mf.GetName()+labels] = mt.GetUntyped().GetValue()
			}
		}
	}
	return values, mfs
}

// checkValues checks that values holds every series of want, with its
// value. A counter of errors wanted at 0 must be absent: a reason appears
// with its first failure.
func checkValues(t *testing.T, values, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		got, ok := values[k]
		if strings.HasPrefix(k, "whatsapp_api_request_errors_total,") && v == 0 {
			if ok {
				t.Errorf("%s = %v, want no series", k, got)
			}
			continue
		}
		if !ok {
			t.Errorf("no series %s", k)
			continue
		}
		if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
}

// testEnv is a simulator behind a loopback server and a collector pointed at
// it.
type testEnv struct {
	sim    *simulator.Simulator
	srv    *httptest.Server
	c      *Collector
	logs   *testlog.Buffer
	inFlag atomic.Int64 // calls in flight at the simulator
	maxIn  atomic.Int64

	mu    sync.Mutex
	gates []*gate
}

// gate holds the calls whose path holds piece in flight, before the
// simulator answers them, until it opens or their caller gives up: a test
// that needs a call in flight holds it there rather than for a time.
type gate struct {
	piece   string
	open    chan struct{}
	once    sync.Once
	arrived atomic.Int64 // the calls that reached the gate
}

// release opens the gate for the calls held and those to come.
func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// hold sets a gate for the calls whose path holds piece; the test's end
// opens it.
func (env *testEnv) hold(t *testing.T, piece string) *gate {
	g := &gate{piece: piece, open: make(chan struct{})}
	env.mu.Lock()
	env.gates = append(env.gates, g)
	env.mu.Unlock()
	t.Cleanup(g.release) // before the server's Close, which waits for the calls
	return g
}

// wait holds r at every gate of its path.
func (env *testEnv) wait(r *http.Request) {
	env.mu.Lock()
	gates := slices.Clone(env.gates)
	env.mu.Unlock()
	for _, g := range gates {
		if !strings.Contains(r.URL.Path, g.piece) {
			continue
		}
		g.arrived.Add(1)
		select {
		case <-g.open:
		case <-r.Context().Done():
		}
	}
}

// greenAPIPath is the piece of the paths of a GREEN-API instance's calls.
func greenAPIPath(id string) string { return "/waInstance" + id + "/" }

func newTestEnv(t *testing.T, opts Options) *testEnv {
	t.Helper()
	logger, logs := testlog.New()
	env := &testEnv{sim: simulator.New(), logs: logs}
	env.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := env.inFlag.Add(1)
		defer env.inFlag.Add(-1)
		for {
			m := env.maxIn.Load()
			if n <= m || env.maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		env.wait(r)
		env.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(env.srv.Close)
	if opts.Concurrency == 0 {
		opts.Concurrency = 8
	}
	env.c = New(logger, opts)
	t.Cleanup(env.c.Close)
	return env
}

// add adds a simulated instance of a provider and returns its config YAML,
// with a 2 s timeout.
func (env *testEnv) add(provider, name, id string, b simulator.Behaviour) string {
	env.sim.Set(provider, id, "secret-"+id, b)
	return simulator.ProviderOf(provider).Config(env.srv.URL, name, id, "secret-"+id, "timeout: 2s")
}

func (env *testEnv) load(t *testing.T, instances ...string) {
	t.Helper()
	cfg, err := config.Load([]byte("instances:\n"+strings.Join(instances, "")), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.c.Update(cfg); err != nil {
		t.Fatal(err)
	}
}

// scrape is one scrape, waiting for its calls, that checks the families
// named in names against want.
func (env *testEnv) scrape(t *testing.T, want string, names ...string) {
	t.Helper()
	compareScrape(t, env.c.Refresh(context.Background()), want, names...)
}

// compareScrape checks the families of a scrape named in names against
// want.
func compareScrape(t *testing.T, s *Scrape, want string, names ...string) {
	t.Helper()
	if err := testutil.GatherAndCompare(gathered(s), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
}

func stateLines(provider, name, current string, up bool) string {
	var b strings.Builder
	for _, s := range append(ProviderStates(provider), StateUnknown) {
		v := 0
		if s == current {
			v = 1
		}
		fmt.Fprintf(&b, "whatsapp_instance_state{name=%q,provider=%q,state=%q} %d\n", name, provider, s, v)
	}
	return b.String()
}

func upLine(provider, name string, up bool) string {
	v := 0
	if up {
		v = 1
	}
	return fmt.Sprintf("whatsapp_up{name=%q,provider=%q} %d\n", name, provider, v)
}

var stateHeader = "# HELP whatsapp_instance_state " + stateFamily.help + "\n# TYPE whatsapp_instance_state gauge\n"

var upHeader = "# HELP whatsapp_up " + upFamily.help + "\n# TYPE whatsapp_up gauge\n"
