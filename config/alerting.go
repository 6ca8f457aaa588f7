package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	promcfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// This file holds the sections of the configuration for what the exporter
// does on Alertmanager's behalf (--alertmanager.listen-address):
// remediation (reboots) and WhatsApp alerts.

// Alertmanager is how Alertmanager's webhook requests authenticate: the
// bearer token its http_config sends.
type Alertmanager struct {
	BearerToken     promcfg.Secret `yaml:"bearer_token,omitempty"`
	BearerTokenFile string         `yaml:"bearer_token_file,omitempty"`

	token string
}

// Token is the bearer token; "" when none is set.
func (a *Alertmanager) Token() string {
	if a == nil {
		return ""
	}
	return a.token
}

// MinBearerTokenLen bounds a guessable token out.
const MinBearerTokenLen = 16

// Remediation is what the exporter may do to an instance that an alert
// names: reboot it, when its provider has a reboot and its state is one of
// RebootStates.
type Remediation struct {
	// DryRun decides, logs and counts every action but calls nothing.
	DryRun bool `yaml:"dry_run,omitempty"`
	// Window: at most one action per instance per window.
	Window model.Duration `yaml:"window,omitempty"`
	// RecheckAfter is how long after a reboot the state is requested
	// again.
	RecheckAfter model.Duration `yaml:"recheck_after,omitempty"`
	// RebootStates are the states in which an alert may reboot an
	// instance.
	RebootStates []string `yaml:"reboot_states,omitempty"`
	Brake        Brake    `yaml:"brake,omitempty"`
}

// Brake holds every action of one provider when too many of its instances
// need one at once (its own maintenance, an outage): more than MaxShare of
// its instances, and at least MinActions, acted on within Window.
type Brake struct {
	MaxShare   float64        `yaml:"max_share,omitempty"`
	MinActions int            `yaml:"min_actions,omitempty"`
	Window     model.Duration `yaml:"window,omitempty"`
}

// Defaults of the remediation section.
const (
	DefaultRemediationWindow = 30 * time.Minute
	DefaultRecheckAfter      = 2 * time.Minute
	DefaultBrakeMaxShare     = 0.1
	DefaultBrakeMinActions   = 3
	DefaultBrakeWindow       = 15 * time.Minute
)

// RebootableStates are the states a reboot may be configured for, as the
// provider recommends: GREEN-API's "starting" for more than 5 minutes,
// and "yellowCard" ("to continue running, the instance needs a reboot"),
// which a reboot does not lift, so it is opt-in.
var RebootableStates = []string{"starting", "yellowCard"}

// WhatsAppAlerts sends Alertmanager's notifications as WhatsApp messages
// through the first sender that works.
type WhatsAppAlerts struct {
	// Senders are instance names, in the order tried.
	Senders []string `yaml:"senders"`
	// Recipients are WhatsApp numbers: digits with the country code, an
	// optional leading +.
	Recipients PhoneNumbers `yaml:"recipients"`
	RateLimit  RateLimit    `yaml:"rate_limit,omitempty"`
}

// PhoneNumbers are people's numbers: /config shows only their last two
// digits.
type PhoneNumbers []string

// MarshalYAML hides all but the last two digits of each number.
func (p PhoneNumbers) MarshalYAML() (any, error) {
	out := make([]string, len(p))
	for k, n := range p {
		out[k] = "<number …" + n[max(len(n)-2, 0):] + ">"
	}
	return out, nil
}

// RateLimit bounds the messages one recipient gets: Messages per Per.
type RateLimit struct {
	Messages int            `yaml:"messages,omitempty"`
	Per      model.Duration `yaml:"per,omitempty"`
}

// Defaults of the whatsapp_alerts section.
const (
	DefaultRecipientMessages = 10
	DefaultRecipientPer      = time.Hour
)

func (a *Alertmanager) resolve(r *resolver) error {
	if a.BearerToken == "" && a.BearerTokenFile == "" {
		return nil
	}
	s, err := r.secret("bearer_token", a.BearerToken, "bearer_token_file", a.BearerTokenFile)
	if err != nil {
		return err
	}
	if len(s) < MinBearerTokenLen {
		return &FieldError{Field: "bearer_token", Err: fmt.Errorf("shorter than %d characters", MinBearerTokenLen)}
	}
	a.token = s
	return nil
}

