package deploy

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// The names the chart gives with release whatsapp-exporter in namespace
// monitoring (render's), and the pod's paths.
const (
	fullname  = "whatsapp-exporter"
	namespace = "monitoring"
	tokenDir  = "/etc/whatsapp_exporter/secrets"
	// The jobs of the chart's defaults, which the shipped rules and
	// dashboards select.
	instancesJob = "whatsapp"
	selfJob      = "whatsapp-exporter"
)

// rendering is one output of the chart the tests check: its defaults, a
// ci/ values file, or the committed kustomize manifests.
type rendering struct {
	name string
	ms   []manifest
}

// renderings renders the chart with its defaults and with each ci/ values
// file, and loads the kustomize manifests generated from it.
func renderings(t *testing.T) []rendering {
	t.Helper()
	rs := []rendering{{"defaults", render(t, nil)}}
	files := valuesFiles(t)
	if len(files) < 4 {
		t.Fatalf("ci/ holds %d values files, want the fleet, multi-target, existing and everything ones", len(files))
	}
	for _, f := range files {
		rs = append(rs, rendering{filepath.Base(f), render(t, []string{f})})
	}
	// Alertmanager's receivers on one replica: a Deployment, no peers.
	rs = append(rs, rendering{"receivers on one replica", render(t, nil, "--set", "alertmanagerReceiver.enabled=true", "--set", "replicas=1")})
	return append(rs, rendering{"kubernetes/" + generatedFile, loadManifests(t, filepath.Join("kubernetes", generatedFile))})
}

// TestChartLint: helm lint --strict passes with the defaults and with each
// values file (a warning fails it: an unquoted value, a missing icon is
// only INFO).
func TestChartLint(t *testing.T) {
	// The chart is Helm 3's (apiVersion v2); CI pins one release.
	if v := strings.TrimSpace(helm(t, "version", "--template", "{{.Version}}")); !strings.HasPrefix(v, "v3.") {
		t.Fatalf("helm %s, want v3 (CI installs %s)", v, helmVersion)
	} else if v != helmVersion {
		t.Logf("helm %s; CI installs %s", v, helmVersion)
	}
	helm(t, "lint", "--strict", chartDir)
	for _, f := range valuesFiles(t) {
		helm(t, "lint", "--strict", chartDir, "--values", f)
	}
}

// TestChartValidates checks every object of every rendering against its
// kind's schema and Go type; a kind the validator does not know fails.
func TestChartValidates(t *testing.T) {
	v := newValidator(t)
	for _, r := range renderings(t) {
		t.Run(r.name, func(t *testing.T) {
			seen := map[string]bool{}
			for _, m := range r.ms {
				v.validate(t, m)
				key := m.head.Kind + "/" + m.head.Metadata.Name
				if seen[key] {
					t.Errorf("two objects %s", key)
				}
				seen[key] = true
			}
		})
	}
}

// TestChartFitsTogether checks what no schema can, in every rendering: the
// pieces refer to each other rightly, and the exporter accepts the
// rendered configuration with its token files.
func TestChartFitsTogether(t *testing.T) {
	for _, r := range renderings(t) {
		t.Run(r.name, func(t *testing.T) { checkFits(t, r.ms) })
	}
}

func checkFits(t *testing.T, ms []manifest) {
	pod, ports, replicas := checkWorkload(t, ms)
	svc := checkServices(t, ms, pod, ports, replicas)
	checkConfig(t, ms, pod)
	checkScrape(t, ms, svc)
	checkIngress(t, ms)
	checkNetworkPolicy(t, ms, pod, ports)
	for _, m := range ofKind(ms, "PodDisruptionBudget") {
		pdb := decodeManifest[policyv1.PodDisruptionBudget](t, m)
		if !selects(pdb.Spec.Selector.MatchLabels, pod.Labels) {
			t.Errorf("the PodDisruptionBudget's selector %v does not match the pods", pdb.Spec.Selector.MatchLabels)
		}
	}
}

