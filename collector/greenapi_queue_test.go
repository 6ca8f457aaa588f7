package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

const queueTestToken = "Queue-Token/0123456789+abc="

// withheld stands for errQueueWithheld as a test row's wantReason.
const withheld = "withheld"

// TestGreenAPIMessagesQueue reads every answer of getMessagesCount
// through the client, as the collector does. The fixtures and their
// sources are in testdata/greenapi/queue/README.md; the 400 texts are the
// state's.
func TestGreenAPIMessagesQueue(t *testing.T) {
	t.Parallel()
	queue := func(status int, fixture string, header ...string) providerServe {
		return replyFixture(t, "greenapi/queue", status, fixture, noPlaceholders, header...)
	}
	state := func(status int, fixture string, header ...string) providerServe {
		return replyFixture(t, "greenapi", status, fixture, noPlaceholders, header...)
	}
	for _, tc := range []struct {
		name       string
		serve      providerServe
		deadline   time.Duration
		want       int
		wantReason string // a Reason, withheld, or empty for want
	}{
		{"0, the documented example", queue(200, "count_0.json"), 0, 0, ""},
		{"3", queue(200, "count_3.json"), 0, 3, ""},
		{"3 under the Cyrillic key", queue(200, "count_3_cyrillic.json"), 0, 3, ""},
		{"a million: no cap", queue(200, "count_1000000.json"), 0, 1_000_000, ""},
		{"the bound", queue(200, "count_bound.json"), 0, maxQueueCount, ""},
		{"a count of exactly 64 KiB", replyBytes(200, paddedBody(`{"count":3}`, maxBodyBytes)), 0, 3, ""},

		// The instance is starting or not authorized: no count, no failure.
		{"400 starting or not authorized", state(400, "text_starting_or_not_authorized.txt"), 0, 0, withheld},
		{"400 starting", state(400, "text_starting.txt"), 0, 0, withheld},
		{"400 starting, capitalized", state(400, "text_starting_capitalized.txt"), 0, 0, withheld},
		{"400 not authorized", state(400, "text_not_authorized.txt"), 0, 0, withheld},
		// The texts say so only in a 400.
		{"200 with the starting text", state(200, "text_starting_or_not_authorized.txt"), 0, 0, ReasonBadResponse},
		{"400 another text", state(400, "text_validation.txt"), 0, 0, ReasonClientError},

		{"401", state(401, "empty.txt"), 0, 0, ReasonUnauthorized},
		{"200 with code 401", queue(200, "code401.json"), 0, 0, ReasonUnauthorized},
		{"429", state(429, "text_too_many_requests.txt", "Retry-After", "7"), 0, 0, ReasonRateLimited},
		{"466 quota", state(466, "quota_466.json"), 0, 0, ReasonQuotaExceeded},
		{"502 page", state(502, "html_502.html"), 0, 0, ReasonServerError},
		{"200 HTML", state(200, "html_200.html"), 0, 0, ReasonBadResponse},

		// Not a count.
		{"null", queue(200, "null.json"), 0, 0, ReasonBadResponse},
		{"{}", queue(200, "empty_object.json"), 0, 0, ReasonBadResponse},
		{"array", queue(200, "array.json"), 0, 0, ReasonBadResponse},
		{"negative", queue(200, "count_negative.json"), 0, 0, ReasonBadResponse},
		{"float", queue(200, "count_float.json"), 0, 0, ReasonBadResponse},
		{"string", queue(200, "count_string.json"), 0, 0, ReasonBadResponse},
		{"count null", queue(200, "count_null.json"), 0, 0, ReasonBadResponse},
		{"Count capitalized", queue(200, "count_capitalized.json"), 0, 0, ReasonBadResponse},
		{"absurd", queue(200, "count_absurd.json"), 0, 0, ReasonBadResponse},
		{"a count over 64 KiB", replyBytes(200, paddedBody(`{"count":3}`, maxBodyBytes+1)), 0, 0, ReasonBadResponse},

		{"hang", serveHang, 200 * time.Millisecond, 0, ReasonTimeout},
		{"hang in body", serveHangInBody, 200 * time.Millisecond, 0, ReasonTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			apiURL, rec := startRecordingServer(t, tc.serve)
			c := newTestClient(t, "greenapi", instanceYAML("greenapi", "api_url", apiURL, "id_instance", "1101000001", "api_token", queueTestToken)+"    messages_queue: true\n")
			deadline := tc.deadline
			if deadline == 0 {
				deadline = providerTestSlack
			}
			ctx, cancel := context.WithTimeout(t.Context(), deadline)
			defer cancel()
			n, err := c.Client.(queueReader).MessagesQueue(ctx)
			switch tc.wantReason {
			case "":
				if err != nil || n != tc.want {
					t.Fatalf("got %d, %v; want %d", n, err, tc.want)
				}
			case withheld:
				if !errors.Is(err, errQueueWithheld) {
					t.Fatalf("got %d, %v; want the count withheld", n, err)
				}
			default:
				e := checkReason(t, err, tc.wantReason)
				checkNoLeak(t, "error", e.Error(), queueTestToken)
				if tc.wantReason == ReasonRateLimited && e.RetryAfter != 7*time.Second {
					t.Errorf("Retry-After %s, want 7s", e.RetryAfter)
				}
			}
			if r := rec.requests(); len(r) != 1 || r[0].path != "/waInstance1101000001/getMessagesCount/"+queueTestToken {
				t.Errorf("requests %+v, want one to getMessagesCount", r)
			}
			logs := c.logs.String()
			checkNoLeak(t, "logs", logs, queueTestToken)
			if got := c.metrics.stats.methods; len(got) != 2 || got[1] != "getMessagesCount" {
				t.Fatalf("methods %v", got)
			}
			// Every call is counted; only failures are errors.
			calls := &c.metrics.stats.calls[1]
			if n := calls.count.Load(); n != 1 {
				t.Errorf("getMessagesCount calls counted %d, want 1", n)
			}
			for k, r := range Reasons {
				want := uint64(0)
				if r == tc.wantReason {
					want = 1
				}
				if got := calls.errors[k].Load(); got != want {
					t.Errorf("errors with reason %s: %d, want %d", r, got, want)
				}
			}
			if failed := strings.Contains(logs, "Call failed"); failed != (tc.wantReason != "" && tc.wantReason != withheld) {
				t.Errorf("logged as failing: %v, want %v:\n%s", failed, !failed, logs)
			}
		})
	}
}

