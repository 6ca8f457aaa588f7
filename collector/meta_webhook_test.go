package collector

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// The secrets of the tests of Meta's webhooks: none may show in an answer,
// a log line or a metric.
const (
	testMetaWABA        = "102290129340398" // the WABA of Meta's examples
	testMetaOtherWABA   = "990000111222333"
	testMetaSecret      = "META-APP-SECRET-0123456789abcdef"
	testMetaOtherSecret = "META-OTHER-APP-SECRET-fedcba98"
	testMetaVerify      = "META-VERIFY-TOKEN-5551234"
	testMetaSingleToken = "META-SINGLE-VERIFY-TOKEN-777"
	testMetaAccessToken = "EAAJB-META-ACCESS-TOKEN-000111222333"
)

// What a delivery's body may hold and nothing may show: the text of a
// person's message, their number, the business number.
var testMetaPrivate = []string{"PERSONAL-MESSAGE-TEXT", "16505551234", "15550783881", "Sheena Nelson"}

// countingLister is a WABA's listing: it counts its calls.
type countingLister struct{ calls atomic.Int64 }

func (l *countingLister) List(context.Context) (Listing, error) {
	l.calls.Add(1)
	return Listing{}, nil
}

// countingMetaClient is a single number's client: it counts its calls.
type countingMetaClient struct {
	calls atomic.Int64
}

func (c *countingMetaClient) State(context.Context) (string, error) {
	c.calls.Add(1)
	return "CONNECTED", nil
}

// metaEnv is a collector watching two WABAs of two apps and a single
// number of the first WABA, and its notification receiver.
type metaEnv struct {
	c          *Collector
	logs       *testlog.Buffer
	url        string
	p          *Provider
	kind       *AccountKind
	waba       *account // testMetaWABA, signed with testMetaSecret
	other      *account // testMetaOtherWABA, signed with testMetaOtherSecret
	lister     *countingLister
	single     *target // a number of testMetaWABA
	client     *countingMetaClient
	answers    strings.Builder
	answeredMu sync.Mutex
}

func newMetaEnv(t testing.TB) *metaEnv {
	t.Helper()
	logger, logs := testlog.New()
	e := &metaEnv{logs: logs, lister: &countingLister{}, client: &countingMetaClient{}}
	e.c = New(logger, Options{Concurrency: 2, MinInterval: time.Minute, Notifications: true})
	t.Cleanup(e.c.Close)
	e.p = &Provider{Name: "meta", States: []string{"CONNECTED"}, Working: "CONNECTED", Methods: []string{"getPhoneNumber"}}
	e.p.methods = newMethodSet(e.p.Methods...)
	e.kind = &AccountKind{Method: "listPhoneNumbers", Metrics: []*AccountMetricSet{metaPushedMetrics}}
	e.waba = e.newAccount("shop-waba", testMetaWABA, testMetaSecret, testMetaVerify, e.lister, nil)
	e.other = e.newAccount("other-waba", testMetaOtherWABA, testMetaOtherSecret, "", &countingLister{}, nil)
	spec := &MetaSpec{PhoneNumberID: "106540352242922", WABAID: testMetaWABA, AccessToken: testMetaAccessToken}
	spec.Name, spec.Provider = "single", "meta"
	spec.appSecret, spec.verifyToken = testMetaSecret, testMetaSingleToken
	e.single = newLoneTarget(e.p, "single", 5*time.Second, e.client)
	e.single.spec = spec
	e.publish()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveMetaWebhook(e.c, w, r) }))
	t.Cleanup(srv.Close)
	e.url = srv.URL + "/webhook/meta"
	return e
}

// newAccount is a WABA account; state is the state of the account it
// replaces (a reload), nil for a new one.
func (e *metaEnv) newAccount(name, waba, secret, verify string, l Lister, state *accountState) *account {
	spec := &MetaAccountSpec{WABAID: waba, AccessToken: testMetaAccessToken}
	spec.Name, spec.Provider = name, "meta"
	spec.Timeout, spec.RefreshInterval = model.Duration(5*time.Second), model.Duration(time.Minute)
	spec.appSecret, spec.verifyToken = secret, verify
	if state == nil {
		state = &accountState{mem: newMemory("meta-account\x00"+name, nil), stats: newInstanceStats(newMethodSet("listPhoneNumbers")),
			last: &Listing{}, ext: &metaAccountState{}}
	}
	return &account{provider: e.p, kind: e.kind, name: name, spec: spec, key: state.mem.key, lister: l,
		logger: e.c.logger.With("provider", "meta", "account", name), methods: newMethodSet("listPhoneNumbers"), state: state}
}

// publish has the collector watch the env's accounts and number, as a
// configuration would.
func (e *metaEnv) publish() {
	snap := emptySnapshot()
	snap.accounts = []*account{e.waba, e.other}
	for _, a := range snap.accounts {
		snap.entries[a.key] = entry{mem: a.state.mem, work: a}
	}
	snap.targets = []*target{e.single}
	snap.byName[e.single.name] = e.single
	snap.entries[e.single.mem.key] = entry{mem: e.single.mem, work: e.single}
	e.c.snap.Store(snap)
}

