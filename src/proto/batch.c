/*
 * batch.c - Kafka record batches v2 (see batch.h for the layout and the
 * invariants numbered (1)-(5)).
 *
 * Decompression goes into one malloc'd buffer that doubles from a small
 * start up to max_decompressed + 1 bytes; reaching that last byte means the
 * output is over the cap (SP_BATCH_E_TOO_BIG), so a bomb costs at most
 * about twice the cap in memory and never more.
 */
#include "proto/batch.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "proto/crc32c.h"
#include "proto/gen/errors.h"

/* Field offsets in the header (see the table in batch.h). */
enum {
    OFF_BASE_OFFSET = 0,
    OFF_BATCH_LENGTH = 8,
    OFF_LEADER_EPOCH = 12,
    OFF_MAGIC = 16,
    OFF_CRC = SP_BATCH_CRC_OFFSET,
    OFF_ATTRIBUTES = SP_BATCH_CRC_START,
    OFF_MAX_TIMESTAMP = 35,
};

/* Smallest encoded record: length, attributes, timestampDelta, offsetDelta,
 * keyLength, valueLength, headerCount, one byte each. */
#define MIN_RECORD_SIZE 7
/* Smallest encoded header: keyLength 0 and valueLength -1, one byte each. */
#define MIN_HEADER_SIZE 2

static inline int64_t add_wrap(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
    sp_put_be32(p, (uint32_t)(v >> 32));
    sp_put_be32(p + 4, (uint32_t)v);
}

/* ---- header ------------------------------------------------------------ */

int sp_batch_hdr_parse(const uint8_t *p, size_t len, sp_batch_hdr_t *h)
{
    if (len < SP_BATCH_HEADER_SIZE)
        return -1;
    sp_reader_t r = sp_reader(p, SP_BATCH_HEADER_SIZE);
    int32_t crc;
    sp_read_i64(&r, &h->base_offset);
    sp_read_i32(&r, &h->batch_length);
    sp_read_i32(&r, &h->partition_leader_epoch);
    sp_read_i8(&r, &h->magic);
    sp_read_i32(&r, &crc);
    h->crc = (uint32_t)crc;
    sp_read_i16(&r, &h->attributes);
    sp_read_i32(&r, &h->last_offset_delta);
    sp_read_i64(&r, &h->base_timestamp);
    sp_read_i64(&r, &h->max_timestamp);
    sp_read_i64(&r, &h->producer_id);
    sp_read_i16(&r, &h->producer_epoch);
    sp_read_i32(&r, &h->base_sequence);
    sp_read_i32(&r, &h->record_count);
    return 0;
}

/* ---- framing ------------------------------------------------------------ */

int sp_batch_next(const uint8_t *p, size_t len, size_t *batch_size)
{
    *batch_size = 0;
    if (len < SP_BATCH_LOG_OVERHEAD)
        return 0;
    int32_t blen = (int32_t)sp_be32(p + OFF_BATCH_LENGTH);
    if (blen < SP_BATCH_MIN_LENGTH || blen > INT32_MAX - SP_BATCH_LOG_OVERHEAD)
        return -1;
    *batch_size = SP_BATCH_LOG_OVERHEAD + (size_t)blen;
    return len >= *batch_size ? 1 : 0;
}

/* ---- decompression ------------------------------------------------------ */

/* Output buffer: p[0..len) written, cap allocated, hard = cap limit
 * (max_decompressed + 1: filling it means "over the cap"). */
typedef struct dbuf {
    uint8_t *p;
    size_t len, cap, hard;
} dbuf_t;

/* Makes room for at least one more byte (doubling), or fails. */
static int dbuf_grow(dbuf_t *d, size_t want)
{
    if (d->cap >= d->hard)
        return SP_BATCH_E_TOO_BIG;
    size_t ncap = d->cap ? d->cap : 4096;
    while (ncap < want || ncap <= d->cap)
        ncap = ncap > SIZE_MAX / 2 ? SIZE_MAX : ncap * 2;
    if (ncap > d->hard)
        ncap = d->hard;
    uint8_t *np = realloc(d->p, ncap);
    if (!np)
        return SP_BATCH_E_NOMEM;
    d->p = np;
    d->cap = ncap;
    return 0;
}

/* Ensures room for exactly n more bytes (known sizes: snappy). */
static int dbuf_reserve(dbuf_t *d, size_t n)
{
    if (d->len > d->hard - 1 || n > d->hard - 1 - d->len)
        return SP_BATCH_E_TOO_BIG;
    if (d->cap - d->len >= n)
        return 0;
    return dbuf_grow(d, d->len + n);
}

/* gzip (or zlib) via inflate; concatenated gzip members are accepted,
 * trailing garbage is not. */
static int unzip(const uint8_t *src, size_t n, dbuf_t *d)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (n > UINT_MAX)
        return SP_BATCH_E_CORRUPT;
    /* 15 + 32: 32 KiB window, auto-detect the gzip or zlib wrapper. */
    if (inflateInit2(&zs, 15 + 32) != Z_OK)
        return SP_BATCH_E_NOMEM;
    zs.next_in = (Bytef *)src;
    zs.avail_in = (uInt)n;
    int rc = 0;
    for (;;) {
        if (d->len == d->cap && (rc = dbuf_grow(d, d->len + 1)) != 0)
            break;
        size_t room = d->cap - d->len;
        uInt avail = room > UINT_MAX ? UINT_MAX : (uInt)room;
        zs.next_out = d->p + d->len;
        zs.avail_out = avail;
        int zr = inflate(&zs, Z_NO_FLUSH);
        d->len += avail - zs.avail_out;
        if (zr == Z_STREAM_END) {
            if (zs.avail_in == 0)
                break;
            if (inflateReset(&zs) != Z_OK) {     /* next gzip member */
                rc = SP_BATCH_E_CORRUPT;
                break;
            }
        } else if (zr == Z_MEM_ERROR) {
            rc = SP_BATCH_E_NOMEM;
            break;
        } else if (zr != Z_OK) {
            /* Z_BUF_ERROR with room to write: input ended early. */
            rc = SP_BATCH_E_CORRUPT;
            break;
        }
    }
    inflateEnd(&zs);
    return rc;
}

