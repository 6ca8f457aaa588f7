package collector

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// A WABA lists its phone numbers, each with every field its state request
// would ask for, in one request per 100 numbers:
//
//	GET {api_url}/{waba_id}?fields=id,account_review_status,health_status,
//	    phone_numbers.limit(100){id,status,quality_rating,health_status,…}
//
// Field expansion (Graph API "Field Expansion": nested requests joined
// into one call) brings the WABA's own health and review with its first
// page of numbers; the following pages are its phone_numbers edge, by
// paging.next. The listing is the numbers' state request (StateRequest):
// a WABA of up to 100 numbers costs one request per refresh_interval
// (default 1m: 60 an hour), whatever the scrapes, instead of one per
// number.
//
// A number's name in the exporter is its phone-number ID: unique, stable
// (a number keeps its ID while its display name and quality change) and a
// label value that holds no one's phone number.

// metaPageSize is the numbers asked for per page, the edge's maximum.
const metaPageSize = 100

var metaAccounts = &AccountKind{
	Method: "listPhoneNumbers",
	Config: config.AccountInfo{
		NewSpec:     func() config.AccountSpec { return &MetaAccountSpec{} },
		SecretField: "access_token",
		DefaultURL:  metaDefaultURL,
	},
	NewLister:    newMetaLister,
	Instance:     metaListedInstance,
	StateRequest: true,
	NewState:     func() any { return &metaAccountState{} },
	Metrics:      []*AccountMetricSet{metaAccountMetrics},
}

// metaListedInstance is a found number's configuration: the WABA's
// settings and token. Its state comes with the listing; it is not called.
func metaListedInstance(spec config.AccountSpec, l Listed, name string) config.Spec {
	a := spec.(*MetaAccountSpec)
	return &MetaSpec{
		Common: config.Common{
			Name: name, Provider: "meta", APIURL: a.APIURL, Timeout: a.Timeout, HTTPClientConfig: a.HTTPClientConfig,
		},
		PhoneNumberID: l.ID,
		AccessToken:   promcfg.Secret(a.Secret()),
		WABAID:        a.WABAID,
		PollInterval:  a.RefreshInterval,
		metaShared:    metaShared{AuthHeader: a.AuthHeader},
	}
}

type metaLister struct {
	api    *API
	first  string
	base   *url.URL // api_url: paging.next must stay under it
	header http.Header
	lim    listLimits
	wabaID string
	every  time.Duration
	state  *metaAccountState
	now    func() time.Time
}

func newMetaLister(spec config.AccountSpec, api *API) (Lister, error) {
	s := spec.(*MetaAccountSpec)
	a := spec.Account()
	api.addSecret(a.Secret())
	base, err := url.Parse(a.APIURL)
	if err != nil {
		return nil, err
	}
	fields := "id,account_review_status,health_status,phone_numbers.limit(" + strconv.Itoa(metaPageSize) + "){" + metaNodeFields + "}"
	return &metaLister{
		api:    api,
		first:  a.APIURL + "/" + url.PathEscape(s.WABAID) + "?fields=" + url.QueryEscape(fields),
		base:   base,
		header: metaAuth(s.AuthHeader, a.Secret()),
		lim:    listLimits{max: a.MaxInstances, prefix: a.NamePrefix},
		wabaID: s.WABAID,
		every:  time.Duration(a.RefreshInterval),
		state:  &metaAccountState{},
		now:    time.Now,
	}, nil
}

// setState has the lister spend the budget of the account's state, which
// the account of the same key keeps across reloads.
func (l *metaLister) setState(ext any) {
	if st, ok := ext.(*metaAccountState); ok {
		l.state = st
	}
}

// Pace implements pacer: at least refresh_interval, stretched as the
// budget is spent.
func (l *metaLister) Pace() time.Duration { return l.state.budget.pace(l.now(), l.every) }

// List implements Lister: the WABA and its first page, then each page
// paging.next leads to, at most enough for max_instances.
func (l *metaLister) List(ctx context.Context) (Listing, error) {
	var acc Listing
	seen := map[string]bool{}
	maxPages := l.lim.max/metaPageSize + 2
	next := l.first
	for page := 0; next != ""; page++ {
		if page == maxPages {
			return Listing{}, newError(ReasonBadResponse, "the listing goes on past %d pages (max_instances %d)", maxPages, l.lim.max)
		}
		seen[next] = true
		rawURL, first := next, page == 0
		next = ""
		got, err := l.api.List(ctx, "listPhoneNumbers", rawURL, l.header, l.lim, func(r Response, s *jsonStream) (Listing, error) {
			now := l.now()
			l.state.budget.observe(r.Header, now)
			if s == nil {
				return Listing{}, metaStatusError(r, &l.state.budget, now, "waba_id", l.wabaID)
			}
			n, err := decodeMetaPage(r, s, &acc, first)
			next = n
			return acc, err
		})
		if err != nil {
			return Listing{}, err
		}
		acc = got
		if next != "" {
			if !l.under(next) {
				return Listing{}, newError(ReasonBadResponse, "paging.next of page %d leads outside api_url; not followed with the token", page+1)
			}
			if seen[next] {
				return Listing{}, newError(ReasonBadResponse, "paging.next of page %d leads back to a page already read", page+1)
			}
		}
	}
	return acc, nil
}

