package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

const (
	rulesFile        = "alerts/whatsapp.rules.yml"
	rulesTestFile    = "alerts/whatsapp.rules.test.yml"
	alertmanagerFile = "alerts/alertmanager.yml"
)

// requireAnyTool is requireTool for a program known under several names
// (Debian calls Alertmanager prometheus-alertmanager).
func requireAnyTool(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names[:len(names)-1] {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return requireTool(t, names[len(names)-1])
}

func runTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestAlertRules(t *testing.T) {
	promtool := requireTool(t, "promtool")
	runTool(t, promtool, "check", "rules", rulesFile)
	out := runTool(t, promtool, "test", "rules", rulesTestFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// TestAlertRulesAnnotations checks what every alert must carry.
func TestAlertRulesAnnotations(t *testing.T) {
	content, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	runbook, err := os.ReadFile("alerts/RUNBOOK.md")
	if err != nil {
		t.Fatal(err)
	}
	alerts := regexp.MustCompile(`(?m)^      - alert: (\w+)\n((?:        .*\n?)+)`).FindAllStringSubmatch(string(content), -1)
	if len(alerts) != 11 {
		t.Fatalf("found %d alerts in %s, want 11", len(alerts), rulesFile)
	}
	for _, a := range alerts {
		name, body := a[1], a[2]
		if !regexp.MustCompile(`severity: (critical|warning|info)\n`).MatchString(body) {
			t.Errorf("%s: no severity label", name)
		}
		for _, key := range []string{"summary:", "description:", "runbook_url:"} {
			if !strings.Contains(body, key) {
				t.Errorf("%s: no %s annotation", name, key)
			}
		}
		if name != "WhatsAppExporterDown" && (!strings.Contains(body, "{{ $labels.name }}") || !strings.Contains(body, "{{ $labels.provider }}")) {
			t.Errorf("%s: the description must name the provider and the instance", name)
		}
		anchor := "#" + strings.ToLower(name)
		if !strings.Contains(body, "alerts/RUNBOOK.md"+anchor+`"`) {
			t.Errorf("%s: runbook_url does not point to alerts/RUNBOOK.md%s", name, anchor)
		}
		if !strings.Contains(string(runbook), "\n## "+name+"\n") {
			t.Errorf("%s: no section in alerts/RUNBOOK.md", name)
		}
	}
}

// amtool returns amtool, failing when it is too old for the shipped
// configuration (Debian bookworm's 0.25 lacks the *_file secrets).
func amtool(t *testing.T) string {
	t.Helper()
	bin := requireTool(t, "amtool")
	out, err := exec.Command(bin, "check-config", alertmanagerFile).CombinedOutput()
	if err != nil {
		t.Fatalf("amtool check-config %s: %v\n%s\n(the configuration needs Alertmanager 0.26 or later: go install github.com/prometheus/alertmanager/cmd/amtool@v0.28.1)", alertmanagerFile, err, out)
	}
	return bin
}

func TestAlertmanagerRoutes(t *testing.T) {
	bin := amtool(t)
	for _, tc := range []struct {
		labels   []string
		receiver string
	}{
		{[]string{"alertname=WhatsAppInstanceBlocked", "severity=critical", "provider=greenapi", "name=shop"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppExporterDown", "severity=critical", "job=whatsapp"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppInstanceSleepMode", "severity=warning", "provider=greenapi", "name=shop"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppApiSlow", "severity=warning", "provider=wachat", "name=store"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppInstanceNote", "severity=info"}, "whatsapp-email"},
		{[]string{"alertname=SomethingElse", "severity=critical"}, "whatsapp-email"},
	} {
		args := append([]string{"config", "routes", "test", "--config.file=" + alertmanagerFile, "--verify.receivers=" + tc.receiver}, tc.labels...)
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Errorf("%v should go to %s: %v\n%s", tc.labels, tc.receiver, err, out)
		}
	}
}

// webhookSink receives Alertmanager's notifications.
type webhookSink struct {
	mu   sync.Mutex
	msgs []amNotification
	srv  *httptest.Server
}

type amNotification struct {
	Receiver string    `json:"receiver"`
	Status   string    `json:"status"`
	Alerts   []amAlert `json:"alerts"`
}

type amAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func newWebhookSink(t *testing.T) *webhookSink {
	s := &webhookSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n amNotification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			t.Errorf("webhook: %v", err)
			return
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, n)
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// wait returns the first notification, from now on, that match accepts.
func (s *webhookSink) wait(t *testing.T, timeout time.Duration, what string, match func(amNotification, amAlert) bool, logs ...*testlog.Buffer) amAlert {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		for _, n := range s.msgs {
			for _, a := range n.Alerts {
				if match(n, a) {
					s.mu.Unlock()
					return a
				}
			}
		}
		seen := fmt.Sprintf("%+v", s.msgs)
		s.mu.Unlock()
		if time.Now().After(deadline) {
			var l strings.Builder
			for _, b := range logs {
				l.WriteString(b.String())
			}
			t.Fatalf("no %s within %v; notifications so far: %s\n%s", what, timeout, seen, l.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// testAlertmanagerConfig is the shipped configuration with every receiver
// replaced by the test's webhook and the waits shortened; routes and
// inhibitions stay as shipped.
func testAlertmanagerConfig(t *testing.T, webhook string) string {
	t.Helper()
	content, err := os.ReadFile(alertmanagerFile)
	if err != nil {
		t.Fatal(err)
	}
	s := string(content)
	head, _, ok := strings.Cut(s, "\nreceivers:\n")
	if !ok {
		t.Fatal("no receivers section in " + alertmanagerFile)
	}
	head = regexp.MustCompile(`(?m)^  smtp_.*\n`).ReplaceAllString(head, "")
	head = regexp.MustCompile(`group_wait: \S+`).ReplaceAllString(head, "group_wait: 1s")
	head = regexp.MustCompile(`group_interval: \S+`).ReplaceAllString(head, "group_interval: 1s")
	head = regexp.MustCompile(`repeat_interval: \S+`).ReplaceAllString(head, "repeat_interval: 1h")
	var b strings.Builder
	b.WriteString(head + "\nreceivers:\n")
	for _, m := range regexp.MustCompile(`(?m)^  - name: (\S+)$`).FindAllStringSubmatch(s[len(head):], -1) {
		fmt.Fprintf(&b, "  - name: %s\n    webhook_configs:\n      - url: %q\n        send_resolved: true\n", m[1], webhook)
	}
	return b.String()
}

// startProcess runs a server binary until the test ends and waits until
// readyPath answers 200.
func startProcess(t *testing.T, addr, readyPath string, name string, args ...string) *testlog.Buffer {
	t.Helper()
	logs := &testlog.Buffer{}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + readyPath); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return logs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become ready:\n%s", filepath.Base(name), logs)
		}
	}
}

func startAlertmanager(t *testing.T, webhook string) (string, *testlog.Buffer) {
	t.Helper()
	amtool(t)
	bin := requireAnyTool(t, "alertmanager", "prometheus-alertmanager")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(testAlertmanagerConfig(t, webhook)), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	logs := startProcess(t, addr, "/-/ready", bin,
		"--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	return addr, logs
}

// TestAlertmanagerInhibitions posts alerts to a real Alertmanager running
// the shipped routes and inhibitions and reads which it mutes.
func TestAlertmanagerInhibitions(t *testing.T) {
	sink := newWebhookSink(t)
	addr, logs := startAlertmanager(t, sink.srv.URL)

	type alert struct {
		Labels   map[string]string `json:"labels"`
		EndsAt   time.Time         `json:"endsAt"`
		inhibits bool
	}
	l := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	alerts := []alert{
		{Labels: l("alertname", "WhatsAppExporterDown", "job", "whatsapp", "severity", "critical")},
		// Blind while the exporter of their job is down.
		{Labels: l("alertname", "WhatsAppInstanceStateUnknown", "job", "whatsapp", "provider", "greenapi", "name", "a", "severity", "warning"), inhibits: true},
		{Labels: l("alertname", "WhatsAppInstanceNotAuthorized", "job", "whatsapp", "provider", "greenapi", "name", "a", "state", "notAuthorized", "severity", "critical"), inhibits: true},
		{Labels: l("alertname", "WhatsAppApiSlow", "job", "whatsapp", "provider", "greenapi", "name", "a", "severity", "warning"), inhibits: true},
		// Another job's exporter is up.
		{Labels: l("alertname", "WhatsAppInstanceStateUnknown", "job", "other", "provider", "greenapi", "name", "x", "severity", "warning")},
		// Blocked silences NotAuthorized of the same instance only.
		{Labels: l("alertname", "WhatsAppInstanceBlocked", "job", "other", "provider", "greenapi", "name", "b", "state", "blocked", "severity", "critical")},
		{Labels: l("alertname", "WhatsAppInstanceNotAuthorized", "job", "other", "provider", "greenapi", "name", "b", "state", "notAuthorized", "severity", "critical"), inhibits: true},
		{Labels: l("alertname", "WhatsAppInstanceNotAuthorized", "job", "other", "provider", "greenapi", "name", "c", "state", "notAuthorized", "severity", "critical")},
		// Rejected credentials explain the unknown state.
		{Labels: l("alertname", "WhatsAppApiUnauthorized", "job", "other", "provider", "wachat", "name", "d", "severity", "warning")},
		{Labels: l("alertname", "WhatsAppInstanceStateUnknown", "job", "other", "provider", "wachat", "name", "d", "severity", "warning"), inhibits: true},
	}
	for i := range alerts {
		alerts[i].EndsAt = time.Now().Add(time.Hour)
	}
	body, _ := json.Marshal(alerts)
	resp, err := http.Post("http://"+addr+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("posting alerts: HTTP %d\n%s", resp.StatusCode, logs)
	}

	key := func(m map[string]string) string { return m["alertname"] + "/" + m["job"] + "/" + m["name"] }
	// The inhibitor learns of source alerts asynchronously: poll until the
	// expected state holds or time is up.
	var problems []string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/api/v2/alerts")
		if err != nil {
			t.Fatal(err)
		}
		var got []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				InhibitedBy []string `json:"inhibitedBy"`
			} `json:"status"`
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		inhibited := map[string]bool{}
		for _, a := range got {
			inhibited[key(a.Labels)] = len(a.Status.InhibitedBy) > 0
		}
		problems = problems[:0]
		for _, a := range alerts {
			k := key(a.Labels)
			if v, ok := inhibited[k]; !ok {
				problems = append(problems, fmt.Sprintf("alert %s not in Alertmanager", k))
			} else if v != a.inhibits {
				problems = append(problems, fmt.Sprintf("alert %s: inhibited %v, want %v", k, v, a.inhibits))
			}
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s:\n%s\n%s", strings.Join(problems, "\n"), logs)
		}
	}
}

// shortenDurations scales the rules' durations down so that the end-to-end
// test runs in seconds: one minute becomes two seconds.
func shortenDurations(rules string) string {
	return regexp.MustCompile(`(for: |\[)(\d+)m\b`).ReplaceAllStringFunc(rules, func(m string) string {
		sub := regexp.MustCompile(`(for: |\[)(\d+)m`).FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[2])
		return sub[1] + strconv.Itoa(2*n) + "s"
	})
}

