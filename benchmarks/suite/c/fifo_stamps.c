/* The notify FIFO's stamper (benchmarks/suite/stamps.py): prints "SEC.NSEC LINE" for
 * every line read from the descriptor argv[1] (a FIFO opened O_NONBLOCK), stamped
 * with CLOCK_REALTIME (Python's time.time()) as soon as read returns.
 *
 * In C, not Python: it runs at SCHED_FIFO priority, so each line the daemon writes
 * wakes it at once, on the writer's CPU as often as not, and the writer waits until
 * it sleeps again.  The Python stamper took ~70 us of the writer's time per line
 * (six lines: 473 us p50 against 73 us with a reader at normal priority); this one
 * is awake for a few microseconds. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char out[1 << 20]; /* stdout's buffer: flushed when the FIFO is quiet */

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fifo_stamps FD\n");
        return 2;
    }
    int fd = atoi(argv[1]);
    setvbuf(stdout, out, _IOFBF, sizeof out);
    static char buf[1 << 16];
    static char line[1 << 16];
    size_t have = 0; /* bytes of an unfinished line kept in `line` */
    long long flushed = now_ms();
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    for (;;) {
        /* the stamps go out when the FIFO has been quiet for 10 ms: a write to the
         * suite's pipe per line was a second wake-up on the daemon's time */
        if (poll(&pfd, 1, 10) == 0) {
            fflush(stdout);
            flushed = now_ms();
            continue;
        }
        if (now_ms() - flushed > 100) { /* never quiet: no line waits longer */
            fflush(stdout);
            flushed = now_ms();
        }
        ssize_t n = read(fd, buf, sizeof buf);
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
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
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
