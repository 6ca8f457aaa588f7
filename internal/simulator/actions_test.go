package simulator

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// call makes one request to the simulator and returns the status and
// body.
func call(t *testing.T, srv *httptest.Server, method, path, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestGreenAPIReboot: a reboot answers isReboot, counts, switches the
// instance to its After schedule from the reboot on (or leaves it as it
// was), and a second reboot within a second is a 429.
func TestGreenAPIReboot(t *testing.T) {
	s := New()
	srv := httptest.NewServer(s)
	defer srv.Close()
	s.Set(GreenAPI, "1", "tok", Behaviour{State: "starting"})
	s.Set(GreenAPI, "2", "tok", Behaviour{State: "starting"})
	s.Set(GreenAPI, "3", "tok", Behaviour{State: "starting"})
	s.SetReboot(GreenAPI, "1", RebootBehaviour{After: []Step{{Behaviour: Behaviour{State: "authorized"}}}})
	s.SetReboot(GreenAPI, "3", RebootBehaviour{NotDone: true})
	state := func(id string) string {
		_, body := call(t, srv, "GET", "/waInstance"+id+"/getStateInstance/tok", "")
		return body
	}
	for id, want := range map[string]string{"1": `{"isReboot":true}`, "2": `{"isReboot":true}`, "3": `{"isReboot":false}`} {
		if code, body := call(t, srv, "GET", "/waInstance"+id+"/reboot/tok", ""); code != 200 || body != want {
			t.Errorf("reboot %s: %d %s, want %s", id, code, body, want)
		}
	}
	for id, want := range map[string]string{"1": "authorized", "2": "starting", "3": "starting"} {
		if got := state(id); !strings.Contains(got, `"`+want+`"`) {
			t.Errorf("instance %s after the reboot: %s, want %s", id, got, want)
		}
	}
	if code, _ := call(t, srv, "GET", "/waInstance1/reboot/tok", ""); code != http.StatusTooManyRequests {
		t.Errorf("second reboot within a second: %d, want 429", code)
	}
	if code, _ := call(t, srv, "GET", "/waInstance1/reboot/bad", ""); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
	if code, _ := call(t, srv, "GET", "/waInstance9/reboot/tok", ""); code != http.StatusForbidden {
		t.Errorf("unknown instance: %d, want 403", code)
	}
	if n := s.Reboots(GreenAPI, "1"); n != 2 {
		t.Errorf("Reboots = %d, want 2 (a refused one counts)", n)
	}
	if n := s.Calls(GreenAPI, "1"); n != 1 {
		t.Errorf("state calls = %d, want 1: reboots are not state calls", n)
	}
}

// TestRebootScheduleNotified: a reboot's schedule counts from the reboot
// in what the instance pushes too, as in what it answers: a notification
// right after the reboot carries the schedule's first state, though the
// simulator started longer ago than that state lasts.
func TestRebootScheduleNotified(t *testing.T) {
	s := New()
	srv := httptest.NewServer(s)
	defer srv.Close()
	s.Set(GreenAPI, "1", "tok", Behaviour{State: "starting"})
	s.SetReboot(GreenAPI, "1", RebootBehaviour{After: []Step{
		{Behaviour: Behaviour{State: "starting"}, For: 2 * time.Second},
		{Behaviour: Behaviour{State: "authorized"}, For: time.Hour},
	}})
	time.Sleep(2100 * time.Millisecond) // the simulator's start, past the first step
	if code, _ := call(t, srv, "GET", "/waInstance1/reboot/tok", ""); code != http.StatusOK {
		t.Fatalf("reboot: %d", code)
	}
	bodies := make(chan string, 1)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- string(b)
	}))
	defer recv.Close()
	if _, err := s.Notify(context.Background(), recv.Client(), recv.URL, GreenAPI, "1"); err != nil {
		t.Fatal(err)
	}
	if got := <-bodies; !strings.Contains(got, `"starting"`) {
		t.Errorf("notified after the reboot: %s, want starting, the reboot's first step", got)
	}
	if _, got := call(t, srv, "GET", "/waInstance1/getStateInstance/tok", ""); !strings.Contains(got, `"starting"`) {
		t.Errorf("state after the reboot: %s, want starting", got)
	}
}

