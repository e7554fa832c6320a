/* Incremental planning: splice the replanned part of a few services into
 * the whole plan, in place, and say what changed. Internal to the planner.
 *
 * The planner replans only the services a model change touched (the
 * "part", a plan of its own holding just them) and hands it here with
 * the list of those services. An endpoint change keeps every key (the
 * same frontends, the same sets): the changed sets and frontends are
 * updated where they are, at a cost that does not depend on the size of
 * the plan. A change that adds or removes frontends or sets rebuilds the
 * arrays by one merge (linear, no sorting, no replanning).
 *
 * What the splice cannot decide alone -- a frontend address two services
 * claim, a health check port two services claim -- it refuses
 * (PLAN_SPLICE_REPLAN) before changing anything: the planner then builds
 * the whole plan, which applies the first-claimant rule.
 *
 * Whatever the new plan no longer references but the diff may still show
 * ("removed" entries, the arrays and endpoint lists they live in) goes to
 * the trash, emptied at the start of the next planner run.
 */
#ifndef FERRY_PLAN_SPLICE_H
#define FERRY_PLAN_SPLICE_H

#include <stddef.h>
#include <stdint.h>

#include "plan-t.h"

/* What the splice keeps between planner runs. */
struct plan_splice_state {
	/* Frontend addresses (addr, proto, port; other fields unused) that
	 * more than one service claimed at the last whole plan, sorted by
	 * plan_frontend_addr_cmp; health check ports likewise, sorted. */
	struct plan_frontend *contested;
	size_t n_contested;
	uint16_t *hc_contested;
	size_t n_hc_contested;
	/* The frontends of each set (by primary set): the frontends of set i
	 * are fe[off[i]..off[i+1]), indexes into plan->frontends. */
	uint32_t *ix_off;
	uint32_t *ix_fe;
	/* Freed at the next planner run (plan_splice_empty_trash). */
	void **trash;
	size_t n_trash, cap_trash;
};

/* One service of the part, by namespace and name. */
struct plan_svc_ref {
	const char *ns;
	const char *name;
};

/* (ns, name) order of two struct plan_svc_ref. For qsort. */
int plan_svc_ref_cmp(const void *a, const void *b);

#define PLAN_SPLICE_REPLAN 1

/* Rebuild the set -> frontends index for plan. 0 or -ENOMEM. */
int plan_splice_index(struct plan_splice_state *st, const struct plan *plan);
/* Free what the trash holds. */
void plan_splice_empty_trash(struct plan_splice_state *st);
/* Free everything the state holds. */
void plan_splice_state_done(struct plan_splice_state *st);

/* Make cur what a whole replan would give when only the services svcs[0..n)
 * (sorted by (ns, name), distinct) changed and part is their plan (built
 * with the same rules; it must hold nothing of other services). Fills d
 * (zeroed first): added, changed and touched entries point into cur,
 * removed ones into arrays now in the trash. Takes from part what it
 * moves into cur; the caller frees part afterwards.
 * Returns 0; PLAN_SPLICE_REPLAN when a claim two services share is
 * involved (cur unchanged); -ENOMEM (cur unchanged). */
int plan_splice(struct plan *cur, struct plan *part, const struct plan_svc_ref *svcs, size_t n,
		struct plan_splice_state *st, struct plan_diff *d);

#endif
