package remediation

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/amwebhook"
)

// Outcomes of an alert at the remediation receiver (the outcome label of
// whatsapp_alertmanager_alerts_total{receiver="remediation"}).
const (
	AlertDecided         = "ok"               // decided: whatsapp_remediation_actions_total says how
	AlertResolved        = "resolved"         // counted, not acted on
	AlertNoAction        = "no_action"        // no remediation="reboot" label
	AlertUnknownInstance = "unknown_instance" // no watched instance has its provider and name
	AlertOtherReplica    = "other_replica"    // another replica owns the instance
	AlertTruncated       = "truncated"        // left out of the message by max_alerts
)

// LabelRemediation is the alert label that asks for an action: the alert
// rules set remediation="reboot" on the alerts whose runbook is a reboot.
const LabelRemediation = "remediation"

// webhookWorkers bounds the alerts of one message decided at once: each
// may wait for a state request and a reboot (a second apart, the
// provider's rate limit).
const webhookWorkers = 16

// serveWebhook is Alertmanager's remediation receiver. It answers 200 once
// every alert is decided, held and failed ones included: the guards have
// decided, and a 5xx would only make Alertmanager send it again. It
// answers 4xx for what cannot succeed, and 503 only when the exporter
// cannot decide now (it is shutting down), for Alertmanager to retry.
func (e *Engine) serveWebhook(w http.ResponseWriter, r *http.Request) {
	if e.isClosed() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	var token string
	if p := e.token.Load(); p != nil {
		token = *p
	}
	m, err := amwebhook.Read(r, token)
	if err != nil {
		// amwebhook's errors never quote the request.
		http.Error(w, err.Error(), amwebhook.Status(err))
		return
	}
	ctx := r.Context()
	amwebhook.CountAlerts(ctx, AlertTruncated, int(min(m.TruncatedAlerts, 1<<31)))
	tally := map[string]int{}
	var reqs []Request
	for _, a := range m.Alerts {
		switch {
		case a.Status != amwebhook.Firing:
			tally[AlertResolved]++
		case a.Labels[LabelRemediation] != ActionReboot:
			tally[AlertNoAction]++
		default:
			// Only the provider and the name are taken from the
			// alert: the instance's configuration says where to call.
			reqs = append(reqs, Request{Provider: a.Labels["provider"], Name: a.Labels["name"], Action: ActionReboot, Source: SourceAlertmanager})
		}
	}
	results := make([]Result, len(reqs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(webhookWorkers, len(reqs)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(reqs); i = int(next.Add(1) - 1) {
				results[i] = e.Act(ctx, reqs[i])
			}
		})
	}
	wg.Wait()
	for i, res := range results {
		switch res.Reason {
		case ReasonUnknownInstance:
			tally[AlertUnknownInstance]++
			e.logUnknown(reqs[i])
		case ReasonOtherReplica:
			tally[AlertOtherReplica]++
		default:
			tally[AlertDecided]++
			tally[res.Result]++
		}
	}
	for _, o := range []string{AlertResolved, AlertNoAction, AlertUnknownInstance, AlertOtherReplica, AlertDecided} {
		amwebhook.CountAlerts(ctx, o, tally[o])
	}
	if e.isClosed() {
		// Calls were cut short: another replica, or this one after its
		// restart, is to decide again.
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(tally)
}

// logUnknown says, at a bounded rate, that an alert named no watched
// instance: a rule or a relabelling is wrong, or someone forges alerts.
// Only the labels that name the instance are written, cut short; never
// the annotations (they may hold people's words).
func (e *Engine) logUnknown(r Request) {
	ok, held := e.unknownLog.Allow(e.clock.now())
	if !ok {
		return
	}
	args := []any{"provider", config.QuoteName(r.Provider), "name", config.QuoteName(r.Name)}
	if held > 0 {
		args = append(args, "held_back", held)
	}
	e.logger.Warn("Remediation: an alert names no instance of that provider and name; nothing done", args...)
}
