package lograte

import (
	"testing"
	"time"
)

func TestLogRate(t *testing.T) {
	t.Parallel()
	r := New(2, time.Minute)
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	type step struct {
		at   time.Duration
		ok   bool
		held int
	}
	for i, s := range []step{
		{0, true, 0}, {time.Second, true, 0}, // the burst
		{2 * time.Second, false, 0}, {3 * time.Second, false, 0}, {59 * time.Second, false, 0}, // held back
		{61 * time.Second, true, 3}, // a new period says how many were held
		{62 * time.Second, true, 0},
		{63 * time.Second, false, 0},
		{30 * time.Second, true, 1}, // a clock that went back starts a period
	} {
		ok, held := r.Allow(t0.Add(s.at))
		if ok != s.ok || held != s.held {
			t.Errorf("step %d at %v: allow = %v, %d; want %v, %d", i, s.at, ok, held, s.ok, s.held)
		}
	}
}
