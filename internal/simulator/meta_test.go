package simulator

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// metaGet is a GET of a Graph path below the simulator's /meta/v23.0 (or
// a full URL), with the token as a bearer: the status, the headers and
// the decoded body.
func metaGet(t *testing.T, srv *httptest.Server, path, token string) (int, http.Header, map[string]any) {
	t.Helper()
	target := path
	if !strings.HasPrefix(path, "http") {
		target = srv.URL + "/meta/" + MetaVersion + path
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	if token != "" && strings.Contains(string(raw), token) {
		t.Errorf("answer to %s holds the token: %s", path, raw)
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("GET %s: HTTP %d, not JSON: %v: %.200s", path, resp.StatusCode, err, raw)
	}
	return resp.StatusCode, resp.Header, body
}

// graphError is the code and subcode of a GraphAPIError body; 0, 0 for
// another body.
func graphError(body map[string]any) (code, subcode int) {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(float64)
	s, _ := e["error_subcode"].(float64)
	return int(c), int(s)
}

func keys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// A number's node has the fields asked, and its id, as Graph answers:
// no more (a client reading a field it did not ask for would read
// nothing from Meta), and a field the node does not have is error 100.
func TestMetaNumberAnswersTheFieldsAsked(t *testing.T) {
	s := New()
	srv := httptest.NewServer(s)
	defer srv.Close()
	s.Set(Meta, "106540352242922", "tok-number", Behaviour{State: "CONNECTED"})

	status, h, body := metaGet(t, srv, "/106540352242922?fields=status,quality_rating,throughput{level}", "tok-number")
	if status != http.StatusOK || !slices.Equal(keys(body), []string{"id", "quality_rating", "status", "throughput"}) {
		t.Fatalf("HTTP %d %v, want 200 with id, quality_rating, status, throughput", status, body)
	}
	if body["status"] != "CONNECTED" || body["quality_rating"] != "GREEN" || body["throughput"].(map[string]any)["level"] != "STANDARD" {
		t.Errorf("body %v, want a healthy CONNECTED number", body)
	}
	if h.Get("X-Business-Use-Case-Usage") == "" || h.Get("X-App-Usage") == "" {
		t.Errorf("no usage headers: %v", h)
	}
	// Without fields=: the default fields of the OpenAPI's
	// default_response example.
	_, _, body = metaGet(t, srv, "/106540352242922", "tok-number")
	if !slices.Equal(keys(body), []string{"display_phone_number", "id", "quality_rating", "verified_name"}) {
		t.Errorf("default fields %v", keys(body))
	}
	status, _, body = metaGet(t, srv, "/106540352242922?fields=status,stauts", "tok-number")
	if code, _ := graphError(body); status != http.StatusBadRequest || code != 100 {
		t.Errorf("a misspelt field: HTTP %d %v, want 400 code 100", status, body)
	}
	// Omit leaves a field out even when asked.
	s.Set(Meta, "106540352242922", "tok-number", Behaviour{State: "CONNECTED", Meta: &MetaNumber{Omit: []string{"health_status"}}})
	_, _, body = metaGet(t, srv, "/106540352242922?fields=status,health_status", "tok-number")
	if _, ok := body["health_status"]; ok {
		t.Errorf("omitted health_status is there: %v", body)
	}
}

// The messaging limit: both fields on v23.0; on v22.0 only the
// deprecated messaging_limit_tier, the newer one left out even when
// asked.
func TestMetaMessagingLimitByVersion(t *testing.T) {
	s := New()
	srv := httptest.NewServer(s)
	defer srv.Close()
	s.Set(Meta, "1", "tok", Behaviour{State: "CONNECTED", Meta: &MetaNumber{Limit: "TIER_2K"}})
	const q = "/1?fields=whatsapp_business_manager_messaging_limit,messaging_limit_tier"
	_, _, body := metaGet(t, srv, q, "tok")
	if body["whatsapp_business_manager_messaging_limit"] != "TIER_2K" || body["messaging_limit_tier"] != "TIER_1K" {
		t.Errorf("v23.0: %v", body)
	}
	_, _, body = metaGet(t, srv, srv.URL+"/meta/"+MetaOldVersion+q, "tok")
	if _, ok := body["whatsapp_business_manager_messaging_limit"]; ok || body["messaging_limit_tier"] != "TIER_1K" {
		t.Errorf("v22.0: %v, want messaging_limit_tier alone", body)
	}
}

// health_status as the Health Status page and the OpenAPI example show
// it: every entity, additional_info with LIMITED, errors with BLOCKED,
// the top level the worst of the entities unless set (Meta's SIP
// example: BLOCKED while every entity's can_send_message is AVAILABLE).
func TestMetaHealthStatus(t *testing.T) {
	s := New()
	srv := httptest.NewServer(s)
	defer srv.Close()
	health := func(n MetaNumber) map[string]any {
		t.Helper()
		s.Set(Meta, "2", "tok", Behaviour{State: "CONNECTED", Meta: &n})
		_, _, body := metaGet(t, srv, "/2?fields=health_status", "tok")
		return body["health_status"].(map[string]any)
	}
	entity := func(h map[string]any, typ string) map[string]any {
		for _, e := range h["entities"].([]any) {
			if e := e.(map[string]any); e["entity_type"] == typ {
				return e
			}
		}
		t.Fatalf("no %s entity in %v", typ, h)
		return nil
	}
	h := health(MetaNumber{})
	if h["can_send_message"] != "AVAILABLE" || len(h["entities"].([]any)) != 4 {
		t.Errorf("healthy: %v", h)
	}
	h = health(MetaNumber{Health: MetaHealth{Phone: MetaEntity{CanSend: "LIMITED", Info: []string{MetaDisplayNamePending}}}})
	if h["can_send_message"] != "LIMITED" || entity(h, "PHONE_NUMBER")["additional_info"].([]any)[0] != MetaDisplayNamePending {
		t.Errorf("limited: %v", h)
	}
	h = health(MetaNumber{WABAID: "102290129340398", Health: MetaHealth{
		WABA:     MetaEntity{CanSend: "BLOCKED", Errors: []MetaHealthError{MetaPaymentError, MetaWABABanned}},
		Business: MetaEntity{CanSend: "LIMITED", Errors: []MetaHealthError{MetaBusinessUnverified}}}})
	waba := entity(h, "WABA")
	errs := waba["errors"].([]any)
	if h["can_send_message"] != "BLOCKED" || waba["id"] != "102290129340398" || len(errs) != 2 ||
		errs[0].(map[string]any)["error_code"] != float64(141006) || errs[0].(map[string]any)["possible_solution"] == "" {
		t.Errorf("blocked: %v", h)
	}
	h = health(MetaNumber{Health: MetaHealth{CanSend: "BLOCKED", Phone: MetaEntity{SIP: "BLOCKED"}}})
	if h["can_send_message"] != "BLOCKED" || entity(h, "PHONE_NUMBER")["can_send_message"] != "AVAILABLE" ||
		entity(h, "PHONE_NUMBER")["can_receive_call_sip"] != "BLOCKED" {
		t.Errorf("SIP example: %v", h)
	}
	// A number read with its WABA's token takes the WABA's entities.
	s.SetAccount(Meta, "tok-waba", Member{ID: "2"})
	s.SetMetaWABA("tok-waba", MetaWABA{Health: MetaHealth{Business: MetaEntity{CanSend: "LIMITED", Errors: []MetaHealthError{MetaBusinessUnverified}}}})
	s.Set(Meta, "2", "tok", Behaviour{State: "CONNECTED"})
	_, _, body := metaGet(t, srv, "/2?fields=health_status", "tok-waba")
	h = body["health_status"].(map[string]any)
	if h["can_send_message"] != "LIMITED" || entity(h, "WABA")["id"] != MetaWABAID("tok-waba") {
		t.Errorf("with the WABA's token: %v", h)
	}
}

// Graph's errors, with the statuses of Meta's OpenAPI: the exporter
// tells them apart by code, and none holds the token.
func TestMetaErrors(t *testing.T) {
	s := New()
	srv := httptest.NewServer(s)
	defer srv.Close()
	s.Set(Meta, "3", "tok-3x", Behaviour{State: "CONNECTED"})
	for _, tc := range []struct {
		what, path, token string
		fault             Fault
		status, code, sub int
	}{
		{"no token", "/3", "", FaultNone, 401, 104, 0},
		{"wrong token", "/3", "other", FaultNone, 401, 190, 0},
		{"unknown id", "/999", "tok-3x", FaultNone, 400, 100, 33},
		{"bad syntax", "/3?fields=a{b", "tok-3x", FaultNone, 400, 100, 0},
		{"expired token", "/3", "tok-3x", FaultUnauthorized, 401, 190, 463},
		{"no permission", "/3", "tok-3x", FaultForbidden, 403, 200, 1349174},
		{"not found", "/3", "tok-3x", FaultNotFound, 404, 803, 0},
		{"app limit", "/3", "tok-3x", FaultRateLimited, 429, 4, 2446079},
		{"WABA limit", "/3", "tok-3x", FaultWABARateLimited, 400, 80007, 2494055},
		{"server", "/3", "tok-3x", FaultServerError, 500, 2, 0},
	} {
		s.Set(Meta, "3", "tok-3x", Behaviour{State: "CONNECTED", Fault: tc.fault, RetryAfter: 90 * time.Second})
		status, h, body := metaGet(t, srv, tc.path, tc.token)
		code, sub := graphError(body)
		if status != tc.status || code != tc.code || sub != tc.sub {
			t.Errorf("%s: HTTP %d code %d subcode %d, want %d %d %d", tc.what, status, code, sub, tc.status, tc.code, tc.sub)
		}
		if status == http.StatusUnauthorized && !strings.HasPrefix(h.Get("WWW-Authenticate"), "OAuth ") {
			t.Errorf("%s: WWW-Authenticate %q", tc.what, h.Get("WWW-Authenticate"))
		}
		if tc.code == 4 || tc.code == 80007 {
			if regain := usageOf(t, h, metaOwnWABA("3"))["estimated_time_to_regain_access"]; regain != float64(2) {
				t.Errorf("%s: estimated_time_to_regain_access %v, want 2 (minutes, rounded up)", tc.what, regain)
			}
		}
	}
	// 360dialog's header carries the token as it is.
	s.Set(Meta, "3", "tok-3x", Behaviour{State: "CONNECTED"})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/meta/"+MetaVersion+"/3?fields=status", nil)
	req.Header.Set("D360-API-KEY", "tok-3x")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("D360-API-KEY: HTTP %d", resp.StatusCode)
	}
}

