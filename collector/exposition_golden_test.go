package collector

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// The hand-written exposition (exposition.go) against client_model and
// expfmt: what WriteTo writes, parsed by expfmt's text parser and written
// again by expfmt's MetricFamilyToText, must come back byte for byte. That
// checks its escaping (label values and HELP), its float formatting, its
// label order and the families' headers, on a fleet of every provider in
// every kind of result, and on hostile label values and floats written
// through textWriter itself.

// expositionFamilies are the families WriteTo writes, in its order, with
// notifications on.
var expositionFamilies = []string{
	"whatsapp_instance_state",
	"whatsapp_up",
	"whatsapp_instance_state_since_timestamp_seconds",
	"whatsapp_last_update_timestamp_seconds",
	"whatsapp_instance_disconnect_reason",
	"whatsapp_api_request_duration_seconds",
	"whatsapp_api_request_errors_total",
	"whatsapp_api_request_failures_total",
	"whatsapp_outgoing_queue_messages",
	"whatsapp_meta_can_send_message",
	"whatsapp_meta_health_error",
	"whatsapp_meta_quality_rating",
	"whatsapp_meta_messaging_limit_users",
	"whatsapp_meta_phone_number_info",
	"whatsapp_instance_state_from_notification",
	"whatsapp_webhook_notifications_total",
	"whatsapp_exporter_scrape_unrefreshed_instances",
}

// fleetWebhookToken, fleetJWTKey: the fleet's webhook credentials.
const (
	fleetWebhookToken = "FLEET-WEBHOOK-TOKEN-0123456789"
	fleetJWTKey       = "FLEET-JWT-KEY-0123456789abcdef"
)

// fleetInstance is one simulated instance of the exposition fleet.
type fleetInstance struct {
	provider, name, id string
	b                  simulator.Behaviour
	extra              []string
	// webhook, when set, has the simulator push the instance's state
	// once; wrongAuth has a notification with a wrong credential posted.
	webhook   *simulator.WebhookAuth
	wrongAuth bool
}

