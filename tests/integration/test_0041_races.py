"""Deletions racing readers and writers (the partition layer, issue 11 §7):

- DeleteTopics while Fetches are parked on the topic and acks=all
  produces wait for their fsync: every request is answered (the parked
  fetches at once, not at max_wait), nothing hangs, the broker keeps
  serving, and a new topic of the same name starts empty;
- DeleteRecords and retention moving the log start under consumers that
  fetch from the start: every answer is either whole, valid batches
  (CRC-32C checked) at or after the offset asked, or
  OFFSET_OUT_OF_RANGE; never a torn or foreign batch.
"""
import random
import struct
import threading
import time

import kafka_wire as kw
from client_helpers import create_topic
from log_segments import parse_batches
from spool_clients import confluent_admin

UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_OUT_OF_RANGE = 1
NOT_LEADER_OR_FOLLOWER = 6


def fetch_parked(corr, topic, partitions, max_wait_ms):
    parts = [kw.int32(p) + kw.int64(0) + kw.int32(1 << 20) for p in partitions]
    body = (kw.int32(-1) + kw.int32(max_wait_ms) + kw.int32(1 << 30) + kw.int32(50 << 20) + kw.int8(0) +
            kw.array([kw.string(topic) + kw.array(parts)]))
    return kw.request(1, 4, corr, body)


def parse_fetch_v4(payload):
    r = kw.Reader(payload)
    corr = r.int32()
    r.int32()
    out = []
    for _ in range(r.int32()):
        r.string()
        for _ in range(r.int32()):
            p = {'partition': r.int32(), 'error': r.int16(), 'hw': r.int64(), 'lso': r.int64()}
            for _ in range(max(r.int32(), 0)):
                r.int64(), r.int64()
            n = r.int32()
            p['records'] = r._take(n) if n > 0 else b''
            out.append(p)
    return corr, out


def test_delete_topic_while_fetches_and_acks_all_produces_wait(start_broker):
    # no auto-creation: the producers would otherwise make the topic again
    # (Spool creates topics on Produce too: docs/DIFFERENCES.md)
    broker = start_broker(auto_create_topics_enable='false')
    topic = 'doomed'
    nparts = 4
    create_topic(broker.bootstrap, topic, nparts)   # durable: acks=all waits for the fsync
    fetchers = []
    for i in range(3):
        s = kw.connect(broker.port, timeout=30)
        s.sendall(fetch_parked(200 + i, topic, range(nparts), max_wait_ms=20000))
        fetchers.append(s)
    stop = threading.Event()
    results = {'ok': 0, 'gone': 0, 'other': [], 'hung': 0}
    lock = threading.Lock()

    def producer(k):
        rnd = random.Random(k)
        try:
            s = kw.connect(broker.port, timeout=10)
        except OSError:
            return
        with s:
            while not stop.is_set():
                p = rnd.randrange(nparts)
                batch = kw.record_batch([{'value': b'x' * rnd.randrange(10, 2000)} for _ in range(5)])
                try:
                    payload = kw.send_recv(s, kw.produce_request(7, k, {(topic, p): batch}, acks=-1),
                                           timeout=10)
                except OSError:
                    with lock:
                        results['hung'] += 1
                    return
                resp = kw.parse_produce_response(payload, 7)
                err = resp['partitions'][(topic, p)]['error_code']
                with lock:
                    if err == 0:
                        results['ok'] += 1
                    elif err in (UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER):
                        results['gone'] += 1
                    else:
                        results['other'].append(err)

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.8)
    t0 = time.monotonic()
    admin = confluent_admin(broker.bootstrap)
    admin.delete_topics([topic], operation_timeout=10)[topic].result(20)
    # the parked fetches are answered now, not at their 20 s max_wait
    for s in fetchers:
        corr, parts = parse_fetch_v4(kw.recv_frame(s, timeout=10))
        assert time.monotonic() - t0 < 10
        assert sorted(p['partition'] for p in parts) == list(range(nparts))
        assert all(p['error'] in (0, UNKNOWN_TOPIC_OR_PARTITION) for p in parts), parts
        assert any(p['error'] == UNKNOWN_TOPIC_OR_PARTITION for p in parts), parts
        s.close()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(20)
        assert not t.is_alive()
    assert results['hung'] == 0 and results['other'] == [], results
    assert results['ok'] > 0 and results['gone'] > 0, results
    assert broker.proc.poll() is None
    # a new topic of the same name starts empty and works
    create_topic(broker.bootstrap, topic, 1)
    resp = kw.produce(broker.port, 7, {(topic, 0): kw.record_batch([{'value': b'again'}])}, acks=-1)
    assert resp['partitions'][(topic, 0)]['error_code'] == 0
    assert resp['partitions'][(topic, 0)]['base_offset'] == 0
    got = kw.fetch(broker.port, 4, topic, 0, 0)
    assert got['error_code'] == 0 and b'again' in got['records'] and got['high_watermark'] == 1


