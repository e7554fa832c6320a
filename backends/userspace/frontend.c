/* Frontends, their service snapshots and their listening sockets. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"

struct relay_service *relay_service_new(struct balancer *balancer, enum empty_verdict when_empty,
					const struct inet_prefix *ranges, size_t n_ranges,
					const char *label)
{
	struct relay_service *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (n_ranges > 0) {
		s->source_ranges = calloc(n_ranges, sizeof(*ranges));
		if (!s->source_ranges) {
			free(s);
			return NULL;
		}
		memcpy(s->source_ranges, ranges, n_ranges * sizeof(*ranges));
		s->n_source_ranges = n_ranges;
	}
	atomic_init(&s->refs, 1);
	s->balancer = balancer_ref(balancer);
	s->when_empty = when_empty;
	snprintf(s->label, sizeof(s->label), "%s", label ? label : "?");
	return s;
}

struct relay_service *relay_service_unref(struct relay_service *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return NULL;
	balancer_unref(s->balancer);
	balancer_unref(s->short_circuit);
	free(s->source_ranges);
	free(s->local_cidrs);
	free(s);
	return NULL;
}

int relay_service_set_short_circuit(struct relay_service *s, struct balancer *sc,
				    const struct inet_prefix *cidrs, size_t n)
{
	struct inet_prefix *copy = NULL;

	if (n > 0) {
		copy = calloc(n, sizeof(*copy));
		if (!copy)
			return -ENOMEM;
		memcpy(copy, cidrs, n * sizeof(*copy));
	}
	balancer_unref(s->short_circuit);
	free(s->local_cidrs);
	s->short_circuit = sc ? balancer_ref(sc) : NULL;
	s->local_cidrs = copy;
	s->n_local_cidrs = n;
	return 0;
}

struct balancer *relay_service_balancer_for(const struct relay_service *s,
					    const struct inet_addr *client)
{
	if (s->short_circuit && relay_client_is_local(client, s->local_cidrs, s->n_local_cidrs))
		return s->short_circuit;
	return s->balancer;
}

bool relay_service_allows(const struct relay_service *s, const struct inet_addr *client)
{
	if (s->n_source_ranges == 0)
		return true;
	for (size_t i = 0; i < s->n_source_ranges; i++)
		if (inet_prefix_contains(&s->source_ranges[i], client))
			return true;
	return false;
}

struct relay_frontend *relay_frontend_new(const struct inet_addr *addr, enum inet_proto proto,
					  uint16_t port, struct relay_service *svc)
{
	struct relay_frontend *fe = calloc(1, sizeof(*fe));
	char ep[INET_ENDPOINT_STRLEN];

	if (!fe)
		return NULL;
	if (pthread_mutex_init(&fe->lock, NULL) != 0) {
		free(fe);
		return NULL;
	}
	atomic_init(&fe->refs, 1);
	fe->addr = *addr;
	fe->proto = proto;
	fe->port = port;
	snprintf(fe->name, sizeof(fe->name), "%s/%s", inet_endpoint_format(addr, port, ep),
		 inet_proto_name(proto));
	atomic_fetch_add_explicit(&svc->refs, 1, memory_order_relaxed);
	fe->svc = svc;
	return fe;
}

struct relay_frontend *relay_frontend_ref(struct relay_frontend *fe)
{
	atomic_fetch_add_explicit(&fe->refs, 1, memory_order_relaxed);
	return fe;
}

struct relay_frontend *relay_frontend_unref(struct relay_frontend *fe)
{
	if (!fe || atomic_fetch_sub_explicit(&fe->refs, 1, memory_order_acq_rel) != 1)
		return NULL;
	relay_service_unref(fe->svc);
	pthread_mutex_destroy(&fe->lock);
	free(fe);
	return NULL;
}

void relay_frontend_set_service(struct relay_frontend *fe, struct relay_service *svc)
{
	struct relay_service *old;

	atomic_fetch_add_explicit(&svc->refs, 1, memory_order_relaxed);
	pthread_mutex_lock(&fe->lock);
	old = fe->svc;
	fe->svc = svc;
	pthread_mutex_unlock(&fe->lock);
	/* Outside the lock: the last reference may free a whole balancer. */
	relay_service_unref(old);
}

struct relay_service *relay_frontend_service(struct relay_frontend *fe)
{
	struct relay_service *s;

	pthread_mutex_lock(&fe->lock);
	s = fe->svc;
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&fe->lock);
	return s;
}

void relay_frontend_set_port(struct relay_frontend *fe, uint16_t port)
{
	char ep[INET_ENDPOINT_STRLEN];

	fe->port = port;
	snprintf(fe->name, sizeof(fe->name), "%s/%s", inet_endpoint_format(&fe->addr, port, ep),
		 inet_proto_name(fe->proto));
}

int relay_listener_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct inet_addr a;
	uint16_t port = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return -errno;
	if (inet_from_sockaddr((struct sockaddr *)&ss, &a, &port) < 0 || port == 0)
		return -EADDRNOTAVAIL;
	return port;
}

static int set_int_opt(int fd, int level, int name, int value)
{
	if (setsockopt(fd, level, name, &value, sizeof(value)) == -1)
		return -errno;
	return 0;
}

int relay_listener_socket(const struct relay_frontend *fe)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int family = fe->addr.family == AF_INET6 ? AF_INET6 : AF_INET;
	int type = fe->proto == INET_PROTO_UDP ? SOCK_DGRAM : SOCK_STREAM;
	int fd, r;

	fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	r = set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	if (r == 0)
		r = set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
	/* FREEBIND lets a VIP be bound before (or without) it being assigned
	 * to an interface of this host. */
	if (r == 0 && family == AF_INET6) {
		r = set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
		if (r == 0)
			r = set_int_opt(fd, IPPROTO_IPV6, IPV6_FREEBIND, 1);
	} else if (r == 0) {
		r = set_int_opt(fd, IPPROTO_IP, IP_FREEBIND, 1);
	}
	/* Accepted sockets inherit TCP_NODELAY: the relay forwards what it
	 * reads at once, and Nagle would hold back the tail of a reply. Set
	 * here it costs no system call per connection. */
	if (r == 0 && type == SOCK_STREAM)
		r = set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
	if (r == 0 && type == SOCK_DGRAM && inet_addr_is_any(&fe->addr)) {
		if (family == AF_INET6)
			r = set_int_opt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
		else
			r = set_int_opt(fd, IPPROTO_IP, IP_PKTINFO, 1);
	}
	if (r < 0)
		goto fail;
	len = inet_to_sockaddr(&fe->addr, fe->port, &ss);
	ss.ss_family = (sa_family_t)family;
	if (bind(fd, (struct sockaddr *)&ss, len) == -1) {
		r = -errno;
		goto fail;
	}
	if (type == SOCK_STREAM && listen(fd, 1024) == -1) {
		r = -errno;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return r;
}
