package collector

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzMetaWebhook feeds any body to Meta's receiver, signed with the
// WABA's app secret, with another app's, or with any header, at any
// path below /webhook/meta and with any query: no panic; a POST is
// answered 200 "ok\n" and counted once; a GET is answered 403 or its
// challenge; no answer or log line holds a secret.
func FuzzMetaWebhook(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "meta", "webhook"))
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	for _, en := range entries {
		if strings.HasSuffix(en.Name(), ".json") {
			f.Add(metaFixture(f, en.Name(), now), uint8(0), "", "")
		}
	}
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"id":"`+testMetaWABA+`","time":1,"changes":[{"field":"account_update","value":{"restriction_info":[{"restriction_type":"x","expiration":"9999999999999"}]}}]}]}`), uint8(1), "", "/x")
	f.Add([]byte(`[]`), uint8(2), "sha256=00", "?hub.mode=subscribe&hub.verify_token="+testMetaVerify+"&hub.challenge=1")
	e := newMetaEnv(f)
	secrets := append([]string{testMetaSecret, testMetaOtherSecret, testMetaVerify, testMetaSingleToken, testMetaAccessToken}, "PERSONAL-MESSAGE-TEXT")
	f.Fuzz(func(t *testing.T, body []byte, how uint8, header, suffix string) {
		e.logs.Take()
		method := http.MethodPost
		if how&4 != 0 {
			method = http.MethodGet
		}
		target := "/webhook/meta"
		if strings.HasPrefix(suffix, "/") || strings.HasPrefix(suffix, "?") {
			target += suffix
		}
		req, err := http.NewRequest(method, "http://exporter"+target, bytes.NewReader(body))
		if err != nil {
			return // not a request anyone can send
		}
		switch how & 3 {
		case 0:
			req.Header.Set(metaSignatureHeader, metaSign(testMetaSecret, body))
		case 1:
			req.Header.Set(metaSignatureHeader, metaSign(testMetaOtherSecret, body))
		default:
			req.Header.Set(metaSignatureHeader, header)
		}
		before := 0.0
		for _, o := range Outcomes {
			before += e.count(o)
		}
		rec := httptest.NewRecorder()
		serveMetaWebhook(e.c, rec, req)
		after := 0.0
		for _, o := range Outcomes {
			after += e.count(o)
		}
		answer := rec.Body.String()
		switch method {
		case http.MethodPost:
			if rec.Code != http.StatusOK || answer != "ok\n" || after != before+1 {
				t.Errorf("POST answered %d %q, counted %v", rec.Code, answer, after-before)
			}
		default:
			challenge := req.URL.Query().Get("hub.challenge")
			if !(rec.Code == http.StatusForbidden && answer == metaHandshakeForbiddenWords) && !(rec.Code == http.StatusOK && answer == challenge && metaChallengeOK(challenge)) {
				t.Errorf("GET answered %d %q", rec.Code, answer)
			}
		}
		logs := e.logs.Take()
		for _, s := range secrets {
			checkNoLeak(t, "logs", logs, s)
			if !strings.Contains(string(body)+header+suffix, s) {
				checkNoLeak(t, "answer", answer, s)
			}
		}
	})
}
