package alerts_test

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/amwebhook"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// Tests of whatsapp_exporter's two Alertmanager receivers in the shipped
// alertmanager.yml: how they are configured, and what a real Alertmanager
// sends them.

// The exporter's receivers, as the shipped configuration names them.
const (
	remediationReceiver = "whatsapp-exporter-remediation"
	whatsappReceiver    = "whatsapp"
)

type webhookConfig struct {
	URL          string `yaml:"url"`
	SendResolved *bool  `yaml:"send_resolved"`
	MaxAlerts    int    `yaml:"max_alerts"`
	HTTPConfig   struct {
		Authorization struct {
			Type            string `yaml:"type"`
			Credentials     string `yaml:"credentials"`
			CredentialsFile string `yaml:"credentials_file"`
		} `yaml:"authorization"`
	} `yaml:"http_config"`
}

// TestExporterReceiversConfig checks each receiver's URL, resolved
// notifications, bound and token: read from a file, never written in the
// configuration.
func TestExporterReceiversConfig(t *testing.T) {
	content, err := os.ReadFile(alertmanagerFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Receivers []struct {
			Name           string          `yaml:"name"`
			WebhookConfigs []webhookConfig `yaml:"webhook_configs"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(content, &cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		path         string
		sendResolved bool
	}{
		// A resolved alert asks the exporter for nothing.
		remediationReceiver: {"/alertmanager/remediate", false},
		// "Resolved" is news for the operator.
		whatsappReceiver: {"/alertmanager/whatsapp", true},
	}
	found := 0
	for _, r := range cfg.Receivers {
		w, ok := want[r.Name]
		if !ok {
			continue
		}
		found++
		if len(r.WebhookConfigs) != 1 {
			t.Errorf("%s: %d webhook_configs, want 1", r.Name, len(r.WebhookConfigs))
			continue
		}
		c := r.WebhookConfigs[0]
		u, err := url.Parse(c.URL)
		if err != nil || u.Port() != "10042" || u.Path != w.path {
			t.Errorf("%s: url %q, want the --alertmanager.listen-address port 10042 and path %s", r.Name, c.URL, w.path)
		}
		if c.SendResolved == nil || *c.SendResolved != w.sendResolved {
			t.Errorf("%s: send_resolved %v, want %v set explicitly", r.Name, c.SendResolved, w.sendResolved)
		}
		if c.MaxAlerts < 1 || c.MaxAlerts > 100 {
			t.Errorf("%s: max_alerts %d, want a bound between 1 and 100", r.Name, c.MaxAlerts)
		}
		a := c.HTTPConfig.Authorization
		if a.Type != "Bearer" || a.CredentialsFile == "" || a.Credentials != "" {
			t.Errorf("%s: authorization %+v, want a Bearer token read from credentials_file", r.Name, a)
		}
	}
	if found != len(want) {
		t.Errorf("found %d of the receivers %v", found, want)
	}
}

// exporterStub stands for whatsapp_exporter's Alertmanager listener: it
// reads each request with internal/amwebhook, the exporter's own reader,
// and records what it got.
type exporterStub struct {
	mu       sync.Mutex
	got      map[string][]*amwebhook.Message // by path
	problems []string
}

func (s *exporterStub) ServeHTTP(w http.ResponseWriter, r *http.Request, token string) {
	m, err := amwebhook.Read(r, token)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.problems = append(s.problems, r.URL.Path+": "+err.Error())
		http.Error(w, err.Error(), amwebhook.Status(err))
		return
	}
	if s.got == nil {
		s.got = map[string][]*amwebhook.Message{}
	}
	s.got[r.URL.Path] = append(s.got[r.URL.Path], m)
}

func (s *exporterStub) messages(path string) ([]*amwebhook.Message, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*amwebhook.Message(nil), s.got[path]...), append([]string(nil), s.problems...)
}

// TestExporterReceiversDelivery runs a real Alertmanager with the shipped
// routes and the exporter's two receivers as shipped (URL pointed at a
// stub, the token file at a test token); the other receivers are a sink.
// A starting instance's request to reboot reaches /alertmanager/remediate
// with the bearer token, together with its yellowCard request (one group
// per instance) and no one else; a blocked page reaches
// /alertmanager/whatsapp and the pager both.
func TestExporterReceiversDelivery(t *testing.T) {
	bin := testtool.RequireAny(t, "alertmanager", "prometheus-alertmanager")
	testtool.Amtool(t, alertmanagerFile)
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	token := hex.EncodeToString(raw)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stub := &exporterStub{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stub.ServeHTTP(w, r, token) }))
	t.Cleanup(srv.Close)
	sink := testtool.NewWebhookSink(t)

	// The shipped configuration with the waits shortened and every
	// receiver a sink, then the exporter's two put back as shipped.
	shipped, err := os.ReadFile(alertmanagerFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testtool.TestAlertmanagerConfig(t, alertmanagerFile, sink.URL)
	for _, name := range []string{remediationReceiver, whatsappReceiver} {
		block := regexp.MustCompile(`(?m)^  - name: ` + regexp.QuoteMeta(name) + `\n(?:    .*\n|      .*\n)+`).FindString(string(shipped))
		if block == "" {
			t.Fatalf("no receiver %s in %s", name, alertmanagerFile)
		}
		block = strings.ReplaceAll(block, "http://whatsapp-exporter:10042", srv.URL)
		block = regexp.MustCompile(`credentials_file: \S+`).ReplaceAllString(block, "credentials_file: "+tokenFile)
		replaced := regexp.MustCompile(`(?m)^  - name: `+regexp.QuoteMeta(name)+`\n(?:    .*\n)+`).ReplaceAllLiteralString(cfg, block)
		if replaced == cfg {
			t.Fatalf("receiver %s not replaced", name)
		}
		cfg = replaced
	}
	cfgFile := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testtool.FreeAddr(t)
	logs := testtool.StartProcess(t, addr, "/-/ready", bin,
		"--config.file="+cfgFile, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")

	l := func(kv ...string) map[string]string {
		m := map[string]string{"job": "whatsapp", "instance": "exporter:10040"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	postAlerts(t, addr, logs,
		l("alertname", "WhatsAppInstanceStartingRemediate", "provider", "greenapi", "name", "shop", "state", "starting", "severity", "none", "remediation", "reboot"),
		l("alertname", "WhatsAppInstanceYellowCardRemediate", "provider", "greenapi", "name", "shop", "state", "yellowCard", "severity", "none", "remediation", "reboot"),
		l("alertname", "WhatsAppInstanceStartingRemediate", "provider", "greenapi", "name", "other", "state", "starting", "severity", "none", "remediation", "reboot"),
		l("alertname", "WhatsAppInstanceBlocked", "provider", "greenapi", "name", "spam", "state", "blocked", "severity", "critical"),
	)

	// Alertmanager flushes each group after its group_wait (1 s here):
	// poll until every expected request is in or time is up.
	var byInstance map[string]map[string]bool // alert names by instance
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		remediate, problems := stub.messages("/alertmanager/remediate")
		whatsapp, _ := stub.messages("/alertmanager/whatsapp")
		if len(problems) > 0 {
			t.Fatalf("the exporter's reader refused Alertmanager's requests: %v\n%s", problems, logs)
		}
		byInstance = map[string]map[string]bool{}
		for _, m := range remediate {
			if m.Receiver != remediationReceiver || m.Status != amwebhook.Firing {
				t.Errorf("remediation request: receiver %q status %q", m.Receiver, m.Status)
			}
			for _, a := range m.Alerts {
				// One group per instance: a request names one instance.
				if a.Labels["name"] != m.Alerts[0].Labels["name"] || a.Labels["remediation"] != "reboot" {
					t.Errorf("remediation request mixes instances or alerts: %+v", m.Alerts)
				}
				if byInstance[a.Labels["name"]] == nil {
					byInstance[a.Labels["name"]] = map[string]bool{}
				}
				byInstance[a.Labels["name"]][a.Labels["alertname"]] = true
			}
		}
		blockedAtWhatsApp := len(whatsapp) > 0 && whatsapp[0].Receiver == whatsappReceiver && whatsapp[0].Alerts[0].Labels["alertname"] == "WhatsAppInstanceBlocked"
		blockedAtPager := false
		for _, n := range sink.Notifications() {
			for _, a := range n.Alerts {
				if a.Labels["remediation"] != "" {
					t.Fatalf("a request to act reached %s, a person's receiver: %v", n.Receiver, a.Labels)
				}
				blockedAtPager = blockedAtPager || (n.Receiver == "whatsapp-pager" && a.Labels["alertname"] == "WhatsAppInstanceBlocked")
			}
		}
		if len(byInstance["shop"]) == 2 && len(byInstance["other"]) == 1 && blockedAtWhatsApp && blockedAtPager {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: remediation requests by instance %v, blocked at whatsapp %v, at the pager %v\n%s", byInstance, blockedAtWhatsApp, blockedAtPager, logs)
		}
	}
	if len(byInstance) != 2 {
		t.Errorf("remediation requests for %v, want shop and other", byInstance)
	}
}
