/*
 * internal.h - structures shared by server.c and conn.c only.
 */
#ifndef SP_NET_INTERNAL_H
#define SP_NET_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "broker/api.h"
#include "net/mempool.h"
#include "net/quota.h"
#include "net/server.h"
#include "util/wakeup.h"

typedef struct sp_conn sp_conn_t;

/* A connection's standing input buffer.  Frames that fit in it are read
 * without the request memory pool; a larger frame reserves its size from
 * the pool first (mempool.h) and gets a buffer of exactly its size. */
#define SP_CONN_BASE_BYTES (64 * 1024)

/* An accepted socket on its way to a worker, with the client's address
 * (the connection counts it out of the quota under that address). */
typedef struct sp_accepted {
    int fd;
    struct sockaddr_storage addr;
} sp_accepted_t;

typedef struct sp_worker {
    struct sp_server *srv;
    int id;
    uv_loop_t loop;
    sp_wakeup_t wake;          /* new sockets, posts, pool memory released, or stop */
    uv_timer_t sweep;          /* idle and stalled connections (conn.c: sp_conn_sweep) */
    bool sweep_on;
    uv_thread_t thread;
    pthread_mutex_t mu;        /* guards fds/nfds/stop */
    sp_accepted_t *fds;
    int nfds, capfds;
    struct sp_post *posts;     /* sp_req_post queue (FIFO) */
    struct sp_post *posts_tail;
    bool stop;
    bool stopped;              /* loop gone: posts are run by sp_server_stop */
    sp_conn_t *conns;          /* live connections (worker thread only) */
    int nconns;
    /* Connections waiting for pool memory, oldest first (worker thread
     * only); nmuted is read by other threads to decide whom to wake. */
    sp_conn_t *muted_head, *muted_tail;
    atomic_int nmuted;
} sp_worker_t;

/* Why the listener is not polled (a bit each; polled when none is set). */
#define SP_LISTEN_PAUSE_FDS 1u   /* out of file descriptors: backoff timer */
#define SP_LISTEN_PAUSE_MAX 2u   /* max.connections reached */

struct sp_server {
    const sp_broker_t *broker;
    uv_loop_t *main_loop;
    uv_poll_t listen_poll;
    int listen_fd;
    bool listening;            /* listen_poll initialised (and not closed) */
    unsigned paused;           /* SP_LISTEN_PAUSE_* (main thread) */
    atomic_bool max_paused;    /* SP_LISTEN_PAUSE_MAX, for the workers */
    sp_wakeup_t main_wake;     /* a worker closed a connection while max_paused */
    bool main_wake_on;
    uv_timer_t backoff;        /* retries accepting after EMFILE/ENFILE */
    bool backoff_on;
    uint64_t backoff_ms;
    int reserve_fd;            /* /dev/null, given up to shed a connection at EMFILE */
    /* log rate limits (main thread): refusals counted, reported at most
     * once per SP_REFUSE_REPORT_MS */
    uint64_t fd_refused, fd_report_at;
    bool fd_refusing;
    uint64_t ip_refused, ip_report_at;
    bool ip_refusing;
    int nworkers;
    sp_worker_t *workers;
    unsigned next_worker;
    uint64_t next_conn_id;
    sp_quota_t *quota;         /* connection counts and limits (any thread) */
    sp_mempool_t pool;         /* queued.max.request.bytes (any thread) */
};

typedef struct sp_post {
    struct sp_post *next;
    sp_req_t *req;
    void (*fn)(sp_req_t *req, void *arg);
    void *arg;
} sp_post_t;

/* conn.c: runs queued posts (worker thread, or main after the join). */
void sp_worker_run_posts(sp_worker_t *w);

/* conn.c: adopt an accepted socket on worker w (worker thread).  The
 * connection is already counted in the quota under a->addr. */
void sp_conn_adopt(sp_worker_t *w, const sp_accepted_t *a);
/* conn.c: close every connection of w (worker thread, at shutdown). */
void sp_conn_close_all(sp_worker_t *w);
/* conn.c: the sweep timer: closes idle and stalled connections. */
void sp_conn_sweep(uv_timer_t *t);
/* conn.c: muted connections of w try the pool again (worker thread). */
void sp_conn_retry_muted(sp_worker_t *w);
/* server.c: a connection from addr is gone (its socket closed): counts it
 * out and lets the listener accept again if max.connections held it.
 * Any thread. */
void sp_server_conn_closed(struct sp_server *s, const struct sockaddr *addr);
/* server.c: pool memory was released: wakes the workers that have muted
 * connections.  Any thread. */
void sp_server_pool_released(struct sp_server *s);

#endif
