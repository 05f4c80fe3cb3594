"""Newer clients beside Debian's: the newest confluent-kafka (and its
librdkafka), kafka-python and aiokafka from PyPI, franz-go, Sarama and
kafka-go from the Go module proxy, kafkajs from npm, pinned in lock files
and installed into .cache/ by newer_clients.py (`make clients`).

Each client runs the round trip, group and admin scenarios (their
contract is in newer_clients.py) against Spool and against Apache Kafka
4.3 (the `kafka` fixture): the same assertions hold on both, which shows
the scenario itself asks only what Kafka does.
"""
import pytest

import newer_clients as nc

CLIENTS = list(nc.CLIENTS)


@pytest.fixture(scope='session')
def runner():
    return nc.Runner()


class Target:
    def __init__(self, name, bootstrap, data_dir):
        self.name, self.bootstrap, self.data_dir = name, bootstrap, data_dir


@pytest.fixture(params=['spool', 'kafka'])
def target(request, start_broker):
    if request.param == 'spool':
        b = start_broker({'group.initial.rebalance.delay.ms': 0})
        return Target('spool', b.bootstrap, b.data_dir)
    k = request.getfixturevalue('kafka')
    return Target('kafka', k.bootstrap, k.data_dir / 'logs')


@pytest.mark.parametrize('client', CLIENTS)
def test_roundtrip(runner, target, client):
    prefix = nc.prefix_for(client, 'rt', target.name)
    nc.create_topics(target.bootstrap, {prefix + '-rt': nc.RT_PARTS})
    out = runner.run(client, 'roundtrip', target.bootstrap, prefix)
    nc.check_roundtrip(client, out, target.bootstrap, target.data_dir, prefix + '-rt')


@pytest.mark.parametrize('client', CLIENTS)
def test_group(runner, target, client):
    prefix = nc.prefix_for(client, 'grp', target.name)
    nc.create_topics(target.bootstrap, {prefix + '-grp': nc.GROUP_PARTS})
    out = runner.run(client, 'group', target.bootstrap, prefix)
    nc.check_group(out, target.bootstrap, prefix + '-grp', prefix + '-g')


@pytest.mark.parametrize('client', CLIENTS)
def test_admin(runner, target, client):
    prefix = nc.prefix_for(client, 'adm', target.name)
    out = runner.run(client, 'admin', target.bootstrap, prefix)
    got = {k: out.get(k) for k in nc.expected_admin(prefix)}
    assert got == nc.expected_admin(prefix), out
