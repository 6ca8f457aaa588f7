package simulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
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
		Name: GreenAPI,
		// creating and expired are not stateInstance values: the
		// simulator answers them as GREEN-API does (null, and a 400
		// text), and the exporter reads them as these states.
		States: []string{"authorized", "notAuthorized", "blocked", "sleepMode", "starting", "yellowCard", GreenAPICreating, GreenAPIExpired},
		Specials: []Special{
			{State: GreenAPITextStarting, Reads: "starting", Up: true},
			{State: GreenAPITextNotAuthorized, Reads: "notAuthorized", Up: true},
		},
		Faults: []Fault{FaultUnauthorizedOK, FaultQuotaExceeded},
		Instance: func(name, apiURL, id, secret string) string {
			return fmt.Sprintf("name: %q, provider: greenapi, api_url: %q, id_instance: %q, api_token: %q", name, apiURL, id, secret)
		},
		Notification: greenAPINotification,
		deliverer:    func(*Simulator) deliverer { return greenAPIDelivery{} },
		Demo: []DemoInstance{
			// Authorized while its queue grows: messages are not going
			// out (whatsapp_outgoing_queue_messages). While it starts,
			// its queue calls answer HTTP 400 and the exporter shows the
			// last count read; the reboot then sends them all.
			{Name: "demo-shop", ID: "1101000001", Secret: "demo-token-shop", Webhook: WebhookAuth{Token: "demo-webhook-shop"}, MessagesQueue: true, Steps: []Step{
				queued(state("authorized", 80*time.Millisecond, 150*time.Second), 0, 4),
				state("starting", 80*time.Millisecond, 30*time.Second),
			}},
			// A burst of messages that drains, counted under the key
			// with a Cyrillic "с" that the provider's documentation
			// prints.
			{Name: "demo-support", ID: "1101000002", Secret: "demo-token-support", MessagesQueue: true, Steps: []Step{
				cyrillicCount(queued(state("authorized", 120*time.Millisecond, 60*time.Second), 40, -1)),
				state("sleepMode", 120*time.Millisecond, 60*time.Second),
				state("authorized", 120*time.Millisecond, 60*time.Second),
			}},
			{Name: "demo-marketing", ID: "1101000003", Secret: "demo-token-marketing", Steps: []Step{
				state("authorized", 60*time.Millisecond, 40*time.Second),
				state("yellowCard", 60*time.Millisecond, 80*time.Second),
				state("starting", 60*time.Millisecond, 20*time.Second),
				state("authorized", 60*time.Millisecond, 40*time.Second),
			}},
			{Name: "demo-sales", ID: "1101000004", Secret: "demo-token-sales", Webhook: WebhookAuth{Token: "demo-webhook-sales"}, Steps: []Step{
				state("notAuthorized", 100*time.Millisecond, 60*time.Second),
				state("authorized", 100*time.Millisecond, 90*time.Second),
				state("blocked", 100*time.Millisecond, 30*time.Second),
			}},
			// Created, linked, then its plan runs out.
			{Name: "demo-new", ID: "1101000006", Secret: "demo-token-new", Steps: []Step{
				state(GreenAPICreating, 60*time.Millisecond, 40*time.Second),
				state("notAuthorized", 60*time.Millisecond, 40*time.Second),
				state("authorized", 60*time.Millisecond, 100*time.Second),
				state(GreenAPIExpired, 60*time.Millisecond, 60*time.Second),
			}},
			// For the remediation (issue 21): stuck in starting until a
			// reboot, which it takes 20 seconds to come back from; stuck
			// in starting whatever a reboot does (the remediation's
			// re-check finds it unchanged); on a yellow card, which a
			// reboot does not lift (GREEN-API's news "whatsapp-yellow-
			// card"), and which the remediation leaves alone unless its
			// reboot_states name yellowCard.
			{Name: "demo-stuck", ID: "1101000007", Secret: "demo-token-stuck", Steps: []Step{state("starting", 60*time.Millisecond, time.Hour)},
				Reboot: &RebootBehaviour{After: []Step{
					state("starting", 60*time.Millisecond, 20*time.Second),
					state("authorized", 60*time.Millisecond, 24*time.Hour),
				}}},
			{Name: "demo-stuck-hard", ID: "1101000008", Secret: "demo-token-stuck-hard", Steps: []Step{state("starting", 60*time.Millisecond, time.Hour)},
				Reboot: &RebootBehaviour{}},
			{Name: "demo-yellow", ID: "1101000009", Secret: "demo-token-yellow", Steps: []Step{state("yellowCard", 60*time.Millisecond, time.Hour)},
				Reboot: &RebootBehaviour{}},
			// The first sender of the demo's WhatsApp alerts: always
			// working.
			{Name: DemoAlertSender, ID: "1101000010", Secret: "demo-token-alerts", Steps: []Step{state("authorized", 60*time.Millisecond, time.Hour)}},
			{Name: "demo-flaky", ID: "1101000005", Secret: "demo-token-flaky", Timeout: 2 * time.Second, Steps: []Step{
				state("authorized", 300*time.Millisecond, 40*time.Second),
				failing(FaultRateLimited, 50*time.Millisecond, 20*time.Second),
				failing(FaultServerError, 50*time.Millisecond, 20*time.Second),
				state("authorized", 300*time.Millisecond, 40*time.Second),
				failing(FaultHang, 0, 20*time.Second),
				failing(FaultBadGateway, 50*time.Millisecond, 20*time.Second),
			}},
		},
		Account: &AccountDescription{
			Config: func(name, apiURL, key string) string {
				return fmt.Sprintf("name: %q, provider: greenapi, api_url: %q, partner_token: %q, instance_api_url: %q", name, apiURL, key, apiURL)
			},
			Demo: DemoAccount{
				Name: "demo-partner", Key: "demo-partner-token",
				Extra: []string{"refresh_interval: 20s", "name_prefix: partner-"},
				Instances: []DemoInstance{
					{ID: "1102000001", Secret: "demo-token-bakery", Steps: []Step{state("authorized", 70*time.Millisecond, time.Hour)}},
					{ID: "1102000002", Secret: "demo-token-florist", Steps: []Step{
						state("authorized", 70*time.Millisecond, 100*time.Second),
						state("notAuthorized", 70*time.Millisecond, 80*time.Second),
					}},
					{ID: "1102000003", Secret: "demo-token-cafe", Steps: []Step{
						state(GreenAPICreating, 70*time.Millisecond, 30*time.Second),
						state("starting", 70*time.Millisecond, time.Hour),
					}},
					{ID: "1102000004", Secret: "demo-token-old", Steps: []Step{state("authorized", 0, time.Hour)}},
					{ID: "1102000005", Secret: "demo-token-trial", Steps: []Step{state("authorized", 0, time.Hour)}},
				},
				// The cafe is created after a minute (null until its
				// first state) and the florist deleted after two; a
				// deleted instance and the partner's Telegram one are
				// never watched, the expired one is, as expired.
				Steps: []AccountStep{
					{For: 60 * time.Second, Members: []Member{{ID: "1102000001", Name: "bakery"}, {ID: "1102000002", Name: "florist"}, {ID: "1102000004", Name: "old", Deleted: true}, {ID: "1102000005", Name: "trial", Expired: true}, {ID: "7103000006", Name: "news", Product: "telegram"}}},
					{For: 60 * time.Second, Members: []Member{{ID: "1102000001", Name: "bakery"}, {ID: "1102000002", Name: "florist"}, {ID: "1102000003", Name: "cafe"}, {ID: "1102000004", Name: "old", Deleted: true}, {ID: "1102000005", Name: "trial", Expired: true}, {ID: "7103000006", Name: "news", Product: "telegram"}}},
					{For: 60 * time.Second, Members: []Member{{ID: "1102000001", Name: "bakery"}, {ID: "1102000002", Name: "florist", Deleted: true}, {ID: "1102000003", Name: "cafe"}, {ID: "1102000004", Name: "old", Deleted: true}, {ID: "1102000005", Name: "trial", Expired: true}, {ID: "7103000006", Name: "news", Product: "telegram"}}},
				},
			},
		},
	}, route{"GET", "/{instance}/getStateInstance/{token}", (*Simulator).greenAPIState},
		route{"GET", "/{instance}/getMessagesCount/{token}", (*Simulator).greenAPIMessagesCount},
		route{"GET", "/partner/getInstances/{token}", (*Simulator).greenAPIPartnerInstances},
		route{"GET", "/{instance}/reboot/{token}", (*Simulator).greenAPIReboot},
		route{"POST", "/{instance}/sendMessage/{token}", (*Simulator).greenAPISendMessage})
}

