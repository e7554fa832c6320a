/* Internal to the userspace backend: the state its files share and the
 * functions they call across files. userspace.c (ops table, init, fini,
 * sync), userspace_apply.c (apply), userspace_pools.c (endpoint pools),
 * userspace_frontends.c (open frontends, relays, interception),
 * userspace_inspect.c (introspection for tests).
 *
 * State is indexed so that a plan diff can be applied on its own. Pools and
 * open frontends are heap objects that keep their address for as long as
 * the plan has them; u->pools (by key) and u->fes (by bind address,
 * protocol, port) are sorted arrays of pointers to them, and every pool
 * lists the frontends serving it. apply finds the sets a diff names by key
 * (binary search), rebuilds just those pools in place, and takes from each
 * pool's list the frontends that need a new snapshot; listeners open and
 * close only for frontends the diff adds or removes. The arrays of pointers
 * are rewritten (memcpy of runs) only when something is added or removed.
 * sync rebuilds every pool and snapshot.
 */
#ifndef FERRY_US_STATE_H
#define FERRY_US_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "health.h"
#include "relay.h"
#include "userspace.h"

struct us_frontend;

/* What one endpoint set compiles to. Replaced as a whole when the set
 * changes; the pool object holding it stays. */
struct us_pool_data {
	struct balancer_endpoint **eps; /* references, in the plan's order */
	size_t n_eps;
	struct balancer_affinity *affinity;
	struct balancer *balancer;
	struct health_check_cfg health;
	char label[200];
};

/* One endpoint set, kept under its key for as long as the plan has it. */
struct us_pool {
	char *key;
	struct us_pool_data d;
	struct us_frontend *users;      /* open frontends serving it */
	struct us_pool *checked_prev;   /* in u->checked while d.health.enabled */
	struct us_pool *checked_next;
	bool in_checked;
	bool doomed;                    /* apply: goes at the end of this apply */
	uint64_t mark;                  /* sync: the last sync that kept it */
};

/* A listener key: what one listener set binds. */
struct us_key {
	struct inet_addr addr;
	enum inet_proto proto;
	uint16_t port;
};

/* One open frontend: its VIP listener set and, when intercepted, its relay. */
struct us_frontend {
	struct us_key k;                /* its key in u->fes: what fe binds */
	struct relay_frontend *fe;      /* bound to the frontend's address */
	struct relay_frontend *relay;   /* wildcard, ephemeral port; NULL: none */
	struct us_pool *pool;           /* the set it serves; NULL: none */
	struct us_frontend *user_prev;  /* in pool->users */
	struct us_frontend *user_next;
};

/* A pool being (re)built from a plan set, not yet in force. */
struct us_staged {
	struct us_pool *pool;           /* the pool kept under the key, or a new one */
	bool is_new;                    /* pool was allocated for this set */
	struct us_pool_data d;          /* the new contents */
};

/* SCTP frontends already warned about, so each is logged once. */
struct us_skipped {
	struct inet_addr addr;
	uint16_t port;
};

/* What the listener work of one sync or apply came to. */
struct us_result {
	int err;                        /* the first error; the rest still ran */
	bool listeners_changed;         /* a listener set was opened or closed */
	bool relays_changed;            /* a relay was opened or went stale */
};

struct userspace {
	bool ready;
	unsigned n_workers;
	struct relay_pool relay;
	struct health *health;
	struct us_pool **pools;         /* sorted by key */
	size_t n_pools;
	struct us_pool *checked;        /* pools with health checks (checked_next) */
	struct us_frontend **fes;       /* sorted by (fe->addr, proto, port) */
	size_t n_fes;
	struct balancer *empty;         /* for frontends without an endpoint set */
	struct us_skipped *skipped;
	size_t n_skipped;
	const struct intercept_ops *intercept; /* NULL: no interception */
	void *intercept_priv;           /* its state (intercept->priv_size bytes), after its init */
	bool intercept_used;            /* intercept->sync was called once */
	struct relay_frontend **stale;  /* relays whose close failed: retried */
	size_t n_stale;
	uint64_t mark;                  /* sync counter for us_pool.mark */
	struct userspace_stats stats;
};

/* ---- helpers shared across the backend's files (userspace.c) ---- */

const char *us_epset_key(const struct plan_epset *e);

