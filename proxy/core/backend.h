/* The backend contract: one ops table per dataplane, registered in backends.c.
 *
 * The core calls, in order: probe (optional, for --backend auto), init once,
 * then sync/apply any number of times from the control thread, then fini.
 * cleanup is called alone (ferry cleanup) and must work after a crash.
 * Adding something that exists or deleting something already gone is success.
 * A failed sync/apply must leave the previous state working; the core retries
 * with a full sync.
 *
 * Options: each backend declares its own options struct in its header
 * (struct nftables_options, struct userspace_options...), which the
 * program fills from the command line and passes to init and render as
 * a const void *. The core never looks inside.
 */
#ifndef FERRY_BACKEND_H
#define FERRY_BACKEND_H

#include <stdbool.h>
#include <stdio.h>

#include "plan-t.h"
#include "planner.h"

/* One count of a backend's programmed objects (backend_ops.counts). */
typedef void (*backend_count_fn)(void *userdata, const char *kind, uint64_t count);

/* One service port's relayed traffic (backend_ops.service_stats): totals
 * since the backend started, plus what is open now. */
struct backend_service_stats {
	const char *ns;
	const char *name;
	const char *port_name;   /* "" when unnamed */
	enum inet_proto proto;
	uint64_t connections;    /* TCP connections accepted / UDP flows started */
	uint64_t active;         /* open now */
	uint64_t bytes_in;       /* client -> endpoint */
	uint64_t bytes_out;      /* endpoint -> client */
};

/* One actively health-checked endpoint of a service port
 * (backend_ops.service_stats). */
struct backend_endpoint_health {
	const char *ns;
	const char *name;
	const char *port_name;
	enum inet_proto proto;
	const struct inet_addr *addr;
	uint16_t port;
	bool healthy;
};

typedef void (*backend_service_stats_fn)(void *userdata, const struct backend_service_stats *s);
typedef void (*backend_endpoint_health_fn)(void *userdata,
					   const struct backend_endpoint_health *h);

struct backend_ops {
	/* Name on the command line (--backend NAME). */
	const char *name;
	/* --nodeport-addresses when not given: kube-proxy's default for the
	 * same mode, the node's primary address (true) or every address. */
	bool nodeport_default_primary;
	/* Can it serve node ports on 127.0.0.1 / ::1 (--nodeport-addresses
	 * localhost)? */
	bool loopback_node_ports;
	/* The ferry.io/balance algorithms it honours besides the default
	 * round-robin (one bit per enum balance_algo), and whether it runs
	 * ferry.io/health-check; a service asking for more is warned about. */
	unsigned balance_algos;
	bool active_health_checks;
	/* Bytes of private state the core allocates (zeroed) and passes to
	 * init/sync/apply/fini. */
	size_t priv_size;
	/* Is this backend usable on this host? Returns 0, or a negative errno and
	 * a human reason in why. Changes nothing. May be NULL (always usable). */
	int (*probe)(char *why, size_t why_len);
	/* Prepare the dataplane. options: this backend's own options struct
	 * (see above), or NULL for its defaults; need not outlive init.
	 * Returns 0 or a negative errno. */
	int (*init)(void *priv, const void *options);
	/* Make the dataplane match plan exactly (idempotent). 0 or -errno. */
	int (*sync)(void *priv, const struct plan *plan);
	/* Apply diff, which leads from the previously synced plan to plan.
	 * May be NULL: the core then calls sync. 0 or -errno. */
	int (*apply)(void *priv, const struct plan *plan, const struct plan_diff *diff);
	/* Housekeeping that follows the kernel rather than the plan (IPVS:
	 * delete drained real servers once their connections are gone),
	 * called when a sync found nothing to apply, so at least every
	 * --sync-period. Control thread. May be NULL. */
	void (*tick)(void *priv);
	/* Print what this backend would program for plan with options (what
	 * init would get; NULL: defaults), without touching the host (ferry
	 * plan). In JSON, one JSON value. May be NULL. */
	void (*render)(const struct plan *plan, const void *options, enum plan_format fmt, FILE *out);
	/* Remove everything this backend may ever have installed. May be NULL
	 * (nothing persists). 0 or -errno. */
	int (*cleanup)(void);
	/* Stop and release everything init set up (live relayed connections are
	 * closed). Must accept a priv whose init failed. */
	void (*fini)(void *priv);
	/* What is programmed now, for the metrics
	 * (ferry_backend_objects{backend,kind}): emit(userdata, kind, count)
	 * once per kind ("frontends", "set_elements", "virtual_servers"...).
	 * Control thread, between syncs; changes nothing. May be NULL. */
	void (*counts)(void *priv, backend_count_fn emit, void *userdata);
	/* Per service port traffic and per endpoint health, for the metrics
	 * (ferry_relay_* and ferry_endpoint_healthy): emit_stats once per
	 * service port the backend relays, emit_health once per endpoint it
	 * health-checks. Control thread, at a scrape; changes nothing (counters
	 * the workers move are read as they are). May be NULL. */
	void (*service_stats)(void *priv, backend_service_stats_fn emit_stats,
			      backend_endpoint_health_fn emit_health, void *userdata);
};

#endif
