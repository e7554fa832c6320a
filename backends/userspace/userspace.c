/* The userspace backend's ops table and the translation of a plan into
 * relay state: endpoint pools (one per endpoint set, kept across syncs so
 * active counts, health and affinity survive), one service snapshot per
 * frontend, and one listener set per (address, protocol, port).
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
 * sync rebuilds every pool and snapshot: the full reconciliation, the
 * reference apply must agree with, and the core's way out of any error.
 *
 * Interception (userspace_options.intercept, proxy/core/intercept.h). A VIP listener only
 * sees packets the host delivers locally: a cluster IP or an external IP
 * that is not assigned here is routed on, not delivered. So when main hands
 * us an interception provider, every frontend except the wildcard node
 * ports gets a second listener set, the "relay" of that frontend: bound to
 * the wildcard address of its family on an ephemeral port, fed the same
 * service snapshot; after each sync (and each apply that opened or closed a
 * relay) the provider is told {VIP, proto, port -> relay port} and
 * redirects that traffic (forwarded and the node's own) there. The VIP
 * listener stays: it serves VIPs that are local (loopback, a standalone
 * balancer's own addresses) and works without interception.
 *
 * All of this runs on the control thread; the workers only ever see
 * refcounted snapshots (relay.h), so a sync never stops traffic.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "health.h"
#include "log.h"
#include "relay.h"
#include "userspace.h"

#include "us_state.h"

/* Monotonic clock in ms with µs resolution, for the debug timings. */
double us_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Keep r in res when it is the first error. */
static void result_err(struct us_result *res, int r)
{
	if (r < 0 && res->err == 0)
		res->err = r;
}

/* ---- pools ---- */

const char *us_epset_key(const struct plan_epset *e)
{
	return e->key ? e->key : "";
}

static void pool_data_done(struct us_pool_data *d)
{
	for (size_t i = 0; i < d->n_eps; i++)
		balancer_endpoint_unref(d->eps[i]);
	free(d->eps);
	balancer_affinity_unref(d->affinity);
	balancer_unref(d->balancer);
	memset(d, 0, sizeof(*d));
}

/* Make f serve p (NULL: no pool). f must be in no list. */
static void user_link(struct us_pool *p, struct us_frontend *f)
{
	f->pool = p;
	f->user_prev = NULL;
	f->user_next = p ? p->users : NULL;
	if (p && p->users)
		p->users->user_prev = f;
	if (p)
		p->users = f;
}

static void user_unlink(struct us_frontend *f)
{
	if (!f->pool)
		return;
	if (f->user_prev)
		f->user_prev->user_next = f->user_next;
	else
		f->pool->users = f->user_next;
	if (f->user_next)
		f->user_next->user_prev = f->user_prev;
	f->pool = NULL;
	f->user_prev = f->user_next = NULL;
}

