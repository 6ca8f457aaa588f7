package collector

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// WAHA servers: GET {api_url}/api/sessions?all=true with X-Api-Key lists
// every session the key may see, in one call; without all=true, STOPPED
// sessions are left out.
//
// The list is live. The session manager builds it from its running
// sessions, each row's status being the running session object's own
// (session.status, the value GET /api/sessions/{session} answers), and
// adds the sessions it only has a configuration of as STOPPED
// (src/core/manager.core.ts, getSessions; src/api/sessions.controller.ts,
// list). So the listing is the sessions' state request: one call per
// server and scrape, whatever the number of sessions.
//
// Each row also holds the session's config (its webhooks' HMAC keys, its
// proxy's password) and me (the account's phone number): only name and
// status are decoded, and no error quotes the listing.

var wahaAccounts = &AccountKind{
	Method: "listSessions",
	Config: config.AccountInfo{
		NewSpec:     func() config.AccountSpec { return &WahaAccountSpec{} },
		SecretField: "api_key",
	},
	NewLister:    newWahaLister,
	Instance:     wahaListedSession,
	StateRequest: true,
}

// WahaAccountSpec is the configuration of a WAHA server: an API key that
// may list its sessions (the server's key or an admin key; a key scoped
// to one session lists that one), and the HMAC key its sessions sign
// their session.status webhooks with (WAHA's global webhook,
// WHATSAPP_HOOK_HMAC_KEY, or the same hmac.key on each session's).
type WahaAccountSpec struct {
	config.AccountCommon `yaml:",inline"`
	APIKey               promcfg.Secret `yaml:"api_key,omitempty"`
	APIKeyFile           string         `yaml:"api_key_file,omitempty"`
	webhookHMAC          `yaml:",inline"`
}

// Fields implements config.AccountSpec.
func (s *WahaAccountSpec) Fields() config.Fields {
	return config.Fields{Secret: &s.APIKey, SecretFile: &s.APIKeyFile,
		Optional: []config.OptionalSecret{s.webhookHMAC.field()}}
}

// Validate implements config.AccountSpec.
func (s *WahaAccountSpec) Validate() error { return nil }

func newWahaLister(spec config.AccountSpec, api *API) (Lister, error) {
	a := spec.Account()
	api.addSecret(a.Secret())
	return newGetLister(spec, api, "listSessions", a.APIURL+"/api/sessions?all=true",
		http.Header{"X-Api-Key": {a.Secret()}}, decodeWahaSessions), nil
}

// wahaListedSession is a found session's configuration: the server's
// settings, key and HMAC key, its name.
func wahaListedSession(spec config.AccountSpec, l Listed, name string) config.Spec {
	a := spec.(*WahaAccountSpec)
	return &WahaSpec{
		Common: config.Common{
			Name: name, Provider: "waha", APIURL: a.APIURL, Timeout: a.Timeout, HTTPClientConfig: a.HTTPClientConfig,
		},
		Session:     l.ID,
		APIKey:      promcfg.Secret(a.Secret()),
		webhookHMAC: webhookHMAC{WebhookHMACKey: promcfg.Secret(a.webhookHMAC.key)},
	}
}

// decodeWahaSessions reads the array of SessionInfo rows: each row's name
// and status.
func decodeWahaSessions(r Response, s *jsonStream) (Listing, error) {
	if s == nil {
		return Listing{}, wahaStatusError(r, "")
	}
	var l Listing
	err := s.array(func(raw []byte, whole bool) error {
		var row struct {
			Name   string  `json:"name"`
			Status *string `json:"status"`
		}
		if !mayHold(raw, whole, "name") || json.Unmarshal(raw, &row) != nil || row.Name == "" {
			l.Malformed++
			return nil
		}
		in := Listed{Name: row.Name, ID: row.Name, State: StateUnknown}
		if row.Status != nil && strings.TrimSpace(*row.Status) != "" {
			in.State = strings.TrimSpace(*row.Status)
		}
		return s.keep(&l, in)
	})
	if err == nil {
		err = s.end()
	}
	if errors.Is(err, errSyntax) {
		return Listing{}, newError(ReasonBadResponse, "HTTP %d: the listing is not a JSON array", r.Status)
	}
	return l, err
}
