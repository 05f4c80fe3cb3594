/*
 * batch.h - Kafka record batches, format v2 (magic 2): framing, validation,
 * record iteration with decompression, in-place patching for the log, a
 * builder for the broker's own uncompressed batches, and recompression to a
 * topic's compression.type.
 *
 * Owns nothing global.  Every function is pure and reentrant: any thread,
 * no locks, no hidden state.  An iterator or builder belongs to one thread
 * at a time.  Batches are untrusted bytes (wire or disk); every length is
 * checked before it is used and nothing here aborts on bad input.
 *
 * Batch layout (big-endian; the CRC covers bytes 21 .. end):
 *
 *   off size field                 notes
 *  +---+----+---------------------+---------------------------------------+
 *  |  0|  8 | baseOffset          | set by the log (not under the CRC)    |
 *  |  8|  4 | batchLength         | bytes after this field: total - 12    |
 *  | 12|  4 | partitionLeaderEpoch| set by the log (not under the CRC)    |
 *  | 16|  1 | magic               | 2                                     |
 *  | 17|  4 | crc                 | CRC-32C of bytes [21, end)            |
 *  | 21|  2 | attributes          | see SP_BATCH_ATTR_*                   |
 *  | 23|  4 | lastOffsetDelta     | recordCount - 1 (before compaction)   |
 *  | 27|  8 | baseTimestamp       | delete horizon if ATTR_DELETE_HORIZON |
 *  | 35|  8 | maxTimestamp        | LogAppendTime when ATTR_LOG_APPEND_.. |
 *  | 43|  8 | producerId          | -1 = none                             |
 *  | 51|  2 | producerEpoch       | -1 = none                             |
 *  | 53|  4 | baseSequence        | -1 = none                             |
 *  | 57|  4 | recordCount         |                                       |
 *  | 61|    | records             | compressed as ONE block if codec != 0 |
 *  +---+----+---------------------+---------------------------------------+
 *
 * Record (all varints zigzag-encoded, as Kafka's ByteUtils.writeVarint):
 *   length varint              bytes after this field
 *   attributes int8            unused, passed through
 *   timestampDelta varlong     timestamp = baseTimestamp + delta
 *   offsetDelta varint         offset = baseOffset + delta
 *   keyLength varint, key      -1 = null
 *   valueLength varint, value  -1 = null
 *   headerCount varint
 *     headerKeyLength varint, headerKey       never null
 *     headerValueLength varint, headerValue   -1 = null
 *
 * Invariants of a batch accepted by sp_batch_validate() (strict mode):
 *  (1) len == 12 + batchLength, magic == 2, CRC-32C matches;
 *  (2) compression is one of SP_COMPRESSION_*;
 *  (3) recordCount >= 1 and lastOffsetDelta == recordCount - 1; or
 *      recordCount == 0 in a control batch, with lastOffsetDelta >= 0 (an
 *      emptied batch keeps the offsets it covered, so it never claims an
 *      empty offset range);
 *  (4) the (decompressed) records section holds exactly recordCount
 *      records, each exactly as long as its length field, record i has
 *      offsetDelta i, nothing trails the last record;
 *  (5) the decompressed records section is at most max_decompressed bytes.
 * With allow_compacted (log recovery of compacted topics), (3) and (4)
 * relax to: 0 <= recordCount <= lastOffsetDelta + 1 and offset deltas
 * strictly increasing within [0, lastOffsetDelta].
 * With from_client (a Produce; Kafka's AppendOrigin.CLIENT), also
 *  (6) baseOffset == 0, recordCount >= 1, lastOffsetDelta == recordCount - 1,
 *      not a control batch (only the broker's own writers append those:
 *      transaction markers), and producerId >= 0 implies baseSequence >= 0.
 * Per record (Kafka's LogValidator.validateRecord; each refused record is a
 * "record error", all are reported, the batch is refused if there is one):
 *  (7) require_keys: a key;
 *  (8) check_timestamps: a CreateTime timestamp (not -1) within
 *      [now - ts_before_max_ms, now + ts_after_max_ms]; a LogAppendTime
 *      topic refuses batches that claim LogAppendTime themselves.
 */
