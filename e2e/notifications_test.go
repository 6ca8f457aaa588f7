package e2e

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/server"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// TestNotificationAlertDelay follows an instance that turns blocked to
// Alertmanager twice, with the exporter polling every 20 s and Prometheus
// scraping every second: without notifications the change waits for the
// next poll; with them, the simulator pushes it and the next scrape calls
// the instance, which confirms it. Both delays are logged.
func TestNotificationAlertDelay(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Prometheus and Alertmanager")
	}
	const pollEvery = 20 * time.Second
	for _, notifications := range []bool{false, true} {
		t.Run(fmt.Sprintf("notifications=%v", notifications), func(t *testing.T) {
			t.Parallel()
			sim := simulator.New()
			sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "authorized"})
			simURL := exportertest.StartSimulator(t, sim)
			cfg := "instances:\n" + simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "e2e-shop", "1101000001", "e2e-token", `webhook_token: "e2e-webhook-token"`)
			e := exportertest.StartWith(t, exportertest.Inline(cfg), collector.Options{Concurrency: 4, MinInterval: pollEvery, Notifications: notifications})
			if notifications {
				sim.SetWebhook(simulator.GreenAPI, "1101000001", simulator.WebhookAuth{Token: "e2e-webhook-token"})
				receiver := httptest.NewServer(e.Receiver(server.DefaultReceiverTimeouts).Handler)
				t.Cleanup(receiver.Close)
				exportertest.PushNotifications(t, sim, receiver.URL, func(err error) { t.Errorf("notification: %v", err) })
			}
			pipe := startAlertPipeline(t, e.URL)
			prom := pipe.prom

			// Change the state just after a poll, the worst case
			// for polling alone.
			prom.waitQuery(t, 30*time.Second, `whatsapp_instance_state{state="authorized"} == 1`, func(s []sample) bool { return len(s) == 1 })
			calls := sim.Calls(simulator.GreenAPI, "1101000001")
			for deadline := time.Now().Add(2 * pollEvery); sim.Calls(simulator.GreenAPI, "1101000001") == calls; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("no poll")
				}
			}
			polls := sim.Calls(simulator.GreenAPI, "1101000001")
			changed := time.Now()
			sim.Set(simulator.GreenAPI, "1101000001", "e2e-token", simulator.Behaviour{State: "blocked"})

			prom.waitQuery(t, 2*pollEvery, `whatsapp_instance_state{state="blocked"} == 1`, func(s []sample) bool { return len(s) == 1 })
			seen := time.Since(changed)
			pollsBeforeSeen := sim.Calls(simulator.GreenAPI, "1101000001") - polls
			a := pipe.wait(t, 90*time.Second, "firing WhatsAppInstanceBlocked", alert("WhatsAppInstanceBlocked", "firing", ""))
			fired := time.Since(changed)
			t.Logf("notifications=%v: blocked seen by Prometheus after %.1fs, alert at Alertmanager's receiver after %.1fs (polls every %s, scrapes every 1s, for: 6s)",
				notifications, seen.Seconds(), fired.Seconds(), pollEvery)
			if a.Labels["state"] != "blocked" || a.Labels["name"] != "e2e-shop" {
				t.Errorf("alert labels %v", a.Labels)
			}
			if notifications {
				// The notification showed at the next scrape, long
				// before the schedule's next poll (the state changed
				// just after a poll, and the next is pollEvery later);
				// that scrape may have called the instance to confirm
				// it, unless it came within a second of the last call.
				if pollsBeforeSeen > 1 || seen >= pollEvery {
					t.Errorf("Prometheus saw the state after %d polls and %v; want it at the scrape after the notification, well before the next scheduled poll (%v)", pollsBeforeSeen, seen, pollEvery)
				}
				s, err := prom.query(`whatsapp_webhook_notifications_total{name="e2e-shop",outcome="accepted"} == 1`)
				if err != nil || len(s) != 1 {
					t.Errorf("accepted notifications: %v %v, want 1", s, err)
				}
			} else if pollsBeforeSeen == 0 {
				t.Errorf("Prometheus saw the state without a poll, and notifications are off")
			}
		})
	}
}
