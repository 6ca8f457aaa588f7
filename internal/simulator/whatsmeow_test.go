package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestWhatsmeowAnswers: each server of the family answers as its code
// does, to its own credential only.
func TestWhatsmeowAnswers(t *testing.T) {
	s := New()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.Set(Whatsmeow, "go-bot", "tok-go", Behaviour{State: "disconnected"})
	s.Set(Whatsmeow, "wuzapi-shop", "tok-wz", Behaviour{State: "logged_out"})
	s.Set(Whatsmeow, "gowa-desk", "admin:pw", Behaviour{State: "pairing"})
	get := func(path string, header ...string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/whatsmeow"+path, nil)
		for k := 0; k+1 < len(header); k += 2 {
			req.Header.Set(header[k], header[k+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:pw"))
	for _, tc := range []struct {
		name, path string
		header     []string
		status     int
		body       string
	}{
		{"Evolution Go, disconnected", "/go-bot/instance/status", []string{"apikey", "tok-go"}, 400, `{"error":"client disconnected"}`},
		{"Evolution Go, wrong token", "/go-bot/instance/status", []string{"apikey", "tok-wz"}, 401, `{"error":"not authorized"}`},
		{"wuzapi, no session", "/wuzapi-shop/session/status", []string{"Token", "tok-wz"}, 500, `{"code":500,"error":"No session","success":false}`},
		{"GOWA, pairing", "/gowa-desk/devices/gowa-desk/status", []string{"Authorization", basic}, 200,
			`{"code":"SUCCESS","message":"Device status","results":{"device_id":"gowa-desk","is_connected":true,"is_logged_in":false}}`},
		{"another server's path", "/go-bot/session/status", []string{"Token", "tok-go"}, 404, "404 page not found"},
	} {
		if status, body := get(tc.path, tc.header...); status != tc.status || body != tc.body {
			t.Errorf("%s: HTTP %d %s, want %d %s", tc.name, status, body, tc.status, tc.body)
		}
	}
}

// TestWhatsmeowNotifications: Evolution Go's events carry the instance's
// token and no header, wuzapi's are signed with the user's HMAC key, and
// both are tried 5 times 30 s apart.
func TestWhatsmeowNotifications(t *testing.T) {
	s := New()
	var got []*http.Request
	var bodies [][]byte
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got, bodies = append(got, r), append(bodies, b)
	}))
	t.Cleanup(rcv.Close)
	s.Set(Whatsmeow, "go-bot", "tok-go", Behaviour{State: "logged_out"})
	s.SetWebhook(Whatsmeow, "go-bot", WebhookAuth{PathSecret: "path-secret-0123456789"})
	s.Set(Whatsmeow, "wuzapi-shop", "tok-wz", Behaviour{State: WhatsmeowTemporaryBan})
	s.SetWebhook(Whatsmeow, "wuzapi-shop", WebhookAuth{HMACKey: "hmac-key"})
	for _, id := range []string{"go-bot", "wuzapi-shop"} {
		if status, err := s.Notify(t.Context(), nil, rcv.URL, Whatsmeow, id); err != nil || status != 200 {
			t.Fatalf("%s: %d, %v", id, status, err)
		}
	}
	if got[0].URL.Path != "/webhook/whatsmeow/path-secret-0123456789" || got[0].Header.Get("Authorization") != "" ||
		!strings.Contains(string(bodies[0]), `"event":"LoggedOut"`) || !strings.Contains(string(bodies[0]), `"instanceToken":"tok-go"`) {
		t.Errorf("Evolution Go: %s %v %s", got[0].URL.Path, got[0].Header, bodies[0])
	}
	m := hmac.New(sha256.New, []byte("hmac-key"))
	m.Write(bodies[1])
	if got[1].Header.Get("x-hmac-signature") != hex.EncodeToString(m.Sum(nil)) || !strings.Contains(string(bodies[1]), `"type":"TemporaryBan"`) {
		t.Errorf("wuzapi: %v %s", got[1].Header, bodies[1])
	}
	d := whatsmeowDelivery{}
	for attempt := 1; attempt <= 5; attempt++ {
		wait, again := d.retry(attempt, 401, time.Second)
		if again != (attempt < 5) || (again && wait != 30*time.Second) {
			t.Errorf("attempt %d: retry %v after %v, want 5 tries 30 s apart", attempt, again, wait)
		}
	}
}
