"""Answers where Spool differed from Kafka 4.3, found by the differential
tests (test_0061) and fixed: each test pins Kafka's answer on Spool alone,
so it runs without the Kafka reference."""
import time

import kafka_wire as kw
from diff_corpus import TS, batch, corrupt, fetch_body, list_offsets_body, produce_body
from kafka_diff import Target


def _target(broker):
    return Target('spool', broker.port)


def _create(t, topics, configs=None):
    from kafka_diff import Runner
    Runner(t.port, t.port).create_topics(t, topics, configs)


def call(t, api, v, body, **kw_):
    """One request (a diff_corpus template: '{id:x}' is topic x's id) -> the answer."""
    o = t.call(api, v, t.fill(body), **kw_)
    assert o.kind == 'response', o
    return o.body


def test_fetch_aborted_transactions_null_unless_read_committed(broker):
    """Kafka lists aborted transactions to read_committed fetches only: null
    for read_uncommitted (it was an empty list)."""
    t = _target(broker)
    _create(t, {'ab': 1})
    call(t, 0, 9, produce_body([('ab', 0, batch(2))]))
    for v in (4, 11, 12, 13, 17):
        for iso, want in ((0, None), (1, [])):
            p = call(t, 1, v, fetch_body([('ab', 0, 0)], isolation=iso))['Responses'][0]['Partitions'][0]
            assert p['ErrorCode'] == 0 and p['AbortedTransactions'] == want, (v, iso, p)
            # ...but a partition refused before any read has the empty list
            for parts in ([('ab', 5, 0)], [('no-such', 0, 0)]):
                p = call(t, 1, v, fetch_body(parts, isolation=iso))['Responses'][0]['Partitions'][0]
                assert p['ErrorCode'] in (3, 100) and p['AbortedTransactions'] == [], (v, iso, p)


def test_fetch_offset_out_of_range_carries_no_offsets(broker):
    """A partition answered OFFSET_OUT_OF_RANGE has high watermark, last
    stable offset and log start offset -1, as Kafka's failed LogReadResult
    (Spool gave the partition's real offsets), below the log start after
    DeleteRecords too."""
    t = _target(broker)
    _create(t, {'oor': 1})
    call(t, 0, 9, produce_body([('oor', 0, batch(4))]))
    call(t, 21, 2, {'Topics': [{'Name': 'oor', 'Partitions': [{'PartitionIndex': 0, 'Offset': 2}]}],
                    'TimeoutMs': 5000})
    for v in (4, 5, 11, 12, 17):
        for off in (9, -3, 0):
            p = call(t, 1, v, fetch_body([('oor', 0, off)]))['Responses'][0]['Partitions'][0]
            assert p['ErrorCode'] == 1, (v, off, p)
            assert (p['HighWatermark'], p.get('LastStableOffset', -1), p.get('LogStartOffset', -1)) == (-1, -1, -1), p
        p = call(t, 1, v, fetch_body([('oor', 0, 2)]))['Responses'][0]['Partitions'][0]
        assert p['ErrorCode'] == 0 and p['HighWatermark'] == 4, p


def _lo(t, v, topic, ts, partition=0):
    return call(t, 2, v, list_offsets_body([(topic, partition, ts)]))['Topics'][0]['Partitions'][0]


def test_list_offsets_special_timestamps_need_their_version(broker):
    """-3 (max timestamp) is v7+, -4 (earliest local) v8+, -5 (latest
    tiered) v9+; below, and for any other negative timestamp, Kafka answers
    UNSUPPORTED_VERSION (Spool answered them at every version, and
    INVALID_REQUEST for unknown negative values)."""
    t = _target(broker)
    _create(t, {'lo': 1})
    call(t, 0, 9, produce_body([('lo', 0, batch(3))]))
    since = {-1: 1, -2: 1, -3: 7, -4: 8, -5: 9, -6: 99, -7: 99, -100: 99}
    for v in range(1, 11):
        for ts, lo in since.items():
            p = _lo(t, v, 'lo', ts)
            if v < lo:
                assert p['ErrorCode'] == 35 and p['Offset'] == -1, (v, ts, p)
                assert p.get('LeaderEpoch', -1) == -1, (v, ts, p)
            else:
                assert p['ErrorCode'] == 0, (v, ts, p)


