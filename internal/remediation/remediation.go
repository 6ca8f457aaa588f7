// Package remediation carries out what a provider recommends doing to an
// instance when an alert fires: GREEN-API's reboot of an instance stuck in
// "starting", then a state request again after a wait. It acts for
// Alertmanager (the webhook receiver in webhook.go) and for the
// status page's Reboot button, through the same guards: the configuration
// must allow the action, at most one action per instance per window, the
// provider's rate limit, a fleet brake, and a dry run.
package remediation

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/lograte"
)

// Actions.
const ActionReboot = "reboot"

// Results of a request (the result label).
const (
	ResultDone   = "done"
	ResultDryRun = "dry_run"
	ResultHeld   = "held"
	ResultFailed = "failed"
)

// Reasons a request was held (the reason label with result "held").
const (
	ReasonWindow       = "window"        // the instance was acted on within the window
	ReasonBrake        = "brake"         // the fleet brake of its provider holds
	ReasonStateChanged = "state_changed" // a fresh state request found a state not to act on
	ReasonNotEnabled   = "not_enabled"   // no remediation section, the provider has no such action, or reboot_states leaves the state out
	ReasonRateLimited  = "rate_limited"  // the provider's rate limit holds calls to the instance
	// ReasonUnknownInstance: no instance of that provider and name is
	// watched. Never a label value (the name came from outside).
	ReasonUnknownInstance = "unknown_instance"
	// ReasonOtherReplica: another replica of --alertmanager.peers owns
	// the instance. Never a label value of actions_total (every replica
	// would carry series for every instance).
	ReasonOtherReplica = "other_replica"
	// ReasonNotDone is a failed action that the collector could not
	// classify (the provider answered that it did not reboot, the call
	// was cut short).
	ReasonNotDone = collector.ReasonNotDone
)

// Statuses of an instance's last action (the status label of
// whatsapp_remediation_status).
const (
	StatusWaiting     = "waiting"      // done; the re-check is due
	StatusRecovered   = "recovered"    // the re-check found another state
	StatusUnchanged   = "unchanged"    // the re-check found the same state
	StatusCheckFailed = "check_failed" // the re-check's state request failed
	StatusFailed      = "failed"       // the action failed
	StatusDryRun      = "dry_run"      // decided, not made
)

// statuses are the values of whatsapp_remediation_status' status label.
var statuses = []string{StatusWaiting, StatusRecovered, StatusUnchanged, StatusCheckFailed, StatusFailed, StatusDryRun}

// Sources of a Request.
const (
	SourceAlertmanager = "alertmanager"
	SourceStatusPage   = "status_page"
)

// Request asks for an action on one instance.
type Request struct {
	Provider, Name string
	Action         string
	// Source says who asks: "alertmanager" or "status_page".
	Source string
}

// Result is what became of a Request.
type Result struct {
	Result string // one of the Result* constants
	// Reason is why it was held or failed; empty otherwise.
	Reason string
	// State is the state the instance was in when it was decided.
	State string
}

// Record is an instance's last action.
type Record struct {
	Action, Result, Reason, Status string
	// State is the state the action was for; At when it was made,
	// Rechecked when its re-check ended (zero before).
	State         string
	At, Rechecked time.Time
}

// instances is what the engine asks of the collector; an interface so
// that the guards can be tested against a stand-in.
type instances interface {
	Instances() []collector.InstanceInfo
	Status(name string) (collector.InstanceStatus, bool)
	Check(ctx context.Context, name string) (collector.InstanceStatus, error)
	Reboot(ctx context.Context, name string) error
}

// timer is a scheduled re-check.
type timer interface{ Stop() bool }

// clock is the engine's time: real in production, driven by tests.
type clock struct {
	now       func() time.Time
	afterFunc func(d time.Duration, f func()) timer
}

var realClock = clock{
	now:       time.Now,
	afterFunc: func(d time.Duration, f func()) timer { return time.AfterFunc(d, f) },
}

// callTimeout bounds one state request or reboot made for a decision. It
// is not the request's context: Alertmanager hanging up must not cut a
// reboot off half-way.
const callTimeout = 30 * time.Second

// fleetTTL is how long the count of each provider's instances is reused.
const fleetTTL = 10 * time.Second

