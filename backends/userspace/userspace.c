/* The userspace backend's ops table, its init and fini, and sync: the
 * full reconciliation of the state with a plan, the reference apply
 * (userspace_apply.c) must agree with and the core's way out of any error.
 * sync rebuilds every pool (userspace_pools.c) and every snapshot, and
 * merges the open frontends (userspace_frontends.c) with the plan's; the
 * state and how it is indexed: us_state.h.
 *
 * All of this runs on the control thread; the workers only ever see
 * refcounted snapshots (relay.h), so a sync never stops traffic.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "us_state.h"

double us_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- sync: the whole plan ---- */

static int pool_ptr_cmp(const void *x, const void *y)
{
	const struct us_pool *a = *(const struct us_pool *const *)x;
	const struct us_pool *b = *(const struct us_pool *const *)y;

	return strcmp(a->key, b->key);
}

/* A frontend the plan asks for, while a sync is being worked out. */
struct us_wanted {
	struct us_key k;
	size_t order;                   /* index in the plan: on a tie the first wins */
	struct us_pool *pool;           /* the set it serves; NULL: none */
	struct us_pool *sc;             /* its short-circuit set; NULL: none */
	struct relay_service *svc;      /* reference */
};

static int wanted_qsort_cmp(const void *x, const void *y)
{
	const struct us_wanted *a = x, *b = y;
	int c = us_key_cmp(&a->k, &b->k);

	if (c)
		return c;
	return (a->order > b->order) - (a->order < b->order);
}

static void wanted_free(struct us_wanted *wanted, size_t n)
{
	for (size_t i = 0; i < n; i++)
		relay_service_unref(wanted[i].svc);
	free(wanted);
}

/* Build the per-frontend wish list (sorted, deduplicated) over the staged
 * pools (staged[i] is plan->epsets[i]'s; no pool for SCTP sets). 0 or
 * -ENOMEM. */
static int plan_wanted(struct userspace *u, const struct plan *plan, const struct us_staged *staged,
		       struct us_wanted **ret, size_t *ret_n, struct us_skipped *skipped,
		       size_t *n_skipped)
{
	struct us_wanted *wanted = NULL;
	size_t n = 0, out = 0;

	if (plan->n_frontends > 0) {
		wanted = calloc(plan->n_frontends, sizeof(*wanted));
		if (!wanted)
			return -ENOMEM;
	}
	for (size_t i = 0; i < plan->n_frontends; i++) {
		const struct plan_frontend *f = &plan->frontends[i];
		const struct us_pool_data *d = NULL, *scd = NULL;
		struct us_pool *pool = NULL, *sc = NULL;

		if (f->proto == INET_PROTO_SCTP) {
			us_note_skipped(u, f, skipped, n_skipped);
			continue;
		}
		if (f->epset) {
			size_t idx = (size_t)(f->epset - plan->epsets);

			if (idx < plan->n_epsets && staged[idx].pool) {
				pool = staged[idx].pool;
				d = &staged[idx].d;
			}
		}
		if (f->short_circuit) {
			size_t idx = (size_t)(f->short_circuit - plan->epsets);

			if (idx < plan->n_epsets && staged[idx].pool) {
				sc = staged[idx].pool;
				scd = &staged[idx].d;
			}
		}
		wanted[n].k = us_key_of(f);
		wanted[n].order = i;
		wanted[n].pool = pool;
		wanted[n].sc = sc;
		wanted[n].svc = us_service_new(u, pool, d, scd, f);
		if (!wanted[n].svc) {
			wanted_free(wanted, n);
			return -ENOMEM;
		}
		n++;
	}
	if (n > 0)
		qsort(wanted, n, sizeof(*wanted), wanted_qsort_cmp);
	/* Two frontends on one socket address: the planner should not emit
	 * them; the first in plan order wins (apply picks the same one). */
	for (size_t i = 0; i < n; i++) {
		if (out > 0 && us_key_cmp(&wanted[out - 1].k, &wanted[i].k) == 0) {
			char ep[INET_ENDPOINT_STRLEN];

			log_warn("userspace: %s/%s is claimed by %s and %s; keeping the first",
				 inet_endpoint_format(&wanted[i].k.addr, wanted[i].k.port, ep),
				 inet_proto_name(wanted[i].k.proto), relay_service_label(wanted[out - 1].svc),
				 relay_service_label(wanted[i].svc));
			relay_service_unref(wanted[i].svc);
			continue;
		}
		wanted[out++] = wanted[i];
	}
	*ret = wanted;
	*ret_n = out;
	return 0;
}

