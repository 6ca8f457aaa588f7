package collector

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// The Meta Cloud API client is tested with harness_client_test.go: each
// row starts a loopback server that serves a body of testdata/meta
// (README.md names each one's source), against the Graph target and a
// 360dialog-like pass-through target (another header, another path).

const (
	metaTestNumber = "106540352242922"
	metaTestMethod = "getPhoneNumber"
	metaTestPrefix = "/v23.0"
	// metaTestToken looks like a system user's token, with characters
	// that are escaped in URLs and JSON.
	metaTestToken = "EAAJB/s3cr3t+T0ken=Zx&9a8b7c6d5e4f3a2b1c0"
	metaTestD360  = "d360-K3y/+=secret-0123456789"
)

func metaReply(t *testing.T, status int, fixture string, header ...string) providerServe {
	t.Helper()
	return replyFixture(t, "meta", status, fixture, func(r *http.Request) []string {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if key == "" {
			key = r.Header.Get("D360-Api-Key")
		}
		return []string{"{{KEY_JSON}}", escapeJSON(key)}
	}, header...)
}

func metaGraphTarget() providerTarget {
	return providerTarget{
		label: "graph", provider: "meta", method: metaTestMethod, name: metaTestNumber, secret: metaTestToken,
		apiPath: metaTestPrefix,
		yaml: func(apiURL string) string {
			return instanceYAML("meta", "phone_number_id", metaTestNumber, "access_token", metaTestToken, "api_url", apiURL)
		},
		request: wantRequest{
			path: metaTestPrefix + "/" + metaTestNumber, escapedPath: metaTestPrefix + "/" + metaTestNumber,
			query:         url.Values{"fields": {metaNodeFields}},
			authorization: "Bearer " + metaTestToken, notInURL: metaTestToken,
		},
		logURL: "/" + metaTestNumber + "?fields=",
	}
}

// metaD360Target is a pass-through provider's number: 360dialog's
// GET /health_status with the key in D360-API-KEY.
func metaD360Target() providerTarget {
	return providerTarget{
		label: "360dialog", provider: "meta", method: metaTestMethod, name: metaTestNumber, secret: metaTestD360,
		yaml: func(apiURL string) string {
			return instanceYAML("meta", "phone_number_id", metaTestNumber, "access_token", metaTestD360, "api_url", apiURL,
				"auth_header", "D360-API-KEY", "state_path", "/health_status")
		},
		request: wantRequest{path: "/health_status", escapedPath: "/health_status", keyHeaders: http.Header{"D360-Api-Key": {metaTestD360}}, notInURL: metaTestD360},
		logURL:  "/health_status",
	}
}

func init() {
	providerTests["meta"] = providerTest{
		targets:   func() []providerTarget { return []providerTarget{metaGraphTarget(), metaD360Target()} },
		stateBody: func(state string) string { return `{"id":"1","status":"` + state + `"}` },
		goodState: "CONNECTED",
	}
}

