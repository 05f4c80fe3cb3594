"""Internal topics belong to the broker: a client can neither produce to
__consumer_offsets (a forged OffsetCommit record would become a group's
offset at the next start) nor create, delete or repartition it, and
auto-creation gives it the coordinator's shape, not num.partitions.

Kafka's answers: Produce to an internal topic -> INVALID_TOPIC_EXCEPTION
with no message (ReplicaManager.appendToLocalLog).  CreateTopics of an
internal name -> INVALID_REQUEST "Creation of internal topic X is
prohibited." (ControllerApis.createTopics says so for __cluster_metadata;
Spool extends it to every internal topic, and likewise refuses DeleteTopics
and CreatePartitions with INVALID_REQUEST, which Kafka's broker accepts).
"""

import re
import subprocess
import time

import kafka_wire as kw
from client_helpers import create_topic, producer
from group_helpers import Conn

OFFSETS = '__consumer_offsets'
INVALID_TOPIC_EXCEPTION = 17
INVALID_REQUEST = 42
UNKNOWN_TOPIC_OR_PARTITION = 3
FAST = {'group.initial.rebalance.delay.ms': 0}


def partition_for(group, n):
    """Kafka's abs(group.hashCode()) % n (ASCII ids)."""
    h = 0
    for c in group.encode():
        h = (h * 31 + c) & 0xffffffff
    if h >= 1 << 31:
        h -= 1 << 32
    return (0 if h == -(1 << 31) else abs(h)) % n


def forged_commit(group, topic, partition, offset):
    """An OffsetCommitKey v1 / OffsetCommitValue v3 record, as the
    coordinator writes it."""
    key = kw.int16(1) + kw.string(group) + kw.string(topic) + kw.int32(partition)
    value = (kw.int16(3) + kw.int64(offset) + kw.int32(-1) + kw.string('')
             + kw.int64(int(time.time() * 1000)))
    return key, value


