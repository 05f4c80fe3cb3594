/*
 * wakeup.h - wake a libuv loop from other threads.
 *
 * An eventfd watched by a uv_poll handle, and a flag that folds any number
 * of sends before the loop runs into one wakeup. This replaces uv_async_t:
 * libuv 1.44's loop side spins, then calls sched_yield(), while a sender is
 * between marking the handle pending and returning from its write(). On
 * two cores the woken loop usually runs before the sender returns; a trace
 * of acks=all produce showed about 800 sched_yield calls a second, each
 * 0.1-0.4 ms, on the I/O workers.
 *
 * The sender queues its work under its own lock first, then calls
 * sp_wakeup_send(); the loop's callback runs after the flag is cleared,
 * so work queued after a callback has started draining brings another one.
 */
#ifndef SP_UTIL_WAKEUP_H
#define SP_UTIL_WAKEUP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

typedef struct sp_wakeup sp_wakeup_t;
struct sp_wakeup {
    uv_poll_t poll;
    int fd;
    atomic_bool pending;
    void (*cb)(sp_wakeup_t *w);
    void *data;
};

/* Loop thread (or before the loop runs). 0, or a negative errno. */
int sp_wakeup_init(uv_loop_t *loop, sp_wakeup_t *w, void (*cb)(sp_wakeup_t *w));
/* Any thread; cheap when a wakeup is already pending. */
void sp_wakeup_send(sp_wakeup_t *w);
/* Loop thread: stops watching (the handle closes with the loop's next turn). */
void sp_wakeup_close(sp_wakeup_t *w);
/* After the loop thread is gone and no thread sends any more: the eventfd. */
void sp_wakeup_free(sp_wakeup_t *w);

#endif
