"""Admin APIs: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs,
CreatePartitions, DeleteRecords, DescribeCluster, DescribeLogDirs.

Driven through real clients where they speak the API (kafka-python
KafkaAdminClient, confluent-kafka AdminClient, kcat -L), and through raw
frames (kafka_wire) for what the installed clients lack:
IncrementalAlterConfigs, DeleteRecords, DescribeLogDirs, DescribeCluster,
the flexible DescribeConfigs v3/v4 fields, and requests a client would
refuse to build (duplicates, other brokers' ids, unknown resource types).
"""

import itertools
import os

import pytest

import kafka_wire as kw
from client_helpers import create_topic, produce, producer
from spool_clients import confluent_admin, kcat_list

API_DELETE_RECORDS = 21
API_DESCRIBE_CONFIGS = 32
API_ALTER_CONFIGS = 33
API_DESCRIBE_LOG_DIRS = 35
API_CREATE_PARTITIONS = 37
API_INCREMENTAL_ALTER_CONFIGS = 44
API_DESCRIBE_CLUSTER = 60

TOPIC, BROKER, BROKER_LOGGER = 2, 4, 8
SRC_DYNAMIC_TOPIC, SRC_DYNAMIC_BROKER, SRC_STATIC_BROKER, SRC_DEFAULT = 1, 2, 4, 5
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3

ERR_OFFSET_OUT_OF_RANGE = 1
ERR_UNKNOWN_TOPIC = 3
ERR_INVALID_PARTITIONS = 37
ERR_INVALID_REPLICA_ASSIGNMENT = 39
ERR_INVALID_CONFIG = 40
ERR_INVALID_REQUEST = 42
ERR_POLICY_VIOLATION = 44
ERR_MISMATCHED_ENDPOINT_TYPE = 114
ERR_UNSUPPORTED_ENDPOINT_TYPE = 115

# only broker keys that are defaults of topic keys are dynamic (test_0011)
NOT_DYNAMIC_MSG = 'Cannot update these configs dynamically: [%s]'

_corr = itertools.count(1000)


# ------------------------------------------------------------------ raw wire


class Enc:
    """Encoders for one request version: classic or flexible (compact)."""

    def __init__(self, flexible):
        self.flex = flexible

    def s(self, v):
        return kw.compact_string(v) if self.flex else kw.string(v)

    def arr(self, items):
        return kw.compact_array(items) if self.flex else kw.array(items)

    def tags(self):
        return kw.TAGGED_NONE if self.flex else b''


class Dec:
    """Decoder over a response body (header already consumed)."""

    def __init__(self, r, flexible):
        self.r = r
        self.flex = flexible

    def s(self):
        return self.r.compact_string() if self.flex else self.r.string()

    def arr(self, item):
        f = self.r.compact_array if self.flex else self.r.array
        return f(lambda _rr: item())

    def tags(self):
        if self.flex:
            self.r.tagged_fields()


def call(port, api, version, body, flexible):
    """Sends one request and returns a Dec positioned after the response
    header (correlation id checked, v1 header tags skipped)."""
    corr = next(_corr)
    payload = kw.send_recv(port, kw.request(api, version, corr, body, flexible=flexible),
                           timeout=15)
    r = kw.Reader(payload)
    assert r.int32() == corr
    if flexible:
        r.tagged_fields()
    return Dec(r, flexible)


def describe_configs_raw(port, version, resources, synonyms=False, docs=False):
    """resources: [(type, name, keys or None)].  Returns a list of result
    dicts with 'configs' {name: entry dict}."""
    flex = version >= 4
    e = Enc(flex)
    body = e.arr(kw.int8(t) + e.s(n) + e.arr(None if keys is None else [e.s(k) for k in keys])
                 + e.tags() for t, n, keys in resources)
    body += kw.boolean(synonyms)
    if version >= 3:
        body += kw.boolean(docs)
    body += e.tags()
    d = call(port, API_DESCRIBE_CONFIGS, version, body, flex)
    r = d.r
    assert r.int32() == 0  # throttle

    def synonym():
        out = {'name': d.s(), 'value': d.s(), 'source': r.int8()}
        d.tags()
        return out

    def entry():
        out = {'name': d.s(), 'value': d.s(), 'read_only': r.boolean(),
               'source': r.int8(), 'is_sensitive': r.boolean(),
               'synonyms': d.arr(synonym)}
        if version >= 3:
            out['type'] = r.int8()
            out['doc'] = d.s()
        d.tags()
        return out

    def result():
        out = {'error_code': r.int16(), 'error_message': d.s(), 'type': r.int8(),
               'name': d.s()}
        configs = d.arr(entry)
        out['config_list'] = configs
        out['configs'] = {c['name']: c for c in configs}
        d.tags()
        return out

    results = d.arr(result)
    d.tags()
    assert r.remaining() == 0
    return results


def alter_configs_raw(port, resources, validate_only=False, version=0):
    """AlterConfigs: resources [(type, name, {key: value})]."""
    flex = version >= 2
    e = Enc(flex)
    body = e.arr(kw.int8(t) + e.s(n) + e.arr(e.s(k) + e.s(v) + e.tags() for k, v in cfg)
                 + e.tags() for t, n, cfg in resources)
    body += kw.boolean(validate_only) + e.tags()
    return _alter_response(call(port, API_ALTER_CONFIGS, version, body, flex))


def incremental_alter_raw(port, resources, validate_only=False, version=0):
    """IncrementalAlterConfigs: resources [(type, name, [(key, op, value)])]."""
    flex = version >= 1
    e = Enc(flex)
    body = e.arr(kw.int8(t) + e.s(n)
                 + e.arr(e.s(k) + kw.int8(op) + e.s(v) + e.tags() for k, op, v in cfg)
                 + e.tags() for t, n, cfg in resources)
    body += kw.boolean(validate_only) + e.tags()
    return _alter_response(call(port, API_INCREMENTAL_ALTER_CONFIGS, version, body, flex))


