#!/usr/bin/env python3
"""The newer Python clients' scenarios, run by the venv that
tests/integration/newer_clients.py builds from requirements.txt (never by
Debian's python3, whose confluent-kafka and kafka-python are older).

    scenarios.py CLIENT SCENARIO BOOTSTRAP PREFIX

CLIENT is confluent (confluent-kafka), kafka-python or aiokafka; SCENARIO
is roundtrip, group or admin.  Prints one JSON object (what the client
saw) on stdout; tests/integration/test_0055_newer_clients.py asserts on
it.  The scenarios are the same for every client of every language
(tests/go, tests/node): see newer_clients.py for the contract.

Every producer keeps its client's default for idempotence: kafka-python 3
enables it (KIP-679), librdkafka and aiokafka do not.
"""
import asyncio
import json
import sys
import time

CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd']
N = 40                  # records per codec in the round trip
RT_PARTS = 3            # the round trip topic's partitions (pytest creates it)
GROUP_PARTS = 4         # the group topic's partitions (pytest creates it)
PHASE1, PHASE2 = 10, 5  # records per partition before and after the restart
DEADLINE = 60.0         # seconds for any one wait


T0 = time.monotonic()


def step(what):
    """Notes on stderr how far the scenario got, and when: the trail a
    failing test shows."""
    print('[%6.2fs] %s' % (time.monotonic() - T0, what), file=sys.stderr, flush=True)


def rt_records(codecs):
    """The round trip's records, in production order (the same rule in
    tests/go/internal/spec and tests/node/scenarios.js)."""
    out = []
    for ci, c in enumerate(codecs):
        for j in range(N):
            out.append({
                'p': ci % RT_PARTS,
                'k': None if j == N - 1 else '%s-k%d' % (c, j),
                'v': None if j == N - 2 else '%s-v%d-%s' % (c, j, 'spool-' * 12),
                'h': [['codec', c], ['seq', str(j)], ['dup', '1'], ['dup', '2'], ['empty', '']],
                'ts': 1700000000000 + 1000 * ci + j,
                'codec': c})
    return out


def group_values(phase):
    """[(partition, value)] produced in a group phase (1 or 2)."""
    n = PHASE1 if phase == 1 else PHASE2
    return [(p, 'g%d-p%d-%d' % (phase, p, i)) for i in range(n) for p in range(GROUP_PARTS)]


def enc(s):
    return None if s is None else s.encode()


def dec(b):
    return None if b is None else bytes(b).decode()


def deadline_passed(t0, what):
    if time.monotonic() - t0 > DEADLINE:
        raise TimeoutError('%s: not done within %.0f s' % (what, DEADLINE))


def configs_until(read, retention):
    """read() until its retention.ms is `retention` (Kafka applies a config
    change through its metadata log, so a describe right after an alter may
    still see the old value) or the deadline passes; returns the last read."""
    t0 = time.monotonic()
    while True:
        got = read()
        if got.get('retention.ms') == retention or time.monotonic() - t0 > DEADLINE:
            return got
        time.sleep(0.1)


async def aconfigs_until(read, retention):
    t0 = time.monotonic()
    while True:
        got = await read()
        if got.get('retention.ms') == retention or time.monotonic() - t0 > DEADLINE:
            return got
        await asyncio.sleep(0.1)


def stable(members):
    """True when every member has a non-empty assignment, pairwise
    disjoint, together all GROUP_PARTS partitions."""
    sets = [m['assigned'] for m in members]
    if any(not s for s in sets):
        return False
    union = set().union(*sets)
    return union == set(range(GROUP_PARTS)) and sum(len(s) for s in sets) == GROUP_PARTS


