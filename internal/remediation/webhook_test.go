package remediation_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/amwebhook"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/remediation"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

const (
	amToken   = "RemedLeak-7f3e9a0c51d24b68" // Alertmanager's bearer token
	instToken = "InstLeak-2b8d6e0f47a1"      // the instances' api_token
	// words is an annotation's text: people's words, never to be
	// written anywhere.
	words = "PersonalWords-call-Maria-at-home"
)

// rig is an engine on a real collector watching simulated GREEN-API
// instances, its receiver served on loopback.
type rig struct {
	sim    *simulator.Simulator
	engine *remediation.Engine
	clock  *remediation.FakeClock
	url    string
	logs   *testlog.Buffer
	ids    map[string]string // instance name → id

	mu       sync.Mutex
	alerts   map[string]int // whatsapp_alertmanager_alerts_total by outcome
	statuses []int
}

// newRig watches instances named name0.. nameN-1, in state starting,
// which a reboot moves to authorized; remediation is the YAML of the
// remediation section's fields.
func newRig(t *testing.T, n int, remediationFields string) *rig {
	t.Helper()
	r := &rig{sim: simulator.New(), ids: map[string]string{}, alerts: map[string]int{}}
	simSrv := httptest.NewServer(r.sim)
	t.Cleanup(simSrv.Close)
	var p *simulator.Provider
	for _, sp := range simulator.Providers() {
		if sp.Name == simulator.GreenAPI {
			p = sp
		}
	}
	cfg := fmt.Sprintf("alertmanager: {bearer_token: %q}\nremediation: {%s}\ninstances:\n", amToken, remediationFields)
	for i := range n {
		name, id := fmt.Sprint("inst", i), fmt.Sprint(1101000100+i)
		r.ids[name] = id
		// The source of the states and the reboot: GREEN-API's
		// instance-state-tracking recommendation (starting, reboot).
		r.sim.Set(p.Name, id, instToken, simulator.Behaviour{State: "starting"})
		r.sim.SetReboot(p.Name, id, simulator.RebootBehaviour{After: []simulator.Step{{Behaviour: simulator.Behaviour{State: "authorized"}, For: time.Hour}}})
		cfg += p.Config(simSrv.URL, name, id, instToken)
	}
	c, err := config.Load([]byte(cfg), ".", config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := testlog.New()
	r.logs = logs
	col := collector.New(logger, collector.Options{Concurrency: 16, MinInterval: time.Second, UserAgent: "test"})
	t.Cleanup(col.Close)
	if err := col.Update(c); err != nil {
		t.Fatal(err)
	}
	r.clock = remediation.NewFakeClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	r.engine = remediation.NewWithClock(logger, col, r.clock)
	t.Cleanup(r.engine.Close)
	r.engine.Update(c)
	h := r.engine.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx := amwebhook.WithAlertCounter(req.Context(), func(outcome string, n int) {
			r.mu.Lock()
			r.alerts[outcome] += n
			r.mu.Unlock()
		})
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, req.WithContext(ctx))
		r.mu.Lock()
		r.statuses = append(r.statuses, rec.status)
		r.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }

func (r *rig) reboots(name string) int64 { return r.sim.Reboots(simulator.GreenAPI, r.ids[name]) }

func (r *rig) alertCount(outcome string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.alerts[outcome]
}

// alert is a firing alert asking to reboot name, as the rules make it.
func alert(provider, name string) amwebhook.Alert {
	return amwebhook.Alert{
		Status: amwebhook.Firing,
		Labels: map[string]string{"alertname": "WhatsAppInstanceStarting", "provider": provider, "name": name, "remediation": "reboot",
			// Nothing in a payload chooses where to call.
			"api_url": "http://127.0.0.1:1/evil", "id_instance": "999"},
		Annotations: map[string]string{"summary": words},
		StartsAt:    time.Date(2026, 12, 2, 9, 55, 0, 0, time.UTC),
		Fingerprint: "0123456789abcdef",
	}
}

