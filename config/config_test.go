package config_test

import (
	"errors"
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
// "fake" has a default api_url and a check of its own, "selfhosted" needs
// an api_url. The real providers' configurations are tested in collector/.

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

// testProvider is a provider known to the loader only.
type testProvider struct{ info config.ProviderInfo }

func (p *testProvider) Loader() *config.ProviderInfo { return &p.info }

func init() {
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

// checkError is testtool.CheckError with this package's secret.
func checkError(t *testing.T, err error, path string, want []string) {
	t.Helper()
	testtool.CheckError(t, err, path, want, nil, secretValue)
}

func TestProvidersAreRegistered(t *testing.T) {
	if got := config.Providers(); !slices.Contains(got, "fake") || !slices.Contains(got, "selfhosted") || !slices.IsSorted(got) {
		t.Fatalf("Providers() = %v, want the test's providers, sorted", got)
	}
}

// TestCommonSteps: every provider's instance gets the same treatment.
func TestCommonSteps(t *testing.T) {
	cfg, _, err := testtool.LoadYAML(t, `
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
`, map[string]string{"secrets/pw": "\n  from-file \t\n"}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, id, secret, url string
		timeout               time.Duration
	}{
		{"shop-1", "shop-1", "inline", "https://fake.example/api", config.DefaultTimeout},
		{"named", "  padded  ", "from-file", "https://other.example/v2", 3 * time.Second},
		{"s", "s", "p", "http://10.0.0.1:8080", config.DefaultTimeout},
	} {
		i := slices.IndexFunc(cfg.Instances, func(in config.Instance) bool { return in.Name() == tc.name })
		if i < 0 {
			t.Errorf("no instance %q in %v", tc.name, cfg.Instances)
			continue
		}
		s := fake(t, cfg.Instances[i])
		b := s.Base()
		if b.ID() != tc.id || b.Secret() != tc.secret || b.APIURL != tc.url || time.Duration(b.Timeout) != tc.timeout || !s.validated {
			t.Errorf("%s: id %q secret %q url %q timeout %v validated %v; want %q %q %q %v true",
				tc.name, b.ID(), b.Secret(), b.APIURL, time.Duration(b.Timeout), s.validated, tc.id, tc.secret, tc.url, tc.timeout)
		}
		if !b.HTTPClientConfig.FollowRedirects || !b.HTTPClientConfig.EnableHTTP2 {
			t.Errorf("%s: HTTP settings lack Prometheus' defaults: %+v", tc.name, b.HTTPClientConfig)
		}
	}
	// The identity is the upstream instance: provider, URL and id.
	a, b := cfg.Instances[0].Spec.Base(), cfg.Instances[1].Spec.Base()
	if a.Identity() == b.Identity() || a.Identity() != "fake\x00https://fake.example/api\x00shop-1" {
		t.Errorf("identities %q and %q", a.Identity(), b.Identity())
	}
}

func TestCommonErrors(t *testing.T) {
	for _, tc := range []struct {
		name, instance string
		files          map[string]string
		want           []string
	}{
		{"identity required", "{provider: fake, name: n, password: x}", nil, []string{`"n"`, "field ref: required"}},
		{"blank identity", "{provider: fake, name: n, ref: \"  \", password: x}", nil, []string{"field ref: required"}},
		{"provider check", "{provider: fake, ref: r, password: " + secretValue + ", flavour: sour}", nil, []string{"field flavour: sour is not a flavour"}},
		{"provider check before the secret", "{provider: fake, ref: r, flavour: sour}", nil, []string{"field flavour"}},
		{"secret required", "{provider: fake, ref: r}", nil, []string{"field password: required (or password_file)"}},
		{"both secrets", "{provider: fake, ref: r, password: " + secretValue + ", password_file: pw}", map[string]string{"pw": "x"}, []string{"set password or password_file, not both"}},
		{"empty secret file", "{provider: fake, ref: r, password_file: pw}", map[string]string{"pw": " \n"}, []string{"field password_file", "is empty"}},
		{"missing secret file", "{provider: fake, ref: r, password_file: nope}", nil, []string{"field password_file", "nope"}},
		{"api_url required without a default", "{provider: selfhosted, ref: r, password: x}", nil, []string{"field api_url: required for provider selfhosted"}},
		{"api_url not http", "{provider: fake, ref: r, password: x, api_url: \"ftp://h\"}", nil, []string{"field api_url", "not an http:// or https:// URL"}},
		{"api_url with credentials", "{provider: fake, ref: r, password: x, api_url: \"https://u:" + secretValue + "@h\"}", nil, []string{"field api_url", "must not carry credentials"}},
		{"unknown field", "{provider: fake, ref: r, password: x, colour: blue}", nil, []string{"colour", "instance with ref r", "line 2"}},
		{"unknown provider", "{provider: other, ref: r}", nil, []string{"unknown provider \"other\"", "fake, selfhosted"}},
		{"bad timeout", "{provider: fake, ref: r, password: x, timeout: soon}", nil, []string{"field timeout"}},
		{"bad HTTP settings", "{provider: fake, ref: r, password: x, basic_auth: {username: u, password: a, password_file: b}}", nil, []string{"HTTP client settings"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, path, err := testtool.LoadYAML(t, "instances:\n  - "+tc.instance+"\n", tc.files, config.Options{})
			if err == nil {
				t.Fatal("no error")
			}
			checkError(t, err, path, tc.want)
		})
	}
}

func TestEveryErrorAtOnce(t *testing.T) {
	_, path, err := testtool.LoadYAML(t, `instances:
  - {provider: fake, name: a, password: x}
  - {provider: fake, name: b, ref: b}
  - {provider: fake, name: a, ref: a2, password: x}
  - {provider: fake, name: a, ref: a3, password: x}
  - ~
`, nil, config.Options{})
	if err == nil {
		t.Fatal("no error")
	}
	checkError(t, err, path, []string{`instances[0] "a": field ref`, `instances[1] "b": field password`,
		`instances[3] "a": field name: duplicate of instances[2]`, "instances[4]: empty instance"})
}

func TestExpansion(t *testing.T) {
	env := map[string]string{"REF": "from-env", "PW": secretValue, "DIR": "secrets", "HOST": "h.example"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	content := "instances:\n  - {provider: fake, name: \"n-${REF}\", ref: \"${REF}\", password: \"${PW}\", api_url: \"https://${HOST}\"}\n" +
		"  - {provider: fake, ref: f, password_file: \"${DIR}/pw\"}\n"
	files := map[string]string{"secrets/pw": "file-pw"}
	cfg, _, err := testtool.LoadYAML(t, content, files, config.Options{ExpandEnv: true, LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	a, f := cfg.Instances[0].Spec.Base(), cfg.Instances[1].Spec.Base()
	if a.Name != "n-from-env" || a.ID() != "from-env" || a.Secret() != secretValue || a.APIURL != "https://h.example" || f.Secret() != "file-pw" {
		t.Errorf("expanded: %q %q %q %q %q", a.Name, a.ID(), a.Secret(), a.APIURL, f.Secret())
	}
	// Off by default: the references stay as written.
	cfg, _, err = testtool.LoadYAML(t, "instances:\n  - {provider: fake, ref: \"${REF}\", password: \"${PW}\"}\n", nil, config.Options{LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Instances[0].Spec.Base(); b.ID() != "${REF}" || b.Secret() != "${PW}" {
		t.Errorf("expanded without ExpandEnv: %q %q", b.ID(), b.Secret())
	}
	// An unset variable is named, never a value.
	_, path, err := testtool.LoadYAML(t, "instances:\n  - {provider: fake, name: n, ref: \"${NOPE}\", password: x}\n", nil, config.Options{ExpandEnv: true, LookupEnv: lookup})
	if err == nil {
		t.Fatal("no error for an unset variable")
	}
	checkError(t, err, path, []string{`"n"`, "field ref", "environment variable NOPE is not set"})
}

func TestMarshalHidesTheSecret(t *testing.T) {
	cfg, _, err := testtool.LoadYAML(t, "instances:\n  - {provider: fake, ref: r, password: "+secretValue+"}\n", nil, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), secretValue) || !strings.Contains(string(out), "password: <secret>") || !strings.Contains(string(out), "ref: r") {
		t.Errorf("marshalled configuration:\n%s", out)
	}
}

func TestStrictTopLevel(t *testing.T) {
	_, path, err := testtool.LoadYAML(t, "instances:\n  - {provider: fake, ref: r, password: x}\nscrape_interval: 1m\n", nil, config.Options{})
	if err == nil {
		t.Fatal("no error")
	}
	checkError(t, err, path, []string{"scrape_interval", "line 3"})
	_, path, err = testtool.LoadYAML(t, "instances: []\n", nil, config.Options{})
	if err == nil {
		t.Fatal("no error for no instances")
	}
	checkError(t, err, path, []string{"field instances: at least one instance"})
}

func TestDefaultTimeoutIsAModelDuration(t *testing.T) {
	cfg, _, err := testtool.LoadYAML(t, "instances:\n  - {provider: fake, ref: r, password: x}\n", nil, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Instances[0].Spec.Base().Timeout; got != model.Duration(config.DefaultTimeout) {
		t.Errorf("timeout %v", got)
	}
}
