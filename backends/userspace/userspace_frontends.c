/* The userspace backend's open frontends: the listener key each plan
 * frontend maps to, the sorted index of open frontends (u->fes), the
 * listener sets and relays a frontend opens and closes, the service
 * snapshot it serves, and the redirects the interception provider is told.
 * sync (userspace.c) and apply (userspace_apply.c) decide which frontends
 * open, stay or close; the how is here.
 *
 * Interception (userspace_options.intercept, proxy/core/intercept.h). A
 * VIP listener only sees packets the host delivers locally: a cluster IP
 * or an external IP that is not assigned here is routed on, not delivered.
 * So when main hands us an interception provider, every frontend except
 * the wildcard node ports gets a second listener set, the "relay" of that
 * frontend: bound to the wildcard address of its family on an ephemeral
 * port, fed the same service snapshot; after each sync (and each apply
 * that opened or closed a relay) the provider is told {VIP, proto, port ->
 * relay port} and redirects that traffic (forwarded and the node's own)
 * there, with the plan's guards of the service range (cluster IPs' other
 * ports rejected, unallocated addresses of the service CIDRs dropped). The
 * VIP listener stays: it serves VIPs that are local (loopback, a standalone
 * balancer's own addresses, whose undefined ports the kernel refuses by
 * itself) and works without interception.
 * The provider's lifetime (init, cleanup, fini) is userspace.c's.
 *
 * Control thread only; the workers see the snapshots through relay.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "us_state.h"

/* Keep r in res when it is the first error. */
static void result_err(struct us_result *res, int r)
{
	if (r < 0 && res->err == 0)
		res->err = r;
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

/* Take f out of its pool's users: it serves none. */
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

/* Make f serve p instead of its pool. */
static void user_move(struct us_frontend *f, struct us_pool *p)
{
	if (f->pool == p)
		return;
	user_unlink(f);
	user_link(p, f);
}

/* The same three for the short-circuit list (p->sc_users, f->sc_pool). */
static void sc_link(struct us_pool *p, struct us_frontend *f)
{
	f->sc_pool = p;
	f->sc_prev = NULL;
	f->sc_next = p ? p->sc_users : NULL;
	if (p && p->sc_users)
		p->sc_users->sc_prev = f;
	if (p)
		p->sc_users = f;
}

static void sc_unlink(struct us_frontend *f)
{
	if (!f->sc_pool)
		return;
	if (f->sc_prev)
		f->sc_prev->sc_next = f->sc_next;
	else
		f->sc_pool->sc_users = f->sc_next;
	if (f->sc_next)
		f->sc_next->sc_prev = f->sc_prev;
	f->sc_pool = NULL;
	f->sc_prev = f->sc_next = NULL;
}

static void sc_move(struct us_frontend *f, struct us_pool *p)
{
	if (f->sc_pool == p)
		return;
	sc_unlink(f);
	sc_link(p, f);
}

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
				     const struct us_pool_data *sc, const struct plan_frontend *f)
{
	struct relay_service *s;

	s = relay_service_new(d ? d->balancer : u->empty, f->when_empty, f->source_ranges,
			      f->n_source_ranges, d ? d->label : "(no endpoint set)");
	if (s && sc && relay_service_set_short_circuit(s, sc->balancer, u->local_cidrs, u->n_local_cidrs) < 0)
		s = relay_service_unref(s);
	if (s)
		u->stats.services_made++;
	return s;
}

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

bool us_wants_relay(const struct userspace *u, const struct us_key *k)
{
	return u->intercept && !inet_addr_is_any(&k->addr);
}

/* Open a listener set for k serving svc and hand it to the workers: k's
 * own (relay false: bound to k's address and port) or k's relay (the
 * wildcard of k's family, an ephemeral port). 0 or -errno (logged; nothing
 * is left open). */
static int listener_set_open(struct userspace *u, const struct us_key *k, bool relay,
			     struct relay_service *svc, struct relay_frontend **ret)
{
	struct inet_addr any = inet_addr_any(k->addr.family);
	struct relay_frontend *fe;
	char ep[INET_ENDPOINT_STRLEN];
	int r;

