"""Hand-built Kafka protocol frames for raw-socket integration tests.

Only what the tests need: primitive encoders, request header v1/v2 framing,
ApiVersions / Metadata / Produce / Fetch / DeleteRecords v0 /
InitProducerId (v0-v5) / ListOffsets v1-v5 request builders, a tolerant
reader and decoders for the ApiVersions (v0-v3), Metadata, Produce, Fetch,
DeleteRecords v0, InitProducerId and ListOffsets responses, and
record batches v2 built by hand (CRC-32C here, gzip with zlib, zstd as
frames of raw blocks: no codec library beyond the standard one).
"""

import socket
import struct
import time
import zlib

API_PRODUCE = 0
API_FETCH = 1
API_METADATA = 3
API_LIST_OFFSETS = 2
API_API_VERSIONS = 18
API_DELETE_RECORDS = 21
API_INIT_PRODUCER_ID = 22

# ---------------------------------------------------------------- encoders


def int8(v):
    return struct.pack('>b', v)


def int16(v):
    return struct.pack('>h', v)


def int32(v):
    return struct.pack('>i', v)


def int64(v):
    return struct.pack('>q', v)


def boolean(v):
    return b'\x01' if v else b'\x00'


def uvarint(v):
    """Unsigned varint (protobuf style, 7 bits per byte, LSB first)."""
    if v < 0:
        raise ValueError('uvarint must be >= 0')
    out = bytearray()
    while True:
        b = v & 0x7f
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def string(s):
    """Classic (int16 length) nullable string."""
    if s is None:
        return int16(-1)
    b = s.encode() if isinstance(s, str) else s
    return int16(len(b)) + b


def compact_string(s):
    """Compact (uvarint length+1) nullable string."""
    if s is None:
        return uvarint(0)
    b = s.encode() if isinstance(s, str) else s
    return uvarint(len(b) + 1) + b


def array(items):
    """Classic array: int32 count followed by already-encoded items; None -> -1."""
    if items is None:
        return int32(-1)
    items = list(items)
    return int32(len(items)) + b''.join(items)


def compact_array(items):
    if items is None:
        return uvarint(0)
    items = list(items)
    return uvarint(len(items) + 1) + b''.join(items)


TAGGED_NONE = uvarint(0)  # empty tagged-field section


def varlong(v):
    """Zigzag varint (Kafka's ByteUtils.writeVarlong / writeVarint)."""
    return uvarint(((v << 1) ^ (v >> 63)) & 0xffffffffffffffff)


def compact_bytes(b):
    if b is None:
        return uvarint(0)
    return uvarint(len(b) + 1) + b


def bytes_(b):
    """Classic (int32 length) nullable bytes."""
    if b is None:
        return int32(-1)
    return int32(len(b)) + b


def frame(payload):
    """Prefix payload with its int32 size."""
    return int32(len(payload)) + payload


def request_header(api_key, api_version, correlation_id, client_id='spool-test',
                   flexible=False):
    """Request header v1 (v2 when flexible: adds an empty tagged-field section)."""
    h = int16(api_key) + int16(api_version) + int32(correlation_id) + string(client_id)
    if flexible:
        h += TAGGED_NONE
    return h


def request(api_key, api_version, correlation_id, body=b'', client_id='spool-test',
            flexible=False):
    """A whole framed request (length prefix + header + body)."""
    return frame(request_header(api_key, api_version, correlation_id, client_id,
                                flexible) + body)


def api_versions_request(version, correlation_id, software_name='spool-test',
                         software_version='1.0', client_id='spool-test'):
    if version >= 3:
        body = (compact_string(software_name) + compact_string(software_version)
                + TAGGED_NONE)
        return request(API_API_VERSIONS, version, correlation_id, body, client_id,
                       flexible=True)
    return request(API_API_VERSIONS, version, correlation_id, b'', client_id)


