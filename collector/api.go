package collector

import (
	"bufio"
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
	resp, err := a.do(ctx, rawURL, header, maxBodyBytes)
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

// maxListBytes bounds a listing: 10 000 instances take a few megabytes.
// maxListed bounds the instances one listing may hold, so that a broken or
// hostile answer of tiny rows cannot make millions of targets.
const (
	maxListBytes = 64 << 20
	maxListed    = 100_000
)

// List calls rawURL for an account's listing and passes the response to
// decode. A listing's answer holds the instances' own tokens, so decode
// never quotes a successful answer in an error.
func (a *API) List(ctx context.Context, method, rawURL string, header http.Header, decode func(Response) (Listing, error)) (Listing, error) {
	start := time.Now()
	resp, err := a.do(ctx, rawURL, header, maxListBytes)
	var l Listing
	if err == nil {
		l, err = decode(resp)
	}
	if err == nil && len(l.Instances) > maxListed {
		l, err = Listing{}, newError(ReasonBadResponse, "HTTP %d: the listing holds %d instances, more than %d", resp.Status, len(l.Instances), maxListed)
	}
	if e := a.finish(ctx, method, rawURL, start, err, "instances", len(l.Instances)); e != nil {
		return Listing{}, e
	}
	return l, nil
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
	debug := a.logger.Enabled(ctx, slog.LevelDebug)
	if e != nil {
		e.msg = shorten(a.Redact(e.msg), maxErrorRunes)
		if debug {
			a.logger.Debug("Call failed", "method", method, "url", a.Redact(rawURL), "reason", e.Reason, "err", e.msg, "duration_seconds", elapsed.Seconds())
		}
		return e
	}
	if debug {
		args := append([]any{"method", method, "url", a.Redact(rawURL)}, result...)
		a.logger.Debug("Call succeeded", append(args, "duration_seconds", elapsed.Seconds())...)
	}
	return nil
}

// maxCountBytes bounds an array that Count reads: 500 queued messages of
// the longest text GREEN-API sends take about 10 MB. A variable so that
// tests reach it without sending 64 MiB.
var maxCountBytes int64 = 64 << 20

// Count calls rawURL for a JSON array and returns its length, reading
// one element at a time: a queue of long messages can take megabytes,
// and its content (messages) is never kept or quoted. decodeError turns
// an answer that is not a 2xx array (read whole, at most maxBodyBytes,
// redacted) into an *Error.
func (a *API) Count(ctx context.Context, method, rawURL string, header http.Header, decodeError func(Response) error) (int, error) {
	start := time.Now()
	n, err := a.count(ctx, rawURL, header, decodeError)
	if e := a.finish(ctx, method, rawURL, start, err, "elements", n); e != nil {
		return 0, e
	}
	return n, nil
}

func (a *API) count(ctx context.Context, rawURL string, header http.Header, decodeError func(Response) error) (int, error) {
	resp, err := a.send(ctx, rawURL, header)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	br := bufio.NewReader(io.LimitReader(resp.Body, maxCountBytes+1))
	first, _ := peekNonSpace(br)
	if resp.StatusCode < 200 || resp.StatusCode > 299 || first != '[' {
		r, err := a.read(ctx, resp, br, maxBodyBytes)
		if err != nil {
			return 0, err
		}
		return 0, decodeError(r)
	}
	dec := json.NewDecoder(br)
	_, _ = dec.Token() // '['
	n := 0
	for dec.More() {
		var element json.RawMessage
		if err := dec.Decode(&element); err != nil {
			return 0, countError(ctx, resp.StatusCode, err)
		}
		n++
	}
	if _, err := dec.Token(); err != nil {
		return 0, countError(ctx, resp.StatusCode, err)
	}
	return n, nil
}

// countError classifies a failure to read an array: the connection's, or
// the array's (never quoted: it holds messages).
func countError(ctx context.Context, status int, err error) *Error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return newError(ReasonBadResponse, "HTTP %d: the answer is not a whole JSON array (or is larger than %d bytes)", status, maxCountBytes)
	}
	return transportError(ctx, err)
}

// peekNonSpace returns the first byte of br that is not white space,
// leaving it unread.
func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return 0, err
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			_, _ = br.ReadByte()
		default:
			return b[0], nil
		}
	}
}

// send makes a GET request.
func (a *API) send(ctx context.Context, rawURL string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, newError(ReasonClientError, "building request: %s", unwrapURLError(err))
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
		return nil, transportError(ctx, err)
	}
	return resp, nil
}

// do makes the request and reads at most limit bytes of the answer,
// redacted.
func (a *API) do(ctx context.Context, rawURL string, header http.Header, limit int64) (Response, error) {
	resp, err := a.send(ctx, rawURL, header)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	return a.read(ctx, resp, resp.Body, limit)
}

// read reads at most limit bytes of an answer's body from r, redacted.
func (a *API) read(ctx context.Context, resp *http.Response, r io.Reader, limit int64) (Response, error) {
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
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
