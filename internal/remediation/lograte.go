package remediation

import (
	"sync"
	"time"
)

// logRate bounds the lines of one kind that a stream of events can write
// (a copy of collector's): alerts naming unknown instances come from
// outside and must not fill a disk. At most burst lines are written per
// period; the next line written says how many were held back in between.
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
// how many lines were held back since the last one written.
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
