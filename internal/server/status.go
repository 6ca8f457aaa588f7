package server

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/version"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/lograte"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/remediation"
)

// The status page is the landing page: every instance with what the
// exporter knows of it now, unwell ones first, filtered and paged on the
// server so that 10 000 instances make a page of 100 rows; a Check now
// button per instance and, where remediation is on, a Reboot button that
// goes through the remediation engine's guards. Buttons POST, behind
// CrossOriginProtection, and redirect back to the page (Post/Redirect/Get)
// with a flash message in a short-lived cookie, so that a reload of the
// page never repeats an action.

//go:embed status.html
var statusHTML string

// Paths of the status page (when the metrics are at /) and its actions.
const (
	statusPagePath   = "/status"
	statusCheckPath  = "/status/check"
	statusRebootPath = "/status/reboot"
)

// statusPageSize is the number of instances a page shows: about 150 KB of
// HTML.
const statusPageSize = 100

// statusActionTimeout bounds a button's wait for the provider: a Check now
// waits for the instance's one request a second, and a Retry-After longer
// than this answers "rate limited until …" at once.
const statusActionTimeout = 15 * time.Second

// flashCookie carries the result of a button to the page it redirects to.
const flashCookie = "whatsapp_exporter_flash"

// stateColours are the dashboards' colours of each state (the value
// mappings of the "Instances by state" and "State" panels, which
// TestStatusColoursMatchDashboards compares), as CSS classes.
var stateColours = map[string]string{
	collector.StateUnknown: "grey",
	"authorized":           "green",
	"open":                 "green",
	"starting":             "orange",
	"connecting":           "orange",
	"sleepMode":            "orange",
	"notAuthorized":        "red",
	"close":                "red",
	"blocked":              "red",
	"yellowCard":           "red",
	"creating":             "blue",
	"expired":              "red",
}

// stateColour is a state's CSS class; grey for a state the dashboards do
// not map.
func stateColour(state string) string {
	if c, ok := stateColours[state]; ok {
		return c
	}
	return "grey"
}

// instanceSource is what the page reads of the collector and asks of it.
type instanceSource interface {
	Statuses() []collector.InstanceStatus
	Status(name string) (collector.InstanceStatus, bool)
	Check(ctx context.Context, name string) (collector.InstanceStatus, error)
}

// remediator is what the page asks of the remediation engine.
type remediator interface {
	Enabled() bool
	DryRun() bool
	Act(ctx context.Context, r remediation.Request) remediation.Result
	Last(provider, name string) (remediation.Record, bool)
}

// statusPage serves the page and its buttons.
type statusPage struct {
	logger    *slog.Logger
	instances instanceSource
	rem       remediator
	// path is where the page is served: / unless the metrics are.
	path  string
	links []statusLink
	tmpl  *template.Template
	now   func() time.Time
	// actionLog bounds the log lines of the buttons: anyone who can reach
	// the page can press them.
	actionLog *lograte.Limiter
}

type statusLink struct{ Address, Text, Description string }

func newStatusPage(logger *slog.Logger, instances instanceSource, rem remediator, path string, links []statusLink) *statusPage {
	p := &statusPage{
		logger: logger, instances: instances, rem: rem, path: path, links: links,
		now: time.Now, actionLog: lograte.New(20, time.Minute),
	}
	p.tmpl = template.Must(template.New("status").Funcs(template.FuncMap{
		"colour": stateColour,
	}).Parse(statusHTML))
	return p
}

// register serves the page at its path, exactly, and its buttons.
func (p *statusPage) register(mux *http.ServeMux) {
	pattern := p.path // exactly, not a subtree
	if pattern == "/" {
		pattern = "/{$}"
	}
	mux.HandleFunc(pattern, p.serveHTTP)
	// The buttons change something (a call to the provider, a reboot):
	// POST only, and refused when a browser says another site sent them,
	// as /-/reload is.
	buttons := http.NewCrossOriginProtection()
	mux.Handle(statusCheckPath, buttons.Handler(http.HandlerFunc(p.serveCheck)))
	mux.Handle(statusRebootPath, buttons.Handler(http.HandlerFunc(p.serveReboot)))
}

