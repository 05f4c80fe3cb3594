/* check.h - minimal unit-test helpers: CHECK() counts, main prints a summary. */
#ifndef SP_TEST_CHECK_H
#define SP_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond) do { \
    if (cond) check_passed++; \
    else { check_failed++; fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECK_MEM(a, alen, b, blen) do { \
    size_t la_ = (alen), lb_ = (blen); \
    int ok_ = la_ == lb_ && memcmp((a), (b), la_) == 0; \
    CHECK(ok_ && #a " == " #b); \
    if (!ok_) check_hexdiff((const unsigned char *)(a), la_, (const unsigned char *)(b), lb_); \
} while (0)

static inline void check_hexdiff(const unsigned char *a, size_t la, const unsigned char *b, size_t lb)
{
    fprintf(stderr, "  got  (%zu):", la);
    for (size_t i = 0; i < la; i++) fprintf(stderr, " %02x", a[i]);
    fprintf(stderr, "\n  want (%zu):", lb);
    for (size_t i = 0; i < lb; i++) fprintf(stderr, " %02x", b[i]);
    fprintf(stderr, "\n");
}

/* The plain closing line CI reads: "N passed, N failed". */
static inline int check_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
