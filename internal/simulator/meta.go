package simulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Meta's WhatsApp Cloud API: the Graph API nodes the exporter reads,
// served below /meta/v23.0 (and /meta/v22.0, an older version).
//
// The sources: Meta's OpenAPI description (github.com/facebook/openapi,
// business-messaging-api_v23.0.yaml: GraphAPIError, CursorPaging, the
// examples of GET /{Phone-Number-ID}, GET /{WABA-ID}/phone_numbers and the
// health_status example of the Flow node) and Meta's documentation pages
// (Health Status, Messaging limits, About the platform → Rate limits,
// Graph API rate limiting, the webhooks reference of account_update,
// phone_number_quality_update, account_review_update and
// business_capability_update).
//
// How a test drives it:
//
//   - A phone number is an instance: Set(Meta, phoneNumberID, token,
//     Behaviour{State: "CONNECTED", Meta: &MetaNumber{...}}). State is its
//     status; Meta its quality, health and settings (nil: a healthy
//     number). Schedule changes them over time as for any provider.
//   - A WABA is an account whose key is its access token:
//     SetAccount(Meta, token, members...) lists the numbers; its WABA ID is
//     MetaWABAID(token) unless SetMetaWABA gives another, with the WABA's
//     own health, review status and request budget.
//   - MetaUsage tells the calls a WABA's budget counted; SetMetaAppBudget
//     bounds the app's calls (X-App-Usage).
//   - SendMetaWebhook posts Meta's notification envelope, signed with an
//     app secret; MetaVerify makes the subscription handshake.

// Meta is the provider name the simulator files Cloud API numbers and
// WABAs under.
const Meta = "meta"

// The Graph API versions served: MetaVersion tells both messaging limit
// fields; MetaOldVersion only messaging_limit_tier, and leaves
// whatsapp_business_manager_messaging_limit out when asked (the
// simulator's assumption: in which version the newer field appeared is
// not documented, and a client asking both must work on either).
const (
	MetaVersion    = "v23.0"
	MetaOldVersion = "v22.0"
)

// Request budgets of a WABA, per app and per hour (About the platform →
// Rate limits): 200 for a WABA, 5 000 for an active one (with a
// registered number). The simulator's WABAs are active unless
// SetMetaWABA says otherwise: a test that calls a number a few hundred
// times must not meet a limit it did not ask for.
const (
	MetaNewBudget    = 200
	MetaActiveBudget = 5000
	// MetaAppBudget is the app's own budget (X-App-Usage) unless
	// SetMetaAppBudget sets another.
	MetaAppBudget = 100000
)

// FaultWABARateLimited answers a WABA's spent budget: code 80007, with
// the usage header telling when access returns (Behaviour.RetryAfter, in
// whole minutes). Its HTTP 400, subcode and message are the simulator's
// assumption, not a documented example: Meta's OpenAPI files 80007 under
// 429 (GET /{Phone-Number-ID}, example business_rate_limit, subcode
// 2446079), as FaultRateLimited serves code 4. Serving both statuses
// shows that the exporter reads the code, whatever the status.
const FaultWABARateLimited Fault = "waba_rate_limited"

// metaStates are the statuses of a business phone number (Graph API
// reference "WhatsApp Business Account To Number Current Status"); its
// UNKNOWN is a Special the exporter reads as unknown.
var metaStates = []string{"PENDING", "DELETED", "MIGRATED", "BANNED", "RESTRICTED", "RATE_LIMITED",
	"FLAGGED", "CONNECTED", "DISCONNECTED", "UNVERIFIED"}

// MetaNumber is what a number tells beyond its status. Its zero value is
// a healthy number: GREEN, every entity AVAILABLE, TIER_2K, STANDARD
// throughput, name APPROVED, VERIFIED, CLOUD_API, LIVE.
type MetaNumber struct {
	// WABAID is the number's WABA: the WABA entity of its health and
	// the budget its calls count against. Empty: the WABA of the token
	// asking when it is an account's, else a WABA of the number's own.
	WABAID string
	// Quality is quality_rating: GREEN, YELLOW, RED, NA or UNKNOWN.
	Quality string
	// Limit is whatsapp_business_manager_messaging_limit (TIER_250,
	// TIER_2K, TIER_10K, TIER_100K, TIER_UNLIMITED); LimitTier the
	// deprecated messaging_limit_tier, by default the nearest of Limit.
	Limit, LimitTier string
	// Throughput is throughput.level: STANDARD, HIGH, NOT_APPLICABLE.
	Throughput       string
	NameStatus       string // name_status
	CodeVerification string // code_verification_status
	PlatformType     string // platform_type
	AccountMode      string // account_mode
	Health           MetaHealth
	// Omit are fields the answer leaves out even when asked.
	Omit []string
}

