"""A schema-driven Kafka protocol codec for the tests, in plain Python.

It reads Kafka's own message schemas (../shared/kafka-protocol, or
$SPOOL_KAFKA_PROTOCOL) through tools/gen_codec.py's `load`, so it sees
exactly the union of message/ (Kafka 4.3) and message-legacy/ (the older
versions Kafka 4 removed) that the C codec is generated from, and encodes
or decodes any request, response or header of any version to or from
plain dicts:

    S = kafka_schema.schemas()
    frame = S.encode_request(3, 12, {'Topics': [{'Name': 'a'}]}, correlation_id=7)
    hdr, body = S.decode_request(frame[4:])          # payload without the size
    hdr, body = S.decode_response(3, 12, payload)    # body['Topics'][0]['ErrorCode']

Values: keys are the schema's field names (`ErrorCode`, `Topics`, ...);
int8..int64, uint16 and float64 as numbers, bool, string as str, bytes and
records as bytes, uuid as the canonical 8-4-4-4-12 hex string, arrays as
lists, structs as dicts; None for null.  A decoded struct holds every
field the version has, tagged ones included (their default when the tag
is absent, as Kafka reads them); tags the schema does not know are kept
under '_tagged' ({tag: raw bytes}) and written back.  Encoding takes a
missing field as its schema default and drops fields the version does not
have (`strict=True` refuses a non-default value there instead, as Kafka's
generated code does); a tagged field is written only when it differs from
its default, as Kafka writes them, so decode then encode gives the same
bytes.

Wire rules followed: flexible versions use compact (uvarint length + 1)
strings, bytes and arrays and end every struct with a tagged-field
section; `flexibleVersions: "none"` on a field (RequestHeader.ClientId)
keeps the classic encoding; nullable struct fields carry an int8 presence
byte; request header v2 for flexible request versions, else v1 (v0 for
ControlledShutdown v0); response header v1 for flexible versions except
ApiVersions, which always answers with header v0 (KIP-511).
"""

import os
import struct
import sys
import uuid as _uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tools'))
import gen_codec  # noqa: E402  (tools/gen_codec.py: the one schema loader)

SCHEMA_DIR = Path(os.environ.get('SPOOL_KAFKA_PROTOCOL') or (REPO.parent / 'shared' / 'kafka-protocol'))
ZERO_UUID = '00000000-0000-0000-0000-000000000000'


class CodecError(ValueError):
    """Bytes that do not decode, or a value that cannot be encoded."""


def _in(v, r):
    return r is not None and r[0] <= v <= r[1]


def _in_any(v, ranges):
    return any(_in(v, r) for r in ranges)


# ---------------------------------------------------------------- defaults


def _int_default(d):
    if d is None or d == '':
        return 0
    if isinstance(d, bool):
        return int(d)
    if isinstance(d, int):
        return d
    s = str(d).strip()
    return int(s, 16) if s.lower().startswith(('0x', '-0x')) else int(s)


def field_default(f, v):
    """The schema default of field f (a gen_codec Field) at version v."""
    d = f.default
    if f.array:
        return None if d == 'null' else []
    if f.struct:
        if f.nullable and d in (None, 'null'):
            return None
        return struct_default(f.struct, v)
    t = f.type
    if t == 'bool':
        return d is True or str(d).lower() == 'true'
    if t in ('int8', 'int16', 'uint16', 'int32', 'int64'):
        return _int_default(d)
    if t == 'float64':
        return float(d) if d not in (None, '') else 0.0
    if t == 'string':
        if d == 'null':
            return None
        return '' if d is None else str(d)
    if t in ('bytes', 'records'):
        if d == 'null' or (d is None and f.nullable):
            return None
        return b''
    if t == 'uuid':
        return ZERO_UUID
    raise CodecError('no default for type %s' % t)


def struct_default(st, v):
    return {f.name: field_default(f, v) for f in st.fields
            if f.versions is not None and _in(v, f.versions)}


# ---------------------------------------------------------------- reading


class Reader:
    def __init__(self, data, pos=0, end=None):
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def left(self):
        return self.end - self.pos

    def take(self, n):
        if n < 0 or self.pos + n > self.end:
            raise CodecError('short read: need %d bytes at %d, %d left' % (n, self.pos, self.left()))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return bytes(b)

    def unpack(self, fmt, n):
        return struct.unpack(fmt, self.take(n))[0]

    def uvarint(self):
        v = shift = 0
        while True:
            b = self.take(1)[0]
            v |= (b & 0x7f) << shift
            if not b & 0x80:
                return v
            shift += 7
            if shift > 28:
                raise CodecError('uvarint longer than 5 bytes at %d' % self.pos)


_FMT = {'int8': ('>b', 1), 'int16': ('>h', 2), 'uint16': ('>H', 2), 'int32': ('>i', 4),
        'int64': ('>q', 8), 'float64': ('>d', 8)}


