"""DescribeTopicPartitions (key 75, v0, KIP-966), which Kafka 4's admin
client and kafka-topics --describe use before Metadata: the same raw
requests to Spool and to Kafka 4.3.1 get the same answers (topic ids
aside): named topics sorted and each once, unknown and invalid names,
all topics, the partition limit and the cursor that continues a page,
cursor errors, empty ELR lists."""
import time

import kafka_wire as kw
from spool_clients import confluent_admin

API = 75


def request(topics, limit=2000, cursor=None):
    body = kw.compact_array([kw.compact_string(t) + kw.TAGGED_NONE for t in topics]) + kw.int32(limit)
    if cursor is None:
        body += kw.int8(-1)                      # null struct
    else:
        body += kw.int8(1) + kw.compact_string(cursor[0]) + kw.int32(cursor[1]) + kw.TAGGED_NONE
    return kw.request(API, 0, 7, body + kw.TAGGED_NONE, flexible=True)


def parse(payload):
    r = kw.Reader(payload)
    assert r.int32() == 7
    r.tagged_fields()
    r.int32()                                    # throttle

    def ints(x):
        return x.compact_array(lambda y: y.int32())

    def part(x):
        p = {'error': x.int16(), 'index': x.int32(), 'leader': x.int32(), 'epoch': x.int32(),
             'replicas': ints(x), 'isr': ints(x), 'elr': ints(x), 'last_known_elr': ints(x),
             'offline': ints(x)}
        x.tagged_fields()
        return p

    def topic(x):
        t = {'error': x.int16(), 'name': x.compact_string(), 'id': x._take(16), 'internal': x.boolean(),
             'partitions': x.compact_array(part), 'ops': x.int32()}
        x.tagged_fields()
        return t
    out = {'topics': r.compact_array(topic)}
    if r.int8() < 0:
        out['next'] = None
    else:
        out['next'] = (r.compact_string(), r.int32())
        r.tagged_fields()
    r.tagged_fields()
    assert r.remaining() == 0
    return out


def ask(port, *a, **kw_):
    return parse(kw.send_recv(port, request(*a, **kw_)))


def create(bootstrap, topics):
    """Creates the topics and waits until Metadata shows them all (Kafka's
    brokers learn of a new topic a moment after the controller)."""
    from confluent_kafka.admin import NewTopic
    admin = confluent_admin(bootstrap)
    fs = admin.create_topics([NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics.items()],
                             operation_timeout=10, request_timeout=15)
    for f in fs.values():
        f.result(timeout=20)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=10)
        if all(t in md.topics and md.topics[t].error is None and len(md.topics[t].partitions) == n
               for t, n in topics.items()):
            return
        time.sleep(0.1)
    raise AssertionError('topics not visible in time: %s' % topics)


def strip_ids(resp):
    for t in resp['topics']:
        t['has_id'] = t.pop('id') != bytes(16)
    return resp


def test_same_answers_as_kafka(broker, kafka):
    names = {'dtp-a': 2, 'dtp-b': 4, 'dtp-c': 1}
    for b in (broker, kafka):
        create(b.bootstrap, names)
    cases = [
        # named, unsorted, twice, unknown and invalid names
        (['dtp-c', 'dtp-a', 'dtp-zz-missing', 'dtp-a', 'dtp bad!'], {}),
        # pages of at most 3 partitions
        (['dtp-a', 'dtp-b', 'dtp-c'], {'limit': 3}),
        (['dtp-a', 'dtp-b', 'dtp-c'], {'limit': 3, 'cursor': ('dtp-b', 1)}),
        (['dtp-a', 'dtp-b', 'dtp-c'], {'limit': 3, 'cursor': ('dtp-c', 0)}),
        (['dtp-b'], {'limit': 0}),                     # at least one
        # cursor errors: a negative partition, a topic not asked for
        (['dtp-a', 'dtp-b'], {'cursor': ('dtp-a', -1)}),
        (['dtp-a'], {'cursor': ('dtp-b', 0)}),
        # all topics from a cursor (other topics of the session may follow)
        ([], {'limit': 7, 'cursor': ('dtp-a', 0)}),
    ]
    for topics, opts in cases:
        s = strip_ids(ask(broker.port, topics, **opts))
        k = strip_ids(ask(kafka.port, topics, **opts))
        if not topics:
            # what follows dtp-c differs between the two brokers
            assert [t['name'] for t in s['topics']] == ['dtp-a', 'dtp-b', 'dtp-c'], s
            assert s['next'] is None and k['next'] is None, (s, k)
        assert s == k, '%s %s:\nspool: %s\nkafka: %s' % (topics, opts, s, k)

    first = ask(broker.port, ['dtp-c', 'dtp-a', 'dtp-zz-missing', 'dtp-a', 'dtp bad!'])
    assert [(t['name'], t['error']) for t in first['topics']] == \
        [('dtp bad!', 17), ('dtp-a', 0), ('dtp-c', 0), ('dtp-zz-missing', 3)], first
    a = first['topics'][1]
    assert [p['index'] for p in a['partitions']] == [0, 1]
    assert a['partitions'][0] == {'error': 0, 'index': 0, 'leader': 1, 'epoch': 0, 'replicas': [1], 'isr': [1],
                                  'elr': [], 'last_known_elr': [], 'offline': []}
    page = ask(broker.port, ['dtp-a', 'dtp-b', 'dtp-c'], limit=3)
    assert [(t['name'], len(t['partitions'])) for t in page['topics']] == [('dtp-a', 2), ('dtp-b', 1)]
    assert page['next'] == ('dtp-b', 1)
    page = ask(broker.port, ['dtp-a', 'dtp-b', 'dtp-c'], limit=3, cursor=page['next'])
    assert [(t['name'], [p['index'] for p in t['partitions']]) for t in page['topics']] == [('dtp-b', [1, 2, 3])]
    assert page['next'] == ('dtp-c', 0)
    bad = ask(broker.port, ['dtp-a', 'dtp-b'], cursor=('dtp-a', -1))
    assert [(t['name'], t['error'], t['partitions']) for t in bad['topics']] == \
        [('dtp-a', 42, []), ('dtp-b', 42, [])]