// MetaHealth is a node's health_status.
type MetaHealth struct {
	// CanSend is the top-level can_send_message; empty for the worst of
	// the entities'. Meta's SIP example has BLOCKED there while every
	// entity's is AVAILABLE (only can_receive_call_sip is BLOCKED).
	CanSend string
	// The entities; a number's WABA, Business and App entities default
	// to its WABA's (SetMetaWABA). Phone is not part of a WABA's node.
	Phone, WABA, Business, App MetaEntity
}

// MetaEntity is one entity of a health_status.
type MetaEntity struct {
	// CanSend is AVAILABLE (when empty), LIMITED or BLOCKED.
	CanSend string
	// Info is additional_info, which comes with LIMITED.
	Info []string
	// Errors come with BLOCKED (and LIMITED, as 141010 in Meta's
	// example).
	Errors []MetaHealthError
	// SIP is can_receive_call_sip, sent when not empty.
	SIP string
}

// MetaHealthError is an entry of an entity's errors.
type MetaHealthError struct {
	Code                  int
	Description, Solution string
}

// Meta's documented health errors and information (OpenAPI's
// health_status example of the Flow node; the Health Status page for the
// display name's additional_info).
var (
	MetaPaymentError = MetaHealthError{141006, "There is an error with the payment method. This will block business initiated conversations.",
		"There was an error with your payment method. Please add a new payment method to the account."}
	MetaWABABanned = MetaHealthError{141014, "The WABA is banned.",
		"Please visit Business Support Home for more details (https://business.facebook.com/accountquality) on how to appeal the ban."}
	MetaBusinessUnverified = MetaHealthError{141010, "The Business has not passed business verification.",
		"Visit business settings and start or resolve the business verification request."}
	MetaDisplayNamePending = "Your display name has not been approved yet. Your message limit will increase after the display name is approved."
)

// MetaWABA is a WABA's own node and budget.
type MetaWABA struct {
	// ID is the WABA ID; empty for MetaWABAID of its token.
	ID, Name string
	// Review is account_review_status (APPROVED when empty);
	// Verification business_verification_status (VERIFIED).
	Review, Verification string
	// Health is the WABA node's health_status (its Phone is not used).
	Health MetaHealth
	// Budget is the calls per Window its token may make (MetaActiveBudget
	// when 0); Window is an hour when 0, shorter in --demo to show usage
	// climbing within minutes.
	Budget int
	Window time.Duration
}

// metaSim is the simulator's Meta state: WABAs and request budgets.
type metaSim struct {
	mu        sync.Mutex
	wabas     map[string]*MetaWABA   // by token (account key)
	wabaByID  map[string]*MetaWABA   // the same, by WABA ID
	buckets   map[string]*metaBucket // by WABA ID
	app       metaBucket
	appBudget int
	// demoEvery is how often --demo pushes a notification; 0 for
	// none (meta_demo.go).
	demoEvery time.Duration
}

// metaBucket are the calls a budget counted within its window, oldest
// first.
type metaBucket struct{ calls []time.Time }

// MetaWABAID is the WABA ID of an account whose key is token, unless
// SetMetaWABA gives another: 15 digits derived from the token, so that
// configurations can be written from the key alone (and the ID tells
// nothing of the token).
func MetaWABAID(token string) string {
	h := fnv.New64a()
	h.Write([]byte("waba:" + token))
	return fmt.Sprintf("1%014d", h.Sum64()%1e14)
}

// metaOwnWABA is the WABA of a number that belongs to no account.
func metaOwnWABA(phoneID string) string { return MetaWABAID("number:" + phoneID) }

// SetMetaWABA sets the WABA of the account whose key is token.
func (s *Simulator) SetMetaWABA(token string, w MetaWABA) {
	s.meta.mu.Lock()
	defer s.meta.mu.Unlock()
	if s.meta.wabas == nil {
		s.meta.wabas, s.meta.wabaByID = map[string]*MetaWABA{}, map[string]*MetaWABA{}
	}
	if old := s.meta.wabas[token]; old != nil {
		delete(s.meta.wabaByID, cmpStr(old.ID, MetaWABAID(token)))
	}
	s.meta.wabas[token] = &w
	s.meta.wabaByID[cmpStr(w.ID, MetaWABAID(token))] = &w
}

// SetMetaAppBudget sets the app's calls per hour (X-App-Usage), beyond
// which every call is answered code 4.
func (s *Simulator) SetMetaAppBudget(calls int) {
	s.meta.mu.Lock()
	defer s.meta.mu.Unlock()
	s.meta.appBudget = calls
}

// MetaUsage is the calls a WABA's budget counts now and the budget.
func (s *Simulator) MetaUsage(wabaID string) (calls, budget int) {
	s.meta.mu.Lock()
	defer s.meta.mu.Unlock()
	budget, window := s.metaBudgetOf(wabaID)
	if b := s.meta.buckets[wabaID]; b != nil {
		b.prune(time.Now(), window)
		calls = len(b.calls)
	}
	return calls, budget
}

