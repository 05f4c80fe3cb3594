/* sample.c - random sample values for the generated round-trip test. */
#include "proto/gen/test_support.h"

uint32_t sp_rand(uint32_t *rs)
{
    /* xorshift32 */
    uint32_t x = *rs ? *rs : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *rs = x;
}

void sp_sample_uuid(sp_uuid_t *u, uint32_t *rs)
{
    for (int i = 0; i < 16; i++)
        u->b[i] = (uint8_t)sp_rand(rs);
}

void sp_sample_str(sp_str_t *s, sp_arena_t *a, uint32_t *rs, int nullable)
{
    if (nullable && sp_rand(rs) % 4 == 0) {
        *s = SP_STR_NULL;
        return;
    }
    int32_t n = (int32_t)(sp_rand(rs) % 7);
    char *p = sp_arena_alloc(a, (size_t)n + 1);
    for (int32_t i = 0; i < n; i++)
        p[i] = (char)('a' + sp_rand(rs) % 26);
    s->ptr = p;
    s->len = n;
}

void sp_sample_bytes(sp_bytes_t *b, sp_arena_t *a, uint32_t *rs, int nullable)
{
    if (nullable && sp_rand(rs) % 4 == 0) {
        b->ptr = NULL;
        b->len = -1;
        return;
    }
    int32_t n = (int32_t)(sp_rand(rs) % 9);
    uint8_t *p = sp_arena_alloc(a, (size_t)n + 1);
    for (int32_t i = 0; i < n; i++)
        p[i] = (uint8_t)sp_rand(rs);
    b->ptr = p;
    b->len = n;
}

int sp_bytes_eq_raw(const void *a, int32_t alen, const void *b, int32_t blen)
{
    if (alen != blen)
        return 0;
    return alen <= 0 || memcmp(a, b, (size_t)alen) == 0;
}
