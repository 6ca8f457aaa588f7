// Package mixin_test checks the monitoring mixin with go-jsonnet, the
// library behind the jsonnet command: with the default configuration it
// must give back the shipped rules and dashboards, and each setting must
// change exactly what it says.
package mixin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-jsonnet"
	"github.com/google/go-jsonnet/formatter"
	"go.yaml.in/yaml/v3"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

const (
	rulesFile     = "../alerts/whatsapp.rules.yml"
	dashboardsDir = "../dashboards"
	// The placeholder of the data source in the shipped dashboards.
	placeholder = "${DS_PROMETHEUS}"
	// The job matcher of the shipped rules.
	shippedJob = `job="whatsapp"`
)

// config mirrors _config (config.libsonnet); zero fields are left out, so
// that the mixin's defaults apply.
type config struct {
	WhatsappExporterSelector string                       `json:"whatsappExporterSelector,omitempty"`
	AlertFor                 map[string]string            `json:"alertFor,omitempty"`
	AlertSeverity            map[string]string            `json:"alertSeverity,omitempty"`
	AlertAnnotations         map[string]map[string]string `json:"alertAnnotations,omitempty"`
	DashboardTags            []string                     `json:"dashboardTags,omitempty"`
	DashboardRefresh         *string                      `json:"dashboardRefresh,omitempty"`
	DashboardDatasource      string                       `json:"dashboardDatasource,omitempty"`
	DashboardUIDPrefix       string                       `json:"dashboardUidPrefix,omitempty"`
}

// output is the mixin's three fields, decoded generically so that every
// key and value counts in a comparison.
type output struct {
	Alerts     map[string]any `json:"alerts"`
	Rules      map[string]any `json:"rules"`
	Dashboards map[string]any `json:"dashboards"`
}

func newVM() *jsonnet.VM {
	vm := jsonnet.MakeVM()
	vm.Importer(&jsonnet.FileImporter{})
	return vm
}

// evaluateMixin evaluates body, in which m is the mixin with cfg merged
// into its _config.
func evaluateMixin(t *testing.T, vm *jsonnet.VM, cfg any, body string) (string, error) {
	t.Helper()
	c, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The snippet's name puts it in this directory, from which the mixin's
	// files and their ../ imports resolve as from a file here.
	return vm.EvaluateAnonymousSnippet(filepath.Join(moduleDir(t), "test.jsonnet"),
		fmt.Sprintf("local m = (import \"mixin.libsonnet\") + { _config+:: %s };\n%s", c, body))
}

// evaluate runs the mixin with cfg merged into _config and returns its
// fields, or the evaluation's error.
func evaluate(t *testing.T, cfg any) (output, error) {
	t.Helper()
	out, err := evaluateMixin(t, newVM(), cfg, `{ alerts: m.prometheusAlerts, rules: m.prometheusRules, dashboards: m.grafanaDashboards }`)
	if err != nil {
		return output{}, err
	}
	var o output
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatal(err)
	}
	return o, nil
}

