// Command loadtest is a fault and load suite for whatsapp_exporter. It builds
// the exporter, runs it as a subprocess against GREEN-API instances
// simulated in this process (internal/simulator), drives one scenario and
// prints what it measured.
//
//	go run ./scripts/loadtest -scenario concurrent -instances 200 -duration 10s
//
// It never judges numbers. It exits 1 when it finds a crash or hard error
// (the exporter died or did not stop cleanly, a token leaked into its log or
// into /metrics, an unexpected HTTP 5xx; in meta-fleet, a WABA's requests
// beyond its refresh_interval or its budget) and 2 when it cannot run.
// Linux only: it reads the exporter's /proc entries.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	exitFound     = 1 // a crash, a leak or an unexpected 5xx
	exitCannotRun = 2
)

type scenario struct {
	about string
	// defaults are the flag values of this scenario, applied to the flags
	// not given on the command line.
	defaults map[string]string
	run      func(*env) error
}

var scenarios = map[string]scenario{
	"concurrent": {
		"-scrapers clients scrape /metrics in a loop; many instances behind a slow upstream",
		map[string]string{"instances": "1000", "latency": "2s", "duration": "40s", "scrapers": "50"},
		runConcurrent,
	},
	"flap": {
		"one scrape a second; the upstream is down for the middle third",
		map[string]string{"instances": "200", "latency": "100ms", "duration": "30s", "interval": "1s"},
		runFlap,
	},
	"reload-storm": {
		"config rewrites with SIGHUP or POST /-/reload at -rate per second while -scrapers scrape every second, -notify notifications a second arrive and a partner account lists -listed instances",
		map[string]string{"instances": "1000", "latency": "100ms", "duration": "20s", "scrapers": "4", "rate": "50", "notify": "200", "listed": "100"},
		runReloadStorm,
	},
	"hostile-listing": {
		"an Evolution API server lists tiny junk rows up to 64 MiB, max_instances instances, one more, and names of 1 MiB; a fresh exporter per case, -duration each: peak RSS, fds, /metrics reachable",
		map[string]string{"duration": "20s", "interval": "1s"},
		runHostileListing,
	},
	"soak": {
		"one scrape every -interval for a long time; RSS, goroutines and fds every 10 s",
		map[string]string{"instances": "200", "latency": "100ms", "duration": "5m", "interval": "1s"},
		runSoak,
	},
	"sizing": {
		"a fresh exporter per size in -sizes; -scrapes scrapes each, -interval apart (0: back to back)",
		map[string]string{"latency": "50ms", "interval": "15s"},
		runSizing,
	},
	"notification-flood": {
		"attackers on 50 addresses flood the notification receiver (unknown Evolution instances with 65 KB names, wrong tokens, bodies that never end); a genuine sender and a scraper measure what still gets through",
		map[string]string{"instances": "100", "latency": "50ms", "duration": "30s"},
		runNotificationFlood,
	},
	"connection-flood": {
		"5 000 connections held idle and 200 slow senders on the notification receiver, file descriptors limited to 1 024; a genuine sender and a scraper measure what still gets through",
		map[string]string{"instances": "100", "latency": "50ms", "duration": "30s"},
		runConnectionFlood,
	},
	"remediation-storm": {
		"every instance stuck in starting; 5 senders ask Alertmanager's remediation receiver to reboot them all, once a second each, while 20 attackers send forged tokens, unknown names and endless bodies: the brake holds, no instance is rebooted twice",
		map[string]string{"instances": "1000", "latency": "50ms", "duration": "20s"},
		runRemediationStorm,
	},
	"meta-fleet": {
		"-wabas WABAs of Meta's Cloud API with -numbers numbers each, one account per WABA, a scrape every -interval: requests per WABA against refresh_interval (-refresh) and the budget; then budgets of 200 an hour that others have partly spent: the exporter slows down and stays within them",
		map[string]string{"wabas": "100", "numbers": "100", "latency": "500ms", "duration": "3m", "interval": "15s"},
		runMetaFleet,
	},
	"compare": {
		"CPU per provider call against json_exporter's CPU per probe (-json_exporter), same provider, same run",
		map[string]string{"instances": "2000", "latency": "50ms", "scrapes": "3"},
		runCompare,
	},
}

