/*
 * spool_nodes.c - several Spool brokers in one process, for tests
 * (tests/integration/test_0007_nodes_in_one_process.py).
 *
 *   spool-nodes DIR PORT [DIR PORT]... [-- key=value...]
 *
 * Starts one node per DIR PORT pair (broker/node.h), each its own
 * single-node cluster with its data in DIR and its listener on
 * 127.0.0.1:PORT, each running its loop on its own thread; the settings
 * after "--" apply to all.  Prints "ready" once every node serves.  On
 * SIGTERM or SIGINT every node stops serving and then shuts down cleanly
 * (flush, checkpoints, clean-shutdown marker); exit 0.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "broker/node.h"
#include "util/config.h"
#include "util/log.h"

#define MAX_NODES 8

typedef struct slot {
    sp_config_t *cfg;
    uv_loop_t loop;
    uv_async_t stop;
    sp_node_t *node;
    pthread_t thread;
    int started;                /* 1 up, -1 failed */
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
} slot_t;

static void on_stop(uv_async_t *a)
{
    slot_t *s = a->data;
    sp_node_stop_serving(s->node);
    uv_close((uv_handle_t *)&s->stop, NULL);
}

static void *run(void *arg)
{
    slot_t *s = arg;
    uv_loop_init(&s->loop);
    uv_async_init(&s->loop, &s->stop, on_stop);
    s->stop.data = s;
    s->node = sp_node_start(s->cfg, &s->loop, 256);
    pthread_mutex_lock(s->mu);
    s->started = s->node ? 1 : -1;
    pthread_cond_broadcast(s->cv);
    pthread_mutex_unlock(s->mu);
    if (!s->node) {
        uv_close((uv_handle_t *)&s->stop, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
        return NULL;
    }
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    return NULL;
}

int main(int argc, char **argv)
{
    slot_t slots[MAX_NODES];
    int n = 0, extra = argc;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    memset(slots, 0, sizeof(slots));
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--") == 0)
            extra = i;
    if (extra < 3 || (extra - 1) % 2 != 0 || (extra - 1) / 2 > MAX_NODES) {
        fprintf(stderr, "usage: spool-nodes DIR PORT [DIR PORT]... [-- key=value...]\n");
        return 2;
    }
    /* signals go to sigwait below, not to the nodes' threads */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sp_log_set_level(SP_LOG_INFO);
    for (int i = 1; i + 1 < extra; i += 2, n++) {
        char kv[4200];
        slot_t *s = &slots[n];
        s->cfg = sp_config_new();
        s->mu = &mu;
        s->cv = &cv;
        snprintf(kv, sizeof(kv), "log.dirs=%s", argv[i]);
        sp_config_set_kv(s->cfg, kv, "spool-nodes");
        snprintf(kv, sizeof(kv), "listeners=PLAINTEXT://127.0.0.1:%s", argv[i + 1]);
        sp_config_set_kv(s->cfg, kv, "spool-nodes");
        for (int k = extra + 1; k < argc; k++)
            if (sp_config_set_kv(s->cfg, argv[k], "spool-nodes") != 0)
                return 2;
    }
    for (int i = 0; i < n; i++)
        pthread_create(&slots[i].thread, NULL, run, &slots[i]);
    bool ok = true;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n; i++) {
        while (!slots[i].started)
            pthread_cond_wait(&cv, &mu);
        ok &= slots[i].started == 1;
    }
    pthread_mutex_unlock(&mu);
    if (ok) {
        printf("ready\n");
        fflush(stdout);
        int sig;
        sigwait(&set, &sig);
    }
    for (int i = 0; i < n; i++)
        if (slots[i].started == 1)
            uv_async_send(&slots[i].stop);
    for (int i = 0; i < n; i++)
        pthread_join(slots[i].thread, NULL);
    for (int i = 0; i < n; i++) {
        sp_node_free(slots[i].node);
        sp_config_free(slots[i].cfg);
    }
    fprintf(stderr, "spool-nodes: %d node%s stopped\n", n, n == 1 ? "" : "s");
    return ok ? 0 : 1;
}
