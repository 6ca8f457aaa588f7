package collector_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// secretToken is the api_token of every instance in the error cases: no
// error text may contain it.
const secretToken = "s3cr3t-T0KEN-value"

// fileToken is the content of token files in the error cases.
const fileToken = "f1le-s3cr3t-T0KEN"

func mustLoad(t *testing.T, content string, files map[string]string, opts config.Options) (*config.Config, string) {
	t.Helper()
	cfg, path, err := testtool.LoadYAML(t, content, files, opts)
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	return cfg, path
}

func greenAPI(t *testing.T, inst config.Instance) *collector.GreenAPISpec {
	t.Helper()
	s, ok := inst.Spec.(*collector.GreenAPISpec)
	if !ok {
		t.Fatalf("instance %q: spec is %T, want *collector.GreenAPISpec", inst.Name(), inst.Spec)
	}
	return s
}

// tokenOf is the resolved token.
func tokenOf(t *testing.T, s *collector.GreenAPISpec) string {
	t.Helper()
	return s.Secret()
}

// instanceByName returns the GREEN-API spec of the named instance.
func instanceByName(t *testing.T, cfg *config.Config, name string) *collector.GreenAPISpec {
	t.Helper()
	for _, inst := range cfg.Instances {
		if inst.Name() == name {
			return greenAPI(t, inst)
		}
	}
	t.Fatalf("no instance %q in %v", name, instanceNames(cfg))
	return nil
}

func TestProviders(t *testing.T) {
	if !slices.Contains(config.Providers(), "greenapi") {
		t.Fatalf("Providers() = %v, want it to contain greenapi", config.Providers())
	}
	if !slices.IsSorted(config.Providers()) {
		t.Errorf("Providers() = %v, not sorted", config.Providers())
	}
}

func TestLoadValid(t *testing.T) {
	cfg, _ := mustLoad(t, `
instances:
  - provider: greenapi
    id_instance: 1101000001
    api_token: tok-int
  - provider: greenapi
    id_instance: "1101000002"
    api_token: tok-str
    name: second
    api_url: https://1101.api.greenapi.com/
    timeout: 10s
  - provider: greenapi
    name: third
    id_instance: '7103000003'
    api_token_file: token.txt
    api_url: http://127.0.0.1:8080/proxy/greenapi/
    timeout: 0s
  - provider: greenapi
    id_instance: 42
    api_token: tok-path
    api_url: https://green.example/base
    timeout: 1m
`, map[string]string{"token.txt": "tok-file\n"}, config.Options{})

	want := []struct {
		name, id, apiURL, token string
		timeout                 time.Duration
	}{
		{"1101000001", "1101000001", "https://api.greenapi.com", "tok-int", config.DefaultTimeout},
		{"second", "1101000002", "https://1101.api.greenapi.com", "tok-str", 10 * time.Second},
		{"third", "7103000003", "http://127.0.0.1:8080/proxy/greenapi", "tok-file", config.DefaultTimeout},
		{"42", "42", "https://green.example/base", "tok-path", time.Minute},
	}
	if len(cfg.Instances) != len(want) {
		t.Fatalf("got %d instances, want %d", len(cfg.Instances), len(want))
	}
	wantNames := make([]string, len(want))
	for k, w := range want {
		wantNames[k] = w.name
		inst := cfg.Instances[k]
		s := greenAPI(t, inst)
		if inst.Name() != w.name {
			t.Errorf("instances[%d]: name %q, want %q", k, inst.Name(), w.name)
		}
		if inst.Provider() != "greenapi" {
			t.Errorf("instances[%d]: provider %q, want greenapi", k, inst.Provider())
		}
		if s.IDInstance != w.id {
			t.Errorf("instances[%d]: id_instance %q, want %q", k, s.IDInstance, w.id)
		}
		if s.APIURL != w.apiURL {
			t.Errorf("instances[%d]: api_url %q, want %q", k, s.APIURL, w.apiURL)
		}
		if got := time.Duration(s.Timeout); got != w.timeout {
			t.Errorf("instances[%d]: timeout %v, want %v", k, got, w.timeout)
		}
		if got := tokenOf(t, s); got != w.token {
			t.Errorf("instances[%d]: token %q, want %q", k, got, w.token)
		}
		if s.Base() != &s.Common {
			t.Errorf("instances[%d]: Base() is not the embedded Common", k)
		}
	}
	if !slices.Equal(instanceNames(cfg), wantNames) {
		t.Errorf("Names() = %v, want %v", instanceNames(cfg), wantNames)
	}
}

