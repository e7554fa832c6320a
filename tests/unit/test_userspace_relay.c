/* The userspace backend end to end, on loopback only: echo servers in
 * threads, a hand-built plan (or, for apply, plans and diffs from the real
 * planner over a model the tests edit), the real workers. Every wait is
 * bounded. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kobj.h"
#include "log.h"
#include "model.h"
#include "nft_intercept.h"
#include "plan.h"
#include "planner.h"
#include "relay.h"
#include "userspace.h"

#define WAIT_MS 2000

/* ---- echo servers: a TCP and a UDP socket on one loopback port ---- */

struct echo {
	char id;
	int family;
	int lfd, ufd;
	uint16_t port;
	atomic_bool stop;
	pthread_t thread;
	int clients[64];
};

static void *echo_main(void *arg)
{
	struct echo *e = arg;

	while (!atomic_load(&e->stop)) {
		struct pollfd pfd[66];
		int map[66];
		nfds_t n = 0;

		pfd[n].fd = e->lfd;
		pfd[n].events = POLLIN;
		map[n++] = -1;
		pfd[n].fd = e->ufd;
		pfd[n].events = POLLIN;
		map[n++] = -2;
		for (int i = 0; i < 64; i++) {
			if (e->clients[i] >= 0) {
				pfd[n].fd = e->clients[i];
				pfd[n].events = POLLIN;
				map[n++] = i;
			}
		}
		if (poll(pfd, n, 20) <= 0)
			continue;
		for (nfds_t k = 0; k < n; k++) {
			char buf[4096];
			ssize_t r;

			if (!pfd[k].revents)
				continue;
			if (map[k] == -1) {
				int fd = accept(e->lfd, NULL, NULL);

				if (fd < 0)
					continue;
				/* Say who we are, then echo. */
				(void)send(fd, &e->id, 1, MSG_NOSIGNAL);
				for (int i = 0; i < 64; i++) {
					if (e->clients[i] < 0) {
						e->clients[i] = fd;
						fd = -1;
						break;
					}
				}
				if (fd >= 0)
					close(fd);
			} else if (map[k] == -2) {
				struct sockaddr_storage from;
				socklen_t flen = sizeof(from);

				buf[0] = e->id;
				r = recvfrom(e->ufd, buf + 1, sizeof(buf) - 1, 0, (struct sockaddr *)&from, &flen);
				if (r >= 0)
					(void)sendto(e->ufd, buf, (size_t)r + 1, 0, (struct sockaddr *)&from, flen);
			} else {
				int *fd = &e->clients[map[k]];

				r = recv(*fd, buf, sizeof(buf), 0);
				if (r <= 0) {
					close(*fd);
					*fd = -1;
				} else {
					(void)send(*fd, buf, (size_t)r, MSG_NOSIGNAL);
				}
			}
		}
	}
	return NULL;
}

/* Open the sockets of e on addr:port (port 0: any) and start its thread. */
static void echo_start_at(struct echo *e, char id, const char *addr, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct inet_addr a;
	int one = 1, family;

	memset(e, 0, sizeof(*e));
	cr_assert_eq(inet_addr_parse(addr, &a), 0);
	family = a.family;
	e->id = id;
	e->family = family;
	for (int i = 0; i < 64; i++)
		e->clients[i] = -1;
	e->lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(e->lfd, 0);
	setsockopt(e->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	len = inet_to_sockaddr(&a, port, &ss);
	cr_assert_eq(bind(e->lfd, (struct sockaddr *)&ss, len), 0, "bind: %s", strerror(errno));
	cr_assert_eq(listen(e->lfd, 64), 0);
	len = sizeof(ss);
	getsockname(e->lfd, (struct sockaddr *)&ss, &len);
	inet_from_sockaddr((struct sockaddr *)&ss, NULL, &e->port);
	e->ufd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(e->ufd, 0);
	len = inet_to_sockaddr(&a, e->port, &ss);
	cr_assert_eq(bind(e->ufd, (struct sockaddr *)&ss, len), 0, "udp bind: %s", strerror(errno));
	atomic_init(&e->stop, false);
	cr_assert_eq(pthread_create(&e->thread, NULL, echo_main, e), 0);
}

/* The same on the loopback address of family. */
static void echo_start(struct echo *e, char id, int family, uint16_t port)
{
	echo_start_at(e, id, family == AF_INET6 ? "::1" : "127.0.0.1", port);
}

static void echo_stop(struct echo *e)
{
	atomic_store(&e->stop, true);
	pthread_join(e->thread, NULL);
	for (int i = 0; i < 64; i++)
		if (e->clients[i] >= 0)
			close(e->clients[i]);
	close(e->lfd);
	close(e->ufd);
}

/* ---- helpers ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A port nothing listens on right now (TCP and UDP), taken below the
 * kernel's ephemeral range (32768 and up by default): a port the kernel
 * handed out and took back could be handed out again to the next socket
 * bound to port 0 (an echo server here), and the test's frontend would then
 * find its port taken. */
static uint16_t free_port(int family)
{
	struct sockaddr_storage ss;
	struct inet_addr a;
	socklen_t len;

	inet_addr_parse(family == AF_INET6 ? "::1" : "127.0.0.1", &a);
	for (int tries = 0; tries < 200; tries++) {
		uint16_t port = (uint16_t)(20000 + (unsigned)rand() % 12000);
		int fd = socket(family, SOCK_STREAM, 0), ufd = socket(family, SOCK_DGRAM, 0);
		bool ok;

		len = inet_to_sockaddr(&a, port, &ss);
		ok = bind(fd, (struct sockaddr *)&ss, len) == 0 &&
		     bind(ufd, (struct sockaddr *)&ss, len) == 0;
		close(fd);
		close(ufd);
		if (ok)
			return port;
	}
	cr_assert_fail("no free port");
	return 0;
}

static int tcp_connect(const char *addr, uint16_t port)
{
	struct sockaddr_storage ss;
	struct inet_addr a;
	socklen_t len;
	struct timeval tv = { .tv_sec = 2 };
	int fd;

	cr_assert_eq(inet_addr_parse(addr, &a), 0);
	fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	len = inet_to_sockaddr(&a, port, &ss);
	cr_assert_eq(connect(fd, (struct sockaddr *)&ss, len), 0, "connect %s:%u: %s", addr, port,
		     strerror(errno));
	return fd;
}

/* Send msg, read it back; returns true on an exact echo. */
static bool tcp_echo(int fd, const char *msg)
{
	char buf[256];
	size_t got = 0, len = strlen(msg);

	if (send(fd, msg, len, MSG_NOSIGNAL) != (ssize_t)len)
		return false;
	while (got < len) {
		ssize_t r = recv(fd, buf + got, len - got, 0);

		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return memcmp(buf, msg, len) == 0;
}

/* Connect through the relay and read the greeting: the id of the server. */
static int tcp_open(const char *addr, uint16_t port, char *ret_id)
{
	int fd = tcp_connect(addr, port);

	cr_assert_eq(recv(fd, ret_id, 1, 0), 1, "no greeting through %s:%u: %s", addr, port,
		     strerror(errno));
	return fd;
}

static char tcp_who(const char *addr, uint16_t port)
{
	char id;
	int fd = tcp_open(addr, port, &id);

	cr_assert(tcp_echo(fd, "hello through the relay"));
	close(fd);
	return id;
}

/* Move size bytes through fd and check they come back intact; with fin,
 * shut down our write half after the last byte and check that EOF follows
 * the echo (the server closes on our FIN). Returns the elapsed ms. */
static uint64_t tcp_bulk(int fd, size_t size, bool fin)
{
	uint8_t *out = malloc(size), *in = malloc(size);
	size_t sent = 0, got = 0;
	uint64_t start = now_ms(), end = start + 10000;

	cr_assert(out && in);
	for (size_t i = 0; i < size; i++)
		out[i] = (uint8_t)(i * 31 + 7);
	while (got < size && now_ms() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN | (sent < size ? POLLOUT : 0) };
		ssize_t r;

		if (poll(&p, 1, 100) <= 0)
			continue;
		if ((p.revents & POLLOUT) && sent < size) {
			r = send(fd, out + sent, size - sent > 65536 ? 65536 : size - sent,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (r > 0)
				sent += (size_t)r;
			if (fin && sent == size)
				cr_assert_eq(shutdown(fd, SHUT_WR), 0);
		}
		if (p.revents & POLLIN) {
			r = recv(fd, in + got, size - got, MSG_DONTWAIT);
			cr_assert_neq(r, 0, "relay closed after %zu of %zu bytes", got, size);
			if (r > 0)
				got += (size_t)r;
		}
	}
	cr_assert_eq(got, size, "only %zu of %zu bytes came back in time", got, size);
	cr_assert_eq(memcmp(in, out, size), 0, "bytes changed on the way");
	if (fin) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint8_t extra;

		cr_assert_eq(poll(&p, 1, WAIT_MS), 1, "no EOF after the echo of a half-close");
		cr_assert_eq(recv(fd, &extra, 1, MSG_DONTWAIT), 0, "no EOF after the echo");
	}
	free(out);
	free(in);
	return now_ms() - start;
}

/* ---- hand-built plans ---- */

struct tplan {
	struct plan plan;
	struct plan_epset epsets[4];
	struct plan_endpoint eps[4][4];
	struct plan_frontend fes[8];
};

static struct plan_epset *tp_epset(struct tplan *t, char *key, char *svc, enum inet_proto proto)
{
	struct plan_epset *e = &t->epsets[t->plan.n_epsets];

	memset(e, 0, sizeof(*e));
	e->key = key;
	e->ns = "default";
	e->svc_name = svc;
	e->port_name = proto == INET_PROTO_UDP ? "dns" : "http";
	e->proto = proto;
	e->endpoints = t->eps[t->plan.n_epsets];
	e->balance = BALANCE_ROUND_ROBIN;
	e->health.interval_ms = 2000;
	e->health.timeout_ms = 1000;
	e->health.rise = 2;
	e->health.fall = 3;
	t->plan.epsets = t->epsets;
	t->plan.n_epsets++;
	return e;
}

static void tp_endpoint(struct plan_epset *e, const char *addr, uint16_t port)
{
	struct plan_endpoint *p = &e->endpoints[e->n_endpoints++];

	memset(p, 0, sizeof(*p));
	cr_assert_eq(inet_addr_parse(addr, &p->addr), 0);
	p->port = port;
}

static void tp_frontend(struct tplan *t, enum frontend_kind kind, const char *addr,
			enum inet_proto proto, uint16_t port, const struct plan_epset *e)
{
	struct plan_frontend *f = &t->fes[t->plan.n_frontends++];

	memset(f, 0, sizeof(*f));
	f->kind = kind;
	cr_assert_eq(inet_addr_parse(addr, &f->addr), 0);
	f->proto = proto;
	f->port = port;
	f->epset = e;
	t->plan.frontends = t->fes;
}

static void *backend_start(void)
{
	struct userspace_options cfg = { .workers = 2, .udp_idle_timeout_ms = 1000 };
	void *priv = calloc(1, userspace_backend_ops.priv_size);

	cr_assert_not_null(priv);
	cr_assert_eq(userspace_backend_ops.init(priv, &cfg), 0);
	return priv;
}

static void backend_stop(void *priv)
{
	userspace_backend_ops.fini(priv);
	free(priv);
}

static void setup(void)
{
	log_set_level(getenv("US_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN);
	srand((unsigned)getpid() ^ (unsigned)time(NULL)); /* free_port's choices */
}

/* ---- tests ---- */

Test(userspace_relay, tcp_round_trips_and_alternates, .init = setup, .timeout = 30)
{
	struct echo a, b;
	struct tplan t = { 0 };
	struct plan_epset *e;
	uint16_t p4 = free_port(AF_INET), p6 = free_port(AF_INET6);
	char ids[8];
	unsigned na = 0, nb = 0;
	void *priv;
	int fd;
	char id;
	uint64_t ms;

	echo_start(&a, 'A', AF_INET, 0);
	echo_start(&b, 'B', AF_INET, 0);
	e = tp_epset(&t, "default/web:http/TCP", "web", INET_PROTO_TCP);
	tp_endpoint(e, "127.0.0.1", a.port);
	tp_endpoint(e, "127.0.0.1", b.port);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.1", INET_PROTO_TCP, p4, e);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "::1", INET_PROTO_TCP, p6, e);

	priv = backend_start();
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);
	/* A second identical sync changes nothing and keeps working. */
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);

	for (int i = 0; i < 8; i++) {
		ids[i] = tcp_who("127.0.0.1", p4);
		na += ids[i] == 'A';
		nb += ids[i] == 'B';
		if (i > 0)
			cr_assert_neq(ids[i], ids[i - 1], "round robin did not alternate: %.*s", i + 1, ids);
	}
	cr_assert_eq(na, 4);
	cr_assert_eq(nb, 4);
	cr_assert(tcp_who("::1", p6) == 'A' || tcp_who("::1", p6) == 'B');

	/* Bulk data both ways (splice path, pipes filling up). */
	fd = tcp_open("127.0.0.1", p4, &id);
	ms = tcp_bulk(fd, 8u << 20, false);
	cr_log_info("8 MiB echoed through the relay in %llu ms", (unsigned long long)ms);
	close(fd);

	backend_stop(priv);
	echo_stop(&a);
	echo_stop(&b);
}

Test(userspace_relay, half_close_is_propagated, .init = setup, .timeout = 30)
{
	struct echo a;
	struct tplan t = { 0 };
	struct plan_epset *e;
	uint16_t p = free_port(AF_INET);
	char id, buf[16];
	void *priv;
	int fd;

	echo_start(&a, 'A', AF_INET, 0);
	e = tp_epset(&t, "default/web:http/TCP", "web", INET_PROTO_TCP);
	tp_endpoint(e, "127.0.0.1", a.port);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.1", INET_PROTO_TCP, p, e);
	priv = backend_start();
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);

	fd = tcp_open("127.0.0.1", p, &id);
	cr_assert_eq(send(fd, "bye", 3, MSG_NOSIGNAL), 3);
	cr_assert_eq(shutdown(fd, SHUT_WR), 0);
	/* The echo of what was sent before FIN, then EOF from the server
	 * closing once it saw our FIN through the relay. */
	cr_assert_eq(recv(fd, buf, 3, MSG_WAITALL), 3);
	cr_assert_eq(memcmp(buf, "bye", 3), 0);
	cr_assert_eq(recv(fd, buf, sizeof(buf), 0), 0, "no EOF after half-close");
	close(fd);

	backend_stop(priv);
	echo_stop(&a);
}

