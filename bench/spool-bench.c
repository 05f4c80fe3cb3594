/*
 * spool-bench - throughput and latency of a Kafka-protocol broker, measured
 * through librdkafka (a real client: what users get).
 *
 *   spool-bench produce  -b HOST:PORT -t TOPIC [-n N] [-s SIZE] [-a ACKS] [-l LINGER_MS]
 *                        [-B BATCH_BYTES] [-z CODEC] [-i INFLIGHT]
 *   spool-bench consume  -b HOST:PORT -t TOPIC [-n N] [-g GROUP]
 *   spool-bench e2e      -b HOST:PORT -t TOPIC [-n N] [-s SIZE] [-r RATE] [-a ACKS] ...
 *   any mode:            [-X librdkafka.property=value ...]
 *
 * produce: N records of SIZE bytes, as fast as the client goes; reports
 *          records/s, MB/s and the delivery-report latency percentiles.
 * consume: reads N records from the beginning of every partition
 *          (assign(), or subscribe() with -g); reports records/s, MB/s.
 * e2e:     a producer at RATE records/s and a consumer in one process; each
 *          record carries its send time; reports produce-to-consume latency
 *          p50/p99/p99.9/max.
 * Output: a human table on stderr and one JSON line on stdout.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct opts {
    const char *mode, *brokers, *topic, *codec, *group;
    long n, size, rate;
    const char *acks;
    int linger, inflight;
    long batch;
} opts_t;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "spool-bench: %s: %s\n", what, why);
    exit(1);
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(c, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        die(k, err);
}

/* -X key=value: any librdkafka property, applied last (producer and consumer) */
static const char *extra[16];
static int nextra;

static void set_extra(rd_kafka_conf_t *c)
{
    for (int i = 0; i < nextra; i++) {
        char k[128];
        const char *eq = strchr(extra[i], '=');
        if (!eq || (size_t)(eq - extra[i]) >= sizeof(k))
            die("-X", extra[i]);
        memcpy(k, extra[i], (size_t)(eq - extra[i]));
        k[eq - extra[i]] = 0;
        set(c, k, eq + 1);
    }
}

/* ---- latency histogram: exact sort of samples ------------------------- */

typedef struct samples {
    int64_t *v;
    size_t n, cap;
} samples_t;

static void sample(samples_t *s, int64_t x)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1 << 16;
        s->v = realloc(s->v, sizeof(int64_t) * s->cap);
        if (!s->v)
            die("samples", "out of memory");
    }
    s->v[s->n++] = x;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(samples_t *s, double p)
{
    if (!s->n)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);
    return (double)s->v[i] / 1e6; /* ms */
}

/* ---- produce -------------------------------------------------------------- */

static atomic_long delivered, failed;
static samples_t dr_lat;

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) {
        if (atomic_fetch_add(&failed, 1) < 5)
            fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
        return;
    }
    atomic_fetch_add(&delivered, 1);
    if (m->_private) /* the send time rides in the per-message opaque */
        sample(&dr_lat, now_ns() - (int64_t)(intptr_t)m->_private);
}

static rd_kafka_t *producer(const opts_t *o)
{
    char err[256], buf[32];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    set(c, "bootstrap.servers", o->brokers);
    set(c, "acks", o->acks);
    snprintf(buf, sizeof(buf), "%d", o->linger);
    set(c, "linger.ms", buf);
    snprintf(buf, sizeof(buf), "%ld", o->batch);
    set(c, "batch.size", buf);
    set(c, "compression.codec", o->codec);
    snprintf(buf, sizeof(buf), "%d", o->inflight);
    set(c, "max.in.flight.requests.per.connection", buf);
    set(c, "queue.buffering.max.messages", "2000000");
    set(c, "queue.buffering.max.kbytes", "2097151");
    set(c, "message.max.bytes", "10000000");
    set_extra(c);
    rd_kafka_conf_set_dr_msg_cb(c, on_dr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
    if (!rk)
        die("producer", err);
    return rk;
}

/*
 * copy: the payload carries the send time (end-to-end mode) and is copied
 * by librdkafka; otherwise all records share one read-only payload that
 * librdkafka sends without copying (RD_KAFKA_MSG_F_COPY off), as a
 * producer of large, already-built records would.
 */
static void produce_one(rd_kafka_t *rk, rd_kafka_topic_t *t, char *payload, size_t size, bool copy, bool timed)
{
    /* timed records carry their send time in the per-message opaque, for
     * the delivery-report latency; reading the clock for every record costs
     * the client 5-10% (librdkafka reads it several times per record too) */
    int64_t ts = timed ? now_ns() : 0;
    if (copy)
        memcpy(payload, &ts, 8);
    while (rd_kafka_produce(t, RD_KAFKA_PARTITION_UA, copy ? RD_KAFKA_MSG_F_COPY : 0, payload, size,
                            NULL, 0, (void *)(intptr_t)ts) != 0) {
        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            die("produce", rd_kafka_err2str(rd_kafka_last_error()));
        rd_kafka_poll(rk, 1);
    }
}

/* CPU seconds this process (librdkafka's threads included) has used. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds of this process's busiest live thread, and its name: one
 * librdkafka broker thread does most of a connection's work, so it, not
 * the whole process, bounds one client's rate. */
static double busiest_thread_s(char name[16])
{
    double best = 0;
    long tick = sysconf(_SC_CLK_TCK);
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    strcpy(name, "?");
    while (d && (e = readdir(d))) {
        char path[64], buf[512];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%.20s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = 0;
        char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        unsigned long ut, st;
        /* after "(comm) ": state, then 10 fields, then utime and stime */
        if (!open || !close || sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                                      &ut, &st) != 2)
            continue;
        double t = (double)(ut + st) / (double)tick;
        if (t > best) {
            best = t;
            snprintf(name, 16, "%.*s", (int)(close - open - 1), open + 1);
        }
    }
    if (d)
        closedir(d);
    return best;
}

