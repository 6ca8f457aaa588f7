package collector

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Evolution API notifications: a webhook set on an instance
// (POST /webhook/set/{instance}) with the CONNECTION_UPDATE event POSTs
// {"event":"connection.update","instance":"<name>","data":{"state":".."},"date_time":"..","apikey":".."}
// to its URL, with "/connection-update" appended when set by events.
// The body carries the instance's API token in apikey: it is never
// decoded. The request is authenticated by a header the user sets on the
// webhook (Authorization: the webhook_token) or, when the webhook's
// headers hold a jwt_key, by the HS256 JWT Evolution API signs with it.

var evolutionWebhook = &Webhook{
	Decode: decodeEvolutionNotification,
	Authorized: func(spec config.Spec, h http.Header, now time.Time) (ok, configured bool) {
		s := spec.(*EvolutionSpec)
		configured = s.webhookToken.token != "" || s.webhookJWT.key != ""
		return s.webhookToken.authorizes(h) || s.webhookJWT.authorizes(h, now), configured
	},
}

// decodeEvolutionNotification reads a connection.update event; other
// events are ignored. refused, sent when the QR code was not scanned in
// time, is a form of close.
//
// Evolution API writes date_time in its server's local time marked as
// UTC, so the time only orders its events among themselves; against the
// exporter's calls, an event counts from its arrival.
func decodeEvolutionNotification(body []byte, received time.Time) (Notification, error) {
	var v struct {
		Event    *string `json:"event"`
		Instance string  `json:"instance"`
		Data     struct {
			Instance string `json:"instance"`
			State    string `json:"state"`
		} `json:"data"`
		DateTime string `json:"date_time"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return Notification{}, errors.New("body is not a JSON object of Evolution API's event shape")
	}
	if v.Event == nil {
		return Notification{}, errors.New("no event")
	}
	n := Notification{ID: v.Instance, At: received}
	if n.ID == "" {
		n.ID = v.Data.Instance
	}
	if strings.ToLower(strings.ReplaceAll(*v.Event, "_", ".")) != "connection.update" {
		return n, nil
	}
	switch {
	case n.ID == "":
		return Notification{}, errors.New("connection.update without instance")
	case v.Data.State == "":
		return Notification{}, errors.New("connection.update without data.state")
	}
	n.State = v.Data.State
	if n.State == "refused" {
		n.State = "close"
	}
	if t, err := time.Parse(time.RFC3339Nano, v.DateTime); err == nil {
		n.At = t
	}
	return n, nil
}

// webhookJWT is the jwt_key of an Evolution API webhook: the server then
// sends Authorization: Bearer <JWT signed with it>.
type webhookJWT struct {
	WebhookJWTKey     promcfg.Secret `yaml:"webhook_jwt_key,omitempty"`
	WebhookJWTKeyFile string         `yaml:"webhook_jwt_key_file,omitempty"`
	key               string
}

func (w *webhookJWT) field() config.OptionalSecret {
	return config.OptionalSecret{Field: "webhook_jwt_key", Value: &w.WebhookJWTKey, File: &w.WebhookJWTKeyFile, Resolved: &w.key}
}

// jwtLeeway allows for clocks a little apart.
const jwtLeeway = time.Minute

// authorizes checks an HS256 JWT in the Authorization header: its
// signature with the key, and that it has not expired. Evolution API
// signs {"iat","exp","app","action"} with exp ten minutes after iat. The
// token does not sign the body: a token seen by someone else is good for
// any body until it expires.
func (w *webhookJWT) authorizes(h http.Header, now time.Time) bool {
	if w.key == "" {
		return false
	}
	token, ok := bearer(h)
	if !ok {
		return false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(w.key))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return false
	}
	// Signed by the key's holder; still refuse another algorithm, which
	// the signature could not have been made with anyway.
	var header struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
		Nbf *json.Number `json:"nbf"`
	}
	if decodeJWTPart(parts[0], &header) != nil || header.Alg != "HS256" || decodeJWTPart(parts[1], &claims) != nil {
		return false
	}
	if claims.Exp == nil {
		return false // a token that never expires could be replayed forever
	}
	exp, err := claims.Exp.Float64()
	if err != nil || now.After(time.Unix(int64(exp), 0).Add(jwtLeeway)) {
		return false
	}
	if claims.Nbf != nil {
		nbf, err := claims.Nbf.Float64()
		if err != nil || now.Add(jwtLeeway).Before(time.Unix(int64(nbf), 0)) {
			return false
		}
	}
	return true
}

func decodeJWTPart(part string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
