/*
 * request.h - framing and request parsing, independent of sockets.
 *
 * The connection code and the fuzz target both go through these two steps:
 *   sp_frame_parse()   length prefix -> whole frame, or need more, or error
 *   sp_request_parse() frame -> request header + decoded body
 *
 * Frame layout (every Kafka request):
 *   +----------------+----------------------+------------------------+
 *   | int32 length   | request header v0-v2 | request body           |
 *   +----------------+----------------------+------------------------+
 *   header v0: int16 api_key, int16 api_version, int32 correlation_id
 *   header v1: v0 + client_id (classic nullable string)
 *   header v2: v1 + tagged fields (used by flexible request versions)
 *
 * Pure functions; any thread.  Decoded strings point into the frame.
 */
#ifndef SP_PROTO_REQUEST_H
#define SP_PROTO_REQUEST_H

#include "proto/gen/messages.h"
#include "proto/gen/request_header.h"
#include "proto/wire.h"

/* Result of sp_frame_parse(). */
#define SP_FRAME_AGAIN 0      /* need more bytes */
#define SP_FRAME_READY 1      /* a whole frame is present */
#define SP_FRAME_BAD (-1)     /* negative length or above the limit */

/*
 * Looks at buf[0..len).  On READY, *frame_len is the body length (without
 * the 4-byte prefix).  On AGAIN, *frame_len is the announced length once
 * the prefix is complete, else -1.  'max' is socket.request.max.bytes; the
 * length is checked against it before anyone allocates.
 */
int sp_frame_parse(const uint8_t *buf, size_t len, int32_t max, int32_t *frame_len);

/* Errors from sp_request_parse(). */
#define SP_REQ_MALFORMED (-1)      /* header or body does not decode */
#define SP_REQ_UNKNOWN_API (-2)    /* api key not in Kafka's schemas */
#define SP_REQ_BAD_VERSION (-3)    /* version outside Kafka's schema range */

typedef struct sp_request {
    sp_request_header_t hdr;
    int16_t header_version;
    const sp_msg_desc_t *desc;  /* request schema, NULL if the key is unknown */
    void *body;                 /* decoded request struct (arena), or NULL */
    const uint8_t *body_ptr;    /* body bytes inside the frame */
    size_t body_len;
} sp_request_t;

/* Request header version used by (api_key, api_version): 2 for flexible
 * versions, else 1 (ControlledShutdown v0 alone used 0). */
int16_t sp_request_header_version(int16_t api_key, int16_t api_version);

/* The schema named name (e.g. "TopicRecord"), or NULL: a scan of every
 * schema, so callers look theirs up once. */
const sp_msg_desc_t *sp_msg_desc_named(const char *name);
/* Response header version: 1 for flexible versions, else 0; ApiVersions
 * always answers with header v0 so that any client can read it. */
int16_t sp_response_header_version(int16_t api_key, int16_t api_version);

/*
 * Parses the header of 'frame' into 'out' (always sets hdr.correlation_id,
 * api key and version when the first 8 bytes exist).  With decode_body,
 * also decodes the body with the generated decoder; bytes left after a
 * body that decodes are ignored, as Kafka's request parser ignores them
 * (the connection logs them at debug level).  Borrows 'frame': out's strings point into it.  Allocates from 'a'.
 * Returns 0 or an SP_REQ_* error.
 */
int sp_request_parse(const uint8_t *frame, size_t len, sp_arena_t *a, sp_request_t *out,
                     int decode_body);

#endif
