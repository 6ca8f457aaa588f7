package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/grafana"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// The dashboards against a real Prometheus: their queries as Grafana's
// Prometheus data source sends them (step, $__rate_interval and $__range
// computed the way it does), their tables through Grafana's own code.
// The tests of the JSON alone are in dashboards/.

// dashboardsDir holds the shipped dashboards.
const dashboardsDir = "../dashboards"

// quoteAll quotes each string and joins them with commas, as a YAML list's
// elements.
func quoteAll(s []string) string {
	var q []string
	for _, x := range s {
		q = append(q, strconv.Quote(x))
	}
	return strings.Join(q, ", ")
}

// selection is a choice of the dashboards' variables, as the regular
// expressions Grafana puts in the queries.
type selection struct{ job, provider, name string }

func (s selection) String() string {
	return fmt.Sprintf("job=%s provider=%s name=%s", s.job, s.provider, s.name)
}

func (s selection) all() bool { return s.job == ".*" && s.provider == ".*" }

func (s selection) apply(expr string) string {
	return strings.NewReplacer("$job", s.job, "$provider", s.provider, "$name", s.name).Replace(expr)
}

// instances is the selector of the instances a dashboard shows.
func (s selection) instances(d *testtool.Dashboard) string {
	m := fmt.Sprintf(`job=~%q, provider=~%q`, s.job, s.provider)
	if _, ok := d.Variable("name"); ok {
		m += fmt.Sprintf(`, name=~%q`, s.name)
	}
	return m
}

// demoSelections are All (the instance dashboard showing demo-sales),
// for each provider its first demo instance, and the demo's banned number.
func demoSelections() []selection {
	sels := []selection{{".*", ".*", "demo-sales"}}
	for _, p := range simulator.Providers() {
		sels = append(sels, selection{"whatsapp", p.Name, p.Demo[0].Name})
	}
	return append(sels, selection{"whatsapp", simulator.Evolution, demoBanned()})
}

// demoBanned is the demo's instance with a disconnect reason: an instance
// of the Evolution API server's account, closed with Baileys' 403, which
// the server's listing (version 2) gives as its disconnectionReasonCode.
func demoBanned() string {
	for _, d := range simulator.ProviderOf(simulator.Evolution).Account.Demo.Instances {
		if d.Steps[0].Reason == 403 {
			return d.ID
		}
	}
	panic("the Evolution API demo has no banned instance")
}

// demoMayBeEmpty tells the panels that may rightly show nothing in the
// demo: the failures and the instances not working, which come and go,
// but for All, the alerts and accounts, and the disconnect reasons of a
// selection without the banned instance.
func demoMayBeEmpty(sel selection) func(expr string) bool {
	return func(expr string) bool {
		failures := strings.Contains(expr, "errors_total") && !strings.Contains(expr, "duration")
		notWorking := strings.Contains(expr, `state!~"authorized|open`)
		other := strings.Contains(expr, "ALERTS") || strings.Contains(expr, "whatsapp_account_")
		reasons := strings.Contains(expr, "whatsapp_instance_disconnect_reason") &&
			(!selects(sel.provider, simulator.Evolution) || (strings.Contains(expr, "name=~") && !selects(sel.name, demoBanned())))
		return failures || notWorking || reasons || (other && !sel.all()) || queueMayBeEmpty(sel, expr, demoQueueWatchers()) ||
			metaMayBeEmpty(sel, expr)
	}
}

// metaMayBeEmpty tells the panels of Meta's Cloud API that may rightly
// show nothing: all of them without a Meta number in the selection, and
// those of the numbers that need a look and their errors, which come and
// go like the instances not working.
func metaMayBeEmpty(sel selection, expr string) bool {
	if !strings.Contains(expr, "whatsapp_meta_") {
		return false
	}
	if !slices.ContainsFunc(simulator.Providers(), func(p *simulator.Provider) bool { return p.Name == "meta" }) ||
		!selects(sel.provider, "meta") || (strings.Contains(expr, "name=~") && sel.provider != "meta") {
		return true
	}
	return strings.Contains(expr, `status!="AVAILABLE"`) || strings.Contains(expr, "whatsapp_meta_health_error") ||
		strings.Contains(expr, "whatsapp_meta_waba_")
}