// TestAlertingEndToEnd runs the simulator, the exporter, a real Prometheus
// with the shipped rules (durations shortened) and a real Alertmanager with
// the shipped routes, and follows a blocked instance to the webhook and
// back.
func TestAlertingEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus and Alertmanager")
	}
	prometheus := requireTool(t, "prometheus")
	sink := newWebhookSink(t)
	amAddr, amLogs := startAlertmanager(t, sink.srv.URL)

	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized"})
	simURL := startSimulator(t, sim)
	e := startExporter(t, configSource{inline: []byte(fmt.Sprintf(
		"instances:\n  - {name: e2e-shop, provider: greenapi, api_url: %q, id_instance: 1101000001, api_token: e2e-token}\n", simURL))}, 0)

	dir := t.TempDir()
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	short := shortenDurations(string(rules))
	if !strings.Contains(short, "for: 6s") || !strings.Contains(short, "[20s]") || strings.Contains(short, "for: 3m") {
		t.Fatalf("shortening the durations failed:\n%s", short)
	}
	promCfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{targets: [%q]}]
scrape_configs:
  - job_name: whatsapp
    static_configs: [{targets: [%q]}]
`, amAddr, strings.TrimPrefix(e.url, "http://"))
	for name, content := range map[string]string{"rules.yml": short, "prometheus.yml": promCfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	promAddr := freeAddr(t)
	promLogs := startProcess(t, promAddr, "/-/ready", prometheus,
		"--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--rules.alert.resend-delay=1s")

	// Wait for the first scrapes, then block the number.
	for deadline := time.Now().Add(30 * time.Second); sim.Calls(simulator.GreenAPI, "1101000001") < 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus does not scrape the exporter:\n%s", promLogs)
		}
	}
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "blocked"})
	blocked := func(status string) func(amNotification, amAlert) bool {
		return func(n amNotification, a amAlert) bool {
			return a.Labels["alertname"] == "WhatsAppInstanceBlocked" && a.Status == status && n.Receiver == "whatsapp-pager"
		}
	}
	a := sink.wait(t, 60*time.Second, "firing WhatsAppInstanceBlocked at whatsapp-pager", blocked("firing"), amLogs, promLogs)
	for k, want := range map[string]string{"severity": "critical", "provider": "greenapi", "name": "e2e-shop", "state": "blocked", "job": "whatsapp"} {
		if a.Labels[k] != want {
			t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], want, a.Labels)
		}
	}
	if !strings.Contains(a.Annotations["description"], "e2e-shop") || !strings.Contains(a.Annotations["runbook_url"], "RUNBOOK.md#whatsappinstanceblocked") {
		t.Errorf("annotations %v", a.Annotations)
	}

	// Authorized again reaches the operator as the resolved notification.
	sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized"})
	sink.wait(t, 60*time.Second, "resolved WhatsAppInstanceBlocked", blocked("resolved"), amLogs, promLogs)

	// Nothing else fired along the way.
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, n := range sink.msgs {
		for _, a := range n.Alerts {
			if a.Labels["alertname"] != "WhatsAppInstanceBlocked" {
				t.Errorf("unexpected notification %s %v", a.Status, a.Labels)
			}
		}
	}
}
