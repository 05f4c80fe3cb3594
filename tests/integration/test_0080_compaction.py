"""Log compaction (Kafka's log cleaner), on Apache Kafka 4.3.1 and on Spool
alike: each test runs once per broker ('kafka', 'spool'; 'kafka' only with
SPOOL_DIFF_FULL=1, as `make difftest` runs it) and asserts the same things on both, except the kill -9 test (Spool only: Kafka's restarts
cost 10-15 s each) and the test that compares the two (one test, both).

Both brokers run with the same settings (BROKER_CONF): the cleaner's
backoff 100 ms, one cleaner thread with the smallest dedupe buffer Kafka
4.3 accepts (log.cleaner.dedupe.buffer.size must be more than 1 MiB per
thread: 1048577), so that its offset map holds (1048577 // 24) * 0.9 =
39321 keys (SkimpyOffsetMap: 16 bytes of MD5 and an 8-byte offset per
slot, filled to log.cleaner.io.buffer.load.factor 0.9), and the smallest
segments Kafka 4.3 accepts (segment.bytes and log.segment.bytes: at least
1048576).  Compacted topics here set min.cleanable.dirty.ratio 0 (the
smallest accepted): a log is then cleaned whenever it has anything
cleanable, so that the cleaner always ends with one record per key below
the active segment (with the default 0.5 a log cleaned in several passes
stops while its dirty part is smaller than its clean part).

A log's data below its active segment is "cleaned" when it holds exactly
what Kafka's algorithm leaves: per key, the last record below the active
segment (keyless records dropped, tombstones kept until their delete
horizon), each at its original offset, unchanged; the active segment is
never touched.  Tests write a filler of more than one segment of
unique-key records after their data so that all of it is below the
active segment, and poll (with deadlines) until a consumer reading from
the beginning sees exactly that.  The active segment is the highest
<base>.log in the partition directory (Kafka's layout on both).

- test_many_versions_small_dedupe_buffer: 50000 keys x 8 versions, more
  keys than the offset map holds: cleaned in several passes; the
  cleaner-offset-checkpoint then names the active segment's base.
- test_tombstones_delete_horizon: tombstones stay after the first cleaning
  (KIP-534: their batch gets a delete horizon), still after another
  cleaning before delete.retention.ms, and go at the first cleaning after
  it; the deleted keys' older values never come back.
- test_keyless_records_refused: Produce of keyless records to compact and
  "compact,delete" topics: INVALID_RECORD, every keyless record named.
- test_switch_delete_compact_delete: IncrementalAlterConfigs delete ->
  compact (old duplicates and keyless records cleaned) -> delete (nothing
  cleaned any more; retention.ms applies).
- test_compact_and_delete: cleanup.policy=compact,delete.
- test_min_compaction_lag, test_max_compaction_lag: nothing cleaned before
  min.compaction.lag.ms; cleaning forced after max.compaction.lag.ms
  below min.cleanable.dirty.ratio.
- test_compressed_batches: gzip, snappy, lz4, zstd batches cleaned: values
  read back, and every batch (raw Fetch) keeps its codec.
- test_consumers_during_cleaning: consumers reading from the beginning
  again and again while a producer writes and the cleaner cleans.
- test_idempotent_producer_after_cleaning: the same idempotent producer
  goes on after the cleaner removed its older batches, and after a
  restart of the broker.
- test_group_commits_cleaned: 5000 commits (16 partitions each), a
  restart, the group's committed offsets; __consumer_offsets cleaned.
- test_kill9_while_cleaning (Spool): kill -9 while cleaning, 15 rounds.
- test_same_as_kafka: the same input on both; the same records after
  cleaning.

Kafka is one instance for the module (started with BROKER_CONF); Spool a
broker per test.  Each test prints how long it took.
"""

import os
import random
import re
import signal
import threading
import time
from pathlib import Path

import pytest

import kafka_wire as kw
import log_segments
from client_helpers import create_topic