// message is Alertmanager's webhook message v4 (notify/webhook Message in
// Alertmanager 0.28.1; /tmp/research21.md) holding alerts.
func message(alerts ...amwebhook.Alert) []byte {
	m := amwebhook.Message{Version: "4", GroupKey: "{}:{alertname=\"WhatsAppInstanceStarting\"}", Receiver: "whatsapp-remediation", Status: amwebhook.Firing,
		Alerts: alerts, CommonAnnotations: map[string]string{"summary": words}, ExternalURL: "http://alertmanager:9093"}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// post sends body with auth and returns the status and the answer.
func post(t *testing.T, url, auth string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer)
}

func (r *rig) notify(t *testing.T, alerts ...amwebhook.Alert) string {
	t.Helper()
	status, answer := post(t, r.url, "Bearer "+amToken, bytes.NewReader(message(alerts...)))
	if status != http.StatusOK {
		t.Fatalf("HTTP %d %s", status, answer)
	}
	return answer
}

// TestWebhookRebootsOnceAndRechecks: Alertmanager's resends (its
// repeat_interval) and a second alert for the same instance in one
// message make one reboot at the simulator; recheck_after later the
// engine requests the state by itself and finds it recovered.
func TestWebhookRebootsOnceAndRechecks(t *testing.T) {
	r := newRig(t, 2, "recheck_after: 2m")
	answer := r.notify(t, alert("greenapi", "inst0"), alert("greenapi", "inst0"))
	for range 3 {
		r.clock.Advance(time.Minute)
		r.notify(t, alert("greenapi", "inst0"))
	}
	if n := r.reboots("inst0"); n != 1 {
		t.Fatalf("%d reboots at the simulator, want 1 (first answer %s)", n, answer)
	}
	if n := r.reboots("inst1"); n != 0 {
		t.Errorf("an instance no alert named was rebooted %d times", n)
	}
	rec, ok := r.engine.Last("greenapi", "inst0")
	if !ok || rec.Result != remediation.ResultDone || rec.Status != remediation.StatusRecovered || rec.Rechecked.IsZero() {
		t.Errorf("after the re-check: %+v %v", rec, ok)
	}
	if r.alertCount(remediation.AlertDecided) != 5 {
		t.Errorf("alerts %v", r.alerts)
	}
}

// TestWebhookDryRunCallsNothing: in a dry run the simulator sees no
// reboot.
func TestWebhookDryRunCallsNothing(t *testing.T) {
	r := newRig(t, 1, "dry_run: true")
	answer := r.notify(t, alert("greenapi", "inst0"))
	if !strings.Contains(answer, `"dry_run":1`) {
		t.Errorf("answer %s", answer)
	}
	if n := r.reboots("inst0"); n != 0 {
		t.Fatalf("%d reboots at the simulator in a dry run", n)
	}
	if rec, _ := r.engine.Last("greenapi", "inst0"); rec.Result != remediation.ResultDryRun {
		t.Errorf("Last %+v", rec)
	}
}

// TestWebhookConcurrentIdentical: two identical notifications at once
// (two Alertmanagers of a cluster that did not deduplicate) make one
// reboot.
func TestWebhookConcurrentIdentical(t *testing.T) {
	r := newRig(t, 1, "")
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			status, answer := post(t, r.url, "Bearer "+amToken, bytes.NewReader(message(alert("greenapi", "inst0"))))
			if status != http.StatusOK {
				t.Errorf("HTTP %d %s", status, answer)
			}
		})
	}
	wg.Wait()
	if n := r.reboots("inst0"); n != 1 {
		t.Fatalf("%d reboots, want 1", n)
	}
}

