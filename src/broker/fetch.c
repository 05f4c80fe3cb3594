/*
 * fetch.c - Fetch (key 1), v0-v18 (v13+ names topics by id).
 *
 * v0-v3 (removed in Kafka 4.0; kafka-go 0.2, Burrow and Sarama set to
 * Kafka 0.10 still send them) answer message sets of magic 0 (v0-1) or
 * 1 (v2-3), converted from the batches read (down_convert), as Kafka 3
 * did: those bytes are copied, not sent with sendfile.
 *
 * For each partition: whole record batches from fetch_offset up to the
 * high watermark, within partition_max_bytes and the request's max_bytes,
 * except that the first batch of the first partition with data is always
 * returned whole, as Kafka does, so a consumer can never be stuck behind
 * a batch larger than its limits.  Record bytes go from the segment files
 * to the socket with sendfile (sp_req_respond_files): measured 1.5x the
 * throughput of pread + write at half the CPU (bench/copy-vs-sendfile.c).
 *
 * Long poll: when fewer than min_bytes are ready and max_wait_ms > 0, the
 * request parks on every partition's waiter list and on a timer.  An
 * append (or, on durable topics, the flush) that moves a high watermark
 * wakes it; it re-reads the partitions that moved, only those (Kafka's
 * DelayedFetch likewise looks at cached positions, not the logs, for the
 * rest), and when min_bytes are there (or the timer fires) reads all of
 * them once more, in order, and answers.  No polling.
 *
 * A partition named more than once is fetched once: Kafka keys the
 * request's partitions by topic-partition in a LinkedHashMap, so the
 * response has one entry per partition, at its first appearance, with
 * the offsets and limits of its last (collect_partitions).
 *
 * read_committed (isolation_level 1): the bound is the last stable offset
 * (sp_partition_read), last_stable_offset says it, and aborted_transactions
 * lists the transactions aborted in the range served (the log's .txnindex,
 * over Kafka's range: from fetch_offset to the first offset-index entry
 * past the bytes returned, else the next segment or the log end), from
 * which the consumer drops their records.  A parked read_committed fetch
 * wakes when hw moves, which is also when the LSO moves: a transaction's
 * end is stable once hw passes its marker.
 *
 * Fetch sessions (KIP-227) are answered sessionless: session_id 0, full
 * responses; a client that names a session we never gave gets
 * FETCH_SESSION_ID_NOT_FOUND and starts over.
 *
 * A partition of a topic whose compression.type is zstd is
 * UNSUPPORTED_COMPRESSION_TYPE below v10 (Kafka's rule: its clients may not
 * read zstd); zstd batches a producer wrote to a 'producer' topic are
 * served to any version, as Kafka does.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "broker/api.h"
#include "cluster/image.h"
#include "cluster/partition.h"
#include "proto/batch.h"
#include "proto/gen/fetch_request.h"
#include "proto/gen/fetch_response.h"
#include "proto/legacy.h"
#include "util/hashset.h"
#include "util/log.h"

typedef struct fpart {
    sp_waiter_t w;              /* must stay first */
    struct fetch_ctx *ctx;
    const sp_fetch_request_fetch_topic_t *ft;     /* first appearance's topic */
    const sp_fetch_request_fetch_partition_t *fp; /* last appearance's parameters */
    sp_partition_t *part;       /* referenced; NULL on error */
    sp_fetch_response_partition_data_t *out;
    int64_t offset;
    int32_t max_bytes;
    sp_partition_read_t rr;     /* last read (its segment referenced) */
    int64_t got;                /* bytes of that read */
    atomic_bool moved;          /* on the moved list (set by on_wake) */
    struct fpart *next_moved;
} fpart_t;

