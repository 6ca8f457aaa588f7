package collector

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	promcfg "github.com/prometheus/common/config"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// An account finds instances that other people may control: a GREEN-API
// partner's customers read their own instance's settings, webhookUrlToken
// included; a tenant of a shared Evolution API server reads its
// instance's webhook, URL and headers included. A webhook credential
// shared by every instance of an account would let any of them forge the
// state of all the others. So an account holds a key, and each instance
// it finds gets credentials of its own, derived from the key and the
// instance's ID at its provider:
//
//	base64url(HMAC-SHA256(webhook_key, "<kind>:<id>")), unpadded
//
// where kind is token (GREEN-API's webhookUrlToken, or the Authorization
// header set on an Evolution API webhook), path (Evolution API's path
// secret) or jwt (Evolution API's jwt_key). Knowing one instance's
// credential tells nothing of another's, nor of the key. Whoever sets the
// instances' webhooks computes the same (docs/notifications.md gives the
// command).

// Kinds of derived webhook credentials.
const (
	derivedToken = "token"
	derivedPath  = "path"
	derivedJWT   = "jwt"
)

// minWebhookKeyLen keeps a guessable key out: every derived credential
// is as strong as the key.
const minWebhookKeyLen = 16

// webhookKey is an account's webhook_key.
type webhookKey struct {
	WebhookKey     promcfg.Secret `yaml:"webhook_key,omitempty"`
	WebhookKeyFile string         `yaml:"webhook_key_file,omitempty"`
	key            string
}

func (w *webhookKey) field() config.OptionalSecret {
	return config.OptionalSecret{Field: "webhook_key", Value: &w.WebhookKey, File: &w.WebhookKeyFile, Resolved: &w.key,
		Check: func(s string) error {
			if len(s) < minWebhookKeyLen {
				return fmt.Errorf("must be at least %d characters", minWebhookKeyLen)
			}
			return nil
		}}
}

// derive returns the credential of kind for the instance id, or "" when
// the account has no key.
func (w *webhookKey) derive(kind, id string) string {
	if w.key == "" {
		return ""
	}
	return deriveWebhookSecret(w.key, kind, id)
}

func deriveWebhookSecret(key, kind, id string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(kind + ":" + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// webhookGlobalPath is the path secret of an Evolution API server's
// global webhook (WEBHOOK_GLOBAL_URL), which sends the notifications of
// every instance of the server to one URL: it cannot be derived per
// instance. It is set in the server's environment, which no tenant can
// read; it must never be put on an instance's own webhook.
type webhookGlobalPath struct {
	WebhookGlobalPathSecret     promcfg.Secret `yaml:"webhook_global_path_secret,omitempty"`
	WebhookGlobalPathSecretFile string         `yaml:"webhook_global_path_secret_file,omitempty"`
	secret                      string
}

func (w *webhookGlobalPath) field() config.OptionalSecret {
	return config.OptionalSecret{Field: "webhook_global_path_secret", Value: &w.WebhookGlobalPathSecret, File: &w.WebhookGlobalPathSecretFile,
		Resolved: &w.secret, Check: checkPathSecret}
}
