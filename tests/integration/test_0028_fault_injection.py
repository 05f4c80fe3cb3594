"""The fault-injection shim (tests/fault/spfault.c, faults.py) works: its
rules on a plain process, then on a broker: an open() fault, an fdatasync
fault and an accept() EMFILE each reach the broker and are logged.

These tests prove the shim, not the broker's answer to the faults: they
check only that the fault happened where it was aimed and that the broker
saw it (its own error line) and is still up.  What the broker should do
after a failed fsync is for the storage tests to come.
"""

import os
import subprocess
import sys
import time

import pytest

from client_helpers import create_topic, produce, producer
from faults import Fault, fault_env, injected, rule, shim_path
from spool_clients import confluent_admin, confluent_metadata

# Python's os.open / os.pwrite reach open64 / pwrite64: the aliases are covered.
PROBE = r'''
import errno, os, sys
d = sys.argv[1]
os.mkdir(os.path.join(d, 'part-3'))
fd = os.open(os.path.join(d, 'part-3', 'seg.log'), os.O_RDWR | os.O_CREAT, 0o644)
def attempt(f, *a):
    try:
        f(*a)
        return 'ok'
    except OSError as e:
        return errno.errorcode[e.errno]
out = []
out.append(' '.join(attempt(os.fdatasync, fd) for _ in range(4)))
out.append(' '.join(attempt(os.pwrite, fd, b'x', 0) for _ in range(5)))
out.append(attempt(os.open, os.path.join(d, 'seg.index'), os.O_RDWR | os.O_CREAT, 0o644))
out.append(attempt(os.open, os.path.join(d, 'seg.timeindex'), os.O_RDWR | os.O_CREAT, 0o644))
out.append(attempt(os.fsync, fd))
print('|'.join(out))
'''


