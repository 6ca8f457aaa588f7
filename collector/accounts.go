package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	decode func(Response) (Listing, error)
}

func (l *getLister) List(ctx context.Context) (Listing, error) {
	return l.api.List(ctx, l.method, l.url, l.header, l.decode)
}

// Listing is what one listing call found.
type Listing struct {
	Instances []Listed
	// Malformed counts the rows that could not be read; the others count.
	Malformed int
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
	// Skip says why the instance is not watched (one of skipReasons);
	// empty to watch it.
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
)

// skipReasons are the values of the reason label of
// whatsapp_account_skipped_instances, all exposed from the first listing.
var skipReasons = []string{skipDeleted, skipNotWhatsApp, skipFiltered, skipConfigured, skipConflict, skipMalformed}

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

// account is a configured account and what the exporter knows of it.
type account struct {
	provider *Provider
	kind     *AccountKind
	name     string
	spec     config.AccountSpec
	lister   Lister
	mem      *memory // the listing calls' memory, as an instance's
	http     *http.Client
	logger   *slog.Logger
	stats    *instanceStats // of the listing calls
	// callsAs is what the calls of its instances count as when the
	// listing carries their states: the listing's method.
	callsAs *Provider
	stop    context.CancelFunc
	// held counts the listings that were held for confirmation.
	held atomic.Uint64

	mu        sync.Mutex
	last      *Listing  // the last good listing; nil before the first
	refreshed time.Time // when it came
	skipped   map[string]int
	// holding is set while a listing that shrank waits for its
	// confirmation.
	holding bool
}

// accountProvider is what a provider's accounts count as for the call
// metrics: their own method.
func accountProvider(p *Provider) *Provider {
	ap := &Provider{Name: p.Name, Methods: []string{p.Account.Method}}
	ap.methodLabels = []string{`method="` + escapeLabel(p.Account.Method) + `"`}
	return ap
}

// newAccount builds an account from its configuration, keeping the last
// listing of old when it is the same account.
func (c *Collector) newAccount(acct config.Account, old *account, pool *clientPoolUpdate) (*account, error) {
	spec := acct.Spec.Account()
	p, ok := providers[spec.Provider]
	if !ok || p.Account == nil {
		return nil, fmt.Errorf("provider %q has no accounts", spec.Provider)
	}
	hc, err := pool.get(spec.HTTPClientConfig)
	if err != nil {
		return nil, err
	}
	a := &account{provider: p, kind: p.Account, name: spec.Name, spec: acct.Spec, mem: &memory{}, http: hc}
	a.logger = c.logger.With("provider", p.Name, "account", spec.Name)
	a.callsAs = accountProvider(p)
	a.stats = newInstanceStats(a.callsAs)
	api := &API{client: hc, userAgent: c.opts.UserAgent, logger: a.logger, metrics: c.metrics.observer(p.Name, a.stats)}
	if a.lister, err = p.Account.NewLister(acct.Spec, api); err != nil {
		return nil, err
	}
	if old != nil {
		a.mem, a.stats = old.mem, old.stats
		old.mu.Lock()
		a.last, a.refreshed = old.last, old.refreshed
		old.mu.Unlock()
	}
	a.mem.account.Store(a)
	return a, nil
}

