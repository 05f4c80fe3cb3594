"""Dynamic broker configuration (Kafka's): AlterConfigs and
IncrementalAlterConfigs on BROKER resources, for the broker keys that are
defaults of topic keys.

Resource name '1' (this broker's node id) is DYNAMIC_BROKER_CONFIG (source
2), '' is the cluster-wide default DYNAMIC_DEFAULT_BROKER_CONFIG (source 3).
A topic key resolves: topic override > this broker's dynamic value > the
cluster default > server.properties > default.  The values are
ConfigRecords (resource type 4) in the metadata log and its snapshots, and
take effect on existing topics at once (checked on the produce path with
message.max.bytes).

Driven through kafka-python's KafkaAdminClient, confluent-kafka's
AdminClient and Producer, and raw frames (test_0010's helpers) for
IncrementalAlterConfigs, validate_only and requests clients refuse to build.
"""

import re

import pytest

from client_helpers import create_topic, produce, producer
from spool_clients import confluent_admin
from test_0010_admin_configs import (alter_configs_raw, describe_configs_raw,
                                     incremental_alter_raw, kp_admin)

TOPIC, BROKER = 2, 4
SRC_TOPIC, SRC_BROKER, SRC_DEFAULT_BROKER, SRC_STATIC, SRC_DEFAULT = 1, 2, 3, 4, 5
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3
ERR_MESSAGE_TOO_LARGE = 10
ERR_INVALID_CONFIG = 40
ERR_INVALID_REQUEST = 42
DEFAULT_RETENTION = '604800000'


@pytest.fixture
def admin(broker):
    a = kp_admin(broker.bootstrap)
    yield a
    a.close()


def kp_alter_broker(admin, name, configs):
    from kafka.admin import ConfigResource, ConfigResourceType
    resp = admin.alter_configs([ConfigResource(ConfigResourceType.BROKER, name, configs=configs)])
    (res,) = resp.resources
    return res[0], res[1]


def kp_describe(admin, rtype, name, keys=None):
    """{key: (value, source, read_only, [(name, value, source)])} via kafka-python."""
    from kafka.admin import ConfigResource, ConfigResourceType
    t = ConfigResourceType.BROKER if rtype == BROKER else ConfigResourceType.TOPIC
    cfg = None if keys is None else {k: None for k in keys}
    resp = admin.describe_configs([ConfigResource(t, name, configs=cfg)], include_synonyms=True)
    (res,) = resp[0].resources
    err, _msg, _rtype, rname, entries = res
    assert (err, rname) == (0, name), res
    return {e[0]: (e[1], e[3], e[2], [tuple(s) for s in e[5]]) for e in entries}


def raw_value(port, rtype, name, key):
    (res,) = describe_configs_raw(port, 1, [(rtype, name, [key])], synonyms=True)
    assert res['error_code'] == 0, res
    e = res['configs'][key]
    return e['value'], e['source']


# ------------------------------------------------------------------ resolution


def test_per_broker_value_kafka_python(broker, admin):
    create_topic(broker.bootstrap, 'plain')
    create_topic(broker.bootstrap, 'own', config={'retention.ms': '5555'})
    assert kp_alter_broker(admin, '1', {'log.retention.ms': '3600000'}) == (0, None)

    c = kp_describe(admin, BROKER, '1')
    value, source, read_only, syn = c['log.retention.ms']
    assert (value, source, read_only) == ('3600000', SRC_BROKER, False)
    assert syn == [('log.retention.ms', '3600000', SRC_BROKER),
                   ('log.retention.ms', DEFAULT_RETENTION, SRC_DEFAULT)]
    assert c['num.network.threads'][2] is True        # not dynamic: read-only
    assert c['message.max.bytes'][1:3] == (SRC_DEFAULT, False)

    value, source, _ro, syn = kp_describe(admin, TOPIC, 'plain', ['retention.ms'])['retention.ms']
    assert (value, source) == ('3600000', SRC_BROKER)
    assert syn == [('log.retention.ms', '3600000', SRC_BROKER),
                   ('log.retention.ms', DEFAULT_RETENTION, SRC_DEFAULT)]
    # a topic override still wins
    value, source, _ro, syn = kp_describe(admin, TOPIC, 'own', ['retention.ms'])['retention.ms']
    assert (value, source) == ('5555', SRC_TOPIC)
    assert [s[2] for s in syn] == [SRC_TOPIC, SRC_BROKER, SRC_DEFAULT]


