"""Kafka Connect 4.3.1 in distributed mode against Spool: one worker
(ConnectDistributed) keeps its connectors' configs, its source offsets and
its statuses in three topics it creates itself, compacted
(cleanup.policy=compact; the broker's segments are small and its cleaner
eager, so that the offset topic is compacted while Connect runs and what
Connect reads back after each restart is the compacted log).  Through the
REST API the test creates the file source connector (file -> topic) and the
file sink connector (topic -> file); the sink file must come out equal to
the source file, also for lines appended while the worker runs.

Then the worker is stopped and a new one started on the same config: the
connectors come back from the config topic and the source resumes from the
offset it stored, so that lines appended while no worker ran arrive once.
Then the broker is stopped too and started again on its data dir (and
port), and a new worker again finds its connectors and offsets in what
Spool replays; last the broker restarts under that worker, which goes on.
At the end each line is once in the topic and once in the sink file.  (The
same steps pass against Kafka 4.3.1, with the same warnings from Connect.)

Standalone mode: test_0054."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

from client_helpers import consumer, create_topic
from conftest import free_port, read_properties
from spool_clients import KCAT, confluent_admin
from test_0054_kafka_connect import committed, lines, wait_same

TOPIC = 'connect-dist-lines'
SOURCE, SINK = 'spool-file-source', 'spool-file-sink'
OFFSET_PARTITIONS = 5
STATUS_PARTITIONS = 5  # Connect's default
# the worker group and the sink's consumer group form at once (default 3 s)
# small segments and an eager cleaner: Connect's compacted topics really
# get compacted while it runs (checked at the end)
FAST = {'group.initial.rebalance.delay.ms': 0, 'log.segment.bytes': 2048,
        'log.cleaner.backoff.ms': 100, 'log.cleaner.min.cleanable.ratio': '0.01'}


def ascii_lines(start, n):
    """test_0054's lines, in ASCII: FileStreamSourceTask counts its position
    in characters (it reads through a UTF-8 Reader) but resumes by skipping
    that many bytes (InputStream.skip), so that after a restart on non-ASCII
    text it would read again the end of what it had sent (the connector's
    own arithmetic, whatever the broker)."""
    return lines(start, n).encode('ascii', 'replace').decode('ascii')


class Worker:
    """One ConnectDistributed process; its output goes to self.log."""

    def __init__(self, java, props, log):
        self.log = log
        self.port = int(read_properties(props)['listeners'].rsplit(':', 1)[1])
        with open(log, 'wb') as out:
            self.proc = subprocess.Popen(java.java('org.apache.kafka.connect.cli.ConnectDistributed', props),
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def text(self):
        return self.log.read_text(errors='replace')

    def tail(self, n=6000):
        return '---- %s ----\n%s' % (self.log, self.text()[-n:])

    def stop(self, timeout=30):
        """SIGTERM, wait; SIGKILL if it hangs.  Returns the exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
                raise
        return self.proc.returncode

    def rest(self, method, path, body=None, timeout=15):
        """(HTTP status, decoded JSON or text); status None when nothing
        answers (not listening yet)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request('http://127.0.0.1:%d%s' % (self.port, path), data=data, method=method,
                                     headers={'Content-Type': 'application/json', 'Accept': 'application/json'})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            return None, str(e)
        try:
            return status, json.loads(raw or b'null')
        except ValueError:
            return status, raw.decode(errors='replace')

    def until(self, what, fn, timeout=60):
        """Polls fn() (returning (done, value)) every 0.2 s; fails with the
        last value and the log's tail after `timeout` s or if the worker
        exits."""
        deadline = time.monotonic() + timeout
        while True:
            done, value = fn()
            if done:
                return value
            assert self.proc.poll() is None, 'worker exited (%s) waiting for %s: %r\n%s' % (
                self.proc.returncode, what, value, self.tail())
            assert time.monotonic() < deadline, 'no %s after %d s: %r\n%s' % (what, timeout, value, self.tail())
            time.sleep(0.2)


@pytest.fixture
def start_worker(java, tmp_path, request):
    """Factory: start_worker(props) -> Worker; stops them all at teardown
    and prints their logs' tails if the test failed."""
    started = []

    def start(props):
        w = Worker(java, props, tmp_path / ('connect-%d.log' % len(started)))
        started.append(w)
        return w

    yield start
    rep = getattr(request.node, 'rep_call', None)
    for w in started:
        if w.proc.poll() is None:
            try:
                w.stop(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        if rep is not None and rep.failed:
            sys.stderr.write(w.tail() + '\n')


def connector_config(cls, **kw):
    c = {'connector.class': 'org.apache.kafka.connect.file.%s' % cls, 'tasks.max': '1'}
    c.update({k: str(v) for k, v in kw.items()})
    return c


def create_connector(w, name, config):
    """POST /connectors until the worker takes it (409 while it joins its
    group or rebalances): 201 with the config back."""
    def post():
        status, body = w.rest('POST', '/connectors', {'name': name, 'config': config})
        return status not in (None, 409), (status, body)
    status, body = w.until('POST /connectors %s' % name, post)
    assert status == 201, (status, body, w.tail())
    assert body['name'] == name and body['config']['file'] == config['file'], body


def running(w, names):
    """Waits until GET /connectors lists exactly `names` and each has its
    connector and its one task RUNNING."""
    def listed():
        status, body = w.rest('GET', '/connectors')
        return status == 200 and sorted(body) == sorted(names), (status, body)
    w.until('connectors %s listed' % names, listed)

    def states():
        out = {}
        for n in names:
            status, body = w.rest('GET', '/connectors/%s/status' % n)
            if status != 200:
                return False, (n, status, body)
            out[n] = (body['connector']['state'], [t['state'] for t in body['tasks']])
        return all(v == ('RUNNING', ['RUNNING']) for v in out.values()), out
    w.until('connectors RUNNING', states)


def append(path, text):
    with open(path, 'a', encoding='utf-8') as f:
        f.write(text)


def same(w, src, dst, what):
    assert wait_same(src, dst), '%s: %s is not %s (%d and %d bytes)\n%s' % (
        what, dst.name, src.name, dst.exists() and dst.stat().st_size, src.stat().st_size, w.tail())


def errors(text, outage):
    """Connect's ERROR lines; with outage=True, not those of a sink task's
    offset commit that found no broker (a restart under the worker: the
    commit is retried, and Connect logs them so with Kafka too)."""
    out = []
    ls = text.splitlines() + ['']
    for i, l in enumerate(ls):
        if ' ERROR ' in l and not (outage and 'Commit of offsets threw an unexpected exception' in l and
                                   'RetriableCommitFailedException' in ls[i + 1]):
            out.append(l)
    return out


def stopped(w, outage=False):
    """Stops the worker: it exits as on SIGTERM, having logged no error.
    Returns how long it took."""
    t0 = time.monotonic()
    rc = w.stop()
    assert rc in (0, 143, -signal.SIGTERM), (rc, w.tail())
    assert errors(w.text(), outage) == [], w.tail()
    return time.monotonic() - t0


def kcat_records(bootstrap, topic):
    """[(key, value)] of every record of every partition of `topic`."""
    r = subprocess.run([KCAT, '-C', '-b', bootstrap, '-t', topic, '-o', 'beginning', '-e', '-q',
                        '-f', '%k\\t%s\\n'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 0, r.stderr
    return [tuple(l.split('\t', 1)) for l in r.stdout.decode('utf-8').splitlines()]


def end_offset(bootstrap, topic):
    from confluent_kafka import TopicPartition
    c = consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def stored_position(bootstrap, offset_topic, src):
    """The source task's last position in its file, from the offset topic
    (in characters: bytes for ASCII)."""
    positions = [json.loads(v)['position'] for k, v in kcat_records(bootstrap, offset_topic)
                 if json.loads(k) == [SOURCE, {'filename': str(src)}]]
    assert positions, kcat_records(bootstrap, offset_topic)
    return positions[-1]


def check_connect_topics(bootstrap, topics, src, dst):
    """Connect's three topics on Spool: compacted, the partitions asked
    for, the two connectors' configs in the config topic."""
    from confluent_kafka.admin import ConfigResource
    admin = confluent_admin(bootstrap)
    try:
        md = admin.list_topics(timeout=10)
        parts = {k: len(md.topics[t].partitions) for k, t in topics.items() if t in md.topics}
        assert parts == {'config': 1, 'offset': OFFSET_PARTITIONS, 'status': STATUS_PARTITIONS}, (
            parts, sorted(md.topics))
        for t in topics.values():
            (fut,) = admin.describe_configs([ConfigResource('topic', t)]).values()
            assert fut.result(10)['cleanup.policy'].value == 'compact', t
    finally:
        del admin
    configs = {k: json.loads(v)['properties'] for k, v in kcat_records(bootstrap, topics['config'])
               if k.startswith('connector-')}
    assert {k: v['file'] for k, v in configs.items()} == {'connector-' + SOURCE: str(src),
                                                          'connector-' + SINK: str(dst)}, configs


def test_connect_distributed_file_connectors(java, start_broker, start_worker, tmp_path):
    t0 = time.monotonic()

    def mark(what):
        print('connect-dist: %5.1f s  %s' % (time.monotonic() - t0, what))

    broker = start_broker(FAST)
    brokers = [broker]
    # one partition: the sink writes the records in the order they are read
    create_topic(broker.bootstrap, TOPIC, 1)
    run = uuid.uuid4().hex[:8]
    topics = {'config': 'connect-dist-configs-%s' % run, 'offset': 'connect-dist-offsets-%s' % run,
              'status': 'connect-dist-status-%s' % run}
    src, dst = tmp_path / 'in.txt', tmp_path / 'out.txt'
    src.write_text(ascii_lines(0, 300), encoding='utf-8')
    props = tmp_path / 'worker.properties'
    props.write_text('\n'.join([
        'bootstrap.servers=%s' % broker.bootstrap,
        'group.id=spool-connect-dist-%s' % run,
        'key.converter=org.apache.kafka.connect.storage.StringConverter',
        'value.converter=org.apache.kafka.connect.storage.StringConverter',
        'config.storage.topic=%s' % topics['config'],
        'offset.storage.topic=%s' % topics['offset'],
        'status.storage.topic=%s' % topics['status'],
        'config.storage.replication.factor=1',
        'offset.storage.replication.factor=1',
        'status.storage.replication.factor=1',
        'offset.storage.partitions=%d' % OFFSET_PARTITIONS,
        'status.storage.partitions=%d' % STATUS_PARTITIONS,
        'offset.flush.interval.ms=500',
        'listeners=http://127.0.0.1:%d' % free_port(),
        'plugin.discovery=service_load',
    ]) + '\n')
    same_broker = {'listeners': 'PLAINTEXT://127.0.0.1:%d' % broker.port}
    same_broker.update(FAST)
    mark('broker up')

    # a worker, its two connectors created through REST, the file through Spool
    w = start_worker(props)

    def rest_up():
        status, body = w.rest('GET', '/')
        return status == 200 and body['version'] == java.VERSION, (status, body)
    w.until('REST', rest_up)
    mark('worker 1 answers REST')
    create_connector(w, SOURCE, connector_config('FileStreamSourceConnector', file=src, topic=TOPIC))
    create_connector(w, SINK, connector_config('FileStreamSinkConnector', file=dst, topics=TOPIC))
    running(w, [SOURCE, SINK])
    mark('worker 1: connectors created, RUNNING')
    same(w, src, dst, 'the first 300 lines')
    mark('300 lines in the sink file')
    append(src, ascii_lines(300, 200))
    same(w, src, dst, 'lines appended while it runs')
    mark('500 lines in the sink file')
    check_connect_topics(broker.bootstrap, topics, src, dst)

    # a new worker on the same config; lines appended while none runs
    # arrive once: the source resumes from the offset it stored on Spool
    mark('worker 1 stopped (%.1f s)' % stopped(w))
    assert stored_position(broker.bootstrap, topics['offset'], src) == src.stat().st_size
    append(src, ascii_lines(500, 100))
    w = start_worker(props)
    running(w, [SOURCE, SINK])
    mark('worker 2 started: connectors RUNNING')
    same(w, src, dst, 'lines appended while no worker ran')
    mark('600 lines in the sink file')

    # the broker stopped and started again on its data dir and port while
    # no worker runs: a new worker finds it all in what Spool replays
    mark('worker 2 stopped (%.1f s)' % stopped(w))
    assert broker.stop() == 0, broker.log_text()[-3000:]
    append(src, ascii_lines(600, 100))
    broker = start_broker(same_broker, data_dir=broker.data_dir)
    brokers.append(broker)
    mark('broker restarted')
    w = start_worker(props)
    running(w, [SOURCE, SINK])
    mark('worker 3 started: connectors RUNNING')
    same(w, src, dst, 'lines appended while the broker was down')
    mark('700 lines in the sink file')

    # and restarted under a running worker, which goes on
    assert broker.stop() == 0, broker.log_text()[-3000:]
    append(src, ascii_lines(700, 50))
    broker = start_broker(same_broker, data_dir=broker.data_dir)
    brokers.append(broker)
    mark('broker restarted under worker 3')
    same(w, src, dst, 'lines appended while the broker restarted under the worker')
    mark('750 lines in the sink file')
    append(src, ascii_lines(750, 50))
    same(w, src, dst, 'lines appended after that')
    mark('800 lines in the sink file')
    mark('worker 3 stopped (%.1f s)' % stopped(w, outage=True))

    # each line once in the topic, all of it committed by the sink's group,
    # and still once in the sink file
    assert stored_position(broker.bootstrap, topics['offset'], src) == src.stat().st_size
    assert end_offset(broker.bootstrap, TOPIC) == 800
    assert committed(broker.bootstrap, 'connect-' + SINK, TOPIC) == 800
    assert dst.read_bytes() == src.read_bytes()
    # Connect's compacted topics were compacted while it ran (the status
    # topic gets a record per state change of every connector and task)
    text = ''.join(b.log_text() for b in brokers)
    cleaned = [l for l in text.splitlines() if ': cleaned' in l and any(t in l for t in topics.values())]
    assert cleaned, text[-3000:]
    print('connect-dist: %d cleanings of Connect\'s topics, e.g. %s' % (len(cleaned), cleaned[-1]))
