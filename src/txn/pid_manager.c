/* pid_manager.c - this broker's producer ids (see pid_manager.h). */
#include "txn/pid_manager.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>

#include "cluster/controller.h"
#include "proto/gen/errors.h"
#include "util/clock.h"
#include "util/log.h"

#define PREFETCH_PERCENT 90  /* Kafka's PID_PREFETCH_THRESHOLD */
#define RETRY_BACKOFF_MS 50  /* Kafka's RETRY_BACKOFF_MS after a failed grant */

typedef struct waiter {
    sp_pid_done_fn done;
    void *ctx;
    int64_t pid;                /* -1 until the waiter has its id */
    struct waiter *next;
} waiter_t;

struct sp_pid_manager {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* asking became false (stop waits for it) */
    sp_pid_ask_fn ask;
    void *src;
    /* the current block [cur_first, cur_end), next id cur_next (1) */
    int64_t cur_first, cur_next, cur_end;
    /* the prefetched block, if has_next (2) */
    bool has_next;
    int64_t next_first, next_end;
    bool asking;                /* an ask is in flight (3) */
    int64_t backoff_until;      /* sp_mono_ms: no ask before, after a failed grant */
    waiter_t *head, *tail;      /* callers waiting for a block, in order */
    bool stopping;
};

sp_pid_manager_t *sp_pid_manager_new(sp_pid_ask_fn ask, void *src)
{
    sp_pid_manager_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->ask = ask;
    m->src = src;
    return m;
}

/* ---- under the lock ------------------------------------------------------ */

static bool check_locked(const sp_pid_manager_t *m)
{
    if (m->cur_first > m->cur_next || m->cur_next > m->cur_end)
        return false; /* (1) */
    if (m->has_next && (m->next_first < m->cur_end || m->next_first >= m->next_end))
        return false; /* (2) */
    if (m->head && !m->asking && !m->stopping)
        return false; /* (3) */
    return (m->head == NULL) == (m->tail == NULL);
}

/* Takes the next id into *pid: from the current block, else from the
 * prefetched one, which becomes current.  false when neither has one. */
static bool take(sp_pid_manager_t *m, int64_t *pid)
{
    if (m->cur_next == m->cur_end && m->has_next) {
        m->cur_first = m->cur_next = m->next_first;
        m->cur_end = m->next_end;
        m->has_next = false;
    }
    if (m->cur_next == m->cur_end)
        return false;
    *pid = m->cur_next++;
    return true;
}

/* Whether to ask for the next block now (and mark the ask in flight):
 * the current block is PREFETCH_PERCENT used or empty, no next block is
 * at hand, none is asked for, and no back-off runs. */
static bool should_ask(sp_pid_manager_t *m)
{
    if (m->has_next || m->asking || m->stopping || sp_mono_ms() < m->backoff_until)
        return false;
    int64_t size = m->cur_end - m->cur_first;
    if ((m->cur_next - m->cur_first) * 100 < size * PREFETCH_PERCENT)
        return false;
    m->asking = true;
    return true;
}

/* Unlinks every waiter; the caller answers them outside the lock. */
static waiter_t *take_waiters(sp_pid_manager_t *m)
{
    waiter_t *w = m->head;
    m->head = m->tail = NULL;
    return w;
}

/* ---- outside the lock ---------------------------------------------------- */

/* Answers and frees the waiters of list w; those without an id get err. */
static void answer(waiter_t *w, int16_t err)
{
    while (w) {
        waiter_t *next = w->next;
        if (w->pid >= 0)
            w->done(w->ctx, w->pid, 0);
        else
            w->done(w->ctx, -1, err);
        free(w);
        w = next;
    }
}

void sp_pid_next(sp_pid_manager_t *m, sp_pid_done_fn done, void *ctx)
{
    int64_t pid;
    pthread_mutex_lock(&m->mu);
    if (m->stopping) {
        pthread_mutex_unlock(&m->mu);
        done(ctx, -1, SP_ERR_COORDINATOR_NOT_AVAILABLE);
        return;
    }
    if (take(m, &pid)) {
        bool ask = should_ask(m);
        assert(check_locked(m));
        pthread_mutex_unlock(&m->mu);
        if (ask)
            m->ask(m->src, m);
        done(ctx, pid, 0);
        return;
    }
    /* nothing at hand: wait for the block asked for (or ask for it) */
    bool ask = !m->asking && sp_mono_ms() >= m->backoff_until;
    waiter_t *w = (m->asking || ask) ? malloc(sizeof(*w)) : NULL;
    if (!w) {
        pthread_mutex_unlock(&m->mu);
        done(ctx, -1, SP_ERR_COORDINATOR_LOAD_IN_PROGRESS); /* backing off, or out of memory */
        return;
    }
    w->done = done;
    w->ctx = ctx;
    w->pid = -1;
    w->next = NULL;
    if (m->tail)
        m->tail->next = w;
    else
        m->head = w;
    m->tail = w;
    if (ask)
        m->asking = true;
    assert(check_locked(m));
    pthread_mutex_unlock(&m->mu);
    if (ask)
        m->ask(m->src, m);
}

