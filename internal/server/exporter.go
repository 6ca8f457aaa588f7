// Package server is the exporter's HTTP surface: the metrics endpoints
// (/metrics, /probe, /exporter-metrics), service discovery (/sd), the
// configuration (/config), reloads (/-/reload), the landing page, the
// notification receiver's server and the --demo simulator. Package main
// parses the command line and wires it to listeners and signals.
package server

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/remediation"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/waalerts"
)

// program names the exporter's own metrics (whatsapp_exporter_build_info).
const program = "whatsapp_exporter"

// ConfigSource is where configurations come from: the file, or content
// held in memory (the demo's).
type ConfigSource struct {
	File    string
	Options config.Options
	Inline  []byte
}

// Load loads the configuration.
func (s ConfigSource) Load() (*config.Config, error) {
	if s.Inline != nil {
		return config.Load(s.Inline, ".", s.Options)
	}
	return config.LoadFile(s.File, s.Options)
}

// Options are the exporter's settings beside the configuration.
type Options struct {
	// TimeoutOffset is subtracted from the scrape timeout Prometheus
	// announces (--web.timeout-offset).
	TimeoutOffset time.Duration
	// MaxRequests bounds the scrapes (/metrics and /probe) served at
	// once; 0 leaves them unbounded.
	MaxRequests int
	Collector   collector.Options
}

// Exporter is the HTTP surface: metrics, the configuration and reloads.
type Exporter struct {
	logger    *slog.Logger
	src       ConfigSource
	opts      Options
	collector *collector.Collector
	registry  *prometheus.Registry
	// remediation and waalerts act for Alertmanager (and the status
	// page), as the configuration's sections say.
	remediation *remediation.Engine
	waalerts    *waalerts.Sender

	reloadSuccess   prometheus.Gauge
	reloadTimestamp prometheus.Gauge

	// receiver counts the notification receiver's limits at work, once
	// a receiver is made.
	receiverOnce sync.Once
	receiver     *receiverMetrics

	// alertmanagerMetrics count Alertmanager's requests, once its
	// receivers are served (alertmanager.go).
	alertmanagerOnce    sync.Once
	alertmanagerMetrics *alertmanagerMetrics

	// lastUnrefreshedLog is when the exporter last said it could not
	// refresh every instance in time (Unix nanoseconds).
	lastUnrefreshedLog atomic.Int64

	// reloadMu serialises reloads. cfg is read without it, so that /config
	// never waits for a reload.
	reloadMu sync.Mutex
	cfg      atomic.Pointer[config.Config]
}

// New returns an exporter with no configuration loaded yet: call Reload
// before serving, and Close at the end.
func New(logger *slog.Logger, src ConfigSource, opts Options) *Exporter {
	e := &Exporter{
		logger:    logger,
		src:       src,
		opts:      opts,
		collector: collector.New(logger, opts.Collector),
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
	e.remediation = remediation.New(logger, e.collector)
	e.waalerts = waalerts.New(logger, e.collector)
	e.registry.MustRegister(
		versioncollector.NewCollector(program),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		e.reloadSuccess,
		e.reloadTimestamp,
		e.collector.ProviderMetrics(),
		e.remediation.Collector(),
		e.waalerts.Collector(),
	)
	return e
}

// Collector is the collector the exporter serves.
func (e *Exporter) Collector() *collector.Collector { return e.collector }

// Close stops the collector's work.
func (e *Exporter) Close() {
	e.remediation.Close()
	e.collector.Close()
}

// CheckConfig loads the configuration and builds what start-up builds
// (HTTP clients read their CA and certificate files), so that OK means the
// exporter will start. It returns the number of instances.
func CheckConfig(logger *slog.Logger, src ConfigSource, opts collector.Options) (int, error) {
	cfg, err := src.Load()
	if err != nil {
		return 0, err
	}
	c := collector.New(logger, opts)
	defer c.Close()
	if err := c.Update(cfg); err != nil {
		return 0, fmt.Errorf("config file %s: %w", src.File, err)
	}
	return len(cfg.Instances), nil
}

// Reload loads the configuration; on failure the previous one keeps
// serving.
func (e *Exporter) Reload() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	cfg, err := e.src.Load()
	if err == nil {
		err = e.collector.Update(cfg)
	}
	if err != nil {
		e.reloadSuccess.Set(0)
		return err
	}
	e.cfg.Store(cfg)
	e.remediation.Update(cfg)
	e.waalerts.Update(cfg)
	e.reloadSuccess.Set(1)
	e.reloadTimestamp.SetToCurrentTime()
	e.logger.Info("Loaded configuration", "instances", len(cfg.Instances))
	return nil
}
