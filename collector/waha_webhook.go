package collector

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// WAHA notifications: a webhook of the session (config.webhooks[] with
// events ["session.status"]) or the server's global one (WHATSAPP_HOOK_URL,
// WHATSAPP_HOOK_EVENTS=session.status) POSTs to /webhook/waha
//
//	{"id":"evt_..","timestamp":1741249702485,"event":"session.status","session":"default",
//	 "me":{..},"payload":{"status":"WORKING","statuses":[{"status":"STARTING","timestamp":..},..]},..}
//
// With an HMAC key (hmac.key, or WHATSAPP_HOOK_HMAC_KEY for the global
// webhook) it adds X-Webhook-Hmac: the hex HMAC-SHA512 of the body as
// sent (JSON.stringify of the event), keyed with the key as UTF-8, and
// X-Webhook-Hmac-Algorithm: sha512 (WebhookSender, calculateHmac; the
// waha-docs events page gives a worked example, which the tests check).
// The body is signed whole, its timestamp too: a notification cannot be
// altered or re-dated without the key. The HMAC is the only credential
// WAHA sends: the exporter takes no notification of an instance without
// webhook_hmac_key.

var wahaWebhook = &Webhook{
	Decode: decodeWahaNotification,
	Authorize: func(spec config.Spec, cred Credentials, _ time.Time) Authorization {
		s := spec.(*WahaSpec)
		if s.webhookHMAC.key == "" {
			return NoCredentials
		}
		if s.webhookHMAC.authorizesWAHA(cred.Header, cred.Body) {
			return Authorized
		}
		return Refused
	},
	Status: wahaStatus,
}

// wahaStatus answers by WAHA's retry rules: its sender retries every
// failed delivery, whatever the status (axios-retry with a retry
// condition that is always true; 15 attempts 2 s apart by default, or the
// webhook's retries.policy, delaySeconds and attempts). Nothing is
// answered an error that a retry could not change and that WAHA's log
// would not help an operator with: a notification taken, stale or of
// another event gets 200, and so does one over the size limit, which is
// another event (a session.status is a few hundred bytes) that a retry
// would bring back whole. A refused signature (a wrong key) and a body
// that is not WAHA's are answered as such, so that WAHA logs the failure;
// their retries are bounded by its attempts. A body cut short may come
// whole at the next attempt.
func wahaStatus(outcome string) int {
	switch outcome {
	case OutcomeAccepted, OutcomeStale, OutcomeIgnored, OutcomeTooLarge:
		return http.StatusOK
	case OutcomeUnauthorized, OutcomeUnknownInstance:
		return http.StatusUnauthorized
	case OutcomeIncomplete:
		return http.StatusRequestTimeout
	}
	return http.StatusBadRequest
}

// wahaHMACAlgorithm is the only algorithm WAHA signs with.
const wahaHMACAlgorithm = "sha512"

// authorizes checks X-Webhook-Hmac against the body, in constant time. An
// X-Webhook-Hmac-Algorithm other than sha512 is refused: WAHA sends no
// other, and a check must not follow what the request says of itself.
func (w *webhookHMAC) authorizesWAHA(h http.Header, body []byte) bool {
	if w.key == "" {
		return false
	}
	if alg := h.Values("X-Webhook-Hmac-Algorithm"); len(alg) > 1 || len(alg) == 1 && !strings.EqualFold(strings.TrimSpace(alg[0]), wahaHMACAlgorithm) {
		return false
	}
	sig := h.Values("X-Webhook-Hmac")
	if len(sig) != 1 {
		return false
	}
	got, err := hex.DecodeString(strings.TrimSpace(sig[0]))
	if err != nil || len(got) != sha512.Size {
		return false
	}
	m := hmac.New(sha512.New, []byte(w.key))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// maxWahaStatuses bounds the transitions read from payload.statuses; WAHA
// sends its last few.
const maxWahaStatuses = 16

// decodeWahaNotification reads a session.status event; other events are
// ignored, their payload left unread (it holds messages and numbers).
// Decoding happens before the signature is checked (the session names
// whose key to check it with), so nothing of the body reaches an error.
//
// The time of the notification is the event's timestamp, by WAHA's clock
// (Unix milliseconds, comparable with the exporter's, and signed with the
// body); without one, the timestamp of the last of payload.statuses (the
// last transitions, the current one last) when it is the reported status;
// else the time it arrived. The event's own time comes first: WAHA
// re-emits SCAN_QR_CODE at each new QR code, and a transition's older time
// would make that news look stale. Retries of an event carry the same
// body, so the same time: a repeat is stale.
func decodeWahaNotification(body []byte, received time.Time) (Notification, error) {
	var v struct {
		Event     *string         `json:"event"`
		Session   string          `json:"session"`
		Timestamp json.Number     `json:"timestamp"`
		Payload   json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return Notification{}, errors.New("body is not a JSON object of WAHA's event shape")
	}
	if v.Event == nil {
		return Notification{}, errors.New("no event")
	}
	n := Notification{ID: v.Session, At: received}
	if *v.Event != "session.status" {
		return n, nil
	}
	var p struct {
		Status   string `json:"status"`
		Statuses []struct {
			Status    string      `json:"status"`
			Timestamp json.Number `json:"timestamp"`
		} `json:"statuses"`
	}
	switch {
	case v.Session == "":
		return Notification{}, errors.New("session.status without session")
	case json.Unmarshal(v.Payload, &p) != nil:
		return Notification{}, errors.New("session.status whose payload is not an object")
	case strings.TrimSpace(p.Status) == "":
		return Notification{}, errors.New("session.status without payload.status")
	}
	n.State = strings.TrimSpace(p.Status)
	if ms, ok := unixMillis(v.Timestamp); ok {
		n.At, n.Absolute = ms, true
	} else if k := len(p.Statuses); k > 0 && k <= maxWahaStatuses && strings.TrimSpace(p.Statuses[k-1].Status) == n.State {
		if ms, ok := unixMillis(p.Statuses[k-1].Timestamp); ok {
			n.At, n.Absolute = ms, true
		}
	}
	return n, nil
}

// unixMillis reads a positive count of Unix milliseconds; false for none,
// a fraction or one out of range.
func unixMillis(n json.Number) (time.Time, bool) {
	ms, err := n.Int64()
	if err != nil || ms <= 0 || ms > 1<<53 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}
