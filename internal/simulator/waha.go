package simulator

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Waha is the provider name the simulator files WAHA sessions under. Its
// API is served below /waha (the api_url of a WAHA server is its base
// URL; the routes start with /api).
const Waha = "waha"

// wahaStates are WAHA's session statuses (WAHASessionStatus,
// src/structures/enums.dto.ts of devlikeapro/waha, and the passkey
// statuses of waha-docs' content/docs/how-to/sessions/index.md).
var wahaStates = []string{
	"STOPPED", "STARTING", "SCAN_QR_CODE", "PASSKEY_REQUIRED",
	"PASSKEY_CONFIRMATION_REQUIRED", "WORKING", "FAILED",
}

// WAHA's error bodies are NestJS's HttpException responses, which its
// AllExceptionsFilter (src/api/exception.filter.ts) writes as they are:
// the API key guard's 401 (waha-docs content/docs/how-to/security/
// index.md), the sessions controller's 404 for a session it does not know
// (src/api/sessions.controller.ts: NotFoundException('Session not
// found')), NestJS's own 404 for a path no route serves, and the filter's
// 500 for any other error.
const (
	wahaUnauthorized = `{"message":"Unauthorized","statusCode":401}`
	wahaNotFound     = `{"message":"Session not found","error":"Not Found","statusCode":404}`
	wahaForbidden    = `{"message":"Forbidden resource","error":"Forbidden","statusCode":403}`
	wahaBadRequest   = `{"message":["all must be a boolean value"],"error":"Bad Request","statusCode":400}`
)

func init() {
	register(&Provider{
		Name:   Waha,
		Path:   "/waha",
		States: wahaStates,
		Faults: []Fault{FaultNull},
		Instance: func(name, apiURL, id, secret string) string {
			return fmt.Sprintf("name: %q, provider: waha, api_url: %q, session: %q, api_key: %q", name, apiURL, id, secret)
		},
		Notification: wahaNotification,
		deliverer:    func(*Simulator) deliverer { return wahaDelivery{} },
		// A session that works, fails (a logout or a ban: WAHA tells
		// neither apart), restarts, waits for a QR code and a passkey,
		// works again and is stopped; its session.status webhook signed
		// with an HMAC key.
		Demo: []DemoInstance{
			{Name: "demo-waha", ID: "default", Secret: "demo-key-waha", Webhook: WebhookAuth{HMACKey: "demo-waha-hmac-key"}, Steps: []Step{
				state("WORKING", 30*time.Millisecond, 60*time.Second),
				state("FAILED", 30*time.Millisecond, 30*time.Second),
				state("STARTING", 30*time.Millisecond, 10*time.Second),
				state("SCAN_QR_CODE", 30*time.Millisecond, 30*time.Second),
				state("PASSKEY_REQUIRED", 30*time.Millisecond, 15*time.Second),
				state("PASSKEY_CONFIRMATION_REQUIRED", 30*time.Millisecond, 10*time.Second),
				state("WORKING", 30*time.Millisecond, 40*time.Second),
				state("STOPPED", 30*time.Millisecond, 20*time.Second),
			}},
		},
		Account: &AccountDescription{
			Config: func(name, apiURL, key string) string {
				return fmt.Sprintf("name: %q, provider: waha, api_url: %q, api_key: %q", name, apiURL, key)
			},
			// A server whose sessions are in several statuses: support
			// works, onboarding waits for its QR code to be scanned (a new
			// one every 20 s, then FAILED after six, and a restart),
			// blocked failed, archive is stopped (listed with all=true
			// only). A new session joins after a minute and a half.
			Demo: DemoAccount{
				Name: "demo-waha-server", Key: "demo-waha-server-key",
				Extra: []string{"refresh_interval: 20s"},
				Instances: []DemoInstance{
					{ID: "support", Secret: "demo-waha-server-key", Steps: []Step{state("WORKING", 40*time.Millisecond, time.Hour)}},
					{ID: "onboarding", Secret: "demo-waha-server-key", Steps: []Step{
						state("STARTING", 40*time.Millisecond, 5*time.Second),
						state("SCAN_QR_CODE", 40*time.Millisecond, 120*time.Second),
						state("FAILED", 40*time.Millisecond, 30*time.Second),
					}},
					{ID: "blocked", Secret: "demo-waha-server-key", Steps: []Step{state("FAILED", 40*time.Millisecond, time.Hour)}},
					{ID: "archive", Secret: "demo-waha-server-key", Steps: []Step{state("STOPPED", 40*time.Millisecond, time.Hour)}},
					{ID: "sales", Secret: "demo-waha-server-key", Steps: []Step{
						state("STARTING", 40*time.Millisecond, 10*time.Second),
						state("WORKING", 40*time.Millisecond, time.Hour),
					}},
				},
				Steps: []AccountStep{
					{For: 90 * time.Second, Members: []Member{{ID: "support"}, {ID: "onboarding"}, {ID: "blocked"}, {ID: "archive"}}},
					{For: 90 * time.Second, Members: []Member{{ID: "support"}, {ID: "onboarding"}, {ID: "blocked"}, {ID: "archive"}, {ID: "sales"}}},
				},
			},
		},
	}, route{"GET", "/api/sessions/{session}", (*Simulator).wahaSession},
		route{"GET", "/api/sessions", (*Simulator).wahaSessions})
}