def commit(bootstrap, group, topic, offsets):
    """A simple (memberless) commit through confluent-kafka; returns the
    per-partition results."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': group,
                  'enable.auto.commit': False})
    try:
        return c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                        asynchronous=False)
    finally:
        c.close()


def committed(bootstrap, group, topic, partitions):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': group,
                  'enable.auto.commit': False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=20)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def metadata(port, topics, auto_create=False, version=12):
    payload = kw.send_recv(port, kw.metadata_request(version, 1, topics,
                                                     allow_auto_topic_creation=auto_create))
    md = kw.parse_metadata_response(payload, version)
    return {t['name']: t for t in md['topics']}


def admin_error(future):
    """The KafkaError an AdminClient future failed with (or None)."""
    from confluent_kafka import KafkaException
    try:
        future.result(timeout=20)
    except KafkaException as e:
        return e.args[0]
    return None


def raw_produce_v9(port, topic, partition, batch):
    """Produce v9 (flexible; the response carries an error message)."""
    body = (kw.compact_string(None) + kw.int16(1) + kw.int32(5000)
            + kw.compact_array([kw.compact_string(topic)
                                + kw.compact_array([kw.int32(partition)
                                                    + kw.uvarint(len(batch) + 1) + batch
                                                    + kw.TAGGED_NONE])
                                + kw.TAGGED_NONE])
            + kw.TAGGED_NONE)
    r = kw.Reader(kw.send_recv(port, kw.request(0, 9, 7, body, flexible=True)))
    assert r.int32() == 7
    r.tagged_fields()

    def part(x):
        p = {'index': x.int32(), 'error_code': x.int16(), 'base_offset': x.int64(),
             'log_append_time': x.int64(), 'log_start_offset': x.int64()}
        x.compact_array(lambda y: (y.int32(), y.compact_string(), y.tagged_fields()))
        p['error_message'] = x.compact_string()
        x.tagged_fields()
        return p

    def top(x):
        t = (x.compact_string(), x.compact_array(part))
        x.tagged_fields()
        return t
    return dict(r.compact_array(top))


def record_batch(key, value):
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    b.append(0, timestamp=int(time.time() * 1000), key=key, value=value, headers=[])
    return bytes(b.build())


def test_clients_cannot_produce_to_consumer_offsets(start_broker):
    from confluent_kafka import KafkaError
    nparts = 3
    b = start_broker(dict(FAST, **{'offsets.topic.num.partitions': nparts}))
    create_topic(b.bootstrap, 'data', 1)
    group = 'g-forge'
    res = commit(b.bootstrap, group, 'data', {0: 5})
    assert all(tp.error is None for tp in res), res
    target = partition_for(group, nparts)

    # confluent-kafka: the delivery fails with Kafka's error
    key, value = forged_commit(group, 'data', 0, 999999)
    p = producer(b.bootstrap, **{'message.timeout.ms': 10000})
    reports = []
    p.produce(OFFSETS, key=key, value=value, partition=target,
              on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(20) == 0
    assert len(reports) == 1 and reports[0] is not None, reports
    assert reports[0].code() == KafkaError.TOPIC_EXCEPTION, reports[0]

    # kcat
    r = subprocess.run(['kcat', '-b', b.bootstrap, '-P', '-t', OFFSETS, '-p', str(target),
                        '-X', 'message.timeout.ms=10000'],
                       input=b'forged\n', capture_output=True, timeout=60)
    assert r.returncode != 0, r
    assert b'Invalid topic' in r.stderr, r.stderr

    # kafka-python
    from kafka import KafkaProducer
    from kafka.errors import InvalidTopicError
    kp = KafkaProducer(bootstrap_servers=b.bootstrap, retries=0, request_timeout_ms=10000)
    try:
        fut = kp.send(OFFSETS, key=key, value=value, partition=target)
        try:
            fut.get(timeout=20)
            raise AssertionError('kafka-python produced to %s' % OFFSETS)
        except InvalidTopicError:
            pass
    finally:
        kp.close()

    # a raw frame: the code, and no message (as Kafka), for every internal
    # topic, whether or not it exists
    for topic in (OFFSETS, '__transaction_state', '__share_group_state'):
        out = raw_produce_v9(b.port, topic, 0, record_batch(key, value))
        (part,) = out[topic]
        assert part['error_code'] == INVALID_TOPIC_EXCEPTION, (topic, part)
        assert part['error_message'] is None, part
        assert part['base_offset'] == -1, part
    # ... and nothing was created by asking
    md = metadata(b.port, ['__transaction_state', '__share_group_state'])
    assert all(t['error_code'] == UNKNOWN_TOPIC_OR_PARTITION for t in md.values()), md

    # the group's offset is the committed one, now and after a restart
    # (which replays __consumer_offsets)
    assert committed(b.bootstrap, group, 'data', [0]) == {0: 5}
    assert b.stop() == 0
    b2 = start_broker(dict(FAST, **{'offsets.topic.num.partitions': nparts}),
                      data_dir=b.data_dir)
    assert committed(b2.bootstrap, group, 'data', [0]) == {0: 5}
    md = metadata(b2.port, [OFFSETS])
    assert md[OFFSETS]['is_internal'] is True
    # nothing but the coordinator's records is in the group's partition
    hw = 0
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({'bootstrap.servers': b2.bootstrap, 'group.id': 'probe'})
    try:
        _lo, hw = c.get_watermark_offsets(TopicPartition(OFFSETS, target), timeout=10)
    finally:
        c.close()
    assert hw == 1, hw


def test_clients_cannot_create_delete_or_repartition_internal_topics(start_broker):
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import NewPartitions, NewTopic
    from spool_clients import confluent_admin
    b = start_broker(dict(FAST, **{'offsets.topic.num.partitions': 4}))
    admin = confluent_admin(b.bootstrap)

    # CreateTopics before the coordinator made it: refused, so a 1-partition
    # __consumer_offsets can no longer leave groups without a coordinator
    fs = admin.create_topics([NewTopic(OFFSETS, num_partitions=1, replication_factor=1),
                              NewTopic('__transaction_state', num_partitions=1,
                                       replication_factor=1)],
                             request_timeout=15)
    for name, f in fs.items():
        err = admin_error(f)
        assert err is not None and err.code() == KafkaError.INVALID_REQUEST, (name, err)
        assert 'Creation of internal topic %s is prohibited.' % name in err.str(), err.str()
    assert OFFSETS not in admin.list_topics(timeout=10).topics

    # kafka-python's admin client gets the same answer
    from kafka.admin import KafkaAdminClient, NewTopic as KNewTopic
    from kafka.errors import InvalidRequestError
    kadmin = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=10000)
    try:
        try:
            resp = kadmin.create_topics([KNewTopic(OFFSETS, 1, 1)])
            errs = [e for _n, e, *_ in resp.topic_errors]
            assert errs == [INVALID_REQUEST], resp
        except InvalidRequestError:
            pass
    finally:
        kadmin.close()

    # the coordinator creates it, with its own partition count
    create_topic(b.bootstrap, 'data', 2)
    res = commit(b.bootstrap, 'g-keep', 'data', {0: 7, 1: 9})
    assert all(tp.error is None for tp in res), res
    md = metadata(b.port, [OFFSETS])
    assert len(md[OFFSETS]['partitions']) == 4
    topic_id = md[OFFSETS]['topic_id']

    # DeleteTopics by name (confluent-kafka; its DeleteTopics version has
    # no error message) ...
    err = admin_error(admin.delete_topics([OFFSETS], request_timeout=15)[OFFSETS])
    assert err is not None and err.code() == KafkaError.INVALID_REQUEST, err
    # ... and by topic id (DeleteTopics v6, raw), with the message
    body = (kw.compact_array([kw.compact_string(None) + topic_id + kw.TAGGED_NONE])
            + kw.int32(15000) + kw.TAGGED_NONE)
    r = kw.Reader(kw.send_recv(b.port, kw.request(20, 6, 3, body, flexible=True)))
    assert r.int32() == 3
    r.tagged_fields()
    r.int32()

    def result(x):
        out = {'name': x.compact_string(), 'topic_id': x._take(16), 'error_code': x.int16(),
               'error_message': x.compact_string()}
        x.tagged_fields()
        return out
    (res,) = r.compact_array(result)
    assert res['error_code'] == INVALID_REQUEST, res
    assert res['name'] == OFFSETS and res['topic_id'] == topic_id, res
    assert res['error_message'] == 'Deletion of internal topic %s is prohibited.' % OFFSETS

    # CreatePartitions
    err = admin_error(admin.create_partitions([NewPartitions(OFFSETS, 10)],
                                              request_timeout=15)[OFFSETS])
    assert err is not None and err.code() == KafkaError.INVALID_REQUEST, err
    assert 'internal topic %s' % OFFSETS in err.str(), err.str()

    # nothing changed: same topic, same partitions, the group's offsets
    md = metadata(b.port, [OFFSETS])
    assert md[OFFSETS]['topic_id'] == topic_id
    assert len(md[OFFSETS]['partitions']) == 4
    assert committed(b.bootstrap, 'g-keep', 'data', [0, 1]) == {0: 7, 1: 9}
    assert 'deleted topic' not in b.log_text()


def test_auto_creation_gives_consumer_offsets_the_coordinators_shape(start_broker):
    from confluent_kafka.admin import ConfigResource
    from spool_clients import confluent_admin
    b = start_broker(dict(FAST, **{'offsets.topic.num.partitions': 5, 'num.partitions': 1}))
    # Metadata with auto-creation asks for it before any group exists
    metadata(b.port, [OFFSETS, '__transaction_state'], auto_create=True)
    md = metadata(b.port, [OFFSETS, '__transaction_state'])
    assert md[OFFSETS]['error_code'] == 0, md
    assert len(md[OFFSETS]['partitions']) == 5, md[OFFSETS]
    assert md[OFFSETS]['is_internal'] is True
    # no coordinator owns __transaction_state here: not created
    assert md['__transaction_state']['error_code'] == UNKNOWN_TOPIC_OR_PARTITION, md
    admin = confluent_admin(b.bootstrap)
    res = admin.describe_configs([ConfigResource('topic', OFFSETS)])
    (f,) = res.values()
    cfg = {k: v.value for k, v in f.result(timeout=20).items()}
    assert cfg['cleanup.policy'] == 'compact', cfg
    assert cfg['segment.bytes'] == '104857600', cfg

    # groups whose partition is not 0 have a coordinator
    create_topic(b.bootstrap, 'data', 1)
    groups = [g for g in ('ga', 'gb', 'gc', 'gd', 'ge', 'gf') if partition_for(g, 5) != 0][:3]
    assert groups
    for i, g in enumerate(groups):
        res = commit(b.bootstrap, g, 'data', {0: 10 + i})
        assert all(tp.error is None for tp in res), (g, res)
    for i, g in enumerate(groups):
        assert committed(b.bootstrap, g, 'data', [0]) == {0: 10 + i}


def test_existing_offsets_topic_with_another_partition_count_is_used(start_broker):
    """A data dir whose __consumer_offsets has a partition count other than
    offsets.topic.num.partitions (made by an older configuration, or by a
    client before clients were refused): the topic's count decides, so
    every group keeps its coordinator and its offsets."""
    b = start_broker(dict(FAST, **{'offsets.topic.num.partitions': 1}))
    create_topic(b.bootstrap, 'data', 1)
    groups = ['g-one', 'g-two', 'g-three']
    for i, g in enumerate(groups):
        res = commit(b.bootstrap, g, 'data', {0: 100 + i})
        assert all(tp.error is None for tp in res), res
    assert b.stop() == 0

    b2 = start_broker(dict(FAST, **{'offsets.topic.num.partitions': 4}), data_dir=b.data_dir)
    assert len(metadata(b2.port, [OFFSETS])[OFFSETS]['partitions']) == 1
    assert re.search(r'__consumer_offsets has 1 partitions, offsets.topic.num.partitions is 4',
                     b2.log_text()), b2.log_text()[-2000:]
    for i, g in enumerate(groups):
        assert committed(b2.bootstrap, g, 'data', [0]) == {0: 100 + i}
    # new commits and a whole rebalance work on it
    for i, g in enumerate(groups):
        res = commit(b2.bootstrap, g, 'data', {0: 200 + i})
        assert all(tp.error is None for tp in res), res
    conn = Conn(b2.port)
    try:
        j = conn.join('g-live', member_id='', version=3)
        assert j['error_code'] == 0, j
        s = conn.sync('g-live', j['generation_id'], j['member_id'], {j['member_id']: b''})
        assert s['error_code'] == 0, s
    finally:
        conn.close()
    assert b2.stop() == 0
    b3 = start_broker(FAST, data_dir=b.data_dir)
    for i, g in enumerate(groups):
        assert committed(b3.bootstrap, g, 'data', [0]) == {0: 200 + i}
