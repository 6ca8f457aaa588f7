package simulator

import (
	"fmt"
	"strings"
	"time"
)

type demoInstance struct {
	provider, name, id, secret string
	timeout                    time.Duration
	steps                      []Step
}

func state(s string, latency, d time.Duration) Step {
	return Step{Behaviour: Behaviour{State: s, Latency: latency}, For: d}
}

func failing(f Fault, latency, d time.Duration) Step {
	return Step{Behaviour: Behaviour{Fault: f, Latency: latency, RetryAfter: 5 * time.Second}, For: d}
}

// demoInstances go through every state of their provider, and a few
// failures, in about three minutes.
var demoInstances = []demoInstance{
	{GreenAPI, "demo-shop", "1101000001", "demo-token-shop", 0, []Step{
		state("authorized", 80*time.Millisecond, 150*time.Second),
		state("starting", 80*time.Millisecond, 30*time.Second),
	}},
	{GreenAPI, "demo-support", "1101000002", "demo-token-support", 0, []Step{
		state("authorized", 120*time.Millisecond, 60*time.Second),
		state("sleepMode", 120*time.Millisecond, 60*time.Second),
		state("authorized", 120*time.Millisecond, 60*time.Second),
	}},
	{GreenAPI, "demo-marketing", "1101000003", "demo-token-marketing", 0, []Step{
		state("authorized", 60*time.Millisecond, 40*time.Second),
		state("yellowCard", 60*time.Millisecond, 80*time.Second),
		state("starting", 60*time.Millisecond, 20*time.Second),
		state("authorized", 60*time.Millisecond, 40*time.Second),
	}},
	{GreenAPI, "demo-sales", "1101000004", "demo-token-sales", 0, []Step{
		state("notAuthorized", 100*time.Millisecond, 60*time.Second),
		state("authorized", 100*time.Millisecond, 90*time.Second),
		state("blocked", 100*time.Millisecond, 30*time.Second),
	}},
	{GreenAPI, "demo-flaky", "1101000005", "demo-token-flaky", 2 * time.Second, []Step{
		state("authorized", 300*time.Millisecond, 40*time.Second),
		failing(FaultRateLimited, 50*time.Millisecond, 20*time.Second),
		failing(FaultServerError, 50*time.Millisecond, 20*time.Second),
		state("authorized", 300*time.Millisecond, 40*time.Second),
		failing(FaultHang, 0, 20*time.Second),
		failing(FaultBadGateway, 50*time.Millisecond, 20*time.Second),
	}},
	// Wachat and Evolution API: connected most of the time, and through
	// every state within a few minutes.
	{Wachat, "demo-wachat-store", "t1_demo_store", "demo-key-wachat", 0, []Step{
		state("open", 90*time.Millisecond, 90*time.Second),
		state("connecting", 90*time.Millisecond, 30*time.Second),
		state("close", 90*time.Millisecond, 60*time.Second),
	}},
	{Evolution, "demo-evolution", "demo-evo", "demo-key-evolution", 0, []Step{
		state("open", 40*time.Millisecond, 60*time.Second),
		state("close", 40*time.Millisecond, 40*time.Second),
		state("connecting", 40*time.Millisecond, 20*time.Second),
		state(NotLoaded, 40*time.Millisecond, 20*time.Second),
		state("open", 40*time.Millisecond, 40*time.Second),
	}},
}

// Demo returns a simulator holding the demo instances.
func Demo() *Simulator {
	s := New()
	for _, d := range demoInstances {
		s.Schedule(d.provider, d.id, d.secret, d.steps...)
	}
	return s
}

// DemoConfig is the exporter configuration for the demo instances of a
// simulator served at baseURL.
func DemoConfig(baseURL string) string {
	var b strings.Builder
	b.WriteString("instances:\n")
	for _, d := range demoInstances {
		fmt.Fprintf(&b, "  - name: %s\n    provider: %s\n", d.name, d.provider)
		switch d.provider {
		case GreenAPI:
			fmt.Fprintf(&b, "    api_url: %s\n    id_instance: %q\n    api_token: %s\n", baseURL, d.id, d.secret)
		case Wachat:
			fmt.Fprintf(&b, "    api_url: %s\n    instance_name: %s\n    api_key: %s\n", baseURL+WachatPath, d.id, d.secret)
		case Evolution:
			fmt.Fprintf(&b, "    api_url: %s\n    instance_name: %s\n    api_key: %s\n", baseURL+EvolutionPath, d.id, d.secret)
		}
		if d.timeout > 0 {
			fmt.Fprintf(&b, "    timeout: %s\n", d.timeout)
		}
	}
	return b.String()
}
