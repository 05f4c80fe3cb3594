"""Group state changes only once its __consumer_offsets write is durable,
as in Kafka: an OffsetCommit whose write fails answers NOT_COORDINATOR (a
storage error, CoordinatorOperationExceptionHelper) in every partition and
OffsetFetch keeps the previous offset, before and after a restart; a
SyncGroup whose assignment is not written fails the same way and the group
is not Stable; a static member whose new id is not written keeps its old
one.  The data directory is a small tmpfs filled up by the test (the suite
runs as root), so appends to __consumer_offsets fail with ENOSPC."""

import errno
import subprocess

import pytest
from client_helpers import create_topic
from group_helpers import Conn, consumer_assignment, consumer_subscription

NOT_COORDINATOR = 16
FENCED_INSTANCE_ID = 82
REBALANCE_IN_PROGRESS = 27
BIG = 5000      # bytes: a record this large needs a page the full disk does not have


@pytest.fixture
def tiny_dir(tmp_path):
    d = tmp_path / 'tiny'
    d.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(['umount', '-l', str(d)], check=False)


def fill(path):
    """Write `path` until the file system is full."""
    with open(path, 'wb', buffering=0) as f:
        for chunk in (65536, 4096, 512, 1):
            data = b'\0' * chunk
            try:
                while True:
                    if f.write(data) == 0:
                        break
            except OSError as e:
                assert e.errno == errno.ENOSPC, e


def start(start_broker, tiny_dir):
    return start_broker({'group.initial.rebalance.delay.ms': 0,
                         'offsets.topic.num.partitions': 1,
                         'log.index.size.max.bytes': 65536},
                        data_dir=str(tiny_dir / 'data'))


def committed(bootstrap, group, topic, partitions):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': group,
                  'enable.auto.commit': False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=20)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def test_failed_commit_write_changes_nothing(start_broker, tiny_dir):
    b = start(start_broker, tiny_dir)
    create_topic(b.bootstrap, 'data', 2)
    conn = Conn(b.port)
    assert conn.find_coordinator('g-disk')['error_code'] == 0
    assert conn.commit('g-disk', {('data', 0): 5, ('data', 1): 6}, metadata=b'ok') == {
        ('data', 0): 0, ('data', 1): 0}

    filler = tiny_dir / 'filler'
    fill(filler)
    res = conn.commit('g-disk', {('data', 0): 7, ('data', 1): 8}, metadata=b'm' * 4000)
    # the failed commit is nowhere: not in OffsetFetch (raw, confluent-kafka)
    got, err = conn.fetch_offsets('g-disk', {'data': [0, 1]}, with_metadata=True)
    got = {tp: (o, m[:4], e) for tp, (o, m, e) in got.items()}
    assert (res, got) == ({('data', 0): NOT_COORDINATOR, ('data', 1): NOT_COORDINATOR},
                          {('data', 0): (5, b'ok', 0), ('data', 1): (6, b'ok', 0)})
    assert err == 0
    assert 'No space left on device' in b.log_text()
    assert committed(b.bootstrap, 'g-disk', 'data', [0, 1]) == {0: 5, 1: 6}
    # room again, and a restart replays the log: still 5/6
    conn.close()
    filler.unlink()
    assert b.stop() == 0
    b2 = start(start_broker, tiny_dir)
    assert committed(b2.bootstrap, 'g-disk', 'data', [0, 1]) == {0: 5, 1: 6}
    conn = Conn(b2.port)
    try:
        assert conn.commit('g-disk', {('data', 0): 9}) == {('data', 0): 0}
        got, _ = conn.fetch_offsets('g-disk', {'data': [0, 1]})
        assert got == {('data', 0): (9, 0), ('data', 1): (6, 0)}, got
    finally:
        conn.close()


def test_failed_assignment_write_fails_sync_and_rebalances(start_broker, tiny_dir):
    b = start(start_broker, tiny_dir)
    create_topic(b.bootstrap, 'data', 1)
    conn = Conn(b.port)
    try:
        assert conn.find_coordinator('g-sync')['error_code'] == 0
        proto = (('range', consumer_subscription(['data'])),)
        j = conn.join('g-sync', version=3, protocols=proto)
        assert j['error_code'] == 0 and j['leader'] == j['member_id'], j
        me, gen = j['member_id'], j['generation_id']

        fill(tiny_dir / 'filler')
        big = consumer_assignment({'data': [0]}, user_data=b'u' * BIG)
        s = conn.sync('g-sync', gen, me, {me: big})
        assert s['error_code'] == NOT_COORDINATOR, s
        assert s['assignment'] == b'', s
        (d,) = conn.describe(['g-sync'])
        assert d['state'] == 'PreparingRebalance', d
        assert conn.heartbeat('g-sync', gen, me) == REBALANCE_IN_PROGRESS

        # room again: the member rejoins and the group becomes Stable
        (tiny_dir / 'filler').unlink()
        j = conn.join('g-sync', version=3, member_id=me, protocols=proto)
        assert j['error_code'] == 0, j
        s = conn.sync('g-sync', j['generation_id'], me, {me: big})
        assert s['error_code'] == 0 and s['assignment'] == big, s
        (d,) = conn.describe(['g-sync'])
        assert d['state'] == 'Stable', d
    finally:
        conn.close()


def test_failed_static_rejoin_write_keeps_the_old_member_id(start_broker, tiny_dir):
    b = start(start_broker, tiny_dir)
    create_topic(b.bootstrap, 'data', 1)
    proto = (('range', consumer_subscription(['data'])),)
    big = consumer_assignment({'data': [0]}, user_data=b'u' * BIG)
    conn = Conn(b.port)
    try:
        assert conn.find_coordinator('g-static')['error_code'] == 0
        j = conn.join('g-static', version=5, instance_id='inst-1', protocols=proto)
        assert j['error_code'] == 0, j
        old, gen = j['member_id'], j['generation_id']
        s = conn.sync('g-static', gen, old, {old: big}, instance_id='inst-1')
        assert s['error_code'] == 0, s

        # the instance restarts (no member id) while the disk is full: its
        # new id cannot be written, so it is not given one
        fill(tiny_dir / 'filler')
        j2 = conn.join('g-static', version=5, instance_id='inst-1', protocols=proto)
        assert j2['error_code'] == NOT_COORDINATOR, j2
        assert j2['member_id'] == '', j2
        # the old id is still the member's
        assert conn.heartbeat('g-static', gen, old, instance_id='inst-1') == 0
        (d,) = conn.describe(['g-static'])
        assert d['state'] == 'Stable', d
        assert [m['member_id'] for m in d['members']] == [old], d
    finally:
        conn.close()
    (tiny_dir / 'filler').unlink()
    assert b.stop() == 0
    # the log agrees: after a restart the member is still the old id
    b2 = start(start_broker, tiny_dir)
    conn = Conn(b2.port)
    try:
        (d,) = conn.describe(['g-static'])
        assert [m['member_id'] for m in d['members']] == [old], d
        assert conn.heartbeat('g-static', gen, old, instance_id='inst-1') == 0
    finally:
        conn.close()
