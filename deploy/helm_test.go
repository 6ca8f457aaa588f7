package deploy

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// chartDir is the chart, relative to this package.
const chartDir = "helm/whatsapp-exporter"

// helmVersion is the Helm that .ci/run installs from the Go module proxy
// (go install helm.sh/helm/v3/cmd/helm@...); the tests use any helm v3 on
// PATH.
const helmVersion = "v3.22.0"

// helm runs helm with args and returns its standard output; it fails the
// test with helm's standard error when helm fails.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := helmResult(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// helmResult runs helm with args and returns its standard output, its
// standard error and its exit error, for tests of what helm refuses.
func helmResult(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := testtool.Require(t, "helm")
	cmd := exec.Command(bin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// render runs helm template on the chart as release whatsapp-exporter in
// namespace monitoring with the values files (paths relative to this
// package) and extra arguments (--set ...), and returns the manifests.
func render(t *testing.T, valuesFiles []string, extra ...string) []manifest {
	t.Helper()
	args := []string{"template", "whatsapp-exporter", chartDir, "--namespace", "monitoring"}
	for _, f := range valuesFiles {
		args = append(args, "--values", f)
	}
	args = append(args, extra...)
	name := "defaults"
	if len(valuesFiles) > 0 {
		name = filepath.Base(valuesFiles[len(valuesFiles)-1])
	}
	return parseManifests(t, "helm template ("+name+")", []byte(helm(t, args...)))
}

// valuesFiles are the chart's test values files (ci/*.yaml), each a
// configuration CI renders and validates besides the defaults.
func valuesFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}
