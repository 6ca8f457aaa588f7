package server_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/server"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// TestTokenNeverLeaks drives every failure of every provider with debug
// logging on and looks for the secret (GREEN-API token, Wachat and
// Evolution API keys) everywhere the exporter writes.
func TestTokenNeverLeaks(t *testing.T) {
	const token = "LeakCheck-9f2c/7e+a=" // escapes differently in paths and queries
	// The tokens of the instances an account's listing returns.
	const listedToken = "ListedLeak-4d1e/9b+c="
	// A secret of Evolution API webhooks' URL path: one path segment.
	const pathSecret = "PathLeak-7c3a90d1e5"
	forms := []string{token, url.PathEscape(token), url.QueryEscape(token), "LeakCheck-9f2c",
		listedToken, url.PathEscape(listedToken), url.QueryEscape(listedToken), "ListedLeak-4d1e", pathSecret}

	cfg, _ := faultSimulator(t, token)
	// Transport failures whose Go errors quote the URL.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String()
	closed.Close()
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	// Redirects to another host, which would receive the token in the
	// path, the Referer or the apikey header if they were followed.
	var foreignHits atomic.Int64
	foreign := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { foreignHits.Add(1) }))
	t.Cleanup(foreign.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(foreign.URL, "127.0.0.1", "localhost", 1)+r.URL.RequestURI(), http.StatusFound)
	}))
	t.Cleanup(redirector.Close)
	// Every provider meets every transport failure.
	for _, p := range simulator.Providers() {
		for k, base := range []struct {
			label, url string
			extra      []string
		}{
			{"refused", closedURL, nil},
			{"tls-mismatch", strings.Replace(plain.URL, "http://", "https://", 1), nil},
			{"proxy-down", plain.URL, []string{fmt.Sprintf("proxy_url: %q", closedURL)}},
			{"no-such-host", "http://no-such-host.invalid", nil},
			{"redirected", redirector.URL, nil},
		} {
			cfg += p.Config(base.url, p.Name+"-"+base.label, fmt.Sprint(k+1), token, base.extra...)
		}
	}

	// Accounts: each provider's account, keyed by the token, lists
	// instances whose own tokens are the token too (GREEN-API's partner
	// listing and Evolution API's hold them); another cannot be reached.
	accountSim := simulator.New()
	accountURL := exportertest.StartSimulator(t, accountSim)
	accounts := "accounts:\n"
	for _, p := range simulator.Providers() {
		if p.Account == nil {
			continue
		}
		secret := listedToken
		if p.Account.SharedKey {
			secret = token // the instances answer to the account's key
		}
		accountSim.Set(p.Name, "1102000001", secret, simulator.Behaviour{State: p.States[0]})
		accountSim.Set(p.Name, "1102000002", secret, simulator.Behaviour{Fault: simulator.FaultUnauthorized})
		accountSim.SetAccount(p.Name, token, simulator.Member{ID: "1102000001", Name: "found-" + p.Name + "-1"}, simulator.Member{ID: "1102000002", Name: "found-" + p.Name + "-2"})
		accounts += p.AccountConfig(accountURL, "found-"+p.Name, token, `name_prefix: "`+p.Name+`-"`)
		accounts += p.AccountConfig(closedURL, "refused-"+p.Name, token)
	}
	// Notifications: the webhook credentials are the token, and Evolution
	// API's events carry the instance's token in apikey.
	for _, p := range simulator.Providers() {
		if p.Notification == nil {
			continue
		}
		extra := []string{fmt.Sprintf("webhook_token: %q", token)}
		switch p.Name {
		case simulator.Evolution:
			extra = append(extra, fmt.Sprintf("webhook_jwt_key: %q", token), fmt.Sprintf("webhook_path_secret: %q", pathSecret))
		case simulator.Waha:
			extra = []string{fmt.Sprintf("webhook_hmac_key: %q", token)} // WAHA signs with an HMAC key, and sends no token
		case simulator.Whatsmeow:
			// No header credential: a path secret, and wuzapi's HMAC key.
			extra = []string{fmt.Sprintf("webhook_hmac_key: %q", token), fmt.Sprintf("webhook_path_secret: %q", pathSecret)}
		}
		cfg += p.Config(closedURL, p.Name+"-webhook", "1103000001", token, extra...)
	}
	file := filepath.Join(t.TempDir(), "whatsapp_exporter.yml")
	if err := os.WriteFile(file, []byte(cfg+accounts), 0o600); err != nil {
		t.Fatal(err)
	}
	e := exportertest.StartWith(t, exportertest.File(file), collector.Options{Concurrency: 32, UserAgent: "test", Notifications: true})
	// Until the accounts' first listings are in.
	found := func() (n int) {
		for _, in := range e.Collector().Instances() {
			if strings.HasPrefix(in.Account, "found-") {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(20 * time.Second); found() < 2*len(simulator.Providers()); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the accounts found %d instances:\n%s", found(), e.Logs)
		}
	}
	var seen strings.Builder
	receiver := httptest.NewServer(e.Receiver(server.DefaultReceiverTimeouts).Handler)
	t.Cleanup(receiver.Close)
	notify := func(path, auth string, body []byte) {
		status, header, answer := testtool.Notify(t, nil, receiver.URL+path, auth, body)
		fmt.Fprintf(&seen, "%d %s %s\n", status, header, answer)
	}
	accepted := 0
	sim := simulator.New()
	for _, p := range simulator.Providers() {
		if p.Notification == nil {
			continue
		}
		jwt := "Bearer " + simulator.SignJWT(token, map[string]any{"exp": time.Now().Add(time.Minute).Unix()})
		base := "/webhook/" + p.Name
		for k, auth := range []string{"Bearer " + token, token, jwt, "Bearer wrong", "", "jwt_key: " + token} {
			n, _ := sim.NotificationOf(p.Name, "1103000001", simulator.Behaviour{State: p.States[k%2]}, token, time.Now().Add(time.Duration(k+1)*time.Second))
			notify(base+n.Path, auth, n.Body)
		}
		n, _ := sim.NotificationOf(p.Name, "1103009999", simulator.Behaviour{State: p.States[0]}, token, time.Now())
		body := n.Body
		notify(base+n.Path, token, body)                                                              // unknown instance
		notify(base+n.Path, token, append(body[:len(body)-1:len(body)-1], []byte(`,"x":"`+token)...)) // malformed
		notify(base+n.Path, token, append(body[:len(body)-1:len(body)-1], []byte(`,"x":"`+strings.Repeat(token, 5000)+`"}`)...))
		notify(base+"/"+pathSecret+"x"+n.Path, "", body) // a wrong secret in the path
		switch p.Name {
		case simulator.Waha:
			// Signed only (below): the header credentials are refused.
		case simulator.Whatsmeow:
			for k, state := range []string{"logged_out", "logged_in"} {
				n, _ := sim.NotificationOf(p.Name, "1103000001", simulator.Behaviour{State: state}, token, time.Now().Add(time.Duration(k+1)*time.Minute))
				notify(base+"/"+pathSecret+n.Path, "", n.Body)
				accepted++
			}
		default:
			accepted += 2 // the header credentials
		}
		if p.Name == simulator.Evolution {
			n, _ := sim.NotificationOf(p.Name, "1103000001", simulator.Behaviour{State: "open"}, token, time.Now().Add(time.Minute))
			notify(base+"/"+pathSecret+n.Path, "", n.Body)
			accepted++
		}
		if p.Name == simulator.Waha {
			// Signed with the token as the HMAC key: taken, and neither
			// the key nor its signature shows anywhere.
			for k, st := range []string{"FAILED", "WORKING"} {
				n, _ := sim.NotificationOf(p.Name, "1103000001", simulator.Behaviour{State: st}, token, time.Now().Add(time.Duration(k+10)*time.Second))
				status, header, answer := testtool.Notify(t, nil, receiver.URL+base, "X-Webhook-Hmac: "+simulator.WahaHMAC(token, n.Body), n.Body)
				fmt.Fprintf(&seen, "%d %s %s\n", status, header, answer)
				if status != http.StatusOK || !strings.Contains(answer, "accepted") {
					t.Errorf("WAHA notification signed with the key: %d %s, want 200 accepted", status, answer)
				}
			}
			accepted += 2
		}
	}
	if n := strings.Count(seen.String(), "200 "); n < accepted {
		t.Errorf("%d notifications accepted, want at least %d:\n%s", n, accepted, seen.String())
	}
	for range 2 {
		seen.WriteString(exportertest.Scrape(t, e.URL, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"3"}}))
	}
	_, body := exportertest.Get(t, e.URL+"/config", nil)
	seen.WriteString(body)
	if !strings.Contains(body, "found:") || !strings.Contains(body, "<secret>") {
		t.Errorf("/config shows no instance found by an account or no <secret>:\n%s", body)
	}
	_, body = exportertest.Get(t, e.URL+"/sd", nil)
	seen.WriteString(body)
	_, body = exportertest.Get(t, e.URL+"/exporter-metrics", nil)
	seen.WriteString(body)
	// A reload that fails on a field of an instance that has the token.
	if err := os.WriteFile(file, []byte(cfg+fmt.Sprintf("  - {name: bad, provider: greenapi, id_instance: x1, api_token: %q}\n", token)+accounts), 0o600); err != nil {
		t.Fatal(err)
	}
	_, body = exportertest.Post(t, e.URL+"/-/reload")
	seen.WriteString(body)
	if !strings.Contains(body, "id_instance") {
		t.Errorf("reload error does not name the field: %q", body)
	}
	logs := e.Logs.String()
	seen.WriteString(logs)
	if n := foreignHits.Load(); n != 0 {
		t.Errorf("a redirect carried %d requests to another host", n)
	}
	for _, want := range []string{"reason=network", "reason=timeout", "reason=unauthorized", "reason=bad_response", "reason=redirect", "url=http"} {
		if !strings.Contains(logs, want) {
			t.Errorf("debug logs lack %q; the test does not exercise what it claims", want)
		}
	}
	for _, f := range forms {
		if strings.Contains(seen.String(), f) {
			i := strings.Index(seen.String(), f)
			t.Errorf("token form %q leaked: …%s…", f, seen.String()[max(0, i-200):i])
		}
	}
}
