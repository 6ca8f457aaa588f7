// The shipped Grafana dashboards, imported from dashboards/ as they are
// (JSON is jsonnet) and tuned by _config.
local shipped = {
  'whatsapp-overview.json': import '../dashboards/whatsapp-overview.json',
  'whatsapp-instance.json': import '../dashboards/whatsapp-instance.json',
};

// The shipped files' data source placeholder (their __inputs).
local placeholder = '${DS_PROMETHEUS}';

// Replaces text in every string of a value, as sed does over the file.
local replaceStrings(v, pairs) =
  if std.isString(v) then std.foldl(function(s, p) std.strReplace(s, p[0], p[1]), pairs, v)
  else if std.isArray(v) then std.map(function(x) replaceStrings(x, pairs), v)
  else if std.isObject(v) then std.mapWithKey(function(_, x) replaceStrings(x, pairs), v)
  else v;

{
  local c = $._config,

  local prefix =
    if std.isString(c.dashboardUidPrefix) then c.dashboardUidPrefix
    else error 'whatsapp mixin: _config.dashboardUidPrefix must be a string',
  local tags =
    if std.isArray(c.dashboardTags) && [t for t in c.dashboardTags if !std.isString(t)] == [] then c.dashboardTags
    else error 'whatsapp mixin: _config.dashboardTags must be an array of strings',

  // The strings to replace: the data source placeholder, and the links
  // between the dashboards (/d/<uid>/<slug>) when their uids change.
  local pairs =
    (if c.dashboardDatasource != placeholder then [[placeholder, c.dashboardDatasource]] else [])
    + (if prefix != '' then [['/d/%s/' % d.uid, '/d/%s%s/' % [prefix, d.uid]] for d in std.objectValues(shipped)] else []),

  local tune(d) =
    local uid = prefix + d.uid;
    assert std.length(uid) <= 40 : 'whatsapp mixin: dashboard uid %s is longer than Grafana allows (40)' % uid;
    (if pairs == [] then d else replaceStrings(d, pairs)) + {
      uid: uid,
      tags: tags,
      refresh: c.dashboardRefresh,
      // The link that lists the WhatsApp dashboards by their tags.
      links: [
        if l.type == 'dashboards' && l.tags == d.tags then l { tags: tags } else l
        for l in super.links
      ],
    },

  grafanaDashboards+:: std.mapWithKey(function(_, d) tune(d), shipped),
}