// fleetCopy is one copy of the fleet: every provider, working, not
// working with a disconnection reason, failing, with a queue, notified.
func fleetCopy(i int) []fleetInstance {
	greenID := func(n int) string { return fmt.Sprint(1101000000 + 10*i + n) }
	metaID := func(n int) string { return fmt.Sprint(106540352200000 + 10*i + n) }
	token := &simulator.WebhookAuth{Token: fleetWebhookToken}
	jwt := &simulator.WebhookAuth{JWTKey: fleetJWTKey}
	queue := []string{"messages_queue: true", fmt.Sprintf("webhook_token: %q", fleetWebhookToken)}
	return []fleetInstance{
		// A million messages queued: 1e+06 in expfmt's formatting.
		{simulator.GreenAPI, fmt.Sprintf("shop-%d", i), greenID(1), simulator.Behaviour{State: "authorized", Queue: 1_000_000}, queue, token, false},
		// A name to escape: quotes, a backslash, UTF-8.
		{simulator.GreenAPI, fmt.Sprintf(`support "main" \ ünïcødé ✓ %d`, i), greenID(2), simulator.Behaviour{State: "authorized", Queue: 3}, queue, nil, true},
		{simulator.GreenAPI, fmt.Sprintf("blocked-%d", i), greenID(3), simulator.Behaviour{State: "blocked"}, nil, nil, false},
		{simulator.GreenAPI, fmt.Sprintf("limited-%d", i), greenID(4), simulator.Behaviour{Fault: simulator.FaultRateLimited, RetryAfter: time.Hour}, nil, nil, false},
		{simulator.GreenAPI, fmt.Sprintf("broken-%d", i), greenID(5), simulator.Behaviour{Fault: simulator.FaultServerError}, nil, nil, false},
		{simulator.Evolution, fmt.Sprintf("bot-%d", i), fmt.Sprintf("sales-bot-%d", i), simulator.Behaviour{State: "open"},
			[]string{fmt.Sprintf("webhook_jwt_key: %q", fleetJWTKey)}, jwt, true},
		// The reason of a disconnection comes in a notification.
		{simulator.Evolution, fmt.Sprintf("logged-out-%d", i), fmt.Sprintf("logged-out-%d", i), simulator.Behaviour{State: "close", Reason: 401},
			[]string{fmt.Sprintf("webhook_jwt_key: %q", fleetJWTKey)}, jwt, false},
		{simulator.Evolution, fmt.Sprintf("garbled-%d", i), fmt.Sprintf("garbled-%d", i), simulator.Behaviour{Fault: simulator.FaultNotJSON}, nil, nil, false},
		{simulator.Wachat, fmt.Sprintf("store-%d", i), fmt.Sprintf("t1_store_%d", i), simulator.Behaviour{State: "open"}, nil, nil, false},
		{simulator.Wachat, fmt.Sprintf("lost-%d", i), fmt.Sprintf("t1_lost_%d", i), simulator.Behaviour{State: "connecting", Reason: 408}, nil, nil, false},
		{simulator.Wachat, fmt.Sprintf("denied-%d", i), fmt.Sprintf("t1_denied_%d", i), simulator.Behaviour{Fault: simulator.FaultUnauthorized}, nil, nil, false},
		// Meta's Cloud API: health families. A number blocked by its
		// WABA's payment error and RED, unlimited; one whose answer
		// leaves the health out; one whose call fails.
		{simulator.Meta, fmt.Sprintf("meta-blocked-%d", i), metaID(1), simulator.Behaviour{State: "CONNECTED", Meta: &simulator.MetaNumber{
			Quality: "RED", Limit: "TIER_UNLIMITED", Throughput: "HIGH", NameStatus: "APPROVED",
			Health: simulator.MetaHealth{WABA: simulator.MetaEntity{CanSend: "BLOCKED", Errors: []simulator.MetaHealthError{{Code: 141006}, {Code: 141014}}}},
		}}, nil, nil, false},
		{simulator.Meta, fmt.Sprintf("meta-bare-%d", i), metaID(2), simulator.Behaviour{State: "FLAGGED", Meta: &simulator.MetaNumber{
			Omit: []string{"health_status", "quality_rating", "whatsapp_business_manager_messaging_limit", "messaging_limit_tier", "throughput"},
		}}, nil, nil, false},
		{simulator.Meta, fmt.Sprintf("meta-broken-%d", i), metaID(3), simulator.Behaviour{Fault: simulator.FaultServerError}, nil, nil, false},
		{simulator.Waha, fmt.Sprintf("waha-%d", i), fmt.Sprintf("session-%d", i), simulator.Behaviour{State: "SCAN_QR_CODE"}, nil, nil, false},
		{simulator.Whatsmeow, fmt.Sprintf("meow-%d", i), fmt.Sprintf("meow-%d", i), simulator.Behaviour{State: "logged_in"}, nil, nil, false},
	}
}

