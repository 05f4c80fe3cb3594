"""Committed-offset metadata is bytes with a length everywhere: in memory,
in the __consumer_offsets record and on replay.  Metadata with NULs comes
back whole from OffsetFetch, before and after a broker restart."""

import struct

from client_helpers import create_topic
from group_helpers import Conn

META = b'Hello\x00world!'          # 12 bytes, a NUL in the middle
FAST = {'group.initial.rebalance.delay.ms': 0}


def partition_for(group, n):
    h = 0
    for c in group.encode():
        h = (h * 31 + c) & 0xffffffff
    if h >= 1 << 31:
        h -= 1 << 32
    return (0 if h == -(1 << 31) else abs(h)) % n


def offsets_topic_records(bootstrap, partition):
    """(key, value) of every record in a __consumer_offsets partition."""
    from client_helpers import consume_assigned
    return [(m.key(), m.value()) for m in consume_assigned(bootstrap, '__consumer_offsets',
                                                           [partition])]


def check(b, kadmin_cls, raw_group, kpy_group):
    conn = Conn(b.port)
    try:
        got, err = conn.fetch_offsets(raw_group, {'data': [0, 1]}, with_metadata=True)
    finally:
        conn.close()
    assert err == 0
    assert got[('data', 0)] == (5, META, 0), got
    assert got[('data', 1)] == (6, b'', 0), got       # committed with null metadata
    from kafka import TopicPartition
    kadmin = kadmin_cls(bootstrap_servers=b.bootstrap, request_timeout_ms=10000)
    try:
        offs = kadmin.list_consumer_group_offsets(kpy_group)
    finally:
        kadmin.close()
    om = offs[TopicPartition('data', 0)]
    assert (om.offset, om.metadata) == (42, META.decode()), om
    assert len(om.metadata) == 12


def test_metadata_with_nuls_round_trips(start_broker):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.structs import OffsetAndMetadata
    nparts = 3
    b = start_broker(dict(FAST, **{'offsets.topic.num.partitions': nparts}))
    create_topic(b.bootstrap, 'data', 2)

    # a raw OffsetCommit frame (v2)
    conn = Conn(b.port)
    try:
        conn.find_coordinator('g-raw')
        res = conn.commit('g-raw', {('data', 0): 5}, metadata=META)
        assert res == {('data', 0): 0}, res
        res = conn.commit('g-raw', {('data', 1): 6}, metadata=None)
        assert res == {('data', 1): 0}, res
    finally:
        conn.close()

    # kafka-python sends any str as metadata
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id='g-kpy', enable_auto_commit=False)
    try:
        c.commit({TopicPartition('data', 0): OffsetAndMetadata(42, META.decode())})
    finally:
        c.close()

    check(b, KafkaAdminClient, 'g-raw', 'g-kpy')

    # the record in __consumer_offsets holds all 12 bytes
    values = [v for k, v in offsets_topic_records(b.bootstrap, partition_for('g-raw', nparts))
              if k and struct.unpack('>h', k[:2])[0] in (0, 1) and b'g-raw' in k]
    assert values, 'no OffsetCommit record for g-raw'
    v = values[0]
    assert struct.unpack('>h', v[:2])[0] == 3           # OffsetCommitValue v3
    (mlen,) = struct.unpack('>h', v[14:16])             # after offset and leader epoch
    assert v[16:16 + mlen] == META, v

    # a restart replays the records: still 12 bytes
    assert b.stop() == 0
    b2 = start_broker(dict(FAST, **{'offsets.topic.num.partitions': nparts}), data_dir=b.data_dir)
    check(b2, KafkaAdminClient, 'g-raw', 'g-kpy')
