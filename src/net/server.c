/* server.c - listeners and I/O workers (see server.h). */
#include "net/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/internal.h"
#include "util/log.h"

/* Refused connections are logged at most once per this many ms. */
#define SP_REFUSE_REPORT_MS 10000
/* Listener backoff after EMFILE/ENFILE when no descriptor can be freed. */
#define SP_BACKOFF_MIN_MS 100
#define SP_BACKOFF_MAX_MS 1000

sp_server_t *sp_server_new(const sp_broker_t *broker)
{
    sp_server_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->broker = broker;
    s->listen_fd = -1;
    s->reserve_fd = -1;
    s->main_wake.fd = -1;
    atomic_init(&s->max_paused, false);
    return s;
}

/* ---- workers ----------------------------------------------------------- */

static void on_wake(sp_wakeup_t *a)
{
    sp_worker_t *w = a->data;
    sp_accepted_t fds[64];
    int n;
    bool stop;
    do {
        pthread_mutex_lock(&w->mu);
        n = w->nfds < 64 ? w->nfds : 64;
        if (n > 0) {
            memcpy(fds, w->fds, sizeof(fds[0]) * (size_t)n);
            memmove(w->fds, w->fds + n, sizeof(fds[0]) * (size_t)(w->nfds - n));
            w->nfds -= n;
        }
        stop = w->stop;
        pthread_mutex_unlock(&w->mu);
        for (int i = 0; i < n; i++) {
            if (stop) {
                close(fds[i].fd);
                sp_server_conn_closed(w->srv, (struct sockaddr *)&fds[i].addr);
            } else {
                sp_conn_adopt(w, &fds[i]);
            }
        }
    } while (n == 64);
    sp_worker_run_posts(w);
    if (!stop)
        sp_conn_retry_muted(w);
    if (stop) {
        sp_conn_close_all(w);
        sp_worker_run_posts(w);
        if (w->sweep_on) {
            uv_timer_stop(&w->sweep);
            uv_close((uv_handle_t *)&w->sweep, NULL);
            w->sweep_on = false;
        }
        sp_wakeup_close(&w->wake);
    }
}

static void worker_main(void *arg)
{
    sp_worker_t *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "spool-io-%d", w->id);
    pthread_setname_np(pthread_self(), name); /* for top -H and perf */
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

/* Queues an accepted socket for the next worker, round-robin.  Main thread. */
static void hand_off(sp_server_t *s, int fd, const struct sockaddr_storage *addr)
{
    sp_worker_t *w = &s->workers[s->next_worker++ % (unsigned)s->nworkers];
    pthread_mutex_lock(&w->mu);
    if (w->nfds == w->capfds) {
        int cap = w->capfds ? w->capfds * 2 : 64;
        sp_accepted_t *n = realloc(w->fds, sizeof(*n) * (size_t)cap);
        if (!n) {
            pthread_mutex_unlock(&w->mu);
            sp_error("net", "out of memory queueing a connection");
            close(fd);
            sp_server_conn_closed(s, (const struct sockaddr *)addr);
            return;
        }
        w->fds = n;
        w->capfds = cap;
    }
    w->fds[w->nfds].fd = fd;
    w->fds[w->nfds].addr = *addr;
    w->nfds++;
    pthread_mutex_unlock(&w->mu);
    sp_wakeup_send(&w->wake);
}

/* Wakes the workers that have connections waiting for pool memory. */
void sp_server_pool_released(sp_server_t *s)
{
    for (int i = 0; i < s->nworkers; i++)
        if (atomic_load(&s->workers[i].nmuted) > 0)
            sp_wakeup_send(&s->workers[i].wake);
}

/* ---- listener ---------------------------------------------------------- */
/*
 * The listener is polled unless something pauses it (s->paused):
 *
 *   SP_LISTEN_PAUSE_MAX  max.connections are open.  Kafka's acceptor waits
 *                        for a slot (ConnectionQuotas.waitForConnectionSlot)
 *                        and new clients wait in the listen backlog; so do
 *                        we: the listener is not polled until a worker
 *                        closes a connection (sp_server_conn_closed wakes
 *                        the main loop: on_main_wake).
 *   SP_LISTEN_PAUSE_FDS  accept failed with EMFILE/ENFILE and no descriptor
 *                        could be freed: retried by a backoff timer.
 *
 * At EMFILE/ENFILE the listener stays readable, and retrying at once
 * would spin.  A reserve descriptor (/dev/null, opened at start) is given
 * up to accept the pending connection and close it at once, then taken
 * again; the client sees its connection closed instead of hanging, and
 * the backlog drains.  Refusals are logged at most once per
 * SP_REFUSE_REPORT_MS, with their count.
 */

