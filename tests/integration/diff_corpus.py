"""The request corpus of the differential tests, built from the schemas:
for every API Spool serves (src/broker/api.c), scenarios that send a
logical request at every version the schema has in Spool's range (the
encoder keeps of each body what the version has), plus the error paths
(unknown topics and partitions, bad offsets, wrong group generations and
members, oversized and corrupt records, invalid configs and counts,
versions one side does not serve).

scenarios(full) -> [Scenario]; full=False is the short form make test
runs: the error paths at a few versions each.  Recorded client sessions
are in kafka_record.py.
"""

import struct
import time

import kafka_wire as kw
from kafka_diff import SPOOL_RANGES, Scenario, Step
from kafka_schema import schemas

S = schemas()

# Record timestamps: fixed for the run, so both brokers hold the same bytes,
# and an hour old: older ones would meet Kafka's time retention (7 days),
# which also deletes an expired active segment, in the middle of a run
TS = (int(time.time()) - 3600) * 1000

# Spool's versions of each API it serves (src/broker/api.c)
SPOOL = SPOOL_RANGES


def _kafka_min():
    """The lowest version Kafka 4.3 serves of each API (message/, not the
    legacy copies): below it Kafka closes the connection, so the versions
    only Spool serves (KIP-896's) are not compared but tested on Spool
    alone (test_0064)."""
    import json
    import re
    from kafka_schema import SCHEMA_DIR
    out = {}
    for p in (SCHEMA_DIR / 'message').glob('*Request.json'):
        j = json.loads(re.sub(r'//.*', '', p.read_text()))
        out[j['apiKey']] = int(j['validVersions'].split('-')[0])
    return out


KAFKA_MIN = _kafka_min()


def served(api, lo=None, hi=None):
    """Spool's versions of api, cut to [lo, hi]."""
    a, b = SPOOL[api]
    return list(range(max(a, lo if lo is not None else a), min(b, hi if hi is not None else b) + 1))


# ---------------------------------------------------------------- records


def batch(n, start=0, pad=0, codec=kw.CODEC_NONE, **kw_):
    recs = [{'key': b'k%d' % i, 'value': b'v%d' % i + b'.' * pad, 'timestamp': TS + i,
             'headers': [(b'h', b'%d' % i)] if i % 2 else []} for i in range(start, start + n)]
    return kw.record_batch(recs, codec=codec, **kw_)


def corrupt(b):
    b = bytearray(b)
    b[-1] ^= 0xff          # the CRC no longer matches
    return bytes(b)


def produce_body(parts, acks=-1, txn=None):
    """parts: [(topic template, partition, records)]"""
    topics = {}
    for t, p, recs in parts:
        topics.setdefault(t, []).append({'Index': p, 'Records': recs})
    return {'TransactionalId': txn, 'Acks': acks, 'TimeoutMs': 10000,
            'TopicData': [{'Name': t, 'TopicId': '{id:%s}' % t.strip('{}'), 'PartitionData': ps}
                          for t, ps in topics.items()]}


def fetch_body(parts, max_wait=0, isolation=0, session=(0, -1), max_bytes=1 << 20,
               part_max=1 << 20, epoch=-1):
    """parts: [(topic template, partition, offset)]"""
    topics = {}
    for t, p, off in parts:
        topics.setdefault(t, []).append({'Partition': p, 'CurrentLeaderEpoch': epoch,
                                         'FetchOffset': off, 'LastFetchedEpoch': -1,
                                         'LogStartOffset': -1, 'PartitionMaxBytes': part_max})
    return {'ReplicaId': -1, 'MaxWaitMs': max_wait, 'MinBytes': 1, 'MaxBytes': max_bytes,
            'IsolationLevel': isolation, 'SessionId': session[0], 'SessionEpoch': session[1],
            'Topics': [{'Topic': t, 'TopicId': '{id:%s}' % t.strip('{}'), 'Partitions': ps}
                       for t, ps in topics.items()],
            'ForgottenTopicsData': [], 'RackId': ''}


def list_offsets_body(parts, isolation=0, epoch=-1):
    topics = {}
    for t, p, ts in parts:
        topics.setdefault(t, []).append({'PartitionIndex': p, 'CurrentLeaderEpoch': epoch,
                                         'Timestamp': ts, 'MaxNumOffsets': 1})
    return {'ReplicaId': -1, 'IsolationLevel': isolation, 'TimeoutMs': 5000,
            'Topics': [{'Name': t, 'Partitions': ps} for t, ps in topics.items()]}


def metadata_body(topics, auto=False, v=12):
    if topics is None:
        return {'Topics': None, 'AllowAutoTopicCreation': auto}
    return {'Topics': [{'Name': t, 'TopicId': '00000000-0000-0000-0000-000000000000'} for t in topics],
            'AllowAutoTopicCreation': auto, 'IncludeTopicAuthorizedOperations': False}


# ---------------------------------------------------------------- data APIs


def sc_produce(full):
    """Produce at every version Kafka 4 serves: good batches (acks -1 and 1, gzip)."""
    steps = []
    vs = served(0, 3) if full else [3, 9, 11, 13]
    n = 0
    for v in vs:
        steps.append(Step(0, v, produce_body([('{t}', 0, batch(3, n)), ('{t}', 1, batch(2, n))]), label='acks=-1'))
        n += 3
        if full:
            steps.append(Step(0, v, produce_body([('{t}', 1, batch(1, n, codec=kw.CODEC_GZIP))], acks=1),
                              label='acks=1 gzip'))
            n += 1
    steps.append(Step(1, 12, fetch_body([('{t}', 0, 0), ('{t}', 1, 0)]), label='what was written'))
    return [Scenario('produce', steps, topics={'t': 2})]


def sc_produce_acks0(full):
    """acks=0: no answer; a failed one closes the connection (Kafka), so
    that the producer notices and refreshes its metadata."""
    steps = []
    for v in ([3, 7, 9, 11] if full else [9]):
        steps += [
            Step(0, v, produce_body([('{t}', 0, batch(2))], acks=0), conn='ok%d' % v, no_response=True,
                 label='acks=0'),
            Step(3, 1, metadata_body(['{t}']), conn='ok%d' % v, label='the same connection after it'),
            Step(0, v, produce_body([('{t}', 5, batch(2))], acks=0), conn='bad%d' % v, no_response=True,
                 label='acks=0, unknown partition'),
            Step(3, 1, metadata_body(['{t}']), conn='bad%d' % v, label='the same connection after it',
                 timeout=5),
            Step(0, v, produce_body([('{t}', 0, corrupt(batch(2)))], acks=0), conn='crc%d' % v,
                 no_response=True, label='acks=0, corrupt batch'),
            Step(3, 1, metadata_body(['{t}']), conn='crc%d' % v, label='the same connection after it',
                 timeout=5),
        ]
    steps.append(Step(2, 6, list_offsets_body([('{t}', 0, -1)]), label='what was written'))
    return [Scenario('produce-acks0', steps, topics={'t': 1})]


def sc_produce_errors(full):
    vs = served(0, 3) if full else [3, 9, 11, 13]
    steps = []
    for v in vs:
        steps += [
            Step(0, v, produce_body([('{u}', 0, batch(1))]), label='unknown topic'),
            Step(0, v, produce_body([('{t}', 7, batch(1))]), label='unknown partition'),
            Step(0, v, produce_body([('{small}', 0, batch(1, pad=2000))]), label='record over max.message.bytes'),
            Step(0, v, produce_body([('{t}', 0, corrupt(batch(2)))]), label='corrupt CRC'),
            Step(0, v, produce_body([('{t}', 0, batch(1))], acks=2), label='acks=2'),
            Step(0, v, produce_body([('{t}', 0, batch(1, base_offset=5))]), label='base offset 5'),
            Step(0, v, produce_body([('{t}', 0, batch(2, record_count=3))]), label='record count wrong'),
            Step(0, v, produce_body([('{t}', 0, batch(1))], txn='txn-x'), label='transactional id'),
            Step(0, v, produce_body([('{t}', 0, batch(1, magic=1))]), label='magic 1'),
            Step(0, v, produce_body([('{old}', 0, batch(1))]), label='timestamp far in the past'),
            Step(0, v, produce_body([('{c}', 0, batch(1))]), label='no key on a compacted topic'),
            Step(0, v, produce_body([('__consumer_offsets', 0, batch(1))]), label='internal topic'),
        ]
        if v >= 13:     # topics by id (KIP-516)
            steps.append(Step(0, v, {'TransactionalId': None, 'Acks': -1, 'TimeoutMs': 10000, 'TopicData': [
                {'Name': None, 'TopicId': '11111111-2222-3333-4444-555555555555',
                 'PartitionData': [{'Index': 0, 'Records': batch(1)}]}]}, label='unknown topic id'))
        if full or v == 9:
            # Kafka 4.3 never answers this one (a NullPointerException in its own
            # error path, KafkaApis.handle): a short wait, on a connection of its own
            steps.append(Step(0, v, produce_body([('{t}', 0, None)]), label='null records', timeout=3,
                              conn='null%d' % v))
    # Produce v0-2: advertised by both (KAFKA-18659), refused by both, each its own way
    steps += [Step(0, v, produce_body([('{t}', 0, batch(1))]), label='v0-2: refused', conn='old%d' % v)
              for v in (served(0, None, 2) if full else [2])]
    return [Scenario('produce-errors', steps, topics={'t': 1, 'small': 1, 'c': 1, 'old': 1, 'u': 0},
                     configs={'small': {'max.message.bytes': 1000}, 'c': {'cleanup.policy': 'compact'},
                              'old': {'message.timestamp.before.max.ms': 3600000}})]


