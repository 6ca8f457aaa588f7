package collector

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// WAHA (devlikeapro/waha, self-hosted):
// GET {api_url}/api/sessions/{session} with header X-Api-Key.
//
// The answer is the session's SessionInfo (src/api/sessions.controller.ts,
// get): {"name","status","config","me","engine",...}. config may hold the
// session's webhook HMAC keys and proxy password, and me.id is the
// account's phone number: only name and status are decoded, and no error
// quotes a successful body.

func init() {
	register(&Provider{
		Name: "waha",
		// WAHASessionStatus (src/structures/enums.dto.ts; the two PASSKEY
		// values are in the docs' session statuses,
		// content/docs/how-to/sessions/index.md of devlikeapro/waha-docs).
		States:  wahaStates,
		Working: "WORKING",
		Methods: []string{"getSession"},
		// WAHA is self-hosted: api_url has no default.
		Config: config.ProviderInfo{
			NewSpec:       func() config.Spec { return &WahaSpec{} },
			IdentityField: "session",
			SecretField:   "api_key",
		},
		NewClient: newWahaClient,
		Account:   wahaAccounts,
		Webhook:   wahaWebhook,
	})
}

// wahaStates are WAHA's session statuses, in the order of a session's
// life: stopped, starting, waiting for a person (QR code or pairing code,
// then a passkey), working, failed.
var wahaStates = []string{
	"STOPPED", "STARTING", "SCAN_QR_CODE", "PASSKEY_REQUIRED",
	"PASSKEY_CONFIRMATION_REQUIRED", "WORKING", "FAILED",
}

// WahaSpec is the configuration of a WAHA session: its name on the server
// and an API key that may read it (the server's key, an admin key, or a
// read-only key scoped to the session).
type WahaSpec struct {
	config.Common `yaml:",inline"`
	Session       string         `yaml:"session"`
	APIKey        promcfg.Secret `yaml:"api_key,omitempty"`
	APIKeyFile    string         `yaml:"api_key_file,omitempty"`
	// The key of the session.status webhook's HMAC (waha_webhook.go).
	webhookHMAC `yaml:",inline"`
}

// Fields implements config.Spec.
func (s *WahaSpec) Fields() config.Fields {
	return config.Fields{ID: &s.Session, Secret: &s.APIKey, SecretFile: &s.APIKeyFile,
		Optional: []config.OptionalSecret{s.webhookHMAC.field()}}
}

// Validate implements config.Spec: a session name is any text WAHA
// accepts; the path escapes it.
func (s *WahaSpec) Validate() error { return nil }

type wahaClient struct {
	api    *API
	url    string
	header http.Header
	name   string
}

func newWahaClient(spec config.Spec, api *API) (Client, error) {
	b := spec.Base()
	api.addSecret(b.Secret())
	return &wahaClient{
		api:    api,
		url:    b.APIURL + "/api/sessions/" + url.PathEscape(b.ID()),
		header: http.Header{"X-Api-Key": {b.Secret()}},
		name:   b.ID(),
	}, nil
}

func (c *wahaClient) State(ctx context.Context) (string, error) {
	return c.api.Get(ctx, "getSession", c.url, c.header, func(r Response) (string, error) {
		if r.Status < 200 || r.Status > 299 {
			return "", wahaStatusError(r, c.name)
		}
		var v struct {
			Status *string `json:"status"`
		}
		if err := json.Unmarshal(r.Body, &v); err != nil {
			return "", newError(ReasonBadResponse, "HTTP %d: the answer is not a JSON object of a session", r.Status)
		}
		if v.Status == nil || strings.TrimSpace(*v.Status) == "" {
			// Every session WAHA knows has a status, STOPPED for one not
			// running: an answer without one is not WAHA's.
			return "", newError(ReasonBadResponse, "HTTP %d: no status in the session's answer", r.Status)
		}
		return strings.TrimSpace(*v.Status), nil
	})
}

// wahaStatusError classifies an error status of WAHA, quoting the message
// of its NestJS error bodies ({"message":..,"error":..,"statusCode":..}).
// A 404 is an unknown session only when its message says so ("Session
// not found", sessions.controller.ts); NestJS answers a path WAHA does not
// serve with "Cannot GET /path", and anything else that answers 404 is
// not WAHA's API at all.
func wahaStatusError(r Response, session string) *Error {
	msg, ok := wahaMessage(r.Body)
	if r.Status == http.StatusNotFound {
		if ok && strings.Contains(strings.ToLower(msg), "session") && !strings.HasPrefix(msg, "Cannot ") {
			return newError(ReasonClientError, "HTTP 404: no session named %q on the server; check session: %s", session, snippet([]byte(msg)))
		}
		detail := snippet(r.Body)
		if ok {
			detail = snippet([]byte(msg))
		}
		return newError(ReasonClientError, "HTTP 404: api_url does not lead to WAHA's API (it is the server's base URL, without /api); check api_url: %s", detail)
	}
	if ok {
		return statusError(r, snippet([]byte(msg)))
	}
	return statusError(r, snippet(r.Body))
}

// wahaMessage is the message of a NestJS error body; false when the body
// is not one. The stack trace of WAHA's 500 body (AllExceptionsFilter) is
// left out: its error is enough.
func wahaMessage(body []byte) (string, bool) {
	var v struct {
		Message    any    `json:"message"`
		Error      string `json:"error"`
		StatusCode *int   `json:"statusCode"`
	}
	if json.Unmarshal(body, &v) != nil || v.StatusCode == nil {
		return "", false
	}
	var parts []string
	switch m := v.Message.(type) {
	case string:
		parts = append(parts, m)
	case []any: // the validation pipe's list of messages
		for _, x := range m {
			if s, ok := x.(string); ok {
				parts = append(parts, s)
			}
		}
	}
	if v.Error != "" && (len(parts) == 0 || parts[0] != v.Error) {
		parts = append(parts, v.Error)
	}
	if len(parts) == 0 {
		return "", false
	}
	return strings.Join(parts, "; "), true
}