// wahaRow is a session's SessionInfo as WAHA answers it: its config (a
// webhook with an HMAC key, which the exporter must never show) and me,
// the account's number, while it is authenticated.
func wahaRow(name, status, secret string) map[string]any {
	var me any
	if status == "WORKING" {
		me = map[string]any{"id": "79001234567@c.us", "pushName": name}
	}
	return map[string]any{
		"name": name, "status": status,
		"config": map[string]any{
			"webhooks": []any{map[string]any{
				"url": "http://exporter:10041/webhook/waha", "events": []string{"session.status"},
				"hmac": map[string]any{"key": "hmac-" + secret}, "retries": nil, "customHeaders": nil,
			}},
			"proxy": nil, "debug": false,
		},
		"me": me, "presence": nil, "timestamps": map[string]any{"activity": nil},
	}
}

// wahaSessions serves GET /api/sessions[?all=true] with X-Api-Key: every
// session of the server, STOPPED ones only with all=true (its session
// manager's getSessions). The key is an account's: the server's.
func (s *Simulator) wahaSessions(w http.ResponseWriter, r *http.Request) {
	step, members, ok := s.listing(Waha, r.Header.Get("X-Api-Key"))
	if !ok {
		writeJSON(w, http.StatusUnauthorized, wahaUnauthorized)
		return
	}
	all, err := strconv.ParseBool(r.URL.Query().Get("all"))
	if r.URL.Query().Has("all") && err != nil {
		writeJSON(w, http.StatusBadRequest, wahaBadRequest)
		return
	}
	if !wait(r, step.Latency) || listingFault(w, r, step) {
		return
	}
	rows := []map[string]any{}
	for _, m := range members {
		if m.State == "STOPPED" && !all {
			continue
		}
		rows = append(rows, wahaRow(m.ID, m.State, m.Secret))
	}
	body, _ := json.Marshal(rows)
	writeJSON(w, http.StatusOK, string(body))
}