#ifndef SP_PROTO_BATCH_H
#define SP_PROTO_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/crc32c.h"   /* sp_crc32c, for callers checking SP_BATCH_CRC_START.. */
#include "proto/wire.h"

#define SP_BATCH_HEADER_SIZE 61      /* fixed header, up to the records */
#define SP_BATCH_LOG_OVERHEAD 12     /* baseOffset + batchLength */
#define SP_BATCH_MIN_LENGTH 49       /* smallest batchLength: 61 - 12 */
#define SP_BATCH_MAGIC 2
#define SP_BATCH_LENGTH_OFFSET 8     /* batchLength (int32) */
#define SP_BATCH_MAGIC_OFFSET 16     /* magic (int8) */
#define SP_BATCH_CRC_OFFSET 17       /* where the CRC is stored */
#define SP_BATCH_CRC_START 21        /* first byte the CRC covers */
/* Default cap on a decompressed records section (decompression bombs). */
#define SP_BATCH_MAX_DECOMPRESSED_DEFAULT ((size_t)256 << 20)

/* attributes */
#define SP_BATCH_ATTR_COMPRESSION_MASK 0x07
#define SP_BATCH_ATTR_LOG_APPEND_TIME 0x08   /* timestamp type: 1 = LogAppendTime */
#define SP_BATCH_ATTR_TRANSACTIONAL 0x10
#define SP_BATCH_ATTR_CONTROL 0x20
#define SP_BATCH_ATTR_DELETE_HORIZON 0x40

/* compression codecs (attributes bits 0-2) */
#define SP_COMPRESSION_NONE 0
#define SP_COMPRESSION_GZIP 1
#define SP_COMPRESSION_SNAPPY 2
#define SP_COMPRESSION_LZ4 3
#define SP_COMPRESSION_ZSTD 4

/* Internal errors of the iterator (sp_batch_validate maps them to Kafka
 * error codes, see there).  All negative. */
#define SP_BATCH_E_CORRUPT (-1)      /* malformed header, records or compressed data */
#define SP_BATCH_E_CODEC (-2)        /* unknown compression type (5..7) */
#define SP_BATCH_E_TOO_BIG (-3)      /* decompressed size above the cap */
#define SP_BATCH_E_NOMEM (-4)        /* malloc failed */

/* ---- header ------------------------------------------------------------ */

/* The 61-byte header, decoded.  Field names follow Kafka's schema. */
typedef struct sp_batch_hdr {
    int64_t base_offset;
    int32_t batch_length;
    int32_t partition_leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
} sp_batch_hdr_t;

/*
 * Decodes the header at p[0..len) into *h.  Borrows p.  No check other
 * than the length: a header from the wire is trusted only after
 * sp_batch_validate().  Returns 0, or -1 if len < SP_BATCH_HEADER_SIZE
 * (h untouched).
 */
int sp_batch_hdr_parse(const uint8_t *p, size_t len, sp_batch_hdr_t *h);

/* Offsets are computed with wrap-around (no signed-overflow UB on hostile
 * headers); on a validated batch in the log they never wrap. */
static inline int64_t sp_batch_last_offset(const sp_batch_hdr_t *h)
{
    return (int64_t)((uint64_t)h->base_offset + (uint64_t)(int64_t)h->last_offset_delta);
}

static inline int64_t sp_batch_next_offset(const sp_batch_hdr_t *h)
{
    return (int64_t)((uint64_t)sp_batch_last_offset(h) + 1);
}

/* Whole batch size on the wire / on disk: 12 + batchLength. */
static inline size_t sp_batch_size(const sp_batch_hdr_t *h)
{
    return SP_BATCH_LOG_OVERHEAD + (size_t)(uint32_t)h->batch_length;
}

static inline int sp_batch_compression(const sp_batch_hdr_t *h)
{
    return h->attributes & SP_BATCH_ATTR_COMPRESSION_MASK;
}

