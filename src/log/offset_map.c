/* offset_map.c - the cleaner's key -> latest offset map (offset_map.h). */
#include "log/offset_map.h"

#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

int sp_offset_map_init(sp_offset_map_t *m, size_t bytes, double load_factor)
{
    memset(m, 0, sizeof(*m));
    m->latest = -1;
    size_t n = bytes / SP_OFFSET_MAP_SLOT;
    if (n < 1)
        n = 1;
    m->bytes = n * SP_OFFSET_MAP_SLOT;
    void *p = mmap(NULL, m->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        m->slots = NULL;
        return -1;
    }
    m->slots = p;
    m->nslots = n;
    if (load_factor <= 0 || load_factor > 1)
        load_factor = 0.9;
    m->max_entries = (size_t)((double)n * load_factor);
    if (m->max_entries < 1)
        m->max_entries = 1;
    if (m->max_entries >= n && n > 1)
        m->max_entries = n - 1; /* one empty slot ends every probe */
    return 0;
}

void sp_offset_map_free(sp_offset_map_t *m)
{
    if (m->slots)
        munmap(m->slots, m->bytes);
    m->slots = NULL;
}

void sp_offset_map_clear(sp_offset_map_t *m)
{
    if (m->entries && madvise(m->slots, m->bytes, MADV_DONTNEED) != 0)
        memset(m->slots, 0, m->bytes);
    m->entries = 0;
    m->latest = -1;
}

void sp_offset_map_hash(const void *key, size_t klen, sp_okey_t *h)
{
    XXH128_hash_t x = XXH3_128bits(key, klen);
    h->lo = x.low64;
    h->hi = x.high64;
}

/* A slot: hash (16 bytes), then offset + 1 (0 = empty), host order. */
static size_t find(const sp_offset_map_t *m, const sp_okey_t *h, bool *found)
{
    size_t i = (size_t)(h->lo % m->nslots);
    for (;;) {
        const uint8_t *s = m->slots + i * SP_OFFSET_MAP_SLOT;
        int64_t stored;
        memcpy(&stored, s + 16, 8);
        if (stored == 0) {
            *found = false;
            return i;
        }
        if (memcmp(s, &h->lo, 8) == 0 && memcmp(s + 8, &h->hi, 8) == 0) {
            *found = true;
            return i;
        }
        if (++i == m->nslots)
            i = 0;
    }
}

void sp_offset_map_put_hash(sp_offset_map_t *m, const sp_okey_t *h, int64_t offset)
{
    bool found;
    size_t i = find(m, h, &found);
    uint8_t *s = m->slots + i * SP_OFFSET_MAP_SLOT;
    if (!found) {
        if (m->entries >= m->max_entries)
            return; /* the caller checks full(); never past the probe guarantee */
        memcpy(s, &h->lo, 8);
        memcpy(s + 8, &h->hi, 8);
        m->entries++;
    }
    int64_t stored = offset + 1;
    memcpy(s + 16, &stored, 8);
    sp_offset_map_note(m, offset);
}

int64_t sp_offset_map_get_hash(const sp_offset_map_t *m, const sp_okey_t *h)
{
    bool found;
    size_t i = find(m, h, &found);
    if (!found)
        return -1;
    int64_t stored;
    memcpy(&stored, m->slots + i * SP_OFFSET_MAP_SLOT + 16, 8);
    return stored - 1;
}
