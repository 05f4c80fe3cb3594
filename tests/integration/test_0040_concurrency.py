"""Concurrency: many producers and partitions against the flush thread
(group commit), one connection alternating partitions, and topic
operations (create, DeleteRecords, delete) racing the flush thread while
producers and a consumer group run.

These are the outside testers' workloads that crashed the broker before
48dff05 (logmgr.c flusher_main: a kick during a flush pass re-linked a log
of the pass into the new queue, so logs were unref'ed twice: SIGSEGV or
heap-use-after-free within seconds of ordinary load).  Each load loop
watches the broker process and stops as soon as it dies, so a crash fails
the test in seconds, with the tail of the broker's log (where an ASan
report or the signal shows up).

Oracle: the broker is still running and answers Metadata, every
acknowledged record is read back exactly once, in offset order, per
partition (and each producer's records of a partition in the order it
sent them), and the broker then stops cleanly (exit code 0, so under
ASan no leaked log either).  SPOOL_LOAD_SECONDS scales the load (default 4 s per test).
"""

import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict

import kafka_wire as kw
from client_helpers import create_topic, producer
from spool_clients import confluent_admin, confluent_metadata

LOAD_SECONDS = float(os.environ.get('SPOOL_LOAD_SECONDS', '4'))
OFFSET_BEGINNING = -2


# ------------------------------------------------------------------ helpers


def crash_report(b):
    rc = b.proc.poll()
    state = 'running' if rc is None else 'exited with %r' % rc
    return 'broker %s; log tail:\n%s' % (state, b.log_text()[-6000:])


def died(b, grace=3.0):
    """Whether the broker is dead or dies within `grace` seconds (a client
    may see the connection drop before the process is gone)."""
    try:
        b.proc.wait(timeout=grace)
        return True
    except subprocess.TimeoutExpired:
        return False


def assert_alive(b, topic=None):
    """The process is up and answers a Metadata request."""
    assert b.running(), crash_report(b)
    md = confluent_metadata(b.bootstrap, topic=topic, timeout=10)
    assert md.brokers, 'no brokers in metadata'
    if topic is not None:
        assert md.topics[topic].error is None, md.topics[topic].error
    assert b.running(), crash_report(b)


def flush_while_alive(b, p, timeout=20):
    """p.flush() for up to timeout seconds, giving up at once if the broker
    dies (then whatever is left is purged).  Returns the records left."""
    deadline = time.monotonic() + timeout
    left = p.flush(0)
    while left and b.running() and time.monotonic() < deadline:
        left = p.flush(0.2)
    if left and not b.running():  # nothing more can be acknowledged
        p.purge(in_queue=True, in_flight=True, blocking=False)
        p.flush(2)
    return left


class LoadProducer(threading.Thread):
    """One confluent-kafka Producer (its own broker connection) sending
    records b'<name>:<seq>' to topic, record seq to
    partitions[(seq + skew) % len(partitions)], at `rate` records/s (None:
    as fast as the client takes them), until `stop` is set or the broker
    dies.  Keeps what the delivery reports acknowledged."""

    def __init__(self, broker, name, topic, partitions, stop, rate=None, skew=0, **conf):
        super().__init__(name=name, daemon=True)
        self.b = broker
        self.label = name
        self.topic = topic
        self.partitions = list(partitions)
        self.stop_ev = stop
        self.rate = rate
        self.skew = skew
        self.acked = []          # (partition, offset, value)
        self.errors = []         # (partition, value, error)
        self.sent = 0
        self.left = None         # deliveries unresolved at the end
        c = {'linger.ms': 5, 'message.timeout.ms': 15000, 'client.id': name}
        c.update(conf)
        self.p = producer(broker.bootstrap, **c)

    def _cb(self, err, msg):
        if err is None:
            self.acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            self.errors.append((msg.partition(), msg.value(), str(err)))

    def _send(self, seq):
        part = self.partitions[(seq + self.skew) % len(self.partitions)]
        self.p.produce(self.topic, value=b'%s:%d' % (self.label.encode(), seq),
                       partition=part, on_delivery=self._cb)

    def run(self):
        tick = 0.01
        per_tick = max(1, int(round(self.rate * tick))) if self.rate else 200
        seq = 0
        next_t = time.monotonic()
        while not self.stop_ev.is_set() and self.b.running():
            for _ in range(per_tick):
                try:
                    self._send(seq)
                    seq += 1
                except BufferError:
                    self.p.poll(0.01)
                    break
            self.p.poll(0)
            if self.rate:
                next_t += tick
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        self.sent = seq
        self.left = flush_while_alive(self.b, self.p)


