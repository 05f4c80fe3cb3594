"""A loopback TCP proxy for tests that cuts connections on purpose.

    proxy = ChaosProxy(seed=7)                  # listens on 127.0.0.1:<free port>
    b = start_broker({'advertised.listeners': proxy.advertised})
    proxy.set_target(b.port)                    # before the first client connects
    proxy.chaos(50, 250)                        # from now on: cut a connection
    ...                                         # every 50-250 ms
    proxy.calm()
    assert proxy.stats()['drops'] >= 3

Kafka clients learn the brokers' addresses from Metadata, so the broker
behind the proxy must advertise the proxy's address (advertised.listeners
above; tests/kafka/kafka_ref.start(dir, overrides=...) for Kafka), else
every connection after the bootstrap one goes around it.

One thread (selectors) moves the bytes of every connection both ways,
with back-pressure (it stops reading a side while the other side's
buffer is full).  It counts the Kafka frames (size-prefixed) each way,
as they are written to their destination, and the API keys of the
requests, so that:

- in chaos mode, every `min_ms`..`max_ms` (a seeded random.Random: the
  same seed gives the same intervals and choices, though not the same
  moments of the client's traffic) it picks one live connection at
  random, among those that sent a request whose API key is in `only_keys`
  when given (e.g. {0}: connections that carried a Produce request, so
  that consumers and admin clients are left alone), and closes both of
  its sockets, dropping whatever it still held for them;
- each drop is counted, and with it the requests the broker was sent on
  that connection whose answer the client never got (`requests_cut`):
  those are the ones a client retries, and the reason a drop tests
  anything.

Standard library only.  The proxy never looks inside a frame beyond its
size and API key and never changes a byte.
"""

import random
import selectors
import socket
import struct
import threading
import time

BUF_MAX = 1 << 20          # bytes held for one direction before reading pauses


class _Frames:
    """Counts size-prefixed frames in a byte stream fed in pieces, and the
    API key (first int16 of the payload) of each one."""

    __slots__ = ('count', 'keys', '_hdr', '_left', '_want_key', '_key_hdr')

    def __init__(self):
        self.count = 0
        self.keys = set()
        self._hdr = b''          # a partial size prefix
        self._left = 0           # payload bytes of the current frame still to come
        self._want_key = False
        self._key_hdr = b''

    def feed(self, data):
        pos, n = 0, len(data)
        while pos < n:
            if self._left == 0 and not self._want_key:
                take = min(4 - len(self._hdr), n - pos)
                self._hdr += data[pos:pos + take]
                pos += take
                if len(self._hdr) == 4:
                    self._left = struct.unpack('>i', self._hdr)[0]
                    self._hdr = b''
                    self._want_key = True
                    self._key_hdr = b''
                    if self._left <= 0:          # not Kafka: count it and go on
                        self._left = 0
                        self._want_key = False
                        self.count += 1
                continue
            if self._want_key:
                take = min(2 - len(self._key_hdr), self._left, n - pos)
                self._key_hdr += data[pos:pos + take]
                pos += take
                self._left -= take
                if len(self._key_hdr) == 2 or self._left == 0:
                    if len(self._key_hdr) == 2:
                        self.keys.add(struct.unpack('>h', self._key_hdr)[0])
                    self._want_key = False
                if self._left == 0 and not self._want_key:
                    self.count += 1
                continue
            take = min(self._left, n - pos)
            pos += take
            self._left -= take
            if self._left == 0:
                self.count += 1


class _Conn:
    __slots__ = ('id', 'client', 'upstream', 'to_up', 'to_client', 'up_frames', 'down_frames',
                 'closed', 'opened', 'reg')

    def __init__(self, cid, client, upstream):
        self.id = cid
        self.client = client
        self.upstream = upstream
        self.to_up = bytearray()       # read from the client, not yet written upstream
        self.to_client = bytearray()   # read from upstream, not yet written to the client
        self.up_frames = _Frames()     # requests written to the broker
        self.down_frames = _Frames()   # responses written to the client
        self.closed = False
        self.opened = time.monotonic()
        self.reg = {}                  # socket -> the selector events it is registered for


