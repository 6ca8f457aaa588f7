package collector

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// The whatsmeow family: self-hosted HTTP servers built on the whatsmeow
// Go library (Evolution Go, wuzapi, GOWA). Each reports the same two
// facts of an instance's whatsmeow client, IsConnected (the websocket to
// WhatsApp is up) and IsLoggedIn (the device is linked), under its own
// path, header and JSON keys. One provider reads them all: a server is a
// row of whatsmeowServers, chosen by an instance's server field.

// The family's states, from the pair (see whatsmeowPairState), and the
// ban a notification tells.
const (
	// whatsmeowLoggedIn: connected and logged in; it sends.
	whatsmeowLoggedIn = "logged_in"
	// whatsmeowPairing: connected, not logged in: the server shows a QR
	// code or waits for a pairing code; someone must link the device.
	whatsmeowPairing = "pairing"
	// whatsmeowDisconnected: logged in, not connected: whatsmeow
	// reconnects by itself.
	whatsmeowDisconnected = "disconnected"
	// whatsmeowLoggedOut: neither, or no session runs on the server for
	// the instance: someone must connect and link it.
	whatsmeowLoggedOut = "logged_out"
	// whatsmeowTemporaryBan: WhatsApp refused the connection with a
	// temporary ban (whatsmeow's events.TemporaryBan). Only a
	// notification tells it: the status call then reports disconnected.
	whatsmeowTemporaryBan = "temporary_ban"
)

var whatsmeowStates = []string{whatsmeowLoggedIn, whatsmeowPairing, whatsmeowDisconnected, whatsmeowLoggedOut, whatsmeowTemporaryBan}

// The reasons of the last disconnection the family's notifications tell.
// The ban stays in whatsapp_instance_disconnect_reason after the next
// status call shows the instance disconnected, until it is seen logged in.
const (
	whatsmeowReasonBan       = "temporary_ban"
	whatsmeowReasonLoggedOut = "logged_out"
	whatsmeowReasonQRExpired = "qr_expired"
)

func init() {
	register(&Provider{
		Name:              "whatsmeow",
		States:            whatsmeowStates,
		Working:           whatsmeowLoggedIn,
		DisconnectReasons: []string{whatsmeowReasonBan, whatsmeowReasonLoggedOut, whatsmeowReasonQRExpired},
		// No listing carries a disconnection code.
		DisconnectReason: func(int) string { return "" },
		Methods:          []string{whatsmeowMethod},
		// Self-hosted: api_url has no default.
		Config: config.ProviderInfo{
			NewSpec:       func() config.Spec { return &WhatsmeowSpec{} },
			IdentityField: "instance_name", SecretField: "api_key",
		},
		NewClient: newWhatsmeowClient,
		Account:   whatsmeowAccounts,
		Webhook:   whatsmeowWebhook,
	})
}

// whatsmeowMethod is the method label of every server's status call.
const whatsmeowMethod = "status"

// whatsmeowServer is how one server of the family is asked for the pair.
// A fourth server is a fourth row of whatsmeowServers.
type whatsmeowServer struct {
	// name is the value of an instance's server field.
	name string
	// path is the status call's path below api_url for an instance.
	path func(instance string) string
	// header carries the instance's api_key.
	header func(key string) http.Header
	// connected and loggedIn are the JSON paths of the two booleans in a
	// successful answer.
	connected, loggedIn []string
	// states are the error answers that report a state: the server
	// answers some states with an error status.
	states []whatsmeowErrorState
	// keyNames says what api_key is, for the error of a refused key.
	keyNames string
	// list is how the server lists its instances (whatsmeow_accounts.go).
	list whatsmeowList
}

// whatsmeowErrorState is an error answer that reports a state: its
// status and the message of its body, exactly.
type whatsmeowErrorState struct {
	status  int
	message string
	state   string
}