// reload replaces the accounts with new ones of the same keys, which
// take over their states, as a reload does.
func (e *metaEnv) reload() {
	e.waba = e.newAccount("shop-waba", testMetaWABA, testMetaSecret, testMetaVerify, e.lister, e.waba.state)
	e.other = e.newAccount("other-waba", testMetaOtherWABA, testMetaOtherSecret, "", e.other.lister, e.other.state)
	e.publish()
}

// metaSign is the X-Hub-Signature-256 of body with secret.
func metaSign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// post sends a delivery with the signature header sig ("" for none).
func (e *metaEnv) post(t *testing.T, body []byte, sig string) (int, string) {
	t.Helper()
	auth := ""
	if sig != "" {
		auth = metaSignatureHeader + ": " + sig
	}
	status, _, answer := testtool.Notify(t, nil, e.url, auth, body)
	e.answeredMu.Lock()
	e.answers.WriteString(answer)
	e.answeredMu.Unlock()
	return status, answer
}

// metaFixture is a fixture of testdata/meta/webhook with every entry's
// time set to at.
func metaFixture(t testing.TB, name string, at time.Time) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "meta", "webhook", name))
	if err != nil {
		t.Fatal(err)
	}
	return metaRetime(t, b, at)
}

func metaRetime(t testing.TB, body []byte, at time.Time) []byte {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	for _, en := range v["entry"].([]any) {
		en.(map[string]any)["time"] = at.Unix()
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// count is whatsapp_exporter_webhook_notifications_total{provider="meta",outcome}.
func (e *metaEnv) count(outcome string) float64 {
	return testutil.ToFloat64(providerMetricsOf(e.c).notifications.WithLabelValues("meta", outcome))
}

// accountSeries are the series an account's notification metrics give,
// "name{label=value,...}" to value.
func accountSeries(t *testing.T, a *account) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	metaPushedMetrics.Collect(a, ch)
	close(ch)
	out := map[string]float64{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		var pairs []string
		for _, lp := range pb.GetLabel() {
			pairs = append(pairs, lp.GetName()+"="+lp.GetValue())
		}
		slices.Sort(pairs)
		name := m.Desc().String()
		name = name[strings.Index(name, `fqName: "`)+9:]
		name = name[:strings.Index(name, `"`)]
		v := pb.GetGauge().GetValue() + pb.GetCounter().GetValue()
		out[name+"{"+strings.Join(pairs, ",")+"}"] = v
	}
	return out
}

// asked reports whether m's call was made or queued.
func (e *metaEnv) asked(m *memory, calls *atomic.Int64) bool {
	return e.c.sched.pending(m) || calls.Load() > 0
}

// TestMetaHandshake: the subscription's verification is answered with
// the challenge only for a configured verify token (an account's or a
// single number's) and a plain challenge; anything else gets 403 and a
// fixed word, never an echo.
func TestMetaHandshake(t *testing.T) {
	t.Parallel()
	e := newMetaEnv(t)
	for _, tc := range []struct {
		name, mode, token, challenge string
		ok                           bool
	}{
		{"account's token", "subscribe", testMetaVerify, "1158201444", true},
		{"single number's token", "subscribe", testMetaSingleToken, "ch_AZaz09-.x", true},
		{"wrong token", "subscribe", testMetaVerify + "x", "1158201444", false},
		{"token prefix", "subscribe", testMetaVerify[:10], "1158201444", false},
		{"no token", "subscribe", "", "1158201444", false},
		{"app secret as token", "subscribe", testMetaSecret, "1158201444", false},
		{"other mode", "unsubscribe", testMetaVerify, "1158201444", false},
		{"no mode", "", testMetaVerify, "1158201444", false},
		{"no challenge", "subscribe", testMetaVerify, "", false},
		{"markup challenge", "subscribe", testMetaVerify, "<script>alert(1)</script>", false},
		{"header injection", "subscribe", testMetaVerify, "1\r\nSet-Cookie: x=1", false},
		{"long challenge", "subscribe", testMetaVerify, strings.Repeat("7", maxMetaChallenge+1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{}
			if tc.mode != "" {
				q.Set("hub.mode", tc.mode)
			}
			if tc.token != "" {
				q.Set("hub.verify_token", tc.token)
			}
			if tc.challenge != "" {
				q.Set("hub.challenge", tc.challenge)
			}
			resp, err := http.Get(e.url + "?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantStatus, wantBody := http.StatusForbidden, metaHandshakeForbiddenWords
			if tc.ok {
				wantStatus, wantBody = http.StatusOK, tc.challenge
			}
			if resp.StatusCode != wantStatus || string(b) != wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, b, wantStatus, wantBody)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
		})
	}
	// Other methods: 405, whatever the path below /webhook/meta.
	req, _ := http.NewRequest(http.MethodPut, e.url+"/x", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d, want 405", resp.StatusCode)
	}
	for _, s := range []string{testMetaVerify, testMetaSingleToken, testMetaSecret, testMetaAccessToken} {
		checkNoLeak(t, "logs", e.logs.String(), s)
	}
}

// TestMetaDeliveries: each documented field, signed by the WABA's app,
// is answered 200 and counted by outcome; what it tells is kept and
// exposed, and the WABA's listing and its single number's call are made
// due. A forged signature, another app's, an unknown WABA, a malformed
// body, another object and people's messages change nothing and are
// answered 200 as well, so that Meta retries nothing.
func TestMetaDeliveries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, fixture string
		sign          func(body []byte) string
		edit          func(body []byte) []byte
		outcome       string
		series        map[string]float64 // of shop-waba, beyond the change counts
		field         string             // counted for shop-waba; "" for none
		polls         bool
	}{
		{name: "ban", fixture: "account_update_ban.json", outcome: OutcomeAccepted, field: metaFieldAccountUpdate, polls: true,
			series: map[string]float64{
				"whatsapp_meta_waba_ban_state{account=shop-waba,provider=meta,state=SCHEDULE_FOR_DISABLE}": 1,
				"whatsapp_meta_waba_ban_state{account=shop-waba,provider=meta,state=DISABLE}":              0,
				"whatsapp_meta_waba_ban_state{account=shop-waba,provider=meta,state=REINSTATE}":            0,
			}},
		{name: "restriction, one expired", fixture: "account_update_restriction.json", outcome: OutcomeAccepted, field: metaFieldAccountUpdate, polls: true,
			series: map[string]float64{
				"whatsapp_meta_waba_restriction_expiry_timestamp_seconds{account=shop-waba,provider=meta,restriction_type=RESTRICTED_BIZ_INITIATED_MESSAGING}": 4102444800,
			}},
		{name: "violation", fixture: "account_update_violation.json", outcome: OutcomeAccepted, field: metaFieldAccountUpdate, polls: true},
		{name: "quality, current shape", fixture: "phone_number_quality_update.json", outcome: OutcomeAccepted, field: metaFieldQualityUpdate, polls: true},
		{name: "quality, onboarding", fixture: "phone_number_quality_update_onboarding.json", outcome: OutcomeAccepted, field: metaFieldQualityUpdate, polls: true},
		{name: "quality, older shape", fixture: "phone_number_quality_update_legacy.json", outcome: OutcomeAccepted, field: metaFieldQualityUpdate, polls: true},
		{name: "review", fixture: "account_review_update.json", outcome: OutcomeAccepted, field: metaFieldReviewUpdate, polls: true},
		{name: "capability", fixture: "business_capability_update.json", outcome: OutcomeAccepted, field: metaFieldCapabilityUpdate, polls: true},
		{name: "messages", fixture: "messages.json", outcome: OutcomeIgnored, field: metaFieldOther},
		{name: "messages with a value the exporter cannot read", fixture: "messages.json", outcome: OutcomeIgnored, field: metaFieldOther,
			edit: func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"messaging_product"`), []byte(`"messaging_product":{"a":[1,2]},"x"`), 1)
			}},
		{name: "forged signature", fixture: "account_update_ban.json", outcome: OutcomeUnauthorized,
			sign: func(b []byte) string { return metaSign(testMetaSecret+"x", b) }},
		{name: "no signature", fixture: "account_update_ban.json", outcome: OutcomeUnauthorized, sign: func([]byte) string { return "" }},
		{name: "signature of another body", fixture: "account_update_ban.json", outcome: OutcomeUnauthorized,
			sign: func(b []byte) string { return metaSign(testMetaSecret, append(b, ' ')) }},
		{name: "sha1 signature", fixture: "account_update_ban.json", outcome: OutcomeUnauthorized,
			sign: func(b []byte) string {
				return "sha1=" + strings.TrimPrefix(metaSign(testMetaSecret, b), "sha256=")[:40]
			}},
		{name: "upper-case hex", fixture: "account_update_ban.json", outcome: OutcomeAccepted, field: metaFieldAccountUpdate, polls: true,
			sign: func(b []byte) string {
				return "sha256=" + strings.ToUpper(strings.TrimPrefix(metaSign(testMetaSecret, b), "sha256="))
			},
			series: map[string]float64{
				"whatsapp_meta_waba_ban_state{account=shop-waba,provider=meta,state=SCHEDULE_FOR_DISABLE}": 1,
				"whatsapp_meta_waba_ban_state{account=shop-waba,provider=meta,state=DISABLE}":              0,
				"whatsapp_meta_waba_ban_state{account=shop-waba,provider=meta,state=REINSTATE}":            0,
			}},
		{name: "another app's signature", fixture: "account_update_ban.json", outcome: OutcomeUnauthorized,
			sign: func(b []byte) string { return metaSign(testMetaOtherSecret, b) }},
		{name: "unknown WABA", fixture: "account_update_ban.json", outcome: OutcomeUnknownInstance,
			edit: func(b []byte) []byte { return bytes.ReplaceAll(b, []byte(testMetaWABA), []byte("123456789012345")) }},
		{name: "malformed", fixture: "account_update_ban.json", outcome: OutcomeMalformed,
			edit: func(b []byte) []byte { return b[:len(b)-2] }},
		{name: "malformed value", fixture: "account_review_update.json", outcome: OutcomeMalformed,
			edit: func(b []byte) []byte { return bytes.Replace(b, []byte(`"REJECTED"`), []byte(`["REJECTED"]`), 1) }},
		{name: "another object", fixture: "account_update_ban.json", outcome: OutcomeIgnored,
			edit: func(b []byte) []byte { return bytes.Replace(b, []byte(metaObjectBusinessAccount), []byte("page"), 1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newMetaEnv(t)
			body := metaFixture(t, tc.fixture, time.Now())
			if tc.edit != nil {
				body = tc.edit(body)
			}
			sig := metaSign(testMetaSecret, body)
			if tc.sign != nil {
				sig = tc.sign(body)
			}
			status, answer := e.post(t, body, sig)
			if status != http.StatusOK || answer != "ok\n" {
				t.Errorf("answered %d %q, want 200 \"ok\\n\"", status, answer)
			}
			if got := e.count(tc.outcome); got != 1 {
				t.Errorf("whatsapp_exporter_webhook_notifications_total{meta,%s} = %v, want 1", tc.outcome, got)
			}
			got := accountSeries(t, e.waba)
			want := map[string]float64{}
			for _, f := range MetaWebhookFields {
				n := 0.0
				if f == tc.field {
					n = float64(strings.Count(string(body), `"field"`))
				}
				want["whatsapp_meta_webhook_changes_total{account=shop-waba,field="+f+",provider=meta}"] = n
			}
			for k, v := range tc.series {
				want[k] = v
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("unexpected series %s = %v", k, got[k])
				}
			}
			if e.asked(e.waba.state.mem, &e.lister.calls) != tc.polls {
				t.Errorf("WABA listing made due: %v, want %v", !tc.polls, tc.polls)
			}
			if e.asked(e.single.mem, &e.client.calls) != tc.polls {
				t.Errorf("single number's call made due: %v, want %v", !tc.polls, tc.polls)
			}
			if e.c.sched.pending(e.other.state.mem) {
				t.Error("the other WABA's listing was made due")
			}
			for _, s := range append([]string{testMetaSecret, testMetaOtherSecret, testMetaVerify, testMetaSingleToken, testMetaAccessToken}, testMetaPrivate...) {
				checkNoLeak(t, "logs", e.logs.String(), s)
			}
		})
	}
}

// TestMetaAnswersDoNotTellWatchedWABAs: without the app's signature, a
// delivery for a watched WABA and one for another get the same answer.
func TestMetaAnswersDoNotTellWatchedWABAs(t *testing.T) {
	t.Parallel()
	e := newMetaEnv(t)
	watched := metaFixture(t, "account_update_ban.json", time.Now())
	unknown := bytes.ReplaceAll(watched, []byte(testMetaWABA), []byte("123456789012345"))
	s1, a1 := e.post(t, watched, metaSign("guess", watched))
	s2, a2 := e.post(t, unknown, metaSign("guess", unknown))
	if s1 != s2 || a1 != a2 {
		t.Errorf("watched: %d %q; unknown: %d %q", s1, a1, s2, a2)
	}
}

// TestMetaRedeliveryAndReplay: Meta's retry of a delivery, or a replay
// of a signed one, is stale and makes no call due; so is a change older
// than the value kept, and one older than Meta's 7 days of retries. A
// time far ahead cannot hold later changes stale.
func TestMetaRedeliveryAndReplay(t *testing.T) {
	t.Parallel()
	e := newMetaEnv(t)
	now := time.Now()
	ban := metaFixture(t, "account_update_ban.json", now)
	if _, _ = e.post(t, ban, metaSign(testMetaSecret, ban)); e.count(OutcomeAccepted) != 1 {
		t.Fatalf("first delivery not accepted")
	}
	testtool.WaitFor(t, "the listing made due", func() bool { return e.lister.calls.Load() == 1 && !e.c.sched.pending(e.waba.state.mem) })
	e.post(t, ban, metaSign(testMetaSecret, ban))
	if got := e.count(OutcomeStale); got != 1 {
		t.Errorf("redelivery: stale = %v, want 1", got)
	}
	// A REINSTATE older than the state kept.
	older := bytes.Replace(metaFixture(t, "account_update_ban.json", now.Add(-time.Minute)), []byte("SCHEDULE_FOR_DISABLE"), []byte("REINSTATE"), 1)
	e.post(t, older, metaSign(testMetaSecret, older))
	// Beyond Meta's retries.
	replay := metaFixture(t, "account_update_violation.json", now.Add(-8*24*time.Hour))
	e.post(t, replay, metaSign(testMetaSecret, replay))
	if got := e.count(OutcomeStale); got != 3 {
		t.Errorf("stale = %v, want 3", got)
	}
	if got := accountSeries(t, e.waba)["whatsapp_meta_waba_ban_state{account=shop-waba,provider=meta,state=SCHEDULE_FOR_DISABLE}"]; got != 1 {
		t.Errorf("ban state SCHEDULE_FOR_DISABLE = %v after older changes, want 1", got)
	}
	if e.c.sched.pending(e.waba.state.mem) || e.lister.calls.Load() != 1 {
		t.Errorf("stale deliveries made a call due (%d listings)", e.lister.calls.Load())
	}
	// A time a year ahead counts as a minute ahead: a change sent now
	// two minutes later is newer.
	ahead := metaFixture(t, "account_review_update.json", now.Add(365*24*time.Hour))
	e.post(t, ahead, metaSign(testMetaSecret, ahead))
	approved := bytes.Replace(metaFixture(t, "account_review_update.json", now.Add(2*time.Minute)), []byte("REJECTED"), []byte("APPROVED"), 1)
	e.post(t, approved, metaSign(testMetaSecret, approved))
	if got := e.count(OutcomeAccepted); got != 3 {
		t.Errorf("accepted = %v, want 3", got)
	}
	st := metaStateOf(e.waba)
	st.pushed.mu.Lock()
	review := st.pushed.review
	st.pushed.mu.Unlock()
	if review != "APPROVED" {
		t.Errorf("review decision %q, want APPROVED", review)
	}
}

// TestMetaPollFloor: a change right after a call does not make another
// at once: it makes the call due metaNotifyFloor after the last started,
// for the first scrape after that.
func TestMetaPollFloor(t *testing.T) {
	t.Parallel()
	e := newMetaEnv(t)
	now := time.Now()
	m := e.waba.state.mem
	m.mu.Lock()
	m.called, m.updated, m.freshTill = now.Add(-2*time.Second), now.Add(-time.Second), now.Add(time.Hour)
	m.mu.Unlock()
	body := metaFixture(t, "phone_number_quality_update.json", now)
	e.post(t, body, metaSign(testMetaSecret, body))
	m.mu.Lock()
	freshTill, called := m.freshTill, m.called
	m.mu.Unlock()
	if want := called.Add(metaNotifyFloor); !freshTill.Equal(want) {
		t.Errorf("listing fresh till %v, want %v (the floor after the last call)", freshTill, want)
	}
	if e.c.sched.pending(m) || e.lister.calls.Load() != 0 {
		t.Error("a listing was made within the floor")
	}
	// The floor passed: the next change makes it at once.
	m.mu.Lock()
	m.called = now.Add(-metaNotifyFloor - time.Second)
	m.mu.Unlock()
	body = metaFixture(t, "business_capability_update.json", now)
	e.post(t, body, metaSign(testMetaSecret, body))
	testtool.WaitFor(t, "the listing", func() bool { return e.lister.calls.Load() == 1 })
}

// TestMetaBodiesBounded: a body beyond the bound, endless or not, is read
// no further and answered too_large; a deeply nested one and one of
// thousands of entries are answered without a crash, and the lines about
// unknown WABAs are rate-limited.
func TestMetaBodiesBounded(t *testing.T) {
	t.Parallel()
	e := newMetaEnv(t)
	big := append([]byte(`{"object":"whatsapp_business_account","pad":"`), bytes.Repeat([]byte("x"), maxMetaNotificationBytes)...)
	big = append(big, `"}`...)
	if status, _ := e.post(t, big, metaSign(testMetaSecret, big)); status != http.StatusOK || e.count(OutcomeTooLarge) != 1 {
		t.Errorf("too large body: %d, too_large = %v", status, e.count(OutcomeTooLarge))
	}
	// Endless: the handler stops reading at the bound.
	endless := &countingReader{}
	req := httptest.NewRequest(http.MethodPost, "/webhook/meta", endless)
	rec := httptest.NewRecorder()
	serveMetaWebhook(e.c, rec, req)
	if rec.Code != http.StatusOK || e.count(OutcomeTooLarge) != 2 || endless.n > maxMetaNotificationBytes+64<<10 {
		t.Errorf("endless body: %d, too_large = %v, read %d bytes", rec.Code, e.count(OutcomeTooLarge), endless.n)
	}
	deep := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"` + testMetaWABA + `","time":1,"changes":[{"field":"account_update","value":` +
		strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}]}]}`)
	e.post(t, deep, metaSign(testMetaSecret, deep))
	if got := e.count(OutcomeMalformed); got != 1 {
		t.Errorf("deep JSON: malformed = %v, want 1", got)
	}
	var b strings.Builder
	b.WriteString(`{"object":"whatsapp_business_account","entry":[`)
	for i := range 5000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%d","time":%d,"changes":[{"field":"account_update","value":{"event":"ACCOUNT_VIOLATION"}}]}`, 100000000000000+i, time.Now().Unix())
	}
	b.WriteString(`]}`)
	many := []byte(b.String())
	e.post(t, many, metaSign(testMetaSecret, many))
	if got := e.count(OutcomeUnknownInstance); got != 1 {
		t.Errorf("5000 unknown WABAs: unknown_instance = %v, want 1", got)
	}
	if n := strings.Count(e.logs.String(), "does not watch"); n == 0 || n > unknownLogBurst {
		t.Errorf("%d lines about unknown WABAs, want 1 to %d", n, unknownLogBurst)
	}
}

// countingReader is an endless body of JSON-looking bytes.
type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '['
	}
	r.n += len(p)
	return len(p), nil
}

