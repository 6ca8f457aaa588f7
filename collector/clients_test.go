package collector

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// TestClientPoolIsLinear: 2 000 instances with distinct HTTP settings
// cost about one comparison each, not one per pair (reload took 8 s for
// 4 000 of them); equal settings share a client, secrets tell apart.
func TestClientPoolIsLinear(t *testing.T) {
	var comparisons atomic.Int64
	defer func(orig func(a, b promcfg.HTTPClientConfig) bool) { sameSettings = orig }(sameSettings)
	sameSettings = func(a, b promcfg.HTTPClientConfig) bool {
		comparisons.Add(1)
		return sameSettingsDeep(a, b)
	}
	const n = 2000
	var yml strings.Builder
	yml.WriteString("instances:\n")
	for i := range n {
		fmt.Fprintf(&yml, "  - {name: i%d, provider: greenapi, id_instance: %d, api_token: t, proxy_url: \"http://proxy-%d.example:3128\"}\n", i, i+1, i)
	}
	// Two that share settings, and two that differ only in a secret.
	yml.WriteString("  - {name: s1, provider: greenapi, id_instance: 9001, api_token: t, proxy_url: \"http://shared.example:3128\"}\n")
	yml.WriteString("  - {name: s2, provider: greenapi, id_instance: 9002, api_token: t, proxy_url: \"http://shared.example:3128\"}\n")
	yml.WriteString("  - {name: b1, provider: greenapi, id_instance: 9003, api_token: t, basic_auth: {username: u, password: one}}\n")
	yml.WriteString("  - {name: b2, provider: greenapi, id_instance: 9004, api_token: t, basic_auth: {username: u, password: two}}\n")
	cfg, err := config.Load([]byte(yml.String()), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := New(discardLogger(), Options{})
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	// A reload that keeps every instance reuses every client.
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if got := comparisons.Load(); got > 8*n {
		t.Errorf("%d comparisons of HTTP settings for %d instances and a reload, want about one per instance", got, n)
	}
	byName := map[string]*http.Client{}
	for _, tg := range targetsOf(c) {
		byName[nameOf(tg)] = httpClientOf(tg)
	}
	if byName["s1"] != byName["s2"] {
		t.Error("instances with equal settings do not share a client")
	}
	if byName["b1"] == byName["b2"] || byName["i1"] == byName["i2"] {
		t.Error("instances with different settings share a client")
	}
	if got := clientSettingsCount(c); got < n {
		t.Errorf("%d settings keys for %d distinct settings", got, n)
	}
}
