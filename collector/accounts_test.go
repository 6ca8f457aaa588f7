package collector

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// The accounts' listings, over real HTTP, with the documented bodies of
// testdata/<provider>/accounts; then accounts in a collector, against the
// simulator.

// listingSecrets are the account's credential and the instances' tokens
// the fixtures hold ({{TOKEN_n}}): none may reach an error or a log line.
var listingSecrets = []string{"acct-S3cret/key+=", "inst-tok-1-0123456789abcdef", "inst-tok-2-0123456789abcdef", "inst-tok-3-0123456789abcdef", "inst-tok-4-0123456789abcdef"}

var listingTargets = map[string]listingTarget{
	"greenapi": {
		provider: "greenapi",
		yaml: func(u string) string {
			return fmt.Sprintf("  - {name: partner, provider: greenapi, api_url: %q, partner_token: %q}\n", u, listingSecrets[0])
		},
		path:        "/partner/getInstances/" + listingSecrets[0],
		checkHeader: func(http.Header) bool { return true },
		tokens:      true,
	},
	"whatsmeow": whatsmeowListingTargets["wuzapi"],
	"wachat": {
		provider: "wachat",
		yaml: func(u string) string {
			return fmt.Sprintf("  - {name: agency, provider: wachat, api_url: %q, api_key: %q}\n", u, listingSecrets[0])
		},
		path:        "/instance/list",
		checkHeader: func(h http.Header) bool { return h.Get("Authorization") == "Bearer "+listingSecrets[0] },
	},
	"evolution": {
		provider: "evolution",
		yaml: func(u string) string {
			return fmt.Sprintf("  - {name: server, provider: evolution, api_url: %q, api_key: %q}\n", u, listingSecrets[0])
		},
		path:        "/instance/fetchInstances",
		checkHeader: func(h http.Header) bool { return h.Get("Apikey") == listingSecrets[0] },
	},
}

var listingCases = map[string][]listingCase{
	"whatsmeow": whatsmeowListingCases["wuzapi"],
	"greenapi": {
		{fixture: "instances.json", status: 200, want: []string{
			"shop 1101000001  ", "1101000002 1101000002  ", "trial 1101000004  expired", "older-listing 1101000008  "},
			skipped: map[string]int{skipDeleted: 1, skipNotWhatsApp: 3}},
		{body: `{"code":401,"description":"Unauthorized"}`, status: 200, wantErr: ReasonUnauthorized},
		{fixture: "empty.json", status: 200},
		{fixture: "malformed_row.json", status: 200, want: []string{"shop 1101000001  ", "string-id-ok 1101000006  "}, malformed: 4},
		{fixture: "not_array.json", status: 200, wantErr: ReasonBadResponse},
		{body: "Unauthorized", status: 401, wantErr: ReasonUnauthorized},
		{body: "Forbidden", status: 403, wantErr: ReasonUnauthorized},
		{body: "Too Many Requests", status: 429, header: []string{"Retry-After", "30"}, wantErr: ReasonRateLimited},
		{body: "<html>502 Bad Gateway</html>", status: 502, wantErr: ReasonServerError},
		{body: "null", status: 200},
		{body: "[" + strings.Repeat(`{"idInstance":1,"apiTokenInstance":"t"},`, config.DefaultMaxInstances) + `{"idInstance":1,"apiTokenInstance":"t"}]`, status: 200, wantErr: ReasonBadResponse},
	},
	"wachat": {
		// Not known to be live: the listing only finds the instances.
		{fixture: "list.json", status: 200, want: []string{
			"t1_mq9r2jov_jakarta_store t1_mq9r2jov_jakarta_store  ",
			"t1_mq9r2jov_bandung_cafe t1_mq9r2jov_bandung_cafe  ",
			"t1_mq9r2jov_surabaya_spa t1_mq9r2jov_surabaya_spa  "}},
		{fixture: "empty.json", status: 200},
		{fixture: "malformed_row.json", status: 200, want: []string{"t1_ok t1_ok  ", "t1_also_ok t1_also_ok  "}, malformed: 2},
		{fixture: "unsuccessful.json", status: 200, wantErr: ReasonBadResponse},
		{fixture: "unsuccessful.json", status: 401, wantErr: ReasonUnauthorized},
		{body: `{"success":true}`, status: 200, wantErr: ReasonBadResponse},
		{body: "Too Many Requests", status: 429, header: []string{"Retry-After", "30"}, wantErr: ReasonRateLimited},
		{body: "{", status: 200, wantErr: ReasonBadResponse},
	},
	"evolution": {
		// Version 2's rows are its database's: they find the instances,
		// which are then called; a final close gives its reason.
		{fixture: "fetch_v2.json", status: 200, want: []string{
			"sales-bot sales-bot  ", "support-bot support-bot  ", "new-bot new-bot  ", "banned-bot banned-bot   403",
			"relinked-bot relinked-bot  "}},
		// Version 1's are its live instances: the listing carries states.
		{fixture: "fetch_v1.json", status: 200, want: []string{"sales-bot sales-bot  open", "support-bot support-bot  close"}},
		{fixture: "empty.json", status: 200},
		{fixture: "malformed_row.json", status: 200, want: []string{"sales-bot sales-bot  ", "support-bot support-bot  ", "name-only name-only  "}, malformed: 2},
		{fixture: "error_401.json", status: 401, wantErr: ReasonUnauthorized},
		{body: `{"status":500,"error":"Internal Server Error","response":{"message":["Connection Closed"]}}`, status: 500, wantErr: ReasonServerError},
		{body: `{"instances":[]}`, status: 200, wantErr: ReasonBadResponse},
	},
}