func mustEvaluate(t *testing.T, cfg any) output {
	t.Helper()
	o, err := evaluate(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func moduleDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// shippedRules is alerts/whatsapp.rules.yml, decoded by yaml.v3 (the
// library of Prometheus's rule files, not the one of jsonnet's
// std.parseYaml) strictly into a generic tree.
func shippedRules(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	return decodeYAML(t, b)
}

func decodeYAML(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	// Through JSON, as the mixin's output is: the same Go types either way.
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(j, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// shippedDashboards is dashboards/*.json by file name, each file's text
// first passed through edit (the sed of docs/dashboards.md#provision).
func shippedDashboards(t *testing.T, edit func([]byte) []byte) map[string]any {
	t.Helper()
	out := readJSONFiles(t, filepath.Join(dashboardsDir, "*.json"), edit)
	if len(out) == 0 {
		t.Fatalf("no dashboards in %s", dashboardsDir)
	}
	return out
}

// readJSONFiles is the JSON files matching pattern by file name, each
// file's text first passed through edit.
func readJSONFiles(t *testing.T, pattern string, edit func([]byte) []byte) map[string]any {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d any
		if err := json.Unmarshal(edit(b), &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = d
	}
	return out
}

// groups returns the groups of a rules file, combined as kube-prometheus
// and the README's command do.
func groups(files ...map[string]any) []any {
	var g []any
	for _, f := range files {
		g = append(g, f["groups"].([]any)...)
	}
	return g
}

// expected is what the mixin must produce with cfg, built from the
// shipped files by this test's own reading of each setting, independent
// of the jsonnet.
func expected(t *testing.T, cfg config) (rules map[string]any, dashboards map[string]any) {
	t.Helper()
	rules = shippedRules(t)
	for _, g := range rules["groups"].([]any) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			rule := r.(map[string]any)
			if cfg.WhatsappExporterSelector != "" {
				rule["expr"] = strings.ReplaceAll(rule["expr"].(string), shippedJob, cfg.WhatsappExporterSelector)
			}
			name, _ := rule["alert"].(string)
			if d, ok := cfg.AlertFor[name]; ok {
				rule["for"] = d
			}
			if s, ok := cfg.AlertSeverity[name]; ok {
				rule["labels"].(map[string]any)["severity"] = s
			}
			for k, v := range cfg.AlertAnnotations[name] {
				rule["annotations"].(map[string]any)[k] = v
			}
		}
	}
	uids := map[string]string{}
	dashboards = shippedDashboards(t, func(b []byte) []byte {
		if cfg.DashboardDatasource != "" {
			b = bytes.ReplaceAll(b, []byte(placeholder), []byte(cfg.DashboardDatasource))
		}
		return b
	})
	for _, d := range dashboards {
		uids[d.(map[string]any)["uid"].(string)] = cfg.DashboardUIDPrefix + d.(map[string]any)["uid"].(string)
	}
	for f, d := range dashboards {
		if cfg.DashboardUIDPrefix != "" {
			// The links between the dashboards are /d/<uid>/<slug>.
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			for old, uid := range uids {
				b = bytes.ReplaceAll(b, []byte("/d/"+old+"/"), []byte("/d/"+uid+"/"))
			}
			d = nil
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatal(err)
			}
			dashboards[f] = d
		}
		db := d.(map[string]any)
		db["uid"] = uids[db["uid"].(string)]
		if cfg.DashboardRefresh != nil {
			db["refresh"] = *cfg.DashboardRefresh
		}
		if cfg.DashboardTags != nil {
			tags := make([]any, len(cfg.DashboardTags))
			for i, tag := range cfg.DashboardTags {
				tags[i] = tag
			}
			db["tags"] = tags
			for _, l := range db["links"].([]any) {
				if link := l.(map[string]any); link["type"] == "dashboards" {
					link["tags"] = tags
				}
			}
		}
	}
	return rules, dashboards
}

// TestDefaultIsShipped: with the default configuration the mixin is the
// shipped rules (every group, rule, expr, for, label and annotation, in
// order) and the shipped dashboards, every one of them.
func TestDefaultIsShipped(t *testing.T) {
	o := mustEvaluate(t, config{})
	if diff := cmp.Diff(groups(shippedRules(t)), groups(o.Rules, o.Alerts)); diff != "" {
		t.Errorf("prometheusRules + prometheusAlerts differ from %s (-shipped +mixin):\n%s", rulesFile, diff)
	}
	if diff := cmp.Diff(groups(shippedRules(t)), groups(o.Alerts, o.Rules)); diff != "" {
		t.Errorf("prometheusAlerts + prometheusRules (kube-prometheus's order) differ from %s (-shipped +mixin):\n%s", rulesFile, diff)
	}
	if diff := cmp.Diff(shippedDashboards(t, func(b []byte) []byte { return b }), o.Dashboards); diff != "" {
		t.Errorf("grafanaDashboards differ from %s (-shipped +mixin):\n%s", dashboardsDir, diff)
	}
}

// tuned sets every field to something other than its default.
var tuned = config{
	WhatsappExporterSelector: `job=~"whatsapp-exporter|whatsapp-eu", cluster="eu"`,
	AlertFor: map[string]string{
		"WhatsAppInstanceStopped":         "30m",
		"WhatsAppInstanceStartingTooLong": "20m", // four rules, one without a for
		"WhatsAppRemediationFailing":      "1m",  // shipped without a for
	},
	AlertSeverity:    map[string]string{"WhatsAppInstanceStopped": "critical", "WhatsAppApiSlow": "info"},
	AlertAnnotations: map[string]map[string]string{"WhatsAppInstanceStopped": {"description": "Stopped for 30 minutes.", "dashboard": "https://grafana.example/d/x"}},
	DashboardTags:    []string{"whatsapp", "messaging"},
	DashboardRefresh: ptr("5m"),
	// Not a uid a dashboard has in it, so that a replacement shows.
	DashboardDatasource: "prometheus-eu",
	DashboardUIDPrefix:  "eu-",
}

func ptr[T any](v T) *T { return &v }

// TestTunedConfig: each setting changes its places and nothing else (the
// output equals the shipped files with the settings applied by this test),
// each of them changes something, and the tuned rules pass promtool.
func TestTunedConfig(t *testing.T) {
	o := mustEvaluate(t, tuned)
	rules, dashboards := expected(t, tuned)
	if diff := cmp.Diff(groups(rules), groups(o.Rules, o.Alerts)); diff != "" {
		t.Errorf("rules (-expected +mixin):\n%s", diff)
	}
	if diff := cmp.Diff(dashboards, o.Dashboards); diff != "" {
		t.Errorf("dashboards (-expected +mixin):\n%s", diff)
	}

	// The comparison above proves nothing of a setting that changes
	// nothing in the expected output either.
	def := mustEvaluate(t, config{})
	for _, field := range []struct {
		name string
		cfg  config
	}{
		{"whatsappExporterSelector", config{WhatsappExporterSelector: tuned.WhatsappExporterSelector}},
		{"alertFor", config{AlertFor: tuned.AlertFor}},
		{"alertSeverity", config{AlertSeverity: tuned.AlertSeverity}},
		{"alertAnnotations", config{AlertAnnotations: tuned.AlertAnnotations}},
		{"dashboardTags", config{DashboardTags: tuned.DashboardTags}},
		{"dashboardRefresh", config{DashboardRefresh: tuned.DashboardRefresh}},
		{"dashboardDatasource", config{DashboardDatasource: tuned.DashboardDatasource}},
		{"dashboardUidPrefix", config{DashboardUIDPrefix: tuned.DashboardUIDPrefix}},
	} {
		t.Run(field.name, func(t *testing.T) {
			t.Parallel()
			r, d := expected(t, field.cfg)
			if cmp.Equal(groups(r), groups(def.Rules, def.Alerts)) && cmp.Equal(d, def.Dashboards) {
				t.Errorf("%+v changes nothing", field.cfg)
			}
			got := mustEvaluate(t, field.cfg)
			if diff := cmp.Diff(groups(r), groups(got.Rules, got.Alerts)); diff != "" {
				t.Errorf("rules (-expected +mixin):\n%s", diff)
			}
			if diff := cmp.Diff(d, got.Dashboards); diff != "" {
				t.Errorf("dashboards (-expected +mixin):\n%s", diff)
			}
		})
	}

	// The tuned rules as the README's command writes them.
	promtool := testtool.Require(t, "promtool")
	vm := newVM()
	vm.StringOutput = true
	out, err := evaluateMixin(t, vm, tuned, `std.manifestYamlDoc({ groups: m.prometheusRules.groups + m.prometheusAlerts.groups }, quote_keys=false)`)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "whatsapp.rules.yml")
	if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	testtool.Run(t, promtool, "check", "rules", f)
}

