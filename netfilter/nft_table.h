/* Mechanism: nf_tables tables and chains, as messages appended to a batch
 * (nft_batch.h). Every function appends one message and sends nothing; the
 * caller commits the batch.
 *
 * Shared by every user of nf_tables in ferry (the nftables backend, the
 * userspace relay's interception, and any backend that needs a few rules
 * of its own), so that a table or a chain is declared one way only. Rules
 * are built with nft_expr.h, sets and their elements with nft_set.h.
 *
 * family is AF_INET or AF_INET6 everywhere: the tables are "ip" and "ip6"
 * ones. Names are copied into the message; the caller keeps ownership.
 */
#ifndef FERRY_NFT_TABLE_H
#define FERRY_NFT_TABLE_H

#include <stdint.h>

struct nft_batch;

/* What makes a chain a base chain: the hook it is attached to. */
struct nft_base_chain {
	const char *type;   /* "filter", "nat" or "route" */
	unsigned hook;      /* NF_INET_PRE_ROUTING, ... */
	int prio;           /* priority within the hook (nat dstnat: -100) */
};

/* Append a NEWTABLE creating table in family (existing is fine: nothing
 * changes then). 0 or -ENOMEM. */
int nft_table_add_msg(struct nft_batch *b, int family, const char *table);

/* Append a DELTABLE removing table and everything in it. The kernel refuses
 * it with ENOENT when the table does not exist, so a caller for whom absent
 * is success sends it in a transaction of its own. 0 or -ENOMEM. */
int nft_table_remove_msg(struct nft_batch *b, int family, const char *table);

/* Append a NEWCHAIN creating chain in table (existing is fine: its rules
 * stay). base NULL: a regular chain, reached by jumps; else a base chain
 * on base's hook with policy accept. 0 or -ENOMEM. */
int nft_chain_add_msg(struct nft_batch *b, int family, const char *table, const char *chain,
		      const struct nft_base_chain *base);

/* Append a DELRULE naming only table and chain: the kernel removes every
 * rule of the chain (the chain must exist). 0 or -ENOMEM. */
int nft_chain_empty_msg(struct nft_batch *b, int family, const char *table, const char *chain);

/* Append a DELCHAIN removing chain (it must exist, be empty and be the
 * target of no jump by then). 0 or -ENOMEM. */
int nft_chain_remove_msg(struct nft_batch *b, int family, const char *table, const char *chain);

/* nft's name of a hook ("prerouting", "input", ...), for texts. */
const char *nft_hook_name(unsigned hook);

#endif
