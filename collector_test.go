// Black-box tests of the exporter's binary: its command line, signals,
// listeners and the demo, as an operator runs it. The HTTP surface in
// process is tested in internal/server, the exporter with Prometheus,
// Alertmanager and the dashboards in e2e/.
package main_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

func TestBinaryVersion(t *testing.T) {
	out, err := exec.Command(exportertest.Binary(t), "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "whatsapp_exporter, version") {
		t.Fatalf("--version: %v %s", err, out)
	}
}

func TestBinaryDemo(t *testing.T) {
	cmd, base, logs := exportertest.StartBinary(t, "--demo")
	mfs := exportertest.Parse(t, exportertest.Scrape(t, base, nil))
	states := exportertest.CheckOneHot(t, mfs)
	configured := 0
	for _, p := range simulator.Providers() {
		for _, d := range p.Demo {
			configured++
			if _, ok := states[d.Name]; !ok {
				t.Errorf("demo instance %s missing: %v", d.Name, states)
			}
		}
	}
	// The demo's accounts find more, once their first listing is in.
	for deadline := time.Now().Add(20 * time.Second); len(states) <= configured; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the demo's accounts found no instance: %v", states)
		}
		states = exportertest.CheckOneHot(t, exportertest.Parse(t, exportertest.Scrape(t, base, nil)))
	}
	// SIGTERM shuts down gracefully.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs)
	}
	if !strings.Contains(logs.String(), "Shutting down") {
		t.Errorf("no shutdown log:\n%s", logs)
	}
}

