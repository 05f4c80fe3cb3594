"""Committed offsets: resume after a consumer restart and a broker restart,
lag from watermarks and OffsetFetch, kafka-python's group client and admin
APIs (ListGroups, DescribeGroups, OffsetFetch)."""

import re
import signal
import time

from group_helpers import GroupMember, create_topic, poll_until, produce

FAST = {'group.initial.rebalance.delay.ms': 0}
OFFSET_INVALID = -1001


def read_n(member, n, timeout=60):
    """Poll until `member` has received n more messages; returns them."""
    start = len(member.messages)
    poll_until([member], lambda: len(member.messages) >= start + n, timeout,
               '%d messages for %s' % (n, member.name))
    assert not member.errors, member.errors
    return member.messages[start:]


def consume_exactly(bootstrap, group, topic, n):
    """A fresh group member reads n records one poll() at a time, commits
    synchronously what it has returned, and closes. Returns the records and
    the committed offsets it read back."""
    from confluent_kafka import TopicPartition
    m = GroupMember(bootstrap, group, topic, 'resume-%s' % group,
                    {'enable.auto.commit': False, 'max.partition.fetch.bytes': 1024})
    try:
        got = []
        deadline = time.monotonic() + 60
        while len(got) < n:
            assert time.monotonic() < deadline, 'only %d of %d records' % (len(got), n)
            msg = m.c.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append((msg.partition(), msg.offset(), msg.value()))
        parts = m.c.commit(asynchronous=False)
        assert all(p.error is None for p in parts), parts
        # (a partition it got nothing from has no commit: OFFSET_INVALID)
        committed = {p.partition: p.offset
                     for p in m.c.committed([TopicPartition(topic, q) for q in m.assignment()],
                                            timeout=10)
                     if p.offset != OFFSET_INVALID}
        return got, committed, {p.partition: p.offset for p in parts
                                if p.offset != OFFSET_INVALID}
    finally:
        m.close()


def first_offsets(records):
    out = {}
    for p, o, _v in records:
        out.setdefault(p, o)
    return out


def next_offsets(records):
    out = {}
    for p, o, _v in records:
        out[p] = max(out.get(p, -1), o + 1)
    return out


def test_committed_offsets_survive_consumer_and_broker_restart(start_broker):
    broker = start_broker(FAST)
    topic, group = 'grp-resume', 'g-resume'
    nparts = 3
    create_topic(broker.bootstrap, topic, nparts)
    produced = produce(broker.bootstrap, topic,
                       [b'seq-%04d' % i for i in range(1000)],
                       partition_of=lambda i: i % nparts)
    by_pos = {(p, o): v for p, o, v in produced}
    assert len(by_pos) == 1000

    # 1. read 400, commit, close
    got1, committed1, commit_result1 = consume_exactly(broker.bootstrap, group, topic, 400)
    assert len(got1) == 400
    assert len(committed1) >= 2, committed1     # small fetches: several partitions
    assert committed1 == next_offsets(got1), (committed1, next_offsets(got1))
    assert commit_result1 == committed1
    # a partition starts at 0 and is read in order
    for p in committed1:
        offs = [o for q, o, _ in got1 if q == p]
        assert offs == list(range(len(offs))), (p, offs[:10])

    # 2. a new member of the group resumes exactly at the commit
    got2, committed2, _ = consume_exactly(broker.bootstrap, group, topic, 300)
    starts = first_offsets(got2)
    for p, o in starts.items():
        assert o == committed1.get(p, 0), ('partition %d resumed at %d, committed %r'
                                           % (p, o, committed1))
    seen = [(p, o) for p, o, _ in got1 + got2]
    assert len(seen) == len(set(seen)) == 700, 're-delivered records'
    for p, o, v in got1 + got2:
        assert by_pos[(p, o)] == v

    # 3. restart the broker on the same data dir: the commit is still there
    assert broker.stop(signal.SIGTERM, timeout=10) == 0
    broker2 = start_broker(FAST, data_dir=broker.data_dir)
    from confluent_kafka import Consumer, TopicPartition
    probe = Consumer({'bootstrap.servers': broker2.bootstrap, 'group.id': group,
                      'enable.auto.commit': False})
    try:
        after = probe.committed([TopicPartition(topic, p) for p in range(nparts)], timeout=20)
        assert {p.partition: p.offset for p in after
                if p.offset != OFFSET_INVALID} == committed2
    finally:
        probe.close()
    got3, committed3, _ = consume_exactly(broker2.bootstrap, group, topic, 300)
    for p, o in first_offsets(got3).items():
        assert o == committed2.get(p, 0), (p, o, committed2)
    everything = got1 + got2 + got3
    positions = [(p, o) for p, o, _ in everything]
    assert len(positions) == len(set(positions)) == 1000
    assert sorted(v for _, _, v in everything) == [b'seq-%04d' % i for i in range(1000)]
    assert committed3 == {p: len([1 for q, _, _ in produced if q == p]) for p in range(nparts)}
    assert re.search(r'loaded \d+ groups? from __consumer_offsets', broker2.log_text()), \
        broker2.log_text()[-3000:]


