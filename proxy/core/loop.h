/* The control thread's event loop: fd watchers and one-shot timers on epoll.
 *
 * Sources (inotify, later libcurl sockets), signals and the sync runner all
 * run on it. Single-threaded: every function here must be called from the
 * thread that runs loop_run.
 */
#ifndef FERRY_LOOP_H
#define FERRY_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

/* Called with the epoll events (EPOLLIN...) that fired on fd. */
typedef void (*loop_fd_fn)(struct loop *loop, int fd, uint32_t events, void *userdata);
/* Called once when a timer expires. */
typedef void (*loop_timer_fn)(struct loop *loop, void *userdata);

/* A one-shot timer, embedded in its owner; zero it (or loop_timer_init) before
 * first use. */
struct loop_timer {
	loop_timer_fn fn;
	void *userdata;
	uint64_t deadline_ms; /* CLOCK_MONOTONIC milliseconds */
	bool armed;
	struct loop_timer *next; /* the loop's list of armed timers */
};

/* Allocate a loop. NULL on failure (errno set). */
struct loop *loop_new(void);
/* Free the loop (watched fds are not closed). Accepts NULL; returns NULL. */
struct loop *loop_free(struct loop *loop);

/* Watch fd for events (EPOLLIN and/or EPOLLOUT); replaces an existing watch of
 * the same fd. Returns 0 or -errno. */
int loop_watch_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn, void *userdata);
/* Stop watching fd; an fd not watched is success. */
int loop_unwatch_fd(struct loop *loop, int fd);

/* Prepare a timer with its callback. */
void loop_timer_init(struct loop_timer *t, loop_timer_fn fn, void *userdata);
/* Arm (or re-arm) t to fire after delay_ms. */
void loop_timer_start(struct loop *loop, struct loop_timer *t, uint64_t delay_ms);
/* Disarm t; disarming an idle timer is a no-op. */
void loop_timer_stop(struct loop *loop, struct loop_timer *t);

/* Run until loop_stop; returns 0 or -errno from epoll_wait. */
int loop_run(struct loop *loop);
/* Make loop_run return after the current callback. */
void loop_stop(struct loop *loop);

/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t loop_now_ms(void);

#endif