/* One raw snappy block appended to d. */
static int unsnappy_block(const uint8_t *src, size_t n, dbuf_t *d)
{
    size_t ulen;
    if (snappy_uncompressed_length((const char *)src, n, &ulen) != SNAPPY_OK)
        return SP_BATCH_E_CORRUPT;
    int rc = dbuf_reserve(d, ulen);
    if (rc)
        return rc;
    size_t out = ulen;
    if (ulen == 0)
        return n == 1 ? 0 : SP_BATCH_E_CORRUPT;   /* just the varint 0 */
    if (snappy_uncompress((const char *)src, n, (char *)d->p + d->len, &out) != SNAPPY_OK ||
        out != ulen)
        return SP_BATCH_E_CORRUPT;
    d->len += ulen;
    return 0;
}

/*
 * Snappy, either raw (librdkafka) or with the xerial / snappy-java framing
 * (the Java client):
 *   +-------------------------+-------------+------------+----------------+
 *   | 82 'SNAPPY' 00 (8 bytes)| int32 vers. | int32 compat| blocks...     |
 *   +-------------------------+-------------+------------+----------------+
 *   block: int32 compressed length, then a raw snappy block
 */
static int unsnappy(const uint8_t *src, size_t n, dbuf_t *d)
{
    static const uint8_t xerial_magic[8] = { 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0 };
    if (n < 16 || memcmp(src, xerial_magic, 8) != 0)
        return unsnappy_block(src, n, d);
    sp_reader_t r = sp_reader(src + 16, n - 16);   /* versions not checked, as Kafka */
    while (sp_reader_left(&r) > 0) {
        int32_t clen;
        sp_read_i32(&r, &clen);
        if (clen <= 0)
            return SP_BATCH_E_CORRUPT;
        const uint8_t *blk = sp_read_raw(&r, (size_t)clen);
        if (!blk)
            return SP_BATCH_E_CORRUPT;
        int rc = unsnappy_block(blk, (size_t)clen, d);
        if (rc)
            return rc;
    }
    return sp_reader_ok(&r) ? 0 : SP_BATCH_E_CORRUPT;
}

/* LZ4 frame format (Kafka's KafkaLZ4BlockOutputStream writes standard
 * frames for magic 2); concatenated frames are accepted. */
static int unlz4(const uint8_t *src, size_t n, dbuf_t *d)
{
    LZ4F_dctx *ctx;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&ctx, LZ4F_VERSION)))
        return SP_BATCH_E_NOMEM;
    size_t pos = 0, hint = 1;   /* hint 0 = at a frame boundary */
    int rc = 0;
    while (pos < n || hint != 0) {
        if (d->len == d->cap && (rc = dbuf_grow(d, d->len + 1)) != 0)
            break;
        size_t dst = d->cap - d->len, srcsz = n - pos;
        hint = LZ4F_decompress(ctx, d->p + d->len, &dst, src + pos, &srcsz, NULL);
        if (LZ4F_isError(hint) || (dst == 0 && srcsz == 0)) {
            rc = SP_BATCH_E_CORRUPT;   /* bad data, or input ended mid-frame */
            break;
        }
        pos += srcsz;
        d->len += dst;
    }
    LZ4F_freeDecompressionContext(ctx);
    return rc;
}

/* zstd through the streaming API: the frame need not carry its content
 * size.  Concatenated frames are accepted. */
static int unzstd(const uint8_t *src, size_t n, dbuf_t *d)
{
    ZSTD_DStream *ds = ZSTD_createDStream();
    if (!ds)
        return SP_BATCH_E_NOMEM;
    ZSTD_initDStream(ds);
    ZSTD_inBuffer in = { src, n, 0 };
    size_t ret = 1;             /* 0 = at a frame boundary */
    int rc = 0;
    while (in.pos < in.size || ret != 0) {
        if (d->len == d->cap && (rc = dbuf_grow(d, d->len + 1)) != 0)
            break;
        ZSTD_outBuffer out = { d->p, d->cap, d->len };
        size_t in_before = in.pos;
        ret = ZSTD_decompressStream(ds, &out, &in);
        if (ZSTD_isError(ret) || (in.pos == in_before && out.pos == d->len)) {
            rc = SP_BATCH_E_CORRUPT;   /* bad data, or input ended mid-frame */
            break;
        }
        d->len = out.pos;
    }
    ZSTD_freeDStream(ds);
    return rc;
}

/* Decompresses src[0..n) with 'codec' into a new malloc'd *out (never NULL
 * on success), *out_len <= limit.  Returns 0 or SP_BATCH_E_*. */
static int decompress(int codec, const uint8_t *src, size_t n, size_t limit, uint8_t **out,
                      size_t *out_len)
{
    dbuf_t d = { NULL, 0, 0, limit + 1 };
    size_t start = n > SIZE_MAX / 4 ? SIZE_MAX : n * 4;
    int rc = dbuf_grow(&d, start < 4096 ? 4096 : start);
    if (rc == 0) {
        switch (codec) {
        case SP_COMPRESSION_GZIP: rc = unzip(src, n, &d); break;
        case SP_COMPRESSION_SNAPPY: rc = unsnappy(src, n, &d); break;
        case SP_COMPRESSION_LZ4: rc = unlz4(src, n, &d); break;
        case SP_COMPRESSION_ZSTD: rc = unzstd(src, n, &d); break;
        default: rc = SP_BATCH_E_CODEC; break;
        }
    }
    if (rc == 0 && d.len > limit)
        rc = SP_BATCH_E_TOO_BIG;
    if (rc) {
        free(d.p);
        return rc;
    }
    *out = d.p;
    *out_len = d.len;
    return 0;
}

int sp_decompress(int codec, const uint8_t *src, size_t n, size_t limit, uint8_t **out, size_t *out_len)
{
    return decompress(codec, src, n, limit ? limit : SP_BATCH_MAX_DECOMPRESSED_DEFAULT, out, out_len);
}

