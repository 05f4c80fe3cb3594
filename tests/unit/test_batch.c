/*
 * test_batch.c - record batches v2 (src/proto/batch.h) and CRC-32C.
 *
 *  1. CRC-32C known answers (RFC 3720 vectors) on the table path, the
 *     SSE4.2 path and the dispatcher; both paths against a bitwise
 *     reference on every length and alignment; chaining.
 *  2. The builder: known-answer bytes for one record, round trip through
 *     validate and the iterator, producer fields and flags, failures.
 *  3. Records with headers, encoded here by hand (independent of the
 *     builder), uncompressed and with each codec compressed here with the
 *     libraries directly: gzip (one and two members), raw snappy, xerial
 *     snappy (several chunks), LZ4 frames (default and with checksums),
 *     zstd with and without content size in the frame, two zstd frames.
 *  4. Corruption, one check at a time (the CRC is fixed up after each
 *     edit so that only the intended check can fire), batch invariants
 *     (1)-(5) of batch.h, decompression bombs and the exact cap.
 *  5. Patching: LogAppendTime, base offset, leader epoch.
 *  6. sp_batch_next on partial and concatenated buffers.
 *  7. A client's batch (invariant (6): base offset, counts, no control
 *     batches, sequence with a producer id) and record errors (7), (8):
 *     keys on compacted topics, timestamp bounds and type, Kafka's messages.
 *  8. Recompression: every codec to every codec (records and header kept,
 *     Kafka's framing), the levels, multi-block inputs, failures.
 */
#include <stdint.h>
#include <stdlib.h>

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "check.h"
#include "proto/batch.h"
#include "proto/crc32c.h"
#include "proto/gen/errors.h"

/* ---- helpers independent of the code under test ------------------------- */

