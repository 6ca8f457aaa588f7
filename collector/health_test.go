package collector

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestHealthExposition writes the health families of three instances of
// a provider that tells health (one blocked and RED with errors, one
// whose answer told nothing, one whose call failed) beside one of a
// provider that tells none, and reads them back with expfmt: one-hot
// families have exactly one 1 per instance, the limit's +Inf and NaN
// survive, error and info labels are as sealed, and neither the failed
// call nor the other provider has a health series.
func TestHealthExposition(t *testing.T) {
	withHealth := &Provider{Name: "cloud", States: []string{"CONNECTED"}, Health: true}
	without := &Provider{Name: "plain", States: []string{"open"}}
	withHealth.init()
	without.init()
	now := time.Now()
	result := func(p *Provider, name string, o outcome) instanceResult {
		tg := &target{provider: p, name: name, stats: newInstanceStats(p.methods), labels: `provider="` + p.Name + `",name="` + escapeLabel(name) + `"`}
		return instanceResult{t: tg, result: result{o: o, updated: now, since: now}}
	}
	blocked := (&Health{
		CanSend:        "BLOCKED",
		Errors:         []HealthError{{Entity: "WABA", Code: "141006"}, {Entity: HealthOther, Code: HealthOther}},
		Quality:        "RED",
		MessagingLimit: math.Inf(1),
		Info:           HealthInfo{Throughput: "STANDARD", NameStatus: "APPROVED", CodeVerification: "VERIFIED", PlatformType: "CLOUD_API", AccountMode: "LIVE"},
	}).Seal()
	results := []instanceResult{
		result(withHealth, "blocked", outcome{state: "CONNECTED", up: true, health: blocked}),
		result(withHealth, `odd "name"`, outcome{state: "CONNECTED", up: true, health: orUnknown(nil)}),
		result(withHealth, "failed", outcome{state: StateUnknown, reason: ReasonTimeout}),
		result(without, "other", outcome{state: "open", up: true}),
	}
	var buf bytes.Buffer
	if _, err := (&Scrape{}).writeFamilies(&buf, results); err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	// value returns the samples of a family by instance name and the
	// label named by.
	value := func(family, by string) map[string]map[string]float64 {
		out := map[string]map[string]float64{}
		mf := mfs[family]
		if mf == nil {
			t.Fatalf("no family %s in\n%s", family, buf.String())
		}
		for _, m := range mf.Metric {
			var name, key string
			for _, l := range m.Label {
				switch l.GetName() {
				case "name":
					name = l.GetValue()
				case by:
					key = l.GetValue()
				}
			}
			if out[name] == nil {
				out[name] = map[string]float64{}
			}
			out[name][key] = metricValue(m)
		}
		return out
	}
	oneHot := func(family, by string, want map[string]string) {
		t.Helper()
		got := value(family, by)
		if len(got) != len(want) {
			t.Errorf("%s: instances %v, want %v", family, got, want)
		}
		for name, v := range want {
			ones := 0
			for k, x := range got[name] {
				if x == 1 {
					ones++
					if k != v {
						t.Errorf("%s{name=%q}: %s is 1, want %s", family, name, k, v)
					}
				}
			}
			if ones != 1 {
				t.Errorf("%s{name=%q}: %d series at 1, want 1: %v", family, name, ones, got[name])
			}
		}
	}
	oneHot("whatsapp_meta_can_send_message", "status", map[string]string{"blocked": "BLOCKED", `odd "name"`: "unknown"})
	oneHot("whatsapp_meta_quality_rating", "rating", map[string]string{"blocked": "RED", `odd "name"`: "unknown"})
	limits := value("whatsapp_meta_messaging_limit_users", "")
	if v := limits["blocked"][""]; !math.IsInf(v, 1) {
		t.Errorf("limit of blocked = %v, want +Inf", v)
	}
	if v := limits[`odd "name"`][""]; !math.IsNaN(v) {
		t.Errorf("limit of an answer that told nothing = %v, want NaN", v)
	}
	errs := value("whatsapp_meta_health_error", "error_code")
	if len(errs) != 1 || len(errs["blocked"]) != 2 || errs["blocked"]["141006"] != 1 || errs["blocked"][HealthOther] != 1 {
		t.Errorf("health errors %v", errs)
	}
	info := value("whatsapp_meta_phone_number_info", "name_status")
	if info["blocked"]["APPROVED"] != 1 || info[`odd "name"`][StateUnknown] != 1 || len(info) != 2 {
		t.Errorf("info %v", info)
	}
	for _, f := range []string{"whatsapp_meta_can_send_message", "whatsapp_meta_quality_rating", "whatsapp_meta_phone_number_info"} {
		for _, m := range mfs[f].Metric {
			for _, l := range m.Label {
				if l.GetName() == "name" && (l.GetValue() == "failed" || l.GetValue() == "other") {
					t.Errorf("%s has a series for %s", f, l.GetValue())
				}
			}
		}
	}

	// Without a provider that tells health, the families are not written.
	buf.Reset()
	if _, err := (&Scrape{}).writeFamilies(&buf, results[3:]); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "whatsapp_meta_") {
		t.Errorf("health families written without a provider that tells health:\n%s", buf.String())
	}
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return math.NaN()
}

// TestHealthSealEscapes: label values are escaped once, at Seal, so an
// odd value from an answer cannot break the exposition.
func TestHealthSealEscapes(t *testing.T) {
	h := (&Health{Info: HealthInfo{NameStatus: "A\"B\\C\nD"}, Errors: []HealthError{{Entity: `x"y`, Code: "1"}}}).Seal()
	text := "m{" + h.infoLabels + "} 1\nn{" + h.errLabels[0] + "} 1\n"
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	got := model.LabelValue("")
	for _, l := range mfs["m"].Metric[0].Label {
		if l.GetName() == "name_status" {
			got = model.LabelValue(l.GetValue())
		}
	}
	if got != "A\"B\\C\nD" {
		t.Errorf("name_status read back as %q", got)
	}
}
