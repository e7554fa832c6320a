/* Mechanism: the messages of one staged change (nft_state.h) appended to a
 * batch, in the order the kernel needs them: deletes, then the affinity
 * maps that must forget their clients, the affinity chains the adds jump
 * to, then adds. Builds messages only; the caller commits the batch.
 */
#ifndef FERRY_NFT_CHANGE_H
#define FERRY_NFT_CHANGE_H

#include <stddef.h>

#include "nft_rules.h"
#include "nft_state.h"

struct nft_batch;

/* The affinity chains this process has created ("family:chain" names).
 * They are never removed (a few per distinct timeout and slot count;
 * `ferry cleanup` removes the table), so a chain is created once, by the
 * first change that jumps to it. Zero it to initialise. */
struct nft_aff_chains {
	char (*names)[56];
	size_t n, cap;
};

/* Forget every chain (the tables are being replaced). */
void nft_aff_chains_clear(struct nft_aff_chains *known);

/* Free the list and leave it empty. */
void nft_aff_chains_done(struct nft_aff_chains *known);

/* Append to b the messages of change c: its deletes, the flush of each
 * affinity map (aff_<timeout>) whose verdict-map element is deleted or
 * changes slot count or mode (its clients' remembered slots may point past
 * the new table), the affinity chains the adds jump to that known lacks
 * (then added to known), and its adds. Elements are grouped by family and
 * set so that one message carries many; verdict-map and digest elements
 * are deleted before and added after the slots they point at, so that a
 * change split over several transactions never points at missing slots.
 * Reorders c->dels and c->adds. cfg: the ruleset the chains belong to.
 * Returns 0 or -ENOMEM. */
int nft_change_msgs(struct nft_batch *b, const struct nft_ruleset_cfg *cfg, struct nft_aff_chains *known,
		    struct nft_state_change *c);

#endif
