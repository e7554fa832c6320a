/* Relay worker threads: one epoll loop each, fed by the control thread
 * through a mutex-protected command queue and an eventfd.
 *
 * Commands are carried out only between event batches, so no event of the
 * batch being handled can point at a listener a command just freed. Objects
 * closed inside a batch (connections, flows) are freed after it for the
 * same reason.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"

#define WORKER_BATCH 64
#define UDP_IDLE_DEFAULT_MS 30000u

enum relay_cmd_kind {
	RELAY_CMD_ADD,
	RELAY_CMD_REMOVE,
};

struct relay_cmd {
	enum relay_cmd_kind kind;
	struct relay_frontend *fe; /* reference, owned by the command */
	int fd;                    /* RELAY_CMD_ADD: the socket */
	struct relay_cmd *next;
};

uint64_t relay_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int worker_watch(struct relay_worker *w, struct worker_handle *h, uint32_t events, bool add)
{
	struct epoll_event ev = { .events = events, .data.ptr = h };

	if (epoll_ctl(w->epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, h->fd, &ev) == -1)
		return -errno;
	return 0;
}

void worker_unwatch(struct relay_worker *w, struct worker_handle *h)
{
	if (h->fd >= 0)
		(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, h->fd, NULL);
}

static void listener_free(struct relay_worker *w, struct worker_listener *l)
{
	if (l->fe->proto == INET_PROTO_UDP)
		udp_relay_listener_done(w, l);
	worker_unwatch(w, &l->h);
	close(l->h.fd);
	relay_frontend_unref(l->fe);
	free(l);
}

static void cmd_free(struct relay_cmd *c)
{
	if (c->kind == RELAY_CMD_ADD && c->fd >= 0)
		close(c->fd);
	relay_frontend_unref(c->fe);
	free(c);
}

static void worker_add_listener(struct relay_worker *w, struct relay_cmd *c)
{
	struct worker_listener *l = calloc(1, sizeof(*l));
	int r;

	if (!l) {
		log_debug("userspace: worker %u: no memory for a listener of %s", w->id, RELAY_FE_NAME(c->fe));
		return;
	}
	l->h.kind = c->fe->proto == INET_PROTO_UDP ? WORKER_HANDLE_UDP_LISTENER
						   : WORKER_HANDLE_TCP_LISTENER;
	l->h.fd = c->fd;
	l->w = w;
	l->wildcard = inet_addr_is_any(&c->fe->addr);
	l->intercept = c->fe->intercept;
	if (l->h.kind == WORKER_HANDLE_UDP_LISTENER && udp_relay_listener_init(l) < 0) {
		free(l);
		return;
	}
	r = worker_watch(w, &l->h, EPOLLIN, true);
	if (r < 0) {
		log_debug("userspace: worker %u: epoll add of %s failed: %s", w->id, RELAY_FE_NAME(c->fe),
			  strerror(-r));
		udp_relay_listener_done(w, l);
		free(l);
		return;
	}
	/* The listener now owns the socket and the reference. */
	l->fe = c->fe;
	c->fe = NULL;
	c->fd = -1;
	l->next = w->listeners;
	w->listeners = l;
}

static void worker_remove_listener(struct relay_worker *w, struct relay_frontend *fe)
{
	for (struct worker_listener **pp = &w->listeners; *pp; pp = &(*pp)->next) {
		struct worker_listener *l = *pp;

		if (l->fe == fe) {
			*pp = l->next;
			listener_free(w, l);
			return;
		}
	}
}

/* Carry out every queued command; returns true when asked to stop. */
static bool worker_run_commands(struct relay_worker *w)
{
	struct relay_cmd *list;
	uint64_t n = 0;
	bool stop;

	pthread_mutex_lock(&w->lock);
	list = w->cmd_head;
	w->cmd_head = w->cmd_tail = NULL;
	stop = w->stop;
	pthread_mutex_unlock(&w->lock);

	while (list) {
		struct relay_cmd *c = list;

		list = c->next;
		if (c->kind == RELAY_CMD_ADD)
			worker_add_listener(w, c);
		else
			worker_remove_listener(w, c->fe);
		cmd_free(c);
		n++;
	}

	pthread_mutex_lock(&w->lock);
	w->cmd_done += n;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return stop;
}