static void on_listen_ready(uv_poll_t *p, int status, int events);

static void listen_update(sp_server_t *s)
{
    if (!s->listening)
        return;
    if (s->paused)
        uv_poll_stop(&s->listen_poll);
    else
        uv_poll_start(&s->listen_poll, UV_READABLE, on_listen_ready);
}

static void listen_pause(sp_server_t *s, unsigned why)
{
    s->paused |= why;
    listen_update(s);
}

static void listen_resume(sp_server_t *s, unsigned why)
{
    unsigned was = s->paused;
    s->paused &= ~why;
    if (was && !s->paused)
        listen_update(s);
}

/* Pauses for max.connections unless a connection closed meanwhile.  The
 * flag is set before the total is looked at again, and a worker lowers
 * the total before it looks at the flag, so one of us sees the other. */
static void pause_for_max(sp_server_t *s)
{
    atomic_store(&s->max_paused, true);
    listen_pause(s, SP_LISTEN_PAUSE_MAX);
    if (!sp_quota_full(s->quota)) {
        atomic_store(&s->max_paused, false);
        listen_resume(s, SP_LISTEN_PAUSE_MAX);
    }
}

static void on_main_wake(sp_wakeup_t *a)
{
    sp_server_t *s = a->data;
    if ((s->paused & SP_LISTEN_PAUSE_MAX) && !sp_quota_full(s->quota)) {
        atomic_store(&s->max_paused, false);
        listen_resume(s, SP_LISTEN_PAUSE_MAX);
        if (sp_quota_full(s->quota)) /* filled again meanwhile? */
            pause_for_max(s);
    }
}

void sp_server_conn_closed(sp_server_t *s, const struct sockaddr *addr)
{
    sp_quota_dec(s->quota, addr);
    if (atomic_load(&s->max_paused))
        sp_wakeup_send(&s->main_wake);
}

static void fd_refused(sp_server_t *s, int err)
{
    uint64_t now = uv_now(s->main_loop);
    s->fd_refused++;
    if (!s->fd_refusing || now - s->fd_report_at >= SP_REFUSE_REPORT_MS) {
        sp_warn("net", "accept: %s; closing new connections at once (%llu refused%s)",
                strerror(err), (unsigned long long)s->fd_refused,
                s->fd_refusing ? " in the last 10 s" : "");
        s->fd_report_at = now;
        s->fd_refused = 0;
    }
    s->fd_refusing = true;
}

static void on_backoff(uv_timer_t *t)
{
    sp_server_t *s = t->data;
    if (s->reserve_fd < 0)
        s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    listen_resume(s, SP_LISTEN_PAUSE_FDS); /* accept again; pauses again if need be */
}

/* No descriptor to spare: stop polling the listener for a while. */
static void backoff(sp_server_t *s)
{
    if (!s->backoff_on)
        return;
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : SP_BACKOFF_MIN_MS;
    if (s->backoff_ms > SP_BACKOFF_MAX_MS)
        s->backoff_ms = SP_BACKOFF_MAX_MS;
    listen_pause(s, SP_LISTEN_PAUSE_FDS);
    uv_timer_start(&s->backoff, on_backoff, s->backoff_ms, 0);
}

/*
 * accept(2) failed with EMFILE or ENFILE: frees the reserve descriptor,
 * accepts the pending connection into it and closes that, takes the
 * reserve again.  Returns true when the listener may be polled on (a
 * connection was shed, or none was pending), false when it must back off.
 */
static bool shed_one(sp_server_t *s, int err)
{
    if (s->reserve_fd < 0)
        return false;
    close(s->reserve_fd);
    s->reserve_fd = -1;
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    int aerr = errno;
    if (fd >= 0) {
        close(fd);
        fd_refused(s, err);
    }
    s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (s->reserve_fd < 0)
        return false; /* another thread took the slot: back off */
    return fd >= 0 || aerr == EAGAIN || aerr == EWOULDBLOCK || aerr == ECONNABORTED ||
           aerr == EINTR;
}

