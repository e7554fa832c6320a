/* Mechanism: ferry's constant nftables ruleset, as libnftnl messages and as
 * nft text, both produced by the same rule functions (see nft_rules.h).
 *
 * Per family the table holds:
 *   nat_prerouting / nat_output (dstnat): jump services
 *   nat_postrouting (srcnat): hairpin and marked-traffic masquerade
 *   services: source ranges, masquerade marks, then vmap @sc_fe (the
 *       short-circuit), vmap @fe, vmap @empty_fe; for this host's
 *       addresses goto nodeports, which does the same with @sc_np, @np,
 *       @empty_np (node ports on every address)
 *   lb_S, nplb_S: dnat through the slot table with numgen random mod S
 *   sclb_S, scnplb_S: the short-circuit of externalTrafficPolicy Local
 *       frontends (kube-proxy's external chain): connections from this
 *       cluster's pods (the local-traffic detection) or from the node
 *       itself (fib saddr type local, masqueraded) dnat through the
 *       frontend's short-circuit slots; the others return to the
 *       frontend's own dispatch
 *   guard_forward / guard_output (filter, after the DNAT): new connections
 *       jump cluster_ips_check, kube-proxy's guard of the service range:
 *       one to a cluster IP (@cluster_ips) that no frontend took is
 *       rejected (do_reject), then service_cidrs_check drops those to the
 *       rest of the service CIDRs (its rules are the CIDRs, one each,
 *       written apart: nft_service_cidrs_msgs)
 *   do_reject: TCP reset, else ICMP port unreachable
 * Registers: every field is loaded into 32-bit registers, one after the
 * other, which is how a concatenation is matched against a set key.
 *
 * The expressions, tables and chains are built with the shared nf_tables
 * mechanism (netfilter/nft_expr.h, nft_table.h); what is here is ferry's
 * policy: which chains, which rules, and the sets they name.
 */
#include "nft_rules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/rtnetlink.h>

#include "nft_batch.h"
#include "nft_expr.h"
#include "nft_sets.h"
#include "nft_table.h"

/* "daddr . l4proto . dport" into words 0.. ; returns the next word. */
static unsigned ld_fe_key(struct nft_rule_builder *rb)
{
	unsigned w = nft_expr_load_addr(rb, true, 0);
	nft_expr_text(rb, " . ");
	w = nft_expr_load_l4proto(rb, w);
	nft_expr_text(rb, " . ");
	return nft_expr_load_dport(rb, w);
}

/* "l4proto . dport" into words 0.. */
static unsigned ld_np_key(struct nft_rule_builder *rb)
{
	unsigned w = nft_expr_load_l4proto(rb, 0);
	nft_expr_text(rb, " . ");
	return nft_expr_load_dport(rb, w);
}

/* "fib daddr type local " */
static void m_fib_local(struct nft_rule_builder *rb)
{
	uint32_t local = RTN_LOCAL;

	nft_expr_load_fib_daddr_type(rb, 0);
	nft_expr_cmp(rb, 0, NFT_CMP_EQ, &local, 4);
	nft_expr_text(rb, "fib daddr type local ");
}

/* "fib saddr type != local ": the source is none of this host's addresses
 * (the connection did not start on the node itself). */
static void m_fib_saddr_not_local(struct nft_rule_builder *rb)
{
	uint32_t local = RTN_LOCAL;

	nft_expr_load_fib_saddr_type(rb, 0);
	nft_expr_cmp(rb, 0, NFT_CMP_NEQ, &local, 4);
	nft_expr_text(rb, "fib saddr type != local ");
}

/* "<fe key> @set " */
static void m_fe_in(struct nft_rule_builder *rb, enum nft_set_id set)
{
	ld_fe_key(rb);
	nft_expr_lookup(rb, 0, nft_set_name(set), -1, false);
	nft_expr_text(rb, " @%s ", nft_set_name(set));
}

static void m_np_in(struct nft_rule_builder *rb, enum nft_set_id set)
{
	ld_np_key(rb);
	nft_expr_lookup(rb, 0, nft_set_name(set), -1, false);
	nft_expr_text(rb, " @%s ", nft_set_name(set));
}

/* "meta mark set meta mark | M" */
static void s_mark_masq(struct nft_rule_builder *rb, uint32_t m)
{
	uint32_t mask = ~m;

	nft_expr_load_meta(rb, NFT_META_MARK, 0);
	nft_expr_bitwise(rb, 0, &mask, &m, 4);
	nft_expr_store_meta(rb, NFT_META_MARK, 0);
	nft_expr_text(rb, "meta mark set meta mark | 0x%08x", m);
}

/* One rule function: fills rb (exprs and text). */
typedef void (*rule_fn)(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg);

static void r_ranges(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	unsigned w;

	(void)cfg;
	(void)arg;
	m_fe_in(rb, NFT_SET_RANGED_FE);
	w = ld_fe_key(rb);
	nft_expr_text(rb, " . ");
	nft_expr_load_addr(rb, false, w);
	nft_expr_lookup(rb, 0, nft_set_name(NFT_SET_RANGES), -1, true);
	nft_expr_text(rb, " != @%s ", nft_set_name(NFT_SET_RANGES));
	nft_expr_verdict(rb, NF_DROP, NULL);
}

