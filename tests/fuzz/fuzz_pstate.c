/*
 * fuzz_pstate.c - libFuzzer target: a partition's producer state
 * (txn/producer_state.h) from untrusted bytes, as a restart meets them.
 *
 * The input's first byte picks the case:
 *   even  the rest is a producer snapshot file (<offset>.snapshot, Kafka's
 *         version 1 layout with its CRC); it is written to a directory
 *         and loaded (sp_pstate_snapshot_load), then the state is written
 *         back and loaded again: the two loads must agree;
 *   odd   the rest is a run of record batches as a log's replay feeds them
 *         (sp_pstate_check, then sp_pstate_update for each batch the
 *         check lets through, markers included).
 * Oracles: no out-of-bounds access, UB or leak (ASan, UBSan), the state's
 * invariants after every step, and a snapshot round trip that keeps
 * every producer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/batch.h"
#include "txn/producer_state.h"
#include "util/log.h"

#define NOW 1700000000000LL
#define EXPIRE (100LL * 365 * 86400000)

static char dir[64];

static void check(const sp_pstate_t *s)
{
    if (!sp_pstate_check_invariants(s)) {
        fprintf(stderr, "fuzz_pstate: producer state broken\n");
        abort();
    }
}

static void clean_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -f %s/*", dir);
    if (system(cmd) != 0)
        abort();
}

static void snapshot_case(const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/00000000000000000100.snapshot", dir);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (n && fwrite(p, 1, n, f) != n)
        abort();
    fclose(f);
    sp_pstate_t *s = sp_pstate_new("fuzz-0");
    int64_t at = sp_pstate_snapshot_load(s, dir, 1000, NOW, EXPIRE);
    check(s);
    if (at == 100) {
        int count = sp_pstate_count(s);
        sp_pstate_set_end(s, 200);
        if (sp_pstate_snapshot_write(s, dir, false) != 0)
            abort();
        sp_pstate_t *r = sp_pstate_new("fuzz-0");
        if (sp_pstate_snapshot_load(r, dir, 1000, NOW, EXPIRE) != 200 || sp_pstate_count(r) != count) {
            fprintf(stderr, "fuzz_pstate: a snapshot written back does not load the same\n");
            abort();
        }
        check(r);
        sp_pstate_free(r);
    }
    sp_pstate_free(s);
    clean_dir();
}

static void batches_case(const uint8_t *p, size_t n)
{
    sp_pstate_t *s = sp_pstate_new("fuzz-0");
    uint8_t *copy = malloc(n ? n : 1);
    if (!s || !copy)
        abort();
    memcpy(copy, p, n);
    size_t off = 0, bs;
    int64_t next = 0;
    while (off < n && sp_batch_next(copy + off, n - off, &bs) == 1) {
        uint8_t *b = copy + off;
        sp_batch_hdr_t h;
        if (sp_batch_hdr_parse(b, bs, &h) == 0 && h.last_offset_delta >= 0 && h.last_offset_delta < 1 << 20) {
            sp_batch_set_base_offset(b, next);
            sp_batch_hdr_parse(b, bs, &h);
            sp_pverdict_t v;
            sp_pstate_origin_t origin = (sp_pstate_origin_t)(h.attributes & 1 ? SP_PSTATE_CLIENT
                                                                            : SP_PSTATE_COORDINATOR);
            sp_pstate_check(s, &h, b, bs, origin, next, &v);
            if (!v.error && !v.duplicate) {
                sp_completed_txn_t done;
                sp_pstate_update(s, &h, b, bs, &done); /* -1: an unreadable marker, state unchanged */
                next = sp_batch_next_offset(&h);
                sp_pstate_on_hw(s, next);
            }
            check(s);
        }
        off += bs;
    }
    sp_pstate_expire(s, NOW, 1000);
    check(s);
    free(copy);
    sp_pstate_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        sp_log_set_level(SP_LOG_ERROR);
        snprintf(dir, sizeof(dir), "/tmp/fuzz-pstate-%d", (int)getpid());
        char cmd[96];
        snprintf(cmd, sizeof(cmd), "mkdir -p %s", dir);
        if (system(cmd) != 0)
            abort();
    }
    if (size == 0)
        return 0;
    if (data[0] % 2 == 0)
        snapshot_case(data + 1, size - 1);
    else
        batches_case(data + 1, size - 1);
    return 0;
}
