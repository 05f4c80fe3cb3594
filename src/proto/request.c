/* request.c - see request.h. */
#include "proto/request.h"

#include <string.h>

int sp_frame_parse(const uint8_t *buf, size_t len, int32_t max, int32_t *frame_len)
{
    if (len < 4) {
        *frame_len = -1;
        return SP_FRAME_AGAIN;
    }
    int32_t n = (int32_t)sp_be32(buf);
    *frame_len = n;
    if (n < 0 || n > max)
        return SP_FRAME_BAD;
    return len - 4 >= (size_t)n ? SP_FRAME_READY : SP_FRAME_AGAIN;
}

int16_t sp_request_header_version(int16_t api_key, int16_t api_version)
{
    const sp_msg_desc_t *d = sp_msg_request_desc(api_key);
    if (api_key == SP_API_CONTROLLED_SHUTDOWN && api_version == 0)
        return 0;
    if (d && d->first_flexible >= 0 && api_version >= d->first_flexible)
        return 2;
    return 1;
}

int16_t sp_response_header_version(int16_t api_key, int16_t api_version)
{
    const sp_msg_desc_t *d = sp_msg_response_desc(api_key);
    if (api_key == SP_API_API_VERSIONS)
        return 0;
    if (d && d->first_flexible >= 0 && api_version >= d->first_flexible)
        return 1;
    return 0;
}

int sp_request_parse(const uint8_t *frame, size_t len, sp_arena_t *a, sp_request_t *out,
                     int decode_body)
{
    sp_reader_t r = sp_reader(frame, len);
    int16_t key, ver;

    memset(out, 0, sizeof(*out));
    sp_request_header_init(&out->hdr);
    if (len < 8)
        return SP_REQ_MALFORMED;
    sp_read_i16(&r, &key);
    sp_read_i16(&r, &ver);
    sp_read_i32(&r, &out->hdr.correlation_id);
    out->hdr.request_api_key = key;
    out->hdr.request_api_version = ver;
    out->desc = sp_msg_request_desc(key);

    int unknown = !out->desc;
    int bad_version = out->desc && (ver < out->desc->min_version || ver > out->desc->max_version);
    /* An unknown version still has a v1 header prefix: client_id is read so
     * that logs can name the client; the body is never decoded. */
    out->header_version = (unknown || bad_version) ? 1 : sp_request_header_version(key, ver);
    r = sp_reader(frame, len);
    if (sp_request_header_decode(&r, a, &out->hdr, out->header_version) != 0)
        return unknown ? SP_REQ_UNKNOWN_API : bad_version ? SP_REQ_BAD_VERSION : SP_REQ_MALFORMED;
    if (unknown)
        return SP_REQ_UNKNOWN_API;
    if (bad_version)
        return SP_REQ_BAD_VERSION;
    out->body_ptr = r.pos;
    out->body_len = sp_reader_left(&r);
    if (!decode_body)
        return 0;
    out->body = sp_arena_alloc(a, out->desc->struct_size);
    if (!out->body)
        return SP_REQ_MALFORMED;
    out->desc->init(out->body);
    if (out->desc->decode(&r, a, out->body, ver) != 0)
        return SP_REQ_MALFORMED;
    /* bytes after the body are ignored, as Kafka does (see request.h) */
    return 0;
}

const sp_msg_desc_t *sp_msg_desc_named(const char *name)
{
    for (int i = 0; i < sp_msg_desc_count; i++)
        if (strcmp(sp_msg_descs[i].name, name) == 0)
            return &sp_msg_descs[i];
    return NULL;
}
