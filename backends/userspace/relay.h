/* The relay engine: worker threads, listener sets and the per-frontend
 * service snapshot they read. This is the interface the backend's policy
 * drives (userspace_frontends.c mostly; userspace.c starts and stops the
 * workers); the event handling lives in worker.c, tcp_relay.c, udp_relay.c.
 *
 * Threads. One control thread (the core's) calls everything declared here.
 * Workers only read a frontend's service through relay_frontend_service,
 * which takes a reference under the frontend's mutex, so the control thread
 * may swap it at any moment: new connections see the new snapshot at once,
 * existing ones keep the endpoint reference they took (draining).
 */
#ifndef FERRY_USERSPACE_RELAY_H
#define FERRY_USERSPACE_RELAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "balancer.h"
#include "inet.h"
#include "plan-t.h"

/* One service port as the relay counts it (backend_ops.service_stats):
 * its identity and its traffic since the backend started. Shared by the
 * endpoint pools of the port (its cluster-wide and its Local set), by the
 * snapshots over them, and by every connection or flow they started, which
 * count into it until they close (also after the service went).
 * Refcounted; the counters are relaxed atomics any thread moves. */
struct relay_svcport {
	atomic_uint refs;
	enum inet_proto proto;
	atomic_uint_fast64_t connections; /* TCP connections accepted / UDP flows started */
	atomic_uint_fast64_t bytes_in;    /* client -> endpoint */
	atomic_uint_fast64_t bytes_out;   /* endpoint -> client */
	atomic_uint active;               /* open now */
	/* label is "ns/name:port_name" (or "ns/name" when the port is
	 * unnamed): the pieces are found by their lengths, not by parsing
	 * (relay_svcport_names), so that one copy of the text serves both. */
	uint16_t ns_len, name_len;
	char label[];                     /* for logs, and the pieces */
};

/* The namespace, service name and port name ("" when unnamed) of p, each
 * NUL-terminated, written into buf (room for strlen(p->label) + 1 bytes). */
struct relay_svcport_names {
	const char *ns, *name, *port_name;
};
void relay_svcport_names(const struct relay_svcport *p, char *buf, struct relay_svcport_names *ret);

/* A new service port (strings copied into the same allocation; NULL reads
 * as "?" / ""). One reference. NULL on ENOMEM (or strings over 64 KiB,
 * which Kubernetes names never come near). */
struct relay_svcport *relay_svcport_new(const char *ns, const char *name, const char *port_name,
					enum inet_proto proto);
/* Take a reference; returns p. Any thread. Accepts NULL. */
struct relay_svcport *relay_svcport_ref(struct relay_svcport *p);
/* Accepts NULL; returns NULL. Any thread. */
struct relay_svcport *relay_svcport_unref(struct relay_svcport *p);
/* A connection or flow of p opens (connections and active up) or closes
 * (active down). Accept NULL. Any thread. */
void relay_svcport_open(struct relay_svcport *p);
void relay_svcport_close(struct relay_svcport *p);

/* What few snapshots have (load-balancer source ranges, a short-circuit),
 * apart, so that the others (one per frontend) stay at 32 bytes. */
struct relay_service_scope {
	uint32_t n_source_ranges;
	uint32_t n_local_cidrs;
	struct inet_prefix *source_ranges; /* owned copy; n=0 allows all */
	/* externalTrafficPolicy Local's short-circuit (plan_frontend.
	 * short_circuit): clients that start on this node, the node itself
	 * or a source inside local_cidrs (this cluster's pods), are served by
	 * this balancer instead of the service's. NULL: everyone uses that. */
	struct balancer *short_circuit;    /* owned reference */
	struct inet_prefix *local_cidrs;   /* owned copy */
};

/* What one frontend forwards to, as of one sync. Immutable once handed to
 * a frontend, refcounted. */
struct relay_service {
	atomic_uint refs;
	enum empty_verdict when_empty;
	struct balancer *balancer;         /* owned reference; never NULL */
	struct relay_svcport *port;        /* owned reference; NULL: no endpoint set */
	struct relay_service_scope *scope; /* owned; NULL: no ranges, no short-circuit */
};

/* s's short-circuit balancer, or NULL. */
static inline struct balancer *relay_service_short_circuit(const struct relay_service *s)
{
	return s->scope ? s->scope->short_circuit : NULL;
}

