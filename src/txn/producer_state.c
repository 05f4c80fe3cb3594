/* producer_state.c - a partition's producers (see producer_state.h). */
#include "txn/producer_state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/crc32c.h"
#include "proto/gen/errors.h"
#include "proto/wire.h"
#include "util/fsutil.h"
#include "util/hashset.h"
#include "util/log.h"

/* An open or not yet stable transaction: (first offset, producer id), and
 * for unstable ones the marker's offset. */
typedef struct txn_ref {
    int64_t first_offset;
    int64_t producer_id;
    int64_t last_offset;
} txn_ref_t;

typedef struct txn_list {
    txn_ref_t *v;
    int n, cap;
} txn_list_t;

/* A verification under way (KIP-890). */
typedef struct guard {
    int64_t producer_id;
    int16_t epoch;
    uint64_t token;
    int64_t since_ms;
} guard_t;

struct sp_pstate {
    char *label;
    guard_t *guards;              /* verifications under way (a handful) */
    int nguards, capguards;
    uint64_t next_token;
    /* producer id -> entry: open addressing, linear probing, keyed hash
     * (ids come from clients), at most half full */
    sp_pentry_t **slot;
    uint32_t mask;
    int count;
    int64_t end;                  /* offset after the last batch recorded */
    txn_list_t ongoing;           /* open transactions (invariant 2) */
    txn_list_t unstable;          /* closed, marker not yet below hw */
};

/* ---- the table -------------------------------------------------------------- */

static uint32_t slot_of(const sp_pstate_t *s, int64_t pid)
{
    return (uint32_t)sp_hash_mix(0x70726f6475636572ULL, pid) & s->mask;
}

static sp_pentry_t *find(const sp_pstate_t *s, int64_t pid)
{
    for (uint32_t i = slot_of(s, pid);; i = (i + 1) & s->mask) {
        sp_pentry_t *e = s->slot[i];
        if (!e || e->producer_id == pid)
            return e;
    }
}

static int grow(sp_pstate_t *s)
{
    uint32_t nslots = (s->mask + 1) * 2;
    sp_pentry_t **old = s->slot;
    uint32_t oldn = s->mask + 1;
    sp_pentry_t **nv = calloc(nslots, sizeof(*nv));
    if (!nv)
        return -1;
    s->slot = nv;
    s->mask = nslots - 1;
    for (uint32_t i = 0; i < oldn; i++) {
        if (!old[i])
            continue;
        uint32_t j = slot_of(s, old[i]->producer_id);
        while (s->slot[j])
            j = (j + 1) & s->mask;
        s->slot[j] = old[i];
    }
    free(old);
    return 0;
}

/* The entry of pid, made empty if new; NULL when out of memory. */
static sp_pentry_t *get_or_add(sp_pstate_t *s, int64_t pid)
{
    sp_pentry_t *e = find(s, pid);
    if (e)
        return e;
    if ((uint32_t)(s->count + 1) * 2 > s->mask + 1 && grow(s) != 0)
        return NULL;
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->producer_id = pid;
    e->epoch = -1;
    e->coordinator_epoch = -1;
    e->last_timestamp = -1;
    e->txn_first_offset = -1;
    uint32_t i = slot_of(s, pid);
    while (s->slot[i])
        i = (i + 1) & s->mask;
    s->slot[i] = e;
    s->count++;
    return e;
}

/* Removes the entry in slot i (backward-shift deletion keeps probes whole). */
static void remove_slot(sp_pstate_t *s, uint32_t i)
{
    free(s->slot[i]);
    s->slot[i] = NULL;
    s->count--;
    for (uint32_t j = (i + 1) & s->mask; s->slot[j]; j = (j + 1) & s->mask) {
        uint32_t home = slot_of(s, s->slot[j]->producer_id);
        /* may the entry at j move to the hole at i? (home not in (i, j]) */
        bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            s->slot[i] = s->slot[j];
            s->slot[j] = NULL;
            i = j;
        }
    }
}

sp_pstate_t *sp_pstate_new(const char *label)
{
    sp_pstate_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->label = strdup(label ? label : "");
    s->slot = calloc(16, sizeof(*s->slot));
    if (!s->label || !s->slot) {
        sp_pstate_free(s);
        return NULL;
    }
    s->mask = 15;
    return s;
}