// wachatStatesTarget is a Wachat account that takes the states from its
// listing (states_from_listing), with its cases.
var (
	wachatStatesTarget = listingTarget{
		provider: "wachat",
		yaml: func(u string) string {
			return fmt.Sprintf("  - {name: agency, provider: wachat, api_url: %q, api_key: %q, states_from_listing: true}\n", u, listingSecrets[0])
		},
		path:        "/instance/list",
		checkHeader: func(h http.Header) bool { return h.Get("Authorization") == "Bearer "+listingSecrets[0] },
	}
	wachatStatesCases = []listingCase{
		{fixture: "list.json", status: 200, want: []string{
			"t1_mq9r2jov_jakarta_store t1_mq9r2jov_jakarta_store  open",
			"t1_mq9r2jov_bandung_cafe t1_mq9r2jov_bandung_cafe  connecting",
			"t1_mq9r2jov_surabaya_spa t1_mq9r2jov_surabaya_spa  unknown"}},
		{fixture: "malformed_row.json", status: 200, want: []string{"t1_ok t1_ok  open", "t1_also_ok t1_also_ok  close"}, malformed: 2},
		{fixture: "unsuccessful.json", status: 401, wantErr: ReasonUnauthorized},
	}
)

func TestListings(t *testing.T) {
	t.Parallel()
	for _, provider := range config.Providers() {
		tg, ok := listingTargets[provider]
		if !ok {
			t.Errorf("provider %s has no listing target in accounts_test.go", provider)
			continue
		}
		runListingCases(t, provider, tg, listingCases[provider])
	}
	runListingCases(t, "wachat states_from_listing", wachatStatesTarget, wachatStatesCases)
}

