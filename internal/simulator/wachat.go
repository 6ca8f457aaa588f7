package simulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Wachat is the provider name the simulator files Wachat instances under.
// Its API is served below /wachat/api/v1.
const Wachat = "wachat"

func init() {
	register(&Provider{
		Name:   Wachat,
		Path:   "/wachat/api/v1",
		States: baileysStates,
		Faults: []Fault{FaultUnsuccessful, FaultNull},
		Instance: func(name, apiURL, id, secret string) string {
			return fmt.Sprintf("name: %q, provider: wachat, api_url: %q, instance_name: %q, api_key: %q", name, apiURL, id, secret)
		},
		// Connected most of the time, and through every state within a
		// few minutes.
		Demo: []DemoInstance{
			{Name: "demo-wachat-store", ID: "t1_demo_store", Secret: "demo-key-wachat", Steps: []Step{
				state("open", 90*time.Millisecond, 90*time.Second),
				state("connecting", 90*time.Millisecond, 30*time.Second),
				state("close", 90*time.Millisecond, 60*time.Second),
			}},
		},
		Account: &AccountDescription{
			Config: func(name, apiURL, key string) string {
				return fmt.Sprintf("name: %q, provider: wachat, api_url: %q, api_key: %q", name, apiURL, key)
			},
			SharedKey: true,
			// A client leaves the agency after a minute; another joins
			// after two.
			Demo: DemoAccount{
				Name: "demo-agency", Key: "demo-agency-key", Extra: []string{"refresh_interval: 20s"},
				Instances: []DemoInstance{
					{ID: "t1_agency_hotel", Secret: "demo-agency-key", Steps: []Step{state("open", 60*time.Millisecond, time.Hour)}},
					{ID: "t1_agency_gym", Secret: "demo-agency-key", Steps: []Step{
						state("open", 60*time.Millisecond, 50*time.Second),
						state("connecting", 60*time.Millisecond, 40*time.Second),
					}},
					{ID: "t1_agency_spa", Secret: "demo-agency-key", Steps: []Step{state("close", 60*time.Millisecond, time.Hour)}},
				},
				Steps: []AccountStep{
					{For: 60 * time.Second, Members: []Member{{ID: "t1_agency_hotel"}, {ID: "t1_agency_gym"}}},
					{For: 60 * time.Second, Members: []Member{{ID: "t1_agency_hotel"}}},
					{For: 60 * time.Second, Members: []Member{{ID: "t1_agency_hotel"}, {ID: "t1_agency_spa"}}},
				},
			},
		},
	}, route{"GET", "/instance/state", (*Simulator).wachatState},
		route{"GET", "/instance/list", (*Simulator).wachatList},
		route{"POST", "/send/text", (*Simulator).wachatSendText})
}

// wachatList serves GET /instance/list with Authorization: Bearer KEY:
// every instance of the account, with a state. Whether Wachat reads it
// from a database like Evolution API 2, on which it is built, is not
// known: the simulator assumes so, and lists the state Evolution API 2's
// row would hold (evolutionRow), which lags behind the connection's.
func (s *Simulator) wachatList(w http.ResponseWriter, r *http.Request) {
	key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	step, members, ok := s.listing(Wachat, key)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, `{"success":false,"error":"Invalid API key"}`)
		return
	}
	if !wait(r, step.Latency) || listingFault(w, r, step) {
		return
	}
	rows := []map[string]any{}
	for _, m := range members {
		state, _ := evolutionRow(m.Behaviour)
		rows = append(rows, map[string]any{
			"apiInstanceName": m.ID, "displayName": strings.TrimPrefix(m.ID, "t1_"), "state": state,
			"isConnected": state == "open", "profileName": nil, "number": nil,
		})
	}
	body, _ := json.Marshal(map[string]any{"success": true, "count": len(rows), "instances": rows})
	writeJSON(w, http.StatusOK, string(body))
}

// wachatState serves GET /instance/state?instanceName=NAME with
// Authorization: Bearer KEY.
func (s *Simulator) wachatState(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("instanceName")
	if name == "" {
		writeJSON(w, http.StatusBadRequest, `{"success":false,"error":"instanceName is required"}`)
		return
	}
	secret, b, ok := s.lookup(Wachat, name)
	if !ok {
		writeJSON(w, http.StatusNotFound, `{"success":false,"error":"Instance not found"}`)
		return
	}
	if !wait(r, b.Latency) {
		return
	}
	if key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); key != secret {
		writeJSON(w, http.StatusUnauthorized, `{"success":false,"error":"Invalid API key"}`)
		return
	}
	switch b.Fault {
	case FaultUnauthorized:
		writeJSON(w, http.StatusUnauthorized, `{"success":false,"error":"Invalid API key"}`)
		return
	case FaultNotFound:
		writeJSON(w, http.StatusNotFound, `{"success":false,"error":"Instance not found"}`)
		return
	case FaultClientError:
		writeJSON(w, http.StatusBadRequest, `{"success":false,"error":"instanceName is required"}`)
		return
	case FaultServerError:
		writeJSON(w, http.StatusInternalServerError, `{"success":false,"error":"Internal server error"}`)
		return
	case FaultUnsuccessful:
		writeJSON(w, http.StatusOK, `{"success":false,"error":"Failed to fetch instance state"}`)
		return
	case FaultWrongShape:
		writeJSON(w, http.StatusOK, `{"success":true,"data":{}}`)
		return
	}
	if fault(w, r, b) {
		return
	}
	// The documented body: the raw Evolution block under data, and the
	// normalized block whose instanceName is the display name.
	body, _ := json.Marshal(map[string]any{
		"success": true,
		"data":    map[string]any{"instance": map[string]any{"instanceName": name, "state": b.State}},
		"instance": map[string]any{
			"instanceName": strings.TrimPrefix(name, "t1_"), "apiInstanceName": name, "internalName": name,
			"state": b.State, "profileName": name, "profilePictureUrl": nil, "integration": "WHATSAPP-BAILEYS",
		},
	})
	writeJSON(w, http.StatusOK, string(body))
}