// usageOf is the X-Business-Use-Case-Usage entry of a WABA.
func usageOf(t *testing.T, h http.Header, wabaID string) map[string]any {
	t.Helper()
	var u map[string][]map[string]any
	if err := json.Unmarshal([]byte(h.Get("X-Business-Use-Case-Usage")), &u); err != nil || len(u[wabaID]) != 1 {
		t.Fatalf("X-Business-Use-Case-Usage %q: %v, want one entry for %s", h.Get("X-Business-Use-Case-Usage"), err, wabaID)
	}
	return u[wabaID][0]
}

// A WABA lists its numbers by pages: the edge's paging.next, a full URL,
// leads through every number once, in order; the WABA node's expansion
// phone_numbers.limit(N){…} gives the first page, whose next is the
// edge's with the same fields.
func TestMetaListingPages(t *testing.T) {
	s := New()
	srv := httptest.NewServer(s)
	defer srv.Close()
	var members []Member
	var want []string
	for _, id := range []string{"11", "12", "13", "14", "15", "16", "17"} {
		s.Set(Meta, id, "number-token-"+id, Behaviour{State: "CONNECTED"})
		members = append(members, Member{ID: id})
		want = append(want, id)
	}
	s.SetAccount(Meta, "tok-waba", members...)
	waba := MetaWABAID("tok-waba")
	follow := func(first string) (ids []string, pages int) {
		t.Helper()
		next := first
		for next != "" && pages < 10 {
			status, _, body := metaGet(t, srv, next, "tok-waba")
			if status != http.StatusOK {
				t.Fatalf("page %d: HTTP %d %v", pages, status, body)
			}
			page := body
			if pn, ok := body["phone_numbers"].(map[string]any); ok {
				page = pn
				if body["account_review_status"] != "APPROVED" || body["health_status"] == nil {
					t.Errorf("WABA node %v", body)
				}
			}
			for _, row := range page["data"].([]any) {
				row := row.(map[string]any)
				if row["status"] != "CONNECTED" || !slices.Equal(keys(row), []string{"id", "quality_rating", "status"}) {
					t.Errorf("row %v, want id, status and quality_rating", row)
				}
				ids = append(ids, row["id"].(string))
			}
			next = ""
			if p, ok := page["paging"].(map[string]any); ok {
				next, _ = p["next"].(string)
				if c := p["cursors"].(map[string]any); c["before"] == "" || c["after"] == "" {
					t.Errorf("cursors %v", c)
				}
			}
			pages++
		}
		return ids, pages
	}
	ids, pages := follow("/" + waba + "/phone_numbers?fields=id,status,quality_rating&limit=3")
	if !slices.Equal(ids, want) || pages != 3 {
		t.Errorf("edge: %v in %d pages, want %v in 3", ids, pages, want)
	}
	before := s.ListCalls(Meta, "tok-waba")
	ids, pages = follow("/" + waba + "?fields=id,account_review_status,health_status," + url.QueryEscape("phone_numbers.limit(3){id,status,quality_rating}"))
	if !slices.Equal(ids, want) || pages != 3 {
		t.Errorf("expansion: %v in %d pages, want %v in 3", ids, pages, want)
	}
	if n := s.ListCalls(Meta, "tok-waba") - before; n != 3 {
		t.Errorf("%d listing calls counted, want 3", n)
	}
	if calls, budget := s.MetaUsage(waba); calls != 6 || budget != MetaActiveBudget {
		t.Errorf("MetaUsage = %d of %d, want 6 of %d", calls, budget, MetaActiveBudget)
	}
	for _, tc := range []struct{ what, path string }{
		{"bad cursor", "/" + waba + "/phone_numbers?after=bm9wZQ"},
		{"bad limit", "/" + waba + "/phone_numbers?limit=0"},
		{"another WABA", "/123456789012345/phone_numbers"},
		{"unknown field", "/" + waba + "?fields=" + url.QueryEscape("phone_numbers{id,colour}")},
	} {
		if status, _, body := metaGet(t, srv, tc.path, "tok-waba"); status != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d %v, want 400", tc.what, status, body)
		}
	}
	// A listed number answers the WABA's token too.
	if status, _, _ := metaGet(t, srv, "/12?fields=status", "tok-waba"); status != http.StatusOK {
		t.Errorf("a number with its WABA's token: HTTP %d", status)
	}
}