def test_list_offsets_no_offset_no_leader_epoch(broker):
    """An answer without an offset has leader epoch -1 (Spool gave 0): no
    record at or after the timestamp, latest tiered, an empty log's max
    timestamp, an error."""
    t = _target(broker)
    _create(t, {'le': 2})
    call(t, 0, 9, produce_body([('le', 0, batch(3))]))
    for v in (4, 7, 10):
        assert _lo(t, v, 'le', TS + 1)['LeaderEpoch'] == 0
        assert _lo(t, v, 'le', TS + 99)['LeaderEpoch'] == -1
        assert _lo(t, v, 'le', -2, partition=1)['LeaderEpoch'] == 0            # an empty log: offset 0
        assert _lo(t, v, 'le', TS + 1, partition=1)['LeaderEpoch'] == -1
        assert _lo(t, v, 'le', -1, partition=9)['LeaderEpoch'] == -1          # unknown partition
        if v >= 7:
            assert _lo(t, v, 'le', -3, partition=1)['LeaderEpoch'] == -1
        if v >= 9:
            assert _lo(t, v, 'le', -5)['LeaderEpoch'] == -1


def test_list_offsets_a_partition_named_twice(broker):
    """A partition named twice is answered once, INVALID_REQUEST (Kafka keys
    the request by topic-partition); the others as usual."""
    t = _target(broker)
    _create(t, {'dup': 2})
    call(t, 0, 9, produce_body([('dup', 0, batch(3))]))
    for v in (1, 5, 10):
        parts = [('dup', 0, -1), ('dup', 1, -1), ('dup', 0, -2), ('dup', 7, -1), ('dup', 7, -2), ('dup', 0, -1)]
        body = call(t, 2, v, list_offsets_body(parts))
        got = [(p['PartitionIndex'], p['ErrorCode'], p['Offset']) for tp in body['Topics'] for p in tp['Partitions']]
        assert got == [(0, 42, -1), (1, 0, 0), (7, 42, -1)], (v, got)


def test_produce_failed_validation_answers_the_log_start(broker):
    """A batch the log refuses (INVALID_RECORD, INVALID_TIMESTAMP) or that
    min.insync.replicas refuses answers the partition's log start offset,
    as Kafka's processFailedRecord does (Spool answered -1); a corrupt or
    too large batch still answers -1."""
    t = _target(broker)
    _create(t, {'ls': 1, 'ls-old': 1, 'ls-isr': 1, 'ls-small': 1},
            {'ls-old': {'message.timestamp.before.max.ms': 3600000}, 'ls-isr': {'min.insync.replicas': 2},
             'ls-small': {'max.message.bytes': 1000}})
    for topic in ('ls', 'ls-old', 'ls-isr', 'ls-small'):
        recs = kw.record_batch([{'value': b'x', 'timestamp': int(time.time() * 1000)}] * 3)
        call(t, 0, 9, produce_body([(topic, 0, recs)], acks=1))
        deadline = time.monotonic() + 10           # acks=1: the high watermark follows the fsync
        while _lo(t, 6, topic, -1)['Offset'] < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        call(t, 21, 2, {'Topics': [{'Name': topic, 'Partitions': [{'PartitionIndex': 0, 'Offset': 2}]}],
                        'TimeoutMs': 5000})

    def lso(topic, recs, acks=-1):
        (p,) = call(t, 0, 9, produce_body([(topic, 0, recs)], acks=acks))['Responses'][0]['PartitionResponses']
        return p['ErrorCode'], p['LogStartOffset']
    assert lso('ls', batch(1, base_offset=5)) == (87, 2)
    assert lso('ls', batch(2, record_count=3)) == (87, 2)
    assert lso('ls-old', batch(1)) == (32, 2)
    assert lso('ls-isr', batch(1)) == (19, 2)
    assert lso('ls', corrupt(batch(2))) == (2, -1)
    assert lso('ls-small', batch(1, pad=2000)) == (10, -1)
    assert lso('ls', batch(1)) == (0, 2)