// TestAccountFollowsItsListing: an instance that appears in a listing is
// watched from that refresh on, one that disappears is no longer; deleted
// GREEN-API instances and those of its other products are never watched,
// and an expired one is watched with the state expired, without calls.
func TestAccountFollowsItsListing(t *testing.T) {
	t.Parallel()
	env := newAccountEnv(t)
	env.sim.SetAccount(simulator.GreenAPI, "partner-key",
		simulator.Member{ID: "1101000000", Name: "shop"}, simulator.Member{ID: "1101000001"},
		simulator.Member{ID: "1101000002", Name: "gone", Deleted: true}, simulator.Member{ID: "1101000003", Name: "late", Expired: true},
		simulator.Member{ID: "1101000005", Name: "news", Product: "telegram"})
	if err := env.load(t, "", env.account(simulator.GreenAPI, "partner", "partner-key")); err != nil {
		t.Fatal(err)
	}
	env.list(t)
	if got := env.watched(); !slices.Equal(got, []string{"partner/1101000001", "partner/late", "partner/shop"}) {
		t.Fatalf("watched %v", got)
	}
	env.scrape(t, stateHeader+stateLines("greenapi", "1101000001", "authorized", true)+stateLines("greenapi", "late", "expired", true)+
		stateLines("greenapi", "shop", "authorized", true), "whatsapp_instance_state")
	// Their states are called one by one, with the listing's tokens; the
	// expired one's comes with the listing.
	if env.sim.Calls(simulator.GreenAPI, "1101000000") != 1 || env.sim.Calls(simulator.GreenAPI, "1101000001") != 1 {
		t.Errorf("GREEN-API instances found by the partner account were not called each")
	}
	if n := env.sim.Calls(simulator.GreenAPI, "1101000003"); n != 0 {
		t.Errorf("the expired instance was called %d times", n)
	}
	text := gatherAccountMetrics(t, env.c)
	for _, want := range []string{
		`whatsapp_account_skipped_instances{account="partner",provider="greenapi",reason="deleted"} 1`,
		`whatsapp_account_skipped_instances{account="partner",provider="greenapi",reason="not_whatsapp"} 1`,
		`whatsapp_account_instances{account="partner",provider="greenapi"} 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %s in:\n%s", want, text)
		}
	}

	env.sim.SetAccount(simulator.GreenAPI, "partner-key", simulator.Member{ID: "1101000001"}, simulator.Member{ID: "1101000004", Name: "new"},
		simulator.Member{ID: "1101000002", Name: "gone", Deleted: true})
	env.list(t)
	if got := env.watched(); !slices.Equal(got, []string{"partner/1101000001", "partner/new"}) {
		t.Fatalf("after the listing changed: watched %v", got)
	}
	env.scrape(t, upHeader+upLine("greenapi", "1101000001", true)+upLine("greenapi", "new", true), "whatsapp_up")
	if text := exposition(t, env.c); strings.Contains(text, `name="shop"`) {
		t.Errorf("the instance gone from the listing is still exposed")
	}
}

// TestAccountListingCarriesStates: the listing of a Wachat account with
// states_from_listing is the state request of all its instances: one call
// per scrape, none per instance.
func TestAccountListingCarriesStates(t *testing.T) {
	t.Parallel()
	env := newAccountEnv(t)
	env.sim.SetAccount(simulator.Wachat, "agency-key", simulator.Member{ID: "t1_a"}, simulator.Member{ID: "t1_b"}, simulator.Member{ID: "t1_c"})
	if err := env.load(t, "", env.account(simulator.Wachat, "agency", "agency-key", "states_from_listing: true")); err != nil {
		t.Fatal(err)
	}
	// The account lists at once when configured. Its result stands for
	// --api.min-interval (1 s) only: let that go by.
	agency := accountNamed(t, env.c, "agency")
	waitFor(t, "the first listing", func() bool { return len(env.watched()) == 3 && listingDone(env.c, agency) })
	ageListing(agency, 1100*time.Millisecond)
	before := env.sim.ListCalls(simulator.Wachat, "agency-key")
	env.scrape(t, stateHeader+stateLines("wachat", "t1_a", "connecting", true)+stateLines("wachat", "t1_b", "connecting", true)+stateLines("wachat", "t1_c", "connecting", true), "whatsapp_instance_state")
	if n := env.sim.ListCalls(simulator.Wachat, "agency-key") - before; n != 1 {
		t.Errorf("%d listing calls for one scrape of three instances, want 1", n)
	}
	for _, id := range []string{"t1_a", "t1_b", "t1_c"} {
		if n := env.sim.Calls(simulator.Wachat, id); n != 0 {
			t.Errorf("instance %s called %d times on its own", id, n)
		}
	}
	// Each instance counts the listing as its call.
	if text := exposition(t, env.c); !strings.Contains(text, `whatsapp_api_request_duration_seconds_count{provider="wachat",name="t1_a",method="listInstances"}`) {
		t.Errorf("the instance does not count the listing as its call:\n%s", text)
	}
}

// TestAccountListingFails: a failing listing keeps the last good list and
// says so; the states it carried are no longer known.
func TestAccountListingFails(t *testing.T) {
	t.Parallel()
	env := newAccountEnv(t)
	env.sim.SetAccount(simulator.GreenAPI, "partner-key", simulator.Member{ID: "1101000000", Name: "shop"})
	env.sim.SetAccount(simulator.Wachat, "agency-key", simulator.Member{ID: "t1_a"})
	if err := env.load(t, "", env.account(simulator.GreenAPI, "partner", "partner-key")+env.account(simulator.Wachat, "agency", "agency-key", "states_from_listing: true")); err != nil {
		t.Fatal(err)
	}
	env.list(t)
	// Every failure is counted from 0, before any: increase() sees the
	// first (the by-reason series appear only with it).
	failures := []string{
		`whatsapp_account_request_failures_total{account="partner",method="getInstances",provider="greenapi"} `,
		`whatsapp_account_request_failures_total{account="agency",method="listInstances",provider="wachat"} `,
	}
	text := gatherAccountMetrics(t, env.c)
	for _, f := range failures {
		if !strings.Contains(text, f+"0\n") {
			t.Errorf("no %s0 before the first failure in:\n%s", f, text)
		}
	}
	env.sim.ScheduleAccount(simulator.GreenAPI, "partner-key", simulator.AccountStep{Fault: simulator.FaultServerError})
	env.sim.ScheduleAccount(simulator.Wachat, "agency-key", simulator.AccountStep{Fault: simulator.FaultUnauthorized})
	env.list(t)
	if got := env.watched(); !slices.Equal(got, []string{"agency/t1_a", "partner/shop"}) {
		t.Fatalf("after failed listings: watched %v, want the last good lists", got)
	}
	// The partner's instance is still called on its own; the agency's,
	// whose state came with the listing, is down for the listing's reason.
	env.scrape(t, upHeader+upLine("greenapi", "shop", true)+upLine("wachat", "t1_a", false), "whatsapp_up")
	if n := errorCount(t, env.c, "t1_a", "listInstances", ReasonUnauthorized); n != 1 {
		t.Errorf("t1_a: %d unauthorized calls, want the failed listing", n)
	}
	text = gatherAccountMetrics(t, env.c)
	for _, want := range []string{
		failures[0] + "1",
		failures[1] + "1",
		`whatsapp_account_request_errors_total{account="partner",method="getInstances",provider="greenapi",reason="server_error"} 1`,
		`whatsapp_account_request_errors_total{account="agency",method="listInstances",provider="wachat",reason="unauthorized"} 1`,
		`whatsapp_account_instances{account="partner",provider="greenapi"} 1`,
		`whatsapp_account_last_refresh_timestamp_seconds{account="partner",provider="greenapi"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %s in:\n%s", want, text)
		}
	}
	if !strings.Contains(env.logs.String(), "Listing failing; keeping the last good list") {
		t.Errorf("the failing listing is not logged")
	}
}