/* Every TCP path of the relay with the same traffic: copy only (what a
 * full socket does not take waits in the direction's buffer, EPOLLOUT
 * edges resume it), splice from the first byte, and the default switch
 * from copying to splicing part way. Each moves 8 MiB both ways, then 1 MiB
 * followed by a half-close that must come out after the last byte. */
Test(userspace_relay, tcp_bulk_on_copy_and_splice_paths, .init = setup, .timeout = 60)
{
	static const size_t after[] = { SIZE_MAX, 0, RELAY_TCP_SPLICE_AFTER_DEFAULT };
	struct echo a;
	struct tplan t = { 0 };
	struct plan_epset *e;
	uint16_t p = free_port(AF_INET);
	void *priv;
	char id;
	int fd;

	echo_start(&a, 'A', AF_INET, 0);
	e = tp_epset(&t, "default/web:http/TCP", "web", INET_PROTO_TCP);
	tp_endpoint(e, "127.0.0.1", a.port);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.1", INET_PROTO_TCP, p, e);
	priv = backend_start();
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);

	for (size_t i = 0; i < sizeof(after) / sizeof(after[0]); i++) {
		uint64_t ms;

		relay_tcp_set_splice_after(after[i]);
		fd = tcp_open("127.0.0.1", p, &id);
		ms = tcp_bulk(fd, 8u << 20, false);
		cr_log_info("splice after %zu: 8 MiB echoed in %llu ms", after[i],
			    (unsigned long long)ms);
		close(fd);
		fd = tcp_open("127.0.0.1", p, &id);
		(void)tcp_bulk(fd, 1u << 20, true);
		close(fd);
	}
	relay_tcp_set_splice_after(RELAY_TCP_SPLICE_AFTER_DEFAULT);

	backend_stop(priv);
	echo_stop(&a);
}

/* The relay delays the ACK ending its handshake with the endpoint so that
 * it rides on the first data; an endpoint that speaks first must still get
 * it at once, not after the 200 ms delayed-ACK timer (its accept(2) waits
 * for that ACK). Best of three, so a slow machine cannot fail it. */
Test(userspace_relay, endpoint_that_speaks_first_is_not_delayed, .init = setup, .timeout = 30)
{
	struct echo a;
	struct tplan t = { 0 };
	struct plan_epset *e;
	uint16_t p = free_port(AF_INET);
	uint64_t best = UINT64_MAX;
	void *priv;
	char id;

	echo_start(&a, 'A', AF_INET, 0);
	e = tp_epset(&t, "default/web:http/TCP", "web", INET_PROTO_TCP);
	tp_endpoint(e, "127.0.0.1", a.port);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.1", INET_PROTO_TCP, p, e);
	priv = backend_start();
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);

	for (int i = 0; i < 3; i++) {
		uint64_t start = now_ms(), ms;
		int fd = tcp_open("127.0.0.1", p, &id);

		ms = now_ms() - start;
		close(fd);
		if (ms < best)
			best = ms;
	}
	cr_assert_lt(best, 150, "greeting took %llu ms at best", (unsigned long long)best);

	backend_stop(priv);
	echo_stop(&a);
}

static void udp_ask(const char *to, uint16_t port, const char *msg, const char *want)
{
	struct sockaddr_storage ss, from;
	socklen_t len, flen = sizeof(from);
	struct timeval tv = { .tv_sec = 2 };
	struct inet_addr a, src;
	uint16_t sport = 0;
	char buf[256];
	ssize_t r;
	int fd;

	cr_assert_eq(inet_addr_parse(to, &a), 0);
	fd = socket(a.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	len = inet_to_sockaddr(&a, port, &ss);
	cr_assert_eq(sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&ss, len), (ssize_t)strlen(msg));
	r = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
	cr_assert_eq(r, (ssize_t)strlen(want), "UDP via %s:%u: %s", to, port, r < 0 ? strerror(errno) : "short");
	cr_assert_eq(memcmp(buf, want, strlen(want)), 0);
	/* The reply comes from the address and port the client sent to. */
	inet_from_sockaddr((struct sockaddr *)&from, &src, &sport);
	cr_assert_eq(inet_addr_cmp(&src, &a), 0, "reply from the wrong address");
	cr_assert_eq(sport, port, "reply from the wrong port");
	close(fd);
}

Test(userspace_relay, udp_round_trips, .init = setup, .timeout = 30)
{
	struct echo a;
	struct tplan t = { 0 };
	struct plan_epset *e;
	uint16_t p = free_port(AF_INET), pn = free_port(AF_INET), p6 = free_port(AF_INET6);
	void *priv;

	echo_start(&a, 'A', AF_INET, 0);
	e = tp_epset(&t, "default/dns:dns/UDP", "dns", INET_PROTO_UDP);
	tp_endpoint(e, "127.0.0.1", a.port);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.1", INET_PROTO_UDP, p, e);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "::1", INET_PROTO_UDP, p6, e);
	/* A node port on the wildcard: replies need IP_PKTINFO. */
	tp_frontend(&t, FRONTEND_NODE_PORT, "0.0.0.0", INET_PROTO_UDP, pn, e);
	priv = backend_start();
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);

	udp_ask("127.0.0.1", p, "ping", "Aping");
	udp_ask("127.0.0.1", p, "again", "Aagain");
	udp_ask("::1", p6, "six", "Asix");
	udp_ask("127.0.0.1", pn, "node", "Anode");
	udp_ask("127.0.0.2", pn, "other", "Aother");

	backend_stop(priv);
	echo_stop(&a);
}

Test(userspace_relay, empty_set_refuses_at_once, .init = setup, .timeout = 30)
{
	struct tplan t = { 0 };
	struct plan_epset *e;
	uint16_t p = free_port(AF_INET);
	struct sockaddr_storage ss;
	struct inet_addr a;
	socklen_t len;
	void *priv;

	e = tp_epset(&t, "default/none:http/TCP", "none", INET_PROTO_TCP);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.1", INET_PROTO_TCP, p, e);
	priv = backend_start();
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);

	inet_addr_parse("127.0.0.1", &a);
	len = inet_to_sockaddr(&a, p, &ss);
	for (int i = 0; i < 3; i++) {
		uint64_t start = now_ms();
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char c;
		int err;

		if (connect(fd, (struct sockaddr *)&ss, len) == -1) {
			err = errno;
		} else {
			cr_assert_eq(poll(&pfd, 1, 200), 1, "no answer within 200 ms");
			cr_assert_eq(recv(fd, &c, 1, 0), -1, "expected a reset, got data or EOF");
			err = errno;
		}
		cr_assert(err == ECONNREFUSED || err == ECONNRESET, "got %s", strerror(err));
		cr_assert_lt(now_ms() - start, 200);
		close(fd);
	}
	backend_stop(priv);
}

Test(userspace_relay, removed_endpoint_drains, .init = setup, .timeout = 30)
{
	struct echo a, b;
	struct tplan t = { 0 }, t2 = { 0 };
	struct plan_epset *e;
	uint16_t p = free_port(AF_INET);
	char first, other;
	void *priv;
	int fd;

	echo_start(&a, 'A', AF_INET, 0);
	echo_start(&b, 'B', AF_INET, 0);
	e = tp_epset(&t, "default/web:http/TCP", "web", INET_PROTO_TCP);
	tp_endpoint(e, "127.0.0.1", a.port);
	tp_endpoint(e, "127.0.0.1", b.port);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.1", INET_PROTO_TCP, p, e);
	priv = backend_start();
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);

	fd = tcp_open("127.0.0.1", p, &first);
	cr_assert(tcp_echo(fd, "before"));
	other = first == 'A' ? 'B' : 'A';

	/* The endpoint in use leaves the set. */
	e = tp_epset(&t2, "default/web:http/TCP", "web", INET_PROTO_TCP);
	tp_endpoint(e, "127.0.0.1", other == 'A' ? a.port : b.port);
	tp_frontend(&t2, FRONTEND_CLUSTER_IP, "127.0.0.1", INET_PROTO_TCP, p, e);
	cr_assert_eq(userspace_backend_ops.sync(priv, &t2.plan), 0);

	cr_assert(tcp_echo(fd, "still here"), "established connection was cut");
	for (int i = 0; i < 4; i++)
		cr_assert_eq(tcp_who("127.0.0.1", p), other, "new connection went to the removed endpoint");
	cr_assert(tcp_echo(fd, "and still"), "established connection was cut");
	close(fd);

	backend_stop(priv);
	echo_stop(&a);
	echo_stop(&b);
}

static bool wait_usable(void *priv, const char *key, uint16_t port, int want)
{
	struct inet_addr a;

	inet_addr_parse("127.0.0.1", &a);
	for (uint64_t end = now_ms() + 5000; now_ms() < end; usleep(10000))
		if (userspace_endpoint_usable(priv, key, &a, port) == want)
			return true;
	return false;
}

