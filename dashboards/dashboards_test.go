package dashboards_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/grafana"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// Tests of the dashboards' JSON; the tests that run their queries against a
// Prometheus scraping the exporter, and through Grafana's own code, are
// e2e/dashboards*_test.go.

func TestDashboardsAreImportable(t *testing.T) {
	uids := map[string]bool{}
	for _, d := range testtool.LoadDashboards(t, ".") {
		if d.UID == "" || uids[d.UID] {
			t.Errorf("%s: missing or duplicate uid %q", d.File, d.UID)
		}
		uids[d.UID] = true
		// Grafana 10.4 reads schema 39; 11 to 13 migrate it forward.
		if d.SchemaVersion < 36 || d.SchemaVersion > 39 {
			t.Errorf("%s: schemaVersion %d, want 36..39 for Grafana 10.4 to 13", d.File, d.SchemaVersion)
		}
		if len(d.Inputs) != 1 || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
			t.Errorf("%s: __inputs should declare one Prometheus data source for the import dialog: %+v", d.File, d.Inputs)
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
	}
}

// TestImportUsesTheChosenDataSource does what Grafana's import does with
// the data source picked in its dialog: it replaces ${<input name>}
// everywhere. The dashboard must then open on that data source.
func TestImportUsesTheChosenDataSource(t *testing.T) {
	for _, d := range testtool.LoadDashboards(t, ".") {
		imported := string(d.Content)
		for _, in := range d.Inputs {
			ref := "${" + in.Name + "}"
			if !strings.Contains(imported, ref) {
				t.Errorf("%s: input %s is declared but %s is used nowhere: the import dialog's choice would be ignored", d.File, in.Name, ref)
			}
			imported = strings.ReplaceAll(imported, ref, "chosen-prometheus")
		}
		if strings.Contains(imported, "${DS_") {
			t.Errorf("%s: a ${DS_...} reference has no input", d.File)
		}
		after, err := testtool.ParseDashboard(d.File, []byte(imported))
		if err != nil {
			t.Fatal(err)
		}
		v, ok := after.Variable("datasource")
		if !ok || v.Type != "datasource" || v.Query != "prometheus" {
			t.Fatalf("%s: no Prometheus datasource variable: %+v", d.File, v)
		}
		if v.Current.Value != "chosen-prometheus" {
			t.Errorf("%s: after import the datasource variable is %v, not the data source chosen", d.File, v.Current.Value)
		}
	}
}

// TestVariables checks the overview is for the fleet (job and provider,
// several or all) and the instance dashboard for one instance at a time.
func TestVariables(t *testing.T) {
	for _, d := range testtool.LoadDashboards(t, ".") {
		for _, name := range []string{"job", "provider"} {
			v, ok := d.Variable(name)
			if !ok || !v.Multi || !v.IncludeAll || v.AllValue != ".*" {
				t.Errorf("%s: variable %s must be multi-select with All (.*): %+v", d.File, name, v)
			}
		}
		v, hasName := d.Variable("name")
		switch d.UID {
		case "whatsapp-overview":
			if hasName {
				t.Errorf("%s: the overview shows the fleet; it has no instance variable", d.File)
			}
		case "whatsapp-instance":
			if !hasName || v.Multi || v.IncludeAll {
				t.Errorf("%s: the instance variable must select one instance, without All: %+v", d.File, v)
			}
			q, _ := v.Query.(map[string]any)
			if s := fmt.Sprint(q["query"]); !strings.Contains(s, "$job") || !strings.Contains(s, "$provider") {
				t.Errorf("%s: the instance variable lists instances of every job and provider: %s", d.File, s)
			}
		default:
			t.Errorf("%s: unexpected dashboard %s", d.File, d.UID)
		}
	}
}

