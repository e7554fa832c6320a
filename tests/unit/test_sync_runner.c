/* The sync runner on a real event loop, with a recording backend: the first
 * sync is full, later changes are folded into one diff-based apply per
 * min-sync-period, periodic syncs are partial and full ones come once per
 * full sync period, a failed sync is retried as a full one, and a change
 * that leaves the plan as it was costs the backend nothing. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kobj.h"
#include "loop.h"
#include "model.h"
#include "planner.h"
#include "sync_runner.h"

/* A backend that records what it was asked to do. */
struct rec_backend {
	int syncs;
	int applies;
	int ticks;               /* syncs that found nothing to apply */
	int fail_next;           /* fail this many calls */
	size_t last_frontends;
	size_t last_diff_changes;
	bool last_guards_changed;
};

static int rec_sync(void *priv, const struct plan *plan)
{
	struct rec_backend *b = priv;

	if (b->fail_next > 0) {
		b->fail_next--;
		return -EIO;
	}
	b->syncs++;
	b->last_frontends = plan->n_frontends;
	return 0;
}

static int rec_apply(void *priv, const struct plan *plan, const struct plan_diff *diff)
{
	struct rec_backend *b = priv;

	if (b->fail_next > 0) {
		b->fail_next--;
		return -EIO;
	}
	b->applies++;
	b->last_frontends = plan->n_frontends;
	b->last_diff_changes = diff->n_fe_added + diff->n_fe_removed + diff->n_fe_changed +
			       diff->n_eps_added + diff->n_eps_removed + diff->n_eps_changed;
	b->last_guards_changed = diff->guards_changed;
	return 0;
}

static void rec_tick(void *priv)
{
	((struct rec_backend *)priv)->ticks++;
}

static const struct backend_ops rec_ops = {
	.name = "recording",
	.priv_size = sizeof(struct rec_backend),
	.sync = rec_sync,
	.tick = rec_tick,
	.apply = rec_apply,
};

/* A ClusterIP service 10.0.0.N:80 with no endpoints. */
static struct kobj_service *make_service(const char *name, int n)
{
	struct kobj_service *svc = kobj_service_new();
	char ip[32];

	cr_assert_not_null(svc);
	svc->ns = strdup("default");
	svc->name = strdup(name);
	svc->cluster_ips = calloc(1, sizeof(*svc->cluster_ips));
	svc->n_cluster_ips = 1;
	snprintf(ip, sizeof(ip), "10.0.0.%d", n);
	cr_assert_eq(inet_addr_parse(ip, &svc->cluster_ips[0]), 0);
	svc->ports = calloc(1, sizeof(*svc->ports));
	svc->n_ports = 1;
	svc->ports[0].proto = INET_PROTO_TCP;
	svc->ports[0].port = 80;
	svc->ports[0].target_port = 8080;
	return svc;
}

struct fixture {
	struct loop *loop;
	struct model *model;
	struct planner *planner;
	struct rec_backend backend;
	struct sync_runner *runner;
	struct loop_timer stop;
	struct loop_timer step;
	int step_no;
};

static void on_stop(struct loop *loop, void *userdata)
{
	(void)userdata;
	loop_stop(loop);
}

static void fixture_init_periods(struct fixture *f, uint32_t min_period_ms, uint32_t period_ms,
				 uint32_t full_period_ms)
{
	struct planner_config pcfg = { .topology_hints = true };
	struct sync_runner_config scfg = { .min_sync_period_ms = min_period_ms,
					   .sync_period_ms = period_ms,
					   .full_sync_period_ms = full_period_ms,
					   .retry_min_ms = 20, .retry_max_ms = 100 };

	memset(f, 0, sizeof(*f));
	f->loop = loop_new();
	f->model = model_new();
	f->planner = planner_new(&pcfg);
	cr_assert(f->loop && f->model && f->planner);
	f->runner = sync_runner_new(f->loop, f->model, f->planner, &rec_ops, &f->backend, &scfg);
	cr_assert_not_null(f->runner);
	loop_timer_init(&f->stop, on_stop, f);
}

static void fixture_init(struct fixture *f, uint32_t min_period_ms)
{
	fixture_init_periods(f, min_period_ms, 0, 0);
}

