/*
 * conn.c - one client connection: framing, dispatch, responses in order,
 * request memory, idle and stalled connections.
 *
 * State machine (worker thread only):
 *
 *                     frame complete (dispatch)
 *     +---------+ -----------------------------> +------+
 *     | READING |                                | BUSY |
 *     +---------+ <----------------------------- +------+
 *       |     ^     response fully written (req_finish)
 *       |     |
 *       |     | pool memory released and the reservation
 *       |     | granted (sp_conn_retry_muted)
 *       |     |
 *       | a frame larger than the standing buffer, and
 *       | the request memory pool refuses it (conn_mute)
 *       v     |
 *     +-------+
 *     | MUTED |
 *     +-------+
 *
 *   any -> CLOSING (conn_close): EOF, read or write error, bad frame, the
 *   handler closes, idle or stalled (sp_conn_sweep), shutdown.  uv_close
 *   -> on_closed unlinks it and counts it out of the quota; the memory
 *   (and its pool reservation) goes when the request in progress, if
 *   any, lets go (conn_unref).
 *
 * | transition          | function             | flags                   |
 * |---------------------|----------------------|-------------------------|
 * | READING -> BUSY     | dispatch             | busy                    |
 * | BUSY -> READING     | req_finish           | !busy                   |
 * | READING -> MUTED    | conn_process         | muted, on w->muted list |
 * | MUTED -> READING    | sp_conn_retry_muted  | !muted                  |
 * | any -> CLOSING      | conn_close           | closing                 |
 *
 * Reading is on (uv_read_start) only in READING.  Kafka's rule: one request
 * in progress per connection; the next frame is not parsed until the
 * previous response has been handed to the socket, so responses leave in
 * request order.  While a request waits (its response not yet written),
 * reading stops, so the frame bytes the request borrows never move.
 *
 * Timers: one sweep timer per worker (sp_conn_sweep), never one per
 * connection.  It skips BUSY connections (their request has its own
 * timers) and CLOSING ones (never touched again), and closes
 *   - READING with part of a frame buffered, socket.request.read.timeout.ms
 *     after the last byte received (stalled mid-request);
 *   - READING, connections.max.idle.ms after the last byte received or the
 *     last response written (idle);
 *   - MUTED, connections.max.idle.ms after it was muted (the client may be
 *     gone: we do not read, so we would never see its EOF).
 *
 * Input buffer layout:  in[0 .. in_off) consumed | in[in_off .. in_len) pending
 * Frames are decoded in place (zero copy); the buffer is compacted only
 * when no request borrows it.  Its size is SP_CONN_BASE_BYTES, or, for a
 * frame larger than that, exactly 4 + the frame's length, reserved from
 * the pool (c->reserved) before it grows; nothing past such a frame is
 * read into it, and it goes back to the pool (and the buffer is freed)
 * when that frame's request is finished.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "net/internal.h"
#include "proto/gen/response_header.h"
#include "util/log.h"

#define ARENA_BASE_LIMIT ((size_t)64 << 20)

struct sp_conn {
    uv_tcp_t tcp;
    sp_worker_t *w;
    int refs;                  /* the handle + the request in progress */
    sp_conn_t *prev, *next;    /* w->conns */
    sp_conn_t *mprev, *mnext;  /* w->muted_head.. while muted */
    uint64_t id;
    struct sockaddr_storage addr; /* the client's, as counted in the quota */
    uint8_t *in;
    size_t in_off, in_len, in_cap;
    size_t reserved;           /* pool bytes held for the buffer (0: standing buffer) */
    int32_t want;              /* announced length of the pending frame, -1 */
    bool busy, closing, reading, in_process, muted;
    uint64_t last_io;          /* loop time of the last byte in, response out, or unmute */
    sp_req_t *req;             /* request in progress */
    size_t req_frame;          /* 4 + length of that request's frame */
    char peer[64];
    char host[64];             /* "/<ip>", as Kafka names client hosts */
};

typedef struct write_req {
    uv_write_t w;
    uint8_t *buf;
} write_req_t;

