/*
 * test_codec.c - the generated codec.
 *
 *  1. decode(encode(x)) == x for every schema and version on generated
 *     sample values; size() equals the bytes written; every strict prefix
 *     of an encoding fails to decode (no read past the end).
 *  2. Known-answer tests on byte strings built by hand from the Kafka
 *     protocol guide: ApiVersions v0 and v3, Metadata v1 and v12, Produce v9,
 *     request header v1 and v2.
 *     Both ends of the union of Kafka 4.3's schemas and the legacy copies
 *     (tools/gen_codec.py merge_schema): versions Kafka 4.0 removed
 *     (ListOffsets v0, DescribeConfigs v0) and versions only 4.3 has
 *     (Produce v13's topic id, Metadata v13's top-level error code).
 *  3. Hostile lengths: negative, oversized and absurd counts are refused
 *     before any allocation.
 */
#include <stdlib.h>

#include "check.h"
#include "proto/gen/api_versions_request.h"
#include "proto/gen/api_versions_response.h"
#include "proto/gen/describe_configs_response.h"
#include "proto/gen/list_offsets_request.h"
#include "proto/gen/messages.h"
#include "proto/gen/metadata_request.h"
#include "proto/gen/metadata_response.h"
#include "proto/gen/produce_request.h"
#include "proto/gen/request_header.h"
#include "proto/gen/test_support.h"

static void roundtrip_all(void)
{
    int cases = 0, bad = 0;
    for (int m = 0; m < sp_msg_desc_count; m++) {
        const sp_msg_desc_t *d = &sp_msg_descs[m];
        for (int v = d->min_version; v <= d->max_version; v++) {
            for (uint32_t seed = 1; seed <= 12; seed++) {
                sp_arena_t a;
                sp_arena_init(&a, 0);
                uint32_t rs = seed * 2654435761u + (uint32_t)m * 40503u + (uint32_t)v;
                void *x = sp_arena_alloc(&a, d->struct_size);
                void *y = sp_arena_alloc(&a, d->struct_size);
                d->init(x);
                sp_msg_tests[m].sample(x, &a, (int16_t)v, &rs);
                size_t n = d->size(x, (int16_t)v);
                uint8_t *buf = malloc(n ? n : 1);
                sp_writer_t w = sp_writer(buf, n);
                d->encode(&w, x, (int16_t)v);
                int ok = !w.err && sp_writer_len(&w) == n;
                sp_reader_t r = sp_reader(buf, n);
                d->init(y);
                ok = ok && d->decode(&r, &a, y, (int16_t)v) == 0 && sp_reader_left(&r) == 0;
                ok = ok && sp_msg_tests[m].eq(x, y);
                /* every strict prefix must fail (sampled for long ones) */
                for (size_t cut = 0; ok && cut < n; cut += (cut < 64 ? 1 : 1 + n / 16)) {
                    sp_reader_t pr = sp_reader(buf, cut);
                    d->init(y);
                    if (d->decode(&pr, &a, y, (int16_t)v) == 0) {
                        fprintf(stderr, "%s v%d: prefix %zu of %zu decoded\n", d->name, v, cut, n);
                        ok = 0;
                    }
                }
                if (!ok) {
                    if (bad++ < 10)
                        fprintf(stderr, "round trip failed: %s v%d seed %u (%zu bytes)\n", d->name, v, seed, n);
                }
                cases++;
                free(buf);
                sp_arena_free(&a);
            }
        }
    }
    printf("round trip: %d cases over %d schemas\n", cases, sp_msg_desc_count);
    CHECK(cases > 5000);
    CHECK(bad == 0);
}

/* Encode with a generated encoder and compare with the expected bytes. */
#define ENCODE_EQ(fn, x, v, want) do { \
    size_t n_ = fn##_size((x), (v)); \
    uint8_t *b_ = malloc(n_ + 1); \
    sp_writer_t w_ = sp_writer(b_, n_); \
    fn##_encode(&w_, (x), (v)); \
    CHECK(!w_.err); \
    CHECK_MEM(b_, sp_writer_len(&w_), (want), sizeof(want)); \
    free(b_); \
} while (0)