def run_load(b, threads, seconds, stop):
    """Starts threads, lets them run `seconds` (less if the broker dies),
    stops and joins them."""
    for t in threads:
        t.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and b.running():
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(40)
        assert not t.is_alive(), '%s did not finish' % t.label


def read_back(b, topic, partitions, timeout=30):
    """Every record of each partition from its log start to its high
    watermark: {p: (log_start, [(offset, value)])}."""
    from confluent_kafka import KafkaError, TopicPartition
    from client_helpers import consumer
    c = consumer(b.bootstrap, **{'group.id': 'conc-readback'})
    try:
        marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                 for p in partitions}
        got = {p: [] for p in partitions}
        todo = {p for p in partitions if marks[p][1] > marks[p][0]}
        c.assign([TopicPartition(topic, p, marks[p][0]) for p in todo])
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError('consume error: %s' % m.error())
            got[m.partition()].append((m.offset(), m.value()))
            if m.offset() + 1 >= marks[m.partition()][1]:
                todo.discard(m.partition())
        assert not todo, 'partitions %s not read to their end within %ss' % (sorted(todo), timeout)
        return {p: (marks[p][0], got[p]) for p in partitions}
    finally:
        c.close()


def check_acknowledged(b, topic, partitions, producers, whole_log=True):
    """Every acknowledged record is in the log exactly once at its offset;
    per partition, each producer's records are in the order it sent them.
    whole_log: the log holds nothing else (offsets from the log start are
    all acknowledged ones)."""
    acked = defaultdict(dict)
    for pr in producers:
        for p, off, v in pr.acked:
            assert off not in acked[p], 'offset %d of partition %d acknowledged twice (%r, %r)' % (
                off, p, acked[p][off], v)
            acked[p][off] = v
    logs = read_back(b, topic, partitions)
    total = 0
    for p in partitions:
        start, got = logs[p]
        offsets = [o for o, _ in got]
        assert len(set(offsets)) == len(offsets), 'partition %d: an offset read twice' % p
        assert offsets == sorted(offsets), 'partition %d: offsets out of order' % p
        values = [v for _, v in got]
        assert len(set(values)) == len(values), 'partition %d: a record read twice' % p
        by_offset = dict(got)
        want = {o: v for o, v in acked[p].items() if o >= start}
        missing = [(o, v, by_offset.get(o)) for o, v in sorted(want.items()) if by_offset.get(o) != v]
        assert not missing, 'partition %d: acknowledged records missing or different: %r' % (
            p, missing[:5])
        if whole_log:
            extra = [(o, v) for o, v in got if o not in want]
            assert not extra, 'partition %d: records nobody acknowledged: %r' % (p, extra[:5])
        last = {}
        for o, v in got:
            name, _, seq = v.partition(b':')
            seq = int(seq)
            assert last.get(name, -1) < seq, 'partition %d: %r after seq %d of %r' % (
                p, v, last[name], name)
            last[name] = seq
        total += len(want)
    return total


def assert_clean_stop(b):
    """SIGTERM: a clean stop, exit code 0 (under ASan: no leak either)."""
    rc = b.stop(timeout=20)
    assert rc == 0, crash_report(b)


def assert_clean_delivery(producers):
    for pr in producers:
        assert pr.left == 0, '%s: %d deliveries unresolved' % (pr.label, pr.left)
        assert not pr.errors, '%s: %d delivery errors, e.g. %r' % (
            pr.label, len(pr.errors), pr.errors[:3])
        assert len(pr.acked) == pr.sent, (pr.label, len(pr.acked), pr.sent)


# ------------------------------------------- many producers, many partitions


