#!/usr/bin/env node
// The round trip, group and admin scenarios with kafkajs, run with
// NODE_PATH set to the node_modules that tests/integration/newer_clients.py
// installs (npm ci) from package-lock.json into .cache/node.
//
//     node scenarios.js SCENARIO BOOTSTRAP PREFIX
//
// prints one JSON object on stdout (kafkajs's own log goes to stderr).
// The records follow the same rule as tests/python/scenarios.py and
// tests/go/internal/spec; kafkajs compresses with gzip itself and with
// snappy through kafkajs-snappy (its lz4 and zstd codecs are native addons,
// left out).  Idempotence is kafkajs's default (off), or on with
// SPOOL_KAFKAJS_IDEMPOTENT=1 (the client "kafkajs-idempotent" of
// newer_clients.py): `idempotent: true` and nothing else (every send
// here asks acks=-1, which kafkajs requires of an idempotent producer).
'use strict';

const { Kafka, CompressionTypes, CompressionCodecs, ConfigResourceTypes, AssignerProtocol,
  logLevel } = require('kafkajs');
const SnappyCodec = require('kafkajs-snappy');

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;

const CODECS = ['none', 'gzip', 'snappy'];
const TYPES = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy };
const N = 40;
const RT_PARTS = 3;
const GROUP_PARTS = 4;
const PHASE1 = 10;
const PHASE2 = 5;
const DEADLINE = 60000;

function rtRecords(codecs) {
  const out = [];
  codecs.forEach((c, ci) => {
    for (let j = 0; j < N; j++) {
      out.push({
        p: ci % RT_PARTS,
        k: j === N - 1 ? null : `${c}-k${j}`,
        v: j === N - 2 ? null : `${c}-v${j}-${'spool-'.repeat(12)}`,
        h: [['codec', c], ['seq', String(j)], ['dup', '1'], ['dup', '2'], ['empty', '']],
        ts: 1700000000000 + 1000 * ci + j,
        codec: c,
      });
    }
  });
  return out;
}

function groupValues(phase) {
  const n = phase === 1 ? PHASE1 : PHASE2;
  const out = [];
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < GROUP_PARTS; p++) out.push([p, `g${phase}-p${p}-${i}`]);
  }
  return out;
}

function client(bootstrap, clientId) {
  const toStderr = () => ({ namespace, level, label, log }) => {
    process.stderr.write(`${label} [${namespace}] ${log.message} ${JSON.stringify(log)}\n`);
  };
  return new Kafka({ clientId, brokers: [bootstrap], logLevel: logLevel.WARN, logCreator: toStderr,
    retry: { retries: 5 } });
}

const T0 = Date.now();
// Notes on stderr how far the scenario got, and when: the trail a failing
// test shows.
const step = (what) => process.stderr.write(`[${((Date.now() - T0) / 1000).toFixed(2).padStart(6)}s] ${what}\n`);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond, what, members = []) {
  const t0 = Date.now();
  while (!cond()) {
    for (const m of members) if (m.crashed) throw new Error(`${what}: member crashed: ${m.crashed}`);
    if (Date.now() - t0 > DEADLINE) throw new Error(`${what}: not done within ${DEADLINE} ms`);
    await sleep(20);
  }
}

function headersOut(h) {
  const out = [];
  for (const [k, v] of Object.entries(h || {})) {
    for (const one of Array.isArray(v) ? v : [v]) out.push([k, one == null ? null : one.toString()]);
  }
  return out;
}

function headersIn(h) {
  const out = {};
  for (const [k, v] of h) {
    if (k in out) out[k] = [].concat(out[k], v);
    else out[k] = v;
  }
  return out;
}

const IDEMPOTENT = process.env.SPOOL_KAFKAJS_IDEMPOTENT === '1';

async function producer(kafka) {
  const p = kafka.producer({ idempotent: IDEMPOTENT, allowAutoTopicCreation: false });
  await p.connect();
  return p;
}

// Sends records (each to its own partition) in one request; returns
// [partition, offset] of each, in order.
async function produce(p, topic, records, compression) {
  const res = await p.send({ topic, acks: -1, compression, messages: records.map((r) => ({
    partition: r.p, key: r.k, value: r.v, headers: r.h ? headersIn(r.h) : undefined,
    timestamp: r.ts ? String(r.ts) : undefined })) });
  const base = {};
  for (const m of res) {
    if (m.errorCode) throw new Error(`produce: error ${m.errorCode} on partition ${m.partition}`);
    base[m.partition] = BigInt(m.baseOffset);
  }
  const next = {};
  return records.map((r) => {
    const o = base[r.p] + BigInt(next[r.p] || 0);
    next[r.p] = (next[r.p] || 0) + 1;
    return [r.p, Number(o)];
  });
}