// checkWorkload checks the one Deployment or StatefulSet and returns its
// pod template, its container's ports by name and its replicas.
func checkWorkload(t *testing.T, ms []manifest) (corev1.PodTemplateSpec, map[string]int32, int32) {
	t.Helper()
	deps, sets := ofKind(ms, "Deployment"), ofKind(ms, "StatefulSet")
	if len(deps)+len(sets) != 1 {
		t.Fatalf("%d Deployments and %d StatefulSets, want one workload", len(deps), len(sets))
	}
	var pod corev1.PodTemplateSpec
	var selector map[string]string
	var replicas int32
	var statefulSet *appsv1.StatefulSet
	if len(deps) == 1 {
		d := decodeManifest[appsv1.Deployment](t, deps[0])
		pod, selector, replicas = d.Spec.Template, d.Spec.Selector.MatchLabels, *d.Spec.Replicas
	} else {
		statefulSet = decodeManifest[appsv1.StatefulSet](t, sets[0])
		pod, selector, replicas = statefulSet.Spec.Template, statefulSet.Spec.Selector.MatchLabels, *statefulSet.Spec.Replicas
	}
	if !selects(selector, pod.Labels) {
		t.Errorf("the workload's selector %v does not match its pods' labels %v", selector, pod.Labels)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	// Each port is one listener of the exporter, and each listener has its
	// port.
	listeners := map[string]string{
		"http-metrics":  "--web.listen-address",
		"http-webhook":  "--webhook.listen-address",
		"http-alertmgr": "--alertmanager.listen-address",
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		flag, ok := listeners[p.Name]
		if !ok {
			t.Errorf("container port %s is none of the exporter's listeners", p.Name)
			continue
		}
		ports[p.Name] = p.ContainerPort
		if !slices.Contains(c.Args, fmt.Sprintf("%s=:%d", flag, p.ContainerPort)) {
			t.Errorf("container port %s=%d, but the exporter is not given %s=:%d: %v", p.Name, p.ContainerPort, flag, p.ContainerPort, c.Args)
		}
	}
	for name, flag := range listeners {
		if _, ok := ports[name]; !ok && slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, flag+"=") }) {
			t.Errorf("the exporter listens with %s, but the container has no port %s", flag, name)
		}
	}
	for _, probe := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != "/-/healthy" || ports[probe.HTTPGet.Port.String()] == 0 {
			t.Errorf("probe %+v is not an HTTP GET of /-/healthy on a named container port", probe)
		}
	}

	// Non-root, read-only, nothing to escalate, no API token.
	sc, psc := c.SecurityContext, pod.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("the pod may run as root")
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("the container's root file system is writable or it may escalate privileges")
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it never uses")
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Error("the container lacks memory requests and limits or a CPU request")
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "GOMEMLIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory"
	}) {
		t.Error("GOMEMLIMIT does not follow the memory limit")
	}

	// Alertmanager's receivers on several replicas need a StatefulSet: the
	// remediation's owner is elected by the replicas' names, which the
	// peers list and each pod's POD_NAME give.
	_, receivers := ports["http-alertmgr"]
	if want := receivers && replicas > 1; want != (statefulSet != nil) {
		t.Errorf("Alertmanager's receivers %v on %d replicas, StatefulSet %v", receivers, replicas, statefulSet != nil)
	}
	if statefulSet != nil {
		var peers []string
		for i := range replicas {
			peers = append(peers, fmt.Sprintf("%s-%d", statefulSet.Name, i))
		}
		for _, want := range []string{"--alertmanager.peers=" + strings.Join(peers, ","), "--alertmanager.replica=$(POD_NAME)"} {
			if !slices.Contains(c.Args, want) {
				t.Errorf("the StatefulSet's pods lack %s: %v", want, c.Args)
			}
		}
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
			return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
		}) {
			t.Error("POD_NAME is not the pod's name")
		}
		headless := decode[corev1.Service](t, ms, "Service", statefulSet.Spec.ServiceName)
		if headless.Spec.ClusterIP != corev1.ClusterIPNone || !selects(headless.Spec.Selector, pod.Labels) {
			t.Errorf("the StatefulSet's Service %s is not headless or does not select its pods", headless.Name)
		}
	}
	return pod, ports, replicas
}

