/* Mechanism: table and chain messages (see nft_table.h). Built with
 * libnftnl where it has an object for them, with plain attributes where a
 * message names its object and nothing else (flush, delete). */
#include "nft_table.h"

#include <errno.h>
#include <stdio.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "nft_batch.h"

/* A message of type that names table alone (NEWTABLE, DELTABLE). The
 * libnftnl table object would carry nothing else. */
static int table_msg(struct nft_batch *b, uint16_t type, int family, const char *table)
{
	struct nlmsghdr *nlh;
	char desc[96];

	snprintf(desc, sizeof(desc), "%s table %s %s", type == NFT_MSG_NEWTABLE ? "add" : "delete",
		 nft_family_name(family), table);
	nlh = nft_batch_msg_begin(b, type, nft_nfproto(family), type == NFT_MSG_NEWTABLE ? NLM_F_CREATE : 0,
				  desc);
	if (!nlh)
		return -ENOMEM;
	mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, table);
	nft_batch_msg_end(b, nlh);
	return 0;
}

int nft_table_add_msg(struct nft_batch *b, int family, const char *table)
{
	return table_msg(b, NFT_MSG_NEWTABLE, family, table);
}

int nft_table_remove_msg(struct nft_batch *b, int family, const char *table)
{
	return table_msg(b, NFT_MSG_DELTABLE, family, table);
}

int nft_chain_add_msg(struct nft_batch *b, int family, const char *table, const char *chain,
		      const struct nft_base_chain *base)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;
	char desc[96];

	if (!c)
		return -ENOMEM;
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, chain);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, nft_nfproto(family));
	if (base) {
		nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, base->type);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, base->hook);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, base->prio);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	}
	snprintf(desc, sizeof(desc), "add chain %s %s %s", nft_family_name(family), table, chain);
	nlh = nft_batch_msg_begin(b, NFT_MSG_NEWCHAIN, nft_nfproto(family), NLM_F_CREATE, desc);
	if (nlh) {
		nftnl_chain_nlmsg_build_payload(nlh, c);
		nft_batch_msg_end(b, nlh);
	}
	nftnl_chain_free(c);
	return nlh ? 0 : -ENOMEM;
}

/* A DELRULE (every rule of the chain) or DELCHAIN message: both name only
 * the table and the chain. */
static int chain_msg(struct nft_batch *b, uint16_t type, int family, const char *table, const char *chain)
{
	struct nlmsghdr *nlh;
	char desc[96];

	snprintf(desc, sizeof(desc), "%s chain %s %s %s", type == NFT_MSG_DELRULE ? "flush" : "delete",
		 nft_family_name(family), table, chain);
	nlh = nft_batch_msg_begin(b, type, nft_nfproto(family), 0, desc);
	if (!nlh)
		return -ENOMEM;
	mnl_attr_put_strz(nlh, type == NFT_MSG_DELRULE ? NFTA_RULE_TABLE : NFTA_CHAIN_TABLE, table);
	mnl_attr_put_strz(nlh, type == NFT_MSG_DELRULE ? NFTA_RULE_CHAIN : NFTA_CHAIN_NAME, chain);
	nft_batch_msg_end(b, nlh);
	return 0;
}

int nft_chain_empty_msg(struct nft_batch *b, int family, const char *table, const char *chain)
{
	return chain_msg(b, NFT_MSG_DELRULE, family, table, chain);
}

int nft_chain_remove_msg(struct nft_batch *b, int family, const char *table, const char *chain)
{
	return chain_msg(b, NFT_MSG_DELCHAIN, family, table, chain);
}

const char *nft_hook_name(unsigned hook)
{
	switch (hook) {
	case NF_INET_PRE_ROUTING:
		return "prerouting";
	case NF_INET_LOCAL_IN:
		return "input";
	case NF_INET_FORWARD:
		return "forward";
	case NF_INET_LOCAL_OUT:
		return "output";
	case NF_INET_POST_ROUTING:
		return "postrouting";
	default:
		return "?";
	}
}
