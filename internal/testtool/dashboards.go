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
	File string
	Raw  map[string]any
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
	Panels []DashboardPanel `json:"panels"`
}

// DashboardPanel is a panel of a Dashboard.
type DashboardPanel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Mappings []ValueMapping `json:"mappings"`
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

// ValueMapping is a value mapping of a panel.
type ValueMapping struct {
	Type    string `json:"type"`
	Options map[string]struct {
		Text  string `json:"text"`
		Color string `json:"color"`
	} `json:"options"`
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
		d := Dashboard{File: f}
		if err := json.Unmarshal(content, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := json.Unmarshal(content, &d.Raw); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		ds = append(ds, d)
	}
	return ds
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

// DashboardQueries returns every query of the dashboards in dir, the
// variables' label_values() turned into PromQL.
func DashboardQueries(t testing.TB, dir string) map[string]string {
	queries := map[string]string{}
	labelValues := regexp.MustCompile(`^label_values\((.*), (\w+)\)$`)
	for _, d := range LoadDashboards(t, dir) {
		for _, p := range d.Panels {
			for i, tg := range p.Targets {
				queries[fmt.Sprintf("%s %q #%d", filepath.Base(d.File), p.Title, i)] = tg.Expr
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
			queries[fmt.Sprintf("%s variable %s", filepath.Base(d.File), v.Name)] = fmt.Sprintf("count by (%s) (%s)", m[2], m[1])
		}
	}
	return queries
}