// TestMetaConcurrentDeliveriesAndReloads: deliveries from many senders
// while the configuration is reloaded over and over: every one answered
// and counted once, the account's state carried across the reloads, and
// no race (go test -race).
func TestMetaConcurrentDeliveriesAndReloads(t *testing.T) {
	t.Parallel()
	e := newMetaEnv(t)
	const senders, each = 8, 25
	stop := make(chan struct{})
	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		for {
			select {
			case <-stop:
				return
			default:
				e.reload()
			}
		}
	}()
	var wg sync.WaitGroup
	base := time.Now()
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				body := metaFixture(t, "account_update_violation.json", base.Add(-time.Duration(s*each+i)*time.Second))
				e.post(t, body, metaSign(testMetaSecret, body))
			}
		})
	}
	wg.Wait()
	close(stop)
	<-reloaded
	total := 0.0
	for _, o := range Outcomes {
		total += e.count(o)
	}
	if total != senders*each || e.count(OutcomeAccepted) != senders*each {
		t.Errorf("%v deliveries counted, %v accepted; want %d each", total, e.count(OutcomeAccepted), senders*each)
	}
	e.reload()
	if got := accountSeries(t, e.waba)["whatsapp_meta_webhook_changes_total{account=shop-waba,field=account_update,provider=meta}"]; got != senders*each {
		t.Errorf("changes counted across reloads: %v, want %d", got, senders*each)
	}
}

