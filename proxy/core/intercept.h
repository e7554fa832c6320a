/* Interception: how a relay backend gets traffic that is not addressed to
 * this host (cluster IPs, external IPs routed through the node, and the
 * node's own connections to them) delivered to its listeners.
 *
 * The core defines the interface so that a relay backend (userspace) and a
 * kernel-rule provider (nftables) need not include each other: main wires
 * one to the other through struct backend_config.intercept.
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

struct intercept_ops {
	const char *name;
	/* Make the interception exactly entries (both families), replacing
	 * the previous set atomically. Idempotent. 0 or -errno (logged). */
	int (*sync)(const struct intercept_entry *entries, size_t n);
	/* Remove every interception rule (absent is success). 0 or -errno. */
	int (*cleanup)(void);
};

#endif
