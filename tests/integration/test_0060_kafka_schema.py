"""tests/integration/kafka_schema.py, the schema-driven Python codec the
differential tests decode both brokers' answers with: hand-made byte
strings, and a round trip of every message at every version (no broker)."""
import struct

import kafka_wire as kw
import pytest
from kafka_schema import CodecError, _in, _in_any, gen_codec, parse_batches, schemas

S = schemas()


# ---------------------------------------------------------------- hand-made bytes


def test_api_versions_v0_request_and_response():
    frame = S.encode_request(18, 0, {}, correlation_id=11, client_id='spool-test')
    assert frame == kw.api_versions_request(0, 11)
    hdr, body = S.decode_request(frame[4:])
    assert hdr == {'RequestApiKey': 18, 'RequestApiVersion': 0, 'CorrelationId': 11,
                   'ClientId': 'spool-test'}
    assert body == {}
    # correlation 5, error 0, [ (0, 0, 11), (18, 0, 4) ]
    payload = (struct.pack('>ih', 5, 0) + struct.pack('>i', 2) + struct.pack('>hhh', 0, 0, 11)
               + struct.pack('>hhh', 18, 0, 4))
    hdr, body = S.decode_response(18, 0, payload)
    assert hdr == {'CorrelationId': 5}
    assert body == {'ErrorCode': 0, 'ApiKeys': [
        {'ApiKey': 0, 'MinVersion': 0, 'MaxVersion': 11},
        {'ApiKey': 18, 'MinVersion': 0, 'MaxVersion': 4}]}
    assert S.encode_response(18, 0, body, correlation_id=5, frame=False) == payload


def test_api_versions_v3_request_header_v2_response_header_v0():
    frame = S.encode_request(18, 3, {'ClientSoftwareName': 'spool-test',
                                     'ClientSoftwareVersion': '1.0'}, correlation_id=12)
    assert frame == kw.api_versions_request(3, 12, 'spool-test', '1.0')
    # v3 response: header v0 (no tags), compact array, tagged fields, a known
    # tag (0: SupportedFeatures, empty) and an unknown one (9)
    payload = (struct.pack('>ih', 12, 0) + b'\x02' + struct.pack('>hhh', 18, 0, 4) + b'\x00'
               + struct.pack('>i', 0) + b'\x02' + b'\x00\x01\x01' + b'\x09\x02\xab\xcd')
    hdr, body = S.decode_response(18, 3, payload)
    assert hdr == {'CorrelationId': 12}
    assert body['ApiKeys'] == [{'ApiKey': 18, 'MinVersion': 0, 'MaxVersion': 4}]
    assert body['SupportedFeatures'] == []
    assert body['FinalizedFeaturesEpoch'] == -1          # tagged, absent: its default
    assert body['_tagged'] == {9: b'\xab\xcd'}
    # an empty known tag is the default: not written back; the unknown one is
    again = S.encode_response(18, 3, body, correlation_id=12, frame=False)
    assert again == payload.replace(b'\x02\x00\x01\x01\x09', b'\x01\x09')


def test_metadata_requests_match_hand_built_frames():
    for v in (0, 1, 4, 8, 9, 10, 12):
        topics = [{'Name': 'a'}, {'Name': 'bb'}]
        mine = S.encode_request(3, v, {'Topics': topics, 'AllowAutoTopicCreation': False},
                                correlation_id=3)
        assert mine == kw.metadata_request(v, 3, ['a', 'bb']), v
        hdr, body = S.decode_request(mine[4:])
        assert [t['Name'] for t in body['Topics']] == ['a', 'bb']
        if v >= 10:
            assert body['Topics'][0]['TopicId'] == '00000000-0000-0000-0000-000000000000'
    # all topics: null from v1 on
    assert S.encode_request(3, 12, {'Topics': None, 'AllowAutoTopicCreation': False}, correlation_id=3) == kw.metadata_request(12, 3, None)


def test_produce_v9_request_matches_kafka_wire():
    batch = kw.record_batch([{'key': b'k', 'value': b'v', 'timestamp': 1000}])
    want = kw.produce_request(9, 21, {('t', 0): batch}, acks=-1, timeout_ms=5000)
    mine = S.encode_request(0, 9, {'Acks': -1, 'TimeoutMs': 5000, 'TopicData': [
        {'Name': 't', 'PartitionData': [{'Index': 0, 'Records': batch}]}]}, correlation_id=21)
    assert mine == want
    hdr, body = S.decode_request(want[4:])
    assert hdr['RequestApiVersion'] == 9 and hdr['ClientId'] == 'spool-test'
    assert body['TransactionalId'] is None
    (b,) = parse_batches(body['TopicData'][0]['PartitionData'][0]['Records'])
    assert b['RecordCount'] == 1 and b['BaseTimestamp'] == 1000 and b['Magic'] == 2


def test_legacy_versions_from_message_legacy():
    # ListOffsets v0 (removed in Kafka 4.0): MaxNumOffsets only there
    body = {'ReplicaId': -1, 'Topics': [{'Name': 't', 'Partitions': [
        {'PartitionIndex': 0, 'Timestamp': -1, 'MaxNumOffsets': 1}]}]}
    b = S.encode(S.requests[2], body, 0)
    assert b == (struct.pack('>i', -1) + struct.pack('>i', 1) + kw.string('t') + struct.pack('>i', 1)
                 + struct.pack('>iqi', 0, -1, 1))
    assert S.decode(S.requests[2], b, 0)['Topics'][0]['Partitions'][0]['MaxNumOffsets'] == 1
    # ...and v1 (4.3's lowest) has no MaxNumOffsets
    assert 'MaxNumOffsets' not in S.decode(S.requests[2], S.encode(S.requests[2], body, 1), 1)['Topics'][0]['Partitions'][0]
    assert S.requests[8].valid[0] == 0 and S.requests[1].valid[0] == 0   # OffsetCommit, Fetch