void sp_pid_manager_granted(sp_pid_manager_t *m, int64_t first, int32_t count, int16_t err)
{
    waiter_t *served = NULL, **last = &served, *failed = NULL;
    pthread_mutex_lock(&m->mu);
    assert(m->asking);
    m->asking = false;
    if (!err && (count <= 0 || first < m->cur_end || first > INT64_MAX - count)) {
        sp_error("txn", "producer id block [%" PRId64 ", +%" PRId32 ") is not above the current one "
                 "(ending at %" PRId64 "): not used", first, count, m->cur_end);
        err = SP_ERR_UNKNOWN_SERVER_ERROR;
    }
    if (err) {
        sp_warn("txn", "no producer id block granted (%s); producers are asked to retry",
                sp_kafka_error_name(err));
        m->backoff_until = sp_mono_ms() + RETRY_BACKOFF_MS;
        failed = take_waiters(m);
    } else {
        m->has_next = true;
        m->next_first = first;
        m->next_end = first + count;
        /* the waiters first, in order; those the block cannot serve wait
         * for the next one */
        while (m->head && take(m, &m->head->pid)) {
            waiter_t *w = m->head;
            m->head = w->next;
            if (!m->head)
                m->tail = NULL;
            w->next = NULL;
            *last = w;
            last = &w->next;
        }
    }
    bool ask = false;
    if (m->stopping) {
        if (!failed)
            failed = take_waiters(m); /* nobody asks for them any more */
    } else if (m->head) {
        ask = m->asking = true;
    } else {
        ask = should_ask(m);
    }
    assert(check_locked(m));
    pthread_cond_broadcast(&m->cv);
    bool stopping = m->stopping;
    pthread_mutex_unlock(&m->mu);
    /* m may be freed from here on when stopping (sp_pid_manager_stop) */
    if (ask)
        m->ask(m->src, m);
    answer(served, 0);
    answer(failed, err || !stopping ? SP_ERR_COORDINATOR_LOAD_IN_PROGRESS : SP_ERR_COORDINATOR_NOT_AVAILABLE);
}

void sp_pid_manager_stop(sp_pid_manager_t *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    while (m->asking)
        pthread_cond_wait(&m->cv, &m->mu);
    waiter_t *w = take_waiters(m);
    pthread_mutex_unlock(&m->mu);
    answer(w, SP_ERR_COORDINATOR_NOT_AVAILABLE);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
}

bool sp_pid_manager_check(sp_pid_manager_t *m)
{
    pthread_mutex_lock(&m->mu);
    bool ok = check_locked(m);
    pthread_mutex_unlock(&m->mu);
    return ok;
}

/* ---- blocks from the controller ------------------------------------------ */

/* The controller's answer, on the metadata thread. */
static void block_granted(sp_ctl_op_t *op)
{
    sp_pid_manager_t *m = op->owner;
    int64_t first = op->pids.first;
    int16_t err = op->pids.error;
    if (err)
        sp_warn("txn", "the controller granted no producer ids: %s", op->pids.message ? op->pids.message : "");
    free(op);
    sp_pid_manager_granted(m, first, SP_PID_BLOCK_SIZE, err);
}

static void ask_controller(void *src, sp_pid_manager_t *m)
{
    sp_ctl_op_t *op = calloc(1, sizeof(*op));
    if (!op) {
        sp_pid_manager_granted(m, 0, 0, SP_ERR_UNKNOWN_SERVER_ERROR);
        return;
    }
    op->kind = SP_CTL_ALLOC_PRODUCER_IDS;
    op->complete = block_granted;
    op->owner = m;
    sp_controller_submit(src, op);
}

sp_pid_manager_t *sp_pid_manager_start(struct sp_controller *c)
{
    return sp_pid_manager_new(ask_controller, c);
}
