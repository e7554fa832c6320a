/* The backend contract: one ops table per dataplane, registered in backends.c.
 *
 * The core calls, in order: probe (optional, for --backend auto), init once,
 * then sync/apply any number of times from the control thread, then fini.
 * cleanup is called alone (ferry cleanup) and must work after a crash.
 * Adding something that exists or deleting something already gone is success.
 * A failed sync/apply must leave the previous state working; the core retries
 * with a full sync.
 */
#ifndef FERRY_BACKEND_H
#define FERRY_BACKEND_H

#include <stdbool.h>
#include <stdio.h>

#include "intercept.h"
#include "plan-t.h"
#include "planner.h"

/* --detect-local-mode: how a kernel backend tells local (pod) traffic, which
 * keeps its source address on cluster IPs, from the rest, which is
 * masqueraded. kube-proxy's modes, but NodeCIDR. */
enum backend_local_mode {
	BACKEND_LOCAL_CLUSTER_CIDR = 0,      /* ClusterCIDR: source in cluster_cidrs */
	BACKEND_LOCAL_INTERFACE_NAME_PREFIX, /* InterfaceNamePrefix: in on local_interface* */
	BACKEND_LOCAL_BRIDGE_INTERFACE,      /* BridgeInterface: in on local_interface */
};

struct backend_config {
	unsigned workers;              /* relay worker threads (userspace); >= 1 */
	uint32_t udp_idle_timeout_ms;  /* UDP flow idle timeout (userspace) */
	/* nftables: the mark bit meaning "masquerade" (--masquerade-bit); 0 means
	 * the default, 1 << 14. */
	uint32_t masquerade_mark;
	bool masquerade_all;           /* --masquerade-all: SNAT every service connection */
	/* --cluster-cidr: in ClusterCIDR mode, traffic from these prefixes is
	 * "local" (not masqueraded on cluster IPs); none for a family: no
	 * local-traffic detection in that family. */
	const struct inet_prefix *cluster_cidrs;
	size_t n_cluster_cidrs;
	/* --detect-local-mode, and for the interface modes the name prefix
	 * (--pod-interface-name-prefix) or the bridge (--pod-bridge-interface):
	 * 1-15 characters, matching both families; NULL in ClusterCIDR mode.
	 * Only local_mode ClusterCIDR uses cluster_cidrs. The userspace backend
	 * ignores all three. */
	enum backend_local_mode local_mode;
	const char *local_interface;
	/* userspace: how to steer traffic for non-local frontends (cluster IPs,
	 * external IPs) to relay listeners (proxy/intercept.h); NULL: none. */
	const struct intercept_ops *intercept;
};

struct backend_ops {
	/* Name on the command line (--backend NAME). */
	const char *name;
	/* Bytes of private state the core allocates (zeroed) and passes to
	 * init/sync/apply/fini. */
	size_t priv_size;
	/* Is this backend usable on this host? Returns 0, or a negative errno and
	 * a human reason in why. Changes nothing. May be NULL (always usable). */
	int (*probe)(char *why, size_t why_len);
	/* Prepare the dataplane. Returns 0 or a negative errno. */
	int (*init)(void *priv, const struct backend_config *cfg);
	/* Make the dataplane match plan exactly (idempotent). 0 or -errno. */
	int (*sync)(void *priv, const struct plan *plan);
	/* Apply diff, which leads from the previously synced plan to plan.
	 * May be NULL: the core then calls sync. 0 or -errno. */
	int (*apply)(void *priv, const struct plan *plan, const struct plan_diff *diff);
	/* Print what this backend would program for plan with cfg (what init
	 * would get), without touching the host (ferry plan). In JSON, one JSON
	 * value. May be NULL. */
	void (*render)(const struct plan *plan, const struct backend_config *cfg, enum plan_format fmt, FILE *out);
	/* Remove everything this backend may ever have installed. May be NULL
	 * (nothing persists). 0 or -errno. */
	int (*cleanup)(void);
	/* Stop and release everything init set up (live relayed connections are
	 * closed). Must accept a priv whose init failed. */
	void (*fini)(void *priv);
};

#endif
