package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// TestFailedReloadKeepsTheRunningAccount: a reload that changes an
// account and then fails (here: an instance's HTTP settings cannot be
// used) changes nothing. The account that keeps serving
// is the running one, entirely: its listings still bring states and new
// instances. (A new account used to take over the running account's
// memory before the reload was known to succeed: after the failure, every
// listing ran the discarded account, and its instances froze in their
// last state with whatsapp_up 1.)
func TestFailedReloadKeepsTheRunningAccount(t *testing.T) {
	t.Parallel()
	env := accountEnv{newTestEnv(t, Options{})} // every scrape lists
	env.sim.SetEvolutionVersion(simulator.Evolution18)
	env.sim.Set(simulator.Evolution, "bot", "t-bot", simulator.Behaviour{State: "open"})
	env.sim.SetAccount(simulator.Evolution, "global-key", simulator.Member{ID: "bot"})
	account := env.account(simulator.Evolution, "server", "global-key")
	if err := env.load(t, "", account); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first listing", func() bool { return slices.Equal(env.watched(), []string{"server/bot"}) })
	env.scrape(t, stateHeader+stateLines("evolution", "bot", "open", true), "whatsapp_instance_state")

	changed := strings.Replace(account, "refresh_interval: 1h", "refresh_interval: 2h", 1)
	if changed == account {
		t.Fatal("the account's configuration has no refresh_interval to change")
	}
	badCA := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(badCA, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unusable := simulator.ProviderOf(simulator.Evolution).Config(env.srv.URL, "other", "other", "t-other", "tls_config: {ca_file: "+badCA+"}")
	if err := env.load(t, unusable, changed); err == nil || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("reload with unusable HTTP settings: %v, want it refused", err)
	}

	env.sim.Set(simulator.Evolution, "bot", "t-bot", simulator.Behaviour{State: "close"})
	env.sim.Set(simulator.Evolution, "late", "t-late", simulator.Behaviour{State: "connecting"})
	env.sim.SetAccount(simulator.Evolution, "global-key", simulator.Member{ID: "bot"}, simulator.Member{ID: "late"})
	env.scrape(t, stateHeader+stateLines("evolution", "bot", "close", true), "whatsapp_instance_state")
	waitFor(t, "the new instance", func() bool {
		return slices.Equal(env.watched(), []string{"server/bot", "server/late"})
	})
	env.scrape(t, stateHeader+stateLines("evolution", "bot", "close", true)+stateLines("evolution", "late", "connecting", true), "whatsapp_instance_state")
}

// TestSameInstanceOtherCredentials: one upstream instance configured twice
// with different credentials (a rotation under way, a copy-paste) gives
// each configuration its own answer: the one with the right token is not
// shown unauthorized because the other's call came last.
func TestSameInstanceOtherCredentials(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, Options{})
	right := env.add(simulator.GreenAPI, "right", "1101000001", simulator.Behaviour{State: "authorized"})
	wrong := simulator.ProviderOf(simulator.GreenAPI).Config(env.srv.URL, "wrong", "1101000001", "not-the-token", "timeout: 2s")
	for range 2 { // either order of the calls
		env.load(t, right, wrong)
		for range 3 {
			env.scrape(t, upHeader+upLine("greenapi", "right", true)+upLine("greenapi", "wrong", false), "whatsapp_up")
		}
		right, wrong = wrong, right
	}
	if n := errorCount(t, env.c, "right", "getStateInstance", ReasonUnauthorized); n != 0 {
		t.Errorf("the instance with the right token counts %d unauthorized calls", n)
	}
}

