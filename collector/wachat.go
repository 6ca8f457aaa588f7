package collector

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Wachat (built on Evolution API):
// GET {api_url}/instance/state?instanceName={instance_name} with a bearer key.

const wachatDefaultURL = "https://app.wachat.net/api/v1"

func init() {
	register(&Provider{
		Name:      "wachat",
		States:    baileysStates,
		Working:   "open",
		Methods:   []string{"instanceState"},
		Config:    baileysProviderInfo(func() config.Spec { return &WachatSpec{} }, wachatDefaultURL),
		NewClient: newWachatClient,
		Account:   wachatAccounts,
	})
}

// WachatSpec is the configuration of a Wachat instance. instance_name is
// the apiInstanceName, not the display name.
type WachatSpec struct {
	baileysInstance `yaml:",inline"`
}

type wachatClient struct {
	api     *API
	url     string
	header  http.Header
	name    string
	sendURL string // for the actions (wachat_actions.go)
}

func newWachatClient(spec config.Spec, api *API) (Client, error) {
	b := spec.Base()
	api.addSecret(b.Secret())
	return &wachatClient{
		api:     api,
		url:     b.APIURL + "/instance/state?instanceName=" + url.QueryEscape(b.ID()),
		header:  http.Header{"Authorization": {"Bearer " + b.Secret()}},
		name:    b.ID(),
		sendURL: b.APIURL + "/send/text",
	}, nil
}

type wachatInstance struct {
	State *string `json:"state"`
}

type wachatData struct {
	Instance *wachatInstance `json:"instance"`
}

func (c *wachatClient) State(ctx context.Context) (string, error) {
	return c.api.Get(ctx, "instanceState", c.url, c.header, func(r Response) (string, error) {
		if r.Status < 200 || r.Status > 299 {
			return "", baileysStatusError(r, c.name)
		}
		var v struct {
			Success  *bool           `json:"success"`
			Instance *wachatInstance `json:"instance"`
			Data     *wachatData     `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &v); err != nil {
			return "", newError(ReasonBadResponse, "HTTP %d: body is not a JSON object: %s", r.Status, snippet(r.Body))
		}
		if v.Success != nil && !*v.Success {
			return "", newError(ReasonBadResponse, "HTTP %d: success is false: %s", r.Status, baileysErrorMessage(r.Body))
		}
		// The normalized instance block first, then the raw data block.
		var raw *wachatInstance
		if v.Data != nil {
			raw = v.Data.Instance
		}
		for _, in := range []*wachatInstance{v.Instance, raw} {
			if in != nil && in.State != nil && *in.State != "" {
				return *in.State, nil
			}
		}
		return "", newError(ReasonBadResponse, "HTTP %d: no instance state in %s", r.Status, snippet(r.Body))
	})
}