/* sync slot: every pool rebuilt (kept pools in place, their endpoints,
 * health and affinity carried over), every snapshot made anew, listeners
 * merged with the plan's. A listener that cannot open, the checker or the
 * provider failing: the rest is done and the first error returned. Out of
 * memory before step 2: nothing changed. */
static int userspace_sync(void *priv, const struct plan *plan)
{
	struct userspace *u = priv;
	struct us_staged *staged = NULL;
	struct us_pool **pools = NULL, **old_pools;
	struct us_wanted *wanted = NULL;
	struct us_skipped *skipped = NULL;
	struct us_frontend **fes = NULL;
	struct us_result res = { 0 };
	size_t n_pools = 0, n_old_pools, n_wanted = 0, n_fes = 0, n_skipped = 0, i, k;
	double t0 = us_now_ms();
	int r;

	if (!u->ready)
		return -EINVAL;
	u->stats.syncs++;

	/* 1. Everything that can fail for lack of memory, before touching
	 *    what runs: pools, services, the wish list, room for the rest. */
	staged = calloc(plan->n_epsets + 1, sizeof(*staged));
	pools = calloc(plan->n_epsets + 1, sizeof(*pools));
	skipped = calloc(plan->n_frontends + 1, sizeof(*skipped));
	fes = calloc(plan->n_frontends + u->n_fes + 1, sizeof(*fes));
	if (!staged || !pools || !skipped || !fes) {
		r = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < plan->n_epsets; i++) {
		if (plan->epsets[i].proto == INET_PROTO_SCTP)
			continue;
		r = us_staged_build(u, &staged[i], &plan->epsets[i]);
		if (r < 0)
			goto fail;
	}
	r = plan_wanted(u, plan, staged, &wanted, &n_wanted, skipped, &n_skipped);
	if (r < 0)
		goto fail;

	/* 2. The pools of the plan in force, in key order (the plan's). */
	/* Never 0, the mark of a pool apply made: a wrap must not make it
	 *    look kept. */
	if (++u->mark == 0)
		u->mark = 1;
	for (i = 0; i < plan->n_epsets; i++) {
		/* (A key twice in one plan would stage its pool twice.) */
		if (!staged[i].pool || staged[i].pool->mark == u->mark)
			continue;
		(void)us_staged_commit(u, &staged[i]);
		staged[i].pool->mark = u->mark;
		pools[n_pools++] = staged[i].pool;
	}
	if (!us_pools_sorted(pools, n_pools))
		qsort(pools, n_pools, sizeof(*pools), pool_ptr_cmp);
	old_pools = u->pools;
	n_old_pools = u->n_pools;
	u->pools = pools;
	u->n_pools = n_pools;
	pools = NULL;

	/* 3. Merge the wish list with the open frontends (both sorted). */
	for (i = 0, k = 0; i < n_wanted || k < u->n_fes;) {
		struct us_frontend *oldf = k < u->n_fes ? u->fes[k] : NULL;
		struct us_wanted *w = i < n_wanted ? &wanted[i] : NULL;
		int c = !w ? 1 : !oldf ? -1 : us_key_cmp_frontend(&w->k, oldf);

		if (c == 0) {
			/* Stays: same sockets, new snapshot for new connections. */
			us_frontend_update(u, oldf, w->pool, w->sc, w->svc, &res);
			fes[n_fes++] = oldf;
			i++, k++;
		} else if (c < 0) {
			struct us_frontend *nf = us_frontend_create(u, &w->k, w->pool, w->sc, w->svc, &res);

			if (nf)
				fes[n_fes++] = nf;
			i++;
		} else {
			if (!us_frontend_close(u, oldf, &res))
				fes[n_fes++] = oldf;
			k++;
		}
	}
	free(u->fes);
	u->fes = fes;
	u->n_fes = n_fes;
	fes = NULL;

	/* 4. Pools no longer in the plan go (their frontends went above);
	 *    their endpoints live on in connections. */
	for (i = 0; i < n_old_pools; i++)
		if (old_pools[i]->mark != u->mark)
			us_pool_free(u, old_pools[i]);
	free(old_pools);
	/* The list was sized for every frontend of the plan; keep what it
	 *    holds (almost always nothing: SCTP frontends). */
	free(u->skipped);
	u->skipped = NULL;
	u->n_skipped = n_skipped;
	if (n_skipped) {
		struct us_skipped *fit = realloc(skipped, n_skipped * sizeof(*skipped));

		u->skipped = fit ? fit : skipped;
	} else {
		free(skipped);
	}
	skipped = NULL;

	/* 5. Endpoints of sets without checks are usable by definition; the
	 *    checker gets the others. */
	for (i = 0; i < u->n_pools; i++)
		if (!u->pools[i]->d.health.enabled)
			for (k = 0; k < u->pools[i]->d.balancer->n_eps; k++)
				balancer_endpoint_set_healthy(balancer_ep(u->pools[i]->d.balancer, k), true);
	/* 6. Checker, redirects; removed listeners are closed when sync
	 *    returns. */
	res.listeners_changed = true;
	us_settle(u, plan, true, true, &res);
	wanted_free(wanted, n_wanted);
	free(staged);
	log_debug("userspace: sync: %zu sets, %zu frontends open in %.3f ms", u->n_pools, u->n_fes,
		  us_now_ms() - t0);
	return res.err;
fail:
	for (i = 0; staged && i < plan->n_epsets; i++)
		us_staged_discard(&staged[i]);
	free(staged);
	free(pools);
	free(skipped);
	free(fes);
	return log_warn_errno(r, "userspace: sync failed, previous state kept");
}

