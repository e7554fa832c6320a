/* The health checker thread: an epoll over an eventfd (new targets, stop),
 * a timerfd ticking every HEALTH_TICK_MS, and the probe sockets in flight.
 * Probes are non-blocking connects; EPOLLOUT plus SO_ERROR gives the verdict
 * and the tick enforces timeouts and starts the checks that are due.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "health.h"
#include "log.h"
#include "relay.h"

#define HEALTH_TICK_MS 20

struct probe {
	struct balancer_endpoint *ep; /* reference */
	struct health_check_cfg cfg;
	char *label;
	int fd;                       /* connect in flight, or -1 */
	uint64_t next_ms;             /* when the next check starts */
	uint64_t deadline_ms;         /* when the one in flight times out */
	uint32_t ok_run, fail_run;
};

struct health {
	pthread_t thread;
	bool started;
	int epfd, wake_fd, timer_fd;
	pthread_mutex_t lock;         /* guards pending, have_pending, stop */
	struct probe *pending;
	size_t n_pending;
	bool have_pending;
	bool stop;
	/* Thread-owned. */
	struct probe *probes;
	size_t n_probes;
};

/* epoll data for the two fixed fds; probes use their index + 2. */
#define HEALTH_EV_WAKE 0u
#define HEALTH_EV_TIMER 1u

static void probe_stop(struct health *h, struct probe *p)
{
	if (p->fd >= 0) {
		(void)epoll_ctl(h->epfd, EPOLL_CTL_DEL, p->fd, NULL);
		close(p->fd);
		p->fd = -1;
	}
}

static void probes_free(struct probe *probes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (probes[i].fd >= 0)
			close(probes[i].fd);
		balancer_endpoint_unref(probes[i].ep);
		free(probes[i].label);
	}
	free(probes);
}

static void probe_result(struct probe *p, bool ok, const char *why)
{
	char ep[INET_ENDPOINT_STRLEN];
	bool healthy = balancer_endpoint_usable(p->ep);

	inet_endpoint_format(&p->ep->addr, p->ep->port, ep);
	if (ok) {
		p->fail_run = 0;
		p->ok_run++;
		if (!healthy && p->ok_run >= p->cfg.rise) {
			balancer_endpoint_set_healthy(p->ep, true);
			log_info("endpoint %s of %s up (%u successful checks)", ep, p->label, p->ok_run);
		}
	} else {
		p->ok_run = 0;
		p->fail_run++;
		log_debug("userspace: health check of %s (%s) failed: %s", ep, p->label, why);
		if (healthy && p->fail_run >= p->cfg.fall) {
			balancer_endpoint_set_healthy(p->ep, false);
			log_info("endpoint %s of %s down (%u failed checks)", ep, p->label, p->fail_run);
		}
	}
}

static void probe_start(struct health *h, struct probe *p, size_t index, uint64_t now)
{
	struct sockaddr_storage ss;
	struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = index + 2 };
	socklen_t len;
	int fd;

	p->next_ms = now + (p->cfg.interval_ms ? p->cfg.interval_ms : 2000);
	fd = socket(p->ep->addr.family == AF_INET6 ? AF_INET6 : AF_INET,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		probe_result(p, false, strerror(errno));
		return;
	}
	len = inet_to_sockaddr(&p->ep->addr, p->ep->port, &ss);
	if (connect(fd, (struct sockaddr *)&ss, len) == 0) {
		close(fd);
		probe_result(p, true, NULL);
		return;
	}
	if (errno != EINPROGRESS || epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
		probe_result(p, false, strerror(errno));
		close(fd);
		return;
	}
	p->fd = fd;
	p->deadline_ms = now + (p->cfg.timeout_ms ? p->cfg.timeout_ms : 1000);
}

static void probe_event(struct health *h, struct probe *p)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	probe_stop(h, p);
	probe_result(p, err == 0, err ? strerror(err) : NULL);
}

static void health_tick(struct health *h)
{
	uint64_t now = relay_now_ms();

	for (size_t i = 0; i < h->n_probes; i++) {
		struct probe *p = &h->probes[i];

		if (p->fd >= 0 && now >= p->deadline_ms) {
			probe_stop(h, p);
			probe_result(p, false, "timed out");
		}
		if (p->fd < 0 && now >= p->next_ms)
			probe_start(h, p, i, now);
	}
}

/* Order of probes by target: endpoint object, then label. */
static int probe_target_cmp(const void *x, const void *y)
{
	const struct probe *a = x, *b = y;
	uintptr_t pa = (uintptr_t)a->ep, pb = (uintptr_t)b->ep;

	if (pa != pb)
		return pa < pb ? -1 : 1;
	return strcmp(a->label, b->label);
}

/* Swap in the pending target list, carrying state over for endpoints that
 * stay. Probes in flight are restarted rather than re-indexed: simpler, and
 * costs at most one check period. The old list is sorted and bisected, so
 * a list of n targets is adopted in O(n log n), not O(n^2). */
