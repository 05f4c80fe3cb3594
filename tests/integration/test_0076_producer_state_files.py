"""Producer state on disk (<offset>.snapshot, Kafka's layout) against damage
and faults: whatever happens to the snapshot files, a restarted broker
still recognises an idempotent producer's retry of its last batch (the
original offset comes back, no second copy is written) and refuses a
sequence gap, because the state is rebuilt from an older snapshot or from
the log itself; and the broker says which file it set aside.

  - a clean stop writes <log end>.snapshot;
  - its bytes flipped, or cut to nothing: removed, the log replayed;
  - a snapshot named past the log's end (the log lost its tail): removed;
  - every snapshot gone and a kill -9: the log replayed (after a clean
    stop a log with no snapshot file at all starts empty at its end, as
    Kafka treats a log written before snapshots existed);
  - the snapshot's write fails (a full disk, injected): the stop goes on,
    the next start replays the log;
  - a roll writes a snapshot at the new segment's base offset.
"""
import os
import re
import signal

import kafka_wire as kw
from client_helpers import create_topic
from faults import fault_env, injected, rule

TOPIC = 'ps'
OUT_OF_ORDER, OK = 45, 0


def init_pid(port):
    for _ in range(100):
        r = kw.init_producer_id(port, 4)
        if r['error_code'] == 0:
            return r['producer_id'], r['producer_epoch']
    raise AssertionError(r)


def send(port, pid, epoch, seq, n, partition=0):
    recs = [{'key': b'k', 'value': b'v%d' % (seq + i)} for i in range(n)]
    batch = kw.record_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    payload = kw.send_recv(port, kw.produce_request(9, 5, {(TOPIC, partition): batch}, acks=-1))
    p = kw.parse_produce_response(payload, 9)['partitions'][(TOPIC, partition)]
    return p['error_code'], p['base_offset']


def snapshots(b, partition=0):
    d = b.data_dir / ('%s-%d' % (TOPIC, partition))
    return sorted(f.name for f in d.iterdir() if f.name.endswith('.snapshot'))


def prepare(start_broker, overrides=None, env=None):
    b = start_broker(dict(overrides or {}), env=env)
    create_topic(b.bootstrap, TOPIC, 1)
    pid, epoch = init_pid(b.port)
    for i in range(5):
        assert send(b.port, pid, epoch, 3 * i, 3) == (OK, 3 * i)
    return b, pid, epoch


def check_state(b, pid, epoch):
    """The last batch's retry answers its offset; a gap is refused; the
    next batch goes on; nothing was written twice."""
    assert send(b.port, pid, epoch, 12, 3) == (OK, 12)
    assert send(b.port, pid, epoch, 20, 1)[0] == OUT_OF_ORDER
    assert send(b.port, pid, epoch, 15, 2) == (OK, 15)
    assert kw.end_offset(b.port, TOPIC, 0) == 17


def test_clean_stop_writes_a_snapshot_at_the_end(start_broker):
    b, pid, epoch = prepare(start_broker)
    b.stop()
    assert snapshots(b) == ['%020d.snapshot' % 15]
    b2 = start_broker(data_dir=b.data_dir)
    check_state(b2, pid, epoch)


def test_damaged_snapshot_is_set_aside(start_broker):
    for damage in ('flip', 'empty', 'past-the-end'):
        b, pid, epoch = prepare(start_broker)
        b.stop()
        d = b.data_dir / (TOPIC + '-0')
        snap = d / ('%020d.snapshot' % 15)
        if damage == 'flip':
            raw = bytearray(snap.read_bytes())
            raw[len(raw) // 2] ^= 0x40
            snap.write_bytes(bytes(raw))
        elif damage == 'empty':
            snap.write_bytes(b'')
        else:
            snap.rename(d / ('%020d.snapshot' % 999))
        b2 = start_broker(data_dir=b.data_dir)
        check_state(b2, pid, epoch)
        text = b2.log_text()
        if damage == 'past-the-end':
            assert re.search(r'removing the producer snapshot 0+999\.snapshot past the end', text), text[-2000:]
        else:
            assert re.search(r'producer snapshot .*0+15\.snapshot is damaged', text), text[-2000:]
        b2.stop()


def test_no_snapshot_and_a_crash_replays_the_log(start_broker):
    b, pid, epoch = prepare(start_broker)
    b.stop(signal.SIGKILL)
    d = b.data_dir / (TOPIC + '-0')
    for f in d.iterdir():
        if f.name.endswith('.snapshot'):
            f.unlink()
    b2 = start_broker(data_dir=b.data_dir)
    check_state(b2, pid, epoch)


def test_failed_snapshot_write_at_stop(start_broker):
    """The snapshot cannot be written (ENOSPC on its open): the stop goes on
    and says so; the next start rebuilds the state from the log."""
    b, pid, epoch = prepare(start_broker, env=fault_env(rule('open', path='.snapshot.tmp', errno='ENOSPC')))
    b.stop()
    assert snapshots(b) == []
    assert 'cannot write the producer snapshot' in b.log_text()
    assert any(f.call == 'open' and f.errno == 'ENOSPC' for f in injected(b.log_text()))
    b2 = start_broker(data_dir=b.data_dir)
    check_state(b2, pid, epoch)


def test_roll_writes_a_snapshot(start_broker):
    """segment.bytes small: each roll leaves <base>.snapshot with the state
    before that segment; a kill -9 then replays only the last segment."""
    b = start_broker()
    create_topic(b.bootstrap, TOPIC, 1, config={'segment.bytes': '200'})
    pid, epoch = init_pid(b.port)
    for i in range(5):
        assert send(b.port, pid, epoch, 3 * i, 3) == (OK, 3 * i)
    names = snapshots(b)
    segs = sorted(f.name for f in (b.data_dir / (TOPIC + '-0')).iterdir() if f.name.endswith('.log'))
    bases = {int(n.split('.')[0]) for n in segs}
    assert names and all(int(n.split('.')[0]) in bases for n in names), (names, segs)
    b.stop(signal.SIGKILL)
    b2 = start_broker(data_dir=b.data_dir)
    check_state(b2, pid, epoch)
    assert os.path.exists(b2.data_dir / (TOPIC + '-0'))