def test_produce_acks0_failure_closes_the_connection(broker):
    """acks=0 has no answer: a failed partition closes the connection, as
    Kafka does, so that the producer notices (Spool kept it open); a good
    one leaves it open."""
    t = _target(broker)
    _create(t, {'a0': 1})
    for v in (3, 9, 11):
        for recs, part, fails in ((batch(1), 0, False), (batch(1), 4, True), (corrupt(batch(2)), 0, True)):
            o = t.call(0, v, produce_body([('a0', part, recs)], acks=0), conn='c', no_response=True)
            assert o.kind == 'none'
            o = t.call(3, 1, {'Topics': [{'Name': 'a0'}]}, conn='c', timeout=5)
            assert o.kind == ('closed' if fails else 'response'), (v, part, o)
    deadline = time.monotonic() + 10           # acks=0: the high watermark follows the fsync
    while _lo(t, 6, 'a0', -1)['Offset'] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _lo(t, 6, 'a0', -1)['Offset'] == 3


def test_null_config_values_are_refused(broker):
    """A null config value: CreateTopics answers INVALID_CONFIG, AlterConfigs
    INVALID_REQUEST, as Kafka (Spool took it as "no value")."""
    from diff_corpus import alter_body, create_body, ct
    t = _target(broker)
    for v in (2, 5, 7):
        (r,) = call(t, 19, v, create_body([ct('nv%d' % v, 1, configs={'retention.ms': None})]))['Topics']
        assert r['ErrorCode'] == 40, r
        assert r['ErrorMessage'] == 'Null value not supported for topic configs: retention.ms'
        assert call(t, 3, 4, {'Topics': [{'Name': 'nv%d' % v}], 'AllowAutoTopicCreation': False}
                    )['Topics'][0]['ErrorCode'] == 3
    _create(t, {'nv': 1})
    for v in (0, 1, 2):
        (r,) = call(t, 33, v, alter_body([(2, 'nv', {'segment.ms': '100000', 'retention.ms': None})]))['Responses']
        assert (r['ErrorCode'], r['ErrorMessage']) == (42, 'Null value not supported for : retention.ms'), r


def test_a_topic_named_twice_is_answered_once(broker):
    """CreateTopics and DeleteTopics answer a topic named twice once, with
    INVALID_REQUEST, as Kafka (whose answers are keyed by name) does; the
    other topics as usual."""
    from diff_corpus import create_body, ct
    t = _target(broker)
    for v in (2, 7):
        got = [(r['Name'], r['ErrorCode']) for r in call(t, 19, v, create_body(
            [ct('tw-a%d' % v), ct('tw-b%d' % v), ct('tw-a%d' % v), ct('tw-a%d' % v)]))['Topics']]
        assert got == [('tw-a%d' % v, 42), ('tw-b%d' % v, 0)], got
    for v in (1, 5):
        got = [(r['Name'], r['ErrorCode']) for r in call(t, 20, v, {
            'TopicNames': ['tw-b2', 'tw-b2', 'tw-b7', 'no-such', 'no-such'], 'TimeoutMs': 10000})['Responses']]
        assert got == [('tw-b2', 42), ('tw-b7', 0 if v == 1 else 3), ('no-such', 42)], (v, got)
    _create(t, {'tw-c': 1})
    tid = t.topic_ids['tw-c']
    got = [(r['TopicId'], r['ErrorCode']) for r in call(t, 20, 6, {'Topics': [
        {'Name': None, 'TopicId': tid}, {'Name': None, 'TopicId': tid}], 'TimeoutMs': 10000})['Responses']]
    assert got == [(tid, 42)], got