// under reports whether a paging.next URL is under api_url: the token
// goes with it.
func (l *metaLister) under(next string) bool {
	u, err := url.Parse(next)
	if err != nil || u.User != nil {
		return false
	}
	return u.Scheme == l.base.Scheme && u.Host == l.base.Host && strings.HasPrefix(u.Path, strings.TrimSuffix(l.base.Path, "/")+"/")
}

// decodeMetaPage reads one page: the WABA node with its phone_numbers
// (first), or a page of the edge ({"data":[…],"paging":{…}}). It adds the
// numbers to acc, the WABA's health to acc.Account, and returns
// paging.next.
func decodeMetaPage(r Response, s *jsonStream, acc *Listing, first bool) (string, error) {
	var next string
	found := false
	var health *metaHealthJSON
	review, isNode := "", false
	// pageKey reads a key of a page of the edge, data or paging, and
	// reports whether it was one.
	pageKey := func(key string) (bool, error) {
		switch key {
		case "data":
			found = true
			return true, s.array(func(raw []byte, whole bool) error { return keepMetaRow(s, acc, raw, whole) })
		case "paging":
			n, err := metaNext(s)
			next = n
			return true, err
		}
		return false, nil
	}
	edge := func() error {
		found = true
		return s.object(func(key string) error {
			if ok, err := pageKey(key); ok {
				return err
			}
			_, _, err := s.value()
			return err
		})
	}
	err := s.object(func(key string) error {
		if ok, err := pageKey(key); ok {
			return err
		}
		switch key {
		case "phone_numbers":
			if c, err := s.peek(); err == nil && c == 'n' {
				_, _, err := s.value()
				found = true
				return err
			}
			return edge()
		case "health_status":
			raw, whole, err := s.value()
			if err == nil && whole && json.Unmarshal(raw, &health) != nil {
				health = nil
			}
			return err
		case "account_review_status":
			raw, whole, err := s.value()
			if err == nil && whole {
				_ = json.Unmarshal(raw, &review)
			}
			return err
		case "id":
			isNode = true
		}
		_, _, err := s.value()
		return err
	})
	if err == nil {
		err = s.end()
	}
	switch {
	case errors.Is(err, errSyntax):
		return "", newError(ReasonBadResponse, "HTTP %d: the listing is not a JSON object", r.Status)
	case err != nil:
		return "", err
	case !found && !(first && isNode):
		return "", newError(ReasonBadResponse, "HTTP %d: no phone numbers in the answer (check api_url)", r.Status)
	}
	if first {
		acc.Account = metaAccountHealth(health, review)
	}
	return next, nil
}

// keepMetaRow adds a row of phone_numbers to acc.
func keepMetaRow(s *jsonStream, acc *Listing, raw []byte, whole bool) error {
	var n metaNode
	if !mayHold(raw, whole, "id") || json.Unmarshal(raw, &n) != nil || checkMetaID("id", n.ID) != nil {
		acc.Malformed++
		return nil
	}
	return s.keep(acc, Listed{Name: n.ID, ID: n.ID, State: metaState(n.Status), Health: n.health()})
}

// metaNext reads a paging object's next.
func metaNext(s *jsonStream) (string, error) {
	raw, whole, err := s.value()
	if err != nil {
		return "", err
	}
	var p struct {
		Next string `json:"next"`
	}
	if !whole || json.Unmarshal(raw, &p) != nil {
		return "", errSyntax
	}
	return p.Next, nil
}

