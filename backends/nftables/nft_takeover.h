/* Policy: what a restarted ferry finds in the kernel. Whether the tables
 * an earlier ferry left carry this configuration's rules, and what their
 * sets hold, read so that it can be trusted and so that the million
 * slot-table elements at 100k services need not be dumped: a frontend's
 * digest element vouches for its slots (nft_sets.h, nft_elem_init_digest).
 * nftables.c diffs what is read against the plan (nft_state_rebase).
 */
#ifndef FERRY_NFT_TAKEOVER_H
#define FERRY_NFT_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nft_elems.h"
#include "nft_sets.h"

struct mnl_socket;

/* Do both families' tables hold rules with ruleset tag tag (the rules
 * this configuration writes)? Reads the tags over nl; when not, logs why
 * (absent, unreadable, another configuration's) at info or warn level. */
bool nft_takeover_rules_match(struct mnl_socket *nl, const char *tag);

/* Does ip ferry's digest set hold the table digest element of kind for
 * digest (nft_sets.h: the kernel's sets, or its hairpin pairs, are
 * exactly the elements whose hashes sum to digest)? One element looked
 * up, no dump. Returns 1, 0 (absent, also when the set is), or a
 * negative errno. */
int nft_takeover_digest_matches(struct mnl_socket *nl, enum nft_table_digest kind, uint64_t digest);

/* What ferry's sets in the kernel hold: the elements read into have
 * (appended, then all of have sorted by nft_elem_cmp), and present[i]
 * set (the caller zeroes present[0..n_plan)) for each plan element the
 * kernel is known to hold without reading it. plan[0..n_plan) are the
 * elements the plan puts in the kernel, sorted by nft_elem_cmp. The small
 * sets are dumped (each dump repeated until it holds no duplicate: a hash
 * resized during a dump repeats and skips elements). Slot tables are not
 * dumped: a verdict-map element whose digest element the kernel holds as
 * the plan has it points at exactly the plan's slots, which are marked
 * present; the slots of the others are looked up by key. A slot element
 * no verdict points to is not seen (it forwards nothing). masq_mark: the
 * masquerade mark, part of affinity slot keys. Progress is logged while a
 * dump runs (a set of a million hairpin pairs takes the kernel tens of
 * seconds to dump: it walks the set from its start again for every
 * message). The table digest elements, if any, are read like the others.
 * hairpins_known: the kernel holds the plan's hairpin digest (nft_sets.h),
 * so the hairpin sets are not dumped, the plan's pairs marked present.
 * Returns 0 or a negative errno (logged at info level when a set cannot
 * be read: the caller replaces the tables); have may then hold part of
 * the elements. */
int nft_takeover_read(struct mnl_socket *nl, uint32_t masq_mark, const struct nft_elem *const *plan, size_t n_plan,
		      bool hairpins_known, struct nft_elem_vec *have, uint8_t *present);

#endif
