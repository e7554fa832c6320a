/* The nftables backend: the plan as NAT rules programmed over netlink with
 * libnftnl + libmnl (see DESIGN.md, "nftables backend principles").
 * Register nftables_backend_ops in the backend registry; the nft_* headers
 * of this directory are its private mechanism.
 */
#ifndef FERRY_NFTABLES_H
#define FERRY_NFTABLES_H

#include <stdio.h>

#include "backend.h"

extern const struct backend_ops nftables_backend_ops;

/* Default mark bit meaning "masquerade this connection" (kube-proxy's). */
#define NFTABLES_DEFAULT_MASQ_MARK 0x4000u

struct nft_ruleset_cfg;
struct nft_elems_cfg;

/* Private to the backend (init and render): the ruleset and element
 * options cfg asks for. rcfg borrows cfg's cluster CIDRs and carries no
 * tag. Returns 0, or -EINVAL (logged) for a bad interface name. */
int nftables_config(const struct backend_config *cfg, struct nft_ruleset_cfg *rcfg, struct nft_elems_cfg *ecfg);

/* render slot: the ruleset in nft syntax (accepted by `nft -c -f`), both
 * tables, then the elements the plan puts in their sets. In JSON one object
 * {"backend":"nftables","ruleset":"..."} holding the same text. */
void nftables_render(const struct plan *plan, const struct backend_config *cfg, enum plan_format fmt, FILE *out);

#endif
