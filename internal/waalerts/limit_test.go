package waalerts

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/amwebhook"
)

func d(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }

// At most limit messages in any span of per: the window slides, it does
// not reset at fixed times.
func TestLimiterSlidingWindow(t *testing.T) {
	l := newLimiter()
	l.update([]string{"100"}, 3, time.Hour)
	for k, at := range []time.Duration{0, 10 * time.Minute, 20 * time.Minute} {
		if v, _ := l.reserve("100", d(string(rune('a'+k))), t0.Add(at)); v != allowed {
			t.Fatalf("message %d refused: %v", k, v)
		}
	}
	if v, _ := l.reserve("100", d("x"), t0.Add(59*time.Minute)); v != rateLimited {
		t.Errorf("4th message within the hour: %v, want rate limited", v)
	}
	// One hour after the first, one message may go; not two.
	if v, _ := l.reserve("100", d("y"), t0.Add(time.Hour)); v != allowed {
		t.Errorf("after the first left the window: %v", v)
	}
	if v, _ := l.reserve("100", d("z"), t0.Add(time.Hour+time.Minute)); v != rateLimited {
		t.Errorf("second after the first left the window: %v", v)
	}
}

func TestLimiterReleaseAndDuplicate(t *testing.T) {
	l := newLimiter()
	l.update([]string{"100", "200"}, 1, time.Hour)
	v, id := l.reserve("100", d("n1"), t0)
	if v != allowed {
		t.Fatal(v)
	}
	if v, _ := l.reserve("100", d("n1"), t0.Add(time.Minute)); v != duplicate {
		t.Errorf("the same notification again: %v, want duplicate", v)
	}
	if v, _ := l.reserve("200", d("n1"), t0.Add(time.Minute)); v != allowed {
		t.Errorf("another recipient: %v", v)
	}
	// Not sent: the retry goes, and counts once.
	l.release("100", id)
	if v, _ := l.reserve("100", d("n1"), t0.Add(2*time.Minute)); v != allowed {
		t.Errorf("after release: %v", v)
	}
	// After dedupeFor the same notification is a reminder (repeat_interval),
	// subject to the limit.
	if v, _ := l.reserve("100", d("n1"), t0.Add(2*time.Minute+dedupeFor)); v != rateLimited {
		t.Errorf("reminder within the hour: %v, want rate limited", v)
	}
}

// A reload keeps the windows of the recipients it keeps and forgets the
// others; memory stays bounded by the configuration.
func TestLimiterUpdate(t *testing.T) {
	l := newLimiter()
	l.update([]string{"100", "200"}, 1, time.Hour)
	l.reserve("100", d("a"), t0)
	l.reserve("200", d("a"), t0)
	l.update([]string{"100", "300"}, 1, time.Hour)
	if v, _ := l.reserve("100", d("b"), t0.Add(time.Minute)); v != rateLimited {
		t.Errorf("kept recipient lost its window: %v", v)
	}
	if len(l.by) != 2 || l.by["200"] != nil {
		t.Errorf("recipients kept: %v", l.by)
	}
	if v, _ := l.reserve("999", d("b"), t0); v != allowed || len(l.by) != 2 {
		t.Errorf("a recipient removed meanwhile: %v, %d kept", v, len(l.by))
	}
	for k := range 1000 {
		l.update([]string{"100"}, 1000, time.Hour)
		l.reserve("100", d(string(rune(k))), t0.Add(time.Duration(k)*time.Second))
	}
	if r := l.by["100"]; len(r.recent) > maxRecent {
		t.Errorf("%d recent notifications kept, want at most %d", len(r.recent), maxRecent)
	}
}

// Alertmanager moves endsAt of a firing alert at each resend; the digest
// must not see it. A new episode (startsAt) or status is another
// notification.
func TestDigest(t *testing.T) {
	a := blockedAlert("shop", "greenapi", t0)
	m1 := &amwebhook.Message{GroupKey: "g", Status: "firing", Alerts: []amwebhook.Alert{a}}
	a2 := a
	a2.EndsAt = a.EndsAt.Add(time.Hour)
	if digest(m1) != digest(&amwebhook.Message{GroupKey: "g", Status: "firing", Alerts: []amwebhook.Alert{a2}}) {
		t.Error("endsAt changes the digest")
	}
	a3 := a
	a3.StartsAt = t0.Add(time.Hour)
	a4 := a
	a4.Status = "resolved"
	for _, m := range []*amwebhook.Message{
		{GroupKey: "g", Status: "firing", Alerts: []amwebhook.Alert{a3}},
		{GroupKey: "g", Status: "resolved", Alerts: []amwebhook.Alert{a4}},
		{GroupKey: "h", Status: "firing", Alerts: []amwebhook.Alert{a}},
	} {
		if digest(m) == digest(m1) {
			t.Errorf("same digest for %+v", m)
		}
	}
}