// checkDemoReasons checks the panels of disconnect reasons show the demo's
// banned number wherever the selection holds it.
func checkDemoReasons(t *testing.T, sel selection, runs []panelRun) {
	t.Helper()
	if !selects(sel.provider, simulator.Evolution) {
		return
	}
	banned := demoBanned()
	want := map[string]string{ // panel title: the label set it must show
		"Banned numbers":                 "",
		"Disconnect reasons":             "provider=evolution,reason=banned",
		"Instances by disconnect reason": "name=" + banned + ",provider=evolution,reason=banned",
	}
	if selects(sel.name, banned) {
		want["Last disconnection"] = "reason=banned"
	}
	for _, r := range runs {
		if r.q.Panel == nil {
			continue
		}
		key, ok := want[r.q.Panel.Title]
		if !ok {
			continue
		}
		delete(want, r.q.Panel.Title)
		if key == "" { // a count
			if len(r.vector) != 1 || r.vector[0].Value[1] == "0" {
				t.Errorf("%s with %s: %v, want a count of 1 or more", r.q.Name, sel, r.vector)
			}
			continue
		}
		var labels []string
		for l := range strings.SplitSeq(key, ",") {
			labels = append(labels, strings.Split(l, "=")[0])
		}
		if got := keys(r.vector, labels...); !slices.Contains(got, key) {
			t.Errorf("%s with %s: %v, want %s among them", r.q.Name, sel, got, key)
		}
	}
	for title := range want {
		t.Errorf("no panel %q", title)
	}
}

// demoQueueWatchers are the demo instances that read their outgoing queue.
func demoQueueWatchers() []string {
	var names []string
	for _, d := range simulator.ProviderOf(simulator.GreenAPI).Demo {
		if d.MessagesQueue {
			names = append(names, d.Name)
		}
	}
	return names
}

// queueMayBeEmpty: a queue panel shows the selected instances that read
// their queue (watchers), and its list of the largest queues only those
// that hold messages.
func queueMayBeEmpty(sel selection, expr string, watchers []string) bool {
	if !strings.Contains(expr, "whatsapp_outgoing_queue_") {
		return false
	}
	if strings.Contains(expr, "> 0") {
		return true
	}
	if !selects(sel.provider, "greenapi") {
		return true
	}
	if strings.Contains(expr, "name=~") {
		return !slices.ContainsFunc(watchers, func(n string) bool { return selects(sel.name, n) })
	}
	return len(watchers) == 0
}

// selects reports whether a variable's regular expression, as Grafana
// puts it in a query, selects v.
func selects(re, v string) bool { return regexp.MustCompile("^(?:" + re + ")$").MatchString(v) }

// panelRun is a dashboard query as Grafana sends it, and its result.
type panelRun struct {
	q      testtool.Query
	rq     grafana.Query
	vector []sample // instant queries
	matrix []series // range queries
	err    error
}

func (r panelRun) empty() bool { return len(r.vector) == 0 && len(r.matrix) == 0 }

// panelWidth is the width in pixels of a panel on a 1 920-pixel screen:
// the maxDataPoints Grafana gives its queries.
func panelWidth(p *testtool.Panel) int {
	if p == nil {
		return 1000
	}
	return max(1, p.GridPos.W) * 1900 / 24
}

// runDashboards runs every dashboard query for a selection over a time
// range, as Grafana would with the data source's settings ds; instantOnly
// runs the range queries as instant queries at the end of the range.
func runDashboards(t *testing.T, prom *promServer, sel selection, ds grafana.DataSource, from, to time.Time, instantOnly bool) []panelRun {
	t.Helper()
	var runs []panelRun
	for _, q := range testtool.DashboardQueries(t, dashboardsDir) {
		tg := q.Target
		tg.Expr = sel.apply(tg.Expr)
		rq, err := grafana.Resolve(tg, ds, grafana.View{From: from, To: to, MaxDataPoints: panelWidth(q.Panel)})
		if err != nil {
			t.Fatalf("%s: %v", q.Name, err)
		}
		r := panelRun{q: q, rq: rq}
		switch {
		case strings.Contains(rq.Expr, "$"):
			r.err = fmt.Errorf("variable left after substitution: %s", rq.Expr)
		case rq.Instant || instantOnly:
			r.vector, r.err = prom.queryAt(rq.Expr, to)
		default:
			r.matrix, r.err = prom.queryRange(rq.Expr, rq.Start, rq.End, rq.Step)
		}
		runs = append(runs, r)
	}
	return runs
}

