// Package waalerts sends Alertmanager's notifications as WhatsApp text
// messages, through instances the exporter watches: the first configured
// sender that works now and is not the instance an alert is about.
// Alertmanager cannot send WhatsApp itself; GREEN-API's recommendation
// asks for notAuthorized, blocked and yellowCard to reach the operator "by
// mail, Telegram or WhatsApp".
//
// Each notification (one Alertmanager group) becomes one text (Format) per
// configured recipient. A recipient's messages are rate-limited (limiter),
// and a notification it got already is not sent again. The answer tells
// Alertmanager whether to retry: 200 when every recipient got the text
// (or was over its limit, or had it already), 503 when a recipient could
// not be sent to, so that Alertmanager retries while its other receivers
// (mail, Telegram) fire anyway.
package waalerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/amwebhook"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/lograte"
)

const (
	// staleAfter is the age past which a sender's last state is requested
	// again before it sends: Prometheus scrapes every minute or so, so an
	// older state means nobody asked lately, and an instance may have
	// been logged out since. One state request per sender and
	// notification at most, within the provider's rate limit.
	staleAfter = 2 * time.Minute
	// checkTimeout bounds that request, so that a hanging first sender
	// leaves time for the second.
	checkTimeout = 10 * time.Second
	// sendTimeout bounds one send, its wait for the instance's turn
	// included (GREEN-API takes one message a second per instance): a
	// sender whose turn is further away than that is held at once
	// (collector.HeldError), and the next sender is tried.
	sendTimeout = 30 * time.Second
	// Lines about refused requests, which anyone who reaches the listener
	// can cause.
	refusalLogBurst  = 5
	refusalLogPeriod = time.Minute
)

// instances is what the sender asks of the collector; a fake in a few
// tests.
type instances interface {
	Status(name string) (collector.InstanceStatus, bool)
	Check(ctx context.Context, name string) (collector.InstanceStatus, error)
	SendText(ctx context.Context, name, to, text string) error
}

// Sender is Alertmanager's WhatsApp receiver.
type Sender struct {
	logger *slog.Logger
	inst   instances
	now    func() time.Time

	set      atomic.Pointer[settings]
	limiter  *limiter
	metrics  *metrics
	refusals *lograte.Limiter
	// limited bounds the lines about messages over a rate limit: a
	// flapping fleet sends many notifications.
	limited *lograte.Limiter

	// updateMu serialises Update; providers is each configured sender's
	// provider at the last one, to drop the series of senders gone.
	updateMu  sync.Mutex
	providers map[string]string
}

// settings are what one configuration says; a request uses the settings
// it started with, whatever a reload does meanwhile.
type settings struct {
	token      string
	enabled    bool
	senders    []string
	recipients []string
}

// New returns a sender with no configuration: Enabled is false until
// Update gives it a whatsapp_alerts section.
func New(logger *slog.Logger, c *collector.Collector) *Sender {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Sender{logger: logger, now: time.Now, limiter: newLimiter(), metrics: newMetrics(),
		refusals: lograte.New(refusalLogBurst, refusalLogPeriod), limited: lograte.New(refusalLogBurst, refusalLogPeriod),
		providers: map[string]string{}}
	if c != nil {
		s.inst = c
	}
	s.set.Store(&settings{})
	return s
}

// Update takes a newly loaded configuration. Requests under way finish
// with the settings they started with; the rate limits of the recipients
// kept carry over.
func (s *Sender) Update(cfg *config.Config) {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	set := &settings{token: cfg.Alertmanager.Token()}
	if w := cfg.WhatsAppAlerts; w != nil {
		set.enabled = true
		set.senders = append([]string(nil), w.Senders...)
		set.recipients = append([]string(nil), w.Recipients...)
		s.limiter.update(set.recipients, w.RateLimit.Messages, time.Duration(w.RateLimit.Per))
	} else {
		s.limiter.update(nil, 0, 0)
	}
	s.set.Store(set)

	// Series of the senders configured, at zero from the start, so that
	// an increase shows; those of senders removed (or moved to another
	// provider) go.
	providers := map[string]string{}
	for _, name := range set.senders {
		if st, ok := s.status(name); ok {
			providers[name] = st.Provider
		}
	}
	for name, p := range s.providers {
		if q, ok := providers[name]; !ok || q != p {
			for _, v := range []*prometheus.CounterVec{s.metrics.messages, s.metrics.failures, s.metrics.skips} {
				v.DeletePartialMatch(prometheus.Labels{"sender": name})
			}
		}
	}
	s.providers = providers
	if set.enabled {
		for name, p := range providers {
			s.metrics.messages.WithLabelValues(p, name, ResultSent)
		}
		for _, r := range []string{ResultFailed, ResultNoSender, ResultRateLimited, ResultDuplicate} {
			s.metrics.messages.WithLabelValues("", "", r)
		}
	}
}