def test_create_partitions_a_topic_named_twice_is_answered_once(broker):
    """CreatePartitions answers a topic named twice once, INVALID_REQUEST at
    its first appearance, as Kafka does (Spool answered every appearance)."""
    t = _target(broker)
    _create(t, {'cp2a': 1, 'cp2b': 1})
    for v in (0, 3):
        body = {'Topics': [{'Name': n, 'Count': c, 'Assignments': None} for n, c in
                           (('cp2b', 2 + v), ('cp2a', 5), ('cp2b', 9), ('nope', 2), ('cp2b', 9))],
                'TimeoutMs': 10000, 'ValidateOnly': False}
        got = [(r['Name'], r['ErrorCode']) for r in call(t, 37, v, body)['Results']]
        assert got == [('cp2b', 42), ('cp2a', 0 if v == 0 else 37), ('nope', 3)], (v, got)


def test_find_coordinator_key_types(broker):
    """As Kafka: a group id of any text, "" included, has a coordinator (Spool
    answered INVALID_REQUEST for ""); a key type other than group (0) and
    transaction (1) is INVALID_REQUEST (Spool answered
    COORDINATOR_NOT_AVAILABLE); a transactional id (1) has one too (the
    first creates __transaction_state)."""
    from diff_corpus import find_coordinator
    t = _target(broker)
    for v in (0, 1, 3, 4, 6):
        for kt, key, want in ((0, 'g', 0), (0, '', 0), (1, 'tx', 0), (2, 'x', 42), (5, 'g', 42), (-1, 'g', 42)):
            if v == 0 and kt != 0:
                continue
            b = call(t, 10, v, find_coordinator(v, key, kt).body)
            r = b['Coordinators'][0] if v >= 4 else b
            assert r['ErrorCode'] == want, (v, kt, key, r)
            assert (r['NodeId'], r['Port'] > 0) == ((1, True) if want == 0 else (-1, False)), r


def test_the_empty_group_id(broker):
    """"" is a group id for OffsetCommit (Spool answered INVALID_GROUP_ID),
    OffsetFetch, DescribeGroups and DeleteGroups, and INVALID_GROUP_ID for
    the membership APIs and OffsetDelete (Spool answered UNKNOWN_MEMBER_ID
    or GROUP_ID_NOT_FOUND), as Kafka's isValidGroupId has it."""
    from diff_corpus import commit, describe_groups, heartbeat, leave, offset_fetch, sync
    from kafka_diff import Step
    t = _target(broker)
    _create(t, {'eg': 1})
    call(t, 10, 3, {'Key': '', 'KeyType': 0})
    for v in (2, 9):
        (p,) = call(t, 8, v, commit(v, '', -1, [('eg', 0, 2 + v)], group='').body)['Topics'][0]['Partitions']
        assert p['ErrorCode'] == 0, p
    (p,) = call(t, 9, 1, offset_fetch(1, [('eg', [0])], group='').body)['Topics'][0]['Partitions']
    assert (p['ErrorCode'], p['CommittedOffset']) == (0, 11), p
    (g,) = call(t, 15, 5, describe_groups(5, ('',)).body)['Groups']
    assert (g['ErrorCode'], g['GroupState']) == (0, 'Empty'), g
    assert call(t, 12, 3, heartbeat(3, 'm', 1, group='').body)['ErrorCode'] == 24
    assert call(t, 14, 3, sync(3, 'm', 1, [], group='').body)['ErrorCode'] == 24
    assert call(t, 13, 3, leave(3, 'm', group='').body)['ErrorCode'] == 24
    assert call(t, 13, 1, leave(1, 'm', group='').body)['ErrorCode'] == 24
    body = call(t, 47, 0, Step(47, 0, {'GroupId': '', 'Topics': [{'Name': 'eg', 'Partitions': [
        {'PartitionIndex': 0}]}]}).body)
    assert (body['ErrorCode'], body['Topics']) == (24, []), body
    assert call(t, 42, 2, {'GroupsNames': ['']})['Results'] == [{'GroupId': '', 'ErrorCode': 0}]