// TestWebhookBrake: ten instances of one provider need a reboot at once,
// in one message: the brake lets three through (min_actions; 10% of 10
// is 1) and holds the rest.
func TestWebhookBrake(t *testing.T) {
	r := newRig(t, 10, "brake: {max_share: 0.1, min_actions: 3, window: 15m}")
	var alerts []amwebhook.Alert
	for i := range 10 {
		alerts = append(alerts, alert("greenapi", fmt.Sprint("inst", i)))
	}
	answer := r.notify(t, alerts...)
	var total int64
	for i := range 10 {
		total += r.reboots(fmt.Sprint("inst", i))
	}
	if total != 3 {
		t.Fatalf("%d reboots at the simulator, want 3; answer %s", total, answer)
	}
	if !strings.Contains(answer, `"done":3`) || !strings.Contains(answer, `"held":7`) {
		t.Errorf("answer %s", answer)
	}
	if n := strings.Count(r.logs.String(), "brake engaged"); n != 1 {
		t.Errorf("brake logged %d times", n)
	}
}

// endless is a body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// TestWebhookRefuses: what cannot succeed gets a 4xx and no call; unknown
// names and another provider's instance are refused per alert and
// counted; nothing secret or personal is written anywhere.
func TestWebhookRefuses(t *testing.T) {
	r := newRig(t, 1, "")
	good := message(alert("greenapi", "inst0"))
	for _, c := range []struct {
		name, auth string
		body       io.Reader
		method     string
		want       int
	}{
		{"no token", "", bytes.NewReader(good), "", http.StatusUnauthorized},
		{"forged token", "Bearer RemedLeak-7f3e9a0c51d24b69", bytes.NewReader(good), "", http.StatusUnauthorized},
		{"token as basic", "Basic " + amToken, bytes.NewReader(good), "", http.StatusUnauthorized},
		{"GET", "Bearer " + amToken, nil, http.MethodGet, http.StatusMethodNotAllowed},
		{"not JSON", "Bearer " + amToken, strings.NewReader(`{"version":"4","alerts":[` + words), "", http.StatusBadRequest},
		{"version 3", "Bearer " + amToken, strings.NewReader(`{"version":"3","alerts":[]}`), "", http.StatusBadRequest},
		{"bad status", "Bearer " + amToken, strings.NewReader(`{"version":"4","alerts":[{"status":"` + words + `"}]}`), "", http.StatusBadRequest},
		{"huge", "Bearer " + amToken, io.MultiReader(strings.NewReader(`{"version":"4","x":"`), io.LimitReader(endless{}, amwebhook.MaxBytes)), "", http.StatusRequestEntityTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			method := c.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, r.url, c.body)
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("HTTP %d %s, want %d", resp.StatusCode, answer, c.want)
			}
		})
	}
	// An endless body: the receiver stops reading at its bound and
	// answers 413 (the client may see the connection closed while it is
	// still sending).
	req, _ := http.NewRequest(http.MethodPost, r.url, io.MultiReader(strings.NewReader(`{"version":"4"`), endless{}))
	req.Header.Set("Authorization", "Bearer "+amToken)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("endless body: HTTP %d", resp.StatusCode)
		}
	}
	r.mu.Lock()
	last := r.statuses[len(r.statuses)-1]
	r.mu.Unlock()
	if last != http.StatusRequestEntityTooLarge {
		t.Errorf("endless body: answered %d", last)
	}
	// Unknown names and a name of another provider: 200, counted, no
	// call.
	resolved := alert("greenapi", "inst0")
	resolved.Status = amwebhook.Resolved
	noAction := alert("greenapi", "inst0")
	delete(noAction.Labels, "remediation")
	answer := r.notify(t, alert("greenapi", "nope"), alert("evolution", "inst0"), alert("", ""), alert("greenapi", strings.Repeat("x", 5000)), resolved, noAction)
	if n := r.reboots("inst0"); n != 0 {
		t.Errorf("%d reboots", n)
	}
	for outcome, want := range map[string]int{remediation.AlertUnknownInstance: 4, remediation.AlertResolved: 1, remediation.AlertNoAction: 1} {
		if got := r.alertCount(outcome); got != want {
			t.Errorf("alerts %s = %d, want %d (answer %s)", outcome, got, want, answer)
		}
	}
	if !strings.Contains(r.logs.String(), "names no instance") {
		t.Errorf("unknown names not logged:\n%s", r.logs)
	}
	// A flood of unknown names writes a bounded number of lines.
	var flood []amwebhook.Alert
	for i := range 1000 {
		flood = append(flood, alert("greenapi", fmt.Sprint("forged-", i)))
	}
	r.notify(t, flood...)
	if n := strings.Count(r.logs.String(), "names no instance"); n > 5 {
		t.Errorf("%d log lines for unknown names, want at most 5 a minute", n)
	}
	// Nothing secret or personal anywhere: logs, answers, metrics.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(r.engine.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	metrics := exposition(mfs)
	if strings.Contains(metrics, "forged-") || strings.Contains(metrics, "nope") {
		t.Errorf("an unknown name became a series:\n%s", metrics)
	}
	var seen bytes.Buffer
	seen.WriteString(metrics)
	seen.WriteString(r.logs.String())
	seen.WriteString(answer)
	for _, secret := range []string{amToken, instToken, words, "RemedLeak", "evil"} {
		if strings.Contains(seen.String(), secret) {
			t.Errorf("%q written", secret)
		}
	}
}

