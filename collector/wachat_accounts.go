package collector

import (
	"encoding/json"
	"net/http"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Wachat accounts: GET {api_url}/instance/list with the account's API key
// lists every instance of the account with its state, in one call.

var wachatAccounts = &AccountKind{
	Method: "listInstances",
	Config: config.AccountInfo{
		NewSpec:     func() config.AccountSpec { return &WachatAccountSpec{} },
		SecretField: "api_key",
		DefaultURL:  wachatDefaultURL,
	},
	NewLister:     newWachatLister,
	Instance:      baileysListedInstance("wachat"),
	CarriesStates: true,
}

// WachatAccountSpec is the configuration of a Wachat account.
type WachatAccountSpec struct {
	baileysAccount `yaml:",inline"`
}

func newWachatLister(spec config.AccountSpec, api *API) (Lister, error) {
	a := spec.Account()
	api.addSecret(a.Secret())
	return &getLister{api: api, method: "listInstances", url: a.APIURL + "/instance/list",
		header: http.Header{"Authorization": {"Bearer " + a.Secret()}}, decode: decodeWachatList}, nil
}

// decodeWachatList reads {"success":true,"count":N,"instances":[...]}.
func decodeWachatList(r Response) (Listing, error) {
	if r.Status < 200 || r.Status > 299 {
		return Listing{}, baileysStatusError(r, "")
	}
	var v struct {
		Success   *bool             `json:"success"`
		Instances []json.RawMessage `json:"instances"`
	}
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return Listing{}, newError(ReasonBadResponse, "HTTP %d: the listing is not a JSON object", r.Status)
	}
	if v.Success != nil && !*v.Success {
		// Not even the message: the answer may hold tokens.
		return Listing{}, newError(ReasonBadResponse, "HTTP %d: success is false", r.Status)
	}
	if v.Instances == nil {
		return Listing{}, newError(ReasonBadResponse, "HTTP %d: no instances in the listing", r.Status)
	}
	var l Listing
	for _, raw := range v.Instances {
		var row struct {
			Name  string `json:"apiInstanceName"`
			State string `json:"state"`
		}
		if json.Unmarshal(raw, &row) != nil || row.Name == "" {
			l.Malformed++
			continue
		}
		l.Instances = append(l.Instances, Listed{Name: row.Name, ID: row.Name, State: baileysState(row.State)})
	}
	return l, nil
}