// metaWABAOf is the WABA of an account key: its settings (nil when none)
// and ID.
func (s *Simulator) metaWABAOf(token string) (*MetaWABA, string) {
	s.meta.mu.Lock()
	defer s.meta.mu.Unlock()
	if w := s.meta.wabas[token]; w != nil {
		if w.ID != "" {
			return w, w.ID
		}
		return w, MetaWABAID(token)
	}
	return nil, MetaWABAID(token)
}

// metaBudgetOf is a WABA's budget and window. Under s.meta.mu.
func (s *Simulator) metaBudgetOf(wabaID string) (int, time.Duration) {
	if w := s.meta.wabaByID[wabaID]; w != nil {
		return cmp0(w.Budget, MetaActiveBudget), time.Duration(cmp0(int64(w.Window), int64(time.Hour)))
	}
	return MetaActiveBudget, time.Hour
}

func cmp0[T int | int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (b *metaBucket) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(b.calls) && !b.calls[i].After(now.Add(-window)) {
		i++
	}
	b.calls = b.calls[i:]
}

// metaUsage is what a call spent: the share of the WABA's and the app's
// budgets used (in percent, as Graph tells them), and when access
// returns when refused.
type metaUsage struct {
	wabaID        string
	waba, app     int
	regain        time.Duration
	wabaOut, over bool // over: refused by the app's budget
}

// charge counts a call against a WABA's budget and the app's: a call
// beyond either is refused and not counted.
func (s *Simulator) charge(wabaID string, now time.Time) metaUsage {
	s.meta.mu.Lock()
	defer s.meta.mu.Unlock()
	if s.meta.buckets == nil {
		s.meta.buckets = map[string]*metaBucket{}
	}
	b := s.meta.buckets[wabaID]
	if b == nil {
		b = &metaBucket{}
		s.meta.buckets[wabaID] = b
	}
	budget, window := s.metaBudgetOf(wabaID)
	appBudget := cmp0(s.meta.appBudget, MetaAppBudget)
	b.prune(now, window)
	s.meta.app.prune(now, time.Hour)
	u := metaUsage{wabaID: wabaID}
	switch {
	case len(b.calls) >= budget:
		u.wabaOut, u.regain = true, b.calls[len(b.calls)-budget].Add(window).Sub(now)
	case len(s.meta.app.calls) >= appBudget:
		u.over, u.regain = true, s.meta.app.calls[len(s.meta.app.calls)-appBudget].Add(time.Hour).Sub(now)
	default:
		b.calls = append(b.calls, now)
		s.meta.app.calls = append(s.meta.app.calls, now)
	}
	u.waba = min(100, len(b.calls)*100/budget)
	u.app = min(100, len(s.meta.app.calls)*100/appBudget)
	return u
}

// header writes the usage headers Graph sends (Graph API rate limiting):
// X-App-Usage and X-Business-Use-Case-Usage, in percent of the budgets,
// estimated_time_to_regain_access in minutes.
func (u metaUsage) header(h http.Header) {
	app, _ := json.Marshal(map[string]int{"call_count": u.app, "total_cputime": u.app / 4, "total_time": u.app / 3})
	h.Set("X-App-Usage", string(app))
	regain := 0
	if u.wabaOut {
		regain = int((u.regain + time.Minute - 1) / time.Minute)
	}
	buc, _ := json.Marshal(map[string]any{u.wabaID: []map[string]any{{
		"type": "whatsapp_business_management", "call_count": u.waba, "total_cputime": u.waba / 4,
		"total_time": u.waba / 3, "estimated_time_to_regain_access": regain,
	}}})
	h.Set("X-Business-Use-Case-Usage", string(buc))
}

func init() {
	register(&Provider{
		Name:     Meta,
		Path:     "/meta/" + MetaVersion,
		Aliases:  []string{"/meta/" + MetaOldVersion},
		States:   metaStates,
		Specials: []Special{{State: "UNKNOWN", Reads: "unknown", Up: true}},
		Faults:   []Fault{FaultWABARateLimited},
		Instance: func(name, apiURL, id, secret string) string {
			return fmt.Sprintf("name: %q, provider: meta, api_url: %q, phone_number_id: %q, access_token: %q", name, apiURL, id, secret)
		},
		Demo: metaDemo,
		Account: &AccountDescription{
			Config: func(name, apiURL, key string) string {
				return fmt.Sprintf("name: %q, provider: meta, api_url: %q, waba_id: %q, access_token: %q", name, apiURL, MetaWABAID(key), key)
			},
			Demo: metaDemoAccount,
		},
		demoSetup: metaDemoSetup,
		pusher:    metaDemoPush,
	}, route{"GET", "/{id}", (*Simulator).metaNode},
		route{"GET", "/{id}/phone_numbers", (*Simulator).metaPhoneNumbers})
}

