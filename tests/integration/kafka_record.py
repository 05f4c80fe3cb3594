"""Recorded sessions of real clients, replayed to Kafka and Spool.

RecordingProxy is a threaded TCP relay in front of a broker (the Kafka
reference): every request frame a client sends through it is kept with its
connection, order and the broker's answer.  Answers that name brokers
(Metadata, FindCoordinator, DescribeCluster) are rewritten to point at the
proxy, so the client keeps talking through it.

SESSIONS are the client sessions recorded at test time, each a function
run(bootstrap, names) that drives one client against `bootstrap` with the
scenario's names ({'t': topic, 'g': group, ...}).  record(kafka_port, s)
creates the session's topics on Kafka, runs it through a proxy and returns
the frames; to_scenario(frames, s) turns them into a kafka_diff.Scenario
replayed to both brokers with names of its own: every string equal to a
recorded name becomes that name's template, recorded topic ids become the
replay's, topics inside the consumer protocol's subscription and assignment
bytes are renamed, and each broker's member ids are learnt from its own
answers (recorded member id -> this broker's).

Adding a client (the Java client is planned): write a function like
session_kcat below that runs the client against `bootstrap` (and only
there: every broker address it learns is the proxy's) using the names in
`names`, then add Session('java-...', run, topics={...}, groups=[...]) to
SESSIONS.  Java tools run through kafka_ref.tool(main_class, args...).
To keep a recording (small and deterministic ones only), write_recording()
stores what record() returns as JSON lines and read_recording() gives it
back for to_scenario().
"""

import base64
import itertools
import json
import os
import socket
import struct
import subprocess
import threading
import time

from kafka_diff import Runner, Scenario, Step, Target
from diff_corpus import TS
from kafka_schema import CodecError, schemas

S = schemas()

KCAT = os.environ.get('KCAT', '/usr/bin/kcat')


# ---------------------------------------------------------------- the proxy


class Frame:
    """One recorded request and the broker's answer (None: none came)."""

    def __init__(self, conn, seq, request, response=None, t=0.0):
        self.conn = conn
        self.seq = seq
        self.request = request        # payload: header + body, no size
        self.response = response      # payload as the broker sent it
        self.t = t

    @property
    def key_version(self):
        return S.request_key_version(self.request)

    def to_json(self):
        return json.dumps({'conn': self.conn, 'seq': self.seq, 't': self.t,
                           'request': base64.b64encode(self.request).decode(),
                           'response': None if self.response is None else
                           base64.b64encode(self.response).decode()})

    @classmethod
    def from_json(cls, line):
        d = json.loads(line)
        return cls(d['conn'], d['seq'], base64.b64decode(d['request']),
                   None if d['response'] is None else base64.b64decode(d['response']), d['t'])


def write_recording(path, frames, names, topic_ids):
    """A recording as JSON lines: the names and topic ids it used, then
    one frame a line (payloads in base64)."""
    with open(path, 'w') as f:
        f.write(json.dumps({'names': names, 'topic_ids': topic_ids}) + '\n')
        for fr in frames:
            f.write(fr.to_json() + '\n')


def read_recording(path):
    """(frames, names, topic ids) of a file write_recording made."""
    with open(path) as f:
        lines = [ln for ln in f if ln.strip()]
    meta = json.loads(lines[0])
    return [Frame.from_json(ln) for ln in lines[1:]], meta['names'], meta['topic_ids']


def _recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError()
        buf += chunk
    return bytes(buf)


def _read_frame(sock):
    (n,) = struct.unpack('>i', _recv_exact(sock, 4))
    return _recv_exact(sock, n)