static void conn_process(sp_conn_t *c);
static void conn_close(sp_conn_t *c, enum sp_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- lifecycle --------------------------------------------------------- */

/* Gives the buffer's pool reservation back and wakes muted connections. */
static void conn_release(sp_conn_t *c)
{
    if (!c->reserved)
        return;
    sp_mempool_release(&c->w->srv->pool, (int64_t)c->reserved);
    c->reserved = 0;
    sp_server_pool_released(c->w->srv);
}

static void conn_unref(sp_conn_t *c)
{
    if (--c->refs > 0)
        return;
    conn_release(c);
    free(c->in);
    free(c);
}

static void req_free(sp_req_t *req)
{
    sp_conn_t *c = req->conn;
    sp_arena_free(&req->arena);
    free(req);
    conn_unref(c);
}

void sp_req_ref(sp_req_t *req)
{
    atomic_fetch_add_explicit(&req->refs, 1, memory_order_relaxed);
}

void sp_req_unref(sp_req_t *req)
{
    if (atomic_fetch_sub_explicit(&req->refs, 1, memory_order_acq_rel) == 1)
        req_free(req);
}

const char *sp_req_client_host(sp_req_t *req)
{
    return ((sp_conn_t *)req->conn)->host;
}

uv_loop_t *sp_req_loop(sp_req_t *req)
{
    return &((sp_worker_t *)req->worker)->loop;
}

void sp_req_post(sp_req_t *req, void (*fn)(sp_req_t *req, void *arg), void *arg)
{
    sp_worker_t *w = req->worker;
    sp_post_t *p = malloc(sizeof(*p));
    if (!p) {
        sp_error("net", "out of memory posting to worker %d; request %d dropped", w->id,
                 req->r.hdr.correlation_id);
        return;
    }
    sp_req_ref(req);
    p->next = NULL;
    p->req = req;
    p->fn = fn;
    p->arg = arg;
    pthread_mutex_lock(&w->mu);
    if (w->posts_tail)
        w->posts_tail->next = p;
    else
        w->posts = p;
    w->posts_tail = p;
    bool stopped = w->stopped;
    pthread_mutex_unlock(&w->mu);
    if (!stopped)
        sp_wakeup_send(&w->wake);
}

void sp_worker_run_posts(sp_worker_t *w)
{
    for (;;) {
        pthread_mutex_lock(&w->mu);
        sp_post_t *p = w->posts;
        w->posts = w->posts_tail = NULL;
        pthread_mutex_unlock(&w->mu);
        if (!p)
            return;
        while (p) {
            sp_post_t *next = p->next;
            p->fn(p->req, p->arg);
            sp_req_unref(p->req);
            free(p);
            p = next;
        }
    }
}

static void on_closed(uv_handle_t *h)
{
    sp_conn_t *c = h->data;
    sp_worker_t *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    sp_server_conn_closed(w->srv, (struct sockaddr *)&c->addr);
    conn_unref(c);
}

static void muted_unlink(sp_conn_t *c)
{
    sp_worker_t *w = c->w;
    if (c->mprev)
        c->mprev->mnext = c->mnext;
    else
        w->muted_head = c->mnext;
    if (c->mnext)
        c->mnext->mprev = c->mprev;
    else
        w->muted_tail = c->mprev;
    c->mprev = c->mnext = NULL;
    c->muted = false;
    atomic_fetch_sub(&w->nmuted, 1);
}

static void conn_close(sp_conn_t *c, enum sp_log_level lvl, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    if (c->closing)
        return;
    c->closing = true;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    sp_log(lvl, "net", "closing connection %llu from %s: %s", (unsigned long long)c->id,
           c->peer, why);
    if (c->muted)
        muted_unlink(c); /* the pool never looks at it again */
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    if (c->req && !c->req->answered && c->req->cancel)
        c->req->cancel(c->req); /* a parked request lets go of its waits */
}

void sp_conn_close_all(sp_worker_t *w)
{
    for (sp_conn_t *c = w->conns; c; c = c->next)
        conn_close(c, SP_LOG_DEBUG, "broker shutting down");
}

void sp_conn_sweep(uv_timer_t *t)
{
    sp_worker_t *w = t->data;
    const sp_broker_t *b = w->srv->broker;
    uint64_t now = uv_now(&w->loop);
    /* conn_close leaves c in w->conns until on_closed: the walk is safe */
    for (sp_conn_t *c = w->conns; c; c = c->next) {
        if (c->closing || c->busy)
            continue;
        uint64_t quiet = now - c->last_io;
        if (c->muted) {
            if (b->conn_max_idle_ms >= 0 && quiet >= (uint64_t)b->conn_max_idle_ms)
                conn_close(c, SP_LOG_INFO, "waited %llu ms for request memory for a %d-byte "
                           "request (connections.max.idle.ms; queued.max.request.bytes is in use)",
                           (unsigned long long)quiet, c->want);
        } else if (c->in_len > c->in_off && b->read_timeout_ms >= 0 &&
                   quiet >= (uint64_t)b->read_timeout_ms) {
            conn_close(c, SP_LOG_INFO, "nothing received for %llu ms in the middle of a "
                       "request (%zu of %d bytes; socket.request.read.timeout.ms)",
                       (unsigned long long)quiet, c->in_len - c->in_off,
                       c->want >= 0 ? c->want + 4 : -1);
        } else if (b->conn_max_idle_ms >= 0 && quiet >= (uint64_t)b->conn_max_idle_ms) {
            conn_close(c, SP_LOG_DEBUG, "idle for %llu ms (connections.max.idle.ms)",
                       (unsigned long long)quiet);
        }
    }
}

/* The peer as "ip:port" for log lines, and its host as Kafka shows client
 * hosts ("/ip", InetAddress.toString), each formatted from the address
 * itself (no cutting at a ':' of an IPv6 text). */
static void describe_peer(const struct sockaddr_storage *ss, char *out, size_t cap, char *host_out,
                          size_t hcap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
    }
    snprintf(out, cap, ss->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
    snprintf(host_out, hcap, "/%s", host);
}

static void req_finish(sp_conn_t *c);

/* Closes the connection and gives up its request in progress. */
#define fail_req(c, ...) do { conn_close((c), __VA_ARGS__); req_finish(c); } while (0)

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

void sp_conn_adopt(sp_worker_t *w, const sp_accepted_t *a)
{
    int fd = a->fd;
    sp_conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        sp_error("net", "out of memory accepting a connection");
        close(fd);
        sp_server_conn_closed(w->srv, (const struct sockaddr *)&a->addr);
        return;
    }
    c->w = w;
    c->refs = 1;
    c->want = -1;
    c->addr = a->addr;
    c->last_io = uv_now(&w->loop);
    c->id = __atomic_add_fetch(&w->srv->next_conn_id, 1, __ATOMIC_RELAXED);
    describe_peer(&c->addr, c->peer, sizeof(c->peer), c->host, sizeof(c->host));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (uv_tcp_init(&w->loop, &c->tcp) != 0 || uv_tcp_open(&c->tcp, fd) != 0) {
        sp_error("net", "cannot adopt socket from %s", c->peer);
        close(fd);
        sp_server_conn_closed(w->srv, (const struct sockaddr *)&a->addr);
        free(c);
        return;
    }
    c->tcp.data = c;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    sp_debug("net", "connection %llu from %s on worker %d", (unsigned long long)c->id, c->peer, w->id);
    conn_process(c);
}

