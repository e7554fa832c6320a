/* The sync runner: turns model changes into backend syncs at a bounded rate.
 *
 * A change requests a sync; the sync happens no sooner than min_sync_period
 * after the previous one (changes arriving meanwhile are folded into it),
 * and one happens every sync_period in any case. The first sync, every sync
 * after a failure, and the first one once full_sync_period has passed since
 * the last full one are full (a whole plan, ops->sync); the others apply the
 * planner's diff (ops->apply when the backend has one). That is kube-proxy's
 * rhythm: partial syncs every syncPeriod, a full one hourly (its
 * FullSyncPeriod), because a full sync at 100k services takes about a
 * second in which changes wait. A failed sync is retried with exponential
 * backoff.
 */
#ifndef FERRY_SYNC_RUNNER_H
#define FERRY_SYNC_RUNNER_H

#include <stdint.h>

#include "backend.h"
#include "loop.h"
#include "model.h"
#include "planner.h"

struct sync_runner_config {
	uint32_t min_sync_period_ms; /* default 50 */
	uint32_t sync_period_ms;     /* periodic sync interval; default 30000; 0 = never */
	uint32_t full_sync_period_ms; /* full sync interval; default 3600000; 0 = never */
	uint32_t retry_min_ms;       /* first retry delay; default 500 */
	uint32_t retry_max_ms;       /* cap of the backoff; default 30000 */
	/* Called after every successful sync with the plan now in force (for
	 * what follows the plan outside the backend, e.g. health check node
	 * ports) and, after an update, the diff that led there (NULL after a
	 * full sync: look at the whole plan). May be NULL. */
	void (*on_synced)(const struct plan *plan, const struct plan_diff *diff, void *userdata);
	/* Called after every attempt, good or failed, with whether it was a
	 * full sync, its result (0 or -errno) and how long it took (for the
	 * sync duration metrics). May be NULL. */
	void (*on_attempt)(bool full, int result, uint64_t duration_us, void *userdata);
	void *userdata;
};

/* What the runner has done, for health and metrics (sync_runner_stats). */
struct sync_runner_stats {
	uint64_t syncs_ok;        /* attempts that succeeded */
	uint64_t syncs_failed;    /* attempts that failed */
	uint64_t last_ok_ms;      /* loop_now_ms() when the last good sync ended; 0: none */
	uint64_t oldest_queued_ms; /* loop_now_ms() of the oldest request (or failed
				    * attempt) not yet followed by a good sync; 0: none */
};

struct sync_runner;

/* Allocate a runner. It borrows loop, model, planner and the backend (ops and
 * its private state): all must outlive it. NULL on ENOMEM. Nothing is synced
 * until sync_runner_request is first called (sources call it once their
 * initial load is complete). */
struct sync_runner *sync_runner_new(struct loop *loop, const struct model *m,
				    struct planner *planner, const struct backend_ops *ops,
				    void *backend_priv, const struct sync_runner_config *cfg);
/* Free the runner (its timers are stopped). Accepts NULL; returns NULL. */
struct sync_runner *sync_runner_free(struct sync_runner *sr);

/* The model changed (or a source finished its first load): schedule a sync. */
void sync_runner_request(struct sync_runner *sr);

/* Number of syncs that succeeded so far (for tests and logs). */
uint64_t sync_runner_count(const struct sync_runner *sr);

/* The plan last made (planner_current): in force after a good sync. */
const struct plan *sync_runner_plan(const struct sync_runner *sr);

/* Copy the runner's counters and times into *ret. */
void sync_runner_stats(const struct sync_runner *sr, struct sync_runner_stats *ret);

/* kube-proxy's proxier health rule: healthy while nothing is queued, or
 * while the oldest change queued since the last good sync is younger than
 * timeout_ms (kube-proxy: 2 x syncPeriod). A failed sync leaves its change
 * queued. now_ms is loop_now_ms() (a parameter so tests can move time). */
bool sync_runner_healthy(const struct sync_runner *sr, uint64_t now_ms, uint64_t timeout_ms);

#endif
