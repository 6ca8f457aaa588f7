package collector

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"unicode/utf8"
)

// GREEN-API's actions (API-FACTS.md, checked against GREEN-API's
// documentation pages "Reboot",
// https://green-api.com/en/docs/api/account/Reboot/, and "SendMessage",
// https://green-api.com/en/docs/api/sending/SendMessage/):
//
//   - GET {apiUrl}/waInstance{id}/reboot/{token} answers {"isReboot": true};
//     false means the reboot was not done (to be asked again later).
//   - POST {apiUrl}/waInstance{id}/sendMessage/{token}
//     {"chatId": "<digits>@c.us", "message": "…"}, at most 20 000
//     characters, answers {"idMessage": "…"}: the message is queued, not
//     delivered. HTTP 466 is the developer plan's quota of correspondents
//     (3 a month) used up.
//
// Each is limited to one request a second per instance, on its own
// (actionLimits in actions.go).

// greenAPIMaxMessage is sendMessage's limit on the message's length, in
// characters.
const greenAPIMaxMessage = 20000

func (c *greenAPIClient) actionURL(method string) string {
	return c.base + "/" + method + "/" + url.PathEscape(c.token)
}

// Reboot implements Rebooter.
func (c *greenAPIClient) Reboot(ctx context.Context) error {
	return c.api.Act(ctx, http.MethodGet, "reboot", c.actionURL("reboot"), nil, nil, decodeGreenAPIReboot)
}

func decodeGreenAPIReboot(r Response) error {
	if r.Status == http.StatusBadRequest {
		if state, ok := greenAPITextState(r.Body); ok {
			return newError(ReasonClientError, "HTTP 400: the instance cannot be rebooted while %s", state)
		}
	}
	if e := greenAPIStatusError(r, snippet(r.Body)); e != nil {
		return e
	}
	if greenAPICode401(r.Body) {
		return newError(ReasonUnauthorized, "HTTP %d with code 401 in the body", r.Status)
	}
	var v struct {
		IsReboot *bool `json:"isReboot"`
	}
	if err := json.Unmarshal(r.Body, &v); err != nil || v.IsReboot == nil {
		return newError(ReasonBadResponse, "HTTP %d: no isReboot in %s", r.Status, snippet(r.Body))
	}
	if !*v.IsReboot {
		return newError(ReasonNotDone, "HTTP %d: isReboot is false: the reboot was not done", r.Status)
	}
	return nil
}

// SendText implements Sender.
func (c *greenAPIClient) SendText(ctx context.Context, to, text string) error {
	if n := utf8.RuneCountInString(text); n > greenAPIMaxMessage {
		return newError(ReasonClientError, "the message has %d characters; GREEN-API takes at most %d", n, greenAPIMaxMessage)
	}
	body, err := json.Marshal(struct {
		ChatID  string `json:"chatId"`
		Message string `json:"message"`
	}{to + "@c.us", text})
	if err != nil {
		return newError(ReasonClientError, "encoding the message: %s", err)
	}
	return c.api.Act(ctx, http.MethodPost, "sendMessage", c.actionURL("sendMessage"), nil, body, decodeGreenAPISend)
}

// decodeGreenAPISend reads sendMessage's answer. No error quotes it: it
// may echo the recipient or the message.
func decodeGreenAPISend(r Response) error {
	switch {
	case r.Status == greenAPIQuotaExceeded:
		return newError(ReasonQuotaExceeded, "HTTP 466: the plan's quota of correspondents (or of messages) is used up")
	case r.Status == http.StatusBadRequest:
		if state, ok := greenAPITextState(r.Body); ok {
			return newError(ReasonClientError, "HTTP 400: the instance cannot send while %s", state)
		}
	}
	if e := greenAPIStatusError(r, describeAnswer(r.Body)); e != nil {
		return e
	}
	if greenAPICode401(r.Body) {
		return newError(ReasonUnauthorized, "HTTP %d with code 401 in the body", r.Status)
	}
	var v struct {
		IDMessage *string `json:"idMessage"`
	}
	if err := json.Unmarshal(r.Body, &v); err != nil || v.IDMessage == nil || *v.IDMessage == "" {
		return newError(ReasonBadResponse, "HTTP %d: no idMessage in %s", r.Status, describeAnswer(r.Body))
	}
	return nil
}
