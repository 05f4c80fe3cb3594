"""Transactions (issue 13, TV1) through confluent-kafka (librdkafka), on
Apache Kafka 4.3.1 and on Spool alike: every test runs once per broker
('kafka', 'spool') and asserts the same things on both.

- A transactional producer over three partitions: commit, abort (flushed
  first, so that the aborted records are in the log), commit, and one left
  open: end offsets and the LSO (ListOffsets read_committed) while it is
  open and after its commit; read_committed sees exactly the committed
  records, in order per partition, read_uncommitted sees all.
- Consume-transform-produce (txn_ctp_app.py, a process of its own, with
  send_offsets_to_transaction): the application killed -9 in the middle
  of a transaction and started again with the same transactional.id and
  group; separately the broker killed -9 and restarted under it.  The
  output (read_committed) holds every input record's result once, and
  the group's committed offsets are the input's end.
- Zombie fencing: a second producer with the same transactional.id
  fences the first, whose open transaction is aborted; the first's next
  call fails as on Kafka (librdkafka: fatal _FENCED).
- Transaction timeout: a transaction left open past transaction.timeout.ms
  (2 s) is aborted by the broker (the abort scan every 500 ms, a broker
  setting for both): never visible read_committed, the LSO moves past it,
  and the producer's next call fails as on Kafka.

Kafka is a dedicated instance for this module (its abort scan interval
overridden, and the broker-kill test restarts it), behind a proxy that it
advertises (tcp_proxy.ChaosProxy: the chaos test cuts connections); Spool
is a broker per test behind a proxy that it advertises (so that a restarted one is
found again).  Each test
prints how long it took.  SPOOL_TXN_CTP_RECORDS: records per input
partition of the consume-transform-produce tests (default 40);
SPOOL_TXN_INTERLEAVED_ROUNDS: rounds of the interleaved test (300);
SPOOL_TXN_LONG=1: the tests that restart the broker and the chaos tests
run on Kafka too (about two minutes more), and test_0074's tool test checks list's
filters and find-hanging.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import kafka_wire as kw
from client_helpers import create_topic
from faults import sigstop
from tcp_proxy import ChaosProxy

HERE = Path(__file__).resolve().parent
APP = HERE / 'txn_ctp_app.py'
BROKER_CONF = {'transaction.abort.timed.out.transaction.cleanup.interval.ms': 500,
               'group.initial.rebalance.delay.ms': 0}
CTP_PER_PART = int(os.environ.get('SPOOL_TXN_CTP_RECORDS', '40'))
# Kafka's restarts cost 10-15 s each (and more to recover): the tests that
# restart the broker run on Kafka only with SPOOL_TXN_LONG=1 (their
# expectations, Kafka's, are written down and hold Spool to them anyway)
LONG = os.environ.get('SPOOL_TXN_LONG') == '1'
RESTARTING = pytest.mark.parametrize('target', ['kafka', 'spool'] if LONG else ['spool'], indirect=True)
# the same for the chaos tests (Kafka's runs are there to show the tests
# ask nothing Kafka does not do)
CHAOS = RESTARTING
NONE = 0


# ---------------------------------------------------------------- brokers


class KafkaTarget:
    name = 'kafka'

    def __init__(self, holder):
        self.holder = holder
        self.proxy = holder['proxy']

    @property
    def port(self):
        return self.holder['kafka'].port

    @property
    def bootstrap(self):
        return self.proxy.bootstrap

    def restart(self, kill):
        import kafka_ref
        self.holder['kafka'] = kafka_ref.restart(self.holder['kafka'], kill=kill)

    def log_tail(self, n=4000):
        return self.holder['kafka'].log_text()[-n:]

    def signal(self, sig):
        if sig == signal.SIGSTOP:
            sigstop(self.holder['kafka'].pid)
        else:
            os.kill(self.holder['kafka'].pid, sig)


class SpoolTarget:
    """A broker behind a proxy (tcp_proxy.ChaosProxy, calm) that it
    advertises, so that clients find it again when it is restarted (on
    another port)."""
    name = 'spool'

    def __init__(self, start_broker, proxy):
        self.start_broker = start_broker
        self.proxy = proxy
        self.conf = dict(BROKER_CONF, **{'advertised.listeners': proxy.advertised})
        self.broker = start_broker(self.conf)
        proxy.set_target(self.broker.port)

    @property
    def port(self):
        return self.broker.port

    @property
    def bootstrap(self):
        return self.proxy.bootstrap

    def restart(self, kill):
        b = self.broker
        b.stop(sig=signal.SIGKILL if kill else signal.SIGTERM, timeout=20)
        self.broker = self.start_broker(self.conf, data_dir=b.data_dir)
        self.proxy.set_target(self.broker.port)
        self.proxy.drop_all()

    def log_tail(self, n=4000):
        return self.broker.log_text()[-n:]

    def signal(self, sig):
        if sig == signal.SIGSTOP:
            sigstop(self.broker.pid)
        else:
            os.kill(self.broker.pid, sig)


@pytest.fixture(scope='module')
def kafka_txn(tmp_path_factory):
    """Kafka 4.3.1 of this module's own, advertising a proxy's address."""
    import kafka_ref
    proxy = ChaosProxy(seed=73)
    holder = {'proxy': proxy}
    holder['kafka'] = kafka_ref.start(tmp_path_factory.mktemp('kafka-txn'),
                                      overrides=dict(BROKER_CONF, **{'advertised.listeners': proxy.advertised}))
    proxy.set_target(holder['kafka'].port)
    yield holder
    proxy.close()
    holder['kafka'].stop()


@pytest.fixture(params=['kafka', 'spool'])
def target(request, start_broker):
    t0 = time.monotonic()
    if request.param == 'kafka':
        t = KafkaTarget(request.getfixturevalue('kafka_txn'))
    else:
        proxy = ChaosProxy(seed=73)
        request.addfinalizer(proxy.close)
        t = SpoolTarget(start_broker, proxy)
    t1 = time.monotonic()
    t.proxy.calm()
    yield t
    t.proxy.calm()
    print('\n%s [%s]: %.1f s (broker start %.1f s)' % (request.node.originalname, t.name,
                                                       time.monotonic() - t1, t1 - t0))


# ---------------------------------------------------------------- helpers


def new_topic(t, base, partitions):
    """Creates <base>-<broker name> (make_topic); returns its name."""
    return make_topic(t, '%s-%s' % (base, t.name), partitions)


def make_topic(t, topic, partitions):
    """Creates the topic and waits until every partition answers
    ListOffsets (Kafka names a new partition's leader a moment before it
    takes writes); returns its name."""
    create_topic(t.bootstrap, topic, partitions)
    deadline = time.monotonic() + 30
    while True:
        errs = {k: v['error_code'] for k, v in list_offsets(t, topic, range(partitions), 0).items()}
        if set(errs.values()) == {NONE} and len(errs) == partitions:
            return topic
        assert time.monotonic() < deadline, errs
        time.sleep(0.1)


def list_offsets(t, topic, partitions, isolation):
    payload = kw.send_recv(t.port, kw.list_offsets_request(81, topic, list(partitions),
                                                           isolation_level=isolation), timeout=15)
    return kw.parse_list_offsets_response(payload)


def ends(t, topic, partitions):
    """{partition: (high watermark, LSO)} by ListOffsets v5, latest,
    read_uncommitted and read_committed."""
    hw = list_offsets(t, topic, range(partitions), 0)
    lso = list_offsets(t, topic, range(partitions), 1)
    out = {}
    for p in range(partitions):
        a, b = hw[(topic, p)], lso[(topic, p)]
        assert a['error_code'] == NONE and b['error_code'] == NONE, (a, b)
        out[p] = (a['offset'], b['offset'])
    return out


def txn_producer(t, txid, **conf):
    from confluent_kafka import Producer
    c = {'bootstrap.servers': t.bootstrap, 'transactional.id': txid, 'linger.ms': 5}
    c.update(conf)
    p = Producer(c)
    p.init_transactions(60)
    return p


def produce_all(p, topic, records):
    """records: [(partition, value)]; produced (with key = value) and flushed."""
    for part, v in records:
        p.produce(topic, key=v, value=v, partition=part)
    assert p.flush(30) == 0


def read_all(t, topic, partitions, isolation, want_end, group='txn-check', timeout=30):
    """Every record of the topic from offset 0, read with isolation
    ('read_committed' or 'read_uncommitted') until each partition reports
    EOF at want_end[p]: {partition: [(offset, value)]}."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    c = Consumer({'bootstrap.servers': t.bootstrap, 'group.id': group,
                  'isolation.level': isolation, 'enable.auto.commit': False,
                  'enable.partition.eof': True, 'auto.offset.reset': 'earliest',
                  'fetch.wait.max.ms': 50})
    out = {p: [] for p in range(partitions)}
    eof = {}
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while any(eof.get(p) != want_end[p] for p in range(partitions)):
            assert time.monotonic() < deadline, ('no EOF at %s within %d s (%s): %s, got %s' % (
                want_end, timeout, isolation, eof, out))
            for m in c.consume(num_messages=1000, timeout=0.1):
                if m.error():
                    assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                    eof[m.partition()] = m.offset()
                    continue
                out[m.partition()].append((m.offset(), m.value()))
                eof.pop(m.partition(), None)
    finally:
        c.close()
    return out