static uint32_t ref_crc32c(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static void be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static void be64(uint8_t *p, uint64_t v) { be32(p, (uint32_t)(v >> 32)); be32(p + 4, (uint32_t)v); }
static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static uint64_t rd64(const uint8_t *p) { return ((uint64_t)rd32(p) << 32) | rd32(p + 4); }

static void fix_crc(uint8_t *b, size_t len) { be32(b + 17, ref_crc32c(b + 21, len - 21)); }

/* zigzag varint writer (Kafka's ByteUtils.writeVarlong), by hand */
static size_t put_varlong(uint8_t *p, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (u >= 0x80) {
        p[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    p[n++] = (uint8_t)u;
    return n;
}

typedef struct trec {
    const char *key;        /* NULL = null */
    const char *val;        /* NULL = null */
    int64_t ts_delta;
    int nh;
    const char *hk[3];
    const char *hv[3];      /* NULL = null */
} trec_t;

static size_t put_str(uint8_t *p, const char *s)
{
    if (!s)
        return put_varlong(p, -1);
    size_t n = strlen(s), k = put_varlong(p, (int64_t)n);
    memcpy(p + k, s, n);
    return k + n;
}

/* Encodes records by hand; odelta NULL means 0, 1, 2... Returns the size. */
static size_t encode_records(const trec_t *r, int n, const int32_t *odelta, uint8_t *out)
{
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        uint8_t body[4096];
        size_t b = 0;
        body[b++] = 0;
        b += put_varlong(body + b, r[i].ts_delta);
        b += put_varlong(body + b, odelta ? odelta[i] : i);
        b += put_str(body + b, r[i].key);
        b += put_str(body + b, r[i].val);
        b += put_varlong(body + b, r[i].nh);
        for (int h = 0; h < r[i].nh; h++) {
            b += put_str(body + b, r[i].hk[h]);
            b += put_str(body + b, r[i].hv[h]);
        }
        pos += put_varlong(out + pos, (int64_t)b);
        memcpy(out + pos, body, b);
        pos += b;
    }
    return pos;
}

#define BASE_OFF 1000
#define BASE_TS 1700000000000LL

/* A batch around a records section, header written by hand; CRC fixed. */
static uint8_t *make_batch(int16_t attrs, const uint8_t *recs, size_t rlen, int32_t count,
                           int32_t lod, int64_t max_ts, size_t *len)
{
    size_t n = 61 + rlen;
    uint8_t *b = calloc(1, n);
    be64(b, BASE_OFF);
    be32(b + 8, (uint32_t)(n - 12));
    be32(b + 12, 7);                  /* partitionLeaderEpoch */
    b[16] = 2;
    be16(b + 21, (uint16_t)attrs);
    be32(b + 23, (uint32_t)lod);
    be64(b + 27, (uint64_t)BASE_TS);
    be64(b + 35, (uint64_t)max_ts);
    be64(b + 43, 1234);               /* producerId */
    be16(b + 51, 5);                  /* producerEpoch */
    be32(b + 53, 42);                 /* baseSequence */
    be32(b + 57, (uint32_t)count);
    if (rlen)
        memcpy(b + 61, recs, rlen);
    fix_crc(b, n);
    *len = n;
    return b;
}

static const trec_t RECS[] = {
    { "key-0", "value-0", 0, 2, { "h1", "h2" }, { "v1", NULL } },
    { NULL, "value with a null key", 7, 0, { 0 }, { 0 } },
    { "key-2", NULL, -3, 1, { "" }, { "" } },
    { "", "", 250, 3, { "a", "b", "c" }, { "1", "22", "333" } },
    { "key-4", "the last value, a little longer than the others ..........", 100000, 0,
      { 0 }, { 0 } },
};
#define NRECS ((int)(sizeof(RECS) / sizeof(RECS[0])))
#define RECS_MAX_TS (BASE_TS + 100000)

static int bytes_eq(sp_bytes_t b, const char *s)
{
    if (!s)
        return b.len == -1;
    return b.len == (int32_t)strlen(s) && (b.len == 0 || memcmp(b.ptr, s, (size_t)b.len) == 0);
}

static int str_eq(sp_str_t b, const char *s)
{
    return s && b.len == (int32_t)strlen(s) && (b.len == 0 || memcmp(b.ptr, s, (size_t)b.len) == 0);
}

/* Iterates batch, which must hold 'total' records, and compares the first
 * n with r[0..n) (base offset/timestamp as made by make_batch, offsets
 * base + i). */
static void check_records_n(const uint8_t *b, size_t len, const trec_t *r, int n, int total,
                            const char *what)
{
    sp_record_iter_t it;
    sp_record_t rec;
    int i = 0, rc, bad = 0;
    CHECK(sp_record_iter_init(&it, b, len, 0) == 0);
    while ((rc = sp_record_iter_next(&it, &rec)) == 1) {
        if (i >= total) {
            bad++;
            break;
        }
        if (i >= n) {
            bad += rec.offset != BASE_OFF + i;
            i++;
            continue;
        }
        bad += !bytes_eq(rec.key, r[i].key);
        bad += !bytes_eq(rec.value, r[i].val);
        bad += rec.timestamp != BASE_TS + r[i].ts_delta;
        bad += rec.timestamp_delta != r[i].ts_delta;
        bad += rec.offset != BASE_OFF + i;
        bad += rec.offset_delta != i;
        bad += rec.header_count != r[i].nh;
        sp_header_iter_t hi;
        sp_str_t hk;
        sp_bytes_t hv;
        int h = 0, hrc;
        sp_header_iter_init(&hi, &rec);
        while ((hrc = sp_header_iter_next(&hi, &hk, &hv)) == 1) {
            bad += h >= r[i].nh || !str_eq(hk, r[i].hk[h]) || !bytes_eq(hv, r[i].hv[h]);
            h++;
        }
        bad += hrc != 0 || h != r[i].nh;
        i++;
    }
    sp_record_iter_free(&it);
    if (bad || rc != 0 || i != total)
        fprintf(stderr, "  %s: %d mismatches, end %d, %d records\n", what, bad, rc, i);
    CHECK(bad == 0);
    CHECK(rc == 0);
    CHECK(i == total);
}

static void check_records(const uint8_t *b, size_t len, const trec_t *r, int n, const char *what)
{
    check_records_n(b, len, r, n, n, what);
}

/* ---- 1. CRC-32C ---------------------------------------------------------- */

static void test_crc(void)
{
    static const struct { uint8_t fill; int kind; uint32_t want; } rfc[] = {
        { 0x00, 0, 0x8A9136AA },   /* 32 zero bytes */
        { 0xff, 0, 0x62A8AB43 },   /* 32 bytes 0xff */
        { 0, 1, 0x46DD794E },      /* 0x00 .. 0x1f */
        { 0, 2, 0x113FDB5C },      /* 0x1f .. 0x00 */
    };
    typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);
    crc_fn fns[2] = { sp_crc32c_sw, sp_crc32c };
    const char *names[2] = { "table", "isa-l" };

    for (int f = 0; f < 2; f++) {
        crc_fn fn = fns[f];
        int bad = 0;
        bad += fn(0, "123456789", 9) != 0xE3069283u;
        bad += fn(0, "", 0) != 0;
        bad += fn(0, NULL, 0) != 0;
        for (size_t v = 0; v < sizeof(rfc) / sizeof(rfc[0]); v++) {
            uint8_t buf[32];
            for (int i = 0; i < 32; i++)
                buf[i] = rfc[v].kind == 0 ? rfc[v].fill : rfc[v].kind == 1 ? (uint8_t)i : (uint8_t)(31 - i);
            bad += fn(0, buf, 32) != rfc[v].want;
        }
        /* every length 0..200 at every alignment 0..7, and chaining */
        uint8_t big[256];
        uint32_t s = 12345;
        for (size_t i = 0; i < sizeof(big); i++) {
            s = s * 1103515245u + 12345u;
            big[i] = (uint8_t)(s >> 16);
        }
        for (size_t al = 0; al < 8; al++)
            for (size_t n = 0; n <= 200; n++) {
                uint32_t want = ref_crc32c(big + al, n);
                bad += fn(0, big + al, n) != want;
                size_t cut = n / 3;
                bad += fn(fn(0, big + al, cut), big + al + cut, n - cut) != want;
            }
        if (bad)
            fprintf(stderr, "  crc32c %s: %d wrong answers\n", names[f], bad);
        CHECK(bad == 0);
    }
    /* The library's folding kernels only run on long buffers: the two
     * implementations agree on a large unaligned one. */
    size_t n = 1 << 20;
    uint8_t *m = malloc(n + 3);
    for (size_t i = 0; i < n + 3; i++)
        m[i] = (uint8_t)(i * 31 + (i >> 9));
    CHECK(sp_crc32c_sw(0, m + 3, n) == sp_crc32c(0, m + 3, n));
    CHECK(sp_crc32c_sw(0, m + 3, n) == ref_crc32c(m + 3, n));
    free(m);
}

/* ---- 2. builder ------------------------------------------------------------- */

static void test_builder_known_answer(void)
{
    sp_batch_builder_t b;
    size_t len = 0;
    sp_batch_builder_init(&b, 100, 1000);
    CHECK(sp_batch_builder_add(&b, "k", 1, "v", 1, 1005) == 0);
    uint8_t *out = sp_batch_builder_finish(&b, &len);
    sp_batch_builder_free(&b);

    uint8_t want[70] = {
        0, 0, 0, 0, 0, 0, 0, 100,       /* baseOffset 100 */
        0, 0, 0, 58,                    /* batchLength 70 - 12 */
        0xff, 0xff, 0xff, 0xff,         /* partitionLeaderEpoch -1 */
        2,                              /* magic */
        0, 0, 0, 0,                     /* crc, below */
        0, 0,                           /* attributes */
        0, 0, 0, 0,                     /* lastOffsetDelta */
        0, 0, 0, 0, 0, 0, 0x03, 0xe8,   /* baseTimestamp 1000 */
        0, 0, 0, 0, 0, 0, 0x03, 0xed,   /* maxTimestamp 1005 */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,   /* producerId -1 */
        0xff, 0xff,                     /* producerEpoch -1 */
        0xff, 0xff, 0xff, 0xff,         /* baseSequence -1 */
        0, 0, 0, 1,                     /* recordCount */
        0x10,                           /* record length 8 (zigzag 16) */
        0x00,                           /* attributes */
        0x0a,                           /* timestampDelta 5 */
        0x00,                           /* offsetDelta 0 */
        0x02, 'k',                      /* key length 1 */
        0x02, 'v',                      /* value length 1 */
        0x00,                           /* headers 0 */
    };
    fix_crc(want, sizeof(want));
    CHECK(out != NULL);
    if (out)
        CHECK_MEM(out, len, want, sizeof(want));
    free(out);
}

static void test_builder_roundtrip(void)
{
    sp_batch_builder_t b;
    size_t len = 0;
    static const char big[300] = { 'x' };
    sp_batch_builder_init(&b, BASE_OFF, BASE_TS);
    CHECK(sp_batch_builder_add(&b, "a", 1, "alpha", 5, BASE_TS + 3) == 0);
    CHECK(sp_batch_builder_add(&b, NULL, -1, "no key", 6, BASE_TS - 10) == 0);
    CHECK(sp_batch_builder_add(&b, "c", 1, NULL, -1, BASE_TS + 9) == 0);
    CHECK(sp_batch_builder_add(&b, "", 0, "", 0, BASE_TS) == 0);
    CHECK(sp_batch_builder_add(&b, big, sizeof(big), big, sizeof(big), BASE_TS + 1) == 0);
    uint8_t *out = sp_batch_builder_finish(&b, &len);
    sp_batch_builder_free(&b);
    CHECK(out != NULL);
    if (!out)
        return;

    sp_batch_info_t info;
    memset(&info, 0, sizeof(info));
    CHECK(sp_batch_validate(out, len, NULL, &info) == 0);
    CHECK(info.records == 5);
    CHECK(!info.compressed);
    CHECK(info.max_timestamp == BASE_TS + 9);
    CHECK(info.hdr.max_timestamp == BASE_TS + 9);
    CHECK(info.hdr.base_timestamp == BASE_TS);
    CHECK(info.hdr.base_offset == BASE_OFF);
    CHECK(info.hdr.last_offset_delta == 4);
    CHECK(info.hdr.record_count == 5);
    CHECK(info.hdr.producer_id == -1 && info.hdr.producer_epoch == -1 &&
          info.hdr.base_sequence == -1);
    CHECK(info.hdr.magic == 2 && info.hdr.attributes == 0);
    CHECK(info.hdr.crc == ref_crc32c(out + 21, len - 21));
    CHECK(sp_batch_size(&info.hdr) == len);
    CHECK(sp_batch_last_offset(&info.hdr) == BASE_OFF + 4);
    CHECK(sp_batch_next_offset(&info.hdr) == BASE_OFF + 5);
    sp_batch_validate_opts_t keys = { .require_keys = true };
    CHECK(sp_batch_validate(out, len, &keys, NULL) == SP_ERR_INVALID_RECORD);

    trec_t want[4] = {
        { "a", "alpha", 3, 0, { 0 }, { 0 } },
        { NULL, "no key", -10, 0, { 0 }, { 0 } },
        { "c", NULL, 9, 0, { 0 }, { 0 } },
        { "", "", 0, 0, { 0 }, { 0 } },
    };
    check_records_n(out, len, want, 4, 5, "builder");   /* the fifth below */
    sp_record_iter_t it;
    sp_record_t rec;
    CHECK(sp_record_iter_init(&it, out, len, 0) == 0);
    for (int i = 0; i < 5; i++)
        CHECK(sp_record_iter_next(&it, &rec) == 1);
    CHECK(rec.key.len == 300 && rec.value.len == 300 && memcmp(rec.key.ptr, big, 300) == 0 &&
          memcmp(rec.value.ptr, big, 300) == 0);
    CHECK(rec.offset == BASE_OFF + 4 && rec.timestamp == BASE_TS + 1);
    CHECK(sp_record_iter_next(&it, &rec) == 0);
    CHECK(sp_record_iter_next(&it, &rec) == 0);   /* end stays end */
    sp_record_iter_free(&it);
    sp_record_iter_free(&it);                      /* idempotent */
    free(out);
}

static void test_builder_flags_and_failures(void)
{
    sp_batch_builder_t b;
    size_t len = 0;
    uint8_t ctl_key[4] = { 0, 0, 0, 1 }, ctl_val[6] = { 0, 0, 0, 0, 0, 3 };

    /* a transaction marker: control + transactional + producer fields */
    sp_batch_builder_init(&b, 0, 5);
    sp_batch_builder_set_producer(&b, 77, 3, -1);
    sp_batch_builder_set_flags(&b, SP_BATCH_ATTR_CONTROL | SP_BATCH_ATTR_TRANSACTIONAL |
                                       SP_BATCH_ATTR_LOG_APPEND_TIME | 7);
    CHECK(sp_batch_builder_add(&b, ctl_key, 4, ctl_val, 6, 5) == 0);
    uint8_t *out = sp_batch_builder_finish(&b, &len);
    CHECK(out != NULL);
    CHECK(sp_batch_builder_add(&b, "x", 1, "y", 1, 5) == -1);   /* finished */
    CHECK(sp_batch_builder_finish(&b, &len) == NULL);
    sp_batch_builder_free(&b);
    sp_batch_info_t info;
    CHECK(out && sp_batch_validate(out, len, NULL, &info) == 0);
    if (out) {
        CHECK(sp_batch_is_control(&info.hdr) && sp_batch_is_transactional(&info.hdr));
        CHECK(!sp_batch_is_log_append_time(&info.hdr));           /* not settable */
        CHECK(sp_batch_compression(&info.hdr) == SP_COMPRESSION_NONE);
        CHECK(info.hdr.producer_id == 77 && info.hdr.producer_epoch == 3);
    }
    free(out);

    /* nothing added */
    sp_batch_builder_init(&b, 0, 0);
    CHECK(sp_batch_builder_finish(&b, &len) == NULL);
    sp_batch_builder_free(&b);

    /* a bad length fails the builder for good */
    sp_batch_builder_init(&b, 0, 0);
    CHECK(sp_batch_builder_add(&b, "a", 1, "b", 1, 0) == 0);
    CHECK(sp_batch_builder_add(&b, "a", -2, "b", 1, 0) == -1);
    CHECK(sp_batch_builder_add(&b, "a", 1, "b", 1, 0) == -1);
    CHECK(sp_batch_builder_finish(&b, &len) == NULL);
    sp_batch_builder_free(&b);
    sp_batch_builder_init(&b, 0, 0);
    CHECK(sp_batch_builder_add(&b, NULL, 3, "b", 1, 0) == -1);   /* NULL with a length */
    sp_batch_builder_free(&b);

    /* many records: growth, multi-byte varints, extreme timestamps */
    sp_batch_builder_init(&b, INT64_MAX - 5000, INT64_MIN);
    int ok = 1;
    for (int i = 0; i < 3000; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "%d", i);
        ok &= sp_batch_builder_add(&b, k, n, k, n, i == 7 ? INT64_MAX : INT64_MIN + i) == 0;
    }
    CHECK(ok);
    out = sp_batch_builder_finish(&b, &len);
    sp_batch_builder_free(&b);
    CHECK(out && sp_batch_validate(out, len, NULL, &info) == 0);
    if (out) {
        CHECK(info.records == 3000 && info.hdr.max_timestamp == INT64_MAX &&
              info.max_timestamp == INT64_MAX);
        sp_record_iter_t it;
        sp_record_t rec;
        int i = 0, bad = 0;
        sp_record_iter_init(&it, out, len, 0);
        while (sp_record_iter_next(&it, &rec) == 1) {
            char k[16];
            int n = snprintf(k, sizeof(k), "%d", i);
            bad += rec.key.len != n || memcmp(rec.key.ptr, k, (size_t)n) != 0;
            bad += rec.offset != INT64_MAX - 5000 + i;
            bad += rec.timestamp != (i == 7 ? INT64_MAX : INT64_MIN + i);
            i++;
        }
        sp_record_iter_free(&it);
        CHECK(bad == 0 && i == 3000);
    }
    free(out);
}