def assignment_partitions(data):
    """{topic: [partitions]} from a consumer protocol assignment (the bytes
    of a DescribeGroups member_assignment): version int16, [topic string,
    [partition int32]], user data bytes."""
    import struct
    pos = 2
    (n,) = struct.unpack_from('>i', data, pos)
    pos += 4
    out = {}
    for _ in range(n):
        (ln,) = struct.unpack_from('>h', data, pos)
        topic = data[pos + 2:pos + 2 + ln].decode()
        pos += 2 + ln
        (np_,) = struct.unpack_from('>i', data, pos)
        pos += 4
        out[topic] = list(struct.unpack_from('>%di' % np_, data, pos))
        pos += 4 * np_
    return out


def member_out(m):
    return {'assigned': sorted(m['final']), 'records': m['records'],
            'committed': {str(p): o for p, o in sorted(m['committed'].items())}}


# ============================================================ confluent-kafka

def ck_producer(bootstrap, **conf):
    from confluent_kafka import Producer
    c = {'bootstrap.servers': bootstrap, 'acks': 'all', 'linger.ms': 5}
    c.update(conf)
    return Producer(c)


def ck_produce(p, topic, items):
    """items: [(partition, key, value, headers, timestamp)]; returns
    [[partition, offset]] in order, every delivery checked."""
    res = [None] * len(items)

    def cb_for(i):
        def cb(err, msg):
            res[i] = ['error', str(err)] if err else [msg.partition(), msg.offset()]
        return cb

    for i, (part, k, v, h, ts) in enumerate(items):
        kw = {'partition': part, 'key': enc(k), 'value': enc(v), 'on_delivery': cb_for(i)}
        if h is not None:
            kw['headers'] = [(hk, enc(hv)) for hk, hv in h]
        if ts is not None:
            kw['timestamp'] = ts
        p.produce(topic, **kw)
        p.poll(0)
    left = p.flush(DEADLINE)
    if left:
        raise RuntimeError('%d records not delivered' % left)
    for r in res:
        if r is None or r[0] == 'error':
            raise RuntimeError('delivery failed: %r' % (r,))
    return res


def ck_record(m):
    h = m.headers() or []
    return {'p': m.partition(), 'o': m.offset(), 'k': dec(m.key()), 'v': dec(m.value()),
            'h': [[hk, dec(hv)] for hk, hv in h], 'ts': m.timestamp()[1]}


def ck_roundtrip(bootstrap, prefix):
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    topic = prefix + '-rt'
    produced = []
    recs = rt_records(CODECS)
    for c in CODECS:
        p = ck_producer(bootstrap, **{'compression.type': c})
        produced += ck_produce(p, topic, [(r['p'], r['k'], r['v'], r['h'], r['ts'])
                                          for r in recs if r['codec'] == c])
        step('produced %s' % c)
    want = len(recs)
    cons = Consumer({'bootstrap.servers': bootstrap, 'group.id': prefix + '-unused',
                     'enable.auto.commit': False, 'enable.partition.eof': False})
    got = []
    try:
        cons.assign([TopicPartition(topic, p, 0) for p in range(RT_PARTS)])
        t0 = time.monotonic()
        while len(got) < want:
            deadline_passed(t0, 'consume')
            m = cons.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(str(m.error()))
            got.append(ck_record(m))
    finally:
        cons.close()
    return {'codecs': CODECS, 'produced': produced, 'consumed': got}


def ck_member(bootstrap, topic, group, name):
    from confluent_kafka import Consumer
    st = {'name': name, 'assigned': set(), 'records': [], 'committed': {}}

    def on_assign(c, parts):
        st['assigned'] = {tp.partition for tp in parts}

    def on_revoke(c, parts):
        st['assigned'] = set()

    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': group, 'client.id': name,
                  'enable.auto.commit': False, 'auto.offset.reset': 'earliest',
                  'heartbeat.interval.ms': 500, 'session.timeout.ms': 10000})
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    st['c'] = c
    return st


def ck_poll(members, until, what):
    """Polls the members in turn until until() holds."""
    t0 = time.monotonic()
    while not until():
        deadline_passed(t0, what)
        for m in members:
            msg = m['c'].poll(0.05)
            if msg is None:
                continue
            if msg.error():
                raise RuntimeError('%s: %s' % (m['name'], msg.error()))
            m['records'].append([msg.partition(), msg.offset(), dec(msg.value())])


