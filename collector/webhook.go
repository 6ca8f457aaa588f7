package collector

import (
	"crypto/subtle"
	"errors"
	"hash/maphash"
	"io"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/lograte"
)

// Notifications: providers can push an instance's state changes to a URL
// (GREEN-API stateInstanceChanged, Evolution API connection.update). The
// receiver applies them at once, between polls; polling stays the
// primary signal, since providers do not send every change (GREEN-API
// sends none after blocked, nor for a new instance). Each provider's
// notification format is in <provider>_webhook.go.

// Outcomes of a notification, the values of the outcome label.
const (
	// OutcomeAccepted changed what the exporter knows of the instance.
	OutcomeAccepted = "accepted"
	// OutcomeStale is a duplicate, or older than what the exporter
	// knows: it changes nothing.
	OutcomeStale = "stale"
	// OutcomeIgnored is another kind of notification (a message, a
	// status), acknowledged and dropped.
	OutcomeIgnored         = "ignored"
	OutcomeUnauthorized    = "unauthorized"
	OutcomeUnknownInstance = "unknown_instance"
	OutcomeMalformed       = "malformed"
	OutcomeTooLarge        = "too_large"
	// OutcomeIncomplete is a body that did not arrive in full before the
	// receiver's timeouts (a slow or vanished sender).
	OutcomeIncomplete = "incomplete"
	// OutcomeKeyInHeader is a notification that carries the instance's
	// JWT key itself in a header (Evolution API 2.2.x sends its webhook's
	// jwt_key header as it is): refused, since the key is no secret any
	// more.
	OutcomeKeyInHeader = "jwt_key_in_header"
)

// Outcomes lists every outcome, by index in the per-instance counts.
var Outcomes = [...]string{
	OutcomeAccepted, OutcomeStale, OutcomeIgnored, OutcomeUnauthorized,
	OutcomeUnknownInstance, OutcomeMalformed, OutcomeTooLarge, OutcomeIncomplete,
	OutcomeKeyInHeader,
}

// MaxNotificationBytes bounds a notification's body. A state notification
// takes a few hundred bytes; the limit leaves room for the other kinds a
// user may point at the receiver, which are acknowledged unread.
const MaxNotificationBytes = 64 << 10

// Webhook is how a provider pushes state changes.
type Webhook struct {
	// Decode reads a notification's body. It returns an error that does
	// not quote the body (it may hold secrets) for a malformed one.
	Decode func(body []byte, received time.Time) (Notification, error)
	// Authorize says whether a request carries the notification
	// credentials of an instance of this configuration, at now.
	Authorize func(spec config.Spec, cred Credentials, now time.Time) Authorization
	// Replaces says whether a notified state may replace the current
	// one; nil when any may.
	Replaces func(current, notified string) bool
	// Status is the HTTP status the provider is answered for an outcome:
	// each provider retries on its own rules.
	Status func(outcome string) int
}

// Credentials are what a notification request may authenticate with.
type Credentials struct {
	Header http.Header
	// PathSecret is the first segment of the path after
	// /webhook/<provider>/, which may be a secret of the webhook's URL.
	PathSecret string
	// Body is the raw body, for the providers that sign it (an HMAC of
	// the body in a header: WAHA, wuzapi). Read-only.
	Body []byte
}

// Authorization is the result of checking a notification's credentials.
type Authorization int

const (
	// Authorized: the request carries the instance's credentials.
	Authorized Authorization = iota
	// Refused: it does not.
	Refused
	// NoCredentials: the instance has none configured.
	NoCredentials
	// KeyInHeader: it carries a signing key itself (see
	// OutcomeKeyInHeader).
	KeyInHeader
)

// maxClockSkew bounds how far a sender's timestamp is believed against
// the receiver's clock. A Unix timestamp (GREEN-API) more than this ahead
// of the receive time counts as this far ahead; an earlier one counts as
// it is, since an early time can only make a notification stale, never
// hide anything. And a sender's times order its notifications only when
// they arrive within maxClockSkew of each other; beyond that, arrival
// decides. So a sender's clock that goes back (Evolution API writes its
// server's local time, which goes back an hour at the end of daylight
// saving time), or a forged time far ahead (Evolution API's date_time is
// not covered by its JWT), holds later notifications stale for at most
// maxClockSkew.
const maxClockSkew = time.Minute

// callSpacing is the least time between two calls for an instance that a
// notification may bring forward: GREEN-API allows one request per second
// per instance.
const callSpacing = time.Second

// Notification is a decoded notification.
type Notification struct {
	// ID is the instance's identity at the provider (config.Common.ID).
	ID string
	// State is the reported state; empty for a notification of another
	// kind, which is ignored.
	State string
	// At is when the provider sent it, by its clock. Absolute is set when
	// that clock is comparable with the exporter's (a Unix timestamp);
	// otherwise At only orders the provider's notifications among
	// themselves.
	At       time.Time
	Absolute bool
	// Disconnect names why the connection closed, when the notification
	// tells it.
	Disconnect string
}