static void worker_dispatch(struct relay_worker *w, struct epoll_event *ev, bool *commands)
{
	struct worker_handle *h = ev->data.ptr;
	uint64_t v;

	switch (h->kind) {
	case WORKER_HANDLE_WAKE:
		if (read(h->fd, &v, sizeof(v)) == -1 && errno != EAGAIN)
			log_debug("userspace: worker %u: eventfd read: %s", w->id, strerror(errno));
		*commands = true;
		break;
	case WORKER_HANDLE_SWEEP:
		if (read(h->fd, &v, sizeof(v)) == -1 && errno != EAGAIN)
			log_debug("userspace: worker %u: timerfd read: %s", w->id, strerror(errno));
		udp_relay_sweep(w, relay_now_ms());
		break;
	case WORKER_HANDLE_TCP_LISTENER:
		tcp_relay_accept(w, (struct worker_listener *)h);
		break;
	case WORKER_HANDLE_UDP_LISTENER:
		udp_relay_receive(w, (struct worker_listener *)h);
		break;
	case WORKER_HANDLE_TCP_SIDE:
		tcp_relay_event(w, h, ev->events);
		break;
	case WORKER_HANDLE_UDP_FLOW:
		udp_relay_flow_event(w, h, ev->events);
		break;
	}
}

static void *worker_main(void *arg)
{
	struct relay_worker *w = arg;
	struct epoll_event evs[WORKER_BATCH];

	for (;;) {
		bool commands = false;
		int n = epoll_wait(w->epfd, evs, WORKER_BATCH, -1);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_debug("userspace: worker %u: epoll_wait: %s", w->id, strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++)
			worker_dispatch(w, &evs[i], &commands);
		tcp_relay_reap(w);
		udp_relay_reap(w);
		if (commands && worker_run_commands(w))
			break;
	}
	return NULL;
}

static void worker_free(struct relay_worker *w)
{
	struct relay_cmd *c;

	if (!w)
		return;
	/* The thread is gone: everything it owned is ours to release. */
	tcp_relay_close_all(w);
	tcp_relay_reap(w);
	while (w->listeners) {
		struct worker_listener *l = w->listeners;

		w->listeners = l->next;
		listener_free(w, l);
	}
	udp_relay_reap(w);
	while ((c = w->cmd_head)) {
		w->cmd_head = c->next;
		cmd_free(c);
	}
	if (w->wake.fd >= 0)
		close(w->wake.fd);
	if (w->sweep.fd >= 0)
		close(w->sweep.fd);
	if (w->epfd >= 0)
		close(w->epfd);
	free(w->buf);
	ct_origin_done(&w->ct);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

static int worker_new(unsigned id, uint32_t udp_idle_ms, struct relay_table *table,
		      struct relay_worker **ret)
{
	struct relay_worker *w = calloc(1, sizeof(*w));
	struct itimerspec its;
	uint32_t tick;
	int r;

	if (!w)
		return -ENOMEM;
	w->epfd = w->wake.fd = w->sweep.fd = -1;
	if (pthread_mutex_init(&w->lock, NULL) != 0) {
		free(w);
		return -ENOMEM;
	}
	if (pthread_cond_init(&w->cond, NULL) != 0) {
		pthread_mutex_destroy(&w->lock);
		free(w);
		return -ENOMEM;
	}
	w->id = id;
	w->table = table;
	w->udp_idle_ms = udp_idle_ms ? udp_idle_ms : UDP_IDLE_DEFAULT_MS;
	w->rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)(id + 1) * 0xbf58476d1ce4e5b9ULL) ^ relay_now_ms();
	if (w->rng == 0)
		w->rng = 1;
	w->wake.kind = WORKER_HANDLE_WAKE;
	w->sweep.kind = WORKER_HANDLE_SWEEP;
	w->buf = malloc(WORKER_BUF_SIZE);
	if (!w->buf) {
		r = -ENOMEM;
		goto fail;
	}
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd == -1)
		goto fail_errno;
	w->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wake.fd == -1)
		goto fail_errno;
	w->sweep.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w->sweep.fd == -1)
		goto fail_errno;
	/* Sweep often enough that a flow outlives its timeout by at most a
	 * fraction of it, but no more than 20 times a second. */
	tick = w->udp_idle_ms / 4;
	if (tick < 50)
		tick = 50;
	if (tick > 1000)
		tick = 1000;
	memset(&its, 0, sizeof(its));
	its.it_interval.tv_sec = tick / 1000;
	its.it_interval.tv_nsec = (long)(tick % 1000) * 1000000L;
	its.it_value = its.it_interval;
	if (timerfd_settime(w->sweep.fd, 0, &its, NULL) == -1)
		goto fail_errno;
	r = worker_watch(w, &w->wake, EPOLLIN, true);
	if (r == 0)
		r = worker_watch(w, &w->sweep, EPOLLIN, true);
	if (r < 0)
		goto fail;
	*ret = w;
	return 0;
fail_errno:
	r = -errno;
fail:
	worker_free(w);
	return r;
}

