/* The userspace backend's apply: a plan diff applied on its own, work
 * proportional to the diff (see the top of us_state.h for the indexing it
 * relies on). Stages everything that can fail first; on any failure the
 * state is left as it was and the core falls back to sync.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sorted_diff.h"
#include "us_state.h"

/* ---- apply: the diff only ---- */

/* A listener key apply looks at again, and what it found to do there. */
struct us_touch {
	struct us_key k;
	size_t idx;                     /* lower bound of k in u->fes */
	struct us_frontend *cur;        /* open under k now, or NULL */
	struct us_pool *pool;           /* the set the plan's owner of k serves */
	struct us_pool *sc;             /* its short-circuit set; NULL: none */
	struct relay_service *svc;      /* reference; NULL: k goes (or never was) */
};

static int touch_cmp(const void *x, const void *y)
{
	const struct us_touch *a = x, *b = y;

	return us_key_cmp(&a->k, &b->k);
}

static void touches_free(struct us_touch *touch, size_t n)
{
	for (size_t i = 0; touch && i < n; i++)
		relay_service_unref(touch[i].svc);
	free(touch);
}

/* qsort order of staged pools: by key. */
static int staged_cmp(const void *x, const void *y)
{
	const struct us_staged *a = x, *b = y;

	return strcmp(a->pool->key, b->pool->key);
}