// TestAccountNames: filters, prefix, and names already taken.
func TestAccountNames(t *testing.T) {
	t.Parallel()
	env := newAccountEnv(t)
	members := []simulator.Member{{ID: "1101000000", Name: "shop"}, {ID: "1101000001", Name: "test-1"}, {ID: "1101000002", Name: "sales"}}
	env.sim.SetAccount(simulator.GreenAPI, "partner-key", members...)
	env.sim.SetAccount(simulator.GreenAPI, "other-key", simulator.Member{ID: "1101000003", Name: "shop"})
	shop := env.add(simulator.GreenAPI, "p-shop", "1101000005", simulator.Behaviour{State: "authorized"})
	accounts := env.account(simulator.GreenAPI, "partner", "partner-key", `exclude: ["test-.*"]`, "name_prefix: p-") +
		env.account(simulator.GreenAPI, "other", "other-key", "name_prefix: p-")
	if err := env.load(t, shop, accounts); err != nil {
		t.Fatal(err)
	}
	env.list(t)
	// p-shop is configured: the partner's shop is not watched, nor the
	// other account's, whose name the partner's would also take.
	if got := env.watched(); !slices.Equal(got, []string{"/p-shop", "partner/p-sales"}) {
		t.Errorf("watched %v", got)
	}
	if !strings.Contains(env.logs.String(), "has the name of another instance") {
		t.Errorf("no error about the name taken:\n%s", env.logs)
	}
	text := gatherAccountMetrics(t, env.c)
	for _, want := range []string{
		`whatsapp_account_skipped_instances{account="partner",provider="greenapi",reason="filtered"} 1`,
		`whatsapp_account_skipped_instances{account="partner",provider="greenapi",reason="conflict"} 1`,
		`whatsapp_account_skipped_instances{account="other",provider="greenapi",reason="conflict"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %s in:\n%s", want, text)
		}
	}
	// A reload whose configured instance takes the name of one the
	// accounts list works: the configured one is watched, the listed one
	// skipped as a conflict, and said (a tenant of a shared server may
	// name its instances as it likes; that must not stop reloads).
	mark := len(env.logs.String())
	sales := env.add(simulator.GreenAPI, "p-sales", "1101000005", simulator.Behaviour{State: "authorized"})
	if err := env.load(t, sales, accounts); err != nil {
		t.Fatalf("configured name of a listed instance: %v, want the listed one skipped", err)
	}
	if got := env.watched(); !slices.Equal(got, []string{"/p-sales", "partner/p-shop"}) {
		t.Errorf("after the reload: watched %v", got)
	}
	text = gatherAccountMetrics(t, env.c)
	for _, want := range []string{
		`whatsapp_account_skipped_instances{account="partner",provider="greenapi",reason="conflict"} 1`,
		`whatsapp_account_skipped_instances{account="other",provider="greenapi",reason="conflict"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("after the reload: no %s in:\n%s", want, text)
		}
	}
	if out := env.logs.String()[mark:]; !strings.Contains(out, `instance=p-sales`) {
		t.Errorf("the new conflict is not logged:\n%s", out)
	}
	// A conflict is logged when it appears, not at every plan while it
	// lasts.
	mark = len(env.logs.String())
	if err := env.load(t, sales+simulator.ProviderOf(simulator.GreenAPI).Config(env.srv.URL, "more", "1101000009", "tok"), accounts); err != nil {
		t.Fatal(err)
	}
	if out := env.logs.String()[mark:]; strings.Contains(out, "has the name of another instance") {
		t.Errorf("a lasting conflict is logged again at the next plan:\n%s", out)
	}
}

