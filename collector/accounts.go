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
	// CarriesStates says the listing reports every instance's state: its
	// instances are not called one by one, the listing is their state
	// request.
	CarriesStates bool
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
	// State is the raw state, when the listing carries states.
	State string
	// Skip says why the instance is not watched (deleted, expired); empty
	// to watch it.
	Skip string
}

// Reasons for not watching a listed instance, besides the provider's own
// (deleted, expired).
const (
	skipFiltered  = "filtered"  // the account's include/exclude
	skipConflict  = "conflict"  // its name is taken by another instance
	skipMalformed = "malformed" // the row could not be read
)

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

	mu        sync.Mutex
	last      *Listing  // the last good listing; nil before the first
	refreshed time.Time // when it came
	skipped   map[string]int
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
	// The partner methods' limits are not documented: never more often
	// than the refresh interval. A listing that carries the states is
	// their state request, shared as one.
	hold := time.Duration(a.spec.Account().RefreshInterval)
	if a.kind.CarriesStates {
		hold = c.opts.MinInterval
	}
	var e *Error
	if err != nil {
		if !errors.As(err, &e) {
			e = newError(ReasonBadResponse, "%s", err)
		}
		hold = max(hold, e.RetryAfter)
		// The last good list stays; the states it carried are no longer
		// known.
		a.mem.record(a.logger, outcome{reason: e.Reason}, e.Error(), start, now, hold, "Listing failing; keeping the last good list")
		if a.kind.CarriesStates {
			c.recordListed(a, nil, e, now.Sub(start), now, hold)
		}
		return
	}
	a.mem.record(a.logger, outcome{up: true}, "", start, now, hold, "")
	a.mu.Lock()
	changed := a.last == nil || !sameInstances(a.last.Instances, l.Instances)
	a.last, a.refreshed = &l, now
	a.mu.Unlock()
	if changed {
		c.rebuild()
	}
	if a.kind.CarriesStates {
		c.recordListed(a, l.Instances, nil, now.Sub(start), now, hold)
	}
}

// sameInstances reports whether two listings hold the same instances
// with the same credentials and flags (states aside).
func sameInstances(a, b []Listed) bool {
	return slices.EqualFunc(a, b, func(x, y Listed) bool {
		return x.Name == y.Name && x.ID == y.ID && x.Token == y.Token && x.Skip == y.Skip
	})
}

// recordListed stores what a listing that carries the states says of
// its instances, as the results of their state requests: the state each
// has, or the listing's failure e for all. Each instance counts the
// listing as its call.
func (c *Collector) recordListed(a *account, listed []Listed, e *Error, took time.Duration, now time.Time, hold time.Duration) {
	states := make(map[string]string, len(listed))
	for _, in := range listed {
		states[a.spec.Account().NamePrefix+in.Name] = in.State
	}
	c.mu.RLock()
	targets := c.targets
	c.mu.RUnlock()
	for _, t := range targets {
		if t.foundBy != a {
			continue
		}
		reason, detail := "", ""
		o := outcome{state: StateUnknown, up: false}
		if e != nil {
			reason, detail, o.reason = e.Reason, e.Error(), e.Reason
		} else if raw, ok := states[t.name]; ok {
			o = t.outcomeOf(raw, nil)
		} else {
			continue // gone from the listing: the rebuild removed it
		}
		t.stats.observe(0, took, reason)
		t.mem.record(t.logger, o, detail, now.Add(-took), now, hold, "State request failing")
	}
}

// discovered turns the accounts' last listings into instances, leaving out
// what their filters and the provider skip and names already taken; it
// counts what it left out per account and reason.
func (c *Collector) discovered(accounts []*account, taken map[string]bool) ([]config.Instance, map[string]*account) {
	var instances []config.Instance
	foundBy := map[string]*account{}
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
					taken[name] = true
					instances = append(instances, config.Instance{Spec: s})
					foundBy[name] = a
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
		"Instances of the account's last good listing that the exporter does not watch, by reason: deleted, expired, filtered (include/exclude), conflict (name taken), malformed.",
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
)

func (m accountMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{accountInstancesDesc, accountSkippedDesc, accountRefreshedDesc, accountIntervalDesc, accountDurationDesc, accountErrorsDesc} {
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
		for _, r := range []string{"deleted", "expired", skipFiltered, skipConflict, skipMalformed} {
			ch <- prometheus.MustNewConstMetric(accountSkippedDesc, prometheus.GaugeValue, float64(skipped[r]), a.provider.Name, a.name, r)
		}
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
