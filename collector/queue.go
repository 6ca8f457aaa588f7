package collector

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Outgoing queues: an instance can report a working state while its
// messages pile up unsent, which only its queue of outgoing messages
// shows. A provider that can read it gives its clients a MessagesQueue
// method; the instances that watch it make that call right after their
// state call, on the same worker, so that both share the schedule, the
// concurrency and any Retry-After.

// queueReader is a client that reads its instance's outgoing queue.
type queueReader interface {
	// MessagesQueue returns how many messages the queue holds, at most
	// the provider's cap, or an *Error.
	MessagesQueue(ctx context.Context) (int, error)
}

// queueSpec is an instance configuration that may watch the queue.
type queueSpec interface {
	// watchesQueue says whether the instance watches its queue, def
	// when its configuration does not say.
	watchesQueue(def bool) bool
}

// queueResult is the last queue call's result.
type queueResult struct {
	messages int
	known    bool // false before the first call that worked, and after a failed one
}

// readQueue makes the queue call of t after a state call that ended as
// stateErr, and records it in m. A state call that failed leaves the
// queue unknown without a call: the provider is not answering, or asked
// to wait.
func readQueue(t *target, m *memory, stateErr error) {
	if stateErr != nil {
		m.recordQueue(t.logger, queueResult{}, nil, 0)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	n, err := t.queue.MessagesQueue(ctx)
	var e *Error
	if err != nil && !errors.As(err, &e) {
		e = newError(ReasonBadResponse, "%s", err)
	}
	if e != nil {
		m.recordQueue(t.logger, queueResult{}, e, e.RetryAfter)
		return
	}
	m.recordQueue(t.logger, queueResult{messages: n, known: true}, nil, 0)
}

// recordQueue stores a queue result, holds the instance's calls for a
// Retry-After, and logs when the queue calls start or stop failing.
func (m *memory) recordQueue(logger *slog.Logger, r queueResult, e *Error, retryAfter time.Duration) {
	m.mu.Lock()
	prevFailing := m.queueFailing
	m.queue, m.queueFailing = r, e != nil
	if until := time.Now().Add(retryAfter); retryAfter > 0 {
		m.heldTill = maxTime(m.heldTill, until)
		m.freshTill = maxTime(m.freshTill, until)
	}
	m.mu.Unlock()
	switch {
	case e != nil && !prevFailing:
		logger.Warn("Queue request failing; the state is not affected", "reason", e.Reason, "err", e.Error())
	case e == nil && prevFailing && r.known:
		logger.Info("Queue request recovered")
	}
}
