package collector

import (
	"context"
	"errors"
	"time"
)

// Outgoing queues: an instance can report a working state while its
// messages pile up unsent, which only its queue of outgoing messages
// shows. A provider that can read it gives its clients a MessagesQueue
// method; the instances that watch it make that call right after their
// state call, on the same worker, so that both share the schedule and the
// concurrency. A Retry-After on the state call holds both; one on the
// queue call holds the queue call alone (see limit in memory.go).

// queueReader is a client that reads its instance's outgoing queue.
type queueReader interface {
	// MessagesQueue returns how many messages the queue holds,
	// errQueueWithheld, or an *Error.
	MessagesQueue(ctx context.Context) (int, error)
}

// errQueueWithheld is an answer without a count that is no failure:
// GREEN-API answers HTTP 400 "instance is starting or not authorized" to
// its methods other than getStateInstance while the instance is so (and
// "Instance account is expired" while its plan is not paid).
var errQueueWithheld = errors.New("no count while the instance is starting, not authorized or expired")

// queueSpec is an instance configuration that may watch the queue.
type queueSpec interface {
	// watchesQueue says whether the instance watches its queue, def
	// when its configuration does not say.
	watchesQueue(def bool) bool
}

// queueResult is what a scrape exposes of the queue.
type queueResult struct {
	messages int
	known    bool // false: no queue series
}

// queueMemory is what an instance remembers of its queue.
type queueMemory struct {
	// last is the last count read, kept through failures for the answers
	// that withhold the count; counted is set once a count was read.
	last    int
	counted bool
	// shown says whether scrapes expose last: after a count, or an answer
	// that withholds it, and not after a failed or skipped call.
	shown bool
	// failing is set while the queue calls fail, to log the transitions.
	failing bool
}

func (q *queueMemory) result() queueResult {
	return queueResult{messages: q.last, known: q.shown && q.counted}
}

// queueAnswer is how a queue call ended.
type queueAnswer int

const (
	queueSkipped  queueAnswer = iota // not made: the state call failed
	queueCounted                     // a count
	queueWithheld                    // errQueueWithheld
	queueFailed                      // an *Error
)

// readQueue makes the queue call of t after a state call that ended as
// stateErr, and records it in m. A state call that failed leaves the
// queue unknown without a call: the provider is not answering, or asked
// to wait. Within the Retry-After of an earlier queue call, the queue
// stays as that call left it, without a call.
func readQueue(t *target, m *memory, stateErr error) {
	if stateErr != nil {
		m.recordQueue(t, queueSkipped, 0, nil)
		return
	}
	if m.limit.queueHeld(time.Now()) {
		// Still the answer of the call that asked to wait: the queue
		// hidden, failing, logged once.
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	n, err := t.queue.MessagesQueue(ctx)
	switch {
	case err == nil:
		m.recordQueue(t, queueCounted, n, nil)
	case errors.Is(err, errQueueWithheld):
		m.recordQueue(t, queueWithheld, 0, nil)
	default:
		var e *Error
		if !errors.As(err, &e) {
			e = newError(ReasonBadResponse, "%s", err)
		}
		m.recordQueue(t, queueFailed, 0, e)
	}
}

// recordQueue stores how a queue call ended (n the count, e the failure),
// holds the instance's queue calls for a Retry-After, and logs when the
// queue calls start or stop failing.
func (m *memory) recordQueue(src logSource, a queueAnswer, n int, e *Error) {
	m.mu.Lock()
	q := &m.queue
	wasFailing := q.failing
	q.failing = a == queueFailed
	switch a {
	case queueCounted:
		q.last, q.counted, q.shown = n, true, true
	case queueWithheld:
		// The instance sends nothing while it is starting or not
		// authorized, when messages pile up: the queue holds at least
		// the last count read (but for messages past the 24 hours the
		// provider keeps them), and hiding it would hide the queue
		// exactly when it matters. Before any count, there is nothing to
		// show.
		q.shown = true
	default:
		q.shown = false
	}
	m.mu.Unlock()
	if e != nil && e.RetryAfter > 0 {
		m.limit.holdQueue(time.Now().Add(e.RetryAfter))
	}
	switch {
	case a == queueFailed && !wasFailing:
		src.log().Warn("Queue request failing; the state is not affected", "reason", e.Reason, "err", e.Error())
	case wasFailing && (a == queueCounted || a == queueWithheld):
		src.log().Info("Queue request recovered")
	}
}
