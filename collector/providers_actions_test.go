package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// The providers' actions over real HTTP: against the simulator, and
// against a server that records the requests to check their shape.

// TestGreenAPIReboot: a reboot done mends an instance stuck in starting,
// or does not; isReboot false is not_done; a 429 holds the next reboot;
// providers without reboot refuse it.
func TestGreenAPIReboot(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{MinInterval: time.Hour})
	starting := simulator.Behaviour{State: "starting"}
	env.load(t,
		env.add(simulator.GreenAPI, "stuck", "1101000001", starting),
		env.add(simulator.GreenAPI, "stays", "1101000002", starting),
		env.add(simulator.GreenAPI, "refuses", "1101000003", starting),
		env.add(simulator.GreenAPI, "busy", "1101000004", starting),
		env.add(simulator.Wachat, "wa", "wa-1", simulator.Behaviour{State: "connecting"}),
		env.add(simulator.Evolution, "evo", "evo-1", simulator.Behaviour{State: "connecting"}))
	env.sim.SetReboot(simulator.GreenAPI, "1101000001", simulator.RebootBehaviour{After: []simulator.Step{{Behaviour: simulator.Behaviour{State: "authorized"}}}})
	env.sim.SetReboot(simulator.GreenAPI, "1101000003", simulator.RebootBehaviour{NotDone: true})
	env.sim.SetReboot(simulator.GreenAPI, "1101000004", simulator.RebootBehaviour{Fault: simulator.FaultRateLimited, RetryAfter: 30 * time.Second})
	env.c.Refresh(context.Background())
	ctx := context.Background()

	for _, name := range []string{"stuck", "stays"} {
		if err := env.c.Reboot(ctx, name); err != nil {
			t.Fatalf("Reboot(%s): %v", name, err)
		}
	}
	for name, want := range map[string]string{"stuck": "authorized", "stays": "starting"} {
		s, err := env.c.Check(ctx, name)
		if err != nil || s.State != want {
			t.Errorf("Check(%s) after the reboot = %q, %v; want %q", name, s.State, err, want)
		}
	}
	checkReason(t, env.c.Reboot(ctx, "refuses"), ReasonNotDone)
	e := checkReason(t, env.c.Reboot(ctx, "busy"), ReasonRateLimited)
	if e.RetryAfter != 30*time.Second {
		t.Errorf("RetryAfter = %v, want 30s", e.RetryAfter)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := env.c.Reboot(dctx, "busy"); !errors.Is(err, ErrHeld) {
		t.Errorf("Reboot within the Retry-After = %v, want held", err)
	}
	for id, want := range map[string]int64{"1101000001": 1, "1101000002": 1, "1101000003": 1, "1101000004": 1} {
		if n := env.sim.Reboots(simulator.GreenAPI, id); n != want {
			t.Errorf("instance %s rebooted %d times, want %d", id, n, want)
		}
	}
	for _, name := range []string{"wa", "evo"} {
		if err := env.c.Reboot(ctx, name); !errors.Is(err, ErrNotSupported) {
			t.Errorf("Reboot(%s) = %v, want ErrNotSupported", name, err)
		}
		if s, _ := env.c.Status(name); s.CanReboot || !s.CanSend {
			t.Errorf("Status(%s): CanReboot %v, CanSend %v", name, s.CanReboot, s.CanSend)
		}
	}
	if err := env.c.Reboot(ctx, "nope"); !errors.Is(err, ErrUnknownInstance) {
		t.Errorf("Reboot(nope) = %v", err)
	}
}

