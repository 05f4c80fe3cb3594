"""Transactional offset commits (TxnOffsetCommit, KIP-98/447) through raw
frames (the schema-driven codec, kafka_schema.py).

  - TxnOffsetCommit v3 of a simple group by a transactional producer:
    answered once durable; the offsets go to the group's partition of
    __consumer_offsets as ONE transactional batch of that producer (its
    id and epoch, base sequence 0, as Kafka's coordinator writes it);
  - OffsetFetch does not show them (-1); with require_stable (v7, v8) the
    partition answers UNSTABLE_OFFSET_COMMIT (-1, epoch -1, ""), other
    partitions stay stable; after a restart (replay without a marker)
    the same;
  - Kafka's order of checks: unknown partitions first, then
    INVALID_GROUP_ID for an empty group id, ILLEGAL_GENERATION for a
    generation of a group that does not exist;
  - end to end: InitProducerId with a transactional id, AddOffsetsToTxn,
    TxnOffsetCommit, EndTxn(commit) make the offset visible (and after a
    restart); EndTxn(abort) drops it.
"""
import time


import kafka_wire as kw
from client_helpers import create_topic
from kafka_schema import parse_batches, schemas

S = schemas()
UNKNOWN_TOPIC_OR_PARTITION = 3
ILLEGAL_GENERATION = 22
INVALID_GROUP_ID = 24
UNSTABLE_OFFSET_COMMIT = 88
NPARTS = 3
CONF = {'offsets.topic.num.partitions': NPARTS, 'group.initial.rebalance.delay.ms': 0}


def call(port, key, v, body):
    payload = kw.send_recv(port, S.encode_request(key, v, body, strict=True), timeout=15.0)
    _, resp = S.decode_response(key, v, payload)
    return resp


def partition_for(group, n=NPARTS):
    h = 0
    for c in group.encode():
        h = (h * 31 + c) & 0xffffffff
    if h >= 1 << 31:
        h -= 1 << 32
    return (0 if h == -(1 << 31) else abs(h)) % n


def coordinator(port, group):
    """FindCoordinator until __consumer_offsets is there."""
    for _ in range(200):
        fc = call(port, 10, 4, {'KeyType': 0, 'CoordinatorKeys': [group]})
        if fc['Coordinators'][0]['ErrorCode'] == 0:
            return
        time.sleep(0.05)
    raise AssertionError('no coordinator for %s' % group)


def retry(fn, what):
    for _ in range(200):
        r = fn()
        if r['ErrorCode'] == 0:
            return r
        time.sleep(0.05)
    raise AssertionError('%s: %r' % (what, r))


def transaction(port, txn_id, groups):
    """A transaction of txn_id with the groups' offsets partitions added
    (KIP-890: the coordinator confirms them to each TxnOffsetCommit):
    (producer id, epoch)."""
    retry(lambda: call(port, 10, 4, {'KeyType': 1, 'CoordinatorKeys': [txn_id]})['Coordinators'][0],
          'FindCoordinator')
    r = retry(lambda: call(port, 22, 4, {'TransactionalId': txn_id, 'TransactionTimeoutMs': 60000,
                                         'ProducerId': -1, 'ProducerEpoch': -1}), 'InitProducerId')
    pid, epoch = r['ProducerId'], r['ProducerEpoch']
    for g in groups:
        retry(lambda: call(port, 25, 3, {'TransactionalId': txn_id, 'ProducerId': pid, 'ProducerEpoch': epoch,
                                         'GroupId': g}), 'AddOffsetsToTxn')
    return pid, epoch


def txn_commit(port, group, pid, epoch, offsets, v=3, txn_id='tx', generation=-1, member=''):
    """offsets: {(topic, partition): offset} -> [(topic, [(partition, error)])] in answer order."""
    topics = {}
    for (t, p), o in offsets.items():
        part = {'PartitionIndex': p, 'CommittedOffset': o, 'CommittedMetadata': 'm'}
        if v >= 2:
            part['CommittedLeaderEpoch'] = 5
        topics.setdefault(t, []).append(part)
    body = {'TransactionalId': txn_id, 'GroupId': group, 'ProducerId': pid, 'ProducerEpoch': epoch,
            'Topics': [{'Name': t, 'Partitions': ps} for t, ps in topics.items()]}
    if v >= 3:
        body.update({'GenerationId': generation, 'MemberId': member, 'GroupInstanceId': None})
    r = call(port, 28, v, body)
    return [(t['Name'], [(p['PartitionIndex'], p['ErrorCode']) for p in t['Partitions']]) for t in r['Topics']]


