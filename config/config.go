// Package config loads and validates the exporter's YAML configuration.
//
// An instance's YAML is decoded in two steps: its provider key selects a
// provider-specific Spec registered by the collector package, and the whole
// mapping is then decoded strictly into that Spec. The loader then takes
// every instance through the steps all providers share (environment
// expansion, the identity field, the secret inline or in its file, the
// default name and api_url, the URL, timeout and HTTP settings), calling the
// provider's Validate for what only the provider knows. Adding a provider
// therefore needs no change here.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	promcfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"
)

// DefaultTimeout bounds one upstream call when an instance sets no timeout.
const DefaultTimeout = 5 * time.Second

// Config is the content of the configuration file.
type Config struct {
	Instances []Instance `yaml:"instances,omitempty"`
	// Accounts list their instances; see accounts.go.
	Accounts []Account `yaml:"accounts,omitempty"`
	// What the exporter does on Alertmanager's behalf; see alerting.go.
	Alertmanager   *Alertmanager   `yaml:"alertmanager,omitempty"`
	Remediation    *Remediation    `yaml:"remediation,omitempty"`
	WhatsAppAlerts *WhatsAppAlerts `yaml:"whatsapp_alerts,omitempty"`
}

// Common holds the settings every provider shares. Providers embed it inline
// in their Spec.
type Common struct {
	Name     string         `yaml:"name,omitempty"`
	Provider string         `yaml:"provider"`
	APIURL   string         `yaml:"api_url,omitempty"`
	Timeout  model.Duration `yaml:"timeout,omitempty"`

	HTTPClientConfig promcfg.HTTPClientConfig `yaml:",inline"`

	// Filled by the loader from the provider's Fields.
	id, secret string
}

// Base gives access to the shared settings of any Spec that embeds Common.
func (c *Common) Base() *Common { return c }

// ID is what the provider knows the instance by (id_instance,
// instance_name), expanded.
func (c *Common) ID() string { return c.id }

// Secret is the instance's credential, read from the configuration or its
// file. It must never reach a log, a label, an error or an answer.
func (c *Common) Secret() string { return c.secret }

// Identity names the upstream instance, whatever the exporter's settings
// for it: two configurations with the same identity are the same instance
// at the provider, with one rate limit.
func (c *Common) Identity() string { return c.Provider + "\x00" + c.APIURL + "\x00" + c.id }

// Spec is one provider's whole instance configuration: Common, embedded
// inline, and the provider's own fields.
type Spec interface {
	Base() *Common
	// Fields hands the loader the provider's identity and credential
	// fields, for the steps every provider shares.
	Fields() Fields
	// Validate checks what only the provider knows about its own fields.
	// The loader calls it once the identity is expanded and present, before
	// it reads the secret.
	Validate() error
}

// Fields are the fields of a provider's Spec that the loader handles:
// expanded, required, read and defaulted the same way for every provider.
type Fields struct {
	// ID is what the provider knows an instance by; the default name.
	ID *string
	// Secret and SecretFile are the credential, inline or in a file;
	// exactly one must be set.
	Secret     *promcfg.Secret
	SecretFile *string
	// Optional are further credentials the provider may take, such as
	// the token of its notifications.
	Optional []OptionalSecret
}

// OptionalSecret is a credential given inline (Field) or in a file
// (Field + "_file"), at most one of them.
type OptionalSecret struct {
	Field string
	Value *promcfg.Secret
	File  *string
	// Resolved receives the credential, or "" when neither is set.
	Resolved *string
	// Check, when set, says what is wrong with a credential the provider
	// cannot use; its error must not quote the credential.
	Check func(string) error
}

// optionalSecrets reads every optional credential of f.
func (r *resolver) optionalSecrets(f Fields) error {
	for _, o := range f.Optional {
		*o.Resolved = ""
		if *o.Value == "" && *o.File == "" {
			continue
		}
		s, err := r.secret(o.Field, *o.Value, o.Field+"_file", *o.File)
		if err != nil {
			return err
		}
		if o.Check != nil {
			if err := o.Check(s); err != nil {
				return &FieldError{Field: o.Field, Err: err}
			}
		}
		*o.Resolved = s
	}
	return nil
}

