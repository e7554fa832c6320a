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
 * lists the frontends serving it (and, apart, those whose snapshot holds it
 * as their externalTrafficPolicy Local short-circuit set). apply finds the
 * sets a diff names by key (binary search), rebuilds just those pools in
 * place, and takes from each pool's two lists the frontends that need a
 * new snapshot; listeners open and
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
	/* Its endpoints (balancer->eps, in the plan's order) and affinity
	 * table (balancer->affinity) are the balancer's: no second copy. */
	struct balancer *balancer;
	struct health_check_cfg health;
};

/* One endpoint set, kept under its key for as long as the plan has it. */
struct us_pool {
	struct relay_svcport *port;     /* its service port's identity and counters */
	struct us_pool_data d;
	struct us_frontend *users;      /* open frontends serving it */
	struct us_frontend *sc_users;   /* open frontends short-circuiting to it */
	struct us_pool *checked_prev;   /* in u->checked while d.health.enabled */
	struct us_pool *checked_next;
	bool in_checked;
	bool doomed;                    /* apply: goes at the end of this apply */
	uint32_t mark;                  /* sync: the last sync that kept it (0: none;
					 * only equality with u->mark counts) */
	char key[];                     /* in the same allocation */
};

/* A listener key: what one listener set binds. */
struct us_key {
	struct inet_addr addr;
	enum inet_proto proto;
	uint16_t port;
};

/* One open frontend: its own listener set, or, when intercepted, its entry
 * in the service table of the shared relay sockets. The relay's frontend
 * comes first, in the same allocation (relay_frontend_init): its address,
 * protocol and port are the key in u->fes (us_frontend_key), and its last
 * reference, ours or a worker's, frees the whole record. */
struct us_frontend {
	/* Listened on, or, when us_intercepted (the same for every frontend
	 * of a backend), an entry in u->relay.table. */
	struct relay_frontend fe;
	struct us_pool *pool;           /* the set it serves; NULL: none */
	struct us_frontend *user_prev;  /* in pool->users */
	struct us_frontend *user_next;
	struct us_pool *sc_pool;        /* its short-circuit set; NULL: none */
	/* In sc_pool->sc_users, singly linked: a set has few of them (its
	 * service's external frontends), so unlinking walks. */
	struct us_frontend *sc_next;
};

/* f's key in u->fes: what its relay frontend binds or names. */
static inline struct us_key us_frontend_key(const struct us_frontend *f)
{
	return (struct us_key){ .addr = f->fe.addr, .proto = f->fe.proto, .port = f->fe.port };
}

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
	bool relays_changed;            /* an intercepted frontend came or went */
};

/* The backend's state (userspace_backend_ops.priv_size bytes, zeroed by
 * the core, filled by init, emptied by fini). */
struct userspace {
	bool ready;
	unsigned n_workers;
	struct relay_pool relay;
	struct health *health;
	struct us_pool **pools;         /* sorted by key */
	size_t n_pools;
	struct us_pool *checked;        /* pools with health checks (checked_next) */
	struct us_frontend **fes;       /* sorted by k (us_key_cmp) */
	size_t n_fes;
	struct balancer *empty;         /* for frontends without an endpoint set */
	struct us_skipped *skipped;     /* SCTP frontends of the plan, warned about */
	size_t n_skipped;
	struct inet_prefix *local_cidrs; /* --cluster-cidr: sources short-circuited as pods */
	size_t n_local_cidrs;
	const struct intercept_ops *intercept; /* NULL: no interception */
	void *intercept_priv;           /* its state (intercept->priv_size bytes), after its init */
	bool intercept_used;            /* intercept->sync was called once */
	/* The shared relay sockets (with an interception provider): per
	 * family (0 IPv4, 1 IPv6) and protocol (0 TCP, 1 UDP), one listener
	 * set on the wildcard address; NULL when it could not open. */
	struct relay_frontend *relays[2][2];
	uint32_t mark;                  /* sync counter for us_pool.mark */
	/* pool_build's list of a set's endpoints while it builds the set's
	 * balancer, kept from one set to the next (scratch_cap entries). */
	struct balancer_endpoint **scratch;
	size_t scratch_cap;
	struct userspace_stats stats;
};

/* ---- Functions shared across the backend's files ----
 *
 * Threads: all of them run on the control thread (the core's), one at a
 * time, and touch u without locks; the workers see only the refcounted
 * snapshots and listener sets handed to them (relay.h). Those marked pure
 * read nothing but their arguments.
 *
 * Failure: sync and apply first do what can fail for lack of memory
 * (us_staged_build, us_service_new, their own arrays)
 * and give up with nothing changed when it does; what fails after that
 * (opening or closing a listener set, the checker, the interception
 * provider) is collected in a struct us_result while the rest goes on.
 */

