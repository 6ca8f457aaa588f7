package waalerts

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Results of a message (one notification to one recipient), the result
// label of whatsapp_alert_messages_total.
const (
	ResultSent        = "sent"         // a sender took it
	ResultFailed      = "failed"       // every sender that could be tried failed
	ResultNoSender    = "no_sender"    // no configured sender could be tried
	ResultRateLimited = "rate_limited" // over the recipient's rate limit: dropped
	ResultDuplicate   = "duplicate"    // the recipient got this notification already
)

// Reasons a configured sender is passed over for a notification, the
// reason label of whatsapp_alert_sender_skips_total.
const (
	SkipUnknown     = "unknown_instance" // the exporter watches no instance of that name
	SkipCannotSend  = "cannot_send"      // its provider has no send method here
	SkipNotWorking  = "not_working"      // its state is not the working one, or its state request fails
	SkipAboutItself = "about_itself"     // an alert of the notification is about it
	SkipCheckFailed = "check_failed"     // its status was stale and could not be requested now
)

// metrics are the sender's. Their labels are bounded by the
// configuration: a sender is a configured instance name, its provider one
// of the providers; a recipient's number and a message's text are never a
// label. Requests are counted by the server that routes them
// (whatsapp_alertmanager_requests_total{receiver="whatsapp"}), from the
// answer's status.
type metrics struct {
	messages *prometheus.CounterVec
	failures *prometheus.CounterVec
	skips    *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatsapp_alert_messages_total",
			Help: "WhatsApp alert messages (one notification to one recipient) by result; sender and sender_provider name the instance that sent it, empty unless the result is sent.",
		}, []string{"sender_provider", "sender", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatsapp_alert_send_failures_total",
			Help: "Sends of a WhatsApp alert message that a sender instance did not take, by sender and reason; the next sender is tried.",
		}, []string{"sender_provider", "sender", "reason"}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatsapp_alert_sender_skips_total",
			Help: "Notifications for which a configured sender instance was passed over, by sender and reason.",
		}, []string{"sender_provider", "sender", "reason"}),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.messages.Describe(ch)
	m.failures.Describe(ch)
	m.skips.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.messages.Collect(ch)
	m.failures.Collect(ch)
	m.skips.Collect(ch)
}
