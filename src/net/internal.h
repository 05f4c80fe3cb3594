/*
 * internal.h - structures shared by server.c and conn.c only.
 */
#ifndef SP_NET_INTERNAL_H
#define SP_NET_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "broker/api.h"
#include "net/server.h"
#include "util/wakeup.h"

typedef struct sp_conn sp_conn_t;

typedef struct sp_worker {
    struct sp_server *srv;
    int id;
    uv_loop_t loop;
    sp_wakeup_t wake;          /* new sockets or posts queued, or stop */
    uv_thread_t thread;
    pthread_mutex_t mu;        /* guards fds/nfds/stop */
    int *fds;
    int nfds, capfds;
    struct sp_post *posts;     /* sp_req_post queue (FIFO) */
    struct sp_post *posts_tail;
    bool stop;
    bool stopped;              /* loop gone: posts are run by sp_server_stop */
    sp_conn_t *conns;          /* live connections (worker thread only) */
    int nconns;
} sp_worker_t;

struct sp_server {
    const sp_broker_t *broker;
    uv_loop_t *main_loop;
    uv_poll_t listen_poll;
    int listen_fd;
    bool listening;
    int nworkers;
    sp_worker_t *workers;
    unsigned next_worker;
    uint64_t next_conn_id;
};

typedef struct sp_post {
    struct sp_post *next;
    sp_req_t *req;
    void (*fn)(sp_req_t *req, void *arg);
    void *arg;
} sp_post_t;

/* conn.c: runs queued posts (worker thread, or main after the join). */
void sp_worker_run_posts(sp_worker_t *w);

/* conn.c: adopt an accepted socket on worker w (worker thread). */
void sp_conn_adopt(sp_worker_t *w, int fd);
/* conn.c: close every connection of w (worker thread, at shutdown). */
void sp_conn_close_all(sp_worker_t *w);

#endif
