/* api.c - the implemented API table (see api.h). */
#include "broker/api.h"

static const sp_api_t apis[] = {
    { SP_API_METADATA, 0, 12, sp_handle_metadata },
    { SP_API_API_VERSIONS, 0, 4, sp_handle_api_versions },
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
