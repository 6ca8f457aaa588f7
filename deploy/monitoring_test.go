package deploy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	"github.com/prometheus/alertmanager/pkg/labels"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/whatsapp-exporter/whatsapp_exporter/deploy/internal/chartfiles"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// Tests of the chart's monitoring content: the PrometheusRule, the
// dashboards' ConfigMaps and the AlertmanagerConfig hold what alerts/ and
// dashboards/ hold, through the copies in the chart's files/.

const (
	// The repository's root, from this package.
	repoRoot = ".."
	// The values files of these tests: every monitoring option away from
	// its default.
	monitoringValues = "testdata/monitoring-values.yaml"
)

// valuesRendering is the chart rendered with one values file (none: the
// defaults).
type valuesRendering struct {
	name   string
	file   string
	values map[string]any
	ms     []manifest
}

// value returns a value as the chart sees it: the values file's, else the
// chart's default.
func (r valuesRendering) value(t *testing.T, path ...string) any {
	t.Helper()
	if v, ok := lookup(r.values, path...); ok {
		return v
	}
	v, ok := lookup(readYAML(t, filepath.Join(chartDir, "values.yaml")).(map[string]any), path...)
	if !ok {
		t.Fatalf("values.yaml has no %s", strings.Join(path, "."))
	}
	return v
}

func (r valuesRendering) stringValue(t *testing.T, path ...string) string {
	t.Helper()
	s, _ := r.value(t, path...).(string)
	return s
}

