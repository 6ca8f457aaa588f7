package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
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

// Reasons lists every reason; each has a series from the first scrape on.
var Reasons = []string{
	ReasonTimeout, ReasonNetwork, ReasonUnauthorized, ReasonRateLimited,
	ReasonQuotaExceeded, ReasonServerError, ReasonClientError, ReasonBadResponse,
	ReasonRedirect,
}

// StateUnknown is 1 when no state could be fetched or the provider sent a
// value the exporter does not know.
const StateUnknown = "unknown"

// maxBodyBytes bounds what is read of a response: state bodies are tiny, so
// anything larger is a bad response, not a reason to use memory.
const maxBodyBytes = 64 << 10

// Client fetches the state of one instance.
type Client interface {
	// State makes one call and returns the raw state the provider reported,
	// StateUnknown when the call worked but carried no state, or an *Error.
	State(ctx context.Context) (string, error)
}

// Provider describes one WhatsApp API provider.
type Provider struct {
	Name string
	// States are every state the provider documents, in display order.
	States []string
	// Methods are the method label values its client calls.
	Methods []string
	// Config describes its configuration to the config package.
	Config config.ProviderInfo
	// NewClient builds a client for a resolved Spec of this provider.
	NewClient func(spec config.Spec, api *API) (Client, error)
}

var providers = map[string]*Provider{}

// register is called from each provider file's init.
func register(p *Provider) {
	providers[p.Name] = p
	config.RegisterProvider(p.Name, p.Config)
}

// ProviderStates returns the states of a provider, sorted, for tests and
// tooling; nil for an unknown provider.
func ProviderStates(name string) []string {
	p, ok := providers[name]
	if !ok {
		return nil
	}
	s := append([]string(nil), p.States...)
	sort.Strings(s)
	return s
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
	client  *http.Client
	secrets []string // every form of every secret, see addSecret
	logger  *slog.Logger
	metrics instanceMetrics
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
	if e != nil {
		e.msg = shorten(a.Redact(e.msg), maxErrorRunes)
		a.logger.Debug("Call failed", "method", method, "url", a.Redact(rawURL), "reason", e.Reason, "err", e.msg, "duration_seconds", elapsed.Seconds())
		return "", e
	}
	a.logger.Debug("Call succeeded", "method", method, "url", a.Redact(rawURL), "state", state, "duration_seconds", elapsed.Seconds())
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

// apiMetrics are the call metrics; they live across scrapes and reloads.
type apiMetrics struct {
	duration *prometheus.HistogramVec
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
}

func newAPIMetrics() *apiMetrics {
	return &apiMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "whatsapp_api_request_duration_seconds",
			Help:    "Duration of the exporter's calls to the provider API.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"provider", "name", "method"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatsapp_api_requests_total",
			Help: "Calls the exporter made to the provider API.",
		}, []string{"provider", "name", "method"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatsapp_api_request_errors_total",
			Help: "Calls to the provider API that failed, by reason.",
		}, []string{"provider", "name", "method", "reason"}),
	}
}

// instanceMetrics are one instance's call metrics by method. They are
// taken from the vectors once, when the instance is configured: a call
// still in flight when a reload removes its instance then writes into
// series that are no longer exported, instead of creating them again.
type instanceMetrics map[string]*methodMetrics

type methodMetrics struct {
	duration prometheus.Observer
	requests prometheus.Counter
	errors   map[string]prometheus.Counter // by reason
}

// instance creates every series of an instance, at zero so that rate()
// and alerts see them from the first scrape, and returns them.
func (m *apiMetrics) instance(provider, name string, methods []string) instanceMetrics {
	im := instanceMetrics{}
	for _, method := range methods {
		mm := &methodMetrics{
			duration: m.duration.WithLabelValues(provider, name, method),
			requests: m.requests.WithLabelValues(provider, name, method),
			errors:   map[string]prometheus.Counter{},
		}
		for _, r := range Reasons {
			mm.errors[r] = m.errors.WithLabelValues(provider, name, method, r)
		}
		im[method] = mm
	}
	return im
}

func (im instanceMetrics) observe(method string, d time.Duration, e *Error) {
	mm, ok := im[method]
	if !ok {
		return // a method the provider did not declare: a programming error
	}
	mm.duration.Observe(d.Seconds())
	mm.requests.Inc()
	if e != nil {
		if c, ok := mm.errors[e.Reason]; ok {
			c.Inc()
		}
	}
}

func (m *apiMetrics) forget(provider, name string) {
	l := prometheus.Labels{"provider": provider, "name": name}
	m.duration.DeletePartialMatch(l)
	m.requests.DeletePartialMatch(l)
	m.errors.DeletePartialMatch(l)
}

func (m *apiMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.duration.Describe(ch)
	m.requests.Describe(ch)
	m.errors.Describe(ch)
}

func (m *apiMetrics) Collect(ch chan<- prometheus.Metric) {
	m.duration.Collect(ch)
	m.requests.Collect(ch)
	m.errors.Collect(ch)
}
