/* Mechanism: the constant part of ferry's nftables tables (table, sets,
 * chains, rules), built with libnftnl, and the same ruleset as nft text.
 *
 * The number of chains and rules never depends on the plan: every service
 * lives in the sets of nft_sets.h. Both forms come from one description, so
 * what `ferry plan --backend nftables` prints is what ferry programs.
 */
#ifndef FERRY_NFT_RULES_H
#define FERRY_NFT_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "inet.h"
#include "nft_sets.h"

struct nft_batch;

/* Longest interface name (IFNAMSIZ without the NUL). */
#define NFT_IFNAME_MAX 15

/* What the constant rules depend on (fixed for a ferry process). */
struct nft_ruleset_cfg {
	uint32_t masq_mark;                     /* the mark bit(s) meaning "masquerade" */
	/* Local-traffic detection: cluster-IP connections that are not local
	 * are masqueraded. By source: inside one of cluster_cidrs (each applies
	 * to its family's table only; none for a family: nothing is masqueraded
	 * by source there). Or, when local_iifname is not empty, by input
	 * interface, in both families' tables: named local_iifname exactly, or
	 * starting with it when local_iifname_prefix (kube-proxy's
	 * BridgeInterface and InterfaceNamePrefix modes); cluster_cidrs are
	 * then unused. */
	const struct inet_prefix *cluster_cidrs;
	size_t n_cluster_cidrs;
	char local_iifname[NFT_IFNAME_MAX + 1];
	bool local_iifname_prefix;
	/* Comment on nat_prerouting's first rule naming this ruleset
	 * (nft_ruleset_tag); NULL: none. */
	const char *tag;
};

/* Whether cfg's rules tell local traffic apart in family's table (an
 * interface match, or a cluster CIDR of that family): only then are
 * cluster-IP connections from elsewhere marked for masquerade. The element
 * translation asks the same (nft_elems_cfg.local_v4/local_v6). */
bool nft_ruleset_detects_local(const struct nft_ruleset_cfg *cfg, int family);

/* Append the messages that make family's table hold exactly ferry's
 * constant ruleset: create the table, sets and chains if absent (existing
 * ones are kept with their elements), empty every chain and add its rules.
 * In one transaction this replaces the rules atomically: packets see the
 * old rules or the new ones, never none. Returns 0 or -ENOMEM. */
int nft_ruleset_msgs(struct nft_batch *b, int family, const struct nft_ruleset_cfg *cfg);
/* Append the message creating family's table alone (existing is fine).
 * 0 or -ENOMEM. */
int nft_table_msg(struct nft_batch *b, int family);

/* Length of a tag, with its NUL. */
#define NFT_RULESET_TAG_LEN 40

/* The tag of cfg's ruleset into buf ("ferry ruleset " and 16 hex digits):
 * a hash of every message nft_ruleset_msgs builds for both families with
 * cfg (tag ignored). Equal tags mean equal rules: a restarted ferry that
 * finds its own tag in the kernel keeps the rules and converges the set
 * contents only. Returns 0 or -ENOMEM. */
int nft_ruleset_tag(const struct nft_ruleset_cfg *cfg, char buf[NFT_RULESET_TAG_LEN]);

/* Append a message removing every rule of chain, or deleting chain (it
 * must be empty and unreferenced by then). 0 or -ENOMEM. */
int nft_chain_flush_msg(struct nft_batch *b, int family, const char *chain);
int nft_chain_delete_msg(struct nft_batch *b, int family, const char *chain);

/* Whether this version of ferry programs a chain of that name (the
 * constant chains, the slot chains, affinity chains). A full replace
 * deletes the others: chains an older ferry made. */
bool nft_ruleset_has_chain(const char *name);

/* The chain holding the service-range guard's drop rules, one per service
 * CIDR. Declared (empty) with the constant ruleset, so that the ruleset
 * tag does not depend on the CIDRs, which may change while ferry runs (the
 * API's ServiceCIDRs); its rules are written by nft_service_cidrs_msgs. */
#define NFT_CIDRS_CHAIN "service_cidrs_check"

/* Append the messages replacing the rules of NFT_CIDRS_CHAIN in family's
 * table by "ip daddr CIDR drop" for each of cidrs[0..n) of that family
 * (none: the chain is emptied). In the transaction that replaces the
 * constant ruleset, or in any later one: packets see the old rules or the
 * new ones. Returns 0 or -ENOMEM. */
int nft_service_cidrs_msgs(struct nft_batch *b, int family, const struct inet_prefix *cidrs, size_t n);
/* The same as nft commands ("add rule ip ferry service_cidrs_check ..."). */
void nft_service_cidrs_print(FILE *out, int family, const struct inet_prefix *cidrs, size_t n);

/* Append a message deleting family's table (and everything in it). */
int nft_table_delete_msg(struct nft_batch *b, int family);

/* Append messages creating, then deleting, a scratch table with a nat
 * chain: committed together they change nothing, but prove that the kernel
 * accepts ferry's kind of transaction (the probe). */
int nft_probe_msgs(struct nft_batch *b, const char *scratch_name);

/* Append the messages creating the ClientIP-affinity chain that verdict-map
 * element e (of NFT_SET_FE or NFT_SET_NP, with aff_timeout set) jumps to,
 * with its aff_<timeout> map; existing ones are kept (the chain's rules are
 * replaced). Returns 0 or -ENOMEM. */
int nft_aff_chain_msgs(struct nft_batch *b, const struct nft_ruleset_cfg *cfg, const struct nft_elem *e);
/* The same as nft commands ("add map", "add chain", "add rule" lines). */
void nft_aff_chain_print(FILE *out, const struct nft_ruleset_cfg *cfg, const struct nft_elem *e);

/* Print family's table with its sets, chains and rules in nft syntax
 * (without elements; the caller prints them after the closing brace). */
void nft_ruleset_print(FILE *out, int family, const struct nft_ruleset_cfg *cfg);

#endif
