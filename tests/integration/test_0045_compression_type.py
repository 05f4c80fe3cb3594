"""Broker-side compression.type (topic key and broker default), as Kafka's
LogValidator: a batch whose codec is not the topic's is rebuilt with it on
append (offsets, timestamps, headers, producer fields kept), 'producer'
keeps the producer's codec, 'uncompressed' stores uncompressed.  Checked on
disk (log_segments) and through real consumers (kcat, confluent-kafka).
KIP-390 levels: compression.gzip.level, compression.lz4.level,
compression.zstd.level."""

import subprocess

import kafka_wire as kw
import log_segments
from client_helpers import consume_assigned, create_topic, produce, producer
from spool_clients import KCAT, confluent_admin

NONE = 0
MESSAGE_TOO_LARGE = 10
INVALID_RECORD = 87
INVALID_CONFIG = 40
SRC_DYNAMIC_TOPIC, SRC_STATIC_BROKER, SRC_DEFAULT = 1, 4, 5

KEY_DELIM = '|'
FIELD_SEP = '\x01'
RECORD_SEP = '\x02\n'


def codecs_on_disk(broker, topic, partition=0):
    return [log_segments.CODECS[b.codec] for b in
            log_segments.read_partition_batches(broker.data_dir, topic, partition)]


def kcat_produce(broker, topic, lines, codec, tmp_path, headers=()):
    src = tmp_path / ('in-%s.txt' % codec)
    src.write_text(''.join(lines))
    args = [KCAT, '-P', '-b', broker.bootstrap, '-t', topic, '-p', '0', '-K', KEY_DELIM,
            '-z', codec, '-X', 'linger.ms=5', '-X', 'acks=all', '-l', str(src)]
    for name, value in headers:
        args += ['-H', '%s=%s' % (name, value)]
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert proc.returncode == 0 and 'error' not in proc.stderr.lower(), proc.stderr[-2000:]