class RecordingProxy:
    """A relay on a free loopback port in front of 127.0.0.1:upstream_port."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.frames = []
        self.lock = threading.Lock()
        self.seq = itertools.count()
        self.conns = itertools.count()
        self.socks = []
        self.stopped = False
        self.t0 = time.monotonic()
        self.errors = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def bootstrap(self):
        return '127.0.0.1:%d' % self.port

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(('127.0.0.1', self.upstream), timeout=10)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            cid = next(self.conns)
            inflight = {}
            with self.lock:
                self.socks += [c, u]
            threading.Thread(target=self._up, args=(cid, c, u, inflight), daemon=True).start()
            threading.Thread(target=self._down, args=(cid, c, u, inflight), daemon=True).start()

    def _up(self, cid, c, u, inflight):
        try:
            while True:
                req = _read_frame(c)
                with self.lock:
                    fr = Frame(cid, next(self.seq), req, t=time.monotonic() - self.t0)
                    self.frames.append(fr)
                if len(req) >= 8:
                    inflight[struct.unpack('>i', req[4:8])[0]] = fr
                u.sendall(struct.pack('>i', len(req)) + req)
        except (EOFError, OSError):
            pass
        finally:
            _shut(u)

    def _down(self, cid, c, u, inflight):
        try:
            while True:
                resp = _read_frame(u)
                corr = struct.unpack('>i', resp[:4])[0]
                fr = inflight.pop(corr, None)
                out = resp
                if fr is not None:
                    fr.response = resp
                    try:
                        out = self._rewrite(fr, resp)
                    except CodecError as e:
                        self.errors.append('%s: %s' % (S.api_name(fr.key_version[0]), e))
                c.sendall(struct.pack('>i', len(out)) + out)
        except (EOFError, OSError):
            pass
        finally:
            _shut(c)

    def _rewrite(self, fr, resp):
        """Answers naming brokers name the proxy instead."""
        key, v = fr.key_version
        if key not in (3, 10, 60):
            return resp
        hdr, body = S.decode_response(key, v, resp)
        for b in body.get('Brokers') or []:
            b['Port'] = self.port
        for b in body.get('Coordinators') or []:
            if b.get('NodeId', -1) >= 0:
                b['Port'] = self.port
        if key == 10 and body.get('NodeId', -1) >= 0 and 'Port' in body:
            body['Port'] = self.port
        return S.encode_response(key, v, body, hdr['CorrelationId'], hdr.get('_tagged'), frame=False)

    def stop(self):
        self.stopped = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            for s in self.socks:
                _shut(s)
        time.sleep(0.05)
        with self.lock:
            return sorted(self.frames, key=lambda f: f.seq)


def _shut(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


# ---------------------------------------------------------------- sessions


class Session:
    """A client session: run(bootstrap, names) drives the client.
    topics: {var: partitions} created before it runs; groups: [var]."""

    def __init__(self, name, run, topics=None, groups=(), short=False):
        self.name = name
        self.run = run
        self.topics = dict(topics or {})
        self.groups = list(groups)
        self.short = short


def _kcat(args, input=None, timeout=60):
    r = subprocess.run([KCAT] + args, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=timeout)
    return r


def session_kcat(b, n):
    """kcat: metadata, produce keyed records with headers, read them back,
    query offsets, and a group member that commits."""
    lines = ''.join('k%d:value-%d\n' % (i, i) for i in range(10))
    r = _kcat(['-P', '-b', b, '-t', n['t'], '-p', '0', '-K', ':', '-H', 'h=v', '-X', 'linger.ms=5'], lines)
    assert r.returncode == 0, r.stderr
    r = _kcat(['-P', '-b', b, '-t', n['t'], '-p', '1', '-z', 'gzip'], 'a\nb\nc\n')
    assert r.returncode == 0, r.stderr
    r = _kcat(['-C', '-b', b, '-t', n['t'], '-p', '0', '-o', 'beginning', '-e', '-X', 'fetch.wait.max.ms=100'])
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 10, (r.stdout, r.stderr)
    r = _kcat(['-Q', '-b', b, '-t', '%s:0:-1' % n['t']])
    assert r.returncode == 0, r.stderr
    r = _kcat(['-L', '-b', b, '-t', n['t']])
    assert r.returncode == 0, r.stderr
    r = _kcat(['-b', b, '-G', n['g'], n['t'], '-o', 'beginning', '-e', '-X', 'fetch.wait.max.ms=100',
               '-X', 'session.timeout.ms=6000', '-X', 'heartbeat.interval.ms=500',
               '-X', 'auto.commit.interval.ms=100'], timeout=60)
    assert r.returncode == 0, r.stderr


def session_confluent(b, n):
    """confluent-kafka (librdkafka): produce, a subscribed consumer in a
    group that commits, and the admin client."""
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
    from confluent_kafka.admin import (AdminClient, ConfigResource, NewPartitions, NewTopic)
    quiet = {'log_level': 3}        # no notices when the proxy closes the connections
    p = Producer(dict(quiet, **{'bootstrap.servers': b, 'acks': 'all', 'linger.ms': 5}))
    for i in range(20):
        p.produce(n['t'], key=b'k%d' % (i % 4), value=b'v%d' % i, partition=i % 2,
                  timestamp=TS + i, headers=[('h', b'%d' % i)])
    assert p.flush(30) == 0
    c = Consumer(dict(quiet, **{'bootstrap.servers': b, 'group.id': n['g'], 'auto.offset.reset': 'earliest',
                  'enable.auto.commit': False, 'fetch.wait.max.ms': 100, 'session.timeout.ms': 6000,
                  'heartbeat.interval.ms': 500, 'enable.partition.eof': True}))
    c.subscribe([n['t']])
    got, eof = 0, set()
    deadline = time.monotonic() + 30
    while len(eof) < 2 and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
            continue
        got += 1
    assert got == 20, got
    c.commit(asynchronous=False)
    c.committed([TopicPartition(n['t'], 0), TopicPartition(n['t'], 1)], timeout=10)
    c.close()
    a = AdminClient(dict(quiet, **{'bootstrap.servers': b}))
    fs = a.create_topics([NewTopic(n['a'], num_partitions=2, replication_factor=1,
                                   config={'retention.ms': '3600000'})], request_timeout=15)
    fs[n['a']].result(20)
    r = ConfigResource(ConfigResource.Type.TOPIC, n['a'])
    a.describe_configs([r])[r].result(20)
    fs = a.create_partitions([NewPartitions(n['a'], 3)], request_timeout=15)
    fs[n['a']].result(20)
    a.list_groups(timeout=10)
    fs = a.delete_topics([n['a']], request_timeout=15)
    fs[n['a']].result(20)


def session_confluent_idempotent(b, n):
    """confluent-kafka with enable.idempotence: InitProducerId, then
    batches with the producer id, epoch 0 and sequences, over two
    partitions, read back.  The replay sends each broker the producer id
    Kafka handed out when it was recorded (a partition with no state for
    it takes its sequences from 0, as any broker must since KIP-360); the
    id InitProducerId answers is compared as '<producer id>'."""
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
    quiet = {'log_level': 3}
    p = Producer(dict(quiet, **{'bootstrap.servers': b, 'enable.idempotence': True, 'linger.ms': 5}))
    for i in range(30):
        p.produce(n['t'], key=b'k%d' % i, value=b'v%d' % i, partition=i % 2, timestamp=TS + i)
        if i % 10 == 9:
            assert p.flush(30) == 0         # three requests per partition: sequences 0, 5, 10
    c = Consumer(dict(quiet, **{'bootstrap.servers': b, 'group.id': n['g'], 'enable.auto.commit': False,
                                'fetch.wait.max.ms': 100, 'enable.partition.eof': True}))
    c.assign([TopicPartition(n['t'], 0, 0), TopicPartition(n['t'], 1, 0)])
    got, eof = [], set()
    deadline = time.monotonic() + 30
    while len(eof) < 2 and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
            continue
        got.append((m.partition(), m.offset(), m.value()))
    c.close()
    assert sorted(got) == sorted((i % 2, i // 2, b'v%d' % i) for i in range(30)), got


def session_kafka_python(b, n):
    """kafka-python: produce, a group consumer that commits, the admin client."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic
    p = KafkaProducer(bootstrap_servers=b, acks='all', linger_ms=5, api_version_auto_timeout_ms=10000)
    for i in range(12):
        p.send(n['t'], key=b'k%d' % i, value=b'v%d' % i, partition=i % 2, timestamp_ms=TS + i)
    p.flush(30)
    p.close(10)
    c = KafkaConsumer(n['t'], bootstrap_servers=b, group_id=n['g'], auto_offset_reset='earliest',
                      enable_auto_commit=False, fetch_max_wait_ms=100, session_timeout_ms=6000,
                      heartbeat_interval_ms=500, consumer_timeout_ms=3000, api_version_auto_timeout_ms=10000)
    got = 0
    deadline = time.monotonic() + 30
    while got < 12 and time.monotonic() < deadline:
        for _tp, msgs in c.poll(timeout_ms=200).items():
            got += len(msgs)
    assert got == 12, got
    c.commit()
    c.close()
    a = KafkaAdminClient(bootstrap_servers=b, api_version_auto_timeout_ms=10000)
    a.create_topics([NewTopic(n['a'], 2, 1)], timeout_ms=15000)
    a.list_consumer_groups()
    a.describe_consumer_groups([n['g']])
    a.list_consumer_group_offsets(n['g'])
    a.delete_topics([n['a']], timeout_ms=15000)
    a.close()