def kafka_error(e):
    """A librdkafka error as the facts a test compares: (name, fatal,
    retriable, txn_requires_abort)."""
    err = e.args[0]
    return (err.name(), err.fatal(), err.retriable(), err.txn_requires_abort())


# ---------------------------------------------------------------- 1. commit / abort


def test_commit_abort_read_committed(target):
    """T1 commit (3 per partition), T2 abort (2 per partition, flushed),
    T3 commit (2 per partition), T4 open (1 on partitions 0 and 1, flushed):
    the offsets on each partition are T1 0-2, marker 3, T2 4-5, marker 6,
    T3 7-8, marker 9, T4 10.  While T4 is open the LSO is 10 on every
    partition (on 2, the high watermark); after its commit (marker 11) the
    LSO is the high watermark."""
    t = target
    topic = new_topic(t, 'txn-basic', 3)
    p = txn_producer(t, 'txn-basic-%s' % t.name)

    def txn(tag, n, parts=(0, 1, 2)):
        return [(q, b'%s-p%d-%d' % (tag, q, i)) for q in parts for i in range(n)]

    p.begin_transaction()
    produce_all(p, topic, txn(b'c1', 3))
    p.commit_transaction(30)
    p.begin_transaction()
    produce_all(p, topic, txn(b'a2', 2))
    p.abort_transaction(30)
    p.begin_transaction()
    produce_all(p, topic, txn(b'c3', 2))
    p.commit_transaction(30)
    p.begin_transaction()
    produce_all(p, topic, txn(b'o4', 1, (0, 1)))

    assert ends(t, topic, 3) == {0: (11, 10), 1: (11, 10), 2: (10, 10)}
    committed = {q: [(i, b'c1-p%d-%d' % (q, i)) for i in range(3)] +
                 [(7 + i, b'c3-p%d-%d' % (q, i)) for i in range(2)] for q in range(3)}
    assert read_all(t, topic, 3, 'read_committed', {0: 10, 1: 10, 2: 10}) == committed
    everything = {q: [(i, b'c1-p%d-%d' % (q, i)) for i in range(3)] +
                  [(4 + i, b'a2-p%d-%d' % (q, i)) for i in range(2)] +
                  [(7 + i, b'c3-p%d-%d' % (q, i)) for i in range(2)] for q in range(3)}
    for q in (0, 1):
        everything[q].append((10, b'o4-p%d-0' % q))
    assert read_all(t, topic, 3, 'read_uncommitted', {0: 11, 1: 11, 2: 10}) == everything

    p.commit_transaction(30)
    want = {0: (12, 12), 1: (12, 12), 2: (10, 10)}
    deadline = time.monotonic() + 10       # the markers are written after EndTxn answers
    while ends(t, topic, 3) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ends(t, topic, 3) == want
    for q in (0, 1):
        committed[q].append((10, b'o4-p%d-0' % q))
    assert read_all(t, topic, 3, 'read_committed', {0: 12, 1: 12, 2: 10}) == committed
    assert read_all(t, topic, 3, 'read_uncommitted', {0: 12, 1: 12, 2: 10}) == everything


INTERLEAVED_ROUNDS = int(os.environ.get('SPOOL_TXN_INTERLEAVED_ROUNDS', '300'))