func exposition(mfs []*dto.MetricFamily) string {
	var b bytes.Buffer
	for _, mf := range mfs {
		_, _ = expfmt.MetricFamilyToText(&b, mf)
	}
	return b.String()
}

// TestWebhookShuttingDown: once closed, the receiver answers 503, for
// Alertmanager to try again (another replica, or this one restarted).
func TestWebhookShuttingDown(t *testing.T) {
	r := newRig(t, 1, "")
	r.engine.Close()
	status, _ := post(t, r.url, "Bearer "+amToken, bytes.NewReader(message(alert("greenapi", "inst0"))))
	if status != http.StatusServiceUnavailable {
		t.Errorf("HTTP %d, want 503", status)
	}
}

// TestWebhookRebootFailures: the simulator's GREEN-API reboot failures
// become bounded reasons, the window stays taken (the call may have
// reached the provider), and no token reaches the logs at debug level.
func TestWebhookRebootFailures(t *testing.T) {
	cases := map[string]struct {
		rb     simulator.RebootBehaviour
		reason string
	}{
		"inst0": {simulator.RebootBehaviour{NotDone: true}, remediation.ReasonNotDone}, // {"isReboot": false}
		"inst1": {simulator.RebootBehaviour{Fault: simulator.FaultUnauthorized}, collector.ReasonUnauthorized},
		"inst2": {simulator.RebootBehaviour{Fault: simulator.FaultServerError}, collector.ReasonServerError},
		"inst3": {simulator.RebootBehaviour{Fault: simulator.FaultHTML}, collector.ReasonBadResponse},
		"inst4": {simulator.RebootBehaviour{Fault: simulator.FaultRateLimited, RetryAfter: time.Minute}, collector.ReasonRateLimited},
	}
	r := newRig(t, len(cases), "brake: {max_share: 1}")
	for name, c := range cases {
		r.sim.SetReboot(simulator.GreenAPI, r.ids[name], c.rb)
	}
	var alerts []amwebhook.Alert
	for name := range cases {
		alerts = append(alerts, alert("greenapi", name))
	}
	answer := r.notify(t, alerts...)
	if !strings.Contains(answer, fmt.Sprintf(`"failed":%d`, len(cases))) {
		t.Errorf("answer %s", answer)
	}
	for name, c := range cases {
		rec, _ := r.engine.Last("greenapi", name)
		if rec.Result != remediation.ResultFailed || rec.Reason != c.reason || rec.Status != remediation.StatusFailed {
			t.Errorf("%s: %+v, want failed %s", name, rec, c.reason)
		}
	}
	r.notify(t, alerts...)
	for name := range cases {
		if n := r.reboots(name); n != 1 {
			t.Errorf("%s: %d reboot requests, want 1 (the window holds the resend)", name, n)
		}
	}
	if strings.Contains(r.logs.String(), instToken) || strings.Contains(r.logs.String(), amToken) {
		t.Errorf("a token in the logs:\n%s", r.logs)
	}
}
