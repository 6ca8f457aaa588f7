package collector

import (
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"

	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// GREEN-API partner accounts:
// GET {api_url}/partner/getInstances/{partnerToken} lists every instance
// of the partner, deleted ones of the last months included, each with its
// apiTokenInstance and its product (typeInstance: whatsapp, telegram, v3
// for MAX, instagram). It does not give the instance's own host. It
// carries no states, but for isExpired (payment overdue), which the
// exporter shows as the state expired.

const (
	greenAPIPartnerDefaultURL = "https://api.green-api.com"
	// greenAPIIDPrefix in instance_api_url stands for the first four
	// digits of the idInstance, which usually name the instance's host.
	greenAPIIDPrefix = "{id4}"
)

var greenAPIAccounts = &AccountKind{
	Method: "getInstances",
	Config: config.AccountInfo{
		NewSpec:     func() config.AccountSpec { return &GreenAPIAccountSpec{} },
		SecretField: "partner_token",
		DefaultURL:  greenAPIPartnerDefaultURL,
	},
	NewLister: newGreenAPIPartnerLister,
	Instance:  greenAPIListedInstance,
}

// GreenAPIAccountSpec is the configuration of a GREEN-API partner account.
type GreenAPIAccountSpec struct {
	config.AccountCommon `yaml:",inline"`
	PartnerToken         promcfg.Secret `yaml:"partner_token,omitempty"`
	PartnerTokenFile     string         `yaml:"partner_token_file,omitempty"`
	// InstanceAPIURL is the api_url of the instances found; {id4} stands
	// for the first four digits of the idInstance. Default: the universal
	// host.
	InstanceAPIURL string `yaml:"instance_api_url,omitempty"`
	// The key of the webhookUrlToken of each instance found
	// (webhook_key.go).
	webhookKey `yaml:",inline"`
	// MessagesQueue is the messages_queue of every instance found.
	MessagesQueue *bool `yaml:"messages_queue,omitempty"`
}

// Fields implements config.AccountSpec.
func (s *GreenAPIAccountSpec) Fields() config.Fields {
	return config.Fields{Secret: &s.PartnerToken, SecretFile: &s.PartnerTokenFile,
		Optional: []config.OptionalSecret{s.webhookKey.field()}}
}

// Validate implements config.AccountSpec.
func (s *GreenAPIAccountSpec) Validate() error {
	if s.InstanceAPIURL == "" {
		s.InstanceAPIURL = greenAPIDefaultURL
	}
	u, err := url.Parse(strings.ReplaceAll(s.InstanceAPIURL, greenAPIIDPrefix, "1101"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return &config.FieldError{Field: "instance_api_url", Err: errors.New("must be an http:// or https:// URL without credentials or query, where {id4} may stand for the first four digits of idInstance")}
	}
	s.InstanceAPIURL = strings.TrimSuffix(s.InstanceAPIURL, "/")
	return nil
}

func newGreenAPIPartnerLister(spec config.AccountSpec, api *API) (Lister, error) {
	a := spec.Account()
	api.addSecret(a.Secret())
	return newGetLister(spec, api, "getInstances", a.APIURL+"/partner/getInstances/"+url.PathEscape(a.Secret()), nil,
		decodeGreenAPIPartnerInstances), nil
}

// decodeGreenAPIPartnerInstances reads the listing. A row that is not an
// instance is counted as malformed; the others count. A successful answer
// holds every instance's token: its text never goes into an error.
func decodeGreenAPIPartnerInstances(r Response, s *jsonStream) (Listing, error) {
	if s == nil {
		return Listing{}, statusError(r, snippet(r.Body))
	}
	if c, err := s.peek(); err == nil && c == '{' {
		// How the partner methods answer a wrong partner token:
		// {"code":401,...}.
		if raw, whole, err := s.value(); err == nil && whole && greenAPICode401(raw) {
			return Listing{}, newError(ReasonUnauthorized, "HTTP %d with code 401 in the body: check partner_token", r.Status)
		}
	}
	var l Listing
	err := s.array(func(raw []byte, whole bool) error {
		var row struct {
			IDInstance json.Number `json:"idInstance"`
			Name       string      `json:"name"`
			Token      string      `json:"apiTokenInstance"`
			Type       string      `json:"typeInstance"`
			Deleted    bool        `json:"deleted"`
			Expired    bool        `json:"isExpired"`
		}
		id := ""
		if mayHold(raw, whole, "idinstance") && json.Unmarshal(raw, &row) == nil {
			id = row.IDInstance.String()
		}
		other := row.Type != "" && row.Type != "whatsapp"
		if _, err := strconv.ParseUint(id, 10, 64); err != nil || len(id) > 19 || (row.Token == "" && !other) {
			l.Malformed++
			return nil
		}
		in := Listed{Name: row.Name, ID: id, Token: row.Token}
		if strings.TrimSpace(in.Name) == "" {
			in.Name = id
		}
		switch {
		case row.Deleted:
			in.Skip = skipDeleted
		case other:
			// telegram, v3 (MAX), instagram: other products, with
			// other states and, for MAX, other URLs.
			in.Skip, in.Token = skipNotWhatsApp, ""
		case row.Expired:
			// Its plan is not paid: it does not send. Watched, with the
			// state the listing gives, so that it pages rather than
			// vanishing.
			in.State = greenAPIExpired
		}
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

// greenAPIListedInstance is a found instance's configuration: the
// partner's settings, its own id and token, its host from
// instance_api_url.
func greenAPIListedInstance(spec config.AccountSpec, l Listed, name string) config.Spec {
	a := spec.(*GreenAPIAccountSpec)
	prefix := l.ID
	if len(prefix) > 4 {
		prefix = prefix[:4]
	}
	return &GreenAPISpec{
		Common: config.Common{
			Name: name, Provider: "greenapi", Timeout: a.Timeout, HTTPClientConfig: a.HTTPClientConfig,
			APIURL: strings.ReplaceAll(a.InstanceAPIURL, greenAPIIDPrefix, prefix),
		},
		IDInstance:    l.ID,
		APIToken:      promcfg.Secret(l.Token),
		webhookToken:  webhookToken{WebhookToken: promcfg.Secret(a.webhookKey.derive(derivedToken, l.ID))},
		MessagesQueue: a.MessagesQueue,
	}
}
