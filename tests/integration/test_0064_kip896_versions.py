"""Versions Kafka 4.0 removed (KIP-896) that Spool still serves, because
tools in wide use send them (Burrow 1.2: ListOffsets v0; Sarama 1.22:
DescribeConfigs v0, Metadata v0; kafka-go 0.2: CreateTopics v0).  No
Kafka 4 broker answers them, so these tests check Spool against Kafka 3's
semantics, through raw frames (kafka_schema.py); test_0056 runs the old
tools themselves.
"""
import time

import kafka_wire as kw
from client_helpers import create_topic
from kafka_schema import schemas

S = schemas()

# (API key, version) these tests cover; test_0061 leaves them out of the
# comparison with Kafka 4.3, which does not serve them
VERSIONS = {(2, 0), (19, 0), (19, 1), (20, 0), (32, 0), (35, 0)}


def call(port, key, v, body):
    payload = kw.send_recv(port, S.encode_request(key, v, body, strict=True))
    _, resp = S.decode_response(key, v, payload)
    return resp


def produce(port, topic, n, start=0):
    recs = kw.record_batch([{'key': b'k', 'value': b'v%d' % i + b'.' * 200} for i in range(start, start + n)])
    r = call(port, 0, 9, {'TransactionalId': None, 'Acks': -1, 'TimeoutMs': 10000, 'TopicData': [
        {'Name': topic, 'PartitionData': [{'Index': 0, 'Records': recs}]}]})
    p = r['Responses'][0]['PartitionResponses'][0]
    assert p['ErrorCode'] == 0, p
    return p['BaseOffset']


def offsets_v0(port, topic, ts, max_num, partition=0):
    r = call(port, 2, 0, {'ReplicaId': -1, 'Topics': [{'Name': topic, 'Partitions': [
        {'PartitionIndex': partition, 'Timestamp': ts, 'MaxNumOffsets': max_num}]}]})
    p = r['Topics'][0]['Partitions'][0]
    return p['ErrorCode'], p['OldStyleOffsets']


def test_list_offsets_v0(start_broker):
    b = start_broker({'log.segment.bytes': 2000})
    create_topic(b.bootstrap, 'lo0', partitions=1)
    assert offsets_v0(b.port, 'lo0', -1, 1) == (0, [0])     # empty: the end only
    assert offsets_v0(b.port, 'lo0', -2, 1) == (0, [0])
    for i in range(6):                                        # several segments
        produce(b.port, 'lo0', 3, 3 * i)
    err, latest = offsets_v0(b.port, 'lo0', -1, 100)
    assert err == 0 and latest[0] == 18
    assert latest == sorted(latest, reverse=True) and latest[-1] == 0
    assert len(latest) >= 3                                   # the end, then segment bases
    assert offsets_v0(b.port, 'lo0', -1, 1) == (0, [18])      # what Burrow asks
    assert offsets_v0(b.port, 'lo0', -2, 1) == (0, [0])
    assert offsets_v0(b.port, 'lo0', -2, 5) == (0, [0])       # earliest: one offset
    future = int(time.time() * 1000) + 3600_000
    assert offsets_v0(b.port, 'lo0', future, 100) == (0, latest)
    assert offsets_v0(b.port, 'lo0', 1000, 100) == (0, [])    # nothing written that long ago
    assert offsets_v0(b.port, 'lo0', -1, 0) == (0, [])
    err, _ = offsets_v0(b.port, 'lo0', -1, 1, partition=3)
    assert err == 3                                           # UNKNOWN_TOPIC_OR_PARTITION
    err, _ = offsets_v0(b.port, 'nope', -1, 1)
    assert err == 3


def test_create_delete_topics_v0_v1(broker):
    def create(v, name, n, **extra):
        body = {'Topics': [{'Name': name, 'NumPartitions': n, 'ReplicationFactor': 1, 'Assignments': [],
                            'Configs': [{'Name': 'retention.ms', 'Value': '123456'}]}], 'timeoutMs': 10000}
        body.update(extra)
        return call(broker.port, 19, v, body)['Topics'][0]
    t = create(0, 'ct0', 3)
    assert (t['Name'], t['ErrorCode']) == ('ct0', 0)
    t = create(0, 'ct0', 3)
    assert t['ErrorCode'] == 36                                # TOPIC_ALREADY_EXISTS
    t = create(1, 'ct1', 2, validateOnly=True)
    assert t['ErrorCode'] == 0 and t['ErrorMessage'] is None
    t = create(1, 'bad name!', 1)
    assert t['ErrorCode'] == 17 and t['ErrorMessage']          # INVALID_TOPIC_EXCEPTION, with a message
    md = call(broker.port, 3, 0, {'Topics': []})               # v0: [] means every topic
    topics = {x['Name']: len(x['Partitions']) for x in md['Topics']}
    assert topics.get('ct0') == 3 and 'ct1' not in topics      # validate only: not created
    cfg = call(broker.port, 32, 0, {'Resources': [{'ResourceType': 2, 'ResourceName': 'ct0',
                                                   'ConfigurationKeys': ['retention.ms', 'cleanup.policy']}]})
    entries = {c['Name']: c for c in cfg['Results'][0]['Configs']}
    assert entries['retention.ms']['Value'] == '123456' and entries['retention.ms']['IsDefault'] is False
    assert entries['cleanup.policy']['Value'] == 'delete' and entries['cleanup.policy']['IsDefault'] is True
    d = call(broker.port, 20, 0, {'TopicNames': ['ct0', 'nope'], 'TimeoutMs': 10000})
    assert [(r['Name'], r['ErrorCode']) for r in d['Responses']] == [('ct0', 0), ('nope', 3)]
    md = call(broker.port, 3, 0, {'Topics': []})
    assert 'ct0' not in {x['Name'] for x in md['Topics']}


def test_describe_configs_v0_broker(broker):
    cfg = call(broker.port, 32, 0, {'Resources': [{'ResourceType': 4, 'ResourceName': '1',
                                                   'ConfigurationKeys': ['log.retention.ms', 'num.partitions']}]})
    (r,) = cfg['Results']
    assert r['ErrorCode'] == 0
    names = {c['Name']: c for c in r['Configs']}
    assert set(names) == {'log.retention.ms', 'num.partitions'}
    assert names['num.partitions']['Value'] == '1' and names['num.partitions']['IsDefault'] is True
    assert names['log.retention.ms']['ReadOnly'] is False


def test_describe_log_dirs_v0(broker):
    create_topic(broker.bootstrap, 'dirs0', partitions=2)
    produce(broker.port, 'dirs0', 2)
    r = call(broker.port, 35, 0, {'Topics': [{'Topic': 'dirs0', 'Partitions': [0, 1]}]})
    (d,) = r['Results']
    assert d['ErrorCode'] == 0 and d['LogDir'] == str(broker.data_dir)
    (t,) = d['Topics']
    sizes = {p['PartitionIndex']: p['PartitionSize'] for p in t['Partitions']}
    assert set(sizes) == {0, 1} and sizes[0] > 0 and sizes[1] == 0
