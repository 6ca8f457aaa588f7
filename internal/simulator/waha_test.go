package simulator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

func wahaGet(t *testing.T, url, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Api-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWahaAPI: the simulated server answers as WAHA's code does: the key
// first (401 in the guard's shape), then the session (404 "Session not
// found"); the list leaves STOPPED sessions out unless all=true.
func TestWahaAPI(t *testing.T) {
	s := New()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	for _, st := range wahaStates {
		s.Set(Waha, strings.ToLower(st), "server-key", Behaviour{State: st})
	}
	var members []Member
	for _, st := range wahaStates {
		members = append(members, Member{ID: strings.ToLower(st)})
	}
	s.SetAccount(Waha, "server-key", members...)
	base := srv.URL + "/waha/api/sessions"
	for _, tc := range []struct {
		name, url, key string
		status         int
		body           string
	}{
		{"wrong key", base + "/working", "nope", 401, wahaUnauthorized},
		{"unknown session, wrong key", base + "/nobody", "nope", 401, wahaUnauthorized},
		{"unknown session", base + "/nobody", "server-key", 404, wahaNotFound},
		{"list, wrong key", base + "?all=true", "nope", 401, wahaUnauthorized},
		{"list, bad all", base + "?all=maybe", "server-key", 400, wahaBadRequest},
	} {
		if status, body := wahaGet(t, tc.url, tc.key); status != tc.status || body != tc.body {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, body, tc.status, tc.body)
		}
	}
	for _, st := range wahaStates {
		status, body := wahaGet(t, base+"/"+strings.ToLower(st), "server-key")
		var v struct{ Name, Status string }
		if status != 200 || json.Unmarshal([]byte(body), &v) != nil || v.Status != st {
			t.Errorf("%s: %d %s", st, status, body)
		}
	}
	count := func(url string) (n int, stopped bool) {
		status, body := wahaGet(t, url, "server-key")
		var rows []struct{ Name, Status string }
		if status != 200 || json.Unmarshal([]byte(body), &rows) != nil {
			t.Fatalf("%s: %d %s", url, status, body)
		}
		for _, r := range rows {
			stopped = stopped || r.Status == "STOPPED"
		}
		return len(rows), stopped
	}
	if n, stopped := count(base + "?all=true"); n != len(wahaStates) || !stopped {
		t.Errorf("?all=true: %d sessions (STOPPED among them %v), want %d with STOPPED", n, stopped, len(wahaStates))
	}
	if n, stopped := count(base); n != len(wahaStates)-1 || stopped {
		t.Errorf("without all: %d sessions (STOPPED among them %v), want %d without STOPPED", n, stopped, len(wahaStates)-1)
	}
}

// TestWahaRetryPolicy: WAHA's sender retries every failure, whatever the
// status, 15 times at a constant 2 s (axios-retry, retryCondition always
// true, DEFAULT_RETRY_ATTEMPTS 15, DEFAULT_RETRY_DELAY_SECONDS 2).
func TestWahaRetryPolicy(t *testing.T) {
	d := wahaDelivery{}
	for attempt := 1; attempt <= 16; attempt++ {
		for _, status := range []int{0, 400, 401, 404, 413, 500} {
			wait, again := d.retry(attempt, status, time.Second)
			if again != (attempt <= 15) || again && wait != 2*time.Second {
				t.Errorf("attempt %d, status %d: %v again %v", attempt, status, wait, again)
			}
		}
	}
}

// TestWahaSignedDeliveries: the simulator's session.status deliveries
// carry WAHA's headers, and X-Webhook-Hmac is the HMAC of the exact body;
// a refused one is retried until the attempts run out.
func TestWahaSignedDeliveries(t *testing.T) {
	var mu sync.Mutex
	var bad []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		if r.URL.Path != "/webhook/waha" || r.Header.Get("X-Webhook-Hmac") != WahaHMAC("hmac-key", body) ||
			r.Header.Get("X-Webhook-Hmac-Algorithm") != "sha512" || r.Header.Get("X-Webhook-Request-Id") == "" || r.Header.Get("X-Webhook-Timestamp") == "" {
			bad = append(bad, r.URL.Path)
		}
		mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(receiver.Close)
	s := New()
	s.SetRetryUnit(time.Millisecond)
	s.Set(Waha, "default", "k", Behaviour{State: "WORKING"})
	s.SetWebhook(Waha, "default", WebhookAuth{HMACKey: "hmac-key"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.SendNotifications(ctx, receiver.URL, nil) }()
	defer func() { cancel(); <-done }()
	// The sender notices a change between two of its looks: change the
	// status until it has (no fixed wait for its first look).
	states := []string{"FAILED", "WORKING"}
	k := 0
	testtool.WaitFor(t, "a delivery", func() bool {
		if len(s.Deliveries(Waha, "default")) > 0 {
			return true
		}
		k++
		s.Set(Waha, "default", "k", Behaviour{State: states[k%2]})
		return false
	})
	testtool.WaitFor(t, "the 16th attempt", func() bool {
		for _, d := range s.Deliveries(Waha, "default") {
			if d.Attempt == 16 {
				return true
			}
		}
		return false
	})
	for _, d := range s.Deliveries(Waha, "default") {
		if d.Attempt > 16 || d.Status != http.StatusUnauthorized {
			t.Errorf("delivery %+v", d)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("%d deliveries without WAHA's headers or with a wrong HMAC", len(bad))
	}
}