def ck_commit_close(m, topic):
    from confluent_kafka import TopicPartition
    c = m['c']
    m['final'] = set(m['assigned'])
    c.commit(asynchronous=False)
    for tp in c.committed([TopicPartition(topic, p) for p in sorted(m['assigned'])], timeout=10):
        m['committed'][tp.partition] = tp.offset
    c.close()


def ck_group(bootstrap, prefix):
    topic, group = prefix + '-grp', prefix + '-g'
    a = ck_member(bootstrap, topic, group, 'a')
    b = ck_member(bootstrap, topic, group, 'b')
    ck_poll([a, b], lambda: stable([a, b]), 'two members assigned')
    step('a: %s, b: %s' % (sorted(a['assigned']), sorted(b['assigned'])))
    prod = ck_producer(bootstrap)
    ck_produce(prod, topic, [(p, None, v, None, None) for p, v in group_values(1)])
    total = PHASE1 * GROUP_PARTS
    ck_poll([a, b], lambda: len(a['records']) + len(b['records']) >= total, 'phase 1')
    step('phase 1 read')
    for m in (a, b):
        ck_commit_close(m, topic)
    ck_produce(prod, topic, [(p, None, v, None, None) for p, v in group_values(2)])
    step('a and b closed, phase 2 produced')
    c = ck_member(bootstrap, topic, group, 'c')
    ck_poll([c], lambda: len(c['records']) >= PHASE2 * GROUP_PARTS, 'after the restart')
    step('phase 2 read by c')
    ck_commit_close(c, topic)
    return {'members': {'a': member_out(a), 'b': member_out(b)}, 'restart': member_out(c)}


def ck_admin(bootstrap, prefix):
    from confluent_kafka import KafkaException, TopicCollection
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                       ConfigResource, NewPartitions, NewTopic)
    topic, group = prefix + '-adm', prefix + '-adm-g'
    out = {}
    adm = AdminClient({'bootstrap.servers': bootstrap})
    adm.create_topics([NewTopic(topic, 2, 1, config={'retention.ms': '3600000'})],
                      operation_timeout=10)[topic].result(20)
    out['create'] = 0
    try:
        adm.create_topics([NewTopic(topic, 2, 1)], operation_timeout=10)[topic].result(20)
        out['create_again'] = 0
    except KafkaException as e:
        out['create_again'] = e.args[0].code()
    md = adm.list_topics(timeout=10)
    out['listed'] = topic in md.topics
    desc = adm.describe_topics(TopicCollection([topic]), request_timeout=10)[topic].result(20)
    out['partitions'] = sorted(p.id for p in desc.partitions)

    def topic_configs():
        res = ConfigResource('topic', topic)
        entries = adm.describe_configs([res])[res].result(20)
        return {k: entries[k].value for k in ('retention.ms', 'cleanup.policy')}
    out['configs'] = configs_until(topic_configs, '3600000')
    res = ConfigResource('topic', topic, incremental_configs=[
        ConfigEntry('retention.ms', '7200000', incremental_operation=AlterConfigOpType.SET)])
    adm.incremental_alter_configs([res])[res].result(20)
    out['configs_altered'] = configs_until(topic_configs, '7200000')
    adm.create_partitions([NewPartitions(topic, 4)], operation_timeout=10)[topic].result(20)
    t0 = time.monotonic()
    while True:
        desc = adm.describe_topics(TopicCollection([topic]), request_timeout=10)[topic].result(20)
        if len(desc.partitions) == 4:
            break
        deadline_passed(t0, 'four partitions')
        time.sleep(0.1)
    out['partitions_after'] = sorted(p.id for p in desc.partitions)

    step('topic made, configs altered, partitions added')

    m = ck_member(bootstrap, topic, group, 'adm-member')
    try:
        ck_poll([m], lambda: len(m['assigned']) == 4, 'admin group member')
        listed = adm.list_consumer_groups(request_timeout=10).result(20)
        out['groups'] = sorted(g.group_id for g in listed.valid if g.group_id == group)
        desc = adm.describe_consumer_groups([group], request_timeout=10)[group].result(20)
        assigned = set()
        for mem in desc.members:
            assigned |= {tp.partition for tp in mem.assignment.topic_partitions if tp.topic == topic}
        out['group'] = {'state': desc.state.name.lower(), 'members': len(desc.members),
                        'assigned': sorted(assigned)}
    finally:
        m['c'].close()
    adm.delete_topics([topic], operation_timeout=10)[topic].result(20)
    t0 = time.monotonic()
    while topic in adm.list_topics(timeout=10).topics:
        deadline_passed(t0, 'topic deleted')
        time.sleep(0.1)
    step('topic deleted')
    out['deleted'] = True
    return out