/* The open frontend under key k, or NULL; *ret_idx (when not NULL) gets
 * the index in u->fes of the first whose key is not below k, where one
 * under k would go. O(log n). */
struct us_frontend *us_fes_find(const struct userspace *u, const struct us_key *k, size_t *ret_idx);

/* Close a frontend the plan no longer has: its listeners now (established
 * TCP connections stay), its relay into u->stale (room for it is the
 * caller's), closed once no redirect points to it. true: closed and freed;
 * false: kept, still serving its old snapshot, to be retried (res->err
 * set). */
bool us_frontend_close(struct userspace *u, struct us_frontend *f, struct us_result *res);

/* Open a frontend the plan adds: its listeners, its relay when wanted.
 * NULL when it could not be opened (logged; res->err set). */
struct us_frontend *us_frontend_create(struct userspace *u, const struct us_key *k,
					   struct us_pool *pool, struct relay_service *svc,
					   struct us_result *res);

/* A frontend that stays gets svc for new connections (its relay too) and
 * serves pool from now on; a relay that is wanted but missing (an earlier
 * failure) is opened. */
void us_frontend_update(struct userspace *u, struct us_frontend *f, struct us_pool *pool,
			struct relay_service *svc, struct us_result *res);

/* Hand the health checker every endpoint of every set that asks for it
 * (only those: the walk is over u->checked). 0 or -ENOMEM. */
int us_health_update(struct userspace *u);

/* The order of u->fes: (address, protocol, port). <0, 0, >0. */
int us_key_cmp(const struct us_key *a, const struct us_key *b);

struct us_key us_key_of(const struct plan_frontend *f);

/* The end of a sync or an apply, after its pool and listener work: the
 * health checker's targets when health (a checked set changed), the
 * redirects when push (a relay opened or went), the stale relays closed,
 * then, when any listener set changed, a wait until the workers have
 * closed what was closed. Every step is tried; the first error goes into
 * res. */
void us_settle(struct userspace *u, bool health, bool push, struct us_result *res);

/* Warn about SCTP frontend f unless u->skipped says it was already, and
 * add it to now[] (which may be u->skipped itself: then only when new). */
void us_note_skipped(struct userspace *u, const struct plan_frontend *f,
			 struct us_skipped *now, size_t *n_now);

/* Monotonic clock in ms with µs resolution, for the debug timings. */
double us_now_ms(void);

/* The frontend of plan that owns listener key k: of those that bind it,
 * the first in plan order, which is the one sync keeps. NULL: none.
 * O(log n): a few bisections, one per kind. */
const struct plan_frontend *us_plan_fe_owner(const struct plan *plan, const struct us_key *k);

struct us_pool *us_pool_find(const struct userspace *u, const char *key);

/* Free a pool that has left the plan; frontends still serving it (only
 * ones kept after a failed close) are detached. */
void us_pool_free(struct userspace *u, struct us_pool *p);


/* A snapshot of f's policy over the balancer of d, labelled with d's set;
 * d NULL (no set): over u->empty. NULL on ENOMEM. */
struct relay_service *us_service_new(struct userspace *u, const struct us_pool_data *d,
				     const struct plan_frontend *f);

/* Build the new contents of e's pool into st, without touching the pool:
 * the pool kept under e's key, or a new one. 0 or -ENOMEM (st cleared). */
int us_staged_build(struct userspace *u, struct us_staged *st, const struct plan_epset *e);

/* Put st's contents in force in its pool (the object stays, so do its
 * frontends' links); the old contents go, their endpoints living on in the
 * new ones, in snapshots and in connections. Endpoints of a set that stops
 * being checked are usable again. Returns whether the set is or was
 * health-checked (the checker's targets must then be updated). */
bool us_staged_commit(struct userspace *u, struct us_staged *st);

/* Forget a staged pool that was never committed. */
void us_staged_discard(struct us_staged *st);

/* Make room for extra more relays in u->stale. 0 or -ENOMEM (unchanged). */
int us_stale_reserve(struct userspace *u, size_t extra);

/* Whether traffic to k must be intercepted: everything but the wildcard
 * node ports, which already receive whatever reaches the host. */
bool us_wants_relay(const struct userspace *u, const struct us_key *k);

bool us_pools_sorted(struct us_pool *const *pools, size_t n);

/* The apply slot (userspace_apply.c). */
int us_apply(void *priv, const struct plan *plan, const struct plan_diff *diff);

#endif
