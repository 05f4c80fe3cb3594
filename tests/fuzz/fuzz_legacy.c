/*
 * fuzz_legacy.c - libFuzzer target: magic 0/1 message sets and their
 * conversion (src/proto/legacy.h), what Produce v0-2 and Fetch v0-3 do
 * with bytes from the network and from the log.
 *
 * The input is a message set as a producer sends it.  It is converted as
 * is, and again on a copy whose top-level CRCs are fixed up (otherwise
 * almost every mutation dies at the CRC and the key, value and wrapper
 * parsers are never reached).  The same bytes are also given to the way
 * down as if they were a log read.  Decompression is capped at 1 MiB.
 * Oracles: no out-of-bounds access (ASan), no UB (UBSan), no leak, and
 * consistency: a message set that converts makes a record batch that
 * validates and converts back, for both magics, to a message set of the
 * same number of messages, with offsets 0, 1, 2... and intact CRCs.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "proto/batch.h"
#include "proto/legacy.h"
#include "proto/wire.h"

#define MAX_DECOMPRESSED ((size_t)1 << 20)

/* Sets the CRC of every whole top-level message of set[0..len). */
static void fix_crcs(uint8_t *set, size_t len)
{
    size_t off = 0;
    while (len - off >= 12 + 14) {
        int64_t size = (int32_t)sp_be32(set + off + 8);
        if (size < 14 || (uint64_t)size > len - off - 12)
            return;
        uint8_t *m = set + off + 12;
        sp_put_be32(m, (uint32_t)crc32(0L, m + 4, (uInt)(size - 4)));
        off += 12 + (size_t)size;
    }
}

/* Checks a message set made by sp_legacy_from_batches: n messages with
 * offsets 0..n-1 and good CRCs, of the given magic. */
static void check_down(const uint8_t *set, size_t len, int magic, int n)
{
    size_t off = 0;
    int i = 0;
    while (off < len) {
        if (len - off < 12 + 14)
            abort();
        int64_t o = (int64_t)((uint64_t)sp_be32(set + off) << 32 | sp_be32(set + off + 4));
        int64_t size = (int32_t)sp_be32(set + off + 8);
        if (o != i || size < 14 || (uint64_t)size > len - off - 12)
            abort();
        const uint8_t *m = set + off + 12;
        if ((uint32_t)crc32(0L, m + 4, (uInt)(size - 4)) != sp_be32(m) || m[4] != magic)
            abort();
        off += 12 + (size_t)size;
        i++;
    }
    if (i != n)
        abort();
}

static int count_records(const uint8_t *b, size_t len)
{
    sp_record_iter_t it;
    sp_record_t rec;
    int n = 0, rc;
    if (sp_record_iter_init(&it, b, len, MAX_DECOMPRESSED) != 0) {
        sp_record_iter_free(&it);
        return -1;
    }
    while ((rc = sp_record_iter_next(&it, &rec)) == 1)
        n++;
    sp_record_iter_free(&it);
    return rc == 0 ? n : -1;
}

static void up_and_down(const uint8_t *set, size_t len)
{
    uint8_t *batch = NULL;
    size_t blen = 0;
    const char *why = NULL;
    if (sp_legacy_to_batch(set, len, MAX_DECOMPRESSED, &batch, &blen, &why) != 0) {
        if (batch || !why)
            abort(); /* a refusal owns nothing and says why */
        return;
    }
    sp_batch_validate_opts_t opts;
    sp_batch_info_t info;
    memset(&opts, 0, sizeof(opts));
    opts.max_decompressed = MAX_DECOMPRESSED;
    if (sp_batch_validate(batch, blen, &opts, &info) != 0)
        abort();
    int n = count_records(batch, blen);
    if (n <= 0 || n != info.records)
        abort();
    for (int magic = 0; magic <= 1; magic++) {
        uint8_t *down = NULL;
        size_t dlen = 0;
        if (sp_legacy_from_batches(batch, blen, magic, &down, &dlen) != 0)
            abort();
        check_down(down, dlen, magic, n);
        free(down);
    }
    free(batch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    up_and_down(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fix_crcs(copy, size);
    up_and_down(copy, size);
    /* the way down, from bytes that are not batches at all */
    uint8_t *down = NULL;
    size_t dlen = 0;
    if (sp_legacy_from_batches(data, size, (int)(size & 1), &down, &dlen) == 0)
        free(down);
    free(copy);
    return 0;
}
