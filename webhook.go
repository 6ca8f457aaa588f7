package main

import (
	"log/slog"
	"net/http"
	"time"
)

// The notification receiver listens apart from /metrics: providers call
// it from the internet, while the metrics usually stay on an internal
// network. It has its own TLS and basic auth settings.

// webhookTimeouts bound how long a sender may hold a connection: a slow
// or silent one is cut off.
type webhookTimeouts struct {
	header, read, write, idle time.Duration
}

var defaultWebhookTimeouts = webhookTimeouts{header: 5 * time.Second, read: 10 * time.Second, write: 10 * time.Second, idle: time.Minute}

// maxWebhookRequests bounds the notifications handled at once, each of
// which may hold collector.MaxNotificationBytes; more get HTTP 503, which
// providers retry.
const maxWebhookRequests = 256

func (e *exporter) webhookServer(t webhookTimeouts) *http.Server {
	return &http.Server{
		Handler:           limitRequests(maxWebhookRequests, "too many notifications at once; retry later")(e.collector.Webhooks()),
		ReadHeaderTimeout: t.header,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    16 << 10,
		// Scanners of the internet fail TLS handshakes all day: that is
		// not worth more than a debug line.
		ErrorLog: slog.NewLogLogger(e.logger.With("listener", "webhook").Handler(), slog.LevelDebug),
	}
}
