"""Helpers for the consumer-group integration tests (test_003x_*).

* topic creation / producing with delivery reports (confluent-kafka),
* GroupMember: a subscribed confluent-kafka consumer that records its
  assignment, revocations and the messages it received,
* poll_until: polls several consumers round-robin until a condition holds,
* raw frames for the group APIs (FindCoordinator, JoinGroup, SyncGroup,
  Heartbeat, LeaveGroup, DescribeGroups, ListGroups, DeleteGroups,
  OffsetCommit, OffsetFetch, OffsetDelete) with their response decoders.
"""

import time

import kafka_wire as kw

# ------------------------------------------------------------ client helpers


def create_topic(bootstrap, topic, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({'bootstrap.servers': bootstrap})
    fs = admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                       replication_factor=1)],
                             operation_timeout=10, request_timeout=15)
    fs[topic].result(timeout=20)
    md = admin.list_topics(topic=topic, timeout=10)
    assert md.topics[topic].error is None, md.topics[topic].error
    assert len(md.topics[topic].partitions) == partitions


def produce(bootstrap, topic, values, partition_of=None, keys=None):
    """Produce `values` (bytes); partition_of(i) picks an explicit partition.
    Returns [(partition, offset, value)] in production order, all delivered.
    Batches are small (<= 20 records) so that small fetches interleave
    partitions."""
    from confluent_kafka import Producer
    p = Producer({'bootstrap.servers': bootstrap, 'acks': 'all', 'linger.ms': 5,
                  'batch.num.messages': 20})
    out = [None] * len(values)
    errors = []

    def cb_for(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                out[i] = (msg.partition(), msg.offset(), msg.value())
        return cb

    for i, v in enumerate(values):
        kwargs = {'value': v, 'on_delivery': cb_for(i)}
        if partition_of is not None:
            kwargs['partition'] = partition_of(i)
        if keys is not None:
            kwargs['key'] = keys[i]
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0, 'records not delivered'
    assert not errors, errors[:5]
    assert all(o is not None for o in out)
    return out


def group_conf(bootstrap, group, conf=None):
    """librdkafka consumer settings for a fast-reacting group member."""
    c = {'bootstrap.servers': bootstrap, 'group.id': group,
         'enable.auto.commit': False, 'auto.offset.reset': 'earliest',
         'heartbeat.interval.ms': 500, 'session.timeout.ms': 10000,
         'topic.metadata.refresh.interval.ms': 5000}
    c.update(conf or {})
    return c


class GroupMember:
    """A subscribed confluent-kafka Consumer that keeps what it saw."""

    def __init__(self, bootstrap, group, topic, name, conf=None):
        from confluent_kafka import Consumer
        c = group_conf(bootstrap, group, conf)
        c['client.id'] = name
        self.name = name
        self.topic = topic
        self.c = Consumer(c)
        self.assigned_events = []   # list of sets passed to on_assign
        self.revoked_events = []    # list of sets passed to on_revoke
        self.messages = []
        self.errors = []
        self.closed = False
        self.c.subscribe([topic], on_assign=self._on_assign,
                         on_revoke=self._on_revoke)

    def _on_assign(self, consumer, parts):
        self.assigned_events.append({p.partition for p in parts})

    def _on_revoke(self, consumer, parts):
        self.revoked_events.append({p.partition for p in parts})

    def poll(self, timeout=0.1):
        m = self.c.poll(timeout)
        if m is None:
            return None
        if m.error():
            self.errors.append(m.error())
            return None
        self.messages.append((m.partition(), m.offset(), m.value()))
        return m

    def assignment(self):
        return {p.partition for p in self.c.assignment()}

    def close(self):
        if not self.closed:
            self.closed = True
            self.c.close()

    def __repr__(self):
        return 'GroupMember(%s, assignment=%s)' % (
            self.name, None if self.closed else sorted(self.assignment()))


def poll_until(members, cond, timeout=30.0, what='condition'):
    """Poll every (open) member round-robin until cond() is true."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for %s; members: %r' % (what, members))
        for m in members:
            if not m.closed:
                m.poll(0.05)


def poll_for(members, seconds):
    """Keep polling every member for `seconds` (for 'nothing changes' checks)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for m in members:
            if not m.closed:
                m.poll(0.05)


def balanced(members, nparts, sizes):
    """True when the members' assignments are disjoint, cover range(nparts)
    and have the given sizes (in member order)."""
    sets = [m.assignment() for m in members]
    if [len(s) for s in sets] != list(sizes):
        return False
    union = set().union(*sets)
    return union == set(range(nparts)) and sum(len(s) for s in sets) == nparts


def log_since(broker, mark):
    return broker.log_text()[mark:]


# ------------------------------------------------------------- raw frames

API_OFFSET_COMMIT = 8
API_OFFSET_FETCH = 9
API_FIND_COORDINATOR = 10
API_JOIN_GROUP = 11
API_HEARTBEAT = 12
API_LEAVE_GROUP = 13
API_SYNC_GROUP = 14
API_DESCRIBE_GROUPS = 15
API_LIST_GROUPS = 16
API_DELETE_GROUPS = 42
API_OFFSET_DELETE = 47

NONE = 0
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
GROUP_SUBSCRIBED_TO_TOPIC = 86


def bytes_(b):
    if b is None:
        return kw.int32(-1)
    return kw.int32(len(b)) + b


def _bytes(r):
    n = r.int32()
    return None if n < 0 else r._take(n)


def consumer_subscription(topics, user_data=b''):
    """ConsumerProtocolSubscription v0."""
    return kw.int16(0) + kw.array(kw.string(t) for t in topics) + bytes_(user_data)


def consumer_assignment(parts_by_topic, user_data=b''):
    """ConsumerProtocolAssignment v0: {topic: [partition, ...]}."""
    return (kw.int16(0)
            + kw.array(kw.string(t) + kw.array(kw.int32(p) for p in ps)
                       for t, ps in parts_by_topic.items())
            + bytes_(user_data))


def parse_consumer_assignment(data):
    if not data:
        return {}
    r = kw.Reader(data)
    r.int16()
    out = {}
    for t, ps in r.array(lambda x: (x.string(), x.array(lambda y: y.int32()))) or []:
        out[t] = sorted(ps)
    return out


class Conn:
    """One connection to the broker with correlation-id bookkeeping."""

    def __init__(self, port, client_id='spool-group-test', timeout=30.0):
        self.sock = kw.connect(port, timeout=timeout)
        self.client_id = client_id
        self.timeout = timeout
        self.cid = 0

    def call(self, api, version, body, flexible=False, timeout=None):
        self.cid += 1
        req = kw.request(api, version, self.cid, body, self.client_id, flexible=flexible)
        payload = kw.send_recv(self.sock, req, timeout or self.timeout)
        r = kw.Reader(payload)
        assert r.int32() == self.cid, 'correlation id mismatch'
        if flexible:
            r.tagged_fields()
        return r

    def send(self, api, version, body):
        """Send without waiting; returns the correlation id (see recv)."""
        self.cid += 1
        self.sock.sendall(kw.request(api, version, self.cid, body, self.client_id))
        return self.cid

    def recv(self, cid, timeout=None):
        payload = kw.recv_frame(self.sock, timeout or self.timeout)
        r = kw.Reader(payload)
        assert r.int32() == cid, 'correlation id mismatch'
        return r

    def close(self):
        self.sock.close()

    # -- FindCoordinator v1
    def find_coordinator(self, group):
        r = self.call(API_FIND_COORDINATOR, 1, kw.string(group) + kw.int8(0))
        return {'throttle': r.int32(), 'error_code': r.int16(),
                'error_message': r.string(), 'node_id': r.int32(),
                'host': r.string(), 'port': r.int32()}

    # -- JoinGroup v0-v5 (non-flexible)
    @staticmethod
    def join_body(version, group, member_id='', session_timeout=10000,
                  rebalance_timeout=10000, instance_id=None,
                  protocols=(('range', b''),), protocol_type='consumer'):
        b = kw.string(group) + kw.int32(session_timeout)
        if version >= 1:
            b += kw.int32(rebalance_timeout)
        b += kw.string(member_id)
        if version >= 5:
            b += kw.string(instance_id)
        b += kw.string(protocol_type)
        b += kw.array(kw.string(n) + bytes_(m) for n, m in protocols)
        return b

    @staticmethod
    def parse_join(r, version):
        out = {}
        if version >= 2:
            out['throttle'] = r.int32()
        out['error_code'] = r.int16()
        out['generation_id'] = r.int32()
        out['protocol_name'] = r.string()
        out['leader'] = r.string()
        out['member_id'] = r.string()

        def member(x):
            m = {'member_id': x.string()}
            if version >= 5:
                m['group_instance_id'] = x.string()
            m['metadata'] = _bytes(x)
            return m
        out['members'] = r.array(member)
        out['trailing'] = r.remaining()
        return out

    def join(self, group, version=5, **kwargs):
        r = self.call(API_JOIN_GROUP, version, self.join_body(version, group, **kwargs))
        return self.parse_join(r, version)

    def send_join(self, group, version=5, **kwargs):
        return self.send(API_JOIN_GROUP, version, self.join_body(version, group, **kwargs))

    def recv_join(self, cid, version=5, timeout=None):
        return self.parse_join(self.recv(cid, timeout), version)

    # -- SyncGroup v0-v3
    @staticmethod
    def sync_body(group, generation, member_id, assignments=None, version=3,
                  instance_id=None):
        b = kw.string(group) + kw.int32(generation) + kw.string(member_id)
        if version >= 3:
            b += kw.string(instance_id)
        b += kw.array(kw.string(m) + bytes_(a) for m, a in (assignments or {}).items())
        return b

    @staticmethod
    def parse_sync(r, version):
        out = {}
        if version >= 1:
            out['throttle'] = r.int32()
        out['error_code'] = r.int16()
        out['assignment'] = _bytes(r)
        out['trailing'] = r.remaining()
        return out

    def sync(self, group, generation, member_id, assignments=None, version=3,
             instance_id=None):
        r = self.call(API_SYNC_GROUP, version,
                      self.sync_body(group, generation, member_id, assignments, version,
                                     instance_id))
        return self.parse_sync(r, version)

    def send_sync(self, group, generation, member_id, assignments=None, version=3,
                  instance_id=None):
        """A follower's SyncGroup waits for the leader's: send it now, recv_sync later."""
        return self.send(API_SYNC_GROUP, version,
                         self.sync_body(group, generation, member_id, assignments, version,
                                        instance_id))

    def recv_sync(self, cid, version=3, timeout=None):
        return self.parse_sync(self.recv(cid, timeout), version)

    # -- Heartbeat v0-v3
    def heartbeat(self, group, generation, member_id, version=3, instance_id=None):
        b = kw.string(group) + kw.int32(generation) + kw.string(member_id)
        if version >= 3:
            b += kw.string(instance_id)
        r = self.call(API_HEARTBEAT, version, b)
        if version >= 1:
            r.int32()
        return r.int16()

    # -- LeaveGroup v0-v2 (single member)
    def leave(self, group, member_id, version=2):
        r = self.call(API_LEAVE_GROUP, version, kw.string(group) + kw.string(member_id))
        if version >= 1:
            r.int32()
        return r.int16()

    # -- DescribeGroups v0-v4, and v5-v6 (flexible; v6 has error_message)
    def describe(self, groups, version=4):
        if version >= 5:
            return self._describe_flexible(groups, version)
        b = kw.array(kw.string(g) for g in groups)
        if version >= 3:
            b += kw.boolean(False)
        r = self.call(API_DESCRIBE_GROUPS, version, b)
        if version >= 1:
            r.int32()

        def member(x):
            m = {'member_id': x.string()}
            if version >= 4:
                m['group_instance_id'] = x.string()
            m['client_id'] = x.string()
            m['client_host'] = x.string()
            m['metadata'] = _bytes(x)
            m['assignment'] = _bytes(x)
            return m

        def group(x):
            g = {'error_code': x.int16(), 'group_id': x.string(),
                 'state': x.string(), 'protocol_type': x.string(),
                 'protocol': x.string(), 'members': x.array(member)}
            if version >= 3:
                g['authorized_operations'] = x.int32()
            return g
        return r.array(group)

    def _describe_flexible(self, groups, version):
        b = kw.compact_array(kw.compact_string(g) for g in groups) + kw.boolean(False) + kw.TAGGED_NONE
        r = self.call(API_DESCRIBE_GROUPS, version, b, flexible=True)
        r.int32()

        def cbytes(x):
            n = x.uvarint()
            return None if n == 0 else x._take(n - 1)

        def member(x):
            m = {'member_id': x.compact_string(), 'group_instance_id': x.compact_string(),
                 'client_id': x.compact_string(), 'client_host': x.compact_string(),
                 'metadata': cbytes(x), 'assignment': cbytes(x)}
            x.tagged_fields()
            return m

        def group(x):
            g = {'error_code': x.int16()}
            if version >= 6:
                g['error_message'] = x.compact_string()
            g.update({'group_id': x.compact_string(), 'state': x.compact_string(),
                      'protocol_type': x.compact_string(), 'protocol': x.compact_string(),
                      'members': x.compact_array(member), 'authorized_operations': x.int32()})
            x.tagged_fields()
            return g
        out = r.compact_array(group)
        r.tagged_fields()
        assert r.remaining() == 0
        return out

    # -- ListGroups v2 (no filter) and v4 (flexible, states filter)
    def list_groups(self, states=None):
        if states is None:
            r = self.call(API_LIST_GROUPS, 2, b'')
            r.int32()
            err = r.int16()
            groups = r.array(lambda x: {'group_id': x.string(),
                                        'protocol_type': x.string()})
            return err, groups
        body = kw.compact_array(kw.compact_string(s) for s in states) + kw.TAGGED_NONE
        r = self.call(API_LIST_GROUPS, 4, body, flexible=True)
        r.int32()
        err = r.int16()

        def group(x):
            g = {'group_id': x.compact_string(), 'protocol_type': x.compact_string(),
                 'state': x.compact_string()}
            x.tagged_fields()
            return g
        groups = r.compact_array(group)
        r.tagged_fields()
        return err, groups

    # -- DeleteGroups v1
    def delete_groups(self, groups):
        r = self.call(API_DELETE_GROUPS, 1, kw.array(kw.string(g) for g in groups))
        r.int32()
        return {g: e for g, e in r.array(lambda x: (x.string(), x.int16()))}

    # -- OffsetCommit v2 (generation/member; -1/'' for a simple commit)
    def commit(self, group, offsets, generation=-1, member_id='', metadata=None):
        """offsets: {(topic, partition): offset}; metadata: bytes/str (or
        None) committed with every partition. Returns {(t, p): error}."""
        by_topic = {}
        for (t, p), o in offsets.items():
            by_topic.setdefault(t, []).append((p, o))
        b = (kw.string(group) + kw.int32(generation) + kw.string(member_id)
             + kw.int64(-1)   # retention_time_ms (v2-v4)
             + kw.array(kw.string(t) + kw.array(kw.int32(p) + kw.int64(o) + kw.string(metadata)
                                               for p, o in ps)
                        for t, ps in by_topic.items()))
        r = self.call(API_OFFSET_COMMIT, 2, b)
        out = {}
        for t, ps in r.array(lambda x: (x.string(), x.array(lambda y: (y.int32(), y.int16())))):
            for p, e in ps:
                out[(t, p)] = e
        return out

    # -- OffsetCommit v1: with an explicit commit timestamp per partition
    def commit_v1(self, group, offsets, commit_ts, generation=-1, member_id=''):
        by_topic = {}
        for (t, p), o in offsets.items():
            by_topic.setdefault(t, []).append((p, o))
        b = (kw.string(group) + kw.int32(generation) + kw.string(member_id)
             + kw.array(kw.string(t) + kw.array(kw.int32(p) + kw.int64(o) + kw.int64(commit_ts)
                                               + kw.string(None) for p, o in ps)
                        for t, ps in by_topic.items()))
        r = self.call(API_OFFSET_COMMIT, 1, b)
        out = {}
        for t, ps in r.array(lambda x: (x.string(), x.array(lambda y: (y.int32(), y.int16())))):
            for p, e in ps:
                out[(t, p)] = e
        return out

    # -- OffsetFetch v3
    def fetch_offsets(self, group, parts=None, with_metadata=False):
        """parts: {topic: [partition]} or None for all. Returns ({(t,p): (offset, err)}, err),
        or ({(t,p): (offset, metadata bytes, err)}, err) with_metadata."""
        if parts is None:
            b = kw.string(group) + kw.int32(-1)
        else:
            b = kw.string(group) + kw.array(kw.string(t) + kw.array(kw.int32(p) for p in ps)
                                            for t, ps in parts.items())
        r = self.call(API_OFFSET_FETCH, 3, b)
        r.int32()
        out = {}

        def part(y):
            p, o = y.int32(), y.int64()
            n = y.int16()
            meta = None if n < 0 else y._take(n)
            return (p, o, meta, y.int16())
        for t, ps in r.array(lambda x: (x.string(), x.array(part))):
            for p, o, meta, e in ps:
                out[(t, p)] = (o, meta, e) if with_metadata else (o, e)
        return out, r.int16()

    # -- OffsetDelete v0
    def offset_delete(self, group, parts):
        b = kw.string(group) + kw.array(kw.string(t) + kw.array(kw.int32(p) for p in ps)
                                        for t, ps in parts.items())
        r = self.call(API_OFFSET_DELETE, 0, b)
        err = r.int16()
        r.int32()
        out = {}
        for t, ps in r.array(lambda x: (x.string(), x.array(lambda y: (y.int32(), y.int16())))):
            for p, e in ps:
                out[(t, p)] = e
        return err, out