// TestRateWindowsHoldSamples computes $__rate_interval the way Grafana
// does, for the data source's default settings and for the 60 s scrape
// interval the README recommends, over ranges from an hour to a week: the
// window must hold four samples at a 60 s scrape.
func TestRateWindowsHoldSamples(t *testing.T) {
	window := regexp.MustCompile(`\(rate\([^\]]*\[([^\]]+)\]`)
	to := time.Now()
	checked := 0
	for _, q := range testtool.DashboardQueries(t, ".") {
		for _, w := range window.FindAllStringSubmatch(q.Target.Expr, -1) {
			if w[1] != "$__rate_interval" {
				t.Errorf("%s: rate window %s, want $__rate_interval", q.Name, w[1])
			}
		}
		if !strings.Contains(q.Target.Expr, "$__rate_interval") {
			continue
		}
		checked++
		for _, ds := range []grafana.DataSource{{}, {ScrapeInterval: 15 * time.Second}, {ScrapeInterval: time.Minute}} {
			for _, r := range []time.Duration{5 * time.Minute, time.Hour, 24 * time.Hour, 7 * 24 * time.Hour} {
				for _, width := range []int{400, 1900} {
					rq, err := grafana.Resolve(q.Target, ds, grafana.View{From: to.Add(-r), To: to, MaxDataPoints: width})
					if err != nil {
						t.Fatalf("%s: %v", q.Name, err)
					}
					if rq.RateInterval < 4*time.Minute {
						t.Errorf("%s with scrape interval %v, range %v, %d points: $__rate_interval is %v, under four 60 s scrapes",
							q.Name, ds.ScrapeInterval, r, width, rq.RateInterval)
					}
				}
			}
		}
	}
	if checked < 5 {
		t.Errorf("only %d rate queries found", checked)
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
	case "notAuthorized", "close", "blocked", "yellowCard", "expired":
		return "red"
	case "creating": // GREEN-API, up to 5 minutes: no problem yet
		return "blue"
	// Meta's Cloud API: a number's status. FLAGGED still sends (its
	// quality is low), RESTRICTED and RATE_LIMITED answer customers only;
	// PENDING is being registered; DELETED and MIGRATED are gone from the
	// WABA, for the configuration to follow.
	case "CONNECTED":
		return "green"
	case "FLAGGED", "RESTRICTED", "RATE_LIMITED":
		return "orange"
	case "PENDING":
		return "blue"
	case "UNVERIFIED", "DISCONNECTED", "BANNED":
		return "red"
	case "DELETED", "MIGRATED":
		return "purple"
	// The self-hosted servers. WAHA (provider waha): WORKING sends;
	// STARTING will send soon; a person must link the phone
	// (SCAN_QR_CODE, the passkey steps) or act on the session (FAILED,
	// which is also WAHA's ban; STOPPED, started or excluded by someone).
	// The whatsmeow family: logged_in sends; disconnected reconnects by
	// itself, like connecting; pairing and logged_out wait for a person
	// to link the device; temporary_ban is a ban.
	case "WORKING", "logged_in":
		return "green"
	case "STARTING", "disconnected":
		return "orange"
	case "SCAN_QR_CODE", "PASSKEY_REQUIRED", "PASSKEY_CONFIRMATION_REQUIRED", "FAILED", "STOPPED",
		"pairing", "logged_out", "temporary_ban":
		return "red"
	case collector.StateUnknown:
		return "#8e8e8e"
	}
	return "no colour defined for " + state
}

// healthMapping tells a mapping of Meta's health values alone (a
// number's can-send status and quality rating, a WABA's review), some of
// which are spelt like a number's status (PENDING, RESTRICTED) but are not
// states.
func healthMapping(m testtool.ValueMapping) bool {
	for _, o := range m.Options {
		if o.Text != collector.StateUnknown && !slices.Contains(collector.CanSendValues, o.Text) &&
			!slices.Contains(collector.QualityValues, o.Text) && !slices.Contains(collector.ReviewValues, o.Text) {
			return false
		}
	}
	return true
}

// mappings returns a panel's value mappings, defaults and overrides.
func mappings(t *testing.T, p testtool.Panel) []testtool.ValueMapping {
	return panelMappings(t, p, true)
}

// stateMappings returns a panel's value mappings but those of Meta's
// health values.
func stateMappings(t *testing.T, p testtool.Panel) []testtool.ValueMapping {
	return panelMappings(t, p, false)
}

func panelMappings(t *testing.T, p testtool.Panel, health bool) []testtool.ValueMapping {
	m := slices.Clone(p.FieldConfig.Defaults.Mappings)
	for _, o := range p.FieldConfig.Overrides {
		for _, prop := range o.Properties {
			if prop.ID == "mappings" {
				var more []testtool.ValueMapping
				if err := json.Unmarshal(prop.Value, &more); err != nil {
					t.Fatal(err)
				}
				m = append(m, more...)
			}
		}
	}
	if !health {
		m = slices.DeleteFunc(m, healthMapping)
	}
	return m
}

