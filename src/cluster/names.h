/* names.h - Kafka's naming rules.  Pure functions, any thread. */
#ifndef SP_CLUSTER_NAMES_H
#define SP_CLUSTER_NAMES_H

#include <stdbool.h>
#include <stdint.h>

#define SP_TOPIC_NAME_MAX 249

/* Kafka's topic name rule: 1..249 chars of [a-zA-Z0-9._-], not "." or "..". */
bool sp_topic_name_valid(const char *name, int32_t len);

#endif
