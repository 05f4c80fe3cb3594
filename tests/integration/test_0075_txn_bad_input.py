"""Bad input to the transaction coordinator over raw frames (the
schema-driven codec, kafka_schema.py), each answered with Kafka's error
code (the same answers test_0061's txn-bad-input scenario compares with
Kafka 4.3), on one connection that keeps working, and the data unharmed
afterwards (a plain produce and fetch):

  - EndTxn in Empty (INVALID_TXN_STATE), with an unknown transactional
    id or another producer id (INVALID_PRODUCER_ID_MAPPING), a stale
    epoch (PRODUCER_FENCED; INVALID_PRODUCER_EPOCH below v2), an empty
    transactional id (INVALID_REQUEST); the same for AddPartitionsToTxn;
  - InitProducerId above transaction.max.timeout.ms
    (INVALID_TRANSACTION_TIMEOUT);
  - AddPartitionsToTxn naming an unknown topic: UNKNOWN_TOPIC_OR_PARTITION,
    the rest OPERATION_NOT_ATTEMPTED, nothing added;
  - WriteTxnMarkers for a producer nobody knows: written (Kafka needs no
    producer state for a marker), the partition still readable;
  - a transactional batch produced before AddPartitionsToTxn (KIP-890:
    refused, INVALID_TXN_STATE at v9) and one with a null transactional id
    (TRANSACTIONAL_ID_AUTHORIZATION_FAILED): nothing appended.
"""
import socket
import time

import kafka_wire as kw
from client_helpers import create_topic
from kafka_schema import parse_batches, schemas

S = schemas()
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REQUEST = 42
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TRANSACTION_TIMEOUT = 50
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
OPERATION_NOT_ATTEMPTED = 55
PRODUCER_FENCED = 90
RETRIABLE = (14, 15, 16, 51)
TOPIC = 'txbad'


def call(sock, key, v, body):
    payload = kw.send_recv(sock, S.encode_request(key, v, body, strict=False), timeout=15.0)
    _, resp = S.decode_response(key, v, payload)
    return resp


def until(fn, ok, what):
    for _ in range(200):
        r = fn()
        if ok(r):
            return r
        time.sleep(0.05)
    raise AssertionError('%s: %r' % (what, r))


def init(sock, txn, timeout=60000, pid=-1, epoch=-1, v=4):
    return call(sock, 22, v, {'TransactionalId': txn, 'TransactionTimeoutMs': timeout,
                              'ProducerId': pid, 'ProducerEpoch': epoch})


def end(sock, txn, pid, epoch, commit, v=3):
    return call(sock, 26, v, {'TransactionalId': txn, 'ProducerId': pid, 'ProducerEpoch': epoch,
                              'Committed': commit})['ErrorCode']


def add(sock, txn, pid, epoch, parts, v=3):
    """parts: [(topic, partition)] -> {(topic, partition): error}"""
    topics = {}
    for t, p in parts:
        topics.setdefault(t, []).append(p)
    r = call(sock, 24, v, {'V3AndBelowTransactionalId': txn, 'V3AndBelowProducerId': pid,
                           'V3AndBelowProducerEpoch': epoch,
                           'V3AndBelowTopics': [{'Name': t, 'Partitions': ps} for t, ps in topics.items()]})
    return {(t['Name'], p['PartitionIndex']): p['PartitionErrorCode']
            for t in r['ResultsByTopicV3AndBelow'] for p in t['ResultsByPartition']}


def produce(sock, partition, batch, txn=None, v=9):
    r = call(sock, 0, v, {'TransactionalId': txn, 'Acks': -1, 'TimeoutMs': 10000,
                          'TopicData': [{'Name': TOPIC, 'PartitionData': [{'Index': partition, 'Records': batch}]}]})
    p = r['Responses'][0]['PartitionResponses'][0]
    return p['ErrorCode'], p['BaseOffset']


def records(sock, partition, offset=0):
    r = call(sock, 1, 12, {'ReplicaId': -1, 'MaxWaitMs': 0, 'MinBytes': 1, 'MaxBytes': 1 << 20,
                           'IsolationLevel': 0, 'SessionId': 0, 'SessionEpoch': -1,
                           'Topics': [{'Topic': TOPIC, 'Partitions': [
                               {'Partition': partition, 'FetchOffset': offset, 'LogStartOffset': -1,
                                'PartitionMaxBytes': 1 << 20, 'CurrentLeaderEpoch': -1, 'LastFetchedEpoch': -1}]}],
                           'ForgottenTopicsData': [], 'RackId': ''})
    p = r['Responses'][0]['Partitions'][0]
    assert p['ErrorCode'] == 0, p
    return p['HighWatermark'], parse_batches(p['Records'] or b'')


def batch(n, pid=-1, epoch=-1, seq=-1, transactional=False):
    recs = [{'key': b'k%d' % i, 'value': b'v%d' % i} for i in range(n)]
    return kw.record_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                           attributes=0x10 if transactional else 0)


