"""Transactions (issue 13, TV1) through the Java ecosystem, on Spool and on
Apache Kafka 4.3.1 side by side (the session's `kafka`), the same results
asserted on both:

- kafka-clients 4.3.1's transactional producer (tests/java:
  Transactions.java, scenario txn_producer): commit, abort, a
  consume-transform-produce step with sendOffsetsToTransaction, the end
  offsets and LSO with a transaction open, read_committed and
  read_uncommitted, and a zombie fenced by a second producer.
- Kafka Streams 4.3.1 with processing.guarantee=exactly_once_v2: the word
  count of test_0053 (WordCount.java, scenario wordcount_eos), whose
  output, read read_committed, holds each count once.
- Kafka's transactions tool (org.apache.kafka.tools.TransactionsCommand,
  kafka-transactions.sh) list, describe and describe-producers while a
  confluent-kafka producer holds a transaction open, then abort of one
  partition's part (WriteTxnMarkers from the tool); with SPOOL_TXN_LONG=1
  also list's filters (--duration-filter, --transactional-id-pattern)
  and find-hanging.

The Java build shares .cache/java-4.3.1 with other checkouts unless
SPOOL_JAVA_CACHE names a directory of this one's (with `libs` linked to
the shared jars): see tests/java/java_side.py.  Each test prints how long
it took.
"""
import os
import re
import time

import pytest

from client_helpers import create_topic

SPOOL_OVERRIDES = {'group.initial.rebalance.delay.ms': 0}
LONG = os.environ.get('SPOOL_TXN_LONG') == '1'   # the tool's filters and find-hanging too


@pytest.fixture
def timed(request):
    t0 = time.monotonic()
    yield
    print('\n%s: %.1f s' % (request.node.name, time.monotonic() - t0))


def both(java, tmp_path, scenario, spool, kafka):
    out, proc = java.run([scenario], tmp_path / 'work', spool=spool.bootstrap, kafka=kafka.bootstrap)
    res = {}
    for name in ('spool', 'kafka'):
        line = out.get((name, scenario))
        assert line is not None, 'no result on %s; stderr:\n%s' % (name, proc.stderr[-6000:])
        assert 'error' not in line, '%s on %s:\n%s\nspool log:\n%s' % (
            scenario, name, line['error'], spool.log_text()[-3000:])
        print('%s on %s: %d ms' % (scenario, name, line['ms']))
        res[name] = line['result']
    return res['spool'], res['kafka']


def test_java_transactional_producer(java, kafka, start_broker, tmp_path, timed):
    """Offsets on OUT (3 partitions): T1 4 records each (0-3, marker 4),
    T2 3 each aborted (5-7, marker 8), T3 the 10 transformed input records
    on partition 0 (9-18, marker 19) with the group's offset, T4 2 on
    partition 1 (9-10) open: high watermarks 20/11/9, LSO 20/9/9; after
    T4's commit 20/12/9 both ways.  The zombie: its second send and commit
    fail (InvalidProducerEpochException), the fencer's record is at 11 of
    partition 2 after the zombie's aborted one (9) and the abort marker
    (10).  Kafka 4.3's answers, written down here; Spool's must be equal."""
    spool = start_broker(SPOOL_OVERRIDES)
    s, k = both(java, tmp_path, 'txn_producer', spool, kafka)
    assert k['input_read'] == 10, k
    assert k['open_end_offsets'] == {'0': 20, '1': 11, '2': 9}, k
    assert k['open_lso'] == {'0': 20, '1': 9, '2': 9}, k
    assert k['end_offsets'] == k['lso'] == {'0': 20, '1': 12, '2': 9}, k
    c1 = {q: ['%d:c1-p%d-%d' % (i, q, i) for i in range(4)] for q in range(3)}
    assert k['read_committed'] == {
        '0': c1[0] + ['%d:x:in-%d' % (9 + i, i) for i in range(10)],
        '1': c1[1] + ['9:o4-p1-0', '10:o4-p1-1'],
        '2': c1[2]}, k
    a2 = {q: ['%d:a2-p%d-%d' % (5 + i, q, i) for i in range(3)] for q in range(3)}
    assert k['read_uncommitted'] == {
        '0': c1[0] + a2[0] + ['%d:x:in-%d' % (9 + i, i) for i in range(10)],
        '1': c1[1] + a2[1] + ['9:o4-p1-0', '10:o4-p1-1'],
        '2': c1[2] + a2[2]}, k
    assert k['group_offsets'] == {'j-txn-in-0': 10}, k
    # Kafka 4.3: the zombie's send fails with INVALID_PRODUCER_EPOCH, which
    # its commit throws (not ProducerFencedException)
    assert k['zombie_commit'] == 'InvalidProducerEpochException', k
    assert k['after_zombie_partition2'] == c1[2] + ['11:fencer-1'], k
    assert s == k, 'differs from Kafka:\nspool: %s\nkafka: %s' % (s, k)


