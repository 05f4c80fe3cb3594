"""A Kafka Streams 4.3.1 application against Spool, side by side with Kafka
4.3.1: a word count (at_least_once; its producers idempotent, the
producer's default) with a repartition topic and a RocksDB
store whose changelog is a compacted topic.  Phase one counts 400 lines;
the application stops, its local state is wiped, and a new instance
restores the store from the changelog and counts 200 more
(tests/java: dev.spool.javatest.WordCount).  Both brokers must give the
same final counts, the expected ones."""
import json

import log_segments


def test_word_count_same_on_spool_and_kafka(java, kafka, start_broker, tmp_path):
    spool = start_broker({'group.initial.rebalance.delay.ms': 0})
    out, proc = java.run(['wordcount'], tmp_path / 'work', spool=spool.bootstrap, kafka=kafka.bootstrap)
    res = {}
    for name in ('spool', 'kafka'):
        line = out.get((name, 'wordcount'))
        assert line is not None, 'no result on %s; stderr:\n%s' % (name, proc.stderr[-6000:])
        assert 'error' not in line, '%s:\n%s\nspool log:\n%s' % (name, line['error'], spool.log_text()[-3000:])
        res[name] = line['result']
    s, k = res['spool'], res['kafka']

    assert s['phase1_state'] == s['phase2_state'] == 'RUNNING'
    assert s['phase1_counts_match'] and s['final_counts_match'] and s['changelog_matches'], s
    assert s['final_counts'] == s['expected_counts']
    assert sum(s['final_counts'].values()) > 2000 and len(s['final_counts']) == 15
    assert s['internal_topics'] == ['j-wordcount-counts-changelog', 'j-wordcount-words-repartition']
    assert s['internal_topic_configs'] == {
        'j-wordcount-counts-changelog': 'partitions=2 cleanup.policy=compact retention.ms=604800000',
        'j-wordcount-words-repartition': 'partitions=2 cleanup.policy=delete retention.ms=-1'}
    assert s['committed_input_total'] == 600 and s['repartition_records_purged']
    assert s == k, 'differs from Kafka:\nspool: %s\nkafka: %s' % (
        json.dumps(s, sort_keys=True), json.dumps(k, sort_keys=True))
    # Streams' producers were idempotent (at_least_once keeps the producer's
    # default): every batch it wrote to Spool (the input lines come from a
    # plain producer of its own too) carries a producer id, epoch 0.
    topics = ['j-wc-lines', 'j-wc-counts', 'j-wordcount-counts-changelog', 'j-wordcount-words-repartition']
    for d in sorted(spool.data_dir.iterdir()):
        name, _, part = d.name.rpartition('-')
        if name in topics:
            for b in log_segments.read_partition_batches(spool.data_dir, name, int(part)):
                assert b.producer_id >= 0 and b.producer_epoch == 0, (d.name, b, b.producer_id)