def sc_idempotent(full):
    """Idempotent batches (a producer id, epoch and sequence; no
    InitProducerId needed for a plain produce): retries of recent batches
    answered with their first offsets, a sequence gap, a new epoch not at
    0, a stale epoch; then DescribeProducers and what the log holds."""
    pid = 424242

    def ib(n, start, seq, epoch=0):
        return batch(n, start, producer_id=pid, producer_epoch=epoch, base_sequence=seq)

    vs = served(0, 3) if full else [9, 13]
    steps = []
    for i, v in enumerate(vs):
        t = '{t}'
        p = i % 2
        steps += [
            Step(0, v, produce_body([(t, p, ib(3, 0, 0, epoch=2 * i))]), label='first batch'),
            Step(0, v, produce_body([(t, p, ib(3, 0, 0, epoch=2 * i))]), label='its retry'),
            Step(0, v, produce_body([(t, p, ib(2, 3, 3, epoch=2 * i))]), label='next batch'),
            Step(0, v, produce_body([(t, p, ib(3, 0, 0, epoch=2 * i))]), label='retry of the one before'),
            Step(0, v, produce_body([(t, p, ib(1, 9, 9, epoch=2 * i))]), label='sequence gap'),
            Step(0, v, produce_body([(t, p, ib(1, 5, 5, epoch=2 * i + 1))]), label='new epoch not at 0'),
            Step(0, v, produce_body([(t, p, ib(2, 5, 0, epoch=2 * i + 1))]), label='new epoch at 0'),
            Step(0, v, produce_body([(t, p, ib(1, 7, 5, epoch=2 * i))]), label='stale epoch'),
            Step(0, v, produce_body([(t, p, ib(2, 5, 0, epoch=2 * i + 1))], acks=1), label='retry, acks=1'),
        ]
    steps += [
        Step(61, 0, {'Topics': [{'Name': '{t}', 'PartitionIndexes': [0, 1, 2, 9]},
                                {'Name': '{u}', 'PartitionIndexes': [0]}]}, label='describe producers'),
        Step(1, 12, fetch_body([('{t}', 0, 0), ('{t}', 1, 0)]), label='no second copies'),
    ]
    return [Scenario('idempotent', steps, topics={'t': 3, 'u': 0})]


def wtm_body(markers):
    """markers: [(producer id, epoch, commit, coordinator epoch, [(topic template, [partitions])])]"""
    return {'Markers': [{'ProducerId': pid, 'ProducerEpoch': ep, 'TransactionResult': commit,
                         'Topics': [{'Name': t, 'PartitionIndexes': ps} for t, ps in topics],
                         'CoordinatorEpoch': ce, 'TransactionVersion': 0}
                        for pid, ep, commit, ce, topics in markers]}


def sc_txn_markers(full):
    """WriteTxnMarkers sent raw, as a transaction coordinator does (no
    authorizer: Kafka serves CLUSTER_ACTION to anyone): markers after
    idempotent batches (no open transaction: written, nothing aborted), an
    unknown topic and partition, a stale coordinator epoch, a stale producer
    epoch; then read_committed and read_uncommitted Fetch (the LSO, the
    aborted list: empty, or null) and ListOffsets at both isolation levels.
    Fetches start after the markers: a marker's timestamp is each broker's
    own clock.  Transactional batches need Produce with a transactional id
    (Kafka 4.3 verifies them with its coordinator, KIP-890): a scenario
    with aborted transactions waits until Spool serves InitProducerId with
    a transactional id and AddPartitionsToTxn."""
    pid = 434343

    def ib(n, start, seq, epoch=0):
        return batch(n, start, producer_id=pid, producer_epoch=epoch, base_sequence=seq)

    steps = [
        Step(0, 9, produce_body([('{t}', 0, ib(3, 0, 0, epoch=1))]), label='idempotent batch'),
        Step(27, 1, wtm_body([(pid, 1, False, 3, [('{t}', [0])])]), label='abort, nothing open'),
        Step(27, 2, wtm_body([(pid, 1, True, 3, [('{t}', [0])])]), label='commit, nothing open'),
        Step(27, 1, wtm_body([(pid, 1, True, 2, [('{t}', [0])])]), label='stale coordinator epoch'),
        Step(27, 2, wtm_body([(pid, 0, False, 3, [('{t}', [0])])]), label='stale producer epoch'),
        Step(27, 1, wtm_body([(pid, 1, False, 3, [('{t}', [7])])]), label='unknown partition'),
        Step(27, 2, wtm_body([(pid, 1, False, 3, [('{u}', [0])])]), label='unknown topic'),
        Step(27, 1, wtm_body([]), label='no markers'),
        Step(0, 9, produce_body([('{t}', 0, ib(2, 5, 3, epoch=1))]), label='after the markers'),
    ]
    for v in ([4, 7, 11, 12, 16] if full else [4, 12, 16]):
        steps += [
            Step(1, v, fetch_body([('{t}', 0, 5)], isolation=1), label='read_committed'),
            Step(1, v, fetch_body([('{t}', 0, 5)], isolation=0), label='read_uncommitted'),
            Step(1, v, fetch_body([('{t}', 0, 7)], isolation=1), label='read_committed at the end'),
            Step(1, v, fetch_body([('{t}', 0, 99)], isolation=1), label='read_committed out of range'),
        ]
    for v in ([2, 5, 8, 11] if full else [2, 11]):
        steps += [Step(2, v, list_offsets_body([('{t}', 0, -1), ('{t}', 0, TS + 1)], isolation=iso),
                       label='isolation %d' % iso) for iso in (0, 1)]
    return [Scenario('txn-markers', steps, topics={'t': 1, 'u': 0})]


def sc_fetch(full):
    """Fetch at every version from a topic holding the same batches on both."""
    setup = [Step(0, 9, produce_body([('{t}', 0, batch(3, 0)), ('{t}', 1, batch(2, 0))]), compare=False),
             Step(0, 9, produce_body([('{t}', 0, batch(4, 3, codec=kw.CODEC_GZIP))]), compare=False)]
    steps = list(setup)
    vs = served(1, KAFKA_MIN[1]) if full else [4, 12, 13, 17, 18]
    for v in vs:
        steps += [
            Step(1, v, fetch_body([('{t}', 0, 0), ('{t}', 1, 0)]), label='from 0'),
            Step(1, v, fetch_body([('{t}', 0, 4)]), label='from the middle of a batch'),
            Step(1, v, fetch_body([('{t}', 0, 7), ('{t}', 1, 2)]), label='at the end'),
            Step(1, v, fetch_body([('{t}', 0, 0)], part_max=10), label='partition max 10 bytes'),
            Step(1, v, fetch_body([('{t}', 0, 0), ('{t}', 1, 0)], max_bytes=10), label='max bytes 10'),
            Step(1, v, fetch_body([('{t}', 0, 100)]), label='offset out of range'),
            Step(1, v, fetch_body([('{t}', 0, -5)]), label='negative offset'),
            Step(1, v, fetch_body([('{t}', 9, 0)]), label='unknown partition'),
            Step(1, v, fetch_body([('{u}', 0, 0)]), label='unknown topic'),
            Step(1, v, fetch_body([('{t}', 0, 0)], isolation=1), label='read committed'),
            Step(1, v, fetch_body([('{t}', 1, 2)], max_wait=50), label='long poll, nothing comes'),
        ]
        if v >= 9:
            steps.append(Step(1, v, fetch_body([('{t}', 0, 0)], epoch=5), label='leader epoch from the future'))
        if v >= 7:
            steps.append(Step(1, v, fetch_body([('{t}', 0, 0)], session=(0, 0)), label='new fetch session'))
            steps.append(Step(1, v, fetch_body([('{t}', 0, 0)], session=(12345, 1)), label='unknown fetch session'))
    return [Scenario('fetch', steps, topics={'t': 2, 'u': 0})]


