package simulator

import (
	"slices"
	"testing"
	"time"
)

func TestScheduleCycles(t *testing.T) {
	steps := []Step{
		{Behaviour: Behaviour{State: "a"}, For: 10 * time.Second},
		{Behaviour: Behaviour{State: "b"}, For: 5 * time.Second},
	}
	for _, tc := range []struct {
		at   time.Duration
		want string
	}{{0, "a"}, {9 * time.Second, "a"}, {10 * time.Second, "b"}, {14 * time.Second, "b"}, {15 * time.Second, "a"}, {31 * time.Second, "a"}, {40 * time.Second, "b"}} {
		if got := current(steps, tc.at).State; got != tc.want {
			t.Errorf("at %v: %q, want %q", tc.at, got, tc.want)
		}
	}
}

// The demo must show a newcomer every GREEN-API state within a few minutes.
func TestDemoShowsEveryStateWithinMinutes(t *testing.T) {
	const window = 4 * time.Minute
	seen := map[string]bool{}
	faults := map[Fault]bool{}
	for _, d := range demoInstances {
		for at := time.Duration(0); at < window; at += time.Second {
			b := current(d.steps, at)
			if b.Fault != FaultNone {
				faults[b.Fault] = true
			} else {
				seen[b.State] = true
			}
		}
	}
	for _, s := range []string{"authorized", "notAuthorized", "blocked", "sleepMode", "starting", "yellowCard"} {
		if !seen[s] {
			t.Errorf("state %s does not occur within %v", s, window)
		}
	}
	if len(faults) < 2 {
		t.Errorf("the demo shows %d kinds of failure, want a few", len(faults))
	}
	names := []string{}
	for _, d := range demoInstances {
		names = append(names, d.name)
	}
	slices.Sort(names)
	if len(slices.Compact(names)) != len(demoInstances) {
		t.Errorf("duplicate demo names: %v", names)
	}
}