// Instance is one monitored WhatsApp instance.
type Instance struct {
	Spec Spec
}

// Name is the instance's unique configured name.
func (i Instance) Name() string { return i.Spec.Base().Name }

// Provider is the instance's provider name.
func (i Instance) Provider() string { return i.Spec.Base().Provider }

// UnmarshalYAML picks the provider's Spec and decodes the mapping into it.
func (i *Instance) UnmarshalYAML(unmarshal func(any) error) error {
	var raw map[string]any
	if err := unmarshal(&raw); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) { // e.g. a duplicate key; raw holds the rest
			return prefixTypeError(te, "instance "+instanceLabel(raw, ""))
		}
		return err
	}
	name, _ := raw["provider"].(string)
	info, ok := provider(name)
	label := instanceLabel(raw, info.IdentityField)
	switch {
	case name == "":
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("instance %s: field provider: required, one of %s", label, strings.Join(Providers(), ", "))}}
	case !ok:
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("instance %s: field provider: unknown provider %q, want one of %s", label, name, strings.Join(Providers(), ", "))}}
	}
	if t, ok := raw["timeout"]; ok {
		if _, err := model.ParseDuration(fmt.Sprint(t)); err != nil {
			return &yaml.TypeError{Errors: []string{fmt.Sprintf("instance %s: field timeout: %v", label, err)}}
		}
	}
	spec := info.NewSpec()
	base := spec.Base()
	base.HTTPClientConfig = promcfg.DefaultHTTPClientConfig
	if err := unmarshal(spec); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return prefixTypeError(te, "instance "+label)
		}
		return fmt.Errorf("instance %s: %w", label, err)
	}
	i.Spec = spec
	return nil
}

// prefixTypeError says which instance yaml's errors concern. It keeps the
// TypeError type so that yaml goes on and reports every instance's errors
// in one run.
func prefixTypeError(te *yaml.TypeError, prefix string) error {
	msgs := make([]string, len(te.Errors))
	for k, m := range te.Errors {
		msgs[k] = prefix + ": " + m
	}
	return &yaml.TypeError{Errors: msgs}
}

// MarshalYAML shows the provider's Spec; secrets marshal as <secret>.
func (i Instance) MarshalYAML() (any, error) { return i.Spec, nil }

func instanceLabel(raw map[string]any, identityField string) string {
	if n, ok := raw["name"]; ok {
		return fmt.Sprintf("%q", fmt.Sprint(n))
	}
	fields := []string{identityField}
	if identityField == "" {
		// Unknown or missing provider: try every provider's identity field.
		fields = identityFields()
	}
	for _, f := range fields {
		if id, ok := raw[f]; ok && f != "" {
			return fmt.Sprintf("with %s %v", f, id)
		}
	}
	return "(unnamed)"
}

// Options change how a file is loaded.
type Options struct {
	// ExpandEnv replaces ${VAR} in the fields that allow it with the value of
	// the environment variable VAR.
	ExpandEnv bool
	// LookupEnv defaults to os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// LoadFile reads, decodes and validates a configuration file. Every error
// names the file and, where it concerns one, the instance and the field.
func LoadFile(filename string, opts Options) (*Config, error) {
	content, err := readRegularFile(filename, maxConfigFileBytes)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	cfg, err := Load(content, filepath.Dir(filename), opts)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", filename, err)
	}
	return cfg, nil
}

