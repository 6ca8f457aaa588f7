package collector

import "github.com/prometheus/client_golang/prometheus"

// accountFailures is whatsapp_account_request_failures_total: an
// account's failed listing calls, every reason together, at 0 from the
// account's first collection. whatsapp_account_request_errors_total has a
// reason's series only from its first failure, which rate() and increase()
// never count (a counter first seen at 1 has no increase); this one loses
// none, for one series per account.
type accountFailures struct{ c *Collector }

var accountFailuresDesc = prometheus.NewDesc("whatsapp_account_request_failures_total",
	"Listing calls for the account that failed, whatever the reason: present, at 0 until the first failure, so that rate() and increase() count every failure; by reason in whatsapp_account_request_errors_total.",
	[]string{"provider", "account", "method"}, nil)

func (m accountFailures) Describe(ch chan<- *prometheus.Desc) { ch <- accountFailuresDesc }

func (m accountFailures) Collect(ch chan<- prometheus.Metric) {
	for _, a := range m.c.current().accounts {
		ch <- prometheus.MustNewConstMetric(accountFailuresDesc, prometheus.CounterValue,
			float64(a.state.stats.calls[0].failures()), a.provider.Name, a.name, a.kind.Method)
	}
}