async function roundtrip(bootstrap, prefix) {
  const topic = `${prefix}-rt`;
  const kafka = client(bootstrap, 'spool-test-kafkajs');
  const recs = rtRecords(CODECS);
  const produced = [];
  const p = await producer(kafka);
  try {
    for (const c of CODECS) {
      produced.push(...await produce(p, topic, recs.filter((r) => r.codec === c), TYPES[c]));
      step(`produced ${c}`);
    }
  } finally {
    await p.disconnect();
  }
  // kafkajs has no assign(): a group of its own reads the topic from the start.
  const consumed = [];
  const cons = kafka.consumer({ groupId: `${prefix}-rt-reader`, maxWaitTimeInMs: 100,
    sessionTimeout: 10000, heartbeatInterval: 500 });
  await cons.connect();
  try {
    await cons.subscribe({ topic, fromBeginning: true });
    await cons.run({ autoCommit: false, eachMessage: async ({ partition, message: m }) => {
      consumed.push({ p: partition, o: Number(m.offset), k: m.key == null ? null : m.key.toString(),
        v: m.value == null ? null : m.value.toString(), h: headersOut(m.headers), ts: Number(m.timestamp) });
    } });
    step('reader started');
    await waitFor(() => consumed.length >= recs.length, 'consume');
    step('read back');
  } finally {
    await cons.disconnect();
  }
  consumed.sort((a, b) => a.p - b.p || a.o - b.o);
  return { codecs: CODECS, produced, consumed };
}

async function member(kafka, topic, group, name) {
  const m = { name, assigned: new Set(), records: [], next: {}, crashed: null };
  m.c = kafka.consumer({ groupId: group, maxWaitTimeInMs: 100, sessionTimeout: 10000,
    heartbeatInterval: 500 });
  m.c.on(m.c.events.GROUP_JOIN, (e) => {
    m.assigned = new Set(e.payload.memberAssignment[topic] || []);
  });
  m.c.on(m.c.events.REBALANCING, () => { m.assigned = new Set(); });
  m.c.on(m.c.events.CRASH, (e) => { m.crashed = String(e.payload.error); });
  await m.c.connect();
  await m.c.subscribe({ topic, fromBeginning: true });
  await m.c.run({ autoCommit: false, eachMessage: async ({ partition, message }) => {
    m.records.push([partition, Number(message.offset), message.value.toString()]);
    m.next[partition] = Number(message.offset) + 1;
  } });
  return m;
}

async function commitClose(m, admin, topic, group) {
  m.final = [...m.assigned].sort((a, b) => a - b);
  await m.c.commitOffsets(m.final.filter((p) => p in m.next).map((p) => ({ topic, partition: p,
    offset: String(m.next[p]) })));
  const offs = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  m.committed = {};
  for (const t of offs) {
    for (const po of t.partitions) {
      if (m.final.includes(po.partition)) m.committed[String(po.partition)] = Number(po.offset);
    }
  }
  await m.c.disconnect();
}

const memberOut = (m) => ({ assigned: m.final, records: m.records, committed: m.committed });

function stable(ms) {
  const sets = ms.map((m) => m.assigned);
  if (sets.some((s) => s.size === 0)) return false;
  const union = new Set(sets.flatMap((s) => [...s]));
  return union.size === GROUP_PARTS && sets.reduce((n, s) => n + s.size, 0) === GROUP_PARTS;
}

async function group(bootstrap, prefix) {
  const topic = `${prefix}-grp`;
  const grp = `${prefix}-g`;
  const kafka = client(bootstrap, 'spool-test-kafkajs');
  const admin = kafka.admin();
  await admin.connect();
  const p = await producer(kafka);
  try {
    const a = await member(kafka, topic, grp, 'a');
    const b = await member(kafka, topic, grp, 'b');
    await waitFor(() => stable([a, b]), 'two members assigned', [a, b]);
    step(`a: ${[...a.assigned]}, b: ${[...b.assigned]}`);
    const rec = ([part, v]) => ({ p: part, k: null, v });
    await produce(p, topic, groupValues(1).map(rec), CompressionTypes.None);
    await waitFor(() => a.records.length + b.records.length >= PHASE1 * GROUP_PARTS, 'phase 1', [a, b]);
    step('phase 1 read');
    for (const m of [a, b]) await commitClose(m, admin, topic, grp);
    await produce(p, topic, groupValues(2).map(rec), CompressionTypes.None);
    step('a and b closed, phase 2 produced');
    const c = await member(kafka, topic, grp, 'c');
    await waitFor(() => c.records.length >= PHASE2 * GROUP_PARTS, 'after the restart', [c]);
    step('phase 2 read by c');
    await commitClose(c, admin, topic, grp);
    return { members: { a: memberOut(a), b: memberOut(b) }, restart: memberOut(c) };
  } finally {
    await p.disconnect();
    await admin.disconnect();
  }
}

