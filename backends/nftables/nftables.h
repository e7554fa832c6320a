/* The nftables backend: the plan as NAT rules programmed over netlink with
 * libnftnl + libmnl (see DESIGN.md, "nftables backend principles").
 * Register nftables_backend_ops in the backend registry; the nft_* headers
 * of this directory are its private mechanism.
 */
#ifndef FERRY_NFTABLES_H
#define FERRY_NFTABLES_H

#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "local_detect.h"

extern const struct backend_ops nftables_backend_ops;

/* Default mark bit meaning "masquerade this connection" (kube-proxy's). */
#define NFTABLES_DEFAULT_MASQ_MARK 0x4000u

/* What init and render take as options (NULL: all defaults). */
struct nftables_options {
	/* The mark bit meaning "masquerade" (--masquerade-bit); 0 means
	 * NFTABLES_DEFAULT_MASQ_MARK. */
	uint32_t masquerade_mark;
	/* Which cluster-IP clients are local (--detect-local-mode...). */
	struct local_detect local;
};

struct nft_ruleset_cfg;
struct nft_elems_cfg;

/* Private to the backend (init and render): the ruleset and element
 * options opts asks for (NULL: defaults). rcfg borrows opts' cluster CIDRs
 * and carries no tag. Returns 0, or -EINVAL (logged) for a bad interface
 * name. */
int nftables_config(const struct nftables_options *opts, struct nft_ruleset_cfg *rcfg,
		    struct nft_elems_cfg *ecfg);

/* render slot: the ruleset in nft syntax (accepted by `nft -c -f`), both
 * tables, then the elements the plan puts in their sets. In JSON one object
 * {"backend":"nftables","ruleset":"..."} holding the same text. */
void nftables_render(const struct plan *plan, const void *options, enum plan_format fmt, FILE *out);

#endif
