// Package lograte bounds the log lines of one kind that a stream of
// events from outside can write.
package lograte

import (
	"sync"
	"time"
)

// Limiter bounds the lines of one kind that a stream of events can write:
// events that come from outside (notifications for unknown instances,
// rows of a listing) must not fill a disk or drown the other lines. At
// most burst lines are written per period; the next line written says how
// many were held back in between.
type Limiter struct {
	period time.Duration
	burst  int

	mu    sync.Mutex
	start time.Time // of the current period
	used  int       // lines written in it
	held  int       // lines held back since the last one written
}

// New lets burst lines through per period.
func New(burst int, period time.Duration) *Limiter {
	return &Limiter{period: period, burst: burst}
}

// Allow reports whether a line may be written at now and, when it may,
// how many lines were held back since the last one written: the caller
// adds that count to the line (as "held_back") when it is not 0.
func (r *Limiter) Allow(now time.Time) (ok bool, held int) {
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
