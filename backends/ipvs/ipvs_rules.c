/* Mechanism: the IPVS backend's constant nf_tables rules (ipvs_rules.h). */
#include "ipvs_rules.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libnftnl/expr.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/ipset/ip_set.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/xt_set.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "nft_batch.h"
#include "nft_expr.h"
#include "nft_table.h"

/* Interface names: IFNAMSIZ with the NUL. */
#define IFNAME_LEN 16

static const struct nft_base_chain base_prerouting = { "nat", NF_INET_PRE_ROUTING, -100 };
static const struct nft_base_chain base_output = { "nat", NF_INET_LOCAL_OUT, -100 };
static const struct nft_base_chain base_postrouting = { "nat", NF_INET_POST_ROUTING, 100 };

/* A rule being emitted or printed: the builder and what its set matches
 * need. */
struct rule_ctx {
	struct nft_rule_builder rb;
	const struct ipvs_rules_cfg *cfg;
};

/* "xt match set NAME dst[,dst[,src]]" (inverted: "!"): an xtables set
 * match (revision 1) through nft_compat. dims: 1 (hash:ip, hash:net), 2 or
 * 3; the third dimension, if any, is the source address. */
static void set_match(struct rule_ctx *c, enum ipvs_set_id set, unsigned dims, bool inverted)
{
	struct nftnl_expr *e;
	struct xt_set_info_match_v1 *info;

	nft_expr_text(&c->rb, "xt match set %s%s %s ", inverted ? "! " : "", ipvs_set_name(set, c->rb.family),
		      dims == 1 ? "dst" : dims == 2 ? "dst,dst" : "dst,dst,src");
	if (!c->rb.rule || c->rb.err)
		return;
	e = nft_expr_add(&c->rb, "match");
	if (!e)
		return;
	/* The expression owns the info and frees it. */
	info = calloc(1, sizeof(*info));
	if (!info) {
		c->rb.err = -ENOMEM;
		return;
	}
	info->match_set.index = c->cfg->set_index[set];
	info->match_set.dim = (uint8_t)dims;
	/* Bit n set: dimension n is the source; bit 0: inverted. */
	info->match_set.flags = (uint8_t)((dims == 3 ? IPSET_DIM_THREE_SRC : 0) | (inverted ? IPSET_INV_MATCH : 0));
	nftnl_expr_set_str(e, NFTNL_EXPR_MT_NAME, "set");
	nftnl_expr_set_u32(e, NFTNL_EXPR_MT_REV, 1);
	nftnl_expr_set(e, NFTNL_EXPR_MT_INFO, info, sizeof(*info));
}

/* "meta mark set meta mark or M" */
static void mark_set(struct rule_ctx *c)
{
	/* An OR is (mark & ~m) ^ m: the bit is set whatever it was (a plain
	 * xor would clear it on a packet that had it). */
	uint32_t m = c->cfg->masq_mark, keep = ~m;

	nft_expr_load_meta(&c->rb, NFT_META_MARK, 0);
	nft_expr_bitwise(&c->rb, 0, &keep, &m, sizeof(m));
	nft_expr_store_meta(&c->rb, NFT_META_MARK, 0);
	nft_expr_text(&c->rb, "meta mark set meta mark or 0x%08x", m);
}

bool ipvs_rules_detect_local(const struct ipvs_rules_cfg *cfg, int family)
{
	if (cfg->local.mode != LOCAL_DETECT_CLUSTER_CIDR)
		return cfg->local.interface && cfg->local.interface[0];
	for (size_t i = 0; i < cfg->local.n_cluster_cidrs; i++)
		if (cfg->local.cluster_cidrs[i].addr.family == family)
			return true;
	return false;
}

/* The traffic is not local: its source is outside every cluster CIDR of
 * the family, or it came in on another interface (or none: the node's
 * own connections). */
