package collector

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/maphash"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/lograte"
)

// Meta's webhooks (the Cloud API's "whatsapp_business_account" object):
// one callback URL per app, which Meta first verifies with a GET
// handshake (hub.challenge echoed when hub.verify_token is the one
// configured), then POSTs batches of changes to, each signed for the
// app: X-Hub-Signature-256 is "sha256=" and the hex HMAC-SHA256 of the
// raw body keyed with the app secret. A change names a WABA, not a
// number, and tells of the account (bans, restrictions, review) or
// that something changed (quality, limits) without the value: what it
// tells of the WABA is kept in the account's metaAccountState.pushed and
// exposed per account; every change of the four fields the exporter
// subscribes to makes the WABA's listing (or a single number's call) due
// at once, within the request budget, so that the values come from
// Meta's API, never from a notification.

// maxMetaNotificationBytes bounds a delivery's body. The four account
// fields take a few hundred bytes per change; the app's one callback URL
// also gets every other field the app subscribes to (messages and their
// statuses, batched by Meta), which the exporter acknowledges unread. A
// body beyond this can only be such traffic: it is answered 200
// (too_large) so that Meta does not retry it, and is never held.
const maxMetaNotificationBytes = 1 << 20

// Bounds of what a delivery may make the exporter do or keep.
const (
	// maxMetaChallenge bounds the hub.challenge echoed: Meta's is a
	// number of about ten digits.
	maxMetaChallenge = 64
	// metaNotifyFloor is the least time between the start of a WABA's
	// (or a number's) last call and the call a notification makes due:
	// a burst of changes (a ban comes with restrictions, and every
	// number's quality update with it) costs one call, not one each.
	metaNotifyFloor = 10 * time.Second
	// metaRedelivery is how long Meta retries a failed delivery (7 days,
	// its Throughput page); a change older than that, with an hour's
	// margin, is no delivery of Meta's but a replay.
	metaRedelivery = 7*24*time.Hour + time.Hour
	// maxMetaRecent bounds the digests of the changes an account
	// remembers to tell a redelivery (or a replay) from a new change.
	maxMetaRecent = 64
)

// The fields of the app's subscription the exporter reads; every other
// (messages above all) is counted as "other" and never decoded.
const (
	metaFieldAccountUpdate      = "account_update"
	metaFieldQualityUpdate      = "phone_number_quality_update"
	metaFieldReviewUpdate       = "account_review_update"
	metaFieldCapabilityUpdate   = "business_capability_update"
	metaFieldOther              = "other"
	metaObjectBusinessAccount   = "whatsapp_business_account"
	metaSignatureHeader         = "X-Hub-Signature-256"
	metaSignaturePrefix         = "sha256="
	metaHandshakeForbiddenWords = "forbidden\n"
)

// MetaWebhookFields are the values of the field label of
// whatsapp_meta_webhook_changes_total, in order.
var MetaWebhookFields = []string{metaFieldAccountUpdate, metaFieldQualityUpdate, metaFieldReviewUpdate, metaFieldCapabilityUpdate, metaFieldOther}

// MetaRestrictionTypes are the restriction types account_update
// documents (its reference page); any other is "other".
var MetaRestrictionTypes = []string{
	"RESTRICTED_ADD_PHONE_NUMBER_ACTION",
	"RESTRICTED_BIZ_INITIATED_MESSAGING",
	"RESTRICTED_CUSTOMER_INITIATED_MESSAGING",
	"RESTRICTED_BUSINESS_INITIATED_CALLING",
	"RESTRICTED_USER_INITIATED_CALLING",
	"RESTRICTED_USER_INITIATED_CALLING_CALL_BUTTON_HIDDEN",
	"RESTRICTED_BIZ_INITIATED_AND_USER_INITIATED_CALLING",
	"RESTRICTED_DIRECT_SEND_UTILITY_TEMPLATES",
	"RESTRICTED_UTILITY_TEMPLATES",
}

// MetaBanStates are the values of ban_info.waba_ban_state.
var MetaBanStates = []string{"DISABLE", "REINSTATE", "SCHEDULE_FOR_DISABLE"}

// metaReviewDecisions are the values of account_review_update's decision.
var metaReviewDecisions = []string{"APPROVED", "REJECTED", "PENDING", "DEFERRED"}

