package collector

import (
	"context"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// StateUnknown is 1 when no state could be fetched or the provider sent a
// value the exporter does not know.
const StateUnknown = "unknown"

// Client fetches the state of one instance.
type Client interface {
	// State makes one call and returns the raw state the provider reported,
	// StateUnknown when the call worked but carried no state, or an *Error.
	State(ctx context.Context) (string, error)
}

// Provider describes one WhatsApp API provider.
type Provider struct {
	Name string
	// States are every state the provider documents, in display order.
	States []string
	// Working is the state in which an instance can send.
	Working string
	// DisconnectReasons are the named reasons of an instance's last
	// disconnection the provider can tell (the values of the reason label
	// of whatsapp_instance_disconnect_reason), DisconnectReason names a
	// code of the provider's; both nil when it tells none.
	DisconnectReasons []string
	DisconnectReason  func(code int) string
	// Methods are the method label values its client calls.
	Methods []string
	// Config describes its configuration to the config package.
	Config config.ProviderInfo
	// NewClient builds a client for a resolved Spec of this provider.
	NewClient func(spec config.Spec, api *API) (Client, error)
	// Account says how the provider lists an account's instances; nil
	// when it cannot.
	Account *AccountKind
	// Webhook says how the provider pushes state changes; nil when the
	// exporter does not receive them.
	Webhook *Webhook
	// Health is set when the provider's answers tell an instance's
	// health (health.go): its clients are healthClients, its listings
	// fill Listed.Health, and the health families are written for its
	// instances.
	Health bool
	// Handler serves the provider's own notification paths,
	// /webhook/<name> and below, when its notifications are not one
	// instance's state (Meta's Cloud API tells of a WABA and its numbers,
	// signed for an app); nil for a Webhook's or none.
	Handler func(c *Collector, w http.ResponseWriter, r *http.Request)
	// Metrics are the provider's own metrics beyond the instances' and
	// the accounts' (Meta: the request budgets of single numbers),
	// collected from the collector's current instances; nil for none.
	Metrics func(c *Collector) prometheus.Collector
	// QueueMethod is the method label of the outgoing queue call, when
	// the provider's clients can read it (queue.go).
	QueueMethod string

	// methods are Methods with their labels. stateLabels are the state
	// label pairs of States and then of StateUnknown, escaped, for the
	// exposition; disconnectLabels the reason label pairs of
	// DisconnectReasons.
	methods          *methodSet
	stateLabels      []string
	disconnectLabels map[string]string
}

// Loader implements config.Provider.
func (p *Provider) Loader() *config.ProviderInfo { return &p.Config }

// register makes a provider known to the loader and the collector; each
// provider's file calls it from its init.
func register(p *Provider) {
	p.init()
	config.Register(p)
}

// init makes the label pairs and method set of p.
func (p *Provider) init() {
	for _, st := range append(slices.Clone(p.States), StateUnknown) {
		p.stateLabels = append(p.stateLabels, `state="`+escapeLabel(st)+`"`)
	}
	p.methods = newMethodSet(p.Methods...)
	p.disconnectLabels = map[string]string{}
	for _, r := range p.DisconnectReasons {
		p.disconnectLabels[r] = `reason="` + escapeLabel(r) + `"`
	}
	p.Config.Name = p.Name
	if p.Account != nil {
		p.Config.Account = &p.Account.Config
	}
}

// lookup returns the registered provider of that name.
func lookup(name string) (*Provider, bool) {
	cp, ok := config.Lookup(name)
	if !ok {
		return nil, false
	}
	p, ok := cp.(*Provider)
	return p, ok
}

// registered are the registered providers, by name.
func registered() []*Provider {
	var ps []*Provider
	for _, name := range config.Providers() {
		if p, ok := lookup(name); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// ProviderStates returns the states of a provider, sorted, for tests and
// tooling; nil for an unknown provider.
func ProviderStates(name string) []string {
	p, ok := lookup(name)
	if !ok {
		return nil
	}
	s := slices.Clone(p.States)
	slices.Sort(s)
	return s
}
