package server

import (
	"compress/gzip"
	"context"
	"encoding/json"
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

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"go.yaml.in/yaml/v2"
)

// Handler serves the exporter's endpoints, the metrics of every instance
// at metricsPath (--web.telemetry-path).
func (e *Exporter) Handler(metricsPath string) (http.Handler, error) {
	if err := checkTelemetryPath(metricsPath); err != nil {
		return nil, fmt.Errorf("--web.telemetry-path: %w", err)
	}
	// Scrapes share their calls, but each holds its answer's buffers:
	// bound how many run at once, as node_exporter does.
	scrapes := limitRequests(e.opts.MaxRequests, fmt.Sprintf("more than %d scrapes at once (--web.max-requests)", e.opts.MaxRequests))
	mux := http.NewServeMux()
	mux.Handle(metricsPath, promhttp.InstrumentMetricHandler(e.registry, scrapes(http.HandlerFunc(e.serveMetrics))))
	mux.Handle("/probe", scrapes(http.HandlerFunc(e.serveProbe)))
	// The exporter's own metrics without the instances', which in the
	// multi-target mode come from /probe.
	mux.Handle(exporterMetricsPath, promhttp.HandlerFor(e.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(e.logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("/sd", e.serveSD)
	mux.HandleFunc("/config", e.serveConfig)
	// A web page the user visits could make their browser POST a form
	// here; browsers mark such requests, and CrossOriginProtection refuses
	// them. curl and other clients still reload.
	mux.Handle("/-/reload", http.NewCrossOriginProtection().Handler(http.HandlerFunc(e.serveReload)))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "Healthy\n")
	})
	// The status page is the landing page, unless the metrics are served
	// there; its links are the former landing page's.
	page := "/"
	if metricsPath == "/" {
		page = statusPagePath
	}
	status := newStatusPage(e.logger, e.collector, e.remediation, page, []statusLink{
		{Address: metricsPath, Text: "Metrics", Description: "every instance, and the exporter's own"},
		{Address: "/sd", Text: "Service discovery", Description: "one target per instance, for /probe?target=<name>"},
		{Address: exporterMetricsPath, Text: "Exporter metrics", Description: "the exporter's own only"},
		{Address: "/config", Text: "Configuration", Description: "as loaded, secrets hidden"},
		{Address: "/-/healthy", Text: "Health"},
	})
	status.register(mux)
	return mux, nil
}

// limitRequests returns a middleware that answers 503 with refusal beyond
// max requests in flight; max 0 sets no limit.
func limitRequests(max int, refusal string) func(http.Handler) http.Handler {
	if max <= 0 {
		return func(h http.Handler) http.Handler { return h }
	}
	slots := make(chan struct{}, max)
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
				h.ServeHTTP(w, r)
			default:
				http.Error(w, refusal, http.StatusServiceUnavailable)
			}
		})
	}
}

// scrapeContext is the request's context, ended by the scrape timeout
// Prometheus announces less the offset.
func (e *Exporter) scrapeContext(r *http.Request) (context.Context, context.CancelFunc) {
	if timeout := e.scrapeTimeout(r); timeout > 0 {
		return context.WithTimeout(r.Context(), timeout)
	}
	return r.Context(), func() {}
}

// serveMetrics refreshes every instance within the scrape timeout and
// writes the exporter's own metrics, then every instance's. There is one
// gather path: the registry holds only the exporter's own metrics, and the
// instances' are streamed from the collector (see collector/exposition.go).
func (e *Exporter) serveMetrics(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := e.scrapeContext(r)
	defer cancel()
	scrape := e.collector.Refresh(ctx)
	e.noteUnrefreshed(scrape.Unrefreshed)
	mfs, err := e.registry.Gather()
	if err != nil {
		e.logger.Error("Gathering the exporter's own metrics", "err", err)
	}
	out, done := responseWriter(w, r)
	defer done()
	enc := expfmt.NewEncoder(out, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return // the client went away
		}
	}
	_, _ = scrape.WriteTo(out)
}

// serveProbe answers with the metrics of one instance, named by the
// target parameter: the multi-target mode, as blackbox_exporter's.
func (e *Exporter) serveProbe(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("target")
	if name == "" {
		http.Error(w, "the target parameter is missing: give the name of a configured instance, as /sd lists them", http.StatusBadRequest)
		return
	}
	ctx, cancel := e.scrapeContext(r)
	defer cancel()
	scrape, err := e.collector.RefreshInstance(ctx, name)
	if errors.Is(err, collector.ErrUnknownInstance) {
		http.Error(w, fmt.Sprintf("no instance named %s is configured; /sd lists them", strconv.Quote(name)), http.StatusBadRequest)
		return
	}
	out, done := responseWriter(w, r)
	defer done()
	_, _ = scrape.WriteTo(out)
}

