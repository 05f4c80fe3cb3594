"""The group APIs through raw frames: the member-id handshake, error codes
(MEMBER_ID_REQUIRED, INVALID_SESSION_TIMEOUT, ILLEGAL_GENERATION,
UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, NON_EMPTY_GROUP,
GROUP_ID_NOT_FOUND, GROUP_SUBSCRIBED_TO_TOPIC, FENCED_INSTANCE_ID),
ListGroups with a states filter, DeleteGroups, OffsetDelete, the rebalance
timeout, static-member fencing."""

import re
import time

import group_helpers as gh
from group_helpers import Conn, consumer_assignment, consumer_subscription, create_topic

FENCED_INSTANCE_ID = 82
OFFSET_NONE = -1


def dynamic_join(conn, group, topics, session_timeout=10000, rebalance_timeout=10000):
    """JoinGroup v4 handshake: MEMBER_ID_REQUIRED, then again with the id."""
    sub = consumer_subscription(topics)
    first = conn.join(group, version=4, session_timeout=session_timeout,
                      rebalance_timeout=rebalance_timeout, protocols=[('range', sub)])
    assert first['error_code'] == gh.MEMBER_ID_REQUIRED, first
    assert first['member_id'], first
    second = conn.join(group, version=4, member_id=first['member_id'],
                       session_timeout=session_timeout, rebalance_timeout=rebalance_timeout,
                       protocols=[('range', sub)])
    assert second['error_code'] == 0, second
    assert second['member_id'] == first['member_id'], (first, second)
    return second


def group_ids(groups):
    return [g['group_id'] for g in groups or []]


