package collector

import (
	"container/heap"
	"context"
	"errors"
	"strings"
	"sync"
	"time"
)

// This file is what the rest of the exporter may ask of an instance beyond
// its metrics: its status (for the status page and the remediation's
// guards), a state request now (the status page's Check now, the
// remediation's re-check), a reboot and a text message. Each provider
// offers the last two or not (Rebooter, Sender).

// Rebooter is a Client whose provider can reboot an instance.
type Rebooter interface {
	// Reboot asks the provider to reboot the instance; an *Error when it
	// did not.
	Reboot(ctx context.Context) error
}

// Sender is a Client whose provider can send a text message.
type Sender interface {
	// SendText sends text to the WhatsApp number to (digits only, with
	// the country code); an *Error when the provider did not take it.
	SendText(ctx context.Context, to, text string) error
}

// ErrNotSupported is returned for an action the instance's provider does
// not offer.
var ErrNotSupported = errors.New("the provider offers no such method")

// ErrHeld is wrapped by a HeldError: the instance's rate limit does not
// allow a call now.
var ErrHeld = errors.New("the provider's rate limit holds calls to this instance")

// HeldError says until when an instance's calls are held (a Retry-After,
// or the one request a second GREEN-API allows).
type HeldError struct{ Until time.Time }

func (e *HeldError) Error() string {
	return ErrHeld.Error() + " until " + e.Until.UTC().Format(time.RFC3339)
}

func (e *HeldError) Unwrap() error { return ErrHeld }

// InstanceStatus is what the exporter knows of one instance now.
type InstanceStatus struct {
	Provider, Name string
	// Account is the account that found it; empty for a configured one.
	Account string
	// State is the provider's state, or StateUnknown; Working says it is
	// the provider's working state.
	State   string
	Working bool
	// Up says the last state request worked; Reason says why not.
	Up     bool
	Reason string
	// Detail is the last failure's text, secrets hidden.
	Detail string
	// Since is when State and Up last changed; Checked when the last
	// call or notification ended (zero before the first). Notified says
	// State came from a notification.
	Since, Checked time.Time
	Notified       bool
	// Queue is the outgoing queue, when QueueKnown.
	Queue      int
	QueueKnown bool
	// CanReboot and CanSend say whether the provider offers them.
	CanReboot, CanSend bool
}

// Status is what the exporter knows of the instance named name, without a
// call.
func (c *Collector) Status(name string) (InstanceStatus, bool) {
	t, ok := c.current().byName[name]
	if !ok {
		return InstanceStatus{}, false
	}
	return t.status(), true
}

// Statuses is Status for every instance watched, configured ones first,
// in the order of Instances.
func (c *Collector) Statuses() []InstanceStatus {
	targets := c.current().targets
	out := make([]InstanceStatus, 0, len(targets))
	for _, t := range targets {
		out = append(out, t.status())
	}
	return out
}

// status reads t's memory. An instance whose state comes from its
// account's listing has it in its own memory too (recordListed), so the
// memory read is always t's.
func (t *target) status() InstanceStatus {
	m := t.mem
	m.mu.Lock()
	s := InstanceStatus{
		Provider: t.provider.Name, Name: t.name,
		State: m.last.state, Working: m.last.working, Up: m.last.up, Reason: m.last.reason,
		Detail: m.detail, Since: m.since, Checked: m.updated, Notified: m.notified,
	}
	q := m.queue.result()
	m.mu.Unlock()
	if s.Checked.IsZero() {
		s.State = StateUnknown
	}
	if t.foundBy != nil {
		s.Account = t.foundBy.name
	}
	if t.queue != nil && q.known {
		s.Queue, s.QueueKnown = q.messages, true
	}
	_, s.CanReboot = t.client.(Rebooter)
	_, s.CanSend = t.client.(Sender)
	return s
}

// errClosed is Check's error once the collector is closed.
var errClosed = errors.New("the collector is closed")