/* ---- reading ----------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    sp_conn_t *c = h->data;
    (void)hint;
    buf->base = NULL;
    buf->len = 0;
    /* no request borrows the buffer while we read: compact it */
    if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    /* the standing buffer, or one exactly the size of the reserved frame
     * (so nothing past that frame is read into pool memory) */
    size_t cap = c->reserved ? c->reserved : SP_CONN_BASE_BYTES;
    if (c->in_cap < cap) {
        uint8_t *n = realloc(c->in, cap);
        if (!n)
            return; /* libuv reports UV_ENOBUFS to on_read */
        c->in = n;
        c->in_cap = cap;
    }
    if (c->in_len >= cap)
        return; /* cannot happen (a whole frame is dispatched first); UV_ENOBUFS */
    buf->base = (char *)c->in + c->in_len;
    buf->len = cap - c->in_len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sp_conn_t *c = s->data;
    (void)buf;
    if (nread < 0) {
        if (nread == UV_EOF)
            conn_close(c, SP_LOG_DEBUG, "closed by peer");
        else if (nread == UV_ENOBUFS)
            conn_close(c, SP_LOG_ERROR, "out of memory for input");
        else
            conn_close(c, SP_LOG_INFO, "read error: %s", uv_strerror((int)nread));
        return;
    }
    c->in_len += (size_t)nread;
    if (nread > 0)
        c->last_io = uv_now(&c->w->loop);
    conn_process(c);
}

static void set_reading(sp_conn_t *c, bool on)
{
    if (c->closing || c->reading == on)
        return;
    if (on) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
            conn_close(c, SP_LOG_INFO, "cannot read");
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    c->reading = on;
}

/* ---- dispatch ---------------------------------------------------------- */

