// Package collector asks WhatsApp API providers for the state of their
// instances and exposes it, with the health of those calls, as Prometheus
// metrics. Each provider's client is in a file of its own.
package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Options tune the collector.
type Options struct {
	// Concurrency is how many calls run at once, across all scrapes.
	Concurrency int
	// MinInterval is how long a result is shared with later scrapes: two
	// Prometheus servers scraping together cause one call, not two.
	MinInterval time.Duration
	// UserAgent is sent with every call.
	UserAgent string
	// Notifications is set when the notification receiver (Webhooks)
	// serves: the metrics then say where each state came from.
	Notifications bool
	// MessagesQueue is whether an instance whose provider can read its
	// outgoing queue does so when its configuration does not say.
	MessagesQueue bool
}

// Collector holds the configured instances and refreshes their states.
// Refresh and RefreshInstance return what a scrape exposes of them;
// ProviderMetrics are the metrics of the exporter as a whole, to register
// once.
type Collector struct {
	logger  *slog.Logger
	opts    Options
	metrics *providerMetrics
	sched   *scheduler

	// applyMu serialises changes of the targets: reloads and listings
	// that found other instances.
	applyMu    sync.Mutex
	configured []config.Instance

	mu       sync.RWMutex
	targets  []*target
	byName   map[string]*target
	byID     map[string][]*target // by provider and ID, for notifications
	accounts []*account
	memories map[string]*memory // by instance identity, see config.Common.Identity
	clients  clientPool
	receiver receiver
}

// New returns a collector with no instances; call Update to set them and
// Close to stop its workers. A nil logger discards.
func New(logger *slog.Logger, opts Options) *Collector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts.Concurrency = max(opts.Concurrency, 1)
	c := &Collector{logger: logger, opts: opts, metrics: newProviderMetrics()}
	c.sched = newScheduler(opts.Concurrency, c.call)
	return c
}

// Close stops the accounts' refreshes, and the workers once their calls
// end.
func (c *Collector) Close() {
	c.applyMu.Lock() // an Update starts its accounts under it
	c.mu.RLock()
	for _, a := range c.accounts {
		a.stop()
	}
	c.mu.RUnlock()
	c.applyMu.Unlock()
	c.sched.close()
}

// ProviderMetrics are the latency of each provider and the state of the
// call queue.
func (c *Collector) ProviderMetrics() prometheus.Collector {
	queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "whatsapp_exporter_calls_queued",
		Help: "Calls to provider APIs waiting for one of the --api.concurrency slots.",
	}, func() float64 { q, _ := c.sched.counts(); return float64(q) })
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "whatsapp_exporter_calls_in_flight",
		Help: "Calls to provider APIs under way.",
	}, func() float64 { _, f := c.sched.counts(); return float64(f) })
	instances := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "whatsapp_exporter_instances",
		Help: "Instances in the configuration.",
	}, func() float64 { c.mu.RLock(); defer c.mu.RUnlock(); return float64(len(c.targets)) })
	cs := collectors{c.metrics.duration, queued, inFlight, instances, accountMetrics{c}}
	if c.opts.Notifications {
		cs = append(cs, c.metrics.notifications)
	}
	return cs
}

// collectors is several collectors as one.
type collectors []prometheus.Collector

