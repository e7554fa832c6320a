/* epoll-based event loop with a short list of one-shot timers.
 *
 * Timers are few (sync runner, debounce, backoff), so a linked list scanned
 * on each iteration is simpler than a heap and costs nothing measurable.
 */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

struct loop_watch {
	int fd;
	loop_fd_fn fn;
	void *userdata;
	struct loop_watch *next;
};

struct loop {
	int epfd;
	bool stopping;
	struct loop_watch *watches;
	struct loop_timer *timers;
};

uint64_t loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct loop *loop_new(void)
{
	struct loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd == -1) {
		free(loop);
		return NULL;
	}
	return loop;
}

struct loop *loop_free(struct loop *loop)
{
	if (!loop)
		return NULL;
	while (loop->watches) {
		struct loop_watch *w = loop->watches;
		loop->watches = w->next;
		free(w);
	}
	close(loop->epfd);
	free(loop);
	return NULL;
}

static struct loop_watch *loop_find_watch(struct loop *loop, int fd)
{
	for (struct loop_watch *w = loop->watches; w; w = w->next)
		if (w->fd == fd)
			return w;
	return NULL;
}

int loop_watch_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn, void *userdata)
{
	struct epoll_event ev = { .events = events };
	struct loop_watch *w = loop_find_watch(loop, fd);
	int op = EPOLL_CTL_MOD;

	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return -ENOMEM;
		w->fd = fd;
		w->next = loop->watches;
		loop->watches = w;
		op = EPOLL_CTL_ADD;
	}
	w->fn = fn;
	w->userdata = userdata;
	ev.data.ptr = w;
	if (epoll_ctl(loop->epfd, op, fd, &ev) == -1) {
		int r = -errno;
		if (op == EPOLL_CTL_ADD)
			loop_unwatch_fd(loop, fd);
		return r;
	}
	return 0;
}

int loop_unwatch_fd(struct loop *loop, int fd)
{
	for (struct loop_watch **p = &loop->watches; *p; p = &(*p)->next) {
		if ((*p)->fd == fd) {
			struct loop_watch *w = *p;
			*p = w->next;
			(void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
			free(w);
			return 0;
		}
	}
	return 0;
}

void loop_timer_init(struct loop_timer *t, loop_timer_fn fn, void *userdata)
{
	memset(t, 0, sizeof(*t));
	t->fn = fn;
	t->userdata = userdata;
}

void loop_timer_stop(struct loop *loop, struct loop_timer *t)
{
	if (!t->armed)
		return;
	for (struct loop_timer **p = &loop->timers; *p; p = &(*p)->next) {
		if (*p == t) {
			*p = t->next;
			break;
		}
	}
	t->next = NULL;
	t->armed = false;
}

void loop_timer_start(struct loop *loop, struct loop_timer *t, uint64_t delay_ms)
{
	loop_timer_stop(loop, t);
	t->deadline_ms = loop_now_ms() + delay_ms;
	t->armed = true;
	t->next = loop->timers;
	loop->timers = t;
}

void loop_stop(struct loop *loop)
{
	loop->stopping = true;
}

/* Fire every expired timer; return ms until the next one, or -1 when none. */
static int loop_fire_timers(struct loop *loop)
{
	uint64_t now = loop_now_ms();
	bool fired;

	do {
		fired = false;
		for (struct loop_timer *t = loop->timers; t; t = t->next) {
			if (t->deadline_ms <= now) {
				loop_timer_stop(loop, t);
				t->fn(loop, t->userdata);
				fired = true;
				break; /* the list may have changed: rescan */
			}
		}
		if (loop->stopping)
			return 0;
	} while (fired);

	int64_t next = -1;
	for (struct loop_timer *t = loop->timers; t; t = t->next) {
		int64_t left = (int64_t)(t->deadline_ms - now);
		if (next < 0 || left < next)
			next = left;
	}
	return next < 0 ? -1 : (int)(next > 60000 ? 60000 : next);
}

int loop_run(struct loop *loop)
{
	struct epoll_event evs[32];

	loop->stopping = false;
	while (!loop->stopping) {
		int timeout = loop_fire_timers(loop);
		if (loop->stopping)
			break;
		int n = epoll_wait(loop->epfd, evs, 32, timeout);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n && !loop->stopping; i++) {
			struct loop_watch *w = evs[i].data.ptr;
			/* A callback may unwatch other fds: check w is still live. */
			bool live = false;
			for (struct loop_watch *x = loop->watches; x; x = x->next)
				if (x == w)
					live = true;
			if (live)
				w->fn(loop, w->fd, evs[i].events, w->userdata);
		}
	}
	return 0;
}
