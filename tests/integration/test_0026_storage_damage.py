"""Damaged, missing and truncated files on disk: the broker never deletes
data because its metadata is damaged, refuses to start on a damaged
metadata log, rebuilds doubtful indexes, and answers a damaged segment with
an error instead of an endless empty fetch (docs/ARCHITECTURE.md, "When
storage fails")."""
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import kafka_wire as kw
import log_segments
from client_helpers import consume_assigned, create_topic, produce, producer
from conftest import SPOOLD

MARKER = '.kafka_cleanshutdown'
META = '__cluster_metadata-0'


def _fill(b, topics, n=50, partitions=2):
    for t in topics:
        create_topic(b.bootstrap, t, partitions)
    p = producer(b.bootstrap)
    for t in topics:
        dr = produce(p, t, [{'value': b'%s-%d' % (t.encode(), i), 'partition': i % partitions}
                            for i in range(n)])
        assert all(d.error is None for d in dr), dr


def _digest(data_dir):
    """{relative path under a partition directory: sha256} of every segment
    file of every partition directory (wherever it was renamed to)."""
    out = {}
    for d in Path(data_dir).iterdir():
        if not d.is_dir() or d.name.startswith(META):
            continue
        name = d.name
        if name.endswith('-stray'):
            name = name[:name.index('.')]
        for f in d.iterdir():
            if f.suffix == '.log':
                out['%s/%s' % (name, f.name)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _start_fails(b_data, tmp_path):
    """Runs spoold on b_data (its own port) and returns (exit code, log);
    the process must exit by itself within 10 s."""
    from conftest import free_port
    args = [SPOOLD, '--override', 'listeners=PLAINTEXT://127.0.0.1:%d' % free_port(),
            '--override', 'log.dirs=%s' % b_data]
    r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    return r.returncode, (r.stdout + r.stderr).decode(errors='replace')


def _meta_log(data_dir):
    return log_segments.active_segment(data_dir, '__cluster_metadata', 0)


def test_metadata_bit_flip_after_clean_stop_refuses_to_start(start_broker, tmp_path):
    b = start_broker()
    _fill(b, ['keep-a', 'keep-b'])
    assert b.stop() == 0
    before = _digest(b.data_dir)
    assert len(before) == 4
    seg = _meta_log(b.data_dir)
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0x10          # one bit, in the middle of the log
    seg.write_bytes(bytes(data))
    rc, log = _start_fails(b.data_dir, tmp_path)
    assert rc != 0, log
    assert str(seg.parent) in log or seg.name in log, log
    assert 'refusing to start' in log or 'not starting' in log, log
    assert _digest(b.data_dir) == before  # every partition's data still there
    assert not [d for d in b.data_dir.iterdir() if d.name.endswith('-stray')]


def test_metadata_bit_flip_after_crash_refuses_to_start(start_broker, tmp_path):
    b = start_broker()
    _fill(b, ['crash-a', 'crash-b', 'crash-c'])
    b.stop(signal.SIGKILL)
    before = _digest(b.data_dir)
    seg = _meta_log(b.data_dir)
    batches = log_segments.parse_batches(seg.read_bytes())
    assert len(batches) >= 3
    data = bytearray(seg.read_bytes())
    first = batches[0]
    data[first.file_pos + first.size - 3] ^= 0x01   # the first batch's records
    seg.write_bytes(bytes(data))
    rc, log = _start_fails(b.data_dir, tmp_path)
    assert rc != 0, log
    assert 'valid batches follow' in log, log
    assert _digest(b.data_dir) == before
    assert seg.stat().st_size == len(data)          # nothing truncated


def test_metadata_dir_missing_sets_partitions_aside(start_broker):
    b = start_broker()
    _fill(b, ['lost-a', 'lost-b'])
    assert b.stop() == 0
    before = _digest(b.data_dir)
    meta = b.data_dir / META
    aside = b.data_dir.parent / 'meta-elsewhere'
    meta.rename(aside)
    b2 = start_broker(data_dir=b.data_dir)
    log = b2.log_text()
    assert 'set aside' in log, log
    strays = sorted(d.name for d in b.data_dir.iterdir() if d.name.endswith('-stray'))
    assert len(strays) == 4, strays
    assert _digest(b.data_dir) == before           # renamed, not deleted
    # the broker serves, without those topics
    assert b2.running()
    p = producer(b2.bootstrap)
    dr = produce(p, 'fresh', [{'value': b'x'}])
    assert dr[0].error is None
    assert b2.stop() == 0
    # a later start does not touch the strays either
    b3 = start_broker(data_dir=b.data_dir)
    assert b3.running()
    assert {k: v for k, v in _digest(b.data_dir).items() if not k.startswith('fresh-')} == before


def test_metadata_log_truncated_to_zero_refuses_to_start(start_broker, tmp_path):
    b = start_broker()
    _fill(b, ['cut-a'])
    assert b.stop() == 0
    before = _digest(b.data_dir)
    seg = _meta_log(b.data_dir)
    os.truncate(seg, 0)                              # a partial restore
    rc, log = _start_fails(b.data_dir, tmp_path)
    assert rc != 0, log
    assert 'shorter than its index' in log, log
    assert _digest(b.data_dir) == before


def test_metadata_log_truncated_without_index_keeps_data(start_broker):
    """A restore that brought back an empty metadata log and no index
    looks like a fresh broker: the partitions are set aside, not deleted."""
    b = start_broker()
    _fill(b, ['restored-a'])
    b.stop(signal.SIGKILL)
    before = _digest(b.data_dir)
    seg = _meta_log(b.data_dir)
    os.truncate(seg, 0)
    for ext in ('.index', '.timeindex'):
        seg.with_suffix(ext).unlink()
    b2 = start_broker(data_dir=b.data_dir)
    assert b2.running()
    assert _digest(b.data_dir) == before
    assert len([d for d in b.data_dir.iterdir() if d.name.endswith('-stray')]) == 2


# ------------------------------------------------------------ indexes (B2)


def _segmented(start_broker, topic, **over):
    """A broker with `topic` in many small segments of 200 records whose
    timestamps are base_ts + i; recovery points checkpointed often."""
    b = start_broker({'log.flush.offset.checkpoint.interval.ms': '100',
                      'log.retention.check.interval.ms': '200', **over})
    create_topic(b.bootstrap, topic, 1, {'segment.bytes': '2000', 'retention.ms': '3600000'})
    now = int(time.time() * 1000)
    p = producer(b.bootstrap, **{'linger.ms': 0, 'batch.size': 600})
    recs = [{'value': b'%05d' % i + b'.' * 40, 'timestamp': now - 10000 + i, 'partition': 0}
            for i in range(200)]
    dr = produce(p, topic, recs)
    assert [d.offset for d in dr] == list(range(200))
    return b, recs, now


def _check_topic(b, topic, recs, now):
    from confluent_kafka import TopicPartition
    from client_helpers import consumer
    msgs = consume_assigned(b.bootstrap, topic, [0])
    assert [m.value() for m in msgs] == [r['value'] for r in recs]
    c = consumer(b.bootstrap)
    try:
        for i in (0, 37, 101, 150, 199):
            tp = c.offsets_for_times([TopicPartition(topic, 0, now - 10000 + i)], timeout=10)
            assert tp[0].offset == i, (i, tp)
    finally:
        c.close()


@pytest.mark.parametrize('stop', ['clean', 'kill'])
def test_damaged_indexes_are_rebuilt(start_broker, stop):
    """Sealed segments are trusted without a scan after a clean stop, and
    below the recovery point after a crash: their indexes are checked."""
    topic = 'ixdamage'
    b, recs, now = _segmented(start_broker, topic)
    segs = log_segments.segment_files(b.data_dir, topic, 0)
    assert len(segs) >= 5, segs
    if stop == 'clean':
        assert b.stop() == 0
    else:
        time.sleep(1.0)                              # recovery point checkpointed
        b.stop(signal.SIGKILL)                       # not scanned on restart
    pdir = log_segments.partition_dir(b.data_dir, topic, 0)
    sealed = [base for base, _ in segs[:-1]]
    os.truncate(pdir / ('%020d.timeindex' % sealed[0]), 0)
    ti = pdir / ('%020d.timeindex' % sealed[1])
    ti.write_bytes(b'\0' * ti.stat().st_size)        # zero-filled: max timestamp 0
    ix = pdir / ('%020d.index' % sealed[2])
    ix.write_bytes(b'\xff' * ix.stat().st_size)      # garbage
    os.truncate(pdir / ('%020d.index' % sealed[3]), 5)
    b2 = start_broker({'log.retention.check.interval.ms': '200'}, data_dir=b.data_dir)
    time.sleep(1.0)                                  # several retention passes
    assert len(log_segments.segment_files(b.data_dir, topic, 0)) == len(segs)
    assert 'retention deleted' not in b2.log_text()
    _check_topic(b2, topic, recs, now)
    log = b2.log_text()
    assert log.count('rebuilding the indexes') >= 4, log


def test_indexes_written_and_synced_before_clean_stop(start_broker):
    topic = 'ixclean'
    b, recs, now = _segmented(start_broker, topic)
    assert b.stop() == 0
    pdir = log_segments.partition_dir(b.data_dir, topic, 0)
    for base, path in log_segments.segment_files(b.data_dir, topic, 0):
        batches = log_segments.parse_batches(path.read_bytes())
        ti = (pdir / ('%020d.timeindex' % base)).read_bytes()
        assert len(ti) % 12 == 0 and len(ti) >= 12
        # the last time entry is the segment's largest timestamp
        assert int.from_bytes(ti[-12:-4], 'big') == max(x.max_timestamp for x in batches)
    b2 = start_broker(data_dir=b.data_dir)
    assert 'rebuilding' not in b2.log_text()
    _check_topic(b2, topic, recs, now)


# ---------------------------------------------- damaged sealed segments (#10)


def _fetch_v4(port, topic, offset):
    body = (kw.int32(-1) + kw.int32(100) + kw.int32(1) + kw.int32(1 << 20) + kw.int8(0) +
            kw.array([kw.string(topic) + kw.array([kw.int32(0) + kw.int64(offset) +
                                                   kw.int32(1 << 20)])]))
    payload = kw.send_recv(port, kw.request(1, 4, 7, body))
    r = kw.Reader(payload)
    r.int32(), r.int32(), r.int32(), r.string(), r.int32(), r.int32()
    err = r.int16()
    return err


def test_damaged_sealed_segment_answers_corrupt_message(start_broker):
    topic = 'dmgseg'
    b, recs, now = _segmented(start_broker, topic)
    assert b.stop() == 0
    segs = log_segments.segment_files(b.data_dir, topic, 0)
    base1, path1 = segs[1]
    batches = log_segments.parse_batches(path1.read_bytes())
    data = bytearray(path1.read_bytes())
    bad = batches[1]
    data[bad.file_pos + 8:bad.file_pos + 12] = (0x7ffffff0).to_bytes(4, 'big')
    path1.write_bytes(bytes(data))
    base2, path2 = segs[2]
    batches2 = log_segments.parse_batches(path2.read_bytes())
    data = bytearray(path2.read_bytes())
    bad2 = batches2[1]
    data[bad2.file_pos:bad2.file_pos + 8] = (10 ** 12).to_bytes(8, 'big')
    path2.write_bytes(bytes(data))
    b2 = start_broker(data_dir=b.data_dir)
    assert _fetch_v4(b2.port, topic, 0) == 0
    assert _fetch_v4(b2.port, topic, bad.base_offset) == 2       # CORRUPT_MESSAGE
    assert _fetch_v4(b2.port, topic, bad2.base_offset) == 2
    assert _fetch_v4(b2.port, topic, segs[3][0]) == 0            # later data still served
    log = b2.log_text()
    assert '%s is damaged at position %d' % (path1, bad.file_pos) in log, log
    assert log.count('%s is damaged at position %d' % (path1, bad.file_pos)) == 1   # logged once


def test_missing_middle_segment_is_skipped(start_broker):
    topic = 'gapseg'
    b, recs, now = _segmented(start_broker, topic)
    assert b.stop() == 0
    segs = log_segments.segment_files(b.data_dir, topic, 0)
    gone_base, gone = segs[1]
    next_base = segs[2][0]
    for ext in ('.log', '.index', '.timeindex'):
        gone.with_suffix(ext).unlink()
    b2 = start_broker(data_dir=b.data_dir)
    msgs = consume_assigned(b2.bootstrap, topic, [0], timeout=20)
    got = [m.offset() for m in msgs]
    assert got == [o for o in range(200) if not gone_base <= o < next_base]
    assert 'are in no segment' in b2.log_text()


# ------------------------------------------------- checkpoints (lenient parse)


def test_malformed_checkpoint_is_ignored_whole(start_broker):
    b = start_broker()
    _fill(b, ['ckpt-a'])
    assert b.stop() == 0
    f = b.data_dir / 'recovery-point-offset-checkpoint'
    text = f.read_text()
    f.write_text(text + 'garbage line here\n')
    ls = b.data_dir / 'log-start-offset-checkpoint'
    lines = ls.read_text().splitlines()
    ls.write_text('\n'.join(lines[:2] + ['ckpt-a 0 -5'] + lines[3:]) + '\n')
    b2 = start_broker(data_dir=b.data_dir)
    log = b2.log_text()
    assert 'recovery-point-offset-checkpoint: malformed checkpoint file' in log, log
    assert 'log-start-offset-checkpoint: malformed checkpoint file' in log, log
    msgs = consume_assigned(b2.bootstrap, 'ckpt-a', [0, 1])
    assert len(msgs) == 50
