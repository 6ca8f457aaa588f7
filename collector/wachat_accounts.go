package collector

import (
	"encoding/json"
	"errors"
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
		decode = func(r Response, s *jsonStream) (Listing, error) {
			l, err := decodeWachatList(r, s)
			for i := range l.Instances {
				l.Instances[i].State = ""
			}
			return l, err
		}
	}
	return newGetLister(spec, api, "listInstances", a.APIURL+"/instance/list",
		http.Header{"Authorization": {"Bearer " + a.Secret()}}, decode), nil
}

// decodeWachatList reads {"success":true,"count":N,"instances":[...]},
// with every instance's state.
func decodeWachatList(r Response, s *jsonStream) (Listing, error) {
	if s == nil {
		return Listing{}, baileysStatusError(r, "")
	}
	var l Listing
	var success *bool
	found := false
	err := s.object(func(key string) error {
		switch key {
		case "instances":
			if c, err := s.peek(); err == nil && c == 'n' { // null
				_, _, err := s.value()
				return err
			}
			// A repeated key replaces the first, as in encoding/json.
			l, found = Listing{}, true
			return s.array(func(raw []byte, whole bool) error {
				var row struct {
					Name  string `json:"apiInstanceName"`
					State string `json:"state"`
				}
				if !mayHold(raw, whole, "apiinstancename") || json.Unmarshal(raw, &row) != nil || row.Name == "" {
					l.Malformed++
					return nil
				}
				return s.keep(&l, Listed{Name: row.Name, ID: row.Name, State: baileysState(row.State)})
			})
		case "success":
			raw, _, err := s.value()
			if err == nil && json.Unmarshal(raw, &success) != nil {
				err = errSyntax
			}
			return err
		}
		_, _, err := s.value()
		return err
	})
	if err == nil {
		err = s.end()
	}
	switch {
	case errors.Is(err, errSyntax):
		return Listing{}, newError(ReasonBadResponse, "HTTP %d: the listing is not a JSON object", r.Status)
	case success != nil && !*success:
		// Not even the message: the answer may hold tokens.
		return Listing{}, newError(ReasonBadResponse, "HTTP %d: success is false", r.Status)
	case err != nil:
		return Listing{}, err
	case !found:
		return Listing{}, newError(ReasonBadResponse, "HTTP %d: no instances in the listing", r.Status)
	}
	return l, nil
}