def test_streams_word_count_exactly_once(java, kafka, start_broker, tmp_path, timed):
    """test_0053's word count with processing.guarantee=exactly_once_v2:
    the same counts, and each key's counts in the output (read_committed)
    are 1, 2, ... its final count, each once."""
    spool = start_broker(SPOOL_OVERRIDES)
    s, k = both(java, tmp_path, 'wordcount_eos', spool, kafka)
    for name, r in (('kafka', k), ('spool', s)):
        assert r['phase1_state'] == r['phase2_state'] == 'RUNNING', (name, r)
        assert r['phase1_counts_match'] and r['final_counts_match'] and r['changelog_matches'], (name, r)
        assert r['final_counts'] == r['expected_counts'], (name, r)
        assert r['output_counts_each_once'] == [], (name, r)
        assert r['committed_input_total'] == 600, (name, r)
        assert r['internal_topics'] == ['j-eos-wordcount-counts-changelog',
                                        'j-eos-wordcount-words-repartition'], (name, r)
    assert s == k, 'differs from Kafka:\nspool: %s\nkafka: %s' % (s, k)


# ---------------------------------------------------------------- kafka-transactions.sh

TOOL = 'org.apache.kafka.tools.TransactionsCommand'


def run_tool(bootstrap, *args):
    import kafka_ref
    r = kafka_ref.tool(TOOL, '--bootstrap-server', bootstrap, *args, timeout=120)
    assert r.returncode == 0, (args, r.stdout, r.stderr[-3000:])
    return r.stdout


def table(text):
    """A tool's table: [header columns] + [row cells], split on runs of
    two or more spaces or tabs."""
    rows = [re.split(r'\s{2,}|\t', ln.strip()) for ln in text.splitlines() if ln.strip()]
    return rows


def tool_view(bootstrap, topic, txid):
    """list, describe and describe-producers as tables."""
    lst = table(run_tool(bootstrap, 'list'))
    desc = table(run_tool(bootstrap, 'describe', '--transactional-id', txid))
    prods = table(run_tool(bootstrap, 'describe-producers', '--topic', topic, '--partition', '0'))
    # ListTransactions' filters (v1 duration, v2 pattern): only this
    # test's transactional ids are looked at (other tests leave theirs)
    if not LONG:
        return {'list': lst, 'describe': desc, 'producers': prods}
    filt = {}
    for name, args in (('pattern', ['--transactional-id-pattern', 'txn-tool-id-.*']),
                       ('pattern_none', ['--transactional-id-pattern', 'no-such-id-.*']),
                       ('longer_than_1ms', ['--duration-filter', '1']),
                       ('longer_than_1h', ['--duration-filter', '3600000'])):
        rows = table(run_tool(bootstrap, 'list', *args))
        filt[name] = [rows[0]] + [[r[0].replace(txid, 'TXID'), r[3]] for r in rows[1:] if r[0] == txid]
    hanging = table(run_tool(bootstrap, 'find-hanging', '--broker-id', '1'))
    return {'list': lst, 'describe': desc, 'producers': prods, 'filters': filt, 'hanging': hanging}


def lso_after(bootstrap, topic, want, timeout=10):
    """{partition: (high watermark, LSO)} of a 2-partition topic once it
    equals want (markers are written after the answer), or at timeout."""
    from confluent_kafka import Consumer, TopicPartition
    cs = {iso: Consumer({'bootstrap.servers': bootstrap, 'group.id': 'txn-tool-check',
                         'isolation.level': iso}) for iso in ('read_uncommitted', 'read_committed')}
    try:
        deadline = time.monotonic() + timeout
        while True:
            got = {q: (cs['read_uncommitted'].get_watermark_offsets(TopicPartition(topic, q), timeout=10)[1],
                       cs['read_committed'].get_watermark_offsets(TopicPartition(topic, q), timeout=10)[1])
                   for q in (0, 1)}
            if got == want or time.monotonic() > deadline:
                return got
            time.sleep(0.1)
    finally:
        for c in cs.values():
            c.close()


def normalise(v, txid):
    """Values that differ between brokers by nature (producer ids, times,
    the coordinator's id) replaced by their kind."""
    def cell(c):
        if re.fullmatch(r'-?\d+', c):
            return '<n>'
        return c
    out = {}
    for k, rows in v.items():
        out[k] = [rows[0]] + [[cell(c) for c in r] for r in rows[1:]]
    return out


