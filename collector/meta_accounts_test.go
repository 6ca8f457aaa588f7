package collector

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// A WABA's listing: the shared listing cases (one page each), then paging
// over loopback, the WABA's own health, and a WABA in a collector.

const metaTestWABA = "102290129340398"

func init() {
	listingTargets["meta"] = listingTarget{
		provider: "meta",
		yaml: func(u string) string {
			return fmt.Sprintf("  - {name: waba, provider: meta, api_url: %q, waba_id: %q, access_token: %q}\n", u+metaTestPrefix, metaTestWABA, listingSecrets[0])
		},
		path:        metaTestPrefix + "/" + metaTestWABA,
		checkHeader: func(h http.Header) bool { return h.Get("Authorization") == "Bearer "+listingSecrets[0] },
	}
	listingCases["meta"] = []listingCase{
		{fixture: "waba_single_page.json", status: 200, want: []string{"106540352242922 106540352242922  BANNED"}},
		{fixture: "waba_no_numbers.json", status: 200},
		{fixture: "waba_page2.json", status: 200, want: []string{
			"1906385232743451 1906385232743451  unknown", "1913623884432103 1913623884432103  PENDING"}},
		{body: `{"id":"1","phone_numbers":null}`, status: 200},
		{body: `{"name":"not a WABA"}`, status: 200, wantErr: ReasonBadResponse},
		{body: `[]`, status: 200, wantErr: ReasonBadResponse},
		{body: `{"data":[{"id":"12x"},{"id":"` + strings.Repeat("1", 40) + `"},{"id":3}]}`, status: 200, malformed: 3},
		{body: `{"error":{"message":"Invalid OAuth access token","type":"OAuthException","code":190,"error_subcode":463}}`, status: 401, wantErr: ReasonUnauthorized},
		{body: `{"error":{"message":"Your app doesn't have permission","type":"OAuthException","code":200}}`, status: 403, wantErr: ReasonUnauthorized},
		{body: `{"error":{"message":"Application request limit reached","type":"OAuthException","code":4}}`, status: 429,
			header: []string{"Retry-After", "30"}, wantErr: ReasonRateLimited},
		{body: `{"error":{"message":"WhatsApp Business Account not found","type":"GraphMethodException","code":803}}`, status: 404, wantErr: ReasonClientError},
		{body: "<html>502 Bad Gateway</html>", status: 502, wantErr: ReasonServerError},
	}
}

// metaPagedServer serves a WABA's pages: the node at its path, then the
// edge pages by their after cursor, from next(after) and the fixtures.
type metaPagedServer struct {
	url      string
	requests atomic.Int32
}

func startMetaPaged(t *testing.T, serve func(s *metaPagedServer, w http.ResponseWriter, r *http.Request)) *metaPagedServer {
	s := &metaPagedServer{}
	u, _ := startRecordingServer(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		s.requests.Add(1)
		if r.Header.Get("Authorization") != "Bearer "+metaTestToken {
			w.WriteHeader(401)
			return
		}
		serve(s, w, r)
	})
	s.url = u
	return s
}

func metaAccountYAML(u string, extra string) string {
	return fmt.Sprintf("accounts:\n  - {name: waba, provider: meta, api_url: %q, waba_id: %q, access_token: %q%s}\n", u+metaTestPrefix, metaTestWABA, metaTestToken, extra)
}