@RESTARTING
def test_interleaved_transactions_small_fetches_and_restart(target):
    """Four transactional producers interleave on two partitions of a topic
    with 1 MB segments: INTERLEAVED_ROUNDS rounds (300), each a random
    producer sending 1-4 records of 3 KB to random partitions (flushed),
    then committing (40%), aborting (30%) or leaving its transaction open;
    at the end every open one is committed or aborted.  After each round
    the LSO of each partition is the first offset of the transactions
    open on it (else the high watermark).  Batches of
    committed and aborted transactions interleave across segments.  A
    read_committed consumer with 20 KB fetches (an aborted range spans
    many fetches) sees exactly the committed records, each at the offset
    its delivery report named; read_uncommitted sees all.  Half-way the
    broker is killed -9 with three or four transactions open (the LSO is the same after
    its restart, and they go on); and the reads are the same after
    another kill -9 and restart at the end (the aborted-transaction index
    rebuilt from the log).  A fixed seed: the same sequence on both."""
    import random
    t = target
    topic = new_topic(t, 'txn-interleaved', 2)
    admin_conf = {'segment.bytes': str(1 << 20)}
    from confluent_kafka.admin import ConfigResource
    from spool_clients import confluent_admin
    adm = confluent_admin(t.bootstrap)
    res = ConfigResource('topic', topic, set_config=admin_conf)
    adm.alter_configs([res])[res].result(timeout=30)
    rng = random.Random(7300)
    prods = [txn_producer(t, 'txn-interleaved-%d-%s' % (k, t.name)) for k in range(4)]
    open_ = [None] * 4          # each producer's open transaction: [deliveries]
    outcome = []                # (committed?, deliveries)
    pad = b'x' * 3000

    def finish(k, commit):
        if commit:
            prods[k].commit_transaction(30)
        else:
            prods[k].abort_transaction(30)
        outcome.append((commit, open_[k]))
        open_[k] = None

    def check_lso(rnd):
        # the LSO of each partition: the first offset of the transactions
        # open on it, else the high watermark (markers are written after
        # EndTxn answers: a moment allowed)
        deadline = time.monotonic() + 10
        while True:
            e = ends(t, topic, 2)
            want = {}
            for q in range(2):
                firsts = [d['offset'] for ds in open_ if ds for d in ds if d['partition'] == q]
                want[q] = min(firsts) if firsts else e[q][0]
            if {q: e[q][1] for q in range(2)} == want:
                return
            assert time.monotonic() < deadline, ('round %d: LSO %s, want %s' % (rnd, e, want))
            time.sleep(0.02)

    t0 = time.monotonic()
    restarted = False
    for rnd in range(INTERLEAVED_ROUNDS):
        k = rng.randrange(4)
        if open_[k] is None:
            prods[k].begin_transaction()
            open_[k] = []
        for _ in range(rng.randint(1, 4)):
            q = rng.randrange(2)
            v = b'r%d-p%d-%d-' % (rnd, k, len(open_[k])) + pad
            d = {'value': v, 'partition': q}

            def cb(err, msg, d=d):
                d['err'], d['offset'] = err, msg.offset()
            prods[k].produce(topic, value=v, partition=q, on_delivery=cb)
            open_[k].append(d)
        assert prods[k].flush(30) == 0
        x = rng.random()
        if x < 0.4:
            finish(k, True)
        elif x < 0.7:
            finish(k, False)
        check_lso(rnd)
        nopen = sum(1 for ds in open_ if ds)
        if not restarted and rnd >= INTERLEAVED_ROUNDS // 2 and nopen >= 3:
            restarted = True
            # a kill -9 with transactions open: the restarted broker knows
            # their first offsets (the LSO), and they go on
            print('open at the restart (round %d): %d' % (rnd, nopen))
            t.restart(kill=True)
            wait_led(t, topic, 2)
            check_lso(rnd)
    for k in range(4):
        if open_[k] is not None:
            finish(k, rng.random() < 0.5)
    produced = time.monotonic() - t0
    assert restarted
    alld = [d for _c, ds in outcome for d in ds]
    assert all(d['err'] is None for d in alld), [d for d in alld if d['err'] is not None][:3]
    committed = {q: sorted((d['offset'], d['value']) for c, ds in outcome if c for d in ds
                           if d['partition'] == q) for q in range(2)}
    everything = {q: sorted((d['offset'], d['value']) for d in alld if d['partition'] == q)
                  for q in range(2)}
    n_c = sum(len(v) for v in committed.values())
    print('%d records (%d committed) in %d transactions in %.1f s' % (
        len(alld), n_c, len(outcome), produced))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        e = ends(t, topic, 2)
        if all(hw == lso for hw, lso in e.values()):
            break
        time.sleep(0.05)
    assert all(hw == lso for hw, lso in e.values()), e

    def check(when):
        fetch = {'fetch.max.bytes': 20000, 'max.partition.fetch.bytes': 20000,
                 'message.max.bytes': 20000}
        got = read_all_conf(t, topic, 2, 'read_committed', {q: e[q][0] for q in range(2)}, fetch)
        for q in range(2):
            assert got[q] == committed[q], (when, q, len(got[q]), len(committed[q]),
                                            first_difference(got[q], committed[q]))
        got = read_all_conf(t, topic, 2, 'read_uncommitted', {q: e[q][0] for q in range(2)}, fetch)
        for q in range(2):
            assert got[q] == everything[q], (when, q, first_difference(got[q], everything[q]))

    check('before the restart')
    t.restart(kill=True)
    assert wait_led(t, topic, 2) == e
    check('after the restart')


def wait_led(t, topic, partitions, timeout=60):
    """ends() once the partitions answer again after a restart."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ends(t, topic, partitions)
        except (AssertionError, OSError):
            assert time.monotonic() < deadline
            time.sleep(0.2)


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i, x[0], x[1][:20], y[0], y[1][:20]
    return 'lengths', len(a), len(b)


def read_all_conf(t, topic, partitions, isolation, want_end, conf, timeout=60):
    """read_all with consumer settings of the caller's."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    c = Consumer(dict({'bootstrap.servers': t.bootstrap, 'group.id': 'txn-check',
                       'isolation.level': isolation, 'enable.auto.commit': False,
                       'enable.partition.eof': True, 'auto.offset.reset': 'earliest',
                  'fetch.wait.max.ms': 50}, **conf))
    out = {p: [] for p in range(partitions)}
    eof = {}
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while any(eof.get(p) != want_end[p] for p in range(partitions)):
            assert time.monotonic() < deadline, ('no EOF at %s within %d s (%s): %s' % (
                want_end, timeout, isolation, eof))
            for m in c.consume(num_messages=1000, timeout=0.1):
                if m.error():
                    assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                    eof[m.partition()] = m.offset()
                    continue
                out[m.partition()].append((m.offset(), m.value()))
                eof.pop(m.partition(), None)
    finally:
        c.close()
    return out