def sc_list_offsets(full):
    steps = [Step(0, 9, produce_body([('{t}', 0, batch(3, 0))]), compare=False),
             Step(0, 9, produce_body([('{t}', 0, batch(2, 3))]), compare=False)]
    vs = served(2, KAFKA_MIN[2]) if full else [1, 6, 10, 11]
    for v in vs:
        steps += [
            Step(2, v, list_offsets_body([('{t}', 0, -2), ('{t}', 1, -2)]), label='earliest'),
            Step(2, v, list_offsets_body([('{t}', 0, -1), ('{t}', 1, -1)]), label='latest'),
            Step(2, v, list_offsets_body([('{t}', 0, TS + 1), ('{t}', 1, TS + 3)]), label='by timestamp'),
            Step(2, v, list_offsets_body([('{t}', 0, TS + 3)]), label='by timestamp, in the second batch'),
            Step(2, v, list_offsets_body([('{t}', 0, -1), ('{t}', 0, -2)]), label='a partition twice'),
            Step(2, v, list_offsets_body([('{t}', 0, TS + 99)]), label='timestamp after the last record'),
            Step(2, v, list_offsets_body([('{t}', 0, -3)]), label='max timestamp'),
            Step(2, v, list_offsets_body([('{t}', 0, -4)]), label='earliest local'),
            Step(2, v, list_offsets_body([('{t}', 0, -5)]), label='latest tiered'),
            Step(2, v, list_offsets_body([('{t}', 0, -6)]), label='earliest pending upload'),
            Step(2, v, list_offsets_body([('{t}', 0, -1)], isolation=1), label='latest, read committed'),
            Step(2, v, list_offsets_body([('{t}', 5, -1)]), label='unknown partition'),
            Step(2, v, list_offsets_body([('{u}', 0, -1)]), label='unknown topic'),
            Step(2, v, list_offsets_body([('{t}', 0, -1)], epoch=7), label='leader epoch from the future'),
        ]
    return [Scenario('list-offsets', steps, topics={'t': 2, 'u': 0})]


def sc_metadata(full):
    steps = []
    vs = served(3) if full else [0, 1, 4, 9, 12]
    for v in vs:
        steps += [
            Step(3, v, metadata_body(['{t}', '{t2}']), label='two topics'),
            Step(3, v, metadata_body(None) if v else {'Topics': []}, label='all topics'),
            Step(3, v, metadata_body(['{t}'], auto=False) if v >= 4 else metadata_body(['{t}']),
                 label='one topic'),
            Step(3, v, {'Topics': [{'Name': '{t}'}], 'AllowAutoTopicCreation': False,
                        'IncludeClusterAuthorizedOperations': True,
                        'IncludeTopicAuthorizedOperations': True}, label='authorized operations'),
        ]
        if v >= 4:
            steps.append(Step(3, v, metadata_body(['{u}'], auto=False), label='unknown topic, no creation'))
            steps.append(Step(3, v, metadata_body(['bad name!'], auto=False), label='invalid name'))
            steps.append(Step(3, v, metadata_body(['__consumer_offsets'], auto=False), label='internal topic'))
        if v >= 10:
            steps.append(Step(3, v, {'Topics': [{'TopicId': '{id:t}', 'Name': None}]}, label='by topic id'))
    return [Scenario('metadata', steps, topics={'t': 3, 't2': 1, 'u': 0})]


def sc_metadata_autocreate(full):
    """Auto-creation: Metadata v0-3 always asks for it; v4+ says."""
    steps = []
    for v in (served(3) if full else [1, 12]):
        steps.append(Step(3, v, metadata_body(['{u%d}' % v], auto=True), label='auto-create'))
        steps.append(Step(3, v, metadata_body(['{u%d}' % v], auto=False), label='after auto-create',
                          retry=lambda b: all(t['ErrorCode'] == 0 and t['Partitions'] for t in b['Topics'])))
    return [Scenario('metadata-autocreate', steps, topics={'u%d' % v: 0 for v in range(13)})]


# ---------------------------------------------------------------- topic admin


def create_body(topics, validate=False, timeout=30000):
    return {'Topics': topics, 'timeoutMs': timeout, 'validateOnly': validate}


def ct(name, parts=1, rf=1, configs=None, assignments=None):
    return {'Name': name, 'NumPartitions': parts, 'ReplicationFactor': rf,
            'Assignments': assignments or [],
            'Configs': [{'Name': k, 'Value': v} for k, v in (configs or {}).items()]}


def sc_create_topics(full):
    steps = []
    for v in (served(19, KAFKA_MIN[19]) if full else [2, 7]):
        n = '{n%d' % v
        steps += [
            Step(19, v, create_body([ct(n + 'a}', 3, configs={'retention.ms': '100000', 'cleanup.policy': 'compact'})]),
                 label='new topic with configs'),
            Step(19, v, create_body([ct(n + 'a}', 3)]), label='already exists'),
            Step(19, v, create_body([ct(n + 'b}', 2)], validate=True), label='validate only'),
            Step(19, v, create_body([ct(n + 'c}', 0)]), label='zero partitions'),
            Step(19, v, create_body([ct(n + 'c}', 1, rf=3)]), label='replication factor 3'),
            Step(19, v, create_body([ct(n + 'c}', 1, configs={'cleanup.policy': 'bogus'})]), label='invalid config value'),
            Step(19, v, create_body([ct(n + 'c}', 1, configs={'no.such.config': 'x'})]), label='unknown config'),
            Step(19, v, create_body([ct(n + 'c}', 1, configs={'retention.ms': None})]), label='null config value'),
            Step(19, v, create_body([ct('bad/name', 1)]), label='invalid name'),
            Step(19, v, create_body([ct('x' * 250, 1)]), label='name too long'),
            Step(19, v, create_body([ct('__consumer_offsets', 1)]), label='internal topic'),
            Step(19, v, create_body([ct(n + 'd}', -1, rf=-1)]), label='default partitions and replication'),
            Step(19, v, create_body([ct(n + 'e}', -1, rf=-1, assignments=[
                {'PartitionIndex': 0, 'BrokerIds': [1]}, {'PartitionIndex': 1, 'BrokerIds': [1]}])]),
                label='manual assignment'),
            Step(19, v, create_body([ct(n + 'f}', -1, rf=-1, assignments=[
                {'PartitionIndex': 0, 'BrokerIds': [7]}])]), label='assignment to an unknown broker'),
            Step(19, v, create_body([ct(n + 'g}', 1), ct(n + 'g}', 2)]), label='the same name twice'),
            Step(3, 12, metadata_body([n + 'a}', n + 'b}', n + 'd}', n + 'e}']), label='what was created'),
        ]
    names = {}
    for v in range(8):
        for s in 'abcdefg':
            names['n%d%s' % (v, s)] = 0
    return [Scenario('create-topics', steps, topics=names)]


def sc_delete_topics(full):
    steps = []
    topics = {}
    for v in (served(20, KAFKA_MIN[20]) if full else [1, 6]):
        topics['d%d' % v] = 1
        topics['x%d' % v] = 0
        if v >= 6:
            body = {'Topics': [{'Name': '{d%d}' % v, 'TopicId': '00000000-0000-0000-0000-000000000000'},
                               {'Name': '{x%d}' % v, 'TopicId': '00000000-0000-0000-0000-000000000000'}],
                    'TimeoutMs': 30000}
        else:
            body = {'TopicNames': ['{d%d}' % v, '{x%d}' % v], 'TimeoutMs': 30000}
        steps.append(Step(20, v, body, label='an existing and an unknown topic'))
    topics['i6'] = 1
    steps.append(Step(20, 6, {'Topics': [{'Name': None, 'TopicId': '{id:i6}'}], 'TimeoutMs': 30000},
                      label='by topic id'))
    steps.append(Step(20, 6, {'Topics': [{'Name': None, 'TopicId': '11111111-2222-3333-4444-555555555555'}],
                              'TimeoutMs': 30000}, label='unknown topic id'))
    # (no DeleteTopics of __consumer_offsets: Kafka would delete it, under the other tests)
    steps.append(Step(20, 5, {'TopicNames': ['bad/name', ''], 'TimeoutMs': 30000}, label='invalid names'))
    return [Scenario('delete-topics', steps, topics=topics)]


def sc_create_partitions(full):
    steps = []
    for v in (served(37) if full else [0, 3]):
        steps += [
            Step(37, v, {'Topics': [{'Name': '{t}', 'Count': 2 + v, 'Assignments': None}], 'TimeoutMs': 30000,
                         'ValidateOnly': False}, label='grow by one'),
            Step(37, v, {'Topics': [{'Name': '{t}', 'Count': 2 + v, 'Assignments': None}], 'TimeoutMs': 30000,
                         'ValidateOnly': False}, label='same count'),
            Step(37, v, {'Topics': [{'Name': '{t}', 'Count': 1, 'Assignments': None}], 'TimeoutMs': 30000,
                         'ValidateOnly': False}, label='shrink'),
            Step(37, v, {'Topics': [{'Name': '{t}', 'Count': 10 + v, 'Assignments': None}], 'TimeoutMs': 30000,
                         'ValidateOnly': True}, label='validate only'),
            Step(37, v, {'Topics': [{'Name': '{u}', 'Count': 3, 'Assignments': None}], 'TimeoutMs': 30000,
                         'ValidateOnly': False}, label='unknown topic'),
            Step(37, v, {'Topics': [{'Name': '{t}', 'Count': 4 + v, 'Assignments': [{'BrokerIds': [1]}]}],
                         'TimeoutMs': 30000, 'ValidateOnly': False}, label='too few assignments'),
            Step(37, v, {'Topics': [{'Name': '{t}', 'Count': 3 + v, 'Assignments': [{'BrokerIds': [9]}]}],
                         'TimeoutMs': 30000, 'ValidateOnly': False}, label='assignment to an unknown broker'),
            Step(37, v, {'Topics': [{'Name': '{t}', 'Count': 3 + v, 'Assignments': None},
                                    {'Name': '{t}', 'Count': 3 + v, 'Assignments': None}],
                         'TimeoutMs': 30000, 'ValidateOnly': False}, label='the same topic twice'),
            Step(37, v, {'Topics': [{'Name': '__consumer_offsets', 'Count': 60, 'Assignments': None}],
                         'TimeoutMs': 30000, 'ValidateOnly': True}, label='internal topic'),
            Step(3, 12, metadata_body(['{t}']), label='after'),
        ]
    return [Scenario('create-partitions', steps, topics={'t': 1, 'u': 0})]