/* ---- record iteration ---------------------------------------------------- */

static int iter_fail(sp_record_iter_t *it, int err)
{
    it->err = err;
    sp_reader_fail(&it->r);
    return err;
}

int sp_record_iter_init(sp_record_iter_t *it, const uint8_t *batch, size_t len,
                        size_t max_decompressed)
{
    memset(it, 0, sizeof(*it));
    it->r.err = true;   /* an empty, failed reader until the end */
    if (sp_batch_hdr_parse(batch, len, &it->hdr) != 0)
        return it->err = SP_BATCH_E_CORRUPT;
    const sp_batch_hdr_t *h = &it->hdr;
    if (h->magic != SP_BATCH_MAGIC || h->batch_length < SP_BATCH_MIN_LENGTH ||
        sp_batch_size(h) != len || h->record_count < 0)
        return it->err = SP_BATCH_E_CORRUPT;

    const uint8_t *rec = batch + SP_BATCH_HEADER_SIZE;
    size_t rlen = len - SP_BATCH_HEADER_SIZE;
    uint64_t min_size = (uint64_t)h->record_count * MIN_RECORD_SIZE;
    int codec = sp_batch_compression(h);
    if (codec == SP_COMPRESSION_NONE) {
        if (min_size > rlen)
            return it->err = SP_BATCH_E_CORRUPT;
        it->r = sp_reader(rec, rlen);
        it->records_size = rlen;
        return 0;
    }
    if (codec > SP_COMPRESSION_ZSTD)
        return it->err = SP_BATCH_E_CODEC;
    size_t limit = max_decompressed ? max_decompressed : SP_BATCH_MAX_DECOMPRESSED_DEFAULT;
    if (limit > SIZE_MAX / 2)
        limit = SIZE_MAX / 2;
    if (min_size > limit)   /* cannot fit, don't even start */
        return it->err = SP_BATCH_E_TOO_BIG;
    int rc = decompress(codec, rec, rlen, limit, &it->buf, &it->records_size);
    if (rc)
        return it->err = rc;
    it->r = sp_reader(it->buf, it->records_size);
    return 0;
}

/* varint length + bytes, -1 = null (only if nullable). */
static void read_varbytes(sp_reader_t *r, sp_bytes_t *out, bool nullable)
{
    int32_t n = sp_read_varint(r);
    out->ptr = NULL;
    out->len = -1;
    if (!sp_reader_ok(r) || (n == -1 && nullable))
        return;
    if (n < 0) {
        sp_reader_fail(r);
        return;
    }
    out->ptr = sp_read_raw(r, (size_t)n);
    out->len = out->ptr ? n : -1;
}

int sp_record_iter_next(sp_record_iter_t *it, sp_record_t *out)
{
    if (it->err)
        return it->err;
    sp_reader_t *r = &it->r;
    if (it->index >= it->hdr.record_count) {
        if (sp_reader_left(r) != 0)   /* (4) nothing after the last record */
            return iter_fail(it, SP_BATCH_E_CORRUPT);
        return 0;
    }
    int32_t rlen = sp_read_varint(r);
    if (!sp_reader_ok(r) || rlen < MIN_RECORD_SIZE - 1 || (size_t)rlen > sp_reader_left(r))
        return iter_fail(it, SP_BATCH_E_CORRUPT);

    /* (4) the record is exactly rlen bytes */
    sp_reader_t rr = sp_reader_take(r, (uint32_t)rlen);
    sp_read_i8(&rr, &out->attributes);
    out->timestamp_delta = sp_read_varlong(&rr);
    out->offset_delta = sp_read_varint(&rr);
    read_varbytes(&rr, &out->key, true);
    read_varbytes(&rr, &out->value, true);
    out->header_count = sp_read_varint(&rr);
    if (!sp_reader_ok(&rr) || out->header_count < 0 ||
        (size_t)out->header_count > sp_reader_left(&rr) / MIN_HEADER_SIZE)
        return iter_fail(it, SP_BATCH_E_CORRUPT);
    out->headers = rr.pos;
    for (int32_t i = 0; i < out->header_count && sp_reader_ok(&rr); i++) {
        sp_bytes_t k, v;
        read_varbytes(&rr, &k, false);
        read_varbytes(&rr, &v, true);
    }
    if (!sp_reader_ok(&rr) || sp_reader_left(&rr) != 0)
        return iter_fail(it, SP_BATCH_E_CORRUPT);
    out->headers_len = (size_t)(rr.pos - out->headers);

    const sp_batch_hdr_t *h = &it->hdr;
    out->timestamp = sp_batch_is_log_append_time(h) ? h->max_timestamp
                                                   : add_wrap(h->base_timestamp, out->timestamp_delta);
    out->offset = add_wrap(h->base_offset, out->offset_delta);
    it->index++;
    return 1;
}

void sp_record_iter_free(sp_record_iter_t *it)
{
    free(it->buf);
    it->buf = NULL;
    it->records_size = 0;
    it->r.err = true;
    it->r.pos = it->r.end;
    if (!it->err)
        it->err = SP_BATCH_E_CORRUPT;   /* using a freed iterator fails */
}

void sp_header_iter_init(sp_header_iter_t *it, const sp_record_t *rec)
{
    if (rec->headers) {
        it->r = sp_reader(rec->headers, rec->headers_len);
        it->left = rec->header_count;
    } else {
        it->r = (sp_reader_t){ NULL, NULL, false };
        it->left = 0;
    }
}

int sp_header_iter_next(sp_header_iter_t *it, sp_str_t *key, sp_bytes_t *value)
{
    if (it->left <= 0)
        return it->left == 0 ? 0 : -1;
    sp_bytes_t k;
    read_varbytes(&it->r, &k, false);
    read_varbytes(&it->r, value, true);
    if (!sp_reader_ok(&it->r)) {
        it->left = -1;
        return -1;
    }
    key->ptr = (const char *)k.ptr;
    key->len = k.len;
    it->left--;
    return 1;
}

/* ---- validation --------------------------------------------------------- */

