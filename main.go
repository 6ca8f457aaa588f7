// Command whatsapp_exporter exposes the state of WhatsApp API instances
// (GREEN-API, Wachat, Evolution API and any provider the collector
// package registers) as Prometheus metrics.
//
// This file parses the command line and wires the parts together: the
// collector (package collector) behind the HTTP surface (internal/server),
// its listeners, and the signals (SIGHUP reloads, SIGINT and SIGTERM shut
// down).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/remediation"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/server"
)

const program = "whatsapp_exporter"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// flags are the command line.
type flags struct {
	configFile    string
	configCheck   bool
	expandEnv     bool
	demo          bool
	metricsPath   string
	timeoutOffset time.Duration
	maxRequests   int
	concurrency   int
	minInterval   time.Duration
	web           *web.FlagConfig
	log           *promslog.Config
	// webhookAddress is where the notification receiver listens; empty
	// leaves it off.
	webhookAddress    string
	webhookConfigFile string
	// webhookConns and webhookConnsPerClient bound the receiver's
	// connections.
	webhookConns, webhookConnsPerClient int
	messagesQueue                       bool
	// alertmanagerAddress is where Alertmanager's receivers listen
	// (remediation, WhatsApp messages); empty leaves them off.
	alertmanagerAddress    string
	alertmanagerConfigFile string
	// alertmanagerReplica and alertmanagerPeers share the instances'
	// remediation among replicas; empty acts on every instance.
	alertmanagerReplica string
	alertmanagerPeers   []string
}

