/* Policy: a plan frontend translated into set elements. See nft_elems.h. */
#include "nft_elems.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool nft_frontend_is_wildcard(const struct plan_frontend *fe)
{
	return fe->kind == FRONTEND_NODE_PORT && inet_addr_is_any(&fe->addr);
}

void nft_elem_vec_done(struct nft_elem_vec *vec)
{
	free(vec->v);
	memset(vec, 0, sizeof(*vec));
}

struct nft_elem *nft_elem_vec_push(struct nft_elem_vec *vec)
{
	if (vec->n == vec->cap) {
		size_t cap = vec->cap ? vec->cap * 2 : 16;
		struct nft_elem *v = realloc(vec->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		vec->v = v;
		vec->cap = cap;
	}
	return &vec->v[vec->n++];
}

int nft_vmap_slot_keys(const struct nft_elem *v, uint32_t masq_mark, struct nft_elem_vec *out)
{
	bool np = v->set == NFT_SET_NP, aff = v->aff_timeout != 0;
	enum nft_set_id set = aff ? (np ? NFT_SET_NP_AFF_SLOTS : NFT_SET_AFF_SLOTS)
				  : (np ? NFT_SET_NP_SLOTS : NFT_SET_SLOTS);
	size_t prefix = nft_set_key_len((enum nft_set_id)v->set, v->family);
	int forms = aff && v->aff_mode == NFT_AFF_LOCAL ? 2 : 1;

	for (uint32_t i = 0; i < v->verdict && v->verdict <= NFT_SLOTS_MAX; i++)
		for (int form = 0; form < forms; form++) {
			struct nft_elem *e = nft_elem_vec_push(out);
			uint32_t mark = i;
			size_t off = prefix;

			if (!e)
				return -ENOMEM;
			if (aff && (v->aff_mode == NFT_AFF_MASQ || form == 1))
				mark |= masq_mark;
			nft_elem_init(e, set, v->family);
			memcpy(e->key, v->key, prefix);
			nft_elem_key_slot(e, &off, mark);
		}
	return 0;
}

/* Key "daddr . proto . dport" or, for wildcard node ports, "proto . dport". */
static size_t key_frontend(struct nft_elem *e, const struct plan_frontend *fe, bool wildcard)
{
	size_t off = 0;

	if (!wildcard)
		nft_elem_key_addr(e, &off, &fe->addr);
	nft_elem_key_proto(e, &off, fe->proto);
	nft_elem_key_port(e, &off, fe->port);
	return off;
}

static int elem_cmp_qsort(const void *a, const void *b)
{
	return nft_elem_cmp(a, b, NULL);
}

/* The digest element of one frontend's elements v[0..n): a hash of its
 * slot elements (nft_sets.h). Returns 0 with *ret set, or 1 when the
 * frontend has no verdict-map element (no endpoints). */
static int slot_digest(const struct nft_elem *v, size_t n, struct nft_elem *ret)
{
	uint64_t h = 1469598103934665603ull;
	const struct nft_elem *vmap = NULL;

	for (size_t i = 0; i < n; i++) {
		const struct nft_elem *e = &v[i];

		if (e->set == NFT_SET_FE || e->set == NFT_SET_NP)
			vmap = e;
		if (e->set != NFT_SET_SLOTS && e->set != NFT_SET_NP_SLOTS && e->set != NFT_SET_AFF_SLOTS &&
		    e->set != NFT_SET_NP_AFF_SLOTS)
			continue;
		h = (h ^ e->set) * 1099511628211ull;
		h = (h ^ e->family) * 1099511628211ull;
		for (size_t b = 0; b < sizeof(e->key); b++)
			h = (h ^ e->key[b]) * 1099511628211ull;
		for (size_t b = 0; b < sizeof(e->data); b++)
			h = (h ^ e->data[b]) * 1099511628211ull;
	}
	if (!vmap)
		return 1;
	nft_elem_init_digest(ret, vmap, h);
	return 0;
}

int nft_frontend_elems(const struct plan_frontend *fe, const struct nft_elems_cfg *cfg,
		       struct nft_elem_vec *out, bool *ret_truncated)
{
	const struct plan_epset *eps = fe->epset;
	int family = fe->addr.family;
	bool wc = nft_frontend_is_wildcard(fe);
	size_t start = out->n, n = 0;
	const struct plan_endpoint **eligible = NULL;
	struct nft_elem *e;
	size_t off;

	if (ret_truncated)
		*ret_truncated = false;
	/* Only endpoints of the frontend's family can be DNAT targets. */
	if (eps && eps->n_endpoints) {
		eligible = malloc(eps->n_endpoints * sizeof(*eligible));
		if (!eligible)
			return -ENOMEM;
		for (size_t i = 0; i < eps->n_endpoints; i++)
			if (eps->endpoints[i].addr.family == family)
				eligible[n++] = &eps->endpoints[i];
	}