def test_delete_records_inside_transactions(target):
    """Log start moved (DeleteRecords) into transactions.  Partition 0:
    plain records 0-4; T (open) 5-7; a plain record 8 (HW 9, LSO 5).
    DeleteRecords to 6, inside the open T: earliest 6, and the LSO
    (ListOffsets latest, read_committed) stays at T's first offset 5,
    below the log start (as Kafka 4.3 answers).
    T aborted (marker 9): read_committed from 6 shows only 8; committed
    U 10-11 (marker 12), DeleteRecords to 11: read_committed from 11
    shows 11."""
    t = target
    topic = new_topic(t, 'txn-delrec', 1)
    from client_helpers import producer, produce
    plain = producer(t.bootstrap)
    produce(plain, topic, [{'partition': 0, 'value': b'plain-%d' % i} for i in range(5)])
    p = txn_producer(t, 'txn-delrec-%s' % t.name)
    p.begin_transaction()
    produce_all(p, topic, [(0, b't-%d' % i) for i in range(3)])
    produce(plain, topic, [{'partition': 0, 'value': b'plain-8'}])
    assert ends(t, topic, 1) == {0: (9, 5)}
    assert kw.delete_records(t.port, {topic: [(0, 6)]}) == {topic: {0: (6, NONE)}}
    earliest = list_offsets_at(t, topic, kw.EARLIEST_TIMESTAMP)
    assert (earliest, ends(t, topic, 1)) == ({0: 6}, {0: (9, 5)})
    p.abort_transaction(30)
    wait_ends(t, topic, {0: (10, 10)})
    got = read_all(t, topic, 1, 'read_committed', {0: 10})
    assert got == {0: [(8, b'plain-8')]}, got
    assert read_all(t, topic, 1, 'read_uncommitted', {0: 10}) == \
        {0: [(6, b't-1'), (7, b't-2'), (8, b'plain-8')]}
    p.begin_transaction()
    produce_all(p, topic, [(0, b'u-%d' % i) for i in range(2)])
    p.commit_transaction(30)
    wait_ends(t, topic, {0: (13, 13)})
    assert kw.delete_records(t.port, {topic: [(0, 11)]}) == {topic: {0: (11, NONE)}}
    assert read_all(t, topic, 1, 'read_committed', {0: 13}) == {0: [(11, b'u-1')]}


def list_offsets_at(t, topic, ts, partitions=1):
    payload = kw.send_recv(t.port, kw.list_offsets_request(82, topic, list(range(partitions)), timestamp=ts),
                           timeout=15)
    return {k[1]: v['offset'] for k, v in kw.parse_list_offsets_response(payload).items()}


def wait_ends(t, topic, want, timeout=10):
    deadline = time.monotonic() + timeout
    while ends(t, topic, len(want)) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ends(t, topic, len(want)) == want


# ---------------------------------------------------------------- 2. consume-transform-produce


def start_app(t, tin, tout, group, txid, per_txn, sleep_s, log):
    return subprocess.Popen([sys.executable, str(APP), t.bootstrap, tin, tout, group, txid,
                             str(per_txn), str(sleep_s)],
                            stdout=subprocess.PIPE, stderr=open(log, 'ab'), stdin=subprocess.DEVNULL,
                            universal_newlines=True, bufsize=1)


def read_until(proc, pred, timeout, seen):
    """Lines of the app's stdout (appended to seen) until pred(line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError('the app ended (rc %s) before the expected line:\n%s' % (
                proc.wait(), ''.join(seen)))
        seen.append(line)
        if pred(line):
            return line
    raise AssertionError('no expected line within %d s:\n%s' % (timeout, ''.join(seen)))


def ctp_setup(t, base):
    tin = new_topic(t, base + '-in', 3)
    tout = new_topic(t, base + '-out', 3)
    from client_helpers import producer, produce
    recs = [{'partition': q, 'key': b'%d-%d' % (q, i), 'value': b'v-%d-%d' % (q, i)}
            for q in range(3) for i in range(CTP_PER_PART)]
    produce(producer(t.bootstrap), tin, recs)
    return tin, tout


def ctp_check(t, tin, tout, group, app_out):
    """The output read_committed is every input record's result, once, in
    input order per partition, and the group's committed offsets are the
    input's end.  Returns the number of records in the output's log
    (read_uncommitted), aborted ones included."""
    from confluent_kafka import Consumer, TopicPartition
    out_ends = ends(t, tout, 3)
    assert all(hw == lso for hw, lso in out_ends.values()), out_ends
    got = read_all(t, tout, 3, 'read_committed', {q: out_ends[q][1] for q in range(3)})
    for q in range(3):
        vals = [v for _o, v in got[q]]
        assert vals == [b'out:v-%d-%d' % (q, i) for i in range(CTP_PER_PART)], (
            'partition %d: %s\napp:\n%s' % (q, vals, app_out))
    c = Consumer({'bootstrap.servers': t.bootstrap, 'group.id': group,
                  'isolation.level': 'read_committed', 'enable.auto.commit': False})
    try:
        com = c.committed([TopicPartition(tin, q) for q in range(3)], timeout=30)
    finally:
        c.close()
    assert {tp.partition: tp.offset for tp in com} == {q: CTP_PER_PART for q in range(3)}, app_out
    raw = read_all(t, tout, 3, 'read_uncommitted', {q: out_ends[q][0] for q in range(3)})
    return sum(len(v) for v in raw.values())


def test_ctp_application_killed(target, tmp_path):
    """The application (10 records per transaction, 0.1 s between its
    flush and its commit) is killed -9 once 3 transactions are committed
    and a 4th is flushed; started again with the same transactional.id and
    group (no sleep), it finishes.  The killed transaction's records are in
    the output's log but aborted."""
    t = target
    tin, tout = ctp_setup(t, 'txn-ctp-app')
    group, txid = 'txn-ctp-app-g-%s' % t.name, 'txn-ctp-app-%s' % t.name
    log = tmp_path / 'app.log'
    seen = []
    a = start_app(t, tin, tout, group, txid, 10, 0.1, log)
    try:
        read_until(a, lambda l: l.startswith('committed 3 '), 60, seen)
        read_until(a, lambda l: l.startswith('flushed '), 30, seen)
    finally:
        a.kill()
        a.wait()
    b = start_app(t, tin, tout, group, txid, 10, 0, log)
    try:
        out, _ = b.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        b.kill()
        out, _ = b.communicate()
        raise AssertionError('the restarted app did not finish:\n%s\n%s' % (out, log.read_text()))
    app_out = ''.join(seen) + '---- restarted ----\n' + out + log.read_text()
    assert b.returncode == 0 and 'done ' in out, app_out
    total = ctp_check(t, tin, tout, group, app_out)
    assert total >= 3 * CTP_PER_PART + 10, (total, app_out)   # the killed transaction's 10