// webhookToken is the credential notifications carry in their
// Authorization header, with or without "Bearer ": GREEN-API's
// webhookUrlToken, or a header value set on an Evolution API webhook.
type webhookToken struct {
	WebhookToken     promcfg.Secret `yaml:"webhook_token,omitempty"`
	WebhookTokenFile string         `yaml:"webhook_token_file,omitempty"`
	token            string
}

func (w *webhookToken) field() config.OptionalSecret {
	return config.OptionalSecret{Field: "webhook_token", Value: &w.WebhookToken, File: &w.WebhookTokenFile, Resolved: &w.token}
}

// authorizes compares in constant time, so that the answer's timing does
// not tell how much of a guess was right.
func (w *webhookToken) authorizes(h http.Header) bool {
	if w.token == "" {
		return false
	}
	v, ok := bearer(h)
	if !ok {
		v = h.Get("Authorization")
	}
	return subtle.ConstantTimeCompare([]byte(v), []byte(w.token)) == 1
}

// webhookHMAC is the key a provider signs its notifications' bodies
// with (webhook_hmac_key): WAHA's hmac.key, wuzapi's HMAC key. Each
// provider checks its own signature header with it
// (authorizesWAHA, authorizesWuzapi).
type webhookHMAC struct {
	WebhookHMACKey     promcfg.Secret `yaml:"webhook_hmac_key,omitempty"`
	WebhookHMACKeyFile string         `yaml:"webhook_hmac_key_file,omitempty"`
	key                string
}

func (w *webhookHMAC) field() config.OptionalSecret {
	return config.OptionalSecret{Field: "webhook_hmac_key", Value: &w.WebhookHMACKey, File: &w.WebhookHMACKeyFile, Resolved: &w.key}
}

// bearer returns the credential of an "Authorization: Bearer" header, the
// scheme in any case.
func bearer(h http.Header) (string, bool) {
	v := h.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "Bearer ") {
		return v[7:], true
	}
	return "", false
}

// receiver is the collector's notification state: the unknown instance
// IDs it logged lately. The IDs come from unauthenticated requests, so
// what is kept of them is bounded in bytes and expires: a keyed 64-bit
// digest per ID (whatever the ID's length), at most maxUnknownRemembered
// of them, each for unknownTTL; and the log lines are rate-limited
// rather than ended, so that a flood of IDs cannot silence the log for
// the genuine mistakes that come after it.
type receiver struct {
	mu            sync.Mutex
	seed          maphash.Seed
	unknownLogged map[uint64]time.Time // digest of provider and ID -> when logged
	unknownLog    *lograte.Limiter
}

const (
	// maxUnknownRemembered bounds the digests kept: 16 bytes of key and
	// value each, about 50 with the map's overhead, so about 200 KB.
	maxUnknownRemembered = 4096
	// unknownTTL is how long an unknown ID is not logged again.
	unknownTTL = time.Hour
	// unknownLogBurst lines at most per unknownLogPeriod.
	unknownLogBurst  = 10
	unknownLogPeriod = time.Minute
	// maxLoggedIDLen is how much of an ID a log line quotes (in
	// characters): a name is at most a few dozen.
	maxLoggedIDLen = 64
)

// logUnknown logs a notification for an instance the exporter does not
// watch at now: once per instance and unknownTTL, and at most
// unknownLogBurst lines per unknownLogPeriod.
func (rc *receiver) logUnknown(logger *slog.Logger, provider, id string, now time.Time) {
	rc.mu.Lock()
	if rc.unknownLogged == nil {
		rc.seed = maphash.MakeSeed()
		rc.unknownLogged = map[uint64]time.Time{}
		rc.unknownLog = lograte.New(unknownLogBurst, unknownLogPeriod)
	}
	var h maphash.Hash
	h.SetSeed(rc.seed)
	h.WriteString(provider)
	h.WriteByte(0)
	h.WriteString(id)
	key := h.Sum64()
	if at, ok := rc.unknownLogged[key]; ok && now.Sub(at) < unknownTTL && !now.Before(at) {
		rc.mu.Unlock()
		return
	}
	if len(rc.unknownLogged) >= maxUnknownRemembered {
		for k, at := range rc.unknownLogged {
			if now.Sub(at) >= unknownTTL || now.Before(at) {
				delete(rc.unknownLogged, k)
			}
		}
		if len(rc.unknownLogged) >= maxUnknownRemembered {
			// All are recent: a flood. Forgetting them only lets an ID be
			// logged again, which the rate below still bounds.
			clear(rc.unknownLogged)
		}
	}
	rc.unknownLogged[key] = now
	rc.mu.Unlock()
	ok, held := rc.unknownLog.Allow(now)
	if !ok {
		return
	}
	args := []any{"provider", provider, "id", shorten(id, maxLoggedIDLen)}
	if held > 0 {
		args = append(args, "held_back", held)
	}
	logger.Warn("Notification for an instance the exporter does not watch (logged once per instance and hour, at most 10 lines a minute)", args...)
}

