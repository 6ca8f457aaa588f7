package collector

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The actions' rules, on the fake clock of a synctest bubble and fake
// clients: the times asserted are exact, since no real time passes.

// fakeActor is a client whose calls are counted; a call blocks while
// gate is set and open, and ends with the error of its kind.
type fakeActor struct {
	state                 string
	stateErr, rebootErr   atomic.Pointer[Error]
	states, reboots, sent atomic.Int64
	gate                  chan struct{}
	rebootTook            time.Duration // rebootTimes are the reboots' ends
	mu                    sync.Mutex
	rebootTimes           []time.Time
}

func (f *fakeActor) State(ctx context.Context) (string, error) {
	f.states.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	if e := f.stateErr.Load(); e != nil {
		return "", e
	}
	return f.state, nil
}

func (f *fakeActor) Reboot(ctx context.Context) error {
	f.reboots.Add(1)
	time.Sleep(f.rebootTook)
	f.mu.Lock()
	f.rebootTimes = append(f.rebootTimes, time.Now())
	f.mu.Unlock()
	if e := f.rebootErr.Load(); e != nil {
		return e
	}
	return nil
}

func (f *fakeActor) SendText(ctx context.Context, to, text string) error {
	f.sent.Add(1)
	return nil
}

// stateOnly is a client without actions.
type stateOnly struct{}

func (stateOnly) State(context.Context) (string, error) { return "open", nil }

// actorEnv is a collector watching one GREEN-API instance "shop" with a
// fakeActor, results fresh for an hour.
func actorEnv(t *testing.T, f *fakeActor) (*Collector, *target) {
	c := New(discardLogger(), Options{Concurrency: 2, MinInterval: time.Hour})
	t.Cleanup(c.Close)
	tg := newLoneTarget(providerOf("greenapi"), "shop", 5*time.Second, f)
	refreshTargets(context.Background(), c, tg)
	return c, tg
}

func shortCtx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	_ = cancel // ends with the bubble
	return ctx
}

// TestStatusReadsMemory: Status and Statuses say what the last call left,
// with no call; CanReboot and CanSend follow the client's methods.
func TestStatusReadsMemory(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := New(discardLogger(), Options{Concurrency: 2, MinInterval: time.Hour})
		defer c.Close()
		f := &fakeActor{state: "yellowCard"}
		shop := newLoneTarget(providerOf("greenapi"), "shop", time.Second, f)
		evo := newLoneTarget(providerOf("evolution"), "evo", time.Second, stateOnly{})
		start := time.Now()
		refreshTargets(context.Background(), c, shop, evo)
		calls := f.states.Load()
		s, ok := c.Status("shop")
		if !ok || s.Provider != "greenapi" || s.Name != "shop" || s.State != "yellowCard" || s.Working || !s.Up ||
			!s.Checked.Equal(start) || !s.Since.Equal(start) || !s.CanReboot || !s.CanSend {
			t.Errorf("Status(shop) = %+v, %v", s, ok)
		}
		f.stateErr.Store(newError(ReasonServerError, "HTTP 500: boom"))
		expireResult(t, c, "shop")
		refreshTargets(context.Background(), c, shop, evo)
		if s, _ := c.Status("shop"); s.Up || s.Reason != ReasonServerError || s.Detail != "server_error: HTTP 500: boom" || s.State != StateUnknown {
			t.Errorf("after a failure, Status(shop) = %+v", s)
		}
		all := c.Statuses()
		if len(all) != 2 || all[0].Name != "shop" || all[1].Name != "evo" || all[1].CanReboot || all[1].CanSend || all[1].State != "open" {
			t.Errorf("Statuses() = %+v", all)
		}
		if _, ok := c.Status("nope"); ok {
			t.Error("Status of an unknown name is found")
		}
		if n := f.states.Load(); n != calls+1 {
			t.Errorf("%d state calls, want %d: Status must not call", n, calls+1)
		}
	})
}