def test_cluster_default_and_precedence(start_broker):
    b = start_broker({'log.retention.ms': '9000000'})   # static (source 4)
    create_topic(b.bootstrap, 't')
    port = b.port
    assert raw_value(port, TOPIC, 't', 'retention.ms') == ('9000000', SRC_STATIC)

    out = alter_configs_raw(port, [(BROKER, '', [('log.retention.ms', '7200000')])])
    assert out == [(0, None, BROKER, '')]
    assert raw_value(port, TOPIC, 't', 'retention.ms') == ('7200000', SRC_DEFAULT_BROKER)
    assert raw_value(port, BROKER, '1', 'log.retention.ms') == ('7200000', SRC_DEFAULT_BROKER)
    assert raw_value(port, BROKER, '', 'log.retention.ms') == ('7200000', SRC_DEFAULT_BROKER)

    out = alter_configs_raw(port, [(BROKER, '1', [('log.retention.ms', '3600000')])])
    assert out == [(0, None, BROKER, '1')]
    (res,) = describe_configs_raw(port, 1, [(TOPIC, 't', ['retention.ms'])], synonyms=True)
    r = res['configs']['retention.ms']
    assert (r['value'], r['source']) == ('3600000', SRC_BROKER)
    # Kafka's order: per-broker, cluster default, static, default
    assert r['synonyms'] == [
        {'name': 'log.retention.ms', 'value': '3600000', 'source': SRC_BROKER},
        {'name': 'log.retention.ms', 'value': '7200000', 'source': SRC_DEFAULT_BROKER},
        {'name': 'log.retention.ms', 'value': '9000000', 'source': SRC_STATIC},
        {'name': 'log.retention.ms', 'value': DEFAULT_RETENTION, 'source': SRC_DEFAULT}]
    (res,) = describe_configs_raw(port, 4, [(BROKER, '1', ['log.retention.ms'])], synonyms=True)
    assert [s['source'] for s in res['configs']['log.retention.ms']['synonyms']] == [
        SRC_BROKER, SRC_DEFAULT_BROKER, SRC_STATIC, SRC_DEFAULT]
    # the cluster-default resource does not show this broker's own value
    assert raw_value(port, BROKER, '', 'log.retention.ms') == ('7200000', SRC_DEFAULT_BROKER)

    # AlterConfigs replaces every dynamic config of the resource
    out = alter_configs_raw(port, [(BROKER, '1', [('log.segment.bytes', '1048576')])])
    assert out == [(0, None, BROKER, '1')]
    assert raw_value(port, TOPIC, 't', 'retention.ms') == ('7200000', SRC_DEFAULT_BROKER)
    assert raw_value(port, TOPIC, 't', 'segment.bytes') == ('1048576', SRC_BROKER)

    # incremental: DELETE, APPEND, SUBTRACT
    out = incremental_alter_raw(port, [(BROKER, '', [('log.retention.ms', OP_DELETE, None)])])
    assert out == [(0, None, BROKER, '')]
    assert raw_value(port, TOPIC, 't', 'retention.ms') == ('9000000', SRC_STATIC)
    out = incremental_alter_raw(port, [(BROKER, '1', [('log.cleanup.policy', OP_APPEND, 'compact')])],
                                version=1)
    assert out == [(0, None, BROKER, '1')]
    assert raw_value(port, TOPIC, 't', 'cleanup.policy') == ('delete,compact', SRC_BROKER)
    out = incremental_alter_raw(port, [(BROKER, '1', [('log.cleanup.policy', OP_SUBTRACT, 'delete')])])
    assert out == [(0, None, BROKER, '1')]
    assert raw_value(port, BROKER, '1', 'log.cleanup.policy') == ('compact', SRC_BROKER)
    assert raw_value(port, TOPIC, 't', 'segment.bytes') == ('1048576', SRC_BROKER)