func (r valuesRendering) stringMap(t *testing.T, path ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	m, _ := r.value(t, path...).(map[string]any)
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func lookup(m map[string]any, path ...string) (any, bool) {
	var v any = m
	for _, k := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// monitoringRenderings renders the defaults, this package's monitoring values and
// the chart's ci/ values files, with extra arguments.
func monitoringRenderings(t *testing.T, extra ...string) []valuesRendering {
	t.Helper()
	rs := []valuesRendering{{name: "defaults", values: map[string]any{}, ms: render(t, nil, extra...)}}
	for _, f := range append([]string{monitoringValues}, valuesFiles(t)...) {
		v, _ := readYAML(t, f).(map[string]any)
		rs = append(rs, valuesRendering{name: filepath.Base(f), file: f, values: v, ms: render(t, []string{f}, extra...)})
	}
	return rs
}

// readYAML decodes a YAML file as JSON would hold it.
func readYAML(t *testing.T, file string) any {
	t.Helper()
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(content, &v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return v
}

// checkLabels checks the chart's labels and the wanted ones.
func checkLabels(t *testing.T, m manifest, want map[string]string) {
	t.Helper()
	chart := map[string]string{
		"app.kubernetes.io/name":       "whatsapp-exporter",
		"app.kubernetes.io/instance":   "whatsapp-exporter",
		"app.kubernetes.io/managed-by": "Helm",
	}
	for k, v := range chart {
		want[k] = v
	}
	for k, v := range want {
		if got, ok := m.head.Metadata.Labels[k]; !ok || got != v {
			t.Errorf("%s: label %s=%q, want %q", m, k, got, v)
		}
	}
	if m.head.Metadata.Labels["helm.sh/chart"] == "" {
		t.Errorf("%s: no helm.sh/chart label", m)
	}
}

// TestChartFilesAreGenerated fails when the chart's copies differ from
// alerts/ and dashboards/: someone changed a source without regenerating,
// or edited a copy.
func TestChartFilesAreGenerated(t *testing.T) {
	files, err := chartfiles.Generate(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	diffs, err := chartfiles.Diff(repoRoot, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Errorf("the chart's copies in %s differ from alerts/ and dashboards/: %s; run `go generate ./...` in deploy", chartfiles.Dir, strings.Join(diffs, ", "))
	}
}

// TestPrometheusRule checks that the PrometheusRule's groups are those of
// alerts/whatsapp.rules.yml, every annotation's Go template included, and
// that promtool accepts them.
func TestPrometheusRule(t *testing.T) {
	v := newValidator(t)
	source, _ := readYAML(t, filepath.Join(repoRoot, "alerts", "whatsapp.rules.yml")).(map[string]any)
	want := source["groups"]
	if want == nil {
		t.Fatal("alerts/whatsapp.rules.yml has no groups")
	}
	promtool := testtool.Require(t, "promtool")
	checked := 0
	for _, r := range monitoringRenderings(t) {
		rules := ofKind(r.ms, "PrometheusRule")
		if r.value(t, "prometheusRule", "enabled") != true {
			if len(rules) > 0 {
				t.Errorf("%s: prometheusRule.enabled is false, yet %d PrometheusRules", r.name, len(rules))
			}
			continue
		}
		if len(rules) != 1 || rules[0].head.Metadata.Name != fullname {
			t.Errorf("%s: PrometheusRules %v, want one named %s", r.name, rules, fullname)
			continue
		}
		m := rules[0]
		checked++
		v.validate(t, m)
		checkLabels(t, m, r.stringMap(t, "prometheusRule", "additionalLabels"))
		var pr struct {
			Spec map[string]any `json:"spec"`
		}
		if err := json.Unmarshal(m.json, &pr); err != nil {
			t.Fatal(err)
		}
		if len(pr.Spec) != 1 || !reflect.DeepEqual(pr.Spec["groups"], want) {
			t.Errorf("%s: spec is not {groups: <the groups of alerts/whatsapp.rules.yml>}", m)
		}
		spec, err := json.Marshal(pr.Spec)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "rules.json")
		if err := os.WriteFile(file, spec, 0o644); err != nil {
			t.Fatal(err)
		}
		testtool.Run(t, promtool, "check", "rules", file)
	}
	if checked < 2 {
		t.Errorf("%d renderings hold the PrometheusRule, want the defaults' and %s's at least", checked, monitoringValues)
	}
}

// TestDashboardConfigMaps checks one ConfigMap per dashboard, for the
// sidecar's label, holding the dashboard with the data source's uid in
// place of ${DS_PROMETHEUS} and nothing else changed.
func TestDashboardConfigMaps(t *testing.T) {
	v := newValidator(t)
	sources, err := filepath.Glob(filepath.Join(repoRoot, "dashboards", "*.json"))
	if err != nil || len(sources) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	checked := 0
	for _, r := range monitoringRenderings(t) {
		var dashboards []manifest
		for _, m := range ofKind(r.ms, "ConfigMap") {
			if strings.HasPrefix(m.head.Metadata.Name, fullname+"-dashboard-") {
				dashboards = append(dashboards, m)
			}
		}
		if r.value(t, "dashboards", "enabled") != true {
			if len(dashboards) > 0 {
				t.Errorf("%s: dashboards.enabled is false, yet %d dashboard ConfigMaps", r.name, len(dashboards))
			}
			continue
		}
		checked++
		if len(dashboards) != len(sources) {
			t.Errorf("%s: %d dashboard ConfigMaps, want one per dashboard (%d)", r.name, len(dashboards), len(sources))
		}
		uid := r.stringValue(t, "dashboards", "datasourceUid")
		ns := r.stringValue(t, "dashboards", "namespace")
		if ns == "" {
			ns = namespace
		}
		labels := r.stringMap(t, "dashboards", "additionalLabels")
		labels[r.stringValue(t, "dashboards", "label")] = r.stringValue(t, "dashboards", "labelValue")
		for _, src := range sources {
			file := filepath.Base(src)
			name := fullname + "-dashboard-" + strings.TrimPrefix(strings.TrimSuffix(file, ".json"), "whatsapp-")
			m, ok := find(r.ms, "ConfigMap", name)
			if !ok {
				t.Errorf("%s: no ConfigMap %s for %s", r.name, name, src)
				continue
			}
			v.validate(t, m)
			checkLabels(t, m, labels)
			cm := decodeManifest[corev1.ConfigMap](t, m)
			if cm.Namespace != ns {
				t.Errorf("%s: namespace %q, want %q", m, cm.Namespace, ns)
			}
			if want := r.stringMap(t, "dashboards", "annotations"); len(want) > 0 && !reflect.DeepEqual(cm.Annotations, want) {
				t.Errorf("%s: annotations %v, want %v", m, cm.Annotations, want)
			}
			if len(cm.Data) != 1 || len(cm.BinaryData) != 0 {
				t.Errorf("%s: keys %v, want %s only", m, slices.Sorted(maps.Keys(cm.Data)), file)
			}
			got, ok := cm.Data[file]
			if !ok {
				t.Errorf("%s: no key %s", m, file)
				continue
			}
			content, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(content, []byte("${DS_PROMETHEUS}")) {
				t.Fatalf("%s names no ${DS_PROMETHEUS}: the substitution tested here has nothing to do", src)
			}
			want := strings.ReplaceAll(string(content), "${DS_PROMETHEUS}", uid)
			if !jsonEqual(t, m.String(), got, want) {
				t.Errorf("%s: the dashboard differs from %s with ${DS_PROMETHEUS} replaced by %q", m, src, uid)
			}
			if strings.Contains(got, "${DS_") {
				t.Errorf("%s: a ${DS_...} placeholder is left: Grafana's provisioning does not replace it", m)
			}
			// What the dashboards' tests read: the data source variable
			// opens on the uid.
			d, err := testtool.ParseDashboard(m.String(), []byte(got))
			if err != nil {
				t.Fatal(err)
			}
			if ds, ok := d.Variable("datasource"); !ok || ds.Current.Value != uid {
				t.Errorf("%s: the datasource variable opens on %v, want %q", m, ds.Current.Value, uid)
			}
			// The API server stores at most 1 MiB per object; kubectl's
			// client-side apply (and Argo CD's default sync) copies the
			// object into an annotation, and annotations hold 256 KiB.
			const objectLimit, annotationLimit = 1 << 20, 256 << 10
			if len(m.json) >= annotationLimit {
				t.Errorf("%s: %d bytes; client-side apply's last-applied annotation holds %d", m, len(m.json), annotationLimit)
			}
			if len(m.json) >= objectLimit {
				t.Errorf("%s: %d bytes; Kubernetes stores objects up to %d", m, len(m.json), objectLimit)
			}
			if r.name == "defaults" {
				t.Logf("%s: %d bytes (%.0f%% of 1 MiB, %.0f%% of 256 KiB)", m.head.Metadata.Name, len(m.json),
					100*float64(len(m.json))/objectLimit, 100*float64(len(m.json))/annotationLimit)
			}
		}
	}
	if checked < 2 {
		t.Errorf("%d renderings hold the dashboards, want the defaults' and %s's at least", checked, monitoringValues)
	}
}

// jsonEqual compares two JSON documents decoded.
func jsonEqual(t *testing.T, name, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return reflect.DeepEqual(x, y)
}

// The receivers of the exporter's own listener, and their paths.
var exporterReceivers = map[string]struct {
	path         string
	sendResolved bool
}{
	"whatsapp-exporter-remediation": {"/alertmanager/remediate", false},
	"whatsapp":                      {"/alertmanager/whatsapp", true},
}

// alertmanagerConfigRenderings are the renderings that hold the
// AlertmanagerConfig, the exporter's receivers off and on.
func alertmanagerConfigRenderings(t *testing.T) []valuesRendering {
	t.Helper()
	var rs []valuesRendering
	for _, r := range monitoringRenderings(t) {
		if r.value(t, "alertmanagerConfig", "enabled") == true {
			rs = append(rs, r)
		}
	}
	off := valuesRendering{name: "alertmanagerConfig without the exporter's receivers",
		values: map[string]any{"alertmanagerConfig": map[string]any{"enabled": true}},
		ms:     render(t, nil, "--set", "alertmanagerConfig.enabled=true")}
	single := valuesRendering{name: "alertmanagerConfig with one replica", file: monitoringValues,
		values: maps.Clone(readYAML(t, monitoringValues).(map[string]any)), ms: render(t, []string{monitoringValues}, "--set", "replicas=1")}
	single.values["replicas"] = float64(1)
	return append(rs, off, single)
}

// TestAlertmanagerConfig checks the AlertmanagerConfig: the route of the
// WhatsApp alerts and the inhibit rules of alerts/alertmanager.yml, the
// receivers those routes name, the exporter's receivers at every
// replica's address, secrets by reference only.
func TestAlertmanagerConfig(t *testing.T) {
	v := newValidator(t)
	source, err := os.ReadFile(filepath.Join(repoRoot, "alerts", "alertmanager.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := chartfiles.ParseConfig(source)
	if err != nil {
		t.Fatal(err)
	}
	subtree := inheritedSubtree(t, cfg)
	wantRoute := normalize(t, subtree)
	var wantInhibit []chartfiles.InhibitRule
	for _, ir := range cfg.InhibitRules {
		ir.SourceMatchers = normalizeMatchers(t, ir.SourceMatchers)
		ir.TargetMatchers = normalizeMatchers(t, ir.TargetMatchers)
		wantInhibit = append(wantInhibit, ir)
	}
	if !slices.Contains(chartfiles.Receivers(subtree), "whatsapp-exporter-remediation") {
		t.Fatal("alerts/alertmanager.yml's routes name no whatsapp-exporter-remediation: the tests of the exporter's receivers below test nothing")
	}

	for _, r := range alertmanagerConfigRenderings(t) {
		ms := ofKind(r.ms, "AlertmanagerConfig")
		if len(ms) != 1 || ms[0].head.Metadata.Name != fullname {
			t.Errorf("%s: AlertmanagerConfigs %v, want one named %s", r.name, ms, fullname)
			continue
		}
		m := ms[0]
		v.validate(t, m)
		checkLabels(t, m, r.stringMap(t, "alertmanagerConfig", "additionalLabels"))
		spec := specOf(t, m)
		if got := normalize(t, chartfiles.Back(spec.Route)); !reflect.DeepEqual(got, wantRoute) {
			t.Errorf("%s: the route, back in Alertmanager's shape,\n%s\nwant alerts/alertmanager.yml's route %s\n%s", m, dump(got), chartfiles.SubtreeMatcher, dump(wantRoute))
		}
		var gotInhibit []chartfiles.InhibitRule
		for _, ir := range spec.InhibitRules {
			gotInhibit = append(gotInhibit, chartfiles.InhibitRule{
				SourceMatchers: chartfiles.BackMatchers(ir.SourceMatch),
				TargetMatchers: chartfiles.BackMatchers(ir.TargetMatch),
				Equal:          ir.Equal,
			})
		}
		if !reflect.DeepEqual(gotInhibit, wantInhibit) {
			t.Errorf("%s: inhibit rules\n%s\nwant alerts/alertmanager.yml's\n%s", m, dump(gotInhibit), dump(wantInhibit))
		}

		am := decodeManifest[monitoringv1alpha1.AlertmanagerConfig](t, m)
		receivers := map[string]monitoringv1alpha1.Receiver{}
		for _, rc := range am.Spec.Receivers {
			if _, dup := receivers[rc.Name]; dup {
				t.Errorf("%s: receiver %s twice", m, rc.Name)
			}
			receivers[rc.Name] = rc
		}
		for _, name := range chartfiles.Receivers(subtree) {
			if _, ok := receivers[name]; !ok {
				t.Errorf("%s: the routes name receiver %s, which is not defined", m, name)
			}
		}
		checkUserReceivers(t, r, m, receivers)
		checkExporterReceivers(t, r, m, receivers)
	}
}

// inheritedSubtree is the route of alerts/alertmanager.yml that the
// AlertmanagerConfig holds, with what it inherits from the root route (or
// Alertmanager's defaults, dispatch.DefaultRouteOpts) written out: under
// the Operator it hangs below the Alertmanager's own root route, whose
// receiver and timers are not the file's. Written here again rather than
// taken from the generator, to test it.
func inheritedSubtree(t *testing.T, cfg chartfiles.Config) chartfiles.Route {
	t.Helper()
	i := slices.IndexFunc(cfg.Route.Routes, func(r chartfiles.Route) bool {
		return slices.Equal(r.Matchers, []string{chartfiles.SubtreeMatcher})
	})
	if i < 0 {
		t.Fatalf("alerts/alertmanager.yml: no route %s under the root", chartfiles.SubtreeMatcher)
	}
	s := cfg.Route.Routes[i]
	for _, f := range []struct {
		field      *string
		root, dflt string
	}{
		{&s.Receiver, cfg.Route.Receiver, ""},
		{&s.GroupWait, cfg.Route.GroupWait, "30s"},
		{&s.GroupInterval, cfg.Route.GroupInterval, "5m"},
		{&s.RepeatInterval, cfg.Route.RepeatInterval, "4h"},
	} {
		if *f.field == "" {
			*f.field = cmp.Or(f.root, f.dflt)
		}
	}
	if s.GroupBy == nil {
		s.GroupBy = cfg.Route.GroupBy
	}
	return s
}

// checkUserReceivers checks that the receivers of alertmanagerConfig.receivers
// are rendered as given, under their names.
func checkUserReceivers(t *testing.T, r valuesRendering, m manifest, receivers map[string]monitoringv1alpha1.Receiver) {
	t.Helper()
	given, _ := r.value(t, "alertmanagerConfig", "receivers").(map[string]any)
	for name, spec := range given {
		got, ok := receivers[name]
		if !ok {
			t.Errorf("%s: no receiver %s", m, name)
			continue
		}
		var want monitoringv1alpha1.Receiver
		j, _ := json.Marshal(spec)
		if err := json.Unmarshal(j, &want); err != nil {
			t.Fatal(err)
		}
		want.Name = name
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: receiver %s is\n%s\nwant\n%s", m, name, dump(got), dump(want))
		}
	}
}

// checkExporterReceivers checks the exporter's receivers: with
// alertmanagerReceiver.enabled, a webhook per address (each replica's with
// a StatefulSet), the bearer token by reference; without, no webhook at
// all, the routes kept (they then deliver to nobody).
func checkExporterReceivers(t *testing.T, r valuesRendering, m manifest, receivers map[string]monitoringv1alpha1.Receiver) {
	t.Helper()
	enabled := r.value(t, "alertmanagerReceiver", "enabled") == true
	f, _ := r.value(t, "replicas").(float64) // sigs.k8s.io/yaml gives float64
	replicas := int(f)
	var bases []string
	if replicas > 1 {
		for i := range replicas {
			bases = append(bases, fmt.Sprintf("http://%s-%d.%s-replicas.%s.svc:10042", fullname, i, fullname, namespace))
		}
	} else {
		bases = []string{fmt.Sprintf("http://%s-alertmanager.%s.svc:10042", fullname, namespace)}
	}
	for name, want := range exporterReceivers {
		rc, ok := receivers[name]
		if !ok {
			t.Errorf("%s: no receiver %s", m, name)
			continue
		}
		if !enabled {
			if !reflect.DeepEqual(rc, monitoringv1alpha1.Receiver{Name: name}) {
				t.Errorf("%s: without alertmanagerReceiver.enabled, receiver %s should receive nothing: %s", m, name, dump(rc))
			}
			continue
		}
		var urls []string
		for _, w := range rc.WebhookConfigs {
			if w.URL != nil {
				urls = append(urls, string(*w.URL))
			}
			if w.SendResolved == nil || *w.SendResolved != want.sendResolved || w.MaxAlerts != 10 {
				t.Errorf("%s: %s: sendResolved %v maxAlerts %d, want %v and 10", m, name, w.SendResolved, w.MaxAlerts, want.sendResolved)
			}
			a := w.HTTPConfig
			if a == nil || a.Authorization == nil || a.Authorization.Type != "Bearer" || a.Authorization.Credentials == nil ||
				a.Authorization.Credentials.Name != r.stringValue(t, "alertmanagerConfig", "exporterToken", "secretName") ||
				a.Authorization.Credentials.Key != r.stringValue(t, "alertmanagerConfig", "exporterToken", "key") {
				t.Errorf("%s: %s: authorization %s, want the Bearer token of alertmanagerConfig.exporterToken", m, name, dump(a))
			}
		}
		var wantURLs []string
		for _, b := range bases {
			wantURLs = append(wantURLs, b+want.path)
		}
		if !slices.Equal(urls, wantURLs) {
			t.Errorf("%s: %s: webhooks %v, want %v", m, name, urls, wantURLs)
		}
	}
	// Secrets only by reference: the CRD's types give each secret a
	// SecretKeySelector; what is left inline is a URL, which must carry
	// no credentials.
	for _, rc := range receivers {
		for _, w := range rc.WebhookConfigs {
			if w.URL == nil {
				continue
			}
			u, err := url.Parse(string(*w.URL))
			if err != nil || u.User != nil || u.RawQuery != "" {
				// The URL itself is not printed: it is what may hold a secret.
				t.Errorf("%s: receiver %s: a webhook URL inline carries credentials or a query (or does not parse): use urlSecret", m, rc.Name)
			}
		}
	}
}

// TestDashboardsRefuseUnsafeUid: the uid is put into the dashboards' JSON
// strings unquoted, so the schema admits only what Grafana's uids hold.
func TestDashboardsRefuseUnsafeUid(t *testing.T) {
	_, stderr, err := helmResult(t, "template", "whatsapp-exporter", chartDir, "--namespace", namespace,
		"--set-string", `dashboards.datasourceUid=prom"etheus`)
	if err == nil || !strings.Contains(stderr, "datasourceUid") {
		t.Errorf("helm template with a quote in dashboards.datasourceUid: %v, want an error naming it\n%s", err, stderr)
	}
}

// TestAlertmanagerConfigNeedsExporterToken: the exporter's receivers
// refuse unauthenticated requests, so the chart refuses to render them
// without the token's Secret.
func TestAlertmanagerConfigNeedsExporterToken(t *testing.T) {
	_, stderr, err := helmResult(t, "template", "whatsapp-exporter", chartDir, "--namespace", namespace,
		"--set", "alertmanagerConfig.enabled=true,alertmanagerReceiver.enabled=true")
	if err == nil || !strings.Contains(stderr, "alertmanagerConfig.exporterToken.secretName") {
		t.Errorf("helm template without alertmanagerConfig.exporterToken: %v, want an error naming it\n%s", err, stderr)
	}
}

// TestAlertmanagerConfigRoutesAsOperator builds the configuration the
// Prometheus Operator generates from the AlertmanagerConfig (its
// conversion, pkg/alertmanager, is not a library: it needs the Operator's
// secret store): the Alertmanager's own root route, under it the
// resource's route with namespace="<namespace>" added and continue: true,
// the receivers named <namespace>/<name>/<receiver>, the inhibit rules
// with the namespace on both sides. amtool checks it, and routes every
// alert of alerts/whatsapp.rules.yml, from the release's namespace, to the
// receivers alerts/alertmanager.yml routes it to.
func TestAlertmanagerConfigRoutesAsOperator(t *testing.T) {
	amtool := testtool.Require(t, "amtool")
	rs := alertmanagerConfigRenderings(t)
	ms := ofKind(rs[slices.IndexFunc(rs, func(r valuesRendering) bool { return r.file == monitoringValues })].ms, "AlertmanagerConfig")
	if len(ms) != 1 {
		t.Fatalf("%s: %d AlertmanagerConfigs, want 1", monitoringValues, len(ms))
	}
	spec := specOf(t, ms[0])
	am := decodeManifest[monitoringv1alpha1.AlertmanagerConfig](t, ms[0])
	prefix := namespace + "/" + fullname + "/"
	nsMatcher := fmt.Sprintf("namespace=%q", namespace)

	route := operatorRoute(chartfiles.Back(spec.Route), prefix)
	route.Matchers = append(route.Matchers, nsMatcher)
	route.Continue = true
	var inhibit []chartfiles.InhibitRule
	for _, ir := range spec.InhibitRules {
		inhibit = append(inhibit, chartfiles.InhibitRule{
			SourceMatchers: append(chartfiles.BackMatchers(ir.SourceMatch), nsMatcher),
			TargetMatchers: append(chartfiles.BackMatchers(ir.TargetMatch), nsMatcher),
			Equal:          ir.Equal,
		})
	}
	// The receivers: the exporter's webhooks as the Operator writes them
	// (the Secret's value inline, in the configuration's own Secret); the
	// others by name only, their configurations being the user's (the
	// CRD's schema and types check them in TestAlertmanagerConfig).
	receivers := []map[string]any{{"name": "null"}}
	for _, rc := range am.Spec.Receivers {
		out := map[string]any{"name": prefix + rc.Name}
		if _, ok := exporterReceivers[rc.Name]; ok {
			var hooks []map[string]any
			for _, w := range rc.WebhookConfigs {
				hooks = append(hooks, map[string]any{
					"url": string(*w.URL), "send_resolved": *w.SendResolved, "max_alerts": w.MaxAlerts,
					"http_config": map[string]any{"authorization": map[string]any{
						"type": w.HTTPConfig.Authorization.Type, "credentials": "token-from-the-secret"}},
				})
			}
			out["webhook_configs"] = hooks
		}
		receivers = append(receivers, out)
	}
	generated := map[string]any{
		"route":         map[string]any{"receiver": "null", "routes": []chartfiles.Route{route}},
		"inhibit_rules": inhibit,
		"receivers":     receivers,
	}
	content, err := yaml.Marshal(generated)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "alertmanager.yaml")
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	testtool.Amtool(t, file)

	routes := func(t *testing.T, config string, labels []string) string {
		t.Helper()
		return strings.TrimSpace(testtool.Run(t, amtool, append([]string{"config", "routes", "test", "--config.file=" + config}, labels...)...))
	}
	sourceFile := filepath.Join(repoRoot, "alerts", "alertmanager.yml")
	// From another namespace the resource's routes do not apply.
	labels := ruleAlerts(t)[0]
	if other := routes(t, file, append(labels, `namespace="elsewhere"`)); other != "null" {
		t.Errorf("alert %v from another namespace goes to %s, want the Alertmanager's own null", labels, other)
	}
	// In parallel: amtool takes a tenth of a second to start.
	for _, labels := range ruleAlerts(t) {
		t.Run(strings.Trim(strings.TrimPrefix(labels[0], "alertname="), `"`), func(t *testing.T) {
			t.Parallel()
			want := routes(t, sourceFile, labels)
			got := strings.ReplaceAll(routes(t, file, append(labels, nsMatcher)), prefix, "")
			if got != want {
				t.Errorf("alert %v from namespace %s goes to %s, want %s as alerts/alertmanager.yml routes it", labels, namespace, got, want)
			}
		})
	}
}

// ruleAlerts returns each alerting rule of alerts/whatsapp.rules.yml as
// the label matchers of its alerts: the alert's name and static labels.
func ruleAlerts(t *testing.T) [][]string {
	t.Helper()
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert  string            `json:"alert"`
				Labels map[string]string `json:"labels"`
			} `json:"rules"`
		} `json:"groups"`
	}
	j, _ := json.Marshal(readYAML(t, filepath.Join(repoRoot, "alerts", "whatsapp.rules.yml")))
	if err := json.Unmarshal(j, &rules); err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			ls := []string{fmt.Sprintf("alertname=%q", r.Alert)}
			for k, v := range r.Labels {
				ls = append(ls, fmt.Sprintf("%s=%q", k, v))
			}
			slices.Sort(ls[1:])
			out = append(out, ls)
		}
	}
	if len(out) < 10 {
		t.Fatalf("%d alerts in alerts/whatsapp.rules.yml", len(out))
	}
	return out
}

