package collector

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	jwtv5 "github.com/golang-jwt/jwt/v5"
	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Evolution API notifications: a webhook set on an instance
// (POST /webhook/set/{instance}), or the server's global webhook, with the
// CONNECTION_UPDATE event POSTs
// {"event":"connection.update","instance":"<name>","data":{"state":"..","statusReason":..},"date_time":"..","apikey":".."}
// to its URL, with "/connection-update" appended when set by events.
// The body may carry the instance's API token in apikey: it is never
// decoded. Which credential a request can carry depends on the server's
// version (its webhook code, v1.8 to 2.3):
//   - any version, and the global webhook: a secret in the URL's path,
//     /webhook/evolution/<webhook_path_secret>[/connection-update];
//   - 2.2.0 and later: a header the user sets on the webhook
//     (Authorization: the webhook_token);
//   - 2.3.0 and later: a jwt_key in the webhook's headers, which the
//     server replaces by Authorization: Bearer <HS256 JWT signed with it>.
//     2.2.x sends the jwt_key header as it is: the key travels in the
//     clear, and such a notification is refused.

var evolutionWebhook = &Webhook{
	Decode: decodeEvolutionNotification,
	Authorize: func(spec config.Spec, cred Credentials, now time.Time) Authorization {
		s := spec.(*EvolutionSpec)
		switch {
		case s.webhookJWT.key != "" && headerHolds(cred.Header, s.webhookJWT.key):
			return KeyInHeader
		case s.webhookPath.matches(cred.PathSecret), s.globalPath.matches(cred.PathSecret), s.webhookToken.authorizes(cred.Header), s.webhookJWT.authorizes(cred.Header, now):
			return Authorized
		case s.webhookPath.secret == "" && s.globalPath.secret == "" && s.webhookToken.token == "" && s.webhookJWT.key == "":
			return NoCredentials
		}
		return Refused
	},
	// Evolution API pushes connecting for every attempt to reconnect,
	// also while its connectionState answers close (it then never pushes
	// close again): an attempt does not end a close. Only open does.
	Replaces: func(current, notified string) bool {
		return current != "close" || notified != "connecting"
	},
	Status: evolutionStatus,
}

// evolutionStatus answers by Evolution API's retry rules: from 2.3.0 it
// does not retry a 400, 401, 403, 404 or 422, and retries anything else
// up to 10 times (2.2.x retries every failure 10 times, 30 s apart; 1.8
// never retries). A notification that cannot be taken is answered so that
// it is not sent again for nothing; one that did not arrive whole may be.
func evolutionStatus(outcome string) int {
	switch outcome {
	case OutcomeAccepted, OutcomeStale, OutcomeIgnored:
		return http.StatusOK
	case OutcomeUnauthorized, OutcomeKeyInHeader, OutcomeUnknownInstance:
		// An unknown instance is answered as a refused credential (see
		// answeredAs): neither is retried from 2.3.0.
		return http.StatusUnauthorized
	case OutcomeTooLarge:
		// 413 would be retried with the same body.
		return http.StatusUnprocessableEntity
	case OutcomeIncomplete:
		return http.StatusRequestTimeout
	}
	return http.StatusBadRequest
}

// headerHolds reports whether any header value of h is key, comparing in
// constant time.
func headerHolds(h http.Header, key string) bool {
	found := false
	for _, vs := range h {
		for _, v := range vs {
			if subtle.ConstantTimeCompare([]byte(v), []byte(key)) == 1 {
				found = true
			}
		}
	}
	return found
}

// webhookPath is a secret in the webhook's URL path: the one credential
// every version of Evolution API, and its global webhook, can send.
type webhookPath struct {
	WebhookPathSecret     promcfg.Secret `yaml:"webhook_path_secret,omitempty"`
	WebhookPathSecretFile string         `yaml:"webhook_path_secret_file,omitempty"`
	secret                string
}

func (w *webhookPath) field() config.OptionalSecret {
	return config.OptionalSecret{Field: "webhook_path_secret", Value: &w.WebhookPathSecret, File: &w.WebhookPathSecretFile, Resolved: &w.secret,
		Check: checkPathSecret}
}

// minPathSecretLen keeps a guessable path out: the secret is all that
// authenticates a notification of the global webhook.
const minPathSecretLen = 16

