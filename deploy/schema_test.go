// Package deploy validates what deploy/ ships without a cluster: the Helm
// chart (deploy/helm/whatsapp-exporter) rendered with each values file, and
// the kustomize manifests (deploy/kubernetes). Each object is checked
// against the schema the API server would use (Kubernetes' OpenAPI
// documents, Prometheus Operator's CRDs), decoded strictly into the
// official Go types (the schemas let unknown fields through, the API
// server drops them), and against the others (labels, ports, mounts, the
// exporter's configuration and its token files).
package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	"github.com/santhosh-tekuri/jsonschema/v6"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// The schemas' sources, from the Go module proxy: Kubernetes' OpenAPI v3
// documents and the Prometheus Operator release whose API types go.mod
// requires.
const (
	kubernetesModule = "k8s.io/kubernetes@v1.36.3"
	operatorModule   = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
)

// moduleDir downloads a module through the module proxy and returns its
// directory.
func moduleDir(t *testing.T, module string) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", module).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s", module, err, out)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download %s: %v %s", module, err, m.Error)
	}
	return m.Dir
}

// manifest is one document of a file.
type manifest struct {
	file string
	json []byte
	head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
}

func (m manifest) String() string {
	return fmt.Sprintf("%s %s/%s", m.file, m.head.Kind, m.head.Metadata.Name)
}

// loadManifests reads the manifests of files matching a pattern.
func loadManifests(t *testing.T, pattern string) []manifest {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests match %s: %v", pattern, err)
	}
	var ms []manifest
	for _, f := range files {
		content, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, parseManifests(t, f, content)...)
	}
	return ms
}

// parseManifests splits a YAML stream into its documents, leaving out
// empty ones (helm template writes a "---" before each).
func parseManifests(t *testing.T, source string, content []byte) []manifest {
	t.Helper()
	var ms []manifest
	for _, doc := range regexp.MustCompile(`(?m)^---[^\n]*\n`).Split(string(content), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		m := manifest{file: source, json: j}
		if err := json.Unmarshal(j, &m.head); err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		ms = append(ms, m)
	}
	return ms
}

// stripComments drops whole-line YAML comments.
func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// kind says how a kind is checked: its schema and its Go type.
type kind struct {
	schema func(t *testing.T) *jsonschema.Schema
	object func() any
}

// validator checks manifests against their kinds' schemas and Go types.
type validator struct {
	kinds   map[string]kind
	schemas map[string]*jsonschema.Schema
}

// newValidator knows every kind the chart and the manifests may hold; a
// manifest of another kind fails validation.
func newValidator(t *testing.T) *validator {
	t.Helper()
	k8s := filepath.Join(moduleDir(t, kubernetesModule), "api", "openapi-spec", "v3")
	crds := filepath.Join(moduleDir(t, operatorModule), "example", "prometheus-operator-crd")
	core := func(name string) func(*testing.T) *jsonschema.Schema {
		return openAPI(k8s, "api__v1_openapi.json", "io.k8s.api.core.v1."+name)
	}
	return &validator{schemas: map[string]*jsonschema.Schema{}, kinds: map[string]kind{
		"v1/ConfigMap":      {core("ConfigMap"), func() any { return &corev1.ConfigMap{} }},
		"v1/Secret":         {core("Secret"), func() any { return &corev1.Secret{} }},
		"v1/Service":        {core("Service"), func() any { return &corev1.Service{} }},
		"v1/ServiceAccount": {core("ServiceAccount"), func() any { return &corev1.ServiceAccount{} }},
		"apps/v1/Deployment": {openAPI(k8s, "apis__apps__v1_openapi.json", "io.k8s.api.apps.v1.Deployment"),
			func() any { return &appsv1.Deployment{} }},
		"apps/v1/StatefulSet": {openAPI(k8s, "apis__apps__v1_openapi.json", "io.k8s.api.apps.v1.StatefulSet"),
			func() any { return &appsv1.StatefulSet{} }},
		"policy/v1/PodDisruptionBudget": {openAPI(k8s, "apis__policy__v1_openapi.json", "io.k8s.api.policy.v1.PodDisruptionBudget"),
			func() any { return &policyv1.PodDisruptionBudget{} }},
		"networking.k8s.io/v1/Ingress": {openAPI(k8s, "apis__networking.k8s.io__v1_openapi.json", "io.k8s.api.networking.v1.Ingress"),
			func() any { return &networkingv1.Ingress{} }},
		"networking.k8s.io/v1/NetworkPolicy": {openAPI(k8s, "apis__networking.k8s.io__v1_openapi.json", "io.k8s.api.networking.v1.NetworkPolicy"),
			func() any { return &networkingv1.NetworkPolicy{} }},
		"monitoring.coreos.com/v1/ServiceMonitor": {crd(crds, "monitoring.coreos.com_servicemonitors.yaml", "v1"),
			func() any { return &monitoringv1.ServiceMonitor{} }},
		"monitoring.coreos.com/v1/PrometheusRule": {crd(crds, "monitoring.coreos.com_prometheusrules.yaml", "v1"),
			func() any { return &monitoringv1.PrometheusRule{} }},
		"monitoring.coreos.com/v1alpha1/ScrapeConfig": {crd(crds, "monitoring.coreos.com_scrapeconfigs.yaml", "v1alpha1"),
			func() any { return &monitoringv1alpha1.ScrapeConfig{} }},
		"monitoring.coreos.com/v1alpha1/AlertmanagerConfig": {crd(crds, "monitoring.coreos.com_alertmanagerconfigs.yaml", "v1alpha1"),
			func() any { return &monitoringv1alpha1.AlertmanagerConfig{} }},
	}}
}