/* ---- 3. records with headers, each codec ---------------------------------- */

static uint8_t *gzip_buf(const uint8_t *src, size_t n, size_t *out_len, int window_bits)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&zs, (uLong)n) + 32;
    uint8_t *out = malloc(cap);
    zs.next_in = (Bytef *)src;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int zr = deflate(&zs, Z_FINISH);
    *out_len = cap - zs.avail_out;
    deflateEnd(&zs);
    if (zr != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

static uint8_t *snappy_raw(const uint8_t *src, size_t n, size_t *out_len)
{
    size_t cap = snappy_max_compressed_length(n);
    uint8_t *out = malloc(cap);
    if (snappy_compress((const char *)src, n, (char *)out, &cap) != SNAPPY_OK) {
        free(out);
        return NULL;
    }
    *out_len = cap;
    return out;
}

/* xerial framing, input split into chunks of 'chunk' bytes */
static uint8_t *snappy_xerial(const uint8_t *src, size_t n, size_t chunk, size_t *out_len)
{
    static const uint8_t magic[8] = { 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0 };
    size_t cap = 16 + (n / chunk + 1) * (4 + snappy_max_compressed_length(chunk));
    uint8_t *out = malloc(cap);
    memcpy(out, magic, 8);
    be32(out + 8, 1);
    be32(out + 12, 1);
    size_t pos = 16;
    for (size_t off = 0; off < n; off += chunk) {
        size_t in = n - off < chunk ? n - off : chunk;
        size_t clen = cap - pos - 4;
        if (snappy_compress((const char *)src + off, in, (char *)out + pos + 4, &clen) != SNAPPY_OK) {
            free(out);
            return NULL;
        }
        be32(out + pos, (uint32_t)clen);
        pos += 4 + clen;
    }
    *out_len = pos;
    return out;
}

static uint8_t *lz4_frame(const uint8_t *src, size_t n, size_t *out_len, int checksums)
{
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof(prefs));
    if (checksums) {
        prefs.frameInfo.blockMode = LZ4F_blockIndependent;
        prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
        prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
        prefs.frameInfo.contentSize = n;
    }
    size_t cap = LZ4F_compressFrameBound(n, &prefs);
    uint8_t *out = malloc(cap);
    size_t r = LZ4F_compressFrame(out, cap, src, n, &prefs);
    if (LZ4F_isError(r)) {
        free(out);
        return NULL;
    }
    *out_len = r;
    return out;
}

static uint8_t *zstd_simple(const uint8_t *src, size_t n, size_t *out_len)
{
    size_t cap = ZSTD_compressBound(n);
    uint8_t *out = malloc(cap);
    size_t r = ZSTD_compress(out, cap, src, n, 3);
    if (ZSTD_isError(r)) {
        free(out);
        return NULL;
    }
    *out_len = r;
    return out;
}

/* streaming, in pieces, no content size in the frame header */
static uint8_t *zstd_stream(const uint8_t *src, size_t n, size_t *out_len)
{
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
    size_t cap = ZSTD_compressBound(n) + 64;
    uint8_t *out = malloc(cap);
    ZSTD_outBuffer ob = { out, cap, 0 };
    size_t piece = n / 3 + 1;
    for (size_t off = 0; off < n; off += piece) {
        ZSTD_inBuffer ib = { src + off, n - off < piece ? n - off : piece, 0 };
        while (ib.pos < ib.size)
            if (ZSTD_isError(ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_continue)))
                goto fail;
    }
    ZSTD_inBuffer empty = { NULL, 0, 0 };
    size_t left;
    do {
        left = ZSTD_compressStream2(cc, &ob, &empty, ZSTD_e_end);
        if (ZSTD_isError(left))
            goto fail;
    } while (left != 0);
    ZSTD_freeCCtx(cc);
    *out_len = ob.pos;
    return out;
fail:
    ZSTD_freeCCtx(cc);
    free(out);
    return NULL;
}

static uint8_t *concat(const uint8_t *a, size_t na, const uint8_t *b, size_t nb, size_t *len)
{
    uint8_t *o = malloc(na + nb);
    memcpy(o, a, na);
    memcpy(o + na, b, nb);
    *len = na + nb;
    return o;
}

/* Validates and iterates a compressed batch of RECS; also checks that a
 * truncated or garbage-extended stream is refused. */
static void check_codec(const char *name, int codec, const uint8_t *z, size_t zlen,
                        size_t raw_len)
{
    size_t len;
    CHECK(z != NULL);
    if (!z)
        return;
    uint8_t *b = make_batch((int16_t)codec, z, zlen, NRECS, NRECS - 1, RECS_MAX_TS, &len);
    sp_batch_info_t info;
    memset(&info, 0, sizeof(info));
    int rc = sp_batch_validate(b, len, NULL, &info);
    if (rc)
        fprintf(stderr, "  %s: validate -> %d\n", name, rc);
    CHECK(rc == 0);
    CHECK(info.compressed && info.records == NRECS && info.records_size == raw_len);
    CHECK(info.max_timestamp == RECS_MAX_TS);
    CHECK(info.hdr.producer_id == 1234 && info.hdr.producer_epoch == 5 &&
          info.hdr.base_sequence == 42 && info.hdr.partition_leader_epoch == 7);
    check_records(b, len, RECS, NRECS, name);
    free(b);

    /* truncated compressed data */
    b = make_batch((int16_t)codec, z, zlen - 1, NRECS, NRECS - 1, RECS_MAX_TS, &len);
    rc = sp_batch_validate(b, len, NULL, NULL);
    if (rc != SP_ERR_CORRUPT_MESSAGE)
        fprintf(stderr, "  %s truncated: validate -> %d\n", name, rc);
    CHECK(rc == SP_ERR_CORRUPT_MESSAGE);
    free(b);

    /* garbage after the compressed data */
    size_t glen;
    uint8_t *g = concat(z, zlen, (const uint8_t *)"garbage!", 8, &glen);
    b = make_batch((int16_t)codec, g, glen, NRECS, NRECS - 1, RECS_MAX_TS, &len);
    rc = sp_batch_validate(b, len, NULL, NULL);
    if (rc != SP_ERR_CORRUPT_MESSAGE)
        fprintf(stderr, "  %s + garbage: validate -> %d\n", name, rc);
    CHECK(rc == SP_ERR_CORRUPT_MESSAGE);
    free(b);
    free(g);
}

static void test_codecs(void)
{
    uint8_t raw[8192];
    size_t rlen = encode_records(RECS, NRECS, NULL, raw), zlen, len;

    /* uncompressed, headers by hand */
    uint8_t *b = make_batch(0, raw, rlen, NRECS, NRECS - 1, RECS_MAX_TS, &len);
    sp_batch_info_t info;
    CHECK(sp_batch_validate(b, len, NULL, &info) == 0);
    CHECK(!info.compressed && info.records == NRECS && info.records_size == rlen);
    CHECK(info.max_timestamp == RECS_MAX_TS);
    check_records(b, len, RECS, NRECS, "none");
    free(b);

    uint8_t *z = gzip_buf(raw, rlen, &zlen, 15 + 16);
    CHECK(z && z[0] == 0x1f && z[1] == 0x8b);   /* really the gzip wrapper */
    check_codec("gzip", SP_COMPRESSION_GZIP, z, zlen, rlen);
    /* two gzip members, as `cat a.gz b.gz` */
    size_t h = rlen / 2, z1n, z2n;
    uint8_t *z1 = gzip_buf(raw, h, &z1n, 15 + 16), *z2 = gzip_buf(raw + h, rlen - h, &z2n, 15 + 16);
    uint8_t *zz = concat(z1, z1n, z2, z2n, &zlen);
    check_codec("gzip 2 members", SP_COMPRESSION_GZIP, zz, zlen, rlen);
    free(z);
    free(z1);
    free(z2);
    free(zz);

    z = snappy_raw(raw, rlen, &zlen);
    check_codec("snappy raw", SP_COMPRESSION_SNAPPY, z, zlen, rlen);
    free(z);
    z = snappy_xerial(raw, rlen, 100, &zlen);
    check_codec("snappy xerial", SP_COMPRESSION_SNAPPY, z, zlen, rlen);
    free(z);
    z = snappy_xerial(raw, rlen, 32768, &zlen);   /* one chunk, as snappy-java */
    check_codec("snappy xerial 1 chunk", SP_COMPRESSION_SNAPPY, z, zlen, rlen);
    free(z);

    z = lz4_frame(raw, rlen, &zlen, 0);
    CHECK(z && rd32(z) == 0x04224D18);            /* frame magic 0x184D2204, LE */
    check_codec("lz4", SP_COMPRESSION_LZ4, z, zlen, rlen);
    free(z);
    z = lz4_frame(raw, rlen, &zlen, 1);
    check_codec("lz4 checksums", SP_COMPRESSION_LZ4, z, zlen, rlen);
    free(z);

    z = zstd_simple(raw, rlen, &zlen);
    CHECK(z && ZSTD_getFrameContentSize(z, zlen) == rlen);
    check_codec("zstd", SP_COMPRESSION_ZSTD, z, zlen, rlen);
    free(z);
    z = zstd_stream(raw, rlen, &zlen);
    CHECK(z && ZSTD_getFrameContentSize(z, zlen) == ZSTD_CONTENTSIZE_UNKNOWN);
    check_codec("zstd stream", SP_COMPRESSION_ZSTD, z, zlen, rlen);
    free(z);
    z1 = zstd_simple(raw, h, &z1n);
    z2 = zstd_stream(raw + h, rlen - h, &z2n);
    zz = concat(z1, z1n, z2, z2n, &zlen);
    check_codec("zstd 2 frames", SP_COMPRESSION_ZSTD, zz, zlen, rlen);
    free(z1);
    free(z2);
    free(zz);

    /* compressed garbage: refused, never UNSUPPORTED */
    static const uint8_t junk[] = "this is not compressed by anything at all";
    for (int c = 1; c <= 4; c++) {
        b = make_batch((int16_t)c, junk, sizeof(junk), 1, 0, BASE_TS, &len);
        CHECK(sp_batch_validate(b, len, NULL, NULL) == SP_ERR_CORRUPT_MESSAGE);
        free(b);
        b = make_batch((int16_t)c, NULL, 0, 1, 0, BASE_TS, &len);   /* empty stream */
        CHECK(sp_batch_validate(b, len, NULL, NULL) == SP_ERR_CORRUPT_MESSAGE);
        free(b);
    }
}

