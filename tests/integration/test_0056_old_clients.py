"""Old tools that Kafka 4 no longer serves (KIP-896), Debian 12's own,
against Spool: Burrow 1.2.1, Sarama 1.22.1 and kafka-go 0.2.1
(old_clients.py builds and starts them; scripts/install-deps --test
installs them).

Neither Go library sends ApiVersions: each picks its request versions from
its configuration or its source, and those include versions Kafka 4.0
removed (ListOffsets v0, CreateTopics v0-1, DeleteTopics v0, DescribeConfigs
v0, OffsetCommit v1, OffsetFetch v0... Produce v0-2, Fetch v0-3).  Every
connection goes through old_clients.ApiRecorder (the broker advertises the
proxy), so each test also asserts that the tool did send the old versions
it is here for: a tool that moved to newer versions would not pass
unnoticed.

The broker does not create topics on Metadata requests
(auto.create.topics.enable=false): Metadata v0-v3 always ask for it, and
a topic created that way could hide a CreateTopics that did nothing.
"""
import time

import pytest

import old_clients as oc
from client_helpers import consume_assigned, create_topic, produce, producer

SPOOL = {'group.initial.rebalance.delay.ms': 0, 'auto.create.topics.enable': 'false'}

# Kafka's API keys
PRODUCE, FETCH, LIST_OFFSETS, METADATA, OFFSET_COMMIT, OFFSET_FETCH = 0, 1, 2, 3, 8, 9
FIND_COORDINATOR, JOIN_GROUP, SYNC_GROUP = 10, 11, 14
CREATE_TOPICS, DELETE_TOPICS, DESCRIBE_CONFIGS, ALTER_CONFIGS = 19, 20, 32, 33

N, PARTS = 30, 3


class Spool:
    def __init__(self, broker, recorder):
        self.broker, self.recorder = broker, recorder
        self.bootstrap = recorder.bootstrap   # through the proxy

    def sent(self, client_prefix):
        return self.recorder.sent(client_prefix)


@pytest.fixture
def spool(start_broker):
    rec = oc.ApiRecorder()
    try:
        b = start_broker(dict(SPOOL, **{'advertised.listeners': rec.advertised}))
        rec.upstream(b.port)
        yield Spool(b, rec)
    finally:
        rec.close()


def assert_sent(spool, client, want):
    """The tool sent (at least) these (API key, version) pairs."""
    sent = spool.sent(client)
    missing = set(want) - sent
    assert not missing, '%s did not send %s (it sent %s)' % (client, oc.describe(missing), oc.describe(sent))


def no_errors(out, spool, client):
    errors = out.get('errors')
    assert errors == {}, 'steps failed: %s\n%s sent: %s\n(its log: %s)' % (
        errors, client, oc.describe(spool.sent(client)), out.get('_stderr', '')[-2500:])


