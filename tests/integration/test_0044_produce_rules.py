"""What a client may write with Produce, checked with raw frames against
Kafka's answers (KafkaApis.handleProduceRequest, ProduceRequest.validateRecords,
UnifiedLog/LogValidator for AppendOrigin.CLIENT):

- control batches (transaction markers) are refused: INVALID_RECORD (bug B1);
- a transactional batch needs a transactional id the client may use: Spool
  has no transaction coordinator, so the whole request fails with
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Kafka answers a transactional
  batch sent without a transactional id;
- exactly one whole batch of magic 2 per partition, base offset 0, counts
  that match, a sequence with a producer id: INVALID_RECORD;
- zstd below Produce v7: UNSUPPORTED_COMPRESSION_TYPE;
- keyless records on a compacted topic: INVALID_RECORD with every refused
  record in record_errors (v8+) and Kafka's summary in error_message.
A refused partition appends nothing: the next good batch gets offset 0.
"""

import kafka_wire as kw
import log_segments
from client_helpers import consume_assigned, create_topic

NONE = 0
CORRUPT_MESSAGE = 2
INVALID_TIMESTAMP = 32
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
UNSUPPORTED_COMPRESSION_TYPE = 76
INVALID_RECORD = 87


def recs(n, prefix=b'v'):
    return [{'key': b'k%d' % i, 'value': prefix + b'%d' % i} for i in range(n)]


def good_batch(n=3, **kw_):
    return kw.record_batch(recs(n), **kw_)


def answer(port, version, partitions, **kw_):
    return kw.produce(port, version, partitions, **kw_)['partitions']


def assert_empty_then_good(port, topic, partition=0):
    """Nothing was appended: a good batch now lands at offset 0."""
    p = answer(port, 3, {(topic, partition): good_batch()})[(topic, partition)]
    assert p['error_code'] == NONE and p['base_offset'] == 0, p


def test_control_batches_from_clients_are_refused(broker):
    """Bug B1: raw Produce v3 with a COMMIT marker (control + transactional,
    pid 7), an empty control batch and a non-transactional marker."""
    create_topic(broker.bootstrap, 'b1', 2)
    marker = kw.control_record(commit=True)
    txn_marker = kw.record_batch([marker], attributes=kw.ATTR_CONTROL | kw.ATTR_TRANSACTIONAL,
                                 producer_id=7, producer_epoch=0, base_sequence=0)
    # Kafka: any transactional first batch without a transactional id fails
    # the whole request, the good partition beside it too
    resp = answer(broker.port, 3, {('b1', 0): txn_marker, ('b1', 1): good_batch()})
    assert resp[('b1', 0)]['error_code'] == TRANSACTIONAL_ID_AUTHORIZATION_FAILED, resp
    assert resp[('b1', 1)]['error_code'] == TRANSACTIONAL_ID_AUTHORIZATION_FAILED, resp
    assert resp[('b1', 0)]['base_offset'] == -1

    # an empty control batch (record count 0, last offset delta 0)
    empty_ctl = kw.record_batch([], attributes=kw.ATTR_CONTROL, producer_id=7,
                                producer_epoch=0, base_sequence=0, record_count=0,
                                last_offset_delta=0)
    p = answer(broker.port, 3, {('b1', 0): empty_ctl})[('b1', 0)]
    assert p['error_code'] == INVALID_RECORD and p['base_offset'] == -1, p

    # a marker without the transactional bit, and one with no producer
    for batch in (kw.record_batch([marker], attributes=kw.ATTR_CONTROL, producer_id=7,
                                  producer_epoch=0, base_sequence=0),
                  kw.record_batch([marker], attributes=kw.ATTR_CONTROL)):
        for v in (3, 9):
            p = answer(broker.port, v, {('b1', 0): batch})[('b1', 0)]
            assert p['error_code'] == INVALID_RECORD, (v, p)

    assert_empty_then_good(broker.port, 'b1', 0)
    assert_empty_then_good(broker.port, 'b1', 1)
    # on disk: only the good batches, none of them control
    for part in (0, 1):
        batches = log_segments.read_partition_batches(broker.data_dir, 'b1', part)
        assert [(b.base_offset, b.record_count, b.attributes & 0x30) for b in batches] == [(0, 3, 0)]


