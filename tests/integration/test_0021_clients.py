"""Produce/consume/admin with confluent-kafka (librdkafka), kafka-python and kcat."""

import os
import subprocess
import threading
import time

import pytest

import kafka_wire as kw
import log_segments
from client_helpers import (consume_assigned, consumer, create_topic, produce,
                            producer)
from spool_clients import KCAT, confluent_admin, kcat_list


# ------------------------------------------------------------ confluent-kafka


def test_confluent_acks_all_round_trip(broker):
    topic = 'ck-acks-all'
    create_topic(broker.bootstrap, topic, 2)
    n = 10000
    p = producer(broker.bootstrap, acks='all')
    recs = [{'key': b'k%05d' % i, 'value': b'value-%05d-' % i + os.urandom(16).hex().encode()}
            for i in range(n)]
    dr = produce(p, topic, recs)

    errors = [d for d in dr if d.error is not None]
    assert not errors, errors[:5]
    by_part = {0: [], 1: []}
    for d in dr:
        by_part[d.partition].append(d.offset)
    for part, offs in by_part.items():
        assert offs, 'nothing went to partition %d' % part
        assert sorted(offs) == list(range(len(offs))), 'partition %d offsets' % part
        # One producer, no retries needed: offsets follow production order.
        assert offs == sorted(offs)

    expect = {(d.partition, d.offset): (d.key, d.value) for d in dr}
    msgs = consume_assigned(broker.bootstrap, topic, [0, 1])
    got = {}
    for m in msgs:
        assert (m.partition(), m.offset()) not in got
        got[(m.partition(), m.offset())] = (m.key(), m.value())
    assert len(got) == n
    assert got == expect


def test_confluent_watermarks_and_offsets_for_times(broker):
    from confluent_kafka import TopicPartition
    topic = 'ck-times'
    create_topic(broker.bootstrap, topic, 1)
    # Timestamps 1000, 2000, ... 10000 (ms), one batch per record so the
    # time index has several entries.
    p = producer(broker.bootstrap)
    for i in range(10):
        dr = produce(p, topic, [{'value': b'v%d' % i, 'timestamp': 1000 * (i + 1),
                                 'partition': 0}])
        assert dr[0].error is None and dr[0].offset == i, dr

    c = consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 10)

        def lookup(ts):
            res = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert res[0].error is None, res[0].error
            return res[0].offset

        assert lookup(2500) == 2        # first record with ts >= 2500 is 3000 @ 2
        assert lookup(2000) == 1        # exact match
        assert lookup(0) == 0
        assert lookup(1000) == 0
        assert lookup(10000) == 9
        assert lookup(10001) == -1      # after the last record: OFFSET_END
        assert lookup(99999999) == -1
    finally:
        c.close()

    # Consumed timestamps are the producer's CreateTime values.
    from confluent_kafka import TIMESTAMP_CREATE_TIME
    msgs = consume_assigned(broker.bootstrap, topic, [0])
    assert [m.timestamp() for m in msgs] == [(TIMESTAMP_CREATE_TIME, 1000 * (i + 1))
                                             for i in range(10)]


def _list_offsets_v7(port, topic, partition, timestamp):
    """Raw ListOffsets v7 (flexible). Returns (error_code, timestamp, offset)."""
    part = (kw.int32(partition) + kw.int32(-1) + kw.int64(timestamp) + kw.TAGGED_NONE)
    body = (kw.int32(-1) + kw.int8(0)
            + kw.compact_array([kw.compact_string(topic) + kw.compact_array([part])
                                + kw.TAGGED_NONE])
            + kw.TAGGED_NONE)
    resp = kw.send_recv(port, kw.request(2, 7, 77, body, flexible=True))
    r = kw.Reader(resp)
    assert r.int32() == 77
    r.tagged_fields()
    r.int32()                                   # throttle_time_ms

    def rpart(rr):
        out = {'partition': rr.int32(), 'error_code': rr.int16(),
               'timestamp': rr.int64(), 'offset': rr.int64(),
               'leader_epoch': rr.int32()}
        rr.tagged_fields()
        return out

    def rtopic(rr):
        out = {'name': rr.compact_string(), 'partitions': rr.compact_array(rpart)}
        rr.tagged_fields()
        return out

    topics = r.compact_array(rtopic)
    r.tagged_fields()
    assert r.remaining() == 0
    assert [t['name'] for t in topics] == [topic]
    (pr,) = topics[0]['partitions']
    assert pr['partition'] == partition
    return pr['error_code'], pr['timestamp'], pr['offset']


