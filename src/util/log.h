/*
 * log.h - one-line log records on stderr: "<UTC time> <LEVEL> [<area>] <text>".
 *
 * Thread-safe (one write(2) per record).  The level threshold is process-wide
 * and set once at start (log.level / SPOOL_LOG_LEVEL).
 */
#ifndef SP_UTIL_LOG_H
#define SP_UTIL_LOG_H

enum sp_log_level { SP_LOG_DEBUG, SP_LOG_INFO, SP_LOG_WARN, SP_LOG_ERROR };

void sp_log_set_level(enum sp_log_level lvl);
/* Parses "debug", "info", "warn", "error"; returns -1 if unknown. */
int sp_log_parse_level(const char *s);
void sp_log(enum sp_log_level lvl, const char *area, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sp_debug(area, ...) sp_log(SP_LOG_DEBUG, area, __VA_ARGS__)
#define sp_info(area, ...) sp_log(SP_LOG_INFO, area, __VA_ARGS__)
#define sp_warn(area, ...) sp_log(SP_LOG_WARN, area, __VA_ARGS__)
#define sp_error(area, ...) sp_log(SP_LOG_ERROR, area, __VA_ARGS__)

#endif