# ------------------------------------------------------------------ errors


def test_errors_and_validate_only(broker, admin):
    port = broker.port
    err, msg = kp_alter_broker(admin, '1', {'num.network.threads': '4'})
    assert err == ERR_INVALID_REQUEST
    assert msg == 'Cannot update these configs dynamically: [num.network.threads]'
    err, msg = kp_alter_broker(admin, '', {'node.id': '3', 'no.such.key': 'x'})
    assert err == ERR_INVALID_REQUEST and 'node.id' in msg and 'no.such.key' in msg
    err, msg = kp_alter_broker(admin, '1', {'log.retention.ms': 'soon'})
    assert err == ERR_INVALID_CONFIG and 'log.retention.ms' in msg
    err, msg = kp_alter_broker(admin, '1', {'log.segment.bytes': '1'})    # below 14
    assert err == ERR_INVALID_CONFIG
    err, msg = kp_alter_broker(admin, '1', {'log.message.timestamp.type': 'Sometime'})
    assert err == ERR_INVALID_CONFIG

    out = incremental_alter_raw(port, [
        (BROKER, '2', [('log.retention.ms', OP_SET, '1')]),
        (BROKER, 'x', [('log.retention.ms', OP_SET, '1')]),
        (BROKER, '1', [('log.retention.ms', OP_APPEND, '1')]),      # not a list
        (BROKER, '', [('listeners', OP_DELETE, None)]),
    ])
    assert [e for e, _m, _t, _n in out] == [ERR_INVALID_REQUEST, ERR_INVALID_REQUEST,
                                            ERR_INVALID_CONFIG, ERR_INVALID_REQUEST]
    assert re.match(r'Unexpected broker id, expected 1 or empty string', out[0][1])
    assert 'integer' in out[1][1]

    # nothing of the refused requests was applied
    assert raw_value(port, BROKER, '1', 'log.retention.ms') == (DEFAULT_RETENTION, SRC_DEFAULT)
    # validate_only checks without changing anything
    out = alter_configs_raw(port, [(BROKER, '1', [('log.retention.ms', '1000')])], validate_only=True)
    assert out == [(0, None, BROKER, '1')]
    out = incremental_alter_raw(port, [(BROKER, '', [('log.retention.ms', OP_SET, 'x')])],
                                validate_only=True)
    assert out[0][0] == ERR_INVALID_CONFIG
    assert raw_value(port, BROKER, '1', 'log.retention.ms') == (DEFAULT_RETENTION, SRC_DEFAULT)


# ------------------------------------------------------------------ durability


def test_survives_restart_and_snapshot(start_broker, tmp_path):
    data = tmp_path / 'data'
    opts = {'metadata.log.max.record.bytes.between.snapshots': 1000}
    b = start_broker(opts, data_dir=str(data))
    create_topic(b.bootstrap, 'kept')
    out = alter_configs_raw(b.port, [(BROKER, '1', [('log.retention.ms', '3600000')]),
                                     (BROKER, '', [('log.retention.ms', '7200000'),
                                                   ('log.roll.ms', '60000')])])
    assert [e for e, *_ in out] == [0, 0]
    assert b.stop() == 0

    b = start_broker(opts, data_dir=str(data))
    assert raw_value(b.port, TOPIC, 'kept', 'retention.ms') == ('3600000', SRC_BROKER)
    assert raw_value(b.port, TOPIC, 'kept', 'segment.ms') == ('60000', SRC_DEFAULT_BROKER)
    assert raw_value(b.port, BROKER, '', 'log.retention.ms') == ('7200000', SRC_DEFAULT_BROKER)

    # enough metadata for a snapshot, then only the snapshot holds them
    for i in range(8):
        create_topic(b.bootstrap, 'fill-%d' % i, partitions=2)
    assert re.search(r'metadata snapshot at offset \d+', b.log_text())
    assert b.stop() == 0
    b = start_broker(opts, data_dir=str(data))
    assert 'loaded metadata snapshot' in b.log_text()
    assert raw_value(b.port, TOPIC, 'kept', 'retention.ms') == ('3600000', SRC_BROKER)
    assert raw_value(b.port, TOPIC, 'fill-3', 'segment.ms') == ('60000', SRC_DEFAULT_BROKER)
    assert raw_value(b.port, BROKER, '1', 'log.retention.ms') == ('3600000', SRC_BROKER)