// TestMetaNoLeak: whatever comes in, no answer, log line or metric shows
// an app secret, a verify token, the access token, or anything of
// people's messages and numbers.
func TestMetaNoLeak(t *testing.T) {
	t.Parallel()
	e := newMetaEnv(t)
	now := time.Now()
	for _, f := range []string{"account_update_ban.json", "account_update_restriction.json", "account_update_violation.json", "phone_number_quality_update.json",
		"phone_number_quality_update_legacy.json", "account_review_update.json", "business_capability_update.json", "messages.json"} {
		body := metaFixture(t, f, now)
		for _, sig := range []string{metaSign(testMetaSecret, body), metaSign(testMetaOtherSecret, body), "sha256=" + testMetaSecret, testMetaVerify, ""} {
			e.post(t, body, sig)
		}
		e.post(t, body[:len(body)/2], metaSign(testMetaSecret, body[:len(body)/2]))
	}
	for _, tok := range []string{testMetaVerify, testMetaSecret, testMetaAccessToken} {
		resp, err := http.Get(e.url + "?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=" + url.QueryEscape(tok))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		e.answers.Write(b)
	}
	var metrics strings.Builder
	for k := range accountSeries(t, e.waba) {
		metrics.WriteString(k + "\n")
	}
	for _, s := range append([]string{testMetaSecret, testMetaOtherSecret, testMetaVerify, testMetaSingleToken, testMetaAccessToken}, testMetaPrivate...) {
		checkNoLeak(t, "logs", e.logs.String(), s)
		checkNoLeak(t, "answers", e.answers.String(), s)
		checkNoLeak(t, "metrics", metrics.String(), s)
	}
}