// TestSendEndpoints: each provider's send endpoint takes its documented
// body, records the message, refuses a malformed body or a wrong key, and
// fails as SetSend says.
func TestSendEndpoints(t *testing.T) {
	s := New()
	srv := httptest.NewServer(s)
	defer srv.Close()
	s.Set(GreenAPI, "1", "tok", Behaviour{State: "authorized"})
	s.Set(Evolution, "evo", "key", Behaviour{State: "open"})
	s.Set(Wachat, "wa", "key", Behaviour{State: "open"})
	s.Set(GreenAPI, "3", "tok", Behaviour{State: "authorized"})
	for _, tc := range []struct {
		method, path, body string
		header             []string
		code               int
	}{
		{"POST", "/waInstance1/sendMessage/tok", `{"chatId":"79001234567@c.us","message":"hi"}`, nil, 200},
		{"POST", "/evolution/message/sendText/evo", `{"number":"79001234567","text":"hi"}`, []string{"apikey", "key"}, 201},
		{"POST", "/wachat/api/v1/send/text", `{"instanceName":"wa","number":"79001234567","type":"text","message":"hi"}`, []string{"Authorization", "Bearer key"}, 200},
		// Refused: no @c.us, 1.8's body on 2.x, a wrong key, no type.
		{"POST", "/waInstance3/sendMessage/tok", `{"chatId":"79001234567","message":"hi"}`, nil, 400},
		{"POST", "/evolution/message/sendText/evo", `{"number":"79001234567","textMessage":{"text":"hi"}}`, []string{"apikey", "key"}, 400},
		{"POST", "/evolution/message/sendText/evo", `{"number":"79001234567","text":"hi"}`, []string{"apikey", "bad"}, 401},
		{"POST", "/wachat/api/v1/send/text", `{"instanceName":"wa","number":"79001234567","message":"hi"}`, []string{"Authorization", "Bearer key"}, 400},
	} {
		if code, body := call(t, srv, tc.method, tc.path, tc.body, tc.header...); code != tc.code {
			t.Errorf("%s %s: %d %s, want %d", tc.path, tc.body, code, body, tc.code)
		}
	}
	want := []Message{
		{Provider: GreenAPI, Instance: "1", To: "79001234567", Text: "hi"},
		{Provider: Evolution, Instance: "evo", To: "79001234567", Text: "hi"},
		{Provider: Wachat, Instance: "wa", To: "79001234567", Text: "hi"},
	}
	if got := s.Messages(); !reflect.DeepEqual(got, want) {
		t.Errorf("Messages() = %+v, want %+v", got, want)
	}

	s.SetEvolutionVersion(Evolution18)
	if code, body := call(t, srv, "POST", "/evolution/message/sendText/evo", `{"number":"1","textMessage":{"text":"v1"}}`, "apikey", "key"); code != 201 {
		t.Errorf("1.8 body on 1.8: %d %s", code, body)
	}
	s.Set(GreenAPI, "2", "tok", Behaviour{State: "authorized"})
	s.SetSend(GreenAPI, "2", SendBehaviour{Fault: FaultQuotaExceeded})
	s.SetSend(Evolution, "evo", SendBehaviour{Fault: FaultClientError})
	s.SetSend(Wachat, "wa", SendBehaviour{Fault: FaultUnsuccessful})
	for _, tc := range []struct {
		path, body string
		header     []string
		code       int
	}{
		{"/waInstance2/sendMessage/tok", `{"chatId":"79001234567@c.us","message":"hi"}`, nil, 466},
		{"/evolution/message/sendText/evo", `{"number":"79001234567","textMessage":{"text":"hi"}}`, []string{"apikey", "key"}, 400},
		{"/wachat/api/v1/send/text", `{"instanceName":"wa","number":"79001234567","type":"text","message":"hi"}`, []string{"Authorization", "Bearer key"}, 200},
	} {
		code, body := call(t, srv, "POST", tc.path, tc.body, tc.header...)
		if code != tc.code || (tc.code == 200 && !strings.Contains(body, `"success":false`)) {
			t.Errorf("failing %s: %d %s", tc.path, code, body)
		}
	}
	if n := len(s.Messages()); n != 4 {
		t.Errorf("%d messages, want 4 (failures record none)", n)
	}
	if code, _ := call(t, srv, "POST", "/waInstance2/sendMessage/tok", `{"chatId":"1@c.us","message":"x"}`); code != http.StatusTooManyRequests {
		t.Errorf("second sendMessage within a second: %d, want 429", code)
	}
}
