package collector

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The tests' only way into the collector's internals: the provider
// registry (registry.go), the private fields and methods of Collector,
// the snapshot, target, memory, account and the receiver (collector.go,
// snapshot.go, memory.go, accounts.go, webhook.go), and the scheduler
// (scheduler.go). No other test file names
// them, so that a change of those internals is adapted here alone. Beyond
// this file the tests use the package's API, and the unexported helpers
// of the other files (api.go, metrics.go, clients.go, queue.go,
// exposition.go, reasons.go, redirect.go), which their own tests
// exercise.

// The provider registry.

// providerOf is the registered provider of that name; nil when none is.
func providerOf(name string) *Provider {
	p, _ := lookup(name)
	return p
}

// methodsOf are the methods an instance of p counts: its state request,
// and its queue request when queue is set and p can read a queue.
func methodsOf(p *Provider, queue bool) *methodSet {
	if queue && p.QueueMethod != "" {
		return p.methods.with(p.QueueMethod)
	}
	return p.methods
}

// listingMethods are what the calls of p's account listings count as.
func listingMethods(p *Provider) *methodSet { return newMethodSet(p.Account.Method) }

// maxUnknownIDsRemembered bounds the unknown instances whose
// notifications the receiver remembers it logged.
const maxUnknownIDsRemembered = maxUnknownRemembered

// webhookTokenOf is the resolved webhook_token of a GREEN-API instance.
func webhookTokenOf(s *GreenAPISpec) string { return s.webhookToken.token }

// The collector's instances.

// targetsOf are the instances c watches, configured first.
func targetsOf(c *Collector) []*target { return c.current().targets }

// targetNamed is the instance of that name; it fails the test when there
// is none.
func targetNamed(t testing.TB, c *Collector, name string) *target {
	t.Helper()
	tg := c.current().byName[name]
	if tg == nil {
		t.Fatalf("no instance %q", name)
	}
	return tg
}

// nameOf, statsOf and httpClientOf are an instance's name, call counts
// and HTTP client.
func nameOf(tg *target) string             { return tg.name }
func statsOf(tg *target) *instanceStats    { return tg.stats }
func httpClientOf(tg *target) *http.Client { return tg.http }

// providerMetricsOf are c's metrics of the providers' calls and of the
// notifications.
func providerMetricsOf(c *Collector) *providerMetrics { return c.metrics }

// clientSettingsCount is how many distinct HTTP settings c keeps clients
// for.
func clientSettingsCount(c *Collector) int { return len(c.current().clients) }

// storedScrape is what a scrape exposes without refreshing anything.
func storedScrape(c *Collector, notifications bool) *Scrape {
	return &Scrape{targets: targetsOf(c), notifications: notifications}
}

// newLoneTarget is an instance of p outside any configuration, calling
// client with its own timeout, with a memory of its own.
func newLoneTarget(p *Provider, name string, timeout time.Duration, client Client) *target {
	return &target{
		provider: p,
		name:     name,
		labels:   `provider="` + escapeLabel(p.Name) + `",name="` + escapeLabel(name) + `"`,
		timeout:  timeout,
		client:   client,
		logger:   slog.New(slog.DiscardHandler),
		mem:      newMemory("lone\x00"+name, nil),
		stats:    newInstanceStats(p.methods),
	}
}

// newLoneTargets are newLoneTarget of each name, with the same client.
func newLoneTargets(p *Provider, timeout time.Duration, client Client, names ...string) []*target {
	var targets []*target
	for _, name := range names {
		targets = append(targets, newLoneTarget(p, name, timeout, client))
	}
	return targets
}

// refreshTargets has c watch the targets given, in place of its
// configuration, and is Refresh for them.
func refreshTargets(ctx context.Context, c *Collector, targets ...*target) *Scrape {
	snap := emptySnapshot()
	for _, tg := range targets {
		snap.targets = append(snap.targets, tg)
		snap.byName[tg.name] = tg
		snap.entries[tg.mem.key] = entry{mem: tg.mem, work: tg}
	}
	c.snap.Store(snap)
	return c.refresh(ctx, targets)
}

// callsIdle reports whether no call is queued or in flight.
func callsIdle(c *Collector) bool {
	q, f := c.sched.counts()
	return q+f == 0
}

// An instance's memory: its last result and its schedule.

