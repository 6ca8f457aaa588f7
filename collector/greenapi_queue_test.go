package collector

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

const queueTestToken = "Queue-Token/0123456789+abc="

// TestGreenAPIMessagesQueue reads every fixture and failure through the
// client, as the collector does.
func TestGreenAPIMessagesQueue(t *testing.T) {
	// The bound, not its size, is under test: 64 MiB of JSON takes
	// seconds to read with the race detector on.
	limit := maxCountBytes
	maxCountBytes = 4 << 20
	t.Cleanup(func() { maxCountBytes = limit })
	huge := func(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("["))
		element := []byte(`{"type":"sendMessage","body":{"message":"` + strings.Repeat("x", 1<<20) + `"}},`)
		for range maxCountBytes/int64(len(element)) + 2 {
			if _, err := w.Write(element); err != nil {
				return
			}
		}
	}
	for _, tc := range []struct {
		name       string
		serve      providerServe
		deadline   time.Duration
		want       int
		wantReason string
	}{
		{"empty", replyFixture(t, "greenapi/queue", 200, "empty.json", noPlaceholders), 0, 0, ""},
		{"a few", replyFixture(t, "greenapi/queue", 200, "few.json", noPlaceholders), 0, 3, ""},
		{"499", replyFixture(t, "greenapi/queue", 200, "499.json", noPlaceholders), 0, 499, ""},
		{"exactly 500, the cap", replyFixture(t, "greenapi/queue", 200, "cap.json", noPlaceholders), 0, 500, ""},
		{"401", replyFixture(t, "greenapi", 401, "empty.txt", noPlaceholders), 0, 0, ReasonUnauthorized},
		{"200 with code 401", replyFixture(t, "greenapi/queue", 200, "code401.json", noPlaceholders), 0, 0, ReasonUnauthorized},
		{"429", replyFixture(t, "greenapi", 429, "empty.txt", noPlaceholders, "Retry-After", "7"), 0, 0, ReasonRateLimited},
		{"466 quota", replyFixture(t, "greenapi", 466, "quota_466.json", noPlaceholders), 0, 0, ReasonQuotaExceeded},
		{"400 state text is an error here", replyFixture(t, "greenapi", 400, "text_400_echo_decoded.txt", noPlaceholders), 0, 0, ReasonClientError},
		{"502 page", replyFixture(t, "greenapi", 502, "html_502.html", noPlaceholders), 0, 0, ReasonServerError},
		{"200 HTML", replyFixture(t, "greenapi", 200, "html_200.html", noPlaceholders), 0, 0, ReasonBadResponse},
		{"object", replyFixture(t, "greenapi/queue", 200, "object.json", noPlaceholders), 0, 0, ReasonBadResponse},
		{"null", replyFixture(t, "greenapi/queue", 200, "null.json", noPlaceholders), 0, 0, ReasonBadResponse},
		{"truncated", replyFixture(t, "greenapi/queue", 200, "truncated.json", noPlaceholders), 0, 0, ReasonBadResponse},
		{"endless", huge, 0, 0, ReasonBadResponse},
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
			if tc.wantReason == "" {
				if err != nil || n != tc.want {
					t.Fatalf("got %d, %v; want %d", n, err, tc.want)
				}
			} else {
				e := checkReason(t, err, tc.wantReason)
				checkNoLeak(t, "error", e.Error(), queueTestToken)
				if strings.Contains(e.Error(), "Order 1 is ready") {
					t.Errorf("the error quotes queued messages: %v", e)
				}
				if tc.wantReason == ReasonRateLimited && e.RetryAfter != 7*time.Second {
					t.Errorf("Retry-After %s, want 7s", e.RetryAfter)
				}
			}
			if r := rec.requests(); len(r) != 1 || r[0].path != "/waInstance1101000001/showMessagesQueue/"+queueTestToken {
				t.Errorf("requests %+v, want one to showMessagesQueue", r)
			}
			checkNoLeak(t, "logs", c.logs.String(), queueTestToken)
			if got := c.metrics.stats.methods; len(got) != 2 || got[1] != "showMessagesQueue" {
				t.Fatalf("methods %v", got)
			}
			if n := c.metrics.stats.calls[1].count.Load(); n != 1 {
				t.Errorf("showMessagesQueue calls counted %d, want 1", n)
			}
		})
	}
}

func noPlaceholders(*http.Request) []string { return nil }

// queueEnv is a collector whose GREEN-API instance "shop" reads its queue
// from a simulator.
type queueEnv struct {
	c   *Collector
	sim *simulator.Simulator
}

