/* The userspace backend's endpoint pools: one per endpoint set of the
 * plan, kept under the set's key for as long as the plan has it, so that
 * its endpoints (their active counts and health) and its affinity table
 * survive every rebuild. A pool is rebuilt in two steps, staged (all that
 * needs memory, nothing in force) then committed (cannot fail), so that
 * sync and apply can give up before they touch what runs. Also the list of
 * health-checked pools and what the checker is handed from it.
 *
 * Mechanism for userspace.c and userspace_apply.c, which decide what to
 * rebuild: nothing here logs. Control thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"
#include "us_state.h"

const char *us_epset_key(const struct plan_epset *e)
{
	return e->key ? e->key : "";
}

static void pool_data_done(struct us_pool_data *d)
{
	balancer_unref(d->balancer);
	memset(d, 0, sizeof(*d));
}

/* Put p in or out of the list of health-checked pools. */
static void checked_set(struct userspace *u, struct us_pool *p, bool on)
{
	if (on == p->in_checked)
		return;
	if (on) {
		p->checked_prev = NULL;
		p->checked_next = u->checked;
		if (u->checked)
			u->checked->checked_prev = p;
		u->checked = p;
	} else {
		if (p->checked_prev)
			p->checked_prev->checked_next = p->checked_next;
		else
			u->checked = p->checked_next;
		if (p->checked_next)
			p->checked_next->checked_prev = p->checked_prev;
		p->checked_prev = p->checked_next = NULL;
	}
	p->in_checked = on;
}

void us_pool_free(struct userspace *u, struct us_pool *p)
{
	if (!p)
		return;
	/* The whole list ends with the pool: each frontend serves none. */
	for (struct us_frontend *f = p->users, *next; f; f = next) {
		next = f->user_next;
		f->pool = NULL;
		f->user_prev = f->user_next = NULL;
	}
	p->users = NULL;
	for (struct us_frontend *f = p->sc_users, *next; f; f = next) {
		next = f->sc_next;
		f->sc_pool = NULL;
		f->sc_next = NULL;
	}
	p->sc_users = NULL;
	checked_set(u, p, false);
	pool_data_done(&p->d);
	relay_svcport_unref(p->port);
	free(p);
}

