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
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// deadlineGrace is how long a scrape past its deadline waits for the call
// it shares to end.
const deadlineGrace = 250 * time.Millisecond

var (
	stateDesc = prometheus.NewDesc("whatsapp_instance_state",
		"State of the WhatsApp instance as reported by its provider: 1 for the current state, 0 for the others; unknown when no state could be fetched.",
		[]string{"provider", "name", "state"}, nil)
	upDesc = prometheus.NewDesc("whatsapp_up",
		"Whether the last state request to the provider produced a state.",
		[]string{"provider", "name"}, nil)
)

// Options tune the collector.
type Options struct {
	// Concurrency bounds the calls in flight at once, across all scrapes.
	Concurrency int
	// MinInterval is how long a result is shared with later scrapes: two
	// Prometheus servers scraping together cause one call, not two.
	MinInterval time.Duration
	// UserAgent is sent with every call.
	UserAgent string
}

// Collector holds the configured instances. It exposes two sets of
// metrics: CallMetrics, which live across scrapes and reloads (register
// them once), and States, collected anew at each scrape.
type Collector struct {
	logger  *slog.Logger
	opts    Options
	sem     chan struct{}
	metrics *apiMetrics

	mu       sync.RWMutex
	targets  []*target
	memories map[string]*memory // by instance identity, see config.Common.Identity
	clients  clientPool
}

// New returns a collector with no instances; call Update to set them.
func New(logger *slog.Logger, opts Options) *Collector {
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	return &Collector{
		logger:  logger,
		opts:    opts,
		sem:     make(chan struct{}, opts.Concurrency),
		metrics: newAPIMetrics(),
	}
}

// CallMetrics are the metrics of the calls to the providers: counts,
// durations and errors by reason, per instance.
func (c *Collector) CallMetrics() prometheus.Collector { return c.metrics }

// target is one configured instance.
type target struct {
	provider *Provider
	name     string
	timeout  time.Duration
	spec     config.Spec
	client   Client
	http     *http.Client // shared with the instances of the same settings
	logger   *slog.Logger
	mem      *memory
}

// memory is what the exporter remembers of an upstream instance between
// scrapes: its last result, how long that result stands (MinInterval or a
// Retry-After) and the call in flight. It belongs to the instance's
// identity, not to its settings, so that a reload changing a timeout
// neither calls at once nor forgets a Retry-After.
type memory struct {
	flight   singleflight.Group
	inFlight atomic.Int32 // calls under way

	mu        sync.Mutex
	last      outcome
	freshTill time.Time // zero until the first call ends
}

type outcome struct {
	state  string // a state of the provider, or StateUnknown
	up     bool
	reason string // why !up
}

// Update replaces the set of instances. An instance whose configuration did
// not change keeps its client; every instance keeps the memory of its
// identity (shared result, Retry-After). The call metrics of removed
// instances are dropped.
func (c *Collector) Update(cfg *config.Config) error {
	c.mu.RLock()
	old := make(map[string]*target, len(c.targets))
	for _, t := range c.targets {
		old[t.name] = t
	}
	oldMemories := c.memories
	pool := c.clients.renew()
	c.mu.RUnlock()

	memories := make(map[string]*memory, len(cfg.Instances))
	targets := make([]*target, 0, len(cfg.Instances))
	for _, inst := range cfg.Instances {
		id := inst.Spec.Base().Identity()
		mem, ok := memories[id]
		if !ok {
			if mem, ok = oldMemories[id]; !ok {
				mem = &memory{}
			}
			memories[id] = mem
		}
		if t, ok := old[inst.Name()]; ok && t.mem == mem && reflect.DeepEqual(t.spec, inst.Spec) {
			pool.keep(t.spec.Base().HTTPClientConfig, t.http)
			targets = append(targets, t)
			continue
		}
		t, err := c.newTarget(inst, mem, pool)
		if err != nil {
			pool.discard()
			return fmt.Errorf("instance %q: %w", inst.Name(), err)
		}
		targets = append(targets, t)
	}

	c.mu.Lock()
	kept := make(map[string]bool, len(targets))
	for _, t := range targets {
		kept[t.provider.Name+"\x00"+t.name] = true
	}
	for _, t := range c.targets {
		if !kept[t.provider.Name+"\x00"+t.name] {
			c.metrics.forget(t.provider.Name, t.name)
		}
	}
	// An instance removed and added again, by one reload or the next, is
	// still the same upstream instance: keep the memories that still hold
	// a result or a call.
	now := time.Now()
	for id, m := range oldMemories {
		if _, ok := memories[id]; !ok && m.holds(now) {
			memories[id] = m
		}
	}
	c.targets = targets
	c.memories = memories
	c.clients = pool.commit()
	c.mu.Unlock()
	return nil
}

