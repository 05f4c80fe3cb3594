/* node.c - one broker: its parts started and stopped in order (node.h). */
#include "broker/node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/controller.h"
#include "cluster/image.h"
#include "cluster/meta_properties.h"
#include "cluster/partition.h"
#include "group/coordinator.h"
#include "txn/txn_coordinator.h"
#include "log/logmgr.h"
#include "net/server.h"
#include "txn/pid_manager.h"
#include "util/log.h"

struct sp_node {
    sp_broker_t broker;
    sp_server_t *server;
};

/* Splits "NAME://host:port" into host and port; host may be empty or [v6]. */
static int parse_listener(const char *uri, char **host, int *port, char *name, size_t ncap)
{
    const char *sep = strstr(uri, "://");
    if (!sep)
        return -1;
    snprintf(name, ncap, "%.*s", (int)(sep - uri), uri);
    const char *hp = sep + 3;
    const char *colon;
    size_t hl;
    if (*hp == '[') {
        const char *close = strchr(hp, ']');
        if (!close || close[1] != ':')
            return -1;
        hp++;
        hl = (size_t)(close - hp);
        colon = close + 1;
    } else {
        colon = strrchr(hp, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - hp);
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535)
        return -1;
    *host = strndup(hp, hl);
    *port = (int)p;
    return *host ? 0 : -1;
}

/* First usable PLAINTEXT listener of a comma list. */
static int pick_listener(const char *key, const char *list, char **host, int *port)
{
    char *copy = strdup(list), *save = NULL;
    int rc = -1;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char name[64];
        while (*tok == ' ')
            tok++;
        if (parse_listener(tok, host, port, name, sizeof(name)) != 0) {
            sp_error("config", "%s: cannot parse listener '%s' (expected NAME://host:port)", key, tok);
            break;
        }
        if (strcmp(name, "SSL") == 0 || strncmp(name, "SASL_", 5) == 0) {
            sp_warn("config", "%s: listener %s is not supported yet; skipped", key, tok);
        } else if (strcmp(name, "CONTROLLER") == 0) {
            sp_warn("config", "%s: %s: Spool needs no controller listener; skipped", key, tok);
        } else if (rc == 0) {
            sp_warn("config", "%s: only one listener is served; %s ignored", key, tok);
            free(*host);
            continue;
        } else {
            rc = 0;
            continue;
        }
        free(*host);
        *host = NULL;
    }
    free(copy);
    return rc;
}

static int split_dirs(const char *list, sp_broker_t *b)
{
    char *copy = strdup(list), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (!*tok)
            continue;
        b->log_dirs = realloc(b->log_dirs, sizeof(char *) * (size_t)(b->nlog_dirs + 1));
        b->log_dirs[b->nlog_dirs++] = strdup(tok);
    }
    free(copy);
    return b->nlog_dirs > 0 ? 0 : -1;
}

static int build_broker(const sp_config_t *cfg, sp_broker_t *b)
{
    memset(b, 0, sizeof(*b));
    b->node_id = (int32_t)sp_config_long(cfg, "node.id");
    if (sp_config_source(cfg, "node.id") == SP_CFG_SRC_DEFAULT && sp_config_str(cfg, "broker.id"))
        b->node_id = (int32_t)sp_config_long(cfg, "broker.id");
    b->max_request_bytes = (int32_t)sp_config_long(cfg, "socket.request.max.bytes");
    const char *rack = sp_config_str(cfg, "broker.rack");
    b->rack = rack && *rack ? strdup(rack) : NULL;
    b->io_threads = (int)sp_config_long(cfg, "num.network.threads");
    if (b->io_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        b->io_threads = n > 0 ? (int)n : 1;
    }
    b->conn_max_idle_ms = sp_config_long(cfg, "connections.max.idle.ms");
    b->read_timeout_ms = sp_config_long(cfg, "socket.request.read.timeout.ms");
    b->max_connections = (int32_t)sp_config_long(cfg, "max.connections");
    b->max_conn_per_ip = (int32_t)sp_config_long(cfg, "max.connections.per.ip");
    const char *ov = sp_config_str(cfg, "max.connections.per.ip.overrides");
    b->max_conn_per_ip_overrides = ov && *ov ? strdup(ov) : NULL;
    b->queued_max_bytes = sp_config_long(cfg, "queued.max.request.bytes");
    /* Kafka's checks (KafkaConfig.validateValues) */
    if (b->queued_max_bytes > 0 && b->queued_max_bytes < b->max_request_bytes) {
        sp_error("config", "queued.max.request.bytes (%lld) must be larger or equal to "
                 "socket.request.max.bytes (%d), or <= 0 for no limit",
                 (long long)b->queued_max_bytes, b->max_request_bytes);
        return -1;
    }
    if (b->max_conn_per_ip == 0 && !b->max_conn_per_ip_overrides) {
        sp_error("config", "max.connections.per.ip can be set to zero only if "
                 "max.connections.per.ip.overrides is set");
        return -1;
    }
    if (pick_listener("listeners", sp_config_str(cfg, "listeners"), &b->bind_host, &b->bind_port) != 0) {
        sp_error("config", "listeners: no usable PLAINTEXT listener");
        return -1;
    }
    const char *adv = sp_config_str(cfg, "advertised.listeners");
    if (adv) {
        if (pick_listener("advertised.listeners", adv, &b->adv_host, &b->adv_port) != 0)
            return -1;
    } else {
        b->adv_host = strdup(b->bind_host);
        b->adv_port = b->bind_port;
    }
    if (!b->adv_host[0] || strcmp(b->adv_host, "0.0.0.0") == 0 || strcmp(b->adv_host, "::") == 0) {
        char hn[256];
        if (gethostname(hn, sizeof(hn)) == 0) {
            hn[sizeof(hn) - 1] = 0;
            free(b->adv_host);
            b->adv_host = strdup(hn);
        }
    }
    const char *dirs = sp_config_str(cfg, "log.dirs");
    if (!dirs)
        dirs = sp_config_str(cfg, "log.dir");
    if (split_dirs(dirs, b) != 0) {
        sp_error("config", "log.dirs: no directory given");
        return -1;
    }
    return 0;
}

