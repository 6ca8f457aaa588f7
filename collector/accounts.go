package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Accounts list instances that are not written in the configuration: a
// GREEN-API partner account, a Wachat account, an Evolution API server.
// Each account is refreshed in the background at its refresh_interval
// (and, when its listing carries the states, whenever a scrape needs
// them); the instances of its last good listing become targets like the
// configured ones, with the same metrics.

// AccountKind describes how a provider lists an account's instances.
type AccountKind struct {
	// Method is the method label of the listing call.
	Method string
	// Config describes the accounts to the config package.
	Config config.AccountInfo
	// NewLister builds the lister of a resolved account.
	NewLister func(spec config.AccountSpec, api *API) (Lister, error)
	// Instance is the configuration of an instance a listing found, before
	// the loader's steps; name is its name in the exporter.
	Instance func(spec config.AccountSpec, l Listed, name string) config.Spec
	// StateRequest says that a listing whose rows carry live states (see
	// Listed.State) is the state request of those instances: it is then
	// called as often as a state request (--api.min-interval), not only
	// every refresh_interval. Without it, the states a listing carries
	// are as fresh as the list.
	StateRequest bool
	// NewState makes the provider's own state of an account
	// (accountState.ext), which the account of the same key keeps across
	// reloads, as its listings: Meta's, what its notifications told. Nil
	// for none.
	NewState func() any
	// Metrics are the provider's own metrics of its accounts; each file
	// of the provider may add a set in its init.
	Metrics []*AccountMetricSet
}

// AccountMetricSet are a provider's own metrics of its accounts,
// collected from the current ones with the accounts' metrics.
type AccountMetricSet struct {
	Descs []*prometheus.Desc
	// Collect sends the metrics of one account of the provider.
	Collect func(a *account, ch chan<- prometheus.Metric)
}

// Lister lists an account's instances.
type Lister interface {
	// List makes one call and returns the listing or an *Error.
	List(ctx context.Context) (Listing, error)
}

// getLister lists an account with one GET of url, which decode reads.
type getLister struct {
	api    *API
	method string
	url    string
	header http.Header
	lim    listLimits
	decode func(Response, *jsonStream) (Listing, error)
}

func (l *getLister) List(ctx context.Context) (Listing, error) {
	return l.api.List(ctx, l.method, l.url, l.header, l.lim, l.decode)
}

// newGetLister lists spec's account with one GET of url.
func newGetLister(spec config.AccountSpec, api *API, method, url string, header http.Header, decode func(Response, *jsonStream) (Listing, error)) *getLister {
	a := spec.Account()
	return &getLister{api: api, method: method, url: url, header: header, decode: decode,
		lim: listLimits{max: a.MaxInstances, prefix: a.NamePrefix}}
}

// Listing is what one listing call found.
type Listing struct {
	// Instances are the rows that may be watched.
	Instances []Listed
	// Malformed counts the rows that could not be read, Skipped those
	// that are not watched by reason (one of skipReasons): the deleted,
	// the other products, the names that cannot be names.
	Malformed int
	Skipped   map[string]int
	// BadName is the first name that cannot be one, quoted and cut, for
	// the log.
	BadName string
	// Account is what the listing told of the account itself (a WABA's
	// health and review); nil when it tells nothing.
	Account *AccountHealth
}

// Listed is an instance in a listing.
type Listed struct {
	// Name is the instance's name at the provider, its name in the
	// exporter after the account's name_prefix.
	Name string
	// ID is what the provider knows it by (idInstance, instance name).
	ID string
	// Token is the instance's own credential when its calls need one the
	// listing gives (GREEN-API). A secret.
	Token string
	// State is the instance's raw state when the listing gives it live,
	// as the provider's state request would: the listing is then the
	// instance's state request. Empty for an instance that is called
	// one by one, which is the rule for listings read from a database
	// (Evolution API v2) or not known to be live.
	State string
	// Disconnect is the provider's code for the instance's last
	// disconnection, when the row gives it (Evolution API v2's
	// disconnectionReasonCode); 0 when it does not.
	Disconnect int
	// Health is the instance's health when the row tells it, as its
	// state request would (Provider.Health); nil otherwise.
	Health *Health
	// Skip says why a decoder does not watch the row (one of
	// skipReasons); empty to watch it. A listing counts such rows in
	// Skipped and holds none of them.
	Skip string
}