def test_list_offsets_raw_special_timestamps(broker):
    topic = 'raw-listoffsets'
    create_topic(broker.bootstrap, topic, 1)
    p = producer(broker.bootstrap)
    stamps = [1000, 5000, 3000, 2000, 5000, 4000]
    for i, ts in enumerate(stamps):
        dr = produce(p, topic, [{'value': b'x%d' % i, 'timestamp': ts, 'partition': 0}])
        assert dr[0].error is None and dr[0].offset == i
    # -2 earliest, -1 latest, -3 max timestamp (first record holding the max).
    assert _list_offsets_v7(broker.port, topic, 0, -2)[::2] == (0, 0)
    assert _list_offsets_v7(broker.port, topic, 0, -1)[::2] == (0, len(stamps))
    assert _list_offsets_v7(broker.port, topic, 0, -3) == (0, 5000, 1)
    # By timestamp: first offset whose timestamp >= target (not time-sorted data).
    assert _list_offsets_v7(broker.port, topic, 0, 4500) == (0, 5000, 1)
    assert _list_offsets_v7(broker.port, topic, 0, 1500) == (0, 5000, 1)
    err, ts, off = _list_offsets_v7(broker.port, topic, 0, 6000)
    assert (err, ts, off) == (0, -1, -1)


def test_list_offsets_max_timestamp_is_first_record_of_its_batch(broker):
    """-3 (OffsetSpec.maxTimestamp, kafka-get-offsets --time -3) answers the
    first record holding the largest timestamp, inside its batch, as
    Kafka's RecordBatch.offsetOfMaxTimestamp: not the batch's last offset
    (which the time index keeps), not a later batch with the same maximum.
    With LogAppendTime every record of a batch has its time: its base."""
    topic = 'raw-listoffsets-maxts'
    create_topic(broker.bootstrap, topic, 2)
    stamps = [1000, 5000, 3000, 5000, 2000]
    batch = kw.record_batch([{'value': b'a%d' % i, 'timestamp': t} for i, t in enumerate(stamps)])
    later = kw.record_batch([{'value': b'b%d' % i, 'timestamp': t} for i, t in enumerate([4000, 5000])])
    for recs in (batch, later):
        r = kw.produce(broker.port, 9, {(topic, 0): recs})
        assert r['partitions'][(topic, 0)]['error_code'] == 0, r
    assert _list_offsets_v7(broker.port, topic, 0, -3) == (0, 5000, 1)
    # by timestamp: the first record at or after it, inside the batch too
    # (5000 is the time index's entry for the batch's last offset, 4)
    for target, want in ((5000, 1), (4500, 1), (1000, 0), (1001, 1)):
        assert _list_offsets_v7(broker.port, topic, 0, target) == (0, 5000 if want else 1000, want), target
    # compressed: the same answer from inside the batch
    z = kw.record_batch([{'value': b'z%d' % i, 'timestamp': t} for i, t in enumerate([7, 9, 8, 9])],
                        codec=kw.CODEC_GZIP)
    r = kw.produce(broker.port, 9, {(topic, 1): z})
    assert r['partitions'][(topic, 1)]['error_code'] == 0, r
    assert _list_offsets_v7(broker.port, topic, 1, -3) == (0, 9, 1)

    lat = 'raw-listoffsets-maxts-lat'
    create_topic(broker.bootstrap, lat, 1, config={'message.timestamp.type': 'LogAppendTime'})
    times = []
    for recs in (batch, later):
        r = kw.produce(broker.port, 9, {(lat, 0): recs})
        assert r['partitions'][(lat, 0)]['error_code'] == 0, r
        times.append(r['partitions'][(lat, 0)]['log_append_time_ms'])
    # the later batch's base, or the first's if both got the same time
    want = 0 if times[0] == times[1] else 5
    assert _list_offsets_v7(broker.port, lat, 0, -3) == (0, times[1], want)