// statusQuery is the page's view: its filter and page.
type statusQuery struct {
	Q, Provider, State string
	Page               int // from 1
}

func parseStatusQuery(v url.Values) statusQuery {
	q := statusQuery{
		Q:        strings.TrimSpace(v.Get("q")),
		Provider: v.Get("provider"),
		State:    v.Get("state"),
		Page:     1,
	}
	if n, err := strconv.Atoi(v.Get("page")); err == nil && n > 1 {
		q.Page = n
	}
	return q
}

// values is the view as query parameters, without the empty ones; page is
// the page wanted.
func (q statusQuery) values(page int) url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"q": q.Q, "provider": q.Provider, "state": q.State} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	return v
}

// url is the page's address for the view at page.
func (p *statusPage) url(q statusQuery, page int) string {
	if v := q.values(page); len(v) > 0 {
		return p.path + "?" + v.Encode()
	}
	return p.path
}

// instanceURL is the stable address of an instance's entry: the page
// filtered by its name and provider, which shows it first.
func (p *statusPage) instanceURL(provider, name string) string {
	return p.url(statusQuery{Q: name, Provider: provider}, 1)
}

// matches says whether s passes the filter.
func (q statusQuery) matches(s *collector.InstanceStatus) bool {
	return (q.Provider == "" || s.Provider == q.Provider) &&
		(q.State == "" || s.State == q.State) &&
		(q.Q == "" || containsFold(s.Name, q.Q))
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// unwell says whether an instance needs a look: not in its working state,
// or its state requests fail.
func unwell(s *collector.InstanceStatus) bool { return !s.Working || !s.Up }

// sortStatuses orders instances for the page: the one named exactly as
// the filter first (the dashboard's link to an instance), then the unwell,
// then by name.
func sortStatuses(list []collector.InstanceStatus, q string) {
	slices.SortStableFunc(list, func(a, b collector.InstanceStatus) int {
		if q != "" {
			if ea, eb := a.Name == q, b.Name == q; ea != eb {
				if ea {
					return -1
				}
				return 1
			}
		}
		if ua, ub := unwell(&a), unwell(&b); ua != ub {
			if ua {
				return -1
			}
			return 1
		}
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Provider, b.Provider))
	})
}

// statusRow is one instance on the page.
type statusRow struct {
	collector.InstanceStatus
	URL, Anchor     string
	Colour          string
	For, CheckedAgo string
	SinceTitle      string
	CheckedTitle    string
	Last            *statusLast
	CanReboot       bool
	Unwell          bool
}

// statusLast is an instance's last remediation, as shown.
type statusLast struct {
	remediation.Record
	Ago, Title string
}

// stateCount is a state's count among every instance, for the summary.
type stateCount struct {
	State, Colour, URL string
	Count              int
}

// statusView is what the template renders.
type statusView struct {
	Version     string
	Links       []statusLink
	Path        string
	Query       statusQuery
	Return      string // the view's query, for the buttons' redirect
	Flash       *flash
	Total       int // instances watched
	Unwell      int
	Matched     int // instances the filter keeps
	First, Last int // 1-based positions shown
	Rows        []statusRow
	Providers   []string
	States      []string
	Counts      []stateCount
	Prev, Next  string
	Page, Pages int
	Remediation bool
	DryRun      bool
	CheckPath   string
	RebootPath  string
}

func (p *statusPage) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the status page is read with GET; its buttons POST to "+statusCheckPath+" and "+statusRebootPath, http.StatusMethodNotAllowed)
		return
	}
	q := parseStatusQuery(r.URL.Query())
	view := p.view(q)
	if f, ok := readFlash(r); ok {
		view.Flash = &f
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The flash is for this answer only; and nothing of the page may be
	// framed by another site.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("Referrer-Policy", "same-origin")
	if err := p.tmpl.Execute(w, view); err != nil {
		p.logger.Debug("Writing the status page", "err", err) // the client went away
	}
}

