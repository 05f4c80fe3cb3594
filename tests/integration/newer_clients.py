#!/usr/bin/env python3
"""Newer clients beside Debian's: their set-up, how to run them, and what
their reports must say (test_0055_newer_clients.py).

    tests/integration/newer_clients.py setup [python] [go] [node]

Set-up (`make clients`, which `make integration` depends on; the tests
call the same functions, so running pytest alone works too).  Each part
is installed once into .cache/ (git-ignored) and recorded in a stamp: the
SHA-256 of its inputs.  A later run whose stamp matches does nothing; a
changed input (a new pin, an edited program) installs or builds again.

  python  a venv in .cache/py-clients (Debian's python3 -m venv) with
          tests/python/requirements.txt: confluent-kafka (its wheel
          carries librdkafka), kafka-python, aiokafka and their codecs,
          pinned with hashes (pip --require-hashes --only-binary :all:)
  go      tests/go (go.mod + go.sum): franz-go + kadm, Sarama, kafka-go
          from the Go module proxy into .cache/go/mod (go.sum checks
          every module), built with the build cache in .cache/go/build
          into .cache/go/bin/{franz,sarama,kafkago}; needs Go >= 1.26
  node    tests/node (package.json + package-lock.json): kafkajs and
          kafkajs-snappy by `npm ci` into .cache/node (npm checks each
          package's integrity from the lock file; its cache in .cache/npm)

Every program takes SCENARIO BOOTSTRAP PREFIX and prints one JSON report;
the same scenarios, with the same records, for every client:

  roundtrip  into PREFIX-rt (3 partitions, made by the test): for each
             codec the client has (none, gzip, snappy, lz4, zstd), N=40
             records to partition (codec index % 3), one producer per
             codec; keys (the last one null), values (the one before
             null), headers (a repeated key, an empty value), explicit
             CreateTime timestamps.  Reports each record's [partition,
             offset] as produced, then every record read back from
             offset 0 of each partition without a group (kafkajs, which
             has no assign(), with a group of its own).
  group      PREFIX-grp (4 partitions) and group PREFIX-g: members a and
             b join; once each holds a non-empty share and together all
             four, 10 records per partition are produced; they read them,
             commit, report the committed offsets and leave.  5 more per
             partition, then member c joins: it must start exactly at the
             committed offsets, read the 5 and commit (15).
  admin      create PREFIX-adm (2 partitions, retention.ms=3600000), create
             it again (TOPIC_ALREADY_EXISTS, 36), list and describe it,
             describe its configs, alter retention.ms to 7200000
             (incremental where the client has it), add partitions to 4,
             list and describe group PREFIX-adm-g while one member holds
             all four partitions, delete the topic.

Idempotence: every producer keeps its client's default, on for franz-go
and kafka-python 3, off for the others.  kafkajs-idempotent is kafkajs
with `idempotent: true` (not its default), the same scenarios otherwise.
The round trip checks on disk that the batches of an idempotent producer
carry a producer id, epoch 0 and sequences following on from 0 in each
partition, and that those of the others carry none.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = ROOT / '.cache'
PY_REQ = ROOT / 'tests' / 'python' / 'requirements.txt'
PY_SCENARIOS = ROOT / 'tests' / 'python' / 'scenarios.py'
PY_ENV = CACHE / 'py-clients'
GO_SRC = ROOT / 'tests' / 'go'
GO_CACHE = CACHE / 'go'
# SPOOL_GO_BIN: build the programs elsewhere (another worktree's programs
# stay as they are); the module and build caches are shared either way
GO_BIN = Path(os.environ.get('SPOOL_GO_BIN') or GO_CACHE / 'bin')
GO_PROGRAMS = ('franz', 'sarama', 'kafkago')
NODE_SRC = ROOT / 'tests' / 'node'
NODE_CACHE = CACHE / 'node'

# client name -> (kind, program or python client name)
CLIENTS = {
    'confluent-kafka': ('python', 'confluent'),
    'kafka-python': ('python', 'kafka-python'),
    'aiokafka': ('python', 'aiokafka'),
    'franz-go': ('go', 'franz'),
    'sarama': ('go', 'sarama'),
    'kafka-go': ('go', 'kafkago'),
    'kafkajs': ('node', 'scenarios.js'),
    'kafkajs-idempotent': ('node', 'scenarios.js'),     # SPOOL_KAFKAJS_IDEMPOTENT=1
}
# clients whose producers are idempotent: franz-go's and kafka-python 3's
# by default (KIP-679), kafkajs's when asked
IDEMPOTENT = {'franz-go', 'kafka-python', 'kafkajs-idempotent'}
ALL_CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd']
CODECS = {c: ALL_CODECS for c in CLIENTS}
CODECS['kafkajs'] = CODECS['kafkajs-idempotent'] = ['none', 'gzip', 'snappy']  # lz4/zstd: native addons

N, RT_PARTS, GROUP_PARTS, PHASE1, PHASE2 = 40, 3, 4, 10, 5
RUN_TIMEOUT = 180


def log(*a):
    print('newer-clients:', *a, file=sys.stderr, flush=True)


def _digest(paths, *extra):
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(Path(p).relative_to(ROOT)).encode() + b'\0')
        h.update(Path(p).read_bytes() + b'\0')
    for e in extra:
        h.update(e.encode() + b'\0')
    return h.hexdigest()


def _stamped(stamp_path, digest):
    try:
        return stamp_path.read_text() == digest
    except FileNotFoundError:
        return False


def _du(path):
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def _run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, **kw)
    if r.returncode != 0:
        raise RuntimeError('%s failed (%d):\n%s' % (' '.join(map(str, cmd)), r.returncode,
                                                   r.stdout[-4000:]))
    return r.stdout


# ---------------------------------------------------------------- set-up

def setup_python():
    """The venv's python, made first if needed."""
    py = PY_ENV / 'bin' / 'python'
    stamp = PY_ENV / 'spool-stamp'
    digest = _digest([PY_REQ], sys.version)
    if py.exists() and _stamped(stamp, digest):
        return py
    t0 = time.time()
    log('python: a venv in %s with the pinned clients from PyPI (first run only)' % PY_ENV)
    if PY_ENV.exists():
        shutil.rmtree(PY_ENV)
    _run([sys.executable, '-m', 'venv', str(PY_ENV)])
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1')
    env.pop('PIP_FIND_LINKS', None)
    _run([str(py), '-m', 'pip', 'install', '-q', '--no-cache-dir', '--require-hashes',
          '--only-binary', ':all:', '-r', str(PY_REQ)], env=env)
    stamp.write_text(digest)
    log('python: done in %.0f s, %.0f MB' % (time.time() - t0, _du(PY_ENV) / 1e6))
    return py


