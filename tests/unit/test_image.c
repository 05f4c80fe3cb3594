/* test_image.c - the metadata image's dynamic broker configs (image.h
 * invariant (4)) and their place in topic config resolution
 * (topic_config.h: topic > this broker > cluster default > static >
 * default); copy on write of topics between images (invariant 1). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cluster/image.h"
#include "cluster/topic_config.h"

static void test_set_remove_clone(void)
{
    sp_image_t *img = sp_image_new("c", 1);
    CHECK(img != NULL);
    CHECK(sp_image_broker_config(img, false, "log.retention.ms") == NULL);
    CHECK(sp_image_broker_config(NULL, false, "log.retention.ms") == NULL);
    CHECK(sp_image_set_broker_config(img, false, "log.retention.msXX", 16, "100", 3) == 0);
    CHECK(sp_image_set_broker_config(img, true, "log.retention.ms", 16, "200", 3) == 0);
    CHECK(sp_image_set_broker_config(img, false, "log.retention.ms", 16, "300x", 3) == 0); /* replace */
    CHECK(img->ndyn == 2); /* (4): one entry per (scope, key) */
    CHECK(strcmp(sp_image_broker_config(img, false, "log.retention.ms"), "300") == 0);
    CHECK(strcmp(sp_image_broker_config(img, true, "log.retention.ms"), "200") == 0);
    CHECK(sp_image_set_broker_config(img, false, "message.max.bytes", 17, "2000", 4) == 0);

    sp_image_t *copy = sp_image_clone(img);
    CHECK(copy != NULL && copy->ndyn == 3);
    CHECK(sp_image_set_broker_config(img, false, "log.retention.ms", 16, NULL, -1) == 0);
    CHECK(sp_image_set_broker_config(img, false, "no.such", 7, NULL, -1) == 0); /* absent: no-op */
    CHECK(img->ndyn == 2);
    CHECK(sp_image_broker_config(img, false, "log.retention.ms") == NULL);
    CHECK(strcmp(sp_image_broker_config(img, false, "message.max.bytes"), "2000") == 0);
    /* the clone is independent */
    CHECK(strcmp(sp_image_broker_config(copy, false, "log.retention.ms"), "300") == 0);
    sp_image_release(copy);
    sp_image_release(img);
}

static sp_partition_info_t part(int32_t index, int32_t leader)
{
    static int32_t one[1] = { 1 };
    sp_partition_info_t p = { .index = index, .leader = leader, .replicas = one, .nreplicas = 1,
                              .isr = one, .nisr = 1 };
    return p;
}

/* A clone shares every topic; changing one in the clone copies that one
 * only, and the original image never changes (invariant 1). */
static void test_copy_on_write(void)
{
    sp_image_t *a = sp_image_new("c", 1);
    sp_uuid_t id[3];
    const char *names[3] = { "alpha", "beta", "gamma" };
    memset(id, 0, sizeof(id));
    for (int i = 0; i < 3; i++) {
        id[i].b[0] = (uint8_t)(i + 1);
        CHECK(sp_image_add_topic(a, names[i], (int32_t)strlen(names[i]), id[i]) == 0);
        for (int p = 0; p < 4; p++) {
            sp_partition_info_t pi = part(p, 1);
            CHECK(sp_image_set_partition(a, id[i], &pi) == 0);
        }
    }
    CHECK(sp_image_set_topic_config(a, "beta", 4, "retention.ms", 12, "1000", 4) == 0);
    sp_image_t *b = sp_image_clone(a);
    CHECK(b != NULL && b->ntopics == 3);
    for (int i = 0; i < 3; i++)
        CHECK(b->topics[i] == a->topics[i] && atomic_load(&a->topics[i]->refs) == 2);

    /* a partition change in b: beta is copied, alpha and gamma stay shared */
    sp_partition_info_t moved = part(2, -1);
    CHECK(sp_image_set_partition(b, id[1], &moved) == 0);
    CHECK(b->topics[0] == a->topics[0] && b->topics[2] == a->topics[2]);
    CHECK(b->topics[1] != a->topics[1]);
    CHECK(atomic_load(&a->topics[1]->refs) == 1 && atomic_load(&b->topics[1]->refs) == 1);
    CHECK(sp_image_topic(a, "beta", 4)->partitions[2].leader == 1);
    CHECK(sp_image_topic(b, "beta", 4)->partitions[2].leader == -1);
    CHECK(sp_image_topic(b, "beta", 4)->nconfigs == 1 && sp_image_topic(b, "beta", 4)->npartitions == 4);
    /* a second change to b's own copy copies nothing more */
    const sp_topic_info_t *own = b->topics[1];
    CHECK(sp_image_set_topic_config(b, "beta", 4, "retention.ms", 12, NULL, -1) == 0);
    CHECK(b->topics[1] == own && own->nconfigs == 0 && a->topics[1]->nconfigs == 1);

    /* a config change on gamma in b, a new topic and a removal */
    CHECK(sp_image_set_topic_config(b, "gamma", 5, "cleanup.policy", 14, "compact", 7) == 0);
    CHECK(b->topics[2] != a->topics[2] && a->topics[2]->nconfigs == 0);
    sp_uuid_t did = id[0];
    CHECK(sp_image_remove_topic(b, did) == 0);
    CHECK(b->ntopics == 2 && a->ntopics == 3 && atomic_load(&a->topics[0]->refs) == 1);
    sp_uuid_t nid;
    memset(&nid, 0, sizeof(nid));
    nid.b[0] = 9;
    CHECK(sp_image_add_topic(b, "aardvark", 8, nid) == 0);
    CHECK(b->ntopics == 3 && strcmp(b->topics[0]->name, "aardvark") == 0);
    CHECK(sp_image_topic_by_id(a, nid) == NULL && sp_image_topic(a, "alpha", 5) != NULL);

    /* a's topics outlive b and b's outlive a (ASan checks the frees) */
    sp_image_t *c = sp_image_clone(b);
    sp_image_release(b);
    CHECK(sp_image_topic(c, "beta", 4)->partitions[2].leader == -1);
    sp_image_release(a);
    CHECK(strcmp(sp_image_topic(c, "gamma", 5)->cvalues[0], "compact") == 0);
    sp_image_release(c);
}

