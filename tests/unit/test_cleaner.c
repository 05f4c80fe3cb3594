/*
 * test_cleaner.c - log compaction (log/cleaner.h): latest value per key at
 * its original offset with a map too small for one pass, tombstones and
 * their delete horizon, compressed batches keep their codec, a producer's
 * last batch stays, and a crash at every step of the swap recovers to the
 * same logical contents (log/cleaner.c sp_clean_recover_dir).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "log/cleaner.h"
#include "log/plog.h"
#include "log/plog_internal.h"
#include "proto/batch.h"
#include "util/clock.h"
#include "util/fsutil.h"

#define KEYS 400
#define MAXOFF 40000

static sp_fdcache_t *files;
static sp_uuid_t tid;

/* What was appended: offset -> key index and version (-1 = tombstone). */
static _Atomic int at_key[MAXOFF], at_ver[MAXOFF]; /* read by the race test's readers */
static int64_t latest[KEYS];        /* offset of each key's latest record, -1 */
static _Atomic int64_t appended;

static sp_log_config_t cfg(void)
{
    sp_log_config_t c;
    memset(&c, 0, sizeof(c));
    c.segment_bytes = 6000;
    c.segment_ms = INT64_MAX / 2;
    c.segment_index_bytes = 1 << 16;
    c.index_interval_bytes = 512;
    c.flush_messages = 1;
    c.flush_ms = INT64_MAX;
    c.max_message_bytes = 1 << 20;
    c.retention_ms = -1;
    c.retention_bytes = -1;
    c.compact = true;
    c.min_cleanable_ratio = 0.01; /* clean until nothing is dirty */
    c.delete_retention_ms = 1000;
    c.max_compaction_lag_ms = INT64_MAX;
    return c;
}

static void own_hw(void *ctx, sp_plog_t *l, const sp_log_offsets_t *o)
{
    (void)ctx;
    int64_t cur = atomic_load(&l->hw);
    while (cur < o->flushed && !atomic_compare_exchange_weak(&l->hw, &cur, o->flushed))
        ;
}

static sp_plog_t *open_log(const char *dir, bool create)
{
    sp_log_config_t c = cfg();
    sp_plog_open_opts_t o;
    memset(&o, 0, sizeof(o));
    o.dir = dir;
    o.topic = "t";
    o.topic_id = tid;
    o.cfg = &c;
    o.create = create;
    o.files = files;
    sp_plog_t *l = sp_plog_open(&o);
    if (l) {
        sp_plog_set_listener(l, own_hw, NULL);
        sp_plog_flush(l);
    }
    return l;
}

/* A batch of n records of keys k[i] (version v[i], -1 = tombstone),
 * compressed with codec, producer pid (-1: none). */
static void append(sp_plog_t *l, const int *k, const int *v, int n, int codec, int64_t pid)
{
    sp_batch_builder_t b;
    sp_batch_builder_init(&b, 0, 1000 + appended);
    if (pid >= 0)
        sp_batch_builder_set_producer(&b, pid, 0, (int32_t)appended);
    for (int i = 0; i < n; i++) {
        char key[16], val[48];
        int kl = snprintf(key, sizeof(key), "key-%d", k[i]);
        int vl = snprintf(val, sizeof(val), "value-%d-of-%d-padding", v[i], k[i]);
        sp_batch_builder_add(&b, key, kl, val, v[i] < 0 ? -1 : vl, 1000 + appended + i);
    }
    size_t len;
    uint8_t *p = sp_batch_builder_finish(&b, &len);
    sp_batch_builder_free(&b);
    if (codec != SP_COMPRESSION_NONE) {
        uint8_t *q;
        size_t qlen;
        CHECK(sp_batch_recompress(p, len, codec, -1, 0, &q, &qlen) == 0);
        free(p);
        p = q;
        len = qlen;
    }
    for (int i = 0; i < n; i++) { /* before the append: a reader may see it at once */
        at_key[appended + i] = k[i];
        at_ver[appended + i] = v[i];
    }
    sp_append_result_t r;
    sp_plog_append(l, p, len, 0, &r);
    CHECK(r.err == SP_LOG_OK);
    free(p);
    for (int i = 0; i < n; i++)
        latest[k[i]] = appended + i;
    appended += n;
    sp_plog_flush(l);
}

/* ---- reading back ---- */

typedef struct seen {
    int n, bad, dup_key_below;
    int64_t prev;
    int64_t last_at[KEYS];        /* offset of the last record seen per key */
    int tombstones;
    int64_t end;                  /* check only below: superseded ones must be gone */
} seen_t;

