"""Hostile / malformed input must close only the offending connection while
other clients keep working."""

import random
import re
import threading
import time

import pytest

import kafka_wire as kw
from spool_clients import kcat_list


def wait_for_log(broker, pattern, timeout=3.0):
    """Poll the broker log until regex `pattern` matches; return the match or None."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        m = rx.search(broker.log_text())
        if m or time.monotonic() >= deadline:
            return m
        time.sleep(0.02)


def closing_line_for(broker, sock, what, timeout=3.0):
    """The WARN 'closing connection N from 127.0.0.1:<our port>: <what>' line."""
    port = sock.getsockname()[1]
    return wait_for_log(
        broker,
        r'WARN \[net\] closing connection \d+ from 127\.0\.0\.1:%d: [^\n]*%s' % (
            port, what),
        timeout)


class KcatLoop(threading.Thread):
    """Runs `kcat -L` back to back until stopped; records every result."""

    def __init__(self, bootstrap):
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.results = []
        self.stop_event = threading.Event()
        self.first_done = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self.stop_event.is_set():
                self.results.append(kcat_list(self.bootstrap, metadata_timeout=5))
                self.first_done.set()
        except Exception as e:  # surfaced by the test
            self.error = e
            self.first_done.set()

    def finish(self, min_runs=3, timeout=60):
        deadline = time.monotonic() + timeout
        while len(self.results) < min_runs and self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.stop_event.set()
        self.join(timeout)
        assert not self.is_alive(), 'kcat loop did not stop'
        assert self.error is None, self.error
        return self.results


def bad_frames():
    rng = random.Random(0x5B001)
    garbage = kw.int16(9999) + bytes(rng.getrandbits(8) for _ in range(98))
    yield ('unknown_api_key', kw.int32(100) + garbage,
           r'unknown or unimplemented API key 9999')
    yield ('length_2GiB', kw.int32(0x7fffffff) + b'\x00' * 16,
           r'frame length 2147483647 outside 0\.\.104857600')
    yield ('negative_length', kw.int32(-5) + b'\x00' * 16,
           r'frame length -5 outside 0\.\.104857600')
    yield ('metadata_v99', kw.request(kw.API_METADATA, 99, 77, kw.array([])),
           r'unsupported version 99 of API key 3')
    # Metadata v1: topic array claims 1,000,000 entries, none follow.
    yield ('metadata_million_topics',
           kw.request(kw.API_METADATA, 1, 78, kw.int32(1000000)),
           r'malformed MetadataRequest v1 body')
    # Metadata v1: one huge topic-name length with a short body.
    yield ('metadata_string_overrun',
           kw.request(kw.API_METADATA, 1, 79, kw.int32(1) + kw.int16(30000) + b'abc'),
           r'malformed MetadataRequest v1 body')
    # Frame too short to carry even a request header.
    yield ('tiny_frame', kw.int32(3) + b'\x00\x12\x00',
           r'too short for a request header')


def test_bad_input_closes_connection_others_unaffected(broker):
    loop = KcatLoop(broker.bootstrap)
    loop.start()
    assert loop.first_done.wait(20)

    not_closed = []
    missing_log = []
    for name, data, log_rx in bad_frames():
        with kw.connect(broker.port) as s:
            s.sendall(data)
            if not kw.wait_closed(s, timeout=5):
                not_closed.append(name)
            elif not closing_line_for(broker, s, log_rx):
                missing_log.append(name)
        # a good request on a new connection still works in between
        resp = kw.parse_api_versions_response(
            kw.send_recv(broker.port, kw.api_versions_request(0, 5)), 0)
        assert resp['error_code'] == 0

    # (c) truncated frame: length 50, only 10 bytes, then we close.
    with kw.connect(broker.port) as s:
        s.sendall(kw.int32(50) + b'\x00\x03\x00\x01\x00\x00\x00\x07\x00\x00')

    results = loop.finish(min_runs=3)
    assert not_closed == [], 'broker kept these connections open: %s' % not_closed
    assert missing_log == [], 'no closing-connection log line for: %s\n%s' % (
        missing_log, broker.log_text())

    bad = [r for r in results
           if r.returncode != 0 or r.brokers() != [(1, '127.0.0.1', broker.port)]]
    assert bad == [], bad
    assert len(results) >= 3

    assert broker.running(), broker.log_text()
    resp = kw.parse_api_versions_response(
        kw.send_recv(broker.port, kw.api_versions_request(3, 99)), 3)
    assert resp['correlation_id'] == 99
    assert resp['error_code'] == 0
    assert resp['api_keys'][18] == (0, 4)
    assert len(re.findall(r'closing connection', broker.log_text())) >= 7


@pytest.mark.parametrize('first4', [
    kw.int32(0x7fffffff),   # 2 GiB
    kw.int32(-1),
    kw.int32(-2147483648),
    b'\xff\xff\xff\xfe',
], ids=['2GiB', 'minus1', 'int_min', 'minus2'])
def test_bad_length_prefix_alone_is_refused(broker, first4):
    # No body bytes at all: the length prefix alone must trigger the close.
    with kw.connect(broker.port) as s:
        s.sendall(first4)
        assert kw.wait_closed(s, timeout=5)
        assert closing_line_for(broker, s, r'frame length -?\d+ outside 0\.\.104857600')
    assert broker.running()


def _metadata_v1_of_size(total_payload, corr):
    """A valid Metadata v1 request whose payload (excluding the 4-byte prefix)
    is exactly total_payload bytes, padded with topic names."""
    base = kw.request_header(kw.API_METADATA, 1, corr)
    topics = []
    size = len(base) + 4
    i = 0
    while True:
        left = total_payload - size
        if left <= 0:
            break
        name_len = min(200, left - 2)
        if name_len < 1:
            raise ValueError('cannot pad to %d' % total_payload)
        if left - (2 + name_len) in (1, 2):  # leave room for a final topic
            name_len -= 3
        topics.append(('t%d_' % i + 'x' * 200)[:name_len])
        size += 2 + name_len
        i += 1
    payload = base + kw.array(kw.string(t) for t in topics)
    assert len(payload) == total_payload, (len(payload), total_payload)
    return kw.frame(payload), topics


def test_request_max_bytes(start_broker):
    # auto-creation off: the answer to a Metadata for unknown names is then
    # UNKNOWN_TOPIC_OR_PARTITION, which is what this test checks for
    b = start_broker({'socket.request.max.bytes': 1000, 'auto.create.topics.enable': 'false'})

    # Exactly at the limit: accepted and answered.
    data, topics = _metadata_v1_of_size(1000, 21)
    with kw.connect(b.port) as s:
        resp = kw.parse_metadata_response_v1(kw.send_recv(s, data))
    assert resp['correlation_id'] == 21
    assert sorted(t['name'] for t in resp['topics']) == sorted(topics)
    assert {t['error_code'] for t in resp['topics']} == {3}

    # One byte over: closed without a response.
    data, _ = _metadata_v1_of_size(1001, 22)
    with kw.connect(b.port) as s:
        s.sendall(data)
        assert kw.wait_closed(s, timeout=5)
        assert closing_line_for(b, s, r'frame length 1001 outside 0\.\.1000')

    # A 2000-byte request frame: closed without a response.
    data, _ = _metadata_v1_of_size(1996, 23)
    assert len(data) == 2000
    with kw.connect(b.port) as s:
        s.sendall(data[:4])   # the prefix alone must be enough to refuse it
        assert kw.wait_closed(s, timeout=5)
        assert closing_line_for(b, s, r'frame length 1996 outside 0\.\.1000')
    with kw.connect(b.port) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert kw.wait_closed(s, timeout=5)

    res = kcat_list(b.bootstrap)
    assert res.returncode == 0, res
    assert res.brokers() == [(1, '127.0.0.1', b.port)], res
    assert b.running()


def test_pipelined_requests(broker):
    data = (kw.api_versions_request(0, 1)
            + kw.metadata_request(1, 2)
            + kw.api_versions_request(3, 3))
    with kw.connect(broker.port) as s:
        s.sendall(data)
        frames = [kw.recv_frame(s) for _ in range(3)]
    assert [kw.correlation_id(f) for f in frames] == [1, 2, 3]

    av0 = kw.parse_api_versions_response(frames[0], 0)
    assert av0['error_code'] == 0 and av0['trailing'] == 0
    md = kw.parse_metadata_response_v1(frames[1])
    assert md['brokers'][0]['node_id'] == 1 and md['trailing'] == 0
    av3 = kw.parse_api_versions_response(frames[2], 3)
    assert av3['error_code'] == 0 and av3['trailing'] == 0
    assert av3['api_keys'][3] == (0, 13)


def test_pipelined_requests_byte_by_byte(broker):
    """Same pipeline, but dribbled one byte per send: framing must not depend
    on how the bytes arrive."""
    data = (kw.metadata_request(1, 10)
            + kw.api_versions_request(3, 11)
            + kw.metadata_request(4, 12, topics=['nosuch']))
    with kw.connect(broker.port) as s:
        import socket as _socket
        s.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            s.sendall(data[i:i + 1])
        frames = [kw.recv_frame(s) for _ in range(3)]
    assert [kw.correlation_id(f) for f in frames] == [10, 11, 12]


def test_bad_request_after_good_one_in_same_send(broker):
    """A valid request followed by garbage in one segment: the valid one is
    answered, then the connection is closed."""
    data = kw.api_versions_request(0, 31) + kw.request(kw.API_METADATA, 99, 32)
    with kw.connect(broker.port) as s:
        s.sendall(data)
        first = kw.recv_frame(s)
        assert kw.correlation_id(first) == 31
        assert kw.wait_closed(s, timeout=5)


def _metadata_v12_all_topics_librdkafka_5049(corr):
    """The all-topics Metadata v12 of librdkafka 2.x (issue #5049): the
    null topic count is written into a 4-byte slot, so the compact null
    (0x00) is followed by 3 more bytes. Kafka's parser reads the body
    (topics null, allow_auto_topic_creation, include_topic_authorized_
    operations, tagged fields) and ignores the 3 bytes left."""
    body = (b'\x00\x00\x00\x00'          # 0x00 = null topics, + 3 stray bytes
            + kw.boolean(True)             # allow_auto_topic_creation
            + kw.boolean(False)            # include_topic_authorized_operations
            + kw.TAGGED_NONE)
    return kw.request(kw.API_METADATA, 12, corr, body, flexible=True)


def test_bytes_after_a_body_are_ignored_as_kafka_does(broker):
    # Metadata v12, all topics, 3 bytes too many: answered, connection kept
    with kw.connect(broker.port) as s:
        md = kw.parse_metadata_response(
            kw.send_recv(s, _metadata_v12_all_topics_librdkafka_5049(41)), 12)
        assert md['correlation_id'] == 41
        assert md['brokers'][0]['node_id'] == 1 and md['trailing'] == 0
        # the same connection still serves the next request
        md = kw.parse_metadata_response(kw.send_recv(s, kw.metadata_request(12, 42)), 12)
        assert md['correlation_id'] == 42
    # any request: ApiVersions v0 with junk after its (empty) body
    with kw.connect(broker.port) as s:
        av = kw.parse_api_versions_response(
            kw.send_recv(s, kw.request(kw.API_API_VERSIONS, 0, 43, b'junk')), 0)
        assert av['correlation_id'] == 43 and av['error_code'] == 0
    # a body that does not decode still closes the connection: Metadata v12
    # whose topic array announces one topic and ends inside its id
    with kw.connect(broker.port) as s:
        s.sendall(kw.request(kw.API_METADATA, 12, 44, kw.uvarint(2) + b'\x00' * 10,
                             flexible=True))
        assert kw.wait_closed(s, timeout=5)
        assert closing_line_for(broker, s, r'malformed MetadataRequest v12 body')
    assert broker.running()
