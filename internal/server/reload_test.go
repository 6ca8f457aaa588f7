package server_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

func TestReloadKeepsTheOldConfigOnError(t *testing.T) {
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1", "tok1", simulator.Behaviour{State: "authorized"})
	sim.Set(simulator.GreenAPI, "2", "tok2", simulator.Behaviour{State: "blocked"})
	simURL := exportertest.StartSimulator(t, sim)
	file := filepath.Join(t.TempDir(), "whatsapp_exporter.yml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	one := fmt.Sprintf("instances:\n  - {name: one, provider: greenapi, api_url: %q, id_instance: 1, api_token: tok1}\n", simURL)
	write(one)
	e := exportertest.Start(t, exportertest.File(file), 0)

	write(one + "  - {name: one, provider: greenapi, api_url: " + simURL + ", id_instance: 2, api_token: tok2}\n")
	code, body := exportertest.Post(t, e.URL+"/-/reload")
	if code != http.StatusInternalServerError || !strings.Contains(body, file) || !strings.Contains(body, "duplicate") {
		t.Fatalf("reload of a config with a duplicate name: HTTP %d %q; want 500 naming the file and the duplicate", code, body)
	}
	mfs := exportertest.Parse(t, exportertest.Scrape(t, e.URL, nil))
	if v := exportertest.Gauge(t, mfs, "whatsapp_exporter_config_last_reload_successful"); v != 0 {
		t.Errorf("reload_successful = %v after a failed reload, want 0", v)
	}
	if up := exportertest.UpValues(mfs); len(up) != 1 || up["one"] != 1 {
		t.Errorf("after a failed reload the old instances should serve: whatsapp_up %v", up)
	}

	write(one + "  - {name: two, provider: greenapi, api_url: " + simURL + ", id_instance: 2, api_token: tok2}\n")
	if code, body := exportertest.Post(t, e.URL+"/-/reload"); code != http.StatusOK {
		t.Fatalf("reload of a good config: HTTP %d %q", code, body)
	}
	mfs = exportertest.Parse(t, exportertest.Scrape(t, e.URL, nil))
	if v := exportertest.Gauge(t, mfs, "whatsapp_exporter_config_last_reload_successful"); v != 1 {
		t.Errorf("reload_successful = %v, want 1", v)
	}
	if up := exportertest.UpValues(mfs); len(up) != 2 {
		t.Errorf("after reload: whatsapp_up %v, want instances one and two", up)
	}
	if states := exportertest.CheckOneHot(t, mfs); states["two"] != "blocked" {
		t.Errorf("instance two reports %q, want blocked", states["two"])
	}
}

// TestReloadRefusesCrossSiteRequests: any web page could make a browser
// POST a form to /-/reload.
func TestReloadRefusesCrossSiteRequests(t *testing.T) {
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1", "tok1", simulator.Behaviour{State: "authorized"})
	simURL := exportertest.StartSimulator(t, sim)
	file := filepath.Join(t.TempDir(), "whatsapp_exporter.yml")
	one := fmt.Sprintf("instances:\n  - {name: one, provider: greenapi, api_url: %q, id_instance: 1, api_token: tok1}\n", simURL)
	if err := os.WriteFile(file, []byte(one), 0o600); err != nil {
		t.Fatal(err)
	}
	e := exportertest.Start(t, exportertest.File(file), 0)
	if err := os.WriteFile(file, []byte(one+"  - {name: two, provider: greenapi, api_url: "+simURL+", id_instance: 1, api_token: tok1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, h := range []http.Header{
		{"Sec-Fetch-Site": {"cross-site"}, "Content-Type": {"application/x-www-form-urlencoded"}},
		{"Origin": {"https://evil.example"}, "Content-Type": {"text/plain"}},
	} {
		req, _ := http.NewRequest(http.MethodPost, e.URL+"/-/reload", strings.NewReader("x=1"))
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
	if up := exportertest.UpValues(exportertest.Parse(t, exportertest.Scrape(t, e.URL, nil))); len(up) != 1 {
		t.Fatalf("a cross-site POST reloaded the configuration: whatsapp_up %v", up)
	}
	// Same-origin browsers and clients like curl still reload.
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/-/reload", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, body := exportertest.Post(t, e.URL+"/-/reload"); resp.StatusCode != http.StatusOK || code != http.StatusOK {
		t.Fatalf("same-origin reload HTTP %d, plain reload HTTP %d %s", resp.StatusCode, code, body)
	}
	if up := exportertest.UpValues(exportertest.Parse(t, exportertest.Scrape(t, e.URL, nil))); len(up) != 2 {
		t.Errorf("after a plain POST: whatsapp_up %v, want two instances", up)
	}
}

// TestFailedReloadChangesNoAnswer: a reload that fails at any step leaves
// every answer of the exporter as it was: the instances' and accounts'
// metrics, a probe, the service discovery and the configuration shown.
func TestFailedReloadChangesNoAnswer(t *testing.T) {
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1101000001", "tok1", simulator.Behaviour{State: "authorized"})
	sim.Set(simulator.Wachat, "t1_a", "agency-key", simulator.Behaviour{State: "open"})
	sim.SetAccount(simulator.Wachat, "agency-key", simulator.Member{ID: "t1_a"})
	simURL := exportertest.StartSimulator(t, sim)
	dir := t.TempDir()
	file := filepath.Join(dir, "whatsapp_exporter.yml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	shop := simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "shop", "1101000001", "tok1", "timeout: 2s")
	account := simulator.ProviderOf(simulator.Wachat).AccountConfig(simURL, "agency", "agency-key", "refresh_interval: 1h")
	good := "instances:\n" + shop + "accounts:\n" + account
	write(good)
	e := exportertest.Start(t, exportertest.File(file), time.Hour)
	answers := func() string {
		var b strings.Builder
		for _, line := range strings.Split(exportertest.Scrape(t, e.URL, nil), "\n") {
			if strings.HasPrefix(line, "whatsapp_") && !strings.HasPrefix(line, "whatsapp_exporter_") {
				b.WriteString(line + "\n")
			}
		}
		for _, path := range []string{"/probe?target=shop", "/sd", "/config"} {
			code, body := exportertest.Get(t, e.URL+path, nil)
			fmt.Fprintf(&b, "%s: %d\n%s\n", path, code, body)
		}
		return b.String()
	}
	testtool.WaitFor(t, "the account's instance", func() bool { return strings.Contains(answers(), `name="t1_a"`) })
	before := answers()

	badCA := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(badCA, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	changed := "instances:\n" + strings.Replace(shop, "timeout: 2s", "timeout: 3s", 1) +
		"accounts:\n" + strings.Replace(account, "refresh_interval: 1h", "refresh_interval: 2h", 1)
	// withInstance is the changed configuration with one more instance.
	withInstance := func(instance string) string {
		i := strings.Index(changed, "accounts:")
		return changed[:i] + instance + changed[i:]
	}
	for name, content := range map[string]string{
		"not YAML":      "instances: [\x00\n",
		"unknown field": changed + "    colour: blue\n",
		"no secret file": withInstance("  - {name: two, provider: greenapi, api_url: " + simURL +
			", id_instance: 1101000002, api_token_file: missing.token}\n"),
		"unusable HTTP settings": withInstance(simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "new", "1101000002", "tok2",
			"tls_config: {ca_file: "+badCA+"}")),
	} {
		write(content)
		if code, body := exportertest.Post(t, e.URL+"/-/reload"); code != http.StatusInternalServerError {
			t.Fatalf("%s: reload answered HTTP %d %q, want 500", name, code, body)
		}
		if got := answers(); got != before {
			t.Errorf("%s: answers after the failed reload:\n%s\nwant as before:\n%s", name, got, before)
		}
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(file, 0o700); err != nil { // a special file where the configuration was
		t.Fatal(err)
	}
	if code, _ := exportertest.Post(t, e.URL+"/-/reload"); code != http.StatusInternalServerError {
		t.Fatalf("a directory as configuration: reload answered HTTP %d, want 500", code)
	}
	if got := answers(); got != before {
		t.Errorf("a directory as configuration: answers changed:\n%s\nwant as before:\n%s", got, before)
	}
}