/* ---- 4. corruption ----------------------------------------------------------- */

static int validate_edit(const trec_t *r, int n, const int32_t *od, int32_t count, int32_t lod,
                         int16_t attrs, const sp_batch_validate_opts_t *opts)
{
    uint8_t raw[8192];
    size_t rlen = encode_records(r, n, od, raw), len;
    uint8_t *b = make_batch(attrs, raw, rlen, count, lod, RECS_MAX_TS, &len);
    int rc = sp_batch_validate(b, len, opts, NULL);
    free(b);
    return rc;
}

static void test_corruption(void)
{
    uint8_t raw[8192];
    size_t rlen = encode_records(RECS, NRECS, NULL, raw), len;
    uint8_t *good = make_batch(0, raw, rlen, NRECS, NRECS - 1, RECS_MAX_TS, &len);
    uint8_t *b = malloc(len + 16);
    CHECK(sp_batch_validate(good, len, NULL, NULL) == 0);

    /* every single flipped bit under the CRC is caught */
    int missed = 0;
    for (size_t i = 21; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(b, good, len);
            b[i] ^= (uint8_t)(1 << bit);
            missed += sp_batch_validate(b, len, NULL, NULL) != SP_ERR_CORRUPT_MESSAGE;
        }
    CHECK(missed == 0);
    memcpy(b, good, len);
    b[17] ^= 0x40;   /* the CRC itself */
    CHECK(sp_batch_validate(b, len, NULL, NULL) == SP_ERR_CORRUPT_MESSAGE);

    /* magic 1 and 3 (not under the CRC) */
    memcpy(b, good, len);
    b[16] = 1;
    CHECK(sp_batch_validate(b, len, NULL, NULL) == SP_ERR_CORRUPT_MESSAGE);
    b[16] = 3;
    CHECK(sp_batch_validate(b, len, NULL, NULL) == SP_ERR_CORRUPT_MESSAGE);

    /* truncated: len shorter than batchLength says, and batchLength fixed up
     * to match a cut records section */
    for (size_t cut = 1; cut < len; cut++) {
        memcpy(b, good, len);
        missed += sp_batch_validate(b, len - cut, NULL, NULL) != SP_ERR_CORRUPT_MESSAGE;
        if (len - cut >= 61) {
            be32(b + 8, (uint32_t)(len - cut - 12));
            fix_crc(b, len - cut);
            missed += sp_batch_validate(b, len - cut, NULL, NULL) != SP_ERR_CORRUPT_MESSAGE;
        }
    }
    CHECK(missed == 0);
    /* longer buffer than the batch */
    memcpy(b, good, len);
    b[len] = 0;
    CHECK(sp_batch_validate(b, len + 1, NULL, NULL) == SP_ERR_CORRUPT_MESSAGE);
    /* batchLength absurd */
    memcpy(b, good, len);
    be32(b + 8, 0xffffffffu);
    CHECK(sp_batch_validate(b, len, NULL, NULL) == SP_ERR_CORRUPT_MESSAGE);

    /* unknown compression 5, 6, 7 -> UNSUPPORTED_COMPRESSION_TYPE */
    for (int c = 5; c <= 7; c++) {
        memcpy(b, good, len);
        b[22] = (uint8_t)c;
        fix_crc(b, len);
        CHECK(sp_batch_validate(b, len, NULL, NULL) == SP_ERR_UNSUPPORTED_COMPRESSION_TYPE);
        sp_record_iter_t it;
        CHECK(sp_record_iter_init(&it, b, len, 0) == SP_BATCH_E_CODEC);
        sp_record_t rec;
        CHECK(sp_record_iter_next(&it, &rec) == SP_BATCH_E_CODEC);
        sp_record_iter_free(&it);
    }

    /* counts and offsets */
    sp_batch_validate_opts_t compacted = { .allow_compacted = true };
    CHECK(validate_edit(RECS, NRECS, NULL, NRECS, NRECS - 1, 0, NULL) == 0);
    CHECK(validate_edit(RECS, NRECS, NULL, NRECS + 1, NRECS, 0, NULL) == SP_ERR_CORRUPT_MESSAGE);
    CHECK(validate_edit(RECS, NRECS, NULL, NRECS - 1, NRECS - 2, 0, NULL) == SP_ERR_CORRUPT_MESSAGE);
    CHECK(validate_edit(RECS, NRECS, NULL, -1, NRECS - 1, 0, NULL) == SP_ERR_CORRUPT_MESSAGE);
    CHECK(validate_edit(RECS, NRECS, NULL, INT32_MAX, NRECS - 1, 0, NULL) == SP_ERR_CORRUPT_MESSAGE);
    CHECK(validate_edit(RECS, NRECS, NULL, NRECS, NRECS, 0, NULL) == SP_ERR_CORRUPT_MESSAGE);
    CHECK(validate_edit(RECS, NRECS, NULL, NRECS, NRECS - 2, 0, NULL) == SP_ERR_CORRUPT_MESSAGE);
    CHECK(validate_edit(RECS, NRECS, NULL, NRECS, NRECS - 2, 0, &compacted) == SP_ERR_CORRUPT_MESSAGE);
    static const int32_t gaps[NRECS] = { 0, 2, 3, 7, 9 };
    static const int32_t swapped[NRECS] = { 0, 2, 1, 3, 4 };
    static const int32_t from1[NRECS] = { 1, 2, 3, 4, 5 };
    CHECK(validate_edit(RECS, NRECS, gaps, NRECS, 9, 0, NULL) == SP_ERR_CORRUPT_MESSAGE);
    CHECK(validate_edit(RECS, NRECS, gaps, NRECS, 9, 0, &compacted) == 0);
    CHECK(validate_edit(RECS, NRECS, gaps, NRECS, 8, 0, &compacted) == SP_ERR_CORRUPT_MESSAGE);
    CHECK(validate_edit(RECS, NRECS, swapped, NRECS, NRECS - 1, 0, NULL) == SP_ERR_CORRUPT_MESSAGE);
    CHECK(validate_edit(RECS, NRECS, swapped, NRECS, NRECS - 1, 0, &compacted) == SP_ERR_CORRUPT_MESSAGE);
    CHECK(validate_edit(RECS, NRECS, from1, NRECS, NRECS - 1, 0, NULL) == SP_ERR_CORRUPT_MESSAGE);

    /* empty batches: control only (strict), any with allow_compacted,
     * never with lastOffsetDelta -1 */
    CHECK(validate_edit(RECS, 0, NULL, 0, 0, SP_BATCH_ATTR_CONTROL, NULL) == 0);
    CHECK(validate_edit(RECS, 0, NULL, 0, 3, SP_BATCH_ATTR_CONTROL, NULL) == 0);
    CHECK(validate_edit(RECS, 0, NULL, 0, -1, SP_BATCH_ATTR_CONTROL, NULL) == SP_ERR_CORRUPT_MESSAGE);
    CHECK(validate_edit(RECS, 0, NULL, 0, 0, 0, NULL) == SP_ERR_CORRUPT_MESSAGE);
    CHECK(validate_edit(RECS, 0, NULL, 0, -1, 0, NULL) == SP_ERR_CORRUPT_MESSAGE);
    CHECK(validate_edit(RECS, 0, NULL, 0, 4, 0, &compacted) == 0);
    CHECK(validate_edit(RECS, 0, NULL, 0, -1, 0, &compacted) == SP_ERR_CORRUPT_MESSAGE);

    /* compacted topic: null key is INVALID_RECORD, also inside gzip */
    sp_batch_validate_opts_t keys = { .require_keys = true };
    CHECK(validate_edit(RECS, NRECS, NULL, NRECS, NRECS - 1, 0, &keys) == SP_ERR_INVALID_RECORD);
    CHECK(validate_edit(RECS, 1, NULL, 1, 0, 0, &keys) == 0);   /* RECS[0] has a key */
    {
        size_t zlen;
        uint8_t *z = gzip_buf(raw, rlen, &zlen, 15 + 16);
        uint8_t *zb = make_batch(SP_COMPRESSION_GZIP, z, zlen, NRECS, NRECS - 1, RECS_MAX_TS, &len);
        CHECK(sp_batch_validate(zb, len, &keys, NULL) == SP_ERR_INVALID_RECORD);
        CHECK(sp_batch_validate(zb, len, NULL, NULL) == 0);
        free(zb);
        free(z);
    }

    /* record length field one too big (a byte left inside the record) and
     * one too small (fields overrun it); RECS[0]'s length fits one byte */
    {
        uint8_t rec[512];
        size_t n = encode_records(RECS, 1, NULL, rec);
        CHECK(rec[0] < 0x80);
        rec[0] = (uint8_t)(rec[0] + 2);   /* zigzag: +1 */
        rec[n] = 0;
        uint8_t *x = make_batch(0, rec, n + 1, 1, 0, BASE_TS, &len);
        CHECK(sp_batch_validate(x, len, NULL, NULL) == SP_ERR_CORRUPT_MESSAGE);
        free(x);
        rec[0] = (uint8_t)(rec[0] - 4);   /* original - 1 */
        x = make_batch(0, rec, n, 1, 0, BASE_TS, &len);
        CHECK(sp_batch_validate(x, len, NULL, NULL) == SP_ERR_CORRUPT_MESSAGE);
        free(x);
        rec[0] = (uint8_t)(rec[0] + 2);   /* back to the original */
        x = make_batch(0, rec, n, 1, 0, BASE_TS, &len);
        CHECK(sp_batch_validate(x, len, NULL, NULL) == 0);
        free(x);
        /* negative record length, negative key length below -1, header
         * with a null key, negative header count */
        static const uint8_t bad_recs[][12] = {
            { 0x01, 0, 0, 0, 0, 0, 0, 0 },                /* length -1 */
            { 0x0c, 0, 0, 0, 0x03, 0x01, 0 },             /* key length -2 */
            { 0x10, 0, 0, 0, 0x01, 0x01, 0x02, 0x01, 0x01 },   /* header key null */
            { 0x0c, 0, 0, 0, 0x01, 0x01, 0x01 },          /* header count -1 */
            { 0x0c, 0, 0, 0, 0x01, 0x01, 0x7e },          /* header count 63 */
            { 0x0c, 0, 0, 0, 0x01, 0x01, 0x00 },          /* good: 6 bytes */
        };
        static const size_t bad_lens[] = { 8, 7, 9, 7, 7, 7 };
        for (int i = 0; i < 6; i++) {
            x = make_batch(0, bad_recs[i], bad_lens[i], 1, 0, BASE_TS, &len);
            int rc = sp_batch_validate(x, len, NULL, NULL);
            CHECK(rc == (i == 5 ? 0 : SP_ERR_CORRUPT_MESSAGE));
            free(x);
        }
    }
    free(b);
    free(good);
}

