package server_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// TestAccountsEndToEnd: accounts in the simulator gain and lose instances
// while the exporter runs; /metrics and /sd follow within one refresh, and
// a failing listing keeps the last list and says so.
func TestAccountsEndToEnd(t *testing.T) {
	t.Parallel() // minutes of waiting for Prometheus and refreshes; run beside the others
	sim := simulator.New()
	simURL := exportertest.StartSimulator(t, sim)
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
	e := exportertest.Start(t, exportertest.Inline(cfg), time.Second)

	follows := func(what string, want []string) {
		t.Helper()
		var up, sd []string
		for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			up = up[:0]
			for name, v := range exportertest.UpValues(exportertest.Parse(t, exportertest.Scrape(t, e.URL, nil))) {
				if v == 1 {
					up = append(up, name)
				}
			}
			sd = exportertest.SDTargets(t, e.URL)
			slices.Sort(up)
			if slices.Equal(up, want) && slices.Equal(sd, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: instances up %v and in /sd %v, want %v\n%s", what, up, sd, want, e.Logs)
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
		text := exportertest.Scrape(t, e.URL, nil)
		if strings.Contains(text, `whatsapp_account_request_errors_total{account="partner",method="getInstances",provider="greenapi",reason="server_error"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listing failure in the metrics:\n%s", text)
		}
	}
	follows("a failing listing", []string{"cafe", "florist", "t1_gym", "t1_hotel"})
	if !strings.Contains(e.Logs.String(), "Listing failing; keeping the last good list") {
		t.Errorf("the failing listing is not logged")
	}
}
