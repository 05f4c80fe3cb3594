/* meta_properties.c - see meta_properties.h. */
#include "cluster/meta_properties.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/log.h"

void sp_random_kafka_uuid(char out[23])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (errno != EINTR)
            break;
    }
    if (got < sizeof(b)) { /* no entropy source: time and pid, still unique enough */
        uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        memcpy(b, &t, 8);
        memcpy(b + 8, &t, 8);
    }
    /* Kafka's Uuid.randomUuid: version 4 bits */
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    int o = 0;
    for (int i = 0; i < 16; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16;
        if (i + 1 < 16)
            v |= (uint32_t)b[i + 1] << 8;
        if (i + 2 < 16)
            v |= b[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        if (i + 1 < 16)
            out[o++] = b64[(v >> 6) & 63];
        if (i + 2 < 16)
            out[o++] = b64[v & 63];
    }
    out[o] = 0;
}

/* Reads key=value pairs we care about; returns 0 if the file exists. */
static int read_props(const char *path, char *cluster, size_t ccap, long *node, int *version)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[512];
    cluster[0] = 0;
    *node = -1;
    *version = -1;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (line[0] == '#')
            continue;
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = 0;
        if (strcmp(line, "cluster.id") == 0)
            snprintf(cluster, ccap, "%s", eq + 1);
        else if (strcmp(line, "node.id") == 0 || strcmp(line, "broker.id") == 0)
            *node = strtol(eq + 1, NULL, 10);
        else if (strcmp(line, "version") == 0)
            *version = (int)strtol(eq + 1, NULL, 10);
    }
    fclose(f);
    return 0;
}

static int write_props(const char *dir, const char *cluster, int32_t node_id)
{
    char text[512], dirid[23];
    time_t now = time(NULL);
    sp_random_kafka_uuid(dirid);
    int n = snprintf(text, sizeof(text),
                     "#\n#%s"
                     "cluster.id=%s\ndirectory.id=%s\nnode.id=%d\nversion=1\n",
                     ctime(&now), cluster, dirid, node_id);
    return sp_write_file_atomic(dir, "meta.properties", text, (size_t)n);
}

int sp_meta_properties_init(char *const *dirs, int ndirs, int32_t node_id, char *cluster_id,
                            size_t cap)
{
    char found[64] = "";
    int missing[64];
    int nmissing = 0;

    if (ndirs > 64) {
        sp_error("meta", "too many log directories (%d)", ndirs);
        return -1;
    }
    for (int i = 0; i < ndirs; i++) {
        char path[4096], cl[64];
        long node;
        int version;
        if (sp_mkdirs(dirs[i]) != 0) {
            sp_error("meta", "cannot create log directory %s: %s", dirs[i], strerror(errno));
            return -1;
        }
        snprintf(path, sizeof(path), "%s/meta.properties", dirs[i]);
        if (read_props(path, cl, sizeof(cl), &node, &version) != 0) {
            missing[nmissing++] = i;
            continue;
        }
        if (!cl[0]) {
            sp_error("meta", "%s has no cluster.id", path);
            return -1;
        }
        if (node != node_id) {
            sp_error("meta", "%s belongs to node %ld but node.id is %d", path, node, node_id);
            return -1;
        }
        if (found[0] && strcmp(found, cl) != 0) {
            sp_error("meta", "log directories disagree on cluster.id (%s vs %s)", found, cl);
            return -1;
        }
        snprintf(found, sizeof(found), "%s", cl);
    }
    if (!found[0]) {
        char id[23];
        sp_random_kafka_uuid(id);
        snprintf(found, sizeof(found), "%s", id);
        sp_info("meta", "formatting new cluster %s", found);
    }
    for (int k = 0; k < nmissing; k++) {
        if (write_props(dirs[missing[k]], found, node_id) != 0) {
            sp_error("meta", "cannot write %s/meta.properties: %s", dirs[missing[k]], strerror(errno));
            return -1;
        }
    }
    if (strlen(found) + 1 > cap)
        return -1;
    strcpy(cluster_id, found);
    return 0;
}
