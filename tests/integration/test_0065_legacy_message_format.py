"""Message sets of magic 0 and 1 (Kafka before 0.11): Produce v0-2 and
Fetch v0-3, which Kafka 4 removed (KIP-896) and Kafka 3 served by
converting (proto/legacy.h).  Through kafka-python (Debian's, run under
/usr/bin/python3) pinned to old protocol levels, and through raw frames
for what a client does not show: CRCs, compressed wrappers, headers
dropped on the way down.
"""
import gzip
import struct
import time
import zlib

import kafka_wire as kw
from client_helpers import create_topic
from kafka_schema import parse_batches, schemas

S = schemas()


def call(port, key, v, body):
    payload = kw.send_recv(port, S.encode_request(key, v, body, strict=True))
    _, resp = S.decode_response(key, v, payload)
    return resp


def message(magic, key, value, ts=None, attributes=0, offset=0):
    body = struct.pack('>bb', magic, attributes)
    if magic == 1:
        body += struct.pack('>q', ts if ts is not None else int(time.time() * 1000))
    for b in (key, value):
        body += struct.pack('>i', -1) if b is None else struct.pack('>i', len(b)) + b
    m = struct.pack('>I', zlib.crc32(body) & 0xffffffff) + body
    return struct.pack('>qi', offset, len(m)) + m


def parse_messages(data):
    """[(offset, magic, attributes, timestamp, key, value)] of a message set
    (a message cut short at the end is left out, as clients do)."""
    out, pos = [], 0
    while len(data) - pos >= 12:
        off, size = struct.unpack('>qi', data[pos:pos + 12])
        if len(data) - pos - 12 < size:
            break
        m = data[pos + 12:pos + 12 + size]
        crc, magic, attrs = struct.unpack('>Ibb', m[:6])
        assert zlib.crc32(m[4:]) & 0xffffffff == crc
        q, ts = 6, None
        if magic == 1:
            (ts,) = struct.unpack('>q', m[6:14])
            q = 14
        fields = []
        for _ in range(2):
            (n,) = struct.unpack('>i', m[q:q + 4])
            q += 4
            fields.append(None if n < 0 else m[q:q + n])
            q += max(n, 0)
        out.append((off, magic, attrs, ts, fields[0], fields[1]))
        pos += 12 + size
    return out


def produce(port, v, topic, data, acks=-1):
    r = call(port, 0, v, {'Acks': acks, 'TimeoutMs': 10000, 'TopicData': [
        {'Name': topic, 'PartitionData': [{'Index': 0, 'Records': data}]}]})
    return r['Responses'][0]['PartitionResponses'][0]


def fetch(port, v, topic, offset, max_bytes=1 << 20):
    r = call(port, 1, v, {'ReplicaId': -1, 'MaxWaitMs': 0, 'MinBytes': 1,
                          'MaxBytes': max_bytes if v >= 3 else 0x7fffffff,
                          'Topics': [{'Topic': topic, 'Partitions': [
                              {'Partition': 0, 'FetchOffset': offset, 'PartitionMaxBytes': max_bytes}]}]})
    return r['Responses'][0]['Partitions'][0]


