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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promcfg "github.com/prometheus/common/config"
	"golang.org/x/sync/singleflight"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// maxRetryAfter caps a provider's Retry-After so that a garbled header
// cannot silence an instance for long.
const maxRetryAfter = 5 * time.Minute

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

// Collector holds the configured instances. Its call metrics are a
// prometheus.Collector (register it once); Scrape returns the per-scrape
// collector of states.
type Collector struct {
	logger  *slog.Logger
	opts    Options
	sem     chan struct{}
	metrics *apiMetrics

	mu      sync.RWMutex
	targets []*target
	clients []httpClient
}

type httpClient struct {
	cfg    promcfg.HTTPClientConfig
	client *http.Client
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

// Describe implements prometheus.Collector for the call metrics.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { c.metrics.Describe(ch) }

// Collect implements prometheus.Collector for the call metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) { c.metrics.Collect(ch) }

// target is one instance and what the exporter remembers of it between
// scrapes.
type target struct {
	provider *Provider
	name     string
	timeout  time.Duration
	spec     config.Spec
	client   Client
	logger   *slog.Logger
	flight   singleflight.Group

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
// not change keeps its client, its shared result and any Retry-After; the
// call metrics of removed instances are dropped.
func (c *Collector) Update(cfg *config.Config) error {
	c.mu.RLock()
	old := make(map[string]*target, len(c.targets))
	for _, t := range c.targets {
		old[t.name] = t
	}
	c.mu.RUnlock()

	targets := make([]*target, 0, len(cfg.Instances))
	for _, inst := range cfg.Instances {
		if t, ok := old[inst.Name()]; ok && reflect.DeepEqual(t.spec, inst.Spec) {
			targets = append(targets, t)
			continue
		}
		t, err := c.newTarget(inst)
		if err != nil {
			return fmt.Errorf("instance %q: %w", inst.Name(), err)
		}
		targets = append(targets, t)
	}

	c.mu.Lock()
	kept := map[string]bool{}
	for _, t := range targets {
		kept[t.provider.Name+"\x00"+t.name] = true
	}
	for _, t := range c.targets {
		if !kept[t.provider.Name+"\x00"+t.name] {
			c.metrics.forget(t.provider.Name, t.name)
		}
	}
	for _, t := range targets {
		c.metrics.init(t.provider.Name, t.name, t.provider.Methods)
	}
	c.targets = targets
	// Drop the HTTP clients whose settings no instance uses any more.
	c.clients = slices.DeleteFunc(c.clients, func(hc httpClient) bool {
		unused := !slices.ContainsFunc(targets, func(t *target) bool {
			return reflect.DeepEqual(t.spec.Base().HTTPClientConfig, hc.cfg)
		})
		if unused {
			hc.client.CloseIdleConnections()
		}
		return unused
	})
	c.mu.Unlock()
	return nil
}

func (c *Collector) newTarget(inst config.Instance) (*target, error) {
	base := inst.Spec.Base()
	p, ok := providers[base.Provider]
	if !ok {
		return nil, fmt.Errorf("unknown provider %q", base.Provider)
	}
	hc, err := c.httpClient(base.HTTPClientConfig)
	if err != nil {
		return nil, err
	}
	logger := c.logger.With("provider", p.Name, "name", base.Name)
	api := &API{client: hc, logger: logger, provider: p.Name, name: base.Name, metrics: c.metrics}
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
		logger:   logger,
	}, nil
}

// httpClient shares one client, and so one connection pool, among all
// instances with the same HTTP settings.
func (c *Collector) httpClient(cfg promcfg.HTTPClientConfig) (*http.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, hc := range c.clients {
		if reflect.DeepEqual(hc.cfg, cfg) {
			return hc.client, nil
		}
	}
	client, err := promcfg.NewClientFromConfig(cfg, "whatsapp_exporter", promcfg.WithUserAgent(c.opts.UserAgent))
	if err != nil {
		return nil, fmt.Errorf("HTTP client settings: %w", err)
	}
	c.clients = append(c.clients, httpClient{cfg: cfg, client: client})
	return client, nil
}

// Scrape returns a collector that fetches every instance's state when
// collected. ctx bounds the scrape: its deadline caps every call.
func (c *Collector) Scrape(ctx context.Context) prometheus.Collector {
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
	if o, ok := t.fresh(time.Now()); ok {
		return o
	}
	ch := t.flight.DoChan("state", func() (any, error) {
		if o, ok := t.fresh(time.Now()); ok {
			return o, nil
		}
		// The call outlives a scrape that gives up waiting, so that the
		// scrapes sharing it still get its result; it keeps the deadline.
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.timeout)
		defer cancel()
		if dl, ok := ctx.Deadline(); ok {
			var cancelDL context.CancelFunc
			callCtx, cancelDL = context.WithDeadline(callCtx, dl)
			defer cancelDL()
		}
		return c.call(callCtx, t), nil
	})
	select {
	case r := <-ch:
		return r.Val.(outcome)
	case <-ctx.Done():
	}
	// A call this scrape started has the same deadline and ends right
	// after it: wait for it briefly so that this scrape, not the next one,
	// counts its timeout. The grace is taken from --web.timeout-offset.
	grace := time.NewTimer(deadlineGrace)
	defer grace.Stop()
	select {
	case r := <-ch:
		return r.Val.(outcome)
	case <-grace.C:
		return outcome{state: StateUnknown, reason: ReasonTimeout}
	}
}

func (c *Collector) call(ctx context.Context, t *target) outcome {
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		t.logger.Warn("No call slot free before the deadline; consider raising --api.concurrency")
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
		if e.RetryAfter > hold {
			hold = min(e.RetryAfter, maxRetryAfter)
		}
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
	t.record(o, detail, now, hold)
	return o
}

func (t *target) fresh(now time.Time) (outcome, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last, now.Before(t.freshTill)
}

// record stores a result and logs transitions, so that a lasting failure
// is logged once rather than at every scrape.
func (t *target) record(o outcome, detail string, now time.Time, hold time.Duration) {
	t.mu.Lock()
	prev, had := t.last, !t.freshTill.IsZero()
	t.last, t.freshTill = o, now.Add(hold)
	t.mu.Unlock()

	switch {
	case had && prev == o:
	case !o.up:
		t.logger.Warn("State request failing", "reason", o.reason, "err", detail)
	case had && !prev.up:
		t.logger.Info("State request recovered", "state", o.state)
	case prev.state != o.state:
		t.logger.Info("State changed", "state", o.state)
	}
}
