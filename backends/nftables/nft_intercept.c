/* Interception of non-local frontends to the userspace relay, with
 * nftables (see nft_intercept.h). The whole map is replaced in one
 * transaction per sync: the relay has few frontends compared with the
 * nftables backend, and a replace is atomic for packets. */
#include "nft_intercept.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>

#include "log.h"
#include "nft_batch.h"

#define MAP_NAME "relay_ports"

static int nfproto(int family)
{
	return family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
}

static struct nftnl_expr *add_expr(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);
	if (e)
		nftnl_rule_add_expr(r, e);
	return e;
}

/* "meta l4proto P redirect to : daddr . l4proto . dport map @relay_ports" */
static int rule_msg(struct nft_batch *b, int family, const char *chain, uint8_t proto)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nftnl_expr *e;
	struct nlmsghdr *nlh;
	uint32_t alen = family == AF_INET6 ? 16 : 4;
	uint32_t w = NFT_REG32_00;
	bool ok = r != NULL;

	if (!r)
		return -ENOMEM;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, NFT_INTERCEPT_TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, (uint32_t)nfproto(family));
	if (ok && (ok = (e = add_expr(r, "meta")))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_L4PROTO);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, w);
	}
	if (ok && (ok = (e = add_expr(r, "cmp")))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, w);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
		nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, &proto, 1);
	}
	if (ok && (ok = (e = add_expr(r, "payload")))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, family == AF_INET6 ? 24 : 16);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, alen);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, w);
	}
	if (ok && (ok = (e = add_expr(r, "meta")))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_L4PROTO);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, w + alen / 4);
	}
	if (ok && (ok = (e = add_expr(r, "payload")))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, 2);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, 2);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, w + alen / 4 + 1);
	}
	if (ok && (ok = (e = add_expr(r, "lookup")))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, w);
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, w);
		nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, MAP_NAME);
	}
	if (ok && (ok = (e = add_expr(r, "redir")))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, w);
		nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
	}
	nlh = ok ? nft_batch_msg_begin(b, NFT_MSG_NEWRULE, (uint16_t)nfproto(family), NLM_F_CREATE | NLM_F_APPEND,
				       "add rule ferry_intercept redirect") : NULL;
	if (nlh) {
		nftnl_rule_nlmsg_build_payload(nlh, r);
		nft_batch_msg_end(b, nlh);
	}
	nftnl_rule_free(r);
	return nlh ? 0 : -ENOMEM;
}

/* Table, map and chains (created if absent), chains emptied and refilled,
 * map emptied: the caller adds the elements after this. */
static int skeleton_msgs(struct nft_batch *b, int family)
{
	static const struct { const char *name; unsigned hook; } chains[] = {
		{ "nat_prerouting", NF_INET_PRE_ROUTING },
		{ "nat_output", NF_INET_LOCAL_OUT },
	};
	uint16_t fam = (uint16_t)nfproto(family);
	struct nftnl_table *t = nftnl_table_alloc();
	struct nftnl_set *s = nftnl_set_alloc();
	struct nlmsghdr *nlh;
	int r = -ENOMEM;

	if (!t || !s)
		goto out;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, NFT_INTERCEPT_TABLE);
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, fam);
	if (!(nlh = nft_batch_msg_begin(b, NFT_MSG_NEWTABLE, fam, NLM_F_CREATE, "add table ferry_intercept")))
		goto out;
	nftnl_table_nlmsg_build_payload(nlh, t);
	nft_batch_msg_end(b, nlh);

	nftnl_set_set_str(s, NFTNL_SET_TABLE, NFT_INTERCEPT_TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, MAP_NAME);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, fam);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, family == AF_INET6 ? 24 : 12);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, ((family == AF_INET6 ? 8u : 7u) << 12) | (12u << 6) | 13u);
	nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, 13);
	nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, 2);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_MAP);
	nftnl_set_set_u32(s, NFTNL_SET_ID, 1);
	if (!(nlh = nft_batch_msg_begin(b, NFT_MSG_NEWSET, fam, NLM_F_CREATE, "add map ferry_intercept relay_ports")))
		goto out;
	nftnl_set_nlmsg_build_payload(nlh, s);
	nft_batch_msg_end(b, nlh);

	for (size_t i = 0; i < 2; i++) {
		struct nftnl_chain *c = nftnl_chain_alloc();
		if (!c)
			goto out;
		nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, NFT_INTERCEPT_TABLE);
		nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, chains[i].name);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, fam);
		nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "nat");
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, chains[i].hook);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, -100);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
		nlh = nft_batch_msg_begin(b, NFT_MSG_NEWCHAIN, fam, NLM_F_CREATE, "add chain ferry_intercept");
		if (nlh) {
			nftnl_chain_nlmsg_build_payload(nlh, c);
			nft_batch_msg_end(b, nlh);
		}
		nftnl_chain_free(c);
		if (!nlh || !(nlh = nft_batch_msg_begin(b, NFT_MSG_DELRULE, fam, 0, "flush chain ferry_intercept")))
			goto out;
		mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, NFT_INTERCEPT_TABLE);
		mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chains[i].name);
		nft_batch_msg_end(b, nlh);
		if ((r = rule_msg(b, family, chains[i].name, IPPROTO_TCP)) < 0 ||
		    (r = rule_msg(b, family, chains[i].name, IPPROTO_UDP)) < 0)
			goto out;
		r = -ENOMEM;
	}
	if (!(nlh = nft_batch_msg_begin(b, NFT_MSG_DELSETELEM, fam, 0, "flush map ferry_intercept relay_ports")))
		goto out;
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, NFT_INTERCEPT_TABLE);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, MAP_NAME);
	nft_batch_msg_end(b, nlh);
	r = 0;
