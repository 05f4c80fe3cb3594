/*
 * quota.h - connection counts and limits: max.connections (broker-wide)
 * and max.connections.per.ip with max.connections.per.ip.overrides.
 *
 * Owns a count of open connections per client address and in total.  The
 * main thread counts a connection in when it accepts it
 * (sp_quota_inc); the worker that owns it counts it out when its socket
 * is closed (sp_quota_dec).  A mutex guards the per-address table; the
 * total is also kept in an atomic so that the listener can look at it
 * without the lock.
 *
 * Addresses are compared as Java's InetAddress does for Kafka: an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address.
 *
 * Invariants:
 *  (1) total == the sum of the per-address counts == sp_quota_inc calls
 *      that returned 0 minus sp_quota_dec calls;
 *  (2) an address has an entry only while its count is > 0.
 */
#ifndef SP_NET_QUOTA_H
#define SP_NET_QUOTA_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct sp_quota sp_quota_t;

/*
 * max_total: max.connections; max_per_ip: max.connections.per.ip;
 * overrides: max.connections.per.ip.overrides, "host:count,host:count"
 * (host a name or an address, IPv6 in brackets or bare; a name counts for
 * every address it resolves to at start), or NULL/"".  Returns NULL with
 * a reason in err (naming the key) when the overrides do not parse or a
 * host does not resolve.  Main thread, at start.
 */
sp_quota_t *sp_quota_new(int32_t max_total, int32_t max_per_ip, const char *overrides,
                         char *err, size_t errcap);
void sp_quota_free(sp_quota_t *q);

/* Counts a new connection from 'addr' in, unless its address already has
 * its limit of connections: then counts nothing, sets *limit and returns
 * -1.  Does not look at max.connections (see sp_quota_full).  Any thread. */
int sp_quota_inc(sp_quota_t *q, const struct sockaddr *addr, int32_t *limit);
/* Counts a connection from 'addr' out.  Any thread. */
void sp_quota_dec(sp_quota_t *q, const struct sockaddr *addr);
/* True when the total is at max.connections.  Any thread, lock-free. */
bool sp_quota_full(const sp_quota_t *q);
int32_t sp_quota_total(const sp_quota_t *q);
/* Open connections from 'addr' (for tests).  Any thread. */
int32_t sp_quota_count(sp_quota_t *q, const struct sockaddr *addr);
/* The limit that applies to 'addr'. */
int32_t sp_quota_limit(const sp_quota_t *q, const struct sockaddr *addr);

#endif