func metaCases(t *testing.T) []providerCase {
	reply := func(status int, fixture string, header ...string) providerServe {
		return metaReply(t, status, fixture, header...)
	}
	return append([]providerCase{
		{name: "200 connected", serve: reply(200, "phone_connected.json"), wantState: "CONNECTED"},
		{name: "200 OpenAPI example without status", serve: reply(200, "phone_openapi_comprehensive.json"), wantState: StateUnknown},
		{name: "200 limited", serve: reply(200, "phone_limited.json"), wantState: "CONNECTED"},
		{name: "200 blocked", serve: reply(200, "phone_blocked.json"), wantState: "CONNECTED"},
		{name: "200 status outside the documented set, returned raw", serve: reply(200, "phone_odd_values.json"), wantState: "LINKED"},
		{name: "200 360dialog health_status only", serve: reply(200, "360dialog_health_status.json"), wantState: StateUnknown},
		{name: "200 empty object", serve: replyBytes(200, []byte(`{}`)), wantReason: ReasonBadResponse, wantText: []string{"no phone number"}},
		{name: "200 not JSON", serve: replyBytes(200, []byte(`<html>hi</html>`)), wantReason: ReasonBadResponse},
		{name: "401 code 190 expired token", serve: reply(401, "error_190_expired_token.json"), wantReason: ReasonUnauthorized,
			wantText: []string{"HTTP 401", "code 190", "subcode 463", "expired"}},
		{name: "400 code 190 echoing the token", serve: reply(400, "error_echoes_token.json"), wantReason: ReasonUnauthorized},
		{name: "403 code 200 permission", serve: reply(403, "error_200_permission.json"), wantReason: ReasonUnauthorized,
			wantText: []string{"code 200", "permission"}},
		{name: "404 code 803 unknown number", serve: reply(404, "error_803_not_found.json"), wantReason: ReasonClientError,
			wantText: []string{"phone_number_id", metaTestNumber}},
		{name: "400 code 100 invalid id", serve: reply(400, "error_100_invalid_id.json"), wantReason: ReasonClientError,
			wantText: []string{"code 100", "phone_number_id"}},
		{name: "429 code 4 with Retry-After", serve: reply(429, "error_4_app_limit.json", "Retry-After", "30"), wantReason: ReasonRateLimited,
			wantRetryAfter: [2]time.Duration{30 * time.Second, 30 * time.Second}},
		{name: "400 code 80007 without a time", serve: reply(400, "error_80007_business_limit.json"), wantReason: ReasonRateLimited,
			wantRetryAfter: [2]time.Duration{metaRateLimitedHold, metaRateLimitedHold}},
		{name: "400 code 80007 with estimated_time_to_regain_access", serve: reply(400, "error_80007_business_limit.json",
			"X-Business-Use-Case-Usage", `{"102290129340398":[{"type":"whatsapp_business_management","call_count":100,"total_cputime":3,"total_time":4,"estimated_time_to_regain_access":20}]}`),
			wantReason: ReasonRateLimited, wantRetryAfter: [2]time.Duration{19 * time.Minute, 20 * time.Minute}},
		{name: "500 code 2", serve: reply(500, "error_2_server.json"), wantReason: ReasonServerError, wantText: []string{"code 2"}},
		{name: "502 HTML", serve: replyBytes(502, []byte("<html>Bad Gateway</html>")), wantReason: ReasonServerError},
	}, append(bodySizeCases(func(n int) []byte { return paddedBody(`{"id":"1","status":"CONNECTED"}`, n) }, "CONNECTED"), transportCases()...)...)
}

func TestMetaState(t *testing.T) {
	t.Parallel()
	runProviderCases(t, []providerTarget{metaGraphTarget(), metaD360Target()}, metaCases)
}

// metaHealthOf makes one StateHealth call of a Graph number to a server
// answering fixture with header pairs.
func metaHealthOf(t *testing.T, fixture string, header ...string) (*metaClient, string, *Health) {
	t.Helper()
	u, _ := startRecordingServer(t, metaReply(t, 200, fixture, header...))
	tg := metaGraphTarget()
	c := newTestClient(t, "meta", tg.yaml(u+metaTestPrefix))
	mc := c.Client.(*metaClient)
	ctx, cancel := context.WithTimeout(t.Context(), providerTestSlack)
	defer cancel()
	st, h, err := mc.StateHealth(ctx)
	if err != nil {
		t.Fatalf("StateHealth: %v", err)
	}
	return mc, st, h
}

