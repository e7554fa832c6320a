/* Mechanism: the messages of one staged change (see nft_change.h). */
#include "nft_change.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nft_batch.h"
#include "nft_sets.h"

/* Affinity maps flushed per change at most (distinct family and timeout
 * pairs; more are flushed again, which is harmless). */
#define AFF_FLUSH_MAX 16

void nft_aff_chains_clear(struct nft_aff_chains *known)
{
	known->n = 0;
}

void nft_aff_chains_done(struct nft_aff_chains *known)
{
	free(known->names);
	memset(known, 0, sizeof(*known));
}

/* A verdict-map element of an affinity frontend. */
static bool is_aff_vmap(const struct nft_elem *e)
{
	return nft_set_is_dispatch(e->set) && e->aff_timeout;
}

/* Queue the creation of the affinity chains adds[0..n) jump to that known
 * lacks. */
static int aff_chain_msgs(struct nft_batch *b, const struct nft_ruleset_cfg *cfg, struct nft_aff_chains *known,
			  const struct nft_elem *const *adds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct nft_elem *e = adds[i];
		char name[56], chain[48];
		bool seen = false;
		int r;

		if (!is_aff_vmap(e))
			continue;
		snprintf(name, sizeof(name), "%d:%s", e->family, nft_verdict_chain(e, chain, sizeof(chain)));
		for (size_t j = 0; j < known->n && !seen; j++)
			seen = strcmp(known->names[j], name) == 0;
		if (seen)
			continue;
		if (known->n == known->cap) {
			size_t c = known->cap ? known->cap * 2 : 8;
			char(*p)[56] = realloc(known->names, c * sizeof(*p));

			if (!p)
				return -ENOMEM;
			known->names = p;
			known->cap = c;
		}
		r = nft_aff_chain_msgs(b, cfg, e);
		if (r < 0)
			return r;
		memcpy(known->names[known->n++], name, sizeof(name));
	}
	return 0;
}

/* Order of element pointers by key only (the same kernel element). */
static int elem_key_cmp(const void *a, const void *b)
{
	bool same;
	int c = nft_elem_cmp(*(const struct nft_elem *const *)a, *(const struct nft_elem *const *)b, &same);

	return same ? 0 : c;
}

/* Is e (a deleted verdict-map element) added back with the same slot
 * count and affinity, only its digest changed (new endpoints)? aff_adds:
 * the queued adds of affinity verdict-map elements, sorted by key. */
static bool aff_kept(const struct nft_elem *e, const struct nft_elem **aff_adds, size_t n)
{
	const struct nft_elem *const *a = n ? bsearch(&e, aff_adds, n, sizeof(*aff_adds), elem_key_cmp) : NULL;

	return a && (*a)->verdict == e->verdict && (*a)->aff_timeout == e->aff_timeout &&
	       (*a)->aff_mode == e->aff_mode;
}

/* An affinity frontend removed or resized: its clients' remembered slots
 * may point past the new table, so forget every client of that timeout's
 * map (they pick a fresh slot on their next connection). */
static int aff_flush_msgs(struct nft_batch *b, const struct nft_state_change *c)
{
	uint32_t done[AFF_FLUSH_MAX][2];
	size_t n_done = 0, n_aff = 0;
	const struct nft_elem **aff_adds = NULL;
	int r = 0;

	for (size_t i = 0; i < c->n_dels && !aff_adds; i++)
		if (is_aff_vmap(c->dels[i])) {
			aff_adds = malloc((c->n_adds + 1) * sizeof(*aff_adds));
			if (!aff_adds)
				return -ENOMEM;
			for (size_t j = 0; j < c->n_adds; j++)
				if (is_aff_vmap(c->adds[j]))
					aff_adds[n_aff++] = c->adds[j];
			if (n_aff > 1)
				qsort(aff_adds, n_aff, sizeof(*aff_adds), elem_key_cmp);
		}
	for (size_t i = 0; i < c->n_dels && r == 0; i++) {
		const struct nft_elem *e = c->dels[i];
		char name[32];
		bool seen = false;

		if (!is_aff_vmap(e) || aff_kept(e, aff_adds, n_aff))
			continue;
		for (size_t j = 0; j < n_done && !seen; j++)
			seen = done[j][0] == e->family && done[j][1] == e->aff_timeout;
		if (seen)
			continue;
		if (n_done < AFF_FLUSH_MAX) {
			done[n_done][0] = e->family;
			done[n_done][1] = e->aff_timeout;
			n_done++;
		}
		snprintf(name, sizeof(name), "aff_%u", e->aff_timeout);
		r = nft_set_flush_name(b, e->family, name);
	}
	free(aff_adds);
	return r;
}

/* Sets whose elements point at others: the verdict maps (at slot tables
 * through their chains) and the digests (vouching for slot tables). */
static bool is_pointer_set(uint8_t set)
{
	return nft_set_is_vmap((enum nft_set_id)set) || set == NFT_SET_DIGEST || set == NFT_SET_NP_DIGEST;
}

/* Order a list of queued elements by (family, set), keeping their order
 * otherwise, so that one message carries many elements of one set. Adds
 * (pointers_last) put the pointer sets after the rest, deletes before:
 * should a huge change be split over several transactions, no verdict or
 * digest element is in the kernel without the slots it points at. */
static int group_by_set(const struct nft_elem **v, size_t n, bool pointers_last)
{
	size_t count[4 * NFT_SET_COUNT + 1] = { 0 };
	const struct nft_elem **tmp;

#define BUCKET(e) (((e)->family == AF_INET6 ? 2 * NFT_SET_COUNT : 0) + \
		   (is_pointer_set((e)->set) == pointers_last ? NFT_SET_COUNT : 0) + (e)->set)
	if (n < 2)
		return 0;
	tmp = malloc(n * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		count[BUCKET(v[i]) + 1]++;
	for (size_t k = 1; k <= 4 * NFT_SET_COUNT; k++)
		count[k] += count[k - 1];
	for (size_t i = 0; i < n; i++)
		tmp[count[BUCKET(v[i])]++] = v[i];
#undef BUCKET
	memcpy(v, tmp, n * sizeof(*v));
	free(tmp);
	return 0;
}

int nft_change_msgs(struct nft_batch *b, const struct nft_ruleset_cfg *cfg, struct nft_aff_chains *known,
		    struct nft_state_change *c)
{
	int r = group_by_set(c->dels, c->n_dels, false);

	if (r == 0) {
		r = group_by_set(c->adds, c->n_adds, true);
		c->adds_sorted = c->n_adds < 2;
	}
	if (r == 0)
		r = nft_elems_msgs(b, false, c->dels, c->n_dels);
	if (r == 0)
		r = aff_flush_msgs(b, c);
	if (r == 0)
		r = aff_chain_msgs(b, cfg, known, c->adds, c->n_adds);
	if (r == 0)
		r = nft_elems_msgs(b, true, c->adds, c->n_adds);
	return r;
}
