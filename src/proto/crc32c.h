/*
 * crc32c.h - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of Kafka record batches (v2) and of nothing else in the protocol.
 *
 * Owns nothing: pure functions over caller memory, any thread, reentrant.
 *
 * Chaining convention (as zlib's crc32()): the 'crc' argument is the value
 * returned for the bytes before, 0 to start, so
 *   sp_crc32c(sp_crc32c(0, a, na), b, nb) == CRC-32C of a followed by b.
 * Pre- and post-inversion happen inside.  Known answer:
 *   sp_crc32c(0, "123456789", 9) == 0xE3069283.
 *
 * Implementation: ISA-L (Debian's libisal, Intel's storage acceleration
 * library), which dispatches at run time to the fastest kernel the CPU has
 * (SSE4.2 crc32, PCLMULQDQ or AVX-512 VPCLMULQDQ folding; a table on other
 * CPUs). sp_crc32c_sw() is an independent slicing-by-8 table version kept
 * as the tests' reference.
 */
#ifndef SP_PROTO_CRC32C_H
#define SP_PROTO_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * CRC-32C of p[0..n), continuing from 'crc' (0 to start).  Borrows 'p'
 * (may be NULL when n == 0).  Picks the fastest implementation available.
 */
uint32_t sp_crc32c(uint32_t crc, const void *p, size_t n);

/* ---- for tests: an independent slicing-by-8 table version ------------ */
uint32_t sp_crc32c_sw(uint32_t crc, const void *p, size_t n);

#endif
