/* config.c - see config.h. */
#include "util/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"

/* Every key Spool understands.  Keep docs/CONFIG.md in step. */
static const sp_cfg_def_t defs[] = {
    { "node.id", SP_CFG_INT, "1", 0, INT32_MAX, NULL,
      "The id of this broker in the cluster." },
    { "broker.id", SP_CFG_INT, NULL, 0, INT32_MAX, "node.id",
      "Older name of node.id; used when node.id is not set." },
    { "listeners", SP_CFG_LIST, "PLAINTEXT://127.0.0.1:9092", 0, 0, NULL,
      "Comma-separated listener URIs the broker binds (NAME://host:port)." },
    { "advertised.listeners", SP_CFG_LIST, NULL, 0, 0, NULL,
      "Listener URIs given to clients in metadata; defaults to listeners." },
    { "broker.rack", SP_CFG_STRING, NULL, 0, 0, NULL,
      "Rack of the broker, returned in metadata." },
    { "log.dirs", SP_CFG_LIST, NULL, 0, 0, NULL,
      "Directories where partition logs and meta.properties are kept; overrides log.dir." },
    { "log.dir", SP_CFG_STRING, "/tmp/kafka-logs", 0, 0, NULL,
      "Directory for log data, used when log.dirs is not set." },
    { "socket.request.max.bytes", SP_CFG_INT, "104857600", 1, INT32_MAX, NULL,
      "Largest request frame accepted; checked on the length prefix before any allocation." },
    { "num.network.threads", SP_CFG_INT, "0", 0, 256, NULL,
      "I/O worker threads, each an event loop owning its connections; 0 = one per core." },
    { "connections.max.idle.ms", SP_CFG_LONG, "600000", -1, INT64_MAX, NULL,
      "Close a connection after this long with no request in progress and nothing received; -1 never." },
    { "max.connections", SP_CFG_INT, "2147483647", 0, INT32_MAX, NULL,
      "Most open connections broker-wide; at the limit the listener stops accepting until one closes." },
    { "max.connections.per.ip", SP_CFG_INT, "2147483647", 0, INT32_MAX, NULL,
      "Most connections from one address; a new one over the limit is closed at once." },
    { "max.connections.per.ip.overrides", SP_CFG_STRING, "", 0, 0, NULL,
      "Per-address limits, 'host:count,host:count', overriding max.connections.per.ip." },
    { "queued.max.request.bytes", SP_CFG_LONG, "209715200", -1, INT64_MAX, NULL,
      "Bytes of requests being read or waiting before connections stop being read; <= 0 unbounded (Spool: 200 MiB)." },
    { "socket.request.read.timeout.ms", SP_CFG_LONG, "30000", -1, INT64_MAX, NULL,
      "Spool: close a connection that sent part of a request and nothing more for this long; -1 never." },
    { "log.level", SP_CFG_STRING, "info", 0, 0, NULL,
      "Spool's log threshold: debug, info, warn or error." },
    /* topics */
    { "auto.create.topics.enable", SP_CFG_BOOL, "true", 0, 0, NULL,
      "Create a topic on first use: a Metadata request or a Produce naming it." },
    { "num.partitions", SP_CFG_INT, "1", 1, 1000000, NULL,
      "Partitions of an automatically created topic (and CreateTopics with -1)." },
    { "default.replication.factor", SP_CFG_INT, "1", 1, 32767, NULL,
      "Replication factor of an automatically created topic." },
    /* consumer groups */
    { "offsets.topic.num.partitions", SP_CFG_INT, "50", 1, 100000, NULL,
      "Partitions of __consumer_offsets, created with the first FindCoordinator." },
    { "transaction.state.log.num.partitions", SP_CFG_INT, "50", 1, 100000, NULL,
      "Partitions of __transaction_state, created by the first FindCoordinator for a transactional id." },
    { "transaction.state.log.segment.bytes", SP_CFG_INT, "104857600", 1, INT32_MAX, NULL,
      "segment.bytes of __transaction_state." },
    { "transaction.max.timeout.ms", SP_CFG_INT, "900000", 1, INT32_MAX, NULL,
      "The longest transaction.timeout.ms a producer may ask for (InitProducerId); longer is "
      "INVALID_TRANSACTION_TIMEOUT." },
    { "transactional.id.expiration.ms", SP_CFG_INT, "604800000", 1, INT32_MAX, NULL,
      "How long a transactional id with no transaction under way is kept after its last update." },
    { "transaction.abort.timed.out.transaction.cleanup.interval.ms", SP_CFG_INT, "10000", 1, INT32_MAX, NULL,
      "How often transactions past their timeout are aborted." },
    { "transaction.remove.expired.transaction.cleanup.interval.ms", SP_CFG_INT, "3600000", 1, INT32_MAX, NULL,
      "How often expired transactional ids are removed." },
    { "offsets.topic.segment.bytes", SP_CFG_INT, "104857600", 1, INT32_MAX, NULL,
      "segment.bytes of __consumer_offsets." },
    { "offsets.retention.minutes", SP_CFG_LONG, "10080", 1, INT32_MAX, NULL,
      "How long the committed offsets of an empty group are kept." },
    { "offsets.retention.check.interval.ms", SP_CFG_LONG, "600000", 1, INT32_MAX, NULL,
      "How often expired offsets are looked for." },
    { "offset.metadata.max.bytes", SP_CFG_INT, "4096", 0, INT32_MAX, NULL,
      "Largest metadata string of a committed offset (OFFSET_METADATA_TOO_LARGE above)." },
    { "group.initial.rebalance.delay.ms", SP_CFG_INT, "3000", 0, INT32_MAX, NULL,
      "How long the first rebalance of an empty group waits for more members." },
    { "group.min.session.timeout.ms", SP_CFG_INT, "6000", 0, INT32_MAX, NULL,
      "Smallest session.timeout.ms a member may ask for (INVALID_SESSION_TIMEOUT)." },
    { "group.max.session.timeout.ms", SP_CFG_INT, "1800000", 0, INT32_MAX, NULL,
      "Largest session.timeout.ms a member may ask for (INVALID_SESSION_TIMEOUT)." },
    { "group.max.size", SP_CFG_INT, "2147483647", 1, INT32_MAX, NULL,
      "Most members in one group (GROUP_MAX_SIZE_REACHED)." },
    /* broker defaults of topic settings (see sp_topic_keys) */
    { "log.cleanup.policy", SP_CFG_LIST, "delete", 0, 0, NULL, "Default cleanup.policy." },
    { "compression.type", SP_CFG_STRING, "producer", 0, 0, NULL, "Default compression.type." },
    { "compression.gzip.level", SP_CFG_INT, "-1", -1, 9, NULL, "Default compression.gzip.level." },
    { "compression.lz4.level", SP_CFG_INT, "9", 1, 17, NULL, "Default compression.lz4.level." },
    { "compression.zstd.level", SP_CFG_INT, "3", -131072, 22, NULL, "Default compression.zstd.level." },
    { "log.cleaner.delete.retention.ms", SP_CFG_LONG, "86400000", 0, INT64_MAX, NULL, "Default delete.retention.ms." },
    { "log.segment.delete.delay.ms", SP_CFG_LONG, "60000", 0, INT64_MAX, NULL, "Default file.delete.delay.ms." },
    { "log.flush.interval.messages", SP_CFG_LONG, "1", 1, INT64_MAX, NULL, "Default flush.messages (Spool: 1, durable)." },
    { "log.flush.interval.ms", SP_CFG_LONG, "9223372036854775807", 0, INT64_MAX, NULL, "Default flush.ms." },
    { "log.index.interval.bytes", SP_CFG_INT, "4096", 0, INT32_MAX, NULL, "Default index.interval.bytes." },
    { "log.cleaner.max.compaction.lag.ms", SP_CFG_LONG, "9223372036854775807", 1, INT64_MAX, NULL, "Default max.compaction.lag.ms." },
    { "message.max.bytes", SP_CFG_INT, "1048588", 0, INT32_MAX, NULL, "Default max.message.bytes." },
    { "log.message.timestamp.type", SP_CFG_STRING, "CreateTime", 0, 0, NULL, "Default message.timestamp.type." },
    { "log.message.timestamp.before.max.ms", SP_CFG_LONG, "9223372036854775807", 0, INT64_MAX, NULL,
      "Default message.timestamp.before.max.ms." },
    { "log.message.timestamp.after.max.ms", SP_CFG_LONG, "3600000", 0, INT64_MAX, NULL,
      "Default message.timestamp.after.max.ms." },
    { "log.cleaner.enable", SP_CFG_BOOL, "true", 0, 0, NULL,
      "Whether the log cleaner compacts topics with cleanup.policy=compact." },
    { "log.cleaner.threads", SP_CFG_INT, "1", 0, 64, NULL, "Log cleaner threads (0: none)." },
    { "log.cleaner.dedupe.buffer.size", SP_CFG_LONG, "134217728", 1, INT64_MAX, NULL,
      "Memory of the cleaners' key maps, shared among log.cleaner.threads (24 bytes a key)." },
    { "log.cleaner.io.buffer.load.factor", SP_CFG_STRING, "0.9", 0, 0, NULL,
      "How full a cleaner's key map may get (0 to 1)." },
    { "log.cleaner.io.buffer.size", SP_CFG_INT, "524288", 0, INT32_MAX, NULL,
      "A cleaner's read buffer (grows for a larger batch)." },
    { "log.cleaner.io.max.bytes.per.second", SP_CFG_STRING, "1.7976931348623157E308", 0, 0, NULL,
      "Bytes a second all cleaners together read and write at most." },
    { "log.cleaner.backoff.ms", SP_CFG_LONG, "15000", 0, INT64_MAX, NULL,
      "How long a cleaner sleeps when no log needs cleaning." },
    { "log.cleaner.min.cleanable.ratio", SP_CFG_STRING, "0.5", 0, 0, NULL, "Default min.cleanable.dirty.ratio." },
    { "log.cleaner.min.compaction.lag.ms", SP_CFG_LONG, "0", 0, INT64_MAX, NULL, "Default min.compaction.lag.ms." },
    { "min.insync.replicas", SP_CFG_INT, "1", 1, INT32_MAX, NULL, "Default min.insync.replicas." },
    { "log.retention.bytes", SP_CFG_LONG, "-1", -1, INT64_MAX, NULL, "Default retention.bytes." },
    { "log.retention.ms", SP_CFG_LONG, "604800000", -1, INT64_MAX, NULL, "Default retention.ms." },
    { "log.retention.check.interval.ms", SP_CFG_LONG, "300000", 1, INT64_MAX, NULL,
      "How often old segments are deleted by retention.ms / retention.bytes." },
    { "producer.id.expiration.ms", SP_CFG_INT, "86400000", 1, INT32_MAX, NULL,
      "How long a partition remembers an idle producer id (no open transaction) after its last batch's "
      "timestamp; a forgotten producer may start at any sequence." },
    { "producer.id.expiration.check.interval.ms", SP_CFG_INT, "600000", 1, INT32_MAX, NULL,
      "How often a partition forgets expired producer ids (checked at its next append)." },
    { "log.flush.offset.checkpoint.interval.ms", SP_CFG_LONG, "60000", 1, INT32_MAX, NULL,
      "How often the recovery points (recovery-point-offset-checkpoint) are written." },
    { "log.flush.start.offset.checkpoint.interval.ms", SP_CFG_LONG, "60000", 1, INT32_MAX, NULL,
      "How often the log start offsets (log-start-offset-checkpoint) are written after they move." },
    { "log.segment.bytes", SP_CFG_INT, "1073741824", 14, INT32_MAX, NULL, "Default segment.bytes." },
    { "log.index.size.max.bytes", SP_CFG_INT, "10485760", 4, INT32_MAX, NULL, "Default segment.index.bytes." },
    { "log.roll.jitter.ms", SP_CFG_LONG, "0", 0, INT64_MAX, NULL, "Default segment.jitter.ms." },
    { "log.roll.ms", SP_CFG_LONG, "604800000", 1, INT64_MAX, NULL, "Default segment.ms." },
    { "unclean.leader.election.enable", SP_CFG_BOOL, "false", 0, 0, NULL, "Default unclean.leader.election.enable." },
    { "metadata.log.max.record.bytes.between.snapshots", SP_CFG_LONG, "20971520", 1, INT64_MAX, NULL,
      "Metadata log bytes after which a new metadata snapshot is written." },
};