def sc_delete_records(full):
    steps = [Step(0, 9, produce_body([('{t}', 0, batch(3, 0)), ('{t}', 1, batch(2, 0))]), compare=False),
             Step(0, 9, produce_body([('{t}', 0, batch(3, 3))]), compare=False)]
    for v in (served(21) if full else [0, 2]):
        steps += [
            Step(21, v, {'Topics': [{'Name': '{t}', 'Partitions': [{'PartitionIndex': 0, 'Offset': 1 + v}]}],
                         'TimeoutMs': 10000}, label='inside a batch'),
            Step(21, v, {'Topics': [{'Name': '{t}', 'Partitions': [{'PartitionIndex': 0, 'Offset': 0}]}],
                         'TimeoutMs': 10000}, label='below the log start'),
            Step(21, v, {'Topics': [{'Name': '{t}', 'Partitions': [{'PartitionIndex': 1, 'Offset': 99}]}],
                         'TimeoutMs': 10000}, label='past the high watermark'),
            Step(21, v, {'Topics': [{'Name': '{t}', 'Partitions': [{'PartitionIndex': 1, 'Offset': -7}]}],
                         'TimeoutMs': 10000}, label='negative offset'),
            Step(21, v, {'Topics': [{'Name': '{t}', 'Partitions': [{'PartitionIndex': 4, 'Offset': 1}]},
                                    {'Name': '{u}', 'Partitions': [{'PartitionIndex': 0, 'Offset': 1}]}],
                         'TimeoutMs': 10000}, label='unknown partition and topic'),
            Step(2, 6, list_offsets_body([('{t}', 0, -2), ('{t}', 1, -2)]), label='log start after'),
        ]
    steps.append(Step(21, 1, {'Topics': [{'Name': '{t}', 'Partitions': [{'PartitionIndex': 1, 'Offset': -1}]}],
                              'TimeoutMs': 10000}, label='-1: the high watermark'))
    steps.append(Step(1, 12, fetch_body([('{t}', 0, 0), ('{t}', 1, 0)]), label='fetch below the log start'))
    return [Scenario('delete-records', steps, topics={'t': 2, 'u': 0})]


# ---------------------------------------------------------------- configs

TOPIC, BROKER = 2, 4
# The topic config keys compared value by value; DescribeConfigs of all keys
# is compared as a set of names (docs/DIFFERENCES.md lists what differs).
TOPIC_KEYS = ['cleanup.policy', 'compression.type', 'retention.ms', 'retention.bytes', 'segment.bytes',
              'segment.ms', 'max.message.bytes', 'min.insync.replicas', 'message.timestamp.type',
              'message.timestamp.before.max.ms', 'message.timestamp.after.max.ms', 'flush.messages',
              'flush.ms', 'segment.index.bytes', 'index.interval.bytes', 'delete.retention.ms',
              'file.delete.delay.ms', 'min.compaction.lag.ms', 'max.compaction.lag.ms',
              'min.cleanable.dirty.ratio', 'preallocate', 'segment.jitter.ms',
              'unclean.leader.election.enable', 'local.retention.ms', 'local.retention.bytes',
              'remote.storage.enable', 'message.downconversion.enable']
BROKER_KEYS = ['num.partitions', 'default.replication.factor', 'log.retention.hours', 'log.retention.ms',
               'log.segment.bytes', 'message.max.bytes', 'auto.create.topics.enable',
               'offsets.topic.num.partitions', 'log.flush.interval.messages', 'log.cleanup.policy',
               'node.id', 'broker.id', 'compression.type', 'min.insync.replicas']


def describe_body(res, keys=None, synonyms=False, docs=False):
    return {'Resources': [{'ResourceType': rt, 'ResourceName': rn, 'ConfigurationKeys': keys}
                          for rt, rn in res], 'IncludeSynonyms': synonyms, 'IncludeDocumentation': docs}


def sc_describe_configs(full):
    steps = []
    for v in (served(32, KAFKA_MIN[32]) if full else [1, 4]):
        steps += [
            Step(32, v, describe_body([(TOPIC, '{t}')], TOPIC_KEYS), label='topic, chosen keys'),
            Step(32, v, describe_body([(TOPIC, '{c}')], TOPIC_KEYS, synonyms=True), label='altered topic, synonyms'),
            Step(32, v, describe_body([(TOPIC, '{t}')], None), label='topic, all keys', ),
            Step(32, v, describe_body([(TOPIC, '{t}')], ['no.such.key', 'retention.ms']), label='an unknown key'),
            Step(32, v, describe_body([(TOPIC, '{u}')], None), label='unknown topic'),
            Step(32, v, describe_body([(TOPIC, '')], None), label='empty topic name'),
            Step(32, v, describe_body([(BROKER, '1')], BROKER_KEYS), label='broker, chosen keys'),
            Step(32, v, describe_body([(BROKER, '7')], None), label='another broker'),
            Step(32, v, describe_body([(BROKER, 'x')], None), label='broker name not a number'),
            Step(32, v, describe_body([(8, 'b')], None), label='broker logger'),
            Step(32, v, describe_body([(99, 'z')], None), label='unknown resource type'),
            Step(32, v, describe_body([(TOPIC, '{t}'), (TOPIC, '{c}')], ['retention.ms']), label='two topics'),
        ]
        if v >= 3:
            steps.append(Step(32, v, describe_body([(TOPIC, '{t}')], ['retention.ms'], docs=True),
                              label='documentation'))
    return [Scenario('describe-configs', steps, topics={'t': 1, 'c': 1, 'u': 0},
                     configs={'c': {'retention.ms': '12345', 'cleanup.policy': 'compact',
                                    'max.message.bytes': '5000'}})]


def alter_body(res, validate=False):
    return {'Resources': [{'ResourceType': rt, 'ResourceName': rn,
                           'Configs': [{'Name': k, 'Value': val} for k, val in cfg.items()]}
                          for rt, rn, cfg in res], 'ValidateOnly': validate}


def sc_alter_configs(full):
    steps = []
    for v in (served(33) if full else [0, 2]):
        steps += [
            Step(33, v, alter_body([(TOPIC, '{t}', {'retention.ms': str(1000 * (v + 60)), 'cleanup.policy': 'compact'})]),
                 label='set two keys'),
            Step(32, 4, describe_body([(TOPIC, '{t}')], ['retention.ms', 'cleanup.policy', 'segment.ms']),
                 label='after'),
            Step(33, v, alter_body([(TOPIC, '{t}', {'segment.ms': '100000'})]), label='replace all with one'),
            Step(32, 4, describe_body([(TOPIC, '{t}')], ['retention.ms', 'cleanup.policy', 'segment.ms']),
                 label='after (the others back to defaults)'),
            Step(33, v, alter_body([(TOPIC, '{t}', {'retention.ms': 'abc'})]), label='not a number'),
            Step(33, v, alter_body([(TOPIC, '{t}', {'cleanup.policy': 'bogus'})]), label='invalid value'),
            Step(33, v, alter_body([(TOPIC, '{t}', {'no.such.key': '1'})]), label='unknown key'),
            Step(33, v, alter_body([(TOPIC, '{t}', {'retention.ms': None})]), label='null value'),
            Step(33, v, alter_body([(TOPIC, '{t}', {'retention.ms': '5'})], validate=True), label='validate only'),
            Step(33, v, alter_body([(TOPIC, '{u}', {'retention.ms': '5'})]), label='unknown topic'),
            Step(33, v, alter_body([(BROKER, '1', {'log.retention.ms': '100000'})], validate=True),
                 label='broker, validate only'),
            Step(33, v, alter_body([(BROKER, '7', {'log.retention.ms': '100000'})], validate=True),
                 label='another broker'),
            Step(33, v, alter_body([(99, 'z', {'a': 'b'})]), label='unknown resource type'),
        ]
        if full:    # Kafka 4.3 never answers this one: a short wait
            steps.append(Step(33, v, alter_body([(TOPIC, '{t}', {'retention.ms': '5000'}),
                                                 (TOPIC, '{t}', {'retention.ms': '6000'})]),
                              label='a resource twice', timeout=3, conn='dup%d' % v))
    return [Scenario('alter-configs', steps, topics={'t': 1, 'u': 0})]


