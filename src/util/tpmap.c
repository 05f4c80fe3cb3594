/* tpmap.c - topic-partition map (see tpmap.h). */
#include "util/tpmap.h"

#include <stdlib.h>
#include <string.h>

static int cmp(const char *topic, int32_t tlen, int32_t p, const sp_tpmap_entry_t *e)
{
    size_t el = strlen(e->topic);
    size_t n = (size_t)tlen < el ? (size_t)tlen : el;
    int c = memcmp(topic, e->topic, n);
    if (c == 0)
        c = (size_t)tlen < el ? -1 : (size_t)tlen > el ? 1 : 0;
    if (c == 0)
        c = p < e->partition ? -1 : p > e->partition;
    return c;
}

int sp_tpmap_find(const sp_tpmap_t *m, const char *topic, int32_t tlen, int32_t partition)
{
    int lo = 0, hi = m->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = cmp(topic, tlen, partition, &m->v[mid]);
        if (c == 0)
            return mid;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -lo - 1;
}

void *sp_tpmap_get(const sp_tpmap_t *m, const char *topic, int32_t tlen, int32_t partition)
{
    int i = sp_tpmap_find(m, topic, tlen, partition);
    return i >= 0 ? m->v[i].val : NULL;
}

int sp_tpmap_insert(sp_tpmap_t *m, int at, const char *topic, int32_t partition, void *val)
{
    if (at < 0 || at > m->n)
        return -1;
    if (m->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 16;
        sp_tpmap_entry_t *nv = realloc(m->v, sizeof(*nv) * (size_t)cap);
        if (!nv)
            return -1;
        m->v = nv;
        m->cap = cap;
    }
    char *name = strdup(topic);
    if (!name)
        return -1;
    memmove(&m->v[at + 1], &m->v[at], sizeof(*m->v) * (size_t)(m->n - at));
    m->v[at] = (sp_tpmap_entry_t){ name, partition, val };
    m->n++;
    return 0;
}

void *sp_tpmap_remove(sp_tpmap_t *m, int i)
{
    void *val = m->v[i].val;
    free(m->v[i].topic);
    memmove(&m->v[i], &m->v[i + 1], sizeof(*m->v) * (size_t)(m->n - i - 1));
    m->n--;
    return val;
}

void sp_tpmap_free(sp_tpmap_t *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->v[i].topic);
    free(m->v);
    m->v = NULL;
    m->n = m->cap = 0;
}