/* s's name for logs: its port's label, or a constant. */
static inline const char *relay_service_label(const struct relay_service *s)
{
	return s->port ? s->port->label : "(no endpoint set)";
}

/* A new service over balancer (a reference is taken) counting into port
 * (a reference is taken; NULL: none, labelled "(no endpoint set)"); ranges
 * are copied. One reference. NULL on ENOMEM. */
struct relay_service *relay_service_new(struct balancer *balancer, enum empty_verdict when_empty,
					const struct inet_prefix *ranges, size_t n_ranges,
					struct relay_svcport *port);
/* Give s, not yet handed to any frontend, the short-circuit set sc (a
 * reference is taken) for clients on this node or inside cidrs[0..n)
 * (copied). 0 or -ENOMEM (s unchanged). */
int relay_service_set_short_circuit(struct relay_service *s, struct balancer *sc,
				    const struct inet_prefix *cidrs, size_t n);
/* The balancer a new connection or flow from client gets: s's
 * short-circuit set when it has one and client starts on this node
 * (relay_client_is_local), else s's own. Any thread (a worker's). */
struct balancer *relay_service_balancer_for(const struct relay_service *s,
					    const struct inet_addr *client);
/* Whether client counts as starting on this node for a short-circuit:
 * inside one of cidrs[0..n) (this cluster's pods, by --cluster-cidr), a
 * loopback address, or one of this host's own addresses (as the kernel
 * sees them at this moment: a route lookup, see local_client.c). Any
 * thread; no state. */
bool relay_client_is_local(const struct inet_addr *client, const struct inet_prefix *cidrs, size_t n);
/* Accepts NULL; returns NULL. Any thread. */
struct relay_service *relay_service_unref(struct relay_service *s);
/* True when client may use s (source ranges). */
bool relay_service_allows(const struct relay_service *s, const struct inet_addr *client);

/* One address:port/proto a service is reached on. Either listened on
 * (one socket per worker: a VIP's own listener set, or one of the shared
 * relay sockets that receive intercepted traffic, intercept true), or
 * only entered in the service table (relay_table) for the shared relay
 * sockets to find by original destination. */
struct relay_frontend {
	atomic_uint refs;
	struct inet_addr addr;  /* bind address (wildcard for node ports), or the VIP */
	enum inet_proto proto;
	uint16_t port;
	bool intercept;         /* a shared relay socket: look the frontend up */
	/* One of a few shared mutexes (chosen by fe's address, frontend.c)
	 * guards svc: workers take their reference under it. */
	struct relay_service *svc; /* NULL only on a shared relay socket */
	struct relay_frontend *tnext; /* relay_table bucket chain */
};

/* Room for a frontend's name, "10.0.0.1:80/TCP". */
#define RELAY_FRONTEND_NAME_LEN (INET_ENDPOINT_STRLEN + 8)
/* fe's name written into buf (RELAY_FRONTEND_NAME_LEN bytes); returns
 * buf. Made when asked, for logs, instead of kept in every frontend. */
const char *relay_frontend_name(const struct relay_frontend *fe, char *buf);
/* fe's name in a buffer that lives until the end of the enclosing block. */
#define RELAY_FE_NAME(fe) relay_frontend_name((fe), (char[RELAY_FRONTEND_NAME_LEN]){ 0 })

/* A frontend serving svc (a reference is taken; NULL: none, for a shared
 * relay socket). One reference. NULL on ENOMEM. */
struct relay_frontend *relay_frontend_new(const struct inet_addr *addr, enum inet_proto proto,
					  uint16_t port, struct relay_service *svc);
/* The same for *fe, zeroed by the caller, which is the first member of a
 * larger heap object (the backend's record of an open frontend, so that
 * both are one allocation): fe's last reference, wherever it is dropped,
 * frees that whole object. One reference. Cannot fail. */
void relay_frontend_init(struct relay_frontend *fe, const struct inet_addr *addr, enum inet_proto proto,
			 uint16_t port, struct relay_service *svc);
struct relay_frontend *relay_frontend_ref(struct relay_frontend *fe);
/* Accepts NULL; returns NULL. Any thread. */
struct relay_frontend *relay_frontend_unref(struct relay_frontend *fe);
/* Replace the service (a reference is taken; the old one is dropped). */
void relay_frontend_set_service(struct relay_frontend *fe, struct relay_service *svc);
/* The current service with a reference the caller must drop. Any thread. */
struct relay_service *relay_frontend_service(struct relay_frontend *fe);