static void dispatch(sp_conn_t *c, const uint8_t *frame, size_t len)
{
    const sp_broker_t *b = c->w->srv->broker;
    sp_req_t *req = calloc(1, sizeof(*req));
    if (!req) {
        conn_close(c, SP_LOG_ERROR, "out of memory for a request");
        return;
    }
    sp_arena_init(&req->arena, ARENA_BASE_LIMIT + 8 * len);
    req->broker = b;
    req->conn = c;
    req->worker = c->w;
    atomic_init(&req->refs, 1); /* the connection's */
    c->refs++;                  /* the request's hold on the connection */
    c->req = req;
    c->busy = true;

    int rc = sp_request_parse(frame, len, &req->arena, &req->r, 0);
    int16_t key = req->r.hdr.request_api_key;
    int16_t ver = req->r.hdr.request_api_version;
    const sp_api_t *api = sp_api_find(key);
    if (rc == SP_REQ_MALFORMED && len < 8) {
        fail_req(c, SP_LOG_WARN, "frame of %zu bytes is too short for a request header", len);
        return;
    }
    if (!api) {
        fail_req(c, SP_LOG_WARN, "unknown or unimplemented API key %d (version %d, correlation %d)",
                   key, ver, req->r.hdr.correlation_id);
        return;
    }
    if (rc == SP_REQ_BAD_VERSION || ver < api->min_version || ver > api->max_version) {
        if (key == SP_API_API_VERSIONS) {
            sp_api_versions_error(req, SP_ERR_UNSUPPORTED_VERSION, 0);
            return;
        }
        fail_req(c, SP_LOG_WARN, "unsupported version %d of API key %d (supported %d-%d)", ver,
                   key, api->min_version, api->max_version);
        return;
    }
    if (rc != 0) {
        fail_req(c, SP_LOG_WARN, "malformed request header (API key %d version %d)", key, ver);
        return;
    }
    sp_reader_t r = sp_reader(req->r.body_ptr, req->r.body_len);
    req->r.body = sp_arena_alloc(&req->arena, req->r.desc->struct_size);
    if (req->r.body)
        req->r.desc->init(req->r.body);
    if (!req->r.body || req->r.desc->decode(&r, &req->arena, req->r.body, ver) != 0) {
        if (key == SP_API_API_VERSIONS) {
            sp_api_versions_error(req, SP_ERR_INVALID_REQUEST, ver);
            return;
        }
        fail_req(c, SP_LOG_WARN, "malformed %s v%d body (%zu bytes, correlation %d)",
                   req->r.desc->name, ver, req->r.body_len, req->r.hdr.correlation_id);
        return;
    }
    /* Bytes after a body that decodes are ignored, as Kafka's parser does
     * (AbstractRequest.parseRequest never looks at what is left): some
     * clients send a few (librdkafka 2.x's all-topics Metadata v12 carries
     * 3 extra, librdkafka issue #5049). */
    if (sp_reader_left(&r) != 0)
        sp_debug("net", "connection %llu: %zu bytes after the %s v%d body ignored (correlation %d)",
                 (unsigned long long)c->id, sp_reader_left(&r), req->r.desc->name, ver,
                 req->r.hdr.correlation_id);
    api->handle(req);
}

/* Reserves n bytes of the request memory pool for the buffer. */
static bool conn_reserve(sp_conn_t *c, size_t n)
{
    if (!sp_mempool_try_reserve(&c->w->srv->pool, (int64_t)n))
        return false;
    c->reserved = n;
    return true;
}

/*
 * READING -> MUTED: the pool cannot give the frame's size now.  Reading
 * stops; the connection waits at the end of its worker's muted list
 * until memory is released (sp_conn_retry_muted).  The reservation is
 * tried once more after joining the list: a release that happened in
 * between may not have seen us (it looks at nmuted after giving memory
 * back; we look at the pool after raising nmuted).
 */
static bool conn_mute(sp_conn_t *c)
{
    sp_worker_t *w = c->w;
    set_reading(c, false);
    c->muted = true;
    c->mnext = NULL;
    c->mprev = w->muted_tail;
    if (w->muted_tail)
        w->muted_tail->mnext = c;
    else
        w->muted_head = c;
    w->muted_tail = c;
    atomic_fetch_add(&w->nmuted, 1);
    c->last_io = uv_now(&w->loop);
    if (w->muted_head == c && conn_reserve(c, 4 + (size_t)c->want)) {
        muted_unlink(c);
        return false;
    }
    sp_debug("net", "connection %llu from %s: waiting for %zu bytes of request memory "
             "(queued.max.request.bytes %lld, %lld in use)", (unsigned long long)c->id, c->peer,
             4 + (size_t)c->want, (long long)w->srv->pool.size,
             (long long)sp_mempool_used(&w->srv->pool));
    return true;
}

