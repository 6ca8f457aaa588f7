package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Whatsmeow is the provider name the simulator files the whatsmeow
// family's instances under (Evolution Go, wuzapi, GOWA). Each configured
// instance is served as a server of its own, below /whatsmeow/<instance>,
// so that the servers that know an instance by its token alone (Evolution
// Go, wuzapi) need no search by token; which server it is follows from its
// ID: "wuzapi-..." is a wuzapi user, "gowa-..." a GOWA device, anything
// else an Evolution Go instance. The simulated account is a GOWA server,
// below /whatsmeow/gowa-server, whose devices are named in the path and
// share its basic auth.
const Whatsmeow = "whatsmeow"

// The family's states: those the status calls tell, and the ban only a
// notification tells (the status call then says disconnected: see the
// provider's Specials).
var whatsmeowStates = []string{"logged_in", "pairing", "disconnected", "logged_out", WhatsmeowTemporaryBan}

// WhatsmeowTemporaryBan is a behaviour's state for a temporarily banned
// instance: notified as TemporaryBan, polled as disconnected.
const WhatsmeowTemporaryBan = "temporary_ban"

// whatsmeowServerOf is the server an instance ID stands for.
func whatsmeowServerOf(id string) string {
	switch {
	case strings.HasPrefix(id, "wuzapi-"):
		return "wuzapi"
	case strings.HasPrefix(id, "gowa-"):
		return "gowa"
	}
	return "evolution-go"
}

func init() {
	register(&Provider{
		Name:     Whatsmeow,
		Path:     "/whatsmeow",
		States:   whatsmeowStates,
		Specials: []Special{{State: WhatsmeowTemporaryBan, Reads: "disconnected", Up: true}},
		// An undocumented state is answered as no session.
		Undocumented: "logged_out",
		Instance: func(name, apiURL, id, secret string) string {
			return fmt.Sprintf("name: %q, provider: whatsmeow, server: %q, api_url: %q, instance_name: %q, api_key: %q",
				name, whatsmeowServerOf(id), apiURL+"/"+url.PathEscape(id), id, secret)
		},
		Account: &AccountDescription{
			Config: func(name, apiURL, key string) string {
				return fmt.Sprintf("name: %q, provider: whatsmeow, server: gowa, api_url: %q, api_key: %q", name, apiURL+"/gowa-server", key)
			},
			SharedKey: true,
			// A GOWA server whose second device is added after a minute
			// and needs its QR code scanned.
			Demo: DemoAccount{
				Name: "demo-gowa-server", Key: "admin:demo-gowa-password", Extra: []string{"refresh_interval: 20s"},
				Instances: []DemoInstance{
					{ID: "gowa-front-desk", Secret: "admin:demo-gowa-password", Steps: []Step{state("logged_in", 30*time.Millisecond, time.Hour)}},
					{ID: "gowa-new-desk", Secret: "admin:demo-gowa-password", Steps: []Step{state("pairing", 30*time.Millisecond, time.Hour)}},
				},
				Steps: []AccountStep{
					{For: 60 * time.Second, Members: []Member{{ID: "gowa-front-desk"}}},
					{For: 60 * time.Second, Members: []Member{{ID: "gowa-front-desk"}, {ID: "gowa-new-desk"}}},
				},
			},
		},
		Notification: whatsmeowNotification,
		deliverer:    func(*Simulator) deliverer { return whatsmeowDelivery{} },
		// A family on one exporter: an Evolution Go instance that is
		// logged out from the phone and linked again, a wuzapi user that
		// is temporarily banned, a GOWA device that loses its connection
		// for a while.
		Demo: []DemoInstance{
			{Name: "demo-evolution-go", ID: "demo-evogo", Secret: "demo-token-evogo",
				Webhook: WebhookAuth{PathSecret: "demo-evogo-path-secret"}, Steps: []Step{
					state("logged_in", 30*time.Millisecond, 60*time.Second),
					state("logged_out", 30*time.Millisecond, 60*time.Second),
					state("pairing", 30*time.Millisecond, 30*time.Second),
					state("logged_in", 30*time.Millisecond, 30*time.Second),
				}},
			{Name: "demo-wuzapi", ID: "wuzapi-demo", Secret: "demo-token-wuzapi",
				Webhook: WebhookAuth{HMACKey: "demo-wuzapi-hmac-key"}, Steps: []Step{
					state("logged_in", 30*time.Millisecond, 45*time.Second),
					state(WhatsmeowTemporaryBan, 30*time.Millisecond, 90*time.Second),
					state("logged_in", 30*time.Millisecond, 45*time.Second),
				}},
			{Name: "demo-gowa", ID: "gowa-demo", Secret: "demo:gowa-password", Steps: []Step{
				state("logged_in", 30*time.Millisecond, 100*time.Second),
				state("disconnected", 30*time.Millisecond, 20*time.Second),
				state("logged_in", 30*time.Millisecond, 60*time.Second),
			}},
		},
	}, route{"GET", "/{id}/instance/status", (*Simulator).whatsmeowEvolutionGoStatus},
		route{"GET", "/{id}/session/status", (*Simulator).whatsmeowWuzapiStatus},
		route{"GET", "/{id}/devices/{device}/status", (*Simulator).whatsmeowGOWAStatus},
		// A literal server segment: a wildcard one would overlap
		// GREEN-API's /{instance}/getStateInstance/{token}.
		route{"GET", "/gowa-server/devices", (*Simulator).whatsmeowGOWADevices})
}