// expositionFleet builds a collector with notifications on over copies of
// the fleet, refreshes it, pushes the notifications, adds an instance
// that has no result yet and returns a scrape of it all.
func expositionFleet(tb testing.TB, copies int) *Scrape {
	tb.Helper()
	sim := simulator.New()
	simSrv := httptest.NewServer(sim)
	tb.Cleanup(simSrv.Close)
	var yml strings.Builder
	yml.WriteString("instances:\n")
	var fleet []fleetInstance
	for i := range copies {
		for _, in := range fleetCopy(i) {
			fleet = append(fleet, in)
			secret := "secret-" + in.id
			sim.Set(in.provider, in.id, secret, in.b)
			yml.WriteString(simulator.ProviderOf(in.provider).Config(simSrv.URL, in.name, in.id, secret, in.extra...))
			if in.webhook != nil {
				sim.SetWebhook(in.provider, in.id, *in.webhook)
			}
		}
	}
	cfg, err := config.Load([]byte(yml.String()), tb.TempDir(), config.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	c := New(slog.New(slog.DiscardHandler), Options{Concurrency: 16, MinInterval: time.Hour, Notifications: true})
	tb.Cleanup(c.Close)
	if err := c.Update(cfg); err != nil {
		tb.Fatal(err)
	}
	c.Refresh(context.Background())

	receiver := httptest.NewServer(c.Webhooks())
	tb.Cleanup(receiver.Close)
	client := &http.Client{Timeout: 10 * time.Second}
	for _, in := range fleet {
		if in.webhook != nil {
			if status, err := sim.Notify(context.Background(), client, receiver.URL, in.provider, in.id); err != nil || status != http.StatusOK {
				tb.Fatalf("notification for %s: %d %v", in.name, status, err)
			}
		}
		if in.wrongAuth {
			n, _ := sim.NotificationOf(in.provider, in.id, in.b, "secret-"+in.id, time.Now())
			req, err := http.NewRequest(http.MethodPost, receiver.URL+"/webhook/"+in.provider+n.Path, bytes.NewReader(n.Body))
			if err != nil {
				tb.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer not-the-credential")
			resp, err := client.Do(req)
			if err != nil {
				tb.Fatal(err)
			}
			resp.Body.Close() // GREEN-API's is answered 200, so that it is not resent
		}
	}

	// One more instance, not called yet: no result to expose.
	yml.WriteString(simulator.ProviderOf(simulator.Wachat).Config(simSrv.URL, "new", "t1_new", "secret-new"))
	sim.Set(simulator.Wachat, "t1_new", "secret-new", simulator.Behaviour{State: "open"})
	if cfg, err = config.Load([]byte(yml.String()), tb.TempDir(), config.Options{}); err != nil {
		tb.Fatal(err)
	}
	if err := c.Update(cfg); err != nil {
		tb.Fatal(err)
	}
	s := storedScrape(c, true)
	s.Unrefreshed = 1
	return s
}

// parseFamilies parses the text format with expfmt.
func parseFamilies(text string) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(strings.NewReader(text))
}

// reencode parses text with expfmt's text parser and writes its families
// again with MetricFamilyToText, in the order of names (which must be
// every family of text), the series of each in their order in text. The
// parser drops a family without series: text is to have none.
func reencode(t *testing.T, text string, names []string) string {
	t.Helper()
	mfs, err := parseFamilies(text)
	if err != nil {
		t.Fatalf("expfmt cannot parse the exposition: %v", err)
	}
	for name := range mfs {
		if !slices.Contains(names, name) {
			t.Errorf("unexpected family %s", name)
		}
	}
	var b strings.Builder
	for _, name := range names {
		mf, ok := mfs[name]
		if !ok {
			t.Errorf("no family %s", name)
			continue
		}
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatalf("MetricFamilyToText(%s): %v", name, err)
		}
	}
	return b.String()
}

// checkReencoded fails the test with the first line where got and want
// differ.
func checkReencoded(t *testing.T, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	g, w := strings.SplitAfter(got, "\n"), strings.SplitAfter(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Fatalf("line %d differs from expfmt's:\n written: %q\n  expfmt: %q", i+1, gl, wl)
		}
	}
}