// TestSendTextProviders: each provider's simulator takes the message as
// its server would (Evolution API in 1.8 and 2.x), and its failures come
// back classified, without the number.
func TestSendTextProviders(t *testing.T) {
	t.Parallel()
	for name, v := range map[string]simulator.EvolutionVersion{"evolution 1.8": simulator.Evolution18, "evolution 2.3": simulator.Evolution23} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, Options{MinInterval: time.Hour})
			env.sim.SetEvolutionVersion(v)
			ok := simulator.Behaviour{State: "authorized"}
			open := simulator.Behaviour{State: "open"}
			env.load(t,
				env.add(simulator.GreenAPI, "shop", "1101000001", ok),
				env.add(simulator.Evolution, "evo", "evo-1", open),
				env.add(simulator.Wachat, "wa", "wa-1", open))
			ctx := context.Background()
			text := "Alert: shop is starting\nsee https://status.example/ «ok»"
			for _, name := range []string{"shop", "evo", "wa"} {
				if err := env.c.SendText(ctx, name, "79001234567", text); err != nil {
					t.Fatalf("SendText(%s): %v", name, err)
				}
			}
			want := []simulator.Message{
				{Provider: simulator.GreenAPI, Instance: "1101000001", To: "79001234567", Text: text},
				{Provider: simulator.Evolution, Instance: "evo-1", To: "79001234567", Text: text},
				{Provider: simulator.Wachat, Instance: "wa-1", To: "79001234567", Text: text},
			}
			if got := env.sim.Messages(); !reflect.DeepEqual(got, want) {
				t.Errorf("messages:\n%+v\nwant\n%+v", got, want)
			}

			env.sim.SetSend(simulator.GreenAPI, "1101000001", simulator.SendBehaviour{Fault: simulator.FaultQuotaExceeded})
			env.sim.SetSend(simulator.Evolution, "evo-1", simulator.SendBehaviour{Fault: simulator.FaultClientError})
			env.sim.SetSend(simulator.Wachat, "wa-1", simulator.SendBehaviour{Fault: simulator.FaultUnsuccessful})
			for name, reason := range map[string]string{"shop": ReasonQuotaExceeded, "evo": ReasonClientError, "wa": ReasonBadResponse} {
				err := env.c.SendText(ctx, name, "79001234567", text)
				checkReason(t, err, reason)
				if err != nil && (strings.Contains(err.Error(), "79001234567") || strings.Contains(err.Error(), "Alert")) {
					t.Errorf("SendText(%s)'s error quotes the number or the text: %v", name, err)
				}
			}
			if n := len(env.sim.Messages()); n != 3 {
				t.Errorf("%d messages, want 3", n)
			}
		})
	}
	t.Run("length", func(t *testing.T) {
		t.Parallel()
		env := newTestEnv(t, Options{MinInterval: time.Hour})
		env.load(t, env.add(simulator.GreenAPI, "shop", "1101000001", simulator.Behaviour{State: "authorized"}))
		checkReason(t, env.c.SendText(context.Background(), "shop", "79001234567", strings.Repeat("я", 20001)), ReasonClientError)
		if err := env.c.SendText(context.Background(), "shop", "79001234567", strings.Repeat("я", 20000)); err != nil {
			t.Errorf("20 000 characters: %v", err)
		}
	})
}

// actionRequest is a request as the recording server saw it.
type actionRequest struct {
	method, path, auth, apikey, contentType string
	body                                    map[string]any
}

// actionServer answers every request with answer and records it.
func actionServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) (string, func() []actionRequest) {
	var mu sync.Mutex
	var got []actionRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		req := actionRequest{method: r.Method, path: r.URL.EscapedPath(), auth: r.Header.Get("Authorization"),
			apikey: r.Header.Get("apikey"), contentType: r.Header.Get("Content-Type")}
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &req.body); err != nil {
				t.Errorf("request body is not a JSON object: %v", err)
			}
		}
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []actionRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]actionRequest(nil), got...)
	}
}

