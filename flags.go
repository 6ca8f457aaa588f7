package main

import (
	"fmt"
	"io"
	"time"

	promslogflag "github.com/prometheus/common/promslog/flag"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
)

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
	messagesQueue     bool
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
	}
	return f, 0, false
}
