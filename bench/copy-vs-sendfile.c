/*
 * copy-vs-sendfile - the two ways Fetch can move record bytes from a
 * segment file to a socket, measured on this machine:
 *
 *   copy      pread() the range into the response buffer, then write()
 *             (Spool's path: the response is built in one buffer)
 *   sendfile  write() the response header, sendfile() the range
 *
 * A file of FILE_MB (in the page cache after a first pass) is served in
 * CHUNK-byte ranges over loopback TCP to a reader thread that discards
 * them.  Prints GB/s and the sender's CPU seconds per GB for each.
 *
 *   cc -O2 -o copy-vs-sendfile bench/copy-vs-sendfile.c -lpthread
 *   ./copy-vs-sendfile [chunk_kib] [passes]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FILE_MB 256

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_self(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void *reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static char buf[1 << 20];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    return NULL;
}

static void run(const char *name, int file, size_t chunk, int passes, int use_sendfile)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    bind(lfd, (struct sockaddr *)&a, sizeof(a));
    listen(lfd, 1);
    getsockname(lfd, (struct sockaddr *)&a, &al);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    connect(cfd, (struct sockaddr *)&a, sizeof(a));
    int sfd = accept(lfd, NULL, NULL);
    pthread_t th;
    pthread_create(&th, NULL, reader, (void *)(intptr_t)cfd);
    char *buf = malloc(chunk + 64);
    size_t fsize = (size_t)FILE_MB << 20, total = 0;
    double t0 = now(), c0 = cpu_self();
    for (int p = 0; p < passes; p++) {
        for (size_t off = 0; off + chunk <= fsize; off += chunk) {
            char hdr[64] = { 0 }; /* a response header's worth of bytes */
            if (use_sendfile) {
                if (write(sfd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr))
                    exit(1);
                off_t o = (off_t)off;
                size_t left = chunk;
                while (left) {
                    ssize_t n = sendfile(sfd, file, &o, left);
                    if (n <= 0)
                        exit(1);
                    left -= (size_t)n;
                }
            } else {
                memcpy(buf, hdr, sizeof(hdr));
                if (pread(file, buf + sizeof(hdr), chunk, (off_t)off) != (ssize_t)chunk)
                    exit(1);
                size_t left = chunk + sizeof(hdr), at = 0;
                while (left) {
                    ssize_t n = write(sfd, buf + at, left);
                    if (n <= 0)
                        exit(1);
                    at += (size_t)n;
                    left -= (size_t)n;
                }
            }
            total += chunk;
        }
    }
    double secs = now() - t0, cpu = cpu_self() - c0;
    close(sfd);
    pthread_join(th, NULL);
    close(cfd);
    close(lfd);
    free(buf);
    printf("%-9s chunk %5zu KiB: %6.2f GB/s, sender CPU %.3f s per GB\n", name, chunk >> 10,
           (double)total / secs / 1e9, cpu / ((double)total / 1e9));
}

int main(int argc, char **argv)
{
    size_t chunk = (size_t)(argc > 1 ? atoi(argv[1]) : 1024) << 10;
    int passes = argc > 2 ? atoi(argv[2]) : 8;
    char path[] = "/tmp/copy-vs-sendfile-XXXXXX";
    int f = mkstemp(path);
    char *blk = malloc(1 << 20);
    memset(blk, 'r', 1 << 20);
    for (int i = 0; i < FILE_MB; i++)
        if (write(f, blk, 1 << 20) != 1 << 20)
            return 1;
    free(blk);
    unlink(path);
    run("warm-up", f, chunk, 1, 0);
    for (int r = 0; r < 3; r++) {
        run("copy", f, chunk, passes, 0);
        run("sendfile", f, chunk, passes, 1);
    }
    close(f);
    return 0;
}