void sp_conn_retry_muted(sp_worker_t *w)
{
    /* oldest first; stop at the first refusal so none is overtaken */
    while (w->muted_head) {
        sp_conn_t *c = w->muted_head;
        if (!conn_reserve(c, 4 + (size_t)c->want))
            break;
        muted_unlink(c); /* MUTED -> READING */
        c->last_io = uv_now(&w->loop);
        conn_process(c);
    }
}

static void conn_process(sp_conn_t *c)
{
    if (c->in_process)
        return; /* the outer call's loop picks up where we are */
    c->in_process = true;
    while (!c->busy && !c->closing && !c->muted) {
        int32_t flen;
        /* no buffer yet (nothing read: NULL + 0 is UB) */
        const uint8_t *at = c->in ? c->in + c->in_off : NULL;
        int rc = sp_frame_parse(at, c->in ? c->in_len - c->in_off : 0, c->w->srv->broker->max_request_bytes,
                                &flen);
        if (rc == SP_FRAME_BAD) {
            conn_close(c, SP_LOG_WARN, "frame length %d outside 0..%d (socket.request.max.bytes)",
                       flen, c->w->srv->broker->max_request_bytes);
            break;
        }
        if (rc == SP_FRAME_AGAIN) {
            c->want = flen;
            /* a frame larger than the standing buffer needs pool memory */
            if (flen >= 0 && 4 + (size_t)flen > SP_CONN_BASE_BYTES && !c->reserved &&
                !conn_reserve(c, 4 + (size_t)flen) && conn_mute(c))
                break;
            set_reading(c, true);
            break;
        }
        c->want = -1;
        c->req_frame = 4 + (size_t)flen;
        dispatch(c, c->in + c->in_off + 4, (size_t)flen);
        if (c->busy && !c->closing)
            set_reading(c, false); /* the request borrows the buffer */
    }
    c->in_process = false;
}

/* ---- responses --------------------------------------------------------- */

static void req_finish(sp_conn_t *c)
{
    if (c->req) {
        sp_req_t *req = c->req;
        c->req = NULL;
        req->answered = true;
        sp_req_unref(req);
    }
    c->in_off += c->req_frame;
    c->req_frame = 0;
    c->busy = false;
    c->last_io = uv_now(&c->w->loop);
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    /* a reserved frame fills its buffer exactly: nobody borrows it now
     * (unless closing, when a parked request may still hold the frame:
     * conn_unref frees it) */
    if (c->reserved && !c->closing && c->in_len == 0) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
        conn_release(c);
    }
}

static void on_written(uv_write_t *w, int status)
{
    write_req_t *wr = (write_req_t *)w;
    sp_conn_t *c = w->handle->data;
    free(wr->buf);
    free(wr);
    if (c->closing) {
        req_finish(c);
        return;
    }
    if (status < 0) {
        fail_req(c, SP_LOG_INFO, "write error: %s", uv_strerror(status));
        return;
    }
    req_finish(c);
    conn_process(c);
}

/* Takes ownership of buf. */
static void conn_send(sp_conn_t *c, uint8_t *buf, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)len) {
        free(buf);
        req_finish(c);
        conn_process(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        free(buf);
        fail_req(c, SP_LOG_INFO, "write error: %s", uv_strerror(n));
        return;
    }
    if (n < 0)
        n = 0;
    write_req_t *wr = malloc(sizeof(*wr));
    if (!wr) {
        free(buf);
        fail_req(c, SP_LOG_ERROR, "out of memory for a response");
        return;
    }
    wr->buf = buf;
    b = uv_buf_init((char *)buf + n, (unsigned)(len - (size_t)n));
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(buf);
        free(wr);
        fail_req(c, SP_LOG_INFO, "write failed");
    }
}

typedef struct ranges {
    sp_file_range_t *v;
    int n, next;
} ranges_t;

