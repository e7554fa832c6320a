/* Interception for the userspace relay (proxy/intercept.h) with nftables:
 * tables "ip ferry_intercept" / "ip6 ferry_intercept", a map
 * address . proto . port : relay port, and `redirect` in the nat prerouting
 * and output hooks. Separate from the nftables backend's own tables, so the
 * two never disturb each other. */
#ifndef FERRY_NFT_INTERCEPT_H
#define FERRY_NFT_INTERCEPT_H

#include "intercept.h"

#define NFT_INTERCEPT_TABLE "ferry_intercept"

/* The ops main hands to a relay backend in backend_config.intercept. */
extern const struct intercept_ops nftables_intercept_ops;

#endif