// start refreshes the account now and then every refresh_interval, until
// stop.
func (c *Collector) startAccount(a *account) {
	ctx, stop := context.WithCancel(context.Background())
	a.stop = stop
	every := time.Duration(a.spec.Account().RefreshInterval)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			c.sched.request(a.mem, time.Now())
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// listAccount makes one listing call for a and applies what it found.
func (c *Collector) listAccount(a *account) {
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
		a.mu.Lock()
		hold := max(c.listingHold(a, a.last), e.RetryAfter)
		a.mu.Unlock()
		// The last good list stays; the states it carried are no longer
		// known.
		a.mem.record(a.logger, outcome{reason: e.Reason}, e.Error(), start, now, hold, "Listing failing; keeping the last good list")
		c.recordListed(a, nil, e, now.Sub(start), now)
		return
	}
	a.mu.Lock()
	if shrinks(a.last, len(l.Instances)) && !a.holding {
		a.holding = true
		prev := len(a.last.Instances)
		a.mu.Unlock()
		a.held.Add(1)
		a.logger.Warn("Listing lost more than half of its instances; keeping the last good list until a second listing confirms it",
			"instances", len(l.Instances), "last_good", prev, "confirm_in", confirmDelay)
		a.mem.record(a.logger, outcome{up: true}, "", start, now, confirmDelay, "")
		time.AfterFunc(confirmDelay, func() { c.sched.request(a.mem, time.Now()) })
		return
	}
	a.holding = false
	hold := c.listingHold(a, &l)
	changed := a.last == nil || !sameInstances(a.last.Instances, l.Instances)
	a.last, a.refreshed = &l, now
	a.mu.Unlock()
	a.mem.record(a.logger, outcome{up: true}, "", start, now, hold, "")
	if changed {
		c.rebuild()
	}
	c.recordListed(a, l.Instances, nil, now.Sub(start), now)
}

// listingHold is how long a listing's result stands: the refresh
// interval (the partner methods' limits are not documented), or, when the
// listing is the state request of the instances whose live states it
// carries, as long as a state request's.
func (c *Collector) listingHold(a *account, l *Listing) time.Duration {
	if a.kind.StateRequest && l != nil && slices.ContainsFunc(l.Instances, func(in Listed) bool { return in.State != "" }) {
		return c.opts.MinInterval
	}
	return time.Duration(a.spec.Account().RefreshInterval)
}

// sameInstances reports whether two listings hold the same instances
// with the same credentials and flags, and give states for the same ones
// (the states themselves aside).
func sameInstances(a, b []Listed) bool {
	return slices.EqualFunc(a, b, func(x, y Listed) bool {
		return x.Name == y.Name && x.ID == y.ID && x.Token == y.Token && x.Skip == y.Skip && (x.State == "") == (y.State == "")
	})
}

// recordListed stores what a listing says of the instances it found: the
// state of each whose state it carries, as the result of its state
// request (or the listing's failure e for all of them), and the
// disconnection reason of the others. An instance whose state it carries
// counts the listing as its call.
func (c *Collector) recordListed(a *account, listed []Listed, e *Error, took time.Duration, now time.Time) {
	rows := make(map[string]Listed, len(listed))
	for _, in := range listed {
		rows[a.spec.Account().NamePrefix+in.Name] = in
	}
	c.mu.RLock()
	targets := c.targets
	c.mu.RUnlock()
	for _, t := range targets {
		if t.foundBy != a {
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
		default:
			continue // gone from the listing, or polled from now on: the rebuild follows
		}
		if ok && row.Disconnect != 0 && t.provider.DisconnectReason != nil {
			o.disconnect = t.provider.DisconnectReason(row.Disconnect)
		}
		t.stats.observe(0, took, reason)
		// The instance's own memory is never its schedule while the
		// listing carries its state: leave it due, so that an instance
		// the listing stops carrying is called at the next scrape.
		t.mem.record(t.logger, o, detail, now.Add(-took), now, 0, "State request failing")
	}
}

// found is an instance an account's listing found.
type found struct {
	account *account
	// listed says the listing carries its state: it is not called.
	listed bool
}

