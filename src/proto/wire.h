/*
 * wire.h - Kafka wire primitives: bounds-checked reader, writer, arena.
 *
 * Owns nothing global.  Used by every thread; a reader, writer or arena
 * belongs to one request on one thread.
 *
 * Invariants:
 *  (1) a reader never reads outside [pos, end); the first failed read sets
 *      'err', after which every read fails and yields zero values;
 *  (2) a writer never writes past 'end'; overflow sets 'err';
 *  (3) strings and byte ranges decoded by a reader point into the reader's
 *      buffer (no copy): they live as long as that buffer.
 *
 * Wire encodings (big-endian, as Kafka):
 *   classic string   int16 length, -1 = null, then bytes
 *   classic bytes    int32 length, -1 = null, then bytes
 *   classic array    int32 count,  -1 = null, then items
 *   compact string / bytes / array (flexible versions)
 *                    unsigned varint (length + 1), 0 = null
 *   tagged fields    uvarint count, then per field: uvarint tag,
 *                    uvarint size, size bytes
 */
#ifndef SP_PROTO_WIRE_H
#define SP_PROTO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A string or byte range; len < 0 means null.  Not NUL-terminated. */
typedef struct sp_str {
    const char *ptr;
    int32_t len;
} sp_str_t;

typedef struct sp_bytes {
    const uint8_t *ptr;
    int32_t len;
} sp_bytes_t;

typedef struct sp_uuid {
    uint8_t b[16];
} sp_uuid_t;

#define sp_str_lit(s) ((sp_str_t){ (s), (int32_t)(sizeof(s) - 1) })
#define SP_STR_NULL ((sp_str_t){ NULL, -1 })

static inline sp_str_t sp_str_c(const char *s)
{
    return (sp_str_t){ s, s ? (int32_t)strlen(s) : -1 };
}