// Reasons for not watching a listed instance.
const (
	skipDeleted     = "deleted"      // GREEN-API: deleted in the last months
	skipNotWhatsApp = "not_whatsapp" // GREEN-API: a Telegram, MAX or Instagram instance
	skipFiltered    = "filtered"     // the account's include/exclude
	skipConfigured  = "configured"   // the same upstream instance is configured by hand
	skipConflict    = "conflict"     // its name is taken by another instance
	skipMalformed   = "malformed"    // the row could not be read
	skipBadName     = "bad_name"     // its name is too long or not text (config.CheckName)
)

// skipReasons are the values of the reason label of
// whatsapp_account_skipped_instances, all exposed from the first listing.
var skipReasons = []string{skipDeleted, skipNotWhatsApp, skipFiltered, skipConfigured, skipConflict, skipMalformed, skipBadName}

// Listings that suddenly lose most of their instances are not believed at
// once: Evolution API v1 answers an empty list for about ten seconds after
// a restart, while it loads its instances, and a partial answer is no
// reason to stop watching a fleet. Such a listing is held, and believed
// when the listing made confirmDelay later still agrees.
const confirmDelay = 15 * time.Second

// shrinks reports whether a listing of n instances is to be confirmed
// before it replaces one of prev: it lost more than half of them.
func shrinks(prev *Listing, n int) bool {
	return prev != nil && 2*n < len(prev.Instances)
}

// account is a configured account: immutable, replaced whole by a reload
// that changes it. What its listings bring is in its state, which the
// account of the same key in the next configuration takes over.
type account struct {
	provider *Provider
	kind     *AccountKind
	name     string
	spec     config.AccountSpec
	key      string // accountKey
	lister   Lister
	http     *http.Client
	logger   *slog.Logger
	// methods are the listing's: what the calls of its instances count
	// as when the listing carries their states.
	methods *methodSet
	state   *accountState
	// resolved are the configurations of the instances of the last
	// listing planned, by row: a listing that changed re-resolves only
	// its new rows. Under the collector's applyMu.
	resolved map[Listed]config.Spec
}

// accountState is what the exporter knows of an account between
// listings.
type accountState struct {
	mem   *memory        // the listing calls' memory, as an instance's
	stats *instanceStats // of the listing calls
	// held counts the listings that were held for confirmation.
	held atomic.Uint64

	mu        sync.Mutex
	last      *Listing  // the last good listing; nil before the first
	refreshed time.Time // when it came
	// holding is set while a listing that shrank waits for its
	// confirmation.
	holding bool

	// ext is the provider's own state of the account
	// (AccountKind.NewState), made with it; nil for none.
	ext any

	// problems are the rows of the last plan that could not be watched
	// for a reason that was logged (conflict, malformed), by name: a row
	// is logged when its problem appears, not again at every plan while
	// it lasts. Under the collector's applyMu.
	problems map[string]string
}

// The lines about listing rows, by kind (see Collector.rowLogs): at most
// rowLogBurst per rowLogPeriod.
const (
	rowLogBurst  = 10
	rowLogPeriod = time.Minute
)

// logRow writes a line about a row of a listing, of a kind, unless the
// kind's lines are held back.
func (c *Collector) logRow(a *account, kind string, level slog.Level, msg string, args ...any) {
	ok, held := c.rowLogs[kind].Allow(time.Now())
	if !ok {
		return
	}
	if held > 0 {
		args = append(args, "held_back", held)
	}
	a.logger.Log(context.Background(), level, msg, args...)
}

