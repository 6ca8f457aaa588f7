// Package simulator serves imitations of the WhatsApp provider APIs for
// tests, benchmarks and the exporter's --demo mode. Each instance follows a
// behaviour, or a schedule of behaviours, that says which state it reports,
// which failure it shows instead and how slowly it answers.
package simulator

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is a failure the simulator produces instead of a state.
type Fault string

// Faults, named after what the provider sends.
const (
	FaultNone            Fault = ""
	FaultUnauthorized    Fault = "unauthorized"     // HTTP 401
	FaultForbidden       Fault = "forbidden"        // HTTP 403
	FaultUnauthorizedOK  Fault = "unauthorized_200" // HTTP 200 {"code":401,...}
	FaultRateLimited     Fault = "rate_limited"     // HTTP 429 with Retry-After
	FaultQuotaExceeded   Fault = "quota_exceeded"   // HTTP 466 (GREEN-API)
	FaultServerError     Fault = "server_error"     // HTTP 500
	FaultBadGateway      Fault = "bad_gateway"      // HTTP 502 HTML page from a proxy
	FaultClientError     Fault = "client_error"     // HTTP 400 "Validation failed"
	FaultHTML            Fault = "html"             // HTTP 200 HTML page
	FaultNotJSON         Fault = "not_json"         // HTTP 200 plain text
	FaultWrongShape      Fault = "wrong_shape"      // HTTP 200 JSON without the state
	FaultNull            Fault = "null"             // HTTP 200 null
	FaultHuge            Fault = "huge"             // HTTP 200 with a multi-megabyte body
	FaultHang            Fault = "hang"             // no answer until the client gives up
	FaultCloseConnection Fault = "close_connection" // connection closed without an answer
	FaultNotFound        Fault = "not_found"        // HTTP 404
	FaultUnsuccessful    Fault = "unsuccessful"     // HTTP 200 {"success":false,...} (Wachat)
)

// CommonFaults are the faults every provider produces; a provider's own
// are in its description. (GREEN-API's null is a state: the instance is
// being created.)
var CommonFaults = []Fault{
	FaultUnauthorized, FaultForbidden, FaultRateLimited, FaultServerError,
	FaultBadGateway, FaultClientError, FaultHTML, FaultNotJSON, FaultWrongShape,
	FaultHuge, FaultHang, FaultCloseConnection, FaultNotFound,
}

// Behaviour is what an instance does when asked for its state.
type Behaviour struct {
	// State is reported when Fault is empty. A GREEN-API state given as
	// "text:..." is sent the old way, as an HTTP 400 with that text.
	State   string
	Fault   Fault
	Latency time.Duration
	// RetryAfter goes with FaultRateLimited; zero sends no header.
	RetryAfter time.Duration
	// Reason is the Baileys code of the disconnection behind a state
	// that is not open (Evolution API, Wachat): 401 logged out, 403
	// forbidden (banned), 408 connection lost, ..., ReasonQRExpired;
	// 0 for none.
	Reason int
	// Listed is what Evolution API 2's database row (and so its listing)
	// says of the instance, when it is not what Evolution API would have
	// written (see evolutionRow); empty to let the simulator derive it.
	Listed string
	// Queue is how many outgoing messages the instance holds when the
	// behaviour begins, QueueRate how many more (or, negative, fewer)
	// each second after, never fewer than none (GREEN-API's
	// getMessagesCount). QueueFault is what the queue request shows
	// instead. QueueCountKey is the key the count is sent under, "count"
	// when empty: GreenAPICyrillicCountKey answers as the provider's
	// documentation prints it.
	Queue         int
	QueueRate     float64
	QueueFault    Fault
	QueueCountKey string
	// Meta is what a number of Meta's Cloud API tells beyond its status
	// (State): quality, health, limits (meta.go); nil for a healthy one.
	Meta *MetaNumber
}

// QueueAt is the queue a behaviour holds d after it began.
func (b Behaviour) QueueAt(d time.Duration) int {
	return max(0, b.Queue+int(b.QueueRate*d.Seconds()))
}

