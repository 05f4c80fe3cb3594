/*
 * server.h - listeners and I/O workers.
 *
 * Threads:
 *   main thread   owns the listening sockets (uv_poll on the main loop),
 *                 accepts, and hands each new socket to a worker
 *                 round-robin through that worker's queue + wakeup (util/wakeup.h).
 *   I/O workers   num.network.threads threads, each running its own libuv
 *                 loop that owns its connections for their whole life.
 *
 * Invariants:
 *  (1) a connection is touched only by the thread of its worker;
 *  (2) after sp_server_stop() returns, no worker runs and every accepted
 *      socket has been closed.
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