static void fixture_done(struct fixture *f)
{
	sync_runner_free(f->runner);
	planner_free(f->planner);
	model_free(f->model);
	loop_free(f->loop);
}

static void run_for(struct fixture *f, uint64_t ms)
{
	loop_timer_start(f->loop, &f->stop, ms);
	cr_assert_eq(loop_run(f->loop), 0);
}

Test(sync_runner, nothing_before_first_request)
{
	struct fixture f;

	fixture_init(&f, 10);
	model_upsert_service(f.model, make_service("a", 1));
	run_for(&f, 50);
	cr_expect_eq(f.backend.syncs + f.backend.applies, 0,
		     "the backend must not be touched before the source's first load completes");
	fixture_done(&f);
}

Test(sync_runner, first_full_then_coalesced_applies)
{
	struct fixture f;

	fixture_init(&f, 100);
	model_upsert_service(f.model, make_service("a", 1));
	sync_runner_request(f.runner);
	run_for(&f, 30);
	cr_assert_eq(f.backend.syncs, 1, "first sync is a full one");
	cr_assert_eq(f.backend.applies, 0);
	cr_assert_eq(f.backend.last_frontends, 1);

	/* Three changes inside one min-sync-period: one apply. */
	for (int i = 2; i <= 4; i++) {
		char name[8];
		snprintf(name, sizeof(name), "s%d", i);
		model_upsert_service(f.model, make_service(name, i));
		sync_runner_request(f.runner);
	}
	run_for(&f, 60);
	cr_expect_eq(f.backend.applies, 0, "min-sync-period not yet over: no apply expected");
	run_for(&f, 120);
	cr_expect_eq(f.backend.applies, 1, "changes folded into one apply, got %d", f.backend.applies);
	cr_expect_eq(f.backend.last_frontends, 4);
	cr_expect_eq(f.backend.last_diff_changes, 6, "3 frontends and 3 sets added, got %zu",
		     f.backend.last_diff_changes);
	fixture_done(&f);
}

Test(sync_runner, unchanged_plan_costs_nothing)
{
	struct fixture f;

	fixture_init(&f, 5);
	model_upsert_service(f.model, make_service("a", 1));
	sync_runner_request(f.runner);
	run_for(&f, 20);
	cr_assert_eq(f.backend.syncs, 1);
	/* Same object again: the model changes generation, the plan does not. */
	model_upsert_service(f.model, make_service("a", 1));
	sync_runner_request(f.runner);
	run_for(&f, 40);
	cr_expect_eq(f.backend.applies, 0);
	cr_expect_eq(f.backend.syncs, 1);
	fixture_done(&f);
}

/* kube-proxy's rhythm: the periodic sync (syncPeriod) applies only what
 * changed; a whole plan and a full backend sync come once per full sync
 * period (its FullSyncPeriod, an hour). Before, every sync period was a full
 * sync: at 100k services a second in which changes waited, every 30 s. */
Test(sync_runner, periodic_syncs_are_partial_full_ones_hourly)
{
	struct fixture f;

	fixture_init_periods(&f, 5, 20, 400);
	model_upsert_service(f.model, make_service("a", 1));
	sync_runner_request(f.runner);
	run_for(&f, 150);
	cr_assert_eq(f.backend.syncs, 1, "periodic syncs within the full sync period must not be "
		     "full ones, got %d full syncs", f.backend.syncs);
	/* Nothing to apply: the backend still gets its housekeeping (IPVS
	 * reaps drained real servers there). */
	cr_expect_geq(f.backend.ticks, 2, "periodic syncs must tick the backend, got %d", f.backend.ticks);
	cr_expect_eq(f.backend.applies, 0);
	/* A change between periodic syncs is applied as a diff. */
	model_upsert_service(f.model, make_service("b", 2));
	sync_runner_request(f.runner);
	run_for(&f, 50);
	cr_expect_eq(f.backend.syncs, 1);
	cr_expect_eq(f.backend.applies, 1, "the change is applied, got %d applies", f.backend.applies);
	cr_expect_eq(f.backend.last_frontends, 2);
	/* Past the full sync period the next periodic sync is a full one. */
	run_for(&f, 400);
	cr_expect_geq(f.backend.syncs, 2, "no full sync after the full sync period");
	cr_expect_eq(f.backend.last_frontends, 2);
	fixture_done(&f);
}