def metadata_request(version, correlation_id, topics=None, client_id='spool-test',
                     allow_auto_topic_creation=False):
    """Metadata request v0-v12.

    topics=None means "all topics" (v0 encodes that as an empty array).
    v9+ are flexible (header v2, compact encodings, tagged fields); v10+
    topics carry a (zero) topic id before the name.
    """
    flexible = version >= 9
    if version == 0:
        body = array(string(t) for t in (topics or []))
    elif not flexible:
        body = array(None if topics is None else [string(t) for t in topics])
    else:
        def topic(t):
            return ((b'\x00' * 16 if version >= 10 else b'')
                    + compact_string(t) + TAGGED_NONE)
        body = compact_array(None if topics is None else [topic(t) for t in topics])
    if version >= 4:
        body += boolean(allow_auto_topic_creation)
    if 8 <= version <= 10:
        body += boolean(False)          # include_cluster_authorized_operations
    if version >= 8:
        body += boolean(False)          # include_topic_authorized_operations
    if flexible:
        body += TAGGED_NONE
    return request(API_METADATA, version, correlation_id, body, client_id,
                   flexible=flexible)


def delete_records_request(correlation_id, topics, timeout_ms=10000,
                           client_id='spool-test'):
    """DeleteRecords v0 (the installed clients have no DeleteRecords).
    topics: {name: [(partition, offset)]}; offset -1 means the high watermark."""
    body = array(string(name) + array(int32(p) + int64(o) for p, o in parts)
                 for name, parts in topics.items())
    body += int32(timeout_ms)
    return request(API_DELETE_RECORDS, 0, correlation_id, body, client_id)


# ---------------------------------------------------------------- record batches

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    c = 0xffffffff
    for b in data:
        c = _CRC32C[(c ^ b) & 0xff] ^ (c >> 8)
    return c ^ 0xffffffff


CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD = 0, 1, 2, 3, 4
ATTR_LOG_APPEND_TIME = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20


def zstd_raw_frame(data):
    """A valid zstd frame that stores data in raw (uncompressed) blocks:
    single segment, 4-byte content size, blocks of at most 128 KiB."""
    out = bytearray(struct.pack('<I', 0xFD2FB528))
    out += bytes([0xA0]) + struct.pack('<I', len(data))   # FCS 4 bytes, single segment
    pos = 0
    while True:
        chunk = data[pos:pos + 128 * 1024]
        pos += len(chunk)
        last = pos >= len(data)
        hdr = (len(chunk) << 3) | (0 << 1) | (1 if last else 0)
        out += struct.pack('<I', hdr)[:3] + chunk
        if last:
            return bytes(out)


def compress(codec, data):
    if codec == CODEC_NONE:
        return data
    if codec == CODEC_GZIP:
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()
    if codec == CODEC_ZSTD:
        return zstd_raw_frame(data)
    raise ValueError('no encoder here for codec %d' % codec)


def record(offset_delta, timestamp_delta=0, key=None, value=b'', headers=(), attributes=0):
    """One record v2 (varints zigzag-encoded)."""
    def vb(b):
        return varlong(-1) if b is None else varlong(len(b)) + b
    body = (int8(attributes) + varlong(timestamp_delta) + varlong(offset_delta) + vb(key)
            + vb(value) + varlong(len(headers)))
    for hk, hv in headers:
        body += vb(hk) + vb(hv)
    return varlong(len(body)) + body


