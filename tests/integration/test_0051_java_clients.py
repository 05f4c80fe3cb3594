"""Kafka's Java clients (kafka-clients 4.3.1) against Spool, side by side
with Apache Kafka 4.3.1: the producer (idempotent, its default), the
consumer, consumer groups of several members with both assignors, and the
AdminClient (topics, partitions, configs, records, cluster, log dirs,
groups).

One JVM (tests/java: dev.spool.javatest.Main) runs every scenario against
both brokers at once; each scenario reports what it saw as JSON, and each
test checks Spool's report on its own terms and against Kafka's, which must
be equal but for the differences listed here, each with its reason."""
import json

import pytest

import log_segments

SCENARIOS = ['produce_consume', 'group_range', 'group_cooperative', 'admin_topics', 'admin_groups']
# As the Kafka fixture: no wait for more members before a group's first
# rebalance.
SPOOL_OVERRIDES = {'group.initial.rebalance.delay.ms': 0}


@pytest.fixture(scope='module')
def runs(module_broker, kafka, java, tmp_path_factory):
    work = tmp_path_factory.mktemp('java-clients')
    out, proc = java.run(SCENARIOS, work, spool=module_broker.bootstrap, kafka=kafka.bootstrap)
    return out, proc, module_broker


def result(runs, broker, scenario):
    out, proc, spool = runs
    line = out.get((broker, scenario))
    assert line is not None, 'no result for %s on %s (exit %s); stderr:\n%s' % (
        scenario, broker, proc.returncode, proc.stderr[-6000:])
    assert 'error' not in line, '%s on %s failed:\n%s\nspool log:\n%s' % (
        scenario, broker, line['error'], spool.log_text()[-3000:])
    return line['result']


def both(runs, scenario):
    return result(runs, 'spool', scenario), result(runs, 'kafka', scenario)


def same(spool, kafka, what):
    assert spool == kafka, '%s differs from Kafka:\nspool: %s\nkafka: %s' % (
        what, json.dumps(spool, indent=1, sort_keys=True), json.dumps(kafka, indent=1, sort_keys=True))


def test_producer_and_consumer(runs):
    """302 records (every codec, keys and null keys, a null value, headers,
    explicit timestamps, two 300 KB values) land where the producer was told
    and come back byte for byte, also read_committed with 512-byte fetches;
    offsets by time and at the ends."""
    s, k = both(runs, 'produce_consume')
    assert s['sent'] == 302 and s['offsets_contiguous_from_0']
    for c in ('plain', 'read_committed_small_fetches'):
        assert s[c]['consumed'] == 302 and s[c]['mismatches'] == [], s[c]
    assert s['read_committed_small_fetches']['more_than_one_poll']
    offs = s['offsets']
    assert [offs['begin-%d' % p] for p in range(3)] == [0, 0, 0]
    assert sum(offs['end-%d' % p] for p in range(3)) == 302
    assert all(offs['future-%d' % p] is None for p in range(3)), offs
    same(s, k, 'produce_consume')
    # The producers were idempotent (their default): on Spool's disk every
    # batch carries a producer id, one per producer (one per codec), and
    # each producer's sequences in a partition follow on from 0.
    seqs = {}
    for p in range(3):
        for b in log_segments.read_partition_batches(runs[2].data_dir, 'j-pc', p):
            assert b.producer_id >= 0 and b.producer_epoch == 0, (p, b)
            assert b.base_sequence == seqs.get((b.producer_id, p), 0), (p, b, seqs)
            seqs[(b.producer_id, p)] = b.base_sequence + b.record_count
    assert len({pid for pid, _ in seqs}) == 5, seqs
    assert sum(seqs.values()) == 302, seqs


@pytest.mark.parametrize('assignor', ['range', 'cooperative'])
def test_consumer_group_rebalances(runs, assignor):
    """Three members split six partitions 2/2/2, one leaves and the rest
    split them 3/3; 750 records consumed once each; the committed offsets
    reach the log end; describe while Stable and once Empty."""
    s, k = both(runs, 'group_' + assignor)
    for step in ('one_member_takes_all', 'three_members_2_2_2', 'consumed_600', 'committed_600',
                 'after_leave_3_3', 'consumed_750', 'committed_750'):
        assert s[step] is True, (step, s)
    assert s['distinct_consumed'] == 750 and s['duplicates'] == 0 and s['member_failures'] == []
    d = s['describe_three']
    assert d['state'] == 'Stable' and d['type'] == 'Classic' and d['partitions_covered'] == 6, d
    assert d['assignor'] == ('range' if assignor == 'range' else 'cooperative-sticky'), d
    assert d['members'] == ['m%d host=/127.0.0.1 partitions=2' % i for i in (1, 2, 3)], d
    assert s['describe_empty']['state'] == 'Empty' and s['describe_empty']['members'] == []
    same(s, k, 'group_' + assignor)


# Topic keys Kafka 4.3 describes that Spool does not have: tiered storage,
# replication throttles (there is no replication), preallocate.
KAFKA_ONLY_TOPIC_KEYS = {
    'follower.replication.throttled.replicas', 'leader.replication.throttled.replicas',
    'local.retention.bytes', 'local.retention.ms', 'preallocate', 'remote.log.copy.disable',
    'remote.log.delete.on.disable', 'remote.storage.enable'}