static int see(const sp_record_t *rec, void *ctx)
{
    seen_t *s = ctx;
    int k = -1, v = -2;
    if (rec->key.len > 0)
        sscanf((const char *)rec->key.ptr, "key-%d", &k);
    if (rec->value.len > 0)
        sscanf((const char *)rec->value.ptr, "value-%d", &v);
    else
        v = -1;
    /* every record present is the one appended at its offset */
    if (rec->offset <= s->prev || rec->offset >= appended || k != at_key[rec->offset] ||
        v != at_ver[rec->offset])
        s->bad++;
    if (k >= 0 && k < KEYS) {
        if (s->last_at[k] >= 0 && rec->offset < s->end)
            s->dup_key_below++;
        s->last_at[k] = rec->offset;
    }
    s->tombstones += v == -1 && rec->offset < s->end;
    s->prev = rec->offset;
    s->n++;
    return 0;
}

static void read_all(sp_plog_t *l, int64_t end, seen_t *s)
{
    memset(s, 0, sizeof(*s));
    s->prev = -1;
    s->end = end;
    for (int i = 0; i < KEYS; i++)
        s->last_at[i] = -1;
    CHECK(sp_plog_scan(l, 0, see, s) == 0);
}

/* Every key's latest record is there, at its offset. */
static bool latest_all_there(const seen_t *s, bool tombstones_gone)
{
    for (int k = 0; k < KEYS; k++) {
        if (latest[k] < 0)
            continue;
        bool tomb = at_ver[latest[k]] == -1;
        if (tomb && tombstones_gone) {
            if (s->last_at[k] >= 0 && s->last_at[k] != latest[k])
                return false; /* an older value came back */
            continue;
        }
        if (s->last_at[k] != latest[k])
            return false;
    }
    return true;
}

static int clean_fully(sp_plog_t *l, sp_offset_map_t *m, int64_t now, int *passes, sp_clean_stats_t *last)
{
    int64_t ckpt = -1;
    sp_clean_candidate_t c;
    sp_clean_opts_t o = { .io_buffer_size = 8192, .now_ms = now };
    *passes = 0;
    while (sp_plog_clean_check(l, ckpt, now, &c) == 1 && *passes < 100) {
        int rc = sp_plog_clean(l, &c, m, &o, last);
        if (rc != 0)
            return rc;
        (*passes)++;
        ckpt = last->end_offset;
        if (!last->map_full && !c.due)
            break;
        if (c.due && !last->map_full)
            break;
    }
    return 0;
}

static void reset_model(void)
{
    appended = 0;
    for (int i = 0; i < KEYS; i++)
        latest[i] = -1;
}

/* Versions of all keys, shuffled a little, some tombstones. */
static void fill(sp_plog_t *l, int rounds, bool tombs)
{
    int k[8], v[8];
    for (int r = 0; r < rounds; r++)
        for (int base = 0; base < KEYS; base += 8) {
            for (int i = 0; i < 8; i++) {
                k[i] = (base + i * 37 + r * 11) % KEYS;
                v[i] = tombs && r == rounds - 1 && k[i] % 10 == 0 ? -1 : r;
            }
            append(l, k, v, 8, (base / 8) % 5 == 0 ? SP_COMPRESSION_GZIP : (base / 8) % 5 == 1 ? SP_COMPRESSION_ZSTD : SP_COMPRESSION_NONE, -1);
        }
}

/* rounds of new versions (v0, v0 + 1, ...) of the keys k % step == 0. */
static void versions(sp_plog_t *l, int rounds, int step, int v0)
{
    int k[8], v[8], n = 0;
    for (int r = 0; r < rounds; r++)
        for (int key = 0; key < KEYS; key += step) {
            k[n] = key;
            v[n++] = v0 + r;
            if (n == 8) {
                append(l, k, v, n, SP_COMPRESSION_LZ4, -1);
                n = 0;
            }
        }
    if (n)
        append(l, k, v, n, SP_COMPRESSION_LZ4, -1);
}

static int count_codec(void *ctx, const uint8_t *b, size_t len, const sp_batch_hdr_t *h)
{
    int *n = ctx;
    (void)b;
    (void)len;
    n[sp_batch_compression(h)]++;
    return 0;
}

