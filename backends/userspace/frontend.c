/* Frontends, their service snapshots, the service ports those count into,
 * the service table of the shared relay sockets, and listening sockets. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"

struct relay_svcport *relay_svcport_new(const char *ns, const char *name, const char *port_name,
					enum inet_proto proto)
{
	struct relay_svcport *p;
	size_t ns_len, name_len, pn_len, label_len;

	ns = ns ? ns : "?";
	name = name ? name : "?";
	port_name = port_name ? port_name : "";
	ns_len = strlen(ns);
	name_len = strlen(name);
	pn_len = strlen(port_name);
	/* "ns/name:port" (or "ns/name"), the one copy of the three. */
	label_len = ns_len + 1 + name_len + (pn_len ? 1 + pn_len : 0);
	if (label_len + 1 > UINT16_MAX)
		return NULL;
	p = calloc(1, sizeof(*p) + label_len + 1);
	if (!p)
		return NULL;
	if (pn_len)
		snprintf(p->label, label_len + 1, "%s/%s:%s", ns, name, port_name);
	else
		snprintf(p->label, label_len + 1, "%s/%s", ns, name);
	p->ns_len = (uint16_t)ns_len;
	p->name_len = (uint16_t)name_len;
	p->proto = proto;
	atomic_init(&p->refs, 1);
	return p;
}

void relay_svcport_names(const struct relay_svcport *p, char *buf, struct relay_svcport_names *ret)
{
	size_t len = strlen(p->label), name_end = (size_t)p->ns_len + 1 + p->name_len;

	memcpy(buf, p->label, len + 1);
	buf[p->ns_len] = '\0';
	ret->ns = buf;
	ret->name = buf + p->ns_len + 1;
	if (name_end < len) {
		buf[name_end] = '\0';
		ret->port_name = buf + name_end + 1;
	} else {
		ret->port_name = buf + len; /* "" */
	}
}

struct relay_svcport *relay_svcport_ref(struct relay_svcport *p)
{
	if (p)
		atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	return p;
}

struct relay_svcport *relay_svcport_unref(struct relay_svcport *p)
{
	if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
		return NULL;
	free(p);
	return NULL;
}

void relay_svcport_open(struct relay_svcport *p)
{
	if (!p)
		return;
	atomic_fetch_add_explicit(&p->connections, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->active, 1, memory_order_relaxed);
}

void relay_svcport_close(struct relay_svcport *p)
{
	if (p)
		atomic_fetch_sub_explicit(&p->active, 1, memory_order_relaxed);
}

static void scope_free(struct relay_service_scope *sc)
{
	if (!sc)
		return;
	balancer_unref(sc->short_circuit);
	free(sc->source_ranges);
	free(sc->local_cidrs);
	free(sc);
}

struct relay_service *relay_service_new(struct balancer *balancer, enum empty_verdict when_empty,
					const struct inet_prefix *ranges, size_t n_ranges,
					struct relay_svcport *port)
{
	struct relay_service *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (n_ranges > 0) {
		s->scope = calloc(1, sizeof(*s->scope));
		if (s->scope)
			s->scope->source_ranges = calloc(n_ranges, sizeof(*ranges));
		if (!s->scope || !s->scope->source_ranges) {
			scope_free(s->scope);
			free(s);
			return NULL;
		}
		memcpy(s->scope->source_ranges, ranges, n_ranges * sizeof(*ranges));
		s->scope->n_source_ranges = (uint32_t)n_ranges;
	}
	atomic_init(&s->refs, 1);
	s->balancer = balancer_ref(balancer);
	s->when_empty = when_empty;
	s->port = relay_svcport_ref(port);
	return s;
}

struct relay_service *relay_service_unref(struct relay_service *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return NULL;
	balancer_unref(s->balancer);
	relay_svcport_unref(s->port);
	scope_free(s->scope);
	free(s);
	return NULL;
}

int relay_service_set_short_circuit(struct relay_service *s, struct balancer *sc,
				    const struct inet_prefix *cidrs, size_t n)
{
	struct inet_prefix *copy = NULL;

	if (!s->scope && !(s->scope = calloc(1, sizeof(*s->scope))))
		return -ENOMEM;
	if (n > 0) {
		copy = calloc(n, sizeof(*copy));
		if (!copy)
			return -ENOMEM; /* an empty scope reads as none */
		memcpy(copy, cidrs, n * sizeof(*copy));
	}
	balancer_unref(s->scope->short_circuit);
	free(s->scope->local_cidrs);
	s->scope->short_circuit = sc ? balancer_ref(sc) : NULL;
	s->scope->local_cidrs = copy;
	s->scope->n_local_cidrs = (uint32_t)n;
	return 0;
}