Test(userspace_relay, health_checks_take_out_and_put_back, .init = setup, .timeout = 40)
{
	struct echo a, d;
	struct tplan t = { 0 };
	struct plan_epset *e;
	uint16_t p = free_port(AF_INET), dport;
	bool saw_d = false;
	void *priv;

	echo_start(&a, 'A', AF_INET, 0);
	echo_start(&d, 'D', AF_INET, 0);
	dport = d.port;
	echo_stop(&d); /* D is dead from the start */
	e = tp_epset(&t, "default/web:http/TCP", "web", INET_PROTO_TCP);
	tp_endpoint(e, "127.0.0.1", a.port);
	tp_endpoint(e, "127.0.0.1", dport);
	e->health.enabled = true;
	e->health.interval_ms = 50;
	e->health.timeout_ms = 200;
	e->health.rise = 2;
	e->health.fall = 2;
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.1", INET_PROTO_TCP, p, e);
	priv = backend_start();
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);

	cr_assert(wait_usable(priv, e->key, dport, 0), "dead endpoint never taken out");
	cr_assert_eq(userspace_endpoint_usable(priv, e->key, &e->endpoints[0].addr, a.port), 1);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(tcp_who("127.0.0.1", p), 'A');

	echo_start(&d, 'D', AF_INET, dport);
	cr_assert(wait_usable(priv, e->key, dport, 1), "revived endpoint never put back");
	for (int i = 0; i < 4 && !saw_d; i++)
		saw_d = tcp_who("127.0.0.1", p) == 'D';
	cr_assert(saw_d, "revived endpoint gets no connections");

	/* Everything down: refused at once, like an empty set. */
	echo_stop(&a);
	echo_stop(&d);
	cr_assert(wait_usable(priv, e->key, dport, 0));
	cr_assert(wait_usable(priv, e->key, a.port, 0));
	{
		struct sockaddr_storage ss;
		struct inet_addr la;
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char c;

		inet_addr_parse("127.0.0.1", &la);
		if (connect(fd, (struct sockaddr *)&ss, inet_to_sockaddr(&la, p, &ss)) == 0) {
			cr_assert_eq(poll(&pfd, 1, 200), 1);
			cr_assert_eq(recv(fd, &c, 1, 0), -1);
		}
		close(fd);
	}
	backend_stop(priv);
}

Test(userspace_relay, bind_failure_is_reported_and_the_rest_works, .init = setup, .timeout = 30)
{
	struct echo a;
	struct tplan t = { 0 };
	struct plan_epset *e;
	uint16_t busy = free_port(AF_INET), p = free_port(AF_INET);
	struct sockaddr_storage ss;
	struct inet_addr la;
	void *priv;
	int blocker;

	echo_start(&a, 'A', AF_INET, 0);
	inet_addr_parse("127.0.0.1", &la);
	blocker = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(blocker, (struct sockaddr *)&ss, inet_to_sockaddr(&la, busy, &ss)), 0);
	cr_assert_eq(listen(blocker, 1), 0);

	e = tp_epset(&t, "default/web:http/TCP", "web", INET_PROTO_TCP);
	tp_endpoint(e, "127.0.0.1", a.port);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.1", INET_PROTO_TCP, busy, e);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.1", INET_PROTO_TCP, p, e);
	/* SCTP is skipped, not an error. */
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.1", INET_PROTO_SCTP, p, e);
	priv = backend_start();
	cr_assert_lt(userspace_backend_ops.sync(priv, &t.plan), 0, "a bind failure must be reported");
	cr_assert_eq(tcp_who("127.0.0.1", p), 'A');

	/* The core retries once the port is free. */
	close(blocker);
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);
	cr_assert_eq(tcp_who("127.0.0.1", busy), 'A');

	/* An empty plan closes every listener. */
	{
		struct plan empty = { 0 };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		cr_assert_eq(userspace_backend_ops.sync(priv, &empty), 0);
		cr_assert_eq(connect(fd, (struct sockaddr *)&ss, inet_to_sockaddr(&la, p, &ss)), -1);
		cr_assert_eq(errno, ECONNREFUSED);
		close(fd);
	}
	backend_stop(priv);
	echo_stop(&a);
}

Test(userspace_relay, render_and_failed_init_fini, .init = setup)
{
	struct tplan t = { 0 };
	struct plan_epset *e;
	char *text = NULL;
	size_t len = 0;
	FILE *out;
	void *priv;

	e = tp_epset(&t, "default/web:http/TCP", "web", INET_PROTO_TCP);
	tp_endpoint(e, "10.1.2.3", 8080);
	tp_endpoint(e, "10.1.2.4", 8080);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "10.0.0.1", INET_PROTO_TCP, 80, e);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "10.0.0.1", INET_PROTO_SCTP, 80, e);

	out = open_memstream(&text, &len);
	userspace_backend_ops.render(&t.plan, &(struct userspace_options){ .workers = 3 }, PLAN_FORMAT_TEXT, out);
	fclose(out);
	cr_assert_not_null(strstr(text, "listen 10.0.0.1:80/TCP x 3 workers -> default/web:http (round-robin, 2 endpoints)"),
			   "%s", text);
	cr_assert_not_null(strstr(text, "SCTP"));
	free(text);

	out = open_memstream(&text, &len);
	userspace_backend_ops.render(&t.plan, &(struct userspace_options){ .workers = 3 }, PLAN_FORMAT_JSON, out);
	fclose(out);
	cr_assert_eq(text[0], '{');
	cr_assert_not_null(strstr(text, "\"endpoints\":[\"10.1.2.3:8080\",\"10.1.2.4:8080\"]"), "%s", text);
	free(text);

	/* With interception the VIP has no listener: the shared relay gets it. */
	out = open_memstream(&text, &len);
	userspace_backend_ops.render(&t.plan, &(struct userspace_options){ .workers = 3,
				     .intercept = &nftables_intercept_ops }, PLAN_FORMAT_TEXT, out);
	fclose(out);
	cr_assert_not_null(strstr(text, "intercept 10.0.0.1:80/TCP to the shared relay -> default/web:http"),
			   "%s", text);
	free(text);
	out = open_memstream(&text, &len);
	userspace_backend_ops.render(&t.plan, &(struct userspace_options){ .workers = 3,
				     .intercept = &nftables_intercept_ops }, PLAN_FORMAT_JSON, out);
	fclose(out);
	cr_assert_not_null(strstr(text, "\"intercepted\":true"), "%s", text);
	free(text);

	/* fini on state whose init never ran. */
	priv = calloc(1, userspace_backend_ops.priv_size);
	userspace_backend_ops.fini(priv);
	free(priv);
}

static void assert_refused(const char *addr, uint16_t port);

/* ---- interception: a fake provider records what the relay asks for ---- */

static struct intercept_entry fake_entries[16];
static size_t fake_n;
static struct inet_addr fake_ips[16];      /* the guards of the last sync */
static size_t fake_n_ips, fake_n_cidrs;
static int fake_syncs, fake_cleanups, fake_fail, fake_inits, fake_finis;

/* The provider's private state: the backend must hand it back. */
struct fake_priv {
	unsigned magic;
};

static int fake_init(void *priv)
{
	((struct fake_priv *)priv)->magic = 0xfe77;
	fake_inits++;
	return 0;
}

static void fake_fini(void *priv)
{
	fake_finis++;
	((struct fake_priv *)priv)->magic = 0;
}

static int fake_sync(void *priv, const struct intercept_entry *entries, size_t n,
		     const struct intercept_guards *guards)
{
	cr_assert_eq(((struct fake_priv *)priv)->magic, 0xfe77);
	fake_syncs++;
	if (fake_fail)
		return -EPERM;
	cr_assert_leq(n, 16);
	if (n > 0)
		memcpy(fake_entries, entries, n * sizeof(*entries));
	fake_n = n;
	cr_assert_not_null(guards, "the relay always passes the plan's guards");
	cr_assert_leq(guards->n_cluster_ips, 16);
	if (guards->n_cluster_ips > 0)
		memcpy(fake_ips, guards->cluster_ips, guards->n_cluster_ips * sizeof(*fake_ips));
	fake_n_ips = guards->n_cluster_ips;
	fake_n_cidrs = guards->n_service_cidrs;
	return 0;
}

static int fake_cleanup(void)
{
	fake_cleanups++;
	fake_n = 0;
	return 0;
}

static const struct intercept_ops fake_intercept = {
	.name = "fake", .priv_size = sizeof(struct fake_priv), .init = fake_init, .sync = fake_sync,
	.fini = fake_fini, .cleanup = fake_cleanup,
};

static const struct intercept_entry *fake_find(const char *addr, enum inet_proto proto,
					       uint16_t port)
{
	struct inet_addr a;

	cr_assert_eq(inet_addr_parse(addr, &a), 0);
	for (size_t i = 0; i < fake_n; i++)
		if (fake_entries[i].proto == proto && fake_entries[i].port == port &&
		    inet_addr_cmp(&fake_entries[i].addr, &a) == 0)
			return &fake_entries[i];
	return NULL;
}

/* With a provider, every frontend (node ports on every address too) is
 * only an entry of the service table behind the shared relay sockets: the provider
 * is told the same relay port for every frontend of one family and
 * protocol, no socket is opened for the frontend itself, a connection
 * that reaches a shared socket without having been redirected (it has no
 * original destination) is reset, failures of the provider fail the sync,
 * removal drops the entry, fini removes the rules. The redirect itself is
 * the kernel's: intercepted_traffic_through_nftables runs it in a private
 * network namespace. */
Test(userspace_relay, intercepted_frontends_share_relay_sockets, .init = setup, .timeout = 30)
{
	struct userspace_options cfg = { .workers = 2, .udp_idle_timeout_ms = 1000,
				      .intercept = &fake_intercept };
	struct echo a;
	struct tplan t = { 0 }, t2 = { 0 };
	struct plan_epset *e, *eu;
	uint16_t pt = free_port(AF_INET), pt2 = free_port(AF_INET), pu = free_port(AF_INET);
	uint16_t pn = free_port(AF_INET);
	const struct intercept_entry *et, *et2, *eu4;
	uint16_t relay_t, relay_u;
	void *priv;

	echo_start(&a, 'A', AF_INET, 0);
	e = tp_epset(&t, "default/web:http/TCP", "web", INET_PROTO_TCP);
	tp_endpoint(e, "127.0.0.1", a.port);
	eu = tp_epset(&t, "default/dns:dns/UDP", "dns", INET_PROTO_UDP);
	tp_endpoint(eu, "127.0.0.1", a.port);
	/* 127.0.0.3 and .4 stand for cluster IPs. */
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.3", INET_PROTO_TCP, pt, e);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.3", INET_PROTO_UDP, pu, eu);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.4", INET_PROTO_TCP, pt2, e);
	tp_frontend(&t, FRONTEND_NODE_PORT, "0.0.0.0", INET_PROTO_TCP, pn, e);

	fake_n = 0;
	fake_syncs = fake_cleanups = fake_fail = fake_inits = fake_finis = 0;
	priv = calloc(1, userspace_backend_ops.priv_size);
	cr_assert_not_null(priv);
	cr_assert_eq(userspace_backend_ops.init(priv, &cfg), 0);
	cr_assert_eq(fake_inits, 1, "init sets up the provider's own state");
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);
	cr_assert_eq(userspace_check_state(priv, &t.plan), 0);
	cr_assert_eq(fake_syncs, 1);
	cr_assert_eq(fake_n, 4, "every frontend, the wildcard node port too");
	et = fake_find("127.0.0.3", INET_PROTO_TCP, pt);
	et2 = fake_find("127.0.0.4", INET_PROTO_TCP, pt2);
	eu4 = fake_find("127.0.0.3", INET_PROTO_UDP, pu);
	cr_assert(et && et2 && eu4);
	cr_assert_neq(et->relay_port, 0);
	cr_assert_neq(eu4->relay_port, 0);
	cr_assert_eq(et->relay_port, et2->relay_port, "one shared TCP relay port, not one per frontend");
	cr_assert_eq(fake_find("0.0.0.0", INET_PROTO_TCP, pn)->relay_port, et->relay_port,
		     "the node port is redirected for any local address, to the same port");
	relay_t = et->relay_port;
	relay_u = eu4->relay_port;

	/* No socket of its own, not even the node port's; the shared one
	 * resets what was not redirected. */
	assert_refused("127.0.0.3", pt);
	assert_refused("127.0.0.1", pn);
	assert_refused("127.0.0.1", relay_t);

	/* Same plan again: same relay ports, the provider told again. */
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);
	cr_assert_eq(fake_syncs, 2);
	cr_assert_eq(fake_find("127.0.0.3", INET_PROTO_TCP, pt)->relay_port, relay_t);

	/* A provider failure fails the sync (the core retries). */
	fake_fail = 1;
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), -EPERM);
	fake_fail = 0;

	/* The TCP frontends go: their entries go; the shared sockets stay. */
	e = tp_epset(&t2, "default/dns:dns/UDP", "dns", INET_PROTO_UDP);
	tp_endpoint(e, "127.0.0.1", a.port);
	tp_frontend(&t2, FRONTEND_CLUSTER_IP, "127.0.0.3", INET_PROTO_UDP, pu, e);
	cr_assert_eq(userspace_backend_ops.sync(priv, &t2.plan), 0);
	cr_assert_eq(userspace_check_state(priv, &t2.plan), 0);
	cr_assert_eq(fake_n, 1);
	cr_assert_null(fake_find("127.0.0.3", INET_PROTO_TCP, pt));
	cr_assert_eq(fake_find("127.0.0.3", INET_PROTO_UDP, pu)->relay_port, relay_u);
	assert_refused("127.0.0.1", relay_t);

	userspace_backend_ops.fini(priv);
	cr_assert_eq(fake_cleanups, 1, "fini removes the interception rules");
	cr_assert_eq(fake_finis, 1, "fini releases the provider's state");
	free(priv);
	echo_stop(&a);
}

