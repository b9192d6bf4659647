/*
 * paced_loop: the C anchor for a health checker's steady state.  It does what a
 * checker does for each probe and nothing more, at a FIXED rate spread evenly over
 * time, because a check costs more CPU at a steady low rate (every wake-up pays the
 * syscall and cache cost alone) than in a burst: comparing hafast at delay_loop 1
 * with a flat-out loop would flatter the loop.
 *
 *   paced_loop tcp  TARGETS_FILE RATE SECONDS [PORT]   non-blocking connect, wait
 *                                                      for writable (epoll), close
 *   paced_loop icmp TARGETS_FILE RATE SECONDS          echo requests on one raw
 *                                                      socket (sendmmsg per tick),
 *                                                      replies drained (recvmmsg)
 *   prints: sent=S ok=O fail=F elapsed_ns=E cpu_ns=C   (cpu = user+sys of this process)
 *
 * Targets (IPv4, one a line) are walked round robin.  Probes start on a 1 ms tick
 * grid: a wake-up starts the probes due by then, so the rate is exact over any 10 ms.
 * Between probes the loop sleeps to the tick of the next due one (and TCP wakes for
 * its completions), never polling: at a low rate its CPU is what the probes cost, not
 * a thousand empty wake-ups a second (which would flatter any checker compared with
 * it).  A TCP probe still connecting after 2 s counts as a failure.  Built by
 * benchmarks/suite with gcc -O2 at run time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 65536
#define MAX_FD 262144
#define BATCH 1024
#define PKT_LEN 24
#define RECV_SIZE 256
#define TICK_NS 1000000LL
#define TCP_TIMEOUT_NS 2000000000LL

static struct sockaddr_in addrs[MAX_TARGETS];
static int64_t started_at[MAX_FD];
static int ntargets;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static void sleep_until(int64_t t)
{
	struct timespec ts = {t / 1000000000, t % 1000000000};
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* The tick on which the probe numbered `n` (from 0) falls due: probe n is due once
 * (t - t0) * rate >= n seconds, and starts on the first tick at or after that. */
static int64_t due_tick(int64_t t0, long long n, double rate)
{
	int64_t at = (int64_t)((double)n * 1e9 / rate);
	return t0 + (at + TICK_NS - 1) / TICK_NS * TICK_NS;
}

static int load_targets(const char *path, int port)
{
	FILE *f = fopen(path, "r");
	char line[64];
	if (!f)
		return -1;
	while (ntargets < MAX_TARGETS && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (!*line)
			continue;
		addrs[ntargets].sin_family = AF_INET;
		addrs[ntargets].sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, line, &addrs[ntargets].sin_addr) == 1)
			ntargets++;
	}
	fclose(f);
	return ntargets;
}

static long long sent, ok, fail, pending;

static void tcp_finish(int ep, int fd, int good)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	started_at[fd] = 0;
	pending--;
	if (good)
		ok++;
	else
		fail++;
}

static int run_tcp(double rate, double seconds)
{
	int ep = epoll_create1(0);
	struct epoll_event evs[1024];
	int64_t t0 = now_ns(), end = t0 + (int64_t)(seconds * 1e9);
	int64_t last_sweep = t0;
	long long next_target = 0;
	while (1) {
		int64_t t = now_ns();
		if (t >= end)
			break;
		/* probes due by now: rate * elapsed, minus those already started */
		long long due = (long long)((t - t0) * rate / 1e9) + 1 - sent;
		for (; due > 0; due--, sent++) {
			struct sockaddr_in *a = &addrs[next_target++ % ntargets];
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			if (fd < 0 || fd >= MAX_FD) {
				if (fd >= 0)
					close(fd);
				fail++;
				continue;
			}
			int r = connect(fd, (struct sockaddr *)a, sizeof *a);
			if (r == 0) {
				close(fd);
				ok++;
				continue;
			}
			if (errno != EINPROGRESS) {
				close(fd);
				fail++;
				continue;
			}
			struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
			started_at[fd] = t;
			epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			pending++;
		}
		/* sleep to the next due probe, the end, or (with probes out) the next
		 * timeout sweep, whichever is first; a completion wakes it earlier */
		int64_t wake = due_tick(t0, sent, rate);
		if (wake > end)
			wake = end;
		if (pending > 0 && wake > last_sweep + 100000000)
			wake = last_sweep + 100000000;
		int64_t left = wake - now_ns();
		int wait_ms = left > 0 ? (int)((left + 999999) / 1000000) : 0;
		int n = epoll_wait(ep, evs, 1024, wait_ms);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd, err = 0;
			socklen_t len = sizeof err;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
			tcp_finish(ep, fd, err == 0);
		}
		if (t - last_sweep > 100000000) {
			last_sweep = t;
			for (int fd = 0; fd < MAX_FD; fd++)
				if (started_at[fd] && t - started_at[fd] > TCP_TIMEOUT_NS)
					tcp_finish(ep, fd, 0);
		}
	}
	return 0;
}