static void report(const opts_t *o, const char *mode, long n, double secs, samples_t *lat)
{
    double mbs = (double)n * (double)o->size / secs / 1e6;
    double cpu = cpu_s();
    char busiest[16];
    double bcpu = busiest_thread_s(busiest);
    qsort(lat->v, lat->n, sizeof(int64_t), cmp64);
    fprintf(stderr, "%-8s %9ld records %6ld B  %10.0f rec/s  %8.1f MB/s  client CPU %.2f s (%s %.2f s)",
            mode, n, o->size, (double)n / secs, mbs, cpu, busiest, bcpu);
    if (lat->n)
        fprintf(stderr, "  p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms", pct(lat, 50),
                pct(lat, 99), pct(lat, 99.9), pct(lat, 100));
    fprintf(stderr, "\n");
    printf("{\"mode\":\"%s\",\"records\":%ld,\"size\":%ld,\"acks\":\"%s\",\"codec\":\"%s\","
           "\"seconds\":%.3f,\"records_per_s\":%.0f,\"mb_per_s\":%.2f,\"client_cpu_s\":%.3f,"
           "\"busiest_thread\":\"%s\",\"busiest_thread_cpu_s\":%.3f",
           mode, n, o->size, o->acks, o->codec, secs, (double)n / secs, mbs, cpu, busiest, bcpu);
    if (lat->n)
        printf(",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f", pct(lat, 50),
               pct(lat, 99), pct(lat, 99.9), pct(lat, 100));
    printf("}\n");
    fflush(stdout);
}

static void run_produce(const opts_t *o)
{
    rd_kafka_t *rk = producer(o);
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, o->topic, NULL);
    char *payload = malloc((size_t)o->size);
    for (long i = 0; i < o->size; i++)
        payload[i] = (char)('a' + i % 26);
    int64_t t0 = now_ns();
    for (long i = 0; i < o->n; i++) {
        produce_one(rk, t, payload, (size_t)o->size, false, (i & 63) == 0); /* 1 in 64 timed */
        if (i % 1024 == 0)
            rd_kafka_poll(rk, 0); /* delivery reports */
    }
    while (atomic_load(&delivered) + atomic_load(&failed) < o->n)
        rd_kafka_poll(rk, 10);
    double secs = (double)(now_ns() - t0) / 1e9;
    if (atomic_load(&failed))
        fprintf(stderr, "%ld deliveries failed\n", atomic_load(&failed));
    report(o, "produce", atomic_load(&delivered), secs, &dr_lat);
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk);
    free(payload);
}

/* ---- consume ------------------------------------------------------------- */