def test_transactions_tool(kafka, start_broker, timed):
    """A confluent-kafka producer holds a transaction open on partitions 0
    and 1 of a topic (3 records on 0, 2 on 1, flushed).  The tool's list
    shows it Ongoing, describe names both partitions and the timeout,
    describe-producers shows the producer on partition 0 with its last
    sequence 2 and the open transaction's first offset 0."""
    from confluent_kafka import Producer
    spool = start_broker(SPOOL_OVERRIDES)
    views = {}

    def one(name, bootstrap):
        topic, txid = 'txn-tool-%s' % name, 'txn-tool-id-%s' % name
        create_topic(bootstrap, topic, 2)
        p = Producer({'bootstrap.servers': bootstrap, 'transactional.id': txid,
                      'transaction.timeout.ms': 60000})
        p.init_transactions(60)
        p.begin_transaction()
        for part, n in ((0, 3), (1, 2)):
            for i in range(n):
                p.produce(topic, value=b'open-%d' % i, partition=part)
        assert p.flush(30) == 0
        t0 = time.monotonic()
        view = tool_view(bootstrap, topic, txid)
        # abort the transaction's part on partition 0 behind the
        # coordinator's back (the tool sends WriteTxnMarkers itself): the
        # LSO of partition 0 moves past it (a marker at 3), partition 1
        # stays held at 0
        out = run_tool(bootstrap, 'abort', '--topic', topic, '--partition', '0', '--start-offset', '0')
        ends = lso_after(bootstrap, topic, want={0: (4, 4), 1: (2, 0)})
        after = table(run_tool(bootstrap, 'describe-producers', '--topic', topic, '--partition', '0'))
        view['abort'] = (out.strip(), ends, after)
        print('tool on %s: %.1f s' % (name, time.monotonic() - t0))
        p.abort_transaction(30)
        view['end'] = lso_after(bootstrap, topic, want={0: (5, 5), 1: (3, 3)})
        views[name] = (view, topic, txid)

    # the two brokers at once (each tool run is a JVM of its own)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as ex:
        for f in [ex.submit(one, 'kafka', kafka.bootstrap), ex.submit(one, 'spool', spool.bootstrap)]:
            f.result()
    for name, (v, topic, txid) in views.items():
        print(name, v)
    k, ktopic, ktxid = views['kafka']
    s, stopic, stxid = views['spool']
    # Kafka 4.3's answers, written down
    assert k['list'][0] == ['TransactionalId', 'Coordinator', 'ProducerId', 'TransactionState'], k
    assert [r[0] for r in k['list'][1:]].count(ktxid) == 1, k
    krow = [r for r in k['list'][1:] if r[0] == ktxid][0]
    assert krow[3] == 'Ongoing', krow
    assert k['describe'][0] == ['CoordinatorId', 'TransactionalId', 'ProducerId', 'ProducerEpoch',
                                'TransactionState', 'TransactionTimeoutMs', 'CurrentTransactionStartTimeMs',
                                'TransactionDurationMs', 'TopicPartitions'], k
    d = k['describe'][1]
    assert d[1] == ktxid and d[4] == 'Ongoing' and d[5] == '60000', d
    assert sorted(d[8].split(',')) == ['%s-0' % ktopic, '%s-1' % ktopic], d
    assert k['producers'][0] == ['ProducerId', 'ProducerEpoch', 'LatestCoordinatorEpoch', 'LastSequence',
                                 'LastTimestamp', 'CurrentTransactionStartOffset'], k
    assert len(k['producers']) == 2 and k['producers'][1][3] == '2' and k['producers'][1][5] == '0', k

    # Spool: the same, its own names
    srow = [r for r in s['list'][1:] if r[0] == stxid]
    assert s['list'][0] == k['list'][0] and len(srow) == 1 and srow[0][3] == 'Ongoing', s
    sd = s['describe']
    assert sd[0] == k['describe'][0] and sd[1][1] == stxid and sd[1][4:6] == ['Ongoing', '60000'], s
    assert sorted(sd[1][8].split(',')) == ['%s-0' % stopic, '%s-1' % stopic], s
    assert s['producers'][0] == k['producers'][0] and len(s['producers']) == 2, s
    assert s['producers'][1][3] == '2' and s['producers'][1][5] == '0', s
    # list's filters and find-hanging (SPOOL_TXN_LONG=1): the same on both
    assert not LONG or k['filters'] == {
        'pattern': [k['list'][0], ['TXID', 'Ongoing']],
        'pattern_none': [k['list'][0]],
        'longer_than_1ms': [k['list'][0], ['TXID', 'Ongoing']],
        'longer_than_1h': [k['list'][0]]}, k['filters']
    assert s.get('filters') == k.get('filters'), (s.get('filters'), k.get('filters'))
    assert s.get('hanging') == k.get('hanging'), (s.get('hanging'), k.get('hanging'))
    # the tool's abort of partition 0: the same on both
    assert k['abort'][1] == {0: (4, 4), 1: (2, 0)}, k['abort']
    assert k['end'] == {0: (5, 5), 1: (3, 3)}, k
    assert s['abort'][:2] == k['abort'][:2] and s['end'] == k['end'], (s, k)
    assert [[re.sub(r'\d+', 'N', c) for c in r] for r in s['abort'][2]] == \
        [[re.sub(r'\d+', 'N', c) for c in r] for r in k['abort'][2]], (s['abort'], k['abort'])
    # describe's shape, numbers aside (ids, epochs, times)
    assert normalise({'d': sd}, stxid)['d'][1][:1] == normalise({'d': k['describe']}, ktxid)['d'][1][:1]
    assert [re.sub(r'\d+', 'N', c) for c in s['producers'][1]] == \
        [re.sub(r'\d+', 'N', c) for c in k['producers'][1]], (s['producers'], k['producers'])