/* Without a provider nothing is intercepted, and fini touches no rules. */
Test(userspace_relay, no_provider_no_interception, .init = setup, .timeout = 30)
{
	struct tplan t = { 0 };
	struct plan_epset *e;
	uint16_t p = free_port(AF_INET);
	void *priv;

	e = tp_epset(&t, "default/web:http/TCP", "web", INET_PROTO_TCP);
	tp_endpoint(e, "127.0.0.1", 9);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.3", INET_PROTO_TCP, p, e);
	fake_syncs = fake_cleanups = 0;
	priv = backend_start();
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);
	backend_stop(priv);
	cr_assert_eq(fake_syncs, 0);
	cr_assert_eq(fake_cleanups, 0);
}

/* ---- apply: plans and diffs from the real planner ---- */

/* A model the tests edit and the planner that turns it into plans and
 * diffs, as the sync runner does. */
struct world {
	struct model *m;
	struct planner *p;
	const struct plan *plan;
	const struct plan_diff *diff;
};

/* One Service, default/name: ClusterIP vip:port/proto, or with lb_ip a
 * LoadBalancer (no node port) that also has that ingress IP and, with
 * range, one loadBalancerSourceRange. The target port is named like the
 * port, so the slice's port number is used. */
struct w_svc {
	const char *name;
	const char *vip;
	enum inet_proto proto;
	uint16_t port;
	const char *port_name;  /* NULL: "http" */
	enum balance_algo balance;
	bool health;            /* TCP checks every 50 ms, rise 2, fall 2 */
	const char *lb_ip;
	const char *range;
	bool etp_local;         /* externalTrafficPolicy Local (with lb_ip) */
};

/* The world of node node_name (NULL: unknown). */
static void world_init_node(struct world *w, const char *node_name)
{
	struct planner_config pc = { .topology_hints = true, .node_name = node_name };

	memset(w, 0, sizeof(*w));
	w->m = model_new();
	w->p = planner_new(&pc);
	cr_assert(w->m && w->p);
}

static void world_init(struct world *w)
{
	struct planner_config pc = { .topology_hints = true };

	memset(w, 0, sizeof(*w));
	w->m = model_new();
	w->p = planner_new(&pc);
	cr_assert(w->m && w->p);
}

static void world_done(struct world *w)
{
	planner_free(w->p);
	model_free(w->m);
}

static void world_service(struct world *w, const struct w_svc *t)
{
	struct kobj_service *s = kobj_service_new();
	struct svc_port *sp;

	cr_assert_not_null(s);
	s->ns = strdup("default");
	s->name = strdup(t->name);
	s->type = t->lb_ip ? SVC_TYPE_LOAD_BALANCER : SVC_TYPE_CLUSTER_IP;
	s->cluster_ips = calloc(1, sizeof(*s->cluster_ips));
	cr_assert_eq(inet_addr_parse(t->vip, &s->cluster_ips[0]), 0);
	s->n_cluster_ips = 1;
	s->ip_families[s->n_ip_families++] = AF_INET;
	if (t->lb_ip) {
		s->lb_ips = calloc(1, sizeof(*s->lb_ips));
		cr_assert_eq(inet_addr_parse(t->lb_ip, &s->lb_ips[0]), 0);
		s->n_lb_ips = 1;
	}
	if (t->range) {
		s->source_ranges = calloc(1, sizeof(*s->source_ranges));
		cr_assert_eq(inet_prefix_parse(t->range, &s->source_ranges[0]), 0);
		s->n_source_ranges = 1;
	}
	s->external_policy = t->etp_local ? TRAFFIC_POLICY_LOCAL : TRAFFIC_POLICY_CLUSTER;
	s->ports = calloc(1, sizeof(*s->ports));
	sp = &s->ports[0];
	kobj_port_name(t->port_name ? t->port_name : "http", &sp->name);
	kobj_port_name(sp->name, &sp->target_port_name);
	sp->proto = t->proto;
	sp->port = t->port;
	s->n_ports = 1;
	s->balance = t->balance;
	s->health.enabled = t->health;
	s->health.interval_ms = 50;
	s->health.timeout_ms = 200;
	s->health.rise = 2;
	s->health.fall = 2;
	cr_assert_eq(model_upsert_service(w->m, s), 0);
}

/* The EndpointSlice default/SVC-1 of service svc: ready endpoints at the
 * space-separated addresses ("" for none), all on port. "ADDR@NODE" puts
 * an endpoint on node NODE. */
static void world_slice(struct world *w, const char *svc, const char *port_name,
			enum inet_proto proto, uint16_t port, const char *addrs)
{
	struct kobj_slice *s = kobj_slice_new();
	char name[64], *copy = strdup(addrs), *save = NULL;
	size_t n = 0;

	cr_assert(s && copy);
	snprintf(name, sizeof(name), "%s-1", svc);
	s->ns = strdup("default");
	s->name = strdup(name);
	s->service_name = strdup(svc);
	s->family = AF_INET;
	s->ports = calloc(1, sizeof(*s->ports));
	kobj_port_name(port_name, &s->ports[0].name);
	s->ports[0].proto = proto;
	s->ports[0].port = port;
	s->n_ports = 1;
	s->endpoints = calloc(8, sizeof(*s->endpoints));
	for (char *a = strtok_r(copy, " ", &save); a; a = strtok_r(NULL, " ", &save)) {
		struct kobj_endpoint *ep;

		cr_assert_lt(n, 8);
		char *at = strchr(a, '@');

		ep = &s->endpoints[n++];
		if (at) {
			*at = '\0';
			ep->node_name = strdup(at + 1);
		}
		cr_assert_eq(inet_addr_parse(a, &ep->addr), 0);
		ep->ready = ep->serving = true;
	}
	s->n_endpoints = n;
	free(copy);
	cr_assert_eq(model_upsert_slice(w->m, s), 0);
}

/* Plan the model; then the backend's sync (full) or apply (the diff). The
 * state must then be what a sync of that plan leaves. */
static void world_sync(struct world *w, void *priv)
{
	cr_assert_eq(planner_run(w->p, w->m, &w->plan, &w->diff), 0);
	cr_assert_eq(userspace_backend_ops.sync(priv, w->plan), 0);
	cr_assert_eq(userspace_check_state(priv, w->plan), 0);
}

static int world_try_apply(struct world *w, void *priv)
{
	cr_assert_eq(planner_run(w->p, w->m, &w->plan, &w->diff), 0);
	cr_assert_not_null(userspace_backend_ops.apply, "the userspace backend has no apply");
	return userspace_backend_ops.apply(priv, w->plan, w->diff);
}

static void world_apply(struct world *w, void *priv)
{
	cr_assert_eq(world_try_apply(w, priv), 0);
	cr_assert_eq(userspace_check_state(priv, w->plan), 0);
}

/* The key of service svc's endpoint set in the current plan. */
static const char *world_key(const struct world *w, const char *svc)
{
	for (size_t i = 0; i < w->plan->n_epsets; i++)
		if (strcmp(w->plan->epsets[i].svc_name, svc) == 0)
			return w->plan->epsets[i].key;
	cr_assert_fail("no endpoint set for %s", svc);
	return NULL;
}

/* Echo servers A, B, C... on 127.0.0.11, .12, .13... sharing one port,
 * which is returned: endpoints of one slice share their port. */
static uint16_t echoes_start(struct echo *e, int n)
{
	uint16_t port = 0;
	char addr[32];

	for (int i = 0; i < n; i++) {
		snprintf(addr, sizeof(addr), "127.0.0.%d", 11 + i);
		echo_start_at(&e[i], (char)('A' + i), addr, port);
		port = e[0].port;
	}
	return port;
}

/* Connect n times through addr:port; the distinct server ids met, in
 * order ("ABC"). */
static void who_set(const char *addr, uint16_t port, int n, char *out)
{
	bool seen[26] = { false };
	size_t k = 0;

	for (int i = 0; i < n; i++) {
		char id = tcp_who(addr, port);

		cr_assert(id >= 'A' && id <= 'Z', "bad greeting %d", id);
		seen[id - 'A'] = true;
	}
	for (int c = 0; c < 26; c++)
		if (seen[c])
			out[k++] = (char)('A' + c);
	out[k] = '\0';
}

/* n connections through addr:port reach exactly the servers in want. */
#define assert_reaches(addr, port, n, want)                                                   \
	do {                                                                                  \
		char got_[32];                                                                \
		who_set(addr, port, n, got_);                                                 \
		cr_assert_str_eq(got_, want, "%s:%u reached %s, not %s", addr, (unsigned)(port), \
				 got_, want);                                                 \
	} while (0)

/* A connection to addr:port is refused or reset at once: nothing listens,
 * or the relay turns it away (source not allowed, nothing usable). */
static void assert_refused(const char *addr, uint16_t port)
{
	struct sockaddr_storage ss;
	struct inet_addr a;
	int fd, err;
	char c;

	cr_assert_eq(inet_addr_parse(addr, &a), 0);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(fd, (struct sockaddr *)&ss, inet_to_sockaddr(&a, port, &ss)) == -1) {
		err = errno;
	} else {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		cr_assert_eq(poll(&pfd, 1, WAIT_MS), 1, "%s:%u: no answer", addr, port);
		cr_assert_eq(recv(fd, &c, 1, 0), -1, "%s:%u: expected a reset, got data or EOF", addr,
			     port);
		err = errno;
	}
	cr_assert(err == ECONNREFUSED || err == ECONNRESET, "%s:%u: got %s", addr, port, strerror(err));
	close(fd);
}

static bool wait_usable_at(void *priv, const char *key, const char *addr, uint16_t port, int want)
{
	struct inet_addr a;

	cr_assert_eq(inet_addr_parse(addr, &a), 0);
	for (uint64_t end = now_ms() + 5000; now_ms() < end; usleep(10000))
		if (userspace_endpoint_usable(priv, key, &a, port) == want)
			return true;
	return false;
}

static const void *snapshot_of(void *priv, const char *addr, enum inet_proto proto, uint16_t port)
{
	struct inet_addr a;
	const void *s;

	cr_assert_eq(inet_addr_parse(addr, &a), 0);
	s = userspace_frontend_snapshot(priv, &a, proto, port);
	cr_assert_not_null(s, "no frontend %s:%u", addr, port);
	return s;
}

/* Each kind of change through apply, and after each, connections reach
 * exactly the endpoints the plan names. */