// settings are the flags.
type settings struct {
	scenario     string
	instances    int
	latency      time.Duration
	duration     time.Duration
	scrapers     int
	timeout      time.Duration
	interval     time.Duration
	rate         float64
	notify       float64
	listed       int
	wabas        int
	numbers      int
	refresh      time.Duration
	sizes        string
	scrapes      int
	exporterArgs string
	jsonExporter string
	keep         bool
	race         bool
	lockstep     bool
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	var s settings
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.StringVar(&s.scenario, "scenario", "", "scenario to run: "+strings.Join(scenarioNames(), ", "))
	fs.IntVar(&s.instances, "instances", 200, "GREEN-API instances to simulate")
	fs.DurationVar(&s.latency, "latency", 100*time.Millisecond, "upstream latency of every call")
	fs.DurationVar(&s.duration, "duration", 30*time.Second, "how long the scenario runs")
	fs.IntVar(&s.scrapers, "scrapers", 1, "concurrent scrapers")
	fs.DurationVar(&s.timeout, "timeout", 10*time.Second, "scrape timeout announced in X-Prometheus-Scrape-Timeout-Seconds")
	fs.DurationVar(&s.interval, "interval", time.Second, "time between scrapes (flap, soak, sizing, meta-fleet)")
	fs.Float64Var(&s.rate, "rate", 50, "reloads per second (reload-storm)")
	fs.Float64Var(&s.notify, "notify", 200, "webhook notifications per second; 0 for none (reload-storm)")
	fs.IntVar(&s.listed, "listed", 100, "instances a GREEN-API partner account lists; 0 for no account (reload-storm)")
	fs.IntVar(&s.wabas, "wabas", 100, "WABAs of Meta's Cloud API, one account each (meta-fleet)")
	fs.IntVar(&s.numbers, "numbers", 100, "phone numbers per WABA (meta-fleet)")
	fs.DurationVar(&s.refresh, "refresh", 0, "refresh_interval of the WABAs, at least 20s; 0 leaves the exporter's default, 1m (meta-fleet)")
	fs.StringVar(&s.sizes, "sizes", "100,1000,10000", "instance counts (sizing)")
	fs.StringVar(&s.jsonExporter, "json_exporter", "", "path of a json_exporter binary (compare)")
	fs.IntVar(&s.scrapes, "scrapes", 4, "scrapes per size (sizing)")
	fs.StringVar(&s.exporterArgs, "exporter.args", "", "extra exporter flags, split at spaces (no quoting)")
	fs.BoolVar(&s.keep, "keep", false, "keep the temporary directory (binary, configs, exporter logs)")
	fs.BoolVar(&s.lockstep, "lockstep", false, "concurrent: start every scraper at once rather than spread over one -timeout")
	fs.BoolVar(&s.race, "race", false, "build the exporter with the race detector; a reported race is a hard error")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: go run ./scripts/loadtest -scenario NAME [flags]\n\nScenarios and the defaults they set:\n")
		for _, name := range scenarioNames() {
			sc := scenarios[name]
			var d []string
			for _, k := range slices.Sorted(maps.Keys(sc.defaults)) {
				d = append(d, "-"+k+" "+sc.defaults[k])
			}
			fmt.Fprintf(out, "  %-13s %s\n  %13s (%s)\n", name, sc.about, "", strings.Join(d, " "))
		}
		fmt.Fprintf(out, "\nFlags (a scenario's defaults replace the ones shown):\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitCannotRun
	}
	sc, ok := scenarios[s.scenario]
	if !ok || fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "loadtest: -scenario must be one of %s\n", strings.Join(scenarioNames(), ", "))
		return exitCannotRun
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, v := range sc.defaults {
		if !given[name] {
			if err := fs.Set(name, v); err != nil {
				panic(err)
			}
		}
	}

	if s.instances < 1 || s.scrapers < 1 || s.scrapes < 1 || s.rate <= 0 || s.timeout <= 0 || s.duration <= 0 || s.interval < 0 || s.notify < 0 || s.listed < 0 {
		fmt.Fprintln(os.Stderr, "loadtest: -instances, -scrapers, -scrapes, -rate, -timeout and -duration must be positive, -interval, -notify and -listed not negative")
		return exitCannotRun
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e, err := newEnv(ctx, s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		return exitCannotRun
	}
	defer e.cleanup()
	if err := sc.run(e); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest: cannot run:", err)
		return exitCannotRun
	}
	code := e.verdict()
	if code == 0 && ctx.Err() != nil {
		fmt.Println("interrupted: the report above is partial")
		return exitCannotRun
	}
	return code
}

func scenarioNames() []string { return slices.Sorted(maps.Keys(scenarios)) }

// env is one run: the built binary, the temporary directory and the hard
// errors found so far.
type env struct {
	settings
	ctx context.Context
	dir string // temporary directory
	bin string // the exporter binary

	mu       sync.Mutex
	failures map[string]int // message -> occurrences
	order    []string
}

func newEnv(ctx context.Context, s settings) (*env, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "whatsapp-loadtest-")
	if err != nil {
		return nil, err
	}
	e := &env{settings: s, ctx: ctx, dir: dir, bin: filepath.Join(dir, "whatsapp_exporter"), failures: map[string]int{}}
	args := []string{"build"}
	if s.race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "-o", e.bin, ".")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		e.cleanup()
		return nil, fmt.Errorf("go build in %s: %v\n%s", root, err, out)
	}
	return e, nil
}

// moduleRoot walks up from the working directory to the directory of go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in the working directory or above it")
		}
		dir = parent
	}
}

func (e *env) cleanup() {
	if e.keep {
		fmt.Printf("\nkept %s\n", e.dir)
		return
	}
	_ = os.RemoveAll(e.dir)
}

// fail records a hard error; identical messages are counted, not repeated.
func (e *env) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failures[msg] == 0 {
		e.order = append(e.order, msg)
	}
	e.failures[msg]++
}

func (e *env) verdict() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Println()
	if len(e.order) == 0 {
		fmt.Println("RESULT: no crash, leak or unexpected 5xx found")
		return 0
	}
	for _, msg := range e.order {
		if n := e.failures[msg]; n > 1 {
			msg = fmt.Sprintf("%s (%d times)", msg, n)
		}
		fmt.Println("FAIL:", msg)
	}
	return exitFound
}

// sleepUntil waits for t; false when the run is interrupted.
func (e *env) sleepUntil(t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-e.ctx.Done():
		return false
	}
}

// header prints what a scenario is about to do.
func (e *env) header(format string, args ...any) {
	fmt.Printf("== %s: %s\n", e.scenario, fmt.Sprintf(format, args...))
	if e.exporterArgs != "" {
		fmt.Printf("   exporter args: %s\n", e.exporterArgs)
	}
	fmt.Printf("   (the harness's simulator and scrapers share the machine's %s with the exporter)\n", cpus())
}