/* A verdict-map dispatch: "KEY vmap @set", keyed by address . proto .
 * port (frontends) or proto . port (wildcard node ports: the caller makes
 * sure the packet is for this host). */
static void vmap_dispatch(struct nft_rule_builder *rb, enum nft_set_id set, bool node_port)
{
	if (node_port)
		ld_np_key(rb);
	else
		ld_fe_key(rb);
	nft_expr_lookup(rb, 0, nft_set_name(set), NFT_REG_VERDICT, false);
	nft_expr_text(rb, " vmap @%s", nft_set_name(set));
}

static void r_empty_fe(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	(void)arg;
	vmap_dispatch(rb, NFT_SET_EMPTY_FE, false);
}

static void r_empty_np(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	(void)arg;
	vmap_dispatch(rb, NFT_SET_EMPTY_NP, true);
}

static void r_reject_tcp(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	uint8_t tcp = IPPROTO_TCP;

	(void)cfg;
	(void)arg;
	nft_expr_load_l4proto(rb, 0);
	nft_expr_cmp(rb, 0, NFT_CMP_EQ, &tcp, 1);
	nft_expr_text(rb, " tcp ");
	nft_expr_reject_tcp_reset(rb);
}

static void r_reject(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	(void)arg;
	nft_expr_reject_port_unreachable(rb);
}

static void r_jump_services(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	(void)arg;
	nft_expr_verdict(rb, NFT_JUMP, "services");
}

static void r_mark_fe(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)arg;
	m_fe_in(rb, NFT_SET_MASQ_FE);
	s_mark_masq(rb, cfg->masq_mark);
}

/* Match sources outside every cluster CIDR of the rule's family: one
 * masked compare per CIDR ("ip saddr != 10.244.0.0/16 ..."). */
static void m_saddr_outside_cidrs(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg)
{
	for (size_t i = 0; i < cfg->n_cluster_cidrs; i++) {
		const struct inet_prefix *p = &cfg->cluster_cidrs[i];
		uint8_t mask[16] = { 0 }, zero[16] = { 0 };
		char buf[INET_ADDR_STRLEN];

		if (p->addr.family != rb->family)
			continue;
		for (unsigned bit = 0; bit < p->len; bit++)
			mask[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
		nft_expr_load_addr(rb, false, 0);
		nft_expr_bitwise(rb, 0, mask, zero, nft_expr_addr_len(rb));
		nft_expr_cmp(rb, 0, NFT_CMP_NEQ, p->addr.u.bytes, nft_expr_addr_len(rb));
		nft_expr_text(rb, " != %s/%u ", inet_addr_format(&p->addr, buf), p->len);
	}
}

/* Match packets that did not arrive on the local interface(s):
 * 'iifname != "cbr0"' (the name, zero-padded to IFNAMSIZ, as nft sends it)
 * or 'iifname != "veth*"' (a compare of the prefix bytes alone, without the
 * NUL). Locally generated packets have no input interface: they match. */
static void m_iifname_not_local(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg)
{
	char name[NFT_IFNAME_MAX + 1] = { 0 };   /* IFNAMSIZ */
	size_t len = strnlen(cfg->local_iifname, NFT_IFNAME_MAX);

	memcpy(name, cfg->local_iifname, len);
	nft_expr_load_meta(rb, NFT_META_IIFNAME, 0);
	nft_expr_cmp(rb, 0, NFT_CMP_NEQ, name, cfg->local_iifname_prefix ? len : sizeof(name));
	nft_expr_text(rb, "iifname != \"%s%s\" ", name, cfg->local_iifname_prefix ? "*" : "");
}

/* Match traffic that is not local (see nft_ruleset_cfg): by input
 * interface when one is configured, else by source outside the cluster
 * CIDRs. Used only where nft_ruleset_detects_local holds. */
static void m_not_local(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg)
{
	if (cfg->local_iifname[0])
		m_iifname_not_local(rb, cfg);
	else
		m_saddr_outside_cidrs(rb, cfg);
}

/* Cluster IPs reached from non-local traffic are masqueraded (so replies
 * come back through this node). Only emitted when the family detects
 * local traffic (nft_ruleset_detects_local). */
static void r_mark_local(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)arg;
	m_fe_in(rb, NFT_SET_LOCAL_FE);
	m_not_local(rb, cfg);
	s_mark_masq(rb, cfg->masq_mark);
}

/* Packets for this host go on to the wildcard node ports; the FIB lookup
 * is paid only by new connections that no frontend took. */
/* "ip daddr != 127.0.0.0/8 " / "ip6 daddr != ::1 ": node ports on every
 * local address leave the loopback addresses out, as kube-proxy's nftables
 * mode does (a loopback source cannot be DNATed off the host). */
