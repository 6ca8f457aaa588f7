package collector

import "time"

// metaBudget: CONTRACT STUB, to be replaced (helper A).
type metaBudget struct{}

// spare reports whether one more call now (one a notification asks for)
// stays within the budget.
func (b *metaBudget) spare(now time.Time) bool { return true }