def test_header_v2_client_id_is_classic_and_tags_kept():
    b = S.encode_request(3, 12, {'Topics': []}, correlation_id=9, client_id='c',
                         header_tags={5: b'x'}, frame=False)
    assert b[:8] == struct.pack('>hhi', 3, 12, 9) and b[8:11] == b'\x00\x01c'
    assert b[11:15] == b'\x01\x05\x01x'
    hdr, _ = S.decode_request(b)
    assert hdr['_tagged'] == {5: b'x'}
    hdr, _ = S.decode_request(S.encode_request(3, 12, {}, client_id=None, frame=False))
    assert hdr['ClientId'] is None


def test_bad_bytes_fail():
    good = S.encode_request(3, 12, {'Topics': [{'Name': 'abc'}]}, frame=False)
    for cut in range(1, len(good)):
        with pytest.raises(CodecError):
            S.decode_request(good[:cut])
    with pytest.raises(CodecError):
        S.decode_request(good + b'\x00')
    assert S.decode_request(good + b'\x00', allow_trailing=True)[1]['Topics'][0]['Name'] == 'abc'
    # a null where the version has no null
    with pytest.raises(CodecError):
        S.decode(S.requests[3], struct.pack('>i', 1) + struct.pack('>h', -1), 0)
    with pytest.raises(CodecError):
        S.encode(S.requests[3], {'Topics': None}, 0)
    # strict: a field the version lacks
    with pytest.raises(CodecError):
        S.encode(S.requests[3], {'AllowAutoTopicCreation': False}, 3, strict=True)
    S.encode(S.requests[3], {'AllowAutoTopicCreation': True}, 3, strict=True)   # its default


def test_parse_batches_partial_tail():
    b1 = kw.record_batch([{'value': b'x', 'timestamp': 5}])
    b2 = kw.record_batch([{'value': b'y', 'timestamp': 6}], base_offset=1)
    got = parse_batches(b1 + b2[:30])
    assert got[0]['BaseTimestamp'] == 5 and got[1] == {'partial': b2[:30]}


# ---------------------------------------------------------------- every message, every version


def _sample_scalar(t, i, nullable):
    if nullable and i % 5 == 4:
        return None
    return {
        'bool': i % 2 == 1, 'int8': -3 + i % 7, 'int16': 300 + i % 1000, 'uint16': 65000 - i % 1000,
        'int32': -70000 - i, 'int64': (1 << 40) + i, 'float64': 0.5 + i,
        'uuid': '00000000-0000-4000-8000-%012x' % (i + 1),
        'string': 's%d-\u00e9' % i, 'bytes': b'b\x00%d' % i, 'records': b'r%d' % i,
    }[t]


def _sample_struct(st, v, seed, depth=0):
    out = {}
    for n, f in enumerate(st.fields):
        if f.versions is None or not _in(v, f.versions):
            continue
        i = seed * 31 + n
        nullable = _in(v, f.nullable)
        if f.array:
            if nullable and i % 7 == 6:
                out[f.name] = None
            elif f.struct:
                out[f.name] = [_sample_struct(f.struct, v, i + k, depth + 1)
                               for k in range(2 if depth < 3 else 0)]
            else:
                out[f.name] = [_sample_scalar(f.elem, i + k, False) for k in range(2)]
        elif f.struct:
            out[f.name] = None if nullable and i % 3 == 2 else _sample_struct(f.struct, v, i, depth + 1)
        else:
            out[f.name] = _sample_scalar(f.type, i, nullable)
    return out


def _all_messages():
    for m in S.by_name.values():
        lo, hi = m.valid
        for v in range(lo, hi + 1):
            yield m, v


def test_round_trip_every_message_every_version():
    n = 0
    for m, v in _all_messages():
        for seed in (0, 1):
            val = _sample_struct(m.by_name[m.name], v, seed)
            b = S.encode(m, val, v, strict=True)
            back = S.decode(m, b, v)
            assert back == val, (m.name, v)
            assert S.encode(m, back, v) == b
            n += 1
        d = S.default(m, v)
        assert S.decode(m, S.encode(m, d, v), v) == d
        assert S.encode(m, {}, v) == S.encode(m, d, v), (m.name, v)
    assert n > 1400, n            # 700-odd message versions


def test_tagged_fields_are_written_only_when_not_default():
    m = S.responses[3]                        # Metadata: no tagged fields but the sections
    flex = [(mm, v) for mm, v in _all_messages()
            if any(f.tagged and _in(v, f.tagged) for st in mm.structs for f in st.fields)]
    assert flex, 'some schema has tagged fields'
    for mm, v in flex:
        d = S.default(mm, v)
        b = S.encode(mm, d, v)
        # nothing but regular fields: the same bytes as with the tagged ones left out
        top = mm.by_name[mm.name]
        reg = {f.name: d[f.name] for f in top.fields
               if f.versions and _in(v, f.versions) and _in_any(v, gen_codec.regular_range(f))}
        assert S.encode(mm, reg, v) == b
    assert m.name == 'MetadataResponse'