def incr_body(res, validate=False):
    return {'Resources': [{'ResourceType': rt, 'ResourceName': rn,
                           'Configs': [{'Name': k, 'ConfigOperation': op, 'Value': val} for k, op, val in cfg]}
                          for rt, rn, cfg in res], 'ValidateOnly': validate}


def sc_incremental_alter_configs(full):
    SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
    steps = []
    for v in served(44):
        steps += [
            Step(44, v, incr_body([(TOPIC, '{t}', [('retention.ms', SET, '77000'), ('segment.ms', SET, '99000')])]),
                 label='set'),
            Step(44, v, incr_body([(TOPIC, '{t}', [('segment.ms', DELETE, None)])]), label='delete'),
            Step(44, v, incr_body([(TOPIC, '{t}', [('cleanup.policy', APPEND, 'compact')])]), label='append to a list'),
            Step(44, v, incr_body([(TOPIC, '{t}', [('cleanup.policy', SUBTRACT, 'delete')])]), label='subtract from a list'),
            Step(32, 4, describe_body([(TOPIC, '{t}')], ['retention.ms', 'segment.ms', 'cleanup.policy']),
                 label='after'),
            Step(44, v, incr_body([(TOPIC, '{t}', [('retention.ms', APPEND, '5')])]), label='append to a number'),
            Step(44, v, incr_body([(TOPIC, '{t}', [('retention.ms', 9, '5')])]), label='unknown operation'),
            Step(44, v, incr_body([(TOPIC, '{t}', [('retention.ms', SET, 'x')])]), label='invalid value'),
            Step(44, v, incr_body([(TOPIC, '{t}', [('no.such.key', SET, '1')])]), label='unknown key'),
            Step(44, v, incr_body([(TOPIC, '{t}', [('retention.ms', SET, '1'), ('retention.ms', SET, '2')])]),
                 label='the same key twice'),
            Step(44, v, incr_body([(TOPIC, '{u}', [('retention.ms', SET, '1')])]), label='unknown topic'),
            Step(44, v, incr_body([(TOPIC, '{t}', [('retention.ms', SET, '1')]),
                                   (TOPIC, '{t}', [('segment.ms', SET, '100000')])]), label='a resource twice'),
            Step(44, v, incr_body([(TOPIC, '{t}', [('retention.ms', SET, '1')])], validate=True),
                 label='validate only'),
            Step(44, v, incr_body([(BROKER, '1', [('log.retention.ms', SET, '100000')])], validate=True),
                 label='broker, validate only'),
        ]
    return [Scenario('incremental-alter-configs', steps, topics={'t': 1, 'u': 0})]


# ---------------------------------------------------------------- cluster


def sc_cluster(full):
    steps = []
    for v in (served(60) if full else [0, 1]):
        steps += [Step(60, v, {'IncludeClusterAuthorizedOperations': False, 'EndpointType': 1}, label='brokers'),
                  Step(60, v, {'IncludeClusterAuthorizedOperations': True, 'EndpointType': 1},
                       label='authorized operations')]
        if v >= 1:
            steps.append(Step(60, v, {'EndpointType': 2}, label='controllers'))
            steps.append(Step(60, v, {'EndpointType': 7}, label='unknown endpoint type'))
    steps.append(Step(0, 9, produce_body([('{t}', 1, batch(3))]), compare=False))
    for v in (served(35, KAFKA_MIN[35]) if full else [1, 4]):
        steps += [Step(35, v, {'Topics': [{'Topic': '{t}', 'Partitions': [0, 1, 5]}]}, label='one topic'),
                  Step(35, v, {'Topics': None}, label='all topics'),
                  Step(35, v, {'Topics': [{'Topic': '{u}', 'Partitions': [0]}]}, label='unknown topic'),
                  Step(35, v, {'Topics': []}, label='no topics')]
    return [Scenario('cluster', steps, topics={'t': 2, 'u': 0})]


def sc_describe_topic_partitions(full):
    """DescribeTopicPartitions (KIP-966): named topics, an unknown one, the
    partition limit and a cursor that pages through."""
    steps = []
    for v in served(75):
        steps += [
            Step(75, v, {'Topics': [{'Name': '{t}'}, {'Name': '{t2}'}], 'ResponsePartitionLimit': 2000,
                         'Cursor': None}, label='two topics'),
            Step(75, v, {'Topics': [{'Name': '{u}'}], 'ResponsePartitionLimit': 2000, 'Cursor': None},
                 label='unknown topic'),
            Step(75, v, {'Topics': [{'Name': '{t}'}, {'Name': '{t2}'}], 'ResponsePartitionLimit': 2,
                         'Cursor': None}, label='partition limit'),
            Step(75, v, {'Topics': [{'Name': '{t}'}, {'Name': '{t2}'}], 'ResponsePartitionLimit': 2000,
                         'Cursor': {'TopicName': '{t}', 'PartitionIndex': 1}}, label='cursor'),
        ]
    return [Scenario('describe-topic-partitions', steps, topics={'t': 3, 't2': 1, 'u': 0})]


def sc_api_versions(full):
    steps = []
    for v in (served(18) if full else [0, 3]):
        steps.append(Step(18, v, {'ClientSoftwareName': 'spool-diff', 'ClientSoftwareVersion': '1.0'}))
    steps.append(Step(18, 3, {'ClientSoftwareName': '-bad-', 'ClientSoftwareVersion': '1.0'},
                      label='invalid software name'))
    steps.append(Step(18, 3, {'ClientSoftwareName': 'spool-diff', 'ClientSoftwareVersion': '1.0@'},
                      label='invalid software version'))
    return [Scenario('api-versions', steps)]


def sc_unsupported(full):
    """Versions outside Spool's table, and APIs Spool does not serve: both
    close the connection (Kafka also for versions outside its own)."""
    steps = []
    for api, (lo, hi) in sorted(SPOOL.items()):
        vlo, vhi = S.valid_versions(api)
        body = produce_body([('{t}', 0, batch(1))]) if api == 0 else {}     # (acks=0 is answered by nobody)
        if hi < vhi and api != 18:
            steps.append(Step(api, hi + 1, body, label='above Spool\'s range'))
        if lo > vlo:
            steps.append(Step(api, lo - 1, body, label='below Spool\'s range'))
    for api in (17, 22, 23, 36, 61, 65, 66, 75):        # SaslHandshake, InitProducerId, ...
        if api not in SPOOL:
            steps.append(Step(api, S.valid_versions(api)[0], {}, label='an API Spool does not serve'))
    return [Scenario('unsupported', steps, topics={'t': 1})]


# ---------------------------------------------------------------- producer ids


def init_producer_id_body(txn=None, pid=-1, epoch=-1):
    return {'TransactionalId': txn, 'TransactionTimeoutMs': 60000, 'ProducerId': pid, 'ProducerEpoch': epoch,
            'Enable2Pc': False, 'KeepPreparedTxn': False}


def sc_init_producer_id(full):
    """InitProducerId without a transactional id: a fresh id with epoch 0
    at every version, also when a v3+ request names the id and epoch it
    had (KIP-360); the errors before any transaction coordinator is asked:
    a half pair of id and epoch, an empty transactional id.  The ids are
    each broker's own (kafka_diff.PRODUCER_ID_FIELDS).  Kafka answers
    COORDINATOR_LOAD_IN_PROGRESS while its first block of ids is on its way
    (Spool waits for it): those steps are sent again until that passes."""
    steps = []
    learn = {'pid': lambda b: b['ProducerId']}
    loaded = lambda b: b['ErrorCode'] != 14                             # noqa: E731
    for v in (served(22) if full else [0, 2, 5]):
        steps.append(Step(22, v, init_producer_id_body(), label='idempotent producer', learn=learn, retry=loaded))
        if v >= 3:
            steps += [
                Step(22, v, init_producer_id_body(pid='{pid}', epoch=0), label='again, naming its id and epoch',
                     retry=loaded),
                Step(22, v, init_producer_id_body(pid='{pid}', epoch=-1), label='an id without an epoch'),
                Step(22, v, init_producer_id_body(pid=-1, epoch=3), label='an epoch without an id'),
            ]
        steps.append(Step(22, v, init_producer_id_body(txn=''), label='empty transactional id'))
    return [Scenario('init-producer-id', steps)]


# ---------------------------------------------------------------- groups


def subscription(topics, version=0):
    return struct.pack('>h', version) + S.encode('ConsumerProtocolSubscription', {'Topics': topics}, version)


def assignment(parts, version=0):
    return struct.pack('>h', version) + S.encode(
        'ConsumerProtocolAssignment', {'AssignedPartitions': [{'Topic': t, 'Partitions': ps} for t, ps in parts]},
        version)


def find_coordinator(v, key='{g}', key_type=0):
    what = {0: 'group', 1: 'transaction'}.get(key_type, 'key type %d' % key_type)
    return Step(10, v, {'Key': key, 'KeyType': key_type, 'CoordinatorKeys': [key]},
                label=what + (', empty key' if key == '' else ''))


