/* Policy: which set elements one plan frontend stands for. Shared by the
 * backend (nftables.c) and the renderer (nft_render.c), so what is printed
 * is what is programmed. */
#ifndef FERRY_NFT_ELEMS_H
#define FERRY_NFT_ELEMS_H

#include <stdbool.h>
#include <stddef.h>

#include "nft_sets.h"
#include "plan-t.h"

/* A growable array of elements. */
struct nft_elem_vec {
	struct nft_elem *v;
	size_t n, cap;
};

/* Options of the translation that are not in the plan. */
struct nft_elems_cfg {
	bool masquerade_all;   /* --masquerade-all: every frontend masquerades */
	uint32_t masq_mark;    /* the masquerade mark bit (affinity slots carry it) */
	bool cidrs_v4, cidrs_v6; /* cluster CIDRs given for the family */
};

/* Append to out the elements of fe, sorted by nft_elem_cmp: its verdict-map
 * entry (slot chain, or reject/drop when empty), slot table, masquerade
 * membership, source ranges and hairpin pairs. *ret_truncated (may be NULL)
 * is set when the endpoint set had more endpoints than slots. Returns 0 or
 * -ENOMEM (out keeps what it had). */
int nft_frontend_elems(const struct plan_frontend *fe, const struct nft_elems_cfg *cfg,
		       struct nft_elem_vec *out, bool *ret_truncated);

/* Free the array's storage and reset it. */
void nft_elem_vec_done(struct nft_elem_vec *vec);

/* True for a node-port frontend on every node address (the wildcard). */
bool nft_frontend_is_wildcard(const struct plan_frontend *fe);

#endif
