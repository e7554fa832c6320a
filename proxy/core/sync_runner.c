/* Bounded-frequency syncs with full resyncs and backoff on failure. */
#include "sync_runner.h"

#include <stdlib.h>
#include <time.h>

#include "log.h"

struct sync_runner {
	struct loop *loop;
	const struct model *model;
	struct planner *planner;
	const struct backend_ops *ops;
	void *priv;
	struct sync_runner_config cfg;

	struct loop_timer timer;     /* next sync (requested, periodic or retry) */
	uint64_t last_sync_ms;       /* when the last attempt ended */
	uint64_t last_full_ms;       /* when the last full sync succeeded */
	uint64_t synced_generation;  /* model generation of the last good sync */
	uint64_t syncs_ok;
	uint64_t syncs_failed;
	uint64_t last_ok_ms;         /* when the last good sync ended; 0: none */
	uint64_t queued_ms;          /* oldest change not yet synced; 0: none */
	uint32_t retry_ms;           /* current backoff; 0 when healthy */
	bool need_full;              /* next sync must be a full one */
	bool started;                /* the first request has come */
	bool pending;                /* a request arrived since the last sync */
};

static void sync_runner_fire(struct loop *loop, void *userdata);

/* Monotonic microseconds, for the duration reported to on_attempt. */
static uint64_t sync_runner_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct sync_runner *sync_runner_new(struct loop *loop, const struct model *m,
				    struct planner *planner, const struct backend_ops *ops,
				    void *backend_priv, const struct sync_runner_config *cfg)
{
	struct sync_runner *sr = calloc(1, sizeof(*sr));

	if (!sr)
		return NULL;
	sr->loop = loop;
	sr->model = m;
	sr->planner = planner;
	sr->ops = ops;
	sr->priv = backend_priv;
	sr->cfg = *cfg;
	if (!sr->cfg.retry_min_ms)
		sr->cfg.retry_min_ms = 500;
	if (!sr->cfg.retry_max_ms)
		sr->cfg.retry_max_ms = 30000;
	sr->need_full = true;
	loop_timer_init(&sr->timer, sync_runner_fire, sr);
	return sr;
}

struct sync_runner *sync_runner_free(struct sync_runner *sr)
{
	if (!sr)
		return NULL;
	loop_timer_stop(sr->loop, &sr->timer);
	free(sr);
	return NULL;
}

static bool sync_runner_diff_empty(const struct plan_diff *d)
{
	/* guards_changed: a new service range alone (a ServiceCIDR object)
	 * changes no frontend, and the backends' guards must still follow. */
	return !d->n_fe_added && !d->n_fe_removed && !d->n_fe_changed &&
	       !d->n_eps_added && !d->n_eps_removed && !d->n_eps_changed && !d->guards_changed;
}

/* Plan and program once; returns 0 or -errno from the planner or backend. */
static int sync_runner_sync_once(struct sync_runner *sr, bool full)
{
	const struct plan *plan;
	const struct plan_diff *diff;
	uint64_t t0 = loop_now_ms();
	int r;

	/* A full sync also plans everything; an update replans only the
	 * services that changed. */
	r = full ? planner_run(sr->planner, sr->model, &plan, &diff)
		 : planner_update(sr->planner, sr->model, &plan, &diff);
	if (r < 0)
		return log_errno(r, "sync: planning failed");
	if (!full && sync_runner_diff_empty(diff)) {
		log_debug("sync: plan unchanged");
		if (sr->ops->tick)
			sr->ops->tick(sr->priv);
		goto synced;
	}
	if (full || !sr->ops->apply)
		r = sr->ops->sync(sr->priv, plan);
	else
		r = sr->ops->apply(sr->priv, plan, diff);
	if (r < 0)
		return log_errno(r, "sync: backend %s failed to apply the plan (%zu frontends)",
				 sr->ops->name, plan->n_frontends);
	log_info("sync: %s %s: %zu frontends, %zu endpoint sets (+%zu -%zu ~%zu frontends, "
		 "+%zu -%zu ~%zu sets) in %llu ms",
		 full ? "full sync" : "update", sr->ops->name, plan->n_frontends, plan->n_epsets,
		 diff->n_fe_added, diff->n_fe_removed, diff->n_fe_changed, diff->n_eps_added,
		 diff->n_eps_removed, diff->n_eps_changed,
		 (unsigned long long)(loop_now_ms() - t0));
synced:
	/* Applied: the plan before and the diff are no longer needed (at 100k
	 * services the plan before is as big as the current one). A full
	 * sync's callback gets no diff, so they go first: what the callback
	 * gives back to the system (cli_run.c trims the heap) includes them.
	 * An update's callback reads the diff. */
	if (full)
		planner_release_previous(sr->planner);
	if (sr->cfg.on_synced)
		sr->cfg.on_synced(plan, full ? NULL : diff, sr->cfg.userdata);
	if (!full)
		planner_release_previous(sr->planner);
	return 0;
}

