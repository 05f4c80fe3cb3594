/* image.c - see image.h. */
#include "cluster/image.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The published image, read without locks. A reader announces itself in
 * `readers` for the few instructions between loading `cur` and taking its
 * reference; the publisher swaps `cur` and then waits until no reader is
 * inside that window before it drops the old image's reference, so a
 * reader never increments a freed image. All operations are seq_cst: a
 * reader that loaded the old pointer announced itself before the swap, so
 * the publisher sees it until it has its reference.
 */
struct sp_image_holder {
    _Atomic(sp_image_t *) cur;
    atomic_int readers;
    pthread_mutex_t publish_mu; /* publishers only */
};

sp_image_holder_t *sp_image_holder_new(void)
{
    sp_image_holder_t *h = calloc(1, sizeof(*h));
    if (h)
        pthread_mutex_init(&h->publish_mu, NULL);
    return h;
}

sp_image_t *sp_image_new(const char *cluster_id, int32_t controller_id)
{
    sp_image_t *img = calloc(1, sizeof(*img));
    if (!img)
        return NULL;
    atomic_init(&img->refs, 1);
    img->offset = -1;
    snprintf(img->cluster_id, sizeof(img->cluster_id), "%s", cluster_id);
    img->controller_id = controller_id;
    return img;
}

int sp_image_add_broker(sp_image_t *img, int32_t node_id, const char *host, int32_t port,
                        const char *rack)
{
    sp_broker_info_t *b = realloc(img->brokers, sizeof(*b) * (size_t)(img->nbrokers + 1));
    if (!b)
        return -1;
    img->brokers = b;
    b = &b[img->nbrokers];
    b->node_id = node_id;
    b->host = strdup(host);
    b->port = port;
    b->rack = rack ? strdup(rack) : NULL;
    if (!b->host || (rack && !b->rack)) {
        free(b->host);
        free(b->rack);
        return -1;
    }
    img->nbrokers++;
    return 0;
}

static void topic_free(sp_topic_info_t *t)
{
    if (!t)
        return;
    for (int32_t p = 0; p < t->npartitions; p++) {
        free(t->partitions[p].replicas);
        free(t->partitions[p].isr);
    }
    free(t->partitions);
    for (int i = 0; i < t->nconfigs; i++) {
        free(t->ckeys[i]);
        free(t->cvalues[i]);
    }
    free(t->ckeys);
    free(t->cvalues);
    free(t->name);
    free(t);
}

static void topic_unref(sp_topic_info_t *t)
{
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        topic_free(t);
}

static void image_free(sp_image_t *img)
{
    for (int32_t i = 0; i < img->nbrokers; i++) {
        free(img->brokers[i].host);
        free(img->brokers[i].rack);
    }
    free(img->brokers);
    for (int32_t i = 0; i < img->ntopics; i++)
        topic_unref(img->topics[i]);
    free(img->topics);
    for (int32_t i = 0; i < img->ndyn; i++) {
        free(img->dyn[i].key);
        free(img->dyn[i].value);
    }
    free(img->dyn);
    free(img);
}

void sp_image_release(sp_image_t *img)
{
    if (img && atomic_fetch_sub_explicit(&img->refs, 1, memory_order_acq_rel) == 1)
        image_free(img);
}

void sp_image_publish(sp_image_holder_t *h, sp_image_t *img)
{
    pthread_mutex_lock(&h->publish_mu);
    sp_image_t *old = atomic_exchange(&h->cur, img);
    while (atomic_load(&h->readers) != 0)
        sched_yield(); /* a reader between its load and its increment */
    pthread_mutex_unlock(&h->publish_mu);
    sp_image_release(old);
}

void sp_image_holder_free(sp_image_holder_t *h)
{
    if (!h)
        return;
    sp_image_publish(h, NULL);
    pthread_mutex_destroy(&h->publish_mu);
    free(h);
}

sp_image_t *sp_image_acquire(sp_image_holder_t *h)
{
    atomic_fetch_add(&h->readers, 1);
    sp_image_t *img = atomic_load(&h->cur);
    if (img)
        atomic_fetch_add(&img->refs, 1);
    atomic_fetch_sub(&h->readers, 1);
    return img;
}