// TestMetaExpiry: a restriction's expiration as Meta's reference gives
// it (Unix seconds) and as partners pass it on.
func TestMetaExpiry(t *testing.T) {
	t.Parallel()
	want := time.Date(2022, 12, 12, 7, 9, 27, 0, time.UTC)
	for _, raw := range []string{`1670828967`, `"1670828967"`, `"2022-12-12T07:09:27Z"`, `"2022-12-12T07:09:27.000Z"`, `"2022-12-12T07:09:27+0000"`} {
		got, ok := metaExpiry(json.RawMessage(raw))
		if !ok || !got.Equal(want) {
			t.Errorf("metaExpiry(%s) = %v, %v; want %v", raw, got, ok, want)
		}
	}
	for _, raw := range []string{``, `null`, `0`, `-5`, `"soon"`, `{}`, `"` + strings.Repeat("9", 50) + `"`} {
		if got, ok := metaExpiry(json.RawMessage(raw)); ok {
			t.Errorf("metaExpiry(%s) = %v, want none", raw, got)
		}
	}
}

// TestMetaMetricsLint: the notification metrics pass promtool's checks.
func TestMetaMetricsLint(t *testing.T) {
	t.Parallel()
	e := newMetaEnv(t)
	for _, f := range []string{"account_update_ban.json", "account_update_restriction.json"} {
		body := metaFixture(t, f, time.Now())
		e.post(t, body, metaSign(testMetaSecret, body))
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metaSetCollector{e.waba})
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// metaSetCollector collects one account's notification metrics.
type metaSetCollector struct{ a *account }

func (m metaSetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range metaPushedMetrics.Descs {
		ch <- d
	}
}

func (m metaSetCollector) Collect(ch chan<- prometheus.Metric) { metaPushedMetrics.Collect(m.a, ch) }

// BenchmarkMetaNotification passes one signed account_update through the
// receiver of an exporter watching 10 000 single numbers of 10 000 WABAs
// (the index of the snapshot built once, as between reloads), and
// BenchmarkMetaIndex builds that index.
func BenchmarkMetaNotification(b *testing.B) {
	e := newMetaEnv(b)
	snap := benchMetaSnapshot(e, 10000)
	e.c.snap.Store(snap)
	body := bytes.ReplaceAll(metaFixture(b, "account_update_violation.json", time.Now()), []byte(testMetaWABA), []byte("200000000005000"))
	sig := metaSign(testMetaSecret, body)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/webhook/meta", bytes.NewReader(body))
		req.Header.Set(metaSignatureHeader, sig)
		serveMetaWebhook(e.c, httptest.NewRecorder(), req)
	}
	if e.count(OutcomeAccepted) != 1 {
		b.Fatalf("accepted = %v, want 1 (and the rest stale)", e.count(OutcomeAccepted))
	}
}