def fetch(port, group, topic, parts, v=7, stable=False):
    """-> {partition: (offset, leader epoch, metadata, error)}"""
    if v >= 8:
        r = call(port, 9, v, {'Groups': [{'GroupId': group, 'MemberId': None, 'MemberEpoch': -1,
                                           'Topics': [{'Name': topic, 'PartitionIndexes': parts}]}],
                              'RequireStable': stable})
        (g,) = r['Groups']
        assert g['ErrorCode'] == 0, g
        topics = g['Topics']
    else:
        r = call(port, 9, v, {'GroupId': group, 'Topics': [{'Name': topic, 'PartitionIndexes': parts}],
                              'RequireStable': stable})
        assert r['ErrorCode'] == 0, r
        topics = r['Topics']
    (t,) = topics
    return {p['PartitionIndex']: (p['CommittedOffset'], p['CommittedLeaderEpoch'], p['Metadata'], p['ErrorCode'])
            for p in t['Partitions']}


def offsets_batches(port, partition):
    """The record batches of a partition of __consumer_offsets (Fetch v4)."""
    r = call(port, 1, 4, {'ReplicaId': -1, 'MaxWaitMs': 0, 'MinBytes': 0, 'MaxBytes': 1 << 20,
                          'IsolationLevel': 0, 'Topics': [{'Topic': '__consumer_offsets', 'Partitions': [
                              {'Partition': partition, 'FetchOffset': 0, 'PartitionMaxBytes': 1 << 20}]}]})
    (t,) = r['Responses']
    (p,) = t['Partitions']
    assert p['ErrorCode'] == 0, p
    return parse_batches(p['Records'])


def test_txn_offsets_pending_and_unstable(start_broker):
    b = start_broker(CONF)
    create_topic(b.bootstrap, 'tx-in', 2)
    coordinator(b.port, 'txg')
    pid, epoch = transaction(b.port, 'tx', ['txg'])

    assert txn_commit(b.port, 'txg', pid, epoch, {('tx-in', 0): 17}) == [('tx-in', [(0, 0)])]

    # one transactional batch of the producer in the group's partition
    batches = [x for x in offsets_batches(b.port, partition_for('txg')) if x['ProducerId'] == pid]
    assert len(batches) == 1, batches
    (x,) = batches
    assert x['Attributes'] & 0x30 == 0x10, x          # transactional, not control
    assert (x['ProducerEpoch'], x['BaseSequence'], x['RecordCount']) == (epoch, 0, 1), x

    def check_pending(port):
        assert fetch(port, 'txg', 'tx-in', [0, 1]) == {0: (-1, -1, '', 0), 1: (-1, -1, '', 0)}
        for v in (7, 8):
            assert fetch(port, 'txg', 'tx-in', [0, 1], v=v, stable=True) == {
                0: (-1, -1, '', UNSTABLE_OFFSET_COMMIT), 1: (-1, -1, '', 0)}

    check_pending(b.port)
    # a plain commit is visible; the partition stays unstable
    r = call(b.port, 8, 7, {'GroupId': 'txg', 'GenerationIdOrMemberEpoch': -1, 'MemberId': '',
                            'GroupInstanceId': None, 'Topics': [{'Name': 'tx-in', 'Partitions': [
                                {'PartitionIndex': 1, 'CommittedOffset': 3, 'CommittedLeaderEpoch': -1,
                                 'CommittedMetadata': None}]}]})
    assert r['Topics'][0]['Partitions'][0]['ErrorCode'] == 0
    assert fetch(b.port, 'txg', 'tx-in', [1], v=8, stable=True) == {1: (3, -1, '', 0)}

    # replayed without a marker: still pending
    b.stop()
    b2 = start_broker(CONF, data_dir=b.data_dir)
    coordinator(b2.port, 'txg')
    assert fetch(b2.port, 'txg', 'tx-in', [0]) == {0: (-1, -1, '', 0)}
    assert fetch(b2.port, 'txg', 'tx-in', [0], v=8, stable=True) == {0: (-1, -1, '', UNSTABLE_OFFSET_COMMIT)}
    assert fetch(b2.port, 'txg', 'tx-in', [1], v=8, stable=True) == {1: (3, -1, '', 0)}


