package server_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// statusRows are the instances a status page shows, in order.
func statusRows(body string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`data-name="([^"]*)"`).FindAllStringSubmatch(body, -1) {
		names = append(names, m[1])
	}
	return names
}

// TestStatusPageHidesSecrets: instances whose failures would carry their
// token (GREEN-API's is in the URL path that a network error quotes) show
// why they fail, never the token, on the page and in a button's message.
func TestStatusPageHidesSecrets(t *testing.T) {
	sim := simulator.New()
	simURL := exportertest.StartSimulator(t, sim)
	secrets := map[string]string{}
	var cfg strings.Builder
	cfg.WriteString("instances:\n")
	for i, c := range []struct {
		provider, name, id string
		fault              simulator.Fault
	}{
		{simulator.GreenAPI, "leaky", "1101", simulator.FaultCloseConnection},
		{simulator.GreenAPI, "refused", "1102", simulator.FaultUnauthorized},
		{simulator.Wachat, "store", "t1_store", simulator.FaultHTML},
		{simulator.Evolution, "bot", "bot", simulator.FaultServerError},
	} {
		secret := fmt.Sprintf("status-page-secret-%d-9f8e7d6c5b4a", i)
		secrets[c.name] = secret
		sim.Set(c.provider, c.id, secret, simulator.Behaviour{Fault: c.fault})
		cfg.WriteString(simulator.ProviderOf(c.provider).Config(simURL, c.name, c.id, secret))
	}
	e := exportertest.StartWith(t, exportertest.Inline(cfg.String()), collector.Options{Concurrency: 4, MinInterval: time.Hour, UserAgent: "test"})
	exportertest.Scrape(t, e.URL, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"20"}})

	body := exportertest.FetchOK(t, e.URL+"/")
	if n := strings.Count(body, `<span class="fail">failing`); n != 4 {
		t.Errorf("%d instances shown failing, want 4:\n%s", n, body)
	}
	details := regexp.MustCompile(`<div class="detail">.*?</div>`).FindAllString(body, -1)
	if len(details) != 4 {
		t.Errorf("%d failures' texts on the page, want 4", len(details))
	}
	t.Logf("failures shown:\n%s", strings.Join(details, "\n"))
	// A button's message too.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(e.URL+"/status/check", url.Values{"name": {"leaky"}, "provider": {"greenapi"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, e.URL+resp.Header.Get("Location"), nil)
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	after, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer after.Body.Close()
	raw, err := io.ReadAll(after.Body)
	if err != nil {
		t.Fatal(err)
	}
	page2 := string(raw)
	if !strings.Contains(page2, `id="flash"`) {
		t.Errorf("no message after Check now:\n%s", page2)
	}
	for name, secret := range secrets {
		for what, text := range map[string]string{"the page": body, "the page after Check now": page2, "the cookie": resp.Header.Get("Set-Cookie")} {
			if strings.Contains(text, secret) || strings.Contains(text, url.PathEscape(secret)) {
				t.Errorf("%s shows the secret of %s", what, name)
			}
		}
	}
	if logs := e.Logs.String(); strings.Contains(logs, "status-page-secret") {
		t.Error("the log holds a secret")
	}
}

// TestStatusPageTenThousand: 10 000 instances against the simulator make
// a page of 100 rows, far below a megabyte, and the link to one instance
// shows it first.
func TestStatusPageTenThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("10 000 instances")
	}
	sim := simulator.New()
	// Failing instances: each row carries the failure's text, the
	// largest rows there are.
	// 10 000 whatever the number of providers: each added one would
	// otherwise add its share to the fleet, and its time to the scrape.
	perProvider := (10000 + len(simulator.Providers()) - 1) / len(simulator.Providers())
	cfg, names := fleetConfig(t, sim, perProvider, simulator.Behaviour{Fault: simulator.FaultUnauthorized})
	e := exportertest.StartWith(t, exportertest.Inline(cfg), collector.Options{Concurrency: 64, MinInterval: time.Hour, UserAgent: "test"})
	exportertest.Scrape(t, e.URL, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"120"}})

	body := exportertest.FetchOK(t, e.URL+"/")
	t.Logf("status page of %d instances: %d bytes", len(names), len(body))
	if rows := statusRows(body); len(rows) != 100 {
		t.Errorf("%d rows, want 100", len(rows))
	}
	if len(body) > 256<<10 {
		t.Errorf("the page of %d instances is %d bytes, want at most 256 KiB", len(names), len(body))
	}
	if !strings.Contains(body, fmt.Sprintf("%d instances, %d unwell", len(names), len(names))) {
		t.Errorf("the summary does not count %d instances", len(names))
	}
	// The dashboard's link to an instance whose name others contain
	// (greenapi-1 is in greenapi-10, greenapi-100, ...).
	body = exportertest.FetchOK(t, e.URL+"/?q=greenapi-1&provider=greenapi")
	if rows := statusRows(body); len(rows) == 0 || rows[0] != "greenapi-1" {
		t.Errorf("?q=greenapi-1&provider=greenapi: rows begin %v, want greenapi-1", rows[:min(3, len(rows))])
	}
}

// TestStatusPageBehindWebConfig: the page and its buttons are behind the
// main listener's --web.config.file, as /metrics is.
func TestStatusPageBehindWebConfig(t *testing.T) {
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	// bcrypt (cost 4) of "status-page-password".
	const hash = "$2a$04$kPxogQhLecEjNd1c9spIAuJTjFUioeXyotrvisqrXT22SgGIKGVNq"
	if err := os.WriteFile(webConfig, []byte("basic_auth_users:\n  admin: "+hash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, base, logs := exportertest.StartBinary(t, "--demo", "--web.config.file="+webConfig)
	form := url.Values{"name": {"demo-shop"}, "provider": {"greenapi"}}.Encode()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		method, path, password string
		want                   int
	}{
		{http.MethodGet, "/", "", http.StatusUnauthorized},
		{http.MethodGet, "/?q=demo-shop&provider=greenapi", "wrong", http.StatusUnauthorized},
		{http.MethodPost, "/status/check", "", http.StatusUnauthorized},
		{http.MethodPost, "/status/reboot", "", http.StatusUnauthorized},
		{http.MethodGet, "/?q=demo-shop&provider=greenapi", "status-page-password", http.StatusOK},
		{http.MethodPost, "/status/check", "status-page-password", http.StatusSeeOther},
	} {
		var body io.Reader
		if c.method == http.MethodPost {
			body = strings.NewReader(form)
		}
		req, err := http.NewRequest(c.method, base+c.path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if c.password != "" {
			req.SetBasicAuth("admin", c.password)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s with password %q: HTTP %d, want %d\n%s\n%s", c.method, c.path, c.password, resp.StatusCode, c.want, b, logs)
		}
		if c.want == http.StatusOK && !slices.Contains(statusRows(string(b)), "demo-shop") {
			t.Errorf("GET %s: demo-shop is not on the page", c.path)
		}
	}
}