/* Writer fill callback: notes where each file range goes, reads nothing. */
static int place_range(void *ctx, uint8_t *dst, size_t len)
{
    ranges_t *r = ctx;
    if (r->next >= r->n || (size_t)r->v[r->next].len != len)
        return -1;
    r->v[r->next++].dst = dst;
    return 0;
}

/*
 * A response being sent with file ranges, resumable across socket-full
 * waits.  Memory parts go with write(2), ranges with sendfile(2), on the
 * non-blocking socket; when the socket is full, the next piece (memory as
 * it is, or up to SEND_CHUNK bytes of the range read into its place in the
 * buffer) goes through uv_write, whose completion says the socket has
 * room again, and sending resumes from there.
 *
 *   buf[0 .. at) sent | k: current range, 'done' bytes of it sent
 */
#define SEND_CHUNK (256 * 1024)

typedef struct out {
    uv_write_t w;
    sp_conn_t *c;
    uint8_t *buf;
    size_t len, at;
    sp_file_range_t *v;          /* copies; holds released with 'release' */
    int n, k;
    size_t done;
    void (*release)(void *hold);
} out_t;

static void out_free(out_t *o)
{
    for (int i = 0; i < o->n; i++)
        if (o->release && o->v[i].hold)
            o->release(o->v[i].hold);
    free(o->v);
    free(o->buf);
    free(o);
}

static void out_resume(out_t *o);

static void on_out_written(uv_write_t *w, int status)
{
    out_t *o = (out_t *)w;
    sp_conn_t *c = o->c;
    if (c->closing || status < 0) {
        out_free(o);
        if (!c->closing)
            fail_req(c, SP_LOG_INFO, "write error: %s", uv_strerror(status));
        else
            req_finish(c);
        return;
    }
    out_resume(o);
}

/* Hands buf[at, at + n) to libuv and waits for it (the socket is full). */
static void out_wait(out_t *o, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)o->buf + o->at, (unsigned)n);
    o->at += n;
    if (uv_write(&o->w, (uv_stream_t *)&o->c->tcp, &b, 1, on_out_written) != 0) {
        sp_conn_t *c = o->c;
        out_free(o);
        fail_req(c, SP_LOG_INFO, "write failed");
    }
}

static void out_resume(out_t *o)
{
    sp_conn_t *c = o->c;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) {
        out_free(o);
        fail_req(c, SP_LOG_INFO, "socket gone");
        return;
    }
    for (;;) {
        size_t mem_end = o->k < o->n ? (size_t)(o->v[o->k].dst - o->buf) : o->len;
        while (o->at < mem_end) {
            ssize_t w = write(fd, o->buf + o->at, mem_end - o->at);
            if (w > 0) {
                o->at += (size_t)w;
            } else if (w < 0 && errno == EINTR) {
                continue;
            } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                out_wait(o, mem_end - o->at);
                return;
            } else {
                out_free(o);
                fail_req(c, SP_LOG_INFO, "write error: %s", strerror(errno));
                return;
            }
        }
        if (o->k == o->n)
            break;
        sp_file_range_t *fr = &o->v[o->k];
        while (o->done < (size_t)fr->len) {
            off_t off = (off_t)(fr->pos + (int64_t)o->done);
            ssize_t s = sendfile(fd, fr->fd, &off, (size_t)fr->len - o->done);
            if (s > 0) {
                o->done += (size_t)s;
                o->at += (size_t)s;
            } else if (s < 0 && errno == EINTR) {
                continue;
            } else if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                /* one chunk by copy, as the signal that there is room again */
                size_t n = (size_t)fr->len - o->done;
                if (n > SEND_CHUNK)
                    n = SEND_CHUNK;
                size_t got = 0;
                while (got < n) {
                    ssize_t r = pread(fr->fd, fr->dst + o->done + got, n - got,
                                      (off_t)(fr->pos + (int64_t)(o->done + got)));
                    if (r < 0 && errno == EINTR)
                        continue;
                    if (r <= 0) {
                        out_free(o);
                        fail_req(c, SP_LOG_ERROR, "cannot read a segment for a response");
                        return;
                    }
                    got += (size_t)r;
                }
                o->done += n;
                sp_debug("net", "connection %llu: socket full after %zu of %zu response bytes; "
                         "%zu copied while waiting", (unsigned long long)c->id, o->at, o->len, n);
                out_wait(o, n);
                return;
            } else {
                out_free(o);
                fail_req(c, SP_LOG_INFO, "sendfile error: %s", s < 0 ? strerror(errno) : "short file");
                return;
            }
        }
        o->k++;
        o->done = 0;
    }
    out_free(o);
    req_finish(c);
    conn_process(c);
}