// metaPushed is what a WABA's notifications told, kept with the account
// across reloads (metaAccountState). It is memory only: a restart forgets
// it, and the polls it made due have brought what Meta's API says.
type metaPushed struct {
	mu sync.Mutex
	// restrictions are the restrictions announced by account_update, by
	// type (MetaRestrictionTypes or "other"), while not expired.
	restrictions map[string]metaRestriction
	// ban is the last waba_ban_state told, "" before any; review the
	// last review decision. Each with the time of the change that told
	// it (entry.time), which orders them.
	ban, review     string
	banAt, reviewAt time.Time
	// recent are digests of the changes applied lately, with their
	// times: a change redelivered (or replayed) is stale.
	recent map[uint64]time.Time
	// changes count the authenticated changes by field
	// (MetaWebhookFields).
	changes [5]atomic.Uint64
}

type metaRestriction struct {
	expiry, at time.Time
}

// metaSeed keys the digests of changes.
var metaSeed = maphash.MakeSeed()

// seen records the digest of a change at its time and reports whether it
// was applied before. The oldest digests go first when full.
func (p *metaPushed) seen(digest uint64, at time.Time) bool {
	if _, ok := p.recent[digest]; ok {
		return true
	}
	if p.recent == nil {
		p.recent = map[uint64]time.Time{}
	}
	if len(p.recent) >= maxMetaRecent {
		var oldest uint64
		first := true
		for d, t := range p.recent {
			if first || t.Before(p.recent[oldest]) {
				oldest, first = d, false
			}
		}
		delete(p.recent, oldest)
	}
	p.recent[digest] = at
	return false
}

// metaEnvelope is a delivery. Values are decoded only for the fields the
// exporter reads.
type metaEnvelope struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string            `json:"id"`
		Time    int64             `json:"time"`
		Changes []metaEntryChange `json:"changes"`
	} `json:"entry"`
}

// metaEntryChange is one change of an entry: its field, and its value
// as it came, decoded only when the field is one the exporter reads.
type metaEntryChange struct {
	Field string          `json:"field"`
	Value json.RawMessage `json:"value"`
}

// metaChange is the value of the four fields the exporter reads: only
// what it keeps or logs (no phone number, no free text).
type metaChange struct {
	Event   string `json:"event"`
	BanInfo *struct {
		State string `json:"waba_ban_state"`
	} `json:"ban_info"`
	RestrictionInfo []struct {
		Type       string          `json:"restriction_type"`
		Expiration json.RawMessage `json:"expiration"`
	} `json:"restriction_info"`
	ViolationInfo *struct {
		Type string `json:"violation_type"`
	} `json:"violation_info"`
	Decision string `json:"decision"`
}

// metaSubject is what a WABA's notifications reach: an account (a WABA
// listed) or a single number configured with its waba_id, and the app
// secret that must have signed them.
type metaSubject struct {
	secret  string
	account *account
	target  *target
}

// metaIndex is what a snapshot's meta configuration gives the receiver:
// the distinct app secrets and verify tokens, and the subjects by WABA
// ID. Built once per snapshot, on the first delivery that needs it.
type metaIndex struct {
	snap         *snapshot
	secrets      [][]byte
	verifyTokens [][]byte
	byWABA       map[string][]metaSubject
}

// metaCredentialed is a meta configuration: a MetaSpec or a
// MetaAccountSpec (or a test's).
type metaCredentialed interface{ webhookCreds() metaWebhookCreds }

// metaIndexCache is the index of the last snapshot a delivery read: a
// reload makes a new one; a collector's deliveries share it.
var metaIndexCache atomic.Pointer[metaIndex]

func metaIndexOf(snap *snapshot) *metaIndex {
	if idx := metaIndexCache.Load(); idx != nil && idx.snap == snap {
		return idx
	}
	idx := &metaIndex{snap: snap, byWABA: map[string][]metaSubject{}}
	secrets, tokens := map[string]bool{}, map[string]bool{}
	add := func(cr metaWebhookCreds, s metaSubject) {
		if cr.appSecret != "" && !secrets[cr.appSecret] {
			secrets[cr.appSecret] = true
			idx.secrets = append(idx.secrets, []byte(cr.appSecret))
		}
		if cr.verifyToken != "" && !tokens[cr.verifyToken] {
			tokens[cr.verifyToken] = true
			idx.verifyTokens = append(idx.verifyTokens, []byte(cr.verifyToken))
		}
		if cr.wabaID != "" && cr.appSecret != "" {
			s.secret = cr.appSecret
			idx.byWABA[cr.wabaID] = append(idx.byWABA[cr.wabaID], s)
		}
	}
	for _, a := range snap.accounts {
		if spec, ok := a.spec.(metaCredentialed); ok {
			add(spec.webhookCreds(), metaSubject{account: a})
		}
	}
	for _, t := range snap.targets {
		// Numbers a WABA found are reached through their account.
		if spec, ok := t.spec.(metaCredentialed); ok && t.foundBy == nil {
			add(spec.webhookCreds(), metaSubject{target: t})
		}
	}
	metaIndexCache.Store(idx)
	return idx
}