// checkPathSecret accepts a secret that is one segment of a URL path as
// Evolution API sends it (no escaping needed) and long enough.
func checkPathSecret(s string) error {
	if len(s) < minPathSecretLen {
		return fmt.Errorf("must be at least %d characters", minPathSecretLen)
	}
	if !validPathSecret(s) {
		return errors.New("may hold only letters, digits and - . _ ~ (it is a segment of the webhook's URL)")
	}
	return nil
}

// matches compares in constant time.
func (w *webhookPath) matches(segment string) bool {
	return w.secret != "" && subtle.ConstantTimeCompare([]byte(segment), []byte(w.secret)) == 1
}

// validPathSecret says whether a secret can be one segment of a URL path
// as Evolution API sends it, unescaped.
func validPathSecret(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r)) {
			return false
		}
	}
	return true
}

// decodeEvolutionNotification reads a connection.update event; other
// events are ignored. refused, sent when the QR code was not scanned in
// time, is a form of close. statusReason is Baileys' code of the last
// disconnection (200 when the connection did not close).
//
// Evolution API writes date_time in its server's local time marked as
// UTC, so the time only orders its events among themselves; against the
// exporter's calls, an event counts from its arrival.
func decodeEvolutionNotification(body []byte, received time.Time) (Notification, error) {
	var v struct {
		Event    *string `json:"event"`
		Instance string  `json:"instance"`
		Data     struct {
			Instance     string      `json:"instance"`
			State        string      `json:"state"`
			StatusReason json.Number `json:"statusReason"`
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
	if code, err := strconv.Atoi(v.Data.StatusReason.String()); err == nil {
		n.Disconnect = baileysDisconnectReason(code)
	}
	if n.State == "refused" {
		// The QR code was not scanned in time: connectionState answers
		// close from then on.
		n.State, n.Disconnect = "close", disconnectQRExpired
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

// jwtLeeway allows for clocks a little apart: a token is taken until a
// minute after its exp, and from a minute before its nbf.
const jwtLeeway = time.Minute

// authorizes checks an HS256 JWT in the Authorization header: its
// signature with the key, that it has an exp and has not expired, and,
// when it has an nbf, that it is valid already; iat is not checked.
// Evolution API signs {"iat","exp","app","action"} with exp ten minutes
// after iat (jsonwebtoken's sign, once per event: its retries carry the
// same token). The token does not sign the body: a token seen by someone
// else is good for any body until it expires.
func (w *webhookJWT) authorizes(h http.Header, now time.Time) bool {
	if w.key == "" {
		return false
	}
	token, ok := bearer(h)
	if !ok {
		return false
	}
	_, err := jwtv5.NewParser(
		// Another algorithm is refused before the key is used: none, an
		// asymmetric one whose public key would be this secret, HS384.
		jwtv5.WithValidMethods([]string{jwtv5.SigningMethodHS256.Alg()}),
		// A token that never expires could be replayed forever.
		jwtv5.WithExpirationRequired(),
		jwtv5.WithLeeway(jwtLeeway),
		jwtv5.WithTimeFunc(func() time.Time { return now }),
	).ParseWithClaims(token, &jwtClaims{}, func(*jwtv5.Token) (any, error) {
		return []byte(w.key), nil
	})
	return err == nil
}

// jwtClaims are the claims authorizes reads: exp and nbf, as NumericDate
// (a JSON number, or a string holding one). Whatever else the token
// holds (iat, app, action) is not decoded, so it cannot refuse it.
type jwtClaims struct {
	Exp *jwtv5.NumericDate `json:"exp"`
	Nbf *jwtv5.NumericDate `json:"nbf"`
}

func (c *jwtClaims) GetExpirationTime() (*jwtv5.NumericDate, error) { return c.Exp, nil }
func (c *jwtClaims) GetNotBefore() (*jwtv5.NumericDate, error)      { return c.Nbf, nil }
func (c *jwtClaims) GetIssuedAt() (*jwtv5.NumericDate, error)       { return nil, nil }
func (c *jwtClaims) GetIssuer() (string, error)                     { return "", nil }
func (c *jwtClaims) GetSubject() (string, error)                    { return "", nil }
func (c *jwtClaims) GetAudience() (jwtv5.ClaimStrings, error)       { return nil, nil }
