package collector

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

func TestCollectorStatesAndUp(t *testing.T) {
	t.Parallel()
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
	env.scrape(t, want, "whatsapp_instance_state", "whatsapp_up")

	// The unknown raw value is logged at warn, and only there.
	if !strings.Contains(env.logs.String(), `level=WARN msg="Provider reported a state the exporter does not know; exposing it as unknown" provider=greenapi name=new raw_state="\"suspended\""`) {
		t.Errorf("no warning for the unknown state in the logs:\n%s", env.logs.String())
	}
}

func TestCollectorAllProviders(t *testing.T) {
	t.Parallel()
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
	env.scrape(t, want, "whatsapp_instance_state", "whatsapp_up")
	if got := errorCount(t, env.c, "gone", "instanceState", ReasonClientError); got != 1 {
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
	t.Parallel()
	env := newTestEnv(t, Options{})
	env.load(t,
		env.add(simulator.GreenAPI, "ok", "1", simulator.Behaviour{State: "authorized"}),
		env.add(simulator.GreenAPI, "limited", "2", simulator.Behaviour{Fault: simulator.FaultRateLimited}),
	)
	// Before any call, every instance's call count exists at zero, and
	// no failure yet.
	mfs, err := parseText(exposition(t, env.c))
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == errorsFamily.name && len(mf.GetMetric()) > 0 {
			t.Errorf("error series before any call: %v", mf)
		}
		if mf.GetName() == durationFamily.name && len(mf.GetMetric()) != 2 {
			t.Errorf("%d duration series before any call, want 2", len(mf.GetMetric()))
		}
		// The failures of every reason are there at 0 before the first,
		// so that increase() counts the first.
		if mf.GetName() == failuresFamily.name {
			if n := len(mf.GetMetric()); n != 2 {
				t.Errorf("%d failure series before any call, want 2", n)
			}
			for _, m := range mf.GetMetric() {
				if v := m.GetCounter().GetValue(); v != 0 {
					t.Errorf("failures %v before any call: %v", m.GetLabel(), v)
				}
			}
		}
	}

	scrapeOnce(t, env.c)
	got := exposition(t, env.c)
	for _, want := range []string{
		`whatsapp_api_request_errors_total{provider="greenapi",name="limited",method="getStateInstance",reason="rate_limited"} 1`,
		`whatsapp_api_request_duration_seconds_count{provider="greenapi",name="limited",method="getStateInstance"} 1`,
		`whatsapp_api_request_duration_seconds_count{provider="greenapi",name="ok",method="getStateInstance"} 1`,
		`whatsapp_api_request_failures_total{provider="greenapi",name="limited",method="getStateInstance"} 1`,
		`whatsapp_api_request_failures_total{provider="greenapi",name="ok",method="getStateInstance"} 0`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %s in:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "whatsapp_api_request_errors_total{"); n != 1 {
		t.Errorf("%d error series, want the one reason that happened", n)
	}
	// Each call is in its provider's histogram.
	if c := histogramCount(t, providerMetricsOf(env.c).duration.WithLabelValues("greenapi", "getStateInstance")); c != 2 {
		t.Errorf("whatsapp_provider_request_duration_seconds count %d, want 2", c)
	}
}

func TestCollectorSharesCallsBetweenScrapes(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{MinInterval: time.Minute})
	env.load(t, env.add(simulator.GreenAPI, "shop", "1", simulator.Behaviour{State: "authorized", Latency: 200 * time.Millisecond}))

	// Two HA Prometheus servers, and then some, scrape at the same moment.
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if err := testutil.GatherAndCompare(scrapeOf(env.c, context.Background()),
				strings.NewReader(upHeader+upLine("greenapi", "shop", true)), "whatsapp_up"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// A scrape just after the call finished reuses its result.
	scrapeOnce(t, env.c)
	if n := env.sim.Calls(simulator.GreenAPI, "1"); n != 1 {
		t.Fatalf("simulator saw %d calls, want 1", n)
	}
}

func TestCollectorCallsAgainAfterMinInterval(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{MinInterval: 0})
	env.load(t, env.add(simulator.GreenAPI, "shop", "1", simulator.Behaviour{State: "authorized"}))
	for range 3 {
		scrapeOnce(t, env.c)
	}
	if n := env.sim.Calls(simulator.GreenAPI, "1"); n != 3 {
		t.Fatalf("simulator saw %d calls for 3 sequential scrapes without min interval, want 3", n)
	}
}

func TestCollectorHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{MinInterval: 0})
	env.load(t, env.add(simulator.GreenAPI, "shop", "1", simulator.Behaviour{Fault: simulator.FaultRateLimited, RetryAfter: time.Second}))
	first := time.Now()
	scrapeOnce(t, env.c)
	// Retry the moment Retry-After allows and no sooner.
	waitFor(t, "a call after a 429 with Retry-After: 1", func() bool {
		before := env.sim.Calls(simulator.GreenAPI, "1")
		sent := time.Now()
		scrapeOnce(t, env.c)
		if env.sim.Calls(simulator.GreenAPI, "1") == before {
			return false
		}
		if sent.Sub(first) < time.Second {
			t.Fatalf("called again %v after a 429 with Retry-After: 1", sent.Sub(first))
		}
		return true
	})
}

func TestCollectorRateLimitedScrapesStayDown(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{MinInterval: 0})
	env.load(t, env.add(simulator.GreenAPI, "shop", "1", simulator.Behaviour{Fault: simulator.FaultRateLimited, RetryAfter: time.Minute}))
	for range 3 {
		env.scrape(t, upHeader+upLine("greenapi", "shop", false), "whatsapp_up")
	}
	if n := env.sim.Calls(simulator.GreenAPI, "1"); n != 1 {
		t.Fatalf("%d calls during Retry-After, want 1", n)
	}
}

// TestCollectorSlowInstanceDoesNotDelayOthers: a scrape answers at its
// deadline with what it has; the hung call goes on to its own timeout,
// and the next scrape reports that. The times are those of the fake clock
// of a synctest bubble: a 500 ms deadline, a 2 s timeout.
func TestCollectorSlowInstanceDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := New(discardLogger(), Options{Concurrency: 8, MinInterval: time.Minute})
		defer c.Close()
		p := providerOf("greenapi")
		hung := newLoneTarget(p, "hung", 2*time.Second, slowClient{"authorized", time.Hour})
		shop := newLoneTarget(p, "shop", 2*time.Second, slowClient{"authorized", 0})
		sales := newLoneTarget(p, "sales", 2*time.Second, slowClient{"sleepMode", 0})
		want := stateHeader +
			stateLines("greenapi", "sales", "sleepMode", true) +
			stateLines("greenapi", "shop", "authorized", true) +
			upHeader + upLine("greenapi", "sales", true) + upLine("greenapi", "shop", true) +
			"# HELP " + unrefreshedFamily.name + " " + unrefreshedFamily.help + "\n# TYPE " + unrefreshedFamily.name + " gauge\n" +
			unrefreshedFamily.name + " 1\n"
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		compareScrape(t, refreshTargets(ctx, c, hung, shop, sales), want, "whatsapp_instance_state", "whatsapp_up", unrefreshedFamily.name)
		// The hung call goes on after the scrape's deadline, and ends at
		// its own timeout.
		synctest.Wait()
		if callsIdle(c) {
			t.Fatal("the hung call ended with the scrape")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !callsIdle(c) {
			t.Fatal("the hung call outlived its timeout")
		}
		compareScrape(t, refreshTargets(context.Background(), c, hung, shop, sales),
			upHeader+upLine("greenapi", "hung", false)+upLine("greenapi", "sales", true)+upLine("greenapi", "shop", true), "whatsapp_up")
	})
}

func TestCollectorBoundsConcurrency(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{Concurrency: 2})
	var instances []string
	var want strings.Builder
	want.WriteString(upHeader)
	for i := range 6 {
		instances = append(instances, env.add(simulator.GreenAPI, fmt.Sprintf("i%d", i), fmt.Sprint(i+1), simulator.Behaviour{State: "authorized", Latency: 50 * time.Millisecond}))
		want.WriteString(upLine("greenapi", fmt.Sprintf("i%d", i), true))
	}
	env.load(t, instances...)
	env.scrape(t, want.String(), "whatsapp_up")
	if m := env.maxIn.Load(); m > 2 || m < 1 {
		t.Fatalf("%d calls in flight at once, want at most 2", m)
	}
}

func TestCollectorUpdate(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{MinInterval: time.Minute})
	shop := env.add(simulator.GreenAPI, "shop", "1", simulator.Behaviour{State: "authorized"})
	env.load(t, shop, env.add(simulator.GreenAPI, "old", "2", simulator.Behaviour{State: "authorized"}))
	scrapeOnce(t, env.c)

	env.load(t, shop, env.add(simulator.GreenAPI, "new", "3", simulator.Behaviour{State: "blocked"}))
	env.scrape(t, upHeader+upLine("greenapi", "new", true)+upLine("greenapi", "shop", true), "whatsapp_up")
	// The unchanged instance kept its shared result: no second call.
	if n := env.sim.Calls(simulator.GreenAPI, "1"); n != 1 {
		t.Errorf("unchanged instance called %d times across a reload, want 1", n)
	}
	// The removed instance's metrics are gone.
	if text := exposition(t, env.c); strings.Contains(text, `name="old"`) {
		t.Errorf("the removed instance is still exposed:\n%s", text)
	}
}

