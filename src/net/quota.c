/* quota.c - see quota.h. */
#include "net/quota.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashset.h"

/* An address as 16 bytes: IPv6, or IPv4 as ::ffff:a.b.c.d. */
typedef struct ipkey {
    uint8_t b[16];
} ipkey_t;

typedef struct entry {
    struct entry *next;
    ipkey_t ip;
    int32_t count;
} entry_t;

typedef struct limit {
    ipkey_t ip;
    int32_t max;
} limit_t;

struct sp_quota {
    int32_t max_total, max_per_ip;
    limit_t *over;             /* max.connections.per.ip.overrides */
    int nover;
    pthread_mutex_t mu;        /* guards buckets, nbuckets, nentries */
    entry_t **buckets;
    uint32_t nbuckets, nentries;
    atomic_int total;          /* written under mu, read without it */
};

static bool to_key(const struct sockaddr *sa, ipkey_t *k)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (sa->sa_family == AF_INET) {
        memcpy(k->b, mapped, 12);
        memcpy(k->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(k->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

/* Adds every address 'host' resolves to with limit 'max'. */
static int add_override(sp_quota_t *q, const char *host, int32_t max, char *err, size_t errcap)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errcap, "max.connections.per.ip.overrides: cannot resolve '%s': %s", host,
                 gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        ipkey_t k;
        if (!to_key(ai->ai_addr, &k))
            continue;
        bool dup = false;
        for (int i = 0; i < q->nover; i++)
            if (memcmp(q->over[i].ip.b, k.b, 16) == 0) {
                q->over[i].max = max; /* a later entry wins, as in Kafka's map */
                dup = true;
            }
        if (dup)
            continue;
        limit_t *n = realloc(q->over, sizeof(*n) * (size_t)(q->nover + 1));
        if (!n) {
            freeaddrinfo(res);
            snprintf(err, errcap, "out of memory");
            return -1;
        }
        q->over = n;
        q->over[q->nover].ip = k;
        q->over[q->nover].max = max;
        q->nover++;
    }
    freeaddrinfo(res);
    return 0;
}

/* "host:count,host:count": host up to the last ':' ([v6] brackets dropped). */
static int parse_overrides(sp_quota_t *q, const char *spec, char *err, size_t errcap)
{
    char *copy = strdup(spec), *save = NULL;
    int rc = 0;
    if (!copy) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        char *e = tok + strlen(tok);
        while (e > tok && isspace((unsigned char)e[-1]))
            *--e = 0;
        if (!*tok)
            continue;
        char *colon = strrchr(tok, ':');
        char *end = NULL;
        long max = colon ? strtol(colon + 1, &end, 10) : -1;
        if (!colon || colon == tok || end == colon + 1 || *end || max < 0 || max > INT32_MAX) {
            snprintf(err, errcap, "max.connections.per.ip.overrides: '%s' is not host:count", tok);
            rc = -1;
            break;
        }
        *colon = 0;
        char *host = tok;
        size_t hl = strlen(host);
        while (hl > 0 && isspace((unsigned char)host[hl - 1]))
            host[--hl] = 0;
        if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
            host[hl - 1] = 0;
            host++;
        }
        rc = add_override(q, host, (int32_t)max, err, errcap);
    }
    free(copy);
    return rc;
}

sp_quota_t *sp_quota_new(int32_t max_total, int32_t max_per_ip, const char *overrides,
                         char *err, size_t errcap)
{
    sp_quota_t *q = calloc(1, sizeof(*q));
    if (!q) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    q->max_total = max_total;
    q->max_per_ip = max_per_ip;
    q->nbuckets = 256;
    q->buckets = calloc(q->nbuckets, sizeof(entry_t *));
    pthread_mutex_init(&q->mu, NULL);
    atomic_init(&q->total, 0);
    if (!q->buckets) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    if (overrides && *overrides && parse_overrides(q, overrides, err, errcap) != 0)
        goto fail;
    return q;
fail:
    sp_quota_free(q);
    return NULL;
}

