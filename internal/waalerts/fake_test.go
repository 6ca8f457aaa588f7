package waalerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/amwebhook"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// The tests in this file stand a fake in for the collector, to reach what
// the simulator does not make: a hold, a failure for one sender only, a
// clock set at will.

type sent struct{ sender, to, text string }

type fakeInstances struct {
	mu       sync.Mutex
	statuses map[string]collector.InstanceStatus
	// afterCheck is the status Check leaves; checkErr its error.
	afterCheck map[string]collector.InstanceStatus
	checkErr   map[string]error
	sendErr    map[string]error
	checks     []string
	sent       []sent
}

func newFake(st ...collector.InstanceStatus) *fakeInstances {
	f := &fakeInstances{statuses: map[string]collector.InstanceStatus{}, afterCheck: map[string]collector.InstanceStatus{},
		checkErr: map[string]error{}, sendErr: map[string]error{}}
	for _, s := range st {
		f.statuses[s.Name] = s
	}
	return f
}

func (f *fakeInstances) Status(name string) (collector.InstanceStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.statuses[name]
	return s, ok
}

func (f *fakeInstances) Check(ctx context.Context, name string) (collector.InstanceStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks = append(f.checks, name)
	if s, ok := f.afterCheck[name]; ok {
		f.statuses[name] = s
	}
	return f.statuses[name], f.checkErr[name]
}

func (f *fakeInstances) SendText(ctx context.Context, name, to, text string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.sendErr[name]; err != nil {
		return err
	}
	f.sent = append(f.sent, sent{name, to, text})
	return nil
}

func (f *fakeInstances) messages() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sent(nil), f.sent...)
}

// working is the status of an instance that works, checked at t0.
func working(provider, name string) collector.InstanceStatus {
	return collector.InstanceStatus{Provider: provider, Name: name, State: "authorized", Working: true, Up: true, Checked: t0, CanSend: true}
}

const testToken = "am-token-0123456789abcdef"

// fakeConfig is a configuration with senders and recipients; the
// instances are never called.
func fakeConfig(t testing.TB, senders, recipients []string, rate string) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("instances:\n  - {name: unused, provider: greenapi, id_instance: '1101000001', api_token: secret-unused}\n")
	b.WriteString("alertmanager:\n  bearer_token: " + testToken + "\n")
	b.WriteString("whatsapp_alerts:\n  senders: [" + strings.Join(senders, ", ") + "]\n  recipients: ['" + strings.Join(recipients, "', '") + "']\n")
	if rate != "" {
		b.WriteString("  rate_limit: " + rate + "\n")
	}
	cfg, err := config.Load([]byte(b.String()), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type fakeRig struct {
	s    *Sender
	f    *fakeInstances
	url  string
	logs *testlog.Buffer
	now  time.Time
	mu   sync.Mutex
}

func startFake(t *testing.T, f *fakeInstances, cfg *config.Config) *fakeRig {
	t.Helper()
	logger, logs := testlog.New()
	r := &fakeRig{f: f, logs: logs, now: t0}
	r.s = New(logger, nil)
	r.s.inst = f
	r.s.now = func() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.now }
	r.s.Update(cfg)
	srv := httptest.NewServer(r.s.Handler())
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *fakeRig) advance(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = r.now.Add(d)
}

