"""Fixtures that run a real spoold process for integration tests.

`broker`        -- one broker with default settings on a fresh data dir.
`kafka`         -- Apache Kafka 4.3.1 beside it, one per test session
                   (tests/kafka/kafka_ref.py).
`module_broker` -- one broker per test module (SPOOL_OVERRIDES in the module).
`java`          -- tests/java/java_side.py, built (Java clients, Streams, Connect).
`start_broker`  -- factory: start_broker({'node.id': 7}, data_dir=..., env=...,
                   preexec_fn=..., **kw)
                   (keyword names have '_' replaced by '.', e.g. node_id=7;
                   listeners='PLAINTEXT://127.0.0.1:<port>' to choose the
                   port, e.g. a stopped broker's, which clients still use;
                   env: extra environment variables for that broker only,
                   e.g. faults.fault_env(...) to preload the fault shim;
                   preexec_fn=f runs f in the child before spoold starts,
                   e.g. resource.setrlimit for a low descriptor limit).

Binary: $SPOOLD, default <repo>/build/spoold. The environment (including
ASAN_OPTIONS etc.) is passed through unchanged, plus `env`.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[2]
SPOOLD = os.environ.get('SPOOLD') or str(REPO / 'build' / 'spoold')
STARTUP_TIMEOUT = 10.0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def read_properties(path):
    props = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith('#') or line.startswith('!'):
            continue
        k, _, v = line.partition('=')
        props[k.strip()] = v.strip()
    return props


class Broker:
    def __init__(self, proc, port, data_dir, log_path, args, env=None):
        self.env = dict(env or {})  # the extra environment it was started with
        self.proc = proc
        self.port = port
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.args = args

    @property
    def pid(self):
        return self.proc.pid

    @property
    def bootstrap(self):
        return '127.0.0.1:%d' % self.port

    def log_text(self):
        try:
            return self.log_path.read_text(errors='replace')
        except FileNotFoundError:
            return ''

    def meta(self):
        return read_properties(self.data_dir / 'meta.properties')

    def cluster_id(self):
        return self.meta()['cluster.id']

    def running(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Send `sig` to the broker PID, wait up to `timeout`, return the exit code.

        Raises subprocess.TimeoutExpired if it does not exit in time (the
        process is left running; fixture teardown will kill it).
        """
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        return self.proc.wait(timeout=timeout)

    def kill(self):
        """Teardown: SIGTERM, then SIGKILL after 5 s; only if still running."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=5)
        except ProcessLookupError:
            return self.proc.wait(timeout=5)


def _wait_ready(proc, port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def _launch(tmp_path, seq, overrides, data_dir, env=None, preexec_fn=None):
    if data_dir is None:
        data_dir = tmp_path / ('data%d' % seq)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    user_listeners = 'listeners' in overrides
    last_err = None
    for attempt in range(3):  # retry only on port races
        opts = {}
        if user_listeners:  # the first listener's port, e.g. a stopped broker's
            port = int(str(overrides['listeners']).split(',')[0].rsplit(':', 1)[1])
        else:
            port = free_port()
            opts['listeners'] = 'PLAINTEXT://127.0.0.1:%d' % port
        opts['log.dirs'] = str(data_dir)
        opts.update(overrides)
        args = [SPOOLD]
        for k, v in opts.items():
            args += ['--override', '%s=%s' % (k, v)]
        log_path = tmp_path / ('spoold-%d-%d.log' % (seq, attempt))
        full_env = os.environ.copy()
        full_env.update(env or {})
        with open(log_path, 'wb') as errf:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                    stdout=errf, stderr=errf,
                                    env=full_env, preexec_fn=preexec_fn)
        b = Broker(proc, port, data_dir, log_path, args, env)
        if _wait_ready(proc, port, STARTUP_TIMEOUT):
            return b
        rc = b.kill()
        last_err = 'spoold did not become ready (rc=%r)\nargs: %s\nenv: %s\nlog:\n%s' % (
            rc, args, env or {}, b.log_text())
        if user_listeners or 'in use' not in b.log_text().lower():
            break
    raise RuntimeError(last_err)


def _norm_key(k):
    return k if '.' in k else k.replace('_', '.')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the item, so that fixtures can tell a
    failed test at teardown (start_broker prints its brokers' logs)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, 'rep_' + rep.when, rep)


@pytest.fixture
def start_broker(tmp_path, request):
    started = []

    def start(overrides=None, *, data_dir=None, env=None, preexec_fn=None, **kw):
        opts = {}
        for k, v in (overrides or {}).items():
            opts[k] = v
        for k, v in kw.items():
            opts[_norm_key(k)] = v
        b = _launch(tmp_path, len(started), opts, data_dir, env, preexec_fn)
        started.append(b)
        return b

    yield start
    rep = getattr(request.node, 'rep_call', None)
    for b in started:
        b.kill()
        if rep is not None and rep.failed:
            # what the broker said, for a failure that does not repeat
            tail = b.log_text().splitlines()[-60:]
            sys.stderr.write('---- broker log %s (last %d lines) ----\n%s\n' %
                             (b.log_path, len(tail), '\n'.join(tail)))


@pytest.fixture
def broker(start_broker):
    return start_broker()


# ---------------------------------------------------------------- Kafka 4.3

sys.path.insert(0, str(REPO / 'tests' / 'kafka'))


@pytest.fixture(scope='session')
def kafka(tmp_path_factory):
    """Apache Kafka 4.3.1 (tests/kafka/kafka_ref.py), started once per test
    session on free loopback ports, for tests that compare Spool with it.
    Tests must leave it as they found it: their own topic names, their own
    groups.  A failure to fetch or start it fails the test (never a skip)."""
    import kafka_ref
    k = kafka_ref.start(tmp_path_factory.mktemp('kafka'))
    yield k
    k.stop()


# ------------------------------------------------- the Java ecosystem

sys.path.insert(0, str(REPO / 'tests' / 'java'))


@pytest.fixture(scope='session')
def java():
    """tests/java/java_side.py, its jars (Kafka's Java clients, Streams and
    Connect 4.3.1) fetched and its scenario programs compiled once (the
    first run downloads about 110 MB into .cache/ and says so).  A failure
    to fetch or compile fails the test (never a skip)."""
    import java_side
    java_side.build()
    return java_side


@pytest.fixture(scope='module')
def module_broker(tmp_path_factory, request):
    """One Spool broker for a whole test module (a module whose tests share
    one run of a slow client, e.g. a JVM), with the overrides a module sets
    in SPOOL_OVERRIDES = {...}."""
    overrides = {k: str(v) for k, v in getattr(request.module, 'SPOOL_OVERRIDES', {}).items()}
    b = _launch(tmp_path_factory.mktemp('module-broker'), 0, overrides, None)
    yield b
    b.kill()


def pytest_configure(config):
    if not os.path.exists(SPOOLD):
        raise pytest.UsageError('spoold binary not found at %s (set SPOOLD)' % SPOOLD)
