/*
 * api.h - the APIs this broker implements and the request context handlers
 * receive.
 *
 * The table in api.c is the single source of truth for ApiVersions: an API
 * appears there only when its handler is really implemented for the whole
 * version range listed.
 *
 * A handler runs on the I/O worker thread that owns the connection.  It
 * must answer exactly once, with sp_req_respond() (now or later, from the
 * same thread), or close the connection with sp_req_close().
 */
#ifndef SP_BROKER_API_H
#define SP_BROKER_API_H

#include <stdatomic.h>
#include <stdbool.h>

#include "broker/broker.h"
#include "proto/gen/errors.h"
#include "proto/gen/messages.h"
#include "proto/request.h"

/*
 * A request in progress.  Reference counted: the connection holds one
 * reference until the request is answered; anything that finishes it from
 * another thread (flush thread, metadata thread, a partition's waiter
 * list) holds one and hands it back through sp_req_post().  The last
 * reference is always dropped on the connection's worker thread.
 *
 * The decoded body borrows the connection's input buffer: it is valid
 * until the response is sent (or the request given up), not after.
 */
typedef struct sp_req {
    sp_request_t r;              /* header and decoded body */
    sp_arena_t arena;            /* freed with the request */
    const sp_broker_t *broker;
    void *conn;                  /* the connection (net/conn.c), opaque */
    void *worker;                /* its worker (net/internal.h), opaque */
    atomic_int refs;
    bool answered;               /* respond/close/no-response happened */
    /* Set by a handler that parks the request: called on the worker thread
     * if the connection closes first, to unlink it from waiter lists and
     * stop timers.  It must end with sp_req_respond (a no-op by then). */
    void (*cancel)(struct sp_req *req);
    void *ctx;                   /* the handler's state while parked */
    bool autocreated;            /* auto topic creation already tried */
} sp_req_t;

typedef void (*sp_api_handler_fn)(sp_req_t *req);

typedef struct sp_api {
    int16_t key;
    int16_t min_version, max_version;
    sp_api_handler_fn handle;
} sp_api_t;

/* The implemented API for key, or NULL. */
const sp_api_t *sp_api_find(int16_t key);
/* All implemented APIs, in key order. */
const sp_api_t *sp_api_list(int *count);

/* Provided by the connection layer (net/conn.c).  'resp' is the response
 * struct for the request's API; it is encoded at the request's version
 * (sp_req_respond) or at 'version' (sp_req_respond_at).  Both borrow resp:
 * it is encoded before they return. */
void sp_req_respond(sp_req_t *req, const void *resp);
void sp_req_respond_at(sp_req_t *req, const void *resp, int16_t version);
/* A range of a segment file to send as the bytes of a response field. */
typedef struct sp_file_range {
    int fd;                      /* the segment's file, open while 'hold' is held */
    int64_t pos;
    int32_t len;
    void *hold;                  /* a reference the connection releases when sent */
    uint8_t *dst;                /* set by the connection: its place in the response */
} sp_file_range_t;
/* As sp_req_respond, for a response whose byte fields left as (NULL, len)
 * are, in encoding order, ranges[0..n) of segment files.  They go to the
 * socket with sendfile(2) (no copy); while the socket is full, the next
 * piece is read into the response buffer and queued, and sendfile resumes
 * when it is written.  Takes each range's 'hold' and calls release(hold)
 * once that is over (also on error); the array itself is copied. */
void sp_req_respond_files(sp_req_t *req, const void *resp, sp_file_range_t *ranges, int n,
                          void (*release)(void *hold));
void sp_req_close(sp_req_t *req, const char *why);
/* Finishes a request that gets no response (Produce with acks=0). */
void sp_req_no_response(sp_req_t *req);
/* Runs fn(req, arg) on the request's worker thread, soon; any thread.
 * Takes a new reference for the trip and drops it after fn. */
void sp_req_post(sp_req_t *req, void (*fn)(sp_req_t *req, void *arg), void *arg);
void sp_req_ref(sp_req_t *req);
/* Worker thread only. */
void sp_req_unref(sp_req_t *req);
/* The client's address as Kafka shows it ("/127.0.0.1"). */
const char *sp_req_client_host(sp_req_t *req);
/* The name of the topic with id in img (requests that name topics by id:
 * Produce v13, Fetch v13+, OffsetCommit/OffsetFetch v10), copied into the
 * request's arena; len < 0 when img has no such topic (or out of memory). */
