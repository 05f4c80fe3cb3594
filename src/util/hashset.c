/* hashset.c - see hashset.h. */
#include "util/hashset.h"

#include <assert.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t key0, key1;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void key_init(void)
{
    uint64_t k[2];
    if (getrandom(k, sizeof(k), 0) != (ssize_t)sizeof(k)) {
        /* no entropy source: still unpredictable enough to a remote client */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
        k[1] = (uint64_t)ts.tv_sec * 0xC2B2AE3D27D4EB4Full ^ (uint64_t)(uintptr_t)&k;
    }
    key0 = k[0];
    key1 = k[1];
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                              \
    do {                                                                      \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);             \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);             \
    } while (0)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t sp_siphash24(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t v0 = 0x736f6d6570736575ull ^ k0;
    uint64_t v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0;
    uint64_t v3 = 0x7465646279746573ull ^ k1;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = le64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)p[whole + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t sp_hash_bytes(const void *p, size_t len)
{
    pthread_once(&key_once, key_init);
    return sp_siphash24(key0, key1, p, len);
}

uint64_t sp_hash_mix(uint64_t h, int64_t extra)
{
    uint8_t buf[16];
    for (int i = 0; i < 8; i++) {
        buf[i] = (uint8_t)(h >> (8 * i));
        buf[8 + i] = (uint8_t)((uint64_t)extra >> (8 * i));
    }
    return sp_hash_bytes(buf, sizeof(buf));
}

/* Slots for max_items: a power of two at least twice max_items (1). */
static uint32_t slots_for(uint32_t max_items)
{
    uint32_t n = 16;
    while (n < 2 * (uint64_t)max_items)
        n *= 2;
    return n;
}

size_t sp_hashset_mem_size(uint32_t max_items)
{
    if (max_items > (1u << 29))
        return 0;
    return (size_t)slots_for(max_items) * 2 * sizeof(uint32_t);
}

void sp_hashset_init(sp_hashset_t *s, void *mem, uint32_t max_items, sp_hashset_eq_fn eq,
                     const void *ctx)
{
    uint32_t n = slots_for(max_items);
    memset(mem, 0, (size_t)n * 2 * sizeof(uint32_t));
    s->slot = mem;
    s->hash = s->slot + n;
    s->mask = n - 1;
    s->n = 0;
    s->max = max_items;
    s->eq = eq;
    s->ctx = ctx;
}

int64_t sp_hashset_add(sp_hashset_t *s, uint32_t idx, uint64_t hash)
{
    uint32_t h = (uint32_t)hash;
    /* the slot comes from the high bits, the stored tag from the low ones */
    uint32_t i = (uint32_t)(hash >> 32) & s->mask;
    for (;;) {
        uint32_t at = s->slot[i];
        if (at == 0)
            break;
        if (s->hash[i] == h && s->eq(s->ctx, at - 1, idx))
            return at - 1;
        i = (i + 1) & s->mask; /* linear probing; (1) keeps it short */
    }
    assert(s->n < s->max);
    s->slot[i] = idx + 1;
    s->hash[i] = h;
    s->n++;
    return -1;
}
