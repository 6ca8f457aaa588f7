package collector

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
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

// shorten cuts s to at most max runes, reading no more of it than that:
// s may be a 64 KiB body or an ID from an unauthenticated request.
func shorten(s string, max int) string {
	n := 0
	for i := range s {
		if n == max {
			return s[:i] + "…"
		}
		n++
	}
	return s
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
	logs      logSource
	metrics   callObserver
	// known hides the secrets of everything else the exporter watches
	// (redact.go); nil for none.
	known func() *redactor
}

// addSecret makes Redact hide sec in the forms it can take in a URL or in
// a body that echoes it. Providers call it when building their client,
// so that calls do not compute the forms again.
func (a *API) addSecret(sec string) {
	addSecretForms(sec, func(form string) {
		if !slices.Contains(a.secrets, form) {
			a.secrets = append(a.secrets, form)
		}
	})
}

// Redact replaces every secret of the call in s with <secret>.
func (a *API) Redact(s string) string {
	for _, form := range a.secrets {
		s = strings.ReplaceAll(s, form, secretMark)
	}
	return s
}

// redactError hides in an error text the secrets of the call and every
// other the exporter knows, and cuts it to maxErrorRunes: an upstream
// error can quote another instance's token (a failing partner listing
// quoting its instances'). It cuts after redacting, since a cut secret no
// longer matches.
func (a *API) redactError(msg string) string {
	msg = a.Redact(msg)
	if a.known != nil {
		msg = a.known().redactHead(msg, maxErrorRunes)
	}
	return shorten(msg, maxErrorRunes)
}

// Get calls rawURL and passes the response to decode, which returns the
// reported state or an *Error. method is the method label of the call.
func (a *API) Get(ctx context.Context, method, rawURL string, header http.Header, decode func(Response) (string, error)) (string, error) {
	start := time.Now()
	resp, err := a.do(ctx, http.MethodGet, rawURL, header, nil, maxBodyBytes)
	var state string
	if err == nil {
		state, err = decode(resp)
	}
	// The body was redacted before decoding, but decoding can turn an
	// escaped echo of a secret (\u0074\u006f...) back into the secret.
	state = a.Redact(state)
	if e := a.finish(ctx, method, rawURL, start, err, "state", state); e != nil {
		return "", e
	}
	return state, nil
}

// maxListBytes bounds a listing's answer: 10 000 instances take a few
// megabytes. It is read as a stream (listing.go), so the bound is on the
// time spent reading, not on memory.
const maxListBytes = 64 << 20

// List calls rawURL for an account's listing and passes the answer to
// decode: a 2xx answer as a stream of at most maxListBytes, rows checked
// against lim, with r.Body nil; any other answer in r.Body, read up to
// maxBodyBytes and redacted, with s nil. A listing's answer holds the
// instances' own tokens, so decode never quotes a successful answer in an
// error.
func (a *API) List(ctx context.Context, method, rawURL string, header http.Header, lim listLimits, decode func(r Response, s *jsonStream) (Listing, error)) (Listing, error) {
	start := time.Now()
	l, err := a.list(ctx, rawURL, header, lim, decode)
	if e := a.finish(ctx, method, rawURL, start, err, "instances", len(l.Instances)); e != nil {
		return Listing{}, e
	}
	return l, nil
}