// whatsmeowPair is what the status call reports of a behaviour's state;
// ok is false for a state without a client (logged out).
func whatsmeowPair(state string) (connected, loggedIn, ok bool) {
	switch state {
	case "logged_in":
		return true, true, true
	case "pairing":
		return true, false, true
	case "disconnected", WhatsmeowTemporaryBan:
		return false, true, true
	case "logged_out":
		return false, false, false
	}
	return false, false, false
}

// whatsmeowLookup finds the instance of the request and checks its
// credential with check; it writes the server's answer and returns false
// when the request goes no further.
func (s *Simulator) whatsmeowLookup(w http.ResponseWriter, r *http.Request, server string, check func(secret string) bool, refuse func()) (Behaviour, bool) {
	id := r.PathValue("id")
	if whatsmeowServerOf(id) != server {
		http.NotFound(w, r)
		return Behaviour{}, false
	}
	if server == "gowa" {
		id = r.PathValue("device") // the server's segment may be an account's
	}
	secret, b, ok := s.lookup(Whatsmeow, id)
	if !ok || !check(secret) {
		refuse()
		return Behaviour{}, false
	}
	if !wait(r, b.Latency) {
		return Behaviour{}, false
	}
	switch b.Fault {
	case FaultClientError:
		writeJSON(w, http.StatusBadRequest, `{"error":"invalid request"}`)
		return Behaviour{}, false
	case FaultUnauthorized:
		refuse()
		return Behaviour{}, false
	}
	if fault(w, r, b) {
		return Behaviour{}, false
	}
	return b, true
}

// whatsmeowEvolutionGoStatus serves Evolution Go's GET /instance/status
// with the instance's token in apikey (pkg/instance/handler/
// instance_handler.go Status, pkg/instance/service/instance_service.go
// ensureClientConnected): 200 only while the client is connected.
func (s *Simulator) whatsmeowEvolutionGoStatus(w http.ResponseWriter, r *http.Request) {
	b, ok := s.whatsmeowLookup(w, r, "evolution-go", func(secret string) bool { return r.Header.Get("apikey") == secret },
		func() { writeJSON(w, http.StatusUnauthorized, `{"error":"not authorized"}`) })
	if !ok {
		return
	}
	if b.Fault == FaultWrongShape {
		writeJSON(w, http.StatusOK, `{"message":"success","data":{}}`)
		return
	}
	connected, loggedIn, running := whatsmeowPair(b.State)
	switch {
	case !running:
		writeJSON(w, http.StatusBadRequest, `{"error":"no active session found"}`)
	case !connected:
		writeJSON(w, http.StatusBadRequest, `{"error":"client disconnected"}`)
	default:
		name := ""
		if loggedIn {
			name = "Demo Store"
		}
		body, _ := json.Marshal(map[string]any{"message": "success", "data": map[string]any{"Connected": connected, "LoggedIn": loggedIn, "Name": name}})
		writeJSON(w, http.StatusOK, string(body))
	}
}

// whatsmeowWuzapiStatus serves wuzapi's GET /session/status with the
// user's token in Token (handlers.go GetStatus, Respond).
func (s *Simulator) whatsmeowWuzapiStatus(w http.ResponseWriter, r *http.Request) {
	b, ok := s.whatsmeowLookup(w, r, "wuzapi", func(secret string) bool { return r.Header.Get("Token") == secret },
		func() { writeJSON(w, http.StatusUnauthorized, `{"code":401,"error":"unauthorized","success":false}`) })
	if !ok {
		return
	}
	if b.Fault == FaultWrongShape {
		writeJSON(w, http.StatusOK, `{"code":200,"data":{},"success":true}`)
		return
	}
	connected, loggedIn, running := whatsmeowPair(b.State)
	if !running {
		writeJSON(w, http.StatusInternalServerError, `{"code":500,"error":"No session","success":false}`)
		return
	}
	body, _ := json.Marshal(map[string]any{"code": 200, "data": map[string]any{"Connected": connected, "LoggedIn": loggedIn}, "success": true})
	writeJSON(w, http.StatusOK, string(body))
}

