/* probe_client: the client side of the scenario tests.
 *
 *   probe_client tcp|udp|sctp ADDR:PORT [--count N] [--timeout-ms T]
 *                                       [--hold-ms H [--reset]] [--send TEXT] [--bind ADDR]
 *
 * Each probe opens a fresh socket, reads the backend's one-line answer
 * ("NAME CLIENT:PORT", see echo_server.c) and prints it. --count N makes N
 * sequential probes, so a script can count how often each backend answered.
 * --send TEXT sends TEXT and, for TCP, also prints the echoed line.
 * --bind ADDR picks the source address (port chosen by the kernel), so a
 * test can play many clients from one namespace (127.0.0.0/8 is all local).
 * --hold-ms H (TCP, one connection) keeps the connection open for H ms,
 * sending a numbered ping every 100 ms and checking each echo; with --reset
 * it ends the connection with a TCP reset instead of a FIN (no TIME_WAIT:
 * IPVS then forgets the connection within seconds, not minutes).
 *
 * sctp is a one-to-one style SCTP association (SOCK_STREAM, IPPROTO_SCTP)
 * handled exactly like a TCP connection, --send and --hold-ms included.
 * The socket has IP_RECVERR (IPV6_RECVERR) set: without it Linux SCTP keeps
 * an ICMP port unreachable as a soft error and retransmits INIT until the
 * timeout, so a rejected service would look silent instead of refused. Even
 * with it, the ICMP answering the first INIT usually arrives while connect()
 * still holds the socket lock (over veth the whole round trip runs inside
 * the syscall) and is dropped (LockDroppedIcmps); the one answering the
 * first retransmission counts. So the INIT timer starts at 200 ms instead
 * of 3 s (SCTP_RTOINFO), and a refusal shows in about 200 ms. An ABORT in
 * answer to the INIT (no listener) is refused at once.
 *
 * Exit status, so scripts can tell failures apart:
 *   0 every probe answered, 2 refused or reset, 3 timed out, 1 anything else.
 * The first failing probe ends the run. Every wait is bounded by T
 * (default 2000 ms) per step.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h> /* IPPROTO_SCTP, IP_RECVERR */
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/sctp.h> /* SCTP_RTOINFO: kernel UAPI header, no libsctp */

#include "inet.h"

enum {
	EXIT_OK = 0,
	EXIT_OTHER = 1,
	EXIT_REFUSED = 2,
	EXIT_TIMEOUT = 3,
};

struct probe {
	bool udp;
	bool sctp; /* stream semantics, so every tcp path serves it */
	struct inet_addr addr;
	uint16_t port;
	long count;
	int timeout_ms;
	long hold_ms;
	bool reset;       /* end a held connection with RST (SO_LINGER 0) */
	const char *send_text;
	struct inet_addr bind_addr; /* family 0: let the kernel choose */
};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Map a negative errno to this program's exit status, and say what happened. */
static int fail(int err, const char *what)
{
	fprintf(stderr, "probe_client: %s: %s\n", what, strerror(-err));
	if (err == -ECONNREFUSED || err == -ECONNRESET)
		return EXIT_REFUSED;
	if (err == -ETIMEDOUT)
		return EXIT_TIMEOUT;
	return EXIT_OTHER;
}

/* Wait until fd has the events in `events` or until deadline (ms, monotonic).
 * Returns 0, -ETIMEDOUT, or the socket's pending error. */
static int wait_fd(int fd, short events, long deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		long left = deadline - now_ms();
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)left);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ETIMEDOUT;
		if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) {
			int err = 0;
			socklen_t sl = sizeof(err);

			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl);
			/* POLLHUP with readable data still lets the caller read. */
			if (err)
				return -err;
			if (!(p.revents & events))
				return 0;
		}
		return 0;
	}
}

/* Open a socket and connect it to the target, within the deadline.
 * For UDP connect() only fixes the peer, so an ICMP port unreachable shows
 * up as ECONNREFUSED on a later recv. Returns the fd or -errno. */
