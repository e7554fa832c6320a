/* Interception: how a relay backend gets traffic that is not addressed to
 * this host (cluster IPs, external IPs routed through the node, and the
 * node's own connections to them) delivered to its listeners.
 *
 * The core defines the interface so that a relay backend (userspace) and a
 * kernel-rule provider (nftables) need not include each other: main wires
 * one to the other through the userspace backend's options.
 */
#ifndef FERRY_INTERCEPT_H
#define FERRY_INTERCEPT_H

#include <stddef.h>
#include <stdint.h>

#include "inet.h"

/* Connections to addr:port/proto go to the local relay_port instead. */
struct intercept_entry {
	struct inet_addr addr;
	enum inet_proto proto;   /* TCP or UDP */
	uint16_t port;
	uint16_t relay_port;     /* a local listener (bound to the wildcard address) */
};

/* The guards of the service range (plan.cluster_ips, plan.service_cidrs;
 * kube-proxy's nftables mode): a new connection to one of cluster_ips that
 * no entry redirects is rejected (TCP reset, else ICMP port unreachable);
 * one to an address inside service_cidrs that is no cluster IP is dropped.
 * Borrowed for the duration of a sync call. n_service_cidrs = 0: nothing
 * is dropped. */
struct intercept_guards {
	const struct inet_addr *cluster_ips;     /* any order, any family */
	size_t n_cluster_ips;
	const struct inet_prefix *service_cidrs; /* any order, any family */
	size_t n_service_cidrs;
};

/* An interception provider, used like a backend: the relay backend that
 * owns it allocates priv_size zeroed bytes, calls init once, sync any
 * number of times, and fini; all from the control thread. Every piece of
 * state lives in priv, so two providers (tests) never share any. */
struct intercept_ops {
	const char *name;
	/* Bytes of private state the caller allocates (zeroed). */
	size_t priv_size;
	/* Prepare (no kernel change yet). 0 or -errno. */
	int (*init)(void *priv);
	/* Make the interception exactly entries (both families) guarded by
	 * guards (NULL: no guard), replacing the previous set atomically:
	 * a packet meets the old rules or the new ones, never a mix.
	 * Idempotent. 0 or -errno (logged). */
	int (*sync)(void *priv, const struct intercept_entry *entries, size_t n,
		    const struct intercept_guards *guards);
	/* Release what init and sync hold in memory; the kernel's rules stay
	 * (cleanup removes them). Must accept a priv whose init failed. */
	void (*fini)(void *priv);
	/* Remove every interception rule (absent is success), from any
	 * process, also after a crash. 0 or -errno. */
	int (*cleanup)(void);
};

#endif