static void clear(sp_pstate_t *s)
{
    for (uint32_t i = 0; i <= s->mask; i++) {
        free(s->slot[i]);
        s->slot[i] = NULL;
    }
    s->count = 0;
    s->ongoing.n = s->unstable.n = 0;
}

void sp_pstate_free(sp_pstate_t *s)
{
    if (!s)
        return;
    if (s->slot)
        clear(s);
    free(s->slot);
    free(s->ongoing.v);
    free(s->unstable.v);
    free(s->guards);
    free(s->label);
    free(s);
}

/* ---- transaction lists (sorted by first offset) ---------------------------- */

static int txn_add(txn_list_t *l, int64_t first, int64_t pid, int64_t last)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        txn_ref_t *nv = realloc(l->v, sizeof(*nv) * (size_t)cap);
        if (!nv)
            return -1;
        l->v = nv;
        l->cap = cap;
    }
    int i = l->n;
    while (i > 0 && l->v[i - 1].first_offset > first) {
        l->v[i] = l->v[i - 1];
        i--;
    }
    l->v[i] = (txn_ref_t){ first, pid, last };
    l->n++;
    return 0;
}

static void txn_remove_at(txn_list_t *l, int i)
{
    memmove(&l->v[i], &l->v[i + 1], sizeof(l->v[0]) * (size_t)(l->n - i - 1));
    l->n--;
}

static int txn_find(const txn_list_t *l, int64_t first, int64_t pid)
{
    for (int i = 0; i < l->n; i++)
        if (l->v[i].first_offset == first && l->v[i].producer_id == pid)
            return i;
    return -1;
}

/* ---- verification guards ---------------------------------------------------- */

static int guard_find(const sp_pstate_t *s, int64_t pid)
{
    for (int i = 0; i < s->nguards; i++)
        if (s->guards[i].producer_id == pid)
            return i;
    return -1;
}

static void guard_clear(sp_pstate_t *s, int64_t pid)
{
    int i = guard_find(s, pid);
    if (i >= 0)
        s->guards[i] = s->guards[--s->nguards];
}

uint64_t sp_pstate_verify_begin(sp_pstate_t *s, int64_t pid, int16_t epoch, int64_t now_ms)
{
    int i = guard_find(s, pid);
    if (i >= 0 && s->guards[i].epoch == epoch)
        return s->guards[i].token; /* one under way already: the same guard */
    if (i < 0) {
        if (s->nguards == s->capguards) {
            int cap = s->capguards ? s->capguards * 2 : 4;
            guard_t *nv = realloc(s->guards, sizeof(*nv) * (size_t)cap);
            if (!nv)
                return 0;
            s->guards = nv;
            s->capguards = cap;
        }
        i = s->nguards++;
    }
    s->guards[i] = (guard_t){ pid, epoch, ++s->next_token, now_ms };
    return s->guards[i].token;
}

/* ---- checks -------------------------------------------------------------- */

/* Kafka's DefaultRecordBatch.decrementSequence: seq - delta, wrapping. */
static int32_t first_seq_of(int32_t last_seq, int32_t delta)
{
    /* in 64 bits: the bytes come from clients and disk */
    if (last_seq < delta)
        return (int32_t)((int64_t)INT32_MAX - ((int64_t)delta - last_seq) + 1);
    return (int32_t)((int64_t)last_seq - delta);
}

/* The batch's last sequence (wrapping past INT32_MAX, as Kafka's). */
static int32_t last_seq_of(const sp_batch_hdr_t *h)
{
    int64_t last = (int64_t)h->base_sequence + h->last_offset_delta;
    return last > INT32_MAX ? (int32_t)(last - INT32_MAX - 1) : (int32_t)last;
}

static bool in_sequence(int32_t last, int32_t next)
{
    return (int64_t)next == (int64_t)last + 1 || (next == 0 && last == INT32_MAX);
}

/* Reads a marker's control record: 0 with *commit and *coord_epoch, or -1
 * (an empty control batch, whose transaction was cleaned away, is 1). */
static int read_marker(const uint8_t *batch, size_t len, bool *commit, int32_t *coord_epoch)
{
    int type = sp_batch_marker_type(batch, len, coord_epoch);
    if (type == 2)
        return 1;
    if (type < 0)
        return -1;
    *commit = type == 1;
    return 0;
}

