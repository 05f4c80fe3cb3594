/*
 * broker.h - the broker's settings as request handlers see them.
 *
 * Filled once by spoold.c from the configuration before any worker starts,
 * then read-only: every thread reads it without locks.
 */
#ifndef SP_BROKER_BROKER_H
#define SP_BROKER_BROKER_H

#include <stdint.h>

struct sp_partitions;
struct sp_logmgr;
struct sp_image_holder;
struct sp_controller;
struct sp_coordinator;
struct sp_pid_manager;
struct sp_txn_coordinator;
struct sp_config;

typedef struct sp_broker {
    int32_t node_id;
    int32_t max_request_bytes;     /* socket.request.max.bytes */
    char cluster_id[32];
    char *rack;                    /* broker.rack or NULL */
    char **log_dirs;
    int nlog_dirs;
    char *bind_host;               /* from listeners */
    int bind_port;
    char *adv_host;                /* from advertised.listeners */
    int adv_port;
    int io_threads;
    /* connections (net/) */
    int64_t conn_max_idle_ms;      /* connections.max.idle.ms; < 0: never */
    int64_t read_timeout_ms;       /* socket.request.read.timeout.ms; < 0: never */
    int32_t max_connections;       /* max.connections */
    int32_t max_conn_per_ip;       /* max.connections.per.ip */
    char *max_conn_per_ip_overrides; /* max.connections.per.ip.overrides, or NULL */
    int64_t queued_max_bytes;      /* queued.max.request.bytes; <= 0: unbounded */
    /* this broker's partitions (cluster/partition.h): set before any
     * thread starts; the registry itself is thread-safe */
    struct sp_partitions *partitions;
    struct sp_logmgr *logs;        /* its log manager (log/logmgr.h) */
    struct sp_image_holder *images; /* its current metadata image (cluster/image.h) */
    struct sp_controller *controller; /* its metadata thread (cluster/controller.h) */
    struct sp_coordinator *coordinator; /* its group coordinator (group/coordinator.h) */
    struct sp_pid_manager *pids;   /* its producer ids (txn/pid_manager.h) */
    struct sp_txn_coordinator *txn; /* its transaction coordinator (txn/txn_coordinator.h) */
    const struct sp_config *config; /* server.properties and --override (read-only) */
} sp_broker_t;

#endif