// TestConfigErrors: a setting that cannot apply is an error that says
// which, not a silent no-op.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  any
		want []string
	}{
		{map[string]any{"alertFor": map[string]any{"WhatsAppInstanceStopped": "30m", "WhatsAppInstanceStoped": "30m"}}, []string{"alertFor", "WhatsAppInstanceStoped"}},
		{map[string]any{"alertSeverity": map[string]any{"WhatsAppNoSuchAlert": "critical"}}, []string{"alertSeverity", "WhatsAppNoSuchAlert"}},
		{map[string]any{"alertAnnotations": map[string]any{"whatsapp_exporter:up": map[string]any{"summary": "x"}}}, []string{"alertAnnotations", "whatsapp_exporter:up"}},
		{map[string]any{"alertFor": map[string]any{"WhatsAppInstanceStopped": 30}}, []string{"alertFor", "WhatsAppInstanceStopped", "duration"}},
		{map[string]any{"alertFor": []any{"WhatsAppInstanceStopped"}}, []string{"alertFor", "object"}},
		{map[string]any{"whatsappExporterSelector": ""}, []string{"whatsappExporterSelector"}},
		{map[string]any{"dashboardTags": "whatsapp"}, []string{"dashboardTags"}},
		{map[string]any{"dashboardTags": []any{"whatsapp", 1}}, []string{"dashboardTags", "strings"}},
		{map[string]any{"dashboardUidPrefix": strings.Repeat("x", 30)}, []string{"uid", "40"}},
	} {
		t.Run(tc.want[0], func(t *testing.T) {
			t.Parallel()
			_, err := evaluate(t, tc.cfg)
			if err == nil {
				t.Fatalf("%v: no error", tc.cfg)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v: error %q does not say %q", tc.cfg, err, w)
				}
			}
		})
	}
}