static rd_kafka_t *consumer(const opts_t *o)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    set(c, "bootstrap.servers", o->brokers);
    set(c, "group.id", o->group ? o->group : "spool-bench");
    set(c, "enable.auto.commit", "false");
    set(c, "auto.offset.reset", "earliest");
    set(c, "fetch.max.bytes", "52428800");
    set(c, "max.partition.fetch.bytes", "10485760");
    set(c, "fetch.wait.max.ms", "100");
    set(c, "queued.max.messages.kbytes", "1048576");
    /* librdkafka stops fetching for fetch.error.backoff.ms (0.5-1 s) once
     * its queue holds queued.min.messages (default 100000): two 10 MB
     * fetches of 100-byte records do, and the consumer idled half the run */
    set(c, "queued.min.messages", "1000000");
    set_extra(c);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
    if (!rk)
        die("consumer", err);
    rd_kafka_poll_set_consumer(rk);
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, o->topic, NULL);
    if (rd_kafka_metadata(rk, 0, t, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1)
        die("metadata", o->topic);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int p = 0; p < md->topics[0].partition_cnt; p++)
        rd_kafka_topic_partition_list_add(l, o->topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    if (o->group) {
        rd_kafka_topic_partition_list_t *s = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(s, o->topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(rk, s);
        rd_kafka_topic_partition_list_destroy(s);
    } else {
        rd_kafka_assign(rk, l);
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return rk;
}

static void run_consume(const opts_t *o)
{
    rd_kafka_t *rk = consumer(o);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    long got = 0;
    int64_t t0 = 0;
    samples_t none = { 0 };
    static rd_kafka_message_t *batch[10000];
    while (got < o->n) {
        /* batches: librdkafka's cheapest way to hand over messages */
        ssize_t k = rd_kafka_consume_batch_queue(q, 1000, batch, 10000);
        for (ssize_t i = 0; i < k; i++) {
            rd_kafka_message_t *m = batch[i];
            if (!m->err) {
                if (!t0)
                    t0 = now_ns();
                got++;
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                fprintf(stderr, "consume: %s\n", rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
        }
    }
    rd_kafka_queue_destroy(q);
    double secs = (double)(now_ns() - t0) / 1e9;
    report(o, "consume", got, secs, &none);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* ---- end to end ------------------------------------------------------------ */

static atomic_bool e2e_done;

typedef struct e2e_ctx {
    const opts_t *o;
    samples_t lat;
    long got;
} e2e_ctx_t;

static void *e2e_consumer(void *arg)
{
    e2e_ctx_t *x = arg;
    opts_t o = *x->o;
    rd_kafka_t *rk = consumer(&o);
    while (x->got < o.n) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) {
            if (atomic_load(&e2e_done))
                break;
            continue;
        }
        if (!m->err && m->len >= 8) {
            int64_t sent;
            memcpy(&sent, m->payload, 8);
            sample(&x->lat, now_ns() - sent);
            x->got++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return NULL;
}

static void run_e2e(const opts_t *o)
{
    e2e_ctx_t x = { .o = o };
    pthread_t th;
    rd_kafka_t *rk = producer(o);
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, o->topic, NULL);
    const struct rd_kafka_metadata *md;
    /* a producer's metadata request creates the topic if needed */
    if (rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_metadata_destroy(md);
    pthread_create(&th, NULL, e2e_consumer, &x);
    usleep(1500000); /* the consumer is assigned and at the end */
    char *payload = malloc((size_t)o->size);
    memset(payload, 'x', (size_t)o->size);
    /*
     * Pace in ticks of 200 us: wake, send every record due by now (each
     * stamped with its own send time), sleep. A per-record busy wait would
     * take a whole core from the broker and the consumer on a small machine.
     */
    int64_t t0 = now_ns(), lag = 0;
    long sent = 0;
    while (sent < o->n) {
        int64_t now = now_ns();
        long due = o->rate > 0 ? (long)((double)(now - t0) * (double)o->rate / 1e9) + 1 : o->n;
        if (due > o->n)
            due = o->n;
        if (o->rate > 0 && due - sent > 1 && (due - sent - 1) * 1000000000LL / o->rate > lag)
            lag = (due - sent - 1) * 1000000000LL / o->rate; /* behind the schedule */
        for (; sent < due; sent++)
            produce_one(rk, t, payload, (size_t)o->size, true, true);
        rd_kafka_poll(rk, 0);
        struct timespec ts = { 0, 200000 };
        nanosleep(&ts, NULL);
    }
    rd_kafka_flush(rk, 30000);
    double secs = (double)(now_ns() - t0) / 1e9;
    int64_t deadline = now_ns() + 10000000000LL;
    while (x.got < o->n && now_ns() < deadline)
        usleep(10000);
    atomic_store(&e2e_done, true);
    pthread_join(th, NULL);
    if (lag > 1000000)
        fprintf(stderr, "e2e: the producer fell up to %.1f ms behind its schedule\n", (double)lag / 1e6);
    report(o, "e2e", x.got, secs, &x.lat);
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk);
    free(payload);
}

int main(int argc, char **argv)
{
    opts_t o = { .brokers = "127.0.0.1:9092", .topic = "bench", .codec = "none", .n = 1000000,
                 .size = 100, .acks = "1", .linger = 5, .inflight = 5, .batch = 1000000 };
    if (argc < 2) {
        fprintf(stderr, "usage: spool-bench produce|consume|e2e [options] (see the source header)\n");
        return 2;
    }
    o.mode = argv[1];
    optind = 2;
    int c;
    while ((c = getopt(argc, argv, "b:t:n:s:a:l:B:z:i:g:r:X:")) != -1) {
        switch (c) {
        case 'b': o.brokers = optarg; break;
        case 't': o.topic = optarg; break;
        case 'n': o.n = atol(optarg); break;
        case 's': o.size = atol(optarg); break;
        case 'a': o.acks = optarg; break;
        case 'l': o.linger = atoi(optarg); break;
        case 'B': o.batch = atol(optarg); break;
        case 'z': o.codec = optarg; break;
        case 'i': o.inflight = atoi(optarg); break;
        case 'g': o.group = optarg; break;
        case 'r': o.rate = atol(optarg); break;
        case 'X':
            if (nextra < 16)
                extra[nextra++] = optarg;
            break;
        default: return 2;
        }
    }
    if (o.size < 8)
        o.size = 8; /* room for the send time */
    if (strcmp(o.mode, "produce") == 0)
        run_produce(&o);
    else if (strcmp(o.mode, "consume") == 0)
        run_consume(&o);
    else if (strcmp(o.mode, "e2e") == 0)
        run_e2e(&o);
    else
        die("mode", o.mode);
    return 0;
}
