package collector

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// The Baileys family: Evolution API is built on the Baileys WhatsApp Web
// library, and Wachat on Evolution API. They share Baileys' connection
// states, address an instance by name with an API key, and report errors
// in Evolution API's shapes.

// baileysStates are Baileys' connection states.
var baileysStates = []string{"open", "connecting", "close"}

// Why a Baileys connection closed: the status code of its last
// disconnection (Baileys' DisconnectReason), which Evolution API passes on
// as a connection.update event's statusReason and, for the closes it does
// not retry, as an instance row's disconnectionReasonCode. The names make
// a bounded label; "banned" is Baileys' forbidden (403), which WhatsApp
// answers to a banned number. Evolution API also gives up on 402 and 406,
// which Baileys does not name: they keep their numbers.
var baileysDisconnectCodes = []struct {
	code int
	name string
}{
	{401, "logged_out"},
	{402, "code_402"},
	{403, "banned"},
	{406, "code_406"},
	{408, "connection_lost"},
	{411, "multidevice_mismatch"},
	{428, "connection_closed"},
	{440, "connection_replaced"},
	{500, "bad_session"},
	{503, "service_unavailable"},
	{515, "restart_required"},
}

// Reasons that are not a Baileys code.
const (
	// disconnectQRExpired is Evolution API's refused: the QR code was
	// not scanned in time.
	disconnectQRExpired = "qr_expired"
	disconnectOther     = "other"
)

// baileysDisconnectReasons are every reason of the family.
var baileysDisconnectReasons = func() []string {
	var r []string
	for _, c := range baileysDisconnectCodes {
		r = append(r, c.name)
	}
	return append(r, disconnectQRExpired, disconnectOther)
}()

// baileysDisconnectReason names a disconnection code; "" for none (0, or
// 200, which Evolution API sends with a connection that did not close).
func baileysDisconnectReason(code int) string {
	if code == 0 || code == http.StatusOK {
		return ""
	}
	for _, c := range baileysDisconnectCodes {
		if c.code == code {
			return c.name
		}
	}
	return disconnectOther
}

// baileysInstance is the configuration of an instance of the family.
type baileysInstance struct {
	config.Common `yaml:",inline"`
	InstanceName  string         `yaml:"instance_name"`
	APIKey        promcfg.Secret `yaml:"api_key,omitempty"`
	APIKeyFile    string         `yaml:"api_key_file,omitempty"`
}

// Fields implements config.Spec.
func (s *baileysInstance) Fields() config.Fields {
	return config.Fields{ID: &s.InstanceName, Secret: &s.APIKey, SecretFile: &s.APIKeyFile}
}

// Validate implements config.Spec: an instance name is any text.
func (s *baileysInstance) Validate() error { return nil }

func baileysProviderInfo(newSpec func() config.Spec, defaultURL string) config.ProviderInfo {
	return config.ProviderInfo{NewSpec: newSpec, IdentityField: "instance_name", SecretField: "api_key", DefaultURL: defaultURL}
}

// baileysStatusError classifies an error status of Evolution API or
// Wachat, quoting the message of their error bodies. A 404 is an unknown
// instance only when the body says so in the provider's shape: Evolution
// API answers a path it does not serve with 404 and the message "Cannot
// GET /path" (its own 404 handler), and anything else that answers 404 is
// not the provider's API at all.
func baileysStatusError(r Response, instanceName string) *Error {
	if r.Status == http.StatusNotFound {
		if msg, ok := baileysMessage(r.Body); ok && !wrongPath(r.Body) {
			return newError(ReasonClientError, "HTTP 404: no instance named %q; check instance_name: %s", instanceName, snippet([]byte(msg)))
		}
		return newError(ReasonClientError, "HTTP 404: api_url does not lead to the provider's API (wrong path, or another API such as Evolution Go); check api_url: %s", baileysErrorMessage(r.Body))
	}
	return statusError(r, baileysErrorMessage(r.Body))
}

// baileysErrorMessage extracts the message of an Evolution API
// ({"error":..,"response":{"message":[..]}}) or Wachat
// ({"success":false,"error":..}) error body, else quotes the body.
func baileysErrorMessage(body []byte) string {
	if msg, ok := baileysMessage(body); ok {
		return snippet([]byte(msg))
	}
	return snippet(body)
}

// wrongPath reports Evolution API's answer to a path it does not serve:
// {"status":404,"error":"Not Found","response":{"message":["Cannot GET /path"]}}.
func wrongPath(body []byte) bool {
	var v struct {
		Response struct {
			Message []string `json:"message"`
		} `json:"response"`
	}
	return json.Unmarshal(body, &v) == nil && len(v.Response.Message) == 1 && strings.HasPrefix(v.Response.Message[0], "Cannot ")
}

// baileysMessage is the message of an error body of the family; false
// when the body is not one.
func baileysMessage(body []byte) (string, bool) {
	var v struct {
		Error    any `json:"error"`
		Message  any `json:"message"`
		Response struct {
			Message any `json:"message"`
		} `json:"response"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", false
	}
	var parts []string
	for _, m := range []any{v.Error, v.Message, v.Response.Message} {
		switch m := m.(type) {
		case string:
			parts = append(parts, m)
		case []any:
			for _, x := range m {
				parts = append(parts, fmt.Sprint(x))
			}
		}
	}
	if len(parts) == 0 {
		return "", false
	}
	return strings.Join(parts, "; "), true
}

// baileysAccount is the configuration of an account of the family: a
// Wachat account or an Evolution API server, with its API key (Evolution
// API: the server's global key).
type baileysAccount struct {
	config.AccountCommon `yaml:",inline"`
	APIKey               promcfg.Secret `yaml:"api_key,omitempty"`
	APIKeyFile           string         `yaml:"api_key_file,omitempty"`
}

// Fields implements config.AccountSpec.
func (s *baileysAccount) Fields() config.Fields {
	return config.Fields{Secret: &s.APIKey, SecretFile: &s.APIKeyFile}
}

// Validate implements config.AccountSpec.
func (s *baileysAccount) Validate() error { return nil }

// baileysListedInstance is a found instance's configuration: the
// account's settings and key, its name.
func baileysListedInstance(provider string) func(config.AccountSpec, Listed, string) config.Spec {
	return func(spec config.AccountSpec, l Listed, name string) config.Spec {
		a := spec.(interface{ account() *baileysAccount }).account()
		in := baileysInstance{
			Common: config.Common{
				Name: name, Provider: provider, APIURL: a.APIURL, Timeout: a.Timeout, HTTPClientConfig: a.HTTPClientConfig,
			},
			InstanceName: l.ID,
			APIKey:       promcfg.Secret(a.Secret()),
		}
		if provider == "wachat" {
			return &WachatSpec{in}
		}
		e := spec.(*EvolutionAccountSpec)
		return &EvolutionSpec{baileysInstance: in,
			webhookPath:  webhookPath{WebhookPathSecret: promcfg.Secret(e.webhookKey.derive(derivedPath, l.ID))},
			webhookToken: webhookToken{WebhookToken: promcfg.Secret(e.webhookKey.derive(derivedToken, l.ID))},
			webhookJWT:   webhookJWT{WebhookJWTKey: promcfg.Secret(e.webhookKey.derive(derivedJWT, l.ID))},
			globalPath:   webhookPath{secret: e.webhookGlobalPath.secret},
		}
	}
}

func (s *baileysAccount) account() *baileysAccount { return s }

// baileysState is a listed state as the exporter reads it: StateUnknown
// when there is none.
func baileysState(s string) string {
	if strings.TrimSpace(s) == "" {
		return StateUnknown
	}
	return s
}