def _alter_response(d):
    r = d.r
    assert r.int32() == 0

    def resp():
        out = (r.int16(), d.s(), r.int8(), d.s())
        d.tags()
        return out

    out = d.arr(resp)
    d.tags()
    assert r.remaining() == 0
    return out


def create_partitions_raw(port, topics, validate_only=False, version=0):
    """topics: [(name, count, assignments or None)]."""
    flex = version >= 2
    e = Enc(flex)
    body = e.arr(e.s(n) + kw.int32(c)
                 + e.arr(None if a is None else
                         [e.arr(kw.int32(b) for b in brokers) + e.tags() for brokers in a])
                 + e.tags() for n, c, a in topics)
    body += kw.int32(10000) + kw.boolean(validate_only) + e.tags()
    d = call(port, API_CREATE_PARTITIONS, version, body, flex)
    r = d.r
    assert r.int32() == 0

    def res():
        out = (d.s(), r.int16(), d.s())
        d.tags()
        return out

    out = d.arr(res)
    d.tags()
    assert r.remaining() == 0
    return out


def delete_records_raw(port, topics, version=0):
    """topics: {name: [(partition, offset)]} -> {name: {p: (low_watermark, err)}}."""
    flex = version >= 2
    e = Enc(flex)
    body = e.arr(e.s(n) + e.arr(kw.int32(p) + kw.int64(o) + e.tags() for p, o in parts) + e.tags()
                 for n, parts in topics.items())
    body += kw.int32(10000) + e.tags()
    d = call(port, API_DELETE_RECORDS, version, body, flex)
    r = d.r
    assert r.int32() == 0

    def part():
        out = (r.int32(), r.int64(), r.int16())
        d.tags()
        return out

    def topic():
        name = d.s()
        parts = d.arr(part)
        d.tags()
        return name, {p: (lw, err) for p, lw, err in parts}

    out = dict(d.arr(topic))
    d.tags()
    assert r.remaining() == 0
    return out


def describe_cluster_raw(port, version, endpoint_type=1, include_ops=False):
    body = kw.boolean(include_ops)
    if version >= 1:
        body += kw.int8(endpoint_type)
    body += kw.TAGGED_NONE
    d = call(port, API_DESCRIBE_CLUSTER, version, body, True)
    r = d.r
    out = {'throttle': r.int32(), 'error_code': r.int16(), 'error_message': d.s()}
    if version >= 1:
        out['endpoint_type'] = r.int8()
    out['cluster_id'] = d.s()
    out['controller_id'] = r.int32()

    def broker():
        b = (r.int32(), d.s(), r.int32(), d.s())
        d.tags()
        return b

    out['brokers'] = d.arr(broker)
    out['cluster_authorized_operations'] = r.int32()
    d.tags()
    assert r.remaining() == 0
    return out


def describe_log_dirs_raw(port, version, topics=None):
    """topics: None (all) or [(name, [partitions])].  Returns (top-level
    error (v3+) or None, [result dict])."""
    flex = version >= 2
    e = Enc(flex)
    body = e.arr(None if topics is None else
                 [e.s(n) + e.arr(kw.int32(p) for p in ps) + e.tags() for n, ps in topics])
    body += e.tags()
    d = call(port, API_DESCRIBE_LOG_DIRS, version, body, flex)
    r = d.r
    assert r.int32() == 0
    top_err = r.int16() if version >= 3 else None

    def part():
        p = {'partition': r.int32(), 'size': r.int64(), 'offset_lag': r.int64(),
             'is_future': r.boolean()}
        d.tags()
        return p

    def topic():
        t = (d.s(), d.arr(part))
        d.tags()
        return t

    def result():
        res = {'error_code': r.int16(), 'log_dir': d.s()}
        res['topics'] = {name: {p['partition']: p for p in parts} for name, parts in d.arr(topic)}
        if version >= 4:
            res['total_bytes'] = r.int64()
            res['usable_bytes'] = r.int64()
        d.tags()
        return res

    results = d.arr(result)
    d.tags()
    assert r.remaining() == 0
    return top_err, results


# ------------------------------------------------------------------ clients


def kp_admin(bootstrap):
    from kafka import KafkaAdminClient
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id='spool-test',
                            request_timeout_ms=15000, api_version_auto_timeout_ms=5000)


def kp_topic_configs(admin, topic, keys=None):
    """{name: (value, source, read_only, synonyms)} via kafka-python (v2)."""
    from kafka.admin import ConfigResource, ConfigResourceType
    cfg = None if keys is None else {k: None for k in keys}
    resp = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=cfg)],
                                  include_synonyms=True)
    (res,) = resp[0].resources
    err, msg, rtype, rname, entries = res
    assert (err, rtype, rname) == (0, TOPIC, topic), res
    return {e[0]: (e[1], e[3], e[2], [tuple(s) for s in e[5]]) for e in entries}


def kp_alter(admin, topic, configs):
    """AlterConfigs through kafka-python; returns (error_code, message)."""
    from kafka.admin import ConfigResource, ConfigResourceType
    resp = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
    (res,) = resp.resources
    return res[0], res[1]


def partition_count(bootstrap, topic):
    res = kcat_list(bootstrap, extra=['-t', topic])
    assert res.returncode == 0, res
    (t,) = [t for t in res.json['topics'] if t['topic'] == topic]
    return len(t['partitions'])


