package simulator

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Actions: GREEN-API's reboot, and the text messages of the three
// providers. Each instance counts its reboots, and every message sent is
// recorded for tests to read (Messages).

// RebootBehaviour is what an instance does when asked to reboot
// (GREEN-API).
type RebootBehaviour struct {
	// After is the schedule the instance follows from a reboot on,
	// counted from the reboot; nil keeps its schedule, as for an
	// instance a reboot does not mend.
	After []Step
	// NotDone answers {"isReboot": false}: the reboot was not done.
	NotDone bool
	// Fault is answered instead of a reboot, with RetryAfter for
	// FaultRateLimited.
	Fault      Fault
	RetryAfter time.Duration
}

// SendBehaviour is what an instance does when asked to send a message.
type SendBehaviour struct {
	// Fault is answered instead of sending, in the provider's way:
	// FaultQuotaExceeded is GREEN-API's 466 for the correspondents'
	// quota, FaultClientError a number not on WhatsApp (Evolution API)
	// or a bad request; FaultRateLimited goes with RetryAfter.
	Fault      Fault
	RetryAfter time.Duration
}

// Message is a message an instance sent.
type Message struct {
	Provider, Instance string
	// To is the recipient's number, digits only, as the request gave it
	// (GREEN-API's chatId without "@c.us").
	To, Text string
}

// instanceActions is an instance's side of the actions, under its own
// lock, apart from the simulator's, which every state request takes.
type instanceActions struct {
	mu      sync.Mutex
	reboot  RebootBehaviour
	send    SendBehaviour
	reboots int64
	// last is when each rate-limited method was last called.
	last map[string]time.Time
}

// ActionSpacing is the least interval between two calls of one
// GREEN-API method of an instance that the simulator accepts: GREEN-API
// answers HTTP 429 to more than one request a second per method (its
// "Rate limiter" page, https://green-api.com/en/docs/api/ratelimiter/;
// API-FACTS.md). The simulator sees arrivals, not departures, so it
// allows actionSlack less: a client spacing its calls a second apart
// must not be refused because the first took longer to arrive.
const (
	ActionSpacing = time.Second
	actionSlack   = 100 * time.Millisecond
)

// SetReboot sets how an instance answers reboots, creating nothing: the
// instance must exist (Set or Schedule).
func (s *Simulator) SetReboot(provider, id string, rb RebootBehaviour) {
	if in := s.instance(provider, id); in != nil {
		in.actions.mu.Lock()
		in.actions.reboot = rb
		in.actions.mu.Unlock()
	}
}

// SetSend sets how an instance answers messages to send.
func (s *Simulator) SetSend(provider, id string, sb SendBehaviour) {
	if in := s.instance(provider, id); in != nil {
		in.actions.mu.Lock()
		in.actions.send = sb
		in.actions.mu.Unlock()
	}
}

// Reboots is how many reboot requests an instance received with its
// token, whatever it answered.
func (s *Simulator) Reboots(provider, id string) int64 {
	in := s.instance(provider, id)
	if in == nil {
		return 0
	}
	in.actions.mu.Lock()
	defer in.actions.mu.Unlock()
	return in.actions.reboots
}

// Messages are the messages sent so far, through every instance, in the
// order they were taken.
func (s *Simulator) Messages() []Message {
	s.msgMu.Lock()
	defer s.msgMu.Unlock()
	return append([]Message(nil), s.messages...)
}

func (s *Simulator) instance(provider, id string) *instance {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.instances[provider+"/"+id]
}

// secretOf is in's secret, which Set may change at any time.
func (s *Simulator) secretOf(in *instance) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return in.secret
}

// sendBehaviour is how the instance answers messages to send (SetSend).
func (a *instanceActions) sendBehaviour() SendBehaviour {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.send
}

// spaced records a call of method and reports whether it came at least
// ActionSpacing (less the slack) after the last one.
func (a *instanceActions) spaced(method string, now time.Time) bool {
	if a.last == nil {
		a.last = map[string]time.Time{}
	}
	last, ok := a.last[method]
	a.last[method] = now
	return !ok || now.Sub(last) >= ActionSpacing-actionSlack
}

// rebootNow applies a reboot: the instance follows After from now on.
func (s *Simulator) rebootNow(in *instance, after []Step) {
	if after == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in.schedule, in.origin, in.setAt = after, time.Now(), time.Now()
}

// record keeps m and returns how many messages were sent so far.
func (s *Simulator) record(m Message) int {
	s.msgMu.Lock()
	defer s.msgMu.Unlock()
	s.messages = append(s.messages, m)
	return len(s.messages)
}