// whatsmeowServers are the servers of the family, read at their source:
//   - Evolution Go (EvolutionAPI/evolution-go): GET /instance/status with
//     the instance's token in apikey (pkg/routes/routes.go,
//     pkg/middleware/auth_middleware.go). The handler answers 200
//     {"message":"success","data":{"Connected":..,"LoggedIn":..,"Name":..}}
//     (StatusStruct has no json tags: the keys are capitalised;
//     pkg/instance/handler/instance_handler.go, pkg/instance/service/
//     instance_service.go), but only while the client is connected:
//     ensureClientConnected answers 400 {"error":"client disconnected"}
//     for a client that is not, and, when no client runs, starts one,
//     waits 2 s, and answers 400 {"error":"no active session found"} if
//     it did not connect. A wrong token is 401 {"error":"not authorized"}.
//   - wuzapi (asternic/wuzapi): GET /session/status with the user's token
//     in Token; 200 {"code":200,"data":{"Connected":..,"LoggedIn":..},
//     "success":true}, and 500 {"code":500,"error":"No session",
//     "success":false} when no client runs for the user (handlers.go
//     GetStatus and Respond).
//   - GOWA (aldinokemal/go-whatsapp-web-multidevice): GET
//     /devices/{device_id}/status with the server's basic auth
//     (APP_BASIC_AUTH, api_key is "user:password"); 200 {"code":"SUCCESS",
//     "message":"Device status","results":{"device_id":..,"is_connected":..,
//     "is_logged_in":..}} (src/ui/rest/device.go Status,
//     src/pkg/utils/response.go).
var whatsmeowServers = []whatsmeowServer{
	{
		name:      "evolution-go",
		path:      func(string) string { return "/instance/status" },
		header:    func(key string) http.Header { return http.Header{"Apikey": {key}} },
		connected: []string{"data", "Connected"}, loggedIn: []string{"data", "LoggedIn"},
		states: []whatsmeowErrorState{
			{http.StatusBadRequest, "client disconnected", whatsmeowDisconnected},
			{http.StatusBadRequest, "no active session found", whatsmeowLoggedOut},
		},
		keyNames: "api_key is the instance's token; a wrong token and an unknown instance are answered alike",
		// GET /instance/all with GLOBAL_API_KEY in apikey (AuthAdmin):
		// {"message":"success","data":[{"id","name","token","connected",..}]},
		// connected being IsLoggedIn (instance_service.go GetAll).
		list: whatsmeowList{path: "/instance/all", header: func(key string) http.Header { return http.Header{"Apikey": {key}} },
			rows: "data", name: "name", token: "token"},
	},
	{
		name:      "wuzapi",
		path:      func(string) string { return "/session/status" },
		header:    func(key string) http.Header { return http.Header{"Token": {key}} },
		connected: []string{"data", "Connected"}, loggedIn: []string{"data", "LoggedIn"},
		states: []whatsmeowErrorState{
			{http.StatusInternalServerError, "No session", whatsmeowLoggedOut},
		},
		keyNames: "api_key is the user's token; a wrong token and an unknown user are answered alike",
		// GET /admin/users with WUZAPI_ADMIN_TOKEN in Authorization
		// (authadmin): {"code":200,"data":[{"id","name","token",
		// "connected","loggedIn",..}],"success":true}, the pair read live
		// from each user's client (handlers.go ListUsers).
		list: whatsmeowList{path: "/admin/users", header: func(key string) http.Header { return http.Header{"Authorization": {key}} },
			rows: "data", name: "name", token: "token", connected: "connected", loggedIn: "loggedIn"},
	},
	{
		name:      "gowa",
		path:      func(id string) string { return "/devices/" + url.PathEscape(id) + "/status" },
		header:    gowaBasicAuth,
		connected: []string{"results", "is_connected"}, loggedIn: []string{"results", "is_logged_in"},
		keyNames: "api_key is the server's basic auth, user:password",
		// GET /devices: {"code":"SUCCESS","results":[{"id","state",..}]}
		// (src/ui/rest/device.go ListDevices, src/domains/device/device.go).
		// With no devices, results is left out (omitempty).
		list: whatsmeowList{path: "/devices", header: gowaBasicAuth, rows: "results", name: "id", success: [2]string{"code", "SUCCESS"}},
	},
}

// gowaBasicAuth is GOWA's credential: api_key is user:password.
func gowaBasicAuth(key string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(key))}}
}

// whatsmeowServerNamed returns the row of a server; false for none.
func whatsmeowServerNamed(name string) (*whatsmeowServer, bool) {
	i := slices.IndexFunc(whatsmeowServers, func(s whatsmeowServer) bool { return s.name == name })
	if i < 0 {
		return nil, false
	}
	return &whatsmeowServers[i], true
}

func whatsmeowServerNames() []string {
	var names []string
	for _, s := range whatsmeowServers {
		names = append(names, s.name)
	}
	return names
}

// WhatsmeowSpec is the configuration of an instance of the family.
type WhatsmeowSpec struct {
	config.Common `yaml:",inline"`
	// Server is the server's row in whatsmeowServers.
	Server string `yaml:"server"`
	// InstanceName is what the server and its notifications call the
	// instance: Evolution Go's instance name, wuzapi's user name, GOWA's
	// device ID.
	InstanceName string         `yaml:"instance_name"`
	APIKey       promcfg.Secret `yaml:"api_key,omitempty"`
	APIKeyFile   string         `yaml:"api_key_file,omitempty"`
	// The credentials of its notifications (whatsmeow_webhook.go).
	webhookPath `yaml:",inline"`
	webhookHMAC `yaml:",inline"`
	// globalPath is Evolution Go's WEBHOOK_URL path secret of the account
	// that found the instance; not configurable on an instance.
	globalPath webhookPath
}