func BenchmarkMetaIndex(b *testing.B) {
	e := newMetaEnv(b)
	snap := benchMetaSnapshot(e, 10000)
	b.ReportAllocs()
	for b.Loop() {
		metaIndexCache.Store(nil)
		metaIndexOf(snap)
	}
}

// benchMetaSnapshot is a snapshot of n single numbers, each of its own
// WABA, with the same app.
func benchMetaSnapshot(e *metaEnv, n int) *snapshot {
	snap := emptySnapshot()
	for i := range n {
		spec := &MetaSpec{PhoneNumberID: fmt.Sprint(100000000000000 + i), WABAID: fmt.Sprint(200000000000000 + i), AccessToken: testMetaAccessToken}
		spec.Name, spec.Provider = fmt.Sprint("n", i), "meta"
		spec.appSecret = testMetaSecret
		tg := newLoneTarget(e.p, spec.Name, 5*time.Second, &countingMetaClient{})
		tg.spec = spec
		snap.targets = append(snap.targets, tg)
		snap.byName[tg.name] = tg
		snap.entries[tg.mem.key] = entry{mem: tg.mem, work: tg}
	}
	return snap
}

// TestMetaBudgetHoldsPolls: while the WABA's budget is throttled, a change
// is accepted and kept, but makes no call due: the regular interval
// brings the values once access is regained.
func TestMetaBudgetHoldsPolls(t *testing.T) {
	t.Parallel()
	e := newMetaEnv(t)
	now := time.Now()
	metaStateOf(e.waba).budget.throttle(now.Add(time.Hour))
	body := metaFixture(t, "account_update_ban.json", now)
	e.post(t, body, metaSign(testMetaSecret, body))
	if e.count(OutcomeAccepted) != 1 {
		t.Errorf("accepted = %v, want 1", e.count(OutcomeAccepted))
	}
	if e.asked(e.waba.state.mem, &e.lister.calls) {
		t.Error("a listing was made due beyond the budget")
	}
	// The single number's client keeps no budget here: its call is due.
	if !e.asked(e.single.mem, &e.client.calls) {
		t.Error("the single number's call was not made due")
	}
}

