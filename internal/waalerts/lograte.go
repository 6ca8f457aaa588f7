package waalerts

import (
	"sync"
	"time"
)

// logRate (a copy of the collector's) bounds the lines of one kind that a
// stream of events can write: requests that anyone who reaches the
// listener can send (a wrong token, a malformed body) must not fill a disk
// or drown the other lines. At
// most burst lines are written per period; the next line written says how
// many were held back in between.
type logRate struct {
	period time.Duration
	burst  int

	mu    sync.Mutex
	start time.Time // of the current period
	used  int       // lines written in it
	held  int       // lines held back since the last one written
}

// newLogRate lets burst lines through per period.
func newLogRate(burst int, period time.Duration) *logRate {
	return &logRate{period: period, burst: burst}
}

// allow reports whether a line may be written at now and, when it may,
// how many lines were held back since the last one written: the caller
// adds that count to the line (as "held_back") when it is not 0.
func (r *logRate) allow(now time.Time) (ok bool, held int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.start) >= r.period || now.Before(r.start) {
		r.start, r.used = now, 0
	}
	if r.used >= r.burst {
		r.held++
		return false, 0
	}
	r.used++
	held, r.held = r.held, 0
	return true, held
}
