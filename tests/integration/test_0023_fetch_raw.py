"""Fetch at the wire: the record bytes a consumer receives are the
segment's bytes (sendfile, and the copy fallback when the socket is full),
for Fetch v4 (by name) and v13 (by topic id, flexible)."""
import socket
import struct
import time

import kafka_wire as kw
from client_helpers import create_topic, produce, producer

TOPIC = 'rawfetch'


def fetch_v4(corr, topic, offset, max_bytes):
    body = (kw.int32(-1) + kw.int32(100) + kw.int32(1) + kw.int32(max_bytes) + kw.int8(0) +
            kw.array([kw.string(topic) + kw.array([kw.int32(0) + kw.int64(offset) +
                                                   kw.int32(max_bytes)])]))
    return kw.request(1, 4, corr, body)


def parse_fetch_v4(payload):
    r = kw.Reader(payload)
    corr = r.int32()
    r.int32()                                   # throttle
    out = []
    for _ in range(r.int32()):
        name = r.string()
        for _ in range(r.int32()):
            part = {'topic': name, 'partition': r.int32(), 'error': r.int16(),
                    'hw': r.int64(), 'lso': r.int64()}
            for _ in range(max(r.int32(), 0)):  # aborted transactions
                r.int64(), r.int64()
            n = r.int32()
            part['records'] = r._take(n) if n > 0 else b''
            out.append(part)
    return corr, out


def fetch_v13(corr, topic_id, offset, max_bytes):
    tag = b'\x00'
    part = kw.int32(0) + kw.int32(-1) + kw.int64(offset) + kw.int32(-1) + kw.int64(-1) + \
        kw.int32(max_bytes) + tag
    topic = topic_id + kw.uvarint(2) + part + tag
    body = (kw.int32(-1) + kw.int32(100) + kw.int32(1) + kw.int32(max_bytes) + kw.int8(0) +
            kw.int32(0) + kw.int32(-1) + kw.uvarint(2) + topic + kw.uvarint(1) +
            kw.uvarint(1) + tag)  # forgotten topics: none; rack id ""
    return kw.request(1, 13, corr, body, flexible=True)


def segment_bytes(broker, topic):
    return (broker.data_dir / ('%s-0' % topic) / ('0' * 20 + '.log')).read_bytes()


def test_fetch_returns_the_segment_bytes_even_through_a_full_socket(start_broker):
    broker = start_broker({'log.level': 'debug'})
    create_topic(broker.bootstrap, TOPIC, 1)
    dr = produce(producer(broker.bootstrap), TOPIC,
                 [{'key': b'k%d' % i, 'value': b'v' * 1000} for i in range(20000)])
    assert all(d.error is None for d in dr)
    on_disk = segment_bytes(broker, TOPIC)
    assert len(on_disk) > 15 * 1024 * 1024

    s = socket.create_connection(('127.0.0.1', broker.port))
    # a small receive window and a late reader: the broker's socket fills up
    # mid-response, so part goes by sendfile and the rest by the copy path
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(fetch_v4(7, TOPIC, 0, 64 * 1024 * 1024))
    time.sleep(0.5)
    corr, parts = parse_fetch_v4(kw.recv_frame(s, timeout=30))
    s.close()
    assert corr == 7
    assert parts[0]['error'] == 0 and parts[0]['hw'] == 20000
    records = parts[0]['records']
    assert len(records) == len(on_disk)
    assert records == on_disk
    log = broker.log_text()
    assert 'socket full after' in log, 'the copy fallback was not exercised'
    assert 'ERROR' not in log


def test_fetch_by_topic_id_v13(broker):
    create_topic(broker.bootstrap, 'byid', 1)
    dr = produce(producer(broker.bootstrap), 'byid', [{'value': b'x%d' % i} for i in range(100)])
    assert all(d.error is None for d in dr)
    md = kw.parse_metadata_response(kw.send_recv(broker.port, kw.metadata_request(12, 3, topics=['byid'])), 12)
    topic_id = md['topics'][0]['topic_id']
    assert topic_id != bytes(16)
    payload = kw.send_recv(broker.port, fetch_v13(9, topic_id, 0, 1 << 20))
    r = kw.Reader(payload)
    assert r.int32() == 9
    r.tagged_fields()                           # response header v1
    r.int32()                                   # throttle
    assert r.int16() == 0                       # error
    assert r.int32() == 0                       # session id: sessionless
    topics = r.uvarint() - 1
    assert topics == 1
    assert r._take(16) == topic_id
    assert r.uvarint() - 1 == 1
    assert r.int32() == 0 and r.int16() == 0    # partition 0, no error
    assert r.int64() == 100                     # high watermark
    r.int64(), r.int64()                        # lso, log start
    aborted = r.uvarint()
    assert aborted in (0, 1)
    r.int32()                                   # preferred read replica
    n = r.uvarint() - 1
    assert r._take(n) == segment_bytes(broker, 'byid')
    # an unknown id is UNKNOWN_TOPIC_ID (100)
    payload = kw.send_recv(broker.port, fetch_v13(10, b'\x01' * 16, 0, 1 << 20))
    r = kw.Reader(payload)
    r.int32(), r.tagged_fields(), r.int32(), r.int16(), r.int32()
    r.uvarint(), r._take(16), r.uvarint(), r.int32()
    assert r.int16() == 100