static void refuse(sp_pverdict_t *v, int16_t err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void refuse(sp_pverdict_t *v, int16_t err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->message, sizeof(v->message), fmt, ap);
    va_end(ap);
    v->error = err;
}

void sp_pstate_check(const sp_pstate_t *s, const sp_batch_hdr_t *h, const uint8_t *batch, size_t len,
                     sp_pstate_origin_t origin, int64_t offset, sp_pverdict_t *v)
{
    memset(v, 0, sizeof(*v));
    if (h->producer_id < 0 || origin == SP_PSTATE_REPLAY)
        return;
    const sp_pentry_t *e = find(s, h->producer_id);
    bool control = sp_batch_is_control(h);
    int32_t last_seq = last_seq_of(h);

    /* a client's retry of one of the last batches (Kafka: findDuplicateBatch) */
    if (e && origin == SP_PSTATE_CLIENT && !control && h->producer_epoch == e->epoch) {
        for (int i = 0; i < e->nbatches; i++) {
            const sp_pbatch_t *b = &e->batches[i];
            if (first_seq_of(b->last_seq, b->offset_delta) == h->base_sequence && b->last_seq == last_seq) {
                v->duplicate = true;
                v->dup_first = b->last_offset - b->offset_delta;
                v->dup_last = b->last_offset;
                v->dup_timestamp = b->timestamp;
                return;
            }
        }
    }
    int16_t cur_epoch = e ? e->epoch : -1;
    if (control) {
        bool commit;
        int32_t cepoch;
        if (read_marker(batch, len, &commit, &cepoch) < 0) {
            refuse(v, SP_ERR_INVALID_RECORD, "Invalid transaction marker at offset %" PRId64 " in %s",
                   offset, s->label);
            return;
        }
        if (h->producer_epoch < cur_epoch) {
            refuse(v, SP_ERR_INVALID_PRODUCER_EPOCH,
                   "Epoch of producer %" PRId64 " at offset %" PRId64 " in %s is %d, which is smaller than "
                   "the last seen epoch %d", h->producer_id, offset, s->label, h->producer_epoch, cur_epoch);
            return;
        }
        if (e && e->coordinator_epoch > cepoch) {
            refuse(v, SP_ERR_TRANSACTION_COORDINATOR_FENCED,
                   "Invalid coordinator epoch for producerId %" PRId64 " at offset %" PRId64 " in partition "
                   "%s: %d (zombie), %d (current)", h->producer_id, offset, s->label, cepoch,
                   e->coordinator_epoch);
        }
        return;
    }
    /* Kafka's ProducerAppendInfo.checkProducerEpoch */
    if (h->producer_epoch < cur_epoch) {
        refuse(v, SP_ERR_INVALID_PRODUCER_EPOCH,
               "Epoch of producer %" PRId64 " at offset %" PRId64 " in %s is %d, which is smaller than the "
               "last seen epoch %d", h->producer_id, offset, s->label, h->producer_epoch, cur_epoch);
        return;
    }
    if (origin == SP_PSTATE_CLIENT && cur_epoch != -1) {
        /* checkSequence (a producer with no epoch here may start anywhere) */
        if (h->producer_epoch != cur_epoch) {
            if (h->base_sequence != 0) {
                refuse(v, SP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                       "Invalid sequence number for new epoch of producer %" PRId64 "at offset %" PRId64
                       " in partition %s: %d (request epoch), %d (seq. number), %d (current producer epoch)",
                       h->producer_id, offset, s->label, h->producer_epoch, h->base_sequence, cur_epoch);
                return;
            }
        } else {
            int32_t cur_last = e->nbatches ? e->batches[e->nbatches - 1].last_seq : -1;
            if (!in_sequence(cur_last, h->base_sequence)) {
                refuse(v, SP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                       "Out of order sequence number for producer %" PRId64 " at offset %" PRId64
                       " in partition %s: %d (incoming seq. number), %d (current end sequence number)",
                       h->producer_id, offset, s->label, h->base_sequence, cur_last);
                return;
            }
        }
    }
    /* appendDataBatch: no plain batch inside an open transaction */
    if (e && e->txn_first_offset >= 0 && !sp_batch_is_transactional(h))
        refuse(v, SP_ERR_INVALID_TXN_STATE,
               "Expected transactional write from producer %" PRId64 " at offset %" PRId64 " in partition %s",
               h->producer_id, offset, s->label);
}