def test_lag_equals_produced_minus_consumed(start_broker):
    from confluent_kafka import TopicPartition
    from kafka.admin import KafkaAdminClient
    broker = start_broker(FAST)
    topic, group = 'grp-lag', 'g-lag'
    create_topic(broker.bootstrap, topic, 3)
    # uneven partitions: keyed records, partitions chosen by the producer
    n = 900
    produced = produce(broker.bootstrap, topic, [b'lag-%d' % i for i in range(n)],
                       keys=[b'key-%d' % (i % 17) for i in range(n)])
    produced_per = {p: 0 for p in range(3)}
    for p, _o, _v in produced:
        produced_per[p] += 1
    assert all(produced_per.values()), produced_per

    m = GroupMember(broker.bootstrap, group, topic, 'lag-consumer',
                    {'max.partition.fetch.bytes': 1024})
    try:
        consumed = read_n(m, 500)
        assert len(consumed) == 500     # poll() hands out one record at a time
        consumed_per = {p: 0 for p in range(3)}
        for p, _o, _v in consumed:
            consumed_per[p] += 1
        # commits the positions of what poll() returned
        res = m.c.commit(asynchronous=False)
        assert all(r.error is None for r in res), res
        committed = {p.partition: p.offset for p in
                     m.c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)}
        highs = {p: m.c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                 for p in range(3)}
    finally:
        m.close()
    assert highs == produced_per
    # a partition nothing was read from has no committed offset (the lag
    # is then counted from the log start, 0)
    for p in range(3):
        assert (committed[p] == OFFSET_INVALID) == (consumed_per[p] == 0), (committed, consumed_per)
    lag = {p: highs[p] - max(committed[p], 0) for p in range(3)}
    assert lag == {p: produced_per[p] - consumed_per[p] for p in range(3)}, (
        lag, produced_per, consumed_per)
    assert sum(lag.values()) == n - 500
    partial = [p for p in range(3) if 0 < consumed_per[p] < produced_per[p]]
    assert partial, (consumed_per, produced_per)

    # the same numbers through kafka-python's OffsetFetch (after close)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        offs = admin.list_consumer_group_offsets(group)
    finally:
        admin.close()
    assert {tp.partition: om.offset for tp, om in offs.items() if tp.topic == topic} == {
        p: o for p, o in committed.items() if o != OFFSET_INVALID}


def test_kafka_python_group_consumer_and_admin(start_broker):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient
    broker = start_broker(FAST)
    topic, group = 'grp-kpy', 'g-kpy'
    create_topic(broker.bootstrap, topic, 2)
    produced = produce(broker.bootstrap, topic, [b'kpy-%d' % i for i in range(300)],
                       partition_of=lambda i: 0 if i < 200 else 1)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    cons = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                         client_id='kpy-consumer', enable_auto_commit=True,
                         auto_commit_interval_ms=500, auto_offset_reset='earliest',
                         heartbeat_interval_ms=500, session_timeout_ms=10000)
    closed = False
    try:
        got = []
        deadline = time.monotonic() + 60
        while len(got) < 300 and time.monotonic() < deadline:
            for tp, msgs in cons.poll(timeout_ms=500).items():
                got += [(m.partition, m.offset, m.value) for m in msgs]
        assert sorted(got) == sorted(produced)
        assert {tp.partition for tp in cons.assignment()} == {0, 1}

        # while the consumer is active
        (info,) = admin.describe_consumer_groups([group])
        assert info.error_code == 0 and info.group == group, info
        assert info.state == 'Stable', info
        assert info.protocol_type == 'consumer', info
        assert len(info.members) == 1, info
        member = info.members[0]
        assert member.client_id == 'kpy-consumer', member
        assert member.member_id.startswith('kpy-consumer-'), member
        assert member.member_metadata.subscription == [topic], member
        assert sorted(member.member_assignment.assignment) == [(topic, [0, 1])], member
        assert (group, 'consumer') in admin.list_consumer_groups()

        # auto-commit catches up within a couple of intervals
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cons.poll(timeout_ms=200)
            offs = admin.list_consumer_group_offsets(group)
            if {tp.partition: om.offset for tp, om in offs.items()} == {0: 200, 1: 100}:
                break
        else:
            raise AssertionError('auto-commit did not reach the end: %r' % offs)
        cons.close()
        closed = True

        groups = admin.list_consumer_groups()
        assert (group, 'consumer') in groups, groups
        (info,) = admin.describe_consumer_groups([group])
        assert info.state == 'Empty' and info.members == [], info
        offs = admin.list_consumer_group_offsets(group)
        assert {tp: om.offset for tp, om in offs.items()} == {
            TopicPartition(topic, 0): 200, TopicPartition(topic, 1): 100}, offs
        # a subset of partitions
        offs = admin.list_consumer_group_offsets(group, partitions=[TopicPartition(topic, 1)])
        assert {tp: om.offset for tp, om in offs.items()} == {TopicPartition(topic, 1): 100}
    finally:
        if not closed:
            cons.close()
        admin.close()