func noPlaceholders(*http.Request) []string { return nil }

// queueEnv is a collector whose GREEN-API instance "shop" reads its queue
// from a simulator.
type queueEnv struct {
	c    *Collector
	sim  *simulator.Simulator
	logs *testlog.Buffer
}

func newQueueEnv(t *testing.T, def bool, instanceExtra string, b simulator.Behaviour) *queueEnv {
	t.Helper()
	sim := simulator.New()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sim.Set("greenapi", "1101000001", "tok", b)
	yml := fmt.Sprintf("instances:\n  - {name: shop, provider: greenapi, api_url: %q, id_instance: \"1101000001\", api_token: tok%s}\n", srv.URL, instanceExtra)
	cfg, err := config.Load([]byte(yml), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := testlog.New()
	c := New(logger, Options{Concurrency: 2, MessagesQueue: def})
	t.Cleanup(c.Close)
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	return &queueEnv{c: c, sim: sim, logs: logs}
}

// set gives the instance a behaviour.
func (e *queueEnv) set(b simulator.Behaviour) { e.sim.Set("greenapi", "1101000001", "tok", b) }

func (e *queueEnv) scrape(t *testing.T) string {
	t.Helper()
	return written(t, e.c.Refresh(context.Background()))
}

// queueSample is the sample of the instance's queue.
func queueSample(n int) string {
	return fmt.Sprintf(`whatsapp_outgoing_queue_messages{provider="greenapi",name="shop"} %d`, n)
}

// checkScrape fails the test unless the scrape holds every line of want
// (the sample and its value) and no sample of the names in absent.
func checkScrape(t *testing.T, text string, want []string, absent ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w+"\n") {
			t.Errorf("scrape lacks %s:\n%s", w, text)
		}
	}
	for _, a := range absent {
		if strings.Contains(text, "\n"+a+"{") {
			t.Errorf("scrape holds %s:\n%s", a, text)
		}
	}
}

