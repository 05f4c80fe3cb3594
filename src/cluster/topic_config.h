/*
 * topic_config.h - Kafka's topic-level configuration: names, types,
 * defaults, the broker keys that set their defaults, and validation.
 *
 * A topic's effective value for key K is, in order: the topic's own
 * override (ConfigRecord, DYNAMIC_TOPIC_CONFIG), else the broker key that
 * is K's synonym when set in server.properties (STATIC_BROKER_CONFIG), else
 * the default (DEFAULT_CONFIG).  Pure functions over a broker config that
 * is read-only after start; any thread.
 */
#ifndef SP_CLUSTER_TOPIC_CONFIG_H
#define SP_CLUSTER_TOPIC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

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

/* Validates value for key; NULL if fine, else a message (static text). */
const char *sp_topic_config_check(const sp_topic_key_t *k, const char *value);

/* Effective value and its source for key k, given the topic's overrides
 * (parallel arrays) and the broker configuration. */
const char *sp_topic_config_value(const sp_topic_key_t *k, int n, char *const *keys,
                                  char *const *values, const sp_config_t *broker, int *source);

/* Resolves the log settings of a topic. */
void sp_topic_log_config(int n, char *const *keys, char *const *values,
                         const sp_config_t *broker, sp_log_config_t *out);

#endif