// serveSD answers Prometheus' HTTP service discovery with one target per
// instance, configured or found by an account, its name, grouped by
// provider (label __meta_whatsapp_provider).
func (e *Exporter) serveSD(w http.ResponseWriter, _ *http.Request) {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	groups := []*group{}
	byProvider := map[string]*group{}
	for _, inst := range e.collector.Instances() {
		g, ok := byProvider[inst.Provider]
		if !ok {
			g = &group{Labels: map[string]string{"__meta_whatsapp_provider": inst.Provider}}
			byProvider[inst.Provider] = g
			groups = append(groups, g)
		}
		g.Targets = append(g.Targets, inst.Name)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(groups)
}

// responseWriter sets the text format's content type and compresses the
// answer when the client accepts gzip, as Prometheus does. done flushes.
func responseWriter(w http.ResponseWriter, r *http.Request) (io.Writer, func()) {
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		return w, func() {}
	}
	w.Header().Set("Content-Encoding", "gzip")
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level cannot fail
	return gz, func() { _ = gz.Close() }
}

// acceptsGzip reads an Accept-Encoding header: gzip, not with q=0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
		if v, err := strconv.ParseFloat(q, 64); ok && err == nil && v == 0 {
			return false
		}
		return true
	}
	return false
}

// unrefreshedLogEvery spaces the warnings about unrefreshed instances.
const unrefreshedLogEvery = 5 * time.Minute

// noteUnrefreshed says, now and then rather than at every scrape and for
// every instance, that the exporter could not refresh every instance in
// time, and what to do about it.
func (e *Exporter) noteUnrefreshed(n int) {
	if n == 0 {
		return
	}
	now := time.Now().UnixNano()
	last := e.lastUnrefreshedLog.Load()
	if now-last < int64(unrefreshedLogEvery) || !e.lastUnrefreshedLog.CompareAndSwap(last, now) {
		return
	}
	e.logger.Warn("Some instances could not be refreshed before the scrape deadline; they are exposed with their previous result. Raise --api.concurrency, lengthen the scrape timeout, or let Prometheus scrape /probe per instance (see docs/fleets.md)",
		"unrefreshed", n, "api_concurrency", e.opts.Collector.Concurrency)
}

// scrapeTimeout is how long the scrape may take: Prometheus' scrape timeout
// less the offset, or zero when the request does not announce one.
func (e *Exporter) scrapeTimeout(r *http.Request) time.Duration {
	v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")
	if v == "" {
		return 0
	}
	timeout, ok := answerWithin(v, e.opts.TimeoutOffset)
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

// exporterMetricsPath serves the exporter's own metrics alone.
const exporterMetricsPath = "/exporter-metrics"

// reservedPaths are the exporter's own endpoints.
var reservedPaths = []string{"/config", "/-/reload", "/-/healthy", "/probe", "/sd", exporterMetricsPath, statusPagePath, statusCheckPath, statusRebootPath}

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

// serveConfig shows the loaded configuration and, under found, the
// instances the accounts found, as they are watched; secrets as <secret>.
func (e *Exporter) serveConfig(w http.ResponseWriter, _ *http.Request) {
	view := struct {
		config.Config `yaml:",inline"`
		Found         map[string][]config.Spec `yaml:"found,omitempty"`
	}{Config: *e.cfg.Load(), Found: map[string][]config.Spec{}}
	for _, inst := range e.collector.Instances() {
		if inst.Account != "" {
			view.Found[inst.Account] = append(view.Found[inst.Account], inst.Spec)
		}
	}
	out, err := yaml.Marshal(view)
	if err != nil {
		http.Error(w, "cannot marshal the configuration", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(out)
}

func (e *Exporter) serveReload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST to reload the configuration", http.StatusMethodNotAllowed)
		return
	}
	if err := e.Reload(); err != nil {
		e.logger.Error("Reload failed; keeping the previous configuration", "err", err)
		http.Error(w, "reload failed, the previous configuration stays in use: "+err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = io.WriteString(w, "Reloaded\n")
}