func (c *Collector) newTarget(inst config.Instance, mem *memory, pool *clientPoolUpdate) (*target, error) {
	base := inst.Spec.Base()
	p, ok := providers[base.Provider]
	if !ok {
		return nil, fmt.Errorf("unknown provider %q", base.Provider)
	}
	hc, err := pool.get(base.HTTPClientConfig, c.opts.UserAgent)
	if err != nil {
		return nil, err
	}
	logger := c.logger.With("provider", p.Name, "name", base.Name)
	api := &API{client: hc, logger: logger, metrics: c.metrics.instance(p.Name, base.Name, p.Methods)}
	client, err := p.NewClient(inst.Spec, api)
	if err != nil {
		return nil, err
	}
	return &target{
		provider: p,
		name:     base.Name,
		timeout:  time.Duration(base.Timeout),
		spec:     inst.Spec,
		client:   client,
		http:     hc,
		logger:   logger,
		mem:      mem,
	}, nil
}

// States returns a collector that fetches every instance's state when
// collected. ctx bounds the scrape: its deadline caps every call.
func (c *Collector) States(ctx context.Context) prometheus.Collector {
	return scrape{c: c, ctx: ctx}
}

type scrape struct {
	c   *Collector
	ctx context.Context
}

func (s scrape) Describe(ch chan<- *prometheus.Desc) {
	ch <- stateDesc
	ch <- upDesc
}

func (s scrape) Collect(ch chan<- prometheus.Metric) {
	s.c.mu.RLock()
	targets := s.c.targets
	s.c.mu.RUnlock()

	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := s.c.observe(s.ctx, t)
			for _, st := range t.provider.States {
				ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, boolValue(o.state == st), t.provider.Name, t.name, st)
			}
			ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, boolValue(o.state == StateUnknown), t.provider.Name, t.name, StateUnknown)
			ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, boolValue(o.up), t.provider.Name, t.name)
		}()
	}
	wg.Wait()
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// observe returns the instance's outcome: a result younger than MinInterval
// (or held back by Retry-After) if there is one, else the result of a call
// shared with every scrape that asks meanwhile.
func (c *Collector) observe(ctx context.Context, t *target) outcome {
	m := t.mem
	if o, ok := m.fresh(time.Now()); ok {
		return o
	}
	// A scrape past its deadline waits a little for the call it shares, so
	// that a call this scrape started counts its timeout in this scrape,
	// not the next: calls end that long before the scrape's deadline.
	grace := time.Duration(0)
	if dl, ok := ctx.Deadline(); ok {
		grace = min(deadlineGrace, time.Until(dl)/4)
	}
	ch := m.flight.DoChan("state", func() (any, error) {
		if o, ok := m.fresh(time.Now()); ok {
			return o, nil
		}
		m.inFlight.Add(1)
		defer m.inFlight.Add(-1)
		// The call outlives a scrape that gives up waiting, so that the
		// scrapes sharing it still get its result; it keeps the deadline.
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.timeout)
		defer cancel()
		if dl, ok := ctx.Deadline(); ok {
			var cancelDL context.CancelFunc
			callCtx, cancelDL = context.WithDeadline(callCtx, dl.Add(-grace))
			defer cancelDL()
		}
		return c.call(callCtx, t), nil
	})
	select {
	case r := <-ch:
		return r.Val.(outcome)
	case <-ctx.Done():
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.Val.(outcome)
	case <-timer.C:
		return outcome{state: StateUnknown, reason: ReasonTimeout}
	}
}

func (c *Collector) call(ctx context.Context, t *target) outcome {
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		t.logger.Warn("No call slot free before the deadline; the exporter allows too few calls at once for this many instances")
		return outcome{state: StateUnknown, reason: ReasonTimeout}
	}

	raw, err := t.client.State(ctx)
	now := time.Now()
	o := outcome{state: StateUnknown, up: true}
	hold := c.opts.MinInterval
	var e *Error
	detail := ""
	switch {
	case errors.As(err, &e):
		detail = e.Error()
		o.up, o.reason = false, e.Reason
		hold = max(hold, e.RetryAfter)
	case err != nil:
		o.up, o.reason = false, ReasonBadResponse
	case raw == StateUnknown:
		// The call worked but the provider gave no state (e.g. Evolution
		// API for an instance that is not loaded).
	case slices.Contains(t.provider.States, raw):
		o.state = raw
	default:
		t.logger.Warn("Provider reported a state the exporter does not know; exposing it as unknown", "raw_state", shorten(snippet([]byte(raw)), 100))
	}
	t.mem.record(t.logger, o, detail, now, hold)
	return o
}

// holds reports whether the memory holds a result or a call, which a
// removed instance's memory must keep until they end.
func (m *memory) holds(now time.Time) bool {
	if m.inFlight.Load() > 0 {
		return true
	}
	_, fresh := m.fresh(now)
	return fresh
}

func (m *memory) fresh(now time.Time) (outcome, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last, now.Before(m.freshTill)
}

// record stores a result and logs transitions, so that a lasting failure
// is logged once rather than at every scrape.
func (m *memory) record(logger *slog.Logger, o outcome, detail string, now time.Time, hold time.Duration) {
	m.mu.Lock()
	prev, had := m.last, !m.freshTill.IsZero()
	m.last, m.freshTill = o, now.Add(hold)
	m.mu.Unlock()

	switch {
	case had && prev == o:
	case !o.up:
		logger.Warn("State request failing", "reason", o.reason, "err", detail)
	case had && !prev.up:
		logger.Info("State request recovered", "state", o.state)
	case prev.state != o.state:
		logger.Info("State changed", "state", o.state)
	}
}
