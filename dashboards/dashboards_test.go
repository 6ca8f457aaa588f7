package dashboards_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"testing"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// Tests of the dashboards' JSON; the tests that run their queries against a
// Prometheus scraping the exporter are dashboards_test.go at the top level.

func TestDashboardsAreImportable(t *testing.T) {
	uids := map[string]bool{}
	for _, d := range testtool.LoadDashboards(t, ".") {
		if d.UID == "" || uids[d.UID] {
			t.Errorf("%s: missing or duplicate uid %q", d.File, d.UID)
		}
		uids[d.UID] = true
		// Grafana 10 reads schema 39; 11 and 12 migrate it forward.
		if d.SchemaVersion < 36 || d.SchemaVersion > 39 {
			t.Errorf("%s: schemaVersion %d, want 36..39 for Grafana 10 to 12", d.File, d.SchemaVersion)
		}
		if len(d.Inputs) != 1 || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
			t.Errorf("%s: __inputs should declare one Prometheus data source for grafana.com-style import: %+v", d.File, d.Inputs)
		}
		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
			switch v.Name {
			case "datasource":
				if v.Type != "datasource" || v.Query != "prometheus" {
					t.Errorf("%s: datasource variable %+v", d.File, v)
				}
			case "job", "provider", "name":
				if !v.Multi || !v.IncludeAll {
					t.Errorf("%s: variable %s must be multi-select with All", d.File, v.Name)
				}
			}
		}
		for _, v := range []string{"datasource", "job", "provider", "name"} {
			if !vars[v] {
				t.Errorf("%s: no %s variable", d.File, v)
			}
		}
		// No hard-coded data source: everything goes through the variable.
		testtool.Walk(d.Raw, "", func(path string, obj map[string]any) {
			ds, ok := obj["datasource"].(map[string]any)
			if !ok {
				if s, isString := obj["datasource"].(string); isString {
					t.Errorf("%s%s: datasource %q is a plain string", d.File, path, s)
				}
				return
			}
			if ds["type"] == "grafana" {
				return // the built-in annotations source
			}
			if ds["uid"] != "${datasource}" {
				t.Errorf("%s%s: datasource %v, want uid ${datasource}", d.File, path, ds)
			}
		})
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				for _, w := range regexp.MustCompile(`\(rate\([^\]]*\[([^\]]+)\]`).FindAllStringSubmatch(tg.Expr, -1) {
					if w[1] != "$__rate_interval" {
						t.Errorf("%s %q: rate window %s, want $__rate_interval", d.File, p.Title, w[1])
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
	for _, d := range testtool.LoadDashboards(t, ".") {
		for _, p := range d.Panels {
			var mappings []testtool.ValueMapping
			mappings = append(mappings, p.FieldConfig.Defaults.Mappings...)
			for _, o := range p.FieldConfig.Overrides {
				for _, prop := range o.Properties {
					if prop.ID == "mappings" {
						var m []testtool.ValueMapping
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
					t.Errorf("%s %q: state %s has colour %q, want %q", d.File, p.Title, s, colour[s], stateColour(s))
				}
			}
		}
	}
	if checked < 4 {
		t.Errorf("only %d panels map states to colours; the table, timelines and current state should", checked)
	}
}