// TestAccountRetryAfter: a listing answered 429 is not called again
// before its Retry-After, nor a partner's before its refresh interval.
func TestAccountRetryAfter(t *testing.T) {
	t.Parallel()
	env := newAccountEnv(t)
	env.sim.ScheduleAccount(simulator.Wachat, "agency-key", simulator.AccountStep{Fault: simulator.FaultRateLimited, RetryAfter: time.Minute})
	env.sim.SetAccount(simulator.GreenAPI, "partner-key", simulator.Member{ID: "1101000000"})
	if err := env.load(t, "", env.account(simulator.Wachat, "agency", "agency-key")+env.account(simulator.GreenAPI, "partner", "partner-key")); err != nil {
		t.Fatal(err)
	}
	accounts := accountsOf(env.c)
	waitFor(t, "the first listings", func() bool {
		return listingDone(env.c, accounts[0]) && listingDone(env.c, accounts[1])
	})
	for range 3 {
		for i, a := range accounts {
			if requestListing(env.c, a) {
				t.Errorf("accounts[%d]: its refresh queued a listing call", i)
			}
		}
		scrapeOnce(t, env.c)
	}
	if n := env.sim.ListCalls(simulator.Wachat, "agency-key"); n != 1 {
		t.Errorf("%d calls of a listing under Retry-After, want 1", n)
	}
	if n := env.sim.ListCalls(simulator.GreenAPI, "partner-key"); n != 1 {
		t.Errorf("%d calls of a partner listing within its refresh interval, want 1", n)
	}
}

// reasonLine is the whatsapp_instance_disconnect_reason line of an
// instance in an exposition, "" when it has none.
func reasonLine(text, provider, name string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, `whatsapp_instance_disconnect_reason{provider="`+provider+`",name="`+name+`",`) {
			return line
		}
	}
	return ""
}

