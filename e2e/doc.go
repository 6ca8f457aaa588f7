// Package e2e runs the exporter with the real programs around it: a real
// Prometheus scraping it in either mode with the shipped rules
// (prometheus.go), a real Alertmanager with the shipped routes
// (alertmanager.go) and the dashboards' queries as Grafana sends them,
// their tables through Grafana's own code (dashboards.go). The exporter
// runs in process (internal/exportertest), or as its binary where the test
// needs its listeners.
//
// The status page's suite drives Chromium (status_page_test.go).
//
// The suites skip when promtool, prometheus, alertmanager, chromium or
// Grafana's JavaScript packages are missing, and fail instead when
// WHATSAPP_EXPORTER_REQUIRE_TOOLS is set (see internal/testtool); -short
// skips them.
package e2e
