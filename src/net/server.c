/* server.c - listeners and I/O workers (see server.h). */
#include "net/server.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/internal.h"
#include "util/log.h"

sp_server_t *sp_server_new(const sp_broker_t *broker)
{
    sp_server_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->broker = broker;
    s->listen_fd = -1;
    return s;
}

/* ---- workers ----------------------------------------------------------- */

static void on_wake(sp_wakeup_t *a)
{
    sp_worker_t *w = a->data;
    int fds[256];
    int n;
    bool stop;
    do {
        pthread_mutex_lock(&w->mu);
        n = w->nfds < 256 ? w->nfds : 256;
        if (n > 0) {
            memcpy(fds, w->fds, sizeof(int) * (size_t)n);
            memmove(w->fds, w->fds + n, sizeof(int) * (size_t)(w->nfds - n));
            w->nfds -= n;
        }
        stop = w->stop;
        pthread_mutex_unlock(&w->mu);
        for (int i = 0; i < n; i++) {
            if (stop)
                close(fds[i]);
            else
                sp_conn_adopt(w, fds[i]);
        }
    } while (n == 256);
    sp_worker_run_posts(w);
    if (stop) {
        sp_conn_close_all(w);
        sp_worker_run_posts(w);
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

static void hand_off(sp_server_t *s, int fd)
{
    sp_worker_t *w = &s->workers[s->next_worker++ % (unsigned)s->nworkers];
    pthread_mutex_lock(&w->mu);
    if (w->nfds == w->capfds) {
        int cap = w->capfds ? w->capfds * 2 : 64;
        int *n = realloc(w->fds, sizeof(int) * (size_t)cap);
        if (!n) {
            pthread_mutex_unlock(&w->mu);
            sp_error("net", "out of memory queueing a connection");
            close(fd);
            return;
        }
        w->fds = n;
        w->capfds = cap;
    }
    w->fds[w->nfds++] = fd;
    pthread_mutex_unlock(&w->mu);
    sp_wakeup_send(&w->wake);
}

/* ---- listener ---------------------------------------------------------- */

static void on_listen_ready(uv_poll_t *p, int status, int events)
{
    sp_server_t *s = p->data;
    (void)events;
    if (status < 0) {
        sp_error("net", "listener error: %s", uv_strerror(status));
        return;
    }
    for (int i = 0; i < 64; i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED)
                return;
            /* EMFILE and friends: log, and let the next readiness retry */
            sp_error("net", "accept: %s", strerror(errno));
            return;
        }
        hand_off(s, fd);
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

int sp_server_start(sp_server_t *s, uv_loop_t *main_loop)
{
    s->main_loop = main_loop;
    if (bind_listener(s) != 0)
        return -1;
    s->nworkers = s->broker->io_threads > 0 ? s->broker->io_threads : 1;
    s->workers = calloc((size_t)s->nworkers, sizeof(sp_worker_t));
    if (!s->workers)
        return -1;
    for (int i = 0; i < s->nworkers; i++)
        s->workers[i].wake.fd = -1; /* sp_server_free closes only what was opened */
    for (int i = 0; i < s->nworkers; i++) {
        sp_worker_t *w = &s->workers[i];
        w->srv = s;
        w->id = i;
        pthread_mutex_init(&w->mu, NULL);
        if (uv_loop_init(&w->loop) != 0 || sp_wakeup_init(&w->loop, &w->wake, on_wake) != 0) {
            sp_error("net", "cannot create event loop for worker %d", i);
            return -1;
        }
        w->wake.data = w;
        if (uv_thread_create(&w->thread, worker_main, w) != 0) {
            sp_error("net", "cannot start worker %d", i);
            return -1;
        }
    }
    uv_poll_init(main_loop, &s->listen_poll, s->listen_fd);
    s->listen_poll.data = s;
    uv_poll_start(&s->listen_poll, UV_READABLE, on_listen_ready);
    s->listening = true;
    sp_info("net", "listening on %s:%d with %d I/O worker%s", s->broker->bind_host,
            s->broker->bind_port, s->nworkers, s->nworkers == 1 ? "" : "s");
    return 0;
}

void sp_server_stop(sp_server_t *s)
{
    if (s->listening) {
        uv_poll_stop(&s->listen_poll);
        uv_close((uv_handle_t *)&s->listen_poll, NULL);
        s->listening = false;
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
    free(s);
}
