// whatsapp_exporter's monitoring mixin: prometheusAlerts, prometheusRules
// and grafanaDashboards, from the shipped alerts/ and dashboards/ files,
// tuned by _config (config.libsonnet). See README.md.
(import 'config.libsonnet') +
(import 'alerts.libsonnet') +
(import 'dashboards.libsonnet')
