package collector

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Evolution API servers: GET {api_url}/instance/fetchInstances with the
// server's global key lists every instance, in one call. Each row also
// holds the instance's own token: it is never read.

var evolutionAccounts = &AccountKind{
	Method: "fetchInstances",
	Config: config.AccountInfo{
		NewSpec:     func() config.AccountSpec { return &EvolutionAccountSpec{} },
		SecretField: "api_key",
	},
	NewLister:    newEvolutionLister,
	Instance:     baileysListedInstance("evolution"),
	StateRequest: true,
}

// EvolutionAccountSpec is the configuration of an Evolution API server;
// api_key is its global key.
type EvolutionAccountSpec struct {
	baileysAccount `yaml:",inline"`
	// The key of the webhook credentials of each instance found
	// (webhook_key.go), and the global webhook's path secret.
	webhookKey        `yaml:",inline"`
	webhookGlobalPath `yaml:",inline"`
}

// Fields implements config.AccountSpec.
func (s *EvolutionAccountSpec) Fields() config.Fields {
	f := s.baileysAccount.Fields()
	f.Optional = []config.OptionalSecret{s.webhookKey.field(), s.webhookGlobalPath.field()}
	return f
}

func newEvolutionLister(spec config.AccountSpec, api *API) (Lister, error) {
	a := spec.Account()
	api.addSecret(a.Secret())
	return newGetLister(spec, api, "fetchInstances", a.APIURL+"/instance/fetchInstances",
		http.Header{"Apikey": {a.Secret()}}, decodeEvolutionInstances), nil
}

// decodeEvolutionInstances reads version 2's rows ({"name",
// "connectionStatus", "token", "disconnectionReasonCode", ...}) and version
// 1's ({"instance": {"instanceName", "status", "apikey"}}). Only names,
// states and reasons are decoded: the tokens stay in the body, which no
// error quotes.
//
// Version 1 builds its rows from the instances in memory: their status is
// the live state, and the listing is their state request. Version 2
// returns rows of its database, whose connectionStatus is written only
// when a QR code is shown, on connect and on a close it will not retry: an
// instance that lost its connection keeps open there while it reconnects,
// and one whose QR code expired keeps connecting while it is close. Its
// rows only find instances, which are then called one by one
// (connectionState). A row of neither shape is called one by one too.
// disconnectionReasonCode is written with those final closes and never
// cleared: it is the reason of the instance's close only while the row
// still says close.
func decodeEvolutionInstances(r Response, s *jsonStream) (Listing, error) {
	if s == nil {
		return Listing{}, baileysStatusError(r, "")
	}
	var l Listing
	err := s.array(func(raw []byte, whole bool) error {
		var row struct {
			Name     string  `json:"name"`
			Status   *string `json:"connectionStatus"`
			Reason   *int    `json:"disconnectionReasonCode"`
			Instance *struct {
				Name   string `json:"instanceName"`
				Status string `json:"status"`
			} `json:"instance"`
		}
		if !mayHold(raw, whole, "name") || json.Unmarshal(raw, &row) != nil {
			l.Malformed++
			return nil
		}
		var in Listed
		switch {
		case row.Name != "" && row.Status != nil: // version 2
			in.Name = row.Name
			if *row.Status == "close" && row.Reason != nil {
				in.Disconnect = *row.Reason
			}
		case row.Name == "" && row.Instance != nil && row.Instance.Name != "": // version 1
			in.Name, in.State = row.Instance.Name, strings.TrimSpace(row.Instance.Status)
		default: // a name without a known shape: called one by one
			in.Name = row.Name
		}
		if in.Name == "" {
			l.Malformed++
			return nil
		}
		in.ID = in.Name
		return s.keep(&l, in)
	})
	if err == nil {
		err = s.end()
	}
	if errors.Is(err, errSyntax) {
		return Listing{}, newError(ReasonBadResponse, "HTTP %d: the listing is not a JSON array", r.Status)
	}
	return l, err
}
