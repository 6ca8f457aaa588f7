package simulator

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Meta's --demo: two single numbers that go through every status within
// four minutes, one of them blocked for a while by its WABA's payment
// error (141006), and a WABA whose numbers' quality and status change,
// whose membership changes, and whose request budget, counted over five
// minutes instead of an hour, climbs past 75 % as the exporter polls it.
// The demo's receiver gets the WABA's notifications, signed with the
// demo's app secret.

// The demo's credentials and IDs. The single numbers' WABA is the one of
// Meta's Health Status example.
const (
	demoMetaAppSecret   = "demo-meta-app-secret"
	demoMetaVerifyToken = "demo-meta-verify-token"
	demoMetaWABAKey     = "demo-token-meta-waba"
	demoMetaShopWABA    = "102290129340398"
)

func metaStep(st Step, n MetaNumber) Step {
	st.Meta = &n
	return st
}

// metaLatency is the demo numbers' latency: Graph answers in about a
// tenth of a second.
const metaLatency = 80 * time.Millisecond

func metaState(status string, d time.Duration, n MetaNumber) Step {
	return metaStep(state(status, metaLatency, d), n)
}

var demoMetaExtra = []string{
	fmt.Sprintf("app_secret: %q", demoMetaAppSecret),
	fmt.Sprintf("webhook_verify_token: %q", demoMetaVerifyToken),
}

var metaDemo = []DemoInstance{
	// A shop's number: its quality falls and recovers; its WABA's
	// payment method fails for a while; Meta's SIP example (the
	// top-level value BLOCKED by calling alone) comes last.
	{Name: "demo-meta-shop", ID: "106540352242922", Secret: "demo-token-meta-shop",
		Extra: append([]string{fmt.Sprintf("waba_id: %q", demoMetaShopWABA)}, demoMetaExtra...),
		Steps: []Step{
			metaState("CONNECTED", 60*time.Second, MetaNumber{WABAID: demoMetaShopWABA, Quality: "GREEN"}),
			metaState("CONNECTED", 30*time.Second, MetaNumber{WABAID: demoMetaShopWABA, Quality: "YELLOW"}),
			metaState("FLAGGED", 30*time.Second, MetaNumber{WABAID: demoMetaShopWABA, Quality: "RED"}),
			metaState("RESTRICTED", 30*time.Second, MetaNumber{WABAID: demoMetaShopWABA, Quality: "YELLOW"}),
			metaState("CONNECTED", 50*time.Second, MetaNumber{WABAID: demoMetaShopWABA, Quality: "GREEN",
				Health: MetaHealth{WABA: MetaEntity{CanSend: "BLOCKED", Errors: []MetaHealthError{MetaPaymentError}}}}),
			metaState("CONNECTED", 40*time.Second, MetaNumber{WABAID: demoMetaShopWABA, Quality: "GREEN", Throughput: "HIGH",
				Health: MetaHealth{CanSend: "BLOCKED", Phone: MetaEntity{SIP: "BLOCKED"}, App: MetaEntity{SIP: "AVAILABLE"}}}),
		}},
	// A number being onboarded, then through the rarer statuses, and
	// once over its WABA's budget.
	{Name: "demo-meta-onboarding", ID: "107655329012345", Secret: "demo-token-meta-onboarding", Steps: []Step{
		metaState("PENDING", 20*time.Second, MetaNumber{CodeVerification: "NOT_VERIFIED"}),
		metaState("UNVERIFIED", 20*time.Second, MetaNumber{Quality: "NA", CodeVerification: "EXPIRED", NameStatus: "PENDING_REVIEW"}),
		metaState("CONNECTED", 20*time.Second, MetaNumber{Quality: "NA", Limit: "TIER_250", NameStatus: "PENDING_REVIEW",
			Health: MetaHealth{Phone: MetaEntity{CanSend: "LIMITED", Info: []string{MetaDisplayNamePending}}}}),
		metaState("RATE_LIMITED", 20*time.Second, MetaNumber{Limit: "TIER_250"}),
		metaState("DISCONNECTED", 20*time.Second, MetaNumber{Quality: "UNKNOWN"}),
		failing(FaultWABARateLimited, metaLatency, 20*time.Second),
		metaState("MIGRATED", 20*time.Second, MetaNumber{}),
		metaState("DELETED", 20*time.Second, MetaNumber{PlatformType: "NOT_APPLICABLE"}),
		metaState("BANNED", 20*time.Second, MetaNumber{Quality: "RED",
			Health: MetaHealth{WABA: MetaEntity{CanSend: "BLOCKED", Errors: []MetaHealthError{MetaWABABanned}}}}),
		metaState("UNKNOWN", 20*time.Second, MetaNumber{}),
	}},
}

