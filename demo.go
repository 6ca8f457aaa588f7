package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// startDemo serves the simulator on a free loopback port.
func startDemo(logger *slog.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: simulator.Demo(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("Demo simulator stopped", "err", err)
		}
	}()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}