// promtoolCheck runs promtool check metrics on text, when promtool is
// installed (testtool.Require skips otherwise).
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	promtool := testtool.Require(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestExpositionGolden(t *testing.T) {
	t.Parallel()
	s := expositionFleet(t, 2)
	var b strings.Builder
	n, err := s.WriteTo(&b)
	if err != nil {
		t.Fatal(err)
	}
	text := b.String()
	if n != int64(len(text)) {
		t.Errorf("WriteTo returned %d bytes, wrote %d", n, len(text))
	}
	checkReencoded(t, text, reencode(t, text, expositionFamilies))

	// Every family has series, each of the fleet's cases is there.
	mfs, err := parseFamilies(text)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range expositionFamilies {
		if len(mfs[name].GetMetric()) == 0 {
			t.Errorf("family %s has no series: the fleet is to show every family", name)
		}
	}
	for _, want := range []string{
		`whatsapp_outgoing_queue_messages{provider="greenapi",name="shop-0"} 1e+06`,
		`whatsapp_outgoing_queue_messages{provider="greenapi",name="support \"main\" \\ ünïcødé ✓ 0"} 3`,
		`whatsapp_instance_disconnect_reason{provider="evolution",name="logged-out-0",reason="logged_out"} 1`,
		`whatsapp_instance_disconnect_reason{provider="evolution",name="logged-out-1",reason="logged_out"} 1`,
		`whatsapp_api_request_errors_total{provider="greenapi",name="limited-0",method="getStateInstance",reason="rate_limited"} 1`,
		// Every failure, and every instance and method at 0 before its
		// first: the one not called yet, the queue that never failed.
		`whatsapp_api_request_failures_total{provider="greenapi",name="limited-0",method="getStateInstance"} 1`,
		`whatsapp_api_request_failures_total{provider="wachat",name="denied-1",method="instanceState"} 1`,
		`whatsapp_api_request_failures_total{provider="greenapi",name="shop-0",method="getStateInstance"} 0`,
		`whatsapp_api_request_failures_total{provider="greenapi",name="shop-0",method="getMessagesCount"} 0`,
		`whatsapp_api_request_failures_total{provider="wachat",name="new",method="instanceState"} 0`,
		`whatsapp_instance_state_from_notification{provider="evolution",name="bot-1"} 1`,
		`whatsapp_webhook_notifications_total{provider="evolution",name="bot-0",outcome="unauthorized"} 1`,
		`whatsapp_webhook_notifications_total{provider="greenapi",name="shop-1",outcome="accepted"} 1`,
		`whatsapp_api_request_duration_seconds_count{provider="wachat",name="new",method=`,
		"whatsapp_exporter_scrape_unrefreshed_instances 1\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %s in the exposition", want)
		}
	}
	if strings.Contains(text, `whatsapp_up{provider="wachat",name="new"}`) {
		t.Error("an instance without a result has whatsapp_up")
	}
	promtoolCheck(t, text)
}

// TestExpositionGoldenEmpty: with no instances, every family is a header
// (which the parser drops, so expfmt writes them from the family table).
func TestExpositionGoldenEmpty(t *testing.T) {
	t.Parallel()
	for _, notifications := range []bool{false, true} {
		s := &Scrape{notifications: notifications, Unrefreshed: 2}
		var b strings.Builder
		if _, err := s.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		var want strings.Builder
		for _, f := range []family{stateFamily, upFamily, sinceFamily, updatedFamily, disconnectFamily, durationFamily, errorsFamily, failuresFamily, queueFamily, notifiedFamily, notificationsFamily} {
			if notifications || f != notifiedFamily && f != notificationsFamily {
				want.WriteString(expfmtHeader(t, f))
			}
		}
		f := unrefreshedFamily
		typ := dto.MetricType_GAUGE
		if _, err := expfmt.MetricFamilyToText(&want, &dto.MetricFamily{Name: &f.name, Help: &f.help, Type: &typ,
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: new(2.0)}}}}); err != nil {
			t.Fatal(err)
		}
		checkReencoded(t, b.String(), want.String())
	}
}

// expfmtHeader is the HELP and TYPE lines expfmt writes for f.
func expfmtHeader(t *testing.T, f family) string {
	t.Helper()
	typ := map[string]dto.MetricType{"gauge": dto.MetricType_GAUGE, "counter": dto.MetricType_COUNTER, "summary": dto.MetricType_SUMMARY}[f.typ]
	mf := &dto.MetricFamily{Name: &f.name, Help: &f.help, Type: &typ,
		// expfmt writes no family without a series: one is written and cut.
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{}, Counter: &dto.Counter{}, Summary: &dto.Summary{}}}}
	var b strings.Builder
	if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
		t.Fatalf("MetricFamilyToText(%s): %v", f.name, err)
	}
	lines := strings.SplitAfter(b.String(), "\n")
	return lines[0] + lines[1]
}