// TestMetaHealth: what each documented answer makes of a number's
// health: the worst can_send_message of the entities, not the top level;
// the errors of the entities that are not AVAILABLE, bounded; quality,
// limit (current and deprecated field) and settings, bounded to their
// documented values.
func TestMetaHealth(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	for _, tc := range []struct {
		fixture          string
		canSend, quality string
		limit            float64
		errs             []HealthError
		info             HealthInfo
	}{
		{"phone_connected.json", "AVAILABLE", "GREEN", 250, nil,
			HealthInfo{"STANDARD", "APPROVED", "VERIFIED", "CLOUD_API", "LIVE"}},
		{"phone_limited.json", "LIMITED", "NA", 250, nil, HealthInfo{NameStatus: "PENDING_REVIEW"}},
		{"phone_blocked.json", "BLOCKED", "YELLOW", 1000,
			[]HealthError{{"WABA", "141006"}, {"WABA", "141014"}, {"BUSINESS", "141010"}}, HealthInfo{}},
		// Meta's SIP example: a BLOCKED top level for calling alone.
		{"phone_sip_blocked.json", "AVAILABLE", "GREEN", math.NaN(), nil, HealthInfo{}},
		{"phone_odd_values.json", "BLOCKED", "", math.NaN(),
			[]HealthError{{"other", "141002"}, {"other", "other"}, {"WABA", "141014"}, {"WABA", "1"}, {"WABA", "2"}, {"WABA", "3"}, {"WABA", "4"}, {"WABA", "5"}},
			HealthInfo{"other", "other", "EXPIRED", "NOT_APPLICABLE", "SANDBOX"}},
		{"360dialog_health_status.json", "AVAILABLE", "", math.NaN(), nil, HealthInfo{}},
		{"phone_openapi_comprehensive.json", "", "GREEN", math.NaN(), nil, HealthInfo{NameStatus: "APPROVED", CodeVerification: "VERIFIED"}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			t.Parallel()
			_, _, h := metaHealthOf(t, tc.fixture)
			if h.CanSend != tc.canSend || h.Quality != tc.quality || h.Info != tc.info {
				t.Errorf("health = %q %q %+v, want %q %q %+v", h.CanSend, h.Quality, h.Info, tc.canSend, tc.quality, tc.info)
			}
			if !(h.MessagingLimit == tc.limit || math.IsNaN(h.MessagingLimit) && math.IsNaN(tc.limit)) {
				t.Errorf("limit = %v, want %v", h.MessagingLimit, tc.limit)
			}
			if !slices.Equal(h.Errors, tc.errs) {
				t.Errorf("errors = %v, want %v", h.Errors, tc.errs)
			}
			if len(h.errLabels) != len(h.Errors) || !strings.HasPrefix(h.infoLabels, `throughput_level="`) {
				t.Errorf("not sealed: %q %q", h.errLabels, h.infoLabels)
			}
		})
	}
	h := (&metaNode{LimitTier: "TIER_UNLIMITED"}).health()
	if h.MessagingLimit != inf {
		t.Errorf("TIER_UNLIMITED = %v, want +Inf", h.MessagingLimit)
	}
	h = (&metaNode{Limit: "TIER_2K", LimitTier: "TIER_50"}).health()
	if h.MessagingLimit != 2000 {
		t.Errorf("both fields: limit %v, want the current field's 2000", h.MessagingLimit)
	}
}

// TestMetaHealthScraped: a number's health reaches the exposition.
func TestMetaHealthScraped(t *testing.T) {
	t.Parallel()
	u, _ := startRecordingServer(t, metaReply(t, 200, "phone_blocked.json"))
	cfg := loadConfig(t, metaGraphTarget().yaml(u+metaTestPrefix), t.TempDir())
	c, logs := newTestCollector(t, cfg)
	values, _ := scrapeValues(t, c)
	checkValues(t, values, map[string]float64{
		"whatsapp_instance_state,name=" + metaTestNumber + ",provider=meta,state=CONNECTED":                           1,
		"whatsapp_meta_can_send_message,name=" + metaTestNumber + ",provider=meta,status=BLOCKED":                     1,
		"whatsapp_meta_can_send_message,name=" + metaTestNumber + ",provider=meta,status=AVAILABLE":                   0,
		"whatsapp_meta_health_error,entity_type=WABA,error_code=141006,name=" + metaTestNumber + ",provider=meta":     1,
		"whatsapp_meta_health_error,entity_type=BUSINESS,error_code=141010,name=" + metaTestNumber + ",provider=meta": 1,
		"whatsapp_meta_quality_rating,name=" + metaTestNumber + ",provider=meta,rating=YELLOW":                        1,
		"whatsapp_meta_messaging_limit_users,name=" + metaTestNumber + ",provider=meta":                               1000,
	})
	checkNoLeak(t, "log output", logs.String(), metaTestToken)
}

