/*
 * fuzz_request.c - libFuzzer target: framing + request header + body
 * decoding, for every API and version in Kafka's schemas.
 *
 * The input is a byte stream as a client would send it: frames with
 * 4-byte length prefixes.  Oracle: nothing reads out of bounds (ASan),
 * no undefined behaviour (UBSan), and whatever decodes re-encodes to
 * exactly size() bytes that decode again.
 */
#include <stdlib.h>

#include "proto/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        int32_t flen;
        if (sp_frame_parse(data + off, size - off, 1 << 20, &flen) != SP_FRAME_READY)
            break;
        const uint8_t *frame = data + off + 4;
        sp_arena_t a;
        sp_request_t req;
        sp_arena_init(&a, (size_t)64 << 20);
        if (sp_request_parse(frame, (size_t)flen, &a, &req, 1) == 0) {
            int16_t v = req.hdr.request_api_version;
            size_t n = req.desc->size(req.body, v);
            uint8_t *buf = malloc(n ? n : 1);
            sp_writer_t w = sp_writer(buf, n);
            req.desc->encode(&w, req.body, v);
            if (w.err || sp_writer_len(&w) != n)
                abort();
            void *again = sp_arena_alloc(&a, req.desc->struct_size);
            if (again) {
                sp_reader_t r = sp_reader(buf, n);
                req.desc->init(again);
                if (req.desc->decode(&r, &a, again, v) != 0 || sp_reader_left(&r) != 0)
                    abort();
            }
            free(buf);
        }
        sp_arena_free(&a);
        off += 4 + (size_t)flen;
    }
    return 0;
}