def record_batch(records, base_timestamp=None, codec=CODEC_NONE, attributes=0,
                 base_offset=0, producer_id=-1, producer_epoch=-1, base_sequence=-1,
                 record_count=None, last_offset_delta=None, max_timestamp=None,
                 partition_leader_epoch=-1, magic=2, body=None):
    """A record batch v2 as a producer sends it.

    records: dicts with key, value, timestamp (ms, default now), headers.
    Any header field can be forced (record_count, last_offset_delta, ...)
    to build batches a broker must refuse; body replaces the (uncompressed)
    records section."""
    now = int(time.time() * 1000)
    ts = [r.get('timestamp', now) for r in records]
    if base_timestamp is None:
        base_timestamp = ts[0] if ts else now
    if body is None:
        body = b''.join(record(i, ts[i] - base_timestamp, r.get('key'), r.get('value', b''),
                               r.get('headers', ())) for i, r in enumerate(records))
    if record_count is None:
        record_count = len(records)
    if last_offset_delta is None:
        last_offset_delta = max(len(records) - 1, 0)
    if max_timestamp is None:
        max_timestamp = max(ts) if ts else base_timestamp
    after_crc = (int16(attributes | codec) + int32(last_offset_delta) + int64(base_timestamp)
                 + int64(max_timestamp) + int64(producer_id) + int16(producer_epoch)
                 + int32(base_sequence) + int32(record_count) + compress(codec, body))
    crc = struct.pack('>I', crc32c(after_crc))
    rest = int32(partition_leader_epoch) + int8(magic) + crc + after_crc
    return int64(base_offset) + int32(len(rest)) + rest


def control_record(commit=True, coordinator_epoch=0):
    """A transaction marker record (key: version 0, type 0 abort / 1 commit)."""
    return {'key': int16(0) + int16(1 if commit else 0),
            'value': int16(0) + int32(coordinator_epoch)}


def produce_request(version, correlation_id, partitions, acks=-1, timeout_ms=10000,
                    transactional_id=None, client_id='spool-test'):
    """Produce v3-v12 (flexible from v9).  partitions: {(topic, index): records bytes}."""
    flex = version >= 9
    by_topic = {}
    for (topic, index), recs in partitions.items():
        by_topic.setdefault(topic, []).append((index, recs))
    st = compact_string if flex else string
    arr = compact_array if flex else array
    tags = TAGGED_NONE if flex else b''
    topics = []
    for topic, parts in by_topic.items():
        ps = [int32(i) + (compact_bytes(r) if flex else bytes_(r)) + tags for i, r in parts]
        topics.append(st(topic) + arr(ps) + tags)
    body = st(transactional_id) + int16(acks) + int32(timeout_ms) + arr(topics) + tags
    return request(API_PRODUCE, version, correlation_id, body, client_id, flexible=flex)


def parse_produce_response(payload, version):
    """Produce response v3-v12 -> {'correlation_id', 'throttle_time_ms',
    'partitions': {(topic, index): {...}}, 'trailing'}."""
    flex = version >= 9
    r = Reader(payload)
    out = {'correlation_id': r.int32(), 'partitions': {}}
    if flex:
        r.tagged_fields()
    st = r.compact_string if flex else r.string

    def arr(item):
        return r.compact_array(item) if flex else r.array(item)

    for _ in range(r.uvarint() - 1 if flex else r.int32()):
        topic = st()
        for _ in range(r.uvarint() - 1 if flex else r.int32()):
            p = {'index': r.int32(), 'error_code': r.int16(), 'base_offset': r.int64(),
                 'log_append_time_ms': r.int64()}
            if version >= 5:
                p['log_start_offset'] = r.int64()
            if version >= 8:
                def rec_err(rr):
                    e = (rr.int32(), st())
                    if flex:
                        rr.tagged_fields()
                    return e
                p['record_errors'] = arr(rec_err)
                p['error_message'] = st()
            if flex:
                p['tagged_fields'] = r.tagged_fields()
            out['partitions'][(topic, p['index'])] = p
        if flex:
            r.tagged_fields()
    out['throttle_time_ms'] = r.int32()
    if flex:
        r.tagged_fields()
    out['trailing'] = r.remaining()
    return out


def produce(port_or_sock, version, partitions, **kw):
    """Sends one Produce request and returns its parsed response."""
    payload = send_recv(port_or_sock, produce_request(version, 77, partitions, **kw))
    resp = parse_produce_response(payload, version)
    assert resp['correlation_id'] == 77 and resp['trailing'] == 0, resp
    return resp


