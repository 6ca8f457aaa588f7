package main_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// TestBinaryAlertmanagerNeverOpen: the binary refuses to start
// Alertmanager's receivers without a bearer token or basic auth, and
// serves them with either.
func TestBinaryAlertmanagerNeverOpen(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	instances := "instances:\n  - {name: a, provider: greenapi, api_url: \"http://127.0.0.1:1\", id_instance: 1101000001, api_token: inst-token}\n"
	open := write("open.yml", "remediation: {}\n"+instances)
	tlsOnly := write("web-tls.yml", "tls_server_config: {}\n")
	cmd := exec.Command(exportertest.Binary(t), "--config.file="+open, "--web.listen-address="+testtool.FreeAddr(t),
		"--alertmanager.listen-address="+testtool.FreeAddr(t), "--alertmanager.config.file="+tlsOnly)
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 || !strings.Contains(string(out), "would be open to anyone") {
		t.Fatalf("started open (exit %d):\n%s", code, out)
	}

	// Basic auth in front: exporter-toolkit's test user carol
	// (web/testdata/web_config_users_noTLS.good.yml).
	users := write("web-users.yml", "basic_auth_users:\n  carol: $2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu\n")
	amAddr := testtool.FreeAddr(t)
	_, _, logs := exportertest.StartBinary(t, "--config.file="+open, "--alertmanager.listen-address="+amAddr, "--alertmanager.config.file="+users)
	url := "http://" + amAddr + "/alertmanager/remediate"
	status := func(user, password, bearer string) int {
		t.Helper()
		var code int
		testtool.WaitFor(t, "Alertmanager's listener", func() bool {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"version":"4","alerts":[]}`))
			if user != "" {
				req.SetBasicAuth(user, password)
			}
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			code = resp.StatusCode
			return true
		})
		return code
	}
	if c := status("carol", "carol123", ""); c != http.StatusOK {
		t.Errorf("with basic auth: HTTP %d\n%s", c, logs)
	}
	if c := status("carol", "wrong", ""); c != http.StatusUnauthorized {
		t.Errorf("with a wrong password: HTTP %d", c)
	}
	if c := status("", "", ""); c != http.StatusUnauthorized {
		t.Errorf("without credentials: HTTP %d", c)
	}

	// A bearer token instead: the demo's configuration has one.
	amAddr = testtool.FreeAddr(t)
	_, base, logs := exportertest.StartBinary(t, "--demo", "--alertmanager.listen-address="+amAddr)
	url = "http://" + amAddr + "/alertmanager/remediate"
	if c := status("", "", simulator.DemoAlertmanagerToken); c != http.StatusOK {
		t.Errorf("with the token: HTTP %d\n%s", c, logs)
	}
	if c := status("", "", simulator.DemoAlertmanagerToken+"x"); c != http.StatusUnauthorized {
		t.Errorf("with a wrong token: HTTP %d", c)
	}
	text := exportertest.Scrape(t, base, nil)
	for _, want := range []string{"whatsapp_remediation_enabled 1", `whatsapp_alertmanager_requests_total{outcome="accepted",receiver="remediation"} 1`} {
		if !strings.Contains(text, want) {
			t.Errorf("no %s:\n%s", want, exportertest.GrepLines(text, "alertmanager")+exportertest.GrepLines(text, "remediation_enabled"))
		}
	}
	if strings.Contains(logs.String(), simulator.DemoAlertmanagerToken) {
		t.Errorf("the token is in the logs")
	}
}