SESSIONS = [
    Session('kcat', session_kcat, topics={'t': 2}, groups=['g'], short=True),
    Session('confluent-kafka', session_confluent, topics={'t': 2, 'a': 0}, groups=['g'], short=True),
    Session('kafka-python', session_kafka_python, topics={'t': 2, 'a': 0}, groups=['g'], short=True),
    Session('confluent-idempotent', session_confluent_idempotent, topics={'t': 2}, groups=['g'], short=True),
]


# ---------------------------------------------------------------- record and replay


def record(kafka_port, session):
    """Runs session through a proxy in front of Kafka; returns (frames, names,
    topic ids) of the recording.  The session's topics are created first
    (outside the proxy), with names of their own."""
    from kafka_diff import Names
    names = {v: Names.fresh('rec-%s-%s' % (session.name, v)) for v in list(session.topics) + session.groups}
    r = Runner(kafka_port, kafka_port)
    t = Target('kafka', kafka_port)
    try:
        r.create_topics(t, {names[v]: p for v, p in session.topics.items() if p})
    finally:
        t.close()
    proxy = RecordingProxy(kafka_port)
    try:
        session.run(proxy.bootstrap, names)
    finally:
        frames = proxy.stop()
    assert not proxy.errors, proxy.errors
    return frames, names, dict(t.topic_ids)


