package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/amwebhook"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/lograte"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/remediation"
)

// Alertmanager's receivers (--alertmanager.listen-address) listen apart
// from /metrics and from the providers' notifications: they change things
// at the providers (a reboot) or send messages, so they are never open by
// accident. Every request needs the configuration's alertmanager
// bearer_token, or the basic auth of the listener's web configuration
// (--alertmanager.config.file) in front; without either, each request is
// refused, even when a reload removed the token after start-up.

// Paths of Alertmanager's receivers.
const (
	AlertmanagerRemediatePath = "/alertmanager/remediate"
	AlertmanagerWhatsAppPath  = "/alertmanager/whatsapp"
)

// Values of the receiver label.
const (
	receiverRemediation = "remediation"
	receiverWhatsApp    = "whatsapp"
)

// Values of whatsapp_alertmanager_requests_total's outcome label, from
// the answer's status.
var requestOutcomes = map[int]string{
	http.StatusOK:                    "accepted",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusBadRequest:            "malformed",
	http.StatusRequestEntityTooLarge: "too_large",
	http.StatusMethodNotAllowed:      "method",
	// The receiver's section is not in the configuration.
	http.StatusNotFound: "not_configured",
}

// outcomeError is the outcome of any other answer: a 5xx (shutting down,
// no WhatsApp sender works) that Alertmanager retries.
const outcomeError = "error"

// AlertmanagerTimeouts bound Alertmanager's requests. Write is long: the
// answer comes once every alert is decided, which may wait for a state
// request and a reboot.
var AlertmanagerTimeouts = ReceiverTimeouts{Header: 10 * time.Second, Read: 60 * time.Second, Write: 3 * time.Minute, Idle: 2 * time.Minute}

// ErrAlertmanagerOpen refuses to serve Alertmanager's receivers with no
// authentication at all.
var ErrAlertmanagerOpen = errors.New("the receivers for Alertmanager would be open to anyone: set alertmanager.bearer_token (or bearer_token_file) in the configuration file, or basic_auth_users in --alertmanager.config.file")

// alertmanagerMetrics count Alertmanager's requests and their alerts.
type alertmanagerMetrics struct {
	requests *prometheus.CounterVec
	alerts   *prometheus.CounterVec
	inFlight prometheus.Gauge
}

func newAlertmanagerMetrics(reg prometheus.Registerer) *alertmanagerMetrics {
	m := &alertmanagerMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatsapp_alertmanager_requests_total",
			Help: "Requests to Alertmanager's receivers, by receiver and outcome: accepted, unauthorized, malformed, too_large, method, not_configured, error (5xx, retried by Alertmanager).",
		}, []string{"receiver", "outcome"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatsapp_alertmanager_alerts_total",
			Help: "Alerts of the accepted requests to Alertmanager's receivers, by receiver and outcome (remediation: ok, resolved, no_action, unknown_instance, other_replica, truncated).",
		}, []string{"receiver", "outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "whatsapp_alertmanager_requests_in_flight",
			Help: fmt.Sprintf("Requests Alertmanager's receivers are handling, of at most %d at once.", maxAlertmanagerRequests),
		}),
	}
	for _, r := range []string{receiverRemediation, receiverWhatsApp} {
		for _, o := range requestOutcomes {
			m.requests.WithLabelValues(r, o)
		}
		m.requests.WithLabelValues(r, outcomeError)
	}
	for _, o := range []string{remediation.AlertDecided, remediation.AlertUnknownInstance} {
		m.alerts.WithLabelValues(receiverRemediation, o)
	}
	reg.MustRegister(m.requests, m.alerts, m.inFlight)
	return m
}

// alertmanager holds what the receivers share.
type alertmanager struct {
	e             *Exporter
	m             *alertmanagerMetrics
	webConfigFile string
	// openLog says at most once a minute why requests are refused.
	openLog *lograte.Limiter
	// slots bound the requests handled at once (maxAlertmanagerRequests):
	// each may hold a message of amwebhook.MaxBytes.
	slots chan struct{}
}

// maxAlertmanagerRequests bounds the requests Alertmanager's receivers
// handle at once. Alertmanager sends one request per group and receiver
// at a time; two clustered Alertmanagers and a few receivers stay far
// below it. More get 503, which Alertmanager retries.
const maxAlertmanagerRequests = 16