# ================================================================ kafka-python

def kp_producer(bootstrap, **conf):
    from kafka import KafkaProducer
    return KafkaProducer(bootstrap_servers=bootstrap, acks='all', linger_ms=5, **conf)


def kp_produce(p, topic, items):
    futs = []
    for part, k, v, h, ts in items:
        futs.append(p.send(topic, key=enc(k), value=enc(v), partition=part,
                           headers=[(hk, enc(hv)) for hk, hv in (h or [])],
                           timestamp_ms=ts))
    p.flush(DEADLINE)
    return [[md.partition, md.offset] for md in (f.get(timeout=DEADLINE) for f in futs)]


def kp_roundtrip(bootstrap, prefix):
    from kafka import KafkaConsumer, TopicPartition
    topic = prefix + '-rt'
    produced = []
    recs = rt_records(CODECS)
    for c in CODECS:
        p = kp_producer(bootstrap, compression_type=None if c == 'none' else c)
        try:
            produced += kp_produce(p, topic, [(r['p'], r['k'], r['v'], r['h'], r['ts'])
                                              for r in recs if r['codec'] == c])
            step('produced %s' % c)
        finally:
            p.close(10)
    cons = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    got = []
    try:
        tps = [TopicPartition(topic, p) for p in range(RT_PARTS)]
        cons.assign(tps)
        cons.seek_to_beginning(*tps)
        t0 = time.monotonic()
        while len(got) < len(recs):
            deadline_passed(t0, 'consume')
            for tp_recs in cons.poll(timeout_ms=200).values():
                for r in tp_recs:
                    got.append({'p': r.partition, 'o': r.offset, 'k': dec(r.key), 'v': dec(r.value),
                                'h': [[hk, dec(hv)] for hk, hv in r.headers], 'ts': r.timestamp})
    finally:
        cons.close()
    got.sort(key=lambda r: (r['p'], r['o']))
    return {'codecs': CODECS, 'produced': produced, 'consumed': got}


def kp_member(bootstrap, topic, group, name):
    from kafka import ConsumerRebalanceListener, KafkaConsumer
    st = {'name': name, 'assigned': set(), 'records': [], 'committed': {}}

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            st['assigned'] -= {tp.partition for tp in revoked}

        def on_partitions_assigned(self, assigned):
            st['assigned'] |= {tp.partition for tp in assigned}

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, client_id=name,
                      enable_auto_commit=False, auto_offset_reset='earliest',
                      heartbeat_interval_ms=500, session_timeout_ms=10000)
    c.subscribe([topic], listener=Listener())
    st['c'] = c
    return st


def kp_poll(members, until, what):
    # poll() long enough for a rejoin to finish inside it: kafka-python 3.0
    # whose join completes after a short poll() returned keeps its heartbeat
    # off for good (the stall above; seen again on a lone member's metadata
    # catch-up rejoin in kp_admin, the broker answering at once)
    t0 = time.monotonic()
    while not until():
        deadline_passed(t0, what)
        for m in members:
            for recs in m['c'].poll(timeout_ms=500).values():
                for r in recs:
                    m['records'].append([r.partition, r.offset, dec(r.value)])


