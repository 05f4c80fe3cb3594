"""Apache Kafka 4.3 beside Spool (tests/kafka/kafka_ref.py): the reference
starts once per session and the same client session gives the same result
on both."""
import re
import subprocess

import kafka_wire as kw
from client_helpers import consume_assigned, create_topic, produce, producer


def _api_versions(port):
    payload = kw.send_recv(port, kw.api_versions_request(3, 1))
    return kw.parse_api_versions_response(payload, 3)


def test_kafka_reference_runs_and_is_4_3(kafka):
    assert kafka.running()
    r = _api_versions(kafka.port)
    assert r['error_code'] == 0
    ranges = r['api_keys']
    # Kafka 4.3's own ranges: Produce 0-13 (0-2 advertised, refused: KAFKA-18659), Fetch 4-18, Metadata 0-13
    assert ranges[0] == (0, 13) and ranges[1] == (4, 18) and ranges[3] == (0, 13), ranges
    # its cluster id is the one kafka-storage made (not a log line before it)
    md = kw.parse_metadata_response(kw.send_recv(kafka.port, kw.metadata_request(12, 2, [])), 12)
    assert re.fullmatch(r'[A-Za-z0-9_-]{22}', md['cluster_id']), md['cluster_id']


def test_same_kcat_session_same_records(kafka, broker):
    """kcat produces the same keyed records with headers to both, and
    reads back the same keys, values, headers and offsets."""
    lines = ['k%d:value-%d' % (i, i) for i in range(20)]
    out = {}
    for name, b in (('kafka', kafka.bootstrap), ('spool', broker.bootstrap)):
        create_topic(b, 'same-kcat', 2)
        subprocess.run(['kcat', '-P', '-b', b, '-t', 'same-kcat', '-p', '1', '-K', ':',
                        '-H', 'h=v'], input='\n'.join(lines) + '\n', universal_newlines=True,
                       check=True, timeout=30)
        r = subprocess.run(['kcat', '-C', '-b', b, '-t', 'same-kcat', '-p', '1', '-o', 'beginning',
                            '-e', '-f', '%o %k %s %h\n'], stdout=subprocess.PIPE,
                           universal_newlines=True, check=True, timeout=30)
        out[name] = r.stdout.splitlines()
    assert out['spool'] == out['kafka'], out
    assert out['spool'][0] == '0 k0 value-0 h=v'


def test_same_confluent_session_same_offsets(kafka, broker):
    recs = [{'key': b'%d' % (i % 3), 'value': b'v%d' % i, 'partition': i % 2} for i in range(30)]
    got = {}
    for name, b in (('kafka', kafka.bootstrap), ('spool', broker.bootstrap)):
        create_topic(b, 'same-confluent', 2)
        dr = produce(producer(b), 'same-confluent', recs)
        assert all(d.error is None for d in dr)
        msgs = consume_assigned(b, 'same-confluent', [0, 1])
        got[name] = sorted((m.partition(), m.offset(), m.key(), m.value()) for m in msgs)
    assert got['spool'] == got['kafka']
