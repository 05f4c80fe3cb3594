"""Basic connectivity: real clients (kcat, confluent-kafka, kafka-python) and
raw ApiVersions / Metadata exchanges against a fresh broker."""

import re
import signal

import pytest

import kafka_wire as kw
from spool_clients import confluent_metadata, kcat_list

UNKNOWN_TOPIC_OR_PARTITION = 3
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
INVALID_TOPIC_EXCEPTION = 17


# ------------------------------------------------------------------ kcat

def test_kcat_metadata_list(broker):
    res = kcat_list(broker.bootstrap)
    assert res.returncode == 0, res
    assert res.json is not None, res
    assert res.brokers() == [(1, '127.0.0.1', broker.port)], res
    assert res.json['controllerid'] == 1, res
    assert res.json['topics'] == [], res
    assert res.json['originating_broker']['id'] == 1, res


# ------------------------------------------------------------------ meta.properties

def test_meta_properties_format(broker):
    meta = broker.meta()
    assert re.fullmatch(r'[A-Za-z0-9_-]{22}', meta['cluster.id']), meta
    assert meta['node.id'] == '1', meta
    assert meta['version'] == '1', meta


# ------------------------------------------------------------------ confluent-kafka

def test_confluent_list_topics(broker):
    md = confluent_metadata(broker.bootstrap)
    assert md.cluster_id == broker.cluster_id()
    assert md.controller_id == 1
    assert sorted(md.brokers) == [1]
    b = md.brokers[1]
    assert (b.id, b.host, b.port) == (1, '127.0.0.1', broker.port)
    assert md.topics == {}
    assert md.orig_broker_id == 1


def test_confluent_unknown_topic(broker):
    from confluent_kafka import KafkaError
    md = confluent_metadata(broker.bootstrap, topic='nosuch',
                            **{'allow.auto.create.topics': False})
    assert list(md.topics) == ['nosuch']
    t = md.topics['nosuch']
    assert t.error is not None
    assert t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART == UNKNOWN_TOPIC_OR_PARTITION
    assert t.partitions == {}
    # brokers are still reported in a topic-specific request
    assert sorted(md.brokers) == [1]


# ------------------------------------------------------------------ kafka-python

def test_kafka_python_admin(broker):
    from kafka import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap,
                             client_id='spool-test',
                             request_timeout_ms=10000,
                             api_version_auto_timeout_ms=5000)
    try:
        cluster = admin.describe_cluster()
        assert cluster['cluster_id'] == broker.cluster_id(), cluster
        assert cluster['controller_id'] == 1, cluster
        brokers = [(b['node_id'], b['host'], b['port']) for b in cluster['brokers']]
        assert brokers == [(1, '127.0.0.1', broker.port)], cluster
        assert admin.list_topics() == []
    finally:
        admin.close()


# ------------------------------------------------------------------ node.id / rack

def test_node_id_and_rack_override(start_broker):
    b = start_broker({'node.id': 7, 'broker.rack': 'r1'})
    assert b.meta()['node.id'] == '7'

    md = confluent_metadata(b.bootstrap)
    assert sorted(md.brokers) == [7]
    assert (md.brokers[7].host, md.brokers[7].port) == ('127.0.0.1', b.port)
    assert md.controller_id == 7

    res = kcat_list(b.bootstrap)
    assert res.returncode == 0, res
    assert res.brokers() == [(7, '127.0.0.1', b.port)], res
    assert res.json['controllerid'] == 7, res

    resp = kw.parse_metadata_response_v1(
        kw.send_recv(b.port, kw.metadata_request(1, 4242)))
    assert resp['correlation_id'] == 4242
    assert resp['brokers'] == [{'node_id': 7, 'host': '127.0.0.1',
                                'port': b.port, 'rack': 'r1'}]
    assert resp['controller_id'] == 7
    assert resp['topics'] == []
    assert resp['trailing'] == 0


def test_raw_metadata_v1_default_rack_is_null(broker):
    resp = kw.parse_metadata_response_v1(
        kw.send_recv(broker.port, kw.metadata_request(1, 1)))
    assert resp['brokers'] == [{'node_id': 1, 'host': '127.0.0.1',
                                'port': broker.port, 'rack': None}]
    assert resp['controller_id'] == 1
    assert resp['topics'] == []
    assert resp['trailing'] == 0


def test_raw_metadata_v1_topic_errors(start_broker):
    broker = start_broker({'auto.create.topics.enable': 'false'})
    resp = kw.parse_metadata_response_v1(
        kw.send_recv(broker.port, kw.metadata_request(1, 9, topics=['nosuch', 'bad/name'])))
    errors = {t['name']: t['error_code'] for t in resp['topics']}
    assert errors == {'nosuch': 3, 'bad/name': 17}
    assert all(t['partitions'] == [] for t in resp['topics'])


def test_raw_metadata_v1_auto_creates(broker):
    # Metadata v1 always allows auto-creation (the flag arrived in v4); the
    # broker default auto.create.topics.enable=true creates the topic with
    # num.partitions=1 before answering, and still refuses a bad name.
    resp = kw.parse_metadata_response_v1(
        kw.send_recv(broker.port, kw.metadata_request(1, 9, topics=['fresh', 'bad/name'])))
    by_name = {t['name']: t for t in resp['topics']}
    assert by_name['bad/name']['error_code'] == 17
    assert by_name['fresh']['error_code'] == 0
    parts = by_name['fresh']['partitions']
    assert [(p['partition_index'], p['leader_id']) for p in parts] == [(0, 1)]
    assert 'created topic fresh with 1 partition' in broker.log_text()


