"""A full disk: appends fail with KAFKA_STORAGE_ERROR (the partial write is
taken back), the broker keeps serving, every acknowledged record stays
readable, and appends resume once there is room.  The data directory is a
small tmpfs mounted by the test (the suite runs as root)."""
import os
import subprocess
import time

import pytest
from client_helpers import consume_assigned, create_topic, producer


@pytest.fixture
def tiny_dir(tmp_path):
    d = tmp_path / 'tiny'
    d.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(['umount', '-l', str(d)], check=False)


def test_full_disk_loses_nothing(start_broker, tiny_dir):
    filler = tiny_dir / 'filler'
    filler.write_bytes(b'\0' * (2 * 1024 * 1024))     # room we give back later
    data = tiny_dir / 'data'
    b = start_broker({'log.index.size.max.bytes': 65536}, data_dir=str(data))
    create_topic(b.bootstrap, 'fill', 1, {'segment.bytes': '1000000'})

    p = producer(b.bootstrap, **{'linger.ms': 5, 'message.timeout.ms': 4000, 'retries': 2})
    acked, failed = [], []

    def cb(err, msg):
        (failed if err else acked).append((msg.offset(), msg.value()) if not err else err)

    value = b'x' * 1000
    for i in range(6000):          # ~6 MB: more than the disk holds
        while True:
            try:
                p.produce('fill', value=b'%06d' % i + value, partition=0, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    p.flush(30)
    assert acked and failed, (len(acked), len(failed))
    assert b.proc.poll() is None, 'the broker died on a full disk'
    assert 'No space left on device' in b.log_text()

    # every acknowledged record is there, in order, intact
    msgs = consume_assigned(b.bootstrap, 'fill', [0])
    got = [(m.offset(), m.value()) for m in msgs]
    assert got[:len(acked)] == sorted(acked)
    assert [o for o, _ in got] == list(range(len(got)))

    # room again: appends resume right after the acknowledged records
    filler.unlink()
    time.sleep(0.2)
    p2 = producer(b.bootstrap, **{'message.timeout.ms': 10000})
    res = []
    p2.produce('fill', value=b'after', partition=0, on_delivery=lambda e, m: res.append((e, m.offset())))
    p2.flush(15)
    assert res and res[0][0] is None, res
    assert res[0][1] == len(got)
    msgs = consume_assigned(b.bootstrap, 'fill', [0], start=len(got))
    assert [(m.offset(), m.value()) for m in msgs] == [(len(got), b'after')]
    assert b.stop() == 0
