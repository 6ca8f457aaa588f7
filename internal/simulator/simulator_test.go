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
	seen := map[string]map[string]bool{}
	faults := map[Fault]bool{}
	for _, d := range demoInstances {
		if seen[d.provider] == nil {
			seen[d.provider] = map[string]bool{}
		}
		for at := time.Duration(0); at < window; at += time.Second {
			b := current(d.steps, at)
			if b.Fault != FaultNone {
				faults[b.Fault] = true
			} else {
				seen[d.provider][b.State] = true
			}
		}
	}
	for provider, states := range map[string][]string{
		GreenAPI:  {"authorized", "notAuthorized", "blocked", "sleepMode", "starting", "yellowCard"},
		Wachat:    {"open", "connecting", "close"},
		Evolution: {"open", "connecting", "close", NotLoaded},
	} {
		for _, s := range states {
			if !seen[provider][s] {
				t.Errorf("%s state %s does not occur within %v", provider, s, window)
			}
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