def check_batches(data, asked):
    """Whole, CRC-valid batches, the first one holding `asked` or later."""
    batches = parse_batches(data)          # strict: no torn tail
    assert batches
    assert batches[0].last_offset >= asked
    for b in batches:
        body = data[b.file_pos + 21:b.file_pos + 12 + b.length]
        assert kw.crc32c(body) == b.crc, b
    for a, b in zip(batches, batches[1:]):
        assert b.base_offset == a.last_offset + 1
    return batches[-1].last_offset + 1


def test_delete_records_and_retention_racing_fetches(start_broker):
    """Consumers read from the log start while DeleteRecords (and, with
    small segments, retention by bytes) moves it, and producers append."""
    b = start_broker(log_retention_check_interval_ms=100)
    topic = 'racing'
    create_topic(b.bootstrap, topic, 1, config={'segment.bytes': '20000', 'retention.bytes': '200000',
                                                 'flush.messages': '1000'})
    stop = threading.Event()
    stats = {'reads': 0, 'out_of_range': 0, 'bad': [], 'deletes': 0, 'produced': 0}
    lock = threading.Lock()

    def producer():
        with kw.connect(b.port, timeout=10) as s:
            while not stop.is_set():
                batch = kw.record_batch([{'value': b'p' * 300} for _ in range(10)])
                payload = kw.send_recv(s, kw.produce_request(7, 1, {(topic, 0): batch}, acks=1))
                assert kw.parse_produce_response(payload, 7)['partitions'][(topic, 0)]['error_code'] == 0
                with lock:
                    stats['produced'] += 1

    def deleter():
        with kw.connect(b.port, timeout=10) as s:
            while not stop.is_set():
                time.sleep(0.01)
                payload = kw.send_recv(s, kw.delete_records_request(3, {topic: [(0, -1)]}))
                r = kw.Reader(payload)
                r.int32(), r.int32()
                r.int32(), r.string(), r.int32()
                r.int32(), r.int64()
                assert r.int16() == 0
                with lock:
                    stats['deletes'] += 1

    def consumer(k):
        rnd = random.Random(k)
        with kw.connect(b.port, timeout=10) as s:
            offset = 0
            while not stop.is_set():
                payload = kw.send_recv(s, kw.fetch_request(5, 9, topic, 0, offset,
                                                           max_bytes=rnd.choice([100, 5000, 1 << 20])))
                p = kw.parse_fetch_response(payload, 5)['partitions'][(topic, 0)]
                with lock:
                    stats['reads'] += 1
                if p['error_code'] == OFFSET_OUT_OF_RANGE:
                    with lock:
                        stats['out_of_range'] += 1
                    offset = 0 if offset else rnd.randrange(0, 10)
                    continue
                if p['error_code'] != 0:
                    with lock:
                        stats['bad'].append(('error', p['error_code']))
                    return
                if p['records']:
                    try:
                        nxt = check_batches(p['records'], offset)
                    except AssertionError as e:
                        with lock:
                            stats['bad'].append(('batches', offset, repr(e)))
                        return
                    offset = nxt if rnd.random() < 0.8 else p['log_start_offset']
                else:
                    offset = p['log_start_offset']

    threads = ([threading.Thread(target=producer), threading.Thread(target=deleter)] +
               [threading.Thread(target=consumer, args=(k,)) for k in range(3)])
    for t in threads:
        t.start()
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join(20)
        assert not t.is_alive()
    assert stats['bad'] == [], stats
    assert stats['reads'] > 100 and stats['deletes'] > 20 and stats['produced'] > 50, stats
    assert stats['out_of_range'] > 0, stats   # the start did move under the readers
    assert b.proc.poll() is None