def run_probe(tmp_path, rules):
    env = dict(os.environ, LD_PRELOAD=shim_path(), SPFAULT=';'.join(rules))
    return subprocess.run([sys.executable, '-c', PROBE, str(tmp_path)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=30)


def test_shim_rules(tmp_path):
    (tmp_path / 'a').mkdir()
    r = run_probe(tmp_path / 'a', [
        rule('fdatasync', path='-3/', nth=2, errno='EIO'),
        rule('pwrite', from_=2, count=2, errno='ENOSPC'),
        rule('open', path='.index', errno='EMFILE'),   # not .timeindex's "index"
        rule('fsync', path='/elsewhere/'),             # never matches
    ])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ('ok EIO ok ok|ok ENOSPC ENOSPC ok ok|EMFILE|ok|ok'), r.stdout
    d = str(tmp_path / 'a')
    assert injected(r.stderr) == [
        Fault('fdatasync', d + '/part-3/seg.log', 'EIO', 1, 2),
        Fault('pwrite', d + '/part-3/seg.log', 'ENOSPC', 2, 2),
        Fault('pwrite', d + '/part-3/seg.log', 'ENOSPC', 2, 3),
        Fault('open', d + '/seg.index', 'EMFILE', 3, 1),
    ], r.stderr
    # numeric errno; every matching call when neither nth nor from is given
    (tmp_path / 'b').mkdir()
    r = run_probe(tmp_path / 'b', [rule('fdatasync', errno=5)])
    assert r.stdout.strip().split('|')[0] == 'EIO EIO EIO EIO', r.stdout
    assert [f.n for f in injected(r.stderr)] == [1, 2, 3, 4]


@pytest.mark.parametrize('bad', ['fdatasync:nht=2', 'fsnyc', 'open:errno=EWHAT',
                                 'write:nth=0', 'pwrite:count=2', 'fsync:nth=1:from=2'])
def test_shim_refuses_bad_rules(tmp_path, bad):
    r = run_probe(tmp_path, [bad])
    assert r.returncode == 121, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith('spfault: bad SPFAULT: '), r.stderr


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def wait_log(b, needle, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in b.log_text():
            return True
        time.sleep(0.05)
    return False


def test_open_fault_fails_topic_creation(start_broker):
    """Partition 1's segment files cannot be opened: CreateTopics answers
    KAFKA_STORAGE_ERROR for that topic; another topic works."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic
    b = start_broker(env=fault_env(rule('open', path='/faulty-1/', errno='EMFILE')))
    admin = confluent_admin(b.bootstrap)
    fs = admin.create_topics([NewTopic('faulty', num_partitions=2, replication_factor=1)],
                             operation_timeout=10, request_timeout=15)
    with pytest.raises(KafkaException) as e:
        fs['faulty'].result(timeout=20)
    assert e.value.args[0].code() == KafkaError.KAFKA_STORAGE_ERROR, e.value
    # all or nothing (B5): no ghost topic in the metadata, no log left
    md = confluent_metadata(b.bootstrap)
    assert 'faulty' not in md.topics, md.topics
    assert wait_for(lambda: not [d for d in b.data_dir.iterdir() if d.name.startswith('faulty-')]), \
        list(b.data_dir.iterdir())
    faults = injected(b.log_text())
    assert faults and all(f.call == 'open' and '/faulty-1/' in f.path and f.errno == 'EMFILE'
                          for f in faults), faults
    assert faults[0].rule == 1 and faults[0].n == 1
    assert str(b.data_dir) in faults[0].path

    create_topic(b.bootstrap, 'healthy', 2)
    out = produce(producer(b.bootstrap), 'healthy', [{'value': b'v%d' % i, 'partition': i % 2}
                                                     for i in range(10)])
    assert all(d.error is None for d in out)
    assert b.running() and confluent_metadata(b.bootstrap).brokers


def test_fdatasync_fault_reaches_the_broker(start_broker):
    """The third fdatasync of partition flaky-0 fails with EIO: the shim
    logs it, and the broker logs its fsync failure."""
    b = start_broker(env=fault_env(rule('fdatasync', path='/flaky-0/', nth=3, errno='EIO')))
    create_topic(b.bootstrap, 'flaky', 1)
    p = producer(b.bootstrap, acks='all', **{'linger.ms': 0, 'message.timeout.ms': 3000})
    for i in range(8):  # one acks=all produce (one flush) at a time
        p.produce('flaky', value=b'r%d' % i, partition=0)
        p.flush(10)     # the log goes offline at the fault (test_0029): errors after it
        if 'spfault: fdatasync(' in b.log_text():
            break
    assert wait_log(b, 'spfault: fdatasync('), b.log_text()[-3000:]
    faults = injected(b.log_text())
    assert len(faults) == 1, faults
    f = faults[0]
    assert (f.call, f.errno, f.rule, f.n) == ('fdatasync', 'EIO', 1, 3), f
    assert f.path == str(b.data_dir / 'flaky-0' / '00000000000000000000.log'), f
    assert wait_log(b, 'fdatasync failed: Input/output error'), b.log_text()[-3000:]
    assert b.running() and confluent_metadata(b.bootstrap, 'flaky').brokers


def test_accept_emfile_is_survived(start_broker):
    """accept4 fails once with EMFILE.  Whether a connection was pending at
    that call (then the broker sheds it with its reserve descriptor and
    logs once) or not (the round just ends) depends on timing; either way
    the client is served and the broker does not spin.  test_0004 covers
    a real EMFILE and its log line."""
    b = start_broker(env=fault_env(rule('accept', nth=2, errno='EMFILE')))
    md = confluent_metadata(b.bootstrap, timeout=10)
    assert md.brokers
    faults = injected(b.log_text())
    assert [(f.call, f.errno, f.n) for f in faults] == [('accept', 'EMFILE', 2)], faults
    assert faults[0].path.startswith('socket:['), faults
    with open('/proc/%d/stat' % b.pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    before = int(fields[11]) + int(fields[12])
    time.sleep(1.0)
    with open('/proc/%d/stat' % b.pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    assert int(fields[11]) + int(fields[12]) - before < os.sysconf('SC_CLK_TCK') // 4  # no spin
    assert b.running() and confluent_metadata(b.bootstrap, timeout=10).brokers
