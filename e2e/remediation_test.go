package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/server"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// The remediation's end-to-end tests (issue 21, "Demo and proof"):
// GREEN-API's procedure for an instance stuck in starting
// (instance-status-tracking: "restart the instance using reboot method,
// wait for 2 minutes and repeat receiving the instance status, if the
// instance status has not changed, then inform the operator"), carried
// out by a real Prometheus with the shipped rules and a real Alertmanager
// with the shipped routes, its whatsapp-exporter-remediation receiver a
// webhook to the exporter's /alertmanager/remediate with the bearer
// token, every other receiver the sink that stands for the pager, chat
// and mail.
//
// A minute of the rules is 3 seconds here (startPrometheusScaled), and
// the timeline, from the first scrape that sees starting:
// WhatsAppInstanceStartingRemediate fires at 15s (`for: 5m`) and reaches
// the exporter after Alertmanager's group_wait (1s); the exporter requests
// the state (at most a second later: the provider's rate limit) and
// reboots: 1.5 to 5 seconds after the alert fired (measured, on a loaded
// 2-core machine too), 17 seconds in. The waiting status is scraped and
// evaluated a second or two later, well before the `for: 10m` (30s) of
// the remediation_outcome="not_done" page (at 2 seconds a minute, the
// other suites' scale, that margin was 2 seconds at worst). The re-check
// follows recheck_after (4s) later by itself, and its unchanged status
// fires the remediation_outcome="rebooted" page at once.

const (
	remToken = "e2e-remediation-token-0456"

	// remRecovers leaves starting after its reboot, remStuck stays in it.
	remRecovers, remRecoversID, remRecoversToken = "e2e-recovers", "1101000031", "e2e-recovers-token"
	remStuck, remStuckID, remStuckToken          = "e2e-stuck", "1101000032", "e2e-stuck-token"

	remScale = 3 // seconds a minute of the rules lasts

	remReceiver = "whatsapp-exporter-remediation" // the shipped receiver
	remPage     = "WhatsAppInstanceStartingTooLong"
	remRequest  = "WhatsAppInstanceStartingRemediate"
)

// remediationRun is the simulator, the exporter with its Alertmanager
// receivers on loopback, Alertmanager and Prometheus.
type remediationRun struct {
	*alertPipeline
	sim *simulator.Simulator
	e   *exportertest.Exporter
}

// startRemediationRun starts the pipeline with two GREEN-API instances in
// starting, the exporter's remediation section remediation (YAML, indented
// under "remediation:") and Alertmanager's repeat_interval repeat (1h when
// empty).
func startRemediationRun(t *testing.T, remediation, repeat string) *remediationRun {
	t.Helper()
	sim := simulator.New()
	// Both report starting (GREEN-API's getStateInstance, API-FACTS.md)
	// until rebooted. remRecovers then starts for a second and is
	// authorized, as after a successful reboot; remStuck answers the
	// reboot ({"isReboot": true}) and keeps starting.
	sim.Set(simulator.GreenAPI, remRecoversID, remRecoversToken, simulator.Behaviour{State: "starting"})
	sim.SetReboot(simulator.GreenAPI, remRecoversID, simulator.RebootBehaviour{After: []simulator.Step{
		{Behaviour: simulator.Behaviour{State: "starting"}, For: time.Second},
		{Behaviour: simulator.Behaviour{State: "authorized"}, For: 24 * time.Hour},
	}})
	sim.Set(simulator.GreenAPI, remStuckID, remStuckToken, simulator.Behaviour{State: "starting"})
	sim.SetReboot(simulator.GreenAPI, remStuckID, simulator.RebootBehaviour{})
	simURL := exportertest.StartSimulator(t, sim)
	green := simulator.ProviderOf(simulator.GreenAPI)
	e := exportertest.Start(t, exportertest.Inline("instances:\n"+
		green.Config(simURL, remRecovers, remRecoversID, remRecoversToken)+
		green.Config(simURL, remStuck, remStuckID, remStuckToken)+
		"alertmanager:\n  bearer_token: "+remToken+"\n"+
		"remediation:\n"+remediation), 0)
	// Serving the receivers makes whatsapp_remediation_enabled 1, before
	// Prometheus's first scrape.
	srv := httptest.NewServer(e.AlertmanagerHandler(""))
	t.Cleanup(srv.Close)

	pipe := startAlertPipelineWith(t, e.URL, remScale, testtool.AlertmanagerOptions{
		RepeatInterval: repeat,
		Webhooks: map[string]testtool.Webhook{remReceiver: {
			URL: srv.URL + server.AlertmanagerRemediatePath, BearerToken: remToken, SendResolved: false,
		}},
	})
	return &remediationRun{alertPipeline: pipe, sim: sim, e: e}
}