@pytest.fixture
def admin(broker):
    a = kp_admin(broker.bootstrap)
    yield a
    a.close()


# ------------------------------------------------------------------ ApiVersions


def test_api_versions_lists_admin_apis(broker):
    resp = kw.parse_api_versions_response(
        kw.send_recv(broker.port, kw.api_versions_request(3, 1)), 3)
    keys = resp['api_keys']
    assert keys[API_CREATE_PARTITIONS] == (0, 3)
    assert keys[API_DELETE_RECORDS] == (0, 2)
    assert keys[API_DESCRIBE_CONFIGS] == (0, 4)
    assert keys[API_ALTER_CONFIGS] == (0, 2)
    assert keys[API_INCREMENTAL_ALTER_CONFIGS] == (0, 1)
    assert keys[API_DESCRIBE_CLUSTER] == (0, 2)
    assert keys[API_DESCRIBE_LOG_DIRS] == (0, 5)


# ------------------------------------------------------------------ DescribeConfigs / AlterConfigs (kafka-python)


def test_describe_topic_defaults(broker, admin):
    create_topic(broker.bootstrap, 'dc-defaults')
    cfg = kp_topic_configs(admin, 'dc-defaults')
    assert cfg['retention.ms'][:3] == ('604800000', SRC_DEFAULT, False)
    assert cfg['retention.ms'][3] == [('log.retention.ms', '604800000', SRC_DEFAULT)]
    assert cfg['cleanup.policy'][:2] == ('delete', SRC_DEFAULT)
    assert cfg['flush.messages'][:2] == ('1', SRC_DEFAULT)
    assert cfg['segment.bytes'][:2] == ('1073741824', SRC_DEFAULT)
    assert cfg['max.message.bytes'][:2] == ('1048588', SRC_DEFAULT)
    assert cfg['message.timestamp.type'][:2] == ('CreateTime', SRC_DEFAULT)
    assert len(cfg) >= 20
    # only the keys asked for
    assert set(kp_topic_configs(admin, 'dc-defaults', ['retention.ms', 'segment.ms'])) == \
        {'retention.ms', 'segment.ms'}


def test_alter_topic_config_and_read_back(broker, admin):
    create_topic(broker.bootstrap, 'dc-alter')
    assert kp_alter(admin, 'dc-alter', {'retention.ms': '1000'}) == (0, None)
    cfg = kp_topic_configs(admin, 'dc-alter', ['retention.ms'])
    value, source, read_only, synonyms = cfg['retention.ms']
    assert (value, source, read_only) == ('1000', SRC_DYNAMIC_TOPIC, False)
    assert synonyms == [('retention.ms', '1000', SRC_DYNAMIC_TOPIC),
                        ('log.retention.ms', '604800000', SRC_DEFAULT)]

    # AlterConfigs replaces the whole set: retention.ms goes back to default
    assert kp_alter(admin, 'dc-alter', {'segment.ms': '3600000'}) == (0, None)
    cfg = kp_topic_configs(admin, 'dc-alter', ['retention.ms', 'segment.ms'])
    assert cfg['retention.ms'][:2] == ('604800000', SRC_DEFAULT)
    assert cfg['segment.ms'][:2] == ('3600000', SRC_DYNAMIC_TOPIC)


def test_alter_topic_config_errors(broker, admin):
    create_topic(broker.bootstrap, 'dc-bad')
    err, msg = kp_alter(admin, 'dc-bad', {'retention.ms': 'abc'})
    assert err == ERR_INVALID_CONFIG and 'retention.ms' in msg
    err, msg = kp_alter(admin, 'dc-bad', {'retention.ms': '-5'})
    assert err == ERR_INVALID_CONFIG
    err, msg = kp_alter(admin, 'dc-bad', {'no.such.key': '1'})
    assert err == ERR_INVALID_CONFIG and 'no.such.key' in msg
    err, msg = kp_alter(admin, 'dc-bad', {'cleanup.policy': 'shred'})
    assert err == ERR_INVALID_CONFIG
    err, _ = kp_alter(admin, 'no-such-topic', {'retention.ms': '1000'})
    assert err == ERR_UNKNOWN_TOPIC
    # nothing was changed by the failed requests
    assert kp_topic_configs(admin, 'dc-bad', ['retention.ms'])['retention.ms'][:2] == \
        ('604800000', SRC_DEFAULT)


def test_alter_validate_only_changes_nothing(broker):
    create_topic(broker.bootstrap, 'dc-validate')
    out = alter_configs_raw(broker.port, [(TOPIC, 'dc-validate', [('retention.ms', '1000')])],
                            validate_only=True)
    assert out == [(0, None, TOPIC, 'dc-validate')]
    out = alter_configs_raw(broker.port, [(TOPIC, 'dc-validate', [('retention.ms', 'x')])],
                            validate_only=True)
    assert out[0][0] == ERR_INVALID_CONFIG
    (res,) = describe_configs_raw(broker.port, 1, [(TOPIC, 'dc-validate', ['retention.ms'])])
    assert res['configs']['retention.ms']['value'] == '604800000'
    assert res['configs']['retention.ms']['source'] == SRC_DEFAULT


