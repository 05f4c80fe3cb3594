"""Compaction of transactional data (Kafka's rules, log/cleaner.c):

- a compacted topic written by committed and aborted transactions: once
  cleaned, the aborted records are gone from the log (a read_uncommitted
  consumer no longer sees them), every key's latest committed value stays
  at its offset, and the transaction markers go too once their
  transaction's data is gone and delete.retention.ms has passed;
- the idempotent/transactional producer goes on after its batches were
  cleaned away (its last batch stays);
- offsets committed inside transactions (TxnOffsetCommit) into a
  __consumer_offsets with small segments: after many transactions, some
  aborted, it is compacted, and after a restart the group's offsets are
  those of the last committed transaction.

confluent-kafka (librdkafka) is the client; the data on disk is read with
log_segments.py."""
import time

import log_segments
from client_helpers import consumer, create_topic

CONF = {'log.cleaner.backoff.ms': 100, 'log.cleaner.min.cleanable.ratio': '0.01',
        'offsets.topic.segment.bytes': 4096, 'offsets.topic.num.partitions': 1,
        'transaction.state.log.num.partitions': 1, 'group.initial.rebalance.delay.ms': 0}


def txn_producer(bootstrap, tid, **kw):
    from confluent_kafka import Producer
    conf = {'bootstrap.servers': bootstrap, 'transactional.id': tid, 'linger.ms': 0}
    conf.update(kw)
    p = Producer(conf)
    p.init_transactions(30)
    return p


def read_all(bootstrap, topic, isolation, timeout=30):
    """Every record of partition 0 from offset 0, until the consumer
    reports the end of the partition."""
    from confluent_kafka import KafkaError, TopicPartition
    c = consumer(bootstrap, **{'isolation.level': isolation, 'group.id': 'ctxn-read'})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise AssertionError(m.error())
            out.append(m)
        raise AssertionError('no end of partition after %ss' % timeout)
    finally:
        c.close()


def control_batches(data_dir, topic):
    return [b for b in log_segments.read_partition_batches(data_dir, topic, 0) if b.attributes & 0x20]


def wait_for(what, fn, timeout=60):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last is True:
            return
        time.sleep(0.2)
    raise AssertionError('%s: not after %ss (last: %r)' % (what, timeout, last))


def test_aborted_records_and_markers_cleaned(start_broker):
    b = start_broker(CONF)
    topic = 'ctxn'
    create_topic(b.bootstrap, topic, 1, {'cleanup.policy': 'compact', 'segment.bytes': '2048',
                                         'delete.retention.ms': '1000',
                                         'min.cleanable.dirty.ratio': '0.01'})
    p = txn_producer(b.bootstrap, 'ctxn-1')
    offsets = {}

    abort_markers, commit_markers = [], []

    def txn(value, keys, commit):
        last = []
        p.begin_transaction()
        for k in keys:
            def cb(err, msg, k=k):
                assert err is None, err
                last.append(msg.offset())
                if commit:
                    offsets[k] = (msg.offset(), value)
            p.produce(topic, key=b'k%03d' % k, value=value, partition=0, on_delivery=cb)
        p.flush(30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
        # one producer, one partition: the marker follows the records
        (commit_markers if commit else abort_markers).append(max(last) + 1)

    txn(b'c1', range(100), True)
    txn(b'a2', range(100), False)
    txn(b'c3', range(50), True)
    txn(b'a4', range(50, 100), False)
    # other keys roll the segments past the transactions (and keep the
    # producer's last batch in the active segment)
    txn(b'f', range(100, 300), True)
    before = len(control_batches(b.data_dir, topic))
    assert before >= 4  # the last marker may still be on its way

    def only_committed():
        msgs = read_all(b.bootstrap, topic, 'read_uncommitted')
        vals = {}
        for m in msgs:
            k = int(m.key()[1:])
            if k < 100:
                if m.value() in (b'a2', b'a4'):
                    return 'aborted record at %d still read' % m.offset()
                vals.setdefault(k, []).append((m.offset(), m.value()))
        want = {k: [offsets[k]] for k in range(100)}
        return True if vals == want else 'not yet: %d keys, e.g. %r' % (len(vals), list(vals.items())[:2])

    wait_for('aborted records removed, one committed value per key', only_committed)
    # the ABORT markers go once their transactions' data is gone and the
    # delete horizon (delete.retention.ms = 1 s) has passed, without more
    # writes (a passed horizon makes the log cleanable); COMMIT markers stay
    # while their transaction's records do (Kafka's rule)
    def markers_gone():
        at = {x.base_offset for x in control_batches(b.data_dir, topic)}
        left = at & set(abort_markers)
        return True if not left else 'ABORT markers at %s still there' % sorted(left)

    wait_for('ABORT markers cleaned', markers_gone, timeout=60)
    at = {x.base_offset for x in control_batches(b.data_dir, topic)}
    assert set(commit_markers) <= at, (commit_markers, at)
    # the same producer goes on: its state survived the cleaning
    txn(b'c5', range(10), True)
    msgs = read_all(b.bootstrap, topic, 'read_committed')
    latest = {}
    for m in msgs:
        latest[m.key()] = m.value()
    assert all(latest[b'k%03d' % k] == b'c5' for k in range(10))
    assert all(latest[b'k%03d' % k] == b'c3' for k in range(10, 50))
    assert all(latest[b'k%03d' % k] == b'c1' for k in range(50, 100))
    assert 'cleaned' in b.log_text()


def test_transactional_offsets_compacted(start_broker):
    """200 transactions each commit the group's offset
    (send_offsets_to_transaction, TxnOffsetCommit); every fourth is
    aborted.  __consumer_offsets (4 KiB segments) is cleaned meanwhile;
    after a restart the group's offset is the last committed one."""
    from confluent_kafka import Consumer, TopicPartition
    b = start_broker(CONF)
    create_topic(b.bootstrap, 'ctxn-out', 1)
    create_topic(b.bootstrap, 'ctxn-in', 1)
    p = txn_producer(b.bootstrap, 'ctxn-offsets')
    group = 'ctxn-group'
    c = Consumer({'bootstrap.servers': b.bootstrap, 'group.id': group})
    gm = c.consumer_group_metadata()
    last_committed = None
    for i in range(200):
        p.begin_transaction()
        p.produce('ctxn-out', key=b'x', value=b'%d' % i, partition=0)
        p.send_offsets_to_transaction([TopicPartition('ctxn-in', 0, 1000 + i)], gm, 30)
        if i % 4 == 3:
            p.abort_transaction(30)
        else:
            p.commit_transaction(30)
            last_committed = 1000 + i
    c.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = b.log_text()
        if '__consumer_offsets-0: cleaned' in text:
            break
        time.sleep(0.2)
    assert '__consumer_offsets-0: cleaned' in text, text[-3000:]
    # on disk: fewer batches than the 200 commits and their markers
    batches = log_segments.read_partition_batches(b.data_dir, '__consumer_offsets', 0)
    print("__consumer_offsets-0: %d batches on disk after 200 transactions" % len(batches))
    assert len(batches) < 300, len(batches)
    assert b.stop() == 0
    b = start_broker(CONF, data_dir=b.data_dir)
    c = Consumer({'bootstrap.servers': b.bootstrap, 'group.id': group})
    try:
        got = c.committed([TopicPartition('ctxn-in', 0)], timeout=30)
    finally:
        c.close()
    assert [(tp.topic, tp.partition, tp.offset) for tp in got] == [('ctxn-in', 0, last_committed)]
