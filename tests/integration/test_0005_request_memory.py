"""Memory under hostile clients: queued.max.request.bytes (Kafka's request
memory pool) bounds the bytes of requests being read, and
socket.request.read.timeout.ms (Spool's) closes connections that stall in
the middle of a request.

Before: 20 connections each sending 60 MB of a declared 100 MB frame took
the broker's RSS from 4 MB to 1.23 GB, and the connections stayed open."""

import os
import socket
import threading
import time

import kafka_wire as kw
from client_helpers import consume_assigned, create_topic, produce, producer
from spool_clients import kcat_list

MB = 1024 * 1024


def status_kb(pid, key):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise KeyError(key)


class Hog(threading.Thread):
    """Declares a frame of `declared` bytes, sends `send` bytes of it (as
    far as the broker lets it: a muted connection's socket fills up), then
    goes quiet and keeps the connection open until the broker closes it."""

    def __init__(self, port, declared, send):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=5)
        self.declared, self.send = declared, send
        self.sent = 0
        self.closed_at = None
        self.stop = threading.Event()

    def run(self):
        s = self.sock
        head = kw.int32(self.declared) + kw.request_header(kw.API_METADATA, 1, 1)[0:8]
        chunk = b'\0' * MB
        try:
            s.settimeout(2.0)   # a muted connection blocks: then stop sending
            s.sendall(head)
            while self.sent < self.send and not self.stop.is_set():
                s.sendall(chunk)
                self.sent += len(chunk)
        except (socket.timeout, OSError):
            pass
        # quiet: wait for the broker to close us
        s.settimeout(0.2)
        while not self.stop.is_set():
            try:
                if s.recv(4096) == b'':
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        self.closed_at = time.monotonic()

    def finish(self):
        self.stop.set()
        self.join(5)
        self.sock.close()


def test_hostile_partial_frames_are_bounded_by_the_pool(start_broker, monkeypatch):
    # under ASan (make asan), freed buffers would sit in its quarantine
    # (256 MB by default) and count in RSS: keep it small
    asan = os.environ.get('ASAN_OPTIONS', '')
    monkeypatch.setenv('ASAN_OPTIONS', (asan + ':' if asan else '') + 'quarantine_size_mb=8')
    pool = 150 * MB
    b = start_broker({'queued.max.request.bytes': pool,
                      'socket.request.read.timeout.ms': 1000})
    create_topic(b.bootstrap, 'mem', 1)
    rss0 = status_kb(b.pid, 'VmRSS')
    hogs = [Hog(b.port, 100 * MB, 60 * MB) for _ in range(20)]
    t0 = time.monotonic()
    for h in hogs:
        h.start()
    peak_seen = 0
    served = None
    try:
        while time.monotonic() - t0 < 90 and any(h.closed_at is None for h in hogs):
            peak_seen = max(peak_seen, status_kb(b.pid, 'VmRSS'))
            if served is None and time.monotonic() - t0 > 1.0:
                # a normal client is served while the hogs wait for memory
                open_hogs = sum(h.closed_at is None for h in hogs)
                res = kcat_list(b.bootstrap)
                assert res.returncode == 0 and res.brokers() == [(1, '127.0.0.1', b.port)], res
                dr = produce(producer(b.bootstrap), 'mem', [{'value': b'hello'}])
                assert dr[0].error is None
                msgs = consume_assigned(b.bootstrap, 'mem', [0])
                assert [m.value() for m in msgs] == [b'hello']
                served = (open_hogs, time.monotonic() - t0)
            time.sleep(0.1)
        peak = status_kb(b.pid, "VmHWM")
        print("MEASURE rss0=%d kB peak=%d kB served=%r elapsed=%.1f s" % (rss0, peak, served, time.monotonic() - t0))
        # memory: bounded by the pool (+ one oversized reservation), not by
        # what the clients declared (20 x 100 MB) or sent (20 x 60 MB)
        assert peak - rss0 < pool // 1024 + 32 * 1024, (rss0, peak, peak_seen)
        assert served is not None and served[0] >= 10, served
        # every stalled connection was closed by the read timeout
        still_open = [h for h in hogs if h.closed_at is None]
        assert not still_open, '%d hogs still open after %.0f s' % (
            len(still_open), time.monotonic() - t0)
    finally:
        for h in hogs:
            h.finish()
    log = b.log_text()
    assert log.count('socket.request.read.timeout.ms') >= 20, log[-3000:]
    # the pool is whole again: a large request goes through
    big = [{'value': b'x' * 900000}]
    dr = produce(producer(b.bootstrap, **{'message.max.bytes': 1000000}), 'mem', big)
    assert dr[0].error is None
    assert b.running()


def test_stalled_request_is_closed_after_the_read_timeout(start_broker):
    b = start_broker({'socket.request.read.timeout.ms': 1000})
    stalled = kw.connect(b.port)
    # 10 bytes of a 54-byte frame, then nothing
    stalled.sendall(kw.int32(50) + b'\x00\x03\x00\x01\x00\x00')
    idle = kw.connect(b.port)       # nothing at all: only connections.max.idle.ms applies
    t0 = time.monotonic()
    assert kw.wait_closed(stalled, timeout=5)
    assert 0.9 < time.monotonic() - t0 < 2.5
    assert not kw.wait_closed(idle, timeout=0.5)
    line = [l for l in b.log_text().splitlines() if 'socket.request.read.timeout.ms' in l]
    assert line and '(10 of 54 bytes' in line[0], line
    stalled.close()
    idle.close()
