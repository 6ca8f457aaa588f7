package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

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
	// maxRequests bounds the scrapes (/metrics and /probe) served at
	// once; 0 leaves them unbounded.
	maxRequests int
	collector   collector.Options
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

	// lastUnrefreshedLog is when the exporter last said it could not
	// refresh every instance in time (Unix nanoseconds).
	lastUnrefreshedLog atomic.Int64

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
		e.collector.ProviderMetrics(),
	)
	return e
}

// checkConfig loads the configuration and builds what start-up builds
// (HTTP clients read their CA and certificate files), so that OK means the
// exporter will start. It returns the number of instances.
func checkConfig(logger *slog.Logger, src configSource, opts collector.Options) (int, error) {
	cfg, err := src.load()
	if err != nil {
		return 0, err
	}
	c := collector.New(logger, opts)
	defer c.Close()
	if err := c.Update(cfg); err != nil {
		return 0, fmt.Errorf("config file %s: %w", src.file, err)
	}
	return len(cfg.Instances), nil
}

// reloadOnSIGHUP reloads at every SIGHUP until the returned function is
// called.
func (e *exporter) reloadOnSIGHUP() (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if err := e.reload(); err != nil {
				e.logger.Error("Reload on SIGHUP failed; keeping the previous configuration", "err", err)
			}
		}
	}()
	return func() { signal.Stop(hup); close(hup) }
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
