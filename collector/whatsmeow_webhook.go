package collector

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// The family's notifications, posted to /webhook/whatsmeow[/<secret>]:
//   - Evolution Go (pkg/whatsmeow/service/whatsmeow.go, myEventHandler and
//     the QR loop; pkg/events/webhook/webhook_producer.go) posts
//     {"event":"Connected"|"LoggedOut"|"TemporaryBan"|"QRTimeout"|..,
//     "data":{..},"instanceToken":"..","instanceId":"..","instanceName":".."}
//     to the instance's webhook URL and to the server's WEBHOOK_URL, as
//     they are (http.NewRequest with the URL), with no authentication
//     header, and tries 5 times 30 s apart on any answer but a 2xx. The
//     connection events need the CONNECTION subscription (or ALL). The body
//     carries the instance's token: it is never decoded. The one
//     credential it can carry is a secret in the URL's path
//     (webhook_path_secret).
//   - wuzapi (helpers.go callHookWithHmac; wmiau.go) posts
//     {"type":"Connected"|"LoggedOut"|"TemporaryBan"|..,"event":{..},
//     "instanceName":"..","userID":".."} with WEBHOOK_FORMAT=json, or the
//     form jsonData=<that object>&instanceName=..&userID=.. by default,
//     signed when the user has an HMAC key: x-hmac-signature is the hex
//     HMAC-SHA256 of the raw body (the JSON, or the encoded form) with the
//     key (webhook_hmac_key). It retries a non-2xx answer only when
//     WEBHOOK_RETRY_ENABLED, with exponential backoff.
//   - GOWA posts no connection events (its webhooks carry messages,
//     receipts, groups, calls): its instances are polled only.
//
// Evolution Go and wuzapi send no time: a notification counts from its
// arrival.

var whatsmeowWebhook = &Webhook{
	Decode: decodeWhatsmeowNotification,
	Authorize: func(spec config.Spec, cred Credentials, _ time.Time) Authorization {
		s := spec.(*WhatsmeowSpec)
		switch {
		case s.webhookPath.matches(cred.PathSecret), s.globalPath.matches(cred.PathSecret), s.webhookHMAC.authorizesWuzapi(cred.Header, cred.Body):
			return Authorized
		case s.webhookPath.secret == "" && s.globalPath.secret == "" && s.webhookHMAC.key == "":
			return NoCredentials
		}
		return Refused
	},
	Status: whatsmeowStatus,
}

// whatsmeowStatus answers by the senders' retry rules: Evolution Go
// retries any non-2xx answer 4 more times, wuzapi when its retries are on.
// Neither tells one failure from another, so the answer is for the people
// reading their logs; only an incomplete body is worth sending again.
func whatsmeowStatus(outcome string) int {
	switch outcome {
	case OutcomeAccepted, OutcomeStale, OutcomeIgnored:
		return http.StatusOK
	case OutcomeUnauthorized, OutcomeKeyInHeader, OutcomeUnknownInstance:
		return http.StatusUnauthorized
	case OutcomeTooLarge:
		return http.StatusRequestEntityTooLarge
	case OutcomeIncomplete:
		return http.StatusRequestTimeout
	}
	return http.StatusBadRequest
}

// whatsmeowEvents are the events that tell a state, and the reason of the
// disconnection they tell. QRTimeout: Evolution Go gave up showing QR
// codes and dropped the client; the device is not linked.
var whatsmeowEvents = map[string]struct{ state, reason string }{
	"Connected":    {whatsmeowLoggedIn, ""},
	"LoggedOut":    {whatsmeowLoggedOut, whatsmeowReasonLoggedOut},
	"TemporaryBan": {whatsmeowTemporaryBan, whatsmeowReasonBan},
	"QRTimeout":    {whatsmeowLoggedOut, whatsmeowReasonQRExpired},
}

// decodeWhatsmeowNotification reads an Evolution Go or wuzapi event; other
// events are ignored. Only the event's name and the instance's name are
// decoded: the rest may hold the instance's token or people's messages.
func decodeWhatsmeowNotification(body []byte, received time.Time) (Notification, error) {
	raw := body
	formName := ""
	if t := strings.TrimLeft(string(body), " \t\r\n"); !strings.HasPrefix(t, "{") {
		// wuzapi's default form: the event is the jsonData field.
		form, err := url.ParseQuery(string(body))
		if err != nil || !form.Has("jsonData") {
			return Notification{}, errors.New("body is neither a JSON object nor wuzapi's form with jsonData")
		}
		raw, formName = []byte(form.Get("jsonData")), form.Get("instanceName")
	}
	var v struct {
		Event        json.RawMessage `json:"event"`
		Type         *string         `json:"type"`
		InstanceName string          `json:"instanceName"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return Notification{}, errors.New("body is not a JSON object of Evolution Go's or wuzapi's event shape")
	}
	// Evolution Go names the event in event; wuzapi in type, with the
	// whatsmeow event as an object in event.
	var name string
	switch {
	case v.Type != nil:
		name = *v.Type
	case json.Unmarshal(v.Event, &name) == nil:
	default:
		return Notification{}, errors.New("no event name (event or type)")
	}
	n := Notification{ID: v.InstanceName, At: received}
	if n.ID == "" {
		n.ID = formName
	}
	ev, ok := whatsmeowEvents[name]
	if !ok {
		return n, nil
	}
	if n.ID == "" {
		return Notification{}, errors.New("state event without instanceName")
	}
	n.State, n.Disconnect = ev.state, ev.reason
	return n, nil
}

// authorizes checks x-hmac-signature, the hex HMAC-SHA256 of the body,
// in constant time. The signature covers the body only: a notification
// seen by someone else can be replayed, and then says again what it said,
// which the next status call replaces (see notify).
func (w *webhookHMAC) authorizesWuzapi(h http.Header, body []byte) bool {
	if w.key == "" {
		return false
	}
	got, err := hex.DecodeString(strings.TrimSpace(h.Get("X-Hmac-Signature")))
	if err != nil || len(got) != sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, []byte(w.key))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}