// metaToken is the token of a request: Authorization: Bearer, or
// 360dialog's D360-API-KEY, which carries it as it is.
func metaToken(r *http.Request) string {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return t
	}
	return r.Header.Get("D360-API-KEY")
}

// metaVersion is the Graph version a request is addressed to.
func metaVersion(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/meta/"+MetaOldVersion+"/") {
		return MetaOldVersion
	}
	return MetaVersion
}

// metaTrace is the fbtrace_id of Meta's OpenAPI examples.
const metaTrace = "AXsgnV2Cm3ZMGF3dF_cfYIn"

// metaError writes a GraphAPIError (OpenAPI components.schemas).
func metaError(w http.ResponseWriter, status, code, subcode int, typ, message string) {
	e := map[string]any{"message": message, "type": typ, "code": code, "fbtrace_id": metaTrace}
	if subcode != 0 {
		e["error_subcode"] = subcode
	}
	if code == 4 || code == 80007 || status >= 500 {
		e["is_transient"] = true
	}
	if status == http.StatusUnauthorized {
		// What Graph sends with an OAuth error.
		w.Header().Set("WWW-Authenticate", `OAuth "Facebook Platform" "invalid_token" "`+message+`"`)
	}
	body, _ := json.Marshal(map[string]any{"error": e})
	writeJSON(w, status, string(body))
}

// metaNoObject is Graph's answer for an ID that is not there or not the
// token's to read.
func metaNoObject(w http.ResponseWriter, id string) {
	metaError(w, http.StatusBadRequest, 100, 33, "GraphMethodException", fmt.Sprintf(
		"Unsupported get request. Object with ID '%.40s' does not exist, cannot be loaded due to missing permissions, or does not support this operation.", id))
}

// metaFault writes a failure as Graph does and reports whether it did;
// the failures Graph cannot produce go to fault.
func metaFault(w http.ResponseWriter, r *http.Request, b Behaviour, wabaID string) bool {
	retry := func() metaUsage {
		return metaUsage{wabaID: wabaID, waba: 100, app: 100, wabaOut: true, regain: b.RetryAfter}
	}
	switch b.Fault {
	case FaultNone:
		return false
	case FaultUnauthorized:
		metaError(w, http.StatusUnauthorized, 190, 463, "OAuthException", "Error validating access token: Session has expired")
	case FaultForbidden:
		metaError(w, http.StatusForbidden, 200, 1349174, "OAuthException", "Your app doesn't have permission to access this phone number")
	case FaultRateLimited:
		// The app's limit (OpenAPI's 429 example).
		retry().header(w.Header())
		metaError(w, http.StatusTooManyRequests, 4, 2446079, "OAuthException", "Application request limit reached")
	case FaultWABARateLimited:
		retry().header(w.Header())
		metaError(w, http.StatusBadRequest, 80007, 2494055, "OAuthException", "(#80007) There have been too many calls to this WhatsApp Business account. Wait a bit and try again.")
	case FaultNotFound:
		metaError(w, http.StatusNotFound, 803, 0, "GraphMethodException", "Phone number not found")
	case FaultClientError:
		metaError(w, http.StatusBadRequest, 100, 0, "OAuthException", "Invalid parameter")
	case FaultServerError:
		metaError(w, http.StatusInternalServerError, 2, 0, "OAuthException", "An unexpected error has occurred. Please retry your request later.")
	case FaultWrongShape:
		writeJSON(w, http.StatusOK, `{"data":[]}`)
	default:
		return fault(w, r, b)
	}
	return true
}

// metaNode serves GET /{id}?fields=…: a phone number's node, or a WABA's
// when id is the WABA of the token's account.
func (s *Simulator) metaNode(w http.ResponseWriter, r *http.Request) {
	id, token := r.PathValue("id"), metaToken(r)
	fields, err := parseMetaFields(r.URL.Query().Get("fields"))
	if err != nil {
		metaError(w, http.StatusBadRequest, 100, 0, "OAuthException", err.Error())
		return
	}
	if token == "" {
		metaError(w, http.StatusUnauthorized, 104, 0, "OAuthException", "An access token is required to request this resource.")
		return
	}
	if secret, b, ok := s.lookup(Meta, id); ok {
		s.metaNumber(w, r, id, token, secret, b, fields)
		return
	}
	if waba, wabaID := s.metaWABAOf(token); wabaID == id && s.hasAccount(Meta, token) {
		s.metaWABA(w, r, waba, wabaID, token, fields)
		return
	}
	metaNoObject(w, id)
}