def init_producer_id_request(version, correlation_id, transactional_id=None,
                             transaction_timeout_ms=60000, producer_id=-1, producer_epoch=-1,
                             client_id='spool-test'):
    """InitProducerId v0-6 (flexible from v2; producer id and epoch from v3;
    v6's 2PC flags false)."""
    flex = version >= 2
    body = (compact_string if flex else string)(transactional_id) + int32(transaction_timeout_ms)
    if version >= 3:
        body += int64(producer_id) + int16(producer_epoch)
    if version >= 6:
        body += boolean(False) + boolean(False)     # enable_2pc, keep_prepared_txn
    if flex:
        body += TAGGED_NONE
    return request(API_INIT_PRODUCER_ID, version, correlation_id, body, client_id, flexible=flex)


def parse_init_producer_id_response(payload, version):
    """InitProducerId response v0-6 -> {'correlation_id', 'throttle_time_ms',
    'error_code', 'producer_id', 'producer_epoch', 'trailing'}."""
    flex = version >= 2
    r = Reader(payload)
    out = {'correlation_id': r.int32()}
    if flex:
        r.tagged_fields()
    out.update(throttle_time_ms=r.int32(), error_code=r.int16(), producer_id=r.int64(),
               producer_epoch=r.int16())
    if version >= 6:
        out.update(ongoing_txn_producer_id=r.int64(), ongoing_txn_producer_epoch=r.int16())
    if flex:
        r.tagged_fields()
    out['trailing'] = r.remaining()
    return out


def init_producer_id(port_or_sock, version, **kw):
    """Sends one InitProducerId request and returns its parsed response."""
    payload = send_recv(port_or_sock, init_producer_id_request(version, 79, **kw))
    resp = parse_init_producer_id_response(payload, version)
    assert resp['correlation_id'] == 79 and resp['trailing'] == 0, resp
    return resp


def fetch_request(version, correlation_id, topic, partition, offset, max_bytes=1 << 20,
                  client_id='spool-test'):
    """Fetch v4-v11 (not flexible) for one partition, no wait."""
    part = int32(partition)
    if version >= 9:
        part += int32(-1)                       # current leader epoch
    part += int64(offset)
    if version >= 5:
        part += int64(-1)                       # log start offset
    part += int32(max_bytes)
    body = int32(-1) + int32(0) + int32(1) + int32(max_bytes) + int8(0)
    if version >= 7:
        body += int32(0) + int32(-1)            # sessionless
    body += array([string(topic) + array([part])])
    if version >= 7:
        body += array([])                       # forgotten topics
    if version >= 11:
        body += string('')                      # rack id
    return request(API_FETCH, version, correlation_id, body, client_id)


def parse_fetch_response(payload, version):
    """Fetch response v4-v11 -> {'error_code', 'partitions': {(topic, index): {...}}}."""
    r = Reader(payload)
    out = {'correlation_id': r.int32(), 'throttle_time_ms': r.int32(), 'partitions': {}}
    if version >= 7:
        out['error_code'] = r.int16()
        out['session_id'] = r.int32()
    for _ in range(r.int32()):
        topic = r.string()
        for _ in range(r.int32()):
            p = {'index': r.int32(), 'error_code': r.int16(), 'high_watermark': r.int64(),
                 'last_stable_offset': r.int64()}
            if version >= 5:
                p['log_start_offset'] = r.int64()
            r.array(lambda rr: (rr.int64(), rr.int64()))
            if version >= 11:
                p['preferred_read_replica'] = r.int32()
            n = r.int32()
            p['records'] = r._take(n) if n > 0 else b''
            out['partitions'][(topic, p['index'])] = p
    out['trailing'] = r.remaining()
    return out


def fetch(port_or_sock, version, topic, partition, offset, **kw):
    payload = send_recv(port_or_sock, fetch_request(version, 78, topic, partition, offset, **kw))
    resp = parse_fetch_response(payload, version)
    assert resp['correlation_id'] == 78 and resp['trailing'] == 0, resp
    return resp['partitions'][(topic, partition)]