// checkServices checks that every Service selects the pods and targets
// their named ports, and returns the main Service (of http-metrics).
func checkServices(t *testing.T, ms []manifest, pod corev1.PodTemplateSpec, ports map[string]int32, replicas int32) *corev1.Service {
	t.Helper()
	var main *corev1.Service
	for _, m := range ofKind(ms, "Service") {
		svc := decodeManifest[corev1.Service](t, m)
		if !selects(svc.Spec.Selector, pod.Labels) {
			t.Errorf("Service %s's selector %v does not match the pods", svc.Name, svc.Spec.Selector)
		}
		for _, p := range svc.Spec.Ports {
			if p.Name != p.TargetPort.String() || ports[p.TargetPort.String()] == 0 {
				t.Errorf("Service %s port %s targets %s, which the container does not name", svc.Name, p.Name, p.TargetPort.String())
			}
			if p.Name == "http-metrics" {
				main = svc
			}
		}
	}
	if main == nil || main.Name != fullname {
		t.Fatalf("no Service %s of http-metrics", fullname)
	}
	// With several replicas, multi-target scrapes through the Service must
	// stay on one replica: each has its own counters.
	if replicas > 1 && main.Spec.SessionAffinity != corev1.ServiceAffinityClientIP {
		t.Errorf("%d replicas behind a Service without sessionAffinity: ClientIP: probes alternate between replicas' counters", replicas)
	}
	return main
}

// checkConfig checks the configuration's and the tokens' mounts, and that
// the exporter accepts the rendered configuration with the token files.
func checkConfig(t *testing.T, ms []manifest, pod corev1.PodTemplateSpec) {
	t.Helper()
	c := pod.Spec.Containers[0]
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	var configPath, configMap, configKey, secret string
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		switch {
		case !ok:
			t.Errorf("mount of undeclared volume %s", vm.Name)
		case vm.Name == "config":
			configPath, configMap, configKey = vm.MountPath, v.ConfigMap.Name, vm.SubPath
		case vm.Name == "tokens":
			secret = v.Secret.SecretName
			if vm.MountPath != tokenDir || v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o400 {
				t.Errorf("the tokens are mounted at %s with mode %v, want %s, 0400", vm.MountPath, v.Secret.DefaultMode, tokenDir)
			}
		}
		if !vm.ReadOnly {
			t.Errorf("volume %s is mounted writable", vm.Name)
		}
	}
	if configPath == "" {
		// No configuration: the simulator, so that the install works.
		if !slices.Contains(c.Args, "--demo") || slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--config.file") }) {
			t.Errorf("without a configuration the exporter must run --demo: %v", c.Args)
		}
		return
	}
	if !slices.Contains(c.Args, "--config.file="+configPath) || slices.Contains(c.Args, "--demo") {
		t.Errorf("the configuration is mounted at %s, the arguments are %v", configPath, c.Args)
	}
	m, ok := find(ms, "ConfigMap", configMap)
	if !ok {
		// An existing ConfigMap, which the chart does not render.
		if configMap == fullname+"-config" {
			t.Errorf("the pods mount the ConfigMap %s, which is not rendered", configMap)
		}
		return
	}
	cm := decodeManifest[corev1.ConfigMap](t, m)
	yml, ok := cm.Data[configKey]
	if !ok {
		t.Fatalf("the ConfigMap %s has no key %q", cm.Name, configKey)
	}

	// The token files: the rendered Secret's keys, or for an existing
	// Secret, the files the configuration names in the tokens' directory.
	dir := t.TempDir()
	files := map[string][]byte{}
	if _, ok := find(ms, "Secret", secret); ok {
		s := decode[corev1.Secret](t, ms, "Secret", secret)
		maps.Copy(files, s.Data)
	} else {
		for _, f := range tokenFiles(t, yml) {
			files[f] = []byte("fake-token-of-at-least-16-characters")
		}
	}
	if secret == "" && len(files) > 0 {
		t.Errorf("the configuration names token files %v, but no Secret is mounted", slices.Sorted(maps.Keys(files)))
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// ${VAR} is expanded only from the container's environment.
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
	}
	opts := config.Options{
		ExpandEnv: slices.Contains(c.Args, "--config.expand-environment-variables"),
		LookupEnv: func(name string) (string, bool) { return "fake-value-from-the-environment", env[name] },
	}
	cfg, err := config.Load([]byte(strings.ReplaceAll(yml, tokenDir+"/", dir+"/")), dir, opts)
	if err != nil {
		t.Fatalf("the exporter refuses the rendered configuration: %v", err)
	}
	col := collector.New(nil, collector.Options{})
	defer col.Close()
	if err := col.Update(cfg); err != nil {
		t.Fatalf("the exporter cannot build the rendered configuration's instances: %v", err)
	}
}