// metaNumber answers a phone number's node. A number answers its own
// token and the token of any WABA account: a system user of the
// business reads all its numbers.
func (s *Simulator) metaNumber(w http.ResponseWriter, r *http.Request, id, token, secret string, b Behaviour, fields []metaField) {
	if !wait(r, b.Latency) {
		return
	}
	var waba *MetaWABA
	wabaID := metaOwnWABA(id)
	if token != secret {
		if !s.hasAccount(Meta, token) {
			metaError(w, http.StatusUnauthorized, 190, 0, "OAuthException", "Invalid OAuth access token - Cannot parse access token")
			return
		}
		waba, wabaID = s.metaWABAOf(token)
	}
	if b.Meta != nil && b.Meta.WABAID != "" {
		wabaID = b.Meta.WABAID
	}
	if metaFault(w, r, b, wabaID) {
		return
	}
	u := s.charge(wabaID, time.Now())
	u.header(w.Header())
	if metaRefused(w, u) {
		return
	}
	node, err := metaSelect(metaNumberNode(id, b, waba, wabaID, metaVersion(r)), fields, metaNumberFields, "WhatsAppBusinessPhoneNumber")
	if err != nil {
		metaError(w, http.StatusBadRequest, 100, 0, "OAuthException", err.Error())
		return
	}
	body, _ := json.Marshal(node)
	writeJSON(w, http.StatusOK, string(body))
}

// metaRefused writes the error of a call beyond a budget: the WABA's as
// FaultWABARateLimited, the app's as code 4 with HTTP 400 (the same
// assumption; the OpenAPI's example of code 4 is a 429).
func metaRefused(w http.ResponseWriter, u metaUsage) bool {
	switch {
	case u.wabaOut:
		metaError(w, http.StatusBadRequest, 80007, 2494055, "OAuthException", "(#80007) There have been too many calls to this WhatsApp Business account. Wait a bit and try again.")
	case u.over:
		metaError(w, http.StatusBadRequest, 4, 1349210, "OAuthException", "(#4) Application request limit reached")
	default:
		return false
	}
	return true
}

// metaWABA answers a WABA's node, with the phone_numbers edge when asked
// (field expansion: phone_numbers.limit(N){fields}).
func (s *Simulator) metaWABA(w http.ResponseWriter, r *http.Request, waba *MetaWABA, wabaID, token string, fields []metaField) {
	step, ok := s.metaListingCall(w, r, token, wabaID)
	if !ok {
		return
	}
	if waba == nil {
		waba = &MetaWABA{}
	}
	node := map[string]any{
		"id": wabaID, "name": cmpStr(waba.Name, "Lucky Shrub"), "account_review_status": cmpStr(waba.Review, "APPROVED"),
		"business_verification_status": cmpStr(waba.Verification, "VERIFIED"), "ownership_type": "SELF",
		"currency": "USD", "timezone_id": "1", "message_template_namespace": "c7aa2b3f_5f4b_4a1e_9d6f_5c0f9b0e2a11",
		"health_status": metaHealthNode(MetaHealth{CanSend: waba.Health.CanSend, WABA: waba.Health.WABA,
			Business: waba.Health.Business, App: waba.Health.App}, "", wabaID, false),
	}
	version := metaVersion(r)
	for _, f := range fields {
		if f.name == "phone_numbers" {
			page := s.metaPage(r, step.Members, waba, wabaID, version, f.limit, "", f.sub, false)
			if e, bad := page["error"].(string); bad {
				metaError(w, http.StatusBadRequest, 100, 0, "OAuthException", e)
				return
			}
			node["phone_numbers"] = page
		}
	}
	out, err := metaSelect(node, fields, metaWABAFields, "WhatsAppBusinessAccount")
	if err != nil {
		metaError(w, http.StatusBadRequest, 100, 0, "OAuthException", err.Error())
		return
	}
	body, _ := json.Marshal(out)
	writeJSON(w, http.StatusOK, string(body))
}

// metaPhoneNumbers serves GET /{waba-id}/phone_numbers?fields=…&limit=N
// &after=CURSOR: a page of the WABA's numbers.
func (s *Simulator) metaPhoneNumbers(w http.ResponseWriter, r *http.Request) {
	id, token := r.PathValue("id"), metaToken(r)
	q := r.URL.Query()
	fields, err := parseMetaFields(q.Get("fields"))
	if err != nil {
		metaError(w, http.StatusBadRequest, 100, 0, "OAuthException", err.Error())
		return
	}
	limit := 0
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 {
			metaError(w, http.StatusBadRequest, 100, 0, "OAuthException", "(#100) Param limit must be a positive integer")
			return
		}
	}
	if token == "" {
		metaError(w, http.StatusUnauthorized, 104, 0, "OAuthException", "An access token is required to request this resource.")
		return
	}
	waba, wabaID := s.metaWABAOf(token)
	if !s.hasAccount(Meta, token) {
		metaError(w, http.StatusUnauthorized, 190, 0, "OAuthException", "Invalid OAuth access token - Cannot parse access token")
		return
	}
	if wabaID != id {
		metaNoObject(w, id)
		return
	}
	step, ok := s.metaListingCall(w, r, token, wabaID)
	if !ok {
		return
	}
	page := s.metaPage(r, step.Members, waba, wabaID, metaVersion(r), limit, q.Get("after"), fields, true)
	if e, bad := page["error"].(string); bad {
		metaError(w, http.StatusBadRequest, 100, 0, "OAuthException", e)
		return
	}
	body, _ := json.Marshal(page)
	writeJSON(w, http.StatusOK, string(body))
}