// AlertmanagerHandler serves Alertmanager's receivers: remediation at
// AlertmanagerRemediatePath, WhatsApp messages at
// AlertmanagerWhatsAppPath. webConfigFile is the listener's
// exporter-toolkit web configuration (--alertmanager.config.file), read
// at each request that has no bearer token to check, as the toolkit reads
// it, to know that basic auth stands in front.
func (e *Exporter) AlertmanagerHandler(webConfigFile string) http.Handler {
	e.alertmanagerOnce.Do(func() { e.alertmanagerMetrics = newAlertmanagerMetrics(e.registry) })
	a := &alertmanager{e: e, m: e.alertmanagerMetrics, webConfigFile: webConfigFile, openLog: lograte.New(1, time.Minute), slots: make(chan struct{}, maxAlertmanagerRequests)}
	e.remediation.MarkServed()
	mux := http.NewServeMux()
	mux.Handle(AlertmanagerRemediatePath, a.wrap(receiverRemediation, e.remediation.Handler()))
	mux.Handle(AlertmanagerWhatsAppPath, a.wrap(receiverWhatsApp, e.waalerts.Handler()))
	return mux
}

// Alertmanager is the server of Alertmanager's receivers, for the caller
// to serve with web.Serve and the same webConfigFile.
func (e *Exporter) Alertmanager(webConfigFile string) *http.Server {
	t := AlertmanagerTimeouts
	return &http.Server{
		Handler:           e.AlertmanagerHandler(webConfigFile),
		ReadHeaderTimeout: t.Header,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(e.logger.With("listener", "alertmanager").Handler(), slog.LevelDebug),
	}
}

// CheckAlertmanagerAuth says whether Alertmanager's receivers would be
// authenticated: by the loaded configuration's bearer token, or by
// basic_auth_users in webConfigFile.
func (e *Exporter) CheckAlertmanagerAuth(webConfigFile string) error {
	if cfg := e.cfg.Load(); cfg != nil && cfg.Alertmanager.Token() != "" {
		return nil
	}
	ok, err := BasicAuthConfigured(webConfigFile)
	if err != nil {
		return err
	}
	if !ok {
		return ErrAlertmanagerOpen
	}
	return nil
}

// BasicAuthConfigured says whether the exporter-toolkit web configuration
// file sets basic_auth_users; false for no file.
func BasicAuthConfigured(webConfigFile string) (bool, error) {
	if webConfigFile == "" {
		return false, nil
	}
	b, err := os.ReadFile(webConfigFile)
	if err != nil {
		return false, fmt.Errorf("--alertmanager.config.file: %w", err)
	}
	// The toolkit's own type and strictness: what it accepts, this reads
	// alike.
	var c web.Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return false, fmt.Errorf("--alertmanager.config.file %s: %w", webConfigFile, err)
	}
	return len(c.Users) > 0, nil
}

// wrap counts receiver's requests by their answer, and refuses every
// request when nothing authenticates it.
func (a *alertmanager) wrap(receiver string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			o, ok := requestOutcomes[sw.status]
			if !ok {
				o = outcomeError
			}
			a.m.requests.WithLabelValues(receiver, o).Inc()
		}()
		if err := a.e.CheckAlertmanagerAuth(a.webConfigFile); err != nil {
			a.logOpen(err)
			http.Error(sw, "unauthorized: no authentication is configured for Alertmanager's receivers", http.StatusUnauthorized)
			return
		}
		// A wrong token is refused before it takes a slot: only
		// Alertmanager, holding the token, can fill them.
		if cfg := a.e.cfg.Load(); cfg != nil && cfg.Alertmanager.Token() != "" && !amwebhook.Authorized(r, cfg.Alertmanager.Token()) {
			http.Error(sw, amwebhook.ErrUnauthorized.Error(), http.StatusUnauthorized)
			return
		}
		select {
		case a.slots <- struct{}{}:
			a.m.inFlight.Inc()
			defer func() {
				a.m.inFlight.Dec()
				<-a.slots
			}()
		default:
			http.Error(sw, "too many requests at once; retry later", http.StatusServiceUnavailable)
			return
		}
		ctx := amwebhook.WithAlertCounter(r.Context(), func(outcome string, n int) {
			a.m.alerts.WithLabelValues(receiver, outcome).Add(float64(n))
		})
		h.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// logOpen says, at most once a minute, why requests are refused.
func (a *alertmanager) logOpen(err error) {
	ok, held := a.openLog.Allow(time.Now())
	if !ok {
		return
	}
	args := []any{"err", err}
	if held > 0 {
		args = append(args, "held_back", held)
	}
	a.e.logger.Error("Refusing Alertmanager's requests", args...)
}

// statusWriter remembers the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// SetRemediationOwner shares the instances' remediation among replicas
// (--alertmanager.replica, --alertmanager.peers); nil acts on every
// instance.
func (e *Exporter) SetRemediationOwner(o *remediation.Owner) { e.remediation.SetOwner(o) }