const sp_topic_info_t *sp_image_topic(const sp_image_t *img, const char *name, int32_t len)
{
    int32_t lo = 0, hi = img->ntopics - 1;
    if (len < 0)
        return NULL;
    while (lo <= hi) {
        int32_t mid = lo + (hi - lo) / 2;
        const char *tn = img->topics[mid]->name;
        size_t tl = strlen(tn);
        int c = memcmp(tn, name, tl < (size_t)len ? tl : (size_t)len);
        if (c == 0)
            c = tl < (size_t)len ? -1 : tl > (size_t)len ? 1 : 0;
        if (c == 0)
            return img->topics[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

const sp_topic_info_t *sp_image_topic_by_id(const sp_image_t *img, sp_uuid_t id)
{
    for (int32_t i = 0; i < img->ntopics; i++)
        if (memcmp(img->topics[i]->id.b, id.b, 16) == 0)
            return img->topics[i];
    return NULL;
}

const sp_broker_info_t *sp_image_broker(const sp_image_t *img, int32_t node_id)
{
    for (int32_t i = 0; i < img->nbrokers; i++)
        if (img->brokers[i].node_id == node_id)
            return &img->brokers[i];
    return NULL;
}

const char *sp_image_broker_config(const sp_image_t *img, bool is_default, const char *key)
{
    for (int32_t i = 0; img && i < img->ndyn; i++)
        if (img->dyn[i].is_default == is_default && strcmp(img->dyn[i].key, key) == 0)
            return img->dyn[i].value;
    return NULL;
}

/* ---- builder ----------------------------------------------------------- */

static int32_t *dup_ints(const int32_t *v, int32_t n)
{
    int32_t *d = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (d && n > 0)
        memcpy(d, v, sizeof(int32_t) * (size_t)n);
    return d;
}

static char *dup_n(const char *s, int32_t n)
{
    char *d = malloc((size_t)n + 1);
    if (d) {
        memcpy(d, s, (size_t)n);
        d[n] = 0;
    }
    return d;
}

/* A deep copy of s (refs = 1), or NULL. */
static sp_topic_info_t *copy_topic(const sp_topic_info_t *s)
{
    sp_topic_info_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    atomic_init(&d->refs, 1);
    d->name = strdup(s->name);
    d->id = s->id;
    d->internal = s->internal;
    d->partitions = calloc((size_t)(s->npartitions > 0 ? s->npartitions : 1), sizeof(sp_partition_info_t));
    d->ckeys = calloc((size_t)(s->nconfigs > 0 ? s->nconfigs : 1), sizeof(char *));
    d->cvalues = calloc((size_t)(s->nconfigs > 0 ? s->nconfigs : 1), sizeof(char *));
    if (!d->name || !d->partitions || !d->ckeys || !d->cvalues)
        goto fail;
    for (int32_t p = 0; p < s->npartitions; p++) {
        d->partitions[p] = s->partitions[p];
        d->partitions[p].replicas = dup_ints(s->partitions[p].replicas, s->partitions[p].nreplicas);
        d->partitions[p].isr = dup_ints(s->partitions[p].isr, s->partitions[p].nisr);
        d->npartitions = p + 1;
        if (!d->partitions[p].replicas || !d->partitions[p].isr)
            goto fail;
    }
    for (int i = 0; i < s->nconfigs; i++) {
        d->ckeys[i] = strdup(s->ckeys[i]);
        d->cvalues[i] = strdup(s->cvalues[i]);
        d->nconfigs = i + 1;
        if (!d->ckeys[i] || !d->cvalues[i])
            goto fail;
    }
    return d;
fail:
    topic_free(d);
    return NULL;
}

/* Topic i of an unpublished image, made its own (copied if another image
 * holds it: invariant 1), or NULL when out of memory. */
static sp_topic_info_t *own_topic(sp_image_t *img, int32_t i)
{
    sp_topic_info_t *t = img->topics[i];
    if (atomic_load(&t->refs) == 1)
        return t; /* only this image: nobody else can take it (only the builder clones) */
    sp_topic_info_t *c = copy_topic(t);
    if (!c)
        return NULL;
    img->topics[i] = c;
    topic_unref(t);
    return c;
}

/* The index of the topic named name[0..len), or -1. */
static int32_t topic_index(const sp_image_t *img, const char *name, int32_t len)
{
    const sp_topic_info_t *t = sp_image_topic(img, name, len);
    if (!t)
        return -1;
    for (int32_t lo = 0, hi = img->ntopics - 1; lo <= hi;) {
        int32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(img->topics[mid]->name, t->name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

sp_image_t *sp_image_clone(const sp_image_t *img)
{
    sp_image_t *n = sp_image_new(img->cluster_id, img->controller_id);
    if (!n)
        return NULL;
    n->offset = img->offset;
    n->next_producer_id = img->next_producer_id;
    for (int32_t i = 0; i < img->nbrokers; i++) {
        const sp_broker_info_t *b = &img->brokers[i];
        if (sp_image_add_broker(n, b->node_id, b->host, b->port, b->rack) != 0)
            goto fail;
    }
    n->topics = calloc((size_t)(img->ntopics > 0 ? img->ntopics : 1), sizeof(*n->topics));
    if (!n->topics)
        goto fail;
    for (int32_t i = 0; i < img->ntopics; i++) {
        n->topics[i] = img->topics[i];
        atomic_fetch_add_explicit(&n->topics[i]->refs, 1, memory_order_relaxed);
    }
    n->ntopics = img->ntopics;
    n->dyn = calloc((size_t)(img->ndyn > 0 ? img->ndyn : 1), sizeof(sp_dyn_config_t));
    if (!n->dyn)
        goto fail;
    for (int32_t i = 0; i < img->ndyn; i++) {
        sp_dyn_config_t *d = &n->dyn[i];
        n->ndyn = i + 1;
        d->is_default = img->dyn[i].is_default;
        d->key = strdup(img->dyn[i].key);
        d->value = strdup(img->dyn[i].value);
        if (!d->key || !d->value)
            goto fail;
    }
    return n;
fail:
    sp_image_release(n);
    return NULL;
}

int sp_image_set_next_producer_id(sp_image_t *img, int64_t next)
{
    if (next <= img->next_producer_id)
        return -1;
    img->next_producer_id = next;
    return 0;
}

sp_topic_info_t *sp_image_topic_mut(sp_image_t *img, const char *name, int32_t len)
{
    int32_t i = topic_index(img, name, len);
    return i >= 0 ? own_topic(img, i) : NULL;
}

int sp_image_add_topic(sp_image_t *img, const char *name, int32_t len, sp_uuid_t id)
{
    if (sp_image_topic(img, name, len) || sp_image_topic_by_id(img, id))
        return -1;
    sp_topic_info_t **n = realloc(img->topics, sizeof(*n) * (size_t)(img->ntopics + 1));
    if (!n)
        return -1;
    img->topics = n;
    sp_topic_info_t *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    atomic_init(&t->refs, 1);
    t->name = dup_n(name, len);
    if (!t->name) {
        free(t);
        return -1;
    }
    t->id = id;
    t->internal = len > 2 && name[0] == '_' && name[1] == '_';
    int32_t at = 0;
    while (at < img->ntopics) {
        const char *tn = img->topics[at]->name;
        size_t tl = strlen(tn);
        int c = memcmp(tn, name, tl < (size_t)len ? tl : (size_t)len);
        if (c > 0 || (c == 0 && tl > (size_t)len))
            break;
        at++;
    }
    memmove(&img->topics[at + 1], &img->topics[at], sizeof(*n) * (size_t)(img->ntopics - at));
    img->topics[at] = t;
    img->ntopics++;
    return 0;
}

int sp_image_set_partition(sp_image_t *img, sp_uuid_t topic_id, const sp_partition_info_t *p)
{
    const sp_topic_info_t *found = sp_image_topic_by_id(img, topic_id);
    if (!found || p->index < 0)
        return -1;
    sp_topic_info_t *t = sp_image_topic_mut(img, found->name, (int32_t)strlen(found->name));
    if (!t)
        return -1;
    if (p->index >= t->npartitions) {
        sp_partition_info_t *n = realloc(t->partitions, sizeof(*n) * (size_t)(p->index + 1));
        if (!n)
            return -1;
        memset(n + t->npartitions, 0, sizeof(*n) * (size_t)(p->index + 1 - t->npartitions));
        for (int32_t i = t->npartitions; i <= p->index; i++) {
            n[i].index = i;
            n[i].leader = -1;
        }
        t->partitions = n;
        t->npartitions = p->index + 1;
    }
    sp_partition_info_t *d = &t->partitions[p->index];
    free(d->replicas);
    free(d->isr);
    *d = *p;
    d->replicas = dup_ints(p->replicas, p->nreplicas);
    d->isr = dup_ints(p->isr, p->nisr);
    return d->replicas && d->isr ? 0 : -1;
}

int sp_image_remove_topic(sp_image_t *img, sp_uuid_t id)
{
    for (int32_t i = 0; i < img->ntopics; i++) {
        if (memcmp(img->topics[i]->id.b, id.b, 16) != 0)
            continue;
        topic_unref(img->topics[i]);
        memmove(&img->topics[i], &img->topics[i + 1], sizeof(*img->topics) * (size_t)(img->ntopics - i - 1));
        img->ntopics--;
        return 0;
    }
    return -1;
}

int sp_image_set_topic_config(sp_image_t *img, const char *topic, int32_t tlen, const char *key,
                              int32_t klen, const char *value, int32_t vlen)
{
    sp_topic_info_t *t = sp_image_topic_mut(img, topic, tlen);
    if (!t)
        return -1;
    for (int i = 0; i < t->nconfigs; i++) {
        if ((int32_t)strlen(t->ckeys[i]) != klen || memcmp(t->ckeys[i], key, (size_t)klen) != 0)
            continue;
        if (!value) {
            free(t->ckeys[i]);
            free(t->cvalues[i]);
            t->ckeys[i] = t->ckeys[t->nconfigs - 1];
            t->cvalues[i] = t->cvalues[t->nconfigs - 1];
            t->nconfigs--;
            return 0;
        }
        char *v = dup_n(value, vlen);
        if (!v)
            return -1;
        free(t->cvalues[i]);
        t->cvalues[i] = v;
        return 0;
    }
    if (!value)
        return 0;
    char **nk = realloc(t->ckeys, sizeof(char *) * (size_t)(t->nconfigs + 1));
    if (!nk)
        return -1;
    t->ckeys = nk;
    char **nv = realloc(t->cvalues, sizeof(char *) * (size_t)(t->nconfigs + 1));
    if (!nv)
        return -1;
    t->cvalues = nv;
    t->ckeys[t->nconfigs] = dup_n(key, klen);
    t->cvalues[t->nconfigs] = dup_n(value, vlen);
    if (!t->ckeys[t->nconfigs] || !t->cvalues[t->nconfigs])
        return -1;
    t->nconfigs++;
    return 0;
}

int sp_image_set_broker_config(sp_image_t *img, bool is_default, const char *key, int32_t klen,
                               const char *value, int32_t vlen)
{
    if (klen < 0)
        return -1;
    for (int32_t i = 0; i < img->ndyn; i++) {
        sp_dyn_config_t *d = &img->dyn[i];
        if (d->is_default != is_default || (int32_t)strlen(d->key) != klen ||
            memcmp(d->key, key, (size_t)klen) != 0)
            continue;
        if (!value) {
            free(d->key);
            free(d->value);
            *d = img->dyn[img->ndyn - 1];
            img->ndyn--;
            return 0;
        }
        char *v = dup_n(value, vlen);
        if (!v)
            return -1;
        free(d->value);
        d->value = v;
        return 0;
    }
    if (!value)
        return 0;
    sp_dyn_config_t *n = realloc(img->dyn, sizeof(*n) * (size_t)(img->ndyn + 1));
    if (!n)
        return -1;
    img->dyn = n;
    n = &n[img->ndyn];
    n->is_default = is_default;
    n->key = dup_n(key, klen);
    n->value = dup_n(value, vlen);
    if (!n->key || !n->value) {
        free(n->key);
        free(n->value);
        return -1;
    }
    img->ndyn++;
    return 0;
}
