/* TCP relay: accept, connect to an endpoint, then move bytes both ways.
 *
 * Copy first, splice for bulk. Each direction starts by recv(2) into the
 * worker's scratch buffer and send(2) straight on; only what dst did not
 * take is kept, in a per-direction buffer allocated on first need. Once a
 * direction has moved splice_after bytes (64 KiB by default) it switches to
 * splice(2) through a pipe of its own, which saves the copies of a bulk
 * transfer. Short request/response connections thus never create a pipe:
 * two pipes cost 2 pipe2 + 2 fcntl + 4 close and several splice calls each
 * way, more than the copying of a few hundred bytes. A socket refusing
 * splice (EINVAL) or a failed pipe2 puts the direction back on copying.
 *
 * Edge-triggered epoll. Each socket is added once, for EPOLLIN, EPOLLOUT and
 * EPOLLRDHUP; the only change later is EPOLLIN leaving the set while the
 * direction it feeds is blocked (side_set_reading), which short exchanges
 * never are. The rule that keeps edge triggering correct: a direction reads
 * until its source says EAGAIN, or until a recv comes back short (for TCP
 * the receive queue was then empty, and new data raises a new edge; a FIN
 * already queued raises none, so once an event said EPOLLRDHUP the side is
 * read to EOF), or until dst pushes back. Then it is "blocked": dst's send
 * buffer has SOCK_NOSPACE set, and the EPOLLOUT edge that follows resumes
 * it. An event on a side pumps the direction reading from it and, when
 * blocked, the one writing to it.
 *
 * Endpoint connections delay the handshake's last ACK so that it rides on
 * the first data relayed (HAProxy's tcp-smart-connect); when the client
 * has sent nothing by then, it is forced out at once, so an endpoint that
 * speaks first is not kept waiting.
 *
 * Intercepted connections arrive on the shared relay sockets (nftables
 * redirected them there): the address the client meant is the accepted
 * socket's original destination (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST,
 * kept by conntrack), and its frontend is looked up in the service table.
 *
 * Every byte read is counted into the service port of the snapshot the
 * connection started on (relay_svcport), flushed once per pump.
 *
 * Half-closes are propagated: when one side has sent FIN and everything
 * before it has been forwarded, the other side's write half is shut down,
 * except when the reverse direction is finished too: then the connection
 * closes at once and close(2) sends that FIN (both receive queues are empty,
 * having been read to EOF, so close does not turn into a reset).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"

/* getsockopt names of <linux/netfilter_ipv4.h> and
 * <linux/netfilter_ipv6/ip6_tables.h>, whose other contents clash with
 * glibc's headers. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

#define TCP_ACCEPT_BATCH 64
#define TCP_CONNECT_ATTEMPTS 3
#define TCP_PIPE_SIZE (256 * 1024)
#define TCP_SIDE_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

static atomic_size_t splice_after = RELAY_TCP_SPLICE_AFTER_DEFAULT;

/* One direction of a connection, from src to dst. */
struct tcp_dir {
	int pipe[2];        /* splice mode only; -1 until first used */
	size_t pipe_len;    /* bytes sitting in the pipe */
	size_t pipe_cap;
	uint8_t *buf;       /* copy mode: what dst did not take yet;
			     * WORKER_BUF_SIZE bytes, allocated on first need */
	size_t buf_off, buf_len;
	uint64_t moved;     /* bytes read from src so far (copy mode) */
	uint64_t total;     /* bytes read from src so far (both modes) */
	uint64_t counted;   /* of total, added to the service port's counter */
	bool splice;        /* past splice_after: splice from now on */
	bool no_splice;     /* splice refused or no pipe: copy for good */
	bool eof;           /* src sent FIN */
	bool shut;          /* dst write half shut down (or left to close) */
	bool blocked;       /* dst would block with data pending */
};

struct tcp_side {
	struct worker_handle h;
	struct tcp_conn *conn;
	bool watched;
	bool reading;       /* EPOLLIN is in the interest set */
	bool fin;           /* an event said EPOLLRDHUP or EPOLLHUP: a FIN
			     * (or more) is queued after any data */
};

