package alerts_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// Tests of the rules and the Alertmanager configuration with the real
// promtool, amtool and alertmanager; the end-to-end tests with the exporter
// running are e2e/alerting_test.go.

const (
	rulesFile        = "whatsapp.rules.yml"
	rulesTestFile    = "whatsapp.rules.test.yml"
	alertmanagerFile = "alertmanager.yml"
)

func TestAlertRules(t *testing.T) {
	promtool := testtool.Require(t, "promtool")
	testtool.Run(t, promtool, "check", "rules", rulesFile)
	out := testtool.Run(t, promtool, "test", "rules", rulesTestFile)
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
	runbook, err := os.ReadFile("RUNBOOK.md")
	if err != nil {
		t.Fatal(err)
	}
	alerts := regexp.MustCompile(`(?m)^      - alert: (\w+)\n((?:        .*\n?)+)`).FindAllStringSubmatch(string(content), -1)
	if len(alerts) != 18 {
		t.Fatalf("found %d alerts in %s, want 18", len(alerts), rulesFile)
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
		switch {
		case name == "WhatsAppExporterDown":
		case strings.HasPrefix(name, "WhatsAppAccount"):
			if !strings.Contains(body, "{{ $labels.account }}") || !strings.Contains(body, "{{ $labels.provider }}") {
				t.Errorf("%s: the description must name the provider and the account", name)
			}
		case !strings.Contains(body, "{{ $labels.name }}") || !strings.Contains(body, "{{ $labels.provider }}"):
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

func TestAlertmanagerRoutes(t *testing.T) {
	bin := testtool.Amtool(t, alertmanagerFile)
	for _, tc := range []struct {
		labels   []string
		receiver string
	}{
		{[]string{"alertname=WhatsAppInstanceBlocked", "severity=critical", "provider=greenapi", "name=shop"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppInstanceBanned", "severity=critical", "provider=evolution", "name=bot", "reason=banned"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppInstanceNotWorking", "severity=critical", "provider=evolution", "name=bot"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppInstanceExpired", "severity=critical", "provider=greenapi", "name=trial", "state=expired"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppInstanceCreatingTooLong", "severity=warning", "provider=greenapi", "name=new", "state=creating"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppExporterDown", "severity=critical", "job=whatsapp"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppInstanceSleepMode", "severity=warning", "provider=greenapi", "name=shop"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppApiSlow", "severity=warning", "provider=wachat", "name=store"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppInstanceQueueGrowing", "severity=critical", "provider=greenapi", "name=shop"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppInstanceQueueNotDraining", "severity=warning", "provider=greenapi", "name=shop"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppInstanceNote", "severity=info"}, "whatsapp-email"},
		{[]string{"alertname=SomethingElse", "severity=critical"}, "whatsapp-email"},
	} {
		args := append([]string{"config", "routes", "test", "--config.file=" + alertmanagerFile, "--verify.receivers=" + tc.receiver}, tc.labels...)
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Errorf("%v should go to %s: %v\n%s", tc.labels, tc.receiver, err, out)
		}
	}
}

// TestAlertmanagerInhibitions posts alerts to a real Alertmanager running
// the shipped routes and inhibitions and reads which it mutes.
func TestAlertmanagerInhibitions(t *testing.T) {
	sink := testtool.NewWebhookSink(t)
	addr, logs := testtool.StartAlertmanager(t, alertmanagerFile, sink.URL)

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
		{Labels: l("alertname", "WhatsAppInstanceQueueGrowing", "job", "whatsapp", "provider", "greenapi", "name", "a", "severity", "critical"), inhibits: true},
		// Another job's exporter is up.
		{Labels: l("alertname", "WhatsAppInstanceStateUnknown", "job", "other", "provider", "greenapi", "name", "x", "severity", "warning")},
		// Blocked silences NotAuthorized of the same instance only.
		{Labels: l("alertname", "WhatsAppInstanceBlocked", "job", "other", "provider", "greenapi", "name", "b", "state", "blocked", "severity", "critical")},
		{Labels: l("alertname", "WhatsAppInstanceNotAuthorized", "job", "other", "provider", "greenapi", "name", "b", "state", "notAuthorized", "severity", "critical"), inhibits: true},
		{Labels: l("alertname", "WhatsAppInstanceNotAuthorized", "job", "other", "provider", "greenapi", "name", "c", "state", "notAuthorized", "severity", "critical")},
		// Rejected credentials explain the unknown state.
		{Labels: l("alertname", "WhatsAppApiUnauthorized", "job", "other", "provider", "wachat", "name", "d", "severity", "warning")},
		{Labels: l("alertname", "WhatsAppInstanceStateUnknown", "job", "other", "provider", "wachat", "name", "d", "severity", "warning"), inhibits: true},
		// A growing queue does not drain either: the page is enough.
		{Labels: l("alertname", "WhatsAppInstanceQueueGrowing", "job", "other", "provider", "greenapi", "name", "e", "severity", "critical")},
		{Labels: l("alertname", "WhatsAppInstanceQueueNotDraining", "job", "other", "provider", "greenapi", "name", "e", "severity", "warning"), inhibits: true},
		{Labels: l("alertname", "WhatsAppInstanceQueueNotDraining", "job", "other", "provider", "greenapi", "name", "f", "severity", "warning")},
		// A ban (Evolution API's 403) silences the close it explains,
		// and NotWorking, of the same instance only.
		{Labels: l("alertname", "WhatsAppInstanceBanned", "job", "other", "provider", "evolution", "name", "g", "reason", "banned", "severity", "critical")},
		{Labels: l("alertname", "WhatsAppInstanceNotAuthorized", "job", "other", "provider", "evolution", "name", "g", "state", "close", "severity", "critical"), inhibits: true},
		{Labels: l("alertname", "WhatsAppInstanceNotWorking", "job", "other", "provider", "evolution", "name", "g", "severity", "critical"), inhibits: true},
		{Labels: l("alertname", "WhatsAppInstanceNotAuthorized", "job", "other", "provider", "wachat", "name", "g", "state", "close", "severity", "critical")},
		// A steady state keeps its own alert: NotWorking is silenced
		// while one fires for the same instance, whatever its severity.
		{Labels: l("alertname", "WhatsAppInstanceNotAuthorized", "job", "other", "provider", "evolution", "name", "h", "state", "close", "severity", "critical")},
		{Labels: l("alertname", "WhatsAppInstanceNotWorking", "job", "other", "provider", "evolution", "name", "h", "severity", "critical"), inhibits: true},
		{Labels: l("alertname", "WhatsAppInstanceStartingTooLong", "job", "other", "provider", "wachat", "name", "h", "state", "connecting", "severity", "warning")},
		{Labels: l("alertname", "WhatsAppInstanceNotWorking", "job", "other", "provider", "wachat", "name", "h", "severity", "critical"), inhibits: true},
		{Labels: l("alertname", "WhatsAppInstanceExpired", "job", "other", "provider", "greenapi", "name", "h", "state", "expired", "severity", "critical")},
		{Labels: l("alertname", "WhatsAppInstanceNotWorking", "job", "other", "provider", "greenapi", "name", "h", "severity", "critical"), inhibits: true},
		// An instance that moves between states fires no state alert:
		// NotWorking pages. NotWorking silences nothing.
		{Labels: l("alertname", "WhatsAppInstanceNotWorking", "job", "other", "provider", "evolution", "name", "i", "severity", "critical")},
		{Labels: l("alertname", "WhatsAppApiSlow", "job", "other", "provider", "evolution", "name", "i", "severity", "warning")},
		// No state known is said by StateUnknown, not NotWorking.
		{Labels: l("alertname", "WhatsAppInstanceStateUnknown", "job", "other", "provider", "evolution", "name", "j", "severity", "warning")},
		{Labels: l("alertname", "WhatsAppInstanceNotWorking", "job", "other", "provider", "evolution", "name", "j", "severity", "critical"), inhibits: true},
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

	key := func(m map[string]string) string {
		return m["alertname"] + "/" + m["job"] + "/" + m["provider"] + "/" + m["name"]
	}
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