// Step is one part of a schedule.
type Step struct {
	Behaviour
	For time.Duration
}

type instance struct {
	secret   string
	schedule []Step
	setAt    time.Time // when the schedule was set
	calls    atomic.Int64
	// queueCalls are the queue requests, apart from calls so that the
	// state requests' count and spacing stay theirs.
	queueCalls atomic.Int64
	webhook    *WebhookAuth // nil: sends no notifications
	deliveries []Delivery

	spacingMu sync.Mutex
	spacing   Spacing

	// origin is when a schedule set by a reboot began; zero for a
	// schedule counted from the simulator's start (actions.go).
	origin  time.Time
	actions instanceActions
}

// Spacing describes the intervals between the calls an instance received:
// GREEN-API allows one state request per second per instance.
type Spacing struct {
	Calls int64
	// MinGap is the shortest interval between two calls; zero with fewer
	// than two calls.
	MinGap time.Duration
	// Under counts the intervals shorter than the simulator's rate limit
	// (see SetRateLimit).
	Under int64
	last  time.Time
}

// Simulator is an http.Handler that imitates the providers' APIs.
type Simulator struct {
	start time.Time
	mux   *http.ServeMux

	mu        sync.RWMutex
	instances map[string]*instance // by provider + "/" + id
	accounts  map[string]*account  // by provider + "/" + key
	rateLimit time.Duration
	// evolution is the version of Evolution API served.
	evolution EvolutionVersion
	// retryUnit is what the providers' retry delays count as a second.
	retryUnit time.Duration
	// messages are the messages sent through every instance
	// (actions.go).
	msgMu    sync.Mutex
	messages []Message
	// meta are Meta's WABAs and request budgets (meta.go).
	meta metaSim
}

// SetRateLimit makes the simulator count, in Spacing.Under, the calls to an
// instance that come less than d after the previous one, as a provider's
// per-instance rate limit would see them.
func (s *Simulator) SetRateLimit(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimit = d
}

// Spacing reports the intervals between the calls an instance received.
func (s *Simulator) Spacing(provider, id string) Spacing {
	s.mu.RLock()
	in, ok := s.instances[provider+"/"+id]
	s.mu.RUnlock()
	if !ok {
		return Spacing{}
	}
	in.spacingMu.Lock()
	defer in.spacingMu.Unlock()
	return in.spacing
}

// New returns a simulator without instances.
func New() *Simulator {
	s := &Simulator{start: time.Now(), mux: http.NewServeMux(), instances: map[string]*instance{}, accounts: map[string]*account{},
		evolution: Evolution23, retryUnit: time.Second}
	for _, p := range Providers() {
		for _, path := range append([]string{p.Path}, p.Aliases...) {
			for _, r := range p.routes {
				s.mux.HandleFunc(r.method+" "+path+r.path, func(w http.ResponseWriter, req *http.Request) { r.handle(s, w, req) })
			}
		}
	}
	return s
}

func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Set gives an instance of a provider its secret and a fixed behaviour,
// creating it if needed.
func (s *Simulator) Set(provider, id, secret string, b Behaviour) {
	s.Schedule(provider, id, secret, Step{Behaviour: b})
}

// Schedule gives an instance a cycle of behaviours, counted from the
// simulator's start.
func (s *Simulator) Schedule(provider, id, secret string, steps ...Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := provider + "/" + id
	in, ok := s.instances[key]
	if !ok {
		in = &instance{}
		s.instances[key] = in
	}
	in.secret, in.schedule, in.setAt, in.origin = secret, steps, time.Now(), time.Time{}
}

// Calls is how many requests an instance has received.
func (s *Simulator) Calls(provider, id string) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if in, ok := s.instances[provider+"/"+id]; ok {
		return in.calls.Load()
	}
	return 0
}

// QueueCalls is how many queue requests an instance has received.
func (s *Simulator) QueueCalls(provider, id string) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if in, ok := s.instances[provider+"/"+id]; ok {
		return in.queueCalls.Load()
	}
	return 0
}