func TestLoadFileTestdata(t *testing.T) {
	// The test runs in collector/, the paths in the file are relative to
	// testdata/config/.
	cfg, err := config.LoadFile(filepath.Join("testdata", "config", "valid.yml"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := instanceByName(t, cfg, "testdata")
	if got := tokenOf(t, s); got != "testdata-token" {
		t.Errorf("token %q, want testdata-token", got)
	}
	if got, want := s.HTTPClientConfig.TLSConfig.CAFile, filepath.Join("testdata", "config", "certs", "ca.pem"); got != want {
		t.Errorf("tls_config.ca_file %q, want %q", got, want)
	}
	if _, err := os.Stat(s.HTTPClientConfig.TLSConfig.CAFile); err != nil {
		t.Errorf("resolved ca_file does not exist: %v", err)
	}
}

func TestLoadRelativeToDir(t *testing.T) {
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, map[string]string{"sub/token": "from-dir"})
	cfg, err := config.Load([]byte(`
instances:
  - provider: greenapi
    id_instance: 1
    api_token_file: sub/token
`), dir, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := tokenOf(t, greenAPI(t, cfg.Instances[0])); got != "from-dir" {
		t.Errorf("token %q, want from-dir", got)
	}
}

func TestAPITokenFile(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "abs.token")
	testtool.WriteFiles(t, filepath.Dir(abs), map[string]string{"abs.token": "abs-token"})

	tests := []struct {
		name    string
		file    string
		files   map[string]string
		want    string
		wantErr []string
	}{
		{name: "same directory", file: "token", files: map[string]string{"token": "plain"}, want: "plain"},
		{name: "sub directory", file: "secrets/greenapi", files: map[string]string{"secrets/greenapi": "sub"}, want: "sub"},
		{name: "dot slash", file: "./token", files: map[string]string{"token": "dot"}, want: "dot"},
		{name: "absolute", file: abs, want: "abs-token"},
		{name: "trimmed", file: "token", files: map[string]string{"token": " \t trimmed-token \r\n\n"}, want: "trimmed-token"},
		{name: "inner space kept", file: "token", files: map[string]string{"token": "a b\n"}, want: "a b"},
		{name: "empty", file: "token", files: map[string]string{"token": ""}, wantErr: []string{"api_token_file", "token", "empty"}},
		{name: "only white space", file: "token", files: map[string]string{"token": " \n\t\n"}, wantErr: []string{"api_token_file", "empty"}},
		{name: "missing", file: "nope.token", wantErr: []string{"api_token_file", "nope.token"}},
		{name: "directory", file: "secrets", files: map[string]string{"secrets/x": "x"}, wantErr: []string{"api_token_file", "secrets"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			content := fmt.Sprintf(`
instances:
  - provider: greenapi
    name: filetok
    id_instance: 1
    api_token_file: %q
`, tc.file)
			cfg, path, err := testtool.LoadYAML(t, content, tc.files, config.Options{})
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("no error")
				}
				checkError(t, err, path, append([]string{`"filetok"`}, tc.wantErr...), nil)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := greenAPI(t, cfg.Instances[0])
			if got := tokenOf(t, s); got != tc.want {
				t.Errorf("token %q, want %q", got, tc.want)
			}
			if s.APIToken != "" {
				t.Errorf("api_token %q, want empty", s.APIToken)
			}
		})
	}
}

// checkError is testtool.CheckError with this file's tokens as secrets.
func checkError(t *testing.T, err error, path string, all, anyOf []string) {
	t.Helper()
	testtool.CheckError(t, err, path, all, anyOf, secretToken, fileToken)
}