// pruneEvery is how often the memory of instances no longer watched is
// dropped.
const pruneEvery = time.Minute

// Engine decides and makes the actions.
type Engine struct {
	logger *slog.Logger
	c      instances
	clock  clock

	cfg    atomic.Pointer[config.Remediation] // nil: not enabled
	token  atomic.Pointer[string]             // Alertmanager's bearer token
	served atomic.Bool
	owner  atomic.Pointer[Owner]

	// ctx ends at Close: the re-checks and the calls under way stop.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	unknownLog *lograte.Limiter

	mu        sync.Mutex
	closed    bool
	insts     map[string]*instance // by name
	brakes    map[string]*brake    // by provider
	rechecks  map[recheckKey]float64
	lastPrune time.Time
	// fleet counts the instances of each provider, for the brake's
	// share, at fleetAt: counted again every fleetTTL at most, not at
	// every request of a storm of 10 000.
	fleet   map[string]int
	fleetAt time.Time
}

// instance is the engine's memory of one instance: created at its first
// request, dropped once it is no longer watched and its last action is
// older than the window.
type instance struct {
	provider string
	// lock is held while a request for the instance is decided: two at
	// once make one action.
	lock chan struct{}
	// counts are actions_total's series of the instance.
	counts map[countKey]float64
	// last is the last action (done, dry_run, failed), lastMade the time
	// of the last done or dry_run.
	last     Record
	hasLast  bool
	lastMade time.Time
	recheck  timer
}

type countKey struct{ action, result, reason string }

type recheckKey struct{ provider, action, outcome string }

// brake is one provider's fleet brake.
type brake struct {
	acted []time.Time // actions within the brake's window, oldest first
	until time.Time   // engaged until then
}

// New returns an engine with no configuration: Enabled is false until
// Update gives it a remediation section.
func New(logger *slog.Logger, c *collector.Collector) *Engine {
	return newEngine(logger, c, realClock)
}

func newEngine(logger *slog.Logger, c instances, clk clock) *Engine {
	ctx, cancel := context.WithCancel(context.Background())
	return &Engine{
		logger:     logger,
		c:          c,
		clock:      clk,
		ctx:        ctx,
		cancel:     cancel,
		unknownLog: lograte.New(5, time.Minute),
		insts:      map[string]*instance{},
		brakes:     map[string]*brake{},
		rechecks:   map[recheckKey]float64{},
	}
}

// Update takes a newly loaded configuration. The memory of past actions
// (the window, the brake) is kept.
func (e *Engine) Update(cfg *config.Config) {
	var rm *config.Remediation
	if cfg.Remediation != nil {
		c := *cfg.Remediation
		c.RebootStates = slices.Clone(c.RebootStates)
		rm = &c
	}
	e.cfg.Store(rm)
	tok := cfg.Alertmanager.Token()
	e.token.Store(&tok)
}

// Enabled says whether the configuration has a remediation section.
func (e *Engine) Enabled() bool { return e.cfg.Load() != nil }

// DryRun says whether the configuration's remediation is a dry run.
func (e *Engine) DryRun() bool {
	rm := e.cfg.Load()
	return rm != nil && rm.DryRun
}

// MarkServed says that Alertmanager's receiver is served
// (--alertmanager.listen-address): whatsapp_remediation_enabled is 1 only
// then.
func (e *Engine) MarkServed() { e.served.Store(true) }