	if (n == 0) {
		if (!(e = nft_elem_vec_push(out)))
			goto oom;
		nft_elem_init(e, wc ? NFT_SET_EMPTY_NP : NFT_SET_EMPTY_FE, family);
		key_frontend(e, fe, wc);
		e->verdict = fe->when_empty == EMPTY_DROP ? NFT_VERDICT_DROP : NFT_VERDICT_REJECT;
	} else {
		unsigned slots = nft_slots_for(n);
		bool masq = fe->masquerade == PLAN_MASQ_ALWAYS;
		bool local = family == AF_INET6 ? cfg->local_v6 : cfg->local_v4;
		enum nft_aff_mode mode = masq ? NFT_AFF_MASQ :
					 fe->masquerade == PLAN_MASQ_UNLESS_LOCAL && local && !wc ? NFT_AFF_LOCAL
												  : NFT_AFF_PLAIN;
		bool aff = eps->affinity;

		if (ret_truncated && n > slots)
			*ret_truncated = true;
		if (!(e = nft_elem_vec_push(out)))
			goto oom;
		nft_elem_init(e, wc ? NFT_SET_NP : NFT_SET_FE, family);
		key_frontend(e, fe, wc);
		e->verdict = (uint16_t)slots;
		if (aff) {
			e->aff_timeout = eps->affinity_timeout_s; /* set: plan-t.h */
			e->aff_mode = (uint8_t)mode;
		}
		/* Slot i serves endpoint i mod n: every endpoint gets slots/n
		 * slots, give or take one. The keys come from the verdict
		 * element (nft_vmap_slot_keys, which a restarted ferry uses to
		 * find them again), forms of one slot side by side. */
		{
			struct nft_elem v = *e;
			size_t first = out->n, forms;

			if (nft_vmap_slot_keys(&v, cfg->masq_mark, out) < 0)
				goto oom;
			forms = (out->n - first) / slots;
			for (size_t k = first; k < out->n; k++) {
				const struct plan_endpoint *ep = eligible[((k - first) / forms) % n];

				nft_elem_data_endpoint(&out->v[k], &ep->addr, ep->port);
			}
		}
		if (masq) {
			if (!(e = nft_elem_vec_push(out)))
				goto oom;
			nft_elem_init(e, wc ? NFT_SET_MASQ_NP : NFT_SET_MASQ_FE, family);
			key_frontend(e, fe, wc);
		} else if (fe->masquerade == PLAN_MASQ_UNLESS_LOCAL) {
			if (!(e = nft_elem_vec_push(out)))
				goto oom;
			nft_elem_init(e, NFT_SET_LOCAL_FE, family);
			key_frontend(e, fe, wc);
		}
		/* Hairpin (an endpoint reaching itself through the service)
		 * only happens on the endpoint's own node: a pod elsewhere
		 * is DNATed by its node's proxy. So only endpoints that are
		 * or may be here (no nodeName known) get an element; at
		 * cluster scale that is a node's share instead of all. */
		for (size_t i = 0; i < n; i++) {
			if (!eligible[i]->local && !eligible[i]->node_unknown)
				continue;
			if (!(e = nft_elem_vec_push(out)))
				goto oom;
			nft_elem_init(e, NFT_SET_HAIRPIN, family);
			off = 0;
			nft_elem_key_addr(e, &off, &eligible[i]->addr);
			nft_elem_key_addr(e, &off, &eligible[i]->addr);
		}
	}
	if (!wc && fe->n_source_ranges) {
		size_t n_ranges = 0;
		for (size_t i = 0; i < fe->n_source_ranges; i++) {
			const struct inet_prefix *p = &fe->source_ranges[i];
			if (p->addr.family != family)
				continue;
			if (!(e = nft_elem_vec_push(out)))
				goto oom;
			nft_elem_init(e, NFT_SET_RANGES, family);
			off = key_frontend(e, fe, false);
			nft_elem_key_addr(e, &off, &p->addr);
			e->plen = p->len;
			n_ranges++;
		}
		/* A frontend whose ranges are all of the other family admits no one
		 * of this family: still restricted, with nothing allowed. */
		if (!(e = nft_elem_vec_push(out)))
			goto oom;
		nft_elem_init(e, NFT_SET_RANGED_FE, family);
		key_frontend(e, fe, false);
		(void)n_ranges;
	}
	free(eligible);
	/* Dedupe hairpin pairs (two endpoints on one address, other ports). */
	qsort(out->v + start, out->n - start, sizeof(*out->v), elem_cmp_qsort);
	{
		size_t w = start;
		for (size_t i = start; i < out->n; i++)
			if (w == start || nft_elem_cmp(&out->v[w - 1], &out->v[i], NULL) != 0)
				out->v[w++] = out->v[i];
		out->n = w;
	}
	{
		/* The digest sets sort last: appending keeps the order. */
		struct nft_elem d;

		if (slot_digest(out->v + start, out->n - start, &d) == 0) {
			if (!(e = nft_elem_vec_push(out))) {
				out->n = start;
				return -ENOMEM;
			}
			*e = d;
		}
	}
	return 0;
oom:
	free(eligible);
	out->n = start;
	return -ENOMEM;
}
