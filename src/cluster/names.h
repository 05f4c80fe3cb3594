/* names.h - Kafka's naming rules.  Pure functions, any thread. */
#ifndef SP_CLUSTER_NAMES_H
#define SP_CLUSTER_NAMES_H

#include <stdbool.h>
#include <stdint.h>

#define SP_TOPIC_NAME_MAX 249

/* Kafka's topic name rule: 1..249 chars of [a-zA-Z0-9._-], not "." or "..". */
bool sp_topic_name_valid(const char *name, int32_t len);

/* Kafka's internal topics (Topic.isInternal): __consumer_offsets,
 * __transaction_state, __share_group_state.  Only the broker writes them:
 * clients may not produce to them, create, delete or repartition them. */
bool sp_topic_is_internal(const char *name, int32_t len);

/* The partition of an internal topic that holds key (a group id, a
 * transactional id): Kafka's Utils.abs(key.hashCode()) % n, the bytes
 * taken as Java chars (the same for ASCII keys); 0 when n <= 0. */
int32_t sp_key_partition(const char *key, int32_t len, int32_t n);

#endif
