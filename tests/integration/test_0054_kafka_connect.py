"""Kafka Connect 4.3.1 in standalone mode against Spool: the file source
connector reads a file into a topic and the file sink connector writes the
topic into another file, which must come out unchanged, also for lines
appended while the worker runs.  The worker's producers keep Connect's
default, which is idempotence off (unlike the producer's own default):
checked on disk, so that a change of default shows.

Distributed mode, with its config, offset and status topics on Spool
(compacted topics: Spool takes cleanup.policy=compact but does not compact
yet, and Connect replays them whole), and restarts of the worker and of
the broker: test_0057_connect_distributed."""
import os
import signal
import subprocess
import time

import log_segments
from client_helpers import consumer, create_topic
from conftest import free_port

TOPIC = 'connect-lines'


def lines(start, n):
    """Text lines: UTF-8, tabs, lengths from 0 to 3000 characters."""
    return ''.join('%05d\t%s \u00e9\u2603 %s\n' % (i, 'spool ' * ((i * 37) % 500), '|' * (i % 7))
                   for i in range(start, start + n))


def wait_same(src, dst, timeout=60):
    deadline = time.monotonic() + timeout
    want = src.read_bytes()
    while time.monotonic() < deadline:
        if dst.exists() and dst.read_bytes() == want:
            return True
        time.sleep(0.2)
    return False


def committed(bootstrap, group, topic):
    from confluent_kafka import TopicPartition
    c = consumer(bootstrap, **{'group.id': group})
    try:
        (tp,) = c.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset
    finally:
        c.close()


def test_file_source_to_file_sink_through_spool(java, broker, tmp_path):
    # one partition: the sink writes the records in the order they are read
    create_topic(broker.bootstrap, TOPIC, 1)
    src, dst = tmp_path / 'in.txt', tmp_path / 'out.txt'
    src.write_text(lines(0, 300), encoding='utf-8')
    worker = tmp_path / 'worker.properties'
    worker.write_text('\n'.join([
        'bootstrap.servers=%s' % broker.bootstrap,
        'key.converter=org.apache.kafka.connect.storage.StringConverter',
        'value.converter=org.apache.kafka.connect.storage.StringConverter',
        'offset.storage.file.filename=%s' % (tmp_path / 'connect.offsets'),
        'offset.flush.interval.ms=500',
        'listeners=http://127.0.0.1:%d' % free_port(),
        'plugin.discovery=service_load',
    ]) + '\n')
    source = tmp_path / 'source.properties'
    source.write_text('name=file-source\nconnector.class=org.apache.kafka.connect.file.FileStreamSourceConnector\n'
                      'tasks.max=1\nfile=%s\ntopic=%s\n' % (src, TOPIC))
    sink = tmp_path / 'sink.properties'
    sink.write_text('name=file-sink\nconnector.class=org.apache.kafka.connect.file.FileStreamSinkConnector\n'
                    'tasks.max=1\nfile=%s\ntopics=%s\n' % (dst, TOPIC))
    log = tmp_path / 'connect.log'
    with open(log, 'wb') as out:
        proc = subprocess.Popen(java.java('org.apache.kafka.connect.cli.ConnectStandalone', worker, source, sink),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_same(src, dst), 'out.txt is not in.txt after 60 s; connect log:\n%s\nspool log:\n%s' % (
            log.read_text(errors='replace')[-5000:], broker.log_text()[-2000:])
        # lines appended while the worker runs follow
        with open(src, 'a', encoding='utf-8') as f:
            f.write(lines(300, 200))
        assert wait_same(src, dst), 'appended lines did not arrive; connect log:\n%s' % (
            log.read_text(errors='replace')[-5000:])
        # the sink's consumer group commits what it wrote
        deadline = time.monotonic() + 20
        while committed(broker.bootstrap, 'connect-file-sink', TOPIC) != 500 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert committed(broker.bootstrap, 'connect-file-sink', TOPIC) == 500
        # Connect 4.3.1's worker does not make its source tasks' producers
        # idempotent unless configured to (producer.enable.idempotence):
        # the batches carry no producer id
        batches = log_segments.read_partition_batches(broker.data_dir, TOPIC, 0)
        assert batches and all(b.producer_id == -1 for b in batches), [b.producer_id for b in batches]
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            rc = proc.wait(timeout=10)
    text = log.read_text(errors='replace')
    assert rc in (0, 143, -signal.SIGTERM), (rc, text[-3000:])
    assert ' ERROR ' not in text, text[-5000:]
    # 500 records, one per line, in the topic
    r = subprocess.run(['kcat', '-C', '-b', broker.bootstrap, '-t', TOPIC, '-p', '0', '-o', 'beginning', '-e',
                        '-f', '%s\n'], stdout=subprocess.PIPE, check=True, timeout=30)
    assert r.stdout.decode('utf-8') == src.read_text(encoding='utf-8')
