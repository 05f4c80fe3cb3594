/*
 * server.h - listeners and I/O workers.
 *
 * Threads:
 *   main thread   owns the listening sockets (uv_poll on the main loop),
 *                 accepts, applies max.connections and
 *                 max.connections.per.ip (net/quota.h), and hands each new
 *                 socket to a worker round-robin through that worker's
 *                 queue + wakeup (util/wakeup.h).  Out of descriptors, it
 *                 sheds pending connections through a reserve descriptor
 *                 and backs off (server.c, "listener").
 *   I/O workers   num.network.threads threads, each running its own libuv
 *                 loop that owns its connections for their whole life, and
 *                 one sweep timer for idle and stalled connections.
 *
 * Shared between threads: the connection counts (net/quota.h: a mutex and
 * an atomic total) and the request memory pool (net/mempool.h: atomic).
 *
 * Invariants:
 *  (1) a connection is touched only by the thread of its worker;
 *  (2) after sp_server_stop() returns, no worker runs and every accepted
 *      socket has been closed;
 *  (3) an accepted socket is counted in the quota from its accept until
 *      its close (whichever thread closes it counts it out);
 *  (4) the listener is polled exactly when nothing pauses it: neither
 *      max.connections (the total is at the limit) nor a backoff after
 *      EMFILE/ENFILE.
 */
#ifndef SP_NET_SERVER_H
#define SP_NET_SERVER_H

#include <uv.h>

#include "broker/broker.h"

typedef struct sp_server sp_server_t;

/* Borrows 'broker' for the server's life. */
sp_server_t *sp_server_new(const sp_broker_t *broker);
/* Binds host:port on the main loop and starts the workers.  0 or -1 (logged). */
int sp_server_start(sp_server_t *s, uv_loop_t *main_loop);
/* Stops accepting, closes every connection, joins the workers.  Main thread. */
void sp_server_stop(sp_server_t *s);
void sp_server_free(sp_server_t *s);

#endif
