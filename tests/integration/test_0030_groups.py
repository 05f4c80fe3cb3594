"""Consumer groups with confluent-kafka (librdkafka): eager rebalancing on
join / close / crash, cooperative-sticky incremental rebalancing, static
membership."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from group_helpers import (GroupMember, balanced, create_topic, group_conf,
                           log_since, poll_for, poll_until)

FAST = {'group.initial.rebalance.delay.ms': 0}

# A group member in its own process, so that it can be killed with SIGKILL
# (no LeaveGroup, no close). It prints its assignment as a JSON line each
# time it changes.
MEMBER_SCRIPT = r'''
import json, sys
from confluent_kafka import Consumer
conf = json.loads(sys.argv[1])
topic = sys.argv[2]
c = Consumer(conf)
c.subscribe([topic])
last = None
while True:
    c.poll(0.1)
    cur = sorted(p.partition for p in c.assignment())
    if cur != last:
        last = cur
        sys.stdout.write(json.dumps(cur) + "\n")
        sys.stdout.flush()
'''


class ProcMember:
    """A group member running MEMBER_SCRIPT in a subprocess."""

    def __init__(self, conf, topic):
        self.proc = subprocess.Popen([sys.executable, '-c', MEMBER_SCRIPT,
                                      json.dumps(conf), topic],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lock = threading.Lock()
        self.current = set()
        self.history = []
        self.err = []
        for fn in (self._read, self._drain_err):
            threading.Thread(target=fn, daemon=True).start()
        self.closed = False
        self.name = conf.get('client.id')

    def _read(self):
        for line in self.proc.stdout:
            parts = set(json.loads(line.decode()))
            with self.lock:
                self.current = parts
                self.history.append(parts)

    def _drain_err(self):
        for line in self.proc.stderr:
            self.err.append(line.decode(errors='replace'))

    def assignment(self):
        with self.lock:
            return set(self.current)

    def poll(self, timeout):
        time.sleep(timeout / 4)

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.closed = True

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __repr__(self):
        return 'ProcMember(%s, assignment=%s, rc=%s, stderr=%r)' % (
            self.name, sorted(self.assignment()), self.proc.poll(), ''.join(self.err)[-2000:])


def describe(bootstrap, group):
    """DescribeGroups through kafka-python's admin client."""
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        (info,) = admin.describe_consumer_groups([group])
        return info
    finally:
        admin.close()


def member_partitions(info):
    """{client_id: set(partitions)} from a DescribeGroups result."""
    out = {}
    for m in info.members:
        parts = set()
        a = m.member_assignment
        for topic, ps in (a.assignment if a else []):
            parts |= set(ps)
        out[m.client_id] = parts
    return out


def test_eager_rebalance_join_close_and_crash(start_broker):
    """Three range-assigned members share 6 partitions 2/2/2; after a clean
    close 3/3; after a SIGKILLed member's session times out the survivor
    owns all 6."""
    broker = start_broker({'group.initial.rebalance.delay.ms': 0,
                           'group.min.session.timeout.ms': 1000})
    topic, group = 'grp-eager', 'g-eager'
    create_topic(broker.bootstrap, topic, 6)
    conf = {'session.timeout.ms': 3000, 'heartbeat.interval.ms': 300,
            'partition.assignment.strategy': 'range'}
    a = GroupMember(broker.bootstrap, group, topic, 'member-a', conf)
    b = GroupMember(broker.bootstrap, group, topic, 'member-b', conf)
    pconf = group_conf(broker.bootstrap, group, conf)
    pconf['client.id'] = 'member-c'
    c = ProcMember(pconf, topic)
    members = [a, b, c]
    try:
        poll_until(members, lambda: balanced(members, 6, [2, 2, 2]), 45,
                   'three members with 2 partitions each')
        # Stays that way and the broker agrees.
        poll_for([a, b], 1.0)
        assert balanced(members, 6, [2, 2, 2]), members
        info = describe(broker.bootstrap, group)
        assert info.state == 'Stable', info
        assert info.protocol_type == 'consumer' and info.protocol == 'range', info
        owned = member_partitions(info)
        assert owned == {'member-a': a.assignment(), 'member-b': b.assignment(),
                         'member-c': c.assignment()}, (owned, members)
        gens = re.findall(r'group %s: generation (\d+) with 3 members, protocol range'
                          % group, broker.log_text())
        assert gens, broker.log_text()[-3000:]

        # A clean close sends LeaveGroup: the other two split 3/3 without
        # waiting for a session timeout.
        mark = len(broker.log_text())
        a.close()
        rest = [b, c]
        poll_until(rest, lambda: balanced(rest, 6, [3, 3]), 20,
                   'two members with 3 partitions each')
        log = log_since(broker, mark)
        assert re.search(r'group %s: member member-a-\S+ removed: left the group' % group,
                         log), log
        assert re.search(r'group %s: generation \d+ with 2 members' % group, log), log

        # SIGKILL: no LeaveGroup. The survivor gets everything once the
        # dead member's 3 s session has expired, not before.
        mark = len(broker.log_text())
        t0 = time.monotonic()
        c.kill9()
        poll_until([b], lambda: b.assignment() == set(range(6)), 30,
                   'the survivor owning all 6 partitions')
        elapsed = time.monotonic() - t0
        log = log_since(broker, mark)
        assert re.search(r'group %s: member member-c-\S+ removed: session timeout expired'
                         % group, log), log
        assert re.search(r'group %s: generation \d+ with 1 member,' % group, log), log
        assert elapsed >= 2.0, 'dead member removed after only %.1fs' % elapsed
        poll_for([b], 1.0)
        info = describe(broker.bootstrap, group)
        assert info.state == 'Stable', info
        assert [m.client_id for m in info.members] == ['member-b'], info
        assert member_partitions(info) == {'member-b': set(range(6))}, info
    finally:
        c.cleanup()
        for m in (a, b):
            m.close()


