package testtool

import (
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

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

// Amtool returns amtool, failing when it is too old for the configuration
// in file (Debian bookworm's 0.25 lacks the *_file secrets).
func Amtool(t testing.TB, file string) string {
	t.Helper()
	bin := Require(t, "amtool")
	out, err := exec.Command(bin, "check-config", file).CombinedOutput()
	if err != nil {
		t.Fatalf("amtool check-config %s: %v\n%s\n(the configuration needs Alertmanager 0.26 or later: go install github.com/prometheus/alertmanager/cmd/amtool@v0.28.1)", file, err, out)
	}
	return bin
}

// WebhookSink receives Alertmanager's notifications.
type WebhookSink struct {
	URL string

	mu   sync.Mutex
	msgs []Notification
}

// Notification is one webhook call of Alertmanager.
type Notification struct {
	Receiver string  `json:"receiver"`
	Status   string  `json:"status"`
	Alerts   []Alert `json:"alerts"`
}

// Alert is an alert in a notification.
type Alert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// NewWebhookSink serves a sink on loopback until the test ends.
func NewWebhookSink(t testing.TB) *WebhookSink {
	s := &WebhookSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n Notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			t.Errorf("webhook: %v", err)
			return
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, n)
		s.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Notifications returns what the sink received so far.
func (s *WebhookSink) Notifications() []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Notification(nil), s.msgs...)
}

// Wait returns the first alert received that match accepts, failing the
// test after timeout with the logs.
func (s *WebhookSink) Wait(t testing.TB, timeout time.Duration, what string, match func(Notification, Alert) bool, logs ...*testlog.Buffer) Alert {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := s.Notifications()
		for _, n := range msgs {
			for _, a := range n.Alerts {
				if match(n, a) {
					return a
				}
			}
		}
		if time.Now().After(deadline) {
			var l strings.Builder
			for _, b := range logs {
				l.WriteString(b.String())
			}
			t.Fatalf("no %s within %v; notifications so far: %+v\n%s", what, timeout, msgs, l.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAlertmanagerConfig is the configuration in file with every receiver
// replaced by a webhook to url and the waits shortened; routes and
// inhibitions stay as they are.
func TestAlertmanagerConfig(t testing.TB, file, url string) string {
	t.Helper()
	return TestAlertmanagerConfigWith(t, file, url, AlertmanagerOptions{})
}

// AlertmanagerOptions change TestAlertmanagerConfigWith's configuration.
type AlertmanagerOptions struct {
	// RepeatInterval replaces every repeat_interval; 1h when empty.
	RepeatInterval string
	// Webhooks are receivers kept as webhooks to their own URL (the
	// exporter's Alertmanager receivers) rather than to the sink.
	Webhooks map[string]Webhook
}

// Webhook is a webhook receiver of AlertmanagerOptions.
type Webhook struct {
	URL          string
	BearerToken  string
	SendResolved bool
}

// TestAlertmanagerConfigWith is TestAlertmanagerConfig with options.
func TestAlertmanagerConfigWith(t testing.TB, file, url string, o AlertmanagerOptions) string {
	t.Helper()
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(content)
	head, _, ok := strings.Cut(s, "\nreceivers:\n")
	if !ok {
		t.Fatal("no receivers section in " + file)
	}
	if o.RepeatInterval == "" {
		o.RepeatInterval = "1h"
	}
	head = regexp.MustCompile(`(?m)^  smtp_.*\n`).ReplaceAllString(head, "")
	head = regexp.MustCompile(`group_wait: \S+`).ReplaceAllString(head, "group_wait: 1s")
	head = regexp.MustCompile(`group_interval: \S+`).ReplaceAllString(head, "group_interval: 1s")
	head = regexp.MustCompile(`repeat_interval: \S+`).ReplaceAllString(head, "repeat_interval: "+o.RepeatInterval)
	var b strings.Builder
	b.WriteString(head + "\nreceivers:\n")
	for _, m := range regexp.MustCompile(`(?m)^  - name: (\S+)$`).FindAllStringSubmatch(s[len(head):], -1) {
		wh, ok := o.Webhooks[m[1]]
		if !ok {
			fmt.Fprintf(&b, "  - name: %s\n    webhook_configs:\n      - url: %q\n        send_resolved: true\n", m[1], url)
			continue
		}
		fmt.Fprintf(&b, "  - name: %s\n    webhook_configs:\n      - url: %q\n        send_resolved: %t\n", m[1], wh.URL, wh.SendResolved)
		if wh.BearerToken != "" {
			fmt.Fprintf(&b, "        http_config:\n          authorization:\n            credentials: %q\n", wh.BearerToken)
		}
	}
	return b.String()
}

// StartAlertmanager runs Alertmanager with TestAlertmanagerConfig of file
// and returns its address.
func StartAlertmanager(t testing.TB, file, webhookURL string) (string, *testlog.Buffer) {
	t.Helper()
	return StartAlertmanagerWith(t, file, webhookURL, AlertmanagerOptions{})
}

// StartAlertmanagerWith runs Alertmanager with TestAlertmanagerConfigWith
// and returns its address.
func StartAlertmanagerWith(t testing.TB, file, webhookURL string, o AlertmanagerOptions) (string, *testlog.Buffer) {
	t.Helper()
	Amtool(t, file)
	bin := RequireAny(t, "alertmanager", "prometheus-alertmanager")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(TestAlertmanagerConfigWith(t, file, webhookURL, o)), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	logs := StartProcess(t, addr, "/-/ready", bin,
		"--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	return addr, logs
}

// ShortenDurations scales rules' durations down so that a test runs in
// seconds: one minute becomes two seconds, in a `for`, a range and an
// offset alike (an offset compares with its range).
func ShortenDurations(rules string) string { return ScaleDurations(rules, 2) }

// ScaleDurations is ShortenDurations with another scale: a minute of the
// rules becomes perMinute seconds.
func ScaleDurations(rules string, perMinute int) string {
	re := regexp.MustCompile(`(for: |\[|offset )(\d+)m\b`)
	return re.ReplaceAllStringFunc(rules, func(m string) string {
		sub := re.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[2])
		return sub[1] + strconv.Itoa(perMinute*n) + "s"
	})
}
