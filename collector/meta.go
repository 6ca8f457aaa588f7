package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Meta's WhatsApp Cloud API: a business phone number's node,
// GET {api_url}/{phone_number_id}?fields=… with a system user's token,
// tells its status (the state), its health_status, quality rating,
// messaging limit and settings (meta_health.go) in one request, which
// spends Meta's request budget (meta_budget.go). A WABA lists its numbers
// with the same fields (meta_accounts.go).

func init() {
	register(&Provider{
		Name:    "meta",
		States:  metaStates,
		Working: "CONNECTED",
		Methods: []string{"getPhoneNumber"},
		Config: config.ProviderInfo{
			NewSpec:       func() config.Spec { return &MetaSpec{} },
			IdentityField: "phone_number_id",
			SecretField:   "access_token",
			DefaultURL:    metaDefaultURL,
		},
		NewClient: newMetaClient,
		Account:   metaAccounts,
		Health:    true,
		Handler:   serveMetaWebhook,
		Metrics:   func(c *Collector) prometheus.Collector { return metaNumberBudgets{c} },
	})
}

// metaDefaultPoll is a single number's poll_interval when it sets none:
// 60 requests an hour, within the 200 of a WABA that is not active.
const metaDefaultPoll = time.Minute

// metaMinInterval is the shortest poll_interval or refresh_interval:
// shorter ones spend a WABA's 200 requests an hour in minutes.
const metaMinInterval = 20 * time.Second

// maxMetaID bounds an ID: Meta's are 15 to 17 digits.
const maxMetaID = 32

// Validate implements config.Spec.
func (s *MetaSpec) Validate() error {
	if err := checkMetaID("phone_number_id", s.PhoneNumberID); err != nil {
		return err
	}
	if s.WABAID != "" {
		if err := checkMetaID("waba_id", s.WABAID); err != nil {
			return err
		}
	}
	if s.StatePath != "" && (!strings.HasPrefix(s.StatePath, "/") || strings.ContainsAny(s.StatePath, "?#") || len(s.StatePath) > 256) {
		return &config.FieldError{Field: "state_path", Err: fmt.Errorf("%q is not a path: want one starting with / and without ? or #, at most 256 bytes", shorten(s.StatePath, 60))}
	}
	if err := checkMetaInterval("poll_interval", &s.PollInterval, metaDefaultPoll); err != nil {
		return err
	}
	return s.metaShared.validate()
}

// Validate implements config.AccountSpec; a WABA is refreshed every
// minute unless it says otherwise.
func (s *MetaAccountSpec) Validate() error {
	if err := checkMetaID("waba_id", s.WABAID); err != nil {
		return err
	}
	if err := checkMetaInterval("refresh_interval", &s.RefreshInterval, metaDefaultPoll); err != nil {
		return err
	}
	return s.metaShared.validate()
}

func (m *metaShared) validate() error {
	if m.AuthHeader == "" {
		return nil
	}
	if len(m.AuthHeader) > 64 || strings.IndexFunc(m.AuthHeader, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
		return &config.FieldError{Field: "auth_header", Err: fmt.Errorf("%q is not a header name", shorten(m.AuthHeader, 64))}
	}
	switch http.CanonicalHeaderKey(m.AuthHeader) {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Accept", "User-Agent":
		return &config.FieldError{Field: "auth_header", Err: fmt.Errorf("%q is a header the exporter sets itself", m.AuthHeader)}
	}
	return nil
}

// isTokenChar reports whether r may be in a header name (RFC 9110 token).
func isTokenChar(r rune) bool {
	return r < 127 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
}

func checkMetaID(field, id string) error {
	switch {
	case id == "":
		return &config.FieldError{Field: field, Err: errors.New("required")}
	case len(id) > maxMetaID || strings.Trim(id, "0123456789") != "":
		return &config.FieldError{Field: field, Err: fmt.Errorf("%q is not one of Meta's IDs, which are digits", shorten(id, maxMetaID))}
	}
	return nil
}

func checkMetaInterval(field string, d *model.Duration, def time.Duration) error {
	switch {
	case *d == 0:
		*d = model.Duration(def)
	case time.Duration(*d) < metaMinInterval:
		return &config.FieldError{Field: field, Err: fmt.Errorf("%s is shorter than %s: Meta allows a WABA 200 requests an hour", *d, model.Duration(metaMinInterval))}
	}
	return nil
}

// metaAuth is the header that carries the token: a bearer token in
// Authorization (Graph), or the token as it is in another header (a
// pass-through provider's, such as 360dialog's D360-API-KEY).
func metaAuth(authHeader, token string) http.Header {
	if authHeader == "" {
		return http.Header{"Authorization": {"Bearer " + token}}
	}
	return http.Header{http.CanonicalHeaderKey(authHeader): {token}}
}

