package collector

import (
	"container/heap"
	"sync"
	"time"
)

// The scheduler runs the calls. A scrape asks it for every instance whose
// result is no longer fresh; it queues each at most once, however many
// scrapes ask, and a fixed pool of workers (the concurrency) calls them,
// the instance checked longest ago first. A call's timeout starts when a
// worker takes it, never while it waits, and no scrape's deadline cuts
// it: a scrape that cannot wait any longer reports the last results it
// has, and the calls go on for the next one. So every instance is
// refreshed within the time the workers need to go once through the
// fleet, whatever the scrapes' deadlines.
type scheduler struct {
	mu       sync.Mutex
	ready    sync.Cond
	queue    memoryQueue
	inFlight int
	closed   bool
}

func newScheduler(workers int, call func(*memory)) *scheduler {
	s := &scheduler{}
	s.ready.L = &s.mu
	for range workers {
		go s.work(call)
	}
	return s
}

// request queues m unless its result is fresh or it is queued or in
// flight already. It returns a channel closed when m's call ends, or nil
// when m needs no call.
func (s *scheduler) request(m *memory, now time.Time) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.done != nil {
		return m.done
	}
	updated, fresh := m.freshness(now)
	if fresh || s.closed {
		return nil
	}
	m.done = make(chan struct{})
	m.priority = updated
	heap.Push(&s.queue, m)
	s.ready.Signal()
	return m.done
}

// pending reports whether m is queued or in flight.
func (s *scheduler) pending(m *memory) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return m.done != nil
}

// counts are the calls queued and in flight.
func (s *scheduler) counts() (queued, inFlight int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue), s.inFlight
}

func (s *scheduler) work(call func(*memory)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for len(s.queue) == 0 && !s.closed {
			s.ready.Wait()
		}
		if s.closed {
			return
		}
		m := heap.Pop(&s.queue).(*memory)
		s.inFlight++
		s.mu.Unlock()
		call(m)
		s.mu.Lock()
		s.inFlight--
		close(m.done)
		m.done = nil
	}
}

// close stops the workers once their calls end; queued calls are dropped.
func (s *scheduler) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, m := range s.queue {
		close(m.done)
		m.done = nil
	}
	s.queue = nil
	s.ready.Broadcast()
}

// memoryQueue is a heap of memories, the one updated longest ago (or
// never) first.
type memoryQueue []*memory

func (q memoryQueue) Len() int           { return len(q) }
func (q memoryQueue) Less(i, j int) bool { return q[i].priority.Before(q[j].priority) }
func (q memoryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *memoryQueue) Push(x any)        { *q = append(*q, x.(*memory)) }
func (q *memoryQueue) Pop() any {
	old := *q
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return m
}