func newQueueEnv(t *testing.T, def bool, instanceExtra string) *queueEnv {
	t.Helper()
	sim := simulator.New()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sim.Set("greenapi", "1101000001", "tok", simulator.Behaviour{State: "authorized", Queue: 12})
	yml := fmt.Sprintf("instances:\n  - {name: shop, provider: greenapi, api_url: %q, id_instance: \"1101000001\", api_token: tok%s}\n", srv.URL, instanceExtra)
	cfg, err := config.Load([]byte(yml), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := New(nil, Options{Concurrency: 2, MessagesQueue: def})
	t.Cleanup(c.Close)
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	return &queueEnv{c: c, sim: sim}
}

func (e *queueEnv) scrape(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	if _, err := e.c.Refresh(context.Background()).WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestQueueIsOptIn(t *testing.T) {
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
			e := newQueueEnv(t, tc.def, tc.extra)
			text := e.scrape(t)
			got := strings.Contains(text, `whatsapp_outgoing_queue_messages{provider="greenapi",name="shop"} 12`+"\n")
			if got != tc.want || (e.sim.QueueCalls("greenapi", "1101000001") > 0) != tc.want {
				t.Errorf("queue exposed %v, %d queue calls; want watching %v", got, e.sim.QueueCalls("greenapi", "1101000001"), tc.want)
			}
			// Without the queue, no series of its method.
			if strings.Contains(text, `method="showMessagesQueue"`) != tc.want {
				t.Errorf("showMessagesQueue series present: %v, want %v", !tc.want, tc.want)
			}
		})
	}
}

func TestQueueCappedAndFailing(t *testing.T) {
	e := newQueueEnv(t, true, "")
	e.sim.Set("greenapi", "1101000001", "tok", simulator.Behaviour{State: "authorized", Queue: 900})
	text := e.scrape(t)
	for _, want := range []string{
		`whatsapp_outgoing_queue_messages{provider="greenapi",name="shop"} 500`,
		`whatsapp_outgoing_queue_capped{provider="greenapi",name="shop"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("scrape lacks %s", want)
		}
	}
	// A failing queue request leaves the state alone and hides the queue.
	e.sim.Set("greenapi", "1101000001", "tok", simulator.Behaviour{State: "authorized", Queue: 3, QueueFault: simulator.FaultServerError})
	text = e.scrape(t)
	for _, want := range []string{
		`whatsapp_instance_state{provider="greenapi",name="shop",state="authorized"} 1`,
		`whatsapp_up{provider="greenapi",name="shop"} 1`,
		`whatsapp_api_request_errors_total{provider="greenapi",name="shop",method="showMessagesQueue",reason="server_error"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("scrape lacks %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, "whatsapp_outgoing_queue_messages{") {
		t.Errorf("a failed queue request still shows a queue")
	}
	// A failing state request makes no queue request.
	e.sim.Set("greenapi", "1101000001", "tok", simulator.Behaviour{Fault: simulator.FaultServerError, Queue: 3})
	before := e.sim.QueueCalls("greenapi", "1101000001")
	text = e.scrape(t)
	if n := e.sim.QueueCalls("greenapi", "1101000001") - before; n != 0 {
		t.Errorf("%d queue requests after a failed state request", n)
	}
	if strings.Contains(text, "whatsapp_outgoing_queue_messages{") {
		t.Errorf("queue shown though unknown")
	}
	e.sim.Set("greenapi", "1101000001", "tok", simulator.Behaviour{State: "authorized", Queue: 3})
	if text = e.scrape(t); !strings.Contains(text, `whatsapp_outgoing_queue_messages{provider="greenapi",name="shop"} 3`+"\n") {
		t.Errorf("queue not back")
	}
}

func TestQueueRetryAfterHoldsTheInstance(t *testing.T) {
	e := newQueueEnv(t, true, "")
	e.sim.Set("greenapi", "1101000001", "tok", simulator.Behaviour{State: "authorized", QueueFault: simulator.FaultRateLimited, RetryAfter: time.Hour})
	e.scrape(t)
	calls, queueCalls := e.sim.Calls("greenapi", "1101000001"), e.sim.QueueCalls("greenapi", "1101000001")
	e.scrape(t)
	if e.sim.Calls("greenapi", "1101000001") != calls || e.sim.QueueCalls("greenapi", "1101000001") != queueCalls {
		t.Errorf("the instance was called again within the queue's Retry-After")
	}
}