static void not_local(struct rule_ctx *c)
{
	const struct local_detect *l = &c->cfg->local;

	if (l->mode != LOCAL_DETECT_CLUSTER_CIDR) {
		char name[IFNAME_LEN] = { 0 };
		size_t len = strnlen(l->interface, IFNAME_LEN - 1);
		bool prefix = l->mode == LOCAL_DETECT_INTERFACE_NAME_PREFIX;

		memcpy(name, l->interface, len);
		nft_expr_load_meta(&c->rb, NFT_META_IIFNAME, 0);
		nft_expr_cmp(&c->rb, 0, NFT_CMP_NEQ, name, prefix ? len : sizeof(name));
		nft_expr_text(&c->rb, "iifname != \"%s%s\" ", name, prefix ? "*" : "");
		return;
	}
	for (size_t i = 0; i < l->n_cluster_cidrs; i++) {
		const struct inet_prefix *p = &l->cluster_cidrs[i];
		size_t alen = nft_expr_addr_len(&c->rb);
		uint8_t mask[16] = { 0 }, zero[16] = { 0 };
		char buf[INET_ADDR_STRLEN];

		if (p->addr.family != c->rb.family)
			continue;
		for (unsigned bit = 0; bit < p->len; bit++)
			mask[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
		nft_expr_load_payload(&c->rb, NFT_PAYLOAD_NETWORK_HEADER, c->rb.family == AF_INET6 ? 8 : 12,
				      (uint32_t)alen, 0);
		nft_expr_bitwise(&c->rb, 0, mask, zero, alen);
		nft_expr_cmp(&c->rb, 0, NFT_CMP_NEQ, p->addr.u.bytes, alen);
		nft_expr_text(&c->rb, "%s saddr != %s/%u ", c->rb.family == AF_INET6 ? "ip6" : "ip",
			      inet_addr_format(&p->addr, buf), p->len);
	}
}

/* ---- the rules, each emitted and printed by the same code ---- */

typedef void (*rule_fn)(struct rule_ctx *c);

static void r_jump_services(struct rule_ctx *c)
{
	nft_expr_verdict(&c->rb, NFT_JUMP, "services");
}

static void r_firewall(struct rule_ctx *c)
{
	set_match(c, IPVS_SET_FIREWALL, 2, false);
	set_match(c, IPVS_SET_SOURCES, 3, true);
	nft_expr_verdict(&c->rb, NF_DROP, NULL);
}

static void r_reject_tcp(struct rule_ctx *c)
{
	uint8_t tcp = IPPROTO_TCP;

	nft_expr_load_meta(&c->rb, NFT_META_L4PROTO, 0);
	nft_expr_cmp(&c->rb, 0, NFT_CMP_EQ, &tcp, 1);
	nft_expr_text(&c->rb, "meta l4proto tcp ");
	set_match(c, IPVS_SET_EMPTY_REJECT, 2, false);
	nft_expr_reject_tcp_reset(&c->rb);
}

static void r_reject(struct rule_ctx *c)
{
	set_match(c, IPVS_SET_EMPTY_REJECT, 2, false);
	nft_expr_reject_port_unreachable(&c->rb);
}

static void r_drop_empty(struct rule_ctx *c)
{
	set_match(c, IPVS_SET_EMPTY_DROP, 2, false);
	nft_expr_verdict(&c->rb, NF_DROP, NULL);
}

static void r_mark_masq(struct rule_ctx *c)
{
	set_match(c, IPVS_SET_MASQ, 2, false);
	mark_set(c);
}

static void r_mark_cluster_ip(struct rule_ctx *c)
{
	set_match(c, IPVS_SET_CLUSTER_IP, 2, false);
	not_local(c);
	mark_set(c);
}

static void r_hairpin(struct rule_ctx *c)
{
	set_match(c, IPVS_SET_LOOPBACK, 3, false);
	nft_expr_masquerade(&c->rb, 0);
}

static void r_unmarked_return(struct rule_ctx *c)
{
	uint32_t m = c->cfg->masq_mark, zero = 0;

	nft_expr_load_meta(&c->rb, NFT_META_MARK, 0);
	nft_expr_bitwise(&c->rb, 0, &m, &zero, sizeof(m));
	nft_expr_cmp(&c->rb, 0, NFT_CMP_EQ, &zero, sizeof(zero));
	nft_expr_text(&c->rb, "meta mark & 0x%08x == 0x00000000 ", m);
	nft_expr_verdict(&c->rb, NFT_RETURN, NULL);
}

static void r_masquerade(struct rule_ctx *c)
{
	uint32_t all = 0xffffffff, m = c->cfg->masq_mark;

	nft_expr_load_meta(&c->rb, NFT_META_MARK, 0);
	nft_expr_bitwise(&c->rb, 0, &all, &m, sizeof(m));
	nft_expr_store_meta(&c->rb, NFT_META_MARK, 0);
	nft_expr_text(&c->rb, "meta mark set meta mark xor 0x%08x ", m);
	nft_expr_masquerade(&c->rb, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
}

/* The guards of the service range (kube-proxy's nftables chain
 * cluster-ips-check). Its rules run after DNAT and so see only what no
 * service took; here they run before IPVS, so "no service took it" is
 * "not a virtual server ferry made" (FERRY-SERVICES).
 *
 * "ct state new", as kube-proxy's jump to the chain has: a nat chain also
 * sees a packet related to a connection whose first packet it dropped,
 * such as the reset this rule answers with. A node's own connection to a
 * VIP comes from the VIP (the local route's source), so that reset goes
 * to a cluster IP on a port no service has, and would be dropped. */
static void ct_state_new(struct rule_ctx *c)
{
	uint32_t bit = NF_CT_STATE_BIT(IP_CT_NEW), zero = 0;

	nft_expr_load_ct(&c->rb, NFT_CT_STATE, 0);
	nft_expr_bitwise(&c->rb, 0, &bit, &zero, sizeof(bit));
	nft_expr_cmp(&c->rb, 0, NFT_CMP_NEQ, &zero, sizeof(zero));
	nft_expr_text(&c->rb, "ct state new ");
}

/* A cluster IP on a port (and protocol) no virtual server has: refused,
 * also where a local process listens on the wildcard address on that
 * port (the VIP is local, the stack would answer for it). */
static void guard_undefined_port(struct rule_ctx *c)
{
	ct_state_new(c);
	set_match(c, IPVS_SET_CLUSTER_ADDRS, 1, false);
	set_match(c, IPVS_SET_SERVICES, 2, true);
}

static void r_guard_reject_tcp(struct rule_ctx *c)
{
	uint8_t tcp = IPPROTO_TCP;

	nft_expr_load_meta(&c->rb, NFT_META_L4PROTO, 0);
	nft_expr_cmp(&c->rb, 0, NFT_CMP_EQ, &tcp, 1);
	nft_expr_text(&c->rb, "meta l4proto tcp ");
	guard_undefined_port(c);
	nft_expr_reject_tcp_reset(&c->rb);
}

static void r_guard_reject(struct rule_ctx *c)
{
	guard_undefined_port(c);
	nft_expr_reject_port_unreachable(&c->rb);
}

/* An address of the service range that is no cluster IP: dropped, not
 * routed on. A virtual server ferry made there (an external IP inside the
 * range) is exempt, as a DNATed connection is from kube-proxy's check. */
static void r_guard_drop(struct rule_ctx *c)
{
	ct_state_new(c);
	set_match(c, IPVS_SET_SERVICE_CIDRS, 1, false);
	set_match(c, IPVS_SET_CLUSTER_ADDRS, 1, true);
	set_match(c, IPVS_SET_SERVICES, 2, true);
	nft_expr_verdict(&c->rb, NF_DROP, NULL);
}

#define MAX_RULES 12

struct chain_def {
	const char *name;
	const struct nft_base_chain *base; /* NULL: regular */
	rule_fn rules[MAX_RULES];
};

static const struct chain_def chain_defs[] = {
	{ "services", NULL,
	  { r_firewall, r_reject_tcp, r_reject, r_drop_empty, r_mark_masq, r_mark_cluster_ip, r_guard_reject_tcp,
	    r_guard_reject, r_guard_drop } },
	{ "prerouting", &base_prerouting, { r_jump_services } },
	{ "output", &base_output, { r_jump_services } },
	{ "postrouting", &base_postrouting, { r_hairpin, r_unmarked_return, r_masquerade } },
};

#define N_CHAINS (sizeof(chain_defs) / sizeof(chain_defs[0]))

/* Is rule fn part of family's ruleset under cfg? */
static bool rule_wanted(rule_fn fn, const struct ipvs_rules_cfg *cfg, int family)
{
	return fn != r_mark_cluster_ip || ipvs_rules_detect_local(cfg, family);
}

int ipvs_rules_msgs(struct nft_batch *b, int family, const struct ipvs_rules_cfg *cfg)
{
	int r = nft_table_add_msg(b, family, IPVS_RULES_TABLE);

	for (size_t i = 0; i < N_CHAINS && r == 0; i++)
		r = nft_chain_add_msg(b, family, IPVS_RULES_TABLE, chain_defs[i].name, chain_defs[i].base);
	for (size_t i = 0; i < N_CHAINS && r == 0; i++)
		r = nft_chain_empty_msg(b, family, IPVS_RULES_TABLE, chain_defs[i].name);
	for (size_t i = 0; i < N_CHAINS && r == 0; i++)
		for (size_t j = 0; j < MAX_RULES && chain_defs[i].rules[j] && r == 0; j++) {
			struct rule_ctx c = { .cfg = cfg };

			if (!rule_wanted(chain_defs[i].rules[j], cfg, family))
				continue;
			r = nft_rule_builder_init(&c.rb, family, IPVS_RULES_TABLE, chain_defs[i].name);
			if (r == 0) {
				chain_defs[i].rules[j](&c);
				r = nft_rule_builder_msg(&c.rb, b);
			}
			nft_rule_builder_done(&c.rb);
		}
	return r;
}

int ipvs_rules_delete_msg(struct nft_batch *b, int family)
{
	return nft_table_remove_msg(b, family, IPVS_RULES_TABLE);
}

void ipvs_rules_print(FILE *out, int family, const struct ipvs_rules_cfg *cfg)
{
	fprintf(out, "table %s %s {\n", family == AF_INET6 ? "ip6" : "ip", IPVS_RULES_TABLE);
	for (size_t i = 0; i < N_CHAINS; i++) {
		const struct chain_def *d = &chain_defs[i];

		fprintf(out, "\tchain %s {\n", d->name);
		if (d->base)
			fprintf(out, "\t\ttype %s hook %s priority %d; policy accept;\n", d->base->type,
				nft_hook_name(d->base->hook), d->base->prio);
		for (size_t j = 0; j < MAX_RULES && d->rules[j]; j++) {
			struct rule_ctx c = { .cfg = cfg };

			if (!rule_wanted(d->rules[j], cfg, family))
				continue;
			nft_rule_builder_init_text(&c.rb, family);
			d->rules[j](&c);
			fprintf(out, "\t\t%s\n", c.rb.text);
		}
		fprintf(out, "\t}\n");
	}
	fprintf(out, "}\n");
}

int ipvs_rules_set_index(const char *name, uint16_t *ret)
{
	struct ip_set_req_version ver = { .op = IP_SET_OP_VERSION };
	struct ip_set_req_get_set req = { .op = IP_SET_OP_GET_BYNAME };
	socklen_t len = sizeof(ver);
	int fd, r = 0;

	if (strlen(name) >= IPSET_MAXNAMELEN)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (fd == -1)
		return -errno;
	/* The protocol version first: the kernel refuses a request of another
	 * version. */
	if (getsockopt(fd, SOL_IP, SO_IP_SET, &ver, &len) == -1) {
		r = -errno;
		goto out;
	}
	req.version = ver.version;
	memcpy(req.set.name, name, strlen(name) + 1);
	len = sizeof(req);
	if (getsockopt(fd, SOL_IP, SO_IP_SET, &req, &len) == -1) {
		r = -errno;
		goto out;
	}
	if (req.set.index == IPSET_INVALID_ID)
		r = -ENOENT;
	else
		*ret = req.set.index;
out:
	close(fd);
	return r;
}