static inline bool sp_str_eq_lit(sp_str_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len >= 0 && (size_t)s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static inline bool sp_str_eq(sp_str_t a, sp_str_t b)
{
    if (a.len != b.len)
        return false;
    return a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0;
}

static inline bool sp_uuid_is_zero(sp_uuid_t u)
{
    static const sp_uuid_t z;
    return memcmp(u.b, z.b, 16) == 0;
}

/* ---- arena: per-request bump allocator ------------------------------- */

typedef struct sp_arena_chunk sp_arena_chunk_t;

typedef struct sp_arena {
    sp_arena_chunk_t *head;
    size_t used_total;   /* bytes handed out */
    size_t limit;        /* 0 = no limit; allocation past it fails */
    bool failed;         /* an allocation failed: a response built from this
                          * arena may lack parts (net/conn.c closes instead) */
} sp_arena_t;

void sp_arena_init(sp_arena_t *a, size_t limit);
/* Returns 8-byte aligned, uninitialised memory, or NULL (limit or OOM;
 * a->failed is set then). */
void *sp_arena_alloc(sp_arena_t *a, size_t n);
void *sp_arena_zalloc(sp_arena_t *a, size_t n);
/* Copy of s (NUL-terminated as a convenience); NULL on failure. */
char *sp_arena_strdup(sp_arena_t *a, const char *s, size_t n);
void sp_arena_free(sp_arena_t *a);

/* ---- reader ----------------------------------------------------------- */

typedef struct sp_reader {
    const uint8_t *pos;
    const uint8_t *end;
    bool err;
} sp_reader_t;

static inline sp_reader_t sp_reader(const void *buf, size_t len)
{
    sp_reader_t r = { (const uint8_t *)buf, (const uint8_t *)buf + len, false };
    return r;
}

static inline bool sp_reader_ok(const sp_reader_t *r) { return !r->err; }
static inline size_t sp_reader_left(const sp_reader_t *r) { return r->err ? 0 : (size_t)(r->end - r->pos); }

/* Marks the reader failed; returns -1 for use in 'return'. */
static inline int sp_reader_fail(sp_reader_t *r)
{
    r->err = true;
    r->pos = r->end;
    return -1;
}

/* A sub-reader over the next n bytes of r; r advances past them. */
sp_reader_t sp_reader_take(sp_reader_t *r, uint32_t n);

void sp_read_bool(sp_reader_t *r, bool *out);
void sp_read_i8(sp_reader_t *r, int8_t *out);
void sp_read_i16(sp_reader_t *r, int16_t *out);
void sp_read_u16(sp_reader_t *r, uint16_t *out);
void sp_read_i32(sp_reader_t *r, int32_t *out);
void sp_read_i64(sp_reader_t *r, int64_t *out);
void sp_read_f64(sp_reader_t *r, double *out);
void sp_read_uuid(sp_reader_t *r, sp_uuid_t *out);
uint32_t sp_read_uvarint(sp_reader_t *r);
int32_t sp_read_varint(sp_reader_t *r);
int64_t sp_read_varlong(sp_reader_t *r);
/* Compact (flexible) or classic string; null is an error unless nullable. */
void sp_read_str(sp_reader_t *r, sp_str_t *out, int compact, int nullable);
void sp_read_bytes(sp_reader_t *r, sp_bytes_t *out, int compact, int nullable);
/* Array count, -1 for null.  Fails if count * min_item > bytes left. */
int32_t sp_read_array_len(sp_reader_t *r, int compact, int nullable, size_t min_item);
/* Reads n raw bytes (pointer into the buffer) or NULL on failure. */
const uint8_t *sp_read_raw(sp_reader_t *r, size_t n);

/* ---- writer ----------------------------------------------------------- */

/*
 * A writer over a fixed buffer.  'fill' supports single-copy responses: a
 * bytes field written with ptr == NULL and len > 0 reserves len bytes and
 * asks fill(fill_ctx, dst, len) to produce them in place (Fetch reads
 * record batches from segment files straight into the response this way).
 * Such fields are filled in encoding order.  fill returns 0 or -1.
 */
typedef struct sp_writer {
    uint8_t *buf;
    uint8_t *pos;
    uint8_t *end;
    bool err;
    int (*fill)(void *ctx, uint8_t *dst, size_t len);
    void *fill_ctx;
} sp_writer_t;

static inline sp_writer_t sp_writer(void *buf, size_t cap)
{
    sp_writer_t w = { (uint8_t *)buf, (uint8_t *)buf, (uint8_t *)buf + cap, false, NULL, NULL };
    return w;
}

static inline size_t sp_writer_len(const sp_writer_t *w) { return (size_t)(w->pos - w->buf); }

void sp_write_raw(sp_writer_t *w, const void *p, size_t n);
void sp_write_bool(sp_writer_t *w, bool v);
void sp_write_i8(sp_writer_t *w, int8_t v);
void sp_write_i16(sp_writer_t *w, int16_t v);
void sp_write_u16(sp_writer_t *w, uint16_t v);
void sp_write_i32(sp_writer_t *w, int32_t v);
void sp_write_i64(sp_writer_t *w, int64_t v);
void sp_write_f64(sp_writer_t *w, double v);
void sp_write_uuid(sp_writer_t *w, sp_uuid_t v);
void sp_write_uvarint(sp_writer_t *w, uint32_t v);
void sp_write_varint(sp_writer_t *w, int32_t v);
void sp_write_varlong(sp_writer_t *w, int64_t v);
void sp_write_str(sp_writer_t *w, sp_str_t s, int compact);
void sp_write_bytes(sp_writer_t *w, sp_bytes_t b, int compact);
void sp_write_array_len(sp_writer_t *w, int32_t n, int compact);
/* Reserve 4 bytes now, patch them later (lengths, CRCs). */
size_t sp_write_reserve_i32(sp_writer_t *w);
void sp_write_patch_i32(sp_writer_t *w, size_t at, int32_t v);

size_t sp_uvarint_size(uint32_t v);
size_t sp_varint_size(int32_t v);
size_t sp_varlong_size(int64_t v);
size_t sp_str_size(sp_str_t s, int compact);
size_t sp_bytes_size(sp_bytes_t b, int compact);
size_t sp_array_len_size(int32_t n, int compact);

/* Big-endian helpers for fixed offsets in our own buffers. */
static inline uint16_t sp_be16(const uint8_t *p)
{
    return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}

static inline uint32_t sp_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void sp_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