typedef struct fetch_ctx {
    sp_req_t *req;
    sp_fetch_response_t resp;
    fpart_t *parts;             /* one per distinct partition */
    int nparts;
    sp_fetch_response_partition_data_t *part_out; /* parts[i].out = part_out + i */
    int32_t min_bytes, max_bytes;
    sp_isolation_t isolation;
    int16_t version;
    int64_t total;              /* bytes of the partitions' latest reads */
    _Atomic(fpart_t *) moved;   /* partitions whose hw moved: a stack, taken whole */
    uv_timer_t timer;
    bool timer_on, parked, done;
    atomic_bool wake_posted;
} fetch_ctx_t;

static void release_reads(fetch_ctx_t *ctx)
{
    for (int i = 0; i < ctx->nparts; i++)
        sp_partition_read_release(&ctx->parts[i].rr);
}

/* A read_committed read's aborted transactions (Kafka's
 * FetchDataInfo.abortedTransactions: those overlapping the range read;
 * empty when nothing is below the LSO; null after a failed read, whose
 * LogReadResult has none). */
static void set_aborted(fetch_ctx_t *ctx, fpart_t *p)
{
    sp_fetch_response_partition_data_t *po = p->out;
    if (!p->rr.has_aborted) {
        po->aborted_transactions.n = -1;
        return;
    }
    int n = p->rr.aborted.n;
    po->aborted_transactions.n = 0;
    po->aborted_transactions.v = n ? sp_fetch_response_aborted_transaction_alloc(&ctx->req->arena, n) : NULL;
    if (n && !po->aborted_transactions.v) {
        po->error_code = SP_ERR_UNKNOWN_SERVER_ERROR; /* arena limit */
        return;
    }
    for (int i = 0; i < n; i++) {
        po->aborted_transactions.v[i].producer_id = p->rr.aborted.v[i].producer_id;
        po->aborted_transactions.v[i].first_offset = p->rr.aborted.v[i].first_offset;
    }
    po->aborted_transactions.n = n;
}

/* Reads every partition; returns the bytes found. */
static int64_t read_all(fetch_ctx_t *ctx, bool *any_error)
{
    int64_t total = 0;
    release_reads(ctx);
    *any_error = false;
    for (int i = 0; i < ctx->nparts; i++) {
        fpart_t *p = &ctx->parts[i];
        if (!p->part) {
            *any_error = true;
            continue;
        }
        int64_t left = ctx->max_bytes - total;
        int32_t lim = p->max_bytes < left ? p->max_bytes : (int32_t)(left > 0 ? left : 0);
        sp_partition_read(p->part, p->offset, lim, total == 0 /* first batch whole */, ctx->isolation, &p->rr);
        p->out->error_code = p->rr.error;
        p->out->high_watermark = p->rr.hw;
        p->out->last_stable_offset = p->rr.lso;
        p->out->log_start_offset = p->rr.log_start;
        p->out->records.ptr = NULL;
        p->out->records.len = p->rr.data.seg ? p->rr.data.len : 0;
        if (!p->rr.data.seg)
            p->out->records.ptr = (const uint8_t *)""; /* empty, not null */
        if (ctx->isolation == SP_ISOLATION_TXN_COMMITTED)
            set_aborted(ctx, p);
        if (p->rr.error) {
            /* Kafka's LogReadResult of a failed read (an offset out of
             * range included) carries no offsets: all three are -1 */
            p->out->high_watermark = -1;
            p->out->last_stable_offset = -1;
            p->out->log_start_offset = -1;
            *any_error = true;
        }
        p->got = p->rr.data.seg ? p->rr.data.len : 0;
        total += p->got;
    }
    ctx->total = total;
    return total;
}

/* A wake: re-reads only the partitions whose hw moved, taken from the
 * moved stack, so the cost does not grow with the partitions a fetch names
 * (each read as if it were the first with data: this only counts bytes).
 * Returns the bytes of all the partitions' latest reads. */