// The usage headers climb with the calls of the window, and a call
// beyond the budget is refused with code 80007, uncounted, until the
// oldest call leaves the window (explicit times, no waiting).
func TestMetaBudgetSlides(t *testing.T) {
	s := New()
	s.SetMetaWABA("tok", MetaWABA{Budget: 4})
	waba := MetaWABAID("tok")
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for k, want := range []int{25, 50, 75, 100} {
		u := s.charge(waba, t0.Add(time.Duration(k)*time.Minute))
		if u.wabaOut || u.waba != want {
			t.Errorf("call %d: %+v, want %d %%", k+1, u, want)
		}
	}
	u := s.charge(waba, t0.Add(30*time.Minute))
	if !u.wabaOut || u.regain != 30*time.Minute {
		t.Errorf("over the budget: %+v, want refused for 30m", u)
	}
	h := http.Header{}
	u.header(h)
	if got := usageOf(t, h, waba); got["estimated_time_to_regain_access"] != float64(30) || got["call_count"] != float64(100) || got["type"] != "whatsapp_business_management" {
		t.Errorf("header of a refused call: %v", got)
	}
	if u := s.charge(waba, t0.Add(time.Hour)); u.wabaOut || u.waba != 100 {
		t.Errorf("after the first call left the window: %+v, want counted", u)
	}
	// The app's budget (X-App-Usage): code 4 beyond it.
	s.SetMetaAppBudget(4)
	if u := s.charge("other", t0.Add(time.Hour)); !u.over || u.app != 100 {
		t.Errorf("app budget spent: %+v", u)
	}
	// Over HTTP: the sixth call of a five-call budget is 400 code 80007.
	srv := httptest.NewServer(s)
	defer srv.Close()
	s.SetMetaAppBudget(0)
	s.SetMetaWABA("tok2", MetaWABA{Budget: 5})
	s.SetAccount(Meta, "tok2")
	w2 := MetaWABAID("tok2")
	var counts []float64
	for range 5 {
		_, h, _ := metaGet(t, srv, "/"+w2+"?fields=id", "tok2")
		counts = append(counts, usageOf(t, h, w2)["call_count"].(float64))
	}
	status, h, body := metaGet(t, srv, "/"+w2+"?fields=id", "tok2")
	if code, _ := graphError(body); status != http.StatusBadRequest || code != 80007 || usageOf(t, h, w2)["estimated_time_to_regain_access"].(float64) < 59 {
		t.Errorf("beyond the budget: HTTP %d %v %s", status, body, h.Get("X-Business-Use-Case-Usage"))
	}
	if !slices.Equal(counts, []float64{20, 40, 60, 80, 100}) {
		t.Errorf("call_count %v, want climbing 20 to 100", counts)
	}
}

