package collector

import (
	"encoding/json"
	"net/http"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Evolution API servers: GET {api_url}/instance/fetchInstances with the
// server's global key lists every instance with its connection status, in
// one call. Each row also holds the instance's own token: it is never
// read.

var evolutionAccounts = &AccountKind{
	Method: "fetchInstances",
	Config: config.AccountInfo{
		NewSpec:     func() config.AccountSpec { return &EvolutionAccountSpec{} },
		SecretField: "api_key",
	},
	NewLister:     newEvolutionLister,
	Instance:      baileysListedInstance("evolution"),
	CarriesStates: true,
}

// EvolutionAccountSpec is the configuration of an Evolution API server;
// api_key is its global key.
type EvolutionAccountSpec struct {
	baileysAccount `yaml:",inline"`
	// The webhook credentials of every instance found.
	webhookToken `yaml:",inline"`
	webhookJWT   `yaml:",inline"`
}

// Fields implements config.AccountSpec.
func (s *EvolutionAccountSpec) Fields() config.Fields {
	f := s.baileysAccount.Fields()
	f.Optional = []config.OptionalSecret{s.webhookToken.field(), s.webhookJWT.field()}
	return f
}

func newEvolutionLister(spec config.AccountSpec, api *API) (Lister, error) {
	a := spec.Account()
	api.addSecret(a.Secret())
	return &getLister{api: api, method: "fetchInstances", url: a.APIURL + "/instance/fetchInstances",
		header: http.Header{"Apikey": {a.Secret()}}, decode: decodeEvolutionInstances}, nil
}

// decodeEvolutionInstances reads version 2's rows ({"name",
// "connectionStatus", "token", ...}) and version 1's ({"instance":
// {"instanceName", "status", "apikey"}}). Only the name and the state are
// decoded: the tokens stay in the body, which no error quotes.
func decodeEvolutionInstances(r Response) (Listing, error) {
	if r.Status < 200 || r.Status > 299 {
		return Listing{}, baileysStatusError(r, "")
	}
	var rows []json.RawMessage
	if err := json.Unmarshal(r.Body, &rows); err != nil {
		return Listing{}, newError(ReasonBadResponse, "HTTP %d: the listing is not a JSON array", r.Status)
	}
	var l Listing
	for _, raw := range rows {
		var row struct {
			Name     string `json:"name"`
			Status   string `json:"connectionStatus"`
			Instance *struct {
				Name   string `json:"instanceName"`
				Status string `json:"status"`
			} `json:"instance"`
		}
		if json.Unmarshal(raw, &row) != nil {
			l.Malformed++
			continue
		}
		if row.Name == "" && row.Instance != nil {
			row.Name, row.Status = row.Instance.Name, row.Instance.Status
		}
		if row.Name == "" {
			l.Malformed++
			continue
		}
		l.Instances = append(l.Instances, Listed{Name: row.Name, ID: row.Name, State: baileysState(row.Status)})
	}
	return l, nil
}
