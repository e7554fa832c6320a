/* TCP relay: accept, connect to an endpoint, then move bytes both ways with
 * splice(2) through one pipe per direction (read/write copy if a socket
 * refuses splice with EINVAL). Half-closes are propagated: when one side
 * has sent FIN and everything before it has been forwarded, the other
 * side's write half is shut down. Level-triggered epoll throughout; a side
 * asks for EPOLLIN only while its outgoing direction can take more data,
 * and for EPOLLOUT only while its incoming direction is blocked on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"

#define TCP_ACCEPT_BATCH 64
#define TCP_CONNECT_ATTEMPTS 3
#define TCP_COPY_BUF 16384u

/* One direction of a connection, from src to dst. */
struct tcp_dir {
	int pipe[2];        /* -1 until first used */
	size_t pipe_len;    /* bytes sitting in the pipe */
	size_t pipe_cap;
	uint8_t *buf;       /* copy fallback: allocated on first use */
	size_t buf_off, buf_len;
	bool copy;          /* splice said EINVAL: read/write from now on */
	bool eof;           /* src sent FIN */
	bool shut;          /* dst write half shut down */
	bool blocked;       /* dst would block with data pending */
};

struct tcp_side {
	struct worker_handle h;
	struct tcp_conn *conn;
	uint32_t events;    /* current epoll interest */
	bool watched;
	bool hup;           /* EPOLLHUP seen: taken out of epoll for good */
};

struct tcp_conn {
	struct tcp_side client, server;
	struct tcp_dir up;   /* client -> server */
	struct tcp_dir down; /* server -> client */
	struct relay_service *svc;   /* held while connecting (for retries) */
	struct balancer_endpoint *ep; /* reference + one active count */
	struct balancer_endpoint *tried[TCP_CONNECT_ATTEMPTS];
	size_t n_tried;
	struct inet_addr client_addr;
	uint16_t client_port;
	bool connecting;
	bool dead;
	struct tcp_conn *prev, *next;
};

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

/* Close both sockets and move c to the graveyard (freed after the batch). */
static void conn_close(struct relay_worker *w, struct tcp_conn *c, bool reset)
{
	char ep[INET_ENDPOINT_STRLEN];

	if (c->dead)
		return;
	log_debug("userspace: worker %u: closing connection from %s%s", w->id,
		  inet_endpoint_format(&c->client_addr, c->client_port, ep), reset ? " (reset)" : "");
	c->dead = true;
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

static int side_set_events(struct relay_worker *w, struct tcp_side *s, uint32_t events)
{
	int r;

	/* A hung-up socket would report EPOLLHUP forever; what it still
	 * holds is read when the other side's events drive the pump. */
	if (s->hup) {
		if (s->watched)
			worker_unwatch(w, &s->h);
		s->watched = false;
		return 0;
	}
	if (s->watched && s->events == events)
		return 0;
	r = worker_watch(w, &s->h, events, !s->watched);
	if (r < 0)
		return r;
	s->watched = true;
	s->events = events;
	return 0;
}

/* Move what can be moved from src to dst without blocking.
 * Returns 0, or -errno when the connection must be dropped. */
static int dir_pump(struct tcp_dir *d, int src, int dst)
{
	for (;;) {
		bool progress = false;
		ssize_t n;

		/* Drain first: data already read has priority. */
		if (d->pipe_len > 0) {
			n = splice(d->pipe[0], NULL, dst, NULL, d->pipe_len,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n == -1) {
				if (errno != EAGAIN)
					return -errno;
				d->blocked = true;
			} else {
				d->pipe_len -= (size_t)n;
				d->blocked = false;
				progress = true;
			}
		} else if (d->buf_off < d->buf_len) {
			n = send(dst, d->buf + d->buf_off, d->buf_len - d->buf_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n == -1) {
				if (errno != EAGAIN)
					return -errno;
				d->blocked = true;
			} else {
				d->buf_off += (size_t)n;
				if (d->buf_off == d->buf_len)
					d->buf_off = d->buf_len = 0;
				d->blocked = false;
				progress = true;
			}
		} else {
			d->blocked = false;
		}

		/* Then fill, unless dst is pushing back. */
		if (!d->eof && !d->blocked) {
			if (!d->copy && d->pipe[0] < 0) {
				int cap;

				if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) == -1) {
					/* Out of fds for pipes: copying needs none. */
					d->pipe[0] = d->pipe[1] = -1;
					d->copy = true;
				} else {
					cap = fcntl(d->pipe[1], F_GETPIPE_SZ);
					d->pipe_cap = cap > 0 ? (size_t)cap : 65536u;
				}
			}
			if (!d->copy && d->pipe_len < d->pipe_cap) {
				n = splice(src, NULL, d->pipe[1], NULL, d->pipe_cap - d->pipe_len,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
				if (n == 0) {
					d->eof = true;
					progress = true;
				} else if (n > 0) {
					d->pipe_len += (size_t)n;
					progress = true;
				} else if (errno == EINVAL) {
					d->copy = true;
					progress = true;
				} else if (errno != EAGAIN) {
					return -errno;
				}
			} else if (d->copy && d->pipe_len == 0 && d->buf_len == 0) {
				if (!d->buf) {
					d->buf = malloc(TCP_COPY_BUF);
					if (!d->buf)
						return -ENOMEM;
				}
				n = recv(src, d->buf, TCP_COPY_BUF, MSG_DONTWAIT);
				if (n == 0) {
					d->eof = true;
					progress = true;
				} else if (n > 0) {
					d->buf_len = (size_t)n;
					progress = true;
				} else if (errno != EAGAIN) {
					return -errno;
				}
			}
		}
		if (!progress)
			break;
	}
	if (d->eof && dir_empty(d) && !d->shut) {
		if (shutdown(dst, SHUT_WR) == -1 && errno != ENOTCONN)
			return -errno;
		d->shut = true;
	}
	return 0;
}

