package server

import (
	"log/slog"
	"net/http"
	"time"
)

// The notification receiver listens apart from /metrics: providers call
// it from the internet, while the metrics usually stay on an internal
// network. It has its own TLS and basic auth settings.

// ReceiverTimeouts bound how long a sender may hold a connection: a slow
// or silent one is cut off.
type ReceiverTimeouts struct {
	Header, Read, Write, Idle time.Duration
}

// DefaultReceiverTimeouts are the notification receiver's timeouts.
var DefaultReceiverTimeouts = ReceiverTimeouts{Header: 5 * time.Second, Read: 10 * time.Second, Write: 10 * time.Second, Idle: time.Minute}

// maxWebhookRequests bounds the notifications handled at once, each of
// which may hold collector.MaxNotificationBytes; more get HTTP 503, which
// providers retry.
const maxWebhookRequests = 256

// Receiver is the notification receiver's server (--webhook.listen-address),
// for the caller to listen with.
func (e *Exporter) Receiver(t ReceiverTimeouts) *http.Server {
	return &http.Server{
		Handler:           limitRequests(maxWebhookRequests, "too many notifications at once; retry later")(e.collector.Webhooks()),
		ReadHeaderTimeout: t.Header,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    16 << 10,
		// Scanners of the internet fail TLS handshakes all day: that is
		// not worth more than a debug line.
		ErrorLog: slog.NewLogLogger(e.logger.With("listener", "webhook").Handler(), slog.LevelDebug),
	}
}