func (a *account) log() *slog.Logger { return a.logger }

func (a *account) enabled(ctx context.Context, level slog.Level) bool {
	return a.logger.Enabled(ctx, level)
}

// accountKey is the key of an account's state: the account at its
// provider and the credential of its listing.
func accountKey(spec config.AccountSpec) string {
	a := spec.Account()
	return a.Identity() + "\x00" + credential(&a.Common)
}

// newAccount builds an account from its configuration, with state, the
// state of the current account of its key, or a new one.
func (c *Collector) newAccount(acct config.Account, key string, state *accountState, pool *clientPoolUpdate) (*account, error) {
	spec := acct.Spec.Account()
	p, ok := lookup(spec.Provider)
	if !ok || p.Account == nil {
		return nil, fmt.Errorf("provider %q has no accounts", spec.Provider)
	}
	hc, err := pool.get(spec.HTTPClientConfig)
	if err != nil {
		return nil, err
	}
	a := &account{provider: p, kind: p.Account, name: spec.Name, spec: acct.Spec, key: key, http: hc,
		methods: newMethodSet(p.Account.Method)}
	a.logger = c.logger.With("provider", p.Name, "account", spec.Name)
	if state == nil {
		state = &accountState{mem: newMemory(key, nil), stats: newInstanceStats(a.methods)}
		if p.Account.NewState != nil {
			state.ext = p.Account.NewState()
		}
	}
	a.state = state
	api := &API{client: hc, userAgent: c.opts.UserAgent, logs: a, metrics: c.metrics.observer(p.Name, state.stats), known: c.known}
	if a.lister, err = p.Account.NewLister(acct.Spec, api); err != nil {
		return nil, err
	}
	// A lister that spends a budget kept across reloads (Meta's) takes
	// it from the account's state.
	if s, ok := a.lister.(interface{ setState(ext any) }); ok {
		s.setState(state.ext)
	}
	return a, nil
}