static void kat_request_header(void)
{
    /* header v1: api_key 18, version 0, correlation 1, client_id "kcat" */
    static const uint8_t v1[] = { 0x00, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
                                  0x00, 0x04, 'k', 'c', 'a', 't' };
    /* header v2: api_key 3, version 12, correlation 7, client_id "rdkafka"
     * (classic string even in v2), empty tagged fields */
    static const uint8_t v2[] = { 0x00, 0x03, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x07,
                                  0x00, 0x07, 'r', 'd', 'k', 'a', 'f', 'k', 'a', 0x00 };
    sp_arena_t a;
    sp_arena_init(&a, 0);
    sp_request_header_t h;
    sp_reader_t r = sp_reader(v1, sizeof(v1));
    sp_request_header_init(&h);
    CHECK(sp_request_header_decode(&r, &a, &h, 1) == 0 && sp_reader_left(&r) == 0);
    CHECK(h.request_api_key == 18 && h.request_api_version == 0 && h.correlation_id == 1);
    CHECK(sp_str_eq_lit(h.client_id, "kcat"));
    ENCODE_EQ(sp_request_header, &h, 1, v1);

    r = sp_reader(v2, sizeof(v2));
    sp_request_header_init(&h);
    CHECK(sp_request_header_decode(&r, &a, &h, 2) == 0 && sp_reader_left(&r) == 0);
    CHECK(h.request_api_key == 3 && h.request_api_version == 12 && h.correlation_id == 7);
    CHECK(sp_str_eq_lit(h.client_id, "rdkafka"));
    ENCODE_EQ(sp_request_header, &h, 2, v2);
    sp_arena_free(&a);
}

static void kat_api_versions(void)
{
    sp_arena_t a;
    sp_arena_init(&a, 0);
    /* v0 request body is empty */
    sp_api_versions_request_t req;
    sp_reader_t r = sp_reader("", 0);
    sp_api_versions_request_init(&req);
    CHECK(sp_api_versions_request_decode(&r, &a, &req, 0) == 0);

    /* v3 request: compact strings "librdkafka", "2.0.2", no tags */
    static const uint8_t req3[] = { 0x0b, 'l', 'i', 'b', 'r', 'd', 'k', 'a', 'f', 'k', 'a',
                                    0x06, '2', '.', '0', '.', '2', 0x00 };
    r = sp_reader(req3, sizeof(req3));
    sp_api_versions_request_init(&req);
    CHECK(sp_api_versions_request_decode(&r, &a, &req, 3) == 0 && sp_reader_left(&r) == 0);
    CHECK(sp_str_eq_lit(req.client_software_name, "librdkafka"));
    CHECK(sp_str_eq_lit(req.client_software_version, "2.0.2"));
    ENCODE_EQ(sp_api_versions_request, &req, 3, req3);

    /* v0 response: error 0, [ {0, 0, 11}, {18, 0, 4} ] */
    static const uint8_t resp0[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
                                     0x00, 0x00, 0x00, 0x00, 0x00, 0x0b,
                                     0x00, 0x12, 0x00, 0x00, 0x00, 0x04 };
    /* v3 response: same list as a compact array with per-entry tags,
     * throttle 0, no top-level tags */
    static const uint8_t resp3[] = { 0x00, 0x00, 0x03,
                                     0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x00,
                                     0x00, 0x12, 0x00, 0x00, 0x00, 0x04, 0x00,
                                     0x00, 0x00, 0x00, 0x00, 0x00 };
    sp_api_versions_response_t resp;
    sp_api_versions_response_init(&resp);
    resp.api_keys.n = 2;
    resp.api_keys.v = sp_api_versions_response_api_version_alloc(&a, 2);
    resp.api_keys.v[0].api_key = 0;
    resp.api_keys.v[0].max_version = 11;
    resp.api_keys.v[1].api_key = 18;
    resp.api_keys.v[1].max_version = 4;
    ENCODE_EQ(sp_api_versions_response, &resp, 0, resp0);
    ENCODE_EQ(sp_api_versions_response, &resp, 3, resp3);

    sp_api_versions_response_t back;
    r = sp_reader(resp3, sizeof(resp3));
    sp_api_versions_response_init(&back);
    CHECK(sp_api_versions_response_decode(&r, &a, &back, 3) == 0);
    CHECK(back.api_keys.n == 2 && back.api_keys.v[1].api_key == 18 && back.api_keys.v[1].max_version == 4);
    CHECK(back.finalized_features_epoch == -1); /* tagged default */

    /* v3 response with a tagged field (tag 1 FinalizedFeaturesEpoch = 5) and
     * an unknown tag 9 that must be skipped */
    static const uint8_t resp3t[] = { 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                                      0x02,
                                      0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 5,
                                      0x09, 0x03, 0xaa, 0xbb, 0xcc };
    r = sp_reader(resp3t, sizeof(resp3t));
    sp_api_versions_response_init(&back);
    CHECK(sp_api_versions_response_decode(&r, &a, &back, 3) == 0 && sp_reader_left(&r) == 0);
    CHECK(back.api_keys.n == 0 && back.finalized_features_epoch == 5);
    sp_arena_free(&a);
}