// metaListingCall is a listing call of the WABA wabaID whose token is
// token: its step's latency and fault, then a call charged to the
// WABA's budget. ok is false when it wrote a failure.
func (s *Simulator) metaListingCall(w http.ResponseWriter, r *http.Request, token, wabaID string) (step AccountStep, ok bool) {
	step, _ = s.metaListing(token)
	if !wait(r, step.Latency) || metaFault(w, r, Behaviour{Fault: step.Fault, RetryAfter: step.RetryAfter}, wabaID) {
		return step, false
	}
	u := s.charge(wabaID, time.Now())
	u.header(w.Header())
	return step, !metaRefused(w, u)
}

// metaListing counts a listing call of the WABA whose token is key and
// returns its current step; its members' behaviours are read a page at a
// time (metaMembers), so that a page of a WABA of 10 000 numbers costs a
// page's work.
func (s *Simulator) metaListing(key string) (AccountStep, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.accounts[Meta+"/"+key]
	if !ok {
		return AccountStep{}, false
	}
	a.calls.Add(1)
	return currentAccountStep(a.schedule, time.Since(s.start)), true
}

// metaMembers are members with their numbers' current behaviours.
func (s *Simulator) metaMembers(ms []Member) []listed {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]listed, 0, len(ms))
	for _, m := range ms {
		l := listed{Member: m}
		if in, ok := s.instances[Meta+"/"+m.ID]; ok {
			l.Secret, l.Behaviour = in.secret, current(in.schedule, s.elapsed(in))
		}
		out = append(out, l)
	}
	return out
}

// metaDefaultLimit and metaMaxLimit bound a page (OpenAPI: limit 1 to
// 100, default 25).
const (
	metaDefaultLimit = 25
	metaMaxLimit     = 100
)

// metaPage is a page of numbers from after on: {"data":[…],"paging":
// {"cursors":{"before","after"},"next"}}; next, the full URL of the
// edge's next page, only when there is one. edge says the request is the
// edge's, not the WABA node's expansion (phone_numbers.limit(N){…}),
// whose next names the edge with the expansion's fields. A bad cursor
// gives {"error": message}.
func (s *Simulator) metaPage(r *http.Request, members []Member, waba *MetaWABA, wabaID, version string, limit int, after string, fields []metaField, edge bool) map[string]any {
	if limit <= 0 {
		limit = metaDefaultLimit
	}
	limit = min(limit, metaMaxLimit)
	start := 0
	if after != "" {
		raw, err := base64.StdEncoding.DecodeString(after)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(raw), "cursor:"))
		if err != nil || err2 != nil || n < 0 || !strings.HasPrefix(string(raw), "cursor:") {
			return map[string]any{"error": "(#100) Invalid cursor"}
		}
		start = min(n, len(members))
	}
	end := min(start+limit, len(members))
	if fields == nil {
		fields = metaListDefault
	}
	data := []any{}
	for _, m := range s.metaMembers(members[start:end]) {
		b := m.Behaviour
		if b.Fault != FaultNone {
			b = Behaviour{} // a number the listing cannot read: its id alone
		}
		node, err := metaSelect(metaNumberNode(m.ID, b, waba, wabaID, version), fields, metaNumberFields, "WhatsAppBusinessPhoneNumber")
		if err != nil {
			return map[string]any{"error": err.Error()}
		}
		data = append(data, node)
	}
	page := map[string]any{"data": data}
	if end > start {
		paging := map[string]any{"cursors": map[string]string{
			"before": base64.StdEncoding.EncodeToString([]byte("cursor:" + strconv.Itoa(start))),
			"after":  base64.StdEncoding.EncodeToString([]byte("cursor:" + strconv.Itoa(end))),
		}}
		if end < len(members) {
			// The edge's next page; an expansion's is the edge's
			// too, with the expansion's fields.
			path, q := r.URL.Path, r.URL.Query()
			if !edge {
				path += "/phone_numbers"
				q = url.Values{}
				if fields != nil {
					q.Set("fields", metaFieldString(fields))
				}
			}
			q.Set("after", paging["cursors"].(map[string]string)["after"])
			q.Set("limit", strconv.Itoa(limit))
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			paging["next"] = (&url.URL{Scheme: scheme, Host: r.Host, Path: path, RawQuery: q.Encode()}).String()
		}
		page["paging"] = paging
	}
	return page
}

