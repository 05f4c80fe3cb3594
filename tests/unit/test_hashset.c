/* test_hashset.c - util/hashset: SipHash-2-4 known answers, the set's
 * first-index answers and its invariants (1)-(2), many colliding tags. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util/hashset.h"

static void test_siphash_vectors(void)
{
    /* key 00 01 .. 0f, message 00 01 .. (len-1): the reference vectors */
    uint64_t k0 = 0x0706050403020100ull, k1 = 0x0f0e0d0c0b0a0908ull;
    uint8_t m[16];
    for (int i = 0; i < 16; i++)
        m[i] = (uint8_t)i;
    CHECK(sp_siphash24(k0, k1, m, 0) == 0x726fdb47dd0e0e31ull);
    CHECK(sp_siphash24(k0, k1, m, 1) == 0x74f839c593dc67fdull);
    CHECK(sp_siphash24(k0, k1, m, 15) == 0xa129ca6149be45e5ull);
    /* the process key is fixed once: same input, same hash */
    CHECK(sp_hash_bytes("topic", 5) == sp_hash_bytes("topic", 5));
    CHECK(sp_hash_bytes("topic", 5) != sp_hash_bytes("topid", 5));
    CHECK(sp_hash_mix(1, 2) != sp_hash_mix(1, 3));
}

static bool str_eq(const void *ctx, uint32_t a, uint32_t b)
{
    const char *const *v = ctx;
    return strcmp(v[a], v[b]) == 0;
}

static void test_first_index(void)
{
    const char *v[] = { "a", "b", "a", "c", "b", "a" };
    uint32_t n = 6;
    void *mem = malloc(sp_hashset_mem_size(n));
    sp_hashset_t s;
    sp_hashset_init(&s, mem, n, str_eq, v);
    int64_t got[6];
    for (uint32_t i = 0; i < n; i++)
        got[i] = sp_hashset_add(&s, i, sp_hash_bytes(v[i], strlen(v[i])));
    CHECK(got[0] == -1 && got[1] == -1 && got[3] == -1);
    CHECK(got[2] == 0 && got[4] == 1 && got[5] == 0); /* the first equal one */
    CHECK(s.n == 3);                                   /* (2) */
    CHECK(s.mask + 1 >= 2 * n);                        /* (1) */
    CHECK(sp_hashset_mem_size((1u << 29) + 1) == 0);
    free(mem);
}

static uint32_t *ints;
static bool int_eq(const void *ctx, uint32_t a, uint32_t b)
{
    (void)ctx;
    return ints[a] == ints[b];
}

/* Every hash equal: correct answers still (probing compares keys). */
static void test_all_colliding(void)
{
    uint32_t n = 2000;
    ints = malloc(sizeof(uint32_t) * n);
    for (uint32_t i = 0; i < n; i++)
        ints[i] = i % 500;
    void *mem = malloc(sp_hashset_mem_size(n));
    sp_hashset_t s;
    sp_hashset_init(&s, mem, n, int_eq, NULL);
    int bad = 0;
    for (uint32_t i = 0; i < n; i++) {
        int64_t r = sp_hashset_add(&s, i, 42);
        if ((i < 500 && r != -1) || (i >= 500 && r != (int64_t)(i % 500)))
            bad++;
    }
    CHECK(bad == 0);
    CHECK(s.n == 500);
    free(mem);
    free(ints);
}

/* A million items, a quarter distinct: fast and exact. */
static void test_many(void)
{
    uint32_t n = 1000000;
    ints = malloc(sizeof(uint32_t) * n);
    for (uint32_t i = 0; i < n; i++)
        ints[i] = (i * 2654435761u) % 250000;
    void *mem = malloc(sp_hashset_mem_size(n));
    sp_hashset_t s;
    sp_hashset_init(&s, mem, n, int_eq, NULL);
    uint32_t fresh = 0;
    for (uint32_t i = 0; i < n; i++)
        if (sp_hashset_add(&s, i, sp_hash_bytes(&ints[i], 4)) < 0)
            fresh++;
    CHECK(fresh == 250000);
    free(mem);
    free(ints);
}

int main(void)
{
    test_siphash_vectors();
    test_first_index();
    test_all_colliding();
    test_many();
    return check_summary("test_hashset");
}
