/*
 * fuzz_txn_replay.c - libFuzzer target: replay of __transaction_state,
 * what the transaction coordinator does at start (txn/txn_state.h:
 * TransactionLogKey/Value records of any version, tombstones, junk).
 *
 * The input is a sequence of records: the key's length (2 bytes,
 * big-endian), the key, the value's (0xffff: a tombstone), the value,
 * repeated; each is replayed into a txns instance without an environment
 * (no writes, no markers, no thread).  Afterwards: sp_txns_loaded, a tick
 * far in the future (timeouts, expiry, markers: all refused without an
 * environment), and calls on every id found (verify, EndTxn, AddPartitions,
 * InitProducerId), with the views read through describe and each.
 * Oracles: no out-of-bounds access, UB or leak (ASan, UBSan), and the
 * invariants (sp_txns_check) after every step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/txn_state.h"
#include "util/log.h"

#define NOW 1700000000000LL

static const sp_txn_settings_t SETTINGS = {
    .max_timeout_ms = 900000,
    .id_expiration_ms = 604800000,
    .abort_interval_ms = 10000,
    .expire_interval_ms = 3600000,
};

static void check(const sp_txns_t *t)
{
    if (!sp_txns_check(t)) {
        fprintf(stderr, "fuzz_txn_replay: txns state broken\n");
        abort();
    }
}

static void on_done(sp_txn_call_t *c) { (void)c; }

typedef struct seen {
    char ids[64][64];
    int n;
    int64_t pids[64];
    int16_t epochs[64];
} seen_t;

static void on_view(const sp_txn_view_t *v, void *ctx)
{
    seen_t *s = ctx;
    /* the view holds together */
    if (v->nparts < 0 || (v->nparts > 0 && (!v->topics || !v->partitions)))
        abort();
    for (int32_t i = 0; i < v->nparts; i++)
        if (!v->topics[i])
            abort();
    if (!sp_txn_status_name(v->status))
        abort();
    if (s->n < 64 && v->txn_id.len < 64) {
        memcpy(s->ids[s->n], v->txn_id.ptr, (size_t)v->txn_id.len);
        s->ids[s->n][v->txn_id.len] = 0;
        s->pids[s->n] = v->producer_id;
        s->epochs[s->n] = v->producer_epoch;
        s->n++;
    }
}

static void calls(sp_txns_t *t, const char *id, int64_t pid, int16_t epoch)
{
    sp_txn_part_in_t parts[2] = { { sp_str_lit("t"), 0 }, { sp_str_lit("u"), 3 } };
    int16_t errs[2];
    sp_txn_call_t c;
    memset(&c, 0, sizeof(c));
    c.txn_id = sp_str_c(id);
    c.producer_id = pid;
    c.producer_epoch = epoch;
    c.done = on_done;
    c.parts = parts;
    c.n = 2;
    c.part_errors = errs;
    c.kind = SP_TXN_VERIFY;
    sp_txns_call(t, &c, NOW);
    check(t);
    c.kind = SP_TXN_END;
    c.commit = (pid & 1) != 0;
    sp_txns_call(t, &c, NOW);
    check(t);
    c.kind = SP_TXN_ADD;
    sp_txns_call(t, &c, NOW);
    check(t);
    c.kind = SP_TXN_INIT;
    c.timeout_ms = 60000;
    sp_txns_call(t, &c, NOW);
    check(t);
    sp_txn_view_t v;
    sp_txns_describe(t, sp_str_c(id), &v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        sp_log_set_level(SP_LOG_ERROR);
        quiet = true;
    }
    sp_txns_t *t = sp_txns_new(&SETTINGS, NULL);
    if (!t)
        abort();
    size_t at = 0;
    int32_t partition = 0;
    while (at + 2 <= size) {
        size_t kl = (size_t)data[at] << 8 | data[at + 1];
        at += 2;
        if (kl > size - at)
            kl = size - at;
        sp_bytes_t key = { data + at, (int32_t)kl };
        at += kl;
        if (at + 2 > size)
            break;
        size_t vl = (size_t)data[at] << 8 | data[at + 1];
        at += 2;
        sp_bytes_t value = { NULL, -1 };
        if (vl != 0xffff) {
            if (vl > size - at)
                vl = size - at;
            value = (sp_bytes_t){ data + at, (int32_t)vl };
            at += vl;
        }
        sp_txns_replay(t, partition++ % 50, key, value);
        check(t);
    }
    sp_txns_loaded(t, NOW);
    check(t);
    sp_txns_tick(t, NOW);
    check(t);
    seen_t s;
    s.n = 0;
    sp_txns_each(t, on_view, &s);
    for (int i = 0; i < s.n; i++) {
        calls(t, s.ids[i], s.pids[i], s.epochs[i]);
        calls(t, s.ids[i], -1, -1);
    }
    /* far in the future: every timeout and expiry due */
    sp_txns_tick(t, NOW + 30LL * 24 * 3600 * 1000);
    check(t);
    s.n = 0;
    sp_txns_each(t, on_view, &s);
    sp_txns_shutdown(t, 15);
    sp_txns_free(t);
    return 0;
}
