package simulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// Evolution is the provider name the simulator files Evolution API
// instances under. Its API is served below /evolution.
const Evolution = "evolution"

// NotLoaded as a State makes Evolution API answer without a state, as it
// does for an instance that exists but is not loaded.
const NotLoaded = "<not loaded>"

// baileysStates are the connection states of Evolution API and Wachat.
var baileysStates = []string{"open", "connecting", "close"}

// EvolutionVersion is a line of Evolution API releases whose behaviour
// differs where the exporter can see it (read in its code: tag 1.8.2,
// 2.2.3 and 2.3.6).
type EvolutionVersion int

const (
	// Evolution18: fetchInstances lists the instances in memory with
	// their live status; webhooks send no custom header and are not
	// retried; every connection change is pushed, each close too.
	Evolution18 EvolutionVersion = iota
	// Evolution22: fetchInstances lists database rows; webhooks send
	// their custom headers as they are (a jwt_key header too) and retry
	// every failure 10 times, 30 seconds apart.
	Evolution22
	// Evolution23: as 2.2, but a jwt_key header becomes
	// Authorization: Bearer <JWT>, and a failure is retried with
	// backoff (5 s doubling, at most 300 s, 10 attempts), except 400,
	// 401, 403, 404 and 422.
	Evolution23
)

// SetEvolutionVersion makes the simulator serve that version of
// Evolution API (2.3 by default).
func (s *Simulator) SetEvolutionVersion(v EvolutionVersion) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evolution = v
}

func (s *Simulator) evolutionVersion() EvolutionVersion {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.evolution
}

// ReasonQRExpired as a Behaviour's Reason: the QR code was not scanned in
// time, which Evolution API pushes as refused (statusReason 428).
const ReasonQRExpired = -1

// finalReason reports the disconnection codes Evolution API does not
// retry (whatsapp.baileys.service.ts, codesToNotReconnect: logged out,
// forbidden, 402, 406); it retries every other close.
func finalReason(code int) bool {
	return code == 401 || code == 403 || code == 402 || code == 406
}

// evolutionRow is what Evolution API 2's database row says of an instance
// behaving as b: its connectionStatus and disconnectionReasonCode (0 for
// null). The column is written when a QR code is shown (connecting), on
// connect (open), and on a close that is not retried (close, with its
// code); a new instance's row says close. So an instance that lost its
// connection and is being retried keeps open, and one whose QR code
// expired keeps connecting. The code is never cleared.
func evolutionRow(b Behaviour) (status string, reason int) {
	if finalReason(b.Reason) {
		reason = b.Reason
	}
	if b.Listed != "" {
		return b.Listed, reason
	}
	switch {
	case b.State == "open":
		return "open", reason
	case b.State == "connecting" && b.Reason != 0:
		return "open", reason // reconnecting after a drop
	case b.State == "connecting":
		return "connecting", reason // a QR code shown
	case b.Reason == ReasonQRExpired:
		return "connecting", 0
	case b.State == "close" && b.Reason != 0 && !finalReason(b.Reason):
		return "open", 0 // between two attempts to reconnect
	}
	return "close", reason
}