// checkPanels checks the results of runDashboards at time at: every query
// accepted, with data unless mayBeEmpty says it may have none; counts of
// instances by state that count each instance once; state codes that are
// the instances' states; tables that Grafana turns into one full row per
// instance.
func checkPanels(t *testing.T, prom *promServer, sel selection, runs []panelRun, at time.Time, mayBeEmpty func(expr string) bool) {
	t.Helper()
	var tables []grafana.PanelData
	var tableRuns [][]panelRun
	byPanel := map[*testtool.Panel][]panelRun{}
	for _, r := range runs {
		what := fmt.Sprintf("%s with %s", r.q.Name, sel)
		if r.err != nil {
			t.Errorf("%s: %v\n%s", what, r.err, r.rq.Expr)
			continue
		}
		// The remediation's panels show nothing before its first action,
		// and these tests run the exporter without one.
		if r.empty() && !mayBeEmpty(r.rq.Expr) && !strings.Contains(r.rq.Expr, "whatsapp_remediation_") {
			t.Errorf("%s: no data\n%s", what, r.rq.Expr)
		}
		if r.q.Panel != nil {
			byPanel[r.q.Panel] = append(byPanel[r.q.Panel], r)
		}
		if strings.HasPrefix(r.rq.Expr, "count by (state)") {
			checkCountsByState(t, prom, sel, r, at)
		}
		if strings.Contains(r.rq.Expr, `state="authorized"} * 1`) {
			checkStateCodes(t, prom, sel, r, at)
		}
	}
	for p, rs := range byPanel {
		if !strings.Contains(string(p.Transformations), `"merge"`) {
			continue
		}
		tables = append(tables, panelData(rs))
		tableRuns = append(tableRuns, rs)
	}
	if len(tables) == 0 {
		return
	}
	for i, frames := range grafana.Transform(t, tables...) {
		checkTable(t, sel, tables[i], tableRuns[i], frames)
	}
}

// panelData is a panel's instant results, for grafana.Transform; runs
// are the panel's queries.
func panelData(runs []panelRun) grafana.PanelData {
	pd := grafana.PanelData{Panel: *runs[0].q.Panel, Results: map[string][]grafana.Sample{}}
	for _, r := range runs {
		pd.Results[r.q.Target.RefID] = append(pd.Results[r.q.Target.RefID], r.vector...)
	}
	return pd
}

