package simulator

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"
)

// Provider describes, once, how the simulator imitates one provider and
// how the exporter is configured for it. Tests, benchmarks and --demo are
// driven from these descriptions: adding a provider to the simulator is
// adding a file that registers one.
type Provider struct {
	// Name is the provider's name in the exporter's configuration.
	Name string
	// Path is where the simulator serves the provider's API: the api_url
	// of its instances, relative to the simulator's URL.
	Path string
	// Aliases are other paths its API is served under too (Meta's older
	// Graph API version).
	Aliases []string
	// States are the states the provider documents.
	States []string
	// Specials are answers particular to the provider that report a state
	// in another way, with what the exporter reads from them.
	Specials []Special
	// Undocumented is what the exporter reads from the simulator's answer
	// for a state the provider does not document; empty for unknown. A
	// provider whose answers carry no state text (the whatsmeow family's
	// two booleans) cannot send such a value: its simulator answers with
	// one of its states.
	Undocumented string
	// Faults are the failures only this provider produces, on top of
	// CommonFaults.
	Faults []Fault
	// Instance writes an instance in the exporter's YAML: the fields of a
	// flow mapping, without braces.
	Instance func(name, apiURL, id, secret string) string
	// Demo are the provider's instances in --demo.
	Demo []DemoInstance
	// Account describes the provider's accounts, when it can list them.
	Account *AccountDescription
	// Notification writes the provider's state notification; nil when
	// it sends none the exporter receives.
	Notification NotificationFunc
	// deliverer is how the provider delivers its notifications, on the
	// simulator's version of it.
	deliverer func(*Simulator) deliverer
	// demoSetup prepares what --demo needs beyond its instances and
	// account (Meta's WABA); pusher sends, in --demo, the notifications
	// that are not one instance's state (Meta's, about WABAs). Both may
	// be nil.
	demoSetup func(*Simulator)
	pusher    func(s *Simulator, ctx context.Context, baseURL string, report func(error))

	routes []route
}

// AccountDescription is how a provider's accounts are simulated and
// configured.
type AccountDescription struct {
	// Config writes an account in the exporter's YAML: the fields of a
	// flow mapping, without braces.
	Config func(name, apiURL, key string) string
	// Demo is the provider's account in --demo.
	Demo DemoAccount
	// SharedKey says the instances found answer to the account's key
	// (Wachat, GOWA), not to their own tokens.
	SharedKey bool
}

// DemoAccount is an account of --demo: its instances come and go.
type DemoAccount struct {
	Name, Key string
	// Instances are the simulator instances its members refer to.
	Instances []DemoInstance
	Steps     []AccountStep
	// Extra are more fields of its configuration.
	Extra []string
}

// Special is an answer that reports a state in a provider's own way.
type Special struct {
	// State, given as a Behaviour's State, makes the simulator send the
	// answer.
	State string
	// Reads is the state the exporter reads from it, and Up whether the
	// call counts as working.
	Reads string
	Up    bool
}

// DemoInstance is an instance of --demo.
type DemoInstance struct {
	Name, ID, Secret string
	// Timeout is set in the configuration when not zero.
	Timeout time.Duration
	Steps   []Step
	// Webhook, when set, makes the instance push its state changes in
	// --demo with a notification receiver.
	Webhook WebhookAuth
	// MessagesQueue makes the exporter read the instance's outgoing
	// queue (GREEN-API).
	MessagesQueue bool
	// Reboot is how it answers a reboot (GREEN-API); nil for the
	// default: done, and the schedule goes on.
	Reboot *RebootBehaviour
	// Extra are more fields of its configuration.
	Extra []string
}

// route is one endpoint of a provider: a method and a path pattern below
// the provider's Path.
type route struct {
	method, path string
	handle       func(*Simulator, http.ResponseWriter, *http.Request)
}

var providers = map[string]*Provider{}

// register adds a provider's description; each provider file calls it
// from init.
func register(p *Provider, routes ...route) {
	if _, dup := providers[p.Name]; dup {
		panic("simulator: provider registered twice: " + p.Name)
	}
	p.routes = routes
	providers[p.Name] = p
}

// Providers lists the simulated providers by name.
func Providers() []*Provider {
	ps := make([]*Provider, 0, len(providers))
	for _, p := range providers {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	return ps
}

// ProviderOf returns a provider's description; it panics for a provider
// the simulator does not know, which is a test's mistake.
func ProviderOf(name string) *Provider {
	p, ok := providers[name]
	if !ok {
		panic(fmt.Sprintf("simulator: no provider %q", name))
	}
	return p
}

// AllFaults are every failure the provider's simulation produces.
func (p *Provider) AllFaults() []Fault {
	return append(slices.Clone(CommonFaults), p.Faults...)
}

// Reads says what the exporter reports for an instance behaving as b:
// the state (or "unknown") and whether the call counts as working. A
// special answer comes first: a documented state may be one that the
// provider's state call reports as another (the whatsmeow family's
// temporary_ban, which only a notification tells).
func (p *Provider) Reads(b Behaviour) (state string, up bool) {
	if b.Fault != FaultNone {
		return "unknown", false
	}
	for _, s := range p.Specials {
		if s.State == b.State {
			return s.Reads, s.Up
		}
	}
	switch {
	case slices.Contains(p.States, b.State):
		return b.State, true
	case p.Undocumented != "":
		return p.Undocumented, true
	}
	return "unknown", true // a value the provider does not document
}

// AccountConfig is an account's YAML list item for the exporter, with
// extra fields appended.
func (p *Provider) AccountConfig(simURL, name, key string, extra ...string) string {
	fields := p.Account.Config(name, simURL+p.Path, key)
	for _, e := range extra {
		fields += ", " + e
	}
	return "  - {" + fields + "}\n"
}

// Config is an instance's YAML list item for the exporter, with extra
// fields (such as "timeout: 2s") appended.
func (p *Provider) Config(simURL, name, id, secret string, extra ...string) string {
	fields := p.Instance(name, simURL+p.Path, id, secret)
	for _, e := range extra {
		fields += ", " + e
	}
	return "  - {" + fields + "}\n"
}
