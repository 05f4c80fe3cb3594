/*
 * spoold.c - process entry: configuration, start, signals, clean shutdown.
 *
 *   spoold [server.properties] [--override key=value]...
 *
 * Main thread: parses the configuration, formats or reads the log
 * directories (meta.properties), publishes the first metadata image,
 * starts the listener and I/O workers, then runs the main loop, which
 * accepts connections and waits for SIGINT/SIGTERM.  On a signal it stops
 * accepting, closes every connection, joins the workers and exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "broker/broker.h"
#include "cluster/controller.h"
#include "cluster/image.h"
#include "cluster/meta_properties.h"
#include "cluster/partition.h"
#include "group/coordinator.h"
#include "log/logmgr.h"
#include "net/server.h"
#include "util/config.h"
#include "util/log.h"

#define SPOOL_VERSION "0.1.0"

static sp_server_t *server;
static uv_signal_t sig_int, sig_term;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: spoold [server.properties] [--override key=value]...\n"
            "Spool %s: a Kafka-protocol streaming broker.  Keys use Kafka's names;\n"
            "see docs/CONFIG.md.\n",
            SPOOL_VERSION);
}

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

/*
 * File descriptors: the soft RLIMIT_NOFILE goes up to the hard limit (as
 * Kafka's packaging asks operators to do by hand), and half of what we
 * get is for segment files (log/fdcache.h keeps at most that many open,
 * however many partitions and segments there are); the rest is for
 * sockets, index files being written, checkpoints and the like.  Returns
 * the segment file budget.
 */
static int raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 512;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            sp_info("spoold", "open file limit raised from %llu to %llu", (unsigned long long)was,
                    (unsigned long long)rl.rlim_cur);
        else
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t half = rl.rlim_cur == RLIM_INFINITY ? (1 << 20) : rl.rlim_cur / 2;
    if (half > (1 << 20))
        half = 1 << 20;
    if (half < 16)
        half = 16;
    return (int)half;
}

static void on_signal(uv_signal_t *h, int signum)
{
    sp_info("spoold", "received %s, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    sp_server_stop(server);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    (void)h;
}

int main(int argc, char **argv)
{
    sp_config_t *cfg = sp_config_new();
    sp_broker_t broker;
    int rc = 1;
    bool started = false;

    signal(SIGPIPE, SIG_IGN);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            sp_config_free(cfg);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("spoold %s\n", SPOOL_VERSION);
            sp_config_free(cfg);
            return 0;
        }
    }
    /* the file first, then overrides, whatever their order on the line */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--override") == 0) {
            i++;
            continue;
        }
        if (argv[i][0] == '-') {
            fprintf(stderr, "spoold: unknown option %s\n", argv[i]);
            usage(stderr);
            goto out;
        }
        if (sp_config_load_file(cfg, argv[i]) != 0)
            goto out;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--override") != 0)
            continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "spoold: --override needs key=value\n");
            goto out;
        }
        if (sp_config_set_kv(cfg, argv[++i], "--override") != 0)
            goto out;
    }
    int lvl = sp_log_parse_level(sp_config_str(cfg, "log.level"));
    const char *env = getenv("SPOOL_LOG_LEVEL");
    if (env && sp_log_parse_level(env) >= 0)
        lvl = sp_log_parse_level(env);
    sp_log_set_level(lvl >= 0 ? (enum sp_log_level)lvl : SP_LOG_INFO);

    if (build_broker(cfg, &broker) != 0)
        goto out;
    if (sp_meta_properties_init(broker.log_dirs, broker.nlog_dirs, broker.node_id,
                                broker.cluster_id, sizeof(broker.cluster_id)) != 0)
        goto out_broker;

    sp_logmgr_opts_t lo;
    memset(&lo, 0, sizeof(lo));
    lo.dirs = broker.log_dirs;
    lo.ndirs = broker.nlog_dirs;
    lo.retention_check_ms = sp_config_long(cfg, "log.retention.check.interval.ms");
    lo.checkpoint_ms = sp_config_long(cfg, "log.flush.offset.checkpoint.interval.ms");
    lo.start_checkpoint_ms = sp_config_long(cfg, "log.flush.start.offset.checkpoint.interval.ms");
    lo.max_open_files = raise_fd_limit();
    broker.logs = sp_logmgr_start(&lo);
    if (!broker.logs)
        goto out_broker;
    broker.partitions = sp_partitions_new(broker.logs);
    broker.images = sp_image_holder_new();
    broker.config = cfg;
    if (broker.partitions && broker.images)
        broker.controller = sp_controller_start(&broker, cfg);
    if (!broker.controller)
        goto out_logs;
    broker.coordinator = sp_coordinator_start(&broker, cfg);
    if (!broker.coordinator)
        goto out_ctl;

    uv_loop_t *loop = uv_default_loop();
    server = sp_server_new(&broker);
    /* signals first: a client may connect (and a test stop us) as soon as
     * the listener exists */
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    if (!server || sp_server_start(server, loop) != 0)
        goto out_server;
    started = true;
    sp_info("spoold", "Spool %s started: node %d, cluster %s, advertised %s:%d, data in %s",
            SPOOL_VERSION, broker.node_id, broker.cluster_id, broker.adv_host, broker.adv_port,
            broker.log_dirs[0]);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    sp_info("spoold", "shutdown complete");
    rc = 0;
out_server:
    if (server && rc != 0)
        sp_server_stop(server);
    /* no request runs now: groups, metadata, then the logs (clean-shutdown
     * marker last), then whatever completions they posted */
    sp_coordinator_stop(broker.coordinator);
    broker.coordinator = NULL;
out_ctl:
    sp_controller_stop(broker.controller);
    broker.controller = NULL;
out_logs:
    /* the partitions stop listening to their logs first; then a start that
     * failed half-way leaves no clean-shutdown marker: the next start
     * recovers whatever it had opened */
    sp_partitions_free(broker.partitions);
    broker.partitions = NULL;
    sp_logmgr_shutdown(broker.logs, started);
    broker.logs = NULL;
    sp_server_free(server);
    sp_image_holder_free(broker.images);
    broker.images = NULL;
out_broker:
    free_broker(&broker);
out:
    sp_config_free(cfg);
    return rc;
}
