#include "util/wakeup.h"
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void on_readable(uv_poll_t *p, int status, int events)
{
    sp_wakeup_t *w = p->data;
    uint64_t n;
    (void)status;
    (void)events;
    while (read(w->fd, &n, sizeof(n)) < 0 && errno == EINTR)
        ;
    atomic_store(&w->pending, false); /* sends from now on wake us again */
    w->cb(w);
}

int sp_wakeup_init(uv_loop_t *loop, sp_wakeup_t *w, void (*cb)(sp_wakeup_t *w))
{
    w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->fd < 0)
        return -errno;
    atomic_init(&w->pending, false);
    w->cb = cb;
    int rc = uv_poll_init(loop, &w->poll, w->fd);
    if (rc == 0) {
        w->poll.data = w;
        rc = uv_poll_start(&w->poll, UV_READABLE, on_readable);
    }
    if (rc != 0) {
        close(w->fd);
        w->fd = -1;
    }
    return rc;
}

void sp_wakeup_send(sp_wakeup_t *w)
{
    if (atomic_exchange(&w->pending, true))
        return; /* the loop has not run the last one yet: it will see ours */
    uint64_t one = 1;
    while (write(w->fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

void sp_wakeup_close(sp_wakeup_t *w)
{
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, NULL);
}

void sp_wakeup_free(sp_wakeup_t *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}