// view builds the page for q.
func (p *statusPage) view(q statusQuery) statusView {
	now := p.now()
	all := p.instances.Statuses()
	v := statusView{
		Version: version.Version, Links: p.links, Path: p.path, Query: q,
		Return: q.values(q.Page).Encode(), Total: len(all),
		Remediation: p.rem.Enabled(), DryRun: p.rem.DryRun(), CheckPath: statusCheckPath, RebootPath: statusRebootPath,
	}
	providers := map[string]bool{}
	counts := map[string]int{}
	var kept []collector.InstanceStatus
	for i := range all {
		s := &all[i]
		providers[s.Provider] = true
		counts[s.State]++
		if unwell(s) {
			v.Unwell++
		}
		if q.matches(s) {
			kept = append(kept, *s)
		}
	}
	v.Providers = sortedKeys(providers)
	states := map[string]bool{collector.StateUnknown: true}
	for prov := range providers {
		for _, st := range collector.ProviderStates(prov) {
			states[st] = true
		}
	}
	for st := range counts {
		states[st] = true
	}
	v.States = sortedKeys(states)
	for _, st := range sortedKeys(counts) {
		v.Counts = append(v.Counts, stateCount{State: st, Colour: stateColour(st), Count: counts[st],
			URL: p.url(statusQuery{State: st}, 1)})
	}

	sortStatuses(kept, q.Q)
	v.Matched = len(kept)
	v.Pages = max(1, (len(kept)+statusPageSize-1)/statusPageSize)
	v.Page = min(q.Page, v.Pages)
	start := (v.Page - 1) * statusPageSize
	end := min(start+statusPageSize, len(kept))
	if v.Page > 1 {
		v.Prev = p.url(q, v.Page-1)
	}
	if v.Page < v.Pages {
		v.Next = p.url(q, v.Page+1)
	}
	if end > start {
		v.First, v.Last = start+1, end
	}
	v.Rows = make([]statusRow, 0, end-start)
	for _, s := range kept[start:end] {
		row := statusRow{
			InstanceStatus: s,
			URL:            p.instanceURL(s.Provider, s.Name),
			Anchor:         "instance-" + s.Provider + "-" + s.Name,
			Colour:         stateColour(s.State),
			CanReboot:      v.Remediation && s.CanReboot,
			Unwell:         unwell(&s),
			CheckedAgo:     "never",
		}
		if !s.Since.IsZero() {
			row.For = humanDuration(now.Sub(s.Since))
			row.SinceTitle = s.Since.UTC().Format(time.RFC3339)
		}
		if !s.Checked.IsZero() {
			row.CheckedAgo = humanDuration(now.Sub(s.Checked)) + " ago"
			row.CheckedTitle = s.Checked.UTC().Format(time.RFC3339)
		}
		if rec, ok := p.rem.Last(s.Provider, s.Name); ok {
			row.Last = &statusLast{Record: rec, Ago: humanDuration(now.Sub(rec.At)) + " ago", Title: rec.At.UTC().Format(time.RFC3339)}
		}
		v.Rows = append(v.Rows, row)
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// humanDuration is d to the second under an hour, to the minute under two
// days, in days and hours beyond.
func humanDuration(d time.Duration) string {
	switch d = max(d, 0); {
	case d < time.Hour:
		return trimZeroSeconds(d.Truncate(time.Second).String())
	case d < 48*time.Hour:
		return trimZeroSeconds(d.Truncate(time.Minute).String())
	default:
		days := d / (24 * time.Hour)
		return fmt.Sprintf("%dd%dh", days, (d-days*24*time.Hour)/time.Hour)
	}
}

// trimZeroSeconds makes 5m0s 5m.
func trimZeroSeconds(s string) string {
	if strings.HasSuffix(s, "m0s") {
		return s[:len(s)-2]
	}
	return s
}

// flash is the outcome of a button, shown once on the page it redirects
// to.
type flash struct {
	Provider string `json:"p"`
	Name     string `json:"n"`
	// Kind is ok, held or error: the message's colour.
	Kind string `json:"k"`
	Text string `json:"t"`
}

// maxFlash bounds the cookie; an instance name is short.
const maxFlash = 2048

func setFlash(w http.ResponseWriter, f flash) {
	b, _ := json.Marshal(f) // strings only: cannot fail
	if len(b) > maxFlash {
		f.Text = f.Text[:min(len(f.Text), 200)] + "…"
		f.Name = f.Name[:min(len(f.Name), 200)]
		b, _ = json.Marshal(f)
	}
	http.SetCookie(w, &http.Cookie{
		Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString(b),
		Path: "/", MaxAge: 60, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// readFlash reads the flash cookie; a malformed one is ignored. It is
// text the page escapes, so a forged one could only show text.
func readFlash(r *http.Request) (flash, bool) {
	c, err := r.Cookie(flashCookie)
	if err != nil || len(c.Value) > 2*maxFlash {
		return flash{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	var f flash
	if err != nil || json.Unmarshal(b, &f) != nil || f.Text == "" {
		return flash{}, false
	}
	switch f.Kind {
	case "ok", "held", "error":
	default:
		f.Kind = "error"
	}
	return f, true
}

// maxActionForm bounds a button's form: two names and a view.
const maxActionForm = 16 << 10

// action reads a button's form: the instance and the view to return to.
// It answers the request itself and returns ok false when it cannot go on.
func (p *statusPage) action(w http.ResponseWriter, r *http.Request, what string) (s collector.InstanceStatus, back string, ok bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, what+" is a button of the status page: use POST", http.StatusMethodNotAllowed)
		return s, "", false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxActionForm)
	if err := r.ParseForm(); err != nil {
		http.Error(w, what+": cannot read the form: "+err.Error(), http.StatusBadRequest)
		return s, "", false
	}
	// Only the view's own parameters are kept from return: the redirect
	// stays on this page, whatever the form says.
	view, _ := url.ParseQuery(r.PostForm.Get("return"))
	q := parseStatusQuery(view)
	back = p.url(q, q.Page)
	name, provider := r.PostForm.Get("name"), r.PostForm.Get("provider")
	s, found := p.instances.Status(name)
	if name == "" || !found || (provider != "" && s.Provider != provider) {
		setFlash(w, flash{Provider: provider, Name: name, Kind: "error",
			Text: fmt.Sprintf("%s: no instance named %s of provider %s is watched", what, quoteShort(name), quoteShort(provider))})
		http.Redirect(w, r, back, http.StatusSeeOther)
		return s, "", false
	}
	return s, back, true
}

// quoteShort quotes a name from a form, cut to a length a page can show.
func quoteShort(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return strconv.Quote(s)
}

// serveCheck is Check now: a state request now, through the collector's
// rate limit.
func (p *statusPage) serveCheck(w http.ResponseWriter, r *http.Request) {
	s, back, ok := p.action(w, r, "Check now")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), statusActionTimeout)
	defer cancel()
	st, err := p.instances.Check(ctx, s.Name)
	f := flash{Provider: s.Provider, Name: s.Name}
	var held *collector.HeldError
	switch {
	case errors.As(err, &held):
		f.Kind, f.Text = "held", fmt.Sprintf("Not checked: the provider's rate limit holds calls to this instance until %s; try again then", held.Until.UTC().Format("15:04:05 MST"))
	case errors.Is(err, collector.ErrNotSupported):
		f.Kind, f.Text = "error", "Not checked: this exporter cannot request the state now"
	case errors.Is(err, collector.ErrUnknownInstance):
		f.Kind, f.Text = "error", "Not checked: the instance is no longer watched"
	case errors.Is(err, context.DeadlineExceeded):
		f.Kind, f.Text = "error", fmt.Sprintf("Not checked: no answer within %v", statusActionTimeout)
	case err != nil:
		// The collector's errors name no secret, but the page need not
		// show more than that the check did not end.
		f.Kind, f.Text = "error", "Not checked: the state request did not end"
	case !st.Up:
		f.Kind, f.Text = "error", fmt.Sprintf("Checked: the state request failed (%s); the state is still %s", cmp.Or(st.Reason, "unknown reason"), st.State)
	default:
		f.Kind, f.Text = "ok", "Checked: the state is "+st.State
	}
	p.logAction("Status page: Check now", s, "outcome", f.Text)
	setFlash(w, f)
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// serveReboot is Reboot: the remediation engine's reboot, through the
// same guards as Alertmanager's requests.
func (p *statusPage) serveReboot(w http.ResponseWriter, r *http.Request) {
	s, back, ok := p.action(w, r, "Reboot")
	if !ok {
		return
	}
	f := flash{Provider: s.Provider, Name: s.Name}
	if !p.rem.Enabled() {
		f.Kind, f.Text = "error", "Not rebooted: remediation is off (no remediation section in the configuration)"
		setFlash(w, f)
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), statusActionTimeout)
	defer cancel()
	res := p.rem.Act(ctx, remediation.Request{Provider: s.Provider, Name: s.Name, Action: remediation.ActionReboot, Source: "status_page"})
	switch res.Result {
	case remediation.ResultDone:
		f.Kind, f.Text = "ok", "Rebooted (it was "+cmp.Or(res.State, s.State)+"); the state is requested again after the wait"
	case remediation.ResultDryRun:
		f.Kind, f.Text = "ok", "Dry run: the reboot was decided and counted, not made"
	case remediation.ResultHeld:
		f.Kind, f.Text = "held", "Not rebooted, held: "+explain(res.Reason, heldReasons, res.State)
	default:
		f.Kind, f.Text = "error", "Reboot failed: "+explain(cmp.Or(res.Reason, res.Result), failedReasons, res.State)
	}
	p.logAction("Status page: Reboot", s, "result", res.Result, "reason", res.Reason)
	setFlash(w, f)
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// heldReasons and failedReasons say what the remediation's reasons (the
// reason label of whatsapp_remediation_actions_total) mean to the
// operator; %s is the state the instance was found in.
var (
	heldReasons = map[string]string{
		remediation.ReasonWindow:          "the instance was acted on within the remediation window",
		remediation.ReasonBrake:           "the fleet brake holds: too many of the provider's instances needed an action at once",
		remediation.ReasonStateChanged:    "a fresh state request found %s, which is not one of reboot_states",
		remediation.ReasonNotEnabled:      "the configuration does not allow this action for the instance",
		remediation.ReasonRateLimited:     "the provider's rate limit holds calls to the instance; try again in a moment",
		remediation.ReasonUnknownInstance: "the instance is no longer watched",
		remediation.ReasonOtherReplica:    "another replica of the exporter acts for this instance",
	}
	failedReasons = map[string]string{
		remediation.ReasonNotDone: "the provider answered that it did not reboot the instance",
	}
)

// explain is reason with its meaning, when known.
func explain(reason string, meanings map[string]string, state string) string {
	if reason == "" {
		return "no reason given"
	}
	m, ok := meanings[reason]
	if !ok {
		return reason
	}
	if strings.Contains(m, "%s") {
		m = fmt.Sprintf(m, cmp.Or(state, collector.StateUnknown))
	}
	return reason + " (" + m + ")"
}

func (p *statusPage) logAction(msg string, s collector.InstanceStatus, args ...any) {
	ok, held := p.actionLog.Allow(p.now())
	if !ok {
		return
	}
	args = append(args, "provider", s.Provider, "name", s.Name)
	if held > 0 {
		args = append(args, "held_back", held)
	}
	p.logger.Info(msg, args...)
}
