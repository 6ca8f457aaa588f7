package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// TestBinaryBadNameReloadKeepsRunning: a name that is not valid UTF-8
// (here from an environment variable) used to pass --config.check and
// crash the exporter at start and on SIGHUP.
func TestBinaryBadNameReloadKeepsRunning(t *testing.T) {
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1", "tok1", simulator.Behaviour{State: "authorized"})
	simURL := startSimulator(t, sim)
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

	check := exec.Command(binary(t), "--config.check", "--config.expand-environment-variables", "--config.file="+badFile)
	check.Env = env
	out, err := check.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not valid UTF-8") || !strings.Contains(string(out), "field name") {
		t.Errorf("--config.check of a name that is not UTF-8: %v %s; want a failure naming the field", err, out)
	}

	cmd, base, logs := startBinaryEnv(t, env, "--config.file="+file, "--config.expand-environment-variables")
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failed reload", func() bool { return strings.Contains(logs.String(), "Reload on SIGHUP failed") })
	mfs := parse(t, scrape(t, base, nil))
	if v := gauge(t, mfs, "whatsapp_exporter_config_last_reload_successful"); v != 0 {
		t.Errorf("reload_successful = %v, want 0", v)
	}
	if up := upValues(mfs); len(up) != 1 || up["one"] != 1 {
		t.Errorf("after the failed reload: whatsapp_up %v, want the old instance", up)
	}
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("the exporter panicked:\n%s", logs)
	}
}

// waitFor polls cond until it holds, failing after a generous limit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testtool.WaitFor(t, what, cond)
}

// TestBinaryConfigCheckBuildsWhatStartBuilds: a missing CA file passed
// --config.check and then stopped the exporter at start.
func TestBinaryConfigCheckBuildsWhatStartBuilds(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "whatsapp_exporter.yml")
	if err := os.WriteFile(file, []byte("instances:\n  - {name: one, provider: greenapi, id_instance: 1, api_token: tok1, tls_config: {ca_file: missing-ca.pem}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary(t), "--config.check", "--config.file="+file).CombinedOutput()
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
	out, err = exec.Command(binary(t), "--config.check", "--config.file="+file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not-a-ca.pem") || !strings.Contains(string(out), `"two"`) || !strings.Contains(string(out), file) {
		t.Errorf("--config.check with a CA file that is no certificate: %v %s; want a failure naming the file, the instance and the CA file", err, out)
	}
}

func TestBinaryBadTelemetryPath(t *testing.T) {
	for _, p := range []string{"/config", "metrics", "", "/-/reload", "/metrics/{x}", "GET /metrics", "/a/../metrics"} {
		cmd := exec.Command(binary(t), "--demo", "--web.telemetry-path="+p, "--web.listen-address="+testtool.FreeAddr(t))
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

func TestCheckTelemetryPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"/metrics": true, "/": true, "/whatsapp/metrics": true,
		"": false, "metrics": false, "/config": false, "/-/healthy": false, "/-/reload": false,
		"/metrics/": false, "/a/../b": false, "/metrics/{name}": false, "/metrics?x": false, "/a b": false, "/a%2f": false, "/a\x00": false,
	} {
		if err := checkTelemetryPath(p); (err == nil) != ok {
			t.Errorf("checkTelemetryPath(%q) = %v, want ok %v", p, err, ok)
		}
	}
}

func TestAnswerWithin(t *testing.T) {
	const offset = 500 * time.Millisecond
	for _, tc := range []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"10", 9500 * time.Millisecond, true},
		{" 10 ", 9500 * time.Millisecond, true},
		{"1", 500 * time.Millisecond, true},
		{"0.6", 300 * time.Millisecond, true}, // used to be 600 ms: no time left to answer
		{"0.4", 200 * time.Millisecond, true}, // used to be 400 ms
		{"0.001", 500 * time.Microsecond, true},
		{"1e300", time.Hour - offset, true},
		{"+Inf", time.Hour - offset, true},
		{"0", 0, false}, {"-1", 0, false}, {"NaN", 0, false}, {"ten", 0, false}, {"", 0, false},
	} {
		got, ok := answerWithin(tc.header, offset)
		if got != tc.want || ok != tc.ok {
			t.Errorf("answerWithin(%q) = %v %v, want %v %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
	if got, _ := answerWithin("10", 0); got != 10*time.Second {
		t.Errorf("without an offset: %v, want 10s", got)
	}
}

// TestReloadRefusesCrossSiteRequests: any web page could make a browser
// POST a form to /-/reload.
func TestReloadRefusesCrossSiteRequests(t *testing.T) {
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1", "tok1", simulator.Behaviour{State: "authorized"})
	simURL := startSimulator(t, sim)
	file := filepath.Join(t.TempDir(), "whatsapp_exporter.yml")
	one := fmt.Sprintf("instances:\n  - {name: one, provider: greenapi, api_url: %q, id_instance: 1, api_token: tok1}\n", simURL)
	if err := os.WriteFile(file, []byte(one), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startExporter(t, configSource{file: file}, 0)
	if err := os.WriteFile(file, []byte(one+"  - {name: two, provider: greenapi, api_url: "+simURL+", id_instance: 1, api_token: tok1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, h := range []http.Header{
		{"Sec-Fetch-Site": {"cross-site"}, "Content-Type": {"application/x-www-form-urlencoded"}},
		{"Origin": {"https://evil.example"}, "Content-Type": {"text/plain"}},
	} {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/-/reload", strings.NewReader("x=1"))
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site POST %v: HTTP %d, want 403", h, resp.StatusCode)
		}
	}
	if up := upValues(parse(t, scrape(t, e.url, nil))); len(up) != 1 {
		t.Fatalf("a cross-site POST reloaded the configuration: whatsapp_up %v", up)
	}
	// Same-origin browsers and clients like curl still reload.
	req, _ := http.NewRequest(http.MethodPost, e.url+"/-/reload", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, body := post(t, e.url+"/-/reload"); resp.StatusCode != http.StatusOK || code != http.StatusOK {
		t.Fatalf("same-origin reload HTTP %d, plain reload HTTP %d %s", resp.StatusCode, code, body)
	}
	if up := upValues(parse(t, scrape(t, e.url, nil))); len(up) != 2 {
		t.Errorf("after a plain POST: whatsapp_up %v, want two instances", up)
	}
}

// FuzzAnswerWithin: for any header, the exporter answers within the
// announced timeout, never at or after it. Run longer with
// go test -run '^$' -fuzz '^FuzzAnswerWithin$' -fuzztime 5m .
func FuzzAnswerWithin(f *testing.F) {
	for _, s := range []string{"10", "0.6", "0.4", "1e300", "NaN", "-0", "0x1p-2", "Inf"} {
		f.Add(s, int64(500*time.Millisecond))
	}
	f.Fuzz(func(t *testing.T, header string, offset int64) {
		d, ok := answerWithin(header, time.Duration(offset))
		if !ok {
			return
		}
		secs, err := strconv.ParseFloat(strings.TrimSpace(header), 64)
		if err != nil || !(secs > 0) {
			t.Fatalf("%q accepted as %v", header, d)
		}
		announced := min(secs, maxScrapeTimeout.Seconds())
		if d < 0 || d.Seconds() > announced || (offset > 0 && d.Seconds() >= announced && announced > 1e-9) {
			t.Fatalf("announced %q, offset %v: answer within %v", header, time.Duration(offset), d)
		}
	})
}