// parseFlags parses the command line. done is true when the program is to
// end with code, having printed help, the version or an error.
func parseFlags(args []string, stdout, stderr io.Writer) (f *flags, code int, done bool) {
	f = &flags{log: &promslog.Config{Writer: stderr}}
	app := kingpin.New(program, "Prometheus exporter for the state of WhatsApp API instances.")
	app.Flag("config.file", "Path to the configuration file.").Default("whatsapp_exporter.yml").StringVar(&f.configFile)
	app.Flag("config.check", "Validate the configuration file and exit.").BoolVar(&f.configCheck)
	app.Flag("config.expand-environment-variables", "Replace ${VAR} in the fields that allow it with the environment variable VAR.").BoolVar(&f.expandEnv)
	app.Flag("demo", "Run against a built-in simulator of the provider APIs instead of --config.file; no account needed.").BoolVar(&f.demo)
	app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").StringVar(&f.metricsPath)
	app.Flag("web.timeout-offset", "Subtracted from Prometheus' scrape timeout so that the scrape answers in time.").Default("500ms").DurationVar(&f.timeoutOffset)
	app.Flag("web.max-requests", "Scrapes (of the metrics path or /probe) served at once at most; more get HTTP 503. 0 means no limit.").Default("40").IntVar(&f.maxRequests)
	app.Flag("api.concurrency", "Provider API calls in flight at most, across all scrapes.").Default("64").IntVar(&f.concurrency)
	app.Flag("api.min-interval", "How long an instance's result is reused by later scrapes; GREEN-API allows one state request per second per instance.").Default("1s").DurationVar(&f.minInterval)
	app.Flag("greenapi.messages-queue", "Read every GREEN-API instance's outgoing queue (getMessagesCount: how many messages wait, no cap) after its state, unless its messages_queue says otherwise. Each read is one more request per instance and scrape.").BoolVar(&f.messagesQueue)
	app.Flag("webhook.listen-address", "Address on which to receive the providers' state notifications (webhooks), e.g. :10041; off when empty. A listener of its own, since providers call it from the internet.").Default("").StringVar(&f.webhookAddress)
	app.Flag("webhook.config.file", "Path to an exporter-toolkit web configuration file for the notification receiver: TLS (providers send their credentials in the Authorization header, so basic auth cannot be used).").Default("").StringVar(&f.webhookConfigFile)
	app.Flag("webhook.max-connections", "Connections the notification receiver keeps open at once at most; more are closed as soon as accepted. Each holds a file descriptor and about 20 KB. 0 means no limit.").Default("512").IntVar(&f.webhookConns)
	app.Flag("webhook.max-connections-per-client", "Connections one client (an IPv4 address or an IPv6 /64) may keep open to the notification receiver at once, and half as many notifications handled at once; more connections are closed, more notifications answered 503. 0 means no limit (behind a reverse proxy, which is one client).").Default("64").IntVar(&f.webhookConnsPerClient)
	app.Flag("alertmanager.listen-address", "Address on which to receive Alertmanager's webhooks: /alertmanager/remediate (remediation) and /alertmanager/whatsapp (WhatsApp messages), e.g. :10042; off when empty. The exporter refuses to start it unless the configuration has alertmanager.bearer_token(_file) or --alertmanager.config.file sets basic_auth_users.").Default("").StringVar(&f.alertmanagerAddress)
	app.Flag("alertmanager.config.file", "Path to an exporter-toolkit web configuration file for Alertmanager's receivers: TLS and basic auth.").Default("").StringVar(&f.alertmanagerConfigFile)
	app.Flag("alertmanager.replica", "This replica's name among --alertmanager.peers: each instance is remediated by one replica only, the one the peers' names give it.").Default("").StringVar(&f.alertmanagerReplica)
	app.Flag("alertmanager.peers", "The names of every replica (repeat the flag, or separate with commas), the same list on each; with --alertmanager.replica.").StringsVar(&f.alertmanagerPeers)
	f.web = kingpinflag.AddFlags(app, ":10040")
	promslogflag.AddFlags(app, f.log)
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
		return nil, 0, true
	case err != nil:
		fmt.Fprintf(stderr, "%s: %s\n", program, err)
		return nil, 2, true
	case f.webhookConns < 0 || f.webhookConnsPerClient < 0:
		fmt.Fprintf(stderr, "%s: --webhook.max-connections and --webhook.max-connections-per-client must not be negative\n", program)
		return nil, 2, true
	case (f.alertmanagerReplica == "") != (len(f.alertmanagerPeers) == 0):
		fmt.Fprintf(stderr, "%s: --alertmanager.replica and --alertmanager.peers go together\n", program)
		return nil, 2, true
	}
	var peers []string
	for _, p := range f.alertmanagerPeers {
		peers = append(peers, strings.Split(p, ",")...)
	}
	f.alertmanagerPeers = peers
	return f, 0, false
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, code, done := parseFlags(args, stdout, stderr)
	if done {
		return code
	}
	logger := promslog.New(f.log)

	src := server.ConfigSource{File: f.configFile, Options: config.Options{ExpandEnv: f.expandEnv}}
	collectorOpts := collector.Options{
		Concurrency:   f.concurrency,
		MinInterval:   f.minInterval,
		UserAgent:     version.ComponentUserAgent(program),
		Notifications: f.webhookAddress != "",
		MessagesQueue: f.messagesQueue,
	}
	if f.configCheck {
		n, err := server.CheckConfig(logger, src, collectorOpts)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: OK, %d instances\n", f.configFile, n)
		return 0
	}

	logger.Info("Starting "+program, "version", version.Info())
	logger.Info("Build context", "build_context", version.BuildContext())

	var demo *server.Demo
	if f.demo {
		var err error
		if demo, err = server.StartDemo(logger); err != nil {
			logger.Error("Cannot start the demo simulator", "err", err)
			return 1
		}
		defer demo.Stop()
		src = demo.Config()
		logger.Info("Demo mode: using the built-in simulator instead of --config.file", "simulator", demo.URL)
	}

	e := server.New(logger, src, server.Options{
		TimeoutOffset: f.timeoutOffset,
		MaxRequests:   f.maxRequests,
		Collector:     collectorOpts,
	})
	defer e.Close()
	handler, err := e.Handler(f.metricsPath)
	if err != nil {
		logger.Error("Cannot build the HTTP handler", "err", err)
		return 1
	}
	if err := e.Reload(); err != nil {
		logger.Error("Cannot load the configuration", "err", err)
		return 1
	}
	var owner *remediation.Owner
	if f.alertmanagerReplica != "" {
		if owner, err = remediation.NewOwner(f.alertmanagerReplica, f.alertmanagerPeers); err != nil {
			logger.Error("Cannot share remediation among replicas", "err", err)
			return 1
		}
		e.SetRemediationOwner(owner)
	}
	if f.alertmanagerAddress != "" {
		// Never open by accident: refuse to start rather than serve
		// reboots to anyone.
		if err := e.CheckAlertmanagerAuth(f.alertmanagerConfigFile); err != nil {
			logger.Error("Cannot serve Alertmanager's receivers", "err", err)
			return 1
		}
		if err := web.Validate(f.alertmanagerConfigFile); err != nil {
			logger.Error("Cannot serve Alertmanager's receivers", "err", fmt.Errorf("--alertmanager.config.file: %w", err))
			return 1
		}
	}
	if demo != nil {
		go demo.Refresh(ctx, e)
	}
	stopHUP := reloadOnSIGHUP(logger, e)
	defer stopHUP()

	metricsServer := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	servers := []*http.Server{metricsServer}
	served := make(chan error, 3)
	go func() { served <- web.ListenAndServe(metricsServer, f.web, logger) }()
	if f.webhookAddress != "" {
		limits := server.NewReceiverLimits(f.webhookConns, f.webhookConnsPerClient)
		ln, err := net.Listen("tcp", f.webhookAddress)
		if err != nil {
			logger.Error("Cannot listen for notifications", "address", f.webhookAddress, "err", err)
			return 1
		}
		defer ln.Close()
		wh := e.ReceiverWith(server.DefaultReceiverTimeouts, limits)
		servers = append(servers, wh)
		noSystemd := false
		whFlags := &web.FlagConfig{WebListenAddresses: &[]string{f.webhookAddress}, WebSystemdSocket: &noSystemd, WebConfigFile: &f.webhookConfigFile}
		go func() {
			served <- fmt.Errorf("notification receiver: %w", web.Serve(e.ReceiverListener(ln, limits), wh, whFlags, logger.With("listener", "webhook")))
		}()
		if demo != nil {
			go demo.Notify(ctx, f.webhookAddress, logger)
		}
	}
	if f.alertmanagerAddress != "" {
		ln, err := net.Listen("tcp", f.alertmanagerAddress)
		if err != nil {
			logger.Error("Cannot listen for Alertmanager", "address", f.alertmanagerAddress, "err", err)
			return 1
		}
		defer ln.Close()
		am := e.Alertmanager(f.alertmanagerConfigFile)
		servers = append(servers, am)
		noSystemd := false
		amFlags := &web.FlagConfig{WebListenAddresses: &[]string{f.alertmanagerAddress}, WebSystemdSocket: &noSystemd, WebConfigFile: &f.alertmanagerConfigFile}
		go func() {
			served <- fmt.Errorf("receivers for Alertmanager: %w", web.Serve(ln, am, amFlags, logger.With("listener", "alertmanager")))
		}()
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

// reloadOnSIGHUP reloads at every SIGHUP until the returned function is
// called.
func reloadOnSIGHUP(logger *slog.Logger, e *server.Exporter) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if err := e.Reload(); err != nil {
				logger.Error("Reload on SIGHUP failed; keeping the previous configuration", "err", err)
			}
		}
	}()
	return func() { signal.Stop(hup); close(hup) }
}