void sp_pstate_check_guarded(const sp_pstate_t *s, const sp_batch_hdr_t *h, const uint8_t *batch, size_t len,
                             sp_pstate_origin_t origin, int64_t offset, uint64_t guard, sp_pverdict_t *v)
{
    sp_pstate_check(s, h, batch, len, origin, offset, v);
    if (v->error || v->duplicate || h->producer_id < 0 || !sp_batch_is_transactional(h) || sp_batch_is_control(h))
        return;
    const sp_pentry_t *e = find(s, h->producer_id);
    if (e && e->txn_first_offset >= 0)
        return; /* its transaction is open here: nothing to verify */
    int i = guard_find(s, h->producer_id);
    if (guard == 0 || i < 0 || s->guards[i].token != guard || s->guards[i].epoch != h->producer_epoch)
        refuse(v, SP_ERR_INVALID_TXN_STATE,
               "Transactional records of producer %" PRId64 " at offset %" PRId64 " in %s were not verified "
               "with the transaction coordinator (or its transaction ended meanwhile)",
               h->producer_id, offset, s->label);
}

/* ---- updates --------------------------------------------------------------- */

static void set_epoch(sp_pentry_t *e, int16_t epoch)
{
    if (e->epoch != epoch) {
        e->nbatches = 0;
        e->epoch = epoch;
    }
}

static void add_batch(sp_pentry_t *e, const sp_pbatch_t *b)
{
    if (e->nbatches == SP_PSTATE_BATCHES) {
        memmove(&e->batches[0], &e->batches[1], sizeof(e->batches[0]) * (SP_PSTATE_BATCHES - 1));
        e->nbatches--;
    }
    e->batches[e->nbatches++] = *b;
}

int sp_pstate_update(sp_pstate_t *s, const sp_batch_hdr_t *h, const uint8_t *batch, size_t len,
                     sp_completed_txn_t *done)
{
    int64_t next = sp_batch_next_offset(h);
    if (h->producer_id < 0) {
        if (next > s->end)
            s->end = next;
        return 0;
    }
    bool commit = false;
    int32_t cepoch = -1;
    int marker = sp_batch_is_control(h) ? read_marker(batch, len, &commit, &cepoch) : -2;
    if (marker == -1)
        return -1;
    sp_pentry_t *e = get_or_add(s, h->producer_id);
    if (!e)
        return -1;
    int rc = 0;
    if (marker == 1) {
        /* an empty control batch: its transaction was cleaned away */
    } else if (marker == 0) {
        if (e->txn_first_offset >= 0) {
            int i = txn_find(&s->ongoing, e->txn_first_offset, e->producer_id);
            /* the LSO once stable: the next open transaction of another producer */
            int64_t lso = h->base_offset + 1;
            for (int j = 0; j < s->ongoing.n; j++)
                if (s->ongoing.v[j].producer_id != e->producer_id) {
                    lso = s->ongoing.v[j].first_offset;
                    break;
                }
            if (txn_add(&s->unstable, e->txn_first_offset, e->producer_id, h->base_offset) != 0)
                return -1;
            if (i >= 0)
                txn_remove_at(&s->ongoing, i);
            *done = (sp_completed_txn_t){ e->producer_id, e->txn_first_offset, h->base_offset, !commit, lso };
            rc = 1;
        }
        guard_clear(s, h->producer_id);
        set_epoch(e, h->producer_epoch);
        e->coordinator_epoch = cepoch;
        e->txn_first_offset = -1;
        e->last_timestamp = h->max_timestamp;
    } else {
        if (sp_batch_is_transactional(h) && e->txn_first_offset < 0) {
            if (txn_add(&s->ongoing, h->base_offset, h->producer_id, -1) != 0)
                return -1;
            e->txn_first_offset = h->base_offset;
            guard_clear(s, h->producer_id);
        }
        set_epoch(e, h->producer_epoch);
        sp_pbatch_t b = { last_seq_of(h), h->last_offset_delta, sp_batch_last_offset(h), h->max_timestamp };
        add_batch(e, &b);
        e->last_timestamp = h->max_timestamp;
    }
    if (next > s->end)
        s->end = next;
    return rc;
}

