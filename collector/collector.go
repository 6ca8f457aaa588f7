// Package collector asks WhatsApp API providers for the state of their
// instances and exposes it, with the health of those calls, as Prometheus
// metrics. Each provider's client is in a file of its own.
package collector

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/lograte"
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

// Collector watches the instances of a configuration and refreshes
// their states.
//
// What it watches is one immutable snapshot (snapshot.go): the targets,
// the accounts and what each found, built off to the side by plan and
// published whole by commit, under applyMu, by Update (a reload) or by
// the planner when a listing changed. Readers (scrapes, notifications,
// the metrics of the accounts) load the current snapshot and never lock
// against a change. What changes between scrapes is kept in memories
// (memory.go), one per upstream call, which the snapshot points at and
// nothing else owns: the scheduler queues memories, and a worker looks
// up in the current snapshot, by the memory's key, what to call.
type Collector struct {
	logger  *slog.Logger
	opts    Options
	metrics *providerMetrics
	sched   *scheduler

	snap atomic.Pointer[snapshot]

	// applyMu serialises plan and commit, and guards what only they
	// touch: the accounts' refresh loops and the configurations the
	// accounts resolved for their listings (account.resolved).
	applyMu sync.Mutex
	loops   map[*account]context.CancelFunc
	closed  bool
	// replans asks the planner to apply the accounts' new listings.
	replans chan chan struct{}
	stopped chan struct{}
	// rowLogs bound the lines about listing rows, by kind: a listing of
	// thousands of rows in conflict must not write thousands of lines.
	rowLogs map[string]*lograte.Limiter

	receiver receiver

	// known is knownSecrets, made once: every API holds it.
	known func() *redactor
}

// New returns a collector with no instances; call Update to set them and
// Close to stop its workers. A nil logger discards.
func New(logger *slog.Logger, opts Options) *Collector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts.Concurrency = max(opts.Concurrency, 1)
	c := &Collector{opts: opts, metrics: newProviderMetrics(),
		loops: map[*account]context.CancelFunc{}, replans: make(chan chan struct{}), stopped: make(chan struct{}),
		rowLogs: map[string]*lograte.Limiter{}}
	for _, kind := range []string{skipConflict, skipMalformed, skipBadName} {
		c.rowLogs[kind] = lograte.New(rowLogBurst, rowLogPeriod)
	}
	// Every line the collector writes hides the secrets it knows.
	c.known = c.knownSecrets
	c.logger = slog.New(&redactingHandler{inner: logger.Handler(), known: c.known})
	c.snap.Store(emptySnapshot())
	c.sched = newScheduler(opts.Concurrency, c.call)
	go c.planner()
	return c
}

// Close stops the accounts' refreshes and the planner, and the workers
// once their calls end.
func (c *Collector) Close() {
	c.applyMu.Lock()
	if !c.closed {
		c.closed = true
		for a, stop := range c.loops {
			stop()
			delete(c.loops, a)
		}
		close(c.stopped)
	}
	c.applyMu.Unlock()
	c.sched.close()
}

// current is the snapshot in use.
func (c *Collector) current() *snapshot { return c.snap.Load() }

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
	}, func() float64 { return float64(len(c.current().targets)) })
	cs := collectors{c.metrics.duration, queued, inFlight, instances, accountMetrics{c}, accountFailures{c}}
	for _, p := range registered() {
		if p.Metrics != nil {
			cs = append(cs, p.Metrics(c))
		}
	}
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
	targets := c.current().targets
	out := make([]InstanceInfo, 0, len(targets))
	for _, t := range targets {
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
	return c.refresh(ctx, c.current().targets)
}

// ErrUnknownInstance is returned by RefreshInstance for a name that is not
// configured.
var ErrUnknownInstance = errors.New("no instance of that name is configured")

// RefreshInstance is Refresh for one instance, by name.
func (c *Collector) RefreshInstance(ctx context.Context, name string) (*Scrape, error) {
	t, ok := c.current().byName[name]
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
			m = t.foundBy.state.mem // the listing is its state request
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

// call makes m's call, as the current snapshot says: an account's
// listing, or a state call with the current settings of the first
// instance of m's key, bounded by that instance's timeout alone. A
// memory the snapshot no longer holds was removed while queued.
func (c *Collector) call(m *memory) {
	switch w := c.current().entries[m.key].work.(type) {
	case *account:
		if w.state.mem == m {
			c.list(w)
		}
	case *target:
		if w.mem == m {
			c.poll(w)
		}
	}
}

// poll makes t's state call, and its queue call when it watches its
// queue.
func (c *Collector) poll(t *target) {
	m := t.mem
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	start := time.Now()
	var raw string
	var err error
	var health *Health
	if hc, ok := t.client.(healthClient); ok {
		raw, health, err = hc.StateHealth(ctx)
	} else {
		raw, err = t.client.State(ctx)
	}
	now := time.Now()
	o := t.outcomeOf(raw, err)
	if o.up && t.provider.Health {
		o.health = orUnknown(health)
	}
	hold := c.opts.MinInterval
	if p, ok := t.client.(pacer); ok {
		hold = max(hold, p.Pace())
	}
	detail := ""
	var e *Error
	if errors.As(err, &e) {
		detail = e.Error()
		hold = max(hold, e.RetryAfter)
	}
	m.record(t, o, detail, start, now, hold, "State request failing")
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
	t.log().Warn("Provider reported a state the exporter does not know; exposing it as unknown", "raw_state", shorten(snippet([]byte(raw)), 100))
	return outcome{state: StateUnknown, up: true}
}

// escapeLabel escapes a label value for the text exposition format.
func escapeLabel(v string) string {
	return labelEscaper.Replace(v)
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
