package collector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// snapshot is what the collector watches: immutable once published, and
// replaced whole. It points at memories and at the accounts' states,
// which change between scrapes, but nothing it holds points back at it.
type snapshot struct {
	// configured are the configuration's instances, accounts its
	// accounts, in its order.
	configured []config.Instance
	accounts   []*account
	// targets are the configured instances, then those the accounts
	// found.
	targets []*target
	byName  map[string]*target
	byID    map[string][]*target // by provider and ID, for notifications
	// entries are the memories by key, with the call each stands for.
	entries map[string]entry
	// found says what each account's last listing gave.
	found   map[*account]accountFound
	clients clientPool
	// known hides every secret of the snapshot (redact.go), built when
	// a text first needs it.
	known knownSecrets
}

// entry is a memory and the call it stands for: the *target of the first
// instance of its key, or the *account of a listing; nil for the memory of
// an instance no longer watched that still holds a result or a queued
// call (an instance removed and added again is still the same upstream
// instance).
type entry struct {
	mem  *memory
	work any
}

// accountFound is what a listing gave: the instances watched and those
// left out, by reason.
type accountFound struct {
	instances int
	skipped   map[string]int
}

func emptySnapshot() *snapshot {
	return &snapshot{byName: map[string]*target{}, byID: map[string][]*target{}, entries: map[string]entry{},
		found: map[*account]accountFound{}}
}

// target is one instance, configured or found by an account. Immutable.
type target struct {
	provider *Provider
	name     string
	labels   string // provider="…",name="…", escaped for the text format
	timeout  time.Duration
	spec     config.Spec
	client   Client
	http     *http.Client // shared with the instances of the same settings
	logger   *slog.Logger // the collector's: see log
	mem      *memory
	stats    *instanceStats // kept across reloads by provider and name
	// queue reads the instance's outgoing queue; nil when it does not
	// watch it.
	queue queueReader
	// foundBy is the account whose listing found this instance; nil for
	// a configured one. listed is set when that listing carries the
	// instance's live state: the listing is then its state request.
	foundBy *account
	listed  bool
}

// logSource gives the logger of an instance or an account when there is a
// line to write.
type logSource interface {
	log() *slog.Logger
	// enabled says whether a line of the level would be written, without
	// making the logger.
	enabled(ctx context.Context, level slog.Level) bool
}

func (t *target) enabled(ctx context.Context, level slog.Level) bool {
	return t.logger.Enabled(ctx, level)
}

// log is the instance's logger. It is made for each line rather than kept:
// a logger with the instance's provider and name costs about 240 bytes,
// 2.4 MB for a fleet of 10 000, for lines that are rare.
func (t *target) log() *slog.Logger {
	return t.logger.With("provider", t.provider.Name, "name", t.name)
}

// instanceKey is the key of an instance's memory: the upstream instance
// (config.Common.Identity) and the credential its calls carry.
func instanceKey(b *config.Common) string {
	return b.Identity() + "\x00" + credential(b)
}

// credential is a digest of what authenticates an instance's or an
// account's calls: its secret and the secrets of its HTTP settings. Two
// configurations that differ in it may get different answers.
func credential(b *config.Common) string {
	h := sha256.New()
	write := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	write(b.Secret())
	hc := b.HTTPClientConfig
	if ba := hc.BasicAuth; ba != nil {
		write(ba.Username + "\x00" + string(ba.Password) + "\x00" + ba.PasswordFile)
	}
	if au := hc.Authorization; au != nil {
		write(au.Type + "\x00" + string(au.Credentials) + "\x00" + au.CredentialsFile)
	}
	if o := hc.OAuth2; o != nil {
		write(o.ClientID + "\x00" + string(o.ClientSecret) + "\x00" + o.ClientSecretFile)
	}
	write(string(hc.BearerToken) + "\x00" + hc.BearerTokenFile)
	return hex.EncodeToString(h.Sum(nil)[:credentialLen/2])
}

// credentialLen is the length of a credential digest: 64 bits tell apart
// the few credentials one instance is configured with.
const credentialLen = 16

