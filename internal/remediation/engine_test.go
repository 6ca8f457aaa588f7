package remediation

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// fakeFleet stands in for the collector: instances with a state, and
// the calls made to them.
type fakeFleet struct {
	mu      sync.Mutex
	insts   map[string]*fakeInst
	order   []string
	checks  map[string]int
	reboots map[string]int
	// rebootGate, when set, holds every reboot until it is closed;
	// rebooting is told of each reboot that waits.
	rebootGate chan struct{}
	rebooting  chan string
}

type fakeInst struct {
	provider, state string
	up              bool
	reason          string
	canReboot       bool
	checkErr        error
	rebootErr       error
	// afterReboot is the state a reboot leaves.
	afterReboot string
}

func newFakeFleet() *fakeFleet {
	return &fakeFleet{insts: map[string]*fakeInst{}, checks: map[string]int{}, reboots: map[string]int{}}
}

func (f *fakeFleet) add(provider, name, state string) *fakeInst {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := &fakeInst{provider: provider, state: state, up: true, canReboot: true, afterReboot: state}
	f.insts[name] = in
	f.order = append(f.order, name)
	return in
}

func (f *fakeFleet) remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.insts, name)
	f.order = slices.DeleteFunc(f.order, func(n string) bool { return n == name })
}

func (f *fakeFleet) set(name string, change func(*fakeInst)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f.insts[name])
}

func (f *fakeFleet) status(name string, in *fakeInst) collector.InstanceStatus {
	return collector.InstanceStatus{Provider: in.provider, Name: name, State: in.state, Up: in.up, Reason: in.reason, CanReboot: in.canReboot}
}

func (f *fakeFleet) Instances() []collector.InstanceInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []collector.InstanceInfo
	for _, n := range f.order {
		out = append(out, collector.InstanceInfo{Provider: f.insts[n].provider, Name: n})
	}
	return out
}

func (f *fakeFleet) Status(name string) (collector.InstanceStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.insts[name]
	if !ok {
		return collector.InstanceStatus{}, false
	}
	return f.status(name, in), true
}

func (f *fakeFleet) Check(_ context.Context, name string) (collector.InstanceStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.insts[name]
	if !ok {
		return collector.InstanceStatus{}, collector.ErrUnknownInstance
	}
	f.checks[name]++
	if in.checkErr != nil {
		return f.status(name, in), in.checkErr
	}
	return f.status(name, in), nil
}

func (f *fakeFleet) Reboot(ctx context.Context, name string) error {
	f.mu.Lock()
	gate, rebooting := f.rebootGate, f.rebooting
	f.mu.Unlock()
	if gate != nil {
		rebooting <- name
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.insts[name]
	if !ok {
		return collector.ErrUnknownInstance
	}
	if !in.canReboot {
		return collector.ErrNotSupported
	}
	if in.rebootErr != nil {
		return in.rebootErr
	}
	f.reboots[name]++
	in.state = in.afterReboot
	return nil
}

func (f *fakeFleet) calls(name string) (checks, reboots int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checks[name], f.reboots[name]
}

func (f *fakeFleet) totalReboots() (n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.reboots {
		n += v
	}
	return n
}

// fakeClock is a clock that moves only when the test says; its timers
// fire in Advance, in the test's goroutine.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) afterFunc(d time.Duration, f func()) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.t.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock by d and runs the timers that come due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	var due []*fakeTimer
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool {
		if t.stopped {
			return true
		}
		if !t.at.After(c.t) {
			t.stopped = true // fired: Stop says so
			due = append(due, t)
			return true
		}
		return false
	})
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

func (c *fakeClock) clock() clock { return clock{now: c.now, afterFunc: c.afterFunc} }