// The demo's budget: a listing and the WABA node each minute keep the
// demo WABA between 75 and 90 % of its budget.
func TestMetaDemoBudgetNearsItsLimit(t *testing.T) {
	calls := 2 * int(metaDemoWindow/time.Minute)
	if pct := calls * 100 / metaDemoBudget; pct < 75 || pct > 90 {
		t.Errorf("the demo WABA's polls use %d %% of its budget, want 75 to 90", pct)
	}
}

// SendMetaWebhook posts Meta's envelope signed with the app secret;
// MetaVerify makes the subscription handshake.
func TestMetaWebhookIsSigned(t *testing.T) {
	type seen struct {
		method, sig, query string
		body               []byte
	}
	got := make(chan seen, 2)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.Header.Get("X-Hub-Signature-256"), r.URL.RawQuery, b}
		_, _ = w.Write([]byte(r.URL.Query().Get("hub.challenge")))
	}))
	defer receiver.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	expiry := time.Unix(1767225600, 0)
	status, err := SendMetaWebhook(ctx, nil, receiver.URL+"/webhook/meta", "app-secret", "102290129340398",
		MetaRestrictionChange(expiry, "RESTRICTED_BIZ_INITIATED_MESSAGING"), MetaBanChange("REINSTATE", "April 17, 2025"))
	if err != nil || status != http.StatusOK {
		t.Fatalf("SendMetaWebhook: %d %v", status, err)
	}
	n := <-got
	if !hmac.Equal([]byte(n.sig), []byte(MetaSignature("app-secret", n.body))) || strings.Contains(string(n.body), "app-secret") {
		t.Errorf("signature %q does not sign the body with the app secret", n.sig)
	}
	var env struct {
		Object string
		Entry  []struct {
			ID      string
			Time    int64
			Changes []struct {
				Field string
				Value map[string]any
			}
		}
	}
	if err := json.Unmarshal(n.body, &env); err != nil || env.Object != "whatsapp_business_account" || len(env.Entry) != 1 ||
		env.Entry[0].ID != "102290129340398" || len(env.Entry[0].Changes) != 2 || env.Entry[0].Changes[0].Field != "account_update" {
		t.Fatalf("envelope %s: %v", n.body, err)
	}
	r := env.Entry[0].Changes[0].Value["restriction_info"].([]any)[0].(map[string]any)
	if r["restriction_type"] != "RESTRICTED_BIZ_INITIATED_MESSAGING" || r["expiration"] != float64(expiry.Unix()) {
		t.Errorf("restriction %v", r)
	}
	status, body, err := MetaVerify(ctx, nil, receiver.URL+"/webhook/meta", "verify-me", "1158201444")
	n = <-got
	q, _ := url.ParseQuery(n.query)
	if err != nil || status != http.StatusOK || body != "1158201444" || n.method != http.MethodGet ||
		q.Get("hub.mode") != "subscribe" || q.Get("hub.verify_token") != "verify-me" {
		t.Errorf("handshake: %d %q %v, query %q", status, body, err, n.query)
	}
}

