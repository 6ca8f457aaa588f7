// Package remediation carries out what a provider recommends doing to an
// instance when an alert fires: GREEN-API's reboot of an instance stuck in
// "starting", then a state request again after a wait. It acts for
// Alertmanager (the webhook receiver in alertmanager.go) and for the
// status page's Reboot button, through the same guards: the configuration
// must allow the action, at most one action per instance per window, the
// provider's rate limit, a fleet brake, and a dry run.
package remediation

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Actions.
const ActionReboot = "reboot"

// Results of a request (the result label).
const (
	ResultDone   = "done"
	ResultDryRun = "dry_run"
	ResultHeld   = "held"
	ResultFailed = "failed"
)

// Statuses of an instance's last action (the status label of
// whatsapp_remediation_status).
const (
	StatusWaiting     = "waiting"      // done; the re-check is due
	StatusRecovered   = "recovered"    // the re-check found another state
	StatusUnchanged   = "unchanged"    // the re-check found the same state
	StatusCheckFailed = "check_failed" // the re-check's state request failed
	StatusFailed      = "failed"       // the action failed
	StatusDryRun      = "dry_run"      // decided, not made
)

// Request asks for an action on one instance.
type Request struct {
	Provider, Name string
	Action         string
	// Source says who asks: "alertmanager" or "status_page".
	Source string
}

// Result is what became of a Request.
type Result struct {
	Result string // one of the Result* constants
	// Reason is why it was held or failed; empty otherwise.
	Reason string
	// State is the state the instance was in when it was decided.
	State string
}

// Record is an instance's last action.
type Record struct {
	Action, Result, Reason, Status string
	// State is the state the action was for; At when it was made,
	// Rechecked when its re-check ended (zero before).
	State         string
	At, Rechecked time.Time
}

// Engine decides and makes the actions.
type Engine struct {
	logger *slog.Logger
	c      *collector.Collector
}

// New returns an engine with no configuration: Enabled is false until
// Update gives it a remediation section.
func New(logger *slog.Logger, c *collector.Collector) *Engine {
	return &Engine{logger: logger, c: c}
}

// Update takes a newly loaded configuration.
func (e *Engine) Update(cfg *config.Config) {}

// Enabled says whether the configuration has a remediation section.
func (e *Engine) Enabled() bool { return false }

// Act decides on r and, when the guards allow, makes the action.
func (e *Engine) Act(ctx context.Context, r Request) Result {
	return Result{Result: ResultHeld, Reason: "not_enabled"}
}

// Last is the last action on the instance, if any.
func (e *Engine) Last(provider, name string) (Record, bool) { return Record{}, false }

// Handler is Alertmanager's webhook receiver.
func (e *Engine) Handler() http.Handler { return http.NotFoundHandler() }

// Collector is the engine's metrics.
func (e *Engine) Collector() prometheus.Collector { return prometheus.NewRegistry() }

// Close stops the re-checks under way.
func (e *Engine) Close() {}
