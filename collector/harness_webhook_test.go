package collector

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// The notifications' harness: a collector whose receiver is served
// (webhookEnv), and notifications as the providers send them.

// webhookEnv is a collector with notifications on, its instances polled
// from a simulator, and its receiver served.
type webhookEnv struct {
	c        *Collector
	sim      *simulator.Simulator
	receiver string
	logs     *testlog.Buffer
}

const (
	testWebhookToken = "WEBHOOK-TOKEN-0123456789"
	testJWTKey       = "JWT-KEY-0123456789abcdef"
	testPathSecret   = "PATH-SECRET-0123456789_abc"
)

func newWebhookEnv(t *testing.T, extraYAML string) *webhookEnv {
	t.Helper()
	sim := simulator.New()
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	sim.Set("greenapi", "1101000001", "api-token-1", simulator.Behaviour{State: "authorized"})
	sim.Set("greenapi", "1101000002", "api-token-2", simulator.Behaviour{State: "authorized"})
	sim.Set("evolution", "sales-bot", "EVOLUTION-INSTANCE-TOKEN-0001", simulator.Behaviour{State: "open"})
	yml := fmt.Sprintf(`instances:
  - {name: shop, provider: greenapi, api_url: %[1]q, id_instance: "1101000001", api_token: api-token-1, webhook_token: %[2]q}
  - {name: no-token, provider: greenapi, api_url: %[1]q, id_instance: "1101000002", api_token: api-token-2}
  - {name: bot, provider: evolution, api_url: %[3]q, instance_name: sales-bot, api_key: EVOLUTION-INSTANCE-TOKEN-0001, webhook_token: %[2]q, webhook_jwt_key: %[4]q, webhook_path_secret: %[5]q}
`, simSrv.URL, testWebhookToken, simSrv.URL+"/evolution", testJWTKey, testPathSecret) + extraYAML
	return startWebhookEnv(t, sim, yml)
}

// startWebhookEnv loads yml, runs a collector with notifications on over
// it, and serves its receiver; sim is the simulator its instances are
// polled from. Calls are made only when a scrape finds them due.
func startWebhookEnv(t *testing.T, sim *simulator.Simulator, yml string) *webhookEnv {
	t.Helper()
	cfg, err := config.Load([]byte(yml), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := testlog.New()
	c := New(logger, Options{Concurrency: 4, MinInterval: time.Hour, Notifications: true})
	t.Cleanup(c.Close)
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Webhooks())
	t.Cleanup(srv.Close)
	return &webhookEnv{c: c, sim: sim, receiver: srv.URL, logs: logs}
}

// post sends a notification and returns the status and answer.
func (e *webhookEnv) post(t *testing.T, path, auth string, body []byte) (int, string) {
	t.Helper()
	status, _, answer := testtool.Notify(t, nil, e.receiver+path, auth, body)
	return status, answer
}

// scrape returns the text a scrape exposes.
func (e *webhookEnv) scrape(t *testing.T) string {
	t.Helper()
	return written(t, e.c.Refresh(context.Background()))
}

// state is the named instance's current state in a scrape and whether it
// came from a notification.
func (e *webhookEnv) state(t *testing.T, name string) (string, bool) {
	t.Helper()
	return stateIn(e.scrape(t), name)
}

// shown is state without a refresh: what the exporter holds, with no
// call that a notification made due.
func (e *webhookEnv) shown(t *testing.T, name string) (string, bool) {
	t.Helper()
	return stateIn(e.exposed(t), name)
}

// exposed is what a scrape writes, without refreshing anything.
func (e *webhookEnv) exposed(t *testing.T) string {
	t.Helper()
	return written(t, storedScrape(e.c, true))
}

// stateIn reads an instance's state and whether it came from a
// notification in an exposition.
func stateIn(text, name string) (string, bool) {
	state, notified := "", false
	for _, line := range strings.Split(text, "\n") {
		if !strings.Contains(line, `name="`+name+`"`) {
			continue
		}
		if strings.HasPrefix(line, "whatsapp_instance_state{") && strings.HasSuffix(line, " 1") {
			state = line[strings.Index(line, `state="`)+7:]
			state = state[:strings.Index(state, `"`)]
		}
		if strings.HasPrefix(line, "whatsapp_instance_state_from_notification{") {
			notified = strings.HasSuffix(line, " 1")
		}
	}
	return state, notified
}

func greenAPIState(id, state string, at time.Time) []byte {
	return fmt.Appendf(nil, `{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":%s,"wid":"79876543210@c.us","typeInstance":"whatsapp"},"timestamp":%d,"stateInstance":%q}`, id, at.Unix(), state)
}

func evolutionEvent(state string, at time.Time) []byte {
	return fmt.Appendf(nil, `{"event":"connection.update","instance":"sales-bot","data":{"instance":"sales-bot","state":%q,"statusReason":200},"date_time":%q,"server_url":"https://evolution.example.com","apikey":"EVOLUTION-INSTANCE-TOKEN-0001"}`, state, at.UTC().Format("2006-01-02T15:04:05.000Z"))
}

func jwt(key string, claims map[string]any) string {
	return "Bearer " + simulator.SignJWT(key, claims)
}

func evolutionEventReason(state string, code int, at time.Time) []byte {
	return []byte(strings.Replace(string(evolutionEvent(state, at)), `"statusReason":200`, `"statusReason":`+strconv.Itoa(code), 1))
}