/* -- userspace_pools.c: endpoint pools -- */

/* The key the pool of plan set e is kept under: e's key ("" when it has
 * none, which the planner never emits). Borrowed from e. Pure. */
const char *us_epset_key(const struct plan_epset *e);

/* The pool kept under key, or NULL. Bisects u->pools, which must be in
 * us_pools_sorted order. key is borrowed. O(log n), no side effect. */
struct us_pool *us_pool_find(const struct userspace *u, const char *key);

/* Whether pools[0..n) is in strictly increasing key order, the order
 * u->pools keeps for us_pool_find. Pure. */
bool us_pools_sorted(struct us_pool *const *pools, size_t n);

/* Stage the new contents of plan set e's pool in *st without touching what
 * runs: st->pool is the pool kept under e's key (st->is_new false) or a
 * new one listed nowhere yet (true); st->d is built from e, reusing the
 * kept pool's endpoints (so their active counts and health) and its
 * affinity table when the timeout is the same. O(n log m) for n new and m
 * old endpoints; counts stats.pools_built. 0, or -ENOMEM with *st cleared
 * and nothing left allocated. *st is the caller's until exactly one of
 * us_staged_commit and us_staged_discard. */
int us_staged_build(struct userspace *u, struct us_staged *st, const struct plan_epset *e);

/* Put st->d in force in st->pool, which takes it over (st->d is cleared).
 * The pool object stays, and so do its frontends' links; the old contents
 * are dropped, their endpoints living on in the new ones, in snapshots and
 * in connections. The pool joins or leaves u->checked with its set's
 * health checks, and the endpoints of a set that stops being checked are
 * usable again. Listing a new pool in u->pools is the caller's. Cannot
 * fail. Returns whether the set is or was health-checked: the checker's
 * targets must then be updated (us_settle's health). */
bool us_staged_commit(struct userspace *u, struct us_staged *st);

/* Drop what us_staged_build made in *st and leave st->pool NULL: the new
 * contents, and the pool itself when it was new (a kept pool is not
 * touched). Never after us_staged_commit (the pool is in force then). A
 * cleared or discarded *st is a no-op. */
void us_staged_discard(struct us_staged *st);

/* Free pool p, which has left the plan: it leaves u->checked, the
 * frontends still listed as serving it or short-circuiting to it (only
 * ones kept after a failed close) are unlisted, and its contents are dropped (endpoints
 * live on where still referenced). Taking it out of u->pools is the
 * caller's. Accepts NULL. */
void us_pool_free(struct userspace *u, struct us_pool *p);

/* Hand the health checker the endpoints of every set that asks for checks,
 * walking u->checked only (the cost is that of the checked sets). The
 * checker takes its own references. Counts stats.health_updates. 0, or
 * -ENOMEM with the checker's previous targets in force. */
int us_health_update(struct userspace *u);

/* -- userspace_frontends.c: open frontends, relays, interception -- */

/* The listener key of plan frontend f: its address, protocol and port, but
 * the wildcard of its family for node ports on every address, and the IPv4
 * wildcard for a frontend without an address. Pure. */
struct us_key us_key_of(const struct plan_frontend *f);

/* The order of u->fes: address, then protocol, then port. <0, 0 or >0.
 * Pure. */
int us_key_cmp(const struct us_key *a, const struct us_key *b);

/* us_key_cmp of k against open frontend f's key. Pure. */
static inline int us_key_cmp_frontend(const struct us_key *k, const struct us_frontend *f)
{
	struct us_key fk = us_frontend_key(f);

	return us_key_cmp(k, &fk);
}

/* The open frontend under key k, or NULL. *ret_idx (when ret_idx is not
 * NULL) gets the index in u->fes where k is or would be inserted. O(log n),
 * no side effect. */
struct us_frontend *us_fes_find(const struct userspace *u, const struct us_key *k, size_t *ret_idx);

/* The frontend of plan that owns listener key k: of those that bind it,
 * the first in plan order, which is the one sync keeps. NULL: none.
 * Borrowed from plan, whose frontends must be in the planner's order.
 * O(log n): a few bisections, one per kind. Pure. */
const struct plan_frontend *us_plan_fe_owner(const struct plan *plan, const struct us_key *k);

/* Whether traffic to k is intercepted (the frontend is an entry of the
 * shared relay sockets' service table, with no socket of its own): for
 * every key when there is an interception provider (node ports on every
 * address too: the provider redirects them for any local address). The
 * provider is chosen at init, so the answer never changes for a backend:
 * open frontends ask again instead of remembering it. */
bool us_intercepted(const struct userspace *u, const struct us_key *k);

