package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
)

func (e *exporter) handler(metricsPath string) (http.Handler, error) {
	if err := checkTelemetryPath(metricsPath); err != nil {
		return nil, fmt.Errorf("--web.telemetry-path: %w", err)
	}
	mux := http.NewServeMux()
	metrics := promhttp.InstrumentMetricHandler(e.registry, http.HandlerFunc(e.serveMetrics))
	mux.Handle(metricsPath, metrics)
	mux.HandleFunc("/config", e.serveConfig)
	// A web page the user visits could make their browser POST a form
	// here; browsers mark such requests, and CrossOriginProtection refuses
	// them. curl and other clients still reload.
	mux.Handle("/-/reload", http.NewCrossOriginProtection().Handler(http.HandlerFunc(e.serveReload)))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "Healthy\n")
	})
	if metricsPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "WhatsApp Exporter",
			Description: "Prometheus exporter for the state of WhatsApp API instances",
			Version:     version.Info(),
			Links: []web.LandingLinks{
				{Address: metricsPath, Text: "Metrics"},
				{Address: "/config", Text: "Configuration", Description: "as loaded, secrets hidden"},
				{Address: "/-/healthy", Text: "Health"},
			},
		})
		if err != nil {
			return nil, err
		}
		mux.Handle("/", landing)
	}
	return mux, nil
}

// serveMetrics gathers the exporter's own metrics and, bounded by the
// scrape timeout Prometheus announces, the state of every instance.
func (e *exporter) serveMetrics(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if timeout := e.scrapeTimeout(r); timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	states := prometheus.NewRegistry()
	states.MustRegister(e.collector.States(ctx))
	promhttp.HandlerFor(prometheus.Gatherers{states, e.registry}, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(e.logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}).ServeHTTP(w, r)
}

// scrapeTimeout is how long the scrape may take: Prometheus' scrape timeout
// less the offset, or zero when the request does not announce one.
func (e *exporter) scrapeTimeout(r *http.Request) time.Duration {
	v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")
	if v == "" {
		return 0
	}
	timeout, ok := answerWithin(v, e.opts.timeoutOffset)
	if !ok {
		e.logger.Warn("Ignoring a malformed X-Prometheus-Scrape-Timeout-Seconds header", "value", shortValue(v))
	}
	return timeout
}

// maxScrapeTimeout bounds an announced timeout; Prometheus allows no more
// than the scrape interval, and an hour is far above any.
const maxScrapeTimeout = time.Hour

// answerWithin turns an announced scrape timeout in seconds into the time
// the exporter has to answer: the timeout less offset, but never more than
// half of a timeout that is not larger than twice the offset, so that a
// short timeout is met too. ok is false for a value that is not a
// positive number.
func answerWithin(announced string, offset time.Duration) (d time.Duration, ok bool) {
	secs, err := strconv.ParseFloat(strings.TrimSpace(announced), 64)
	if err != nil || !(secs > 0) { // also false for NaN
		return 0, false
	}
	timeout := maxScrapeTimeout
	if secs < maxScrapeTimeout.Seconds() {
		timeout = time.Duration(secs * float64(time.Second))
	}
	if offset > 0 && timeout <= 2*offset {
		return timeout / 2, true
	}
	return timeout - max(offset, 0), true
}

// shortValue cuts a header value for a log line.
func shortValue(v string) string {
	if len(v) > 64 {
		v = v[:64] + "…"
	}
	return strconv.Quote(v)
}

// reservedPaths are the exporter's own endpoints.
var reservedPaths = []string{"/config", "/-/reload", "/-/healthy"}

// checkTelemetryPath accepts a plain absolute URL path that is not one of
// the exporter's own endpoints.
func checkTelemetryPath(p string) error {
	switch {
	case p == "":
		return errors.New("must not be empty")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q must start with /", p)
	case strings.ContainsAny(p, " \t{}?#%") || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%q must be a plain path, without spaces, wildcards, queries or escapes", p)
	case path.Clean(p) != p:
		return fmt.Errorf("%q is not a clean path (try %q)", p, path.Clean(p))
	case slices.Contains(reservedPaths, p):
		return fmt.Errorf("%q is one of the exporter's own endpoints (%s)", p, strings.Join(reservedPaths, ", "))
	}
	return nil
}

func (e *exporter) serveConfig(w http.ResponseWriter, _ *http.Request) {
	out, err := yaml.Marshal(e.cfg.Load())
	if err != nil {
		http.Error(w, "cannot marshal the configuration", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(out)
}

func (e *exporter) serveReload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST to reload the configuration", http.StatusMethodNotAllowed)
		return
	}
	if err := e.reload(); err != nil {
		e.logger.Error("Reload failed; keeping the previous configuration", "err", err)
		http.Error(w, "reload failed, the previous configuration stays in use: "+err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = io.WriteString(w, "Reloaded\n")
}
