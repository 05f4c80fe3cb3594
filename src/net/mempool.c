/* mempool.c - see mempool.h. */
#include "net/mempool.h"

void sp_mempool_init(sp_mempool_t *p, int64_t size)
{
    p->size = size;
    atomic_init(&p->available, size > 0 ? size : 0);
}

bool sp_mempool_try_reserve(sp_mempool_t *p, int64_t n)
{
    if (p->size <= 0)
        return true;
    long long avail = atomic_load(&p->available);
    while (avail >= 1) { /* (2): non-strict, as SocketServer's pool */
        if (atomic_compare_exchange_weak(&p->available, &avail, avail - n))
            return true;
    }
    return false;
}

void sp_mempool_release(sp_mempool_t *p, int64_t n)
{
    if (p->size > 0)
        atomic_fetch_add(&p->available, n);
}

int64_t sp_mempool_used(sp_mempool_t *p)
{
    return p->size > 0 ? p->size - atomic_load(&p->available) : 0;
}