struct tcp_conn {
	struct tcp_side client, server;
	struct tcp_dir up;   /* client -> server */
	struct tcp_dir down; /* server -> client */
	struct relay_service *svc;   /* held while connecting (for retries) */
	struct balancer *bal;        /* svc's set this client uses (borrowed from svc) */
	struct balancer_endpoint *ep; /* reference + one active count */
	struct relay_svcport *port;  /* reference + one active count; may be NULL */
	struct balancer_endpoint *tried[TCP_CONNECT_ATTEMPTS];
	size_t n_tried;
	struct inet_addr client_addr;
	uint16_t client_port;
	bool connecting;
	bool dead;
	struct tcp_conn *prev, *next;
};

void relay_tcp_set_splice_after(size_t bytes)
{
	atomic_store_explicit(&splice_after, bytes, memory_order_relaxed);
}

static void dir_init(struct tcp_dir *d)
{
	memset(d, 0, sizeof(*d));
	d->pipe[0] = d->pipe[1] = -1;
}

static void dir_done(struct tcp_dir *d)
{
	if (d->pipe[0] >= 0)
		close(d->pipe[0]);
	if (d->pipe[1] >= 0)
		close(d->pipe[1]);
	d->pipe[0] = d->pipe[1] = -1;
	free(d->buf);
	d->buf = NULL;
}

static bool dir_empty(const struct tcp_dir *d)
{
	return d->pipe_len == 0 && d->buf_off == d->buf_len;
}

static bool dir_finished(const struct tcp_dir *d)
{
	return d->eof && dir_empty(d) && d->shut;
}

/* Close a socket so that the peer sees RST rather than FIN. */
static void close_with_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void side_close(struct relay_worker *w, struct tcp_side *s, bool reset)
{
	if (s->h.fd < 0)
		return;
	if (s->watched)
		worker_unwatch(w, &s->h);
	if (reset)
		close_with_reset(s->h.fd);
	else
		close(s->h.fd);
	s->h.fd = -1;
	s->watched = false;
}

/* Add what c relayed since the last call to its service port's counters. */
static void conn_count(struct tcp_conn *c)
{
	if (!c->port)
		return;
	if (c->up.total != c->up.counted) {
		atomic_fetch_add_explicit(&c->port->bytes_in, c->up.total - c->up.counted,
					  memory_order_relaxed);
		c->up.counted = c->up.total;
	}
	if (c->down.total != c->down.counted) {
		atomic_fetch_add_explicit(&c->port->bytes_out, c->down.total - c->down.counted,
					  memory_order_relaxed);
		c->down.counted = c->down.total;
	}
}

/* Close both sockets and move c to the graveyard (freed after the batch). */
static void conn_close(struct relay_worker *w, struct tcp_conn *c, bool reset)
{
	if (c->dead)
		return;
	if (log_get_level() >= LOG_LEVEL_DEBUG) {
		char ep[INET_ENDPOINT_STRLEN];

		log_debug("userspace: worker %u: closing connection from %s%s", w->id,
			  inet_endpoint_format(&c->client_addr, c->client_port, ep),
			  reset ? " (reset)" : "");
	}
	c->dead = true;
	conn_count(c);
	relay_svcport_close(c->port);
	c->port = relay_svcport_unref(c->port);
	side_close(w, &c->client, reset);
	side_close(w, &c->server, reset);
	dir_done(&c->up);
	dir_done(&c->down);
	if (c->ep) {
		balancer_endpoint_release(c->ep);
		c->ep = balancer_endpoint_unref(c->ep);
	}
	c->svc = relay_service_unref(c->svc);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = w->tcp_dead;
	w->tcp_dead = c;
}

/* Add a side to the worker's epoll for good (edge-triggered). */
static int side_watch(struct relay_worker *w, struct tcp_side *s)
{
	int r = worker_watch(w, &s->h, TCP_SIDE_EVENTS, true);

	if (r == 0)
		s->watched = s->reading = true;
	return r;
}