static int kafka_error(int batch_err)
{
    switch (batch_err) {
    case 0: return SP_ERR_NONE;
    case SP_BATCH_E_CODEC: return SP_ERR_UNSUPPORTED_COMPRESSION_TYPE;
    case SP_BATCH_E_NOMEM: return SP_ERR_UNKNOWN_SERVER_ERROR;
    default: return SP_ERR_CORRUPT_MESSAGE;   /* CORRUPT, TOO_BIG */
    }
}

/* Java's long arithmetic (wraps), for Kafka's timestamp bounds and their
 * message: a bound of Long.MAX_VALUE must behave exactly as in Kafka. */
static inline int64_t sub_wrap(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a - (uint64_t)b);
}

/* Kafka's LogValidator.validateRecord for one record (7), (8): 0, or the
 * error it earns, with Kafka's message written to msg[0..cap). */
static int16_t check_record(const sp_batch_validate_opts_t *o, const sp_batch_hdr_t *h,
                            const sp_record_t *rec, char *msg, size_t cap)
{
    const char *tp = o->partition ? o->partition : "";
    if (o->require_keys && rec->key.len < 0) {
        snprintf(msg, cap, "Compacted topic cannot accept message without key in topic partition %s", tp);
        return SP_ERR_INVALID_RECORD;
    }
    if (!o->check_timestamps)
        return 0;
    if (!o->log_append_time && rec->timestamp != -1) {
        int64_t diff = sub_wrap(o->now_ms, rec->timestamp);
        if (diff > o->ts_before_max_ms || sub_wrap(0, diff) > o->ts_after_max_ms) {
            snprintf(msg, cap,
                     "Timestamp %" PRId64 " of message with offset %" PRId64 " is out of range. "
                     "The timestamp should be within [%" PRId64 ", %" PRId64 "]",
                     rec->timestamp, rec->offset, sub_wrap(o->now_ms, o->ts_before_max_ms),
                     add_wrap(o->now_ms, o->ts_after_max_ms));
            return SP_ERR_INVALID_TIMESTAMP;
        }
    } else if (sp_batch_is_log_append_time(h)) {
        snprintf(msg, cap,
                 "Invalid timestamp type in message DefaultRecord(offset=%" PRId64 ", timestamp=%" PRId64
                 ", key=%d bytes, value=%d bytes). Producer should not set timestamp type to LogAppendTime.",
                 rec->offset, rec->timestamp, rec->key.len > 0 ? rec->key.len : 0,
                 rec->value.len > 0 ? rec->value.len : 0);
        return SP_ERR_INVALID_TIMESTAMP;
    }
    return 0;
}

/* (6): Kafka's checks of a client's batch header (UnifiedLog's base offset
 * rule, LogValidator.validateBatch).  0 or INVALID_RECORD with *why. */
static int client_batch_error(const sp_batch_hdr_t *h, const char **why)
{
    if (h->base_offset != 0)
        *why = "The baseOffset of the record batch should be 0";
    else if (h->last_offset_delta < 0)
        *why = "Batch has an invalid offset range";
    else if (h->record_count <= 0)
        *why = "Invalid reported count for record batch";
    else if (h->last_offset_delta != h->record_count - 1)
        *why = "Inconsistent batch offset range and count of records";
    else if (sp_batch_is_control(h))
        *why = "Clients are not allowed to write control records";
    else if (h->producer_id >= 0 && h->base_sequence < 0)
        *why = "Invalid sequence number in a record batch with a producer id";
    else
        return 0;
    return SP_ERR_INVALID_RECORD;
}

static const char *iter_reason(int batch_err)
{
    switch (batch_err) {
    case SP_BATCH_E_CODEC: return "unsupported compression type";
    case SP_BATCH_E_NOMEM: return "out of memory";
    case SP_BATCH_E_TOO_BIG: return "decompressed records over the size cap";
    default: return "records do not match the batch header";
    }
}

