package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/remediation"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

// fakeInstances stands for the collector: a fixed list of statuses, and
// Check answers from check.
type fakeInstances struct {
	mu     sync.Mutex
	list   []collector.InstanceStatus
	check  func(name string) (collector.InstanceStatus, error)
	checks []string
}

func (f *fakeInstances) Statuses() []collector.InstanceStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.list)
}

func (f *fakeInstances) Status(name string) (collector.InstanceStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.list {
		if s.Name == name {
			return s, true
		}
	}
	return collector.InstanceStatus{}, false
}

func (f *fakeInstances) Check(_ context.Context, name string) (collector.InstanceStatus, error) {
	f.mu.Lock()
	f.checks = append(f.checks, name)
	f.mu.Unlock()
	return f.check(name)
}

// fakeRemediation stands for the remediation engine.
type fakeRemediation struct {
	mu       sync.Mutex
	enabled  bool
	dryRun   bool
	result   remediation.Result
	requests []remediation.Request
	last     map[string]remediation.Record
}

func (f *fakeRemediation) Enabled() bool { return f.enabled }

func (f *fakeRemediation) DryRun() bool { return f.dryRun }

func (f *fakeRemediation) Act(_ context.Context, r remediation.Request) remediation.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r)
	return f.result
}

func (f *fakeRemediation) Last(provider, name string) (remediation.Record, bool) {
	r, ok := f.last[provider+"/"+name]
	return r, ok
}

// statusNow is the fake clock of the page.
var statusNow = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// serveStatus serves a status page over ins and rem on loopback, with the
// same routes as the exporter's handler.
func serveStatus(t *testing.T, ins *fakeInstances, rem *fakeRemediation) string {
	t.Helper()
	logger, _ := testlog.New()
	p := newStatusPage(logger, ins, rem, "/", []statusLink{{Address: "/metrics", Text: "Metrics"}})
	p.now = func() time.Time { return statusNow }
	mux := http.NewServeMux()
	p.register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// fleet is n instances, one in ten unwell (blocked) and one in a hundred
// failing its state requests.
func fleet(n int) []collector.InstanceStatus {
	list := make([]collector.InstanceStatus, n)
	providers := []string{"greenapi", "wachat", "evolution"}
	for i := range list {
		p := providers[i%3]
		s := collector.InstanceStatus{
			Provider: p, Name: fmt.Sprintf("inst-%05d", i), State: map[string]string{"greenapi": "authorized", "wachat": "open", "evolution": "open"}[p],
			Working: true, Up: true, Since: statusNow.Add(-time.Hour), Checked: statusNow.Add(-10 * time.Second),
			CanReboot: p == "greenapi",
		}
		if i%10 == 7 {
			s.State, s.Working = "blocked", false
			if p != "greenapi" {
				s.State = "close"
			}
		}
		if i%100 == 42 {
			s.Up, s.Reason, s.Detail, s.State, s.Working = false, "unauthorized", "HTTP 401", collector.StateUnknown, false
		}
		if p == "greenapi" {
			s.Queue, s.QueueKnown = i%7, true
		}
		list[i] = s
	}
	return list
}

// rowNames are the instances the page shows, in order.
func rowNames(body string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`data-name="([^"]*)"`).FindAllStringSubmatch(body, -1) {
		names = append(names, m[1])
	}
	return names
}