/* Take EPOLLIN out of a side's interest while the direction it feeds is
 * blocked, and put it back after. Edge-triggered EPOLLIN would otherwise
 * wake the worker for every segment arriving at a side it is not reading
 * (a bulk sender facing a slower receiver); the mask filters those in
 * the kernel. Only backpressure changes it: short exchanges never do. */
static int side_set_reading(struct relay_worker *w, struct tcp_side *s, bool reading)
{
	int r;

	if (!s->watched || s->reading == reading)
		return 0;
	r = worker_watch(w, &s->h, reading ? TCP_SIDE_EVENTS : TCP_SIDE_EVENTS & ~(uint32_t)EPOLLIN,
			 false);
	if (r == 0)
		s->reading = reading;
	return r;
}

/* Send what the direction holds. Sets blocked on EAGAIN. 0, 1 when
 * something moved, or -errno. */
static int dir_drain(struct tcp_dir *d, int dst)
{
	ssize_t n;

	if (d->pipe_len > 0)
		n = splice(d->pipe[0], NULL, dst, NULL, d->pipe_len,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	else if (d->buf_off < d->buf_len)
		n = send(dst, d->buf + d->buf_off, d->buf_len - d->buf_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
	else
		return 0;
	if (n == -1) {
		if (errno != EAGAIN)
			return -errno;
		d->blocked = true;
		return 0;
	}
	if (d->pipe_len > 0) {
		d->pipe_len -= (size_t)n;
	} else {
		d->buf_off += (size_t)n;
		if (d->buf_off == d->buf_len)
			d->buf_off = d->buf_len = 0;
	}
	return 1;
}

/* Copy mode: one recv into the worker's buffer, sent on at once; the rest
 * is kept in d->buf. Only called with nothing pending. 0 when src had
 * nothing more (EAGAIN, EOF, or a short read with no FIN announced), 1
 * when it may have more, -errno. */
static int dir_fill_copy(struct relay_worker *w, struct tcp_dir *d, const struct tcp_side *src,
			 int dst)
{
	ssize_t n, sent;

	n = recv(src->h.fd, w->buf, WORKER_BUF_SIZE, MSG_DONTWAIT);
	if (n == 0) {
		d->eof = true;
		return 0;
	}
	if (n == -1)
		return errno == EAGAIN ? 0 : -errno;
	d->moved += (uint64_t)n;
	d->total += (uint64_t)n;
	sent = send(dst, w->buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (sent == -1) {
		if (errno != EAGAIN)
			return -errno;
		sent = 0;
		d->blocked = true;
	}
	if (sent < n) {
		if (!d->buf) {
			d->buf = malloc(WORKER_BUF_SIZE);
			if (!d->buf)
				return -ENOMEM;
		}
		memcpy(d->buf, w->buf + sent, (size_t)(n - sent));
		d->buf_off = 0;
		d->buf_len = (size_t)(n - sent);
	}
	/* A short read emptied the receive queue, and data arriving later
	 * raises a new edge. A FIN queued already raises none: read on to
	 * the EOF when an event announced it. */
	return n == (ssize_t)WORKER_BUF_SIZE || src->fin;
}

/* Splice mode: fill the pipe from src. 0 when src had nothing more, 1 when
 * it may have more, -errno. May fall back to copy mode (no_splice) and
 * then returns 1 so the caller goes on copying. */
static int dir_fill_splice(struct tcp_dir *d, int src)
{
	ssize_t n;

	if (d->pipe[0] < 0) {
		int cap;

		if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) == -1) {
			/* Out of fds for pipes: copying needs none. */
			d->pipe[0] = d->pipe[1] = -1;
			d->no_splice = true;
			return 1;
		}
		/* Bigger than the 64 KiB default: a quarter of the splice
		 * calls per byte (the pipe only holds page references). */
		cap = fcntl(d->pipe[1], F_SETPIPE_SZ, TCP_PIPE_SIZE);
		if (cap == -1)
			cap = fcntl(d->pipe[1], F_GETPIPE_SZ);
		d->pipe_cap = cap > 0 ? (size_t)cap : 65536u;
	}
	if (d->pipe_len >= d->pipe_cap)
		return 1; /* drain first */
	n = splice(src, NULL, d->pipe[1], NULL, d->pipe_cap - d->pipe_len,
		   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n == 0) {
		d->eof = true;
		return 0;
	}
	if (n > 0) {
		d->pipe_len += (size_t)n;
		d->total += (uint64_t)n;
		return 1;
	}
	if (errno == EINVAL) {
		d->no_splice = true;
		return 1;
	}
	return errno == EAGAIN ? 0 : -errno;
}

/* Move what can be moved from src to dst without blocking, until src is
 * drained (EAGAIN, short read, EOF) or dst pushes back (blocked). rev is
 * the opposite direction, consulted to skip a shutdown that close(2) is
 * about to do anyway. Returns 0, or -errno when the connection must be
 * dropped. */
static int dir_pump(struct relay_worker *w, struct tcp_dir *d, const struct tcp_dir *rev,
		    const struct tcp_side *src_side, const struct tcp_side *dst_side)
{
	int src = src_side->h.fd, dst = dst_side->h.fd;
	bool more = true;
	int r;

	d->blocked = false;
	for (;;) {
		/* Data already read has priority; read more only once it is
		 * all gone, so at most one buffer or pipe is ever pending. */
		r = dir_drain(d, dst);
		if (r < 0)
			return r;
		if (d->blocked)
			break;
		if (!dir_empty(d))
			continue;
		if (d->eof || !more)
			break;
		if (!d->splice && !d->no_splice &&
		    d->moved >= atomic_load_explicit(&splice_after, memory_order_relaxed))
			d->splice = true;
		if (d->splice && !d->no_splice)
			r = dir_fill_splice(d, src);
		else
			r = dir_fill_copy(w, d, src_side, dst);
		if (r < 0)
			return r;
		more = r > 0;
		/* The copy's send already met EAGAIN: no need to retry. */
		if (d->blocked)
			break;
	}
	if (d->eof && dir_empty(d) && !d->shut) {
		/* If the other way is over too, conn_pump closes now and the
		 * close sends this FIN: save the shutdown call. */
		if (!(rev->eof && dir_empty(rev)) && shutdown(dst, SHUT_WR) == -1 &&
		    errno != ENOTCONN)
			return -errno;
		d->shut = true;
	}
	return 0;
}

/* Pump the directions asked for, then close c if both are over. */
static void conn_pump(struct relay_worker *w, struct tcp_conn *c, bool up, bool down)
{
	int r = 0;

	if (up)
		r = dir_pump(w, &c->up, &c->down, &c->client, &c->server);
	if (r == 0 && down)
		r = dir_pump(w, &c->down, &c->up, &c->server, &c->client);
	if (r == 0)
		r = side_set_reading(w, &c->client, !c->up.blocked);
	if (r == 0)
		r = side_set_reading(w, &c->server, !c->down.blocked);
	if (r < 0) {
		log_debug("userspace: worker %u: relay error: %s", w->id, strerror(-r));
		conn_close(w, c, true);
		return;
	}
	conn_count(c);
	if (dir_finished(&c->up) && dir_finished(&c->down))
		conn_close(w, c, false);
}

/* Start a non-blocking connect to the next endpoint. 0 when a connect is
 * under way or done, -errno when no endpoint is left. */
static int conn_connect_next(struct relay_worker *w, struct tcp_conn *c)
{
	while (c->n_tried < TCP_CONNECT_ATTEMPTS) {
		struct balancer_endpoint *ep;
		struct sockaddr_storage ss;
		socklen_t len;
		int fd, r, one = 1, zero = 0;

		ep = balancer_pick(c->bal, &c->client_addr, c->tried, c->n_tried,
				   relay_now_ms(), &w->rng);
		if (!ep)
			return -EHOSTUNREACH;
		c->tried[c->n_tried++] = ep;
		if (c->ep) {
			balancer_endpoint_release(c->ep);
			balancer_endpoint_unref(c->ep);
		}
		c->ep = balancer_endpoint_ref(ep);
		balancer_endpoint_acquire(ep);

		fd = socket(ep->addr.family == AF_INET6 ? AF_INET6 : AF_INET,
			    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd == -1)
			return -errno;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* Delay the handshake's last ACK onto the first data: one
		 * packet less. conn_connected forces it out if there is none. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof(zero));
		len = inet_to_sockaddr(&ep->addr, ep->port, &ss);
		if (connect(fd, (struct sockaddr *)&ss, len) == -1 && errno != EINPROGRESS) {
			log_debug("userspace: worker %u: connect to endpoint failed: %s", w->id,
				  strerror(errno));
			close(fd);
			continue;
		}
		c->server.h.fd = fd;
		c->server.watched = false;
		c->server.fin = false;
		c->connecting = true;
		/* The first EPOLLOUT (or EPOLLERR) edge says how it went. */
		r = side_watch(w, &c->server);
		if (r < 0) {
			side_close(w, &c->server, true);
			return r;
		}
		return 0;
	}
	return -ECONNREFUSED;
}

