#!/usr/bin/env python3
"""Old tools Kafka 4 no longer serves (KIP-896), Debian 12's own: their
set-up, how to run them, and a proxy that records what they ask
(test_0056_old_clients.py).

    tests/integration/old_clients.py setup

Set-up (`make old-clients`, which `make integration` depends on; the tests
call the same function, so running pytest alone works too): two small Go
programs (tests/go-debian) built offline in GOPATH mode (GO111MODULE=off)
against the Go sources Debian packages in /usr/share/gocode:

  sarama122  golang-github-shopify-sarama-dev 1.22.1
  kafkago02  golang-github-segmentio-kafka-go-dev 0.2.1

into .cache/go-debian/bin (git-ignored), with the Go on PATH (the
project's machines have Go 1.26; Debian's golang-go 1.19 where there is
none) and the build cache in .cache/go/build, which the newer Go clients
share (newer_clients.py).  A stamp (the SHA-256 of the programs, the Go
version and the two packages' versions) makes a later run do nothing.
No network: everything comes from Debian packages
(scripts/install-deps --test).

The others are Debian binaries run as they are: Burrow 1.2.1
(/usr/bin/Burrow), which keeps its own state in ZooKeeper, so the tests
start Debian's ZooKeeper 3.8 (zookeeper.jar, Debian's Java 17) beside it
on a free loopback port, and stop both by PID.

ApiRecorder is a TCP proxy in front of a broker started with
advertised.listeners naming the proxy, so every connection a client makes
(bootstrap, leaders, the coordinator) goes through it; it records each
request's (API key, version, client id) and changes no byte.
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import free_port
from newer_clients import _run

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = ROOT / '.cache'
GO_SRC = ROOT / 'tests' / 'go-debian'
GO_CACHE = CACHE / 'go-debian'
GO_BIN = GO_CACHE / 'bin'
GO_BUILD_CACHE = CACHE / 'go' / 'build'
GOCODE = Path('/usr/share/gocode')
PROGRAMS = ('sarama122', 'kafkago02')
GO_PACKAGES = ('golang-github-shopify-sarama-dev', 'golang-github-segmentio-kafka-go-dev')
BURROW = '/usr/bin/Burrow'
ZOOKEEPER_JAR = '/usr/share/java/zookeeper.jar'   # its manifest names its dependencies
SLF4J_SIMPLE = '/usr/share/java/slf4j-simple.jar'  # ZooKeeper's log to stderr (libslf4j-java)
RUN_TIMEOUT = 120

# Kafka's API keys, for messages and the report
API_NAMES = {
    0: 'Produce', 1: 'Fetch', 2: 'ListOffsets', 3: 'Metadata', 8: 'OffsetCommit',
    9: 'OffsetFetch', 10: 'FindCoordinator', 11: 'JoinGroup', 12: 'Heartbeat',
    13: 'LeaveGroup', 14: 'SyncGroup', 15: 'DescribeGroups', 16: 'ListGroups',
    17: 'SaslHandshake', 18: 'ApiVersions', 19: 'CreateTopics', 20: 'DeleteTopics',
    21: 'DeleteRecords', 22: 'InitProducerId', 29: 'DescribeAcls', 32: 'DescribeConfigs',
    33: 'AlterConfigs', 35: 'DescribeLogDirs', 37: 'CreatePartitions', 42: 'DeleteGroups',
    44: 'IncrementalAlterConfigs', 47: 'OffsetDelete', 60: 'DescribeCluster',
    75: 'DescribeTopicPartitions',
}


def api_name(key, version=None):
    name = API_NAMES.get(key, 'api%d' % key)
    return name if version is None else '%s v%d' % (name, version)


def log(*a):
    print('old-clients:', *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- set-up

def _package_versions(pkgs):
    out = []
    for p in pkgs:
        r = subprocess.run(['dpkg-query', '-W', '-f=${Version}', p], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, universal_newlines=True)
        if r.returncode != 0 or not r.stdout:
            raise RuntimeError('Debian package %s is not installed: run scripts/install-deps --test' % p)
        out.append('%s=%s' % (p, r.stdout))
    return out


def go_env():
    env = dict(os.environ)
    for k in ('GOFLAGS', 'GOWORK', 'GOMODCACHE'):
        env.pop(k, None)
    env.update(GO111MODULE='off', GOPATH=str(GOCODE), GOCACHE=str(GO_BUILD_CACHE),
               GOTOOLCHAIN='local', CGO_ENABLED='0')
    return env


def setup_go():
    """The directory of the built programs, built first if needed."""
    go = shutil.which('go') or '/usr/lib/go/bin/go'
    if not os.path.exists(go):
        raise RuntimeError('no Go found (PATH, /usr/lib/go): run scripts/install-deps --test')
    version = _run([go, 'version']).strip()
    files = sorted(p for p in GO_SRC.rglob('*') if p.is_file())
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(ROOT)).encode() + b'\0' + p.read_bytes() + b'\0')
    for e in [version] + _package_versions(GO_PACKAGES):
        h.update(e.encode() + b'\0')
    digest = h.hexdigest()
    stamp = GO_CACHE / 'bin.stamp'
    try:
        if stamp.read_text() == digest and all((GO_BIN / p).exists() for p in PROGRAMS):
            return GO_BIN
    except FileNotFoundError:
        pass
    t0 = time.time()
    log('go: building %s against /usr/share/gocode (GOPATH mode) with %s' % (', '.join(PROGRAMS), version))
    GO_BIN.mkdir(parents=True, exist_ok=True)
    _run([go, 'build', '-trimpath', '-o', str(GO_BIN) + '/'] + ['./' + p for p in PROGRAMS],
         cwd=str(GO_SRC), env=go_env())
    stamp.write_text(digest)
    log('go: done in %.0f s' % (time.time() - t0))
    return GO_BIN


def run_go(program, scenario, bootstrap, prefix):
    """Runs one scenario of one program; its JSON report."""
    cmd = [str(setup_go() / program), scenario, bootstrap, prefix]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise AssertionError('%s %s failed (rc %d):\nstderr: %s\nstdout: %s' % (
            program, scenario, r.returncode, r.stderr[-6000:], r.stdout[-2000:]))
    try:
        out = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError('%s %s printed no JSON:\n%s\n%s' % (program, scenario, r.stdout[-2000:],
                                                                 r.stderr[-4000:]))
    out['_stderr'] = r.stderr[-4000:]
    return out


# ------------------------------------------------------ recording proxy

class ApiRecorder:
    """A loopback TCP proxy that forwards every byte both ways and records
    each request's header: (api_key, api_version, client_id), in order.
    Start it, give `advertised` to the broker as advertised.listeners,
    then `upstream(port)` before the first client connects."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.upstream_port = None
        self.lock = threading.Lock()
        self.requests = []          # (api_key, api_version, client_id)
        self.conns = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def bootstrap(self):
        return '127.0.0.1:%d' % self.port

    @property
    def advertised(self):
        return 'PLAINTEXT://127.0.0.1:%d' % self.port

    def upstream(self, port):
        self.upstream_port = port

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(('127.0.0.1', self.upstream_port), timeout=5)
                u.settimeout(None)
            except (OSError, TypeError):
                c.close()
                continue
            with self.lock:
                if self.closed:
                    c.close()
                    u.close()
                    return
                self.conns += [c, u]
            threading.Thread(target=self._requests, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()

    @staticmethod
    def _shut(*socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _pipe(self, src, dst):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                dst.sendall(b)
        except OSError:
            pass
        self._shut(src, dst)

    def _requests(self, src, dst):
        buf = b''
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                dst.sendall(b)
                buf += b
                while len(buf) >= 4:
                    size = struct.unpack('>i', buf[:4])[0]
                    if len(buf) < 4 + size:
                        break
                    self._record(buf[4:4 + size])
                    buf = buf[4 + size:]
        except OSError:
            pass
        self._shut(src, dst)

    def _record(self, frame):
        if len(frame) < 10:
            return
        key, ver, _corr, n = struct.unpack('>hhih', frame[:10])
        cid = frame[10:10 + n].decode('utf-8', 'replace') if n >= 0 else None
        with self.lock:
            self.requests.append((key, ver, cid))

    def sent(self, client_prefix):
        """{(api_key, version)} of the requests whose client id starts with client_prefix."""
        with self.lock:
            return {(k, v) for k, v, c in self.requests if (c or '').startswith(client_prefix)}

    def by_client(self):
        """{client id: sorted [(api_key, version)]}"""
        out = {}
        with self.lock:
            for k, v, c in self.requests:
                out.setdefault(c, set()).add((k, v))
        return {c: sorted(s) for c, s in out.items()}

    def close(self):
        with self.lock:
            self.closed = True
            conns, self.conns = self.conns, []
        try:
            self.sock.close()
        except OSError:
            pass
        self._shut(*conns)
        for s in conns:
            s.close()


def describe(pairs):
    """'ListOffsets v0, Metadata v1, ...' for [(api_key, version)]."""
    return ', '.join(api_name(k, v) for k, v in sorted(pairs))


# ------------------------------------------------------------ ZooKeeper

class Process:
    """A child process stopped by its PID (SIGTERM, then SIGKILL after
    `grace` seconds)."""

    def __init__(self, name, proc, log_path, grace=10):
        self.name, self.proc, self.log_path = name, proc, Path(log_path)
        self.grace = grace

    def log_text(self):
        try:
            return self.log_path.read_text(errors='replace')
        except FileNotFoundError:
            return ''

    def running(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is not None:
            return self.proc.returncode
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            return self.proc.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=10)
        except ProcessLookupError:
            return self.proc.wait(timeout=10)


def _wait_port(proc, port, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError('%s exited (rc %s):\n%s' % (what, proc.proc.returncode, proc.log_text()[-3000:]))
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError('%s not listening on %d after %.0f s:\n%s' % (what, port, timeout,
                                                                       proc.log_text()[-3000:]))


def start_zookeeper(workdir):
    """Debian's ZooKeeper 3.8, standalone, on a free loopback port (its
    AdminServer off: it would take port 8080)."""
    workdir = Path(workdir)
    (workdir / 'data').mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = workdir / 'zoo.cfg'
    cfg.write_text('tickTime=500\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n'
                   'admin.enableServer=false\nmaxClientCnxns=0\n' % (workdir / 'data', port))
    log_path = workdir / 'zookeeper.log'
    with open(log_path, 'wb') as f:
        cp = ZOOKEEPER_JAR + (':' + SLF4J_SIMPLE if os.path.exists(SLF4J_SIMPLE) else '')
        proc = subprocess.Popen(['java', '-Xmx128m', '-cp', cp,
                                 'org.apache.zookeeper.server.ZooKeeperServerMain', str(cfg)],
                                stdin=subprocess.DEVNULL, stdout=f, stderr=f, cwd=str(workdir))
    zk = Process('zookeeper', proc, log_path)
    zk.port = port
    try:
        _wait_zookeeper(zk, 30)
    except BaseException:
        zk.stop()
        raise
    return zk


def _wait_zookeeper(zk, timeout):
    """Until ZooKeeper serves: its port opens before its database is
    loaded, and a session asked for then is closed ("ZooKeeperServer not
    running"), which Burrow 1.2 takes as fatal.  The four-letter command
    srvr (allowed by default) answers "Zookeeper version: ..." only once
    it serves."""
    deadline = time.monotonic() + timeout
    answer = b''
    while time.monotonic() < deadline:
        if zk.proc.poll() is not None:
            raise RuntimeError('ZooKeeper exited (rc %s):\n%s' % (zk.proc.returncode, zk.log_text()[-3000:]))
        try:
            with socket.create_connection(('127.0.0.1', zk.port), timeout=2) as s:
                s.sendall(b'srvr')
                answer = b''
                while True:
                    b = s.recv(4096)
                    if not b:
                        break
                    answer += b
            if answer.startswith(b'Zookeeper version:'):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError('ZooKeeper not serving on %d after %.0f s (srvr: %r):\n%s' % (
        zk.port, timeout, answer[:200], zk.log_text()[-3000:]))


# --------------------------------------------------------------- Burrow

BURROW_CLIENT_ID = 'spool-burrow'


def start_burrow(workdir, bootstrap, zk_port, kafka_version='2.0.0'):
    """Debian's Burrow 1.2.1 watching the broker at `bootstrap` as cluster
    "spool" (its config in workdir/burrow.toml, its HTTP API on a free
    loopback port, its state under /burrow in ZooKeeper); it refreshes
    topics and end offsets every second and reads __consumer_offsets from
    its start."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    http_port = free_port()
    (workdir / 'burrow.toml').write_text('''\
[general]
pidfile="{dir}/burrow.pid"

[logging]
filename="{dir}/burrow.log"
level="debug"

[zookeeper]
servers=["127.0.0.1:{zk}"]
timeout=6
root-path="/burrow"

[client-profile.spool]
client-id="{cid}"
kafka-version="{kv}"

[cluster.spool]
class-name="kafka"
servers=["{bootstrap}"]
client-profile="spool"
topic-refresh=1
offset-refresh=1

[consumer.spool]
class-name="kafka"
cluster="spool"
servers=["{bootstrap}"]
client-profile="spool"
offsets-topic="__consumer_offsets"
start-latest=false

[httpserver.default]
address="127.0.0.1:{http}"

[storage.default]
class-name="inmemory"
workers=2
intervals=10
expire-group=604800
min-distance=1
'''.format(dir=workdir, zk=zk_port, cid=BURROW_CLIENT_ID, kv=kafka_version, bootstrap=bootstrap,
           http=http_port))
    log_path = workdir / 'burrow.out'
    with open(log_path, 'wb') as f:
        proc = subprocess.Popen([BURROW, '-config-dir', str(workdir)], stdin=subprocess.DEVNULL,
                                stdout=f, stderr=f, cwd=str(workdir))
    # Burrow 1.2 stops every module on SIGTERM, then never returns from
    # stopping its ZooKeeper coordinator (its log ends with "stopping ...
    # zookeeper"): 2 s, then SIGKILL; its state is in a throwaway ZooKeeper
    b = Process('burrow', proc, log_path, grace=2)
    b.http_port = http_port
    b.workdir = workdir

    def log_text():
        text = ''
        for p in (log_path, workdir / 'burrow.log'):
            try:
                text += p.read_text(errors='replace')
            except FileNotFoundError:
                pass
        return text
    b.log_text = log_text
    try:
        _wait_port(b, http_port, 30, 'Burrow')
    except BaseException:
        b.stop()
        raise
    return b


def burrow_get(burrow, path):
    """GET from Burrow's HTTP API: (status, JSON body or None)."""
    url = 'http://127.0.0.1:%d%s' % (burrow.http_port, path)
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read().decode())
        except ValueError:
            return e.code, None


def _main(argv):
    if argv == ['setup']:
        setup_go()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(_main(sys.argv[1:]))