static void m_daddr_not_loopback(struct nft_rule_builder *rb)
{
	uint8_t mask[16] = { 0 }, net[16] = { 0 }, zero[16] = { 0 };
	unsigned len = rb->family == NFPROTO_IPV4 ? 8 : 128;

	for (unsigned bit = 0; bit < len; bit++)
		mask[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
	if (rb->family == NFPROTO_IPV4)
		net[0] = 127;
	else
		net[15] = 1;
	nft_expr_load_addr(rb, true, 0);
	nft_expr_bitwise(rb, 0, mask, zero, nft_expr_addr_len(rb));
	nft_expr_cmp(rb, 0, NFT_CMP_NEQ, net, nft_expr_addr_len(rb));
	nft_expr_text(rb, rb->family == NFPROTO_IPV4 ? " != 127.0.0.0/8 " : " != ::1 ");
}

static void r_goto_nodeports(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	(void)arg;
	m_fib_local(rb);
	m_daddr_not_loopback(rb);
	nft_expr_verdict(rb, NFT_GOTO, "nodeports");
}

static void r_mark_np(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)arg;
	m_np_in(rb, NFT_SET_MASQ_NP);
	s_mark_masq(rb, cfg->masq_mark);
}

static void r_vmap_fe(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	(void)arg;
	vmap_dispatch(rb, NFT_SET_FE, false);
}

static void r_vmap_np(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	(void)arg;
	vmap_dispatch(rb, NFT_SET_NP, true);
}

/* The short-circuit maps: their elements jump (not goto) to the sclb
 * chains, so that a connection those do not take comes back here and
 * goes on to the frontend's own dispatch. */
static void r_vmap_sc_fe(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	(void)arg;
	vmap_dispatch(rb, NFT_SET_SC_FE, false);
}

static void r_vmap_sc_np(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	(void)arg;
	vmap_dispatch(rb, NFT_SET_SC_NP, true);
}

/* The first rule of a short-circuit chain: a connection neither from
 * this cluster's pods (not local, as m_not_local tells; every connection
 * when the family has no detection) nor from the node itself returns to
 * the frontend's own (Local) dispatch. */
static void r_sc_others_return(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)arg;
	m_not_local(rb, cfg);
	m_fib_saddr_not_local(rb);
	nft_expr_verdict(rb, NFT_RETURN, NULL);
}

/* After r_sc_others_return, what is not a pod's is the node's own:
 * masqueraded (kube-proxy: "fib saddr type local jump
 * mark-for-masquerade"); a pod keeps its address. */
static void r_sc_mark_node(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)arg;
	m_not_local(rb, cfg);
	s_mark_masq(rb, cfg->masq_mark);
}

/* "ct state new jump cluster_ips_check": the guards judge the first
 * packet of a connection only, after the DNAT (a connection a frontend
 * took no longer goes to a cluster IP). */
static void r_guard(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	(void)arg;
	nft_expr_match_ct_new(rb);
	nft_expr_verdict(rb, NFT_JUMP, "cluster_ips_check");
}

/* "ip daddr @cluster_ips goto do_reject": a port of a cluster IP that no
 * service defines is refused at once (TCP reset, ICMP port unreachable). */
static void r_cluster_ips(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	(void)arg;
	nft_expr_load_addr(rb, true, 0);
	nft_expr_lookup(rb, 0, nft_set_name(NFT_SET_CLUSTER_IPS), -1, false);
	nft_expr_text(rb, " @%s ", nft_set_name(NFT_SET_CLUSTER_IPS));
	nft_expr_verdict(rb, NFT_GOTO, "do_reject");
}

/* The rest of the service CIDRs: dropped (service_cidrs_check). */
static void r_goto_cidrs(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	(void)arg;
	nft_expr_verdict(rb, NFT_GOTO, NFT_CIDRS_CHAIN);
}

/* "ct status dnat ip saddr . ip daddr @hairpin masquerade" */
static void r_hairpin(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	uint32_t mask = IPS_DST_NAT, zero = 0;
	unsigned w;

	(void)cfg;
	(void)arg;
	nft_expr_load_ct(rb, NFT_CT_STATUS, 0);
	nft_expr_bitwise(rb, 0, &mask, &zero, 4);
	nft_expr_cmp(rb, 0, NFT_CMP_NEQ, &zero, 4);
	nft_expr_text(rb, "ct status dnat ");
	w = nft_expr_load_addr(rb, false, 0);
	nft_expr_text(rb, " . ");
	nft_expr_load_addr(rb, true, w);
	nft_expr_lookup(rb, 0, nft_set_name(NFT_SET_HAIRPIN), -1, false);
	nft_expr_text(rb, " @%s ", nft_set_name(NFT_SET_HAIRPIN));
	nft_expr_masquerade(rb, 0);
}

static void r_masq_unmarked(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	uint32_t m = cfg->masq_mark, zero = 0;

	(void)arg;
	nft_expr_load_meta(rb, NFT_META_MARK, 0);
	nft_expr_bitwise(rb, 0, &m, &zero, 4);
	nft_expr_cmp(rb, 0, NFT_CMP_EQ, &zero, 4);
	nft_expr_text(rb, "meta mark & 0x%08x == 0x00000000 ", m);
	nft_expr_verdict(rb, NFT_RETURN, NULL);
}

