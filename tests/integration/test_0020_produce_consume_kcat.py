"""kcat produce/consume round trip per compression codec, plus an on-disk check
that the batches are stored with the producer's codec."""

import subprocess
import time

import pytest

import log_segments
from client_helpers import create_topic
from spool_clients import KCAT

N_RECORDS = 100000
N_PARTITIONS = 3
# Static headers kcat attaches to every record: order and duplicates matter.
HEADERS = [('app', 'spool-test'), ('trace', 'a=b'), ('app', 'second')]
KEY_DELIM = '|'          # never appears in keys or values
FIELD_SEP = '\x01'       # kcat -f output separators: never appear in data
RECORD_SEP = '\x02\n'


def key_of(i):
    return 'key-%06d' % i


def value_of(i):
    # Compressible (so librdkafka keeps even a one-record batch compressed)
    # but distinct per record.
    return 'value-%06d-%s-%d' % (i, 'abcdefgh' * 8, i % 97)


def kcat_produce(bootstrap, topic, lines, codec, tmp_path):
    src = tmp_path / 'input.txt'
    src.write_text(''.join(lines))
    args = [KCAT, '-P', '-b', bootstrap, '-t', topic, '-K', KEY_DELIM,
            '-z', codec, '-X', 'linger.ms=5', '-X', 'acks=all',
            '-X', 'message.send.max.retries=0', '-l', str(src)]
    for name, value in HEADERS:
        args += ['-H', '%s=%s' % (name, value)]
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    assert 'error' not in proc.stderr.lower(), proc.stderr[-3000:]


def kcat_consume(bootstrap, topic):
    fmt = FIELD_SEP.join(['%t', '%p', '%o', '%k', '%s', '%h']) + RECORD_SEP
    fmt = fmt.replace('\x01', '\\x01').replace('\x02', '\\x02').replace('\n', '\\n')
    args = [KCAT, '-C', '-b', bootstrap, '-t', topic, '-e', '-o', 'beginning',
            '-f', fmt, '-q']
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    out = proc.stdout.decode()
    assert out.endswith(RECORD_SEP), repr(out[-200:])
    records = []
    for chunk in out[:-len(RECORD_SEP)].split(RECORD_SEP):
        fields = chunk.split(FIELD_SEP)
        assert len(fields) == 6, repr(chunk)
        t, p, o, k, v, h = fields
        records.append((t, int(p), int(o), k, v, h))
    return records


@pytest.mark.parametrize('codec', ['none', 'gzip', 'snappy', 'lz4', 'zstd'])
def test_kcat_round_trip_codec(broker, tmp_path, codec):
    topic = 'kcat-%s' % codec
    create_topic(broker.bootstrap, topic, N_PARTITIONS)

    lines = ['%s%s%s\n' % (key_of(i), KEY_DELIM, value_of(i)) for i in range(N_RECORDS)]
    t0 = time.monotonic()
    kcat_produce(broker.bootstrap, topic, lines, codec, tmp_path)
    t1 = time.monotonic()
    records = kcat_consume(broker.bootstrap, topic)
    t2 = time.monotonic()
    print('%s: produce %.2fs consume %.2fs' % (codec, t1 - t0, t2 - t1))

    expected_headers = ','.join('%s=%s' % hv for hv in HEADERS)
    assert len(records) == N_RECORDS, (len(records), broker.log_text()[-2000:])
    seen = {}
    by_partition = {p: [] for p in range(N_PARTITIONS)}
    for t, p, o, k, v, h in records:
        assert t == topic
        assert k.startswith('key-'), k
        seq = int(k[4:])
        assert seq not in seen, 'duplicate key %s at %s/%s and %s' % (k, p, o, seen[seq])
        seen[seq] = (p, o)
        assert v == value_of(seq), (k, v)
        assert h == expected_headers, (k, h)
        by_partition[p].append((o, seq))
    assert sorted(seen) == list(range(N_RECORDS))

    for p, recs in by_partition.items():
        assert recs, 'partition %d got no records' % p
        recs.sort()
        offsets = [o for o, _ in recs]
        assert offsets == list(range(len(recs))), 'partition %d offsets not contiguous' % p
        seqs = [s for _, s in recs]
        bad = [(offsets[i], seqs[i - 1], seqs[i]) for i in range(1, len(seqs))
               if seqs[i] <= seqs[i - 1]]
        assert not bad, 'partition %d out of production order: %r' % (p, bad[:10])

    # On disk: every batch of partition 0 carries the producer's codec.
    batches = log_segments.read_partition_batches(broker.data_dir, topic, 0)
    assert batches
    want = log_segments.CODEC_IDS[codec]
    wrong = [b for b in batches if b.codec != want]
    hint = ''
    if codec == 'lz4':
        # librdkafka enables its LZ4 feature only if the broker's ApiVersions
        # lists FindCoordinator (key 10); otherwise it logs "Broker does not
        # support compression type lz4: not compressing batch".
        hint = ' (does ApiVersions advertise FindCoordinator?)'
    assert not wrong, 'batches not stored as %s%s: %r' % (codec, hint, wrong[:5])
    assert sum(b.record_count for b in batches) == len(by_partition[0])
    # Batches are contiguous in offset space.
    nxt = 0
    for b in batches:
        assert b.base_offset == nxt, b
        nxt = b.last_offset + 1
    assert nxt == len(by_partition[0])
    if codec != 'none':
        # Compressed storage is actually smaller than the raw payload.
        raw = sum(len(lines[s]) for _, s in by_partition[0])
        assert sum(b.size for b in batches) < raw