static inline bool sp_batch_is_log_append_time(const sp_batch_hdr_t *h)
{
    return (h->attributes & SP_BATCH_ATTR_LOG_APPEND_TIME) != 0;
}

static inline bool sp_batch_is_transactional(const sp_batch_hdr_t *h)
{
    return (h->attributes & SP_BATCH_ATTR_TRANSACTIONAL) != 0;
}

static inline bool sp_batch_is_control(const sp_batch_hdr_t *h)
{
    return (h->attributes & SP_BATCH_ATTR_CONTROL) != 0;
}

static inline bool sp_batch_has_delete_horizon(const sp_batch_hdr_t *h)
{
    return (h->attributes & SP_BATCH_ATTR_DELETE_HORIZON) != 0;
}

/* ---- framing ------------------------------------------------------------ */

/*
 * Framing of concatenated batches (a produce request's records field, a
 * segment file during recovery).  Looks only at the first 12 bytes of
 * p[0..len); borrows p.
 * Returns  1  a whole batch is present: *batch_size = 12 + batchLength;
 *          0  more bytes are needed (len < 12, or len < *batch_size; in the
 *             latter case *batch_size already says how many);
 *         -1  batchLength < SP_BATCH_MIN_LENGTH or > INT32_MAX - 12: not a
 *             batch (a torn or garbage tail).
 * *batch_size is 0 when len < 12 or on -1.
 */
int sp_batch_next(const uint8_t *p, size_t len, size_t *batch_size);

/* ---- validation --------------------------------------------------------- */

/*
 * Called for each refused record, in order: its index in the batch, the
 * Kafka error it earns (INVALID_RECORD or INVALID_TIMESTAMP) and Kafka's
 * message for it (borrowed for the call only).  The calls count only if
 * sp_batch_validate() then returns INVALID_RECORD or INVALID_TIMESTAMP.
 */
typedef void sp_record_error_fn(void *ctx, int32_t batch_index, int16_t error, const char *message);

typedef struct sp_batch_validate_opts {
    bool require_keys;        /* compacted topic: a null key is INVALID_RECORD (7) */
    bool allow_compacted;     /* log recovery: accept compaction gaps, see top */
    size_t max_decompressed;  /* 0 = SP_BATCH_MAX_DECOMPRESSED_DEFAULT */
    /* Who appends (Kafka's AppendOrigin): true for a client's Produce, (6)
     * applies; false for the broker's own writers (the group coordinator,
     * the metadata log, a transaction coordinator's markers). */
    bool from_client;
    /* (8): the topic's message.timestamp.type and its bounds, against now. */
    bool check_timestamps;
    bool log_append_time;     /* message.timestamp.type=LogAppendTime */
    int64_t now_ms;
    int64_t ts_before_max_ms; /* message.timestamp.before.max.ms */
    int64_t ts_after_max_ms;  /* message.timestamp.after.max.ms */
    const char *partition;    /* "topic-N", named in messages; may be NULL */
    sp_record_error_fn *record_error; /* may be NULL */
    void *record_error_ctx;
} sp_batch_validate_opts_t;

typedef struct sp_batch_info {
    sp_batch_hdr_t hdr;
    int64_t max_timestamp;    /* max record timestamp (as sp_record_t), -1 if none */
    int32_t records;          /* records found (== hdr.record_count) */
    bool compressed;
    size_t records_size;      /* bytes of the records section once decompressed */
    const char *reason;       /* why it was refused (static text), NULL if not */
} sp_batch_info_t;

