package remediation

import (
	"log/slog"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
)

// FakeClock is fakeClock for the external tests.
type FakeClock = fakeClock

// NewFakeClock is a fake clock at t.
func NewFakeClock(t time.Time) *FakeClock { return &fakeClock{t: t} }

// NewWithClock is New with a fake clock.
func NewWithClock(logger *slog.Logger, c *collector.Collector, clk *FakeClock) *Engine {
	return newEngine(logger, c, clk.clock())
}