def test_raw_produce_and_fetch_old_formats(broker):
    create_topic(broker.bootstrap, 'legacy', partitions=1)
    ts = int(time.time() * 1000) - 5000
    # magic 1, uncompressed (Produce v2)
    p = produce(broker.port, 2, 'legacy', message(1, b'k0', b'v0', ts) + message(1, None, b'v1', ts + 1))
    assert (p['ErrorCode'], p['BaseOffset']) == (0, 0)
    # magic 0 (Produce v0): no timestamps
    p = produce(broker.port, 0, 'legacy', message(0, b'k2', b'v2'))
    assert (p['ErrorCode'], p['BaseOffset']) == (0, 2)
    # magic 1 in a gzip wrapper (Produce v1)
    inner = message(1, b'k3', b'v3', ts + 3, offset=0) + message(1, b'k4', None, ts + 4, offset=1)
    p = produce(broker.port, 1, 'legacy', message(1, None, gzip.compress(inner), ts + 4, attributes=1))
    assert (p['ErrorCode'], p['BaseOffset']) == (0, 3)
    # a record batch with a header, the modern way
    p = produce(broker.port, 9, 'legacy', kw.record_batch([{'key': b'k5', 'value': b'v5', 'timestamp': ts + 5,
                                                             'headers': [(b'h', b'x')]}]))
    assert (p['ErrorCode'], p['BaseOffset']) == (0, 5)

    # what the log holds: record batches (magic 2), one per produce, the gzip one still gzip
    f = fetch(broker.port, 12, 'legacy', 0)
    batches = parse_batches(f['Records'])
    assert [(b['Magic'], b['BaseOffset'], b['RecordCount'], b['Attributes'] & 7) for b in batches] == \
        [(2, 0, 2, 0), (2, 2, 1, 0), (2, 3, 2, 1), (2, 5, 1, 0)]

    # Fetch v2-3: magic 1 messages with their offsets and timestamps
    for v in (2, 3):
        f = fetch(broker.port, v, 'legacy', 0)
        assert f['ErrorCode'] == 0 and f['HighWatermark'] == 6
        msgs = parse_messages(f['Records'])
        assert [(m[0], m[1], m[4], m[5]) for m in msgs] == [
            (0, 1, b'k0', b'v0'), (1, 1, None, b'v1'), (2, 1, b'k2', b'v2'), (3, 1, b'k3', b'v3'),
            (4, 1, b'k4', None), (5, 1, b'k5', b'v5')]
        assert [m[3] for m in msgs] == [ts, ts + 1, -1, ts + 3, ts + 4, ts + 5]
    # Fetch v0-1: magic 0, from the middle
    for v in (0, 1):
        msgs = parse_messages(fetch(broker.port, v, 'legacy', 3)['Records'])
        assert [(m[0], m[1], m[3], m[5]) for m in msgs] == [(3, 0, None, b'v3'), (4, 0, None, None),
                                                            (5, 0, None, b'v5')]
    # out of range, as any version
    assert fetch(broker.port, 2, 'legacy', 99)['ErrorCode'] == 1


def test_raw_bad_message_sets(broker):
    create_topic(broker.bootstrap, 'legacy-bad', partitions=1)
    good = message(1, b'k', b'v', int(time.time() * 1000))
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0xff
    assert produce(broker.port, 2, 'legacy-bad', bytes(bad_crc))['ErrorCode'] == 2    # CORRUPT_MESSAGE
    assert produce(broker.port, 2, 'legacy-bad', good[:-3])['ErrorCode'] == 2          # cut short
    assert produce(broker.port, 2, 'legacy-bad', b'')['ErrorCode'] == 87              # INVALID_RECORD
    nested = message(1, None, gzip.compress(message(1, None, gzip.compress(good), attributes=1)), attributes=1)
    assert produce(broker.port, 2, 'legacy-bad', nested)['ErrorCode'] == 2
    # nothing of it was written, and the connection-level service goes on
    p = produce(broker.port, 2, 'legacy-bad', good)
    assert (p['ErrorCode'], p['BaseOffset']) == (0, 0)


def test_kafka_python_at_old_protocol_levels(broker):
    """Debian's kafka-python producing and consuming as a Kafka 0.9 client
    (Produce v1, magic 0; Fetch v1) and as a 0.10.1 one (Produce v2, magic 1;
    Fetch v3)."""
    import subprocess
    import sys
    create_topic(broker.bootstrap, 'legacy-kp', partitions=1)
    script = r'''
import json, sys
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
bootstrap, level, n0 = sys.argv[1], tuple(int(x) for x in sys.argv[2].split('.')), int(sys.argv[3])
p = KafkaProducer(bootstrap_servers=bootstrap, api_version=level, acks='all', linger_ms=5)
for i in range(n0, n0 + 50):
    p.send('legacy-kp', key=b'k%d' % i, value=b'v%d' % i, partition=0)
p.flush(30)
p.close()
c = KafkaConsumer(bootstrap_servers=bootstrap, api_version=level, enable_auto_commit=False,
                  consumer_timeout_ms=3000)
tp = TopicPartition('legacy-kp', 0)
c.assign([tp])
c.seek(tp, 0)
got = [(m.offset, m.key.decode(), m.value.decode()) for m in c]
c.close()
print(json.dumps(got))
'''
    import json
    got = None
    for level, n0 in (('0.9', 0), ('0.10.1', 50)):
        out = subprocess.run(['/usr/bin/python3', '-c', script, broker.bootstrap, level, str(n0)],
                             capture_output=True, text=True, timeout=90)
        assert out.returncode == 0, out.stderr[-2000:]
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert [g[0] for g in got] == list(range(n0 + 50))
        assert got == [[i, 'k%d' % i, 'v%d' % i] for i in range(n0 + 50)]
    _ = sys