func TestQueueIsOptIn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		def   bool
		extra string
		want  bool
	}{
		{"default off", false, "", false},
		{"default on", true, "", true},
		{"instance on", false, ", messages_queue: true", true},
		{"instance off over default on", true, ", messages_queue: false", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newQueueEnv(t, tc.def, tc.extra, simulator.Behaviour{State: "authorized", Queue: 12})
			text := e.scrape(t)
			got := strings.Contains(text, queueSample(12)+"\n")
			if got != tc.want || (e.sim.QueueCalls("greenapi", "1101000001") > 0) != tc.want {
				t.Errorf("queue exposed %v, %d queue calls; want watching %v", got, e.sim.QueueCalls("greenapi", "1101000001"), tc.want)
			}
			// Without the queue, no series of its method.
			if strings.Contains(text, `method="getMessagesCount"`) != tc.want {
				t.Errorf("getMessagesCount series present: %v, want %v", !tc.want, tc.want)
			}
		})
	}
}

// TestQueueCountWithheldAndFailing follows an instance's queue through
// counts, failures and the answers that withhold the count while the
// instance is starting or not authorized.
func TestQueueCountWithheldAndFailing(t *testing.T) {
	t.Parallel()
	const (
		calls = `whatsapp_api_request_duration_seconds_count{provider="greenapi",name="shop",method="getMessagesCount"} `
		errs  = `whatsapp_api_request_errors_total{provider="greenapi",name="shop",method="getMessagesCount",reason=`
	)
	e := newQueueEnv(t, true, "", simulator.Behaviour{State: "authorized", Queue: 900})
	// No cap, and no series of one.
	checkScrape(t, e.scrape(t), []string{queueSample(900)}, "whatsapp_outgoing_queue_capped")

	e.set(simulator.Behaviour{State: "yellowCard", Queue: 7, QueueCountKey: simulator.GreenAPICyrillicCountKey})
	checkScrape(t, e.scrape(t), []string{queueSample(7)})

	// Not authorized: the provider withholds the count, which is no
	// failure, and the last count read stays.
	e.set(simulator.Behaviour{State: "notAuthorized", Queue: 30})
	text := e.scrape(t)
	checkScrape(t, text, []string{
		`whatsapp_instance_state{provider="greenapi",name="shop",state="notAuthorized"} 1`,
		queueSample(7),
		calls + "3",
	}, "whatsapp_api_request_errors_total")
	checkScrape(t, e.scrape(t), []string{queueSample(7), calls + "4"}, "whatsapp_api_request_errors_total")

	// A failing queue request leaves the state alone and hides the queue.
	e.set(simulator.Behaviour{State: "authorized", Queue: 3, QueueFault: simulator.FaultServerError})
	checkScrape(t, e.scrape(t), []string{
		`whatsapp_instance_state{provider="greenapi",name="shop",state="authorized"} 1`,
		`whatsapp_up{provider="greenapi",name="shop"} 1`,
		errs + `"server_error"} 1`,
	}, "whatsapp_outgoing_queue_messages")

	// Starting after the failure: the count withheld again brings back
	// the last one read.
	e.set(simulator.Behaviour{State: "starting", Queue: 50})
	checkScrape(t, e.scrape(t), []string{queueSample(7), errs + `"server_error"} 1`})

	// A failing state request makes no queue request.
	e.set(simulator.Behaviour{Fault: simulator.FaultServerError, Queue: 3})
	before := e.sim.QueueCalls("greenapi", "1101000001")
	checkScrape(t, e.scrape(t), nil, "whatsapp_outgoing_queue_messages")
	if n := e.sim.QueueCalls("greenapi", "1101000001") - before; n != 0 {
		t.Errorf("%d queue requests after a failed state request", n)
	}

	e.set(simulator.Behaviour{State: "authorized", Queue: 3})
	checkScrape(t, e.scrape(t), []string{queueSample(3)})

	// One failure logged, as one; its recovery too.
	logs := e.logs.String()
	if n := strings.Count(logs, "Queue request failing"); n != 1 {
		t.Errorf("%d queue failures logged, want 1:\n%s", n, logs)
	}
	if n := strings.Count(logs, "Queue request recovered"); n != 1 {
		t.Errorf("%d queue recoveries logged, want 1:\n%s", n, logs)
	}
}