// TestBinaryDemoShowsProvidersAsTheyAre: --demo shows what the providers'
// own code does: an Evolution API 2 server whose listing says open for an
// instance that is not, and the exporter showing its live state; a banned
// instance with its reason; a partner listing's Telegram instance
// skipped; an instance being created.
func TestBinaryDemoShowsProvidersAsTheyAre(t *testing.T) {
	_, base, logs := exportertest.StartBinary(t, "--demo")
	var text string
	testtool.WaitFor(t, "the demo's accounts to find their instances", func() bool {
		text = exportertest.Scrape(t, base, nil)
		return strings.Contains(text, `name="banned-bot"`) && strings.Contains(text, `account="demo-partner",provider="greenapi",reason="not_whatsapp"} 1`)
	})
	states := exportertest.CheckOneHot(t, exportertest.Parse(t, text))
	if states["lost-bot"] == "open" || states["lost-bot"] == "" {
		t.Errorf("lost-bot shows %q, want its live state (connecting or close)", states["lost-bot"])
	}
	if states["demo-new"] != "creating" {
		t.Errorf("demo-new shows %q at start, want creating", states["demo-new"])
	}
	for _, want := range []string{
		`whatsapp_instance_disconnect_reason{provider="evolution",name="banned-bot",reason="banned"} 1`,
		`whatsapp_instance_state{provider="evolution",name="banned-bot",state="close"} 1`,
		`whatsapp_up{provider="greenapi",name="demo-new"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no %s in the demo's metrics", want)
		}
	}
	// The demo server's own listing says open for lost-bot.
	_, cfg := exportertest.Get(t, base+"/config", nil)
	var apiURL string
	for _, line := range strings.Split(cfg, "\n") {
		if strings.Contains(line, "/evolution") && strings.Contains(line, "api_url:") {
			apiURL = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "api_url:"))
		}
	}
	req, _ := http.NewRequest(http.MethodGet, apiURL+"/instance/fetchInstances", nil)
	req.Header.Set("apikey", "demo-global-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the demo's Evolution API listing at %q: %v\n%s", apiURL, err, logs)
	}
	defer resp.Body.Close()
	var rows []struct {
		Name   string `json:"name"`
		Status string `json:"connectionStatus"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	for _, r := range rows {
		listed[r.Name] = r.Status
	}
	if listed["lost-bot"] != "open" {
		t.Errorf("the demo's listing says %q for lost-bot, want open (the database column lags)", listed["lost-bot"])
	}
}

func TestBinaryConfigCheckAndSIGHUP(t *testing.T) {
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1", "tok1", simulator.Behaviour{State: "authorized"})
	sim.Set(simulator.GreenAPI, "2", "tok2", simulator.Behaviour{State: "yellowCard"})
	simURL := exportertest.StartSimulator(t, sim)
	dir := t.TempDir()
	file := filepath.Join(dir, "whatsapp_exporter.yml")
	good := fmt.Sprintf("instances:\n  - {name: one, provider: greenapi, api_url: %q, id_instance: 1, api_token_file: tok1.txt}\n", simURL)
	for name, content := range map[string]string{"whatsapp_exporter.yml": good, "tok1.txt": "tok1\n", "bad.yml": "instances:\n  - {name: one, provider: greenapi, id_instance: 1, api_token: tok1, colour: blue}\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	out, err := exec.Command(exportertest.Binary(t), "--config.check", "--config.file="+file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK, 1 instances") {
		t.Errorf("--config.check of a good file: %v %s", err, out)
	}
	bad := filepath.Join(dir, "bad.yml")
	out, err = exec.Command(exportertest.Binary(t), "--config.check", "--config.file="+bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), bad) || !strings.Contains(string(out), "colour") || !strings.Contains(string(out), `"one"`) {
		t.Errorf("--config.check of a file with an unknown field: %v %s; want failure naming file, instance and field", err, out)
	}
	if strings.Contains(string(out), "tok1") {
		t.Errorf("--config.check printed the token: %s", out)
	}

	cmd, base, logs := exportertest.StartBinary(t, "--config.file="+file)
	if up := exportertest.UpValues(exportertest.Parse(t, exportertest.Scrape(t, base, nil))); len(up) != 1 {
		t.Fatalf("whatsapp_up %v, want one instance", up)
	}
	if err := os.WriteFile(file, []byte(good+fmt.Sprintf("  - {name: two, provider: greenapi, api_url: %q, id_instance: 2, api_token: tok2}\n", simURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if states := exportertest.CheckOneHot(t, exportertest.Parse(t, exportertest.Scrape(t, base, nil))); states["two"] == "yellowCard" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not load the new instance:\n%s", logs)
		}
	}
}

// TestBinaryBadNameReloadKeepsRunning: a name that is not valid UTF-8
// (here from an environment variable) used to pass --config.check and
// crash the exporter at start and on SIGHUP.
func TestBinaryBadNameReloadKeepsRunning(t *testing.T) {
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1", "tok1", simulator.Behaviour{State: "authorized"})
	simURL := exportertest.StartSimulator(t, sim)
	dir := t.TempDir()
	file := filepath.Join(dir, "whatsapp_exporter.yml")
	good := fmt.Sprintf("instances:\n  - {name: one, provider: greenapi, api_url: %q, id_instance: 1, api_token: tok1}\n", simURL)
	bad := fmt.Sprintf("instances:\n  - {name: \"${BAD_NAME}\", provider: greenapi, api_url: %q, id_instance: 1, api_token: tok1}\n", simURL)
	badFile := filepath.Join(dir, "bad.yml")
	for name, content := range map[string]string{file: good, badFile: bad} {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "BAD_NAME=shop-\xff\xfe")

	check := exec.Command(exportertest.Binary(t), "--config.check", "--config.expand-environment-variables", "--config.file="+badFile)
	check.Env = env
	out, err := check.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not valid UTF-8") || !strings.Contains(string(out), "field name") {
		t.Errorf("--config.check of a name that is not UTF-8: %v %s; want a failure naming the field", err, out)
	}

	cmd, base, logs := exportertest.StartBinaryEnv(t, env, "--config.file="+file, "--config.expand-environment-variables")
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testtool.WaitFor(t, "the failed reload", func() bool { return strings.Contains(logs.String(), "Reload on SIGHUP failed") })
	mfs := exportertest.Parse(t, exportertest.Scrape(t, base, nil))
	if v := exportertest.Gauge(t, mfs, "whatsapp_exporter_config_last_reload_successful"); v != 0 {
		t.Errorf("reload_successful = %v, want 0", v)
	}
	if up := exportertest.UpValues(mfs); len(up) != 1 || up["one"] != 1 {
		t.Errorf("after the failed reload: whatsapp_up %v, want the old instance", up)
	}
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("the exporter panicked:\n%s", logs)
	}
}

// TestBinaryConfigCheckBuildsWhatStartBuilds: a missing CA file passed
// --config.check and then stopped the exporter at start.
func TestBinaryConfigCheckBuildsWhatStartBuilds(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "whatsapp_exporter.yml")
	if err := os.WriteFile(file, []byte("instances:\n  - {name: one, provider: greenapi, id_instance: 1, api_token: tok1, tls_config: {ca_file: missing-ca.pem}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exportertest.Binary(t), "--config.check", "--config.file="+file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "missing-ca.pem") || !strings.Contains(string(out), `"one"`) {
		t.Errorf("--config.check with a missing CA file: %v %s; want a failure naming the instance and the file", err, out)
	}
	// A CA file that exists but holds no certificate fails only when the
	// HTTP client is built.
	if err := os.WriteFile(filepath.Join(dir, "not-a-ca.pem"), []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("instances:\n  - {name: two, provider: greenapi, id_instance: 1, api_token: tok1, tls_config: {ca_file: not-a-ca.pem}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(exportertest.Binary(t), "--config.check", "--config.file="+file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not-a-ca.pem") || !strings.Contains(string(out), `"two"`) || !strings.Contains(string(out), file) {
		t.Errorf("--config.check with a CA file that is no certificate: %v %s; want a failure naming the file, the instance and the CA file", err, out)
	}
}

func TestBinaryBadTelemetryPath(t *testing.T) {
	for _, p := range []string{"/config", "metrics", "", "/-/reload", "/metrics/{x}", "GET /metrics", "/a/../metrics"} {
		cmd := exec.Command(exportertest.Binary(t), "--demo", "--web.telemetry-path="+p, "--web.listen-address="+testtool.FreeAddr(t))
		done := make(chan error, 1)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("--web.telemetry-path=%q: exit 0", p)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("--web.telemetry-path=%q: the exporter started", p)
		}
		if !strings.Contains(out.String(), "--web.telemetry-path") || strings.Contains(out.String(), "goroutine ") {
			t.Errorf("--web.telemetry-path=%q: want a clear error, got:\n%s", p, out.String())
		}
	}
}

func TestBinaryWebhookReceiverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSignedCert(t, certFile, keyFile)
	webCfg := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webCfg, []byte(fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", certFile, keyFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	whAddr := testtool.FreeAddr(t)
	_, base, logs := exportertest.StartBinary(t, "--demo", "--api.min-interval=1h", "--webhook.listen-address="+whAddr, "--webhook.config.file="+webCfg)
	exportertest.Scrape(t, base, nil)                                                                                                    // the first poll, which a notification follows
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a test certificate
	body := fmt.Sprintf(`{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":1101000001},"timestamp":%d,"stateInstance":"blocked"}`, time.Now().Unix()+1)
	var status int
	testtool.WaitFor(t, "the receiver over TLS", func() bool {
		req, _ := http.NewRequest(http.MethodPost, "https://"+whAddr+"/webhook/greenapi", strings.NewReader(body))
		req.Header.Set("Authorization", "demo-webhook-shop")
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		status = resp.StatusCode
		return true
	})
	if status != http.StatusOK {
		t.Errorf("HTTPS notification: %d\n%s", status, logs)
	}
	if resp, err := http.Post("http://"+whAddr+"/webhook/greenapi", "application/json", strings.NewReader(body)); err == nil {
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP accepted by a TLS receiver")
		}
		resp.Body.Close()
	}
	// The receiver serves notifications only, and /metrics is not there.
	if resp, err := client.Get("https://" + whAddr + "/metrics"); err == nil {
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("/metrics on the receiver: %d", resp.StatusCode)
		}
		resp.Body.Close()
	}
	if text := exportertest.Scrape(t, base, nil); !strings.Contains(text, `whatsapp_webhook_notifications_total{provider="greenapi",name="demo-shop",outcome="accepted"} 1`) {
		t.Errorf("the notification was not accepted:\n%s\n%s", exportertest.GrepLines(text, "demo-shop"), logs)
	}
}

// TestBinaryWebhookConnectionLimits: the binary serves the receiver on a
// listener that bounds each client's connections
// (--webhook.max-connections-per-client): a second connection of a client
// holding one is closed, another client's is served; a negative limit is
// refused at start.
func TestBinaryWebhookConnectionLimits(t *testing.T) {
	whAddr := testtool.FreeAddr(t)
	_, base, logs := exportertest.StartBinary(t, "--demo", "--api.min-interval=1h", "--webhook.listen-address="+whAddr, "--webhook.max-connections-per-client=1")
	exportertest.Scrape(t, base, nil)
	req := "POST /webhook/greenapi HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
	// exchange answers the status of req on a new connection from
	// a loopback address, kept open; 0 when the receiver closed it.
	exchange := func(from string) int {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		conn, err := d.Dial("tcp", whAddr)
		if err != nil {
			return 0
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte(req)); err != nil {
			return 0
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var first int
	testtool.WaitFor(t, "the receiver", func() bool { first = exchange("127.0.0.1"); return first != 0 })
	if first != http.StatusOK {
		t.Fatalf("first connection: %d\n%s", first, logs)
	}
	if status := exchange("127.0.0.1"); status != 0 {
		t.Errorf("the same client's second connection: answered %d, want closed", status)
	}
	if status := exchange("127.0.0.2"); status != http.StatusOK {
		t.Errorf("another client's connection: %d, want 200", status)
	}
	if text := exportertest.Scrape(t, base, nil); !strings.Contains(text, `whatsapp_exporter_webhook_connections_refused_total{limit="per_client"} 1`+"\n") {
		t.Errorf("the refused connection is not counted:\n%s", exportertest.GrepLines(text, "webhook_connections"))
	}
	out, err := exec.Command(exportertest.Binary(t), "--demo", "--webhook.max-connections=-1").CombinedOutput()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	}
	if code != 2 || !strings.Contains(string(out), "--webhook.max-connections") {
		t.Errorf("a negative limit: exit %d, %q; want 2 and the flag named", code, out)
	}
}

func writeSelfSignedCert(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}