// logs are every log of the run, for a failure's message.
func (r *remediationRun) logs() string {
	return r.e.Logs.String() + r.amLogs.String() + r.prom.logs.String()
}

// value is the sum of the exporter's own series of family name that carry
// labels, read from /exporter-metrics (which makes no state request), and
// whether there is any.
func (r *remediationRun) value(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	code, text := exportertest.Get(t, r.e.URL+"/exporter-metrics", nil)
	if code != http.StatusOK {
		t.Fatalf("/exporter-metrics: HTTP %d", code)
	}
	mf, ok := exportertest.Parse(t, text)[name]
	if !ok {
		return 0, false
	}
	sum, found := 0.0, false
series:
	for _, m := range mf.GetMetric() {
		for k, v := range labels {
			if exportertest.Label(m, k) != v {
				continue series
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum, found
}

// waitValue polls value until ok accepts it, failing after limit.
func (r *remediationRun) waitValue(t *testing.T, limit time.Duration, name string, labels map[string]string, ok func(float64) bool) float64 {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(200 * time.Millisecond) {
		v, found := r.value(t, name, labels)
		if found && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v is %v (present %t) after %v\n%s", name, labels, v, found, limit, r.logs())
		}
	}
}

// atLeast accepts values of n and more.
func atLeast(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }

// actions are the labels of whatsapp_remediation_actions_total of an
// instance's reboots with a result.
func actions(name, result string) map[string]string {
	return map[string]string{"provider": "greenapi", "name": name, "action": "reboot", "result": result}
}

// waitSettled waits until Prometheus has evaluated the rules for a while
// with name out of starting, so that no StartingTooLong can hold for it
// any more: authorized in every sample of the last 4s, and no
// StartingTooLong (pending or firing) in that time.
func (r *remediationRun) waitSettled(t *testing.T, name string) {
	t.Helper()
	q := fmt.Sprintf(`min_over_time(whatsapp_instance_state{name=%q,state="authorized"}[4s]) == 1 and count_over_time(whatsapp_instance_state{name=%q,state="authorized"}[4s]) >= 3
  unless on (name) count_over_time(ALERTS{alertname=%q,name=%q}[4s]) > 0`, name, name, remPage, name)
	r.prom.waitQuery(t, 60*time.Second, q, func(v []sample) bool { return len(v) == 1 })
}

// rebootDelay is how long after Prometheus's first sample of name the
// exporter rebooted it, for the log: the margin left before the
// remediation_outcome="not_done" page (10 minutes of the rules) is what a
// loaded machine eats.
func (r *remediationRun) rebootDelay(t *testing.T, name string) string {
	t.Helper()
	v, err := r.prom.query(fmt.Sprintf(`whatsapp_remediation_last_action_timestamp_seconds{name=%q}
  - on (name) min_over_time(timestamp(whatsapp_instance_state{name=%q,state="starting"})[10m:1s])`, name, name))
	if err != nil || len(v) != 1 {
		return fmt.Sprintf("? (%v %v)", v, err)
	}
	return fmt.Sprintf("%vs", v[0].Value[1])
}

// fired are the label sets of the StartingTooLong alerts Prometheus has
// fired over the run, as "name=...,remediation_outcome=..." strings.
func (r *remediationRun) fired(t *testing.T) []string {
	t.Helper()
	v, err := r.prom.query(fmt.Sprintf(`max by (name, remediation_outcome) (max_over_time(ALERTS{alertname=%q,alertstate="firing"}[10m]))`, remPage))
	if err != nil {
		t.Fatalf("querying ALERTS: %v", err)
	}
	return keys(v, "name", "remediation_outcome")
}

// checkNotifications checks what reached the sink (the pager, the chat,
// the mail): StartingTooLong as allowed, a set of
// "name,remediation_outcome" pairs, and nothing else. Never the request
// to reboot, which goes to the exporter only; nor NotWorking, which the
// request inhibits while it fires (the shipped inhibit_rules).
func (r *remediationRun) checkNotifications(t *testing.T, allowed ...string) {
	t.Helper()
	for _, n := range r.sink.Notifications() {
		for _, a := range n.Alerts {
			switch name := a.Labels["alertname"]; {
			case name == remRequest:
				t.Errorf("%s reached receiver %s: it is a request to the exporter, never a page (%v)", remRequest, n.Receiver, a.Labels)
			case name != remPage || !slices.Contains(allowed, a.Labels["name"]+","+a.Labels["remediation_outcome"]):
				t.Errorf("unexpected notification %s at %s: %v", a.Status, n.Receiver, a.Labels)
			}
		}
	}
}

// checkExposition checks the exporter's /metrics with promtool and that no
// secret is in it or in the exporter's log.
func (r *remediationRun) checkExposition(t *testing.T) {
	t.Helper()
	metrics := exportertest.Scrape(t, r.e.URL, nil)
	exportertest.PromtoolCheckMetrics(t, metrics)
	for _, secret := range []string{remToken, remRecoversToken, remStuckToken} {
		if strings.Contains(metrics, secret) {
			t.Errorf("/metrics holds a secret")
		}
		if strings.Contains(r.e.Logs.String(), secret) {
			t.Errorf("the exporter's log holds a secret")
		}
	}
}

// TestRemediationReboot follows two GREEN-API instances stuck in starting
// through the whole procedure: the request to reboot reaches the
// exporter, not the pager; each instance is rebooted once; the re-check
// comes by itself; the one that recovered never pages, the one still
// starting pages at once after its re-check.
func TestRemediationReboot(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Prometheus and Alertmanager")
	}
	testRemediationReboot(t, "")
}

// TestRemediationRebootResent is TestRemediationReboot with Alertmanager
// resending every 2 seconds, far within the exporter's window: the resends
// reach the exporter and are held, and each instance is still rebooted
// once.
func TestRemediationRebootResent(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Prometheus and Alertmanager")
	}
	testRemediationReboot(t, "2s")
}