// tooMany answers GREEN-API's 429 for a method called again within a
// second; its body is not documented.
func tooMany(w http.ResponseWriter, retryAfter time.Duration) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
	}
	http.Error(w, "Too Many Requests", http.StatusTooManyRequests)
}

// greenAPIInstance checks an action request as greenAPIRequest does a
// state request (403 for a wrong idInstance, 401 for a wrong token), and
// returns the instance and its id; nil when it has answered.
func (s *Simulator) greenAPIInstance(w http.ResponseWriter, r *http.Request) (*instance, string) {
	id, ok := strings.CutPrefix(r.PathValue("instance"), "waInstance")
	if !ok {
		http.NotFound(w, r)
		return nil, ""
	}
	in := s.instance(GreenAPI, id)
	if in == nil {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return nil, ""
	}
	if r.PathValue("token") != s.secretOf(in) {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return nil, ""
	}
	return in, id
}

// greenAPIReboot serves GET /waInstance{id}/reboot/{token}: {"isReboot":
// true}, or false when the reboot was not done (GREEN-API's
// documentation, "Reboot"; API-FACTS.md).
func (s *Simulator) greenAPIReboot(w http.ResponseWriter, r *http.Request) {
	in, _ := s.greenAPIInstance(w, r)
	if in == nil {
		return
	}
	a := &in.actions
	a.mu.Lock()
	a.reboots++
	rb := a.reboot
	spaced := a.spaced("reboot", time.Now())
	a.mu.Unlock()
	switch {
	case !spaced:
		tooMany(w, 0)
		return
	case greenAPIFault(w, r, Behaviour{Fault: rb.Fault, RetryAfter: rb.RetryAfter}, "reboot", `{"reboot":true}`):
		return
	case rb.NotDone:
		writeJSON(w, http.StatusOK, `{"isReboot":false}`)
		return
	}
	s.rebootNow(in, rb.After)
	writeJSON(w, http.StatusOK, `{"isReboot":true}`)
}

// greenAPISendMessage serves POST /waInstance{id}/sendMessage/{token}
// {"chatId": "<digits>@c.us", "message": "…"}: {"idMessage": "…"}
// (GREEN-API's documentation, "SendMessage",
// https://green-api.com/en/docs/api/sending/SendMessage/): 400
// "Validation failed. Details: …" for a chatId or message missing or a
// message over 20 000 characters (its "Common errors" page; the JSON
// around the text is the simulator's), and with SetSend the 466 of the
// developer plan's quota of correspondents or another fault. It does not
// answer 400 "instance is starting or not authorized" while the instance
// cannot send, which API-FACTS.md reports of GREEN-API's methods other
// than getStateInstance (from its issue tracker, not confirmed for this
// one): it follows "Tracking the state of an instance", below, whose
// messages are queued.
func (s *Simulator) greenAPISendMessage(w http.ResponseWriter, r *http.Request) {
	in, id := s.greenAPIInstance(w, r)
	if in == nil {
		return
	}
	a := &in.actions
	a.mu.Lock()
	sb := a.send
	spaced := a.spaced("sendMessage", time.Now())
	a.mu.Unlock()
	if !spaced {
		tooMany(w, 0)
		return
	}
	var req struct {
		ChatID  string `json:"chatId"`
		Message string `json:"message"`
	}
	to, ok := "", false
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err == nil {
		to, ok = strings.CutSuffix(req.ChatID, "@c.us")
	}
	if !ok || to == "" || req.Message == "" || len([]rune(req.Message)) > 20000 {
		writeJSON(w, http.StatusBadRequest, `{"message":"Validation failed. Details: 'chatId' or 'message' is missing or invalid"}`)
		return
	}
	if greenAPIFault(w, r, Behaviour{Fault: sb.Fault, RetryAfter: sb.RetryAfter}, "sendMessage", `{}`) {
		return
	}
	// Taken whatever the instance's state: GREEN-API queues the
	// messages of an instance that cannot send for 24 hours ("Tracking
	// the state of an instance", greenapi-instance-state-tracking.txt).
	n := s.record(Message{Provider: GreenAPI, Instance: id, To: to, Text: req.Message})
	writeJSON(w, http.StatusOK, `{"idMessage":"BAE5`+strconv.Itoa(n)+`"}`)
}