// TestCheckSpacing: Check calls although the result is fresh, but not
// sooner than a second after the last call started: it waits when its
// context allows, else says until when it is held.
func TestCheckSpacing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := &fakeActor{state: "starting"}
		t0 := time.Now()
		c, _ := actorEnv(t, f)
		f.state = "authorized"
		_, err := c.Check(shortCtx(500*time.Millisecond), "shop")
		var held *HeldError
		if !errors.As(err, &held) || !errors.Is(err, ErrHeld) || !held.Until.Equal(t0.Add(time.Second)) {
			t.Fatalf("Check within the second: %v, want held until %v", err, t0.Add(time.Second))
		}
		s, err := c.Check(context.Background(), "shop")
		if err != nil || s.State != "authorized" || !s.Working {
			t.Fatalf("Check = %+v, %v", s, err)
		}
		if got := time.Since(t0); got != time.Second {
			t.Errorf("Check called after %v, want 1s", got)
		}
		if n := f.states.Load(); n != 2 {
			t.Errorf("%d state calls, want 2", n)
		}
		if _, err := c.Check(context.Background(), "nope"); !errors.Is(err, ErrUnknownInstance) {
			t.Errorf("Check(nope) = %v, want ErrUnknownInstance", err)
		}
	})
}

// TestCheckRetryAfter: a Retry-After holds Check until its end.
func TestCheckRetryAfter(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := &fakeActor{state: "authorized"}
		e := newError(ReasonRateLimited, "HTTP 429")
		e.RetryAfter = time.Minute
		f.stateErr.Store(e)
		t0 := time.Now()
		c, _ := actorEnv(t, f)
		if s, _ := c.Status("shop"); s.Up || s.Reason != ReasonRateLimited {
			t.Fatalf("Status = %+v", s)
		}
		_, err := c.Check(shortCtx(10*time.Second), "shop")
		var held *HeldError
		if !errors.As(err, &held) || !held.Until.Equal(t0.Add(time.Minute)) {
			t.Fatalf("Check within Retry-After: %v, want held until %v", err, t0.Add(time.Minute))
		}
		f.stateErr.Store(nil)
		if s, err := c.Check(context.Background(), "shop"); err != nil || !s.Up {
			t.Fatalf("Check = %+v, %v", s, err)
		}
		if got := time.Since(t0); got != time.Minute {
			t.Errorf("Check called after %v, want 1m", got)
		}
	})
}

// TestCheckSharesCallInFlight: two Checks during one call make no second
// call, and both see its result.
func TestCheckSharesCallInFlight(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := &fakeActor{state: "authorized", gate: make(chan struct{})}
		c := New(discardLogger(), Options{Concurrency: 2, MinInterval: time.Hour})
		defer c.Close()
		tg := newLoneTarget(providerOf("greenapi"), "shop", 5*time.Second, f)
		refreshTargets(shortCtx(0), c, tg) // publishes the target; the call waits at the gate
		synctest.Wait()
		var wg sync.WaitGroup
		results := make([]InstanceStatus, 2)
		for i := range results {
			wg.Go(func() {
				s, err := c.Check(context.Background(), "shop")
				if err != nil {
					t.Errorf("Check: %v", err)
				}
				results[i] = s
			})
			synctest.Wait() // each Check is waiting for the call
		}
		close(f.gate)
		wg.Wait()
		if n := f.states.Load(); n != 1 {
			t.Errorf("%d state calls, want 1", n)
		}
		for _, s := range results {
			if s.State != "authorized" {
				t.Errorf("Check = %+v", s)
			}
		}
	})
}