def test_alter_configs_raw_mixed_resources_keep_order(broker):
    create_topic(broker.bootstrap, 'dc-mixed')
    for version in (0, 1, 2):
        out = alter_configs_raw(broker.port, [
            (BROKER, '1', [('log.retention.ms', '1000')]),
            (TOPIC, 'dc-mixed', [('retention.ms', str(2000 + version))]),
            (BROKER_LOGGER, '1', [('kafka', 'DEBUG')]),
            (TOPIC, 'dup', [('retention.ms', '1')]),
            (TOPIC, 'dup', [('retention.ms', '2')]),
            (TOPIC, 'no-such', [('retention.ms', '1')]),
        ], version=version)
        assert [(e, t, n) for e, _m, t, n in out] == [
            (0, BROKER, '1'),
            (0, TOPIC, 'dc-mixed'),
            (ERR_INVALID_REQUEST, BROKER_LOGGER, '1'),
            (ERR_INVALID_REQUEST, TOPIC, 'dup'),
            (ERR_INVALID_REQUEST, TOPIC, 'dup'),
            (ERR_UNKNOWN_TOPIC, TOPIC, 'no-such'),
        ], out
        assert out[0][1] is None
        assert 'unsupported resource type' in out[2][1]
        (res,) = describe_configs_raw(broker.port, 2, [(TOPIC, 'dc-mixed', ['retention.ms'])])
        assert res['configs']['retention.ms']['value'] == str(2000 + version)
        (res,) = describe_configs_raw(broker.port, 2, [(BROKER, '1', ['log.retention.ms'])])
        assert res['configs']['log.retention.ms']['value'] == '1000'
        assert res['configs']['log.retention.ms']['source'] == SRC_DYNAMIC_BROKER
    # a broker key that is not dynamic; another broker's id
    out = alter_configs_raw(broker.port, [(BROKER, '1', [('num.partitions', '3')]),
                                          (BROKER, '2', [('log.retention.ms', '3')])])
    assert out[0] == (ERR_INVALID_REQUEST, NOT_DYNAMIC_MSG % 'num.partitions', BROKER, '1')
    assert out[1][0] == ERR_INVALID_REQUEST and 'Unexpected broker id' in out[1][1]
    # a key given twice in one resource
    out = alter_configs_raw(broker.port, [(TOPIC, 'dc-mixed', [('retention.ms', '1'),
                                                              ('retention.ms', '2')])])
    assert out[0][0] == ERR_INVALID_REQUEST
    # no resources at all
    assert alter_configs_raw(broker.port, []) == []


def test_kafka_python_broker_alter(broker, admin):
    from kafka.admin import ConfigResource, ConfigResourceType
    resp = admin.alter_configs([ConfigResource(ConfigResourceType.BROKER, '1',
                                               configs={'log.retention.ms': '1000'})])
    (res,) = resp.resources
    assert res[0] == 0, res
    resp = admin.alter_configs([ConfigResource(ConfigResourceType.BROKER, '1',
                                               configs={'listeners': 'PLAINTEXT://:1'})])
    (res,) = resp.resources
    assert res[0] == ERR_INVALID_REQUEST and res[1] == NOT_DYNAMIC_MSG % 'listeners'


# ------------------------------------------------------------------ IncrementalAlterConfigs (raw)


def test_incremental_alter_configs(broker):
    create_topic(broker.bootstrap, 'ia')
    for version in (0, 1):
        out = incremental_alter_raw(broker.port, [(TOPIC, 'ia', [
            ('retention.ms', OP_SET, '5000'),
            ('cleanup.policy', OP_APPEND, 'compact'),
        ])], version=version)
        assert out == [(0, None, TOPIC, 'ia')]
        (res,) = describe_configs_raw(broker.port, 1, [(TOPIC, 'ia', None)])
        c = res['configs']
        assert (c['retention.ms']['value'], c['retention.ms']['source']) == ('5000', SRC_DYNAMIC_TOPIC)
        assert c['cleanup.policy']['value'] == 'delete,compact'
        # incremental: untouched keys keep their overrides
        out = incremental_alter_raw(broker.port, [(TOPIC, 'ia', [
            ('cleanup.policy', OP_SUBTRACT, 'delete'),
        ])], version=version)
        assert out == [(0, None, TOPIC, 'ia')]
        (res,) = describe_configs_raw(broker.port, 1, [(TOPIC, 'ia', ['retention.ms', 'cleanup.policy'])])
        assert res['configs']['cleanup.policy']['value'] == 'compact'
        assert res['configs']['retention.ms']['value'] == '5000'
        out = incremental_alter_raw(broker.port, [(TOPIC, 'ia', [
            ('retention.ms', OP_DELETE, None), ('cleanup.policy', OP_DELETE, None),
        ])], version=version)
        assert out == [(0, None, TOPIC, 'ia')]
        (res,) = describe_configs_raw(broker.port, 1, [(TOPIC, 'ia', ['retention.ms', 'cleanup.policy'])])
        assert res['configs']['retention.ms']['value'] == '604800000'
        assert res['configs']['retention.ms']['source'] == SRC_DEFAULT
        assert res['configs']['cleanup.policy']['value'] == 'delete'


