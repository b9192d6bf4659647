/*
 * tcp_connect_loop: what a TCP_CHECK costs in plain C, paced to a given rate.
 *
 * Walks a target list round-robin, starting non-blocking connects at RATE per second
 * (checked every millisecond), waits for them with epoll, reads SO_ERROR when the
 * socket turns writable, and closes with SO_LINGER {1, 0} (a RST, as hafast's
 * TCP_CHECK does).  A connect still pending after 1 s is abandoned.  No per-target
 * state beyond the socket: this is the anchor the engine is compared with, at the
 * same rate, so the CPU per check is comparable.
 *
 *   tcp_connect_loop TARGETS_FILE PORT RATE SECONDS
 *   prints: started=S ok=O failed=F timeouts=T elapsed_ns=E
 *
 * Built by benchmarks/test_bench_checks.py with gcc -O2 into a temporary directory.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 65536
#define MAX_FD 65536
#define EVENTS 1024

static struct sockaddr_in addrs[MAX_TARGETS];
static int64_t started_at[MAX_FD];

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void close_rst(int fd)
{
	struct linger lg = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s TARGETS_FILE PORT RATE SECONDS\n", argv[0]);
		return 2;
	}
	FILE *f = fopen(argv[1], "r");
	if (!f) {
		perror("targets");
		return 2;
	}
	int port = atoi(argv[2]);
	double rate = atof(argv[3]);
	double seconds = atof(argv[4]);
	char line[64];
	int n = 0;
	while (n < MAX_TARGETS && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (!*line)
			continue;
		addrs[n].sin_family = AF_INET;
		addrs[n].sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, line, &addrs[n].sin_addr) != 1)
			continue;
		n++;
	}
	fclose(f);
	if (!n)
		return 2;

	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event evs[EVENTS];
	long started = 0, ok = 0, failed = 0, timeouts = 0, inflight = 0;
	int next = 0;
	int64_t t0 = now_ns(), end = t0 + (int64_t)(seconds * 1e9);
	int64_t last_sweep = t0;

	for (;;) {
		int64_t now = now_ns();
		if (now >= end)
			break;
		long due = (long)((double)(now - t0) / 1e9 * rate) - started;
		for (; due > 0; due--) {
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fd < 0 || fd >= MAX_FD) {
				if (fd >= 0)
					close(fd);
				failed++;
				started++;
				continue;
			}
			started++;
			int r = connect(fd, (struct sockaddr *)&addrs[next], sizeof addrs[next]);
			next = (next + 1) % n;
			if (r == 0) {
				ok++;
				close_rst(fd);
				continue;
			}
			if (errno != EINPROGRESS) {
				failed++;
				close(fd);
				continue;
			}
			struct epoll_event ev = { .events = EPOLLOUT, .data.fd = fd };
			epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			started_at[fd] = now;
			inflight++;
		}
		int k = epoll_wait(ep, evs, EVENTS, 1);
		for (int i = 0; i < k; i++) {
			int fd = evs[i].data.fd, err = 0;
			socklen_t len = sizeof err;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err)
				failed++;
			else
				ok++;
			epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
			started_at[fd] = 0;
			close_rst(fd);
			inflight--;
		}
		if (now - last_sweep > 100000000 && inflight) {
			last_sweep = now;
			for (int fd = 0; fd < MAX_FD; fd++) {
				if (started_at[fd] && now - started_at[fd] > 1000000000) {
					epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
					started_at[fd] = 0;
					close_rst(fd);
					timeouts++;
					inflight--;
				}
			}
		}
	}
	printf("started=%ld ok=%ld failed=%ld timeouts=%ld elapsed_ns=%lld\n", started, ok, failed,
	       timeouts, (long long)(now_ns() - t0));
	return 0;
}
