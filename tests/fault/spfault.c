/*
 * spfault.c - an LD_PRELOAD shim that makes chosen system calls fail, for
 * storage and connection fault tests (build/libspfault.so, `make fault`).
 *
 *   SPFAULT='fdatasync:path=-3/:nth=2:errno=EIO;open:path=.index:errno=EMFILE' \
 *   LD_PRELOAD=build/libspfault.so build/spoold ...
 *
 * SPFAULT holds rules separated by ';'.  A rule is a call name and then
 * ':'-separated key=value settings:
 *
 *   call        fdatasync | fsync | pwrite (pwrite, pwrite64) | write |
 *               open (open, open64, openat, openat64) | accept (accept, accept4)
 *   path=S      only calls whose file path contains S: the path as given to
 *               open, else readlink("/proc/self/fd/<fd>") (a socket reads
 *               "socket:[inode]", a removed file ends in " (deleted)")
 *   nth=N       fail the N-th matching call only (1-based)
 *   from=N      fail the N-th matching call and every one after it
 *   count=K     with from: fail at most K calls
 *   errno=E     a name (EIO, ENOSPC, EMFILE, ...) or a number; default EIO
 *
 * Without nth or from, every matching call fails.  A call is counted by
 * every rule it matches (call name and path); it fails if one of them says
 * so, and the first such rule is reported.  A failing call does not reach
 * the kernel: it returns -1 with errno set (nothing is written or synced).
 * Each injected fault writes one line to stderr:
 *
 *   spfault: fdatasync(/data/t-3/00000000000000000000.log) -> EIO (rule 1, call 2)
 *
 * Not seen: calls libc makes internally (fopen opens without the PLT), and
 * raw syscall()s.
 *
 * A malformed SPFAULT is reported on stderr and the process exits with
 * status 121 before main(), so a typo never passes for "no fault".
 *
 * Threads and signals: rules are parsed once, in a constructor, before
 * main.  The interposed calls use no locks and no allocation: per-rule
 * call counters are atomics, paths go through fixed buffers and readlink,
 * the log line is one write(2) issued with syscall(), and the real
 * functions are looked up with dlsym(RTLD_NEXT) (at start, or at the first
 * call if that comes earlier).  So they are safe from any thread, and as
 * async-signal-safe as the calls they wrap once resolved.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#undef _FORTIFY_SOURCE /* its inline open() wrappers would clash with ours */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_RULES 16
#define MAX_PATH_SUB 256
#define PATH_BUF 512

enum call { C_FDATASYNC, C_FSYNC, C_PWRITE, C_WRITE, C_OPEN, C_ACCEPT, C_NCALLS };

static const char *const call_names[C_NCALLS] = { "fdatasync", "fsync", "pwrite",
                                                  "write",     "open",  "accept" };

typedef struct rule {
    enum call call;
    char path[MAX_PATH_SUB]; /* "" = any */
    unsigned long nth, from, count; /* 0 = not set */
    int err;
    atomic_ulong calls;  /* matching calls seen */
    atomic_ulong failed; /* faults injected */
} rule_t;

static rule_t rules[MAX_RULES];
static int nrules;
static bool has_rule[C_NCALLS];     /* any rule for this call */
static bool needs_path[C_NCALLS];   /* any such rule with path= */
static atomic_int ready;            /* rules parsed */

static const struct {
    const char *name;
    int value;
} errnos[] = {
    { "EIO", EIO },       { "ENOSPC", ENOSPC },   { "EDQUOT", EDQUOT },     { "EMFILE", EMFILE },
    { "ENFILE", ENFILE }, { "EROFS", EROFS },     { "EACCES", EACCES },     { "EPERM", EPERM },
    { "ENOENT", ENOENT }, { "EAGAIN", EAGAIN },   { "EINTR", EINTR },       { "ENOMEM", ENOMEM },
    { "EBADF", EBADF },   { "EFBIG", EFBIG },     { "ECONNABORTED", ECONNABORTED },
    { "ENOBUFS", ENOBUFS }, { "EPIPE", EPIPE },   { "ECONNRESET", ECONNRESET },
};

/* ---- output without stdio or malloc ----------------------------------- */