// Fields implements config.Spec.
func (s *WhatsmeowSpec) Fields() config.Fields {
	return config.Fields{ID: &s.InstanceName, Secret: &s.APIKey, SecretFile: &s.APIKeyFile,
		Optional: []config.OptionalSecret{s.webhookPath.field(), s.webhookHMAC.field()}}
}

// Validate implements config.Spec: server names a row.
func (s *WhatsmeowSpec) Validate() error {
	if _, ok := whatsmeowServerNamed(s.Server); !ok {
		if s.Server == "" {
			return fmt.Errorf("server is required: one of %s", strings.Join(whatsmeowServerNames(), ", "))
		}
		return fmt.Errorf("server %q is not one of %s", shorten(s.Server, 40), strings.Join(whatsmeowServerNames(), ", "))
	}
	return nil
}

type whatsmeowClient struct {
	api    *API
	server *whatsmeowServer
	url    string
	header http.Header
}

func newWhatsmeowClient(spec config.Spec, api *API) (Client, error) {
	s := spec.(*WhatsmeowSpec)
	srv, ok := whatsmeowServerNamed(s.Server)
	if !ok { // Validate let it through: a programming error
		return nil, fmt.Errorf("unknown whatsmeow server %q", s.Server)
	}
	b := spec.Base()
	api.addSecret(b.Secret())
	if srv.name == "gowa" {
		// The header carries the secret encoded: hide that form too.
		api.addSecret(base64.StdEncoding.EncodeToString([]byte(b.Secret())))
	}
	return &whatsmeowClient{api: api, server: srv, url: b.APIURL + srv.path(b.ID()), header: srv.header(b.Secret())}, nil
}

func (c *whatsmeowClient) State(ctx context.Context) (string, error) {
	return c.api.Get(ctx, whatsmeowMethod, c.url, c.header, func(r Response) (string, error) {
		return c.server.read(r)
	})
}

// read maps an answer of the server onto a state or an *Error.
func (srv *whatsmeowServer) read(r Response) (string, error) {
	msg, hasMsg := whatsmeowMessage(r.Body)
	if r.Status < 200 || r.Status > 299 {
		for _, es := range srv.states {
			if es.status == r.Status && hasMsg && msg == es.message {
				return es.state, nil
			}
		}
		detail := snippet(r.Body)
		if hasMsg {
			detail = snippet([]byte(msg))
		}
		if r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden {
			detail += " (" + srv.keyNames + ")"
		}
		return "", statusError(r, detail)
	}
	var v any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return "", newError(ReasonBadResponse, "HTTP %d: the answer is not JSON: %s", r.Status, snippet(r.Body))
	}
	connected, ok1 := jsonBool(v, srv.connected)
	loggedIn, ok2 := jsonBool(v, srv.loggedIn)
	if !ok1 || !ok2 {
		// The answer is JSON of a success: not quoted, as it may hold the
		// account's number (a jid) in a version whose fields differ.
		return "", newError(ReasonBadResponse, "HTTP %d: no booleans %s and %s in the answer",
			r.Status, strings.Join(srv.connected, "."), strings.Join(srv.loggedIn, "."))
	}
	return whatsmeowPairState(connected, loggedIn), nil
}

// whatsmeowPairState maps the pair onto what an operator must do.
func whatsmeowPairState(connected, loggedIn bool) string {
	switch {
	case connected && loggedIn:
		return whatsmeowLoggedIn
	case loggedIn:
		return whatsmeowDisconnected
	case connected:
		return whatsmeowPairing
	}
	return whatsmeowLoggedOut
}

// jsonBool follows path through JSON objects to a boolean. A key is
// matched exactly, else in any case: the servers' keys are read from
// their code (Evolution Go's Connected is capitalised, its documentation
// writes connected), and a case the code did not show should not make an
// instance unknown.
func jsonBool(v any, path []string) (bool, bool) {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return false, false
		}
		x, ok := m[k]
		if !ok {
			for mk, mv := range m {
				if strings.EqualFold(mk, k) {
					x, ok = mv, true
					break
				}
			}
		}
		if !ok {
			return false, false
		}
		v = x
	}
	b, ok := v.(bool)
	return b, ok
}

// whatsmeowMessage is the message of an error body of the family:
// {"error":".."} (Evolution Go, wuzapi) or {"code":..,"message":".."}
// (GOWA); false when the body is not one.
func whatsmeowMessage(body []byte) (string, bool) {
	var v struct {
		Error   *string `json:"error"`
		Message *string `json:"message"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", false
	}
	switch {
	case v.Error != nil:
		return *v.Error, true
	case v.Message != nil:
		return *v.Message, true
	}
	return "", false
}