func (cs collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

func (cs collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}

// target is one instance, configured or found by an account.
type target struct {
	provider *Provider
	name     string
	labels   string // provider="…",name="…", escaped for the text format
	timeout  time.Duration
	spec     config.Spec
	client   Client
	http     *http.Client // shared with the instances of the same settings
	logger   *slog.Logger
	mem      *memory
	stats    *instanceStats // kept across reloads by provider and name
	// queue reads the instance's outgoing queue; nil when it does not
	// watch it.
	queue queueReader
	// foundBy is the account whose listing found this instance; nil for
	// a configured one. listed is set when that listing carries the
	// instance's live state: the listing is then its state request.
	foundBy *account
	listed  bool
}

// memory is what the exporter remembers of an upstream instance between
// scrapes: its last result, how long that result stands (MinInterval or a
// Retry-After) and its place in the scheduler. It belongs to the
// instance's identity, not to its settings, so that a reload changing a
// timeout neither calls at once nor forgets a Retry-After.
type memory struct {
	// current is the target the next call uses: the latest settings of
	// this identity, or nil once it is no longer configured. For an
	// account's listing, account is set instead.
	current atomic.Pointer[target]
	account atomic.Pointer[account]

	mu        sync.Mutex
	last      outcome
	updated   time.Time // end of the last call or notification; zero before the first
	since     time.Time // when last's state and up began
	freshTill time.Time
	// called is when the last call started, heldTill the end of the last
	// Retry-After: a notification makes the result due for a call, but
	// not before these allow.
	called, heldTill time.Time
	// disconnect is the named reason of the instance's last
	// disconnection, while it has not been seen working since.
	disconnect string
	// asOf is the time last's state was true at: the start of the call
	// that brought it, or the notification's time. notified is set while
	// it came from a notification, sent at notifiedAt by the provider's
	// clock (see notify in webhook.go).
	asOf       time.Time
	notified   bool
	notifiedAt time.Time
	// queue is what the instance remembers of its outgoing queue
	// (queue.go).
	queue queueMemory

	// Owned by the scheduler, under its lock.
	done     chan struct{} // closed when the queued or running call ends
	priority time.Time     // updated, when queued
}

type outcome struct {
	state  string // a state of the provider, or StateUnknown
	up     bool
	reason string // why !up
	// working is set when state is the provider's working state, which
	// ends the last disconnection; disconnect names that disconnection
	// when the answer tells it.
	working    bool
	disconnect string
}

// freshness returns when the memory was last updated and whether its
// result still stands at now.
func (m *memory) freshness(now time.Time) (updated time.Time, fresh bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.updated, now.Before(m.freshTill)
}

// result is what a scrape exposes of a memory.
type result struct {
	o outcome
	// updated is when o came (zero before the first call ended), since
	// since when its state and up have been so.
	updated, since time.Time
	// notified is set when the state came from a notification.
	notified bool
	queue    queueResult
	// disconnect is the reason of the last disconnection, "" when
	// unknown or when the instance has been working since.
	disconnect string
}

func (m *memory) result() result {
	m.mu.Lock()
	defer m.mu.Unlock()
	return result{o: m.last, updated: m.updated, since: m.since, notified: m.notified, queue: m.queue.result(), disconnect: m.disconnect}
}

// noteDisconnect takes what an outcome says of the last disconnection.
// Under m.mu.
func (m *memory) noteDisconnect(o outcome) {
	switch {
	case o.working:
		m.disconnect = ""
	case o.disconnect != "":
		m.disconnect = o.disconnect
	}
}

// disconnected records the reason of the last disconnection, which a
// listing gives apart from the state, unless the instance is working.
func (m *memory) disconnected(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.last.working {
		m.disconnect = reason
	}
}

// hold keeps m from being called before until (a Retry-After).
func (m *memory) hold(until time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.holdLocked(until)
}

// holdLocked is hold under m.mu.
func (m *memory) holdLocked(until time.Time) {
	m.heldTill = maxTime(m.heldTill, until)
	m.freshTill = maxTime(m.freshTill, until)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Update replaces the configuration. An instance whose configuration did
// not change keeps its client; every instance keeps the memory of its
// identity (result, Retry-After, queued call) and the call counts of its
// name; an account keeps its last listing. An instance an account's last
// listing holds under the name of a configured one makes the
// configuration fail.
func (c *Collector) Update(cfg *config.Config) error {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	c.mu.RLock()
	oldAccounts := c.accounts
	pool := c.clients.renew()
	c.mu.RUnlock()

	byIdentity := map[string]*account{}
	for _, a := range oldAccounts {
		byIdentity[a.spec.Account().Identity()] = a
	}
	var accounts, started []*account
	for _, acct := range cfg.Accounts {
		old := byIdentity[acct.Spec.Account().Identity()]
		if old != nil && reflect.DeepEqual(old.spec, acct.Spec) {
			pool.keep(old.spec.Account().HTTPClientConfig, old.http)
			accounts = append(accounts, old)
			continue
		}
		a, err := c.newAccount(acct, old, pool)
		if err != nil {
			pool.discard()
			return fmt.Errorf("account %q: %w", acct.Name(), err)
		}
		accounts = append(accounts, a)
		started = append(started, a)
	}
	if err := c.apply(cfg.Instances, accounts, pool, true); err != nil {
		return err
	}
	c.configured = cfg.Instances
	for _, a := range oldAccounts {
		if !slices.Contains(accounts, a) {
			a.stop()
			if a.mem.account.Load() == a {
				a.mem.account.Store(nil)
			}
		}
	}
	for _, a := range started {
		c.startAccount(a)
	}
	return nil
}

// rebuild applies the accounts' listings after one of them changed.
func (c *Collector) rebuild() {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	c.mu.RLock()
	accounts := c.accounts
	pool := c.clients.renew()
	c.mu.RUnlock()
	if err := c.apply(c.configured, accounts, pool, false); err != nil {
		c.logger.Error("Cannot watch the instances the accounts list", "err", err)
	}
}

// apply makes targets of the configured instances and of those the
// accounts list. strict makes an account's instance with the name of a
// configured one an error rather than a skipped instance.
func (c *Collector) apply(configured []config.Instance, accounts []*account, pool *clientPoolUpdate, strict bool) error {
	taken := make(map[string]bool, len(configured))
	for _, inst := range configured {
		taken[inst.Name()] = true
	}
	if strict {
		for _, a := range accounts {
			if name := a.takes(taken); name != "" {
				pool.discard()
				return fmt.Errorf("instance %q: account %q lists an instance of that name; names must be unique (set name_prefix or a filter on the account)", name, a.name)
			}
		}
	}
	configuredIDs := make(map[string]bool, len(configured))
	for _, inst := range configured {
		configuredIDs[inst.Spec.Base().Identity()] = true
	}
	discovered, foundBy := c.discovered(accounts, taken, configuredIDs)
	instances := append(slices.Clip(configured), discovered...)

	c.mu.RLock()
	old := c.byName
	oldMemories := c.memories
	c.mu.RUnlock()
	memories := make(map[string]*memory, len(instances))
	targets := make([]*target, 0, len(instances))
	byName := make(map[string]*target, len(instances))
	for _, inst := range instances {
		id := inst.Spec.Base().Identity()
		mem, ok := memories[id]
		if !ok {
			if mem, ok = oldMemories[id]; !ok {
				mem = &memory{}
			}
			memories[id] = mem
		}
		prev := old[inst.Name()]
		f := foundBy[inst.Name()]
		if prev != nil && prev.mem == mem && prev.foundBy == f.account && prev.listed == f.listed && reflect.DeepEqual(prev.spec, inst.Spec) {
			pool.keep(prev.spec.Base().HTTPClientConfig, prev.http)
			targets = append(targets, prev)
			byName[prev.name] = prev
			continue
		}
		// An instance whose state comes with its account's listing
		// counts that listing as its call, under the listing's method.
		p := providers[inst.Provider()]
		if f.listed {
			p = f.account.callsAs
		}
		qs, ok := inst.Spec.(queueSpec)
		watchesQueue := ok && qs.watchesQueue(c.opts.MessagesQueue)
		if watchesQueue {
			p = p.withQueue
		}
		stats := newInstanceStats(p)
		if prev != nil && prev.provider.Name == inst.Provider() && slices.Equal(prev.stats.methods, p.Methods) {
			stats = prev.stats
		}
		t, err := c.newTarget(inst, mem, stats, pool)
		if err != nil {
			pool.discard()
			return fmt.Errorf("instance %q: %w", inst.Name(), err)
		}
		t.foundBy, t.listed = f.account, f.listed
		if watchesQueue {
			t.queue, _ = t.client.(queueReader)
		}
		targets = append(targets, t)
		byName[t.name] = t
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range targets {
		t.mem.current.Store(t)
	}
	// An instance removed and added again, by one reload or the next, is
	// still the same upstream instance: keep the memories that still hold
	// a result or a call.
	now := time.Now()
	for id, m := range oldMemories {
		if _, ok := memories[id]; ok {
			continue
		}
		m.current.Store(nil)
		if _, fresh := m.freshness(now); fresh || c.sched.pending(m) {
			memories[id] = m
		}
	}
	byID := make(map[string][]*target, len(targets))
	for _, t := range targets {
		key := t.provider.Name + "\x00" + t.spec.Base().ID()
		byID[key] = append(byID[key], t)
	}
	c.targets, c.byName, c.byID, c.memories, c.accounts = targets, byName, byID, memories, accounts
	c.clients = pool.commit()
	return nil
}

func (c *Collector) newTarget(inst config.Instance, mem *memory, stats *instanceStats, pool *clientPoolUpdate) (*target, error) {
	base := inst.Spec.Base()
	p, ok := providers[base.Provider]
	if !ok {
		return nil, fmt.Errorf("unknown provider %q", base.Provider)
	}
	hc, err := pool.get(base.HTTPClientConfig)
	if err != nil {
		return nil, err
	}
	logger := c.logger.With("provider", p.Name, "name", base.Name)
	api := &API{client: hc, userAgent: c.opts.UserAgent, logger: logger, metrics: c.metrics.observer(p.Name, stats)}
	client, err := p.NewClient(inst.Spec, api)
	if err != nil {
		return nil, err
	}
	return &target{
		provider: p,
		name:     base.Name,
		labels:   `provider="` + escapeLabel(p.Name) + `",name="` + escapeLabel(base.Name) + `"`,
		timeout:  time.Duration(base.Timeout),
		spec:     inst.Spec,
		client:   client,
		http:     hc,
		logger:   logger,
		mem:      mem,
		stats:    stats,
	}, nil
}

// InstanceInfo names an instance the collector watches.
type InstanceInfo struct {
	Provider, Name string
	// Account is the account that found it; empty for a configured one.
	Account string
	// Spec is its configuration; secrets marshal as <secret>.
	Spec config.Spec
}

// Instances lists the instances the collector watches: the configured ones
// and those the accounts found, in that order.
func (c *Collector) Instances() []InstanceInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]InstanceInfo, 0, len(c.targets))
	for _, t := range c.targets {
		info := InstanceInfo{Provider: t.provider.Name, Name: t.name, Spec: t.spec}
		if t.foundBy != nil {
			info.Account = t.foundBy.name
		}
		out = append(out, info)
	}
	return out
}