/* A records section of one record with a large zero value: compresses to
 * almost nothing. */
static size_t big_records(uint8_t **out, size_t vlen)
{
    uint8_t *r = calloc(1, vlen + 64), body[32];
    size_t b = 0;
    body[b++] = 0;
    b += put_varlong(body + b, 0);
    b += put_varlong(body + b, 0);
    b += put_varlong(body + b, -1);
    b += put_varlong(body + b, (int64_t)vlen);
    size_t pos = put_varlong(r, (int64_t)(b + vlen + 1));
    memcpy(r + pos, body, b);
    pos += b + vlen;   /* the value: zeros */
    r[pos++] = 0;      /* no headers */
    *out = r;
    return pos;
}

static void test_bombs(void)
{
    uint8_t *raw;
    size_t vlen = (size_t)4 << 20, rlen = big_records(&raw, vlen), len;
    for (int c = 1; c <= 4; c++) {
        size_t zlen = 0;
        uint8_t *z = c == 1 ? gzip_buf(raw, rlen, &zlen, 15 + 16)
                   : c == 2 ? snappy_xerial(raw, rlen, 32768, &zlen)
                   : c == 3 ? lz4_frame(raw, rlen, &zlen, 0)
                            : zstd_stream(raw, rlen, &zlen);
        CHECK(z && zlen < rlen / 10);
        if (!z)
            continue;
        uint8_t *b = make_batch((int16_t)c, z, zlen, 1, 0, BASE_TS, &len);
        sp_batch_validate_opts_t small = { .max_decompressed = 1 << 20 };
        sp_batch_validate_opts_t exact = { .max_decompressed = rlen };
        sp_batch_validate_opts_t under = { .max_decompressed = rlen - 1 };
        sp_batch_info_t info;
        int rc1 = sp_batch_validate(b, len, &small, NULL);
        int rc2 = sp_batch_validate(b, len, &exact, &info);
        int rc3 = sp_batch_validate(b, len, &under, NULL);
        int rc4 = sp_batch_validate(b, len, NULL, NULL);
        if (rc1 != SP_ERR_CORRUPT_MESSAGE || rc2 != 0 || rc3 != SP_ERR_CORRUPT_MESSAGE || rc4 != 0)
            fprintf(stderr, "  bomb codec %d: %d %d %d %d\n", c, rc1, rc2, rc3, rc4);
        CHECK(rc1 == SP_ERR_CORRUPT_MESSAGE);
        CHECK(rc2 == 0 && info.records_size == rlen);
        CHECK(rc3 == SP_ERR_CORRUPT_MESSAGE);
        CHECK(rc4 == 0);
        sp_record_iter_t it;
        CHECK(sp_record_iter_init(&it, b, len, rlen - 1) == SP_BATCH_E_TOO_BIG);
        sp_record_iter_free(&it);
        CHECK(sp_record_iter_init(&it, b, len, rlen) == 0);
        sp_record_t rec;
        CHECK(sp_record_iter_next(&it, &rec) == 1 && rec.key.len == -1 &&
              rec.value.len == (int32_t)vlen);
        sp_record_iter_free(&it);
        free(b);
        free(z);
    }
    free(raw);

    /* recordCount so large that even 7-byte records cannot fit the cap:
     * refused before decompressing */
    uint8_t rec[64];
    size_t n = encode_records(RECS, 1, NULL, rec), zlen;
    uint8_t *z = gzip_buf(rec, n, &zlen, 15 + 16);
    uint8_t *b = make_batch(SP_COMPRESSION_GZIP, z, zlen, 1000, 999, BASE_TS, &len);
    sp_record_iter_t it;
    CHECK(sp_record_iter_init(&it, b, len, 6999) == SP_BATCH_E_TOO_BIG);
    sp_record_iter_free(&it);
    free(b);
    free(z);
}

/* ---- 5. patching ----------------------------------------------------------------- */

static void test_patching(void)
{
    uint8_t raw[8192];
    size_t rlen = encode_records(RECS, NRECS, NULL, raw), len, zlen;
    uint8_t *z = zstd_simple(raw, rlen, &zlen);
    for (int compressed = 0; compressed < 2; compressed++) {
        uint8_t *b = compressed ? make_batch(SP_COMPRESSION_ZSTD, z, zlen, NRECS, NRECS - 1,
                                             RECS_MAX_TS, &len)
                                : make_batch(0, raw, rlen, NRECS, NRECS - 1, RECS_MAX_TS, &len);
        uint32_t old_crc = rd32(b + 17);
        int64_t lat = BASE_TS + 555555;
        CHECK(sp_batch_set_log_append_time(b, len, lat) == 0);
        CHECK(rd32(b + 17) != old_crc);
        CHECK(rd32(b + 17) == ref_crc32c(b + 21, len - 21));
        CHECK((int64_t)rd64(b + 35) == lat);
        CHECK(b[22] == (compressed ? (0x08 | SP_COMPRESSION_ZSTD) : 0x08) && b[21] == 0);
        sp_batch_info_t info;
        CHECK(sp_batch_validate(b, len, NULL, &info) == 0);
        CHECK(sp_batch_is_log_append_time(&info.hdr));
        CHECK(info.hdr.max_timestamp == lat && info.max_timestamp == lat);
        CHECK(sp_batch_compression(&info.hdr) == (compressed ? SP_COMPRESSION_ZSTD : 0));
        sp_record_iter_t it;
        sp_record_t rec;
        int bad = 0, n = 0;
        sp_record_iter_init(&it, b, len, 0);
        while (sp_record_iter_next(&it, &rec) == 1) {
            bad += rec.timestamp != lat || rec.timestamp_delta != RECS[n].ts_delta;
            n++;
        }
        sp_record_iter_free(&it);
        CHECK(bad == 0 && n == NRECS);

        /* base offset and leader epoch: outside the CRC */
        uint32_t crc = rd32(b + 17);
        sp_batch_set_base_offset(b, 0x0123456789abLL);
        sp_batch_set_leader_epoch(b, 99);
        CHECK(rd32(b + 17) == crc);
        CHECK(sp_batch_validate(b, len, NULL, &info) == 0);
        CHECK(info.hdr.base_offset == 0x0123456789abLL && info.hdr.partition_leader_epoch == 99);
        CHECK(sp_batch_last_offset(&info.hdr) == 0x0123456789abLL + NRECS - 1);
        sp_record_iter_init(&it, b, len, 0);
        n = 0;
        bad = 0;
        while (sp_record_iter_next(&it, &rec) == 1)
            bad += rec.offset != 0x0123456789abLL + n++;
        sp_record_iter_free(&it);
        CHECK(bad == 0 && n == NRECS);
        free(b);
    }
    free(z);
    uint8_t tiny[60] = { 0 };
    CHECK(sp_batch_set_log_append_time(tiny, sizeof(tiny), 1) == -1);
    CHECK(sp_batch_set_crc(tiny, sizeof(tiny)) == -1);
    sp_batch_hdr_t h;
    CHECK(sp_batch_hdr_parse(tiny, sizeof(tiny), &h) == -1);
}