	fe = relay_frontend_new(relay ? &any : &k->addr, k->proto, relay ? 0 : k->port, svc);
	r = fe ? listeners_open(u, fe) : -ENOMEM;
	if (r < 0) {
		relay_frontend_unref(fe);
		return log_warn_errno(r, "userspace: cannot %s %s/%s for %s",
				      relay ? "open the relay of" : "listen on",
				      inet_endpoint_format(&k->addr, k->port, ep),
				      inet_proto_name(k->proto), svc->label);
	}
	if (relay)
		log_info("userspace: relay %s receives intercepted %s/%s for %s", fe->name,
			 inet_endpoint_format(&k->addr, k->port, ep), inet_proto_name(k->proto),
			 svc->label);
	else
		log_info("userspace: listening on %s (%u workers) for %s", fe->name, u->n_workers,
			 svc->label);
	*ret = fe;
	return 0;
}

void us_frontend_update(struct userspace *u, struct us_frontend *f, struct us_pool *pool,
			struct us_pool *sc, struct relay_service *svc, struct us_result *res)
{
	int r;

	relay_frontend_set_service(f->fe, svc);
	if (f->relay) {
		relay_frontend_set_service(f->relay, svc);
	} else if (us_wants_relay(u, &f->k)) {
		r = listener_set_open(u, &f->k, true, svc, &f->relay);
		result_err(res, r); /* retried by the next sync */
		if (r == 0)
			res->relays_changed = res->listeners_changed = true;
	}
	user_move(f, pool);
	sc_move(f, sc);
}

struct us_frontend *us_frontend_create(struct userspace *u, const struct us_key *k,
					   struct us_pool *pool, struct us_pool *sc, struct relay_service *svc,
					   struct us_result *res)
{
	struct us_frontend *f = calloc(1, sizeof(*f));
	int r;

	if (!f) {
		result_err(res, log_warn_errno(-ENOMEM, "userspace: cannot open a frontend for %s",
					    svc->label));
		return NULL;
	}
	r = listener_set_open(u, k, false, svc, &f->fe);
	if (r < 0) {
		result_err(res, r);
		free(f);
		return NULL;
	}
	f->k = *k;
	res->listeners_changed = true;
	if (us_wants_relay(u, k)) {
		r = listener_set_open(u, k, true, svc, &f->relay);
		result_err(res, r);
		if (r == 0)
			res->relays_changed = true;
	}
	user_link(pool, f);
	sc_link(sc, f);
	return f;
}

bool us_frontend_close(struct userspace *u, struct us_frontend *f, struct us_result *res)
{
	int r = relay_pool_remove_listeners(&u->relay, f->fe);

	if (r < 0) {
		result_err(res, r);
		user_unlink(f); /* its pools may go */
		sc_unlink(f);
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
	sc_unlink(f);
	free(f);
	return true;
}

int us_stale_reserve(struct userspace *u, size_t extra)
{
	struct relay_frontend **s = realloc(u->stale, (u->n_stale + extra + 1) * sizeof(*s));

	if (!s)
		return -ENOMEM;
	u->stale = s;
	return 0;
}

/* Tell the provider the redirects of every open relay and plan's guards
 * of the service range. 0 or -errno (the provider logged it; its previous
 * rules stay in force). */
static int intercept_push(struct userspace *u, const struct plan *plan)
{
	const struct intercept_guards guards = {
		.cluster_ips = plan->cluster_ips,
		.n_cluster_ips = plan->n_cluster_ips,
		.service_cidrs = plan->service_cidrs,
		.n_service_cidrs = plan->n_service_cidrs,
	};
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
	r = u->intercept->sync(u->intercept_priv, entries, n, &guards);
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

/* The order matters: new relays are listening already, and removed ones
 * close only after the rules stop sending them traffic. */
void us_settle(struct userspace *u, const struct plan *plan, bool health, bool push,
	       struct us_result *res)
{
	if (health)
		result_err(res, us_health_update(u));
	if (u->intercept && push)
		result_err(res, intercept_push(u, plan));
	if (u->n_stale > 0) {
		res->listeners_changed = true;
		result_err(res, stale_close(u));
	}
	if (res->listeners_changed)
		relay_pool_wait(&u->relay);
}
