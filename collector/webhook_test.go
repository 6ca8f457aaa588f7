package collector

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

func TestDecodeNotifications(t *testing.T) {
	t.Parallel()
	received := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		provider, fixture string
		want              Notification // ID and State; zero for a malformed body
		malformed         bool
	}{
		{"greenapi", "state_blocked.json", Notification{ID: "1101000001", State: "blocked", At: time.Unix(1586700690, 0), Absolute: true}, false},
		{"greenapi", "state_notAuthorized.json", Notification{ID: "1101000001", State: "notAuthorized", At: time.Unix(1586700690, 0), Absolute: true}, false},
		{"greenapi", "state_new_value.json", Notification{ID: "1101000001", State: "pendingPassword", At: time.Unix(1586700690, 0), Absolute: true}, false},
		{"greenapi", "incoming_message.json", Notification{ID: "1101000001"}, false},
		{"greenapi", "socket_status.json", Notification{ID: "1101000001"}, false},
		{"greenapi", "no_type.json", Notification{}, true},
		{"greenapi", "bad_id.json", Notification{}, true},
		{"greenapi", "no_timestamp.json", Notification{}, true},
		{"greenapi", "no_state.json", Notification{}, true},
		{"greenapi", "two_objects.txt", Notification{}, true},
		{"greenapi", "form.txt", Notification{}, true},
		{"greenapi", "null.json", Notification{}, true},
		{"greenapi", "array.json", Notification{}, true},
		{"evolution", "connection_open.json", Notification{ID: "sales-bot", State: "open", At: time.Date(2025, 1, 20, 10, 0, 0, 0, time.UTC)}, false},
		{"evolution", "connection_refused.json", Notification{ID: "sales-bot", State: "close", At: time.Date(2025, 1, 20, 10, 0, 1, 0, time.UTC)}, false},
		{"evolution", "connection_connecting.json", Notification{ID: "sales-bot", State: "connecting", At: time.Date(2025, 1, 20, 10, 0, 2, 0, time.UTC)}, false},
		{"evolution", "messages_upsert.json", Notification{ID: "sales-bot", At: received}, false},
		{"evolution", "no_state.json", Notification{}, true},
		{"evolution", "no_instance.json", Notification{}, true},
		{"evolution", "no_event.json", Notification{}, true},
		{"evolution", "truncated.txt", Notification{}, true},
	} {
		t.Run(tc.provider+"/"+tc.fixture, func(t *testing.T) {
			t.Parallel()
			body := readFixture(t, filepath.Join("webhook", tc.provider), tc.fixture)
			got, err := providerOf(tc.provider).Webhook.Decode(body, received)
			if tc.malformed {
				if err == nil {
					t.Fatalf("decoded %+v, want an error", got)
				}
				if strings.Contains(err.Error(), "EVOLUTION-INSTANCE-TOKEN") || strings.Contains(err.Error(), "sales-bot") {
					t.Errorf("error quotes the body: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != tc.want.ID || got.State != tc.want.State || !got.At.Equal(tc.want.At) || got.Absolute != tc.want.Absolute {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNotificationUpdatesStateAtOnce(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	if got, notified := e.state(t, "shop"); got != "authorized" || notified {
		t.Fatalf("after the first poll: state %q notified %v, want authorized from a poll", got, notified)
	}
	callsBefore := e.sim.Calls("greenapi", "1101000001")
	e.sim.Set("greenapi", "1101000001", "api-token-1", simulator.Behaviour{State: "blocked"})
	setLastCallAgo(t, e.c, "shop", 2*time.Second)
	status, answer := e.post(t, "/webhook/greenapi", "Bearer "+testWebhookToken, greenAPIState("1101000001", "blocked", time.Now()))
	if status != http.StatusOK || answer != "accepted\n" {
		t.Fatalf("got %d %q, want 200 accepted", status, answer)
	}
	// MinInterval is an hour: no poll can have brought it.
	if got, notified := e.shown(t, "shop"); got != "blocked" || !notified {
		t.Errorf("state %q notified %v, want blocked from the notification", got, notified)
	}
	if n := e.sim.Calls("greenapi", "1101000001"); n != callsBefore {
		t.Errorf("the notification caused %d calls", n-callsBefore)
	}
	if got := testutil.ToFloat64(providerMetricsOf(e.c).notifications.WithLabelValues("greenapi", "accepted")); got != 1 {
		t.Errorf("whatsapp_exporter_webhook_notifications_total{accepted} = %v, want 1", got)
	}
	// The next scrape confirms it with a call, the provider's answer.
	if got, notified := e.state(t, "shop"); got != "blocked" || notified {
		t.Errorf("next scrape: state %q notified %v, want blocked from the call", got, notified)
	}
	if n := e.sim.Calls("greenapi", "1101000001"); n != callsBefore+1 {
		t.Errorf("the next scrape made %d calls, want 1", n-callsBefore)
	}
	text := e.scrape(t)
	for _, want := range []string{
		`whatsapp_up{provider="greenapi",name="shop"} 1`,
		`whatsapp_webhook_notifications_total{provider="greenapi",name="shop",outcome="accepted"} 1`,
		`whatsapp_instance_state_from_notification{provider="greenapi",name="no-token"} 0`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

// TestNotificationNeverHidesAPoll: a notification that the provider's state
// request contradicts (sent late, by a server that pushes attempts, or
// forged by someone who holds the webhook credential) shows until the next
// scrape, whose call replaces it; a stream of them cannot keep it.
func TestNotificationNeverHidesAPoll(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	e.sim.Set("greenapi", "1101000001", "api-token-1", simulator.Behaviour{State: "blocked"})
	e.state(t, "shop")
	for i := range 5 {
		setLastCallAgo(t, e.c, "shop", 2*time.Second)
		if _, answer := e.post(t, "/webhook/greenapi", testWebhookToken, greenAPIState("1101000001", "authorized", time.Now().Add(2*time.Second))); answer != "accepted\n" {
			t.Fatalf("notification %d: %q", i, answer)
		}
		if got, notified := e.state(t, "shop"); got != "blocked" || notified {
			t.Fatalf("scrape %d after a notification of authorized: %q (notified %v), want blocked from the call", i, got, notified)
		}
	}
}

// TestNotificationDueCallRespectsLimits: the call a notification makes due
// waits one second after the last call (GREEN-API's rate limit) and for a
// Retry-After.
func TestNotificationDueCallRespectsLimits(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	e.state(t, "shop")
	calls := e.sim.Calls("greenapi", "1101000001")
	e.post(t, "/webhook/greenapi", testWebhookToken, greenAPIState("1101000001", "sleepMode", time.Now().Add(2*time.Second)))
	if got, _ := e.state(t, "shop"); got != "sleepMode" || e.sim.Calls("greenapi", "1101000001") != calls {
		t.Errorf("within a second of the last call: state %q and %d calls, want the notification and none", got, e.sim.Calls("greenapi", "1101000001")-calls)
	}
	holdUntil(t, e.c, "shop", time.Now().Add(time.Hour))
	setLastCallAgo(t, e.c, "shop", 2*time.Second)
	e.post(t, "/webhook/greenapi", testWebhookToken, greenAPIState("1101000001", "starting", time.Now().Add(3*time.Second)))
	if got, _ := e.state(t, "shop"); got != "starting" || e.sim.Calls("greenapi", "1101000001") != calls {
		t.Errorf("during a Retry-After: state %q and %d calls, want the notification and none", got, e.sim.Calls("greenapi", "1101000001")-calls)
	}
}

func TestNextPollReplacesNotifiedState(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	e.state(t, "shop") // first poll
	setLastCallAgo(t, e.c, "shop", 2*time.Second)
	if status, _ := e.post(t, "/webhook/greenapi", testWebhookToken, greenAPIState("1101000001", "yellowCard", time.Now())); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	// The poll is the primary signal: once due, its answer wins.
	if got, notified := e.state(t, "shop"); got != "authorized" || notified {
		t.Errorf("after the next poll: state %q notified %v, want authorized from the poll", got, notified)
	}
}

// TestEvolutionAttemptDoesNotEndClose: Evolution API pushes connecting for
// every attempt to reconnect while connectionState says close: that does
// not replace close; open does.
func TestEvolutionAttemptDoesNotEndClose(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	e.sim.Set("evolution", "sales-bot", "EVOLUTION-INSTANCE-TOKEN-0001", simulator.Behaviour{State: "close"})
	e.state(t, "bot")
	now := time.Now()
	for i, tc := range []struct{ state, outcome, shown string }{
		{"connecting", OutcomeStale, "close"},
		{"connecting", OutcomeStale, "close"},
		{"open", OutcomeAccepted, "open"},
		{"connecting", OutcomeAccepted, "connecting"},
	} {
		_, answer := e.post(t, "/webhook/evolution", testWebhookToken, evolutionEvent(tc.state, now.Add(time.Duration(i+1)*time.Second)))
		if got, _ := e.shown(t, "bot"); answer != tc.outcome+"\n" || got != tc.shown {
			t.Errorf("%d: %s answered %q, shows %q; want %s and %s", i, tc.state, answer, got, tc.outcome, tc.shown)
		}
	}
}

// TestFarFutureNotificationDoesNotPoison: a timestamp far ahead of the
// exporter's clock does not make later notifications stale for longer
// than a minute.
func TestFarFutureNotificationDoesNotPoison(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	e.state(t, "shop")
	now := time.Now()
	e.post(t, "/webhook/greenapi", testWebhookToken, greenAPIState("1101000001", "blocked", now.Add(365*24*time.Hour)))
	if _, answer := e.post(t, "/webhook/greenapi", testWebhookToken, greenAPIState("1101000001", "authorized", now.Add(2*time.Minute))); answer != "accepted\n" {
		t.Errorf("a notification two minutes later after one a year ahead: %q, want accepted", answer)
	}
}

// TestEvolutionClockGoesBack: Evolution API writes its server's local
// time; at the end of daylight saving time it goes back an hour. Its
// events after the shift are older than the last one before it: they
// are stale only while they arrive within maxClockSkew of that one, not
// for the hour. The times are explicit.
func TestEvolutionClockGoesBack(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	e.scrape(t)
	tg := targetNamed(t, e.c, "bot")
	recv := time.Now().Add(time.Second)
	local := recv.Add(3 * time.Hour) // the server's local time, marked UTC
	event := func(state string, at time.Time) Notification {
		return Notification{ID: "sales-bot", State: state, At: at}
	}
	if got := notifyTarget(tg, event("close", local), recv); got != OutcomeAccepted {
		t.Fatalf("before the shift: %s", got)
	}
	// The clock goes back an hour; a retry of an older event in between
	// (arriving at once) is still judged by the server's times.
	if got := notifyTarget(tg, event("open", local.Add(-time.Second)), recv.Add(time.Second)); got != OutcomeStale {
		t.Errorf("an older event arriving a second later: %s, want stale", got)
	}
	shifted := local.Add(-time.Hour)
	if got := notifyTarget(tg, event("open", shifted.Add(2*time.Minute)), recv.Add(2*time.Minute)); got != OutcomeAccepted {
		t.Errorf("an event two minutes after the clock went back an hour: %s, want accepted", got)
	}
	if got, _ := e.shown(t, "bot"); got != "open" {
		t.Errorf("bot shows %q, want open", got)
	}
	if got := notifyTarget(tg, event("close", shifted.Add(2*time.Minute+time.Second)), recv.Add(2*time.Minute+time.Second)); got != OutcomeAccepted {
		t.Errorf("the next event on the shifted clock: %s, want accepted", got)
	}
}

// TestConcurrentNotificationsKeepTheSendersOrder: two requests received
// at once are applied in either order; the one received a moment earlier
// and applied later is still ordered by the sender's times.
func TestConcurrentNotificationsKeepTheSendersOrder(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	e.scrape(t)
	tg := targetNamed(t, e.c, "bot")
	recv := time.Now().Add(time.Second)
	if got := notifyTarget(tg, Notification{ID: "sales-bot", State: "open", At: recv.Add(19 * time.Second)}, recv); got != OutcomeAccepted {
		t.Fatalf("the newer event: %s", got)
	}
	if got := notifyTarget(tg, Notification{ID: "sales-bot", State: "close", At: recv.Add(5 * time.Second)}, recv.Add(-10*time.Millisecond)); got != OutcomeStale {
		t.Errorf("an older event received 10 ms earlier, applied later: %s, want stale", got)
	}
}

// TestForgedTimestampsHoldNothing: a stream of notifications with forged
// times (far ahead, for both providers; Evolution API's date_time is not
// covered by its JWT) holds a genuine notification stale for at most
// maxClockSkew after the last of them.
func TestForgedTimestampsHoldNothing(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	e.scrape(t)
	recv := time.Now().Add(time.Second)
	for _, tc := range []struct {
		name, id string
		absolute bool
		forged   string
		genuine  string
	}{
		{"shop", "1101000001", true, "authorized", "blocked"},
		{"bot", "sales-bot", false, "open", "close"},
	} {
		tg := targetNamed(t, e.c, tc.name)
		at := recv
		for i := range 20 {
			at = recv.Add(time.Duration(i) * 10 * time.Second)
			forged := Notification{ID: tc.id, State: tc.forged, At: at.AddDate(100, 0, i), Absolute: tc.absolute}
			notifyTarget(tg, forged, at)
		}
		genuine := Notification{ID: tc.id, State: tc.genuine, At: at.Add(maxClockSkew + time.Second), Absolute: tc.absolute}
		if got := notifyTarget(tg, genuine, at.Add(maxClockSkew+time.Second)); got != OutcomeAccepted {
			t.Errorf("%s: a genuine notification %s after a stream of forged times: %s, want accepted", tc.name, maxClockSkew+time.Second, got)
		}
		if got, _ := e.shown(t, tc.name); got != tc.genuine {
			t.Errorf("%s shows %q, want %q", tc.name, got, tc.genuine)
		}
	}
}

// TestNotificationStreamCannotMaskPolls: someone who holds an instance's
// webhook credentials streams notifications of a working state, with
// times from the future, several between every two scrapes. Every
// scrape shows what the provider's state request says: blocked (GREEN-API),
// close (Evolution API).
func TestNotificationStreamCannotMaskPolls(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	e.sim.Set("greenapi", "1101000001", "api-token-1", simulator.Behaviour{State: "blocked"})
	e.sim.Set("evolution", "sales-bot", "EVOLUTION-INSTANCE-TOKEN-0001", simulator.Behaviour{State: "close"})
	e.scrape(t)
	for scrape := range 8 {
		// The stream's notifications come at least a second after the
		// last call; so does the scrape.
		setLastCallAgo(t, e.c, "shop", callSpacing)
		setLastCallAgo(t, e.c, "bot", callSpacing)
		for k := range 3 {
			at := time.Now().Add(time.Duration(scrape*3+k+1) * time.Second)
			e.post(t, "/webhook/greenapi", testWebhookToken, greenAPIState("1101000001", "authorized", at.Add(time.Hour)))
			e.post(t, "/webhook/evolution", testWebhookToken, evolutionEvent("open", at.Add(time.Hour)))
		}
		text := e.scrape(t)
		for name, want := range map[string]string{"shop": "blocked", "bot": "close"} {
			if got, notified := stateIn(text, name); got != want || notified {
				t.Errorf("scrape %d: %s shows %q (notified %v), want %s from the call", scrape, name, got, notified, want)
			}
		}
	}
}

// TestDisconnectReason: Evolution API's statusReason names why an
// instance closed, until it works again.
func TestDisconnectReason(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	e.state(t, "bot")
	now := time.Now()
	reason := func() string {
		t.Helper()
		for _, line := range strings.Split(exposition(t, e.c), "\n") {
			if strings.HasPrefix(line, `whatsapp_instance_disconnect_reason{provider="evolution",name="bot",`) {
				return line
			}
		}
		return ""
	}
	for i, tc := range []struct {
		body []byte
		want string
	}{
		{evolutionEventReason("close", 403, now.Add(time.Second)), `whatsapp_instance_disconnect_reason{provider="evolution",name="bot",reason="banned"} 1`},
		{evolutionEventReason("open", 200, now.Add(2*time.Second)), ""},
		{evolutionEventReason("close", 401, now.Add(3*time.Second)), `whatsapp_instance_disconnect_reason{provider="evolution",name="bot",reason="logged_out"} 1`},
		{evolutionEventReason("connecting", 200, now.Add(4*time.Second)), `whatsapp_instance_disconnect_reason{provider="evolution",name="bot",reason="logged_out"} 1`},
		{evolutionEventReason("refused", 428, now.Add(5*time.Second)), `whatsapp_instance_disconnect_reason{provider="evolution",name="bot",reason="qr_expired"} 1`},
		{evolutionEventReason("close", 499, now.Add(6*time.Second)), `whatsapp_instance_disconnect_reason{provider="evolution",name="bot",reason="other"} 1`},
	} {
		if _, answer := e.post(t, "/webhook/evolution", testWebhookToken, tc.body); answer != "accepted\n" && answer != "stale\n" {
			t.Fatalf("%d: %q", i, answer)
		}
		if got := reason(); got != tc.want {
			t.Errorf("%d: %q, want %q", i, got, tc.want)
		}
	}
	// A call that finds it working ends it too.
	expireResult(t, e.c, "bot")
	e.scrape(t)
	if got := reason(); got != "" {
		t.Errorf("after a call found it open: %q", got)
	}
}

func TestNotificationAnswers(t *testing.T) {
	t.Parallel()
	type notificationCase struct {
		name, path, auth string
		body             []byte
		status           int
		outcome          string
		instance, state  string // the instance's state afterwards
	}
	// The cases sent at now.
	cases := func(t *testing.T, now time.Time) []notificationCase {
		valid := map[string]any{"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "app": "evolution", "action": "webhook"}
		expired := map[string]any{"iat": now.Add(-time.Hour).Unix(), "exp": now.Add(-50 * time.Minute).Unix()}
		noExp := map[string]any{"iat": now.Unix()}
		noneAlg := "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + strings.TrimPrefix(strings.Split(jwt(testJWTKey, valid), ".")[1], "") + "."
		return []notificationCase{
			{"token with Bearer", "/webhook/greenapi", "Bearer " + testWebhookToken, greenAPIState("1101000001", "blocked", now), 200, OutcomeAccepted, "shop", "blocked"},
			{"token without Bearer", "/webhook/greenapi", testWebhookToken, greenAPIState("1101000001", "blocked", now), 200, OutcomeAccepted, "shop", "blocked"},
			{"lower-case bearer", "/webhook/greenapi", "bearer " + testWebhookToken, greenAPIState("1101000001", "blocked", now), 200, OutcomeAccepted, "shop", "blocked"},
			{"path suffix", "/webhook/greenapi/anything", testWebhookToken, greenAPIState("1101000001", "sleepMode", now), 200, OutcomeAccepted, "shop", "sleepMode"},
			{"wrong token", "/webhook/greenapi", "Bearer " + testWebhookToken + "x", greenAPIState("1101000001", "blocked", now), 200, OutcomeUnauthorized, "shop", "authorized"},
			{"token prefix", "/webhook/greenapi", testWebhookToken[:10], greenAPIState("1101000001", "blocked", now), 200, OutcomeUnauthorized, "shop", "authorized"},
			{"no token", "/webhook/greenapi", "", greenAPIState("1101000001", "blocked", now), 200, OutcomeUnauthorized, "shop", "authorized"},
			{"instance without webhook_token", "/webhook/greenapi", "", greenAPIState("1101000002", "blocked", now), 200, OutcomeUnauthorized, "no-token", "authorized"},
			{"another instance's token", "/webhook/greenapi", testWebhookToken, greenAPIState("1101000002", "blocked", now), 200, OutcomeUnauthorized, "no-token", "authorized"},
			{"unknown instance", "/webhook/greenapi", testWebhookToken, greenAPIState("1101009999", "blocked", now), 200, OutcomeUnknownInstance, "shop", "authorized"},
			{"other typeWebhook, no token", "/webhook/greenapi", "", readFixture(t, "webhook/greenapi", "incoming_message.json"), 200, OutcomeIgnored, "shop", "authorized"},
			{"malformed", "/webhook/greenapi", testWebhookToken, []byte(`{"typeWebhook":`), 200, OutcomeMalformed, "shop", "authorized"},
			{"empty body", "/webhook/greenapi", testWebhookToken, nil, 200, OutcomeMalformed, "shop", "authorized"},
			{"too large", "/webhook/greenapi", testWebhookToken, append(greenAPIState("1101000001", "blocked", now)[:1], []byte(`"pad":"`+strings.Repeat("x", MaxNotificationBytes)+`",`+string(greenAPIState("1101000001", "blocked", now)[1:]))...), 200, OutcomeTooLarge, "shop", "authorized"},
			{"state the exporter does not know", "/webhook/greenapi", testWebhookToken, greenAPIState("1101000001", "pendingPassword", now), 200, OutcomeAccepted, "shop", "unknown"},
			{"Evolution header token", "/webhook/evolution", "Bearer " + testWebhookToken, evolutionEvent("close", now), 200, OutcomeAccepted, "bot", "close"},
			{"Evolution JWT, by events", "/webhook/evolution/connection-update", jwt(testJWTKey, valid), evolutionEvent("connecting", now), 200, OutcomeAccepted, "bot", "connecting"},
			{"Evolution refused is close", "/webhook/evolution", jwt(testJWTKey, valid), evolutionEvent("refused", now), 200, OutcomeAccepted, "bot", "close"},
			{"Evolution JWT of another key", "/webhook/evolution", jwt(testJWTKey+"x", valid), evolutionEvent("close", now), 401, OutcomeUnauthorized, "bot", "open"},
			{"Evolution expired JWT", "/webhook/evolution", jwt(testJWTKey, expired), evolutionEvent("close", now), 401, OutcomeUnauthorized, "bot", "open"},
			{"Evolution JWT without exp", "/webhook/evolution", jwt(testJWTKey, noExp), evolutionEvent("close", now), 401, OutcomeUnauthorized, "bot", "open"},
			{"Evolution unsigned JWT", "/webhook/evolution", noneAlg, evolutionEvent("close", now), 401, OutcomeUnauthorized, "bot", "open"},
			{"Evolution key as token", "/webhook/evolution", "Bearer " + testJWTKey, evolutionEvent("close", now), 401, OutcomeUnauthorized, "bot", "open"},
			{"Evolution apikey is not a credential", "/webhook/evolution", "Bearer EVOLUTION-INSTANCE-TOKEN-0001", evolutionEvent("close", now), 401, OutcomeUnauthorized, "bot", "open"},
			{"Evolution other event", "/webhook/evolution/messages-upsert", "", readFixture(t, "webhook/evolution", "messages_upsert.json"), 200, OutcomeIgnored, "bot", "open"},
			{"Evolution malformed", "/webhook/evolution", jwt(testJWTKey, valid), readFixture(t, "webhook/evolution", "no_state.json"), 400, OutcomeMalformed, "bot", "open"},
			{"GREEN-API body at the Evolution path", "/webhook/evolution", testWebhookToken, greenAPIState("1101000001", "blocked", now), 400, OutcomeMalformed, "shop", "authorized"},
			{"Evolution too large", "/webhook/evolution", testWebhookToken, append([]byte(`{"pad":"`+strings.Repeat("x", MaxNotificationBytes)+`",`), evolutionEvent("close", now)[1:]...), 422, OutcomeTooLarge, "bot", "open"},
			{"Evolution unknown instance", "/webhook/evolution", testWebhookToken, []byte(strings.ReplaceAll(string(evolutionEvent("close", now)), "sales-bot", "other-bot")), 401, OutcomeUnknownInstance, "bot", "open"},
			// A secret in the URL's path: the only credential of Evolution
			// API 1.8 and of every global webhook.
			{"Evolution path secret", "/webhook/evolution/" + testPathSecret, "", evolutionEvent("close", now), 200, OutcomeAccepted, "bot", "close"},
			{"Evolution path secret, by events", "/webhook/evolution/" + testPathSecret + "/connection-update", "", evolutionEvent("close", now), 200, OutcomeAccepted, "bot", "close"},
			{"Evolution wrong path secret", "/webhook/evolution/" + testPathSecret + "x/connection-update", "", evolutionEvent("close", now), 401, OutcomeUnauthorized, "bot", "open"},
			{"Evolution path secret after the event", "/webhook/evolution/connection-update/" + testPathSecret, "", evolutionEvent("close", now), 401, OutcomeUnauthorized, "bot", "open"},
			{"Evolution path secret as header", "/webhook/evolution", "Bearer " + testPathSecret, evolutionEvent("close", now), 401, OutcomeUnauthorized, "bot", "open"},
			// Evolution API 2.2.x sends the webhook's headers as they are:
			// its jwt_key travels in the clear.
			{"Evolution 2.2 jwt_key header", "/webhook/evolution", "jwt_key: " + testJWTKey, evolutionEvent("close", now), 401, OutcomeKeyInHeader, "bot", "open"},
			{"Evolution 2.2 jwt_key header with a good token", "/webhook/evolution/" + testPathSecret, "jwt_key: " + testJWTKey, evolutionEvent("close", now), 401, OutcomeKeyInHeader, "bot", "open"},
		}
	}
	for i, tc := range cases(t, time.Now()) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newWebhookEnv(t, "")
			e.scrape(t) // first poll
			// Sent after the first poll: a notification from before it
			// would be stale.
			tc := cases(t, time.Now().Add(2*time.Second))[i]
			status, answer := e.post(t, tc.path, tc.auth, tc.body)
			// An unknown instance is answered as a refused credential
			// (TestAnswersDoNotTellWatchedIDs), and counted apart.
			want := tc.outcome
			if want == OutcomeUnknownInstance {
				want = OutcomeUnauthorized
			}
			if status != tc.status || answer != want+"\n" {
				t.Errorf("got %d %q, want %d %q", status, answer, tc.status, want)
			}
			if got, _ := e.shown(t, tc.instance); got != tc.state {
				t.Errorf("%s is %q, want %q", tc.instance, got, tc.state)
			}
			provider := strings.Split(tc.path, "/")[2]
			if got := testutil.ToFloat64(providerMetricsOf(e.c).notifications.WithLabelValues(provider, tc.outcome)); got != 1 {
				t.Errorf("whatsapp_exporter_webhook_notifications_total{%s,%s} = %v, want 1", provider, tc.outcome, got)
			}
			checkNoLeak(t, "logs", e.logs.String(), "EVOLUTION-INSTANCE-TOKEN-0001")
			checkNoLeak(t, "logs", e.logs.String(), testWebhookToken)
			checkNoLeak(t, "logs", e.logs.String(), testJWTKey)
			checkNoLeak(t, "logs", e.logs.String(), testPathSecret)
		})
	}
}

// TestAnswersDoNotTellWatchedIDs: a caller without credentials gets the
// same answer for an instance the exporter watches and for one it does
// not, so it cannot learn which IDs are watched.
func TestAnswersDoNotTellWatchedIDs(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	now := time.Now().Add(2 * time.Second)
	for _, tc := range []struct{ path, watched, unknown string }{
		{"/webhook/greenapi", string(greenAPIState("1101000001", "blocked", now)), string(greenAPIState("1101009999", "blocked", now))},
		{"/webhook/evolution", string(evolutionEvent("close", now)), strings.ReplaceAll(string(evolutionEvent("close", now)), "sales-bot", "other-bot")},
		{"/webhook/evolution/" + strings.Repeat("p", 20), string(evolutionEvent("close", now)), strings.ReplaceAll(string(evolutionEvent("close", now)), "sales-bot", "other-bot")},
	} {
		for _, auth := range []string{"", "Bearer a-guess"} {
			ws, wh, wa := testtool.Notify(t, nil, e.receiver+tc.path, auth, []byte(tc.watched))
			us, uh, ua := testtool.Notify(t, nil, e.receiver+tc.path, auth, []byte(tc.unknown))
			wh.Del("Date")
			uh.Del("Date")
			if ws != us || wa != ua || fmt.Sprint(wh) != fmt.Sprint(uh) {
				t.Errorf("%s, Authorization %q: a watched ID is answered %d %v %q, an unknown one %d %v %q", tc.path, auth, ws, wh, wa, us, uh, ua)
			}
		}
	}
}

func TestStaleNotificationsChangeNothing(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	e.scrape(t)
	now := time.Now()
	send := func(state string, at time.Time) string {
		t.Helper()
		_, answer := e.post(t, "/webhook/greenapi", testWebhookToken, greenAPIState("1101000001", state, at))
		return strings.TrimSpace(answer)
	}
	// Sent before the poll that brought the current state started.
	if got := send("blocked", now.Add(-time.Minute)); got != OutcomeStale {
		t.Errorf("notification older than the last poll: %s, want stale", got)
	}
	if got := send("notAuthorized", now.Add(time.Second)); got != OutcomeAccepted {
		t.Fatalf("newer notification: %s, want accepted", got)
	}
	if got := send("notAuthorized", now.Add(time.Second)); got != OutcomeStale {
		t.Errorf("duplicate: %s, want stale", got)
	}
	if got := send("authorized", now); got != OutcomeStale {
		t.Errorf("out of order: %s, want stale", got)
	}
	if got, _ := e.shown(t, "shop"); got != "notAuthorized" {
		t.Errorf("state %q, want notAuthorized", got)
	}
	if text := e.exposed(t); !strings.Contains(text, `whatsapp_webhook_notifications_total{provider="greenapi",name="shop",outcome="stale"} 3`+"\n") {
		t.Errorf("stale notifications not counted:\n%s", text)
	}
	// Evolution API's times only order its own events.
	if _, a := e.post(t, "/webhook/evolution", testWebhookToken, evolutionEvent("close", now.Add(-time.Hour))); strings.TrimSpace(a) != OutcomeAccepted {
		t.Errorf("Evolution event with an old date_time: %s, want accepted (its clock is not ours)", a)
	}
	if _, a := e.post(t, "/webhook/evolution", testWebhookToken, evolutionEvent("open", now.Add(-2*time.Hour))); strings.TrimSpace(a) != OutcomeStale {
		t.Errorf("Evolution event older than the last: %s, want stale", a)
	}
}

func TestNotificationDuringCallWins(t *testing.T) {
	t.Parallel()
	// A call that started before the notification was sent may bring the
	// state from before the change: it must not undo the notification.
	// The times are explicit: the notification is sent 1.1 s after the
	// call started (the providers' timestamps count seconds), and the
	// calls end after it.
	e := newWebhookEnv(t, "")
	e.scrape(t)
	tg := targetNamed(t, e.c, "shop")
	started := time.Now()
	sent := started.Add(1100 * time.Millisecond)
	if got := notifyTarget(tg, Notification{ID: "1101000001", State: "blocked", At: sent, Absolute: true}, sent); got != OutcomeAccepted {
		t.Fatalf("notify: %s", got)
	}
	recordCall(tg, "authorized", "", started, sent.Add(100*time.Millisecond))
	if got, notified := e.shown(t, "shop"); got != "blocked" || !notified {
		t.Errorf("state %q notified %v, want blocked from the notification", got, notified)
	}
	// Such a call still says whether the calls work.
	recordCall(tg, "", ReasonUnauthorized, started, sent.Add(200*time.Millisecond))
	if text := exposition(t, e.c); !strings.Contains(text, `whatsapp_up{provider="greenapi",name="shop"} 0`+"\n") || !strings.Contains(text, `name="shop",state="blocked"} 1`) {
		t.Errorf("a failing call during the notification: want whatsapp_up 0 and the state kept:\n%s", text)
	}
	later := sent.Add(time.Second)
	recordCall(tg, "authorized", "", later, later)
	if got, notified := e.shown(t, "shop"); got != "authorized" || notified {
		t.Errorf("after a later call: state %q notified %v, want authorized from the poll", got, notified)
	}
}

func TestUnknownInstancesLoggedOnce(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	for range 3 {
		e.post(t, "/webhook/greenapi", testWebhookToken, greenAPIState("1101009999", "blocked", time.Now()))
		e.post(t, "/webhook/greenapi", "", greenAPIState("1101000001", "blocked", time.Now()))
	}
	if n := strings.Count(e.logs.String(), "1101009999"); n != 1 {
		t.Errorf("unknown instance logged %d times, want once:\n%s", n, e.logs)
	}
	if n := strings.Count(e.logs.String(), "Refused a notification"); n != 1 {
		t.Errorf("refused notification logged %d times, want once:\n%s", n, e.logs)
	}
}

// TestUnknownInstancesLogRateLimited: IDs come from anyone. A flood of
// them is logged at a bounded rate, and does not end the log: an ID
// after the flood is logged, with how many lines were held back; an ID
// logged is logged again after unknownTTL; a long ID is shortened.
func TestUnknownInstancesLogRateLimited(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 5000 {
		logUnknownNotification(e.c, "greenapi", strconv.Itoa(1109000000+i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	lines := func() int { return strings.Count(e.logs.String(), "does not watch") }
	if n := lines(); n != unknownLogBurst {
		t.Errorf("5 000 unknown IDs in 5 s: %d lines, want %d", n, unknownLogBurst)
	}
	if n := unknownIDsRemembered(e.c); n > maxUnknownIDsRemembered {
		t.Errorf("%d unknown IDs remembered, want at most %d", n, maxUnknownIDsRemembered)
	}
	later := t0.Add(10 * time.Minute)
	logUnknownNotification(e.c, "greenapi", "1109999999", later)
	if !strings.Contains(e.logs.String(), "1109999999") || !strings.Contains(e.logs.String(), "held_back=4990") {
		t.Errorf("an unknown ID after the flood is not logged with the lines held back:\n%s", lastLine(e.logs.String()))
	}
	logUnknownNotification(e.c, "greenapi", "1109999999", later.Add(time.Minute))
	logUnknownNotification(e.c, "greenapi", "1109999999", later.Add(unknownTTL+time.Minute))
	if n := strings.Count(e.logs.String(), "1109999999"); n != 2 {
		t.Errorf("an unknown ID logged %d times in an hour and a minute, want 2", n)
	}
	long := strings.Repeat("n", 65000)
	logUnknownNotification(e.c, "evolution", long, later.Add(2*unknownTTL))
	if last := lastLine(e.logs.String()); len(last) > 400 || !strings.Contains(last, strings.Repeat("n", maxLoggedIDLen)+"…") {
		t.Errorf("a 65 000-character ID logged as a line of %d bytes, want it shortened to %d characters", len(last), maxLoggedIDLen)
	}
}

// lastLine is the last line of a log.
func lastLine(log string) string {
	log = strings.TrimSuffix(log, "\n")
	return log[strings.LastIndexByte(log, '\n')+1:]
}

// TestUnknownInstancesMemoryBounded: 1 000 notifications naming unknown
// Evolution API instances with 65 KB names, sent without a credential,
// keep no more than a few bytes each.
func TestUnknownInstancesMemoryBounded(t *testing.T) {
	e := newWebhookEnv(t, "")
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	name := strings.Repeat("x", 65000)
	for i := range 1000 {
		body := fmt.Appendf(nil, `{"event":"connection.update","instance":"%s%04d","data":{"state":"open"}}`, name, i)
		if status, answer := e.post(t, "/webhook/evolution", "", body); status != http.StatusUnauthorized || answer != "unauthorized\n" {
			t.Fatalf("notification %d: %d %q, want 401 unauthorized", i, status, answer)
		}
	}
	after := heap()
	if grown := int64(after) - int64(before); grown > 8<<20 {
		t.Errorf("1 000 unknown 65 KB names keep %d MB, want under 8", grown>>20)
	}
	if got := testutil.ToFloat64(providerMetricsOf(e.c).notifications.WithLabelValues("evolution", OutcomeUnknownInstance)); got != 1000 {
		t.Errorf("counted %v unknown_instance, want 1000", got)
	}
}

func TestWebhookConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "wh"), []byte(testWebhookToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ yml, wantErr string }{
		{instanceYAML("greenapi", "id_instance", "1", "api_token", "t", "webhook_token_file", "wh"), ""},
		{instanceYAML("greenapi", "id_instance", "1", "api_token", "t", "webhook_token", "a", "webhook_token_file", "wh"), `field webhook_token: set webhook_token or webhook_token_file, not both`},
		{instanceYAML("greenapi", "id_instance", "1", "api_token", "t", "webhook_token_file", "missing"), `field webhook_token_file:`},
		{instanceYAML("greenapi", "id_instance", "1", "api_token", "t", "webhook_jwt_key", "k"), `field webhook_jwt_key not found`},
		{instanceYAML("wachat", "instance_name", "x", "api_key", "k", "webhook_token", "a"), `field webhook_token not found`},
		{instanceYAML("evolution", "api_url", "http://e", "instance_name", "x", "api_key", "k", "webhook_jwt_key_file", "/dev/zero"), `field webhook_jwt_key_file:`},
		{instanceYAML("evolution", "api_url", "http://e", "instance_name", "x", "api_key", "k", "webhook_path_secret", testPathSecret), ""},
		{instanceYAML("evolution", "api_url", "http://e", "instance_name", "x", "api_key", "k", "webhook_path_secret", "short-secret"), `field webhook_path_secret: must be at least 16 characters`},
		{instanceYAML("evolution", "api_url", "http://e", "instance_name", "x", "api_key", "k", "webhook_path_secret", "has/a/slash-0123456789"), `field webhook_path_secret: may hold only`},
		{instanceYAML("evolution", "api_url", "http://e", "instance_name", "x", "api_key", "k", "webhook_path_secret", "ünïcödé-0123456789"), `field webhook_path_secret: may hold only`},
		{instanceYAML("greenapi", "id_instance", "1", "api_token", "t", "webhook_path_secret", testPathSecret), `field webhook_path_secret not found`},
		{"accounts:\n  - {name: a, provider: wachat, api_key: k, states_from_listing: true}\n", ""},
		{"accounts:\n  - {name: a, provider: wachat, api_key: k, states_from_listing: maybe}\n", `account "a": line 2: cannot unmarshal`},
		{"accounts:\n  - {name: a, provider: evolution, api_url: \"http://e\", api_key: k, webhook_global_path_secret: short}\n", `field webhook_global_path_secret: must be at least 16 characters`},
		{"accounts:\n  - {name: a, provider: evolution, api_url: \"http://e\", api_key: k, webhook_key: short}\n", `field webhook_key: must be at least 16 characters`},
		{"accounts:\n  - {name: a, provider: greenapi, partner_token: p, webhook_key: short}\n", `field webhook_key: must be at least 16 characters`},
		// One credential shared by every instance an account finds let
		// any of them forge the others' states: refused.
		{"accounts:\n  - {name: a, provider: greenapi, partner_token: p, webhook_token: " + testWebhookToken + "}\n", `field webhook_token not found`},
		{"accounts:\n  - {name: a, provider: evolution, api_url: \"http://e\", api_key: k, webhook_path_secret: " + testPathSecret + "}\n", `field webhook_path_secret not found`},
		{"accounts:\n  - {name: a, provider: evolution, api_url: \"http://e\", api_key: k, webhook_jwt_key: " + testJWTKey + "}\n", `field webhook_jwt_key not found`},
	} {
		_, err := config.Load([]byte(tc.yml), dir, config.Options{})
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.yml, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want %q", tc.yml, err, tc.wantErr)
		}
	}
	cfg := loadConfig(t, instanceYAML("greenapi", "id_instance", "1", "api_token", "t", "webhook_token_file", "wh"), dir)
	if got := webhookTokenOf(cfg.Instances[0].Spec.(*GreenAPISpec)); got != testWebhookToken {
		t.Errorf("token from file %q", got)
	}
}

// The receiver's own metrics exist only with notifications on.
func TestWebhookMetricsOnlyWhenOn(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{false, true} {
		c := New(nil, Options{Notifications: on})
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c.ProviderMetrics())
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, mf := range mfs {
			found = found || mf.GetName() == "whatsapp_exporter_webhook_notifications_total"
		}
		if found != on {
			t.Errorf("notifications %v: receiver metrics registered %v", on, found)
		}
		c.Close()
	}
}

// FuzzNotification sends any body to every provider's receiver: no
// panic, an answer from the documented set, and nothing of the body or
// its apikey in the answer or the logs.
func FuzzNotification(f *testing.F) {
	for _, dir := range []string{"greenapi", "evolution"} {
		entries, err := os.ReadDir(filepath.Join("testdata", "webhook", dir))
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join("testdata", "webhook", dir, e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	logger, logs := testlog.New()
	c := New(logger, Options{Concurrency: 1, MinInterval: time.Hour, Notifications: true})
	f.Cleanup(c.Close)
	cfg, err := config.Load([]byte(`instances:
  - {name: shop, provider: greenapi, api_url: "http://127.0.0.1:1", id_instance: "1101000001", api_token: t, webhook_token: "FUZZ-WEBHOOK-TOKEN"}
  - {name: bot, provider: evolution, api_url: "http://127.0.0.1:1", instance_name: sales-bot, api_key: k, webhook_token: "FUZZ-WEBHOOK-TOKEN"}
`), f.TempDir(), config.Options{})
	if err != nil {
		f.Fatal(err)
	}
	if err := c.Update(cfg); err != nil {
		f.Fatal(err)
	}
	h := c.Webhooks()
	allowed := map[int]bool{200: true, 400: true, 401: true, 404: true, 422: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/webhook/greenapi", "/webhook/evolution/connection-update"} {
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
			req.Header.Set("Authorization", "Bearer FUZZ-WEBHOOK-TOKEN")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if !allowed[w.Code] {
				t.Errorf("%s: HTTP %d", path, w.Code)
			}
			answer := strings.TrimSpace(w.Body.String())
			if !slices.Contains(Outcomes[:], answer) {
				t.Errorf("%s: answer %q is not an outcome", path, answer)
			}
		}
		if out := logs.Take(); strings.Contains(out, "EVOLUTION-INSTANCE-TOKEN") || strings.Contains(out, "FUZZ-WEBHOOK-TOKEN") {
			t.Errorf("a secret reached the logs")
		}
	})
}

// BenchmarkNotification is one accepted GREEN-API notification among
// 10 000 instances, through the receiver's handler.
func BenchmarkNotification(b *testing.B) {
	var yml strings.Builder
	yml.WriteString("instances:\n")
	for i := range 10000 {
		fmt.Fprintf(&yml, "  - {name: i%d, provider: greenapi, api_url: \"http://127.0.0.1:1\", id_instance: \"%d\", api_token: t%d, webhook_token: wh%d}\n", i, 1101000000+i, i, i)
	}
	cfg, err := config.Load([]byte(yml.String()), b.TempDir(), config.Options{})
	if err != nil {
		b.Fatal(err)
	}
	c := New(nil, Options{Concurrency: 1, MinInterval: time.Hour, Notifications: true})
	b.Cleanup(c.Close)
	if err := c.Update(cfg); err != nil {
		b.Fatal(err)
	}
	h := c.Webhooks()
	start := time.Now().Unix()
	b.ReportAllocs()
	b.ResetTimer()
	for k := range b.N {
		i := k % 10000
		body := greenAPIState(strconv.Itoa(1101000000+i), []string{"blocked", "authorized"}[k/10000%2], time.Unix(start+int64(k/10000), 0))
		req := httptest.NewRequest(http.MethodPost, "/webhook/greenapi", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer wh"+strconv.Itoa(i))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("HTTP %d %s", w.Code, w.Body)
		}
	}
}

// TestJWTKeyInHeaderLoggedOnce: Evolution API 2.2.x's jwt_key header is
// refused, and said once what to do, without the key, even after other
// refused notifications of the instance were logged.
func TestJWTKeyInHeaderLoggedOnce(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, "")
	e.scrape(t)
	e.post(t, "/webhook/evolution", "Bearer wrong", evolutionEvent("close", time.Now()))
	for range 3 {
		if status, answer := e.post(t, "/webhook/evolution", "jwt_key: "+testJWTKey, evolutionEvent("close", time.Now())); status != 401 || answer != OutcomeKeyInHeader+"\n" {
			t.Errorf("got %d %q", status, answer)
		}
	}
	if n := strings.Count(e.logs.String(), "carries the instance's webhook_jwt_key in a header"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, e.logs)
	}
	checkNoLeak(t, "logs", e.logs.String(), testJWTKey)
}
