package simulator

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
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

// The demo must show a newcomer every state of every provider, and its
// special answers, within a few minutes.
func TestDemoShowsEveryStateWithinMinutes(t *testing.T) {
	const window = 4 * time.Minute
	faults := map[Fault]bool{}
	var names []string
	for _, p := range Providers() {
		if len(p.Demo) == 0 {
			t.Errorf("provider %s has no demo instance", p.Name)
		}
		seen := map[string]bool{}
		for _, d := range p.Demo {
			names = append(names, d.Name)
			for at := time.Duration(0); at < window; at += time.Second {
				b := current(d.Steps, at)
				if b.Fault != FaultNone {
					faults[b.Fault] = true
				} else {
					seen[b.State] = true
				}
			}
		}
		for _, s := range p.States {
			if !seen[s] {
				t.Errorf("%s state %s does not occur within %v", p.Name, s, window)
			}
		}
		for _, sp := range p.Specials {
			if sp.Reads == "unknown" && !seen[sp.State] {
				t.Errorf("%s: its answer without a state (%s) does not occur within %v", p.Name, sp.State, window)
			}
		}
	}
	if len(faults) < 2 {
		t.Errorf("the demo shows %d kinds of failure, want a few", len(faults))
	}
	slices.Sort(names)
	if n := len(names); len(slices.Compact(names)) != n {
		t.Errorf("duplicate demo names: %v", names)
	}
}

// The demo's accounts show a newcomer instances appearing and
// disappearing within a few minutes, and every provider that can list has
// one.
func TestDemoAccountsChange(t *testing.T) {
	const window = 4 * time.Minute
	for _, p := range Providers() {
		if p.Account == nil {
			continue
		}
		d := p.Account.Demo
		if d.Name == "" || len(d.Steps) == 0 {
			t.Errorf("%s: no demo account", p.Name)
			continue
		}
		sets := map[string]bool{}
		for at := time.Duration(0); at < window; at += time.Second {
			var ids []string
			for _, m := range currentAccountStep(d.Steps, at).Members {
				if !m.Deleted && !m.Expired {
					ids = append(ids, m.ID)
				}
			}
			sets[strings.Join(ids, ",")] = true
		}
		if len(sets) < 2 {
			t.Errorf("%s: the demo account lists %d different sets of instances within %v, want instances coming and going", p.Name, len(sets), window)
		}
	}
}

// TestGreenAPIQueueStallsOnAnythingBut200: GREEN-API resends an instance's
// notification every minute until it is answered 200, and sends none of
// the later ones meanwhile; Evolution API 2.3 retries each on its own,
// but not a 401.
func TestGreenAPIQueueStallsOnAnythingBut200(t *testing.T) {
	var mu sync.Mutex
	answers := map[string]int{}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(answers[r.URL.Path])
	}))
	defer receiver.Close()
	s := New()
	s.SetRetryUnit(time.Millisecond)
	s.Set(GreenAPI, "1101000001", "t", Behaviour{State: "authorized"})
	s.SetWebhook(GreenAPI, "1101000001", WebhookAuth{Token: "wh"})
	s.Set(Evolution, "bot", "k", Behaviour{State: "open"})
	s.SetWebhook(Evolution, "bot", WebhookAuth{JWTKey: "key"})
	mu.Lock()
	answers["/webhook/greenapi"] = http.StatusUnauthorized
	answers["/webhook/evolution/connection-update"] = http.StatusUnauthorized
	mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.SendNotifications(ctx, receiver.URL, nil) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		testtool.WaitFor(t, what, cond)
	}
	time.Sleep(60 * time.Millisecond) // let the sender see the first states
	s.Set(GreenAPI, "1101000001", "t", Behaviour{State: "blocked"})
	s.Set(Evolution, "bot", "k", Behaviour{State: "close", Reason: 401})
	waitFor("the head resent", func() bool { return len(s.Deliveries(GreenAPI, "1101000001")) >= 3 })
	s.Set(GreenAPI, "1101000001", "t", Behaviour{State: "notAuthorized"})
	time.Sleep(200 * time.Millisecond)
	for _, d := range s.Deliveries(GreenAPI, "1101000001") {
		if d.State != "blocked" || d.Status != http.StatusUnauthorized {
			t.Fatalf("delivery %+v while the head is refused", d)
		}
	}
	mu.Lock()
	answers["/webhook/greenapi"] = http.StatusOK
	mu.Unlock()
	waitFor("the later notification", func() bool {
		d := s.Deliveries(GreenAPI, "1101000001")
		return d[len(d)-1].State == "notAuthorized"
	})
	if d := s.Deliveries(Evolution, "bot"); len(d) != 1 || d[0].Status != http.StatusUnauthorized {
		t.Errorf("Evolution API 2.3 deliveries %+v, want one 401, not retried", d)
	}
}

// getMessagesCount answers the whole queue under either key, and HTTP 400
// while the instance is starting or not authorized.
func TestGreenAPIMessagesCount(t *testing.T) {
	s := New()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	get := func(t *testing.T) (int, string, http.Header) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/waInstance1101000001/getMessagesCount/tok")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body), resp.Header
	}
	for _, tc := range []struct {
		name       string
		b          Behaviour
		wantStatus int
		wantBody   string
	}{
		{"empty", Behaviour{State: "authorized"}, 200, `{"count":0}`},
		{"past 500, no cap", Behaviour{State: "authorized", Queue: 1200}, 200, `{"count":1200}`},
		{"Cyrillic key", Behaviour{State: "yellowCard", Queue: 3, QueueCountKey: GreenAPICyrillicCountKey}, 200, "{\"\u0441ount\":3}"},
		{"starting", Behaviour{State: "starting", Queue: 3}, 400, "instance is starting or not authorized\n"},
		{"not authorized", Behaviour{State: "notAuthorized", Queue: 3}, 400, "instance is starting or not authorized\n"},
		{"starting, as text", Behaviour{State: GreenAPITextStarting, Queue: 3}, 400, "instance is starting or not authorized\n"},
		{"the state's fault is not the queue's", Behaviour{State: "authorized", Fault: FaultServerError, Queue: 3}, 200, `{"count":3}`},
		{"queue fault", Behaviour{State: "authorized", QueueFault: FaultQuotaExceeded}, 466, ""},
		{"queue fault first", Behaviour{State: "starting", QueueFault: FaultServerError}, 500, "Internal Server Error\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.Set(GreenAPI, "1101000001", "tok", tc.b)
			before := s.QueueCalls(GreenAPI, "1101000001")
			status, body, _ := get(t)
			if status != tc.wantStatus || (tc.wantBody != "" && body != tc.wantBody) {
				t.Errorf("HTTP %d %q, want %d %q", status, body, tc.wantStatus, tc.wantBody)
			}
			if n := s.QueueCalls(GreenAPI, "1101000001") - before; n != 1 {
				t.Errorf("%d queue calls counted, want 1", n)
			}
		})
	}
	if n := s.Calls(GreenAPI, "1101000001"); n != 0 {
		t.Errorf("queue calls counted as %d state calls", n)
	}
	s.Set(GreenAPI, "1101000001", "tok", Behaviour{State: "authorized", QueueFault: FaultRateLimited, RetryAfter: 7 * time.Second})
	if status, _, h := get(t); status != http.StatusTooManyRequests || h.Get("Retry-After") != "7" {
		t.Errorf("HTTP %d, Retry-After %q; want 429, 7", status, h.Get("Retry-After"))
	}
}