func (a *API) list(ctx context.Context, rawURL string, header http.Header, lim listLimits, decode func(Response, *jsonStream) (Listing, error)) (Listing, error) {
	resp, err := a.send(ctx, http.MethodGet, rawURL, header, nil)
	if err != nil {
		return Listing{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// An error answer is small: read no more of it than of a state.
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
		switch {
		case err != nil:
			return Listing{}, transportError(ctx, err)
		case len(body) > maxBodyBytes:
			return Listing{}, newError(ReasonBadResponse, "HTTP %d: body larger than %d bytes", resp.StatusCode, maxBodyBytes)
		}
		return decode(Response{Status: resp.StatusCode, Header: resp.Header, Body: []byte(a.Redact(string(body)))}, nil)
	}
	s := newJSONStream(&limitedBody{r: resp.Body, left: maxListBytes}, lim, a.Redact)
	l, err := decode(Response{Status: resp.StatusCode, Header: resp.Header}, s)
	switch {
	case errors.Is(s.err, errListTooLarge):
		return Listing{}, newError(ReasonBadResponse, "HTTP %d: %s", resp.StatusCode, errListTooLarge)
	case s.err != nil:
		return Listing{}, transportError(ctx, s.err)
	}
	return l, err
}

// limitedBody reads at most left bytes, and fails with errListTooLarge
// when the body holds more.
type limitedBody struct {
	r    io.Reader
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.r.Read(one[:])
		if n > 0 {
			return 0, errListTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// finish classifies a call's error, records the call and logs it at debug
// level, with result (key and value pairs) when it worked; it returns the
// *Error, or nil when the call worked.
func (a *API) finish(ctx context.Context, method, rawURL string, start time.Time, err error, result ...any) *Error {
	elapsed := time.Since(start)
	var e *Error
	if err != nil && !errors.As(err, &e) {
		e = newError(ReasonBadResponse, "%s", err)
	}
	a.metrics.observe(method, elapsed, e)
	// Redacting the URL costs; do it only for a debug line.
	debug := a.logs.enabled(ctx, slog.LevelDebug)
	if e != nil {
		e.msg = a.redactError(e.msg)
		if debug {
			a.logs.log().Debug("Call failed", "method", method, "url", a.Redact(rawURL), "reason", e.Reason, "err", e.msg, "duration_seconds", elapsed.Seconds())
		}
		return e
	}
	if debug {
		args := append([]any{"method", method, "url", a.Redact(rawURL)}, result...)
		a.logs.log().Debug("Call succeeded", append(args, "duration_seconds", elapsed.Seconds())...)
	}
	return nil
}

// GetCount calls rawURL for a count and passes the response to decode,
// which returns it, errQueueWithheld (queue.go) or an *Error. A withheld
// count is recorded as a call that worked: the provider answered, only
// without a count, as it does for an instance that cannot tell one.
func (a *API) GetCount(ctx context.Context, method, rawURL string, header http.Header, decode func(Response) (int, error)) (int, error) {
	start := time.Now()
	resp, err := a.do(ctx, http.MethodGet, rawURL, header, nil, maxBodyBytes)
	var n int
	if err == nil {
		n, err = decode(resp)
	}
	if errors.Is(err, errQueueWithheld) {
		a.finish(ctx, method, rawURL, start, nil, "count", "withheld: "+err.Error())
		return 0, err
	}
	if e := a.finish(ctx, method, rawURL, start, err, "count", n); e != nil {
		return 0, e
	}
	return n, nil
}

// send makes a request of verb with body (JSON; nil for none).
func (a *API) send(ctx context.Context, verb, rawURL string, header http.Header, body []byte) (*http.Response, error) {
	var rd io.Reader // nil, not a nil *bytes.Reader, when there is no body
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, verb, rawURL, rd)
	if err != nil {
		return nil, newError(ReasonClientError, "building request: %s", unwrapURLError(err))
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.userAgent != "" {
		req.Header.Set("User-Agent", a.userAgent)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	return resp, nil
}

// do makes the request with reqBody (JSON; nil for none) and reads at
// most limit bytes of the answer, redacted.
func (a *API) do(ctx context.Context, verb, rawURL string, header http.Header, reqBody []byte, limit int64) (Response, error) {
	resp, err := a.send(ctx, verb, rawURL, header, reqBody)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return Response{}, transportError(ctx, err)
	}
	if int64(len(body)) > limit {
		return Response{}, newError(ReasonBadResponse, "HTTP %d: body larger than %d bytes", resp.StatusCode, limit)
	}
	// Redact before decoding too: what a decoder returns as a state goes
	// to logs without passing through an *Error.
	if len(a.secrets) > 0 {
		body = []byte(a.Redact(string(body)))
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}
