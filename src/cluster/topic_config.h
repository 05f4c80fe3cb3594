/*
 * topic_config.h - Kafka's topic-level configuration: names, types,
 * defaults, the broker keys that set their defaults, and validation.
 *
 * A topic's effective value for key K is, in order (Kafka's ConfigSource):
 *   1 DYNAMIC_TOPIC_CONFIG          the topic's own override (ConfigRecord)
 *   2 DYNAMIC_BROKER_CONFIG         K's broker key set dynamically on this
 *                                   broker (ConfigRecord, BROKER "<id>")
 *   3 DYNAMIC_DEFAULT_BROKER_CONFIG K's broker key set dynamically as the
 *                                   cluster default (BROKER "")
 *   4 STATIC_BROKER_CONFIG          K's broker key in server.properties
 *   5 DEFAULT_CONFIG                the default.
 * The broker keys of the topic keys (broker_key) are exactly the broker
 * configs that may be changed dynamically.  Dynamic values come from the
 * metadata image the caller passes (the one it holds, or the unpublished
 * image the metadata thread is building); NULL means none.
 *
 * Pure functions over a broker config that is read-only after start and an
 * image that is immutable or owned by the caller; any thread.
 */
#ifndef SP_CLUSTER_TOPIC_CONFIG_H
#define SP_CLUSTER_TOPIC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/image.h"
#include "log/plog.h"
#include "util/config.h"

/* Kafka's ConfigType codes (DescribeConfigs v3+). */
enum { SP_CT_BOOLEAN = 1, SP_CT_STRING = 2, SP_CT_INT = 3, SP_CT_SHORT = 4, SP_CT_LONG = 5,
       SP_CT_DOUBLE = 6, SP_CT_LIST = 7 };

/* Kafka's ConfigSource codes. */
enum { SP_CS_DYNAMIC_TOPIC = 1, SP_CS_DYNAMIC_BROKER = 2, SP_CS_DYNAMIC_DEFAULT_BROKER = 3,
       SP_CS_STATIC_BROKER = 4, SP_CS_DEFAULT = 5 };

typedef struct sp_topic_key {
    const char *name;
    int type;                 /* SP_CT_* */
    const char *def;          /* Kafka's default (Spool's where noted in CONFIG.md) */
    const char *broker_key;   /* synonym in server.properties, or NULL */
    int64_t min, max;         /* numbers: range */
    const char *choices;      /* comma list of allowed values, or NULL */
    const char *doc;
} sp_topic_key_t;

const sp_topic_key_t *sp_topic_keys(int *count);
const sp_topic_key_t *sp_topic_key(const char *name, int32_t len);

/* The topic key whose broker_key is name[0..len), or NULL: such a broker
 * key is dynamically settable. */
const sp_topic_key_t *sp_topic_key_by_broker_key(const char *name, int32_t len);

/* Validates value for key; NULL if fine, else a message (static text). */
const char *sp_topic_config_check(const sp_topic_key_t *k, const char *value);

/* Effective value and its source (SP_CS_*) for key k, given the topic's
 * overrides (parallel arrays, borrowed), the image holding the dynamic
 * broker configs (borrowed, may be NULL) and the broker configuration.
 * The result is borrowed from one of them (or static). */
const char *sp_topic_config_value(const sp_topic_key_t *k, int n, char *const *keys,
                                  char *const *values, const sp_image_t *img,
                                  const sp_config_t *broker, int *source);

/* The broker-level value of k's broker key, sources 2..5 as above:
 * per_broker false skips this broker's own dynamic value (the cluster
 * default resource ""). */
const char *sp_topic_broker_value(const sp_topic_key_t *k, const sp_image_t *img, bool per_broker,
                                  const sp_config_t *broker, int *source);

/* Resolves the log settings of a topic (same arguments as above). */
void sp_topic_log_config(int n, char *const *keys, char *const *values, const sp_image_t *img,
                         const sp_config_t *broker, sp_log_config_t *out);

#endif