// post sends msg to the receiver as Alertmanager does, and returns the
// status and body of the answer.
func (r *fakeRig) post(t *testing.T, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func notification(t testing.TB, status string, alerts ...amwebhook.Alert) []byte {
	t.Helper()
	b, err := json.Marshal(amwebhook.Message{Version: "4", GroupKey: "{}/{alertname=~\"WhatsApp.+\"}:{alertname=\"WhatsAppInstanceBlocked\"}",
		Receiver: "whatsapp-pager", Status: status, Alerts: alerts, ExternalURL: "http://alertmanager:9093"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func counter(t *testing.T, s *Sender, name string, labels ...string) float64 {
	t.Helper()
	switch name {
	case "messages":
		return testutil.ToFloat64(s.metrics.messages.WithLabelValues(labels...))
	case "failures":
		return testutil.ToFloat64(s.metrics.failures.WithLabelValues(labels...))
	case "skips":
		return testutil.ToFloat64(s.metrics.skips.WithLabelValues(labels...))
	}
	t.Fatal(name)
	return 0
}

func TestFakeFallbackOnSendFailure(t *testing.T) {
	f := newFake(working("greenapi", "first"), working("wachat", "second"))
	f.sendErr["first"] = &collector.Error{Reason: collector.ReasonServerError}
	r := startFake(t, f, fakeConfig(t, []string{"first", "second"}, []string{"+4915100000001", "4915100000002"}, ""))
	code, body := r.post(t, testToken, notification(t, "firing", blockedAlert("shop", "greenapi", t0.Add(-time.Minute))))
	if code != http.StatusOK {
		t.Fatalf("answer %d %s", code, body)
	}
	msgs := f.messages()
	if len(msgs) != 2 || msgs[0].sender != "second" || msgs[1].sender != "second" || msgs[0].to != "4915100000001" || msgs[1].to != "4915100000002" {
		t.Errorf("sent %+v", msgs)
	}
	// The first failed once: the second recipient did not wait for it.
	if got := counter(t, r.s, "failures", "greenapi", "first", "server_error"); got != 1 {
		t.Errorf("failures of first: %v, want 1", got)
	}
	if got := counter(t, r.s, "messages", "wachat", "second", "sent"); got != 2 {
		t.Errorf("sent by second: %v", got)
	}
}

// A number the provider refuses (client_error) may be the recipient's
// alone: the sender stays in use for the next recipient.
func TestFakeRecipientRefusalKeepsSender(t *testing.T) {
	f := newFake(working("greenapi", "first"), working("wachat", "second"))
	r := startFake(t, f, fakeConfig(t, []string{"first", "second"}, []string{"4915100000001", "4915100000002"}, ""))
	calls := 0
	r.s.inst = &hookInstances{fakeInstances: f, send: func(name, to string) error {
		if name == "first" && to == "4915100000001" {
			calls++
			return &collector.Error{Reason: collector.ReasonClientError}
		}
		return nil
	}}
	if code, body := r.post(t, testToken, notification(t, "firing", blockedAlert("shop", "evolution", t0))); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	msgs := f.messages()
	if len(msgs) != 2 || msgs[0].sender != "second" || msgs[1].sender != "first" || calls != 1 {
		t.Errorf("sent %+v", msgs)
	}
}

type hookInstances struct {
	*fakeInstances
	send func(name, to string) error
}

func (h *hookInstances) SendText(ctx context.Context, name, to, text string) error {
	if err := h.send(name, to); err != nil {
		return err
	}
	return h.fakeInstances.SendText(ctx, name, to, text)
}

// Each reason to pass a sender over, counted; with none left the answer
// is a 503, so that Alertmanager retries.
func TestFakeNoSender(t *testing.T) {
	notWorking := working("greenapi", "yellow")
	notWorking.State, notWorking.Working = "yellowCard", false
	down := working("greenapi", "down")
	down.Up, down.Reason = false, "timeout"
	cannot := working("wachat", "cannot")
	cannot.CanSend = false
	stale := working("evolution", "stale")
	stale.Checked = t0.Add(-time.Hour)
	f := newFake(notWorking, down, cannot, stale, working("greenapi", "shop"))
	f.checkErr["stale"] = &collector.HeldError{Until: t0.Add(time.Minute)}
	r := startFake(t, f, fakeConfig(t, []string{"missing", "cannot", "yellow", "down", "shop", "stale"}, []string{"4915100000001"}, ""))
	code, body := r.post(t, testToken, notification(t, "firing", blockedAlert("shop", "greenapi", t0)))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no sender could send to 1 of 1 recipients") {
		t.Errorf("answer %d %q, want 503", code, body)
	}
	for _, c := range [][]string{
		{"", "missing", SkipUnknown}, {"wachat", "cannot", SkipCannotSend}, {"greenapi", "yellow", SkipNotWorking},
		{"greenapi", "down", SkipNotWorking}, {"greenapi", "shop", SkipAboutItself}, {"evolution", "stale", SkipCheckFailed},
	} {
		if got := counter(t, r.s, "skips", c...); got != 1 {
			t.Errorf("skips %v: %v, want 1", c, got)
		}
	}
	if got := counter(t, r.s, "messages", "", "", ResultNoSender); got != 1 {
		t.Errorf("no_sender: %v", got)
	}
	if len(f.messages()) != 0 {
		t.Errorf("sent %v", f.messages())
	}
	// The retry is not held by the limiter: the message was not sent.
	f.mu.Lock()
	f.statuses["down"] = working("greenapi", "down")
	f.mu.Unlock()
	if code, body := r.post(t, testToken, notification(t, "firing", blockedAlert("shop", "greenapi", t0))); code != 200 {
		t.Errorf("retry: %d %s", code, body)
	}
}

// A status older than staleAfter is requested again before the sender is
// used; a fresh one is not.
func TestFakeStaleStatusIsChecked(t *testing.T) {
	old := working("greenapi", "first")
	old.Checked = t0.Add(-staleAfter - time.Second)
	f := newFake(old, working("wachat", "second"))
	loggedOut := old
	loggedOut.State, loggedOut.Working, loggedOut.Checked = "notAuthorized", false, t0
	f.afterCheck["first"] = loggedOut
	r := startFake(t, f, fakeConfig(t, []string{"first", "second"}, []string{"4915100000001"}, ""))
	if code, body := r.post(t, testToken, notification(t, "firing", blockedAlert("shop", "evolution", t0))); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if msgs := f.messages(); len(msgs) != 1 || msgs[0].sender != "second" {
		t.Errorf("sent %+v", msgs)
	}
	if len(f.checks) != 1 || f.checks[0] != "first" {
		t.Errorf("checks %v, want first only", f.checks)
	}
}

func TestFakeRateLimitAnswers200(t *testing.T) {
	f := newFake(working("greenapi", "first"))
	r := startFake(t, f, fakeConfig(t, []string{"first"}, []string{"4915100000001"}, "{messages: 2, per: 1h}"))
	for k := range 5 {
		a := blockedAlert("shop", "wachat", t0.Add(time.Duration(k)*time.Second)) // a new episode each time
		if code, body := r.post(t, testToken, notification(t, "firing", a)); code != 200 {
			t.Fatalf("notification %d: %d %s", k, code, body)
		}
		r.advance(time.Minute)
	}
	if got := len(f.messages()); got != 2 {
		t.Errorf("%d messages sent, want 2", got)
	}
	if got := counter(t, r.s, "messages", "", "", ResultRateLimited); got != 3 {
		t.Errorf("rate_limited: %v, want 3", got)
	}
	r.advance(time.Hour)
	if code, _ := r.post(t, testToken, notification(t, "resolved", blockedAlert("shop", "wachat", t0))); code != 200 || len(f.messages()) != 3 {
		t.Errorf("an hour later: %d, %d messages", code, len(f.messages()))
	}
}

// One recipient without a sender makes Alertmanager resend to all: those
// who got it are not sent it twice.
func TestFakeRetryIsNotSentTwice(t *testing.T) {
	f := newFake(working("greenapi", "first"))
	r := startFake(t, f, fakeConfig(t, []string{"first"}, []string{"4915100000001", "4915100000002"}, ""))
	r.s.inst = &hookInstances{fakeInstances: f, send: func(name, to string) error {
		if to == "4915100000002" && len(f.messages()) < 2 {
			return &collector.Error{Reason: collector.ReasonClientError}
		}
		return nil
	}}
	body := notification(t, "firing", blockedAlert("shop", "wachat", t0))
	if code, _ := r.post(t, testToken, body); code != http.StatusServiceUnavailable {
		t.Fatalf("first try: %d", code)
	}
	f.mu.Lock()
	f.sent = append(f.sent, sent{}) // lets the second recipient through
	f.mu.Unlock()
	if code, b := r.post(t, testToken, body); code != 200 || !strings.Contains(b, "1 had it already") {
		t.Fatalf("retry: %d %s", code, b)
	}
	if msgs := f.messages(); len(msgs) != 3 || msgs[2].to != "4915100000002" {
		t.Errorf("sent %+v", msgs)
	}
	if got := counter(t, r.s, "messages", "", "", ResultDuplicate); got != 1 {
		t.Errorf("duplicate: %v", got)
	}
}

func TestFakeRefusedRequests(t *testing.T) {
	f := newFake(working("greenapi", "first"))
	r := startFake(t, f, fakeConfig(t, []string{"first"}, []string{"4915100000001"}, ""))
	good := notification(t, "firing", blockedAlert("shop", "wachat", t0))
	for _, c := range []struct {
		token string
		body  []byte
		code  int
	}{
		{"", good, 401},
		{"wrong-token-0123456789", good, 401},
		{testToken, []byte(`{"version":"4","alerts":[{"status":"firing"`), 400},
		{testToken, []byte(`{"version":"3","alerts":[]}`), 400},
		{testToken, []byte(`{"version":"4","alerts":[{"status":"pending"}]}`), 400},
		{testToken, append([]byte(`{"version":"4","x":"`), bytes.Repeat([]byte("4915100000001"), amwebhook.MaxBytes/13+1)...), 413},
	} {
		code, body := r.post(t, c.token, c.body)
		if code != c.code {
			t.Errorf("%.40s: %d %q, want %d", c.body, code, body, c.code)
		}
		if strings.Contains(body, "4915100000001") || strings.Contains(body, testToken) {
			t.Errorf("answer quotes the request: %q", body)
		}
	}
	resp, err := http.Get(r.url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if len(f.messages()) != 0 {
		t.Error("a refused request sent a message")
	}
	// Lines about refusals are bounded: anyone can send them.
	for range 50 {
		r.post(t, "", good)
	}
	if n := strings.Count(r.logs.String(), "Refused an Alertmanager request"); n > refusalLogBurst {
		t.Errorf("%d lines about refused requests, want at most %d", n, refusalLogBurst)
	}
	assertNoSecrets(t, r.s, r.logs.String(), "4915100000001", testToken)
}

func TestFakeNotEnabled(t *testing.T) {
	cfg := fakeConfig(t, []string{"first"}, []string{"4915100000001"}, "")
	cfg.WhatsAppAlerts = nil
	r := startFake(t, newFake(working("greenapi", "first")), cfg)
	if r.s.Enabled() {
		t.Error("enabled without a whatsapp_alerts section")
	}
	if code, _ := r.post(t, testToken, notification(t, "firing")); code != 404 {
		t.Errorf("answer %d, want 404", code)
	}
	if code, _ := r.post(t, "", notification(t, "firing")); code != 401 {
		t.Errorf("answer without token %d, want 401", code)
	}
}

// Reloads while notifications are delivered: each request keeps the
// settings it started with (run with -race).
func TestFakeUpdateWhileServing(t *testing.T) {
	f := newFake(working("greenapi", "first"), working("wachat", "second"))
	cfgs := []*config.Config{
		fakeConfig(t, []string{"first"}, []string{"4915100000001"}, "{messages: 1000}"),
		fakeConfig(t, []string{"second", "first"}, []string{"4915100000001", "4915100000002"}, "{messages: 1000}"),
	}
	r := startFake(t, f, cfgs[0])
	var wg sync.WaitGroup
	for k := range 8 {
		wg.Go(func() {
			for j := range 20 {
				a := blockedAlert("shop", "evolution", t0.Add(time.Duration(k*100+j)*time.Second))
				if code, body := r.post(t, testToken, notification(t, "firing", a)); code != 200 {
					t.Errorf("%d %s", code, body)
				}
			}
		})
	}
	wg.Go(func() {
		for k := range 100 {
			r.s.Update(cfgs[k%2])
		}
	})
	wg.Wait()
	if n := len(f.messages()); n < 160 || n > 320 {
		t.Errorf("%d messages for 160 notifications to one or two recipients", n)
	}
}

// assertNoSecrets fails when a number, the token or a text is in the logs
// or the metrics.
func assertNoSecrets(t *testing.T, s *Sender, logs string, secrets ...string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	var exp strings.Builder
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		exp.WriteString(mf.String())
	}
	for _, sec := range secrets {
		if strings.Contains(logs, sec) {
			t.Errorf("the logs hold %q", sec)
		}
		if strings.Contains(exp.String(), sec) {
			t.Errorf("the metrics hold %q", sec)
		}
	}
}

// The metrics after every kind of request pass promtool.
func TestMetricsPassPromtool(t *testing.T) {
	f := newFake(working("greenapi", "first"), working("wachat", "second"))
	f.sendErr["first"] = &collector.Error{Reason: collector.ReasonTimeout}
	r := startFake(t, f, fakeConfig(t, []string{"first", "second", "gone"}, []string{"4915100000001"}, "{messages: 1}"))
	r.post(t, testToken, notification(t, "firing", blockedAlert("shop", "evolution", t0)))
	r.post(t, testToken, notification(t, "resolved", blockedAlert("shop", "evolution", t0)))
	r.post(t, "", nil)

	reg := prometheus.NewRegistry()
	reg.MustRegister(r.s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{
		`whatsapp_alert_messages_total{result="sent",sender="second",sender_provider="wachat"} 1`,
		`whatsapp_alert_messages_total{result="sent",sender="first",sender_provider="greenapi"} 0`,
		`whatsapp_alert_messages_total{result="rate_limited",sender="",sender_provider=""} 1`,
		`whatsapp_alert_send_failures_total{reason="timeout",sender="first",sender_provider="greenapi"} 1`,
	} {
		if !strings.Contains(text.String(), want+"\n") {
			t.Errorf("missing %s in\n%s", want, text.String())
		}
	}
	promtool := testtool.Require(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text.String())
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, out, text.String())
	}
}

// A reload drops the series of a sender removed from the configuration.
func TestUpdateDropsSeriesOfRemovedSenders(t *testing.T) {
	f := newFake(working("greenapi", "first"), working("wachat", "second"))
	r := startFake(t, f, fakeConfig(t, []string{"first", "second"}, []string{"4915100000001"}, ""))
	r.post(t, testToken, notification(t, "firing", blockedAlert("shop", "evolution", t0)))
	r.s.Update(fakeConfig(t, []string{"second"}, []string{"4915100000001"}, ""))
	if n := testutil.CollectAndCount(r.s.metrics.messages); n != 5 { // second's sent and the four without a sender
		t.Errorf("%d series of whatsapp_alert_messages_total after the reload, want 5", n)
	}
	if got := counter(t, r.s, "messages", "wachat", "second", ResultSent); got != 0 {
		t.Errorf("second: %v", got)
	}
}

// A sender whose turn is too far away (collector.HeldError) is passed
// for the next.
func TestFakeHeldSenderFallsBack(t *testing.T) {
	f := newFake(working("greenapi", "first"), working("wachat", "second"))
	f.sendErr["first"] = &collector.HeldError{Until: t0.Add(time.Minute)}
	r := startFake(t, f, fakeConfig(t, []string{"first", "second"}, []string{"4915100000001"}, ""))
	if code, body := r.post(t, testToken, notification(t, "firing", blockedAlert("shop", "evolution", t0))); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if msgs := f.messages(); len(msgs) != 1 || msgs[0].sender != "second" {
		t.Errorf("sent %+v", msgs)
	}
	if got := counter(t, r.s, "failures", "greenapi", "first", "held"); got != 1 {
		t.Errorf("held: %v", got)
	}
}

// A notification of thousands of alerts is one message per recipient,
// bounded; an alert that names a sender without a provider label passes
// that sender over all the same.
func TestFakeHugeNotification(t *testing.T) {
	f := newFake(working("greenapi", "first"), working("wachat", "second"))
	r := startFake(t, f, fakeConfig(t, []string{"first", "second"}, []string{"4915100000001", "4915100000002"}, ""))
	alerts := make([]amwebhook.Alert, 5000)
	for k := range alerts {
		alerts[k] = blockedAlert(fmt.Sprintf("shop-%d", k), "evolution", t0.Add(-time.Hour))
	}
	alerts[4999].Labels = map[string]string{"alertname": "WhatsAppApiUnauthorized", "name": "first"}
	if code, body := r.post(t, testToken, notification(t, "firing", alerts...)); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	msgs := f.messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	for _, m := range msgs {
		if m.sender != "second" || utf8.RuneCountInString(m.text) > maxText || !strings.HasSuffix(m.text, "and 4990 more (4990 firing, 0 resolved)") {
			t.Errorf("through %s, %d characters, ending %q", m.sender, len(m.text), m.text[max(0, len(m.text)-50):])
		}
	}
}
