package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	promcfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"
)

// An account lists instances the exporter watches without their being
// written in the file: a GREEN-API partner account, a Wachat account, an
// Evolution API server. Its entry holds the credentials of the listing,
// which instances to keep and how often to refresh the list.

// DefaultRefreshInterval is how often an account's list is refreshed when
// its entry sets no refresh_interval.
const DefaultRefreshInterval = 5 * time.Minute

// DefaultMaxInstances is the most instances an account's listing may
// hold when its entry sets no max_instances: about 30 MB of the
// exporter's memory (docs/fleets.md), well within the 128 MiB of the
// shipped Deployment. MaxMaxInstances bounds the setting, whatever the
// memory limit: a listing of more is an answer to refuse.
const (
	DefaultMaxInstances = 10_000
	MaxMaxInstances     = 100_000
)

// minRefreshInterval keeps the listing, which providers may rate-limit
// without saying so, from being called in a loop.
const minRefreshInterval = 10 * time.Second

// AccountCommon holds the settings every provider's account shares.
// Providers embed it inline in their AccountSpec. Timeout and the HTTP
// settings apply to the listing and to the calls for the instances found.
type AccountCommon struct {
	Common          `yaml:",inline"`
	RefreshInterval model.Duration `yaml:"refresh_interval,omitempty"`
	// Include and Exclude filter the instances by name: an instance is
	// watched when it matches an Include (or there is none) and no Exclude.
	Include []Regexp `yaml:"include,omitempty"`
	Exclude []Regexp `yaml:"exclude,omitempty"`
	// NamePrefix is put before the name of every instance found, to keep
	// the names of several accounts apart.
	NamePrefix string `yaml:"name_prefix,omitempty"`
	// MaxInstances is the most instances a listing may hold: a listing
	// of more fails, and the last good list stays. Each instance watched
	// costs memory (docs/fleets.md); this keeps a provider's answer from
	// deciding how much.
	MaxInstances int `yaml:"max_instances,omitempty"`
}

// Account gives access to the shared settings of any AccountSpec that
// embeds AccountCommon.
func (a *AccountCommon) Account() *AccountCommon { return a }

// Identity names the account at its provider.
func (a *AccountCommon) Identity() string {
	return "account\x00" + a.Provider + "\x00" + a.APIURL + "\x00" + a.Name
}

// Keeps reports whether the filters keep an instance of that name (before
// the prefix).
func (a *AccountCommon) Keeps(name string) bool {
	for _, re := range a.Exclude {
		if re.MatchString(name) {
			return false
		}
	}
	if len(a.Include) == 0 {
		return true
	}
	for _, re := range a.Include {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// AccountSpec is one provider's whole account configuration.
type AccountSpec interface {
	Account() *AccountCommon
	// Fields hands the loader the credential fields; ID is unused.
	Fields() Fields
	// Validate checks what only the provider knows, before the secret is
	// read.
	Validate() error
}

// AccountInfo describes a provider's accounts to the loader.
type AccountInfo struct {
	NewSpec func() AccountSpec
	// SecretField is the YAML key of Fields.Secret.
	SecretField string
	// DefaultURL is the api_url of an account that sets none; empty
	// makes it required.
	DefaultURL string
}

// Account is one account entry.
type Account struct {
	Spec AccountSpec
}

// Name is the account's unique configured name.
func (a Account) Name() string { return a.Spec.Account().Name }

// Provider is the account's provider name.
func (a Account) Provider() string { return a.Spec.Account().Provider }

// MarshalYAML shows the provider's AccountSpec; secrets as <secret>.
func (a Account) MarshalYAML() (any, error) { return a.Spec, nil }

// UnmarshalYAML picks the provider's AccountSpec and decodes the mapping
// into it.
func (a *Account) UnmarshalYAML(unmarshal func(any) error) error {
	var raw map[string]any
	if err := unmarshal(&raw); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return prefixTypeError(te, "account "+accountLabel(raw))
		}
		return err
	}
	name, _ := raw["provider"].(string)
	info, ok := provider(name)
	label := accountLabel(raw)
	var listing []string
	for _, p := range Providers() {
		if pi, _ := provider(p); pi.Account != nil {
			listing = append(listing, p)
		}
	}
	switch {
	case name == "":
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("account %s: field provider: required, one of %s", label, strings.Join(listing, ", "))}}
	case !ok || info.Account == nil:
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("account %s: field provider: %q has no accounts the exporter can list, want one of %s", label, name, strings.Join(listing, ", "))}}
	}
	for _, f := range []string{"timeout", "refresh_interval"} {
		if t, ok := raw[f]; ok {
			if _, err := model.ParseDuration(fmt.Sprint(t)); err != nil {
				return &yaml.TypeError{Errors: []string{fmt.Sprintf("account %s: field %s: %v", label, f, err)}}
			}
		}
	}
	spec := info.Account.NewSpec()
	spec.Account().HTTPClientConfig = promcfg.DefaultHTTPClientConfig
	if err := unmarshal(spec); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return prefixTypeError(te, "account "+label)
		}
		return fmt.Errorf("account %s: %w", label, err)
	}
	a.Spec = spec
	return nil
}

