package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/server"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// shortReceiverTimeouts let the tests watch slow senders being cut off.
var shortReceiverTimeouts = server.ReceiverTimeouts{Header: 300 * time.Millisecond, Read: 600 * time.Millisecond, Write: time.Second, Idle: time.Second}

func TestWebhookReceiverCutsOffSlowSenders(t *testing.T) {
	e := receiverExporter(t) // the first poll: authorized
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = e.Receiver(shortReceiverTimeouts)
	srv.Start()
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")

	// closed reports whether the server ends the connection, and what it
	// answered, after the sender wrote part of a request and stalled.
	closed := func(partial string) (bool, string) {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, partial); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		answer, err := io.ReadAll(bufio.NewReader(conn))
		return err == nil, string(answer) // EOF: closed by the server
	}
	body := `{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":1101000001},"timestamp":` + fmt.Sprint(time.Now().Unix()+1) + `,"stateInstance":"blocked"}`
	for name, partial := range map[string]string{
		"headers never end": "POST /webhook/greenapi HTTP/1.1\r\nHost: x\r\nAuthorization: wh\r\n",
		"body never ends":   fmt.Sprintf("POST /webhook/greenapi HTTP/1.1\r\nHost: x\r\nAuthorization: wh\r\nContent-Length: %d\r\n\r\n%s", len(body)+10, body),
	} {
		ok, answer := closed(partial)
		if !ok {
			t.Errorf("%s: the connection stayed open", name)
		}
		if strings.Contains(answer, "200 OK") {
			t.Errorf("%s: answered %q", name, answer)
		}
	}
	if text := exportertest.Scrape(t, e.URL, nil); !strings.Contains(text, `whatsapp_instance_state{provider="greenapi",name="shop",state="authorized"} 1`) {
		t.Errorf("a cut-off notification changed the state")
	}
	if text := exportertest.Scrape(t, e.URL, nil); !strings.Contains(text, `whatsapp_exporter_webhook_notifications_total{outcome="incomplete",provider="greenapi"} 1`) {
		t.Errorf("the incomplete body is not counted:\n%s", exportertest.GrepLines(text, "webhook"))
	}
	// The receiver still serves.
	if status, _, _ := testtool.Notify(t, nil, srv.URL+"/webhook/greenapi", "wh", []byte(body)); status != http.StatusOK {
		t.Errorf("after the slow senders: %d", status)
	}
}

func TestWebhookReceiverManyClients(t *testing.T) {
	sim := simulator.New()
	simURL := exportertest.StartSimulator(t, sim)
	var cfg strings.Builder
	cfg.WriteString("instances:\n")
	for i := range 50 {
		id := fmt.Sprint(1101000100 + i)
		// A call at the scrape would replace the notifications' state:
		// a Retry-After holds the calls back, so that the scrape shows
		// what the notifications left.
		sim.Set(simulator.GreenAPI, id, "token", simulator.Behaviour{Fault: simulator.FaultRateLimited, RetryAfter: 5 * time.Minute})
		cfg.WriteString(simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "i"+id, id, "token", `webhook_token: "wh"`))
	}
	e := exportertest.StartWith(t, exportertest.Inline(cfg.String()), collector.Options{Concurrency: 8, MinInterval: time.Hour, Notifications: true})
	srv := httptest.NewUnstartedServer(nil)
	// All come from one address here: no per-client share, which
	// TestReceiverSlowSendersPerClient tests.
	srv.Config = e.ReceiverWith(server.DefaultReceiverTimeouts, server.NewReceiverLimits(0, 0))
	srv.Start()
	t.Cleanup(srv.Close)
	exportertest.Scrape(t, e.URL, nil)
	// 50 instances, 20 notifications each, sent at once: every state ends
	// as its newest notification says, whatever the order of arrival.
	start := time.Now().Unix() + 1
	errs := make(chan error, 1000)
	for i := range 50 {
		for k := range 20 {
			go func() {
				state := []string{"blocked", "yellowCard"}[k%2]
				body := fmt.Sprintf(`{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":%d},"timestamp":%d,"stateInstance":%q}`, 1101000100+i, start+int64(k), state)
				// A 503 (over maxWebhookRequests) is retried, as the
				// provider retries it.
				for {
					req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhook/greenapi", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer wh")
					resp, err := http.DefaultClient.Do(req)
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusServiceUnavailable {
							runtime.Gosched()
							continue
						}
						if resp.StatusCode != http.StatusOK {
							err = fmt.Errorf("HTTP %d", resp.StatusCode)
						}
					}
					errs <- err
					return
				}
			}()
		}
	}
	for range 1000 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	text := exportertest.Scrape(t, e.URL, nil)
	// The newest (k = 19) is yellowCard.
	if n := strings.Count(text, `state="yellowCard"} 1`); n != 50 {
		t.Errorf("%d of 50 instances show their newest state", n)
	}
}

