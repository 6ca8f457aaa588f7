package collector

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// GREEN-API notifications: with the instance setting stateWebhook "yes",
// GREEN-API POSTs
// {"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":..},"timestamp":..,"stateInstance":".."}
// to the instance's webhookUrl, with its webhookUrlToken in the
// Authorization header. Every other typeWebhook (messages, statuses,
// calls) is acknowledged and ignored, so that an instance's webhook may
// point at the exporter alone.

var greenAPIWebhook = &Webhook{
	Decode: decodeGreenAPINotification,
	Authorize: func(spec config.Spec, cred Credentials, _ time.Time) Authorization {
		w := &spec.(*GreenAPISpec).webhookToken
		switch {
		case w.token == "":
			return NoCredentials
		case w.authorizes(cred.Header):
			return Authorized
		}
		return Refused
	},
	// GREEN-API keeps each instance's notifications in a queue and sends
	// the next one only after an HTTP 200 for the current one: any other
	// answer makes it resend the same notification every minute for 24
	// hours, holding back every later one of the instance. So every
	// notification it sent whole is answered 200, whatever its outcome
	// (in the body and the metrics); none that is not authenticated
	// changes a state. One that did not arrive whole is asked again.
	Status: func(outcome string) int {
		if outcome == OutcomeIncomplete {
			return http.StatusRequestTimeout
		}
		return http.StatusOK
	},
}

func decodeGreenAPINotification(body []byte, _ time.Time) (Notification, error) {
	var v struct {
		TypeWebhook  *string `json:"typeWebhook"`
		InstanceData *struct {
			IDInstance json.Number `json:"idInstance"`
		} `json:"instanceData"`
		Timestamp     json.Number `json:"timestamp"`
		StateInstance string      `json:"stateInstance"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return Notification{}, errors.New("body is not a JSON object of GREEN-API's notification shape")
	}
	if v.TypeWebhook == nil {
		return Notification{}, errors.New("no typeWebhook")
	}
	var n Notification
	if v.InstanceData != nil {
		if id, err := strconv.ParseUint(v.InstanceData.IDInstance.String(), 10, 64); err == nil {
			n.ID = strconv.FormatUint(id, 10)
		}
	}
	if *v.TypeWebhook != "stateInstanceChanged" {
		return n, nil
	}
	ts, err := strconv.ParseInt(v.Timestamp.String(), 10, 64)
	switch {
	case n.ID == "":
		return Notification{}, errors.New("stateInstanceChanged without a numeric instanceData.idInstance")
	case err != nil || ts <= 0:
		return Notification{}, errors.New("stateInstanceChanged without a Unix timestamp")
	case v.StateInstance == "":
		return Notification{}, errors.New("stateInstanceChanged without stateInstance")
	}
	n.State, n.At, n.Absolute = v.StateInstance, time.Unix(ts, 0), true
	return n, nil
}
