/* relay_bench: traffic generator and sink for the relay benchmark (relay.sh).
 *
 *   relay_bench server --listen ADDR:PORT [--threads N]
 *   relay_bench bulk   --target ADDR:PORT [--conns P] [--bytes B] [--max-seconds S]
 *   relay_bench crr    --target ADDR:PORT [--clients C] [--conns N] [--size S]
 *                      [--max-seconds S]
 *
 * Wire protocol, so the same server serves both measurements: the client
 * sends a 12-byte header (u64 bytes it will send next, u32 bytes it wants
 * back, both big endian), then that many bytes; the server discards them and
 * answers with the requested number of bytes, then waits for the next header
 * or EOF. The transfer is acknowledged by the answer, so no measurement
 * depends on the path relaying a half-close.
 *
 * bulk: P parallel connections each send B/P bytes and wait for an 8-byte
 *   answer; prints "bulk bytes=.. seconds=.. gbps=..".
 * crr: C client threads each open, request (S bytes), read the S-byte answer
 *   and close, until N connections are done in total; prints
 *   "crr conns=.. errors=.. seconds=.. cps=.. p50_us=.. p99_us=..".
 * Every socket has 5 s send/receive timeouts and every run stops after
 * --max-seconds (default 30), reporting what was done by then.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "inet.h"

#define HEADER_LEN 12
#define CHUNK (256 * 1024)
#define IO_TIMEOUT_S 5

struct options {
	struct inet_addr addr;
	uint16_t port;
	unsigned threads;      /* server threads */
	unsigned conns;        /* bulk: parallel connections; crr: total connections */
	unsigned clients;      /* crr: concurrent client threads */
	uint64_t bytes;        /* bulk: total bytes */
	uint32_t size;         /* crr: request and answer size */
	double max_seconds;
};

static struct options opt = {
	.threads = 2,
	.conns = 0,
	.clients = 4,
	.bytes = 1ULL << 30,
	.size = 64,
	.max_seconds = 30,
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void header_put(uint8_t *h, uint64_t send_len, uint32_t reply_len)
{
	uint64_t a = htobe64(send_len);
	uint32_t b = htobe32(reply_len);

	memcpy(h, &a, 8);
	memcpy(h + 8, &b, 4);
}

/* ---- server ---------------------------------------------------------- */

enum conn_state { READ_HEADER, READ_BODY, WRITE_REPLY };

struct srv_conn {
	int fd;
	enum conn_state state;
	uint8_t header[HEADER_LEN];
	size_t header_got;
	uint64_t body_left;
	uint32_t reply_left;
	bool want_out;  /* registered for EPOLLOUT after a full socket buffer */
};

static uint8_t zeros[CHUNK];

/* Advance one connection as far as the socket allows. Returns 0 to keep it,
 * or -1 when it is finished (EOF or error) and must be closed. */
static int srv_conn_run(struct srv_conn *c, uint8_t *scratch, int epfd)
{
	/* Bounded: a connection yields after 64 steps so others get a turn. */
	for (int step = 0; step < 64; step++) {
		ssize_t n;

		switch (c->state) {
		case READ_HEADER:
			n = recv(c->fd, c->header + c->header_got, HEADER_LEN - c->header_got, 0);
			if (n == 0)
				return -1;
			if (n == -1)
				return errno == EAGAIN ? 0 : -1;
			c->header_got += (size_t)n;
			if (c->header_got == HEADER_LEN) {
				uint64_t a;
				uint32_t b;

				memcpy(&a, c->header, 8);
				memcpy(&b, c->header + 8, 4);
				c->body_left = be64toh(a);
				c->reply_left = be32toh(b);
				c->header_got = 0;
				c->state = c->body_left ? READ_BODY : WRITE_REPLY;
			}
			break;
		case READ_BODY:
			n = recv(c->fd, scratch, c->body_left < CHUNK ? c->body_left : CHUNK, 0);
			if (n == 0)
				return -1;
			if (n == -1)
				return errno == EAGAIN ? 0 : -1;
			c->body_left -= (uint64_t)n;
			if (!c->body_left)
				c->state = WRITE_REPLY;
			break;
		case WRITE_REPLY:
			if (!c->reply_left) {
				c->state = READ_HEADER;
				break;
			}
			n = send(c->fd, zeros, c->reply_left < CHUNK ? c->reply_left : CHUNK, MSG_NOSIGNAL);
			if (n == -1) {
				if (errno != EAGAIN)
					return -1;
				struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
				if (!c->want_out)
					epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
				c->want_out = true;
				return 0;
			}
			c->reply_left -= (uint32_t)n;
			if (!c->reply_left) {
				struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
				if (c->want_out)
					epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
				c->want_out = false;
				c->state = READ_HEADER;
			}
			break;
		}
	}
	return 0;
}

static void *srv_thread(void *arg)
{
	int lfd = *(int *)arg, epfd = epoll_create1(EPOLL_CLOEXEC);
	uint8_t *scratch = malloc(CHUNK);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	if (epfd == -1 || !scratch || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) == -1) {
		perror("relay_bench server: epoll");
		exit(1);
	}
	for (;;) {
		struct epoll_event evs[128];
		int n = epoll_wait(epfd, evs, 128, -1);

		for (int i = 0; i < n; i++) {
			struct srv_conn *c = evs[i].data.ptr;

			if (!c) {
				for (int k = 0; k < 64; k++) {
					int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					struct epoll_event cev = { .events = EPOLLIN };

					if (fd == -1)
						break;
					c = calloc(1, sizeof(*c));
					if (!c) {
						close(fd);
						continue;
					}
					c->fd = fd;
					cev.data.ptr = c;
					if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev) == -1) {
						close(fd);
						free(c);
					}
				}
				continue;
			}
			if (srv_conn_run(c, scratch, epfd) < 0) {
				close(c->fd);
				free(c);
			}
		}
	}
	return NULL;
}

