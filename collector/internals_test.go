package collector

import (
	"fmt"
	"time"
)

// The few places where tests look inside the collector, in one file.

// targetsOf is what c watches now.
func targetsOf(c *Collector) []*target { return c.current().targets }

// targetNamed is the instance of that name c watches now, or nil.
func targetNamed(c *Collector, name string) *target { return c.current().byName[name] }

// memOf is the memory of the instance of that name.
func memOf(c *Collector, name string) *memory { return targetNamed(c, name).mem }

// accountsOf are c's accounts now.
func accountsOf(c *Collector) []*account { return c.current().accounts }

// listingDone reports whether a's first listing ended and none is queued
// or under way.
func listingDone(c *Collector, a *account) bool {
	m := a.state.mem
	m.mu.Lock()
	listed := !m.updated.IsZero()
	m.mu.Unlock()
	return listed && !c.sched.pending(m)
}

// requestListing asks for a's listing, as its refresh does.
func requestListing(c *Collector, a *account) { c.sched.request(a.state.mem, time.Now()) }

// listNow makes a's listing on the caller's goroutine, as a worker does.
func listNow(c *Collector, a *account) { c.list(a) }

// replanNow has the planner apply the accounts' listings.
func replanNow(c *Collector) { c.replan() }

// callsIdle reports whether no call is queued or under way.
func callsIdle(c *Collector) bool { q, f := c.sched.counts(); return q+f == 0 }

// exposedScrape is a scrape of everything c watches, without calls.
func exposedScrape(c *Collector, notifications bool) *Scrape {
	return &Scrape{targets: targetsOf(c), notifications: notifications}
}

// installTargets has c watch targets built by hand, each with a new
// memory of its own.
func installTargets(c *Collector, targets ...*target) {
	snap := emptySnapshot()
	for i, t := range targets {
		t.mem = newMemory(fmt.Sprint("test\x00", i), nil)
		snap.targets = append(snap.targets, t)
		snap.byName[t.name] = t
		snap.entries[t.mem.key] = entry{mem: t.mem, work: t}
	}
	c.snap.Store(snap)
}

// mustLookup is the registered provider of that name, or nil.
func mustLookup(name string) *Provider {
	p, _ := lookup(name)
	return p
}
