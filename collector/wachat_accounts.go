package collector

import (
	"encoding/json"
	"net/http"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Wachat accounts: GET {api_url}/instance/list with the account's API key
// lists every instance of the account with a state, in one call. Nothing
// says that state is live: Wachat is built on Evolution API, whose version
// 2 lists the rows of its database, whose states lag behind the
// connection's. So the list only finds instances, which are called one by
// one, unless the account sets states_from_listing.

var wachatAccounts = &AccountKind{
	Method: "listInstances",
	Config: config.AccountInfo{
		NewSpec:     func() config.AccountSpec { return &WachatAccountSpec{} },
		SecretField: "api_key",
		DefaultURL:  wachatDefaultURL,
	},
	NewLister:    newWachatLister,
	Instance:     baileysListedInstance("wachat"),
	StateRequest: true,
}

// WachatAccountSpec is the configuration of a Wachat account.
type WachatAccountSpec struct {
	baileysAccount `yaml:",inline"`
	// StatesFromListing takes the instances' states from the listing
	// instead of calling each instance: one call per account instead of
	// one per instance, with states that may lag behind.
	StatesFromListing bool `yaml:"states_from_listing,omitempty"`
}

func newWachatLister(spec config.AccountSpec, api *API) (Lister, error) {
	a := spec.Account()
	api.addSecret(a.Secret())
	decode := decodeWachatList
	if !spec.(*WachatAccountSpec).StatesFromListing {
		decode = func(r Response) (Listing, error) {
			l, err := decodeWachatList(r)
			for i := range l.Instances {
				l.Instances[i].State = ""
			}
			return l, err
		}
	}
	return &getLister{api: api, method: "listInstances", url: a.APIURL + "/instance/list",
		header: http.Header{"Authorization": {"Bearer " + a.Secret()}}, decode: decode}, nil
}

// decodeWachatList reads {"success":true,"count":N,"instances":[...]},
// with every instance's state.
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
