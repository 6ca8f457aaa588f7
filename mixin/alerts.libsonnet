// The shipped alerting and recording rules, read from
// alerts/whatsapp.rules.yml as they are and tuned by _config: the file
// stays the one source, for Prometheus's rule_files, the Helm chart's
// PrometheusRule and this mixin alike.
//
// All of it is prometheusAlerts, group by group as shipped, and
// prometheusRules is empty: the two recording rules sit in the groups of
// the alerts that read them, before them, because Prometheus evaluates a
// group's rules in order, so that the alerts read this evaluation's
// whatsapp_exporter:up and whatsapp_remediation:acting. Moved to groups of
// their own they would be evaluated independently of the alerts, and
// groups of the same names would collide where kube-prometheus puts both
// fields in one PrometheusRule. prometheusRules + prometheusAlerts is the
// shipped file either way.
local shipped = std.parseYaml(importstr '../alerts/whatsapp.rules.yml');

// The scrape job's matcher as the shipped expressions write it.
local shippedJob = 'job="whatsapp"';

local rules = [r for g in shipped.groups for r in g.rules];
local alertNames = std.set([r.alert for r in rules if std.objectHas(r, 'alert')]);

assert std.length([r for r in rules if std.strReplace(r.expr, shippedJob, '') != r.expr]) > 0 :
       'whatsapp mixin: no expression of alerts/whatsapp.rules.yml names %s any more: update whatsappExporterSelector' % shippedJob;

{
  local c = $._config,

  // Each by-name setting, checked: a name the rules do not have is a
  // typo or a renamed alert, and would otherwise change nothing.
  local byName(field, check, what) =
    local m = c[field];
    local unknown = std.setDiff(std.set(std.objectFields(m)), alertNames);
    local wrong = [n for n in std.objectFields(m) if !check(m[n])];
    if !std.isObject(m) then
      error 'whatsapp mixin: _config.%s must be an object of alert names' % field
    else if unknown != [] then
      error 'whatsapp mixin: _config.%s names no alert of alerts/whatsapp.rules.yml: %s' % [field, std.join(', ', unknown)]
    else if wrong != [] then
      error 'whatsapp mixin: _config.%s of %s must be %s' % [field, std.join(', ', wrong), what]
    else m,

  local selector =
    if std.isString(c.whatsappExporterSelector) && c.whatsappExporterSelector != '' then c.whatsappExporterSelector
    else error 'whatsapp mixin: _config.whatsappExporterSelector must be a non-empty string of matchers',
  local alertFor = byName('alertFor', std.isString, 'a duration string'),
  local alertSeverity = byName('alertSeverity', std.isString, 'a string'),
  local alertAnnotations = byName('alertAnnotations', std.isObject, 'an object'),

  local tune(rule) =
    local name = if std.objectHas(rule, 'alert') then rule.alert else '';
    rule
    { expr: std.strReplace(rule.expr, shippedJob, selector) }
    + (if std.objectHas(alertFor, name) then { 'for': alertFor[name] } else {})
    + (if std.objectHas(alertSeverity, name) then { labels+: { severity: alertSeverity[name] } } else {})
    + (if std.objectHas(alertAnnotations, name) then { annotations+: alertAnnotations[name] } else {}),

  prometheusAlerts+:: {
    groups+: [g { rules: std.map(tune, g.rules) } for g in shipped.groups],
  },

  prometheusRules+:: {
    groups+: [],
  },
}
