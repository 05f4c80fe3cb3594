"""The metadata log: topic operations are Kafka metadata records in
<log.dirs>/__cluster_metadata-0, replayed on start; snapshots bound it."""
import os
import re

from confluent_kafka.admin import AdminClient, NewTopic


def admin(b):
    return AdminClient({'bootstrap.servers': b.bootstrap})


def create(b, *topics, **kw):
    a = admin(b)   # must outlive the futures
    fs = a.create_topics([NewTopic(t, kw.get('partitions', 1), 1,
                                   config=kw.get('config', {})) for t in topics])
    for f in fs.values():
        f.result(timeout=10)


def topics_of(b):
    md = admin(b).list_topics(timeout=10)
    return {t: len(m.partitions) for t, m in md.topics.items()}


def record_types(path):
    """Kafka metadata record types (apiKey) in a log or snapshot file:
    each record value is uvarint frame version, uvarint type, uvarint
    version, body.  Parsed by hand from RecordBatch v2."""
    data = open(path, 'rb').read()
    types = []
    off = 0

    def varint(buf, i):
        shift = result = 0
        while True:
            b = buf[i]
            i += 1
            result |= (b & 0x7f) << shift
            shift += 7
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1), i

    while off + 61 <= len(data):
        blen = int.from_bytes(data[off + 8:off + 12], 'big')
        count = int.from_bytes(data[off + 57:off + 61], 'big')
        i = off + 61
        for _ in range(count):
            length, i = varint(data, i)
            end = i + length
            i += 1                      # attributes
            _, i = varint(data, i)      # timestamp delta
            _, i = varint(data, i)      # offset delta
            klen, i = varint(data, i)
            i += max(klen, 0)
            vlen, i = varint(data, i)
            value = data[i:i + vlen]
            assert value[0] == 1        # frame version
            types.append(value[1])
            i = end
        off += 12 + blen
    return types


def test_topics_survive_restart_as_metadata_records(start_broker, tmp_path):
    data = tmp_path / 'data'
    b = start_broker(data_dir=str(data))
    create(b, 'alpha', partitions=3, config={'retention.ms': '12345'})
    create(b, 'beta', partitions=2)
    a = admin(b)
    fs = a.delete_topics(['beta'])
    for f in fs.values():
        f.result(timeout=10)
    create(b, 'beta', partitions=1)          # the name is free again at once
    assert b.stop() == 0

    log = data / '__cluster_metadata-0' / ('0' * 20 + '.log')
    types = record_types(str(log))
    # TopicRecord 2, PartitionRecord 3, ConfigRecord 4, RemoveTopicRecord 9
    assert types.count(2) == 3 and types.count(9) == 1
    assert types.count(3) == 3 + 2 + 1 and types.count(4) == 1

    b = start_broker(data_dir=str(data))
    assert topics_of(b) == {'alpha': 3, 'beta': 1}
    assert 'metadata loaded: 2 topics' in b.log_text()
    # no leftover directories of the deleted 'beta' with 2 partitions
    left = [d for d in os.listdir(data) if d.startswith('beta-')]
    assert sorted(left) == ['beta-0'] or all(d == 'beta-0' or d.endswith('-delete') for d in left)


def test_snapshot_bounds_the_log(start_broker, tmp_path):
    data = tmp_path / 'data'
    b = start_broker({'metadata.log.max.record.bytes.between.snapshots': 1000,
                      'log.segment.bytes': 100000}, data_dir=str(data))
    for i in range(12):
        create(b, 'snap-%02d' % i, partitions=2)
    assert re.search(r'metadata snapshot at offset \d+', b.log_text())
    snaps = [f for f in os.listdir(data / '__cluster_metadata-0') if f.endswith('.checkpoint')]
    assert len(snaps) == 1
    types = record_types(str(data / '__cluster_metadata-0' / snaps[0]))
    assert types.count(2) >= 1 and types.count(3) == 2 * types.count(2)
    assert b.stop() == 0

    b = start_broker({'metadata.log.max.record.bytes.between.snapshots': 1000},
                     data_dir=str(data))
    assert 'loaded metadata snapshot' in b.log_text()
    assert topics_of(b) == {'snap-%02d' % i: 2 for i in range(12)}