def go_env():
    env = dict(os.environ)
    env.update(GOMODCACHE=str(GO_CACHE / 'mod'), GOCACHE=str(GO_CACHE / 'build'),
               GOFLAGS='-mod=readonly -modcacherw -buildvcs=false', GOTOOLCHAIN='local', GOWORK='off',
               CGO_ENABLED='0')
    return env


def setup_go():
    """The directory of the built Go programs, built first if needed."""
    go = shutil.which('go')
    if go is None:
        raise RuntimeError('go not found on PATH: the Go client tests need Go >= 1.26')
    version = _run([go, 'version'])
    stamp = GO_BIN.with_name(GO_BIN.name + '.stamp')
    digest = _digest([p for p in GO_SRC.rglob('*') if p.is_file()], version)
    if all((GO_BIN / p).exists() for p in GO_PROGRAMS) and _stamped(stamp, digest):
        return GO_BIN
    t0 = time.time()
    fresh = not (GO_CACHE / 'mod').exists()
    log('go: building %s with %s%s' % (', '.join(GO_PROGRAMS), version.strip(),
                                       ' (modules from the Go module proxy into %s first)' % GO_CACHE
                                       if fresh else ''))
    GO_BIN.mkdir(parents=True, exist_ok=True)
    _run([go, 'build', '-trimpath', '-o', str(GO_BIN) + '/'] + ['./' + p for p in GO_PROGRAMS],
         cwd=str(GO_SRC), env=go_env())
    stamp.write_text(digest)
    log('go: done in %.0f s; .cache/go holds %.0f MB' % (time.time() - t0, _du(GO_CACHE) / 1e6))
    return GO_BIN


def setup_node():
    """NODE_PATH for the scenarios, installed first if needed."""
    node, npm = shutil.which('node'), shutil.which('npm')
    if node is None or npm is None:
        raise RuntimeError('node and npm not found on PATH: the kafkajs tests need Node.js >= 18')
    version = _run([node, '--version'])
    stamp = NODE_CACHE / 'spool-stamp'
    digest = _digest([NODE_SRC / 'package.json', NODE_SRC / 'package-lock.json'], version)
    modules = NODE_CACHE / 'node_modules'
    if modules.exists() and _stamped(stamp, digest):
        return modules
    t0 = time.time()
    log('node: npm ci of kafkajs into %s (first run only)' % NODE_CACHE)
    if NODE_CACHE.exists():
        shutil.rmtree(NODE_CACHE)
    NODE_CACHE.mkdir(parents=True)
    for f in ('package.json', 'package-lock.json'):
        shutil.copy(NODE_SRC / f, NODE_CACHE / f)
    env = dict(os.environ, npm_config_cache=str(CACHE / 'npm'), npm_config_update_notifier='false')
    _run([npm, 'ci', '--no-audit', '--no-fund', '--ignore-scripts'], cwd=str(NODE_CACHE), env=env)
    stamp.write_text(digest)
    log('node: done in %.0f s, %.1f MB' % (time.time() - t0, _du(NODE_CACHE) / 1e6))
    return modules


