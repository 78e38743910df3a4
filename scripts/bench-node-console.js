#!/usr/bin/env node
// The transform of the console's "Stream to Amazon OpenSearch Service" Node.js function (LogsToElasticsearch,
// v1.1.2), re-implemented from its documented behaviour for the cost comparison in BENCHMARKS.md:
// base64 → gunzip → JSON.parse the envelope → per log event, find the JSON in the message (parsed once to
// validate it and once more to use it), add @id, @timestamp, @message, @owner, @log_group, @log_stream,
// JSON.stringify an `index` action and the document, concatenate one string. No body compression.
//
//   node scripts/bench-node-console.js EVENT_FILE [ITERATIONS]
//   node scripts/bench-node-console.js EVENT_FILE --body OUT_FILE
//
// Prints JSON: the first iteration (cold JIT) and the median/min/max of the others, in ms. With --body,
// writes the bulk body the function would send for EVENT_FILE to OUT_FILE instead (for the cluster-cost
// bench, scripts/bench-cluster-cost.py) and prints its event and byte counts. The function of that era
// also set `_type` (the log group) in the action; OpenSearch 2 refuses it, so it is left out here, as a
// current deployment of the function would have to.
'use strict';
const fs = require('fs');
const zlib = require('zlib');

function extractJson(message) {
  const start = message.indexOf('{');
  if (start < 0) return null;
  const sub = message.substring(start);
  try {
    JSON.parse(sub);
  } catch (e) {
    return null;
  }
  return sub;
}

function transform(payload) {
  let body = '';
  for (const ev of payload.logEvents) {
    const t = new Date(1 * ev.timestamp);
    const index = ['cwl-' + t.getUTCFullYear(), ('0' + (t.getUTCMonth() + 1)).slice(-2), ('0' + t.getUTCDate()).slice(-2)].join('.');
    const json = extractJson(ev.message);
    const source = json !== null ? JSON.parse(json) : {};
    source['@id'] = ev.id;
    source['@timestamp'] = t.toISOString();
    source['@message'] = ev.message;
    source['@owner'] = payload.owner;
    source['@log_group'] = payload.logGroup;
    source['@log_stream'] = payload.logStream;
    const action = { index: { _index: index, _id: ev.id } };
    body += [JSON.stringify(action), JSON.stringify(source)].join('\n') + '\n';
  }
  return body;
}

function once(data) {
  const t0 = process.hrtime.bigint();
  const payload = JSON.parse(zlib.gunzipSync(Buffer.from(data, 'base64')).toString('utf8'));
  const body = transform(payload);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return [ms, body.length, payload.logEvents.length];
}

const [file, n = '30', out] = process.argv.slice(2);
const data = JSON.parse(fs.readFileSync(file, 'utf8')).awslogs.data;
if (n === '--body') {
  const payload = JSON.parse(zlib.gunzipSync(Buffer.from(data, 'base64')).toString('utf8'));
  const body = transform(payload);
  fs.writeFileSync(out, body);
  console.log(JSON.stringify({ events: payload.logEvents.length, body_bytes: Buffer.byteLength(body) }));
  process.exit(0);
}
const [first, bytes, events] = once(data);
const times = [];
for (let i = 0; i < Number(n); i++) times.push(once(data)[0]);
times.sort((a, b) => a - b);
console.log(JSON.stringify({
  node: process.version, events, body_bytes: bytes, first_ms: first,
  median_ms: times[Math.floor(times.length / 2)], min_ms: times[0], max_ms: times[times.length - 1],
}));
