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
 * groups' state holding together after every record (sp_groups_check),
 * replayed into groups without a coordinator (group/group.h: no
 * environment, no thread).
 */
#include <stdio.h>
#include <stdlib.h>

#include "group/group.h"
#include "group/records.h"
#include "proto/batch.h"
#include "util/config.h"

static sp_group_settings_t settings;
static bool ready;

/* any fixed time: replay uses it for groups without a state timestamp */
#define NOW 1700000000000LL

static void check(const sp_groups_t *gs)
{
    int rc = sp_groups_check(gs);
    if (rc != 0) {
        fprintf(stderr, "fuzz_offsets: group state broken: rule %d\n", rc);
        abort();
    }
}

static int on_record(const sp_record_t *rec, void *ctx)
{
    sp_groups_replay(ctx, rec->key, rec->value, rec->offset, NOW);
    check(ctx);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        sp_config_t *cfg = sp_config_new();
        sp_group_settings_from(cfg, &settings);
        sp_config_free(cfg);
        ready = true;
    }
    sp_groups_t *gs = sp_groups_new(&settings, NULL);
    if (!gs)
        abort();
    int64_t next = 0;
    sp_batches_each_record(data, size, on_record, gs, &next);
    sp_groups_free(gs);

    gs = sp_groups_new(&settings, NULL);
    if (!gs)
        abort();
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
        sp_groups_replay(gs, key, value, offset++, NOW);
        check(gs);
    }
    sp_groups_free(gs);
    return 0;
}