/* Interest of one side: read while its outgoing direction may read, write
 * while its incoming direction is blocked on it. */
static uint32_t side_events(const struct tcp_dir *out, const struct tcp_dir *in)
{
	uint32_t ev = 0;

	if (!out->eof && !out->blocked)
		ev |= EPOLLIN | EPOLLRDHUP;
	if (in->blocked)
		ev |= EPOLLOUT;
	return ev;
}

static void conn_pump(struct relay_worker *w, struct tcp_conn *c)
{
	int r;

	r = dir_pump(&c->up, c->client.h.fd, c->server.h.fd);
	if (r == 0)
		r = dir_pump(&c->down, c->server.h.fd, c->client.h.fd);
	if (r < 0) {
		log_debug("userspace: worker %u: relay error: %s", w->id, strerror(-r));
		conn_close(w, c, true);
		return;
	}
	if (dir_finished(&c->up) && dir_finished(&c->down)) {
		conn_close(w, c, false);
		return;
	}
	r = side_set_events(w, &c->client, side_events(&c->up, &c->down));
	if (r == 0)
		r = side_set_events(w, &c->server, side_events(&c->down, &c->up));
	if (r < 0)
		conn_close(w, c, true);
}

/* Start a non-blocking connect to the next endpoint. 0 when a connect is
 * under way or done, -errno when no endpoint is left. */
static int conn_connect_next(struct relay_worker *w, struct tcp_conn *c)
{
	while (c->n_tried < TCP_CONNECT_ATTEMPTS) {
		struct balancer_endpoint *ep;
		struct sockaddr_storage ss;
		socklen_t len;
		int fd, one = 1;

		ep = balancer_pick(c->svc->balancer, &c->client_addr, c->tried, c->n_tried,
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
		len = inet_to_sockaddr(&ep->addr, ep->port, &ss);
		if (connect(fd, (struct sockaddr *)&ss, len) == -1 && errno != EINPROGRESS) {
			log_debug("userspace: worker %u: connect to endpoint failed: %s", w->id,
				  strerror(errno));
			close(fd);
			continue;
		}
		c->server.h.fd = fd;
		c->server.watched = false;
		c->connecting = true;
		if (side_set_events(w, &c->server, EPOLLOUT) < 0) {
			side_close(w, &c->server, true);
			return -ENOMEM;
		}
		return 0;
	}
	return -ECONNREFUSED;
}

static void conn_connected(struct relay_worker *w, struct tcp_conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->server.h.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		log_debug("userspace: worker %u: connect to endpoint failed: %s", w->id, strerror(err));
		side_close(w, &c->server, false);
		if (conn_connect_next(w, c) < 0)
			conn_close(w, c, true);
		return;
	}
	c->connecting = false;
	/* Retries are over: the service snapshot is no longer needed. */
	c->svc = relay_service_unref(c->svc);
	conn_pump(w, c);
}

void tcp_relay_event(struct relay_worker *w, struct worker_handle *h, uint32_t events)
{
	struct tcp_side *s = (struct tcp_side *)h;
	struct tcp_conn *c = s->conn;

	if (c->dead)
		return;
	if (c->connecting) {
		if (s == &c->client) {
			/* The client gave up before the endpoint answered. */
			if (events & (EPOLLERR | EPOLLHUP))
				conn_close(w, c, true);
			return;
		}
		conn_connected(w, c);
		return;
	}
	if (events & EPOLLERR) {
		conn_close(w, c, true);
		return;
	}
	if (events & EPOLLHUP)
		s->hup = true;
	conn_pump(w, c);
}

static void tcp_relay_new_conn(struct relay_worker *w, struct worker_listener *l, int fd,
			       const struct sockaddr_storage *peer)
{
	struct relay_service *svc = relay_frontend_service(l->fe);
	struct tcp_conn *c;
	char who[INET_ENDPOINT_STRLEN];
	struct inet_addr client;
	uint16_t port = 0;

	memset(&client, 0, sizeof(client));
	(void)inet_from_sockaddr((const struct sockaddr *)peer, &client, &port);
	if (!relay_service_allows(svc, &client) || !balancer_has_usable(svc->balancer)) {
		/* Refuse at once: a reset, never a connection left hanging. */
		log_debug("userspace: worker %u: %s from %s refused (%s)", w->id, l->fe->name,
			  inet_endpoint_format(&client, port, who),
			  relay_service_allows(svc, &client) ? "no usable endpoint" : "source not allowed");
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
	c->client_addr = client;
	c->client_port = port;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	log_debug("userspace: worker %u: %s from %s -> %s", w->id, l->fe->name, who, svc->label);
	/* Watch the client for errors only until the endpoint answers. */
	if (side_set_events(w, &c->client, 0) < 0 || conn_connect_next(w, c) < 0)
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
				log_debug("userspace: worker %u: accept on %s: %s", w->id, l->fe->name,
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