static void free_broker(sp_broker_t *b)
{
    for (int i = 0; i < b->nlog_dirs; i++)
        free(b->log_dirs[i]);
    free(b->log_dirs);
    free(b->rack);
    free(b->bind_host);
    free(b->adv_host);
    free(b->max_conn_per_ip_overrides);
}

/* Stops what was started, in the reverse order: no request runs by now
 * (the server stopped), so groups, producer ids (a block they asked for
 * is still answered: the metadata thread runs until the next step),
 * metadata, then the partitions (they stop listening to their logs), then
 * the logs (clean-shutdown marker last, only when clean), then whatever
 * completions they posted. */
static void node_down(sp_node_t *n, bool clean)
{
    sp_broker_t *b = &n->broker;
    sp_txn_coordinator_stop(b->txn); /* first: its markers reach the group coordinator */
    b->txn = NULL;
    sp_coordinator_stop(b->coordinator);
    b->coordinator = NULL;
    sp_pid_manager_stop(b->pids);
    b->pids = NULL;
    sp_controller_stop(b->controller);
    b->controller = NULL;
    sp_partitions_free(b->partitions);
    b->partitions = NULL;
    sp_logmgr_shutdown(b->logs, clean);
    b->logs = NULL;
    sp_server_free(n->server);
    n->server = NULL;
    sp_image_holder_free(b->images);
    b->images = NULL;
    free_broker(b);
    free(n);
}

sp_node_t *sp_node_start(const sp_config_t *cfg, uv_loop_t *loop, int max_open_files)
{
    sp_node_t *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    sp_broker_t *b = &n->broker;
    if (build_broker(cfg, b) != 0) {
        free_broker(b);
        free(n);
        return NULL;
    }
    b->config = cfg;
    if (sp_meta_properties_init(b->log_dirs, b->nlog_dirs, b->node_id, b->cluster_id,
                                sizeof(b->cluster_id)) != 0) {
        free_broker(b);
        free(n);
        return NULL;
    }
    sp_logmgr_opts_t lo;
    memset(&lo, 0, sizeof(lo));
    lo.dirs = b->log_dirs;
    lo.ndirs = b->nlog_dirs;
    lo.retention_check_ms = sp_config_long(cfg, "log.retention.check.interval.ms");
    lo.checkpoint_ms = sp_config_long(cfg, "log.flush.offset.checkpoint.interval.ms");
    lo.start_checkpoint_ms = sp_config_long(cfg, "log.flush.start.offset.checkpoint.interval.ms");
    lo.max_open_files = max_open_files;
    lo.cleaner_threads = sp_config_bool(cfg, "log.cleaner.enable") ? (int)sp_config_long(cfg, "log.cleaner.threads") : 0;
    lo.cleaner_dedupe_bytes = sp_config_long(cfg, "log.cleaner.dedupe.buffer.size");
    lo.cleaner_load_factor = strtod(sp_config_str(cfg, "log.cleaner.io.buffer.load.factor"), NULL);
    lo.cleaner_io_buffer = sp_config_long(cfg, "log.cleaner.io.buffer.size");
    lo.cleaner_io_bytes_per_sec = strtod(sp_config_str(cfg, "log.cleaner.io.max.bytes.per.second"), NULL);
    lo.cleaner_backoff_ms = sp_config_long(cfg, "log.cleaner.backoff.ms");
    b->logs = sp_logmgr_start(&lo);
    if (b->logs)
        b->partitions = sp_partitions_new(b->logs);
    if (b->partitions)
        sp_partitions_set_producer_expiry(b->partitions, sp_config_long(cfg, "producer.id.expiration.ms"),
                                          sp_config_long(cfg, "producer.id.expiration.check.interval.ms"));
    b->images = sp_image_holder_new();
    if (b->partitions && b->images)
        b->controller = sp_controller_start(b, cfg);
    if (b->controller)
        b->pids = sp_pid_manager_start(b->controller);
    if (b->pids)
        b->coordinator = sp_coordinator_start(b, cfg);
    if (b->coordinator)
        b->txn = sp_txn_coordinator_start(b, cfg);
    if (b->txn)
        n->server = sp_server_new(b);
    if (!n->server || sp_server_start(n->server, loop) != 0) {
        if (n->server)
            sp_server_stop(n->server);
        node_down(n, false); /* a start that failed half-way leaves no clean-shutdown marker */
        return NULL;
    }
    sp_info("spoold", "node %d started: cluster %s, advertised %s:%d, data in %s", b->node_id,
            b->cluster_id, b->adv_host, b->adv_port, b->log_dirs[0]);
    return n;
}

const sp_broker_t *sp_node_broker(const sp_node_t *n)
{
    return &n->broker;
}

void sp_node_stop_serving(sp_node_t *n)
{
    sp_server_stop(n->server);
}

void sp_node_free(sp_node_t *n)
{
    if (n)
        node_down(n, true);
}
