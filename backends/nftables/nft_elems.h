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
	uint32_t masq_mark;    /* the masquerade mark bit (affinity slots carry it) */
	/* The family's rules detect local traffic (nft_ruleset_detects_local):
	 * cluster IPs then go in local_fe and affinity chains mark non-local
	 * clients for masquerade. */
	bool local_v4, local_v6;
};

/* Append to out the elements of fe, sorted by nft_elem_cmp: its verdict-map
 * entry (slot chain, or reject/drop when empty), slot table, masquerade
 * membership, source ranges and hairpin pairs; for a frontend with a
 * short-circuit whose set has endpoints of its family, the short-circuit's
 * verdict-map entry and slots too; for a cluster IP, its address in the
 * guard set (shared with the address's other frontends). *ret_truncated
 * (may be NULL) is set when an endpoint set had more endpoints than slots.
 * Returns 0 or -ENOMEM (out keeps what it had). */
int nft_frontend_elems(const struct plan_frontend *fe, const struct nft_elems_cfg *cfg,
		       struct nft_elem_vec *out, bool *ret_truncated);

/* The slot-table keys (data left zero) that v, an element of a dispatch
 * map (nft_set_is_dispatch), dispatches to: its v->verdict slots, keyed by
 * the slot number (from nft_sc_slot_base for a short-circuit), or for
 * affinity by the packet mark (with masq_mark when the mode says so; both
 * forms for "local"). Appended to out; 0 or -ENOMEM. */
int nft_vmap_slot_keys(const struct nft_elem *v, uint32_t masq_mark, struct nft_elem_vec *out);

/* Room for one more element at the end (uninitialised), or NULL when out
 * of memory. */
struct nft_elem *nft_elem_vec_push(struct nft_elem_vec *vec);

/* Room for extra more elements without reallocating. 0 or -ENOMEM. */
int nft_elem_vec_reserve(struct nft_elem_vec *vec, size_t extra);

/* Free the array's storage and reset it. */
void nft_elem_vec_done(struct nft_elem_vec *vec);

/* True for a node-port frontend on every node address (the wildcard). */
bool nft_frontend_is_wildcard(const struct plan_frontend *fe);

#endif