SEG = 1048576                   # Kafka 4.3's smallest segment.bytes
DEDUPE = 1048577                # its smallest dedupe buffer for one thread
MAP_KEYS = int((DEDUPE // 24) * 0.9)   # 39321 keys per cleaning pass
BROKER_CONF = {
    'log.cleaner.backoff.ms': '100',
    'log.cleaner.threads': '1',
    'log.cleaner.dedupe.buffer.size': str(DEDUPE),
    'log.segment.bytes': str(SEG),
    'log.retention.check.interval.ms': '200',
    'offsets.topic.segment.bytes': str(SEG),
    'group.initial.rebalance.delay.ms': '0',
}
# Kafka starts its retention task log.initial.task.delay.ms (30 s) after
# its start: at once here (Spool has no such delay)
KAFKA_ONLY = {'log.initial.task.delay.ms': '0'}
COMPACT = {'cleanup.policy': 'compact', 'segment.bytes': str(SEG),
           'min.cleanable.dirty.ratio': '0'}
CLEAN_TIMEOUT = float(os.environ.get('SPOOL_COMPACTION_TIMEOUT', '60'))
FILLER_VALUE = b'f' * 1000
FILLER_N = 1150                 # > 1 MiB of records: rolls the segment holding what came before
NONE = 0
INVALID_RECORD = 87


# ---------------------------------------------------------------- brokers


class KafkaTarget:
    """The module's Kafka; a restart keeps its port."""
    name = 'kafka'

    def __init__(self, holder):
        self.holder = holder

    @property
    def k(self):
        return self.holder['kafka']

    @property
    def port(self):
        return self.k.port

    @property
    def bootstrap(self):
        return self.k.bootstrap

    @property
    def log_dir(self):
        return Path(self.k.data_dir) / 'logs'

    def use_proxy(self):
        pass

    def restart(self, kill=False):
        import kafka_ref
        self.holder['kafka'] = kafka_ref.restart(self.k, kill=kill)

    def log_text(self):
        return self.k.log_text()


class SpoolTarget:
    """A Spool broker.  A restart starts another on the same data (with
    self.conf) and another port: clients made before it find it again
    only through a proxy that it advertises (use_proxy(), before any
    client)."""
    name = 'spool'

    def __init__(self, start_broker, addfinalizer=None):
        self.start_broker = start_broker
        self.addfinalizer = addfinalizer
        self.conf = dict(BROKER_CONF)
        self.proxy = None
        self.broker = start_broker(self.conf)

    @property
    def port(self):
        return self.broker.port

    @property
    def bootstrap(self):
        return self.proxy.bootstrap if self.proxy else self.broker.bootstrap

    @property
    def log_dir(self):
        return self.broker.data_dir

    def use_proxy(self):
        from tcp_proxy import ChaosProxy
        self.proxy = ChaosProxy(seed=80)
        self.addfinalizer(self.proxy.close)
        self.conf['advertised.listeners'] = self.proxy.advertised
        self.restart()

    def restart(self, kill=False):
        b = self.broker
        b.stop(sig=signal.SIGKILL if kill else signal.SIGTERM, timeout=30)
        self.broker = self.start_broker(self.conf, data_dir=b.data_dir)
        if self.proxy:
            self.proxy.set_target(self.broker.port)
            self.proxy.drop_all()

    def log_text(self):
        return self.broker.log_text()


@pytest.fixture(scope='module')
def kafka_compact(tmp_path_factory):
    """Kafka 4.3.1 of this module's own, with BROKER_CONF."""
    import kafka_ref
    holder = {'kafka': kafka_ref.start(tmp_path_factory.mktemp('kafka-compact'),
                                       overrides=dict(BROKER_CONF, **KAFKA_ONLY))}
    yield holder
    holder['kafka'].stop()


# `make test` runs the Spool side (and test_same_as_kafka); the Kafka side,
# which proves that each test encodes Kafka's behaviour, runs with the full
# differential tests (`make difftest`, SPOOL_DIFF_FULL=1): about a minute.
TARGETS = ['kafka', 'spool'] if os.environ.get('SPOOL_DIFF_FULL') else ['spool']


@pytest.fixture(params=TARGETS)
def target(request, start_broker):
    t0 = time.monotonic()
    if request.param == 'kafka':
        t = KafkaTarget(request.getfixturevalue('kafka_compact'))
    else:
        t = SpoolTarget(start_broker, request.addfinalizer)
    t1 = time.monotonic()
    yield t
    print('\n%s [%s]: %.1f s (broker start %.1f s)' % (request.node.originalname, t.name,
                                                       time.monotonic() - t1, t1 - t0))


# ---------------------------------------------------------------- helpers


def make_topic(t, base, config, partitions=1):
    """Creates <base>-<target> with config and waits until every partition
    answers ListOffsets (Kafka names a new partition's leader a moment
    before it takes writes); returns its name."""
    topic = '%s-%s' % (base, t.name)
    create_topic(t.bootstrap, topic, partitions, config)
    deadline = time.monotonic() + 30
    while True:
        payload = kw.send_recv(t.port, kw.list_offsets_request(81, topic, list(range(partitions))),
                               timeout=15)
        errs = {k: v['error_code'] for k, v in kw.parse_list_offsets_response(payload).items()}
        if len(errs) == partitions and set(errs.values()) == {NONE}:
            return topic
        assert time.monotonic() < deadline, errs
        time.sleep(0.1)


def producer(t, **conf):
    from confluent_kafka import Producer
    c = {'bootstrap.servers': t.bootstrap, 'acks': 'all', 'linger.ms': 5}
    c.update(conf)
    return Producer(c)


def warm(p, topic):
    """Puts the topic in the client's metadata cache: else a broker that
    answers fast (Spool) answers librdkafka's first metadata request
    (brokers only) before the client knows of the topic, and its first
    record waits a second for the next one."""
    p.list_topics(topic, timeout=10)


def send(p, topic, records, delivered=None, flush=True, partition=0, timestamps=None):
    """records: [(key, value)] or [(key, value, timestamp)], produced in
    order to one partition.  Each delivery report adds offset -> (key,
    value) to `delivered` (a dict, returned), and offset -> timestamp to
    `timestamps` if given; an error fails the test."""
    if delivered is None:
        delivered = {}
    errors = []
    warm(p, topic)

    def cb(err, msg):
        if err is not None:
            errors.append((err, msg.key()))
        else:
            delivered[msg.offset()] = (msg.key(), msg.value())
            if timestamps is not None:
                timestamps[msg.offset()] = msg.timestamp()[1]

    for r in records:
        kw_ = {'key': r[0], 'value': r[1], 'partition': partition, 'on_delivery': cb}
        if len(r) > 2:
            kw_['timestamp'] = r[2]
        while True:
            try:
                p.produce(topic, **kw_)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    if flush:
        assert p.flush(60) == 0, 'records not delivered within 60 s'
    assert not errors, errors[:5]
    return delivered


def filler(tag, n=FILLER_N):
    """More than one segment of unique-key records: everything written
    before them ends up below the active segment."""
    return [(b'fill-%s-%05d' % (tag.encode(), i), FILLER_VALUE) for i in range(n)]


def read_all(t, topic, partition=0, timeout=60, to_eof=False, **conf):
    """Every record of the partition from its log start to the high
    watermark seen first (with to_eof, to the first end of the partition
    the consumer reaches, while a producer writes more): ([(offset, key,
    value)], log start, high watermark first seen).  Batches' CRCs are
    checked; any error fails the test."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
    c = {'bootstrap.servers': t.bootstrap, 'group.id': 'compaction-reader',
         'enable.auto.commit': False, 'enable.partition.eof': True,
         'auto.offset.reset': 'earliest', 'check.crcs': True, 'fetch.wait.max.ms': 20}
    c.update(conf)
    c = Consumer(c)
    out = []
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if hi <= lo:
            return out, lo, hi
        c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        while True:
            assert time.monotonic() < deadline, 'no EOF at %d within %d s (%d records, last %s)' % (
                hi, timeout, len(out), out[-1][0] if out else None)
            for m in c.consume(num_messages=10000, timeout=0.2):
                if m.error():
                    assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                    if m.offset() >= hi or to_eof:
                        return out, lo, hi
                    continue
                assert not out or m.offset() > out[-1][0], ('offsets not increasing', out[-1], m.offset())
                out.append((m.offset(), m.key(), m.value()))
                if m.offset() >= hi - 1 and not to_eof:
                    return out, lo, hi
    finally:
        c.close()


def read_timestamps(t, topic, offsets):
    """{offset: timestamp} of the records at these offsets, by a consumer."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({'bootstrap.servers': t.bootstrap, 'group.id': 'compaction-reader',
                  'enable.auto.commit': False})
    out = {}
    try:
        c.assign([TopicPartition(topic, 0, min(offsets))])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(offsets) <= set(out):
            for m in c.consume(num_messages=1000, timeout=0.2):
                assert not m.error(), m.error()
                if m.offset() in offsets:
                    out[m.offset()] = m.timestamp()[1]
    finally:
        c.close()
    return out