out:
	nftnl_table_free(t);
	nftnl_set_free(s);
	return r;
}

static int elems_msg(struct nft_batch *b, int family, const struct intercept_entry *entries, size_t n)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct nlmsghdr *nlh;
	size_t count = 0;

	if (!s)
		return -ENOMEM;
	nftnl_set_set_str(s, NFTNL_SET_TABLE, NFT_INTERCEPT_TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, MAP_NAME);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, (uint32_t)nfproto(family));
	for (size_t i = 0; i < n; i++) {
		const struct intercept_entry *en = &entries[i];
		struct nftnl_set_elem *e;
		uint8_t key[24] = { 0 };
		size_t alen = family == AF_INET6 ? 16 : 4;
		uint16_t port = htons(en->port), relay = htons(en->relay_port);

		if (en->addr.family != family || en->proto == INET_PROTO_SCTP)
			continue;
		if (!(e = nftnl_set_elem_alloc())) {
			nftnl_set_free(s);
			return -ENOMEM;
		}
		memcpy(key, en->addr.u.bytes, alen);
		key[alen] = en->proto == INET_PROTO_TCP ? IPPROTO_TCP : IPPROTO_UDP;
		memcpy(key + alen + 4, &port, 2);
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, (uint32_t)(alen + 8));
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, &relay, 2);
		nftnl_set_elem_add(s, e);
		count++;
	}
	if (count) {
		nlh = nft_batch_msg_begin(b, NFT_MSG_NEWSETELEM, (uint16_t)nfproto(family), NLM_F_CREATE,
					  "add elements ferry_intercept relay_ports");
		if (!nlh) {
			nftnl_set_free(s);
			return -ENOMEM;
		}
		nftnl_set_elems_nlmsg_build_payload(nlh, s);
		nft_batch_msg_end(b, nlh);
	}
	nftnl_set_free(s);
	return 0;
}

/* Elements per message stay far below the 64 KiB attribute limit for the
 * numbers of frontends a relay serves; refuse more rather than overflow. */
#define INTERCEPT_MAX 1500

static int intercept_sync(const struct intercept_entry *entries, size_t n)
{
	struct mnl_socket *nl = NULL;
	struct nft_batch *b;
	struct nft_batch_error be = { 0 };
	int r;

	if (n > INTERCEPT_MAX)
		return log_errno(-E2BIG, "intercept: %zu frontends, at most %d can be intercepted", n,
				 INTERCEPT_MAX);
	b = nft_batch_new();
	if (!b)
		return -ENOMEM;
	r = nft_socket_open(&nl);
	for (int fam = 0; r == 0 && fam < 2; fam++) {
		r = skeleton_msgs(b, fam ? AF_INET6 : AF_INET);
		if (r == 0)
			r = elems_msg(b, fam ? AF_INET6 : AF_INET, entries, n);
	}
	if (r == 0)
		r = nft_batch_commit(nl, b, 0, &be);
	if (r < 0)
		log_errno(r, "intercept: programming %zu redirects failed (refused: %s)", n,
			  be.desc[0] ? be.desc : "nothing sent");
	else
		log_debug("intercept: %zu frontends redirected to the relay", n);
	nft_batch_free(b);
	if (nl)
		mnl_socket_close(nl);
	return r;
}

static int intercept_cleanup(void)
{
	struct mnl_socket *nl = NULL;
	struct nft_batch *b = nft_batch_new();
	int r, ret = 0;

	if (!b)
		return -ENOMEM;
	r = nft_socket_open(&nl);
	for (int fam = 0; r == 0 && fam < 2; fam++) {
		struct nlmsghdr *nlh;
		int rr;

		nft_batch_clear(b);
		nlh = nft_batch_msg_begin(b, NFT_MSG_DELTABLE, (uint16_t)nfproto(fam ? AF_INET6 : AF_INET), 0,
					  "delete table ferry_intercept");
		if (!nlh) {
			r = -ENOMEM;
			break;
		}
		mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, NFT_INTERCEPT_TABLE);
		nft_batch_msg_end(b, nlh);
		rr = nft_batch_commit(nl, b, 0, NULL);
		if (rr < 0 && rr != -ENOENT)
			ret = rr;
	}
	nft_batch_free(b);
	if (nl)
		mnl_socket_close(nl);
	return r < 0 ? r : ret;
}

const struct intercept_ops nftables_intercept_ops = {
	.name = "nftables",
	.sync = intercept_sync,
	.cleanup = intercept_cleanup,
};