// tokenFiles are the files of the tokens' directory that a configuration
// names, in any *_file field.
func tokenFiles(t *testing.T, yml string) []string {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal([]byte(yml), &doc); err != nil {
		t.Fatal(err)
	}
	var files []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && strings.HasSuffix(k, "_file") && strings.HasPrefix(s, tokenDir+"/") {
					files = append(files, strings.TrimPrefix(s, tokenDir+"/"))
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	return files
}

// checkScrape checks the ServiceMonitors and ScrapeConfigs: one mode, each
// selecting the main Service's port, as the jobs the rules select; the
// ScrapeConfigs' relabelings, applied as Prometheus applies them, turn
// each instance's name into a probe of it through the Service, and shards
// partition the instances.
func checkScrape(t *testing.T, ms []manifest, svc *corev1.Service) {
	t.Helper()
	monitors, scrapes := ofKind(ms, "ServiceMonitor"), ofKind(ms, "ScrapeConfig")
	paths := map[string]string{}
	for _, m := range monitors {
		sm := decodeManifest[monitoringv1.ServiceMonitor](t, m)
		if !selects(sm.Spec.Selector.MatchLabels, svc.Labels) {
			t.Errorf("ServiceMonitor %s selects %v, which the Service %s lacks", sm.Name, sm.Spec.Selector.MatchLabels, svc.Name)
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name {
			t.Errorf("ServiceMonitor %s: endpoints %+v, want one on the Service's port %s", sm.Name, sm.Spec.Endpoints, svc.Spec.Ports[0].Name)
			continue
		}
		ep := sm.Spec.Endpoints[0]
		paths[ep.Path] = sm.Name
		want := map[string]string{"/metrics": instancesJob, "/exporter-metrics": selfJob}[ep.Path]
		if want == "" || !setsJob(ep.RelabelConfigs, want) {
			t.Errorf("ServiceMonitor %s scrapes %s as job %v, want /metrics as %s or /exporter-metrics as %s", sm.Name, ep.Path, ep.RelabelConfigs, instancesJob, selfJob)
		}
	}
	switch {
	case len(monitors) == 0 && len(scrapes) == 0:
		return // scrape.enabled false
	case len(scrapes) == 0:
		if paths["/metrics"] == "" || len(monitors) != 1 {
			t.Errorf("the single-endpoint mode: ServiceMonitors %v, want one of /metrics", paths)
		}
		return
	case paths["/exporter-metrics"] == "" || len(monitors) != 1:
		t.Errorf("the multi-target mode: ServiceMonitors %v, want one of /exporter-metrics only", paths)
	}

	address := fmt.Sprintf("%s.%s.svc:%d", svc.Name, namespace, svc.Spec.Ports[0].Port)
	var configs []*monitoringv1alpha1.ScrapeConfig
	for _, m := range scrapes {
		sc := decodeManifest[monitoringv1alpha1.ScrapeConfig](t, m)
		configs = append(configs, sc)
		if sc.Spec.JobName == nil || *sc.Spec.JobName != instancesJob || sc.Spec.MetricsPath == nil || *sc.Spec.MetricsPath != "/probe" ||
			len(sc.Spec.HTTPSDConfigs) != 1 || string(sc.Spec.HTTPSDConfigs[0].URL) != "http://"+address+"/sd" {
			t.Errorf("ScrapeConfig %s: want job %s, /probe, targets from http://%s/sd", sc.Name, instancesJob, address)
		}
	}
	// Each ScrapeConfig is selected by its own labels: those of the chart
	// are common to all.
	if len(configs) > 1 {
		seen := map[string]string{}
		for _, sc := range configs {
			own := maps.Clone(sc.Labels)
			for k := range svc.Labels {
				delete(own, k)
			}
			key := fmt.Sprint(own)
			if len(own) == 0 || seen[key] != "" {
				t.Errorf("ScrapeConfigs %s and %s have the same labels %v: one Prometheus selects both", seen[key], sc.Name, own)
			}
			seen[key] = sc.Name
		}
	}
	for i := range 2000 {
		name := fmt.Sprintf("instance-%d", i)
		keptBy := 0
		for _, sc := range configs {
			labels, kept := relabel(t, map[string]string{"__address__": name}, sc.Spec.RelabelConfigs)
			if !kept {
				continue
			}
			keptBy++
			// The namespace label too: the Operator routes an
			// AlertmanagerConfig's alerts by it and gives a
			// ScrapeConfig's series none.
			if labels["__param_target"] != name || labels["instance"] != name || labels["__address__"] != address || labels["namespace"] != sc.Namespace {
				t.Fatalf("ScrapeConfig %s turns target %s into %v: want __param_target and instance %s, __address__ %s, namespace %s", sc.Name, name, labels, name, address, sc.Namespace)
			}
		}
		if keptBy != 1 {
			t.Fatalf("instance %s is scraped by %d of the %d ScrapeConfigs, want exactly one", name, keptBy, len(configs))
		}
	}
}

// relabel applies relabelings as Prometheus does (model/relabel), for the
// actions the chart uses, and says whether the target is kept.
func relabel(t *testing.T, labels map[string]string, rcs []monitoringv1.RelabelConfig) (map[string]string, bool) {
	t.Helper()
	labels = maps.Clone(labels)
	for _, rc := range rcs {
		sep := ";"
		if rc.Separator != nil {
			sep = *rc.Separator
		}
		var vals []string
		for _, l := range rc.SourceLabels {
			vals = append(vals, labels[string(l)])
		}
		val := strings.Join(vals, sep)
		expr := rc.Regex
		if expr == "" {
			expr = "(.*)"
		}
		re := regexp.MustCompile("^(?s:" + expr + ")$")
		switch strings.ToLower(rc.Action) {
		case "", "replace":
			idx := re.FindStringSubmatchIndex(val)
			if idx == nil {
				continue
			}
			repl := "$1"
			if rc.Replacement != nil {
				repl = *rc.Replacement
			}
			if res := re.ExpandString(nil, repl, val, idx); len(res) > 0 {
				labels[rc.TargetLabel] = string(res)
			} else {
				delete(labels, rc.TargetLabel)
			}
		case "keep":
			if !re.MatchString(val) {
				return labels, false
			}
		case "drop":
			if re.MatchString(val) {
				return labels, false
			}
		case "hashmod":
			// md5 of the value, its last 8 bytes as a big-endian integer.
			sum := md5.Sum([]byte(val))
			labels[rc.TargetLabel] = strconv.FormatUint(binary.BigEndian.Uint64(sum[8:])%rc.Modulus, 10)
		default:
			t.Fatalf("relabel action %s is not simulated", rc.Action)
		}
	}
	return labels, true
}

func setsJob(rcs []monitoringv1.RelabelConfig, job string) bool {
	return slices.ContainsFunc(rcs, func(rc monitoringv1.RelabelConfig) bool {
		return rc.TargetLabel == "job" && rc.Replacement != nil && *rc.Replacement == job
	})
}

// checkIngress: TLS for every host, to a Service port that exists.
func checkIngress(t *testing.T, ms []manifest) {
	t.Helper()
	for _, m := range ofKind(ms, "Ingress") {
		ing := decodeManifest[networkingv1.Ingress](t, m)
		var tlsHosts []string
		for _, tls := range ing.Spec.TLS {
			if tls.SecretName == "" {
				t.Errorf("Ingress %s: TLS hosts %v without a certificate Secret", ing.Name, tls.Hosts)
			}
			tlsHosts = append(tlsHosts, tls.Hosts...)
		}
		if len(ing.Spec.Rules) == 0 {
			t.Errorf("Ingress %s has no rules", ing.Name)
		}
		for _, rule := range ing.Spec.Rules {
			if rule.Host == "" || !slices.Contains(tlsHosts, rule.Host) {
				t.Errorf("Ingress %s serves host %q without TLS (TLS hosts %v)", ing.Name, rule.Host, tlsHosts)
			}
			for _, p := range rule.HTTP.Paths {
				b := p.Backend.Service
				svc := decode[corev1.Service](t, ms, "Service", b.Name)
				if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == b.Port.Name }) {
					t.Errorf("Ingress %s routes to port %q, which Service %s lacks", ing.Name, b.Port.Name, svc.Name)
				}
			}
		}
	}
}

