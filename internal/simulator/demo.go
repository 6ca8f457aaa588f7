package simulator

import (
	"fmt"
	"strings"
	"time"
)

func state(s string, latency, d time.Duration) Step {
	return Step{Behaviour: Behaviour{State: s, Latency: latency}, For: d}
}

// queued gives a step a queue of n messages that grows by rate a second.
func queued(st Step, n int, rate float64) Step {
	st.Queue, st.QueueRate = n, rate
	return st
}

// closed gives a step the code of the disconnection behind it.
func closed(st Step, reason int) Step {
	st.Reason = reason
	return st
}

func failing(f Fault, latency, d time.Duration) Step {
	return Step{Behaviour: Behaviour{Fault: f, Latency: latency, RetryAfter: 5 * time.Second}, For: d}
}

// Demo returns a simulator holding every provider's demo instances, which
// go through every state of their provider, and a few failures, in about
// three minutes.
func Demo() *Simulator {
	s := New()
	for _, p := range Providers() {
		for _, d := range p.Demo {
			s.Schedule(p.Name, d.ID, d.Secret, d.Steps...)
			if d.Reboot != nil {
				s.SetReboot(p.Name, d.ID, *d.Reboot)
			}
			if d.Webhook != (WebhookAuth{}) {
				s.SetWebhook(p.Name, d.ID, d.Webhook)
			}
		}
		if p.Account != nil {
			for _, d := range p.Account.Demo.Instances {
				s.Schedule(p.Name, d.ID, d.Secret, d.Steps...)
			}
			s.ScheduleAccount(p.Name, p.Account.Demo.Key, p.Account.Demo.Steps...)
		}
		if p.demoSetup != nil {
			p.demoSetup(s)
		}
	}
	return s
}

// DemoConfig is the exporter configuration for the demo instances of a
// simulator served at baseURL.
func DemoConfig(baseURL string) string {
	var b strings.Builder
	b.WriteString("instances:\n")
	for _, p := range Providers() {
		for _, d := range p.Demo {
			var extra []string
			if d.Timeout > 0 {
				extra = append(extra, fmt.Sprintf("timeout: %s", d.Timeout))
			}
			extra = append(extra, d.Webhook.Config()...)
			if d.MessagesQueue {
				extra = append(extra, "messages_queue: true")
			}
			extra = append(extra, d.Extra...)
			b.WriteString(p.Config(baseURL, d.Name, d.ID, d.Secret, extra...))
		}
	}
	b.WriteString("accounts:\n")
	for _, p := range Providers() {
		if a := p.Account; a != nil {
			b.WriteString(p.AccountConfig(baseURL, a.Demo.Name, a.Demo.Key, a.Demo.Extra...))
		}
	}
	b.WriteString(demoAlerting)
	return b.String()
}

// The demo's WhatsApp alerts: its senders, in order, and its recipient;
// and the bearer token Alertmanager's webhook requests carry in the demo.
const (
	DemoAlertSender        = "demo-alerts"
	DemoAlertFallback      = "demo-evolution-alerts"
	DemoAlertRecipient     = "79990000001"
	DemoAlertmanagerToken  = "demo-alertmanager-token"
	demoRemediationWindow  = "5m"
	demoRemediationRecheck = "30s"
)

// demoAlerting are the demo's sections for Alertmanager's receivers. The
// remediation is live, not a dry run: the simulator is ours, and its
// reboots are what the demo shows (demo-stuck recovers, demo-stuck-hard
// does not). Its window and re-check are shorter than the defaults so
// that a newcomer sees a whole remediation in a minute.
var demoAlerting = "alertmanager:\n  bearer_token: " + DemoAlertmanagerToken + "\n" +
	"remediation:\n  window: " + demoRemediationWindow + "\n  recheck_after: " + demoRemediationRecheck + "\n" +
	"whatsapp_alerts:\n  senders: [" + DemoAlertSender + ", " + DemoAlertFallback + "]\n" +
	"  recipients: [\"" + DemoAlertRecipient + "\"]\n"
