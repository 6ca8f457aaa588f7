// Package amwebhook reads what Alertmanager's webhook_configs send: the
// message of version 4 (Alertmanager's notify/webhook Message, with
// template.Data inline), authenticated by the bearer token of the
// receiver's http_config.
//
// The types are written out here rather than imported: Alertmanager's
// template package, which holds them, brings its embedded web UI into the
// binary.
package amwebhook

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Version is the only message version Alertmanager sends: its
// notify/webhook/webhook.go sets Version: "4" in every Message (checked in
// v0.28.1).
const Version = "4"

// MaxBytes bounds a message. Alertmanager sends every alert of a group in
// one message: 4 000 alerts of about 1 KB each fit, and the shipped
// receivers group by instance and set max_alerts (Alertmanager then sends
// the first alerts and says how many it left out).
const MaxBytes = 4 << 20

// Message is one notification: a group of alerts.
type Message struct {
	Version         string `json:"version"`
	GroupKey        string `json:"groupKey"`
	TruncatedAlerts uint64 `json:"truncatedAlerts"`

	Receiver          string            `json:"receiver"`
	Status            string            `json:"status"` // firing or resolved
	Alerts            []Alert           `json:"alerts"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
}

// Alert is one alert of a Message.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Alert statuses.
const (
	Firing   = "firing"
	Resolved = "resolved"
)

// Errors of Read, by what the request got wrong; each answers with its
// own HTTP status (Status).
var (
	ErrUnauthorized = errors.New("missing or wrong bearer token")
	ErrMethod       = errors.New("method not allowed: send POST")
	ErrTooLarge     = fmt.Errorf("message larger than %d bytes", MaxBytes)
	ErrMalformed    = errors.New("malformed message")
)

// Status is the HTTP status that answers err. Alertmanager retries a 5xx
// and not a 4xx (notify/util.go's Retrier.Check, which its webhook
// notifier uses: 2xx succeeds, 5xx is retried, any other status fails for
// good; checked in v0.28.1): a request that cannot succeed gets a 4xx.
func Status(err error) int {
	switch {
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrMethod):
		return http.StatusMethodNotAllowed
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrMalformed):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// Authorized says whether r carries the bearer token. An empty token
// authorizes nobody: the caller decides what runs without one (a web
// configuration's basic auth in front).
func Authorized(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// Read checks r's method and bearer token (when token is set) and decodes
// its message. The errors never quote the request: it may carry a token,
// or people's words in an annotation.
func Read(r *http.Request, token string) (*Message, error) {
	if r.Method != http.MethodPost {
		return nil, ErrMethod
	}
	if token != "" && !Authorized(r, token) {
		return nil, ErrUnauthorized
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the body: %v", ErrMalformed, err)
	}
	if len(body) > MaxBytes {
		return nil, ErrTooLarge
	}
	return Decode(body)
}

// Decode decodes and checks a message.
func Decode(body []byte) (*Message, error) {
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("%w: not JSON (at byte %d)", ErrMalformed, se.Offset)
		case errors.As(err, &te):
			return nil, fmt.Errorf("%w: field %s: not a %s", ErrMalformed, te.Field, te.Type)
		}
		return nil, fmt.Errorf("%w: not JSON", ErrMalformed)
	}
	if m.Version != Version {
		return nil, fmt.Errorf("%w: version is not %q (Alertmanager's webhook_configs)", ErrMalformed, Version)
	}
	for k, a := range m.Alerts {
		if a.Status != Firing && a.Status != Resolved {
			return nil, fmt.Errorf("%w: alerts[%d].status is neither firing nor resolved", ErrMalformed, k)
		}
	}
	return &m, nil
}

// AlertCounter counts the alerts of a request by outcome
// (whatsapp_alertmanager_alerts_total): the server that routes a request
// to a receiver puts one for that receiver in the request's context, so
// that the receivers count under one metric without registering it
// twice.
type AlertCounter func(outcome string, n int)

type alertCounterKey struct{}

// WithAlertCounter returns ctx carrying f.
func WithAlertCounter(ctx context.Context, f AlertCounter) context.Context {
	return context.WithValue(ctx, alertCounterKey{}, f)
}

// CountAlerts counts n alerts of outcome with the counter of ctx, if any.
// Outcomes are a receiver's fixed words, never a value of the message.
func CountAlerts(ctx context.Context, outcome string, n int) {
	if f, ok := ctx.Value(alertCounterKey{}).(AlertCounter); ok && n > 0 {
		f(outcome, n)
	}
}