// evolutionSendText serves POST /message/sendText/{name} with header
// apikey: 201 with the message (Evolution API, sendMessage.router.ts).
// The body is 1.8's {"number", "textMessage": {"text"}} or 2.x's
// {"number", "text"}, as the simulator's version says; each version's
// schema requires its own field and allows others (tags 1.8.2 and 2.3.6).
func (s *Simulator) evolutionSendText(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	in := s.instance(Evolution, name)
	if in == nil {
		evolutionError(w, http.StatusNotFound, "Not Found", `The "`+name+`" instance does not exist`)
		return
	}
	if key := r.Header.Get("apikey"); key != s.secretOf(in) && !s.hasAccount(Evolution, key) {
		evolutionError(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	var req struct {
		Number      string `json:"number"`
		Text        string `json:"text"`
		TextMessage *struct {
			Text string `json:"text"`
		} `json:"textMessage"`
	}
	_ = json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req)
	text, field := req.Text, "text"
	if s.evolutionVersion() == Evolution18 {
		text, field = "", "textMessage"
		if req.TextMessage != nil {
			text = req.TextMessage.Text
		}
	}
	if req.Number == "" || text == "" {
		evolutionError(w, http.StatusBadRequest, "Bad Request", `instance requires property "`+field+`"`)
		return
	}
	sb := in.actions.sendBehaviour()
	switch sb.Fault {
	case FaultNone:
	case FaultClientError:
		// A number not on WhatsApp (Evolution API 2,
		// whatsapp.baileys.service.ts: BadRequestException with the
		// number's check).
		body, _ := json.Marshal(map[string]any{"status": 400, "error": "Bad Request",
			"response": map[string]any{"message": []any{map[string]any{"exists": false, "jid": req.Number + "@s.whatsapp.net", "number": req.Number}}}})
		writeJSON(w, http.StatusBadRequest, string(body))
		return
	case FaultServerError:
		evolutionError(w, http.StatusInternalServerError, "Internal Server Error", "Connection Closed")
		return
	default:
		if fault(w, r, Behaviour{Fault: sb.Fault, RetryAfter: sb.RetryAfter}) {
			return
		}
	}
	n := s.record(Message{Provider: Evolution, Instance: name, To: req.Number, Text: text})
	body, _ := json.Marshal(map[string]any{
		"key":              map[string]any{"remoteJid": req.Number + "@s.whatsapp.net", "fromMe": true, "id": "BAE5" + strconv.Itoa(n)},
		"message":          map[string]any{"conversation": text},
		"messageTimestamp": time.Now().Unix(), "status": "PENDING",
	})
	writeJSON(w, http.StatusCreated, string(body))
}

// wachatSendText serves POST /send/text with Authorization: Bearer KEY,
// {"instanceName", "number", "type": "text", "message", "delay"?}
// (Wachat's API documentation, "Send Text Message",
// https://docs.wachat.net/api-reference/send-text: 200, "queued for
// dispatch"). Its body is not documented, nor are Wachat's error bodies
// and rate limits (API-FACTS.md): the simulator's {"success": true,
// "data": {...}}, its {"success": false, "error"} bodies and their
// statuses (a 200 for FaultUnsuccessful) are guesses in the shape of
// Wachat's documented answers, as wachatState's are.
func (s *Simulator) wachatSendText(w http.ResponseWriter, r *http.Request) {
	var req struct {
		InstanceName string `json:"instanceName"`
		Number       string `json:"number"`
		Type         string `json:"type"`
		Message      string `json:"message"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.InstanceName == "" ||
		req.Number == "" || req.Type != "text" || req.Message == "" {
		writeJSON(w, http.StatusBadRequest, `{"success":false,"error":"instanceName, number, type and message are required"}`)
		return
	}
	in := s.instance(Wachat, req.InstanceName)
	if in == nil {
		writeJSON(w, http.StatusNotFound, `{"success":false,"error":"Instance not found"}`)
		return
	}
	if key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); key != s.secretOf(in) {
		writeJSON(w, http.StatusUnauthorized, `{"success":false,"error":"Invalid API key"}`)
		return
	}
	sb := in.actions.sendBehaviour()
	switch sb.Fault {
	case FaultNone:
	case FaultUnsuccessful:
		writeJSON(w, http.StatusOK, `{"success":false,"error":"Failed to send message"}`)
		return
	case FaultClientError:
		writeJSON(w, http.StatusBadRequest, `{"success":false,"error":"Invalid number"}`)
		return
	case FaultServerError:
		writeJSON(w, http.StatusInternalServerError, `{"success":false,"error":"Internal server error"}`)
		return
	default:
		if fault(w, r, Behaviour{Fault: sb.Fault, RetryAfter: sb.RetryAfter}) {
			return
		}
	}
	n := s.record(Message{Provider: Wachat, Instance: req.InstanceName, To: req.Number, Text: req.Message})
	writeJSON(w, http.StatusOK, `{"success":true,"data":{"key":{"fromMe":true,"id":"BAE5`+strconv.Itoa(n)+`"},"status":"PENDING"}}`)
}