def test_txn_offset_commit_checks(broker):
    create_topic(broker.bootstrap, 'tx-chk', 2)
    coordinator(broker.port, 'txc')
    pid, epoch = transaction(broker.port, 'tx', ['txc', 'txc-none'])
    # unknown partitions first, answered whatever the group says
    got = txn_commit(broker.port, '', pid, epoch, {('tx-chk', 0): 1, ('tx-chk', 7): 1, ('nope', 0): 1})
    assert got == [('tx-chk', [(7, UNKNOWN_TOPIC_OR_PARTITION), (0, INVALID_GROUP_ID)]),
                   ('nope', [(0, UNKNOWN_TOPIC_OR_PARTITION)])], got
    # a generation for a group that does not exist
    got = txn_commit(broker.port, 'txc-none', pid, epoch, {('tx-chk', 0): 1}, generation=4, member='m')
    assert got == [('tx-chk', [(0, ILLEGAL_GENERATION)])], got
    # every version
    for v in range(0, 5):       # v5 is transactions V2 (not served)
        got = txn_commit(broker.port, 'txc', pid, epoch, {('tx-chk', 1): 10 + v}, v=v)
        assert got == [('tx-chk', [(1, 0)])], (v, got)
    assert fetch(broker.port, 'txc', 'tx-chk', [1], v=8, stable=True) == {1: (-1, -1, '', UNSTABLE_OFFSET_COMMIT)}


def advertised(port):
    r = call(port, 18, 3, {'ClientSoftwareName': 'spool-test', 'ClientSoftwareVersion': '1'})
    return {k['ApiKey'] for k in r['ApiKeys']}


def test_txn_offsets_visible_after_commit_marker(start_broker):
    """End to end through the transaction coordinator and the marker path."""
    b = start_broker(CONF)
    assert {25, 26, 27, 28} <= advertised(b.port)
    create_topic(b.bootstrap, 'tx-e2e', 1)
    coordinator(b.port, 'txe')

    def txn_coordinator(txn_id):
        for _ in range(200):
            fc = call(b.port, 10, 4, {'KeyType': 1, 'CoordinatorKeys': [txn_id]})
            if fc['Coordinators'][0]['ErrorCode'] == 0:
                return
            time.sleep(0.05)
        raise AssertionError('no transaction coordinator')

    def begin(txn_id):
        txn_coordinator(txn_id)
        for _ in range(200):
            r = call(b.port, 22, 4, {'TransactionalId': txn_id, 'TransactionTimeoutMs': 60000,
                                     'ProducerId': -1, 'ProducerEpoch': -1})
            if r['ErrorCode'] == 0:
                return r['ProducerId'], r['ProducerEpoch']
            time.sleep(0.05)
        raise AssertionError('InitProducerId: %r' % r)

    def add_offsets(txn_id, pid, epoch):
        for _ in range(200):
            r = call(b.port, 25, 3, {'TransactionalId': txn_id, 'ProducerId': pid, 'ProducerEpoch': epoch,
                                     'GroupId': 'txe'})
            if r['ErrorCode'] == 0:
                return
            time.sleep(0.05)
        raise AssertionError('AddOffsetsToTxn: %r' % r)

    def end(txn_id, pid, epoch, commit):
        r = call(b.port, 26, 3, {'TransactionalId': txn_id, 'ProducerId': pid, 'ProducerEpoch': epoch,
                                 'Committed': commit})
        assert r['ErrorCode'] == 0, r

    def until(cond, what):
        for _ in range(200):
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError(what)

    pid, epoch = begin('t-commit')
    add_offsets('t-commit', pid, epoch)
    assert txn_commit(b.port, 'txe', pid, epoch, {('tx-e2e', 0): 55}, txn_id='t-commit') == [('tx-e2e', [(0, 0)])]
    assert fetch(b.port, 'txe', 'tx-e2e', [0]) == {0: (-1, -1, '', 0)}
    end('t-commit', pid, epoch, True)
    # the marker reaches the group coordinator once it is durable
    until(lambda: fetch(b.port, 'txe', 'tx-e2e', [0]) == {0: (55, 5, 'm', 0)}, 'the COMMIT made it visible')
    assert fetch(b.port, 'txe', 'tx-e2e', [0], v=8, stable=True) == {0: (55, 5, 'm', 0)}

    pid, epoch = begin('t-abort')
    add_offsets('t-abort', pid, epoch)
    assert txn_commit(b.port, 'txe', pid, epoch, {('tx-e2e', 0): 66}, txn_id='t-abort') == [('tx-e2e', [(0, 0)])]
    end('t-abort', pid, epoch, False)
    until(lambda: fetch(b.port, 'txe', 'tx-e2e', [0], v=8, stable=True) == {0: (55, 5, 'm', 0)},
          'the ABORT dropped it')

    # replayed with the markers
    b.stop()
    b2 = start_broker(CONF, data_dir=b.data_dir)
    coordinator(b2.port, 'txe')
    assert fetch(b2.port, 'txe', 'tx-e2e', [0], v=8, stable=True) == {0: (55, 5, 'm', 0)}