int64_t sp_pstate_end(const sp_pstate_t *s) { return s->end; }
void sp_pstate_set_end(sp_pstate_t *s, int64_t end) { s->end = end; }

void sp_pstate_on_hw(sp_pstate_t *s, int64_t hw)
{
    int w = 0;
    for (int i = 0; i < s->unstable.n; i++)
        if (s->unstable.v[i].last_offset >= hw)
            s->unstable.v[w++] = s->unstable.v[i];
    s->unstable.n = w;
}

int64_t sp_pstate_first_unstable(const sp_pstate_t *s)
{
    int64_t a = s->ongoing.n ? s->ongoing.v[0].first_offset : -1;
    int64_t b = s->unstable.n ? s->unstable.v[0].first_offset : -1;
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

/* now - since >= span, without overflow on timestamps from clients or disk. */
static bool idle_for(int64_t now, int64_t since, int64_t span)
{
    return span <= 0 || (since <= now && (uint64_t)now - (uint64_t)since >= (uint64_t)span);
}

int sp_pstate_expire(sp_pstate_t *s, int64_t now_ms, int64_t expiration_ms)
{
    int n = 0;
    for (int i = 0; i < s->nguards;)
        if (idle_for(now_ms, s->guards[i].since_ms, expiration_ms))
            s->guards[i] = s->guards[--s->nguards];
        else
            i++;
    for (uint32_t i = 0; i <= s->mask;) {
        sp_pentry_t *e = s->slot[i];
        if (e && e->txn_first_offset < 0 && idle_for(now_ms, e->last_timestamp, expiration_ms)) {
            remove_slot(s, i); /* a later entry may have moved into i: look again */
            n++;
            continue;
        }
        i++;
    }
    return n;
}

int sp_pstate_count(const sp_pstate_t *s) { return s->count; }

void sp_pstate_each(const sp_pstate_t *s, void (*fn)(const sp_pentry_t *e, void *ctx), void *ctx)
{
    for (uint32_t i = 0; i <= s->mask; i++)
        if (s->slot[i])
            fn(s->slot[i], ctx);
}

const sp_pentry_t *sp_pstate_get(const sp_pstate_t *s, int64_t producer_id)
{
    return find(s, producer_id);
}

bool sp_pstate_check_invariants(const sp_pstate_t *s)
{
    int seen = 0, open = 0;
    for (uint32_t i = 0; i <= s->mask; i++) {
        const sp_pentry_t *e = s->slot[i];
        if (!e)
            continue;
        seen++;
        if (e->nbatches < 0 || e->nbatches > SP_PSTATE_BATCHES)
            return false;
        for (int b = 1; b < e->nbatches; b++)
            if (e->batches[b].last_offset <= e->batches[b - 1].last_offset)
                return false;
        if (e->txn_first_offset >= 0) {
            open++;
            if (txn_find(&s->ongoing, e->txn_first_offset, e->producer_id) < 0)
                return false;
        }
    }
    for (int i = 1; i < s->ongoing.n; i++)
        if (s->ongoing.v[i].first_offset < s->ongoing.v[i - 1].first_offset)
            return false;
    for (int i = 1; i < s->unstable.n; i++)
        if (s->unstable.v[i].first_offset < s->unstable.v[i - 1].first_offset)
            return false;
    return seen == s->count && open == s->ongoing.n && (uint32_t)s->count * 2 <= s->mask + 1;
}

/* ---- snapshot files ------------------------------------------------------------ */

#define SNAP_VERSION 1
#define SNAP_HEADER 10            /* version, crc, entry count */
#define SNAP_ENTRY 46             /* 8+2+4+8+4+8+4+8 */
#define SNAP_SUFFIX ".snapshot"

static void snapshot_name(char *out, size_t cap, int64_t offset)
{
    snprintf(out, cap, "%020" PRId64 SNAP_SUFFIX, offset);
}

/* The offset a file name "<20 digits>.snapshot" names, or -1. */
static int64_t snapshot_offset(const char *name)
{
    size_t n = strlen(name);
    if (n != 20 + strlen(SNAP_SUFFIX) || strcmp(name + 20, SNAP_SUFFIX) != 0)
        return -1;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static void write_entry(const sp_pentry_t *e, void *ctx)
{
    sp_writer_t *w = ctx;
    const sp_pbatch_t *b = e->nbatches ? &e->batches[e->nbatches - 1] : NULL;
    sp_write_i64(w, e->producer_id);
    sp_write_i16(w, e->epoch);
    sp_write_i32(w, b ? b->last_seq : -1);
    sp_write_i64(w, b ? b->last_offset : -1);
    sp_write_i32(w, b ? b->offset_delta : 0);
    sp_write_i64(w, e->last_timestamp);
    sp_write_i32(w, e->coordinator_epoch);
    sp_write_i64(w, e->txn_first_offset);
}

uint8_t *sp_pstate_snapshot_encode(const sp_pstate_t *s, size_t *len)
{
    size_t size = SNAP_HEADER + (size_t)s->count * SNAP_ENTRY;
    uint8_t *buf = malloc(size);
    if (!buf)
        return NULL;
    sp_writer_t w = sp_writer(buf, size);
    sp_write_i16(&w, SNAP_VERSION);
    sp_write_i32(&w, 0); /* the CRC, below */
    sp_write_i32(&w, s->count);
    sp_pstate_each(s, write_entry, &w);
    uint32_t crc = sp_crc32c(0, buf + 6, size - 6);
    buf[2] = (uint8_t)(crc >> 24);
    buf[3] = (uint8_t)(crc >> 16);
    buf[4] = (uint8_t)(crc >> 8);
    buf[5] = (uint8_t)crc;
    *len = size;
    return buf;
}

int sp_pstate_snapshot_write_bytes(const char *dir, int64_t offset, const uint8_t *buf, size_t size, bool sync)
{
    char name[64], tmp[PATH_MAX], dst[PATH_MAX];
    snapshot_name(name, sizeof(name), offset);
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
    snprintf(dst, sizeof(dst), "%s/%s", dir, name);
    int err = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off < size && !err) {
        ssize_t n = write(fd, buf + off, size - off);
        if (n < 0 && errno != EINTR)
            err = errno;
        else if (n > 0)
            off += (size_t)n;
    }
    /* synced before the rename when asked; otherwise the CRC tells a torn
     * file from a whole one at load */
    if (!err && sync && sp_fsync(fd) != 0)
        err = errno ? errno : EIO;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, dst) != 0)
        err = errno;
    if (err)
        unlink(tmp);
    else if (sync && sp_fsync_dir(dir) != 0)
        err = errno ? errno : EIO;
    return -err;
}