/* ---- 6. framing ------------------------------------------------------------------- */

static void test_next(void)
{
    uint8_t *parts[3];
    size_t sizes[3], total = 0;
    for (int i = 0; i < 3; i++) {
        sp_batch_builder_t b;
        sp_batch_builder_init(&b, i * 10, 0);
        for (int k = 0; k <= i * 3; k++)
            sp_batch_builder_add(&b, "key", 3, "value", 5, k);
        parts[i] = sp_batch_builder_finish(&b, &sizes[i]);
        sp_batch_builder_free(&b);
        total += sizes[i];
    }
    uint8_t *all = malloc(total);
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        memcpy(all + off, parts[i], sizes[i]);
        off += sizes[i];
    }

    /* walk the concatenation */
    int found = 0, bad = 0;
    off = 0;
    size_t sz;
    while (sp_batch_next(all + off, total - off, &sz) == 1) {
        bad += sz != sizes[found];
        bad += sp_batch_validate(all + off, sz, NULL, NULL) != 0;
        off += sz;
        found++;
    }
    CHECK(found == 3 && off == total && bad == 0);
    CHECK(sp_batch_next(all + total, 0, &sz) == 0 && sz == 0);

    /* every prefix of the first batch */
    for (size_t n = 0; n < sizes[0]; n++) {
        int rc = sp_batch_next(all, n, &sz);
        bad += rc != 0;
        bad += n < 12 ? sz != 0 : sz != sizes[0];
    }
    CHECK(bad == 0);
    CHECK(sp_batch_next(all, sizes[0], &sz) == 1 && sz == sizes[0]);
    CHECK(sp_batch_next(all, total, &sz) == 1 && sz == sizes[0]);

    /* lengths */
    uint8_t h[12] = { 0 };
    static const struct { uint32_t blen; int want; } cases[] = {
        { 48, -1 }, { 49, 0 }, { 0, -1 }, { 0x80000000u, -1 }, { 0xffffffffu, -1 },
        { 0x7fffffffu - 12, 0 }, { 0x7fffffffu - 11, -1 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        be32(h + 8, cases[i].blen);
        int rc = sp_batch_next(h, sizeof(h), &sz);
        CHECK(rc == cases[i].want);
        CHECK(rc < 0 ? sz == 0 : sz == 12 + (size_t)cases[i].blen);
    }
    uint8_t min[61] = { 0 };
    be32(min + 8, 49);
    CHECK(sp_batch_next(min, 61, &sz) == 1 && sz == 61);
    CHECK(sp_batch_next(min, 60, &sz) == 0 && sz == 61);

    for (int i = 0; i < 3; i++)
        free(parts[i]);
    free(all);
}

/* iterator on hostile headers: never reads outside, fails cleanly */
static void test_iter_errors(void)
{
    sp_record_iter_t it;
    sp_record_t rec;
    uint8_t b[80] = { 0 };
    CHECK(sp_record_iter_init(&it, b, 60, 0) == SP_BATCH_E_CORRUPT);
    CHECK(sp_record_iter_next(&it, &rec) == SP_BATCH_E_CORRUPT);
    sp_record_iter_free(&it);
    be32(b + 8, 80 - 12);
    CHECK(sp_record_iter_init(&it, b, 80, 0) == SP_BATCH_E_CORRUPT);   /* magic 0 */
    sp_record_iter_free(&it);
    b[16] = 2;
    be32(b + 57, 3);   /* 3 records, 19 bytes: 7 * 3 > 19 */
    CHECK(sp_record_iter_init(&it, b, 80, 0) == SP_BATCH_E_CORRUPT);
    sp_record_iter_free(&it);
    be32(b + 57, 2);   /* fits the minimum, but the bytes are zeros */
    CHECK(sp_record_iter_init(&it, b, 80, 0) == 0);
    CHECK(sp_record_iter_next(&it, &rec) == SP_BATCH_E_CORRUPT);
    CHECK(sp_record_iter_next(&it, &rec) == SP_BATCH_E_CORRUPT);   /* sticky */
    sp_record_iter_free(&it);

    sp_record_t none;
    memset(&none, 0, sizeof(none));
    sp_header_iter_t hi;
    sp_str_t k;
    sp_bytes_t v;
    sp_header_iter_init(&hi, &none);
    CHECK(sp_header_iter_next(&hi, &k, &v) == 0);
    static const uint8_t bad_hdr[] = { 0x02, 'a' };   /* key "a", value missing */
    none.headers = bad_hdr;
    none.headers_len = sizeof(bad_hdr);
    none.header_count = 1;
    sp_header_iter_init(&hi, &none);
    CHECK(sp_header_iter_next(&hi, &k, &v) == -1);
    CHECK(sp_header_iter_next(&hi, &k, &v) == -1);
}

/* Long buffers take ISA-L's folding kernels: they must agree with the
 * table implementation at lengths and alignments around their block sizes. */
static void test_crc_long(void)
{
    size_t cap = 200000;
    uint8_t *buf = malloc(cap + 16);
    uint32_t seed = 12345;
    for (size_t i = 0; i < cap + 16; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
    }
    static const size_t lens[] = { 12287, 12288, 12289, 24575, 24576, 36864, 65536, 100003, 199999 };
    int bad = 0;
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
        for (size_t off = 0; off < 9; off++) {
            uint32_t want = sp_crc32c_sw(0x1234567u, buf + off, lens[k]);
            if (sp_crc32c(0x1234567u, buf + off, lens[k]) != want)
                bad++;
        }
    CHECK(bad == 0);
    /* chained: a long buffer in two pieces equals one call */
    uint32_t whole = sp_crc32c(0, buf, 150000);
    CHECK(sp_crc32c(sp_crc32c(0, buf, 40001), buf + 40001, 150000 - 40001) == whole);
    free(buf);
}

/* ---- 7. a client's batch (6) and record errors (7), (8) --------------------- */

/* RECS in a batch as a client sends it: base offset 0 (not under the CRC). */
static uint8_t *client_batch(int16_t attrs, int32_t count, int32_t lod, int64_t pid, int32_t seq,
                             size_t *len)
{
    uint8_t raw[8192];
    size_t rlen = encode_records(RECS, count > 0 ? count : 0, NULL, raw);
    uint8_t *b = make_batch(attrs, raw, rlen, count, lod, RECS_MAX_TS, len);
    be64(b, 0);
    be64(b + 43, (uint64_t)pid);
    be32(b + 53, (uint32_t)seq);
    fix_crc(b, *len);
    return b;
}

static int validate_client(int16_t attrs, int32_t count, int32_t lod, int64_t pid, int32_t seq,
                           const char **why)
{
    size_t len;
    uint8_t *b = client_batch(attrs, count, lod, pid, seq, &len);
    sp_batch_validate_opts_t client = { .from_client = true };
    sp_batch_info_t info;
    int rc = sp_batch_validate(b, len, &client, &info);
    if (why)
        *why = rc ? info.reason : NULL;
    free(b);
    return rc;
}