// metaLogs bound the lines that requests from anyone can write: refused
// handshakes and refused signatures.
var metaLogs = struct{ handshake, signature *lograte.Limiter }{
	lograte.New(unknownLogBurst, unknownLogPeriod), lograte.New(unknownLogBurst, unknownLogPeriod),
}

func metaLogRefused(c *Collector, l *lograte.Limiter, now time.Time, msg string, args ...any) {
	ok, held := l.Allow(now)
	if !ok {
		return
	}
	if held > 0 {
		args = append(args, "held_back", held)
	}
	c.logger.Warn(msg+" (at most 10 lines a minute)", args...)
}

// serveMetaWebhook serves /webhook/meta and below: the subscription
// handshake (GET) and the deliveries (POST). No answer and no log line
// quotes the request: its body holds people's messages when the app
// sends them to this URL too.
func serveMetaWebhook(c *Collector, w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		serveMetaHandshake(c, w, r)
	case http.MethodPost:
		c.metrics.notification("meta", receiveMeta(c, r, time.Now()))
		// 200 for every outcome: Meta retries anything else for 7 days,
		// with backoff that also delays the app's other deliveries, and
		// none of the refusals would go better the next time. The
		// outcomes are counted and logged instead.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "ok\n")
	default:
		w.Header().Set("Allow", "GET, POST")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = io.WriteString(w, "method not allowed\n")
	}
}

// serveMetaHandshake answers Meta's verification of the callback URL:
// the challenge, when the verify token is one configured for meta.
func serveMetaHandshake(c *Collector, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	token, challenge := q.Get("hub.verify_token"), q.Get("hub.challenge")
	ok := q.Get("hub.mode") == "subscribe" && token != "" && metaChallengeOK(challenge)
	if ok {
		match := 0
		// Every token compared, so the time does not tell which.
		for _, vt := range metaIndexOf(c.current()).verifyTokens {
			match |= subtle.ConstantTimeCompare([]byte(token), vt)
		}
		ok = match == 1
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		metaLogRefused(c, metaLogs.handshake, time.Now(), "Refused a webhook verification of meta: not a subscription with a configured webhook_verify_token and a plain challenge")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, metaHandshakeForbiddenWords)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, challenge)
}

// metaChallengeOK reports whether a challenge is a short plain token,
// safe to echo: letters, digits, '-', '_' and '.'.
func metaChallengeOK(s string) bool {
	if s == "" || len(s) > maxMetaChallenge {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// receiveMeta reads, checks and applies a delivery received at now, and
// returns its outcome.
func receiveMeta(c *Collector, r *http.Request, now time.Time) string {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxMetaNotificationBytes+1))
	if err != nil {
		return OutcomeIncomplete
	}
	if len(body) > maxMetaNotificationBytes {
		return OutcomeTooLarge
	}
	idx := metaIndexOf(c.current())
	signers := metaSigners(idx, r.Header.Values(metaSignatureHeader), body)
	if len(signers) == 0 {
		if len(idx.secrets) == 0 {
			metaLogRefused(c, metaLogs.signature, now, "Refused a notification of meta: no meta instance or account has an app_secret, which checks its signature")
		} else {
			metaLogRefused(c, metaLogs.signature, now, "Refused a notification of meta: no X-Hub-Signature-256 of a configured app_secret")
		}
		return OutcomeUnauthorized
	}
	// Authenticated from here: the body is Meta's (or a replay of it).
	var env metaEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		c.logger.Debug("Malformed notification", "provider", "meta", "err", metaJSONError(err))
		return OutcomeMalformed
	}
	if env.Object != metaObjectBusinessAccount {
		return OutcomeIgnored
	}
	outcomes := map[string]bool{}
	// The calls made due, each once per delivery: Meta batches the
	// changes of a WABA, and a ban comes with its restrictions.
	polled := map[*memory]bool{}
	for _, e := range env.Entry {
		outcomes[applyMetaEntry(c, idx, signers, polled, e.ID, e.Time, e.Changes, now)] = true
	}
	for _, o := range []string{OutcomeAccepted, OutcomeStale, OutcomeIgnored, OutcomeUnauthorized, OutcomeUnknownInstance, OutcomeMalformed} {
		if outcomes[o] {
			return o
		}
	}
	return OutcomeIgnored // no entry
}