/* Segments never overlap: a reader starting anywhere sees one record per offset. */
static bool no_overlap(sp_plog_t *l)
{
    bool ok = true;
    for (int i = 0; i + 1 < l->nsegs; i++)
        ok &= l->segs[i]->next_offset <= l->segs[i + 1]->base_offset;
    return ok;
}

static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        size_t a = strlen(e->d_name), b = strlen(suffix);
        n += a > b && strcmp(e->d_name + a - b, suffix) == 0;
    }
    if (d)
        closedir(d);
    return n;
}

static void test_compaction(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/t-0", root);
    reset_model();
    sp_plog_t *l = open_log(dir, true);
    CHECK(l != NULL);
    fill(l, 6, true);
    int64_t leo = appended;
    int codecs_before[8] = { 0 };
    sp_plog_scan_batches(l, 0, count_codec, codecs_before);

    sp_offset_map_t m;
    CHECK(sp_offset_map_init(&m, 100 * SP_OFFSET_MAP_SLOT, 0.9) == 0); /* 90 keys a pass */
    int passes;
    sp_clean_stats_t st;
    int64_t now = sp_wall_ms();
    CHECK(clean_fully(l, &m, now, &passes, &st) == 0);
    CHECK(passes > 1);              /* 400 keys do not fit in one pass */
    seen_t s;
    read_all(l, st.end_offset, &s);
    CHECK(s.bad == 0);
    CHECK(s.dup_key_below == 0);
    CHECK(latest_all_there(&s, false));
    CHECK(s.tombstones > 0);        /* kept until their horizon */
    if (s.tombstones == 0)
        fprintf(stderr, "end %" PRId64 " appended %" PRId64 " n %d\n", st.end_offset, appended, s.n);
    CHECK(s.n < leo / 2);
    int codecs_after[8] = { 0 };
    sp_plog_scan_batches(l, 0, count_codec, codecs_after);
    CHECK(codecs_after[SP_COMPRESSION_GZIP] > 0 && codecs_after[SP_COMPRESSION_ZSTD] > 0);
    printf("test_cleaner: %d passes, %d of %" PRId64 " records kept, map %" PRId64 " keys\n", passes, s.n, leo,
           st.map_entries);

    /* past the delete horizon: the tombstones go, no older value returns */
    append(l, (int[]){ 1 }, (int[]){ 99 }, 1, 0, -1);
    int64_t later = now + 2000;
    CHECK(clean_fully(l, &m, later, &passes, &st) == 0);
    read_all(l, st.end_offset, &s);
    CHECK(s.bad == 0);
    CHECK(latest_all_there(&s, true));
    CHECK(s.tombstones == 0);

    /* reopened (a crash: no clean close), the same */
    sp_plog_unref(l);
    l = open_log(dir, false);
    CHECK(l != NULL);
    seen_t s2;
    read_all(l, 0, &s2);
    CHECK(s2.n == s.n && s2.bad == 0 && latest_all_there(&s2, true));
    CHECK(no_overlap(l));
    sp_plog_unref(l);
    sp_offset_map_free(&m);
}

/* A producer's last batch stays (emptied) so its sequence survives. */
static int last_info(void *ctx, int64_t *first_unstable, sp_producer_last_t **v, int *n)
{
    int64_t *last = ctx;
    *first_unstable = INT64_MAX;
    if (v) {
        *v = malloc(sizeof(**v));
        (*v)[0] = (sp_producer_last_t){ .producer_id = 7, .last_data_offset = *last, .epoch = 0 };
        *n = 1;
    }
    return 0;
}

static int find_pid(void *ctx, const uint8_t *b, size_t len, const sp_batch_hdr_t *h)
{
    int64_t *found = ctx;
    (void)b;
    (void)len;
    if (h->producer_id == 7) {
        found[0] = sp_batch_last_offset(h);
        found[1] = h->record_count;
    }
    return 0;
}

static void test_producer_kept(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/t-1", root);
    reset_model();
    sp_plog_t *l = open_log(dir, true);
    append(l, (int[]){ 1, 2 }, (int[]){ 0, 0 }, 2, 0, 7);
    int64_t last = appended - 1;
    sp_plog_set_clean_info(l, last_info, &last);
    fill(l, 3, false); /* supersedes keys 1 and 2 */
    sp_offset_map_t m;
    CHECK(sp_offset_map_init(&m, 1 << 20, 0.9) == 0);
    int passes;
    sp_clean_stats_t st;
    CHECK(clean_fully(l, &m, sp_wall_ms(), &passes, &st) == 0);
    int64_t found[2] = { -1, -1 };
    sp_plog_scan_batches(l, 0, find_pid, found);
    CHECK(found[0] == last);     /* the batch is there, covering its offsets */
    CHECK(found[1] == 0);        /* with its records gone */
    seen_t s;
    read_all(l, st.end_offset, &s);
    CHECK(s.bad == 0 && s.dup_key_below == 0 && latest_all_there(&s, false));
    sp_plog_set_clean_info(l, NULL, NULL);
    sp_plog_unref(l);
    sp_offset_map_free(&m);
}

