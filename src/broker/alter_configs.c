/*
 * alter_configs.c - AlterConfigs (key 33, v0-v2) and IncrementalAlterConfigs
 * (key 44, v0-v1).
 *
 * Topic (type 2) and broker (type 4) resources become one metadata
 * operation (cluster/controller.h): validated, written to the metadata log
 * as ConfigRecords and fsynced, applied to the image and to the open
 * partition logs.  AlterConfigs replaces every override of a topic, or
 * every dynamic config of a broker resource, with the request's set;
 * IncrementalAlterConfigs applies SET, DELETE, APPEND and SUBTRACT per
 * key.  validate_only checks without writing anything.
 *
 * Dynamic broker configuration (Kafka's): resource name "" is the
 * cluster-wide default (DYNAMIC_DEFAULT_BROKER_CONFIG), this node's id in
 * decimal is this broker (DYNAMIC_BROKER_CONFIG).  Only the broker keys
 * that are defaults of topic keys (log.retention.ms, message.max.bytes,
 * log.flush.interval.messages, ...) may change; any other key is refused
 * by the controller with INVALID_REQUEST ("Cannot update these configs
 * dynamically: [...]"), a bad value with INVALID_CONFIG.
 *
 * Refused here, without the controller, with INVALID_REQUEST:
 *   - a BROKER resource naming another broker id, or not a number;
 *   - any other resource type;
 *   - a resource named twice in one request (every occurrence);
 *   - a key named twice in one resource;
 *   - an unknown incremental operation code;
 *   - a null value in AlterConfigs (Kafka: "Null value not supported for :
 *     key"; AlterConfigs has no way to delete a key but to leave it out).
 * Responses are in request order.  With no resource left to change,
 * the answer is immediate.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "broker/ctl.h"
#include "cluster/controller.h"
#include "proto/gen/alter_configs_request.h"
#include "proto/gen/alter_configs_response.h"
#include "proto/gen/incremental_alter_configs_request.h"
#include "proto/gen/incremental_alter_configs_response.h"

enum { RES_TOPIC = 2, RES_BROKER = 4 };

/* The operation and what is needed to answer it.  op comes first so that
 * the controller's op pointer is also the context. */
typedef struct ac_ctx {
    sp_ctl_op_t op;
    bool incremental;
    int n;                       /* resources in the request */
    int *item;                   /* per resource: index in op.topics, or -1 */
    int16_t *err;                /* per resource answered here */
    const char **msg;
} ac_ctx_t;

/* The request's resources seen through one shape (both APIs agree on
 * type, name and the config list; only the config entries differ). */
typedef struct res_view {
    int8_t type;
    sp_str_t name;
    int32_t nconfigs;
} res_view_t;

static res_view_t view(const sp_req_t *req, bool incremental, int i)
{
    res_view_t r;
    if (incremental) {
        const sp_incremental_alter_configs_request_t *b = req->r.body;
        const sp_incremental_alter_configs_request_alter_configs_resource_t *x = &b->resources.v[i];
        r.type = x->resource_type;
        r.name = x->resource_name;
        r.nconfigs = x->configs.n > 0 ? x->configs.n : 0;
    } else {
        const sp_alter_configs_request_t *b = req->r.body;
        const sp_alter_configs_request_alter_configs_resource_t *x = &b->resources.v[i];
        r.type = x->resource_type;
        r.name = x->resource_name;
        r.nconfigs = x->configs.n > 0 ? x->configs.n : 0;
    }
    return r;
}