def test_transactional_batches_need_a_transaction(broker):
    """A transactional batch needs a transactional id (Kafka's
    KafkaApis.handleProduceRequest), whether or not it names a producer, at
    every version; with an id the coordinator does not know, the batch is
    refused by its check (KIP-890: INVALID_PRODUCER_ID_MAPPING); a request
    with a transactional id and a plain batch is served as any."""
    create_topic(broker.bootstrap, 'txn', 1)
    for pid, seq in ((7, 0), (-1, -1)):
        batch = good_batch(attributes=kw.ATTR_TRANSACTIONAL, producer_id=pid, producer_epoch=0,
                           base_sequence=seq)
        for v in (3, 7, 9, 11):
            p = answer(broker.port, v, {('txn', 0): batch})[('txn', 0)]
            assert p['error_code'] == TRANSACTIONAL_ID_AUTHORIZATION_FAILED, (pid, v, p)
    batch = good_batch(attributes=kw.ATTR_TRANSACTIONAL, producer_id=7, producer_epoch=0, base_sequence=0)
    for v in (3, 9, 11):
        p = answer(broker.port, v, {('txn', 0): batch}, transactional_id='tx-unknown')[('txn', 0)]
        assert p['error_code'] == 49, (v, p)       # INVALID_PRODUCER_ID_MAPPING
    assert_empty_then_good(broker.port, 'txn')
    p = answer(broker.port, 3, {('txn', 0): good_batch()}, transactional_id='tx-1')[('txn', 0)]
    assert p['error_code'] == 0 and p['base_offset'] > 0, p


def test_one_batch_per_partition(broker):
    """ProduceRequest.validateRecords: exactly one record batch per partition
    (v3+); the other partition of the request is not affected."""
    create_topic(broker.bootstrap, 'onebatch', 2)
    two = good_batch(2) + good_batch(3)
    for v in (3, 8, 9):
        resp = answer(broker.port, v, {('onebatch', 0): two, ('onebatch', 1): good_batch(1)})
        assert resp[('onebatch', 0)]['error_code'] == INVALID_RECORD, (v, resp)
        assert resp[('onebatch', 1)]['error_code'] == NONE, (v, resp)
    assert_empty_then_good(broker.port, 'onebatch', 0)
    batches = log_segments.read_partition_batches(broker.data_dir, 'onebatch', 1)
    assert [b.record_count for b in batches] == [1, 1, 1]


def test_batch_header_rules(broker):
    """Kafka's client checks on the batch header, and records that are not
    one whole magic-2 batch."""
    create_topic(broker.bootstrap, 'hdr', 1)
    g = good_batch()
    cases = [
        ('base offset 5', good_batch(base_offset=5), INVALID_RECORD),
        ('count 4 for 3 records', good_batch(record_count=4, last_offset_delta=3), INVALID_RECORD),
        ('last offset delta 1 for 3', good_batch(last_offset_delta=1), INVALID_RECORD),
        ('producer id without a sequence', good_batch(producer_id=5, producer_epoch=0),
         INVALID_RECORD),
        ('magic 1', good_batch(magic=1), INVALID_RECORD),
        ('no bytes', b'', INVALID_RECORD),
        ('null records', None, INVALID_RECORD),
        ('a batch cut short', g[:-1], INVALID_RECORD),
        ('garbage after the batch', g + b'\x00\x01', CORRUPT_MESSAGE),
        ('bad CRC', g[:-1] + bytes([g[-1] ^ 1]), CORRUPT_MESSAGE),
    ]
    bad = []
    for name, batch, want in cases:
        p = answer(broker.port, 3, {('hdr', 0): batch})[('hdr', 0)]
        if p['error_code'] != want or p['base_offset'] != -1:
            bad.append((name, p['error_code'], want))
    assert bad == [], bad
    # an idempotent producer's batch is fine
    p = answer(broker.port, 3, {('hdr', 0): good_batch(producer_id=5, producer_epoch=0,
                                                       base_sequence=0)})[('hdr', 0)]
    assert p['error_code'] == NONE and p['base_offset'] == 0, p


def test_zstd_needs_produce_v7(broker):
    """ProduceRequest.validateRecords: zstd below v7 is
    UNSUPPORTED_COMPRESSION_TYPE; v7 is fine; gzip is fine at v3."""
    create_topic(broker.bootstrap, 'zst', 1)
    z = good_batch(5, codec=kw.CODEC_ZSTD)
    for v in (3, 4, 5, 6):
        p = answer(broker.port, v, {('zst', 0): z})[('zst', 0)]
        assert p['error_code'] == UNSUPPORTED_COMPRESSION_TYPE and p['base_offset'] == -1, (v, p)
    p = answer(broker.port, 3, {('zst', 0): good_batch(2, codec=kw.CODEC_GZIP)})[('zst', 0)]
    assert p['error_code'] == NONE and p['base_offset'] == 0, p
    p = answer(broker.port, 7, {('zst', 0): z})[('zst', 0)]
    assert p['error_code'] == NONE and p['base_offset'] == 2, p
    msgs = consume_assigned(broker.bootstrap, 'zst', [0])
    assert [m.value() for m in msgs] == [b'v0', b'v1', b'v0', b'v1', b'v2', b'v3', b'v4']


