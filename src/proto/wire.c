/* wire.c - Kafka wire primitives (see wire.h for invariants). */
#include "proto/wire.h"

#include <stdint.h>
#include <stdlib.h>

/* ---- arena ------------------------------------------------------------ */

struct sp_arena_chunk {
    sp_arena_chunk_t *next;
    size_t cap;
    size_t used;
    /* data follows, 16-aligned */
    _Alignas(16) unsigned char data[];
};

#define SP_ARENA_CHUNK 16384

void sp_arena_init(sp_arena_t *a, size_t limit)
{
    a->head = NULL;
    a->used_total = 0;
    a->limit = limit;
    a->failed = false;
}

void *sp_arena_alloc(sp_arena_t *a, size_t n)
{
    sp_arena_chunk_t *c = a->head;
    if (n > SIZE_MAX - 15) {
        a->failed = true;
        return NULL;
    }
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (a->limit && (n > a->limit || a->used_total > a->limit - n)) {
        a->failed = true;
        return NULL;
    }
    if (!c || c->cap - c->used < n) {
        size_t cap = n > SP_ARENA_CHUNK / 2 ? n : SP_ARENA_CHUNK;
        sp_arena_chunk_t *nc = malloc(sizeof(*nc) + cap);
        if (!nc) {
            a->failed = true;
            return NULL;
        }
        nc->cap = cap;
        nc->used = 0;
        if (c && n > SP_ARENA_CHUNK / 2) {
            /* big block: keep the current chunk at the head for small ones */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->used_total += n;
    return p;
}

void *sp_arena_zalloc(sp_arena_t *a, size_t n)
{
    void *p = sp_arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *sp_arena_strdup(sp_arena_t *a, const char *s, size_t n)
{
    char *p = sp_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void sp_arena_free(sp_arena_t *a)
{
    sp_arena_chunk_t *c = a->head;
    while (c) {
        sp_arena_chunk_t *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->used_total = 0;
}

/* ---- reader ----------------------------------------------------------- */

static inline const uint8_t *need(sp_reader_t *r, size_t n)
{
    if (r->err || (size_t)(r->end - r->pos) < n) {
        sp_reader_fail(r);
        return NULL;
    }
    const uint8_t *p = r->pos;
    r->pos += n;
    return p;
}

sp_reader_t sp_reader_take(sp_reader_t *r, uint32_t n)
{
    const uint8_t *p = need(r, n);
    sp_reader_t sub = { p, p ? p + n : NULL, p == NULL };
    return sub;
}

const uint8_t *sp_read_raw(sp_reader_t *r, size_t n)
{
    return need(r, n);
}

void sp_read_bool(sp_reader_t *r, bool *out)
{
    const uint8_t *p = need(r, 1);
    *out = p ? p[0] != 0 : false;
}

void sp_read_i8(sp_reader_t *r, int8_t *out)
{
    const uint8_t *p = need(r, 1);
    *out = p ? (int8_t)p[0] : 0;
}

void sp_read_i16(sp_reader_t *r, int16_t *out)
{
    const uint8_t *p = need(r, 2);
    *out = p ? (int16_t)(((uint16_t)p[0] << 8) | p[1]) : 0;
}

void sp_read_u16(sp_reader_t *r, uint16_t *out)
{
    const uint8_t *p = need(r, 2);
    *out = p ? (uint16_t)(((uint16_t)p[0] << 8) | p[1]) : 0;
}

void sp_read_i32(sp_reader_t *r, int32_t *out)
{
    const uint8_t *p = need(r, 4);
    *out = p ? (int32_t)sp_be32(p) : 0;
}

void sp_read_i64(sp_reader_t *r, int64_t *out)
{
    const uint8_t *p = need(r, 8);
    *out = p ? (int64_t)(((uint64_t)sp_be32(p) << 32) | sp_be32(p + 4)) : 0;
}

void sp_read_f64(sp_reader_t *r, double *out)
{
    int64_t bits;
    sp_read_i64(r, &bits);
    memcpy(out, &bits, sizeof(*out));
}

void sp_read_uuid(sp_reader_t *r, sp_uuid_t *out)
{
    const uint8_t *p = need(r, 16);
    if (p)
        memcpy(out->b, p, 16);
    else
        memset(out->b, 0, 16);
}

static uint64_t read_uvarlong(sp_reader_t *r, int max_bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        const uint8_t *p = need(r, 1);
        if (!p)
            return 0;
        v |= (uint64_t)(p[0] & 0x7f) << (7 * i);
        if (!(p[0] & 0x80))
            return v;
    }
    sp_reader_fail(r);
    return 0;
}

uint32_t sp_read_uvarint(sp_reader_t *r)
{
    uint64_t v = read_uvarlong(r, 5);
    if (v > UINT32_MAX) {
        sp_reader_fail(r);
        return 0;
    }
    return (uint32_t)v;
}

int32_t sp_read_varint(sp_reader_t *r)
{
    uint32_t u = sp_read_uvarint(r);
    return (int32_t)((u >> 1) ^ -(u & 1));
}

int64_t sp_read_varlong(sp_reader_t *r)
{
    uint64_t u = read_uvarlong(r, 10);
    return (int64_t)((u >> 1) ^ -(u & 1));
}

/* Length of a string/bytes field, -1 for null, or -2 on error. */
static int64_t read_len(sp_reader_t *r, int compact, int wide, int nullable)
{
    int64_t len;
    if (compact) {
        uint32_t u = sp_read_uvarint(r);
        len = (int64_t)u - 1;
    } else if (wide) {
        int32_t v;
        sp_read_i32(r, &v);
        len = v;
    } else {
        int16_t v;
        sp_read_i16(r, &v);
        len = v;
    }
    if (!sp_reader_ok(r))
        return -2;
    if (len < 0) {
        if (len == -1 && nullable)
            return -1;
        sp_reader_fail(r);
        return -2;
    }
    if ((uint64_t)len > sp_reader_left(r)) {
        sp_reader_fail(r);
        return -2;
    }
    return len;
}

void sp_read_str(sp_reader_t *r, sp_str_t *out, int compact, int nullable)
{
    int64_t len = read_len(r, compact, 0, nullable);
    out->ptr = NULL;
    out->len = len == -1 ? -1 : 0;
    if (len >= 0) {
        out->ptr = (const char *)need(r, (size_t)len);
        out->len = (int32_t)len;
    }
}

void sp_read_bytes(sp_reader_t *r, sp_bytes_t *out, int compact, int nullable)
{
    int64_t len = read_len(r, compact, 1, nullable);
    out->ptr = NULL;
    out->len = len == -1 ? -1 : 0;
    if (len >= 0) {
        out->ptr = need(r, (size_t)len);
        out->len = (int32_t)len;
    }
}

int32_t sp_read_array_len(sp_reader_t *r, int compact, int nullable, size_t min_item)
{
    int64_t n;
    if (compact) {
        n = (int64_t)sp_read_uvarint(r) - 1;
    } else {
        int32_t v;
        sp_read_i32(r, &v);
        n = v;
    }
    if (!sp_reader_ok(r))
        return 0;
    if (n < 0) {
        if (n == -1 && nullable)
            return -1;
        sp_reader_fail(r);
        return 0;
    }
    if (min_item == 0)
        min_item = 1;
    if ((uint64_t)n > sp_reader_left(r) / min_item) {
        sp_reader_fail(r);
        return 0;
    }
    return (int32_t)n;
}

/* ---- writer ----------------------------------------------------------- */

static inline uint8_t *room(sp_writer_t *w, size_t n)
{
    if (w->err || (size_t)(w->end - w->pos) < n) {
        w->err = true;
        return NULL;
    }
    uint8_t *p = w->pos;
    w->pos += n;
    return p;
}

void sp_write_raw(sp_writer_t *w, const void *src, size_t n)
{
    uint8_t *p = room(w, n);
    if (p && n)
        memcpy(p, src, n);
}

void sp_write_bool(sp_writer_t *w, bool v) { sp_write_i8(w, v ? 1 : 0); }

void sp_write_i8(sp_writer_t *w, int8_t v)
{
    uint8_t *p = room(w, 1);
    if (p)
        p[0] = (uint8_t)v;
}

void sp_write_i16(sp_writer_t *w, int16_t v) { sp_write_u16(w, (uint16_t)v); }

void sp_write_u16(sp_writer_t *w, uint16_t v)
{
    uint8_t *p = room(w, 2);
    if (p) {
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
    }
}

void sp_write_i32(sp_writer_t *w, int32_t v)
{
    uint8_t *p = room(w, 4);
    if (p)
        sp_put_be32(p, (uint32_t)v);
}

void sp_write_i64(sp_writer_t *w, int64_t v)
{
    uint8_t *p = room(w, 8);
    if (p) {
        sp_put_be32(p, (uint32_t)((uint64_t)v >> 32));
        sp_put_be32(p + 4, (uint32_t)v);
    }
}

void sp_write_f64(sp_writer_t *w, double v)
{
    int64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    sp_write_i64(w, bits);
}

void sp_write_uuid(sp_writer_t *w, sp_uuid_t v) { sp_write_raw(w, v.b, 16); }

static void write_uvarlong(sp_writer_t *w, uint64_t v)
{
    while (v >= 0x80) {
        sp_write_i8(w, (int8_t)((v & 0x7f) | 0x80));
        v >>= 7;
    }
    sp_write_i8(w, (int8_t)v);
}

void sp_write_uvarint(sp_writer_t *w, uint32_t v) { write_uvarlong(w, v); }

void sp_write_varint(sp_writer_t *w, int32_t v)
{
    write_uvarlong(w, ((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

void sp_write_varlong(sp_writer_t *w, int64_t v)
{
    write_uvarlong(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void sp_write_str(sp_writer_t *w, sp_str_t s, int compact)
{
    if (compact)
        sp_write_uvarint(w, s.len < 0 ? 0 : (uint32_t)s.len + 1);
    else
        sp_write_i16(w, (int16_t)(s.len < 0 ? -1 : s.len));
    if (s.len > 0)
        sp_write_raw(w, s.ptr, (size_t)s.len);
}

void sp_write_bytes(sp_writer_t *w, sp_bytes_t b, int compact)
{
    if (compact)
        sp_write_uvarint(w, b.len < 0 ? 0 : (uint32_t)b.len + 1);
    else
        sp_write_i32(w, b.len < 0 ? -1 : b.len);
    if (b.len > 0 && !b.ptr) {
        uint8_t *p = room(w, (size_t)b.len);
        if (p && (!w->fill || w->fill(w->fill_ctx, p, (size_t)b.len) != 0))
            w->err = true;
        return;
    }
    if (b.len > 0)
        sp_write_raw(w, b.ptr, (size_t)b.len);
}

void sp_write_array_len(sp_writer_t *w, int32_t n, int compact)
{
    if (compact)
        sp_write_uvarint(w, n < 0 ? 0 : (uint32_t)n + 1);
    else
        sp_write_i32(w, n < 0 ? -1 : n);
}

size_t sp_write_reserve_i32(sp_writer_t *w)
{
    size_t at = sp_writer_len(w);
    sp_write_i32(w, 0);
    return at;
}

void sp_write_patch_i32(sp_writer_t *w, size_t at, int32_t v)
{
    if (!w->err && at + 4 <= sp_writer_len(w))
        sp_put_be32(w->buf + at, (uint32_t)v);
}

static size_t uvarlong_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t sp_uvarint_size(uint32_t v) { return uvarlong_size(v); }
size_t sp_varint_size(int32_t v) { return uvarlong_size(((uint32_t)v << 1) ^ (uint32_t)(v >> 31)); }
size_t sp_varlong_size(int64_t v) { return uvarlong_size(((uint64_t)v << 1) ^ (uint64_t)(v >> 63)); }

size_t sp_str_size(sp_str_t s, int compact)
{
    size_t body = s.len > 0 ? (size_t)s.len : 0;
    if (compact)
        return sp_uvarint_size(s.len < 0 ? 0 : (uint32_t)s.len + 1) + body;
    return 2 + body;
}

size_t sp_bytes_size(sp_bytes_t b, int compact)
{
    size_t body = b.len > 0 ? (size_t)b.len : 0;
    if (compact)
        return sp_uvarint_size(b.len < 0 ? 0 : (uint32_t)b.len + 1) + body;
    return 4 + body;
}

size_t sp_array_len_size(int32_t n, int compact)
{
    if (compact)
        return sp_uvarint_size(n < 0 ? 0 : (uint32_t)n + 1);
    return 4;
}
