package config_test

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

func TestAccounts(t *testing.T) {
	t.Parallel()
	cfg, _, err := testtool.LoadYAML(t, `
accounts:
  - name: main
    provider: fake
    key_file: secrets/key
    include: ["shop-.*", "sales"]
    exclude: ["shop-test-.*"]
    name_prefix: main-
  - name: second
    provider: fake
    key: inline-`+secretValue+`
    refresh_interval: 30s
    api_url: https://other.example/
`, map[string]string{"secrets/key": "file-key\n"}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Instances) != 0 || len(cfg.Accounts) != 2 {
		t.Fatalf("%d instances, %d accounts", len(cfg.Instances), len(cfg.Accounts))
	}
	main, second := cfg.Accounts[0].Spec.Account(), cfg.Accounts[1].Spec.Account()
	if main.Secret() != "file-key" || main.APIURL != "https://fake.example/accounts" || time.Duration(main.RefreshInterval) != config.DefaultRefreshInterval || time.Duration(main.Timeout) != config.DefaultTimeout {
		t.Errorf("defaults: %+v", main)
	}
	if main.MaxInstances != config.DefaultMaxInstances {
		t.Errorf("max_instances defaults to %d, not %d", main.MaxInstances, config.DefaultMaxInstances)
	}
	if second.Secret() != "inline-"+secretValue || second.APIURL != "https://other.example" || time.Duration(second.RefreshInterval) != 30*time.Second {
		t.Errorf("second: %+v", second)
	}
	for name, want := range map[string]bool{"shop-1": true, "sales": true, "shop-test-1": false, "support": false, "xsales": false, "sales2": false} {
		if got := main.Keeps(name); got != want {
			t.Errorf("Keeps(%q) = %v, want %v (filters are anchored)", name, got, want)
		}
	}
	if !second.Keeps("anything") {
		t.Error("an account without include keeps everything")
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), secretValue) || !strings.Contains(string(out), "key: <secret>") || !strings.Contains(string(out), "- shop-.*") {
		t.Errorf("marshalled:\n%s", out)
	}
}

func TestAccountErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, accounts string
		want           []string
	}{
		{"provider without accounts", "{name: a, provider: selfhosted, key: k}", []string{`account "a"`, "selfhosted", "has no accounts", "fake"}},
		{"no provider", "{name: a, key: k}", []string{"field provider: required"}},
		{"no name", "{provider: fake, key: k}", []string{"field name: required"}},
		{"no key", "{name: a, provider: fake}", []string{`accounts[0] "a"`, "field key: required (or key_file)"}},
		{"bad expression", "{name: a, provider: fake, key: k, include: [\"(\"]}", []string{`account "a"`, "invalid regular expression"}},
		{"refresh too short", "{name: a, provider: fake, key: k, refresh_interval: 1s}", []string{"field refresh_interval", "shorter than 10s"}},
		{"bad refresh", "{name: a, provider: fake, key: k, refresh_interval: soon}", []string{"field refresh_interval"}},
		{"unknown field", "{name: a, provider: fake, key: k, colour: blue}", []string{`account "a"`, "colour"}},
		{"prefix with a newline", "{name: a, provider: fake, key: k, name_prefix: \"x\\n\"}", []string{"field name_prefix", "control character"}},
		{"prefix too long", "{name: a, provider: fake, key: k, name_prefix: " + strings.Repeat("p", config.MaxNameBytes) + "}", []string{"field name_prefix", "leaving no room"}},
		{"name too long", "{name: " + strings.Repeat("a", 300) + ", provider: fake, key: k}", []string{"field name", "300 bytes long"}},
		{"max_instances negative", "{name: a, provider: fake, key: k, max_instances: -1}", []string{`accounts[0] "a"`, "field max_instances", "not between 1 and 100000"}},
		{"max_instances above the ceiling", "{name: a, provider: fake, key: k, max_instances: 100001}", []string{"field max_instances"}},
		{"duplicate", "{name: a, provider: fake, key: k}\n  - {name: a, provider: fake, key: k2}", []string{`accounts[1] "a": field name: duplicate of accounts[0]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, path, err := testtool.LoadYAML(t, "accounts:\n  - "+tc.accounts+"\n", nil, config.Options{})
			if err == nil {
				t.Fatal("no error")
			}
			checkError(t, err, path, tc.want)
		})
	}
}

func TestInstancesOrAccounts(t *testing.T) {
	t.Parallel()
	_, path, err := testtool.LoadYAML(t, "accounts: []\ninstances: []\n", nil, config.Options{})
	if err == nil {
		t.Fatal("no error for an empty configuration")
	}
	checkError(t, err, path, []string{"at least one instance (or one account)"})
}
