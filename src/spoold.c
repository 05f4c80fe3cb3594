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

#include "broker/node.h"
#include "util/config.h"
#include "util/log.h"

#define SPOOL_VERSION "0.1.0"

static sp_node_t *node;
static bool stop_asked;          /* a signal before the node was up */
static uv_signal_t sig_int, sig_term;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: spoold [server.properties] [--override key=value]...\n"
            "Spool %s: a Kafka-protocol streaming broker.  Keys use Kafka's names;\n"
            "see docs/CONFIG.md.\n",
            SPOOL_VERSION);
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
    if (node)
        sp_node_stop_serving(node);
    else
        stop_asked = true;
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    (void)h;
}

int main(int argc, char **argv)
{
    sp_config_t *cfg = sp_config_new();
    int rc = 1;

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

    int max_open_files = raise_fd_limit();
    uv_loop_t *loop = uv_default_loop();
    /* signals first: a client may connect (and a test stop us) as soon as
     * the listener exists */
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    node = sp_node_start(cfg, loop, max_open_files);
    if (!node) {
        uv_close((uv_handle_t *)&sig_int, NULL);
        uv_close((uv_handle_t *)&sig_term, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        uv_loop_close(loop);
        goto out;
    }
    sp_info("spoold", "Spool %s started", SPOOL_VERSION);
    if (stop_asked)
        on_signal(&sig_term, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    sp_node_free(node); /* clean: flush, checkpoints, markers */
    node = NULL;
    sp_info("spoold", "shutdown complete");
    rc = 0;
out:
    sp_config_free(cfg);
    return rc;
}