int sp_batch_validate(const uint8_t *p, size_t len, const sp_batch_validate_opts_t *opts,
                      sp_batch_info_t *info)
{
    static const sp_batch_validate_opts_t defaults;
    sp_batch_hdr_t h;
    const char *why = NULL;
    int err = SP_ERR_CORRUPT_MESSAGE;
    if (!opts)
        opts = &defaults;

    /* (1); a client's base offset first, as Kafka's UnifiedLog */
    if (sp_batch_hdr_parse(p, len, &h) != 0 || h.magic != SP_BATCH_MAGIC ||
        h.batch_length < SP_BATCH_MIN_LENGTH || sp_batch_size(&h) != len) {
        why = "record batch length or magic is wrong";
        goto fail;
    }
    if (opts->from_client && h.base_offset != 0) {
        err = client_batch_error(&h, &why);
        goto fail;
    }
    if (sp_crc32c(0, p + SP_BATCH_CRC_START, len - SP_BATCH_CRC_START) != h.crc) {
        why = "record batch CRC does not match";
        goto fail;
    }
    /* (2) */
    if (sp_batch_compression(&h) > SP_COMPRESSION_ZSTD) {
        err = SP_ERR_UNSUPPORTED_COMPRESSION_TYPE;
        why = "unsupported compression type";
        goto fail;
    }
    /* (6), or (3) */
    if (opts->from_client) {
        if ((err = client_batch_error(&h, &why)) != 0)
            goto fail;
        err = SP_ERR_CORRUPT_MESSAGE;
    }
    why = "record count does not match the batch's offsets";
    if (h.record_count < 0)
        goto fail;
    if (opts->allow_compacted) {
        if (h.last_offset_delta < 0 || (int64_t)h.record_count > (int64_t)h.last_offset_delta + 1)
            goto fail;
    } else if (h.record_count == 0) {
        if (!sp_batch_is_control(&h) || h.last_offset_delta < 0)
            goto fail;
    } else if (h.last_offset_delta != h.record_count - 1) {
        goto fail;
    }

    /* (4), (5); (7), (8) for every record */
    sp_record_iter_t it;
    int rc = sp_record_iter_init(&it, p, len, opts->max_decompressed);
    int64_t max_ts = -1;
    int32_t n = 0, prev_delta = -1, refused = 0;
    bool bad_ts = false, records_read = rc == 0;
    sp_record_t rec;
    char msg[512];   /* the longest: a key error naming a 249-byte topic */
    while (rc == 0 && (rc = sp_record_iter_next(&it, &rec)) == 1) {
        bool in_order = opts->allow_compacted
                            ? rec.offset_delta > prev_delta && rec.offset_delta <= h.last_offset_delta
                            : rec.offset_delta == n;
        if (!in_order) {
            rc = SP_BATCH_E_CORRUPT;
            break;
        }
        int16_t rerr = check_record(opts, &h, &rec, msg, sizeof(msg));
        if (rerr) {
            refused++;
            bad_ts |= rerr == SP_ERR_INVALID_TIMESTAMP;
            if (opts->record_error)
                opts->record_error(opts->record_error_ctx, n, rerr, msg);
        }
        if (n == 0 || rec.timestamp > max_ts)
            max_ts = rec.timestamp;
        prev_delta = rec.offset_delta;
        n++;
        rc = 0;
    }
    size_t records_size = it.records_size;
    sp_record_iter_free(&it);
    if (rc != 0) {
        err = kafka_error(rc);
        why = iter_reason(rc);
        /* Records that do not match a header whose CRC holds were built so
         * by the client: Kafka's InvalidRecordException ("Found invalid
         * record structure", "Incorrect declared batch size"), not a
         * corruption a retry could cure.  Codec failures stay corrupt. */
        if (opts->from_client && records_read && rc == SP_BATCH_E_CORRUPT) {
            err = SP_ERR_INVALID_RECORD;
            why = "Found invalid record structure";
        }
        goto fail;
    }
    /* Kafka's processRecordErrors: one bad timestamp makes it INVALID_TIMESTAMP */
    if (refused) {
        err = bad_ts ? SP_ERR_INVALID_TIMESTAMP : SP_ERR_INVALID_RECORD;
        why = bad_ts ? "One or more records have been rejected due to invalid timestamp"
                     : "One or more records have been rejected";
        goto fail;
    }
    if (info) {
        info->hdr = h;
        info->max_timestamp = max_ts;
        info->records = n;
        info->compressed = sp_batch_compression(&h) != SP_COMPRESSION_NONE;
        info->records_size = records_size;
        info->reason = NULL;
    }
    return 0;
fail:
    if (info)
        info->reason = why;
    return err;
}

/* ---- patching ------------------------------------------------------------ */

void sp_batch_set_base_offset(uint8_t *batch, int64_t base_offset)
{
    put_be64(batch + OFF_BASE_OFFSET, (uint64_t)base_offset);
}

void sp_batch_set_leader_epoch(uint8_t *batch, int32_t epoch)
{
    sp_put_be32(batch + OFF_LEADER_EPOCH, (uint32_t)epoch);
}

int sp_batch_set_crc(uint8_t *batch, size_t len)
{
    if (len < SP_BATCH_HEADER_SIZE)
        return -1;
    uint32_t crc = sp_crc32c(0, batch + SP_BATCH_CRC_START, len - SP_BATCH_CRC_START);
    sp_put_be32(batch + OFF_CRC, crc);
    return 0;
}

int sp_batch_set_log_append_time(uint8_t *batch, size_t len, int64_t ts)
{
    if (len < SP_BATCH_HEADER_SIZE)
        return -1;
    uint16_t attrs = (uint16_t)((batch[OFF_ATTRIBUTES] << 8) | batch[OFF_ATTRIBUTES + 1]);
    put_be16(batch + OFF_ATTRIBUTES, attrs | SP_BATCH_ATTR_LOG_APPEND_TIME);
    put_be64(batch + OFF_MAX_TIMESTAMP, (uint64_t)ts);
    return sp_batch_set_crc(batch, len);
}

/* ---- builder ---------------------------------------------------------------- */

/* One record's bytes (batch.h's layout): its body size (after the length
 * varint), and writing length and body; headers are passed encoded. */
static size_t record_body_size(int64_t ts_delta, int32_t off_delta, int32_t klen, int32_t vlen, int32_t nheaders,
                               size_t headers_len)
{
    return 1 + sp_varlong_size(ts_delta) + sp_varint_size(off_delta) + sp_varint_size(klen) +
           (klen > 0 ? (size_t)klen : 0) + sp_varint_size(vlen) + (vlen > 0 ? (size_t)vlen : 0) +
           sp_varint_size(nheaders) + headers_len;
}

static void write_record(sp_writer_t *w, size_t body, int64_t ts_delta, int32_t off_delta, const void *key,
                         int32_t klen, const void *val, int32_t vlen, int32_t nheaders, const uint8_t *headers,
                         size_t headers_len)
{
    sp_write_varint(w, (int32_t)body);
    sp_write_i8(w, 0);                          /* record attributes: unused (Kafka writes 0) */
    sp_write_varlong(w, ts_delta);
    sp_write_varint(w, off_delta);
    sp_write_varint(w, klen);
    if (klen > 0)
        sp_write_raw(w, key, (size_t)klen);
    sp_write_varint(w, vlen);
    if (vlen > 0)
        sp_write_raw(w, val, (size_t)vlen);
    sp_write_varint(w, nheaders);
    if (headers_len)
        sp_write_raw(w, headers, headers_len);
}

void sp_batch_builder_init(sp_batch_builder_t *b, int64_t base_offset, int64_t timestamp)
{
    memset(b, 0, sizeof(*b));
    b->base_offset = base_offset;
    b->base_timestamp = timestamp;
    b->max_timestamp = timestamp;
    b->producer_id = -1;
    b->producer_epoch = -1;
    b->base_sequence = -1;
}

void sp_batch_builder_set_producer(sp_batch_builder_t *b, int64_t producer_id,
                                   int16_t producer_epoch, int32_t base_sequence)
{
    b->producer_id = producer_id;
    b->producer_epoch = producer_epoch;
    b->base_sequence = base_sequence;
}