func testRemediationReboot(t *testing.T, repeat string) {
	start := time.Now()
	r := startRemediationRun(t, "  recheck_after: 4s\n  window: 10m\n", repeat)

	// The request reaches the exporter, which reboots both instances.
	for _, name := range []string{remRecovers, remStuck} {
		r.waitValue(t, 90*time.Second, "whatsapp_remediation_actions_total", actions(name, "done"), atLeast(1))
	}
	accepted := map[string]string{"receiver": "remediation", "outcome": "accepted"}
	// One request per instance: the route groups by provider and name.
	requests := r.waitValue(t, 10*time.Second, "whatsapp_alertmanager_requests_total", accepted, atLeast(2))
	rebooted := time.Since(start)

	// The re-checks come by themselves, recheck_after later: nothing but
	// the exporter's timer asks for them.
	rechecks := map[string]string{"provider": "greenapi", "action": "reboot"}
	for outcome, name := range map[string]string{"recovered": remRecovers, "unchanged": remStuck} {
		rechecks["outcome"] = outcome
		r.waitValue(t, 30*time.Second, "whatsapp_remediation_rechecks_total", rechecks, atLeast(1))
		r.waitValue(t, 5*time.Second, "whatsapp_remediation_status",
			map[string]string{"provider": "greenapi", "name": name, "action": "reboot", "status": outcome}, atLeast(1))
	}

	if v, _ := r.value(t, "whatsapp_alertmanager_requests_total", accepted); repeat == "" && v != requests {
		t.Errorf("Alertmanager sent %v requests before the re-checks and %v after: the re-checks are to come without one", requests, v)
	}

	// The instance still starting pages, as GREEN-API's "inform the
	// operator", through the warning's route (whatsapp-chat).
	a := r.sink.Wait(t, 60*time.Second, "the page of the instance still starting", func(n testtool.Notification, a testtool.Alert) bool {
		return n.Receiver == "whatsapp-chat" && a.Status == "firing" && a.Labels["alertname"] == remPage && a.Labels["name"] == remStuck
	}, r.amLogs, r.prom.logs, r.e.Logs)
	if a.Labels["remediation_outcome"] != "rebooted" || a.Labels["severity"] != "warning" {
		t.Errorf("the page of %s: labels %v, want remediation_outcome=rebooted, severity=warning", remStuck, a.Labels)
	}
	paged := time.Since(start)

	if repeat != "" {
		// Alertmanager resends the still firing request (the stuck
		// instance's group) every repeat_interval: at least 3 resends
		// beyond the first request of each group, each held by the
		// window.
		r.waitValue(t, 60*time.Second, "whatsapp_alertmanager_requests_total", accepted, atLeast(2+3))
		held := actions(remStuck, "held")
		held["reason"] = "window"
		r.waitValue(t, 30*time.Second, "whatsapp_remediation_actions_total", held, atLeast(3))
	}

	// The recovered instance is out of starting in Prometheus long enough
	// that no page can come for it any more; none ever fired.
	r.waitSettled(t, remRecovers)
	if got, want := strings.Join(r.fired(t), " "), "name="+remStuck+",remediation_outcome=rebooted"; got != want {
		// remediation_outcome="not_done" fires when the reboot's waiting
		// status was not evaluated within the rule's 10 minutes.
		t.Errorf("Prometheus fired %s for %q, want only %q (rebooted %s and %s after the first scrapes)",
			remPage, got, want, r.rebootDelay(t, remRecovers), r.rebootDelay(t, remStuck))
	}
	r.checkNotifications(t, remStuck+",rebooted")

	// Exactly one reboot each, whatever Alertmanager resent.
	for _, id := range []string{remRecoversID, remStuckID} {
		if n := r.sim.Reboots(simulator.GreenAPI, id); n != 1 {
			t.Errorf("instance %s was rebooted %d times, want once", id, n)
		}
	}
	for _, name := range []string{remRecovers, remStuck} {
		if v, _ := r.value(t, "whatsapp_remediation_actions_total", actions(name, "done")); v != 1 {
			t.Errorf("whatsapp_remediation_actions_total{name=%s,result=done} = %v, want 1", name, v)
		}
		if v, found := r.value(t, "whatsapp_remediation_actions_total", actions(name, "failed")); found {
			t.Errorf("whatsapp_remediation_actions_total{name=%s,result=failed} = %v, want none", name, v)
		}
	}
	if v, _ := r.value(t, "whatsapp_remediation_dry_run", nil); v != 0 {
		t.Errorf("whatsapp_remediation_dry_run = %v", v)
	}
	r.checkExposition(t)
	t.Logf("rebooted %v after the start (%s after the first scrape; the not_done page's `for` is %ds), paged after %v, done after %v",
		rebooted.Round(time.Millisecond), r.rebootDelay(t, remStuck), 10*remScale, paged.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// TestRemediationDryRun runs the procedure with remediation in dry run:
// the request reaches the exporter, which counts what it would have done
// and reboots nothing, and the page comes as with remediation off, for
// the operator to reboot.
func TestRemediationDryRun(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Prometheus and Alertmanager")
	}
	start := time.Now()
	r := startRemediationRun(t, "  dry_run: true\n  recheck_after: 4s\n  window: 10m\n", "")

	for _, name := range []string{remRecovers, remStuck} {
		r.waitValue(t, 90*time.Second, "whatsapp_remediation_actions_total", actions(name, "dry_run"), atLeast(1))
		r.sink.Wait(t, 60*time.Second, "the page of "+name, func(n testtool.Notification, a testtool.Alert) bool {
			return n.Receiver == "whatsapp-chat" && a.Status == "firing" && a.Labels["alertname"] == remPage &&
				a.Labels["name"] == name && a.Labels["remediation_outcome"] == "off"
		}, r.amLogs, r.prom.logs, r.e.Logs)
		r.waitValue(t, 5*time.Second, "whatsapp_remediation_status",
			map[string]string{"provider": "greenapi", "name": name, "action": "reboot", "status": "dry_run"}, atLeast(1))
	}
	if v, _ := r.value(t, "whatsapp_alertmanager_requests_total", map[string]string{"receiver": "remediation", "outcome": "accepted"}); v < 1 {
		t.Errorf("whatsapp_alertmanager_requests_total{receiver=remediation,outcome=accepted} = %v", v)
	}
	if v, _ := r.value(t, "whatsapp_remediation_dry_run", nil); v != 1 {
		t.Errorf("whatsapp_remediation_dry_run = %v, want 1", v)
	}
	for _, id := range []string{remRecoversID, remStuckID} {
		if n := r.sim.Reboots(simulator.GreenAPI, id); n != 0 {
			t.Errorf("instance %s was rebooted %d times in a dry run", id, n)
		}
	}
	for _, name := range []string{remRecovers, remStuck} {
		if v, found := r.value(t, "whatsapp_remediation_actions_total", actions(name, "done")); found {
			t.Errorf("whatsapp_remediation_actions_total{name=%s,result=done} = %v in a dry run", name, v)
		}
	}
	if v, found := r.value(t, "whatsapp_remediation_rechecks_total", nil); found {
		t.Errorf("whatsapp_remediation_rechecks_total = %v in a dry run: nothing was rebooted", v)
	}
	r.checkNotifications(t, remRecovers+",off", remStuck+",off")
	r.checkExposition(t)
	t.Logf("paged after %v", time.Since(start).Round(time.Millisecond))
}