/* Keys whose value must be one of a few (any case), as Kafka's
 * ValidString / GzipCompression's level validator say. */
static const struct {
    const char *name, *choices;
} choice_keys[] = {
    { "compression.type", "uncompressed,zstd,lz4,snappy,gzip,producer" },
    { "compression.gzip.level", "-1,1,2,3,4,5,6,7,8,9" },
};

/* Kafka keys that are accepted for compatibility but have no effect. */
static const char *ignored_keys[] = {
    "process.roles", "controller.quorum.voters", "controller.quorum.bootstrap.servers",
    "controller.listener.names", "listener.security.protocol.map",
    "inter.broker.listener.name", "num.io.threads", "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes", "num.recovery.threads.per.data.dir",
    "zookeeper.connect", "zookeeper.connection.timeout.ms",
    "group.initial.rebalance.delay.ms.legacy",
};

#define NDEFS ((int)(sizeof(defs) / sizeof(defs[0])))

struct sp_config {
    char *values[NDEFS];        /* NULL = not set (default applies) */
};

const sp_cfg_def_t *sp_config_defs(int *count)
{
    *count = NDEFS;
    return defs;
}

sp_config_t *sp_config_new(void)
{
    return calloc(1, sizeof(sp_config_t));
}

void sp_config_free(sp_config_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < NDEFS; i++)
        free(c->values[i]);
    free(c);
}