// TestMetaSimulatorWebhooks: the receiver takes the handshake and the
// signed deliveries of the simulator's Meta (internal/simulator), built
// as Meta documents them, and a forged one changes nothing.
func TestMetaSimulatorWebhooks(t *testing.T) {
	t.Parallel()
	e := newMetaEnv(t)
	ctx := t.Context()
	if status, body, err := simulator.MetaVerify(ctx, nil, e.url, testMetaVerify, "987654321"); err != nil || status != 200 || body != "987654321" {
		t.Fatalf("handshake: %d %q %v", status, body, err)
	}
	expiry := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	for _, ch := range []simulator.MetaChange{
		simulator.MetaRestrictionChange(expiry, "RESTRICTED_CUSTOMER_INITIATED_MESSAGING"),
		simulator.MetaBanChange("DISABLE", "April 17, 2025"),
		simulator.MetaQualityChange("15550783881", "DOWNGRADE", "TIER_1K"),
		simulator.MetaReviewChange("PENDING"),
		simulator.MetaCapabilityChange("TIER_10K", 10000),
	} {
		if status, err := simulator.SendMetaWebhook(ctx, nil, e.url, testMetaSecret, testMetaWABA, ch); err != nil || status != 200 {
			t.Fatalf("delivery: %d %v", status, err)
		}
	}
	forged := simulator.MetaEnvelope(testMetaWABA, time.Now(), simulator.MetaBanChange("REINSTATE", ""))
	if status, err := simulator.PostMetaWebhook(ctx, nil, e.url, simulator.MetaSignature("not-the-secret", forged), forged); err != nil || status != 200 {
		t.Fatalf("forged delivery: %d %v", status, err)
	}
	if e.count(OutcomeAccepted) != 5 || e.count(OutcomeUnauthorized) != 1 {
		t.Errorf("accepted %v, unauthorized %v; want 5 and 1", e.count(OutcomeAccepted), e.count(OutcomeUnauthorized))
	}
	got := accountSeries(t, e.waba)
	for k, v := range map[string]float64{
		"whatsapp_meta_waba_restriction_expiry_timestamp_seconds{account=shop-waba,provider=meta,restriction_type=RESTRICTED_CUSTOMER_INITIATED_MESSAGING}": float64(expiry.Unix()),
		"whatsapp_meta_waba_ban_state{account=shop-waba,provider=meta,state=DISABLE}":                                                                       1,
		"whatsapp_meta_webhook_changes_total{account=shop-waba,field=phone_number_quality_update,provider=meta}":                                            1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	checkNoLeak(t, "logs", e.logs.String(), "15550783881")
}

// TestMetaWebhookConfigured: with a configuration loaded as the exporter
// loads it (a WABA account and a single number of that WABA, their
// secrets inline), the handshake takes the account's verify token, and a
// signed quality update makes the WABA's listing and the number's call
// to a Graph server over loopback; the secrets show nowhere.
func TestMetaWebhookConfigured(t *testing.T) {
	t.Parallel()
	var wabaCalls, numberCalls atomic.Int64
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/"+testMetaWABA):
			wabaCalls.Add(1)
			w.Write(readFixture(t, "meta/accounts", "waba_single_page.json"))
		case strings.HasSuffix(r.URL.Path, "/106540352242999"):
			numberCalls.Add(1)
			w.Write(readFixture(t, "meta", "phone_connected.json"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(graph.Close)
	yml := fmt.Sprintf(`accounts:
  - {name: shop, provider: meta, api_url: %[1]q, waba_id: %[2]q, access_token: %[3]q, app_secret: %[4]q, webhook_verify_token: %[5]q}
instances:
  - {name: single, provider: meta, api_url: %[1]q, phone_number_id: "106540352242999", waba_id: %[2]q, access_token: %[3]q, app_secret: %[4]q}
`, graph.URL, testMetaWABA, testMetaAccessToken, testMetaSecret, testMetaVerify)
	cfg, err := config.Load([]byte(yml), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, logs := newTestCollector(t, cfg)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveMetaWebhook(c, w, r) }))
	t.Cleanup(srv.Close)
	a := accountNamed(t, c, "shop")
	testtool.WaitFor(t, "the first listing", func() bool { return listingDone(c, a) })
	if status, body, err := simulator.MetaVerify(t.Context(), nil, srv.URL+"/webhook/meta", testMetaVerify, "42"); err != nil || status != 200 || body != "42" {
		t.Fatalf("handshake: %d %q %v", status, body, err)
	}
	listed := wabaCalls.Load()
	m := a.state.mem
	m.mu.Lock()
	m.called = m.called.Add(-metaNotifyFloor) // the floor has passed
	m.mu.Unlock()
	body := metaFixture(t, "phone_number_quality_update.json", time.Now())
	status, _, answer := testtool.Notify(t, nil, srv.URL+"/webhook/meta", metaSignatureHeader+": "+metaSign(testMetaSecret, body), body)
	if status != 200 || answer != "ok\n" {
		t.Fatalf("delivery: %d %q", status, answer)
	}
	testtool.WaitFor(t, "the listing and the number's call", func() bool { return wabaCalls.Load() > listed && numberCalls.Load() == 1 })
	if got := testutil.ToFloat64(providerMetricsOf(c).notifications.WithLabelValues("meta", OutcomeAccepted)); got != 1 {
		t.Errorf("accepted = %v, want 1", got)
	}
	var series strings.Builder
	for k := range accountSeries(t, a) {
		series.WriteString(k + "\n")
	}
	if !strings.Contains(series.String(), "whatsapp_meta_webhook_changes_total{account=shop,field=phone_number_quality_update,provider=meta}") {
		t.Errorf("no change counted:\n%s", series.String())
	}
	for _, s := range []string{testMetaSecret, testMetaVerify, testMetaAccessToken, "15550783881"} {
		checkNoLeak(t, "logs", logs.String(), s)
		checkNoLeak(t, "series", series.String(), s)
	}
}