def test_incremental_alter_errors(broker):
    create_topic(broker.bootstrap, 'ia-err')
    out = incremental_alter_raw(broker.port, [
        (TOPIC, 'ia-err', [('retention.ms', 9, '1')]),                  # unknown op
        (TOPIC, 'nope', [('retention.ms', OP_SET, '1')]),
        (BROKER, '1', [('num.partitions', OP_SET, '2')]),
        (TOPIC, 'ia-err', [('retention.ms', OP_SET, '1')]),              # duplicate resource
    ])
    assert [e for e, _m, _t, _n in out] == [ERR_INVALID_REQUEST, ERR_UNKNOWN_TOPIC,
                                            ERR_INVALID_REQUEST, ERR_INVALID_REQUEST]
    assert out[2][1] == NOT_DYNAMIC_MSG % 'num.partitions'
    out = incremental_alter_raw(broker.port, [(TOPIC, 'ia-err', [('retention.ms', 9, '1')])])
    assert out[0][0] == ERR_INVALID_REQUEST and 'operation' in out[0][1]
    out = incremental_alter_raw(broker.port, [(TOPIC, 'ia-err', [('segment.ms', OP_APPEND, '5')])])
    assert out[0][0] == ERR_INVALID_CONFIG
    out = incremental_alter_raw(broker.port, [(TOPIC, 'ia-err', [('bogus.key', OP_SET, '5')])])
    assert out[0][0] == ERR_INVALID_CONFIG
    out = incremental_alter_raw(broker.port, [(TOPIC, 'ia-err', [('retention.ms', OP_SET, '1'),
                                                                ('retention.ms', OP_DELETE, None)])])
    assert out[0][0] == ERR_INVALID_REQUEST
    out = incremental_alter_raw(broker.port, [(TOPIC, 'ia-err', [('retention.ms', OP_SET, '7')])],
                                validate_only=True)
    assert out == [(0, None, TOPIC, 'ia-err')]
    (res,) = describe_configs_raw(broker.port, 1, [(TOPIC, 'ia-err', ['retention.ms'])])
    assert res['configs']['retention.ms']['value'] == '604800000'


# ------------------------------------------------------------------ DescribeConfigs (raw)


def test_describe_configs_raw_versions(broker):
    create_topic(broker.bootstrap, 'dc-raw')
    alter_configs_raw(broker.port, [(TOPIC, 'dc-raw', [('min.cleanable.dirty.ratio', '0.25')])])
    for version in (1, 2, 3, 4):
        (res,) = describe_configs_raw(broker.port, version, [(TOPIC, 'dc-raw', None)],
                                      synonyms=True, docs=True)
        assert (res['error_code'], res['error_message']) == (0, None)
        c = res['configs']
        r = c['min.cleanable.dirty.ratio']
        assert (r['value'], r['source'], r['read_only'], r['is_sensitive']) == \
            ('0.25', SRC_DYNAMIC_TOPIC, False, False)
        assert r['synonyms'] == [
            {'name': 'min.cleanable.dirty.ratio', 'value': '0.25', 'source': SRC_DYNAMIC_TOPIC},
            {'name': 'log.cleaner.min.cleanable.ratio', 'value': '0.5', 'source': SRC_DEFAULT}]
        if version >= 3:
            assert r['type'] == 6  # DOUBLE
            assert c['retention.ms']['type'] == 5  # LONG
            assert c['segment.bytes']['type'] == 3  # INT
            assert c['cleanup.policy']['type'] == 7  # LIST
            assert c['unclean.leader.election.enable']['type'] == 1  # BOOLEAN
            assert c['message.timestamp.type']['type'] == 2  # STRING
            assert c['retention.ms']['doc']
    # without synonyms / documentation
    (res,) = describe_configs_raw(broker.port, 3, [(TOPIC, 'dc-raw', ['retention.ms'])])
    assert res['configs']['retention.ms']['synonyms'] == []
    assert res['configs']['retention.ms']['doc'] is None
    # an empty key list means every key, as in Kafka
    (res,) = describe_configs_raw(broker.port, 1, [(TOPIC, 'dc-raw', [])])
    assert len(res['configs']) >= 20 and 'retention.ms' in res['configs']
    # unknown keys are simply absent
    (res,) = describe_configs_raw(broker.port, 1, [(TOPIC, 'dc-raw', ['nope', 'retention.ms'])])
    assert list(res['configs']) == ['retention.ms']


def test_describe_configs_raw_errors(broker):
    results = describe_configs_raw(broker.port, 4, [
        (TOPIC, 'missing-topic', None),
        (BROKER, '99', None),
        (BROKER, 'abc', None),
        (BROKER_LOGGER, '1', None),
        (16, 'metrics', None),
        (TOPIC, 'bad/name', None),
    ])
    assert [(r['error_code'], r['type'], r['name']) for r in results] == [
        (ERR_UNKNOWN_TOPIC, TOPIC, 'missing-topic'),
        (ERR_INVALID_REQUEST, BROKER, '99'),
        (ERR_INVALID_REQUEST, BROKER, 'abc'),
        (ERR_INVALID_REQUEST, BROKER_LOGGER, '1'),
        (ERR_INVALID_REQUEST, 16, 'metrics'),
        (17, TOPIC, 'bad/name'),
    ]
    assert 'missing-topic' in results[0]['error_message']
    assert '99' in results[1]['error_message']
    assert 'unsupported resource type' in results[3]['error_message']
    assert all(r['configs'] == {} for r in results)


def test_describe_broker_configs(broker, admin):
    from kafka.admin import ConfigResource, ConfigResourceType
    resp = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, '1')],
                                  include_synonyms=True)
    (res,) = resp[0].resources
    assert res[0] == 0, res
    cfg = {e[0]: e for e in res[4]}
    name, value, read_only, source, sensitive, _syn = cfg['socket.request.max.bytes']
    assert (value, read_only, source, sensitive) == ('104857600', True, SRC_DEFAULT, False)
    assert cfg['log.dirs'][1:4] == (str(broker.data_dir), True, SRC_STATIC_BROKER)
    assert cfg['num.partitions'][1:4] == ('1', True, SRC_DEFAULT)
    assert 'broker.id' not in cfg  # alias of node.id
    assert cfg['node.id'][1] == '1'

    # raw v4, config types, documentation; "" is the cluster default
    for name in ('1', ''):
        (res,) = describe_configs_raw(broker.port, 4, [(BROKER, name, None)], docs=True)
        assert res['error_code'] == 0
        c = res['configs']
        assert c['socket.request.max.bytes']['value'] == '104857600'
        assert c['socket.request.max.bytes']['type'] == 3
        assert c['log.retention.ms']['type'] == 5
        assert c['auto.create.topics.enable']['type'] == 1
        assert c['log.level']['type'] == 2
        assert c['listeners']['type'] == 7
        assert c['broker.rack']['value'] is None
        assert c['socket.request.max.bytes']['doc']
        # read-only except the broker defaults of topic keys (dynamic)
        dynamic = {n for n, e in c.items() if not e['read_only']}
        assert {'log.retention.ms', 'message.max.bytes', 'log.flush.interval.messages',
                'log.cleanup.policy', 'min.insync.replicas'} <= dynamic
        assert not dynamic & {'socket.request.max.bytes', 'listeners', 'node.id',
                              'num.network.threads', 'num.partitions', 'log.dirs'}