func init() {
	register(&Provider{
		Name:     Evolution,
		Path:     "/evolution",
		States:   baileysStates,
		Specials: []Special{{State: NotLoaded, Reads: "unknown", Up: true}},
		Faults:   []Fault{FaultNull},
		Instance: func(name, apiURL, id, secret string) string {
			return fmt.Sprintf("name: %q, provider: evolution, api_url: %q, instance_name: %q, api_key: %q", name, apiURL, id, secret)
		},
		Notification: evolutionNotification,
		deliverer:    func(s *Simulator) deliverer { return evolutionDelivery(s.evolutionVersion()) },
		Demo: []DemoInstance{
			{Name: "demo-evolution", ID: "demo-evo", Secret: "demo-key-evolution", Webhook: WebhookAuth{JWTKey: "demo-jwt-key"}, Steps: []Step{
				state("open", 40*time.Millisecond, 60*time.Second),
				closed(state("close", 40*time.Millisecond, 40*time.Second), 401),
				state("connecting", 40*time.Millisecond, 20*time.Second),
				state(NotLoaded, 40*time.Millisecond, 20*time.Second),
				state("open", 40*time.Millisecond, 40*time.Second),
			}},
			// The second sender of the demo's WhatsApp alerts, tried
			// when the first fails.
			{Name: DemoAlertFallback, ID: "demo-evo-alerts", Secret: "demo-key-alerts", Steps: []Step{state("open", 40*time.Millisecond, time.Hour)}},
		},
		Account: &AccountDescription{
			Config: func(name, apiURL, key string) string {
				return fmt.Sprintf("name: %q, provider: evolution, api_url: %q, api_key: %q", name, apiURL, key)
			},
			// The server's global key lists every instance on it, the
			// configured demo-evo too: the filter leaves it to its entry.
			// Its listing is version 2's database: it says open for
			// lost-bot, which cannot reach WhatsApp (connectionState
			// answers connecting, then close, again and again), and
			// close with the code 403 for banned-bot.
			Demo: DemoAccount{
				Name: "demo-server", Key: "demo-global-key",
				Extra: []string{"refresh_interval: 20s", `exclude: ["demo-evo"]`},
				Instances: []DemoInstance{
					{ID: "support-bot", Secret: "demo-token-support-bot", Steps: []Step{state("open", 50*time.Millisecond, time.Hour)}},
					{ID: "sales-bot", Secret: "demo-token-sales-bot", Steps: []Step{state("connecting", 50*time.Millisecond, time.Hour)}},
					{ID: "lost-bot", Secret: "demo-token-lost-bot", Steps: []Step{
						closed(state("connecting", 50*time.Millisecond, 3*time.Second), 408),
						closed(state("close", 50*time.Millisecond, 7*time.Second), 408),
					}},
					{ID: "banned-bot", Secret: "demo-token-banned-bot", Steps: []Step{closed(state("close", 50*time.Millisecond, time.Hour), 403)}},
				},
				Steps: []AccountStep{
					{For: 90 * time.Second, Members: []Member{{ID: "demo-evo"}, {ID: "support-bot"}, {ID: "lost-bot"}, {ID: "banned-bot"}}},
					{For: 90 * time.Second, Members: []Member{{ID: "demo-evo"}, {ID: "support-bot"}, {ID: "sales-bot"}, {ID: "lost-bot"}, {ID: "banned-bot"}}},
				},
			},
		},
	}, route{"GET", "/instance/connectionState/{name}", (*Simulator).evolutionState},
		route{"GET", "/instance/fetchInstances", (*Simulator).evolutionFetchInstances},
		route{"POST", "/message/sendText/{name}", (*Simulator).evolutionSendText})
}

// evolutionNotification is Evolution API's connection.update event for an
// instance that starts behaving as b, as sent to a webhook set by events,
// false when the version pushes none. The body carries the instance's
// token in apikey (when the server exposes it), and date_time is local
// time marked UTC. statusReason is the code of the last disconnection,
// 200 when there was none. Version 2 pushes a close only when it will
// not reconnect, refused when the QR code expired, and nothing for a
// close it retries (it pushes connecting for the attempt); 1.8 pushes
// every change.
func evolutionNotification(s *Simulator, id string, b Behaviour, secret string, at time.Time) (Notification, bool) {
	state, reason := b.State, b.Reason
	switch {
	case !slices.Contains(baileysStates, state):
		return Notification{}, false
	case reason == ReasonQRExpired:
		state, reason = "refused", 428
	case state == "close" && !finalReason(reason) && s.evolutionVersion() != Evolution18:
		return Notification{}, false
	case state != "close":
		reason = 0 // a new connection or attempt: no lastDisconnect
	}
	if reason == 0 {
		reason = http.StatusOK
	}
	body, _ := json.Marshal(map[string]any{
		"event":       "connection.update",
		"instance":    id,
		"data":        map[string]any{"instance": id, "state": state, "statusReason": reason},
		"destination": "http://exporter/webhook/evolution/connection-update",
		"date_time":   at.Format("2006-01-02T15:04:05.000Z"),
		"sender":      "5511999999999@s.whatsapp.net",
		"server_url":  "http://evolution.local",
		"apikey":      secret,
	})
	return Notification{Path: "/connection-update", Body: body, State: b.State}, true
}

// evolutionDelivery is how a version of Evolution API delivers webhooks.
type evolutionDelivery EvolutionVersion

func (v evolutionDelivery) queued() bool { return false }

func (v evolutionDelivery) header(h http.Header, auth WebhookAuth, _ []byte, now time.Time) {
	if EvolutionVersion(v) == Evolution18 {
		return // 1.8's webhook has no headers
	}
	if auth.Token != "" {
		h.Set("Authorization", "Bearer "+auth.Token)
	}
	switch {
	case auth.JWTKey == "":
	case EvolutionVersion(v) == Evolution22:
		h["jwt_key"] = []string{auth.JWTKey} // as it is, the key in the clear
	default:
		h.Set("Authorization", "Bearer "+SignJWT(auth.JWTKey, map[string]any{
			"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "app": "evolution", "action": "webhook",
		}))
	}
}

