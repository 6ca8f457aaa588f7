package config

import (
	"slices"
	"sort"
	"sync"
)

// The providers are registered once, by the package that implements them,
// in one registry that the loader and the collector both read, as
// Prometheus' service discoveries register with discovery.RegisterConfig.

// Provider is a WhatsApp API provider. The collector's providers implement
// it and add what they call with; the loader needs only its Loader.
type Provider interface {
	// Loader describes the provider's configuration.
	Loader() *ProviderInfo
}

// ProviderInfo describes a provider to the loader.
type ProviderInfo struct {
	// Name is the value of the provider key.
	Name string
	// NewSpec returns an empty Spec; the loader fills Common with defaults.
	NewSpec func() Spec
	// IdentityField is the YAML key of Fields.ID. It also names an instance
	// without a name in error messages.
	IdentityField string
	// SecretField is the YAML key of Fields.Secret; SecretField + "_file"
	// is that of Fields.SecretFile.
	SecretField string
	// DefaultURL is the api_url of an instance that sets none; empty makes
	// api_url required.
	DefaultURL string

	// Account describes the provider's accounts, when it can list an
	// account's instances; nil otherwise.
	Account *AccountInfo
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Provider{}
)

// Register makes a provider known, under its Loader().Name. It panics on an
// empty or duplicate name, which is a programming error; call it from an
// init function.
func Register(p Provider) {
	name := p.Loader().Name
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup || name == "" {
		panic("config: provider registered twice or without a name: " + name)
	}
	registry[name] = p
}

// Lookup returns the provider of that name.
func Lookup(name string) (Provider, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	p, ok := registry[name]
	return p, ok
}

// Providers lists the registered provider names, sorted.
func Providers() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// provider is the loader's description of the provider of that name.
func provider(name string) (ProviderInfo, bool) {
	p, ok := Lookup(name)
	if !ok {
		return ProviderInfo{}, false
	}
	return *p.Loader(), true
}

func identityFields() []string {
	var fields []string
	for _, n := range Providers() {
		p, _ := provider(n)
		if p.IdentityField != "" && !slices.Contains(fields, p.IdentityField) {
			fields = append(fields, p.IdentityField)
		}
	}
	return fields
}