def configs_of(bootstrap, topic):
    from confluent_kafka.admin import AdminClient, ConfigResource
    admin = AdminClient({'bootstrap.servers': bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return {k: v.value for k, v in admin.describe_configs([res])[res].result(20).items()}


def topics_of(bootstrap):
    """{topic: partition count} from Debian's confluent-kafka (all topics)."""
    from confluent_kafka.admin import AdminClient
    md = AdminClient({'bootstrap.servers': bootstrap}).list_topics(timeout=20)
    return {t: len(m.partitions) for t, m in md.topics.items()}


def committed(bootstrap, group, topic, partitions):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': group, 'enable.auto.commit': False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=20)
    finally:
        c.close()
    return {tp.partition: tp.offset for tp in got}


def commit(bootstrap, group, topic, offsets):
    """Commits {partition: offset} for group without joining it (a simple
    consumer's commit, as a tool resetting offsets makes)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': group, 'enable.auto.commit': False})
    try:
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        c.close()


def read_back(bootstrap, topic):
    """Every record of topic, as Debian's confluent-kafka reads it:
    [partition, offset, key, value, timestamp] sorted."""
    msgs = consume_assigned(bootstrap, topic, list(range(PARTS)))
    return sorted([m.partition(), m.offset(), m.key().decode(), m.value().decode(), m.timestamp()[1]]
                  for m in msgs)


def want_records(tag):
    """The round trip's records as every program writes them: record i to
    partition i % 3, key k<i>, value v<i>-<tag>, timestamp 1700000000000 + i;
    [partition, offset, key, value, timestamp] sorted."""
    return sorted([i % PARTS, i // PARTS, 'k%d' % i, 'v%d-%s' % (i, tag), 1700000000000 + i]
                  for i in range(N))


# ---------------------------------------------------------------- Sarama

def test_sarama_admin(spool):
    """ClusterAdmin at Kafka 0.11: CreateTopics v1, DescribeConfigs v0,
    AlterConfigs v0, ListTopics (an all-topics Metadata v0 then
    DescribeConfigs v0), DeleteTopics v1."""
    prefix = 'sarama-adm'
    out = oc.run_go('sarama122', 'admin', spool.bootstrap, prefix)
    topic = prefix + '-adm'
    no_errors(out, spool, 'spool-sarama122-admin')
    assert out['create'] == 0 and out['create_again'] == 36, out   # TOPIC_ALREADY_EXISTS
    assert out['describe'] == {'name': topic, 'error': 0, 'partitions': [0, 1, 2]}, out['describe']
    cfg, alt = out['configs'], out['configs_altered']
    assert cfg['retention.ms'] == {'value': '3600000', 'default': False, 'read_only': False, 'sensitive': False}
    assert cfg['cleanup.policy'] == {'value': 'delete', 'default': True, 'read_only': False, 'sensitive': False}
    assert cfg['count'] > 20, cfg   # every topic config, not just the two set
    assert out['alter'] == 0
    assert alt['retention.ms']['value'] == '7200000' and alt['retention.ms']['default'] is False, alt
    # ListTopics keeps the non-default configs: only the one altered
    assert out['list'] == {'partitions': 3, 'replication_factor': 1, 'configs': {'retention.ms': '7200000'}}
    assert out['delete'] == 0 and out['gone'] is True, out
    assert topic not in topics_of(spool.bootstrap)
    assert_sent(spool, 'spool-sarama122-admin', {(CREATE_TOPICS, 1), (DESCRIBE_CONFIGS, 0), (ALTER_CONFIGS, 0),
                                                 (METADATA, 0), (DELETE_TOPICS, 1)})


def test_sarama_admin_kafka_0_10(spool):
    """ClusterAdmin at Kafka 0.10.2: CreateTopics v0, Metadata v0,
    DeleteTopics v0; the topic's partitions and config as Debian's
    confluent-kafka sees them."""
    prefix = 'sarama-adm010'
    out = oc.run_go('sarama122', 'admin010', spool.bootstrap, prefix)
    topic = prefix + '-adm'
    no_errors(out, spool, 'spool-sarama122-admin010')
    assert out['create'] == 0 and out['create_again'] == 36, out
    assert out['describe'] == {'name': topic, 'error': 0, 'partitions': [0, 1, 2]}, out['describe']
    assert out['delete'] == 0 and out['gone'] is True, out
    assert topic not in topics_of(spool.bootstrap)
    assert_sent(spool, 'spool-sarama122-admin010', {(CREATE_TOPICS, 0), (METADATA, 0), (DELETE_TOPICS, 0)})


def test_sarama_alter_unknown_topic(spool):
    """AlterConfigs v0 on a topic that does not exist: Sarama 1.22 decides
    by the resource's error message alone, so without one (UNKNOWN_TOPIC_OR_PARTITION
    and a null message) it reports that it altered the topic.  Kafka 4.3
    says "The topic '<name>' does not exist." there."""
    prefix = 'sarama-unknown'
    out = oc.run_go('sarama122', 'alter-unknown', spool.bootstrap, prefix)
    no_errors(out, spool, 'spool-sarama122-alter-unknown')
    assert out['alter'] == "The topic '%s-none' does not exist." % prefix, out
    assert_sent(spool, 'spool-sarama122-alter-unknown', {(ALTER_CONFIGS, 0)})


def test_sarama_roundtrip(spool):
    """A sync producer and a consumer group at Kafka 0.11 (Produce v3,
    Fetch v4, JoinGroup v1, SyncGroup v0, OffsetCommit v1, OffsetFetch v1):
    the records read back are those written, the commits are the ends."""
    prefix = 'sarama-rt'
    topic = prefix + '-rt'
    create_topic(spool.bootstrap, topic, PARTS)
    out = oc.run_go('sarama122', 'roundtrip', spool.bootstrap, prefix)
    no_errors(out, spool, 'spool-sarama122-roundtrip')
    assert out['produced'] == [[i % PARTS, i // PARTS] for i in range(N)], out['produced']
    assert out['group']['assigned'] == [0, 1, 2]
    got = sorted(r[:4] + [r[5]] for r in out['group']['records'])
    assert got == want_records('sarama-1.22')
    assert all(r[4] == [['seq', str(r[1] * PARTS + r[0])]] for r in out['group']['records']), \
        out['group']['records']
    ends = {str(p): N // PARTS for p in range(PARTS)}
    assert out['committed'] == ends and out['end_offsets'] == ends, out
    assert read_back(spool.bootstrap, topic) == want_records('sarama-1.22')
    assert committed(spool.bootstrap, prefix + '-g', topic, range(PARTS)) == {p: N // PARTS for p in range(PARTS)}
    assert_sent(spool, 'spool-sarama122-roundtrip', {(PRODUCE, 3), (FETCH, 4), (JOIN_GROUP, 1), (SYNC_GROUP, 0),
                                                     (OFFSET_COMMIT, 1), (OFFSET_FETCH, 1)})


def test_sarama_default_config_offsets(spool):
    """Sarama's default configuration (Kafka 0.8.2), as monitoring tools
    keep it: the topics (Metadata v0), the oldest and newest offsets
    (ListOffsets v0) and a group's commits (FindCoordinator v0, OffsetFetch
    v1) of a topic with different end offsets per partition."""
    prefix = 'sarama-off'
    topic, group = prefix + '-rt', prefix + '-g'
    create_topic(spool.bootstrap, topic, PARTS)
    ends = {0: 7, 1: 3, 2: 0}
    p = producer(spool.bootstrap)
    produce(p, topic, [{'partition': pp, 'value': b'x'} for pp, n in ends.items() for _ in range(n)])
    del p   # closed now, not after the broker has stopped
    commit(spool.bootstrap, group, topic, {0: 5, 1: 3})
    out = oc.run_go('sarama122', 'offsets', spool.bootstrap, prefix)
    no_errors(out, spool, 'spool-sarama122-offsets')
    assert out['version'] == '0.8.2.0'
    assert out['listed'] is True and out['partitions'] == [0, 1, 2], out
    assert out['newest'] == {str(p): n for p, n in ends.items()}, out['newest']
    assert out['oldest'] == {'0': 0, '1': 0, '2': 0}, out['oldest']
    assert out['committed'] == {'0': 5, '1': 3, '2': -1}, out['committed']  # -1: none (OffsetNewest)
    assert_sent(spool, 'spool-sarama122-offsets', {(METADATA, 0), (LIST_OFFSETS, 0), (FIND_COORDINATOR, 0),
                                                   (OFFSET_FETCH, 1)})


# -------------------------------------------------------------- kafka-go

def test_kafkago_admin(spool):
    """CreateTopics v0 (two topics, one with a config), Metadata v1,
    DeleteTopics v1; the topics as Debian's confluent-kafka sees them."""
    prefix = 'kafkago-adm'
    out = oc.run_go('kafkago02', 'admin', spool.bootstrap, prefix)
    no_errors(out, spool, 'spool-kafkago02')
    # kafka-go 0.2 turns TOPIC_ALREADY_EXISTS into no error: the second
    # create asked 5 partitions, the topic keeps its 3
    assert out['create'] == 0 and out['create_again'] == 0, out
    assert out['partitions'] == [0, 1, 2] and out['partitions_del'] == [0], out
    assert out['delete'] == 0 and out['gone'] is True, out
    topics = topics_of(spool.bootstrap)
    assert topics.get(prefix + '-adm') == 3 and prefix + '-del' not in topics, topics
    assert configs_of(spool.bootstrap, prefix + '-adm')['retention.ms'] == '3600000'
    assert_sent(spool, 'spool-kafkago02', {(CREATE_TOPICS, 0), (METADATA, 1), (DELETE_TOPICS, 1)})