def kcat_consume(broker, topic):
    """[(offset, key, value, headers, timestamp)] of partition 0."""
    fmt = FIELD_SEP.join(['%o', '%k', '%s', '%h', '%T']) + RECORD_SEP
    fmt = fmt.replace('\x01', '\\x01').replace('\x02', '\\x02').replace('\n', '\\n')
    proc = subprocess.run([KCAT, '-C', '-b', broker.bootstrap, '-t', topic, '-p', '0', '-e',
                           '-o', 'beginning', '-f', fmt, '-q'],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.decode()
    if not out:
        return []
    recs = []
    for chunk in out[:-len(RECORD_SEP)].split(RECORD_SEP):
        o, k, v, h, t = chunk.split(FIELD_SEP)
        recs.append((int(o), k, v, h, int(t)))
    return recs


def confluent_records(broker, topic):
    """[(offset, key, value, headers, (timestamp type, timestamp))]."""
    return [(m.offset(), m.key(), m.value(), m.headers(), m.timestamp())
            for m in consume_assigned(broker.bootstrap, topic, [0])]


def describe_topic(bootstrap, topic):
    from confluent_kafka.admin import ConfigResource
    admin = confluent_admin(bootstrap)        # kept alive until the answer
    (f,) = admin.describe_configs([ConfigResource('topic', topic)]).values()
    return {k: (e.value, int(e.source)) for k, e in f.result(timeout=20).items()}


def alter_topic(bootstrap, topic, configs):
    """AlterConfigs; returns None or the KafkaError of the topic."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ConfigResource
    admin = confluent_admin(bootstrap)
    (f,) = admin.alter_configs([ConfigResource('topic', topic, set_config=configs)]).values()
    try:
        f.result(timeout=20)
        return None
    except KafkaException as e:
        return e.args[0]


def produce_mixed(broker, topic, tmp_path):
    """Batches of every kind from kcat (none, gzip) and confluent-kafka
    (none, gzip, snappy, lz4, zstd), with keys, headers and explicit
    timestamps.  Returns the confluent records as (key, value, headers,
    timestamp) in offset order after kcat's."""
    lines = ['key-%04d%s%s\n' % (i, KEY_DELIM, 'kcat value %d ' % i + 'x' * (i % 50))
             for i in range(300)]
    kcat_produce(broker, topic, lines[:150], 'none', tmp_path, headers=[('h', 'kcat')])
    kcat_produce(broker, topic, lines[150:], 'gzip', tmp_path, headers=[('h', 'kcat')])
    sent = []
    for n, codec in enumerate(['none', 'gzip', 'snappy', 'lz4', 'zstd']):
        p = producer(broker.bootstrap, **{'compression.type': codec, 'linger.ms': 20})
        recs = [{'key': b'ck-%s-%d' % (codec.encode(), i), 'value': b'v%d ' % i + b'y' * (i % 40),
                 'headers': [('codec', codec.encode()), ('i', b'%d' % i)],
                 'timestamp': 1700000000000 + 1000 * n + i, 'partition': 0} for i in range(200)]
        dr = produce(p, topic, recs)
        assert all(d.error is None for d in dr), [d for d in dr if d.error][:3]
        sent += [(r['key'], r['value'], r['headers'], r['timestamp']) for r in recs]
    return lines, sent


def check_consumers(broker, topic, lines, sent):
    got = confluent_records(broker, topic)
    assert [o for o, *_ in got] == list(range(300 + len(sent)))
    kc = [(k, v) for _, k, v, _, _ in got[:300]]
    assert kc == [tuple(x.encode() for x in l[:-1].split(KEY_DELIM)) for l in lines]
    assert all(h == [('h', b'kcat')] for *_, h, _ in got[:300])
    assert [(k, v, h, ts) for _, k, v, h, (_, ts) in got[300:]] == sent
    kc = kcat_consume(broker, topic)
    assert [(o, k, v) for o, k, v, _, _ in kc] == [(o, k.decode(), v.decode()) for o, k, v, *_ in got]
    assert [t for *_, t in kc[300:]] == [ts for *_, ts in sent]


def test_zstd_topic_stores_zstd(broker, tmp_path):
    """compression.type=zstd: uncompressed and gzip batches from kcat, and
    every codec from confluent-kafka, are stored as zstd; both consumers
    read the records as produced (offsets, keys, values, headers,
    timestamps)."""
    create_topic(broker.bootstrap, 'ct-zstd', 1, {'compression.type': 'zstd'})
    lines, sent = produce_mixed(broker, 'ct-zstd', tmp_path)
    on_disk = codecs_on_disk(broker, 'ct-zstd')
    assert on_disk and set(on_disk) == {'zstd'}, on_disk
    check_consumers(broker, 'ct-zstd', lines, sent)
    assert describe_topic(broker.bootstrap, 'ct-zstd')['compression.type'] == ('zstd', SRC_DYNAMIC_TOPIC)


def test_uncompressed_topic_stores_uncompressed(broker, tmp_path):
    create_topic(broker.bootstrap, 'ct-none', 1, {'compression.type': 'uncompressed'})
    lines, sent = produce_mixed(broker, 'ct-none', tmp_path)
    on_disk = codecs_on_disk(broker, 'ct-none')
    assert on_disk and set(on_disk) == {'none'}, on_disk
    check_consumers(broker, 'ct-none', lines, sent)


def test_producer_keeps_the_producers_codec(broker, tmp_path):
    """The default, 'producer': every batch keeps the codec it came with."""
    create_topic(broker.bootstrap, 'ct-prod', 1)
    assert describe_topic(broker.bootstrap, 'ct-prod')['compression.type'] == ('producer', SRC_DEFAULT)
    lines, sent = produce_mixed(broker, 'ct-prod', tmp_path)
    on_disk = codecs_on_disk(broker, 'ct-prod')
    # (librdkafka sends a batch uncompressed when compressing does not pay)
    assert set(on_disk) == {'none', 'gzip', 'snappy', 'lz4', 'zstd'}, on_disk
    check_consumers(broker, 'ct-prod', lines, sent)


def test_header_fields_survive_recompression(broker):
    """A raw idempotent gzip batch into a zstd topic: offsets, timestamps,
    producer id, epoch and sequence stay; the attributes change only in
    the codec bits."""
    create_topic(broker.bootstrap, 'ct-hdr', 1, {'compression.type': 'zstd'})
    recs = [{'key': b'k%d' % i, 'value': b'v' * 100, 'timestamp': 1700000000000 + 7 * i,
             'headers': [(b'a', b'b'), (b'n', None)]} for i in range(50)]
    for n in range(2):
        batch = kw.record_batch(recs, codec=kw.CODEC_GZIP, producer_id=4242, producer_epoch=3,
                                base_sequence=50 * n)
        p = kw.produce(broker.port, 9, {('ct-hdr', 0): batch})['partitions'][('ct-hdr', 0)]
        assert p['error_code'] == NONE and p['base_offset'] == 50 * n, p
    batches = log_segments.read_partition_batches(broker.data_dir, 'ct-hdr', 0)
    assert [(b.codec_name, b.base_offset, b.last_offset_delta, b.record_count, b.base_timestamp,
             b.max_timestamp, b.producer_id, b.producer_epoch, b.base_sequence,
             b.attributes & ~7) for b in batches] == \
        [('zstd', 50 * n, 49, 50, 1700000000000, 1700000000000 + 7 * 49, 4242, 3, 50 * n, 0)
         for n in range(2)]
    got = confluent_records(broker, 'ct-hdr')
    assert [(k, v, h, t) for _, k, v, h, (_, t) in got] == \
        [(r['key'], r['value'], [('a', b'b'), ('n', None)], r['timestamp']) for r in recs] * 2


def test_rules_hold_before_recompression(broker):
    """The batch is judged as the producer sent it (record errors name its
    records); the rebuilt batch must still fit max.message.bytes
    (MESSAGE_TOO_LARGE, as Kafka after a conversion)."""
    create_topic(broker.bootstrap, 'ct-cmp', 1, {'compression.type': 'lz4',
                                                  'cleanup.policy': 'compact'})
    recs = [{'key': None if i == 4 else b'k%d' % i, 'value': b'v'} for i in range(10)]
    p = kw.produce(broker.port, 9, {('ct-cmp', 0): kw.record_batch(recs, codec=kw.CODEC_GZIP)})
    p = p['partitions'][('ct-cmp', 0)]
    assert p['error_code'] == INVALID_RECORD and [i for i, _ in p['record_errors']] == [4], p

    create_topic(broker.bootstrap, 'ct-big', 1, {'compression.type': 'uncompressed',
                                                  'max.message.bytes': '20000'})
    big = kw.record_batch([{'value': b'\x00' * 50000}], codec=kw.CODEC_GZIP)
    assert len(big) < 20000
    p = kw.produce(broker.port, 9, {('ct-big', 0): big})['partitions'][('ct-big', 0)]
    assert p['error_code'] == MESSAGE_TOO_LARGE, p
    small = kw.record_batch([{'value': b'\x00' * 5000}], codec=kw.CODEC_GZIP)
    p = kw.produce(broker.port, 9, {('ct-big', 0): small})['partitions'][('ct-big', 0)]
    assert p['error_code'] == NONE and p['base_offset'] == 0, p
    assert codecs_on_disk(broker, 'ct-big') == ['none']


def test_broker_default_and_alter(start_broker):
    """compression.type in server.properties is every topic's default; a
    topic override wins; AlterConfigs changes it for the next batches;
    values and levels are checked as Kafka checks them."""
    broker = start_broker({'compression.type': 'gzip', 'compression.gzip.level': '9'})
    create_topic(broker.bootstrap, 'ct-def', 1)
    create_topic(broker.bootstrap, 'ct-own', 1, {'compression.type': 'producer'})
    cfg = describe_topic(broker.bootstrap, 'ct-def')
    assert cfg['compression.type'] == ('gzip', SRC_STATIC_BROKER)
    assert cfg['compression.gzip.level'] == ('9', SRC_STATIC_BROKER)
    assert cfg['compression.lz4.level'] == ('9', SRC_DEFAULT)
    assert cfg['compression.zstd.level'] == ('3', SRC_DEFAULT)
    batch = kw.record_batch([{'value': b'abc' * 100}])
    for topic in ('ct-def', 'ct-own'):
        p = kw.produce(broker.port, 8, {(topic, 0): batch})['partitions'][(topic, 0)]
        assert p['error_code'] == NONE, p
    assert codecs_on_disk(broker, 'ct-def') == ['gzip']
    assert codecs_on_disk(broker, 'ct-own') == ['none']

    assert alter_topic(broker.bootstrap, 'ct-def', {'compression.type': 'lz4',
                                                    'compression.lz4.level': '17'}) is None
    p = kw.produce(broker.port, 8, {('ct-def', 0): batch})['partitions'][('ct-def', 0)]
    assert p['error_code'] == NONE and p['base_offset'] == 1, p
    assert codecs_on_disk(broker, 'ct-def') == ['gzip', 'lz4']
    assert describe_topic(broker.bootstrap, 'ct-def')['compression.lz4.level'] == ('17', SRC_DYNAMIC_TOPIC)
    for bad in ({'compression.type': 'brotli'}, {'compression.gzip.level': '0'},
                {'compression.lz4.level': '18'}, {'compression.zstd.level': '23'}):
        err = alter_topic(broker.bootstrap, 'ct-def', bad)
        assert err is not None and err.code() == INVALID_CONFIG, (bad, err)
    assert alter_topic(broker.bootstrap, 'ct-def', {'compression.type': 'ZSTD',
                                                    'compression.zstd.level': '-5'}) is None
    p = kw.produce(broker.port, 8, {('ct-def', 0): batch})['partitions'][('ct-def', 0)]
    assert p['error_code'] == NONE and p['base_offset'] == 2, p
    assert codecs_on_disk(broker, 'ct-def') == ['gzip', 'lz4', 'zstd']
    got = confluent_records(broker, 'ct-def')
    assert [m[2] for m in got] == [b'abc' * 100] * 3

    # the broker key set dynamically (DYNAMIC_BROKER_CONFIG) beats the file
    from confluent_kafka.admin import ConfigResource
    admin = confluent_admin(broker.bootstrap)
    (f,) = admin.alter_configs([ConfigResource('broker', '1',
                                               set_config={'compression.type': 'snappy'})]).values()
    f.result(timeout=20)
    create_topic(broker.bootstrap, 'ct-dyn', 1)
    assert describe_topic(broker.bootstrap, 'ct-dyn')['compression.type'] == ('snappy', 2)
    p = kw.produce(broker.port, 8, {('ct-dyn', 0): batch})['partitions'][('ct-dyn', 0)]
    assert p['error_code'] == NONE, p
    assert codecs_on_disk(broker, 'ct-dyn') == ['snappy']
    assert [m[2] for m in confluent_records(broker, 'ct-dyn')] == [b'abc' * 100]


def test_bad_static_compression_type_stops_the_broker(start_broker):
    """As Kafka's ValidString: an unknown codec in server.properties is a
    configuration error naming the key."""
    import pytest
    with pytest.raises(RuntimeError) as e:
        start_broker({'compression.type': 'brotli'})
    assert 'compression.type' in str(e.value)


def test_fetch_below_v10_refuses_zstd_topics(broker):
    """KafkaApis.handleFetchRequest: a topic whose compression.type is zstd
    is UNSUPPORTED_COMPRESSION_TYPE for Fetch v4-v9 (no records, watermarks
    -1); v10+ reads it.  The rule follows the setting: zstd batches on a
    'producer' topic are served to any version, as Kafka serves them."""
    UNSUPPORTED_COMPRESSION_TYPE = 76
    create_topic(broker.bootstrap, 'ct-fz', 1, {'compression.type': 'zstd'})
    create_topic(broker.bootstrap, 'ct-fp', 1)
    batch = kw.record_batch([{'value': b'v%d' % i} for i in range(5)], codec=kw.CODEC_ZSTD)
    for topic in ('ct-fz', 'ct-fp'):
        p = kw.produce(broker.port, 7, {(topic, 0): batch})['partitions'][(topic, 0)]
        assert p['error_code'] == NONE, p
    for v in (4, 5, 6, 7, 8, 9):
        p = kw.fetch(broker.port, v, 'ct-fz', 0, 0)
        assert p['error_code'] == UNSUPPORTED_COMPRESSION_TYPE, (v, p)
        assert p['records'] == b'' and p['high_watermark'] == -1, (v, p)
        p = kw.fetch(broker.port, v, 'ct-fp', 0, 0)
        assert p['error_code'] == NONE and p['high_watermark'] == 5 and p['records'], (v, p)
    for v in (10, 11):
        p = kw.fetch(broker.port, v, 'ct-fz', 0, 0)
        assert p['error_code'] == NONE and p['high_watermark'] == 5, (v, p)
        (b,) = log_segments.parse_batches(p['records'])
        assert b.codec_name == 'zstd' and b.record_count == 5
    # a consumer of today reads it
    assert [m[2] for m in confluent_records(broker, 'ct-fz')] == [b'v%d' % i for i in range(5)]