def test_txn_bad_input(broker):
    create_topic(broker.bootstrap, TOPIC, 2)
    sock = kw.connect(broker.port)
    sock.settimeout(15)
    until(lambda: call(sock, 10, 4, {'KeyType': 1, 'CoordinatorKeys': ['tb']})['Coordinators'][0]['ErrorCode'],
          lambda e: e == 0, 'FindCoordinator(transaction)')
    r = until(lambda: init(sock, 'tb'), lambda r: r['ErrorCode'] not in RETRIABLE, 'InitProducerId')
    assert r['ErrorCode'] == 0
    r = init(sock, 'tb')
    assert r['ErrorCode'] == 0
    pid, epoch = r['ProducerId'], r['ProducerEpoch']
    assert epoch == 1

    # a plain batch to protect
    assert produce(sock, 1, batch(3)) == (0, 0)

    # InitProducerId
    r = init(sock, 'tb', timeout=900001)       # transaction.max.timeout.ms is 900000
    assert (r['ErrorCode'], r['ProducerId'], r['ProducerEpoch']) == (INVALID_TRANSACTION_TIMEOUT, -1, -1)
    assert init(sock, '')['ErrorCode'] == INVALID_REQUEST
    assert init(sock, 'tb', pid=pid, epoch=0)['ErrorCode'] == PRODUCER_FENCED        # KIP-360, stale
    assert init(sock, 'tb', pid=pid, epoch=0, v=3)['ErrorCode'] == INVALID_PRODUCER_EPOCH

    # EndTxn
    assert end(sock, 'tb', pid, epoch, True) == INVALID_TXN_STATE          # Empty
    assert end(sock, 'tb', pid, epoch, False) == INVALID_TXN_STATE
    assert end(sock, 'nope', pid, epoch, True) == INVALID_PRODUCER_ID_MAPPING
    assert end(sock, 'tb', pid + 1, epoch, True) == INVALID_PRODUCER_ID_MAPPING
    assert end(sock, 'tb', pid, epoch - 1, True) == PRODUCER_FENCED
    assert end(sock, 'tb', pid, epoch - 1, True, v=1) == INVALID_PRODUCER_EPOCH
    assert end(sock, '', pid, epoch, True) == INVALID_REQUEST

    # AddPartitionsToTxn
    assert add(sock, 'nope', pid, epoch, [(TOPIC, 0)]) == {(TOPIC, 0): INVALID_PRODUCER_ID_MAPPING}
    assert add(sock, 'tb', pid + 1, epoch, [(TOPIC, 0)]) == {(TOPIC, 0): INVALID_PRODUCER_ID_MAPPING}
    assert add(sock, 'tb', pid, epoch - 1, [(TOPIC, 0)]) == {(TOPIC, 0): PRODUCER_FENCED}
    assert add(sock, 'tb', pid, epoch - 1, [(TOPIC, 0)], v=1) == {(TOPIC, 0): INVALID_PRODUCER_EPOCH}
    assert add(sock, '', pid, epoch, [(TOPIC, 0)]) == {(TOPIC, 0): INVALID_REQUEST}
    assert add(sock, 'tb', pid, epoch, [(TOPIC, 0), ('no-such-topic', 0), (TOPIC, 7)]) == {
        (TOPIC, 0): OPERATION_NOT_ATTEMPTED, ('no-such-topic', 0): UNKNOWN_TOPIC_OR_PARTITION,
        (TOPIC, 7): UNKNOWN_TOPIC_OR_PARTITION}
    # ...and nothing was added: still Empty
    assert end(sock, 'tb', pid, epoch, True) == INVALID_TXN_STATE

    # transactional batches the coordinator did not confirm: refused
    err, _ = produce(sock, 0, batch(2, pid, epoch, 0, transactional=True), txn='tb')
    assert err == INVALID_TXN_STATE
    err, _ = produce(sock, 0, batch(2, pid, epoch, 0, transactional=True), txn=None)
    assert err == TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    assert records(sock, 0) == (0, [])

    # WriteTxnMarkers for a producer nobody knows: written
    r = call(sock, 27, 1, {'Markers': [{'ProducerId': 987654, 'ProducerEpoch': 3, 'TransactionResult': False,
                                        'Topics': [{'Name': TOPIC, 'PartitionIndexes': [1]}],
                                        'CoordinatorEpoch': 0}]})
    assert r['Markers'][0]['Topics'][0]['Partitions'][0]['ErrorCode'] == 0

    # the data is unharmed and the connection still serves
    assert produce(sock, 1, batch(2)) == (0, 4)
    hw, batches = records(sock, 1)
    assert hw == 6
    data = [b for b in batches if not b['Attributes'] & 0x20]
    assert [b['BaseOffset'] for b in data] == [0, 4] and sum(b['RecordCount'] for b in data) == 5
    assert [b['ProducerId'] for b in batches if b['Attributes'] & 0x20] == [987654]     # the marker

    # and a real transaction still works
    assert add(sock, 'tb', pid, epoch, [(TOPIC, 0)]) == {(TOPIC, 0): 0}
    assert produce(sock, 0, batch(2, pid, epoch, 0, transactional=True), txn='tb') == (0, 0)
    assert end(sock, 'tb', pid, epoch, True) == 0
    until(lambda: end(sock, 'tb', pid, epoch, True), lambda e: e != 51, 'the commit completed')
    assert end(sock, 'tb', pid, epoch, False) == INVALID_TXN_STATE          # CompleteCommit
    sock.close()