// TestDocumentedInvocation runs the README's configuration file and
// commands as written, through the library, against the layout jb
// install makes (the whole repository under vendor/), and checks what
// they write.
func TestDocumentedInvocation(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var userFile string
	for _, m := range regexp.MustCompile("(?s)```jsonnet\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if strings.HasPrefix(m[1], "// whatsapp-mixin.jsonnet\n") {
			userFile = m[1]
		}
	}
	commands := regexp.MustCompile("(?m)^jsonnet .*$").FindAllString(string(readme), -1)
	if userFile == "" || len(commands) != 2 {
		t.Fatalf("README.md: want the whatsapp-mixin.jsonnet block and two jsonnet commands, found %q and %q", userFile, commands)
	}

	mod := moduleDir(t)
	dir := t.TempDir()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	vendor := filepath.Join(dir, "vendor", "github.com", "whatsapp-exporter")
	if err := os.MkdirAll(vendor, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(repo, filepath.Join(vendor, "whatsapp_exporter")); err != nil {
		t.Fatal(err)
	}
	// jb's link of the legacy name (legacyImports), relative as jb makes it.
	if err := os.Symlink(filepath.Join("github.com", "whatsapp-exporter", "whatsapp_exporter"), filepath.Join(dir, "vendor", "whatsapp_exporter")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "whatsapp-mixin.jsonnet"), []byte(userFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "dashboards_out"), 0o755); err != nil { // the README's mkdir -p
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, c := range commands {
		runJsonnet(t, c)
	}

	// The configuration the README's file sets, read back through jsonnet.
	vm := newVM()
	vm.Importer(&jsonnet.FileImporter{JPaths: []string{"vendor"}})
	// The mixin's ../ imports resolve through the legacy name's link too.
	const fields = `{ a: m.prometheusAlerts, r: m.prometheusRules, d: m.grafanaDashboards }`
	byPath, err := vm.EvaluateAnonymousSnippet("<cmdline>", `local m = import "github.com/whatsapp-exporter/whatsapp_exporter/mixin/mixin.libsonnet"; `+fields)
	if err != nil {
		t.Fatal(err)
	}
	byLegacyName, err := vm.EvaluateAnonymousSnippet("<cmdline>", `local m = import "whatsapp_exporter/mixin/mixin.libsonnet"; `+fields)
	if err != nil {
		t.Fatalf("import through jb's legacy name: %v", err)
	}
	if byPath != byLegacyName {
		t.Error("the mixin imported by its legacy name differs from the mixin imported by its path")
	}
	cfgJSON, err := vm.EvaluateAnonymousSnippet("<cmdline>", `(import "whatsapp-mixin.jsonnet")._config`)
	if err != nil {
		t.Fatal(err)
	}
	var cfg config
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.DashboardDatasource == placeholder {
		cfg.DashboardDatasource = ""
	}
	t.Chdir(mod)
	rules, dashboards := expected(t, cfg)

	b, err := os.ReadFile(filepath.Join(dir, "whatsapp.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rules, decodeYAML(t, b)); diff != "" {
		t.Errorf("whatsapp.rules.yml (-expected +written):\n%s", diff)
	}
	promtool := testtool.Require(t, "promtool")
	testtool.Run(t, promtool, "check", "rules", filepath.Join(dir, "whatsapp.rules.yml"))

	written := readJSONFiles(t, filepath.Join(dir, "dashboards_out", "*"), func(b []byte) []byte { return b })
	if diff := cmp.Diff(dashboards, written); diff != "" {
		t.Errorf("dashboards_out (-expected +written):\n%s", diff)
	}
}

// runJsonnet runs one README command line (jsonnet [-J dir] [-S | -m dir]
// -e 'snippet' [> file]) with the library, as cmd/jsonnet would.
func runJsonnet(t *testing.T, line string) {
	t.Helper()
	args := shellWords(t, line)
	vm := newVM()
	var jpaths []string
	var multi, outFile, snippet string
	for i := 1; i < len(args); i++ {
		switch a := args[i]; a {
		case "-J":
			i++
			jpaths = append(jpaths, args[i])
		case "-S":
			vm.StringOutput = true
		case "-m":
			i++
			multi = args[i]
		case "-e":
			i++
			snippet = args[i]
		case ">":
			i++
			outFile = args[i]
		default:
			t.Fatalf("%s: argument %q the test does not know", line, a)
		}
	}
	vm.Importer(&jsonnet.FileImporter{JPaths: jpaths})
	if multi != "" {
		files, err := vm.EvaluateAnonymousSnippetMulti("<cmdline>", snippet)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		for _, name := range slices.Sorted(maps.Keys(files)) {
			if err := os.WriteFile(filepath.Join(multi, name), []byte(files[name]), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	out, err := vm.EvaluateAnonymousSnippet("<cmdline>", snippet)
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if outFile == "" {
		t.Fatalf("%s: writes to no file", line)
	}
	if err := os.WriteFile(outFile, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
}

// shellWords splits a command line as sh does for the README's commands:
// words, single-quoted strings and the > redirection.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	for _, m := range regexp.MustCompile(`'([^']*)'|(\S+)`).FindAllStringSubmatch(line, -1) {
		if strings.HasPrefix(m[0], "'") {
			words = append(words, m[1])
		} else {
			words = append(words, m[2])
		}
	}
	return words
}

// TestJsonnetfmt: the mixin's files are as jsonnetfmt (go-jsonnet's
// formatter, with its defaults) writes them.
func TestJsonnetfmt(t *testing.T) {
	files, err := filepath.Glob("*.libsonnet")
	if err != nil || len(files) == 0 {
		t.Fatalf("no .libsonnet files: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want, err := formatter.Format(f, string(b), formatter.DefaultOptions())
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if want != string(b) {
			t.Errorf("%s is not jsonnetfmt-formatted; run jsonnetfmt -i %s", f, f)
		}
	}
}

// TestMixtoolConventions evaluates the mixin as mixtool generate does
// (its snippets, pkg/mixer/eval.go): each of the three fields is there,
// hidden at the top level, or mixtool would write {} in its place.
func TestMixtoolConventions(t *testing.T) {
	vm := newVM()
	for _, field := range []string{"prometheusAlerts", "prometheusRules", "grafanaDashboards"} {
		snippet := fmt.Sprintf(`
local mixin = (import %q);

if std.objectHasAll(mixin, %q)
then mixin.%s
else {}
`, filepath.Join(moduleDir(t), "mixin.libsonnet"), field, field)
		out, err := vm.EvaluateAnonymousSnippet("", snippet)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) == "{ }" {
			t.Errorf("mixtool would find no %s", field)
		}
	}
}