// TestCollectorRemovedInstanceStaysRemoved: a call in flight when a reload
// removes its instance must not bring its series back.
func TestCollectorRemovedInstanceStaysRemoved(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{})
	keep := env.add(simulator.GreenAPI, "keep", "1", simulator.Behaviour{State: "authorized"})
	env.load(t, keep, env.add(simulator.GreenAPI, "gone", "2", simulator.Behaviour{State: "authorized"}))
	gone := env.hold(t, greenAPIPath("2"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.c.Refresh(context.Background())
	}()
	waitFor(t, "the call of the instance to remove", func() bool { return gone.arrived.Load() == 1 })
	env.load(t, keep) // while the call of "gone" is in flight
	gone.release()
	<-done
	waitFor(t, "the end of the removed instance's call", func() bool { return callsIdle(env.c) })
	if text := exposition(t, env.c); strings.Contains(text, `name="gone"`) {
		t.Errorf("the removed instance came back:\n%s", text)
	}
}

// TestCollectorSettingChangeKeepsRateLimitMemory: changing an instance's
// settings is no reason to call it before its shared result or its
// Retry-After expires.
func TestCollectorSettingChangeKeepsRateLimitMemory(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{MinInterval: time.Minute})
	instance := func(id, timeout string, b simulator.Behaviour) string {
		return strings.Replace(env.add(simulator.GreenAPI, "i"+id, id, b), "timeout: 2s", "timeout: "+timeout, 1)
	}
	fresh := simulator.Behaviour{State: "authorized"}
	limited := simulator.Behaviour{Fault: simulator.FaultRateLimited, RetryAfter: 2 * time.Minute}
	for k := range 6 {
		timeout := []string{"2s", "3s"}[k%2]
		env.load(t, instance("1", timeout, fresh), instance("2", timeout, limited))
		scrapeOnce(t, env.c)
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
	scrapeOnce(t, env.c)
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

// TestCollectorReaddedDuringACallSharesIt: an instance removed while its
// call is in flight and added again at once must not get a second call
// beside the first (two calls within the provider's one per second).
func TestCollectorReaddedDuringACallSharesIt(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{MinInterval: time.Minute})
	slow := env.add(simulator.GreenAPI, "slow", "1", simulator.Behaviour{State: "authorized"})
	other := env.add(simulator.GreenAPI, "other", "2", simulator.Behaviour{State: "authorized"})
	env.load(t, slow, other)
	held := env.hold(t, greenAPIPath("1"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.c.Refresh(context.Background())
	}()
	waitFor(t, "the call of the instance to re-add", func() bool { return held.arrived.Load() == 1 })
	env.load(t, other)
	env.load(t, slow, other)
	// A scrape while the call is in flight asks for a call of every
	// instance without a fresh result, whether or not it waits for them.
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	env.c.Refresh(expired)
	held.release()
	<-done
	waitFor(t, "the end of the calls", func() bool { return callsIdle(env.c) })
	if sp := env.sim.Spacing(simulator.GreenAPI, "1"); sp.Calls != 1 || held.arrived.Load() != 1 {
		t.Errorf("%d calls to the re-added instance (smallest gap %v), want 1", sp.Calls, sp.MinGap)
	}
}

// deadlineClient records the deadline of each call's context.
type deadlineClient struct{ deadline chan time.Time }

func (d deadlineClient) State(ctx context.Context) (string, error) {
	dl, _ := ctx.Deadline()
	d.deadline <- dl
	return "authorized", nil
}

// TestCallKeepsItsOwnTimeout: a call is bounded by its instance's timeout
// from the moment it starts, not by the deadline of the scrape that asked
// for it, however short: a scrape with a short deadline (a second
// Prometheus, anyone who can reach /metrics) must not turn shared calls
// into timeouts.
func TestCallKeepsItsOwnTimeout(t *testing.T) {
	t.Parallel()
	c := New(discardLogger(), Options{Concurrency: 1})
	defer c.Close()
	rec := deadlineClient{deadline: make(chan time.Time, 1)}
	tg := newLoneTarget(providerOf("greenapi"), "x", time.Minute, rec)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	start := time.Now()
	refreshTargets(ctx, c, tg)
	if dl := <-rec.deadline; dl.Sub(start) < 50*time.Second {
		t.Errorf("the call's deadline is %v after the scrape began, want its own minute", dl.Sub(start))
	}
}

// TestShortScrapesDoNotFailOthers: one client scraping every few
// milliseconds with a tiny timeout must not make the main Prometheus see
// instances down that are not.
func TestShortScrapesDoNotFailOthers(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{MinInterval: 20 * time.Millisecond})
	var instances []string
	var want strings.Builder
	want.WriteString(upHeader)
	for i := range 10 {
		name := fmt.Sprintf("i%d", i)
		instances = append(instances, env.add(simulator.GreenAPI, name, fmt.Sprint(i+1), simulator.Behaviour{State: "authorized", Latency: 100 * time.Millisecond}))
		want.WriteString(upLine("greenapi", name, true))
	}
	env.load(t, instances...)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
			_, _ = scrapeOf(env.c, ctx).Gather()
			cancel()
		}
	})
	for range 5 {
		env.scrape(t, want.String(), "whatsapp_up")
	}
	close(stop)
	wg.Wait()
	for i := range 10 {
		if n := errorCount(t, env.c, fmt.Sprintf("i%d", i), "getStateInstance", ReasonTimeout); n != 0 {
			t.Errorf("instance i%d: %d timeouts", i, n)
		}
	}
}

