package simulator

import (
	"encoding/json"
	"net/http"
)

// Evolution is the provider name the simulator files Evolution API
// instances under. Its API is served below /evolution.
const Evolution = "evolution"

// EvolutionPath is the simulator's path of an Evolution API server.
const EvolutionPath = "/evolution"

func init() {
	routes = append(routes, route{"GET " + EvolutionPath + "/instance/connectionState/{name}", (*Simulator).evolutionState})
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
