/* topic_config.c - Kafka's topic-level configuration (see topic_config.h). */
#include "cluster/topic_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/batch.h"

#define LMAX INT64_MAX
#define IMAX INT32_MAX

/* Keep docs/CONFIG.md in step.  Defaults are Kafka's except flush.messages
 * (Spool is durable by default: 1 = every acknowledged write is synced). */
static const sp_topic_key_t keys[] = {
    { "cleanup.policy", SP_CT_LIST, "delete", "log.cleanup.policy", 0, 0, "delete,compact",
      "delete: old segments go by retention; compact: keep the latest record per key (a key is then required)." },
    { "compression.gzip.level", SP_CT_INT, "-1", "compression.gzip.level", -1, 9, "-1,1,2,3,4,5,6,7,8,9",
      "Level of gzip when compression.type is gzip: 1 to 9, or -1 for zlib's default (6)." },
    { "compression.lz4.level", SP_CT_INT, "9", "compression.lz4.level", 1, 17, NULL,
      "Level of lz4 when compression.type is lz4 (1 to 17)." },
    { "compression.type", SP_CT_STRING, "producer", "compression.type", 0, 0,
      "uncompressed,zstd,lz4,snappy,gzip,producer",
      "Codec of the stored batches: uncompressed, gzip, snappy, lz4 or zstd (a batch the producer compressed otherwise is recompressed on append), or producer (kept as sent)." },
    { "compression.zstd.level", SP_CT_INT, "3", "compression.zstd.level", -131072, 22, NULL,
      "Level of zstd when compression.type is zstd (-131072 to 22)." },
    { "delete.retention.ms", SP_CT_LONG, "86400000", "log.cleaner.delete.retention.ms", 0, LMAX, NULL,
      "How long delete markers are kept on compacted topics." },
    { "file.delete.delay.ms", SP_CT_LONG, "60000", "log.segment.delete.delay.ms", 0, LMAX, NULL,
      "Delay before a deleted segment's files are removed." },
    { "flush.messages", SP_CT_LONG, "1", "log.flush.interval.messages", 1, LMAX, NULL,
      "Records appended before a forced fsync. 1 (Spool's default): acks=all is answered after fsync and consumers see only synced data." },
    { "flush.ms", SP_CT_LONG, "9223372036854775807", "log.flush.interval.ms", 0, LMAX, NULL,
      "Longest time data stays unsynced when flush.messages > 1." },
    { "index.interval.bytes", SP_CT_INT, "4096", "log.index.interval.bytes", 0, IMAX, NULL,
      "Log bytes between two offset index entries." },
    { "max.compaction.lag.ms", SP_CT_LONG, "9223372036854775807", "log.cleaner.max.compaction.lag.ms", 1, LMAX, NULL,
      "Longest time a record stays ineligible for compaction." },
    { "max.message.bytes", SP_CT_INT, "1048588", "message.max.bytes", 0, IMAX, NULL,
      "Largest record batch accepted (MESSAGE_TOO_LARGE above)." },
    { "message.timestamp.after.max.ms", SP_CT_LONG, "3600000", "log.message.timestamp.after.max.ms", 0, LMAX, NULL,
      "How far ahead of the broker's clock a record's CreateTime may be (INVALID_TIMESTAMP past it); ignored with LogAppendTime." },
    { "message.timestamp.before.max.ms", SP_CT_LONG, "9223372036854775807", "log.message.timestamp.before.max.ms", 0, LMAX, NULL,
      "How far behind the broker's clock a record's CreateTime may be (INVALID_TIMESTAMP past it); ignored with LogAppendTime." },
    { "message.timestamp.type", SP_CT_STRING, "CreateTime", "log.message.timestamp.type", 0, 0,
      "CreateTime,LogAppendTime", "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches on append." },
    { "min.cleanable.dirty.ratio", SP_CT_DOUBLE, "0.5", "log.cleaner.min.cleanable.ratio", 0, 1, NULL,
      "Dirty fraction of a compacted log that triggers cleaning." },
    { "min.compaction.lag.ms", SP_CT_LONG, "0", "log.cleaner.min.compaction.lag.ms", 0, LMAX, NULL,
      "Shortest time a record stays uncompacted." },
    { "min.insync.replicas", SP_CT_INT, "1", "min.insync.replicas", 1, IMAX, NULL,
      "Replicas that must have a write for acks=all to succeed." },
    { "retention.bytes", SP_CT_LONG, "-1", "log.retention.bytes", -1, LMAX, NULL,
      "Largest size of a partition before old segments are deleted (-1: no limit)." },
    { "retention.ms", SP_CT_LONG, "604800000", "log.retention.ms", -1, LMAX, NULL,
      "Longest time a segment is kept (-1: forever)." },
    { "segment.bytes", SP_CT_INT, "1073741824", "log.segment.bytes", 14, IMAX, NULL,
      "Size at which the active segment is rolled." },
    { "segment.index.bytes", SP_CT_INT, "10485760", "log.index.size.max.bytes", 4, IMAX, NULL,
      "Space reserved for the active segment's offset index." },
    { "segment.jitter.ms", SP_CT_LONG, "0", "log.roll.jitter.ms", 0, LMAX, NULL,
      "Random jitter subtracted from segment.ms." },
    { "segment.ms", SP_CT_LONG, "604800000", "log.roll.ms", 1, LMAX, NULL,
      "Age at which the active segment is rolled." },
    { "unclean.leader.election.enable", SP_CT_BOOLEAN, "false", "unclean.leader.election.enable", 0, 0, NULL,
      "Whether an out-of-sync replica may become leader." },
};