// wahaSession serves GET /api/sessions/{session} with X-Api-Key: the
// session's own key (a key scoped to it) or the server's. The key is
// checked first, as WAHA's guard does, then the session.
func (s *Simulator) wahaSession(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("session")
	key := r.Header.Get("X-Api-Key")
	secret, b, ok := s.lookup(Waha, name)
	if (!ok || key != secret) && !s.hasAccount(Waha, key) {
		writeJSON(w, http.StatusUnauthorized, wahaUnauthorized)
		return
	}
	if !ok {
		writeJSON(w, http.StatusNotFound, wahaNotFound)
		return
	}
	if !wait(r, b.Latency) {
		return
	}
	switch b.Fault {
	case FaultUnauthorized:
		writeJSON(w, http.StatusUnauthorized, wahaUnauthorized)
		return
	case FaultForbidden:
		writeJSON(w, http.StatusForbidden, wahaForbidden)
		return
	case FaultNotFound:
		writeJSON(w, http.StatusNotFound, wahaNotFound)
		return
	case FaultClientError:
		writeJSON(w, http.StatusBadRequest, wahaBadRequest)
		return
	case FaultServerError:
		body, _ := json.Marshal(map[string]any{"statusCode": 500, "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
			"path": r.URL.Path, "error": "Session status is not as expected", "stack": "Error: Session status is not as expected\n    at SessionManager"})
		writeJSON(w, http.StatusInternalServerError, string(body))
		return
	case FaultWrongShape:
		writeJSON(w, http.StatusOK, `{"name":"`+name+`","engine":{"engine":"NOWEB"}}`)
		return
	}
	if fault(w, r, b) {
		return
	}
	row := wahaRow(name, b.State, secret)
	row["engine"] = map[string]any{"engine": "NOWEB"}
	body, _ := json.Marshal(row)
	writeJSON(w, http.StatusOK, string(body))
}

// wahaNotification is WAHA's session.status event for a session that
// starts behaving as b (populateSessionInfo: id, timestamp in Unix
// milliseconds, event, session, me, payload with the status and its last
// transitions, engine, environment).
func wahaNotification(_ *Simulator, id string, b Behaviour, _ string, at time.Time) (Notification, bool) {
	if !slices.Contains(wahaStates, b.State) {
		return Notification{}, false
	}
	var me any
	if b.State == "WORKING" {
		me = map[string]any{"id": "79001234567@c.us", "pushName": id}
	}
	ms := at.UnixMilli()
	var evt [14]byte
	_, _ = rand.Read(evt[:])
	body, _ := json.Marshal(map[string]any{
		"id": "evt_" + hex.EncodeToString(evt[:]), "timestamp": ms, "event": "session.status", "session": id,
		"metadata": map[string]any{}, "me": me,
		"payload": map[string]any{
			"status": b.State,
			"statuses": []any{
				map[string]any{"status": "STARTING", "timestamp": ms - 2000},
				map[string]any{"status": b.State, "timestamp": ms},
			},
		},
		"engine":      "NOWEB",
		"environment": map[string]any{"version": "2026.9.1", "engine": "NOWEB", "tier": "CORE", "browser": nil},
	})
	return Notification{Body: body, State: b.State}, true
}

// wahaDelivery is how WAHA delivers webhooks (its WebhookSender):
// X-Webhook-Request-Id and X-Webhook-Timestamp, the HMAC of the body when
// the webhook has a key, and every failure retried, whatever the status,
// 15 times 2 s apart (the default constant policy).
type wahaDelivery struct{}

func (wahaDelivery) queued() bool { return false }

// header sets WAHA's request ID and timestamp and, with a key,
// X-Webhook-Hmac: the hex HMAC-SHA512 of the body.
func (wahaDelivery) header(h http.Header, auth WebhookAuth, body []byte, now time.Time) {
	var id [16]byte
	_, _ = rand.Read(id[:])
	h.Set("X-Webhook-Request-Id", hex.EncodeToString(id[:]))
	h.Set("X-Webhook-Timestamp", strconv.FormatInt(now.UnixMilli(), 10))
	if auth.HMACKey == "" {
		return
	}
	h.Set("X-Webhook-Hmac", WahaHMAC(auth.HMACKey, body))
	h.Set("X-Webhook-Hmac-Algorithm", "sha512")
}

func (wahaDelivery) retry(attempt, _ int, unit time.Duration) (time.Duration, bool) {
	return 2 * unit, attempt <= 15
}

// WahaHMAC is WAHA's X-Webhook-Hmac of body: the hex HMAC-SHA512 keyed
// with key.
func WahaHMAC(key string, body []byte) string {
	m := hmac.New(sha512.New, []byte(key))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}