static void raw_write(const char *s, size_t n)
{
    while (n > 0) {
        long w = syscall(SYS_write, 2, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

typedef struct line {
    char buf[PATH_BUF + 160];
    size_t len;
} line_t;

static void put(line_t *l, const char *s)
{
    while (*s && l->len < sizeof(l->buf) - 1)
        l->buf[l->len++] = *s++;
}

static void put_ulong(line_t *l, unsigned long v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n > 0 && l->len < sizeof(l->buf) - 1)
        l->buf[l->len++] = tmp[--n];
}

static const char *errno_name(int e)
{
    for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
        if (errnos[i].value == e)
            return errnos[i].name;
    return NULL;
}

/* "spfault: <call>(<path>) -> <ERRNO> (rule <i>, call <n>)\n" */
static void report(enum call c, const char *path, int err, int ri, unsigned long n)
{
    int saved = errno;
    line_t l;
    l.len = 0;
    put(&l, "spfault: ");
    put(&l, call_names[c]);
    put(&l, "(");
    put(&l, path);
    put(&l, ") -> ");
    const char *en = errno_name(err);
    if (en) {
        put(&l, en);
    } else {
        put(&l, "errno ");
        put_ulong(&l, (unsigned long)err);
    }
    put(&l, " (rule ");
    put_ulong(&l, (unsigned long)ri + 1);
    put(&l, ", call ");
    put_ulong(&l, n);
    put(&l, ")\n");
    raw_write(l.buf, l.len);
    errno = saved;
}

/* ---- rules ------------------------------------------------------------- */

static void bad_config(const char *why, const char *at)
{
    line_t l;
    l.len = 0;
    put(&l, "spfault: bad SPFAULT: ");
    put(&l, why);
    put(&l, " at \"");
    put(&l, at);
    put(&l, "\"\n");
    raw_write(l.buf, l.len);
    _exit(121);
}

static bool parse_ulong(const char *s, size_t n, unsigned long *out)
{
    unsigned long v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (~0UL - 9) / 10)
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    *out = v;
    return true;
}

static bool parse_errno(const char *s, size_t n, int *out)
{
    unsigned long v;
    if (parse_ulong(s, n, &v) && v > 0 && v < 4096) {
        *out = (int)v;
        return true;
    }
    for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
        if (strlen(errnos[i].name) == n && memcmp(errnos[i].name, s, n) == 0) {
            *out = errnos[i].value;
            return true;
        }
    return false;
}

/* One rule from s[0..n). */
static void parse_rule(const char *s, size_t n)
{
    if (nrules == MAX_RULES)
        bad_config("more than 16 rules", s);
    rule_t *r = &rules[nrules];
    memset(r, 0, sizeof(*r));
    r->err = EIO;
    size_t i = 0;
    while (i < n && s[i] != ':')
        i++;
    int c = -1;
    for (int k = 0; k < C_NCALLS; k++)
        if (strlen(call_names[k]) == i && memcmp(call_names[k], s, i) == 0)
            c = k;
    if (c < 0)
        bad_config("unknown call (fdatasync, fsync, pwrite, write, open, accept)", s);
    r->call = (enum call)c;
    while (i < n) {
        size_t k = ++i; /* past ':' */
        while (i < n && s[i] != ':')
            i++;
        const char *kv = s + k, *eq = memchr(kv, '=', i - k);
        if (!eq)
            bad_config("expected key=value", kv);
        size_t kl = (size_t)(eq - kv), vl = i - k - kl - 1;
        const char *v = eq + 1;
        bool ok;
        if (kl == 4 && memcmp(kv, "path", 4) == 0) {
            ok = vl > 0 && vl < MAX_PATH_SUB;
            if (ok)
                memcpy(r->path, v, vl);
        } else if (kl == 3 && memcmp(kv, "nth", 3) == 0) {
            ok = parse_ulong(v, vl, &r->nth) && r->nth > 0;
        } else if (kl == 4 && memcmp(kv, "from", 4) == 0) {
            ok = parse_ulong(v, vl, &r->from) && r->from > 0;
        } else if (kl == 5 && memcmp(kv, "count", 5) == 0) {
            ok = parse_ulong(v, vl, &r->count) && r->count > 0;
        } else if (kl == 5 && memcmp(kv, "errno", 5) == 0) {
            ok = parse_errno(v, vl, &r->err);
        } else {
            bad_config("unknown key (path, nth, from, count, errno)", kv);
            ok = false;
        }
        if (!ok)
            bad_config("bad value", kv);
    }
    if (r->nth && (r->from || r->count))
        bad_config("nth excludes from and count", s);
    if (r->count && !r->from)
        bad_config("count needs from", s);
    has_rule[r->call] = true;
    if (r->path[0])
        needs_path[r->call] = true;
    nrules++;
}

/* ---- the real functions ------------------------------------------------ */

typedef int (*fd_fn)(int);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off64_t);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);
typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);

/* The next definition of name (libc's).  Cached; a race only looks it up
 * twice. */
static void *real(void *_Atomic *slot, const char *name)
{
    void *f = atomic_load_explicit(slot, memory_order_acquire);
    if (!f) {
        f = dlsym(RTLD_NEXT, name);
        if (!f) {
            raw_write("spfault: no next definition of ", 31);
            raw_write(name, strlen(name));
            raw_write("\n", 1);
            abort();
        }
        atomic_store_explicit(slot, f, memory_order_release);
    }
    return f;
}

#define REAL(name) real(&real_##name, #name)
static void *_Atomic real_fdatasync, *_Atomic real_fsync, *_Atomic real_pwrite,
    *_Atomic real_pwrite64, *_Atomic real_write, *_Atomic real_open, *_Atomic real_open64,
    *_Atomic real_openat, *_Atomic real_openat64, *_Atomic real_accept, *_Atomic real_accept4;

