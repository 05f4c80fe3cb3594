"""Apache Kafka 4.3.1's own command-line tools against Spool, each run as
its bin/ script runs it (tests/kafka/kafka_ref.py tool: the main class on
the fetched classpath, normal arguments):

    kafka-topics.sh           org.apache.kafka.tools.TopicCommand
    kafka-console-producer.sh org.apache.kafka.tools.ConsoleProducer
    kafka-console-consumer.sh org.apache.kafka.tools.consumer.ConsoleConsumer
    kafka-consumer-groups.sh  org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
    kafka-configs.sh          kafka.admin.ConfigCommand
    kafka-get-offsets.sh      org.apache.kafka.tools.GetOffsetShell
    kafka-delete-records.sh   org.apache.kafka.tools.DeleteRecordsCommand

The expected output is Kafka 4.3.1's own for the same commands (a Kafka
broker printed the same but where this file says otherwise, and why).

The console producer runs with the producer's defaults, so idempotence
is on: it asks InitProducerId first and its batches carry a producer id
and sequences (checked on disk).
"""
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

import kafka_ref
import log_segments
from client_helpers import create_topic, produce, producer

TOPICS = 'org.apache.kafka.tools.TopicCommand'
PRODUCER = 'org.apache.kafka.tools.ConsoleProducer'
CONSUMER = 'org.apache.kafka.tools.consumer.ConsoleConsumer'
GROUPS = 'org.apache.kafka.tools.consumer.group.ConsumerGroupCommand'
CONFIGS = 'kafka.admin.ConfigCommand'
GET_OFFSETS = 'org.apache.kafka.tools.GetOffsetShell'
DELETE_RECORDS = 'org.apache.kafka.tools.DeleteRecordsCommand'

# Short-lived JVMs: C1 only and the serial collector start faster.
ENV = dict(os.environ, JAVA_TOOL_OPTIONS='-XX:TieredStopAtLevel=1 -XX:+UseSerialGC')


def tool(broker, main_class, *args, input=None, rc=0):
    """Runs one tool with --bootstrap-server; returns (stdout, stderr)
    after checking its exit code."""
    p = kafka_ref.tool(main_class, '--bootstrap-server', broker.bootstrap, *args, input=input, env=ENV,
                       timeout=90)
    err = '\n'.join(l for l in p.stderr.splitlines() if not l.startswith('Picked up JAVA_TOOL_OPTIONS'))
    assert p.returncode == rc, '%s %s: exit %d\nstdout:\n%s\nstderr:\n%s\nspool log:\n%s' % (
        main_class, ' '.join(args), p.returncode, p.stdout, err, broker.log_text()[-2000:])
    return p.stdout, err


def tools(broker, *calls):
    """Runs independent tool calls ((main_class, args...) or
    (main_class, args..., {'rc': n})) at once, as JVM starts are most of
    the time; returns their (stdout, stderr) in order."""
    def one(call):
        kw = call[-1] if isinstance(call[-1], dict) else {}
        args = call[:-1] if kw else call
        return tool(broker, *args, **kw)
    with ThreadPoolExecutor(len(calls)) as ex:
        return list(ex.map(one, calls))


def rows(text, ncols):
    """The table rows of a kafka-consumer-groups answer, split on blanks."""
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) == ncols and f[0] != 'GROUP':
            out.append(f)
    return out


def test_kafka_topics(broker):
    t = 'tool-topic'
    out, _ = tool(broker, TOPICS, '--create', '--topic', t, '--partitions', '3', '--config', 'retention.ms=3600000')
    assert out == 'Created topic %s.\n' % t
    (out, err), (out2, _) = tools(broker, (TOPICS, '--create', '--topic', t, '--partitions', '3', {'rc': 1}),
                                  (TOPICS, '--alter', '--topic', t, '--partitions', '4'))
    assert "Error while executing topic command : Topic '%s' already exists." % t in out + err
    assert out2 == ''
    out, _ = tool(broker, TOPICS, '--describe', '--topic', t)
    # (Kafka also lists min.insync.replicas=1 in Configs: its KRaft format
    # sets it as a cluster-wide dynamic default.)  Elr and LastKnownElr come
    # from DescribeTopicPartitions: empty, not "N/A" as from Metadata.
    assert re.sub(r'TopicId: \S+', 'TopicId: ID', out) == (
        'Topic: %s\tTopicId: ID\tPartitionCount: 4\tReplicationFactor: 1\tConfigs: retention.ms=3600000\n' % t
        + ''.join('\tTopic: %s\tPartition: %d\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: \tLastKnownElr: \n'
                  % (t, p) for p in range(4)))
    out, _ = tool(broker, TOPICS, '--delete', '--topic', t)
    assert out == ''
    out, _ = tool(broker, TOPICS, '--list')
    assert t not in out.split()