def test_large_record_and_message_too_large(broker):
    from confluent_kafka import KafkaError
    topic = 'ck-big'
    create_topic(broker.bootstrap, topic, 1)
    p = producer(broker.bootstrap, **{'message.max.bytes': 2000000,
                                      'compression.type': 'none'})
    big = os.urandom(900 * 1024)
    dr = produce(p, topic, [{'value': big, 'key': b'big', 'partition': 0}])
    assert dr[0].error is None, dr[0].error
    msgs = consume_assigned(broker.bootstrap, topic, [0])
    assert len(msgs) == 1
    assert msgs[0].key() == b'big'
    assert msgs[0].value() == big

    small_topic = 'ck-limited'
    create_topic(broker.bootstrap, small_topic, 1, {'max.message.bytes': '100000'})
    dr = produce(p, small_topic, [{'value': os.urandom(200 * 1024), 'partition': 0}])
    assert dr[0].error is not None, 'over-limit record was accepted at offset %s' % dr[0].offset
    assert dr[0].error.code() == KafkaError.MSG_SIZE_TOO_LARGE, dr[0].error
    # The same producer keeps working.
    dr = produce(p, small_topic, [{'value': b'small', 'partition': 0}])
    assert dr[0].error is None, dr[0].error
    assert dr[0].offset == 0
    msgs = consume_assigned(broker.bootstrap, small_topic, [0])
    assert [m.value() for m in msgs] == [b'small']


def test_log_append_time_topic(broker):
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
    topic = 'ck-lat'
    create_topic(broker.bootstrap, topic, 1, {'message.timestamp.type': 'LogAppendTime'})
    p = producer(broker.bootstrap)
    before = int(time.time() * 1000)
    dr = produce(p, topic, [{'value': b'old%d' % i, 'timestamp': 1000 + i, 'partition': 0}
                            for i in range(5)])
    after = int(time.time() * 1000)
    assert all(d.error is None for d in dr), dr
    msgs = consume_assigned(broker.bootstrap, topic, [0])
    assert [m.value() for m in msgs] == [b'old%d' % i for i in range(5)]
    for m in msgs:
        tstype, ts = m.timestamp()
        assert tstype == TIMESTAMP_LOG_APPEND_TIME, m.timestamp()
        assert before - 2000 <= ts <= after + 2000, (ts, before, after)
    batches = log_segments.read_partition_batches(broker.data_dir, topic, 0)
    assert batches and all(b.timestamp_type == 'LogAppendTime' for b in batches), batches


def test_compacted_topic_rejects_null_key(broker):
    from confluent_kafka import KafkaError
    topic = 'ck-compact'
    create_topic(broker.bootstrap, topic, 1, {'cleanup.policy': 'compact'})
    p = producer(broker.bootstrap)
    dr = produce(p, topic, [{'value': b'no key', 'partition': 0}])
    assert dr[0].error is not None, 'null-key record accepted at offset %s' % dr[0].offset
    assert dr[0].error.code() == KafkaError.INVALID_RECORD, dr[0].error
    dr = produce(p, topic, [{'value': b'keyed', 'key': b'k', 'partition': 0}])
    assert dr[0].error is None, dr[0].error
    assert dr[0].offset == 0
    msgs = consume_assigned(broker.bootstrap, topic, [0])
    assert [(m.key(), m.value()) for m in msgs] == [(b'k', b'keyed')]