static uint16_t csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	for (; n > 1; p += 2, n -= 2)
		s += (uint32_t)p[0] << 8 | p[1];
	if (n)
		s += (uint32_t)p[0] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static uint8_t spkt[BATCH][PKT_LEN];
static struct mmsghdr smsg[BATCH];
static struct iovec siov[BATCH];
static uint8_t rbuf[BATCH][RECV_SIZE];
static struct mmsghdr rmsg[BATCH];
static struct iovec riov[BATCH];

static void icmp_drain(int fd, uint16_t ident)
{
	for (;;) {
		for (int i = 0; i < BATCH; i++) {
			riov[i].iov_base = rbuf[i];
			riov[i].iov_len = RECV_SIZE;
			memset(&rmsg[i].msg_hdr, 0, sizeof rmsg[i].msg_hdr);
			rmsg[i].msg_hdr.msg_iov = &riov[i];
			rmsg[i].msg_hdr.msg_iovlen = 1;
		}
		int n = recvmmsg(fd, rmsg, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			uint8_t *p = rbuf[i];
			size_t ihl = (size_t)(p[0] & 0x0f) * 4;
			if (rmsg[i].msg_len < ihl + 8)
				continue;
			/* RFC 792: echo reply is type 0; our identifier in bytes 4-5 */
			if (p[ihl] == 0 && (p[ihl + 4] << 8 | p[ihl + 5]) == ident)
				ok++;
		}
	}
}

static int run_icmp(double rate, double seconds)
{
	int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_ICMP);
	if (fd < 0) {
		perror("raw socket (needs root)");
		return 1;
	}
	int buf = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
	uint16_t ident = (uint16_t)getpid();
	int64_t t0 = now_ns(), end = t0 + (int64_t)(seconds * 1e9);
	long long next_target = 0;
	uint16_t seq = 0;
	while (now_ns() < end) {
		int64_t t = now_ns();
		long long due = (long long)((t - t0) * rate / 1e9) + 1 - sent;
		while (due > 0) {
			int k = due > BATCH ? BATCH : (int)due;
			for (int i = 0; i < k; i++) {
				uint8_t *p = spkt[i];
				memset(p, 0, PKT_LEN);
				p[0] = 8; /* RFC 792: echo request */
				p[4] = ident >> 8;
				p[5] = ident & 0xff;
				seq++;
				p[6] = seq >> 8;
				p[7] = seq & 0xff;
				uint16_t c = csum(p, PKT_LEN);
				p[2] = c >> 8;
				p[3] = c & 0xff;
				siov[i].iov_base = p;
				siov[i].iov_len = PKT_LEN;
				memset(&smsg[i].msg_hdr, 0, sizeof smsg[i].msg_hdr);
				smsg[i].msg_hdr.msg_name = &addrs[next_target++ % ntargets];
				smsg[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
				smsg[i].msg_hdr.msg_iov = &siov[i];
				smsg[i].msg_hdr.msg_iovlen = 1;
			}
			int n = sendmmsg(fd, smsg, (unsigned)k, 0);
			if (n <= 0) {
				fail += k;
				n = k;
			}
			sent += n;
			due -= n;
		}
		icmp_drain(fd, ident);
		/* replies wait in the socket buffer until the next send: one wake-up each */
		int64_t wake = due_tick(t0, sent, rate);
		sleep_until(wake < end ? wake : end);
	}
	/* replies still on their way count; the last tick's are a few µs out */
	sleep_until(now_ns() + 20000000);
	icmp_drain(fd, ident);
	fail += sent - ok > fail ? sent - ok - fail : 0;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s tcp|icmp TARGETS_FILE RATE SECONDS [PORT]\n", argv[0]);
		return 2;
	}
	int port = argc > 5 ? atoi(argv[5]) : 80;
	if (load_targets(argv[2], port) <= 0) {
		fprintf(stderr, "no targets in %s\n", argv[2]);
		return 2;
	}
	double rate = atof(argv[3]), seconds = atof(argv[4]);
	int64_t c0 = cpu_ns(), t0 = now_ns();
	int rc = strcmp(argv[1], "icmp") == 0 ? run_icmp(rate, seconds) : run_tcp(rate, seconds);
	printf("sent=%lld ok=%lld fail=%lld elapsed_ns=%lld cpu_ns=%lld\n", sent, ok, fail,
	       (long long)(now_ns() - t0), (long long)(cpu_ns() - c0));
	return rc;
}