SETUP = {'python': setup_python, 'go': setup_go, 'node': setup_node}


# ------------------------------------------------------------- running

class Runner:
    """Sets each kind up on first use (once per test session) and runs
    one scenario of one client, returning its JSON report."""

    def __init__(self):
        self.ready = {}

    def _ready(self, kind):
        if kind not in self.ready:
            self.ready[kind] = SETUP[kind]()
        return self.ready[kind]

    def command(self, client, scenario, bootstrap, prefix):
        kind, prog = CLIENTS[client]
        where = self._ready(kind)
        env = dict(os.environ)
        if kind == 'python':
            cmd = [str(where), str(PY_SCENARIOS), prog, scenario, bootstrap, prefix]
        elif kind == 'go':
            cmd = [str(where / prog), scenario, bootstrap, prefix]
        else:
            env.update(NODE_PATH=str(where), KAFKAJS_NO_PARTITIONER_WARNING='1',
                       SPOOL_KAFKAJS_IDEMPOTENT='1' if client == 'kafkajs-idempotent' else '0')
            cmd = ['node', str(NODE_SRC / prog), scenario, bootstrap, prefix]
        return cmd, env

    def run(self, client, scenario, bootstrap, prefix):
        cmd, env = self.command(client, scenario, bootstrap, prefix)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           universal_newlines=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise AssertionError('%s %s failed (rc %d):\nstderr: %s\nstdout: %s' % (
                client, scenario, r.returncode, r.stderr[-6000:], r.stdout[-2000:]))
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise AssertionError('%s %s printed no JSON:\n%s\n%s' % (client, scenario, r.stdout[-2000:],
                                                                     r.stderr[-4000:]))


def prefix_for(client, scenario, target):
    """Names unique in the session (Kafka is shared by every test)."""
    return '%s-%s-%s-%s' % (client, scenario, target, uuid.uuid4().hex[:6])


def create_topics(bootstrap, topics):
    """{name: partitions} with Debian's confluent-kafka; waits until the
    metadata shows every partition with a leader (Kafka publishes a new
    topic asynchronously)."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({'bootstrap.servers': bootstrap})
    fs = admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()], operation_timeout=10)
    for f in fs.values():
        f.result(20)
    deadline = time.monotonic() + 30
    for t, n in topics.items():
        while True:
            md = admin.list_topics(topic=t, timeout=10).topics[t]
            if md.error is None and len(md.partitions) == n and \
                    all(p.leader >= 0 for p in md.partitions.values()):
                break
            assert time.monotonic() < deadline, 'topic %s not ready: %s' % (t, md.error)
            time.sleep(0.1)


# ----------------------------------------------------- the expectations

def rt_records(codecs):
    """The round trip's records in production order: the reference for
    every client's own copy of the rule."""
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


