package dashboards_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// Tests of the panels of Meta's Cloud API (provider meta): the health of
// business phone numbers, their WABAs and the request budget.

// healthColour is the colour each value of Meta's can-send status and
// quality rating must have.
func healthColour(v string) string {
	switch v {
	case "AVAILABLE", "GREEN":
		return "green"
	case "LIMITED":
		return "orange"
	case "YELLOW":
		return "yellow"
	case "BLOCKED", "RED":
		return "red"
	case "NA": // a new number, not rated yet
		return "blue"
	case collector.StateUnknown:
		return "#8e8e8e"
	}
	return "no colour defined for " + v
}

// healthFamilies are the one-hot health families, by the label that
// carries their value.
var healthFamilies = map[string][]string{
	"status": collector.CanSendValues,
	"rating": collector.QualityValues,
}

// codedFamilies are the values of the one-hot families that panels turn
// into codes, by metric.
var codedFamilies = map[string]struct {
	label  string
	values []string
}{
	"whatsapp_meta_can_send_message":      {"status", collector.CanSendValues},
	"whatsapp_meta_quality_rating":        {"rating", collector.QualityValues},
	"whatsapp_meta_waba_review_status":    {"status", collector.ReviewValues},
	"whatsapp_meta_waba_can_send_message": {"status", collector.CanSendValues},
}

// TestMetaHealthColoured checks every panel that maps a can-send status
// or a quality rating maps every value of its family, unknown included,
// with its colour.
func TestMetaHealthColoured(t *testing.T) {
	checked := 0
	for _, d := range testtool.LoadDashboards(t, ".") {
		for _, p := range d.AllPanels() {
			colour := map[string]string{}
			for _, m := range mappings(t, p) {
				for _, o := range m.Options {
					colour[o.Text] = o.Color
				}
			}
			for _, o := range p.FieldConfig.Overrides {
				name, _ := o.Matcher.Options.(string)
				for _, prop := range o.Properties {
					var c struct {
						FixedColor string `json:"fixedColor"`
					}
					if o.Matcher.ID == "byName" && prop.ID == "color" && json.Unmarshal(prop.Value, &c) == nil {
						colour[name] = c.FixedColor
					}
				}
			}
			for _, values := range healthFamilies {
				if _, ok := colour[values[0]]; !ok {
					continue
				}
				checked++
				for _, v := range append(slices.Clone(values), collector.StateUnknown) {
					if colour[v] != healthColour(v) {
						t.Errorf("%s %q: %s has colour %q, want %q", d.File, p.Title, v, colour[v], healthColour(v))
					}
				}
			}
		}
	}
	// The overview's two counts, its table of numbers (twice), its WABAs'
	// count and table; the instance's two timelines.
	if checked < 8 {
		t.Errorf("only %d panels colour Meta's health values", checked)
	}
}

// TestMetaHealthCodes checks the queries that turn a one-hot health
// family into a number (the instance's timelines, the WABAs' review):
// every value has a code, each code one value, each shown as its value,
// and 0 (none true) as unknown.
func TestMetaHealthCodes(t *testing.T) {
	checked := 0
	for _, d := range testtool.LoadDashboards(t, ".") {
		for _, p := range d.AllPanels() {
			for _, tg := range p.Targets {
				for metric, f := range codedFamilies {
					label, values := f.label, f.values
					arms := regexp.MustCompile(`\b`+metric+`\{[^}]*\b`+label+`="(\w+)"\} \* (\d+)`).FindAllStringSubmatch(tg.Expr, -1)
					if len(arms) == 0 {
						continue
					}
					checked++
					checkCodes(t, d, p, arms)
					for _, v := range values {
						if !strings.Contains(tg.Expr, label+`="`+v+`"}`) {
							t.Errorf("%s %q: %s %s has no code", d.File, p.Title, label, v)
						}
					}
				}
			}
		}
	}
	if checked != 3 {
		t.Errorf("%d health code queries found, want the instance's Can send and Quality rating and the WABAs' review", checked)
	}
}

