package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// TestManifests validates every kustomize manifest against its schema.
func TestManifests(t *testing.T) {
	v := newValidator(t)
	for _, m := range loadManifests(t, "kubernetes/*.yaml") {
		if m.head.Kind != "Kustomization" {
			v.validate(t, m)
		}
	}
}

// TestManifestsFitTogether checks what no schema can: that the pieces
// refer to each other rightly, and that the exporter accepts its
// configuration with the Secret's files.
func TestManifestsFitTogether(t *testing.T) {
	ms := loadManifests(t, "kubernetes/*.yaml")
	dep := decode[appsv1.Deployment](t, ms, "Deployment", "")
	svc := decode[corev1.Service](t, ms, "Service", "")
	cm := decode[corev1.ConfigMap](t, ms, "ConfigMap", "")
	secret := decode[corev1.Secret](t, ms, "Secret", "")
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]

	for k, v := range dep.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("the Deployment's selector %s=%s does not match its pods", k, v)
		}
	}
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("the Service's selector %s=%s does not match the pods", k, v)
		}
	}
	// With several replicas, multi-target scrapes through the Service must
	// stay on one replica: each has its own counters.
	if *dep.Spec.Replicas > 1 && svc.Spec.SessionAffinity != corev1.ServiceAffinityClientIP {
		t.Errorf("%d replicas behind a Service without sessionAffinity: ClientIP: probes alternate between replicas' counters", *dep.Spec.Replicas)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for _, p := range svc.Spec.Ports {
		if _, ok := ports[p.TargetPort.String()]; !ok {
			t.Errorf("Service port %s targets %s, which the container does not name", p.Name, p.TargetPort.String())
		}
	}
	if !slices.Contains(c.Args, fmt.Sprintf("--web.listen-address=:%d", ports["http-metrics"])) {
		t.Errorf("the exporter does not listen on the container port %d: %v", ports["http-metrics"], c.Args)
	}
	for _, probe := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != "/-/healthy" || ports[probe.HTTPGet.Port.String()] == 0 {
			t.Errorf("probe %+v is not an HTTP GET of /-/healthy on a named container port", probe)
		}
	}

	// Non-root, read-only, nothing to escalate.
	sc, psc := c.SecurityContext, pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("the pod may run as root")
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("the container's root file system is writable or it may escalate privileges")
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Error("the container lacks memory requests and limits or a CPU request")
	}

	// The configuration and the tokens are mounted where the arguments
	// and the configuration look for them.
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	var configPath, tokenDir string
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		switch {
		case !ok:
			t.Errorf("mount of undeclared volume %s", vm.Name)
		case v.ConfigMap != nil && v.ConfigMap.Name == cm.Name:
			configPath = vm.MountPath
			if _, ok := cm.Data[vm.SubPath]; !ok {
				t.Errorf("the ConfigMap has no key %q", vm.SubPath)
			}
		case v.Secret != nil && v.Secret.SecretName == secret.Name:
			tokenDir = vm.MountPath
		}
	}
	if configPath == "" || tokenDir == "" || !slices.Contains(c.Args, "--config.file="+configPath) {
		t.Fatalf("configuration at %q, tokens at %q, arguments %v", configPath, tokenDir, c.Args)
	}

	// The exporter accepts the configuration, its token files being the
	// Secret's keys.
	dir := t.TempDir()
	for k, v := range secret.StringData {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	yml := strings.ReplaceAll(cm.Data[filepath.Base(configPath)], tokenDir+"/", dir+"/")
	cfg, err := config.Load([]byte(yml), dir, config.Options{})
	if err != nil {
		t.Fatalf("the exporter refuses the ConfigMap's configuration: %v", err)
	}
	col := collector.New(nil, collector.Options{})
	defer col.Close()
	if err := col.Update(cfg); err != nil {
		t.Fatalf("the exporter cannot build the ConfigMap's instances: %v", err)
	}

	// Both modes scrape the Service's port as the job the rules expect.
	sm := decode[monitoringv1.ServiceMonitor](t, ms, "ServiceMonitor", "whatsapp-exporter")
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s, which the Service lacks", k, v)
		}
	}
	if ep := sm.Spec.Endpoints; len(ep) != 1 || ep[0].Port != svc.Spec.Ports[0].Name || ep[0].Path != "/metrics" || !setsJob(ep[0].RelabelConfigs, "whatsapp") {
		t.Errorf("ServiceMonitor endpoints %+v: want /metrics on the Service port, job whatsapp", ep)
	}
	scr := decode[monitoringv1alpha1.ScrapeConfig](t, ms, "ScrapeConfig", "")
	address := fmt.Sprintf("%s.monitoring.svc:%d", svc.Name, svc.Spec.Ports[0].Port)
	if scr.Spec.JobName == nil || *scr.Spec.JobName != "whatsapp" || scr.Spec.MetricsPath == nil || *scr.Spec.MetricsPath != "/probe" ||
		len(scr.Spec.HTTPSDConfigs) != 1 || string(scr.Spec.HTTPSDConfigs[0].URL) != "http://"+address+"/sd" {
		t.Errorf("ScrapeConfig %+v: want job whatsapp, /probe, targets from http://%s/sd", scr.Spec, address)
	}
	self := decode[monitoringv1.ServiceMonitor](t, ms, "ServiceMonitor", "whatsapp-exporter-self")
	if ep := self.Spec.Endpoints; len(ep) != 1 || ep[0].Path != "/exporter-metrics" || ep[0].Port != svc.Spec.Ports[0].Name {
		t.Errorf("the multi-target mode's own metrics: endpoints %+v, want /exporter-metrics", ep)
	}
}

func setsJob(rcs []monitoringv1.RelabelConfig, job string) bool {
	return slices.ContainsFunc(rcs, func(rc monitoringv1.RelabelConfig) bool {
		return rc.TargetLabel == "job" && rc.Replacement != nil && *rc.Replacement == job
	})
}

// TestKustomization: kubectl apply -k applies the exporter in the
// single-endpoint mode, every file it names existing.
func TestKustomization(t *testing.T) {
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	content, err := os.ReadFile("kubernetes/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(content, &k); err != nil || k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: %v (kind %q)", err, k.Kind)
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join("kubernetes", r)); err != nil {
			t.Errorf("kustomization names %s: %v", r, err)
		}
	}
	for _, want := range []string{"deployment.yaml", "service.yaml", "configmap.yaml", "secret.yaml", "servicemonitor.yaml"} {
		if !slices.Contains(k.Resources, want) {
			t.Errorf("kustomization lacks %s", want)
		}
	}
}