static int64_t reread_moved(fetch_ctx_t *ctx, bool *any_error)
{
    *any_error = false;
    fpart_t *p = atomic_exchange(&ctx->moved, NULL);
    while (p) {
        fpart_t *next = p->next_moved;
        atomic_store(&p->moved, false); /* after reading next: a new push rewrites it */
        sp_partition_read_release(&p->rr);
        sp_partition_read(p->part, p->offset, p->max_bytes, true, ctx->isolation, &p->rr);
        int64_t got = p->rr.data.seg ? p->rr.data.len : 0;
        ctx->total += got - p->got;
        p->got = got;
        if (p->rr.error)
            *any_error = true;
        p = next;
    }
    return ctx->total;
}

static void timer_closed(uv_handle_t *h)
{
    fetch_ctx_t *ctx = h->data;
    sp_req_unref(ctx->req); /* the timer's reference */
}

/* Fetch v0-3: the clients read message sets of magic 0 (v0-1) or 1 (v2-3),
 * not record batches: each partition's bytes are read and converted
 * (proto/legacy.h) into the request's arena instead of being sent from
 * the file.  A partition whose bytes cannot be read or converted answers
 * CORRUPT_MESSAGE. */
static void down_convert(fetch_ctx_t *ctx)
{
    int magic = ctx->version < 2 ? 0 : 1;
    for (int i = 0; i < ctx->nparts; i++) {
        fpart_t *p = &ctx->parts[i];
        sp_read_result_t *d = &p->rr.data;
        if (!d->seg)
            continue;
        uint8_t *raw = malloc((size_t)d->len), *set = NULL;
        size_t n = 0;
        int rc = raw && pread(d->fd, raw, (size_t)d->len, d->pos) == d->len
                     ? sp_legacy_from_batches(raw, (size_t)d->len, magic, &set, &n) : -1;
        free(raw);
        uint8_t *copy = rc == 0 && n ? sp_arena_alloc(&ctx->req->arena, n) : NULL;
        if (copy)
            memcpy(copy, set, n);
        free(set);
        sp_partition_read_release(&p->rr); /* nothing left to send from the file */
        if (rc != 0 || (n && !copy)) {
            p->out->error_code = SP_ERR_CORRUPT_MESSAGE;
            n = 0;
        }
        p->out->records.ptr = copy ? copy : (const uint8_t *)"";
        p->out->records.len = (int32_t)n;
    }
}

static void complete(fetch_ctx_t *ctx)
{
    sp_req_t *req = ctx->req;
    if (ctx->done)
        return;
    ctx->done = true;
    req->cancel = NULL;
    if (ctx->parked)
        for (int i = 0; i < ctx->nparts; i++)
            if (ctx->parts[i].part)
                sp_partition_unwait(ctx->parts[i].part, &ctx->parts[i].w);
    if (ctx->timer_on) {
        uv_timer_stop(&ctx->timer);
        uv_close((uv_handle_t *)&ctx->timer, timer_closed);
        ctx->timer_on = false;
    }
    if (ctx->version < 4)
        down_convert(ctx);
    /* the record bytes go from the segment files to the socket */
    sp_file_range_t *ranges = sp_arena_alloc(&req->arena, sizeof(*ranges) * (size_t)(ctx->nparts ? ctx->nparts : 1));
    int nr = 0;
    for (int i = 0; ranges && i < ctx->nparts; i++) {
        sp_read_result_t *d = &ctx->parts[i].rr.data;
        if (!d->seg)
            continue;
        ranges[nr].fd = d->fd;
        ranges[nr].pos = d->pos;
        ranges[nr].len = d->len;
        ranges[nr].hold = d->seg;
        sp_segment_hold(d->seg); /* file open and pinned while the connection sends */
        nr++;
    }
    /* ctx lives in the request's arena: keep the request until we are done */
    sp_req_ref(req);
    if (ranges)
        sp_req_respond_files(req, &ctx->resp, ranges, nr, sp_segment_release);
    else
        sp_req_close(req, "out of memory for a Fetch response");
    release_reads(ctx);
    for (int i = 0; i < ctx->nparts; i++)
        if (ctx->parts[i].part)
            sp_partition_unref(ctx->parts[i].part);
    sp_req_unref(req);
}