func get(t *testing.T, client *http.Client, u string) (int, string) {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestStatusPageFleet: at 10 000 instances the page shows 100, unwell
// first then by name, in a page far below a megabyte; filters and pages
// work on the server; the dashboard's link form shows its instance first.
func TestStatusPageFleet(t *testing.T) {
	ins := &fakeInstances{list: fleet(10000)}
	base := serveStatus(t, ins, &fakeRemediation{})

	code, body := get(t, nil, base+"/")
	if code != http.StatusOK {
		t.Fatalf("GET /: HTTP %d", code)
	}
	t.Logf("page of 10 000 instances: %d bytes", len(body))
	if len(body) > 256<<10 {
		t.Errorf("the page of 10 000 instances is %d bytes, want at most 256 KiB", len(body))
	}
	names := rowNames(body)
	if len(names) != statusPageSize {
		t.Fatalf("%d rows, want %d", len(names), statusPageSize)
	}
	// 1000 blocked or closed + 100 failing = 1100 unwell, sorted by name.
	if names[0] != "inst-00007" || names[1] != "inst-00017" || !slices.IsSorted(names) {
		t.Errorf("rows start %v, want the unwell by name", names[:3])
	}
	for _, want := range []string{"10000 instances, 1100 unwell", "Showing 1–100 of 10000", "page 1 of 100", `href="/?page=2"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	// The last page holds the well instances' end.
	_, body = get(t, nil, base+"/?page=100")
	if names := rowNames(body); len(names) != 100 || names[99] != "inst-09999" {
		t.Errorf("page 100: %d rows ending %v", len(names), names[len(names)-1:])
	}
	// A page beyond the last shows the last.
	_, body = get(t, nil, base+"/?page=1000")
	if !strings.Contains(body, "page 100 of 100") {
		t.Error("?page=1000 does not show the last page")
	}

	// Filters: provider and state, kept in the paging links.
	_, body = get(t, nil, base+"/?provider=wachat&state=close")
	names = rowNames(body)
	closed := 0 // wachat's are i%3 == 1, closed i%10 == 7
	for i := range 10000 {
		if i%3 == 1 && i%10 == 7 {
			closed++
		}
	}
	if len(names) != 100 || !strings.Contains(body, fmt.Sprintf("of %d (filtered from 10000)", closed)) || !strings.Contains(body, `href="/?page=2&amp;provider=wachat&amp;state=close"`) {
		t.Errorf("?provider=wachat&state=close: %d rows, summary or paging wrong:\n%s", len(names), grep(body, "Showing", "next"))
	}
	for _, n := range names {
		var i int
		fmt.Sscanf(n, "inst-%d", &i)
		if i%3 != 1 || i%10 != 7 {
			t.Errorf("?provider=wachat&state=close shows %s", n)
		}
	}
	// Name filter: a substring, any case.
	_, body = get(t, nil, base+"/?q=INST-0999")
	if names := rowNames(body); len(names) != 10 || names[0] != "inst-09997" {
		t.Errorf("?q=INST-0999: rows %v", names)
	}

	// The dashboard's link: the named instance first, even well among
	// unwell instances whose names hold its name.
	_, body = get(t, nil, base+"/?q=inst-00011&provider=evolution")
	if names := rowNames(body); !slices.Equal(names, []string{"inst-00011"}) {
		t.Errorf("?q=inst-00011&provider=evolution: rows %v, want inst-00011 alone", names)
	}
}

// TestStatusPageInstanceLink: /?q=<name>&provider=<provider> shows that
// instance first even when unwell instances' names contain its name, and
// each row links to that form.
func TestStatusPageInstanceLink(t *testing.T) {
	ins := &fakeInstances{list: []collector.InstanceStatus{
		{Provider: "greenapi", Name: "shop-2", State: "blocked"},
		{Provider: "greenapi", Name: "shop", State: "authorized", Working: true, Up: true},
		{Provider: "greenapi", Name: "my shop", State: "starting"},
		{Provider: "wachat", Name: "shopfront", State: "close"},
	}}
	base := serveStatus(t, ins, &fakeRemediation{})
	_, body := get(t, nil, base+"/?q=shop&provider=greenapi")
	if names := rowNames(body); !slices.Equal(names, []string{"shop", "my shop", "shop-2"}) {
		t.Errorf("?q=shop&provider=greenapi: rows %v, want shop first, then the unwell by name", names)
	}
	if !strings.Contains(body, `<a href="/?provider=greenapi&amp;q=shop">shop</a>`) || !strings.Contains(body, `id="instance-greenapi-shop"`) {
		t.Errorf("row of shop lacks its link or anchor:\n%s", grep(body, "shop"))
	}
	_, body = get(t, nil, base+"/?q=my+shop&provider=greenapi")
	if names := rowNames(body); !slices.Equal(names, []string{"my shop"}) {
		t.Errorf("?q=my+shop: rows %v", names)
	}
}

// TestStatusPageRow: what a row shows of an instance, and that text from
// a provider or the configuration is escaped.
func TestStatusPageRow(t *testing.T) {
	ins := &fakeInstances{list: []collector.InstanceStatus{
		{Provider: "greenapi", Name: `<script>alert(1)</script>`, Account: "partner", State: "starting", Since: statusNow.Add(-7*time.Minute - 3*time.Second),
			Checked: statusNow.Add(-12 * time.Second), Up: true, Queue: 17, QueueKnown: true, CanReboot: true},
		{Provider: "wachat", Name: "store", State: collector.StateUnknown, Reason: "timeout", Detail: `Get "https://example.com/<b>": timeout`, Checked: statusNow.Add(-3 * time.Second)},
		{Provider: "evolution", Name: "new", State: collector.StateUnknown},
	}}
	rem := &fakeRemediation{enabled: true, last: map[string]remediation.Record{
		"greenapi/<script>alert(1)</script>": {Action: "reboot", Result: "done", Status: "waiting", State: "starting", At: statusNow.Add(-90 * time.Second)},
	}}
	base := serveStatus(t, ins, rem)
	_, body := get(t, nil, base+"/")
	for _, want := range []string{
		`&lt;script&gt;alert(1)&lt;/script&gt;`, "found by partner",
		`<span class="state orange">starting</span>`, "for 7m3s", "12s ago", "<td>17</td>",
		"reboot: done, waiting", "1m30s ago",
		`<span class="state grey">unknown</span>`, `failing: timeout`, `https://example.com/&lt;b&gt;`, "<td title=\"\">never</td>", "not checked yet",
		`class="reboot">Reboot</button>`, "Remediation is on.",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "<b>") {
		t.Error("text reaches the page unescaped")
	}
	// One Reboot button: wachat's instance cannot reboot.
	if n := strings.Count(body, `class="reboot"`); n != 1 {
		t.Errorf("%d Reboot buttons, want 1", n)
	}
	rem.dryRun = true
	if _, body = get(t, nil, base+"/"); !strings.Contains(body, "Remediation is on, in dry run") {
		t.Error("the page does not say the remediation is a dry run")
	}
	// Without remediation, none.
	rem.enabled = false
	if _, body = get(t, nil, base+"/"); strings.Contains(body, `class="reboot"`) {
		t.Error("a Reboot button with remediation off")
	}
}

// TestStatusColoursMatchDashboards: the page colours each state as the
// dashboards' value mappings do, and every provider's state has one.
func TestStatusColoursMatchDashboards(t *testing.T) {
	for _, file := range []string{"../../dashboards/whatsapp-overview.json", "../../dashboards/whatsapp-instance.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var dashboard struct{ Panels []json.RawMessage }
		if err := json.Unmarshal(b, &dashboard); err != nil {
			t.Fatal(err)
		}
		// Every value mapping of a state.
		var found int
		for _, raw := range dashboard.Panels {
			var panel struct {
				FieldConfig struct {
					Defaults struct {
						Mappings []struct {
							Type    string
							Options map[string]struct{ Text, Color string }
						}
					}
				}
			}
			if err := json.Unmarshal(raw, &panel); err != nil {
				t.Fatal(err)
			}
			for _, m := range panel.FieldConfig.Defaults.Mappings {
				for _, o := range m.Options {
					if _, isState := stateColours[o.Text]; m.Type == "value" && isState {
						found++
						checkColour(t, file, o.Text, o.Color)
					}
				}
			}
		}
		if found < len(stateColours) {
			t.Errorf("%s maps %d states, the page %d", file, found, len(stateColours))
		}
	}
	for _, p := range []string{"greenapi", "wachat", "evolution"} {
		for _, s := range collector.ProviderStates(p) {
			if _, ok := stateColours[s]; !ok {
				t.Errorf("state %s of %s has no colour", s, p)
			}
		}
	}
}

func checkColour(t *testing.T, file, state, colour string) {
	t.Helper()
	want := colour
	if colour == "#8e8e8e" {
		want = "grey"
	}
	if got, ok := stateColours[state]; !ok || got != want {
		t.Errorf("%s colours %s %s; the status page %q", file, state, colour, got)
	}
}

// noRedirect is a client that keeps cookies and stops at redirects.
func noRedirect(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// press posts a button's form as the page does, and follows the redirect
// with the cookie; it returns the redirect's target and the page.
func press(t *testing.T, client *http.Client, base, path string, form url.Values) (string, string) {
	t.Helper()
	resp, err := client.PostForm(base+path, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST %s: HTTP %d, want 303", path, resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	_, body := get(t, client, base+loc)
	// The message is shown once.
	if _, again := get(t, client, base+loc); strings.Contains(again, `id="flash"`) {
		t.Errorf("the message of POST %s is shown twice", path)
	}
	return loc, body
}

func flashOf(body string) string {
	m := regexp.MustCompile(`(?s)<div class="flash (\w+)"[^>]*>(.*?)</div>`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1] + ": " + html.UnescapeString(regexp.MustCompile(`<[^>]+>`).ReplaceAllString(m[2], ""))
}

// TestStatusCheckNow: the button calls Check for the instance and the
// page it redirects to, the same view, says what came of it.
func TestStatusCheckNow(t *testing.T) {
	held := statusNow.Add(90 * time.Second)
	ins := &fakeInstances{list: []collector.InstanceStatus{
		{Provider: "greenapi", Name: "shop", State: "starting"},
		{Provider: "greenapi", Name: "held", State: "starting"},
		{Provider: "wachat", Name: "down", State: "open", Working: true, Up: true},
	}}
	ins.check = func(name string) (collector.InstanceStatus, error) {
		switch name {
		case "shop":
			return collector.InstanceStatus{Provider: "greenapi", Name: "shop", State: "authorized", Working: true, Up: true}, nil
		case "held":
			return collector.InstanceStatus{}, &collector.HeldError{Until: held}
		default:
			return collector.InstanceStatus{Provider: "wachat", Name: "down", State: "open", Reason: "server_error"}, nil
		}
	}
	base := serveStatus(t, ins, &fakeRemediation{})
	client := noRedirect(t)
	for _, c := range []struct {
		name, provider, ret, loc, flash string
	}{
		{"shop", "greenapi", "q=sh&page=1", "/?q=sh", "ok: shop (greenapi): Checked: the state is authorized"},
		{"held", "greenapi", "", "/", "held: held (greenapi): Not checked: the provider's rate limit holds calls to this instance until 10:01:30 UTC; try again then"},
		{"down", "", "state=open&provider=wachat", "/?provider=wachat&state=open", "error: down (wachat): Checked: the state request failed (server_error); the state is still open"},
		// Unknown instances, or a provider that is not the instance's,
		// call nothing.
		{"nobody", "greenapi", "", "/", `error: nobody (greenapi): Check now: no instance named "nobody" of provider "greenapi" is watched`},
		{"shop", "wachat", "", "/", `error: shop (wachat): Check now: no instance named "shop" of provider "wachat" is watched`},
		// The redirect stays on the page whatever return says.
		{"shop", "greenapi", "//evil.example/?q=x&next=https://evil.example", "/", "ok: shop (greenapi): Checked: the state is authorized"},
	} {
		loc, body := press(t, client, base, statusCheckPath, url.Values{"name": {c.name}, "provider": {c.provider}, "return": {c.ret}})
		if loc != c.loc {
			t.Errorf("Check now %s: redirected to %q, want %q", c.name, loc, c.loc)
		}
		if got := flashOf(body); got != c.flash {
			t.Errorf("Check now %s:\n got %s\nwant %s", c.name, got, c.flash)
		}
	}
	if want := []string{"shop", "held", "down", "shop"}; !slices.Equal(ins.checks, want) {
		t.Errorf("checks %v, want %v", ins.checks, want)
	}
}

// TestStatusReboot: the button asks the remediation engine, as the status
// page, and shows each result; with remediation off it asks nothing.
func TestStatusReboot(t *testing.T) {
	ins := &fakeInstances{list: []collector.InstanceStatus{{Provider: "greenapi", Name: "shop", State: "starting", CanReboot: true}}}
	rem := &fakeRemediation{}
	base := serveStatus(t, ins, rem)
	client := noRedirect(t)
	form := url.Values{"name": {"shop"}, "provider": {"greenapi"}}
	if _, body := press(t, client, base, statusRebootPath, form); !strings.Contains(flashOf(body), "remediation is off") || len(rem.requests) != 0 {
		t.Errorf("Reboot with remediation off: %q, %d requests", flashOf(body), len(rem.requests))
	}
	rem.enabled = true
	for _, c := range []struct {
		res  remediation.Result
		want string
	}{
		{remediation.Result{Result: remediation.ResultDone, State: "starting"}, "ok: shop (greenapi): Rebooted (it was starting); the state is requested again after the wait"},
		{remediation.Result{Result: remediation.ResultDryRun}, "ok: shop (greenapi): Dry run: the reboot was decided and counted, not made"},
		{remediation.Result{Result: remediation.ResultHeld, Reason: "window"}, "held: shop (greenapi): Not rebooted, held: window (the instance was acted on within the remediation window)"},
		{remediation.Result{Result: remediation.ResultHeld, Reason: "state_changed", State: "authorized"}, "held: shop (greenapi): Not rebooted, held: state_changed (a fresh state request found authorized, which is not one of reboot_states)"},
		{remediation.Result{Result: remediation.ResultFailed, Reason: "unauthorized"}, "error: shop (greenapi): Reboot failed: unauthorized"},
	} {
		rem.result = c.res
		if _, body := press(t, client, base, statusRebootPath, form); flashOf(body) != c.want {
			t.Errorf("Reboot giving %+v:\n got %s\nwant %s", c.res, flashOf(body), c.want)
		}
	}
	want := remediation.Request{Provider: "greenapi", Name: "shop", Action: remediation.ActionReboot, Source: "status_page"}
	if len(rem.requests) != 5 || rem.requests[0] != want {
		t.Errorf("requests %+v, want 5 of %+v", rem.requests, want)
	}
}

// TestStatusButtonsRefused: the buttons take POST only, and a browser's
// cross-site POST is refused before anything is called.
func TestStatusButtonsRefused(t *testing.T) {
	ins := &fakeInstances{list: []collector.InstanceStatus{{Provider: "greenapi", Name: "shop", State: "starting", CanReboot: true}},
		check: func(string) (collector.InstanceStatus, error) { return collector.InstanceStatus{}, nil }}
	rem := &fakeRemediation{enabled: true, result: remediation.Result{Result: remediation.ResultDone}}
	base := serveStatus(t, ins, rem)
	for _, path := range []string{statusCheckPath, statusRebootPath} {
		if code, _ := get(t, nil, base+path+"?name=shop&provider=greenapi"); code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: HTTP %d, want 405", path, code)
		}
		for _, h := range []http.Header{
			{"Sec-Fetch-Site": {"cross-site"}},
			{"Sec-Fetch-Site": {"same-site"}},
			{"Origin": {"http://evil.example"}},
		} {
			req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader("name=shop&provider=greenapi"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range h {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with %v: HTTP %d, want 403", path, h, resp.StatusCode)
			}
		}
	}
	if code, _ := get(t, nil, base+"/nothing-here"); code != http.StatusNotFound {
		t.Errorf("GET /nothing-here: HTTP %d, want 404", code)
	}
	resp, err := http.Post(base+"/", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: HTTP %d, want 405", resp.StatusCode)
	}
	if len(ins.checks) != 0 || len(rem.requests) != 0 {
		t.Errorf("refused requests called: %v checks, %v reboots", ins.checks, rem.requests)
	}
}

// TestStatusFlashCookie: a forged or malformed cookie shows escaped text
// or nothing.
func TestStatusFlashCookie(t *testing.T) {
	base := serveStatus(t, &fakeInstances{}, &fakeRemediation{})
	for _, c := range []struct{ value, want string }{
		{"%%%", ""},
		{"bm90IGpzb24", ""},
		{b64(t, flash{Name: "x", Kind: "<b>", Text: "<script>"}), `<div class="flash error" role="status" id="flash"><strong>x</strong> (): &lt;script&gt;</div>`},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
		req.AddCookie(&http.Cookie{Name: flashCookie, Value: c.value})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := ""
		if m := regexp.MustCompile(`<div class="flash.*</div>`).FindString(string(b)); m != "" {
			got = m
		}
		if got != c.want {
			t.Errorf("cookie %q: flash %q, want %q", c.value, got, c.want)
		}
	}
}

func b64(t *testing.T, f flash) string {
	t.Helper()
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func grep(body string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                    "0s",
		1500 * time.Millisecond:         "1s",
		7*time.Minute + 3*time.Second:   "7m3s",
		5 * time.Minute:                 "5m",
		3*time.Hour + 4*time.Minute + 9: "3h4m",
		50 * time.Hour:                  "2d2h",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestStatusPageWithMetricsAtRoot: with --web.telemetry-path=/ the page
// moves to /status, its forms and links with it, and the buttons' paths
// cannot be the metrics path.
func TestStatusPageWithMetricsAtRoot(t *testing.T) {
	logger, _ := testlog.New()
	e := New(logger, ConfigSource{Inline: []byte("instances:\n  - {provider: greenapi, api_url: \"http://127.0.0.1:1\", id_instance: 1101, api_token: t}\n")}, Options{})
	t.Cleanup(e.Close)
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	h, err := e.Handler("/")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	code, body := get(t, nil, srv.URL+"/status")
	if code != http.StatusOK || !strings.Contains(body, `<form class="filter" method="get" action="/status">`) || !strings.Contains(body, `href="/" title="every instance`) {
		t.Errorf("GET /status: HTTP %d, want the page with its filter on /status and Metrics at /:\n%s", code, body)
	}
	if _, body := get(t, nil, srv.URL+"/"); !strings.Contains(body, "# TYPE") {
		t.Error("GET / does not serve the metrics")
	}
	for _, p := range []string{statusPagePath, statusCheckPath, statusRebootPath} {
		if checkTelemetryPath(p) == nil {
			t.Errorf("--web.telemetry-path=%s is accepted; it is the status page's", p)
		}
	}
}

// BenchmarkStatusPage renders the first page of 10 000 instances.
func BenchmarkStatusPage(b *testing.B) {
	logger, _ := testlog.New()
	p := newStatusPage(logger, &fakeInstances{list: fleet(10000)}, &fakeRemediation{enabled: true}, "/", nil)
	req := httptest.NewRequest(http.MethodGet, "/?state=blocked", nil)
	b.ReportAllocs()
	for b.Loop() {
		p.serveHTTP(httptest.NewRecorder(), req)
	}
}
