package waalerts

import (
	"crypto/sha256"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/amwebhook"
)

// What the limiter keeps of each recipient's recent notifications, to send
// one notification once: Alertmanager resends a whole notification after
// a 5xx (one recipient without a sender makes it retry for all), and two
// Alertmanagers of a cluster may both send it when their gossip is late.
const (
	dedupeFor = 15 * time.Minute
	maxRecent = 32
)

// verdict is what the limiter says of a message to one recipient.
type verdict int

const (
	allowed verdict = iota
	duplicate
	rateLimited
)

// limiter bounds the messages of each configured recipient to limit per
// per, over a sliding window: the recipient never gets more than limit
// messages in any span of per, however a flapping fleet fires. WhatsApp
// flags a number that sends much to people (a yellowCard of our own
// making). Its memory is bounded by the configuration: one entry per
// recipient, holding at most limit times and maxRecent digests.
type limiter struct {
	mu    sync.Mutex
	limit int
	per   time.Duration
	by    map[string]*recipient
	seq   uint64
}

type recipient struct {
	sent   []entry // counted against the limit, oldest first
	recent []entry // notifications sent, oldest first
}

type entry struct {
	id     uint64
	at     time.Time
	digest [sha256.Size]byte
}

func newLimiter() *limiter { return &limiter{by: map[string]*recipient{}} }

// update sets the recipients and the limit; a recipient kept keeps what it
// was sent.
func (l *limiter) update(recipients []string, limit int, per time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.limit, l.per = limit, per
	keep := make(map[string]*recipient, len(recipients))
	for _, to := range recipients {
		if r, ok := l.by[to]; ok {
			keep[to] = r
		} else {
			keep[to] = &recipient{}
		}
	}
	l.by = keep
}

// reserve decides on a message of the notification digest to to at now
// and, when it is allowed, counts it; release(id) takes it back when it
// could not be sent. A recipient that a reload removed meanwhile is
// allowed and not recorded.
func (l *limiter) reserve(to string, digest [sha256.Size]byte, now time.Time) (verdict, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.by[to]
	if !ok {
		return allowed, 0
	}
	r.recent = slices.DeleteFunc(r.recent, func(e entry) bool { return !now.Before(e.at.Add(dedupeFor)) || now.Before(e.at) })
	for _, e := range r.recent {
		if e.digest == digest {
			return duplicate, 0
		}
	}
	// A clock set back keeps what it sent until per has passed again.
	r.sent = slices.DeleteFunc(r.sent, func(e entry) bool { return !now.Before(e.at.Add(l.per)) })
	if len(r.sent) >= l.limit {
		return rateLimited, 0
	}
	l.seq++
	r.sent = append(r.sent, entry{id: l.seq, at: now})
	if len(r.recent) == maxRecent {
		r.recent = slices.Delete(r.recent, 0, 1)
	}
	r.recent = append(r.recent, entry{id: l.seq, at: now, digest: digest})
	return allowed, l.seq
}

// release takes back the message reserved as id.
func (l *limiter) release(to string, id uint64) {
	if id == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.by[to]; ok {
		match := func(e entry) bool { return e.id == id }
		r.sent = slices.DeleteFunc(r.sent, match)
		r.recent = slices.DeleteFunc(r.recent, match)
	}
}

// digest identifies a notification's content: its group, status and
// alerts (each by fingerprint, status and start, which together name one
// episode of an alert). Times that Alertmanager moves at each resend
// (endsAt of a firing alert) are left out.
func digest(m *amwebhook.Message) [sha256.Size]byte {
	keys := make([]string, len(m.Alerts))
	for k, a := range m.Alerts {
		fp := a.Fingerprint
		if fp == "" { // not from Alertmanager; the labels stand in
			names := make([]string, 0, len(a.Labels))
			for n := range a.Labels {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fp += n + "\x00" + a.Labels[n] + "\x00"
			}
		}
		keys[k] = fp + "\x01" + a.Status + "\x01" + a.StartsAt.UTC().Format(time.RFC3339Nano)
	}
	sort.Strings(keys)
	h := sha256.New()
	h.Write([]byte(m.GroupKey + "\x02" + m.Status + "\x02"))
	for _, k := range keys {
		h.Write([]byte(k + "\x02"))
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}