/* The endpoint's socket reported events while connecting. */
static void conn_connected(struct relay_worker *w, struct tcp_conn *c, uint32_t events)
{
	if (events & (EPOLLERR | EPOLLHUP)) {
		int err = 0;
		socklen_t len = sizeof(err);

		/* HUP alone may be an endpoint that accepted and closed at
		 * once: that connect did succeed, and its EOF is relayed. */
		if (getsockopt(c->server.h.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0) {
			log_debug("userspace: worker %u: connect to endpoint failed: %s", w->id,
				  strerror(err));
			side_close(w, &c->server, false);
			if (conn_connect_next(w, c) < 0)
				conn_close(w, c, true);
			return;
		}
	} else if (!(events & EPOLLOUT)) {
		return;
	}
	c->connecting = false;
	/* Retries are over: the service snapshot is no longer needed. */
	c->svc = relay_service_unref(c->svc);
	c->bal = NULL;
	/* The client's edges while connecting were not acted on: read it
	 * now. The endpoint's side only if it already said something. */
	conn_pump(w, c, true, (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0);
	if (!c->dead && c->up.moved == 0 && !c->up.eof) {
		int one = 1;

		/* Nothing to send yet: acknowledge now, so that an endpoint
		 * that speaks first is not kept waiting for the ACK. */
		(void)setsockopt(c->server.h.fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	}
}

void tcp_relay_event(struct relay_worker *w, struct worker_handle *h, uint32_t events)
{
	struct tcp_side *s = (struct tcp_side *)h;
	struct tcp_conn *c = s->conn;
	bool is_client = s == &c->client;
	struct tcp_dir *from = is_client ? &c->up : &c->down; /* reads s */
	struct tcp_dir *to = is_client ? &c->down : &c->up;   /* writes s */
	bool pump_from, pump_to;

	if (c->dead)
		return;
	if (events & (EPOLLRDHUP | EPOLLHUP))
		s->fin = true;
	if (c->connecting) {
		if (is_client) {
			/* The client gave up before the endpoint answered. */
			if (events & (EPOLLERR | EPOLLHUP))
				conn_close(w, c, true);
			return;
		}
		conn_connected(w, c, events);
		return;
	}
	if (events & EPOLLERR) {
		conn_close(w, c, true);
		return;
	}
	/* A blocked direction waits for its dst's EPOLLOUT, not for more
	 * input; one at EOF has nothing more to read. */
	pump_from = (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) && !from->blocked && !from->eof;
	pump_to = (events & (EPOLLOUT | EPOLLHUP)) && to->blocked;
	if (!pump_from && !pump_to)
		return;
	conn_pump(w, c, is_client ? pump_from : pump_to, is_client ? pump_to : pump_from);
}

/* The service a connection accepted on a shared relay socket was meant
 * for: its original destination looked up in the service table. NULL when
 * it has none (not redirected) or no frontend is there (any more). */
static struct relay_service *intercepted_service(struct relay_worker *w, struct worker_listener *l,
						 int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct inet_addr dst;
	uint16_t port = 0;
	int r;

	memset(&ss, 0, sizeof(ss));
	if (l->fe->addr.family == AF_INET6)
		r = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len);
	else
		r = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len);
	if (r == -1 || inet_from_sockaddr((const struct sockaddr *)&ss, &dst, &port) < 0) {
		log_debug("userspace: worker %u: %s: no original destination: %s", w->id, RELAY_FE_NAME(l->fe),
			  r == -1 ? strerror(errno) : "unknown family");
		return NULL;
	}
	return relay_table_service(w->table, &dst, INET_PROTO_TCP, port);
}

static void tcp_relay_new_conn(struct relay_worker *w, struct worker_listener *l, int fd,
			       const struct sockaddr_storage *peer)
{
	struct relay_service *svc = l->intercept ? intercepted_service(w, l, fd)
						 : relay_frontend_service(l->fe);
	struct tcp_conn *c;
	char who[INET_ENDPOINT_STRLEN] = "";
	bool debug = log_get_level() >= LOG_LEVEL_DEBUG;
	struct balancer *bal = NULL;
	struct inet_addr client;
	uint16_t port = 0;

	memset(&client, 0, sizeof(client));
	(void)inet_from_sockaddr((const struct sockaddr *)peer, &client, &port);
	if (!svc) {
		if (debug)
			log_debug("userspace: worker %u: %s from %s refused (no such frontend)", w->id,
				  RELAY_FE_NAME(l->fe), inet_endpoint_format(&client, port, who));
		close_with_reset(fd);
		return;
	}
	/* Source ranges first, then the set this client uses (the
	 * short-circuit of an externalTrafficPolicy Local frontend for one
	 * that starts on this node). */
	if (relay_service_allows(svc, &client))
		bal = relay_service_balancer_for(svc, &client);
	if (!bal || !balancer_has_usable(bal)) {
		/* Refuse at once: a reset, never a connection left hanging. */
		if (debug)
			log_debug("userspace: worker %u: %s from %s refused (%s)", w->id,
				  RELAY_FE_NAME(l->fe), inet_endpoint_format(&client, port, who),
				  relay_service_allows(svc, &client) ? "no usable endpoint"
								     : "source not allowed");
		close_with_reset(fd);
		relay_service_unref(svc);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close_with_reset(fd);
		relay_service_unref(svc);
		return;
	}
	c->client.h.kind = c->server.h.kind = WORKER_HANDLE_TCP_SIDE;
	c->client.h.fd = fd;
	c->server.h.fd = -1;
	c->client.conn = c->server.conn = c;
	dir_init(&c->up);
	dir_init(&c->down);
	c->svc = svc;
	c->bal = bal;
	c->port = relay_svcport_ref(svc->port);
	relay_svcport_open(c->port);
	c->client_addr = client;
	c->client_port = port;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	if (debug)
		log_debug("userspace: worker %u: %s from %s -> %s%s", w->id, RELAY_FE_NAME(l->fe),
			  inet_endpoint_format(&client, port, who), relay_service_label(svc),
			  bal == svc->balancer ? "" : " (short-circuit: all endpoints)");
	/* Until the endpoint answers only the client's errors count: its
	 * data waits in its receive queue and is read once connected. */
	if (side_watch(w, &c->client) < 0 || conn_connect_next(w, c) < 0)
		conn_close(w, c, true);
}

void tcp_relay_accept(struct relay_worker *w, struct worker_listener *l)
{
	for (int i = 0; i < TCP_ACCEPT_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(l->h.fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd == -1) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_debug("userspace: worker %u: accept on %s: %s", w->id, RELAY_FE_NAME(l->fe),
					  strerror(errno));
			return;
		}
		tcp_relay_new_conn(w, l, fd, &peer);
	}
}

void tcp_relay_reap(struct relay_worker *w)
{
	while (w->tcp_dead) {
		struct tcp_conn *c = w->tcp_dead;

		w->tcp_dead = c->next;
		free(c);
	}
}

void tcp_relay_close_all(struct relay_worker *w)
{
	while (w->conns)
		conn_close(w, w->conns, true);
}
