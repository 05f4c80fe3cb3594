/*
 * describe_configs.c - DescribeConfigs (key 32), v1-v4.
 *
 * Two resource types:
 *   TOPIC (2)   every Kafka topic key (cluster/topic_config.h), or only the
 *               keys asked for; the effective value and where it comes
 *               from: the topic's override (DYNAMIC_TOPIC_CONFIG), the
 *               broker synonym set dynamically on this broker
 *               (DYNAMIC_BROKER_CONFIG) or as the cluster default
 *               (DYNAMIC_DEFAULT_BROKER_CONFIG), set in server.properties
 *               (STATIC_BROKER_CONFIG), or the default (DEFAULT_CONFIG).
 *   BROKER (4)  this node's id, or "" (the cluster-wide default): every key
 *               of the broker table.  The broker keys that are synonyms of
 *               topic keys are dynamic (read_only false) and show their
 *               dynamic value when one is set: this broker's own (source
 *               2, not for "") before the cluster default (source 3); all
 *               other keys are read-only, from server.properties or the
 *               default.
 * Any other type (BROKER_LOGGER, CLIENT_METRICS, ...) is answered with
 * INVALID_REQUEST for that resource.
 *
 * Synonyms (v1+, include_synonyms) follow Kafka's order: the most specific
 * first, only those that exist.  For a topic key: the override, then under
 * the broker key's name DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG,
 * STATIC_BROKER_CONFIG and the default.  For a broker key the same without
 * the override.  config_type and documentation appear from v3
 * (documentation only when asked).
 *
 * Answered at once, from one image held for the whole request; the values
 * it borrows from the image are encoded before it is released.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "cluster/controller.h"
#include "cluster/image.h"
#include "cluster/names.h"
#include "cluster/topic_config.h"
#include "proto/gen/describe_configs_request.h"
#include "proto/gen/describe_configs_response.h"

enum { RES_TOPIC = 2, RES_BROKER = 4 };

typedef sp_describe_configs_request_describe_configs_resource_t res_t;
typedef sp_describe_configs_response_describe_configs_result_t result_t;
typedef sp_describe_configs_response_describe_configs_resource_result_t entry_t;
typedef sp_describe_configs_response_describe_configs_synonym_t syn_t;

typedef struct dc_ctx {
    sp_req_t *req;
    int16_t v;
    bool synonyms, docs;
} dc_ctx_t;

/* An arena copy of a formatted message, or a fixed fallback on OOM. */
static sp_str_t fmt_msg(sp_arena_t *a, const char *fallback, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static sp_str_t fmt_msg(sp_arena_t *a, const char *fallback, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return sp_str_c(fallback);
    if ((size_t)n >= sizeof(buf))
        n = (int)sizeof(buf) - 1;
    char *m = sp_arena_strdup(a, buf, (size_t)n);
    return sp_str_c(m ? m : fallback);
}

/* Whether name was asked for: keys null or empty (all, as Kafka) or name
 * among them. */
static bool wanted(const res_t *res, const char *name)
{
    if (res->configuration_keys.n <= 0)
        return true;
    for (int32_t i = 0; i < res->configuration_keys.n; i++)
        if (sp_str_eq_lit(res->configuration_keys.v[i], name))
            return true;
    return false;
}

static sp_str_t opt(const char *s)
{
    return s ? sp_str_c(s) : SP_STR_NULL;
}

/* Fills the common fields of one entry. */
static void entry_fill(const dc_ctx_t *c, entry_t *e, const char *name, const char *value,
                       int source, bool read_only, int type, const char *doc)
{
    e->name = sp_str_c(name);
    e->value = opt(value);
    e->read_only = read_only;
    e->is_default = source == SP_CS_DEFAULT;
    e->config_source = (int8_t)source;
    e->is_sensitive = false;
    e->config_type = (int8_t)type;
    e->documentation = c->v >= 3 && c->docs ? opt(doc) : SP_STR_NULL;
    e->synonyms.n = 0;
}

/* Sets e's synonyms from syn[0..n) (copied into the arena). */
static void set_synonyms(const dc_ctx_t *c, entry_t *e, const syn_t *syn, int n)
{
    if (!c->synonyms || n <= 0)
        return;
    e->synonyms.v = sp_describe_configs_response_describe_configs_synonym_alloc(&c->req->arena, n);
    if (!e->synonyms.v)
        return;
    memcpy(e->synonyms.v, syn, sizeof(*syn) * (size_t)n);
    e->synonyms.n = n;
}

/* ---- TOPIC ------------------------------------------------------------- */

static void describe_topic(const dc_ctx_t *c, const sp_image_t *img, const res_t *res, result_t *out)
{
    sp_arena_t *a = &c->req->arena;
    const sp_config_t *bcfg = c->req->broker->config;
    if (!sp_topic_name_valid(res->resource_name.ptr, res->resource_name.len)) {
        out->error_code = SP_ERR_INVALID_TOPIC_EXCEPTION;
        out->error_message = fmt_msg(a, "Invalid topic name", "Topic name '%.*s' is illegal",
                                     (int)res->resource_name.len, res->resource_name.ptr);
        return;
    }
    const sp_topic_info_t *t = sp_image_topic(img, res->resource_name.ptr, res->resource_name.len);
    if (!t) {
        out->error_code = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION; /* with an empty text, as Kafka */
        return;
    }
    int nk;
    const sp_topic_key_t *keys = sp_topic_keys(&nk);
    int n = 0;
    for (int i = 0; i < nk; i++)
        n += wanted(res, keys[i].name);
    out->configs.v = sp_describe_configs_response_describe_configs_resource_result_alloc(a, n);
    if (!out->configs.v && n > 0) {
        out->error_code = SP_ERR_UNKNOWN_SERVER_ERROR;
        out->error_message = sp_str_lit("out of memory");
        return;
    }
    int j = 0;
    for (int i = 0; i < nk; i++) {
        const sp_topic_key_t *k = &keys[i];
        if (!wanted(res, k->name))
            continue;
        int src;
        const char *val = sp_topic_config_value(k, t->nconfigs, t->ckeys, t->cvalues, img, bcfg, &src);
        entry_t *e = &out->configs.v[j++];
        entry_fill(c, e, k->name, val, src, false, k->type, k->doc);

        syn_t syn[5];
        int ns = 0;
        const char *dname = k->broker_key ? k->broker_key : k->name, *dv;
        for (int o = 0; o < t->nconfigs; o++)
            if (strcmp(t->ckeys[o], k->name) == 0)
                syn[ns++] = (syn_t){ sp_str_c(k->name), opt(t->cvalues[o]), SP_CS_DYNAMIC_TOPIC };
        if (k->broker_key && (dv = sp_image_broker_config(img, false, k->broker_key)))
            syn[ns++] = (syn_t){ sp_str_c(k->broker_key), sp_str_c(dv), SP_CS_DYNAMIC_BROKER };
        if (k->broker_key && (dv = sp_image_broker_config(img, true, k->broker_key)))
            syn[ns++] = (syn_t){ sp_str_c(k->broker_key), sp_str_c(dv), SP_CS_DYNAMIC_DEFAULT_BROKER };
        if (k->broker_key && bcfg && sp_config_source(bcfg, k->broker_key) == SP_CFG_SRC_STATIC)
            syn[ns++] = (syn_t){ sp_str_c(k->broker_key), opt(sp_config_str(bcfg, k->broker_key)),
                                 SP_CS_STATIC_BROKER };
        syn[ns++] = (syn_t){ sp_str_c(dname), opt(k->def), SP_CS_DEFAULT };
        set_synonyms(c, e, syn, ns);
    }
    out->configs.n = j;
}

/* ---- BROKER ------------------------------------------------------------ */

static int broker_type(sp_cfg_type_t t)
{
    switch (t) {
    case SP_CFG_INT: return SP_CT_INT;
    case SP_CFG_LONG: return SP_CT_LONG;
    case SP_CFG_BOOL: return SP_CT_BOOLEAN;
    case SP_CFG_STRING: return SP_CT_STRING;
    case SP_CFG_LIST: return SP_CT_LIST;
    }
    return SP_CT_STRING;
}

/* Parses a broker resource name: true with *id, or false (not a number). */
static bool parse_broker_id(sp_str_t s, int64_t *id)
{
    char buf[24];
    if (s.len <= 0 || s.len >= (int32_t)sizeof(buf))
        return false;
    memcpy(buf, s.ptr, (size_t)s.len);
    buf[s.len] = 0;
    char *end;
    if (!(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9')))
        return false;
    long long v = strtoll(buf, &end, 10);
    if (*end)
        return false;
    *id = v;
    return true;
}

static void describe_broker(const dc_ctx_t *c, const sp_image_t *img, const res_t *res, result_t *out)
{
    sp_arena_t *a = &c->req->arena;
    const sp_config_t *bcfg = c->req->broker->config;
    int32_t self = c->req->broker->node_id;
    bool cluster_default = res->resource_name.len <= 0;
    if (!cluster_default) {
        int64_t id;
        if (!parse_broker_id(res->resource_name, &id)) {
            out->error_code = SP_ERR_INVALID_REQUEST;
            out->error_message = fmt_msg(a, "Broker id must be an integer",
                                         "Broker id must be an integer, but it is: %.*s",
                                         (int)res->resource_name.len, res->resource_name.ptr);
            return;
        }
        if (id != self) {
            out->error_code = SP_ERR_INVALID_REQUEST;
            out->error_message = fmt_msg(a, "Unexpected broker id",
                                         "Unexpected broker id, expected %" PRId32
                                         " or empty string, but received %.*s",
                                         self, (int)res->resource_name.len, res->resource_name.ptr);
            return;
        }
    }
    int nd;
    const sp_cfg_def_t *defs = sp_config_defs(&nd);
    int n = 0;
    for (int i = 0; i < nd; i++)
        n += !defs[i].alias_of && wanted(res, defs[i].name);
    out->configs.v = sp_describe_configs_response_describe_configs_resource_result_alloc(a, n);
    if (!out->configs.v && n > 0) {
        out->error_code = SP_ERR_UNKNOWN_SERVER_ERROR;
        out->error_message = sp_str_lit("out of memory");
        return;
    }
    int j = 0;
    for (int i = 0; i < nd; i++) {
        const sp_cfg_def_t *d = &defs[i];
        if (d->alias_of || !wanted(res, d->name))
            continue;
        const char *val = bcfg ? sp_config_str(bcfg, d->name) : d->def;
        int src = bcfg && sp_config_source(bcfg, d->name) == SP_CFG_SRC_STATIC ? SP_CS_STATIC_BROKER
                                                                                 : SP_CS_DEFAULT;
        /* dynamic keys: this broker's value (not for ""), then the default */
        bool dynamic = sp_topic_key_by_broker_key(d->name, (int32_t)strlen(d->name)) != NULL;
        const char *pb = dynamic && !cluster_default ? sp_image_broker_config(img, false, d->name) : NULL;
        const char *dd = dynamic ? sp_image_broker_config(img, true, d->name) : NULL;
        syn_t syn[5];
        int ns = 0;
        if (pb)
            syn[ns++] = (syn_t){ sp_str_c(d->name), sp_str_c(pb), SP_CS_DYNAMIC_BROKER };
        if (dd)
            syn[ns++] = (syn_t){ sp_str_c(d->name), sp_str_c(dd), SP_CS_DYNAMIC_DEFAULT_BROKER };
        if (src == SP_CS_STATIC_BROKER)
            syn[ns++] = (syn_t){ sp_str_c(d->name), opt(val), SP_CS_STATIC_BROKER };
        /* an older name set instead of this one (broker.id for node.id) */
        for (int k = 0; k < nd && bcfg; k++) {
            const sp_cfg_def_t *al = &defs[k];
            if (!al->alias_of || strcmp(al->alias_of, d->name) != 0 ||
                sp_config_source(bcfg, al->name) != SP_CFG_SRC_STATIC)
                continue;
            if (src == SP_CS_DEFAULT) {
                val = sp_config_str(bcfg, al->name);
                src = SP_CS_STATIC_BROKER;
            }
            syn[ns++] = (syn_t){ sp_str_c(al->name), opt(sp_config_str(bcfg, al->name)),
                                 SP_CS_STATIC_BROKER };
            break;
        }
        if (d->def)
            syn[ns++] = (syn_t){ sp_str_c(d->name), sp_str_c(d->def), SP_CS_DEFAULT };
        if (pb || dd) {
            val = pb ? pb : dd;
            src = pb ? SP_CS_DYNAMIC_BROKER : SP_CS_DYNAMIC_DEFAULT_BROKER;
        }
        entry_t *e = &out->configs.v[j++];
        entry_fill(c, e, d->name, val, src, !dynamic, broker_type(d->type), d->doc);
        set_synonyms(c, e, syn, ns);
    }
    out->configs.n = j;
}

void sp_handle_describe_configs(sp_req_t *req)
{
    const sp_describe_configs_request_t *body = req->r.body;
    dc_ctx_t c = { req, req->r.hdr.request_api_version, false, false };
    c.synonyms = c.v >= 1 && body->include_synonyms;
    c.docs = c.v >= 3 && body->include_documentation;

    sp_describe_configs_response_t resp;
    sp_describe_configs_response_init(&resp);
    int32_t n = body->resources.n > 0 ? body->resources.n : 0;
    resp.results.v = sp_describe_configs_response_describe_configs_result_alloc(&req->arena, n);
    resp.results.n = resp.results.v ? n : 0;
    if (n > 0 && !resp.results.v) {
        sp_req_close(req, "out of memory for DescribeConfigs");
        return;
    }
    sp_image_t *img = sp_image_acquire(req->broker->images);
    for (int32_t i = 0; i < resp.results.n; i++) {
        const res_t *res = &body->resources.v[i];
        result_t *out = &resp.results.v[i];
        out->resource_type = res->resource_type;
        out->resource_name = res->resource_name;
        out->error_message = sp_str_lit(""); /* Kafka's, when nothing is wrong */
        out->configs.n = 0;
        switch (res->resource_type) {
        case RES_TOPIC:
            describe_topic(&c, img, res, out);
            break;
        case RES_BROKER:
            describe_broker(&c, img, res, out);
            break;
        default:
            out->error_code = SP_ERR_INVALID_REQUEST;
            out->error_message = fmt_msg(&req->arena, "unsupported resource type",
                                         "unsupported resource type: %d", (int)res->resource_type);
            break;
        }
        if (out->error_code)
            out->configs.n = 0;
    }
    sp_req_respond(req, &resp); /* encodes now: the image may go after */
    sp_image_release(img);
}
