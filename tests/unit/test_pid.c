/* test_pid.c - the producer-id manager (txn/pid_manager.h) against a fake
 * source of blocks: ids in order from a block, the prefetch at 90%,
 * callers waiting for a block answered in order, blocks smaller than the
 * waiters, refused and failed grants (and the back-off after them), a
 * stop with callers waiting, and several threads at once whose ids are
 * all distinct (run under TSan by make tsan). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "proto/gen/errors.h"
#include "txn/pid_manager.h"

/* ---- a source the test answers by hand -------------------------------- */

static atomic_int asks;

static void ask_count(void *src, sp_pid_manager_t *m)
{
    (void)src;
    (void)m;
    atomic_fetch_add(&asks, 1);
}

/* One caller's answer. */
typedef struct answer {
    atomic_int calls;
    int64_t pid;
    int16_t err;
} answer_t;

static void on_pid(void *ctx, int64_t pid, int16_t err)
{
    answer_t *a = ctx;
    a->pid = pid;
    a->err = err;
    atomic_fetch_add(&a->calls, 1);
}

static int64_t next_now(sp_pid_manager_t *m)
{
    answer_t a = { 0, -2, -2 };
    sp_pid_next(m, on_pid, &a);
    return atomic_load(&a.calls) == 1 && a.err == 0 ? a.pid : -1;
}

static void test_blocks_and_prefetch(void)
{
    atomic_store(&asks, 0);
    sp_pid_manager_t *m = sp_pid_manager_new(ask_count, NULL);
    /* no block at start: the first caller waits, and one ask goes out */
    answer_t a = { 0, -2, -2 }, b = { 0, -2, -2 };
    sp_pid_next(m, on_pid, &a);
    sp_pid_next(m, on_pid, &b);
    CHECK(atomic_load(&a.calls) == 0 && atomic_load(&b.calls) == 0);
    CHECK(atomic_load(&asks) == 1);
    CHECK(sp_pid_manager_check(m));
    sp_pid_manager_granted(m, 0, 1000, 0);
    CHECK(atomic_load(&a.calls) == 1 && a.pid == 0 && a.err == 0);
    CHECK(atomic_load(&b.calls) == 1 && b.pid == 1 && b.err == 0);
    /* ids in order, answered at once; the next block is asked for once
     * 900 of the 1000 are handed out, not before */
    bool in_order = true;
    for (int64_t i = 2; i < 899; i++)
        in_order &= next_now(m) == i;
    CHECK(in_order);
    CHECK(atomic_load(&asks) == 1);
    CHECK(next_now(m) == 899);
    CHECK(atomic_load(&asks) == 2);
    in_order = true;
    for (int64_t i = 900; i < 1000; i++)
        in_order &= next_now(m) == i;
    CHECK(in_order);
    CHECK(atomic_load(&asks) == 2); /* one ask in flight, not one per call */
    /* the prefetched block is late: callers wait, in order */
    answer_t c = { 0, -2, -2 }, d = { 0, -2, -2 };
    sp_pid_next(m, on_pid, &c);
    sp_pid_next(m, on_pid, &d);
    CHECK(atomic_load(&c.calls) == 0 && atomic_load(&d.calls) == 0 && atomic_load(&asks) == 2);
    sp_pid_manager_granted(m, 5000, 1000, 0); /* gaps are fine (another broker's blocks) */
    CHECK(c.pid == 5000 && d.pid == 5001 && c.err == 0 && d.err == 0);
    CHECK(next_now(m) == 5002);
    CHECK(sp_pid_manager_check(m));
    /* a prefetched block waits unused until the current one is done */
    for (int64_t i = 5003; i < 5900; i++)
        next_now(m);
    CHECK(atomic_load(&asks) == 3);
    sp_pid_manager_granted(m, 9000, 1000, 0);
    CHECK(next_now(m) == 5900);
    CHECK(sp_pid_manager_check(m));
    sp_pid_manager_stop(m);
}

/* More waiters than the block has ids: the rest wait for the next one,
 * asked for at once. */
static void test_small_block(void)
{
    atomic_store(&asks, 0);
    sp_pid_manager_t *m = sp_pid_manager_new(ask_count, NULL);
    answer_t w[3];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < 3; i++)
        sp_pid_next(m, on_pid, &w[i]);
    sp_pid_manager_granted(m, 10, 2, 0);
    CHECK(w[0].pid == 10 && w[1].pid == 11 && atomic_load(&w[2].calls) == 0);
    CHECK(atomic_load(&asks) == 2);
    CHECK(sp_pid_manager_check(m));
    sp_pid_manager_granted(m, 20, 2, 0);
    CHECK(atomic_load(&w[2].calls) == 1 && w[2].pid == 20 && w[2].err == 0);
    sp_pid_manager_stop(m);
}

/* A failed grant, and a block below the current one, fail the waiting
 * callers with COORDINATOR_LOAD_IN_PROGRESS; for 50 ms callers get it at
 * once, without another ask; then the next caller asks again. */
