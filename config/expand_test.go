package config_test

import (
	"slices"
	"testing"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

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

var expansionVars = map[string]string{
	"REF":   "from-env",
	"PW":    secretValue,
	"DIR":   "secrets",
	"HOST":  "h.example",
	"NAME":  "shop",
	"EMPTY": "",
}

// TestExpansion: with ExpandEnv, ${VAR} takes the variable's value in the
// fields that allow it.
func TestExpansion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, instance            string // the instance's fields after its provider
		wantName, wantID, wantURL string
		wantSecret                string
	}{
		{"password", `ref: r, password: "${PW}"`, "r", "r", "https://fake.example/api", secretValue},
		{"password with literal parts", `ref: r, password: "pre-${NAME}-${REF}"`, "r", "r", "https://fake.example/api", "pre-shop-from-env"},
		{"password_file", `ref: r, password_file: "${DIR}/pw"`, "r", "r", "https://fake.example/api", "file-pw"},
		{"identity, and so the default name", `ref: "${REF}", password: p`, "from-env", "from-env", "https://fake.example/api", "p"},
		{"api_url", `ref: r, password: p, api_url: "https://${HOST}/"`, "r", "r", "https://h.example", "p"},
		{"name", `name: "${NAME}-${REF}", ref: r, password: p`, "shop-from-env", "r", "https://fake.example/api", "p"},
		{"no reference", `ref: r, password: "$PW-{PW}"`, "r", "r", "https://fake.example/api", "$PW-{PW}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := &fakeEnv{vars: expansionVars}
			cfg, _ := mustLoad(t, "instances:\n  - {provider: fake, "+tc.instance+"}\n", map[string]string{"secrets/pw": "file-pw"},
				config.Options{ExpandEnv: true, LookupEnv: env.lookup})
			b := cfg.Instances[0].Spec.Base()
			if b.Name != tc.wantName || b.ID() != tc.wantID || b.APIURL != tc.wantURL || b.Secret() != tc.wantSecret {
				t.Errorf("name %q id %q api_url %q secret %q; want %q %q %q %q", b.Name, b.ID(), b.APIURL, b.Secret(), tc.wantName, tc.wantID, tc.wantURL, tc.wantSecret)
			}
		})
	}
}

// TestExpansionOffByDefault: without ExpandEnv the references stay as
// written, and no variable is looked up.
func TestExpansionOffByDefault(t *testing.T) {
	t.Parallel()
	env := &fakeEnv{vars: expansionVars}
	cfg, _ := mustLoad(t, `instances:
  - {provider: fake, name: "${NAME}", ref: "${REF}", password: "${PW}"}
  - {provider: fake, ref: r, password: "$PW"}
`, nil, config.Options{LookupEnv: env.lookup})
	a, b := cfg.Instances[0].Spec.Base(), cfg.Instances[1].Spec.Base()
	if a.Name != "${NAME}" || a.ID() != "${REF}" || a.Secret() != "${PW}" || b.Secret() != "$PW" {
		t.Errorf("expanded without ExpandEnv: %q %q %q %q", a.Name, a.ID(), a.Secret(), b.Secret())
	}
	if len(env.asked) > 0 {
		t.Errorf("LookupEnv called for %q although ExpandEnv is off", env.asked)
	}
}

// TestExpansionUnset: a variable that is not set is named, never a value.
func TestExpansionUnset(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, instance string
		want           []string
	}{
		{"password", `name: prod, ref: r, password: "` + secretValue + `${NOPE}"`, []string{`"prod"`, "field password: environment variable NOPE is not set"}},
		{"password_file", `name: prod, ref: r, password_file: "${NOPE}/pw"`, []string{`"prod"`, "field password_file: environment variable NOPE is not set"}},
		{"identity", `name: prod, ref: "${NOPE}", password: ` + secretValue, []string{`"prod"`, "field ref: environment variable NOPE is not set"}},
		{"api_url", `name: prod, ref: r, password: x, api_url: "https://${NOPE}/"`, []string{`"prod"`, "field api_url: environment variable NOPE is not set"}},
		{"name", `name: "${NOPE}", ref: r, password: x`, []string{"instances[0]", "field name: environment variable NOPE is not set"}},
		{"two variables", `name: prod, ref: r, password: "${NOPE}${NADA}"`, []string{`"prod"`, "field password: environment variable NOPE, NADA"}},
		{"empty after expansion", `name: prod, ref: r, password: "${EMPTY}"`, []string{`"prod"`, "field password: is empty after expansion"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := &fakeEnv{vars: expansionVars}
			checkLoadError(t, "instances:\n  - {provider: fake, "+tc.instance+"}\n", nil, config.Options{ExpandEnv: true, LookupEnv: env.lookup}, tc.want)
			if !slices.Contains(env.asked, "NOPE") && tc.name != "empty after expansion" {
				t.Errorf("NOPE was not looked up: %q", env.asked)
			}
		})
	}
}

// TestExpansionUsesTheEnvironmentByDefault: without a LookupEnv, the
// process' environment. Not parallel: it sets a variable.
func TestExpansionUsesTheEnvironmentByDefault(t *testing.T) {
	t.Setenv("WHATSAPP_EXPORTER_CONFIG_TEST_PASSWORD", "from-os-env")
	cfg, _ := mustLoad(t, "instances:\n  - {provider: fake, ref: r, password: \"${WHATSAPP_EXPORTER_CONFIG_TEST_PASSWORD}\"}\n", nil, config.Options{ExpandEnv: true})
	if got := cfg.Instances[0].Spec.Base().Secret(); got != "from-os-env" {
		t.Errorf("password %q, want from-os-env", got)
	}
}