def test_console_producer_consumer_and_consumer_groups(broker):
    t, g = 'tool-console', 'tool-group'
    create_topic(broker.bootstrap, t, 3)
    lines = ['k%d:v%d' % (i % 5, i) for i in range(20)]
    out, err = tool(broker, PRODUCER, '--topic', t,
                    '--reader-property', 'parse.key=true', '--reader-property', 'key.separator=:',
                    input='\n'.join(lines) + '\n')
    assert out == '' and 'ERROR' not in err, err

    fmt = ['--formatter-property', 'print.key=true', '--formatter-property', 'print.partition=true',
           '--formatter-property', 'print.offset=true']
    out, err = tool(broker, CONSUMER, '--topic', t, '--group', g, '--from-beginning', '--max-messages', '20',
                    '--timeout-ms', '30000', *fmt)
    assert 'Processed a total of 20 messages' in err
    got = [re.fullmatch(r'Partition:(\d+)\tOffset:(\d+)\t(k\d)\t(v\d+)', l).groups() for l in out.splitlines()]
    assert sorted(int(v[1:]) for _, _, _, v in got) == list(range(20))
    by_part = {}
    for p, o, k, v in got:
        by_part.setdefault(int(p), []).append(int(o))
        assert k == 'k%d' % (int(v[1:]) % 5)
    assert all(offs == list(range(len(offs))) for offs in by_part.values()), by_part
    ends = {p: len(offs) for p, offs in by_part.items()}
    # the console producer was idempotent (its default): one producer id on
    # every batch, epoch 0, each partition's sequences from 0 with no gap
    pids = set()
    for p in ends:
        seq = 0
        for b in log_segments.read_partition_batches(broker.data_dir, t, p):
            assert b.producer_id >= 0 and b.producer_epoch == 0 and b.base_sequence == seq, (p, b)
            pids.add(b.producer_id)
            seq += b.record_count
        assert seq == ends[p], (p, seq, ends[p])
    assert len(pids) == 1, pids

    # Kafka 4.3's admin client reports a missing group (DescribeGroups v6)
    (listed, _), (out, err), (mout, merr) = tools(broker, (GROUPS, '--list'), (GROUPS, '--describe', '--group', g),
                                                  (GROUPS, '--describe', '--group', 'tool-no-such-group'))
    assert g in listed.split()
    assert 'GroupIdNotFoundException: Group tool-no-such-group not found.' in mout + merr, mout + merr
    assert "Consumer group '%s' has no active members." % g in out + err
    desc = rows(out, 9)
    assert sorted((int(r[2]), int(r[3]), int(r[4]), r[5]) for r in desc) == \
        [(p, ends.get(p, 0), ends.get(p, 0), '0') for p in range(3)], out

    out, _ = tool(broker, GROUPS, '--reset-offsets', '--group', g, '--topic', t, '--to-earliest', '--execute')
    assert sorted(rows(out, 4)) == [[g, t, str(p), '0'] for p in range(3)], out
    busy = max(ends, key=ends.get)          # a partition with records
    out, _ = tool(broker, GROUPS, '--reset-offsets', '--group', g, '--topic', '%s:%d' % (t, busy),
                  '--to-offset', '2', '--execute')
    assert rows(out, 4) == [[g, t, str(busy), '2']], out
    out, _ = tool(broker, GROUPS, '--describe', '--group', g)
    lag = {int(r[2]): (int(r[3]), int(r[5])) for r in rows(out, 9)}
    assert lag == {p: (2 if p == busy else 0, ends.get(p, 0) - (2 if p == busy else 0)) for p in range(3)}, out

    # the group reads again from where the offsets were reset to
    out, err = tool(broker, CONSUMER, '--topic', t, '--group', g, '--max-messages', '18', '--timeout-ms', '30000',
                    *fmt)
    again = [re.fullmatch(r'Partition:(\d+)\tOffset:(\d+)\t.*', l).groups() for l in out.splitlines()]
    assert len(again) == 18 and min(int(o) for p, o in again if int(p) == busy) == 2, out

    out, _ = tool(broker, GROUPS, '--delete', '--group', g)
    assert "Deletion of requested consumer groups ('%s') was successful." % g in out