static void userspace_fini(void *priv)
{
	struct userspace *u = priv;

	if (!u)
		return;
	/* The redirects go before the relays: kube-proxy leaves its rules on
	 * exit, but ours point at ports that die with this process, and a
	 * redirect to a closed port turns a routable VIP into a refusing one.
	 * Removed, the traffic is routed as if ferry had never run. */
	if (u->intercept && u->intercept_used) {
		int r = u->intercept->cleanup ? u->intercept->cleanup()
					      : u->intercept->sync(u->intercept_priv, NULL, 0, NULL);

		if (r < 0)
			log_warn_errno(r, "userspace: removing the %s interception rules failed",
				       u->intercept->name);
	}
	if (u->intercept && u->intercept_priv)
		u->intercept->fini(u->intercept_priv);
	free(u->intercept_priv);
	/* Workers first: they hold references into pools and frontends. */
	relay_pool_done(&u->relay);
	u->health = health_free(u->health);
	for (size_t i = 0; i < u->n_fes; i++) {
		relay_frontend_unref(&u->fes[i]->fe); /* frees the record */
	}
	free(u->fes);
	for (int fam = 0; fam < 2; fam++)
		for (int p = 0; p < 2; p++)
			relay_frontend_unref(u->relays[fam][p]);
	/* The frontends are gone: nothing to detach. */
	for (size_t i = 0; i < u->n_pools; i++) {
		u->pools[i]->users = NULL;
		u->pools[i]->sc_users = NULL;
		us_pool_free(u, u->pools[i]);
	}
	free(u->pools);
	balancer_unref(u->empty);
	free(u->skipped);
	free(u->local_cidrs);
	free(u->scratch);
	memset(u, 0, sizeof(*u));
}

/* Set up the interception provider's state. 0 or -errno (logged). */
static int intercept_start(struct userspace *u, const struct intercept_ops *ops)
{
	int r;

	u->intercept_priv = calloc(1, ops->priv_size ? ops->priv_size : 1);
	if (!u->intercept_priv)
		return log_errno(-ENOMEM, "userspace: cannot allocate the %s interception", ops->name);
	r = ops->init(u->intercept_priv);
	if (r < 0) {
		ops->fini(u->intercept_priv);
		free(u->intercept_priv);
		u->intercept_priv = NULL;
		return log_errno(r, "userspace: cannot set up the %s interception", ops->name);
	}
	u->intercept = ops;
	return 0;
}