// Close stops the re-checks under way.
func (e *Engine) Close() {
	e.mu.Lock()
	e.closed = true
	for _, in := range e.insts {
		if in.recheck != nil && in.recheck.Stop() {
			e.wg.Done() // it will not run
		}
	}
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// Act decides on r and, when the guards allow, makes the action.
func (e *Engine) Act(ctx context.Context, r Request) Result {
	rm := e.cfg.Load()
	st, known := e.c.Status(r.Name)
	if !known || st.Provider != r.Provider {
		return Result{Result: ResultHeld, Reason: ReasonUnknownInstance}
	}
	if o := e.owner.Load(); o != nil && !o.Owns(r.Name) {
		return Result{Result: ResultHeld, Reason: ReasonOtherReplica, State: st.State}
	}
	if rm == nil || r.Action != ActionReboot || !st.CanReboot {
		return e.held(r, ReasonNotEnabled, st.State)
	}
	in := e.instance(r)
	select {
	case in.lock <- struct{}{}:
	case <-ctx.Done():
		// Another request for the instance is being decided and will
		// act if anything is to be done.
		return e.held(r, ReasonWindow, st.State)
	}
	defer func() { <-in.lock }()

	now := e.clock.now()
	e.mu.Lock()
	inWindow := in.hasLast && now.Sub(in.last.At) < time.Duration(rm.Window)
	braked := e.brakeEngaged(r.Provider, now, rm)
	e.mu.Unlock()
	// The cheap guards go before the state request: Alertmanager resends
	// every alert of a group at each group_interval and repeat_interval,
	// and a resend is not worth a call to the provider.
	if inWindow {
		return e.held(r, ReasonWindow, st.State)
	}
	if braked {
		return e.held(r, ReasonBrake, st.State)
	}

	callCtx, cancel := e.callContext()
	defer cancel()
	fresh, err := e.c.Check(callCtx, r.Name)
	if err != nil {
		if errors.Is(err, collector.ErrUnknownInstance) {
			return Result{Result: ResultHeld, Reason: ReasonUnknownInstance}
		}
		if errors.Is(err, collector.ErrHeld) {
			return e.held(r, ReasonRateLimited, st.State)
		}
		return e.failedCheck(r, failureReason(err), st.State)
	}
	if !fresh.Up {
		return e.failedCheck(r, collectorReason(fresh.Reason), fresh.State)
	}
	if !slices.Contains(rm.RebootStates, fresh.State) {
		// A state a reboot may be configured for, but is not
		// (yellowCard by default), is the configuration's choice; any
		// other is an alert that no longer holds.
		if slices.Contains(config.RebootableStates, fresh.State) {
			return e.held(r, ReasonNotEnabled, fresh.State)
		}
		return e.held(r, ReasonStateChanged, fresh.State)
	}

	// The brake and the window are reserved before the call, under the
	// engine's lock, so that concurrent requests for other instances of
	// the provider see this one.
	now = e.clock.now()
	e.mu.Lock()
	if e.brakeFull(r.Provider, now, rm) {
		e.mu.Unlock()
		return e.held(r, ReasonBrake, fresh.State)
	}
	b := e.brakes[r.Provider]
	b.acted = append(b.acted, now)
	prev, hadPrev := in.last, in.hasLast
	in.last = Record{Action: r.Action, State: fresh.State, At: now, Result: ResultDryRun, Status: StatusDryRun}
	in.hasLast = true
	e.mu.Unlock()

	if rm.DryRun {
		e.mu.Lock()
		in.lastMade = now
		in.counts[countKey{r.Action, ResultDryRun, ""}]++
		e.mu.Unlock()
		e.logger.Info("Remediation dry run: would reboot the instance", "provider", r.Provider, "name", r.Name, "state", fresh.State, "source", r.Source)
		return Result{Result: ResultDryRun, State: fresh.State}
	}

	err = e.c.Reboot(callCtx, r.Name)
	switch {
	case err == nil:
		e.mu.Lock()
		in.last.Result, in.last.Status = ResultDone, StatusWaiting
		in.lastMade = now
		in.counts[countKey{r.Action, ResultDone, ""}]++
		e.scheduleRecheck(r, in, now, time.Duration(rm.RecheckAfter))
		e.mu.Unlock()
		e.logger.Info("Remediation: rebooted the instance", "provider", r.Provider, "name", r.Name, "state", fresh.State, "source", r.Source, "recheck_after", time.Duration(rm.RecheckAfter))
		return Result{Result: ResultDone, State: fresh.State}
	case errors.Is(err, collector.ErrHeld), errors.Is(err, collector.ErrNotSupported), errors.Is(err, collector.ErrUnknownInstance):
		// No call was made: the window and the brake's place are given
		// back.
		e.mu.Lock()
		in.last, in.hasLast = prev, hadPrev
		if i := slices.Index(b.acted, now); i >= 0 {
			b.acted = slices.Delete(b.acted, i, i+1)
		}
		e.mu.Unlock()
		switch {
		case errors.Is(err, collector.ErrHeld):
			return e.held(r, ReasonRateLimited, fresh.State)
		case errors.Is(err, collector.ErrNotSupported):
			return e.held(r, ReasonNotEnabled, fresh.State)
		}
		return Result{Result: ResultHeld, Reason: ReasonUnknownInstance}
	}
	// The call may have reached the provider (a timeout): the window
	// stays taken, so that Alertmanager's next resend does not reboot
	// the instance again.
	reason := failureReason(err)
	e.mu.Lock()
	in.last.Result, in.last.Reason, in.last.Status = ResultFailed, reason, StatusFailed
	in.counts[countKey{r.Action, ResultFailed, reason}]++
	e.mu.Unlock()
	e.logger.Warn("Remediation: the reboot failed", "provider", r.Provider, "name", r.Name, "state", fresh.State, "source", r.Source, "reason", reason, "err", err)
	return Result{Result: ResultFailed, Reason: reason, State: fresh.State}
}

// callContext bounds a call made for a decision; Close cuts it short.
func (e *Engine) callContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(e.ctx, callTimeout)
}