# ---------------------------------------------------------------- socket I/O


def connect(port, host='127.0.0.1', timeout=5.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_exact(sock, n, timeout=5.0):
    """Read exactly n bytes; raises EOFError on orderly close, socket.timeout on timeout."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout('timed out after %d/%d bytes' % (len(buf), n))
        sock.settimeout(remaining)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError('connection closed after %d/%d bytes' % (len(buf), n))
        buf += chunk
    return bytes(buf)


def recv_frame(sock, timeout=5.0):
    """Read one size-prefixed response frame; returns the payload (without size)."""
    deadline = time.monotonic() + timeout
    (size,) = struct.unpack('>i', recv_exact(sock, 4, timeout))
    if size < 0 or size > 64 * 1024 * 1024:
        raise ValueError('bad response size %d' % size)
    return recv_exact(sock, size, max(0.0, deadline - time.monotonic()))


def send_recv(port_or_sock, data, timeout=5.0):
    """Send bytes and read one response frame. Accepts a port or a connected socket."""
    if isinstance(port_or_sock, int):
        with connect(port_or_sock, timeout=timeout) as s:
            s.sendall(data)
            return recv_frame(s, timeout)
    port_or_sock.sendall(data)
    return recv_frame(port_or_sock, timeout)


def wait_closed(sock, timeout=5.0):
    """Wait until the peer closes: returns True on EOF (or reset), False on timeout.

    Any data the peer sends before closing is drained and ignored.
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not chunk:
            return True


# ---------------------------------------------------------------- decoding


class Reader:
    def __init__(self, data):
        self.data = bytes(data)
        self.pos = 0

    def _take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError('short read: need %d at %d of %d' % (n, self.pos, len(self.data)))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int8(self):
        return struct.unpack('>b', self._take(1))[0]

    def boolean(self):
        return self._take(1) != b'\x00'

    def int16(self):
        return struct.unpack('>h', self._take(2))[0]

    def int32(self):
        return struct.unpack('>i', self._take(4))[0]

    def int64(self):
        return struct.unpack('>q', self._take(8))[0]

    def uvarint(self):
        shift = 0
        v = 0
        while True:
            b = self._take(1)[0]
            v |= (b & 0x7f) << shift
            if not b & 0x80:
                return v
            shift += 7
            if shift > 35:
                raise ValueError('uvarint too long')

    def string(self):
        n = self.int16()
        if n < 0:
            return None
        return self._take(n).decode()

    def compact_string(self):
        n = self.uvarint()
        if n == 0:
            return None
        return self._take(n - 1).decode()

    def array(self, item):
        n = self.int32()
        if n < 0:
            return None
        return [item(self) for _ in range(n)]

    def compact_array(self, item):
        n = self.uvarint()
        if n == 0:
            return None
        return [item(self) for _ in range(n - 1)]

    def tagged_fields(self):
        out = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            size = self.uvarint()
            out[tag] = self._take(size)
        return out

    def remaining(self):
        return len(self.data) - self.pos


def parse_api_versions_response(payload, version):
    """Decode an ApiVersions response (header v0 always). Returns a dict:
    correlation_id, error_code, api_keys {key: (min, max)}, throttle_time_ms."""
    r = Reader(payload)
    out = {'correlation_id': r.int32(), 'error_code': r.int16()}
    if version >= 3:
        def entry(rr):
            e = (rr.int16(), rr.int16(), rr.int16())
            rr.tagged_fields()
            return e
        entries = r.compact_array(entry)
    else:
        entries = r.array(lambda rr: (rr.int16(), rr.int16(), rr.int16()))
    out['api_keys'] = {k: (lo, hi) for k, lo, hi in (entries or [])}
    out['api_key_list'] = [k for k, _, _ in (entries or [])]
    if version >= 1:
        out['throttle_time_ms'] = r.int32()
    if version >= 3:
        out['tagged_fields'] = r.tagged_fields()
    out['trailing'] = r.remaining()
    return out


def parse_metadata_response_v1(payload):
    """Decode a Metadata v1 response (response header v0)."""
    r = Reader(payload)
    out = {'correlation_id': r.int32()}

    def broker(rr):
        return {'node_id': rr.int32(), 'host': rr.string(), 'port': rr.int32(),
                'rack': rr.string()}

    def partition(rr):
        return {'error_code': rr.int16(), 'partition_index': rr.int32(),
                'leader_id': rr.int32(),
                'replica_nodes': rr.array(lambda x: x.int32()),
                'isr_nodes': rr.array(lambda x: x.int32())}

    def topic(rr):
        return {'error_code': rr.int16(), 'name': rr.string(),
                'is_internal': rr.boolean(), 'partitions': rr.array(partition)}

    out['brokers'] = r.array(broker)
    out['controller_id'] = r.int32()
    out['topics'] = r.array(topic)
    out['trailing'] = r.remaining()
    return out


def parse_metadata_response(payload, version):
    """Decode a Metadata response of any version 0-12."""
    flex = version >= 9
    r = Reader(payload)
    out = {'correlation_id': r.int32()}
    if flex:
        r.tagged_fields()                       # response header v1
    s = r.compact_string if flex else r.string
    arr = r.compact_array if flex else r.array

    def sub_array(rr, item):
        return rr.compact_array(item) if flex else rr.array(item)

    def tags(rr):
        if flex:
            rr.tagged_fields()

    if version >= 3:
        out['throttle_time_ms'] = r.int32()

    def broker(rr):
        b = {'node_id': rr.int32(), 'host': s(), 'port': rr.int32()}
        b['rack'] = s() if version >= 1 else None
        tags(rr)
        return b

    def partition(rr):
        p = {'error_code': rr.int16(), 'partition_index': rr.int32(),
             'leader_id': rr.int32()}
        if version >= 7:
            p['leader_epoch'] = rr.int32()
        p['replica_nodes'] = sub_array(rr, lambda x: x.int32())
        p['isr_nodes'] = sub_array(rr, lambda x: x.int32())
        if version >= 5:
            p['offline_replicas'] = sub_array(rr, lambda x: x.int32())
        tags(rr)
        return p

    def topic(rr):
        t = {'error_code': rr.int16(), 'name': s()}
        if version >= 10:
            t['topic_id'] = rr._take(16)
        if version >= 1:
            t['is_internal'] = rr.boolean()
        t['partitions'] = sub_array(rr, partition)
        if version >= 8:
            t['topic_authorized_operations'] = rr.int32()
        tags(rr)
        return t

    out['brokers'] = arr(broker)
    if version >= 2:
        out['cluster_id'] = s()
    if version >= 1:
        out['controller_id'] = r.int32()
    out['topics'] = arr(topic)
    if 8 <= version <= 10:
        out['cluster_authorized_operations'] = r.int32()
    if flex:
        out['tagged_fields'] = r.tagged_fields()
    out['trailing'] = r.remaining()
    return out


def correlation_id(payload):
    return struct.unpack('>i', payload[:4])[0]


def parse_delete_records_response_v0(payload):
    """Decode a DeleteRecords v0 response (response header v0).
    Returns {topic: {partition: (low_watermark, error_code)}}."""
    r = Reader(payload)
    r.int32()                                   # correlation id
    r.int32()                                   # throttle_time_ms

    def part(rr):
        return rr.int32(), rr.int64(), rr.int16()

    def topic(rr):
        return rr.string(), {p: (lw, err) for p, lw, err in rr.array(part)}

    out = dict(r.array(topic))
    if r.remaining():
        raise ValueError('%d trailing bytes' % r.remaining())
    return out


def delete_records(port, topics, correlation_id=1, timeout=15.0):
    """Send DeleteRecords v0 on a fresh connection; see delete_records_request."""
    payload = send_recv(port, delete_records_request(correlation_id, topics), timeout)
    return parse_delete_records_response_v0(payload)


API_FETCH = 1


def fetch_request_v4(correlation_id, topics, max_wait_ms=100, min_bytes=1,
                     max_bytes=64 * 1024 * 1024, client_id='spool-test'):
    """Fetch v4 (by topic name). topics: [(name, [(partition, offset,
    partition_max_bytes), ...]), ...], sent exactly as given (repeats too)."""
    def part(p):
        partition, offset, pmax = p
        return int32(partition) + int64(offset) + int32(pmax)
    body = (int32(-1) + int32(max_wait_ms) + int32(min_bytes) + int32(max_bytes)
            + int8(0)                                   # isolation: read uncommitted
            + array(string(name) + array(part(p) for p in parts)
                    for name, parts in topics))
    return request(API_FETCH, 4, correlation_id, body, client_id)


def parse_fetch_response_v4(payload):
    """Decode a Fetch v4 response: (correlation_id, [(topic, [partition
    dict with partition, error, hw, lso, records])]) in response order."""
    r = Reader(payload)
    corr = r.int32()
    r.int32()                                   # throttle_time_ms
    topics = []
    for _ in range(r.int32()):
        name = r.string()
        parts = []
        for _ in range(r.int32()):
            p = {'partition': r.int32(), 'error': r.int16(), 'hw': r.int64(),
                 'lso': r.int64()}
            for _ in range(max(r.int32(), 0)):  # aborted transactions
                r.int64(), r.int64()
            n = r.int32()
            p['records'] = r._take(n) if n > 0 else b''
            parts.append(p)
        topics.append((name, parts))
    assert r.remaining() == 0, r.remaining()
    return corr, topics


# ------------------------------------------------- producer ids, offsets


LATEST_TIMESTAMP, EARLIEST_TIMESTAMP = -1, -2


def list_offsets_request(correlation_id, topic, partitions, timestamp=LATEST_TIMESTAMP,
                         isolation_level=0, version=5, client_id='spool-test'):
    """ListOffsets v1-v5 (not flexible) for one topic: the same timestamp
    (-1 latest, -2 earliest, or a time) for each of `partitions`."""
    assert 1 <= version <= 5, version
    parts = []
    for p in partitions:
        e = int32(p)
        if version >= 4:
            e += int32(-1)                      # current leader epoch
        parts.append(e + int64(timestamp))
    body = int32(-1)                            # replica id: a consumer
    if version >= 2:
        body += int8(isolation_level)
    body += array([string(topic) + array(parts)])
    return request(API_LIST_OFFSETS, version, correlation_id, body, client_id)


def parse_list_offsets_response(payload, version=5):
    """ListOffsets response v1-v5 -> {(topic, partition): {'error_code',
    'timestamp', 'offset', 'leader_epoch' (v4+)}}."""
    r = Reader(payload)
    r.int32()                                   # correlation id
    if version >= 2:
        r.int32()                               # throttle_time_ms
    out = {}
    for _ in range(r.int32()):
        topic = r.string()
        for _ in range(r.int32()):
            p = {'index': r.int32(), 'error_code': r.int16(), 'timestamp': r.int64(),
                 'offset': r.int64()}
            if version >= 4:
                p['leader_epoch'] = r.int32()
            out[(topic, p['index'])] = p
    if r.remaining():
        raise ValueError('%d trailing bytes' % r.remaining())
    return out


def end_offset(port_or_sock, topic, partition, version=5):
    """The partition's latest offset (the high watermark) by ListOffsets;
    asserts no error."""
    payload = send_recv(port_or_sock, list_offsets_request(80, topic, [partition], version=version))
    p = parse_list_offsets_response(payload, version)[(topic, partition)]
    assert p['error_code'] == 0, p
    return p['offset']