static void test_client_origin(void)
{
    const char *why = "";
    sp_batch_validate_opts_t client = { .from_client = true };
    size_t len;

    CHECK(validate_client(0, NRECS, NRECS - 1, -1, -1, &why) == 0 && why == NULL);
    CHECK(validate_client(0, NRECS, NRECS - 1, 1234, 0, NULL) == 0);   /* idempotent */
    CHECK(validate_client(SP_BATCH_ATTR_TRANSACTIONAL, NRECS, NRECS - 1, 1234, 0, NULL) == 0);

    /* B1: control batches, with or without records, transactional or not */
    CHECK(validate_client(SP_BATCH_ATTR_CONTROL, 1, 0, 7, 0, &why) == SP_ERR_INVALID_RECORD);
    CHECK(why && strstr(why, "Clients are not allowed to write control records"));
    CHECK(validate_client(SP_BATCH_ATTR_CONTROL | SP_BATCH_ATTR_TRANSACTIONAL, 1, 0, 7, 0, NULL) ==
          SP_ERR_INVALID_RECORD);
    CHECK(validate_client(SP_BATCH_ATTR_CONTROL, 0, 0, 7, 0, &why) == SP_ERR_INVALID_RECORD);
    CHECK(why && strstr(why, "Invalid reported count"));
    /* ... which the broker's own writers may append */
    uint8_t *b = client_batch(SP_BATCH_ATTR_CONTROL | SP_BATCH_ATTR_TRANSACTIONAL, 1, 0, 7, 0, &len);
    CHECK(sp_batch_validate(b, len, NULL, NULL) == 0);
    CHECK(sp_batch_validate(b, len, &client, NULL) == SP_ERR_INVALID_RECORD);
    free(b);
    b = client_batch(SP_BATCH_ATTR_CONTROL, 0, 0, 7, 0, &len);
    CHECK(sp_batch_validate(b, len, NULL, NULL) == 0);
    free(b);

    /* counts and offsets: INVALID_RECORD for a client, CORRUPT_MESSAGE otherwise */
    CHECK(validate_client(0, NRECS, -1, -1, -1, &why) == SP_ERR_INVALID_RECORD);
    CHECK(why && strstr(why, "invalid offset range"));
    CHECK(validate_client(0, NRECS, NRECS, -1, -1, &why) == SP_ERR_INVALID_RECORD);
    CHECK(why && strstr(why, "Inconsistent batch offset range"));
    CHECK(validate_client(0, 0, 0, -1, -1, NULL) == SP_ERR_INVALID_RECORD);
    CHECK(validate_client(0, -1, 0, -1, -1, NULL) == SP_ERR_INVALID_RECORD);
    CHECK(validate_edit(RECS, NRECS, NULL, NRECS, NRECS, 0, NULL) == SP_ERR_CORRUPT_MESSAGE);

    /* a producer id needs a sequence */
    CHECK(validate_client(0, NRECS, NRECS - 1, 1234, -1, &why) == SP_ERR_INVALID_RECORD);
    CHECK(why && strstr(why, "Invalid sequence number"));
    CHECK(validate_client(0, NRECS, NRECS - 1, -1, -5, NULL) == 0);

    /* records that do not match the header: INVALID_RECORD for a client
     * (the CRC held: it was built so), CORRUPT_MESSAGE otherwise; a codec
     * failure stays CORRUPT_MESSAGE */
    {
        uint8_t raw[8192];
        size_t rlen = encode_records(RECS, NRECS, NULL, raw);
        b = make_batch(0, raw, rlen - 1, NRECS, NRECS - 1, RECS_MAX_TS, &len);
        be64(b, 0);
        CHECK(sp_batch_validate(b, len, NULL, NULL) == SP_ERR_CORRUPT_MESSAGE);
        sp_batch_info_t info;
        CHECK(sp_batch_validate(b, len, &client, &info) == SP_ERR_INVALID_RECORD);
        CHECK(info.reason && strstr(info.reason, "invalid record structure"));
        free(b);
        static const int32_t swapped[NRECS] = { 0, 2, 1, 3, 4 };
        rlen = encode_records(RECS, NRECS, swapped, raw);
        b = make_batch(0, raw, rlen, NRECS, NRECS - 1, RECS_MAX_TS, &len);
        be64(b, 0);
        CHECK(sp_batch_validate(b, len, &client, NULL) == SP_ERR_INVALID_RECORD);
        free(b);
        static const uint8_t junk[] = "not gzip at all";
        b = make_batch(SP_COMPRESSION_GZIP, junk, sizeof(junk), 1, 0, BASE_TS, &len);
        be64(b, 0);
        be64(b + 43, (uint64_t)-1);
        fix_crc(b, len);
        CHECK(sp_batch_validate(b, len, &client, NULL) == SP_ERR_CORRUPT_MESSAGE);
        free(b);
    }

    /* base offset 0, checked before the CRC (Kafka's order) */
    b = client_batch(0, NRECS, NRECS - 1, -1, -1, &len);
    be64(b, 1);
    CHECK(sp_batch_validate(b, len, &client, NULL) == SP_ERR_INVALID_RECORD);
    CHECK(sp_batch_validate(b, len, NULL, NULL) == 0);
    b[len - 1] ^= 1;
    CHECK(sp_batch_validate(b, len, &client, NULL) == SP_ERR_INVALID_RECORD);
    be64(b, 0);
    CHECK(sp_batch_validate(b, len, &client, NULL) == SP_ERR_CORRUPT_MESSAGE);
    free(b);
}

typedef struct rerrs {
    int n;
    int32_t idx[64];
    int16_t err[64];
    char msg[64][320];
} rerrs_t;

static void collect(void *ctx, int32_t batch_index, int16_t error, const char *message)
{
    rerrs_t *r = ctx;
    if (r->n < 64) {
        r->idx[r->n] = batch_index;
        r->err[r->n] = error;
        snprintf(r->msg[r->n], sizeof(r->msg[0]), "%s", message);
    }
    r->n++;
}

static void test_record_errors(void)
{
    uint8_t raw[8192];
    size_t rlen = encode_records(RECS, NRECS, NULL, raw), len;
    uint8_t *b = make_batch(0, raw, rlen, NRECS, NRECS - 1, RECS_MAX_TS, &len);
    rerrs_t re;
    sp_batch_info_t info;

    /* (7) a keyless record on a compacted topic, named with its index */
    memset(&re, 0, sizeof(re));
    sp_batch_validate_opts_t o = { .require_keys = true, .partition = "t-0", .record_error = collect,
                                   .record_error_ctx = &re };
    CHECK(sp_batch_validate(b, len, &o, &info) == SP_ERR_INVALID_RECORD);
    CHECK(re.n == 1 && re.idx[0] == 1 && re.err[0] == SP_ERR_INVALID_RECORD);
    CHECK(strcmp(re.msg[0], "Compacted topic cannot accept message without key in topic partition t-0") == 0);
    CHECK(info.reason && strstr(info.reason, "One or more records have been rejected"));

    /* 10 keyless records among 100: all ten, in order, inside gzip too */
    sp_batch_builder_t bb;
    sp_batch_builder_init(&bb, 0, BASE_TS);
    for (int i = 0; i < 100; i++)
        sp_batch_builder_add(&bb, i % 10 == 3 ? NULL : "k", i % 10 == 3 ? -1 : 1, "v", 1, BASE_TS);
    size_t blen;
    uint8_t *bb_out = sp_batch_builder_finish(&bb, &blen);
    sp_batch_builder_free(&bb);
    memset(&re, 0, sizeof(re));
    CHECK(bb_out && sp_batch_validate(bb_out, blen, &o, NULL) == SP_ERR_INVALID_RECORD);
    int bad = re.n != 10;
    for (int i = 0; i < re.n && i < 10; i++)
        bad += re.idx[i] != i * 10 + 3;
    CHECK(bad == 0);
    size_t zlen;
    uint8_t *z = gzip_buf(bb_out + 61, blen - 61, &zlen, 15 + 16);
    size_t zblen;
    uint8_t *zb = make_batch(SP_COMPRESSION_GZIP, z, zlen, 100, 99, BASE_TS, &zblen);
    memset(&re, 0, sizeof(re));
    CHECK(sp_batch_validate(zb, zblen, &o, NULL) == SP_ERR_INVALID_RECORD && re.n == 10 && re.idx[9] == 93);
    free(zb);
    free(z);
    free(bb_out);

    /* (8) bounds: RECS are at BASE_TS + 0, 7, -3, 250, 100000 */
    memset(&re, 0, sizeof(re));
    sp_batch_validate_opts_t t = { .check_timestamps = true, .now_ms = BASE_TS, .ts_before_max_ms = 2,
                                   .ts_after_max_ms = 200, .record_error = collect, .record_error_ctx = &re };
    CHECK(sp_batch_validate(b, len, &t, &info) == SP_ERR_INVALID_TIMESTAMP);
    CHECK(re.n == 3 && re.idx[0] == 2 && re.idx[1] == 3 && re.idx[2] == 4);
    CHECK(re.err[0] == SP_ERR_INVALID_TIMESTAMP);
    CHECK(strcmp(re.msg[0], "Timestamp 1699999999997 of message with offset 1002 is out of range. "
                            "The timestamp should be within [1699999999998, 1700000000200]") == 0);
    CHECK(info.reason && strcmp(info.reason, "One or more records have been rejected due to invalid timestamp") == 0);
    t.ts_before_max_ms = 3;
    t.ts_after_max_ms = 100000;
    CHECK(sp_batch_validate(b, len, &t, NULL) == 0);   /* inclusive */
    /* Kafka's defaults: anything in the past, up to an hour ahead; the
     * bound printed as Java's long arithmetic gives it */
    memset(&re, 0, sizeof(re));
    t.ts_before_max_ms = INT64_MAX;
    t.ts_after_max_ms = 99999;
    CHECK(sp_batch_validate(b, len, &t, NULL) == SP_ERR_INVALID_TIMESTAMP && re.n == 1 && re.idx[0] == 4);
    CHECK(strstr(re.msg[0], "within [-9223370336854775807, 1700000099999]") != NULL);
    t.ts_after_max_ms = INT64_MAX;
    t.now_ms = INT64_MIN + 5;   /* diff wraps, as in Kafka */
    CHECK(sp_batch_validate(b, len, &t, NULL) == 0);
    t.now_ms = BASE_TS;

    /* keys and timestamps together: one error per record, key first; a
     * single bad timestamp makes the answer INVALID_TIMESTAMP */
    memset(&re, 0, sizeof(re));
    t.require_keys = true;
    t.partition = "t-3";
    t.ts_before_max_ms = INT64_MAX;
    t.ts_after_max_ms = 200;
    CHECK(sp_batch_validate(b, len, &t, NULL) == SP_ERR_INVALID_TIMESTAMP);
    CHECK(re.n == 3 && re.idx[0] == 1 && re.err[0] == SP_ERR_INVALID_RECORD &&
          re.idx[1] == 3 && re.err[1] == SP_ERR_INVALID_TIMESTAMP && re.idx[2] == 4);
    t.require_keys = false;

    /* no timestamp (-1) is never out of range */
    sp_batch_builder_init(&bb, 0, -1);
    sp_batch_builder_add(&bb, "k", 1, "v", 1, -1);
    bb_out = sp_batch_builder_finish(&bb, &blen);
    sp_batch_builder_free(&bb);
    t.ts_before_max_ms = 0;
    t.ts_after_max_ms = 0;
    CHECK(bb_out && sp_batch_validate(bb_out, blen, &t, NULL) == 0);
    free(bb_out);

    /* a LogAppendTime topic refuses batches claiming LogAppendTime (every
     * record, timestamps are then maxTimestamp); a CreateTime topic checks
     * those records' timestamp (= maxTimestamp) against the bounds */
    size_t llen;
    uint8_t *lat = make_batch(SP_BATCH_ATTR_LOG_APPEND_TIME, raw, rlen, NRECS, NRECS - 1, RECS_MAX_TS, &llen);
    memset(&re, 0, sizeof(re));
    t.log_append_time = true;
    CHECK(sp_batch_validate(lat, llen, &t, NULL) == SP_ERR_INVALID_TIMESTAMP && re.n == NRECS);
    CHECK(strcmp(re.msg[0], "Invalid timestamp type in message DefaultRecord(offset=1000, timestamp=1700000100000, "
                            "key=5 bytes, value=7 bytes). Producer should not set timestamp type to LogAppendTime.") == 0);
    CHECK(sp_batch_validate(b, len, &t, NULL) == 0);   /* CreateTime batch: no bounds */
    t.log_append_time = false;
    t.ts_after_max_ms = 100000;
    CHECK(sp_batch_validate(lat, llen, &t, NULL) == 0);
    t.ts_after_max_ms = 99999;
    CHECK(sp_batch_validate(lat, llen, &t, NULL) == SP_ERR_INVALID_TIMESTAMP);
    free(lat);

    /* a corrupt record after a refused one: CORRUPT_MESSAGE wins */
    memset(&re, 0, sizeof(re));
    size_t clen;
    uint8_t *c = make_batch(0, raw, rlen - 1, NRECS, NRECS - 1, RECS_MAX_TS, &clen);
    CHECK(sp_batch_validate(c, clen, &o, &info) == SP_ERR_CORRUPT_MESSAGE);
    CHECK(info.reason != NULL);
    free(c);
    free(b);
}