static void describe_addr(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof(host));
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host, sizeof(host));
    snprintf(out, cap, "/%s", host);
}

/* A new connection: per-address limit, then to a worker.  Main thread. */
static void accepted(sp_server_t *s, int fd, const struct sockaddr_storage *ss)
{
    int32_t limit;
    if (s->fd_refusing) {
        sp_info("net", "accepting connections again (%llu more refused for lack of file "
                "descriptors)", (unsigned long long)s->fd_refused);
        s->fd_refusing = false;
        s->fd_refused = 0;
    }
    s->backoff_ms = 0;
    if (sp_quota_inc(s->quota, (const struct sockaddr *)ss, &limit) != 0) {
        /* Kafka: "Rejected connection from ..., address already has the
         * configured maximum of N connections" (INFO), and closes it */
        uint64_t now = uv_now(s->main_loop);
        s->ip_refused++;
        if (!s->ip_refusing || now - s->ip_report_at >= SP_REFUSE_REPORT_MS) {
            char host[INET6_ADDRSTRLEN + 2];
            describe_addr(ss, host, sizeof(host));
            sp_info("net", "rejected connection from %s: address already has the configured "
                    "maximum of %d connections (max.connections.per.ip; %llu rejected in the "
                    "last 10 s)", host, limit, (unsigned long long)s->ip_refused);
            s->ip_report_at = now;
            s->ip_refused = 0;
            s->ip_refusing = true;
        }
        close(fd); /* after the log line: a client that sees the close finds it */
        return;
    }
    hand_off(s, fd, ss);
}

static void on_listen_ready(uv_poll_t *p, int status, int events)
{
    sp_server_t *s = p->data;
    (void)events;
    if (status < 0) {
        sp_error("net", "listener error: %s", uv_strerror(status));
        return;
    }
    for (int i = 0; i < 64; i++) {
        if (sp_quota_full(s->quota)) {
            pause_for_max(s);
            if (s->paused)
                return;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        memset(&ss, 0, sizeof(ss));
        int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return;
            if (err == EINTR || err == ECONNABORTED)
                continue;
            if (err == EMFILE || err == ENFILE) {
                if (shed_one(s, err))
                    continue;
                backoff(s);
                return;
            }
            /* ENOBUFS, ENOMEM, ...: the same rate-limited report, and wait */
            fd_refused(s, err);
            backoff(s);
            return;
        }
        accepted(s, fd, &ss);
    }
}

static int bind_listener(sp_server_t *s)
{
    const sp_broker_t *b = s->broker;
    struct addrinfo hints, *res = NULL, *ai;
    char port[16];
    int fd = -1, err;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%d", b->bind_port);
    err = getaddrinfo(b->bind_host[0] ? b->bind_host : NULL, port, &hints, &res);
    if (err != 0) {
        sp_error("net", "cannot resolve listener host '%s': %s", b->bind_host, gai_strerror(err));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
        errno = err;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        sp_error("net", "cannot listen on %s:%d: %s", b->bind_host, b->bind_port, strerror(errno));
        return -1;
    }
    s->listen_fd = fd;
    return 0;
}

/* How often a worker looks for idle and stalled connections: a quarter
 * of the shorter timeout, between 10 ms and 1 s; 0 when neither is on. */
static uint64_t sweep_interval(const sp_broker_t *b)
{
    int64_t t = -1;
    if (b->conn_max_idle_ms >= 0)
        t = b->conn_max_idle_ms;
    if (b->read_timeout_ms >= 0 && (t < 0 || b->read_timeout_ms < t))
        t = b->read_timeout_ms;
    if (t < 0)
        return 0;
    t /= 4;
    return t < 10 ? 10 : t > 1000 ? 1000 : (uint64_t)t;
}