// operatorRoute names a route's receivers as the Operator does.
func operatorRoute(r chartfiles.Route, prefix string) chartfiles.Route {
	if r.Receiver != "" {
		r.Receiver = prefix + r.Receiver
	}
	children := r.Routes
	r.Routes = nil
	for _, c := range children {
		r.Routes = append(r.Routes, operatorRoute(c, prefix))
	}
	return r
}

// specOf decodes an AlertmanagerConfig's route and inhibit rules into the
// converter's types, strictly: a field these tests do not compare fails.
func specOf(t *testing.T, m manifest) chartfiles.Spec {
	t.Helper()
	var obj struct {
		Spec struct {
			Route        json.RawMessage `json:"route"`
			InhibitRules json.RawMessage `json:"inhibitRules"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(m.json, &obj); err != nil {
		t.Fatal(err)
	}
	var spec chartfiles.Spec
	for _, f := range []struct {
		raw json.RawMessage
		v   any
	}{{obj.Spec.Route, &spec.Route}, {obj.Spec.InhibitRules, &spec.InhibitRules}} {
		dec := json.NewDecoder(bytes.NewReader(f.raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(f.v); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	return spec
}

// normalize writes a route's matchers as Alertmanager prints them.
func normalize(t *testing.T, r chartfiles.Route) chartfiles.Route {
	t.Helper()
	r.Matchers = normalizeMatchers(t, r.Matchers)
	children := r.Routes
	r.Routes = nil
	for _, c := range children {
		r.Routes = append(r.Routes, normalize(t, c))
	}
	return r
}

// normalizeMatchers parses each matcher with Alertmanager's own parser
// and prints it back: the expected side owes nothing to the converter under
// test.
func normalizeMatchers(t *testing.T, ms []string) []string {
	t.Helper()
	var out []string
	for _, s := range ms {
		m, err := labels.ParseMatcher(s)
		if err != nil {
			t.Fatalf("matcher %q: %v", s, err)
		}
		out = append(out, m.String())
	}
	return out
}

func dump(v any) string {
	y, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(y)
}