__attribute__((constructor)) static void spfault_init(void)
{
    const char *cfg = getenv("SPFAULT");
    if (cfg) {
        const char *s = cfg;
        while (*s) {
            const char *e = strchr(s, ';');
            size_t n = e ? (size_t)(e - s) : strlen(s);
            if (n > 0)
                parse_rule(s, n);
            s += n + (e ? 1 : 0);
        }
    }
    /* resolve now, so the interposed calls do not need dlsym later */
    (void)REAL(fdatasync);
    (void)REAL(fsync);
    (void)REAL(pwrite);
    (void)REAL(pwrite64);
    (void)REAL(write);
    (void)REAL(open);
    (void)REAL(open64);
    (void)REAL(openat);
    (void)REAL(openat64);
    (void)REAL(accept);
    (void)REAL(accept4);
    atomic_store(&ready, 1);
}

/* ---- the decision ------------------------------------------------------ */

/* The path of fd (readlink of /proc/self/fd/N) into buf. */
static const char *fd_path(int fd, char *buf, size_t cap)
{
    char link[40] = "/proc/self/fd/";
    line_t num;
    num.len = 0;
    if (fd < 0)
        return "?";
    put_ulong(&num, (unsigned long)fd);
    memcpy(link + 14, num.buf, num.len);
    link[14 + num.len] = 0;
    ssize_t n = readlink(link, buf, cap - 1);
    if (n < 0)
        return "?";
    buf[n] = 0;
    return buf;
}

/* Counts the call with every rule it matches; returns the errno to fail
 * it with (after logging), or 0 to let it through.  path: the open path,
 * or NULL to look up fd's. */
static int decide(enum call c, int fd, const char *path)
{
    if (!atomic_load_explicit(&ready, memory_order_acquire) || !has_rule[c])
        return 0;
    char buf[PATH_BUF];
    if (!path && needs_path[c])
        path = fd_path(fd, buf, sizeof(buf));
    int fail = 0;
    for (int i = 0; i < nrules; i++) {
        rule_t *r = &rules[i];
        if (r->call != c || (r->path[0] && !strstr(path, r->path)))
            continue;
        unsigned long n = atomic_fetch_add(&r->calls, 1) + 1;
        bool hit = r->nth ? n == r->nth : r->from ? n >= r->from : true;
        if (hit && r->count && atomic_fetch_add(&r->failed, 1) >= r->count)
            hit = false;
        if (hit && !fail) {
            fail = r->err;
            if (!path)
                path = fd_path(fd, buf, sizeof(buf));
            report(c, path, fail, i, n);
        }
    }
    return fail;
}

#define FAIL_IF(c, fd, path)              \
    do {                                  \
        int e_ = decide((c), (fd), (path)); \
        if (e_) {                         \
            errno = e_;                   \
            return -1;                    \
        }                                 \
    } while (0)

/* ---- interposed calls -------------------------------------------------- */

int fdatasync(int fd)
{
    FAIL_IF(C_FDATASYNC, fd, NULL);
    return ((fd_fn)REAL(fdatasync))(fd);
}

int fsync(int fd)
{
    FAIL_IF(C_FSYNC, fd, NULL);
    return ((fd_fn)REAL(fsync))(fd);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    FAIL_IF(C_PWRITE, fd, NULL);
    return ((pwrite_fn)REAL(pwrite))(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    FAIL_IF(C_PWRITE, fd, NULL);
    return ((pwrite64_fn)REAL(pwrite64))(fd, buf, n, off);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    FAIL_IF(C_WRITE, fd, NULL);
    return ((write_fn)REAL(write))(fd, buf, n);
}

/* open's optional mode argument: present with O_CREAT or O_TMPFILE. */
#define OPEN_MODE(flags, last, mode)                                          \
    do {                                                                      \
        if (((flags) & O_CREAT) || ((flags) & O_TMPFILE) == O_TMPFILE) {      \
            va_list ap_;                                                      \
            va_start(ap_, last);                                              \
            (mode) = va_arg(ap_, mode_t);                                     \
            va_end(ap_);                                                      \
        }                                                                     \
    } while (0)

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, flags, mode);
    FAIL_IF(C_OPEN, -1, path);
    return ((open_fn)REAL(open))(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, flags, mode);
    FAIL_IF(C_OPEN, -1, path);
    return ((open_fn)REAL(open64))(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, flags, mode);
    FAIL_IF(C_OPEN, -1, path);
    return ((openat_fn)REAL(openat))(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, flags, mode);
    FAIL_IF(C_OPEN, -1, path);
    return ((openat_fn)REAL(openat64))(dirfd, path, flags, mode);
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    FAIL_IF(C_ACCEPT, fd, NULL);
    return ((accept_fn)REAL(accept))(fd, addr, len);
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    FAIL_IF(C_ACCEPT, fd, NULL);
    return ((accept4_fn)REAL(accept4))(fd, addr, len, flags);
}