def kp_commit_close(m, topic):
    from kafka import TopicPartition
    c = m['c']
    m['final'] = set(m['assigned'])
    c.commit()
    for p in sorted(m['assigned']):
        m['committed'][p] = c.committed(TopicPartition(topic, p))
    c.close()


def kp_group(bootstrap, prefix):
    topic, group = prefix + '-grp', prefix + '-g'
    a = kp_member(bootstrap, topic, group, 'a')
    # b joins once a holds every partition: kafka-python 3.0 polled with
    # short timeouts can stall for good when its own metadata catch-up
    # rejoin (a's second generation) overlaps b's first join -- its join
    # completes after poll() returned early and its heartbeat stays off --
    # seen once against Kafka and once against Spool under load
    kp_poll([a], lambda: a['assigned'] == set(range(GROUP_PARTS)), 'a assigned alone')
    b = kp_member(bootstrap, topic, group, 'b')
    kp_poll([a, b], lambda: stable([a, b]), 'two members assigned')
    step('a: %s, b: %s' % (sorted(a['assigned']), sorted(b['assigned'])))
    prod = kp_producer(bootstrap)
    kp_produce(prod, topic, [(p, None, v, None, None) for p, v in group_values(1)])
    total = PHASE1 * GROUP_PARTS
    kp_poll([a, b], lambda: len(a['records']) + len(b['records']) >= total, 'phase 1')
    step('phase 1 read')
    for m in (a, b):
        kp_commit_close(m, topic)
    kp_produce(prod, topic, [(p, None, v, None, None) for p, v in group_values(2)])
    prod.close(10)
    step('a and b closed, phase 2 produced')
    c = kp_member(bootstrap, topic, group, 'c')
    kp_poll([c], lambda: len(c['records']) >= PHASE2 * GROUP_PARTS, 'after the restart')
    step('phase 2 read by c')
    kp_commit_close(c, topic)
    return {'members': {'a': member_out(a), 'b': member_out(b)}, 'restart': member_out(c)}