def keyless_every_tenth(n=100):
    return [{'key': None if i % 10 == 3 else b'k%d' % i, 'value': b'v%d' % i} for i in range(n)]


def test_compacted_topic_lists_the_keyless_records(broker):
    """KIP-467: Produce v8+ names each keyless record of the batch
    (record_errors: batch index + message) and sums up in error_message;
    the batch is refused whole; the keyed ones, sent again alone, go in."""
    create_topic(broker.bootstrap, 'cmp', 1, {'cleanup.policy': 'compact'})
    batch = kw.record_batch(keyless_every_tenth())
    key_msg = 'Compacted topic cannot accept message without key in topic partition cmp-0'
    want_errors = [(i, key_msg) for i in range(3, 100, 10)]
    shown = ', '.join("RecordError(batchIndex=%d, message='%s')" % (i, key_msg) for i in (3, 13, 23))
    want_summary = ('One or more records have been rejected due to 10 record errors in total, '
                    'and only showing the first three errors at most: [%s]' % shown)
    for v in (8, 9, 11):
        p = answer(broker.port, v, {('cmp', 0): batch})[('cmp', 0)]
        assert p['error_code'] == INVALID_RECORD and p['base_offset'] == -1, (v, p)
        assert p['record_errors'] == want_errors, (v, p['record_errors'])
        assert p['error_message'] == want_summary, (v, p['error_message'])
    # v7 has no place for them: the error alone
    p = answer(broker.port, 7, {('cmp', 0): batch})[('cmp', 0)]
    assert p['error_code'] == INVALID_RECORD and 'record_errors' not in p, p
    # what a KIP-467 client does next: the 90 good records again
    good = [r for r in keyless_every_tenth() if r['key'] is not None]
    p = answer(broker.port, 9, {('cmp', 0): kw.record_batch(good)})[('cmp', 0)]
    assert p['error_code'] == NONE and p['base_offset'] == 0 and p['record_errors'] == [], p
    assert p['error_message'] is None, p
    msgs = consume_assigned(broker.bootstrap, 'cmp', [0])
    assert [(m.key(), m.value()) for m in msgs] == [(r['key'], r['value']) for r in good]


# ------------------------------------------------------------ timestamps

HOUR = 3600 * 1000


def now_ms():
    import time
    return int(time.time() * 1000)


def alter_topic(bootstrap, topic, configs):
    """AlterConfigs (confluent-kafka): the topic's overrides become configs."""
    from confluent_kafka.admin import ConfigResource
    from spool_clients import confluent_admin
    admin = confluent_admin(bootstrap)        # kept alive until the answer
    fs = admin.alter_configs([ConfigResource('topic', topic, set_config=configs)])
    for f in fs.values():
        f.result(timeout=20)


def describe_topic(bootstrap, topic):
    """{name: (value, source)} (confluent-kafka DescribeConfigs)."""
    from confluent_kafka.admin import ConfigResource
    from spool_clients import confluent_admin
    admin = confluent_admin(bootstrap)        # kept alive until the answer
    (f,) = admin.describe_configs([ConfigResource('topic', topic)]).values()
    return {k: (e.value, int(e.source)) for k, e in f.result(timeout=20).items()}


