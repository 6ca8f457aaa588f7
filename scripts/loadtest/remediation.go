package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/amwebhook"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// remediationToken is Alertmanager's bearer token in the scenario.
const remediationToken = secretMarker + "alertmanager-token-0123"

// runRemediationStorm: every instance of the fleet is stuck in starting
// and Alertmanager asks to reboot them all at once, then keeps resending
// (five senders, a message a second each: two Alertmanagers and their
// repeats), while an attacker floods the receiver with forged tokens,
// unknown names and endless bodies. The brake must hold: at most
// max(min_actions, max_share × instances) reboots in all, none twice.
func runRemediationStorm(e *env) error {
	u, err := newUpstream(e.instances, e.latency)
	if err != nil {
		return err
	}
	defer u.stop()
	for i := range e.instances {
		// GREEN-API's starting, which its reboot mends (the simulator's
		// RebootBehaviour).
		u.sim.Set(simulator.GreenAPI, instanceID(i), instanceToken(i), simulator.Behaviour{State: "starting", Latency: e.latency})
		u.sim.SetReboot(simulator.GreenAPI, instanceID(i), simulator.RebootBehaviour{After: []simulator.Step{{Behaviour: simulator.Behaviour{State: "authorized", Latency: e.latency}, For: time.Hour}}})
	}
	path := fmt.Sprintf("%s/config-remediation-%d.yml", e.dir, e.instances)
	if _, err := u.writeConfig(path, configSpec{}); err != nil {
		return err
	}
	instances, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sections := fmt.Sprintf("alertmanager: {bearer_token: %s}\nremediation: {window: 30m, recheck_after: 10s}\n", remediationToken)
	if err := os.WriteFile(path, append([]byte(sections), instances...), 0o600); err != nil {
		return err
	}
	amAddr, err := freeAddr()
	if err != nil {
		return err
	}
	saved := e.exporterArgs
	e.exporterArgs = strings.TrimSpace(saved + " --alertmanager.listen-address=" + amAddr)
	x, err := e.startExporter(path)
	e.exporterArgs = saved
	if err != nil {
		return err
	}
	defer e.finish(x)
	url := "http://" + amAddr + "/alertmanager/remediate"
	limit := max(3, e.instances/10)
	e.header("%d GREEN-API instances in starting; 5 senders ask to reboot them all, once a second each, for %s, while attackers flood the receiver; the brake allows %d",
		e.instances, e.duration, limit)

	var alerts []amwebhook.Alert
	for i := range e.instances {
		alerts = append(alerts, amwebhook.Alert{Status: amwebhook.Firing, StartsAt: time.Now(),
			Labels: map[string]string{"alertname": "WhatsAppInstanceStartingRemediate", "provider": "greenapi", "name": instanceName(i), "remediation": "reboot"}})
	}
	all, _ := json.Marshal(amwebhook.Message{Version: amwebhook.Version, Status: amwebhook.Firing, Receiver: "whatsapp-exporter-remediation", Alerts: alerts})
	var forgedAlerts []amwebhook.Alert
	for i := range 2000 {
		forgedAlerts = append(forgedAlerts, amwebhook.Alert{Status: amwebhook.Firing, Labels: map[string]string{"provider": "greenapi", "name": fmt.Sprintf("forged-%d-%s", i, strings.Repeat("x", 200)), "remediation": "reboot"}})
	}
	forged, _ := json.Marshal(amwebhook.Message{Version: amwebhook.Version, Status: amwebhook.Firing, Alerts: forgedAlerts})

	client := &http.Client{Timeout: 4 * time.Minute}
	post := func(auth string, body io.Reader) (int, time.Duration, error) {
		req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, url, body)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, time.Since(start), err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, time.Since(start), nil
	}

	var (
		mu                    sync.Mutex
		statuses              = map[string]int{}
		slowest, firstAnswer  time.Duration
		sent, attacks, errors atomic.Int64
	)
	record := func(kind string, code int, took time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			statuses[kind+" transport error"]++
			return
		}
		statuses[fmt.Sprintf("%s HTTP %d", kind, code)]++
		if kind == "genuine" {
			slowest = max(slowest, took)
			if firstAnswer == 0 {
				firstAnswer = took
			}
		}
	}
	before := x.proc()
	stopSampling := sample(x, 500*time.Millisecond)
	end := time.Now().Add(e.duration)
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			for e.running(x, end) {
				// A 503 (every slot taken, by attackers holding the
				// token) is retried, as Alertmanager retries it; the
				// message fails when 10 tries in a row do not pass.
				for try := 0; ; try++ {
					code, took, err := post(remediationToken, bytes.NewReader(all))
					sent.Add(1)
					record("genuine", code, took, err)
					if err == nil && code == http.StatusServiceUnavailable && try < 10 {
						continue
					}
					if err != nil || code >= 500 {
						errors.Add(1)
					}
					break
				}
				e.sleepUntil(time.Now().Add(time.Second))
			}
		})
	}
	for a := range 20 {
		wg.Go(func() {
			for e.running(x, end) {
				var code int
				var took time.Duration
				var err error
				switch a % 4 {
				case 0:
					code, took, err = post(remediationToken+"x", bytes.NewReader(all))
				case 1:
					code, took, err = post(remediationToken, bytes.NewReader(forged))
				case 2:
					code, took, err = post(remediationToken, io.LimitReader(endlessSpaces{}, amwebhook.MaxBytes+1))
				default:
					code, took, err = post("", strings.NewReader(`{"version":"4"`))
				}
				attacks.Add(1)
				record("attack", code, took, err)
			}
		})
	}
	wg.Wait()
	pk := stopSampling()

	var reboots, twice int64
	for i := range e.instances {
		n := u.sim.Reboots(simulator.GreenAPI, instanceID(i))
		reboots += n
		if n > 1 {
			twice++
		}
	}
	t := newTable()
	t.row("genuine messages", "%d of %d alerts each; first answered in %s, slowest %s", sent.Load(), e.instances, dur(firstAnswer), dur(slowest))
	t.row("attack requests", "%d", attacks.Load())
	mu.Lock()
	for k, v := range statuses {
		t.row("  "+k, "%d", v)
	}
	mu.Unlock()
	t.row("reboots at the simulator", "%d (brake allows %d); instances rebooted twice: %d", reboots, limit, twice)
	procRows(t, before, x.proc(), pk, -1)
	t.flush()
	if reboots > int64(limit) {
		e.fail("%d reboots, more than the brake's %d", reboots, limit)
	}
	if twice > 0 {
		e.fail("%d instances rebooted more than once within the window", twice)
	}
	if errors.Load() > 0 {
		e.fail("%d genuine messages not taken after 10 tries", errors.Load())
	}
	return nil
}

// endlessSpaces is a body of spaces that never ends.
type endlessSpaces struct{}

func (endlessSpaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}
