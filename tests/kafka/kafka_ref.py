#!/usr/bin/env python3
"""Apache Kafka 4.3 beside Spool: the reference the tests compare Spool with
and the benchmarks measure it against.

    tests/kafka/kafka_ref.py fetch                      fetch the jars (once)
    tests/kafka/kafka_ref.py start DIR [key=value ...]  start, print "pid port"
    tests/kafka/kafka_ref.py stop DIR                   stop the one in DIR

fetch: the broker and tools of Kafka 4.3.1 from Maven Central, pinned in
tests/kafka/pom.xml, with `mvn -C dependency:copy-dependencies` (Maven
checks every file's checksum against Central's; -C makes a mismatch fatal)
into .cache/kafka-4.3.1/libs (git-ignored; nothing of Kafka is committed).
A stamp lists each jar with its SHA-256; a later fetch re-checks them.

start: formats KRaft storage in DIR (a random cluster id, `--standalone`)
and starts a single-node combined broker/controller on two free loopback
ports (PLAINTEXT and CONTROLLER), settings for one node (replication
factors 1) and the caller's key=value overrides; waits until it answers
ApiVersions.  stop: SIGTERM to the PID it wrote, SIGKILL after 20 s.
From Python, restart(k, kill=False) stops a started one (SIGTERM and its
clean shutdown, or SIGKILL) and starts it again on the same data, config
and ports, without formatting.

Standard library only (Python 3.9+); needs java (17+) and mvn on PATH.
"""
import hashlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

VERSION = '4.3.1'
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = Path(os.environ.get('SPOOL_KAFKA_CACHE') or ROOT / '.cache' / ('kafka-%s' % VERSION))
LIBS = CACHE / 'libs'
STAMP = CACHE / 'libs.sha256'
JAVA = os.environ.get('JAVA', 'java')


def log(*a):
    print('kafka-ref:', *a, file=sys.stderr, flush=True)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _stamp_ok():
    if not STAMP.exists():
        return False
    lines = STAMP.read_text().split('\n')
    if not lines or lines[0] != 'pom ' + _sha256(HERE / 'pom.xml'):
        return False
    for line in lines[1:]:
        if not line:
            continue
        digest, name = line.split('  ', 1)
        p = LIBS / name
        if not p.exists() or _sha256(p) != digest:
            return False
    return True


def fetch():
    """The libs directory, fetched first if needed.  Raises on failure."""
    if _stamp_ok():
        return LIBS
    t0 = time.time()
    log('fetching Apache Kafka %s from Maven Central into %s (once; about 55 MB)' % (VERSION, LIBS))
    if LIBS.exists():
        for p in LIBS.iterdir():
            p.unlink()
    LIBS.mkdir(parents=True, exist_ok=True)
    cmd = ['mvn', '-q', '-B', '-C', '-f', str(HERE / 'pom.xml'), 'dependency:copy-dependencies',
           '-DoutputDirectory=%s' % LIBS, '-Dmdep.useRepositoryLayout=false']
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if r.returncode != 0:
        raise RuntimeError('mvn failed (%d):\n%s' % (r.returncode, r.stdout[-4000:]))
    jars = sorted(p.name for p in LIBS.iterdir() if p.suffix == '.jar')
    if not any(j.startswith('kafka_2.13-%s' % VERSION) for j in jars):
        raise RuntimeError('the fetch did not bring kafka_2.13-%s.jar: %s' % (VERSION, jars))
    lines = ['pom ' + _sha256(HERE / 'pom.xml')] + ['%s  %s' % (_sha256(LIBS / j), j) for j in jars]
    STAMP.write_text('\n'.join(lines) + '\n')
    size = sum((LIBS / j).stat().st_size for j in jars)
    log('fetched %d jars, %.1f MB, in %.0f s' % (len(jars), size / 1e6, time.time() - t0))
    return LIBS


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _classpath():
    return str(fetch() / '*')


def _api_versions_ok(port, timeout=1.0):
    """True once the broker answers an ApiVersions v0 request."""
    req = struct.pack('>hhih', 18, 0, 1, 4) + b'test'
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=timeout) as s:
            s.sendall(struct.pack('>i', len(req)) + req)
            hdr = b''
            while len(hdr) < 4:
                chunk = s.recv(4 - len(hdr))
                if not chunk:
                    return False
                hdr += chunk
            n = struct.unpack('>i', hdr)[0]
            body = b''
            while len(body) < n:
                chunk = s.recv(n - len(body))
                if not chunk:
                    return False
                body += chunk
            return len(body) >= 6 and struct.unpack('>h', body[4:6])[0] == 0
    except OSError:
        return False