static int open_connected(const struct probe *p, long deadline)
{
	struct sockaddr_storage ss;
	socklen_t sl = inet_to_sockaddr(&p->addr, p->port, &ss);
	int fd, r;

	fd = socket(p->addr.family, (p->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    p->sctp ? IPPROTO_SCTP : 0);
	if (fd == -1)
		return -errno;
	if (p->sctp) {
		/* ICMP errors become hard errors, seen at the first INIT
		 * retransmission (see the top of the file). */
		struct sctp_rtoinfo rto = { .srto_initial = 200, .srto_min = 100 };
		int one = 1;

		if (p->addr.family == AF_INET6)
			r = setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof(one));
		else
			r = setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one));
		if (r == 0)
			r = setsockopt(fd, IPPROTO_SCTP, SCTP_RTOINFO, &rto, sizeof(rto));
		if (r == -1) {
			r = -errno;
			goto out;
		}
	}
	if (p->bind_addr.family) {
		struct sockaddr_storage bs;
		socklen_t bl = inet_to_sockaddr(&p->bind_addr, 0, &bs);

		if (bind(fd, (struct sockaddr *)&bs, bl) == -1) {
			r = -errno;
			goto out;
		}
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) == -1) {
		if (errno != EINPROGRESS) {
			r = -errno;
			goto out;
		}
		r = wait_fd(fd, POLLOUT, deadline);
		if (r < 0)
			goto out;
		{
			int err = 0;
			socklen_t el = sizeof(err);

			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
			if (err) {
				r = -err;
				goto out;
			}
		}
	}
	return fd;
out:
	close(fd);
	return r;
}

/* Read one '\n'-terminated line (without the '\n') from a stream socket.
 * Returns its length, -EPIPE if the peer closed first, or -errno. */
static int read_line(int fd, char *buf, size_t size, long deadline)
{
	size_t len = 0;

	while (len + 1 < size) {
		ssize_t n;
		int r = wait_fd(fd, POLLIN, deadline);

		if (r < 0)
			return r;
		/* One byte at a time, so the next line stays in the socket. */
		n = recv(fd, buf + len, 1, 0);
		if (n == 0)
			return -EPIPE;
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		if (buf[len] == '\n') {
			buf[len] = '\0';
			return (int)len;
		}
		len++;
	}
	buf[len] = '\0';
	return (int)len;
}

static int send_all(int fd, const char *data, size_t len, long deadline)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EAGAIN) {
				int r = wait_fd(fd, POLLOUT, deadline);
				if (r < 0)
					return r;
				continue;
			}
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)n;
	}
	return 0;
}

static int tcp_once(const struct probe *p)
{
	long deadline = now_ms() + p->timeout_ms;
	char line[1024];
	int fd, r;

	fd = open_connected(p, deadline);
	if (fd < 0)
		return fail(fd, "connect");
	r = read_line(fd, line, sizeof(line), deadline);
	if (r < 0) {
		close(fd);
		return fail(r, r == -EPIPE ? "connection closed before the answer" : "read answer");
	}
	printf("%s\n", line);
	if (p->send_text) {
		char msg[1024];
		int len = snprintf(msg, sizeof(msg), "%s\n", p->send_text);

		r = send_all(fd, msg, (size_t)len, deadline);
		if (r >= 0)
			r = read_line(fd, line, sizeof(line), deadline);
		if (r < 0) {
			close(fd);
			return fail(r, "echo of --send text");
		}
		printf("%s\n", line);
	}
	fflush(stdout);
	close(fd);
	return EXIT_OK;
}

