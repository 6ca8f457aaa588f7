// The settings of the whatsapp_exporter mixin. Override them with
//
//   (import 'github.com/whatsapp-exporter/whatsapp_exporter/mixin/mixin.libsonnet') + {
//     _config+:: { whatsappExporterSelector: 'job="whatsapp-exporter"' },
//   }
//
// Every default leaves the shipped files as they are: the mixin's output
// with this config is alerts/whatsapp.rules.yml and dashboards/*.json
// (mixin_test.go checks it).
{
  _config+:: {
    // Inserted in place of job="whatsapp", the scrape job's matcher, in the
    // rules' expressions. The shipped rules name the job in one place, the
    // whatsapp_exporter:up recording rule (up{job="whatsapp"}), behind
    // WhatsAppExporterDown; the whatsapp_* series come from this exporter
    // only, so the other rules select them by name. Any matchers that
    // select the exporter's targets' up series, e.g. 'job="whatsapp-exporter"'
    // (a ServiceMonitor's job is its Service's name) or
    // 'job=~"whatsapp|whatsapp-eu", cluster="eu"'. The dashboards do not
    // name a job: their Job variable lists every job with whatsapp_up.
    whatsappExporterSelector: 'job="whatsapp"',

    // The `for` of the alerts, by alert name: { WhatsAppInstanceStopped:
    // '30m' }. Empty keeps the shipped durations (alerts/RUNBOOK.md#choosing-the-durations).
    // A name stands for every rule of that name: WhatsAppInstanceStartingTooLong
    // is four rules (at once after a reboot, 5m, 10m, 10m) and gets the one
    // duration. A name the rules do not have is an error. The summaries
    // and descriptions quote the shipped durations; say otherwise with
    // alertAnnotations.
    alertFor: {},

    // The severity label of the alerts, by alert name: { WhatsAppInstanceStopped:
    // 'critical' }. Empty keeps the shipped severities. severity="none"
    // marks a request to the exporter (remediation="reboot"), which
    // alerts/alertmanager.yml routes to it and never to a person.
    alertSeverity: {},

    // Annotations merged into the alerts' own, by alert name:
    // { WhatsAppInstanceStopped: { description: '...' } }.
    alertAnnotations: {},

    // The dashboards' tags; their "WhatsApp dashboards" link lists the
    // dashboards that carry them all, so it follows.
    dashboardTags: ['whatsapp'],

    // How often the dashboards refresh ('' for never).
    dashboardRefresh: '1m',

    // The uid (or name) of the Prometheus data source the dashboards open
    // on. The default is the shipped files' import placeholder, which
    // Grafana's import dialog fills in and provisioning does not:
    // provisioned dashboards (Grafana's sidecar, mixtool, grizzly) need
    // the data source's uid, e.g. 'prometheus' in kube-prometheus-stack.
    // Replaces ${DS_PROMETHEUS} as docs/dashboards.md's sed does.
    dashboardDatasource: '${DS_PROMETHEUS}',

    // Put before the dashboards' uids (whatsapp-overview,
    // whatsapp-instance) and the links between them, e.g. to load them
    // twice in one Grafana. A uid has at most 40 characters.
    dashboardUidPrefix: '',
  },
}