def test_admin_topics_partitions_configs_records_cluster(runs):
    s, k = both(runs, 'admin_topics')
    assert s['describe_cluster'] == {'nodes': 1, 'node_host': '127.0.0.1', 'controller_is_the_node': True,
                                     'cluster_id_length': 22}
    assert (s['create'], s['create_again'], s['create_bad_name'], s['create_zero_partitions'],
            s['create_replication_3'], s['create_bad_config'], s['create_validate_only']) == \
        ('ok', 'TopicExistsException', 'InvalidTopicException', 'InvalidPartitionsException',
         'InvalidReplicationFactorException', 'InvalidConfigurationException', 'ok')
    assert s['list'] == ['j-adm-a', 'j-adm-b']          # not the validate-only one
    assert s['describe_a_after']['partitions'] == ['%d leader=1 replicas=1 isr=1' % p for p in range(4)]
    assert (s['create_partitions_4'], s['create_partitions_3'], s['create_partitions_missing']) == \
        ('ok', 'InvalidPartitionsException', 'UnknownTopicOrPartitionException')
    assert s['configs_a']['retention.ms'] == '3600000 DYNAMIC_TOPIC_CONFIG'
    assert s['configs_a_altered']['retention.ms'] == '7200000 DYNAMIC_TOPIC_CONFIG'
    assert s['configs_a_altered']['max.message.bytes'] == '1048588 DEFAULT_CONFIG'   # DELETE
    assert s['configs_a_altered']['cleanup.policy'] == 'delete,compact DYNAMIC_TOPIC_CONFIG'  # APPEND
    assert s['cleanup_policy_after_subtract'] == 'delete DYNAMIC_TOPIC_CONFIG'
    assert (s['incremental_bad_value'], s['incremental_unknown_key'], s['incremental_missing_topic']) == \
        ('InvalidConfigurationException', 'InvalidConfigurationException', 'UnknownTopicOrPartitionException')
    assert s['delete_records_40'] == 40 and s['delete_records_to_hw'] == 100
    assert s['delete_records_past_end'] == 'OffsetOutOfRangeException'
    assert s['list_offsets_after_delete'] == {'earliest': 40, 'latest': 100, 'max_timestamp': 70,
                                              'for_timestamp_of_record_50': 50}
    assert s['first_offset_read_after_delete'] == 40
    ld = s['describe_log_dirs']
    assert ld['dirs'] == 1 and ld['error'] == 'none' and ld['total_bytes_known'] and ld['usable_bytes_known']
    assert ld['partitions'] == dict({'j-adm-a-%d' % p: 'empty lag=0' for p in range(4)},
                                    **{'j-adm-b-0': 'data lag=0'})
    assert (s['delete_topics'], s['delete_topics_again'], s['list_after_delete']) == \
        ('ok', 'UnknownTopicOrPartitionException', [])

    # Known differences from Kafka, asserted exactly so that a change shows:
    # (1) the keys above; (2) retention.ms's synonyms: Spool's
    # log.retention.ms has a default (604800000) where Kafka's is null
    # beside log.retention.hours=168, a key Spool does not have, so Spool
    # lists log.retention.ms:DEFAULT_CONFIG and Kafka nothing.
    s_names, k_names = set(s['configs_a'].pop('all_names')), set(k['configs_a'].pop('all_names'))
    assert k_names - s_names == KAFKA_ONLY_TOPIC_KEYS and s_names <= k_names
    for c in ('configs_a', 'configs_a_altered'):
        assert s[c]['synonyms'].pop('retention.ms') == 'retention.ms:DYNAMIC_TOPIC_CONFIG,log.retention.ms:DEFAULT_CONFIG'
        assert k[c]['synonyms'].pop('retention.ms') == 'retention.ms:DYNAMIC_TOPIC_CONFIG'
    same(s, k, 'admin_topics')


def test_admin_consumer_groups(runs):
    s, k = both(runs, 'admin_groups')
    assert s['consumed'] == 20
    assert s['list_active'] == ['listConsumerGroups Stable Classic simple=false',
                                'listGroups Stable Classic protocol=consumer']
    assert s['describe_active']['members'] == ['admg-consumer host=/127.0.0.1 partitions=2']
    assert s['delete_active_group'] == 'GroupNotEmptyException'
    assert s['list_empty'][1] == 'listGroups Empty Classic protocol=consumer'
    assert s['describe_empty']['state'] == 'Empty'
    offs = s['offsets']
    assert sorted(offs) == ['j-admg-0', 'j-admg-1'] and offs['j-admg-0'].endswith("'meta-0' epoch=none"), offs
    assert sum(int(v.split()[0]) for v in offs.values()) == 20
    assert s['offsets_altered']['j-admg-0'] == "1 'rewound' epoch=none"
    assert s['delete_offsets'] == 'ok' and sorted(s['offsets_after_delete']) == ['j-admg-0']
    assert s['describe_missing'] == 'GroupIdNotFoundException'
    assert s['offsets_missing_group'] == {}
    assert (s['delete_group'], s['list_after_delete'], s['delete_group_again']) == \
        ('ok', ['absent', 'absent'], 'GroupIdNotFoundException')
    same(s, k, 'admin_groups')
