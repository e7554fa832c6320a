/* UDP relay: one flow per client address (and, on wildcard listeners, per
 * local address the client targeted). A flow is a socket connected to the
 * chosen endpoint; its replies go back out of the listening socket, with
 * IP_PKTINFO / IPV6_PKTINFO naming the source address on wildcard
 * listeners so the client sees the address it sent to. Flows idle for
 * udp_idle_ms are closed by the worker's periodic sweep.
 *
 * The shared relay sockets receive datagrams nftables redirected (a DNAT
 * to this host): a new flow there asks conntrack where its first datagram
 * was sent (ct_origin.h: UDP has no SO_ORIGINAL_DST) and looks that
 * frontend up in the service table; replies leave from the same socket
 * and conntrack turns their source back into the VIP. A flow's key (client,
 * local address, relay port) is the conntrack entry's reply tuple, unique
 * while that entry lives; after an idle gap the entry may have expired and
 * the tuple been given to another destination, so a flow idle for
 * UDP_RECHECK_MS asks again before it relays.
 *
 * Datagrams are counted into the flow's service port (relay_svcport).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "maglev.h"
#include "worker.h"

#define UDP_RECV_BATCH 64
/* Shorter than conntrack's UDP timeout (30 s by default): a reply tuple
 * cannot change hands within it while its entry lives. */
#define UDP_RECHECK_MS 10000u

struct udp_flow {
	struct worker_handle h;
	struct worker_listener *l;
	struct sockaddr_storage client;
	socklen_t client_len;
	struct inet_addr local;        /* wildcard listeners: where the client sent to */
	struct balancer_endpoint *ep;  /* reference + one active count */
	struct relay_svcport *port;    /* reference + one active count; may be NULL */
	struct inet_addr orig;         /* shared relay sockets: the frontend meant */
	uint16_t orig_port;
	uint64_t last_ms;
	bool dead;
	size_t hash;                   /* flow_hash of its key */
	struct udp_flow *next;         /* bucket chain, then graveyard */
};

int udp_relay_listener_init(struct worker_listener *l)
{
	l->flows = calloc(UDP_FLOW_BUCKETS_MIN, sizeof(*l->flows));
	l->n_buckets = l->flows ? UDP_FLOW_BUCKETS_MIN : 0;
	return l->flows ? 0 : -ENOMEM;
}

static size_t flow_hash(const struct sockaddr_storage *client, const struct inet_addr *local)
{
	struct inet_addr a;
	uint16_t port = 0;
	uint8_t key[36];

	memset(key, 0, sizeof(key));
	memset(&a, 0, sizeof(a));
	(void)inet_from_sockaddr((const struct sockaddr *)client, &a, &port);
	memcpy(key, a.u.bytes, 16);
	key[16] = (uint8_t)(port >> 8);
	key[17] = (uint8_t)port;
	memcpy(key + 18, local->u.bytes, 16);
	return (size_t)maglev_hash(key, sizeof(key), 0x75647066ULL);
}

static bool flow_matches(const struct udp_flow *f, const struct sockaddr_storage *client,
			 socklen_t len, const struct inet_addr *local)
{
	return f->client_len == len && memcmp(&f->client, client, len) == 0 &&
	       inet_addr_cmp(&f->local, local) == 0;
}

/* Unlink f from its listener's table, close it and move it to the graveyard. */
static void flow_close(struct relay_worker *w, struct udp_flow *f)
{
	struct worker_listener *l = f->l;
	struct udp_flow **pp = &l->flows[f->hash & (l->n_buckets - 1)];

	for (; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			l->n_flows--;
			break;
		}
	}
	worker_unwatch(w, &f->h);
	close(f->h.fd);
	f->h.fd = -1;
	balancer_endpoint_release(f->ep);
	f->ep = balancer_endpoint_unref(f->ep);
	relay_svcport_close(f->port);
	f->port = relay_svcport_unref(f->port);
	f->dead = true;
	f->next = w->udp_dead;
	w->udp_dead = f;
}

/* Where the datagram from client to local (on l's port) was sent before
 * nftables redirected it: *ret_dst, *ret_port. 0 or -errno (-ENOENT: it
 * was not redirected). */
static int flow_origin(struct relay_worker *w, struct worker_listener *l,
		       const struct sockaddr_storage *client, const struct inet_addr *local,
		       struct inet_addr *ret_dst, uint16_t *ret_port)
{
	struct inet_addr caddr;
	uint16_t cport = 0;

	memset(&caddr, 0, sizeof(caddr));
	if (inet_from_sockaddr((const struct sockaddr *)client, &caddr, &cport) < 0)
		return -EAFNOSUPPORT;
	return ct_origin_lookup(&w->ct, IPPROTO_UDP, local, l->fe->port, &caddr, cport, ret_dst, ret_port);
}

/* Double l's flow table, when the memory can be had (longer chains are
 * no failure). */