static void sync_runner_fire(struct loop *loop, void *userdata)
{
	struct sync_runner *sr = userdata;
	uint64_t now = loop_now_ms();
	bool full = sr->need_full ||
		    (sr->cfg.full_sync_period_ms && now - sr->last_full_ms >= sr->cfg.full_sync_period_ms);
	uint64_t gen = model_generation(sr->model);
	uint64_t t0_us = sync_runner_now_us();
	int r;

	sr->pending = false;
	r = sync_runner_sync_once(sr, full);
	sr->last_sync_ms = loop_now_ms();
	if (sr->cfg.on_attempt)
		sr->cfg.on_attempt(full, r < 0 ? r : 0, sync_runner_now_us() - t0_us,
				   sr->cfg.userdata);
	if (r < 0) {
		/* What this sync was to apply is still pending (kube-proxy
		 * clears its queued time only on success). */
		sr->syncs_failed++;
		if (!sr->queued_ms)
			sr->queued_ms = now ? now : 1;
		/* Keep the previous dataplane; retry from scratch after a backoff. */
		sr->need_full = true;
		sr->retry_ms = sr->retry_ms ? sr->retry_ms * 2 : sr->cfg.retry_min_ms;
		if (sr->retry_ms > sr->cfg.retry_max_ms)
			sr->retry_ms = sr->cfg.retry_max_ms;
		log_warn("sync: retrying in %u ms", sr->retry_ms);
		loop_timer_start(loop, &sr->timer, sr->retry_ms);
		return;
	}
	sr->retry_ms = 0;
	if (full)
		sr->last_full_ms = sr->last_sync_ms;
	sr->need_full = false;
	sr->synced_generation = gen;
	sr->syncs_ok++;
	sr->last_ok_ms = sr->last_sync_ms ? sr->last_sync_ms : 1;
	/* A request that came during the sync is folded into the next one. */
	sr->queued_ms = sr->pending ? sr->last_sync_ms : 0;
	if (sr->pending || model_generation(sr->model) != gen)
		loop_timer_start(loop, &sr->timer, sr->cfg.min_sync_period_ms);
	else if (sr->cfg.sync_period_ms)
		loop_timer_start(loop, &sr->timer, sr->cfg.sync_period_ms);
}

void sync_runner_request(struct sync_runner *sr)
{
	uint64_t now = loop_now_ms();
	uint64_t earliest;

	sr->pending = true;
	if (!sr->queued_ms)
		sr->queued_ms = now ? now : 1;
	if (sr->retry_ms)
		return; /* a retry is already scheduled and will pick this up */
	if (!sr->started) {
		sr->started = true;
		loop_timer_start(sr->loop, &sr->timer, 0);
		return;
	}
	earliest = sr->last_sync_ms + sr->cfg.min_sync_period_ms;
	uint64_t delay = earliest > now ? earliest - now : 0;
	/* Only move the timer earlier, never postpone a due sync. */
	if (sr->timer.armed && sr->timer.deadline_ms <= now + delay)
		return;
	loop_timer_start(sr->loop, &sr->timer, delay);
}

uint64_t sync_runner_count(const struct sync_runner *sr)
{
	return sr->syncs_ok;
}

const struct plan *sync_runner_plan(const struct sync_runner *sr)
{
	return planner_current(sr->planner);
}

void sync_runner_stats(const struct sync_runner *sr, struct sync_runner_stats *ret)
{
	ret->syncs_ok = sr->syncs_ok;
	ret->syncs_failed = sr->syncs_failed;
	ret->last_ok_ms = sr->last_ok_ms;
	ret->oldest_queued_ms = sr->queued_ms;
}

bool sync_runner_healthy(const struct sync_runner *sr, uint64_t now_ms, uint64_t timeout_ms)
{
	if (!sr->queued_ms || now_ms < sr->queued_ms)
		return true;
	return now_ms - sr->queued_ms < timeout_ms;
}
