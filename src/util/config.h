/*
 * config.h - broker configuration with Kafka's key names.
 *
 * Owns the table of supported keys (name, type, default, meaning) and the
 * values read from a server.properties file and --override key=value
 * arguments.  Built once on the main thread at start, then read-only.
 *
 * Invariants:
 *  (1) every value held has passed its key's type and range check;
 *  (2) a key not in the table is never stored: it is reported by name.
 */
#ifndef SP_UTIL_CONFIG_H
#define SP_UTIL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum sp_cfg_type {
    SP_CFG_INT,
    SP_CFG_LONG,
    SP_CFG_BOOL,
    SP_CFG_STRING,
    SP_CFG_LIST,
} sp_cfg_type_t;

/* Where a value came from (Kafka's DescribeConfigs sources). */
typedef enum sp_cfg_source {
    SP_CFG_SRC_DEFAULT = 5,        /* DEFAULT_CONFIG */
    SP_CFG_SRC_STATIC = 4,         /* STATIC_BROKER_CONFIG */
} sp_cfg_source_t;

typedef struct sp_cfg_def {
    const char *name;
    sp_cfg_type_t type;
    const char *def;          /* default as text; NULL = no default (null) */
    int64_t min, max;         /* for INT/LONG */
    const char *alias_of;     /* e.g. broker.id is an alias of node.id */
    const char *doc;
} sp_cfg_def_t;

typedef struct sp_config sp_config_t;

sp_config_t *sp_config_new(void);
void sp_config_free(sp_config_t *c);

/* Reads a Java-properties file (key=value or key: value, # and ! comments,
 * backslash line continuation).  Returns 0, or -1 with a logged reason. */
int sp_config_load_file(sp_config_t *c, const char *path);
/* Sets one "key=value".  Unknown keys are warned about and ignored (0);
 * a bad value is an error (-1, logged). */
int sp_config_set_kv(sp_config_t *c, const char *kv, const char *origin);

const char *sp_config_str(const sp_config_t *c, const char *name);   /* NULL if null */
int64_t sp_config_long(const sp_config_t *c, const char *name);
bool sp_config_bool(const sp_config_t *c, const char *name);
sp_cfg_source_t sp_config_source(const sp_config_t *c, const char *name);

/* The key table, for docs and DescribeConfigs. */
const sp_cfg_def_t *sp_config_defs(int *count);

#endif