#define NKEYS ((int)(sizeof(keys) / sizeof(keys[0])))

const sp_topic_key_t *sp_topic_keys(int *count)
{
    *count = NKEYS;
    return keys;
}

const sp_topic_key_t *sp_topic_key(const char *name, int32_t len)
{
    for (int i = 0; i < NKEYS; i++)
        if ((int32_t)strlen(keys[i].name) == len && memcmp(keys[i].name, name, (size_t)len) == 0)
            return &keys[i];
    return NULL;
}

const sp_topic_key_t *sp_topic_key_by_broker_key(const char *name, int32_t len)
{
    for (int i = 0; i < NKEYS; i++)
        if (keys[i].broker_key && (int32_t)strlen(keys[i].broker_key) == len &&
            memcmp(keys[i].broker_key, name, (size_t)len) == 0)
            return &keys[i];
    return NULL;
}

static bool in_choices(const char *choices, const char *v, size_t n)
{
    const char *p = choices;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == n && strncasecmp(p, v, n) == 0)
            return true;
        if (!c)
            break;
        p = c + 1;
    }
    return false;
}

const char *sp_topic_config_check(const sp_topic_key_t *k, const char *v)
{
    char *end;
    switch (k->type) {
    case SP_CT_INT:
    case SP_CT_LONG: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end)
            return "value is not a number";
        if (x < k->min || x > k->max || (k->choices && !in_choices(k->choices, v, strlen(v))))
            return "value is out of range";
        return NULL;
    }
    case SP_CT_DOUBLE: {
        double d = strtod(v, &end);
        if (end == v || *end)
            return "value is not a number";
        if (d < (double)k->min || d > (double)k->max)
            return "value is out of range";
        return NULL;
    }
    case SP_CT_BOOLEAN:
        return strcasecmp(v, "true") == 0 || strcasecmp(v, "false") == 0 ? NULL : "value must be true or false";
    case SP_CT_LIST: {
        if (!k->choices)
            return NULL;
        const char *p = v;
        if (!*p)
            return "value must not be empty";
        while (*p) {
            const char *c = strchr(p, ',');
            size_t l = c ? (size_t)(c - p) : strlen(p);
            while (l && *p == ' ') {
                p++;
                l--;
            }
            if (!in_choices(k->choices, p, l))
                return "value is not one of the allowed choices";
            if (!c)
                break;
            p = c + 1;
        }
        return NULL;
    }
    default:
        if (k->choices && !in_choices(k->choices, v, strlen(v)))
            return "value is not one of the allowed choices";
        return NULL;
    }
}

