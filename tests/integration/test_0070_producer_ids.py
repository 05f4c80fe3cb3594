"""Producer ids (InitProducerId, issue 13): every version over raw frames,
ids distinct across calls, connections, blocks of 1000 and restarts, the
ProducerIdsRecords in the metadata log and its snapshot, Kafka's errors,
and an idempotent confluent-kafka producer getting its id.

Whether the idempotent producer's records are deduplicated is the
partition side's test, not this one."""
import os
import re
import threading
import time

import kafka_wire as kw
import pytest
from confluent_kafka import Producer

MAX_VERSION = 5                     # v6 (2PC, KIP-939) is unstable in Kafka 4.3
INVALID_REQUEST = 42
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53


def fresh_id(sock_or_port, version=MAX_VERSION, **kw_):
    r = kw.init_producer_id(sock_or_port, version, **kw_)
    assert r['error_code'] == 0 and r['producer_epoch'] == 0 and r['producer_id'] >= 0, r
    assert r['throttle_time_ms'] == 0, r
    return r['producer_id']


def many_ids(port, n, version=MAX_VERSION):
    with kw.connect(port) as s:
        return [fresh_id(s, version) for _ in range(n)]


def metadata_records(path, rtype):
    """The bodies of the metadata records of type rtype in a log segment or
    snapshot file (record batches v2, values framed as Kafka frames them:
    uvarint frame version, type, version, then the record)."""
    data = open(path, 'rb').read()
    out = []
    off = 0
    while off + 61 <= len(data):
        blen = int.from_bytes(data[off + 8:off + 12], 'big')
        count = int.from_bytes(data[off + 57:off + 61], 'big')
        r = kw.Reader(data[off + 61:off + 12 + blen])
        for _ in range(count):
            rec = kw.Reader(r._take(zigzag(r)))
            rec.int8()                              # attributes
            zigzag(rec), zigzag(rec)                # timestamp, offset deltas
            klen = zigzag(rec)
            rec._take(max(klen, 0))
            value = kw.Reader(rec._take(zigzag(rec)))
            assert value.uvarint() == 1             # frame version
            if value.uvarint() == rtype:
                value.uvarint()                     # record version
                out.append(value)
        off += 12 + blen
    return out


def zigzag(r):
    v = r.uvarint()
    return (v >> 1) ^ -(v & 1)


def producer_ids_records(path):
    """ProducerIdsRecords (type 15): [(BrokerId, BrokerEpoch, NextProducerId)]."""
    return [(v.int32(), v.int64(), v.int64()) for v in metadata_records(path, 15)]


def metadata_dir(b):
    return b.data_dir / '__cluster_metadata-0'


def log_grants(b):
    segs = sorted(f for f in os.listdir(metadata_dir(b)) if f.endswith('.log'))
    return [g for s in segs for g in producer_ids_records(str(metadata_dir(b) / s))]


def test_every_version(broker):
    """v0-5, flexible (v2+) and not: a fresh id with epoch 0 each time,
    also when a v3+ request names the id and epoch it had (KIP-360: an
    idempotent producer is simply given a new id)."""
    av = kw.parse_api_versions_response(kw.send_recv(broker.port, kw.api_versions_request(3, 1)), 3)
    assert av['api_keys'][kw.API_INIT_PRODUCER_ID] == (0, MAX_VERSION)
    seen = []
    for v in range(MAX_VERSION + 1):
        pid = fresh_id(broker.port, v)
        seen.append(pid)
        if v >= 3:
            seen.append(fresh_id(broker.port, v, producer_id=pid, producer_epoch=0))
            seen.append(fresh_id(broker.port, v, producer_id=pid, producer_epoch=32767))
    assert len(set(seen)) == len(seen) and seen == sorted(seen), seen
    # v6 is not served: the connection is closed, as for any version above ours
    with kw.connect(broker.port) as s:
        s.sendall(kw.init_producer_id_request(6, 1))
        assert kw.wait_closed(s)
    assert broker.running()


def test_errors(broker):
    """Kafka's errors, with producer id and epoch -1: an empty transactional
    id and a half pair of producer id and epoch are INVALID_REQUEST; a
    transactional id before any FindCoordinator created __transaction_state
    is NOT_COORDINATOR (Kafka's coordinator owns no partition of it)."""
    for v in range(MAX_VERSION + 1):
        r = kw.init_producer_id(broker.port, v, transactional_id='')
        assert (r['error_code'], r['producer_id'], r['producer_epoch']) == (INVALID_REQUEST, -1, -1), (v, r)
        # the timeout matters only for a transactional id: not checked here
        r = kw.init_producer_id(broker.port, v, transactional_id='', transaction_timeout_ms=-5)
        assert r['error_code'] == INVALID_REQUEST, (v, r)
        r = kw.init_producer_id(broker.port, v, transactional_id='txn-1')
        assert (r['error_code'], r['producer_id'], r['producer_epoch']) == (16, -1, -1), (v, r)
        fresh_id(broker.port, v, transaction_timeout_ms=-5)
        if v >= 3:
            for pid, epoch in ((7, -1), (-1, 0)):
                r = kw.init_producer_id(broker.port, v, producer_id=pid, producer_epoch=epoch)
                assert (r['error_code'], r['producer_id'], r['producer_epoch']) == (INVALID_REQUEST, -1, -1), r


