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
// Wachat, quoting the message of their error bodies.
func baileysStatusError(r Response, instanceName string) *Error {
	if r.Status == http.StatusNotFound {
		return newError(ReasonClientError, "HTTP 404: no instance named %q; check instance_name: %s", instanceName, baileysErrorMessage(r.Body))
	}
	return statusError(r, baileysErrorMessage(r.Body))
}

// baileysErrorMessage extracts the message of an Evolution API
// ({"error":..,"response":{"message":[..]}}) or Wachat
// ({"success":false,"error":..}) error body, else quotes the body.
func baileysErrorMessage(body []byte) string {
	var v struct {
		Error    any `json:"error"`
		Message  any `json:"message"`
		Response struct {
			Message any `json:"message"`
		} `json:"response"`
	}
	if json.Unmarshal(body, &v) != nil {
		return snippet(body)
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
		return snippet(body)
	}
	return snippet([]byte(strings.Join(parts, "; ")))
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
			webhookToken: webhookToken{WebhookToken: promcfg.Secret(e.webhookToken.token)},
			webhookJWT:   webhookJWT{WebhookJWTKey: promcfg.Secret(e.webhookJWT.key)},
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