// lookup counts a call to an instance and returns its secret and current
// behaviour, read under the lock since Set may change them at any time.
func (s *Simulator) lookup(provider, id string) (secret string, b Behaviour, ok bool) {
	secret, b, _, ok = s.lookupAt(provider, id, false)
	return secret, b, ok
}

// lookupAt is lookup that also says how long ago the behaviour began;
// queue counts a queue request instead of a state request.
func (s *Simulator) lookupAt(provider, id string, queue bool) (secret string, b Behaviour, since time.Duration, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	in, ok := s.instances[provider+"/"+id]
	if !ok {
		return "", Behaviour{}, 0, false
	}
	if queue {
		in.queueCalls.Add(1)
	} else {
		in.calls.Add(1)
		in.recordCall(time.Now(), s.rateLimit)
	}
	b, since = currentAt(in.schedule, s.elapsed(in))
	if len(in.schedule) == 1 {
		since = time.Since(in.setAt)
	}
	return in.secret, b, since, true
}

// elapsed is how far into its schedule an instance is: since its reboot
// when a reboot set it, else since the simulator's start. Every reader of
// a schedule (state requests, listings, notifications) goes through it.
// Under s.mu.
func (s *Simulator) elapsed(in *instance) time.Duration {
	if !in.origin.IsZero() {
		return time.Since(in.origin)
	}
	return time.Since(s.start)
}

func (in *instance) recordCall(now time.Time, limit time.Duration) {
	in.spacingMu.Lock()
	defer in.spacingMu.Unlock()
	sp := &in.spacing
	if sp.Calls > 0 {
		gap := now.Sub(sp.last)
		if sp.Calls == 1 || gap < sp.MinGap {
			sp.MinGap = gap
		}
		if gap < limit {
			sp.Under++
		}
	}
	sp.Calls++
	sp.last = now
}

func current(steps []Step, elapsed time.Duration) Behaviour {
	b, _ := currentAt(steps, elapsed)
	return b
}

// currentAt returns the behaviour of a schedule elapsed after its start,
// and how long ago that step began.
func currentAt(steps []Step, elapsed time.Duration) (Behaviour, time.Duration) {
	if len(steps) == 1 {
		return steps[0].Behaviour, elapsed
	}
	var cycle time.Duration
	for _, st := range steps {
		cycle += st.For
	}
	if cycle <= 0 {
		return steps[0].Behaviour, elapsed
	}
	at := elapsed % cycle
	for _, st := range steps {
		if at < st.For {
			return st.Behaviour, at
		}
		at -= st.For
	}
	return steps[len(steps)-1].Behaviour, at
}

// wait applies the latency, giving up when the client does.
func wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// fault writes the provider-independent part of a failure and reports
// whether it did.
func fault(w http.ResponseWriter, r *http.Request, b Behaviour) bool {
	switch b.Fault {
	case FaultUnauthorized:
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
	case FaultForbidden:
		http.Error(w, "Forbidden", http.StatusForbidden)
	case FaultRateLimited:
		if b.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(b.RetryAfter/time.Second)))
		}
		http.Error(w, "Too Many Requests", http.StatusTooManyRequests)
	case FaultServerError:
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
	case FaultBadGateway:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n"))
	case FaultNotFound:
		http.Error(w, "Not Found", http.StatusNotFound)
	case FaultHTML:
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<!DOCTYPE html><html><body><h1>Maintenance</h1></body></html>"))
	case FaultNotJSON:
		_, _ = w.Write([]byte("OK"))
	case FaultNull:
		writeJSON(w, http.StatusOK, "null")
	case FaultHuge:
		w.Header().Set("Content-Type", "application/json")
		chunk := make([]byte, 64<<10)
		for i := range chunk {
			chunk[i] = ' '
		}
		_, _ = w.Write([]byte(`{"stateInstance":"authorized","padding":"`))
		for range 64 { // 4 MiB
			if _, err := w.Write(chunk); err != nil {
				return true
			}
		}
		_, _ = w.Write([]byte(`"}`))
	case FaultHang:
		<-r.Context().Done()
	case FaultCloseConnection:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler)
	default:
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