static void on_wake_worker(sp_req_t *req, void *arg)
{
    fetch_ctx_t *ctx = arg;
    bool err;
    (void)req;
    atomic_store(&ctx->wake_posted, false);
    if (ctx->done)
        return;
    if (reread_moved(ctx, &err) >= ctx->min_bytes || err) {
        read_all(ctx, &err); /* the answer: every partition, in order, with the limits */
        complete(ctx);
    }
}

/* hw moved on one of our partitions: runs under that partition's lock. */
static void on_wake(sp_waiter_t *w, int err)
{
    fpart_t *p = (fpart_t *)w;
    (void)err;
    if (!atomic_exchange(&p->moved, true)) {
        fpart_t *head = atomic_load(&p->ctx->moved);
        do
            p->next_moved = head;
        while (!atomic_compare_exchange_weak(&p->ctx->moved, &head, p));
    }
    if (!atomic_exchange(&p->ctx->wake_posted, true))
        sp_req_post(p->ctx->req, on_wake_worker, p->ctx);
}

static void on_timer(uv_timer_t *t)
{
    fetch_ctx_t *ctx = t->data;
    bool err;
    if (ctx->done)
        return;
    read_all(ctx, &err);
    complete(ctx);
}

static void cancel(sp_req_t *req)
{
    complete(req->ctx);
}

/* One partition as the request names it; 'uniq' is its distinct entry. */
typedef struct occ {
    const sp_fetch_request_fetch_topic_t *ft;
    const sp_fetch_request_fetch_partition_t *fp;
    int32_t uniq;
} occ_t;

typedef struct occ_set {
    const occ_t *occ;
    int16_t version;
} occ_set_t;

/* The topic key: its id from v13 on (Kafka's TopicIdPartition), else its name. */
static bool same_topic(sp_str_t name, sp_uuid_t id, const sp_fetch_request_fetch_topic_t *ft,
                       int16_t v)
{
    return v >= 13 ? memcmp(id.b, ft->topic_id.b, 16) == 0 : sp_str_eq(name, ft->topic);
}

static bool occ_eq(const void *ctx, uint32_t a, uint32_t b)
{
    const occ_set_t *set = ctx;
    const occ_t *x = &set->occ[a], *y = &set->occ[b];
    return x->fp->partition == y->fp->partition &&
           same_topic(x->ft->topic, x->ft->topic_id, y->ft, set->version);
}

/*
 * Fills ctx->parts with one entry per distinct (topic, partition) of the
 * request, in order of first appearance, each with the parameters of its
 * last appearance (Kafka's LinkedHashMap.put), and allocates the response
 * arrays for them.  A hash set (util/hashset.h) keeps it O(n) whatever
 * the client sends.  Everything from the request's arena; worker thread.
 * Returns 0, or -1 when out of memory (arena limit).
 */
