package collector

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

const (
	whatsmeowTestPathSecret = "EVOGO-PATH-SECRET-0123456789"
	whatsmeowTestHMACKey    = "WUZAPI-HMAC-KEY-0123456789"
	evogoTestToken          = "EVOGO-INSTANCE-TOKEN-0001"
	wuzapiTestToken         = "WUZAPI-USER-TOKEN-0001"
)

// newWhatsmeowWebhookEnv is a collector with notifications on, an
// Evolution Go instance (go-bot, path secret) and a wuzapi user
// (wuzapi-shop, HMAC key) polled from the simulator, and its receiver
// served. Calls are made only when a scrape finds them due.
func newWhatsmeowWebhookEnv(t *testing.T) *webhookEnv {
	t.Helper()
	sim := simulator.New()
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	sim.Set(simulator.Whatsmeow, "go-bot", evogoTestToken, simulator.Behaviour{State: "logged_in"})
	sim.Set(simulator.Whatsmeow, "wuzapi-shop", wuzapiTestToken, simulator.Behaviour{State: "logged_in"})
	p := simulator.ProviderOf(simulator.Whatsmeow)
	yml := "instances:\n" +
		p.Config(simSrv.URL, "go-bot", "go-bot", evogoTestToken, fmt.Sprintf("webhook_path_secret: %q", whatsmeowTestPathSecret)) +
		p.Config(simSrv.URL, "wuzapi-shop", "wuzapi-shop", wuzapiTestToken, fmt.Sprintf("webhook_hmac_key: %q", whatsmeowTestHMACKey)) +
		p.Config(simSrv.URL, "bare", "bare", "BARE-TOKEN")
	return startWebhookEnv(t, sim, yml)
}