// An instance starting or not authorized from the start has no count to
// show until it gives one.
func TestQueueWithheldBeforeAnyCount(t *testing.T) {
	t.Parallel()
	for _, state := range []string{"starting", "notAuthorized", simulator.GreenAPITextStarting} {
		t.Run(state, func(t *testing.T) {
			t.Parallel()
			e := newQueueEnv(t, true, "", simulator.Behaviour{State: state, Queue: 5})
			checkScrape(t, e.scrape(t), []string{
				`whatsapp_up{provider="greenapi",name="shop"} 1`,
				`whatsapp_api_request_duration_seconds_count{provider="greenapi",name="shop",method="getMessagesCount"} 1`,
			}, "whatsapp_outgoing_queue_messages", "whatsapp_api_request_errors_total")
			if n := e.sim.QueueCalls("greenapi", "1101000001"); n != 1 {
				t.Errorf("%d queue calls, want 1", n)
			}
			e.set(simulator.Behaviour{State: "authorized", Queue: 5})
			checkScrape(t, e.scrape(t), []string{queueSample(5)})
			if logs := e.logs.String(); strings.Contains(logs, "Queue request") {
				t.Errorf("the withheld count was logged:\n%s", logs)
			}
		})
	}
}

// TestQueueRetryAfterHoldsOnlyTheQueue: GREEN-API limits each method
// of an instance on its own, so a 429 on getMessagesCount holds the queue
// call for its Retry-After and not getStateInstance, whose answer
// whatsapp_up and the state keep showing.
func TestQueueRetryAfterHoldsOnlyTheQueue(t *testing.T) {
	t.Parallel()
	e := newQueueEnv(t, true, "", simulator.Behaviour{State: "authorized", QueueFault: simulator.FaultRateLimited, RetryAfter: time.Hour})
	e.scrape(t)
	calls, queueCalls := e.sim.Calls("greenapi", "1101000001"), e.sim.QueueCalls("greenapi", "1101000001")
	if calls != 1 || queueCalls != 1 {
		t.Fatalf("%d state and %d queue calls, want one of each", calls, queueCalls)
	}
	e.set(simulator.Behaviour{State: "blocked", QueueFault: simulator.FaultRateLimited, RetryAfter: time.Hour})
	checkScrape(t, e.scrape(t), []string{
		`whatsapp_instance_state{provider="greenapi",name="shop",state="blocked"} 1`,
		`whatsapp_up{provider="greenapi",name="shop"} 1`,
		`whatsapp_api_request_errors_total{provider="greenapi",name="shop",method="getMessagesCount",reason="rate_limited"} 1`,
	}, "whatsapp_outgoing_queue_messages")
	if n := e.sim.Calls("greenapi", "1101000001"); n != calls+1 {
		t.Errorf("%d state calls, want the state called again within the queue's Retry-After", n)
	}
	if n := e.sim.QueueCalls("greenapi", "1101000001"); n != queueCalls {
		t.Errorf("%d queue calls, want none more within its Retry-After", n-queueCalls)
	}
	if n := strings.Count(e.logs.String(), "Queue request failing"); n != 1 {
		t.Errorf("queue failure logged %d times, want once", n)
	}
}

// TestStateRetryAfterHoldsBoth: a 429 on getStateInstance holds the state
// call for its Retry-After, and the queue call with it, which is made
// only after a state call that worked.
func TestStateRetryAfterHoldsBoth(t *testing.T) {
	t.Parallel()
	e := newQueueEnv(t, true, "", simulator.Behaviour{Fault: simulator.FaultRateLimited, RetryAfter: time.Hour, Queue: 4})
	e.scrape(t)
	e.set(simulator.Behaviour{State: "authorized", Queue: 4})
	checkScrape(t, e.scrape(t), []string{`whatsapp_up{provider="greenapi",name="shop"} 0`}, "whatsapp_outgoing_queue_messages")
	if calls, queueCalls := e.sim.Calls("greenapi", "1101000001"), e.sim.QueueCalls("greenapi", "1101000001"); calls != 1 || queueCalls != 0 {
		t.Errorf("%d state and %d queue calls, want the one state call", calls, queueCalls)
	}
}