class ChaosProxy:
    """A proxy on 127.0.0.1:<free port> in front of a target host:port
    (given now or later with set_target).  Thread-safe verbs: set_target,
    chaos, calm, drop_one, drop_all, stats, reset_stats, close."""

    def __init__(self, target_port=None, target_host='127.0.0.1', seed=0):
        self.target = None if target_port is None else (target_host, target_port)
        self.rng = random.Random(seed)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(128)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ, None)
        self.lock = threading.Lock()
        self.conns = {}
        self._ids = 0
        self._chaos = None             # (min_ms, max_ms, only_keys) while on
        self._next_drop = None
        self._stop = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, 'wake')
        self.reset_stats()
        self.thread = threading.Thread(target=self._loop, name='chaos-proxy-%d' % self.port,
                                       daemon=True)
        self.thread.start()

    # ------------------------------------------------------------ verbs

    @property
    def bootstrap(self):
        return '127.0.0.1:%d' % self.port

    @property
    def advertised(self):
        return 'PLAINTEXT://127.0.0.1:%d' % self.port

    def set_target(self, port, host='127.0.0.1'):
        with self.lock:
            self.target = (host, port)

    def chaos(self, min_ms, max_ms, only_keys=None):
        """From now on, drop one live connection (among those that sent a
        request with an API key in only_keys, if given) every min_ms..max_ms."""
        with self.lock:
            self._chaos = (min_ms, max_ms, None if only_keys is None else set(only_keys))
            self._next_drop = time.monotonic() + self.rng.uniform(min_ms, max_ms) / 1000.0
        self._wake()

    def calm(self):
        """No more drops (connections stay as they are)."""
        with self.lock:
            self._chaos = None
            self._next_drop = None

    def drop_one(self, only_keys=None):
        """Drops one live connection now (chosen as chaos would); returns
        its id or None when there is none."""
        with self.lock:
            return self._drop_random(only_keys)

    def drop_all(self):
        with self.lock:
            for c in list(self.conns.values()):
                self._drop(c)

    def stats(self):
        """{'accepted', 'drops', 'drops_with_requests_cut', 'requests_cut',
        'live', 'bytes_up', 'bytes_down'} since the last reset_stats()."""
        with self.lock:
            s = dict(self._stats)
            s['live'] = len(self.conns)
            return s

    def reset_stats(self):
        with self.lock:
            self._stats = {'accepted': 0, 'drops': 0, 'drops_with_requests_cut': 0,
                           'requests_cut': 0, 'bytes_up': 0, 'bytes_down': 0}

    def close(self):
        """Stops the thread and closes every socket."""
        with self.lock:
            self._stop = True
        self._wake()
        self.thread.join(10)
        with self.lock:
            for c in list(self.conns.values()):
                self._drop(c, count=False)
        for s in (self.lsock, self._wake_r, self._wake_w):
            try:
                s.close()
            except OSError:
                pass
        self.sel.close()

    # ------------------------------------------------------------ internals (lock held)

    def _wake(self):
        try:
            self._wake_w.send(b'x')
        except OSError:
            pass

    def _drop_random(self, only_keys):
        live = [c for _, c in sorted(self.conns.items())
                if only_keys is None or c.up_frames.keys & only_keys]
        if not live:
            return None
        c = self.rng.choice(live)
        self._drop(c)
        return c.id

    def _drop(self, c, count=True):
        if c.closed:
            return
        c.closed = True
        if count:
            cut = c.up_frames.count - c.down_frames.count
            self._stats['drops'] += 1
            if cut > 0:
                self._stats['drops_with_requests_cut'] += 1
                self._stats['requests_cut'] += cut
        for s in (c.client, c.upstream):
            if c.reg.get(s):
                self.sel.unregister(s)
                c.reg[s] = 0
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.conns.pop(c.id, None)

    def _interest(self, c):
        """(Re-)registers both sockets for what they can do now: read
        while the other direction's buffer has room, write while there
        is something for them."""
        for sk, out, inbuf in ((c.client, c.to_client, c.to_up), (c.upstream, c.to_up, c.to_client)):
            ev = 0
            if len(inbuf) < BUF_MAX:
                ev |= selectors.EVENT_READ
            if out:
                ev |= selectors.EVENT_WRITE
            cur = c.reg.get(sk, 0)
            if ev == cur:
                continue
            if cur == 0:
                self.sel.register(sk, ev, c)
            elif ev == 0:
                self.sel.unregister(sk)
            else:
                self.sel.modify(sk, ev, c)
            c.reg[sk] = ev

    def _accept(self):
        while True:
            try:
                cs, _ = self.lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if self.target is None:
                cs.close()
                continue
            try:
                us = socket.create_connection(self.target, timeout=5)
            except OSError:
                cs.close()
                continue
            for s in (cs, us):
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._ids += 1
            c = _Conn(self._ids, cs, us)
            self.conns[c.id] = c
            self._stats['accepted'] += 1
            self._interest(c)

    def _read(self, c, s):
        buf = c.to_up if s is c.client else c.to_client
        try:
            data = s.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b''
        if not data:
            # one side closed: pass on what it still had to say, then close
            # both (Kafka connections are all or nothing)
            other = c.upstream if s is c.client else c.client
            pending = c.to_client if s is c.upstream else c.to_up
            if pending:
                try:
                    other.setblocking(True)
                    other.settimeout(1.0)
                    other.sendall(pending)
                except OSError:
                    pass
            self._drop(c, count=False)
            return
        buf += data
        self._flush(c, c.upstream if s is c.client else c.client)

    def _flush(self, c, dst):
        """Writes what is pending for dst; counts the frames written."""
        if c.closed:
            return
        up = dst is c.upstream
        buf = c.to_up if up else c.to_client
        while buf:
            try:
                n = dst.send(buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop(c, count=False)
                return
            if n <= 0:
                break
            (c.up_frames if up else c.down_frames).feed(bytes(buf[:n]))
            self._stats['bytes_up' if up else 'bytes_down'] += n
            del buf[:n]
        self._interest(c)

    def _loop(self):
        while True:
            with self.lock:
                if self._stop:
                    return
                nd = self._next_drop
            timeout = 0.2 if nd is None else max(0.0, min(0.2, nd - time.monotonic()))
            events = self.sel.select(timeout)
            with self.lock:
                if self._stop:
                    return
                for key, mask in events:
                    if key.data is None:
                        self._accept()
                        continue
                    if key.data == 'wake':
                        try:
                            self._wake_r.recv(4096)
                        except OSError:
                            pass
                        continue
                    c = key.data
                    if c.closed:
                        continue
                    if mask & selectors.EVENT_WRITE:
                        self._flush(c, key.fileobj)
                    if not c.closed and mask & selectors.EVENT_READ:
                        self._read(c, key.fileobj)
                if self._chaos is not None and self._next_drop is not None \
                        and time.monotonic() >= self._next_drop:
                    lo, hi, keys = self._chaos
                    self._drop_random(keys)
                    self._next_drop = time.monotonic() + self.rng.uniform(lo, hi) / 1000.0