/*
 * Validates ONE complete batch, exactly p[0..len), against invariants
 * (1)-(5) above, and (6)-(8) as opts ask, decompressing if needed.
 * Borrows p; the decompression buffer is malloc'd and freed before
 * returning.  opts may be NULL (defaults: the broker's own writer, keys
 * optional, no timestamp bounds, strict, 256 MiB cap).  info may be NULL;
 * on success it is filled, on failure only info->reason is set.
 * Returns 0, or a Kafka error code for the partition (Kafka's, as its
 * UnifiedLog and LogValidator answer a client):
 *   SP_ERR_CORRUPT_MESSAGE               size, magic != 2, CRC, counts,
 *                                        offsets, record or codec framing,
 *                                        decompressed size over the cap
 *   SP_ERR_UNSUPPORTED_COMPRESSION_TYPE  compression 5..7
 *   SP_ERR_INVALID_RECORD                (6) for a client, or (4) once
 *                                        its records are decompressed; or
 *                                        a record error (7), see
 *                                        opts->record_error
 *   SP_ERR_INVALID_TIMESTAMP             record errors, one of them (8)
 *   SP_ERR_UNKNOWN_SERVER_ERROR (-1)     out of memory
 * A transactional batch is the produce handler's business (Kafka's
 * KafkaApis refuses it before the log: it needs a transactional id).
 */
int sp_batch_validate(const uint8_t *p, size_t len, const sp_batch_validate_opts_t *opts,
                      sp_batch_info_t *info);

/* ---- records ------------------------------------------------------------ */

/* One record.  Pointers borrow the batch, or the iterator's decompression
 * buffer: valid until sp_record_iter_free(). */
typedef struct sp_record {
    int8_t attributes;
    int64_t timestamp;        /* baseTimestamp + delta, or maxTimestamp if
                                 the batch is LogAppendTime (as Kafka) */
    int64_t timestamp_delta;
    int64_t offset;           /* baseOffset + offsetDelta */
    int32_t offset_delta;
    sp_bytes_t key;           /* len -1 = null */
    sp_bytes_t value;         /* len -1 = null */
    int32_t header_count;
    const uint8_t *headers;   /* header_count encoded headers, see sp_header_iter */
    size_t headers_len;
} sp_record_t;

/* Caller-allocated iterator; treat fields as private. */
typedef struct sp_record_iter {
    sp_batch_hdr_t hdr;
    sp_reader_t r;            /* over the records section (maybe decompressed) */
    uint8_t *buf;             /* owned decompression buffer, or NULL */
    size_t records_size;      /* bytes of the records section */
    int32_t index;            /* records returned so far */
    int err;                  /* sticky SP_BATCH_E_*, 0 if fine */
} sp_record_iter_t;

/*
 * Prepares to iterate the records of the batch batch[0..len), which should
 * have passed sp_batch_validate() (the CRC is NOT checked here; everything
 * is still bounds-checked, so any bytes are safe).  Decompresses the
 * records section into a malloc'd buffer owned by 'it' (at most
 * max_decompressed bytes; 0 = SP_BATCH_MAX_DECOMPRESSED_DEFAULT).  Borrows
 * 'batch' until sp_record_iter_free().
 * Returns 0 or SP_BATCH_E_*.  Call sp_record_iter_free() in every case.
 */
int sp_record_iter_init(sp_record_iter_t *it, const uint8_t *batch, size_t len,
                        size_t max_decompressed);

/*
 * Decodes the next record into *out.  Returns 1 (a record), 0 (end: exactly
 * recordCount records were read and no byte is left), or SP_BATCH_E_CORRUPT
 * (a record overruns or underruns its length, bad lengths or header count,
 * fewer records than recordCount, bytes left over).  Errors are sticky.
 * Checks structure only; offset-delta rules are sp_batch_validate()'s.
 */
int sp_record_iter_next(sp_record_iter_t *it, sp_record_t *out);

/* Frees the decompression buffer.  Idempotent; 'it' may be reused by init. */
void sp_record_iter_free(sp_record_iter_t *it);

/* Iterates the headers of one record; borrows rec->headers. */
typedef struct sp_header_iter {
    sp_reader_t r;
    int32_t left;
} sp_header_iter_t;

void sp_header_iter_init(sp_header_iter_t *it, const sp_record_t *rec);

/*
 * Next header: *key (never null) and *value (len -1 = null) point into the
 * record.  Returns 1, 0 at the end, or -1 if malformed (cannot happen for
 * a record that sp_record_iter_next() returned).
 */
int sp_header_iter_next(sp_header_iter_t *it, sp_str_t *key, sp_bytes_t *value);