struct sp_image;
sp_str_t sp_req_topic_name(sp_req_t *req, const struct sp_image *img, sp_uuid_t id);
/* The libuv loop of the request's worker (for timers). */
struct uv_loop_s *sp_req_loop(sp_req_t *req);

/* Handlers (one file per API family). */
void sp_handle_api_versions(sp_req_t *req);
/* ApiVersions answer with an error: UNSUPPORTED_VERSION at v0 for a
 * version above ours, INVALID_REQUEST for a body that does not decode. */
void sp_api_versions_error(sp_req_t *req, int16_t error_code, int16_t version);
void sp_handle_metadata(sp_req_t *req);
void sp_handle_produce(sp_req_t *req);
void sp_handle_fetch(sp_req_t *req);
void sp_handle_list_offsets(sp_req_t *req);
void sp_handle_create_topics(sp_req_t *req);
void sp_handle_delete_topics(sp_req_t *req);
void sp_handle_create_partitions(sp_req_t *req);
void sp_handle_delete_records(sp_req_t *req);
void sp_handle_describe_configs(sp_req_t *req);
void sp_handle_alter_configs(sp_req_t *req);
void sp_handle_incremental_alter_configs(sp_req_t *req);
void sp_handle_describe_cluster(sp_req_t *req);
void sp_handle_describe_log_dirs(sp_req_t *req);
void sp_handle_describe_topic_partitions(sp_req_t *req);
void sp_handle_describe_producers(sp_req_t *req);
void sp_handle_add_partitions_to_txn(sp_req_t *req);
void sp_handle_add_offsets_to_txn(sp_req_t *req);
void sp_handle_end_txn(sp_req_t *req);
void sp_handle_list_transactions(sp_req_t *req);
void sp_handle_describe_transactions(sp_req_t *req);
void sp_handle_find_coordinator(sp_req_t *req);
/* InitProducerId (broker/init_producer_id.c): from the broker's
 * producer-id manager (txn/pid_manager.h), maybe answered later. */
void sp_handle_init_producer_id(sp_req_t *req);
/* WriteTxnMarkers (broker/write_txn_markers.c): each entry through
 * txn/markers.h, answered once every partition's marker is durable. */
void sp_handle_write_txn_markers(sp_req_t *req);
/* The consumer group APIs (broker/groups.c): handed to the broker's group
 * coordinator (group/coordinator.h), answered from its thread. */
void sp_handle_join_group(sp_req_t *req);
void sp_handle_sync_group(sp_req_t *req);
void sp_handle_heartbeat(sp_req_t *req);
void sp_handle_leave_group(sp_req_t *req);
void sp_handle_offset_commit(sp_req_t *req);
void sp_handle_offset_fetch(sp_req_t *req);
void sp_handle_describe_groups(sp_req_t *req);
void sp_handle_list_groups(sp_req_t *req);
void sp_handle_delete_groups(sp_req_t *req);
void sp_handle_offset_delete(sp_req_t *req);
void sp_handle_txn_offset_commit(sp_req_t *req);

/* A topic's authorized operations with no authorizer: every operation
 * Kafka supports on a topic (AclOperation codes READ 3, WRITE 4, CREATE 5,
 * DELETE 6, ALTER 7, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11). */
#define SP_TOPIC_AUTHORIZED_OPS ((1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | \
                                 (1 << 10) | (1 << 11))

/*
 * Auto topic creation (auto.create.topics.enable): when some of names[]
 * are valid topic names missing from the image, submits their creation
 * (num.partitions, default.replication.factor) and returns true; the
 * handler then returns, and 'again' re-runs it on the worker once the
 * topics exist (req->autocreated set, so it is tried once).  Returns false
 * when nothing needs creating or it is disabled.
 */
bool sp_autocreate(sp_req_t *req, const sp_str_t *names, int n, void (*again)(sp_req_t *req));

#endif