static void r_mark_clear(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	uint32_t all = 0xffffffff, m = cfg->masq_mark;

	(void)arg;
	nft_expr_load_meta(rb, NFT_META_MARK, 0);
	nft_expr_bitwise(rb, 0, &all, &m, 4);
	nft_expr_store_meta(rb, NFT_META_MARK, 0);
	nft_expr_text(rb, "meta mark set meta mark ^ 0x%08x", m);
}

static void r_masquerade(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	(void)arg;
	nft_expr_masquerade(rb, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
}

/* dnat through the slot table: arg = number of slots, numbered from
 * offset; node ports (np) key the table without the address. */
static void dnat_slots(struct nft_rule_builder *rb, unsigned slots, uint32_t offset, bool np)
{
	unsigned w;

	nft_expr_text(rb, "dnat %s to ", nft_family_name(rb->family));
	w = np ? ld_np_key(rb) : ld_fe_key(rb);
	nft_expr_text(rb, " . ");
	nft_expr_load_numgen(rb, slots, offset, w);
	nft_expr_lookup(rb, 0, nft_set_name(np ? NFT_SET_NP_SLOTS : NFT_SET_SLOTS), (int)nft_expr_reg(0), false);
	nft_expr_text(rb, " map @%s", nft_set_name(np ? NFT_SET_NP_SLOTS : NFT_SET_SLOTS));
	/* The map's value: the address in words 0.., the port after it. */
	nft_expr_nat(rb, NFT_NAT_DNAT, 0, (int)(nft_expr_addr_len(rb) / 4));
}

static void r_lb(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	dnat_slots(rb, arg, 0, false);
}

static void r_nplb(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	(void)cfg;
	dnat_slots(rb, arg, 0, true);
}

/* The short-circuit's slots, which follow the frontend's own in the same
 * table (nft_sc_slot_base). */
static void r_sclb(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	dnat_slots(rb, arg, nft_sc_slot_base(cfg->masq_mark), false);
}

static void r_scnplb(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, unsigned arg)
{
	dnat_slots(rb, arg, nft_sc_slot_base(cfg->masq_mark), true);
}

#define CHAIN_RULES_MAX 8

struct chain_def {
	const char *name;
	struct nft_base_chain base;   /* type NULL: a regular chain */
	rule_fn rules[CHAIN_RULES_MAX];
};

/* The nat base chains see the first packet of each connection and
 * nothing else, which is all ferry has to decide on (source ranges,
 * reject or drop without endpoints, masquerade mark, DNAT). The filter
 * base chains of the guards see every packet, but their one rule lets
 * all but the first of a connection through at its first expression. */
static const struct chain_def chain_defs[] = {
	{ "nat_prerouting", { "nat", NF_INET_PRE_ROUTING, -100 }, { r_jump_services } },
	{ "nat_output", { "nat", NF_INET_LOCAL_OUT, -100 }, { r_jump_services } },
	{ "nat_postrouting", { "nat", NF_INET_POST_ROUTING, 100 },
	  { r_hairpin, r_masq_unmarked, r_mark_clear, r_masquerade } },
	{ "guard_forward", { "filter", NF_INET_FORWARD, 0 }, { r_guard } },
	{ "guard_output", { "filter", NF_INET_LOCAL_OUT, 0 }, { r_guard } },
	{ "do_reject", { NULL, 0, 0 }, { r_reject_tcp, r_reject } },
	{ "cluster_ips_check", { NULL, 0, 0 }, { r_cluster_ips, r_goto_cidrs } },
	{ NFT_CIDRS_CHAIN, { NULL, 0, 0 }, { NULL } },
	{ "services", { NULL, 0, 0 },
	  { r_ranges, r_mark_fe, r_mark_local, r_vmap_sc_fe, r_vmap_fe, r_empty_fe, r_goto_nodeports } },
	{ "nodeports", { NULL, 0, 0 }, { r_mark_np, r_vmap_sc_np, r_vmap_np, r_empty_np } },
};

bool nft_ruleset_detects_local(const struct nft_ruleset_cfg *cfg, int family)
{
	if (cfg->local_iifname[0])
		return true;
	for (size_t i = 0; i < cfg->n_cluster_cidrs; i++)
		if (cfg->cluster_cidrs[i].addr.family == family)
			return true;
	return false;
}

/* The slot counts that have lb chains, in order: 1..32, then 1024. */
static unsigned slot_count_at(size_t i)
{
	return i < NFT_SLOTS_EXACT_MAX ? (unsigned)i + 1 : NFT_SLOTS_MAX;
}
#define N_SLOT_CHAINS (NFT_SLOTS_EXACT_MAX + 1)

/* Iterate the whole ruleset: fn is called once per chain (rule NULL) then
 * once per rule. Returns the first negative fn result. */
typedef int (*visit_fn)(void *ctx, int family, const char *chain, const struct chain_def *base,
			rule_fn rule, unsigned arg);

static int ruleset_visit(int family, const struct nft_ruleset_cfg *cfg, visit_fn fn, void *ctx)
{
	int r;

	for (size_t i = 0; i < sizeof(chain_defs) / sizeof(chain_defs[0]); i++) {
		const struct chain_def *c = &chain_defs[i];

		r = fn(ctx, family, c->name, c, NULL, 0);
		if (r < 0)
			return r;
		for (size_t j = 0; j < CHAIN_RULES_MAX && c->rules[j]; j++) {
			if (c->rules[j] == r_mark_local && !nft_ruleset_detects_local(cfg, family))
				continue;
			r = fn(ctx, family, c->name, c, c->rules[j], 0);
			if (r < 0)
				return r;
		}
	}
	for (size_t i = 0; i < N_SLOT_CHAINS; i++) {
		char name[32];
		unsigned s = slot_count_at(i);

		snprintf(name, sizeof(name), "lb_%u", s);
		if ((r = fn(ctx, family, name, NULL, NULL, 0)) < 0 ||
		    (r = fn(ctx, family, name, NULL, r_lb, s)) < 0)
			return r;
		snprintf(name, sizeof(name), "nplb_%u", s);
		if ((r = fn(ctx, family, name, NULL, NULL, 0)) < 0 ||
		    (r = fn(ctx, family, name, NULL, r_nplb, s)) < 0)
			return r;
		for (int np = 0; np < 2; np++) {
			snprintf(name, sizeof(name), np ? "scnplb_%u" : "sclb_%u", s);
			if ((r = fn(ctx, family, name, NULL, NULL, 0)) < 0 ||
			    (r = fn(ctx, family, name, NULL, r_sc_others_return, 0)) < 0 ||
			    (r = fn(ctx, family, name, NULL, r_sc_mark_node, 0)) < 0 ||
			    (r = fn(ctx, family, name, NULL, np ? r_scnplb : r_sclb, s)) < 0)
				return r;
		}
	}
	return 0;
}

/* The rule that carries the ruleset tag: nat_prerouting's first. */
static bool is_tagged(const struct nft_ruleset_cfg *cfg, const struct chain_def *base, rule_fn rule)
{
	return cfg->tag && base && strcmp(base->name, "nat_prerouting") == 0 && rule == base->rules[0];
}

int nft_chain_flush_msg(struct nft_batch *b, int family, const char *chain)
{
	return nft_chain_empty_msg(b, family, NFT_TABLE_NAME, chain);
}

int nft_chain_delete_msg(struct nft_batch *b, int family, const char *chain)
{
	return nft_chain_remove_msg(b, family, NFT_TABLE_NAME, chain);
}

bool nft_ruleset_has_chain(const char *name)
{
	unsigned s;
	int used = 0;

	for (size_t i = 0; i < sizeof(chain_defs) / sizeof(chain_defs[0]); i++)
		if (strcmp(chain_defs[i].name, name) == 0)
			return true;
	for (size_t i = 0; i < N_SLOT_CHAINS; i++) {
		static const char *const fmt[] = { "lb_%u", "nplb_%u", "sclb_%u", "scnplb_%u" };
		char buf[32];

		s = slot_count_at(i);
		for (size_t k = 0; k < sizeof(fmt) / sizeof(fmt[0]); k++) {
			snprintf(buf, sizeof(buf), fmt[k], s);
			if (strcmp(buf, name) == 0)
				return true;
		}
	}
	/* Affinity chains are made on demand (nft_aff_chain_msgs). */
	return (sscanf(name, "aff_%u_%u%n", &s, &s, &used) == 2 || sscanf(name, "npaff_%u_%u%n", &s, &s, &used) == 2 ||
		sscanf(name, "scaff_%u_%u%n", &s, &s, &used) == 2 ||
		sscanf(name, "scnpaff_%u_%u%n", &s, &s, &used) == 2) &&
	       used > 0;
}

struct msgs_ctx {
	struct nft_batch *b;
	const struct nft_ruleset_cfg *cfg;
	bool rules;   /* second pass: rules (every chain exists by then) */
};

static int visit_msgs(void *ctx, int family, const char *chain, const struct chain_def *base,
		      rule_fn rule, unsigned arg)
{
	struct msgs_ctx *m = ctx;
	struct nft_rule_builder rb;
	int r;

	if (!rule != !m->rules)
		return 0;
	if (!rule) {
		r = nft_chain_add_msg(m->b, family, NFT_TABLE_NAME, chain,
				      base && base->base.type ? &base->base : NULL);
		/* Empty it: the rules below replace whatever an earlier ferry left. */
		return r < 0 ? r : nft_chain_flush_msg(m->b, family, chain);
	}
	r = nft_rule_builder_init(&rb, family, NFT_TABLE_NAME, chain);
	if (r == 0) {
		rule(&rb, m->cfg, arg);
		if (is_tagged(m->cfg, base, rule))
			nft_rule_builder_comment(&rb, m->cfg->tag);
		r = nft_rule_builder_msg(&rb, m->b);
	}
	nft_rule_builder_done(&rb);
	return r;
}

int nft_table_msg(struct nft_batch *b, int family)
{
	return nft_table_add_msg(b, family, NFT_TABLE_NAME);
}

int nft_ruleset_msgs(struct nft_batch *b, int family, const struct nft_ruleset_cfg *cfg)
{
	struct msgs_ctx m = { .b = b, .cfg = cfg };
	int r = nft_table_msg(b, family);

	if (r < 0)
		return r;
	for (int s = 0; s < NFT_SET_COUNT; s++) {
		r = nft_set_declare(b, family, (enum nft_set_id)s);
		if (r < 0)
			return r;
	}
	/* Chains first: a rule may jump to a chain declared after its own. */
	r = ruleset_visit(family, cfg, visit_msgs, &m);
	m.rules = true;
	return r < 0 ? r : ruleset_visit(family, cfg, visit_msgs, &m);
}

int nft_table_delete_msg(struct nft_batch *b, int family)
{
	return nft_table_remove_msg(b, family, NFT_TABLE_NAME);
}

int nft_probe_msgs(struct nft_batch *b, const char *scratch_name)
{
	static const uint16_t types[] = { NFT_MSG_NEWTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_DELTABLE };

	for (size_t i = 0; i < 3; i++) {
		struct nlmsghdr *nlh = nft_batch_msg_begin(b, types[i], NFPROTO_IPV4,
							   i < 2 ? NLM_F_CREATE : 0, "probe table");
		if (!nlh)
			return -ENOMEM;
		if (types[i] == NFT_MSG_NEWCHAIN) {
			struct nftnl_chain *c = nftnl_chain_alloc();
			if (!c)
				return -ENOMEM;
			nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, scratch_name);
			nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, "probe");
			nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "nat");
			nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_PRE_ROUTING);
			nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, -100);
			nftnl_chain_nlmsg_build_payload(nlh, c);
			nftnl_chain_free(c);
		} else {
			mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, scratch_name);
		}
		nft_batch_msg_end(b, nlh);
	}
	return 0;
}