/* ---- patching in place (the log, on a validated batch) ------------------- */

/* baseOffset and partitionLeaderEpoch are outside the CRC: no recompute.
 * 'batch' needs at least 12 resp. 16 bytes. */
void sp_batch_set_base_offset(uint8_t *batch, int64_t base_offset);
void sp_batch_set_leader_epoch(uint8_t *batch, int32_t epoch);

/*
 * Marks batch[0..len) as LogAppendTime: sets attribute bit 3, maxTimestamp
 * = ts, and recomputes the CRC.  Returns 0, or -1 if len < 61 (untouched).
 */
int sp_batch_set_log_append_time(uint8_t *batch, size_t len, int64_t ts);

/* Recomputes and stores the CRC of batch[0..len).  Returns 0 or -1 if
 * len < 61. */
int sp_batch_set_crc(uint8_t *batch, size_t len);

/* ---- builder (uncompressed batches the broker writes itself) ------------- */

/*
 * Usage:
 *   sp_batch_builder_t b;
 *   sp_batch_builder_init(&b, base_offset, now_ms);
 *   sp_batch_builder_add(&b, key, klen, val, vlen, now_ms);  (repeat)
 *   uint8_t *batch = sp_batch_builder_finish(&b, &len);      (caller frees)
 *   sp_batch_builder_free(&b);
 * Records get offsetDelta 0, 1, 2...; producerId/Epoch/baseSequence are -1
 * unless set.  Fields are private.  A failed add (bad length, OOM, batch
 * over INT32_MAX) makes finish return NULL.
 */
typedef struct sp_batch_builder {
    uint8_t *buf;             /* owned until finish; header space first */
    size_t len, cap;
    int64_t base_offset;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int16_t attributes;
    int32_t count;
    bool err;
} sp_batch_builder_t;

/* Starts an empty batch; 'timestamp' becomes baseTimestamp.  Allocates
 * nothing yet. */
void sp_batch_builder_init(sp_batch_builder_t *b, int64_t base_offset, int64_t timestamp);

/* Producer fields, for transaction markers and idempotent internal writes. */
void sp_batch_builder_set_producer(sp_batch_builder_t *b, int64_t producer_id,
                                   int16_t producer_epoch, int32_t base_sequence);

/* Adds attribute bits; only SP_BATCH_ATTR_TRANSACTIONAL and
 * SP_BATCH_ATTR_CONTROL are allowed (others are ignored). */
void sp_batch_builder_set_flags(sp_batch_builder_t *b, int16_t attrs);

/*
 * Appends a record.  Copies key[0..klen) and val[0..vlen); klen/vlen -1
 * means null (the pointer is then ignored).  'timestamp' is the record's
 * CreateTime.  Returns 0 or -1 (lengths < -1, OOM, batch too large; the
 * builder is then failed).
 */
int sp_batch_builder_add(sp_batch_builder_t *b, const void *key, int32_t klen,
                         const void *val, int32_t vlen, int64_t timestamp);

/*
 * Writes the header (counts, maxTimestamp, CRC) and hands the batch over:
 * returns a malloc'd buffer the caller frees, *len its size.  Returns NULL
 * if no record was added or an add failed (the builder still owns its
 * buffer then).  After a successful finish the builder takes no more
 * records until sp_batch_builder_init(); sp_batch_builder_free() is always
 * fine to call.
 */
uint8_t *sp_batch_builder_finish(sp_batch_builder_t *b, size_t *len);

/* Frees whatever the builder still owns.  Idempotent. */
void sp_batch_builder_free(sp_batch_builder_t *b);

/* Decompresses a raw stream of 'codec' (gzip, snappy raw or xerial-framed,
 * an LZ4 frame, zstd) into *out (malloc'd), at most limit bytes (0: the
 * default cap).  0 or SP_BATCH_E_*.  Legacy message sets (proto/legacy.h). */
int sp_decompress(int codec, const uint8_t *src, size_t n, size_t limit, uint8_t **out, size_t *out_len);

/* ---- recompression (a topic's compression.type) --------------------------- */

