package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

// Fuzz targets. CI runs each for a few seconds (.ci/run); to run one
// longer: go test -run '^$' -fuzz '^FuzzProviderAnswer$' -fuzztime 10m ./collector
// A failing input is written to testdata/fuzz/<target>/ and replayed by
// every later go test run; commit it with the fix.

// fuzzSecret needs escaping in paths, queries and JSON.
const fuzzSecret = `fuzz/S3cr3t+"key"=&<x>`

// fuzzOtherSecret is another instance's token, which the exporter knows
// (redact.go): no error text may quote it either.
const fuzzOtherSecret = "other/Instance+Token=0123456789"

// fuzzTransport answers every request with the response under test,
// without a network.
type fuzzTransport struct {
	status int
	header http.Header
	body   []byte
}

func (ft *fuzzTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: ft.status, Header: ft.header, Body: io.NopCloser(bytes.NewReader(ft.body)),
		Request: r, ContentLength: -1,
	}, nil
}

// fuzzSpecs are one resolved instance of every provider, all with
// fuzzSecret.
func fuzzSpecs(f *testing.F) []config.Spec {
	var yml strings.Builder
	yml.WriteString("instances:\n")
	for _, name := range config.Providers() {
		yml.WriteString(simulator.ProviderOf(name).Config("http://upstream.invalid", name, "42", fuzzSecret))
	}
	cfg, err := config.Load([]byte(yml.String()), f.TempDir(), config.Options{})
	if err != nil {
		f.Fatal(err)
	}
	specs := make([]config.Spec, len(cfg.Instances))
	for i, inst := range cfg.Instances {
		specs[i] = inst.Spec
	}
	return specs
}

// secretForms are the forms of fuzzSecret no output may hold.
func secretForms() []string {
	quoted, _ := json.Marshal(fuzzSecret)
	return []string{fuzzSecret, url.PathEscape(fuzzSecret), url.QueryEscape(fuzzSecret), string(quoted[1 : len(quoted)-1])}
}

// FuzzProviderAnswer feeds any answer to every provider's client, to its
// state call and, for a client that reads its outgoing queue, its queue
// call: neither may panic, every failure must be classified, a count must
// be within [0, maxQueueCount], and no secret may reach the state, the
// error text or the logs, whatever the body echoes.
func FuzzProviderAnswer(f *testing.F) {
	specs := fuzzSpecs(f)
	var escaped strings.Builder
	for _, r := range fuzzSecret {
		fmt.Fprintf(&escaped, `\u%04x`, r)
	}
	for _, body := range []string{
		`{"stateInstance":"authorized"}`,
		`{"stateInstance":"` + escaped.String() + `"}`,
		`{"success":true,"instance":{"state":"` + escaped.String() + `"}}`,
		`{"instance":{"instanceName":"x","state":"` + escaped.String() + `"}}`,
		`{"status":404,"error":"Not Found","response":{"message":["` + escaped.String() + `"]}}`,
		`{"success":false,"error":"` + escaped.String() + `"}`,
		`null`, `{"code":401,"description":"Unauthorized"}`, `<html>` + fuzzSecret + `</html>`,
		`instance in starting process try later`, `instance is starting or not authorized`,
		`{"count":3}`, "{\"\u0441ount\":3}", `{"count":-1}`, `{"count":1e3}`, `{"count":100000001}`,
		`{"error":"` + fuzzOtherSecret + `"}`, `<html>` + url.QueryEscape(fuzzOtherSecret) + `</html>`,
	} {
		for _, status := range []int{200, 400, 404, 429, 466, 502} {
			for which := range specs {
				f.Add(uint8(which), status, "", []byte(body))
			}
		}
	}
	f.Add(uint8(1), 429, "9300000000", []byte(`{}`))
	var otherForms []string
	addSecretForms(fuzzOtherSecret, func(form string) { otherForms = append(otherForms, form) })
	f.Fuzz(func(t *testing.T, which uint8, status int, retry string, body []byte) {
		if status < 100 || status > 599 {
			status = 200 + (status%400+400)%400
		}
		spec := specs[int(which)%len(specs)]
		logger, logs := testlog.New()
		p := providerOf(spec.Base().Provider)
		api := &API{
			client:  &http.Client{Transport: &fuzzTransport{status: status, header: http.Header{"Retry-After": {retry}}, body: body}},
			logs:    logTo(logger),
			metrics: newProviderMetrics().observer(p.Name, newInstanceStats(methodsOf(p, true))),
			known:   func() *redactor { return fuzzKnown },
		}
		client, err := p.NewClient(spec, api)
		if err != nil {
			t.Fatal(err)
		}
		state, err := client.State(t.Context())
		errs := fuzzCheckError(t, err)
		if q, ok := client.(queueReader); ok {
			n, err := q.MessagesQueue(t.Context())
			if n < 0 || n > maxQueueCount || (err != nil && n != 0) {
				t.Fatalf("queue count %d with error %v", n, err)
			}
			if !errors.Is(err, errQueueWithheld) {
				errs += "\n" + fuzzCheckError(t, err)
			} else if status != http.StatusBadRequest {
				t.Fatalf("count withheld for HTTP %d", status)
			}
		}
		// Another instance's token, in an error text: the state and the
		// logs are the collector's to redact (its logger does).
		for _, form := range otherForms {
			if strings.Contains(errs, form) {
				t.Fatalf("another instance's token (%q) reached an error:\n%s", form, errs)
			}
		}
		out := state + "\n" + errs
		out += "\n" + logs.String()
		for _, form := range secretForms() {
			if strings.Contains(out, form) {
				t.Fatalf("the secret (%q) reached an output:\n%s", form, out)
			}
		}
	})
}