// instance is the memory of r's instance, made at its first request.
func (e *Engine) instance(r Request) *instance {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pruneLocked()
	in, ok := e.insts[r.Name]
	if !ok || in.provider != r.Provider {
		in = &instance{provider: r.Provider, lock: make(chan struct{}, 1), counts: map[countKey]float64{}}
		e.insts[r.Name] = in
	}
	return in
}

// held counts and returns a held result.
func (e *Engine) held(r Request, reason, state string) Result {
	e.count(r, ResultHeld, reason)
	// Alertmanager resends every alert of a group: the holds that repeat
	// at each resend (the window, the brake, which says itself once, no
	// remediation) stay at debug level, lest a storm of 10 000 fill the
	// log.
	level := slog.LevelInfo
	switch reason {
	case ReasonWindow, ReasonBrake, ReasonNotEnabled:
		level = slog.LevelDebug
	}
	e.logger.Log(context.Background(), level, "Remediation held", "provider", r.Provider, "name", r.Name, "reason", reason, "state", state, "source", r.Source)
	return Result{Result: ResultHeld, Reason: reason, State: state}
}

// failedCheck counts and returns the failure of the state request made
// before acting: nothing was done.
func (e *Engine) failedCheck(r Request, reason, state string) Result {
	e.count(r, ResultFailed, reason)
	e.logger.Warn("Remediation: the state request before acting failed; nothing done", "provider", r.Provider, "name", r.Name, "reason", reason, "source", r.Source)
	return Result{Result: ResultFailed, Reason: reason, State: state}
}

func (e *Engine) count(r Request, result, reason string) {
	in := e.instance(r)
	e.mu.Lock()
	// reboot is the only action: r.Action, which came from outside,
	// never becomes a label value.
	in.counts[countKey{ActionReboot, result, reason}]++
	e.mu.Unlock()
}

// brakeEngaged says whether provider's brake holds at now, releasing it
// when its window has passed.
func (e *Engine) brakeEngaged(provider string, now time.Time, rm *config.Remediation) bool {
	b := e.brake(provider, now, rm)
	if now.Before(b.until) {
		// Each request held extends the brake: it is released once a
		// whole window has passed without one.
		b.until = now.Add(time.Duration(rm.Brake.Window))
		return true
	}
	return false
}

// brakeFull says whether one more action of provider would be more than
// the brake allows, engaging it when so.
func (e *Engine) brakeFull(provider string, now time.Time, rm *config.Remediation) bool {
	if e.brakeEngaged(provider, now, rm) {
		return true
	}
	b := e.brakes[provider] // made and pruned by brakeEngaged
	if e.fleet == nil || now.Sub(e.fleetAt) >= fleetTTL || now.Before(e.fleetAt) {
		e.fleet, e.fleetAt = countFleet(e.c.Instances()), now
	}
	n := e.fleet[provider]
	limit := max(rm.Brake.MinActions, int(math.Floor(rm.Brake.MaxShare*float64(n))))
	if len(b.acted) < limit {
		return false
	}
	b.until = now.Add(time.Duration(rm.Brake.Window))
	e.logger.Warn("Remediation brake engaged: too many instances of one provider need an action at once; holding its actions and letting the alerts page",
		"provider", provider, "actions", len(b.acted), "limit", limit, "instances", n, "window", rm.Brake.Window)
	return true
}

