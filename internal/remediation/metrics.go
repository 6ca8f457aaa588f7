package remediation

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics is the engine seen as a prometheus.Collector: the series are
// made at each scrape from the engine's memory, so that an instance has
// series only after its first request, and loses them with its memory.
type metrics Engine

var (
	descEnabled = prometheus.NewDesc("whatsapp_remediation_enabled",
		"1 when the configuration has a remediation section and Alertmanager's receiver is served (--alertmanager.listen-address), dry run included.", nil, nil)
	descDryRun = prometheus.NewDesc("whatsapp_remediation_dry_run",
		"1 when remediation decides, logs and counts its actions but makes no call.", nil, nil)
	descActions = prometheus.NewDesc("whatsapp_remediation_actions_total",
		"Remediation requests by instance, action and result (done, dry_run, held, failed), with the reason of held and failed ones.",
		[]string{"provider", "name", "action", "result", "reason"}, nil)
	descLastAction = prometheus.NewDesc("whatsapp_remediation_last_action_timestamp_seconds",
		"Time of the instance's last action done or dry run, in seconds since the Unix epoch.",
		[]string{"provider", "name", "action"}, nil)
	descStatus = prometheus.NewDesc("whatsapp_remediation_status",
		"What became of the instance's last action, one series per status, the current one 1; exposed for the window after the action.",
		[]string{"provider", "name", "action", "status"}, nil)
	descRechecks = prometheus.NewDesc("whatsapp_remediation_rechecks_total",
		"State requests made recheck_after a reboot, by outcome: recovered (another state), unchanged, check_failed.",
		[]string{"provider", "action", "outcome"}, nil)
	descBrake = prometheus.NewDesc("whatsapp_remediation_brake_engaged",
		"1 while the fleet brake holds every action on the provider's instances.",
		[]string{"provider"}, nil)
)

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEnabled, descDryRun, descActions, descLastAction, descStatus, descRechecks, descBrake} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	e := (*Engine)(m)
	rm := e.cfg.Load()
	ch <- prometheus.MustNewConstMetric(descEnabled, prometheus.GaugeValue, b2f(rm != nil && e.served.Load()))
	ch <- prometheus.MustNewConstMetric(descDryRun, prometheus.GaugeValue, b2f(rm != nil && rm.DryRun))
	window := time.Duration(0)
	if rm != nil {
		window = time.Duration(rm.Window)
	}
	now := e.clock.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, in := range e.insts {
		for k, v := range in.counts {
			ch <- prometheus.MustNewConstMetric(descActions, prometheus.CounterValue, v, in.provider, name, k.action, k.result, k.reason)
		}
		if !in.lastMade.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLastAction, prometheus.GaugeValue, float64(in.lastMade.UnixNano())/1e9, in.provider, name, ActionReboot)
		}
		if in.hasLast && now.Sub(in.last.At) < window {
			for _, s := range statuses {
				ch <- prometheus.MustNewConstMetric(descStatus, prometheus.GaugeValue, b2f(s == in.last.Status), in.provider, name, in.last.Action, s)
			}
		}
	}
	for k, v := range e.rechecks {
		ch <- prometheus.MustNewConstMetric(descRechecks, prometheus.CounterValue, v, k.provider, k.action, k.outcome)
	}
	for p, b := range e.brakes {
		ch <- prometheus.MustNewConstMetric(descBrake, prometheus.GaugeValue, b2f(now.Before(b.until)), p)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