void sp_batch_builder_set_flags(sp_batch_builder_t *b, int16_t attrs)
{
    b->attributes = (int16_t)(b->attributes |
                              (attrs & (SP_BATCH_ATTR_TRANSACTIONAL | SP_BATCH_ATTR_CONTROL)));
}

static int builder_fail(sp_batch_builder_t *b)
{
    b->err = true;
    return -1;
}

int sp_batch_builder_add(sp_batch_builder_t *b, const void *key, int32_t klen,
                         const void *val, int32_t vlen, int64_t timestamp)
{
    if (b->err)
        return -1;
    if (klen < -1 || vlen < -1 || (klen > 0 && !key) || (vlen > 0 && !val) ||
        b->count == INT32_MAX)
        return builder_fail(b);

    int64_t ts_delta = (int64_t)((uint64_t)timestamp - (uint64_t)b->base_timestamp);
    int32_t off_delta = b->count;
    size_t body = record_body_size(ts_delta, off_delta, klen, vlen, 0, 0);
    if (body > INT32_MAX)
        return builder_fail(b);
    size_t total = sp_varint_size((int32_t)body) + body;
    size_t used = b->buf ? b->len : SP_BATCH_HEADER_SIZE;
    /* keeps batchLength <= INT32_MAX - 12, what sp_batch_next accepts */
    if (total > (size_t)INT32_MAX - used)
        return builder_fail(b);
    if (used + total > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < used + total)
            ncap *= 2;
        uint8_t *nb = realloc(b->buf, ncap);
        if (!nb)
            return builder_fail(b);
        b->buf = nb;
        b->cap = ncap;
    }
    b->len = used;

    sp_writer_t w = sp_writer(b->buf + b->len, total);
    write_record(&w, body, ts_delta, off_delta, key, klen, val, vlen, 0, NULL, 0);
    if (w.err || sp_writer_len(&w) != total)    /* our size arithmetic */
        return builder_fail(b);
    b->len += total;
    if (b->count == 0 || timestamp > b->max_timestamp)
        b->max_timestamp = timestamp;
    b->count++;
    return 0;
}

uint8_t *sp_batch_builder_finish(sp_batch_builder_t *b, size_t *len)
{
    if (b->err || b->count == 0 || !b->buf)
        return NULL;
    sp_writer_t w = sp_writer(b->buf, SP_BATCH_HEADER_SIZE);
    sp_write_i64(&w, b->base_offset);
    sp_write_i32(&w, (int32_t)(b->len - SP_BATCH_LOG_OVERHEAD));
    sp_write_i32(&w, -1);                       /* partitionLeaderEpoch: set by the log */
    sp_write_i8(&w, SP_BATCH_MAGIC);
    sp_write_i32(&w, 0);                        /* crc, below */
    sp_write_i16(&w, b->attributes);
    sp_write_i32(&w, b->count - 1);
    sp_write_i64(&w, b->base_timestamp);
    sp_write_i64(&w, b->max_timestamp);
    sp_write_i64(&w, b->producer_id);
    sp_write_i16(&w, b->producer_epoch);
    sp_write_i32(&w, b->base_sequence);
    sp_write_i32(&w, b->count);
    sp_batch_set_crc(b->buf, b->len);

    uint8_t *out = b->buf;
    *len = b->len;
    b->buf = NULL;
    b->len = b->cap = 0;
    b->count = 0;
    b->err = true;   /* init again before reuse */
    return out;
}

void sp_batch_builder_free(sp_batch_builder_t *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
}

/* ---- recompression ----------------------------------------------------------- */

/* Compressed output: p[0..room) is left for the caller (the batch header),
 * the codec writes from p + room; len counts only the codec's bytes. */
typedef struct cbuf {
    uint8_t *p;
    size_t room, len;
} cbuf_t;

static int cbuf_alloc(cbuf_t *c, size_t room, size_t bound)
{
    if (bound > SIZE_MAX - room)
        return SP_BATCH_E_TOO_BIG;
    c->p = malloc(room + bound);
    c->room = room;
    c->len = 0;
    return c->p ? 0 : SP_BATCH_E_NOMEM;
}

/* One gzip member (Kafka's GZIPOutputStream); level -1 = zlib's default. */
static int zip(const uint8_t *src, size_t n, int level, cbuf_t *c)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (n > UINT_MAX)
        return SP_BATCH_E_TOO_BIG;
    /* 15 + 16: 32 KiB window, gzip wrapper */
    if (deflateInit2(&zs, level < 0 ? Z_DEFAULT_COMPRESSION : level, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return SP_BATCH_E_NOMEM;
    uLong bound = deflateBound(&zs, (uLong)n);
    int rc = bound > UINT_MAX ? SP_BATCH_E_TOO_BIG : cbuf_alloc(c, c->room, bound);
    if (rc == 0) {
        zs.next_in = (Bytef *)src;
        zs.avail_in = (uInt)n;
        zs.next_out = c->p + c->room;
        zs.avail_out = (uInt)bound;
        rc = deflate(&zs, Z_FINISH) == Z_STREAM_END ? 0 : SP_BATCH_E_NOMEM;
        c->len = bound - zs.avail_out;
    }
    deflateEnd(&zs);
    return rc;
}

/* The xerial framing snappy-java's SnappyOutputStream writes (see unsnappy):
 * header, then int32 length + raw snappy block per 32 KiB of input. */
#define XERIAL_BLOCK 32768
static int snap(const uint8_t *src, size_t n, cbuf_t *c)
{
    static const uint8_t header[16] = { 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1 };
    size_t blocks = n / XERIAL_BLOCK + 1;
    size_t per = 4 + snappy_max_compressed_length(XERIAL_BLOCK);
    if (blocks > (SIZE_MAX - sizeof(header)) / per)
        return SP_BATCH_E_TOO_BIG;
    int rc = cbuf_alloc(c, c->room, sizeof(header) + blocks * per);
    if (rc)
        return rc;
    uint8_t *o = c->p + c->room;
    memcpy(o, header, sizeof(header));
    size_t at = sizeof(header);
    for (size_t off = 0; off < n; off += XERIAL_BLOCK) {
        size_t in = n - off < XERIAL_BLOCK ? n - off : XERIAL_BLOCK;
        size_t clen = snappy_max_compressed_length(in);
        if (snappy_compress((const char *)src + off, in, (char *)o + at + 4, &clen) != SNAPPY_OK)
            return SP_BATCH_E_NOMEM;
        sp_put_be32(o + at, (uint32_t)clen);
        at += 4 + clen;
    }
    c->len = at;
    return 0;
}

/* An LZ4 frame as Kafka's KafkaLZ4BlockOutputStream writes it: 64 KiB
 * independent blocks (its reader decodes each block on its own). */
static int lz4(const uint8_t *src, size_t n, int level, cbuf_t *c)
{
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof(prefs));
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    prefs.compressionLevel = level;
    size_t bound = LZ4F_compressFrameBound(n, &prefs);
    int rc = cbuf_alloc(c, c->room, bound);
    if (rc)
        return rc;
    size_t r = LZ4F_compressFrame(c->p + c->room, bound, src, n, &prefs);
    if (LZ4F_isError(r))
        return SP_BATCH_E_NOMEM;
    c->len = r;
    return 0;
}