// Enabled says whether the configuration has a whatsapp_alerts section.
func (s *Sender) Enabled() bool { return s.set.Load().enabled }

// Collector is the sender's metrics.
func (s *Sender) Collector() prometheus.Collector { return s.metrics }

// Handler is Alertmanager's webhook receiver: POST a webhook message
// (version 4), with the bearer token of the configuration's alertmanager
// section when it has one.
func (s *Sender) Handler() http.Handler { return http.HandlerFunc(s.serve) }

func (s *Sender) status(name string) (collector.InstanceStatus, bool) {
	if s.inst == nil {
		return collector.InstanceStatus{}, false
	}
	return s.inst.Status(name)
}

func (s *Sender) serve(w http.ResponseWriter, r *http.Request) {
	set := s.set.Load()
	msg, err := amwebhook.Read(r, set.token)
	if err != nil {
		if errors.Is(err, amwebhook.ErrMethod) {
			w.Header().Set("Allow", http.MethodPost)
		}
		// Read's errors never quote the request (beyond 32 bytes of a
		// version or status that is not one): safe to log and answer.
		if ok, held := s.refusals.Allow(s.now()); ok {
			s.logger.Warn("Refused an Alertmanager request to the WhatsApp receiver", "status", amwebhook.Status(err), "err", err, "held_back", held)
		}
		http.Error(w, err.Error(), amwebhook.Status(err))
		return
	}
	if !set.enabled || s.inst == nil {
		// Nothing to retry: the configuration has no whatsapp_alerts
		// section, and Alertmanager's other receivers are not held.
		if ok, held := s.refusals.Allow(s.now()); ok {
			s.logger.Warn("Alertmanager sent a notification to the WhatsApp receiver, but the configuration has no whatsapp_alerts section", "held_back", held)
		}
		http.Error(w, "whatsapp_alerts is not configured", http.StatusNotFound)
		return
	}
	rep := s.deliver(r.Context(), set, msg)
	if rep.undelivered > 0 {
		http.Error(w, fmt.Sprintf("no sender could send to %d of %d recipients; retry", rep.undelivered, len(set.recipients)), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "sent to %d of %d recipients (%d rate-limited, %d had it already)\n", rep.sent, len(set.recipients), rep.rateLimited, rep.duplicates)
}

// report counts what became of a notification's messages.
type report struct {
	sent, rateLimited, duplicates, undelivered int
}

// deliver sends the notification to every recipient in turn (they are
// few, and a GREEN-API sender takes one request a second anyway).
func (s *Sender) deliver(ctx context.Context, set *settings, msg *amwebhook.Message) report {
	now := s.now()
	text := Format(msg, now)
	d := digest(msg)
	p := &picker{s: s, about: aboutOf(msg), cands: make([]candidate, len(set.senders))}
	for k, name := range set.senders {
		p.cands[k].name = name
	}
	var rep report
	for k, to := range set.recipients {
		// Logs name a recipient by its place in the configuration, never
		// by its number.
		log := s.logger.With("recipient", k, "status", msg.Status, "alertname", field(msg.CommonLabels["alertname"], maxAlertName), "alerts", len(msg.Alerts))
		v, id := s.limiter.reserve(to, d, now)
		switch v {
		case duplicate:
			rep.duplicates++
			s.metrics.messages.WithLabelValues("", "", ResultDuplicate).Inc()
			log.Info("Not sending a WhatsApp alert: the recipient got this notification already")
			continue
		case rateLimited:
			rep.rateLimited++
			s.metrics.messages.WithLabelValues("", "", ResultRateLimited).Inc()
			if ok, held := s.limited.Allow(now); ok {
				log.Warn("Not sending a WhatsApp alert: the recipient is over its rate limit", "held_back", held)
			}
			continue
		}
		c, result := p.send(ctx, to, text)
		if result == ResultSent {
			rep.sent++
			s.metrics.messages.WithLabelValues(c.provider, c.name, ResultSent).Inc()
			log.Info("Sent a WhatsApp alert", "sender", c.name, "sender_provider", c.provider)
			continue
		}
		s.limiter.release(to, id)
		rep.undelivered++
		s.metrics.messages.WithLabelValues("", "", result).Inc()
		log.Error("Could not send a WhatsApp alert; Alertmanager will retry", "result", result)
	}
	return rep
}

// instanceRef is an instance an alert is about.
type instanceRef struct{ name, provider string }

// aboutOf lists the instances the alerts of msg are about, by their labels
// name and provider.
func aboutOf(msg *amwebhook.Message) []instanceRef {
	var refs []instanceRef
	seen := map[instanceRef]bool{}
	for _, a := range msg.Alerts {
		r := instanceRef{a.Labels["name"], a.Labels["provider"]}
		if r.name != "" && !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	return refs
}

// candidate is a configured sender as one notification sees it.
type candidate struct {
	name, provider string
	// decided says whether usable is known; broken says a send failed
	// in a way that another recipient would meet too.
	decided, usable, broken bool
}

// picker chooses the senders of one notification: each configured sender
// is looked at once, when the ones before it could not send.
type picker struct {
	s     *Sender
	about []instanceRef
	cands []candidate
}

// send sends text to to through the first usable sender, trying the next
// on a failure. It returns the sender that sent it and ResultSent, or
// ResultFailed or ResultNoSender.
func (p *picker) send(ctx context.Context, to, text string) (*candidate, string) {
	tried := false
	for k := range p.cands {
		c := &p.cands[k]
		if !p.decide(ctx, c) || c.broken {
			continue
		}
		tried = true
		sctx, cancel := context.WithTimeout(ctx, sendTimeout)
		err := p.s.inst.SendText(sctx, c.name, to, text)
		cancel()
		if err == nil {
			return c, ResultSent
		}
		reason := failureReason(ctx, err)
		p.s.metrics.failures.WithLabelValues(c.provider, c.name, reason).Inc()
		// Only the reason: a provider's answer may quote the number.
		p.s.logger.Warn("A WhatsApp alert sender failed; trying the next", "sender", c.name, "sender_provider", c.provider, "reason", reason)
		// A refusal of this number (not on WhatsApp, a plan's
		// correspondents used up) may not concern the next recipient;
		// anything else would fail for them too.
		if reason != collector.ReasonClientError && reason != collector.ReasonQuotaExceeded {
			c.broken = true
		}
		if ctx.Err() != nil {
			break
		}
	}
	if tried {
		return nil, ResultFailed
	}
	return nil, ResultNoSender
}

// decide says whether c may send this notification, looking once.
func (p *picker) decide(ctx context.Context, c *candidate) bool {
	if c.decided {
		return c.usable
	}
	c.decided = true
	skip := func(reason string) bool {
		p.s.metrics.skips.WithLabelValues(c.provider, c.name, reason).Inc()
		p.s.logger.Debug("Passing over a WhatsApp alert sender", "sender", c.name, "sender_provider", c.provider, "reason", reason)
		return false
	}
	st, ok := p.s.inst.Status(c.name)
	if !ok {
		return skip(SkipUnknown)
	}
	c.provider = st.Provider
	if !st.CanSend {
		return skip(SkipCannotSend)
	}
	for _, r := range p.about {
		if r.name == st.Name && (r.provider == "" || r.provider == st.Provider) {
			return skip(SkipAboutItself)
		}
	}
	if now := p.s.now(); st.Checked.IsZero() || now.Sub(st.Checked) > staleAfter {
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		fresh, err := p.s.inst.Check(cctx, c.name)
		cancel()
		switch {
		case errors.Is(err, collector.ErrUnknownInstance):
			return skip(SkipUnknown) // removed by a reload meanwhile
		case err != nil && !fresh.Checked.After(st.Checked):
			return skip(SkipCheckFailed)
		}
		st = fresh
	}
	if !st.Up || !st.Working {
		return skip(SkipNotWorking)
	}
	c.usable = true
	return true
}

// failureReason is the bounded reason of a failed send.
func failureReason(ctx context.Context, err error) string {
	var ce *collector.Error
	switch {
	case errors.As(err, &ce):
		return ce.Reason
	case errors.Is(err, collector.ErrHeld):
		return "held"
	case errors.Is(err, collector.ErrNotSupported):
		return "not_supported"
	case errors.Is(err, collector.ErrUnknownInstance):
		return "unknown_instance"
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return collector.ReasonTimeout
	}
	return "other"
}