const char *sp_topic_broker_value(const sp_topic_key_t *k, const sp_image_t *img, bool per_broker,
                                  const sp_config_t *broker, int *source)
{
    const char *v;
    if (k->broker_key) {
        if (per_broker && (v = sp_image_broker_config(img, false, k->broker_key))) {
            *source = SP_CS_DYNAMIC_BROKER;
            return v;
        }
        if ((v = sp_image_broker_config(img, true, k->broker_key))) {
            *source = SP_CS_DYNAMIC_DEFAULT_BROKER;
            return v;
        }
        if (broker && sp_config_source(broker, k->broker_key) == SP_CFG_SRC_STATIC) {
            *source = SP_CS_STATIC_BROKER;
            return sp_config_str(broker, k->broker_key);
        }
    }
    *source = SP_CS_DEFAULT;
    return k->def;
}

const char *sp_topic_config_value(const sp_topic_key_t *k, int n, char *const *ks,
                                  char *const *vs, const sp_image_t *img,
                                  const sp_config_t *broker, int *source)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(ks[i], k->name) == 0) {
            *source = SP_CS_DYNAMIC_TOPIC;
            return vs[i];
        }
    }
    return sp_topic_broker_value(k, img, true, broker, source);
}

/* The resolution context of sp_topic_log_config. */
typedef struct res_ctx {
    int n;
    char *const *ks, *const *vs;
    const sp_image_t *img;
    const sp_config_t *b;
} res_ctx_t;

static const char *val(const res_ctx_t *c, const char *name)
{
    int src;
    const sp_topic_key_t *k = sp_topic_key(name, (int32_t)strlen(name));
    return sp_topic_config_value(k, c->n, c->ks, c->vs, c->img, c->b, &src);
}

static int64_t num(const res_ctx_t *c, const char *name)
{
    return strtoll(val(c, name), NULL, 10);
}

/* The codec a compression.type value stores with, or -1 for 'producer'
 * (and anything unknown, which the checks never let in). */
static int codec_named(const char *v)
{
    static const char *names[] = { "uncompressed", "gzip", "snappy", "lz4", "zstd" };
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (strcasecmp(v, names[i]) == 0)
            return i;   /* SP_COMPRESSION_NONE .. SP_COMPRESSION_ZSTD */
    return -1;
}

void sp_topic_log_config(int n, char *const *ks, char *const *vs, const sp_image_t *img,
                         const sp_config_t *b, sp_log_config_t *out)
{
    res_ctx_t c = { n, ks, vs, img, b };
    out->segment_bytes = num(&c, "segment.bytes");
    out->segment_ms = num(&c, "segment.ms");
    out->segment_index_bytes = num(&c, "segment.index.bytes");
    out->index_interval_bytes = num(&c, "index.interval.bytes");
    out->flush_messages = num(&c, "flush.messages");
    out->flush_ms = num(&c, "flush.ms");
    out->max_message_bytes = num(&c, "max.message.bytes");
    out->retention_ms = num(&c, "retention.ms");
    out->retention_bytes = num(&c, "retention.bytes");
    out->min_insync_replicas = num(&c, "min.insync.replicas");
    out->timestamp_before_max_ms = num(&c, "message.timestamp.before.max.ms");
    out->timestamp_after_max_ms = num(&c, "message.timestamp.after.max.ms");
    out->codec = codec_named(val(&c, "compression.type"));
    out->recompress = out->codec >= 0;
    if (!out->recompress)
        out->codec = SP_COMPRESSION_NONE;
    out->gzip_level = (int)num(&c, "compression.gzip.level");
    out->lz4_level = (int)num(&c, "compression.lz4.level");
    out->zstd_level = (int)num(&c, "compression.zstd.level");
    out->log_append_time = strcasecmp(val(&c, "message.timestamp.type"), "LogAppendTime") == 0;
    out->min_cleanable_ratio = strtod(val(&c, "min.cleanable.dirty.ratio"), NULL);
    out->min_compaction_lag_ms = num(&c, "min.compaction.lag.ms");
    out->max_compaction_lag_ms = num(&c, "max.compaction.lag.ms");
    out->delete_retention_ms = num(&c, "delete.retention.ms");
    out->compact = strstr(val(&c, "cleanup.policy"), "compact") != NULL;
    out->retention_delete = strstr(val(&c, "cleanup.policy"), "delete") != NULL;
    if (out->segment_index_bytes < 8)
        out->segment_index_bytes = 8;
}
