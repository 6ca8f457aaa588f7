package collector

import (
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

const (
	testWebhookKey    = "ACCOUNT-WEBHOOK-KEY-0123456789"
	testGlobalSecret  = "GLOBAL-PATH-SECRET-0123456789"
	otherEvolutionBot = "other-bot"
)

// accountWebhookEnv is a GREEN-API partner and an Evolution API server
// with a webhook key, each of which found two instances, and the
// Evolution server's global webhook.
func accountWebhookEnv(t *testing.T) *webhookEnv {
	t.Helper()
	sim := simulator.New()
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	sim.Set("greenapi", "1102000001", "found-token-1", simulator.Behaviour{State: "authorized"})
	sim.Set("greenapi", "1102000002", "found-token-2", simulator.Behaviour{State: "authorized"})
	sim.SetAccount("greenapi", "partner-token", simulator.Member{ID: "1102000001", Name: "bakery"}, simulator.Member{ID: "1102000002", Name: "florist"})
	sim.Set("evolution", "support-bot", "bot-token", simulator.Behaviour{State: "open"})
	sim.Set("evolution", otherEvolutionBot, "other-token", simulator.Behaviour{State: "open"})
	sim.SetAccount("evolution", "global-key", simulator.Member{ID: "support-bot"}, simulator.Member{ID: otherEvolutionBot})
	yml := fmt.Sprintf(`accounts:
  - {name: partner, provider: greenapi, api_url: %[1]q, partner_token: partner-token, instance_api_url: %[1]q, webhook_key: %[2]q}
  - {name: server, provider: evolution, api_url: %[3]q, api_key: global-key, webhook_key: %[2]q, webhook_global_path_secret: %[4]q}
`, simSrv.URL, testWebhookKey, simSrv.URL+"/evolution", testGlobalSecret)
	cfg, err := config.Load([]byte(yml), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := New(nil, Options{Concurrency: 4, MinInterval: time.Hour, Notifications: true})
	t.Cleanup(c.Close)
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Webhooks())
	t.Cleanup(srv.Close)
	waitFor(t, "the accounts' instances are found", func() bool { return len(c.Instances()) == 4 })
	e := &webhookEnv{c: c, sim: sim, receiver: srv.URL}
	e.scrape(t)
	return e
}

func evolutionEventFor(instance, state string) []byte {
	return fmt.Appendf(nil, `{"event":"connection.update","instance":%q,"data":{"state":%q},"apikey":"bot-token"}`, instance, state)
}

// Each instance an account finds has credentials of its own: the one of
// an instance, which whoever controls it can read at the provider, does
// not let them forge another's state.
func TestAccountInstancesGetCredentialsOfTheirOwn(t *testing.T) {
	t.Parallel()
	e := accountWebhookEnv(t)
	now := time.Now()
	bakery := deriveWebhookSecret(testWebhookKey, derivedToken, "1102000001")
	exp := map[string]any{"exp": now.Add(time.Minute).Unix()}
	for _, tc := range []struct {
		name, path, auth string
		body             []byte
		want             int
	}{
		{"GREEN-API: the account's key itself", "/webhook/greenapi", testWebhookKey, greenAPIState("1102000002", "blocked", now), 200},
		{"GREEN-API: another instance's token", "/webhook/greenapi", bakery, greenAPIState("1102000002", "blocked", now), 200},
		{"Evolution: the key as header token", "/webhook/evolution", testWebhookKey, evolutionEventFor(otherEvolutionBot, "close"), 401},
		{"Evolution: another instance's token", "/webhook/evolution", deriveWebhookSecret(testWebhookKey, derivedToken, "support-bot"), evolutionEventFor(otherEvolutionBot, "close"), 401},
		{"Evolution: another instance's path secret", "/webhook/evolution/" + deriveWebhookSecret(testWebhookKey, derivedPath, "support-bot"), "", evolutionEventFor(otherEvolutionBot, "close"), 401},
		{"Evolution: JWT signed with another instance's key", "/webhook/evolution", jwt(deriveWebhookSecret(testWebhookKey, derivedJWT, "support-bot"), exp), evolutionEventFor(otherEvolutionBot, "close"), 401},
		{"Evolution: JWT signed with the account's key", "/webhook/evolution", jwt(testWebhookKey, exp), evolutionEventFor(otherEvolutionBot, "close"), 401},
		{"Evolution: the derived token as path secret", "/webhook/evolution/" + deriveWebhookSecret(testWebhookKey, derivedToken, otherEvolutionBot), "", evolutionEventFor(otherEvolutionBot, "close"), 401},
	} {
		status, answer := e.post(t, tc.path, tc.auth, tc.body)
		if status != tc.want || !strings.Contains(answer, OutcomeUnauthorized) {
			t.Errorf("%s: %d %q, want %d unauthorized", tc.name, status, answer, tc.want)
		}
	}
	if got, _ := e.shown(t, "florist"); got != "authorized" {
		t.Errorf("florist is %q after forged notifications, want authorized", got)
	}
	if got, _ := e.shown(t, otherEvolutionBot); got != "open" {
		t.Errorf("%s is %q after forged notifications, want open", otherEvolutionBot, got)
	}

	// Each instance's own credentials, and the global webhook's secret,
	// are taken.
	for _, tc := range []struct {
		name, path, auth, instance, state string
		body                              []byte
	}{
		{"GREEN-API: its own token", "/webhook/greenapi", deriveWebhookSecret(testWebhookKey, derivedToken, "1102000002"), "florist", "blocked", greenAPIState("1102000002", "blocked", now)},
		{"Evolution: its own header token", "/webhook/evolution", deriveWebhookSecret(testWebhookKey, derivedToken, otherEvolutionBot), otherEvolutionBot, "connecting", evolutionEventFor(otherEvolutionBot, "connecting")},
		{"Evolution: its own path secret", "/webhook/evolution/" + deriveWebhookSecret(testWebhookKey, derivedPath, otherEvolutionBot) + "/connection-update", "", otherEvolutionBot, "close", evolutionEventFor(otherEvolutionBot, "close")},
		{"Evolution: a JWT signed with its own key", "/webhook/evolution", jwt(deriveWebhookSecret(testWebhookKey, derivedJWT, "support-bot"), exp), "support-bot", "close", evolutionEventFor("support-bot", "close")},
		{"Evolution: the global webhook", "/webhook/evolution/" + testGlobalSecret, "", "support-bot", "open", evolutionEventFor("support-bot", "open")},
	} {
		if status, answer := e.post(t, tc.path, tc.auth, tc.body); status != 200 || !strings.Contains(answer, OutcomeAccepted) {
			t.Errorf("%s: %d %q, want 200 accepted", tc.name, status, answer)
		}
		if got, _ := e.shown(t, tc.instance); got != tc.state {
			t.Errorf("%s: %s is %q, want %q", tc.name, tc.instance, got, tc.state)
		}
	}
}

// The derivation docs/notifications.md gives, with its example, is the
// one the exporter uses; and the shell command it gives computes it.
func TestDocWebhookKeyDerivation(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/notifications.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- derivation example -->\n```sh\n(.*?)```\n\n?```\n(\\S+)\n```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/notifications.md has no derivation example (a sh block after <!-- derivation example --> and the output block after it)")
	}
	script, want := string(m[1]), string(m[2])
	key := regexp.MustCompile(`WEBHOOK_KEY='([^']+)'`).FindStringSubmatch(script)
	kind := regexp.MustCompile(`KIND=(\w+)`).FindStringSubmatch(script)
	id := regexp.MustCompile(`ID=(\S+)`).FindStringSubmatch(script)
	if key == nil || kind == nil || id == nil {
		t.Fatalf("the example does not set WEBHOOK_KEY='…', KIND= and ID=:\n%s", script)
	}
	if got := deriveWebhookSecret(key[1], kind[1], id[1]); got != want {
		t.Errorf("the exporter derives %s, the documentation says %s", got, want)
	}
	for _, tool := range []string{"sh", "openssl", "basenc"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("WHATSAPP_EXPORTER_REQUIRE_TOOLS") != "" {
				t.Fatalf("%s is needed to run the documented command: %v", tool, err)
			}
			t.Skipf("%s not installed: the documented command is not run", tool)
		}
	}
	out, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatalf("the documented command fails: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("the documented command prints %s, the documentation says %s", got, want)
	}
}