// TestFailedReloadChangesNothing: a reload that fails at any step, after
// changing an instance and an account, leaves every answer of the
// collector as it was: the metrics of a scrape, the instances it lists,
// the metrics of the accounts. A listing that fails publishes nothing
// either: the last good list stays.
func TestFailedReloadChangesNothing(t *testing.T) {
	t.Parallel()
	env := accountEnv{newTestEnv(t, Options{MinInterval: time.Hour})}
	env.sim.SetEvolutionVersion(simulator.Evolution18)
	env.sim.Set(simulator.Evolution, "bot", "t-bot", simulator.Behaviour{State: "open"})
	env.sim.SetAccount(simulator.Evolution, "global-key", simulator.Member{ID: "bot"})
	shop := env.add(simulator.GreenAPI, "shop", "1101000001", simulator.Behaviour{State: "authorized"})
	account := env.account(simulator.Evolution, "server", "global-key")
	if err := env.load(t, shop, account); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first listing", func() bool { return len(env.watched()) == 2 })
	scrapeOnce(t, env.c)
	answers := func() string {
		var b strings.Builder
		if _, err := storedScrape(env.c, false).WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		for _, in := range env.c.Instances() {
			fmt.Fprintf(&b, "%s %s %s %v\n", in.Provider, in.Account, in.Name, in.Spec.Base().Timeout)
		}
		return b.String() + gatherAccountMetrics(t, env.c)
	}
	before := answers()

	badCA := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(badCA, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	changedShop := strings.Replace(shop, "timeout: 2s", "timeout: 3s", 1)
	changedAccount := strings.Replace(account, "refresh_interval: 1h", "refresh_interval: 2h", 1)
	for name, instances := range map[string]string{
		"unusable HTTP settings": changedShop + simulator.ProviderOf(simulator.GreenAPI).Config(env.srv.URL, "new", "1101000002", "secret",
			"tls_config: {ca_file: "+badCA+"}"),
	} {
		if err := env.load(t, instances, changedAccount); err == nil {
			t.Fatalf("%s: reload accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
		if got := answers(); got != before {
			t.Errorf("%s: answers after the failed reload:\n%s\nwant as before:\n%s", name, got, before)
		}
	}

	env.sim.ScheduleAccount(simulator.Evolution, "global-key", simulator.AccountStep{Fault: simulator.FaultServerError})
	listNow(env.c, accountsOf(env.c)[0])
	if !strings.Contains(gatherAccountMetrics(t, env.c), `reason="server_error"`) {
		t.Fatal("the listing did not fail")
	}
	if got, want := env.watched(), []string{"/shop", "server/bot"}; !slices.Equal(got, want) {
		t.Errorf("after a failing listing: watched %v, want %v", got, want)
	}
}

// TestListingThatGrowsKeepsTheOthers: a listing that finds one instance
// more builds that one only: the instances it already held keep their
// target (configuration, client, memory, counts), the very same object.
func TestListingThatGrowsKeepsTheOthers(t *testing.T) {
	t.Parallel()
	env := newAccountEnv(t)
	members := []simulator.Member{{ID: "t1_a"}, {ID: "t1_b"}}
	env.sim.SetAccount(simulator.Wachat, "agency-key", members...)
	if err := env.load(t, "", env.account(simulator.Wachat, "agency", "agency-key")); err != nil {
		t.Fatal(err)
	}
	env.list(t)
	before := map[string]*target{}
	for _, tg := range targetsOf(env.c) {
		before[tg.name] = tg
	}
	env.sim.SetAccount(simulator.Wachat, "agency-key", append(members, simulator.Member{ID: "t1_c"})...)
	env.list(t)
	if got := env.watched(); !slices.Equal(got, []string{"agency/t1_a", "agency/t1_b", "agency/t1_c"}) {
		t.Fatalf("watched %v", got)
	}
	for _, name := range []string{"t1_a", "t1_b"} {
		if targetNamed(t, env.c, name) != before[name] {
			t.Errorf("%s was rebuilt by a listing that did not change it", name)
		}
	}
}

// TestListedStateAndQueue: an instance whose state comes with its
// account's listing (an expired GREEN-API instance) and that watches its
// queue counts both under their own methods. (The listing's method set
// once had no queue variant: such an instance crashed the exporter.)
func TestListedStateAndQueue(t *testing.T) {
	t.Parallel()
	env := newAccountEnv(t)
	env.sim.SetAccount(simulator.GreenAPI, "partner-key",
		simulator.Member{ID: "1101000000", Name: "shop"}, simulator.Member{ID: "1101000003", Name: "late", Expired: true})
	if err := env.load(t, "", env.account(simulator.GreenAPI, "partner", "partner-key", "messages_queue: true")); err != nil {
		t.Fatal(err)
	}
	env.list(t)
	if got := env.watched(); !slices.Equal(got, []string{"partner/late", "partner/shop"}) {
		t.Fatalf("watched %v", got)
	}
	late := targetNamed(t, env.c, "late")
	if !late.listed || late.queue == nil || !slices.Equal(late.stats.methods, []string{"getInstances", "getMessagesCount"}) {
		t.Errorf("late: listed %v, queue %v, methods %v; want the listing's method and the queue's", late.listed, late.queue != nil, late.stats.methods)
	}
}