def test_auto_create_with_kcat(broker):
    topic = 'auto-created-by-kcat'
    proc = subprocess.run([KCAT, '-P', '-b', broker.bootstrap, '-t', topic],
                          input='hello\n', stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    res = kcat_list(broker.bootstrap, extra=['-t', topic])
    assert res.json is not None, res
    topics = {t['topic']: t for t in res.json['topics']}
    assert topic in topics, res
    assert 'error' not in topics[topic] or not topics[topic]['error'], topics[topic]
    assert [pp['partition'] for pp in topics[topic]['partitions']] == [0]
    msgs = consume_assigned(broker.bootstrap, topic, [0])
    assert [m.value() for m in msgs] == [b'hello']
    assert (broker.data_dir / ('%s-0' % topic)).is_dir()


def test_auto_create_disabled(start_broker):
    from confluent_kafka import KafkaError
    b = start_broker({'auto.create.topics.enable': 'false'})
    md = confluent_admin(b.bootstrap).list_topics(topic='nope', timeout=10)
    assert 'nope' in md.topics
    assert md.topics['nope'].error is not None
    assert md.topics['nope'].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, \
        md.topics['nope'].error
    # A producer asking for it does not create it either.
    p = producer(b.bootstrap, **{'message.timeout.ms': 1500})
    p.produce('nope', b'x')
    p.flush(5)
    md = confluent_admin(b.bootstrap).list_topics(timeout=10)
    assert 'nope' not in md.topics, md.topics
    assert not (b.data_dir / 'nope-0').exists()
    assert 'created topic nope' not in b.log_text()


def test_long_poll_woken_by_append(broker):
    from confluent_kafka import TopicPartition
    topic = 'ck-longpoll'
    create_topic(broker.bootstrap, topic, 1)
    c = consumer(broker.bootstrap, **{'fetch.wait.max.ms': 5000,
                                      'enable.partition.eof': False})
    sent = {}

    def send_later():
        time.sleep(1.0)
        p = producer(broker.bootstrap, **{'linger.ms': 0})
        sent['t'] = time.monotonic()
        p.produce(topic, b'wake up', partition=0)
        sent['left'] = p.flush(10)

    try:
        c.assign([TopicPartition(topic, 0, 0)])
        # Let the consumer get its first (empty, parked) fetch going.
        assert c.poll(0.5) is None
        th = threading.Thread(target=send_later)
        t0 = time.monotonic()
        th.start()
        got = None
        while time.monotonic() - t0 < 10:
            m = c.poll(0.1)
            if m is None:
                continue
            assert not m.error(), m.error()
            got = (time.monotonic(), m)
            break
        th.join()
        assert sent.get('left') == 0
        assert got is not None, 'record not received within 10 s'
        recv_t, m = got
        assert m.value() == b'wake up' and m.offset() == 0
        # Sent ~1 s after t0; a parked fetch not woken by the append would only
        # return at ~5 s after it was sent (fetch.wait.max.ms).
        assert recv_t - t0 < 4.0, 'received %.2fs after start (sent at %.2fs)' % (
            recv_t - t0, sent['t'] - t0)
    finally:
        c.close()


# --------------------------------------------------------------- kafka-python


def test_kafka_python_round_trip(broker):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    topic = 'kp-round-trip'
    create_topic(broker.bootstrap, topic, 1)
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap, acks='all',
                         linger_ms=5, retries=0)
    try:
        futures = [prod.send(topic, key=b'k%d' % i, value=b'kafka-python-%d' % i, partition=0)
                   for i in range(1000)]
        prod.flush(30)
        metas = [f.get(timeout=30) for f in futures]
    finally:
        prod.close(5)
    assert [m.offset for m in metas] == list(range(1000))
    assert all(m.partition == 0 and m.topic == topic for m in metas)

    cons = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                         enable_auto_commit=False, consumer_timeout_ms=10000)
    try:
        tp = TopicPartition(topic, 0)
        cons.assign([tp])
        cons.seek_to_beginning(tp)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 1000 and time.monotonic() < deadline:
            for recs in cons.poll(timeout_ms=500).values():
                got.extend(recs)
        assert cons.end_offsets([tp]) == {tp: 1000}
    finally:
        cons.close()
    assert [(r.offset, r.key, r.value) for r in got] == [
        (i, b'k%d' % i, b'kafka-python-%d' % i) for i in range(1000)]


def test_kafka_python_admin(broker):
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import InvalidTopicError, TopicAlreadyExistsError
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)

    def wait_listed(name, present):
        deadline = time.monotonic() + 5
        while True:
            names = set(admin.list_topics())
            if (name in names) == present or time.monotonic() > deadline:
                return names
            time.sleep(0.1)

    try:
        admin.create_topics([NewTopic('kp-admin', num_partitions=2, replication_factor=1)])
        assert 'kp-admin' in wait_listed('kp-admin', True)
        md = confluent_admin(broker.bootstrap).list_topics(topic='kp-admin', timeout=10)
        assert sorted(md.topics['kp-admin'].partitions) == [0, 1]

        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic('kp-admin', num_partitions=2, replication_factor=1)])

        with pytest.raises(InvalidTopicError):
            admin.create_topics([NewTopic('bad name!', num_partitions=1, replication_factor=1)])
        assert 'bad name!' not in set(admin.list_topics())

        admin.delete_topics(['kp-admin'], timeout_ms=10000)
        assert 'kp-admin' not in wait_listed('kp-admin', False)
    finally:
        admin.close()