// Webhooks returns the notification receiver's handler: POST
// /webhook/<provider>, whatever follows (a secret of the webhook's URL,
// and the event's name Evolution API appends when its webhook is set by
// events).
func (c *Collector) Webhooks() http.Handler {
	mux := http.NewServeMux()
	for _, p := range registered() {
		if p.Handler != nil {
			h := func(w http.ResponseWriter, r *http.Request) { p.Handler(c, w, r) }
			mux.HandleFunc("/webhook/"+p.Name, h)
			mux.HandleFunc("/webhook/"+p.Name+"/", h)
			continue
		}
		if p.Webhook == nil {
			continue
		}
		h := func(w http.ResponseWriter, r *http.Request) { c.serveNotification(p, w, r) }
		mux.HandleFunc("POST /webhook/"+p.Name, h)
		mux.HandleFunc("POST /webhook/"+p.Name+"/", h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// ServeMux answers a path that is not clean (// or ..) with a
		// redirect to the clean one, which quotes the path and a secret
		// in it. No provider sends such a path, nor one not rooted.
		if !cleanPath(r.URL.Path) {
			http.NotFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// cleanPath reports whether p is a rooted path as path.Clean leaves it,
// but for a trailing slash.
func cleanPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false // "*", to which ServeMux answers 400 of its own
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

// pathSecret is the first path segment after /webhook/<provider>/.
func pathSecret(p *Provider, path string) string {
	rest, _ := strings.CutPrefix(path, "/webhook/"+p.Name+"/")
	first, _, _ := strings.Cut(rest, "/")
	return first
}

// serveNotification answers a notification. No answer and no log line
// quotes its body (Evolution API's carries the instance's API token) or
// its path (which may hold a secret).
func (c *Collector) serveNotification(p *Provider, w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxNotificationBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			c.answer(w, p, nil, OutcomeTooLarge)
			return
		}
		c.answer(w, p, nil, OutcomeIncomplete)
		return
	}
	n, err := p.Webhook.Decode(body, now)
	if err != nil {
		c.logger.Debug("Malformed notification", "provider", p.Name, "err", err)
		c.answer(w, p, nil, OutcomeMalformed)
		return
	}
	if n.State == "" {
		// Not authenticated: counted for the exporter only, so that
		// anyone cannot add series to an instance.
		c.answer(w, p, nil, OutcomeIgnored)
		return
	}
	targets := c.current().byID[p.Name+"\x00"+n.ID]
	if len(targets) == 0 {
		c.receiver.logUnknown(c.logger, p.Name, n.ID, now)
		c.answer(w, p, nil, OutcomeUnknownInstance)
		return
	}
	cred := Credentials{Header: r.Header, PathSecret: pathSecret(p, r.URL.Path), Body: body}
	var authorized []*target
	keyInHeader := false
	for _, t := range targets {
		switch p.Webhook.Authorize(t.spec, cred, now) {
		case Authorized:
			authorized = append(authorized, t)
		case KeyInHeader:
			keyInHeader = true
			if t.stats.keyInHeaderLogged.CompareAndSwap(false, true) {
				t.log().Error("Refused a notification that carries the instance's webhook_jwt_key in a header: Evolution API 2.2.x sends its webhook's headers as they are, so the key is no secret any more. Remove jwt_key from the webhook's headers, change the key, and use webhook_path_secret (any version) or Evolution API 2.3.0 or later (logged once per instance)")
			}
		case NoCredentials:
			if t.stats.unauthorizedLogged.CompareAndSwap(false, true) {
				t.log().Warn("Refused a notification: the instance has no webhook credentials configured (logged once per instance)")
			}
		default:
			if t.stats.unauthorizedLogged.CompareAndSwap(false, true) {
				t.log().Warn("Refused a notification without the instance's webhook credentials (logged once per instance; see whatsapp_webhook_notifications_total)")
			}
		}
	}
	if keyInHeader {
		c.answer(w, p, targets, OutcomeKeyInHeader)
		return
	}
	if len(authorized) == 0 {
		c.answer(w, p, targets, OutcomeUnauthorized)
		return
	}
	// Instances of the same key share their memory: apply once.
	outcome := OutcomeStale
	applied := map[*memory]string{}
	for _, t := range authorized {
		o, done := applied[t.mem]
		if !done {
			o = t.notify(n, now)
			applied[t.mem] = o
		}
		if o == OutcomeAccepted {
			outcome = o
		}
	}
	for _, t := range authorized {
		t.stats.countNotification(applied[t.mem])
	}
	c.answer(w, p, nil, outcome)
}

// answer counts a notification's outcome for the exporter and for targets,
// and writes the provider's status for it and the outcome, never anything
// of the request.
func (c *Collector) answer(w http.ResponseWriter, p *Provider, targets []*target, outcome string) {
	for _, t := range targets {
		t.stats.countNotification(outcome)
	}
	c.metrics.notification(p.Name, outcome)
	answered := answeredAs(outcome)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(p.Webhook.Status(answered))
	_, _ = io.WriteString(w, answered+"\n")
}

// answeredAs is the outcome a sender is told. An unknown instance is
// answered as a refused credential: the answer is written before any
// credential is checked, so telling them apart would tell anyone which
// instance IDs the exporter watches. No provider needs the difference
// (GREEN-API gets 200 for both; Evolution API retries neither a 401 nor
// a 404 from 2.3.0, and both from 2.2.x). The metrics and the log keep
// it.
func answeredAs(outcome string) string {
	if outcome == OutcomeUnknownInstance {
		return OutcomeUnauthorized
	}
	return outcome
}

// notify applies a notification received at now to the target's memory
// and returns OutcomeAccepted or OutcomeStale. A notification is stale
// when it is older than the last one applied, repeats it, was sent (on a
// clock comparable with the exporter's) before the call that brought the
// current state started, or its provider says it may not replace the
// current state.
//
// An accepted notification is not the last word: its state shows at once,
// and the instance is due for a call at the next scrape (one second after
// its last call at the soonest, and not before a Retry-After ends). That
// call, which started after the notification arrived, replaces it. So a
// notification speeds up what the next scrape shows, and never hides what
// a call sees for longer than until that scrape: a provider that pushes
// reconnection attempts, a delivery retried for minutes, or anyone who
// holds a webhook credential and streams notifications, cannot keep a
// state that the provider's state request contradicts.
func (t *target) notify(n Notification, now time.Time) string {
	o := t.outcomeOf(n.State, nil)
	o.disconnect = n.Disconnect
	if ahead := now.Add(maxClockSkew); n.Absolute && n.At.After(ahead) {
		// A clock far ahead of ours (or a forged time) must not make
		// every later notification look older for long.
		n.At = ahead
	}
	asOf := now
	if n.Absolute && n.At.Before(now) {
		asOf = n.At
	}
	m := t.mem
	m.mu.Lock()
	// The sender's times order two notifications that arrived within
	// maxClockSkew of each other (see maxClockSkew); a repeat of the
	// last one is stale whenever it comes.
	// (A request that started before the last one applied, and is
	// applied after it, has an earlier now: it is within the skew.)
	ordered := !m.notifiedAt.IsZero() && now.Sub(m.notifiedRecv) <= maxClockSkew
	repeat := !m.notifiedAt.IsZero() && n.At.Equal(m.notifiedAt) && m.last.state == o.state
	stale := ordered && n.At.Before(m.notifiedAt) || repeat ||
		// Timestamps have seconds: a notification of the second a call
		// started is the newer one.
		asOf.Unix() < m.asOf.Unix() ||
		(t.provider.Webhook.Replaces != nil && !m.updated.IsZero() && !t.provider.Webhook.Replaces(m.last.state, o.state))
	if stale {
		m.mu.Unlock()
		return OutcomeStale
	}
	prev, had := m.last, !m.updated.IsZero()
	if had {
		// whatsapp_up stays what the last call made it.
		o.up, o.reason = prev.up, prev.reason
	}
	if !had || prev.state != o.state || prev.up != o.up {
		m.since = now
	}
	m.last, m.updated, m.asOf, m.notified, m.notifiedAt, m.notifiedRecv = o, now, asOf, true, n.At, now
	m.noteDisconnect(o)
	if due := maxTime(m.limit.till(), m.called.Add(callSpacing)); due.Before(m.freshTill) {
		m.freshTill = due
	}
	m.mu.Unlock()
	if !had || prev.state != o.state {
		t.log().Info("State changed", "state", o.state, "via", "notification")
	}
	return OutcomeAccepted
}

// notificationCounts are an instance's notifications by outcome.
type notificationCounts struct {
	byOutcome [len(Outcomes)]atomic.Uint64
	// unauthorizedLogged is set once a refused notification was logged,
	// keyInHeaderLogged once one that carried the JWT key was.
	unauthorizedLogged, keyInHeaderLogged atomic.Bool
}

func (s *notificationCounts) countNotification(outcome string) {
	if i := slices.Index(Outcomes[:], outcome); i >= 0 {
		s.byOutcome[i].Add(1)
	}
}
