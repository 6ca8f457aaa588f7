package config_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	promcfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// The loader is tested on its own, with providers of the test's making:
// "fake" has a default api_url, a check of its own and accounts,
// "selfhosted" needs an api_url. The real providers' own fields and
// checks are tested in collector/.

// fakeSpec is the configuration of an instance of the fake providers.
type fakeSpec struct {
	config.Common `yaml:",inline"`
	Ref           string         `yaml:"ref"`
	Password      promcfg.Secret `yaml:"password,omitempty"`
	PasswordFile  string         `yaml:"password_file,omitempty"`
	Flavour       string         `yaml:"flavour,omitempty"`

	validated bool
}

func (s *fakeSpec) Fields() config.Fields {
	return config.Fields{ID: &s.Ref, Secret: &s.Password, SecretFile: &s.PasswordFile}
}

// Validate refuses one flavour, and records that it ran.
func (s *fakeSpec) Validate() error {
	s.validated = true
	if s.Flavour == "sour" {
		return &config.FieldError{Field: "flavour", Err: errors.New("sour is not a flavour")}
	}
	return nil
}

// fakeAccountSpec is the configuration of an account of the fake
// provider.
type fakeAccountSpec struct {
	config.AccountCommon `yaml:",inline"`
	Key                  promcfg.Secret `yaml:"key,omitempty"`
	KeyFile              string         `yaml:"key_file,omitempty"`
}

func (s *fakeAccountSpec) Fields() config.Fields {
	return config.Fields{Secret: &s.Key, SecretFile: &s.KeyFile}
}

func (s *fakeAccountSpec) Validate() error { return nil }

func init() { registerTestProviders() }

// testProvider is a provider known to the loader only.
type testProvider struct{ info config.ProviderInfo }

func (p *testProvider) Loader() *config.ProviderInfo { return &p.info }

// registerTestProviders makes the test's providers known to the loader.
// It is the config tests' only use of the provider registry.
func registerTestProviders() {
	config.Register(&testProvider{config.ProviderInfo{
		Name:    "fake",
		NewSpec: func() config.Spec { return &fakeSpec{} }, IdentityField: "ref", SecretField: "password",
		DefaultURL: "https://fake.example/api",
		Account: &config.AccountInfo{
			NewSpec: func() config.AccountSpec { return &fakeAccountSpec{} }, SecretField: "key", DefaultURL: "https://fake.example/accounts",
		},
	}})
	config.Register(&testProvider{config.ProviderInfo{
		Name:    "selfhosted",
		NewSpec: func() config.Spec { return &fakeSpec{} }, IdentityField: "ref", SecretField: "password",
	}})
}

// secretValue is the password of every instance in the error cases: no
// error text may contain it.
const secretValue = "s3cr3t-PASSWORD-value"

func fake(t *testing.T, inst config.Instance) *fakeSpec {
	t.Helper()
	s, ok := inst.Spec.(*fakeSpec)
	if !ok {
		t.Fatalf("instance %q: spec is %T, want *fakeSpec", inst.Name(), inst.Spec)
	}
	return s
}

// mustLoad is testtool.LoadYAML of a configuration that must load.
func mustLoad(t *testing.T, content string, files map[string]string, opts config.Options) (*config.Config, string) {
	t.Helper()
	cfg, path, err := testtool.LoadYAML(t, content, files, opts)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, path
}

// checkLoadError loads a configuration that must not load, and checks
// its error with checkError.
func checkLoadError(t *testing.T, content string, files map[string]string, opts config.Options, want []string) {
	t.Helper()
	_, path, err := testtool.LoadYAML(t, content, files, opts)
	if err == nil {
		t.Fatal("no error")
	}
	checkError(t, err, path, want)
}

// checkError is testtool.CheckError with this package's secret.
func checkError(t *testing.T, err error, path string, want []string) {
	t.Helper()
	testtool.CheckError(t, err, path, want, nil, secretValue)
}

// instanceNamed is the spec of the named instance.
func instanceNamed(t *testing.T, cfg *config.Config, name string) *fakeSpec {
	t.Helper()
	i := slices.IndexFunc(cfg.Instances, func(in config.Instance) bool { return in.Name() == name })
	if i < 0 {
		t.Fatalf("no instance %q", name)
	}
	return fake(t, cfg.Instances[i])
}

func TestProvidersAreRegistered(t *testing.T) {
	t.Parallel()
	if got := config.Providers(); !slices.Contains(got, "fake") || !slices.Contains(got, "selfhosted") || !slices.IsSorted(got) {
		t.Fatalf("Providers() = %v, want the test's providers, sorted", got)
	}
}