# ------------------------------------------------------------------ restart

def test_cluster_id_persists_across_restart(start_broker, tmp_path):
    data = tmp_path / 'persist'
    b1 = start_broker(data_dir=data)
    id1 = confluent_metadata(b1.bootstrap).cluster_id
    assert id1 == b1.cluster_id()
    assert b1.stop(signal.SIGTERM, timeout=5) == 0

    b2 = start_broker(data_dir=data)
    id2 = confluent_metadata(b2.bootstrap).cluster_id
    assert id2 == id1
    assert b2.cluster_id() == id1
    assert 'formatting new cluster' not in b2.log_text()


# ------------------------------------------------------------------ raw ApiVersions

def test_raw_api_versions_v0(broker):
    resp = kw.parse_api_versions_response(
        kw.send_recv(broker.port, kw.api_versions_request(0, 11)), 0)
    assert resp['correlation_id'] == 11
    assert resp['error_code'] == 0
    assert resp['api_keys'][18] == (0, 4)
    assert resp['api_keys'][3][1] == 13
    assert resp['trailing'] == 0


def test_raw_api_versions_v3(broker):
    resp = kw.parse_api_versions_response(
        kw.send_recv(broker.port, kw.api_versions_request(3, 12, 'spool-test', '1.0')), 3)
    assert resp['correlation_id'] == 12
    assert resp['error_code'] == 0
    assert resp['api_keys'][18] == (0, 4)
    assert resp['api_keys'][3] == (0, 13)
    assert resp['throttle_time_ms'] == 0
    assert resp['trailing'] == 0


def test_raw_api_versions_unknown_version(broker):
    with kw.connect(broker.port) as s:
        payload = kw.send_recv(s, kw.api_versions_request(9, 13))
        resp = kw.parse_api_versions_response(payload, 0)
        assert resp['correlation_id'] == 13
        assert resp['error_code'] == UNSUPPORTED_VERSION
        assert resp['api_keys'], resp
        assert resp['api_keys'][18] == (0, 4)
        assert resp['trailing'] == 0
        # The connection stays usable: the client retries with a version it knows.
        resp = kw.parse_api_versions_response(
            kw.send_recv(s, kw.api_versions_request(3, 14)), 3)
        assert resp['correlation_id'] == 14
        assert resp['error_code'] == 0


def test_raw_api_versions_v3_invalid_software_name(broker):
    payload = kw.send_recv(broker.port,
                           kw.api_versions_request(3, 15, '-bad-', '1.0'))
    assert kw.correlation_id(payload) == 15
    resp = kw.parse_api_versions_response(payload, 3)
    assert resp['error_code'] == INVALID_REQUEST
    assert resp['api_keys'] == {}  # as Kafka: an error answer lists no APIs


# ------------------------------------------------------------------ every Metadata version

@pytest.mark.parametrize('version', range(13))
def test_raw_metadata_all_versions(start_broker, version):
    broker = start_broker({'auto.create.topics.enable': 'false'})
    cluster_id = broker.cluster_id()
    with kw.connect(broker.port) as s:
        # all topics
        md = kw.parse_metadata_response(
            kw.send_recv(s, kw.metadata_request(version, 100 + version)), version)
        assert md['correlation_id'] == 100 + version
        assert md['trailing'] == 0, md
        assert [(b['node_id'], b['host'], b['port']) for b in md['brokers']] == \
            [(1, '127.0.0.1', broker.port)]
        assert md['topics'] == []
        if version >= 1:
            assert md['controller_id'] == 1
        if version >= 2:
            assert md['cluster_id'] == cluster_id
        if version >= 3:
            assert md['throttle_time_ms'] == 0

        # named topics on the same connection
        md = kw.parse_metadata_response(
            kw.send_recv(s, kw.metadata_request(version, 200 + version,
                                                topics=['nosuch', 'bad/name'])),
            version)
        assert md['correlation_id'] == 200 + version
        assert md['trailing'] == 0, md
        errors = {t['name']: t['error_code'] for t in md['topics']}
        assert errors == {'nosuch': UNKNOWN_TOPIC_OR_PARTITION,
                          'bad/name': INVALID_TOPIC_EXCEPTION}
        assert all(t['partitions'] == [] for t in md['topics'])


def _cpu_seconds(pid):
    """utime + stime of a process, in seconds (/proc/<pid>/stat)."""
    import os
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def test_an_idle_broker_burns_no_cpu(broker):
    """Every background thread (flush, housekeeping, metadata, groups, I/O)
    sleeps when there is nothing to do: a timed wait on the wrong clock
    once made two of them spin.  A resource check, not a timing one: an
    idle broker should use a few milliseconds of CPU in two seconds, a
    spinning thread uses two seconds."""
    import time
    md = confluent_metadata(broker.bootstrap)
    assert md.brokers
    time.sleep(0.5)
    before = _cpu_seconds(broker.pid)
    time.sleep(2.0)
    used = _cpu_seconds(broker.pid) - before
    assert used < 0.5, 'an idle broker used %.2f s of CPU in 2 s' % used
