package main

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The notifier POSTs GREEN-API stateInstanceChanged notifications to the
// exporter's receiver (POST /webhook/greenapi) at a steady rate, for
// configured and listed instances, with the right token, a wrong one or
// none, and some that are not state notifications or not notifications
// at all. GREEN-API's receiver answers HTTP 200 to every notification it
// read whole, with the outcome as the body; a 5xx, a token in an answer,
// or a notification without the right token that changed a state is a
// hard error.

// notifyKind is what a notification is.
type notifyKind int

const (
	nConfigured      notifyKind = iota // a configured instance, with its webhook_token
	nConfiguredWrong                   // a configured instance, with another token
	nConfiguredNone                    // a configured instance, without Authorization
	nListed                            // an instance of the partner account, with its own token, derived from the account's webhook_key
	nListedWrong                       // an instance of the partner account, with another token
	nUnknown                           // an idInstance neither configured nor listed
	nOther                             // another typeWebhook (a message): acknowledged and ignored
	nMalformed                         // not a notification GREEN-API would send
	nKinds
)

// notifyKinds are the kinds' names, their shares of the notifications in
// percent and the outcomes (the answers' bodies) expected of them.
// An unknown instance (a configured one the storm has just removed, a
// listed one the current listing, filter or account does not hold) is
// answered unauthorized, like a wrong token, so that the answer does not
// tell which IDs are watched: unauthorized is expected of every kind that
// names an instance.
var notifyKinds = [nKinds]struct {
	name    string
	percent int
	want    []string
}{
	nConfigured:      {"configured, right token", 50, []string{"accepted", "stale", "unauthorized"}},
	nConfiguredWrong: {"configured, wrong token", 10, []string{"unauthorized"}},
	nConfiguredNone:  {"configured, no token", 4, []string{"unauthorized"}},
	nListed:          {"listed, right token", 15, []string{"accepted", "stale", "unauthorized"}},
	nListedWrong:     {"listed, wrong token", 5, []string{"unauthorized"}},
	nUnknown:         {"unknown instance", 4, []string{"unauthorized"}},
	nOther:           {"another typeWebhook", 4, []string{"ignored"}},
	nMalformed:       {"malformed body", 8, []string{"malformed"}},
}

// wrongToken reports whether a kind does not carry the instance's token:
// no answer to it may say that it was applied.
func (k notifyKind) wrongToken() bool {
	return k == nConfiguredWrong || k == nConfiguredNone || k == nListedWrong
}

// notifyStates are the states the notifications report.
var notifyStates = []string{"authorized", "notAuthorized", "blocked", "sleepMode", "starting", "yellowCard"}

// unknownIDs is how many idInstances the unknown notifications name: the
// exporter logs each once.
const unknownIDs = 20

// malformedBodies are bodies the receiver cannot read as a notification,
// some carrying a token it must not echo; %d is a timestamp.
var malformedBodies = []string{
	`not json`,
	`{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":`,
	`{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":"abc"},"timestamp":%d,"stateInstance":"authorized"}`,
	`{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":1101000001},"stateInstance":"authorized"}`,
	`{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":1101000001},"timestamp":%d}`,
	`{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":1101000001},"timestamp":-%d,"stateInstance":"authorized"}`,
	`{"instanceData":{"idInstance":1101000001},"timestamp":%d,"stateInstance":"authorized"}`,
	`[]`,
	`{"typeWebhook":"stateInstanceChanged","apiTokenInstance":"` + secretMarker + `in-a-body","instanceData":{"idInstance":11010`,
	``,
}

// notification is one request to send.
type notification struct {
	kind  notifyKind
	index int // of the configured or listed instance, or of the unknown id
	state string
	body  int // index in malformedBodies
}

// notifyStats are what the notifier sent and was answered; safe for
// concurrent use.
type notifyStats struct {
	mu         sync.Mutex
	sent       [nKinds]int
	busy       int            // not sent: every sender was waiting for an answer
	noAnswer   map[string]int // by error
	status     map[int]int
	outcomes   [nKinds]map[string]int
	unexpected map[string]int // "kind: outcome"
	times      []time.Duration
	began      time.Time
	took       time.Duration
}

// notifySenders bound the notifications in flight, far below the
// receiver's own bound (256, beyond which it answers 503).
const notifySenders = 8

// notifier sends rate notifications a second until stop is called; the
// listed instances are those of u's partner account.
func (e *env) notifier(x *exporter, u *upstream, rate float64) (stop func() *notifyStats) {
	ns := &notifyStats{noAnswer: map[string]int{}, status: map[int]int{}, unexpected: map[string]int{}, began: time.Now()}
	for k := range ns.outcomes {
		ns.outcomes[k] = map[string]int{}
	}
	jobs := make(chan notification, notifySenders)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for range notifySenders {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{}, Timeout: 15 * time.Second}
			defer client.CloseIdleConnections()
			for n := range jobs {
				e.sendNotification(client, x.hook+"/webhook/greenapi", n, ns)
			}
		})
	}
	wg.Go(func() {
		// Paced by the clock rather than by a ticker's ticks, which a
		// busy machine drops: every 10 ms, as many as are due.
		defer close(jobs)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for due := 0; ; {
			select {
			case <-tick.C:
			case <-quit:
				return
			case <-e.ctx.Done():
				return
			}
			for want := int(time.Since(ns.began).Seconds() * rate); due < want; due++ {
				n := pickNotification(u)
				select {
				case jobs <- n:
					ns.mu.Lock()
					ns.sent[n.kind]++
					ns.mu.Unlock()
				default:
					ns.mu.Lock()
					ns.busy++
					ns.mu.Unlock()
				}
			}
		}
	})
	return func() *notifyStats {
		close(quit)
		wg.Wait()
		ns.mu.Lock()
		ns.took = time.Since(ns.began)
		ns.mu.Unlock()
		return ns
	}
}

