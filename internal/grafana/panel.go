package grafana

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// Sample is an element of a Prometheus instant vector, as its API gives it.
type Sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// Frame is a data frame a panel draws.
type Frame struct {
	RefID  string `json:"refId"`
	Fields []struct {
		Name   string `json:"name"`
		Values []any  `json:"values"`
	} `json:"fields"`
}

// Rows returns the frame's rows, each a map from field name to value.
func (f Frame) Rows() []map[string]any {
	var rows []map[string]any
	for _, field := range f.Fields {
		for i, v := range field.Values {
			if i == len(rows) {
				rows = append(rows, map[string]any{})
			}
			rows[i][field.Name] = v
		}
	}
	return rows
}

// scriptDir holds panel.cjs and the npm packages it runs.
func scriptDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "js")
}

// Require skips the test when node or the npm packages are missing
// (`npm ci --prefix internal/grafana/js` installs them), unless
// testtool.RequireEnv is set.
func Require(t testing.TB) string {
	t.Helper()
	node := testtool.Require(t, "node")
	if _, err := os.Stat(filepath.Join(scriptDir(), "node_modules", "@grafana", "data")); err != nil {
		if os.Getenv(testtool.RequireEnv) != "" {
			t.Fatalf("Grafana's npm packages are required (%s is set) but not installed: npm ci --prefix internal/grafana/js", testtool.RequireEnv)
		}
		t.Skip("Grafana's npm packages are not installed; run npm ci --prefix internal/grafana/js")
	}
	return node
}

// PanelData is a panel with its targets' instant results, by refId.
type PanelData struct {
	Panel   testtool.Panel
	Results map[string][]Sample
}

// Transform runs instant query results through what Grafana does to them
// before drawing each panel: the Prometheus data source's result
// transformer, then the panel's transformations. It returns each panel's
// frames, in order; one node process does them all.
func Transform(t testing.TB, panels ...PanelData) [][]Frame {
	t.Helper()
	node := Require(t)
	var jobs []map[string]any
	for _, pd := range panels {
		var targets []map[string]any
		for _, tg := range pd.Panel.Targets {
			targets = append(targets, map[string]any{
				"refId": tg.RefID, "format": tg.Format, "legendFormat": tg.LegendFormat, "instant": tg.Instant,
			})
		}
		transformations := pd.Panel.Transformations
		if transformations == nil {
			transformations = json.RawMessage("[]")
		}
		jobs = append(jobs, map[string]any{"targets": targets, "transformations": transformations, "results": pd.Results})
	}
	input, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(scriptDir(), "panel.cjs"))
	cmd.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("Grafana's transformations: %v\n%s", err, stderr.String())
	}
	var frames [][]Frame
	if err := json.Unmarshal(out, &frames); err != nil || len(frames) != len(panels) {
		t.Fatalf("Grafana's transformations: %d results for %d panels, %v\n%s", len(frames), len(panels), err, out)
	}
	return frames
}