def test_broker_static_config_is_topic_synonym(start_broker):
    b = start_broker({'log.retention.ms': '5000', 'num.partitions': '2'})
    create_topic(b.bootstrap, 'syn')
    (res,) = describe_configs_raw(b.port, 1, [(TOPIC, 'syn', ['retention.ms'])], synonyms=True)
    r = res['configs']['retention.ms']
    assert (r['value'], r['source']) == ('5000', SRC_STATIC_BROKER)
    assert r['synonyms'] == [
        {'name': 'log.retention.ms', 'value': '5000', 'source': SRC_STATIC_BROKER},
        {'name': 'log.retention.ms', 'value': '604800000', 'source': SRC_DEFAULT}]
    (res,) = describe_configs_raw(b.port, 1, [(BROKER, '1', ['num.partitions', 'log.retention.ms'])],
                                  synonyms=True)
    c = res['configs']
    assert (c['num.partitions']['value'], c['num.partitions']['source']) == ('2', SRC_STATIC_BROKER)
    assert c['num.partitions']['synonyms'] == [
        {'name': 'num.partitions', 'value': '2', 'source': SRC_STATIC_BROKER},
        {'name': 'num.partitions', 'value': '1', 'source': SRC_DEFAULT}]
    assert c['log.retention.ms']['value'] == '5000'


def test_describe_broker_other_node_id(start_broker):
    b = start_broker({'node.id': 7})
    (res,) = describe_configs_raw(b.port, 2, [(BROKER, '7', ['node.id'])])
    assert res['error_code'] == 0 and res['configs']['node.id']['value'] == '7'
    (res,) = describe_configs_raw(b.port, 2, [(BROKER, '1', ['node.id'])])
    assert res['error_code'] == ERR_INVALID_REQUEST and '7' in res['error_message']


# ------------------------------------------------------------------ confluent-kafka


def test_confluent_describe_and_alter(broker):
    from confluent_kafka.admin import ConfigResource, ConfigSource
    create_topic(broker.bootstrap, 'ck-cfg')
    admin = confluent_admin(broker.bootstrap)
    res = ConfigResource('topic', 'ck-cfg')
    cfg = admin.describe_configs([res])[res].result(timeout=15)
    assert cfg['retention.ms'].value == '604800000'
    assert cfg['retention.ms'].source == ConfigSource.DEFAULT_CONFIG.value
    assert not cfg['retention.ms'].is_read_only

    res = ConfigResource('topic', 'ck-cfg', set_config={'retention.ms': '1000',
                                                        'segment.bytes': '1048576'})
    admin.alter_configs([res])[res].result(timeout=15)
    res = ConfigResource('topic', 'ck-cfg')
    cfg = admin.describe_configs([res])[res].result(timeout=15)
    assert cfg['retention.ms'].value == '1000'
    assert cfg['retention.ms'].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg['segment.bytes'].value == '1048576'

    from confluent_kafka import KafkaException
    bad = ConfigResource('topic', 'ck-cfg', set_config={'retention.ms': 'soon'})
    with pytest.raises(KafkaException) as ei:
        admin.alter_configs([bad])[bad].result(timeout=15)
    assert ei.value.args[0].code() == ERR_INVALID_CONFIG

    bres = ConfigResource('broker', '1')
    cfg = admin.describe_configs([bres])[bres].result(timeout=15)
    assert cfg['socket.request.max.bytes'].value == '104857600'
    assert cfg['socket.request.max.bytes'].is_read_only
    assert cfg['socket.request.max.bytes'].source == ConfigSource.DEFAULT_CONFIG.value


def test_confluent_create_partitions(broker):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewPartitions
    create_topic(broker.bootstrap, 'ck-parts')
    admin = confluent_admin(broker.bootstrap)
    admin.create_partitions([NewPartitions('ck-parts', 4)])['ck-parts'].result(timeout=15)
    assert partition_count(broker.bootstrap, 'ck-parts') == 4
    with pytest.raises(KafkaException) as ei:
        admin.create_partitions([NewPartitions('ck-parts', 2)])['ck-parts'].result(timeout=15)
    assert ei.value.args[0].code() == ERR_INVALID_PARTITIONS
    # validate_only creates nothing
    admin.create_partitions([NewPartitions('ck-parts', 6)],
                            validate_only=True)['ck-parts'].result(timeout=15)
    assert partition_count(broker.bootstrap, 'ck-parts') == 4


# ------------------------------------------------------------------ CreatePartitions


def test_create_partitions_kafka_python(broker, admin):
    from kafka.admin import NewPartitions
    from kafka.errors import InvalidPartitionsError
    create_topic(broker.bootstrap, 'cp')
    assert partition_count(broker.bootstrap, 'cp') == 1
    resp = admin.create_partitions({'cp': NewPartitions(3)})
    assert [tuple(t) for t in resp.topic_errors] == [('cp', 0, None)]
    assert partition_count(broker.bootstrap, 'cp') == 3
    for lower in (2, 3):
        with pytest.raises(InvalidPartitionsError):
            admin.create_partitions({'cp': NewPartitions(lower)})
    assert partition_count(broker.bootstrap, 'cp') == 3
    # the new partitions take writes
    p = producer(broker.bootstrap)
    out = produce(p, 'cp', [{'value': b'x', 'partition': 2}])
    assert out[0].error is None and out[0].partition == 2 and out[0].offset == 0


