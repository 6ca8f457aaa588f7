package dashboards_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// Tests of what the dashboards show of the exporter's remediation (issue
// 21): the instance's actions on its state history, its link to the
// status page, the fleet's actions by result and the brake.

func dashboard(t *testing.T, uid string) testtool.Dashboard {
	t.Helper()
	for _, d := range testtool.LoadDashboards(t, ".") {
		if d.UID == uid {
			return d
		}
	}
	t.Fatalf("no dashboard %s", uid)
	return testtool.Dashboard{}
}

// annotation is a Prometheus annotation query of a dashboard.
type annotation struct {
	Name, Expr, TitleFormat, TextFormat, Step string
	Enable                                    bool
	Filter                                    struct {
		Exclude bool
		IDs     []int
	}
}

func annotations(t *testing.T, d testtool.Dashboard) []annotation {
	t.Helper()
	var doc struct{ Annotations struct{ List []annotation } }
	if err := json.Unmarshal(d.Content, &doc); err != nil {
		t.Fatalf("%s: annotations: %v", d.UID, err)
	}
	// The built-in annotations have no query.
	return slices.DeleteFunc(doc.Annotations.List, func(a annotation) bool { return a.Expr == "" })
}

// TestInstanceShowsActions checks the instance dashboard marks each
// remediation action on the state history, by result, for the selected
// instance.
func TestInstanceShowsActions(t *testing.T) {
	d := dashboard(t, "whatsapp-instance")
	history := -1
	for _, p := range d.AllPanels() {
		if p.Title == "State history" {
			history = p.ID
		}
	}
	anns := annotations(t, d)
	if len(anns) != 1 {
		t.Fatalf("%d Prometheus annotations, want 1 (the remediation actions)", len(anns))
	}
	a := anns[0]
	for _, want := range []string{"whatsapp_remediation_actions_total", `name=~"$name"`, `provider=~"$provider"`, "by (provider, name, action, result, reason)"} {
		if !strings.Contains(a.Expr, want) {
			t.Errorf("annotation %q: the query lacks %s:\n%s", a.Name, want, a.Expr)
		}
	}
	if !a.Enable || !strings.Contains(a.TitleFormat, "{{result}}") || !strings.Contains(a.TextFormat, "{{reason}}") {
		t.Errorf("annotation %q: enabled %v, title %q, text %q: want it on, naming the result and the reason", a.Name, a.Enable, a.TitleFormat, a.TextFormat)
	}
	if a.Filter.Exclude || !slices.Contains(a.Filter.IDs, history) {
		t.Errorf("annotation %q: shown on panels %v (exclude %v), want the state history (%d)", a.Name, a.Filter.IDs, a.Filter.Exclude, history)
	}
}

