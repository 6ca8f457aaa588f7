package collector

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// Evolution API's actions.
//
// sendText: POST {api_url}/message/sendText/{instance} with the apikey
// header, answered 201 with the message sent. Its body differs between
// versions: 1.8.x requires {"number", "textMessage": {"text"}} (1.8.2,
// src/validate/validate.schema.ts, textMessageSchema) and 2.x requires
// {"number", "text"} (2.3.6, src/validate/message.schema.ts,
// textMessageSchema; the service reads data.text). Neither schema sets
// additionalProperties, and each version reads only its own field, so one
// body with both is taken by both: the exporter need not know the
// server's version (github.com/EvolutionAPI/evolution-api, tags 1.8.2 and
// 2.3.6). A number not on WhatsApp is a 400.
//
// No restart: Evolution API's restart acts only on an open instance (1.8.2
// answers 200 without doing anything otherwise; 2.x answers close with
// {"error":true}), and neither close (the session is gone: a person must
// scan a QR code) nor connecting (Evolution API reconnects by itself, and
// restarts push an instance waiting for a QR code toward its QR limit and
// a logout) is mended by one (restartInstance in instance.controller.ts,
// tags 1.8.2 and 2.3.6). So Evolution API clients are Senders, not
// Rebooters.

// SendText implements Sender.
func (c *evolutionClient) SendText(ctx context.Context, to, text string) error {
	type textMessage struct {
		Text string `json:"text"`
	}
	body, err := json.Marshal(struct {
		Number      string      `json:"number"`
		Text        string      `json:"text"`
		TextMessage textMessage `json:"textMessage"`
	}{to, text, textMessage{text}})
	if err != nil {
		return newError(ReasonClientError, "encoding the message: %s", err)
	}
	u := c.base + "/message/sendText/" + url.PathEscape(c.name)
	return c.api.Act(ctx, http.MethodPost, "sendText", u, c.header, body, func(r Response) error {
		return decodeBaileysSend(r, c.name)
	})
}

// decodeBaileysSend reads the answer to a message sent through Evolution
// API or Wachat: any 2xx (201 for Evolution API) but Wachat's
// {"success": false}. No error quotes the answer: Evolution API's 400
// for a number not on WhatsApp echoes the number, and its 201 the
// message.
func decodeBaileysSend(r Response, instanceName string) error {
	if r.Status < 200 || r.Status > 299 {
		if r.Status == http.StatusNotFound {
			if wrongPath(r.Body) {
				return newError(ReasonClientError, "HTTP 404: the provider does not serve this path (an older version?)")
			}
			if _, ok := baileysMessage(r.Body); ok {
				return newError(ReasonClientError, "HTTP 404: no instance named %q", instanceName)
			}
		}
		return statusError(r, describeAnswer(r.Body))
	}
	var v struct {
		Success *bool `json:"success"`
	}
	if json.Unmarshal(r.Body, &v) == nil && v.Success != nil && !*v.Success {
		return newError(ReasonBadResponse, "HTTP %d: success is false: %s", r.Status, describeAnswer(r.Body))
	}
	return nil
}