async function admin(bootstrap, prefix) {
  const topic = `${prefix}-adm`;
  const grp = `${prefix}-adm-g`;
  const kafka = client(bootstrap, 'spool-test-kafkajs');
  const adm = kafka.admin();
  await adm.connect();
  const out = {};
  try {
    const created = await adm.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 2,
      replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }] });
    if (!created) throw new Error('create: not created');
    out.create = 0;
    // kafkajs answers false for TOPIC_ALREADY_EXISTS (36) instead of throwing.
    const again = await adm.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] });
    out.create_again = again ? 0 : 36;
    const partitions = async (n) => {
      const t0 = Date.now();
      for (;;) {
        out.listed = (await adm.listTopics()).includes(topic);
        const md = await adm.fetchTopicMetadata({ topics: [topic] });
        const ps = md.topics[0].partitions.map((x) => x.partitionId).sort((x, y) => x - y);
        if (out.listed && ps.length === n) return ps;
        if (Date.now() - t0 > DEADLINE) throw new Error('topic metadata: timed out');
        await sleep(100);
      }
    };
    out.partitions = await partitions(2);
    const configs = async (retention) => {
      const t0 = Date.now();
      for (;;) {
        const r = await adm.describeConfigs({ includeSynonyms: false,
          resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }] });
        const m = {};
        for (const e of r.resources[0].configEntries) {
          if (e.configName === 'retention.ms' || e.configName === 'cleanup.policy') m[e.configName] = e.configValue;
        }
        if (m['retention.ms'] === retention || Date.now() - t0 > DEADLINE) return m;
        await sleep(100);
      }
    };
    out.configs = await configs('3600000');
    // kafkajs has AlterConfigs only (not the incremental form).
    await adm.alterConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: topic,
      configEntries: [{ name: 'retention.ms', value: '7200000' }] }] });
    out.configs_altered = await configs('7200000');
    await adm.createPartitions({ topicPartitions: [{ topic, count: 4 }] });
    out.partitions_after = await partitions(4);

    step('topic made, configs altered, partitions added');
    const m = await member(kafka, topic, grp, 'adm-member');
    try {
      await waitFor(() => m.assigned.size === 4, 'admin group member', [m]);
      const lg = await adm.listGroups();
      out.groups = lg.groups.filter((g) => g.groupId === grp).map((g) => g.groupId);
      const dg = await adm.describeGroups([grp]);
      const g = dg.groups[0];
      const assigned = new Set();
      for (const mem of g.members) {
        const a = AssignerProtocol.MemberAssignment.decode(mem.memberAssignment);
        for (const part of (a && a.assignment[topic]) || []) assigned.add(part);
      }
      out.group = { state: g.state.toLowerCase(), members: g.members.length,
        assigned: [...assigned].sort((x, y) => x - y) };
    } finally {
      await m.c.disconnect();
    }
    await adm.deleteTopics({ topics: [topic] });
    const t0 = Date.now();
    while ((await adm.listTopics()).includes(topic)) {
      if (Date.now() - t0 > DEADLINE) throw new Error('topic deleted: timed out');
      await sleep(100);
    }
    step('topic deleted');
    out.deleted = true;
  } finally {
    await adm.disconnect();
  }
  return out;
}

const SCENARIOS = { roundtrip, group, admin };

async function main(argv) {
  if (argv.length !== 3 || !SCENARIOS[argv[0]]) {
    process.stderr.write('usage: node scenarios.js roundtrip|group|admin BOOTSTRAP PREFIX\n');
    return 2;
  }
  const t0 = Date.now();
  const res = await SCENARIOS[argv[0]](argv[1], argv[2]);
  res.client = { kafkajs: require('kafkajs/package.json').version,
    'kafkajs-snappy': require('kafkajs-snappy/package.json').version, node: process.version };
  res.seconds = (Date.now() - t0) / 1000;
  process.stdout.write(JSON.stringify(res) + '\n');
  return 0;
}

main(process.argv.slice(2)).then((rc) => { process.exitCode = rc; }, (e) => {
  process.stderr.write(`error: ${e && e.stack ? e.stack : e}\n`);
  process.exitCode = 1;
});