// actionCollector watches one instance, from yml's one item.
func actionCollector(t *testing.T, item string) *Collector {
	cfg, err := config.Load([]byte("instances:\n"+item), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := New(discardLogger(), Options{Concurrency: 2, MinInterval: time.Hour})
	t.Cleanup(c.Close)
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	return c
}

const actionToken = "Action-Token/0123456789+abcdef="

// TestActionRequestShapes: each provider's requests as its documentation
// and code give them (the sources are named in greenapi_actions.go,
// evolution_actions.go and wachat_actions.go).
func TestActionRequestShapes(t *testing.T) {
	t.Parallel()
	ok := func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/reboot/"):
			fmt.Fprint(w, `{"isReboot":true}`)
		case strings.Contains(r.URL.Path, "/sendMessage/"):
			fmt.Fprint(w, `{"idMessage":"BAE5F4886F7A2F5F"}`)
		case strings.Contains(r.URL.Path, "/message/sendText/"):
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"key":{"id":"BAE5"},"status":"PENDING"}`)
		default:
			fmt.Fprint(w, `{"success":true}`)
		}
	}
	escaped := "Action-Token%2F0123456789+abcdef="
	for _, tc := range []struct {
		provider, item string
		reboot         bool
		want           []actionRequest
	}{
		{"greenapi", `{name: x, provider: greenapi, api_url: %q, id_instance: "1101000001", api_token: %q}`, true, []actionRequest{
			{method: "GET", path: "/waInstance1101000001/reboot/" + escaped},
			{method: "POST", path: "/waInstance1101000001/sendMessage/" + escaped, contentType: "application/json",
				body: map[string]any{"chatId": "79001234567@c.us", "message": "hi"}},
		}},
		{"evolution", `{name: x, provider: evolution, api_url: %q, instance_name: "my inst", api_key: %q}`, false, []actionRequest{
			{method: "POST", path: "/message/sendText/my%20inst", apikey: actionToken, contentType: "application/json",
				body: map[string]any{"number": "79001234567", "text": "hi", "textMessage": map[string]any{"text": "hi"}}},
		}},
		{"wachat", `{name: x, provider: wachat, api_url: %q, instance_name: "t1_shop", api_key: %q}`, false, []actionRequest{
			{method: "POST", path: "/api/v1/send/text", auth: "Bearer " + actionToken, contentType: "application/json",
				body: map[string]any{"instanceName": "t1_shop", "number": "79001234567", "type": "text", "message": "hi"}},
		}},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			url, got := actionServer(t, ok)
			if tc.provider == "wachat" {
				url += "/api/v1"
			}
			c := actionCollector(t, "  - "+fmt.Sprintf(tc.item, url, actionToken)+"\n")
			if tc.reboot {
				if err := c.Reboot(context.Background(), "x"); err != nil {
					t.Fatalf("Reboot: %v", err)
				}
			}
			if err := c.SendText(context.Background(), "x", "79001234567", "hi"); err != nil {
				t.Fatalf("SendText: %v", err)
			}
			if g := got(); !reflect.DeepEqual(g, tc.want) {
				t.Errorf("requests:\n%+v\nwant\n%+v", g, tc.want)
			}
		})
	}
}

// TestActionErrorsHideSecrets: an answer that echoes the request, URL and
// headers, comes back in no error with the token in it.
func TestActionErrorsHideSecrets(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusInternalServerError, http.StatusOK, http.StatusBadRequest, http.StatusTooManyRequests} {
		echo := func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"url":%q,"apikey":%q,"auth":%q}`, r.URL.String(), r.Header.Get("apikey"), r.Header.Get("Authorization"))
		}
		url, _ := actionServer(t, echo)
		items := map[string]string{
			"greenapi":  fmt.Sprintf(`{name: x, provider: greenapi, api_url: %q, id_instance: "1", api_token: %q}`, url, actionToken),
			"evolution": fmt.Sprintf(`{name: x, provider: evolution, api_url: %q, instance_name: "i", api_key: %q}`, url, actionToken),
			"wachat":    fmt.Sprintf(`{name: x, provider: wachat, api_url: %q, instance_name: "i", api_key: %q}`, url, actionToken),
		}
		for provider, item := range items {
			c := actionCollector(t, "  - "+item+"\n")
			errs := []error{c.SendText(context.Background(), "x", "79001234567", "hi")}
			if provider == "greenapi" {
				errs = append(errs, c.Reboot(context.Background(), "x"))
			}
			for _, err := range errs {
				if err == nil {
					if status == http.StatusOK && provider != "greenapi" {
						continue // a 200 is a message taken
					}
					t.Errorf("%s, HTTP %d: no error", provider, status)
					continue
				}
				checkNoLeak(t, fmt.Sprintf("%s's error for HTTP %d", provider, status), err.Error(), actionToken)
			}
		}
	}
}

// TestCheckListedInstance: Check of an instance whose state comes from
// its account's listing makes the listing again, not a call of its own,
// and returns what the new listing says.
func TestCheckListedInstance(t *testing.T) {
	t.Parallel()
	env := newAccountEnv(t)
	env.sim.SetAccount(simulator.Wachat, "agency-key", simulator.Member{ID: "t1_a"}, simulator.Member{ID: "t1_b"})
	if err := env.load(t, "", env.account(simulator.Wachat, "agency", "agency-key", "states_from_listing: true")); err != nil {
		t.Fatal(err)
	}
	agency := accountNamed(t, env.c, "agency")
	waitFor(t, "the first listing", func() bool { return len(env.watched()) == 2 && listingDone(env.c, agency) })
	if s, _ := env.c.Status("t1_a"); s.State != "connecting" || s.Account != "agency" || s.CanReboot || !s.CanSend {
		t.Fatalf("Status(t1_a) = %+v", s)
	}
	before := env.sim.ListCalls(simulator.Wachat, "agency-key")
	env.sim.Set(simulator.Wachat, "t1_a", "agency-key", simulator.Behaviour{State: "open"})
	s, err := env.c.Check(context.Background(), "t1_a")
	if err != nil || s.State != "open" || !s.Working {
		t.Fatalf("Check(t1_a) = %+v, %v", s, err)
	}
	if n := env.sim.ListCalls(simulator.Wachat, "agency-key") - before; n != 1 {
		t.Errorf("%d listings for one Check, want 1", n)
	}
	if n := env.sim.Calls(simulator.Wachat, "t1_a"); n != 0 {
		t.Errorf("t1_a called %d times on its own", n)
	}
}
