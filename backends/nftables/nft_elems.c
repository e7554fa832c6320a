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

int nft_elem_vec_reserve(struct nft_elem_vec *vec, size_t extra)
{
	size_t cap = vec->cap ? vec->cap : 16;
	struct nft_elem *v;

	if (vec->cap - vec->n >= extra)
		return 0;
	while (cap - vec->n < extra)
		cap *= 2;
	v = realloc(vec->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	vec->v = v;
	vec->cap = cap;
	return 0;
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
	bool np = nft_set_is_np(v->set), aff = v->aff_timeout != 0;
	enum nft_set_id set = aff ? (np ? NFT_SET_NP_AFF_SLOTS : NFT_SET_AFF_SLOTS)
				  : (np ? NFT_SET_NP_SLOTS : NFT_SET_SLOTS);
	size_t prefix = nft_set_key_len((enum nft_set_id)v->set, v->family);
	int forms = aff && v->aff_mode == NFT_AFF_LOCAL ? 2 : 1;
	/* A short-circuit's slots follow the frontend's own in its table. */
	uint32_t base = nft_set_is_short_circuit(v->set) ? nft_sc_slot_base(masq_mark) : 0;

	for (uint32_t i = 0; i < v->verdict && v->verdict <= NFT_SLOTS_MAX; i++)
		for (int form = 0; form < forms; form++) {
			struct nft_elem *e = nft_elem_vec_push(out);
			uint32_t mark = base + i;
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
 * slot elements, its short-circuit's included (nft_sets.h). Returns 0 with
 * *ret set, or 1 when the frontend has no dispatch element (no endpoints). */
static int slot_digest(const struct nft_elem *v, size_t n, struct nft_elem *ret)
{
	uint64_t h = 1469598103934665603ull;
	const struct nft_elem *vmap = NULL;

	for (size_t i = 0; i < n; i++) {
		const struct nft_elem *e = &v[i];

		/* The frontend's own dispatch element sorts before its
		 * short-circuit's: the digest is keyed by whichever it has. */
		if (nft_set_is_dispatch(e->set) && !vmap)
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

/* The endpoints of eps that fe's family can DNAT to, into a new array
 * (*ret NULL when none). 0 or -ENOMEM. */
static int eligible_of(const struct plan_epset *eps, int family, const struct plan_endpoint ***ret, size_t *ret_n)
{
	const struct plan_endpoint **v;
	size_t n = 0;

	*ret = NULL;
	*ret_n = 0;
	if (!eps || !eps->n_endpoints)
		return 0;
	v = malloc(eps->n_endpoints * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < eps->n_endpoints; i++)
		if (eps->endpoints[i].addr.family == family)
			v[n++] = &eps->endpoints[i];
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Append the dispatch element of fe in vset (NFT_SET_FE, NFT_SET_NP or
 * their short-circuit maps) going to eps' endpoints eligible[0..n), n > 0,
 * with affinity mode mode, then its slots and the hairpin pairs of those
 * endpoints. 0 or -ENOMEM. */
static int push_dispatch(struct nft_elem_vec *out, const struct nft_elems_cfg *cfg, const struct plan_frontend *fe,
			 enum nft_set_id vset, const struct plan_epset *eps, const struct plan_endpoint **eligible,
			 size_t n, enum nft_aff_mode mode, bool *ret_truncated)
{
	unsigned slots = nft_slots_for(n);
	struct nft_elem *e, v;
	size_t first, forms, off;

	if (ret_truncated && n > slots)
		*ret_truncated = true;
	if (!(e = nft_elem_vec_push(out)))
		return -ENOMEM;
	nft_elem_init(e, vset, fe->addr.family);
	key_frontend(e, fe, nft_set_is_np(vset));
	e->verdict = (uint16_t)slots;
	if (eps->affinity) {
		e->aff_timeout = eps->affinity_timeout_s; /* set: plan-t.h */
		e->aff_mode = (uint8_t)mode;
	}
	/* Slot i serves endpoint i mod n: every endpoint gets slots/n slots,
	 * give or take one. The keys come from the verdict element
	 * (nft_vmap_slot_keys, which a restarted ferry uses to find them
	 * again), forms of one slot side by side. */
	v = *e;
	first = out->n;
	if (nft_vmap_slot_keys(&v, cfg->masq_mark, out) < 0)
		return -ENOMEM;
	forms = (out->n - first) / slots;
	for (size_t k = first; k < out->n; k++) {
		const struct plan_endpoint *ep = eligible[((k - first) / forms) % n];

		nft_elem_data_endpoint(&out->v[k], &ep->addr, ep->port);
	}
	/* Hairpin (an endpoint reaching itself through the service) only
	 * happens on the endpoint's own node: a pod elsewhere is DNATed by
	 * its node's proxy. So only endpoints that are or may be here (no
	 * nodeName known) get an element; at cluster scale that is a node's
	 * share instead of all. */
	for (size_t i = 0; i < n; i++) {
		if (!eligible[i]->local && !eligible[i]->node_unknown)
			continue;
		if (!(e = nft_elem_vec_push(out)))
			return -ENOMEM;
		nft_elem_init(e, NFT_SET_HAIRPIN, fe->addr.family);
		off = 0;
		nft_elem_key_addr(e, &off, &eligible[i]->addr);
		nft_elem_key_addr(e, &off, &eligible[i]->addr);
	}
	return 0;
}

int nft_frontend_elems(const struct plan_frontend *fe, const struct nft_elems_cfg *cfg,
		       struct nft_elem_vec *out, bool *ret_truncated)
{
	const struct plan_epset *eps = fe->epset;
	int family = fe->addr.family;
	bool wc = nft_frontend_is_wildcard(fe);
	size_t start = out->n, n = 0, n_sc = 0;
	const struct plan_endpoint **eligible = NULL, **sc_eligible = NULL;
	struct nft_elem *e;
	size_t off;

	if (ret_truncated)
		*ret_truncated = false;
	/* Only endpoints of the frontend's family can be DNAT targets. */
	if (eligible_of(eps, family, &eligible, &n) < 0 ||
	    eligible_of(fe->short_circuit, family, &sc_eligible, &n_sc) < 0)
		goto oom;
	/* Room for all of them at once: slots (two forms for affinity), a
	 * hairpin per endpoint, a few more; no growth step by step. */
	if (nft_elem_vec_reserve(out, 3 * (n + n_sc) + 8) < 0)
		goto oom;

	if (n == 0) {
		if (!(e = nft_elem_vec_push(out)))
			goto oom;
		nft_elem_init(e, wc ? NFT_SET_EMPTY_NP : NFT_SET_EMPTY_FE, family);
		key_frontend(e, fe, wc);
		e->verdict = fe->when_empty == EMPTY_DROP ? NFT_VERDICT_DROP : NFT_VERDICT_REJECT;
	} else {
		bool masq = fe->masquerade == PLAN_MASQ_ALWAYS;
		bool local = family == AF_INET6 ? cfg->local_v6 : cfg->local_v4;
		enum nft_aff_mode mode = masq ? NFT_AFF_MASQ :
					 fe->masquerade == PLAN_MASQ_UNLESS_LOCAL && local && !wc ? NFT_AFF_LOCAL
												  : NFT_AFF_PLAIN;

		if (push_dispatch(out, cfg, fe, wc ? NFT_SET_NP : NFT_SET_FE, eps, eligible, n, mode, ret_truncated) < 0)
			goto oom;
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
	}
	/* The short-circuit: its chain masquerades the node's own connections
	 * and no pod's, the two forms of an affinity slot ("local" mode). Its
	 * dispatch comes before the empty check, so it forwards even when the
	 * frontend's own set is empty. */
	if (n_sc && push_dispatch(out, cfg, fe, wc ? NFT_SET_SC_NP : NFT_SET_SC_FE, fe->short_circuit, sc_eligible,
				  n_sc, NFT_AFF_LOCAL, ret_truncated) < 0)
		goto oom;
	/* A cluster IP is in the guard set whatever its endpoints: its ports
	 * that no frontend has are refused. Frontends of one address share
	 * the element (nft_state.h counts references). */
	if (fe->kind == FRONTEND_CLUSTER_IP) {
		if (!(e = nft_elem_vec_push(out)))
			goto oom;
		nft_elem_init(e, NFT_SET_CLUSTER_IPS, family);
		off = 0;
		nft_elem_key_addr(e, &off, &fe->addr);
	}
	if (!wc && fe->n_source_ranges) {
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
		}
		/* A frontend whose ranges are all of the other family admits no one
		 * of this family: still restricted, with nothing allowed. */
		if (!(e = nft_elem_vec_push(out)))
			goto oom;
		nft_elem_init(e, NFT_SET_RANGED_FE, family);
		key_frontend(e, fe, false);
	}
	free(eligible);
	free(sc_eligible);
	/* Dedupe hairpin pairs (two endpoints on one address, other ports,
	 * or in both the frontend's set and its short-circuit's). */
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
	free(sc_eligible);
	out->n = start;
	return -ENOMEM;
}