// fuzzKnown knows fuzzOtherSecret.
var fuzzKnown = func() *redactor {
	r := newRedactor()
	r.addSecret(fuzzOtherSecret)
	r.done()
	return r
}()

// fuzzCheckError fails the test unless err is nil or a classified *Error
// with a Retry-After within bounds, and returns its text.
func fuzzCheckError(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var e *Error
	if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), e.Reason+": ") {
		t.Fatalf("error %T %q is not a classified *Error", err, err)
	}
	if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
		t.Fatalf("RetryAfter %v out of [0, %v]", e.RetryAfter, maxRetryAfter)
	}
	return err.Error()
}

// FuzzConfigLoadAndReload loads two configurations into one collector as
// start-up and a reload do: nothing may panic, and every error says where
// it is.
func FuzzConfigLoadAndReload(f *testing.F) {
	good := "instances:\n  - {provider: greenapi, name: a, id_instance: 1, api_token: t}\n"
	for _, s := range []string{
		good,
		"instances:\n  - {provider: wachat, instance_name: w, api_key: k, timeout: 3s}\n  - {provider: evolution, api_url: \"http://e\", instance_name: e, api_key: k}\n",
		"instances:\n  - {provider: greenapi, name: \"${BAD}\", id_instance: 1, api_token: t}\n",
		"instances:\n  - {provider: greenapi, name: a, id_instance: 1, api_token: t, tls_config: {ca_file: /nonexistent}}\n",
		"instances:\n  - ~\n  - {provider: x}\n  - {provider: greenapi, id_instance: x, api_token_file: /dev/zero}\n",
		"instances: []\n", "{}", "instances:\n  - {provider: greenapi, name: a, id_instance: 1, api_token: t, follow_redirects: false, proxy_url: \"http://p:1\"}\n",
	} {
		f.Add([]byte(s), []byte(good))
	}
	env := map[string]string{"BAD": "\xff\xfe", "TOKEN": "t0k"}
	opts := config.Options{ExpandEnv: true, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, first, second []byte) {
		c := New(discardLogger(), Options{Concurrency: 1})
		for _, content := range [][]byte{first, second} {
			cfg, err := config.Load(content, dir, opts)
			if err != nil {
				checkErrorPlaces(t, err)
				continue
			}
			if err := c.Update(cfg); err != nil && !strings.HasPrefix(err.Error(), "instance ") {
				t.Fatalf("Update error does not name the instance: %v", err)
			}
		}
	})
}

// checkErrorPlaces checks that every error of a configuration names where
// it is: an instance, a field or a line of the file; each decoding error
// of the yaml library is checked on its own.
func checkErrorPlaces(t *testing.T, err error) {
	t.Helper()
	var msgs []string
	var walk func(error)
	walk = func(err error) {
		var te *yaml.TypeError
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		default:
			if errors.As(err, &te) {
				msgs = append(msgs, te.Errors...)
				return
			}
			msgs = append(msgs, err.Error())
		}
	}
	walk(err)
	for _, msg := range msgs {
		ok := false
		// A syntax error ("yaml: ...") is about the file, which LoadFile
		// names; the yaml library gives a line where it knows one.
		for _, place := range []string{"instances[", "instance ", "field ", "line ", "yaml: "} {
			ok = ok || strings.HasPrefix(msg, place)
		}
		if !ok {
			t.Fatalf("error %q does not say where it is; whole error:\n%v", msg, err)
		}
	}
}

