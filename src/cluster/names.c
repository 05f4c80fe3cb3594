/* names.c - see names.h. */
#include "cluster/names.h"

#include <ctype.h>
#include <string.h>

bool sp_topic_name_valid(const char *name, int32_t len)
{
    if (!name || len <= 0 || len > SP_TOPIC_NAME_MAX)
        return false;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return false;
    for (int32_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

bool sp_topic_is_internal(const char *name, int32_t len)
{
    static const char *const internal[] = { "__consumer_offsets", "__transaction_state",
                                            "__share_group_state" };
    for (size_t i = 0; name && len > 0 && i < sizeof(internal) / sizeof(internal[0]); i++)
        if ((size_t)len == strlen(internal[i]) && memcmp(name, internal[i], (size_t)len) == 0)
            return true;
    return false;
}

int32_t sp_key_partition(const char *key, int32_t len, int32_t n)
{
    int32_t h = 0;
    for (int32_t i = 0; i < len; i++)
        h = (int32_t)((uint32_t)h * 31u + (uint32_t)(unsigned char)key[i]);
    /* Kafka's Utils.abs: Integer.MIN_VALUE maps to 0 */
    int32_t a = h == INT32_MIN ? 0 : (h < 0 ? -h : h);
    return n > 0 ? a % n : 0;
}
