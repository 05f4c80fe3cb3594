/*
 * pid_manager.h - this broker's producer ids (Kafka's RPCProducerIdManager):
 * hands out the ids of a block the controller granted (controller.h,
 * SP_CTL_ALLOC_PRODUCER_IDS: SP_PID_BLOCK_SIZE ids, durable in the
 * metadata log as a ProducerIdsRecord before the block arrives), one at a
 * time, in increasing order.
 *
 * Who calls it: the InitProducerId handler (broker/init_producer_id.c) for
 * idempotent producers, and later the transaction coordinator.  Neither
 * is assumed: sp_pid_next takes a completion, never a request.
 *
 *   sp_pid_next   an id of the current block: done(ctx, id, 0) at once, on
 *                 the caller's thread, before sp_pid_next returns.  Once
 *                 90% of the block is handed out the next block is asked
 *                 for (prefetch), so that callers do not wait for it.
 *                 When no id is at hand (the first call after a start, or
 *                 the prefetched block is late) the caller waits: done
 *                 runs later, on the thread that delivers the block (the
 *                 metadata thread), in the order the callers came.  A
 *                 block that could not be granted fails the waiting
 *                 callers with COORDINATOR_LOAD_IN_PROGRESS (retriable:
 *                 Kafka answers it when it has no block), and for 50 ms
 *                 (Kafka's RETRY_BACKOFF_MS) new callers get that error
 *                 at once instead of asking again.
 *
 * A new manager starts with no block: the ids left in the block of the
 * previous run are never used (they may have been handed out), so ids
 * never repeat across restarts.  The first block is asked for by the
 * first caller, as Kafka does (a broker nobody asks writes nothing).
 *
 * Invariants (sp_pid_manager_check):
 *  (1) ids handed out strictly increase: every id comes from
 *      [cur_next, cur_end) and cur_next only grows;
 *  (2) a prefetched block lies above the current one (a grant below it
 *      is refused, as Kafka's sanityCheckResponse does);
 *  (3) callers wait only while a block is asked for (asking), so each
 *      waiter is answered by the next grant or its failure.
 *
 * Threads: every function is thread-safe (one mutex).  done and the
 * source's ask run outside it, so either may call back into the manager.
 */
#ifndef SP_TXN_PID_MANAGER_H
#define SP_TXN_PID_MANAGER_H

#include <stdbool.h>
#include <stdint.h>

struct sp_controller;
typedef struct sp_pid_manager sp_pid_manager_t;

/* The answer of sp_pid_next: an id with err 0, or id -1 and a Kafka error
 * code (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE after
 * sp_pid_manager_stop).  Any thread (see above); it must not block. */
typedef void (*sp_pid_done_fn)(void *ctx, int64_t pid, int16_t err);

/* Where blocks come from: ask(src, m) asks for the next block; the answer
 * is one call of sp_pid_manager_granted(m, ...), from any thread, possibly
 * before ask returns.  At most one ask is in flight. */
typedef void (*sp_pid_ask_fn)(void *src, sp_pid_manager_t *m);

/* A manager whose blocks come from src through ask (tests use their own);
 * NULL on OOM. */
sp_pid_manager_t *sp_pid_manager_new(sp_pid_ask_fn ask, void *src);
/* A manager whose blocks come from the broker's controller (one
 * SP_CTL_ALLOC_PRODUCER_IDS operation per block); c must outlive it. */
sp_pid_manager_t *sp_pid_manager_start(struct sp_controller *c);

/* The next producer id, through done(ctx, id, err) (see above). */
void sp_pid_next(sp_pid_manager_t *m, sp_pid_done_fn done, void *ctx);

/* The answer to an ask: the block [first, first + count), or err != 0 (a
 * Kafka error code, logged) when none was granted. */
void sp_pid_manager_granted(sp_pid_manager_t *m, int64_t first, int32_t count, int16_t err);

/* Waits for the block asked for, if any (so the source must still run:
 * stop the manager before the controller), answers the callers still
 * waiting with COORDINATOR_NOT_AVAILABLE, and frees m.  Nobody may call
 * sp_pid_next any more (stop its callers first).  NULL is a no-op. */
void sp_pid_manager_stop(sp_pid_manager_t *m);

/* Invariants (1)-(3); takes the lock.  For assert() and tests. */
bool sp_pid_manager_check(sp_pid_manager_t *m);

#endif
