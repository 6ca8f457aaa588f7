package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// TestAccountsEndToEnd: accounts in the simulator gain and lose instances
// while the exporter runs; /metrics and /sd follow within one refresh, and
// a failing listing keeps the last list and says so.
func TestAccountsEndToEnd(t *testing.T) {
	t.Parallel() // minutes of waiting for Prometheus and refreshes; run beside the others
	sim := simulator.New()
	simURL := startSimulator(t, sim)
	for i := range 4 {
		id := fmt.Sprint(1101000000 + i)
		sim.Set(simulator.GreenAPI, id, "tok-"+id, simulator.Behaviour{State: "authorized"})
	}
	for _, id := range []string{"t1_hotel", "t1_gym"} {
		sim.Set(simulator.Wachat, id, "agency-key", simulator.Behaviour{State: "open"})
	}
	sim.SetAccount(simulator.GreenAPI, "partner-key", simulator.Member{ID: "1101000000", Name: "bakery"}, simulator.Member{ID: "1101000001", Name: "florist"},
		simulator.Member{ID: "1101000003", Name: "closed", Deleted: true})
	sim.SetAccount(simulator.Wachat, "agency-key", simulator.Member{ID: "t1_hotel"})
	cfg := "accounts:\n" +
		simulator.ProviderOf(simulator.GreenAPI).AccountConfig(simURL, "partner", "partner-key", "refresh_interval: 10s") +
		simulator.ProviderOf(simulator.Wachat).AccountConfig(simURL, "agency", "agency-key", "refresh_interval: 10s")
	e := startExporter(t, configSource{inline: []byte(cfg)}, time.Second)

	follows := func(what string, want []string) {
		t.Helper()
		var up, sd []string
		for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			up = up[:0]
			for name, v := range upValues(parse(t, scrape(t, e.url, nil))) {
				if v == 1 {
					up = append(up, name)
				}
			}
			sd = sdTargets(t, e.url)
			slices.Sort(up)
			if slices.Equal(up, want) && slices.Equal(sd, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: instances up %v and in /sd %v, want %v\n%s", what, up, sd, want, e.logs)
			}
		}
	}
	follows("first listings", []string{"bakery", "florist", "t1_hotel"})
	sim.SetAccount(simulator.GreenAPI, "partner-key", simulator.Member{ID: "1101000001", Name: "florist"}, simulator.Member{ID: "1101000002", Name: "cafe"})
	sim.SetAccount(simulator.Wachat, "agency-key", simulator.Member{ID: "t1_hotel"}, simulator.Member{ID: "t1_gym"})
	follows("changed listings", []string{"cafe", "florist", "t1_gym", "t1_hotel"})

	// A failing listing keeps the last good list, and says so.
	sim.ScheduleAccount(simulator.GreenAPI, "partner-key", simulator.AccountStep{Fault: simulator.FaultServerError})
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		text := scrape(t, e.url, nil)
		if strings.Contains(text, `whatsapp_account_request_errors_total{account="partner",method="getInstances",provider="greenapi",reason="server_error"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listing failure in the metrics:\n%s", text)
		}
	}
	follows("a failing listing", []string{"cafe", "florist", "t1_gym", "t1_hotel"})
	if !strings.Contains(e.logs.String(), "Listing failing; keeping the last good list") {
		t.Errorf("the failing listing is not logged")
	}
}

// sdTargets are the targets /sd gives, sorted.
func sdTargets(t *testing.T, base string) []string {
	t.Helper()
	code, body := get(t, base+"/sd", nil)
	if code != http.StatusOK {
		t.Fatalf("/sd: HTTP %d", code)
	}
	var groups []struct {
		Targets []string `json:"targets"`
	}
	if err := json.Unmarshal([]byte(body), &groups); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range groups {
		out = append(out, g.Targets...)
	}
	slices.Sort(out)
	return out
}

// TestBinaryDemoShowsProvidersAsTheyAre: --demo shows what the providers'
// own code does: an Evolution API 2 server whose listing says open for an
// instance that is not, and the exporter showing its live state; a banned
// instance with its reason; a partner listing's Telegram instance
// skipped; an instance being created.
func TestBinaryDemoShowsProvidersAsTheyAre(t *testing.T) {
	_, base, logs := startBinary(t, "--demo")
	var text string
	waitFor(t, "the demo's accounts to find their instances", func() bool {
		text = scrape(t, base, nil)
		return strings.Contains(text, `name="banned-bot"`) && strings.Contains(text, `account="demo-partner",provider="greenapi",reason="not_whatsapp"} 1`)
	})
	states := checkOneHot(t, parse(t, text))
	if states["lost-bot"] == "open" || states["lost-bot"] == "" {
		t.Errorf("lost-bot shows %q, want its live state (connecting or close)", states["lost-bot"])
	}
	if states["demo-new"] != "creating" {
		t.Errorf("demo-new shows %q at start, want creating", states["demo-new"])
	}
	for _, want := range []string{
		`whatsapp_instance_disconnect_reason{provider="evolution",name="banned-bot",reason="banned"} 1`,
		`whatsapp_instance_state{provider="evolution",name="banned-bot",state="close"} 1`,
		`whatsapp_up{provider="greenapi",name="demo-new"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no %s in the demo's metrics", want)
		}
	}
	// The demo server's own listing says open for lost-bot.
	_, cfg := get(t, base+"/config", nil)
	var apiURL string
	for _, line := range strings.Split(cfg, "\n") {
		if strings.Contains(line, "/evolution") && strings.Contains(line, "api_url:") {
			apiURL = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "api_url:"))
		}
	}
	req, _ := http.NewRequest(http.MethodGet, apiURL+"/instance/fetchInstances", nil)
	req.Header.Set("apikey", "demo-global-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the demo's Evolution API listing at %q: %v\n%s", apiURL, err, logs)
	}
	defer resp.Body.Close()
	var rows []struct {
		Name   string `json:"name"`
		Status string `json:"connectionStatus"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	for _, r := range rows {
		listed[r.Name] = r.Status
	}
	if listed["lost-bot"] != "open" {
		t.Errorf("the demo's listing says %q for lost-bot, want open (the database column lags)", listed["lost-bot"])
	}
}