static int collect_partitions(fetch_ctx_t *ctx, const sp_fetch_request_t *body, int16_t v)
{
    sp_arena_t *a = &ctx->req->arena;
    int32_t nt = body->topics.n > 0 ? body->topics.n : 0;
    size_t total = 0;
    for (int32_t t = 0; t < nt; t++)
        total += body->topics.v[t].partitions.n > 0 ? (size_t)body->topics.v[t].partitions.n : 0;
    if (total == 0)
        return 0;
    size_t setmem = total <= UINT32_MAX ? sp_hashset_mem_size((uint32_t)total) : 0;
    occ_t *occ = sp_arena_alloc(a, sizeof(occ_t) * total);
    int32_t *first = sp_arena_alloc(a, sizeof(int32_t) * total);
    int32_t *last = sp_arena_alloc(a, sizeof(int32_t) * total);
    void *mem = setmem ? sp_arena_alloc(a, setmem) : NULL;
    if (!occ || !first || !last || !mem)
        return -1;
    occ_set_t set = { occ, v };
    sp_hashset_t hs;
    sp_hashset_init(&hs, mem, (uint32_t)total, occ_eq, &set);
    uint32_t k = 0;
    int32_t nu = 0;
    for (int32_t t = 0; t < nt; t++) {
        const sp_fetch_request_fetch_topic_t *ft = &body->topics.v[t];
        uint64_t th = v >= 13 ? sp_hash_bytes(ft->topic_id.b, 16)
                              : sp_hash_bytes(ft->topic.ptr, ft->topic.len > 0 ? (size_t)ft->topic.len : 0);
        for (int32_t p = 0; p < ft->partitions.n; p++, k++) {
            occ[k].ft = ft;
            occ[k].fp = &ft->partitions.v[p];
            int64_t seen = sp_hashset_add(&hs, k, sp_hash_mix(th, occ[k].fp->partition));
            if (seen < 0) {
                occ[k].uniq = nu;
                first[nu] = (int32_t)k;
                nu++;
            } else {
                occ[k].uniq = occ[seen].uniq;
            }
            last[occ[k].uniq] = (int32_t)k;
        }
    }
    ctx->parts = sp_arena_zalloc(a, sizeof(fpart_t) * (size_t)nu);
    ctx->part_out = sp_fetch_response_partition_data_alloc(a, nu);
    ctx->resp.responses.v = sp_fetch_response_fetchable_topic_response_alloc(a, nu);
    if (!ctx->parts || !ctx->part_out || !ctx->resp.responses.v)
        return -1;
    ctx->resp.responses.n = 0;
    for (int32_t u = 0; u < nu; u++) {
        ctx->parts[u].ft = occ[first[u]].ft;
        ctx->parts[u].fp = occ[last[u]].fp;
    }
    ctx->nparts = nu;
    if ((size_t)nu < total)
        sp_debug("api", "Fetch (correlation %d): %zu partitions named, %d distinct",
                 ctx->req->r.hdr.correlation_id, total, nu);
    return 0;
}