/* A new service snapshot of plan frontend f's policy (empty verdict, source
 * ranges) over the balancer of pool contents d (pool's, new or in force),
 * counting into pool's service port; pool and d NULL (a frontend without a
 * set): over u->empty. sc: the contents of
 * f's short-circuit set (f->short_circuit's pool), for the clients that
 * start on this node (u->local_cidrs and the node's own addresses); NULL:
 * none. The snapshot holds its own balancer references; the caller gets
 * one reference to it. Counts stats.services_made. NULL on ENOMEM. */
struct relay_service *us_service_new(struct userspace *u, const struct us_pool *pool,
				     const struct us_pool_data *d, const struct us_pool_data *sc,
				     const struct plan_frontend *f);

/* Open the frontend of listener key k, which is not open, serving svc
 * (references taken): its listener set handed to the workers, or, when
 * us_intercepted, its entry in the service table; it is listed among
 * pool's users (pool NULL: none) and sc's short-circuit users (sc NULL:
 * none, else the set svc short-circuits to). Returns it for the caller to
 * insert in u->fes at k's place, or NULL when it could not open (logged,
 * res->err). Sets res->listeners_changed or res->relays_changed. */
struct us_frontend *us_frontend_create(struct userspace *u, const struct us_key *k,
				       struct us_pool *pool, struct us_pool *sc, struct relay_service *svc,
				       struct us_result *res);

/* Keep open frontend f: new connections to it get svc from now on
 * (reference taken; established ones keep the endpoint they have), f is
 * listed among pool's users (NULL: none) and sc's short-circuit users
 * (NULL: none). Cannot fail; idempotent for the same svc and pool. */
void us_frontend_update(struct userspace *u, struct us_frontend *f, struct us_pool *pool,
			struct us_pool *sc, struct relay_service *svc, struct us_result *res);

/* Close open frontend f, which the plan no longer has: its listener set
 * now (established TCP connections stay), or its table entry (new
 * redirected connections to it are reset until the redirects follow in
 * us_settle). true: closed and freed, for the caller to leave out of
 * u->fes. false: the workers could not be asked (-ENOMEM in res->err): f
 * stays in u->fes serving its old snapshot, detached from its pool (which
 * may go), and the next sync retries. */
bool us_frontend_close(struct userspace *u, struct us_frontend *f, struct us_result *res);

/* Open the shared relay sockets (u->relays) for the interception
 * provider: both families, TCP and UDP, on ephemeral ports of the
 * wildcard addresses. 0, or -errno when IPv4's could not open (logged;
 * IPv6's failing is a warning: its frontends are then not redirected). */
int us_relays_open(struct userspace *u);

/* Note SCTP frontend f, which the relay does not serve: warn unless
 * u->skipped lists it (warned by an earlier sync or apply), and append it
 * to now[], in room the caller has made. sync passes a fresh list that
 * then replaces u->skipped; apply passes u->skipped itself, to which f is
 * then added only when new. */
void us_note_skipped(struct userspace *u, const struct plan_frontend *f,
		     struct us_skipped *now, size_t *n_now);

/* The end of a sync or an apply of plan, after its pool and listener work:
 * the health checker's targets when health (a checked set changed), the
 * redirects and plan's service-range guards when push (an intercepted
 * frontend came or went, or the guards changed), then, when any listener
 * set changed, a wait until the workers have closed what was closed. Every
 * step is tried; the first error goes into res->err. */
void us_settle(struct userspace *u, const struct plan *plan, bool health, bool push,
	       struct us_result *res);

/* -- userspace.c: the ops table, sync -- */

/* Monotonic clock in ms with µs resolution, for the debug timings of sync
 * and apply. Any thread. */
double us_now_ms(void);

/* -- userspace_apply.c -- */

/* The apply slot of userspace_backend_ops (backend.h): diff leads from the
 * plan of the last successful sync or apply to plan, and only what it
 * names is redone, work proportional to the diff. priv is the backend
 * state. 0 or -errno: out of memory, or a diff that does not follow from
 * the state, before anything changed; a listener, the checker or the
 * provider failing, after the rest was done. On any error the core falls
 * back to sync. */
int us_apply(void *priv, const struct plan *plan, const struct plan_diff *diff);

/* backend_ops.counts: the listener sets open, the intercepted frontends,
 * connections and flows open, checked endpoints by state. Control thread. */
void userspace_counts(void *priv, backend_count_fn emit, void *userdata);

/* backend_ops.service_stats: per service port traffic (summed over its
 * cluster-wide and Local sets) and the health of every checked endpoint.
 * The names handed to emit_stats and emit_health are valid during that
 * call only (split from the service port's label into a scratch buffer).
 * Control thread, at a scrape. */
void userspace_service_stats(void *priv, backend_service_stats_fn emit_stats,
			     backend_endpoint_health_fn emit_health, void *userdata);

#endif
