/*
 * fuzz_metadata.c - libFuzzer target: replay of the metadata log
 * (cluster/meta_loader.h), what a broker does with __cluster_metadata
 * bytes at start: frame batches, check their CRC, decode each record
 * value and apply it to an image.
 *
 * The input is read twice:
 *   - as a segment file: concatenated batches, each record's value applied
 *     in order (sp_batches_each_record; the CRC stops a flipped bit, so
 *     the corpus holds real metadata logs written by spoold);
 *   - as bare record values, each prefixed by one length byte, so that
 *     the decoder and the image builder see mutations the CRC would hide.
 * A value that does not decode or apply ends that replay, as at start.
 * Oracles: no out-of-bounds access, UB or leak (ASan, UBSan), and the
 * image's invariants after every applied record (image.h (2) and (4)):
 * topics sorted by name with unique names and ids, each partition at its
 * index, each (scope, key) of the broker configs once, a topic's config
 * keys unique.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/meta_loader.h"
#include "proto/batch.h"

static sp_meta_loader_t loader;

static void check_image(const sp_image_t *img)
{
    for (int32_t i = 0; i < img->ntopics; i++) {
        const sp_topic_info_t *t = img->topics[i];
        if (i > 0 && strcmp(img->topics[i - 1]->name, t->name) >= 0)
            abort(); /* (2): sorted, unique */
        for (int32_t j = 0; j < i; j++)
            if (memcmp(img->topics[j]->id.b, t->id.b, 16) == 0)
                abort(); /* (2): ids unique */
        for (int32_t p = 0; p < t->npartitions; p++)
            if (t->partitions[p].index != p || t->partitions[p].nreplicas < 0 || t->partitions[p].nisr < 0)
                abort();
        for (int k = 0; k < t->nconfigs; k++)
            for (int m = 0; m < k; m++)
                if (strcmp(t->ckeys[k], t->ckeys[m]) == 0)
                    abort();
    }
    for (int32_t i = 0; i < img->ndyn; i++)
        for (int32_t j = 0; j < i; j++)
            if (img->dyn[i].is_default == img->dyn[j].is_default && strcmp(img->dyn[i].key, img->dyn[j].key) == 0)
                abort(); /* (4) */
    if (img->next_producer_id < 0)
        abort(); /* (5) */
}

static int on_record(const sp_record_t *rec, void *ctx)
{
    sp_image_t *img = ctx;
    if (rec->value.len < 0)
        return 0;
    if (sp_meta_loader_apply(&loader, img, rec->value.ptr, rec->value.len) != 0)
        return 1;
    check_image(img);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loader.topic && sp_meta_loader_init(&loader, 1) != 0)
        abort();
    /* as a log */
    sp_image_t *img = sp_image_new("fuzz", 1);
    int64_t next = 0;
    sp_batches_each_record(data, size, on_record, img, &next);
    /* and a clone changed further must leave the original as it was */
    sp_image_t *copy = sp_image_clone(img);
    if (copy) {
        sp_batches_each_record(data, size, on_record, copy, &next);
        check_image(copy);
        sp_image_release(copy);
    }
    check_image(img);
    sp_image_release(img);

    /* as bare values */
    img = sp_image_new("fuzz", 1);
    size_t at = 0;
    while (at < size) {
        size_t n = data[at++];
        if (n > size - at)
            n = size - at;
        if (sp_meta_loader_apply(&loader, img, data + at, (int32_t)n) != 0)
            break;
        check_image(img);
        at += n;
    }
    sp_image_release(img);
    return 0;
}
