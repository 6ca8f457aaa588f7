package collector

import (
	"context"
	"encoding/json"
	"net/http"
)

// Wachat's actions. send/text: POST {api_url}/send/text (api_url ends in
// /api/v1, as for the state request) with the bearer key,
// {"instanceName", "number", "type": "text", "message"}; without a
// "delay" Wachat waits a random 3 to 5 seconds, "typing", before sending
// (Wachat's API documentation, "Send Text Message",
// https://docs.wachat.net/api-reference/send-text). Wachat documents no
// restart or reboot (state, logout, delete and QR code only), so its
// clients are Senders, not Rebooters.

// SendText implements Sender.
func (c *wachatClient) SendText(ctx context.Context, to, text string) error {
	body, err := json.Marshal(struct {
		InstanceName string `json:"instanceName"`
		Number       string `json:"number"`
		Type         string `json:"type"`
		Message      string `json:"message"`
	}{c.name, to, "text", text})
	if err != nil {
		return newError(ReasonClientError, "encoding the message: %s", err)
	}
	return c.api.Act(ctx, http.MethodPost, "sendText", c.sendURL, c.header, body, func(r Response) error {
		return decodeBaileysSend(r, c.name)
	})
}
