/*
 * describe_cluster.c - DescribeCluster (key 60), v0-v1.
 *
 * Cluster id, controller and brokers, from one metadata image.  v1 adds
 * endpoint_type: 1 (brokers) is answered; as Kafka's broker listener
 * answers, 2 (controllers) gets MISMATCHED_ENDPOINT_TYPE (the request
 * reached a broker endpoint: Spool's controller runs inside the broker
 * and has no endpoint of its own) and anything else
 * UNSUPPORTED_ENDPOINT_TYPE; the answer's endpoint_type is always 1, the
 * type of the endpoint that answers.  Authorized operations are
 * given when asked (no authorizer: everything a cluster allows).
 */
#include <stdio.h>

#include "broker/api.h"
#include "cluster/image.h"
#include "proto/gen/describe_cluster_request.h"
#include "proto/gen/describe_cluster_response.h"

/* Kafka AclOperation codes: CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9,
 * DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12 (as metadata.c). */
#define CLUSTER_OPS ((1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12))

enum { ENDPOINT_BROKERS = 1, ENDPOINT_CONTROLLERS = 2 };

void sp_handle_describe_cluster(sp_req_t *req)
{
    const sp_describe_cluster_request_t *body = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    int8_t endpoint = v >= 1 ? body->endpoint_type : ENDPOINT_BROKERS;
    sp_describe_cluster_response_t resp;
    sp_describe_cluster_response_init(&resp);
    resp.endpoint_type = ENDPOINT_BROKERS; /* the endpoint answering */

    if (endpoint != ENDPOINT_BROKERS) {
        char buf[160];
        if (endpoint == ENDPOINT_CONTROLLERS)
            snprintf(buf, sizeof(buf), "The request was sent to an endpoint of type BROKER, but we wanted "
                                       "an endpoint of type CONTROLLER (Spool's controller runs inside the broker)");
        else
            snprintf(buf, sizeof(buf), "Unsupported endpoint type %d", (int)endpoint);
        resp.error_code = endpoint == ENDPOINT_CONTROLLERS ? SP_ERR_MISMATCHED_ENDPOINT_TYPE
                                                           : SP_ERR_UNSUPPORTED_ENDPOINT_TYPE;
        resp.error_message = sp_str_c(buf);
        sp_req_respond(req, &resp); /* encodes now: buf may go after */
        return;
    }

    sp_image_t *img = sp_image_acquire(req->broker->images);
    resp.cluster_id = sp_str_c(img->cluster_id);
    resp.controller_id = img->controller_id;
    resp.brokers.v = sp_describe_cluster_response_describe_cluster_broker_alloc(&req->arena, img->nbrokers);
    resp.brokers.n = resp.brokers.v ? img->nbrokers : 0;
    for (int32_t i = 0; i < resp.brokers.n; i++) {
        const sp_broker_info_t *b = &img->brokers[i];
        resp.brokers.v[i].broker_id = b->node_id;
        resp.brokers.v[i].host = sp_str_c(b->host);
        resp.brokers.v[i].port = b->port;
        resp.brokers.v[i].rack = b->rack ? sp_str_c(b->rack) : SP_STR_NULL;
    }
    if (body->include_cluster_authorized_operations)
        resp.cluster_authorized_operations = CLUSTER_OPS;
    sp_req_respond(req, &resp); /* encodes now: the image may go after */
    sp_image_release(img);
}