/* "ip daddr 10.96.0.0/16 drop" (the network part of p compared). */
static void r_cidr_drop(struct nft_rule_builder *rb, const struct inet_prefix *p)
{
	uint8_t mask[16] = { 0 }, zero[16] = { 0 };
	size_t alen = nft_expr_addr_len(rb);
	struct inet_addr net = p->addr;
	char buf[INET_ADDR_STRLEN];

	for (unsigned bit = 0; bit < p->len && bit < alen * 8; bit++)
		mask[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
	for (size_t i = 0; i < alen; i++)
		net.u.bytes[i] &= mask[i];
	nft_expr_load_addr(rb, true, 0);
	nft_expr_bitwise(rb, 0, mask, zero, alen);
	nft_expr_cmp(rb, 0, NFT_CMP_EQ, net.u.bytes, alen);
	nft_expr_text(rb, " %s/%u ", inet_addr_format(&net, buf), p->len);
	nft_expr_verdict(rb, NF_DROP, NULL);
}

int nft_service_cidrs_msgs(struct nft_batch *b, int family, const struct inet_prefix *cidrs, size_t n)
{
	int r = nft_chain_flush_msg(b, family, NFT_CIDRS_CHAIN);

	for (size_t i = 0; i < n && r == 0; i++) {
		struct nft_rule_builder rb;

		if (cidrs[i].addr.family != family)
			continue;
		r = nft_rule_builder_init(&rb, family, NFT_TABLE_NAME, NFT_CIDRS_CHAIN);
		if (r == 0) {
			r_cidr_drop(&rb, &cidrs[i]);
			r = nft_rule_builder_msg(&rb, b);
		}
		nft_rule_builder_done(&rb);
	}
	return r;
}

void nft_service_cidrs_print(FILE *out, int family, const struct inet_prefix *cidrs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct nft_rule_builder rb;

		if (cidrs[i].addr.family != family)
			continue;
		nft_rule_builder_init_text(&rb, family);
		r_cidr_drop(&rb, &cidrs[i]);
		fprintf(out, "add rule %s %s %s %s\n", nft_family_name(family), NFT_TABLE_NAME, NFT_CIDRS_CHAIN, rb.text);
	}
}