def active_base(t, topic, partition=0):
    """The base offset of the partition's active segment (its highest
    <base>.log)."""
    return log_segments.segment_files(t.log_dir, topic, partition)[-1][0]


def expected_log(delivered, a, drop_tombstones=False):
    """What a fully cleaned log holds, from {offset: (key, value)}: below
    offset a, the last record of each key (keyless ones dropped, and
    tombstones with drop_tombstones), from a on everything."""
    last = {}
    for off in sorted(delivered):
        k, v = delivered[off]
        if off < a and k is not None:
            last[k] = off
    keep = set(last.values())
    out = []
    for off in sorted(delivered):
        k, v = delivered[off]
        if off >= a:
            out.append((off, k, v))
        elif off in keep and not (drop_tombstones and v is None):
            out.append((off, k, v))
    return out


def diff(got, want, n=5):
    """A short description of how two [(offset, key, value)] lists differ."""
    g, w = dict((r[0], r[1:]) for r in got), dict((r[0], r[1:]) for r in want)
    extra = sorted(set(g) - set(w))
    missing = sorted(set(w) - set(g))
    changed = sorted(o for o in set(g) & set(w) if g[o] != w[o])

    def show(offs, d):
        return ['%d: %r' % (o, tuple(x[:40] if isinstance(x, bytes) else x for x in d[o]))
                for o in offs[:n]]
    return ('%d records read, %d expected; %d unexpected %s; %d missing %s; %d differ %s' % (
        len(got), len(want), len(extra), show(extra, g), len(missing), show(missing, w),
        len(changed), ['%d: read %r, want %r' % (o, g[o], w[o]) for o in changed[:n]]))