func cmpStr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// metaOldTier is the messaging_limit_tier nearest a
// whatsapp_business_manager_messaging_limit.
func metaOldTier(limit string) string {
	if limit == "TIER_2K" {
		return "TIER_1K"
	}
	return limit
}

// metaNumberNode is every field a number tells. A Behaviour without a
// State (a listed number the simulator does not hold) tells its id alone.
func metaNumberNode(id string, b Behaviour, waba *MetaWABA, wabaID, version string) map[string]any {
	if b.State == "" {
		return map[string]any{"id": id}
	}
	n := MetaNumber{}
	if b.Meta != nil {
		n = *b.Meta
	}
	quality, platform, name := "GREEN", "CLOUD_API", "APPROVED"
	switch b.State {
	case "FLAGGED":
		quality = "RED"
	case "PENDING", "UNVERIFIED":
		quality, platform, name = "NA", "NOT_APPLICABLE", "PENDING_REVIEW"
	}
	limit := cmpStr(n.Limit, "TIER_2K")
	h := n.Health
	if waba != nil {
		for _, e := range []struct{ own, waba *MetaEntity }{{&h.WABA, &waba.Health.WABA}, {&h.Business, &waba.Health.Business}, {&h.App, &waba.Health.App}} {
			if e.own.CanSend == "" {
				*e.own = *e.waba
			}
		}
	}
	node := map[string]any{
		"id": id, "display_phone_number": metaDisplay(id), "verified_name": "Lucky Shrub",
		"status": b.State, "quality_rating": cmpStr(n.Quality, quality),
		"messaging_limit_tier": cmpStr(n.LimitTier, metaOldTier(limit)),
		"throughput":           map[string]any{"level": cmpStr(n.Throughput, "STANDARD")},
		"name_status":          cmpStr(n.NameStatus, name), "code_verification_status": cmpStr(n.CodeVerification, "VERIFIED"),
		"account_mode": cmpStr(n.AccountMode, "LIVE"), "platform_type": cmpStr(n.PlatformType, platform),
		"is_official_business_account": false, "is_on_biz_app": false, "is_pin_enabled": true,
		"country_code": "US", "country_dial_code": "1", "search_visibility": "VISIBLE",
		"last_onboarded_time": "2025-01-20T10:00:00+0000",
		"health_status":       metaHealthNode(h, id, wabaID, true),
	}
	if version != MetaOldVersion {
		node["whatsapp_business_manager_messaging_limit"] = limit
	}
	for _, f := range n.Omit {
		if f != "id" {
			delete(node, f)
		}
	}
	return node
}

// metaDisplay is a number's display_phone_number: a fictional US number
// (555) derived from its ID.
func metaDisplay(id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("1555%07d", h.Sum32()%1e7)
}

// The IDs of Meta's Health Status example, for the entities whose IDs
// the simulator does not otherwise hold.
const (
	metaBusinessID = "506914307656634"
	metaAppID      = "634974688087057"
)

// metaHealthNode is a health_status: the top-level can_send_message,
// unless set, is the worst of the entities' (Health Status doc).
func metaHealthNode(h MetaHealth, phoneID, wabaID string, phone bool) map[string]any {
	rank := map[string]int{"AVAILABLE": 0, "LIMITED": 1, "BLOCKED": 2}
	worst := "AVAILABLE"
	var entities []any
	add := func(typ, id string, e MetaEntity) {
		can := cmpStr(e.CanSend, "AVAILABLE")
		if rank[can] > rank[worst] {
			worst = can
		}
		node := map[string]any{"entity_type": typ, "id": id, "can_send_message": can}
		if len(e.Info) > 0 {
			node["additional_info"] = e.Info
		}
		if len(e.Errors) > 0 {
			var errs []any
			for _, x := range e.Errors {
				errs = append(errs, map[string]any{"error_code": x.Code, "error_description": x.Description, "possible_solution": x.Solution})
			}
			node["errors"] = errs
		}
		if e.SIP != "" {
			node["can_receive_call_sip"] = e.SIP
		}
		entities = append(entities, node)
	}
	if phone {
		add("PHONE_NUMBER", phoneID, h.Phone)
	}
	add("WABA", wabaID, h.WABA)
	add("BUSINESS", metaBusinessID, h.Business)
	add("APP", metaAppID, h.App)
	return map[string]any{"can_send_message": cmpStr(h.CanSend, worst), "entities": entities}
}