// GreenAPI's answers that are no stateInstance, given as a State.
const (
	// GreenAPICreating: getStateInstance answers null while an instance
	// is being created.
	GreenAPICreating = "creating"
	// GreenAPIExpired: the instance's plan is not paid; getStateInstance
	// answers 400 "Instance account is expired. Renew your instance
	// from personal area" (GREEN-API's common errors).
	GreenAPIExpired = "expired"
)

// greenAPINotification is GREEN-API's stateInstanceChanged notification
// (GREEN-API's documentation, "StateInstanceChanged"). It is sent for the
// documented states only: not while an instance is created, nor for a
// plan that expired.
func greenAPINotification(_ *Simulator, id string, b Behaviour, _ string, at time.Time) (Notification, bool) {
	state, up := ProviderOf(GreenAPI).Reads(b) // a state sent as a 400 text is still that state
	if !up || state == "unknown" || state == GreenAPICreating || state == GreenAPIExpired {
		return Notification{}, false
	}
	n, _ := strconv.ParseInt(id, 10, 64)
	body, _ := json.Marshal(map[string]any{
		"typeWebhook":   "stateInstanceChanged",
		"instanceData":  map[string]any{"idInstance": n, "wid": "79876543210@c.us", "typeInstance": "whatsapp"},
		"timestamp":     at.Unix(),
		"stateInstance": state,
	})
	return Notification{Body: body, State: state}, true
}