func TestParseMetaFields(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want: written back; "error" for a syntax error
	}{
		{"id,status", "id,status"},
		{"throughput{level},health_status", "throughput{level},health_status"},
		{"id,phone_numbers.limit(100){id,status,health_status{can_send_message}}", "id,phone_numbers.limit(100){id,status,health_status{can_send_message}}"},
		{"a{b", "error"}, {"a}", "error"}, {",a", "error"}, {"a,", "error"}, {"a.limit(x)", "error"},
		{"a.limit(0)", "error"}, {"a{b{c{d{e{f{g}}}}}}", "error"}, {strings.Repeat("a,", metaMaxFields), "error"},
	} {
		f, err := parseMetaFields(tc.in)
		got := metaFieldString(f)
		if err != nil {
			got = "error"
		}
		if got != tc.want {
			t.Errorf("%.40q: %q (%v), want %q", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseMetaFields: any fields= parameter parses or is refused,
// without a panic, and what parses writes back to what parses the same.
func FuzzParseMetaFields(f *testing.F) {
	f.Add("id,phone_numbers.limit(3){id,status}")
	f.Add("a{b{c}},d.limit(1)")
	f.Fuzz(func(t *testing.T, s string) {
		fields, err := parseMetaFields(s)
		if err != nil {
			return
		}
		again, err := parseMetaFields(metaFieldString(fields))
		if err != nil || metaFieldString(again) != metaFieldString(fields) {
			t.Errorf("%q wrote back as %q: %v", s, metaFieldString(fields), err)
		}
	})
}

const metaAllFields = "id,status,quality_rating,health_status,whatsapp_business_manager_messaging_limit,messaging_limit_tier,throughput,name_status,code_verification_status,platform_type,account_mode"

// BenchmarkMetaNumber is one number's node with every field the exporter
// reads, among 10 000 numbers.
func BenchmarkMetaNumber(b *testing.B) {
	s := New()
	// Budgets the benchmark does not meet.
	s.SetMetaAppBudget(1 << 40)
	s.SetMetaWABA("tok-bench-waba", MetaWABA{ID: "1", Budget: 1 << 40})
	for i := range 10000 {
		s.Set(Meta, strconv.Itoa(1100000+i), "tok-bench", Behaviour{State: "CONNECTED", Meta: &MetaNumber{WABAID: "1"}})
	}
	req := httptest.NewRequest(http.MethodGet, "/meta/"+MetaVersion+"/1100042?fields="+url.QueryEscape(metaAllFields), nil)
	req.Header.Set("Authorization", "Bearer tok-bench")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("HTTP %d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkMetaListing10000 is a whole listing of a WABA of 10 000
// numbers: 100 pages of 100, by paging.next.
func BenchmarkMetaListing10000(b *testing.B) {
	s := New()
	var members []Member
	for i := range 10000 {
		id := strconv.Itoa(1100000 + i)
		s.Set(Meta, id, "tok-number", Behaviour{State: "CONNECTED"})
		members = append(members, Member{ID: id})
	}
	s.SetAccount(Meta, "tok-bench", members...)
	s.SetMetaAppBudget(1 << 40)
	s.SetMetaWABA("tok-bench", MetaWABA{Budget: 1 << 40})
	first := "/meta/" + MetaVersion + "/" + MetaWABAID("tok-bench") + "/phone_numbers?limit=100&fields=" + url.QueryEscape(metaAllFields)
	b.ReportAllocs()
	for b.Loop() {
		next, pages := first, 0
		for next != "" {
			req := httptest.NewRequest(http.MethodGet, next, nil)
			req.Header.Set("Authorization", "Bearer tok-bench")
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			var page struct {
				Paging struct{ Next string }
			}
			if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &page) != nil {
				b.Fatalf("page %d: HTTP %d %.200s", pages, w.Code, w.Body)
			}
			next, pages = page.Paging.Next, pages+1
		}
		if pages != 100 {
			b.Fatalf("%d pages, want 100", pages)
		}
	}
}

// --demo makes Meta's subscription handshake, then sends a signed
// notification at every tick (a millisecond here, metaDemoEvery in the
// demo); without a receiver for Meta, it sends nothing more.
func TestMetaDemoPushesSignedNotifications(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
		if r.URL.Path != "/webhook/meta" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(r.URL.Query().Get("hub.challenge")))
	}))
	defer receiver.Close()
	s := New()
	metaDemoSetup(s)
	s.meta.demoEvery = time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		metaDemoPush(s, ctx, receiver.URL, func(err error) { t.Errorf("demo notification: %v", err) })
	}()
	testtool.WaitFor(t, "three requests", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 3
	})
	cancel()
	<-done
	mu.Lock()
	if q := got[0].URL.Query(); got[0].Method != http.MethodGet || q.Get("hub.verify_token") != demoMetaVerifyToken {
		t.Errorf("handshake: %s %s", got[0].Method, got[0].URL)
	}
	for k, r := range got[1:] {
		if sig := r.Header.Get("X-Hub-Signature-256"); r.Method != http.MethodPost || sig != MetaSignature(demoMetaAppSecret, bodies[k+1]) {
			t.Errorf("notification %d: %s signed %q", k, r.Method, sig)
		}
	}
	mu.Unlock()
	var reports []error
	metaDemoPush(s, t.Context(), receiver.URL+"/elsewhere", func(err error) { reports = append(reports, err) })
	mu.Lock()
	defer mu.Unlock()
	// Count this push's requests only: a request of the first one, cut
	// by its cancellation, may still reach the handler.
	elsewhere := 0
	for _, r := range got {
		if strings.HasPrefix(r.URL.Path, "/elsewhere/") {
			elsewhere++
		}
	}
	if len(reports) != 1 || elsewhere != 1 {
		t.Errorf("without a receiver: reports %v after %d requests, want 1 after 1", reports, elsewhere)
	}
}