// The demo WABA's numbers.
var metaDemoAccount = DemoAccount{
	Name: "demo-meta-waba", Key: demoMetaWABAKey, Extra: append([]string{`name_prefix: "demo-waba-"`}, demoMetaExtra...),
	Instances: []DemoInstance{
		{ID: "108000000000001", Secret: demoMetaWABAKey, Steps: []Step{
			metaState("CONNECTED", 90*time.Second, MetaNumber{Quality: "GREEN", Limit: "TIER_10K"}),
			metaState("CONNECTED", 60*time.Second, MetaNumber{Quality: "YELLOW", Limit: "TIER_10K"}),
			metaState("FLAGGED", 60*time.Second, MetaNumber{Quality: "RED", Limit: "TIER_10K"}),
			metaState("CONNECTED", 30*time.Second, MetaNumber{Quality: "YELLOW", Limit: "TIER_2K"}),
		}},
		{ID: "108000000000002", Secret: demoMetaWABAKey, Steps: []Step{
			metaState("CONNECTED", 120*time.Second, MetaNumber{Quality: "GREEN", Limit: "TIER_UNLIMITED", Throughput: "HIGH"}),
			metaState("CONNECTED", 120*time.Second, MetaNumber{Quality: "YELLOW", Limit: "TIER_UNLIMITED", Throughput: "HIGH"}),
		}},
		{ID: "108000000000003", Secret: demoMetaWABAKey, Steps: []Step{
			metaState("RESTRICTED", 60*time.Second, MetaNumber{Quality: "RED"}),
			metaState("CONNECTED", 60*time.Second, MetaNumber{Quality: "YELLOW"}),
		}},
		{ID: "108000000000004", Secret: demoMetaWABAKey, Steps: []Step{
			metaState("PENDING", 60*time.Second, MetaNumber{}),
			metaState("CONNECTED", 60*time.Second, MetaNumber{Quality: "NA", Limit: "TIER_250", NameStatus: "PENDING_REVIEW",
				Health: MetaHealth{Phone: MetaEntity{CanSend: "LIMITED", Info: []string{MetaDisplayNamePending}}}}),
		}},
	},
	// A number joins after a minute; another leaves (migrated to
	// another WABA) after two.
	Steps: []AccountStep{
		{For: 60 * time.Second, Members: []Member{{ID: "108000000000001"}, {ID: "108000000000002"}, {ID: "108000000000003"}}},
		{For: 60 * time.Second, Members: []Member{{ID: "108000000000001"}, {ID: "108000000000002"}, {ID: "108000000000003"}, {ID: "108000000000004"}}},
		{For: 60 * time.Second, Members: []Member{{ID: "108000000000001"}, {ID: "108000000000002"}, {ID: "108000000000004"}}},
	},
}

// metaDemoBudget is the demo WABA's budget: a listing and its WABA's
// node once a minute are 10 calls in five minutes, 83 % of it.
// The app's (X-App-Usage) is small enough that its usage shows
// climbing within the hour.
const (
	metaDemoBudget    = 12
	metaDemoWindow    = 5 * time.Minute
	metaDemoAppBudget = 600
)

// metaDemoSetup gives the demo WABA its node: its business not verified
// yet (LIMITED, 141010), and a budget the exporter's polls near.
func metaDemoSetup(s *Simulator) {
	s.SetMetaWABA(demoMetaWABAKey, MetaWABA{Name: "Lucky Shrub Demo", Budget: metaDemoBudget, Window: metaDemoWindow,
		Health: MetaHealth{Business: MetaEntity{CanSend: "LIMITED", Errors: []MetaHealthError{MetaBusinessUnverified}}}})
	s.SetMetaAppBudget(metaDemoAppBudget)
	s.meta.mu.Lock()
	s.meta.demoEvery = metaDemoEvery
	s.meta.mu.Unlock()
}

// metaDemoEvery is how often --demo sends the demo WABA a notification.
const metaDemoEvery = 30 * time.Second

// metaDemoChanges are the notifications --demo sends, in turn, at now.
func metaDemoChanges(now time.Time) []struct {
	waba   string
	change MetaChange
} {
	waba := MetaWABAID(demoMetaWABAKey)
	main := metaDisplay("108000000000001")
	return []struct {
		waba   string
		change MetaChange
	}{
		{waba, MetaQualityChange(main, "FLAGGED", "TIER_10K")},
		{waba, MetaRestrictionChange(now.Add(10*time.Minute), "RESTRICTED_BIZ_INITIATED_MESSAGING")},
		{waba, MetaReviewChange("APPROVED")},
		{waba, MetaCapabilityChange("TIER_10K", 10000)},
		{demoMetaShopWABA, MetaBanChange("SCHEDULE_FOR_DISABLE", now.Format("January 2, 2006"))},
		{demoMetaShopWABA, MetaBanChange("REINSTATE", now.Format("January 2, 2006"))},
		{waba, MetaQualityChange(main, "UNFLAGGED", "TIER_10K")},
	}
}

// metaDemoPush sends the demo's notifications to the receiver at
// baseURL, one every metaDemoEvery, until ctx ends, after the
// subscription handshake Meta makes when the webhook is set.
func metaDemoPush(s *Simulator, ctx context.Context, baseURL string, report func(error)) {
	s.meta.mu.Lock()
	every := s.meta.demoEvery
	s.meta.mu.Unlock()
	if every <= 0 {
		return // not the demo
	}
	// A connection per delivery, as the demo's other notifications
	// (a kept-alive one would hold the receiver's per-client slot).
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := baseURL + "/webhook/" + Meta
	fail := func(err error) {
		if report != nil && ctx.Err() == nil {
			report(err)
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for k := -1; ; k++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if k < 0 {
			// The subscription's handshake first; Meta does not
			// deliver to a webhook that fails it, nor does the demo.
			status, _, err := MetaVerify(ctx, client, url, demoMetaVerifyToken, "demo-challenge")
			if err != nil || status != http.StatusOK {
				fail(fmt.Errorf("meta webhook verification: HTTP %d %v; the demo sends Meta no notifications", status, err))
				return
			}
			continue
		}
		changes := metaDemoChanges(time.Now())
		c := changes[k%len(changes)]
		status, err := SendMetaWebhook(ctx, client, url, demoMetaAppSecret, c.waba, c.change)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("meta notification %s: HTTP %d", c.change.Field, status)
		}
		if err != nil {
			fail(err)
		}
	}
}
