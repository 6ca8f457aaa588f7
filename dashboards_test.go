package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

type dashboard struct {
	file string
	raw  map[string]any
	UID  string `json:"uid"`

	Inputs []struct {
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	SchemaVersion int `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Multi      bool   `json:"multi"`
			IncludeAll bool   `json:"includeAll"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashboardPanel `json:"panels"`
}

type dashboardPanel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Mappings []valueMapping `json:"mappings"`
		} `json:"defaults"`
		Overrides []struct {
			Matcher struct {
				Options any `json:"options"`
			} `json:"matcher"`
			Properties []struct {
				ID    string          `json:"id"`
				Value json.RawMessage `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
}

type valueMapping struct {
	Type    string `json:"type"`
	Options map[string]struct {
		Text  string `json:"text"`
		Color string `json:"color"`
	} `json:"options"`
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob("dashboards/*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("dashboards: %v %v", files, err)
	}
	var ds []dashboard
	for _, f := range files {
		content, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := dashboard{file: f}
		if err := json.Unmarshal(content, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := json.Unmarshal(content, &d.raw); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		ds = append(ds, d)
	}
	return ds
}

// walk calls fn for every object in a decoded JSON document with its path.
func walk(v any, path string, fn func(path string, obj map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		fn(path, v)
		for k, x := range v {
			walk(x, path+"."+k, fn)
		}
	case []any:
		for i, x := range v {
			walk(x, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

func TestDashboardsAreImportable(t *testing.T) {
	uids := map[string]bool{}
	for _, d := range loadDashboards(t) {
		if d.UID == "" || uids[d.UID] {
			t.Errorf("%s: missing or duplicate uid %q", d.file, d.UID)
		}
		uids[d.UID] = true
		// Grafana 10 reads schema 39; 11 and 12 migrate it forward.
		if d.SchemaVersion < 36 || d.SchemaVersion > 39 {
			t.Errorf("%s: schemaVersion %d, want 36..39 for Grafana 10 to 12", d.file, d.SchemaVersion)
		}
		if len(d.Inputs) != 1 || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
			t.Errorf("%s: __inputs should declare one Prometheus data source for grafana.com-style import: %+v", d.file, d.Inputs)
		}
		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
			switch v.Name {
			case "datasource":
				if v.Type != "datasource" || v.Query != "prometheus" {
					t.Errorf("%s: datasource variable %+v", d.file, v)
				}
			case "job", "provider", "name":
				if !v.Multi || !v.IncludeAll {
					t.Errorf("%s: variable %s must be multi-select with All", d.file, v.Name)
				}
			}
		}
		for _, v := range []string{"datasource", "job", "provider", "name"} {
			if !vars[v] {
				t.Errorf("%s: no %s variable", d.file, v)
			}
		}
		// No hard-coded data source: everything goes through the variable.
		walk(d.raw, "", func(path string, obj map[string]any) {
			ds, ok := obj["datasource"].(map[string]any)
			if !ok {
				if s, isString := obj["datasource"].(string); isString {
					t.Errorf("%s%s: datasource %q is a plain string", d.file, path, s)
				}
				return
			}
			if ds["type"] == "grafana" {
				return // the built-in annotations source
			}
			if ds["uid"] != "${datasource}" {
				t.Errorf("%s%s: datasource %v, want uid ${datasource}", d.file, path, ds)
			}
		})
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				for _, w := range regexp.MustCompile(`\(rate\([^\]]*\[([^\]]+)\]`).FindAllStringSubmatch(tg.Expr, -1) {
					if w[1] != "$__rate_interval" {
						t.Errorf("%s %q: rate window %s, want $__rate_interval", d.file, p.Title, w[1])
					}
				}
			}
		}
	}
}

// everyState is every state the exporter can emit, across providers.
func everyState() []string {
	states := []string{collector.StateUnknown}
	for _, p := range config.Providers() {
		states = append(states, collector.ProviderStates(p)...)
	}
	slices.Sort(states)
	return slices.Compact(states)
}

// stateColour is the colour each state must have.
func stateColour(state string) string {
	switch state {
	case "authorized", "open":
		return "green"
	case "starting", "connecting", "sleepMode":
		return "orange"
	case "notAuthorized", "close", "blocked", "yellowCard":
		return "red"
	case collector.StateUnknown:
		return "#8e8e8e"
	}
	return "no colour defined for " + state
}

func TestDashboardsColourEveryState(t *testing.T) {
	states := everyState()
	if len(states) < 10 {
		t.Fatalf("only %d states known: %v", len(states), states)
	}
	checked := 0
	for _, d := range loadDashboards(t) {
		for _, p := range d.Panels {
			var mappings []valueMapping
			mappings = append(mappings, p.FieldConfig.Defaults.Mappings...)
			for _, o := range p.FieldConfig.Overrides {
				for _, prop := range o.Properties {
					if prop.ID == "mappings" {
						var m []valueMapping
						if err := json.Unmarshal(prop.Value, &m); err != nil {
							t.Fatal(err)
						}
						mappings = append(mappings, m...)
					}
				}
			}
			// A panel that maps states maps every one of them.
			colour := map[string]string{}
			for _, m := range mappings {
				for _, o := range m.Options {
					if slices.Contains(states, o.Text) {
						colour[o.Text] = o.Color
					}
				}
			}
			if len(colour) == 0 {
				continue
			}
			checked++
			for _, s := range states {
				if colour[s] != stateColour(s) {
					t.Errorf("%s %q: state %s has colour %q, want %q", d.file, p.Title, s, colour[s], stateColour(s))
				}
			}
		}
	}
	if checked < 4 {
		t.Errorf("only %d panels map states to colours; the table, timelines and current state should", checked)
	}
}

// dashboardQueries returns every query of the dashboards, the variables'
// label_values() turned into PromQL.
func dashboardQueries(t *testing.T) map[string]string {
	queries := map[string]string{}
	labelValues := regexp.MustCompile(`^label_values\((.*), (\w+)\)$`)
	for _, d := range loadDashboards(t) {
		for _, p := range d.Panels {
			for i, tg := range p.Targets {
				queries[fmt.Sprintf("%s %q #%d", filepath.Base(d.file), p.Title, i)] = tg.Expr
			}
		}
		for _, v := range d.Templating.List {
			q, ok := v.Query.(map[string]any)
			if !ok {
				continue
			}
			m := labelValues.FindStringSubmatch(fmt.Sprint(q["query"]))
			if m == nil {
				t.Errorf("%s: variable %s: query %v is not label_values(...)", d.file, v.Name, q["query"])
				continue
			}
			queries[fmt.Sprintf("%s variable %s", filepath.Base(d.file), v.Name)] = fmt.Sprintf("count by (%s) (%s)", m[2], m[1])
		}
	}
	return queries
}

func TestDashboardMetricsExist(t *testing.T) {
	simURL := startSimulator(t, simulator.Demo())
	e := startExporter(t, configSource{inline: []byte(simulator.DemoConfig(simURL))}, 0)
	mfs := parse(t, scrape(t, e.url, nil))
	used := 0
	for name, q := range dashboardQueries(t) {
		for _, m := range regexp.MustCompile(`\bwhatsapp_\w+`).FindAllString(q, -1) {
			used++
			family := strings.TrimSuffix(m, "_bucket")
			if _, ok := mfs[family]; !ok {
				t.Errorf("%s uses %s, which the exporter does not expose", name, m)
			}
		}
	}
	if used < 10 {
		t.Fatalf("only %d metric uses found in the dashboards", used)
	}
}

// TestDashboardQueriesReturnData has a real Prometheus scrape the exporter
// running against the demo simulator, with the alerting rules loaded, and
// runs every dashboard query with its variables substituted.
func TestDashboardQueriesReturnData(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	prometheus := requireTool(t, "prometheus")
	simURL := startSimulator(t, simulator.Demo())
	e := startExporter(t, configSource{inline: []byte(simulator.DemoConfig(simURL))}, 0)

	dir := t.TempDir()
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	promCfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: whatsapp
    static_configs: [{targets: [%q]}]
`, strings.TrimPrefix(e.url, "http://"))
	for name, content := range map[string]string{"rules.yml": shortenDurations(string(rules)), "prometheus.yml": promCfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	logs := startProcess(t, addr, "/-/ready", prometheus,
		"--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)

	query := func(q string) (int, error) {
		resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return 0, err
		}
		if r.Status != "success" {
			return 0, fmt.Errorf("%s", r.Error)
		}
		return len(r.Data.Result), nil
	}
	// The demo's instance demo-sales starts notAuthorized, so an alert fires
	// once the shortened for has passed; rates need a few scrapes.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		n, err := query(`ALERTS{alertname=~"WhatsApp.+", alertstate="firing"}`)
		if err == nil && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no WhatsApp alert fired: %v\n%s", err, logs)
		}
	}

	queries := dashboardQueries(t)
	for _, vars := range []map[string]string{
		{"$job": ".*", "$provider": ".*", "$name": ".*"}, // All
		{"$job": "whatsapp", "$provider": "greenapi", "$name": "demo-sales"},
		{"$job": "whatsapp", "$provider": "wachat|evolution", "$name": "demo-wachat-store|demo-evolution"},
	} {
		vars["$__rate_interval"] = "15s"
		for name, q := range queries {
			for k, v := range vars {
				q = strings.ReplaceAll(q, k, v)
			}
			if strings.Contains(q, "$") {
				t.Errorf("%s: variable left after substitution: %s", name, q)
				continue
			}
			n, err := query(q)
			switch {
			case err != nil:
				t.Errorf("%s with %v: Prometheus rejects the query: %v\n%s", name, vars, err, q)
			case n == 0 && !strings.Contains(q, "ALERTS"):
				// Alert panels may rightly be empty for a healthy selection;
				// every other panel must show data.
				t.Errorf("%s with %v: no data\n%s", name, vars, q)
			case n == 0 && vars["$name"] == ".*":
				t.Errorf("%s: no data for all instances\n%s", name, q)
			}
		}
	}
}
