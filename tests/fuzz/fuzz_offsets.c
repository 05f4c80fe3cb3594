/*
 * fuzz_offsets.c - libFuzzer target: replay of __consumer_offsets, what
 * the group coordinator does at start: every record (OffsetCommit keys v0
 * and v1, GroupMetadata key v2, and their values of every version;
 * tombstones) rebuilds groups, members and committed offsets.
 *
 * The input is read twice:
 *   - as a segment file: concatenated batches (CRC-checked by
 *     sp_batches_each_record; the corpus holds a real __consumer_offsets
 *     segment written by spoold), each record replayed;
 *   - as bare records: the key's length (2 bytes, big-endian), the key,
 *     the value's (0xffff: a tombstone), the value, repeated, so the
 *     decoders see mutations the CRC would hide.
 * Oracles: no out-of-bounds access, UB or leak (ASan, UBSan), and the
 * coordinator's state holding together after every record
 * (sp_coordinator_check).
 */
#include <stdio.h>
#include <stdlib.h>

#include "group/coordinator.h"
#include "proto/batch.h"

static sp_config_t *cfg;

static void check(const sp_coordinator_t *c)
{
    int rc = sp_coordinator_check(c);
    if (rc != 0) {
        fprintf(stderr, "fuzz_offsets: coordinator state broken: rule %d\n", rc);
        abort();
    }
}

static int on_record(const sp_record_t *rec, void *ctx)
{
    sp_coordinator_replay(ctx, rec->key, rec->value, rec->offset);
    check(ctx);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg)
        cfg = sp_config_new();
    sp_coordinator_t *c = sp_coordinator_new_detached(cfg);
    if (!c)
        abort();
    int64_t next = 0;
    sp_batches_each_record(data, size, on_record, c, &next);
    sp_coordinator_free_detached(c);

    c = sp_coordinator_new_detached(cfg);
    size_t at = 0;
    int64_t offset = 0;
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
        sp_coordinator_replay(c, key, value, offset++);
        check(c);
    }
    sp_coordinator_free_detached(c);
    return 0;
}
