/* echo_server: a named backend for scenario tests and the demo.
 *
 *   echo_server --name NAME --listen ADDR:PORT [--listen ...] [--tcp] [--udp] [--sctp]
 *
 * Every TCP connection and every UDP datagram is answered with one line
 * "NAME CLIENT_ADDR:CLIENT_PORT\n", so a test can tell which backend it
 * reached and which source address that backend saw. A TCP connection is
 * then an echo service until the client closes it, which lets tests keep a
 * connection alive across a configuration change.
 *
 * --sctp adds one-to-one style SCTP listeners (SOCK_STREAM, IPPROTO_SCTP),
 * served exactly like TCP connections. SCTP is never on by default: many
 * kernels (this project's development machines among them) have no SCTP
 * sockets, and the TCP/UDP tests must not depend on it. For SCTP the
 * CLIENT_ADDR is the association's primary peer address (the source of the
 * INIT as the server saw it).
 *
 * One thread, one epoll set, non-blocking sockets. Prints "ready" on stdout
 * once every listener is bound, and exits 0 on SIGTERM or SIGINT.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h> /* IPPROTO_SCTP */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "inet.h"

#define MAX_LISTEN 16
#define ECHO_BUF 16384

/* What an epoll entry points at; the kind decides how an event is handled. */
enum item_kind {
	ITEM_SIGNAL,
	ITEM_TCP_LISTENER, /* also SCTP one-to-one listeners: same accept path */
	ITEM_UDP_SOCKET,
	ITEM_CONN,
};

struct item {
	enum item_kind kind;
	int fd;
	/* For ITEM_CONN: bytes read but not yet written back. While pending > 0
	 * the connection waits for EPOLLOUT and stops reading, so a client
	 * that never reads cannot make the server buffer without bound. */
	size_t pending;
	size_t sent;
	char buf[];
};

static const char *server_name;
static int epoll_fd = -1;

static struct item *item_new(enum item_kind kind, int fd, size_t bufsize)
{
	struct item *it = calloc(1, sizeof(*it) + bufsize);

	if (!it)
		return NULL;
	it->kind = kind;
	it->fd = fd;
	return it;
}

static int watch(struct item *it, uint32_t events, int op)
{
	struct epoll_event ev = { .events = events, .data.ptr = it };

	return epoll_ctl(epoll_fd, op, it->fd, &ev) == -1 ? -errno : 0;
}

/* Open a listener (TCP, or SCTP with protocol IPPROTO_SCTP) or a bound
 * socket (UDP) for addr:port. IP_FREEBIND lets a test start backends before
 * their addresses are up. */
static int open_socket(const struct inet_addr *addr, uint16_t port, int type, int protocol)
{
	struct sockaddr_storage ss;
	socklen_t sl = inet_to_sockaddr(addr, port, &ss);
	int one = 1, fd, r;

	fd = socket(addr->family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
	if (fd == -1)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (addr->family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
	} else {
		setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) == -1)
		goto fail;
	if (type == SOCK_STREAM && listen(fd, 1024) == -1)
		goto fail;
	return fd;
fail:
	r = -errno;
	close(fd);
	return r;
}

/* Format "NAME ADDR:PORT\n" for the peer in sa. Returns the length. */
static int greeting(char *buf, size_t size, const struct sockaddr *sa)
{
	char ep[INET_ENDPOINT_STRLEN];
	struct inet_addr a;
	uint16_t port = 0;

	if (inet_from_sockaddr(sa, &a, &port) < 0)
		return snprintf(buf, size, "%s ?\n", server_name);
	return snprintf(buf, size, "%s %s\n", server_name, inet_endpoint_format(&a, port, ep));
}

static void conn_close(struct item *c)
{
	epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* Write what is pending; returns 0 when all is written, 1 when the socket is
 * full (caller waits for EPOLLOUT), or -errno. */
static int conn_flush(struct item *c)
{
	while (c->sent < c->pending) {
		ssize_t n = send(c->fd, c->buf + c->sent, c->pending - c->sent, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 1;
			return -errno;
		}
		c->sent += (size_t)n;
	}
	c->pending = c->sent = 0;
	return 0;
}

static void conn_after_flush(struct item *c, int r)
{
	if (r < 0) {
		conn_close(c);
		return;
	}
	if (watch(c, r == 1 ? EPOLLOUT : EPOLLIN, EPOLL_CTL_MOD) < 0)
		conn_close(c);
}

static void accept_all(struct item *l)
{
	/* Bounded: a burst of at most 256 connections per wakeup. */
	for (int i = 0; i < 256; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct item *c;
		int fd;

		fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1)
			return;
		c = item_new(ITEM_CONN, fd, ECHO_BUF);
		if (!c) {
			close(fd);
			continue;
		}
		c->pending = (size_t)greeting(c->buf, ECHO_BUF, (struct sockaddr *)&ss);
		if (watch(c, EPOLLIN, EPOLL_CTL_ADD) < 0) {
			close(fd);
			free(c);
			continue;
		}
		conn_after_flush(c, conn_flush(c));
	}
}