def test_many_producers_many_partitions(start_broker):
    """4 acks=all and 4 acks=1 producers, each its own connection, at 1000
    records/s each over the 8 partitions of one topic, so every flush pass
    holds several logs and kicks arrive during the pass.  (Before the fix:
    SIGSEGV within about a second on every run; ASan: 5 runs in 6.)"""
    b = start_broker()
    topic, nparts = 'conc-many', 8
    create_topic(b.bootstrap, topic, nparts)
    stop = threading.Event()
    prods = [LoadProducer(b, 'p%d-%s' % (i, acks), topic, range(nparts), stop, rate=1000,
                          skew=i, acks=acks)
             for i, acks in enumerate(['all'] * 4 + ['1'] * 4)]
    t0 = time.monotonic()
    run_load(b, prods, LOAD_SECONDS, stop)
    assert_alive(b, topic)
    assert_clean_delivery(prods)
    n = check_acknowledged(b, topic, range(nparts), prods)
    assert n >= 8 * 1000 * LOAD_SECONDS * 0.25, 'only %d records acknowledged' % n
    assert_clean_stop(b)
    print('%d records from 8 producers on %d partitions in %.1f s' % (
        n, nparts, time.monotonic() - t0))


# ------------------------------------ one connection alternating partitions


def test_one_connection_alternating_partitions(start_broker):
    """One acks=1 producer connection, records alternating between two
    partitions, as fast as the client goes: each flush pass holds both
    logs, and the next produce kicks one of them during the pass."""
    b = start_broker()
    topic = 'conc-alt'
    create_topic(b.bootstrap, topic, 2)
    stop = threading.Event()
    pr = LoadProducer(b, 'alt', topic, [0, 1], stop, rate=5000, acks='1',
                      **{'linger.ms': 0, 'batch.num.messages': 1,
                         'queue.buffering.max.messages': 2000})
    run_load(b, [pr], LOAD_SECONDS, stop)
    assert_alive(b, topic)
    assert_clean_delivery([pr])
    n = check_acknowledged(b, topic, [0, 1], [pr])
    assert n > 1000, 'only %d records acknowledged' % n
    assert_clean_stop(b)
    print('%d records alternating over 2 partitions' % n)


# ----------------------- topic operations racing the flush thread, a group


GROUP_SCRIPT = r'''
import json, sys, time
from confluent_kafka import Consumer, KafkaError
conf, topic, seconds = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3])
out = {"count": 0, "commits": 0, "commit_errors": [], "errors": []}
def on_commit(err, parts):
    if err is None:
        out["commits"] += 1
    else:
        out["commit_errors"].append(str(err))
conf["on_commit"] = on_commit
c = Consumer(conf)
c.subscribe([topic])
end = time.monotonic() + seconds
while time.monotonic() < end:
    m = c.poll(0.1)
    if m is None:
        continue
    if m.error():
        if m.error().code() != KafkaError._PARTITION_EOF:
            out["errors"].append(str(m.error()))
        continue
    out["count"] += 1
c.close()
sys.stdout.write(json.dumps(out) + "\n")
'''

CODECS = ('none', 'gzip', 'snappy', 'lz4', 'zstd')


