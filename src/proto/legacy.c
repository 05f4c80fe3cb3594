/* legacy.c - magic 0/1 message sets to and from record batches (legacy.h). */
#include "proto/legacy.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "proto/batch.h"
#include "proto/gen/errors.h"
#include "proto/wire.h"

#define MSG_OVERHEAD 12            /* offset int64 + size int32 */
#define MSG_MIN_SIZE 14            /* crc + magic + attributes + key and value lengths */
#define MSG_ATTR_LOG_APPEND_TIME 0x08

static uint64_t be64(const uint8_t *p) { return (uint64_t)sp_be32(p) << 32 | sp_be32(p + 4); }

static void put_be64(uint8_t *p, uint64_t v)
{
    sp_put_be32(p, (uint32_t)(v >> 32));
    sp_put_be32(p + 4, (uint32_t)v);
}

static uint32_t crc_ieee(const uint8_t *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt chunk = n > 1u << 30 ? 1u << 30 : (uInt)n;
        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}

/* ---- up: a message set into one batch --------------------------------------- */

typedef struct up {
    sp_batch_builder_t b;
    bool started;
    int codec;                      /* of the wrapper, if any */
    int count;
    size_t max_decompressed;
    const char *why;
} up_t;

/* One length-prefixed bytes field at *q (within end): 0, or -1. */
static int take_bytes(const uint8_t **q, const uint8_t *end, const uint8_t **ptr, int32_t *len)
{
    if (end - *q < 4)
        return -1;
    int32_t n = (int32_t)sp_be32(*q);
    *q += 4;
    if (n < -1 || (n > 0 && end - *q < n))
        return -1;
    *ptr = n > 0 ? *q : (const uint8_t *)"";
    *len = n;
    if (n > 0)
        *q += n;
    return 0;
}

static int corrupt(up_t *u, const char *why)
{
    u->why = why;
    return SP_ERR_CORRUPT_MESSAGE;
}

static int parse_set(const uint8_t *p, size_t len, int depth, up_t *u)
{
    size_t off = 0;
    while (off < len) {
        if (len - off < MSG_OVERHEAD)
            return corrupt(u, "a message set ends in the middle of a message header");
        int64_t size = (int32_t)sp_be32(p + off + 8);
        if (size < MSG_MIN_SIZE || (uint64_t)size > len - off - MSG_OVERHEAD)
            return corrupt(u, "a message size that does not fit the message set");
        const uint8_t *m = p + off + MSG_OVERHEAD, *end = m + size;
        if (crc_ieee(m + 4, (size_t)size - 4) != sp_be32(m))
            return corrupt(u, "a message whose CRC does not match");
        int magic = m[4], attr = m[5], codec = attr & SP_BATCH_ATTR_COMPRESSION_MASK;
        if (magic > 1)
            return corrupt(u, "a message of magic 2 in a message set");
        const uint8_t *q = m + 6;
        int64_t ts = -1;
        if (magic == 1) {
            if (end - q < 8)
                return corrupt(u, "a message too short for its timestamp");
            ts = (int64_t)be64(q);
            q += 8;
        }
        const uint8_t *key, *val;
        int32_t klen, vlen;
        if (take_bytes(&q, end, &key, &klen) != 0 || take_bytes(&q, end, &val, &vlen) != 0 || q != end)
            return corrupt(u, "a message whose key and value do not fill it");
        if (codec != SP_COMPRESSION_NONE) {
            if (depth > 0)
                return corrupt(u, "a compressed message inside a compressed message");
            if (codec > SP_COMPRESSION_LZ4) {
                u->why = "an unknown compression codec";
                return SP_ERR_UNSUPPORTED_COMPRESSION_TYPE;
            }
            if (vlen <= 0)
                return corrupt(u, "a compressed message without a value");
            uint8_t *inner;
            size_t ilen;
            if (sp_decompress(codec, val, (size_t)vlen, u->max_decompressed, &inner, &ilen) != 0)
                return corrupt(u, "a compressed message that does not decompress");
            u->codec = codec;
            int rc = parse_set(inner, ilen, depth + 1, u);
            free(inner);
            if (rc)
                return rc;
        } else {
            if (!u->started) {
                sp_batch_builder_init(&u->b, 0, ts);
                u->started = true;
            }
            if (sp_batch_builder_add(&u->b, key, klen, val, vlen, ts) != 0)
                return corrupt(u, "a message that cannot be added to a record batch");
            u->count++;
        }
        off += MSG_OVERHEAD + (size_t)size;
    }
    return 0;
}