func pickNotification(u *upstream) notification {
	n := notification{state: notifyStates[rand.IntN(len(notifyStates))]}
	r := rand.IntN(100)
	for k, nk := range notifyKinds {
		if r < nk.percent {
			n.kind = notifyKind(k)
			break
		}
		r -= nk.percent
	}
	if u.listed == 0 && (n.kind == nListed || n.kind == nListedWrong) {
		n.kind -= nListed - nConfigured // no account: a configured instance instead
	}
	switch n.kind {
	case nListed, nListedWrong:
		n.index = rand.IntN(u.listed)
	case nUnknown:
		n.index = rand.IntN(unknownIDs)
	case nMalformed:
		n.body = rand.IntN(len(malformedBodies))
	default:
		n.index = rand.IntN(u.n)
	}
	return n
}

// request returns the body and the Authorization header of n.
func (n notification) request() (body, auth string) {
	now := time.Now().Unix()
	id, token := instanceID(n.index), webhookToken(n.index)
	switch n.kind {
	case nListed, nListedWrong:
		id = listedID(n.index)
		token = listedWebhookToken(id)
	case nUnknown:
		id = strconv.Itoa(1109000000 + n.index)
	case nMalformed:
		b := malformedBodies[n.body]
		if strings.Contains(b, "%d") {
			b = fmt.Sprintf(b, now)
		}
		return b, "Bearer " + webhookToken(1)
	}
	switch n.kind {
	case nConfiguredWrong, nListedWrong:
		token = secretMarker + "wrong-" + strconv.Itoa(n.index)
	case nConfiguredNone:
		token = ""
	}
	if token != "" {
		auth = "Bearer " + token
	}
	// The body of API-FACTS.md's GREEN-API push notifications; the token
	// as Authorization: Bearer, as API-FACTS.md's GREEN-API section says
	// it arrives.
	typ := "stateInstanceChanged"
	if n.kind == nOther {
		typ = "incomingMessageReceived"
	}
	return fmt.Sprintf(`{"typeWebhook":%q,"instanceData":{"idInstance":%s,"wid":"79876543210@c.us","typeInstance":"whatsapp"},"timestamp":%d,"stateInstance":%q}`,
		typ, id, now, n.state), auth
}

// sendNotification POSTs n and records the answer, and the hard errors
// it shows.
func (e *env) sendNotification(client *http.Client, url string, n notification, ns *notifyStats) {
	body, auth := n.request()
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, url, bytes.NewBufferString(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	start := time.Now()
	resp, err := client.Do(req)
	var answer []byte
	if err == nil {
		answer, err = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	took := time.Since(start)
	if err != nil {
		if e.ctx.Err() == nil {
			ns.mu.Lock()
			ns.noAnswer[scrapeResult{err: err}.outcome()]++
			ns.mu.Unlock()
		}
		return
	}
	kind := notifyKinds[n.kind]
	outcome := strings.TrimSpace(string(answer))
	if bytes.Contains(answer, []byte(secretMarker)) {
		e.fail("LEAK: a token in the answer to a notification (%s): %s", kind.name, shorten(outcome, 300))
		outcome = "(a token)"
	}
	if resp.StatusCode >= 500 {
		e.fail("unexpected HTTP %d from POST /webhook/greenapi (%s)", resp.StatusCode, kind.name)
	}
	if n.kind.wrongToken() && (outcome == "accepted" || outcome == "stale") {
		e.fail("a notification without the instance's token (%s) was answered %q: it passed authorization", kind.name, outcome)
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.status[resp.StatusCode]++
	ns.outcomes[n.kind][shorten(outcome, 60)]++
	if !slices.Contains(kind.want, outcome) {
		ns.unexpected[fmt.Sprintf("%s: HTTP %d %q", kind.name, resp.StatusCode, shorten(outcome, 60))]++
	}
	ns.times = append(ns.times, took)
}

// rows prints what the notifier sent and was answered.
func (ns *notifyStats) rows(t *table, rate float64) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	total := 0
	for _, n := range ns.sent {
		total += n
	}
	t.row("notifications sent", "%d in %s: %.0f/s (-notify %g); %d not sent, all %d senders awaiting answers",
		total, dur(ns.took), float64(total)/ns.took.Seconds(), rate, ns.busy, notifySenders)
	for k, nk := range notifyKinds {
		var out []string
		for _, o := range slices.Sorted(maps.Keys(ns.outcomes[k])) {
			out = append(out, fmt.Sprintf("%s %d", o, ns.outcomes[k][o]))
		}
		t.row("  "+nk.name, "%d sent; answered %s", ns.sent[k], orNone(strings.Join(out, ", ")))
	}
	var st []string
	for _, code := range slices.Sorted(maps.Keys(ns.status)) {
		st = append(st, fmt.Sprintf("%d: %d", code, ns.status[code]))
	}
	for _, msg := range slices.Sorted(maps.Keys(ns.noAnswer)) {
		st = append(st, fmt.Sprintf("%s: %d", msg, ns.noAnswer[msg]))
	}
	t.row("notification answers by HTTP status", "%s", orNone(strings.Join(st, ", ")))
	t.row("notification time p50 / p95 / max", "%s / %s / %s", dur(percentile(ns.times, 0.5)), dur(percentile(ns.times, 0.95)), dur(percentile(ns.times, 1)))
	n := 0
	for _, msg := range slices.Sorted(maps.Keys(ns.unexpected)) {
		if n++; n > 5 {
			t.row("  unexpected", "... %d more kinds", len(ns.unexpected)-5)
			break
		}
		t.row("  unexpected", "%s (%d times)", msg, ns.unexpected[msg])
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
