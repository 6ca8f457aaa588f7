package simulator

import (
	"encoding/json"
	"fmt"
	"net/http"
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

func init() {
	register(&Provider{
		Name:     Evolution,
		Path:     "/evolution",
		States:   baileysStates,
		Specials: []Special{{State: NotLoaded, Reads: "unknown", Up: true}},
		Instance: func(name, apiURL, id, secret string) string {
			return fmt.Sprintf("name: %q, provider: evolution, api_url: %q, instance_name: %q, api_key: %q", name, apiURL, id, secret)
		},
		Notification: evolutionNotification,
		Demo: []DemoInstance{
			{Name: "demo-evolution", ID: "demo-evo", Secret: "demo-key-evolution", Webhook: WebhookAuth{JWTKey: "demo-jwt-key"}, Steps: []Step{
				state("open", 40*time.Millisecond, 60*time.Second),
				state("close", 40*time.Millisecond, 40*time.Second),
				state("connecting", 40*time.Millisecond, 20*time.Second),
				state(NotLoaded, 40*time.Millisecond, 20*time.Second),
				state("open", 40*time.Millisecond, 40*time.Second),
			}},
		},
		Account: &AccountDescription{
			Config: func(name, apiURL, key string) string {
				return fmt.Sprintf("name: %q, provider: evolution, api_url: %q, api_key: %q", name, apiURL, key)
			},
			// The server's global key lists every instance on it, the
			// configured demo-evo too: the filter leaves it to its entry.
			Demo: DemoAccount{
				Name: "demo-server", Key: "demo-global-key",
				Extra: []string{"refresh_interval: 20s", `exclude: ["demo-evo"]`},
				Instances: []DemoInstance{
					{ID: "support-bot", Secret: "demo-token-support-bot", Steps: []Step{state("open", 50*time.Millisecond, time.Hour)}},
					{ID: "sales-bot", Secret: "demo-token-sales-bot", Steps: []Step{state("connecting", 50*time.Millisecond, time.Hour)}},
				},
				Steps: []AccountStep{
					{For: 90 * time.Second, Members: []Member{{ID: "demo-evo"}, {ID: "support-bot"}}},
					{For: 90 * time.Second, Members: []Member{{ID: "demo-evo"}, {ID: "support-bot"}, {ID: "sales-bot"}}},
				},
			},
		},
	}, route{"GET", "/instance/connectionState/{name}", (*Simulator).evolutionState},
		route{"GET", "/instance/fetchInstances", (*Simulator).evolutionFetchInstances})
}

// evolutionNotification is Evolution API's connection.update event, as
// sent to a webhook set by events. Like the real one, it carries the
// instance's token in apikey, and its date_time is local time marked UTC.
func evolutionNotification(id, state, secret string, at time.Time) (string, []byte) {
	body, _ := json.Marshal(map[string]any{
		"event":       "connection.update",
		"instance":    id,
		"data":        map[string]any{"instance": id, "state": state, "statusReason": 200},
		"destination": "http://exporter/webhook/evolution",
		"date_time":   at.Format("2006-01-02T15:04:05.000Z"),
		"sender":      "5511999999999@s.whatsapp.net",
		"server_url":  "http://evolution.local",
		"apikey":      secret,
	})
	return "/webhook/evolution/connection-update", body
}

// evolutionFetchInstances serves GET /instance/fetchInstances with the
// server's global key in apikey: every instance, with its state and its
// own token.
func (s *Simulator) evolutionFetchInstances(w http.ResponseWriter, r *http.Request) {
	step, members, ok := s.listing(Evolution, r.Header.Get("apikey"))
	if !ok {
		evolutionError(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	if !wait(r, step.Latency) || listingFault(w, r, step) {
		return
	}
	rows := []map[string]any{}
	for k, m := range members {
		status := m.State
		if status == NotLoaded {
			status = "close"
		}
		rows = append(rows, map[string]any{
			"id": fmt.Sprintf("00000000-0000-4000-8000-%012d", k), "name": m.ID, "connectionStatus": status,
			"ownerJid": nil, "profileName": nil, "integration": "WHATSAPP-BAILEYS", "token": m.Secret,
			"clientName": "evolution_exchange", "createdAt": "2025-01-01T10:00:00.000Z",
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
	if r.Header.Get("apikey") != secret {
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