func newMetaTestLister(t *testing.T, u, extra string) *metaLister {
	t.Helper()
	cfg, err := config.Load([]byte(metaAccountYAML(u, extra)), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := providerOf("meta")
	hc, err := clientPool{}.renew().get(cfg.Accounts[0].Spec.Account().HTTPClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	api := &API{client: hc, logs: logTo(discardLogger()), metrics: newProviderMetrics().observer(p.Name, newInstanceStats(listingMethods(p)))}
	l, err := p.Account.NewLister(cfg.Accounts[0].Spec, api)
	if err != nil {
		t.Fatal(err)
	}
	return l.(*metaLister)
}

func fixtureText(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "meta", "accounts", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMetaListingPages: the first page (the WABA with its numbers by
// field expansion) asks for every field, paging.next is followed, each
// row's state and health and the WABA's own health are read, and the
// usage header of the answers reaches the account's budget.
func TestMetaListingPages(t *testing.T) {
	t.Parallel()
	page1, page2 := fixtureText(t, "waba_page1.json"), fixtureText(t, "waba_page2.json")
	var firstQuery atomic.Value
	srv := startMetaPaged(t, func(s *metaPagedServer, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Business-Use-Case-Usage", `{"`+metaTestWABA+`":[{"type":"whatsapp_business_management","call_count":`+fmt.Sprint(30*s.requests.Load())+`,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0}]}`)
		switch r.URL.Path {
		case metaTestPrefix + "/" + metaTestWABA:
			firstQuery.Store(r.URL.Query().Get("fields"))
			_, _ = w.Write([]byte(strings.ReplaceAll(page1, "{{NEXT}}", s.url+metaTestPrefix+"/"+metaTestWABA+"/phone_numbers?limit=100&after=MTAx")))
		case metaTestPrefix + "/" + metaTestWABA + "/phone_numbers":
			_, _ = w.Write([]byte(page2))
		default:
			w.WriteHeader(404)
		}
	})
	l := newMetaTestLister(t, srv.url, "")
	ctx, cancel := context.WithTimeout(t.Context(), providerTestSlack)
	defer cancel()
	got, err := l.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := firstQuery.Load().(string); q != "id,account_review_status,health_status,phone_numbers.limit(100){"+metaNodeFields+"}" {
		t.Errorf("fields of the first page = %q", q)
	}
	var have []string
	for _, in := range got.Instances {
		have = append(have, in.Name+" "+in.ID+" "+in.State)
	}
	want := []string{"106540352242922 106540352242922 CONNECTED", "106540352242933 106540352242933 FLAGGED",
		"1906385232743451 1906385232743451 unknown", "1913623884432103 1913623884432103 PENDING"}
	if !slices.Equal(have, want) || got.Malformed != 2 || srv.requests.Load() != 2 {
		t.Errorf("listed %q, %d malformed, in %d requests; want %q, 2 malformed, 2 requests", have, got.Malformed, srv.requests.Load(), want)
	}
	h := got.Instances[0].Health
	if h == nil || h.CanSend != "LIMITED" || h.Quality != "GREEN" || h.MessagingLimit != 2000 || !slices.Equal(h.Errors, []HealthError{{"BUSINESS", "141010"}}) {
		t.Errorf("first number's health = %+v", h)
	}
	if h := got.Instances[3].Health; h == nil || h.MessagingLimit != 50 || h.Quality != "" || h.Info.AccountMode != "SANDBOX" {
		t.Errorf("a row of the edge: health %+v, want the deprecated tier's 50, quality unknown, SANDBOX", h)
	}
	a := got.Account
	if a == nil || a.CanSend != "LIMITED" || a.Review != "APPROVED" || !slices.Equal(a.Errors, []HealthError{{"BUSINESS", "141010"}}) {
		t.Errorf("WABA health = %+v", a)
	}
	if r := l.state.budget.reading(time.Now()); !r.seenBUC || r.buc != 0.6 {
		t.Errorf("budget after two pages: %+v, want the last answer's 60 %%", r)
	}
}

// TestMetaListingPagingBounds: paging.next is followed only under api_url
// (the token goes with it), never back to a page read, and never past
// the pages max_instances needs.
func TestMetaListingPagingBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, want string
		next       func(s *metaPagedServer, r *http.Request) string
		requests   int32
		extra      string
	}{
		{"another host", "outside api_url", func(*metaPagedServer, *http.Request) string {
			return "https://elsewhere.example" + metaTestPrefix + "/" + metaTestWABA + "/phone_numbers?after=x"
		}, 1, ""},
		{"another version", "outside api_url", func(s *metaPagedServer, _ *http.Request) string {
			return s.url + "/v99.0/" + metaTestWABA + "/phone_numbers?after=x"
		}, 1, ""},
		{"a loop", "already read", func(s *metaPagedServer, _ *http.Request) string {
			return s.url + metaTestPrefix + "/" + metaTestWABA + "/phone_numbers?after=same"
		}, 2, ""},
		{"endless pages", "past 2 pages", func(s *metaPagedServer, _ *http.Request) string {
			return fmt.Sprintf("%s%s/%s/phone_numbers?after=%d", s.url, metaTestPrefix, metaTestWABA, s.requests.Load())
		}, 2, ", max_instances: 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startMetaPaged(t, func(s *metaPagedServer, w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, `{"data":[],"paging":{"next":%q}}`, tc.next(s, r))
			})
			l := newMetaTestLister(t, srv.url, tc.extra)
			ctx, cancel := context.WithTimeout(t.Context(), providerTestSlack)
			defer cancel()
			_, err := l.List(ctx)
			e := checkReason(t, err, ReasonBadResponse)
			if !strings.Contains(e.Error(), tc.want) || srv.requests.Load() != tc.requests {
				t.Errorf("error %q after %d requests; want %q after %d", e, srv.requests.Load(), tc.want, tc.requests)
			}
			checkNoLeak(t, "error", e.Error(), metaTestToken)
		})
	}
}