// refreshLoop asks for a's listing now and then refresh_interval after
// each listing, until the returned function is called. It waits from the
// end of the last listing, not on a ticker: a listing ends after the
// tick that asked for it, so its result still stood at the next tick,
// which then asked for nothing, and lists came every second interval.
func (c *Collector) refreshLoop(a *account) context.CancelFunc {
	ctx, stop := context.WithCancel(context.Background())
	every := time.Duration(a.spec.Account().RefreshInterval)
	go func() {
		for {
			// A listing may have come since (a scrape asks for one that
			// carries states): the interval counts from the last.
			if !a.state.mem.nextRefresh(every).After(time.Now()) {
				if done := c.sched.request(a.state.mem, time.Now()); done != nil {
					select {
					case <-ctx.Done():
						return
					case <-done:
					}
				}
			}
			wait := time.Until(a.state.mem.nextRefresh(every))
			if wait <= 0 {
				// Nothing recorded (the scheduler closed): do not spin.
				wait = every
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
	return stop
}

// list makes one listing call for a and has the planner apply what it
// found when the instances changed.
func (c *Collector) list(a *account) {
	st := a.state
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(a.spec.Account().Timeout))
	defer cancel()
	start := time.Now()
	l, err := a.lister.List(ctx)
	now := time.Now()
	var e *Error
	if err != nil {
		if !errors.As(err, &e) {
			e = newError(ReasonBadResponse, "%s", err)
		}
		st.mu.Lock()
		hold := max(c.listingHold(a, st.last), e.RetryAfter)
		st.mu.Unlock()
		// The last good list stays; the states it carried are no longer
		// known.
		st.mem.record(a, outcome{reason: e.Reason}, e.Error(), start, now, hold, "Listing failing; keeping the last good list")
		c.recordListed(a, nil, e, now.Sub(start), now)
		return
	}
	st.mu.Lock()
	if shrinks(st.last, len(l.Instances)) && !st.holding {
		st.holding = true
		prev := len(st.last.Instances)
		st.mu.Unlock()
		st.held.Add(1)
		a.logger.Warn("Listing lost more than half of its instances; keeping the last good list until a second listing confirms it",
			"instances", len(l.Instances), "last_good", prev, "confirm_in", confirmDelay)
		st.mem.record(a, outcome{up: true}, "", start, now, confirmDelay, "")
		time.AfterFunc(confirmDelay, func() { c.sched.request(st.mem, time.Now()) })
		return
	}
	st.holding = false
	hold := c.listingHold(a, &l)
	changed := st.last == nil || !sameInstances(st.last.Instances, l.Instances) ||
		st.last.Malformed != l.Malformed || !maps.Equal(st.last.Skipped, l.Skipped)
	st.last, st.refreshed = &l, now
	st.mu.Unlock()
	st.mem.record(a, outcome{up: true}, "", start, now, hold, "")
	if n := l.Skipped[skipBadName]; n > 0 && changed {
		c.logRow(a, skipBadName, slog.LevelWarn, "Instances found by the account have names that cannot be names; not watched",
			"instances", n, "first", l.BadName, "rule", "at most 128 bytes with name_prefix, valid UTF-8, no control characters")
	}
	if changed {
		c.replan()
	}
	c.recordListed(a, l.Instances, nil, now.Sub(start), now)
}

// listingHold is how long a listing's result stands: the refresh
// interval (the partner methods' limits are not documented), or, when the
// listing is the state request of the instances whose live states it
// carries, as long as a state request's.
func (c *Collector) listingHold(a *account, l *Listing) time.Duration {
	hold := time.Duration(a.spec.Account().RefreshInterval)
	if a.kind.StateRequest && l != nil && slices.ContainsFunc(l.Instances, func(in Listed) bool { return in.State != "" }) {
		hold = c.opts.MinInterval
	}
	if p, ok := a.lister.(pacer); ok {
		hold = max(hold, p.Pace())
	}
	return hold
}

// sameInstances reports whether two listings hold the same instances
// with the same credentials, and give states for the same ones
// (the states themselves aside).
func sameInstances(a, b []Listed) bool {
	return slices.EqualFunc(a, b, func(x, y Listed) bool {
		return x.Name == y.Name && x.ID == y.ID && x.Token == y.Token && (x.State == "") == (y.State == "")
	})
}

// recordListed stores what a listing says of the instances it found, in
// the current snapshot: the state of each whose state it carries, as the
// result of its state request (or the listing's failure e for all of
// them), and the disconnection reason of the others. An instance whose
// state it carries counts the listing as its call. The instances of
// another account of the same key (a reload between the call and now)
// are the same instances.
func (c *Collector) recordListed(a *account, listed []Listed, e *Error, took time.Duration, now time.Time) {
	rows := make(map[string]Listed, len(listed))
	for _, in := range listed {
		rows[a.spec.Account().NamePrefix+in.Name] = in
	}
	for _, t := range c.current().targets {
		if t.foundBy == nil || t.foundBy.key != a.key {
			continue
		}
		row, ok := rows[t.name]
		if !t.listed {
			if ok && row.Disconnect != 0 && t.provider.DisconnectReason != nil {
				t.mem.disconnected(t.provider.DisconnectReason(row.Disconnect))
			}
			continue
		}
		reason, detail := "", ""
		o := outcome{state: StateUnknown, up: false}
		switch {
		case e != nil:
			reason, detail, o.reason = e.Reason, e.Error(), e.Reason
		case ok && row.State != "":
			o = t.outcomeOf(row.State, nil)
			if t.provider.Health {
				o.health = orUnknown(row.Health)
			}
		default:
			continue // gone from the listing, or polled from now on
		}
		if ok && row.Disconnect != 0 && t.provider.DisconnectReason != nil {
			o.disconnect = t.provider.DisconnectReason(row.Disconnect)
		}
		t.stats.observe(0, took, reason)
		// The instance's own memory is never its schedule while the
		// listing carries its state: leave it due, so that an instance
		// the listing stops carrying is called at the next scrape.
		t.mem.record(t, o, detail, now.Add(-took), now, 0, "State request failing")
	}
}

// found is an instance an account's listing found.
type found struct {
	account *account
	// listed says the listing carries its state: it is not called.
	listed bool
}

// discovered turns the last listings of next's accounts into instances,
// leaving out what their filters and the provider skip, the upstream
// instances of configuredIDs (watched as configured) and names already
// taken, configured ones first; it records in next what each account
// found and left out, and logs each row that cannot be watched when its
// problem appears. Under applyMu.
func (c *Collector) discovered(next *snapshot, taken, configuredIDs map[string]bool) ([]config.Instance, map[string]found) {
	var instances []config.Instance
	foundBy := map[string]found{}
	for _, a := range next.accounts {
		a.state.mu.Lock()
		last := a.state.last
		a.state.mu.Unlock()
		af := accountFound{skipped: map[string]int{}}
		resolved := make(map[Listed]config.Spec, len(a.resolved))
		problems := map[string]string{}
		// problem counts a row left out for kind, and logs it unless the
		// last plan left it out for the same.
		problem := func(name, kind, msg string, args ...any) {
			af.skipped[kind]++
			problems[name] = kind
			if a.state.problems[name] != kind {
				c.logRow(a, kind, slog.LevelError, msg, append([]any{"instance", name}, args...)...)
			}
		}
		if last != nil {
			af.skipped[skipMalformed] = last.Malformed
			for r, n := range last.Skipped {
				af.skipped[r] += n
			}
			spec := a.spec.Account()
			for _, in := range last.Instances {
				name := spec.NamePrefix + in.Name
				if !spec.Keeps(in.Name) {
					af.skipped[skipFiltered]++
					continue
				}
				s, err := a.resolve(in, name, resolved)
				switch {
				case err != nil:
					problem(name, skipMalformed, "Instance found by the account cannot be watched", "err", err)
				case configuredIDs[s.Base().Identity()]:
					// Configured by hand: it is called as configured,
					// under its own name, not twice.
					af.skipped[skipConfigured]++
				case taken[name]:
					// Configured instances come first: a listing, which
					// a tenant of a shared server may name as it likes,
					// never takes a configured name, nor fails a reload.
					problem(name, skipConflict, "Instance found by the account has the name of another instance; not watched. Rename one, or set name_prefix or a filter on the account")
				default:
					taken[name] = true
					af.instances++
					instances = append(instances, config.Instance{Spec: s})
					foundBy[name] = found{account: a, listed: in.State != ""}
				}
			}
		}
		a.resolved = resolved
		a.state.problems = problems
		next.found[a] = af
	}
	return instances, foundBy
}

// resolve returns the configuration of a listed instance, from the last
// plan when its row has not changed, and records it in resolved.
func (a *account) resolve(in Listed, name string, resolved map[Listed]config.Spec) (config.Spec, error) {
	row := in
	row.State, row.Disconnect, row.Health = "", 0, nil // change at every listing; not in the configuration
	if s, ok := a.resolved[row]; ok {
		resolved[row] = s
		return s, nil
	}
	s := a.kind.Instance(a.spec, in, name)
	if err := config.ResolveListed(s); err != nil {
		return nil, err
	}
	resolved[row] = s
	return s, nil
}

// accountMetrics are the metrics of the accounts, collected from the
// current ones.
type accountMetrics struct{ c *Collector }

var (
	accountInstancesDesc = prometheus.NewDesc("whatsapp_account_instances",
		"Instances of the account's last good listing that the exporter watches.", []string{"provider", "account"}, nil)
	accountSkippedDesc = prometheus.NewDesc("whatsapp_account_skipped_instances",
		"Instances of the account's last good listing that the exporter does not watch, by reason: deleted, not_whatsapp (another product of the provider), filtered (include/exclude), configured (watched as configured), conflict (name taken), malformed, bad_name (longer than 128 bytes with name_prefix, not valid UTF-8 or with control characters).",
		[]string{"provider", "account", "reason"}, nil)
	accountRefreshedDesc = prometheus.NewDesc("whatsapp_account_last_refresh_timestamp_seconds",
		"When the account's list was last refreshed, in seconds since the Unix epoch; none before the first listing.", []string{"provider", "account"}, nil)
	accountIntervalDesc = prometheus.NewDesc("whatsapp_account_refresh_interval_seconds",
		"How often the account's list is refreshed (refresh_interval).", []string{"provider", "account"}, nil)
	accountDurationDesc = prometheus.NewDesc("whatsapp_account_request_duration_seconds",
		"Listing calls for the account and their duration.", []string{"provider", "account", "method"}, nil)
	accountErrorsDesc = prometheus.NewDesc("whatsapp_account_request_errors_total",
		"Listing calls for the account that failed, by reason (the reasons of state requests); the last good list stays in use.",
		[]string{"provider", "account", "method", "reason"}, nil)
	accountHeldDesc = prometheus.NewDesc("whatsapp_account_listings_held_total",
		"Listings that held fewer than half the instances of the last good list: the last good list stayed until the listing made 15 s later confirmed them.",
		[]string{"provider", "account"}, nil)
)

func (m accountMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{accountInstancesDesc, accountSkippedDesc, accountRefreshedDesc, accountIntervalDesc, accountDurationDesc, accountErrorsDesc, accountHeldDesc} {
		ch <- d
	}
	for _, p := range registered() {
		if p.Account != nil {
			for _, set := range p.Account.Metrics {
				for _, d := range set.Descs {
					ch <- d
				}
			}
		}
	}
}

func (m accountMetrics) Collect(ch chan<- prometheus.Metric) {
	snap := m.c.current()
	for _, a := range snap.accounts {
		found := snap.found[a]
		a.state.mu.Lock()
		refreshed := a.state.refreshed
		a.state.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(accountInstancesDesc, prometheus.GaugeValue, float64(found.instances), a.provider.Name, a.name)
		for _, r := range skipReasons {
			ch <- prometheus.MustNewConstMetric(accountSkippedDesc, prometheus.GaugeValue, float64(found.skipped[r]), a.provider.Name, a.name, r)
		}
		ch <- prometheus.MustNewConstMetric(accountHeldDesc, prometheus.CounterValue, float64(a.state.held.Load()), a.provider.Name, a.name)
		ch <- prometheus.MustNewConstMetric(accountIntervalDesc, prometheus.GaugeValue, time.Duration(a.spec.Account().RefreshInterval).Seconds(), a.provider.Name, a.name)
		if !refreshed.IsZero() {
			ch <- prometheus.MustNewConstMetric(accountRefreshedDesc, prometheus.GaugeValue, float64(refreshed.UnixMilli())/1e3, a.provider.Name, a.name)
		}
		calls := &a.state.stats.calls[0]
		method := a.kind.Method
		ch <- prometheus.MustNewConstSummary(accountDurationDesc, calls.count.Load(), math.Float64frombits(calls.sumBits.Load()), nil, a.provider.Name, a.name, method)
		for k, r := range Reasons {
			if n := calls.errors[k].Load(); n > 0 {
				ch <- prometheus.MustNewConstMetric(accountErrorsDesc, prometheus.CounterValue, float64(n), a.provider.Name, a.name, method, r)
			}
		}
		for _, set := range a.kind.Metrics {
			set.Collect(a, ch)
		}
	}
}