// greenAPIDelivery is how GREEN-API delivers notifications: each
// instance's are a queue, whose head is resent every minute, for 24
// hours, until it is answered HTTP 200; the later ones wait behind it
// (GREEN-API's documentation, "Working with incoming webhooks").
type greenAPIDelivery struct{}

func (greenAPIDelivery) queued() bool { return true }

func (greenAPIDelivery) header(h http.Header, auth WebhookAuth, _ []byte, _ time.Time) {
	if auth.Token != "" {
		h.Set("Authorization", "Bearer "+auth.Token)
	}
}

func (greenAPIDelivery) retry(attempt, _ int, unit time.Duration) (time.Duration, bool) {
	return 60 * unit, attempt < 24*60
}

// greenAPIUnauthorized is how GREEN-API's partner methods answer a wrong
// partner token, with HTTP 200 (GREEN-API's partner documentation; its Go
// SDK checks every 200 answer for this body).
const greenAPIUnauthorized = `{"code":401,"description":"Unauthorized"}`

// greenAPIPartnerInstances serves GET /partner/getInstances/{partnerToken}:
// every instance of the partner, deleted ones of the last three months
// and those of GREEN-API's other products included, with the fields of
// GREEN-API's "GetInstances" documentation.
func (s *Simulator) greenAPIPartnerInstances(w http.ResponseWriter, r *http.Request) {
	step, members, ok := s.listing(GreenAPI, r.PathValue("token"))
	if !ok {
		// The partner methods answer a wrong partner token with 200.
		writeJSON(w, http.StatusOK, greenAPIUnauthorized)
		return
	}
	if !wait(r, step.Latency) || greenAPIFault(w, r, Behaviour{Fault: step.Fault, RetryAfter: step.RetryAfter}, "getInstances", `{"instances":[]}`) {
		return
	}
	rows := []map[string]any{}
	for _, m := range members {
		id, _ := strconv.ParseInt(m.ID, 10, 64)
		deleted := "0001-01-01T00:00:00"
		if m.Deleted {
			deleted = "2025-01-20T10:00:00"
		}
		product := m.Product
		if product == "" {
			product = "whatsapp"
		}
		rows = append(rows, map[string]any{
			"idInstance": id, "name": m.Name, "typeInstance": product, "typeAccount": "",
			"partnerUserUiid": "", "timeCreated": "2025-01-01T10:00:00",
			"timeDeleted": deleted, "apiTokenInstance": m.Secret, "deleted": m.Deleted, "tariff": "DEVELOPER",
			"isFree": false, "isPartner": true, "expirationDate": "2026-12-31T23:59:59.000Z", "isExpired": m.Expired,
		})
	}
	body, _ := json.Marshal(rows)
	writeJSON(w, http.StatusOK, string(body))
}

// GreenAPICyrillicCountKey is the key of getMessagesCount's answer as
// GREEN-API's English and Russian documentation pages print it, with a
// Cyrillic "с" (U+0441); its other products' pages print a Latin one
// (GREEN-API documentation, "GetMessagesCount",
// https://green-api.com/en/docs/api/queues/GetMessagesCount/).
const GreenAPICyrillicCountKey = "\u0441ount"

// greenAPINotReadyText is GREEN-API's HTTP 400 text for a call an instance
// cannot answer while it is starting or not authorized.
const greenAPINotReadyText = "instance is starting or not authorized"