// metaJSONError describes a JSON error without quoting the body.
func metaJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return "syntax error at byte " + strconv.FormatInt(syn.Offset, 10)
	case errors.As(err, &typ):
		return "unexpected " + typ.Value + " at byte " + strconv.FormatInt(typ.Offset, 10)
	}
	return "not JSON"
}

// metaSigners are the configured app secrets whose signature a
// request carries, compared in constant time.
func metaSigners(idx *metaIndex, headers []string, body []byte) map[string]bool {
	var signers map[string]bool
	for _, h := range headers {
		hexSig, ok := strings.CutPrefix(strings.TrimSpace(h), metaSignaturePrefix)
		if !ok || len(hexSig) != 2*sha256.Size {
			continue
		}
		sig, err := hex.DecodeString(hexSig)
		if err != nil {
			continue
		}
		for _, secret := range idx.secrets {
			mac := hmac.New(sha256.New, secret)
			mac.Write(body)
			if hmac.Equal(mac.Sum(nil), sig) {
				if signers == nil {
					signers = map[string]bool{}
				}
				signers[string(secret)] = true
			}
		}
	}
	return signers
}

// applyMetaEntry applies the changes of one WABA, sent at unix (entry.time),
// to the subjects of that WABA whose app signed them, and makes their
// calls due unless polled has them.
func applyMetaEntry(c *Collector, idx *metaIndex, signers map[string]bool, polled map[*memory]bool, waba string, unix int64, changes []metaEntryChange, now time.Time) string {
	var subjects []metaSubject
	known := idx.byWABA[waba]
	for _, s := range known {
		if signers[s.secret] {
			subjects = append(subjects, s)
		}
	}
	read := slices.ContainsFunc(changes, func(ch metaEntryChange) bool {
		return metaFieldIndex(ch.Field) < len(MetaWebhookFields)-1
	})
	switch {
	case !read:
		// Messages, statuses: nothing of the exporter's, whoever the WABA.
		for _, s := range subjects {
			if s.account != nil {
				pushedOf(s.account).changes[len(MetaWebhookFields)-1].Add(uint64(len(changes)))
			}
		}
		return OutcomeIgnored
	case len(known) == 0:
		c.receiver.logUnknown(c.logger, "meta", waba, now)
		return OutcomeUnknownInstance
	case len(subjects) == 0:
		// Watched, but configured with another app's secret.
		return OutcomeUnauthorized
	}
	at := time.Unix(unix, 0)
	if ahead := now.Add(maxClockSkew); at.After(ahead) {
		at = ahead // a time far ahead must not make every later one stale
	}
	if unix <= 0 || now.Sub(at) > metaRedelivery {
		return OutcomeStale
	}
	outcome := OutcomeStale
	malformed := false
	for _, ch := range changes {
		fi := metaFieldIndex(ch.Field)
		var v metaChange
		if fi < len(MetaWebhookFields)-1 {
			if err := json.Unmarshal(ch.Value, &v); err != nil {
				malformed = true
				continue
			}
		}
		for _, s := range subjects {
			pushed, budget, m := s.state()
			if pushed != nil {
				pushed.changes[fi].Add(1)
			}
			if fi == len(MetaWebhookFields)-1 {
				continue
			}
			if !metaApply(s, pushed, ch.Field, ch.Value, v, at) {
				continue
			}
			outcome = OutcomeAccepted
			if !polled[m] {
				polled[m] = true
				metaPollSoon(c, m, budget, now)
			}
		}
	}
	if outcome == OutcomeStale && malformed {
		return OutcomeMalformed
	}
	return outcome
}

// metaFieldIndex is a field's index in MetaWebhookFields.
func metaFieldIndex(field string) int {
	if i := slices.Index(MetaWebhookFields[:len(MetaWebhookFields)-1], field); i >= 0 {
		return i
	}
	return len(MetaWebhookFields) - 1
}

