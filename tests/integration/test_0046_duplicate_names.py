"""A request that names one partition, or one topic, many times is answered
once for it, as Kafka does: Fetch keys its partitions by topic-partition in
a LinkedHashMap (one entry, at the first appearance, with the parameters of
the last), Metadata takes the requested names as a set. Before, a 16 KB
Fetch naming one partition 1,000 times was answered 1,000 times."""

import struct

import kafka_wire as kw
from client_helpers import create_topic, produce, producer


def segment_bytes(broker, topic, partition=0):
    return (broker.data_dir / ('%s-%d' % (topic, partition)) / ('0' * 20 + '.log')).read_bytes()


def batch_offsets(records):
    """[(base_offset, position)] of the record batches in `records`."""
    out, pos = [], 0
    while pos + 12 <= len(records):
        base, length = struct.unpack('>qi', records[pos:pos + 12])
        out.append((base, pos))
        pos += 12 + length
    return out


def status_kb(pid, key):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise KeyError(key)


def produce_batches(broker, topic, n):
    """n records, one batch each (linger 0, a flush after each)."""
    p = producer(broker.bootstrap, **{'linger.ms': 0})
    for i in range(n):
        dr = produce(p, topic, [{'value': b'%d' % i * 50}])
        assert dr[0].error is None and dr[0].offset == i


def test_fetch_naming_one_partition_1000_times_answers_it_once(broker):
    create_topic(broker.bootstrap, 'dupf', 1)
    produce_batches(broker, 'dupf', 10)
    seg = segment_bytes(broker, 'dupf')
    at = dict(batch_offsets(seg))
    assert sorted(at) == list(range(10))

    # offset 0 999 times, then offset 5: Kafka keeps the last parameters
    parts = [(0, 0, 1 << 20)] * 999 + [(0, 5, 1 << 20)]
    req = kw.fetch_request_v4(7, [('dupf', parts)])
    assert len(req) < 17 * 1024
    payload = kw.send_recv(broker.port, req, timeout=30)
    assert len(payload) < len(seg) + 200, len(payload)
    corr, topics = kw.parse_fetch_response_v4(payload)
    assert corr == 7
    assert [(name, [p['partition'] for p in ps]) for name, ps in topics] == [('dupf', [0])]
    p = topics[0][1][0]
    assert p['error'] == 0 and p['hw'] == 10
    assert p['records'] == seg[at[5]:]


def test_fetch_repeats_across_topic_entries_keep_the_first_place(broker):
    create_topic(broker.bootstrap, 'dupa', 1)
    create_topic(broker.bootstrap, 'dupb', 2)
    produce_batches(broker, 'dupa', 6)
    seg = segment_bytes(broker, 'dupa')
    at = dict(batch_offsets(seg))
    topics_req = [('dupa', [(0, 0, 1 << 20)]),
                  ('dupb', [(1, 0, 1 << 20), (0, 0, 1 << 20), (1, 0, 1 << 20)]),
                  ('dupa', [(0, 4, 1 << 20), (0, 3, 1 << 20)])]
    corr, topics = kw.parse_fetch_response_v4(
        kw.send_recv(broker.port, kw.fetch_request_v4(8, topics_req), timeout=30))
    assert corr == 8
    # one entry per partition, at its first appearance; dupa-0 with the
    # parameters of its last appearance (offset 3)
    assert [(name, [p['partition'] for p in ps]) for name, ps in topics] == \
        [('dupa', [0]), ('dupb', [1, 0])]
    assert topics[0][1][0]['records'] == seg[at[3]:]
    assert all(p['error'] == 0 for _, ps in topics for p in ps)


def test_metadata_naming_one_topic_300000_times_answers_it_once(broker):
    create_topic(broker.bootstrap, 'dupm', 3)
    n = 300000
    body = kw.int32(n + 1) + kw.string('dupm') * n + kw.string('nosuch_dup')
    req = kw.request(kw.API_METADATA, 1, 9, body)
    rss_before = status_kb(broker.pid, 'VmRSS')
    with kw.connect(broker.port, timeout=60) as s:
        md = kw.parse_metadata_response_v1(kw.send_recv(s, req, timeout=60))
    peak = status_kb(broker.pid, 'VmHWM')
    assert md['correlation_id'] == 9 and md['trailing'] == 0
    assert [t['name'] for t in md['topics']] == ['dupm', 'nosuch_dup']
    assert len(md['topics'][0]['partitions']) == 3
    # the request is 2 MB and its decoded array ~12 MB; nothing per repeat
    # beyond that (before: 22 MB of response and ~100 MB of peak RSS)
    assert peak - rss_before < 50 * 1024, (rss_before, peak)
    # by id (v12): each distinct id once as well
    md12 = kw.parse_metadata_response(
        kw.send_recv(broker.port, kw.metadata_request(12, 10, topics=['dupm'])), 12)
    tid = md12['topics'][0]['topic_id']
    topic = tid + kw.compact_string(None) + kw.TAGGED_NONE
    body = (kw.compact_array([topic] * 1000) + kw.boolean(False) + kw.boolean(False)
            + kw.TAGGED_NONE)
    md12 = kw.parse_metadata_response(
        kw.send_recv(broker.port, kw.request(kw.API_METADATA, 12, 11, body, flexible=True)), 12)
    assert [(t['name'], t['topic_id']) for t in md12['topics']] == [('dupm', tid)]


def test_a_response_that_outgrows_the_request_arena_closes_the_connection(broker):
    """3 million distinct (unknown) topic names in one Metadata v4 request:
    the response needs more than the request's arena may hold.  The broker
    closes that connection with a log line instead of answering a silently
    truncated topic list (it once answered zero topics), and keeps serving
    everyone else."""
    n = 3000000
    topics = b''.join(kw.string('t%07d' % i) for i in range(n))
    body = kw.int32(n) + topics + kw.int8(0)             # allow_auto_topic_creation false
    sock = kw.connect(broker.port, timeout=30)
    try:
        sock.sendall(kw.request(3, 4, 9, body))
        assert kw.wait_closed(sock, timeout=60)
    finally:
        sock.close()
    assert 'out of memory (request arena limit) building the MetadataResponse' in broker.log_text()
    payload = kw.send_recv(broker.port, kw.metadata_request(4, 10, ['other']))
    assert kw.correlation_id(payload) == 10