static const char *fmt_msg(sp_arena_t *a, const char *fallback, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static const char *fmt_msg(sp_arena_t *a, const char *fallback, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return fallback;
    if ((size_t)n >= sizeof(buf))
        n = (int)sizeof(buf) - 1;
    char *m = sp_arena_strdup(a, buf, (size_t)n);
    return m ? m : fallback;
}

static sp_str_t opt(const char *s)
{
    return s ? sp_str_c(s) : SP_STR_NULL;
}

/* Checks a BROKER resource name: "" or this node's id.  NULL if fine,
 * else a message (arena text), as DescribeConfigs words it. */
static const char *broker_name_error(sp_req_t *req, sp_str_t name)
{
    int32_t self = req->broker->node_id;
    char buf[24];
    if (name.len <= 0)
        return NULL;
    bool num = name.len < (int32_t)sizeof(buf);
    for (int32_t i = 0; num && i < name.len; i++)
        num = (name.ptr[i] >= '0' && name.ptr[i] <= '9') || (i == 0 && name.ptr[i] == '-' && name.len > 1);
    if (!num)
        return fmt_msg(&req->arena, "Broker id must be an integer", "Broker id must be an integer, but it is: %.*s",
                       (int)name.len, name.ptr);
    memcpy(buf, name.ptr, (size_t)name.len);
    buf[name.len] = 0;
    if (strtoll(buf, NULL, 10) == self)
        return NULL;
    return fmt_msg(&req->arena, "Unexpected broker id",
                   "Unexpected broker id, expected %d or empty string, but received %.*s", (int)self,
                   (int)name.len, name.ptr);
}

/* Builds and sends the response from ctx (per-resource errors) and the
 * controller's results.  Worker thread. */
static void respond(sp_req_t *req, ac_ctx_t *c)
{
    for (int i = 0; i < c->n; i++) {
        if (c->item[i] < 0)
            continue;
        const sp_ctl_topic_t *t = &c->op.topics[c->item[i]];
        c->err[i] = t->error;
        c->msg[i] = t->message;
    }
    if (c->incremental) {
        sp_incremental_alter_configs_response_t resp;
        sp_incremental_alter_configs_response_init(&resp);
        resp.responses.v = sp_incremental_alter_configs_response_alter_configs_resource_response_alloc(&req->arena, c->n);
        resp.responses.n = resp.responses.v ? c->n : 0;
        for (int i = 0; i < resp.responses.n; i++) {
            res_view_t r = view(req, true, i);
            resp.responses.v[i].error_code = c->err[i];
            resp.responses.v[i].error_message = opt(c->msg[i]);
            resp.responses.v[i].resource_type = r.type;
            resp.responses.v[i].resource_name = r.name;
        }
        sp_req_respond(req, &resp);
    } else {
        sp_alter_configs_response_t resp;
        sp_alter_configs_response_init(&resp);
        resp.responses.v = sp_alter_configs_response_alter_configs_resource_response_alloc(&req->arena, c->n);
        resp.responses.n = resp.responses.v ? c->n : 0;
        for (int i = 0; i < resp.responses.n; i++) {
            res_view_t r = view(req, false, i);
            resp.responses.v[i].error_code = c->err[i];
            resp.responses.v[i].error_message = opt(c->msg[i]);
            resp.responses.v[i].resource_type = r.type;
            resp.responses.v[i].resource_name = r.name;
        }
        sp_req_respond(req, &resp);
    }
}

static void alter_done(sp_req_t *req, sp_ctl_op_t *op)
{
    respond(req, (ac_ctx_t *)op);
}

/* A (type, name) pair for duplicate detection in O(n log n): requests
 * may hold very many resources or keys. */
typedef struct dkey {
    int8_t type;
    sp_str_t name;
    int32_t idx;
    bool dup;
} dkey_t;

static int key_cmp(const void *pa, const void *pb)
{
    const dkey_t *a = pa, *b = pb;
    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    int32_t la = a->name.len > 0 ? a->name.len : 0, lb = b->name.len > 0 ? b->name.len : 0;
    int32_t m = la < lb ? la : lb;
    int r = m ? memcmp(a->name.ptr, b->name.ptr, (size_t)m) : 0;
    if (r)
        return r;
    if (la != lb)
        return la < lb ? -1 : 1;
    return (a->name.len < 0) - (b->name.len < 0);
}

static int idx_cmp(const void *pa, const void *pb)
{
    const dkey_t *a = pa, *b = pb;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* Sets dup on every key equal to another one and puts k[] back in index
 * order.  Returns the index of the first duplicate, or -1. */
static int32_t mark_dups(dkey_t *k, int32_t n)
{
    qsort(k, (size_t)n, sizeof(*k), key_cmp);
    for (int32_t i = 1; i < n; i++)
        if (key_cmp(&k[i - 1], &k[i]) == 0)
            k[i - 1].dup = k[i].dup = true;
    qsort(k, (size_t)n, sizeof(*k), idx_cmp);
    for (int32_t i = 0; i < n; i++)
        if (k[i].dup)
            return i;
    return -1;
}

/* Fills topic item t from resource i: its key/value arrays (borrowed
 * strings from the body) and, for the incremental API, the operations.
 * Returns 0, or -1 on OOM. */
static int fill_item(sp_req_t *req, ac_ctx_t *c, int i, sp_ctl_topic_t *t)
{
    res_view_t r = view(req, c->incremental, i);
    sp_arena_t *a = &req->arena;
    t->name = r.name;
    t->nconfigs = (int)r.nconfigs;
    if (r.nconfigs == 0)
        return 0;
    t->ckeys = sp_arena_alloc(a, sizeof(sp_str_t) * (size_t)r.nconfigs);
    t->cvalues = sp_arena_alloc(a, sizeof(sp_str_t) * (size_t)r.nconfigs);
    if (!t->ckeys || !t->cvalues)
        return -1;
    if (c->incremental) {
        const sp_incremental_alter_configs_request_t *b = req->r.body;
        const sp_incremental_alter_configs_request_alter_configs_resource_t *x = &b->resources.v[i];
        t->cops = sp_arena_alloc(a, (size_t)r.nconfigs);
        if (!t->cops)
            return -1;
        for (int32_t k = 0; k < r.nconfigs; k++) {
            t->ckeys[k] = x->configs.v[k].name;
            t->cvalues[k] = x->configs.v[k].value;
            t->cops[k] = x->configs.v[k].config_operation;
            if (!t->error && (t->cops[k] < SP_CFG_OP_SET || t->cops[k] > SP_CFG_OP_SUBTRACT)) {
                t->error = SP_ERR_INVALID_REQUEST;
                t->message = fmt_msg(a, "Unknown config operation", "Unknown config operation %d for %.*s",
                                     (int)t->cops[k], (int)t->ckeys[k].len, t->ckeys[k].ptr);
            }
        }
    } else {
        const sp_alter_configs_request_t *b = req->r.body;
        const sp_alter_configs_request_alter_configs_resource_t *x = &b->resources.v[i];
        for (int32_t k = 0; k < r.nconfigs; k++) {
            t->ckeys[k] = x->configs.v[k].name;
            t->cvalues[k] = x->configs.v[k].value;
            if (!t->error && t->cvalues[k].len < 0) { /* Kafka's text, its odd colon included */
                t->error = SP_ERR_INVALID_REQUEST;
                t->message = fmt_msg(a, "Null value not supported", "Null value not supported for : %.*s",
                                     (int)t->ckeys[k].len, t->ckeys[k].ptr);
            }
        }
    }
    if (!t->error) {
        dkey_t *keys = sp_arena_alloc(a, sizeof(dkey_t) * (size_t)r.nconfigs);
        if (!keys)
            return -1;
        for (int32_t k = 0; k < r.nconfigs; k++)
            keys[k] = (dkey_t){ 0, t->ckeys[k], k, false };
        int32_t k = mark_dups(keys, r.nconfigs);
        if (k >= 0) {
            t->error = SP_ERR_INVALID_REQUEST;
            t->message = fmt_msg(a, "Error due to duplicate config keys",
                                 "Error due to duplicate config keys: %.*s", (int)t->ckeys[k].len,
                                 t->ckeys[k].ptr);
        }
    }
    return 0;
}

/* Common body of both handlers. */
static void handle(sp_req_t *req, bool incremental)
{
    int32_t nres;
    bool validate_only;
    if (incremental) {
        const sp_incremental_alter_configs_request_t *b = req->r.body;
        nres = b->resources.n;
        validate_only = b->validate_only;
    } else {
        const sp_alter_configs_request_t *b = req->r.body;
        nres = b->resources.n;
        validate_only = b->validate_only;
    }
    int n = nres > 0 ? (int)nres : 0;
    sp_arena_t *a = &req->arena;
    ac_ctx_t *c = sp_arena_zalloc(a, sizeof(*c));
    size_t cnt = (size_t)(n ? n : 1);
    if (c) {
        c->item = sp_arena_alloc(a, sizeof(int) * cnt);
        c->err = sp_arena_zalloc(a, sizeof(int16_t) * cnt);
        c->msg = sp_arena_zalloc(a, sizeof(char *) * cnt);
        c->op.topics = sp_arena_zalloc(a, sizeof(sp_ctl_topic_t) * cnt);
    }
    if (!c || !c->item || !c->err || !c->msg || !c->op.topics) {
        sp_req_close(req, "out of memory for AlterConfigs");
        return;
    }
    c->incremental = incremental;
    c->n = n;

    dkey_t *keys = sp_arena_alloc(a, sizeof(dkey_t) * cnt);
    if (!keys) {
        sp_req_close(req, "out of memory for AlterConfigs");
        return;
    }
    for (int i = 0; i < n; i++) {
        res_view_t r = view(req, incremental, i);
        keys[i] = (dkey_t){ r.type, r.name, i, false };
    }
    mark_dups(keys, n);

    int ntopics = 0;
    for (int i = 0; i < n; i++) {
        res_view_t r = view(req, incremental, i);
        c->item[i] = -1;
        if (keys[i].dup) {
            c->err[i] = SP_ERR_INVALID_REQUEST;
            c->msg[i] = "Duplicate resource in the request.";
            continue;
        }
        switch (r.type) {
        case RES_BROKER:
        case RES_TOPIC: {
            sp_ctl_topic_t *t = &c->op.topics[ntopics];
            if (r.type == RES_BROKER && (c->msg[i] = broker_name_error(req, r.name))) {
                c->err[i] = SP_ERR_INVALID_REQUEST;
                break;
            }
            if (fill_item(req, c, i, t) != 0) {
                sp_req_close(req, "out of memory for AlterConfigs");
                return;
            }
            if (t->error) { /* refused here: answer without the controller */
                c->err[i] = t->error;
                c->msg[i] = t->message;
                memset(t, 0, sizeof(*t));
                break;
            }
            t->resource_type = r.type;
            c->item[i] = ntopics++;
            break;
        }
        default:
            c->err[i] = SP_ERR_INVALID_REQUEST;
            c->msg[i] = fmt_msg(a, "unsupported resource type", "unsupported resource type: %d", (int)r.type);
            break;
        }
    }
    if (ntopics == 0) { /* nothing left for the controller */
        respond(req, c);
        return;
    }
    c->op.kind = incremental ? SP_CTL_INCR_ALTER_CONFIGS : SP_CTL_ALTER_CONFIGS;
    c->op.validate_only = validate_only;
    c->op.n = ntopics;
    sp_ctl_submit(req, &c->op, alter_done);
}

void sp_handle_alter_configs(sp_req_t *req)
{
    handle(req, false);
}

void sp_handle_incremental_alter_configs(sp_req_t *req)
{
    handle(req, true);
}
