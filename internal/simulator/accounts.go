package simulator

import (
	"net/http"
	"sync/atomic"
	"time"
)

// An account lists instances: a GREEN-API partner account, a Wachat
// account, an Evolution API server. Its key is what authenticates the
// listing (partner token, API key, global key); its members are
// instances of the simulator, whose state and secret they carry.

// Member is an instance in an account's listing.
type Member struct {
	// ID is the simulator instance's id (GREEN-API's idInstance, the
	// instance name for Wachat and Evolution API).
	ID string
	// Name is a GREEN-API instance's name in the partner's listing.
	Name string
	// Deleted and Expired are GREEN-API's flags.
	Deleted, Expired bool
	// Product is a GREEN-API instance's typeInstance: whatsapp when
	// empty, or telegram, v3 (MAX), instagram.
	Product string
}

// AccountStep is one part of an account's schedule: whom it lists, or the
// failure its listing shows instead.
type AccountStep struct {
	Members    []Member
	Fault      Fault
	RetryAfter time.Duration
	Latency    time.Duration
	For        time.Duration
}

type account struct {
	schedule []AccountStep
	calls    atomic.Int64
}

// SetAccount gives an account a fixed listing.
func (s *Simulator) SetAccount(provider, key string, members ...Member) {
	s.ScheduleAccount(provider, key, AccountStep{Members: members})
}

// ScheduleAccount gives an account a cycle of listings, counted from the
// simulator's start.
func (s *Simulator) ScheduleAccount(provider, key string, steps ...AccountStep) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := provider + "/" + key
	a, ok := s.accounts[k]
	if !ok {
		a = &account{}
		s.accounts[k] = a
	}
	a.schedule = steps
}

// ListCalls is how many listing requests an account has received.
func (s *Simulator) ListCalls(provider, key string) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if a, ok := s.accounts[provider+"/"+key]; ok {
		return a.calls.Load()
	}
	return 0
}

// hasAccount reports whether key is an account's key.
func (s *Simulator) hasAccount(provider, key string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.accounts[provider+"/"+key]
	return ok
}

// listed is a member with its instance's secret and current behaviour.
type listed struct {
	Member
	Behaviour
	Secret string
}

// listing counts a listing call and returns the account's current step
// with its members' states and secrets; ok is false for an unknown key.
func (s *Simulator) listing(provider, key string) (step AccountStep, members []listed, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.accounts[provider+"/"+key]
	if !ok {
		return AccountStep{}, nil, false
	}
	a.calls.Add(1)
	step = currentAccountStep(a.schedule, time.Since(s.start))
	for _, m := range step.Members {
		l := listed{Member: m}
		if in, ok := s.instances[provider+"/"+m.ID]; ok {
			l.Secret = in.secret
			l.Behaviour = current(in.schedule, s.elapsed(in))
		}
		members = append(members, l)
	}
	return step, members, true
}

func currentAccountStep(steps []AccountStep, elapsed time.Duration) AccountStep {
	var cycle time.Duration
	for _, st := range steps {
		cycle += st.For
	}
	if len(steps) == 1 || cycle <= 0 {
		return steps[0]
	}
	at := elapsed % cycle
	for _, st := range steps {
		if at < st.For {
			return st
		}
		at -= st.For
	}
	return steps[len(steps)-1]
}

// listingFault writes the failure of a listing step and reports whether
// it did: the common faults, as for a state request.
func listingFault(w http.ResponseWriter, r *http.Request, step AccountStep) bool {
	return fault(w, r, Behaviour{Fault: step.Fault, RetryAfter: step.RetryAfter})
}