func TestDashboardsColourEveryState(t *testing.T) {
	states := everyState()
	if len(states) < 10 {
		t.Fatalf("only %d states known: %v", len(states), states)
	}
	checked := 0
	for _, d := range testtool.LoadDashboards(t, ".") {
		for _, p := range d.AllPanels() {
			// A panel that maps states maps every one of them.
			colour := map[string]string{}
			for _, m := range stateMappings(t, p) {
				for _, o := range m.Options {
					if slices.Contains(states, o.Text) {
						colour[o.Text] = o.Color
					}
				}
			}
			// A panel with a series per state colours every one.
			overridden := map[string]string{}
			for _, o := range p.FieldConfig.Overrides {
				name, _ := o.Matcher.Options.(string)
				if o.Matcher.ID != "byName" || !slices.Contains(states, name) {
					continue
				}
				for _, prop := range o.Properties {
					var c struct {
						FixedColor string `json:"fixedColor"`
					}
					if prop.ID == "color" && json.Unmarshal(prop.Value, &c) == nil {
						overridden[name] = c.FixedColor
					}
				}
			}
			for _, got := range []map[string]string{colour, overridden} {
				// unknown alone is a health value's (Meta's can-send
				// status, quality rating), not a state.
				if len(got) == 0 || len(got) == 1 && got[collector.StateUnknown] != "" {
					continue
				}
				checked++
				for _, s := range states {
					if got[s] != stateColour(s) {
						t.Errorf("%s %q: state %s has colour %q, want %q", d.File, p.Title, s, got[s], stateColour(s))
					}
				}
			}
		}
	}
	if checked < 6 {
		t.Errorf("only %d panels colour states; the tables, counts, timeline and current state should", checked)
	}
}

// TestStateSourcesAreTold checks each dashboard tells, in the description
// of a panel that shows states, where each provider's states come from
// and how fresh they are, and that every panel of disconnect reasons says
// which provider gives them.
func TestStateSourcesAreTold(t *testing.T) {
	states := everyState()
	for _, d := range testtool.LoadDashboards(t, ".") {
		told := 0
		for _, p := range d.AllPanels() {
			showsStates := false
			for _, m := range stateMappings(t, p) {
				for _, o := range m.Options {
					showsStates = showsStates || slices.Contains(states, o.Text)
				}
			}
			missing := []string{}
			for _, s := range []string{"GREEN-API", "Wachat", "states_from_listing", "Evolution API 1.8", "Evolution API 2", "notification", "refresh_interval"} {
				if !strings.Contains(p.Description, s) {
					missing = append(missing, s)
				}
			}
			if showsStates && len(missing) == 0 {
				told++
			}
			for _, tg := range p.Targets {
				if strings.Contains(tg.Expr, "whatsapp_instance_disconnect_reason") && !strings.Contains(p.Description, "Evolution API") {
					t.Errorf("%s %q: shows disconnect reasons and does not say they are Evolution API's", d.File, p.Title)
				}
			}
		}
		if told == 0 {
			t.Errorf("%s: no panel showing states tells where each provider's states come from", d.File)
		}
	}
}

// TestStateCodes checks the panels that turn the one-hot state into a
// number: every state of every provider has a code, each code one state,
// and the panel's mapping shows each code as its state.
func TestStateCodes(t *testing.T) {
	arm := regexp.MustCompile(`state="(\w+)"\} \* (\d+)`)
	checked := 0
	for _, d := range testtool.LoadDashboards(t, ".") {
		for _, p := range d.AllPanels() {
			for _, tg := range p.Targets {
				arms := arm.FindAllStringSubmatch(tg.Expr, -1)
				if len(arms) == 0 {
					continue
				}
				checked++
				codes := checkCodes(t, d, p, arms)
				for _, s := range everyState() {
					if s == collector.StateUnknown {
						continue // every arm is 0 then: shown as unknown
					}
					if !slices.Contains(slices.Collect(maps.Values(codes)), s) {
						t.Errorf("%s %q: state %s has no code", d.File, p.Title, s)
					}
				}
			}
		}
	}
	if checked < 2 {
		t.Errorf("only %d state code queries found", checked)
	}
}