def join(v, member='', group='{g}', session=10000, label='join', conn='main', learn=None, **kw_):
    body = {'GroupId': group, 'SessionTimeoutMs': session, 'RebalanceTimeoutMs': 10000,
            'MemberId': member, 'GroupInstanceId': kw_.pop('instance', None), 'ProtocolType': 'consumer',
            'Protocols': [{'Name': 'range', 'Metadata': lambda t: subscription([t.vars['t']])}],
            'Reason': None}
    return Step(11, v, body, label=label, conn=conn, learn=learn, **kw_)


def sync(v, member, gen, assignments, group='{g}', label='sync', conn='main', **kw_):
    body = {'GroupId': group, 'GenerationId': gen, 'MemberId': member, 'GroupInstanceId': None,
            'ProtocolType': 'consumer', 'ProtocolName': 'range', 'Assignments': assignments}
    return Step(14, v, body, label=label, conn=conn, **kw_)


def heartbeat(v, member, gen, group='{g}', label='heartbeat', conn='main', **kw_):
    return Step(12, v, {'GroupId': group, 'GenerationId': gen, 'MemberId': member, 'GroupInstanceId': None},
                label=label, conn=conn, **kw_)


def leave(v, member, group='{g}', label='leave', conn='main'):
    return Step(13, v, {'GroupId': group, 'MemberId': member,
                        'Members': [{'MemberId': member, 'GroupInstanceId': None, 'Reason': None}]},
                label=label, conn=conn)


def commit(v, member, gen, offsets, group='{g}', label='commit', conn='main'):
    topics = {}
    for t, p, off in offsets:
        topics.setdefault(t, []).append({'PartitionIndex': p, 'CommittedOffset': off,
                                         'CommittedLeaderEpoch': -1, 'CommitTimestamp': -1,
                                         'CommittedMetadata': 'm%d' % off})
    return Step(8, v, {'GroupId': group, 'GenerationIdOrMemberEpoch': gen, 'MemberId': member,
                       'GroupInstanceId': None, 'RetentionTimeMs': -1,
                       'Topics': [{'Name': t, 'TopicId': '{id:%s}' % t.strip('{}'), 'Partitions': ps}
                                  for t, ps in topics.items()]}, label=label, conn=conn)


def offset_fetch(v, topics, group='{g}', label='offsets', conn='main'):
    """topics: [(topic, [partitions])] or None for all."""
    if v >= 8:
        body = {'Groups': [{'GroupId': group, 'MemberId': None, 'MemberEpoch': -1,
                            'Topics': None if topics is None else
                            [{'Name': t, 'TopicId': '{id:%s}' % t.strip('{}'), 'PartitionIndexes': ps}
                             for t, ps in topics]}], 'RequireStable': True}
    else:
        body = {'GroupId': group, 'RequireStable': True,
                'Topics': None if topics is None else [{'Name': t, 'PartitionIndexes': ps} for t, ps in topics]}
    return Step(9, v, body, label=label, conn=conn)


def describe_groups(v, groups=('{g}',), label='describe'):
    return Step(15, v, {'Groups': list(groups), 'IncludeAuthorizedOperations': False}, label=label)


def list_groups(v, states=(), types=(), label='list'):
    return Step(16, v, {'StatesFilter': list(states), 'TypesFilter': list(types)}, label=label)


LEARN_JOIN = {'member': lambda b: b['MemberId'], 'gen': lambda b: b['GenerationId']}


def group_lifecycle(i):
    """One member through a group's life, each API at version min(i, its
    highest): join (twice from v4: MEMBER_ID_REQUIRED), sync, heartbeat,
    commit, fetch offsets, describe, list, the wrong generation and member
    everywhere, leave, delete offsets, delete the group."""
    jv, sv, hv, lv, cv = min(i, 9), min(i, 5), min(i, 4), min(i, 5), max(min(i, 9), 0)
    fv, dv, lgv, dgv = min(i, 9), min(i, 5), min(i, 5), min(i, 2)
    steps = [find_coordinator(min(i, 6))]
    if jv >= 4:
        steps.append(join(jv, '', label='join, no member id', learn={'member': lambda b: b['MemberId']}))
        steps.append(join(jv, '{member}', label='join with the given id', learn=LEARN_JOIN))
    else:
        steps.append(join(jv, '', learn=LEARN_JOIN))
    a = [{'MemberId': '{member}', 'Assignment': lambda t: assignment([(t.vars['t'], [0, 1])])}]
    steps += [
        sync(sv, '{member}', '{gen}', a),
        heartbeat(hv, '{member}', '{gen}'),
        heartbeat(hv, '{member}', 99, label='heartbeat, wrong generation'),
        heartbeat(hv, 'no-such-member', '{gen}', label='heartbeat, unknown member'),
        heartbeat(hv, '{member}', '{gen}', group='{g2}', label='heartbeat, unknown group'),
        commit(cv, '{member}', '{gen}', [('{t}', 0, 3), ('{t}', 1, 5)]),
    ]
    if cv < 2:      # Kafka 4 closes v0-1 (KIP-896): the same commit at v2 keeps both in step
        steps.append(commit(2, '{member}', '{gen}', [('{t}', 0, 3), ('{t}', 1, 5)], label='commit at v2'))
    steps += [
        commit(cv, '{member}', 99, [('{t}', 0, 4)], label='commit, wrong generation'),
        commit(cv, 'no-such-member', '{gen}', [('{t}', 0, 4)], label='commit, unknown member'),
        commit(cv, '{member}', '{gen}', [('{u}', 0, 4), ('{t}', 7, 1)], label='commit, unknown topic and partition'),
        offset_fetch(fv, [('{t}', [0, 1, 2]), ('{u}', [0])]),
        describe_groups(dv, ('{g}', '{g2}')),
        list_groups(lgv),
        sync(sv, '{member}', 99, a, label='sync, wrong generation'),
        sync(sv, 'no-such-member', '{gen}', a, label='sync, unknown member'),
        join(jv, 'no-such-member', label='join, unknown member'),
        leave(lv, '{member}'),
        leave(lv, '{member}', label='leave again'),
        describe_groups(dv, label='describe, empty'),
        Step(47, 0, {'GroupId': '{g}', 'Topics': [{'Name': '{t}', 'Partitions': [{'PartitionIndex': 0}]}]},
             label='delete offsets'),
        offset_fetch(fv, [('{t}', [0, 1])], label='offsets after delete'),
        Step(42, dgv, {'GroupsNames': ['{g}', '{g2}']}, label='delete groups'),
        describe_groups(dv, label='describe, deleted'),
        offset_fetch(fv, [('{t}', [0, 1])], label='offsets of a deleted group'),
    ]
    if fv >= 2:
        steps.insert(-9, offset_fetch(fv, None, label='all offsets'))
    if lgv >= 4:
        steps.insert(-9, list_groups(lgv, states=['Stable'], label='list Stable'))
        steps.insert(-9, list_groups(lgv, states=['Empty'], label='list Empty'))
    if lgv >= 5:
        steps.insert(-9, list_groups(lgv, types=['classic'], label='list classic'))
        steps.insert(-9, list_groups(lgv, types=['consumer'], label='list consumer'))
    return Scenario('group-v%d' % i, steps, topics={'t': 2, 'u': 0}, groups=['g', 'g2'])


def sc_groups(full):
    if full:
        return [group_lifecycle(i) for i in range(10)]
    return [group_lifecycle(i) for i in (1, 9)]


def sc_group_errors(full):
    """Error paths of the group APIs that need no member."""
    steps = []
    for v in (served(11) if full else [0, 5, 9]):
        steps += [join(v, '', session=10, label='session timeout below the minimum'),
                  join(v, '', session=10 ** 8, label='session timeout above the maximum'),
                  join(v, '', group='', label='empty group id')]
    for v in (served(10) if full else [0, 3, 6]):
        # the first one creates __transaction_state (Kafka answers
        # COORDINATOR_NOT_AVAILABLE while it does, Spool once it did): again until ready
        st = find_coordinator(v, key='{g}', key_type=1)
        st.retry = lambda b: (b['Coordinators'][0] if 'Coordinators' in b else b)['ErrorCode'] == 0
        steps.append(st)
        steps.append(find_coordinator(v, key='', key_type=0))
        steps.append(find_coordinator(v, key='{g}', key_type=5))
    for v in (served(8) if full else [2, 9]):
        steps.append(commit(v, '', -1, [('{t}', 0, 2)], label='simple commit, no generation'))
        steps.append(commit(v, '', -1, [('{t}', 0, -5)], label='simple commit, negative offset'))
        steps.append(commit(v, '', -1, [('{t}', 0, 2)], group='', label='empty group id'))
    for v in (served(9) if full else [1, 9]):
        steps.append(offset_fetch(v, [('{t}', [0])], label='simple group offsets'))
        steps.append(offset_fetch(v, [('{t}', [0])], group='{g2}', label='unknown group offsets'))
    for v in (served(42) if full else [0, 2]):
        steps.append(Step(42, v, {'GroupsNames': ['{g2}', '']}, label='delete unknown groups'))
    steps.append(Step(47, 0, {'GroupId': '{g2}', 'Topics': [{'Name': '{t}', 'Partitions': [{'PartitionIndex': 0}]}]},
                      label='delete offsets of an unknown group'))
    steps.append(Step(47, 0, {'GroupId': '{g}', 'Topics': [{'Name': '{u}', 'Partitions': [{'PartitionIndex': 0}]}]},
                      label='delete offsets of an unknown topic'))
    for v in (served(15) if full else [0, 5]):
        steps.append(describe_groups(v, ('{g}', '{g2}', ''), label='a simple group, an unknown and an empty id'))
    return [Scenario('group-errors', [find_coordinator(3)] + steps, topics={'t': 1, 'u': 0}, groups=['g', 'g2'])]


