package collector

import (
	"fmt"
	"net/http"
	"reflect"

	promcfg "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v2"
)

// clientPool shares one HTTP client, and so one connection pool, among all
// instances with the same HTTP settings. Clients are found by a key
// derived from the settings and told apart by deep comparison only
// within a key, so that building N instances with distinct settings costs
// N lookups, not N² comparisons.
type clientPool map[string][]pooledClient

type pooledClient struct {
	cfg    promcfg.HTTPClientConfig
	client *http.Client
}

// sameSettings compares settings; tests count its calls.
var sameSettings = sameSettingsDeep

func sameSettingsDeep(a, b promcfg.HTTPClientConfig) bool { return reflect.DeepEqual(a, b) }

// settingsKey is the settings in YAML. Secrets marshal as <secret>, so
// settings that differ only in a secret share a key and are told apart by
// comparison.
func settingsKey(cfg promcfg.HTTPClientConfig) string {
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "" // still correct: comparison decides
	}
	return string(out)
}

// renew starts building the pool of a new configuration from p.
func (p clientPool) renew() *clientPoolUpdate {
	return &clientPoolUpdate{old: p, used: clientPool{}}
}

// clientPoolUpdate collects the clients a new configuration uses: those of
// the old pool it still needs and new ones.
type clientPoolUpdate struct {
	old, used clientPool
	// last is the client handed out last: a fleet's instances usually all
	// have the same settings, which then cost one comparison each.
	last *pooledClient
}

// get returns the client for cfg, creating it if no pool has one. The
// User-Agent is set by API on each request: prometheus/common's
// WithUserAgent would clone every request to set it.
func (u *clientPoolUpdate) get(cfg promcfg.HTTPClientConfig) (*http.Client, error) {
	if u.last != nil && sameSettings(u.last.cfg, cfg) {
		return u.last.client, nil
	}
	key := settingsKey(cfg)
	if pc := u.used.find(key, cfg); pc != nil {
		u.last = pc
		return pc.client, nil
	}
	pc := u.old.find(key, cfg)
	if pc == nil {
		client, err := promcfg.NewClientFromConfig(cfg, "whatsapp_exporter")
		if err != nil {
			return nil, fmt.Errorf("HTTP client settings: %w", err)
		}
		if cfg.FollowRedirects {
			client.CheckRedirect = checkRedirect
		}
		pc = &pooledClient{cfg: cfg, client: client}
	}
	u.used[key] = append(u.used[key], *pc)
	u.last = pc
	return pc.client, nil
}

// keep marks the client of an unchanged instance as used.
func (u *clientPoolUpdate) keep(cfg promcfg.HTTPClientConfig, client *http.Client) {
	if u.last != nil && u.last.client == client {
		return
	}
	key := settingsKey(cfg)
	if pc := u.used.find(key, cfg); pc != nil {
		u.last = pc
		return
	}
	u.used[key] = append(u.used[key], pooledClient{cfg: cfg, client: client})
	u.last = &pooledClient{cfg: cfg, client: client}
}

func (p clientPool) find(key string, cfg promcfg.HTTPClientConfig) *pooledClient {
	for i := range p[key] {
		if sameSettings(p[key][i].cfg, cfg) {
			return &p[key][i]
		}
	}
	return nil
}

// commit returns the new pool and closes the idle connections of the old
// clients it no longer holds.
func (u *clientPoolUpdate) commit() clientPool {
	for key, pcs := range u.old {
		for _, pc := range pcs {
			if u.used.find(key, pc.cfg) == nil {
				pc.client.CloseIdleConnections()
			}
		}
	}
	return u.used
}

// discard abandons the update, closing the clients it created.
func (u *clientPoolUpdate) discard() {
	for key, pcs := range u.used {
		for _, pc := range pcs {
			if u.old.find(key, pc.cfg) == nil {
				pc.client.CloseIdleConnections()
			}
		}
	}
}