func accountLabel(raw map[string]any) string {
	if n, ok := raw["name"]; ok {
		return QuoteName(fmt.Sprint(n))
	}
	return "(unnamed)"
}

// resolveAccounts takes every account through the loader's steps and
// checks that names are unique among accounts.
func resolveAccounts(accounts []Account, r *resolver) []error {
	var errs []error
	seen := map[string]int{}
	for k, acct := range accounts {
		if acct.Spec == nil {
			errs = append(errs, fmt.Errorf("accounts[%d]: empty account; field provider: required", k))
			continue
		}
		if err := resolveAccount(acct.Spec, r); err != nil {
			errs = append(errs, fmt.Errorf("accounts[%d] %s: %w", k, QuoteName(acct.Name()), err))
			continue
		}
		if prev, dup := seen[acct.Name()]; dup {
			errs = append(errs, fmt.Errorf("accounts[%d] %q: field name: duplicate of accounts[%d]; names must be unique", k, acct.Name(), prev))
			continue
		}
		seen[acct.Name()] = k
	}
	return errs
}

func resolveAccount(s AccountSpec, r *resolver) error {
	a := s.Account()
	info, _ := provider(a.Provider) // UnmarshalYAML accepted only listing providers
	if err := r.expand("name", &a.Name); err != nil {
		return err
	}
	if err := CheckName(a.Name); err != nil {
		return &FieldError{Field: "name", Err: err}
	}
	if err := r.expand("api_url", &a.APIURL); err != nil {
		return err
	}
	if err := r.expand("name_prefix", &a.NamePrefix); err != nil {
		return err
	}
	if err := checkLabelValue(a.NamePrefix + "x"); err != nil {
		return &FieldError{Field: "name_prefix", Err: err}
	}
	if len(a.NamePrefix) >= MaxNameBytes {
		return &FieldError{Field: "name_prefix", Err: fmt.Errorf("is %d bytes long, leaving no room for a name within %d", len(a.NamePrefix), MaxNameBytes)}
	}
	if err := s.Validate(); err != nil {
		return err
	}
	f := s.Fields()
	secret, err := r.secret(info.Account.SecretField, *f.Secret, info.Account.SecretField+"_file", *f.SecretFile)
	if err != nil {
		return err
	}
	if err := r.optionalSecrets(f); err != nil {
		return err
	}
	a.id, a.secret = a.Name, secret
	switch {
	case a.RefreshInterval == 0:
		a.RefreshInterval = model.Duration(DefaultRefreshInterval)
	case time.Duration(a.RefreshInterval) < minRefreshInterval:
		return &FieldError{Field: "refresh_interval", Err: fmt.Errorf("%s is shorter than %s", a.RefreshInterval, model.Duration(minRefreshInterval))}
	}
	switch {
	case a.MaxInstances == 0:
		a.MaxInstances = DefaultMaxInstances
	case a.MaxInstances < 0 || a.MaxInstances > MaxMaxInstances:
		return &FieldError{Field: "max_instances", Err: fmt.Errorf("%d is not between 1 and %d", a.MaxInstances, MaxMaxInstances)}
	}
	return resolveEndpoint(&a.Common, info.Account.DefaultURL, r)
}

// Regexp is a regular expression in RE2 syntax that matches a whole
// value, as in Prometheus' relabelling.
type Regexp struct {
	*regexp.Regexp
	source string
}

// UnmarshalYAML compiles the expression, anchored.
func (re *Regexp) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	compiled, err := regexp.Compile("^(?:" + s + ")$")
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("invalid regular expression %q: %v", s, err)}}
	}
	re.Regexp, re.source = compiled, s
	return nil
}

// MarshalYAML shows the expression as written.
func (re Regexp) MarshalYAML() (any, error) { return re.source, nil }