// TestMetaAccountInCollector: a WABA's numbers are watched with their
// health from the listing alone (no call per number), and the account
// metrics tell the WABA's health, review and budget.
func TestMetaAccountInCollector(t *testing.T) {
	t.Parallel()
	page := fixtureText(t, "waba_single_page.json")
	srv := startMetaPaged(t, func(_ *metaPagedServer, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-App-Usage", `{"call_count":12,"total_cputime":1,"total_time":1}`)
		w.Header().Set("X-Business-Use-Case-Usage", `{"`+metaTestWABA+`":[{"type":"whatsapp_business_management","call_count":95,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0}]}`)
		if r.URL.Path != metaTestPrefix+"/"+metaTestWABA {
			w.WriteHeader(404)
			return
		}
		_, _ = w.Write([]byte(page))
	})
	cfg, err := config.Load([]byte(metaAccountYAML(srv.url, "")), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, logs := newTestCollector(t, cfg)
	waitFor(t, "the WABA's number", func() bool { return len(c.Instances()) == 1 })
	values, _ := scrapeValues(t, c)
	n := "106540352242922"
	checkValues(t, values, map[string]float64{
		"whatsapp_instance_state,name=" + n + ",provider=meta,state=BANNED":                                1,
		"whatsapp_meta_can_send_message,name=" + n + ",provider=meta,status=unknown":                       1,
		"whatsapp_meta_quality_rating,name=" + n + ",provider=meta,rating=RED":                             1,
		"whatsapp_api_request_duration_seconds_count,method=listPhoneNumbers,name=" + n + ",provider=meta": 1,
	})
	if got := srv.requests.Load(); got != 1 {
		t.Errorf("%d requests for one listing and a scrape, want 1: the listing is the numbers' state request", got)
	}
	text := gatherAccountMetrics(t, c)
	for _, want := range []string{
		`whatsapp_meta_waba_can_send_message{account="waba",provider="meta",status="BLOCKED"} 1`,
		`whatsapp_meta_waba_health_error{account="waba",entity_type="WABA",error_code="141014",provider="meta"} 1`,
		`whatsapp_meta_waba_review_status{account="waba",provider="meta",status="REJECTED"} 1`,
		`whatsapp_meta_waba_review_status{account="waba",provider="meta",status="unknown"} 0`,
		`whatsapp_meta_api_usage_ratio{budget="waba",provider="meta",type="business_use_case"} 0.95`,
		`whatsapp_meta_api_usage_ratio{budget="waba",provider="meta",type="app"} 0.12`,
		`whatsapp_meta_api_throttled_until_timestamp_seconds{budget="waba",provider="meta"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("account metrics lack %s:\n%s", want, text)
		}
	}
	// At 95 %, the listing stands for 15 refresh intervals.
	a := accountNamed(t, c, "waba")
	if got := a.lister.(pacer).Pace(); got != 15*time.Minute {
		t.Errorf("Pace at 95 %% = %v, want 15m", got)
	}
	checkNoLeak(t, "log output", logs.String(), metaTestToken)
}

// TestMetaNumberBudgetMetrics: a single number's budget is exposed under
// its name.
func TestMetaNumberBudgetMetrics(t *testing.T) {
	t.Parallel()
	u, _ := startRecordingServer(t, metaReply(t, 200, "phone_connected.json", "X-App-Usage", `{"call_count":40}`))
	cfg := loadConfig(t, metaGraphTarget().yaml(u+metaTestPrefix), t.TempDir())
	c, _ := newTestCollector(t, cfg)
	scrapeValues(t, c)
	var got []string
	ch := make(chan prometheus.Metric, 8)
	go func() { metaNumberBudgets{c}.Collect(ch); close(ch) }()
	for m := range ch {
		got = append(got, m.Desc().String())
	}
	if len(got) != 2 || !strings.Contains(got[0], "whatsapp_meta_api_usage_ratio") {
		t.Errorf("single number's budget metrics: %q", got)
	}
}

// BenchmarkMetaListing10000 lists a WABA of 10 000 numbers over loopback:
// 100 pages of 100 rows in the shape of waba_page1.json's first row.
func BenchmarkMetaListing10000(b *testing.B) {
	row := `{"id":"%d","status":"CONNECTED","quality_rating":"GREEN","whatsapp_business_manager_messaging_limit":"TIER_2K","throughput":{"level":"STANDARD"},"name_status":"APPROVED","code_verification_status":"VERIFIED","platform_type":"CLOUD_API","account_mode":"LIVE","health_status":{"can_send_message":"AVAILABLE","entities":[{"entity_type":"PHONE_NUMBER","id":"%d","can_send_message":"AVAILABLE"},{"entity_type":"WABA","id":"1","can_send_message":"AVAILABLE"},{"entity_type":"BUSINESS","id":"2","can_send_message":"AVAILABLE"},{"entity_type":"APP","id":"3","can_send_message":"AVAILABLE"}]}}`
	var pages []string
	for p := range 100 {
		var rows []string
		for i := range 100 {
			id := 106540352200000 + p*100 + i
			rows = append(rows, fmt.Sprintf(row, id, id))
		}
		pages = append(pages, `{"data":[`+strings.Join(rows, ",")+`],"paging":{"next":"{{NEXT}}"}}`)
	}
	srv := httptestPaged(b, pages)
	cfg, err := config.Load([]byte(metaAccountYAML(srv, "")), b.TempDir(), config.Options{})
	if err != nil {
		b.Fatal(err)
	}
	p := providerOf("meta")
	hc, _ := clientPool{}.renew().get(cfg.Accounts[0].Spec.Account().HTTPClientConfig)
	api := &API{client: hc, logs: logTo(discardLogger()), metrics: newProviderMetrics().observer(p.Name, newInstanceStats(listingMethods(p)))}
	l, _ := p.Account.NewLister(cfg.Accounts[0].Spec, api)
	b.ReportAllocs()
	for b.Loop() {
		got, err := l.List(b.Context())
		if err != nil || len(got.Instances) != 10_000 {
			b.Fatalf("%d instances, %v", len(got.Instances), err)
		}
	}
}

// httptestPaged serves pages[k] at ?page=k (the WABA's path is page 0),
// each pointing at the next.
func httptestPaged(b *testing.B, pages []string) string {
	var base string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, _ := strconv.Atoi(r.URL.Query().Get("page"))
		next := ""
		if k+1 < len(pages) {
			next = fmt.Sprintf("%s%s/%s/phone_numbers?page=%d", base, metaTestPrefix, metaTestWABA, k+1)
		}
		_, _ = w.Write([]byte(strings.Replace(pages[k], "{{NEXT}}", next, 1)))
	}))
	b.Cleanup(srv.Close)
	base = srv.URL
	return base
}
