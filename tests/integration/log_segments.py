"""Read Kafka on-disk partition directories written by spoold.

Only the RecordBatch v2 header is parsed (no decompression): enough to check
codecs, offsets and segment layout from the tests.

RecordBatch v2 header layout (big-endian):
    0  baseOffset            int64
    8  batchLength           int32   (bytes after this field)
   12  partitionLeaderEpoch  int32
   16  magic                 int8    (2)
   17  crc                   uint32  (CRC-32C of attributes .. end)
   21  attributes            int16   (low 3 bits: codec)
   23  lastOffsetDelta       int32
   27  baseTimestamp         int64
   35  maxTimestamp          int64
   43  producerId            int64
   51  producerEpoch         int16
   53  baseSequence          int32
   57  recordCount           int32
   61  records...
"""

import re
import struct
from pathlib import Path

CODECS = {0: 'none', 1: 'gzip', 2: 'snappy', 3: 'lz4', 4: 'zstd'}
CODEC_IDS = {v: k for k, v in CODECS.items()}
BATCH_HEADER = 61
SEGMENT_RE = re.compile(r'^(\d{20})\.log$')


class Batch:
    __slots__ = ('file_pos', 'base_offset', 'length', 'magic', 'crc',
                 'attributes', 'last_offset_delta', 'base_timestamp',
                 'max_timestamp', 'producer_id', 'producer_epoch',
                 'base_sequence', 'record_count')

    @property
    def size(self):
        return 12 + self.length

    @property
    def codec(self):
        return self.attributes & 0x07

    @property
    def codec_name(self):
        return CODECS.get(self.codec, 'unknown(%d)' % self.codec)

    @property
    def timestamp_type(self):
        return 'LogAppendTime' if self.attributes & 0x08 else 'CreateTime'

    @property
    def last_offset(self):
        return self.base_offset + self.last_offset_delta

    def __repr__(self):
        return ('Batch(pos=%d base=%d last=%d size=%d codec=%s count=%d)' % (
            self.file_pos, self.base_offset, self.last_offset, self.size,
            self.codec_name, self.record_count))


def parse_batches(data, strict=True):
    """Parse consecutive batches from bytes. With strict=False, stop at the
    first incomplete/invalid batch instead of raising."""
    out = []
    pos = 0
    n = len(data)
    while pos < n:
        if n - pos < BATCH_HEADER:
            if strict:
                raise ValueError('trailing %d bytes at %d' % (n - pos, pos))
            break
        base, length, _epoch, magic, crc, attrs, lod, bts, mts = struct.unpack_from(
            '>qiibIhiqq', data, pos)
        pid, pepoch, bseq, count = struct.unpack_from('>qhii', data, pos + 43)
        if magic != 2 or length < BATCH_HEADER - 12 or pos + 12 + length > n:
            if strict:
                raise ValueError('bad batch at %d: magic=%d length=%d filesize=%d'
                                 % (pos, magic, length, n))
            break
        b = Batch()
        b.file_pos, b.base_offset, b.length, b.magic, b.crc = pos, base, length, magic, crc
        b.attributes, b.last_offset_delta = attrs, lod
        b.base_timestamp, b.max_timestamp, b.record_count = bts, mts, count
        b.producer_id, b.producer_epoch, b.base_sequence = pid, pepoch, bseq
        out.append(b)
        pos += 12 + length
    return out


def partition_dir(data_dir, topic, partition):
    return Path(data_dir) / ('%s-%d' % (topic, partition))


def segment_files(data_dir, topic, partition):
    """Sorted [(base_offset, Path to .log)] of a partition."""
    out = []
    for p in partition_dir(data_dir, topic, partition).iterdir():
        m = SEGMENT_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def read_partition_batches(data_dir, topic, partition):
    """All batches of all segments, in order; each segment parsed strictly."""
    out = []
    for _base, path in segment_files(data_dir, topic, partition):
        out.extend(parse_batches(path.read_bytes()))
    return out


def active_segment(data_dir, topic, partition):
    return segment_files(data_dir, topic, partition)[-1][1]
