"""Two brokers in one process (tests/tools/spool_nodes.c, broker/node.h):
every part of a broker -- log manager, partitions, metadata image,
controller, group coordinator, server -- is an object, so two of them live
side by side without sharing state.  Each is its own single-node cluster:
topics, records, groups and configs of one never show in the other; both
shut down cleanly on one SIGTERM and come back with their data."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource

from client_helpers import create_topic
from conftest import free_port
from spool_clients import confluent_admin


def nodes_binary():
    spoold = os.environ.get('SPOOLD') or str(Path(__file__).resolve().parents[2] / 'build' / 'spoold')
    path = Path(spoold).parent / 'spool-nodes'
    if not path.exists():
        pytest.fail('%s not built (make integration builds it)' % path)
    return str(path)


def start(tmp_path, ports, log):
    args = [nodes_binary()]
    for i, port in enumerate(ports):
        args += [str(tmp_path / ('node%d' % i)), str(port)]
    args += ['--', 'group.initial.rebalance.delay.ms=0', 'num.network.threads=2']
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(log, 'ab'), text=True)
    line = p.stdout.readline()
    assert line.strip() == 'ready', (line, Path(log).read_text()[-3000:])
    return p


def stop(p):
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0


def produce(bootstrap, topic, values, partition=None):
    pr = Producer({'bootstrap.servers': bootstrap})
    for v in values:
        if partition is None:
            pr.produce(topic, v)
        else:
            pr.produce(topic, v, partition=partition)
    assert pr.flush(20) == 0


def consume_all(bootstrap, topic, partitions, group):
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': group, 'auto.offset.reset': 'earliest',
                  'enable.auto.commit': False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got, deadline = [], time.monotonic() + 20
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            if got:
                break
            continue
        assert m.error() is None, m.error()
        got.append(m.value())
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    c.close()
    return got, {tp.partition: tp.offset for tp in committed}


def test_two_brokers_in_one_process(tmp_path):
    ports = [free_port(), free_port()]
    boots = ['127.0.0.1:%d' % p for p in ports]
    log = tmp_path / 'nodes.log'
    p = start(tmp_path, ports, log)
    try:
        create_topic(boots[0], 'shared', 3)
        create_topic(boots[1], 'shared', 1, config={'retention.ms': '123456'})
        create_topic(boots[1], 'only-b', 2)
        produce(boots[0], 'shared', [b'a%d' % i for i in range(30)])
        produce(boots[1], 'shared', [b'b%d' % i for i in range(7)])
        a_md = confluent_admin(boots[0]).list_topics(timeout=10).topics
        b_md = confluent_admin(boots[1]).list_topics(timeout=10).topics
        assert len(a_md['shared'].partitions) == 3 and len(b_md['shared'].partitions) == 1
        assert 'only-b' in b_md and 'only-b' not in a_md
        got_a, com_a = consume_all(boots[0], 'shared', 3, 'ga')
        got_b, com_b = consume_all(boots[1], 'shared', 1, 'gb')
        assert sorted(got_a) == sorted(b'a%d' % i for i in range(30))
        assert got_b == [b'b%d' % i for i in range(7)]
        assert sum(v for v in com_a.values() if v >= 0) == 30 and com_b == {0: 7}
        # each coordinator knows its own group only
        ga = [g.id for g in confluent_admin(boots[0]).list_groups(timeout=10)]
        gb = [g.id for g in confluent_admin(boots[1]).list_groups(timeout=10)]
        assert 'ga' in ga and 'gb' not in ga and 'gb' in gb and 'ga' not in gb
        # and each its own topic configs
        adm = [confluent_admin(b) for b in boots]
        cfg_a = list(adm[0].describe_configs([ConfigResource('topic', 'shared')]).values())[0].result(10)
        cfg_b = list(adm[1].describe_configs([ConfigResource('topic', 'shared')]).values())[0].result(10)
        assert cfg_b['retention.ms'].value == '123456' and cfg_a['retention.ms'].value != '123456'
    finally:
        stop(p)
    text = log.read_text()
    assert 'spool-nodes: 2 nodes stopped' in text
    for i in range(2):
        assert (tmp_path / ('node%d' % i) / '.kafka_cleanshutdown').exists()
    # both come back with their data and their groups' offsets
    p = start(tmp_path, ports, log)
    try:
        got_a, com_a = consume_all(boots[0], 'shared', 3, 'ga')
        got_b, com_b = consume_all(boots[1], 'shared', 1, 'gb')
        assert len(got_a) == 30 and got_b == [b'b%d' % i for i in range(7)]
        assert sum(v for v in com_a.values() if v >= 0) == 30 and com_b == {0: 7}
    finally:
        stop(p)