type metaClient struct {
	api    *API
	url    string
	header http.Header
	id     string
	every  time.Duration
	budget *metaBudget
	now    func() time.Time
}

func newMetaClient(spec config.Spec, api *API) (Client, error) {
	s := spec.(*MetaSpec)
	b := s.Base()
	api.addSecret(b.Secret())
	u := b.APIURL + "/" + url.PathEscape(b.ID()) + "?fields=" + url.QueryEscape(metaNodeFields)
	if s.StatePath != "" {
		u = b.APIURL + s.StatePath
	}
	return &metaClient{api: api, url: u, header: metaAuth(s.AuthHeader, b.Secret()), id: b.ID(),
		every: time.Duration(s.PollInterval), budget: &metaBudget{}, now: time.Now}, nil
}

// State implements Client.
func (c *metaClient) State(ctx context.Context) (string, error) {
	st, _, err := c.StateHealth(ctx)
	return st, err
}

// StateHealth implements healthClient.
func (c *metaClient) StateHealth(ctx context.Context) (string, *Health, error) {
	var h *Health
	st, err := c.api.Get(ctx, "getPhoneNumber", c.url, c.header, func(r Response) (string, error) {
		c.budget.observe(r.Header, c.now())
		if r.Status < 200 || r.Status > 299 {
			return "", metaStatusError(r, c.budget, c.now(), "phone_number_id", c.id)
		}
		var n metaNode
		if err := json.Unmarshal(r.Body, &n); err != nil {
			return "", newError(ReasonBadResponse, "HTTP %d: body is not a phone number's JSON object: %s", r.Status, snippet(r.Body))
		}
		if n.ID == "" && n.Status == "" && n.HealthStatus == nil {
			return "", newError(ReasonBadResponse, "HTTP %d: no phone number in the answer (check api_url and state_path): %s", r.Status, snippet(r.Body))
		}
		h = n.health()
		if n.Status == "" || n.Status == "UNKNOWN" {
			return StateUnknown, nil
		}
		// As it is: the collector logs a value it does not know, once
		// per call of one number (a listing's rows are mapped instead).
		return n.Status, nil
	})
	if err != nil {
		return "", nil, err
	}
	return st, h, nil
}

// Pace implements pacer: at least poll_interval, stretched as the budget
// is spent.
func (c *metaClient) Pace() time.Duration { return c.budget.pace(c.now(), c.every) }

// metaError is Graph's error body.
type metaError struct {
	Error *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    int    `json:"code"`
		Subcode int    `json:"error_subcode"`
	} `json:"error"`
}

// Graph's error codes that say the budget is spent: the app's (4), a
// user's (17), a page's (32), a method's (613), the WABA's (80007,
// 80008) and the Cloud API's (130429).
var metaRateCodes = map[int]bool{4: true, 17: true, 32: true, 613: true, 80007: true, 80008: true, 130429: true}

// metaStatusError classifies an error answer of Graph, naming the field
// of the configuration (field, id) an unknown ID points to. A rate limit
// holds the budget until access is regained.
func metaStatusError(r Response, b *metaBudget, now time.Time, field, id string) *Error {
	var v metaError
	if json.Unmarshal(r.Body, &v) != nil || v.Error == nil {
		e := statusError(r, snippet(r.Body))
		if e.Reason == ReasonRateLimited {
			e.RetryAfter = b.rateLimited(now, e.RetryAfter)
		}
		return e
	}
	ge := v.Error
	msg := fmt.Sprintf("HTTP %d: code %d", r.Status, ge.Code)
	if ge.Subcode != 0 {
		msg += fmt.Sprintf(" (subcode %d)", ge.Subcode)
	}
	msg += ": " + snippet([]byte(shorten(ge.Message, 200)))
	switch {
	case ge.Code == 190 || ge.Code == 102 || ge.Code == 104:
		return newError(ReasonUnauthorized, "%s; the access token is invalid, expired or missing", msg)
	case ge.Code == 10 || ge.Code >= 200 && ge.Code <= 299:
		return newError(ReasonUnauthorized, "%s; the token lacks a permission (whatsapp_business_management) or access to the asset", msg)
	case metaRateCodes[ge.Code] || r.Status == http.StatusTooManyRequests:
		e := newError(ReasonRateLimited, "%s", msg)
		e.RetryAfter = b.rateLimited(now, retryAfter(r.Header, now))
		return e
	case (ge.Code == 100 || ge.Code == 803) && (r.Status == http.StatusBadRequest || r.Status == http.StatusNotFound):
		return newError(ReasonClientError, "%s; check %s %q (and api_url)", msg, field, id)
	}
	return statusError(r, msg)
}
