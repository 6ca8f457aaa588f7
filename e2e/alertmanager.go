package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// The shipped rules and Alertmanager configuration.
const (
	rulesFile        = "../alerts/whatsapp.rules.yml"
	alertmanagerFile = "../alerts/alertmanager.yml"
)

// alertPipeline is a real Alertmanager with the shipped routes, every
// receiver a webhook sink, and a real Prometheus with the shipped rules
// (durations shortened) scraping an exporter and alerting to it.
type alertPipeline struct {
	sink   *testtool.WebhookSink
	amLogs *testlog.Buffer
	prom   *promServer
}

func startAlertPipeline(t *testing.T, exporterURL string) *alertPipeline {
	t.Helper()
	return startAlertPipelineWith(t, exporterURL, 2, testtool.AlertmanagerOptions{})
}

// startAlertPipelineWith is startAlertPipeline with a minute of the rules
// made perMinute seconds (startPrometheusScaled) and Alertmanager's
// configuration changed by o.
func startAlertPipelineWith(t *testing.T, exporterURL string, perMinute int, o testtool.AlertmanagerOptions) *alertPipeline {
	t.Helper()
	sink := testtool.NewWebhookSink(t)
	amAddr, amLogs := testtool.StartAlertmanagerWith(t, alertmanagerFile, sink.URL, o)
	prom := startPrometheusScaled(t, perMinute, scrapeConfig(singleEndpoint, strings.TrimPrefix(exporterURL, "http://")), amAddr)
	return &alertPipeline{sink: sink, amLogs: amLogs, prom: prom}
}

// wait waits for a notification with an alert that match accepts.
func (p *alertPipeline) wait(t *testing.T, timeout time.Duration, what string, match func(testtool.Notification, testtool.Alert) bool) testtool.Alert {
	t.Helper()
	return p.sink.Wait(t, timeout, what, match, p.amLogs, p.prom.logs)
}

// alert matches an alert by name and status sent to receiver, any receiver
// when empty.
func alert(name, status, receiver string) func(testtool.Notification, testtool.Alert) bool {
	return func(n testtool.Notification, a testtool.Alert) bool {
		return a.Labels["alertname"] == name && a.Status == status && (receiver == "" || n.Receiver == receiver)
	}
}

// onlyAlerts fails for every notified alert whose name expected refuses.
func (p *alertPipeline) onlyAlerts(t *testing.T, expected func(name string) bool) {
	t.Helper()
	for _, n := range p.sink.Notifications() {
		for _, a := range n.Alerts {
			if !expected(a.Labels["alertname"]) {
				t.Errorf("unexpected notification %s %v", a.Status, a.Labels)
			}
		}
	}
}

// checkLabels fails for each label of a that is not as want says.
func checkLabels(t *testing.T, a testtool.Alert, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], v, a.Labels)
		}
	}
}

// checkAnnotationsHide fails for each annotation of a that holds one of
// secrets: a notification goes to people and to chat rooms.
func checkAnnotationsHide(t *testing.T, a testtool.Alert, secrets ...string) {
	t.Helper()
	for _, v := range a.Annotations {
		for _, s := range secrets {
			if strings.Contains(v, s) {
				t.Errorf("an annotation holds a credential or an identifier it must not: %q", v)
			}
		}
	}
}
