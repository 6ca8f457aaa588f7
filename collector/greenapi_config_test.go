package collector

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// GREEN-API's configuration: its own fields and the checks only its spec
// makes. The steps every provider's configuration goes through (secrets
// and their files, expansion, api_url, timeout, HTTP settings, names,
// strictness, marshalling) are the loader's, tested in config/.

// greenAPIConfigToken is the api_token of the configuration tests: no
// error text may hold it.
const greenAPIConfigToken = "s3cr3t-T0KEN-value"

func TestGreenAPIConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, map[string]string{"token.txt": "tok-file\n"})
	cfg, err := config.Load([]byte(`instances:
  - {provider: greenapi, id_instance: 1101000001, api_token: tok-int}
  - {provider: greenapi, id_instance: "1101000002", api_token: tok-str, name: second, api_url: "https://1101.api.greenapi.com/"}
  - {provider: greenapi, name: third, id_instance: '7103000003', api_token_file: token.txt}
`), dir, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// id_instance is a number or a string; it is the default name;
	// api_url defaults to GREEN-API's; api_token or its file is the
	// secret.
	want := []struct{ name, id, apiURL, token string }{
		{"1101000001", "1101000001", "https://api.greenapi.com", "tok-int"},
		{"second", "1101000002", "https://1101.api.greenapi.com", "tok-str"},
		{"third", "7103000003", "https://api.greenapi.com", "tok-file"},
	}
	if len(cfg.Instances) != len(want) {
		t.Fatalf("got %d instances, want %d", len(cfg.Instances), len(want))
	}
	for k, w := range want {
		inst := cfg.Instances[k]
		s := specOf[*GreenAPISpec](t, inst.Spec)
		if inst.Name() != w.name || inst.Provider() != "greenapi" {
			t.Errorf("instances[%d]: name %q, provider %q; want %q, greenapi", k, inst.Name(), inst.Provider(), w.name)
		}
		if s.IDInstance != w.id || s.ID() != w.id {
			t.Errorf("instances[%d]: id_instance %q, ID() %q; want %q", k, s.IDInstance, s.ID(), w.id)
		}
		if s.APIURL != w.apiURL {
			t.Errorf("instances[%d]: api_url %q, want %q", k, s.APIURL, w.apiURL)
		}
		if s.Secret() != w.token {
			t.Errorf("instances[%d]: token %q, want %q", k, s.Secret(), w.token)
		}
		if s.Base() != &s.Common {
			t.Errorf("instances[%d]: Base() is not the embedded Common", k)
		}
	}
}

// TestGreenAPIConfigErrors: id_instance is the instance's number, and
// the errors name GREEN-API's fields, never the token.
func TestGreenAPIConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, map[string]string{"token": greenAPIConfigToken})
	tok := ", api_token: " + greenAPIConfigToken
	for _, tc := range []struct {
		name, instance string
		want           []string
	}{
		{"id_instance missing", "name: prod" + tok, []string{`"prod"`, "field id_instance: required"}},
		{"id_instance with a letter", "id_instance: 11O1" + tok, []string{"instances[0]", "field id_instance: must be the instance's number (digits only)"}},
		{"id_instance negative", "name: prod, id_instance: -1101" + tok, []string{`"prod"`, "field id_instance", "digits only"}},
		{"id_instance too long", `name: prod, id_instance: "11010000000000000000"` + tok, []string{`"prod"`, "field id_instance", "digits only"}},
		{"id_instance with a space", `name: prod, id_instance: "1101 "` + tok, []string{`"prod"`, "field id_instance", "digits only"}},
		{"api_token and api_token_file", "name: prod, id_instance: 1101, api_token_file: token" + tok, []string{`"prod"`, "set api_token or api_token_file, not both"}},
		{"neither api_token nor api_token_file", "name: prod, id_instance: 1101", []string{`"prod"`, "field api_token: required (or api_token_file)"}},
		{"unknown field, instance without name", "id_instance: 1101, api_tokn: " + greenAPIConfigToken, []string{"instance with id_instance 1101", "api_tokn"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load([]byte("instances:\n  - {provider: greenapi, "+tc.instance+"}\n"), dir, config.Options{})
			checkConfigError(t, err, tc.want, greenAPIConfigToken)
		})
	}
}

// TestGreenAPIConfigMarshal: the configuration marshals with the token
// hidden and id_instance as the string it is.
func TestGreenAPIConfigMarshal(t *testing.T) {
	t.Parallel()
	cfg := loadConfig(t, instanceYAML("greenapi", "id_instance", "1", "api_token", greenAPIConfigToken), t.TempDir())
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	checkNoLeak(t, "marshalled configuration", text, greenAPIConfigToken)
	for _, want := range []string{"provider: greenapi", `id_instance: "1"`, "api_token: <secret>", "api_url: https://api.greenapi.com"} {
		if !strings.Contains(text, want) {
			t.Errorf("marshalled configuration lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "api_token_file") {
		t.Errorf("marshalled configuration shows an unset api_token_file:\n%s", text)
	}
}