// whatsmeowGOWAStatus serves GOWA's GET /devices/{device_id}/status with
// the server's basic auth (src/ui/rest/device.go Status). The simulator
// compares the whole decoded credential with the instance's secret.
func (s *Simulator) whatsmeowGOWAStatus(w http.ResponseWriter, r *http.Request) {
	b, ok := s.whatsmeowLookup(w, r, "gowa", func(secret string) bool {
		enc, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Basic ")
		dec, err := base64.StdEncoding.DecodeString(enc)
		return ok && err == nil && string(dec) == secret
	}, func() { http.Error(w, "Unauthorized", http.StatusUnauthorized) })
	if !ok {
		return
	}
	if b.Fault == FaultWrongShape {
		writeJSON(w, http.StatusOK, `{"code":"SUCCESS","message":"Device status"}`)
		return
	}
	connected, loggedIn, _ := whatsmeowPair(b.State)
	body, _ := json.Marshal(map[string]any{"code": "SUCCESS", "message": "Device status",
		"results": map[string]any{"device_id": r.PathValue("device"), "is_connected": connected, "is_logged_in": loggedIn}})
	writeJSON(w, http.StatusOK, string(body))
}

// whatsmeowGOWADevices serves GOWA's GET /devices with the server's basic
// auth (src/ui/rest/device.go ListDevices): every device with its state as
// GOWA derives it, logged_in while IsLoggedIn whether or not connected
// (src/usecase/device.go deriveState); results is left out when there are
// none.
func (s *Simulator) whatsmeowGOWADevices(w http.ResponseWriter, r *http.Request) {
	enc, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Basic ")
	key, _ := base64.StdEncoding.DecodeString(enc)
	step, members, ok := s.listing(Whatsmeow, string(key))
	if !ok {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	if !wait(r, step.Latency) || listingFault(w, r, step) {
		return
	}
	var rows []map[string]any
	for _, m := range members {
		connected, loggedIn, _ := whatsmeowPair(m.State)
		state := "disconnected"
		switch {
		case loggedIn:
			state = "logged_in"
		case connected:
			state = "connected"
		}
		rows = append(rows, map[string]any{"id": m.ID, "state": state, "created_at": "2026-03-01T10:00:00Z"})
	}
	answer := map[string]any{"code": "SUCCESS", "message": "List devices"}
	if len(rows) > 0 {
		answer["results"] = rows
	}
	body, _ := json.Marshal(answer)
	writeJSON(w, http.StatusOK, string(body))
}

// whatsmeowEvents are the events a state change makes the servers post.
var whatsmeowEvents = map[string]string{
	"logged_in":           "Connected",
	"logged_out":          "LoggedOut",
	WhatsmeowTemporaryBan: "TemporaryBan",
}

// whatsmeowNotification is the event an instance's server posts when it
// starts behaving as b: Evolution Go's {"event","data","instanceToken",
// "instanceId","instanceName"} (pkg/whatsmeow/service/whatsmeow.go), with
// the instance's token in the body, or wuzapi's JSON format {"type",
// "event","instanceName","userID"} (helpers.go callHookWithHmac). GOWA
// posts no connection events.
func whatsmeowNotification(_ *Simulator, id string, b Behaviour, secret string, _ time.Time) (Notification, bool) {
	event, ok := whatsmeowEvents[b.State]
	if !ok {
		return Notification{}, false
	}
	data := map[string]any{}
	switch event {
	case "LoggedOut":
		data["reason"] = "Logged out"
	case "TemporaryBan":
		// whatsmeow's events.TemporaryBan: Code and Expire (nanoseconds).
		data["Code"], data["Expire"] = 101, int64(24*time.Hour)
		data["reason"], data["expire"] = "you sent too many messages to people who don't have you in their address books", int64(24*time.Hour)
	}
	var body []byte
	switch whatsmeowServerOf(id) {
	case "evolution-go":
		body, _ = json.Marshal(map[string]any{"event": event, "data": data, "instanceToken": secret,
			"instanceId": "3f1c2a9e-0000-4000-8000-" + fmt.Sprintf("%012x", len(id)), "instanceName": id})
	case "wuzapi":
		body, _ = json.Marshal(map[string]any{"type": event, "event": data, "instanceName": id, "userID": "u" + fmt.Sprintf("%08x", len(id))})
	default:
		return Notification{}, false
	}
	return Notification{Body: body, State: b.State}, true
}

// whatsmeowDelivery is how the family delivers: Evolution Go with no
// header (a secret in the URL's path only) and 5 tries 30 s apart on any
// non-2xx answer (pkg/events/webhook/webhook_producer.go); wuzapi with
// x-hmac-signature when its user has an HMAC key. The simulator retries
// wuzapi's as Evolution Go's (wuzapi's retries are off unless
// WEBHOOK_RETRY_ENABLED).
type whatsmeowDelivery struct{}

func (whatsmeowDelivery) queued() bool { return false }

func (whatsmeowDelivery) header(h http.Header, auth WebhookAuth, body []byte, _ time.Time) {
	if auth.HMACKey != "" {
		m := hmac.New(sha256.New, []byte(auth.HMACKey))
		m.Write(body)
		h.Set("x-hmac-signature", hex.EncodeToString(m.Sum(nil)))
	}
}

func (whatsmeowDelivery) retry(attempt, _ int, unit time.Duration) (time.Duration, bool) {
	return 30 * unit, attempt < 5
}