func (rm *Remediation) resolve() error {
	if rm.Window == 0 {
		rm.Window = model.Duration(DefaultRemediationWindow)
	}
	if rm.RecheckAfter == 0 {
		rm.RecheckAfter = model.Duration(DefaultRecheckAfter)
	}
	if rm.RebootStates == nil {
		rm.RebootStates = []string{"starting"}
	}
	b := &rm.Brake
	if b.MaxShare == 0 {
		b.MaxShare = DefaultBrakeMaxShare
	}
	if b.MinActions == 0 {
		b.MinActions = DefaultBrakeMinActions
	}
	if b.Window == 0 {
		b.Window = model.Duration(DefaultBrakeWindow)
	}
	switch {
	case rm.Window < 0:
		return &FieldError{Field: "window", Err: errors.New("must be positive")}
	case rm.RecheckAfter < 0 || rm.RecheckAfter >= rm.Window:
		return &FieldError{Field: "recheck_after", Err: fmt.Errorf("must be positive and shorter than window (%s)", rm.Window)}
	case b.MaxShare < 0 || b.MaxShare > 1:
		return &FieldError{Field: "brake.max_share", Err: errors.New("must be between 0 and 1")}
	case b.MinActions < 0:
		return &FieldError{Field: "brake.min_actions", Err: errors.New("must not be negative")}
	case b.Window < 0:
		return &FieldError{Field: "brake.window", Err: errors.New("must be positive")}
	}
	seen := map[string]bool{}
	for _, s := range rm.RebootStates {
		if !slices.Contains(RebootableStates, s) {
			return &FieldError{Field: "reboot_states", Err: fmt.Errorf("%q: want one of %s", s, strings.Join(RebootableStates, ", "))}
		}
		if seen[s] {
			return &FieldError{Field: "reboot_states", Err: fmt.Errorf("%q listed twice", s)}
		}
		seen[s] = true
	}
	return nil
}

func (w *WhatsAppAlerts) resolve() error {
	if len(w.Senders) == 0 {
		return &FieldError{Field: "senders", Err: errors.New("at least one sender instance is required")}
	}
	seen := map[string]bool{}
	for _, s := range w.Senders {
		if err := CheckName(s); err != nil {
			return &FieldError{Field: "senders", Err: err}
		}
		if seen[s] {
			return &FieldError{Field: "senders", Err: fmt.Errorf("%s listed twice", QuoteName(s))}
		}
		seen[s] = true
	}
	if len(w.Recipients) == 0 {
		return &FieldError{Field: "recipients", Err: errors.New("at least one number is required")}
	}
	seen = map[string]bool{}
	for k, n := range w.Recipients {
		digits := strings.TrimPrefix(n, "+")
		if len(digits) < 7 || len(digits) > 15 || strings.Trim(digits, "0123456789") != "" {
			return &FieldError{Field: fmt.Sprintf("recipients[%d]", k), Err: errors.New("want a number with its country code: 7 to 15 digits, an optional leading +")}
		}
		if seen[digits] {
			return &FieldError{Field: fmt.Sprintf("recipients[%d]", k), Err: errors.New("listed twice")}
		}
		seen[digits] = true
		w.Recipients[k] = digits
	}
	if w.RateLimit.Messages == 0 {
		w.RateLimit.Messages = DefaultRecipientMessages
	}
	if w.RateLimit.Per == 0 {
		w.RateLimit.Per = model.Duration(DefaultRecipientPer)
	}
	if w.RateLimit.Messages < 0 || w.RateLimit.Per < 0 {
		return &FieldError{Field: "rate_limit", Err: errors.New("messages and per must be positive")}
	}
	return nil
}

// resolveAlerting checks the sections of this file, naming the section in
// each error.
func resolveAlerting(cfg *Config, r *resolver) []error {
	var errs []error
	if cfg.Alertmanager != nil {
		if err := cfg.Alertmanager.resolve(r); err != nil {
			errs = append(errs, fmt.Errorf("alertmanager: %w", err))
		}
	}
	if cfg.Remediation != nil {
		if err := cfg.Remediation.resolve(); err != nil {
			errs = append(errs, fmt.Errorf("remediation: %w", err))
		}
	}
	if cfg.WhatsAppAlerts != nil {
		if err := cfg.WhatsAppAlerts.resolve(); err != nil {
			errs = append(errs, fmt.Errorf("whatsapp_alerts: %w", err))
		}
	}
	return errs
}