Test(userspace_apply, diffs_reach_exactly_the_planned_endpoints, .init = setup, .timeout = 90)
{
	struct echo e[4];
	struct world w;
	uint16_t ep = echoes_start(e, 4);
	uint16_t pw = free_port(AF_INET), pa = free_port(AF_INET), pd = free_port(AF_INET);
	uint16_t px = free_port(AF_INET), pl = free_port(AF_INET);
	struct userspace_stats s0, s1;
	void *priv = backend_start();
	char got[32];

	world_init(&w);
	world_service(&w, &(struct w_svc){ .name = "web", .vip = "127.0.0.3", .port = pw });
	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.11 127.0.0.12");
	world_service(&w, &(struct w_svc){ .name = "api", .vip = "127.0.0.4", .port = pa });
	world_slice(&w, "api", "http", INET_PROTO_TCP, ep, "127.0.0.13");
	world_sync(&w, priv);
	assert_reaches("127.0.0.3", pw, 4, "AB");
	assert_reaches("127.0.0.4", pa, 2, "C");

	/* An endpoint added. */
	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.11 127.0.0.12 127.0.0.13");
	world_apply(&w, priv);
	cr_assert_eq(w.diff->n_eps_changed, 1);
	cr_assert_eq(w.diff->n_fe_added + w.diff->n_fe_removed + w.diff->n_fe_changed, 0);
	assert_reaches("127.0.0.3", pw, 6, "ABC");

	/* An endpoint removed. */
	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.12 127.0.0.13");
	world_apply(&w, priv);
	assert_reaches("127.0.0.3", pw, 4, "BC");
	assert_reaches("127.0.0.4", pa, 2, "C");

	/* Frontends added: a UDP service and a TCP one. */
	world_service(&w, &(struct w_svc){ .name = "dns", .vip = "127.0.0.5", .proto = INET_PROTO_UDP,
					   .port = pd, .port_name = "dns" });
	world_slice(&w, "dns", "dns", INET_PROTO_UDP, ep, "127.0.0.14");
	world_service(&w, &(struct w_svc){ .name = "extra", .vip = "127.0.0.6", .port = px });
	world_slice(&w, "extra", "http", INET_PROTO_TCP, ep, "127.0.0.11");
	world_apply(&w, priv);
	cr_assert_eq(w.diff->n_fe_added, 2);
	udp_ask("127.0.0.5", pd, "ping", "Dping");
	assert_reaches("127.0.0.6", px, 2, "A");

	/* A frontend removed. */
	cr_assert_eq(model_delete_service(w.m, "default", "extra"), 0);
	world_apply(&w, priv);
	cr_assert_eq(w.diff->n_fe_removed, 1);
	cr_assert_eq(w.diff->n_eps_removed, 1);
	assert_refused("127.0.0.6", px);
	udp_ask("127.0.0.5", pd, "still", "Dstill");

	/* A frontend changed: a load balancer's source ranges shut out the
	 * loopback clients; its cluster IP has no ranges and still serves. */
	world_service(&w, &(struct w_svc){ .name = "lb", .vip = "127.0.0.7", .port = pl,
					   .lb_ip = "127.0.0.8", .range = "127.0.0.0/8" });
	world_slice(&w, "lb", "http", INET_PROTO_TCP, ep, "127.0.0.11");
	world_apply(&w, priv);
	assert_reaches("127.0.0.8", pl, 2, "A");
	world_service(&w, &(struct w_svc){ .name = "lb", .vip = "127.0.0.7", .port = pl,
					   .lb_ip = "127.0.0.8", .range = "10.0.0.0/8" });
	world_apply(&w, priv);
	cr_assert_eq(w.diff->n_fe_changed, 1);
	cr_assert_eq(w.diff->n_eps_changed, 0);
	assert_refused("127.0.0.8", pl);
	assert_reaches("127.0.0.7", pl, 2, "A");

	/* A set's balance mode changed: Maglev sends one client to one
	 * endpoint, where round-robin alternated. */
	world_service(&w, &(struct w_svc){ .name = "web", .vip = "127.0.0.3", .port = pw,
					   .balance = BALANCE_MAGLEV });
	world_apply(&w, priv);
	cr_assert_eq(w.diff->n_eps_changed, 1);
	who_set("127.0.0.3", pw, 6, got);
	cr_assert(strcmp(got, "B") == 0 || strcmp(got, "C") == 0, "Maglev spread one client over %s", got);

	/* Health checks enabled, then an endpoint dies: it is taken out. */
	userspace_get_stats(priv, &s0);
	world_service(&w, &(struct w_svc){ .name = "web", .vip = "127.0.0.3", .port = pw,
					   .balance = BALANCE_MAGLEV, .health = true });
	world_apply(&w, priv);
	userspace_get_stats(priv, &s1);
	cr_assert_eq(s1.health_updates, s0.health_updates + 1, "the checker was not told");
	echo_stop(&e[1]);
	cr_assert(wait_usable_at(priv, world_key(&w, "web"), "127.0.0.12", ep, 0),
		  "dead endpoint never taken out");
	assert_reaches("127.0.0.3", pw, 4, "C");
	/* The set changes again: the endpoints it keeps keep their state
	 * (the dead one is still out at once, not back until checked). */
	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.12 127.0.0.13 127.0.0.14");
	world_apply(&w, priv);
	{
		struct inet_addr b;

		cr_assert_eq(inet_addr_parse("127.0.0.12", &b), 0);
		cr_assert_eq(userspace_endpoint_usable(priv, world_key(&w, "web"), &b, ep), 0,
			     "a kept endpoint lost its health state");
	}
	who_set("127.0.0.3", pw, 4, got);
	cr_assert(strcmp(got, "C") == 0 || strcmp(got, "D") == 0, "reached %s", got);
	/* ... and disabled again: every endpoint usable by definition. */
	world_service(&w, &(struct w_svc){ .name = "web", .vip = "127.0.0.3", .port = pw,
					   .balance = BALANCE_MAGLEV });
	world_apply(&w, priv);
	cr_assert(wait_usable_at(priv, world_key(&w, "web"), "127.0.0.12", ep, 1));

	userspace_get_stats(priv, &s1);
	cr_assert_eq(s1.syncs, 1, "apply fell back to sync");
	backend_stop(priv);
	world_done(&w);
	echo_stop(&e[0]);
	echo_stop(&e[2]);
	echo_stop(&e[3]);
}

/* What apply rebuilds is what the diff names: another frontend's snapshot
 * (and so its endpoint pool) stays the very same object, and the counters
 * show one pool and one snapshot per changed set, not one per set. */
Test(userspace_apply, unrelated_frontends_are_left_alone, .init = setup, .timeout = 60)
{
	struct echo e[4];
	struct world w;
	uint16_t ep = echoes_start(e, 4);
	uint16_t pw = free_port(AF_INET), pa = free_port(AF_INET), pd = free_port(AF_INET);
	uint16_t px = free_port(AF_INET);
	struct userspace_stats s0, s1;
	const void *api0, *dns0, *web0, *web1;
	void *priv = backend_start();

	world_init(&w);
	world_service(&w, &(struct w_svc){ .name = "web", .vip = "127.0.0.3", .port = pw });
	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.11 127.0.0.12");
	world_service(&w, &(struct w_svc){ .name = "api", .vip = "127.0.0.4", .port = pa });
	world_slice(&w, "api", "http", INET_PROTO_TCP, ep, "127.0.0.13");
	world_service(&w, &(struct w_svc){ .name = "dns", .vip = "127.0.0.5", .proto = INET_PROTO_UDP,
					   .port = pd, .port_name = "dns" });
	world_slice(&w, "dns", "dns", INET_PROTO_UDP, ep, "127.0.0.14");
	world_sync(&w, priv);
	api0 = snapshot_of(priv, "127.0.0.4", INET_PROTO_TCP, pa);
	dns0 = snapshot_of(priv, "127.0.0.5", INET_PROTO_UDP, pd);
	web0 = snapshot_of(priv, "127.0.0.3", INET_PROTO_TCP, pw);

	/* One endpoint of web changes. */
	userspace_get_stats(priv, &s0);
	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.11 127.0.0.12 127.0.0.13");
	world_apply(&w, priv);
	userspace_get_stats(priv, &s1);
	cr_assert_eq(s1.applies, s0.applies + 1);
	cr_assert_eq(s1.pools_built - s0.pools_built, 1, "%llu pools rebuilt for one changed set",
		     (unsigned long long)(s1.pools_built - s0.pools_built));
	cr_assert_eq(s1.services_made - s0.services_made, 1);
	cr_assert_eq(s1.listeners_opened, s0.listeners_opened);
	cr_assert_eq(s1.listeners_closed, s0.listeners_closed);
	cr_assert_eq(s1.health_updates, s0.health_updates);
	cr_assert_eq(snapshot_of(priv, "127.0.0.4", INET_PROTO_TCP, pa), api0, "api's snapshot was replaced");
	cr_assert_eq(snapshot_of(priv, "127.0.0.5", INET_PROTO_UDP, pd), dns0, "dns's snapshot was replaced");
	web1 = snapshot_of(priv, "127.0.0.3", INET_PROTO_TCP, pw);
	cr_assert_neq(web1, web0, "web's snapshot was not replaced");
	assert_reaches("127.0.0.3", pw, 6, "ABC");
	assert_reaches("127.0.0.4", pa, 2, "C");

	/* A service comes: one pool, one snapshot, one listener set. */
	userspace_get_stats(priv, &s0);
	world_service(&w, &(struct w_svc){ .name = "extra", .vip = "127.0.0.6", .port = px });
	world_slice(&w, "extra", "http", INET_PROTO_TCP, ep, "127.0.0.11");
	world_apply(&w, priv);
	userspace_get_stats(priv, &s1);
	cr_assert_eq(s1.pools_built - s0.pools_built, 1);
	cr_assert_eq(s1.services_made - s0.services_made, 1);
	cr_assert_eq(s1.listeners_opened - s0.listeners_opened, 1);
	cr_assert_eq(snapshot_of(priv, "127.0.0.3", INET_PROTO_TCP, pw), web1);
	cr_assert_eq(snapshot_of(priv, "127.0.0.4", INET_PROTO_TCP, pa), api0);
	assert_reaches("127.0.0.6", px, 2, "A");

	/* An SCTP port on it is skipped: no pool, no listener. */
	userspace_get_stats(priv, &s0);
	world_service(&w, &(struct w_svc){ .name = "sctp", .vip = "127.0.0.9", .proto = INET_PROTO_SCTP,
					   .port = px });
	world_slice(&w, "sctp", "http", INET_PROTO_SCTP, ep, "127.0.0.11");
	world_apply(&w, priv);
	userspace_get_stats(priv, &s1);
	cr_assert_eq(s1.pools_built, s0.pools_built);
	cr_assert_eq(s1.listeners_opened, s0.listeners_opened);

	/* It goes: one listener set closed, nothing rebuilt. */
	userspace_get_stats(priv, &s0);
	cr_assert_eq(model_delete_service(w.m, "default", "extra"), 0);
	cr_assert_eq(model_delete_service(w.m, "default", "sctp"), 0);
	world_apply(&w, priv);
	userspace_get_stats(priv, &s1);
	cr_assert_eq(s1.pools_built, s0.pools_built);
	cr_assert_eq(s1.services_made, s0.services_made);
	cr_assert_eq(s1.listeners_closed - s0.listeners_closed, 1);
	cr_assert_eq(snapshot_of(priv, "127.0.0.3", INET_PROTO_TCP, pw), web1);
	cr_assert_eq(snapshot_of(priv, "127.0.0.4", INET_PROTO_TCP, pa), api0);
	cr_assert_eq(snapshot_of(priv, "127.0.0.5", INET_PROTO_UDP, pd), dns0);
	assert_refused("127.0.0.6", px);

	/* A full sync, by contrast, rebuilds every pool and snapshot. */
	userspace_get_stats(priv, &s0);
	world_sync(&w, priv);
	userspace_get_stats(priv, &s1);
	cr_assert_eq(s1.pools_built - s0.pools_built, 3);
	cr_assert_neq(snapshot_of(priv, "127.0.0.4", INET_PROTO_TCP, pa), api0);
	assert_reaches("127.0.0.3", pw, 6, "ABC");
	udp_ask("127.0.0.5", pd, "ping", "Dping");

	backend_stop(priv);
	world_done(&w);
	for (int i = 0; i < 4; i++)
		echo_stop(&e[i]);
}

