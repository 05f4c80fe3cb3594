/*
 * hashset.h - finds repeated keys in an array the caller owns, in O(n).
 *
 * Used on request arrays a client controls (a Fetch naming one partition
 * a thousand times, a Metadata naming one topic millions of times), so the
 * hash is keyed: SipHash-2-4 with a random 128-bit key drawn once per
 * process.  Chosen inputs cannot make the probe chains long without
 * knowing the key.
 *
 * The set holds indices into the caller's array; the caller's equality
 * callback compares two indices.  Memory comes from the caller (usually
 * the request's arena), sized by sp_hashset_mem_size(): 8 bytes a slot,
 * at most 4 slots per item.  Nothing to free.
 *
 * Not thread-safe: one set belongs to one thread (a request's worker).
 * sp_hash_bytes()/sp_hash_mix() may be called from any thread.
 *
 * Invariants:
 *  (1) the table is never more than half full, so a probe always ends;
 *  (2) an index is added at most once, and only when no equal one is in.
 */
#ifndef SP_UTIL_HASHSET_H
#define SP_UTIL_HASHSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Are the items at indices a and b equal? */
typedef bool (*sp_hashset_eq_fn)(const void *ctx, uint32_t a, uint32_t b);

typedef struct sp_hashset {
    uint32_t *slot;      /* item index + 1; 0 = empty */
    uint32_t *hash;      /* the low 32 bits of that item's hash */
    uint32_t mask;       /* slots - 1 (a power of two minus one) */
    uint32_t n, max;     /* items in, items allowed */
    sp_hashset_eq_fn eq;
    const void *ctx;
} sp_hashset_t;

/* Bytes of memory sp_hashset_init needs for up to max_items items
 * (max_items <= 2^29), or 0 when that is too many. */
size_t sp_hashset_mem_size(uint32_t max_items);
/* Sets up s over 'mem' (sp_hashset_mem_size(max_items) bytes; borrowed for
 * the set's life, zeroed here).  Borrows ctx. */
void sp_hashset_init(sp_hashset_t *s, void *mem, uint32_t max_items, sp_hashset_eq_fn eq,
                     const void *ctx);
/* If an item equal to 'idx' is in the set, returns that item's index and
 * adds nothing; otherwise adds idx and returns -1.  'hash' is idx's key
 * hash (sp_hash_bytes/sp_hash_mix); equal items must have equal hashes.
 * Adding more than max_items items is a caller bug (asserted). */
int64_t sp_hashset_add(sp_hashset_t *s, uint32_t idx, uint64_t hash);

/* Keyed hash of len bytes (SipHash-2-4, per-process random key). */
uint64_t sp_hash_bytes(const void *p, size_t len);
/* Keyed hash of a hash and one more value, e.g. a topic's hash and a
 * partition number. */
uint64_t sp_hash_mix(uint64_t h, int64_t extra);
/* SipHash-2-4 with an explicit key, for the known-answer tests. */
uint64_t sp_siphash24(uint64_t k0, uint64_t k1, const void *p, size_t len);

#endif