// Scrape is what one scrape exposes: the instances it concerns, with
// their last results, and how many of them it could not refresh in time.
type Scrape struct {
	targets       []*target
	notifications bool
	// Unrefreshed are the instances whose call did not end before the
	// scrape's deadline: they are exposed with their previous result, or
	// not at all before their first.
	Unrefreshed int
}

// Refresh has every instance whose result is no longer fresh called, and
// waits for those calls until ctx ends.
func (c *Collector) Refresh(ctx context.Context) *Scrape {
	c.mu.RLock()
	targets := c.targets
	c.mu.RUnlock()
	return c.refresh(ctx, targets)
}

// ErrUnknownInstance is returned by RefreshInstance for a name that is not
// configured.
var ErrUnknownInstance = errors.New("no instance of that name is configured")

// RefreshInstance is Refresh for one instance, by name.
func (c *Collector) RefreshInstance(ctx context.Context, name string) (*Scrape, error) {
	c.mu.RLock()
	t, ok := c.byName[name]
	c.mu.RUnlock()
	if !ok {
		return nil, ErrUnknownInstance
	}
	return c.refresh(ctx, []*target{t}), nil
}

func (c *Collector) refresh(ctx context.Context, targets []*target) *Scrape {
	now := time.Now()
	var waits []<-chan struct{}
	for _, t := range targets {
		m := t.mem
		if t.listed {
			m = t.foundBy.mem // the listing is its state request
		}
		if done := c.sched.request(m, now); done != nil {
			waits = append(waits, done)
		}
	}
	s := &Scrape{targets: targets, notifications: c.opts.Notifications}
	for i, done := range waits {
		select {
		case <-done:
			continue
		case <-ctx.Done():
		}
		for _, d := range waits[i:] {
			select {
			case <-d:
			default:
				s.Unrefreshed++
			}
		}
		break
	}
	return s
}