// checkCodes checks the arms of a coded query (value, code: `label="v"}
// * code`) against the panel's value mappings: each code once, shown as
// its value, and 0 (no arm true) shown as unknown. It returns the values
// by code.
func checkCodes(t *testing.T, d testtool.Dashboard, p testtool.Panel, arms [][]string) map[string]string {
	t.Helper()
	text := map[string]string{}
	for _, m := range mappings(t, p) {
		for value, o := range m.Options {
			text[value] = o.Text
		}
	}
	codes := map[string]string{}
	for _, a := range arms {
		if other, dup := codes[a[2]]; dup {
			t.Errorf("%s %q: code %s is both %s and %s", d.File, p.Title, a[2], other, a[1])
		}
		codes[a[2]] = a[1]
		if text[a[2]] != a[1] {
			t.Errorf("%s %q: code %s is shown as %q, want %s", d.File, p.Title, a[2], text[a[2]], a[1])
		}
	}
	if text["0"] != collector.StateUnknown {
		t.Errorf("%s %q: code 0 (none true) is shown as %q", d.File, p.Title, text["0"])
	}
	return codes
}

// TestLinks checks the two dashboards link to each other keeping the time
// range and the variables, and a table's instance name opens the instance.
func TestLinks(t *testing.T) {
	dashboards := testtool.LoadDashboards(t, ".")
	uids := map[string]bool{}
	for _, d := range dashboards {
		uids[d.UID] = true
	}
	instanceLinks := 0
	for _, d := range dashboards {
		if !slices.Contains(d.Raw["tags"].([]any), any("whatsapp")) {
			t.Errorf("%s: not tagged whatsapp", d.File)
		}
		ok := false
		for _, l := range d.Links {
			ok = ok || (l.Type == "dashboards" && slices.Contains(l.Tags, "whatsapp") && l.KeepTime && l.IncludeVars)
		}
		if !ok {
			t.Errorf("%s: no link to the whatsapp dashboards keeping time and variables: %+v", d.File, d.Links)
		}
		testtool.Walk(d.Raw, filepath.Base(d.File), func(path string, obj map[string]any) {
			u, _ := obj["url"].(string)
			m := regexp.MustCompile(`^/d/([\w-]+)/`).FindStringSubmatch(u)
			if m == nil {
				return
			}
			if !uids[m[1]] {
				t.Errorf("%s: link to unknown dashboard %s", path, m[1])
			}
			instanceLinks++
			for _, want := range []string{"${__url_time_range}", "${datasource:queryparam}", "${job:queryparam}", "var-provider=", "var-name="} {
				if !strings.Contains(u, want) {
					t.Errorf("%s: link %s lacks %s", path, u, want)
				}
			}
		})
	}
	if instanceLinks < 3 {
		t.Errorf("only %d links to an instance; the overview's tables should each have one", instanceLinks)
	}
}

// TestTablesAreInstant checks every table merging queries merges one
// instant value per series of each.
func TestTablesAreInstant(t *testing.T) {
	merges := 0
	for _, d := range testtool.LoadDashboards(t, ".") {
		for _, p := range d.AllPanels() {
			var ids []struct{ ID string }
			if p.Transformations != nil {
				if err := json.Unmarshal(p.Transformations, &ids); err != nil {
					t.Fatalf("%s %q: %v", d.File, p.Title, err)
				}
			}
			if !slices.Contains(ids, struct{ ID string }{"merge"}) {
				continue
			}
			merges++
			for _, tg := range p.Targets {
				if tg.Format != "table" || !tg.Instant || tg.Range {
					t.Errorf("%s %q %s: a merged table needs instant queries in table format: %+v", d.File, p.Title, tg.RefID, tg)
				}
			}
		}
	}
	if merges < 3 {
		t.Errorf("only %d merged tables", merges)
	}
}

// TestLayout checks panels fit the 24-column grid without overlapping.
func TestLayout(t *testing.T) {
	for _, d := range testtool.LoadDashboards(t, ".") {
		type cell struct{ x, y int }
		taken := map[cell]string{}
		for _, p := range d.Panels {
			g := p.GridPos
			if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("%s %q: gridPos %+v off the grid", d.File, p.Title, g)
			}
			for x := g.X; x < g.X+g.W; x++ {
				for y := g.Y; y < g.Y+g.H; y++ {
					if other, ok := taken[cell{x, y}]; ok {
						t.Errorf("%s: %q overlaps %q at %d,%d", d.File, p.Title, other, x, y)
						return
					}
					taken[cell{x, y}] = p.Title + "#" + strconv.Itoa(p.ID)
				}
			}
		}
	}
}