static const uint8_t topic_id[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

static void kat_metadata(void)
{
    sp_arena_t a;
    sp_arena_init(&a, 0);
    /* v1 request: topics ["foo"]; then null topics (= all) */
    static const uint8_t req1[] = { 0x00, 0x00, 0x00, 0x01, 0x00, 0x03, 'f', 'o', 'o' };
    static const uint8_t req1all[] = { 0xff, 0xff, 0xff, 0xff };
    sp_metadata_request_t req;
    sp_reader_t r = sp_reader(req1, sizeof(req1));
    sp_metadata_request_init(&req);
    CHECK(sp_metadata_request_decode(&r, &a, &req, 1) == 0 && sp_reader_left(&r) == 0);
    CHECK(req.topics.n == 1 && sp_str_eq_lit(req.topics.v[0].name, "foo"));
    CHECK(req.allow_auto_topic_creation == true); /* default for v < 4 */
    r = sp_reader(req1all, sizeof(req1all));
    sp_metadata_request_init(&req);
    CHECK(sp_metadata_request_decode(&r, &a, &req, 1) == 0 && req.topics.n == -1);
    /* null topics are not allowed in v0 */
    r = sp_reader(req1all, sizeof(req1all));
    CHECK(sp_metadata_request_decode(&r, &a, &req, 0) != 0);

    /* v12 request: [{topic_id 0, name "foo"}], allow_auto true, include_topic_ops false */
    static const uint8_t req12[] = { 0x02,
                                     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                     0x04, 'f', 'o', 'o', 0x00,
                                     0x01, 0x00, 0x00 };
    r = sp_reader(req12, sizeof(req12));
    sp_metadata_request_init(&req);
    CHECK(sp_metadata_request_decode(&r, &a, &req, 12) == 0 && sp_reader_left(&r) == 0);
    CHECK(req.topics.n == 1 && sp_str_eq_lit(req.topics.v[0].name, "foo"));
    CHECK(sp_uuid_is_zero(req.topics.v[0].topic_id));
    CHECK(req.allow_auto_topic_creation && !req.include_topic_authorized_operations);
    ENCODE_EQ(sp_metadata_request, &req, 12, req12);

    /* one broker (1, localhost:9092, no rack), controller 1, topic "foo"
     * with partition 0 led by 1, replicas [1], isr [1] */
    sp_metadata_response_t resp;
    sp_metadata_response_init(&resp);
    resp.brokers.n = 1;
    resp.brokers.v = sp_metadata_response_broker_alloc(&a, 1);
    resp.brokers.v[0].node_id = 1;
    resp.brokers.v[0].host = sp_str_lit("localhost");
    resp.brokers.v[0].port = 9092;
    resp.cluster_id = sp_str_lit("abcdef");
    resp.controller_id = 1;
    resp.topics.n = 1;
    resp.topics.v = sp_metadata_response_topic_alloc(&a, 1);
    sp_metadata_response_topic_t *t = &resp.topics.v[0];
    t->name = sp_str_lit("foo");
    memcpy(t->topic_id.b, topic_id, 16);
    t->partitions.n = 1;
    t->partitions.v = sp_metadata_response_partition_alloc(&a, 1);
    sp_metadata_response_partition_t *p = &t->partitions.v[0];
    static int32_t one[] = { 1 };
    p->leader_id = 1;
    p->leader_epoch = 0;
    p->replica_nodes.v = one;
    p->replica_nodes.n = 1;
    p->isr_nodes.v = one;
    p->isr_nodes.n = 1;

    static const uint8_t resp1[] = {
        0x00, 0x00, 0x00, 0x01,                                  /* brokers: 1 */
        0x00, 0x00, 0x00, 0x01,                                  /* node_id */
        0x00, 0x09, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', /* host */
        0x00, 0x00, 0x23, 0x84,                                  /* port 9092 */
        0xff, 0xff,                                              /* rack null */
        0x00, 0x00, 0x00, 0x01,                                  /* controller */
        0x00, 0x00, 0x00, 0x01,                                  /* topics: 1 */
        0x00, 0x00,                                              /* error */
        0x00, 0x03, 'f', 'o', 'o',                               /* name */
        0x00,                                                    /* internal */
        0x00, 0x00, 0x00, 0x01,                                  /* partitions */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,                      /* error, index 0 */
        0x00, 0x00, 0x00, 0x01,                                  /* leader */
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,          /* replicas */
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,          /* isr */
    };
    ENCODE_EQ(sp_metadata_response, &resp, 1, resp1);

    static const uint8_t resp12[] = {
        0x00, 0x00, 0x00, 0x00,                                  /* throttle */
        0x02,                                                    /* brokers: 1 */
        0x00, 0x00, 0x00, 0x01,
        0x0a, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't',
        0x00, 0x00, 0x23, 0x84,
        0x00,                                                    /* rack null */
        0x00,                                                    /* tags */
        0x07, 'a', 'b', 'c', 'd', 'e', 'f',                      /* cluster id */
        0x00, 0x00, 0x00, 0x01,                                  /* controller */
        0x02,                                                    /* topics: 1 */
        0x00, 0x00,
        0x04, 'f', 'o', 'o',
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,   /* topic id */
        0x00,                                                    /* internal */
        0x02,                                                    /* partitions */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01,                                  /* leader */
        0x00, 0x00, 0x00, 0x00,                                  /* leader epoch */
        0x02, 0x00, 0x00, 0x00, 0x01,                            /* replicas */
        0x02, 0x00, 0x00, 0x00, 0x01,                            /* isr */
        0x01,                                                    /* offline: [] */
        0x00,                                                    /* tags */
        0x80, 0x00, 0x00, 0x00,                                  /* topic auth ops */
        0x00,                                                    /* topic tags */
        0x00,                                                    /* tags */
    };
    ENCODE_EQ(sp_metadata_response, &resp, 12, resp12);

    sp_metadata_response_t back;
    r = sp_reader(resp12, sizeof(resp12));
    sp_metadata_response_init(&back);
    CHECK(sp_metadata_response_decode(&r, &a, &back, 12) == 0 && sp_reader_left(&r) == 0);
    CHECK(back.brokers.n == 1 && back.brokers.v[0].port == 9092 && back.brokers.v[0].rack.len == -1);
    CHECK(back.topics.n == 1 && memcmp(back.topics.v[0].topic_id.b, topic_id, 16) == 0);
    CHECK(back.topics.v[0].partitions.v[0].isr_nodes.n == 1);
    sp_arena_free(&a);
}

static void kat_produce(void)
{
    sp_arena_t a;
    sp_arena_init(&a, 0);
    /* v9: transactional_id null, acks -1, timeout 30000, topic "foo",
     * partition 0 with 5 record bytes (kept as a byte range) */
    static const uint8_t req9[] = {
        0x00,                         /* transactional id: null */
        0xff, 0xff,                   /* acks -1 */
        0x00, 0x00, 0x75, 0x30,       /* timeout 30000 */
        0x02,                         /* topics: 1 */
        0x04, 'f', 'o', 'o',
        0x02,                         /* partitions: 1 */
        0x00, 0x00, 0x00, 0x00,       /* index 0 */
        0x06, 0xde, 0xad, 0xbe, 0xef, 0x01, /* records: 5 bytes */
        0x00,                         /* partition tags */
        0x00,                         /* topic tags */
        0x00,                         /* tags */
    };
    sp_produce_request_t req;
    sp_reader_t r = sp_reader(req9, sizeof(req9));
    sp_produce_request_init(&req);
    CHECK(sp_produce_request_decode(&r, &a, &req, 9) == 0 && sp_reader_left(&r) == 0);
    CHECK(req.transactional_id.len == -1 && req.acks == -1 && req.timeout_ms == 30000);
    CHECK(req.topic_data.n == 1 && sp_str_eq_lit(req.topic_data.v[0].name, "foo"));
    CHECK(req.topic_data.v[0].partition_data.n == 1);
    sp_bytes_t rec = req.topic_data.v[0].partition_data.v[0].records;
    CHECK(rec.len == 5 && rec.ptr == req9 + 18); /* zero copy */
    ENCODE_EQ(sp_produce_request, &req, 9, req9);
    sp_arena_free(&a);
}

static void hostile_lengths(void)
{
    sp_arena_t a;
    sp_arena_init(&a, 0);
    sp_metadata_request_t req;
    /* 2^31-1 topics in 4 bytes: refused before allocating */
    static const uint8_t big[] = { 0x7f, 0xff, 0xff, 0xff, 0x00 };
    sp_reader_t r = sp_reader(big, sizeof(big));
    sp_metadata_request_init(&req);
    CHECK(sp_metadata_request_decode(&r, &a, &req, 1) != 0);
    CHECK(a.used_total == 0);
    /* -2 topics */
    static const uint8_t neg[] = { 0xff, 0xff, 0xff, 0xfe };
    r = sp_reader(neg, sizeof(neg));
    CHECK(sp_metadata_request_decode(&r, &a, &req, 1) != 0);
    /* string longer than the buffer */
    static const uint8_t longstr[] = { 0x00, 0x00, 0x00, 0x01, 0x7f, 0xff, 'a' };
    r = sp_reader(longstr, sizeof(longstr));
    CHECK(sp_metadata_request_decode(&r, &a, &req, 1) != 0);
    /* compact array count in a varint that overflows 32 bits */
    static const uint8_t varint[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
    r = sp_reader(varint, sizeof(varint));
    CHECK(sp_metadata_request_decode(&r, &a, &req, 12) != 0);
    /* tagged field whose size runs past the end */
    static const uint8_t tag[] = { 0x01, 0x01, 0x00, 0x01, 0x05, 0x10, 0x00 };
    r = sp_reader(tag, sizeof(tag));
    CHECK(sp_metadata_request_decode(&r, &a, &req, 12) != 0);
    /* an arena limit turns a big allocation into a clean failure */
    sp_arena_t small;
    sp_arena_init(&small, 64);
    CHECK(sp_arena_alloc(&small, 32) != NULL);
    CHECK(sp_arena_alloc(&small, 64) == NULL);
    sp_arena_free(&small);
    sp_arena_free(&a);
}

/* The oldest versions come from message-legacy/, whose fields keep their
 * legacy place on the wire; the newest from Kafka 4.3's message/. */
static void kat_union(void)
{
    sp_arena_t a;
    sp_arena_init(&a, 0);
    CHECK(SP_LIST_OFFSETS_REQUEST_MIN_VERSION == 0 && SP_LIST_OFFSETS_REQUEST_MAX_VERSION == 11);
    CHECK(SP_PRODUCE_REQUEST_MIN_VERSION == 0 && SP_PRODUCE_REQUEST_MAX_VERSION == 13);
    CHECK(SP_DESCRIBE_CONFIGS_RESPONSE_MIN_VERSION == 0);

    /* ListOffsets v0 (Burrow 1.2): replica -1, [ "t" [ p 0, ts -1, max 1 ] ] */
    static const uint8_t lo0[] = { 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01,
                                   0x00, 0x01, 't', 0x00, 0x00, 0x00, 0x01,
                                   0x00, 0x00, 0x00, 0x00,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0x00, 0x00, 0x00, 0x01 };
    sp_list_offsets_request_t lo;
    sp_reader_t r = sp_reader(lo0, sizeof(lo0));
    sp_list_offsets_request_init(&lo);
    CHECK(sp_list_offsets_request_decode(&r, &a, &lo, 0) == 0 && sp_reader_left(&r) == 0);
    CHECK(lo.replica_id == -1 && lo.topics.n == 1 && lo.topics.v[0].partitions.n == 1);
    CHECK(lo.topics.v[0].partitions.v[0].timestamp == -1);
    CHECK(lo.topics.v[0].partitions.v[0].max_num_offsets == 1);
    ENCODE_EQ(sp_list_offsets_request, &lo, 0, lo0);

    /* DescribeConfigs v0 response: IsDefault sits after ReadOnly, where the
     * legacy schema puts it (4.3's copy lists it elsewhere, for no version) */
    static const uint8_t dc0[] = { 0, 0, 0, 0,               /* throttle */
                                   0, 0, 0, 1,               /* results */
                                   0, 0, 0xff, 0xff,         /* error, null message */
                                   2, 0, 1, 't',             /* type TOPIC, "t" */
                                   0, 0, 0, 1,               /* configs */
                                   0, 1, 'k', 0, 1, 'v',     /* name, value */
                                   1, 0, 0 };                /* read only, is default, sensitive */
    sp_describe_configs_response_t dc;
    sp_describe_configs_response_init(&dc);
    r = sp_reader(dc0, sizeof(dc0));
    CHECK(sp_describe_configs_response_decode(&r, &a, &dc, 0) == 0 && sp_reader_left(&r) == 0);
    CHECK(dc.results.n == 1 && dc.results.v[0].configs.n == 1);
    CHECK(dc.results.v[0].configs.v[0].read_only == true);
    CHECK(dc.results.v[0].configs.v[0].is_default == false);
    CHECK(dc.results.v[0].configs.v[0].is_sensitive == false);
    dc.results.v[0].configs.v[0].is_default = true;
    ENCODE_EQ(sp_describe_configs_response, &dc, 0, ((const uint8_t[]){ 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0xff, 0xff,
                                                                        2, 0, 1, 't', 0, 0, 0, 1, 0, 1, 'k', 0, 1, 'v',
                                                                        1, 1, 0 }));

    /* Produce v13: a topic id where v12 had the name */
    static const uint8_t p13[] = { 0x00,                     /* null transactional id */
                                   0xff, 0xff,               /* acks -1 */
                                   0x00, 0x00, 0x13, 0x88,   /* timeout 5000 */
                                   0x02,                     /* one topic */
                                   1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                   0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,  /* partition 3, null records */
                                   0x00, 0x00 };
    sp_produce_request_t pr;
    sp_produce_request_init(&pr);
    r = sp_reader(p13, sizeof(p13));
    CHECK(sp_produce_request_decode(&r, &a, &pr, 13) == 0 && sp_reader_left(&r) == 0);
    CHECK(pr.topic_data.n == 1 && pr.topic_data.v[0].topic_id.b[15] == 16);
    CHECK(pr.topic_data.v[0].name.len == 0);
    CHECK(pr.topic_data.v[0].partition_data.n == 1 && pr.topic_data.v[0].partition_data.v[0].index == 3);
    ENCODE_EQ(sp_produce_request, &pr, 13, p13);

    /* Metadata v13: the response's top-level error code follows the
     * cluster authorized operations */
    sp_metadata_response_t mr;
    sp_metadata_response_init(&mr);
    mr.error_code = 58;
    size_t n12 = sp_metadata_response_size(&mr, 12), n13 = sp_metadata_response_size(&mr, 13);
    CHECK(n13 == n12 + 2);
    uint8_t *b = malloc(n13);
    sp_writer_t w = sp_writer(b, n13);
    sp_metadata_response_encode(&w, &mr, 13);
    CHECK(!w.err && b[n13 - 3] == 0 && b[n13 - 2] == 58 && b[n13 - 1] == 0);
    free(b);
    sp_arena_free(&a);
}

int main(void)
{
    roundtrip_all();
    kat_request_header();
    kat_api_versions();
    kat_metadata();
    kat_produce();
    kat_union();
    hostile_lengths();
    return check_summary("test_codec");
}