// checkNetworkPolicy: it selects the pods and lets in exactly the
// container's ports.
func checkNetworkPolicy(t *testing.T, ms []manifest, pod corev1.PodTemplateSpec, ports map[string]int32) {
	t.Helper()
	for _, m := range ofKind(ms, "NetworkPolicy") {
		np := decodeManifest[networkingv1.NetworkPolicy](t, m)
		if !selects(np.Spec.PodSelector.MatchLabels, pod.Labels) {
			t.Errorf("NetworkPolicy %s does not select the pods", np.Name)
		}
		var allowed []int32
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				allowed = append(allowed, p.Port.IntVal)
			}
		}
		slices.Sort(allowed)
		want := slices.Sorted(maps.Values(ports))
		if !slices.Equal(allowed, want) {
			t.Errorf("NetworkPolicy %s lets in ports %v, the container has %v", np.Name, allowed, want)
		}
	}
}

// TestChartTokens: tokens given in values are rendered only with
// tokens.create, and then only into the Secret; without it the chart
// refuses them, without echoing them.
func TestChartTokens(t *testing.T) {
	const canary = "canary-token-7f3a9c1e5b"
	for i, extra := range [][]string{
		{"--set", "tokens.values.shop=" + canary},
		{"--set", "tokens.values.shop=" + canary, "--set", "tokens.existingSecret=whatsapp-exporter-tokens"},
	} {
		stdout, stderr, err := helmResult(t, append([]string{"template", "whatsapp-exporter", chartDir}, extra...)...)
		if err == nil || !strings.Contains(stderr, "tokens.values is set but tokens.create is false") {
			t.Errorf("helm template with tokens.values (case %d): %v, want a failure naming tokens.create", i, err)
		}
		if strings.Contains(stdout+stderr, canary) {
			t.Errorf("helm template with tokens.values (case %d) shows the token", i)
		}
	}

	// With tokens.create, the fake tokens of everything-values.yaml are in
	// the Secret alone, and nowhere in clear.
	file := filepath.Join(chartDir, "ci", "everything-values.yaml")
	var values struct {
		Tokens struct {
			Create bool              `json:"create"`
			Values map[string]string `json:"values"`
		} `json:"tokens"`
	}
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(content, &values); err != nil || !values.Tokens.Create || len(values.Tokens.Values) == 0 {
		t.Fatalf("%s does not create tokens: %v", file, err)
	}
	for _, m := range render(t, []string{file}) {
		for name, token := range values.Tokens.Values {
			if strings.Contains(string(m.json), token) {
				t.Errorf("%s holds the token %s in clear", m, name)
			}
			if strings.Contains(string(m.json), base64.StdEncoding.EncodeToString([]byte(token))) && m.head.Metadata.Name != fullname+"-tokens" {
				t.Errorf("%s holds the token %s", m, name)
			}
		}
	}
}

