"""The versions Kafka 4.1-4.3 added, through raw frames (the schema-driven
codec, kafka_schema.py), each new field checked on Spool alone; the
differential tests (test_0061) compare the same versions with Kafka 4.3.

  Produce v13        topics by id (KIP-516): UNKNOWN_TOPIC_ID for an id
                     the metadata does not know, never auto-created
  Fetch v18          the replica's HighWatermark (tagged, KIP-1166) is
                     taken and ignored for consumers
  Metadata v13       a top-level ErrorCode (KIP-1102), 0
  ListOffsets v11    -6, earliest pending upload (KIP-1023): no offset
                     without tiered storage
  DescribeCluster v2 IncludeFencedBrokers, IsFenced (KIP-1073)
  DescribeLogDirs v5 IsCordoned (KIP-1066), false
  OffsetCommit v10,  topics by id; UNKNOWN_TOPIC_ID for an unknown one
  OffsetFetch v10
"""
import uuid

import kafka_wire as kw
from client_helpers import create_topic
from kafka_schema import parse_batches, schemas

S = schemas()
UNKNOWN_TOPIC_ID = 100


def call(port, key, v, body):
    payload = kw.send_recv(port, S.encode_request(key, v, body, strict=True))
    _, resp = S.decode_response(key, v, payload)
    return resp


def topic_id(port, name):
    md = call(port, 3, 13, {'Topics': [{'TopicId': None, 'Name': name}], 'AllowAutoTopicCreation': False,
                            'IncludeTopicAuthorizedOperations': False})
    assert md['ErrorCode'] == 0
    (t,) = md['Topics']
    assert t['ErrorCode'] == 0, t
    return t['TopicId']


def records(n, start=0):
    return kw.record_batch([{'key': b'k%d' % i, 'value': b'v%d' % i} for i in range(start, start + n)])


def produce_by_id(port, tid, partition, recs, v=13):
    return call(port, 0, v, {'TransactionalId': None, 'Acks': -1, 'TimeoutMs': 10000,
                             'TopicData': [{'TopicId': tid, 'PartitionData': [
                                 {'Index': partition, 'Records': recs}]}]})


def test_produce_v13_by_topic_id(broker):
    create_topic(broker.bootstrap, 'by-id', partitions=2)
    tid = topic_id(broker.port, 'by-id')
    resp = produce_by_id(broker.port, tid, 1, records(3))
    (t,) = resp['Responses']
    assert t['TopicId'] == tid
    (p,) = t['PartitionResponses']
    assert (p['Index'], p['ErrorCode'], p['BaseOffset']) == (1, 0, 0)
    resp = produce_by_id(broker.port, tid, 1, records(2, 3))
    assert resp['Responses'][0]['PartitionResponses'][0]['BaseOffset'] == 3
    # read back by id with Fetch v18, the replica's high watermark field set
    f = call(broker.port, 1, 18, {
        'MaxWaitMs': 0, 'MinBytes': 1, 'MaxBytes': 1 << 20, 'IsolationLevel': 0, 'SessionId': 0,
        'SessionEpoch': -1, 'RackId': '', 'ForgottenTopicsData': [],
        'Topics': [{'TopicId': tid, 'Partitions': [{
            'Partition': 1, 'CurrentLeaderEpoch': -1, 'FetchOffset': 0, 'LastFetchedEpoch': -1,
            'LogStartOffset': -1, 'PartitionMaxBytes': 1 << 20, 'HighWatermark': 2}]}]})
    (ft,) = f['Responses']
    assert ft['TopicId'] == tid
    (fp,) = ft['Partitions']
    assert fp['ErrorCode'] == 0 and fp['HighWatermark'] == 5
    got = [(b['BaseOffset'], b['RecordCount']) for b in parse_batches(fp['Records'])]
    assert got == [(0, 3), (3, 2)]
    # v12 still names topics
    resp = call(broker.port, 0, 12, {'TransactionalId': None, 'Acks': 1, 'TimeoutMs': 10000,
                                     'TopicData': [{'Name': 'by-id', 'PartitionData': [
                                         {'Index': 0, 'Records': records(1)}]}]})
    assert resp['Responses'][0]['Name'] == 'by-id'
    assert resp['Responses'][0]['PartitionResponses'][0]['ErrorCode'] == 0


def test_produce_v13_unknown_topic_id(broker):
    unknown = str(uuid.uuid4())
    resp = produce_by_id(broker.port, unknown, 0, records(1))
    (t,) = resp['Responses']
    assert t['TopicId'] == unknown
    (p,) = t['PartitionResponses']
    assert p['ErrorCode'] == UNKNOWN_TOPIC_ID and p['BaseOffset'] == -1
    # nothing was created for it
    md = call(broker.port, 3, 13, {'Topics': None, 'AllowAutoTopicCreation': False,
                                   'IncludeTopicAuthorizedOperations': False})
    assert all(t['TopicId'] != unknown for t in md['Topics'])


