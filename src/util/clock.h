/*
 * clock.h - the two clocks of the broker.
 *
 * sp_wall_ms(): wall-clock milliseconds since the epoch, for what Kafka
 * keeps as timestamps (record timestamps, LogAppendTime, segment and
 * retention ages compared with record timestamps, file mtimes).
 * sp_mono_ms(): CLOCK_MONOTONIC milliseconds, for intervals the broker
 * measures itself (flush.ms, checkpoint and retention-check intervals,
 * timeouts), so that a step of the wall clock neither stalls nor rushes
 * them.  Any thread.
 */
#ifndef SP_UTIL_CLOCK_H
#define SP_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t sp_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t sp_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