def test_member_lifecycle_errors_and_group_deletion(start_broker):
    broker = start_broker({'group.initial.rebalance.delay.ms': 0})
    topic, group = 'grp-raw', 'g-raw'
    create_topic(broker.bootstrap, topic, 2)
    c = Conn(broker.port, client_id='raw-client')
    try:
        fc = c.find_coordinator(group)
        assert fc['error_code'] == 0, fc
        assert (fc['node_id'], fc['host'], fc['port']) == \
            (int(broker.meta()['node.id']), '127.0.0.1', broker.port), fc
        assert re.search(r'created __consumer_offsets with 50 partitions', broker.log_text())
        from spool_clients import confluent_metadata
        md = confluent_metadata(broker.bootstrap, '__consumer_offsets')
        assert len(md.topics['__consumer_offsets'].partitions) == 50

        # session timeout outside [group.min.session.timeout.ms, max]
        for st in (1000, 5999, 1800001):
            r = c.join(group, version=4, session_timeout=st,
                       protocols=[('range', consumer_subscription([topic]))])
            assert r['error_code'] == gh.INVALID_SESSION_TIMEOUT, (st, r)

        # v4 with no member id: MEMBER_ID_REQUIRED with an id (client.id-uuid)
        j = dynamic_join(c, group, [topic])
        me = j['member_id']
        assert me.startswith('raw-client-'), me
        assert j['generation_id'] == 1 and j['leader'] == me, j
        assert j['protocol_name'] == 'range', j
        assert [m['member_id'] for m in j['members']] == [me], j
        assert j['members'][0]['metadata'] == consumer_subscription([topic])
        gen = j['generation_id']

        # an unknown member id is refused
        r = c.join(group, version=4, member_id='raw-client-bogus',
                   protocols=[('range', consumer_subscription([topic]))])
        assert r['error_code'] == gh.UNKNOWN_MEMBER_ID, r

        assignment = consumer_assignment({topic: [0, 1]})
        s = c.sync(group, gen + 1, me, {me: assignment})
        assert s['error_code'] == gh.ILLEGAL_GENERATION, s
        s = c.sync(group, gen, me, {me: assignment})
        assert s['error_code'] == 0 and s['assignment'] == assignment, s

        assert c.heartbeat(group, gen, me) == 0
        assert c.heartbeat(group, gen + 1, me) == gh.ILLEGAL_GENERATION
        assert c.heartbeat(group, gen - 1, me) == gh.ILLEGAL_GENERATION
        assert c.heartbeat(group, gen, 'raw-client-nobody') == gh.UNKNOWN_MEMBER_ID
        assert c.heartbeat('g-no-such-group', gen, me) == gh.UNKNOWN_MEMBER_ID

        (d,) = c.describe([group])
        assert d['error_code'] == 0 and d['state'] == 'Stable', d
        assert d['protocol_type'] == 'consumer' and d['protocol'] == 'range', d
        assert [(m['member_id'], m['client_id'], m['assignment']) for m in d['members']] == \
            [(me, 'raw-client', assignment)], d
        for v in (5, 6):
            (d6,) = c.describe([group], version=v)
            assert d6['error_code'] == 0 and d6.get('error_message') is None, d6
            assert [(m['member_id'], m['assignment']) for m in d6['members']] == [(me, assignment)], d6

        # ListGroups, unfiltered and by state
        err, groups = c.list_groups()
        assert err == 0 and {'group_id': group, 'protocol_type': 'consumer'} in groups, groups
        err, groups = c.list_groups(states=['Stable'])
        assert err == 0 and {'group_id': group, 'protocol_type': 'consumer',
                             'state': 'Stable'} in groups, groups
        err, groups = c.list_groups(states=['Empty', 'PreparingRebalance'])
        assert err == 0 and group not in group_ids(groups), groups

        # commits: by the member with its generation; stale generation refused
        assert c.commit(group, {(topic, 0): 5, (topic, 1): 7}, gen, me) == \
            {(topic, 0): 0, (topic, 1): 0}
        assert c.commit(group, {(topic, 0): 9}, gen + 1, me) == {(topic, 0): gh.ILLEGAL_GENERATION}
        assert c.commit(group, {(topic, 0): 9}, gen, 'raw-client-nobody') == \
            {(topic, 0): gh.UNKNOWN_MEMBER_ID}
        # a "simple" commit (no generation) into a group with live members
        assert c.commit(group, {(topic, 0): 9}) == {(topic, 0): gh.UNKNOWN_MEMBER_ID}
        offs, err = c.fetch_offsets(group, {topic: [0, 1]})
        assert err == 0 and offs == {(topic, 0): (5, 0), (topic, 1): (7, 0)}, offs

        # live members: the group cannot be deleted, nor its subscribed offsets
        res = c.delete_groups([group, 'g-never-existed'])
        assert res == {group: gh.NON_EMPTY_GROUP, 'g-never-existed': gh.GROUP_ID_NOT_FOUND}, res
        err, parts = c.offset_delete(group, {topic: [0]})
        assert (err, parts) == (0, {(topic, 0): gh.GROUP_SUBSCRIBED_TO_TOPIC}), (err, parts)

        # leave: the group becomes Empty, the member is gone
        assert c.leave(group, 'raw-client-nobody') == gh.UNKNOWN_MEMBER_ID
        assert c.leave(group, me) == 0
        assert re.search(r'group %s: member %s removed: left the group' % (group, me),
                         broker.log_text())
        assert c.heartbeat(group, gen, me) == gh.UNKNOWN_MEMBER_ID
        (d,) = c.describe([group])
        assert d['state'] == 'Empty' and d['members'] == [], d
        err, groups = c.list_groups(states=['Empty'])
        assert err == 0 and group in group_ids(groups), groups
        err, groups = c.list_groups(states=['Stable'])
        assert group not in group_ids(groups), groups

        # an empty group's offsets can be deleted one by one ...
        err, parts = c.offset_delete(group, {topic: [0]})
        assert (err, parts) == (0, {(topic, 0): 0}), (err, parts)
        offs, err = c.fetch_offsets(group, {topic: [0, 1]})
        assert offs == {(topic, 0): (OFFSET_NONE, 0), (topic, 1): (7, 0)}, offs

        # ... and the group itself
        assert c.delete_groups([group]) == {group: 0}
        assert re.search(r'group %s deleted' % group, broker.log_text())
        err, groups = c.list_groups()
        assert err == 0 and group not in group_ids(groups), groups
        (d,) = c.describe([group])
        assert d['state'] == 'Dead' and d['members'] == [] and d['error_code'] == 0, d
        # v6 (KIP-1043): GROUP_ID_NOT_FOUND with a message, as Kafka 4
        (d,) = c.describe([group], version=6)
        assert (d['error_code'], d['error_message'], d['state']) == \
            (gh.GROUP_ID_NOT_FOUND, 'Group %s not found.' % group, 'Dead'), d
        (d,) = c.describe([group], version=5)
        assert (d['error_code'], d['state']) == (0, 'Dead'), d
        assert c.delete_groups([group]) == {group: gh.GROUP_ID_NOT_FOUND}
        offs, err = c.fetch_offsets(group, {topic: [0, 1]})
        assert offs == {(topic, 0): (OFFSET_NONE, 0), (topic, 1): (OFFSET_NONE, 0)}, offs
    finally:
        c.close()

    # the deletion is durable
    assert broker.stop(timeout=10) == 0
    b2 = start_broker({'group.initial.rebalance.delay.ms': 0}, data_dir=broker.data_dir)
    c = Conn(b2.port)
    try:
        err, groups = c.list_groups()
        assert err == 0 and group not in group_ids(groups), groups
        offs, err = c.fetch_offsets(group, {topic: [0, 1]})
        assert offs == {(topic, 0): (OFFSET_NONE, 0), (topic, 1): (OFFSET_NONE, 0)}, offs
    finally:
        c.close()