/* The service table: the frontends the shared relay sockets serve, by
 * (address, protocol, port), a hash of chains. The control thread adds and
 * removes (write lock); workers look up (read lock), once per new
 * connection or flow. */
struct relay_table {
	pthread_rwlock_t lock;
	struct relay_frontend **buckets; /* n_buckets (a power of two) chains */
	size_t n_buckets;
	size_t n;
};

/* Empty table. 0 or -ENOMEM. */
int relay_table_init(struct relay_table *t);
/* Drop every entry's reference and free. Safe on a zeroed table. */
void relay_table_done(struct relay_table *t);
/* Enter fe (a reference is taken) under its addr, proto, port. 0, -EEXIST
 * (that key is taken), or -ENOMEM (table unchanged). Control thread. */
int relay_table_add(struct relay_table *t, struct relay_frontend *fe);
/* Take fe out (its reference is dropped); absent is a no-op. Control
 * thread. */
void relay_table_remove(struct relay_table *t, struct relay_frontend *fe);
/* The service of the frontend under addr:port/proto, else of the one
 * under the wildcard address of addr's family (a node port on every
 * address), with a reference the caller drops; NULL when neither is
 * there. Any thread. */
struct relay_service *relay_table_service(struct relay_table *t, const struct inet_addr *addr,
					  enum inet_proto proto, uint16_t port);

/* Give an ephemeral-port frontend (made with port 0) the port its first
 * listener got from the kernel, so the other workers' sockets bind the same
 * port and fe's name shows it. Control thread, before the listeners are
 * handed to the workers. */
void relay_frontend_set_port(struct relay_frontend *fe, uint16_t port);

/* The local port a bound socket has: the port, or -errno. */
int relay_listener_port(int fd);

/* Open one listening socket for fe: SO_REUSEPORT, IP(V6)_FREEBIND,
 * IPV6_V6ONLY, non-blocking, bound and (TCP) listening with TCP_NODELAY
 * (inherited by accepted sockets); UDP sockets on a wildcard address also
 * ask for packet info. Returns the fd or -errno. */
int relay_listener_socket(const struct relay_frontend *fe);

struct relay_worker;

/* The set of worker threads, and the service table their shared relay
 * sockets look frontends up in. */
struct relay_pool {
	struct relay_worker **workers;
	unsigned n_workers;
	struct relay_table table;
};

/* Start n workers (each its own epoll, eventfd, UDP sweep timer). UDP flows
 * idle for udp_idle_ms are closed (0: 30 s). Returns 0 or -errno; on error
 * nothing is left running and relay_pool_done is still safe. */
int relay_pool_init(struct relay_pool *p, unsigned n, uint32_t udp_idle_ms);
/* Stop and join every worker, then close every socket and connection and
 * free everything. Safe on a zeroed or failed pool. Idempotent. */
void relay_pool_done(struct relay_pool *p);

/* Hand fds[i] (a socket from relay_listener_socket) to worker i for fe; the
 * workers take ownership of the fds and a reference on fe each. All-or-
 * nothing: on -ENOMEM no worker got anything and the caller still owns the
 * fds. Does not wait. */
int relay_pool_add_listeners(struct relay_pool *p, struct relay_frontend *fe, const int *fds);
/* Ask every worker to close its socket of fe (and, for UDP, its flows).
 * Established TCP connections are not touched. Returns 0 or -ENOMEM (then
 * nothing was asked). Does not wait. */
int relay_pool_remove_listeners(struct relay_pool *p, struct relay_frontend *fe);
/* Wait until every worker has carried out what was asked so far. */
void relay_pool_wait(struct relay_pool *p);

/* Bytes a TCP direction relays by recv/send through the worker's buffer
 * before it switches to splice(2) through a pipe (tcp_relay.c says why). */
#define RELAY_TCP_SPLICE_AFTER_DEFAULT ((size_t)64 * 1024)

/* Change that threshold for the whole process: 0 splices from the first
 * byte, SIZE_MAX copies only. For tests and benchmarks, which exercise both
 * paths. Any thread; directions already past the threshold stay on splice. */
void relay_tcp_set_splice_after(size_t bytes);

/* Monotonic clock in milliseconds. */
uint64_t relay_now_ms(void);

#endif