/* One zstd frame (it carries the content size). */
static int zstd(const uint8_t *src, size_t n, int level, cbuf_t *c)
{
    size_t bound = ZSTD_compressBound(n);
    if (ZSTD_isError(bound))
        return SP_BATCH_E_TOO_BIG;
    int rc = cbuf_alloc(c, c->room, bound);
    if (rc)
        return rc;
    size_t r = ZSTD_compress(c->p + c->room, bound, src, n, level);
    if (ZSTD_isError(r))
        return SP_BATCH_E_NOMEM;
    c->len = r;
    return 0;
}

/* The records section rec[0..n) compressed by codec into c (after c->room). */
static int compress_into(int codec, int level, const uint8_t *rec, size_t n, cbuf_t *c)
{
    int rc;
    switch (codec) {
    case SP_COMPRESSION_NONE:
        if ((rc = cbuf_alloc(c, c->room, n)) == 0) {
            memcpy(c->p + c->room, rec, n);
            c->len = n;
        }
        return rc;
    case SP_COMPRESSION_GZIP: return zip(rec, n, level, c);
    case SP_COMPRESSION_SNAPPY: return snap(rec, n, c);
    case SP_COMPRESSION_LZ4: return lz4(rec, n, level, c);
    case SP_COMPRESSION_ZSTD: return zstd(rec, n, level, c);
    default: return SP_BATCH_E_CODEC;
    }
}

int sp_batch_recompress(const uint8_t *src, size_t len, int codec, int level,
                        size_t max_decompressed, uint8_t **out, size_t *out_len)
{
    sp_record_iter_t it;
    cbuf_t c = { NULL, SP_BATCH_HEADER_SIZE, 0 };
    int rc = sp_record_iter_init(&it, src, len, max_decompressed);
    if (rc == 0) {
        /* before the first next(): the whole records section */
        rc = compress_into(codec, level, it.r.pos, it.records_size, &c);
    }
    if (rc == 0 && c.len > (size_t)INT32_MAX - SP_BATCH_HEADER_SIZE)
        rc = SP_BATCH_E_TOO_BIG;
    if (rc) {
        sp_record_iter_free(&it);
        free(c.p);
        return rc;
    }
    size_t total = SP_BATCH_HEADER_SIZE + c.len;
    memcpy(c.p, src, SP_BATCH_HEADER_SIZE);
    sp_put_be32(c.p + OFF_BATCH_LENGTH, (uint32_t)(total - SP_BATCH_LOG_OVERHEAD));
    uint16_t attrs = (uint16_t)it.hdr.attributes;
    attrs &= (uint16_t)~(SP_BATCH_ATTR_COMPRESSION_MASK | SP_BATCH_ATTR_DELETE_HORIZON);
    put_be16(c.p + OFF_ATTRIBUTES, (uint16_t)(attrs | codec));
    sp_batch_set_crc(c.p, total);
    sp_record_iter_free(&it);
    *out = c.p;
    *out_len = total;
    return 0;
}

int sp_batches_each_record(const uint8_t *buf, size_t len,
                           int (*fn)(const sp_record_t *rec, void *ctx), void *ctx, int64_t *next)
{
    size_t off = 0;
    while (off < len) {
        size_t bs;
        sp_batch_hdr_t h;
        sp_record_iter_t it;
        sp_record_t rec;
        int rc;
        if (sp_batch_next(buf + off, len - off, &bs) != 1 || sp_batch_hdr_parse(buf + off, bs, &h) != 0 ||
            h.magic != SP_BATCH_MAGIC ||
            sp_crc32c(0, buf + off + SP_BATCH_CRC_START, bs - SP_BATCH_CRC_START) != h.crc ||
            sp_record_iter_init(&it, buf + off, bs, 0) != 0)
            return -1;
        while ((rc = sp_record_iter_next(&it, &rec)) == 1) {
            int stop = fn(&rec, ctx);
            if (stop) {
                sp_record_iter_free(&it);
                return stop;
            }
        }
        sp_record_iter_free(&it);
        if (rc < 0)
            return -1;
        *next = sp_batch_next_offset(&h);
        off += bs;
    }
    return 0;
}

/* ---- transaction markers ------------------------------------------------------ */

int sp_batch_marker_type(const uint8_t *batch, size_t len, int32_t *coord_epoch)
{
    sp_record_iter_t it;
    sp_record_t rec;
    int rc = -1;
    if (sp_record_iter_init(&it, batch, len, 0) == 0) {
        int n = sp_record_iter_next(&it, &rec);
        if (n == 0) {
            rc = 2;
        } else if (n == 1 && rec.key.len >= 4 && rec.value.len >= 6) {
            sp_reader_t k = sp_reader(rec.key.ptr, (size_t)rec.key.len);
            sp_reader_t v = sp_reader(rec.value.ptr, (size_t)rec.value.len);
            int16_t kver, type, vver;
            int32_t epoch;
            sp_read_i16(&k, &kver);
            sp_read_i16(&k, &type);
            sp_read_i16(&v, &vver);
            sp_read_i32(&v, &epoch);
            if (sp_reader_ok(&k) && sp_reader_ok(&v) && (type == 0 || type == 1)) {
                if (coord_epoch)
                    *coord_epoch = epoch;
                rc = type;
            }
        }
    }
    sp_record_iter_free(&it);
    return rc;
}

