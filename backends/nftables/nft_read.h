/* Mechanism: reading ferry's own nftables tables back from the kernel
 * (netlink dumps): the ruleset tag and the elements of its sets. Used once
 * per process, when ferry takes over the tables an earlier ferry left; the
 * kernel is never listed on a sync.
 */
#ifndef FERRY_NFT_READ_H
#define FERRY_NFT_READ_H

#include <stddef.h>

#include "nft_elems.h"
#include "nft_sets.h"

struct mnl_socket;

/* The comment of the first rule of family's nat_prerouting chain, where
 * ferry keeps its ruleset tag (nft_rules.h), into buf. Returns 0, -ENOENT
 * when the table, the chain or the comment is absent, or -errno. */
int nft_read_tag(struct mnl_socket *nl, int family, char *buf, size_t len);

/* Longest chain name ferry reads back, with its NUL (the kernel's limit). */
#define NFT_CHAIN_NAME_MAX 256

/* The names of the chains in family's ferry table, in *ret (malloc'd, the
 * caller frees; NULL when none) and *ret_n. Returns 0 or -errno. */
int nft_read_chains(struct mnl_socket *nl, int family, char (**ret)[NFT_CHAIN_NAME_MAX], size_t *ret_n);

/* Called while a dump runs, after every message read (a few hundred to
 * a few thousand elements each), for the caller to report progress. */
struct nft_read_progress {
	void (*fn)(void *ctx);
	void *ctx;
};

/* Append every element of family's set to out. progress (may be NULL) is
 * called as the dump goes. Returns 0, -ENOENT when the set is absent,
 * -EPROTO when an element is not one ferry writes, -EINTR when the set
 * changed during the dump, -ENOMEM or another -errno. On error out may
 * hold some of the elements. Not reentrant (one dump at a time per
 * process; ferry reads once, at start). */
int nft_read_set(struct mnl_socket *nl, int family, enum nft_set_id set, struct nft_elem_vec *out,
		 const struct nft_read_progress *progress);

/* Look up the elements of family's set whose keys are those of keys[0..n)
 * (all of that set and family; data ignored) one by one, and append the
 * ones the kernel holds, with their data, to out; absent keys are skipped.
 * Costs one netlink message per element instead of a dump: the kernel
 * resumes a dump by walking the set from its start again, so dumping a
 * set of a million elements takes a minute. Returns 0, -EPROTO, -ENOMEM
 * or another -errno. */
int nft_read_keys(struct mnl_socket *nl, const struct nft_elem *keys, size_t n, struct nft_elem_vec *out);

#endif