def test_offset_delete_of_partitions_that_do_not_exist(broker):
    """OffsetDelete answers UNKNOWN_TOPIC_OR_PARTITION for a topic or a
    partition that does not exist, as Kafka does (Spool answered 0)."""
    from diff_corpus import commit
    from kafka_diff import Step
    t = _target(broker)
    _create(t, {'od': 1})
    call(t, 10, 3, {'Key': 'odg', 'KeyType': 0})
    call(t, 8, 2, commit(2, '', -1, [('od', 0, 2)], group='odg').body)
    body = call(t, 47, 0, Step(47, 0, {'GroupId': 'odg', 'Topics': [
        {'Name': 'od', 'Partitions': [{'PartitionIndex': 0}, {'PartitionIndex': 7}]},
        {'Name': 'no-such', 'Partitions': [{'PartitionIndex': 0}]}]}).body)
    got = [(tp['Name'], p['PartitionIndex'], p['ErrorCode']) for tp in body['Topics'] for p in tp['Partitions']]
    assert body['ErrorCode'] == 0 and got == [('od', 0, 0), ('od', 7, 3), ('no-such', 0, 3)], body


def test_join_group_error_answers(broker):
    """A JoinGroup error answer names the unknown member id the request gave
    (Spool answered ""), and from v7 has a null protocol name (Spool: "")."""
    from diff_corpus import join
    t = _target(broker)
    _create(t, {'jg': 1})
    t.vars['t'] = 'jg'
    call(t, 10, 3, {'Key': 'jgg', 'KeyType': 0})
    for v in range(0, 10):
        r = call(t, 11, v, join(v, 'no-such-member', group='jgg').body)
        assert (r['ErrorCode'], r['MemberId']) == (25, 'no-such-member'), (v, r)
        assert r['ProtocolName'] == (None if v >= 7 else ''), (v, r)
        r = call(t, 11, v, join(v, '', group='jgg', session=10).body)
        assert (r['ErrorCode'], r['MemberId']) == (26, ''), (v, r)
        assert r['ProtocolName'] == (None if v >= 7 else ''), (v, r)
    r = call(t, 11, 9, join(9, '', group='jgg').body)
    assert r['ErrorCode'] == 79 and r['MemberId'] and r['ProtocolName'] is None, r


def test_metadata_v10_v11_refuse_topic_ids(broker):
    """Metadata v10-11 carry topic ids but may not use them: Kafka answers
    its error answer (no brokers, controller -1, each topic INVALID_REQUEST,
    its name or "" and id echoed).  Spool answered by id, and for an
    unknown id wrote a null name where v10-11 have none (bytes no client
    can read)."""
    t = _target(broker)
    _create(t, {'mid': 1})
    tid = t.topic_ids['mid']
    other = '11111111-2222-3333-4444-555555555555'
    for v in (10, 11):
        for topics in ([{'TopicId': other, 'Name': None}], [{'TopicId': tid, 'Name': None}],
                       [{'TopicId': other, 'Name': 'mid'}, {'TopicId': '00000000-0000-0000-0000-000000000000',
                                                              'Name': 'mid'}]):
            b = call(t, 3, v, {'Topics': topics, 'AllowAutoTopicCreation': False})
            assert (b['Brokers'], b['ClusterId'], b['ControllerId']) == ([], None, -1), b
            assert [(x['ErrorCode'], x['Name'], x['TopicId'], x['Partitions']) for x in b['Topics']] == \
                [(42, x['Name'] or '', x['TopicId'], []) for x in topics], b
        b = call(t, 3, v, {'Topics': [{'Name': 'mid'}], 'AllowAutoTopicCreation': False})
        assert b['Topics'][0]['ErrorCode'] == 0 and b['Topics'][0]['TopicId'] == tid
    b = call(t, 3, 12, {'Topics': [{'TopicId': other, 'Name': None}]})
    assert [(x['ErrorCode'], x['Name']) for x in b['Topics']] == [(100, None)]