/* A crash at each step of the swap: the reopened log holds the same
 * latest values at the same offsets, and no leftover file. */
static void test_crash_steps(const char *root)
{
    for (int step = SP_CLEAN_STEP_CLEANED; step <= SP_CLEAN_STEP_DONE; step++) {
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/crash-%d", root, step);
        reset_model();
        sp_plog_t *l = open_log(dir, true);
        fill(l, 1, true);
        versions(l, 3, 2, 1); /* odd keys keep their first record, early in the log */
        sp_offset_map_t m;
        CHECK(sp_offset_map_init(&m, 1 << 20, 0.9) == 0);
        /* cleaned once, so that the crashing cleaning merges several
         * small segments into one */
        int passes0;
        sp_clean_stats_t st0;
        CHECK(clean_fully(l, &m, sp_wall_ms(), &passes0, &st0) == 0);
        int segs_before = count_files(dir, ".log");
        versions(l, 2, 4, 10); /* the first group keeps the odd keys */
        /* a larger segment.bytes: the crashing cleaning merges segments */
        sp_log_config_t big = cfg();
        big.segment_bytes = 60000;
        sp_plog_set_config(l, &big);
        sp_clean_candidate_t c;
        CHECK(sp_plog_clean_check(l, -1, sp_wall_ms(), &c) == 1);
        sp_clean_opts_t o = { .io_buffer_size = 4096, .now_ms = sp_wall_ms(), .crash_after = step };
        sp_clean_stats_t st;
        CHECK(sp_plog_clean(l, &c, &m, &o, &st) == 1);
        if (step == SP_CLEAN_STEP_CLEANED)
            CHECK(count_files(dir, ".log.cleaned") == 1);
        if (step == SP_CLEAN_STEP_SWAP)
            CHECK(count_files(dir, ".log.swap") == 1);
        CHECK(st0.segments_in > st0.segments_out && segs_before > 2);
        sp_plog_unref(l); /* no close: as a kill -9 */
        l = open_log(dir, false);
        CHECK(l != NULL);
        if (!l)
            continue;
        CHECK(count_files(dir, ".cleaned") + count_files(dir, ".swap") + count_files(dir, ".deleted") == 0);
        CHECK(no_overlap(l));
        seen_t s;
        read_all(l, 0, &s);
        CHECK(s.bad == 0);
        CHECK(latest_all_there(&s, false));
        /* and cleaning goes on from there */
        int passes;
        CHECK(clean_fully(l, &m, sp_wall_ms(), &passes, &st) == 0);
        read_all(l, st.end_offset, &s);
        CHECK(s.bad == 0 && s.dup_key_below == 0 && latest_all_there(&s, false));
        sp_plog_unref(l);
        sp_offset_map_free(&m);
    }
}

/* Bad input and failures: a cleaning that meets a damaged batch, or whose
 * own fsync fails, changes nothing and leaves no file behind. */
static int fail_syncs;
static int fail_hook(const char *op, int fd)
{
    (void)op;
    (void)fd;
    return fail_syncs ? EIO : 0;
}