def kp_idempotent(bootstrap, prefix):
    """kafka-python 3's idempotent producer (its default, said explicitly:
    the point of the scenario), acks=all, five requests in flight:
    KP_IDEM_RECORDS records round-robin over PREFIX-idem's KP_IDEM_PARTS
    partitions (made by the test), partition p's n-th value b'p<p>-<n>'.
    Reports the producer id, errors, and each record's offset as its
    future gave it, per partition in sequence order; the test reads the
    topic back (test_0071_idempotence.py, which may cut the connections
    meanwhile)."""
    import os
    from kafka import KafkaProducer
    topic = prefix + '-idem'
    n = int(os.environ.get('KP_IDEM_RECORDS', '20000'))
    parts = int(os.environ.get('KP_IDEM_PARTITIONS', '3'))
    p = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks='all', linger_ms=2,
                      max_in_flight_requests_per_connection=5, retry_backoff_ms=10,
                      reconnect_backoff_ms=10, reconnect_backoff_max_ms=100, delivery_timeout_ms=300000)
    per = [n // parts + (1 if q < n % parts else 0) for q in range(parts)]
    offsets = [[-2] * k for k in per]
    errors = []

    def ok(q, seq):
        return lambda md: offsets[q].__setitem__(seq, md.offset)

    def bad(q, seq):
        return lambda e: errors.append([q, seq, repr(e)])

    seqs = [0] * parts
    try:
        for i in range(n):
            q = i % parts
            seq = seqs[q]
            seqs[q] += 1
            f = p.send(topic, value=b'p%d-%08d' % (q, seq), partition=q)
            f.add_callback(ok(q, seq))
            f.add_errback(bad(q, seq))
        p.flush(300)
        step('flushed %d records' % n)
        tm = p._transaction_manager      # no public accessor for the producer id
        pid = tm.producer_id_and_epoch.producer_id if tm is not None else None
        epoch = tm.producer_id_and_epoch.epoch if tm is not None else None
    finally:
        p.close(10)
    return {'records': n, 'per_partition': per, 'producer_id': pid, 'epoch': epoch,
            'errors': errors[:20], 'error_count': len(errors), 'offsets': offsets}


def kp_admin(bootstrap, prefix):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
    from kafka.errors import KafkaError
    topic, group = prefix + '-adm', prefix + '-adm-g'
    out = {}
    adm = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        adm.create_topics({topic: {'num_partitions': 2, 'replication_factor': 1,
                                   'configs': {'retention.ms': '3600000'}}},
                          wait_for_metadata=True)
        out['create'] = 0
        try:
            adm.create_topics({topic: {'num_partitions': 2, 'replication_factor': 1}})
            out['create_again'] = 0
        except KafkaError as e:
            out['create_again'] = e.errno
        out['listed'] = topic in adm.list_topics()
        (desc,) = adm.describe_topics([topic])
        out['partitions'] = sorted(p['partition_index'] for p in desc['partitions'])

        def topic_configs():
            r = adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                     config_filter='all')
            entries = r['topic'][topic]
            return {k: entries[k]['value'] for k in ('retention.ms', 'cleanup.policy')}
        out['configs'] = configs_until(topic_configs, '3600000')
        adm.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                          configs={'retention.ms': '7200000'})])
        out['configs_altered'] = configs_until(topic_configs, '7200000')
        adm.create_partitions({topic: 4})
        t0 = time.monotonic()
        while True:
            (desc,) = adm.describe_topics([topic])
            parts = sorted(p['partition_index'] for p in desc['partitions'])
            if len(parts) == 4:
                break
            deadline_passed(t0, 'four partitions')
            time.sleep(0.1)
        out['partitions_after'] = parts

        step('topic made, configs altered, partitions added')

        m = kp_member(bootstrap, topic, group, 'adm-member')
        try:
            kp_poll([m], lambda: len(m['assigned']) == 4, 'admin group member')
            out['groups'] = sorted(g['group_id'] for g in adm.list_groups() if g['group_id'] == group)
            d = adm.describe_groups([group])[group]
            assigned = set()
            for mem in d['members']:
                for t in mem['member_assignment']['assigned_partitions']:
                    if t['topic'] == topic:
                        assigned |= set(t['partitions'])
            out['group'] = {'state': d['group_state'].lower(), 'members': len(d['members']),
                            'assigned': sorted(assigned)}
        finally:
            m['c'].close()
        adm.delete_topics([topic])
        t0 = time.monotonic()
        while topic in adm.list_topics():
            deadline_passed(t0, 'topic deleted')
            time.sleep(0.1)
        step('topic deleted')
        out['deleted'] = True
    finally:
        adm.close()
    return out


# ==================================================================== aiokafka

def aio_producer(bootstrap, **conf):
    from aiokafka import AIOKafkaProducer
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks='all', linger_ms=5, **conf)


async def aio_produce(p, topic, items):
    futs = []
    for part, k, v, h, ts in items:
        futs.append(await p.send(topic, key=enc(k), value=enc(v), partition=part,
                                 headers=[(hk, enc(hv)) for hk, hv in (h or [])],
                                 timestamp_ms=ts))
    return [[md.partition, md.offset] for md in await asyncio.gather(*futs)]


