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