// FuzzRetryAfter: any header is a wait between 0 and maxRetryAfter.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "10", "300", "9300000000", "18446744074", "-1", "Fri, 31 Dec 9999 23:59:59 GMT", "Sun, 06 Nov 1994 08:49:37 GMT"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d := retryAfter(http.Header{"Retry-After": {v}}, now); d < 0 || d > maxRetryAfter {
			t.Fatalf("Retry-After %q: %v, want within [0, %v]", v, d, maxRetryAfter)
		}
	})
}

// fuzzListedToken stands for an instance's token in a listing's answer.
const fuzzListedToken = "LISTED-T0KEN-8b1f"

// FuzzListing feeds any answer to every provider's account listing: it
// must not panic, must classify every failure, and neither the account's
// secret nor a token a successful answer carries may reach an error or a
// log line.
func FuzzListing(f *testing.F) {
	var yml strings.Builder
	yml.WriteString("accounts:\n")
	for _, name := range config.Providers() {
		if p := simulator.ProviderOf(name); p.Account != nil {
			yml.WriteString(p.AccountConfig("http://upstream.invalid", name, fuzzSecret))
		}
	}
	cfg, err := config.Load([]byte(yml.String()), f.TempDir(), config.Options{})
	if err != nil {
		f.Fatal(err)
	}
	for _, body := range []string{
		`[{"idInstance":1101000001,"name":"a","apiTokenInstance":"` + fuzzListedToken + `","deleted":false}]`,
		`{"success":true,"instances":[{"apiInstanceName":"t1","state":"open","token":"` + fuzzListedToken + `"}]}`,
		`[{"name":"bot","connectionStatus":"open","token":"` + fuzzListedToken + `"}]`,
		`[{"instance":{"instanceName":"bot","status":"open","apikey":"` + fuzzListedToken + `"}}]`,
		`[` + fuzzListedToken + `]`, `{"success":false,"error":"` + fuzzListedToken + `"}`, `null`, `[]`,
	} {
		for _, status := range []int{200, 401, 429, 500} {
			f.Add(uint8(0), status, []byte(body))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, status int, body []byte) {
		if status < 100 || status > 599 {
			status = 200 + (status%400+400)%400
		}
		acct := cfg.Accounts[int(which)%len(cfg.Accounts)]
		p := providerOf(acct.Provider())
		logger, logs := testlog.New()
		api := &API{
			client:  &http.Client{Transport: &fuzzTransport{status: status, header: http.Header{}, body: body}},
			logs:    logTo(logger),
			metrics: newProviderMetrics().observer(p.Name, newInstanceStats(listingMethods(p))),
		}
		l, err := p.Account.NewLister(acct.Spec, api)
		if err != nil {
			t.Fatal(err)
		}
		listing, err := l.List(t.Context())
		out := logs.String()
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), e.Reason+": ") {
				t.Fatalf("error %T %q is not a classified *Error", err, err)
			}
			out += "\n" + err.Error()
		}
		forms := secretForms()
		if status >= 200 && status <= 299 {
			forms = append(forms, fuzzListedToken)
		}
		for _, form := range forms {
			if strings.Contains(out, form) {
				t.Fatalf("a secret (%q) reached an output:\n%s", form, out)
			}
		}
		for _, in := range listing.Instances {
			if in.Token != "" && p.Name != "greenapi" {
				t.Fatalf("the %s listing passed on a token", p.Name)
			}
		}
	})
}