struct balancer *relay_service_balancer_for(const struct relay_service *s,
					    const struct inet_addr *client)
{
	const struct relay_service_scope *sc = s->scope;

	if (sc && sc->short_circuit && relay_client_is_local(client, sc->local_cidrs, sc->n_local_cidrs))
		return sc->short_circuit;
	return s->balancer;
}

bool relay_service_allows(const struct relay_service *s, const struct inet_addr *client)
{
	const struct relay_service_scope *sc = s->scope;

	if (!sc || sc->n_source_ranges == 0)
		return true;
	for (size_t i = 0; i < sc->n_source_ranges; i++)
		if (inet_prefix_contains(&sc->source_ranges[i], client))
			return true;
	return false;
}

/* The locks that guard the frontends' svc pointers, a frontend's chosen by
 * its address: a mutex per frontend would cost 40 bytes each, and these
 * are held for a pointer load and an increment only. */
#define FE_LOCK_BITS 6
#define FE_LOCK_1 PTHREAD_MUTEX_INITIALIZER
#define FE_LOCK_4 FE_LOCK_1, FE_LOCK_1, FE_LOCK_1, FE_LOCK_1
#define FE_LOCK_16 FE_LOCK_4, FE_LOCK_4, FE_LOCK_4, FE_LOCK_4
static pthread_mutex_t fe_locks[1u << FE_LOCK_BITS] = {
	FE_LOCK_16, FE_LOCK_16, FE_LOCK_16, FE_LOCK_16,
};

static pthread_mutex_t *fe_lock(const struct relay_frontend *fe)
{
	uint64_t h = (uint64_t)(uintptr_t)fe * 0x9e3779b97f4a7c15ULL;

	return &fe_locks[h >> (64 - FE_LOCK_BITS)];
}

const char *relay_frontend_name(const struct relay_frontend *fe, char *buf)
{
	char ep[INET_ENDPOINT_STRLEN];

	snprintf(buf, RELAY_FRONTEND_NAME_LEN, "%s/%s", inet_endpoint_format(&fe->addr, fe->port, ep),
		 inet_proto_name(fe->proto));
	return buf;
}

void relay_frontend_init(struct relay_frontend *fe, const struct inet_addr *addr, enum inet_proto proto,
			 uint16_t port, struct relay_service *svc)
{
	atomic_init(&fe->refs, 1);
	fe->addr = *addr;
	fe->proto = proto;
	fe->port = port;
	if (svc)
		atomic_fetch_add_explicit(&svc->refs, 1, memory_order_relaxed);
	fe->svc = svc;
}

struct relay_frontend *relay_frontend_new(const struct inet_addr *addr, enum inet_proto proto,
					  uint16_t port, struct relay_service *svc)
{
	struct relay_frontend *fe = calloc(1, sizeof(*fe));

	if (fe)
		relay_frontend_init(fe, addr, proto, port, svc);
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
	free(fe); /* the whole object when fe is the first member of one */
	return NULL;
}

void relay_frontend_set_service(struct relay_frontend *fe, struct relay_service *svc)
{
	struct relay_service *old;

	atomic_fetch_add_explicit(&svc->refs, 1, memory_order_relaxed);
	pthread_mutex_lock(fe_lock(fe));
	old = fe->svc;
	fe->svc = svc;
	pthread_mutex_unlock(fe_lock(fe));
	/* Outside the lock: the last reference may free a whole balancer. */
	relay_service_unref(old);
}

struct relay_service *relay_frontend_service(struct relay_frontend *fe)
{
	struct relay_service *s;

	pthread_mutex_lock(fe_lock(fe));
	s = fe->svc;
	if (s)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(fe_lock(fe));
	return s;
}

/* ---- the service table ---- */

#define TABLE_MIN_BUCKETS 256u

static size_t table_hash(const struct inet_addr *addr, enum inet_proto proto, uint16_t port)
{
	/* FNV-1a over the key bytes, then a final mix: cheap, and the keys
	 * (cluster IPs from one CIDR, a few ports) differ in few bits. */
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t len = addr->family == AF_INET6 ? 16 : 4;

	for (size_t i = 0; i < len; i++)
		h = (h ^ addr->u.bytes[i]) * 0x100000001b3ULL;
	h = (h ^ (uint64_t)proto) * 0x100000001b3ULL;
	h = (h ^ (uint64_t)port) * 0x100000001b3ULL;
	h ^= h >> 29;
	return (size_t)h;
}