def test_delete_groups_through_kafka_python_admin(start_broker):
    """DeleteGroups with kafka-python's admin client while a confluent-kafka
    member is live (NON_EMPTY_GROUP), for an unknown group
    (GROUP_ID_NOT_FOUND), and after the member closed (deleted: no longer
    listed, its offsets gone)."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import GroupIdNotFoundError, NoError, NonEmptyGroupError
    from group_helpers import GroupMember, poll_until, produce
    broker = start_broker({'group.initial.rebalance.delay.ms': 0})
    topic, group = 'grp-del', 'g-del'
    create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, [b'x%d' % i for i in range(10)])
    m = GroupMember(broker.bootstrap, group, topic, 'del-member')
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        poll_until([m], lambda: len(m.messages) == 10, 30, 'ten records')
        m.c.commit(asynchronous=False)
        res = dict(admin.delete_consumer_groups([group, 'g-del-unknown']))
        assert res == {group: NonEmptyGroupError, 'g-del-unknown': GroupIdNotFoundError}, res
        assert (group, 'consumer') in admin.list_consumer_groups()
        assert {tp.partition: om.offset for tp, om in
                admin.list_consumer_group_offsets(group).items()} == {0: 10}
        m.close()
        res = dict(admin.delete_consumer_groups([group]))
        assert res == {group: NoError}, res
        assert group not in [g for g, _ in admin.list_consumer_groups()]
        assert admin.list_consumer_group_offsets(group) == {}
        res = dict(admin.delete_consumer_groups([group]))
        assert res == {group: GroupIdNotFoundError}, res
    finally:
        m.close()
        admin.close()


def test_rebalance_timeout_removes_members_that_do_not_rejoin(start_broker):
    broker = start_broker({'group.initial.rebalance.delay.ms': 0})
    topic, group = 'grp-rto', 'g-rto'
    create_topic(broker.bootstrap, topic, 2)
    a = Conn(broker.port, client_id='slow')
    b = Conn(broker.port, client_id='late')
    try:
        assert a.find_coordinator(group)['error_code'] == 0
        ja = dynamic_join(a, group, [topic], session_timeout=10000, rebalance_timeout=1500)
        ida = ja['member_id']
        assert a.sync(group, ja['generation_id'], ida,
                      {ida: consumer_assignment({topic: [0, 1]})})['error_code'] == 0

        # B's first JoinGroup: MEMBER_ID_REQUIRED; its second one waits for A
        sub = consumer_subscription([topic])
        first = b.join(group, version=4, session_timeout=10000, rebalance_timeout=1500,
                       protocols=[('range', sub)])
        assert first['error_code'] == gh.MEMBER_ID_REQUIRED
        t0 = time.monotonic()
        cid = b.send_join(group, version=4, member_id=first['member_id'],
                          session_timeout=10000, rebalance_timeout=1500,
                          protocols=[('range', sub)])
        time.sleep(0.3)
        # A is told to rejoin (and its heartbeats keep its session alive) ...
        assert a.heartbeat(group, ja['generation_id'], ida) == gh.REBALANCE_IN_PROGRESS
        (d,) = a.describe([group])
        assert d['state'] == 'PreparingRebalance', d
        # ... but does not: after the rebalance timeout it is dropped
        jb = b.recv_join(cid, version=4, timeout=15)
        waited = time.monotonic() - t0
        assert jb['error_code'] == 0, jb
        assert 1.2 <= waited < 8, waited
        assert jb['generation_id'] == ja['generation_id'] + 1, jb
        assert jb['leader'] == jb['member_id'] == first['member_id'], jb
        assert [m['member_id'] for m in jb['members']] == [jb['member_id']], jb
        assert re.search(r'group %s: member %s removed: did not rejoin within the rebalance timeout'
                         % (group, ida), broker.log_text()), broker.log_text()[-2000:]
        assert a.heartbeat(group, ja['generation_id'], ida) == gh.UNKNOWN_MEMBER_ID
        # B did rejoin in time: it must stay
        assert 'member %s removed' % jb['member_id'] not in broker.log_text(), \
            broker.log_text()[-2000:]
        # the group is CompletingRebalance until B's SyncGroup
        (d,) = a.describe([group])
        assert d['state'] == 'CompletingRebalance', d
        assert b.sync(group, jb['generation_id'], jb['member_id'],
                      {jb['member_id']: consumer_assignment({topic: [0, 1]})})['error_code'] == 0
        (d,) = a.describe([group])
        assert d['state'] == 'Stable' and len(d['members']) == 1, d
    finally:
        a.close()
        b.close()


def test_session_timeout_removes_a_silent_member(start_broker):
    broker = start_broker({'group.initial.rebalance.delay.ms': 0,
                           'group.min.session.timeout.ms': 1000})
    topic, group = 'grp-sto', 'g-sto'
    create_topic(broker.bootstrap, topic, 1)
    c = Conn(broker.port, client_id='silent')
    try:
        c.find_coordinator(group)
        j = dynamic_join(c, group, [topic], session_timeout=1500)
        me = j['member_id']
        assert c.sync(group, j['generation_id'], me, {me: b''})['error_code'] == 0
        # heartbeats keep it alive past its session timeout
        for _ in range(6):
            time.sleep(0.5)
            assert c.heartbeat(group, j['generation_id'], me) == 0
        assert 'removed' not in broker.log_text()
        # silence: removed after ~1.5 s, the group becomes Empty
        time.sleep(2.5)
        assert re.search(r'group %s: member %s removed: session timeout expired' % (group, me),
                         broker.log_text()), broker.log_text()[-2000:]
        assert c.heartbeat(group, j['generation_id'], me) == gh.UNKNOWN_MEMBER_ID
        (d,) = c.describe([group])
        assert d['state'] == 'Empty' and d['members'] == [], d
    finally:
        c.close()


def static_join(conn, group, instance, topics, member_id=''):
    return conn.join(group, version=5, member_id=member_id, instance_id=instance,
                     session_timeout=30000, rebalance_timeout=10000,
                     protocols=[('range', consumer_subscription(topics))])


def test_static_member_rejoin_fences_the_old_instance(start_broker):
    """KIP-345: when a static member rejoins with an empty member id, the
    instance's old member id is fenced: requests still carrying it (with
    the group.instance.id) get FENCED_INSTANCE_ID so that a zombie instance
    shuts down instead of rejoining and taking the instance id back."""
    broker = start_broker({'group.initial.rebalance.delay.ms': 0})
    topic, group = 'grp-fence', 'g-fence'
    create_topic(broker.bootstrap, topic, 2)
    old = Conn(broker.port, client_id='zombie')
    new = Conn(broker.port, client_id='restarted')
    try:
        old.find_coordinator(group)
        j1 = static_join(old, group, 'inst-1', [topic])
        assert j1['error_code'] == 0, j1     # static members need no second round
        gen, old_id = j1['generation_id'], j1['member_id']
        assert old_id.startswith('inst-1-'), j1
        assignment = consumer_assignment({topic: [0, 1]})
        assert old.sync(group, gen, old_id, {old_id: assignment},
                        instance_id='inst-1')['error_code'] == 0

        j2 = static_join(new, group, 'inst-1', [topic])
        assert j2['error_code'] == 0 and j2['generation_id'] == gen, j2
        new_id = j2['member_id']
        assert new_id != old_id and new_id.startswith('inst-1-'), j2
        s = new.sync(group, gen, new_id, {}, instance_id='inst-1')
        assert s['error_code'] == 0 and s['assignment'] == assignment, s
        assert new.heartbeat(group, gen, new_id, instance_id='inst-1') == 0

        # the zombie is fenced, not merely unknown
        assert old.heartbeat(group, gen, old_id, instance_id='inst-1') == FENCED_INSTANCE_ID
        assert old.sync(group, gen, old_id, {}, instance_id='inst-1')['error_code'] == \
            FENCED_INSTANCE_ID
        r = static_join(old, group, 'inst-1', [topic], member_id=old_id)
        assert r['error_code'] == FENCED_INSTANCE_ID, r
        # and none of that disturbed the group
        (d,) = new.describe([group])
        assert d['state'] == 'Stable', d
        assert [(m['member_id'], m['group_instance_id']) for m in d['members']] == \
            [(new_id, 'inst-1')], d
        assert 'preparing rebalance (generation %d)' % gen not in broker.log_text()
    finally:
        old.close()
        new.close()


def test_static_leader_rejoin_does_not_make_it_assign(start_broker):
    """A static leader that rejoins a Stable group must not be asked to
    compute an assignment the group will not use: Kafka answers (JoinGroup
    < v9) with an empty member list and the group's previous leader id, so
    the rejoined member does not see itself as leader."""
    broker = start_broker({'group.initial.rebalance.delay.ms': 0})
    topic, group = 'grp-sleader', 'g-sleader'
    create_topic(broker.bootstrap, topic, 2)
    c1 = Conn(broker.port, client_id='s1')
    c2 = Conn(broker.port, client_id='s2')
    c1b = Conn(broker.port, client_id='s1')
    try:
        c1.find_coordinator(group)
        j1 = static_join(c1, group, 'leader-inst', [topic])
        assert j1['error_code'] == 0 and j1['leader'] == j1['member_id'], j1
        # a second static member joins: rebalance to generation 2
        cid = c2.send_join(group, version=5, instance_id='follower-inst',
                           session_timeout=30000, rebalance_timeout=10000,
                           protocols=[('range', consumer_subscription([topic]))])
        time.sleep(0.2)
        j1 = static_join(c1, group, 'leader-inst', [topic], member_id=j1['member_id'])
        j2 = c2.recv_join(cid, version=5)
        assert j1['error_code'] == j2['error_code'] == 0, (j1, j2)
        gen, leader = j1['generation_id'], j1['member_id']
        assert j1['leader'] == leader and len(j1['members']) == 2, j1
        a1, a2 = consumer_assignment({topic: [0]}), consumer_assignment({topic: [1]})
        scid = c2.send_sync(group, gen, j2['member_id'], {}, instance_id='follower-inst')
        s = c1.sync(group, gen, leader, {leader: a1, j2['member_id']: a2},
                    instance_id='leader-inst')
        assert s['error_code'] == 0 and s['assignment'] == a1, s
        s = c2.recv_sync(scid)
        assert s['error_code'] == 0 and s['assignment'] == a2, s

        # the leader's process restarts
        r = static_join(c1b, group, 'leader-inst', [topic])
        assert r['error_code'] == 0 and r['generation_id'] == gen, r
        assert r['member_id'] != leader, r
        assert re.search(r'static member leader-inst rejoined as %s without a rebalance'
                         % re.escape(r['member_id']), broker.log_text())
        assert r['members'] == [], r
        assert r['leader'] != r['member_id'], r
        s = c1b.sync(group, gen, r['member_id'], {}, instance_id='leader-inst')
        assert s['error_code'] == 0 and s['assignment'] == a1, s
    finally:
        for c in (c1, c2, c1b):
            c.close()


def test_rejoin_while_awaiting_sync_gets_the_same_generation(start_broker):
    """Kafka's doCurrentMemberJoinGroup: while the group awaits SyncGroup, a
    member (the leader too) that joins again with the same protocols -- it
    may have missed its JoinGroup answer, or given up on a slow one, as
    kafka-python 3 does under load -- gets the current generation again
    (the leader with the member list) and no rebalance starts; once the
    group is Stable, the leader's rejoin does start one, a follower's with
    nothing new does not."""
    broker = start_broker({'group.initial.rebalance.delay.ms': 0})
    topic, group = 'grp-resend', 'g-resend'
    create_topic(broker.bootstrap, topic, 2)
    a = Conn(broker.port, client_id='a')
    b = Conn(broker.port, client_id='b')
    sub = consumer_subscription([topic])
    try:
        assert a.find_coordinator(group)['error_code'] == 0
        ja = dynamic_join(a, group, [topic])
        ida = ja['member_id']
        assert ja['leader'] == ida
        # B joins: A must rejoin; both get generation 2 and the group awaits sync
        first = b.join(group, version=4, protocols=[('range', sub)])
        cid = b.send_join(group, version=4, member_id=first['member_id'], protocols=[('range', sub)])
        time.sleep(0.2)
        ra = a.join(group, version=4, member_id=ida, protocols=[('range', sub)])
        jb = b.recv_join(cid, version=4, timeout=10)
        assert ra['error_code'] == 0 and jb['error_code'] == 0, (ra, jb)
        gen = ra['generation_id']
        assert jb['generation_id'] == gen and ra['leader'] == ida
        (d,) = a.describe([group])
        assert d['state'] == 'CompletingRebalance', d
        # the leader joins again with the same protocols: the same generation,
        # with the members, and still awaiting sync
        again = a.join(group, version=4, member_id=ida, protocols=[('range', sub)])
        assert again['error_code'] == 0, again
        assert again['generation_id'] == gen and again['leader'] == ida
        assert sorted(m['member_id'] for m in again['members']) == sorted([ida, jb['member_id']])
        # and so does the follower (without the list)
        againb = b.join(group, version=4, member_id=jb['member_id'], protocols=[('range', sub)])
        assert againb['error_code'] == 0 and againb['generation_id'] == gen and againb['members'] == []
        (d,) = a.describe([group])
        assert d['state'] == 'CompletingRebalance', d
        assert 'preparing rebalance (generation %d)' % gen not in broker.log_text()
        # the sync completes the generation
        sa = a.send_sync(group, gen, ida, {ida: consumer_assignment({topic: [0]}),
                                           jb['member_id']: consumer_assignment({topic: [1]})})
        assert b.sync(group, gen, jb['member_id'])['error_code'] == 0
        assert a.recv_sync(sa, timeout=10)['error_code'] == 0
        (d,) = a.describe([group])
        assert d['state'] == 'Stable', d
        # Stable: the follower rejoining with nothing new gets the generation ...
        f = b.join(group, version=4, member_id=jb['member_id'], protocols=[('range', sub)])
        assert f['error_code'] == 0 and f['generation_id'] == gen
        (d,) = a.describe([group])
        assert d['state'] == 'Stable', d
        # ... the leader's rejoin starts a rebalance
        cid = a.send_join(group, version=4, member_id=ida, protocols=[('range', sub)])
        time.sleep(0.2)
        (d,) = b.describe([group])
        assert d['state'] == 'PreparingRebalance', d
        assert b.heartbeat(group, gen, jb['member_id']) == gh.REBALANCE_IN_PROGRESS
        jb2 = b.join(group, version=4, member_id=jb['member_id'], protocols=[('range', sub)])
        ja2 = a.recv_join(cid, version=4, timeout=10)
        assert ja2['error_code'] == 0 and jb2['error_code'] == 0
        assert ja2['generation_id'] == jb2['generation_id'] == gen + 1
    finally:
        a.close()
        b.close()


def test_group_id_with_a_nul_byte_is_refused(start_broker):
    """Spool keeps group ids as C strings: one holding a NUL byte is
    refused with INVALID_GROUP_ID (docs/DIFFERENCES.md, group-id-nul)
    instead of making a new, cut-short group at every request."""
    broker = start_broker({'group.initial.rebalance.delay.ms': 0})
    topic = 'grp-nul'
    create_topic(broker.bootstrap, topic, 1)
    a = Conn(broker.port, client_id='nul')
    try:
        for _ in range(3):
            r = a.join('g\x00x', version=4, protocols=[('range', consumer_subscription([topic]))])
            assert r['error_code'] == 24, r           # INVALID_GROUP_ID
        err, groups = a.list_groups()
        assert err == 0 and not [g for g in group_ids(groups) if g.startswith('g')], groups
        ok = dynamic_join(a, 'g', [topic])            # the plain id is unaffected
        assert ok['error_code'] == 0
    finally:
        a.close()