// Check requests the instance's state now, whatever MinInterval says, and
// returns the status it left. It waits for the instance's one request a
// second, and returns a *HeldError when a Retry-After holds its calls
// longer than ctx allows; ErrUnknownInstance for an unknown name. A call
// already under way for the instance is shared, not repeated.
//
// The call goes through the scheduler, ahead of the queued ones but
// within the concurrency, and is recorded as a scrape's would be: the
// metrics show its result. For an instance whose state comes from its
// account's listing, the listing is its state request and is made again.
func (c *Collector) Check(ctx context.Context, name string) (InstanceStatus, error) {
	for {
		t, ok := c.current().byName[name]
		if !ok {
			return InstanceStatus{}, ErrUnknownInstance
		}
		m := t.mem
		if t.listed {
			m = t.foundBy.state.mem // as refresh does
		}
		done, due := c.sched.force(m, time.Now())
		if done == nil {
			if due.IsZero() {
				return t.status(), errClosed
			}
			// Not yet: wait, then look again, since the instance (or a
			// reload) may have changed meanwhile.
			if err := waitUntil(ctx, due); err != nil {
				return t.status(), err
			}
			continue
		}
		select {
		case <-done:
		case <-ctx.Done():
			return t.status(), ctx.Err()
		}
		if s, ok := c.Status(name); ok {
			return s, nil
		}
		return InstanceStatus{}, ErrUnknownInstance
	}
}

// force queues m's call ahead of every other, whatever its freshness,
// unless it is queued or in flight already (then its channel is shared).
// When the instance's rate limit does not allow a call at now, it queues
// nothing and returns when it will: callSpacing after the last call
// started, or the end of a Retry-After. Both nil and zero once closed.
func (s *scheduler) force(m *memory, now time.Time) (<-chan struct{}, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.done != nil {
		return m.done, time.Time{}
	}
	if s.closed {
		return nil, time.Time{}
	}
	m.mu.Lock()
	due := maxTime(m.called.Add(callSpacing), m.limit.till())
	m.mu.Unlock()
	if now.Before(due) {
		return nil, due
	}
	m.done = make(chan struct{})
	m.priority = time.Time{} // before every instance ever called
	heap.Push(&s.queue, m)
	s.ready.Signal()
	return m.done, time.Time{}
}

