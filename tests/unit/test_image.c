/* test_image.c - the metadata image's dynamic broker configs (image.h
 * invariant (4)) and their place in topic config resolution
 * (topic_config.h: topic > this broker > cluster default > static >
 * default). */
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

int main(void)
{
    test_set_remove_clone();
    test_resolution_order();
    return check_summary("test_image");
}