def wait_cleaned(t, topic, delivered, drop_tombstones=False, timeout=CLEAN_TIMEOUT, check=None):
    """Polls until the partition holds exactly expected_log(delivered, a)
    (a: the active segment's base); returns (records, a, seconds waited).
    check(records) runs on every read (an invariant that must hold at any
    time)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        a = active_base(t, topic)
        recs, _lo, _hi = read_all(t, topic)
        if check:
            check(recs)
        want = expected_log(delivered, a, drop_tombstones)
        if recs == want and active_base(t, topic) == a:
            return recs, a, time.monotonic() - t0
        assert time.monotonic() < deadline, 'not cleaned within %d s (active segment %d): %s' % (
            timeout, a, diff(recs, want))
        time.sleep(0.2)


def cleaner_checkpoint(log_dir):
    """{(topic, partition): offset} from <log dir>/cleaner-offset-checkpoint
    (Kafka's format: version 0, count, then 'topic partition offset')."""
    p = Path(log_dir) / 'cleaner-offset-checkpoint'
    try:
        lines = p.read_text().split('\n')
    except FileNotFoundError:
        return {}
    assert lines[0] == '0', lines[:3]
    n = int(lines[1])
    out = {}
    for line in lines[2:2 + n]:
        topic, part, off = line.rsplit(' ', 2)
        out[(topic, int(part))] = int(off)
    return out


def describe(t, topic, key):
    from confluent_kafka.admin import ConfigResource
    from spool_clients import confluent_admin
    r = ConfigResource('topic', topic)
    admin = confluent_admin(t.bootstrap)     # kept until the answer is in
    e = admin.describe_configs([r])[r].result(timeout=30)[key]
    return e.value, e.source


def alter(t, topic, **configs):
    """IncrementalAlterConfigs v0 SET of each key ('_' in names as '.') on
    the topic; asserts no error.  (Debian's confluent-kafka 1.7 has no
    incremental_alter_configs.)"""
    entries = [kw.string(k.replace('_', '.')) + kw.int8(0) + kw.string(v)
               for k, v in configs.items()]
    body = kw.array([kw.int8(2) + kw.string(topic) + kw.array(entries)]) + kw.boolean(False)
    r = kw.Reader(kw.send_recv(t.port, kw.request(44, 0, 83, body), timeout=30))
    assert r.int32() == 83
    r.int32()                                   # throttle
    res = r.array(lambda rr: (rr.int16(), rr.string(), rr.int8(), rr.string()))
    assert res == [(NONE, None, 2, topic)], res


def log_start(t, topic):
    payload = kw.send_recv(t.port, kw.list_offsets_request(82, topic, [0],
                                                           timestamp=kw.EARLIEST_TIMESTAMP))
    p = kw.parse_list_offsets_response(payload)[(topic, 0)]
    assert p['error_code'] == NONE, p
    return p['offset']


# ---------------------------------------------------------------- 1. many versions


def test_many_versions_small_dedupe_buffer(target):
    """50000 keys, 8 versions each (each round in a new random order; the
    last one of the even keys only), 375000 records, about 12 segments:
    more keys than the offset map holds (39321), so the cleaner needs
    several passes.  In the end each key is once below the active
    segment, with its last value at the offset its delivery report named;
    offsets increase with gaps; the cleaner-offset-checkpoint names the
    active segment's base (the partition's first dirty offset: nothing
    left to clean)."""
    t = target
    topic = make_topic(t, 'cmp-many', COMPACT)
    keys, versions = 50000, 8
    assert keys > MAP_KEYS
    rng = random.Random(80)
    p = producer(t, **{'linger.ms': 20, 'batch.num.messages': 2000})
    delivered = {}
    order = list(range(keys))
    for v in range(versions):
        rng.shuffle(order)
        send(p, topic, [(b'key-%05d' % i, b'v%d-of-%05d' % (v, i)) for i in order
                        if v < versions - 1 or i % 2 == 0], delivered, flush=False)
    send(p, topic, filler('many'), delivered)
    assert len(delivered) == keys * versions - keys // 2 + FILLER_N
    recs, a, waited = wait_cleaned(t, topic, delivered)
    print('\n[%s] cleaned %d records in %.1f s' % (t.name, len(delivered), waited))
    data = [r for r in recs if r[1].startswith(b'key-')]
    assert len(data) == keys and all(r[0] < a for r in data)
    assert {r[1] for r in data} == {b'key-%05d' % i for i in range(keys)}
    stale = [r for r in data
             if not r[2].startswith(b'v%d-' % (versions - 1 - int(r[1][4:]) % 2))]
    assert not stale, stale[:5]
    offs = [r[0] for r in recs]
    assert offs == sorted(set(offs))
    gaps = sum(1 for x, y in zip(offs, offs[1:]) if y > x + 1)
    assert gaps > 5000, gaps
    # the cleaner's progress: nothing dirty below the active segment
    deadline = time.monotonic() + 10
    while cleaner_checkpoint(t.log_dir).get((topic, 0)) != a:
        assert time.monotonic() < deadline, (a, cleaner_checkpoint(t.log_dir))
        time.sleep(0.1)


# ---------------------------------------------------------------- 2. tombstones


def test_tombstones_delete_horizon(target):
    """delete.retention.ms 6 s.  300 keys a-* written twice; 100 keys d-*
    written, then deleted (a null value).  After the first cleaning the
    d-* tombstones are there, alone (their values gone), at their
    offsets, with their timestamps, and each batch holding them has a
    delete horizon (KIP-534: attribute bit 0x40, the horizon, the time of
    that cleaning + delete.retention.ms, in its base timestamp).  Another
    cleaning before delete.retention.ms has passed since the first keeps
    them.  The first cleaning once it has passed removes them: the d-*
    keys are gone for good, and no read at any point shows a d-* value
    that was deleted."""
    t = target
    dr_ms = 6000
    topic = make_topic(t, 'cmp-tomb', dict(COMPACT, **{'delete.retention.ms': str(dr_ms)}))
    a_keys = [b'a-%03d' % i for i in range(300)]
    d_keys = [b'd-%03d' % i for i in range(100)]

    def no_deleted_values(recs):
        bad = [r for r in recs if r[1].startswith(b'd-') and r[2] is not None]
        assert not bad, 'a deleted key has a value again: %s' % bad[:5]

    p = producer(t)
    t_start = time.monotonic()
    wall_start = int(time.time() * 1000)
    stamps = {}
    delivered = send(p, topic, [(k, b'v1-' + k) for k in a_keys + d_keys], flush=False)
    send(p, topic, [(k, b'v2-' + k) for k in a_keys] + [(k, None) for k in d_keys], delivered,
         flush=False, timestamps=stamps)
    send(p, topic, filler('t1'), delivered)
    recs, a1, w1 = wait_cleaned(t, topic, delivered)
    t_obs1 = time.monotonic()
    wall_obs1 = int(time.time() * 1000)
    tomb = [r for r in recs if r[1].startswith(b'd-')]
    assert [r[1] for r in tomb] == d_keys and all(r[2] is None for r in tomb), tomb[:5]
    no_deleted_values(recs)
    tomb_offs = {r[0] for r in tomb}
    assert read_timestamps(t, topic, tomb_offs) == {o: stamps[o] for o in tomb_offs}
    marked = [b for b in raw_batches(t, topic, min(tomb_offs), max(tomb_offs) + 1)
              if any(b.base_offset <= o <= b.last_offset for o in tomb_offs)]
    assert marked
    for b in marked:
        assert b.attributes & 0x40, ('no delete horizon', b, b.attributes)
        assert wall_start + dr_ms <= b.base_timestamp <= wall_obs1 + dr_ms, (
            b, b.base_timestamp, wall_start + dr_ms, wall_obs1 + dr_ms)

    # a second cleaning before the delete horizon: the tombstones stay
    send(p, topic, [(k, b'v3-' + k) for k in a_keys] + filler('t2'), delivered)
    recs, a2, w2 = wait_cleaned(t, topic, delivered, check=no_deleted_values)
    t_obs2 = time.monotonic()
    assert a2 > a1
    if t_obs2 < t_start + dr_ms / 1000.0:
        assert [r[1] for r in recs if r[1].startswith(b'd-')] == d_keys
    else:
        print('\n[%s] second cleaning seen only after %.1f s: not checked before the horizon' % (
            t.name, t_obs2 - t_start))

    # past the horizon (set at the first cleaning, at the latest t_obs1):
    # the next cleaning drops them
    time.sleep(max(0.0, t_obs1 + dr_ms / 1000.0 + 0.5 - time.monotonic()))
    send(p, topic, [(k, b'v4-' + k) for k in a_keys] + filler('t3'), delivered)
    recs, a3, w3 = wait_cleaned(t, topic, delivered, drop_tombstones=True, check=no_deleted_values)
    assert not [r for r in recs if r[1].startswith(b'd-')]
    assert [r[2] for r in recs if r[1].startswith(b'a-')] == [b'v4-' + k for k in a_keys]
    print('\n[%s] cleanings seen after %.1f, %.1f, %.1f s' % (t.name, w1, w2, w3))


# ---------------------------------------------------------------- 3. keyless records


def test_keyless_records_refused(target):
    """A batch with keyless records (every tenth) to a compacted topic and
    to a compact,delete one: Produce v9 answers INVALID_RECORD naming each
    keyless record (record_errors) and appends nothing; librdkafka reports
    INVALID_RECORD for a keyless record.  A delete topic takes it."""
    from confluent_kafka import KafkaError
    t = target
    for base, conf in (('cmp-nokey', COMPACT),
                       ('cmpdel-nokey', dict(COMPACT, **{'cleanup.policy': 'compact,delete'})),
                       ('del-nokey', {'cleanup.policy': 'delete'})):
        topic = make_topic(t, base, conf)
        recs = [{'key': None if i % 10 == 3 else b'k%d' % i, 'value': b'v%d' % i}
                for i in range(30)]
        resp = kw.produce(t.port, 9, {(topic, 0): kw.record_batch(recs)})['partitions'][(topic, 0)]
        if base == 'del-nokey':
            assert resp['error_code'] == NONE and resp['base_offset'] == 0, resp
            assert kw.end_offset(t.port, topic, 0) == 30
            continue
        msg = 'Compacted topic cannot accept message without key in topic partition %s-0' % topic
        assert resp['error_code'] == INVALID_RECORD and resp['base_offset'] == -1, resp
        assert resp['record_errors'] == [(3, msg), (13, msg), (23, msg)], resp
        assert kw.end_offset(t.port, topic, 0) == 0
        p = producer(t, **{'linger.ms': 0})
        warm(p, topic)
        errs = []
        p.produce(topic, value=b'no key', partition=0,
                  on_delivery=lambda err, msg: errs.append(err))
        assert p.flush(30) == 0
        assert len(errs) == 1 and errs[0] is not None and errs[0].code() == KafkaError.INVALID_RECORD, errs
        delivered = send(p, topic, [(b'k', b'with key')])
        assert list(delivered) == [0]


# ---------------------------------------------------------------- 4. delete <-> compact


def test_switch_delete_compact_delete(target):
    """A delete topic: 1000 keys x 3 versions and 50 keyless records, then
    a filler; nothing is cleaned (checked after 2 s).  Switched to compact
    by IncrementalAlterConfigs (DescribeConfigs shows it): cleaned, keyless
    records dropped.  Switched back to delete: new duplicates stay (3 s,
    30 cleaner backoffs); then retention.ms 1000 deletes every sealed
    segment and the log starts at the active segment (which holds records
    timestamped ten minutes ahead)."""
    t = target
    topic = make_topic(t, 'cmp-switch', {'cleanup.policy': 'delete', 'segment.bytes': str(SEG),
                                         'min.cleanable.dirty.ratio': '0'})
    assert describe(t, topic, 'cleanup.policy')[0] == 'delete'
    p = producer(t)
    delivered = {}
    for v in range(3):
        send(p, topic, [(b'k%04d' % i, b'v%d-' % v + b'.' * 100) for i in range(1000)], delivered,
             flush=False)
        send(p, topic, [(None, b'keyless-%d-%d' % (v, i)) for i in range(17)], delivered,
             flush=False)
    send(p, topic, filler('s1'), delivered)
    everything = sorted((o,) + kv for o, kv in delivered.items())
    time.sleep(2.0)
    assert read_all(t, topic)[0] == everything, 'a delete topic was cleaned'

    alter(t, topic, cleanup_policy='compact')
    assert describe(t, topic, 'cleanup.policy')[0] == 'compact'
    recs, a, waited = wait_cleaned(t, topic, delivered)
    assert not [r for r in recs if r[0] < a and r[1] is None]
    print('\n[%s] cleaned %.1f s after the switch to compact' % (t.name, waited))

    alter(t, topic, cleanup_policy='delete')
    assert describe(t, topic, 'cleanup.policy')[0] == 'delete'
    send(p, topic, [(b'k%04d' % i, b'v3-' + b'.' * 100) for i in range(1000)] + filler('s2'),
         delivered)
    before = read_all(t, topic)[0]
    assert len(before) > len(recs) + 2000
    time.sleep(3.0)
    assert read_all(t, topic)[0] == before, 'cleaned after the switch back to delete'

    # records ten minutes ahead in the active segment keep it from
    # retention (Kafka deletes the active segment too when all it holds
    # is older than retention.ms, and rolls a new one)
    future = int(time.time() * 1000) + 600000
    send(p, topic, [(b'future-%d' % i, b'ahead', future) for i in range(5)], delivered)
    before = read_all(t, topic)[0]
    a = active_base(t, topic)
    assert max(delivered) - 4 > a
    assert log_start(t, topic) == 0
    alter(t, topic, retention_ms='1000')
    deadline = time.monotonic() + 30
    while log_start(t, topic) != a:
        assert time.monotonic() < deadline, (log_start(t, topic), a)
        time.sleep(0.2)
    assert read_all(t, topic)[0] == [r for r in before if r[0] >= a]


# ---------------------------------------------------------------- 5. compact,delete


def test_compact_and_delete(target):
    """cleanup.policy=compact,delete with retention.ms one hour: 2300
    unique-key records timestamped two hours ago (more than two segments),
    then, timestamped now, one record of a key of its own in a batch of
    its own (kept, so that the segment it goes to, the last one of old
    records, always holds a recent record), 500 keys x 4 versions and a
    filler.  The segments holding only old records are
    deleted (the log starts at the segment the first new record went
    to), and the rest is compacted.  (Without that record of its own, the
    segment of the first new records may lose all of them to compaction
    and then go too, as old as its old records: on Kafka before or after
    the retention check, by timing.)"""
    t = target
    topic = make_topic(t, 'cmp-cd', dict(COMPACT, **{'cleanup.policy': 'compact,delete',
                                                     'retention.ms': '3600000'}))
    old_ts = int(time.time() * 1000) - 2 * 3600 * 1000
    p = producer(t)
    delivered = send(p, topic, [(b'old-%05d' % i, b'o' * 1000, old_ts) for i in range(2300)])
    b = active_base(t, topic)
    assert b > 0
    first_new = max(delivered) + 1
    send(p, topic, [(b'anchor', b'recent')], delivered)     # a batch of its own
    assert active_base(t, topic) == b
    send(p, topic, [(b'new-%04d' % (i % 500), b'n%d' % i) for i in range(2000)] + filler('cd'),
         delivered)
    kept = {o: kv for o, kv in delivered.items() if o >= b}
    recs, a, waited = wait_cleaned(t, topic, kept)
    assert log_start(t, topic) == b
    assert [r[0] for r in recs if r[1].startswith(b'old-')] == list(range(b, first_new))
    assert recs[first_new - b] == (first_new, b'anchor', b'recent')
    assert len([r for r in recs if r[1].startswith(b'new-')]) == 500
    print('\n[%s] retention and compaction done in %.1f s' % (t.name, waited))


# ---------------------------------------------------------------- compaction lags


def test_min_compaction_lag(target):
    """min.compaction.lag.ms 4000: 500 keys x 3 versions and a filler are
    not cleaned 2 s after they were written (20 cleaner backoffs), and are
    cleaned, but never before 4 s after the first of them was written (a
    segment is cleanable once its newest record is that old)."""
    t = target
    topic = make_topic(t, 'cmp-minlag', dict(COMPACT, **{'min.compaction.lag.ms': '4000'}))
    t0 = time.time()
    p = producer(t)
    delivered = {}
    for v in range(3):
        send(p, topic, [(b'k%03d' % i, b'v%d' % v) for i in range(500)], delivered, flush=False)
    send(p, topic, filler('minlag'), delivered)
    time.sleep(max(0.0, t0 + 2 - time.time()))
    assert read_all(t, topic)[0] == sorted((o,) + kv for o, kv in delivered.items())
    assert time.time() < t0 + 3.5, 'too slow to tell'
    recs, a, waited = wait_cleaned(t, topic, delivered)
    assert time.time() >= t0 + 4, time.time() - t0
    print('\n[%s] cleaned %.1f s after the first write' % (t.name, time.time() - t0))


def test_max_compaction_lag(target):
    """min.cleanable.dirty.ratio 0.9, max.compaction.lag.ms 5000: 500 keys
    and a filler are cleaned (all dirty: ratio 1); then 500 keys again and
    a filler, a dirty ratio about a half: not cleaned 2 s after the first
    write, but cleaned once the first batch of the first dirty segment
    (the active one at the first cleaning: written after the first write)
    is 5 s old: never before 5 s after the first write."""
    t = target
    lag = 5.0
    topic = make_topic(t, 'cmp-maxlag', dict(COMPACT, **{'min.cleanable.dirty.ratio': '0.9',
                                                         'max.compaction.lag.ms': '%d' % (lag * 1000)}))
    p = producer(t)
    t1 = time.time()
    delivered = send(p, topic, [(b'k%03d' % i, b'v0') for i in range(500)] + filler('maxlag1'))
    wait_cleaned(t, topic, delivered)
    send(p, topic, [(b'k%03d' % i, b'v1') for i in range(500)] + filler('maxlag2'), delivered)
    time.sleep(max(0.0, t1 + 2 - time.time()))
    vals = [r[2] for r in read_all(t, topic)[0] if r[1].startswith(b'k')]
    assert vals == [b'v0'] * 500 + [b'v1'] * 500, 'cleaned before max.compaction.lag.ms'
    assert time.time() < t1 + lag - 0.5, 'too slow to tell'
    recs, a, waited = wait_cleaned(t, topic, delivered)
    assert time.time() >= t1 + lag, time.time() - t1
    print('\n[%s] cleaned %.1f s after the first write' % (t.name, time.time() - t1))


# ---------------------------------------------------------------- 6. compression


CODECS = ('gzip', 'snappy', 'lz4', 'zstd')


def raw_batches(t, topic, start, end):
    """The record batches of [start, end) by Fetch v11 (their headers)."""
    out = []
    off = start
    while off < end:
        p = kw.fetch(t.port, 11, topic, 0, off, max_bytes=1 << 20)
        assert p['error_code'] == NONE, p
        batches = log_segments.parse_batches(p['records'], strict=False)
        assert batches, (off, p)
        out.extend(b for b in batches if b.last_offset >= off)
        off = batches[-1].last_offset + 1
    return out


def test_compressed_batches(target):
    """Four producers, gzip, snappy, lz4 and zstd, each with 200 keys of
    its own: version 0 and 1 of every key, version 2 of every third, in
    batches of up to 50 records; then an uncompressed filler.  After
    cleaning the values read back, version 1 batches lost a third of their
    records, and every batch fetched raw keeps the codec of the producer
    that wrote it (the cleaner recompresses what it keeps with the batch's
    codec)."""
    t = target
    topic = make_topic(t, 'cmp-codec', COMPACT)
    delivered = {}
    codec_of = {}
    prods = {}
    for codec in CODECS:
        prods[codec] = producer(t, **{'compression.type': codec, 'linger.ms': 50,
                                      'batch.num.messages': 50})
    for v in range(3):
        for codec in CODECS:
            p = prods[codec]
            recs = [(b'%s-k%03d' % (codec.encode(), i),
                     b'%s-v%d-%03d-' % (codec.encode(), v, i) + b'abcdefgh' * 20)
                    for i in range(200) if v < 2 or i % 3 == 0]
            d = send(p, topic, recs)
            codec_of.update({o: codec for o in d})
            delivered.update(d)
    send(producer(t), topic, filler('codec'), delivered)
    recs, a, waited = wait_cleaned(t, topic, delivered)
    data = [r for r in recs if not r[1].startswith(b'fill-')]
    assert len(data) == 800
    for r in data:
        codec, i = r[1].split(b'-k')
        assert r[2].startswith(b'%s-v%d-' % (codec, 2 if int(i) % 3 == 0 else 1)), r
    batches = raw_batches(t, topic, log_start(t, topic), a)
    kept = {r[0] for r in recs}
    for b in batches:
        offs = [o for o in range(b.base_offset, b.last_offset + 1) if o in kept]
        if not offs:
            continue
        want = {codec_of.get(o, 'none') for o in offs}
        assert len(want) == 1 and b.codec_name == want.pop(), (b, offs[:5])
    seen = {b.codec_name for b in batches if b.record_count}
    assert seen == set(CODECS) | {'none'}, seen


# ---------------------------------------------------------------- 7. reading while cleaning


def test_consumers_during_cleaning(target):
    """A producer writes 2000 keys with 200-byte values over and over
    (about 2 MB/s, a new segment every half second) for 8 s while a
    consumer reads the partition from the beginning again and again
    (64 KiB fetches).  Every pass: no error, offsets increasing, every
    record as written at its offset, and for each key a record at or
    after the offset of its last delivered record when the pass began
    (what was the latest then can only be replaced by a newer one), and
    no record that a pass did not see below its end comes back in the
    next.  The cleaner ran between passes at least 3 times."""
    t = target
    topic = make_topic(t, 'cmp-live', COMPACT)
    delivered = {}
    latest = {}
    stop = threading.Event()
    errors = []

    def produce_loop():
        p = producer(t)
        warm(p, topic)

        def cb(err, msg):
            if err is not None:
                errors.append(err)
            else:
                delivered[msg.offset()] = (msg.key(), msg.value())
                latest[msg.key()] = max(latest.get(msg.key(), -1), msg.offset())
        n = 0
        try:
            while not stop.is_set():
                for i in range(2000):
                    while True:
                        try:
                            p.produce(topic, key=b'k%04d' % i, value=b'%08d-' % n + b'x' * 190,
                                      partition=0, on_delivery=cb)
                            break
                        except BufferError:
                            p.poll(0.05)
                    n += 1
                p.poll(0)
                time.sleep(0.1)
                p.poll(0)
        finally:
            p.flush(30)

    th = threading.Thread(target=produce_loop)
    th.start()
    passes = []
    changes = 0
    prev = None
    unchecked = []
    t_end = time.monotonic() + 8
    try:
        while time.monotonic() < t_end or len(passes) < 5:
            assert time.monotonic() < t_end + 60, 'too slow: %d passes' % len(passes)
            snap = dict(latest)
            recs, lo, hi = read_all(t, topic, to_eof=True, **{'fetch.max.bytes': 65536,
                                                  'message.max.bytes': 65536,
                                                  'max.partition.fetch.bytes': 65536})
            assert not errors, errors[:3]
            got = {}
            for off, k, v in recs:
                want = delivered.get(off)
                if want is None:                 # its delivery report is not in yet
                    unchecked.append((off, k, v))
                else:
                    assert want == (k, v), (off, k, v, want)
                got[k] = off
            behind = [(k, o, got.get(k)) for k, o in snap.items() if got.get(k, -1) < o]
            assert not behind, ('pass %d (%d records from %d, high watermark %d at the start): '
                                'latest records missing (key, latest, read): %s' % (
                                    len(passes), len(recs), lo, hi, behind[:5]))
            offs = {r[0] for r in recs}
            if prev is not None:
                back = sorted(o for o in offs if o < prev_end and o not in prev)
                assert not back, 'pass %d: records gone in the pass before are back: %s' % (
                    len(passes), back[:5])
                if any(o not in offs for o in prev):
                    changes += 1
            prev, prev_end = offs, (recs[-1][0] + 1 if recs else lo)
            passes.append((len(recs), prev_end))
    finally:
        stop.set()
        th.join(60)
    assert not errors, errors[:3]
    bad = [(off, k, v, delivered.get(off)) for off, k, v in unchecked if delivered.get(off) != (k, v)]
    assert not bad, bad[:5]
    assert changes >= 3, 'the cleaner ran between only %d of %d passes: %s' % (
        changes, len(passes), passes)
    print('\n[%s] %d passes, cleaned between %d; records read / high watermark: %s' % (
        t.name, len(passes), changes, passes[::max(1, len(passes) // 8)]))
    wait_cleaned(t, topic, delivered)


# ---------------------------------------------------------------- 8. idempotent producer


def test_idempotent_producer_after_cleaning(target):
    """One idempotent producer (enable.idempotence) writes 500 keys x 5
    versions and a filler; the cleaner removes its older batches; the
    same producer writes a sixth version and a filler with no error, at
    the next offsets; after a restart of the broker (SIGTERM) it writes a
    seventh, again with no error (no OUT_OF_ORDER_SEQUENCE_NUMBER, no
    UNKNOWN_PRODUCER_ID); everything is cleaned as expected."""
    t = target
    t.use_proxy()                   # the producer outlives a restart
    topic = make_topic(t, 'cmp-idem', COMPACT)
    p = producer(t, **{'enable.idempotence': True})
    delivered = {}
    for v in range(5):
        send(p, topic, [(b'k%03d' % i, b'v%d' % v) for i in range(500)], delivered, flush=False)
    send(p, topic, filler('i1'), delivered)
    recs, a, _ = wait_cleaned(t, topic, delivered)
    assert recs[0][0] >= 2000, recs[0]        # the first four versions' batches are gone
    end = max(delivered) + 1
    d2 = send(p, topic, [(b'k%03d' % i, b'v5') for i in range(500)] + filler('i2'))
    assert sorted(d2) == list(range(end, end + 500 + FILLER_N))
    delivered.update(d2)
    wait_cleaned(t, topic, delivered)
    t.restart()
    end = max(delivered) + 1
    d3 = send(p, topic, [(b'k%03d' % i, b'v6') for i in range(500)] + filler('i3'))
    assert sorted(d3) == list(range(end, end + 500 + FILLER_N))
    delivered.update(d3)
    recs, a, _ = wait_cleaned(t, topic, delivered)
    assert [r[2] for r in recs if r[1].startswith(b'k')] == [b'v6'] * 500


# ---------------------------------------------------------------- 9. group commits


def consumer_offsets_records(t):
    """{partition: records in its segment files} of __consumer_offsets."""
    out = {}
    for d in Path(t.log_dir).glob('__consumer_offsets-*'):
        n = 0
        for f in d.glob('*.log'):
            try:
                n += sum(b.record_count for b in log_segments.parse_batches(f.read_bytes(),
                                                                            strict=False))
            except FileNotFoundError:
                pass
        out[int(d.name.rsplit('-', 1)[1])] = n
    return out


def test_group_commits_cleaned(target):
    """A consumer of a group reads 5000 records spread over 16 partitions
    and commits after each one the positions of all 16 (5000
    OffsetCommits, 80000 offset records, several segments of
    __consumer_offsets at offsets.topic.segment.bytes 1 MiB, about 13000
    records each).  The partition of __consumer_offsets that holds them is
    cleaned: its segment files keep fewer than a quarter of them (what
    its active segment holds, and the last record of each key below it).  After a restart of
    the broker (SIGTERM) the group's committed offsets are the positions
    it committed last, and a new member of the group reads only what was
    written after."""
    from confluent_kafka import Consumer, TopicPartition
    t = target
    parts = 16
    topic = make_topic(t, 'cmp-group', {}, partitions=parts)
    group = 'cmp-group-%s' % t.name
    p = producer(t)
    warm(p, topic)
    for i in range(5000):
        p.produce(topic, value=b'%d' % i, partition=i % parts)
    assert p.flush(30) == 0
    c = Consumer({'bootstrap.servers': t.bootstrap, 'group.id': group,
                  'enable.auto.commit': False, 'auto.offset.reset': 'earliest'})
    c.subscribe([topic])
    pos = {q: 0 for q in range(parts)}
    n = 0
    deadline = time.monotonic() + 120
    try:
        while n < 5000:
            assert time.monotonic() < deadline, n
            m = c.poll(0.5)
            if m is None:
                continue
            assert not m.error(), m.error()
            pos[m.partition()] = m.offset() + 1
            c.commit(offsets=[TopicPartition(topic, q, o) for q, o in pos.items()],
                     asynchronous=False)
            n += 1
    finally:
        c.close()
    assert pos == {q: len(range(q, 5000, parts)) for q in range(parts)}
    deadline = time.monotonic() + CLEAN_TIMEOUT
    while True:
        counts = consumer_offsets_records(t)
        q, most = max(counts.items(), key=lambda kv: kv[1])
        if most < 80000 // 4:
            break
        assert time.monotonic() < deadline, '__consumer_offsets not cleaned: %s' % (
            sorted(counts.items(), key=lambda kv: -kv[1])[:3],)
        time.sleep(0.5)
    print('\n[%s] __consumer_offsets-%d holds %d records after 80000 commits' % (t.name, q, most))
    t.restart()
    p = producer(t)
    warm(p, topic)
    for i in range(parts):
        p.produce(topic, value=b'after-%d' % i, partition=i)
    assert p.flush(30) == 0
    c = Consumer({'bootstrap.servers': t.bootstrap, 'group.id': group,
                  'enable.auto.commit': False, 'auto.offset.reset': 'earliest'})
    try:
        committed = c.committed([TopicPartition(topic, q) for q in range(parts)], timeout=30)
        assert {tp.partition: tp.offset for tp in committed} == pos
        c.subscribe([topic])
        seen = []
        deadline = time.monotonic() + 30
        while len(seen) < parts:
            assert time.monotonic() < deadline, seen
            m = c.poll(0.5)
            if m is None:
                continue
            assert not m.error(), m.error()
            seen.append((m.partition(), m.offset(), m.value()))
        assert sorted(seen) == [(q, pos[q], b'after-%d' % q) for q in range(parts)]
    finally:
        c.close()


# ---------------------------------------------------------------- 10. kill -9 (Spool)


LEFTOVER = re.compile(r'\.(cleaned|swap|deleted)$')
IN_PROGRESS = re.compile(r'\.(cleaned|swap)$')


def cleaning_files(pdir, pattern=IN_PROGRESS):
    try:
        return [f for f in os.listdir(pdir) if pattern.search(f)]
    except FileNotFoundError:
        return []


@pytest.mark.parametrize('target', ['spool'], indirect=True)
def test_kill9_while_cleaning(target):
    """15 rounds: 2000 keys with 600-byte values (more than a segment), the
    cleaner throttled (log.cleaner.io.max.bytes.per.second 4 MB/s) so
    that a pass takes about a second; then, by turns, a kill -9 as soon as
    a cleaned segment is being written (a .cleaned file in the partition
    directory), a random 0-300 ms after that, or as soon as a cleaned
    segment is being swapped in (a .swap file; else at the end of the
    pass); and a restart on the same data.  After each restart: every
    key's last record is at the offset its delivery report named, every
    record read is the one written at its offset (Kafka's swap protocol:
    each segment group is either the old or the cleaned one), no record
    that was gone after the previous restart is back (a pass cut short
    leaves what the passes before it left), and no .cleaned/.swap/.deleted
    file is left in the partition directory.  At
    least 8 of the kills came while a cleaned segment was being written
    or swapped in."""
    t = target
    t.conf['log.cleaner.io.max.bytes.per.second'] = '4000000'
    t.restart()
    topic = make_topic(t, 'cmp-kill', COMPACT)
    pdir = log_segments.partition_dir(t.log_dir, topic, 0)
    rng = random.Random(810)
    delivered = {}
    mid_clean = []
    prev, prev_hi = set(), 0
    for rnd in range(15):
        passes_before = t.log_text().count(': cleaned ')
        p = producer(t)
        send(p, topic, [(b'k%04d' % i, b'r%02d-' % rnd + b'.' * 600) for i in range(2000)],
             delivered)
        del p                               # no client left trying the killed broker
        mode = ('cleaned', 'later', 'swap')[rnd % 3]
        deadline = time.monotonic() + 30
        while not cleaning_files(pdir, re.compile(r'\.swap$' if mode == 'swap' else r'\.cleaned$')):
            if mode == 'swap' and t.log_text().count(': cleaned ') > passes_before:
                break                       # the pass ended: no .swap seen
            assert time.monotonic() < deadline, 'round %d: no cleaning within 30 s' % rnd
            time.sleep(0.001)
        if mode == 'later':
            time.sleep(rng.uniform(0, 0.3))
        seen = cleaning_files(pdir)
        t.restart(kill=True)
        mid_clean.append((rnd, mode, sorted(seen)))
        recs, lo, hi = read_all(t, topic)
        assert hi == max(delivered) + 1, (rnd, hi, max(delivered))
        last = {}
        for off in sorted(delivered):
            last[delivered[off][0]] = off
        got = {}
        for off, k, v in recs:
            assert delivered.get(off) == (k, v), (rnd, off, k, v, delivered.get(off))
            got[k] = off
        assert got == last, (rnd, [(k, o, got.get(k)) for k, o in last.items() if got.get(k) != o][:5])
        offs = {r[0] for r in recs}
        back = sorted(o for o in offs if o < prev_hi and o not in prev)
        assert not back, 'round %d: records gone after the last restart are back: %s' % (rnd, back[:5])
        prev, prev_hi = offs, hi
        deadline = time.monotonic() + 5
        while cleaning_files(pdir, LEFTOVER):
            assert time.monotonic() < deadline, (rnd, cleaning_files(pdir, LEFTOVER))
            time.sleep(0.1)
    print('\n[%s] killed while cleaning: %s' % (t.name, mid_clean))
    assert len([m for m in mid_clean if m[2]]) >= 8, mid_clean
    wait_cleaned(t, topic, delivered)


# ---------------------------------------------------------------- 11. same as Kafka


def test_same_as_kafka(kafka_compact, start_broker):
    """The same input to a compacted topic on Kafka and on Spool (one
    record per batch, linger.ms 0, acks=all, in order, the same segment
    size): 2500 keys x 6 versions with 150-byte values and 100 tombstones
    (kept: delete.retention.ms is a day), about four segments.  Once both
    logs hold one record per key below their active segment, the
    (offset, key, value) read from the beginning are the same on both,
    and what the algorithm leaves."""
    targets = [KafkaTarget(kafka_compact), SpoolTarget(start_broker)]
    rng = random.Random(811)
    records = []
    for v in range(6):
        for i in rng.sample(range(2500), 2500):
            records.append((b'key-%04d' % i, b'v%d-%04d-' % (v, i) + b'x' * 140))
        if v == 3:
            records += [(b'key-%04d' % i, None) for i in range(0, 2500, 25)]
    results = {}
    errors = []

    def run(t):
        try:
            topic = make_topic(t, 'cmp-same', COMPACT)
            p = producer(t, **{'linger.ms': 0, 'batch.num.messages': 1,
                               'max.in.flight.requests.per.connection': 1})
            delivered = send(p, topic, records)
            assert sorted(delivered) == list(range(len(records)))
            recs, a, waited = wait_cleaned(t, topic, delivered)
            results[t.name] = (recs, a, waited)
        except BaseException as e:      # reported by the main thread
            errors.append((t.name, e))

    ths = [threading.Thread(target=run, args=(t,)) for t in targets]
    for th in ths:
        th.start()
    for th in ths:
        th.join(CLEAN_TIMEOUT + 120)
    for name, (recs, a, waited) in sorted(results.items()):
        print('\n[%s] cleaned %.1f s after the last write: active segment at %d, %d records' % (
            name, waited, a, len(recs)))
    assert not errors, errors
    (kr, ka, kwait), (sr, sa, swait) = results['kafka'], results['spool']
    assert sa == ka
    assert sr == kr, diff(sr, kr)
