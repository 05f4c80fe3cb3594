#!/usr/bin/env node
// kafkajs transactions (tests/integration/test_0073_transactions.py), run
// as scenarios.js is, with NODE_PATH set to the node_modules that
// tests/integration/newer_clients.py installs into .cache/node:
//
//     node transactions.js BOOTSTRAP PREFIX
//
// PREFIX-txn (3 partitions) is made by the test.  One transactional
// producer (transactionalId PREFIX-tx): T1 commits c1-p<p>-0..2 on every
// partition, T2 sends a2-p<p>-0..1 and aborts, T3 sends c3-p<p>-0..1,
// sendOffsets for group PREFIX-g (partition 0 at 42) and commits.  Then
// a read_committed consumer (group PREFIX-rc) and a read_uncommitted one
// (PREFIX-ru) read the topic from the beginning.  Prints one JSON object:
// the records each saw per partition ("offset:value", sorted by offset),
// the group's committed offsets and the topic's offsets (admin).
'use strict';

const { Kafka, logLevel } = require('kafkajs');

const DEADLINE = Number(process.env.SPOOL_TXN_JS_DEADLINE || 60000);
const PARTS = 3;
const T0 = Date.now();
const step = (what) => process.stderr.write(`[${((Date.now() - T0) / 1000).toFixed(2).padStart(6)}s] ${what}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function client(bootstrap) {
  const toStderr = () => ({ namespace, level, label, log }) => {
    process.stderr.write(`${label} [${namespace}] ${log.message} ${JSON.stringify(log)}\n`);
  };
  return new Kafka({ clientId: 'spool-txn', brokers: [bootstrap], logLevel: process.env.SPOOL_TXN_JS_DEBUG ? logLevel.DEBUG : logLevel.WARN,
    logCreator: toStderr, retry: { retries: 8 } });
}

function records(tag, n) {
  const out = [];
  for (let p = 0; p < PARTS; p++) {
    for (let i = 0; i < n; i++) out.push({ partition: p, key: `${tag}-k${i}`, value: `${tag}-p${p}-${i}` });
  }
  return out;
}

async function readAll(kafka, topic, groupId, readUncommitted, want) {
  const c = kafka.consumer({ groupId, readUncommitted, sessionTimeout: 10000, heartbeatInterval: 500,
    maxWaitTimeInMs: 500 });
  const seen = {};
  for (let p = 0; p < PARTS; p++) seen[p] = [];
  let n = 0;
  await c.connect();
  try {
    await c.subscribe({ topic, fromBeginning: true });
    await c.run({
      eachMessage: async ({ partition, message }) => {
        seen[partition].push([Number(message.offset), message.value.toString()]);
        n += 1;
      },
    });
    const t0 = Date.now();
    while (n < want) {
      if (Date.now() - t0 > DEADLINE) {
        throw new Error(`${groupId}: ${n} of ${want} records in ${DEADLINE} ms: ${JSON.stringify(seen)}`);
      }
      await sleep(50);
    }
    await sleep(1000); // anything more that would come
  } finally {
    await c.disconnect();
  }
  const out = {};
  for (let p = 0; p < PARTS; p++) out[p] = seen[p].sort((a, b) => a[0] - b[0]).map(([o, v]) => `${o}:${v}`);
  return out;
}

async function main(argv) {
  if (argv.length !== 2) {
    process.stderr.write('usage: node transactions.js BOOTSTRAP PREFIX\n');
    return 2;
  }
  const [bootstrap, prefix] = argv;
  const topic = `${prefix}-txn`;
  const kafka = client(bootstrap);
  const out = {};
  const p = kafka.producer({ transactionalId: `${prefix}-tx`, idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  try {
    let t = await p.transaction();
    await t.send({ topic, messages: records('c1', 3) });
    await t.commit();
    step('T1 committed');
    t = await p.transaction();
    await t.send({ topic, messages: records('a2', 2) });
    await t.abort();
    step('T2 aborted');
    t = await p.transaction();
    await t.send({ topic, messages: records('c3', 2) });
    await t.sendOffsets({ consumerGroupId: `${prefix}-g`,
      topics: [{ topic, partitions: [{ partition: 0, offset: '42' }] }] });
    await t.commit();
    step('T3 committed');
  } finally {
    await p.disconnect();
  }
  out.read_committed = await readAll(kafka, topic, `${prefix}-rc`, false, 5 * PARTS);
  step('read committed');
  out.read_uncommitted = await readAll(kafka, topic, `${prefix}-ru`, true, 7 * PARTS);
  step('read uncommitted');
  const adm = kafka.admin();
  await adm.connect();
  try {
    const g = await adm.fetchOffsets({ groupId: `${prefix}-g`, topics: [topic] });
    out.group_offsets = g[0].partitions.map((x) => [x.partition, Number(x.offset)]).sort((a, b) => a[0] - b[0]);
    const o = await adm.fetchTopicOffsets(topic);
    out.topic_offsets = o.map((x) => [x.partition, Number(x.low), Number(x.high)]).sort((a, b) => a[0] - b[0]);
  } finally {
    await adm.disconnect();
  }
  out.client = { kafkajs: require('kafkajs/package.json').version, node: process.version };
  out.seconds = (Date.now() - T0) / 1000;
  process.stdout.write(JSON.stringify(out) + '\n');
  return 0;
}

main(process.argv.slice(2)).then((rc) => { process.exitCode = rc; }, (e) => {
  process.stderr.write(`error: ${e && e.stack ? e.stack : e}\n`);
  process.exitCode = 1;
});
