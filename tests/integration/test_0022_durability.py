"""Durability: clean restart, kill -9 under load, torn/corrupt log tails, segment roll."""

import os
import signal
import threading
import time

import log_segments
from client_helpers import (consume_assigned, consumer, create_topic, produce,
                            producer)

MARKER = '.kafka_cleanshutdown'
TRUNC_MSG = 'truncated %d bytes of torn or corrupt data at the end of'


def stop_clean(b):
    rc = b.stop(signal.SIGTERM, timeout=10)
    assert rc == 0, b.log_text()[-3000:]
    assert (b.data_dir / MARKER).exists(), 'no %s after a clean stop' % MARKER


def values(msgs):
    return [(m.partition(), m.offset(), m.key(), m.value()) for m in msgs]


# ------------------------------------------------------------- clean restart


def test_restart_after_clean_stop(start_broker):
    b = start_broker()
    topic = 'durable-clean'
    create_topic(b.bootstrap, topic, 2)
    p = producer(b.bootstrap, acks='all')
    dr = produce(p, topic, [{'key': b'k%d' % i, 'value': b'clean-%d' % i,
                             'partition': i % 2} for i in range(5000)])
    assert all(d.error is None for d in dr)
    del p
    before = sorted(values(consume_assigned(b.bootstrap, topic, [0, 1])))
    assert len(before) == 5000
    assert sorted((d.partition, d.offset, d.key, d.value) for d in dr) == before

    stop_clean(b)
    b2 = start_broker(data_dir=b.data_dir)
    assert 'no clean-shutdown marker' not in b2.log_text(), b2.log_text()
    after = sorted(values(consume_assigned(b2.bootstrap, topic, [0, 1])))
    assert after == before

    p = producer(b2.bootstrap, acks='all')
    dr = produce(p, topic, [{'key': b'n%d' % i, 'value': b'more-%d' % i,
                             'partition': i % 2} for i in range(10)])
    assert all(d.error is None for d in dr)
    assert [(d.partition, d.offset) for d in dr] == [(i % 2, 2500 + i // 2) for i in range(10)]
    msgs = consume_assigned(b2.bootstrap, topic, [0, 1], start=2500)
    assert sorted(values(msgs)) == sorted(
        (i % 2, 2500 + i // 2, b'n%d' % i, b'more-%d' % i) for i in range(10))


# ------------------------------------------------------------ kill -9 under load


def test_kill9_during_produce(start_broker):
    b = start_broker()
    topic = 'durable-kill9'
    create_topic(b.bootstrap, topic, 1)
    p = producer(b.bootstrap, acks='all', **{'linger.ms': 5,
                                            'message.timeout.ms': 3000,
                                            'max.in.flight.requests.per.connection': 5})
    acked = {}            # seq -> offset
    failed = set()
    lock = threading.Lock()
    stop = threading.Event()
    produced = [0]

    def cb(err, msg):
        seq = int(msg.value().split(b'-')[1])
        with lock:
            if err is None:
                acked[seq] = msg.offset()
            else:
                failed.add(seq)

    def run():
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, b'seq-%08d-' % i + b'x' * 64, partition=0, on_delivery=cb)
                i += 1
            except BufferError:
                p.poll(0.01)
                continue
            if i % 100 == 0:
                p.poll(0)
                time.sleep(0.001)
        produced[0] = i

    th = threading.Thread(target=run)
    th.start()
    time.sleep(3.0)
    b.proc.kill()
    b.proc.wait(timeout=5)
    stop.set()
    th.join(10)
    # Let librdkafka fail what it can (message.timeout.ms), then purge
    # whatever is still queued or in flight to the dead broker: none of
    # those can have been acknowledged.
    p.flush(1)
    p.purge(in_queue=True, in_flight=True, blocking=True)
    left = p.flush(5)
    assert left == 0, '%d deliveries unresolved' % left
    n = produced[0]
    with lock:
        assert len(acked) + len(failed) == n, (len(acked), len(failed), n)
        acked_items = sorted(acked.items())
    assert len(acked_items) > 100, 'too few acknowledged before the kill: %d' % len(acked_items)
    # Acknowledged offsets are contiguous from 0, in production order.
    assert [o for _, o in acked_items] == list(range(len(acked_items)))
    assert [s for s, _ in acked_items] == list(range(len(acked_items)))

    b2 = start_broker(data_dir=b.data_dir)
    msgs = consume_assigned(b2.bootstrap, topic, [0], timeout=60)
    got = [(m.offset(), int(m.value().split(b'-')[1])) for m in msgs]
    assert [o for o, _ in got] == list(range(len(got))), 'offsets not contiguous'
    seqs = [s for _, s in got]
    assert all(seqs[i] < seqs[i + 1] for i in range(len(seqs) - 1)), 'sequence not increasing'
    by_offset = dict(got)
    lost = [(s, o) for s, o in acked_items if by_offset.get(o) != s]
    assert not lost, 'acknowledged records lost or moved after kill -9: %r (log: %s)' % (
        lost[:10], b2.log_text()[-2000:])
    # Anything beyond the acknowledged prefix was at least produced by us.
    assert all(s < n for s in seqs)
    end = len(got)
    print('produced %d acked %d failed %d recovered %d' % (n, len(acked_items), len(failed), end))

    # The recovered log accepts new appends right after the old end.
    p2 = producer(b2.bootstrap, acks='all')
    dr = produce(p2, topic, [{'value': b'after-%d' % i, 'partition': 0} for i in range(10)])
    assert [(d.error, d.offset) for d in dr] == [(None, end + i) for i in range(10)]
    msgs = consume_assigned(b2.bootstrap, topic, [0], start=end)
    assert [(m.offset(), m.value()) for m in msgs] == [
        (end + i, b'after-%d' % i) for i in range(10)]


# ---------------------------------------------------------------- torn tails


def _produce_batches(b, topic, batches, per_batch):
    """batches x per_batch records, one record batch each, sent as raw
    Produce v3 requests (acks=all): a client library may split a group
    whatever its linger, and the torn-tail tests need exact batches."""
    import kafka_wire as kw
    n = 0
    for _ in range(batches):
        batch = kw.record_batch([{'value': b'rec-%04d' % (n + j)} for j in range(per_batch)])
        resp = kw.produce(b.port, 3, {(topic, 0): batch}, acks=-1)
        part = resp['partitions'][(topic, 0)]
        assert part['error_code'] == 0 and part['base_offset'] == n, part
        n += per_batch
    return n


def _prepare(start_broker, topic):
    b = start_broker()
    create_topic(b.bootstrap, topic, 1)
    n = _produce_batches(b, topic, 10, 10)
    assert n == 100
    stop_clean(b)
    seg = log_segments.active_segment(b.data_dir, topic, 0)
    batches = log_segments.parse_batches(seg.read_bytes())
    assert len(batches) == 10 and batches[-1].last_offset == 99, batches
    return b, seg, batches


def _check_after_recovery(b2, topic, seg, valid_size, n_valid):
    msgs = consume_assigned(b2.bootstrap, topic, [0])
    assert [(m.offset(), m.value()) for m in msgs] == [
        (i, b'rec-%04d' % i) for i in range(n_valid)]
    assert seg.stat().st_size == valid_size, 'segment not truncated to the last valid batch'
    p = producer(b2.bootstrap, acks='all')
    dr = produce(p, topic, [{'value': b'new-record', 'partition': 0}])
    assert dr[0].error is None, dr[0].error
    assert dr[0].offset == n_valid
    msgs = consume_assigned(b2.bootstrap, topic, [0], start=n_valid)
    assert [(m.offset(), m.value()) for m in msgs] == [(n_valid, b'new-record')]
    # The appended batch follows the valid data on disk.
    batches = log_segments.parse_batches(seg.read_bytes())
    assert batches[-1].base_offset == n_valid and batches[-1].file_pos == valid_size


def test_torn_tail_garbage_after_crash(start_broker):
    topic = 'torn-garbage'
    b, seg, batches = _prepare(start_broker, topic)
    valid = seg.stat().st_size
    with open(seg, 'ab') as f:
        f.write(bytes((0xA5 ^ i) for i in range(37)))
    os.unlink(b.data_dir / MARKER)

    b2 = start_broker(data_dir=b.data_dir)
    log = b2.log_text()
    assert TRUNC_MSG % 37 in log, log
    _check_after_recovery(b2, topic, seg, valid, 100)


def test_torn_tail_partial_last_batch(start_broker):
    topic = 'torn-partial'
    b, seg, batches = _prepare(start_broker, topic)
    size = seg.stat().st_size
    last = batches[-1]
    assert last.file_pos + last.size == size
    os.truncate(seg, size - 10)
    os.unlink(b.data_dir / MARKER)

    b2 = start_broker(data_dir=b.data_dir)
    log = b2.log_text()
    assert TRUNC_MSG % (last.size - 10) in log, log
    _check_after_recovery(b2, topic, seg, last.file_pos, last.base_offset)
    assert last.base_offset == 90


def test_garbage_tail_detected_despite_clean_marker(start_broker):
    topic = 'torn-clean-marker'
    b, seg, batches = _prepare(start_broker, topic)
    valid = seg.stat().st_size
    with open(seg, 'ab') as f:
        f.write(bytes((0x5A ^ i) for i in range(37)))
    assert (b.data_dir / MARKER).exists()

    b2 = start_broker(data_dir=b.data_dir)
    log = b2.log_text()
    assert TRUNC_MSG % 37 in log, log
    _check_after_recovery(b2, topic, seg, valid, 100)


# ---------------------------------------------------------------- segment roll


def test_segment_roll(broker):
    from confluent_kafka import TopicPartition
    topic = 'rolling'
    create_topic(broker.bootstrap, topic, 1, {'segment.bytes': '100000'})
    n = 1000
    base_ts = 1600000000000
    p = producer(broker.bootstrap, **{'batch.size': 16384, 'linger.ms': 2})
    recs = [{'value': b'%06d-' % i + os.urandom(500).hex().encode()[:1000],
             'timestamp': base_ts + 10 * i, 'partition': 0} for i in range(n)]
    dr = produce(p, topic, recs)
    assert [(d.error, d.offset) for d in dr] == [(None, i) for i in range(n)]

    segs = log_segments.segment_files(broker.data_dir, topic, 0)
    assert len(segs) >= 5, segs
    pdir = log_segments.partition_dir(broker.data_dir, topic, 0)
    expected_next = 0
    for base, path in segs:
        assert path.name == '%020d.log' % base
        assert (pdir / ('%020d.index' % base)).exists(), path
        assert (pdir / ('%020d.timeindex' % base)).exists(), path
        batches = log_segments.parse_batches(path.read_bytes())
        assert batches, path
        assert batches[0].base_offset == base, (path, batches[0])
        assert base == expected_next
        expected_next = batches[-1].last_offset + 1
        if path != segs[-1][1]:
            # Rolled segments stay below segment.bytes (records are < 100 kB).
            assert path.stat().st_size <= 100000, (path, path.stat().st_size)
    assert expected_next == n

    msgs = consume_assigned(broker.bootstrap, topic, [0])
    assert [(m.offset(), m.value()) for m in msgs] == [(i, recs[i]['value']) for i in range(n)]

    c = consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, n)
        # Targets inside every segment, on segment boundaries and between records.
        targets = {}
        for base, _ in segs:
            for off in (base, base + 1):
                if off < n:
                    targets[base_ts + 10 * off] = off          # exact
                    targets[base_ts + 10 * off - 5] = off      # between off-1 and off
        targets[base_ts - 1000] = 0
        targets[base_ts + 10 * (n - 1)] = n - 1
        targets[base_ts + 10 * n] = -1
        for ts in sorted(targets):
            res = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert res[0].error is None, res[0].error
            assert res[0].offset == targets[ts], (ts, ts - base_ts, res[0].offset, targets[ts])
    finally:
        c.close()

    # Consuming from the middle of a later segment works too.
    mid = segs[len(segs) // 2][0] + 3
    msgs = consume_assigned(broker.bootstrap, topic, [0], start=mid, count=5)
    assert [m.offset() for m in msgs] == list(range(mid, mid + 5))
