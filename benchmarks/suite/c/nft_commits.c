/* The nftables commit watcher (benchmarks/suite/nftgen.py): subscribes to the
 * NFNLGRP_NFTABLES multicast group of the network namespace it runs in, prints
 * "ready", then "gen SEC.NSEC" for each NFT_MSG_NEWGEN (one per committed
 * transaction), stamped with CLOCK_REALTIME as soon as recv returns, and
 * "lost SEC.NSEC ERRNO" when the socket overran.
 *
 * In C for the reason of fifo_stamps.c: at SCHED_FIFO priority it wakes on the
 * daemon's CPU right after each commit, and the daemon waits until it sleeps again.
 * Its lines go out when the group has been quiet for 10 ms. */
#include <errno.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_RCVBUFFORCE
#define SO_RCVBUFFORCE 33
#endif

static char out[1 << 20];

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int main(void)
{
    int s = socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
    if (s < 0) {
        perror("socket");
        return 1;
    }
    int size = 64 << 20;
    setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("bind");
        return 1;
    }
    int group = NFNLGRP_NFTABLES;
    if (setsockopt(s, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
        perror("NETLINK_ADD_MEMBERSHIP");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    setvbuf(stdout, out, _IOFBF, sizeof out);
    static char buf[1 << 20];
    const unsigned newgen = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN;
    long long flushed = now_ms();
    struct pollfd pfd = {.fd = s, .events = POLLIN};
    for (;;) {
        if (poll(&pfd, 1, 10) == 0) {
            fflush(stdout);
            flushed = now_ms();
            continue;
        }
        if (now_ms() - flushed > 100) { /* never quiet: no line waits longer */
            fflush(stdout);
            flushed = now_ms();
        }
        int n = (int)recv(s, buf, sizeof buf, 0);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            printf("lost %lld.%09ld %d\n", (long long)now.tv_sec, now.tv_nsec, errno);
            continue;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n);
             h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == newgen)
                printf("gen %lld.%09ld\n", (long long)now.tv_sec, now.tv_nsec);
        }
    }
}