// call makes m's call: an account's listing, or a state call with the
// latest settings of m's identity, bounded by that instance's timeout
// alone.
func (c *Collector) call(m *memory) {
	if a := m.account.Load(); a != nil {
		c.listAccount(a)
		return
	}
	t := m.current.Load()
	if t == nil {
		return // removed while queued
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	start := time.Now()
	raw, err := t.client.State(ctx)
	now := time.Now()
	o := t.outcomeOf(raw, err)
	hold := c.opts.MinInterval
	detail := ""
	var e *Error
	if errors.As(err, &e) {
		detail = e.Error()
		hold = max(hold, e.RetryAfter)
	}
	m.record(t.logger, o, detail, start, now, hold, "State request failing")
	if e != nil && e.RetryAfter > 0 {
		m.hold(now.Add(e.RetryAfter))
	}
	if t.queue != nil {
		readQueue(t, m, err)
	}
}

// outcomeOf reads a state request's result.
func (t *target) outcomeOf(raw string, err error) outcome {
	var e *Error
	switch {
	case errors.As(err, &e):
		return outcome{state: StateUnknown, reason: e.Reason}
	case err != nil:
		return outcome{state: StateUnknown, reason: ReasonBadResponse}
	case raw == StateUnknown, raw == "":
		// The call worked but the provider gave no state (e.g. Evolution
		// API for an instance that is not loaded).
		return outcome{state: StateUnknown, up: true}
	case slices.Contains(t.provider.States, raw):
		return outcome{state: raw, up: true, working: raw == t.provider.Working}
	}
	t.logger.Warn("Provider reported a state the exporter does not know; exposing it as unknown", "raw_state", shorten(snippet([]byte(raw)), 100))
	return outcome{state: StateUnknown, up: true}
}

// record stores the result of a call that started at started and ended
// at now, and logs transitions, so that a lasting failure is logged once
// rather than at every scrape; failing is the message of a failure. A
// notification sent after the call started is newer than its result:
// the call then gives only whatsapp_up and the schedule.
func (m *memory) record(logger *slog.Logger, o outcome, detail string, started, now time.Time, hold time.Duration, failing string) {
	m.mu.Lock()
	m.freshTill = now.Add(hold)
	m.called = started
	if m.notified && started.Before(m.asOf) {
		// whatsapp_up is still the call's.
		if m.last.up != o.up {
			m.since = now
		}
		m.last.up, m.last.reason = o.up, o.reason
		m.mu.Unlock()
		return
	}
	prev, had := m.last, !m.updated.IsZero()
	if !had || prev.state != o.state || prev.up != o.up {
		m.since = now
	}
	m.last, m.updated, m.asOf, m.notified = o, now, started, false
	m.noteDisconnect(o)
	m.mu.Unlock()

	switch {
	case had && prev.state == o.state && prev.up == o.up && prev.reason == o.reason:
	case !o.up:
		logger.Warn(failing, "reason", o.reason, "err", detail)
	case had && !prev.up:
		logger.Info("Recovered", "state", o.state)
	case prev.state != o.state:
		logger.Info("State changed", "state", o.state)
	}
}

// escapeLabel escapes a label value for the text exposition format.
func escapeLabel(v string) string {
	return labelEscaper.Replace(v)
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