def half_acknowledged(producers, nparts):
    """{partition: half its highest offset acknowledged with acks=all} (so
    below the high watermark; DeleteRecords to there leaves half the
    partition to check)."""
    top = {p: -1 for p in range(nparts)}
    for pr in producers:
        for p, off, _v in list(pr.acked):
            top[p] = max(top[p], off)
    return {p: (off + 1) // 2 for p, off in top.items()}


def churn_round(b, admin, codec_producers, racer, name, steady, steady_starts):
    """One round: create `name`, produce to it once per codec (acks=all,
    all acknowledged), DeleteRecords on it (to its high watermark) and on
    `steady` (steady_starts: {partition: offset}, offsets known to be
    below its high watermark), produce again and delete the topic while
    those produces are in flight."""
    from confluent_kafka.admin import NewTopic
    fs = admin.create_topics([NewTopic(name, num_partitions=4, replication_factor=1)],
                             operation_timeout=10, request_timeout=15)
    fs[name].result(timeout=20)
    for p in list(codec_producers.values()) + [racer]:  # no wait for a metadata refresh
        p.list_topics(name, timeout=5)
    errors, acked = [], []

    def cb(err, msg):
        (errors if err else acked).append((msg.partition(), err))

    for c, p in codec_producers.items():
        for k in range(20):
            p.produce(name, value=(b'%s-%d-' % (c.encode(), k)) * 8, partition=k % 4,
                      on_delivery=cb)
    for p in codec_producers.values():
        assert flush_while_alive(b, p) == 0, crash_report(b)
    assert not errors and len(acked) == 20 * len(CODECS), errors[:5]
    res = kw.delete_records(b.port, {name: [(p, -1) for p in range(4)],
                                     steady: sorted(steady_starts.items())})
    assert all(err == 0 for parts in res.values() for _lw, err in parts.values()), res
    assert all(lw == 20 * len(CODECS) // 4 for lw, _ in res[name].values()), res
    assert all(res[steady][p][0] >= off for p, off in steady_starts.items()), res
    for k in range(20):
        racer.produce(name, value=b'racer-%d' % k, partition=k % 4)
    racer.poll(0)
    fs = admin.delete_topics([name], operation_timeout=10, request_timeout=15)
    fs[name].result(timeout=20)


def test_topic_operations_race_flush(start_broker):
    """While four producers (acks=all, acks=1) load an 8-partition topic and
    a consumer group reads it with auto-commit: create a topic, produce to
    it once per codec (acks=all), DeleteRecords on it and on the loaded
    topic (to half of what is acknowledged), produce again and delete the
    topic while those produces wait for their flush; over and over."""
    b = start_broker({'auto.create.topics.enable': 'false',
                      'group.initial.rebalance.delay.ms': 0})
    steady, nparts = 'conc-steady', 8
    create_topic(b.bootstrap, steady, nparts)
    stop = threading.Event()
    prods = [LoadProducer(b, 'steady%d-%s' % (i, acks), steady, range(nparts), stop, rate=500,
                          skew=2 * i, acks=acks)
             for i, acks in enumerate(('all', '1', 'all', '1'))]
    group_conf = {'bootstrap.servers': b.bootstrap, 'group.id': 'conc-group',
                  'auto.offset.reset': 'earliest', 'enable.auto.commit': True,
                  'auto.commit.interval.ms': 200, 'session.timeout.ms': 10000,
                  'heartbeat.interval.ms': 500}
    group = subprocess.Popen([sys.executable, '-c', GROUP_SCRIPT, json.dumps(group_conf),
                              steady, str(LOAD_SECONDS + 1)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        admin = confluent_admin(b.bootstrap)
        codec_producers = {c: producer(b.bootstrap, **{'acks': 'all', 'compression.type': c,
                                                       'client.id': 'codec-' + c})
                           for c in CODECS}
        # its produces are left in flight when the topic goes (never flushed)
        racer = producer(b.bootstrap, **{'acks': 'all', 'linger.ms': 0,
                                         'message.timeout.ms': 3000, 'client.id': 'racer'})
        for t in prods:
            t.start()
        end = time.monotonic() + LOAD_SECONDS
        rounds = 0
        while time.monotonic() < end and b.running():
            try:
                churn_round(b, admin, codec_producers, racer, 'churn-%d' % rounds, steady,
                            half_acknowledged(prods[::2], nparts))
            except Exception as e:
                if died(b):  # the cause, rather than a client's error
                    raise AssertionError(crash_report(b)) from e
                raise
            rounds += 1
        stop.set()
        for t in prods:
            t.join(40)
        assert b.running(), crash_report(b)
        assert rounds >= 2, 'only %d rounds' % rounds
        racer.purge(in_queue=True, in_flight=True, blocking=False)
        racer.flush(5)
        out, err = group.communicate(timeout=30)
        assert group.returncode == 0, err.decode(errors='replace')[-3000:]
        summary = json.loads(out.decode().strip().splitlines()[-1])
        assert_alive(b, steady)
        assert_clean_delivery(prods)
        n = check_acknowledged(b, steady, range(nparts), prods)
        assert summary['count'] > 0 and summary['commits'] > 0, summary
        assert not summary['commit_errors'], summary
        md = confluent_metadata(b.bootstrap, timeout=10)
        assert not [t for t in md.topics if t.startswith('churn-')], sorted(md.topics)
        assert_clean_stop(b)
        print('%d rounds of create/produce x%d codecs/DeleteRecords/delete; %d records '
              'on %s from its log start; group read %d, %d commits' % (
                  rounds, len(CODECS), n, steady, summary['count'], summary['commits']))
    finally:
        stop.set()
        if group.poll() is None:
            group.kill()
            group.wait(10)
