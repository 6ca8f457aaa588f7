package collector

import (
	promcfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// The configuration of Meta's WhatsApp Cloud API (provider: meta): a
// WhatsApp Business Account (WABA) as an account, whose listing finds
// its phone numbers, or single phone numbers as instances. Pass-through
// providers (360dialog) are the same client with another api_url and
// auth_header.

// metaDefaultURL is the Graph API, at the version the exporter was
// written against: a version is pinned, as Meta asks, and api_url may
// pin another.
const metaDefaultURL = "https://graph.facebook.com/v23.0"

// metaShared are the settings a WABA and a single number share.
type metaShared struct {
	// AuthHeader is the header the token goes in: empty for
	// "Authorization: Bearer <token>" (Graph), or a header name whose
	// value is the token as it is (360dialog's D360-API-KEY).
	AuthHeader string `yaml:"auth_header,omitempty"`
	// The app's secret, which signs its webhooks (X-Hub-Signature-256),
	// and the verify token of the webhook's subscription handshake.
	AppSecret              promcfg.Secret `yaml:"app_secret,omitempty"`
	AppSecretFile          string         `yaml:"app_secret_file,omitempty"`
	WebhookVerifyToken     promcfg.Secret `yaml:"webhook_verify_token,omitempty"`
	WebhookVerifyTokenFile string         `yaml:"webhook_verify_token_file,omitempty"`

	appSecret, verifyToken string // resolved
}

func (m *metaShared) optional() []config.OptionalSecret {
	return []config.OptionalSecret{
		{Field: "app_secret", Value: &m.AppSecret, File: &m.AppSecretFile, Resolved: &m.appSecret},
		{Field: "webhook_verify_token", Value: &m.WebhookVerifyToken, File: &m.WebhookVerifyTokenFile, Resolved: &m.verifyToken},
	}
}

// MetaSpec is a single business phone number, by its phone-number ID.
type MetaSpec struct {
	config.Common   `yaml:",inline"`
	PhoneNumberID   string         `yaml:"phone_number_id"`
	AccessToken     promcfg.Secret `yaml:"access_token,omitempty"`
	AccessTokenFile string         `yaml:"access_token_file,omitempty"`
	// WABAID is the number's WABA, optional: notifications name WABAs,
	// so a number's are received only when it is set.
	WABAID string `yaml:"waba_id,omitempty"`
	// PollInterval is the least time between two state requests of the
	// number (default 1m): Meta's request budget is per hour, and a
	// scrape must not spend it (meta_budget.go).
	PollInterval model.Duration `yaml:"poll_interval,omitempty"`
	// StatePath replaces the Graph path /{phone_number_id}?fields=… of
	// the state request, for a pass-through provider that serves the
	// number's health elsewhere (360dialog: /health_status).
	StatePath  string `yaml:"state_path,omitempty"`
	metaShared `yaml:",inline"`
}

// Fields implements config.Spec.
func (s *MetaSpec) Fields() config.Fields {
	return config.Fields{ID: &s.PhoneNumberID, Secret: &s.AccessToken, SecretFile: &s.AccessTokenFile, Optional: s.optional()}
}

// MetaAccountSpec is a WABA: its phone numbers are found by listing it.
type MetaAccountSpec struct {
	config.AccountCommon `yaml:",inline"`
	WABAID               string         `yaml:"waba_id"`
	AccessToken          promcfg.Secret `yaml:"access_token,omitempty"`
	AccessTokenFile      string         `yaml:"access_token_file,omitempty"`
	metaShared           `yaml:",inline"`
}

// Fields implements config.AccountSpec.
func (s *MetaAccountSpec) Fields() config.Fields {
	return config.Fields{Secret: &s.AccessToken, SecretFile: &s.AccessTokenFile, Optional: s.optional()}
}

// metaAccountState is a WABA's own state (accountState.ext), kept across
// reloads: what its calls spent of Meta's request budget
// (meta_budget.go) and what its notifications told (meta_webhook.go).
type metaAccountState struct {
	budget metaBudget
	pushed metaPushed
}

// metaWebhookCreds are what a Cloud API notification is checked against.
type metaWebhookCreds struct {
	wabaID, appSecret, verifyToken string
}

// webhookCreds implements the lookup of the notification receiver.
func (s *MetaSpec) webhookCreds() metaWebhookCreds {
	return metaWebhookCreds{s.WABAID, s.appSecret, s.verifyToken}
}

func (s *MetaAccountSpec) webhookCreds() metaWebhookCreds {
	return metaWebhookCreds{s.WABAID, s.appSecret, s.verifyToken}
}