static void test_refused_grants(void)
{
    atomic_store(&asks, 0);
    sp_pid_manager_t *m = sp_pid_manager_new(ask_count, NULL);
    answer_t a = { 0, -2, -2 };
    sp_pid_next(m, on_pid, &a);
    sp_pid_manager_granted(m, 0, 0, SP_ERR_KAFKA_STORAGE_ERROR);
    CHECK(atomic_load(&a.calls) == 1 && a.pid == -1 && a.err == SP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    answer_t b = { 0, -2, -2 };
    sp_pid_next(m, on_pid, &b);
    CHECK(atomic_load(&b.calls) == 1 && b.err == SP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    CHECK(atomic_load(&asks) == 1);
    usleep(80 * 1000);
    answer_t c = { 0, -2, -2 };
    sp_pid_next(m, on_pid, &c);
    CHECK(atomic_load(&c.calls) == 0 && atomic_load(&asks) == 2);
    sp_pid_manager_granted(m, 100, 5, 0);
    CHECK(c.pid == 100 && c.err == 0);
    for (int i = 0; i < 4; i++)
        next_now(m);
    /* block used up; a grant below it is not used (invariant 2) */
    answer_t d = { 0, -2, -2 };
    sp_pid_next(m, on_pid, &d);
    CHECK(atomic_load(&d.calls) == 0);
    sp_pid_manager_granted(m, 50, 10, 0);
    CHECK(atomic_load(&d.calls) == 1 && d.err == SP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    CHECK(sp_pid_manager_check(m));
    sp_pid_manager_stop(m);
}

/* ---- a stop with callers waiting ----------------------------------------- */

static void *stopper(void *arg)
{
    sp_pid_manager_stop(arg);
    return NULL;
}

static void test_stop_waits_for_the_ask(void)
{
    atomic_store(&asks, 0);
    sp_pid_manager_t *m = sp_pid_manager_new(ask_count, NULL);
    answer_t a = { 0, -2, -2 }, b = { 0, -2, -2 };
    sp_pid_next(m, on_pid, &a);
    sp_pid_next(m, on_pid, &b);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, stopper, m) == 0);
    usleep(30 * 1000);
    CHECK(atomic_load(&a.calls) == 0 && atomic_load(&b.calls) == 0);
    /* the block asked for still arrives (the manager is alive until then);
     * what it cannot serve is answered COORDINATOR_NOT_AVAILABLE */
    sp_pid_manager_granted(m, 0, 1, 0);
    pthread_join(t, NULL);
    CHECK(atomic_load(&a.calls) == 1 && a.pid == 0 && a.err == 0);
    CHECK(atomic_load(&b.calls) == 1 && b.pid == -1 && b.err == SP_ERR_COORDINATOR_NOT_AVAILABLE);
    CHECK(atomic_load(&asks) == 1);
}

/* ---- many threads, a source on a thread of its own ------------------------ */

#define THREADS 4
#define PER_THREAD 20000
#define SMALL_BLOCK 16

typedef struct source {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sp_pid_manager_t *pending;  /* an ask to answer */
    bool stop;
    int64_t next;
    pthread_t thread;
} source_t;

static atomic_int double_asks, source_asks;

static void ask_source(void *src, sp_pid_manager_t *m)
{
    source_t *s = src;
    pthread_mutex_lock(&s->mu);
    if (s->pending)
        atomic_fetch_add(&double_asks, 1); /* one ask at a time */
    atomic_fetch_add(&source_asks, 1);
    s->pending = m;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void *source_main(void *arg)
{
    source_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->pending && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->pending)
            break;
        sp_pid_manager_t *m = s->pending;
        s->pending = NULL;
        int64_t first = s->next;
        s->next += SMALL_BLOCK + (first % 3); /* some ids skipped, as after a restart */
        pthread_mutex_unlock(&s->mu);
        sp_pid_manager_granted(m, first, SMALL_BLOCK, 0);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int64_t ids[THREADS * PER_THREAD];
static atomic_int nids, nerrs;

static void on_many(void *ctx, int64_t pid, int16_t err)
{
    (void)ctx;
    if (err) {
        atomic_fetch_add(&nerrs, 1);
        return;
    }
    ids[atomic_fetch_add(&nids, 1)] = pid;
}

static void *caller(void *arg)
{
    for (int i = 0; i < PER_THREAD; i++)
        sp_pid_next(arg, on_many, NULL);
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_threads(void)
{
    source_t s;
    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    CHECK(pthread_create(&s.thread, NULL, source_main, &s) == 0);
    sp_pid_manager_t *m = sp_pid_manager_new(ask_source, &s);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, caller, m) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* the last waiters are answered by the source's thread */
    for (int i = 0; i < 5000 && atomic_load(&nids) + atomic_load(&nerrs) < THREADS * PER_THREAD; i++)
        usleep(1000);
    CHECK(sp_pid_manager_check(m));
    sp_pid_manager_stop(m);
    pthread_mutex_lock(&s.mu);
    s.stop = true;
    pthread_cond_signal(&s.cv);
    pthread_mutex_unlock(&s.mu);
    pthread_join(s.thread, NULL);
    int n = atomic_load(&nids);
    CHECK(n == THREADS * PER_THREAD && atomic_load(&nerrs) == 0);
    CHECK(atomic_load(&double_asks) == 0);
    /* ids were prefetched: about one ask per block, not one per caller */
    CHECK(atomic_load(&source_asks) <= n / SMALL_BLOCK + THREADS + 1);
    qsort(ids, (size_t)n, sizeof(ids[0]), cmp64);
    bool distinct = true;
    for (int i = 1; i < n; i++)
        distinct &= ids[i] > ids[i - 1];
    CHECK(distinct);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
}

int main(void)
{
    test_blocks_and_prefetch();
    test_small_block();
    test_refused_grants();
    test_stop_waits_for_the_ask();
    test_threads();
    return check_summary("test_pid");
}