static int run_server(void)
{
	pthread_t tids[64];
	int fds[64];

	if (opt.threads > 64)
		opt.threads = 64;
	for (unsigned i = 0; i < opt.threads; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = inet_to_sockaddr(&opt.addr, opt.port, &ss);
		int one = 1;

		fds[i] = socket(opt.addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fds[i] == -1 ||
		    setsockopt(fds[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
		    setsockopt(fds[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
		    bind(fds[i], (struct sockaddr *)&ss, sl) == -1 || listen(fds[i], 4096) == -1) {
			perror("relay_bench server: listen");
			return 1;
		}
	}
	for (unsigned i = 0; i < opt.threads; i++)
		if (pthread_create(&tids[i], NULL, srv_thread, &fds[i]) != 0) {
			fprintf(stderr, "relay_bench server: pthread_create failed\n");
			return 1;
		}
	printf("ready\n");
	fflush(stdout);
	/* Runs until killed; the script sends SIGTERM. */
	pthread_join(tids[0], NULL);
	return 0;
}

/* ---- clients --------------------------------------------------------- */

static double deadline_s;

/* Blocking connect with the I/O timeouts set first (Linux applies
 * SO_SNDTIMEO to connect). Returns the fd or -errno. */
static int client_connect(void)
{
	struct sockaddr_storage ss;
	socklen_t sl = inet_to_sockaddr(&opt.addr, opt.port, &ss);
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	int one = 1, fd, r;

	fd = socket(opt.addr.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&ss, sl) == -1) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int recv_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, 0);

		if (n == 0)
			return -EPIPE;
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

struct bulk_arg {
	uint64_t bytes;
	uint64_t done;
	int err;
};

static void *bulk_thread(void *arg)
{
	struct bulk_arg *a = arg;
	uint8_t h[HEADER_LEN], ack[8];
	uint8_t *buf = calloc(1, CHUNK);
	int fd = client_connect();

	if (fd < 0 || !buf) {
		a->err = fd < 0 ? fd : -ENOMEM;
		goto out;
	}
	header_put(h, a->bytes, sizeof(ack));
	a->err = send_all(fd, h, sizeof(h));
	while (!a->err && a->done < a->bytes) {
		size_t n = a->bytes - a->done < CHUNK ? (size_t)(a->bytes - a->done) : CHUNK;

		if (now_s() > deadline_s) {
			a->err = -ETIMEDOUT;
			break;
		}
		a->err = send_all(fd, buf, n);
		if (!a->err)
			a->done += n;
	}
	if (!a->err)
		a->err = recv_all(fd, ack, sizeof(ack));
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static int run_bulk(void)
{
	unsigned n = opt.conns ? opt.conns : 4;
	struct bulk_arg args[64];
	pthread_t tids[64];
	uint64_t total = 0;
	double t0, t1;
	int err = 0;

	if (n > 64)
		n = 64;
	t0 = now_s();
	deadline_s = t0 + opt.max_seconds;
	for (unsigned i = 0; i < n; i++) {
		args[i] = (struct bulk_arg){ .bytes = opt.bytes / n };
		if (pthread_create(&tids[i], NULL, bulk_thread, &args[i]) != 0)
			return 1;
	}
	for (unsigned i = 0; i < n; i++) {
		pthread_join(tids[i], NULL);
		total += args[i].done;
		if (args[i].err && !err)
			err = args[i].err;
	}
	t1 = now_s();
	if (err)
		fprintf(stderr, "relay_bench bulk: %s\n", strerror(-err));
	printf("bulk bytes=%llu seconds=%.3f gbps=%.3f errors=%d\n", (unsigned long long)total,
	       t1 - t0, (double)total * 8 / (t1 - t0) / 1e9, err ? 1 : 0);
	return err ? 1 : 0;
}

static atomic_uint crr_next;
static atomic_uint crr_errors;
static uint32_t *crr_lat_us;

static void *crr_thread(void *arg)
{
	size_t len = HEADER_LEN + opt.size;
	uint8_t *req = calloc(1, len), *ans = malloc(opt.size ? opt.size : 1);

	(void)arg;
	if (!req || !ans)
		goto out;
	header_put(req, opt.size, opt.size);
	for (;;) {
		unsigned i = atomic_fetch_add(&crr_next, 1);
		double t0;
		int fd, r;

		if (i >= opt.conns || now_s() > deadline_s)
			break;
		t0 = now_s();
		fd = client_connect();
		if (fd < 0) {
			atomic_fetch_add(&crr_errors, 1);
			crr_lat_us[i] = UINT32_MAX;
			continue;
		}
		r = send_all(fd, req, len);
		if (!r)
			r = recv_all(fd, ans, opt.size);
		close(fd);
		if (r) {
			atomic_fetch_add(&crr_errors, 1);
			crr_lat_us[i] = UINT32_MAX;
			continue;
		}
		crr_lat_us[i] = (uint32_t)((now_s() - t0) * 1e6);
	}
out:
	free(req);
	free(ans);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int run_crr(void)
{
	unsigned n = opt.clients > 256 ? 256 : opt.clients, done, ok = 0;
	pthread_t tids[256];
	double t0, t1;

	if (!opt.conns)
		opt.conns = 5000;
	crr_lat_us = calloc(opt.conns, sizeof(*crr_lat_us));
	if (!crr_lat_us)
		return 1;
	for (unsigned i = 0; i < opt.conns; i++)
		crr_lat_us[i] = UINT32_MAX;
	t0 = now_s();
	deadline_s = t0 + opt.max_seconds;
	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&tids[i], NULL, crr_thread, NULL) != 0)
			return 1;
	for (unsigned i = 0; i < n; i++)
		pthread_join(tids[i], NULL);
	t1 = now_s();
	done = atomic_load(&crr_next);
	if (done > opt.conns)
		done = opt.conns;
	/* Unfinished and failed slots hold UINT32_MAX and sort last. */
	qsort(crr_lat_us, opt.conns, sizeof(*crr_lat_us), cmp_u32);
	while (ok < opt.conns && crr_lat_us[ok] != UINT32_MAX)
		ok++;
	printf("crr conns=%u errors=%u seconds=%.3f cps=%.0f p50_us=%u p99_us=%u\n", ok,
	       atomic_load(&crr_errors), t1 - t0, (double)ok / (t1 - t0),
	       ok ? crr_lat_us[ok / 2] : 0, ok ? crr_lat_us[(size_t)ok * 99 / 100] : 0);
	free(crr_lat_us);
	(void)done;
	return ok == opt.conns ? 0 : 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: relay_bench server --listen ADDR:PORT [--threads N]\n"
		   "       relay_bench bulk --target ADDR:PORT [--conns P] [--bytes B] [--max-seconds S]\n"
		   "       relay_bench crr --target ADDR:PORT [--clients C] [--conns N] [--size S] [--max-seconds S]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "target", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "conns", required_argument, NULL, 'n' },
		{ "clients", required_argument, NULL, 'c' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "size", required_argument, NULL, 's' },
		{ "max-seconds", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *mode;
	bool have_addr = false;
	int c;

	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "l:t:n:c:b:s:m:h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (inet_endpoint_parse(optarg, &opt.addr, &opt.port) < 0) {
				fprintf(stderr, "relay_bench: bad address '%s'\n", optarg);
				return 1;
			}
			have_addr = true;
			break;
		case 't':
			opt.threads = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			opt.conns = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			opt.clients = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			opt.bytes = strtoull(optarg, NULL, 10);
			break;
		case 's':
			opt.size = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'm':
			opt.max_seconds = strtod(optarg, NULL);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (!have_addr || !opt.threads || !opt.clients || opt.max_seconds <= 0 ||
	    opt.size > CHUNK) {
		usage(stderr);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(mode, "server") == 0)
		return run_server();
	if (strcmp(mode, "bulk") == 0)
		return run_bulk();
	if (strcmp(mode, "crr") == 0)
		return run_crr();
	usage(stderr);
	return 1;
}