# ------------------------------------------------------------------ data path


def _produce_sizes(bootstrap, topic, sizes):
    p = producer(bootstrap, **{'message.max.bytes': 10000000, 'linger.ms': 0,
                               'retries': 0, 'compression.type': 'none'})
    out = []
    for n in sizes:   # one batch each: the limit is per batch
        (d,) = produce(p, topic, [{'value': b'x' * n}])
        out.append(d.error.code() if d.error else 0)
    return out


def test_message_max_bytes_takes_effect_without_restart(broker, admin):
    create_topic(broker.bootstrap, 'mmb')
    create_topic(broker.bootstrap, 'mmb-own', config={'max.message.bytes': '100000'})
    assert _produce_sizes(broker.bootstrap, 'mmb', [5000]) == [0]

    assert kp_alter_broker(admin, '1', {'message.max.bytes': '2000'}) == (0, None)
    assert raw_value(broker.port, TOPIC, 'mmb', 'max.message.bytes') == ('2000', SRC_BROKER)
    assert _produce_sizes(broker.bootstrap, 'mmb', [5000, 100]) == [ERR_MESSAGE_TOO_LARGE, 0]
    assert _produce_sizes(broker.bootstrap, 'mmb-own', [5000]) == [0]   # its override wins

    # removing the dynamic value restores the default at once
    out = incremental_alter_raw(broker.port, [(BROKER, '1', [('message.max.bytes', OP_DELETE, None)])])
    assert out == [(0, None, BROKER, '1')]
    assert _produce_sizes(broker.bootstrap, 'mmb', [5000]) == [0]


def test_log_append_time_cluster_default_confluent(broker):
    from confluent_kafka import Consumer, TIMESTAMP_LOG_APPEND_TIME, TIMESTAMP_CREATE_TIME
    from confluent_kafka.admin import ConfigResource, ConfigSource
    create_topic(broker.bootstrap, 'lat')
    admin = confluent_admin(broker.bootstrap)
    res = ConfigResource('broker', '1', set_config={'log.message.timestamp.type': 'LogAppendTime'})
    admin.alter_configs([res])[res].result(timeout=15)
    bres = ConfigResource('broker', '1')
    cfg = admin.describe_configs([bres])[bres].result(timeout=15)
    e = cfg['log.message.timestamp.type']
    assert e.value == 'LogAppendTime' and not e.is_read_only
    assert e.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert cfg['socket.request.max.bytes'].is_read_only

    p = producer(broker.bootstrap)
    (d,) = produce(p, 'lat', [{'value': b'v', 'timestamp': 1000}])
    assert d.error is None
    c = Consumer({'bootstrap.servers': broker.bootstrap, 'group.id': 'lat-g',
                  'auto.offset.reset': 'earliest', 'enable.auto.commit': False})
    try:
        c.subscribe(['lat'])
        msg = None
        for _ in range(60):
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                break
        assert msg is not None and not msg.error(), msg
        ttype, ts = msg.timestamp()
        assert ttype == TIMESTAMP_LOG_APPEND_TIME and ts > 1000
        assert ttype != TIMESTAMP_CREATE_TIME
    finally:
        c.close()