// memoryOf is the memory of the named instance.
func memoryOf(t testing.TB, c *Collector, name string) *memory {
	t.Helper()
	return targetNamed(t, c, name).mem
}

// setLastCallAgo moves the named instance's last call d into the past, as
// if that much time had gone by.
func setLastCallAgo(t testing.TB, c *Collector, name string, d time.Duration) {
	t.Helper()
	m := memoryOf(t, c, name)
	m.mu.Lock()
	m.called = time.Now().Add(-d)
	m.mu.Unlock()
}

// setStateSinceAgo moves the time the named instance entered its state d
// further into the past, as if that much time had gone by.
func setStateSinceAgo(t testing.TB, c *Collector, name string, d time.Duration) {
	t.Helper()
	m := memoryOf(t, c, name)
	m.mu.Lock()
	m.since = m.since.Add(-d)
	m.mu.Unlock()
}

// holdUntil keeps the named instance from being called before until, as
// a Retry-After does.
func holdUntil(t testing.TB, c *Collector, name string, until time.Time) {
	t.Helper()
	memoryOf(t, c, name).hold(until)
}

// expireResult makes the named instance's result due for a call.
func expireResult(t testing.TB, c *Collector, name string) {
	t.Helper()
	m := memoryOf(t, c, name)
	m.mu.Lock()
	m.freshTill = time.Time{}
	m.mu.Unlock()
}

// notifyTarget hands an instance a notification received at now.
func notifyTarget(tg *target, n Notification, now time.Time) string { return tg.notify(n, now) }

// recordCall records the result of a call of an instance that started at
// started and ended at now: the state, or no state and the reason of its
// failure; the result stands an hour.
func recordCall(tg *target, state, failure string, started, now time.Time) {
	o := outcome{state: state, up: true}
	if failure != "" {
		o = outcome{state: StateUnknown, reason: failure}
	}
	tg.mem.record(tg, o, "", started, now, time.Hour, "failing")
}

// The notification receiver.

// logUnknownNotification logs a notification for an instance c does not
// watch, as the receiver does.
func logUnknownNotification(c *Collector, provider, id string, now time.Time) {
	c.receiver.logUnknown(c.logger, provider, id, now)
}

// unknownIDsRemembered is how many unknown instances the receiver
// remembers it logged.
func unknownIDsRemembered(c *Collector) int {
	c.receiver.mu.Lock()
	defer c.receiver.mu.Unlock()
	return len(c.receiver.unknownLogged)
}

// Accounts.

// accountsOf are the accounts c lists.
func accountsOf(c *Collector) []*account { return c.current().accounts }

// accountNamed is the account of that name; it fails the test when there
// is none.
func accountNamed(t testing.TB, c *Collector, name string) *account {
	t.Helper()
	for _, a := range accountsOf(c) {
		if a.name == name {
			return a
		}
	}
	t.Fatalf("no account %q", name)
	return nil
}

// accountMetricsOf are the metrics of c's accounts.
func accountMetricsOf(c *Collector) prometheus.Collector {
	return collectors{accountMetrics{c}, accountFailures{c}}
}

// listingDone reports whether a has listed once and has no listing queued
// or in flight.
func listingDone(c *Collector, a *account) bool {
	m := a.state.mem
	m.mu.Lock()
	listed := !m.updated.IsZero()
	m.mu.Unlock()
	return listed && !c.sched.pending(m)
}

// requestListing asks for a's listing as a scrape or its refresh does; it
// reports whether a listing call is then queued or under way.
func requestListing(c *Collector, a *account) bool {
	return c.sched.request(a.state.mem, time.Now()) != nil
}

// listNow makes a list at once, outside the scheduler, and applies the
// accounts' listings, whichever of them came last.
func listNow(c *Collector, a *account) {
	c.list(a)
	c.replan()
}

// ageListing moves the end of a's listing's result d into the past, as if
// that much time had gone by.
func ageListing(a *account, d time.Duration) {
	m := a.state.mem
	m.mu.Lock()
	m.freshTill = m.freshTill.Add(-d)
	m.mu.Unlock()
}

// logTo is a log source that writes to l.
func logTo(l *slog.Logger) logSource { return fixedLogger{l} }

type fixedLogger struct{ l *slog.Logger }

func (f fixedLogger) log() *slog.Logger { return f.l }

func (f fixedLogger) enabled(ctx context.Context, level slog.Level) bool {
	return f.l.Enabled(ctx, level)
}