def _subst_bytes(kind, data, strings):
    """The consumer protocol's subscription/assignment bytes with topics renamed."""
    if not data or len(data) < 2:
        return data
    (v,) = struct.unpack('>h', data[:2])
    try:
        body = S.decode(kind, data[2:], v, allow_trailing=True)
    except CodecError:
        return data
    if kind == 'ConsumerProtocolSubscription':
        body['Topics'] = [strings.get(x, x) for x in body.get('Topics') or []]
        for tp in body.get('OwnedPartitions') or []:
            tp['Topic'] = strings.get(tp['Topic'], tp['Topic'])
    else:
        for tp in body.get('AssignedPartitions') or []:
            tp['Topic'] = strings.get(tp['Topic'], tp['Topic'])
    return struct.pack('>h', v) + S.encode(kind, body, v)


def _template(body, names, topic_ids):
    """A recorded request body as a template: recorded names -> '{var}'."""
    by_name = {n: '{%s}' % v for v, n in names.items()}
    by_id = {i: '{id:%s}' % v for v, n in names.items() for name, i in topic_ids.items() if name == n}

    def walk(x, key=None):
        if isinstance(x, dict):
            out = {}
            for k, v in x.items():
                if k == 'Metadata' and isinstance(v, bytes):
                    out[k] = _bytes_fn('ConsumerProtocolSubscription', v, names)
                elif k == 'Assignment' and isinstance(v, bytes):
                    out[k] = _bytes_fn('ConsumerProtocolAssignment', v, names)
                else:
                    out[k] = walk(v, k)
            return out
        if isinstance(x, list):
            return [walk(e, key) for e in x]
        if isinstance(x, str):
            if x in by_name:
                return by_name[x]
            if x in by_id:
                return by_id[x]
        return x
    return walk(body)


def _bytes_fn(kind, data, names):
    def fill(t):
        return _subst_bytes(kind, data, {n: t.vars[v] for v, n in names.items()})
    return fill


MAX_WAIT_MS = 100       # replayed fetches wait at most this long (both brokers alike)


def to_scenario(name, frames, names, topic_ids, spool_ranges, topics=None, groups=()):
    """The recorded frames as a Scenario for kafka_diff.Runner."""
    steps = []
    for fr in frames:
        key, v = fr.key_version
        try:
            hdr, body = S.decode_request(fr.request, allow_trailing=True)
        except CodecError:
            continue
        rec = None
        if fr.response is not None:
            try:
                rec = S.decode_response(key, v, fr.response, allow_trailing=True)[1]
            except CodecError:
                rec = None
        label = 'conn %d' % fr.conn
        if key in spool_ranges:
            lo, hi = spool_ranges[key]
            if v > hi:              # the client chose with Kafka's ranges: the highest both serve
                label += ', sent as v%d (recorded v%d)' % (hi, v)
                v = hi
        if key == 1 and body.get('MaxWaitMs', 0) > MAX_WAIT_MS:
            body['MaxWaitMs'] = MAX_WAIT_MS
        st = Step(key, v, _template(body, names, topic_ids), conn='c%d' % fr.conn, label=label,
                  client_id=hdr.get('ClientId'), no_response=fr.response is None and key == 0
                  and body.get('Acks') == 0)
        st.recorded = rec
        steps.append(st)
    return Scenario(name, steps, topics=topics, groups=groups)