/* ---- compaction ------------------------------------------------------------ */

/* Kafka's default levels (Compression.of(type).build()): the cleaner's. */
static int default_level(int codec)
{
    return codec == SP_COMPRESSION_LZ4 ? 9 : codec == SP_COMPRESSION_ZSTD ? 3 : -1;
}

/* Writes the 61-byte header of a rebuilt batch at p. */
static void filter_header(uint8_t *p, size_t total, const sp_batch_hdr_t *h, int16_t attrs,
                          int64_t base_ts, int64_t max_ts, int32_t count)
{
    sp_writer_t w = sp_writer(p, SP_BATCH_HEADER_SIZE);
    sp_write_i64(&w, h->base_offset);
    sp_write_i32(&w, (int32_t)(total - SP_BATCH_LOG_OVERHEAD));
    sp_write_i32(&w, h->partition_leader_epoch);
    sp_write_i8(&w, SP_BATCH_MAGIC);
    sp_write_i32(&w, 0);
    sp_write_i16(&w, attrs);
    sp_write_i32(&w, h->last_offset_delta);     /* kept: the batch covers the same offsets */
    sp_write_i64(&w, base_ts);
    sp_write_i64(&w, max_ts);
    sp_write_i64(&w, h->producer_id);
    sp_write_i16(&w, h->producer_epoch);
    sp_write_i32(&w, h->base_sequence);
    sp_write_i32(&w, count);
    sp_batch_set_crc(p, total);
}

int sp_batch_filter(const uint8_t *src, size_t len, const bool *keep, int32_t nkeep,
                    int64_t delete_horizon, size_t max_decompressed, uint8_t **out, size_t *out_len)
{
    sp_batch_hdr_t h;
    if (sp_batch_hdr_parse(src, len, &h) != 0)
        return SP_BATCH_E_CORRUPT;
    int codec = sp_batch_compression(&h);
    bool lat = sp_batch_is_log_append_time(&h);
    int16_t flags = h.attributes & (SP_BATCH_ATTR_LOG_APPEND_TIME | SP_BATCH_ATTR_TRANSACTIONAL |
                                    SP_BATCH_ATTR_CONTROL);
    int32_t kept = 0;
    for (int32_t i = 0; i < nkeep; i++)
        kept += keep[i];
    if (kept == 0) { /* Kafka's DefaultRecordBatch.writeEmptyHeader */
        uint8_t *p = malloc(SP_BATCH_HEADER_SIZE);
        if (!p)
            return SP_BATCH_E_NOMEM;
        filter_header(p, SP_BATCH_HEADER_SIZE, &h, flags, h.max_timestamp, h.max_timestamp, 0);
        *out = p;
        *out_len = SP_BATCH_HEADER_SIZE;
        return 0;
    }
    sp_record_iter_t it;
    int rc = sp_record_iter_init(&it, src, len, max_decompressed);
    uint8_t *recs = NULL;
    size_t cap = it.records_size + 64, n = 0;
    int64_t base_ts = delete_horizon, max_ts = -1;
    int32_t count = 0, i = 0;
    if (rc == 0 && !(recs = malloc(cap)))
        rc = SP_BATCH_E_NOMEM;
    sp_record_t r;
    while (rc == 0 && (rc = sp_record_iter_next(&it, &r)) == 1) {
        rc = 0;
        if (i >= nkeep || !keep[i++])
            continue;
        if (count == 0 && delete_horizon < 0)
            base_ts = r.timestamp; /* Kafka's builder: the first record's */
        int64_t ts_delta = (int64_t)((uint64_t)r.timestamp - (uint64_t)base_ts);
        size_t body = record_body_size(ts_delta, r.offset_delta, r.key.len, r.value.len, r.header_count,
                                       r.headers_len);
        if (body > INT32_MAX) {
            rc = SP_BATCH_E_TOO_BIG;
            break;
        }
        size_t total = sp_varint_size((int32_t)body) + body;
        if (n + total > cap) {
            size_t ncap = (n + total) * 2;
            uint8_t *nr = realloc(recs, ncap);
            if (!nr) {
                rc = SP_BATCH_E_NOMEM;
                break;
            }
            recs = nr;
            cap = ncap;
        }
        sp_writer_t w = sp_writer(recs + n, total);
        write_record(&w, body, ts_delta, r.offset_delta, r.key.ptr, r.key.len, r.value.ptr, r.value.len,
                     r.header_count, r.headers, r.headers_len);
        if (w.err || sp_writer_len(&w) != total) {
            rc = SP_BATCH_E_CORRUPT;
            break;
        }
        n += total;
        if (count == 0 || r.timestamp > max_ts)
            max_ts = r.timestamp;
        count++;
    }
    sp_record_iter_free(&it);
    cbuf_t c = { NULL, SP_BATCH_HEADER_SIZE, 0 };
    if (rc == 0)
        rc = compress_into(codec, default_level(codec), recs, n, &c);
    free(recs);
    if (rc == 0 && c.len > (size_t)INT32_MAX - SP_BATCH_HEADER_SIZE)
        rc = SP_BATCH_E_TOO_BIG;
    if (rc) {
        free(c.p);
        return rc;
    }
    if (lat)
        max_ts = h.max_timestamp; /* the log append time stays */
    int16_t attrs = (int16_t)(flags | codec | (delete_horizon >= 0 ? SP_BATCH_ATTR_DELETE_HORIZON : 0));
    size_t total = SP_BATCH_HEADER_SIZE + c.len;
    filter_header(c.p, total, &h, attrs, base_ts, max_ts, count);
    *out = c.p;
    *out_len = total;
    return 0;
}