// metaStateOf is an account's metaAccountState; nil for another
// provider's.
func metaStateOf(a *account) *metaAccountState {
	st, _ := a.state.ext.(*metaAccountState)
	return st
}

func pushedOf(a *account) *metaPushed {
	if st := metaStateOf(a); st != nil {
		return &st.pushed
	}
	return &metaPushed{} // counts nothing anyone reads
}

// state is what a subject keeps of its notifications, the budget its
// calls spend (nil when its client keeps none), and the memory of its
// call.
func (s metaSubject) state() (*metaPushed, *metaBudget, *memory) {
	if s.account != nil {
		if st := metaStateOf(s.account); st != nil {
			return &st.pushed, &st.budget, s.account.state.mem
		}
		return nil, nil, s.account.state.mem
	}
	var budget *metaBudget
	if mc, ok := s.target.client.(*metaClient); ok {
		budget = mc.budget
	}
	return singlePushed(s.target.mem), budget, s.target.mem
}

// metaSingles are what the notifications of each single number told, by
// its memory (which a reload keeps while the number and its credential
// stay): its changes ordered and redeliveries told apart as an
// account's, though nothing of it is exposed. An entry goes with its
// memory.
var metaSingles struct {
	mu sync.Mutex
	m  map[weak.Pointer[memory]]*metaPushed
}

func singlePushed(m *memory) *metaPushed {
	wp := weak.Make(m)
	metaSingles.mu.Lock()
	defer metaSingles.mu.Unlock()
	if p, ok := metaSingles.m[wp]; ok {
		return p
	}
	if metaSingles.m == nil {
		metaSingles.m = map[weak.Pointer[memory]]*metaPushed{}
	}
	p := &metaPushed{}
	metaSingles.m[wp] = p
	runtime.AddCleanup(m, func(wp weak.Pointer[memory]) {
		metaSingles.mu.Lock()
		delete(metaSingles.m, wp)
		metaSingles.mu.Unlock()
	}, wp)
	return p
}

// metaApply keeps what a change received at tells, and reports whether
// it is news: a change redelivered, or older than what was kept of the
// same kind, is stale.
func metaApply(s metaSubject, p *metaPushed, field string, raw json.RawMessage, v metaChange, at time.Time) bool {
	var h maphash.Hash
	h.SetSeed(metaSeed)
	h.WriteString(field)
	h.WriteByte(0)
	h.Write(raw)
	h.WriteString(strconv.FormatInt(at.Unix(), 10))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen(h.Sum64(), at) {
		return false
	}
	if field != metaFieldAccountUpdate && field != metaFieldReviewUpdate {
		// Quality and capability changes carry no value the exporter
		// trusts: the call they make due tells.
		return true
	}
	var logger *slog.Logger
	if s.account != nil {
		logger = s.account.logger
	} else {
		logger = s.target.log()
	}
	if field == metaFieldReviewUpdate {
		// Older than the decision kept: the call made due for the newer
		// one has told what the review is.
		if v.Decision == "" || at.Before(p.reviewAt) {
			return false
		}
		p.review, p.reviewAt = boundedValue(v.Decision, metaReviewDecisions), at
		logger.Info("WABA review decision notified", "decision", p.review)
		return true
	}
	// account_update: news when it tells what the exporter does not keep
	// (a violation, a partner, a deletion), or changes what it keeps.
	news := (v.BanInfo == nil || v.BanInfo.State == "") && len(v.RestrictionInfo) == 0
	if v.BanInfo != nil && v.BanInfo.State != "" && !at.Before(p.banAt) {
		news = true
		if state := boundedValue(v.BanInfo.State, MetaBanStates); state != HealthOther {
			p.ban, p.banAt = state, at
			logger.Warn("WABA ban state notified", "ban_state", state)
		}
	}
	for _, ri := range v.RestrictionInfo {
		typ := boundedValue(ri.Type, MetaRestrictionTypes)
		expiry, ok := metaExpiry(ri.Expiration)
		if !ok {
			logger.Debug("Restriction notified without a readable expiration", "restriction_type", typ)
			continue
		}
		if p.restrictions == nil {
			p.restrictions = map[string]metaRestriction{}
		}
		if old, had := p.restrictions[typ]; had && at.Before(old.at) {
			continue
		}
		p.restrictions[typ] = metaRestriction{expiry: expiry, at: at}
		news = true
		logger.Warn("WABA restriction notified", "restriction_type", typ, "expires", expiry.UTC().Format(time.RFC3339))
	}
	if v.ViolationInfo != nil && v.ViolationInfo.Type != "" {
		logger.Warn("WABA policy violation notified", "violation_type", shorten(strings.Map(metaPlain, v.ViolationInfo.Type), 40))
	}
	return news
}

