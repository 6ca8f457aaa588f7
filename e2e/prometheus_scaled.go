package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// scaleDurations is testtool.ShortenDurations with another scale: a
// minute of the rules becomes perMinute seconds, in a `for`, a range and
// an offset alike.
func scaleDurations(rules string, perMinute int) string {
	re := regexp.MustCompile(`(for: |\[|offset )(\d+)m\b`)
	return re.ReplaceAllStringFunc(rules, func(m string) string {
		sub := re.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[2])
		return sub[1] + strconv.Itoa(perMinute*n) + "s"
	})
}

// startPrometheusScaled is startPrometheus with the shipped rules' minute
// made perMinute seconds rather than 2. The remediation's tests need it:
// the fixed latencies between an alert firing and its effect being
// evaluated (Alertmanager's group_wait, the provider's one request a
// second, a scrape, an evaluation: 3 to 6 seconds on a loaded machine) do
// not shrink with the rules, and at 2 seconds a minute they eat most of
// the 5 minutes the rules leave between the request to reboot and the
// page for a reboot that did not come.
func startPrometheusScaled(t *testing.T, perMinute int, scrapeConfigs, alertmanager string) *promServer {
	t.Helper()
	prometheus := testtool.Require(t, "prometheus")
	dir := t.TempDir()
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if scaleDurations(string(rules), 2) != testtool.ShortenDurations(string(rules)) {
		t.Fatal("scaleDurations no longer scales as testtool.ShortenDurations does")
	}
	cfg := "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n" +
		fmt.Sprintf("alerting:\n  alertmanagers:\n    - static_configs: [{targets: [%q]}]\n", alertmanager) +
		"scrape_configs:\n" + scrapeConfigs
	for name, content := range map[string]string{"rules.yml": scaleDurations(string(rules), perMinute), "prometheus.yml": cfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := testtool.FreeAddr(t)
	logs := testtool.StartProcess(t, addr, "/-/ready", prometheus,
		"--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--rules.alert.resend-delay=1s")
	return &promServer{addr: addr, logs: logs}
}