def test_create_partitions_raw(broker):
    create_topic(broker.bootstrap, 'cpr')
    for version in (0, 1, 2, 3):
        assert create_partitions_raw(broker.port, [('cpr', 2 + version, None)], version=version) == \
            [('cpr', 0, None)]
    assert partition_count(broker.bootstrap, 'cpr') == 5
    out = create_partitions_raw(broker.port, [
        ('cpr', 9, None), ('missing', 2, None), ('cpr', 7, None), ('cpr2', 1, None)])
    # a topic named twice: answered once, at its first appearance (Kafka)
    assert [(n, e) for n, e, _m in out] == [('cpr', ERR_INVALID_REQUEST), ('missing', ERR_UNKNOWN_TOPIC),
                                            ('cpr2', ERR_UNKNOWN_TOPIC)]
    assert partition_count(broker.bootstrap, 'cpr') == 5
    # manual assignments: one broker list per new partition
    assert create_partitions_raw(broker.port, [('cpr', 7, [[1], [1]])]) == [('cpr', 0, None)]
    assert partition_count(broker.bootstrap, 'cpr') == 7
    bad = [
        (8, [[2]]),         # broker 2 is not registered
        (8, [[1, 1]]),      # a broker twice
        (8, [[]]),          # empty
        (8, [[1, 2]]),      # replication factor differs from the topic's (1)
        (9, [[1]]),         # one assignment for two new partitions
    ]
    for count, assignment in bad:
        (res,) = create_partitions_raw(broker.port, [('cpr', count, assignment)])
        assert res[:2] == ('cpr', ERR_INVALID_REPLICA_ASSIGNMENT) and res[2], (assignment, res)
    assert partition_count(broker.bootstrap, 'cpr') == 7
    (res,) = create_partitions_raw(broker.port, [('cpr', 20, None)], validate_only=True)
    assert res == ('cpr', 0, None)
    assert partition_count(broker.bootstrap, 'cpr') == 7
    assert create_partitions_raw(broker.port, []) == []


# ------------------------------------------------------------------ persistence


def test_configs_and_partitions_survive_restart(start_broker, tmp_path):
    data = tmp_path / 'persist'
    b = start_broker(data_dir=data)
    create_topic(b.bootstrap, 'keep')
    a = kp_admin(b.bootstrap)
    try:
        assert kp_alter(a, 'keep', {'retention.ms': '1000', 'cleanup.policy': 'compact'}) == (0, None)
        from kafka.admin import NewPartitions
        a.create_partitions({'keep': NewPartitions(3)})
    finally:
        a.close()
    assert incremental_alter_raw(b.port, [(TOPIC, 'keep', [('segment.ms', OP_SET, '60000')])]) == \
        [(0, None, TOPIC, 'keep')]
    assert b.stop() == 0

    b2 = start_broker(data_dir=data)
    (res,) = describe_configs_raw(b2.port, 1, [(TOPIC, 'keep', None)])
    c = res['configs']
    assert (c['retention.ms']['value'], c['retention.ms']['source']) == ('1000', SRC_DYNAMIC_TOPIC)
    assert c['cleanup.policy']['value'] == 'compact'
    assert c['segment.ms']['value'] == '60000'
    assert c['segment.bytes']['source'] == SRC_DEFAULT
    assert partition_count(b2.bootstrap, 'keep') == 3


# ------------------------------------------------------------------ DeleteRecords


def _watermarks(bootstrap, topic, partition):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'wm'})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def test_delete_records(broker):
    create_topic(broker.bootstrap, 'dr', partitions=2)
    p = producer(broker.bootstrap)
    out = produce(p, 'dr', [{'value': b'v%d' % i, 'partition': 0} for i in range(10)])
    assert all(d.error is None for d in out)
    produce(p, 'dr', [{'value': b'w%d' % i, 'partition': 1} for i in range(4)])

    res = delete_records_raw(broker.port, {'dr': [(0, 5), (1, -1), (7, 0)], 'nope': [(0, 0)]})
    assert res['dr'] == {0: (5, 0), 1: (4, 0), 7: (-1, ERR_UNKNOWN_TOPIC)}
    assert res['nope'] == {0: (-1, ERR_UNKNOWN_TOPIC)}
    assert _watermarks(broker.bootstrap, 'dr', 0) == (5, 10)
    assert _watermarks(broker.bootstrap, 'dr', 1) == (4, 4)

    for version in (1, 2):
        res = delete_records_raw(broker.port, {'dr': [(0, 6 + version), (1, 100), (0, -7)]},
                                 version=version)
        assert res['dr'][1] == (-1, ERR_OFFSET_OUT_OF_RANGE)
    assert _watermarks(broker.bootstrap, 'dr', 0) == (8, 10)
    # moving backwards keeps the current start
    assert delete_records_raw(broker.port, {'dr': [(0, 2)]})['dr'][0] == (8, 0)
    assert _watermarks(broker.bootstrap, 'dr', 0) == (8, 10)

    # a consumer from the beginning starts at the new log start
    from client_helpers import consume_assigned
    msgs = consume_assigned(broker.bootstrap, 'dr', [0], start=-2, count=2)  # OFFSET_BEGINNING
    assert [(m.offset(), m.value()) for m in msgs] == [(8, b'v8'), (9, b'v9')]