// discovered turns the accounts' last listings into instances, leaving out
// what their filters and the provider skip, the upstream instances of
// configuredIDs (watched as configured) and names already taken; it counts
// what it left out per account and reason.
func (c *Collector) discovered(accounts []*account, taken, configuredIDs map[string]bool) ([]config.Instance, map[string]found) {
	var instances []config.Instance
	foundBy := map[string]found{}
	for _, a := range accounts {
		a.mu.Lock()
		last := a.last
		a.mu.Unlock()
		skipped := map[string]int{}
		if last != nil {
			skipped[skipMalformed] = last.Malformed
			spec := a.spec.Account()
			for _, in := range last.Instances {
				name := spec.NamePrefix + in.Name
				switch {
				case in.Skip != "":
					skipped[in.Skip]++
				case !spec.Keeps(in.Name):
					skipped[skipFiltered]++
				case taken[name]:
					skipped[skipConflict]++
					a.logger.Error("Instance found by the account has the name of another instance; not watched. Rename one, or set name_prefix or a filter on the account", "instance", name)
				default:
					s := a.kind.Instance(a.spec, in, name)
					if err := config.ResolveInstance(s); err != nil {
						skipped[skipMalformed]++
						a.logger.Warn("Instance found by the account cannot be watched", "instance", name, "err", err)
						continue
					}
					if configuredIDs[s.Base().Identity()] {
						// Configured by hand: it is called as configured,
						// under its own name, not twice.
						skipped[skipConfigured]++
						continue
					}
					taken[name] = true
					instances = append(instances, config.Instance{Spec: s})
					foundBy[name] = found{account: a, listed: in.State != ""}
				}
			}
		}
		a.mu.Lock()
		a.skipped = skipped
		a.mu.Unlock()
	}
	return instances, foundBy
}

// takes returns the name of an instance of a's last listing that it would
// watch under a name already taken, or "".
func (a *account) takes(taken map[string]bool) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last == nil {
		return ""
	}
	spec := a.spec.Account()
	for _, in := range a.last.Instances {
		if in.Skip == "" && spec.Keeps(in.Name) && taken[spec.NamePrefix+in.Name] {
			return spec.NamePrefix + in.Name
		}
	}
	return ""
}

// accountMetrics are the metrics of the accounts, collected from the
// current ones.
type accountMetrics struct{ c *Collector }

var (
	accountInstancesDesc = prometheus.NewDesc("whatsapp_account_instances",
		"Instances of the account's last good listing that the exporter watches.", []string{"provider", "account"}, nil)
	accountSkippedDesc = prometheus.NewDesc("whatsapp_account_skipped_instances",
		"Instances of the account's last good listing that the exporter does not watch, by reason: deleted, not_whatsapp (another product of the provider), filtered (include/exclude), configured (watched as configured), conflict (name taken), malformed.",
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
}

func (m accountMetrics) Collect(ch chan<- prometheus.Metric) {
	m.c.mu.RLock()
	accounts := m.c.accounts
	counts := map[*account]int{}
	for _, t := range m.c.targets {
		if t.foundBy != nil {
			counts[t.foundBy]++
		}
	}
	m.c.mu.RUnlock()
	for _, a := range accounts {
		a.mu.Lock()
		refreshed, skipped := a.refreshed, a.skipped
		a.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(accountInstancesDesc, prometheus.GaugeValue, float64(counts[a]), a.provider.Name, a.name)
		for _, r := range skipReasons {
			ch <- prometheus.MustNewConstMetric(accountSkippedDesc, prometheus.GaugeValue, float64(skipped[r]), a.provider.Name, a.name, r)
		}
		ch <- prometheus.MustNewConstMetric(accountHeldDesc, prometheus.CounterValue, float64(a.held.Load()), a.provider.Name, a.name)
		ch <- prometheus.MustNewConstMetric(accountIntervalDesc, prometheus.GaugeValue, time.Duration(a.spec.Account().RefreshInterval).Seconds(), a.provider.Name, a.name)
		if !refreshed.IsZero() {
			ch <- prometheus.MustNewConstMetric(accountRefreshedDesc, prometheus.GaugeValue, float64(refreshed.UnixMilli())/1e3, a.provider.Name, a.name)
		}
		calls := &a.stats.calls[0]
		method := a.kind.Method
		ch <- prometheus.MustNewConstSummary(accountDurationDesc, calls.count.Load(), math.Float64frombits(calls.sumBits.Load()), nil, a.provider.Name, a.name, method)
		for k, r := range Reasons {
			if n := calls.errors[k].Load(); n > 0 {
				ch <- prometheus.MustNewConstMetric(accountErrorsDesc, prometheus.CounterValue, float64(n), a.provider.Name, a.name, method, r)
			}
		}
	}
}