def test_cooperative_sticky_moves_only_the_newcomers_partitions(start_broker):
    broker = start_broker(FAST)
    topic, group = 'grp-coop', 'g-coop'
    create_topic(broker.bootstrap, topic, 6)
    conf = {'partition.assignment.strategy': 'cooperative-sticky'}
    a = GroupMember(broker.bootstrap, group, topic, 'coop-a', conf)
    b = GroupMember(broker.bootstrap, group, topic, 'coop-b', conf)
    c = None
    try:
        poll_until([a, b], lambda: balanced([a, b], 6, [3, 3]), 45,
                   'two cooperative members with 3 partitions each')
        poll_for([a, b], 1.0)
        before = {'a': a.assignment(), 'b': b.assignment()}
        assert balanced([a, b], 6, [3, 3]), (a, b)
        a.revoked_events.clear()
        b.revoked_events.clear()
        mark = len(broker.log_text())

        c = GroupMember(broker.bootstrap, group, topic, 'coop-c', conf)
        poll_until([a, b, c], lambda: balanced([a, b, c], 6, [2, 2, 2]), 45,
                   'three cooperative members with 2 partitions each')
        poll_for([a, b, c], 1.5)
        after = {'a': a.assignment(), 'b': b.assignment(), 'c': c.assignment()}
        assert balanced([a, b, c], 6, [2, 2, 2]), (a, b, c)
        # The old members kept what they did not give away ...
        assert after['a'] <= before['a'], (before, after)
        assert after['b'] <= before['b'], (before, after)
        moved = (before['a'] - after['a']) | (before['b'] - after['b'])
        # ... and what changed owner is exactly the newcomer's share.
        assert moved == after['c'] and len(moved) == 2, (before, after)
        # Incremental: only the moved partitions were ever revoked.
        revoked = set().union(set(), *a.revoked_events, *b.revoked_events)
        assert revoked == moved, (a.revoked_events, b.revoked_events, moved)
        log = log_since(broker, mark)
        assert re.search(r'group %s: generation \d+ with 3 members, protocol cooperative-sticky'
                         % group, log), log
        info = describe(broker.bootstrap, group)
        assert info.state == 'Stable' and info.protocol == 'cooperative-sticky', info
        assert member_partitions(info) == {'coop-a': after['a'], 'coop-b': after['b'],
                                           'coop-c': after['c']}, info
    finally:
        for m in (a, b, c):
            if m is not None:
                m.close()


def test_static_member_restart_keeps_assignment_without_rebalance(start_broker):
    broker = start_broker(FAST)
    topic, group = 'grp-static', 'g-static'
    create_topic(broker.bootstrap, topic, 6)
    conf1 = {'group.instance.id': 'static-1', 'session.timeout.ms': 30000,
             'partition.assignment.strategy': 'range'}
    conf2 = dict(conf1, **{'group.instance.id': 'static-2'})
    s1 = GroupMember(broker.bootstrap, group, topic, 'static-client-1', conf1)
    s2 = GroupMember(broker.bootstrap, group, topic, 'static-client-2', conf2)
    s1b = None
    try:
        poll_until([s1, s2], lambda: balanced([s1, s2], 6, [3, 3]), 45,
                   'two static members with 3 partitions each')
        poll_for([s1, s2], 1.0)
        first = s1.assignment()
        second = s2.assignment()
        assert balanced([s1, s2], 6, [3, 3])
        info = describe(broker.bootstrap, group)
        assert info.state == 'Stable', info
        # kafka-python 2.0.2 does not decode group_instance_id; the client
        # ids tell the members apart.
        assert member_partitions(info) == {'static-client-1': first,
                                           'static-client-2': second}, info
        s2.revoked_events.clear()
        s2_assigns = len(s2.assigned_events)

        mark = len(broker.log_text())
        s1.close()   # a static member does not send LeaveGroup
        time.sleep(0.5)
        log = log_since(broker, mark)
        assert 'removed' not in log and 'preparing rebalance' not in log, log

        s1b = GroupMember(broker.bootstrap, group, topic, 'static-client-1', conf1)
        poll_until([s1b, s2], lambda: s1b.assignment(), 20,
                   'the restarted static member to get an assignment')
        poll_for([s1b, s2], 2.0)
        assert s1b.assignment() == first, (first, s1b)
        assert s2.assignment() == second, (second, s2)
        assert s2.revoked_events == [] and len(s2.assigned_events) == s2_assigns, \
            (s2.revoked_events, s2.assigned_events)
        log = log_since(broker, mark)
        assert re.search(r'group %s: static member static-1 rejoined as static-1-\S+ '
                         r'without a rebalance' % group, log), log
        assert 'preparing rebalance' not in log, log
        assert not re.search(r'generation \d+ with', log), log
        info = describe(broker.bootstrap, group)
        assert info.state == 'Stable', info
        assert member_partitions(info) == {'static-client-1': first,
                                           'static-client-2': second}, info
    finally:
        for m in (s1, s2, s1b):
            if m is not None:
                m.close()
