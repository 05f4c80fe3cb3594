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

#include "broker/broker.h"
#include "proto/gen/errors.h"
#include "proto/gen/messages.h"
#include "proto/request.h"

typedef struct sp_req {
    sp_request_t r;              /* header and decoded body */
    sp_arena_t arena;            /* freed once the response is sent */
    const sp_broker_t *broker;
    void *conn;                  /* the connection (net/conn.c), opaque */
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
void sp_req_close(sp_req_t *req, const char *why);

/* Handlers (one file per API family). */
void sp_handle_api_versions(sp_req_t *req);
/* ApiVersions answer with an error: UNSUPPORTED_VERSION at v0 for a
 * version above ours, INVALID_REQUEST for a body that does not decode. */
void sp_api_versions_error(sp_req_t *req, int16_t error_code, int16_t version);
void sp_handle_metadata(sp_req_t *req);

#endif
