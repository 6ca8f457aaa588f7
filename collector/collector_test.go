package collector

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

// testEnv is a simulator behind a loopback server and a collector pointed at
// it.
type testEnv struct {
	sim    *simulator.Simulator
	srv    *httptest.Server
	c      *Collector
	logs   *testlog.Buffer
	inFlag atomic.Int64 // calls in flight at the simulator
	maxIn  atomic.Int64
}

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
		env.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(env.srv.Close)
	if opts.Concurrency == 0 {
		opts.Concurrency = 8
	}
	env.c = New(logger, opts)
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

const stateHeader = `# HELP whatsapp_instance_state State of the WhatsApp instance as reported by its provider: 1 for the current state, 0 for the others; unknown when no state could be fetched.
# TYPE whatsapp_instance_state gauge
`

const upHeader = `# HELP whatsapp_up Whether the last state request to the provider produced a state.
# TYPE whatsapp_up gauge
`

func TestCollectorStatesAndUp(t *testing.T) {
	env := newTestEnv(t, Options{})
	env.load(t,
		env.add(simulator.GreenAPI, "shop", "1101000001", simulator.Behaviour{State: "authorized"}),
		env.add(simulator.GreenAPI, "support", "1101000002", simulator.Behaviour{State: "text:instance in starting process try later"}),
		env.add(simulator.GreenAPI, "sales", "1101000003", simulator.Behaviour{Fault: simulator.FaultUnauthorized}),
		env.add(simulator.GreenAPI, "new", "1101000004", simulator.Behaviour{State: "suspended"}),
		env.add(simulator.GreenAPI, "blocked", "1101000005", simulator.Behaviour{State: "blocked"}),
	)
	want := stateHeader +
		stateLines("greenapi", "blocked", "blocked", true) +
		stateLines("greenapi", "new", StateUnknown, true) +
		stateLines("greenapi", "sales", StateUnknown, false) +
		stateLines("greenapi", "shop", "authorized", true) +
		stateLines("greenapi", "support", "starting", true) +
		upHeader +
		upLine("greenapi", "blocked", true) +
		upLine("greenapi", "new", true) +
		upLine("greenapi", "sales", false) +
		upLine("greenapi", "shop", true) +
		upLine("greenapi", "support", true)
	if err := testutil.CollectAndCompare(env.c.States(context.Background()), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	// The unknown raw value is logged at warn, and only there.
	if !strings.Contains(env.logs.String(), `level=WARN msg="Provider reported a state the exporter does not know; exposing it as unknown" provider=greenapi name=new raw_state="\"suspended\""`) {
		t.Errorf("no warning for the unknown state in the logs:\n%s", env.logs.String())
	}
}

func TestCollectorAllProviders(t *testing.T) {
	env := newTestEnv(t, Options{})
	env.load(t,
		env.add(simulator.GreenAPI, "green", "1", simulator.Behaviour{State: "yellowCard"}),
		env.add(simulator.Wachat, "store", "t1_store", simulator.Behaviour{State: "connecting"}),
		env.add(simulator.Wachat, "gone", "t1_gone", simulator.Behaviour{Fault: simulator.FaultNotFound}),
		env.add(simulator.Evolution, "evo", "evo", simulator.Behaviour{State: "close"}),
		env.add(simulator.Evolution, "idle", "idle", simulator.Behaviour{State: simulator.NotLoaded}),
	)
	want := stateHeader +
		stateLines("evolution", "evo", "close", true) +
		stateLines("evolution", "idle", StateUnknown, true) +
		stateLines("wachat", "gone", StateUnknown, false) +
		stateLines("greenapi", "green", "yellowCard", true) +
		stateLines("wachat", "store", "connecting", true) +
		upHeader +
		upLine("evolution", "evo", true) + upLine("evolution", "idle", true) + upLine("wachat", "gone", false) +
		upLine("greenapi", "green", true) + upLine("wachat", "store", true)
	if err := testutil.CollectAndCompare(env.c.States(context.Background()), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(env.c.metrics.errors.WithLabelValues("wachat", "gone", "instanceState", ReasonClientError)); got != 1 {
		t.Errorf("client_error count for a wrong instance name: %v, want 1", got)
	}
	// A wrong instance name is logged as such, once.
	logs := env.logs.String()
	if n := strings.Count(logs, `no instance named \"t1_gone\"; check instance_name`); n < 1 {
		t.Errorf("no log line says the Wachat instance name is wrong:\n%s", logs)
	}
	if strings.Contains(logs, "does not know") {
		t.Errorf("a not-loaded Evolution instance was logged as an unknown state value:\n%s", logs)
	}
}

func TestCollectorCallMetrics(t *testing.T) {
	env := newTestEnv(t, Options{})
	env.load(t,
		env.add(simulator.GreenAPI, "ok", "1", simulator.Behaviour{State: "authorized"}),
		env.add(simulator.GreenAPI, "limited", "2", simulator.Behaviour{Fault: simulator.FaultRateLimited}),
	)
	// Before any scrape every series exists at zero.
	if n := testutil.CollectAndCount(env.c.CallMetrics(), "whatsapp_api_request_errors_total"); n != 2*len(Reasons) {
		t.Fatalf("%d error series before the first scrape, want %d", n, 2*len(Reasons))
	}
	testutil.CollectAndCount(env.c.States(context.Background()))

	var want strings.Builder
	want.WriteString("# HELP whatsapp_api_request_errors_total Calls to the provider API that failed, by reason.\n# TYPE whatsapp_api_request_errors_total counter\n")
	for _, name := range []string{"limited", "ok"} {
		for _, r := range Reasons {
			v := 0
			if name == "limited" && r == ReasonRateLimited {
				v = 1
			}
			fmt.Fprintf(&want, "whatsapp_api_request_errors_total{method=\"getStateInstance\",name=%q,provider=\"greenapi\",reason=%q} %d\n", name, r, v)
		}
	}
	want.WriteString(`# HELP whatsapp_api_requests_total Calls the exporter made to the provider API.
# TYPE whatsapp_api_requests_total counter
whatsapp_api_requests_total{method="getStateInstance",name="limited",provider="greenapi"} 1
whatsapp_api_requests_total{method="getStateInstance",name="ok",provider="greenapi"} 1
`)
	if err := testutil.CollectAndCompare(env.c.CallMetrics(), strings.NewReader(want.String()), "whatsapp_api_requests_total", "whatsapp_api_request_errors_total"); err != nil {
		t.Fatal(err)
	}
	// Each call is timed once.
	if n := testutil.CollectAndCount(env.c.CallMetrics(), "whatsapp_api_request_duration_seconds"); n != 2 {
		t.Errorf("%d duration series, want 2", n)
	}
}

func TestCollectorSharesCallsBetweenScrapes(t *testing.T) {
	env := newTestEnv(t, Options{MinInterval: time.Minute})
	env.load(t, env.add(simulator.GreenAPI, "shop", "1", simulator.Behaviour{State: "authorized", Latency: 200 * time.Millisecond}))

	// Two HA Prometheus servers, and then some, scrape at the same moment.
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := testutil.CollectAndCompare(env.c.States(context.Background()),
				strings.NewReader(upHeader+upLine("greenapi", "shop", true)), "whatsapp_up"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// A scrape just after the call finished reuses its result.
	testutil.CollectAndCount(env.c.States(context.Background()))
	if n := env.sim.Calls(simulator.GreenAPI, "1"); n != 1 {
		t.Fatalf("simulator saw %d calls, want 1", n)
	}
}

func TestCollectorCallsAgainAfterMinInterval(t *testing.T) {
	env := newTestEnv(t, Options{MinInterval: 0})
	env.load(t, env.add(simulator.GreenAPI, "shop", "1", simulator.Behaviour{State: "authorized"}))
	for range 3 {
		testutil.CollectAndCount(env.c.States(context.Background()))
	}
	if n := env.sim.Calls(simulator.GreenAPI, "1"); n != 3 {
		t.Fatalf("simulator saw %d calls for 3 sequential scrapes without min interval, want 3", n)
	}
}

func TestCollectorHonoursRetryAfter(t *testing.T) {
	env := newTestEnv(t, Options{MinInterval: 0})
	env.load(t, env.add(simulator.GreenAPI, "shop", "1", simulator.Behaviour{Fault: simulator.FaultRateLimited, RetryAfter: time.Second}))
	first := time.Now()
	testutil.CollectAndCount(env.c.States(context.Background()))
	// Retry the moment Retry-After allows and no sooner.
	for time.Since(first) < 2*time.Second {
		before := env.sim.Calls(simulator.GreenAPI, "1")
		sent := time.Now()
		testutil.CollectAndCount(env.c.States(context.Background()))
		if env.sim.Calls(simulator.GreenAPI, "1") > before {
			if sent.Sub(first) < time.Second {
				t.Fatalf("called again %v after a 429 with Retry-After: 1", sent.Sub(first))
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no call in the 2 s after a 429 with Retry-After: 1 (%d calls)", env.sim.Calls(simulator.GreenAPI, "1"))
}

func TestCollectorRateLimitedScrapesStayDown(t *testing.T) {
	env := newTestEnv(t, Options{MinInterval: 0})
	env.load(t, env.add(simulator.GreenAPI, "shop", "1", simulator.Behaviour{Fault: simulator.FaultRateLimited, RetryAfter: time.Minute}))
	for range 3 {
		if err := testutil.CollectAndCompare(env.c.States(context.Background()),
			strings.NewReader(upHeader+upLine("greenapi", "shop", false)), "whatsapp_up"); err != nil {
			t.Fatal(err)
		}
	}
	if n := env.sim.Calls(simulator.GreenAPI, "1"); n != 1 {
		t.Fatalf("%d calls during Retry-After, want 1", n)
	}
}

func TestCollectorSlowInstanceDoesNotDelayOthers(t *testing.T) {
	env := newTestEnv(t, Options{})
	env.load(t,
		env.add(simulator.GreenAPI, "hung", "1", simulator.Behaviour{Fault: simulator.FaultHang}),
		env.add(simulator.GreenAPI, "shop", "2", simulator.Behaviour{State: "authorized"}),
		env.add(simulator.GreenAPI, "sales", "3", simulator.Behaviour{State: "sleepMode"}),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	want := stateHeader +
		stateLines("greenapi", "hung", StateUnknown, false) +
		stateLines("greenapi", "sales", "sleepMode", true) +
		stateLines("greenapi", "shop", "authorized", true) +
		upHeader + upLine("greenapi", "hung", false) + upLine("greenapi", "sales", true) + upLine("greenapi", "shop", true)
	if err := testutil.CollectAndCompare(env.c.States(ctx), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// The hung call ends at the scrape's deadline and counts as a timeout.
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(env.c.metrics.errors.WithLabelValues("greenapi", "hung", "getStateInstance", ReasonTimeout)) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the hung call was not counted as a timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCollectorBoundsConcurrency(t *testing.T) {
	env := newTestEnv(t, Options{Concurrency: 2})
	var instances []string
	for i := range 6 {
		instances = append(instances, env.add(simulator.GreenAPI, fmt.Sprintf("i%d", i), fmt.Sprint(i+1), simulator.Behaviour{State: "authorized", Latency: 50 * time.Millisecond}))
	}
	env.load(t, instances...)
	if err := testutil.CollectAndCompare(env.c.States(context.Background()), strings.NewReader(upHeader+
		upLine("greenapi", "i0", true)+upLine("greenapi", "i1", true)+upLine("greenapi", "i2", true)+
		upLine("greenapi", "i3", true)+upLine("greenapi", "i4", true)+upLine("greenapi", "i5", true)), "whatsapp_up"); err != nil {
		t.Fatal(err)
	}
	if m := env.maxIn.Load(); m > 2 || m < 1 {
		t.Fatalf("%d calls in flight at once, want at most 2", m)
	}
}

func TestCollectorUpdate(t *testing.T) {
	env := newTestEnv(t, Options{MinInterval: time.Minute})
	shop := env.add(simulator.GreenAPI, "shop", "1", simulator.Behaviour{State: "authorized"})
	env.load(t, shop, env.add(simulator.GreenAPI, "old", "2", simulator.Behaviour{State: "authorized"}))
	testutil.CollectAndCount(env.c.States(context.Background()))

	env.load(t, shop, env.add(simulator.GreenAPI, "new", "3", simulator.Behaviour{State: "blocked"}))
	want := upHeader + upLine("greenapi", "new", true) + upLine("greenapi", "shop", true)
	if err := testutil.CollectAndCompare(env.c.States(context.Background()), strings.NewReader(want), "whatsapp_up"); err != nil {
		t.Fatal(err)
	}
	// The unchanged instance kept its shared result: no second call.
	if n := env.sim.Calls(simulator.GreenAPI, "1"); n != 1 {
		t.Errorf("unchanged instance called %d times across a reload, want 1", n)
	}
	// The removed instance's call metrics are gone.
	if n := testutil.CollectAndCount(env.c.CallMetrics(), "whatsapp_api_requests_total"); n != 2 {
		t.Errorf("%d request series after removing an instance, want 2", n)
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
		testutil.CollectAndCount(env.c.States(context.Background()))
	}()
	for env.sim.Calls(simulator.GreenAPI, "2") == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	env.load(t, keep) // while the call of "gone" is in flight
	<-done
	for _, metric := range []string{"whatsapp_api_requests_total", "whatsapp_api_request_errors_total", "whatsapp_api_request_duration_seconds"} {
		if err := testutil.CollectAndCompare(env.c.CallMetrics(), strings.NewReader(""), metric); err != nil && strings.Contains(err.Error(), `name="gone"`) {
			t.Errorf("%s of the removed instance came back:\n%v", metric, err)
		}
	}
	if n := testutil.CollectAndCount(env.c.CallMetrics(), "whatsapp_api_requests_total"); n != 1 {
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
		testutil.CollectAndCount(env.c.States(context.Background()))
	}
	for _, id := range []string{"1", "2"} {
		if n := env.sim.Calls(simulator.GreenAPI, id); n != 1 {
			t.Errorf("instance %s called %d times across 6 reloads that flip its timeout, want 1", id, n)
		}
	}
	// Removed by one reload and added again by the next, it is still the
	// same instance, whose result and Retry-After still stand.
	env.load(t, instance("3", "2s", fresh))
	env.load(t, instance("1", "2s", fresh), instance("2", "2s", limited), instance("3", "2s", fresh))
	testutil.CollectAndCount(env.c.States(context.Background()))
	for _, id := range []string{"1", "2"} {
		if n := env.sim.Calls(simulator.GreenAPI, id); n != 1 {
			t.Errorf("instance %s removed and added again: called %d times, want 1", id, n)
		}
	}
	// Another identity (another id_instance) is another instance.
	if n := env.sim.Calls(simulator.GreenAPI, "3"); n != 1 {
		t.Errorf("new instance called %d times, want 1", n)
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

// TestCollectorReaddedDuringACallSharesIt: an instance removed while its
// call is in flight and added again at once must not get a second call
// beside the first (two calls within the provider's one per second).
func TestCollectorReaddedDuringACallSharesIt(t *testing.T) {
	env := newTestEnv(t, Options{MinInterval: time.Minute})
	slow := env.add(simulator.GreenAPI, "slow", "1", simulator.Behaviour{State: "authorized", Latency: 500 * time.Millisecond})
	other := env.add(simulator.GreenAPI, "other", "2", simulator.Behaviour{State: "authorized"})
	env.load(t, slow, other)
	done := make(chan struct{})
	go func() {
		defer close(done)
		testutil.CollectAndCount(env.c.States(context.Background()))
	}()
	for env.sim.Calls(simulator.GreenAPI, "1") == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	env.load(t, other)
	env.load(t, slow, other)
	testutil.CollectAndCount(env.c.States(context.Background()))
	<-done
	if sp := env.sim.Spacing(simulator.GreenAPI, "1"); sp.Calls != 1 {
		t.Errorf("%d calls to the re-added instance (smallest gap %v), want 1", sp.Calls, sp.MinGap)
	}
}
