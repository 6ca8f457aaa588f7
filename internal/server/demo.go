package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// Demo is the simulator of --demo, served on a free loopback port.
type Demo struct {
	*simulator.Simulator
	// URL is where the simulator serves.
	URL  string
	stop func()
}

// StartDemo serves the demo simulator until Stop.
func StartDemo(logger *slog.Logger) (*Demo, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sim := simulator.Demo()
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("Demo simulator stopped", "err", err)
		}
	}()
	return &Demo{Simulator: sim, URL: "http://" + ln.Addr().String(), stop: func() { _ = srv.Close() }}, nil
}

// Stop stops serving the simulator.
func (d *Demo) Stop() { d.stop() }

// Config is the configuration of the demo's instances and accounts.
func (d *Demo) Config() ConfigSource {
	return ConfigSource{Inline: []byte(simulator.DemoConfig(d.URL))}
}

// Notify has the demo instances push their state changes to the
// notification receiver listening on addr, as providers would, until ctx
// ends.
func (d *Demo) Notify(ctx context.Context, addr string, logger *slog.Logger) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		logger.Error("Demo: cannot send notifications", "err", err)
		return
	}
	if host == "" || net.ParseIP(host).IsUnspecified() {
		host = "localhost"
	}
	url := "http://" + net.JoinHostPort(host, port)
	logger.Info("Demo: the simulator pushes state changes to the notification receiver", "url", url)
	d.SendNotifications(ctx, url, func(err error) {
		logger.Warn("Demo: notification failed", "err", err)
	})
}

// demoRefreshEvery is how often the demo refreshes its instances by
// itself.
const demoRefreshEvery = 15 * time.Second

// Refresh refreshes the exporter's instances now and then every
// demoRefreshEvery until ctx ends, as a Prometheus scraping it would: the
// status page then shows states without a Prometheus running.
func (d *Demo) Refresh(ctx context.Context, e *Exporter) {
	t := time.NewTicker(demoRefreshEvery)
	defer t.Stop()
	for {
		refreshCtx, cancel := context.WithTimeout(ctx, demoRefreshEvery)
		e.collector.Refresh(refreshCtx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
