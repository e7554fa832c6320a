/* Incremental planning: splice a few services' new plan into the whole one
 * (see plan_splice.h).
 *
 * Everything is decided before anything moves: the old entries of the
 * replanned services (their sets are a key range "ns/name:..." of the
 * sorted set array; their frontends come from the set -> frontends index)
 * are matched against the part by key, giving removed, added and kept
 * entries, and every claim is checked. Only then is cur changed.
 */
#include "plan_splice.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

/* ---- state ---- */

int plan_splice_index(struct plan_splice_state *st, const struct plan *plan)
{
	uint32_t *off = calloc(plan->n_epsets + 2, sizeof(*off));
	uint32_t *fe = malloc((plan->n_frontends + 1) * sizeof(*fe));

	if (!off || !fe) {
		free(off);
		free(fe);
		return -ENOMEM;
	}
	/* Counting sort of the frontends by their set's index. */
	for (size_t i = 0; i < plan->n_frontends; i++)
		off[plan->frontends[i].epset - plan->epsets + 2]++;
	for (size_t i = 2; i < plan->n_epsets + 2; i++)
		off[i] += off[i - 1];
	for (size_t i = 0; i < plan->n_frontends; i++)
		fe[off[plan->frontends[i].epset - plan->epsets + 1]++] = (uint32_t)i;
	free(st->ix_off);
	free(st->ix_fe);
	st->ix_off = off;
	st->ix_fe = fe;
	return 0;
}

void plan_splice_empty_trash(struct plan_splice_state *st)
{
	for (size_t i = 0; i < st->n_trash; i++)
		free(st->trash[i]);
	st->n_trash = 0;
}

void plan_splice_state_done(struct plan_splice_state *st)
{
	plan_splice_empty_trash(st);
	free(st->trash);
	free(st->contested);
	free(st->hc_contested);
	free(st->ix_off);
	free(st->ix_fe);
	memset(st, 0, sizeof(*st));
}

/* Room for n more trash entries, so that nothing fails once cur changes. */
static int trash_reserve(struct plan_splice_state *st, size_t n)
{
	size_t cap = st->cap_trash ? st->cap_trash : 64;
	void **t;

	if (st->n_trash + n <= st->cap_trash)
		return 0;
	while (cap < st->n_trash + n)
		cap *= 2;
	t = realloc(st->trash, cap * sizeof(*t));
	if (!t)
		return -ENOMEM;
	st->trash = t;
	st->cap_trash = cap;
	return 0;
}

static void trash(struct plan_splice_state *st, void *p)
{
	if (p)
		st->trash[st->n_trash++] = p; /* reserved beforehand */
}

/* ---- lookups ---- */

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return (x > y) - (x < y);
}