// waitUntil waits until due, or returns a *HeldError at once when ctx
// ends before it, and ctx's error when ctx ends while waiting anyway.
func waitUntil(ctx context.Context, due time.Time) error {
	d := time.Until(due)
	if d <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && dl.Before(due) {
		return &HeldError{Until: due}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Actions, each spaced on its own (actionLimits).
const (
	actionReboot = iota
	actionSend
	numActions
)

// actionLimits space an upstream instance's actions: GREEN-API limits
// each method of an instance on its own, one request a second (its "Rate
// limiter" page, https://green-api.com/en/docs/api/ratelimiter/, as
// limit in memory.go says of the state and queue calls), so a reboot
// waits for the last reboot, a message for the last message, and neither
// for the state requests. A Retry-After on the state request holds them
// too (the instance's limit): Evolution API and Wachat, or a proxy in
// front of any provider, do not say which method their 429 is about. A
// Retry-After on an action holds that action alone.
//
// The calls of one kind run one at a time per instance, each a second
// after the end of the last: the provider counts arrivals, and a call
// that started a second after another may arrive less than a second
// after it when the first was slow to arrive.
type actionLimits struct {
	mu sync.Mutex
	// next is when each action may next be called: callSpacing after
	// the end of the last, or the end of its Retry-After.
	next [numActions]time.Time
	// turn holds a token while a call of the action is waiting for its
	// time or under way; made when first needed, since most instances
	// never act.
	turn [numActions]chan struct{}
}

// take waits for action a's turn and time, and returns the function that
// ends the turn with the call's end and Retry-After. When ctx ends before
// the action's time, it returns a *HeldError and takes nothing; when it
// ends while another call of the action is under way, a *HeldError until
// a second from then at the earliest.
func (l *limit) take(ctx context.Context, a int) (func(end time.Time, retryAfter time.Duration), error) {
	al := &l.actions
	al.mu.Lock()
	if al.turn[a] == nil {
		al.turn[a] = make(chan struct{}, 1)
	}
	turn := al.turn[a]
	al.mu.Unlock()
	select {
	case turn <- struct{}{}:
	case <-ctx.Done():
		if _, ok := ctx.Deadline(); !ok {
			return nil, ctx.Err() // cancelled, not out of time
		}
		return nil, &HeldError{Until: time.Now().Add(callSpacing)}
	}
	al.mu.Lock()
	due := maxTime(al.next[a], l.till())
	al.mu.Unlock()
	if err := waitUntil(ctx, due); err != nil {
		<-turn
		return nil, err
	}
	return func(end time.Time, retryAfter time.Duration) {
		al.mu.Lock()
		al.next[a] = end.Add(max(callSpacing, retryAfter))
		al.mu.Unlock()
		<-turn
	}, nil
}

// Reboot asks the instance's provider to reboot it, under the same rate
// limit as its state requests (a *HeldError when held). ErrNotSupported
// when the provider has no reboot; ErrUnknownInstance for an unknown name;
// an *Error when the provider refused or failed.
func (c *Collector) Reboot(ctx context.Context, name string) error {
	t, ok := c.current().byName[name]
	if !ok {
		return ErrUnknownInstance
	}
	r, ok := t.client.(Rebooter)
	if !ok {
		return ErrNotSupported
	}
	return c.act(ctx, t, actionReboot, r.Reboot)
}

// maxRecipientDigits is the longest phone number, country code included
// (ITU-T E.164: 15 digits); minRecipientDigits the shortest worth trying.
const (
	minRecipientDigits = 6
	maxRecipientDigits = 15
)

// SendText sends text to the number to through the instance named name,
// with the same errors as Reboot. to is digits only, with the country
// code, after an optional +; a bad number or an empty text is an *Error of reason
// client_error, made without a call. No error quotes the number or the
// text: they are people's.
func (c *Collector) SendText(ctx context.Context, name, to, text string) error {
	t, ok := c.current().byName[name]
	if !ok {
		return ErrUnknownInstance
	}
	s, ok := t.client.(Sender)
	if !ok {
		return ErrNotSupported
	}
	// A leading + is how numbers are often written (the whatsapp_alerts
	// section allows it); the providers take digits alone.
	to = strings.TrimPrefix(to, "+")
	if len(to) < minRecipientDigits || len(to) > maxRecipientDigits || strings.Trim(to, "0123456789") != "" {
		return newError(ReasonClientError, "the recipient must be a phone number of %d to %d digits, country code first, nothing else", minRecipientDigits, maxRecipientDigits)
	}
	if strings.TrimSpace(text) == "" {
		return newError(ReasonClientError, "the message is empty")
	}
	return c.act(ctx, t, actionSend, func(ctx context.Context) error { return s.SendText(ctx, to, text) })
}

// act makes action a's call when the instance's limit allows it, bounded
// by the instance's timeout and by ctx, and holds the action for a
// Retry-After in the answer.
func (c *Collector) act(ctx context.Context, t *target, a int, call func(context.Context) error) error {
	done, err := t.mem.limit.take(ctx, a)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	err = call(cctx)
	var e *Error
	switch {
	case err == nil:
		done(time.Now(), 0)
		return nil
	case errors.As(err, &e):
		done(time.Now(), e.RetryAfter)
		return e
	}
	done(time.Now(), 0)
	// Clients return *Errors, redacted by API; anything else is
	// redacted here all the same.
	return newError(ReasonBadResponse, "%s", shorten(c.current().redactor().redact(err.Error()), maxErrorRunes))
}