// TestCommonSteps: every provider's instance gets the same treatment.
func TestCommonSteps(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t, `
instances:
  - provider: fake
    ref: shop-1
    password: inline
  - provider: fake
    name: named
    ref: "  padded  "
    password_file: secrets/pw
    api_url: https://other.example/v2/
    timeout: 3s
  - provider: selfhosted
    ref: s
    password: p
    api_url: http://10.0.0.1:8080
  - {provider: fake, ref: 42, password: p, timeout: 0s}
`, map[string]string{"secrets/pw": "\n  from-file \t\n"}, config.Options{})
	for _, tc := range []struct {
		name, id, secret, url string
		timeout               time.Duration
	}{
		{"shop-1", "shop-1", "inline", "https://fake.example/api", config.DefaultTimeout},
		{"named", "  padded  ", "from-file", "https://other.example/v2", 3 * time.Second},
		{"s", "s", "p", "http://10.0.0.1:8080", config.DefaultTimeout},
		// A number as the identity, and a timeout of 0: the default.
		{"42", "42", "p", "https://fake.example/api", config.DefaultTimeout},
	} {
		s := instanceNamed(t, cfg, tc.name)
		b := s.Base()
		if b.ID() != tc.id || b.Secret() != tc.secret || b.APIURL != tc.url || time.Duration(b.Timeout) != tc.timeout || !s.validated {
			t.Errorf("%s: id %q secret %q url %q timeout %v validated %v; want %q %q %q %v true",
				tc.name, b.ID(), b.Secret(), b.APIURL, time.Duration(b.Timeout), s.validated, tc.id, tc.secret, tc.url, tc.timeout)
		}
		if b != &s.Common {
			t.Errorf("%s: Base() is not the embedded Common", tc.name)
		}
		if !b.HTTPClientConfig.FollowRedirects || !b.HTTPClientConfig.EnableHTTP2 {
			t.Errorf("%s: HTTP settings lack Prometheus' defaults: %+v", tc.name, b.HTTPClientConfig)
		}
	}
	// The instances keep the file's order.
	var names []string
	for _, inst := range cfg.Instances {
		names = append(names, inst.Name())
	}
	if want := []string{"shop-1", "named", "s", "42"}; !slices.Equal(names, want) {
		t.Errorf("names %q, want %q", names, want)
	}
	// The identity is the upstream instance: provider, URL and id.
	a, b := cfg.Instances[0].Spec.Base(), cfg.Instances[1].Spec.Base()
	if a.Identity() == b.Identity() || a.Identity() != "fake\x00https://fake.example/api\x00shop-1" {
		t.Errorf("identities %q and %q", a.Identity(), b.Identity())
	}
}