int sp_pstate_snapshot_write(const sp_pstate_t *s, const char *dir, bool sync)
{
    size_t len;
    uint8_t *buf = sp_pstate_snapshot_encode(s, &len);
    if (!buf)
        return -ENOMEM;
    int rc = sp_pstate_snapshot_write_bytes(dir, s->end, buf, len, sync);
    free(buf);
    return rc;
}

/* Parses a snapshot file's bytes into s (cleared first).  0 or -1. */
static int parse_snapshot(sp_pstate_t *s, const uint8_t *buf, size_t len, int64_t now_ms, int64_t expiration_ms)
{
    sp_reader_t r = sp_reader(buf, len);
    int16_t version;
    int32_t crc_i, n;
    sp_read_i16(&r, &version);
    sp_read_i32(&r, &crc_i);
    if (!sp_reader_ok(&r) || version != SNAP_VERSION || sp_crc32c(0, buf + 6, len - 6) != (uint32_t)crc_i)
        return -1;
    sp_read_i32(&r, &n);
    if (!sp_reader_ok(&r) || n < 0 || (size_t)n * SNAP_ENTRY != sp_reader_left(&r))
        return -1;
    clear(s);
    for (int32_t i = 0; i < n; i++) {
        int64_t pid, last_offset, ts, txn_first;
        int16_t epoch;
        int32_t last_seq, delta, cepoch;
        sp_read_i64(&r, &pid);
        sp_read_i16(&r, &epoch);
        sp_read_i32(&r, &last_seq);
        sp_read_i64(&r, &last_offset);
        sp_read_i32(&r, &delta);
        sp_read_i64(&r, &ts);
        sp_read_i32(&r, &cepoch);
        sp_read_i64(&r, &txn_first);
        if (!sp_reader_ok(&r) || pid < 0 || find(s, pid))
            return -1;
        /* Kafka's loadFromSnapshot drops the expired */
        if (txn_first < 0 && idle_for(now_ms, ts, expiration_ms))
            continue;
        sp_pentry_t *e = get_or_add(s, pid);
        if (!e)
            return -1;
        e->epoch = epoch;
        e->coordinator_epoch = cepoch;
        e->last_timestamp = ts;
        if (last_offset >= 0) {
            e->batches[0] = (sp_pbatch_t){ last_seq, delta, last_offset, ts };
            e->nbatches = 1;
        }
        if (txn_first >= 0) {
            if (txn_add(&s->ongoing, txn_first, pid, -1) != 0)
                return -1;
            e->txn_first_offset = txn_first;
        }
    }
    return 0;
}