// TestMetaBudgetCurve: the interval a budget asks for at each usage, and
// while throttled; explicit times, no clock.
func TestMetaBudgetCurve(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		usage string
		want  time.Duration
	}{
		{"", time.Minute},
		{`{"call_count":10,"total_cputime":2,"total_time":3}`, time.Minute},
		{`{"call_count":50,"total_cputime":2,"total_time":3}`, time.Minute},
		{`{"call_count":70,"total_cputime":2,"total_time":3}`, 150 * time.Second},
		{`{"call_count":1,"total_cputime":89.99,"total_time":3}`, 240 * time.Second},
		{`{"call_count":90,"total_cputime":2,"total_time":3}`, 15 * time.Minute},
		{`{"call_count":250,"total_cputime":2,"total_time":3}`, 15 * time.Minute},
		{`not json`, time.Minute},
	} {
		var b metaBudget
		b.observe(http.Header{"X-App-Usage": {tc.usage}}, now)
		if got := b.pace(now, time.Minute); got != tc.want {
			t.Errorf("X-App-Usage %s: pace %v, want %v", tc.usage, got, tc.want)
		}
	}
	var b metaBudget
	b.observe(http.Header{"X-Business-Use-Case-Usage": {`{"1":[{"type":"whatsapp","call_count":99,"estimated_time_to_regain_access":50}],"2":[{"type":"whatsapp_business_management","call_count":20,"total_time":30,"estimated_time_to_regain_access":12}]}`}}, now)
	if got := b.pace(now, time.Minute); got != 12*time.Minute {
		t.Errorf("throttled for 12 minutes: pace %v", got)
	}
	if got := b.pace(now.Add(11*time.Minute), time.Minute); got != time.Minute {
		t.Errorf("a minute before access is regained: pace %v, want 1m", got)
	}
	r := b.reading(now)
	if r.buc != 0.3 || !r.seenBUC || r.seenApp || !r.throttledUntil.Equal(now.Add(12*time.Minute)) {
		t.Errorf("reading %+v: want usage 0.3 of the management entry only, throttled 12 minutes", r)
	}
	if b.spare(now) {
		t.Error("spare while throttled")
	}
	// A garbled regain is bounded.
	var g metaBudget
	g.observe(http.Header{"X-Business-Use-Case-Usage": {`{"1":[{"type":"whatsapp_business_management","estimated_time_to_regain_access":1e300}]}`}}, now)
	if got := g.pace(now, time.Minute); got != metaMaxRegain {
		t.Errorf("regain 1e300 minutes: pace %v, want %v", got, metaMaxRegain)
	}
}

// TestMetaBudgetSpare: notifications may bring calls forward only while
// the budget is spare, a few at once and one more every metaSpareEvery.
func TestMetaBudgetSpare(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var b metaBudget
	for i := range metaSpareBurst {
		if !b.spare(now) {
			t.Fatalf("call %d of the burst refused", i+1)
		}
	}
	if b.spare(now) {
		t.Error("a call beyond the burst allowed")
	}
	if !b.spare(now.Add(metaSpareEvery)) {
		t.Error("no call allowed metaSpareEvery later")
	}
	var busy metaBudget
	busy.observe(http.Header{"X-App-Usage": {`{"call_count":60}`}}, now)
	if busy.spare(now) {
		t.Error("spare at 60 % usage")
	}
}

// TestMetaPace: a number's Pace is its poll_interval, stretched by the
// usage its answers tell.
func TestMetaPace(t *testing.T) {
	t.Parallel()
	mc, _, _ := metaHealthOf(t, "phone_connected.json", "X-App-Usage", `{"call_count":95,"total_cputime":1,"total_time":1}`)
	mc.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	if got := mc.Pace(); got != 15*time.Minute {
		t.Errorf("Pace at 95 %% = %v, want 15m", got)
	}
}