func mustQueryAt(t *testing.T, prom *promServer, q string, at time.Time) []sample {
	t.Helper()
	v, err := prom.queryAt(q, at)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// checkCountsByState checks a count of instances by state adds up to the
// number of instances, however many replicas report each.
func checkCountsByState(t *testing.T, prom *promServer, sel selection, r panelRun, at time.Time) {
	t.Helper()
	instances := mustQueryAt(t, prom, fmt.Sprintf("max by (provider, name) (whatsapp_up{%s})", sel.instances(r.q.Dashboard)), at)
	total := 0.0
	for _, s := range mustQueryAt(t, prom, r.rq.Expr, at) {
		v, _ := strconv.ParseFloat(s.Value[1].(string), 64)
		total += v
	}
	// Two replicas that scraped an instance on either side of a state
	// change both show: the panel counts it in both states until they
	// agree again.
	extra := 0.0
	for _, s := range mustQueryAt(t, prom, fmt.Sprintf("count by (provider, name) (max by (provider, name, state) (whatsapp_instance_state{%s} == 1)) > 1", sel.instances(r.q.Dashboard)), at) {
		v, _ := strconv.ParseFloat(s.Value[1].(string), 64)
		extra += v - 1
		t.Logf("%s with %s: the replicas disagree on the state of %v", r.q.Name, sel, s.Metric)
	}
	if int(total) != len(instances)+int(extra) {
		t.Errorf("%s with %s: counts by state add up to %v, there are %d instances (%v more states where replicas disagree)\n%s", r.q.Name, sel, total, len(instances), extra, r.rq.Expr)
	}
}

// checkStateCodes checks each instance's state code is the code of a state
// the instance is in.
func checkStateCodes(t *testing.T, prom *promServer, sel selection, r panelRun, at time.Time) {
	t.Helper()
	codes := map[string]string{"0": collector.StateUnknown} // no state true
	for _, m := range regexp.MustCompile(`state="(\w+)"\} \* (\d+)`).FindAllStringSubmatch(r.rq.Expr, -1) {
		codes[m[2]] = m[1]
	}
	states := map[string][]string{}
	for _, s := range mustQueryAt(t, prom, fmt.Sprintf("max by (provider, name, state) (whatsapp_instance_state{%s} == 1)", sel.instances(r.q.Dashboard)), at) {
		k := s.Metric["provider"] + "/" + s.Metric["name"]
		states[k] = append(states[k], s.Metric["state"])
	}
	got := mustQueryAt(t, prom, r.rq.Expr, at)
	if len(got) != len(states) {
		t.Errorf("%s with %s: %d state codes for %d instances with a state", r.q.Name, sel, len(got), len(states))
	}
	for _, s := range got {
		k := s.Metric["provider"] + "/" + s.Metric["name"]
		state, ok := codes[s.Value[1].(string)]
		if !ok || !slices.Contains(states[k], state) {
			t.Errorf("%s with %s: %s has code %v (%q), its state is %v", r.q.Name, sel, k, s.Value[1], state, states[k])
		}
	}
}

// checkTable checks a merged table has, after Grafana's transformations,
// one row per series of its first query, each with every column set.
func checkTable(t *testing.T, sel selection, pd grafana.PanelData, runs []panelRun, frames []grafana.Frame) {
	t.Helper()
	what := fmt.Sprintf("%s %q with %s", runs[0].q.Dashboard.UID, pd.Panel.Title, sel)
	var first []sample
	for _, r := range runs {
		if r.q.Target.RefID == pd.Panel.Targets[0].RefID {
			first = r.vector
		}
	}
	if len(first) == 0 {
		if len(frames) > 1 || (len(frames) == 1 && len(frames[0].Rows()) > 0) {
			t.Errorf("%s: no series but rows: %+v", what, frames)
		}
		return
	}
	// A row is identified by the labels of the first query's series.
	var labels []string
	for l := range first[0].Metric {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	key := func(get func(string) any) string {
		var parts []string
		for _, l := range labels {
			parts = append(parts, fmt.Sprint(l, "=", get(l)))
		}
		return strings.Join(parts, ",")
	}
	var want []string
	for _, s := range first {
		want = append(want, key(func(l string) any { return s.Metric[l] }))
	}
	slices.Sort(want)
	if len(frames) != 1 {
		t.Fatalf("%s: %d frames, want one table", what, len(frames))
	}
	var got []string
	for _, row := range frames[0].Rows() {
		for field, v := range row {
			if v == nil {
				t.Errorf("%s: row %v has no %s", what, row, field)
			}
		}
		got = append(got, key(func(l string) any { return row[l] }))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s: rows\n%v\nwant one for each series of %s:\n%v", what, got, pd.Panel.Targets[0].RefID, want)
	}
}

// workingStates are the providers' working states (collector's
// Provider.Working), which the simulator's descriptions do not carry.
var workingStates = []string{"authorized", "open", "CONNECTED", "WORKING", "logged_in"}

// workingState is p's working state.
func workingState(p *simulator.Provider) string {
	i := slices.IndexFunc(p.States, func(s string) bool { return slices.Contains(workingStates, s) })
	if i < 0 {
		panic("e2e: no working state known for provider " + p.Name + ": add it to workingStates")
	}
	return p.States[i]
}