/* Takes ownership of buf; copies the ranges (and their holds). */
static void conn_send_ranges(sp_conn_t *c, uint8_t *buf, size_t len, ranges_t *r,
                             void (*release)(void *hold))
{
    out_t *o = calloc(1, sizeof(*o));
    sp_file_range_t *v = o ? malloc(sizeof(*v) * (size_t)r->n) : NULL;
    if (!o || !v) {
        free(o);
        free(buf);
        for (int i = 0; i < r->n; i++)
            if (release && r->v[i].hold)
                release(r->v[i].hold);
        fail_req(c, SP_LOG_ERROR, "out of memory for a response");
        return;
    }
    memcpy(v, r->v, sizeof(*v) * (size_t)r->n);
    o->c = c;
    o->buf = buf;
    o->len = len;
    o->v = v;
    o->n = r->n;
    o->release = release;
    out_resume(o);
}

static void respond(sp_req_t *req, const void *resp, int16_t version, ranges_t *ranges,
                    void (*release)(void *hold))
{
    sp_conn_t *c = req->conn;
    int16_t key = req->r.hdr.request_api_key;
    const sp_msg_desc_t *d = sp_msg_response_desc(key);
    int16_t hv = sp_response_header_version(key, version);
    sp_response_header_t h;

    if (req->answered || c->req != req || c->closing) {
        for (int i = 0; ranges && release && i < ranges->n; i++)
            if (ranges->v[i].hold)
                release(ranges->v[i].hold);
        if (!req->answered && c->req == req)
            req_finish(c);
        return;
    }
    if (req->arena.failed) {
        /* a handler ran out of its arena (request.c: the per-request limit)
         * and may have left parts of the response empty: never send a
         * silently truncated answer */
        for (int i = 0; ranges && release && i < ranges->n; i++)
            if (ranges->v[i].hold)
                release(ranges->v[i].hold);
        fail_req(c, SP_LOG_ERROR, "out of memory (request arena limit) building the %s v%d response",
                 d->name, version);
        return;
    }
    sp_response_header_init(&h);
    h.correlation_id = req->r.hdr.correlation_id;
    size_t total = sp_response_header_size(&h, hv) + d->size(resp, version);
    if (total > INT32_MAX) {
        fail_req(c, SP_LOG_ERROR, "%s response of %zu bytes is too large", d->name, total);
        return;
    }
    uint8_t *buf = malloc(4 + total);
    if (!buf) {
        fail_req(c, SP_LOG_ERROR, "out of memory for a %zu-byte response", total);
        return;
    }
    sp_writer_t w = sp_writer(buf, 4 + total);
    if (ranges) {
        w.fill = place_range;
        w.fill_ctx = ranges;
    }
    sp_write_i32(&w, (int32_t)total);
    sp_response_header_encode(&w, &h, hv);
    d->encode(&w, resp, version);
    if (w.err || sp_writer_len(&w) != 4 + total || (ranges && ranges->next != ranges->n)) {
        free(buf);
        fail_req(c, SP_LOG_ERROR, "internal error encoding %s v%d", d->name, version);
        return;
    }
    if (ranges && ranges->n)
        conn_send_ranges(c, buf, 4 + total, ranges, release);
    else
        conn_send(c, buf, 4 + total);
}

void sp_req_respond_at(sp_req_t *req, const void *resp, int16_t version)
{
    respond(req, resp, version, NULL, NULL);
}

void sp_req_respond(sp_req_t *req, const void *resp)
{
    respond(req, resp, req->r.hdr.request_api_version, NULL, NULL);
}

void sp_req_respond_files(sp_req_t *req, const void *resp, sp_file_range_t *v, int n,
                          void (*release)(void *hold))
{
    ranges_t r = { v, n, 0 };
    respond(req, resp, req->r.hdr.request_api_version, &r, release);
}

void sp_req_close(sp_req_t *req, const char *why)
{
    sp_conn_t *c = req->conn;
    if (req->answered || c->req != req)
        return;
    conn_close(c, SP_LOG_WARN, "%s", why);
    req_finish(c);
}

void sp_req_no_response(sp_req_t *req)
{
    sp_conn_t *c = req->conn;
    if (req->answered || c->req != req)
        return;
    req_finish(c);
    if (!c->closing)
        conn_process(c);
}