@RESTARTING
def test_ctp_broker_killed(target, tmp_path):
    """The application runs (10 records per transaction, 0.2 s between
    flush and commit); once 3 transactions are committed and a 4th is
    flushed, the broker is killed -9 and started again on its data; the
    application goes on through the outage (retrying, or aborting and
    rewinding) and finishes."""
    t = target
    tin, tout = ctp_setup(t, 'txn-ctp-brk')
    group, txid = 'txn-ctp-brk-g-%s' % t.name, 'txn-ctp-brk-%s' % t.name
    log = tmp_path / 'app.log'
    seen = []
    a = start_app(t, tin, tout, group, txid, 10, 0.2, log)
    try:
        read_until(a, lambda l: l.startswith('committed 3 '), 60, seen)
        read_until(a, lambda l: l.startswith('flushed '), 30, seen)
        t0 = time.monotonic()
        t.restart(kill=True)
        print('broker restarted in %.1f s' % (time.monotonic() - t0))
        out, _ = a.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        a.kill()
        out, _ = a.communicate()
        raise AssertionError('the app did not finish:\n%s%s\n%s' % (''.join(seen), out, log.read_text()))
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    app_out = ''.join(seen) + out + log.read_text()[-6000:]
    assert a.returncode == 0 and 'done ' in out, (app_out, t.log_tail())
    print('app: %s' % ' | '.join(l for l in (''.join(seen) + out).splitlines()
                                 if not l.startswith(('flushed', 'committed'))))
    ctp_check(t, tin, tout, group, app_out)


@CHAOS
def test_ctp_through_chaos(target, tmp_path):
    """The application (2 records per transaction, 50 ms between flush and
    commit) runs while the proxy cuts one of its connections (producer,
    consumer, group or transaction coordinator) every 50-200 ms: requests are retried,
    transactions aborted and redone, never fatal; at the end the output
    holds each result once and the group's offsets are the input's end."""
    t = target
    tin, tout = ctp_setup(t, 'txn-ctp-chaos')
    group, txid = 'txn-ctp-chaos-g-%s' % t.name, 'txn-ctp-chaos-%s' % t.name
    log = tmp_path / 'app.log'
    t.proxy.reset_stats()
    t.proxy.chaos(50, 200)
    a = start_app(t, tin, tout, group, txid, 2, 0.05, log)
    try:
        out, _ = a.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        a.kill()
        out, _ = a.communicate()
        raise AssertionError('the app did not finish:\n%s\n%s' % (out, log.read_text()[-6000:]))
    finally:
        t.proxy.calm()
        if a.poll() is None:
            a.kill()
            a.wait()
    cut = t.proxy.stats()
    app_out = out + log.read_text()[-6000:]
    notes = [l for l in out.splitlines() if not l.startswith(('flushed', 'committed'))]
    print('proxy %s; app: %s' % (cut, ' | '.join(notes)))
    assert a.returncode == 0 and 'done ' in out, (app_out, t.log_tail())
    assert cut['drops'] >= 10, cut
    ctp_check(t, tin, tout, group, app_out)


@RESTARTING
def test_restart_right_after_commit(target):
    """A transaction over 30 partitions (a record on each) commits, and the
    broker is stopped at once (Spool: kill -9, within a few ms of EndTxn's
    answer, so that markers are likely still being written; Kafka: SIGTERM,
    since after a kill -9 Kafka 4.3 drops the markers of partitions it
    has not led again yet, see test_open_transaction_across_kill9_restart_spool).
    Restarted, the broker completes the commit from its transaction log:
    every partition has its marker (LSO = high watermark = 2, or 3 where
    the coordinator, restarted before it had logged CompleteCommit, wrote
    the markers again, as Kafka's does: a second COMMIT marker is
    harmless; Kafka 4.3 restarted by SIGTERM right after the commit does
    the same, a few seconds after it answers again), read_committed sees
    the 30 records, and the producer goes on with a new transaction."""
    t = target
    n = 30
    topic = new_topic(t, 'txn-commit-restart', n)
    p = txn_producer(t, 'txn-commit-restart-%s' % t.name)
    p.begin_transaction()
    produce_all(p, topic, [(q, b'r-%d' % q) for q in range(n)])
    p.commit_transaction(30)
    time.sleep(float(os.environ.get('SPOOL_TXN_SLEEP_BEFORE_KILL', '0')))
    t.restart(kill=(t.name == 'spool'))
    deadline = time.monotonic() + 30
    e = None

    def done(e):
        return e is not None and all(hw == lso and hw in (2, 3) for hw, lso in e.values())
    stable_since, last = None, None
    while time.monotonic() < deadline:
        try:
            e = ends(t, topic, n)
        except (AssertionError, OSError):
            e = None
        if e != last:
            stable_since, last = time.monotonic(), e
        # the markers again, maybe: Kafka a few seconds after it answers,
        # Spool as it starts
        if done(e) and time.monotonic() - stable_since > (4 if t.name == 'kafka' else 1.5):
            break
        time.sleep(0.2)
    assert done(e), e
    print('partitions with the markers written twice: %d' % sum(hw == 3 for hw, _l in e.values()))
    got = read_all(t, topic, n, 'read_committed', {q: e[q][0] for q in range(n)})
    assert got == {q: [(0, b'r-%d' % q)] for q in range(n)}, got
    p.begin_transaction()
    produce_all(p, topic, [(0, b'after')])
    p.commit_transaction(30)
    want = dict(e)
    want[0] = (e[0][0] + 2, e[0][0] + 2)
    wait_ends(t, topic, want)
    got = read_all(t, topic, 1, 'read_committed', {0: want[0][0]})
    assert [v for _o, v in got[0]] == [b'r-0', b'after'], got


@CHAOS
def test_java_transactions_through_chaos(target, java, tmp_path):
    """Kafka's Java producer (tests/java: Transactions.chaos, scenario
    txn_chaos): 100 transactions of 30 records over 3 partitions while the
    proxy cuts one of its connections every 20-100 ms; abortable failures
    are aborted and redone.  Nothing fatal; read_committed, each of the
    3000 records is there once, in order per partition; LSO = high
    watermark at the end."""
    t = target
    t.proxy.reset_stats()
    t.proxy.chaos(20, 100)
    try:
        out, proc = java.run(['txn_chaos'], tmp_path, **{t.name: t.bootstrap})
    finally:
        t.proxy.calm()
    cut = t.proxy.stats()
    line = out.get((t.name, 'txn_chaos'))
    assert line is not None, proc.stderr[-6000:]
    assert 'error' not in line, (line['error'], t.log_tail())
    r = line['result']
    print('java txn_chaos on %s: %s ms, redone %s, commit retries %s, proxy %s' % (
        t.name, line['ms'], r['redone'], r['commit_retries'], cut))
    assert r['fatal'] == [], (r, proc.stderr[-4000:])
    assert (r['records'], r['duplicates'], r['missing'], r['order'], r['lso_is_hw']) == \
        (3000, [], [], [], True), r
    assert cut['drops'] >= 10, cut