// validate checks one manifest against its kind's schema and Go type.
func (v *validator) validate(t *testing.T, m manifest) {
	t.Helper()
	key := m.head.APIVersion + "/" + m.head.Kind
	k, ok := v.kinds[key]
	if !ok {
		t.Errorf("%s: no schema for %s", m, key)
		return
	}
	s := v.schemas[key]
	if s == nil {
		s = k.schema(t)
		v.schemas[key] = s
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(m.json))
	if err != nil {
		t.Errorf("%s: %v", m, err)
		return
	}
	if err := s.Validate(doc); err != nil {
		t.Errorf("%s against the schema: %v", m, err)
	}
	dec := json.NewDecoder(bytes.NewReader(m.json))
	dec.DisallowUnknownFields()
	if err := dec.Decode(k.object()); err != nil {
		t.Errorf("%s as the API type: %v", m, err)
	}
}

// openAPI compiles a schema of a Kubernetes OpenAPI v3 document.
func openAPI(dir, file, name string) func(t *testing.T) *jsonschema.Schema {
	return func(t *testing.T) *jsonschema.Schema {
		t.Helper()
		f, err := os.Open(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			t.Fatal(err)
		}
		return compile(t, file, doc, "#/components/schemas/"+name)
	}
}

// crd compiles the schema of one version of a CustomResourceDefinition.
func crd(dir, file, version string) func(t *testing.T) *jsonschema.Schema {
	return func(t *testing.T) *jsonschema.Schema {
		t.Helper()
		content, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		var def struct {
			Spec struct {
				Versions []struct {
					Name   string `json:"name"`
					Schema struct {
						OpenAPIV3Schema json.RawMessage `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(content, &def); err != nil {
			t.Fatal(err)
		}
		for _, v := range def.Spec.Versions {
			if v.Name == version {
				doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(v.Schema.OpenAPIV3Schema))
				if err != nil {
					t.Fatal(err)
				}
				return compile(t, file, doc, "")
			}
		}
		t.Fatalf("%s has no version %s", file, version)
		return nil
	}
}

func compile(t *testing.T, name string, doc any, pointer string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	if err := c.AddResource(name, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(name + pointer)
	if err != nil {
		t.Fatalf("compiling %s%s: %v", name, pointer, err)
	}
	return s
}

// decode decodes the one manifest of a kind (and name, if not empty).
func decode[T any](t *testing.T, ms []manifest, kind, name string) *T {
	t.Helper()
	var found []manifest
	for _, m := range ms {
		if m.head.Kind == kind && (name == "" || m.head.Metadata.Name == name) {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d manifests of kind %s %s, want 1", len(found), kind, name)
	}
	return decodeManifest[T](t, found[0])
}

// decodeManifest decodes one manifest into its Go type.
func decodeManifest[T any](t *testing.T, m manifest) *T {
	t.Helper()
	v := new(T)
	if err := json.Unmarshal(m.json, v); err != nil {
		t.Fatal(err)
	}
	return v
}

// find returns the first manifest of a kind and name.
func find(ms []manifest, kind, name string) (manifest, bool) {
	i := slices.IndexFunc(ms, func(m manifest) bool { return m.head.Kind == kind && m.head.Metadata.Name == name })
	if i < 0 {
		return manifest{}, false
	}
	return ms[i], true
}