static void worker_wake(struct relay_worker *w)
{
	uint64_t one = 1;

	/* Can only fail if the counter is about to overflow, which means a
	 * wake-up is already pending anyway. */
	if (write(w->wake.fd, &one, sizeof(one)) == -1)
		log_debug("userspace: worker %u: eventfd write: %s", w->id, strerror(errno));
}

/* Append c to w's queue. */
static void worker_post(struct relay_worker *w, struct relay_cmd *c)
{
	pthread_mutex_lock(&w->lock);
	c->next = NULL;
	if (w->cmd_tail)
		w->cmd_tail->next = c;
	else
		w->cmd_head = c;
	w->cmd_tail = c;
	w->cmd_posted++;
	pthread_mutex_unlock(&w->lock);
	worker_wake(w);
}

int relay_pool_init(struct relay_pool *p, unsigned n, uint32_t udp_idle_ms)
{
	sigset_t all, old;
	int r = 0;

	memset(p, 0, sizeof(*p));
	if (n == 0)
		n = 1;
	r = relay_table_init(&p->table);
	if (r < 0)
		return r;
	p->workers = calloc(n, sizeof(*p->workers));
	if (!p->workers) {
		relay_table_done(&p->table);
		return -ENOMEM;
	}
	/* Workers inherit a full signal mask: a write to a closed peer must
	 * not kill the process with SIGPIPE, and the core's signals belong to
	 * the control thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < n; i++) {
		struct relay_worker *w = NULL;

		r = worker_new(i, udp_idle_ms, &p->table, &w);
		if (r < 0)
			break;
		p->workers[p->n_workers++] = w;
		r = -pthread_create(&w->thread, NULL, worker_main, w);
		if (r < 0)
			break;
		w->started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		relay_pool_done(p);
	return r;
}

void relay_pool_done(struct relay_pool *p)
{
	if (!p->workers) {
		relay_table_done(&p->table);
		return;
	}
	for (unsigned i = 0; i < p->n_workers; i++) {
		struct relay_worker *w = p->workers[i];

		if (!w->started)
			continue;
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		pthread_mutex_unlock(&w->lock);
		worker_wake(w);
	}
	for (unsigned i = 0; i < p->n_workers; i++) {
		struct relay_worker *w = p->workers[i];

		if (w->started)
			pthread_join(w->thread, NULL);
		worker_free(w);
	}
	free(p->workers);
	/* After the workers: they looked frontends up in it. */
	relay_table_done(&p->table);
	memset(p, 0, sizeof(*p));
}

/* One zeroed command per worker, allocated up front so that a command is
 * posted to every worker or to none. NULL on ENOMEM (nothing left over). */
static struct relay_cmd **relay_cmds_new(unsigned n)
{
	struct relay_cmd **cmds = calloc(n, sizeof(*cmds));

	if (!cmds)
		return NULL;
	for (unsigned i = 0; i < n; i++) {
		cmds[i] = calloc(1, sizeof(**cmds));
		if (!cmds[i]) {
			for (unsigned k = 0; k < i; k++)
				free(cmds[k]);
			free(cmds);
			return NULL;
		}
	}
	return cmds;
}

int relay_pool_add_listeners(struct relay_pool *p, struct relay_frontend *fe, const int *fds)
{
	struct relay_cmd **cmds = relay_cmds_new(p->n_workers);

	if (!cmds)
		return -ENOMEM;
	for (unsigned i = 0; i < p->n_workers; i++) {
		cmds[i]->kind = RELAY_CMD_ADD;
		cmds[i]->fe = relay_frontend_ref(fe);
		cmds[i]->fd = fds[i];
		worker_post(p->workers[i], cmds[i]);
	}
	free(cmds);
	return 0;
}

int relay_pool_remove_listeners(struct relay_pool *p, struct relay_frontend *fe)
{
	struct relay_cmd **cmds = relay_cmds_new(p->n_workers);

	if (!cmds)
		return -ENOMEM;
	for (unsigned i = 0; i < p->n_workers; i++) {
		cmds[i]->kind = RELAY_CMD_REMOVE;
		cmds[i]->fe = relay_frontend_ref(fe);
		cmds[i]->fd = -1;
		worker_post(p->workers[i], cmds[i]);
	}
	free(cmds);
	return 0;
}

void relay_pool_wait(struct relay_pool *p)
{
	for (unsigned i = 0; i < p->n_workers; i++) {
		struct relay_worker *w = p->workers[i];

		pthread_mutex_lock(&w->lock);
		while (w->cmd_done < w->cmd_posted && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		pthread_mutex_unlock(&w->lock);
	}
}