# ---------------------------------------------------------------- 3. zombie fencing


def test_zombie_fenced(target):
    """Producer A opens a transaction (3 records flushed to partition 0);
    B inits the same transactional.id: A's transaction is aborted, and A's
    next produce-and-commit fails.  librdkafka on Kafka 4.3: a fatal
    _FENCED error (from the produce or the commit).  B then commits its
    own record; read_committed sees only B's."""
    from confluent_kafka import KafkaException
    t = target
    topic = new_topic(t, 'txn-zombie', 1)
    txid = 'txn-zombie-%s' % t.name
    a = txn_producer(t, txid)
    a.begin_transaction()
    produce_all(a, topic, [(0, b'zombie-%d' % i) for i in range(3)])
    b = txn_producer(t, txid)
    # B's init aborted A's transaction: the marker is at 3, the LSO past it
    assert ends(t, topic, 1) == {0: (4, 4)}
    errors = []
    try:
        a.produce(topic, key=b'zombie-late', value=b'zombie-late', partition=0)
        a.flush(10)
        a.commit_transaction(30)
    except KafkaException as e:
        errors.append(kafka_error(e))
    assert errors == [('_FENCED', True, False, False)], errors
    b.begin_transaction()
    produce_all(b, topic, [(0, b'b-0')])
    b.commit_transaction(30)
    deadline = time.monotonic() + 10       # the marker is written after EndTxn answers
    while ends(t, topic, 1) != {0: (6, 6)} and time.monotonic() < deadline:
        time.sleep(0.05)
    # 0-2 A's (aborted), 3 B's abort marker, 4 b-0, 5 its commit marker
    assert ends(t, topic, 1) == {0: (6, 6)}
    got = read_all(t, topic, 1, 'read_committed', {0: 6})
    assert [v for _o, v in got[0]] == [b'b-0'], got


def test_offsets_of_a_stale_group_generation(target):
    """KIP-447's fencing of offsets: consumer A of group G (subscribe(),
    2 partitions) has generation g; consumer B joins, the group rebalances
    (A now in g + 1).  A transaction that sends offsets with A's metadata
    of generation g fails as on Kafka 4.3 (librdkafka: ILLEGAL_GENERATION,
    abortable), and after the abort one with A's current metadata
    commits: G's offset is then 2."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    t = target
    topic = new_topic(t, 'txn-stale-gen', 2)
    group = 'txn-stale-gen-g-%s' % t.name
    conf = {'bootstrap.servers': t.bootstrap, 'group.id': group, 'enable.auto.commit': False,
            'auto.offset.reset': 'earliest', 'session.timeout.ms': 10000,
            'heartbeat.interval.ms': 300}
    assigned = {}

    def member(name):
        c = Consumer(conf)
        c.subscribe([topic], on_assign=lambda c_, ps: assigned.__setitem__(name, [x.partition for x in ps]),
                     on_revoke=lambda c_, ps: assigned.pop(name, None))
        return c

    a = member('a')
    deadline = time.monotonic() + 30
    while assigned.get('a') != [0, 1]:
        assert time.monotonic() < deadline, assigned
        a.poll(0.1)
    stale = a.consumer_group_metadata()
    b = member('b')
    deadline = time.monotonic() + 30
    while not (assigned.get('a') and assigned.get('b')):
        assert time.monotonic() < deadline, assigned
        a.poll(0.1)
        b.poll(0.1)
    p = txn_producer(t, 'txn-stale-gen-%s' % t.name)
    p.begin_transaction()
    produce_all(p, topic, [(0, b'x')])
    try:
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 1)], stale, 30)
        p.commit_transaction(30)
        result = 'committed'
    except KafkaException as e:
        result = kafka_error(e)
    print('offsets with a stale generation: %s' % (result,))
    assert result == ('ILLEGAL_GENERATION', False, False, True), result
    p.abort_transaction(30)
    p.begin_transaction()
    produce_all(p, topic, [(0, b'y')])
    mine = [q for q in assigned['a']]
    p.send_offsets_to_transaction([TopicPartition(topic, q, 2) for q in mine], a.consumer_group_metadata(), 30)
    p.commit_transaction(30)
    a.close()
    b.close()
    c = Consumer(dict(conf, **{'isolation.level': 'read_committed'}))
    try:
        com = c.committed([TopicPartition(topic, q) for q in mine], timeout=30)
    finally:
        c.close()
    assert [x.offset for x in com] == [2] * len(mine), com


def test_epoch_bump_after_message_timeout(target):
    """KIP-360's epoch bump by a transactional producer: T1 commits 'a-*'
    (2 records); T2 sends b-0 (delivered: the partition is in the
    transaction), then the broker is stopped (SIGSTOP) for 3 s while b-1
    and b-2 wait, so their message.timeout.ms (1.5 s) expires:
    librdkafka reports them _MSG_TIMED_OUT, its commit fails with an
    abortable error that needs an epoch bump, and abort_transaction bumps
    the epoch (InitProducerId with the producer id and epoch); T3 commits
    'c-*' with the new epoch.  read_committed: a-*, c-*; b-0 (and any b
    record the stopped broker may still have written) aborted.  (Without
    b-0, Kafka 4.3 now and then answers the abort INVALID_TXN_STATE,
    fatal: when the stop caught AddPartitionsToTxn in flight.)"""
    from confluent_kafka import KafkaException
    t = target
    topic = new_topic(t, 'txn-bump', 1)
    reports = []
    p = txn_producer(t, 'txn-bump-%s' % t.name, **{'transaction.timeout.ms': 20000,
                                                  'message.timeout.ms': 1500, 'linger.ms': 0})
    p.begin_transaction()
    produce_all(p, topic, [(0, b'a-%d' % i) for i in range(2)])
    p.commit_transaction(30)
    p.begin_transaction()
    produce_all(p, topic, [(0, b'b-0')])
    t.signal(signal.SIGSTOP)
    try:
        for i in (1, 2):
            p.produce(topic, value=b'b-%d' % i, partition=0,
                      on_delivery=lambda err, msg: reports.append(err.name() if err else 'ok'))
        p.flush(3)
    finally:
        t.signal(signal.SIGCONT)
    p.flush(10)
    try:
        p.commit_transaction(30)
        result = 'committed'
    except KafkaException as e:
        result = kafka_error(e)
    print('delivery %s; commit: %s' % (reports, result))
    assert reports == ['_MSG_TIMED_OUT'] * 2, reports
    assert result[1:] == (False, False, True), result      # abortable, not fatal
    p.abort_transaction(30)
    p.begin_transaction()
    produce_all(p, topic, [(0, b'c-%d' % i) for i in range(2)])
    p.commit_transaction(30)
    hw = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        hw, lso = ends(t, topic, 1)[0]
        if hw == lso:
            break
        time.sleep(0.05)
    got = read_all(t, topic, 1, 'read_committed', {0: hw})
    assert [v for _o, v in got[0]] == [b'a-0', b'a-1', b'c-0', b'c-1'], got
    layout = [(b['BaseOffset'], b['ProducerEpoch'], b['BaseSequence'], b['RecordCount'],
               b['Attributes'] & 0x30 == 0x30) for b in batches(t, topic)]
    print('batches (offset, epoch, sequence, records, control): %s' % layout)
    got = read_all(t, topic, 1, 'read_uncommitted', {0: hw})
    print('read_uncommitted: %s' % [v for _o, v in got[0]])
    # no record twice (a timed-out batch retried into the log again)
    vals = [v for _o, v in got[0]]
    assert len(vals) == len(set(vals)), vals


def batches(t, topic):
    from kafka_schema import parse_batches
    out, offset = [], 0
    while True:
        r = kw.fetch(t.port, 11, topic, 0, offset, max_bytes=1 << 20)
        bs = [b for b in parse_batches(r['records']) if 'partial' not in b]
        if not bs:
            return out
        out += bs
        offset = bs[-1]['BaseOffset'] + bs[-1]['LastOffsetDelta'] + 1


# ---------------------------------------------------------------- 4. transaction timeout


def test_transaction_timeout_aborts(target):
    """transaction.timeout.ms=2000: a transaction with 3 records flushed
    on each of 2 partitions and left open is aborted by the broker within
    2 s + the 500 ms scan (10 s allowed): a marker ends it, the LSO moves
    to the high watermark, read_committed sees nothing, and the
    producer's commit fails with the error Kafka gives."""
    from confluent_kafka import KafkaException
    t = target
    topic = new_topic(t, 'txn-timeout', 2)
    errs = []
    p = txn_producer(t, 'txn-timeout-%s' % t.name, **{'transaction.timeout.ms': 2000,
                                                      'error_cb': lambda e: errs.append(e.name())})
    p.begin_transaction()
    t0 = time.monotonic()
    produce_all(p, topic, [(q, b'late-%d-%d' % (q, i)) for q in range(2) for i in range(3)])
    assert ends(t, topic, 2) == {0: (3, 0), 1: (3, 0)}
    while ends(t, topic, 2) != {0: (4, 4), 1: (4, 4)} and time.monotonic() - t0 < 10:
        time.sleep(0.1)
    took = time.monotonic() - t0
    assert ends(t, topic, 2) == {0: (4, 4), 1: (4, 4)}, took
    print('aborted by the broker after %.1f s' % took)
    assert took >= 1.5, took
    got = read_all(t, topic, 2, 'read_committed', {0: 4, 1: 4})
    assert got == {0: [], 1: []}, got
    try:
        p.commit_transaction(30)
        result = 'committed'
    except KafkaException as e:
        result = kafka_error(e)
    print('commit after the timeout: %s; error_cb %s' % (result, errs))
    # Kafka 4.3: the coordinator fenced the epoch when it aborted
    assert result == ('_FENCED', True, False, False), (result, errs)
    assert read_all(t, topic, 2, 'read_committed', {0: 4, 1: 4}) == {0: [], 1: []}