static int find(const char *name)
{
    for (int i = 0; i < NDEFS; i++)
        if (strcmp(defs[i].name, name) == 0)
            return i;
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

/* Whether v is one of the comma-separated choices (any case). */
static bool in_choices(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
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

static int validate(const sp_cfg_def_t *d, const char *v)
{
    char *end;
    for (size_t i = 0; i < sizeof(choice_keys) / sizeof(choice_keys[0]); i++)
        if (strcmp(choice_keys[i].name, d->name) == 0 && !in_choices(choice_keys[i].choices, v))
            return -1;
    switch (d->type) {
    case SP_CFG_INT:
    case SP_CFG_LONG: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < d->min || (d->max && x > d->max))
            return -1;
        return 0;
    }
    case SP_CFG_BOOL:
        return strcasecmp(v, "true") == 0 || strcasecmp(v, "false") == 0 ? 0 : -1;
    default:
        return 0;
    }
}

static int set_value(sp_config_t *c, const char *key, const char *val, const char *origin)
{
    int i = find(key);
    if (i < 0) {
        for (size_t k = 0; k < sizeof(ignored_keys) / sizeof(ignored_keys[0]); k++) {
            if (strcmp(ignored_keys[k], key) == 0) {
                sp_warn("config", "%s: key '%s' is a Kafka setting Spool does not use; ignored", origin, key);
                return 0;
            }
        }
        sp_warn("config", "%s: unknown key '%s' ignored", origin, key);
        return 0;
    }
    if (validate(&defs[i], val) != 0) {
        sp_error("config", "%s: invalid value '%s' for %s", origin, val, key);
        return -1;
    }
    free(c->values[i]);
    c->values[i] = strdup(val);
    return c->values[i] ? 0 : -1;
}