// The fields each node type has: asking for another is Graph's error
// 100. Those without a value in the simulator are left out of answers.
var (
	metaNumberFields = []string{"id", "whatsapp_business_manager_messaging_limit", "display_phone_number", "verified_name", "status", "quality_rating",
		"messaging_limit_tier", "throughput", "name_status", "new_name_status", "code_verification_status",
		"account_mode", "platform_type", "is_official_business_account", "is_on_biz_app", "is_pin_enabled",
		"country_code", "country_dial_code", "search_visibility", "last_onboarded_time", "health_status",
		"certificate", "new_certificate", "host_platform", "unified_cert_status", "username", "webhook_configuration"}
	metaWABAFields = []string{"id", "name", "account_review_status", "business_verification_status",
		"ownership_type", "currency", "timezone_id", "message_template_namespace", "health_status",
		"phone_numbers", "country", "status", "primary_funding_id", "on_behalf_of_business_info"}
	// metaListDefault are the fields of a listing without fields=.
	metaListDefault = []metaField{{name: "verified_name"}, {name: "code_verification_status"},
		{name: "display_phone_number"}, {name: "quality_rating"}, {name: "platform_type"}, {name: "throughput"}, {name: "id"}}
	// metaNodeDefault are the fields of a node without fields=.
	metaNodeDefault = []metaField{{name: "id"}, {name: "display_phone_number"}, {name: "verified_name"}, {name: "quality_rating"}, {name: "name"}}
)

// metaField is one field of a fields= parameter: a name, an optional
// .limit(N), and the fields of its own value.
type metaField struct {
	name  string
	limit int
	sub   []metaField
}

// metaMaxFields bounds a fields= parameter.
const metaMaxFields = 4096

// parseMetaFields reads Graph's fields= syntax: a,b{c,d},e.limit(5){f}.
// Empty is nil: the node's default fields.
func parseMetaFields(s string) ([]metaField, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > metaMaxFields {
		return nil, fmt.Errorf("(#100) fields is longer than %d characters", metaMaxFields)
	}
	fields, rest, err := parseMetaFieldList(s, 0)
	if err == nil && rest != "" {
		err = fmt.Errorf("(#100) Syntax error in fields at %q", rest)
	}
	return fields, err
}

func parseMetaFieldList(s string, depth int) ([]metaField, string, error) {
	if depth > 4 {
		return nil, s, fmt.Errorf("(#100) fields nest too deep")
	}
	var out []metaField
	for {
		i := strings.IndexAny(s, ".{},()")
		if i < 0 {
			i = len(s)
		}
		f := metaField{name: strings.TrimSpace(s[:i])}
		if f.name == "" {
			return nil, s, fmt.Errorf("(#100) Syntax error in fields at %q", s)
		}
		s = s[i:]
		if rest, ok := strings.CutPrefix(s, ".limit("); ok {
			j := strings.IndexByte(rest, ')')
			n, err := strconv.Atoi(rest[:max(j, 0)])
			if j < 0 || err != nil || n < 1 {
				return nil, s, fmt.Errorf("(#100) Syntax error in fields at %q", s)
			}
			f.limit, s = n, rest[j+1:]
		}
		if rest, ok := strings.CutPrefix(s, "{"); ok {
			sub, after, err := parseMetaFieldList(rest, depth+1)
			if err != nil {
				return nil, s, err
			}
			if after, ok = strings.CutPrefix(after, "}"); !ok {
				return nil, s, fmt.Errorf("(#100) Syntax error in fields: a { is not closed")
			}
			f.sub, s = sub, after
		}
		out = append(out, f)
		rest, more := strings.CutPrefix(s, ",")
		if !more {
			return out, s, nil
		}
		s = rest
	}
}

// metaSelect keeps the fields asked of a node (its defaults when none)
// and its id, as Graph does; a field the node type does not have is
// error 100.
func metaSelect(node map[string]any, fields []metaField, known []string, nodeType string) (map[string]any, error) {
	asked := fields != nil
	if !asked {
		fields = metaNodeDefault
	}
	out := map[string]any{"id": node["id"]}
	for _, f := range fields {
		if asked && !slices.Contains(known, f.name) {
			return nil, fmt.Errorf("(#100) Tried accessing nonexisting field (%.40s) on node type (%s)", f.name, nodeType)
		}
		v, ok := node[f.name]
		if !ok {
			continue
		}
		if f.sub != nil {
			v = metaSub(v, f.sub)
		}
		out[f.name] = v
	}
	return out, nil
}

// metaSub keeps the sub-fields asked of a value: of an object, of each
// object of a list; an edge's page keeps its paging.
func metaSub(v any, sub []metaField) any {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["data"]; ok {
			return v // an edge's page, already selected
		}
		out := map[string]any{}
		for _, f := range sub {
			if x, ok := v[f.name]; ok {
				if f.sub != nil {
					x = metaSub(x, f.sub)
				}
				out[f.name] = x
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = metaSub(x, sub)
		}
		return out
	}
	return v
}

// metaFieldString writes fields back in Graph's syntax.
func metaFieldString(fields []metaField) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f.name)
		if f.limit > 0 {
			fmt.Fprintf(&b, ".limit(%d)", f.limit)
		}
		if f.sub != nil {
			b.WriteString("{" + metaFieldString(f.sub) + "}")
		}
	}
	return b.String()
}
