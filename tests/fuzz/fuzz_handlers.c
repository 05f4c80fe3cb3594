/*
 * fuzz_handlers.c - libFuzzer target: the request handlers, not only the
 * codec.  One broker node (broker/node.h) runs in the fuzzing process on
 * its own loop thread, with its data in a temporary directory; each input
 * is sent as is over a new connection (a byte stream of size-prefixed
 * frames, as a client sends them), whatever comes back is read for a
 * moment, and the connection closed, which also cancels what a handler
 * parked (a Fetch long poll, a JoinGroup, an acks=all produce).
 *
 * Oracles: no out-of-bounds access, use after free or UB in any broker
 * thread (ASan, UBSan), and after every input the broker still answers
 * an ApiVersions on a fresh connection (a crashed or stuck loop aborts).
 *
 * Seeds: tests/fuzz/corpus/fuzz_request (frames of several APIs) and
 * tests/fuzz/corpus/fuzz_handlers.  Inputs may create topics (CreateTopics,
 * auto-creation): the data directory grows while it runs; it is left in
 * /tmp/spool-fuzz-handlers-* for a look afterwards.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "broker/node.h"
#include "util/config.h"
#include "util/log.h"

static int port;
static uv_loop_t loop;
static sp_node_t *node;
static pthread_t thread;

static void *run(void *arg)
{
    (void)arg;
    uv_run(&loop, UV_RUN_DEFAULT);
    return NULL;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof(a);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || getsockname(s, (struct sockaddr *)&a, &l) != 0)
        abort();
    close(s);
    return ntohs(a.sin_port);
}

static void set(sp_config_t *cfg, const char *kv)
{
    if (sp_config_set_kv(cfg, kv, "fuzz_handlers") != 0)
        abort();
}

static void start_once(void)
{
    static char dir[] = "/tmp/spool-fuzz-handlers-XXXXXX";
    char kv[256];
    signal(SIGPIPE, SIG_IGN);
    sp_log_set_level(SP_LOG_ERROR);
    if (!mkdtemp(dir))
        abort();
    port = free_port();
    sp_config_t *cfg = sp_config_new(); /* lives as long as the node: the process */
    snprintf(kv, sizeof(kv), "log.dirs=%s", dir);
    set(cfg, kv);
    snprintf(kv, sizeof(kv), "listeners=PLAINTEXT://127.0.0.1:%d", port);
    set(cfg, kv);
    set(cfg, "num.network.threads=1");
    set(cfg, "group.initial.rebalance.delay.ms=0");
    set(cfg, "offsets.topic.num.partitions=2");
    uv_loop_init(&loop);
    node = sp_node_start(cfg, &loop, 128);
    if (!node || pthread_create(&thread, NULL, run, NULL) != 0)
        abort();
}

static int connect_node(int timeout_ms)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    if (s < 0)
        return -1;
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(s);
        return -1;
    }
    return s;
}

/* The broker still answers: ApiVersions v0 on a fresh connection. */
static void check_alive(void)
{
    static const uint8_t req[] = { 0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0, 0 };
    uint8_t buf[4];
    for (int attempt = 0; attempt < 50; attempt++) {
        int s = connect_node(2000);
        if (s < 0) {
            usleep(20000); /* at max.connections, or a reset: try again */
            continue;
        }
        bool ok = send(s, req, sizeof(req), 0) == (ssize_t)sizeof(req) && recv(s, buf, 4, MSG_WAITALL) == 4;
        close(s);
        if (ok)
            return;
        usleep(20000);
    }
    fprintf(stderr, "fuzz_handlers: the broker no longer answers ApiVersions\n");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!node)
        start_once();
    int s = connect_node(50);
    if (s < 0)
        abort();
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(s, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* closed by the broker (a bad frame): fine */
        off += (size_t)n;
    }
    uint8_t buf[65536];
    while (recv(s, buf, sizeof(buf), 0) > 0)
        ; /* answers, until the broker closes or 50 ms pass */
    close(s);
    check_alive();
    return 0;
}