def open_transaction_across_restart(t, kill):
    """A transaction (transaction.timeout.ms=2000, 3 records flushed on
    each of 2 partitions) is open when the broker stops (SIGTERM, or
    kill -9); the restarted broker knows it (from __transaction_state and
    the logs): the LSO is still held at 0 (or the abort is already done,
    on a broker slower to restart than the timeout), and the broker aborts
    it once timed out (the abort scan every 500 ms; 30 s allowed):
    never visible read_committed, the LSO at the high watermark, and the
    producer, still alive, is fenced as without the restart."""
    from confluent_kafka import KafkaException
    topic = new_topic(t, 'txn-restart-timeout-%s' % ('kill' if kill else 'clean'), 2)
    p = txn_producer(t, 'txn-restart-timeout-%s-%s' % (kill, t.name), **{'transaction.timeout.ms': 2000})
    p.begin_transaction()
    produce_all(p, topic, [(q, b'open-%d-%d' % (q, i)) for q in range(2) for i in range(3)])
    assert ends(t, topic, 2) == {0: (3, 0), 1: (3, 0)}
    t0 = time.monotonic()
    t.restart(kill=kill)
    restarted = time.monotonic() - t0
    first = None
    deadline = time.monotonic() + float(os.environ.get('SPOOL_TXN_RESTART_WAIT', '30'))
    while True:
        try:
            e = ends(t, topic, 2)
        except (AssertionError, OSError):
            e = None                # not led yet after the restart
        if first is None and e is not None:
            first = e
        if e == {0: (4, 4), 1: (4, 4)} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    took = time.monotonic() - t0
    print('restart %.1f s, first ends %s, aborted after %.1f s' % (restarted, first, took))
    assert e == {0: (4, 4), 1: (4, 4)}, (first, e, took)
    assert first in ({0: (3, 0), 1: (3, 0)}, {0: (4, 4), 1: (4, 4)}), first
    assert read_all(t, topic, 2, 'read_committed', {0: 4, 1: 4}) == {0: [], 1: []}
    try:
        p.commit_transaction(30)
        result = 'committed'
    except KafkaException as ex:
        result = kafka_error(ex)
    assert result == ('_FENCED', True, False, False), result


@RESTARTING
def test_open_transaction_across_clean_restart(target):
    open_transaction_across_restart(target, kill=False)


