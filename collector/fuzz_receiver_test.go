package collector

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

// FuzzReceiverRequest sends any request (method, path, headers and body,
// as the server parses them off the wire) to the notification receiver's
// handler: no panic; a status among the provider's answers (or the
// router's 404 and 405); an answer from a fixed set of words and headers,
// so that it never echoes the request; no secret in the answer or the
// logs.
func FuzzReceiverRequest(f *testing.F) {
	const (
		token      = "FUZZ-WEBHOOK-TOKEN-0123"
		jwtKey     = "FUZZ-JWT-KEY-0123456789"
		pathSecret = "FUZZ-PATH-SECRET-0123456789"
		apiKey     = "FUZZ-INSTANCE-API-KEY-0123"
	)
	now := time.Now()
	valid := jwt(jwtKey, map[string]any{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	for _, seed := range []struct{ method, path, header, body string }{
		{"POST", "/webhook/greenapi", "Authorization: Bearer " + token, string(greenAPIState("1101000001", "blocked", now))},
		{"POST", "/webhook/greenapi/x", "Authorization: " + token + "x", string(greenAPIState("1101009999", "blocked", now))},
		{"POST", "/webhook/evolution/" + pathSecret + "/connection-update", "", string(evolutionEvent("close", now))},
		{"POST", "/webhook/evolution", "Authorization: " + valid, string(evolutionEvent("open", now))},
		{"POST", "/webhook/evolution", "jwt_key: " + jwtKey, string(evolutionEvent("open", now))},
		{"POST", "/webhook//evolution/../evolution/" + pathSecret, "", string(evolutionEvent("open", now))},
		{"GET", "/webhook/greenapi", "", ""},
		{"POST", "/metrics", "Authorization: Bearer " + token, ""},
		{"POST", "/webhook/evolution", "Content-Encoding: gzip\nTransfer-Encoding: chunked", "{"},
	} {
		f.Add(seed.method, seed.path, seed.header, []byte(seed.body))
	}
	logger, logs := testlog.New()
	c := New(logger, Options{Concurrency: 1, MinInterval: time.Hour, Notifications: true})
	f.Cleanup(c.Close)
	cfg, err := config.Load(fmt.Appendf(nil, `instances:
  - {name: shop, provider: greenapi, api_url: "http://127.0.0.1:1", id_instance: "1101000001", api_token: t, webhook_token: %[1]q}
  - {name: bot, provider: evolution, api_url: "http://127.0.0.1:1", instance_name: sales-bot, api_key: %[4]q, webhook_token: %[1]q, webhook_jwt_key: %[2]q, webhook_path_secret: %[3]q}
`, token, jwtKey, pathSecret, apiKey), f.TempDir(), config.Options{})
	if err != nil {
		f.Fatal(err)
	}
	if err := c.Update(cfg); err != nil {
		f.Fatal(err)
	}
	h := c.Webhooks()
	secrets := []string{token, jwtKey, pathSecret, apiKey, "EVOLUTION-INSTANCE-TOKEN"}
	// What the router answers for another path or method.
	routerAnswers := map[string]int{"404 page not found\n": http.StatusNotFound, "Method Not Allowed\n": http.StatusMethodNotAllowed}
	answerHeaders := []string{"Allow", "Content-Length", "Content-Type", "X-Content-Type-Options"}

	f.Fuzz(func(t *testing.T, method, path, header string, body []byte) {
		header = strings.ReplaceAll(header, "\n", "\r\n")
		if header != "" && !strings.HasSuffix(header, "\r\n") {
			header += "\r\n"
		}
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: receiver\r\n%sContent-Length: %d\r\n\r\n", method, path, header, len(body))
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw + string(body))))
		if err != nil {
			return // the server would answer 400 before any handler
		}
		req.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		answer := w.Body.String()
		provider := providerOfPath(req.URL.Path)
		switch want, routed := routerAnswers[answer]; {
		case routed:
			if w.Code != want {
				t.Errorf("%s %q: %q with HTTP %d", method, path, answer, w.Code)
			}
		case provider == nil || !slices.Contains(Outcomes[:], strings.TrimSuffix(answer, "\n")) || !strings.HasSuffix(answer, "\n"):
			t.Errorf("%s %q: answer %q is not one of the receiver's", method, path, answer)
		case w.Code != provider.Webhook.Status(strings.TrimSuffix(answer, "\n")):
			t.Errorf("%s %q: %q with HTTP %d, not %s's status for it", method, path, answer, w.Code, provider.Name)
		}
		for name := range w.Header() {
			if !slices.Contains(answerHeaders, name) {
				t.Errorf("%s %q: the answer has a header %s: %q", method, path, name, w.Header().Get(name))
			}
		}
		var whole bytes.Buffer
		_ = w.Result().Header.Write(&whole)
		whole.WriteString(answer)
		checkNoSecretIn(t, "answer", whole.String(), secrets)
		checkNoSecretIn(t, "logs", logs.Take(), secrets)
	})
}

// providerOfPath is the provider whose receiver path serves p, nil for
// none.
func providerOfPath(p string) *Provider {
	for _, pr := range registered() {
		if pr.Webhook != nil && (p == "/webhook/"+pr.Name || strings.HasPrefix(p, "/webhook/"+pr.Name+"/")) {
			return pr
		}
	}
	return nil
}

func checkNoSecretIn(t *testing.T, what, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("a secret in the %s", what)
		}
	}
}
