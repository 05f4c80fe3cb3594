/*
 * offset_map.h - the log cleaner's map from key to the latest offset of
 * that key (Kafka's SkimpyOffsetMap): a fixed array of slots, each a
 * 16-byte hash of the key (XXH3-128, libxxhash) and the offset, filled by
 * linear probing up to a load factor.  Its memory is fixed when it is made
 * (log.cleaner.dedupe.buffer.size / log.cleaner.threads), never grows:
 * when it is full the cleaner stops mapping and cleans what it mapped
 * (a pass), so memory stays bounded whatever the number of keys.
 *
 * Two keys with the same 128-bit hash would count as one (the older
 * record of the other would be dropped); Kafka accepts the same risk
 * with MD5.
 *
 * Threads: one cleaner thread owns a map.  No locks.
 */
#ifndef SP_LOG_OFFSET_MAP_H
#define SP_LOG_OFFSET_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_OFFSET_MAP_SLOT 24

typedef struct sp_offset_map {
    uint8_t *slots;               /* nslots * SP_OFFSET_MAP_SLOT, anonymous memory */
    size_t bytes;                 /* mapped */
    size_t nslots;
    size_t max_entries;           /* nslots * load factor */
    size_t entries;
    int64_t latest;               /* largest offset put or noted, -1 */
    bool full_stop;               /* the cleaner's mapping stopped here: full */
} sp_offset_map_t;

/* A map of 'bytes' bytes (at least one slot) filled to load_factor
 * (0 < f <= 1).  0, or -1 (out of memory). */
int sp_offset_map_init(sp_offset_map_t *m, size_t bytes, double load_factor);
void sp_offset_map_free(sp_offset_map_t *m);
/* Empties the map and gives its pages back to the kernel. */
void sp_offset_map_clear(sp_offset_map_t *m);
static inline bool sp_offset_map_full(const sp_offset_map_t *m) { return m->entries >= m->max_entries; }
/* A key's 128-bit hash: computed once, then prefetched and used. */
typedef struct sp_okey {
    uint64_t lo, hi;
} sp_okey_t;

void sp_offset_map_hash(const void *key, size_t klen, sp_okey_t *h);
/* Starts loading h's first slot into the cache: a batch's keys are
 * hashed and prefetched before they are looked up, so that the cache
 * misses overlap (each costs about 150 ns in a 128 MiB map). */
static inline void sp_offset_map_prefetch(const sp_offset_map_t *m, const sp_okey_t *h)
{
    __builtin_prefetch(m->slots + (size_t)(h->lo % m->nslots) * SP_OFFSET_MAP_SLOT);
}
/* Records key -> offset (offsets are put in increasing order; a key put
 * again keeps the new one).  The caller checks full() first. */
void sp_offset_map_put_hash(sp_offset_map_t *m, const sp_okey_t *h, int64_t offset);
/* The offset of the key, or -1. */
int64_t sp_offset_map_get_hash(const sp_offset_map_t *m, const sp_okey_t *h);

/* Moves latest up to offset (a batch read without keys to map). */
static inline void sp_offset_map_note(sp_offset_map_t *m, int64_t offset)
{
    if (offset > m->latest)
        m->latest = offset;
}

#endif
