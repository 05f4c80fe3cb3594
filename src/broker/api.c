/* api.c - the implemented API table (see api.h). */
#include "broker/api.h"

#include <string.h>

#include "cluster/image.h"

static const sp_api_t apis[] = {
    { SP_API_PRODUCE, 0, 13, sp_handle_produce },
    { SP_API_FETCH, 0, 18, sp_handle_fetch },
    { SP_API_LIST_OFFSETS, 0, 11, sp_handle_list_offsets },
    { SP_API_METADATA, 0, 13, sp_handle_metadata },
    { SP_API_OFFSET_COMMIT, 0, 10, sp_handle_offset_commit },
    { SP_API_OFFSET_FETCH, 0, 10, sp_handle_offset_fetch },
    { SP_API_FIND_COORDINATOR, 0, 6, sp_handle_find_coordinator },
    { SP_API_JOIN_GROUP, 0, 9, sp_handle_join_group },
    { SP_API_HEARTBEAT, 0, 4, sp_handle_heartbeat },
    { SP_API_LEAVE_GROUP, 0, 5, sp_handle_leave_group },
    { SP_API_SYNC_GROUP, 0, 5, sp_handle_sync_group },
    { SP_API_DESCRIBE_GROUPS, 0, 6, sp_handle_describe_groups },
    { SP_API_LIST_GROUPS, 0, 5, sp_handle_list_groups },
    { SP_API_API_VERSIONS, 0, 4, sp_handle_api_versions },
    { SP_API_CREATE_TOPICS, 0, 7, sp_handle_create_topics },
    { SP_API_DELETE_TOPICS, 0, 6, sp_handle_delete_topics },
    { SP_API_DELETE_RECORDS, 0, 2, sp_handle_delete_records },
    { SP_API_INIT_PRODUCER_ID, 0, 5, sp_handle_init_producer_id },
    { SP_API_ADD_PARTITIONS_TO_TXN, 0, 5, sp_handle_add_partitions_to_txn },
    { SP_API_ADD_OFFSETS_TO_TXN, 0, 4, sp_handle_add_offsets_to_txn },
    { SP_API_END_TXN, 0, 4, sp_handle_end_txn },
    { SP_API_WRITE_TXN_MARKERS, 1, 2, sp_handle_write_txn_markers },
    { SP_API_TXN_OFFSET_COMMIT, 0, 4, sp_handle_txn_offset_commit },
    { SP_API_DESCRIBE_CONFIGS, 0, 4, sp_handle_describe_configs },
    { SP_API_ALTER_CONFIGS, 0, 2, sp_handle_alter_configs },
    { SP_API_DESCRIBE_LOG_DIRS, 0, 5, sp_handle_describe_log_dirs },
    { SP_API_CREATE_PARTITIONS, 0, 3, sp_handle_create_partitions },
    { SP_API_DELETE_GROUPS, 0, 2, sp_handle_delete_groups },
    { SP_API_INCREMENTAL_ALTER_CONFIGS, 0, 1, sp_handle_incremental_alter_configs },
    { SP_API_OFFSET_DELETE, 0, 0, sp_handle_offset_delete },
    { SP_API_DESCRIBE_CLUSTER, 0, 2, sp_handle_describe_cluster },
    { SP_API_DESCRIBE_PRODUCERS, 0, 0, sp_handle_describe_producers },
    { SP_API_DESCRIBE_TRANSACTIONS, 0, 0, sp_handle_describe_transactions },
    { SP_API_LIST_TRANSACTIONS, 0, 2, sp_handle_list_transactions },
    { SP_API_DESCRIBE_TOPIC_PARTITIONS, 0, 0, sp_handle_describe_topic_partitions },
};

const sp_api_t *sp_api_find(int16_t key)
{
    for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++)
        if (apis[i].key == key)
            return &apis[i];
    return NULL;
}

sp_str_t sp_req_topic_name(sp_req_t *req, const sp_image_t *img, sp_uuid_t id)
{
    const sp_topic_info_t *ti = sp_image_topic_by_id(img, id);
    char *n = ti ? sp_arena_strdup(&req->arena, ti->name, strlen(ti->name)) : NULL;
    return n ? sp_str_c(n) : SP_STR_NULL;
}

const sp_api_t *sp_api_list(int *count)
{
    *count = (int)(sizeof(apis) / sizeof(apis[0]));
    return apis;
}
