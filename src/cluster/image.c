/* image.c - see image.h. */
#include "cluster/image.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t cur_mu = PTHREAD_MUTEX_INITIALIZER;
static sp_image_t *cur;

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

static void image_free(sp_image_t *img)
{
    for (int32_t i = 0; i < img->nbrokers; i++) {
        free(img->brokers[i].host);
        free(img->brokers[i].rack);
    }
    free(img->brokers);
    for (int32_t i = 0; i < img->ntopics; i++) {
        sp_topic_info_t *t = &img->topics[i];
        for (int32_t p = 0; p < t->npartitions; p++) {
            free(t->partitions[p].replicas);
            free(t->partitions[p].isr);
        }
        free(t->partitions);
        free(t->name);
    }
    free(img->topics);
    free(img);
}

void sp_image_release(sp_image_t *img)
{
    if (img && atomic_fetch_sub_explicit(&img->refs, 1, memory_order_acq_rel) == 1)
        image_free(img);
}

void sp_image_publish(sp_image_t *img)
{
    pthread_mutex_lock(&cur_mu);
    sp_image_t *old = cur;
    cur = img;
    pthread_mutex_unlock(&cur_mu);
    sp_image_release(old);
}

void sp_image_unpublish(void)
{
    sp_image_publish(NULL);
}

sp_image_t *sp_image_acquire(void)
{
    /* The lock covers only the load and the increment, so that a publish
     * cannot free the image between them. */
    pthread_mutex_lock(&cur_mu);
    sp_image_t *img = cur;
    if (img)
        atomic_fetch_add_explicit(&img->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&cur_mu);
    return img;
}

const sp_topic_info_t *sp_image_topic(const sp_image_t *img, const char *name, int32_t len)
{
    int32_t lo = 0, hi = img->ntopics - 1;
    if (len < 0)
        return NULL;
    while (lo <= hi) {
        int32_t mid = lo + (hi - lo) / 2;
        const char *tn = img->topics[mid].name;
        size_t tl = strlen(tn);
        int c = memcmp(tn, name, tl < (size_t)len ? tl : (size_t)len);
        if (c == 0)
            c = tl < (size_t)len ? -1 : tl > (size_t)len ? 1 : 0;
        if (c == 0)
            return &img->topics[mid];
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
        if (memcmp(img->topics[i].id.b, id.b, 16) == 0)
            return &img->topics[i];
    return NULL;
}

const sp_broker_info_t *sp_image_broker(const sp_image_t *img, int32_t node_id)
{
    for (int32_t i = 0; i < img->nbrokers; i++)
        if (img->brokers[i].node_id == node_id)
            return &img->brokers[i];
    return NULL;
}
