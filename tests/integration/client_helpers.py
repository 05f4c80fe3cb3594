"""confluent-kafka helpers shared by the produce/consume integration tests."""

import time

from spool_clients import confluent_admin


def create_topic(bootstrap, topic, partitions=1, config=None):
    """Create a topic with confluent-kafka's AdminClient and wait until the
    metadata shows it with `partitions` partitions."""
    from confluent_kafka.admin import NewTopic
    admin = confluent_admin(bootstrap)
    fs = admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                       replication_factor=1,
                                       config=dict(config or {}))],
                             operation_timeout=10, request_timeout=15)
    fs[topic].result(timeout=20)
    # Kafka publishes a new topic to its metadata asynchronously (Spool at
    # once): wait for it, with leaders, rather than look once
    deadline = time.monotonic() + 15
    while True:
        md = admin.list_topics(topic=topic, timeout=10)
        t = md.topics.get(topic)
        ready = (t is not None and t.error is None and len(t.partitions) == partitions and
                 all(p.leader >= 0 for p in t.partitions.values()))
        if ready or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert t is not None and t.error is None, t and t.error
    assert len(t.partitions) == partitions


class Delivery:
    __slots__ = ('topic', 'partition', 'offset', 'key', 'value', 'error',
                 'timestamp')

    def __repr__(self):
        return 'Delivery(%s/%s@%s err=%s)' % (self.topic, self.partition,
                                              self.offset, self.error)


def producer(bootstrap, **conf):
    from confluent_kafka import Producer
    c = {'bootstrap.servers': bootstrap, 'acks': 'all', 'linger.ms': 5}
    c.update(conf)
    return Producer(c)


def produce(p, topic, records, flush_timeout=60):
    """records: iterable of dicts with produce() kwargs (value, key,
    partition, timestamp, headers). Returns the Delivery list in the order
    produced (each filled in by its delivery callback)."""
    out = []

    def make_cb(d):
        def cb(err, msg):
            d.error = err
            d.topic = msg.topic()
            d.partition = msg.partition()
            d.offset = msg.offset()
            d.timestamp = msg.timestamp()
        return cb

    for r in records:
        d = Delivery()
        d.key, d.value, d.error, d.offset = r.get('key'), r.get('value'), 'pending', None
        d.partition = r.get('partition')
        out.append(d)
        kw = {k: v for k, v in r.items() if v is not None}
        while True:
            try:
                p.produce(topic, on_delivery=make_cb(d), **kw)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    remaining = p.flush(flush_timeout)
    assert remaining == 0, '%d records not delivered within %ss' % (remaining, flush_timeout)
    return out


def consumer(bootstrap, **conf):
    from confluent_kafka import Consumer
    c = {'bootstrap.servers': bootstrap, 'group.id': 'spool-test-assign',
         'enable.auto.commit': False, 'enable.partition.eof': True,
         'auto.offset.reset': 'earliest'}
    c.update(conf)
    return Consumer(c)


def consume_assigned(bootstrap, topic, partitions, start=0, count=None,
                     timeout=60, **conf):
    """Assign partitions (from `start`), read until every partition reached
    EOF at or past its current high watermark (or `count` records arrived).
    Returns the list of Message objects in arrival order."""
    from confluent_kafka import KafkaError, TopicPartition
    c = consumer(bootstrap, **conf)
    try:
        tps = [TopicPartition(topic, p, start) for p in partitions]
        highs = {}
        for p in partitions:
            _lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            highs[p] = hi
        c.assign(tps)
        msgs = []
        pos = {p: start for p in partitions}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if count is not None and len(msgs) >= count:
                break
            if count is None and all(pos[p] >= highs[p] for p in partitions):
                break
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError('consume error: %s' % m.error())
            msgs.append(m)
            pos[m.partition()] = m.offset() + 1
        return msgs
    finally:
        c.close()
