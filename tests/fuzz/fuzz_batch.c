/*
 * fuzz_batch.c - libFuzzer target: record batches v2 (src/proto/batch.h).
 *
 * The input is a buffer of concatenated batches, as in a produce request or
 * a segment file.  For each batch that sp_batch_next() frames:
 *   - sp_batch_validate() as is, and again on a copy whose CRC is fixed up
 *     (otherwise almost every mutation dies at the CRC and the record and
 *     codec parsers are never reached), strict and compacted modes;
 *   - sp_batch_validate() as a client's Produce (keys, timestamp bounds,
 *     record errors counted) on the CRC-fixed copy;
 *   - the record and header iterators, whatever validate said.
 * The decompression cap is 1 MiB.  Oracles: no out-of-bounds access (ASan),
 * no UB (UBSan), no leak, and consistency: a batch that validates iterates
 * to exactly info.records records, its headers iterate cleanly, it
 * recompresses to a batch with the same records, and
 * sp_batch_set_log_append_time() keeps it valid, sp_batch_filter() (the
 * cleaner's rebuild) makes a valid compacted batch of exactly the records it
 * kept, same offsets and producer; a batch a client may
 * write reported no record error.
 */
#include <stdlib.h>
#include <string.h>

#include "proto/batch.h"
#include "proto/gen/errors.h"

#define MAX_DECOMPRESSED ((size_t)1 << 20)

/* Walks all records and headers; returns the record count or -1. */
static int iterate(const uint8_t *b, size_t len)
{
    sp_record_iter_t it;
    sp_record_t rec;
    int n = 0, rc;
    if (sp_record_iter_init(&it, b, len, MAX_DECOMPRESSED) != 0) {
        sp_record_iter_free(&it);
        return -1;
    }
    while ((rc = sp_record_iter_next(&it, &rec)) == 1) {
        sp_header_iter_t hi;
        sp_str_t k;
        sp_bytes_t v;
        int h = 0, hrc;
        sp_header_iter_init(&hi, &rec);
        while ((hrc = sp_header_iter_next(&hi, &k, &v)) == 1)
            h++;
        /* the record iterator checked the headers: they must walk */
        if (hrc != 0 || h != rec.header_count)
            abort();
        n++;
    }
    sp_record_iter_free(&it);
    return rc == 0 ? n : -1;
}

static void check_valid(uint8_t *b, size_t len, const sp_batch_info_t *info,
                        const sp_batch_validate_opts_t *opts)
{
    if (iterate(b, len) != info->records || info->records != info->hdr.record_count)
        abort();
    /* recompressed (codec picked by the size), it holds the same records */
    int codec = (int)(len % 5);
    uint8_t *out;
    size_t olen;
    sp_batch_info_t again;
    if (sp_batch_recompress(b, len, codec, 1, MAX_DECOMPRESSED, &out, &olen) == 0) {
        if (sp_batch_validate(out, olen, opts, &again) != 0 || again.records != info->records ||
            again.records_size != info->records_size)
            abort();
        free(out);
    }
    /* compacted (a mask from the size), it is a valid compacted batch over
     * the same offsets holding exactly the kept records */
    int32_t n = info->hdr.record_count;
    bool *keep = calloc(n > 0 ? (size_t)n : 1, sizeof(bool));
    int32_t kept = 0;
    for (int32_t i = 0; keep && i < n; i++)
        kept += keep[i] = ((len >> (i % 13)) ^ (size_t)i) & 1;
    sp_batch_validate_opts_t compacted = { opts->require_keys, true, MAX_DECOMPRESSED };
    if (keep && sp_batch_filter(b, len, keep, n, (len & 2) ? 5000 : -1, MAX_DECOMPRESSED, &out, &olen) == 0) {
        sp_batch_hdr_t h;
        if (sp_batch_validate(out, olen, &compacted, &again) != 0 || again.records != kept ||
            sp_batch_hdr_parse(out, olen, &h) != 0 || h.base_offset != info->hdr.base_offset ||
            h.last_offset_delta != info->hdr.last_offset_delta || h.producer_id != info->hdr.producer_id ||
            (kept > 0 && sp_batch_compression(&h) != sp_batch_compression(&info->hdr)))
            abort();
        free(out);
    }
    free(keep);
    if (sp_batch_set_log_append_time(b, len, 1234567) != 0 ||
        sp_batch_validate(b, len, opts, NULL) != 0)
        abort();
}

static void count_error(void *ctx, int32_t batch_index, int16_t error, const char *message)
{
    (void)batch_index;
    if ((error != SP_ERR_INVALID_RECORD && error != SP_ERR_INVALID_TIMESTAMP) || !message[0])
        abort();
    ++*(int *)ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0, bsize;
    while (sp_batch_next(data + off, size - off, &bsize) == 1) {
        const uint8_t *batch = data + off;
        sp_batch_validate_opts_t strict = { false, false, MAX_DECOMPRESSED };
        sp_batch_validate_opts_t compacted = { true, true, MAX_DECOMPRESSED };
        sp_batch_info_t info;

        uint8_t *copy = malloc(bsize);
        if (!copy)
            return 0;
        memcpy(copy, batch, bsize);
        if (sp_batch_validate(copy, bsize, &strict, &info) == 0)
            check_valid(copy, bsize, &info, &strict);

        memcpy(copy, batch, bsize);
        sp_batch_set_crc(copy, bsize);
        if (sp_batch_validate(copy, bsize, &strict, &info) == 0)
            check_valid(copy, bsize, &info, &strict);
        memcpy(copy, batch, bsize);
        sp_batch_set_crc(copy, bsize);
        if (sp_batch_validate(copy, bsize, &compacted, &info) == 0)
            check_valid(copy, bsize, &info, &compacted);

        int nerr = 0;
        sp_batch_validate_opts_t client = {
            .require_keys = true, .max_decompressed = MAX_DECOMPRESSED, .from_client = true,
            .check_timestamps = true, .now_ms = 1700000000000, .ts_before_max_ms = INT64_MAX,
            .ts_after_max_ms = 3600000, .partition = "t-0", .record_error = count_error,
            .record_error_ctx = &nerr,
        };
        memcpy(copy, batch, bsize);
        sp_batch_set_crc(copy, bsize);
        if (sp_batch_validate(copy, bsize, &client, &info) == 0 && nerr != 0)
            abort();

        iterate(batch, bsize);
        free(copy);
        off += bsize;
    }
    return 0;
}