/* The index of the first pool whose key is not below key. */
static size_t pools_lower(struct us_pool *const *pools, size_t n, const char *key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(pools[mid]->key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct us_pool *us_pool_find(const struct userspace *u, const char *key)
{
	size_t i = pools_lower(u->pools, u->n_pools, key);

	return i < u->n_pools && strcmp(u->pools[i]->key, key) == 0 ? u->pools[i] : NULL;
}

/* The plan's endpoint order: (addr, port). */
static int ep_cmp(const struct inet_addr *a1, uint16_t p1, const struct inet_addr *a2, uint16_t p2)
{
	int c = inet_addr_cmp(a1, a2);

	if (c)
		return c;
	return (p1 > p2) - (p1 < p2);
}

static bool eps_sorted(const struct balancer *b)
{
	for (size_t i = 1; i < b->n_eps; i++) {
		const struct balancer_endpoint *x = balancer_ep(b, i - 1), *y = balancer_ep(b, i);

		if (ep_cmp(&x->addr, x->port, &y->addr, y->port) >= 0)
			return false;
	}
	return true;
}

/* The endpoint addr:port of old, or NULL. sorted: old's endpoints are in
 * (addr, port) order (as the plan gives them), so they can be bisected. */
static struct balancer_endpoint *pool_data_find(const struct us_pool_data *old, bool sorted,
						const struct inet_addr *addr, uint16_t port)
{
	const struct balancer *b = old->balancer;
	size_t lo = 0, hi = b->n_eps;

	if (!sorted) {
		for (size_t k = 0; k < b->n_eps; k++)
			if (ep_cmp(&balancer_ep(b, k)->addr, balancer_ep(b, k)->port, addr, port) == 0)
				return balancer_ep(b, k);
		return NULL;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct balancer_endpoint *ep = balancer_ep(b, mid);
		int c = ep_cmp(&ep->addr, ep->port, addr, port);

		if (c == 0)
			return ep;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Build the contents of e into d, reusing endpoints (and their state) and
 * the affinity table of old when there is one. O(n log m) for n new and m
 * old endpoints. 0 or -ENOMEM (d is then cleared). */
static int pool_build(struct userspace *u, struct us_pool_data *d, const struct plan_epset *e,
		      const struct us_pool_data *old)
{
	bool sorted = old && eps_sorted(old->balancer);
	struct balancer_endpoint *fresh = NULL, *fresh_end = NULL, **eps;
	struct balancer_affinity *affinity = NULL;
	size_t n_new = 0, n = 0;

	memset(d, 0, sizeof(*d));
	d->health = e->health;
	/* The list is gathered in u's scratch array, not an allocation of its
	 * own: one per set, freed as soon as the balancer has its copy, would
	 * leave a hole between every two sets' lasting allocations. */
	if (e->n_endpoints > u->scratch_cap) {
		size_t cap = e->n_endpoints < 64 ? 64 : e->n_endpoints;

		eps = realloc(u->scratch, cap * sizeof(*eps));
		if (!eps)
			return -ENOMEM;
		u->scratch = eps;
		u->scratch_cap = cap;
	}
	eps = u->scratch;
	/* The endpoints old has (their state carried over), then one block
	 * for all the new ones (more past BALANCER_BLOCK_MAX). */
	for (size_t i = 0; i < e->n_endpoints; i++) {
		const struct plan_endpoint *pe = &e->endpoints[i];

		eps[i] = old ? pool_data_find(old, sorted, &pe->addr, pe->port) : NULL;
		n_new += !eps[i];
	}
	for (; n < e->n_endpoints; n++) {
		const struct plan_endpoint *pe = &e->endpoints[n];

		if (eps[n]) {
			balancer_endpoint_ref(eps[n]);
		} else {
			if (fresh == fresh_end) {
				size_t k = n_new < BALANCER_BLOCK_MAX ? n_new : BALANCER_BLOCK_MAX;

				/* Every endpoint of the blocks before is listed
				 * in eps[0..n), which nomem unrefs. A set that
				 * is all new gets its balancer in the block. */
				fresh = k == e->n_endpoints ? balancer_endpoints_new_set(k)
							    : balancer_endpoints_new(k);
				if (!fresh)
					goto nomem;
				fresh_end = fresh + k;
				n_new -= k;
			}
			eps[n] = fresh++;
			eps[n]->addr = pe->addr;
			eps[n]->port = pe->port;
		}
	}
	if (e->affinity) {
		uint32_t t = e->affinity_timeout_s; /* set whenever affinity is (plan-t.h) */
		struct balancer_affinity *oa = old ? old->balancer->affinity : NULL;

		if (oa && balancer_affinity_timeout(oa) == t)
			affinity = balancer_affinity_ref(oa);
		else
			affinity = balancer_affinity_new(t);
		if (!affinity)
			goto nomem;
	}
	/* The balancer takes its own references, on the endpoints (its array,
	 * in the plan's order, is the pool's) and on the affinity table. */
	d->balancer = balancer_new(e->balance, eps, n, affinity);
	if (!d->balancer)
		goto nomem;
	for (size_t i = 0; i < n; i++)
		balancer_endpoint_unref(eps[i]);
	balancer_affinity_unref(affinity);
	u->stats.pools_built++;
	return 0;
nomem:
	for (size_t i = 0; i < n; i++)
		balancer_endpoint_unref(eps[i]);
	balancer_affinity_unref(affinity);
	pool_data_done(d);
	return -ENOMEM;
}

void us_staged_discard(struct us_staged *st)
{
	pool_data_done(&st->d);
	if (st->is_new && st->pool) {
		relay_svcport_unref(st->pool->port);
		free(st->pool);
	}
	st->pool = NULL;
}

int us_staged_build(struct userspace *u, struct us_staged *st, const struct plan_epset *e)
{
	int r;

	st->pool = us_pool_find(u, us_epset_key(e));
	st->is_new = !st->pool;
	if (st->is_new) {
		const char *key = us_epset_key(e);
		size_t len = strlen(key);

		st->pool = calloc(1, sizeof(*st->pool) + len + 1);
		if (!st->pool)
			return -ENOMEM;
		memcpy(st->pool->key, key, len + 1);
		/* The identity of a key's set never changes: its service port
		 * is made once, with the pool. */
		st->pool->port = relay_svcport_new(e->ns, e->svc_name, e->port_name, e->proto);
		if (!st->pool->port) {
			free(st->pool);
			st->pool = NULL;
			return -ENOMEM;
		}
	}
	r = pool_build(u, &st->d, e, st->is_new ? NULL : &st->pool->d);
	if (r < 0)
		us_staged_discard(st);
	return r;
}

bool us_staged_commit(struct userspace *u, struct us_staged *st)
{
	struct us_pool *p = st->pool;
	bool was = p->d.health.enabled, now = st->d.health.enabled;

	pool_data_done(&p->d);
	p->d = st->d;
	memset(&st->d, 0, sizeof(st->d));
	checked_set(u, p, now);
	if (was && !now)
		for (size_t k = 0; k < p->d.balancer->n_eps; k++)
			balancer_endpoint_set_healthy(balancer_ep(p->d.balancer, k), true);
	return was || now;
}

int us_health_update(struct userspace *u)
{
	struct health_target *t;
	size_t n = 0, cap = 0;
	int r;

	for (struct us_pool *p = u->checked; p; p = p->checked_next)
		cap += p->d.balancer->n_eps;
	t = calloc(cap ? cap : 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (struct us_pool *p = u->checked; p; p = p->checked_next) {
		for (size_t k = 0; k < p->d.balancer->n_eps; k++) {
			t[n].ep = balancer_ep(p->d.balancer, k);
			t[n].cfg = p->d.health;
			t[n].label = p->port->label;
			n++;
		}
	}
	r = health_set_targets(u->health, t, n);
	free(t);
	if (r == 0)
		u->stats.health_updates++;
	return r;
}

bool us_pools_sorted(struct us_pool *const *pools, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (strcmp(pools[i - 1]->key, pools[i]->key) >= 0)
			return false;
	return true;
}