/* A connection keeps going through applies of other services, through an
 * apply of its own set that keeps its endpoint, and (draining) through the
 * one that removes it. */
Test(userspace_apply, long_lived_connection_survives_applies, .init = setup, .timeout = 60)
{
	struct echo e[4];
	struct world w;
	uint16_t ep = echoes_start(e, 4);
	uint16_t pw = free_port(AF_INET), pa = free_port(AF_INET), px = free_port(AF_INET);
	void *priv = backend_start();
	char id;
	int fd;

	world_init(&w);
	world_service(&w, &(struct w_svc){ .name = "web", .vip = "127.0.0.3", .port = pw });
	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.11 127.0.0.12");
	world_service(&w, &(struct w_svc){ .name = "api", .vip = "127.0.0.4", .port = pa });
	world_slice(&w, "api", "http", INET_PROTO_TCP, ep, "127.0.0.13");
	world_sync(&w, priv);
	fd = tcp_open("127.0.0.4", pa, &id);
	cr_assert_eq(id, 'C');
	cr_assert(tcp_echo(fd, "hello"));

	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.11 127.0.0.12 127.0.0.13");
	world_apply(&w, priv);
	cr_assert(tcp_echo(fd, "after an endpoint of another set came"));
	world_service(&w, &(struct w_svc){ .name = "extra", .vip = "127.0.0.6", .port = px });
	world_slice(&w, "extra", "http", INET_PROTO_TCP, ep, "127.0.0.11");
	world_apply(&w, priv);
	cr_assert(tcp_echo(fd, "after a service came"));
	world_service(&w, &(struct w_svc){ .name = "web", .vip = "127.0.0.3", .port = pw,
					   .balance = BALANCE_LEAST_CONN });
	world_apply(&w, priv);
	cr_assert(tcp_echo(fd, "after another set's policy changed"));
	cr_assert_eq(model_delete_service(w.m, "default", "extra"), 0);
	world_apply(&w, priv);
	cr_assert(tcp_echo(fd, "after a service went"));

	/* Its own set grows (its endpoint stays), then loses its endpoint. */
	world_slice(&w, "api", "http", INET_PROTO_TCP, ep, "127.0.0.13 127.0.0.14");
	world_apply(&w, priv);
	cr_assert(tcp_echo(fd, "after my set grew"));
	assert_reaches("127.0.0.4", pa, 4, "CD");
	world_slice(&w, "api", "http", INET_PROTO_TCP, ep, "127.0.0.14");
	world_apply(&w, priv);
	cr_assert(tcp_echo(fd, "draining"), "established connection was cut");
	assert_reaches("127.0.0.4", pa, 4, "D");
	(void)tcp_bulk(fd, 1u << 20, false);
	close(fd);

	backend_stop(priv);
	world_done(&w);
	for (int i = 0; i < 4; i++)
		echo_stop(&e[i]);
}

/* A listener that cannot open fails the apply (the runner then syncs);
 * what was applied works, and the sync that follows repairs the rest. */
Test(userspace_apply, error_returns_and_sync_recovers, .init = setup, .timeout = 60)
{
	struct echo e[2];
	struct world w;
	uint16_t ep = echoes_start(e, 2);
	uint16_t pw = free_port(AF_INET), px = free_port(AF_INET);
	struct sockaddr_storage ss;
	struct inet_addr la;
	void *priv = backend_start();
	int blocker;

	world_init(&w);
	world_service(&w, &(struct w_svc){ .name = "web", .vip = "127.0.0.3", .port = pw });
	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.11");
	world_sync(&w, priv);

	cr_assert_eq(inet_addr_parse("127.0.0.6", &la), 0);
	blocker = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(blocker, (struct sockaddr *)&ss, inet_to_sockaddr(&la, px, &ss)), 0);
	cr_assert_eq(listen(blocker, 1), 0);
	world_service(&w, &(struct w_svc){ .name = "extra", .vip = "127.0.0.6", .port = px });
	world_slice(&w, "extra", "http", INET_PROTO_TCP, ep, "127.0.0.12");
	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.11 127.0.0.12");
	cr_assert_lt(world_try_apply(&w, priv), 0, "a listener that cannot open must fail the apply");
	assert_reaches("127.0.0.3", pw, 4, "AB");

	close(blocker);
	world_sync(&w, priv);
	assert_reaches("127.0.0.6", px, 2, "B");
	world_slice(&w, "extra", "http", INET_PROTO_TCP, ep, "127.0.0.11 127.0.0.12");
	world_apply(&w, priv);
	assert_reaches("127.0.0.6", px, 4, "AB");

	backend_stop(priv);
	world_done(&w);
	echo_stop(&e[0]);
	echo_stop(&e[1]);
}

/* With interception, apply tells the provider only when a relay opened or
 * closed; an endpoint change reaches the relay through the snapshot. */
Test(userspace_apply, interception_is_pushed_only_when_relays_change, .init = setup, .timeout = 60)
{
	struct userspace_options cfg = { .workers = 2, .udp_idle_timeout_ms = 1000,
				      .intercept = &fake_intercept };
	struct echo e[3];
	struct world w;
	uint16_t ep = echoes_start(e, 3);
	uint16_t pw = free_port(AF_INET), pa = free_port(AF_INET);
	uint16_t relay_w, relay_a;
	void *priv = calloc(1, userspace_backend_ops.priv_size);

	cr_assert_not_null(priv);
	fake_n = 0;
	fake_syncs = fake_cleanups = fake_fail = 0;
	cr_assert_eq(userspace_backend_ops.init(priv, &cfg), 0);
	world_init(&w);
	world_service(&w, &(struct w_svc){ .name = "web", .vip = "127.0.0.3", .port = pw });
	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.11 127.0.0.12");
	world_sync(&w, priv);
	cr_assert_eq(fake_syncs, 1);
	cr_assert_eq(fake_n, 1);
	relay_w = fake_find("127.0.0.3", INET_PROTO_TCP, pw)->relay_port;
	cr_assert_neq(relay_w, 0);

	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.11 127.0.0.12 127.0.0.13");
	world_apply(&w, priv);
	cr_assert_eq(fake_syncs, 1, "an endpoint change pushed the redirects");
	cr_assert_eq(userspace_check_state(priv, w.plan), 0);

	world_service(&w, &(struct w_svc){ .name = "api", .vip = "127.0.0.4", .port = pa });
	world_slice(&w, "api", "http", INET_PROTO_TCP, ep, "127.0.0.13");
	world_apply(&w, priv);
	cr_assert_eq(fake_syncs, 2);
	cr_assert_eq(fake_n, 2);
	cr_assert_eq(fake_find("127.0.0.3", INET_PROTO_TCP, pw)->relay_port, relay_w);
	relay_a = fake_find("127.0.0.4", INET_PROTO_TCP, pa)->relay_port;
	cr_assert_eq(relay_a, relay_w, "both behind the one shared TCP relay socket");
	cr_assert_eq(userspace_check_state(priv, w.plan), 0);

	cr_assert_eq(model_delete_service(w.m, "default", "api"), 0);
	world_apply(&w, priv);
	cr_assert_eq(fake_syncs, 3);
	cr_assert_eq(fake_n, 1);
	cr_assert_not_null(fake_find("127.0.0.3", INET_PROTO_TCP, pw));
	cr_assert_eq(userspace_check_state(priv, w.plan), 0);

	/* A provider failure fails the apply. */
	fake_fail = 1;
	world_service(&w, &(struct w_svc){ .name = "api", .vip = "127.0.0.4", .port = pa });
	cr_assert_eq(world_try_apply(&w, priv), -EPERM);
	fake_fail = 0;
	world_sync(&w, priv);
	cr_assert_eq(fake_n, 2);

	userspace_backend_ops.fini(priv);
	free(priv);
	world_done(&w);
	for (int i = 0; i < 3; i++)
		echo_stop(&e[i]);
}

/* Random sequences of changes: after every apply the state is what a sync
 * of the plan leaves, and every service reaches exactly its endpoints. */
Test(userspace_apply, random_sequences_agree_with_sync, .init = setup, .timeout = 120)
{
	enum { N_SVC = 4, N_EP = 4, STEPS = 40 };
	struct echo e[N_EP];
	struct world w;
	uint16_t ep = echoes_start(e, N_EP), ports[N_SVC];
	unsigned eps[N_SVC] = { 0 };     /* bit i: endpoint 127.0.0.(11+i) */
	bool present[N_SVC] = { false }, maglev[N_SVC] = { false };
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	void *priv = backend_start();

	for (int i = 0; i < N_SVC; i++)
		ports[i] = free_port(AF_INET);
	world_init(&w);
	world_sync(&w, priv);
	for (int step = 0; step < STEPS; step++) {
		uint64_t r = balancer_random(&rng);
		int i = (int)(r % N_SVC);
		char name[16], vip[32], addrs[128] = "";

		snprintf(name, sizeof(name), "s%d", i);
		snprintf(vip, sizeof(vip), "127.0.0.%d", 20 + i);
		switch ((r >> 8) % 5) {
		case 0: /* the service comes or goes */
			if (present[i]) {
				cr_assert_eq(model_delete_service(w.m, "default", name), 0);
				present[i] = false;
				break;
			}
			present[i] = true;
			/* fall through */
		case 1: /* its policy changes */
			if ((r >> 8) % 5 == 1)
				maglev[i] = !maglev[i];
			if (present[i])
				world_service(&w, &(struct w_svc){ .name = name, .vip = vip, .port = ports[i],
								   .balance = maglev[i] ? BALANCE_MAGLEV
											: BALANCE_ROUND_ROBIN });
			break;
		default: /* an endpoint comes or goes */
			eps[i] ^= 1u << ((r >> 16) % N_EP);
			break;
		}
		for (int k = 0; k < N_EP; k++) {
			if (eps[i] & (1u << k)) {
				size_t len = strlen(addrs);

				snprintf(addrs + len, sizeof(addrs) - len, "%s127.0.0.%d", len ? " " : "", 11 + k);
			}
		}
		world_slice(&w, name, "http", INET_PROTO_TCP, ep, addrs);
		world_apply(&w, priv);
		for (int k = 0; k < N_SVC; k++) {
			char want[8] = "", got[32];
			int n = 0;

			snprintf(vip, sizeof(vip), "127.0.0.%d", 20 + k);
			if (!present[k])
				continue;
			for (int b = 0; b < N_EP; b++)
				if (eps[k] & (1u << b))
					want[n++] = (char)('A' + b);
			want[n] = '\0';
			if (n == 0) {
				assert_refused(vip, ports[k]);
				continue;
			}
			who_set(vip, ports[k], 2 * n, got);
			if (maglev[k])
				cr_assert(strlen(got) == 1 && strchr(want, got[0]),
					  "step %d: s%d (Maglev over %s) reached %s", step, k, want, got);
			else
				cr_assert_str_eq(got, want, "step %d: s%d reached %s, not %s", step, k, got, want);
		}
	}
	backend_stop(priv);
	world_done(&w);
	for (int i = 0; i < N_EP; i++)
		echo_stop(&e[i]);
}

/* ---- externalTrafficPolicy Local's short-circuit ---- */

/* Who counts as starting on this node: loopback, the host's own addresses
 * (asked of the routing table at that moment), and sources inside the
 * cluster CIDRs; nobody else. */
