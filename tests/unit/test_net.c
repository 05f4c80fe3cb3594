/* test_net.c - net/quota (connection counts, per-address limits and
 * overrides; quota.h invariants (1)-(2)) and net/mempool (Kafka's
 * non-strict SimpleMemoryPool; mempool.h invariants (1)-(2)). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "net/mempool.h"
#include "net/quota.h"

static struct sockaddr_storage v4(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    return ss;
}

#define SA(x) ((struct sockaddr *)&(x))

static void test_quota_counts(void)
{
    char err[256];
    sp_quota_t *q = sp_quota_new(5, 2, NULL, err, sizeof(err));
    CHECK(q != NULL);
    struct sockaddr_storage a = v4("10.0.0.1"), b = v4("10.0.0.2");
    struct sockaddr_storage a6 = v6("::ffff:10.0.0.1"), c6 = v6("2001:db8::1");
    int32_t lim = -1;
    CHECK(sp_quota_inc(q, SA(a), &lim) == 0);
    CHECK(sp_quota_inc(q, SA(a6), &lim) == 0); /* the same address as a */
    CHECK(sp_quota_count(q, SA(a)) == 2);
    CHECK(sp_quota_inc(q, SA(a), &lim) == -1 && lim == 2); /* over: nothing counted */
    CHECK(sp_quota_count(q, SA(a)) == 2 && sp_quota_total(q) == 2);
    CHECK(sp_quota_inc(q, SA(b), &lim) == 0);
    CHECK(sp_quota_inc(q, SA(c6), &lim) == 0);
    CHECK(sp_quota_inc(q, SA(c6), &lim) == 0);
    CHECK(sp_quota_total(q) == 5 && sp_quota_full(q)); /* (1) */
    sp_quota_dec(q, SA(a6));
    CHECK(!sp_quota_full(q) && sp_quota_count(q, SA(a)) == 1);
    sp_quota_dec(q, SA(a));
    CHECK(sp_quota_count(q, SA(a)) == 0); /* (2): entry gone */
    CHECK(sp_quota_inc(q, SA(a), &lim) == 0);
    sp_quota_free(q);
}

static void test_quota_overrides(void)
{
    char err[256];
    sp_quota_t *q = sp_quota_new(100, 1, " 10.0.0.1:3 , [2001:db8::1]:0, ::1:2,10.0.0.9:4,10.0.0.9:5",
                                 err, sizeof(err));
    CHECK(q != NULL);
    if (!q) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    struct sockaddr_storage a = v4("10.0.0.1"), b = v4("10.0.0.2"), c6 = v6("2001:db8::1");
    struct sockaddr_storage l6 = v6("::1"), n = v4("10.0.0.9");
    CHECK(sp_quota_limit(q, SA(a)) == 3);
    CHECK(sp_quota_limit(q, SA(b)) == 1);
    CHECK(sp_quota_limit(q, SA(c6)) == 0);
    CHECK(sp_quota_limit(q, SA(l6)) == 2);
    CHECK(sp_quota_limit(q, SA(n)) == 5); /* the later entry wins */
    int32_t lim;
    CHECK(sp_quota_inc(q, SA(c6), &lim) == -1 && lim == 0);
    for (int i = 0; i < 3; i++)
        CHECK(sp_quota_inc(q, SA(a), &lim) == 0);
    CHECK(sp_quota_inc(q, SA(a), &lim) == -1 && lim == 3);
    sp_quota_free(q);

    CHECK(sp_quota_new(1, 1, "10.0.0.1", err, sizeof(err)) == NULL);
    CHECK(strstr(err, "max.connections.per.ip.overrides") != NULL);
    CHECK(sp_quota_new(1, 1, "10.0.0.1:x", err, sizeof(err)) == NULL);
    CHECK(sp_quota_new(1, 1, "10.0.0.1:-1", err, sizeof(err)) == NULL);
    CHECK(sp_quota_new(1, 1, ":3", err, sizeof(err)) == NULL);
    q = sp_quota_new(1, 1, "", err, sizeof(err));
    CHECK(q != NULL);
    sp_quota_free(q);
}

/* Many addresses (the table grows), counted in and out from threads. */
static sp_quota_t *shared;
static void *churn(void *arg)
{
    int base = (int)(intptr_t)arg;
    char ip[32];
    int32_t lim;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 500; i++) {
            snprintf(ip, sizeof(ip), "10.%d.%d.%d", base, i / 250, i % 250);
            struct sockaddr_storage a = v4(ip);
            if (sp_quota_inc(shared, SA(a), &lim) != 0)
                abort();
        }
        for (int i = 0; i < 500; i++) {
            snprintf(ip, sizeof(ip), "10.%d.%d.%d", base, i / 250, i % 250);
            struct sockaddr_storage a = v4(ip);
            sp_quota_dec(shared, SA(a));
        }
    }
    return NULL;
}

static void test_quota_threads(void)
{
    char err[256];
    shared = sp_quota_new(INT32_MAX, 1, NULL, err, sizeof(err));
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, churn, (void *)(intptr_t)(i + 1));
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK(sp_quota_total(shared) == 0); /* (1) */
    sp_quota_free(shared);
}

static void test_mempool(void)
{
    sp_mempool_t p;
    sp_mempool_init(&p, 100);
    CHECK(sp_mempool_try_reserve(&p, 60));
    CHECK(sp_mempool_try_reserve(&p, 60)); /* 40 left >= 1: granted, dips below 0 */
    CHECK(sp_mempool_used(&p) == 120);
    CHECK(!sp_mempool_try_reserve(&p, 1)); /* (2): nothing left */
    sp_mempool_release(&p, 60);
    CHECK(sp_mempool_used(&p) == 60);     /* (1) */
    CHECK(sp_mempool_try_reserve(&p, 100));
    CHECK(!sp_mempool_try_reserve(&p, 1));
    sp_mempool_release(&p, 100);
    sp_mempool_release(&p, 60);
    CHECK(sp_mempool_used(&p) == 0);

    sp_mempool_init(&p, -1); /* unbounded (Kafka's MemoryPool.NONE) */
    CHECK(sp_mempool_try_reserve(&p, 1LL << 40));
    CHECK(sp_mempool_used(&p) == 0);
}

int main(void)
{
    test_quota_counts();
    test_quota_overrides();
    test_quota_threads();
    test_mempool();
    return check_summary("test_net");
}