async def aio_roundtrip(bootstrap, prefix):
    from aiokafka import AIOKafkaConsumer, TopicPartition
    topic = prefix + '-rt'
    produced = []
    recs = rt_records(CODECS)
    for c in CODECS:
        p = aio_producer(bootstrap, compression_type=None if c == 'none' else c)
        await p.start()
        try:
            produced += await aio_produce(p, topic, [(r['p'], r['k'], r['v'], r['h'], r['ts'])
                                                     for r in recs if r['codec'] == c])
            step('produced %s' % c)
        finally:
            await p.stop()
    cons = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await cons.start()
    got = []
    try:
        tps = [TopicPartition(topic, p) for p in range(RT_PARTS)]
        cons.assign(tps)
        await cons.seek_to_beginning(*tps)
        t0 = time.monotonic()
        while len(got) < len(recs):
            deadline_passed(t0, 'consume')
            batch = await cons.getmany(timeout_ms=200)
            for tp_recs in batch.values():
                for r in tp_recs:
                    got.append({'p': r.partition, 'o': r.offset, 'k': dec(r.key), 'v': dec(r.value),
                                'h': [[hk, dec(hv)] for hk, hv in r.headers], 'ts': r.timestamp})
    finally:
        await cons.stop()
    got.sort(key=lambda r: (r['p'], r['o']))
    return {'codecs': CODECS, 'produced': produced, 'consumed': got}


async def aio_member(bootstrap, topic, group, name):
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
    st = {'name': name, 'assigned': set(), 'records': [], 'committed': {}}

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):
            st['assigned'] -= {tp.partition for tp in revoked}

        async def on_partitions_assigned(self, assigned):
            st['assigned'] |= {tp.partition for tp in assigned}

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, client_id=name,
                         enable_auto_commit=False, auto_offset_reset='earliest',
                         heartbeat_interval_ms=500, session_timeout_ms=10000)
    await c.start()
    c.subscribe([topic], listener=Listener())
    st['c'] = c
    return st


async def aio_poll(members, until, what):
    t0 = time.monotonic()
    while not until():
        deadline_passed(t0, what)
        for m in members:
            for recs in (await m['c'].getmany(timeout_ms=50)).values():
                for r in recs:
                    m['records'].append([r.partition, r.offset, dec(r.value)])


async def aio_commit_close(m, topic):
    from aiokafka import TopicPartition
    c = m['c']
    m['final'] = set(m['assigned'])
    await c.commit()
    for p in sorted(m['assigned']):
        m['committed'][p] = await c.committed(TopicPartition(topic, p))
    await c.stop()


async def aio_group(bootstrap, prefix):
    topic, group = prefix + '-grp', prefix + '-g'
    a = await aio_member(bootstrap, topic, group, 'a')
    b = await aio_member(bootstrap, topic, group, 'b')
    await aio_poll([a, b], lambda: stable([a, b]), 'two members assigned')
    step('a: %s, b: %s' % (sorted(a['assigned']), sorted(b['assigned'])))
    prod = aio_producer(bootstrap)
    await prod.start()
    try:
        await aio_produce(prod, topic, [(p, None, v, None, None) for p, v in group_values(1)])
        total = PHASE1 * GROUP_PARTS
        await aio_poll([a, b], lambda: len(a['records']) + len(b['records']) >= total, 'phase 1')
        step('phase 1 read')
        for m in (a, b):
            await aio_commit_close(m, topic)
        await aio_produce(prod, topic, [(p, None, v, None, None) for p, v in group_values(2)])
    finally:
        await prod.stop()
    step('a and b closed, phase 2 produced')
    c = await aio_member(bootstrap, topic, group, 'c')
    await aio_poll([c], lambda: len(c['records']) >= PHASE2 * GROUP_PARTS, 'after the restart')
    step('phase 2 read by c')
    await aio_commit_close(c, topic)
    return {'members': {'a': member_out(a), 'b': member_out(b)}, 'restart': member_out(c)}


