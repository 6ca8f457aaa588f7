package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// UpdateScreenshotEnv, set to 1, has TestStatusPageScreenshot write
// docs/status-page.png; without it the test only takes the screenshot, so
// that CI leaves the tree as it is.
const UpdateScreenshotEnv = "WHATSAPP_EXPORTER_UPDATE_SCREENSHOT"

// rowsJS lists the instances the page shows, in order.
const rowsJS = `[...document.querySelectorAll("tr.instance")].map(r => r.dataset.name)`

// rows are the instances the browser's page shows.
func rows(t *testing.T, ctx context.Context) []string {
	t.Helper()
	names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](rowsJS))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// text is the text of the element sel selects.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// pressButton clicks a button that submits a form and waits for the page
// the answer leads to (the status page after its redirect).
func pressButton(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	// The page is loaded: a button missing now never comes, and Click
	// would wait for it until the test's deadline.
	if present, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf("document.querySelector(%q) !== null", sel))); err != nil || !present {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body.innerText"))
		t.Fatalf("no %s on the page (%v):\n%s", sel, err, body)
	}
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("pressing %s: %v", sel, err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("pressing %s: the page answered HTTP %d", sel, resp.Status)
	}
}

// TestStatusPageInBrowser drives the status page in Chromium against the
// simulator: the page lists the instances unwell first, filters them,
// Check now shows a state the simulator changed since the last scrape,
// Reboot in dry run is counted on the page and in /metrics without a call
// to the provider, and a form posted from another site is refused.
func TestStatusPageInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	ctx := testtool.Browser(t)

	sim := simulator.New()
	simURL := exportertest.StartSimulator(t, sim)
	var cfg strings.Builder
	cfg.WriteString("remediation:\n  dry_run: true\ninstances:\n")
	type inst struct{ provider, name, id, state string }
	instances := []inst{
		{simulator.GreenAPI, "shop", "1101", "starting"},
		{simulator.GreenAPI, "sales", "1102", "authorized"},
		{simulator.GreenAPI, "shopfront", "1103", "authorized"},
		{simulator.Wachat, "store", "t1_store", "close"},
		{simulator.Evolution, "bot", "bot", "open"},
	}
	for _, in := range instances {
		sim.Set(in.provider, in.id, "status-secret-"+in.id, simulator.Behaviour{State: in.state})
		cfg.WriteString(simulator.ProviderOf(in.provider).Config(simURL, in.name, in.id, "status-secret-"+in.id))
	}
	// An hour between calls: the page shows what the last call found,
	// and only Check now calls again.
	e := exportertest.StartWith(t, exportertest.Inline(cfg.String()), collector.Options{Concurrency: 8, MinInterval: time.Hour, UserAgent: "test"})
	exportertest.Scrape(t, e.URL, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"20"}})

	// The page: unwell first, then by name.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/")); err != nil {
		t.Fatal(err)
	}
	if got, want := rows(t, ctx), []string{"shop", "store", "bot", "sales", "shopfront"}; !slices.Equal(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	if got := text(t, ctx, `tr[data-name="shop"] .state`); got != "starting" {
		t.Errorf("shop shows %q, want starting", got)
	}
	if got := text(t, ctx, `.summary`); !strings.Contains(got, "Remediation is on, in dry run") {
		t.Errorf("the summary says %q, want the remediation on in dry run", got)
	}

	// The filter: name and provider, on the server.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`input[name=q]`), "shop"),
		chromedp.SetValue(chromedp.CSS(`select[name=provider]`), simulator.GreenAPI),
	); err != nil {
		t.Fatal(err)
	}
	pressButton(t, ctx, `form.filter button[type=submit]`)
	if got, want := rows(t, ctx), []string{"shop", "shopfront"}; !slices.Equal(got, want) {
		t.Errorf("filtered by shop and greenapi: rows %v, want %v", got, want)
	}

	// Check now, from the dashboard's link to the instance: the state the
	// simulator changed to since the scrape.
	sim.Set(simulator.GreenAPI, "1102", "status-secret-1102", simulator.Behaviour{State: "yellowCard"})
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/?q=sales&provider=greenapi")); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, `tr[data-name="sales"] .state`); got != "authorized" {
		t.Fatalf("before Check now, sales shows %q, want authorized (no call since the scrape)", got)
	}
	calls := sim.Calls(simulator.GreenAPI, "1102")
	pressButton(t, ctx, `tr[data-name="sales"] button.check`)
	if got := text(t, ctx, `#flash`); !strings.Contains(got, "Checked: the state is yellowCard") {
		t.Errorf("after Check now the page says %q", got)
	}
	if got := text(t, ctx, `tr[data-name="sales"] .state`); got != "yellowCard" {
		t.Errorf("after Check now sales shows %q, want yellowCard", got)
	}
	if cls, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`tr[data-name="sales"] .state`), "class")); err != nil || !strings.Contains(cls.Value, "red") {
		t.Errorf("yellowCard's class %q (%v), want red as in the dashboards", cls.Value, err)
	}
	if got := sim.Calls(simulator.GreenAPI, "1102"); got != calls+1 {
		t.Errorf("Check now made %d state requests, want 1", got-calls)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != e.URL+"/?provider=greenapi&q=sales" {
		t.Errorf("after Check now the browser is at %s, want back at the view it came from", loc)
	}

	// Reboot in dry run: decided and counted, no call.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/?q=shop&provider=greenapi")); err != nil {
		t.Fatal(err)
	}
	pressButton(t, ctx, `tr[data-name="shop"] button.reboot`)
	if got := text(t, ctx, `#flash`); !strings.Contains(got, "Dry run") {
		t.Errorf("after Reboot the page says %q, want the dry run", got)
	}
	if got := text(t, ctx, `tr[data-name="shop"] td:nth-child(7)`); !strings.HasPrefix(got, "reboot: dry_run") {
		t.Errorf("shop's last remediation shows %q, want the dry run", got)
	}
	metrics := exportertest.Scrape(t, e.URL, nil)
	const dryRun = `whatsapp_remediation_actions_total{action="reboot",name="shop",provider="greenapi",reason="",result="dry_run"} 1`
	if !strings.Contains(metrics, dryRun) {
		t.Errorf("/metrics lacks %s:\n%s", dryRun, exportertest.GrepLines(metrics, "whatsapp_remediation_actions_total"))
	}
	if n := sim.Reboots(simulator.GreenAPI, "1101"); n != 0 {
		t.Errorf("a dry run made %d reboot calls", n)
	}

	// A page of another site (localhost is not 127.0.0.1's site) whose
	// form posts to the button as soon as it loads: refused, and nothing
	// called.
	target := e.URL + "/status/check"
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><form method="post" action="%s"><input type="hidden" name="name" value="sales"><input type="hidden" name="provider" value="greenapi"></form><script>document.forms[0].submit()</script>`, target)
	}))
	defer attacker.Close()
	calls = sim.Calls(simulator.GreenAPI, "1102")
	attackerURL := strings.Replace(attacker.URL, "127.0.0.1", "localhost", 1)
	if err := chromedp.Do(ctx, chromedp.Navigate(attackerURL)); err != nil {
		t.Fatal(err)
	}
	refused, err := chromedp.Run(ctx, chromedp.Poll[string](fmt.Sprintf(
		`location.href === %q && document.body !== null && document.body.innerText`, target)))
	if err != nil {
		t.Fatalf("the cross-site form did not lead to %s: %v", target, err)
	}
	if !strings.Contains(refused, "cross-origin request detected") {
		t.Errorf("the cross-site form post was answered %q, want the refusal", refused)
	}
	if got := sim.Calls(simulator.GreenAPI, "1102"); got != calls {
		t.Errorf("the cross-site form post made %d state requests", got-calls)
	}
}

// TestStatusPageScreenshot opens the status page of the binary in --demo
// mode; with WHATSAPP_EXPORTER_UPDATE_SCREENSHOT=1 it writes the
// screenshot of docs/status-page.md.
func TestStatusPageScreenshot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium and the binary")
	}
	ctx := testtool.Browser(t)
	_, base, logs := exportertest.StartBinary(t, "--demo")
	// Every demo instance called once, so that the page shows states.
	exportertest.Scrape(t, base, http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"20"}})
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 860), chromedp.Navigate(base+"/")); err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	if n := len(rows(t, ctx)); n == 0 {
		t.Fatalf("the demo's status page shows no instance\n%s", logs)
	}
	if os.Getenv(UpdateScreenshotEnv) != "1" {
		t.Logf("screenshot of %d bytes taken; set %s=1 to write docs/status-page.png", len(png), UpdateScreenshotEnv)
		return
	}
	file := filepath.Join("..", "docs", "status-page.png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", file, len(png))
}
