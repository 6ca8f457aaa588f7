package simulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// GreenAPI is the provider name the simulator files GREEN-API instances
// under.
const GreenAPI = "greenapi"

// GreenAPI's 400 answers that report a state as text, given as a State.
const (
	GreenAPITextStarting      = "text:instance in starting process try later"
	GreenAPITextNotAuthorized = "text:instance account not authorized"
)

func init() {
	register(&Provider{
		Name:   GreenAPI,
		States: []string{"authorized", "notAuthorized", "blocked", "sleepMode", "starting", "yellowCard"},
		Specials: []Special{
			{State: GreenAPITextStarting, Reads: "starting", Up: true},
			{State: GreenAPITextNotAuthorized, Reads: "notAuthorized", Up: true},
		},
		Faults: []Fault{FaultUnauthorizedOK, FaultQuotaExceeded},
		Instance: func(name, apiURL, id, secret string) string {
			return fmt.Sprintf("name: %q, provider: greenapi, api_url: %q, id_instance: %q, api_token: %q", name, apiURL, id, secret)
		},
		Demo: []DemoInstance{
			{Name: "demo-shop", ID: "1101000001", Secret: "demo-token-shop", Steps: []Step{
				state("authorized", 80*time.Millisecond, 150*time.Second),
				state("starting", 80*time.Millisecond, 30*time.Second),
			}},
			{Name: "demo-support", ID: "1101000002", Secret: "demo-token-support", Steps: []Step{
				state("authorized", 120*time.Millisecond, 60*time.Second),
				state("sleepMode", 120*time.Millisecond, 60*time.Second),
				state("authorized", 120*time.Millisecond, 60*time.Second),
			}},
			{Name: "demo-marketing", ID: "1101000003", Secret: "demo-token-marketing", Steps: []Step{
				state("authorized", 60*time.Millisecond, 40*time.Second),
				state("yellowCard", 60*time.Millisecond, 80*time.Second),
				state("starting", 60*time.Millisecond, 20*time.Second),
				state("authorized", 60*time.Millisecond, 40*time.Second),
			}},
			{Name: "demo-sales", ID: "1101000004", Secret: "demo-token-sales", Steps: []Step{
				state("notAuthorized", 100*time.Millisecond, 60*time.Second),
				state("authorized", 100*time.Millisecond, 90*time.Second),
				state("blocked", 100*time.Millisecond, 30*time.Second),
			}},
			{Name: "demo-flaky", ID: "1101000005", Secret: "demo-token-flaky", Timeout: 2 * time.Second, Steps: []Step{
				state("authorized", 300*time.Millisecond, 40*time.Second),
				failing(FaultRateLimited, 50*time.Millisecond, 20*time.Second),
				failing(FaultServerError, 50*time.Millisecond, 20*time.Second),
				state("authorized", 300*time.Millisecond, 40*time.Second),
				failing(FaultHang, 0, 20*time.Second),
				failing(FaultBadGateway, 50*time.Millisecond, 20*time.Second),
			}},
		},
	}, route{"GET", "/{instance}/getStateInstance/{token}", (*Simulator).greenAPIState})
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