def test_list_offsets_v11_earliest_pending_upload(broker):
    create_topic(broker.bootstrap, 'lo11', partitions=1)
    produce_by_id(broker.port, topic_id(broker.port, 'lo11'), 0, records(4))

    def ask(ts, v=11):
        r = call(broker.port, 2, v, {'ReplicaId': -1, 'IsolationLevel': 0, 'Topics': [
            {'Name': 'lo11', 'Partitions': [{'PartitionIndex': 0, 'CurrentLeaderEpoch': -1,
                                             'Timestamp': ts}]}]})
        return r['Topics'][0]['Partitions'][0]
    p = ask(-6)
    assert (p['ErrorCode'], p['Offset'], p['Timestamp'], p['LeaderEpoch']) == (0, -1, -1, -1)
    assert ask(-1)['Offset'] == 4 and ask(-2)['Offset'] == 0
    assert ask(-6, v=10)['ErrorCode'] == 35      # UNSUPPORTED_VERSION below v11


def test_metadata_v13_top_level_error(broker):
    create_topic(broker.bootstrap, 'md13', partitions=2)
    md = call(broker.port, 3, 13, {'Topics': [{'TopicId': None, 'Name': 'md13'}],
                                   'AllowAutoTopicCreation': False,
                                   'IncludeTopicAuthorizedOperations': False})
    assert md['ErrorCode'] == 0
    assert [p['PartitionIndex'] for p in md['Topics'][0]['Partitions']] == [0, 1]


def test_describe_cluster_v2_and_log_dirs_v5(broker):
    dc = call(broker.port, 60, 2, {'IncludeClusterAuthorizedOperations': False, 'EndpointType': 1,
                                   'IncludeFencedBrokers': True})
    assert dc['ErrorCode'] == 0
    assert [(b['BrokerId'], b['IsFenced']) for b in dc['Brokers']] == [(1, False)]
    create_topic(broker.bootstrap, 'dirs5', partitions=1)
    dl = call(broker.port, 35, 5, {'Topics': None})
    assert dl['ErrorCode'] == 0
    (d,) = dl['Results']
    assert d['ErrorCode'] == 0 and d['IsCordoned'] is False
    assert d['TotalBytes'] > 0 and 0 <= d['UsableBytes'] <= d['TotalBytes']
    assert any(t['Name'] == 'dirs5' for t in d['Topics'])


def test_offset_commit_fetch_v10_by_topic_id(broker):
    """OffsetCommit and OffsetFetch v10 name topics by id (KIP-848's
    follow-up): a simple (generation -1) commit by id is fetched back by id,
    and by v9 by name; an unknown id is UNKNOWN_TOPIC_ID."""
    create_topic(broker.bootstrap, 'oc10', partitions=2)
    tid = topic_id(broker.port, 'oc10')
    unknown = str(uuid.uuid4())
    call(broker.port, 10, 6, {'CoordinatorKeys': ['g10'], 'KeyType': 0})   # creates __consumer_offsets
    for _ in range(100):
        fc = call(broker.port, 10, 6, {'CoordinatorKeys': ['g10'], 'KeyType': 0})
        if fc['Coordinators'][0]['ErrorCode'] == 0:
            break
    r = call(broker.port, 8, 10, {'GroupId': 'g10', 'GenerationIdOrMemberEpoch': -1, 'MemberId': '',
                                  'GroupInstanceId': None, 'Topics': [
                                      {'TopicId': tid, 'Partitions': [
                                          {'PartitionIndex': 1, 'CommittedOffset': 42, 'CommittedLeaderEpoch': -1,
                                           'CommittedMetadata': 'm'}]},
                                      {'TopicId': unknown, 'Partitions': [
                                          {'PartitionIndex': 0, 'CommittedOffset': 1, 'CommittedLeaderEpoch': -1,
                                           'CommittedMetadata': None}]}]})
    assert [(t['TopicId'], [(p['PartitionIndex'], p['ErrorCode']) for p in t['Partitions']])
            for t in r['Topics']] == [(tid, [(1, 0)]), (unknown, [(0, UNKNOWN_TOPIC_ID)])]
    f = call(broker.port, 9, 10, {'Groups': [{'GroupId': 'g10', 'MemberId': None, 'MemberEpoch': -1, 'Topics': [
        {'TopicId': tid, 'PartitionIndexes': [0, 1]}, {'TopicId': unknown, 'PartitionIndexes': [0]}]}],
        'RequireStable': False})
    (g,) = f['Groups']
    got = [(t['TopicId'], [(p['PartitionIndex'], p['CommittedOffset'], p['ErrorCode']) for p in t['Partitions']])
           for t in g['Topics']]
    assert got == [(tid, [(0, -1, 0), (1, 42, 0)]), (unknown, [(0, -1, UNKNOWN_TOPIC_ID)])]
    # every topic of the group, by id
    f = call(broker.port, 9, 10, {'Groups': [{'GroupId': 'g10', 'MemberId': None, 'MemberEpoch': -1,
                                              'Topics': None}], 'RequireStable': False})
    assert [(t['TopicId'], [p['CommittedOffset'] for p in t['Partitions']]) for t in f['Groups'][0]['Topics']] == \
        [(tid, [42])]
    # the same offset through v9, by name
    f = call(broker.port, 9, 9, {'Groups': [{'GroupId': 'g10', 'MemberId': None, 'MemberEpoch': -1, 'Topics': [
        {'Name': 'oc10', 'PartitionIndexes': [1]}]}], 'RequireStable': False})
    assert f['Groups'][0]['Topics'][0]['Partitions'][0]['CommittedOffset'] == 42