// TestSlotWaitIsNotATimeout: with one call at a time, the last of five
// instances waits four calls for its slot, longer than its timeout; the
// wait must not count against it. The calls take 200 ms and time out
// after 500 ms of the fake clock of a synctest bubble.
func TestSlotWaitIsNotATimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := New(discardLogger(), Options{Concurrency: 1})
		defer c.Close()
		var names []string
		want := upHeader
		for i := range 5 {
			names = append(names, fmt.Sprintf("i%d", i))
			want += upLine("greenapi", names[i], true)
		}
		targets := newLoneTargets(providerOf("greenapi"), 500*time.Millisecond, slowClient{"authorized", 200 * time.Millisecond}, names...)
		compareScrape(t, refreshTargets(context.Background(), c, targets...), want, "whatsapp_up")
	})
}

// slowClient answers its state after its latency, unless its call's
// context ends first.
type slowClient struct {
	state   string
	latency time.Duration
}

func (s slowClient) State(ctx context.Context) (string, error) {
	select {
	case <-time.After(s.latency):
		return s.state, nil
	case <-ctx.Done():
		return "", newError(ReasonTimeout, "%v", ctx.Err())
	}
}

// TestUnrefreshedInstancesKeepTheirResult: a scrape that cannot refresh
// every instance before its deadline exposes the others with their
// previous result and its time, and says how many.
func TestUnrefreshedInstancesKeepTheirResult(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{Concurrency: 1, MinInterval: 0})
	var instances []string
	for i := range 4 {
		instances = append(instances, env.add(simulator.GreenAPI, fmt.Sprintf("i%d", i), fmt.Sprint(i+1), simulator.Behaviour{State: "authorized"}))
	}
	env.load(t, instances...)
	scrapeOnce(t, env.c)
	before := updateTimes(t, env.c)
	for i := range 4 {
		env.sim.Set(simulator.GreenAPI, fmt.Sprint(i+1), "secret-"+fmt.Sprint(i+1), simulator.Behaviour{State: "blocked"})
	}
	// The scrape's deadline comes while the first of its calls is in
	// flight, held until the test ends.
	held := env.hold(t, "/waInstance")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	scraped := make(chan *Scrape, 1)
	go func() { scraped <- env.c.Refresh(ctx) }()
	waitFor(t, "the scrape's first call", func() bool { return held.arrived.Load() == 1 })
	cancel()
	s := <-scraped
	if s.Unrefreshed != 4 {
		t.Errorf("Unrefreshed = %d, want 4", s.Unrefreshed)
	}
	var b strings.Builder
	if _, err := s.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if !strings.Contains(b.String(), fmt.Sprintf(`whatsapp_instance_state{provider="greenapi",name="i%d",state="authorized"} 1`, i)) {
			t.Errorf("i%d does not keep its previous state:\n%s", i, b.String())
		}
	}
	if after := updateTimes(t, env.c); after != before {
		t.Errorf("update times changed without a refresh: %v, then %v", before, after)
	}
	if !strings.Contains(b.String(), unrefreshedFamily.name+" 4\n") {
		t.Errorf("the scrape does not say it left 4 instances unrefreshed:\n%s", b.String())
	}
}

// updateTimes is every instance's whatsapp_last_update_timestamp_seconds.
func updateTimes(t *testing.T, c *Collector) string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(exposition(t, c), "\n") {
		if strings.HasPrefix(l, updatedFamily.name+"{") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		t.Fatal("no update times")
	}
	return strings.Join(lines, "\n")
}