def test_open_transaction_across_kill9_restart_spool(start_broker):
    """The same across a kill -9, on Spool only: Kafka 4.3 (one combined
    node) leaves that transaction hanging for good.  Restarted after a
    kill -9, its controller first makes the broker's partitions
    leaderless (an unclean shutdown: ISR [1] -> [], ELR [1]); the
    transaction coordinator, loaded meanwhile, aborts the timed-out
    transaction ("Completed rollback of ongoing transaction ... due to
    timeout") but finds no leader for its partitions ("Couldn't find
    leader endpoint for partitions ... these partitions are likely
    deleted") and drops their markers: the LSO stays at 0 (seen in two
    runs of open_transaction_across_restart(kill=True) on Kafka, waiting
    30 s and 120 s)."""
    proxy = ChaosProxy(seed=74)
    try:
        open_transaction_across_restart(SpoolTarget(start_broker, proxy), kill=True)
    finally:
        proxy.close()


EXPIRY_CONF = {'transactional.id.expiration.ms': 2000,
               'transaction.remove.expired.transaction.cleanup.interval.ms': 500}


@pytest.mark.parametrize('which', ['kafka', 'spool'] if LONG else ['spool'])
def test_transactional_id_expiration(which, start_broker, tmp_path):
    """transactional.id.expiration.ms=2000 (the scan every 500 ms), a broker
    of its own (Kafka only with SPOOL_TXN_LONG=1: another start): a
    producer commits, then stays idle until ListTransactions no longer
    shows its id (10 s allowed); its next transaction fails with
    INVALID_PRODUCER_ID_MAPPING (abortable); a new producer with the same
    id gets a new producer id and commits (list: CompleteCommit).  As
    Kafka 4.3 does."""
    import kafka_ref
    from confluent_kafka import KafkaException
    from types import SimpleNamespace  # a target: name, port, bootstrap
    t0 = time.monotonic()
    if which == 'kafka':
        k = kafka_ref.start(tmp_path / 'kafka', overrides=EXPIRY_CONF)
        stop, c = k.stop, SimpleNamespace(name=which, port=k.port, bootstrap=k.bootstrap)
    else:
        b = start_broker(EXPIRY_CONF)
        stop, c = b.kill, SimpleNamespace(name=which, port=b.port, bootstrap=b.bootstrap)
    bootstrap = c.bootstrap
    try:
        def listed():
            # ListTransactions v0 (test_0074 runs kafka-transactions.sh list)
            from kafka_schema import schemas
            S = schemas()
            payload = kw.send_recv(c.port, S.encode_request(66, 0, {'StateFilters': [], 'ProducerIdFilters': []},
                                                             strict=True), timeout=15)
            _, r = S.decode_response(66, 0, payload)
            assert r['ErrorCode'] == NONE, r
            return sorted([x['TransactionalId'], str(x['ProducerId']), x['TransactionState']]
                          for x in r['TransactionStates'])

        def settled():
            # EndTxn answers in PrepareCommit; CompleteCommit once the markers are in
            deadline = time.monotonic() + 10
            while any(x[2] == 'PrepareCommit' for x in listed()) and time.monotonic() < deadline:
                time.sleep(0.05)
            return listed()
        topic = new_topic(c, 'txn-expiry', 1)
        p = txn_producer(c, 'txn-expiry')
        p.begin_transaction()
        produce_all(p, topic, [(0, b'a')])
        p.commit_transaction(30)
        before = settled()
        deadline = time.monotonic() + 10    # 2 s idle, then the next scan
        while listed() and time.monotonic() < deadline:
            time.sleep(0.2)
        after = listed()
        try:
            p.begin_transaction()
            produce_all(p, topic, [(0, b'b')])
            p.commit_transaction(30)
            old = 'committed'
        except KafkaException as e:
            old = kafka_error(e)
        q = txn_producer(c, 'txn-expiry')
        q.begin_transaction()
        produce_all(q, topic, [(0, b'c')])
        q.commit_transaction(30)
        again = settled()
        print('%s: %s / %s / %s / %s' % (which, before, after, old, again))
        assert len(before) == 1 and before[0][0] == 'txn-expiry' and before[0][2] == 'CompleteCommit', before
        assert after == [], after
        assert old == ('INVALID_PRODUCER_ID_MAPPING', False, False, True), old
        assert len(again) == 1 and again[0][2] == 'CompleteCommit' and again[0][1] != before[0][1], again
    finally:
        stop()
        print('test_transactional_id_expiration [%s]: %.1f s' % (which, time.monotonic() - t0))


# ---------------------------------------------------------------- 5. kafkajs


def test_kafkajs_transactions(target, tmp_path):
    """kafkajs 2.2.4 (tests/node/transactions.js): T1 committed (3 per
    partition: offsets 0-2, marker 3), T2 aborted (2: 4-5, marker 6), T3
    committed with sendOffsets for a group (7-8, marker 9).  Its
    read_committed consumer sees T1 and T3, its read_uncommitted one all
    three; the group's offset is 42; admin's topic offsets (kafkajs lists
    them read_committed) are 10."""
    import json
    import newer_clients as nc
    t = target
    modules = nc.setup_node()
    prefix = 'txn-js-%s' % t.name
    make_topic(t, prefix + '-txn', 3)   # the script's PREFIX-txn
    env = dict(os.environ, NODE_PATH=str(modules), KAFKAJS_NO_PARTITIONER_WARNING='1')
    r = subprocess.run(['node', str(nc.NODE_SRC / 'transactions.js'), t.bootstrap, prefix],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, universal_newlines=True,
                       timeout=180, stdin=subprocess.DEVNULL)
    (tmp_path / 'kafkajs.stderr').write_text(r.stderr)
    assert r.returncode == 0, 'kafkajs failed (stderr in %s):\n%s\n%s\n%s' % (
        tmp_path / 'kafkajs.stderr', r.stderr[-6000:], r.stdout[-2000:], t.log_tail())
    out = json.loads(r.stdout.strip().splitlines()[-1])
    print('kafkajs on %s: %.1f s' % (t.name, out['seconds']))
    c1 = {q: ['%d:c1-p%s-%d' % (i, q, i) for i in range(3)] for q in range(3)}
    a2 = {q: ['%d:a2-p%s-%d' % (4 + i, q, i) for i in range(2)] for q in range(3)}
    c3 = {q: ['%d:c3-p%s-%d' % (7 + i, q, i) for i in range(2)] for q in range(3)}
    assert out['read_committed'] == {str(q): c1[q] + c3[q] for q in range(3)}, out
    assert out['read_uncommitted'] == {str(q): c1[q] + a2[q] + c3[q] for q in range(3)}, out
    assert out['group_offsets'] == [[0, 42], [1, -1], [2, -1]], out
    assert out['topic_offsets'] == [[q, 0, 10] for q in range(3)], out
    assert ends(t, prefix + '-txn', 3) == {q: (10, 10) for q in range(3)}
