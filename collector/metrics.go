package collector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// apiMetrics are the call metrics; they live across scrapes and reloads.
type apiMetrics struct {
	duration *prometheus.HistogramVec
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
}

func newAPIMetrics() *apiMetrics {
	return &apiMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "whatsapp_api_request_duration_seconds",
			Help:    "Duration of the exporter's calls to the provider API.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"provider", "name", "method"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatsapp_api_requests_total",
			Help: "Calls the exporter made to the provider API.",
		}, []string{"provider", "name", "method"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatsapp_api_request_errors_total",
			Help: "Calls to the provider API that failed, by reason.",
		}, []string{"provider", "name", "method", "reason"}),
	}
}

// instanceMetrics are one instance's call metrics by method. They are
// taken from the vectors once, when the instance is configured: a call
// still in flight when a reload removes its instance then writes into
// series that are no longer exported, instead of creating them again.
type instanceMetrics map[string]*methodMetrics

type methodMetrics struct {
	duration prometheus.Observer
	requests prometheus.Counter
	errors   map[string]prometheus.Counter // by reason
}

// instance creates every series of an instance, at zero so that rate()
// and alerts see them from the first scrape, and returns them.
func (m *apiMetrics) instance(provider, name string, methods []string) instanceMetrics {
	im := instanceMetrics{}
	for _, method := range methods {
		mm := &methodMetrics{
			duration: m.duration.WithLabelValues(provider, name, method),
			requests: m.requests.WithLabelValues(provider, name, method),
			errors:   map[string]prometheus.Counter{},
		}
		for _, r := range Reasons {
			mm.errors[r] = m.errors.WithLabelValues(provider, name, method, r)
		}
		im[method] = mm
	}
	return im
}

func (im instanceMetrics) observe(method string, d time.Duration, e *Error) {
	mm, ok := im[method]
	if !ok {
		return // a method the provider did not declare: a programming error
	}
	mm.duration.Observe(d.Seconds())
	mm.requests.Inc()
	if e != nil {
		if c, ok := mm.errors[e.Reason]; ok {
			c.Inc()
		}
	}
}

func (m *apiMetrics) forget(provider, name string) {
	l := prometheus.Labels{"provider": provider, "name": name}
	m.duration.DeletePartialMatch(l)
	m.requests.DeletePartialMatch(l)
	m.errors.DeletePartialMatch(l)
}

func (m *apiMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.duration.Describe(ch)
	m.requests.Describe(ch)
	m.errors.Describe(ch)
}

func (m *apiMetrics) Collect(ch chan<- prometheus.Metric) {
	m.duration.Collect(ch)
	m.requests.Collect(ch)
	m.errors.Collect(ch)
}