int sp_server_start(sp_server_t *s, uv_loop_t *main_loop)
{
    const sp_broker_t *b = s->broker;
    char err[512];
    s->main_loop = main_loop;
    s->quota = sp_quota_new(b->max_connections, b->max_conn_per_ip, b->max_conn_per_ip_overrides,
                            err, sizeof(err));
    if (!s->quota) {
        sp_error("config", "%s", err);
        return -1;
    }
    sp_mempool_init(&s->pool, b->queued_max_bytes);
    if (bind_listener(s) != 0)
        return -1;
    s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (s->reserve_fd < 0)
        sp_warn("net", "cannot open /dev/null for a reserve descriptor: %s", strerror(errno));
    if (sp_wakeup_init(main_loop, &s->main_wake, on_main_wake) != 0) {
        sp_error("net", "cannot create the listener's wakeup");
        return -1;
    }
    s->main_wake.data = s;
    s->main_wake_on = true;
    uv_timer_init(main_loop, &s->backoff);
    s->backoff.data = s;
    s->backoff_on = true;
    s->nworkers = b->io_threads > 0 ? b->io_threads : 1;
    s->workers = calloc((size_t)s->nworkers, sizeof(sp_worker_t));
    if (!s->workers)
        return -1;
    for (int i = 0; i < s->nworkers; i++)
        s->workers[i].wake.fd = -1; /* sp_server_free closes only what was opened */
    uint64_t every = sweep_interval(b);
    for (int i = 0; i < s->nworkers; i++) {
        sp_worker_t *w = &s->workers[i];
        w->srv = s;
        w->id = i;
        atomic_init(&w->nmuted, 0);
        pthread_mutex_init(&w->mu, NULL);
        if (uv_loop_init(&w->loop) != 0 || sp_wakeup_init(&w->loop, &w->wake, on_wake) != 0) {
            sp_error("net", "cannot create event loop for worker %d", i);
            return -1;
        }
        w->wake.data = w;
        if (every) {
            /* one timer per worker, not one per connection */
            uv_timer_init(&w->loop, &w->sweep);
            w->sweep.data = w;
            uv_timer_start(&w->sweep, sp_conn_sweep, every, every);
            w->sweep_on = true;
        }
        if (uv_thread_create(&w->thread, worker_main, w) != 0) {
            sp_error("net", "cannot start worker %d", i);
            return -1;
        }
    }
    uv_poll_init(main_loop, &s->listen_poll, s->listen_fd);
    s->listen_poll.data = s;
    s->listening = true;
    listen_update(s);
    sp_info("net", "listening on %s:%d with %d I/O worker%s", b->bind_host, b->bind_port,
            s->nworkers, s->nworkers == 1 ? "" : "s");
    return 0;
}

void sp_server_stop(sp_server_t *s)
{
    if (s->listening) {
        uv_poll_stop(&s->listen_poll);
        uv_close((uv_handle_t *)&s->listen_poll, NULL);
        s->listening = false;
    }
    if (s->backoff_on) {
        uv_timer_stop(&s->backoff);
        uv_close((uv_handle_t *)&s->backoff, NULL);
        s->backoff_on = false;
    }
    if (s->main_wake_on) {
        sp_wakeup_close(&s->main_wake);
        s->main_wake_on = false;
    }
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
    for (int i = 0; i < s->nworkers; i++) {
        sp_worker_t *w = &s->workers[i];
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_mutex_unlock(&w->mu);
        sp_wakeup_send(&w->wake);
    }
    for (int i = 0; i < s->nworkers; i++) {
        sp_worker_t *w = &s->workers[i];
        uv_thread_join(&w->thread);
        pthread_mutex_lock(&w->mu);
        w->stopped = true;
        pthread_mutex_unlock(&w->mu);
        /* completions that arrived after the loop ended: their requests are
         * answered already (connections closed), so they only let go */
        sp_worker_run_posts(w);
        uv_loop_close(&w->loop);
    }
}

void sp_server_free(sp_server_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nworkers; i++) {
        sp_worker_t *w = &s->workers[i];
        sp_worker_run_posts(w); /* late completions from other threads */
        sp_wakeup_free(&w->wake);
        pthread_mutex_destroy(&w->mu);
        free(w->fds);
    }
    free(s->workers);
    sp_wakeup_free(&s->main_wake);
    if (s->reserve_fd >= 0)
        close(s->reserve_fd);
    sp_quota_free(s->quota);
    free(s);
}