def test_delete_records_compacted_topic_refused(broker):
    create_topic(broker.bootstrap, 'dr-compact', config={'cleanup.policy': 'compact'})
    res = delete_records_raw(broker.port, {'dr-compact': [(0, -1)]})
    assert res['dr-compact'] == {0: (-1, ERR_POLICY_VIOLATION)}


def test_delete_records_survives_restart(start_broker, tmp_path):
    data = tmp_path / 'dr-restart'
    b = start_broker(data_dir=data)
    create_topic(b.bootstrap, 'drr')
    produce(producer(b.bootstrap), 'drr', [{'value': b'%d' % i} for i in range(6)])
    assert delete_records_raw(b.port, {'drr': [(0, 4)]})['drr'] == {0: (4, 0)}
    assert b.stop() == 0
    b2 = start_broker(data_dir=data)
    assert _watermarks(b2.bootstrap, 'drr', 0) == (4, 6)


# ------------------------------------------------------------------ DescribeCluster


def test_describe_cluster(broker):
    for version in (0, 1):
        out = describe_cluster_raw(broker.port, version)
        assert out['error_code'] == 0 and out['error_message'] is None
        assert out['cluster_id'] == broker.cluster_id()
        assert out['controller_id'] == 1
        assert out['brokers'] == [(1, '127.0.0.1', broker.port, None)]
        assert out['cluster_authorized_operations'] == -2 ** 31
        if version >= 1:
            assert out['endpoint_type'] == 1
    out = describe_cluster_raw(broker.port, 1, include_ops=True)
    ops = out['cluster_authorized_operations']
    assert ops > 0 and ops & (1 << 8) and ops & (1 << 10)  # DESCRIBE, DESCRIBE_CONFIGS
    # as Kafka's broker listener: controllers asked of a broker endpoint is
    # MISMATCHED_ENDPOINT_TYPE, another type UNSUPPORTED_ENDPOINT_TYPE; the
    # answer names the type of the endpoint that answers (1)
    out = describe_cluster_raw(broker.port, 1, endpoint_type=2)
    assert out['error_code'] == ERR_MISMATCHED_ENDPOINT_TYPE
    assert out['error_message'] and out['endpoint_type'] == 1
    assert out['brokers'] == []
    out = describe_cluster_raw(broker.port, 1, endpoint_type=7)
    assert out['error_code'] == ERR_UNSUPPORTED_ENDPOINT_TYPE
    assert out['error_message'] == 'Unsupported endpoint type 7' and out['endpoint_type'] == 1
    assert out['brokers'] == [] and out['controller_id'] == -1


def test_describe_cluster_rack(start_broker):
    b = start_broker({'node.id': 5, 'broker.rack': 'rack-a'})
    out = describe_cluster_raw(b.port, 1)
    assert out['brokers'] == [(5, '127.0.0.1', b.port, 'rack-a')]
    assert out['controller_id'] == 5


# ------------------------------------------------------------------ DescribeLogDirs


def test_describe_log_dirs(broker):
    create_topic(broker.bootstrap, 'ld', partitions=3)
    create_topic(broker.bootstrap, 'ld-other')
    produce(producer(broker.bootstrap), 'ld', [{'value': b'x' * 100, 'partition': 1}
                                              for _ in range(5)])
    for version in (1, 2, 3, 4):
        top, results = describe_log_dirs_raw(broker.port, version)
        assert top == (0 if version >= 3 else None)
        (res,) = results
        assert res['error_code'] == 0
        assert res['log_dir'] == str(broker.data_dir)
        assert set(res['topics']) == {'ld', 'ld-other'}
        parts = res['topics']['ld']
        assert sorted(parts) == [0, 1, 2]
        assert parts[0]['size'] == 0 and parts[2]['size'] == 0
        assert parts[1]['size'] > 500
        assert all(p['offset_lag'] == 0 and not p['is_future'] for p in parts.values())
        if version >= 4:
            assert res['total_bytes'] > 0
            assert 0 <= res['usable_bytes'] <= res['total_bytes']
            st = os.statvfs(str(broker.data_dir))
            assert res['total_bytes'] == st.f_blocks * st.f_frsize

    # only what is asked for; unknown topics and partitions are absent
    _top, (res,) = describe_log_dirs_raw(broker.port, 1, topics=[('ld', [1, 2, 9]), ('nope', [0]),
                                                                ('ld', [0])])
    assert list(res['topics']) == ['ld']
    assert sorted(res['topics']['ld']) == [0, 1, 2]
    _top, (res,) = describe_log_dirs_raw(broker.port, 2, topics=[('ld', [2])])
    assert {n: sorted(p) for n, p in res['topics'].items()} == {'ld': [2]}
    _top, (res,) = describe_log_dirs_raw(broker.port, 1, topics=[])
    assert res['topics'] == {}


def test_describe_log_dirs_two_dirs(start_broker, tmp_path):
    d1, d2 = tmp_path / 'ld1', tmp_path / 'ld2'
    d1.mkdir()
    d2.mkdir()
    b = start_broker({'log.dirs': '%s,%s' % (d1, d2), 'num.partitions': '4'})
    create_topic(b.bootstrap, 'spread', partitions=4)
    _top, results = describe_log_dirs_raw(b.port, 4)
    assert [r['log_dir'] for r in results] == [str(d1), str(d2)]
    seen = []
    for r in results:
        for p in r['topics'].get('spread', {}):
            seen.append(p)
            assert (r['log_dir'] and os.path.isdir(os.path.join(r['log_dir'], 'spread-%d' % p)))
    assert sorted(seen) == [0, 1, 2, 3]
