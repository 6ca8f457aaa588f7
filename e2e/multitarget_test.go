package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// TestMultiTargetModeEndToEnd: a real Prometheus discovers one target per
// instance from /sd and scrapes /probe for each; another scrapes /metrics.
// The shipped recording rules and alerts see the same states in both.
func TestMultiTargetModeEndToEnd(t *testing.T) {
	t.Parallel() // minutes of waiting for Prometheus and refreshes; run beside the others
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	sim := simulator.New()
	simURL := exportertest.StartSimulator(t, sim)
	var cfg strings.Builder
	cfg.WriteString("instances:\n")
	for _, in := range []struct {
		provider, name, id string
		b                  simulator.Behaviour
	}{
		{simulator.GreenAPI, "shop", "1", simulator.Behaviour{State: "blocked"}},
		{simulator.GreenAPI, "sales", "2", simulator.Behaviour{State: "authorized"}},
		{simulator.GreenAPI, "rejected", "3", simulator.Behaviour{Fault: simulator.FaultUnauthorized}},
		{simulator.Wachat, "store", "t1_store", simulator.Behaviour{State: "close"}},
		{simulator.Evolution, "bot", "bot", simulator.Behaviour{State: "open"}},
	} {
		sim.Set(in.provider, in.id, "e2e-secret", in.b)
		cfg.WriteString(simulator.ProviderOf(in.provider).Config(simURL, in.name, in.id, "e2e-secret"))
	}
	e := exportertest.Start(t, exportertest.Inline(cfg.String()), time.Second)
	addr := strings.TrimPrefix(e.URL, "http://")

	proms := map[scrapeMode]*promServer{}
	for _, mode := range scrapeModes {
		proms[mode] = startPrometheus(t, scrapeConfig(mode, addr), "")
	}
	firing := `ALERTS{alertstate="firing", alertname=~"WhatsApp.+"}`
	wantAlerts := []string{
		"alertname=WhatsAppApiUnauthorized,provider=greenapi,name=rejected,state=",
		"alertname=WhatsAppInstanceBlocked,provider=greenapi,name=shop,state=blocked",
		"alertname=WhatsAppInstanceNotAuthorized,provider=wachat,name=store,state=close",
		// Alertmanager silences these while the two above fire.
		"alertname=WhatsAppInstanceNotWorking,provider=greenapi,name=shop,state=",
		"alertname=WhatsAppInstanceNotWorking,provider=wachat,name=store,state=",
		"alertname=WhatsAppInstanceStateUnknown,provider=greenapi,name=rejected,state=",
	}
	results := map[scrapeMode]map[string][]string{}
	for _, mode := range scrapeModes {
		p := proms[mode]
		p.waitQuery(t, 90*time.Second, firing, func(v []sample) bool {
			return slices.Equal(keys(v, "alertname", "provider", "name", "state"), wantAlerts)
		})
		results[mode] = map[string][]string{}
		for _, q := range []struct {
			query  string
			labels []string
		}{
			{`whatsapp_instance_state == 1`, []string{"provider", "name", "state"}},
			{`whatsapp_up`, []string{"provider", "name", "__value__"}},
			{`whatsapp_exporter:up`, []string{"job", "__value__"}},
			{firing, []string{"alertname", "provider", "name", "state"}},
		} {
			v, err := p.query(q.query)
			if err != nil {
				t.Fatalf("%s: %s: %v", mode, q.query, err)
			}
			for i := range v {
				v[i].Metric["__value__"] = fmt.Sprint(v[i].Value[1])
			}
			results[mode][q.query] = keys(v, q.labels...)
		}
	}
	for q, single := range results[singleEndpoint] {
		if multi := results[multiTarget][q]; !slices.Equal(single, multi) {
			t.Errorf("%s:\n  single endpoint %v\n  multi-target    %v", q, single, multi)
		}
	}
	if got := results[singleEndpoint]["whatsapp_exporter:up"]; !slices.Equal(got, []string{"job=whatsapp,__value__=1"}) {
		t.Errorf("whatsapp_exporter:up %v", got)
	}
	// One target per instance, the instance label its name.
	v, err := proms[multiTarget].query(`up{job="whatsapp"}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(v, "instance"); !slices.Equal(got, []string{"instance=bot", "instance=rejected", "instance=sales", "instance=shop", "instance=store"}) {
		t.Errorf("multi-target targets %v", got)
	}
}