def test_timestamp_bounds(broker):
    """Kafka 4's message.timestamp.after.max.ms (default one hour) and
    before.max.ms (default unbounded): a CreateTime out of range is
    INVALID_TIMESTAMP with the record named; -1 (no timestamp) passes;
    the bounds follow the topic's configuration as it changes."""
    create_topic(broker.bootstrap, 'ts', 1)
    cfg = describe_topic(broker.bootstrap, 'ts')
    assert cfg['message.timestamp.after.max.ms'] == ('3600000', 5)          # DEFAULT_CONFIG
    assert cfg['message.timestamp.before.max.ms'] == ('9223372036854775807', 5)
    t0 = now_ms()
    records = [{'value': b'now', 'timestamp': t0},
               {'value': b'ten days ago', 'timestamp': t0 - 240 * HOUR},
               {'value': b'in half an hour', 'timestamp': t0 + HOUR // 2},
               {'value': b'in two hours', 'timestamp': t0 + 2 * HOUR},
               {'value': b'no timestamp', 'timestamp': -1}]
    batch = kw.record_batch(records)
    p = answer(broker.port, 9, {('ts', 0): batch})[('ts', 0)]
    assert p['error_code'] == INVALID_TIMESTAMP and p['base_offset'] == -1, p
    assert p['error_message'] == 'One or more records have been rejected due to invalid timestamp'
    (idx, msg), = p['record_errors']
    assert idx == 3, p
    head = 'Timestamp %d of message with offset 3 is out of range. The timestamp should be within [' % (
        t0 + 2 * HOUR)
    assert msg.startswith(head), msg
    low, high = (int(x) for x in msg[len(head):-1].split(', '))
    assert low < -9 * 10 ** 18                          # now - Long.MAX_VALUE
    assert t0 + HOUR <= high <= now_ms() + HOUR, (t0, high)
    # v3..v7: the error only
    p = answer(broker.port, 3, {('ts', 0): batch})[('ts', 0)]
    assert p['error_code'] == INVALID_TIMESTAMP, p

    alter_topic(broker.bootstrap, 'ts', {'message.timestamp.after.max.ms': str(3 * HOUR)})
    p = answer(broker.port, 9, {('ts', 0): batch})[('ts', 0)]
    assert p['error_code'] == NONE and p['base_offset'] == 0, p

    alter_topic(broker.bootstrap, 'ts', {'message.timestamp.before.max.ms': str(24 * HOUR)})
    p = answer(broker.port, 9, {('ts', 0): kw.record_batch(records[:3])})[('ts', 0)]
    assert p['error_code'] == INVALID_TIMESTAMP, p
    assert [i for i, _ in p['record_errors']] == [1]
    assert describe_topic(broker.bootstrap, 'ts')['message.timestamp.before.max.ms'] == \
        (str(24 * HOUR), 1)                                                   # DYNAMIC_TOPIC_CONFIG


def test_timestamp_bounds_broker_default(start_broker):
    """log.message.timestamp.after.max.ms in server.properties sets the
    default of every topic."""
    broker = start_broker({'log.message.timestamp.after.max.ms': '1000'})
    create_topic(broker.bootstrap, 'tsb', 1)
    assert describe_topic(broker.bootstrap, 'tsb')['message.timestamp.after.max.ms'] == ('1000', 4)
    batch = kw.record_batch([{'value': b'x', 'timestamp': now_ms() + 60000}])
    p = answer(broker.port, 8, {('tsb', 0): batch})[('tsb', 0)]
    assert p['error_code'] == INVALID_TIMESTAMP and len(p['record_errors']) == 1, p


def test_log_append_time_topic_refuses_log_append_time_batches(broker):
    """LogValidator.validateTimestamp: a LogAppendTime topic ignores the
    bounds but refuses a batch whose producer set LogAppendTime itself."""
    create_topic(broker.bootstrap, 'lat', 1, {'message.timestamp.type': 'LogAppendTime'})
    t = now_ms() + 5 * HOUR
    claims = kw.record_batch([{'key': b'k0', 'value': b'v0', 'timestamp': t},
                              {'key': b'k1', 'value': b'v1', 'timestamp': t}],
                             attributes=kw.ATTR_LOG_APPEND_TIME)
    p = answer(broker.port, 8, {('lat', 0): claims})[('lat', 0)]
    assert p['error_code'] == INVALID_TIMESTAMP, p
    want = ('Invalid timestamp type in message DefaultRecord(offset=%d, timestamp=%d, key=2 bytes, '
            'value=2 bytes). Producer should not set timestamp type to LogAppendTime.')
    assert p['record_errors'] == [(0, want % (0, t)), (1, want % (1, t))], p
    far = kw.record_batch([{'value': b'far ahead', 'timestamp': t}])
    p = answer(broker.port, 8, {('lat', 0): far})[('lat', 0)]
    assert p['error_code'] == NONE and p['base_offset'] == 0 and p['log_append_time_ms'] > 0, p


def test_confluent_future_timestamp_is_refused(broker):
    """confluent-kafka: a record stamped two hours ahead fails with
    INVALID_TIMESTAMP; the records around it, in their own batches, go in.
    (librdkafka 2.0 speaks Produce v7: no record_errors, so a refused batch
    fails whole on its side.)"""
    from confluent_kafka import KafkaError
    from client_helpers import produce, producer
    create_topic(broker.bootstrap, 'tsc', 1)
    p = producer(broker.bootstrap, **{'linger.ms': 0, 'retries': 0})
    t0 = now_ms()
    before = produce(p, 'tsc', [{'value': b'before', 'partition': 0}])
    bad = produce(p, 'tsc', [{'value': b'future', 'partition': 0, 'timestamp': t0 + 2 * HOUR}])
    after = produce(p, 'tsc', [{'value': b'after', 'partition': 0, 'timestamp': t0 + HOUR // 2}])
    assert before[0].error is None and after[0].error is None, (before, after)
    assert bad[0].error is not None and bad[0].error.code() == KafkaError.INVALID_TIMESTAMP, bad
    msgs = consume_assigned(broker.bootstrap, 'tsc', [0])
    assert [m.value() for m in msgs] == [b'before', b'after']