// TestMetaConfig: the checks of a number's and a WABA's configuration,
// each error naming its field and never the token.
func TestMetaConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		yml  string
		want []string
	}{
		{instanceYAML("meta", "phone_number_id", "12ab", "access_token", metaTestToken), []string{"phone_number_id", "digits"}},
		{instanceYAML("meta", "phone_number_id", "1", "access_token", metaTestToken, "waba_id", "x"), []string{"waba_id"}},
		{instanceYAML("meta", "phone_number_id", "1", "access_token", metaTestToken, "poll_interval", "5s"), []string{"poll_interval", "shorter"}},
		{instanceYAML("meta", "phone_number_id", "1", "access_token", metaTestToken, "auth_header", "Bad Header"), []string{"auth_header"}},
		{instanceYAML("meta", "phone_number_id", "1", "access_token", metaTestToken, "auth_header", "host"), []string{"auth_header"}},
		{instanceYAML("meta", "phone_number_id", "1", "access_token", metaTestToken, "state_path", "health?x"), []string{"state_path"}},
		{"accounts:\n  - {name: w, provider: meta, access_token: x}\n", []string{"waba_id", "required"}},
		{"accounts:\n  - {name: w, provider: meta, waba_id: '1', access_token: x, refresh_interval: 10s}\n", []string{"refresh_interval"}},
	} {
		_, err := config.Load([]byte(tc.yml), t.TempDir(), config.Options{})
		checkConfigError(t, err, tc.want, metaTestToken)
	}
	cfg, err := config.Load([]byte("accounts:\n  - {name: w, provider: meta, waba_id: '1', access_token: x}\n"+
		instanceYAML("meta", "phone_number_id", "1", "access_token", metaTestToken)), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(cfg.Accounts[0].Spec.Account().RefreshInterval); got != time.Minute {
		t.Errorf("a WABA's default refresh_interval = %v, want 1m", got)
	}
	if got := time.Duration(specOf[*MetaSpec](t, cfg.Instances[0].Spec).PollInterval); got != time.Minute {
		t.Errorf("a number's default poll_interval = %v, want 1m", got)
	}
}

// TestMetaScrapesSpendNoMore: scrapes in a row make one request, however
// short --api.min-interval; the answer's usage stretches how long its
// result stands, and a rate limit holds the number until access is
// regained.
func TestMetaScrapesSpendNoMore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		serve   func(t *testing.T) providerServe
		atLeast time.Duration
	}{
		{"quiet budget", func(t *testing.T) providerServe { return metaReply(t, 200, "phone_connected.json") }, time.Minute},
		{"95 % spent", func(t *testing.T) providerServe {
			return metaReply(t, 200, "phone_connected.json", "X-App-Usage", `{"call_count":95}`)
		}, 15 * time.Minute},
		{"throttled 20 minutes", func(t *testing.T) providerServe {
			return metaReply(t, 400, "error_80007_business_limit.json", "X-Business-Use-Case-Usage",
				`{"1":[{"type":"whatsapp_business_management","call_count":100,"estimated_time_to_regain_access":20}]}`)
		}, 19 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u, rec := startRecordingServer(t, tc.serve(t))
			cfg := loadConfig(t, metaGraphTarget().yaml(u+metaTestPrefix), t.TempDir())
			c := New(discardLogger(), Options{Concurrency: 2, MinInterval: time.Millisecond})
			t.Cleanup(c.Close)
			if err := c.Update(cfg); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				scrapeValues(t, c)
			}
			if n := len(rec.requests()); n != 1 {
				t.Errorf("3 scrapes made %d requests, want 1", n)
			}
			m := targetNamed(t, c, metaTestNumber).mem
			m.mu.Lock()
			stands := m.freshTill.Sub(m.called)
			m.mu.Unlock()
			if stands < tc.atLeast {
				t.Errorf("the result stands %v, want at least %v", stands, tc.atLeast)
			}
		})
	}
}
