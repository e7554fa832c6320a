/* Interception for the userspace relay (proxy/core/intercept.h) with nftables:
 * tables "ip ferry_intercept" / "ip6 ferry_intercept", a map
 * address . proto . port : relay port, and `redirect` in the nat prerouting
 * and output hooks; an entry on the wildcard address (a node port on every
 * address) goes to a map proto . port : relay port, matched for any local
 * destination address. Separate from the nftables backend's own tables, so the
 * two never disturb each other. After the redirects, the guards of the
 * service range: a set of cluster IPs whose other ports are rejected, and a
 * drop rule per service CIDR.
 *
 * Any number of redirects, up to a sanity bound: element lists are split
 * over as many messages as needed, all in one transaction. After the first
 * sync only the difference from the last committed map is sent.
 *
 * Built with the shared nf_tables mechanism of this folder (nft_table.h,
 * nft_expr.h, nft_set.h), like the nftables backend's own tables.
 */
#ifndef FERRY_NFT_INTERCEPT_H
#define FERRY_NFT_INTERCEPT_H

#include <stddef.h>

#include "intercept.h"

struct nft_batch;

#define NFT_INTERCEPT_TABLE "ferry_intercept"

/* Sanity bound on the entries of one sync, far above any cluster (a full
 * replace of this many is one transaction of ~50 MB of netlink messages):
 * sync refuses more with -E2BIG and a log line naming it. */
#define NFT_INTERCEPT_MAX (1u << 20)

/* The provider the program hands to a relay backend. Its priv (priv_size
 * bytes) holds the committed redirects, the netlink socket and counters;
 * init opens nothing (the first sync does), fini closes the socket and
 * leaves the kernel's tables to cleanup. cleanup takes no priv: a priv
 * whose tables it removed notices at its next sync (the update is refused)
 * and replaces everything, with a warning. One priv is used from one
 * thread at a time; different privs are independent. */
extern const struct intercept_ops nftables_intercept_ops;

/* Append to b the messages of a full replacement by entries and guards
 * (NULL: none), what sync sends the first time: both families' tables, map,
 * set, chains and rules, the map and set emptied, then their elements, no
 * element list longer than its 16-bit attribute allows. Sends nothing and
 * keeps no state: for tests that parse the messages back. 0, -E2BIG past
 * the sanity bound, or -ENOMEM. */
int nft_intercept_replace_msgs(struct nft_batch *b, const struct intercept_entry *entries, size_t n,
			       const struct intercept_guards *guards);

/* How many syncs through priv (an initialised nftables_intercept_ops
 * priv) replaced everything instead of sending a difference (for tests:
 * an ordinary second sync must not). */
unsigned long nft_intercept_replace_count(const void *priv);

#endif