void sp_quota_free(sp_quota_t *q)
{
    if (!q)
        return;
    for (uint32_t i = 0; q->buckets && i < q->nbuckets; i++)
        for (entry_t *e = q->buckets[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    free(q->buckets);
    free(q->over);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

int32_t sp_quota_limit(const sp_quota_t *q, const struct sockaddr *addr)
{
    ipkey_t k;
    if (!to_key(addr, &k))
        return q->max_per_ip;
    for (int i = 0; i < q->nover; i++)
        if (memcmp(q->over[i].ip.b, k.b, 16) == 0)
            return q->over[i].max;
    return q->max_per_ip;
}

static uint32_t bucket_of(const sp_quota_t *q, const ipkey_t *k)
{
    return (uint32_t)sp_hash_bytes(k->b, 16) & (q->nbuckets - 1);
}

/* Doubles the table when it averages two entries a bucket.  Under mu. */
static void maybe_grow(sp_quota_t *q)
{
    if (q->nentries < 2 * q->nbuckets)
        return;
    uint32_t nb = q->nbuckets * 2;
    entry_t **b = calloc(nb, sizeof(*b));
    if (!b)
        return; /* longer chains; still correct */
    entry_t **old = q->buckets;
    uint32_t on = q->nbuckets;
    q->buckets = b;
    q->nbuckets = nb;
    for (uint32_t i = 0; i < on; i++)
        for (entry_t *e = old[i], *n; e; e = n) {
            n = e->next;
            uint32_t h = bucket_of(q, &e->ip);
            e->next = b[h];
            b[h] = e;
        }
    free(old);
}

int sp_quota_inc(sp_quota_t *q, const struct sockaddr *addr, int32_t *limit)
{
    ipkey_t k;
    if (!to_key(addr, &k)) { /* not an IP socket: counted in the total only */
        atomic_fetch_add(&q->total, 1);
        return 0;
    }
    int32_t max = sp_quota_limit(q, addr);
    pthread_mutex_lock(&q->mu);
    uint32_t h = bucket_of(q, &k);
    entry_t *e = q->buckets[h];
    while (e && memcmp(e->ip.b, k.b, 16) != 0)
        e = e->next;
    int32_t count = e ? e->count : 0;
    if (count >= max) {
        pthread_mutex_unlock(&q->mu);
        *limit = max;
        return -1;
    }
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e) { /* cannot track it: refuse rather than lose count (1) */
            pthread_mutex_unlock(&q->mu);
            *limit = max;
            return -1;
        }
        e->ip = k;
        e->next = q->buckets[h];
        q->buckets[h] = e;
        q->nentries++;
        maybe_grow(q);
    }
    e->count++;
    atomic_fetch_add(&q->total, 1);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

void sp_quota_dec(sp_quota_t *q, const struct sockaddr *addr)
{
    ipkey_t k;
    if (!to_key(addr, &k)) {
        atomic_fetch_sub(&q->total, 1);
        return;
    }
    pthread_mutex_lock(&q->mu);
    entry_t **pp = &q->buckets[bucket_of(q, &k)];
    while (*pp && memcmp((*pp)->ip.b, k.b, 16) != 0)
        pp = &(*pp)->next;
    assert(*pp); /* (1): every connection counted out was counted in */
    if (*pp && --(*pp)->count == 0) {
        entry_t *e = *pp;
        *pp = e->next; /* (2) */
        free(e);
        q->nentries--;
    }
    atomic_fetch_sub(&q->total, 1);
    pthread_mutex_unlock(&q->mu);
}

bool sp_quota_full(const sp_quota_t *q)
{
    return atomic_load(&q->total) >= q->max_total;
}

int32_t sp_quota_total(const sp_quota_t *q)
{
    return atomic_load(&q->total);
}

int32_t sp_quota_count(sp_quota_t *q, const struct sockaddr *addr)
{
    ipkey_t k;
    int32_t n = 0;
    if (!to_key(addr, &k))
        return 0;
    pthread_mutex_lock(&q->mu);
    for (entry_t *e = q->buckets[bucket_of(q, &k)]; e; e = e->next)
        if (memcmp(e->ip.b, k.b, 16) == 0)
            n = e->count;
    pthread_mutex_unlock(&q->mu);
    return n;
}
