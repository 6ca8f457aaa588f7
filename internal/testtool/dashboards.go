package testtool

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// Dashboard is a Grafana dashboard file, decoded as far as the tests look.
type Dashboard struct {
	File    string
	Content []byte
	Raw     map[string]any
	UID     string `json:"uid"`
	Title   string `json:"title"`

	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	SchemaVersion int `json:"schemaVersion"`
	Templating    struct {
		List []Variable `json:"list"`
	} `json:"templating"`
	Links []struct {
		Type        string   `json:"type"`
		Tags        []string `json:"tags"`
		KeepTime    bool     `json:"keepTime"`
		IncludeVars bool     `json:"includeVars"`
	} `json:"links"`
	Panels []Panel `json:"panels"`
}

// Variable is a template variable of a Dashboard.
type Variable struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Query      any    `json:"query"`
	Multi      bool   `json:"multi"`
	IncludeAll bool   `json:"includeAll"`
	AllValue   string `json:"allValue"`
	Current    struct {
		Value any `json:"value"`
	} `json:"current"`
}

// Panel is a panel of a Dashboard; a row holds its panels when collapsed.
type Panel struct {
	ID          int    `json:"id"`
	Title       string `json:"title"`
	Type        string `json:"type"`
	Description string `json:"description"`
	GridPos     struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets         []Target        `json:"targets"`
	Transformations json.RawMessage `json:"transformations"`
	FieldConfig     struct {
		Defaults struct {
			Mappings []ValueMapping `json:"mappings"`
		} `json:"defaults"`
		Overrides []struct {
			Matcher struct {
				ID      string `json:"id"`
				Options any    `json:"options"`
			} `json:"matcher"`
			Properties []struct {
				ID    string          `json:"id"`
				Value json.RawMessage `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Panels []Panel `json:"panels"`
}

// Target is a query of a Panel, as the Prometheus data source stores it.
type Target struct {
	RefID        string `json:"refId"`
	Expr         string `json:"expr"`
	Interval     string `json:"interval"` // "Min step"
	Format       string `json:"format"`
	Instant      bool   `json:"instant"`
	Range        bool   `json:"range"`
	LegendFormat string `json:"legendFormat"`
}

// ValueMapping is a value mapping of a panel.
type ValueMapping struct {
	Type    string `json:"type"`
	Options map[string]struct {
		Text  string `json:"text"`
		Color string `json:"color"`
	} `json:"options"`
}

// AllPanels returns every panel that shows data, those of collapsed rows
// included, rows left out.
func (d Dashboard) AllPanels() []Panel {
	var out []Panel
	for _, p := range d.Panels {
		if p.Type == "row" {
			out = append(out, p.Panels...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// Variable returns the dashboard's variable of that name.
func (d Dashboard) Variable(name string) (Variable, bool) {
	for _, v := range d.Templating.List {
		if v.Name == name {
			return v, true
		}
	}
	return Variable{}, false
}

// LoadDashboards reads every dashboard in dir.
func LoadDashboards(t testing.TB, dir string) []Dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) < 2 {
		t.Fatalf("dashboards: %v %v", files, err)
	}
	var ds []Dashboard
	for _, f := range files {
		content, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := ParseDashboard(f, content)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	return ds
}

// ParseDashboard decodes a dashboard's JSON.
func ParseDashboard(file string, content []byte) (Dashboard, error) {
	d := Dashboard{File: file, Content: content}
	if err := json.Unmarshal(content, &d); err != nil {
		return d, fmt.Errorf("%s: %w", file, err)
	}
	if err := json.Unmarshal(content, &d.Raw); err != nil {
		return d, fmt.Errorf("%s: %w", file, err)
	}
	return d, nil
}

// Walk calls fn for every object in a decoded JSON document with its path.
func Walk(v any, path string, fn func(path string, obj map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		fn(path, v)
		for k, x := range v {
			Walk(x, path+"."+k, fn)
		}
	case []any:
		for i, x := range v {
			Walk(x, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

// Query is a query of a dashboard: a panel's target, or a variable's
// label_values() turned into PromQL (Panel nil).
type Query struct {
	Name      string
	Dashboard *Dashboard
	Panel     *Panel
	Target    Target
}

// DashboardQueries returns every query of the dashboards in dir.
func DashboardQueries(t testing.TB, dir string) []Query {
	t.Helper()
	var queries []Query
	labelValues := regexp.MustCompile(`^label_values\((.*), (\w+)\)$`)
	for _, d := range LoadDashboards(t, dir) {
		for _, p := range d.AllPanels() {
			for _, tg := range p.Targets {
				queries = append(queries, Query{
					Name:      fmt.Sprintf("%s %q %s", filepath.Base(d.File), p.Title, tg.RefID),
					Dashboard: &d, Panel: &p, Target: tg,
				})
			}
		}
		for _, v := range d.Templating.List {
			q, ok := v.Query.(map[string]any)
			if !ok {
				continue
			}
			m := labelValues.FindStringSubmatch(fmt.Sprint(q["query"]))
			if m == nil {
				t.Errorf("%s: variable %s: query %v is not label_values(...)", d.File, v.Name, q["query"])
				continue
			}
			queries = append(queries, Query{
				Name:      fmt.Sprintf("%s variable %s", filepath.Base(d.File), v.Name),
				Dashboard: &d,
				Target:    Target{RefID: v.Name, Expr: fmt.Sprintf("count by (%s) (%s)", m[2], m[1]), Instant: true},
			})
		}
	}
	return queries
}