static void test_resolution_order(void)
{
    sp_config_t *cfg = sp_config_new();
    sp_image_t *img = sp_image_new("c", 1);
    const sp_topic_key_t *k = sp_topic_key("retention.ms", 12);
    char *ks[] = { "retention.ms" }, *vs[] = { "1" };
    int src;
    CHECK(cfg && img && k);
    CHECK(sp_topic_key_by_broker_key("log.retention.ms", 16) == k);
    CHECK(sp_topic_key_by_broker_key("num.network.threads", 19) == NULL);

    CHECK(strcmp(sp_topic_config_value(k, 0, NULL, NULL, img, cfg, &src), "604800000") == 0);
    CHECK(src == SP_CS_DEFAULT);
    CHECK(sp_config_set_kv(cfg, "log.retention.ms=4", "test") == 0);
    CHECK(strcmp(sp_topic_config_value(k, 0, NULL, NULL, img, cfg, &src), "4") == 0);
    CHECK(src == SP_CS_STATIC_BROKER);
    sp_image_set_broker_config(img, true, "log.retention.ms", 16, "3", 1);
    CHECK(strcmp(sp_topic_config_value(k, 0, NULL, NULL, img, cfg, &src), "3") == 0);
    CHECK(src == SP_CS_DYNAMIC_DEFAULT_BROKER);
    sp_image_set_broker_config(img, false, "log.retention.ms", 16, "2", 1);
    CHECK(strcmp(sp_topic_config_value(k, 0, NULL, NULL, img, cfg, &src), "2") == 0);
    CHECK(src == SP_CS_DYNAMIC_BROKER);
    CHECK(strcmp(sp_topic_config_value(k, 1, ks, vs, img, cfg, &src), "1") == 0);
    CHECK(src == SP_CS_DYNAMIC_TOPIC);
    /* the cluster-default resource skips this broker's own value */
    CHECK(strcmp(sp_topic_broker_value(k, img, false, cfg, &src), "3") == 0);
    CHECK(src == SP_CS_DYNAMIC_DEFAULT_BROKER);
    /* no image: no dynamic configs */
    CHECK(strcmp(sp_topic_config_value(k, 0, NULL, NULL, NULL, cfg, &src), "4") == 0);

    sp_log_config_t lc;
    sp_image_set_broker_config(img, true, "message.max.bytes", 17, "2000", 4);
    sp_image_set_broker_config(img, false, "log.flush.interval.messages", 27, "50", 2);
    sp_topic_log_config(0, NULL, NULL, img, cfg, &lc);
    CHECK(lc.max_message_bytes == 2000);
    CHECK(lc.flush_messages == 50);
    CHECK(lc.retention_ms == 2);
    sp_image_release(img);
    sp_config_free(cfg);
}

/* ---- lock-free acquire against a publisher (run under make asan too) ---- */

static atomic_bool racing;
static atomic_long reads, bad_reads;

static void *reader(void *arg)
{
    sp_image_holder_t *h = arg;
    while (atomic_load(&racing)) {
        sp_image_t *img = sp_image_acquire(h);
        if (img) {
            /* every published image names its own controller id in its
             * cluster id: a freed or torn image would not */
            char want[32];
            snprintf(want, sizeof(want), "c%d", img->controller_id);
            if (strcmp(img->cluster_id, want) != 0 || atomic_load(&img->refs) < 1)
                atomic_fetch_add(&bad_reads, 1);
            atomic_fetch_add(&reads, 1);
            sp_image_release(img);
        }
    }
    return NULL;
}

static void test_acquire_races_publish(void)
{
    pthread_t th[3];
    char id[32];
    sp_image_holder_t *h = sp_image_holder_new(), *other = sp_image_holder_new();
    CHECK(h != NULL && other != NULL);
    sp_image_publish(other, sp_image_new("other", -7)); /* a second broker's holder */
    atomic_store(&racing, true);
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, reader, h);
    for (int32_t n = 0; n < 20000; n++) {
        snprintf(id, sizeof(id), "c%d", n);
        sp_image_publish(h, sp_image_new(id, n));
    }
    atomic_store(&racing, false);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    sp_image_t *last = sp_image_acquire(h);
    CHECK(last && last->controller_id == 19999);
    CHECK(atomic_load(&last->refs) == 2); /* the published one and ours */
    sp_image_release(last);
    sp_image_t *o = sp_image_acquire(other); /* untouched by the other holder's publishes */
    CHECK(o && o->controller_id == -7);
    sp_image_release(o);
    sp_image_holder_free(h);
    sp_image_holder_free(other);
    CHECK(atomic_load(&reads) > 0);
    CHECK(atomic_load(&bad_reads) == 0);
}

int main(void)
{
    test_set_remove_clone();
    test_copy_on_write();
    test_resolution_order();
    test_acquire_races_publish();
    return check_summary("test_image");
}