// The metrics of a WABA: its own health and review, from its last
// listing, and the budget its calls spent.
var (
	metaWABACanSendDesc = prometheus.NewDesc("whatsapp_meta_waba_can_send_message",
		"Whether the WABA can send (Meta's Cloud API health_status of the WABA node), as the worst can_send_message of its own health entities (the WABA, the business, the app) at its last listing: 1 for the current status, 0 for the others; unknown before a listing told it.",
		[]string{"provider", "account", "status"}, nil)
	metaWABAErrorDesc = prometheus.NewDesc("whatsapp_meta_waba_health_error",
		"An error that keeps a health entity of the WABA (entity_type WABA, BUSINESS or APP) from AVAILABLE, by Meta's error_code, at its last listing: 1 while it lasts, absent otherwise.",
		[]string{"provider", "account", "entity_type", "error_code"}, nil)
	metaWABAReviewDesc = prometheus.NewDesc("whatsapp_meta_waba_review_status",
		"The WABA's account_review_status at its last listing: 1 for the current status, 0 for the others; unknown before a listing told it.",
		[]string{"provider", "account", "status"}, nil)
	metaUsageDesc = prometheus.NewDesc("whatsapp_meta_api_usage_ratio",
		"Share of Meta's request budget spent, as the last answer's X-Business-Use-Case-Usage (type business_use_case) or X-App-Usage (type app) told: the highest of its percentages, from 0 to 1. The exporter slows its calls from 0.5 and nearly stops them from 0.9. Absent until an answer carries the header.",
		[]string{"provider", "budget", "type"}, nil)
	metaThrottledDesc = prometheus.NewDesc("whatsapp_meta_api_throttled_until_timestamp_seconds",
		"When Meta said the calls of the budget regain access (estimated_time_to_regain_access, or a rate-limit error): no call is made before; 0 when not throttled.",
		[]string{"provider", "budget"}, nil)
)

var (
	metaCanSendOneHot = append(append([]string(nil), CanSendValues...), StateUnknown)
	metaReviewOneHot  = append(append([]string(nil), ReviewValues...), StateUnknown)
)

var metaAccountMetrics = &AccountMetricSet{
	Descs: []*prometheus.Desc{metaWABACanSendDesc, metaWABAErrorDesc, metaWABAReviewDesc, metaUsageDesc, metaThrottledDesc},
	Collect: func(a *account, ch chan<- prometheus.Metric) {
		a.state.mu.Lock()
		var h *AccountHealth
		if a.state.last != nil {
			h = a.state.last.Account
		}
		a.state.mu.Unlock()
		if h == nil {
			h = &AccountHealth{}
		}
		oneHot(ch, metaWABACanSendDesc, metaCanSendOneHot, h.CanSend, a.provider.Name, a.name)
		for _, e := range h.Errors {
			ch <- prometheus.MustNewConstMetric(metaWABAErrorDesc, prometheus.GaugeValue, 1, a.provider.Name, a.name, e.Entity, e.Code)
		}
		oneHot(ch, metaWABAReviewDesc, metaReviewOneHot, h.Review, a.provider.Name, a.name)
		if st, ok := a.state.ext.(*metaAccountState); ok {
			collectMetaBudget(ch, &st.budget, a.provider.Name, a.name, time.Now())
		}
	},
}

// oneHot sends a sample per value of values (whose last is unknown), 1
// for v, or for unknown when v is none of the others.
func oneHot(ch chan<- prometheus.Metric, d *prometheus.Desc, values []string, v string, labels ...string) {
	known := false
	for _, x := range values[:len(values)-1] {
		known = known || x == v
	}
	for i, x := range values {
		on := x == v || i == len(values)-1 && !known
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, boolValue(on), append(labels, x)...)
	}
}

// collectMetaBudget sends the metrics of a budget.
func collectMetaBudget(ch chan<- prometheus.Metric, b *metaBudget, provider, name string, now time.Time) {
	r := b.reading(now)
	if r.seenBUC {
		ch <- prometheus.MustNewConstMetric(metaUsageDesc, prometheus.GaugeValue, r.buc, provider, name, metaUsageBUC)
	}
	if r.seenApp {
		ch <- prometheus.MustNewConstMetric(metaUsageDesc, prometheus.GaugeValue, r.app, provider, name, metaUsageApp)
	}
	until := 0.0
	if !r.throttledUntil.IsZero() {
		until = float64(r.throttledUntil.Unix())
	}
	ch <- prometheus.MustNewConstMetric(metaThrottledDesc, prometheus.GaugeValue, until, provider, name)
}

// metaNumberBudgets are the budget metrics of the single numbers (a
// WABA's numbers spend the WABA's, whose account exposes it), named by
// the instance. A number named as a meta account is left out: the
// account's series would be the same.
type metaNumberBudgets struct{ c *Collector }

func (m metaNumberBudgets) Describe(ch chan<- *prometheus.Desc) {
	ch <- metaUsageDesc
	ch <- metaThrottledDesc
}

func (m metaNumberBudgets) Collect(ch chan<- prometheus.Metric) {
	snap := m.c.current()
	accounts := map[string]bool{}
	for _, a := range snap.accounts {
		if a.kind == metaAccounts {
			accounts[a.name] = true
		}
	}
	now := time.Now()
	for _, t := range snap.targets {
		mc, ok := t.client.(*metaClient)
		if !ok || t.foundBy != nil || accounts[t.name] {
			continue
		}
		collectMetaBudget(ch, mc.budget, t.provider.Name, t.name, now)
	}
}
