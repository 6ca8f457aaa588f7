package collector

import (
	"sync"
	"sync/atomic"
	"time"
)

// memory is what the exporter remembers of one upstream call between
// scrapes: the last result, how long that result stands (MinInterval or
// a Retry-After) and its place in the scheduler. A memory belongs to a
// key (see instanceKey): the upstream instance and the credential its
// calls carry, not the exporter's settings for it, so that a reload
// changing a timeout neither calls at once nor forgets its result, while
// a result obtained with one credential is never shown for an instance
// configured with another. Nothing in a memory points at a target or an
// account: the call it stands for is looked up by key in the current
// snapshot when it runs.
type memory struct {
	key string
	// limit is shared by every memory of the same upstream instance: a
	// Retry-After holds them all, since the provider's limit is per
	// instance.
	limit *limit

	mu        sync.Mutex
	last      outcome
	updated   time.Time // end of the last call or notification; zero before the first
	since     time.Time // when last's state and up began
	freshTill time.Time
	// called is when the last call started: a notification makes the
	// result due for a call, but not sooner than callSpacing after it.
	called time.Time
	// disconnect is the named reason of the instance's last
	// disconnection, while it has not been seen working since.
	disconnect string
	// asOf is the time last's state was true at: the start of the call
	// that brought it, or the notification's time. notified is set while
	// it came from a notification, sent at notifiedAt by the provider's
	// clock (see notify in webhook.go), and received at notifiedRecv by
	// the exporter's.
	asOf         time.Time
	notified     bool
	notifiedAt   time.Time
	notifiedRecv time.Time
	// queue is what the instance remembers of its outgoing queue
	// (queue.go).
	queue queueMemory
	// detail is the text of the last failed call, secrets hidden, for
	// the status page (actions.go); "" after a call that worked.
	detail string

	// Owned by the scheduler, under its lock.
	done     chan struct{} // closed when the queued or running call ends
	priority time.Time     // updated, when queued
}

// limit is what an upstream instance's rate limits allow: no call before
// the end of its last Retry-After. GREEN-API limits each method of an
// instance on its own (its "Rate limiter" page: getStateInstance and
// getMessagesCount one request a second each), so a Retry-After on the
// queue call holds only the queue call (queueTill): the state call, on
// which whatsapp_up depends, goes on. One on the state call holds both,
// as the queue call is made only after a state call that worked.
type limit struct {
	heldTill  atomic.Int64 // Unix nanoseconds; 0 for none
	queueTill atomic.Int64 // the same for the queue call
	// actions space the instance's reboots and messages (actions.go).
	actions actionLimits
}

func (l *limit) till() time.Time {
	if n := l.heldTill.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// hold extends the limit to until.
func (l *limit) hold(until time.Time) { extend(&l.heldTill, until) }

// holdQueue extends the limit of the queue call to until.
func (l *limit) holdQueue(until time.Time) { extend(&l.queueTill, until) }

// queueHeld says whether the queue call may not be made at now.
func (l *limit) queueHeld(now time.Time) bool {
	return now.UnixNano() < l.queueTill.Load()
}

// extend moves the time in till, Unix nanoseconds, to until if that is
// later.
func extend(till *atomic.Int64, until time.Time) {
	n := until.UnixNano()
	for {
		old := till.Load()
		if old >= n || till.CompareAndSwap(old, n) {
			return
		}
	}
}

func newMemory(key string, l *limit) *memory {
	if l == nil {
		l = &limit{}
	}
	return &memory{key: key, limit: l}
}

type outcome struct {
	state  string // a state of the provider, or StateUnknown
	up     bool
	reason string // why !up
	// working is set when state is the provider's working state, which
	// ends the last disconnection; disconnect names that disconnection
	// when the answer tells it.
	working    bool
	disconnect string
	// health is what the answer told beyond the state (health.go); nil
	// for providers that tell nothing more, and when the call failed.
	health *Health
}

// freshness returns when the memory was last updated and whether its
// result still stands at now, Retry-After of its instance included.
func (m *memory) freshness(now time.Time) (updated time.Time, fresh bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.updated, now.Before(maxTime(m.freshTill, m.limit.till()))
}

// nextRefresh is when a refresh every interval is next due: interval
// after the last call ended, or when its result stops standing if that is
// later (a Retry-After).
func (m *memory) nextRefresh(every time.Duration) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maxTime(maxTime(m.updated.Add(every), m.freshTill), m.limit.till())
}

// result is what a scrape exposes of a memory.
type result struct {
	o outcome
	// updated is when o came (zero before the first call ended), since
	// since when its state and up have been so.
	updated, since time.Time
	// notified is set when the state came from a notification.
	notified bool
	queue    queueResult
	// disconnect is the reason of the last disconnection, "" when
	// unknown or when the instance has been working since.
	disconnect string
}

func (m *memory) result() result {
	m.mu.Lock()
	defer m.mu.Unlock()
	return result{o: m.last, updated: m.updated, since: m.since, notified: m.notified, queue: m.queue.result(), disconnect: m.disconnect}
}

// noteDisconnect takes what an outcome says of the last disconnection.
// Under m.mu.
func (m *memory) noteDisconnect(o outcome) {
	switch {
	case o.working:
		m.disconnect = ""
	case o.disconnect != "":
		m.disconnect = o.disconnect
	}
}

// disconnected records the reason of the last disconnection, which a
// listing gives apart from the state, unless the instance is working.
func (m *memory) disconnected(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.last.working {
		m.disconnect = reason
	}
}

// hold keeps m's instance from being called before until (a
// Retry-After).
func (m *memory) hold(until time.Time) {
	m.limit.hold(until)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// record stores the result of a call that started at started and ended
// at now, and logs transitions, so that a lasting failure is logged once
// rather than at every scrape; failing is the message of a failure. A
// notification sent after the call started is newer than its result:
// the call then gives only whatsapp_up and the schedule.
func (m *memory) record(src logSource, o outcome, detail string, started, now time.Time, hold time.Duration, failing string) {
	m.mu.Lock()
	m.freshTill = now.Add(hold)
	m.called = started
	if m.notified && started.Before(m.asOf) {
		// whatsapp_up is still the call's.
		if m.last.up != o.up {
			m.since = now
		}
		m.last.up, m.last.reason, m.detail = o.up, o.reason, detail
		m.mu.Unlock()
		return
	}
	prev, had := m.last, !m.updated.IsZero()
	if !had || prev.state != o.state || prev.up != o.up {
		m.since = now
	}
	m.last, m.updated, m.asOf, m.notified, m.detail = o, now, started, false, detail
	m.noteDisconnect(o)
	m.mu.Unlock()

	switch {
	case had && prev.state == o.state && prev.up == o.up && prev.reason == o.reason:
	case !o.up:
		src.log().Warn(failing, "reason", o.reason, "err", detail)
	case had && !prev.up:
		src.log().Info("Recovered", "state", o.state)
	case prev.state != o.state:
		src.log().Info("State changed", "state", o.state)
	}
}