// TestChartRefuses: the values that would install something else than
// asked fail the render with what to change, and a misspelt key fails by
// the schema, named.
func TestChartRefuses(t *testing.T) {
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"--set-json", `config.file={"instances":[]}`, "--set", "config.existingConfigMap=mine"}, "config.file and config.existingConfigMap are both set"},
		{[]string{"--set", "tokens.create=true", "--set", "tokens.existingSecret=mine", "--set", "tokens.values.a=fake"}, "tokens.create and tokens.existingSecret are both set"},
		{[]string{"--set", "tokens.create=true"}, "tokens.create is true but tokens.values is empty"},
		{[]string{"--set", "notifications.enabled=true", "--set", "notifications.ingress.enabled=true", "--set", "notifications.ingress.tlsSecretName=tls"}, "notifications.ingress needs host and tlsSecretName"},
		{[]string{"--set", "notifications.enabled=true", "--set", "notifications.ingress.enabled=true", "--set", "notifications.ingress.host=hooks.example.com"}, "notifications.ingress needs host and tlsSecretName"},
		{[]string{"--set", "notifications.ingress.enabled=true", "--set", "notifications.ingress.host=h", "--set", "notifications.ingress.tlsSecretName=tls"}, "notifications.ingress.enabled needs notifications.enabled"},
		{[]string{"--set-json", `scrape.shards=[{},{}]`}, "scrape.shards needs scrape.mode: multi-target"},
		{[]string{"--set", "scrape.intervall=30s"}, "intervall"},
		{[]string{"--set", "replica=3"}, "replica"},
		// Label keys and values are written into the ConfigMaps' YAML.
		{[]string{"--set", "dashboards.label=a: b"}, "/dashboards/label"},
		{[]string{"--set", "dashboards.labelValue=x\ny"}, "/dashboards/labelValue"},
	} {
		_, stderr, err := helmResult(t, append([]string{"template", "whatsapp-exporter", chartDir}, tc.set...)...)
		if err == nil || !strings.Contains(stderr, tc.want) {
			t.Errorf("helm template %v: %v %s\nwant a failure saying %q", tc.set, err, stderr, tc.want)
		}
	}
}

