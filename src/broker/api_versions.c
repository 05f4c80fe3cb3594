/*
 * api_versions.c - ApiVersions (key 18), v0-v4.
 *
 * Lists exactly the APIs in api.c.  A version above ours is answered in v0
 * with UNSUPPORTED_VERSION and the full list (KIP-511), so that the client
 * retries with a version we speak.  From v3 the client names its software;
 * a name or version that breaks Kafka's pattern gets INVALID_REQUEST.
 */
#include <ctype.h>

#include "broker/api.h"
#include "proto/gen/api_versions_request.h"
#include "proto/gen/api_versions_response.h"
#include "util/log.h"

static void fill(sp_req_t *req, sp_api_versions_response_t *resp)
{
    int n;
    const sp_api_t *apis = sp_api_list(&n);
    resp->api_keys.v = sp_api_versions_response_api_version_alloc(&req->arena, n);
    resp->api_keys.n = resp->api_keys.v ? n : 0;
    for (int i = 0; i < resp->api_keys.n; i++) {
        resp->api_keys.v[i].api_key = apis[i].key;
        resp->api_keys.v[i].min_version = apis[i].min_version;
        resp->api_keys.v[i].max_version = apis[i].max_version;
    }
}

/* Kafka: [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])? */
static int valid_software_field(sp_str_t s)
{
    if (s.len <= 0)
        return 0;
    for (int32_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        int edge = i == 0 || i == s.len - 1;
        if (!isalnum(c) && (edge || (c != '-' && c != '.')))
            return 0;
    }
    return 1;
}

void sp_handle_api_versions(sp_req_t *req)
{
    sp_api_versions_response_t resp;
    sp_api_versions_response_init(&resp);
    fill(req, &resp);
    if (req->r.hdr.request_api_version >= 3) {
        const sp_api_versions_request_t *body = req->r.body;
        if (!valid_software_field(body->client_software_name) ||
            !valid_software_field(body->client_software_version)) {
            sp_debug("api", "ApiVersions: invalid client software name/version");
            resp.error_code = SP_ERR_INVALID_REQUEST;
            resp.api_keys.n = 0; /* as Kafka: an error answer lists nothing */
        } else {
            sp_debug("api", "client %.*s %.*s", (int)body->client_software_name.len,
                     body->client_software_name.ptr, (int)body->client_software_version.len,
                     body->client_software_version.ptr);
        }
    }
    sp_req_respond(req, &resp);
}

void sp_api_versions_error(sp_req_t *req, int16_t error_code, int16_t version)
{
    sp_api_versions_response_t resp;
    sp_api_versions_response_init(&resp);
    if (error_code == SP_ERR_UNSUPPORTED_VERSION)
        fill(req, &resp); /* KIP-511: so that the client can pick a version */
    resp.error_code = error_code;
    sp_req_respond_at(req, &resp, version);
}