def sc_group_two_members(full):
    """Two members: the second one's join parks until the first rejoins
    (its heartbeat says REBALANCE_IN_PROGRESS), then both sync; leaves."""
    a = lambda t: assignment([(t.vars['t'], [0])])                    # noqa: E731
    b = lambda t: assignment([(t.vars['t'], [1])])                    # noqa: E731
    steps = [
        find_coordinator(3),
        join(5, '', conn='m1', label='m1 join, no id', learn={'member': lambda b_: b_['MemberId']}),
        join(5, '{member}', conn='m1', label='m1 join', learn=LEARN_JOIN),
        sync(5, '{member}', '{gen}', [{'MemberId': '{member}', 'Assignment': a}], conn='m1'),
        join(5, '', conn='m2', label='m2 join, no id', learn={'member2': lambda b_: b_['MemberId']}),
        # m2's join starts a rebalance and parks until m1 rejoins
        join(5, '{member2}', conn='m2', label='m2 join', concurrent='j2', timeout=40),
        heartbeat(4, '{member}', '{gen}', conn='m1', label='m1 heartbeat: rebalance', concurrent='j2',
                  wait=0.3, retry=lambda b_: b_['ErrorCode'] == 27),
        join(5, '{member}', conn='m1', label='m1 rejoin', concurrent='j2', timeout=40,
             learn={'gen2': lambda b_: b_['GenerationId']}),
        sync(5, '{member}', '{gen2}', [{'MemberId': '{member}', 'Assignment': a},
                                       {'MemberId': '{member2}', 'Assignment': b}], conn='m1',
             concurrent='s2', label='m1 (leader) sync'),
        sync(5, '{member2}', '{gen2}', [], conn='m2', concurrent='s2', label='m2 sync'),
        describe_groups(5, label='two members'),
        heartbeat(4, '{member}', '{gen}', conn='m1', label='m1 heartbeat, old generation'),
        heartbeat(4, '{member2}', '{gen2}', conn='m2', label='m2 heartbeat'),
        leave(3, '{member2}', conn='m2', label='m2 leaves'),
        heartbeat(4, '{member}', '{gen2}', conn='m1', label='m1 heartbeat: rebalance again'),
        leave(3, '{member}', conn='m1', label='m1 leaves'),
        describe_groups(5, label='empty'),
    ]
    return [Scenario('group-two-members', steps, topics={'t': 2}, groups=['g'])]


def sc_static_member(full):
    """A static member (KIP-345): its rejoin with a new id fences the old one."""
    steps = [
        find_coordinator(3),
        join(5, '', instance='inst-1', label='static join', learn=LEARN_JOIN),
        sync(5, '{member}', '{gen}', [{'MemberId': '{member}',
                                       'Assignment': lambda t: assignment([(t.vars['t'], [0])])}]),
        join(5, '', instance='inst-1', conn='m2', label='the same instance again',
             learn={'member2': lambda b: b['MemberId'], 'gen2': lambda b: b['GenerationId']}),
        heartbeat(4, '{member}', '{gen}', label='the old member: fenced'),
        describe_groups(5, label='one static member'),
    ]
    return [Scenario('group-static', steps, topics={'t': 1}, groups=['g'])]


def txn_commit(v, offsets, group='{g}', txn='tx-{g}', pid=-1, epoch=-1, label='txn commit'):
    topics = {}
    for t, p, off in offsets:
        topics.setdefault(t, []).append({'PartitionIndex': p, 'CommittedOffset': off,
                                         'CommittedLeaderEpoch': -1, 'CommittedMetadata': 'm%d' % off})
    return Step(28, v, {'TransactionalId': txn, 'GroupId': group, 'ProducerId': pid, 'ProducerEpoch': epoch,
                        'GenerationId': -1, 'MemberId': '', 'GroupInstanceId': None,
                        'Topics': [{'Name': t, 'Partitions': ps} for t, ps in topics.items()]}, label=label)


def sc_txn_offset_commit(full):
    """TxnOffsetCommit's answers before any transaction is asked about
    (KafkaApis, GroupCoordinatorService): unknown topics and partitions
    first (and alone: nothing else is asked), then an empty group id
    (INVALID_GROUP_ID) on the partitions that exist; then OffsetFetch with
    require_stable shows nothing pending.  The paths past the KIP-890
    verification need the transaction coordinator (test_0071 for now)."""
    steps = [find_coordinator(3)]
    for v in (served(28) if full else [0, 3, 5]):
        steps += [
            txn_commit(v, [('{u}', 0, 1), ('{t}', 4, 1)], label='unknown topic and partition only'),
            txn_commit(v, [('{t}', 0, 2), ('{u}', 0, 1), ('{t}', 7, 1)], group='',
                       label='empty group id, unknown partitions first'),
        ]
    steps.append(offset_fetch(8, [('{t}', [0])], label='nothing pending'))
    return [Scenario('txn-offset-commit', steps, topics={'t': 1, 'u': 0}, groups=['g'])]


def sc_txn_bad_input(full):
    """The transaction coordinator's answers to bad input (TV1 versions of
    EndTxn, < 5): EndTxn in Empty, EndTxn and AddPartitionsToTxn with an
    unknown transactional id, another producer id, a stale epoch (and the
    old versions' INVALID_PRODUCER_EPOCH), an empty transactional id;
    InitProducerId above transaction.max.timeout.ms; AddPartitionsToTxn
    naming an unknown topic (UNKNOWN_TOPIC_OR_PARTITION, the rest
    OPERATION_NOT_ATTEMPTED); a transactional batch produced before
    AddPartitionsToTxn (KIP-890) and one with no transactional id; then
    a transaction that works (added, committed, EndTxn the wrong way
    afterwards) and a plain produce and fetch.  The producer ids are each
    broker's own (learnt)."""
    ready = lambda b: b['ErrorCode'] not in (14, 15, 16, 51)          # noqa: E731
    txn = 'tx-{g}'

    def init(label, learn=None, retry=ready, timeout=60000, tid=txn, v=4):
        return Step(22, v, {'TransactionalId': tid, 'TransactionTimeoutMs': timeout, 'ProducerId': -1,
                            'ProducerEpoch': -1}, label=label, learn=learn, retry=retry)

    def end(v, commit, pid='{pid}', epoch='{e1}', tid=txn, label='', retry=None):
        return Step(26, v, {'TransactionalId': tid, 'ProducerId': pid, 'ProducerEpoch': epoch,
                            'Committed': commit}, label=label, retry=retry)

    def add(v, parts, pid='{pid}', epoch='{e1}', tid=txn, label='', retry=None):
        topics = {}
        for t, p in parts:
            topics.setdefault(t, []).append(p)
        return Step(24, v, {'V3AndBelowTransactionalId': tid, 'V3AndBelowProducerId': pid,
                            'V3AndBelowProducerEpoch': epoch,
                            'V3AndBelowTopics': [{'Name': t, 'Partitions': ps} for t, ps in topics.items()]},
                    label=label, retry=retry)

    def txn_batch(t, seq=0):
        return batch(1, seq, producer_id=t.vars['pid'], producer_epoch=t.vars['e1'], base_sequence=seq,
                     attributes=0x10)

    steps = [
        Step(10, 4, {'KeyType': 1, 'CoordinatorKeys': [txn]}, label='transaction coordinator',
             retry=lambda b: b['Coordinators'][0]['ErrorCode'] == 0),
        init('first', learn={'pid': lambda b: b['ProducerId'], 'e0': lambda b: b['ProducerEpoch']}),
        init('again: the epoch bumped', learn={'e1': lambda b: b['ProducerEpoch']}),
        init('timeout above transaction.max.timeout.ms', timeout=900001, retry=None),
        init('timeout 0', timeout=0, retry=None),
    ]
    for v in ([0, 1, 2, 3, 4] if full else [1, 3]):
        steps += [
            end(v, True, label='commit in Empty'),
            end(v, False, label='abort in Empty'),
            end(v, True, tid='nope-{g}', label='unknown transactional id'),
            end(v, True, pid=1234567, label='another producer id'),
            end(v, True, epoch='{e0}', label='stale epoch'),
            end(v, True, tid='', label='empty transactional id'),
        ]
        if v > 3:       # AddPartitionsToTxn v4+ is the brokers' batched form
            continue
        steps += [
            add(v, [('{t}', 0)], tid='nope-{g}', label='unknown transactional id'),
            add(v, [('{t}', 0)], pid=1234567, label='another producer id'),
            add(v, [('{t}', 0)], epoch='{e0}', label='stale epoch'),
            add(v, [('{t}', 0)], tid='', label='empty transactional id'),
            add(v, [('{t}', 0), ('{u}', 0), ('{t}', 5)], label='unknown topic and partition'),
            Step(25, v, {'TransactionalId': txn, 'ProducerId': '{pid}', 'ProducerEpoch': '{e0}', 'GroupId': '{g}'},
                 label='AddOffsetsToTxn, stale epoch'),
        ]
    for v in ([3, 4, 5] if full else [3, 4]):
        steps.append(Step(22, v, {'TransactionalId': txn, 'TransactionTimeoutMs': 60000, 'ProducerId': '{pid}',
                                  'ProducerEpoch': '{e0}'}, label='KIP-360, a stale epoch'))
    steps += [
        Step(0, 9, lambda t: produce_body([('{t}', 0, txn_batch(t))], txn=txn),
             label='transactional batch before AddPartitionsToTxn'),
        Step(0, 9, lambda t: produce_body([('{t}', 0, txn_batch(t))]),
             label='transactional batch, no transactional id'),
        add(3, [('{t}', 0)], label='add', retry=lambda b: b['ResultsByTopicV3AndBelow'][0]['ResultsByPartition'][0]
            ['PartitionErrorCode'] != 51),
        Step(0, 9, lambda t: produce_body([('{t}', 0, txn_batch(t))], txn=txn), label='transactional batch'),
        end(3, True, label='commit', retry=lambda b: b['ErrorCode'] != 51),
        end(3, False, label='abort after the commit', retry=lambda b: b['ErrorCode'] != 51),
        end(3, True, label='commit again', retry=lambda b: b['ErrorCode'] != 51),
        Step(0, 9, produce_body([('{t}', 1, batch(2))]), label='a plain batch'),
        Step(1, 12, fetch_body([('{t}', 1, 0)]), label='read back'),
        Step(2, 5, list_offsets_body([('{t}', 0, -1)], isolation=1), label='the LSO past the commit',
             retry=lambda b: b['Topics'][0]['Partitions'][0]['Offset'] == 2),
    ]
    return [Scenario('txn-bad-input', steps, topics={'t': 2, 'u': 0}, groups=['g'])]


