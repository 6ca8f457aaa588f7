package collector

import (
	"context"
	"errors"
	"time"
)

// This file is what the rest of the exporter may ask of an instance beyond
// its metrics: its status (for the status page and the remediation's
// guards), a state request now (the status page's Check now, the
// remediation's re-check), a reboot and a text message. Each provider
// offers the last two or not (Rebooter, Sender).

// Rebooter is a Client whose provider can reboot an instance.
type Rebooter interface {
	// Reboot asks the provider to reboot the instance; an *Error when it
	// did not.
	Reboot(ctx context.Context) error
}

// Sender is a Client whose provider can send a text message.
type Sender interface {
	// SendText sends text to the WhatsApp number to (digits only, with
	// the country code); an *Error when the provider did not take it.
	SendText(ctx context.Context, to, text string) error
}

// ErrNotSupported is returned for an action the instance's provider does
// not offer.
var ErrNotSupported = errors.New("the provider offers no such method")

// ErrHeld is wrapped by a HeldError: the instance's rate limit does not
// allow a call now.
var ErrHeld = errors.New("the provider's rate limit holds calls to this instance")

// HeldError says until when an instance's calls are held (a Retry-After,
// or the one request a second GREEN-API allows).
type HeldError struct{ Until time.Time }

func (e *HeldError) Error() string {
	return ErrHeld.Error() + " until " + e.Until.UTC().Format(time.RFC3339)
}

func (e *HeldError) Unwrap() error { return ErrHeld }

// InstanceStatus is what the exporter knows of one instance now.
type InstanceStatus struct {
	Provider, Name string
	// Account is the account that found it; empty for a configured one.
	Account string
	// State is the provider's state, or StateUnknown; Working says it is
	// the provider's working state.
	State   string
	Working bool
	// Up says the last state request worked; Reason says why not.
	Up     bool
	Reason string
	// Detail is the last failure's text, secrets hidden.
	Detail string
	// Since is when State and Up last changed; Checked when the last
	// call or notification ended (zero before the first). Notified says
	// State came from a notification.
	Since, Checked time.Time
	Notified       bool
	// Queue is the outgoing queue, when QueueKnown.
	Queue      int
	QueueKnown bool
	// CanReboot and CanSend say whether the provider offers them.
	CanReboot, CanSend bool
}

// Status is what the exporter knows of the instance named name, without a
// call.
func (c *Collector) Status(name string) (InstanceStatus, bool) {
	return InstanceStatus{}, false
}

// Statuses is Status for every instance watched, configured ones first,
// in the order of Instances.
func (c *Collector) Statuses() []InstanceStatus {
	return nil
}

// Check requests the instance's state now, whatever MinInterval says, and
// returns the status it left. It waits for the instance's one request a
// second, and returns a *HeldError when a Retry-After holds its calls
// longer than ctx allows; ErrUnknownInstance for an unknown name. A call
// already under way for the instance is shared, not repeated.
func (c *Collector) Check(ctx context.Context, name string) (InstanceStatus, error) {
	return InstanceStatus{}, ErrNotSupported
}

// Reboot asks the instance's provider to reboot it, under the same rate
// limit as its state requests (a *HeldError when held). ErrNotSupported
// when the provider has no reboot; ErrUnknownInstance for an unknown name;
// an *Error when the provider refused or failed.
func (c *Collector) Reboot(ctx context.Context, name string) error {
	return ErrNotSupported
}

// SendText sends text to the number to through the instance named name,
// with the same errors as Reboot.
func (c *Collector) SendText(ctx context.Context, name, to, text string) error {
	return ErrNotSupported
}