// TestEvolution2ListingOnlyFinds: version 2's listing is its database,
// whose connectionStatus lags behind the connection: the instances it
// finds are called one by one and show their live state; a row closed for
// good gives the reason.
func TestEvolution2ListingOnlyFinds(t *testing.T) {
	t.Parallel()
	env := newAccountEnv(t)
	env.sim.Set(simulator.Evolution, "lost-bot", "t-lost", simulator.Behaviour{State: "close", Reason: 408})
	env.sim.Set(simulator.Evolution, "qr-bot", "t-qr", simulator.Behaviour{State: "close", Reason: simulator.ReasonQRExpired})
	env.sim.Set(simulator.Evolution, "banned-bot", "t-banned", simulator.Behaviour{State: "close", Reason: 403})
	env.sim.Set(simulator.Evolution, "relinked-bot", "t-relinked", simulator.Behaviour{State: "connecting", Reason: 428, Listed: "close"})
	env.sim.SetAccount(simulator.Evolution, "global-key", simulator.Member{ID: "lost-bot"}, simulator.Member{ID: "qr-bot"},
		simulator.Member{ID: "banned-bot"}, simulator.Member{ID: "relinked-bot"})
	if err := env.load(t, "", env.account(simulator.Evolution, "server", "global-key")); err != nil {
		t.Fatal(err)
	}
	env.list(t)
	env.scrape(t, stateHeader+stateLines("evolution", "banned-bot", "close", true)+stateLines("evolution", "lost-bot", "close", true)+
		stateLines("evolution", "qr-bot", "close", true)+stateLines("evolution", "relinked-bot", "connecting", true), "whatsapp_instance_state")
	for _, id := range []string{"lost-bot", "qr-bot", "banned-bot"} {
		if env.sim.Calls(simulator.Evolution, id) == 0 {
			t.Errorf("%s was not called: its state came from the database row", id)
		}
	}
	text := exposition(t, env.c)
	if got := reasonLine(text, "evolution", "banned-bot"); got != `whatsapp_instance_disconnect_reason{provider="evolution",name="banned-bot",reason="banned"} 1` {
		t.Errorf("banned-bot: %q, want reason banned", got)
	}
	for _, name := range []string{"lost-bot", "qr-bot"} {
		if got := reasonLine(text, "evolution", name); got != "" {
			t.Errorf("%s: %q, want no reason (its row does not say close)", name, got)
		}
	}
	if text := exposition(t, env.c); !strings.Contains(text, `whatsapp_api_request_duration_seconds_count{provider="evolution",name="lost-bot",method="connectionState"} 1`) {
		t.Errorf("lost-bot's calls are not its own connectionState:\n%s", text)
	}
}

// TestEvolution18ListingCarriesStates: version 1.8 lists its instances in
// memory with their live state: the listing is their state request.
func TestEvolution18ListingCarriesStates(t *testing.T) {
	t.Parallel()
	env := newAccountEnv(t)
	env.sim.SetEvolutionVersion(simulator.Evolution18)
	env.sim.Set(simulator.Evolution, "lost-bot", "t-lost", simulator.Behaviour{State: "close", Reason: 408})
	env.sim.Set(simulator.Evolution, "ok-bot", "t-ok", simulator.Behaviour{State: "open"})
	env.sim.SetAccount(simulator.Evolution, "global-key", simulator.Member{ID: "lost-bot"}, simulator.Member{ID: "ok-bot"})
	if err := env.load(t, "", env.account(simulator.Evolution, "server", "global-key")); err != nil {
		t.Fatal(err)
	}
	env.list(t)
	env.scrape(t, stateHeader+stateLines("evolution", "lost-bot", "close", true)+stateLines("evolution", "ok-bot", "open", true), "whatsapp_instance_state")
	for _, id := range []string{"lost-bot", "ok-bot"} {
		if n := env.sim.Calls(simulator.Evolution, id); n != 0 {
			t.Errorf("%s called %d times on its own", id, n)
		}
	}
}

// TestWachatListingPolledByDefault: nothing says Wachat's listing is live:
// its instances are called one by one unless the account opts in.
func TestWachatListingPolledByDefault(t *testing.T) {
	t.Parallel()
	env := newAccountEnv(t)
	env.sim.Set(simulator.Wachat, "t1_a", "agency-key", simulator.Behaviour{State: "connecting", Reason: 408})
	env.sim.SetAccount(simulator.Wachat, "agency-key", simulator.Member{ID: "t1_a"})
	if err := env.load(t, "", env.account(simulator.Wachat, "agency", "agency-key")); err != nil {
		t.Fatal(err)
	}
	env.list(t)
	// The listing says open (the simulator lags it as Evolution API 2's
	// database would); the call tells the truth.
	env.scrape(t, stateHeader+stateLines("wachat", "t1_a", "connecting", true), "whatsapp_instance_state")
	if env.sim.Calls(simulator.Wachat, "t1_a") != 1 {
		t.Errorf("t1_a called %d times, want once", env.sim.Calls(simulator.Wachat, "t1_a"))
	}
}