// retry is each version's: 1.8.2 posts once and logs a failure
// (ChannelStartupService.sendDataWebhook, src/api/services/
// channel.service.ts; its only retry loops are RabbitMQ's), 2.2 retries
// any failure 10 times 30 s apart, 2.3 not a 400, 401, 403, 404 or 422,
// with a growing delay (API-FACTS.md, Evolution API, "Webhook versions").
func (v evolutionDelivery) retry(attempt, status int, unit time.Duration) (time.Duration, bool) {
	switch EvolutionVersion(v) {
	case Evolution18:
		return 0, false
	case Evolution22:
		return 30 * unit, attempt <= 10
	}
	if slices.Contains([]int{400, 401, 403, 404, 422}, status) || attempt >= 10 {
		return 0, false
	}
	return min(5*unit<<(attempt-1), 300*unit), true
}

// evolutionFetchInstances serves GET /instance/fetchInstances with the
// server's global key in apikey: every instance, with its token, as the
// version lists them (see EvolutionVersion, evolutionRow).
func (s *Simulator) evolutionFetchInstances(w http.ResponseWriter, r *http.Request) {
	step, members, ok := s.listing(Evolution, r.Header.Get("apikey"))
	if !ok {
		evolutionError(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	if !wait(r, step.Latency) || listingFault(w, r, step) {
		return
	}
	v1 := s.evolutionVersion() == Evolution18
	rows := []map[string]any{}
	for k, m := range members {
		if v1 {
			// monitor.service.ts (1.8.2): the instances in memory, with
			// their live state.
			inst := map[string]any{"instanceName": m.ID, "instanceId": fmt.Sprintf("af6c5b7c-0000-4000-8000-%012d", k), "status": m.State,
				"serverUrl": "http://evolution.local", "apikey": m.Secret}
			if m.State == NotLoaded {
				inst["status"] = "close"
			}
			rows = append(rows, map[string]any{"instance": inst})
			continue
		}
		status, reason := evolutionRow(m.Behaviour)
		var code any
		if reason != 0 {
			code = reason
		}
		rows = append(rows, map[string]any{
			"id": fmt.Sprintf("00000000-0000-4000-8000-%012d", k), "name": m.ID, "connectionStatus": status,
			"ownerJid": nil, "profileName": nil, "integration": "WHATSAPP-BAILEYS", "token": m.Secret,
			"clientName": "evolution_exchange", "disconnectionReasonCode": code, "disconnectionObject": nil,
			"disconnectionAt": nil, "createdAt": "2025-01-01T10:00:00.000Z",
		})
	}
	body, _ := json.Marshal(rows)
	writeJSON(w, http.StatusOK, string(body))
}

func evolutionError(w http.ResponseWriter, status int, text string, messages ...string) {
	body, _ := json.Marshal(map[string]any{"status": status, "error": text, "response": map[string]any{"message": messages}})
	writeJSON(w, status, string(body))
}

// evolutionState serves GET /instance/connectionState/{name} with header
// apikey.
func (s *Simulator) evolutionState(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	secret, b, ok := s.lookup(Evolution, name)
	if !ok {
		evolutionError(w, http.StatusNotFound, "Not Found", `The "`+name+`" instance does not exist`)
		return
	}
	if !wait(r, b.Latency) {
		return
	}
	// The instance's token, or the server's global key (auth.guard.ts).
	if key := r.Header.Get("apikey"); key != secret && !s.hasAccount(Evolution, key) {
		evolutionError(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	switch b.Fault {
	case FaultUnauthorized:
		evolutionError(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	case FaultForbidden:
		evolutionError(w, http.StatusForbidden, "Forbidden", "Missing global api key")
		return
	case FaultNotFound:
		evolutionError(w, http.StatusNotFound, "Not Found", `The "`+name+`" instance does not exist`)
		return
	case FaultClientError:
		evolutionError(w, http.StatusBadRequest, "Bad Request", "instance requires property \"instanceName\"")
		return
	case FaultServerError:
		evolutionError(w, http.StatusInternalServerError, "Internal Server Error", "Connection Closed")
		return
	case FaultWrongShape:
		writeJSON(w, http.StatusOK, `{"state":"open"}`)
		return
	}
	if fault(w, r, b) {
		return
	}
	inst := map[string]any{"instanceName": name}
	if b.State != NotLoaded {
		inst["state"] = b.State
	}
	body, _ := json.Marshal(map[string]any{"instance": inst})
	writeJSON(w, http.StatusOK, string(body))
}