static int cmp_u16(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static bool has_index(const size_t *sorted, size_t n, size_t i)
{
	return n && bsearch(&i, sorted, n, sizeof(*sorted), cmp_size) != NULL;
}

/* First set of plan whose key is >= key. */
static size_t epset_lower_bound(const struct plan *plan, const char *key)
{
	size_t lo = 0, hi = plan->n_epsets;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(plan->epsets[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct plan_epset *epset_find(const struct plan_epset *epsets, size_t n, const char *key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(epsets[mid].key, key);
		if (c == 0)
			return (struct plan_epset *)&epsets[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Index of the frontend of plan at fe's address (addr, proto, port), of
 * any kind, or SIZE_MAX. */
static size_t frontend_at(const struct plan *plan, const struct plan_frontend *fe)
{
	for (int kind = FRONTEND_CLUSTER_IP; kind <= FRONTEND_LOAD_BALANCER; kind++) {
		struct plan_frontend k = *fe;
		size_t lo = 0, hi = plan->n_frontends;

		k.kind = (enum frontend_kind)kind;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			int c = plan_frontend_cmp(&plan->frontends[mid], &k);
			if (c == 0)
				return mid;
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	return SIZE_MAX;
}

static bool contested(const struct plan_splice_state *st, const struct plan_frontend *fe)
{
	size_t lo = 0, hi = st->n_contested;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = plan_frontend_addr_cmp(&st->contested[mid], fe);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static bool hc_contested(const struct plan_splice_state *st, uint16_t port)
{
	return st->n_hc_contested &&
	       bsearch(&port, st->hc_contested, st->n_hc_contested, sizeof(port), cmp_u16) != NULL;
}

int plan_svc_ref_cmp(const void *a, const void *b)
{
	const struct plan_svc_ref *x = a, *y = b;
	int c = strcmp(x->ns, y->ns);

	return c ? c : strcmp(x->name, y->name);
}

static bool is_replanned(const struct plan_svc_ref *svcs, size_t n, const char *ns, const char *name)
{
	struct plan_svc_ref k = { ns, name };

	return n && bsearch(&k, svcs, n, sizeof(*svcs), plan_svc_ref_cmp) != NULL;
}

/* ---- the splice ---- */

/* What the old and new entries of the replanned services are, and how
 * they match. Indexes: o* into cur, n* into part. */
struct splice {
	struct plan *cur, *part;
	struct plan_splice_state *st;
	size_t *old_eps, n_old_eps;     /* sorted (= key order) */
	size_t *old_fes, n_old_fes;     /* sorted (= plan order) */
	size_t *old_hcs, n_old_hcs;     /* sorted */
	/* matching */
	size_t *eps_removed, n_eps_removed;  /* cur indexes */
	size_t *eps_added, n_eps_added;      /* part indexes */
	size_t (*eps_changed)[2];            /* (cur, part) */
	size_t n_eps_changed;
	size_t *fes_removed, n_fes_removed;
	size_t *fes_added, n_fes_added;
	size_t (*fes_changed)[2];
	size_t n_fes_changed;
	size_t *fes_kept, n_fes_kept;        /* cur indexes of unchanged kept frontends */
	bool hcs_same_ports;
};

static void splice_done(struct splice *s)
{
	free(s->old_eps);
	free(s->old_fes);
	free(s->old_hcs);
	free(s->eps_removed);
	free(s->eps_added);
	free(s->eps_changed);
	free(s->fes_removed);
	free(s->fes_added);
	free(s->fes_changed);
	free(s->fes_kept);
}

/* Collect the old entries of the replanned services. */
static int collect_old(struct splice *s, const struct plan_svc_ref *svcs, size_t n)
{
	const struct plan *cur = s->cur;
	size_t cap_eps = 16, cap_fes = 16;
	char *prefix = NULL;
	size_t prefix_cap = 0;

	s->old_eps = malloc(cap_eps * sizeof(*s->old_eps));
	s->old_fes = malloc(cap_fes * sizeof(*s->old_fes));
	s->old_hcs = malloc((cur->n_health_checks + 1) * sizeof(*s->old_hcs));
	if (!s->old_eps || !s->old_fes || !s->old_hcs)
		return -ENOMEM;
	for (size_t k = 0; k < n; k++) {
		size_t need = strlen(svcs[k].ns) + strlen(svcs[k].name) + 3, len;

		if (need > prefix_cap) {
			char *np = realloc(prefix, need);
			if (!np) {
				free(prefix);
				return -ENOMEM;
			}
			prefix = np;
			prefix_cap = need;
		}
		len = (size_t)snprintf(prefix, prefix_cap, "%s/%s:", svcs[k].ns, svcs[k].name);
		for (size_t i = epset_lower_bound(cur, prefix);
		     i < cur->n_epsets && strncmp(cur->epsets[i].key, prefix, len) == 0; i++) {
			size_t lo = s->st->ix_off[i], hi = s->st->ix_off[i + 1];

			if (s->n_old_eps == cap_eps) {
				size_t *a = realloc(s->old_eps, (cap_eps *= 2) * sizeof(*a));
				if (!a)
					goto oom;
				s->old_eps = a;
			}
			s->old_eps[s->n_old_eps++] = i;
			while (s->n_old_fes + (hi - lo) > cap_fes) {
				size_t *a = realloc(s->old_fes, (cap_fes *= 2) * sizeof(*a));
				if (!a)
					goto oom;
				s->old_fes = a;
			}
			for (size_t j = lo; j < hi; j++)
				s->old_fes[s->n_old_fes++] = s->st->ix_fe[j];
		}
	}
	free(prefix);
	qsort(s->old_eps, s->n_old_eps, sizeof(*s->old_eps), cmp_size);
	qsort(s->old_fes, s->n_old_fes, sizeof(*s->old_fes), cmp_size);
	/* Health checks are few: a scan finds the replanned services' ones. */
	for (size_t i = 0; i < cur->n_health_checks; i++)
		if (is_replanned(svcs, n, cur->health_checks[i].ns, cur->health_checks[i].svc_name))
			s->old_hcs[s->n_old_hcs++] = i;
	return 0;
oom:
	free(prefix);
	return -ENOMEM;
}

/* Match old sets against the part's by key, frontends by plan order. */
static int match(struct splice *s)
{
	const struct plan *cur = s->cur, *part = s->part;
	size_t i = 0, j = 0;

	s->eps_removed = malloc((s->n_old_eps + 1) * sizeof(*s->eps_removed));
	s->eps_added = malloc((part->n_epsets + 1) * sizeof(*s->eps_added));
	s->eps_changed = malloc((part->n_epsets + 1) * sizeof(*s->eps_changed));
	s->fes_removed = malloc((s->n_old_fes + 1) * sizeof(*s->fes_removed));
	s->fes_added = malloc((part->n_frontends + 1) * sizeof(*s->fes_added));
	s->fes_changed = malloc((part->n_frontends + 1) * sizeof(*s->fes_changed));
	s->fes_kept = malloc((s->n_old_fes + 1) * sizeof(*s->fes_kept));
	if (!s->eps_removed || !s->eps_added || !s->eps_changed || !s->fes_removed || !s->fes_added ||
	    !s->fes_changed || !s->fes_kept)
		return -ENOMEM;
	while (i < s->n_old_eps || j < part->n_epsets) {
		int c = i == s->n_old_eps ? 1 : j == part->n_epsets ? -1 :
			strcmp(cur->epsets[s->old_eps[i]].key, part->epsets[j].key);
		if (c < 0) {
			s->eps_removed[s->n_eps_removed++] = s->old_eps[i++];
		} else if (c > 0) {
			s->eps_added[s->n_eps_added++] = j++;
		} else {
			if (!plan_epset_equal(&cur->epsets[s->old_eps[i]], &part->epsets[j])) {
				s->eps_changed[s->n_eps_changed][0] = s->old_eps[i];
				s->eps_changed[s->n_eps_changed++][1] = j;
			}
			i++;
			j++;
		}
	}
	i = j = 0;
	while (i < s->n_old_fes || j < part->n_frontends) {
		int c = i == s->n_old_fes ? 1 : j == part->n_frontends ? -1 :
			plan_frontend_cmp(&cur->frontends[s->old_fes[i]], &part->frontends[j]);
		if (c < 0) {
			s->fes_removed[s->n_fes_removed++] = s->old_fes[i++];
		} else if (c > 0) {
			s->fes_added[s->n_fes_added++] = j++;
		} else {
			if (!plan_frontend_equal(&cur->frontends[s->old_fes[i]], &part->frontends[j])) {
				s->fes_changed[s->n_fes_changed][0] = s->old_fes[i];
				s->fes_changed[s->n_fes_changed++][1] = j;
			} else {
				s->fes_kept[s->n_fes_kept++] = s->old_fes[i];
			}
			i++;
			j++;
		}
	}
	return 0;
}

/* Can the part decide every claim it makes? Not when a claim is (or
 * was) shared with another service. */
static bool claims_are_ours(const struct splice *s)
{
	const struct plan *cur = s->cur, *part = s->part;

	for (size_t i = 0; i < s->n_old_fes; i++)
		if (contested(s->st, &cur->frontends[s->old_fes[i]]))
			return false;
	for (size_t j = 0; j < part->n_frontends; j++)
		if (contested(s->st, &part->frontends[j]))
			return false;
	/* A new address must be free, or held by a replanned service. */
	for (size_t k = 0; k < s->n_fes_added; k++) {
		size_t at = frontend_at(cur, &part->frontends[s->fes_added[k]]);
		if (at != SIZE_MAX && !has_index(s->old_fes, s->n_old_fes, at))
			return false;
	}
	for (size_t i = 0; i < s->n_old_hcs; i++)
		if (hc_contested(s->st, cur->health_checks[s->old_hcs[i]].port))
			return false;
	for (size_t j = 0; j < part->n_health_checks; j++) {
		uint16_t port = part->health_checks[j].port;
		bool ours = false;

		if (hc_contested(s->st, port))
			return false;
		for (size_t i = 0; i < cur->n_health_checks && !ours; i++) {
			if (cur->health_checks[i].port != port)
				continue;
			if (!has_index(s->old_hcs, s->n_old_hcs, i))
				return false;
			ours = true;
		}
	}
	return true;
}

/* Move part's set j's content into e (whose key is the same), trashing
 * e's old endpoints. */
static void take_epset(struct splice *s, struct plan_epset *e, struct plan_epset *from)
{
	trash(s->st, e->endpoints);
	e->endpoints = from->endpoints;
	e->n_endpoints = from->n_endpoints;
	from->endpoints = NULL;
	from->n_endpoints = 0;
	/* The port name is part of the key, so e's own copy is equal. */
	e->proto = from->proto;
	e->affinity = from->affinity;
	e->affinity_timeout_s = from->affinity_timeout_s;
	e->balance = from->balance;
	e->health = from->health;
}

/* Point fe's sets at the sets of epsets[0..n) with the keys from's have. */
static void link_sets(struct plan_frontend *fe, const struct plan_frontend *from,
		      const struct plan_epset *epsets, size_t n)
{
	fe->epset = epset_find(epsets, n, from->epset->key);
	fe->short_circuit = from->short_circuit ? epset_find(epsets, n, from->short_circuit->key) : NULL;
}

/* Move part's frontend's settings into fe (same key), trashing fe's old
 * source ranges; sets linked by key into epsets. */
static void take_frontend(struct splice *s, struct plan_frontend *fe, struct plan_frontend *from,
			  const struct plan_epset *epsets, size_t n)
{
	trash(s->st, fe->source_ranges);
	fe->source_ranges = from->source_ranges;
	fe->n_source_ranges = from->n_source_ranges;
	from->source_ranges = NULL;
	from->n_source_ranges = 0;
	fe->masquerade = from->masquerade;
	fe->when_empty = from->when_empty;
	link_sets(fe, from, epsets, n);
}

static int cmp_ptr(const void *a, const void *b)
{
	const void *x = *(const void *const *)a, *y = *(const void *const *)b;

	return (x > y) - (x < y);
}

/* d->fe_touched: kept, unchanged frontends (at new indexes fe_at[]) whose
 * set or short-circuit set changed. */
static void fill_touched(struct plan_diff *d, const struct plan *cur, const size_t *fe_at, size_t n)
{
	if (!d->n_eps_changed)
		return;
	qsort(d->eps_changed, d->n_eps_changed, sizeof(*d->eps_changed), cmp_ptr);
	for (size_t i = 0; i < n; i++) {
		const struct plan_frontend *fe = &cur->frontends[fe_at[i]];
		const void *k = fe->epset, *sc = fe->short_circuit;

		if (bsearch(&k, d->eps_changed, d->n_eps_changed, sizeof(*d->eps_changed), cmp_ptr) ||
		    (sc && bsearch(&sc, d->eps_changed, d->n_eps_changed, sizeof(*d->eps_changed), cmp_ptr)))
			d->fe_touched[d->n_fe_touched++] = fe;
	}
}

static int diff_alloc(struct plan_diff *d, const struct splice *s)
{
	memset(d, 0, sizeof(*d));
	d->fe_added = malloc((s->n_fes_added + 1) * sizeof(*d->fe_added));
	d->fe_removed = malloc((s->n_fes_removed + 1) * sizeof(*d->fe_removed));
	d->fe_changed = malloc((s->n_fes_changed + 1) * sizeof(*d->fe_changed));
	d->fe_touched = malloc((s->n_fes_kept + 1) * sizeof(*d->fe_touched));
	d->eps_added = malloc((s->n_eps_added + 1) * sizeof(*d->eps_added));
	d->eps_removed = malloc((s->n_eps_removed + 1) * sizeof(*d->eps_removed));
	d->eps_changed = malloc((s->n_eps_changed + 1) * sizeof(*d->eps_changed));
	if (!d->fe_added || !d->fe_removed || !d->fe_changed || !d->fe_touched || !d->eps_added ||
	    !d->eps_removed || !d->eps_changed) {
		plan_diff_clear(d);
		return -ENOMEM;
	}
	return 0;
}

/* Health checks: the same ports -> counts updated in place; otherwise a
 * new array (old one trashed). new_hcs was allocated by the caller when
 * the ports differ. */
static void splice_hcs(struct splice *s, struct plan_health_check *new_hcs)
{
	struct plan *cur = s->cur, *part = s->part;
	size_t n = 0;

	if (!new_hcs) {
		for (size_t i = 0; i < s->n_old_hcs; i++) {
			struct plan_health_check *hc = &cur->health_checks[s->old_hcs[i]];
			for (size_t j = 0; j < part->n_health_checks; j++)
				if (part->health_checks[j].port == hc->port) /* same service: hcs_same_ports */
					hc->local_endpoints = part->health_checks[j].local_endpoints;
		}
		return;
	}
	for (size_t i = 0; i < cur->n_health_checks; i++) {
		if (has_index(s->old_hcs, s->n_old_hcs, i))
			trash(s->st, cur->health_checks[i].ns);
		else
			new_hcs[n++] = cur->health_checks[i];
	}
	for (size_t j = 0; j < part->n_health_checks; j++) {
		new_hcs[n++] = part->health_checks[j];
		part->health_checks[j].ns = NULL; /* moved (svc_name shares it) */
	}
	part->n_health_checks = 0;
	/* Ports are distinct (claims_are_ours): order by port. */
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && new_hcs[k - 1].port > new_hcs[k].port; k--) {
			struct plan_health_check t = new_hcs[k];
			new_hcs[k] = new_hcs[k - 1];
			new_hcs[k - 1] = t;
		}
	trash(s->st, cur->health_checks);
	cur->health_checks = new_hcs;
	cur->n_health_checks = n;
}

static bool hcs_same_ports(const struct splice *s)
{
	if (s->n_old_hcs != s->part->n_health_checks)
		return false;
	for (size_t i = 0; i < s->n_old_hcs; i++) {
		const struct plan_health_check *hc = &s->cur->health_checks[s->old_hcs[i]];
		bool found = false;

		/* The same port of the same service (a port may change hands
		 * between two replanned services). */
		for (size_t j = 0; j < s->part->n_health_checks && !found; j++) {
			const struct plan_health_check *nh = &s->part->health_checks[j];
			found = nh->port == hc->port && strcmp(nh->ns, hc->ns) == 0 &&
				strcmp(nh->svc_name, hc->svc_name) == 0;
		}
		if (!found)
			return false;
	}
	return true;
}

/* Endpoint changes only: every key stays, entries change where they are. */
static int splice_in_place(struct splice *s, struct plan_diff *d, struct plan_health_check *new_hcs)
{
	struct plan *cur = s->cur, *part = s->part;
	size_t *kept_at = s->fes_kept;

	for (size_t k = 0; k < s->n_eps_changed; k++) {
		struct plan_epset *e = &cur->epsets[s->eps_changed[k][0]];
		take_epset(s, e, &part->epsets[s->eps_changed[k][1]]);
		d->eps_changed[d->n_eps_changed++] = e;
	}
	for (size_t k = 0; k < s->n_fes_changed; k++) {
		struct plan_frontend *fe = &cur->frontends[s->fes_changed[k][0]];
		take_frontend(s, fe, &part->frontends[s->fes_changed[k][1]], cur->epsets, cur->n_epsets);
		d->fe_changed[d->n_fe_changed++] = fe;
	}
	fill_touched(d, cur, kept_at, s->n_fes_kept);
	splice_hcs(s, new_hcs);
	return 0;
}

/* Keys come or go: new arrays by one merge of the kept old entries with
 * the part's added ones. */
static int splice_rebuild(struct splice *s, struct plan_diff *d, struct plan_health_check *new_hcs)
{
	struct plan *cur = s->cur, *part = s->part;
	size_t n_eps = cur->n_epsets - s->n_eps_removed + s->n_eps_added;
	size_t n_fes = cur->n_frontends - s->n_fes_removed + s->n_fes_added;
	struct plan_epset *old_eps = cur->epsets;
	struct plan_frontend *old_fes = cur->frontends;
	size_t n_old_eps = cur->n_epsets, n_old_fes = cur->n_frontends;
	bool cluster_ips_moved = false;
	struct inet_addr *cips = NULL;
	size_t n_cips = 0, i, j, k, a;

	for (j = 0; j < s->n_fes_removed; j++)
		cluster_ips_moved |= old_fes[s->fes_removed[j]].kind == FRONTEND_CLUSTER_IP;
	for (a = 0; a < s->n_fes_added; a++)
		cluster_ips_moved |= part->frontends[s->fes_added[a]].kind == FRONTEND_CLUSTER_IP;

	struct plan_epset *eps = malloc((n_eps + 1) * sizeof(*eps));
	struct plan_frontend *fes = malloc((n_fes + 1) * sizeof(*fes));
	size_t *eps_at = malloc((n_old_eps + 1) * sizeof(*eps_at)); /* old -> new index */
	size_t *fes_at = malloc((n_old_fes + 1) * sizeof(*fes_at));
	size_t *added_eps_at = malloc((s->n_eps_added + 1) * sizeof(*added_eps_at));
	size_t *added_fes_at = malloc((s->n_fes_added + 1) * sizeof(*added_fes_at));
	if (cluster_ips_moved)
		cips = malloc((n_fes + 1) * sizeof(*cips));
	if (!eps || !fes || !eps_at || !fes_at || !added_eps_at || !added_fes_at ||
	    (cluster_ips_moved && !cips)) {
		free(eps);
		free(fes);
		free(eps_at);
		free(fes_at);
		free(added_eps_at);
		free(added_fes_at);
		free(cips);
		return -ENOMEM;
	}
	/* From here on nothing fails. Sets: old (minus removed) merged with
	 * the added ones, by key. */
	for (i = 0, a = 0, k = 0, j = 0; i < n_old_eps || a < s->n_eps_added;) {
		if (i < n_old_eps && j < s->n_eps_removed && s->eps_removed[j] == i) {
			eps_at[i++] = SIZE_MAX;
			j++;
			continue;
		}
		if (a == s->n_eps_added ||
		    (i < n_old_eps && strcmp(old_eps[i].key, part->epsets[s->eps_added[a]].key) < 0)) {
			eps[k] = old_eps[i];
			eps_at[i++] = k++;
		} else {
			/* Moved: part lets go of it below, once its
			 * frontends no longer need its key. */
			eps[k] = part->epsets[s->eps_added[a]];
			added_eps_at[a++] = k++;
		}
	}
	/* Frontends likewise, in plan order; kept ones follow their sets. */
	for (i = 0, a = 0, k = 0, j = 0; i < n_old_fes || a < s->n_fes_added;) {
		if (i < n_old_fes && j < s->n_fes_removed && s->fes_removed[j] == i) {
			fes_at[i++] = SIZE_MAX;
			j++;
			continue;
		}
		if (a == s->n_fes_added ||
		    (i < n_old_fes && plan_frontend_cmp(&old_fes[i], &part->frontends[s->fes_added[a]]) < 0)) {
			fes[k] = old_fes[i];
			fes[k].epset = &eps[eps_at[old_fes[i].epset - old_eps]];
			if (old_fes[i].short_circuit)
				fes[k].short_circuit = &eps[eps_at[old_fes[i].short_circuit - old_eps]];
			fes_at[i++] = k++;
		} else {
			struct plan_frontend *from = &part->frontends[s->fes_added[a]];
			fes[k] = *from;
			link_sets(&fes[k], from, eps, n_eps);
			from->source_ranges = NULL; /* moved */
			from->n_source_ranges = 0;
			added_fes_at[a++] = k++;
		}
	}
	for (j = 0; j < s->n_eps_removed; j++) {
		struct plan_epset *e = &old_eps[s->eps_removed[j]];
		trash(s->st, e->key);
		trash(s->st, e->endpoints);
		d->eps_removed[d->n_eps_removed++] = e;
	}
	for (j = 0; j < s->n_fes_removed; j++) {
		struct plan_frontend *fe = &old_fes[s->fes_removed[j]];
		trash(s->st, fe->source_ranges);
		d->fe_removed[d->n_fe_removed++] = fe;
	}
	for (a = 0; a < s->n_eps_added; a++)
		d->eps_added[d->n_eps_added++] = &eps[added_eps_at[a]];
	for (a = 0; a < s->n_fes_added; a++)
		d->fe_added[d->n_fe_added++] = &fes[added_fes_at[a]];
	for (k = 0; k < s->n_eps_changed; k++) {
		struct plan_epset *e = &eps[eps_at[s->eps_changed[k][0]]];
		take_epset(s, e, &part->epsets[s->eps_changed[k][1]]);
		d->eps_changed[d->n_eps_changed++] = e;
	}
	for (k = 0; k < s->n_fes_changed; k++) {
		struct plan_frontend *fe = &fes[fes_at[s->fes_changed[k][0]]];
		take_frontend(s, fe, &part->frontends[s->fes_changed[k][1]], eps, n_eps);
		d->fe_changed[d->n_fe_changed++] = fe;
	}
	for (k = 0; k < s->n_fes_kept; k++)
		s->fes_kept[k] = fes_at[s->fes_kept[k]];
	for (a = 0; a < s->n_eps_added; a++) {
		part->epsets[s->eps_added[a]].key = NULL;
		part->epsets[s->eps_added[a]].endpoints = NULL;
	}
	trash(s->st, old_eps);
	trash(s->st, old_fes);
	cur->epsets = eps;
	cur->n_epsets = n_eps;
	cur->frontends = fes;
	cur->n_frontends = n_fes;
	fill_touched(d, cur, s->fes_kept, s->n_fes_kept);
	if (cluster_ips_moved) {
		struct plan was = { .cluster_ips = cur->cluster_ips, .n_cluster_ips = cur->n_cluster_ips };
		struct plan now = { .cluster_ips = cips, .n_cluster_ips = 0 };

		for (i = 0; i < n_fes && fes[i].kind == FRONTEND_CLUSTER_IP; i++)
			if (n_cips == 0 || inet_addr_cmp(&cips[n_cips - 1], &fes[i].addr) != 0)
				cips[n_cips++] = fes[i].addr;
		now.n_cluster_ips = n_cips;
		d->guards_changed = !plan_guards_equal(&was, &now);
		trash(s->st, cur->cluster_ips);
		cur->cluster_ips = cips;
		cur->n_cluster_ips = n_cips;
	}
	splice_hcs(s, new_hcs);
	free(eps_at);
	free(fes_at);
	free(added_eps_at);
	free(added_fes_at);
	return 0;
}

int plan_splice(struct plan *cur, struct plan *part, const struct plan_svc_ref *svcs, size_t n,
		struct plan_splice_state *st, struct plan_diff *d)
{
	struct splice s = { .cur = cur, .part = part, .st = st };
	struct plan_health_check *new_hcs = NULL;
	bool rebuild;
	int r;

	memset(d, 0, sizeof(*d));
	if ((r = collect_old(&s, svcs, n)) < 0 || (r = match(&s)) < 0)
		goto out;
	if (!claims_are_ours(&s)) {
		r = PLAN_SPLICE_REPLAN;
		goto out;
	}
	s.hcs_same_ports = hcs_same_ports(&s);
	rebuild = s.n_eps_added || s.n_eps_removed || s.n_fes_added || s.n_fes_removed;
	if ((r = diff_alloc(d, &s)) < 0)
		goto out;
	/* Trash: per removed set its key and endpoints, per changed set its
	 * endpoints, per removed or changed frontend its ranges, per old
	 * health check its names, and the old arrays. */
	r = trash_reserve(st, 2 * s.n_eps_removed + s.n_eps_changed + s.n_fes_removed + s.n_fes_changed +
				      s.n_old_hcs + 8);
	if (r == 0 && !s.hcs_same_ports) {
		new_hcs = malloc((cur->n_health_checks - s.n_old_hcs + part->n_health_checks + 1) *
				 sizeof(*new_hcs));
		if (!new_hcs)
			r = -ENOMEM;
	}
	if (r == 0)
		r = rebuild ? splice_rebuild(&s, d, new_hcs) : splice_in_place(&s, d, new_hcs);
	if (r < 0) {
		free(new_hcs);
		plan_diff_clear(d);
	}
out:
	splice_done(&s);
	return r;
}