Test(userspace_relay, client_is_local)
{
	struct inet_prefix pods;
	struct inet_addr a;
	struct ifaddrs *ifs = NULL;

	cr_assert_eq(inet_prefix_parse("192.0.2.0/24", &pods), 0);
	inet_addr_parse("127.0.0.1", &a);
	cr_assert(relay_client_is_local(&a, NULL, 0), "loopback");
	inet_addr_parse("127.0.0.9", &a);
	cr_assert(relay_client_is_local(&a, NULL, 0), "127/8 is loopback");
	inet_addr_parse("::1", &a);
	cr_assert(relay_client_is_local(&a, NULL, 0));
	/* TEST-NET-1 and the IPv6 documentation prefix are nobody's address. */
	inet_addr_parse("192.0.2.7", &a);
	cr_assert_not(relay_client_is_local(&a, NULL, 0), "an address of no interface");
	cr_assert(relay_client_is_local(&a, &pods, 1), "a source inside the cluster CIDRs");
	inet_addr_parse("2001:db8::7", &a);
	cr_assert_not(relay_client_is_local(&a, &pods, 1), "a CIDR of the other family");
	/* Every address of this host's interfaces (link-local ones need a
	 * scope the relay's peer address would carry: skipped). */
	cr_assert_eq(getifaddrs(&ifs), 0);
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
		char buf[INET_ADDR_STRLEN];

		if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
			continue;
		cr_assert_eq(inet_from_sockaddr(i->ifa_addr, &a, NULL), 0);
		if (a.family == AF_INET6 && a.u.bytes[0] == 0xfe && (a.u.bytes[1] & 0xc0) == 0x80)
			continue;
		cr_assert(relay_client_is_local(&a, NULL, 0), "%s (%s) is this host's", inet_addr_format(&a, buf),
			  i->ifa_name);
	}
	freeifaddrs(ifs);
}

/* A short-circuit snapshot picks its set by client; without one every
 * client gets the frontend's own set. */
Test(userspace_relay, short_circuit_snapshot_picks_by_client)
{
	struct balancer *own = balancer_new(BALANCE_ROUND_ROBIN, NULL, 0, NULL);
	struct balancer *all = balancer_new(BALANCE_ROUND_ROBIN, NULL, 0, NULL);
	struct relay_service *s = relay_service_new(own, EMPTY_DROP, NULL, 0, NULL);
	struct inet_prefix pods;
	struct inet_addr outside, pod, lo;

	cr_assert(own && all && s);
	inet_addr_parse("192.0.2.7", &outside);
	inet_addr_parse("198.51.100.7", &pod);
	inet_addr_parse("127.0.0.1", &lo);
	cr_assert_eq(inet_prefix_parse("198.51.100.0/24", &pods), 0);
	cr_assert_eq(relay_service_balancer_for(s, &lo), own, "no short-circuit: the own set for all");
	cr_assert_eq(relay_service_set_short_circuit(s, all, &pods, 1), 0);
	cr_assert_eq(relay_service_balancer_for(s, &outside), own);
	cr_assert_eq(relay_service_balancer_for(s, &pod), all);
	cr_assert_eq(relay_service_balancer_for(s, &lo), all);
	relay_service_unref(s);
	balancer_unref(own);
	balancer_unref(all);
}

/* A load-balancer IP of an externalTrafficPolicy Local service whose
 * endpoints are all on another node: its Local set is empty, but this
 * host's own connections (loopback here) short-circuit to every endpoint.
 * When only the cluster-wide set changes (the Local one stays empty), apply
 * must still give the frontend a snapshot over the new set: the frontend is
 * listed among that set's short-circuit users. */
Test(userspace_apply, short_circuit_follows_its_set, .init = setup, .timeout = 60)
{
	struct echo e[3];
	struct world w;
	uint16_t ep = echoes_start(e, 3), p = free_port(AF_INET);
	void *priv = backend_start();
	const struct plan_frontend *lb = NULL;

	world_init_node(&w, "node-a");
	world_service(&w, &(struct w_svc){ .name = "web", .vip = "127.0.0.3", .port = p,
					   .lb_ip = "127.0.0.5", .etp_local = true });
	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.11@node-b 127.0.0.12@node-b");
	world_sync(&w, priv);
	for (size_t i = 0; i < w.plan->n_frontends; i++)
		if (w.plan->frontends[i].kind == FRONTEND_LOAD_BALANCER)
			lb = &w.plan->frontends[i];
	cr_assert_not_null(lb);
	cr_assert_not_null(lb->short_circuit, "the planner gives eTP Local LB IPs a short-circuit");
	cr_assert_eq(lb->epset->n_endpoints, 0, "no local endpoint");
	assert_reaches("127.0.0.5", p, 4, "AB");
	assert_reaches("127.0.0.3", p, 4, "AB");

	/* Only the cluster-wide set changes. */
	world_slice(&w, "web", "http", INET_PROTO_TCP, ep,
		    "127.0.0.11@node-b 127.0.0.12@node-b 127.0.0.13@node-b");
	world_apply(&w, priv);
	assert_reaches("127.0.0.5", p, 6, "ABC");

	/* A local endpoint: loopback still short-circuits to all of them. */
	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.11@node-a 127.0.0.12@node-b");
	world_apply(&w, priv);
	assert_reaches("127.0.0.5", p, 4, "AB");

	/* The policy goes back to Cluster: no short-circuit any more. */
	world_service(&w, &(struct w_svc){ .name = "web", .vip = "127.0.0.3", .port = p,
					   .lb_ip = "127.0.0.5" });
	world_apply(&w, priv);
	assert_reaches("127.0.0.5", p, 4, "AB");
	world_sync(&w, priv);

	backend_stop(priv);
	world_done(&w);
	for (int i = 0; i < 3; i++)
		echo_stop(&e[i]);
}

/* The guards of the service range reach the provider with the redirects:
 * after a sync, and after an apply that changes only them (a service CIDR
 * from the model) though no relay opened or closed. */
Test(userspace_apply, guards_are_pushed_with_the_redirects, .init = setup, .timeout = 60)
{
	struct userspace_options cfg = { .workers = 1, .intercept = &fake_intercept };
	struct echo e[1];
	struct world w;
	struct inet_prefix range;
	struct inet_addr vip;
	uint16_t ep = echoes_start(e, 1), p = free_port(AF_INET);
	void *priv = calloc(1, userspace_backend_ops.priv_size);
	int syncs;

	cr_assert_not_null(priv);
	fake_n = fake_n_ips = fake_n_cidrs = 0;
	fake_syncs = fake_cleanups = fake_fail = 0;
	cr_assert_eq(userspace_backend_ops.init(priv, &cfg), 0);
	world_init(&w);
	world_service(&w, &(struct w_svc){ .name = "web", .vip = "127.0.0.3", .port = p });
	world_slice(&w, "web", "http", INET_PROTO_TCP, ep, "127.0.0.11");
	world_sync(&w, priv);
	inet_addr_parse("127.0.0.3", &vip);
	cr_assert_eq(fake_n_ips, 1);
	cr_assert_eq(inet_addr_cmp(&fake_ips[0], &vip), 0);
	cr_assert_eq(fake_n_cidrs, 0);

	syncs = fake_syncs;
	cr_assert_eq(inet_prefix_parse("127.0.0.0/24", &range), 0);
	cr_assert_eq(model_set_service_cidrs(w.m, &range, 1), 1, "the model did not change");
	world_apply(&w, priv);
	cr_assert(w.diff->guards_changed);
	cr_assert_eq(fake_syncs, syncs + 1, "new guards were not pushed");
	cr_assert_eq(fake_n_cidrs, 1);
	cr_assert_eq(fake_n, 1, "the redirects go with them");

	userspace_backend_ops.fini(priv);
	free(priv);
	world_done(&w);
	echo_stop(&e[0]);
}

/* ---- service ports' traffic (backend_ops.service_stats) ---- */

/* What the last scrape said about one service port, and the health lines
 * it gave. */
struct scrape {
	const char *name;                 /* the service looked for */
	enum inet_proto proto;
	struct backend_service_stats got; /* its strings only valid in the callback: */
	char port_name[32];               /* got.port_name, copied */
	int lines;                        /* stats lines for name/proto */
	int health, healthy;              /* health lines, of them healthy */
};

static void scrape_stats(void *userdata, const struct backend_service_stats *s)
{
	struct scrape *sc = userdata;

	if (strcmp(s->name, sc->name) != 0 || s->proto != sc->proto)
		return;
	cr_assert_str_eq(s->ns, "default");
	sc->got = *s;
	snprintf(sc->port_name, sizeof(sc->port_name), "%s", s->port_name);
	sc->got.ns = sc->got.name = sc->got.port_name = NULL;
	sc->lines++;
}

static void scrape_health(void *userdata, const struct backend_endpoint_health *h)
{
	struct scrape *sc = userdata;

	cr_assert_not_null(h->addr);
	sc->health++;
	sc->healthy += h->healthy;
}

static struct scrape scrape(void *priv, const char *name, enum inet_proto proto)
{
	struct scrape sc = { .name = name, .proto = proto };

	userspace_backend_ops.service_stats(priv, scrape_stats, scrape_health, &sc);
	return sc;
}

/* Wait (bounded) until name's port has no connection or flow open. */
static struct scrape scrape_idle(void *priv, const char *name, enum inet_proto proto)
{
	struct scrape sc = scrape(priv, name, proto);

	for (int i = 0; i < 100 && sc.got.active != 0; i++) {
		usleep(20 * 1000);
		sc = scrape(priv, name, proto);
	}
	return sc;
}

/* Relayed connections, flows and bytes are counted per service port,
 * exactly: two services on one backend instance each see their own; the
 * counters are totals that survive a sync; a checked endpoint has a health
 * line. */
Test(userspace_relay, service_stats_count_relayed_traffic, .init = setup, .timeout = 30)
{
	struct echo a;
	struct tplan t = { 0 };
	struct plan_epset *web, *api, *dns;
	uint16_t pw = free_port(AF_INET), pa = free_port(AF_INET), pu = free_port(AF_INET);
	struct scrape sc;
	void *priv;
	const char *msg = "hello through the relay"; /* what tcp_who sends */
	size_t len = strlen(msg);

	echo_start(&a, 'A', AF_INET, 0);
	web = tp_epset(&t, "default/web:http/TCP", "web", INET_PROTO_TCP);
	tp_endpoint(web, "127.0.0.1", a.port);
	api = tp_epset(&t, "default/api:http/TCP", "api", INET_PROTO_TCP);
	tp_endpoint(api, "127.0.0.1", a.port);
	api->health.enabled = true;
	dns = tp_epset(&t, "default/dns:dns/UDP", "dns", INET_PROTO_UDP);
	tp_endpoint(dns, "127.0.0.1", a.port);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.3", INET_PROTO_TCP, pw, web);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.3", INET_PROTO_UDP, pu, dns);
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.4", INET_PROTO_TCP, pa, api);
	priv = backend_start();
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);

	sc = scrape(priv, "web", INET_PROTO_TCP);
	cr_assert_eq(sc.lines, 1, "one line per service port");
	cr_assert_eq(sc.got.connections, 0);
	cr_assert_str_eq(sc.port_name, "http");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(tcp_who("127.0.0.3", pw), 'A');
	cr_assert_eq(tcp_who("127.0.0.4", pa), 'A');
	udp_ask("127.0.0.3", pu, "q1", "Aq1");
	udp_ask("127.0.0.3", pu, "q22", "Aq22");

	sc = scrape_idle(priv, "web", INET_PROTO_TCP);
	cr_assert_eq(sc.got.connections, 3);
	cr_assert_eq(sc.got.active, 0);
	cr_assert_eq(sc.got.bytes_in, 3 * len, "client -> endpoint: %lu", (unsigned long)sc.got.bytes_in);
	cr_assert_eq(sc.got.bytes_out, 3 * (len + 1), "endpoint -> client (greeting + echo)");
	cr_assert_eq(sc.health, 1, "api's one checked endpoint");
	sc = scrape_idle(priv, "api", INET_PROTO_TCP);
	cr_assert_eq(sc.got.connections, 1);
	cr_assert_eq(sc.got.bytes_in, len);
	/* Two datagrams from two client sockets: two flows. A reply is
	 * counted after it was sent: wait for the worker to get there. */
	sc = scrape(priv, "dns", INET_PROTO_UDP);
	for (int i = 0; i < 100 && sc.got.bytes_out < 7; i++) {
		usleep(10 * 1000);
		sc = scrape(priv, "dns", INET_PROTO_UDP);
	}
	cr_assert_eq(sc.got.connections, 2);
	cr_assert_eq(sc.got.bytes_in, 2 + 3);
	cr_assert_eq(sc.got.bytes_out, 3 + 4);

	/* A sync keeps the totals; traffic adds to them. */
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);
	cr_assert_eq(tcp_who("127.0.0.3", pw), 'A');
	sc = scrape_idle(priv, "web", INET_PROTO_TCP);
	cr_assert_eq(sc.got.connections, 4);
	cr_assert_eq(sc.got.bytes_in, 4 * len);
	backend_stop(priv);
	echo_stop(&a);
}