// Load decodes and validates configuration content. Relative file paths are
// taken relative to dir.
func Load(content []byte, dir string, opts Options) (*Config, error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	cfg := &Config{}
	if err := yaml.UnmarshalStrict(content, cfg); err != nil {
		return nil, err
	}
	if len(cfg.Instances) == 0 && len(cfg.Accounts) == 0 {
		return nil, errors.New("field instances: at least one instance (or one account) is required")
	}
	var errs []error
	seen := map[string]int{}
	for k, inst := range cfg.Instances {
		if inst.Spec == nil {
			errs = append(errs, fmt.Errorf("instances[%d]: empty instance; field provider: required, one of %s", k, strings.Join(Providers(), ", ")))
			continue
		}
		r := &resolver{dir: dir, opts: opts}
		if err := resolve(inst.Spec, r); err != nil {
			errs = append(errs, fmt.Errorf("instances[%d] %s: %w", k, describe(inst.Spec), err))
			continue
		}
		name := inst.Name()
		if prev, dup := seen[name]; dup {
			errs = append(errs, fmt.Errorf("instances[%d] %s: field name: duplicate of instances[%d]; names must be unique", k, QuoteName(name), prev))
			continue
		}
		seen[name] = k
	}
	errs = append(errs, resolveAccounts(cfg.Accounts, &resolver{dir: dir, opts: opts})...)
	errs = append(errs, resolveAlerting(cfg, &resolver{dir: dir, opts: opts})...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

func describe(s Spec) string {
	if n := s.Base().Name; n != "" {
		return QuoteName(n)
	}
	return "(" + s.Base().Provider + ")"
}

// resolve takes an instance through the steps every provider shares, with
// the provider's own checks among them, and fills the defaults.
func resolve(s Spec, r *resolver) error {
	b := s.Base()
	info, _ := provider(b.Provider) // UnmarshalYAML accepted only known providers
	if err := r.expand("name", &b.Name); err != nil {
		return err
	}
	if err := r.expand("api_url", &b.APIURL); err != nil {
		return err
	}
	f := s.Fields()
	if err := r.expand(info.IdentityField, f.ID); err != nil {
		return err
	}
	if strings.TrimSpace(*f.ID) == "" {
		return &FieldError{Field: info.IdentityField, Err: errors.New("required")}
	}
	if err := s.Validate(); err != nil {
		return err
	}
	secret, err := r.secret(info.SecretField, *f.Secret, info.SecretField+"_file", *f.SecretFile)
	if err != nil {
		return err
	}
	if err := r.optionalSecrets(f); err != nil {
		return err
	}
	b.id, b.secret = *f.ID, secret
	if b.Name == "" {
		b.Name = b.id
	}
	if err := CheckName(b.Name); err != nil {
		return &FieldError{Field: "name", Err: err}
	}
	return resolveEndpoint(b, info.DefaultURL, r)
}

// resolveEndpoint fills and checks what instances and accounts share: the
// api_url (defaultURL if unset), the timeout and the HTTP settings.
func resolveEndpoint(b *Common, defaultURL string, r *resolver) error {
	if b.APIURL == "" {
		b.APIURL = defaultURL
	}
	if b.APIURL == "" {
		return &FieldError{Field: "api_url", Err: errors.New("required for provider " + b.Provider)}
	}
	u, err := url.Parse(b.APIURL)
	if err != nil {
		return &FieldError{Field: "api_url", Err: errors.New("is not a valid URL")}
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &FieldError{Field: "api_url", Err: fmt.Errorf("%q is not an http:// or https:// URL", u.Redacted())}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return &FieldError{Field: "api_url", Err: errors.New("must not carry credentials, a query or a fragment")}
	}
	b.APIURL = strings.TrimSuffix(b.APIURL, "/")
	if b.Timeout == 0 {
		b.Timeout = model.Duration(DefaultTimeout)
	}
	if err := b.HTTPClientConfig.Validate(); err != nil {
		return &FieldError{Field: "HTTP client settings", Err: err}
	}
	if r.checkedFiles {
		return nil
	}
	b.HTTPClientConfig.SetDirectory(r.dir)
	return checkHTTPFiles(b.HTTPClientConfig)
}

// ResolveListed takes an instance found in an account's listing through
// the loader's steps, without environment expansion. Its HTTP settings
// are the account's: their files were checked when the account was
// loaded, and are not opened again for each instance of each listing.
func ResolveListed(s Spec) error {
	if _, ok := provider(s.Base().Provider); !ok {
		return fmt.Errorf("unknown provider %q", s.Base().Provider)
	}
	return resolve(s, &resolver{checkedFiles: true})
}

// MaxNameBytes bounds the name of an instance or an account, and an
// account's name_prefix with the names it finds: a name is a label value
// of every series of the instance and a field of its log lines, so a
// name of a megabyte would make every scrape and line that large.
const MaxNameBytes = 128

// CheckName accepts what can be the name of an instance or an account: a
// label value and a log field of at most MaxNameBytes bytes.
func CheckName(v string) error {
	if len(v) > MaxNameBytes {
		return fmt.Errorf("%s is %d bytes long, more than %d", QuoteName(v), len(v), MaxNameBytes)
	}
	return checkLabelValue(v)
}

// QuoteName quotes a name for an error or a log line, cut to a few dozen
// bytes: a name refused for its length is not to be written whole.
func QuoteName(v string) string {
	const show = 48
	if len(v) <= show {
		return strconv.Quote(v)
	}
	cut := show
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return strconv.Quote(v[:cut]) + "…"
}

// checkLabelValue accepts what can be a label value and a log field: valid
// UTF-8 without control characters.
func checkLabelValue(v string) error {
	switch {
	case v == "":
		return errors.New("required")
	case !utf8.ValidString(v):
		return fmt.Errorf("%s is not valid UTF-8", QuoteName(v))
	case strings.ContainsFunc(v, unicode.IsControl):
		return fmt.Errorf("%s holds a control character", QuoteName(v))
	}
	return nil
}

// FieldError says which field of an instance is wrong.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return "field " + e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// resolver expands environment variables and reads secret files, with
// uniform error messages.
type resolver struct {
	dir  string
	opts Options
	// checkedFiles: the HTTP settings come from a loaded account, whose
	// files were checked and whose paths are absolute already.
	checkedFiles bool
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand replaces ${VAR} references in *v when expansion is enabled. Errors
// name the variable, never its value.
func (r *resolver) expand(field string, v *string) error {
	if !r.opts.ExpandEnv || !strings.Contains(*v, "${") {
		return nil
	}
	var missing []string
	out := envRef.ReplaceAllStringFunc(*v, func(ref string) string {
		name := envRef.FindStringSubmatch(ref)[1]
		val, ok := r.opts.LookupEnv(name)
		if !ok {
			missing = append(missing, name)
		}
		return val
	})
	if len(missing) > 0 {
		return &FieldError{Field: field, Err: fmt.Errorf("environment variable %s is not set", strings.Join(missing, ", "))}
	}
	*v = out
	return nil
}

// secret returns the secret given either inline (field) or in a file
// (fileField), exactly one of which must be set. A file's content is trimmed
// of surrounding white space.
func (r *resolver) secret(field string, value promcfg.Secret, fileField string, file string) (string, error) {
	switch {
	case value != "" && file != "":
		return "", &FieldError{Field: field, Err: fmt.Errorf("set %s or %s, not both", field, fileField)}
	case value == "" && file == "":
		return "", &FieldError{Field: field, Err: fmt.Errorf("required (or %s)", fileField)}
	case value != "":
		s := string(value)
		if err := r.expand(field, &s); err != nil {
			return "", err
		}
		if s == "" {
			return "", &FieldError{Field: field, Err: errors.New("is empty after expansion")}
		}
		return s, nil
	}
	if err := r.expand(fileField, &file); err != nil {
		return "", err
	}
	path := promcfg.JoinDir(r.dir, file)
	b, err := readRegularFile(path, maxSecretFileBytes)
	if err != nil {
		return "", &FieldError{Field: fileField, Err: err}
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", &FieldError{Field: fileField, Err: fmt.Errorf("file %s is empty", path)}
	}
	return s, nil
}