/* The staged pool under key in staged[0..n) (sorted by key), or NULL. */
static struct us_staged *staged_find(struct us_staged *staged, size_t n, const char *key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(staged[mid].pool->key, key);

		if (c == 0)
			return &staged[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Remove SCTP frontend f from the warned-about list. */
static void skipped_forget(struct userspace *u, const struct plan_frontend *f)
{
	for (size_t i = 0; i < u->n_skipped; i++) {
		if (u->skipped[i].port == f->port && inet_addr_cmp(&u->skipped[i].addr, &f->addr) == 0) {
			u->skipped[i] = u->skipped[--u->n_skipped];
			return;
		}
	}
}

/* The listener keys the diff concerns: frontends it adds, removes or
 * changes, and the open frontends of every set it changes or removes (their
 * snapshot holds the set's balancer, as the one it serves or as its
 * short-circuit set). Sorted, without duplicates, each with
 * what is open there now. Counts the SCTP frontends added into *n_sctp.
 * 0 or -ENOMEM. */
static int touches_collect(struct userspace *u, const struct plan_diff *diff,
			   const struct us_staged *staged, size_t n_staged,
			   struct us_pool *const *doomed, size_t n_doomed,
			   struct us_touch **ret, size_t *ret_n, size_t *n_sctp)
{
	const struct plan_frontend *const *lists[3] = { diff->fe_added, diff->fe_removed, diff->fe_changed };
	size_t lens[3] = { diff->n_fe_added, diff->n_fe_removed, diff->n_fe_changed };
	size_t cap = lens[0] + lens[1] + lens[2], n = 0, out = 0;
	struct us_touch *touch;

	for (size_t i = 0; i < n_staged; i++) {
		for (const struct us_frontend *f = staged[i].is_new ? NULL : staged[i].pool->users; f;
		     f = f->user_next)
			cap++;
		for (const struct us_frontend *f = staged[i].is_new ? NULL : staged[i].pool->sc_users; f;
		     f = f->sc_next)
			cap++;
	}
	for (size_t i = 0; i < n_doomed; i++) {
		for (const struct us_frontend *f = doomed[i]->users; f; f = f->user_next)
			cap++;
		for (const struct us_frontend *f = doomed[i]->sc_users; f; f = f->sc_next)
			cap++;
	}
	touch = calloc(cap + 1, sizeof(*touch));
	if (!touch)
		return -ENOMEM;
	*n_sctp = 0;
	for (size_t l = 0; l < 3; l++) {
		for (size_t i = 0; i < lens[l]; i++) {
			if (lists[l][i]->proto == INET_PROTO_SCTP) {
				*n_sctp += l == 0;
				continue;
			}
			touch[n++].k = us_key_of(lists[l][i]);
		}
	}
	for (size_t i = 0; i < n_staged + n_doomed; i++) {
		const struct us_pool *p = i < n_staged ? (staged[i].is_new ? NULL : staged[i].pool)
						       : doomed[i - n_staged];

		for (const struct us_frontend *f = p ? p->users : NULL; f; f = f->user_next)
			touch[n++].k = us_frontend_key(f);
		for (const struct us_frontend *f = p ? p->sc_users : NULL; f; f = f->sc_next)
			touch[n++].k = us_frontend_key(f);
	}
	if (n > 0)
		qsort(touch, n, sizeof(*touch), touch_cmp);
	for (size_t i = 0; i < n; i++) {
		struct us_touch *t;

		if (out > 0 && us_key_cmp(&touch[out - 1].k, &touch[i].k) == 0)
			continue;
		t = &touch[out++];
		*t = touch[i];
		t->cur = us_fes_find(u, &t->k, &t->idx);
	}
	*ret = touch;
	*ret_n = out;
	return 0;
}

/* The pool of plan set e as it will be after this apply, and its contents
 * (staged new ones, or the kept ones) in *ret_d. 0, or -ESTALE when e is
 * neither in the diff nor kept (the diff does not lead from the synced
 * plan: the core then syncs). */
static int set_pool(struct userspace *u, const struct plan_epset *e, struct us_staged *staged,
		    size_t n_staged, struct us_pool **ret, const struct us_pool_data **ret_d)
{
	struct us_staged *st = staged_find(staged, n_staged, us_epset_key(e));

	if (st) {
		*ret = st->pool;
		*ret_d = &st->d;
		return 0;
	}
	*ret = us_pool_find(u, us_epset_key(e));
	if (!*ret || (*ret)->doomed)
		return log_warn_errno(-ESTALE, "userspace: endpoint set %s is not known; "
				      "the update does not follow the last sync", us_epset_key(e));
	*ret_d = &(*ret)->d;
	return 0;
}

/* Decide what t's key gets from plan: a snapshot of its owner's policy over
 * its set's (and short-circuit set's) new contents (staged) or kept ones,
 * or nothing (it goes). 0, -ENOMEM or -ESTALE (set_pool). */
static int touch_plan(struct userspace *u, const struct plan *plan, struct us_touch *t,
		      struct us_staged *staged, size_t n_staged)
{
	const struct plan_frontend *f = us_plan_fe_owner(plan, &t->k);
	const struct us_pool_data *d = NULL, *scd = NULL;
	int r;

	t->pool = t->sc = NULL;
	if (!f)
		return 0;
	if (f->epset && f->epset->proto != INET_PROTO_SCTP) {
		r = set_pool(u, f->epset, staged, n_staged, &t->pool, &d);
		if (r < 0)
			return r;
	}
	if (f->short_circuit && f->short_circuit->proto != INET_PROTO_SCTP) {
		r = set_pool(u, f->short_circuit, staged, n_staged, &t->sc, &scd);
		if (r < 0)
			return r;
	}
	t->svc = us_service_new(u, t->pool, d, scd, f);
	return t->svc ? 0 : -ENOMEM;
}

/* pools_merge's walk: the kept pools (old side, unless doomed) and the new
 * staged ones, in key order, into the array being built. */
struct pools_out {
	struct us_pool **v;
	size_t n;
};

static int pools_cmp(const void *old, const void *staged, void *ctx)
{
	(void)ctx;
	return strcmp((*(struct us_pool *const *)old)->key, ((const struct us_staged *)staged)->pool->key);
}

static int pools_keep(const void *old, void *ctx)
{
	struct pools_out *o = ctx;
	struct us_pool *p = *(struct us_pool *const *)old;

	if (!p->doomed)
		o->v[o->n++] = p;
	return 0;
}

static int pools_kept(const void *old, const void *staged, void *ctx)
{
	(void)staged; /* a changed set keeps its pool, rebuilt in place */
	return pools_keep(old, ctx);
}

static int pools_add(const void *staged, void *ctx)
{
	struct pools_out *o = ctx;

	o->v[o->n++] = ((const struct us_staged *)staged)->pool;
	return 0;
}

static const struct sorted_diff_ops pools_merge_ops = {
	.cmp = pools_cmp, .removed = pools_keep, .added = pools_add, .kept = pools_kept,
};

/* Rewrite u->pools without the doomed pools and with the new staged ones
 * (both sorted by key) into pools, which has room for them. */
static void pools_merge(struct userspace *u, struct us_pool **pools, const struct us_staged *staged,
			size_t n_staged)
{
	struct pools_out o = { .v = pools };

	sorted_diff(u->pools, u->n_pools, sizeof(*u->pools), staged, n_staged, sizeof(*staged), &pools_merge_ops, &o);
	free(u->pools);
	u->pools = pools;
	u->n_pools = o.n;
}

/* apply slot: diff leads from the plan of the last successful sync or apply
 * to plan (the runner syncs after any failure, so the state is that plan's).
 * Phase 1 builds everything that needs memory (new pool contents, the
 * snapshots, room in the arrays) and touches nothing; phase 2 puts it in
 * force. Errors as for sync; the runner then falls back to a full sync. */
int us_apply(void *priv, const struct plan *plan, const struct plan_diff *diff)
{
	struct userspace *u = priv;
	size_t n_sets = diff->n_eps_changed + diff->n_eps_added;
	struct us_staged *staged = NULL;
	struct us_pool **doomed = NULL, **pools = NULL;
	struct us_touch *touch = NULL;
	struct us_frontend **fes = NULL;
	size_t n_staged = 0, n_new = 0, n_doomed = 0, n_touch = 0, n_open = 0, n_close = 0;
	size_t n_sctp = 0, i;
	struct us_result res = { 0 };
	bool health = false;
	double t0 = us_now_ms();
	int r = -ENOMEM;

	if (!u->ready)
		return -EINVAL;
	u->stats.applies++;

	/* 1. Everything that can fail, before touching what runs: the new
	 *    contents of the sets the diff adds or changes, ... */
	staged = calloc(n_sets + 1, sizeof(*staged));
	doomed = calloc(diff->n_eps_removed + 1, sizeof(*doomed));
	if (!staged || !doomed)
		goto fail;
	for (i = 0; i < n_sets; i++) {
		const struct plan_epset *e = i < diff->n_eps_changed ? diff->eps_changed[i]
								     : diff->eps_added[i - diff->n_eps_changed];

		if (e->proto == INET_PROTO_SCTP)
			continue;
		r = us_staged_build(u, &staged[n_staged], e);
		if (r < 0)
			goto fail;
		n_new += staged[n_staged++].is_new;
	}
	if (n_staged > 0)
		qsort(staged, n_staged, sizeof(*staged), staged_cmp);
	for (i = 1; i < n_staged; i++) {
		if (strcmp(staged[i - 1].pool->key, staged[i].pool->key) == 0) {
			r = log_warn_errno(-EINVAL, "userspace: endpoint set %s is in the update twice",
					   staged[i].pool->key);
			goto fail;
		}
	}
	/*    ... the sets it removes, ... */
	for (i = 0; i < diff->n_eps_removed; i++) {
		const char *key = us_epset_key(diff->eps_removed[i]);
		struct us_pool *p = us_pool_find(u, key);

		if (p && !p->doomed && !staged_find(staged, n_staged, key)) {
			p->doomed = true;
			doomed[n_doomed++] = p;
		}
	}
	/*    ... the listener keys to look at again and what each gets, ... */
	r = touches_collect(u, diff, staged, n_staged, doomed, n_doomed, &touch, &n_touch, &n_sctp);
	if (r < 0)
		goto fail;
	for (i = 0; i < n_touch; i++) {
		r = touch_plan(u, plan, &touch[i], staged, n_staged);
		if (r < 0)
			goto fail;
		n_open += touch[i].svc && !touch[i].cur;
		n_close += !touch[i].svc && touch[i].cur;
	}
	/*    ... and room in the arrays that grow. */
	r = -ENOMEM;
	if (n_open || n_close) {
		fes = malloc((u->n_fes + n_open + 1) * sizeof(*fes));
		if (!fes)
			goto fail;
	}
	if (n_new || n_doomed) {
		pools = malloc((u->n_pools + n_new + 1) * sizeof(*pools));
		if (!pools)
			goto fail;
	}
	if (n_sctp) {
		struct us_skipped *s = realloc(u->skipped, (u->n_skipped + n_sctp) * sizeof(*s));

		if (!s)
			goto fail;
		u->skipped = s;
	}

	/* 2. The pools: changed ones in place, new ones in. */
	for (i = 0; i < n_staged; i++)
		health |= us_staged_commit(u, &staged[i]);
	for (i = 0; i < n_doomed; i++)
		health |= doomed[i]->d.health.enabled;
	if (pools) {
		pools_merge(u, pools, staged, n_staged);
		pools = NULL;
	}

	/* 3. The frontends, in key order: u->fes is rewritten (runs between
	 *    touched keys copied) only when one opens or closes. */
	if (fes) {
		size_t k = 0, n = 0;

		for (i = 0; i < n_touch; i++) {
			struct us_touch *t = &touch[i];

			memcpy(fes + n, u->fes + k, (t->idx - k) * sizeof(*fes));
			n += t->idx - k;
			k = t->idx;
			if (t->cur) {
				k++;
				if (t->svc)
					us_frontend_update(u, t->cur, t->pool, t->sc, t->svc, &res);
				if (t->svc || !us_frontend_close(u, t->cur, &res))
					fes[n++] = t->cur;
			} else if (t->svc) {
				struct us_frontend *nf = us_frontend_create(u, &t->k, t->pool, t->sc, t->svc,
									    &res);

				if (nf)
					fes[n++] = nf;
			}
		}
		memcpy(fes + n, u->fes + k, (u->n_fes - k) * sizeof(*fes));
		n += u->n_fes - k;
		free(u->fes);
		u->fes = fes;
		u->n_fes = n;
		fes = NULL;
	} else {
		for (i = 0; i < n_touch; i++)
			if (touch[i].cur && touch[i].svc)
				us_frontend_update(u, touch[i].cur, touch[i].pool, touch[i].sc,
						   touch[i].svc, &res);
	}

	/* 4. Removed sets go; SCTP frontends are noted or forgotten. */
	for (i = 0; i < n_doomed; i++)
		us_pool_free(u, doomed[i]);
	for (i = 0; i < diff->n_fe_removed; i++)
		if (diff->fe_removed[i]->proto == INET_PROTO_SCTP)
			skipped_forget(u, diff->fe_removed[i]);
	for (i = 0; i < diff->n_fe_added; i++)
		if (diff->fe_added[i]->proto == INET_PROTO_SCTP)
			us_note_skipped(u, diff->fe_added[i], u->skipped, &u->n_skipped);

	/* 5. The checker only when a checked set changed; the redirects only
	 *    when an intercepted frontend came or went, or the guards of the
	 *    service range changed. */
	us_settle(u, plan, health, res.relays_changed || diff->guards_changed, &res);
	touches_free(touch, n_touch);
	free(staged);
	free(doomed);
	log_debug("userspace: update: %zu sets rebuilt, %zu removed, %zu frontends looked at "
		  "(%zu to open, %zu to close) in %.3f ms", n_staged, n_doomed, n_touch, n_open, n_close,
		  us_now_ms() - t0);
	return res.err;
fail:
	for (i = 0; i < n_staged; i++)
		us_staged_discard(&staged[i]);
	for (i = 0; i < n_doomed; i++)
		doomed[i]->doomed = false;
	touches_free(touch, n_touch);
	free(staged);
	free(doomed);
	free(pools);
	free(fes);
	return log_warn_errno(r, "userspace: update failed, previous state kept");
}

