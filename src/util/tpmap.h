/*
 * tpmap.h - a map from topic-partition to a pointer: a sorted array with
 * binary search (lookups O(log n), inserts and removals O(n), iteration in
 * (topic, partition) order).  No locking: the owner guards it.
 */
#ifndef SP_UTIL_TPMAP_H
#define SP_UTIL_TPMAP_H

#include <stdint.h>

typedef struct sp_tpmap_entry {
    char *topic;                  /* owned */
    int32_t partition;
    void *val;
} sp_tpmap_entry_t;

typedef struct sp_tpmap {
    sp_tpmap_entry_t *v;
    int n, cap;
} sp_tpmap_t;

/* The index of (topic[0..tlen), partition), or -(insertion point) - 1. */
int sp_tpmap_find(const sp_tpmap_t *m, const char *topic, int32_t tlen, int32_t partition);
/* The value of (topic, partition), or NULL. */
void *sp_tpmap_get(const sp_tpmap_t *m, const char *topic, int32_t tlen, int32_t partition);
/* Inserts at the insertion point 'at' (from sp_tpmap_find: -at - 1).
 * 0, or -1 when out of memory (nothing changed). */
int sp_tpmap_insert(sp_tpmap_t *m, int at, const char *topic, int32_t partition, void *val);
/* Removes entry i (its topic freed); returns its value. */
void *sp_tpmap_remove(sp_tpmap_t *m, int i);
/* Frees the array and the names (not the values). */
void sp_tpmap_free(sp_tpmap_t *m);

#endif