static int userspace_init(void *priv, const void *options)
{
	const struct userspace_options *opts = options;
	struct userspace *u = priv;
	int r;

	memset(u, 0, sizeof(*u));
	u->n_workers = opts && opts->workers ? opts->workers : 1;
	u->empty = balancer_new(BALANCE_ROUND_ROBIN, NULL, 0, NULL);
	if (!u->empty)
		return log_errno(-ENOMEM, "userspace: cannot allocate the empty endpoint set");
	r = relay_pool_init(&u->relay, u->n_workers, opts ? opts->udp_idle_timeout_ms : 0);
	if (r < 0) {
		u->empty = balancer_unref(u->empty);
		return log_errno(r, "userspace: cannot start %u relay workers", u->n_workers);
	}
	u->health = health_new();
	if (!u->health) {
		relay_pool_done(&u->relay);
		u->empty = balancer_unref(u->empty);
		return log_errno(-ENOMEM, "userspace: cannot start the health checker");
	}
	if (opts && opts->intercept && (r = intercept_start(u, opts->intercept)) < 0) {
		u->health = health_free(u->health);
		relay_pool_done(&u->relay);
		u->empty = balancer_unref(u->empty);
		return r;
	}
	if (u->intercept && (r = us_relays_open(u)) < 0) {
		userspace_fini(u); /* no rule was made yet: memory, threads, sockets */
		return r;
	}
	if (opts && opts->n_cluster_cidrs > 0) {
		u->local_cidrs = calloc(opts->n_cluster_cidrs, sizeof(*u->local_cidrs));
		if (!u->local_cidrs) {
			userspace_fini(u); /* no rule was made yet: only memory and threads */
			return log_errno(-ENOMEM, "userspace: cannot copy the cluster CIDRs");
		}
		memcpy(u->local_cidrs, opts->cluster_cidrs, opts->n_cluster_cidrs * sizeof(*u->local_cidrs));
		u->n_local_cidrs = opts->n_cluster_cidrs;
	}
	if (opts && opts->local_by_interface)
		log_warn("userspace: --detect-local-mode by interface is not applied by the relay (an "
			 "accepted socket does not show the interface a connection came in on): "
			 "externalTrafficPolicy Local frontends short-circuit the node's own "
			 "connections only, not its pods'");
	u->ready = true;
	log_info("userspace: %u relay workers started%s%s", u->n_workers,
		 u->intercept ? ", traffic to non-local frontends intercepted with " : "",
		 u->intercept ? u->intercept->name : "");
	return 0;
}

const struct backend_ops userspace_backend_ops = {
	.name = "userspace",
	/* Node ports are wildcard listeners unless told otherwise. */
	.loopback_node_ports = true,
	/* Every ferry.io/balance algorithm, and active health checks. */
	.balance_algos = 1u << BALANCE_LEAST_CONN | 1u << BALANCE_RANDOM_TWO | 1u << BALANCE_MAGLEV,
	.active_health_checks = true,
	/* The core allocates our state zeroed; init fills it. */
	.priv_size = sizeof(struct userspace),
	/* splice, epoll and SO_REUSEPORT exist on every kernel we run on. */
	.probe = NULL,
	/* Start workers and the health checker; no listener yet. */
	.init = userspace_init,
	/* Reconcile listeners and endpoint snapshots with the whole plan:
	 * every pool and snapshot rebuilt (endpoints, health and affinity
	 * kept). */
	.sync = userspace_sync,
	/* Only what the diff names: its sets' pools rebuilt in place, new
	 * snapshots for the frontends it adds or changes and for those of its
	 * sets, listeners opened and closed for the frontends it adds and
	 * removes. Any error: the core falls back to sync. */
	.apply = us_apply,
	/* Listeners as the relay would open them (userspace_render.c). */
	.render = userspace_render,
	/* Nothing outlives the process (fini removes the interception). */
	.cleanup = NULL,
	/* Remove the interception rules, stop threads, close every socket, free. */
	.fini = userspace_fini,
	/* Listener sets, intercepted frontends, flows, checked endpoints
	 * (userspace_inspect.c). */
	.counts = userspace_counts,
	/* Per service port traffic and checked endpoints' health
	 * (userspace_inspect.c). */
	.service_stats = userspace_service_stats,
};
