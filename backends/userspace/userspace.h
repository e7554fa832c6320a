/* The userspace backend: a splice(2) TCP relay and a UDP relay run by epoll
 * worker threads with SO_REUSEPORT listeners (see DESIGN.md, "Userspace
 * relay principles"). Register userspace_backend_ops in the backend
 * registry; everything else of this directory is private to it.
 */
#ifndef FERRY_USERSPACE_H
#define FERRY_USERSPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backend.h"

#include "intercept.h"

extern const struct backend_ops userspace_backend_ops;

/* What init and render take as options (NULL: all defaults). */
struct userspace_options {
	unsigned workers;              /* relay worker threads; 0 means 1 */
	uint32_t udp_idle_timeout_ms;  /* UDP flow idle timeout; 0: the relay's default */
	/* How to steer traffic for non-local frontends (cluster IPs, external
	 * IPs) to the relay's shared sockets; NULL: none (every frontend
	 * then listens on its own address). The backend allocates the
	 * provider's state and calls its init at its own init, sync after
	 * changes, and cleanup + fini at the backend's fini. */
	const struct intercept_ops *intercept;
	/* Local-traffic detection (--detect-local-mode ClusterCIDR,
	 * --cluster-cidr): a client inside one of these prefixes is one of
	 * this cluster's pods, and, like the node itself, is short-circuited
	 * to all endpoints by an externalTrafficPolicy Local frontend
	 * (plan_frontend.short_circuit). Copied by init. */
	const struct inet_prefix *cluster_cidrs;
	size_t n_cluster_cidrs;
	/* --detect-local-mode names interfaces: not applicable to a relay,
	 * which init says (the node's own connections are still recognised). */
	bool local_by_interface;
};

/* render slot of userspace_backend_ops: print the listeners the relay would
 * open for plan, one line each in text, one JSON object in JSON
 * ({"backend":"userspace","listeners":[...],"skipped":[...]}). */
void userspace_render(const struct plan *plan, const void *options, enum plan_format fmt, FILE *out);

/* Introspection for tests and metrics: may endpoint addr:port of the
 * endpoint set epset_key (the plan's key) take new traffic? Returns 1 (yes),
 * 0 (health checks took it out) or -ENOENT (no such set or endpoint).
 * priv is the backend state given to init. Call from the control thread,
 * between syncs. */
int userspace_endpoint_usable(void *priv, const char *epset_key, const struct inet_addr *addr,
			      uint16_t port);

/* Work counters of one backend instance since init, for tests and
 * benchmarks: what each sync or apply rebuilt. */
struct userspace_stats {
	uint64_t syncs;             /* full syncs run */
	uint64_t applies;           /* incremental applies run */
	uint64_t pools_built;       /* endpoint pools (re)built from a plan set */
	uint64_t services_made;     /* service snapshots made for frontends */
	uint64_t listeners_opened;  /* listener sets opened (own and shared relay) */
	uint64_t listeners_closed;  /* listener sets closed */
	uint64_t health_updates;    /* target lists handed to the health checker */
	uint64_t intercept_pushes;  /* redirect lists handed to the interception */
};

/* Copy priv's counters into *ret. Control thread. */
void userspace_get_stats(void *priv, struct userspace_stats *ret);

/* The identity of the service snapshot new connections to the listener
 * addr:port/proto (its bind address: the wildcard for node ports on every
 * address) get now, NULL when none is open. For comparison only (never
 * dereference): equal before and after an apply means that frontend's
 * snapshot, and so its endpoint pool, was left alone. Control thread. */
const void *userspace_frontend_snapshot(void *priv, const struct inet_addr *addr,
					enum inet_proto proto, uint16_t port);

/* Check that priv's state is what a successful sync of plan leaves: one
 * pool per (non-SCTP) set with the plan's endpoints and policy, one open
 * frontend per listener key, each serving a snapshot over its set's pool
 * with the plan's policy, every index and list consistent. For tests,
 * after syncs and applies that succeeded. 0, or -EUCLEAN with a warning
 * naming the first difference. Control thread. */
int userspace_check_state(void *priv, const struct plan *plan);

#endif