Test(sync_runner, failure_is_retried_as_full_sync)
{
	struct fixture f;

	fixture_init(&f, 5);
	model_upsert_service(f.model, make_service("a", 1));
	sync_runner_request(f.runner);
	run_for(&f, 20);
	cr_assert_eq(f.backend.syncs, 1);

	f.backend.fail_next = 2; /* the apply and the first retry fail */
	model_upsert_service(f.model, make_service("b", 2));
	sync_runner_request(f.runner);
	run_for(&f, 300);
	cr_expect_eq(f.backend.fail_next, 0, "both failures consumed");
	cr_expect_eq(f.backend.syncs, 2, "recovered with a full sync, got %d syncs", f.backend.syncs);
	cr_expect_eq(f.backend.last_frontends, 2);
	cr_expect_eq(sync_runner_count(f.runner), 2);
	fixture_done(&f);
}

/* A new service range alone (a ServiceCIDR object, no service changed)
 * changes no frontend, but the backends' service-range guards must follow:
 * it is an apply, with guards_changed. */
Test(sync_runner, service_range_alone_is_applied)
{
	struct fixture f;
	struct inet_prefix cidr;

	fixture_init(&f, 5);
	model_upsert_service(f.model, make_service("a", 1));
	sync_runner_request(f.runner);
	run_for(&f, 20);
	cr_assert_eq(f.backend.syncs, 1);
	cr_assert_eq(inet_prefix_parse("10.0.0.0/24", &cidr), 0);
	model_set_service_cidrs(f.model, &cidr, 1);
	sync_runner_request(f.runner);
	run_for(&f, 40);
	cr_expect_eq(f.backend.applies, 1, "the new range must reach the backend");
	cr_expect(f.backend.last_guards_changed);
	cr_expect_eq(f.backend.last_diff_changes, 0);
	fixture_done(&f);
}

/* kube-proxy's healthz rule: healthy while nothing is queued or the oldest
 * queued change is younger than the timeout; a failing sync keeps its
 * change queued (and counts a failure), a good one clears it. Time is
 * moved through the now_ms argument. */
Test(sync_runner, health_follows_the_oldest_unsynced_change)
{
	struct fixture f;
	struct sync_runner_stats st;
	uint64_t t;

	fixture_init(&f, 5);
	cr_expect(sync_runner_healthy(f.runner, loop_now_ms() + 1000000, 2000),
		  "healthy while starting up");
	model_upsert_service(f.model, make_service("a", 1));
	sync_runner_request(f.runner);
	run_for(&f, 20);
	sync_runner_stats(f.runner, &st);
	cr_expect_eq(st.syncs_ok, 1);
	cr_expect_eq(st.oldest_queued_ms, 0, "synced: nothing queued");
	cr_expect_neq(st.last_ok_ms, 0);
	cr_expect(sync_runner_healthy(f.runner, loop_now_ms() + 1000000, 2000));

	f.backend.fail_next = 1000; /* every sync fails from now on */
	t = loop_now_ms();
	model_upsert_service(f.model, make_service("b", 2));
	sync_runner_request(f.runner);
	run_for(&f, 60);
	sync_runner_stats(f.runner, &st);
	cr_expect_geq(st.syncs_failed, 1);
	cr_expect_geq(st.oldest_queued_ms, t);
	cr_expect(sync_runner_healthy(f.runner, st.oldest_queued_ms + 1999, 2000));
	cr_expect_not(sync_runner_healthy(f.runner, st.oldest_queued_ms + 2000, 2000),
		      "a change queued 2 x syncPeriod ago and not synced: unhealthy");

	f.backend.fail_next = 0;
	run_for(&f, 200); /* the retry (backoff at most 100 ms) succeeds */
	sync_runner_stats(f.runner, &st);
	cr_expect_eq(st.oldest_queued_ms, 0);
	cr_expect(sync_runner_healthy(f.runner, loop_now_ms() + 1000000, 2000));
	fixture_done(&f);
}