/* Reads a whole small file: malloc'd bytes, or NULL. */
static uint8_t *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    off_t size = lseek(fd, 0, SEEK_END);
    uint8_t *buf = size >= 0 && size < (1LL << 30) ? malloc((size_t)size + 1) : NULL;
    if (buf && sp_pread_full(fd, buf, (size_t)size, 0) != 0) {
        free(buf);
        buf = NULL;
    }
    close(fd);
    *len = (size_t)size;
    return buf;
}

/* The snapshot offsets in dir, sorted; *n of them (malloc'd; NULL if none). */
static int64_t *list_snapshots(const char *dir, int *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    int64_t *v = NULL;
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t off = snapshot_offset(de->d_name);
        if (off < 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            int64_t *nv = realloc(v, sizeof(*v) * (size_t)cap);
            if (!nv)
                break;
            v = nv;
        }
        v[(*n)++] = off;
    }
    closedir(d);
    for (int i = 1; i < *n; i++) /* insertion sort: a handful of files */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            int64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v;
}

static void remove_snapshot(const char *dir, int64_t offset)
{
    char name[64], path[PATH_MAX];
    snapshot_name(name, sizeof(name), offset);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
}

int64_t sp_pstate_snapshot_load(sp_pstate_t *s, const char *dir, int64_t max_offset, int64_t now_ms,
                                int64_t expiration_ms)
{
    return sp_pstate_snapshot_load_upto(s, dir, max_offset, max_offset, now_ms, expiration_ms);
}

int64_t sp_pstate_snapshot_load_upto(sp_pstate_t *s, const char *dir, int64_t max_offset, int64_t upto,
                                     int64_t now_ms, int64_t expiration_ms)
{
    int n;
    int64_t *offs = list_snapshots(dir, &n);
    int64_t loaded = -1;
    clear(s);
    for (int i = n - 1; i >= 0 && loaded < 0; i--) {
        char name[64], path[PATH_MAX];
        snapshot_name(name, sizeof(name), offs[i]);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        if (offs[i] > max_offset) {
            sp_info("log", "%s: removing the producer snapshot %s past the end of the log (%" PRId64 ")",
                    s->label, name, max_offset);
            unlink(path);
            continue;
        }
        if (offs[i] > upto)
            continue; /* good, but later than the caller needs: kept */
        size_t len = 0;
        uint8_t *buf = read_file(path, &len);
        if (!buf || parse_snapshot(s, buf, len, now_ms, expiration_ms) != 0) {
            sp_warn("log", "%s: the producer snapshot %s is damaged or unreadable; removed (an older "
                    "one, or the log itself, rebuilds the state)", s->label, path);
            clear(s);
            unlink(path);
        } else {
            loaded = offs[i];
            s->end = loaded;
        }
        free(buf);
    }
    free(offs);
    return loaded >= 0 ? loaded : n > 0 ? -2 : -1;
}

int sp_pstate_snapshot_prune(const char *dir, int64_t below)
{
    int n, removed = 0;
    int64_t *offs = list_snapshots(dir, &n);
    for (int i = 0; i < n - 1; i++) /* the newest always stays */
        if (offs[i] < below) {
            remove_snapshot(dir, offs[i]);
            removed++;
        }
    free(offs);
    return removed;
}