static void conn_readable(struct item *c)
{
	ssize_t n = recv(c->fd, c->buf, ECHO_BUF, 0);

	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		conn_close(c);
		return;
	}
	if (n <= 0)
		return;
	c->pending = (size_t)n;
	c->sent = 0;
	conn_after_flush(c, conn_flush(c));
}

static void udp_readable(struct item *u)
{
	/* Bounded: at most 256 datagrams per wakeup. */
	for (int i = 0; i < 256; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char in[2048], out[256];
		ssize_t n;
		int len;

		n = recvfrom(u->fd, in, sizeof(in), 0, (struct sockaddr *)&ss, &sl);
		if (n == -1)
			return;
		len = greeting(out, sizeof(out), (struct sockaddr *)&ss);
		sendto(u->fd, out, (size_t)len, 0, (struct sockaddr *)&ss, sl);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: echo_server --name NAME --listen ADDR:PORT [--listen ...] [--tcp] [--udp] [--sctp]\n"
		   "  answers each TCP/SCTP connection and UDP datagram with \"NAME CLIENT:PORT\",\n"
		   "  then echoes TCP/SCTP data until EOF; TCP and UDP unless protocols are named\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "listen", required_argument, NULL, 'l' },
		{ "tcp", no_argument, NULL, 't' },
		{ "udp", no_argument, NULL, 'u' },
		{ "sctp", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct inet_addr addrs[MAX_LISTEN];
	uint16_t ports[MAX_LISTEN];
	int n_listen = 0, c, sfd;
	bool tcp = false, udp = false, sctp = false;
	sigset_t mask;
	struct item *sig;

	while ((c = getopt_long(argc, argv, "n:l:tush", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			server_name = optarg;
			break;
		case 'l':
			if (n_listen == MAX_LISTEN) {
				fprintf(stderr, "echo_server: at most %d --listen\n", MAX_LISTEN);
				return 1;
			}
			if (inet_endpoint_parse(optarg, &addrs[n_listen], &ports[n_listen]) < 0) {
				fprintf(stderr, "echo_server: bad --listen '%s' (want ADDR:PORT or [ADDR]:PORT)\n", optarg);
				return 1;
			}
			n_listen++;
			break;
		case 't':
			tcp = true;
			break;
		case 'u':
			udp = true;
			break;
		case 's':
			sctp = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (!server_name || n_listen == 0 || optind != argc) {
		usage(stderr);
		return 1;
	}
	if (!tcp && !udp && !sctp)
		tcp = udp = true;

	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (epoll_fd == -1) {
		perror("echo_server: epoll_create1");
		return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	sig = sfd == -1 ? NULL : item_new(ITEM_SIGNAL, sfd, 0);
	if (!sig || watch(sig, EPOLLIN, EPOLL_CTL_ADD) < 0) {
		perror("echo_server: signalfd");
		return 1;
	}

	for (int i = 0; i < n_listen; i++) {
		char ep[INET_ENDPOINT_STRLEN];

		/* pass 0: TCP, 1: UDP, 2: SCTP */
		for (int pass = 0; pass < 3; pass++) {
			static const char *const pname[] = { "tcp", "udp", "sctp" };
			int type = pass == 1 ? SOCK_DGRAM : SOCK_STREAM;
			struct item *it;
			int fd;

			if ((pass == 0 && !tcp) || (pass == 1 && !udp) || (pass == 2 && !sctp))
				continue;
			fd = open_socket(&addrs[i], ports[i], type, pass == 2 ? IPPROTO_SCTP : 0);
			if (fd < 0) {
				fprintf(stderr, "echo_server: %s %s: %s\n", pname[pass],
					inet_endpoint_format(&addrs[i], ports[i], ep), strerror(-fd));
				return 1;
			}
			it = item_new(pass == 1 ? ITEM_UDP_SOCKET : ITEM_TCP_LISTENER, fd, 0);
			if (!it || watch(it, EPOLLIN, EPOLL_CTL_ADD) < 0) {
				fprintf(stderr, "echo_server: out of memory or epoll failure\n");
				return 1;
			}
		}
	}
	printf("ready\n");
	fflush(stdout);

	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(epoll_fd, evs, 64, -1);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			perror("echo_server: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct item *it = evs[i].data.ptr;

			switch (it->kind) {
			case ITEM_SIGNAL:
				return 0;
			case ITEM_TCP_LISTENER:
				accept_all(it);
				break;
			case ITEM_UDP_SOCKET:
				udp_readable(it);
				break;
			case ITEM_CONN:
				if (it->pending)
					conn_after_flush(it, conn_flush(it));
				else
					conn_readable(it);
				break;
			}
		}
	}
}