// TestCommonErrors: what every provider's instance is checked for, named
// by the instance's name or, without one, its identity.
func TestCommonErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, instances string
		want            []string
	}{
		{"provider required", "{name: prod, ref: r, password: x}", []string{`instance "prod"`, "field provider: required, one of fake, selfhosted"}},
		{"provider required, instance without name", "{ref: r, password: x}", []string{"instance with ref r", "field provider: required"}},
		{"empty provider", `{provider: "", name: prod, ref: r, password: x}`, []string{`instance "prod"`, "field provider: required"}},
		{"unknown provider", "{provider: other, name: prod, ref: r}", []string{`instance "prod"`, `unknown provider "other"`, "fake, selfhosted"}},
		{"unknown provider, instance without name", "{provider: other, ref: r}", []string{"instance with ref r", `unknown provider "other"`}},
		{"identity required", "{provider: fake, name: prod, password: x}", []string{`"prod"`, "field ref: required"}},
		{"blank identity", "{provider: fake, name: prod, ref: \"  \", password: x}", []string{"field ref: required"}},
		{"provider check", "{provider: fake, ref: r, password: " + secretValue + ", flavour: sour}", []string{"field flavour: sour is not a flavour"}},
		{"provider check before the secret", "{provider: fake, ref: r, flavour: sour}", []string{"field flavour"}},
		{"secret required", "{provider: fake, name: prod, ref: r}", []string{`instances[0] "prod"`, "field password: required (or password_file)"}},
		{"empty secret", `{provider: fake, ref: r, password: ""}`, []string{"instances[0]", "field password: required (or password_file)"}},
		{"both secrets", "{provider: fake, ref: r, password: " + secretValue + ", password_file: pw}", []string{"set password or password_file, not both"}},
		{"api_url required without a default", "{provider: selfhosted, ref: r, password: x}", []string{"field api_url: required for provider selfhosted"}},
		{"api_url not http", "{provider: fake, ref: r, password: x, api_url: \"ftp://h\"}", []string{"field api_url", `"ftp://h" is not an http:// or https:// URL`}},
		{"api_url without scheme", "{provider: fake, ref: r, password: x, api_url: h.example}", []string{"field api_url", "not an http:// or https:// URL"}},
		{"api_url without host", "{provider: fake, ref: r, password: x, api_url: \"https:///path\"}", []string{"field api_url", "not an http:// or https:// URL"}},
		{"api_url unparsable", "{provider: fake, ref: r, password: x, api_url: \"http://[::1\"}", []string{"field api_url: is not a valid URL"}},
		{"api_url with a query", "{provider: fake, ref: r, password: x, api_url: \"https://h/?x=1\"}", []string{"field api_url", "a query"}},
		{"api_url with a fragment", "{provider: fake, ref: r, password: x, api_url: \"https://h/#top\"}", []string{"field api_url", "a fragment"}},
		{"api_url with credentials", "{provider: fake, ref: r, password: x, api_url: \"https://u:" + secretValue + "@h\"}", []string{"field api_url", "must not carry credentials"}},
		{"unknown field", "{provider: fake, ref: r, password: x, colour: blue}", []string{"colour", "instance with ref r", "line 2"}},
		{"bad timeout", "{provider: fake, ref: r, password: x, timeout: soon}", []string{"field timeout"}},
		{"negative timeout", "{provider: fake, ref: r, password: x, timeout: -5s}", []string{"field timeout"}},
		{"timeout without unit", "{provider: fake, ref: r, password: x, timeout: 5}", []string{"field timeout"}},
		{"bad HTTP settings", "{provider: fake, name: prod, ref: r, password: x, basic_auth: {username: u, password: " + secretValue + "}, authorization: {credentials: " + secretValue + "}}",
			[]string{`"prod"`, "HTTP client settings", "basic_auth", "authorization"}},
		{"TLS certificate without its key", "{provider: fake, name: prod, ref: r, password: x, tls_config: {cert_file: client.pem}}", []string{`"prod"`, "key"}},
		{"name too long", "{provider: fake, name: " + strings.Repeat("n", config.MaxNameBytes+1) + ", ref: r, password: x}",
			[]string{`instances[0] "nnnn`, "…", "field name", "129 bytes long, more than 128"}},
		{"default name too long", "{provider: fake, ref: " + strings.Repeat("r", 200) + ", password: x}", []string{"field name", "200 bytes long, more than 128"}},
		{"name with a control character", "{provider: fake, name: \"a\\tb\", ref: r, password: x}", []string{`instances[0] "a\tb"`, "field name", "control character"}},
		{"duplicate names", "{provider: fake, name: prod, ref: r1, password: x}\n  - {provider: fake, name: m, ref: r2, password: x}\n  - {provider: fake, name: prod, ref: r3, password: x}",
			[]string{`instances[2] "prod": field name: duplicate of instances[0]`}},
		{"duplicate default names", "{provider: fake, ref: 1101, password: x}\n  - {provider: fake, ref: \"1101\", password: x}",
			[]string{`instances[1] "1101": field name: duplicate of instances[0]`}},
		{"name of another instance's default name", "{provider: fake, ref: 1101, password: x}\n  - {provider: fake, name: \"1101\", ref: r, password: x}",
			[]string{`instances[1] "1101": field name: duplicate of instances[0]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkLoadError(t, "instances:\n  - "+tc.instances+"\n", nil, config.Options{}, tc.want)
		})
	}
}

// TestAPIURLErrorsHideCredentials: an api_url can carry a password;
// whatever is wrong with it, the error does not repeat it.
func TestAPIURLErrorsHideCredentials(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"https://user:" + secretValue + "@api.example",
		"https://user:" + secretValue + "@api.example/?q=1",
		"ftp://user:" + secretValue + "@api.example",
		"https://user:" + secretValue + "@",
		"http://user:" + secretValue + "@[::1",
	} {
		t.Run(u, func(t *testing.T) {
			t.Parallel()
			checkLoadError(t, fmt.Sprintf("instances:\n  - {provider: fake, name: prod, ref: r, password: x, api_url: %q}\n", u), nil, config.Options{}, []string{`"prod"`, "field api_url"})
		})
	}
}

// TestStrict: the file is YAML of the exporter's fields only, each once.
func TestStrict(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, content string
		want          []string
	}{
		{"unknown top-level field", "instances:\n  - {provider: fake, ref: r, password: x}\nscrape_interval: 1m\n", []string{"scrape_interval", "line 3"}},
		{"unknown field in tls_config", "instances:\n  - provider: fake\n    name: prod\n    ref: r\n    password: x\n    tls_config:\n      insecure: true\n",
			[]string{"insecure", `"prod"`, "line 7"}},
		{"duplicate key in an instance", "instances:\n  - provider: fake\n    name: prod\n    ref: r\n    password: " + secretValue + "\n    password: other\n",
			[]string{"password", "already set", "line 6"}},
		{"duplicate top-level key", "instances:\n  - {provider: fake, ref: r, password: x}\ninstances:\n  - {provider: fake, ref: s, password: x}\n", []string{"instances", "already set"}},
		{"not YAML", "instances: [\n", []string{"yaml"}},
		{"instance is not a mapping", "instances:\n  - fake\n", []string{"fake"}},
		{"no instances", "instances: []\n", []string{"field instances: at least one instance"}},
		{"instances missing", "{}\n", []string{"field instances: at least one instance"}},
		{"empty file", "", []string{"field instances: at least one instance"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkLoadError(t, tc.content, nil, config.Options{}, tc.want)
		})
	}
}

// TestEmptyInstance: an empty list item decodes to no Spec at all; it is
// an error, not a panic.
func TestEmptyInstance(t *testing.T) {
	t.Parallel()
	for _, content := range []string{
		"instances:\n  -\n",
		"instances: [~]\n",
		"instances:\n  - {provider: fake, ref: r, password: x}\n  - null\n",
	} {
		t.Run(strings.ReplaceAll(content, "\n", " "), func(t *testing.T) {
			t.Parallel()
			_, path, err := testtool.LoadYAML(t, content, nil, config.Options{})
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "panicked") {
				t.Fatalf("%v", err)
			}
			checkError(t, err, path, []string{"instances[", "empty instance"})
		})
	}
}

// TestEveryErrorAtOnce: one load reports every error of the file.
func TestEveryErrorAtOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, content string
		want          []string
	}{
		{"resolving", `instances:
  - {provider: fake, name: a, password: x}
  - {provider: fake, name: b, ref: b}
  - {provider: fake, name: a, ref: a2, password: x}
  - {provider: fake, name: a, ref: a3, password: x}
  - ~
`, []string{`instances[0] "a": field ref`, `instances[1] "b": field password`,
			`instances[3] "a": field name: duplicate of instances[2]`, "instances[4]: empty instance"}},
		{"decoding", `instances:
  - provider: fake
    name: a
    ref: r
    password: x
    colour: red
  - provider: fake
    ref: r2
    password: x
    size: 3
extra: true
`, []string{`"a"`, "colour", "line 6", "with ref r2", "size", "line 10", "extra", "line 11"}},
		{"providers", `instances:
  - {provider: other, name: a, ref: r, password: x}
  - {name: b, ref: r, password: x}
  - {provider: fake, name: c, ref: r, password: x, colour: red}
`, []string{`"a"`, `"other"`, `"b"`, "field provider: required", `"c"`, "colour"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkLoadError(t, tc.content, nil, config.Options{}, tc.want)
		})
	}
}

// TestMarshalHidesTheSecrets: a loaded configuration marshals with every
// secret as <secret>, however it was given.
func TestMarshalHidesTheSecrets(t *testing.T) {
	t.Parallel()
	env := map[string]string{"PW": "env-" + secretValue}
	cfg, _ := mustLoad(t, `instances:
  - {provider: fake, name: inline, ref: r1, password: `+secretValue+`}
  - {provider: fake, name: file, ref: r2, password_file: pw}
  - {provider: fake, name: env, ref: "3", password: "${PW}", basic_auth: {username: u, password: basic-`+secretValue+`}}
`, map[string]string{"pw": "file-" + secretValue + "\n"}, config.Options{ExpandEnv: true, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	if strings.Contains(text, secretValue) {
		t.Errorf("marshalled configuration holds a secret:\n%s", text)
	}
	if n := strings.Count(text, "password: <secret>"); n != 3 {
		t.Errorf("password: <secret> appears %d times, want 3 (two instances' and a basic_auth's):\n%s", n, text)
	}
	for _, want := range []string{"name: inline", "ref: r1", "password_file: pw", "provider: fake", `ref: "3"`} {
		if !strings.Contains(text, want) {
			t.Errorf("marshalled configuration lacks %q:\n%s", want, text)
		}
	}
	// Each instance on its own marshals the same way.
	for _, inst := range cfg.Instances {
		out, err := yaml.Marshal(inst)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), secretValue) {
			t.Errorf("instance %q marshals with its secret:\n%s", inst.Name(), out)
		}
	}
}

// TestHTTPClientConfig: Prometheus' HTTP settings, with their defaults
// and their files taken from the configuration's directory.
func TestHTTPClientConfig(t *testing.T) {
	t.Parallel()
	// The files must exist: the loader checks that each is a regular file.
	certDir := t.TempDir()
	testtool.WriteFiles(t, certDir, map[string]string{"client.pem": "cert"})
	cfg, path := mustLoad(t, strings.ReplaceAll(`
instances:
  - provider: fake
    name: custom
    ref: r1
    password: x
    proxy_url: http://proxy.example:3128
    no_proxy: localhost
    tls_config:
      insecure_skip_verify: true
      server_name: api.example
      ca_file: certs/ca.pem
      cert_file: CERT_DIR/client.pem
      key_file: ../keys/client.key
    follow_redirects: false
    enable_http2: false
  - {provider: fake, name: defaults, ref: r2, password: x}
  - provider: fake
    name: auth
    ref: r3
    password: x
    authorization:
      credentials_file: creds
    http_headers:
      X-Test:
        values: [a]
`, "CERT_DIR", certDir), map[string]string{"certs/ca.pem": "ca", "../keys/client.key": "key", "creds": "c"}, config.Options{})
	dir := filepath.Dir(path)

	c := instanceNamed(t, cfg, "custom").HTTPClientConfig
	if c.ProxyURL.URL == nil || c.ProxyURL.String() != "http://proxy.example:3128" {
		t.Errorf("proxy_url %v", c.ProxyURL.URL)
	}
	if c.NoProxy != "localhost" {
		t.Errorf("no_proxy %q", c.NoProxy)
	}
	if !c.TLSConfig.InsecureSkipVerify || c.TLSConfig.ServerName != "api.example" {
		t.Errorf("tls_config %+v", c.TLSConfig)
	}
	if c.FollowRedirects || c.EnableHTTP2 {
		t.Errorf("follow_redirects %v, enable_http2 %v, want both false", c.FollowRedirects, c.EnableHTTP2)
	}
	for _, f := range []struct{ field, got, want string }{
		{"ca_file", c.TLSConfig.CAFile, filepath.Join(dir, "certs", "ca.pem")},
		{"cert_file", c.TLSConfig.CertFile, filepath.Join(certDir, "client.pem")},
		{"key_file", c.TLSConfig.KeyFile, filepath.Join(filepath.Dir(dir), "keys", "client.key")},
	} {
		if f.got != f.want {
			t.Errorf("tls_config.%s %q, want %q", f.field, f.got, f.want)
		}
	}

	d := instanceNamed(t, cfg, "defaults").HTTPClientConfig
	if !d.FollowRedirects || !d.EnableHTTP2 {
		t.Errorf("defaults: follow_redirects %v, enable_http2 %v, want both true", d.FollowRedirects, d.EnableHTTP2)
	}
	if d.ProxyURL.URL != nil || d.TLSConfig.InsecureSkipVerify || d.BasicAuth != nil || d.Authorization != nil {
		t.Errorf("defaults: unexpected settings %+v", d)
	}

	a := instanceNamed(t, cfg, "auth").HTTPClientConfig
	if a.Authorization == nil || a.Authorization.CredentialsFile != filepath.Join(dir, "creds") {
		t.Errorf("authorization %+v, want credentials_file in %s", a.Authorization, dir)
	}
	if a.HTTPHeaders == nil || !slices.Equal(a.HTTPHeaders.Headers["X-Test"].Values, []string{"a"}) {
		t.Errorf("http_headers %+v", a.HTTPHeaders)
	}
}

// TestLoadDeterministic: the same file gives the same result each time;
// the collector compares specs with reflect.DeepEqual to keep clients
// across reloads.
func TestLoadDeterministic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, map[string]string{
		"config.yml": "instances:\n  - {provider: fake, ref: r, password_file: pw, tls_config: {ca_file: ca.pem}}\n",
		"pw":         "x\n",
		"ca.pem":     "ca",
	})
	path := filepath.Join(dir, "config.yml")
	a, err := config.LoadFile(path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := config.LoadFile(path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two loads differ:\n%+v\n%+v", a.Instances[0].Spec, b.Instances[0].Spec)
	}
	if got := a.Instances[0].Spec.Base().Timeout; got != model.Duration(config.DefaultTimeout) {
		t.Errorf("timeout %v, want the default %v", got, config.DefaultTimeout)
	}
}