void sp_handle_fetch(sp_req_t *req)
{
    const sp_fetch_request_t *body = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    fetch_ctx_t *ctx = sp_arena_zalloc(&req->arena, sizeof(*ctx));
    if (!ctx) {
        sp_req_close(req, "out of memory for Fetch");
        return;
    }
    ctx->req = req;
    sp_fetch_response_init(&ctx->resp);
    ctx->min_bytes = body->min_bytes;
    ctx->isolation = body->isolation_level == 1 ? SP_ISOLATION_TXN_COMMITTED : SP_ISOLATION_HIGH_WATERMARK;
    ctx->version = v;
    ctx->max_bytes = v >= 3 ? body->max_bytes : INT32_MAX;
    if (ctx->max_bytes <= 0)
        ctx->max_bytes = 1;

    if (v >= 7 && (body->session_id != 0 || body->session_epoch > 0)) {
        ctx->resp.error_code = body->session_id != 0 ? SP_ERR_FETCH_SESSION_ID_NOT_FOUND
                                                     : SP_ERR_INVALID_FETCH_SESSION_EPOCH;
        ctx->resp.responses.n = 0;
        sp_req_respond(req, &ctx->resp);
        return;
    }

    /* One entry per distinct partition, as Kafka's LinkedHashMap keyed by
     * topic-partition: at the place of its first appearance, with the
     * parameters of its last (a later put replaces the value, not the
     * place).  Response topics group consecutive entries of one topic, as
     * Kafka's FetchResponse does. */
    if (collect_partitions(ctx, body, v) != 0) {
        sp_req_close(req, "out of memory for Fetch");
        return;
    }
    sp_image_t *img = sp_image_acquire(req->broker->images);
    const sp_topic_info_t *ti = NULL;
    sp_str_t name = SP_STR_NULL;
    sp_fetch_response_fetchable_topic_response_t *to = NULL;
    for (int i = 0; i < ctx->nparts; i++) {
        fpart_t *part = &ctx->parts[i];
        const sp_fetch_request_fetch_topic_t *ft = part->ft;
        const sp_fetch_request_fetch_partition_t *fp = part->fp;
        if (!to || !same_topic(to->topic, to->topic_id, ft, v)) {
            to = &ctx->resp.responses.v[ctx->resp.responses.n++];
            to->topic = ft->topic;
            to->topic_id = ft->topic_id;
            to->partitions.v = ctx->part_out + i; /* this topic's run starts here */
            to->partitions.n = 0;
            name = ft->topic;
            if (v >= 13) {
                ti = sp_image_topic_by_id(img, ft->topic_id);
                if (ti)
                    name = sp_str_c(sp_arena_strdup(&req->arena, ti->name, strlen(ti->name)));
            } else {
                ti = sp_image_topic(img, ft->topic.ptr, ft->topic.len);
            }
        }
        sp_fetch_response_partition_data_t *po = &to->partitions.v[to->partitions.n++];
        part->ctx = ctx;
        part->out = po;
        part->offset = fp->fetch_offset;
        part->max_bytes = fp->partition_max_bytes;
        part->w.wake = on_wake;
        po->partition_index = fp->partition;
        po->high_watermark = -1;
        po->last_stable_offset = -1;
        po->log_start_offset = -1;
        po->records = (sp_bytes_t){ (const uint8_t *)"", 0 };
        /* Kafka lists aborted transactions only to read_committed
         * fetches; to read_uncommitted ones the field is null.  A
         * partition Kafka refuses before it reads (KafkaApis: an unknown
         * topic or partition, zstd below v10) has the schema's empty list */
        po->aborted_transactions.n = body->isolation_level == 0 ? -1 : 0;
        if (!ti) {
            po->error_code = v >= 13 ? SP_ERR_UNKNOWN_TOPIC_ID : SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            po->aborted_transactions.n = 0;
            continue;
        }
        if (fp->current_leader_epoch > 0) { /* ours is 0 on a single node */
            po->error_code = SP_ERR_UNKNOWN_LEADER_EPOCH;
            continue;
        }
        part->part = sp_partitions_get(req->broker->partitions, name.ptr, name.len, fp->partition);
        if (!part->part) {
            po->error_code = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            po->aborted_transactions.n = 0;
            continue;
        }
        sp_log_config_t lc;
        sp_partition_config(part->part, &lc);
        if (v < 10 && lc.recompress && lc.codec == SP_COMPRESSION_ZSTD) {
            /* Kafka (KafkaApis.handleFetchRequest): a topic whose
             * compression.type is zstd is not served below v10, which
             * predates zstd; it looks at the setting, not the data */
            po->error_code = SP_ERR_UNSUPPORTED_COMPRESSION_TYPE;
            po->aborted_transactions.n = 0;
            sp_partition_unref(part->part);
            part->part = NULL;
        }
    }
    sp_image_release(img);

    bool err;
    int64_t got = read_all(ctx, &err);
    if (got >= ctx->min_bytes || err || body->max_wait_ms <= 0 || ctx->nparts == 0) {
        complete(ctx);
        return;
    }
    /* park: waiters first, then look again, so no append slips between */
    req->ctx = ctx;
    req->cancel = cancel;
    ctx->parked = true;
    for (int i = 0; i < ctx->nparts; i++)
        if (ctx->parts[i].part)
            sp_partition_wait_fetch(ctx->parts[i].part, &ctx->parts[i].w);
    if (ctx->done)
        return; /* a log went away while registering */
    got = read_all(ctx, &err);
    if (got >= ctx->min_bytes || err) {
        complete(ctx);
        return;
    }
    uv_timer_init(sp_req_loop(req), &ctx->timer);
    ctx->timer.data = ctx;
    sp_req_ref(req); /* until the timer handle is closed */
    ctx->timer_on = true;
    uv_timer_start(&ctx->timer, on_timer, (uint64_t)body->max_wait_ms, 0);
}