/* One connection held open for hold_ms, with a ping every 100 ms. */
static int tcp_hold(const struct probe *p)
{
	long deadline = now_ms() + p->timeout_ms;
	long end, pings = 0;
	char line[1024];
	int fd, r;

	fd = open_connected(p, deadline);
	if (fd < 0)
		return fail(fd, "connect");
	r = read_line(fd, line, sizeof(line), deadline);
	if (r < 0) {
		close(fd);
		return fail(r, "read answer");
	}
	/* Printed at once: the script reads it while the hold goes on. */
	printf("%s\n", line);
	fflush(stdout);
	end = now_ms() + p->hold_ms;
	while (now_ms() < end) {
		char msg[64], want[64];
		int len;

		usleep(100 * 1000);
		len = snprintf(msg, sizeof(msg), "ping %ld\n", ++pings);
		snprintf(want, sizeof(want), "ping %ld", pings);
		deadline = now_ms() + p->timeout_ms;
		r = send_all(fd, msg, (size_t)len, deadline);
		if (r >= 0)
			r = read_line(fd, line, sizeof(line), deadline);
		if (r < 0) {
			fprintf(stderr, "probe_client: held connection broke at ping %ld\n", pings);
			close(fd);
			return fail(r, r == -EPIPE ? "peer closed the held connection" : "ping");
		}
		if (strcmp(line, want) != 0) {
			fprintf(stderr, "probe_client: ping %ld echoed as '%s'\n", pings, line);
			close(fd);
			return EXIT_OTHER;
		}
	}
	printf("held %ld ms, %ld pings echoed\n", p->hold_ms, pings);
	fflush(stdout);
	if (p->reset) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(fd);
	return EXIT_OK;
}

static int udp_once(const struct probe *p)
{
	long deadline = now_ms() + p->timeout_ms;
	const char *text = p->send_text ? p->send_text : "probe";
	char buf[2048];
	ssize_t n;
	int fd, r;

	fd = open_connected(p, deadline);
	if (fd < 0)
		return fail(fd, "udp socket");
	if (send(fd, text, strlen(text), 0) == -1) {
		r = -errno;
		close(fd);
		return fail(r, "udp send");
	}
	for (;;) {
		r = wait_fd(fd, POLLIN, deadline);
		if (r < 0)
			break;
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		buf[n] = '\0';
		if (n > 0 && buf[n - 1] == '\n')
			buf[n - 1] = '\0';
		printf("%s\n", buf);
		fflush(stdout);
		close(fd);
		return EXIT_OK;
	}
	close(fd);
	return fail(r, "udp answer");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: probe_client tcp|udp|sctp ADDR:PORT [--count N] [--timeout-ms T] [--hold-ms H [--reset]] [--send TEXT] [--bind ADDR]\n"
		   "exit: 0 ok, 2 refused/reset, 3 timeout, 1 other error\n");
}

static bool parse_long(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'c' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "hold-ms", required_argument, NULL, 'H' },
		{ "send", required_argument, NULL, 's' },
		{ "bind", required_argument, NULL, 'b' },
		{ "reset", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct probe p = { .count = 1, .timeout_ms = 2000 };
	long v;
	int c;

	while ((c = getopt_long(argc, argv, "c:t:H:s:b:Rh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (!parse_long(optarg, 1, 100000, &p.count))
				goto bad;
			break;
		case 't':
			if (!parse_long(optarg, 1, 600000, &v))
				goto bad;
			p.timeout_ms = (int)v;
			break;
		case 'H':
			if (!parse_long(optarg, 1, 3600000, &p.hold_ms))
				goto bad;
			break;
		case 's':
			p.send_text = optarg;
			break;
		case 'b':
			if (inet_addr_parse(optarg, &p.bind_addr) < 0)
				goto bad;
			break;
		case 'R':
			p.reset = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (argc - optind != 2)
		goto bad;
	if (strcmp(argv[optind], "udp") == 0)
		p.udp = true;
	else if (strcmp(argv[optind], "sctp") == 0)
		p.sctp = true;
	else if (strcmp(argv[optind], "tcp") != 0)
		goto bad;
	if (inet_endpoint_parse(argv[optind + 1], &p.addr, &p.port) < 0) {
		fprintf(stderr, "probe_client: bad target '%s' (want ADDR:PORT or [ADDR]:PORT)\n", argv[optind + 1]);
		return EXIT_OTHER;
	}
	if (p.hold_ms && p.udp) {
		fprintf(stderr, "probe_client: --hold-ms is for tcp and sctp\n");
		return EXIT_OTHER;
	}
	signal(SIGPIPE, SIG_IGN);
	if (p.hold_ms)
		return tcp_hold(&p);
	for (long i = 0; i < p.count; i++) {
		int r = p.udp ? udp_once(&p) : tcp_once(&p);

		if (r != EXIT_OK)
			return r;
	}
	return EXIT_OK;
bad:
	usage(stderr);
	return EXIT_OTHER;
}