func TestStrict(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{
			name: "unknown top-level field",
			content: `instances:
  - provider: greenapi
    id_instance: 1
    api_token: ` + secretToken + `
scrape_interval: 1m
`,
			want: []string{"scrape_interval", "line 5"},
		},
		{
			name: "unknown instance field",
			content: `instances:
  - provider: greenapi
    name: prod
    id_instance: 1
    api_tokn: ` + secretToken + `
`,
			want: []string{"api_tokn", `"prod"`, "line 5"},
		},
		{
			name: "unknown instance field, instance without name",
			content: `instances:
  - provider: greenapi
    id_instance: 1101
    api_token: ` + secretToken + `
    tiemout: 5s
`,
			want: []string{"tiemout", "id_instance 1101", "line 5"},
		},
		{
			name: "unknown field in tls_config",
			content: `instances:
  - provider: greenapi
    name: prod
    id_instance: 1
    api_token: ` + secretToken + `
    tls_config:
      insecure: true
`,
			want: []string{"insecure", `"prod"`, "line 7"},
		},
		{
			name: "duplicate key in instance",
			content: `instances:
  - provider: greenapi
    name: prod
    id_instance: 1
    api_token: ` + secretToken + `
    api_token: other
`,
			want: []string{"api_token", "already set", "line 6"},
		},
		{
			name: "duplicate top-level key",
			content: `instances:
  - provider: greenapi
    id_instance: 1
    api_token: ` + secretToken + `
instances:
  - provider: greenapi
    id_instance: 2
    api_token: ` + secretToken + `
`,
			want: []string{"instances", "already set"},
		},
		{
			name:    "not YAML",
			content: "instances: [\n",
			want:    []string{"yaml"},
		},
		{
			name:    "instance is not a mapping",
			content: "instances:\n  - greenapi\n",
			want:    []string{"greenapi"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, path, err := testtool.LoadYAML(t, tc.content, nil, config.Options{})
			if err == nil {
				t.Fatal("no error")
			}
			checkError(t, err, path, tc.want, nil)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		files   map[string]string
		want    []string // all must appear, besides the file name
		anyOf   []string // one must appear: how the instance is named
	}{
		{
			name: "missing provider, named instance",
			content: `
instances:
  - name: prod
    id_instance: 1101
    api_token: ` + secretToken,
			want: []string{`"prod"`, "provider", "required", "greenapi"},
		},
		{
			name: "missing provider, instance without name",
			content: `
instances:
  - id_instance: 1101
    api_token: ` + secretToken,
			want:  []string{"provider", "required"},
			anyOf: []string{"id_instance 1101", "instances[0]"},
		},
		{
			name: "empty provider",
			content: `
instances:
  - provider: ""
    name: prod
    id_instance: 1101
    api_token: ` + secretToken,
			want: []string{`"prod"`, "provider", "required"},
		},
		{
			name: "unknown provider, named instance",
			content: `
instances:
  - provider: wati
    name: prod
    id_instance: 1101
    api_token: ` + secretToken,
			want: []string{`"prod"`, "provider", `"wati"`, "greenapi"},
		},
		{
			name: "unknown provider, instance without name",
			content: `
instances:
  - provider: green-api
    id_instance: 1101
    api_token: ` + secretToken,
			want:  []string{"provider", `"green-api"`},
			anyOf: []string{"id_instance 1101", "instances[0]"},
		},
		{
			name: "missing id_instance, named",
			content: `
instances:
  - provider: greenapi
    name: prod
    api_token: ` + secretToken,
			want: []string{`"prod"`, "id_instance", "required"},
		},
		{
			name: "missing id_instance, second instance without name",
			content: `
instances:
  - provider: greenapi
    id_instance: 1
    api_token: ` + secretToken + `
  - provider: greenapi
    api_token: ` + secretToken,
			want: []string{"instances[1]", "id_instance", "required"},
		},
		{
			name: "id_instance with a letter",
			content: `
instances:
  - provider: greenapi
    id_instance: 11O1
    api_token: ` + secretToken,
			want:  []string{"id_instance", "digits"},
			anyOf: []string{"id_instance 11O1", "instances[0]"},
		},
		{
			name: "id_instance negative",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: -1101
    api_token: ` + secretToken,
			want: []string{`"prod"`, "id_instance", "digits"},
		},
		{
			name: "id_instance too long",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: "11010000000000000000"
    api_token: ` + secretToken,
			want: []string{`"prod"`, "id_instance"},
		},
		{
			name: "id_instance with space",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: "1101 "
    api_token: ` + secretToken,
			want: []string{`"prod"`, "id_instance"},
		},
		{
			name: "api_token and api_token_file",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: 1101
    api_token: ` + secretToken + `
    api_token_file: token`,
			files: map[string]string{"token": fileToken},
			want:  []string{`"prod"`, "api_token", "api_token_file", "not both"},
		},
		{
			name: "neither api_token nor api_token_file",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: 1101`,
			want: []string{`"prod"`, "api_token", "api_token_file", "required"},
		},
		{
			name: "api_token empty string",
			content: `
instances:
  - provider: greenapi
    id_instance: 1101
    api_token: ""`,
			want: []string{"instances[0]", "api_token", "required"},
		},
		{
			name: "api_url ftp",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: 1101
    api_token: ` + secretToken + `
    api_url: ftp://api.greenapi.com`,
			want: []string{`"prod"`, "api_url", "ftp://api.greenapi.com"},
		},
		{
			name: "api_url without scheme",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: 1101
    api_token: ` + secretToken + `
    api_url: api.greenapi.com`,
			want: []string{`"prod"`, "api_url"},
		},
		{
			name: "api_url without host",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: 1101
    api_token: ` + secretToken + `
    api_url: https:///waInstance`,
			want: []string{`"prod"`, "api_url"},
		},
		{
			name: "api_url unparsable",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: 1101
    api_token: ` + secretToken + `
    api_url: "http://[::1"`,
			want: []string{`"prod"`, "api_url"},
		},
		{
			name: "api_url with query",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: 1101
    api_token: ` + secretToken + `
    api_url: https://api.greenapi.com/?x=1`,
			want: []string{`"prod"`, "api_url", "query"},
		},
		{
			name: "api_url with fragment",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: 1101
    api_token: ` + secretToken + `
    api_url: https://api.greenapi.com/#top`,
			want: []string{`"prod"`, "api_url", "fragment"},
		},
		{
			name: "api_url with user and password",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: 1101
    api_token: ` + secretToken + `
    api_url: https://user:pa55word@api.greenapi.com`,
			want: []string{`"prod"`, "api_url", "credentials"},
		},
		{
			name: "negative timeout",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: 1101
    api_token: ` + secretToken + `
    timeout: -5s`,
			want: []string{`"prod"`, "timeout"},
		},
		{
			name: "timeout without unit",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: 1101
    api_token: ` + secretToken + `
    timeout: 5`,
			want: []string{`"prod"`, "timeout"},
		},
		{
			name: "duplicate names",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: 1
    api_token: ` + secretToken + `
  - provider: greenapi
    name: other
    id_instance: 2
    api_token: ` + secretToken + `
  - provider: greenapi
    name: prod
    id_instance: 3
    api_token: ` + secretToken,
			want: []string{`"prod"`, "name", "duplicate", "instances[0]", "instances[2]"},
		},
		{
			name: "duplicate default names",
			content: `
instances:
  - provider: greenapi
    id_instance: 1101
    api_token: ` + secretToken + `
  - provider: greenapi
    id_instance: "1101"
    api_token: other`,
			want: []string{`"1101"`, "name", "duplicate", "instances[0]", "instances[1]"},
		},
		{
			name: "name equal to another instance's default name",
			content: `
instances:
  - provider: greenapi
    id_instance: 1101
    api_token: ` + secretToken + `
  - provider: greenapi
    name: "1101"
    id_instance: 2202
    api_token: other`,
			want: []string{`"1101"`, "duplicate", "instances[0]", "instances[1]"},
		},
		{
			name:    "no instances",
			content: "instances: []\n",
			want:    []string{"instances", "at least one"},
		},
		{
			name:    "instances missing",
			content: "{}\n",
			want:    []string{"instances", "at least one"},
		},
		{
			name:    "empty file",
			content: "",
			want:    []string{"instances", "at least one"},
		},
		{
			name: "basic_auth and authorization",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: 1101
    api_token: ` + secretToken + `
    basic_auth:
      username: u
      password: ` + fileToken + `
    authorization:
      credentials: ` + fileToken,
			want: []string{`"prod"`, "basic_auth", "authorization"},
		},
		{
			name: "tls cert_file without key_file",
			content: `
instances:
  - provider: greenapi
    name: prod
    id_instance: 1101
    api_token: ` + secretToken + `
    tls_config:
      cert_file: client.pem`,
			want: []string{`"prod"`, "key"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, path, err := testtool.LoadYAML(t, tc.content, tc.files, config.Options{})
			if err == nil {
				t.Fatal("no error")
			}
			checkError(t, err, path, tc.want, tc.anyOf)
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yml")
	_, err := config.LoadFile(path, config.Options{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want an error naming %s", err, path)
	}
}

// An empty list item decodes to no Spec at all; it must be an error, not a
// panic.
func TestEmptyInstance(t *testing.T) {
	for _, content := range []string{
		"instances:\n  -\n",
		"instances: [~]\n",
		"instances:\n  - provider: greenapi\n    id_instance: 1\n    api_token: t\n  - null\n",
	} {
		t.Run(strings.ReplaceAll(content, "\n", " "), func(t *testing.T) {
			_, path, err := testtool.LoadYAML(t, content, nil, config.Options{})
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "panicked") {
				t.Fatalf("%v", err)
			}
			checkError(t, err, path, []string{"instances["}, nil)
		})
	}
}

func TestLoadReportsAllErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{
			name: "validation errors",
			content: `
instances:
  - provider: greenapi
    name: a
    id_instance: x1
    api_token: ` + secretToken + `
  - provider: greenapi
    name: b
    id_instance: 2
  - provider: greenapi
    name: c
    id_instance: 3
    api_token: ` + secretToken + `
    api_url: ftp://example.com
  - provider: greenapi
    name: ok
    id_instance: 4
    api_token: ` + secretToken + `
  - provider: greenapi
    name: d
    id_instance: 5
    api_token_file: missing.token
  - provider: greenapi
    name: ok
    id_instance: 6
    api_token: ` + secretToken,
			want: []string{
				`instances[0] "a": field id_instance`,
				`instances[1] "b": field api_token`,
				`instances[2] "c": field api_url`,
				`instances[4] "d": field api_token_file`,
				`instances[5] "ok": field name: duplicate of instances[3]`,
			},
		},
		{
			name: "decoding errors",
			content: `
instances:
  - provider: greenapi
    name: a
    id_instance: 1
    api_token: ` + secretToken + `
    colour: red
  - provider: greenapi
    id_instance: 2
    api_token: ` + secretToken + `
    size: 3
extra: true
`,
			want: []string{`"a"`, "colour", "line 7", "id_instance 2", "size", "line 11", "extra", "line 12"},
		},
		{
			name: "provider errors",
			content: `
instances:
  - provider: wati
    name: a
    id_instance: 1
    api_token: ` + secretToken + `
  - name: b
    id_instance: 2
    api_token: ` + secretToken + `
  - provider: greenapi
    name: c
    id_instance: 3
    api_token: ` + secretToken + `
    colour: red
`,
			want: []string{`"a"`, `"wati"`, `"b"`, "provider", `"c"`, "colour"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, path, err := testtool.LoadYAML(t, tc.content, nil, config.Options{})
			if err == nil {
				t.Fatal("no error")
			}
			checkError(t, err, path, tc.want, nil)
		})
	}
}

// fakeEnv is a LookupEnv that records the names asked for.
type fakeEnv struct {
	vars  map[string]string
	asked []string
}

func (f *fakeEnv) lookup(name string) (string, bool) {
	f.asked = append(f.asked, name)
	v, ok := f.vars[name]
	return v, ok
}

func TestExpandEnvOffByDefault(t *testing.T) {
	env := &fakeEnv{vars: map[string]string{"TOKEN": "expanded", "NAME": "expanded"}}
	cfg, _ := mustLoad(t, `
instances:
  - provider: greenapi
    name: ${NAME}
    id_instance: 1101
    api_token: ${TOKEN}
  - provider: greenapi
    id_instance: 1102
    api_token: "$TOKEN"
`, nil, config.Options{LookupEnv: env.lookup})
	if got := instanceNames(cfg); !slices.Equal(got, []string{"${NAME}", "1102"}) {
		t.Errorf("names %q, want the literal ${NAME} and 1102", got)
	}
	if got := tokenOf(t, greenAPI(t, cfg.Instances[0])); got != "${TOKEN}" {
		t.Errorf("token %q, want the literal ${TOKEN}", got)
	}
	if got := tokenOf(t, greenAPI(t, cfg.Instances[1])); got != "$TOKEN" {
		t.Errorf("token %q, want the literal $TOKEN", got)
	}
	if len(env.asked) > 0 {
		t.Errorf("LookupEnv called for %q although ExpandEnv is off", env.asked)
	}
}

func TestExpandEnv(t *testing.T) {
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, map[string]string{"env.token": "token-from-env-file\n"})
	vars := map[string]string{
		"ID":    "7103000001",
		"TOKEN": secretToken,
		"DIR":   dir,
		"URL":   "https://7103.api.greenapi.com",
		"NAME":  "shop",
		"EMPTY": "",
	}
	tests := []struct {
		name     string
		instance string // YAML lines of one instance, after provider
		check    func(t *testing.T, s *collector.GreenAPISpec)
	}{
		{
			name:     "api_token",
			instance: "id_instance: 1\napi_token: ${TOKEN}",
			check: func(t *testing.T, s *collector.GreenAPISpec) {
				if got := tokenOf(t, s); got != secretToken {
					t.Errorf("token %q", got)
				}
			},
		},
		{
			name:     "api_token with literal parts",
			instance: "id_instance: 1\napi_token: pre-${NAME}-${ID}",
			check: func(t *testing.T, s *collector.GreenAPISpec) {
				if got := tokenOf(t, s); got != "pre-shop-7103000001" {
					t.Errorf("token %q", got)
				}
			},
		},
		{
			name:     "api_token_file",
			instance: "id_instance: 1\napi_token_file: ${DIR}/env.token",
			check: func(t *testing.T, s *collector.GreenAPISpec) {
				if got := tokenOf(t, s); got != "token-from-env-file" {
					t.Errorf("token %q", got)
				}
			},
		},
		{
			name:     "id_instance",
			instance: "id_instance: ${ID}\napi_token: t",
			check: func(t *testing.T, s *collector.GreenAPISpec) {
				if s.IDInstance != "7103000001" || s.Name != "7103000001" {
					t.Errorf("id_instance %q, name %q", s.IDInstance, s.Name)
				}
			},
		},
		{
			name:     "api_url",
			instance: "id_instance: 1\napi_token: t\napi_url: ${URL}/",
			check: func(t *testing.T, s *collector.GreenAPISpec) {
				if s.APIURL != "https://7103.api.greenapi.com" {
					t.Errorf("api_url %q", s.APIURL)
				}
			},
		},
		{
			name:     "name",
			instance: "id_instance: 1\napi_token: t\nname: ${NAME}-${ID}",
			check: func(t *testing.T, s *collector.GreenAPISpec) {
				if s.Name != "shop-7103000001" {
					t.Errorf("name %q", s.Name)
				}
			},
		},
		{
			name:     "no reference",
			instance: "id_instance: 1\napi_token: $TOKEN-{TOKEN}",
			check: func(t *testing.T, s *collector.GreenAPISpec) {
				if got := tokenOf(t, s); got != "$TOKEN-{TOKEN}" {
					t.Errorf("token %q", got)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := &fakeEnv{vars: vars}
			content := "instances:\n  - provider: greenapi\n" + indent(tc.instance, "    ") + "\n"
			cfg, _ := mustLoad(t, content, nil, config.Options{ExpandEnv: true, LookupEnv: env.lookup})
			tc.check(t, greenAPI(t, cfg.Instances[0]))
		})
	}
}

func TestExpandEnvUnset(t *testing.T) {
	vars := map[string]string{"TOKEN": secretToken, "EMPTY": ""}
	tests := []struct {
		name     string
		instance string
		want     []string
	}{
		{"api_token", "name: prod\nid_instance: 1\napi_token: " + fileToken + "${NOPE}", []string{`"prod"`, "api_token", "NOPE"}},
		{"api_token_file", "name: prod\nid_instance: 1\napi_token_file: ${NOPE}/token", []string{`"prod"`, "api_token_file", "NOPE"}},
		{"id_instance", "name: prod\nid_instance: ${NOPE}\napi_token: ${TOKEN}", []string{`"prod"`, "id_instance", "NOPE"}},
		{"api_url", "name: prod\nid_instance: 1\napi_token: ${TOKEN}\napi_url: https://${NOPE}/", []string{`"prod"`, "api_url", "NOPE"}},
		{"name", "name: ${NOPE}\nid_instance: 1\napi_token: ${TOKEN}", []string{"instances[0]", "field name", "NOPE"}},
		{"two variables", "name: prod\nid_instance: 1\napi_token: ${NOPE}${NADA}", []string{"api_token", "NOPE", "NADA"}},
		{"api_token empty after expansion", "name: prod\nid_instance: 1\napi_token: ${EMPTY}", []string{`"prod"`, "api_token", "empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := &fakeEnv{vars: vars}
			content := "instances:\n  - provider: greenapi\n" + indent(tc.instance, "    ") + "\n"
			_, path, err := testtool.LoadYAML(t, content, nil, config.Options{ExpandEnv: true, LookupEnv: env.lookup})
			if err == nil {
				t.Fatal("no error")
			}
			checkError(t, err, path, tc.want, nil)
		})
	}
}

func TestExpandEnvUsesOSByDefault(t *testing.T) {
	t.Setenv("WHATSAPP_EXPORTER_CONFIG_TEST_TOKEN", "from-os-env")
	cfg, _ := mustLoad(t, `
instances:
  - provider: greenapi
    id_instance: 1
    api_token: ${WHATSAPP_EXPORTER_CONFIG_TEST_TOKEN}
`, nil, config.Options{ExpandEnv: true})
	if got := tokenOf(t, greenAPI(t, cfg.Instances[0])); got != "from-os-env" {
		t.Errorf("token %q, want from-os-env", got)
	}
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

func TestMarshalHidesSecrets(t *testing.T) {
	env := &fakeEnv{vars: map[string]string{"ENV_TOKEN": "env-" + secretToken}}
	cfg, _ := mustLoad(t, `
instances:
  - provider: greenapi
    name: inline
    id_instance: 1
    api_token: `+secretToken+`
  - provider: greenapi
    name: file
    id_instance: 2
    api_token_file: token
  - provider: greenapi
    name: env
    id_instance: 3
    api_token: ${ENV_TOKEN}
    basic_auth:
      username: user
      password: basic-`+secretToken+`
`, map[string]string{"token": fileToken + "\n"}, config.Options{ExpandEnv: true, LookupEnv: env.lookup})

	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, secret := range []string{secretToken, fileToken} {
		if strings.Contains(text, secret) {
			t.Errorf("marshalled config contains the token %q:\n%s", secret, text)
		}
	}
	if n := strings.Count(text, "api_token: <secret>"); n != 2 {
		t.Errorf("api_token: <secret> appears %d times, want 2:\n%s", n, text)
	}
	for _, want := range []string{"name: inline", "name: file", "api_token_file: token", "provider: greenapi", "id_instance: \"1\"", "password: <secret>"} {
		if !strings.Contains(text, want) {
			t.Errorf("marshalled config lacks %q:\n%s", want, text)
		}
	}

	// Each instance on its own marshals the same way.
	for _, inst := range cfg.Instances {
		out, err := yaml.Marshal(inst)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), secretToken) || strings.Contains(string(out), fileToken) {
			t.Errorf("instance %q marshals with its token:\n%s", inst.Name(), out)
		}
	}
}

// The api_url can carry a password; errors about it must not repeat it.
func TestAPIURLErrorsHideCredentials(t *testing.T) {
	for _, u := range []string{
		"https://user:hunter2@api.greenapi.com",
		"https://user:hunter2@api.greenapi.com/?q=1",
		"ftp://user:hunter2@api.greenapi.com",
		"https://user:hunter2@",
		"http://user:hunter2@[::1",
	} {
		t.Run(u, func(t *testing.T) {
			_, path, err := testtool.LoadYAML(t, fmt.Sprintf(`
instances:
  - provider: greenapi
    name: prod
    id_instance: 1
    api_token: t
    api_url: %q
`, u), nil, config.Options{})
			if err == nil {
				t.Fatal("no error")
			}
			// The file path holds the test's name, and so the password.
			msg := strings.ReplaceAll(err.Error(), path, "<file>")
			if !strings.Contains(msg, "api_url") {
				t.Errorf("error does not name api_url: %s", msg)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error repeats the URL's password: %s", msg)
			}
		})
	}
}

func TestHTTPClientConfig(t *testing.T) {
	// The files must exist: the loader checks that each is a regular file.
	certDir := t.TempDir()
	testtool.WriteFiles(t, certDir, map[string]string{"client.pem": "cert"})
	cfg, path := mustLoad(t, strings.ReplaceAll(`
instances:
  - provider: greenapi
    name: custom
    id_instance: 1
    api_token: t
    proxy_url: http://proxy.example:3128
    no_proxy: localhost
    tls_config:
      insecure_skip_verify: true
      server_name: api.greenapi.com
      ca_file: certs/ca.pem
      cert_file: CERT_DIR/client.pem
      key_file: ../keys/client.key
    follow_redirects: false
    enable_http2: false
  - provider: greenapi
    name: defaults
    id_instance: 2
    api_token: t
  - provider: greenapi
    name: auth
    id_instance: 3
    api_token: t
    authorization:
      credentials_file: creds
    http_headers:
      X-Test:
        values: [a]
`, "CERT_DIR", certDir), map[string]string{"certs/ca.pem": "ca", "../keys/client.key": "key", "creds": "c"}, config.Options{})
	dir := filepath.Dir(path)

	c := instanceByName(t, cfg, "custom").HTTPClientConfig
	if c.ProxyURL.URL == nil || c.ProxyURL.String() != "http://proxy.example:3128" {
		t.Errorf("proxy_url %v", c.ProxyURL.URL)
	}
	if c.NoProxy != "localhost" {
		t.Errorf("no_proxy %q", c.NoProxy)
	}
	if !c.TLSConfig.InsecureSkipVerify || c.TLSConfig.ServerName != "api.greenapi.com" {
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

	d := instanceByName(t, cfg, "defaults").HTTPClientConfig
	if !d.FollowRedirects || !d.EnableHTTP2 {
		t.Errorf("defaults: follow_redirects %v, enable_http2 %v, want both true", d.FollowRedirects, d.EnableHTTP2)
	}
	if d.ProxyURL.URL != nil || d.TLSConfig.InsecureSkipVerify || d.BasicAuth != nil || d.Authorization != nil {
		t.Errorf("defaults: unexpected settings %+v", d)
	}

	a := instanceByName(t, cfg, "auth").HTTPClientConfig
	if a.Authorization == nil || a.Authorization.CredentialsFile != filepath.Join(dir, "creds") {
		t.Errorf("authorization %+v, want credentials_file in %s", a.Authorization, dir)
	}
	if a.HTTPHeaders == nil || !slices.Equal(a.HTTPHeaders.Headers["X-Test"].Values, []string{"a"}) {
		t.Errorf("http_headers %+v", a.HTTPHeaders)
	}
}

// The same file must give the same result each time; the collector compares
// specs with reflect.DeepEqual to keep clients across reloads.
func TestLoadDeterministic(t *testing.T) {
	content := `
instances:
  - provider: greenapi
    id_instance: 1
    api_token_file: token
    tls_config:
      ca_file: ca.pem
`
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, map[string]string{"token": "x\n", "ca.pem": "ca", "config.yml": content})
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
	if got := greenAPI(t, a.Instances[0]).Timeout; got != model.Duration(config.DefaultTimeout) {
		t.Errorf("timeout %v, want the default %v", got, config.DefaultTimeout)
	}
}

func instanceNames(cfg *config.Config) []string {
	var names []string
	for _, i := range cfg.Instances {
		names = append(names, i.Name())
	}
	return names
}
