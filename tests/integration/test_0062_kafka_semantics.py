"""Answers where Spool differed from Kafka 4.3, found by the differential
tests (test_0061) and fixed: each test pins Kafka's answer on Spool alone,
so it runs without the Kafka reference."""
import kafka_wire as kw
from diff_corpus import batch, corrupt, fetch_body, list_offsets_body, produce_body
from kafka_diff import Target


def _target(broker):
    return Target('spool', broker.port)


def _create(t, topics, configs=None):
    from kafka_diff import Runner
    Runner(t.port, t.port).create_topics(t, topics, configs)


def call(t, api, v, body, **kw_):
    """One request (a diff_corpus template: '{id:x}' is topic x's id) -> the answer."""
    o = t.call(api, v, t.fill(body), **kw_)
    assert o.kind == 'response', o
    return o.body


def test_fetch_aborted_transactions_null_unless_read_committed(broker):
    """Kafka lists aborted transactions to read_committed fetches only: null
    for read_uncommitted (it was an empty list)."""
    t = _target(broker)
    _create(t, {'ab': 1})
    call(t, 0, 9, produce_body([('ab', 0, batch(2))]))
    for v in (4, 11, 12, 13, 17):
        for iso, want in ((0, None), (1, [])):
            p = call(t, 1, v, fetch_body([('ab', 0, 0)], isolation=iso))['Responses'][0]['Partitions'][0]
            assert p['ErrorCode'] == 0 and p['AbortedTransactions'] == want, (v, iso, p)


def test_fetch_offset_out_of_range_carries_no_offsets(broker):
    """A partition answered OFFSET_OUT_OF_RANGE has high watermark, last
    stable offset and log start offset -1, as Kafka's failed LogReadResult
    (Spool gave the partition's real offsets), below the log start after
    DeleteRecords too."""
    t = _target(broker)
    _create(t, {'oor': 1})
    call(t, 0, 9, produce_body([('oor', 0, batch(4))]))
    call(t, 21, 2, {'Topics': [{'Name': 'oor', 'Partitions': [{'PartitionIndex': 0, 'Offset': 2}]}],
                    'TimeoutMs': 5000})
    for v in (4, 5, 11, 12, 17):
        for off in (9, -3, 0):
            p = call(t, 1, v, fetch_body([('oor', 0, off)]))['Responses'][0]['Partitions'][0]
            assert p['ErrorCode'] == 1, (v, off, p)
            assert (p['HighWatermark'], p.get('LastStableOffset', -1), p.get('LogStartOffset', -1)) == (-1, -1, -1), p
        p = call(t, 1, v, fetch_body([('oor', 0, 2)]))['Responses'][0]['Partitions'][0]
        assert p['ErrorCode'] == 0 and p['HighWatermark'] == 4, p