// brake is provider's brake, with the actions older than its window
// forgotten.
func (e *Engine) brake(provider string, now time.Time, rm *config.Remediation) *brake {
	b, ok := e.brakes[provider]
	if !ok {
		b = &brake{}
		e.brakes[provider] = b
	}
	cut := now.Add(-time.Duration(rm.Brake.Window))
	i := 0
	for i < len(b.acted) && !b.acted[i].After(cut) {
		i++
	}
	b.acted = b.acted[i:]
	return b
}

// countFleet counts the instances of each provider.
func countFleet(all []collector.InstanceInfo) map[string]int {
	n := map[string]int{}
	for _, in := range all {
		n[in.Provider]++
	}
	return n
}

// scheduleRecheck requests the instance's state again after d, by
// itself: not waiting for a scrape. Called with e.mu held.
func (e *Engine) scheduleRecheck(r Request, in *instance, at time.Time, d time.Duration) {
	if e.closed {
		return
	}
	if in.recheck != nil && in.recheck.Stop() {
		e.wg.Done() // replaced: it will not run
	}
	e.wg.Add(1)
	in.recheck = e.clock.afterFunc(d, func() {
		defer e.wg.Done()
		e.recheck(r, in, at)
	})
}

// recheck requests the state of the instance rebooted at at, and records
// what became of the reboot.
func (e *Engine) recheck(r Request, in *instance, at time.Time) {
	ctx, cancel := e.callContext()
	defer cancel()
	st, err := e.c.Check(ctx, r.Name)
	status := StatusUnchanged
	e.mu.Lock()
	before := in.last.State
	e.mu.Unlock()
	switch {
	case err != nil || !st.Up:
		status = StatusCheckFailed
	case st.State != before:
		status = StatusRecovered
	}
	e.mu.Lock()
	if in.last.At.Equal(at) {
		in.last.Status = status
		in.last.Rechecked = e.clock.now()
	}
	e.rechecks[recheckKey{r.Provider, r.Action, status}]++
	e.mu.Unlock()
	args := []any{"provider", r.Provider, "name", r.Name, "outcome", status, "state_before", before, "state", st.State}
	if err != nil {
		args = append(args, "err", err)
	}
	if status == StatusRecovered {
		e.logger.Info("Remediation re-check: the instance left the state it was rebooted in", args...)
	} else {
		e.logger.Warn("Remediation re-check: the reboot did not help yet", args...)
	}
}

// Last is the last action on the instance, if any.
func (e *Engine) Last(provider, name string) (Record, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	in, ok := e.insts[name]
	if !ok || in.provider != provider || !in.hasLast {
		return Record{}, false
	}
	return in.last, true
}

// pruneLocked forgets, at most once per pruneEvery, the instances no
// longer watched whose last action is older than the window, so that the
// memory follows the instances watched (10 000 and more) and not every
// name ever seen. Called with e.mu held.
func (e *Engine) pruneLocked() {
	now := e.clock.now()
	if now.Sub(e.lastPrune) < pruneEvery {
		return
	}
	e.lastPrune = now
	window := time.Duration(config.DefaultRemediationWindow)
	if rm := e.cfg.Load(); rm != nil {
		window = time.Duration(rm.Window)
	}
	for name, in := range e.insts {
		if in.hasLast && now.Sub(in.last.At) < window || len(in.lock) > 0 {
			continue
		}
		if st, ok := e.c.Status(name); ok && st.Provider == in.provider {
			continue
		}
		delete(e.insts, name)
	}
}

// failureReason is the reason label of a failed call.
func failureReason(err error) string {
	var ce *collector.Error
	if errors.As(err, &ce) {
		return collectorReason(ce.Reason)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return collector.ReasonTimeout
	}
	return ReasonNotDone
}

// collectorReason bounds a collector's reason to its known set.
func collectorReason(reason string) string {
	if slices.Contains(collector.Reasons[:], reason) {
		return reason
	}
	return ReasonNotDone
}

// Handler is Alertmanager's webhook receiver.
func (e *Engine) Handler() http.Handler { return http.HandlerFunc(e.serveWebhook) }

// Collector is the engine's metrics.
func (e *Engine) Collector() prometheus.Collector { return (*metrics)(e) }