def _read_len(r, flex, classic_fmt, nullable, what):
    """Length of a string/bytes/array, or None for null."""
    if flex:
        n = r.uvarint() - 1
    else:
        n = r.unpack(*classic_fmt)
    if n < 0:
        if n == -1 and nullable:
            return None
        raise CodecError('%s: length %d (%s)' % (what, n, 'not nullable' if n == -1 else 'negative'))
    return n


def _read_scalar(t, r, flex, nullable, what):
    if t in _FMT:
        return r.unpack(*_FMT[t])
    if t == 'bool':
        b = r.take(1)[0]
        return b != 0
    if t == 'uuid':
        return str(_uuid.UUID(bytes=r.take(16)))
    if t == 'string':
        n = _read_len(r, flex, ('>h', 2), nullable, what)
        if n is None:
            return None
        try:
            return r.take(n).decode('utf-8')
        except UnicodeDecodeError as e:
            raise CodecError('%s: not UTF-8: %s' % (what, e))
    if t in ('bytes', 'records'):
        n = _read_len(r, flex, ('>i', 4), nullable, what)
        return None if n is None else r.take(n)
    raise CodecError('unknown type %s' % t)


def _read_value(f, r, v, flex, path):
    fx = flex and not f.flex_none
    nullable = _in(v, f.nullable)
    if f.array:
        n = _read_len(r, fx, ('>i', 4), nullable, path)
        if n is None:
            return None
        if n > r.left():
            raise CodecError('%s: %d elements, %d bytes left' % (path, n, r.left()))
        if f.struct:
            return [_read_struct(f.struct, r, v, flex, '%s[%d]' % (path, i)) for i in range(n)]
        return [_read_scalar(f.elem, r, fx, False, path) for _ in range(n)]
    if f.struct:
        if nullable:
            if r.unpack('>b', 1) < 0:
                return None
        return _read_struct(f.struct, r, v, flex, path)
    return _read_scalar(f.type, r, fx, nullable, path)


def _read_struct(st, r, v, flex, path):
    out = {}
    for f in st.fields:
        if f.versions is None or not _in(v, f.versions):
            continue
        sub = '%s.%s' % (path, f.name) if path else f.name
        if _in_any(v, gen_codec.regular_range(f)):
            out[f.name] = _read_value(f, r, v, flex, sub)
        else:
            out[f.name] = field_default(f, v)
    if flex:
        tagged = {f.tag: f for f in st.fields if f.tagged and _in(v, f.tagged)}
        last = -1
        for _ in range(r.uvarint()):
            tag = r.uvarint()
            size = r.uvarint()
            if tag <= last:
                raise CodecError('%s: tag %d after tag %d' % (path or '<top>', tag, last))
            last = tag
            raw = r.take(size)
            f = tagged.get(tag)
            if f is None:
                out.setdefault('_tagged', {})[tag] = raw
                continue
            sr = Reader(raw)
            sub = '%s.%s' % (path, f.name) if path else f.name
            out[f.name] = _read_value(f, sr, v, flex, sub)
            if sr.left():
                raise CodecError('%s: %d bytes left in tagged field' % (sub, sr.left()))
    return out


# ---------------------------------------------------------------- writing


def uvarint(n):
    if n < 0:
        raise CodecError('uvarint of %d' % n)
    out = bytearray()
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _uuid_bytes(x):
    if x is None:
        return b'\0' * 16
    if isinstance(x, (bytes, bytearray)):
        if len(x) != 16:
            raise CodecError('uuid of %d bytes' % len(x))
        return bytes(x)
    if isinstance(x, _uuid.UUID):
        return x.bytes
    s = str(x)
    if len(s) == 22:  # Kafka's Uuid.toString(): URL-safe base64, no padding
        import base64
        return base64.urlsafe_b64decode(s + '==')
    return _uuid.UUID(s).bytes


def _write_len(out, n, flex, classic_fmt):
    if flex:
        out += uvarint(n + 1)
    else:
        out += struct.pack(classic_fmt, n)


def _write_scalar(out, t, x, flex, nullable, path):
    try:
        if t in _FMT:
            out += struct.pack(_FMT[t][0], x)
            return
    except struct.error as e:
        raise CodecError('%s: %r: %s' % (path, x, e))
    if t == 'bool':
        out += b'\x01' if x else b'\x00'
        return
    if t == 'uuid':
        out += _uuid_bytes(x)
        return
    if t in ('string', 'bytes', 'records'):
        if x is None:
            if not nullable:
                raise CodecError('%s: null where the version has no null' % path)
            _write_len(out, -1, flex, '>h' if t == 'string' else '>i')
            return
        b = x.encode('utf-8') if isinstance(x, str) else bytes(x)
        _write_len(out, len(b), flex, '>h' if t == 'string' else '>i')
        out += b
        return
    raise CodecError('unknown type %s' % t)