struct print_ctx {
	FILE *out;
	const struct nft_ruleset_cfg *cfg;
	bool open;   /* a chain block is open */
};

static int visit_print(void *ctx, int family, const char *chain, const struct chain_def *base,
		       rule_fn rule, unsigned arg)
{
	struct print_ctx *p = ctx;
	struct nft_rule_builder rb;

	if (!rule) {
		if (p->open)
			fprintf(p->out, "\t}\n");
		fprintf(p->out, "\tchain %s {\n", chain);
		if (base && base->base.type)
			fprintf(p->out, "\t\ttype %s hook %s priority %d; policy accept;\n", base->base.type,
				nft_hook_name(base->base.hook), base->base.prio);
		p->open = true;
		return 0;
	}
	nft_rule_builder_init_text(&rb, family);
	rule(&rb, p->cfg, arg);
	if (is_tagged(p->cfg, base, rule))
		nft_rule_builder_comment(&rb, p->cfg->tag);
	fprintf(p->out, "\t\t%s\n", rb.text);
	return 0;
}

void nft_ruleset_print(FILE *out, int family, const struct nft_ruleset_cfg *cfg)
{
	struct print_ctx p = { .out = out, .cfg = cfg };

	fprintf(out, "table %s %s {\n", nft_family_name(family), NFT_TABLE_NAME);
	for (int s = 0; s < NFT_SET_COUNT; s++)
		nft_set_decl_print(out, family, (enum nft_set_id)s);
	ruleset_visit(family, cfg, visit_print, &p);
	if (p.open)
		fprintf(out, "\t}\n");
	fprintf(out, "}\n");
}

