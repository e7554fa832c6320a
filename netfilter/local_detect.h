/* Local-traffic detection options shared by the kernel backends
 * (nftables, ipvs): how their rules tell a cluster IP's "local" clients
 * (pods, which keep their source address) from everyone else (masqueraded,
 * PLAN_MASQ_UNLESS_LOCAL in plan-t.h). kube-proxy's --detect-local-mode,
 * but NodeCIDR. Types only: each backend turns them into its own rules.
 */
#ifndef FERRY_LOCAL_DETECT_H
#define FERRY_LOCAL_DETECT_H

#include <stddef.h>

#include "inet.h"

enum local_detect_mode {
	LOCAL_DETECT_CLUSTER_CIDR = 0,      /* ClusterCIDR: source in cluster_cidrs */
	LOCAL_DETECT_INTERFACE_NAME_PREFIX, /* InterfaceNamePrefix: in on an interface named interface* */
	LOCAL_DETECT_BRIDGE_INTERFACE,      /* BridgeInterface: in on the interface named interface */
};

struct local_detect {
	enum local_detect_mode mode;
	/* ClusterCIDR mode: traffic from these prefixes is local; none for a
	 * family: no detection in that family (nothing is masqueraded by
	 * source there). Unused in the interface modes. */
	const struct inet_prefix *cluster_cidrs;
	size_t n_cluster_cidrs;
	/* Interface modes: the name prefix (--pod-interface-name-prefix) or
	 * the bridge (--pod-bridge-interface), 1-15 characters, matching both
	 * families. NULL in ClusterCIDR mode. */
	const char *interface;
};

#endif
