"""Idempotent producers (issue 13, "Exactly-once"), proven through real
clients and raw frames, on Apache Kafka 4.3.1 and on Spool alike: every
test runs once per broker ('kafka', 'spool') and asserts the same things
on both, Kafka's answers written down here as the expected ones.

- confluent-kafka (librdkafka) with enable.idempotence, acks=all and five
  requests in flight, through a proxy that cuts its connections at random
  (tcp_proxy.ChaosProxy): every record lands exactly once, in order, where
  its delivery report said: 1,000,000 records (SPOOL_IDEMPOTENCE_RECORDS
  to change it), about 14 s on Kafka here (2 cores), with ~100 drops.
  Without idempotence the same test fails on Kafka (records written
  twice), as it should.
- Raw frames: InitProducerId, a retried batch (the last one, any of the
  last five, not the sixth), sequence gaps, stale and new epochs, and each
  field of the produce answers; a producer id the partition never saw.
- The producer state survives a restart of the broker, clean and kill -9.
- The Java producer with its defaults (idempotence on, acks=all), also
  through the chaos proxy (tests/java: Idempotence.java).
- kafka-python 3 (the venv of newer_clients.py) with enable_idempotence,
  its default, through the chaos proxy too.  (Debian's python3-kafka is
  2.0.2, whose producer has no idempotence: it came in 2.1.)

Kafka is a dedicated instance for this module (not the session's), whose
advertised listener is a proxy's, so that clients' every connection goes
through it, and that the restart tests may restart.  Spool is a broker per
test, behind a proxy of its own.

Until Spool has InitProducerId every test fails on 'spool' with "the
broker does not offer InitProducerId" (require_idempotence).
"""

import json
import os
import signal
import subprocess
import time
from array import array

import pytest

import kafka_wire as kw
from client_helpers import create_topic
from kafka_schema import parse_batches
from tcp_proxy import ChaosProxy

NONE, OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH = 0, 45, 47
COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE = 14, 15
PRODUCE_V = 12          # the newest Produce by topic name (v13 names topics by id)
TS = 1700000000000      # record timestamps: TS + the record's sequence number


# ---------------------------------------------------------------- brokers


class Target:
    """One broker under test: `port` is its own listener (raw frames),
    `bootstrap` the proxy in front of it (clients), which it advertises."""

    name = None

    def __init__(self, proxy):
        self.proxy = proxy

    @property
    def bootstrap(self):
        return self.proxy.bootstrap

    def restart(self, kill):
        raise NotImplementedError

    def log_tail(self, n=4000):
        return self.log_text()[-n:]


class KafkaTarget(Target):
    name = 'kafka'

    def __init__(self, holder):
        super().__init__(holder['proxy'])
        self.holder = holder

    @property
    def port(self):
        return self.holder['kafka'].port

    def restart(self, kill):
        import kafka_ref
        self.holder['kafka'] = kafka_ref.restart(self.holder['kafka'], kill=kill)

    def log_text(self):
        return self.holder['kafka'].log_text()


class SpoolTarget(Target):
    name = 'spool'

    def __init__(self, proxy, start_broker):
        super().__init__(proxy)
        self.start_broker = start_broker
        self.broker = start_broker({'advertised.listeners': proxy.advertised})
        proxy.set_target(self.broker.port)

    @property
    def port(self):
        return self.broker.port

    def restart(self, kill):
        b = self.broker
        b.stop(sig=signal.SIGKILL if kill else signal.SIGTERM, timeout=20)
        self.broker = self.start_broker({'advertised.listeners': self.proxy.advertised},
                                        data_dir=b.data_dir)
        self.proxy.set_target(self.broker.port)

    def log_text(self):
        return self.broker.log_text()


@pytest.fixture(scope='module')
def kafka_behind_proxy(tmp_path_factory):
    """A Kafka 4.3.1 of this module's own, advertising a proxy's address."""
    import kafka_ref
    proxy = ChaosProxy(seed=70)
    holder = {'proxy': proxy}
    holder['kafka'] = kafka_ref.start(tmp_path_factory.mktemp('kafka-idem'),
                                      overrides={'advertised.listeners': proxy.advertised})
    proxy.set_target(holder['kafka'].port)
    yield holder
    proxy.close()
    holder['kafka'].stop()


