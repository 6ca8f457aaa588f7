package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// GREEN-API: GET {apiUrl}/waInstance{idInstance}/getStateInstance/{apiTokenInstance}.

const greenAPIDefaultURL = "https://api.greenapi.com"

// greenAPIQuotaExceeded is the status GREEN-API sends when the developer
// plan's monthly quota is used up.
const greenAPIQuotaExceeded = 466

// greenAPITextStates maps the texts of a 400 that report a state instead of
// an error. "instance is starting or not authorized" is read as starting:
// the provider uses it while an instance boots, and an instance that stays
// in it is reported by the starting-too-long alert within minutes, while
// reading it as notAuthorized would page someone for every reboot.
var greenAPITextStates = []struct{ text, state string }{
	{"instance in starting process try later", "starting"},
	{"instance account not authorized", "notAuthorized"},
	{"instance is starting or not authorized", "starting"},
	// "Instance account is expired. Renew your instance from personal
	// area" (GREEN-API's common errors): the plan is not paid.
	{"instance account is expired", greenAPIExpired},
}

// States the exporter reads from GREEN-API's other answers than a
// stateInstance: an instance whose plan is not paid (a 400 text, or
// isExpired in a partner listing), and one still being created
// (getStateInstance answers null: GREEN-API's partner guide says to ask
// again every 5 seconds until a state comes).
const (
	greenAPIExpired  = "expired"
	greenAPICreating = "creating"
)

// greenAPIStates are getStateInstance's WhatsApp states, then the two above.
var greenAPIStates = []string{"authorized", "notAuthorized", "blocked", "sleepMode", "starting", "yellowCard", greenAPICreating, greenAPIExpired}

func init() {
	register(&Provider{
		Name:        "greenapi",
		States:      greenAPIStates,
		Working:     "authorized",
		Methods:     []string{"getStateInstance"},
		QueueMethod: "getMessagesCount",
		Config: config.ProviderInfo{
			NewSpec:       func() config.Spec { return &GreenAPISpec{} },
			IdentityField: "id_instance",
			SecretField:   "api_token",
			DefaultURL:    greenAPIDefaultURL,
		},
		NewClient: newGreenAPIClient,
		Account:   greenAPIAccounts,
		Webhook:   greenAPIWebhook,
	})
}

// GreenAPISpec is the configuration of a GREEN-API instance.
type GreenAPISpec struct {
	config.Common `yaml:",inline"`
	IDInstance    string         `yaml:"id_instance"`
	APIToken      promcfg.Secret `yaml:"api_token,omitempty"`
	APITokenFile  string         `yaml:"api_token_file,omitempty"`
	// The instance's webhookUrlToken, which its notifications carry.
	webhookToken `yaml:",inline"`
	// MessagesQueue makes the instance read its outgoing queue
	// (getMessagesCount) after each state request; unset, the
	// --greenapi.messages-queue default applies.
	MessagesQueue *bool `yaml:"messages_queue,omitempty"`
}

func (s *GreenAPISpec) watchesQueue(def bool) bool {
	if s.MessagesQueue == nil {
		return def
	}
	return *s.MessagesQueue
}

// Fields implements config.Spec.
func (s *GreenAPISpec) Fields() config.Fields {
	return config.Fields{ID: &s.IDInstance, Secret: &s.APIToken, SecretFile: &s.APITokenFile,
		Optional: []config.OptionalSecret{s.webhookToken.field()}}
}

// Validate implements config.Spec: idInstance is a number.
func (s *GreenAPISpec) Validate() error {
	if len(s.IDInstance) > 19 || strings.Trim(s.IDInstance, "0123456789") != "" {
		return &config.FieldError{Field: "id_instance", Err: errors.New("must be the instance's number (digits only)")}
	}
	return nil
}

type greenAPIClient struct {
	api      *API
	url      string
	queueURL string
	// base is {apiUrl}/waInstance{id} and token the instance's token,
	// for the actions (greenapi_actions.go).
	base, token string
}

func newGreenAPIClient(spec config.Spec, api *API) (Client, error) {
	b := spec.Base()
	api.addSecret(b.Secret())
	return &greenAPIClient{
		api:      api,
		url:      b.APIURL + "/waInstance" + b.ID() + "/getStateInstance/" + url.PathEscape(b.Secret()),
		queueURL: b.APIURL + "/waInstance" + b.ID() + "/getMessagesCount/" + url.PathEscape(b.Secret()),
		base:     b.APIURL + "/waInstance" + b.ID(),
		token:    b.Secret(),
	}, nil
}

// MessagesQueue calls GET {apiUrl}/waInstance{id}/getMessagesCount/{token},
// {"count": N}: the number of messages in the outgoing queue, without
// their contents and without a cap, updated by the provider every 10
// seconds and limited to one request per second per instance like
// getStateInstance (GREEN-API documentation, "GetMessagesCount",
// https://green-api.com/en/docs/api/queues/GetMessagesCount/; API-FACTS.md,
// "Checked against the providers' own code"). showMessagesQueue, which
// lists the first 500 queued messages with their recipients and texts,
// would hand the exporter personal data only to be counted, and cannot
// count past 500.
func (c *greenAPIClient) MessagesQueue(ctx context.Context) (int, error) {
	return c.api.GetCount(ctx, "getMessagesCount", c.queueURL, nil, decodeGreenAPIMessagesCount)
}

