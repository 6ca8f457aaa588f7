package collector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Reasons of a failed call, the values of the reason label.
const (
	ReasonTimeout       = "timeout"
	ReasonNetwork       = "network"
	ReasonUnauthorized  = "unauthorized"
	ReasonRateLimited   = "rate_limited"
	ReasonQuotaExceeded = "quota_exceeded"
	ReasonServerError   = "server_error"
	ReasonClientError   = "client_error"
	ReasonBadResponse   = "bad_response"
	// ReasonRedirect is a redirect the exporter refused to follow because a
	// secret would have gone with it (see redirect.go).
	ReasonRedirect = "redirect"
)

// Reasons lists every reason. An array, so that per-reason counters can be
// one.
var Reasons = [...]string{
	ReasonTimeout, ReasonNetwork, ReasonUnauthorized, ReasonRateLimited,
	ReasonQuotaExceeded, ReasonServerError, ReasonClientError, ReasonBadResponse,
	ReasonRedirect,
}

// Error is a failed call, classified by Reason. Its text never holds a
// secret.
type Error struct {
	Reason string
	// RetryAfter is how long the provider asked us to wait (rate limiting).
	RetryAfter time.Duration
	msg        string
}

func (e *Error) Error() string { return e.Reason + ": " + e.msg }

func newError(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, msg: fmt.Sprintf(format, args...)}
}

// statusError classifies an HTTP status that a provider did not handle
// itself; detail describes the body. A 429 carries its Retry-After.
func statusError(r Response, detail string) *Error {
	reason := ReasonBadResponse
	switch {
	case r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden:
		reason = ReasonUnauthorized
	case r.Status == http.StatusTooManyRequests:
		reason = ReasonRateLimited
	case r.Status >= 500:
		reason = ReasonServerError
	case r.Status >= 400:
		reason = ReasonClientError
	}
	e := newError(reason, "HTTP %d: %s", r.Status, detail)
	if reason == ReasonRateLimited {
		e.RetryAfter = retryAfter(r.Header, time.Now())
	}
	return e
}

// unwrapURLError drops *url.Error's wrapping: its text repeats the URL,
// which can hold a token.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func transportError(ctx context.Context, err error) *Error {
	inner := unwrapURLError(err)
	var ne net.Error
	var re *redirectError
	if errors.As(inner, &re) {
		return newError(ReasonRedirect, "%s", re)
	}
	if ctx.Err() != nil || errors.Is(inner, context.DeadlineExceeded) || errors.Is(inner, os.ErrDeadlineExceeded) ||
		(errors.As(inner, &ne) && ne.Timeout()) {
		return newError(ReasonTimeout, "%s", inner)
	}
	return newError(ReasonNetwork, "%s", inner)
}

// maxRetryAfter caps a provider's Retry-After so that a garbled header
// cannot silence an instance for long.
const maxRetryAfter = 5 * time.Minute

// retryAfter reads a Retry-After header in seconds or as an HTTP date,
// capped at maxRetryAfter; 0 when there is none or it is not understood.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	// Cap before converting: seconds times time.Second overflows int64
	// for values above about 9.2e9.
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || secs > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}

// ReasonNotDone is an action the provider answered without doing it:
// GREEN-API's reboot answering {"isReboot": false}. It is no reason of a
// state request, so it is not in Reasons (whose values label the call
// metrics): the remediation's metrics carry it.
const ReasonNotDone = "not_done"