// hostileLabelValues are label values for the text format to escape.
var hostileLabelValues = []string{
	"plain",
	"",
	`"quoted"`,
	`back\slash`,
	`trailing backslash\`,
	`\"`,
	`\\n is not a newline`,
	"new\nline",
	"\n",
	"crlf\r\n",
	"tab\there",
	"ünïcødé ✓ 日本語 🙂",
	"{braces}, commas=\"and\" equals",
	"# HELP not a comment",
	"\u00a0non-breaking space",
	"\u2028line separator",
}

// hostileFloats are values to format as expfmt does.
var hostileFloats = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.5, -0.5, 2, 10, 123456, 999999, 1e6, 1_000_001, 1e15, 1 << 53, 1<<53 + 2, 1e21, 1e300,
	math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, 1e-4, 1e-5, 0.1, 1.0 / 3, 2.0 / 3 * 1e-10,
	1_760_000_000, 1_760_000_000.123, 1_760_000_000.5, -1_760_000_000.001, float64(math.MaxInt64), float64(math.MinInt64),
	math.Inf(1), math.Inf(-1), math.NaN(),
}

// TestExpositionHostile writes hostile label values, HELP texts and
// floats through textWriter and compares with expfmt.
func TestExpositionHostile(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	cw := &countingWriter{w: &b}
	tw := &textWriter{w: bufio.NewWriter(cw)}
	families := []family{
		{"test_labels", `HELP with a \ backslash, a "quote", a` + "\nnewline, a \\n that is not one and ünïcødé", "gauge"},
		{"test_floats", "Floats.", "counter"},
		{"test_summary", "A summary's sum and count.\\", "summary"},
	}
	tw.header(families[0])
	for i, v := range hostileLabelValues {
		name := hostileLabelValues[len(hostileLabelValues)-1-i]
		tw.sample("", float64(i), `provider="`+escapeLabel(v)+`",name="`+escapeLabel(name)+`"`, `state="`+escapeLabel(v)+`"`)
	}
	tw.header(families[1])
	for i, v := range hostileFloats {
		tw.sample("", v, fmt.Sprintf(`i="%d"`, i))
	}
	tw.header(families[2])
	for i, v := range hostileFloats {
		labels := fmt.Sprintf(`i="%d"`, i)
		method := `method="` + escapeLabel(hostileLabelValues[i%len(hostileLabelValues)]) + `"`
		tw.sample("_sum", v, labels, method)
		tw.sample("_count", float64(i*1000000), labels, method)
	}
	tw.header(family{"test_no_labels", "No labels.", "gauge"})
	for _, v := range hostileFloats {
		tw.sample("", v)
	}
	if err := tw.w.Flush(); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	names := []string{families[0].name, families[1].name, families[2].name, "test_no_labels"}
	checkReencoded(t, text, reencode(t, text, names))

	// The values come back as written.
	mfs, err := parseFamilies(text)
	if err != nil {
		t.Fatal(err)
	}
	if got := mfs["test_labels"].GetHelp(); got != families[0].help {
		t.Errorf("HELP read back as %q, want %q", got, families[0].help)
	}
	for i, m := range mfs["test_labels"].GetMetric() {
		if got := m.GetLabel()[0].GetValue(); got != hostileLabelValues[i] {
			t.Errorf("label value read back as %q, want %q", got, hostileLabelValues[i])
		}
	}
	for i, m := range mfs["test_floats"].GetMetric() {
		got, want := m.GetCounter().GetValue(), hostileFloats[i]
		if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("%v read back as %v", want, got)
		}
	}
}

// BenchmarkWriteTo measures WriteTo alone, on 10 000 instances of the
// fleet (every family present), already refreshed.
func BenchmarkWriteTo(b *testing.B) {
	perCopy := len(fleetCopy(0))
	s := expositionFleet(b, (10000+perCopy-1)/perCopy)
	b.Run(fmt.Sprint(len(s.targets)), func(b *testing.B) {
		b.ReportAllocs()
		var n int64
		for b.Loop() {
			var err error
			if n, err = s.WriteTo(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(n)
	})
}