// greenAPICountKeys are the keys the count may come under: GREEN-API's
// English and Russian documentation pages print it with a Cyrillic "с"
// (U+0441), its other products' pages with a Latin "c", and which of the
// two the servers send is not known.
var greenAPICountKeys = [...]string{"count", "\u0441ount"}

// maxQueueCount bounds a count: a hundred million messages would be over
// a thousand a second for the whole 24 hours GREEN-API keeps a queued
// message. A larger number is a broken answer, not a queue.
const maxQueueCount = 100_000_000

// decodeGreenAPIMessagesCount reads getMessagesCount's answer. Its errors
// are those of getStateInstance, but for the 400 texts that report a
// state (an instance starting, not authorized, or whose plan expired: none
// sends): that answer withholds the count without failing
// (errQueueWithheld). No error quotes the answer: whatever a queue call
// brings back may be a queued message (a proxy or a server that answers
// showMessagesQueue's list), and the queue's contents are never logged;
// an error describes the answer's shape instead (describeAnswer).
func decodeGreenAPIMessagesCount(r Response) (int, error) {
	if r.Status == http.StatusBadRequest {
		if _, ok := greenAPITextState(r.Body); ok {
			return 0, errQueueWithheld
		}
	}
	if r.Status < 200 || r.Status > 299 {
		return 0, greenAPIStatusError(r, describeAnswer(r.Body))
	}
	// A map, not a struct: encoding/json matches a struct's keys without
	// regard to case, and the count's two spellings are the only ones
	// documented.
	var v map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &v); err != nil || v == nil {
		return 0, newError(ReasonBadResponse, "HTTP %d: not a JSON object: %s", r.Status, describeAnswer(r.Body))
	}
	if greenAPICode401(r.Body) {
		return 0, newError(ReasonUnauthorized, "HTTP %d with code 401 in the body", r.Status)
	}
	for _, key := range greenAPICountKeys {
		raw, ok := v[key]
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n < 0 || n > maxQueueCount {
			return 0, newError(ReasonBadResponse, "HTTP %d: the count is not a whole number from 0 to %d: %s", r.Status, maxQueueCount, describeAnswer(raw))
		}
		return int(n), nil
	}
	return 0, newError(ReasonBadResponse, "HTTP %d: no count in a JSON object of %d keys", r.Status, len(v))
}

// describeAnswer says what an answer is without quoting any of it: the
// kind of its JSON value, or of its text, and its size.
func describeAnswer(body []byte) string {
	t := bytes.TrimSpace(body)
	kind := "text"
	switch {
	case len(t) == 0:
		return "empty"
	case !json.Valid(t):
		if t[0] == '<' {
			kind = "markup (an HTML page?)"
		}
	case t[0] == '{':
		kind = "a JSON object"
	case t[0] == '[':
		kind = "a JSON array"
	case t[0] == '"':
		kind = "a JSON string"
	case t[0] == 't' || t[0] == 'f':
		kind = "a JSON boolean"
	case t[0] == 'n':
		kind = "JSON null"
	default:
		kind = "a JSON number"
	}
	return fmt.Sprintf("%s of %d bytes, not quoted", kind, len(body))
}

// greenAPIStatusError classifies an answer that is not a 2xx, nil for one
// that is; detail describes its body.
func greenAPIStatusError(r Response, detail string) *Error {
	switch {
	case r.Status == greenAPIQuotaExceeded:
		return newError(ReasonQuotaExceeded, "HTTP 466: monthly quota of the plan used up")
	case r.Status < 200 || r.Status > 299:
		return statusError(r, detail)
	}
	return nil
}

// greenAPICode401 reports a 200 whose body says {"code":401,...}, which
// GREEN-API's own SDK reads as unauthorized.
func greenAPICode401(body []byte) bool {
	var v struct {
		Code *int `json:"code"`
	}
	return json.Unmarshal(body, &v) == nil && v.Code != nil && *v.Code == http.StatusUnauthorized
}

func (c *greenAPIClient) State(ctx context.Context) (string, error) {
	return c.api.Get(ctx, "getStateInstance", c.url, nil, decodeGreenAPIState)
}

// greenAPITextState reads the state a 400's text reports, if it reports
// one.
func greenAPITextState(body []byte) (string, bool) {
	text := strings.ToLower(string(body))
	for _, ts := range greenAPITextStates {
		if strings.Contains(text, ts.text) {
			return ts.state, true
		}
	}
	return "", false
}

func decodeGreenAPIState(r Response) (string, error) {
	if r.Status == http.StatusBadRequest {
		if state, ok := greenAPITextState(r.Body); ok {
			return state, nil
		}
	}
	if e := greenAPIStatusError(r, snippet(r.Body)); e != nil {
		return "", e
	}

	body := bytes.TrimSpace(r.Body)
	if bytes.Equal(body, []byte("null")) {
		// Sent while an instance is being created: the call worked.
		return greenAPICreating, nil
	}
	var v struct {
		StateInstance *string `json:"stateInstance"`
		Code          *int    `json:"code"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", newError(ReasonBadResponse, "HTTP %d: body is not a JSON object: %s", r.Status, snippet(body))
	}
	switch {
	case v.Code != nil && *v.Code == http.StatusUnauthorized:
		return "", newError(ReasonUnauthorized, "HTTP %d with code 401 in the body", r.Status)
	case v.StateInstance == nil || *v.StateInstance == "":
		return "", newError(ReasonBadResponse, "HTTP %d: no stateInstance in %s", r.Status, snippet(body))
	}
	return *v.StateInstance, nil
}
