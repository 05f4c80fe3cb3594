/*
 * node.h - one broker node: everything one broker is (its configuration,
 * log manager, partitions, metadata image holder, controller, group
 * coordinator and network server), started and stopped as one.  spoold
 * runs one; a test may run several in one process, each with its own loop
 * thread (tests/tools/spool_nodes.c).
 *
 * Start order: configuration, meta.properties, logs, partitions, image
 * holder, controller (replays the metadata and opens every partition),
 * coordinator (replays __consumer_offsets), server (listener and I/O
 * workers on the given loop).  Stop: the server first (on the loop's
 * thread), then, once the loop has ended, the rest in reverse.
 */
#ifndef SP_BROKER_NODE_H
#define SP_BROKER_NODE_H

#include <uv.h>

#include "broker/broker.h"
#include "util/config.h"

typedef struct sp_node sp_node_t;

/* Starts a node from cfg (borrowed: it must outlive the node) with its
 * listener on loop.  max_open_files is its segment-file budget
 * (log/fdcache.h).  The node, or NULL (logged; whatever had started is
 * stopped, without a clean-shutdown marker). */
sp_node_t *sp_node_start(const sp_config_t *cfg, uv_loop_t *loop, int max_open_files);
const sp_broker_t *sp_node_broker(const sp_node_t *n);
/* Stops accepting and closes every connection; the loop can then end.
 * On the loop's thread. */
void sp_node_stop_serving(sp_node_t *n);
/* Once the loop has ended: stops the coordinator, the controller and the
 * logs (clean shutdown: flush, checkpoints, markers) and frees n. */
void sp_node_free(sp_node_t *n);

#endif