def _write_value(out, f, x, v, flex, path, strict):
    fx = flex and not f.flex_none
    nullable = _in(v, f.nullable)
    if f.array:
        if x is None:
            if not nullable:
                raise CodecError('%s: null array where the version has no null' % path)
            _write_len(out, -1, fx, '>i')
            return
        _write_len(out, len(x), fx, '>i')
        for i, e in enumerate(x):
            if f.struct:
                _write_struct(out, f.struct, e, v, flex, '%s[%d]' % (path, i), strict)
            else:
                _write_scalar(out, f.elem, e, fx, False, path)
        return
    if f.struct:
        if nullable:
            out += struct.pack('>b', -1 if x is None else 1)
            if x is None:
                return
        elif x is None:
            raise CodecError('%s: null struct where the version has no null' % path)
        _write_struct(out, f.struct, x, v, flex, path, strict)
        return
    _write_scalar(out, f.type, x, fx, nullable, path)


def _is_default(f, x, v):
    d = field_default(f, v)
    if f.struct and not f.array and isinstance(x, dict) and isinstance(d, dict):
        return all(x.get(k, dv) == dv for k, dv in d.items()) and not x.get('_tagged')
    if f.type == 'uuid':
        return _uuid_bytes(x) == b'\0' * 16
    return x == d


def _write_struct(out, st, x, v, flex, path, strict):
    x = x or {}
    if strict:
        known = {f.name for f in st.fields} | {'_tagged'}
        extra = set(x) - known
        if extra:
            raise CodecError('%s: no such field(s) %s' % (path or '<top>', sorted(extra)))
    tagged = []
    for f in st.fields:
        sub = '%s.%s' % (path, f.name) if path else f.name
        present = f.versions is not None and _in(v, f.versions)
        if not present:
            if strict and f.name in x and not _is_default(f, x[f.name], v):
                raise CodecError('%s: a non-default value at version %d, which has no such field' % (sub, v))
            continue
        val = x[f.name] if f.name in x else field_default(f, v)
        if _in_any(v, gen_codec.regular_range(f)):
            _write_value(out, f, val, v, flex, sub, strict)
        elif f.name in x and not _is_default(f, val, v):
            b = bytearray()
            _write_value(b, f, val, v, flex, sub, strict)
            tagged.append((f.tag, bytes(b)))
    if flex:
        for tag, raw in (x.get('_tagged') or {}).items():
            tagged.append((int(tag), bytes(raw)))
        tagged.sort(key=lambda t: t[0])
        out += uvarint(len(tagged))
        for tag, raw in tagged:
            out += uvarint(tag) + uvarint(len(raw)) + raw


# ---------------------------------------------------------------- schemas