// queuedMessage is a message as showMessagesQueue lists it: a person's
// text and number, which nothing may quote.
const (
	queuedText      = "Hello Anna, your code is kumquat"
	queuedRecipient = "79001234567"
	queuedMessage   = `{"messageID":"BAE5F4886F6F2D05","messagesIDs":["BAE5F4886F6F2D05"],"type":"textMessage",` +
		`"body":{"chatId":"` + queuedRecipient + `@c.us","message":"` + queuedText + `"}}`
)

// TestQueueAnswerNeverQuoted: whatever the queue call brings back in
// place of a count, its error text and the log lines give its kind and
// size, never its content.
func TestQueueAnswerNeverQuoted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		body   string
		reason string
	}{
		{"showMessagesQueue's list", 200, "[" + queuedMessage + "]", ReasonBadResponse},
		{"an object without a count", 200, `{"messages":[` + queuedMessage + `]}`, ReasonBadResponse},
		{"a count that is a message", 200, `{"count":` + queuedMessage + `}`, ReasonBadResponse},
		{"a count that is a text", 200, `{"count":"` + queuedText + `"}`, ReasonBadResponse},
		{"a JSON string", 200, `"` + queuedText + `"`, ReasonBadResponse},
		{"plain text", 200, queuedText, ReasonBadResponse},
		{"an HTML page", 200, "<html><body>" + queuedText + "</body></html>", ReasonBadResponse},
		{"400 with another text", 400, queuedText, ReasonClientError},
		{"429", 429, queuedMessage, ReasonRateLimited},
		{"466", 466, queuedMessage, ReasonQuotaExceeded},
		{"500", 500, queuedMessage, ReasonServerError},
		{"502 page", 502, "<html>" + queuedText + "</html>", ReasonServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			apiURL, _ := startRecordingServer(t, replyBytes(tc.status, []byte(tc.body)))
			c := newTestClient(t, "greenapi", instanceYAML("greenapi", "api_url", apiURL, "id_instance", "1101000001", "api_token", queueTestToken)+"    messages_queue: true\n")
			_, err := c.Client.(queueReader).MessagesQueue(t.Context())
			e := checkReason(t, err, tc.reason)
			out := e.Error() + "\n" + c.logs.String()
			if !strings.Contains(c.logs.String(), "Call failed") {
				t.Errorf("the failure is not logged:\n%s", out)
			}
			for _, s := range []string{queuedText, queuedRecipient, "Anna", "kumquat"} {
				if strings.Contains(out, s) {
					t.Errorf("%q quoted:\n%s", s, out)
				}
			}
		})
	}
}

// TestQueueAnswerBounded: a queue answer of one 24 MiB message, or one
// that never ends, is read no further than 64 KiB and fails with an
// error that says so. Not parallel: it measures the process's
// allocations.
func TestQueueAnswerBounded(t *testing.T) {
	huge := []byte(`[{"type":"textMessage","body":{"message":"` + strings.Repeat("x", 24<<20) + `"}}]`)
	chunk := bytes.Repeat([]byte("y"), 32<<10)
	for _, tc := range []struct {
		name  string
		serve providerServe
	}{
		{"24 MiB message", replyBytes(200, huge)},
		{"endless", func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
			_, _ = w.Write([]byte(`{"count":`))
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-r.Context().Done():
					return
				default:
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			apiURL, _ := startRecordingServer(t, tc.serve)
			c := newTestClient(t, "greenapi", instanceYAML("greenapi", "api_url", apiURL, "id_instance", "1101000001", "api_token", queueTestToken)+"    messages_queue: true\n")
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			ctx, cancel := context.WithTimeout(t.Context(), providerTestSlack)
			defer cancel()
			_, err := c.Client.(queueReader).MessagesQueue(ctx)
			runtime.ReadMemStats(&after)
			e := checkReason(t, err, ReasonBadResponse)
			if want := fmt.Sprintf("body larger than %d bytes", maxBodyBytes); !strings.Contains(e.Error(), want) {
				t.Errorf("error %q, want it to say %q", e, want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
				t.Errorf("the call allocated %d bytes, want at most 4 MiB", alloc)
			}
		})
	}
}