static void user_move(struct us_frontend *f, struct us_pool *p)
{
	if (f->pool == p)
		return;
	user_unlink(f);
	user_link(p, f);
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

/* Free a pool that has left the plan; frontends still serving it (only
 * ones kept after a failed close) are detached. */
void us_pool_free(struct userspace *u, struct us_pool *p)
{
	while (p->users)
		user_unlink(p->users);
	checked_set(u, p, false);
	pool_data_done(&p->d);
	free(p->key);
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

static int pool_ptr_cmp(const void *x, const void *y)
{
	const struct us_pool *a = *(const struct us_pool *const *)x;
	const struct us_pool *b = *(const struct us_pool *const *)y;

	return strcmp(a->key, b->key);
}

static void epset_label(const struct plan_epset *e, char *buf, size_t len)
{
	if (e->port_name[0])
		snprintf(buf, len, "%s/%s:%s", e->ns ? e->ns : "?", e->svc_name ? e->svc_name : "?",
			 e->port_name);
	else
		snprintf(buf, len, "%s/%s", e->ns ? e->ns : "?", e->svc_name ? e->svc_name : "?");
}

/* The plan's endpoint order: (addr, port). */
static int ep_cmp(const struct inet_addr *a1, uint16_t p1, const struct inet_addr *a2, uint16_t p2)
{
	int c = inet_addr_cmp(a1, a2);

	if (c)
		return c;
	return (p1 > p2) - (p1 < p2);
}

static bool eps_sorted(struct balancer_endpoint *const *eps, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (ep_cmp(&eps[i - 1]->addr, eps[i - 1]->port, &eps[i]->addr, eps[i]->port) >= 0)
			return false;
	return true;
}

/* The endpoint addr:port of old, or NULL. sorted: old->eps is in (addr,
 * port) order (as the plan gives it), so it can be bisected. */
static struct balancer_endpoint *pool_data_find(const struct us_pool_data *old, bool sorted,
						const struct inet_addr *addr, uint16_t port)
{
	size_t lo = 0, hi = old->n_eps;

	if (!sorted) {
		for (size_t k = 0; k < old->n_eps; k++)
			if (ep_cmp(&old->eps[k]->addr, old->eps[k]->port, addr, port) == 0)
				return old->eps[k];
		return NULL;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = ep_cmp(&old->eps[mid]->addr, old->eps[mid]->port, addr, port);

		if (c == 0)
			return old->eps[mid];
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
	bool sorted = old && eps_sorted(old->eps, old->n_eps);

	memset(d, 0, sizeof(*d));
	epset_label(e, d->label, sizeof(d->label));
	d->health = e->health;
	if (e->n_endpoints > 0) {
		d->eps = calloc(e->n_endpoints, sizeof(*d->eps));
		if (!d->eps)
			goto nomem;
	}
	for (size_t i = 0; i < e->n_endpoints; i++) {
		const struct plan_endpoint *pe = &e->endpoints[i];
		struct balancer_endpoint *ep = old ? pool_data_find(old, sorted, &pe->addr, pe->port) : NULL;

		ep = ep ? balancer_endpoint_ref(ep) : balancer_endpoint_new(&pe->addr, pe->port);
		if (!ep)
			goto nomem;
		d->eps[d->n_eps++] = ep;
	}
	if (e->affinity) {
		uint32_t t = e->affinity_timeout_s; /* set whenever affinity is (plan-t.h) */

		if (old && old->affinity && balancer_affinity_timeout(old->affinity) == t)
			d->affinity = balancer_affinity_ref(old->affinity);
		else
			d->affinity = balancer_affinity_new(t);
		if (!d->affinity)
			goto nomem;
	}
	d->balancer = balancer_new(e->balance, d->eps, d->n_eps, d->affinity);
	if (!d->balancer)
		goto nomem;
	u->stats.pools_built++;
	return 0;
nomem:
	pool_data_done(d);
	return -ENOMEM;
}

/* Forget a staged pool that was never committed. */
void us_staged_discard(struct us_staged *st)
{
	pool_data_done(&st->d);
	if (st->is_new && st->pool) {
		free(st->pool->key);
		free(st->pool);
	}
	st->pool = NULL;
}

/* Build the new contents of e's pool into st, without touching the pool:
 * the pool kept under e's key, or a new one. 0 or -ENOMEM (st cleared). */
int us_staged_build(struct userspace *u, struct us_staged *st, const struct plan_epset *e)
{
	int r;

	st->pool = us_pool_find(u, us_epset_key(e));
	st->is_new = !st->pool;
	if (st->is_new) {
		st->pool = calloc(1, sizeof(*st->pool));
		if (!st->pool)
			return -ENOMEM;
		st->pool->key = strdup(us_epset_key(e));
		if (!st->pool->key) {
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

/* Put st's contents in force in its pool (the object stays, so do its
 * frontends' links); the old contents go, their endpoints living on in the
 * new ones, in snapshots and in connections. Endpoints of a set that stops
 * being checked are usable again. Returns whether the set is or was
 * health-checked (the checker's targets must then be updated). */
bool us_staged_commit(struct userspace *u, struct us_staged *st)
{
	struct us_pool *p = st->pool;
	bool was = p->d.health.enabled, now = st->d.health.enabled;

	pool_data_done(&p->d);
	p->d = st->d;
	memset(&st->d, 0, sizeof(st->d));
	checked_set(u, p, now);
	if (was && !now)
		for (size_t k = 0; k < p->d.n_eps; k++)
			atomic_store(&p->d.eps[k]->healthy, true);
	return was || now;
}

/* Hand the health checker every endpoint of every set that asks for it
 * (only those: the walk is over u->checked). 0 or -ENOMEM. */
int us_health_update(struct userspace *u)
{
	struct health_target *t;
	size_t n = 0, cap = 0;
	int r;

	for (struct us_pool *p = u->checked; p; p = p->checked_next)
		cap += p->d.n_eps;
	t = calloc(cap ? cap : 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (struct us_pool *p = u->checked; p; p = p->checked_next) {
		for (size_t k = 0; k < p->d.n_eps; k++) {
			t[n].ep = p->d.eps[k];
			t[n].cfg = p->d.health;
			t[n].label = p->d.label;
			n++;
		}
	}
	r = health_set_targets(u->health, t, n);
	free(t);
	if (r == 0)
		u->stats.health_updates++;
	return r;
}

/* ---- frontends ---- */

int us_key_cmp(const struct us_key *a, const struct us_key *b)
{
	int c = inet_addr_cmp(&a->addr, &b->addr);

	if (c)
		return c;
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	return (a->port > b->port) - (a->port < b->port);
}

struct us_frontend *us_fes_find(const struct userspace *u, const struct us_key *k, size_t *ret_idx)
{
	size_t lo = 0, hi = u->n_fes;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (us_key_cmp(k, &u->fes[mid]->k) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (ret_idx)
		*ret_idx = lo;
	return lo < u->n_fes && us_key_cmp(k, &u->fes[lo]->k) == 0 ? u->fes[lo] : NULL;
}

/* The address a frontend's sockets bind: node ports on "every address" get
 * the wildcard of their family. */
static struct inet_addr bind_addr(const struct plan_frontend *f)
{
	if (f->addr.family == 0)
		return inet_addr_any(AF_INET);
	if (f->kind == FRONTEND_NODE_PORT && inet_addr_is_any(&f->addr))
		return inet_addr_any(f->addr.family);
	return f->addr;
}

struct us_key us_key_of(const struct plan_frontend *f)
{
	struct us_key k = { .addr = bind_addr(f), .proto = f->proto, .port = f->port };

	return k;
}

/* The plan's order of frontends (planner.c): (kind, addr, proto, port). */
static int plan_fe_cmp(const struct plan_frontend *f, enum frontend_kind kind,
		       const struct inet_addr *addr, enum inet_proto proto, uint16_t port)
{
	int c;

	if (f->kind != kind)
		return f->kind < kind ? -1 : 1;
	c = inet_addr_cmp(&f->addr, addr);
	if (c)
		return c;
	if (f->proto != proto)
		return f->proto < proto ? -1 : 1;
	return (f->port > port) - (f->port < port);
}

static const struct plan_frontend *plan_fe_bsearch(const struct plan *plan, enum frontend_kind kind,
						   const struct inet_addr *addr, enum inet_proto proto,
						   uint16_t port)
{
	size_t lo = 0, hi = plan->n_frontends;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = plan_fe_cmp(&plan->frontends[mid], kind, addr, proto, port);

		if (c == 0)
			return &plan->frontends[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The frontend of plan that owns listener key k: of those that bind it,
 * the first in plan order, which is the one sync keeps. NULL: none.
 * O(log n): a few bisections, one per kind. */
const struct plan_frontend *us_plan_fe_owner(const struct plan *plan, const struct us_key *k)
{
	struct inet_addr unset;
	const struct plan_frontend *best = NULL, *f;
	bool any4 = k->addr.family == AF_INET && inet_addr_is_any(&k->addr);

	memset(&unset, 0, sizeof(unset));
	for (int kind = FRONTEND_CLUSTER_IP; kind <= FRONTEND_LOAD_BALANCER; kind++) {
		f = plan_fe_bsearch(plan, (enum frontend_kind)kind, &k->addr, k->proto, k->port);
		if (f && (!best || f < best))
			best = f;
		/* A frontend without an address binds the IPv4 wildcard. */
		f = any4 ? plan_fe_bsearch(plan, (enum frontend_kind)kind, &unset, k->proto, k->port) : NULL;
		if (f && (!best || f < best))
			best = f;
	}
	return best;
}

struct relay_service *us_service_new(struct userspace *u, const struct us_pool_data *d,
				     const struct plan_frontend *f)
{
	struct relay_service *s;

	s = relay_service_new(d ? d->balancer : u->empty, f->when_empty, f->source_ranges,
			      f->n_source_ranges, d ? d->label : "(no endpoint set)");
	if (s)
		u->stats.services_made++;
	return s;
}

/* Warn about SCTP frontend f unless u->skipped says it was already, and
 * add it to now[] (which may be u->skipped itself: then only when new). */
void us_note_skipped(struct userspace *u, const struct plan_frontend *f,
			 struct us_skipped *now, size_t *n_now)
{
	char ep[INET_ENDPOINT_STRLEN];
	bool known = false;

	for (size_t i = 0; i < u->n_skipped; i++)
		if (u->skipped[i].port == f->port && inet_addr_cmp(&u->skipped[i].addr, &f->addr) == 0)
			known = true;
	if (!known)
		log_warn("userspace: skipping %s/SCTP: SCTP is not supported by the userspace relay",
			 inet_endpoint_format(&f->addr, f->port, ep));
	if (!(known && now == u->skipped)) {
		now[*n_now].addr = f->addr;
		now[*n_now].port = f->port;
		(*n_now)++;
	}
}

/* Open one socket per worker for fe and hand them to the workers. A
 * frontend made with port 0 takes the port the kernel gave its first
 * socket. 0 or -errno (nothing is left open). */
static int listeners_open(struct userspace *u, struct relay_frontend *fe)
{
	int *fds = calloc(u->n_workers, sizeof(*fds));
	unsigned opened = 0;
	int r = 0;

	if (!fds)
		return -ENOMEM;
	for (; opened < u->n_workers; opened++) {
		fds[opened] = relay_listener_socket(fe);
		if (fds[opened] < 0) {
			r = fds[opened];
			break;
		}
		if (fe->port == 0) {
			r = relay_listener_port(fds[opened]);
			if (r < 0) {
				opened++;
				break;
			}
			relay_frontend_set_port(fe, (uint16_t)r);
			r = 0;
		}
	}
	if (r == 0)
		r = relay_pool_add_listeners(&u->relay, fe, fds);
	if (r < 0)
		for (unsigned i = 0; i < opened; i++)
			close(fds[i]);
	free(fds);
	if (r == 0)
		u->stats.listeners_opened++;
	return r;
}

/* Open the listener set of a new frontend and hand it to the workers. */
static int frontend_open(struct userspace *u, const struct us_key *k, struct relay_service *svc,
			 struct relay_frontend **ret)
{
	struct relay_frontend *fe;
	char ep[INET_ENDPOINT_STRLEN];
	int r;

	fe = relay_frontend_new(&k->addr, k->proto, k->port, svc);
	r = fe ? listeners_open(u, fe) : -ENOMEM;
	if (r < 0) {
		relay_frontend_unref(fe);
		return log_warn_errno(r, "userspace: cannot listen on %s/%s for %s",
				      inet_endpoint_format(&k->addr, k->port, ep),
				      inet_proto_name(k->proto), svc->label);
	}
	log_info("userspace: listening on %s (%u workers) for %s", fe->name, u->n_workers,
		 svc->label);
	*ret = fe;
	return 0;
}

/* Whether traffic to k must be intercepted: everything but the wildcard
 * node ports, which already receive whatever reaches the host. */
bool us_wants_relay(const struct userspace *u, const struct us_key *k)
{
	return u->intercept && !inet_addr_is_any(&k->addr);
}

/* Open the relay listener set of k: the wildcard of its family on an
 * ephemeral port, serving svc. 0 or -errno (logged). */
static int relay_open(struct userspace *u, const struct us_key *k, struct relay_service *svc,
		      struct relay_frontend **ret)
{
	struct inet_addr any = inet_addr_any(k->addr.family);
	struct relay_frontend *fe;
	char ep[INET_ENDPOINT_STRLEN];
	int r;

	fe = relay_frontend_new(&any, k->proto, 0, svc);
	r = fe ? listeners_open(u, fe) : -ENOMEM;
	if (r < 0) {
		relay_frontend_unref(fe);
		return log_warn_errno(r, "userspace: cannot open the relay of %s/%s for %s",
				      inet_endpoint_format(&k->addr, k->port, ep),
				      inet_proto_name(k->proto), svc->label);
	}
	log_info("userspace: relay %s receives intercepted %s/%s for %s", fe->name,
		 inet_endpoint_format(&k->addr, k->port, ep), inet_proto_name(k->proto),
		 svc->label);
	*ret = fe;
	return 0;
}

/* A frontend that stays gets svc for new connections (its relay too) and
 * serves pool from now on; a relay that is wanted but missing (an earlier
 * failure) is opened. */
void us_frontend_update(struct userspace *u, struct us_frontend *f, struct us_pool *pool,
			struct relay_service *svc, struct us_result *res)
{
	int r;

	relay_frontend_set_service(f->fe, svc);
	if (f->relay) {
		relay_frontend_set_service(f->relay, svc);
	} else if (us_wants_relay(u, &f->k)) {
		r = relay_open(u, &f->k, svc, &f->relay);
		result_err(res, r); /* retried by the next sync */
		if (r == 0)
			res->relays_changed = res->listeners_changed = true;
	}
	user_move(f, pool);
}

/* Open a frontend the plan adds: its listeners, its relay when wanted.
 * NULL when it could not be opened (logged; res->err set). */
struct us_frontend *us_frontend_create(struct userspace *u, const struct us_key *k,
					   struct us_pool *pool, struct relay_service *svc,
					   struct us_result *res)
{
	struct us_frontend *f = calloc(1, sizeof(*f));
	int r;

	if (!f) {
		result_err(res, log_warn_errno(-ENOMEM, "userspace: cannot open a frontend for %s",
					    svc->label));
		return NULL;
	}
	r = frontend_open(u, k, svc, &f->fe);
	if (r < 0) {
		result_err(res, r);
		free(f);
		return NULL;
	}
	f->k = *k;
	res->listeners_changed = true;
	if (us_wants_relay(u, k)) {
		r = relay_open(u, k, svc, &f->relay);
		result_err(res, r);
		if (r == 0)
			res->relays_changed = true;
	}
	user_link(pool, f);
	return f;
}

/* Close a frontend the plan no longer has: its listeners now (established
 * TCP connections stay), its relay into u->stale (room for it is the
 * caller's), closed once no redirect points to it. true: closed and freed;
 * false: kept, still serving its old snapshot, to be retried (res->err
 * set). */
bool us_frontend_close(struct userspace *u, struct us_frontend *f, struct us_result *res)
{
	int r = relay_pool_remove_listeners(&u->relay, f->fe);

	if (r < 0) {
		result_err(res, r);
		user_unlink(f); /* its pool may go */
		return false;
	}
	log_info("userspace: closed %s", f->fe->name);
	u->stats.listeners_closed++;
	res->listeners_changed = true;
	relay_frontend_unref(f->fe);
	if (f->relay) {
		u->stale[u->n_stale++] = f->relay;
		res->relays_changed = true;
	}
	user_unlink(f);
	free(f);
	return true;
}

/* Make room for extra more relays in u->stale. 0 or -ENOMEM (unchanged). */
int us_stale_reserve(struct userspace *u, size_t extra)
{
	struct relay_frontend **s = realloc(u->stale, (u->n_stale + extra + 1) * sizeof(*s));

	if (!s)
		return -ENOMEM;
	u->stale = s;
	return 0;
}

/* Tell the provider the redirects of every open relay. 0 or -errno (the
 * provider logged it; its previous rules stay in force). */
static int intercept_push(struct userspace *u)
{
	struct intercept_entry *entries = calloc(u->n_fes + 1, sizeof(*entries));
	size_t n = 0;
	int r;

	if (!entries)
		return -ENOMEM;
	for (size_t i = 0; i < u->n_fes; i++) {
		const struct us_frontend *f = u->fes[i];

		if (!f->relay)
			continue;
		entries[n].addr = f->fe->addr;
		entries[n].proto = f->fe->proto;
		entries[n].port = f->fe->port;
		entries[n].relay_port = f->relay->port;
		n++;
	}
	u->intercept_used = true;
	u->stats.intercept_pushes++;
	r = u->intercept->sync(u->intercept_priv, entries, n);
	free(entries);
	return r;
}

/* Close the relays in u->stale (removed frontends', after the redirects to
 * them are gone); those that cannot be closed now stay for the next sync. */
static int stale_close(struct userspace *u)
{
	size_t keep = 0;
	int err = 0;

	for (size_t i = 0; i < u->n_stale; i++) {
		struct relay_frontend *fe = u->stale[i];
		int r = relay_pool_remove_listeners(&u->relay, fe);

		if (r < 0) {
			err = err ? err : r;
			u->stale[keep++] = fe;
		} else {
			log_info("userspace: closed relay %s", fe->name);
			u->stats.listeners_closed++;
			relay_frontend_unref(fe);
		}
	}
	u->n_stale = keep;
	return err;
}

/* The end of a sync or an apply, after the pool and listener work. Order
 * matters: new relays are listening already, removed ones close only after
 * the rules stop sending them traffic. */
void us_settle(struct userspace *u, bool health, bool push, struct us_result *res)
{
	if (health)
		result_err(res, us_health_update(u));
	if (u->intercept && push)
		result_err(res, intercept_push(u));
	if (u->n_stale > 0) {
		res->listeners_changed = true;
		result_err(res, stale_close(u));
	}
	if (res->listeners_changed)
		relay_pool_wait(&u->relay);
}

/* ---- sync: the whole plan ---- */

/* A frontend the plan asks for, while a sync is being worked out. */
struct us_wanted {
	struct us_key k;
	size_t order;                   /* index in the plan: on a tie the first wins */
	struct us_pool *pool;           /* the set it serves; NULL: none */
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
		const struct us_pool_data *d = NULL;
		struct us_pool *pool = NULL;

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
		wanted[n].k = us_key_of(f);
		wanted[n].order = i;
		wanted[n].pool = pool;
		wanted[n].svc = us_service_new(u, d, f);
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
				 inet_proto_name(wanted[i].k.proto), wanted[out - 1].svc->label,
				 wanted[i].svc->label);
			relay_service_unref(wanted[i].svc);
			continue;
		}
		wanted[out++] = wanted[i];
	}
	*ret = wanted;
	*ret_n = out;
	return 0;
}

bool us_pools_sorted(struct us_pool *const *pools, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (strcmp(pools[i - 1]->key, pools[i]->key) >= 0)
			return false;
	return true;
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
	if (!staged || !pools || !skipped || !fes || us_stale_reserve(u, u->n_fes) < 0) {
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
	u->mark++;
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
		int c = !w ? 1 : !oldf ? -1 : us_key_cmp(&w->k, &oldf->k);

		if (c == 0) {
			/* Stays: same sockets, new snapshot for new connections. */
			us_frontend_update(u, oldf, w->pool, w->svc, &res);
			fes[n_fes++] = oldf;
			i++, k++;
		} else if (c < 0) {
			struct us_frontend *nf = us_frontend_create(u, &w->k, w->pool, w->svc, &res);

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
	free(u->skipped);
	u->skipped = skipped;
	u->n_skipped = n_skipped;
	skipped = NULL;

	/* 5. Endpoints of sets without checks are usable by definition; the
	 *    checker gets the others. */
	for (i = 0; i < u->n_pools; i++)
		if (!u->pools[i]->d.health.enabled)
			for (k = 0; k < u->pools[i]->d.n_eps; k++)
				atomic_store(&u->pools[i]->d.eps[k]->healthy, true);
	/* 6. Checker, redirects, stale relays; removed listeners are closed
	 *    when sync returns. */
	res.listeners_changed = true;
	us_settle(u, true, true, &res);
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
					      : u->intercept->sync(u->intercept_priv, NULL, 0);

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
		relay_frontend_unref(u->fes[i]->fe);
		relay_frontend_unref(u->fes[i]->relay);
		free(u->fes[i]);
	}
	free(u->fes);
	for (size_t i = 0; i < u->n_stale; i++)
		relay_frontend_unref(u->stale[i]);
	free(u->stale);
	/* The frontends are gone: nothing to detach. */
	for (size_t i = 0; i < u->n_pools; i++) {
		u->pools[i]->users = NULL;
		us_pool_free(u, u->pools[i]);
	}
	free(u->pools);
	balancer_unref(u->empty);
	free(u->skipped);
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
	u->ready = true;
	log_info("userspace: %u relay workers started%s%s", u->n_workers,
		 u->intercept ? ", traffic to non-local frontends intercepted with " : "",
		 u->intercept ? u->intercept->name : "");
	return 0;
}

const struct backend_ops userspace_backend_ops = {
	.name = "userspace",
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
};
