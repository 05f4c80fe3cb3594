"""Committed offsets after a broker crash, and offset retention
(offsets.retention.minutes counts from the moment a group became Empty)."""

import re
import signal
import time

import group_helpers as gh
from group_helpers import (Conn, GroupMember, consumer_subscription, create_topic,
                           poll_until, produce)

OFFSET_NONE = -1


def test_commit_acknowledged_before_sigkill_survives(start_broker):
    from confluent_kafka import Consumer, TopicPartition
    fast = {'group.initial.rebalance.delay.ms': 0}
    broker = start_broker(fast)
    topic, group = 'grp-crash', 'g-crash'
    create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, [b'c%d' % i for i in range(400)],
            partition_of=lambda i: i % 2)
    m = GroupMember(broker.bootstrap, group, topic, 'crash-member',
                    {'max.partition.fetch.bytes': 1024})
    try:
        poll_until([m], lambda: len(m.messages) >= 250, 30, '250 records')
        got = m.messages[:]
        res = m.c.commit(asynchronous=False)
        assert all(r.error is None for r in res), res
        expect = {}
        for p, o, _ in got:
            expect[p] = max(expect.get(p, 0), o + 1)
        assert {r.partition: r.offset for r in res if r.offset >= 0} == expect
        # crash right after the acknowledgement
        broker.stop(signal.SIGKILL)
    finally:
        m.close()
    b2 = start_broker(fast, data_dir=broker.data_dir)
    c = Conn(b2.port)
    try:
        offs, err = c.fetch_offsets(group, {topic: [0, 1]})
        assert err == 0
        assert {p: o for (_, p), (o, _) in offs.items() if o >= 0} == expect, offs
    finally:
        c.close()
    # and a consumer resumes there
    cons = Consumer({'bootstrap.servers': b2.bootstrap, 'group.id': group,
                     'enable.auto.commit': False})
    try:
        committed = cons.committed([TopicPartition(topic, p) for p in expect], timeout=20)
        assert {tp.partition: tp.offset for tp in committed} == expect
    finally:
        cons.close()


def now_ms():
    return int(time.time() * 1000)


def dynamic_join(conn, group, topics):
    sub = consumer_subscription(topics)
    first = conn.join(group, version=4, protocols=[('range', sub)])
    assert first['error_code'] == gh.MEMBER_ID_REQUIRED, first
    j = conn.join(group, version=4, member_id=first['member_id'], protocols=[('range', sub)])
    assert j['error_code'] == 0, j
    me, gen = j['member_id'], j['generation_id']
    assert conn.sync(group, gen, me, {me: b''})['error_code'] == 0
    return me, gen


def test_offset_retention_counts_from_when_the_group_emptied(start_broker):
    """offsets.retention.minutes=1, checked every 300 ms:
    * a group that never had members, committed (OffsetCommit v1) with a
      commit timestamp 2 minutes old: expired at the next check;
    * a group with a live member: its offsets stay while it has members,
      even 60+ s after the commit;
    * a group that emptied 30 s ago: its 60+ s old offsets stay;
    * a broker restart does not start an old Stable group's retention
      clock in the past: right after the restart its offsets are still
      there (Kafka restores the group with its members; it only becomes
      Empty when their sessions expire)."""
    conf = {'group.initial.rebalance.delay.ms': 0, 'offsets.retention.minutes': 1,
            'offsets.retention.check.interval.ms': 300}
    broker = start_broker(conf)
    topic = 'grp-ret'
    create_topic(broker.bootstrap, topic, 2)
    live = Conn(broker.port, client_id='live')
    leaver = Conn(broker.port, client_id='leaver')
    try:
        assert live.find_coordinator('g-ret-live')['error_code'] == 0
        both = {(topic, 0): 11, (topic, 1): 12}

        # the positive control: an old simple commit expires quickly
        assert live.commit_v1('g-ret-simple', both, now_ms() - 120000) == \
            {(topic, 0): 0, (topic, 1): 0}
        assert live.commit_v1('g-ret-simple-fresh', both, now_ms()) == \
            {(topic, 0): 0, (topic, 1): 0}

        live_id, live_gen = dynamic_join(live, 'g-ret-live', [topic])
        assert live.commit('g-ret-live', both, live_gen, live_id) == \
            {(topic, 0): 0, (topic, 1): 0}
        leave_id, leave_gen = dynamic_join(leaver, 'g-ret-leaver', [topic])
        assert leaver.commit('g-ret-leaver', both, leave_gen, leave_id) == \
            {(topic, 0): 0, (topic, 1): 0}

        time.sleep(1.5)
        offs, _ = live.fetch_offsets('g-ret-simple', {topic: [0, 1]})
        assert offs == {(topic, 0): (OFFSET_NONE, 0), (topic, 1): (OFFSET_NONE, 0)}, offs
        assert re.search(r'group g-ret-simple: 2 committed offsets expired', broker.log_text())
        offs, _ = live.fetch_offsets('g-ret-simple-fresh', {topic: [0, 1]})
        assert offs == {(topic, 0): (11, 0), (topic, 1): (12, 0)}, offs

        t0 = time.monotonic()
        left = False
        while time.monotonic() - t0 < 63:
            assert live.heartbeat('g-ret-live', live_gen, live_id) == 0
            if not left:
                assert leaver.heartbeat('g-ret-leaver', leave_gen, leave_id) == 0
                if time.monotonic() - t0 > 30:
                    assert leaver.leave('g-ret-leaver', leave_id) == 0
                    left = True
            time.sleep(1)
        assert left
        for g in ('g-ret-live', 'g-ret-leaver'):
            offs, _ = live.fetch_offsets(g, {topic: [0, 1]})
            assert offs == {(topic, 0): (11, 0), (topic, 1): (12, 0)}, (g, offs)
        assert 'g-ret-live: ' not in ''.join(
            l for l in broker.log_text().splitlines(True) if 'expired' in l)
        # the fresh simple commit is now over a minute old
        offs, _ = live.fetch_offsets('g-ret-simple-fresh', {topic: [0, 1]})
        assert offs == {(topic, 0): (OFFSET_NONE, 0), (topic, 1): (OFFSET_NONE, 0)}, offs
    finally:
        live.close()
        leaver.close()

    # restart: g-ret-live was Stable for over a minute when the broker stopped
    assert broker.stop(timeout=10) == 0
    b2 = start_broker(conf, data_dir=broker.data_dir)
    c = Conn(b2.port)
    try:
        time.sleep(2.0)     # several retention checks
        offs, _ = c.fetch_offsets('g-ret-live', {topic: [0, 1]})
        assert offs == {(topic, 0): (11, 0), (topic, 1): (12, 0)}, (offs, b2.log_text()[-1500:])
        offs, _ = c.fetch_offsets('g-ret-leaver', {topic: [0, 1]})
        assert offs == {(topic, 0): (11, 0), (topic, 1): (12, 0)}, offs
    finally:
        c.close()