/* ---- ClientIP affinity chains ------------------------------------------
 *
 * Only frontends with sessionAffinity ClientIP use these, and only the
 * (timeout, slots, masquerade mode) combinations in use get a chain:
 *   update @aff_T { saddr . daddr . proto . dport : numgen random mod S [offset M] }
 *   meta mark set saddr . daddr . proto . dport map @aff_T
 *   [local mode: ip saddr != CIDR... (or iifname != "veth*")
 *    meta mark set meta mark | M]
 *   dnat to <frontend> . meta mark map @aff_slots
 *   (fallback when the remembered slot no longer exists: a fresh slot)
 * The remembered value is a slot number, carried to the slot table in the
 * packet mark together with the masquerade bit. "update" keeps an existing
 * entry's slot and refreshes its timeout, so a client stays on its
 * endpoint while it keeps connecting within the timeout.
 *
 * A short-circuit with affinity (scaff_T_S_l, scnpaff_T_S_l) first returns
 * the connections it does not take (r_sc_others_return), then is a "local"
 * mode chain whose slots start at nft_sc_slot_base: the node's own
 * connections are masqueraded, the pods' are not. Its clients share the
 * timeout's map with the frontend's own: a client is either one of the
 * cluster's (short-circuit) or not, so one key never serves both.
 */

struct aff_args {
	uint32_t timeout;
	unsigned slots;
	enum nft_aff_mode mode;
	bool np;
	bool sc;   /* a short-circuit's chain */
};

/* The first slot mark of an affinity chain's numgen. */
static uint32_t aff_offset(const struct nft_ruleset_cfg *cfg, const struct aff_args *a)
{
	return (a->mode == NFT_AFF_MASQ ? cfg->masq_mark : 0) + (a->sc ? nft_sc_slot_base(cfg->masq_mark) : 0);
}

/* "ip saddr . ip daddr . meta l4proto . th dport" into words 0.. */
static unsigned ld_client_key(struct nft_rule_builder *rb)
{
	unsigned w = nft_expr_load_addr(rb, false, 0);
	nft_expr_text(rb, " . ");
	w = nft_expr_load_addr(rb, true, w);
	nft_expr_text(rb, " . ");
	w = nft_expr_load_l4proto(rb, w);
	nft_expr_text(rb, " . ");
	return nft_expr_load_dport(rb, w);
}

static void r_aff_update(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, const struct aff_args *a)
{
	unsigned w;
	char set[32];

	snprintf(set, sizeof(set), "aff_%u", a->timeout);
	nft_expr_text(rb, "update @%s { ", set);
	w = ld_client_key(rb);
	nft_expr_text(rb, " : ");
	nft_expr_load_numgen(rb, a->slots, aff_offset(cfg, a), w);
	nft_expr_text(rb, " }");
	nft_expr_dynset_update(rb, set, 0, w);
}

static void r_aff_recall(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, const struct aff_args *a)
{
	char set[32];

	(void)cfg;
	snprintf(set, sizeof(set), "aff_%u", a->timeout);
	nft_expr_text(rb, "meta mark set ");
	ld_client_key(rb);
	nft_expr_lookup(rb, 0, set, (int)nft_expr_reg(0), false);
	nft_expr_text(rb, " map @%s", set);
	nft_expr_store_meta(rb, NFT_META_MARK, 0);
}

static void r_aff_fresh(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, const struct aff_args *a)
{
	nft_expr_text(rb, "meta mark set ");
	nft_expr_load_numgen(rb, a->slots, aff_offset(cfg, a), 0);
	nft_expr_store_meta(rb, NFT_META_MARK, 0);
}

static void r_aff_local(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, const struct aff_args *a)
{
	(void)a;
	m_not_local(rb, cfg);
	s_mark_masq(rb, cfg->masq_mark);
}

static void r_aff_dnat(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, const struct aff_args *a)
{
	enum nft_set_id set = a->np ? NFT_SET_NP_AFF_SLOTS : NFT_SET_AFF_SLOTS;
	unsigned w;

	(void)cfg;
	nft_expr_text(rb, "dnat %s to ", nft_family_name(rb->family));
	w = a->np ? ld_np_key(rb) : ld_fe_key(rb);
	nft_expr_text(rb, " . meta mark");
	nft_expr_load_meta(rb, NFT_META_MARK, w);
	nft_expr_lookup(rb, 0, nft_set_name(set), (int)nft_expr_reg(0), false);
	nft_expr_text(rb, " map @%s", nft_set_name(set));
	nft_expr_nat(rb, NFT_NAT_DNAT, 0, (int)(nft_expr_addr_len(rb) / 4));
}

static void r_aff_sc_others(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, const struct aff_args *a)
{
	(void)a;
	r_sc_others_return(rb, cfg, 0);
}

typedef void (*aff_rule_fn)(struct nft_rule_builder *rb, const struct nft_ruleset_cfg *cfg, const struct aff_args *a);

