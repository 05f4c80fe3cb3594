"""A failed fdatasync is never retried into "durable" (bug B3): the log and
its log directory go offline (KAFKA_STORAGE_ERROR to producers and
readers, DescribeLogDirs shows it), no clean-shutdown marker is written,
and after a restart every acknowledged record is there.  The metadata log
likewise stops taking changes.  Faults come from the LD_PRELOAD shim
(tests/fault/spfault.c)."""
import signal
import time

import kafka_wire as kw
from client_helpers import consume_assigned, create_topic, produce, producer
from faults import fault_env, injected, rule
from spool_clients import confluent_admin

MARKER = '.kafka_cleanshutdown'


def _wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def _produce_one(b, topic, value, partition=0):
    p = producer(b.bootstrap, **{'linger.ms': 0, 'message.timeout.ms': 4000, 'retries': 2,
                                 'retry.backoff.ms': 100})
    dr = produce(p, topic, [{'value': value, 'partition': partition}], flush_timeout=15)
    return dr[0]


def _describe_log_dirs_errors(port):
    """{log dir: error code} from DescribeLogDirs v1 (null topics = all)."""
    payload = kw.send_recv(port, kw.request(35, 1, 5, kw.int32(-1)))
    r = kw.Reader(payload)
    r.int32(), r.int32()                      # correlation, throttle
    out = {}
    for _ in range(r.int32()):
        err = r.int16()
        d = r.string()
        for _ in range(r.int32()):            # topics
            r.string()
            for _ in range(r.int32()):
                r.int32(), r.int64(), r.int64(), r.int8()
        out[d] = err
    return out


def test_fdatasync_failure_takes_the_log_dir_offline(start_broker):
    rules = rule('fdatasync', path='/flaky-0/', from_=4, errno='EIO')
    b = start_broker(env=fault_env(rules))
    create_topic(b.bootstrap, 'flaky', 1)
    create_topic(b.bootstrap, 'neighbour', 1)
    acked = []
    failed = None
    for i in range(12):                        # one acks=all produce (one flush) at a time
        d = _produce_one(b, 'flaky', b'r%d' % i)
        if d.error is None:
            acked.append((d.offset, b'r%d' % i))
        else:
            failed = d
            break
    assert failed is not None, 'no produce failed'
    assert failed.error.code() == 56, failed.error          # KAFKA_STORAGE_ERROR
    faults = injected(b.log_text())
    assert faults and faults[0].call == 'fdatasync' and '/flaky-0/' in faults[0].path
    # never retried into durable: later produces and reads of that log fail,
    # however often a later fsync would succeed (the shim would fail those
    # too; the point is that none is tried)
    n_faults = len(faults)
    for i in range(3):
        d = _produce_one(b, 'flaky', b'after%d' % i)
        assert d.error is not None and d.error.code() == 56, d
    assert len(injected(b.log_text())) == n_faults          # no sync was even tried
    # the whole log directory is offline, as Kafka takes a log dir offline
    d = _produce_one(b, 'neighbour', b'x')
    assert d.error is not None and d.error.code() == 56, d
    errs = _describe_log_dirs_errors(b.port)
    assert errs == {str(b.data_dir): 56}, errs
    assert b.running()
    assert 'is offline' in b.log_text()
    # a clean stop writes no clean-shutdown marker for it
    assert b.stop() == 0
    assert not (b.data_dir / MARKER).exists()
    assert 'no clean-shutdown marker' in b.log_text()
    # restarted on a sound disk: recovery runs; every acknowledged record is there
    b2 = start_broker(data_dir=b.data_dir)
    assert 'recovered' in b2.log_text()
    msgs = consume_assigned(b2.bootstrap, 'flaky', [0])
    got = [(m.offset(), m.value()) for m in msgs]
    assert got[:len(acked)] == acked, (got, acked)
    assert all(v.startswith(b'r') for _, v in got)          # nothing produced after the failure
    d = _produce_one(b2, 'flaky', b'again')
    assert d.error is None


def test_metadata_log_fsync_failure_stops_changes(start_broker):
    # syncs of the metadata log at start: its new segment (1); then the
    # first topic's creation (2) passes and the second one's (3) fails
    rules = rule('fdatasync', path='/__cluster_metadata-0/', from_=3, errno='EIO')
    b = start_broker(env=fault_env(rules))
    create_topic(b.bootstrap, 'before', 1)
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic
    admin = confluent_admin(b.bootstrap)
    for name in ('failed', 'later'):
        fs = admin.create_topics([NewTopic(name, 1, 1)], operation_timeout=10, request_timeout=15)
        try:
            fs[name].result(timeout=20)
            raise AssertionError('%s was created' % name)
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.KAFKA_STORAGE_ERROR, e
    md = admin.list_topics(timeout=10)
    assert 'failed' not in md.topics and 'later' not in md.topics
    assert 'metadata log failed' in b.log_text()
    assert len(injected(b.log_text())) == 1                 # the failed sync is not retried
    assert b.stop() == 0
    assert not (b.data_dir / MARKER).exists()
    b2 = start_broker(data_dir=b.data_dir)
    md = confluent_admin(b2.bootstrap).list_topics(timeout=10)
    assert 'before' in md.topics and 'later' not in md.topics
    create_topic(b2.bootstrap, 'later', 1)