static void flows_grow(struct worker_listener *l)
{
	size_t n = l->n_buckets * 2;
	struct udp_flow **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return;
	for (size_t b = 0; b < l->n_buckets; b++) {
		while (l->flows[b]) {
			struct udp_flow *f = l->flows[b];

			l->flows[b] = f->next;
			f->next = nb[f->hash & (n - 1)];
			nb[f->hash & (n - 1)] = f;
		}
	}
	free(l->flows);
	l->flows = nb;
	l->n_buckets = n;
}

static struct udp_flow *flow_new(struct relay_worker *w, struct worker_listener *l,
				 const struct sockaddr_storage *client, socklen_t len,
				 const struct inet_addr *local)
{
	struct relay_service *svc = NULL;
	struct inet_addr orig;
	uint16_t orig_port = 0;
	struct balancer_endpoint *ep = NULL;
	struct sockaddr_storage ss;
	struct inet_addr caddr;
	struct udp_flow *f = NULL;
	socklen_t sslen;
	size_t b;
	int fd = -1;

	memset(&caddr, 0, sizeof(caddr));
	memset(&orig, 0, sizeof(orig));
	(void)inet_from_sockaddr((const struct sockaddr *)client, &caddr, NULL);
	if (l->intercept) {
		int r = flow_origin(w, l, client, local, &orig, &orig_port);

		if (r < 0) {
			log_debug("userspace: worker %u: %s: no original destination: %s", w->id,
				  RELAY_FE_NAME(l->fe), strerror(-r));
			return NULL;
		}
		svc = relay_table_service(w->table, &orig, INET_PROTO_UDP, orig_port);
	} else {
		svc = relay_frontend_service(l->fe);
	}
	if (!svc)
		return NULL;
	/* No usable endpoint or a client outside the source ranges: drop.
	 * A client that starts on this node may use the short-circuit set. */
	if (!relay_service_allows(svc, &caddr))
		goto out;
	ep = balancer_pick(relay_service_balancer_for(svc, &caddr), &caddr, NULL, 0, relay_now_ms(),
			   &w->rng);
	if (!ep)
		goto out;
	fd = socket(ep->addr.family == AF_INET6 ? AF_INET6 : AF_INET,
		    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto out;
	sslen = inet_to_sockaddr(&ep->addr, ep->port, &ss);
	if (connect(fd, (struct sockaddr *)&ss, sslen) == -1)
		goto out;
	f = calloc(1, sizeof(*f));
	if (!f)
		goto out;
	f->h.kind = WORKER_HANDLE_UDP_FLOW;
	f->h.fd = fd;
	if (worker_watch(w, &f->h, EPOLLIN, true) < 0) {
		free(f);
		f = NULL;
		goto out;
	}
	fd = -1;
	f->l = l;
	memcpy(&f->client, client, len);
	f->client_len = len;
	f->local = *local;
	f->ep = balancer_endpoint_ref(ep);
	balancer_endpoint_acquire(ep);
	f->port = relay_svcport_ref(svc->port);
	relay_svcport_open(f->port);
	f->orig = orig;
	f->orig_port = orig_port;
	f->hash = flow_hash(client, local);
	if (l->n_flows >= 2 * l->n_buckets)
		flows_grow(l);
	b = f->hash & (l->n_buckets - 1);
	f->next = l->flows[b];
	l->flows[b] = f;
	l->n_flows++;
	if (log_get_level() >= LOG_LEVEL_DEBUG)
		log_debug("userspace: worker %u: new UDP flow on %s -> %s", w->id, RELAY_FE_NAME(l->fe),
			  relay_service_label(svc));
out:
	if (fd >= 0)
		close(fd);
	relay_service_unref(svc);
	return f;
}

/* The local address the datagram in msg was sent to, from its pktinfo. */
static void local_from_cmsg(struct msghdr *msg, struct inet_addr *ret)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			ret->family = AF_INET;
			ret->u.v4 = pi.ipi_addr;
		} else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;

			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			ret->family = AF_INET6;
			ret->u.v6 = pi.ipi6_addr;
		}
	}
}

/* Whether flow f of shared relay socket l, idle for a while, still
 * carries what its client sends to the frontend it was made for; if not,
 * it is closed (the caller makes a new one). */
static bool flow_still_meant(struct relay_worker *w, struct worker_listener *l, struct udp_flow *f)
{
	struct inet_addr dst;
	uint16_t port = 0;

	if (flow_origin(w, l, &f->client, &f->local, &dst, &port) == 0 && port == f->orig_port &&
	    inet_addr_cmp(&dst, &f->orig) == 0)
		return true;
	flow_close(w, f);
	return false;
}