static void health_adopt(struct health *h)
{
	struct probe *next;
	size_t n;

	pthread_mutex_lock(&h->lock);
	if (!h->have_pending) {
		pthread_mutex_unlock(&h->lock);
		return;
	}
	next = h->pending;
	n = h->n_pending;
	h->pending = NULL;
	h->n_pending = 0;
	h->have_pending = false;
	pthread_mutex_unlock(&h->lock);

	/* Stopped first: sorting moves them, and their index is their
	 * epoll data. */
	for (size_t k = 0; k < h->n_probes; k++)
		probe_stop(h, &h->probes[k]);
	if (h->n_probes > 1)
		qsort(h->probes, h->n_probes, sizeof(*h->probes), probe_target_cmp);
	for (size_t i = 0; i < n && h->n_probes > 0; i++) {
		const struct probe *old = bsearch(&next[i], h->probes, h->n_probes, sizeof(*h->probes),
						  probe_target_cmp);

		if (old) {
			next[i].ok_run = old->ok_run;
			next[i].fail_run = old->fail_run;
			next[i].next_ms = old->next_ms;
		}
	}
	probes_free(h->probes, h->n_probes);
	h->probes = next;
	h->n_probes = n;
}

static void *health_main(void *arg)
{
	struct health *h = arg;
	struct epoll_event evs[32];

	for (;;) {
		bool adopt = false, tick = false;
		int n = epoll_wait(h->epfd, evs, 32, -1);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_debug("userspace: health: epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			uint64_t v, id = evs[i].data.u64;

			if (id == HEALTH_EV_WAKE) {
				if (read(h->wake_fd, &v, sizeof(v)) == -1 && errno != EAGAIN)
					log_debug("userspace: health: eventfd: %s", strerror(errno));
				adopt = true;
			} else if (id == HEALTH_EV_TIMER) {
				if (read(h->timer_fd, &v, sizeof(v)) == -1 && errno != EAGAIN)
					log_debug("userspace: health: timerfd: %s", strerror(errno));
				tick = true;
			} else if (id - 2 < h->n_probes && h->probes[id - 2].fd >= 0) {
				probe_event(h, &h->probes[id - 2]);
			}
		}
		if (adopt) {
			bool stop;

			pthread_mutex_lock(&h->lock);
			stop = h->stop;
			pthread_mutex_unlock(&h->lock);
			if (stop)
				break;
			health_adopt(h);
			tick = true;
		}
		if (tick)
			health_tick(h);
	}
	return NULL;
}

struct health *health_free(struct health *h)
{
	if (!h)
		return NULL;
	if (h->started) {
		uint64_t one = 1;

		pthread_mutex_lock(&h->lock);
		h->stop = true;
		pthread_mutex_unlock(&h->lock);
		if (write(h->wake_fd, &one, sizeof(one)) == -1)
			log_debug("userspace: health: eventfd write: %s", strerror(errno));
		pthread_join(h->thread, NULL);
	}
	probes_free(h->probes, h->n_probes);
	probes_free(h->pending, h->n_pending);
	if (h->wake_fd >= 0)
		close(h->wake_fd);
	if (h->timer_fd >= 0)
		close(h->timer_fd);
	if (h->epfd >= 0)
		close(h->epfd);
	pthread_mutex_destroy(&h->lock);
	free(h);
	return NULL;
}

struct health *health_new(void)
{
	struct health *h = calloc(1, sizeof(*h));
	struct itimerspec its;
	struct epoll_event ev;
	sigset_t all, old;

	if (!h)
		return NULL;
	h->epfd = h->wake_fd = h->timer_fd = -1;
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h);
		return NULL;
	}
	h->epfd = epoll_create1(EPOLL_CLOEXEC);
	h->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	h->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (h->epfd == -1 || h->wake_fd == -1 || h->timer_fd == -1)
		return health_free(h);
	memset(&its, 0, sizeof(its));
	its.it_interval.tv_nsec = HEALTH_TICK_MS * 1000000L;
	its.it_value = its.it_interval;
	if (timerfd_settime(h->timer_fd, 0, &its, NULL) == -1)
		return health_free(h);
	ev.events = EPOLLIN;
	ev.data.u64 = HEALTH_EV_WAKE;
	if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->wake_fd, &ev) == -1)
		return health_free(h);
	ev.data.u64 = HEALTH_EV_TIMER;
	if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->timer_fd, &ev) == -1)
		return health_free(h);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	h->started = pthread_create(&h->thread, NULL, health_main, h) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!h->started)
		return health_free(h);
	return h;
}

int health_set_targets(struct health *h, const struct health_target *targets, size_t n)
{
	struct probe *probes = NULL;
	uint64_t one = 1;

	if (n > 0) {
		probes = calloc(n, sizeof(*probes));
		if (!probes)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		probes[i].label = strdup(targets[i].label ? targets[i].label : "?");
		if (!probes[i].label) {
			probes_free(probes, i);
			return -ENOMEM;
		}
		probes[i].ep = balancer_endpoint_ref(targets[i].ep);
		probes[i].cfg = targets[i].cfg;
		probes[i].fd = -1;
	}
	pthread_mutex_lock(&h->lock);
	probes_free(h->pending, h->n_pending);
	h->pending = probes;
	h->n_pending = n;
	h->have_pending = true;
	pthread_mutex_unlock(&h->lock);
	if (write(h->wake_fd, &one, sizeof(one)) == -1)
		log_debug("userspace: health: eventfd write: %s", strerror(errno));
	return 0;
}
