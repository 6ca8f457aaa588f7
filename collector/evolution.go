package collector

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Evolution API (self-hosted):
// GET {api_url}/instance/connectionState/{instance_name} with header apikey.

func init() {
	register(&Provider{
		Name:    "evolution",
		States:  baileysStates,
		Working: "open",
		// Notifications and v2 listings tell why an instance closed.
		DisconnectReasons: baileysDisconnectReasons,
		DisconnectReason:  baileysDisconnectReason,
		Methods:           []string{"connectionState"},
		// Evolution API is self-hosted: api_url has no default.
		Config:    baileysProviderInfo(func() config.Spec { return &EvolutionSpec{} }, ""),
		NewClient: newEvolutionClient,
		Account:   evolutionAccounts,
		Webhook:   evolutionWebhook,
	})
}

// EvolutionSpec is the configuration of an Evolution API instance.
type EvolutionSpec struct {
	baileysInstance `yaml:",inline"`
	// The credentials of the instance's webhook (evolution_webhook.go).
	webhookPath  `yaml:",inline"`
	webhookToken `yaml:",inline"`
	webhookJWT   `yaml:",inline"`
	// globalPath is the global webhook's path secret of the account that
	// found the instance; not configurable on an instance.
	globalPath webhookPath
}

// Fields implements config.Spec.
func (s *EvolutionSpec) Fields() config.Fields {
	f := s.baileysInstance.Fields()
	f.Optional = []config.OptionalSecret{s.webhookPath.field(), s.webhookToken.field(), s.webhookJWT.field()}
	return f
}

type evolutionClient struct {
	api    *API
	url    string
	header http.Header
	name   string
	base   string // api_url, for the actions (evolution_actions.go)
}

func newEvolutionClient(spec config.Spec, api *API) (Client, error) {
	b := spec.Base()
	api.addSecret(b.Secret())
	return &evolutionClient{
		api:    api,
		url:    b.APIURL + "/instance/connectionState/" + url.PathEscape(b.ID()),
		header: http.Header{"Apikey": {b.Secret()}},
		name:   b.ID(),
		base:   b.APIURL,
	}, nil
}

func (c *evolutionClient) State(ctx context.Context) (string, error) {
	return c.api.Get(ctx, "connectionState", c.url, c.header, func(r Response) (string, error) {
		if r.Status < 200 || r.Status > 299 {
			return "", baileysStatusError(r, c.name)
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
