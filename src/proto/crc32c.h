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
 * Platform note: on x86-64 the SSE4.2 crc32 instruction is used when the
 * CPU has it (checked at run time with __builtin_cpu_supports, the code is
 * compiled with a per-function target("sse4.2") so the rest of the build
 * keeps the baseline ISA); elsewhere, and on older CPUs, a slicing-by-8
 * table does 8 bytes per step.  Both give identical results.
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

/* ---- for tests: the two implementations, callable directly ---------- */

/* Slicing-by-8 table version; always available. */
uint32_t sp_crc32c_sw(uint32_t crc, const void *p, size_t n);

/* True when sp_crc32c_hw() may be called (x86-64 CPU with SSE4.2). */
bool sp_crc32c_hw_available(void);

/* SSE4.2 version.  Only call it when sp_crc32c_hw_available(); where the
 * instruction does not exist it falls back to sp_crc32c_sw(). */
uint32_t sp_crc32c_hw(uint32_t crc, const void *p, size_t n);

#endif