def test_kafka_configs(broker):
    t = 'tool-configs'
    create_topic(broker.bootstrap, t, 1)
    out, _ = tool(broker, CONFIGS, '--entity-type', 'topics', '--entity-name', t, '--alter',
                  '--add-config', 'max.message.bytes=20000,segment.bytes=1048576')
    assert out == 'Completed updating config for topic %s.\n' % t
    out, _ = tool(broker, CONFIGS, '--entity-type', 'topics', '--entity-name', t, '--describe')
    assert out == (
        'Dynamic configs for topic %s are:\n' % t
        + '  max.message.bytes=20000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:max.message.bytes=20000, '
          'DEFAULT_CONFIG:message.max.bytes=1048588}\n'
        + '  segment.bytes=1048576 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:segment.bytes=1048576, '
          'DEFAULT_CONFIG:log.segment.bytes=1073741824}\n')
    # and a cluster-wide broker default, which the topic then inherits
    (out, _), (out2, _) = tools(broker, (CONFIGS, '--entity-type', 'topics', '--entity-name', t, '--alter',
                                         '--delete-config', 'segment.bytes'),
                                (CONFIGS, '--entity-type', 'brokers', '--entity-default', '--alter',
                                 '--add-config', 'log.segment.bytes=536870912'))
    assert out == 'Completed updating config for topic %s.\n' % t
    assert out2 == 'Completed updating default config for brokers in the cluster.\n'
    out, _ = tool(broker, CONFIGS, '--entity-type', 'topics', '--entity-name', t, '--describe', '--all')
    assert '  segment.bytes=536870912 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:' \
           'log.segment.bytes=536870912, DEFAULT_CONFIG:log.segment.bytes=1073741824}\n' in out, out
    assert '  max.message.bytes=20000 sensitive=false' in out, out


def test_kafka_get_offsets_and_delete_records(broker, tmp_path):
    t = 'tool-offsets'
    create_topic(broker.bootstrap, t, 2)
    # partition 0: timestamps rise to a plateau held by offsets 7..9
    recs = [{'value': b'a%d' % i, 'partition': 0, 'timestamp': 1000 + 10 * min(i, 7)} for i in range(10)]
    recs += [{'value': b'b%d' % i, 'partition': 1, 'timestamp': 5000 + i} for i in range(4)]
    assert all(d.error is None for d in produce(producer(broker.bootstrap, **{'linger.ms': 50}), t, recs))
    spec = tmp_path / 'delete.json'
    spec.write_text(json.dumps({'version': 1, 'partitions': [{'topic': t, 'partition': 0, 'offset': 3}]}))
    out, _ = tool(broker, DELETE_RECORDS, '--offset-json-file', str(spec))
    assert 'partition: %s-0\tlow_watermark: 3' % t in out, out
    (latest, _), (earliest, _), (maxts, _) = tools(
        broker, (GET_OFFSETS, '--topic', t), (GET_OFFSETS, '--topic', t, '--time', '-2'),
        (GET_OFFSETS, '--topic-partitions', '%s:0' % t, '--time', '-3'))
    assert latest == '%s:0:10\n%s:1:4\n' % (t, t)
    assert earliest == '%s:0:3\n%s:1:0\n' % (t, t)
    # -3: the first record holding the largest timestamp
    assert maxts == '%s:0:7\n' % t
