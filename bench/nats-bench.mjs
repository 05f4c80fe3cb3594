// nats-bench.mjs HOST:PORT N SIZE - JetStream async publish throughput.
// A stream with file storage; publishes N messages of SIZE bytes keeping a
// window of acknowledgements in flight; prints one JSON line.
import { connect } from 'nats';

const [server, nArg, sizeArg] = process.argv.slice(2);
const n = parseInt(nArg, 10), size = parseInt(sizeArg, 10);
const nc = await connect({ servers: server });
const jsm = await nc.jetstreamManager();
const name = 'bench' + size;
try { await jsm.streams.delete(name); } catch (e) { /* new */ }
await jsm.streams.add({ name, subjects: [name + '.>'], storage: 'file' });
const js = nc.jetstream();
const payload = new Uint8Array(size).fill(120);
const window = 512; // measured best for nats.js here (64: 15k/s, 512: 20k/s, 4096: 14k/s)
let inflight = [];
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) {
  inflight.push(js.publish(name + '.x', payload));
  if (inflight.length >= window) {
    await Promise.all(inflight);
    inflight = [];
  }
}
await Promise.all(inflight);
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
// for scale: core NATS publishes into the same stream, not acknowledged
const t1 = process.hrtime.bigint();
for (let i = 0; i < n; i++) nc.publish(name + '.x', payload);
await nc.flush();
const csecs = Number(process.hrtime.bigint() - t1) / 1e9;
console.log(JSON.stringify({ records: n, size, seconds: secs, records_per_s: n / secs,
                             core_unacked_per_s: n / csecs }));
await nc.drain();