// Update replaces the configuration: the new snapshot is planned from the
// current one and published only when the whole of it is valid, so that a
// configuration that fails changes nothing. An instance whose
// configuration did not change keeps its client; every instance keeps the
// memory of its key (result, queued call), the Retry-After of its upstream
// instance and the call counts of its name; an account keeps its last
// listing. An instance an account's last listing holds under the name of
// a configured one is skipped as a conflict: the configured one is
// watched.
func (c *Collector) Update(cfg *config.Config) error {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	if c.closed {
		return errors.New("collector closed")
	}
	cur := c.current()
	pool := cur.clients.renew()
	accounts, err := c.planAccounts(cur, cfg.Accounts, pool)
	if err != nil {
		pool.discard()
		return err
	}
	next, err := c.plan(cur, cfg.Instances, accounts, pool)
	if err != nil {
		pool.discard()
		return err
	}
	c.commit(next, pool)
	return nil
}

// planner applies the accounts' new listings, one at a time, on request.
func (c *Collector) planner() {
	for {
		select {
		case <-c.stopped:
			return
		case done := <-c.replans:
			c.applyMu.Lock()
			if !c.closed {
				cur := c.current()
				pool := cur.clients.renew()
				if next, err := c.plan(cur, cur.configured, cur.accounts, pool); err != nil {
					pool.discard()
					c.logger.Error("Cannot watch the instances the accounts list", "err", err)
				} else {
					c.commit(next, pool)
				}
			}
			c.applyMu.Unlock()
			close(done)
		}
	}
}

// replan asks the planner to apply the accounts' listings, and returns
// once it has.
func (c *Collector) replan() {
	done := make(chan struct{})
	select {
	case c.replans <- done:
		<-done
	case <-c.stopped:
	}
}

// planAccounts returns the accounts of a configuration: those of cur that
// did not change, and new ones, which take the state (last listing,
// counts) of cur's account of the same key. It changes nothing cur holds.
func (c *Collector) planAccounts(cur *snapshot, cfg []config.Account, pool *clientPoolUpdate) ([]*account, error) {
	byKey := make(map[string]*account, len(cur.accounts))
	for _, a := range cur.accounts {
		byKey[a.key] = a
	}
	accounts := make([]*account, 0, len(cfg))
	for _, acct := range cfg {
		key := accountKey(acct.Spec)
		old := byKey[key]
		if old != nil && reflect.DeepEqual(old.spec, acct.Spec) {
			pool.keep(old.spec.Account().HTTPClientConfig, old.http)
			accounts = append(accounts, old)
			continue
		}
		var state *accountState
		if old != nil {
			state = old.state
		}
		a, err := c.newAccount(acct, key, state, pool)
		if err != nil {
			return nil, fmt.Errorf("account %q: %w", acct.Name(), err)
		}
		accounts = append(accounts, a)
	}
	return accounts, nil
}

// plan builds the snapshot of the configured instances and of those the
// accounts' last listings hold, from cur, which it does not change.
// An account's instance with the name of a configured one is skipped, at
// a reload too: a listing never makes a configuration fail.
func (c *Collector) plan(cur *snapshot, configured []config.Instance, accounts []*account, pool *clientPoolUpdate) (*snapshot, error) {
	taken := make(map[string]bool, len(configured))
	for _, inst := range configured {
		taken[inst.Name()] = true
	}
	configuredIDs := make(map[string]bool, len(configured))
	for _, inst := range configured {
		configuredIDs[inst.Spec.Base().Identity()] = true
	}
	next := emptySnapshot()
	next.configured, next.accounts = configured, accounts
	discovered, foundBy := c.discovered(next, taken, configuredIDs)
	instances := append(slices.Clip(configured), discovered...)

	next.targets = make([]*target, 0, len(instances))
	next.byName = make(map[string]*target, len(instances))
	next.entries = make(map[string]entry, len(instances)+len(accounts))
	memories := memoryPlan{cur: cur}
	for _, inst := range instances {
		key := instanceKey(inst.Spec.Base())
		e, seen := next.entries[key] // an instance of the same key came first
		if !seen {
			e.mem = memories.memory(key, inst.Spec.Base().Identity())
		}
		mem := e.mem
		prev := cur.byName[inst.Name()]
		f := foundBy[inst.Name()]
		var t *target
		if prev != nil && prev.mem == mem && prev.foundBy == f.account && prev.listed == f.listed && reflect.DeepEqual(prev.spec, inst.Spec) {
			pool.keep(prev.spec.Base().HTTPClientConfig, prev.http)
			t = prev
		} else {
			var err error
			if t, err = c.newTarget(inst, mem, prev, f, pool); err != nil {
				return nil, fmt.Errorf("instance %q: %w", inst.Name(), err)
			}
		}
		next.targets = append(next.targets, t)
		next.byName[t.name] = t
		byID := t.provider.Name + "\x00" + t.spec.Base().ID()
		next.byID[byID] = append(next.byID[byID], t)
		if !seen {
			e.work = t
			next.entries[key] = e
		}
	}
	for _, a := range accounts {
		next.entries[a.key] = entry{mem: a.state.mem, work: a}
	}
	// Keep the memories no longer watched that still hold a result or a
	// call.
	now := time.Now()
	for key, e := range cur.entries {
		if _, ok := next.entries[key]; ok {
			continue
		}
		if _, isAccount := e.work.(*account); isAccount {
			continue
		}
		if _, fresh := e.mem.freshness(now); fresh || c.sched.pending(e.mem) {
			next.entries[key] = entry{mem: e.mem}
		}
	}
	return next, nil
}

