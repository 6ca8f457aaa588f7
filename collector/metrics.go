package collector

import (
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Call metrics come in two sizes. Per instance, what the alerts need and
// little more: a summary without quantiles (count and sum of durations)
// and the failures, all reasons together from the start and by reason
// once a reason happened (see exposition.go). Per provider, a histogram for latency
// quantiles, which per instance would cost 11 series each.

// instanceStats are an instance's call counts, per method of its
// provider. A target owns them and the exposition reads them from the
// current targets only, so that a call still in flight when a reload
// removes its instance writes into stats nobody exports.
type instanceStats struct {
	methods      []string
	methodLabels []string // method="…", escaped
	calls        []methodStats
	notificationCounts
}

type methodStats struct {
	count   atomic.Uint64
	sumBits atomic.Uint64               // float64 seconds
	errors  [len(Reasons)]atomic.Uint64 // by index in Reasons
}

func newInstanceStats(ms *methodSet) *instanceStats {
	return &instanceStats{methods: ms.names, methodLabels: ms.labels, calls: make([]methodStats, len(ms.names))}
}

// methodSet is the methods whose calls an instance counts: its provider's
// state request, or the listing that carries its state, and then the
// queue request when it watches its queue.
type methodSet struct {
	names  []string
	labels []string // method="…", escaped
}

func newMethodSet(names ...string) *methodSet {
	ms := &methodSet{names: names}
	for _, n := range names {
		ms.labels = append(ms.labels, `method="`+escapeLabel(n)+`"`)
	}
	return ms
}

// with returns the set with one method more.
func (ms *methodSet) with(name string) *methodSet {
	return newMethodSet(append(slices.Clone(ms.names), name)...)
}

// failures is the count of the method's failed calls, every reason.
func (m *methodStats) failures() uint64 {
	var n uint64
	for k := range m.errors {
		n += m.errors[k].Load()
	}
	return n
}

// observe counts a call of the i-th method.
func (s *instanceStats) observe(i int, d time.Duration, reason string) {
	m := &s.calls[i]
	m.count.Add(1)
	for {
		old := m.sumBits.Load()
		if m.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d.Seconds())) {
			break
		}
	}
	if r := slices.Index(Reasons[:], reason); r >= 0 {
		m.errors[r].Add(1)
	}
}

// providerMetrics are the metrics of the exporter as a whole, registered
// once: latency per provider and the state of the call queue.
type providerMetrics struct {
	duration      *prometheus.HistogramVec
	notifications *prometheus.CounterVec

	mu        sync.Mutex
	observers map[string][]prometheus.Observer // by provider and methods, by method
}

func newProviderMetrics() *providerMetrics {
	m := &providerMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "whatsapp_provider_request_duration_seconds",
			Help:    "Duration of the exporter's calls to each provider's API, over all its instances.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"provider", "method"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatsapp_exporter_webhook_notifications_total",
			Help: "Notifications the webhook receiver answered, by provider and outcome; per instance in whatsapp_webhook_notifications_total.",
		}, []string{"provider", "outcome"}),
		observers: map[string][]prometheus.Observer{},
	}
	for _, p := range registered() {
		switch {
		case p.Webhook != nil:
			for _, o := range Outcomes {
				m.notifications.WithLabelValues(p.Name, o)
			}
		case p.Handler != nil:
			// A provider's own receiver (meta_webhook.go): every outcome
			// but the JWT key's, which only Evolution API's can give.
			for _, o := range Outcomes {
				if o != OutcomeKeyInHeader {
					m.notifications.WithLabelValues(p.Name, o)
				}
			}
		}
	}
	return m
}

func (m *providerMetrics) notification(provider, outcome string) {
	m.notifications.WithLabelValues(provider, outcome).Inc()
}

// callObserver records a call of one instance in its stats and in its
// provider's histogram.
type callObserver struct {
	stats     *instanceStats
	durations []prometheus.Observer // by index in stats.methods, shared by the provider's instances
}

func (m *providerMetrics) observer(provider string, stats *instanceStats) callObserver {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := provider + "\x00" + strings.Join(stats.methods, "\x00")
	obs, ok := m.observers[key]
	if !ok {
		obs = make([]prometheus.Observer, len(stats.methods))
		for i, method := range stats.methods {
			obs[i] = m.duration.WithLabelValues(provider, method)
		}
		m.observers[key] = obs
	}
	return callObserver{stats: stats, durations: obs}
}

func (o callObserver) observe(method string, d time.Duration, e *Error) {
	i := slices.Index(o.stats.methods, method)
	if i < 0 {
		return // an action (API.Act), which the instance does not count
	}
	reason := ""
	if e != nil {
		reason = e.Reason
	}
	o.stats.observe(i, d, reason)
	o.durations[i].Observe(d.Seconds())
}
