/* Plans as values: free, order, compare, diff (see plan.h). */
#include "plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sorted_diff.h"

void plan_epset_done(struct plan_epset *e)
{
	/* ns, svc_name and port_name live in the key's allocation. */
	free(e->key);
	free(e->endpoints);
}

struct plan *plan_free(struct plan *plan)
{
	if (!plan)
		return NULL;
	for (size_t i = 0; i < plan->n_frontends; i++)
		free(plan->frontends[i].source_ranges);
	for (size_t i = 0; i < plan->n_epsets; i++)
		plan_epset_done(&plan->epsets[i]);
	for (size_t i = 0; i < plan->n_health_checks; i++)
		free(plan->health_checks[i].ns); /* svc_name shares the allocation */
	free(plan->cluster_ips);
	free(plan->service_cidrs);
	free(plan->frontends);
	free(plan->epsets);
	free(plan->health_checks);
	free(plan);
	return NULL;
}

void plan_diff_clear(struct plan_diff *d)
{
	free(d->fe_added);
	free(d->fe_removed);
	free(d->fe_changed);
	free(d->eps_added);
	free(d->eps_removed);
	free(d->eps_changed);
	free(d->fe_touched);
	memset(d, 0, sizeof(*d));
}


int plan_endpoint_cmp(const void *a, const void *b)
{
	const struct plan_endpoint *x = a, *y = b;
	int c = inet_addr_cmp(&x->addr, &y->addr);

	if (c)
		return c;
	return (x->port > y->port) - (x->port < y->port);
}


int plan_frontend_addr_cmp(const struct plan_frontend *x, const struct plan_frontend *y)
{
	int c = inet_addr_cmp(&x->addr, &y->addr);

	if (c)
		return c;
	if (x->proto != y->proto)
		return x->proto < y->proto ? -1 : 1;
	return (x->port > y->port) - (x->port < y->port);
}

/* The plan's frontend order: (kind, addr, proto, port). */
int plan_frontend_cmp(const struct plan_frontend *x, const struct plan_frontend *y)
{
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return plan_frontend_addr_cmp(x, y);
}


bool plan_frontend_equal(const struct plan_frontend *x, const struct plan_frontend *y)
{
	if (!x->short_circuit != !y->short_circuit ||
	    (x->short_circuit && strcmp(x->short_circuit->key, y->short_circuit->key) != 0))
		return false;
	if (strcmp(x->epset->key, y->epset->key) != 0 || x->masquerade != y->masquerade ||
	    x->when_empty != y->when_empty || x->n_source_ranges != y->n_source_ranges)
		return false;
	for (size_t i = 0; i < x->n_source_ranges; i++) {
		const struct inet_prefix *a = &x->source_ranges[i], *c = &y->source_ranges[i];
		if (a->len != c->len || inet_addr_cmp(&a->addr, &c->addr) != 0)
			return false;
	}
	return true;
}

static bool health_equal(const struct health_check_cfg *a, const struct health_check_cfg *b)
{
	return a->enabled == b->enabled && a->interval_ms == b->interval_ms &&
	       a->timeout_ms == b->timeout_ms && a->rise == b->rise && a->fall == b->fall;
}

bool plan_epset_equal(const struct plan_epset *x, const struct plan_epset *y)
{
	if (x->n_endpoints != y->n_endpoints || x->affinity != y->affinity ||
	    x->affinity_timeout_s != y->affinity_timeout_s || x->balance != y->balance ||
	    x->proto != y->proto || strcmp(x->port_name, y->port_name) != 0 ||
	    !health_equal(&x->health, &y->health))
		return false;
	for (size_t i = 0; i < x->n_endpoints; i++) {
		const struct plan_endpoint *a = &x->endpoints[i], *c = &y->endpoints[i];
		if (plan_endpoint_cmp(a, c) != 0 || a->terminating != c->terminating || a->local != c->local ||
		    a->node_unknown != c->node_unknown)
			return false;
	}
	return true;
}

static int fe_diff_cmp(const void *x, const void *y, void *ctx)
{
	(void)ctx;
	return plan_frontend_cmp(x, y);
}

static int fe_diff_removed(const void *x, void *ctx)
{
	struct plan_diff *d = ctx;

	d->fe_removed[d->n_fe_removed++] = x;
	return 0;
}

static int fe_diff_added(const void *y, void *ctx)
{
	struct plan_diff *d = ctx;

	d->fe_added[d->n_fe_added++] = y;
	return 0;
}

static int fe_diff_kept(const void *x, const void *y, void *ctx)
{
	struct plan_diff *d = ctx;

	if (!plan_frontend_equal(x, y))
		d->fe_changed[d->n_fe_changed++] = y;
	return 0;
}

static const struct sorted_diff_ops fe_diff_ops = {
	.cmp = fe_diff_cmp, .removed = fe_diff_removed, .added = fe_diff_added, .kept = fe_diff_kept,
};

static int eps_diff_cmp(const void *x, const void *y, void *ctx)
{
	(void)ctx;
	return strcmp(((const struct plan_epset *)x)->key, ((const struct plan_epset *)y)->key);
}