static bool table_key_is(const struct relay_frontend *fe, const struct inet_addr *addr,
			 enum inet_proto proto, uint16_t port)
{
	return fe->port == port && fe->proto == proto && inet_addr_cmp(&fe->addr, addr) == 0;
}

int relay_table_init(struct relay_table *t)
{
	memset(t, 0, sizeof(*t));
	t->buckets = calloc(TABLE_MIN_BUCKETS, sizeof(*t->buckets));
	if (!t->buckets)
		return -ENOMEM;
	t->n_buckets = TABLE_MIN_BUCKETS;
	if (pthread_rwlock_init(&t->lock, NULL) != 0) {
		free(t->buckets);
		t->buckets = NULL;
		return -ENOMEM;
	}
	return 0;
}

void relay_table_done(struct relay_table *t)
{
	if (!t->buckets)
		return;
	for (size_t b = 0; b < t->n_buckets; b++) {
		while (t->buckets[b]) {
			struct relay_frontend *fe = t->buckets[b];

			t->buckets[b] = fe->tnext;
			fe->tnext = NULL;
			relay_frontend_unref(fe);
		}
	}
	free(t->buckets);
	pthread_rwlock_destroy(&t->lock);
	memset(t, 0, sizeof(*t));
}

/* Rehash into twice the buckets, when that memory can be had (a longer
 * chain is no failure). Write lock held. */
static void table_grow(struct relay_table *t)
{
	size_t n = t->n_buckets * 2;
	struct relay_frontend **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return;
	for (size_t b = 0; b < t->n_buckets; b++) {
		while (t->buckets[b]) {
			struct relay_frontend *fe = t->buckets[b];
			size_t i = table_hash(&fe->addr, fe->proto, fe->port) & (n - 1);

			t->buckets[b] = fe->tnext;
			fe->tnext = nb[i];
			nb[i] = fe;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->n_buckets = n;
}

int relay_table_add(struct relay_table *t, struct relay_frontend *fe)
{
	size_t i;
	int r = 0;

	pthread_rwlock_wrlock(&t->lock);
	if (t->n >= t->n_buckets)
		table_grow(t);
	i = table_hash(&fe->addr, fe->proto, fe->port) & (t->n_buckets - 1);
	for (const struct relay_frontend *x = t->buckets[i]; x; x = x->tnext)
		if (table_key_is(x, &fe->addr, fe->proto, fe->port))
			r = -EEXIST;
	if (r == 0) {
		fe->tnext = t->buckets[i];
		t->buckets[i] = relay_frontend_ref(fe);
		t->n++;
	}
	pthread_rwlock_unlock(&t->lock);
	return r;
}

void relay_table_remove(struct relay_table *t, struct relay_frontend *fe)
{
	struct relay_frontend **pp;
	bool found = false;

	pthread_rwlock_wrlock(&t->lock);
	pp = &t->buckets[table_hash(&fe->addr, fe->proto, fe->port) & (t->n_buckets - 1)];
	for (; *pp; pp = &(*pp)->tnext) {
		if (*pp == fe) {
			*pp = fe->tnext;
			fe->tnext = NULL;
			t->n--;
			found = true;
			break;
		}
	}
	pthread_rwlock_unlock(&t->lock);
	/* Outside the lock: the last reference may free a snapshot. */
	if (found)
		relay_frontend_unref(fe);
}

/* The entry under addr:port/proto, or NULL. Lock held. */
static struct relay_frontend *table_find(const struct relay_table *t, const struct inet_addr *addr,
					 enum inet_proto proto, uint16_t port)
{
	for (struct relay_frontend *fe = t->buckets[table_hash(addr, proto, port) & (t->n_buckets - 1)]; fe;
	     fe = fe->tnext)
		if (table_key_is(fe, addr, proto, port))
			return fe;
	return NULL;
}

struct relay_service *relay_table_service(struct relay_table *t, const struct inet_addr *addr,
					  enum inet_proto proto, uint16_t port)
{
	struct relay_service *s = NULL;
	struct relay_frontend *fe;

	pthread_rwlock_rdlock(&t->lock);
	fe = table_find(t, addr, proto, port);
	if (!fe && !inet_addr_is_any(addr)) {
		struct inet_addr any = inet_addr_any(addr->family);

		fe = table_find(t, &any, proto, port);
	}
	if (fe)
		s = relay_frontend_service(fe);
	pthread_rwlock_unlock(&t->lock);
	return s;
}

void relay_frontend_set_port(struct relay_frontend *fe, uint16_t port)
{
	fe->port = port;
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