int sp_legacy_to_batch(const uint8_t *set, size_t len, size_t max_decompressed, uint8_t **out, size_t *out_len,
                       const char **why)
{
    up_t u;
    memset(&u, 0, sizeof(u));
    u.max_decompressed = max_decompressed;
    *out = NULL;
    *why = NULL;
    int rc = parse_set(set, len, 0, &u);
    if (rc == 0 && u.count == 0) {
        u.why = "an empty message set";
        rc = SP_ERR_INVALID_RECORD;
    }
    size_t blen = 0;
    uint8_t *batch = rc == 0 ? sp_batch_builder_finish(&u.b, &blen) : NULL;
    sp_batch_builder_free(&u.b);
    if (rc == 0 && !batch) {
        u.why = "the messages do not make a record batch";
        rc = SP_ERR_CORRUPT_MESSAGE;
    }
    if (rc) {
        *why = u.why;
        return rc;
    }
    if (u.codec != SP_COMPRESSION_NONE) {
        uint8_t *packed;
        size_t plen;
        int level = u.codec == SP_COMPRESSION_LZ4 ? 9 : -1; /* Kafka's defaults */
        if (sp_batch_recompress(batch, blen, u.codec, level, max_decompressed, &packed, &plen) != 0) {
            free(batch);
            *why = "the messages cannot be compressed again";
            return SP_ERR_CORRUPT_MESSAGE;
        }
        free(batch);
        batch = packed;
        blen = plen;
    }
    *out = batch;
    *out_len = blen;
    return 0;
}

/* ---- down: batches into a message set ---------------------------------------- */

typedef struct obuf {
    uint8_t *p;
    size_t len, cap;
} obuf_t;

static uint8_t *reserve(obuf_t *o, size_t n)
{
    if (o->cap - o->len < n) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap - o->len < n)
            cap *= 2;
        uint8_t *np = realloc(o->p, cap);
        if (!np)
            return NULL;
        o->p = np;
        o->cap = cap;
    }
    return o->p + o->len;
}

static uint8_t *put_bytes(uint8_t *w, sp_bytes_t b)
{
    sp_put_be32(w, (uint32_t)b.len);
    w += 4;
    if (b.len > 0) {
        memcpy(w, b.ptr, (size_t)b.len);
        w += b.len;
    }
    return w;
}

static int add_message(obuf_t *o, const sp_record_t *rec, int magic, bool log_append_time)
{
    size_t klen = rec->key.len > 0 ? (size_t)rec->key.len : 0, vlen = rec->value.len > 0 ? (size_t)rec->value.len : 0;
    size_t size = MSG_MIN_SIZE + (magic == 1 ? 8 : 0) + klen + vlen;
    if (size > INT32_MAX)
        return -1;
    uint8_t *w = reserve(o, MSG_OVERHEAD + size);
    if (!w)
        return -1;
    uint8_t *m = w + MSG_OVERHEAD;
    put_be64(w, (uint64_t)rec->offset);
    sp_put_be32(w + 8, (uint32_t)size);
    m[4] = (uint8_t)magic;
    m[5] = magic == 1 && log_append_time ? MSG_ATTR_LOG_APPEND_TIME : 0;
    uint8_t *q = m + 6;
    if (magic == 1) {
        put_be64(q, (uint64_t)rec->timestamp);
        q += 8;
    }
    q = put_bytes(q, rec->key);
    put_bytes(q, rec->value);
    sp_put_be32(m, crc_ieee(m + 4, size - 4));
    o->len += MSG_OVERHEAD + size;
    return 0;
}

int sp_legacy_from_batches(const uint8_t *batches, size_t len, int magic, uint8_t **out, size_t *out_len)
{
    obuf_t o = { NULL, 0, 0 };
    size_t off = 0;
    *out = NULL;
    *out_len = 0;
    while (off < len) {
        size_t bs;
        if (sp_batch_next(batches + off, len - off, &bs) != 1)
            break; /* a batch cut short by the read's limit */
        sp_batch_hdr_t h;
        if (sp_batch_hdr_parse(batches + off, bs, &h) != 0) {
            free(o.p);
            return -1;
        }
        if (!(h.attributes & SP_BATCH_ATTR_CONTROL)) {
            sp_record_iter_t it;
            sp_record_t rec;
            int rc = sp_record_iter_init(&it, batches + off, bs, 0);
            while (rc == 0 && (rc = sp_record_iter_next(&it, &rec)) == 1)
                rc = add_message(&o, &rec, magic, (h.attributes & SP_BATCH_ATTR_LOG_APPEND_TIME) != 0);
            sp_record_iter_free(&it);
            if (rc != 0) {
                free(o.p);
                return -1;
            }
        }
        off += bs;
    }
    *out = o.p;
    *out_len = o.len;
    return 0;
}