// TestProvisioning checks the provisioning examples: the data source has
// the scrape interval the README recommends, and the dashboards, with
// ${DS_PROMETHEUS} replaced as provisioning.yml says, open on it.
func TestProvisioning(t *testing.T) {
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, Access, URL string
			IsDefault                    bool `yaml:"isDefault"`
			JSONData                     struct {
				TimeInterval string `yaml:"timeInterval"`
				HTTPMethod   string `yaml:"httpMethod"`
			} `yaml:"jsonData"`
		}
	}
	content, err := os.ReadFile("datasource.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(content, &ds); err != nil {
		t.Fatalf("datasource.yml: %v", err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].UID == "" {
		t.Fatalf("datasource.yml: want one Prometheus data source with a uid: %+v", ds)
	}
	d := ds.Datasources[0]
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "scrape_interval: "+d.JSONData.TimeInterval+" ") || d.JSONData.TimeInterval != "60s" {
		t.Errorf("datasource.yml: timeInterval %q, want the README's scrape interval, 60s", d.JSONData.TimeInterval)
	}

	provisioning, err := os.ReadFile("provisioning.yml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`sed -i 's/\$\{DS_PROMETHEUS\}/([\w-]+)/g'`).FindSubmatch(provisioning)
	if m == nil || string(m[1]) != d.UID {
		t.Fatalf("provisioning.yml: no sed command putting datasource.yml's uid %s in the dashboards", d.UID)
	}
	for _, db := range testtool.LoadDashboards(t, ".") {
		provisioned, err := testtool.ParseDashboard(db.File, bytes.ReplaceAll(db.Content, []byte("${DS_PROMETHEUS}"), m[1]))
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := provisioned.Variable("datasource"); v.Current.Value != d.UID {
			t.Errorf("%s provisioned: the datasource variable is %v, want %s", db.File, v.Current.Value, d.UID)
		}
	}
}

// TestQueuePanelsClaimNoCap checks no panel of the outgoing queues speaks
// of a cap: getMessagesCount counts every message, and the 500 that
// showMessagesQueue listed at most is gone with it, as is
// whatsapp_outgoing_queue_capped. Each panel says what the queue shows
// while the provider withholds the count, but the count of growing
// queues, which needs the instance authorized.
func TestQueuePanelsClaimNoCap(t *testing.T) {
	checked := 0
	for _, d := range testtool.LoadDashboards(t, ".") {
		testtool.Walk(d.Raw, filepath.Base(d.File), func(path string, obj map[string]any) {
			if _, ok := obj["targets"]; !ok {
				return
			}
			raw, err := json.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(raw), "whatsapp_outgoing_queue_") {
				return
			}
			checked++
			var p struct {
				Title, Description string
				Targets            []struct{ Expr string }
				FieldConfig        struct {
					Defaults struct {
						Thresholds struct {
							Steps []struct{ Value *float64 }
						}
					}
				}
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			for _, word := range []string{"500", "cap", "showMessagesQueue", "lower bound", "may be longer"} {
				if strings.Contains(p.Description, word) {
					t.Errorf("%s %q: the description speaks of the old cap (%q): %s", path, p.Title, word, p.Description)
				}
			}
			for _, tg := range p.Targets {
				if strings.Contains(tg.Expr, "whatsapp_outgoing_queue_capped") {
					t.Errorf("%s %q: uses whatsapp_outgoing_queue_capped, which is gone", path, p.Title)
				}
			}
			for _, s := range p.FieldConfig.Defaults.Thresholds.Steps {
				if s.Value != nil && *s.Value == 500 {
					t.Errorf("%s %q: a threshold at the old 500-message cap", path, p.Title)
				}
			}
			if strings.Contains(string(raw), `"500+"`) {
				t.Errorf("%s %q: shows 500 as 500+", path, p.Title)
			}
			if !strings.Contains(p.Title, "Growing") && !strings.Contains(p.Description, "starting or not authorized") {
				t.Errorf("%s %q: the description does not say what the queue shows while the instance is starting or not authorized", path, p.Title)
			}
		})
	}
	if checked < 5 {
		t.Errorf("only %d panels of the outgoing queues found", checked)
	}
}
