/* Inside a relay worker: the objects one worker thread owns and the event
 * handlers of tcp_relay.c and udp_relay.c. Nothing here is shared between
 * threads except through relay_frontend_service (see relay.h).
 */
#ifndef FERRY_USERSPACE_WORKER_H
#define FERRY_USERSPACE_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "ct_origin.h"
#include "relay.h"

/* First member of everything registered in a worker's epoll, so the event
 * pointer tells what it is. */
enum worker_handle_kind {
	WORKER_HANDLE_WAKE = 0,   /* the command eventfd */
	WORKER_HANDLE_SWEEP,      /* the UDP idle sweep timerfd */
	WORKER_HANDLE_TCP_LISTENER,
	WORKER_HANDLE_UDP_LISTENER,
	WORKER_HANDLE_TCP_SIDE,   /* one socket of a relayed TCP connection */
	WORKER_HANDLE_UDP_FLOW,
};

struct worker_handle {
	enum worker_handle_kind kind;
	int fd;
};

struct tcp_conn;
struct udp_flow;
struct relay_cmd;

/* A UDP listener's flow table starts this small and doubles while it holds
 * more than two flows per bucket (a shared relay socket carries the flows
 * of every intercepted UDP service). */
#define UDP_FLOW_BUCKETS_MIN 16u
#define WORKER_BUF_SIZE 65536u

/* One worker's socket of one frontend. */
struct worker_listener {
	struct worker_handle h;
	struct relay_frontend *fe;     /* reference */
	struct relay_worker *w;
	bool wildcard;                 /* bound to 0.0.0.0 / :: (UDP: pktinfo) */
	bool intercept;                /* a shared relay socket: frontends by
				        * original destination (w->table) */
	struct worker_listener *next;
	struct udp_flow **flows;       /* UDP only: client -> flow buckets */
	size_t n_buckets;              /* a power of two */
	size_t n_flows;
};

struct relay_worker {
	unsigned id;
	pthread_t thread;
	bool started;
	int epfd;
	struct worker_handle wake;     /* eventfd */
	struct worker_handle sweep;    /* timerfd */
	uint32_t udp_idle_ms;
	uint64_t rng;
	struct relay_table *table;     /* the pool's service table */
	struct ct_origin ct;           /* UDP flows' original destinations */

	pthread_mutex_t lock;          /* guards the command queue and counters */
	pthread_cond_t cond;
	struct relay_cmd *cmd_head, *cmd_tail;
	uint64_t cmd_posted, cmd_done;
	bool stop;

	/* Owned by the worker thread (or by the control thread after join). */
	struct worker_listener *listeners;
	struct tcp_conn *conns;        /* live connections (doubly linked) */
	struct tcp_conn *tcp_dead;     /* closed in this batch, freed after it */
	struct udp_flow *udp_dead;
	uint8_t *buf;                  /* scratch, WORKER_BUF_SIZE bytes: one datagram
				        * or one TCP read; never holds data across
				        * handler calls */
};

/* Add or change fd's interest in w's epoll (events as epoll_ctl takes them,
 * EPOLLET included). 0 or -errno. */
int worker_watch(struct relay_worker *w, struct worker_handle *h, uint32_t events, bool add);
/* Remove fd from w's epoll (ignores errors: the fd is about to close). */
void worker_unwatch(struct relay_worker *w, struct worker_handle *h);

/* tcp_relay.c: accept what is pending on a TCP listener. */
void tcp_relay_accept(struct relay_worker *w, struct worker_listener *l);
/* tcp_relay.c: an event on one side of a connection. */
void tcp_relay_event(struct relay_worker *w, struct worker_handle *h, uint32_t events);
/* tcp_relay.c: free the connections closed during the last batch. */
void tcp_relay_reap(struct relay_worker *w);
/* tcp_relay.c: close and free every connection (worker stopped). */
void tcp_relay_close_all(struct relay_worker *w);

/* udp_relay.c: allocate the (small) flow table of a UDP listener. 0 or
 * -ENOMEM. */
int udp_relay_listener_init(struct worker_listener *l);
/* udp_relay.c: relay what is pending on a UDP listener to flows. */
void udp_relay_receive(struct relay_worker *w, struct worker_listener *l);
/* udp_relay.c: relay replies pending on a flow back to its client. */
void udp_relay_flow_event(struct relay_worker *w, struct worker_handle *h, uint32_t events);
/* udp_relay.c: close flows idle for longer than the timeout. */
void udp_relay_sweep(struct relay_worker *w, uint64_t now_ms);
/* udp_relay.c: close every flow of l at once and free its table. */
void udp_relay_listener_done(struct relay_worker *w, struct worker_listener *l);
/* udp_relay.c: free the flows closed during the last batch. */
void udp_relay_reap(struct relay_worker *w);

#endif
