/* api.c - the implemented API table (see api.h). */
#include "broker/api.h"

static const sp_api_t apis[] = {
    { SP_API_PRODUCE, 0, 11, sp_handle_produce },
    { SP_API_FETCH, 4, 17, sp_handle_fetch },
    { SP_API_LIST_OFFSETS, 1, 10, sp_handle_list_offsets },
    { SP_API_METADATA, 0, 12, sp_handle_metadata },
    { SP_API_API_VERSIONS, 0, 4, sp_handle_api_versions },
    { SP_API_CREATE_TOPICS, 2, 7, sp_handle_create_topics },
    { SP_API_DELETE_TOPICS, 1, 6, sp_handle_delete_topics },
};

const sp_api_t *sp_api_find(int16_t key)
{
    for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++)
        if (apis[i].key == key)
            return &apis[i];
    return NULL;
}

const sp_api_t *sp_api_list(int *count)
{
    *count = (int)(sizeof(apis) / sizeof(apis[0]));
    return apis;
}
