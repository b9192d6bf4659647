/* The scale section's two probes (benchmarks/suite/stamps.py, nftgen.py), each
 * stamping with CLOCK_REALTIME (Python's time.time()) as soon as its read returns:
 *
 *   probes fifo FD   every line read from FD (the notify FIFO, opened O_NONBLOCK):
 *                    "SEC.NSEC LINE"
 *   probes nft       subscribes to NFNLGRP_NFTABLES in its network namespace,
 *                    prints "ready", then "gen SEC.NSEC" per NFT_MSG_NEWGEN (one per
 *                    committed transaction), "lost SEC.NSEC ERRNO" if it overran
 *
 * In C, not Python: the suite runs them at SCHED_FIFO priority, so the daemon's
 * write (a FIFO line) or commit wakes a probe at once, on the daemon's CPU as often
 * as not, and the daemon waits until the probe sleeps again.  The Python stamper
 * took ~70 us of the writer per line (six lines: 473 us p50, against 73 us with a
 * reader at normal priority); with this one, 40-45 us (52 with a reader at normal
 * priority, the same minute).  For the same reason a probe's lines go to the suite
 * when its input has been quiet for 10 ms (at most 100 ms late), not one write per
 * line. */
#include <errno.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_RCVBUFFORCE
#define SO_RCVBUFFORCE 33
#endif

static char out[1 << 20]; /* stdout's buffer (see flush_when_quiet) */
static char buf[1 << 20];

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Until fd is readable; stdout flushed once fd has been quiet for 10 ms, or at
 * the latest 100 ms after the last flush. */
static void wait_readable(int fd)
{
    static long long flushed;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    while (poll(&pfd, 1, 10) == 0) {
        fflush(stdout);
        flushed = now_ms();
    }
    if (now_ms() - flushed > 100) {
        fflush(stdout);
        flushed = now_ms();
    }
}

static int fifo(int fd)
{
    static char line[1 << 16];
    size_t have = 0; /* bytes of an unfinished line */
    for (;;) {
        wait_readable(fd);
        ssize_t n = read(fd, buf, sizeof buf);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            perror("read");
            return 1;
        }
        if (n == 0) { /* no writer yet (or between writers): poll says readable */
            fflush(stdout);
            usleep(10000);
            continue;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (have < sizeof line - 1)
                    line[have++] = buf[i];
                continue;
            }
            line[have] = '\0';
            printf("%lld.%09ld %s\n", (long long)now.tv_sec, now.tv_nsec, line);
            have = 0;
        }
    }
}

static int nft(void)
{
    int s = socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
    if (s < 0) {
        perror("socket");
        return 1;
    }
    int size = 64 << 20;
    setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    int group = NFNLGRP_NFTABLES;
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0
        || setsockopt(s, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
        perror("NFNLGRP_NFTABLES");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    const unsigned newgen = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN;
    for (;;) {
        wait_readable(s);
        int n = (int)recv(s, buf, sizeof buf, 0);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (n < 0) {
            if (errno != EINTR)
                printf("lost %lld.%09ld %d\n", (long long)now.tv_sec, now.tv_nsec, errno);
            continue;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n))
            if (h->nlmsg_type == newgen)
                printf("gen %lld.%09ld\n", (long long)now.tv_sec, now.tv_nsec);
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, out, _IOFBF, sizeof out);
    if (argc == 3 && strcmp(argv[1], "fifo") == 0)
        return fifo(atoi(argv[2]));
    if (argc == 2 && strcmp(argv[1], "nft") == 0)
        return nft();
    fprintf(stderr, "usage: probes fifo FD | probes nft\n");
    return 2;
}
