package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Evolution API (self-hosted):
// GET {api_url}/instance/connectionState/{instance_name} with header apikey.

// evolutionStates are Baileys' connection states, shared by Wachat.
var evolutionStates = []string{"open", "connecting", "close"}

func init() {
	register(&Provider{
		Name:    "evolution",
		States:  evolutionStates,
		Methods: []string{"connectionState"},
		Config: config.ProviderInfo{
			NewSpec:       func() config.Spec { return &EvolutionSpec{} },
			IdentityField: "instance_name",
		},
		NewClient: newEvolutionClient,
	})
}

// namedInstance holds the settings of providers that address an instance
// by name and authenticate with an API key: Evolution API and Wachat.
type namedInstance struct {
	config.Common `yaml:",inline"`
	InstanceName  string         `yaml:"instance_name"`
	APIKey        promcfg.Secret `yaml:"api_key,omitempty"`
	APIKeyFile    string         `yaml:"api_key_file,omitempty"`

	key string
}

func (s *namedInstance) resolve(r *config.Resolver, defaultURL string) error {
	if err := r.Expand("instance_name", &s.InstanceName); err != nil {
		return err
	}
	if strings.TrimSpace(s.InstanceName) == "" {
		return &config.FieldError{Field: "instance_name", Err: errors.New("required")}
	}
	key, err := r.Secret("api_key", s.APIKey, "api_key_file", s.APIKeyFile)
	if err != nil {
		return err
	}
	s.key = key
	s.SetID(s.InstanceName)
	if s.Name == "" {
		s.Name = s.InstanceName
	}
	if s.APIURL == "" {
		s.APIURL = defaultURL
	}
	return nil
}

// EvolutionSpec is the configuration of an Evolution API instance.
type EvolutionSpec struct {
	namedInstance `yaml:",inline"`
}

// Resolve implements config.Spec. Evolution API is self-hosted, so api_url
// has no default.
func (s *EvolutionSpec) Resolve(r *config.Resolver) error { return s.resolve(r, "") }

type evolutionClient struct {
	api    *API
	url    string
	header http.Header
	name   string
}

func newEvolutionClient(spec config.Spec, api *API) (Client, error) {
	s := spec.(*EvolutionSpec)
	api.addSecret(s.key)
	return &evolutionClient{
		api:    api,
		url:    s.APIURL + "/instance/connectionState/" + url.PathEscape(s.InstanceName),
		header: http.Header{"Apikey": {s.key}},
		name:   s.InstanceName,
	}, nil
}

func (c *evolutionClient) State(ctx context.Context) (string, error) {
	return c.api.Get(ctx, "connectionState", c.url, c.header, func(r Response) (string, error) {
		if r.Status < 200 || r.Status > 299 {
			return "", evolutionStatusError(r, c.name)
		}
		var v struct {
			Instance *struct {
				State *string `json:"state"`
			} `json:"instance"`
		}
		if err := json.Unmarshal(r.Body, &v); err != nil || v.Instance == nil {
			return "", newError(ReasonBadResponse, "HTTP %d: no instance object in %s", r.Status, snippet(r.Body))
		}
		if v.Instance.State == nil || *v.Instance.State == "" {
			// The instance exists but is not loaded: the call worked.
			return StateUnknown, nil
		}
		return *v.Instance.State, nil
	})
}

// evolutionStatusError classifies an error status of Evolution API or
// Wachat, quoting the message of their error bodies.
func evolutionStatusError(r Response, instanceName string) *Error {
	if r.Status == http.StatusNotFound {
		return newError(ReasonClientError, "HTTP 404: no instance named %q; check instance_name: %s", instanceName, errorMessage(r.Body))
	}
	return statusError(r, errorMessage(r.Body))
}

// errorMessage extracts the message of an Evolution API
// ({"error":..,"response":{"message":[..]}}) or Wachat
// ({"success":false,"error":..}) error body, else quotes the body.
func errorMessage(body []byte) string {
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