// receiverFor serves e's notification receiver and has the simulator push
// its instances' changes to it until the test ends.
func receiverFor(t *testing.T, e *exportertest.Exporter, sim *simulator.Simulator) {
	t.Helper()
	receiver := httptest.NewServer(e.Receiver(server.DefaultReceiverTimeouts).Handler)
	t.Cleanup(receiver.Close)
	exportertest.PushNotifications(t, sim, receiver.URL, nil)
}

// waitDeliveries waits until the simulator has made n deliveries of an
// instance's notifications, and returns them.
func waitDeliveries(t *testing.T, sim *simulator.Simulator, provider, id string, n int) []simulator.Delivery {
	t.Helper()
	var d []simulator.Delivery
	testtool.WaitFor(t, fmt.Sprintf("%d deliveries for %s", n, id), func() bool {
		d = sim.Deliveries(provider, id)
		return len(d) >= n
	})
	return d
}

// TestGreenAPINotificationQueueNeverStalls: GREEN-API resends an
// instance's notification until it gets HTTP 200, and the later ones wait
// behind it (API-FACTS.md, GREEN-API: "Notifications are a per-instance
// queue", inferred from the provider's documentation). The receiver
// answers every notification it read whole with 200, even one it
// refuses, so the next one arrives at once.
func TestGreenAPINotificationQueueNeverStalls(t *testing.T) {
	sim := simulator.New()
	sim.SetRetryUnit(time.Hour) // a resend would come an hour later: never within the test
	sim.Set(simulator.GreenAPI, "1101000001", "token", simulator.Behaviour{State: "authorized"})
	sim.SetWebhook(simulator.GreenAPI, "1101000001", simulator.WebhookAuth{Token: "not-the-webhook-token"})
	simURL := exportertest.StartSimulator(t, sim)
	cfg := "instances:\n" + simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "shop", "1101000001", "token", `webhook_token: "wh-token"`)
	e := exportertest.StartWith(t, exportertest.Inline(cfg), collector.Options{Concurrency: 4, MinInterval: time.Hour, Notifications: true})
	receiverFor(t, e, sim)
	exportertest.Scrape(t, e.URL, nil)

	// Refused: a webhookUrlToken that is not the one configured.
	sim.Set(simulator.GreenAPI, "1101000001", "token", simulator.Behaviour{State: "blocked"})
	waitDeliveries(t, sim, simulator.GreenAPI, "1101000001", 1)
	// The next notifications, with the right token, follow at once.
	sim.SetWebhook(simulator.GreenAPI, "1101000001", simulator.WebhookAuth{Token: "wh-token"})
	sim.Set(simulator.GreenAPI, "1101000001", "token", simulator.Behaviour{State: "notAuthorized"})
	waitDeliveries(t, sim, simulator.GreenAPI, "1101000001", 2)
	sim.Set(simulator.GreenAPI, "1101000001", "token", simulator.Behaviour{State: "yellowCard"})
	d := waitDeliveries(t, sim, simulator.GreenAPI, "1101000001", 3)
	for k, want := range []simulator.Delivery{{State: "blocked", Attempt: 1, Status: 200}, {State: "notAuthorized", Attempt: 1, Status: 200}, {State: "yellowCard", Attempt: 1, Status: 200}} {
		if d[k] != want {
			t.Errorf("delivery %d: %+v, want %+v", k, d[k], want)
		}
	}
	text := exportertest.Scrape(t, e.URL, nil)
	for _, want := range []string{
		`whatsapp_webhook_notifications_total{provider="greenapi",name="shop",outcome="unauthorized"} 1`,
		`whatsapp_webhook_notifications_total{provider="greenapi",name="shop",outcome="accepted"} 2`,
		`whatsapp_instance_state{provider="greenapi",name="shop",state="yellowCard"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no %s in:\n%s", want, exportertest.GrepLines(text, `name="shop"`))
		}
	}
}

// TestEvolutionWebhookVersions: what each Evolution API version can send
// (1.8: no header; 2.2: its headers as they are, a jwt_key too; 2.3: a
// JWT) meets the credentials the exporter offers for it, and every
// version's retries end (API-FACTS.md, Evolution API: "Webhook versions",
// read in its source: 2.2 retries 10 times, 2.3 not after a 401). 1.8
// does not retry: its ChannelStartupService.sendDataWebhook
// (src/api/services/channel.service.ts at tag 1.8.2) posts once and logs
// a failure; API-FACTS.md's "v1 retries 10 times" does not hold for it.
func TestEvolutionWebhookVersions(t *testing.T) {
	const pathSecret = "evo-path-secret-0123456789"
	for _, tc := range []struct {
		name    string
		version simulator.EvolutionVersion
		auth    simulator.WebhookAuth
		want    string // the outcome of each delivery
		status  int
		// attempts the refused notification takes
		attempts int
	}{
		{"1.8 path secret", simulator.Evolution18, simulator.WebhookAuth{PathSecret: pathSecret}, collector.OutcomeAccepted, 200, 1},
		{"1.8 sends no header", simulator.Evolution18, simulator.WebhookAuth{Token: "evo-token"}, collector.OutcomeUnauthorized, 401, 1},
		{"2.2 header token", simulator.Evolution22, simulator.WebhookAuth{Token: "evo-token"}, collector.OutcomeAccepted, 200, 1},
		{"2.2 jwt_key sent as it is", simulator.Evolution22, simulator.WebhookAuth{JWTKey: "evo-jwt-key", PathSecret: pathSecret}, collector.OutcomeKeyInHeader, 401, 11},
		{"2.3 JWT", simulator.Evolution23, simulator.WebhookAuth{JWTKey: "evo-jwt-key"}, collector.OutcomeAccepted, 200, 1},
		{"2.3 path secret", simulator.Evolution23, simulator.WebhookAuth{PathSecret: pathSecret}, collector.OutcomeAccepted, 200, 1},
		{"2.3 wrong path secret, not retried", simulator.Evolution23, simulator.WebhookAuth{PathSecret: pathSecret + "x"}, collector.OutcomeUnauthorized, 401, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim := simulator.New()
			sim.SetEvolutionVersion(tc.version)
			sim.SetRetryUnit(time.Millisecond)
			sim.Set(simulator.Evolution, "bot", "evo-instance-key", simulator.Behaviour{State: "open"})
			sim.SetWebhook(simulator.Evolution, "bot", tc.auth)
			simURL := exportertest.StartSimulator(t, sim)
			cfg := "instances:\n" + simulator.ProviderOf(simulator.Evolution).Config(simURL, "bot", "bot", "evo-instance-key",
				`webhook_token: "evo-token"`, `webhook_jwt_key: "evo-jwt-key"`, `webhook_path_secret: "`+pathSecret+`"`)
			e := exportertest.StartWith(t, exportertest.Inline(cfg), collector.Options{Concurrency: 4, MinInterval: time.Hour, Notifications: true})
			receiverFor(t, e, sim)
			exportertest.Scrape(t, e.URL, nil)
			sim.Set(simulator.Evolution, "bot", "evo-instance-key", simulator.Behaviour{State: "close", Reason: 401})
			waitDeliveries(t, sim, simulator.Evolution, "bot", tc.attempts)
			time.Sleep(50 * time.Millisecond) // room for a retry that should not come
			d := sim.Deliveries(simulator.Evolution, "bot")
			if len(d) != tc.attempts {
				t.Errorf("%d deliveries, want %d: %+v", len(d), tc.attempts, d)
			}
			for _, dl := range d {
				if dl.Status != tc.status {
					t.Errorf("delivery %+v, want HTTP %d", dl, tc.status)
				}
			}
			text := exportertest.Scrape(t, e.URL, nil)
			want := fmt.Sprintf(`whatsapp_webhook_notifications_total{provider="evolution",name="bot",outcome=%q} %d`, tc.want, tc.attempts)
			if !strings.Contains(text, want+"\n") {
				t.Errorf("no %s in:\n%s", want, exportertest.GrepLines(text, "notifications"))
			}
			if strings.Contains(text, "evo-jwt-key") || strings.Contains(text, pathSecret) || strings.Contains(e.Logs.String(), "evo-jwt-key") || strings.Contains(e.Logs.String(), pathSecret) {
				t.Errorf("a webhook credential reached the metrics or logs")
			}
		})
	}
}