class Schemas:
    """All of Kafka's schemas, by API key and kind."""

    def __init__(self, schema_dir=SCHEMA_DIR):
        self.dir = Path(schema_dir)
        msgs = gen_codec.load(str(self.dir))
        self.requests, self.responses, self.by_name = {}, {}, {}
        for m in msgs:
            if m.folder != 'message':
                continue
            self.by_name[m.name] = m
            if m.kind == 'request':
                self.requests[m.api_key] = m
            elif m.kind == 'response':
                self.responses[m.api_key] = m
        self.request_header = self.by_name['RequestHeader']
        self.response_header = self.by_name['ResponseHeader']

    # -- names and versions

    def api_name(self, key):
        m = self.requests.get(key)
        return m.name[:-len('Request')] if m else 'Api%d' % key

    def api_key(self, name):
        for k, m in self.requests.items():
            if m.name in (name, name + 'Request'):
                return k
        raise KeyError(name)

    def valid_versions(self, key):
        return self.requests[key].valid

    def flexible(self, key, v):
        return _in(v, self.requests[key].flex)

    def request_header_version(self, key, v):
        if key == 7 and v == 0:          # ControlledShutdown v0
            return 0
        return 2 if self.flexible(key, v) else 1

    def response_header_version(self, key, v):
        if key == 18:                    # ApiVersions: always v0 (KIP-511)
            return 0
        return 1 if self.flexible(key, v) else 0

    # -- whole messages

    @staticmethod
    def _top(m):
        return m.by_name[m.name]

    def decode(self, m, data, v, allow_trailing=False):
        """Decodes bytes as message m (a gen_codec Message) at version v."""
        if isinstance(m, str):
            m = self.by_name[m]
        if not _in(v, m.valid):
            raise CodecError('%s has no version %d (%s)' % (m.name, v, gen_codec.vstr(m.valid)))
        r = Reader(data)
        out = _read_struct(self._top(m), r, v, _in(v, m.flex), '')
        if r.left() and not allow_trailing:
            raise CodecError('%s v%d: %d bytes after the body' % (m.name, v, r.left()))
        return out

    def decode_at(self, m, data, v, pos=0):
        """(value, position after it): for a message followed by more bytes."""
        if isinstance(m, str):
            m = self.by_name[m]
        r = Reader(data, pos)
        out = _read_struct(self._top(m), r, v, _in(v, m.flex), '')
        return out, r.pos

    def encode(self, m, value, v, strict=False):
        if isinstance(m, str):
            m = self.by_name[m]
        if not _in(v, m.valid):
            raise CodecError('%s has no version %d (%s)' % (m.name, v, gen_codec.vstr(m.valid)))
        out = bytearray()
        _write_struct(out, self._top(m), value, v, _in(v, m.flex), '', strict)
        return bytes(out)

    def default(self, m, v):
        """Every field of message m at version v at its default."""
        if isinstance(m, str):
            m = self.by_name[m]
        return struct_default(self._top(m), v)

    # -- requests and responses with their headers

    def encode_request(self, key, v, body, correlation_id=1, client_id='spool-test',
                       header_tags=None, frame=True, strict=False):
        """Header + body (+ the int32 size in front when frame=True)."""
        hv = self.request_header_version(key, v)
        hdr = {'RequestApiKey': key, 'RequestApiVersion': v, 'CorrelationId': correlation_id,
               'ClientId': client_id}
        if header_tags:
            hdr['_tagged'] = header_tags
        b = self.encode(self.request_header, hdr, hv) + self.encode(self.requests[key], body, v, strict)
        return struct.pack('>i', len(b)) + b if frame else b

    def request_key_version(self, payload):
        if len(payload) < 4:
            raise CodecError('request of %d bytes' % len(payload))
        return struct.unpack('>hh', payload[:4])

    def decode_request(self, payload, allow_trailing=False):
        """(header dict, body dict) of a request payload (no size prefix)."""
        key, v = self.request_key_version(payload)
        if key not in self.requests:
            raise CodecError('unknown API key %d' % key)
        hdr, pos = self.decode_at(self.request_header, payload, self.request_header_version(key, v))
        body = self.decode(self.requests[key], payload[pos:], v, allow_trailing)
        return hdr, body

    def split_request(self, payload):
        """(header dict, body bytes): the header decoded, the body left as sent."""
        key, v = self.request_key_version(payload)
        hdr, pos = self.decode_at(self.request_header, payload, self.request_header_version(key, v))
        return hdr, payload[pos:]

    def encode_response(self, key, v, body, correlation_id=1, header_tags=None, frame=True):
        hdr = {'CorrelationId': correlation_id}
        if header_tags:
            hdr['_tagged'] = header_tags
        b = (self.encode(self.response_header, hdr, self.response_header_version(key, v))
             + self.encode(self.responses[key], body, v))
        return struct.pack('>i', len(b)) + b if frame else b

    def decode_response(self, key, v, payload, allow_trailing=False):
        """(header dict, body dict) of a response payload (no size prefix)."""
        hdr, pos = self.decode_at(self.response_header, payload, self.response_header_version(key, v))
        body = self.decode(self.responses[key], payload[pos:], v, allow_trailing)
        return hdr, body


_SCHEMAS = None


def schemas():
    """The Schemas of SCHEMA_DIR, loaded once per process."""
    global _SCHEMAS
    if _SCHEMAS is None:
        _SCHEMAS = Schemas()
    return _SCHEMAS


# ---------------------------------------------------------------- record batches


def parse_batches(data):
    """Record batches (magic 2) of a records field -> list of header dicts,
    each with 'records' (the bytes after the header; compressed as sent).
    A partial batch at the end (Fetch may cut one) is returned as
    {'partial': bytes}."""
    out = []
    pos = 0
    data = data or b''
    while pos < len(data):
        if len(data) - pos < 61:
            out.append({'partial': data[pos:]})
            break
        base, length = struct.unpack('>qi', data[pos:pos + 12])
        if length < 49 or pos + 12 + length > len(data):
            out.append({'partial': data[pos:]})
            break
        b = data[pos:pos + 12 + length]
        (ple, magic, crc, attrs, lod, bts, mts, pid, pepoch, bseq, count) = struct.unpack(
            '>ibIhiqqqhii', b[12:61])
        out.append({'BaseOffset': base, 'Length': length, 'PartitionLeaderEpoch': ple,
                    'Magic': magic, 'Crc': crc, 'Attributes': attrs, 'LastOffsetDelta': lod,
                    'BaseTimestamp': bts, 'MaxTimestamp': mts, 'ProducerId': pid,
                    'ProducerEpoch': pepoch, 'BaseSequence': bseq, 'RecordCount': count,
                    'records': b[61:]})
        pos += 12 + length
    return out
