// Command whatsapp_exporter exposes the state of WhatsApp API instances
// (GREEN-API) as Prometheus metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	"go.yaml.in/yaml/v2"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

const program = "whatsapp_exporter"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := kingpin.New(program, "Prometheus exporter for the state of WhatsApp API instances.")
	var (
		configFile    = app.Flag("config.file", "Path to the configuration file.").Default("whatsapp_exporter.yml").String()
		configCheck   = app.Flag("config.check", "Validate the configuration file and exit.").Bool()
		expandEnv     = app.Flag("config.expand-environment-variables", "Replace ${VAR} in the fields that allow it with the environment variable VAR.").Bool()
		demo          = app.Flag("demo", "Run against a built-in simulator of the provider APIs instead of --config.file; no account needed.").Bool()
		metricsPath   = app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
		timeoutOffset = app.Flag("web.timeout-offset", "Subtracted from Prometheus' scrape timeout so that the scrape answers in time.").Default("500ms").Duration()
		concurrency   = app.Flag("api.concurrency", "Provider API calls in flight at most, across all scrapes.").Default("32").Int()
		minInterval   = app.Flag("api.min-interval", "How long an instance's result is reused by later scrapes; GREEN-API allows one state request per second per instance.").Default("1s").Duration()
		webConfig     = kingpinflag.AddFlags(app, ":10040")
	)
	logConfig := &promslog.Config{Writer: stderr}
	promslogflag.AddFlags(app, logConfig)
	app.Version(version.Print(program))
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	app.HelpFlag.Short('h')
	// --help and --version print and end the program here, not in kingpin.
	terminated := false
	app.Terminate(func(int) { terminated = true })
	_, err := app.Parse(args)
	switch {
	case terminated:
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "%s: %s\n", program, err)
		return 2
	}
	logger := promslog.New(logConfig)

	src := configSource{file: *configFile, opts: config.Options{ExpandEnv: *expandEnv}}
	collectorOpts := collector.Options{
		Concurrency: *concurrency,
		MinInterval: *minInterval,
		UserAgent:   version.ComponentUserAgent(program),
	}
	if *configCheck {
		// Build what start-up builds (HTTP clients read their CA and
		// certificate files), so that OK means the exporter will start.
		cfg, err := src.load()
		if err == nil {
			err = collector.New(logger, collectorOpts).Update(cfg)
			if err != nil {
				err = fmt.Errorf("config file %s: %w", *configFile, err)
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: OK, %d instances\n", *configFile, len(cfg.Instances))
		return 0
	}

	logger.Info("Starting "+program, "version", version.Info())
	logger.Info("Build context", "build_context", version.BuildContext())

	if *demo {
		url, stopSim, err := startDemo(logger)
		if err != nil {
			logger.Error("Cannot start the demo simulator", "err", err)
			return 1
		}
		defer stopSim()
		src = configSource{inline: []byte(simulator.DemoConfig(url))}
		logger.Info("Demo mode: using the built-in simulator instead of --config.file", "simulator", url)
	}

	e := newExporter(logger, src, exporterOptions{
		timeoutOffset: *timeoutOffset,
		collector:     collectorOpts,
	})
	handler, err := e.handler(*metricsPath)
	if err != nil {
		logger.Error("Cannot build the HTTP handler", "err", err)
		return 1
	}
	if err := e.reload(); err != nil {
		logger.Error("Cannot load the configuration", "err", err)
		return 1
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := e.reload(); err != nil {
				logger.Error("Reload on SIGHUP failed; keeping the previous configuration", "err", err)
			}
		}
	}()

	served := make(chan error, 1)
	go func() { served <- web.ListenAndServe(srv, webConfig, logger) }()
	select {
	case err := <-served:
		logger.Error("HTTP server stopped", "err", err)
		return 1
	case <-ctx.Done():
	}
	logger.Info("Shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Error("Graceful shutdown failed", "err", err)
		return 1
	}
	return 0
}

// startDemo serves the simulator on a free loopback port.
func startDemo(logger *slog.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: simulator.Demo(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("Demo simulator stopped", "err", err)
		}
	}()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// configSource is where configurations come from: the file, or content
// held in memory (the demo's).
type configSource struct {
	file   string
	opts   config.Options
	inline []byte
}

func (s configSource) load() (*config.Config, error) {
	if s.inline != nil {
		return config.Load(s.inline, ".", s.opts)
	}
	return config.LoadFile(s.file, s.opts)
}

type exporterOptions struct {
	timeoutOffset time.Duration
	collector     collector.Options
}

// exporter is the HTTP surface: metrics, the configuration and reloads.
type exporter struct {
	logger    *slog.Logger
	src       configSource
	opts      exporterOptions
	collector *collector.Collector
	registry  *prometheus.Registry

	reloadSuccess   prometheus.Gauge
	reloadTimestamp prometheus.Gauge

	// reloadMu serialises reloads. cfg is read without it, so that /config
	// never waits for a reload.
	reloadMu sync.Mutex
	cfg      atomic.Pointer[config.Config]
}

func newExporter(logger *slog.Logger, src configSource, opts exporterOptions) *exporter {
	e := &exporter{
		logger:    logger,
		src:       src,
		opts:      opts,
		collector: collector.New(logger, opts.collector),
		registry:  prometheus.NewRegistry(),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "whatsapp_exporter_config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded.",
		}),
		reloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "whatsapp_exporter_config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful configuration reload, in seconds since the Unix epoch.",
		}),
	}
	e.registry.MustRegister(
		versioncollector.NewCollector(program),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		e.reloadSuccess,
		e.reloadTimestamp,
		e.collector,
	)
	return e
}

// reload loads the configuration; on failure the previous one keeps
// serving.
func (e *exporter) reload() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	cfg, err := e.src.load()
	if err == nil {
		err = e.collector.Update(cfg)
	}
	if err != nil {
		e.reloadSuccess.Set(0)
		return err
	}
	e.cfg.Store(cfg)
	e.reloadSuccess.Set(1)
	e.reloadTimestamp.SetToCurrentTime()
	e.logger.Info("Loaded configuration", "instances", len(cfg.Instances))
	return nil
}

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
	states.MustRegister(e.collector.Scrape(ctx))
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