// TestListingThatShrinksIsConfirmed: a listing that loses most of its
// instances (Evolution API 1.8 lists none for seconds after a restart) is
// held until the next listing confirms it.
func TestListingThatShrinksIsConfirmed(t *testing.T) {
	t.Parallel()
	env := newAccountEnv(t)
	members := []simulator.Member{{ID: "t1_a"}, {ID: "t1_b"}, {ID: "t1_c"}}
	env.sim.SetAccount(simulator.Wachat, "agency-key", members...)
	if err := env.load(t, "", env.account(simulator.Wachat, "agency", "agency-key")); err != nil {
		t.Fatal(err)
	}
	env.list(t)
	all := []string{"agency/t1_a", "agency/t1_b", "agency/t1_c"}
	held := func() string {
		for _, line := range strings.Split(gatherAccountMetrics(t, env.c), "\n") {
			if strings.HasPrefix(line, "whatsapp_account_listings_held_total{") {
				return line[strings.LastIndex(line, " ")+1:]
			}
		}
		return ""
	}
	// Empty, then whole again: never believed.
	env.sim.SetAccount(simulator.Wachat, "agency-key")
	env.list(t)
	if got := env.watched(); !slices.Equal(got, all) {
		t.Errorf("after an empty listing: watched %v, want the last good list", got)
	}
	env.sim.SetAccount(simulator.Wachat, "agency-key", members...)
	env.list(t)
	if got := env.watched(); !slices.Equal(got, all) || held() != "1" {
		t.Errorf("after the whole listing again: watched %v, held %s; want all and 1", got, held())
	}
	// One of three left, twice: believed the second time.
	env.sim.SetAccount(simulator.Wachat, "agency-key", members[0])
	env.list(t)
	if got := env.watched(); !slices.Equal(got, all) {
		t.Errorf("after a listing of one: watched %v, want the last good list", got)
	}
	env.list(t)
	if got := env.watched(); !slices.Equal(got, all[:1]) || held() != "2" {
		t.Errorf("after it was confirmed: watched %v, held %s; want %v and 2", got, held(), all[:1])
	}
	// Losing one of three is no reason to wait.
	env.sim.SetAccount(simulator.Wachat, "agency-key", members...)
	env.list(t)
	env.sim.SetAccount(simulator.Wachat, "agency-key", members[:2]...)
	env.list(t)
	if got := env.watched(); !slices.Equal(got, all[:2]) || held() != "2" {
		t.Errorf("after losing one of three: watched %v, held %s; want %v and 2", got, held(), all[:2])
	}
}

// TestConfiguredInstanceNotTakenByAccount: an instance configured by hand
// that an account also lists is called as configured, under its own
// name; the account skips it.
func TestConfiguredInstanceNotTakenByAccount(t *testing.T) {
	t.Parallel()
	env := newAccountEnv(t)
	env.sim.SetEvolutionVersion(simulator.Evolution18) // a listing that carries states
	env.sim.Set(simulator.Evolution, "sales-bot", "t-sales", simulator.Behaviour{State: "open"})
	env.sim.Set(simulator.Evolution, "other-bot", "t-other", simulator.Behaviour{State: "open"})
	env.sim.SetAccount(simulator.Evolution, "global-key", simulator.Member{ID: "sales-bot"}, simulator.Member{ID: "other-bot"})
	own := simulator.ProviderOf(simulator.Evolution).Config(env.srv.URL, "my-sales", "sales-bot", "t-sales")
	if err := env.load(t, own, env.account(simulator.Evolution, "server", "global-key")); err != nil {
		t.Fatal(err)
	}
	env.list(t)
	if got := env.watched(); !slices.Equal(got, []string{"/my-sales", "server/other-bot"}) {
		t.Fatalf("watched %v", got)
	}
	before := env.sim.Calls(simulator.Evolution, "sales-bot")
	env.scrape(t, upHeader+upLine("evolution", "my-sales", true)+upLine("evolution", "other-bot", true), "whatsapp_up")
	if env.sim.Calls(simulator.Evolution, "sales-bot") != before+1 {
		t.Errorf("the configured instance was not called")
	}
	if text := gatherAccountMetrics(t, env.c); !strings.Contains(text, `whatsapp_account_skipped_instances{account="server",provider="evolution",reason="configured"} 1`) {
		t.Errorf("the listed copy is not counted as configured:\n%s", text)
	}
}