// metaPlain keeps the letters, digits and '_' of a value logged, which
// comes from Meta but is not one the exporter knows.
func metaPlain(r rune) rune {
	if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
		return r
	}
	return -1
}

// metaExpiry reads a restriction's expiration: Unix seconds (Meta's
// reference), as a number or a string, or a date and time as partners
// pass it on (RFC 3339, or with a "+0000" zone).
func metaExpiry(raw json.RawMessage) (time.Time, bool) {
	var n int64
	if err := json.Unmarshal(raw, &n); err == nil && n > 0 {
		return time.Unix(n, 0), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || len(s) > 40 {
		return time.Time{}, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0), true
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05-0700", "2006-01-02T15:04:05.000-0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// metaPollSoon makes m's call due now, or metaNotifyFloor after its last
// call started, when the budget has room for one more at now: the call
// is made at once, or by the first scrape after that (a WABA's listing
// carries its numbers' states, so a scrape asks for it). Without room,
// the regular interval brings the news.
func metaPollSoon(c *Collector, m *memory, budget *metaBudget, now time.Time) {
	if budget != nil && !budget.spare(now) {
		return
	}
	m.mu.Lock()
	due := maxTime(now, m.called.Add(metaNotifyFloor))
	if due.Before(m.freshTill) {
		m.freshTill = due
	}
	m.mu.Unlock()
	if !due.After(now) {
		c.sched.request(m, now)
	}
}

// The metrics of what notifications told of each WABA account.
var (
	metaRestrictionDesc = prometheus.NewDesc("whatsapp_meta_waba_restriction_expiry_timestamp_seconds",
		"When a restriction that account_update announced for the WABA expires, while it has not (Unix seconds); restriction_type is one of the documented types or other.",
		[]string{"provider", "account", "restriction_type"}, nil)
	metaBanDesc = prometheus.NewDesc("whatsapp_meta_waba_ban_state",
		"1 for the last waba_ban_state account_update told of the WABA (DISABLE, REINSTATE, SCHEDULE_FOR_DISABLE), 0 for the others; absent before any.",
		[]string{"provider", "account", "state"}, nil)
	metaChangesDesc = prometheus.NewDesc("whatsapp_meta_webhook_changes_total",
		"Changes of Meta's webhooks received for the WABA, signed by its app, by field (other: every field the exporter does not read, such as messages).",
		[]string{"provider", "account", "field"}, nil)
)

func init() {
	metaAccounts.Metrics = append(metaAccounts.Metrics, metaPushedMetrics)
}

// metaPushedMetrics are the account metrics of Meta's notifications
// (AccountKind.Metrics of the meta provider).
var metaPushedMetrics = &AccountMetricSet{
	Descs: []*prometheus.Desc{metaRestrictionDesc, metaBanDesc, metaChangesDesc},
	Collect: func(a *account, ch chan<- prometheus.Metric) {
		st := metaStateOf(a)
		if st == nil {
			return
		}
		st.pushed.collect(a.provider.Name, a.name, time.Now(), ch)
	},
}

func (p *metaPushed) collect(provider, account string, now time.Time, ch chan<- prometheus.Metric) {
	for i, f := range MetaWebhookFields {
		ch <- prometheus.MustNewConstMetric(metaChangesDesc, prometheus.CounterValue, float64(p.changes[i].Load()), provider, account, f)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for typ, r := range p.restrictions {
		if !now.Before(r.expiry) {
			delete(p.restrictions, typ) // expired: forgotten
			continue
		}
		ch <- prometheus.MustNewConstMetric(metaRestrictionDesc, prometheus.GaugeValue, float64(r.expiry.Unix()), provider, account, typ)
	}
	if p.ban != "" {
		for _, s := range MetaBanStates {
			v := 0.0
			if s == p.ban {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(metaBanDesc, prometheus.GaugeValue, v, provider, account, s)
		}
	}
}
