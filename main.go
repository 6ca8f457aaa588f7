// Command whatsapp_exporter exposes the state of WhatsApp API instances
// (GREEN-API, Wachat, Evolution API and any provider the collector
// package registers) as Prometheus metrics.
//
// This file wires the parts together; the command line is in flags.go,
// the HTTP surface in http.go, configuration loading and reloads in
// reload.go.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
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
	f, code, done := parseFlags(args, stdout, stderr)
	if done {
		return code
	}
	logger := promslog.New(f.log)

	src := configSource{file: f.configFile, opts: config.Options{ExpandEnv: f.expandEnv}}
	collectorOpts := collector.Options{
		Concurrency:   f.concurrency,
		MinInterval:   f.minInterval,
		UserAgent:     version.ComponentUserAgent(program),
		Notifications: f.webhookAddress != "",
		MessagesQueue: f.messagesQueue,
	}
	if f.configCheck {
		n, err := checkConfig(logger, src, collectorOpts)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: OK, %d instances\n", f.configFile, n)
		return 0
	}

	logger.Info("Starting "+program, "version", version.Info())
	logger.Info("Build context", "build_context", version.BuildContext())

	var sim *demoSimulator
	if f.demo {
		var err error
		if sim, err = startDemo(logger); err != nil {
			logger.Error("Cannot start the demo simulator", "err", err)
			return 1
		}
		defer sim.stop()
		src = configSource{inline: []byte(simulator.DemoConfig(sim.url))}
		logger.Info("Demo mode: using the built-in simulator instead of --config.file", "simulator", sim.url)
	}

	e := newExporter(logger, src, exporterOptions{
		timeoutOffset: f.timeoutOffset,
		maxRequests:   f.maxRequests,
		collector:     collectorOpts,
	})
	defer e.collector.Close()
	handler, err := e.handler(f.metricsPath)
	if err != nil {
		logger.Error("Cannot build the HTTP handler", "err", err)
		return 1
	}
	if err := e.reload(); err != nil {
		logger.Error("Cannot load the configuration", "err", err)
		return 1
	}
	stopHUP := e.reloadOnSIGHUP()
	defer stopHUP()

	metricsServer := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	servers := []*http.Server{metricsServer}
	served := make(chan error, 2)
	go func() { served <- web.ListenAndServe(metricsServer, f.web, logger) }()
	if f.webhookAddress != "" {
		wh := e.webhookServer(defaultWebhookTimeouts)
		servers = append(servers, wh)
		noSystemd := false
		whFlags := &web.FlagConfig{WebListenAddresses: &[]string{f.webhookAddress}, WebSystemdSocket: &noSystemd, WebConfigFile: &f.webhookConfigFile}
		go func() {
			served <- fmt.Errorf("notification receiver: %w", web.ListenAndServe(wh, whFlags, logger.With("listener", "webhook")))
		}()
		if sim != nil {
			go sim.notify(ctx, f.webhookAddress, logger)
		}
	}
	select {
	case err := <-served:
		logger.Error("HTTP server stopped", "err", err)
		return 1
	case <-ctx.Done():
	}
	logger.Info("Shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exit := 0
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			logger.Error("Graceful shutdown failed", "err", err)
			exit = 1
		}
	}
	return exit
}