class Kafka:
    """One running Kafka broker (combined broker/controller) in data_dir."""

    def __init__(self, data_dir, proc, port, controller_port, log_path):
        self.data_dir = Path(data_dir)
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.controller_port = controller_port
        self.log_path = log_path

    @property
    def bootstrap(self):
        return '127.0.0.1:%d' % self.port

    def log_text(self):
        try:
            return Path(self.log_path).read_text(errors='replace')
        except FileNotFoundError:
            return ''

    def running(self):
        return self.proc.poll() is None

    def stop(self, timeout=20):
        """SIGTERM to its PID, SIGKILL after timeout; returns the exit code."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        try:
            os.kill(self.pid, signal.SIGTERM)
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            return self.proc.wait(timeout=10)
        except ProcessLookupError:
            return self.proc.wait(timeout=10)


def _jvm(heap, cp):
    return [JAVA, '-Xms128m', '-Xmx%s' % heap, '-XX:+UseG1GC', '-Djava.awt.headless=true',
            '-Dlog4j2.configurationFile=%s' % (HERE / 'log4j2.properties'), '-cp', cp]


def start(data_dir, overrides=None, heap='512m', ready_timeout=60):
    """Formats data_dir (fresh) and starts Kafka on free loopback ports."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    port, cport = free_port(), free_port()
    props = {
        'process.roles': 'broker,controller',
        'node.id': '1',
        'controller.quorum.bootstrap.servers': '127.0.0.1:%d' % cport,
        'listeners': 'PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d' % (port, cport),
        'advertised.listeners': 'PLAINTEXT://127.0.0.1:%d' % port,
        'controller.listener.names': 'CONTROLLER',
        'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
        'inter.broker.listener.name': 'PLAINTEXT',
        'log.dirs': str(data_dir / 'logs'),
        'num.partitions': '1',
        'offsets.topic.replication.factor': '1',
        'offsets.topic.num.partitions': '50',
        'transaction.state.log.replication.factor': '1',
        'transaction.state.log.min.isr': '1',
        'share.coordinator.state.topic.replication.factor': '1',
        'share.coordinator.state.topic.min.isr': '1',
        'group.initial.rebalance.delay.ms': '0',
    }
    props.update({k: str(v) for k, v in (overrides or {}).items()})
    conf = data_dir / 'server.properties'
    conf.write_text(''.join('%s=%s\n' % kv for kv in props.items()))
    jvm = _jvm(heap, _classpath())
    out = subprocess.run(jvm + ['kafka.tools.StorageTool', 'random-uuid'], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, universal_newlines=True, check=True).stdout
    # the tool's log4j prints an INFO line (an MBean registered) on stdout
    # before the id: the id is the last line, 22 characters of URL-safe base64
    ids = [ln.strip() for ln in out.splitlines() if re.fullmatch(r'[A-Za-z0-9_-]{22}', ln.strip())]
    if not ids:
        raise RuntimeError('kafka-storage random-uuid printed no cluster id:\n%s' % out[-2000:])
    cluster = ids[-1]
    fmt = subprocess.run(jvm + ['kafka.tools.StorageTool', 'format', '-t', cluster, '-c', str(conf),
                                '--standalone'],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if fmt.returncode != 0:
        raise RuntimeError('kafka-storage format failed:\n%s' % fmt.stdout[-3000:])
    return _launch(data_dir, port, cport, heap, ready_timeout)


def _launch(data_dir, port, cport, heap, ready_timeout):
    """Starts the JVM on data_dir/server.properties (formatted) and waits
    until it answers ApiVersions on port."""
    jvm = _jvm(heap, _classpath())
    log_path = data_dir / 'kafka.log'
    with open(log_path, 'ab') as out:
        proc = subprocess.Popen(jvm + ['kafka.Kafka', str(data_dir / 'server.properties')],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    (data_dir / 'kafka.pid').write_text('%d %d\n' % (proc.pid, port))
    k = Kafka(data_dir, proc, port, cport, log_path)
    k.heap = heap
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if _api_versions_ok(port):
            return k
        time.sleep(0.2)
    k.stop()
    raise RuntimeError('Kafka did not start within %d s:\n%s' % (ready_timeout, k.log_text()[-4000:]))


def restart(k, kill=False, ready_timeout=60):
    """Stops Kafka k (SIGTERM and a wait for its clean shutdown; SIGKILL at
    once with kill=True) and starts it again on the same data, config and
    ports, without formatting.  Returns the new Kafka."""
    if kill:
        if k.proc.poll() is None:
            os.kill(k.pid, signal.SIGKILL)
        k.proc.wait(timeout=20)
    else:
        rc = k.stop(timeout=60)
        if rc not in (0, 143):
            log('kafka exited with %s on SIGTERM' % rc)
    return _launch(k.data_dir, k.port, k.controller_port, k.heap, ready_timeout)


def tool(main_class, *args, timeout=120, **kw):
    """Runs one of Kafka's command-line tools (e.g.
    org.apache.kafka.tools.consumer.ConsoleConsumer) with the fetched
    classpath; returns the CompletedProcess (stdout, stderr as text)."""
    cmd = [JAVA, '-Xmx256m', '-Dlog4j2.configurationFile=%s' % (HERE / 'log4j2-tools.properties'),
           '-cp', _classpath(), main_class] + list(args)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=timeout, **kw)


def _main(argv):
    if len(argv) >= 1 and argv[0] == 'fetch':
        print(fetch())
        return 0
    if len(argv) >= 2 and argv[0] == 'start':
        over = dict(a.split('=', 1) for a in argv[2:])
        k = start(argv[1], over)
        print(k.pid, k.port)
        return 0
    if len(argv) == 2 and argv[0] == 'stop':
        pid = int((Path(argv[1]) / 'kafka.pid').read_text().split()[0])
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return 0
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return 0
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(_main(sys.argv[1:]))