/*
 * Rewrites the batch src[0..len), which passed sp_batch_validate(), with its
 * records compressed by 'codec' (SP_COMPRESSION_*; NONE stores them
 * uncompressed), as Kafka's LogValidator rebuilds a batch whose codec is not
 * the topic's compression.type.  'level' is the codec's own scale (gzip 1..9
 * or -1 for zlib's default, lz4 1..17, zstd -131072..22; snappy and NONE
 * ignore it).  The records section is carried over byte for byte (keys,
 * values, headers, timestamp and offset deltas); the header keeps every
 * field (offsets, timestamps, producer id, epoch and base sequence, the
 * transactional and timestamp-type bits) but the codec bits and the
 * delete-horizon bit (cleared, as Kafka's builder does), with a new length
 * and CRC.  (Kafka re-encodes each record, which also zeroes the unused
 * record attributes byte; here it stays as the producer wrote it.)  Output
 * framing is what Kafka's broker writes: one gzip member, snappy in the
 * xerial framing (32 KiB blocks), an LZ4 frame of independent 64 KiB
 * blocks, one zstd frame.
 * Returns 0 with *out (malloc'd, the caller frees) and *out_len, or
 * SP_BATCH_E_* (TOO_BIG: the decompressed records are over max_decompressed,
 * 0 = the default cap, or the result would be over INT32_MAX).  Borrows src.
 */
int sp_batch_recompress(const uint8_t *src, size_t len, int codec, int level,
                        size_t max_decompressed, uint8_t **out, size_t *out_len);

/*
 * A transaction marker's control record (Kafka's EndTransactionMarker:
 * key version, type; value version, coordinator epoch).  Returns 0
 * (ABORT) or 1 (COMMIT) with *coord_epoch (may be NULL); 2 for a control
 * batch without records (its marker emptied by compaction); -1 if the
 * record is not a marker.  Borrows batch.
 */
int sp_batch_marker_type(const uint8_t *batch, size_t len, int32_t *coord_epoch);

/*
 * Compaction (Kafka's MemoryRecords.filterTo and buildRetainedRecordsInto):
 * rebuilds the batch src[0..len) (read from a log, CRC checked) with only
 * the records i for which keep[i] (i < nkeep; records past nkeep are
 * dropped).  Kept: base and last offset (the batch covers the same
 * offsets, with gaps), partition leader epoch, producer id, epoch and base
 * sequence, the transactional, control and timestamp-type bits, the codec
 * (compressed again at Kafka's default level).  Rebuilt: each record, with
 * its attributes byte 0 and its timestamp delta from the new base
 * timestamp: delete_horizon when >= 0 (the DELETE_HORIZON bit is then set:
 * KIP-534), else the first kept record's timestamp; maxTimestamp the
 * largest kept timestamp (LogAppendTime batches keep theirs).  With no
 * record kept: a header-only batch, recordCount 0, uncompressed, both
 * timestamps the old maxTimestamp (Kafka's writeEmptyHeader: what keeps a
 * producer's last sequence).  Returns 0 with *out (malloc'd) and *out_len,
 * or SP_BATCH_E_*.
 */
int sp_batch_filter(const uint8_t *src, size_t len, const bool *keep, int32_t nkeep,
                    int64_t delete_horizon, size_t max_decompressed, uint8_t **out, size_t *out_len);

/*
 * Calls fn(record, ctx) for every record of the concatenated batches in
 * buf[0..len) (a log read or a snapshot file), in order.  *next is set to
 * the offset after the last batch (from its header, so gaps left by
 * compaction and empty batches count).  Each batch's CRC-32C is checked
 * (these are bytes from disk that internal state is rebuilt from: a
 * flipped bit must stop the replay, not become a different record).
 * Stops at the first batch that does not parse or check (returns -1) or
 * when fn returns non-zero (returns that).
 * Borrows buf; any thread.
 */
int sp_batches_each_record(const uint8_t *buf, size_t len,
                           int (*fn)(const sp_record_t *rec, void *ctx), void *ctx, int64_t *next);

#endif