// ofKind are the manifests of a kind.
func ofKind(ms []manifest, kind string) []manifest {
	var out []manifest
	for _, m := range ms {
		if m.head.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

// selects says whether a selector's labels are all among labels; an
// empty selector selects nothing here, since the chart never means all.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestDocsExamples: the values examples of docs/kubernetes.md render, and
// fit together, as the ci/ files do; its Prometheus resources are valid
// and each selects exactly one shard's ScrapeConfig and the rules.
func TestDocsExamples(t *testing.T) {
	content, err := os.ReadFile(filepath.Join("..", "docs", "kubernetes.md"))
	if err != nil {
		t.Fatal(err)
	}
	v := newValidator(t)
	crds := filepath.Join(moduleDir(t, operatorModule), "example", "prometheus-operator-crd")
	v.kinds["monitoring.coreos.com/v1/Prometheus"] = kind{crd(crds, "monitoring.coreos.com_prometheuses.yaml", "v1"),
		func() any { return &monitoringv1.Prometheus{} }}
	var rendered [][]manifest
	var prometheuses []manifest
	for i, block := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(content), -1) {
		switch {
		case strings.HasPrefix(block[1], "config:"):
			f := filepath.Join(t.TempDir(), fmt.Sprintf("values-%d.yaml", i))
			if err := os.WriteFile(f, []byte(block[1]), 0o600); err != nil {
				t.Fatal(err)
			}
			helm(t, "lint", "--strict", chartDir, "--values", f)
			ms := render(t, []string{f})
			for _, m := range ms {
				v.validate(t, m)
			}
			checkFits(t, ms)
			rendered = append(rendered, ms)
		case strings.HasPrefix(block[1], "apiVersion:"):
			for _, m := range parseManifests(t, "docs/kubernetes.md", []byte(block[1])) {
				v.validate(t, m)
				prometheuses = append(prometheuses, m)
			}
		}
	}
	if len(rendered) != 2 || len(prometheuses) != 2 {
		t.Fatalf("docs/kubernetes.md: %d values examples and %d Prometheus resources, want the fleet's and the sharded ones, and two Prometheus", len(rendered), len(prometheuses))
	}
	sharded := rendered[1]
	for _, m := range prometheuses {
		p := decodeManifest[monitoringv1.Prometheus](t, m)
		var scrapes, rules []string
		for _, x := range sharded {
			switch {
			case x.head.Kind == "ScrapeConfig" && selects(p.Spec.ScrapeConfigSelector.MatchLabels, x.head.Metadata.Labels):
				scrapes = append(scrapes, x.head.Metadata.Name)
			case x.head.Kind == "PrometheusRule" && selects(p.Spec.RuleSelector.MatchLabels, x.head.Metadata.Labels):
				rules = append(rules, x.head.Metadata.Name)
			}
		}
		if len(scrapes) != 1 {
			t.Errorf("Prometheus %s selects ScrapeConfigs %v, want one shard", p.Name, scrapes)
		}
		if len(rules) != 1 && len(ofKind(sharded, "PrometheusRule")) > 0 {
			t.Errorf("Prometheus %s selects PrometheusRules %v, want the chart's", p.Name, rules)
		}
	}
}

// TestChartRollsOnChange: the pods' template changes with the rendered
// configuration and tokens, so that helm upgrade restarts the pods (the
// exporter does not watch its file, and a subPath mount is never updated),
// and does not change otherwise.
func TestChartRollsOnChange(t *testing.T) {
	file := filepath.Join(chartDir, "ci", "everything-values.yaml")
	annotations := func(extra ...string) map[string]string {
		ms := render(t, []string{file}, extra...)
		sets := ofKind(ms, "StatefulSet")
		if len(sets) != 1 {
			t.Fatalf("%d StatefulSets", len(sets))
		}
		return decodeManifest[appsv1.StatefulSet](t, sets[0]).Spec.Template.Annotations
	}
	base := annotations()
	if base["checksum/config"] == "" || base["checksum/tokens"] == "" {
		t.Fatalf("the pod template has no checksums of the configuration and tokens: %v", base)
	}
	if again := annotations(); !maps.Equal(base, again) {
		t.Errorf("the same values give other annotations: %v, %v", base, again)
	}
	if c := annotations("--set", "config.file.remediation.dry_run=false"); c["checksum/config"] == base["checksum/config"] {
		t.Error("a new configuration does not change the pod template")
	}
	if c := annotations("--set", "tokens.values.shop=fake-rotated-token-0011"); c["checksum/tokens"] == base["checksum/tokens"] {
		t.Error("a new token does not change the pod template")
	}
}