// greenAPIMessagesCount serves GET /waInstance{id}/getMessagesCount/{token}:
// {"count": N}, the whole queue, without a cap; under the key
// b.QueueCountKey when set. While the instance is starting or not
// authorized it answers HTTP 400 "instance is starting or not
// authorized", as GREEN-API's methods other than getStateInstance are
// reported to in its issue tracker: reported for several methods, not
// confirmed for this one.
func (s *Simulator) greenAPIMessagesCount(w http.ResponseWriter, r *http.Request) {
	b, since, ok := s.greenAPIRequest(w, r, true)
	if !ok || greenAPIFault(w, r, Behaviour{Fault: b.QueueFault, RetryAfter: b.RetryAfter}, "getMessagesCount", `{"messages":0}`) {
		return
	}
	if greenAPINotReady(b.State) {
		http.Error(w, greenAPINotReadyText, http.StatusBadRequest)
		return
	}
	key := b.QueueCountKey
	if key == "" {
		key = "count"
	}
	body, _ := json.Marshal(map[string]int{key: b.QueueAt(since)})
	writeJSON(w, http.StatusOK, string(body))
}

// cyrillicCount makes a step send its queue's count under
// GreenAPICyrillicCountKey.
func cyrillicCount(st Step) Step {
	st.QueueCountKey = GreenAPICyrillicCountKey
	return st
}

// greenAPINotReady reports whether an instance in state cannot answer
// calls other than getStateInstance: starting or not authorized, given as
// a state or as one of the texts that report them.
func greenAPINotReady(state string) bool {
	switch state {
	case "starting", "notAuthorized", GreenAPITextStarting, GreenAPITextNotAuthorized:
		return true
	}
	return false
}

// greenAPIState serves GET /waInstance{id}/getStateInstance/{token}.
func (s *Simulator) greenAPIState(w http.ResponseWriter, r *http.Request) {
	b, _, ok := s.greenAPIRequest(w, r, false)
	if !ok || greenAPIFault(w, r, b, "getStateInstance", `{"statusInstance":"online"}`) {
		return
	}
	switch text, isText := strings.CutPrefix(b.State, "text:"); {
	case isText:
		http.Error(w, text, http.StatusBadRequest)
		return
	case b.State == GreenAPICreating:
		writeJSON(w, http.StatusOK, "null")
		return
	case b.State == GreenAPIExpired:
		http.Error(w, "Instance account is expired. Renew your instance from personal area", http.StatusBadRequest)
		return
	}
	body, _ := json.Marshal(map[string]string{"stateInstance": b.State})
	writeJSON(w, http.StatusOK, string(body))
}

// greenAPIRequest checks an instance request as GREEN-API does (403 for a
// wrong idInstance, 401 for a wrong token, after the latency) and returns
// the instance's behaviour and how long ago it began; false when it has
// answered. queue counts a queue request rather than a state request.
func (s *Simulator) greenAPIRequest(w http.ResponseWriter, r *http.Request, queue bool) (Behaviour, time.Duration, bool) {
	id, ok := strings.CutPrefix(r.PathValue("instance"), "waInstance")
	if !ok {
		http.NotFound(w, r)
		return Behaviour{}, 0, false
	}
	secret, b, since, ok := s.lookupAt(GreenAPI, id, queue)
	if !ok {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return Behaviour{}, 0, false
	}
	if !wait(r, b.Latency) {
		return Behaviour{}, 0, false
	}
	if r.PathValue("token") != secret {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return Behaviour{}, 0, false
	}
	return b, since, true
}

// greenAPIFault writes b's failure in GREEN-API's way for method, and
// reports whether it did; wrongShape is a 200 body without what the
// method returns.
func greenAPIFault(w http.ResponseWriter, r *http.Request, b Behaviour, method, wrongShape string) bool {
	switch b.Fault {
	case FaultUnauthorizedOK:
		writeJSON(w, http.StatusOK, greenAPIUnauthorized)
	case FaultQuotaExceeded:
		writeJSON(w, 466, `{"invokeStatus":{"method":"`+method+`","used":3000,"total":3000,"status":"QUOTE_EXCEEDED","description":"Monthly quota has been exceeded. Upgrade your tariff."},"correspondentsStatus":{"status":"QUOTE_EXCEEDED"}}`)
	case FaultClientError:
		http.Error(w, "Validation failed", http.StatusBadRequest)
	case FaultWrongShape:
		writeJSON(w, http.StatusOK, wrongShape)
	default:
		return fault(w, r, b)
	}
	return true
}