// TestMetaPanelsForFleets checks the Cloud API's panels are sized for
// fleets of thousands of numbers: each number counted once however many
// replicas report it, the table of numbers that need a look links each to
// its dashboard, the budget's series are bounded, and no query reads a
// label beyond those of the contract (no phone number is ever one).
func TestMetaPanelsForFleets(t *testing.T) {
	labels := regexp.MustCompile(`\b(?:by|on|without|ignoring) \(([^)]*)\)`)
	allowed := []string{"provider", "name", "account", "budget", "type", "status", "rating", "entity_type", "error_code",
		"throughput_level", "name_status", "code_verification_status", "platform_type", "account_mode"}
	titles := map[string]bool{}
	for _, d := range testtool.LoadDashboards(t, ".") {
		for _, p := range d.AllPanels() {
			meta := false
			for _, tg := range p.Targets {
				if !strings.Contains(tg.Expr, "whatsapp_meta_") {
					continue
				}
				meta = true
				for _, m := range labels.FindAllStringSubmatch(tg.Expr, -1) {
					for _, l := range strings.Split(m[1], ",") {
						if l = strings.TrimSpace(l); l != "" && !slices.Contains(allowed, l) {
							t.Errorf("%s %q: query uses label %s: %s", d.File, p.Title, l, tg.Expr)
						}
					}
				}
				// Replicas report the same number: every aggregation over
				// numbers first takes one series per number.
				if d.UID == "whatsapp-overview" && regexp.MustCompile(`^(count|sort_desc\(count) by`).MatchString(tg.Expr) &&
					!strings.Contains(tg.Expr, "(max by (provider, name") && !strings.Contains(tg.Expr, "(max by (provider, account") {
					t.Errorf("%s %q: counts series, not numbers: %s", d.File, p.Title, tg.Expr)
				}
				if strings.Contains(tg.Expr, "whatsapp_meta_api_usage_ratio") && tg.Format != "table" && !strings.HasPrefix(tg.Expr, "topk(") {
					t.Errorf("%s %q: one series per budget and type, unbounded: %s", d.File, p.Title, tg.Expr)
				}
			}
			if meta {
				titles[d.UID+"/"+p.Title] = true
			}
		}
	}
	for _, want := range []string{
		"whatsapp-overview/Numbers by can-send status", "whatsapp-overview/Numbers by quality rating",
		"whatsapp-overview/WABAs by can-send status", "whatsapp-overview/Numbers not AVAILABLE or not GREEN",
		"whatsapp-overview/Health errors", "whatsapp-overview/Request budget usage", "whatsapp-overview/WABAs",
		"whatsapp-instance/Can send", "whatsapp-instance/Quality rating", "whatsapp-instance/Messaging limit",
		"whatsapp-instance/Number info", "whatsapp-instance/Health errors",
	} {
		if !titles[want] {
			t.Errorf("no panel %s reading Meta's series", want)
		}
	}

	raw, err := os.ReadFile("whatsapp-overview.json")
	if err != nil {
		t.Fatal(err)
	}
	var overview struct {
		Panels []struct {
			Title       string
			FieldConfig struct {
				Overrides []struct {
					Matcher    struct{ Options any }
					Properties []struct {
						ID    string
						Value json.RawMessage
					}
				}
			}
		}
	}
	if err := json.Unmarshal(raw, &overview); err != nil {
		t.Fatal(err)
	}
	linked := false
	for _, p := range overview.Panels {
		if p.Title != "Numbers not AVAILABLE or not GREEN" {
			continue
		}
		for _, o := range p.FieldConfig.Overrides {
			for _, prop := range o.Properties {
				linked = linked || o.Matcher.Options == "name" && prop.ID == "links" && strings.Contains(string(prop.Value), "/d/whatsapp-instance/")
			}
		}
	}
	if !linked {
		t.Error("the table of numbers that need a look does not link each number to its dashboard")
	}
}

// TestMetaLimitQuery runs the messaging limit's query, as the panels
// write it, in promtool: a limit Meta does not tell (NaN) is shown as -1
// ("not told"), unlimited (+Inf) as 1e9 ("unlimited"), other limits as
// they are, each number once.
func TestMetaLimitQuery(t *testing.T) {
	promtool := testtool.Require(t, "promtool")
	var expr string
	for _, d := range testtool.LoadDashboards(t, ".") {
		for _, p := range d.AllPanels() {
			for _, tg := range p.Targets {
				if p.Title == "Messaging limit" {
					expr = tg.Expr
				}
			}
		}
	}
	if expr == "" {
		t.Fatal("no Messaging limit panel")
	}
	for _, v := range []string{"$job", "$provider", "$name"} {
		expr = strings.ReplaceAll(expr, `=~"`+v+`"`, `=~".*"`)
	}
	text := map[string]string{}
	for _, d := range testtool.LoadDashboards(t, ".") {
		for _, p := range d.AllPanels() {
			if p.Title == "Messaging limit" {
				for _, m := range mappings(t, p) {
					for value, o := range m.Options {
						text[o.Text] = value
					}
				}
			}
		}
	}
	if text["unlimited"] != "1000000000" || text["not told"] != "-1" {
		t.Fatalf("Messaging limit maps %v, want 1000000000 unlimited and -1 not told", text)
	}
	dir := t.TempDir()
	rules := "groups:\n- name: limit\n  rules:\n  - record: limit\n    expr: " + strconvQuote(expr) + "\n"
	tests := `rule_files: [rules.yml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - {series: 'whatsapp_meta_messaging_limit_users{job="whatsapp",instance="a",provider="meta",name="tier"}', values: '2000x2'}
  - {series: 'whatsapp_meta_messaging_limit_users{job="whatsapp",instance="b",provider="meta",name="tier"}', values: '2000x2'}
  - {series: 'whatsapp_meta_messaging_limit_users{job="whatsapp",instance="a",provider="meta",name="unlimited"}', values: '+Inf+0x2'}
  - {series: 'whatsapp_meta_messaging_limit_users{job="whatsapp",instance="a",provider="meta",name="untold"}', values: 'NaN NaN NaN'}
  promql_expr_test:
  - expr: limit
    eval_time: 2m
    exp_samples:
    - {labels: 'limit{provider="meta",name="tier"}', value: 2000}
    - {labels: 'limit{provider="meta",name="unlimited"}', value: 1e9}
    - {labels: 'limit{provider="meta",name="untold"}', value: -1}
`
	for name, content := range map[string]string{"rules.yml": rules, "test.yml": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out := testtool.Run(t, promtool, "test", "rules", filepath.Join(dir, "test.yml")); !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// strconvQuote quotes s as a YAML double-quoted string.
func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