def fetch_many_v4(corr, topic, partitions, min_bytes, max_wait_ms, part_max=1 << 20):
    """Fetch v4 over `partitions` (a list of (index, offset)), in that order."""
    parts = [kw.int32(p) + kw.int64(o) + kw.int32(part_max) for p, o in partitions]
    body = (kw.int32(-1) + kw.int32(max_wait_ms) + kw.int32(min_bytes) + kw.int32(50 << 20) + kw.int8(0) +
            kw.array([kw.string(topic) + kw.array(parts)]))
    return kw.request(1, 4, corr, body)


def answered(sock, wait):
    sock.settimeout(wait)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b''
    except socket.timeout:
        return False


def test_parked_fetch_over_many_partitions_answers_once_enough_moved(broker):
    """A long poll over many partitions: each produce wakes it, it re-reads
    only what moved (fetch.c), and it answers once min_bytes are there --
    not before -- with every partition in request order and each one's
    latest data and offsets, as if read at that moment."""
    topic = 'widepoll'
    n = 16
    create_topic(broker.bootstrap, topic, n)
    value = b'v' * 300          # one batch: ~370 bytes; min_bytes needs four
    order = list(range(n - 1, -1, -1))           # request order: 15, 14, ..., 0
    s = kw.connect(broker.port, timeout=10)
    s.sendall(fetch_many_v4(41, topic, [(p, 0) for p in order], min_bytes=1200, max_wait_ms=8000))
    t0 = time.monotonic()
    assert not answered(s, 0.3)                   # parked
    kw.produce(broker.port, 7, {(topic, 9): kw.record_batch([{'value': value}])}, acks=1)
    kw.produce(broker.port, 7, {(topic, 2): kw.record_batch([{'value': value}])}, acks=1)
    assert not answered(s, 0.3)                   # two batches: below min_bytes
    kw.produce(broker.port, 7, {(topic, 2): kw.record_batch([{'value': value}])}, acks=1)
    assert not answered(s, 0.3)                   # three
    kw.produce(broker.port, 7, {(topic, 12): kw.record_batch([{'value': value}])}, acks=1)
    payload = kw.recv_frame(s, timeout=5)
    assert time.monotonic() - t0 < 5              # woken, not timed out
    corr, parts = parse_fetch_v4(payload)
    assert corr == 41
    assert [p['partition'] for p in parts] == order
    by = {p['partition']: p for p in parts}
    assert all(p['error'] == 0 for p in parts)
    assert by[2]['hw'] == 2 and by[9]['hw'] == 1 and by[12]['hw'] == 1
    assert all(by[p]['hw'] == 0 and by[p]['records'] == b'' for p in by if p not in (2, 9, 12))
    # the records are the segments' bytes: both batches of partition 2
    for p, count in ((2, 2), (9, 1), (12, 1)):
        seg = (broker.data_dir / ('%s-%d' % (topic, p)) / ('0' * 20 + '.log')).read_bytes()
        assert by[p]['records'] == seg and seg.count(value) == count
    s.close()


def test_parked_fetch_answer_keeps_the_limits(broker):
    """The answer of a woken fetch is read again whole: partition limits and
    the first-batch-whole rule hold as for an immediate answer."""
    topic = 'widelimits'
    create_topic(broker.bootstrap, topic, 4)
    big = b'b' * 2000
    s = kw.connect(broker.port, timeout=10)
    # partition limit 100 bytes: only the first partition with data gets a
    # (whole) batch beyond it, the next one nothing
    s.sendall(fetch_many_v4(42, topic, [(1, 0), (3, 0)], min_bytes=1, max_wait_ms=8000, part_max=100))
    assert not answered(s, 0.3)
    kw.produce(broker.port, 7, {(topic, 3): kw.record_batch([{'value': big}])}, acks=1)
    corr, parts = parse_fetch_v4(kw.recv_frame(s, timeout=5))
    assert corr == 42 and [p['partition'] for p in parts] == [1, 3]
    assert parts[0]['records'] == b'' and big in parts[1]['records']
    s.close()
