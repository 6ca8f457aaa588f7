package collector

import (
	"encoding/json"
	"errors"
	"net/http"

	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// A server of the family is an account: one call with its admin
// credential lists every instance on it (whatsmeowServer.list). The rows
// of Evolution Go and wuzapi hold each instance's own token, which its
// status call then carries; GOWA's devices share the server's basic auth.
// Only wuzapi's rows hold the live pair: its listing is the state request
// of its users, one call per server whatever their number. Evolution Go's
// rows say only IsLoggedIn (as "connected"), GOWA's a state that says
// logged_in whether or not the device is connected: theirs only find
// instances, which are then called one by one.

var whatsmeowAccounts = &AccountKind{
	Method: "list",
	Config: config.AccountInfo{
		NewSpec:     func() config.AccountSpec { return &WhatsmeowAccountSpec{} },
		SecretField: "api_key",
	},
	NewLister:    newWhatsmeowLister,
	Instance:     whatsmeowListedInstance,
	StateRequest: true,
}

// whatsmeowList is how a server lists its instances.
type whatsmeowList struct {
	// path is the listing's path below api_url; header carries the
	// account's key.
	path   string
	header func(key string) http.Header
	// rows is the key of the answer's object that holds the rows.
	rows string
	// name and token are the keys of a row's instance name and own
	// token ("" when the instances share the account's key).
	name, token string
	// connected and loggedIn are the keys of the live pair in a row; ""
	// when the rows do not hold it.
	connected, loggedIn string
	// success, when set, is the answer's key and value that say it
	// worked, for a server that leaves the rows out when there are none.
	success [2]string
}

// WhatsmeowAccountSpec is a server of the family; api_key is its admin
// credential: Evolution Go's GLOBAL_API_KEY, wuzapi's WUZAPI_ADMIN_TOKEN,
// GOWA's basic auth.
type WhatsmeowAccountSpec struct {
	config.AccountCommon `yaml:",inline"`
	Server               string         `yaml:"server"`
	APIKey               promcfg.Secret `yaml:"api_key,omitempty"`
	APIKeyFile           string         `yaml:"api_key_file,omitempty"`
	// The key of the webhook credentials of each instance found
	// (webhook_key.go), and Evolution Go's WEBHOOK_URL path secret.
	webhookKey        `yaml:",inline"`
	webhookGlobalPath `yaml:",inline"`
}

// Fields implements config.AccountSpec.
func (s *WhatsmeowAccountSpec) Fields() config.Fields {
	return config.Fields{Secret: &s.APIKey, SecretFile: &s.APIKeyFile,
		Optional: []config.OptionalSecret{s.webhookKey.field(), s.webhookGlobalPath.field()}}
}

// Validate implements config.AccountSpec.
func (s *WhatsmeowAccountSpec) Validate() error {
	return (&WhatsmeowSpec{Server: s.Server}).Validate()
}

// derivedHMAC is the kind of a derived wuzapi HMAC key (webhook_key.go).
const derivedHMAC = "hmac"

// whatsmeowListedInstance is a found instance: the account's settings,
// its own token (or the account's key), and webhook credentials derived
// from the account's webhook_key: a path secret (Evolution Go) and an
// HMAC key (wuzapi), each its own.
func whatsmeowListedInstance(spec config.AccountSpec, l Listed, name string) config.Spec {
	a := spec.(*WhatsmeowAccountSpec)
	key := l.Token
	if key == "" {
		key = a.Secret()
	}
	return &WhatsmeowSpec{
		Common: config.Common{
			Name: name, Provider: "whatsmeow", APIURL: a.APIURL, Timeout: a.Timeout, HTTPClientConfig: a.HTTPClientConfig,
		},
		Server: a.Server, InstanceName: l.ID, APIKey: promcfg.Secret(key),
		webhookPath: webhookPath{WebhookPathSecret: promcfg.Secret(a.webhookKey.derive(derivedPath, l.ID))},
		webhookHMAC: webhookHMAC{WebhookHMACKey: promcfg.Secret(a.webhookKey.derive(derivedHMAC, l.ID))},
		globalPath:  webhookPath{secret: a.webhookGlobalPath.secret},
	}
}

func newWhatsmeowLister(spec config.AccountSpec, api *API) (Lister, error) {
	a := spec.(*WhatsmeowAccountSpec)
	srv, ok := whatsmeowServerNamed(a.Server)
	if !ok {
		return nil, errors.New("unknown whatsmeow server " + a.Server)
	}
	api.addSecret(a.Secret())
	return newGetLister(spec, api, "list", a.APIURL+srv.list.path, srv.list.header(a.Secret()),
		func(r Response, s *jsonStream) (Listing, error) { return srv.list.decode(r, s) }), nil
}

// decode reads {"<rows>":[{...}, ...], ...}. Only the name, the token and
// the pair are decoded: rows also hold phone numbers (jid), QR codes and
// webhook URLs.
func (wl *whatsmeowList) decode(r Response, s *jsonStream) (Listing, error) {
	if s == nil {
		msg, ok := whatsmeowMessage(r.Body)
		detail := snippet(r.Body)
		if ok {
			detail = snippet([]byte(msg))
		}
		return Listing{}, statusError(r, detail)
	}
	var l Listing
	found, succeeded := false, false
	err := s.object(func(key string) error {
		if key != wl.rows {
			raw, _, err := s.value()
			if err == nil && wl.success[0] != "" && key == wl.success[0] {
				var v string
				succeeded = json.Unmarshal(raw, &v) == nil && v == wl.success[1]
			}
			return err
		}
		// A repeated key replaces the first, as in encoding/json.
		l, found = Listing{}, true
		return s.array(func(raw []byte, whole bool) error {
			var row map[string]json.RawMessage
			if !mayHold(raw, whole, wl.name) || json.Unmarshal(raw, &row) != nil {
				l.Malformed++
				return nil
			}
			var in Listed
			if json.Unmarshal(row[wl.name], &in.Name) != nil || in.Name == "" {
				l.Malformed++
				return nil
			}
			in.ID = in.Name
			if wl.token != "" && (json.Unmarshal(row[wl.token], &in.Token) != nil || in.Token == "") {
				l.Malformed++ // an instance that could not be called
				return nil
			}
			if wl.connected != "" {
				var c, li bool
				if json.Unmarshal(row[wl.connected], &c) == nil && json.Unmarshal(row[wl.loggedIn], &li) == nil {
					in.State = whatsmeowPairState(c, li)
				}
			}
			return s.keep(&l, in)
		})
	})
	if err == nil {
		err = s.end()
	}
	switch {
	case errors.Is(err, errSyntax):
		return Listing{}, newError(ReasonBadResponse, "HTTP %d: the listing is not a JSON object", r.Status)
	case err != nil:
		return Listing{}, err
	case !found && succeeded:
		return l, nil // no instances
	case !found:
		return Listing{}, newError(ReasonBadResponse, "HTTP %d: no %q array in the listing", r.Status, wl.rows)
	}
	return l, nil
}
