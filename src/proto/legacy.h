/*
 * legacy.h - message sets of magic 0 and 1 (Kafka before 0.11), converted
 * to and from record batches (magic 2), for the clients that still speak
 * them: Produce v0-2 and Fetch v0-3 (kafka-go 0.2, Sarama and Burrow
 * configured for Kafka 0.10).  Kafka 4 dropped both (KIP-896); Kafka 3
 * converted, as here.
 *
 *   message set = (offset int64, size int32, message)*
 *   message     = crc int32 (CRC-32, IEEE, of what follows) | magic int8 |
 *                 attributes int8 (codec in bits 0-2; magic 1: bit 3 =
 *                 LogAppendTime) | [timestamp int64, magic 1] |
 *                 key bytes | value bytes           (int32 length, -1 null)
 *   a compressed message's value is a message set of its own (one level;
 *   magic 1 gives inner offsets relative to the wrapper's, 0..n-1).
 *
 * Up (produce): every message's CRC, magic and framing are checked; the
 * records become one batch with their keys, values and timestamps (magic 0
 * has none: -1, as Kafka's up-conversion), compressed with the wrapper's
 * codec (none when the messages were not wrapped).  The broker's usual
 * validation then judges that batch.
 * Down (fetch): the records of each batch, control batches skipped,
 * become uncompressed messages of the given magic with their absolute
 * offsets; headers are dropped (magic 0/1 has none), as Kafka's
 * down-conversion drops them.
 *
 * Pure functions, any thread.
 */
#ifndef SP_PROTO_LEGACY_H
#define SP_PROTO_LEGACY_H

#include <stddef.h>
#include <stdint.h>

/* Converts the message set set[0..len) into one record batch (base offset
 * 0, to be assigned by the log).  A compressed wrapper decompresses to at
 * most max_decompressed bytes (0: proto/batch.h's default cap).  Returns 0
 * with *out (malloc'd) and *out_len, or a Kafka error code:
 * CORRUPT_MESSAGE for a message that does not frame, check or decompress,
 * INVALID_RECORD for an empty set, UNSUPPORTED_COMPRESSION_TYPE for an
 * unknown codec; *why says which. */
int sp_legacy_to_batch(const uint8_t *set, size_t len, size_t max_decompressed, uint8_t **out, size_t *out_len,
                       const char **why);

/* Converts the record batches in batches[0..len) (a log read: a last batch
 * cut short is left out) into a message set of magic 0 or 1.  Returns 0
 * with *out (malloc'd, NULL when nothing) and *out_len, or -1 (a batch
 * that does not decode, out of memory). */
int sp_legacy_from_batches(const uint8_t *batches, size_t len, int magic, uint8_t **out, size_t *out_len);

#endif