async def aio_admin(bootstrap, prefix):
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
    from aiokafka.errors import for_code
    topic, group = prefix + '-adm', prefix + '-adm-g'
    out = {}
    adm = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await adm.start()
    try:
        r = await adm.create_topics([NewTopic(topic, 2, 1, topic_configs={'retention.ms': '3600000'})])
        out['create'] = r.topic_errors[0][1]
        r = await adm.create_topics([NewTopic(topic, 2, 1)])
        out['create_again'] = r.topic_errors[0][1]
        out['listed'] = topic in await adm.list_topics()
        (desc,) = await adm.describe_topics([topic])
        out['partitions'] = sorted(p['partition'] for p in desc['partitions'])

        async def topic_configs():
            (resp,) = await adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            ((_err, _msg, _rtype, _name, entries),) = resp.resources
            found = {e[0]: e[1] for e in entries}
            return {k: found[k] for k in ('retention.ms', 'cleanup.policy')}
        out['configs'] = await aconfigs_until(topic_configs, '3600000')
        for resp in await adm.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                            configs={'retention.ms': '7200000'})]):
            if any(res[0] for res in resp.resources):
                raise RuntimeError('alter_configs: %r' % (resp,))
        out['configs_altered'] = await aconfigs_until(topic_configs, '7200000')
        await adm.create_partitions({topic: NewPartitions(4)})
        t0 = time.monotonic()
        while True:
            (desc,) = await adm.describe_topics([topic])
            parts = sorted(p['partition'] for p in desc['partitions'])
            if len(parts) == 4:
                break
            deadline_passed(t0, 'four partitions')
            await asyncio.sleep(0.1)
        out['partitions_after'] = parts

        step('topic made, configs altered, partitions added')

        m = await aio_member(bootstrap, topic, group, 'adm-member')
        try:
            await aio_poll([m], lambda: len(m['assigned']) == 4, 'admin group member')
            out['groups'] = sorted(g[0] for g in await adm.list_consumer_groups() if g[0] == group)
            (d,) = await adm.describe_consumer_groups([group])
            ((err, _gid, state, _ptype, _proto, members, *_),) = d.groups
            if err:
                raise for_code(err)()
            assigned = set()
            for mem in members:
                assigned |= set(assignment_partitions(mem[4]).get(topic, []))
            out['group'] = {'state': state.lower(), 'members': len(members),
                            'assigned': sorted(assigned)}
        finally:
            await m['c'].stop()
        await adm.delete_topics([topic])
        t0 = time.monotonic()
        while topic in await adm.list_topics():
            deadline_passed(t0, 'topic deleted')
            await asyncio.sleep(0.1)
        step('topic deleted')
        out['deleted'] = True
    finally:
        await adm.close()
    return out


# ======================================================================= main

def versions(client):
    if client == 'confluent':
        import confluent_kafka
        v, lib = confluent_kafka.version(), confluent_kafka.libversion()
        return {'confluent-kafka': v[0] if isinstance(v, tuple) else v,
                'librdkafka': lib[0] if isinstance(lib, tuple) else lib}
    if client == 'kafka-python':
        import kafka
        return {'kafka-python': kafka.__version__}
    import aiokafka
    return {'aiokafka': aiokafka.__version__}


SCENARIOS = {
    ('confluent', 'roundtrip'): ck_roundtrip, ('confluent', 'group'): ck_group,
    ('confluent', 'admin'): ck_admin,
    ('kafka-python', 'roundtrip'): kp_roundtrip, ('kafka-python', 'group'): kp_group,
    ('kafka-python', 'admin'): kp_admin, ('kafka-python', 'idempotent'): kp_idempotent,
    ('aiokafka', 'roundtrip'): aio_roundtrip, ('aiokafka', 'group'): aio_group,
    ('aiokafka', 'admin'): aio_admin,
}


def main(argv):
    if len(argv) != 4 or (argv[0], argv[1]) not in SCENARIOS:
        print(__doc__, file=sys.stderr)
        return 2
    client, scenario, bootstrap, prefix = argv
    fn = SCENARIOS[(client, scenario)]
    t0 = time.monotonic()
    res = fn(bootstrap, prefix)
    if asyncio.iscoroutine(res):
        res = asyncio.run(res)
    res['client'] = versions(client)
    res['seconds'] = round(time.monotonic() - t0, 2)
    print(json.dumps(res))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