def test_kafkago_roundtrip(spool):
    """Writes with Produce v2 (message format v1), reads with Fetch v2,
    alone and in a group (JoinGroup v1, SyncGroup v0, OffsetFetch v1,
    OffsetCommit v2): what is read is what was written, the commits are
    the ends."""
    prefix = 'kafkago-rt'
    topic = prefix + '-rt'
    create_topic(spool.bootstrap, topic, PARTS)
    out = oc.run_go('kafkago02', 'roundtrip', spool.bootstrap, prefix)
    no_errors(out, spool, 'spool-kafkago02')
    ends = {str(p): N // PARTS for p in range(PARTS)}
    assert out['produced'] == ends and out['end_offsets'] == ends, out
    assert sorted(out['read']) == want_records('kafka-go-0.2')
    assert sorted(out['group']) == want_records('kafka-go-0.2')
    assert read_back(spool.bootstrap, topic) == want_records('kafka-go-0.2')
    assert committed(spool.bootstrap, prefix + '-g', topic, range(PARTS)) == {p: N // PARTS for p in range(PARTS)}
    assert_sent(spool, 'spool-kafkago02', {(PRODUCE, 2), (FETCH, 2), (LIST_OFFSETS, 1), (JOIN_GROUP, 1),
                                           (SYNC_GROUP, 0), (OFFSET_FETCH, 1), (OFFSET_COMMIT, 2)})


# ---------------------------------------------------------------- Burrow

def poll(what, f, timeout=30):
    """f() until it returns something true; its last value in the message."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = f()
        if last and last[0]:
            return last[1]
        time.sleep(0.2)
    raise AssertionError('%s: not within %d s; last: %r' % (what, timeout, last and last[1]))


# Burrow's client-profile kafka-version: 2.0.0, the newest Burrow 1.2 knows
# (Fetch v4 of __consumer_offsets), and 0.10.0, the one in the burrow.toml
# Debian ships (Fetch v2: message format 1)
BURROW_FETCH = {'2.0.0': 4, '0.10.0': 2}


@pytest.mark.parametrize('kafka_version', sorted(BURROW_FETCH, reverse=True))
def test_burrow_lag(spool, tmp_path, kafka_version):
    """Burrow 1.2.1 watching Spool: the end offsets it asks with ListOffsets
    v0 (whatever its kafka-version) are the topic's, and the lag it computes
    from the commits it reads in __consumer_offsets is end minus committed,
    per partition."""
    topic, group = 'burrowed', 'burrow-watched'
    ends = {0: 10, 1: 20, 2: 5}
    commits = {0: 4, 1: 20, 2: 1}
    create_topic(spool.bootstrap, topic, PARTS)
    p = producer(spool.bootstrap)
    produce(p, topic, [{'partition': pp, 'value': b'x'} for pp, n in ends.items() for _ in range(n)])
    del p   # closed now, not after the broker has stopped
    # Burrow's consumer module stops at once if __consumer_offsets does not
    # exist; the group's first FindCoordinator creates it
    assert committed(spool.bootstrap, group, topic, range(PARTS)) == {p: -1001 for p in range(PARTS)}

    zk = oc.start_zookeeper(tmp_path / 'zookeeper')
    burrow = None
    try:
        burrow = oc.start_burrow(tmp_path / 'burrow', spool.bootstrap, zk.port, kafka_version)

        def topic_offsets():
            st, body = oc.burrow_get(burrow, '/v3/kafka/spool/topic/%s' % topic)
            return st == 200 and body.get('offsets') == [ends[p] for p in range(PARTS)], (st, body)
        # Burrow keeps a commit only for partitions whose end it knows
        poll('Burrow knows the end offsets', topic_offsets)
        commit(spool.bootstrap, group, topic, commits)

        def lag():
            st, body = oc.burrow_get(burrow, '/v3/kafka/spool/consumer/%s/lag' % group)
            if st != 200:
                return False, (st, body)
            parts = sorted(body['status'].get('partitions') or [], key=lambda x: x['partition'])
            got = {x['partition']: (x['end']['offset'] if x.get('end') else None, x.get('current_lag'))
                   for x in parts if x['topic'] == topic}
            want = {p: (commits[p], ends[p] - commits[p]) for p in range(PARTS)}
            return got == want, (got, want, body)
        status = poll('Burrow reports the lag per partition', lag)
        assert status[2]['status']['totallag'] == sum(ends[p] - commits[p] for p in range(PARTS)), status[2]
        assert burrow.running(), burrow.log_text()[-3000:]
    except BaseException:
        print('---- Burrow sent: %s' % oc.describe(spool.sent(oc.BURROW_CLIENT_ID)))
        if burrow is not None:
            print('---- Burrow log ----\n' + burrow.log_text()[-6000:])
        print('---- ZooKeeper log ----\n' + zk.log_text()[-2000:])
        raise
    finally:
        if burrow is not None:
            burrow.stop()
        zk.stop()
    assert_sent(spool, oc.BURROW_CLIENT_ID, {(LIST_OFFSETS, 0), (FETCH, BURROW_FETCH[kafka_version])})
