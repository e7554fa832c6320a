/* Mechanism: a compact byte form of a list of set elements, for what the
 * nftables backend keeps of the elements it committed (nft_state.h).
 *
 * A struct nft_elem is 72 bytes, laid out for the kernel; a frontend's
 * elements hold a few dozen bytes of information. The packed form keeps
 * those bytes only, element by element, in the list's order:
 *   - a slot-table run (consecutive elements of one slot table and one
 *     frontend): the frontend key once, then per element its slot number
 *     (a varint) and the endpoint (address and port): 7 bytes per IPv4
 *     endpoint instead of 72;
 *   - a hairpin pair (address . same address): the address once;
 *   - any other element: its key and data without their padding, and the
 *     verdict fields of a verdict map;
 *   - an element that does not have the shape ferry writes (bytes past its
 *     set's lengths, an unknown set or family): verbatim.
 * Unpacking gives back elements equal field by field (padding bytes of
 * struct nft_elem aside) in the same order. Plain data, no allocation.
 */
#ifndef FERRY_NFT_PACK_H
#define FERRY_NFT_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "nft_sets.h"

/* Bytes that packing n elements may take at most. */
size_t nft_pack_bound(size_t n);

/* Pack v[0..n) into out, which has room for nft_pack_bound(n) bytes.
 * Returns the bytes written. Pure. */
size_t nft_pack_elems(const struct nft_elem *v, size_t n, uint8_t *out);

/* Unpack the n elements that len bytes at p hold into out[0..n). Returns
 * 0, or -EINVAL when p does not hold exactly n packed elements (out is
 * then partly written). */
int nft_pack_unpack(const uint8_t *p, size_t len, struct nft_elem *out, size_t n);

#endif
