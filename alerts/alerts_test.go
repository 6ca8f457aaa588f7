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

// rulesTestFiles are the unit tests of rulesFile: the whole file, and
// its whatsapp_meta group (Meta's Cloud API) apart.
var rulesTestFiles = []string{rulesTestFile, "meta.rules.test.yml"}

func TestAlertRules(t *testing.T) {
	promtool := testtool.Require(t, "promtool")
	testtool.Run(t, promtool, "check", "rules", rulesFile)
	for _, f := range rulesTestFiles {
		out := testtool.Run(t, promtool, "test", "rules", f)
		if strings.Count(out, "SUCCESS") != 1 {
			t.Fatalf("promtool test rules %s:\n%s", f, out)
		}
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
	// 48 rules, 45 names: WhatsAppInstanceStartingTooLong is three rules,
	// one per way GREEN-API's procedure for starting ends, and
	// WhatsAppMetaWabaRestricted two, one per severity.
	if len(alerts) != 48 {
		t.Fatalf("found %d alerts in %s, want 48", len(alerts), rulesFile)
	}
	for _, a := range alerts {
		name, body := a[1], a[2]
		// Requests to the exporter to act are never pages: severity none
		// and the label that routes them to its remediation receiver.
		remediate := strings.HasSuffix(name, "Remediate")
		if remediate != strings.Contains(body, "remediation: reboot\n") {
			t.Errorf("%s: only the *Remediate alerts, and all of them, carry remediation: reboot", name)
		}
		if remediate != strings.Contains(body, "severity: none\n") {
			t.Errorf("%s: only the *Remediate alerts, and all of them, have severity none", name)
		}
		if !regexp.MustCompile(`severity: (critical|warning|info|none)\n`).MatchString(body) {
			t.Errorf("%s: no severity label", name)
		}
		for _, key := range []string{"summary:", "description:", "runbook_url:"} {
			if !strings.Contains(body, key) {
				t.Errorf("%s: no %s annotation", name, key)
			}
		}
		switch {
		case name == "WhatsAppExporterDown":
		case name == "WhatsAppRemediationBrakeEngaged":
			if !strings.Contains(body, "{{ $labels.provider }}") {
				t.Errorf("%s: the description must name the provider", name)
			}
		case name == "WhatsAppAlertmanagerUnauthorized":
			if !strings.Contains(body, "{{ $labels.receiver }}") {
				t.Errorf("%s: the description must name the receiver", name)
			}
		case name == "WhatsAppAlertMessagesFailing":
			if !strings.Contains(body, "{{ $labels.sender }}") || !strings.Contains(body, "{{ $labels.result }}") {
				t.Errorf("%s: the description must name the sender and the result", name)
			}
		case strings.HasPrefix(name, "WhatsAppMetaBudget") || name == "WhatsAppMetaApiThrottled":
			// A request budget is a WABA account's, or a single number's.
			if !strings.Contains(body, "{{ $labels.budget }}") || !strings.Contains(body, "{{ $labels.provider }}") {
				t.Errorf("%s: the description must name the provider and the budget", name)
			}
		case strings.HasPrefix(name, "WhatsAppAccount") || strings.HasPrefix(name, "WhatsAppMetaWaba"):
			if !strings.Contains(body, "{{ $labels.account }}") || !strings.Contains(body, "{{ $labels.provider }}") {
				t.Errorf("%s: the description must name the provider and the account", name)
			}
		case !strings.Contains(body, "{{ $labels.name }}") || !strings.Contains(body, "{{ $labels.provider }}"):
			t.Errorf("%s: the description must name the provider and the instance", name)
		}
		// Meta's alerts name numbers and accounts by their configured
		// names, never by a phone number (display_phone_number is no
		// label) or anything else a label could carry.
		if strings.HasPrefix(name, "WhatsAppMeta") {
			for _, m := range regexp.MustCompile(`\$labels\.(\w+)`).FindAllStringSubmatch(body, -1) {
				switch m[1] {
				case "job", "instance", "provider", "name", "account", "budget", "type", "state", "method", "restriction_type":
				default:
					t.Errorf("%s: the annotations quote label %s", name, m[1])
				}
			}
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
		// GREEN-API's notification system: notAuthorized, blocked (Banned,
		// the Baileys family's) and yellowCard reach WhatsApp too, beside
		// the pager.
		{[]string{"alertname=WhatsAppInstanceBlocked", "severity=critical", "provider=greenapi", "name=shop"}, "whatsapp,whatsapp-pager"},
		{[]string{"alertname=WhatsAppInstanceBanned", "severity=critical", "provider=evolution", "name=bot", "reason=banned"}, "whatsapp,whatsapp-pager"},
		{[]string{"alertname=WhatsAppInstanceNotAuthorized", "severity=critical", "provider=greenapi", "name=shop", "state=notAuthorized"}, "whatsapp,whatsapp-pager"},
		{[]string{"alertname=WhatsAppInstanceYellowCard", "severity=critical", "provider=greenapi", "name=ads", "state=yellowCard"}, "whatsapp,whatsapp-pager"},
		// Requests to act go to the exporter only, never to a person.
		{[]string{"alertname=WhatsAppInstanceStartingRemediate", "severity=none", "remediation=reboot", "provider=greenapi", "name=shop", "state=starting"}, "whatsapp-exporter-remediation"},
		{[]string{"alertname=WhatsAppInstanceYellowCardRemediate", "severity=none", "remediation=reboot", "provider=greenapi", "name=ads", "state=yellowCard"}, "whatsapp-exporter-remediation"},
		// The page for starting, whatever way the procedure ended.
		{[]string{"alertname=WhatsAppInstanceStartingTooLong", "severity=warning", "remediation_outcome=rebooted", "provider=greenapi", "name=shop", "state=starting"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppInstanceStartingTooLong", "severity=warning", "remediation_outcome=not_done", "provider=greenapi", "name=shop", "state=starting"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppInstanceConnectingTooLong", "severity=warning", "provider=evolution", "name=bot", "state=connecting"}, "whatsapp-chat"},
		// Alerts on the exporter's own actions and messages go to people,
		// and not through WhatsApp, which may be what fails.
		{[]string{"alertname=WhatsAppRemediationBrakeEngaged", "severity=warning", "provider=greenapi"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppRemediationFailing", "severity=warning", "provider=greenapi", "name=shop", "action=reboot", "result=failed", "reason=timeout"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppAlertmanagerUnauthorized", "severity=warning", "receiver=remediation", "outcome=unauthorized"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppAlertMessagesFailing", "severity=warning", "sender_provider=greenapi", "sender=ops", "result=failed"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppInstanceNotWorking", "severity=critical", "provider=evolution", "name=bot"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppInstanceExpired", "severity=critical", "provider=greenapi", "name=trial", "state=expired"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppInstanceCreatingTooLong", "severity=warning", "provider=greenapi", "name=new", "state=creating"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppExporterDown", "severity=critical", "job=whatsapp"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppInstanceSleepMode", "severity=warning", "provider=greenapi", "name=shop"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppApiSlow", "severity=warning", "provider=wachat", "name=store"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppInstanceQueueGrowing", "severity=critical", "provider=greenapi", "name=shop"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppInstanceQueueNotDraining", "severity=warning", "provider=greenapi", "name=shop"}, "whatsapp-chat"},
		// Meta's Cloud API: critical pages, warnings to the chat, never
		// through WhatsApp's receiver (a Cloud API number's health is not
		// GREEN-API's recommendation); grouped by alert name (below).
		{[]string{"alertname=WhatsAppMetaQualityRed", "severity=critical", "provider=meta", "name=shop", "rating=RED"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppMetaNumberBlocked", "severity=critical", "provider=meta", "name=shop", "status=BLOCKED"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppMetaNumberBanned", "severity=critical", "provider=meta", "name=shop", "state=BANNED"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppMetaWabaBlocked", "severity=critical", "provider=meta", "account=main", "status=BLOCKED"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppMetaWabaRestricted", "severity=critical", "provider=meta", "account=main", "restriction_type=RESTRICTED_BIZ_INITIATED_MESSAGING"}, "whatsapp-pager"},
		{[]string{"alertname=WhatsAppMetaQualityYellow", "severity=warning", "provider=meta", "name=shop", "rating=YELLOW"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppMetaNumberLimited", "severity=warning", "provider=meta", "name=shop", "status=LIMITED"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppMetaBudgetNearlySpent", "severity=warning", "provider=meta", "budget=main", "type=app"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppMetaWabaTokenRejected", "severity=warning", "provider=meta", "account=main", "method=listPhoneNumbers", "reason=unauthorized"}, "whatsapp-chat"},
		{[]string{"alertname=WhatsAppInstanceNote", "severity=info"}, "whatsapp-email"},
		{[]string{"alertname=SomethingElse", "severity=critical"}, "whatsapp-email"},
	} {
		args := append([]string{"config", "routes", "test", "--config.file=" + alertmanagerFile, "--verify.receivers=" + tc.receiver}, tc.labels...)
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Errorf("%v should go to %s: %v\n%s", tc.labels, tc.receiver, err, out)
		}
	}
}

// TestAlertmanagerMetaGroupsFleets runs a real Alertmanager with the
// shipped routes: a WABA blocked for a payment problem blocks all its
// numbers at once, and the pager gets one notification listing them,
// not one per number; a quality drop to RED of another number is a
// notification of its own (another alert name); a warning goes to the
// chat.
func TestAlertmanagerMetaGroupsFleets(t *testing.T) {
	sink := testtool.NewWebhookSink(t)
	addr, logs := testtool.StartAlertmanager(t, alertmanagerFile, sink.URL)
	l := func(kv ...string) map[string]string {
		m := map[string]string{"job": "whatsapp", "instance": "exporter:10040", "provider": "meta"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	const numbers = 50
	var alerts []map[string]string
	for i := range numbers {
		alerts = append(alerts, l("alertname", "WhatsAppMetaNumberBlocked", "name", fmt.Sprintf("store-%02d", i), "status", "BLOCKED", "severity", "critical"))
	}
	alerts = append(alerts,
		l("alertname", "WhatsAppMetaQualityRed", "name", "promo", "rating", "RED", "severity", "critical"),
		l("alertname", "WhatsAppMetaQualityYellow", "name", "news", "rating", "YELLOW", "severity", "warning"))
	postAlerts(t, addr, logs, alerts...)

	// Alertmanager flushes each group after its group_wait (1 s in the
	// test configuration): poll until the three groups are in.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got := map[string][]int{} // receiver/alertname: alerts per notification
		for _, n := range sink.Notifications() {
			if len(n.Alerts) == 0 {
				continue
			}
			name := n.Alerts[0].Labels["alertname"]
			for _, a := range n.Alerts {
				if a.Labels["alertname"] != name {
					t.Fatalf("a notification to %s mixes %s and %s", n.Receiver, name, a.Labels["alertname"])
				}
			}
			got[n.Receiver+"/"+name] = append(got[n.Receiver+"/"+name], len(n.Alerts))
		}
		blocked := got["whatsapp-pager/WhatsAppMetaNumberBlocked"]
		if len(blocked) > 0 && len(got["whatsapp-pager/WhatsAppMetaQualityRed"]) > 0 && len(got["whatsapp-chat/WhatsAppMetaQualityYellow"]) > 0 {
			if len(blocked) != 1 || blocked[0] != numbers {
				t.Errorf("blocked numbers paged as notifications of %v alerts, want one of %d", blocked, numbers)
			}
			if len(got) != 3 {
				t.Errorf("notifications %v, want the pager's two groups and the chat's one", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: notifications %v\n%s", got, logs)
		}
	}
}

// postAlerts posts alerts with these label sets, each firing for an
// hour, to the API of the Alertmanager at addr.
func postAlerts(t *testing.T, addr string, logs fmt.Stringer, labels ...map[string]string) {
	t.Helper()
	type alert struct {
		Labels map[string]string `json:"labels"`
		EndsAt time.Time         `json:"endsAt"`
	}
	var alerts []alert
	for _, l := range labels {
		alerts = append(alerts, alert{Labels: l, EndsAt: time.Now().Add(time.Hour)})
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
}

// TestAlertmanagerInhibitions posts alerts to a real Alertmanager running
// the shipped routes and inhibitions and reads which it mutes.
func TestAlertmanagerInhibitions(t *testing.T) {
	sink := testtool.NewWebhookSink(t)
	addr, logs := testtool.StartAlertmanager(t, alertmanagerFile, sink.URL)

	type alert struct {
		Labels   map[string]string
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
		{Labels: l("alertname", "WhatsAppInstanceConnectingTooLong", "job", "other", "provider", "wachat", "name", "h", "state", "connecting", "severity", "warning")},
		{Labels: l("alertname", "WhatsAppInstanceNotWorking", "job", "other", "provider", "wachat", "name", "h", "severity", "critical"), inhibits: true},
		// While the exporter reboots a starting instance and re-checks it,
		// NotWorking waits: StartingTooLong says what became of it.
		{Labels: l("alertname", "WhatsAppInstanceStartingRemediate", "job", "other", "provider", "greenapi", "name", "k", "state", "starting", "severity", "none", "remediation", "reboot")},
		{Labels: l("alertname", "WhatsAppInstanceNotWorking", "job", "other", "provider", "greenapi", "name", "k", "severity", "critical"), inhibits: true},
		{Labels: l("alertname", "WhatsAppInstanceExpired", "job", "other", "provider", "greenapi", "name", "h", "state", "expired", "severity", "critical")},
		{Labels: l("alertname", "WhatsAppInstanceNotWorking", "job", "other", "provider", "greenapi", "name", "h", "severity", "critical"), inhibits: true},
		// An instance that moves between states fires no state alert:
		// NotWorking pages. NotWorking silences nothing.
		{Labels: l("alertname", "WhatsAppInstanceNotWorking", "job", "other", "provider", "evolution", "name", "i", "severity", "critical")},
		{Labels: l("alertname", "WhatsAppApiSlow", "job", "other", "provider", "evolution", "name", "i", "severity", "warning")},
		// Meta's Cloud API: a banned number's other alerts wait for the
		// ban, of that number only; a banned WABA's health alerts too.
		{Labels: l("alertname", "WhatsAppMetaNumberBanned", "job", "other", "provider", "meta", "name", "m1", "state", "BANNED", "severity", "critical")},
		{Labels: l("alertname", "WhatsAppMetaNumberBlocked", "job", "other", "provider", "meta", "name", "m1", "status", "BLOCKED", "severity", "critical"), inhibits: true},
		{Labels: l("alertname", "WhatsAppMetaQualityRed", "job", "other", "provider", "meta", "name", "m1", "rating", "RED", "severity", "critical"), inhibits: true},
		{Labels: l("alertname", "WhatsAppMetaQualityRed", "job", "other", "provider", "meta", "name", "m2", "rating", "RED", "severity", "critical")},
		{Labels: l("alertname", "WhatsAppMetaWabaBanned", "job", "other", "provider", "meta", "account", "w1", "state", "DISABLE", "severity", "critical")},
		{Labels: l("alertname", "WhatsAppMetaWabaBlocked", "job", "other", "provider", "meta", "account", "w1", "status", "BLOCKED", "severity", "critical"), inhibits: true},
		{Labels: l("alertname", "WhatsAppMetaWabaBlocked", "job", "other", "provider", "meta", "account", "w2", "status", "BLOCKED", "severity", "critical")},
		// A rejected token explains the unknown state of its number.
		{Labels: l("alertname", "WhatsAppMetaTokenRejected", "job", "other", "provider", "meta", "name", "m3", "severity", "warning")},
		{Labels: l("alertname", "WhatsAppInstanceStateUnknown", "job", "other", "provider", "meta", "name", "m3", "severity", "warning"), inhibits: true},
		// Blind while the exporter of their job is down.
		{Labels: l("alertname", "WhatsAppMetaQualityYellow", "job", "whatsapp", "provider", "meta", "name", "m4", "rating", "YELLOW", "severity", "warning"), inhibits: true},
		{Labels: l("alertname", "WhatsAppMetaWabaLimited", "job", "whatsapp", "provider", "meta", "account", "w3", "status", "LIMITED", "severity", "warning"), inhibits: true},
		// No state known is said by StateUnknown, not NotWorking.
		{Labels: l("alertname", "WhatsAppInstanceStateUnknown", "job", "other", "provider", "evolution", "name", "j", "severity", "warning")},
		{Labels: l("alertname", "WhatsAppInstanceNotWorking", "job", "other", "provider", "evolution", "name", "j", "severity", "critical"), inhibits: true},
	}
	var labels []map[string]string
	for _, a := range alerts {
		labels = append(labels, a.Labels)
	}
	postAlerts(t, addr, logs, labels...)

	key := func(m map[string]string) string {
		return m["alertname"] + "/" + m["job"] + "/" + m["provider"] + "/" + m["name"] + "/" + m["account"]
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