// memoryPlan finds the memories of a snapshot being planned.
type memoryPlan struct {
	cur    *snapshot
	limits map[string]*limit // by identity, made when a new memory needs them
}

// memory returns the memory of key: the current snapshot's, or a new one
// that shares the rate limit of its upstream instance.
func (p *memoryPlan) memory(key, identity string) *memory {
	if e, ok := p.cur.entries[key]; ok {
		return e.mem
	}
	if p.limits == nil {
		p.limits = p.cur.limits()
	}
	m := newMemory(key, p.limits[identity])
	p.limits[identity] = m.limit
	return m
}

// limits are the rate limits of the upstream instances of s's memories,
// by identity.
func (s *snapshot) limits() map[string]*limit {
	limits := make(map[string]*limit, len(s.entries))
	for key, e := range s.entries {
		if _, isAccount := e.work.(*account); !isAccount {
			limits[identityOf(key)] = e.mem.limit
		}
	}
	return limits
}

// identityOf is the upstream instance identity of a memory key.
func identityOf(key string) string {
	return key[:max(len(key)-credentialLen-1, 0)]
}

// newTarget builds the target of an instance, keeping the call counts of
// prev, the target of its name in the current snapshot, when they count
// the same methods.
func (c *Collector) newTarget(inst config.Instance, mem *memory, prev *target, f found, pool *clientPoolUpdate) (*target, error) {
	base := inst.Spec.Base()
	p, ok := lookup(base.Provider)
	if !ok {
		return nil, fmt.Errorf("unknown provider %q", base.Provider)
	}
	// An instance whose state comes with its account's listing counts
	// that listing as its call, under the listing's method.
	methods := p.methods
	if f.listed {
		methods = f.account.methods
	}
	qs, ok := inst.Spec.(queueSpec)
	watchesQueue := ok && p.QueueMethod != "" && qs.watchesQueue(c.opts.MessagesQueue)
	if watchesQueue {
		methods = methods.with(p.QueueMethod)
	}
	stats := newInstanceStats(methods)
	if prev != nil && prev.provider == p && slices.Equal(prev.stats.methods, methods.names) {
		stats = prev.stats
	}
	hc, err := pool.get(base.HTTPClientConfig)
	if err != nil {
		return nil, err
	}
	t := &target{
		provider: p,
		name:     base.Name,
		labels:   `provider="` + escapeLabel(p.Name) + `",name="` + escapeLabel(base.Name) + `"`,
		timeout:  time.Duration(base.Timeout),
		spec:     inst.Spec,
		http:     hc,
		logger:   c.logger,
		mem:      mem,
		stats:    stats,
		foundBy:  f.account,
		listed:   f.listed,
	}
	api := &API{client: hc, userAgent: c.opts.UserAgent, logs: t, metrics: c.metrics.observer(p.Name, stats), known: c.known}
	client, err := p.NewClient(inst.Spec, api)
	if err != nil {
		return nil, err
	}
	t.client = client
	if watchesQueue {
		t.queue, _ = client.(queueReader)
	}
	return t, nil
}

// commit publishes next, built by plan from the current snapshot, and
// starts and stops the accounts' refreshes to match. Under applyMu.
func (c *Collector) commit(next *snapshot, pool *clientPoolUpdate) {
	next.clients = pool.commit()
	c.snap.Store(next)
	for a, stop := range c.loops {
		if !slices.Contains(next.accounts, a) {
			stop()
			delete(c.loops, a)
		}
	}
	for _, a := range next.accounts {
		if _, ok := c.loops[a]; !ok {
			c.loops[a] = c.refreshLoop(a)
		}
	}
}