void udp_relay_receive(struct relay_worker *w, struct worker_listener *l)
{
	union {
		struct cmsghdr align;
		uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
	} control;

	for (int i = 0; i < UDP_RECV_BATCH; i++) {
		struct sockaddr_storage client;
		struct iovec iov = { .iov_base = w->buf, .iov_len = WORKER_BUF_SIZE };
		struct msghdr msg = {
			.msg_name = &client, .msg_namelen = sizeof(client),
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = control.buf, .msg_controllen = sizeof(control.buf),
		};
		struct inet_addr local;
		struct udp_flow *f;
		ssize_t n;

		n = recvmsg(l->h.fd, &msg, MSG_DONTWAIT);
		if (n == -1) {
			if (errno != EAGAIN && errno != EINTR)
				log_debug("userspace: worker %u: recv on %s: %s", w->id, RELAY_FE_NAME(l->fe),
					  strerror(errno));
			return;
		}
		memset(&local, 0, sizeof(local));
		if (l->wildcard)
			local_from_cmsg(&msg, &local);
		for (f = l->flows[flow_hash(&client, &local) & (l->n_buckets - 1)]; f; f = f->next)
			if (flow_matches(f, &client, msg.msg_namelen, &local))
				break;
		if (f && l->intercept && relay_now_ms() - f->last_ms >= UDP_RECHECK_MS &&
		    !flow_still_meant(w, l, f))
			f = NULL;
		if (!f)
			f = flow_new(w, l, &client, msg.msg_namelen, &local);
		if (!f)
			continue;
		f->last_ms = relay_now_ms();
		if (send(f->h.fd, w->buf, (size_t)n, MSG_DONTWAIT) == -1)
			log_debug("userspace: worker %u: send to endpoint: %s", w->id, strerror(errno));
		else if (f->port)
			atomic_fetch_add_explicit(&f->port->bytes_in, (uint64_t)n, memory_order_relaxed);
	}
}

/* Send one reply to f's client from the listening socket. */
static void flow_reply(struct relay_worker *w, struct udp_flow *f, size_t len)
{
	union {
		struct cmsghdr align;
		uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	} control;
	struct iovec iov = { .iov_base = w->buf, .iov_len = len };
	struct msghdr msg = {
		.msg_name = &f->client, .msg_namelen = f->client_len,
		.msg_iov = &iov, .msg_iovlen = 1,
	};

	memset(&control, 0, sizeof(control));
	if (f->l->wildcard && f->local.family == AF_INET) {
		struct in_pktinfo pi;
		struct cmsghdr *cm;

		memset(&pi, 0, sizeof(pi));
		pi.ipi_spec_dst = f->local.u.v4;
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(pi));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = IPPROTO_IP;
		cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
	} else if (f->l->wildcard && f->local.family == AF_INET6) {
		struct in6_pktinfo pi;
		struct cmsghdr *cm;

		memset(&pi, 0, sizeof(pi));
		pi.ipi6_addr = f->local.u.v6;
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(pi));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = IPPROTO_IPV6;
		cm->cmsg_type = IPV6_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
	}
	if (sendmsg(f->l->h.fd, &msg, MSG_DONTWAIT) == -1)
		log_debug("userspace: worker %u: reply on %s: %s", w->id, RELAY_FE_NAME(f->l->fe),
			  strerror(errno));
	else if (f->port)
		atomic_fetch_add_explicit(&f->port->bytes_out, (uint64_t)len, memory_order_relaxed);
}

void udp_relay_flow_event(struct relay_worker *w, struct worker_handle *h, uint32_t events)
{
	struct udp_flow *f = (struct udp_flow *)h;

	(void)events;
	if (f->dead)
		return;
	for (int i = 0; i < UDP_RECV_BATCH; i++) {
		ssize_t n = recv(f->h.fd, w->buf, WORKER_BUF_SIZE, MSG_DONTWAIT);

		if (n == -1) {
			/* ECONNREFUSED: an ICMP error from the endpoint; the
			 * flow stays until it idles out, as in the kernel. */
			if (errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED)
				log_debug("userspace: worker %u: recv from endpoint: %s", w->id,
					  strerror(errno));
			return;
		}
		f->last_ms = relay_now_ms();
		flow_reply(w, f, (size_t)n);
	}
}

void udp_relay_sweep(struct relay_worker *w, uint64_t now_ms)
{
	for (struct worker_listener *l = w->listeners; l; l = l->next) {
		if (!l->flows || l->n_flows == 0)
			continue;
		for (size_t b = 0; b < l->n_buckets; b++) {
			struct udp_flow *f = l->flows[b];

			while (f) {
				struct udp_flow *next = f->next;

				if (now_ms - f->last_ms >= w->udp_idle_ms)
					flow_close(w, f);
				f = next;
			}
		}
	}
}

void udp_relay_listener_done(struct relay_worker *w, struct worker_listener *l)
{
	if (!l->flows)
		return;
	for (size_t b = 0; b < l->n_buckets; b++)
		while (l->flows[b])
			flow_close(w, l->flows[b]);
	free(l->flows);
	l->flows = NULL;
}

void udp_relay_reap(struct relay_worker *w)
{
	while (w->udp_dead) {
		struct udp_flow *f = w->udp_dead;

		w->udp_dead = f->next;
		free(f);
	}
}