// testEngine is an engine on a fake fleet and clock, with the
// configuration cfg (YAML of the remediation and alertmanager sections).
func testEngine(t *testing.T, cfg string) (*Engine, *fakeFleet, *fakeClock, *testlog.Buffer) {
	t.Helper()
	logger, logs := testlog.New()
	f := newFakeFleet()
	clk := &fakeClock{t: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	e := newEngine(logger, f, clk.clock())
	t.Cleanup(e.Close)
	update(t, e, cfg)
	return e, f, clk, logs
}

func update(t *testing.T, e *Engine, cfg string) {
	t.Helper()
	c, err := config.Load([]byte(cfg+"instances: [{name: x, provider: greenapi, id_instance: 1101000001, api_token: t}]\n"), ".", config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.Update(c)
}

const (
	gr        = "greenapi"
	remedCfg  = "remediation: {}\n"
	reqReboot = ActionReboot
)

func reboot(name string) Request {
	return Request{Provider: gr, Name: name, Action: reqReboot, Source: SourceAlertmanager}
}

func want(t *testing.T, got Result, result, reason string) {
	t.Helper()
	if got.Result != result || got.Reason != reason {
		t.Fatalf("result %s/%s, want %s/%s", got.Result, got.Reason, result, reason)
	}
}

// counts gathers whatsapp_remediation_actions_total of name by
// result/reason.
func counts(t *testing.T, e *Engine, name string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range gather(t, e)["whatsapp_remediation_actions_total"].GetMetric() {
		if label(m, "name") == name {
			out[label(m, "result")+"/"+label(m, "reason")] = m.GetCounter().GetValue()
		}
	}
	return out
}

func gather(t *testing.T, e *Engine) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func exposition(t *testing.T, e *Engine) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func TestNotEnabled(t *testing.T) {
	e, f, _, _ := testEngine(t, "")
	f.add(gr, "a", "starting")
	want(t, e.Act(t.Context(), reboot("a")), ResultHeld, ReasonNotEnabled)
	update(t, e, remedCfg)
	// An action the engine does not know.
	want(t, e.Act(t.Context(), Request{Provider: gr, Name: "a", Action: "restart"}), ResultHeld, ReasonNotEnabled)
	// A provider without a reboot.
	f.set("a", func(in *fakeInst) { in.canReboot = false })
	want(t, e.Act(t.Context(), reboot("a")), ResultHeld, ReasonNotEnabled)
	if c, r := f.calls("a"); c+r != 0 {
		t.Errorf("%d state requests and %d reboots, want none", c, r)
	}
	if got := counts(t, e, "a"); got["held/not_enabled"] != 3 || len(got) != 1 {
		t.Errorf("actions_total %v, want held/not_enabled 3", got)
	}
}

// TestUnknownInstance: a name no instance has, or the name of an instance
// of another provider, is refused with no call and no series.
func TestUnknownInstance(t *testing.T) {
	e, f, _, _ := testEngine(t, remedCfg)
	f.add(gr, "a", "starting")
	want(t, e.Act(t.Context(), reboot("nope")), ResultHeld, ReasonUnknownInstance)
	want(t, e.Act(t.Context(), Request{Provider: "evolution", Name: "a", Action: ActionReboot}), ResultHeld, ReasonUnknownInstance)
	if c, r := f.calls("a"); c+r != 0 {
		t.Errorf("%d state requests and %d reboots, want none", c, r)
	}
	if mf := gather(t, e)["whatsapp_remediation_actions_total"]; len(mf.GetMetric()) != 0 {
		t.Errorf("series for unknown names: %v", mf)
	}
}

// TestFreshStateFirst: the state is requested before acting, and only a
// state of reboot_states is acted on.
func TestFreshStateFirst(t *testing.T) {
	e, f, _, _ := testEngine(t, remedCfg)
	f.add(gr, "a", "starting")
	f.add(gr, "b", "yellowCard")
	f.add(gr, "c", "starting")
	f.add(gr, "d", "starting")
	f.add(gr, "e", "starting")
	// The alert was for starting, the instance is authorized by now.
	f.set("a", func(in *fakeInst) { in.state = "authorized" })
	want(t, e.Act(t.Context(), reboot("a")), ResultHeld, ReasonStateChanged)
	// yellowCard is opt-in: left out of reboot_states, it is not
	// enabled.
	want(t, e.Act(t.Context(), reboot("b")), ResultHeld, ReasonNotEnabled)
	// The state request fails: nothing done, the reason is the
	// collector's.
	f.set("c", func(in *fakeInst) { in.checkErr = &collector.Error{Reason: collector.ReasonTimeout} })
	want(t, e.Act(t.Context(), reboot("c")), ResultFailed, collector.ReasonTimeout)
	f.set("d", func(in *fakeInst) { in.up, in.reason = false, collector.ReasonUnauthorized })
	want(t, e.Act(t.Context(), reboot("d")), ResultFailed, collector.ReasonUnauthorized)
	// The provider's rate limit holds the instance's calls.
	f.set("e", func(in *fakeInst) { in.checkErr = &collector.HeldError{Until: time.Now().Add(time.Minute)} })
	want(t, e.Act(t.Context(), reboot("e")), ResultHeld, ReasonRateLimited)
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		if c, r := f.calls(n); c != 1 || r != 0 {
			t.Errorf("%s: %d state requests and %d reboots, want 1 and 0", n, c, r)
		}
	}
	// With yellowCard opted in, b is rebooted.
	update(t, e, "remediation: {reboot_states: [starting, yellowCard]}\n")
	want(t, e.Act(t.Context(), reboot("b")), ResultDone, "")
}

// TestWindow: one action per instance per window, whatever Alertmanager
// resends, across reloads; the next window acts again.
func TestWindow(t *testing.T) {
	e, f, clk, _ := testEngine(t, "remediation: {window: 30m}\n")
	f.add(gr, "a", "starting")
	want(t, e.Act(t.Context(), reboot("a")), ResultDone, "")
	for range 5 { // repeat_interval resends
		clk.Advance(5 * time.Minute)
		want(t, e.Act(t.Context(), reboot("a")), ResultHeld, ReasonWindow)
	}
	update(t, e, "remediation: {window: 30m, dry_run: false}\n")
	clk.Advance(4*time.Minute + 59*time.Second)
	want(t, e.Act(t.Context(), reboot("a")), ResultHeld, ReasonWindow)
	if c, r := f.calls("a"); c != 2 || r != 1 {
		t.Errorf("%d state requests and %d reboots, want 2 (before, and the re-check) and 1: a resend within the window costs no call", c, r)
	}
	clk.Advance(time.Second)
	want(t, e.Act(t.Context(), reboot("a")), ResultDone, "")
	if got := counts(t, e, "a"); got["done/"] != 2 || got["held/window"] != 6 {
		t.Errorf("actions_total %v, want done 2, held/window 6", got)
	}
}

// TestConcurrentRequestsOneAction: two requests for one instance at once
// make one reboot.
func TestConcurrentRequestsOneAction(t *testing.T) {
	e, f, _, _ := testEngine(t, remedCfg)
	f.add(gr, "a", "starting")
	f.rebootGate, f.rebooting = make(chan struct{}), make(chan string, 2)
	results := make(chan Result, 2)
	go func() { results <- e.Act(context.Background(), reboot("a")) }()
	<-f.rebooting // the first is rebooting; the second comes now
	go func() { results <- e.Act(context.Background(), reboot("a")) }()
	close(f.rebootGate)
	got := []string{(<-results).Result, (<-results).Result}
	slices.Sort(got)
	if !slices.Equal(got, []string{ResultDone, ResultHeld}) {
		t.Errorf("results %v, want one done and one held", got)
	}
	if _, r := f.calls("a"); r != 1 {
		t.Errorf("%d reboots, want 1", r)
	}
}

// TestBrake: ten instances of one provider need a reboot at once: three
// are rebooted (min_actions; 10% of 10 is 1), the rest held, the brake
// said once, and released a brake window after the last request it held.
func TestBrake(t *testing.T) {
	e, f, clk, logs := testEngine(t, "remediation: {window: 1h, brake: {max_share: 0.1, min_actions: 3, window: 15m}}\n")
	for i := range 10 {
		f.add(gr, fmt.Sprint("i", i), "starting")
	}
	f.add("evolution", "other", "starting")
	var done, held int
	for i := range 10 {
		switch r := e.Act(t.Context(), reboot(fmt.Sprint("i", i))); {
		case r.Result == ResultDone:
			done++
		case r.Result == ResultHeld && r.Reason == ReasonBrake:
			held++
		default:
			t.Fatalf("i%d: %+v", i, r)
		}
	}
	if done != 3 || held != 7 || f.totalReboots() != 3 {
		t.Fatalf("%d done, %d held, %d reboots; want 3, 7, 3", done, held, f.totalReboots())
	}
	if n := strings.Count(logs.String(), "brake engaged"); n != 1 {
		t.Errorf("the brake was logged %d times, want once:\n%s", n, logs)
	}
	brakeValue := func(provider string) float64 {
		for _, m := range gather(t, e)["whatsapp_remediation_brake_engaged"].GetMetric() {
			if label(m, "provider") == provider {
				return m.GetGauge().GetValue()
			}
		}
		return -1
	}
	if v := brakeValue(gr); v != 1 {
		t.Errorf("brake_engaged{provider=greenapi} = %v, want 1", v)
	}
	// Another provider is not held.
	want(t, e.Act(t.Context(), Request{Provider: "evolution", Name: "other", Action: ActionReboot}), ResultDone, "")
	// A resend while the brake holds costs no state request.
	c0, _ := f.calls("i9")
	clk.Advance(10 * time.Minute)
	want(t, e.Act(t.Context(), reboot("i9")), ResultHeld, ReasonBrake)
	if c, _ := f.calls("i9"); c != c0 {
		t.Errorf("a held resend made a state request")
	}
	// Released once a brake window has passed without a held request.
	clk.Advance(15 * time.Minute)
	if v := brakeValue(gr); v != 0 {
		t.Errorf("brake_engaged = %v after its window, want 0", v)
	}
	want(t, e.Act(t.Context(), reboot("i9")), ResultDone, "")
}

// TestDryRun decides, logs and counts, and makes no reboot; it takes the
// window like an action.
func TestDryRun(t *testing.T) {
	e, f, clk, logs := testEngine(t, "remediation: {dry_run: true}\n")
	f.add(gr, "a", "starting")
	want(t, e.Act(t.Context(), reboot("a")), ResultDryRun, "")
	want(t, e.Act(t.Context(), reboot("a")), ResultHeld, ReasonWindow)
	if _, r := f.calls("a"); r != 0 {
		t.Errorf("%d reboots in a dry run", r)
	}
	if !strings.Contains(logs.String(), "dry run") {
		t.Errorf("the dry run is not logged:\n%s", logs)
	}
	rec, ok := e.Last(gr, "a")
	if !ok || rec.Result != ResultDryRun || rec.Status != StatusDryRun || !rec.At.Equal(clk.now()) {
		t.Errorf("Last = %+v %v", rec, ok)
	}
	mfs := gather(t, e)
	if v := mfs["whatsapp_remediation_dry_run"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("dry_run gauge %v", v)
	}
	if n := len(mfs["whatsapp_remediation_last_action_timestamp_seconds"].GetMetric()); n != 1 {
		t.Errorf("%d last_action series, want 1", n)
	}
}

// TestRebootFails: a reboot the provider refused takes the window (it
// may have happened: a timeout); one held by the rate limit made no call
// and gives it back.
func TestRebootFails(t *testing.T) {
	e, f, _, _ := testEngine(t, remedCfg)
	f.add(gr, "a", "starting")
	f.add(gr, "b", "starting")
	f.add(gr, "c", "starting")
	f.set("a", func(in *fakeInst) { in.rebootErr = &collector.Error{Reason: collector.ReasonServerError} })
	want(t, e.Act(t.Context(), reboot("a")), ResultFailed, collector.ReasonServerError)
	want(t, e.Act(t.Context(), reboot("a")), ResultHeld, ReasonWindow)
	if rec, _ := e.Last(gr, "a"); rec.Status != StatusFailed || rec.Reason != collector.ReasonServerError {
		t.Errorf("Last = %+v", rec)
	}
	f.set("b", func(in *fakeInst) { in.rebootErr = &collector.HeldError{Until: time.Now()} })
	want(t, e.Act(t.Context(), reboot("b")), ResultHeld, ReasonRateLimited)
	f.set("b", func(in *fakeInst) { in.rebootErr = nil })
	want(t, e.Act(t.Context(), reboot("b")), ResultDone, "")
	// Anything else the collector returns is a bounded reason.
	f.set("c", func(in *fakeInst) { in.rebootErr = fmt.Errorf("isReboot false") })
	want(t, e.Act(t.Context(), reboot("c")), ResultFailed, ReasonNotDone)
}

// TestRecheck: a reboot's re-check comes recheck_after later, by itself,
// and says what became of it.
func TestRecheck(t *testing.T) {
	e, f, clk, _ := testEngine(t, "remediation: {recheck_after: 2m}\n")
	f.add(gr, "recovers", "starting").afterReboot = "authorized"
	f.add(gr, "stays", "starting")
	f.add(gr, "fails", "starting")
	for _, n := range []string{"recovers", "stays", "fails"} {
		want(t, e.Act(t.Context(), reboot(n)), ResultDone, "")
		if rec, _ := e.Last(gr, n); rec.Status != StatusWaiting {
			t.Errorf("%s: status %s, want waiting", n, rec.Status)
		}
	}
	f.set("fails", func(in *fakeInst) { in.checkErr = &collector.Error{Reason: collector.ReasonNetwork} })
	clk.Advance(2*time.Minute - time.Nanosecond)
	if c, _ := f.calls("stays"); c != 1 {
		t.Fatalf("re-checked before recheck_after: %d state requests", c)
	}
	clk.Advance(time.Nanosecond)
	for n, status := range map[string]string{"recovers": StatusRecovered, "stays": StatusUnchanged, "fails": StatusCheckFailed} {
		rec, _ := e.Last(gr, n)
		if rec.Status != status || !rec.Rechecked.Equal(clk.now()) {
			t.Errorf("%s: %+v, want status %s", n, rec, status)
		}
		if c, _ := f.calls(n); c != 2 {
			t.Errorf("%s: %d state requests, want 2", n, c)
		}
	}
	got := map[string]float64{}
	for _, m := range gather(t, e)["whatsapp_remediation_rechecks_total"].GetMetric() {
		got[label(m, "outcome")] = m.GetCounter().GetValue()
	}
	if got[StatusRecovered] != 1 || got[StatusUnchanged] != 1 || got[StatusCheckFailed] != 1 {
		t.Errorf("rechecks_total %v", got)
	}
	// The status is shown for the window, then no more.
	status := func() (n int, current string) {
		for _, m := range gather(t, e)["whatsapp_remediation_status"].GetMetric() {
			if label(m, "name") == "stays" {
				n++
				if m.GetGauge().GetValue() == 1 {
					current = label(m, "status")
				}
			}
		}
		return n, current
	}
	if n, cur := status(); n != len(statuses) || cur != StatusUnchanged {
		t.Errorf("status series %d, current %q", n, cur)
	}
	clk.Advance(config.DefaultRemediationWindow)
	if n, _ := status(); n != 0 {
		t.Errorf("%d status series after the window", n)
	}
}

// TestCloseStopsRechecks: no re-check runs after Close.
func TestCloseStopsRechecks(t *testing.T) {
	e, f, clk, _ := testEngine(t, remedCfg)
	f.add(gr, "a", "starting")
	want(t, e.Act(t.Context(), reboot("a")), ResultDone, "")
	e.Close()
	clk.Advance(time.Hour)
	if c, _ := f.calls("a"); c != 1 {
		t.Errorf("%d state requests, want no re-check after Close", c)
	}
}

// TestMemoryBounded: the memory of instances no longer watched is dropped
// once their last action is older than the window; 10 000 instances cost
// 10 000 entries at most.
func TestMemoryBounded(t *testing.T) {
	e, f, clk, _ := testEngine(t, "remediation: {window: 30m, brake: {max_share: 1}}\n")
	const n = 10000
	for i := range n {
		f.add(gr, fmt.Sprint("i", i), "starting")
	}
	for i := range n {
		want(t, e.Act(t.Context(), reboot(fmt.Sprint("i", i))), ResultDone, "")
	}
	if len(e.insts) != n {
		t.Fatalf("%d entries, want %d", len(e.insts), n)
	}
	for i := range n / 2 {
		f.remove(fmt.Sprint("i", i))
	}
	clk.Advance(31 * time.Minute)
	f.add(gr, "new", "starting")
	want(t, e.Act(t.Context(), reboot("new")), ResultDone, "")
	if len(e.insts) != n/2+1 {
		t.Errorf("%d entries, want %d", len(e.insts), n/2+1)
	}
}

// TestMetricsPassPromtool: every series the engine can make, checked by
// promtool.
func TestMetricsPassPromtool(t *testing.T) {
	e, f, _, _ := testEngine(t, "remediation: {brake: {min_actions: 1, max_share: 0}}\n")
	e.MarkServed()
	f.add(gr, "a", "starting")
	f.add(gr, "b", "starting")
	want(t, e.Act(t.Context(), reboot("a")), ResultDone, "")
	want(t, e.Act(t.Context(), reboot("a")), ResultHeld, ReasonWindow)
	want(t, e.Act(t.Context(), reboot("b")), ResultHeld, ReasonBrake)
	text := exposition(t, e)
	for _, name := range []string{"whatsapp_remediation_enabled 1", "whatsapp_remediation_dry_run 0", "whatsapp_remediation_actions_total{", "whatsapp_remediation_last_action_timestamp_seconds{", "whatsapp_remediation_status{", "whatsapp_remediation_brake_engaged{provider=\"greenapi\"} 1"} {
		if !strings.Contains(text, name) {
			t.Errorf("no %s in\n%s", name, text)
		}
	}
	promtool := testtool.Require(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestOwner: every instance has exactly one owner among the peers, the
// same whichever replica asks, and the owners share the fleet.
func TestOwner(t *testing.T) {
	peers := []string{"exporter-0", "exporter-1"}
	a, err := NewOwner("exporter-0", peers)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewOwner("exporter-1", peers)
	owned := 0
	for i := range 1000 {
		name := fmt.Sprint("instance-", i)
		if a.Owns(name) == b.Owns(name) {
			t.Fatalf("%s: owned by both or neither", name)
		}
		if a.Owns(name) {
			owned++
		}
	}
	if owned < 400 || owned > 600 {
		t.Errorf("exporter-0 owns %d of 1000", owned)
	}
	for _, bad := range [][]string{{"exporter-1"}, {"exporter-0", "exporter-0"}, {"exporter-0", ""}} {
		if _, err := NewOwner("exporter-0", bad); err == nil {
			t.Errorf("peers %q accepted", bad)
		}
	}
	e, f, _, _ := testEngine(t, "remediation: {brake: {max_share: 1}}\n")
	e.SetOwner(b)
	for i := range 20 {
		f.add(gr, fmt.Sprint("instance-", i), "starting")
	}
	for i := range 20 {
		name := fmt.Sprint("instance-", i)
		r := e.Act(t.Context(), reboot(name))
		if a.Owns(name) {
			want(t, r, ResultHeld, ReasonOtherReplica)
		} else {
			want(t, r, ResultDone, "")
		}
	}
}

// BenchmarkMessageOf10000: one Alertmanager message asking to reboot
// 10 000 instances of one provider, decided through the guards (the brake
// holds all but 1 000 after the first), with the fake fleet: the
// engine's own cost per alert.
func BenchmarkMessageOf10000(b *testing.B) {
	logger, _ := testlog.New()
	for b.Loop() {
		f := newFakeFleet()
		for i := range 10000 {
			f.add(gr, fmt.Sprint("i", i), "starting")
		}
		clk := &fakeClock{t: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
		e := newEngine(logger, f, clk.clock())
		c, _ := config.Load([]byte("remediation: {}\ninstances: [{name: x, provider: greenapi, id_instance: 1101000001, api_token: t}]\n"), ".", config.Options{})
		e.Update(c)
		for i := range 10000 {
			e.Act(context.Background(), reboot(fmt.Sprint("i", i)))
		}
		e.Close()
	}
}
