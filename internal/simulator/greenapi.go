package simulator

import (
	"encoding/json"
	"net/http"
	"strings"
)

// GreenAPI is the provider name the simulator files GREEN-API instances
// under.
const GreenAPI = "greenapi"

func init() {
	routes = append(routes, route{"GET /{instance}/getStateInstance/{token}", (*Simulator).greenAPIState})
}

// greenAPIState serves GET /waInstance{id}/getStateInstance/{token}.
func (s *Simulator) greenAPIState(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.PathValue("instance"), "waInstance")
	if !ok {
		http.NotFound(w, r)
		return
	}
	secret, b, ok := s.lookup(GreenAPI, id)
	if !ok {
		// GREEN-API answers 403 for a wrong idInstance.
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	if !wait(r, b.Latency) {
		return
	}
	if r.PathValue("token") != secret {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	switch b.Fault {
	case FaultUnauthorizedOK:
		writeJSON(w, http.StatusOK, `{"code":401,"description":"Unauthorized"}`)
		return
	case FaultQuotaExceeded:
		writeJSON(w, 466, `{"invokeStatus":{"method":"getStateInstance","used":3000,"total":3000,"status":"QUOTE_EXCEEDED","description":"Monthly quota has been exceeded. Upgrade your tariff."},"correspondentsStatus":{"status":"QUOTE_EXCEEDED"}}`)
		return
	case FaultClientError:
		http.Error(w, "Validation failed", http.StatusBadRequest)
		return
	case FaultWrongShape:
		writeJSON(w, http.StatusOK, `{"statusInstance":"online"}`)
		return
	}
	if fault(w, r, b) {
		return
	}
	if text, ok := strings.CutPrefix(b.State, "text:"); ok {
		http.Error(w, text, http.StatusBadRequest)
		return
	}
	body, _ := json.Marshal(map[string]string{"stateInstance": b.State})
	writeJSON(w, http.StatusOK, string(body))
}