// TestOldestFirstReachesEveryInstance: with more instances than a scrape
// can call, each scrape goes on where the previous stopped: the instance
// refreshed longest ago goes first, no instance is called twice before
// every other was called once, and the calls a scrape could not wait for
// go on after it, so the whole fleet is refreshed within one pass of the
// workers (instances × latency / concurrency).
func TestOldestFirstReachesEveryInstance(t *testing.T) {
	t.Parallel()
	const n = 12
	env := newTestEnv(t, Options{Concurrency: 2, MinInterval: 0})
	var instances []string
	for i := range n {
		instances = append(instances, env.add(simulator.GreenAPI, fmt.Sprintf("i%02d", i), fmt.Sprint(i+1), simulator.Behaviour{State: "authorized", Latency: 50 * time.Millisecond}))
	}
	env.load(t, instances...)
	counts := func() (lo, hi int64) {
		lo = 1 << 62
		for i := range n {
			c := env.sim.Calls(simulator.GreenAPI, fmt.Sprint(i+1))
			lo, hi = min(lo, c), max(hi, c)
		}
		return lo, hi
	}
	// Scrapes far too short for the fleet.
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, _ = scrapeOf(env.c, ctx).Gather()
		cancel()
		if lo, hi := counts(); hi-lo > 1 {
			t.Fatalf("calls per instance range from %d to %d: an instance was called twice before another once", lo, hi)
		}
	}
	// Without further scrapes, the pass the last one asked for completes.
	waitFor(t, "a call to every instance", func() bool { lo, _ := counts(); return lo >= 1 })
	if lo, hi := counts(); hi-lo > 1 {
		t.Errorf("calls per instance range from %d to %d", lo, hi)
	}
}

func TestRefreshInstance(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{MinInterval: time.Minute})
	env.load(t,
		env.add(simulator.GreenAPI, "shop", "1", simulator.Behaviour{State: "yellowCard"}),
		env.add(simulator.GreenAPI, "other", "2", simulator.Behaviour{State: "authorized"}),
	)
	if _, err := env.c.RefreshInstance(context.Background(), "nope"); err != ErrUnknownInstance {
		t.Errorf("RefreshInstance(nope) = %v, want ErrUnknownInstance", err)
	}
	s, err := env.c.RefreshInstance(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if _, err := s.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `whatsapp_instance_state{provider="greenapi",name="shop",state="yellowCard"} 1`) || strings.Contains(b.String(), `name="other"`) {
		t.Errorf("one instance's metrics:\n%s", b.String())
	}
	if env.sim.Calls(simulator.GreenAPI, "2") != 0 || env.sim.Calls(simulator.GreenAPI, "1") != 1 {
		t.Errorf("calls: shop %d, other %d; want only shop's", env.sim.Calls(simulator.GreenAPI, "1"), env.sim.Calls(simulator.GreenAPI, "2"))
	}
}

// TestStateSince: the time an instance entered its state stays while the
// state does, and moves when the state or whatsapp_up changes.
func TestStateSince(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{MinInterval: 0})
	env.load(t, env.add(simulator.GreenAPI, "shop", "1", simulator.Behaviour{State: "authorized"}))
	key := "whatsapp_instance_state_since_timestamp_seconds,name=shop,provider=greenapi"
	since := func() float64 {
		t.Helper()
		values, _ := scrapeValues(t, env.c)
		v, ok := values[key]
		if !ok {
			t.Fatalf("no %s", key)
		}
		return v
	}
	// Rather than wait, each step moves the time the state began a
	// second back, as if a second had gone by: a time that stays is the
	// moved one, a time that moves is the call's, later.
	first := since()
	setStateSinceAgo(t, env.c, "shop", time.Second)
	if again := since(); math.Abs(again-(first-1)) > 1e-6 {
		t.Errorf("since %v with the state unchanged a second after it was %v, want %v", again, first, first-1)
	}
	env.sim.Set(simulator.GreenAPI, "1", "secret-1", simulator.Behaviour{State: "blocked"})
	blocked := since()
	if blocked < first {
		t.Errorf("since %v after a change of state, was %v", blocked, first-1)
	}
	setStateSinceAgo(t, env.c, "shop", time.Second)
	env.sim.Set(simulator.GreenAPI, "1", "secret-1", simulator.Behaviour{Fault: simulator.FaultServerError})
	if failing := since(); failing < blocked {
		t.Errorf("since %v after the calls started failing, was %v", failing, blocked-1)
	}
}
