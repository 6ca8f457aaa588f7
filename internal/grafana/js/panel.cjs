// Runs panels' data through Grafana's own code: the Prometheus data
// source's result transformer (@grafana/prometheus), then the panel's
// transformations (@grafana/data). Reads from stdin a JSON array of
//   {"targets": [...], "transformations": [...], "results": {"A": [...], ...}}
// with results as Prometheus's /api/v1/query vectors by refId, writes for
// each the frames the panel would draw, as a JSON array.
'use strict';

// The result transformer imports @grafana/runtime only for exemplar links,
// which a table never has; runtime needs a browser, so it is left out.
const Module = require('module');
const load = Module._load;
Module._load = function (request, ...rest) {
  return request === '@grafana/runtime' ? {} : load.call(this, request, ...rest);
};

const data = require('@grafana/data');
// transformDataFrame looks for a scene context on window.
globalThis.window = globalThis.window || {};
// The package exports only its browser entry point, which loads React
// components; the transformer is read from its own module.
const { transformV2 } = require(require('path').join(__dirname, 'node_modules/@grafana/prometheus/dist/cjs/result_transformer.cjs'));
const { firstValueFrom } = require('rxjs');

const seen = new Set();
data.standardTransformersRegistry.setInit(() =>
  Object.values(data.standardTransformers)
    .filter((t) => !seen.has(t.id) && seen.add(t.id))
    .map((t) => ({ id: t.id, name: t.name, transformation: () => t })),
);

// frames is what Grafana's backend makes of a vector: one frame per series,
// a Time field and a Value field carrying the series' labels.
function frames(refId, vector) {
  return vector.map((s) => ({
    refId,
    meta: { type: 'numeric-multi', custom: { resultType: 'vector' } },
    fields: [
      { name: 'Time', type: 'time', config: {}, values: [s.value[0] * 1000] },
      { name: 'Value', type: 'number', config: {}, labels: s.metric, values: [Number(s.value[1])] },
    ],
    length: 1,
  }));
}

async function main() {
  let input = '';
  for await (const chunk of process.stdin) input += chunk;
  const panels = [];
  for (const { targets, transformations, results } of JSON.parse(input)) {
    const response = { data: targets.flatMap((t) => frames(t.refId, results[t.refId] || [])) };
    const transformed = transformV2(response, { targets }, {});
    const out = await firstValueFrom(data.transformDataFrame(transformations || [], transformed.data));
    panels.push(
      out.map((f) => ({
        refId: f.refId,
        fields: f.fields.map((field) => ({ name: field.name, values: Array.from(field.values) })),
      })),
    );
  }
  process.stdout.write(JSON.stringify(panels));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
});