def test_ids_across_blocks_and_restarts(start_broker, tmp_path):
    """More than a block of ids: all distinct and increasing; each restart
    skips what was left of the last block, and its ids are above every
    earlier one; every grant is a ProducerIdsRecord in the metadata log
    (BrokerId = node id, NextProducerId = the next block's first id)."""
    data = tmp_path / 'data'
    b = start_broker(data_dir=str(data), node_id=3)
    first = many_ids(b.port, 1100)
    assert first == sorted(first) and len(set(first)) == 1100
    assert first[0] == 0 and first[-1] == 1099         # blocks [0, 1000) and [1000, 2000)
    assert b.stop() == 0
    assert log_grants(b) == [(3, -1, 1000), (3, -1, 2000)]

    b = start_broker(data_dir=str(data), node_id=3)
    second = many_ids(b.port, 10)
    assert second == list(range(2000, 2010))
    assert b.stop() == 0
    b = start_broker(data_dir=str(data), node_id=3)
    third = many_ids(b.port, 1200)                      # across a block again
    assert third[0] == 3000 and third == sorted(third) and len(set(third)) == 1200
    assert b.stop() == 0
    assert [g[2] for g in log_grants(b)] == [1000, 2000, 3000, 4000, 5000]
    assert 'producer ids 3000 to 3999 granted to broker 3' in b.log_text()


def test_no_grant_without_a_producer(start_broker, tmp_path):
    """A broker nobody asks for an id writes no ProducerIdsRecord."""
    b = start_broker(data_dir=str(tmp_path / 'data'))
    kw.send_recv(b.port, kw.api_versions_request(3, 1))
    assert b.stop() == 0
    assert log_grants(b) == []


def test_snapshot_carries_the_next_id(start_broker, tmp_path):
    """With a snapshot after every metadata write, the snapshot holds a
    ProducerIdsRecord with the next id, and a restart goes on above it."""
    data = tmp_path / 'data'
    opts = {'metadata.log.max.record.bytes.between.snapshots': 1}
    b = start_broker(opts, data_dir=str(data))
    ids = many_ids(b.port, 1001)
    assert re.search(r'metadata snapshot at offset 2 ', b.log_text())
    assert b.stop() == 0
    snaps = [f for f in os.listdir(metadata_dir(b)) if f.endswith('.checkpoint')]
    assert len(snaps) == 1
    assert [g[2] for g in producer_ids_records(str(metadata_dir(b) / snaps[0]))] == [2000]
    b = start_broker(opts, data_dir=str(data))
    assert 'loaded metadata snapshot' in b.log_text()
    assert fresh_id(b.port) == 2000 > max(ids)


def test_concurrent_connections(broker):
    """Several connections at once, more than a block between them: every
    id distinct (the manager is shared by every I/O worker)."""
    out, errors = [], []

    def run():
        try:
            out.extend(many_ids(broker.port, 400))
        except Exception as e:          # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(out) == 2400 and len(set(out)) == 2400


def test_idempotent_confluent_kafka_producer_gets_its_id(broker):
    """librdkafka with enable.idempotence=true asks InitProducerId first;
    its eos debug log shows the id it was given.  (Its produce depends on
    the partition side: not asserted here.)"""
    logs, fatal = [], []

    class Capture:
        def log(self, level, fmt, *args):
            logs.append(fmt % args if args else fmt)

        def __getattr__(self, name):          # debug/info/warning/error/...
            return lambda fmt, *args: logs.append(fmt % args if args else fmt)

    def on_error(err):
        if err.fatal():
            fatal.append(err)

    p = Producer({'bootstrap.servers': broker.bootstrap, 'enable.idempotence': True,
                  'debug': 'eos', 'logger': Capture(), 'error_cb': on_error,
                  'message.timeout.ms': 5000})
    p.produce('pid-topic', b'v')
    deadline = time.monotonic() + 15
    got = None
    while time.monotonic() < deadline and got is None:
        p.poll(0.1)
        for line in logs:
            m = re.search(r'Acquired PID\{Id:(-?\d+),Epoch:(-?\d+)\}', line)   # librdkafka 2.x
            if m:
                got = (int(m.group(1)), int(m.group(2)))
    p.flush(5)
    assert got is not None, '\n'.join(logs[-40:])
    assert got[0] >= 0 and got[1] == 0, got
    assert not fatal, fatal
    assert 'producer ids 0 to 999 granted' in broker.log_text()


@pytest.mark.parametrize('version', [0, 2, MAX_VERSION])
def test_answer_waits_for_the_first_block(start_broker, tmp_path, version):
    """The first request after a start waits for the block (one durable
    metadata write) and is answered on its own connection, in order with
    a request sent behind it."""
    b = start_broker(data_dir=str(tmp_path / 'data'))
    with kw.connect(b.port) as s:
        s.sendall(kw.init_producer_id_request(version, 11) + kw.api_versions_request(0, 12))
        r = kw.parse_init_producer_id_response(kw.recv_frame(s), version)
        assert r['correlation_id'] == 11 and r['error_code'] == 0 and r['producer_id'] == 0
        assert kw.correlation_id(kw.recv_frame(s)) == 12