int sp_config_set_kv(sp_config_t *c, const char *kv, const char *origin)
{
    const char *eq = strchr(kv, '=');
    if (!eq) {
        sp_error("config", "%s: expected key=value, got '%s'", origin, kv);
        return -1;
    }
    char *key = strndup(kv, (size_t)(eq - kv));
    char *val = strdup(eq + 1);
    int rc = -1;
    if (key && val)
        rc = set_value(c, trim(key), trim(val), origin);
    free(key);
    free(val);
    return rc;
}

int sp_config_load_file(sp_config_t *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        sp_error("config", "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char line[8192], logical[16384];
    size_t ll = 0;
    int rc = 0, lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *s = line;
        size_t n = strlen(s);
        while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
            s[--n] = 0;
        if (ll == 0) {
            s = trim(s);
            if (*s == '#' || *s == '!' || *s == 0)
                continue;
        } else {
            while (isspace((unsigned char)*s))
                s++;
        }
        n = strlen(s);
        bool cont = n && s[n - 1] == '\\';
        if (cont)
            s[--n] = 0;
        if (ll + n >= sizeof(logical)) {
            sp_error("config", "%s:%d: line too long", path, lineno);
            rc = -1;
            break;
        }
        memcpy(logical + ll, s, n);
        ll += n;
        logical[ll] = 0;
        if (cont)
            continue;
        /* key ends at the first unescaped '=', ':' or whitespace */
        char *p = logical;
        while (*p && *p != '=' && *p != ':' && !isspace((unsigned char)*p))
            p++;
        char *key = logical;
        char *val = p;
        if (*p) {
            *p++ = 0;
            while (isspace((unsigned char)*p) || *p == '=' || *p == ':')
                p++;
            val = p;
        }
        char origin[512];
        snprintf(origin, sizeof(origin), "%s:%d", path, lineno);
        if (set_value(c, trim(key), trim(val), origin) != 0)
            rc = -1;
        ll = 0;
    }
    fclose(f);
    return rc;
}

const char *sp_config_str(const sp_config_t *c, const char *name)
{
    int i = find(name);
    if (i < 0)
        return NULL;
    return c->values[i] ? c->values[i] : defs[i].def;
}

int64_t sp_config_long(const sp_config_t *c, const char *name)
{
    const char *v = sp_config_str(c, name);
    return v ? strtoll(v, NULL, 10) : 0;
}

bool sp_config_bool(const sp_config_t *c, const char *name)
{
    const char *v = sp_config_str(c, name);
    return v && strcasecmp(v, "true") == 0;
}

sp_cfg_source_t sp_config_source(const sp_config_t *c, const char *name)
{
    int i = find(name);
    return i >= 0 && c->values[i] ? SP_CFG_SRC_STATIC : SP_CFG_SRC_DEFAULT;
}