/* Most rules an affinity chain has. */
#define AFF_RULES_MAX 8

/* The rules of one affinity chain, in order; returns their count. */
static size_t aff_rules(const struct aff_args *a, aff_rule_fn *out)
{
	size_t n = 0;

	if (a->sc)
		out[n++] = r_aff_sc_others;
	out[n++] = r_aff_update;
	out[n++] = r_aff_recall;
	if (a->mode == NFT_AFF_LOCAL)
		out[n++] = r_aff_local;
	out[n++] = r_aff_dnat;
	out[n++] = r_aff_fresh;
	if (a->mode == NFT_AFF_LOCAL)
		out[n++] = r_aff_local;
	out[n++] = r_aff_dnat;
	return n;
}

static struct aff_args aff_args_of(const struct nft_elem *e)
{
	return (struct aff_args){ .timeout = e->aff_timeout, .slots = e->verdict,
				  .mode = (enum nft_aff_mode)e->aff_mode, .np = nft_set_is_np(e->set),
				  .sc = nft_set_is_short_circuit(e->set) };
}

int nft_aff_chain_msgs(struct nft_batch *b, const struct nft_ruleset_cfg *cfg, const struct nft_elem *e)
{
	struct aff_args a = aff_args_of(e);
	int family = e->family;
	aff_rule_fn rules[AFF_RULES_MAX];
	size_t n = aff_rules(&a, rules);
	char chain[48];
	int r;

	nft_verdict_chain(e, chain, sizeof(chain));
	r = nft_aff_map_declare(b, family, a.timeout);
	if (r == 0)
		r = nft_chain_add_msg(b, family, NFT_TABLE_NAME, chain, NULL);
	if (r == 0)
		r = nft_chain_flush_msg(b, family, chain);
	for (size_t i = 0; r == 0 && i < n; i++) {
		struct nft_rule_builder rb;

		r = nft_rule_builder_init(&rb, family, NFT_TABLE_NAME, chain);
		if (r == 0) {
			rules[i](&rb, cfg, &a);
			r = nft_rule_builder_msg(&rb, b);
		}
		nft_rule_builder_done(&rb);
	}
	return r;
}

void nft_aff_chain_print(FILE *out, const struct nft_ruleset_cfg *cfg, const struct nft_elem *e)
{
	struct aff_args a = aff_args_of(e);
	const char *ip = nft_family_name(e->family);
	aff_rule_fn rules[AFF_RULES_MAX];
	size_t n = aff_rules(&a, rules);
	char chain[48];

	nft_verdict_chain(e, chain, sizeof(chain));
	nft_aff_map_print(out, e->family, a.timeout);
	fprintf(out, "add chain %s %s %s\n", ip, NFT_TABLE_NAME, chain);
	for (size_t i = 0; i < n; i++) {
		struct nft_rule_builder rb;
		/* nft 1.0.x aborts linearizing a dynset whose key is 40 bytes
		 * (IPv6 addresses . proto . port): the kernel takes it from
		 * ferry over netlink, but the text form is shown commented out
		 * so that `nft -c -f` still checks everything else. */
		bool comment = e->family == AF_INET6 && rules[i] == r_aff_update;

		nft_rule_builder_init_text(&rb, e->family);
		rules[i](&rb, cfg, &a);
		if (comment)
			fprintf(out, "# (programmed over netlink; nft 1.0 cannot parse a 40-byte dynset key)\n# ");
		fprintf(out, "add rule %s %s %s %s\n", ip, NFT_TABLE_NAME, chain, rb.text);
	}
}

int nft_ruleset_tag(const struct nft_ruleset_cfg *cfg, char buf[NFT_RULESET_TAG_LEN])
{
	struct nft_ruleset_cfg untagged = *cfg;
	struct nft_batch *b = nft_batch_new();
	uint64_t h = 1469598103934665603ull;
	const uint8_t *data;
	size_t len, off = 0;
	int r = 0;

	if (!b)
		return -ENOMEM;
	untagged.tag = NULL;
	for (int fam = 0; fam < 2 && r == 0; fam++)
		r = nft_ruleset_msgs(b, fam ? AF_INET6 : AF_INET, &untagged);
	if (r < 0) {
		nft_batch_free(b);
		return r;
	}
	/* FNV-1a over each message's type, flags and payload: the sequence
	 * numbers differ from batch to batch and are left out. */
	data = nft_batch_data(b, &len);
	while (off + sizeof(struct nlmsghdr) <= len) {
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)(data + off);
		uint16_t head[2] = { nlh->nlmsg_type, nlh->nlmsg_flags };

		for (size_t i = 0; i < sizeof(head); i++)
			h = (h ^ ((const uint8_t *)head)[i]) * 1099511628211ull;
		for (size_t i = NLMSG_HDRLEN; i < nlh->nlmsg_len; i++)
			h = (h ^ data[off + i]) * 1099511628211ull;
		off += NLMSG_ALIGN(nlh->nlmsg_len);
	}
	nft_batch_free(b);
	snprintf(buf, NFT_RULESET_TAG_LEN, "ferry ruleset %016llx", (unsigned long long)h);
	return 0;
}