@pytest.fixture(params=['kafka', 'spool'])
def target(request, start_broker):
    if request.param == 'kafka':
        t = KafkaTarget(request.getfixturevalue('kafka_behind_proxy'))
    else:
        proxy = ChaosProxy(seed=71)
        request.addfinalizer(proxy.close)
        t = SpoolTarget(proxy, start_broker)
    t.proxy.calm()
    t.proxy.reset_stats()
    yield t
    t.proxy.calm()


# ---------------------------------------------------------------- raw helpers


def require_idempotence(t):
    """The broker offers InitProducerId (v4 at least): the first thing each
    test checks, so that a broker without it fails for that reason."""
    r = kw.parse_api_versions_response(kw.send_recv(t.port, kw.api_versions_request(3, 1)), 3)
    assert r['error_code'] == 0, r
    rng = r['api_keys'].get(kw.API_INIT_PRODUCER_ID)
    assert rng is not None and rng[0] <= 4 <= rng[1], \
        'the broker does not offer InitProducerId v4 (ApiVersions: %r)' % (rng,)


def new_producer_id(sock_or_port, timeout=30):
    """InitProducerId v4 for an idempotent producer (no transactional id):
    (producer id, epoch).  Kafka answers COORDINATOR_LOAD_IN_PROGRESS (14)
    for a moment after it starts, until its controller has handed it a
    block of ids: retried, as clients do."""
    deadline = time.monotonic() + timeout
    while True:
        r = kw.init_producer_id(sock_or_port, 4)
        if r['error_code'] in (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
            continue
        assert r['error_code'] == NONE and r['producer_id'] >= 0 and r['producer_epoch'] == 0 \
            and r['throttle_time_ms'] == 0, r
        return r['producer_id'], r['producer_epoch']


def batch(pid, epoch, seq, n, tag=b'', ts=TS):
    """n records with sequence numbers seq..seq+n-1, values b'v<seq>'
    (+ tag), timestamps ts + seq."""
    return kw.record_batch([{'value': b'v%d%s' % (seq + i, tag), 'timestamp': ts + seq + i}
                            for i in range(n)],
                           producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def send(sock, topic, b, partition=0):
    """Produce v12, acks=all, one batch: the partition's answer, without
    its index and empty tag section (asserted empty)."""
    p = kw.produce(sock, PRODUCE_V, {(topic, partition): b})['partitions'][(topic, partition)]
    assert p.pop('tagged_fields') == {} and p.pop('index') == partition, p
    return p


def ok(base_offset, log_append_time_ms=-1, log_start_offset=0):
    return {'error_code': NONE, 'base_offset': base_offset, 'log_append_time_ms': log_append_time_ms,
            'log_start_offset': log_start_offset, 'record_errors': [], 'error_message': None}


def refused(code):
    # Kafka 4.3 answers 45 and 47 with base_offset -1, log_append_time -1,
    # the log start offset (0 here, not -1) and no error message.
    return {'error_code': code, 'base_offset': -1, 'log_append_time_ms': -1,
            'log_start_offset': 0, 'record_errors': [], 'error_message': None}


def log_layout(port, topic, partition=0):
    """Every batch of the partition: (base offset, producer id, epoch,
    base sequence, record count), read with Fetch v11 from offset 0."""
    out = []
    offset = 0
    while True:
        p = kw.fetch(port, 11, topic, partition, offset, max_bytes=4 << 20)
        assert p['error_code'] == NONE, p
        bs = [b for b in parse_batches(p['records']) if 'partial' not in b]
        if not bs:
            return out
        for b in bs:
            out.append((b['BaseOffset'], b['ProducerId'], b['ProducerEpoch'], b['BaseSequence'],
                        b['RecordCount']))
        offset = bs[-1]['BaseOffset'] + bs[-1]['LastOffsetDelta'] + 1


def new_topic(t, base, partitions=1, config=None, name=None):
    """Creates the topic <base>-<broker name> (or `name`) and waits until
    every partition answers ListOffsets without error (Kafka's metadata
    names a new partition's leader a moment before that leader takes
    writes: NOT_LEADER_OR_FOLLOWER); returns its name."""
    topic = name or '%s-%s' % (base, t.name)
    create_topic(t.bootstrap, topic, partitions, config)
    deadline = time.monotonic() + 30
    with kw.connect(t.port, timeout=15) as s:
        while True:
            payload = kw.send_recv(s, kw.list_offsets_request(81, topic, list(range(partitions))))
            errs = {k: v['error_code'] for k, v in kw.parse_list_offsets_response(payload).items()}
            if set(errs.values()) == {NONE} and len(errs) == partitions:
                return topic
            assert time.monotonic() < deadline, errs
            time.sleep(0.1)


# ---------------------------------------------------------------- raw frames


def test_raw_retries_gaps_and_epochs(target):
    """One producer id, one connection, one partition (CreateTime), every
    answer as Kafka 4.3 gives it; then the log holds each batch once."""
    t = target
    require_idempotence(t)
    topic = new_topic(t, 'idem-raw', 1)
    with kw.connect(t.port, timeout=15) as s:
        pid, ep = new_producer_id(s)
        end = lambda: kw.end_offset(s, topic, 0)  # noqa: E731

        a = batch(pid, ep, 0, 5)
        assert send(s, topic, a) == ok(0)
        assert end() == 5
        # The same batch again: success, its original offset, nothing
        # written.  Kafka 4.3 answers a duplicate with log_append_time_ms =
        # the batch's max timestamp (TS + 4) on a CreateTime topic, where
        # the first answer had -1 (it reads its producer state's batch
        # metadata, which keeps the max timestamp).
        assert send(s, topic, a) == ok(0, log_append_time_ms=TS + 4)
        assert end() == 5

        # Five more: a, b1..b5; the last five are b1..b5
        bs = [a] + [batch(pid, ep, 5 * k, 5) for k in range(1, 6)]
        for k in range(1, 6):
            assert send(s, topic, bs[k]) == ok(5 * k)
        assert end() == 30
        # any of the last five, oldest first: recognised, original offset
        for k in range(1, 6):
            assert send(s, topic, bs[k]) == ok(5 * k, log_append_time_ms=TS + 5 * k + 4), k
        # The sixth-last (a) is no longer known: Kafka 4.3 answers
        # OUT_OF_ORDER_SEQUENCE_NUMBER (not DUPLICATE_SEQUENCE_NUMBER, 46)
        assert send(s, topic, a) == refused(OUT_OF_ORDER_SEQUENCE_NUMBER)
        # A duplicate is matched by its epoch and sequence range, not its
        # bytes: b5's range with other values is answered as b5
        assert send(s, topic, batch(pid, ep, 25, 5, tag=b'-other')) == ok(25, log_append_time_ms=TS + 29)
        # a range overlapping b5 without being it
        assert send(s, topic, batch(pid, ep, 27, 5)) == refused(OUT_OF_ORDER_SEQUENCE_NUMBER)
        # a gap: 31 where 30 is due
        assert send(s, topic, batch(pid, ep, 31, 2)) == refused(OUT_OF_ORDER_SEQUENCE_NUMBER)
        assert end() == 30

        # A new epoch (an idempotent producer bumps its own) must start at 0
        assert send(s, topic, batch(pid, ep + 1, 3, 2)) == refused(OUT_OF_ORDER_SEQUENCE_NUMBER)
        assert send(s, topic, batch(pid, ep + 1, 0, 2)) == ok(30)
        # the old epoch is fenced: its next batch, and a retry of its last one
        assert send(s, topic, batch(pid, ep, 30, 2)) == refused(INVALID_PRODUCER_EPOCH)
        assert send(s, topic, bs[5]) == refused(INVALID_PRODUCER_EPOCH)
        # the new epoch's batch retried, then its next one
        assert send(s, topic, batch(pid, ep + 1, 0, 2)) == ok(30, log_append_time_ms=TS + 1)
        assert send(s, topic, batch(pid, ep + 1, 2, 2)) == ok(32)
        assert end() == 34

        # The connection still works: a plain (non-idempotent) batch, ApiVersions
        plain = kw.record_batch([{'value': b'plain', 'timestamp': TS}])
        assert send(s, topic, plain) == ok(34)
        av = kw.parse_api_versions_response(kw.send_recv(s, kw.api_versions_request(3, 5)), 3)
        assert av['error_code'] == NONE and av['correlation_id'] == 5

    # each batch once, as sent
    assert log_layout(t.port, topic) == \
        [(5 * k, pid, ep, 5 * k, 5) for k in range(6)] + \
        [(30, pid, ep + 1, 0, 2), (32, pid, ep + 1, 2, 2), (34, -1, -1, -1, 1)]


def test_raw_duplicate_on_log_append_time_topic(target):
    """On a LogAppendTime topic a duplicate's answer carries the time the
    broker appended the original (Kafka 4.3: the same log_append_time_ms
    as the first answer), and nothing is written twice; in one request, a
    duplicate for one partition and a new batch for another are each
    answered on their own."""
    t = target
    require_idempotence(t)
    topic = new_topic(t, 'idem-lat', 2, {'message.timestamp.type': 'LogAppendTime'})
    with kw.connect(t.port, timeout=15) as s:
        pid, ep = new_producer_id(s)
        before = int(time.time() * 1000)
        first = send(s, topic, batch(pid, ep, 0, 3))
        after = int(time.time() * 1000)
        lat = first['log_append_time_ms']
        assert first == ok(0, log_append_time_ms=lat)
        # the broker's clock (a second of slack: its clock is not ours)
        assert before - 1000 <= lat <= after + 1000, (before, lat, after)
        time.sleep(0.05)
        assert send(s, topic, batch(pid, ep, 0, 3)) == ok(0, log_append_time_ms=lat)
        # a duplicate on partition 0 beside a partition 1 batch, in one request
        resp = kw.produce(s, PRODUCE_V, {(topic, 0): batch(pid, ep, 0, 3),
                                         (topic, 1): batch(pid, ep, 0, 4)})['partitions']
        p0, p1 = resp[(topic, 0)], resp[(topic, 1)]
        assert (p0['error_code'], p0['base_offset'], p0['log_append_time_ms']) == (NONE, 0, lat), p0
        assert (p1['error_code'], p1['base_offset']) == (NONE, 0) and p1['log_append_time_ms'] >= lat, p1
        assert kw.end_offset(s, topic, 0) == 3 and kw.end_offset(s, topic, 1) == 4
    assert log_layout(t.port, topic, 0) == [(0, pid, ep, 0, 3)]
    assert log_layout(t.port, topic, 1) == [(0, pid, ep, 0, 4)]


def test_raw_unknown_producer_any_first_sequence(target):
    """A producer id the partition has no state for (never seen here, as
    after its state expired or was deleted with the log) is taken at any
    first sequence, as Kafka does (its state starts there), and from then
    on it is held to it."""
    t = target
    require_idempotence(t)
    topic = new_topic(t, 'idem-unknown', 1)
    with kw.connect(t.port, timeout=15) as s:
        pid, ep = new_producer_id(s)
        assert send(s, topic, batch(pid, ep, 7, 3)) == ok(0)
        assert send(s, topic, batch(pid, ep, 7, 3)) == ok(0, log_append_time_ms=TS + 9)
        assert send(s, topic, batch(pid, ep, 11, 1)) == refused(OUT_OF_ORDER_SEQUENCE_NUMBER)
        assert send(s, topic, batch(pid, ep, 10, 1)) == ok(3)
    assert log_layout(t.port, topic) == [(0, pid, ep, 7, 3), (3, pid, ep, 10, 1)]


@pytest.mark.parametrize('kill', [False, True], ids=['clean-stop', 'kill-9'])
def test_raw_producer_state_survives_restart(target, kill):
    """Batches of a known producer, a restart (SIGTERM, or SIGKILL), then
    a retry of the last batch is answered with its offset and writes
    nothing (a retry of the third-last one writes nothing either); a gap and a stale epoch are still
    refused (the state is really there: a partition that lost it would
    take any sequence, see test_raw_unknown_producer_any_first_sequence);
    the next sequence is taken.  (Kafka 4.3 restarts in ~5 s here.)

    The records' timestamps are now's: Kafka forgets a producer whose last
    batch's timestamp (CreateTime: the client's) is older than
    producer.id.expiration.ms (a day), and it does so when it loads its
    snapshot at start: with TS (2023) the state would not survive."""
    t = target
    require_idempotence(t)
    topic = new_topic(t, 'idem-restart-%s' % ('kill' if kill else 'clean'), 1)
    now = int(time.time() * 1000)

    def b(epoch, seq, n):
        return batch(pid, epoch, seq, n, ts=now)

    with kw.connect(t.port, timeout=15) as s:
        pid, ep = new_producer_id(s)
        # epoch 1 (bumped by the producer): so that epoch 0 is stale after
        assert send(s, topic, b(ep, 0, 2)) == ok(0)
        ep += 1
        for k in range(4):
            assert send(s, topic, b(ep, 5 * k, 5)) == ok(2 + 5 * k)
        assert kw.end_offset(s, topic, 0) == 22
    t.restart(kill)
    deadline = time.monotonic() + 60
    while True:      # the partition may need a moment to be led again
        with kw.connect(t.port, timeout=15) as s:
            r = kw.produce(s, PRODUCE_V, {(topic, 0): b(ep, 15, 5)})['partitions'][(topic, 0)]
        if r['error_code'] in (3, 5, 6) and time.monotonic() < deadline:   # unknown/leader not available
            time.sleep(0.2)
            continue
        break
    r.pop('tagged_fields'), r.pop('index')
    assert r == ok(17, log_append_time_ms=now + 19), (r, t.log_tail())
    with kw.connect(t.port, timeout=15) as s:
        # The third-last batch: Kafka 4.3 knows only the last batch of each
        # producer after a restart, clean or not (its snapshot keeps one
        # batch per producer; after a kill -9 it rebuilds the state from
        # the log, writes a snapshot at the log end and loads that), so it
        # answers OUT_OF_ORDER_SEQUENCE_NUMBER.  A broker that remembers
        # the last five across restarts answers with the batch's offset
        # instead, which is as good for the producer; either way nothing
        # is written.
        third = send(s, topic, b(ep, 5, 5))
        if t.name == 'kafka':
            assert third == refused(OUT_OF_ORDER_SEQUENCE_NUMBER)
        else:
            assert third in (refused(OUT_OF_ORDER_SEQUENCE_NUMBER), ok(7, log_append_time_ms=now + 9)), third
        assert send(s, topic, b(ep, 21, 1)) == refused(OUT_OF_ORDER_SEQUENCE_NUMBER)
        assert send(s, topic, b(ep - 1, 2, 1)) == refused(INVALID_PRODUCER_EPOCH)
        assert kw.end_offset(s, topic, 0) == 22
        assert send(s, topic, b(ep, 20, 3)) == ok(22)
        assert kw.end_offset(s, topic, 0) == 25
    assert log_layout(t.port, topic) == [(0, pid, ep - 1, 0, 2)] + \
        [(2 + 5 * k, pid, ep, 5 * k, 5) for k in range(4)] + [(22, pid, ep, 20, 3)]


# ---------------------------------------------------------------- librdkafka

RECORDS = int(os.environ.get('SPOOL_IDEMPOTENCE_RECORDS', '1000000'))
PARTITIONS = 6
MIN_DROPS = 3


def test_confluent_idempotent_producer_through_chaos(target):
    """confluent-kafka, enable.idempotence and acks=all, five requests in
    flight, RECORDS records round-robin over six partitions, while the
    proxy cuts the producer's connection every 30-120 ms.  Read back
    (read_uncommitted): partition p's offset o holds p's o-th record (so
    every record is there once, in the order produced, and nothing else
    is), each delivery report named that offset, and the proxy really cut
    connections with requests in flight (else the test proves nothing)."""
    from confluent_kafka import Producer
    t = target
    require_idempotence(t)
    topic = new_topic(t, 'idem-chaos', PARTITIONS)
    per = [RECORDS // PARTITIONS + (1 if p < RECORDS % PARTITIONS else 0) for p in range(PARTITIONS)]
    delivered = [array('q', [-2]) * n for n in per]
    errors, fatal, last_stats = [], [], {}

    def on_delivery(err, msg):
        v = msg.value()
        p, seq = int(v[1:2]), int(v[3:])
        if err is not None:
            errors.append((p, seq, str(err)))
        else:
            delivered[p][seq] = msg.offset()

    def on_error(err):
        if err.fatal():
            fatal.append(str(err))

    def on_stats(js):
        last_stats['s'] = json.loads(js)

    prod = Producer({'bootstrap.servers': t.bootstrap, 'enable.idempotence': True, 'acks': 'all',
                     'max.in.flight.requests.per.connection': 5, 'linger.ms': 2,
                     'batch.num.messages': 500, 'message.timeout.ms': 300000,
                     'retry.backoff.ms': 10,
                     'reconnect.backoff.ms': 10, 'reconnect.backoff.max.ms': 100,
                     'statistics.interval.ms': 500, 'stats_cb': on_stats,
                     'error_cb': on_error, 'on_delivery': on_delivery})
    t0 = time.monotonic()
    t.proxy.reset_stats()
    t.proxy.chaos(30, 120, only_keys={0})       # connections that carried Produce
    try:
        seqs = [0] * PARTITIONS
        for i in range(RECORDS):
            p = i % PARTITIONS
            v = b'p%d-%08d' % (p, seqs[p])
            seqs[p] += 1
            while True:
                try:
                    prod.produce(topic, v, partition=p)
                    break
                except BufferError:
                    prod.poll(0.05)
            if i % 1000 == 0:
                prod.poll(0)
                assert not fatal, fatal
        deadline = time.monotonic() + 300
        while len(prod) and time.monotonic() < deadline and not fatal:
            prod.flush(1)
    finally:
        t.proxy.calm()
    produce_s = time.monotonic() - t0
    left = prod.flush(30)
    cut = t.proxy.stats()
    stats = last_stats.get('s', {})
    retries = sum(b.get('txretries', 0) for b in stats.get('brokers', {}).values())
    info = 'on %s: %d records in %.1f s; proxy %s; librdkafka txretries %d, eos %s' % (
        t.name, RECORDS, produce_s, cut, retries, stats.get('eos'))
    print(info)
    assert not fatal, (fatal, info, t.log_tail())
    assert left == 0 and not errors, (left, errors[:10], info)
    assert cut['drops'] >= MIN_DROPS and cut['drops_with_requests_cut'] >= MIN_DROPS, info

    for p in range(PARTITIONS):
        bad = [(seq, off) for seq, off in enumerate(delivered[p]) if off != seq]
        assert not bad, 'partition %d: delivery reports not at offset == sequence: %s' % (p, bad[:10])

    read_back_once_in_order(t, topic, per)


def read_back_once_in_order(t, topic, per):
    """Reads the topic back (read_uncommitted, confluent-kafka): partition
    p ends at per[p] and its offset o holds b'p<p>-<o, 8 digits>' (so each
    record is there once, in the order produced, and nothing else is)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    parts = len(per)
    c = Consumer({'bootstrap.servers': t.bootstrap, 'group.id': 'idem-chaos-check',
                  'enable.auto.commit': False, 'isolation.level': 'read_uncommitted',
                  'enable.partition.eof': False, 'auto.offset.reset': 'earliest'})
    try:
        ends = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=15) for p in range(parts)]
        assert ends == [(0, n) for n in per], (ends, per)
        c.assign([TopicPartition(topic, p, 0) for p in range(parts)])
        pos = [0] * parts
        wrong = []
        deadline = time.monotonic() + 120
        while pos != per and time.monotonic() < deadline:
            for m in c.consume(num_messages=10000, timeout=1.0):
                if m.error():
                    assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                    continue
                p, o = m.partition(), m.offset()
                if o != pos[p] or m.value() != b'p%d-%08d' % (p, o):
                    wrong.append((p, o, pos[p], m.value()))
                pos[p] = o + 1
        assert not wrong, wrong[:10]
        assert pos == per, (pos, per)
    finally:
        c.close()


# ---------------------------------------------------------------- kafka-python 3

KP_RECORDS = int(os.environ.get('SPOOL_KP_IDEMPOTENCE_RECORDS', '200000'))


def test_kafka_python_idempotent_producer_through_chaos(target):
    """kafka-python 3 (the venv of newer_clients.py; Debian's 2.0.2 has no
    idempotence) with enable_idempotence (its default), acks=all and five
    requests in flight sends 200,000 records round-robin over three
    partitions while the proxy cuts its connections every 30-120 ms
    (tests/python/scenarios.py: kafka-python idempotent).  Every record
    is acknowledged at the offset equal to its sequence in its partition,
    and read back each is there once, in order, and nothing else is; the
    batches carry the producer's id."""
    import newer_clients as nc
    t = target
    require_idempotence(t)
    prefix = 'kp-%s' % t.name
    topic = new_topic(t, None, 3, name=prefix + '-idem')
    cmd, env = nc.Runner().command('kafka-python', 'idempotent', t.bootstrap, prefix)
    env.update(KP_IDEM_RECORDS=str(KP_RECORDS), KP_IDEM_PARTITIONS='3')
    t.proxy.reset_stats()
    t.proxy.chaos(30, 120, only_keys={0})
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           universal_newlines=True, timeout=600, stdin=subprocess.DEVNULL)
    finally:
        t.proxy.calm()
    cut = t.proxy.stats()
    assert r.returncode == 0, (r.returncode, r.stderr[-6000:], t.log_tail())
    out = json.loads(r.stdout.strip().splitlines()[-1])
    print('kafka-python %s on %s: %s records in %s s, proxy %s' % (
        out['client'], t.name, out['records'], out['seconds'], cut))
    per = out['per_partition']
    assert out['error_count'] == 0, (out['errors'], t.log_tail())
    assert out['producer_id'] is not None and out['producer_id'] >= 0, out['producer_id']
    for p, offs in enumerate(out['offsets']):
        bad = [(seq, off) for seq, off in enumerate(offs) if off != seq]
        assert not bad, 'partition %d: acknowledged not at offset == sequence: %s' % (p, bad[:10])
    read_back_once_in_order(t, topic, per)
    for p in range(3):
        layout = log_layout(t.port, topic, p)
        assert {pid for _, pid, _, _, _ in layout} == {out['producer_id']}, layout[:5]
        nxt = 0
        for base, _pid, _epoch, seq, n in layout:
            assert seq == base == nxt, (p, layout[:10])
            nxt += n
    assert cut['drops'] >= MIN_DROPS and cut['drops_with_requests_cut'] >= MIN_DROPS, cut


# ---------------------------------------------------------------- Java


JAVA_RECORDS = 100_000


def test_java_producer_defaults_are_idempotent(target, java, tmp_path):
    """Kafka's Java producer with its defaults (Idempotence.java: only the
    bootstrap and the serializers set: idempotence on, acks=all) sends
    100,000 records to 3 partitions while the proxy cuts its connections;
    consumed back, every record is there once, in order, at the offset
    its acknowledgement named.  The batches on disk carry a producer id
    and sequences (the producer really was idempotent)."""
    t = target
    require_idempotence(t)
    t.proxy.reset_stats()
    t.proxy.chaos(50, 200, only_keys={0})
    try:
        out, proc = java.run(['idempotent_defaults'], tmp_path, **{t.name: t.bootstrap})
    finally:
        t.proxy.calm()
    cut = t.proxy.stats()
    line = out.get((t.name, 'idempotent_defaults'))
    assert line is not None, proc.stderr[-6000:]
    assert 'error' not in line, (line['error'], t.log_tail())
    r = line['result']
    print('java on %s: %s ms, proxy %s' % (t.name, line['ms'], cut))
    assert r['config'] == {'enable.idempotence': True, 'acks': '-1', 'max.in.flight': 5}, r   # acks=all
    assert r['sent'] == JAVA_RECORDS and r['acked'] == JAVA_RECORDS and r['send_errors'] == [], r
    assert r['acked_at_offset_equal_sequence'] is True, r
    assert r['end_offsets'] == [JAVA_RECORDS // 3 + (1 if p < JAVA_RECORDS % 3 else 0)
                                for p in range(3)], r
    assert r['consumed'] == JAVA_RECORDS and r['out_of_place'] == [], r
    topic = r['topic']
    for p in range(3):
        first = kw.fetch(t.port, 11, topic, p, 0, max_bytes=1 << 16)
        b = parse_batches(first['records'])[0]
        assert b['BaseOffset'] == 0 and b['ProducerId'] >= 0 and b['BaseSequence'] == 0, b
    # Drops are not asserted as in the librdkafka test (the Java producer
    # may finish before many come); they are printed.