def _first_difference(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return 'record %d: got %r, want %r' % (i, g, w)
    return 'lengths %d, want %d' % (len(got), len(want))


def check_roundtrip(client, out, bootstrap, data_dir, topic):
    """The client's report, an independent read (Debian's confluent-kafka)
    and the batches on disk all agree with rt_records()."""
    import log_segments
    from client_helpers import consume_assigned
    codecs = CODECS[client]
    assert out['codecs'] == codecs, out['codecs']
    recs = rt_records(codecs)
    nxt, codec_at = {}, {}
    want_produced, want = [], []
    for r in recs:
        o = nxt.get(r['p'], 0)
        nxt[r['p']] = o + 1
        codec_at[(r['p'], o)] = r['codec']
        want_produced.append([r['p'], o])
        want.append(dict({k: r[k] for k in ('p', 'k', 'v', 'h', 'ts')}, o=o))
    assert out['produced'] == want_produced, _first_difference(out['produced'], want_produced)
    want.sort(key=lambda r: (r['p'], r['o']))
    got = sorted(out['consumed'], key=lambda r: (r['p'], r['o']))
    assert got == want, _first_difference(got, want)

    msgs = consume_assigned(bootstrap, topic, list(range(RT_PARTS)))
    seen = sorted(({'p': m.partition(), 'o': m.offset(),
                    'k': None if m.key() is None else m.key().decode(),
                    'v': None if m.value() is None else m.value().decode(),
                    'h': [[k, None if v is None else v.decode()] for k, v in (m.headers() or [])],
                    'ts': m.timestamp()[1]} for m in msgs), key=lambda r: (r['p'], r['o']))
    assert seen == want, 'read back by Debian\'s confluent-kafka: ' + _first_difference(seen, want)

    idempotent = client in IDEMPOTENT
    seqs = {}                               # (producer id, partition): next sequence
    for p in range(RT_PARTS):
        batches = log_segments.read_partition_batches(data_dir, topic, p)
        assert batches, 'no batches on disk for %s-%d' % (topic, p)
        for b in batches:
            codecs_in = {codec_at[(p, o)] for o in range(b.base_offset, b.last_offset + 1)}
            assert len(codecs_in) == 1, (b, codecs_in)
            assert b.codec_name == codecs_in.pop(), (p, b)
            assert b.timestamp_type == 'CreateTime', b
            if not idempotent:
                # (aiokafka, Sarama and kafkajs write base sequence 0 then)
                assert b.producer_id == -1, ('an idempotent batch from a client whose default is not', b,
                                             b.producer_id, b.base_sequence)
                continue
            assert b.producer_id >= 0 and b.producer_epoch == 0, ('not an idempotent batch', b)
            assert b.base_sequence == seqs.get((b.producer_id, p), 0), ('sequence', p, b, seqs)
            seqs[(b.producer_id, p)] = b.base_sequence + b.record_count
    if idempotent:
        assert sum(seqs.values()) == len(recs), seqs


def check_group(out, bootstrap, topic, group):
    """Two disjoint shares covering the topic, every record of phase 1 read
    once by its partition's owner, commits at 10; the restarted member
    starts at the commits, reads exactly phase 2 and commits 15 (checked
    again with Debian's confluent-kafka)."""
    from confluent_kafka import Consumer, TopicPartition
    a, b = out['members']['a'], out['members']['b']
    sa, sb = set(a['assigned']), set(b['assigned'])
    assert sa and sb and not sa & sb and sa | sb == set(range(GROUP_PARTS)), (sa, sb)
    for m, share in ((a, sa), (b, sb)):
        assert all(r[0] in share for r in m['records']), ('read outside its share', share, m['records'])
        assert m['committed'] == {str(p): PHASE1 for p in share}, m['committed']
        for p in share:
            offs = [r[1] for r in m['records'] if r[0] == p]
            assert offs == list(range(PHASE1)), (p, offs)
    got = sorted(tuple(r) for r in a['records'] + b['records'])
    assert got == sorted((p, i, 'g1-p%d-%d' % (p, i)) for p in range(GROUP_PARTS) for i in range(PHASE1))
    c = out['restart']
    assert c['assigned'] == list(range(GROUP_PARTS)), c['assigned']
    for p in range(GROUP_PARTS):
        offs = [r[1] for r in c['records'] if r[0] == p]
        assert offs == list(range(PHASE1, PHASE1 + PHASE2)), ('restart did not resume at the commit', p, offs)
    assert sorted(tuple(r) for r in c['records']) == sorted(
        (p, PHASE1 + i, 'g2-p%d-%d' % (p, i)) for p in range(GROUP_PARTS) for i in range(PHASE2))
    assert c['committed'] == {str(p): PHASE1 + PHASE2 for p in range(GROUP_PARTS)}, c['committed']

    cons = Consumer({'bootstrap.servers': bootstrap, 'group.id': group, 'enable.auto.commit': False})
    try:
        committed = cons.committed([TopicPartition(topic, p) for p in range(GROUP_PARTS)], timeout=20)
    finally:
        cons.close()
    assert {tp.partition: tp.offset for tp in committed} == {p: PHASE1 + PHASE2 for p in range(GROUP_PARTS)}


def expected_admin(prefix):
    return {
        'create': 0, 'create_again': 36, 'listed': True, 'partitions': [0, 1],
        'configs': {'retention.ms': '3600000', 'cleanup.policy': 'delete'},
        'configs_altered': {'retention.ms': '7200000', 'cleanup.policy': 'delete'},
        'partitions_after': [0, 1, 2, 3],
        'groups': [prefix + '-adm-g'],
        'group': {'state': 'stable', 'members': 1, 'assigned': [0, 1, 2, 3]},
        'deleted': True,
    }


def _main(argv):
    if len(argv) >= 1 and argv[0] == 'setup' and all(k in SETUP for k in argv[1:]):
        for kind in argv[1:] or list(SETUP):
            SETUP[kind]()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(_main(sys.argv[1:]))
