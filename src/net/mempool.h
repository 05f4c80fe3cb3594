/*
 * mempool.h - the request memory pool: queued.max.request.bytes.
 *
 * Kafka's SimpleMemoryPool in its non-strict mode (the one SocketServer
 * uses): a connection that starts reading a frame reserves the frame's
 * declared size before any buffer is grown for it.  A reservation is
 * granted while the pool has any memory left (available >= 1), even when
 * it asks for more than is left, so the bytes in use stay below
 * size + socket.request.max.bytes; otherwise it is refused, and the
 * connection stops reading ("muted") until memory is released.
 *
 * Spool reserves only for frames larger than a connection's standing
 * input buffer (SP_CONN_BASE_BYTES): small requests never wait for the
 * pool, so metadata, heartbeats and commits keep flowing while large
 * produces wait (Kafka reserves for every frame).
 *
 * Any thread: the counter is atomic.  A size <= 0 means unbounded
 * (Kafka's MemoryPool.NONE): every reservation is granted.
 *
 * Invariants:
 *  (1) available == size - (granted - released);
 *  (2) a reservation is granted only when available >= 1 beforehand.
 */
#ifndef SP_NET_MEMPOOL_H
#define SP_NET_MEMPOOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct sp_mempool {
    int64_t size;              /* queued.max.request.bytes; <= 0: unbounded */
    atomic_llong available;
} sp_mempool_t;

void sp_mempool_init(sp_mempool_t *p, int64_t size);
/* Reserves n (> 0) bytes if the pool has any memory left (2). */
bool sp_mempool_try_reserve(sp_mempool_t *p, int64_t n);
/* Gives back n bytes of an earlier reservation. */
void sp_mempool_release(sp_mempool_t *p, int64_t n);
/* Bytes reserved now (0 when unbounded). */
int64_t sp_mempool_used(sp_mempool_t *p);

#endif
