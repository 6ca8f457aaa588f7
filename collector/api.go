package collector

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxBodyBytes bounds what is read of a response: state bodies are tiny, so
// anything larger is a bad response, not a reason to use memory.
const maxBodyBytes = 64 << 10

// snippet quotes a body for an error text, on one line. It does not cut:
// API.Get cuts error texts only after redacting them, since a cut secret
// no longer matches.
func snippet(body []byte) string {
	return strconv.Quote(strings.Join(strings.Fields(string(body)), " "))
}

// maxErrorRunes bounds an error text, which may quote a whole body.
const maxErrorRunes = 300

// shorten cuts s to at most max runes.
func shorten(s string, max int) string {
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max]) + "…"
}

// Response is what API.Get hands to a provider's decoder.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// API performs one instance's HTTP calls: it bounds body size, classifies
// transport failures, records the call metrics, and keeps the instance's
// secrets out of every error and log line.
type API struct {
	client    *http.Client
	userAgent string
	secrets   []string // every form of every secret, see addSecret
	logger    *slog.Logger
	metrics   callObserver
}

// addSecret makes Redact hide sec in the forms it can take in a URL or in
// a JSON error body that echoes it. Providers call it when building their
// client, so that calls do not compute the forms again.
func (a *API) addSecret(sec string) {
	quoted, _ := json.Marshal(sec)
	for _, form := range []string{sec, url.PathEscape(sec), url.QueryEscape(sec), string(quoted[1 : len(quoted)-1])} {
		if form != "" && !slices.Contains(a.secrets, form) {
			a.secrets = append(a.secrets, form)
		}
	}
}

// Redact replaces every known secret in s with <secret>.
func (a *API) Redact(s string) string {
	for _, form := range a.secrets {
		s = strings.ReplaceAll(s, form, "<secret>")
	}
	return s
}

// Get calls rawURL and passes the response to decode, which returns the
// reported state or an *Error. method is the method label of the call.
func (a *API) Get(ctx context.Context, method, rawURL string, header http.Header, decode func(Response) (string, error)) (string, error) {
	start := time.Now()
	state, err := a.get(ctx, rawURL, header, decode)
	elapsed := time.Since(start)
	// The body was redacted before decoding, but decoding can turn an
	// escaped echo of a secret (\u0074\u006f...) back into the secret.
	state = a.Redact(state)

	var e *Error
	if err != nil && !errors.As(err, &e) {
		e = newError(ReasonBadResponse, "%s", err)
	}
	a.metrics.observe(method, elapsed, e)
	// Redacting the URL costs; do it only for a debug line.
	debug := a.logger.Enabled(ctx, slog.LevelDebug)
	if e != nil {
		e.msg = shorten(a.Redact(e.msg), maxErrorRunes)
		if debug {
			a.logger.Debug("Call failed", "method", method, "url", a.Redact(rawURL), "reason", e.Reason, "err", e.msg, "duration_seconds", elapsed.Seconds())
		}
		return "", e
	}
	if debug {
		a.logger.Debug("Call succeeded", "method", method, "url", a.Redact(rawURL), "state", state, "duration_seconds", elapsed.Seconds())
	}
	return state, nil
}

func (a *API) get(ctx context.Context, rawURL string, header http.Header, decode func(Response) (string, error)) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", newError(ReasonClientError, "building request: %s", unwrapURLError(err))
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if a.userAgent != "" {
		req.Header.Set("User-Agent", a.userAgent)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return "", transportError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return "", transportError(ctx, err)
	}
	if len(body) > maxBodyBytes {
		return "", newError(ReasonBadResponse, "HTTP %d: body larger than %d bytes", resp.StatusCode, maxBodyBytes)
	}
	// Redact before decoding too: what a decoder returns as a state goes
	// to logs without passing through an *Error.
	if len(a.secrets) > 0 {
		body = []byte(a.Redact(string(body)))
	}
	return decode(Response{Status: resp.StatusCode, Header: resp.Header, Body: body})
}
