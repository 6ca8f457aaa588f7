package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// generatedFile is the chart's output that kubectl apply -k applies,
// rendered by kubernetes/generate.sh from kubernetes/values.yaml.
const generatedFile = "whatsapp-exporter.yaml"

// TestKustomizeGenerated: the committed manifests are the chart's output
// with kubernetes/values.yaml, so that the kustomize install and the Helm
// one never drift apart. (TestChartValidates and TestChartFitsTogether
// check them as they check the chart's renderings.)
func TestKustomizeGenerated(t *testing.T) {
	out := filepath.Join(t.TempDir(), generatedFile)
	cmd := exec.Command("sh", filepath.Join("kubernetes", "generate.sh"), out)
	cmd.Env = append(os.Environ(), "HELM="+testtool.Require(t, "helm"))
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubernetes/generate.sh: %v\n%s", err, msg)
	}
	fresh, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join("kubernetes", generatedFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		// Another Helm release may write the same objects differently.
		hint := ""
		if v := helm(t, "version", "--template", "{{.Version}}"); v != helmVersion {
			hint = fmt.Sprintf(" (or this helm, %s, formats differently from CI's %s)", v, helmVersion)
		}
		t.Errorf("deploy/kubernetes/%s is not the chart's output: run deploy/kubernetes/generate.sh and commit it%s", generatedFile, hint)
	}
}

// TestKustomization: kubectl apply -k applies the generated manifests
// alone, in the namespace they were rendered for.
func TestKustomization(t *testing.T) {
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Namespace  string   `json:"namespace"`
		Resources  []string `json:"resources"`
	}
	content, err := os.ReadFile(filepath.Join("kubernetes", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(content, &k); err != nil || k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: %v (kind %q)", err, k.Kind)
	}
	if !slices.Equal(k.Resources, []string{generatedFile}) || k.Namespace != namespace {
		t.Errorf("kustomization.yaml applies %v in namespace %q, want [%s] in %s", k.Resources, k.Namespace, generatedFile, namespace)
	}
	// No hand-kept manifest besides the generated one.
	files, err := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if b := filepath.Base(f); b != generatedFile && b != "kustomization.yaml" && b != "values.yaml" {
			t.Errorf("%s is neither generated nor the values it is generated from", f)
		}
	}
}