// TestAnnotationQueryMarksEachAction evaluates the annotation's query,
// as Grafana interpolates it, with promtool on an action counter as the
// exporter writes it: its series appears with the first action, at 1,
// which increase() alone never sees. Every action is marked once, near
// its time, and nothing between.
func TestAnnotationQueryMarksEachAction(t *testing.T) {
	promtool := testtool.Require(t, "promtool")
	a := annotations(t, dashboard(t, "whatsapp-instance"))[0]
	// $__rate_interval at the 1m step and a 60 s scrape: four scrapes.
	expr := strings.NewReplacer("$__rate_interval", "4m", "$provider", "greenapi", "$name", "shop").Replace(a.Expr)
	const series = `whatsapp_remediation_actions_total{job="whatsapp",instance="exporter:10040",provider="greenapi",name="shop",action="reboot",result="done",reason=""}`
	const other = `whatsapp_remediation_actions_total{job="whatsapp",instance="exporter:10040",provider="greenapi",name="other",action="reboot",result="done",reason=""}`
	marked := func(at int) string {
		return fmt.Sprintf("  - expr: |\n%s\n    eval_time: %dm\n    exp_samples:\n    - labels: '{provider=\"greenapi\", name=\"shop\", action=\"reboot\", result=\"done\"}'\n      value: 1\n",
			indent(expr, "      "), at)
	}
	unmarked := func(at int) string {
		return fmt.Sprintf("  - expr: |\n%s\n    eval_time: %dm\n    exp_samples: []\n", indent(expr, "      "), at)
	}
	test := "rule_files: []\nevaluation_interval: 1m\ntests:\n- interval: 1m\n  input_series:\n" +
		// The first action at minute 3, the second at minute 40;
		// another instance's actions are not this one's.
		"  - series: '" + series + "'\n    values: _x3 1x36 2x10\n" +
		"  - series: '" + other + "'\n    values: _x3 1x46\n" +
		"  promql_expr_test:\n" +
		unmarked(2) + marked(3) + marked(4) + unmarked(8) + unmarked(20) + unmarked(39) + marked(40) + unmarked(45)
	file := filepath.Join(t.TempDir(), "annotation.test.yml")
	if err := os.WriteFile(file, []byte(test), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := testtool.Run(t, promtool, "test", "rules", file); !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s\n%s", out, test)
	}
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// TestInstanceLinksToStatusPage checks the instance dashboard links to
// the instance's entry on the exporter's status page, whose address is a
// variable with the exporter's default.
func TestInstanceLinksToStatusPage(t *testing.T) {
	d := dashboard(t, "whatsapp-instance")
	v, ok := d.Variable("exporter_url")
	if !ok || v.Type != "textbox" || v.Query != "http://localhost:10040" || v.Current.Value != "http://localhost:10040" {
		t.Errorf("variable exporter_url: %+v, want a textbox defaulting to http://localhost:10040", v)
	}
	raw := string(d.Content)
	// The dashboard's link, for the selected instance; ${exporter_url:raw}
	// because Grafana percent-encodes variables in links.
	if !strings.Contains(raw, `"url": "${exporter_url:raw}/?q=${name:percentencode}"`) {
		t.Errorf("no dashboard link to ${exporter_url:raw}/?q=${name:percentencode}")
	}
	// The State panel's data link, with the instance's own labels (its
	// query keeps provider and name).
	for _, p := range d.AllPanels() {
		if p.Title != "State" {
			continue
		}
		if !strings.Contains(p.Targets[0].Expr, "max by (provider, name)") {
			t.Errorf("State: the query does not keep provider and name for the link: %s", p.Targets[0].Expr)
		}
	}
	if !strings.Contains(raw, `"url": "${exporter_url:raw}/?q=${__field.labels.name:percentencode}&provider=${__field.labels.provider:percentencode}"`) {
		t.Errorf("no data link to the instance's entry on the status page")
	}
}

// TestOverviewCountsActions checks the overview counts the fleet's
// actions by result, counting each series' first action, and shows the
// brake and whether remediation is on.
func TestOverviewCountsActions(t *testing.T) {
	d := dashboard(t, "whatsapp-overview")
	found := map[string]string{}
	for _, p := range d.AllPanels() {
		for _, tg := range p.Targets {
			if strings.Contains(tg.Expr, "whatsapp_remediation_") {
				found[p.Title] = tg.Expr
			}
		}
	}
	for title, want := range map[string][]string{
		"Actions by result": {"sum by (result)", "increase(whatsapp_remediation_actions_total", "unless whatsapp_remediation_actions_total", "offset $__range"},
		"Fleet brake":       {"max by (provider) (whatsapp_remediation_brake_engaged"},
		"Remediation":       {"whatsapp_remediation_enabled", "whatsapp_remediation_dry_run"},
	} {
		expr, ok := found[title]
		if !ok {
			t.Errorf("no panel %q on the overview", title)
			continue
		}
		for _, w := range want {
			if !strings.Contains(expr, w) {
				t.Errorf("%q: the query lacks %s:\n%s", title, w, expr)
			}
		}
	}
}