// FuzzListingRows feeds any bytes to every provider's reading of a
// listing's successful answer: it must not panic; when it reads the
// answer, every row is counted once (kept, malformed or skipped, as
// encoding/json splits them); and what it keeps is bounded by the
// account's max_instances and the length of a name, whatever the size
// of the answer.
func FuzzListingRows(f *testing.F) {
	type decoder struct {
		name   string
		decode func(Response, *jsonStream) (Listing, error)
		rows   func([]byte) (int, bool) // the rows encoding/json finds
	}
	decoders := []decoder{
		{"greenapi", decodeGreenAPIPartnerInstances, arrayRows},
		{"evolution", decodeEvolutionInstances, arrayRows},
		{"wachat", decodeWachatList, objectRows("instances")},
		{"waha", decodeWahaSessions, arrayRows},
	}
	for _, srv := range whatsmeowServers {
		decoders = append(decoders, decoder{"whatsmeow " + srv.name, srv.list.decode, objectRows(srv.list.rows)})
	}
	for _, body := range []string{
		`[{"idInstance":1101000001,"name":"a","apiTokenInstance":"t"},{"idInstance":"2","apiTokenInstance":"t","deleted":true},1,"x",[],{}]`,
		`{"success":true,"instances":[{"apiInstanceName":"t1","state":"open"},{"apiInstanceName":""},null]}`,
		`[{"name":"bot","connectionStatus":"close","disconnectionReasonCode":401},{"instance":{"instanceName":"b","status":"open"}}]`,
		`[{"name":"a","connectionStatus":"open"},{"name":"b","connectionStatus":"open"},{"name":"c","connectionStatus":"open"},{"name":"d","connectionStatus":"open"}]`,
		`[{"name":"` + strings.Repeat("n", 200) + `","connectionStatus":"open"},{"name":"a\u0007"}]`,
		`{"instances":null}`, `null`, `[]`, `[1,`, `{"code":401}`, `["\"\\",{"a":"]"}]`,
		`{"message":"success","data":[{"name":"a","token":"t","connected":true},{"name":""},{"name":"b"},1]}`,
		`{"code":200,"data":[{"name":"u","token":"t","connected":true,"loggedIn":false},{"name":"v","token":"w","connected":"x"}],"success":true}`,
		`{"code":"SUCCESS","message":"List devices","results":[{"id":"d1","state":"logged_in"},{"id":2}]}`,
		`{"code":"SUCCESS","message":"List devices"}`, `{"data":[],"Data":[{"name":"a","token":"t"}]}`,
	} {
		for which := range decoders {
			f.Add(uint8(which), []byte(body))
		}
	}
	const max = 3
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		d := decoders[int(which)%len(decoders)]
		s := newJSONStream(bytes.NewReader(body), listLimits{max: max, prefix: "p-"}, func(s string) string { return s })
		l, err := d.decode(Response{Status: 200}, s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%s: error %T %q is not a classified *Error", d.name, err, err)
			}
			if _, ok := d.rows(body); ok && !strings.Contains(err.Error(), "max_instances") && !strings.Contains(err.Error(), "success is false") {
				t.Fatalf("%s: a listing encoding/json reads is refused: %v", d.name, err)
			}
			return
		}
		if len(l.Instances) > max {
			t.Fatalf("%s: %d instances kept, more than max_instances %d", d.name, len(l.Instances), max)
		}
		for _, in := range l.Instances {
			if config.CheckName("p-"+in.Name) != nil || len(in.ID) > config.MaxNameBytes || len(in.Token) > maxRowBytes {
				t.Fatalf("%s: kept %q (ID %d bytes, token %d bytes)", d.name, in.Name, len(in.ID), len(in.Token))
			}
		}
		if cap(s.raw) > 2*maxRowBytes {
			t.Fatalf("%s: the row buffer grew to %d bytes", d.name, cap(s.raw))
		}
		counted := len(l.Instances) + l.Malformed
		for _, n := range l.Skipped {
			counted += n
		}
		if want, ok := d.rows(body); ok && counted != want {
			t.Fatalf("%s: %d rows counted (%d kept, %d malformed, skipped %v), encoding/json finds %d", d.name, counted, len(l.Instances), l.Malformed, l.Skipped, want)
		}
	})
}

// arrayRows is the number of elements of a JSON array, or false when body
// is not one.
func arrayRows(body []byte) (int, bool) {
	var rows []json.RawMessage
	if json.Unmarshal(body, &rows) != nil {
		return 0, false
	}
	return len(rows), true
}

// objectRows counts the elements of the array under key, spelled
// exactly, of a JSON object (Wachat's "instances", the whatsmeow family's
// "data" and "results").
func objectRows(key string) func(body []byte) (int, bool) {
	return func(body []byte) (int, bool) {
		var v map[string]json.RawMessage
		if json.Unmarshal(body, &v) != nil {
			return 0, false
		}
		// encoding/json matches keys without case, and the last of the
		// same key wins: count only an object whose key is spelled once.
		n := 0
		for k := range v {
			if strings.EqualFold(k, key) {
				n++
			}
		}
		raw, ok := v[key]
		if n != 1 || !ok || bytes.Count(body, []byte(`"`+key+`"`)) != 1 || string(raw) == "null" {
			return 0, false
		}
		return arrayRows(raw)
	}
}