/* ---- interception through the kernel, in a private network namespace ---- */

/* Enter a network namespace of this test process (Criterion runs each
 * test in its own): loopback up, 10.96.0.0/16 routed to it as a node
 * routes its service CIDR somewhere. Skips without root or nftables. */
static void enter_private_netns(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root for a private network namespace");
	if (unshare(CLONE_NEWNET) == -1)
		cr_skip_test("cannot unshare a network namespace: %s", strerror(errno));
	/* The source address is the loopback's: without one the kernel
	 * would pick 0.0.0.0 for a route through lo. */
	if (system("ip link set lo up && ip route add 10.96.0.0/16 dev lo src 127.0.0.1") != 0)
		cr_skip_test("iproute2 could not set up the namespace");
}

/* Descriptors this process has open. */
static size_t fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;

	cr_assert_not_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* A plan of one TCP (web) and one UDP (dns) cluster IP frontend at each
 * of n addresses from 10.96.1.2 on (250 per /24), plus web and dns at 10.96.0.10 and svc7 at
 * 10.96.0.7:8080 and web's node port 30080 on every address, all over the
 * echo server at 127.0.0.1:port. Sorted as
 * the planner sorts (kind, address, protocol, port). Heap-allocated; give
 * it back with big_plan_free. */
static struct plan *big_plan_new(size_t n, uint16_t port)
{
	struct plan *p = calloc(1, sizeof(*p));
	struct plan_epset *e = calloc(3, sizeof(*e));
	struct plan_endpoint *ep = calloc(1, sizeof(*ep));
	struct plan_frontend *f = calloc(2 * n + 4, sizeof(*f));
	char *names[3] = { "web", "dns", "svc7" }, *keys[3] = { "default/web:http/TCP", "default/dns:dns/UDP",
							       "default/svc7:http/TCP" };
	size_t k = 0;

	cr_assert(p && e && ep && f);
	cr_assert_eq(inet_addr_parse("127.0.0.1", &ep->addr), 0);
	ep->port = port;
	for (int i = 0; i < 3; i++) {
		e[i].key = keys[i];
		e[i].ns = "default";
		e[i].svc_name = names[i];
		e[i].port_name = i == 1 ? "dns" : "http";
		e[i].proto = i == 1 ? INET_PROTO_UDP : INET_PROTO_TCP;
		e[i].endpoints = ep;
		e[i].n_endpoints = 1;
		e[i].balance = BALANCE_ROUND_ROBIN;
	}
	f[k].addr.family = AF_INET;
	inet_addr_parse("10.96.0.7", &f[k].addr);
	f[k].proto = INET_PROTO_TCP, f[k].port = 8080, f[k++].epset = &e[2];
	inet_addr_parse("10.96.0.10", &f[k].addr);
	f[k].proto = INET_PROTO_TCP, f[k].port = 80, f[k++].epset = &e[0];
	inet_addr_parse("10.96.0.10", &f[k].addr);
	f[k].proto = INET_PROTO_UDP, f[k].port = 53, f[k++].epset = &e[1];
	for (size_t i = 1; i <= n; i++) {
		char ip[32];

		snprintf(ip, sizeof(ip), "10.96.%zu.%zu", 1 + i / 250, 1 + i % 250);
		inet_addr_parse(ip, &f[k].addr);
		f[k].proto = INET_PROTO_TCP, f[k].port = 80, f[k++].epset = &e[0];
		inet_addr_parse(ip, &f[k].addr);
		f[k].proto = INET_PROTO_UDP, f[k].port = 53, f[k++].epset = &e[1];
	}
	for (size_t i = 0; i < k; i++)
		f[i].kind = FRONTEND_CLUSTER_IP;
	/* Last in the planner's order: web's node port on every address. */
	f[k].kind = FRONTEND_NODE_PORT;
	f[k].addr = inet_addr_any(AF_INET);
	f[k].proto = INET_PROTO_TCP, f[k].port = 30080, f[k++].epset = &e[0];
	p->frontends = f;
	p->n_frontends = k;
	p->epsets = e;
	p->n_epsets = 3;
	return p;
}

static void big_plan_free(struct plan *p)
{
	free((void *)p->epsets[0].endpoints);
	free(p->epsets);
	free(p->frontends);
	free(p);
}

/* The real provider redirects cluster IPs to the shared relay sockets:
 * connections and UDP flows from this host reach their frontends' own
 * endpoints through them, looked up by original destination (TCP) and
 * conntrack (UDP), replies come from the VIP, and 600 more frontends open
 * no descriptor at all (the old relay opened two sockets per frontend and
 * worker: 2400 here). Traffic is counted per service port. */
Test(userspace_relay, intercepted_traffic_through_nftables, .init = setup, .timeout = 60)
{
	struct userspace_options cfg = { .workers = 2, .udp_idle_timeout_ms = 1000,
				      .intercept = &nftables_intercept_ops };
	struct plan *small, *big;
	struct echo a;
	struct scrape sc;
	size_t fds_small, fds_big;
	void *priv;

	enter_private_netns();
	echo_start(&a, 'A', AF_INET, 0);
	small = big_plan_new(0, a.port);
	big = big_plan_new(300, a.port);
	priv = calloc(1, userspace_backend_ops.priv_size);
	cr_assert_not_null(priv);
	cr_assert_eq(userspace_backend_ops.init(priv, &cfg), 0);
	cr_assert_eq(userspace_backend_ops.sync(priv, small), 0);
	cr_assert_eq(tcp_who("10.96.0.10", 80), 'A');
	udp_ask("10.96.0.10", 53, "small", "Asmall");
	/* The node port, on a local address, through the shared socket too. */
	cr_assert_eq(tcp_who("127.0.0.1", 30080), 'A');
	fds_small = fd_count();

	cr_assert_eq(userspace_backend_ops.sync(priv, big), 0);
	cr_assert_eq(userspace_check_state(priv, big), 0);
	fds_big = fd_count();
	cr_assert_leq(fds_big, fds_small + 2, "%zu descriptors with 4 frontends, %zu with 604", fds_small,
		      fds_big);
	cr_assert_eq(tcp_who("10.96.1.250", 80), 'A');
	cr_assert_eq(tcp_who("10.96.2.51", 80), 'A');
	udp_ask("10.96.1.17", 53, "big", "Abig");
	udp_ask("10.96.2.50", 53, "bigger", "Abigger");
	for (int i = 0; i < 5; i++)
		cr_assert_eq(tcp_who("10.96.0.7", 8080), 'A');
	sc = scrape_idle(priv, "svc7", INET_PROTO_TCP);
	cr_assert_eq(sc.got.connections, 5, "svc7 counts only its own: %lu", (unsigned long)sc.got.connections);
	cr_assert_eq(sc.got.bytes_in, 5 * strlen("hello through the relay"));
	sc = scrape(priv, "dns", INET_PROTO_UDP);
	cr_assert_eq(sc.got.connections, 3);

	/* Gone from the plan: the redirect goes, the frontend too. */
	cr_assert_eq(userspace_backend_ops.sync(priv, small), 0);
	cr_assert_eq(userspace_check_state(priv, small), 0);
	cr_assert_eq(tcp_who("10.96.0.10", 80), 'A');
	userspace_backend_ops.fini(priv);
	free(priv);
	big_plan_free(small);
	big_plan_free(big);
	echo_stop(&a);
}

/* A set past BALANCER_BLOCK_MAX endpoints takes more than one block: sync
 * builds it, a later sync keeps half of it (carried over, blocks shared
 * with the new ones) and adds as many, and the state matches the plan each
 * time. No sockets: the frontend is intercepted by the fake provider. */
Test(userspace_relay, set_larger_than_a_block, .init = setup, .timeout = 60)
{
	enum { N = BALANCER_BLOCK_MAX + 4465 }; /* 70,000 */
	struct userspace_options cfg = { .workers = 1, .udp_idle_timeout_ms = 1000,
				      .intercept = &fake_intercept };
	struct plan_endpoint *eps = calloc(N, sizeof(*eps));
	struct tplan t = { 0 };
	struct plan_epset *e;
	void *priv;

	cr_assert_not_null(eps);
	e = tp_epset(&t, "default/big:http/TCP", "big", INET_PROTO_TCP);
	e->endpoints = eps;
	for (size_t i = 0; i < N; i++) {
		eps[i].addr = inet_addr_any(AF_INET);
		eps[i].addr.u.v4.s_addr = htonl(0x0a000000u + (uint32_t)i);
		eps[i].port = 8080;
	}
	e->n_endpoints = N;
	tp_frontend(&t, FRONTEND_CLUSTER_IP, "127.0.0.3", INET_PROTO_TCP, 80, e);
	fake_n = 0;
	fake_syncs = fake_cleanups = fake_fail = fake_inits = fake_finis = 0;
	priv = calloc(1, userspace_backend_ops.priv_size);
	cr_assert_not_null(priv);
	cr_assert_eq(userspace_backend_ops.init(priv, &cfg), 0);
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);
	cr_assert_eq(userspace_check_state(priv, &t.plan), 0);
	/* Every other address moves up by N: half kept, half new. */
	for (size_t i = 1; i < N; i += 2)
		eps[i].addr.u.v4.s_addr = htonl(0x0a000000u + (uint32_t)(N + i));
	qsort(eps, N, sizeof(*eps), plan_endpoint_cmp);
	cr_assert_eq(userspace_backend_ops.sync(priv, &t.plan), 0);
	cr_assert_eq(userspace_check_state(priv, &t.plan), 0);
	userspace_backend_ops.fini(priv);
	free(priv);
	free(eps);
}

/* A service port keeps one text, its label; the namespace, name and port
 * name come back from it by their lengths, whatever characters they hold. */
Test(userspace_relay, svcport_label_and_names)
{
	struct relay_svcport *named = relay_svcport_new("kube-system", "kube-dns", "dns-tcp", INET_PROTO_TCP);
	struct relay_svcport *unnamed = relay_svcport_new("default", "web", NULL, INET_PROTO_UDP);
	struct relay_svcport *odd = relay_svcport_new("a/b", "c:d", "e", INET_PROTO_TCP);
	struct relay_svcport_names n;
	char buf[64];

	cr_assert(named && unnamed && odd);
	cr_expect_str_eq(named->label, "kube-system/kube-dns:dns-tcp");
	relay_svcport_names(named, buf, &n);
	cr_expect_str_eq(n.ns, "kube-system");
	cr_expect_str_eq(n.name, "kube-dns");
	cr_expect_str_eq(n.port_name, "dns-tcp");
	cr_expect_str_eq(unnamed->label, "default/web");
	relay_svcport_names(unnamed, buf, &n);
	cr_expect_str_eq(n.ns, "default");
	cr_expect_str_eq(n.name, "web");
	cr_expect_str_eq(n.port_name, "");
	relay_svcport_names(odd, buf, &n);
	cr_expect_str_eq(n.ns, "a/b");
	cr_expect_str_eq(n.name, "c:d");
	cr_expect_str_eq(n.port_name, "e");
	cr_expect_str_eq(odd->label, "a/b/c:d:e", "the label itself is unchanged");
	relay_svcport_unref(named);
	relay_svcport_unref(unnamed);
	relay_svcport_unref(odd);
}
