/*
 * icmp_loop: the machine's ICMP echo rate, measured the way IcmpBatch works, in plain C.
 *
 * Rounds over a target list: every target gets one echo request, sent with sendmmsg
 * in batches of 1024; replies are drained with recvmmsg (poll between bursts) until
 * every target answered or the round's 200 ms deadline passed.  Replies are counted
 * when they are echo replies carrying our identifier, with no per-target bookkeeping:
 * this is the anchor hafast's engine is compared with, not a prober.
 *
 *   icmp_loop TARGETS_FILE SECONDS [RATE]   (IPv4 addresses, one a line; needs root)
 *   prints: rounds=R sent=S received=N elapsed_ns=E
 *
 * With RATE, paced instead: every 10 ms tick (the engine's TimerQueue.GRAIN) sends the
 * echoes due at RATE per second round-robin over the list in one sendmmsg, and drains
 * replies with recvmmsg whenever poll says readable: the same batching the engine
 * gets at that rate, so the CPU per echo compares like with like.
 *
 * Built by benchmarks/test_bench_icmp.py with gcc -O2 into a temporary directory.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 1024
#define PKT_LEN 24   /* 8-byte ICMP header + 16-byte payload, as IcmpBatch's default */
#define RECV_SIZE 256
#define MAX_TARGETS 65536
#define SOL_RAW_ 255
#define ICMP_FILTER_ 1

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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

static struct sockaddr_in addrs[MAX_TARGETS];
static uint8_t spkt[BATCH][PKT_LEN];
static struct mmsghdr smsg[BATCH];
static struct iovec siov[BATCH];
static uint8_t rbuf[BATCH][RECV_SIZE];
static struct mmsghdr rmsg[BATCH];
static struct iovec riov[BATCH];
static struct sockaddr_in rname[BATCH];

/* Echo request number seq for ident into send slot j, addressed to addrs[target]. */
static void fill(int j, uint16_t ident, uint16_t seq, int target)
{
	uint8_t *p = spkt[j];
	memset(p, 0, PKT_LEN);
	p[0] = 8;
	p[4] = ident >> 8;
	p[5] = ident & 0xff;
	p[6] = seq >> 8;
	p[7] = seq & 0xff;
	uint16_t c = csum(p, PKT_LEN);
	p[2] = c >> 8;
	p[3] = c & 0xff;
	smsg[j].msg_hdr.msg_name = &addrs[target];
}

/* Count the echo replies (ours) waiting on fd, without blocking. */
static uint64_t drain(int fd, uint16_t ident)
{
	uint64_t got = 0;
	for (;;) {
		for (int j = 0; j < BATCH; j++)
			rmsg[j].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
		int m = recvmmsg(fd, rmsg, BATCH, MSG_DONTWAIT, NULL);
		if (m <= 0)
			return got;
		for (int j = 0; j < m; j++) {
			uint8_t *d = rbuf[j];
			size_t ihl = (d[0] & 0x0f) * 4;
			if (rmsg[j].msg_len >= ihl + 8 && d[ihl] == 0 &&
			    (uint16_t)(d[ihl + 4] << 8 | d[ihl + 5]) == ident)
				got++;
		}
		if (m < BATCH)
			return got;
	}
}

#define TICK_NS 10000000 /* 10 ms */

static int paced(int fd, uint16_t ident, int n, double rate, int64_t start, int64_t stop)
{
	uint64_t sent = 0, received = 0, ticks = 0;
	uint16_t seq = 0;
	int next = 0;
	int64_t tick = start;
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	for (;;) {
		int64_t now = now_ns();
		if (now >= stop)
			break;
		if (now >= tick) {
			long due = (long)((double)(now - start) / 1e9 * rate) - (long)sent;
			while (due > 0) {
				int k = due < BATCH ? (int)due : BATCH;
				for (int j = 0; j < k; j++) {
					fill(j, ident, seq++, next);
					next = (next + 1) % n;
				}
				int r = sendmmsg(fd, smsg, k, 0);
				if (r <= 0)
					break;
				sent += r;
				due -= r;
			}
			ticks++;
			tick += TICK_NS;
			continue;
		}
		int wait_ms = (int)((tick - now + 999999) / 1000000);
		if (poll(&pfd, 1, wait_ms) > 0)
			received += drain(fd, ident);
	}
	received += drain(fd, ident);
	printf("rounds=%llu sent=%llu received=%llu elapsed_ns=%lld\n",
	       (unsigned long long)ticks, (unsigned long long)sent,
	       (unsigned long long)received, (long long)(now_ns() - start));
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: %s TARGETS_FILE SECONDS [RATE]\n", argv[0]);
		return 2;
	}
	FILE *f = fopen(argv[1], "r");
	if (!f) {
		perror("open targets");
		return 1;
	}
	char line[128];
	int n = 0;
	while (n < MAX_TARGETS && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (!*line)
			continue;
		addrs[n].sin_family = AF_INET;
		if (inet_pton(AF_INET, line, &addrs[n].sin_addr) != 1) {
			fprintf(stderr, "bad address %s\n", line);
			return 1;
		}
		n++;
	}
	fclose(f);
	double seconds = atof(argv[2]);

	int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_ICMP);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	uint32_t filter = ~(uint32_t)(1u << 0); /* RFC 792: echo reply only */
	setsockopt(fd, SOL_RAW_, ICMP_FILTER_, &filter, sizeof filter);
	int rcvbuf = 4 << 20;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf))
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	uint16_t ident = (uint16_t)(getpid() * 2654435761u);

	for (int i = 0; i < BATCH; i++) {
		siov[i].iov_base = spkt[i];
		siov[i].iov_len = PKT_LEN;
		smsg[i].msg_hdr.msg_iov = &siov[i];
		smsg[i].msg_hdr.msg_iovlen = 1;
		smsg[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
		riov[i].iov_base = rbuf[i];
		riov[i].iov_len = RECV_SIZE;
		rmsg[i].msg_hdr.msg_iov = &riov[i];
		rmsg[i].msg_hdr.msg_iovlen = 1;
		rmsg[i].msg_hdr.msg_name = &rname[i];
	}

	uint64_t sent = 0, received = 0, rounds = 0;
	uint16_t seq = 0;
	int64_t start = now_ns(), stop = start + (int64_t)(seconds * 1e9);
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	if (argc == 4)
		return paced(fd, ident, n, atof(argv[3]), start, stop);
	while (now_ns() < stop) {
		int got = 0;
		/* send the whole list, draining whenever the socket buffer pushes back */
		for (int i = 0; i < n;) {
			int k = n - i < BATCH ? n - i : BATCH;
			for (int j = 0; j < k; j++)
				fill(j, ident, seq++, i + j);
			int r = sendmmsg(fd, smsg, k, 0);
			if (r < 0) {
				if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR) {
					perror("sendmmsg");
					return 1;
				}
				poll(&pfd, 1, 1);
				r = 0;
			}
			i += r;
			sent += r;
			/* opportunistic drain keeps the receive buffer from overflowing */
			got += drain(fd, ident);
		}
		int64_t deadline = now_ns() + 200000000;
		while (got < n && now_ns() < deadline) {
			if (poll(&pfd, 1, 10) > 0)
				got += drain(fd, ident);
		}
		received += got;
		rounds++;
	}
	printf("rounds=%llu sent=%llu received=%llu elapsed_ns=%lld\n",
	       (unsigned long long)rounds, (unsigned long long)sent,
	       (unsigned long long)received, (long long)(now_ns() - start));
	close(fd);
	return 0;
}