// postSigned sends body with wuzapi's signature made with key.
func postSigned(t *testing.T, e *webhookEnv, key, contentType string, body []byte) int {
	t.Helper()
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.receiver+"/webhook/whatsmeow", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("x-hmac-signature", hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func evogoEvent(event, instance string) []byte {
	return []byte(fmt.Sprintf(`{"event":%q,"data":{"reason":"x"},"instanceToken":%q,"instanceId":"0b6f6a7e","instanceName":%q}`, event, evogoTestToken, instance))
}

// TestWhatsmeowNotificationDecode: Evolution Go's and wuzapi's events
// (JSON and form), the events that tell a state, and the bodies that are
// not events.
func TestWhatsmeowNotificationDecode(t *testing.T) {
	now := time.Now()
	wuzapiJSON := `{"type":"TemporaryBan","event":{"Code":101,"Expire":86400000000000},"instanceName":"shop","userID":"a1b2"}`
	for _, tc := range []struct {
		name, body, id, state, reason string
		malformed                     bool
	}{
		{name: "Evolution Go Connected", body: string(evogoEvent("Connected", "go-bot")), id: "go-bot", state: whatsmeowLoggedIn},
		{name: "Evolution Go LoggedOut", body: string(evogoEvent("LoggedOut", "go-bot")), id: "go-bot", state: whatsmeowLoggedOut, reason: whatsmeowReasonLoggedOut},
		{name: "Evolution Go TemporaryBan", body: string(evogoEvent("TemporaryBan", "go-bot")), id: "go-bot", state: whatsmeowTemporaryBan, reason: whatsmeowReasonBan},
		{name: "Evolution Go QRTimeout", body: string(evogoEvent("QRTimeout", "go-bot")), id: "go-bot", state: whatsmeowLoggedOut, reason: whatsmeowReasonQRExpired},
		{name: "Evolution Go message", body: string(evogoEvent("Message", "go-bot")), id: "go-bot"},
		{name: "wuzapi JSON", body: wuzapiJSON, id: "shop", state: whatsmeowTemporaryBan, reason: whatsmeowReasonBan},
		{name: "wuzapi form", body: "instanceName=shop&jsonData=" + url.QueryEscape(`{"type":"Connected","event":{}}`) + "&userID=a1b2", id: "shop", state: whatsmeowLoggedIn},
		{name: "wuzapi Disconnected is no state", body: `{"type":"Disconnected","event":{},"instanceName":"shop"}`, id: "shop"},
		{name: "state event without instance", body: `{"event":"LoggedOut","data":{}}`, malformed: true},
		{name: "no event name", body: `{"event":{"Code":1},"instanceName":"shop"}`, malformed: true},
		{name: "form without jsonData", body: "instanceName=shop", malformed: true},
		{name: "garbage", body: "\x00\xff", malformed: true},
		{name: "JSON array", body: `[1]`, malformed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := decodeWhatsmeowNotification([]byte(tc.body), now)
			if tc.malformed {
				if err == nil {
					t.Fatalf("decoded %+v, want an error", n)
				}
				if strings.Contains(err.Error(), evogoTestToken) {
					t.Errorf("error %q quotes the body", err)
				}
				return
			}
			if err != nil || n.ID != tc.id || n.State != tc.state || n.Disconnect != tc.reason || !n.At.Equal(now) {
				t.Errorf("decoded %+v, %v; want ID %q state %q reason %q at arrival", n, err, tc.id, tc.state, tc.reason)
			}
		})
	}
}

// TestWhatsmeowNotificationCredentials: Evolution Go's events are taken
// with the instance's path secret only, wuzapi's with a valid HMAC of the
// body only; anything else is refused with 401, and an instance without
// credentials takes none.
func TestWhatsmeowNotificationCredentials(t *testing.T) {
	t.Parallel()
	e := newWhatsmeowWebhookEnv(t)
	wuzapi := []byte(`{"type":"LoggedOut","event":{},"instanceName":"wuzapi-shop","userID":"u1"}`)
	for _, tc := range []struct {
		name string
		send func() int
		want int
	}{
		{"Evolution Go, no secret", func() int { s, _ := e.post(t, "/webhook/whatsmeow", "", evogoEvent("LoggedOut", "go-bot")); return s }, 401},
		{"Evolution Go, wrong secret", func() int {
			s, _ := e.post(t, "/webhook/whatsmeow/"+whatsmeowTestPathSecret+"x", "", evogoEvent("LoggedOut", "go-bot"))
			return s
		}, 401},
		{"Evolution Go, path secret", func() int {
			s, _ := e.post(t, "/webhook/whatsmeow/"+whatsmeowTestPathSecret, "", evogoEvent("LoggedOut", "go-bot"))
			return s
		}, 200},
		{"wuzapi, no signature", func() int { s, _ := e.post(t, "/webhook/whatsmeow", "", wuzapi); return s }, 401},
		{"wuzapi, signed with another key", func() int { return postSigned(t, e, "another-key", "application/json", wuzapi) }, 401},
		{"wuzapi, the key as a bearer token", func() int { s, _ := e.post(t, "/webhook/whatsmeow", "Bearer "+whatsmeowTestHMACKey, wuzapi); return s }, 401},
		{"wuzapi, signed", func() int { return postSigned(t, e, whatsmeowTestHMACKey, "application/json", wuzapi) }, 200},
		{"instance without credentials", func() int {
			s, _ := e.post(t, "/webhook/whatsmeow/"+whatsmeowTestPathSecret, "", evogoEvent("LoggedOut", "bare"))
			return s
		}, 401},
		{"unknown instance, answered as refused", func() int {
			s, _ := e.post(t, "/webhook/whatsmeow/"+whatsmeowTestPathSecret, "", evogoEvent("LoggedOut", "nobody"))
			return s
		}, 401},
		{"malformed", func() int { s, _ := e.post(t, "/webhook/whatsmeow", "", []byte("{")); return s }, 400},
	} {
		if got := tc.send(); got != tc.want {
			t.Errorf("%s: HTTP %d, want %d", tc.name, got, tc.want)
		}
	}
	for _, name := range []string{"go-bot", "wuzapi-shop"} {
		if state, notified := e.shown(t, name); state != whatsmeowLoggedOut || !notified {
			t.Errorf("%s: state %q notified %v, want logged_out from the notification", name, state, notified)
		}
	}
	out := e.logs.String() + e.exposed(t)
	for _, secret := range []string{evogoTestToken, wuzapiTestToken, whatsmeowTestPathSecret, whatsmeowTestHMACKey} {
		checkNoLeak(t, "logs and exposition", out, secret)
	}
}

// TestWhatsmeowTemporaryBanOutlivesThePoll: a TemporaryBan shows at once;
// the next status call says disconnected (whatsmeow keeps IsLoggedIn),
// which replaces the state, but whatsapp_instance_disconnect_reason keeps
// temporary_ban until the instance is seen logged in.
func TestWhatsmeowTemporaryBanOutlivesThePoll(t *testing.T) {
	t.Parallel()
	e := newWhatsmeowWebhookEnv(t)
	e.scrape(t) // the first calls: logged in
	e.sim.Set(simulator.Whatsmeow, "wuzapi-shop", wuzapiTestToken, simulator.Behaviour{State: simulator.WhatsmeowTemporaryBan})
	// The notification comes a second after the last call, so that the
	// call it makes due can be made at once.
	setLastCallAgo(t, e.c, "wuzapi-shop", callSpacing)
	body := []byte(`{"type":"TemporaryBan","event":{"Code":101,"Expire":86400000000000},"instanceName":"wuzapi-shop","userID":"u1"}`)
	if s := postSigned(t, e, whatsmeowTestHMACKey, "application/json", body); s != 200 {
		t.Fatalf("TemporaryBan: HTTP %d, want 200", s)
	}
	const reason = `whatsapp_instance_disconnect_reason{provider="whatsmeow",name="wuzapi-shop",reason="temporary_ban"} 1`
	if state, notified := e.shown(t, "wuzapi-shop"); state != whatsmeowTemporaryBan || !notified {
		t.Errorf("after the notification: state %q notified %v, want temporary_ban from it", state, notified)
	}
	text := e.scrape(t) // the call the notification made due
	if state, notified := stateIn(text, "wuzapi-shop"); state != whatsmeowDisconnected || notified {
		t.Errorf("after the next call: state %q notified %v, want disconnected from the call", state, notified)
	}
	if !strings.Contains(text, reason) {
		t.Errorf("after the next call, the ban is not the disconnection's reason:\n%s", text)
	}
	e.sim.Set(simulator.Whatsmeow, "wuzapi-shop", wuzapiTestToken, simulator.Behaviour{State: "logged_in"})
	connected := []byte(`{"type":"Connected","event":{},"instanceName":"wuzapi-shop","userID":"u1"}`)
	if s := postSigned(t, e, whatsmeowTestHMACKey, "application/json", connected); s != 200 {
		t.Fatalf("Connected: HTTP %d, want 200", s)
	}
	if text := e.exposed(t); strings.Contains(text, reason) {
		t.Errorf("logged in again, the ban is still the reason:\n%s", text)
	}
}