def sc_transactions(full):
    """A transaction of each kind, through every version Spool serves of
    the transaction APIs (TV1: EndTxn < 5): partitions added at
    AddPartitionsToTxn v0-3, AddOffsetsToTxn v0-4, transactional batches,
    then the brokers' batched form (v4-5: verify-only for the partitions in
    it, one not in it, an unknown transactional id; and an add), EndTxn
    commit and abort; ListTransactions v0-2 (filters by state, producer id,
    duration, pattern, an unknown state) and DescribeTransactions while a
    transaction is open and after.  The producer id is each broker's own
    (learnt); the listings are compared only for this scenario's id."""
    ready = lambda b: b['ErrorCode'] not in (14, 15, 16, 51)          # noqa: E731
    txn = 'txs-{g}'

    def add(v, parts, label='', epoch='{e}'):
        topics = {}
        for t, p in parts:
            topics.setdefault(t, []).append(p)
        tl = [{'Name': t, 'Partitions': ps} for t, ps in topics.items()]
        return Step(24, v, {'V3AndBelowTransactionalId': txn, 'V3AndBelowProducerId': '{pid}',
                            'V3AndBelowProducerEpoch': epoch, 'V3AndBelowTopics': tl}, label=label,
                    retry=lambda b: all(p['PartitionErrorCode'] != 51 for t in b['ResultsByTopicV3AndBelow']
                                        for p in t['ResultsByPartition']))

    def batched(v, verify, parts, tid=txn, label=''):
        topics = {}
        for t, p in parts:
            topics.setdefault(t, []).append(p)
        return Step(24, v, {'Transactions': [{'TransactionalId': tid, 'ProducerId': '{pid}', 'ProducerEpoch': '{e}',
                                              'VerifyOnly': verify,
                                              'Topics': [{'Name': t, 'Partitions': ps} for t, ps in topics.items()]}]},
                    label=label)

    def end(v, commit, label=''):
        return Step(26, v, {'TransactionalId': txn, 'ProducerId': '{pid}', 'ProducerEpoch': '{e}',
                            'Committed': commit}, label=label, retry=lambda b: b['ErrorCode'] != 51)

    def txn_batch(t, p, n, seq):
        return batch(n, seq, producer_id=t.vars['pid'], producer_epoch=t.vars['e'], base_sequence=seq,
                     attributes=0x10)

    steps = [
        Step(10, 4, {'KeyType': 1, 'CoordinatorKeys': [txn]}, label='transaction coordinator',
             retry=lambda b: b['Coordinators'][0]['ErrorCode'] == 0),
        Step(22, 4, {'TransactionalId': txn, 'TransactionTimeoutMs': 60000, 'ProducerId': -1, 'ProducerEpoch': -1},
             label='init', retry=ready,
             learn={'pid': lambda b: b['ProducerId'], 'e': lambda b: b['ProducerEpoch']}),
        Step(65, 0, {'TransactionalIds': [txn, 'nope-{g}', '']}, label='describe, Empty'),
    ]
    seq = 0
    vs = [0, 1, 2, 3] if full else [0, 3]
    for i, v in enumerate(vs):
        commit = i % 2 == 0
        steps += [
            add(v, [('{t}', 0), ('{t}', 1)], label='add two partitions'),
            add(v, [('{t}', 0)], label='again: already in'),
            Step(25, v, {'TransactionalId': txn, 'ProducerId': '{pid}', 'ProducerEpoch': '{e}', 'GroupId': '{g}'},
                 label='add offsets', retry=lambda b: b['ErrorCode'] != 51),
            Step(0, 9, (lambda s: lambda t: produce_body([('{t}', 0, txn_batch(t, 0, 2, s))], txn=txn))(seq),
                 label='a transactional batch'),
            Step(65, 0, {'TransactionalIds': [txn]}, label='describe, Ongoing'),
            batched(4 if i % 2 else 5, True, [('{t}', 0), ('{t}', 1), ('{t}', 2)],
                    label='verify-only: two in, one not'),
            batched(4, True, [('{t}', 0)], tid='nope-{g}', label='verify-only: unknown transactional id'),
            end(min(v + 1, 4), commit, label='commit' if commit else 'abort'),
        ]
        seq += 2
    # AddOffsetsToTxn v4, EndTxn v4 in one more transaction
    steps += [
        Step(25, 4, {'TransactionalId': txn, 'ProducerId': '{pid}', 'ProducerEpoch': '{e}', 'GroupId': '{g}'},
             label='add offsets v4', retry=lambda b: b['ErrorCode'] != 51),
        end(4, False, label='abort v4'),
        Step(65, 0, {'TransactionalIds': [txn]}, label='describe, CompleteAbort',
             retry=lambda b: b['TransactionStates'][0]['TransactionState'] == 'CompleteAbort'),
        # (the records are not fetched: markers carry each broker's own clock; txn-markers reads them)
        Step(2, 5, list_offsets_body([('{t}', 0, -1), ('{t}', 1, -1)], isolation=1), label='the LSO'),
    ]
    for v in ([0, 1, 2] if full else [0, 2]):
        body = {'StateFilters': ['CompleteAbort', 'Bogus'], 'ProducerIdFilters': ['{pid}'], 'DurationFilter': -1,
                'TransactionalIdPattern': None}
        if v >= 2:
            body['TransactionalIdPattern'] = 'txs-.*'
        steps.append(Step(66, v, body, label='list: this producer, CompleteAbort'))
        steps.append(Step(66, v, {'StateFilters': ['Ongoing'], 'ProducerIdFilters': ['{pid}'],
                                  'DurationFilter': 3600000 if v >= 1 else -1, 'TransactionalIdPattern': None},
                          label='list: Ongoing (none)'))
    return [Scenario('transactions', steps, topics={'t': 3}, groups=['g'])]


# ---------------------------------------------------------------- all

BUILDERS = [
    sc_api_versions, sc_metadata, sc_produce, sc_produce_acks0, sc_produce_errors, sc_fetch, sc_list_offsets,
    sc_create_topics, sc_delete_topics, sc_create_partitions, sc_delete_records,
    sc_describe_configs, sc_alter_configs, sc_incremental_alter_configs, sc_cluster,
    sc_groups, sc_group_errors, sc_group_two_members, sc_static_member, sc_unsupported,
    sc_metadata_autocreate, sc_describe_topic_partitions, sc_idempotent, sc_init_producer_id,
    sc_txn_offset_commit, sc_txn_markers, sc_txn_bad_input, sc_transactions,
]


def scenarios(full):
    out = []
    for b in BUILDERS:
        out += b(full)
    return out