// TestActionSpacing: reboots are a second apart, messages apart from
// reboots; a Retry-After on a reboot holds reboots, one on the state
// request holds every action.
func TestActionSpacing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := &fakeActor{state: "starting"}
		c, tg := actorEnv(t, f)
		t0 := time.Now()
		for range 3 {
			if err := c.Reboot(context.Background(), "shop"); err != nil {
				t.Fatal(err)
			}
		}
		f.mu.Lock()
		times := f.rebootTimes
		f.mu.Unlock()
		for i, at := range times {
			if want := t0.Add(time.Duration(i) * time.Second); !at.Equal(want) {
				t.Errorf("reboot %d at +%v, want +%v", i, at.Sub(t0), want.Sub(t0))
			}
		}
		// A message need not wait for the reboots.
		before := time.Now()
		if err := c.SendText(context.Background(), "shop", "79001234567", "hello"); err != nil || time.Since(before) != 0 {
			t.Errorf("SendText: %v after %v, want at once", err, time.Since(before))
		}
		var held *HeldError
		if err := c.Reboot(shortCtx(100*time.Millisecond), "shop"); !errors.As(err, &held) || !held.Until.Equal(times[2].Add(time.Second)) {
			t.Errorf("Reboot within the second: %v", err)
		}
		// A Retry-After on a reboot.
		time.Sleep(time.Second)
		e := newError(ReasonRateLimited, "HTTP 429")
		e.RetryAfter = 30 * time.Second
		f.rebootErr.Store(e)
		t1 := time.Now()
		if err := c.Reboot(context.Background(), "shop"); !errors.As(err, new(*Error)) {
			t.Fatalf("Reboot = %v, want the 429", err)
		}
		if err := c.Reboot(shortCtx(10*time.Second), "shop"); !errors.As(err, &held) || !held.Until.Equal(t1.Add(30*time.Second)) {
			t.Errorf("Reboot within Retry-After: %v, want held until +30s", err)
		}
		// One on the state request holds messages too.
		tg.mem.hold(time.Now().Add(time.Hour))
		if err := c.SendText(shortCtx(time.Minute), "shop", "79001234567", "hello"); !errors.As(err, &held) {
			t.Errorf("SendText within the state's Retry-After: %v", err)
		}
		if n := f.reboots.Load(); n != 4 {
			t.Errorf("%d reboots, want 4", n)
		}
	})
}

// TestActionsRefused: unknown names, providers without the method, and
// bad recipients or texts fail without a call.
func TestActionsRefused(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := New(discardLogger(), Options{Concurrency: 2, MinInterval: time.Hour})
		defer c.Close()
		f := &fakeActor{state: "authorized"}
		refreshTargets(context.Background(), c,
			newLoneTarget(providerOf("greenapi"), "shop", time.Second, f),
			newLoneTarget(providerOf("evolution"), "evo", time.Second, stateOnly{}))
		ctx := context.Background()
		for _, tc := range []struct {
			what string
			err  error
			want error
		}{
			{"Reboot(nope)", c.Reboot(ctx, "nope"), ErrUnknownInstance},
			{"SendText(nope)", c.SendText(ctx, "nope", "79001234567", "x"), ErrUnknownInstance},
			{"Reboot(evo)", c.Reboot(ctx, "evo"), ErrNotSupported},
			{"SendText(evo)", c.SendText(ctx, "evo", "79001234567", "x"), ErrNotSupported},
		} {
			if !errors.Is(tc.err, tc.want) {
				t.Errorf("%s = %v, want %v", tc.what, tc.err, tc.want)
			}
		}
		for _, tc := range []struct{ to, text string }{
			{"++79001234567", "x"}, {"7900", "x"}, {"7900123456789012", "x"}, {"79001234567@c.us", "x"}, {"79001234567", " \n"},
		} {
			err := c.SendText(ctx, "shop", tc.to, tc.text)
			var e *Error
			if !errors.As(err, &e) || e.Reason != ReasonClientError {
				t.Errorf("SendText(%q, %q) = %v, want client_error", tc.to, tc.text, err)
			} else if strings.Contains(err.Error(), "7900") {
				t.Errorf("SendText's error quotes the number: %v", err)
			}
		}
		if n := f.sent.Load(); n != 0 {
			t.Errorf("%d messages sent, want 0", n)
		}
	})
}

// TestActionsOneAtATime: reboots asked for at once run one after the
// other, each a second after the end of the last (the provider counts
// arrivals); a caller out of time while another reboot is under way is
// held.
func TestActionsOneAtATime(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := &fakeActor{state: "starting", rebootTook: 2 * time.Second}
		c, _ := actorEnv(t, f)
		t0 := time.Now()
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				if err := c.Reboot(context.Background(), "shop"); err != nil {
					t.Error(err)
				}
			})
		}
		synctest.Wait() // one reboot under way, the other waiting
		if err := c.Reboot(shortCtx(time.Second), "shop"); !errors.Is(err, ErrHeld) {
			t.Errorf("Reboot out of time behind others = %v, want held", err)
		}
		wg.Wait()
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.rebootTimes) != 2 || !f.rebootTimes[0].Equal(t0.Add(2*time.Second)) || !f.rebootTimes[1].Equal(t0.Add(5*time.Second)) {
			t.Errorf("reboots ended at %v, want %v and %v", f.rebootTimes, t0.Add(2*time.Second), t0.Add(5*time.Second))
		}
	})
}