/* ---- 8. recompression ----------------------------------------------------- */

/* Recompresses src to codec and checks: it validates (as a client's batch
 * too), carries the same records, keeps every header field but the codec
 * and delete-horizon bits, and frames the codec as Kafka's broker does. */
static void check_recompressed(const char *name, const uint8_t *src, size_t len, int codec,
                               int level, const trec_t *r, int n)
{
    uint8_t *out = NULL;
    size_t olen = 0;
    int rc = sp_batch_recompress(src, len, codec, level, 0, &out, &olen);
    if (rc)
        fprintf(stderr, "  %s: recompress -> %d\n", name, rc);
    CHECK(rc == 0 && out);
    if (!out)
        return;
    sp_batch_info_t a, b;
    CHECK(sp_batch_validate(src, len, NULL, &a) == 0);
    rc = sp_batch_validate(out, olen, NULL, &b);
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK(sp_batch_compression(&b.hdr) == codec);
        CHECK(b.hdr.attributes == ((a.hdr.attributes & ~(SP_BATCH_ATTR_COMPRESSION_MASK |
                                                         SP_BATCH_ATTR_DELETE_HORIZON)) | codec));
        CHECK(b.hdr.base_offset == a.hdr.base_offset && b.hdr.partition_leader_epoch == a.hdr.partition_leader_epoch);
        CHECK(b.hdr.last_offset_delta == a.hdr.last_offset_delta && b.hdr.record_count == a.hdr.record_count);
        CHECK(b.hdr.base_timestamp == a.hdr.base_timestamp && b.hdr.max_timestamp == a.hdr.max_timestamp);
        CHECK(b.hdr.producer_id == a.hdr.producer_id && b.hdr.producer_epoch == a.hdr.producer_epoch &&
              b.hdr.base_sequence == a.hdr.base_sequence);
        CHECK(b.records_size == a.records_size && b.max_timestamp == a.max_timestamp);
        if (r)
            check_records(out, olen, r, n, name);
        const uint8_t *z = out + 61;
        switch (codec) {
        case SP_COMPRESSION_GZIP: CHECK(z[0] == 0x1f && z[1] == 0x8b); break;
        case SP_COMPRESSION_SNAPPY:
            CHECK(memcmp(z, "\x82SNAPPY\0\0\0\0\1\0\0\0\1", 16) == 0);
            break;
        case SP_COMPRESSION_LZ4:
            /* magic; FLG: version 01, independent blocks; BD: 64 KiB */
            CHECK(rd32(z) == 0x04224D18 && (z[4] & 0xE0) == 0x60 && z[5] == 0x40);
            break;
        case SP_COMPRESSION_ZSTD: CHECK(ZSTD_getFrameContentSize(z, olen - 61) == b.records_size); break;
        default: break;
        }
    }
    free(out);
}

static void test_recompress(void)
{
    uint8_t raw[8192];
    size_t rlen = encode_records(RECS, NRECS, NULL, raw), len, zlen;
    static const char *names[] = { "none", "gzip", "snappy", "lz4", "zstd" };
    char what[64];

    /* every codec to every codec, from a transactional batch with producer
     * fields and the delete-horizon bit (cleared) */
    uint8_t *src[5];
    size_t slen[5];
    int16_t attrs = SP_BATCH_ATTR_TRANSACTIONAL | SP_BATCH_ATTR_DELETE_HORIZON;
    src[0] = make_batch(attrs, raw, rlen, NRECS, NRECS - 1, RECS_MAX_TS, &slen[0]);
    for (int c = 1; c <= 4; c++) {
        uint8_t *o = NULL;
        CHECK(sp_batch_recompress(src[0], slen[0], c, c == 3 ? 9 : c == 4 ? 3 : -1, 0, &o, &zlen) == 0);
        src[c] = o;
        slen[c] = zlen;
    }
    for (int from = 0; from <= 4; from++)
        for (int to = 0; to <= 4; to++) {
            snprintf(what, sizeof(what), "%s -> %s", names[from], names[to]);
            if (src[from])
                check_recompressed(what, src[from], slen[from], to, to == 3 ? 9 : to == 4 ? 3 : -1, RECS, NRECS);
        }
    /* a producer's own framings as sources: raw snappy, two gzip members */
    uint8_t *z = snappy_raw(raw, rlen, &zlen);
    uint8_t *b = make_batch(SP_COMPRESSION_SNAPPY, z, zlen, NRECS, NRECS - 1, RECS_MAX_TS, &len);
    check_recompressed("raw snappy -> zstd", b, len, SP_COMPRESSION_ZSTD, 3, RECS, NRECS);
    free(b);
    free(z);

    /* the levels of each scale */
    static const struct { int codec, level; } lv[] = {
        { SP_COMPRESSION_GZIP, 1 }, { SP_COMPRESSION_GZIP, 9 }, { SP_COMPRESSION_LZ4, 1 },
        { SP_COMPRESSION_LZ4, 17 }, { SP_COMPRESSION_ZSTD, -131072 }, { SP_COMPRESSION_ZSTD, -5 },
        { SP_COMPRESSION_ZSTD, 22 },
    };
    for (size_t i = 0; i < sizeof(lv) / sizeof(lv[0]); i++) {
        snprintf(what, sizeof(what), "%s level %d", names[lv[i].codec], lv[i].level);
        check_recompressed(what, src[0], slen[0], lv[i].codec, lv[i].level, RECS, NRECS);
    }

    /* many records: several snappy and lz4 blocks, a real size change */
    sp_batch_builder_t bb;
    sp_batch_builder_init(&bb, 0, BASE_TS);
    char v[200];
    for (int i = 0; i < 3000; i++) {
        int n = snprintf(v, sizeof(v), "value %d of a compressible batch ......................... %d", i, i % 7);
        sp_batch_builder_add(&bb, "key", 3, v, n, BASE_TS + i);
    }
    uint8_t *big = sp_batch_builder_finish(&bb, &len);
    sp_batch_builder_free(&bb);
    CHECK(big && len > 200000);
    for (int c = 0; big && c <= 4; c++) {
        snprintf(what, sizeof(what), "3000 records -> %s", names[c]);
        check_recompressed(what, big, len, c, c == 3 ? 9 : c == 4 ? 3 : -1, NULL, 0);
        uint8_t *o = NULL;
        CHECK(sp_batch_recompress(big, len, c, c == 3 ? 9 : c == 4 ? 3 : -1, 0, &o, &zlen) == 0);
        CHECK(c == 0 ? zlen == len : zlen < len / 3);
        sp_batch_info_t info;
        sp_batch_validate_opts_t client = { .from_client = true };
        CHECK(o && sp_batch_validate(o, zlen, &client, &info) == 0 && info.records == 3000);
        free(o);
    }
    free(big);

    /* failures: records that do not decompress, an unknown codec, the cap */
    static const uint8_t junk[] = "not zstd";
    b = make_batch(SP_COMPRESSION_ZSTD, junk, sizeof(junk), 1, 0, BASE_TS, &len);
    uint8_t *o = (uint8_t *)"untouched";
    CHECK(sp_batch_recompress(b, len, SP_COMPRESSION_GZIP, -1, 0, &o, &zlen) == SP_BATCH_E_CORRUPT);
    CHECK(o && strcmp((char *)o, "untouched") == 0);
    free(b);
    CHECK(sp_batch_recompress(src[0], slen[0], 5, 0, 0, &o, &zlen) == SP_BATCH_E_CODEC);
    CHECK(sp_batch_recompress(src[1], slen[1], SP_COMPRESSION_NONE, 0, rlen - 1, &o, &zlen) ==
          SP_BATCH_E_TOO_BIG);
    for (int c = 0; c <= 4; c++)
        free(src[c]);
}

int main(void)
{
    test_crc_long();
    test_crc();
    test_builder_known_answer();
    test_builder_roundtrip();
    test_builder_flags_and_failures();
    test_codecs();
    test_corruption();
    test_bombs();
    test_patching();
    test_next();
    test_iter_errors();
    test_client_origin();
    test_record_errors();
    test_recompress();
    return check_summary("test_batch");
}