static int eps_diff_removed(const void *x, void *ctx)
{
	struct plan_diff *d = ctx;

	d->eps_removed[d->n_eps_removed++] = x;
	return 0;
}

static int eps_diff_added(const void *y, void *ctx)
{
	struct plan_diff *d = ctx;

	d->eps_added[d->n_eps_added++] = y;
	return 0;
}

static int eps_diff_kept(const void *x, const void *y, void *ctx)
{
	struct plan_diff *d = ctx;

	if (!plan_epset_equal(x, y))
		d->eps_changed[d->n_eps_changed++] = y;
	return 0;
}

static const struct sorted_diff_ops eps_diff_ops = {
	.cmp = eps_diff_cmp, .removed = eps_diff_removed, .added = eps_diff_added, .kept = eps_diff_kept,
};

static int cmp_ptr(const void *a, const void *b)
{
	const void *x = *(const void *const *)a, *y = *(const void *const *)b;

	return (x > y) - (x < y);
}

/* d->fe_touched by one pass over the plan's frontends. */
static int plan_diff_touch_all(const struct plan *plan, struct plan_diff *d)
{
	const struct plan_epset **eps;
	bool *listed;

	if (!d->n_eps_changed)
		return 0;
	eps = malloc(d->n_eps_changed * sizeof(*eps));
	listed = calloc(plan->n_frontends + 1, sizeof(*listed));
	d->fe_touched = malloc((plan->n_frontends + 1) * sizeof(*d->fe_touched));
	if (!eps || !listed || !d->fe_touched) {
		free(eps);
		free(listed);
		plan_diff_clear(d);
		return -ENOMEM;
	}
	memcpy(eps, d->eps_changed, d->n_eps_changed * sizeof(*eps));
	qsort(eps, d->n_eps_changed, sizeof(*eps), cmp_ptr);
	for (size_t i = 0; i < d->n_fe_added; i++)
		listed[d->fe_added[i] - plan->frontends] = true;
	for (size_t i = 0; i < d->n_fe_changed; i++)
		listed[d->fe_changed[i] - plan->frontends] = true;
	for (size_t i = 0; i < plan->n_frontends; i++) {
		const void *key = plan->frontends[i].epset, *sc = plan->frontends[i].short_circuit;

		if (listed[i])
			continue;
		if (bsearch(&key, eps, d->n_eps_changed, sizeof(*eps), cmp_ptr) ||
		    (sc && bsearch(&sc, eps, d->n_eps_changed, sizeof(*eps), cmp_ptr)))
			d->fe_touched[d->n_fe_touched++] = &plan->frontends[i];
	}
	free(eps);
	free(listed);
	return 0;
}

int plan_diff_whole(const struct plan *old, const struct plan *new, struct plan_diff *d)
{
	size_t nf = old->n_frontends + new->n_frontends + 1;
	size_t ne = old->n_epsets + new->n_epsets + 1;

	memset(d, 0, sizeof(*d));
	/* Worst-case sizes: an array per category costs less than two passes. */
	d->fe_added = malloc(nf * sizeof(*d->fe_added));
	d->fe_removed = malloc(nf * sizeof(*d->fe_removed));
	d->fe_changed = malloc(nf * sizeof(*d->fe_changed));
	d->eps_added = malloc(ne * sizeof(*d->eps_added));
	d->eps_removed = malloc(ne * sizeof(*d->eps_removed));
	d->eps_changed = malloc(ne * sizeof(*d->eps_changed));
	if (!d->fe_added || !d->fe_removed || !d->fe_changed || !d->eps_added ||
	    !d->eps_removed || !d->eps_changed) {
		plan_diff_clear(d);
		return -ENOMEM;
	}
	sorted_diff(old->frontends, old->n_frontends, sizeof(*old->frontends), new->frontends, new->n_frontends,
		    sizeof(*new->frontends), &fe_diff_ops, d);
	sorted_diff(old->epsets, old->n_epsets, sizeof(*old->epsets), new->epsets, new->n_epsets,
		    sizeof(*new->epsets), &eps_diff_ops, d);
	d->guards_changed = !plan_guards_equal(old, new);
	return plan_diff_touch_all(new, d);
}

int plan_prefix_cmp(const void *a, const void *b)
{
	const struct inet_prefix *x = a, *y = b;
	int c = inet_addr_cmp(&x->addr, &y->addr);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

bool plan_guards_equal(const struct plan *a, const struct plan *b)
{
	if (a->n_cluster_ips != b->n_cluster_ips || a->n_service_cidrs != b->n_service_cidrs)
		return false;
	for (size_t i = 0; i < a->n_cluster_ips; i++)
		if (inet_addr_cmp(&a->cluster_ips[i], &b->cluster_ips[i]) != 0)
			return false;
	for (size_t i = 0; i < a->n_service_cidrs; i++)
		if (plan_prefix_cmp(&a->service_cidrs[i], &b->service_cidrs[i]) != 0)
			return false;
	return true;
}