static void test_damage_and_faults(const char *root)
{
    char dir[512], path[700];
    snprintf(dir, sizeof(dir), "%s/damage", root);
    reset_model();
    sp_plog_t *l = open_log(dir, true);
    fill(l, 4, false);
    seen_t before, after;
    read_all(l, 0, &before);
    sp_offset_map_t m;
    CHECK(sp_offset_map_init(&m, 1 << 20, 0.9) == 0);
    sp_clean_candidate_t c;
    sp_clean_stats_t st;
    sp_clean_opts_t o = { .io_buffer_size = 4096, .now_ms = sp_wall_ms() };

    /* an fsync of the cleaned files fails */
    sp_fault_hook = fail_hook;
    fail_syncs = 1;
    CHECK(sp_plog_clean_check(l, -1, sp_wall_ms(), &c) == 1);
    CHECK(sp_plog_clean(l, &c, &m, &o, &st) == -1);
    fail_syncs = 0;
    sp_fault_hook = NULL;
    CHECK(count_files(dir, ".cleaned") + count_files(dir, ".swap") == 0);
    read_all(l, 0, &after);
    CHECK(after.n == before.n && after.bad == 0);

    /* a flipped byte in the second segment: the cleaner stops there */
    snprintf(path, sizeof(path), "%s/%020" PRId64 ".log", dir, l->segs[1]->base_offset);
    int fd = open(path, O_RDWR);
    uint8_t byte;
    CHECK(pread(fd, &byte, 1, 100) == 1);
    byte ^= 0x40;
    CHECK(pwrite(fd, &byte, 1, 100) == 1);
    close(fd);
    CHECK(sp_plog_clean_check(l, -1, sp_wall_ms(), &c) == 1);
    CHECK(sp_plog_clean(l, &c, &m, &o, &st) == -1);
    CHECK(count_files(dir, ".cleaned") + count_files(dir, ".swap") + count_files(dir, ".deleted") == 0);
    CHECK(l->segs[1]->base_offset > 0 && atomic_load(&l->segs[1]->size) > 0);
    sp_plog_unref(l);
    sp_offset_map_free(&m);
}

/* Appends, reads from the start and cleaning at once (run under TSan):
 * every read sees each record as appended at its offset, in order. */
static atomic_bool race_stop;
static atomic_int race_bad, race_reads, race_cleanings;

static void *race_reader(void *arg)
{
    sp_plog_t *l = arg;
    while (!atomic_load(&race_stop)) {
        seen_t s;
        memset(&s, 0, sizeof(s));
        s.prev = -1;
        for (int i = 0; i < KEYS; i++)
            s.last_at[i] = -1;
        if (sp_plog_scan(l, 0, see, &s) != 0 || s.bad)
            atomic_fetch_add(&race_bad, 1);
        atomic_fetch_add(&race_reads, 1);
    }
    return NULL;
}

static void *race_cleaner(void *arg)
{
    sp_plog_t *l = arg;
    sp_offset_map_t m;
    int64_t ckpt = -1;
    if (sp_offset_map_init(&m, 64 * SP_OFFSET_MAP_SLOT, 0.9) != 0)
        return NULL;
    while (!atomic_load(&race_stop)) {
        sp_clean_candidate_t c;
        sp_clean_stats_t st;
        sp_clean_opts_t o = { .io_buffer_size = 4096, .now_ms = sp_wall_ms(), .stop = &race_stop };
        if (sp_plog_clean_check(l, ckpt, sp_wall_ms(), &c) == 1) {
            int rc = sp_plog_clean(l, &c, &m, &o, &st);
            if (rc < 0)
                atomic_fetch_add(&race_bad, 1);
            if (rc == 0) {
                ckpt = st.end_offset;
                atomic_fetch_add(&race_cleanings, 1);
            }
        } else {
            usleep(1000);
        }
    }
    sp_offset_map_free(&m);
    return NULL;
}

static void test_races(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/race-0", root);
    reset_model();
    sp_plog_t *l = open_log(dir, true);
    pthread_t r1, r2, c1;
    atomic_store(&race_stop, false);
    pthread_create(&r1, NULL, race_reader, l);
    pthread_create(&r2, NULL, race_reader, l);
    pthread_create(&c1, NULL, race_cleaner, l);
    fill(l, 30, true); /* 12,000 records */
    usleep(200000);
    atomic_store(&race_stop, true);
    pthread_join(r1, NULL);
    pthread_join(r2, NULL);
    pthread_join(c1, NULL);
    CHECK(atomic_load(&race_bad) == 0);
    CHECK(atomic_load(&race_cleanings) > 2);
    CHECK(atomic_load(&race_reads) > 2);
    printf("test_cleaner races: %d cleanings, %d reads from the start\n", atomic_load(&race_cleanings),
           atomic_load(&race_reads));
    seen_t s;
    read_all(l, 0, &s);
    CHECK(s.bad == 0 && latest_all_there(&s, false) && no_overlap(l));
    sp_plog_unref(l);
}

int main(void)
{
    char root[] = "/tmp/spool-test-cleaner-XXXXXX";
    if (!mkdtemp(root))
        return 1;
    tid.b[0] = 9;
    files = sp_fdcache_new(64);
    test_compaction(root);
    test_producer_kept(root);
    test_crash_steps(root);
    test_races(root);
    test_damage_and_faults(root);
    sp_fdcache_free(files);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", root);
    return check_summary("test_cleaner");
}
