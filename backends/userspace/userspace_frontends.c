/* The userspace backend's open frontends: the listener key each plan
 * frontend maps to, the sorted index of open frontends (u->fes), the
 * listener sets or service-table entries a frontend opens and closes, the
 * shared relay sockets of the interception, the service
 * snapshot it serves, and the redirects the interception provider is told.
 * sync (userspace.c) and apply (userspace_apply.c) decide which frontends
 * open, stay or close; the how is here.
 *
 * Interception (userspace_options.intercept, proxy/core/intercept.h). A
 * VIP listener only sees packets the host delivers locally: a cluster IP
 * or an external IP that is not assigned here is routed on, not delivered.
 * So when main hands us an interception provider, the relay opens, once,
 * a constant set of shared relay sockets (per worker: TCP and UDP, IPv4
 * and IPv6, on ephemeral ports of the wildcard addresses; u->relays), and
 * no frontend opens a socket at all: each is an entry of the service table (relay_table, a hash by address,
 * protocol, port) holding its snapshot. After each sync (and each apply
 * that added or removed such a frontend) the provider is told {VIP, proto,
 * port -> the shared port of that family and protocol} and redirects that
 * traffic (forwarded and the node's own) there (a node port on every
 * address, a wildcard entry, for any local destination address), with the plan's guards of
 * the service range (cluster IPs' other ports rejected, unallocated
 * addresses of the service CIDRs dropped). A worker finds the frontend of
 * an accepted connection by its original destination (SO_ORIGINAL_DST),
 * of a new UDP flow by asking conntrack (ct_origin.h). So 100k services
 * cost 4 x workers relay sockets, not 4 per service and worker.
 * Without a provider every frontend listens on its own address (a
 * standalone balancer's VIPs are its own, the kernel refuses their
 * undefined ports, and no kernel rule is installed).
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

/* The same three for the short-circuit list (p->sc_users, f->sc_pool),
 * which is singly linked. */
static void sc_link(struct us_pool *p, struct us_frontend *f)
{
	f->sc_pool = p;
	f->sc_next = p ? p->sc_users : NULL;
	if (p)
		p->sc_users = f;
}

static void sc_unlink(struct us_frontend *f)
{
	if (!f->sc_pool)
		return;
	for (struct us_frontend **at = &f->sc_pool->sc_users; *at; at = &(*at)->sc_next) {
		if (*at == f) {
			*at = f->sc_next;
			break;
		}
	}
	f->sc_pool = NULL;
	f->sc_next = NULL;
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

		if (us_key_cmp_frontend(k, u->fes[mid]) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (ret_idx)
		*ret_idx = lo;
	return lo < u->n_fes && us_key_cmp_frontend(k, u->fes[lo]) == 0 ? u->fes[lo] : NULL;
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

struct relay_service *us_service_new(struct userspace *u, const struct us_pool *pool,
				     const struct us_pool_data *d, const struct us_pool_data *sc,
				     const struct plan_frontend *f)
{
	struct relay_service *s;

	s = relay_service_new(d ? d->balancer : u->empty, f->when_empty, f->source_ranges,
			      f->n_source_ranges, pool ? pool->port : NULL);
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

bool us_intercepted(const struct userspace *u, const struct us_key *k)
{
	(void)k;
	return u->intercept != NULL;
}

/* Open a listener set for fe (serving svc) and hand it to the workers. 0
 * or -errno (logged; nothing is left open, no reference taken on fe). */
static int listener_set_open(struct userspace *u, struct relay_frontend *fe, struct relay_service *svc)
{
	int r = listeners_open(u, fe);

	if (r < 0)
		return log_warn_errno(r, "userspace: cannot listen on %s for %s", RELAY_FE_NAME(fe),
				      relay_service_label(svc));
	log_info("userspace: listening on %s (%u workers) for %s", RELAY_FE_NAME(fe), u->n_workers,
		 relay_service_label(svc));
	return 0;
}

/* Enter fe, serving svc, in the shared relay sockets' service table (which
 * takes its own reference). 0 or -errno (logged). */
static int table_entry_open(struct userspace *u, struct relay_frontend *fe, struct relay_service *svc)
{
	int r = relay_table_add(&u->relay.table, fe);

	if (r < 0)
		return log_warn_errno(r, "userspace: cannot intercept %s for %s", RELAY_FE_NAME(fe),
				      relay_service_label(svc));
	log_debug("userspace: %s intercepted for %s", RELAY_FE_NAME(fe), relay_service_label(svc));
	return 0;
}

int us_relays_open(struct userspace *u)
{
	static const enum inet_proto protos[2] = { INET_PROTO_TCP, INET_PROTO_UDP };

	for (int fam = 0; fam < 2; fam++) {
		for (int p = 0; p < 2; p++) {
			struct inet_addr any = inet_addr_any(fam ? AF_INET6 : AF_INET);
			struct relay_frontend *fe = relay_frontend_new(&any, protos[p], 0, NULL);
			int r = -ENOMEM;

			if (fe) {
				fe->intercept = true;
				r = listeners_open(u, fe);
			}
			if (r < 0) {
				relay_frontend_unref(fe);
				if (fam == 0)
					return log_errno(r, "userspace: cannot open the shared %s relay socket",
							 inet_proto_name(protos[p]));
				log_warn_errno(r, "userspace: cannot open the shared IPv6 %s relay socket; "
					       "IPv6 %s frontends are not intercepted",
					       inet_proto_name(protos[p]), inet_proto_name(protos[p]));
				continue;
			}
			u->relays[fam][p] = fe;
			log_info("userspace: relay %s receives intercepted traffic (%u workers)", RELAY_FE_NAME(fe),
				 u->n_workers);
		}
	}
	return 0;
}

/* The shared relay socket set that receives traffic intercepted for k, or
 * NULL (none open for k's family and protocol). */
static const struct relay_frontend *relay_for(const struct userspace *u, const struct us_key *k)
{
	return u->relays[k->addr.family == AF_INET6][k->proto == INET_PROTO_UDP];
}

void us_frontend_update(struct userspace *u, struct us_frontend *f, struct us_pool *pool,
			struct us_pool *sc, struct relay_service *svc, struct us_result *res)
{
	(void)u;
	(void)res;
	relay_frontend_set_service(&f->fe, svc);
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
					    relay_service_label(svc)));
		return NULL;
	}
	relay_frontend_init(&f->fe, &k->addr, k->proto, k->port, svc);
	r = us_intercepted(u, k) ? table_entry_open(u, &f->fe, svc) : listener_set_open(u, &f->fe, svc);
	if (r < 0) {
		result_err(res, r);
		relay_frontend_unref(&f->fe); /* the only reference: frees f */
		return NULL;
	}
	if (us_intercepted(u, k))
		res->relays_changed = true;
	else
		res->listeners_changed = true;
	user_link(pool, f);
	sc_link(sc, f);
	return f;
}

bool us_frontend_close(struct userspace *u, struct us_frontend *f, struct us_result *res)
{
	struct us_key k = us_frontend_key(f);

	if (us_intercepted(u, &k)) {
		relay_table_remove(&u->relay.table, &f->fe);
		log_debug("userspace: %s no longer intercepted", RELAY_FE_NAME(&f->fe));
		res->relays_changed = true;
	} else {
		int r = relay_pool_remove_listeners(&u->relay, &f->fe);

		if (r < 0) {
			result_err(res, r);
			user_unlink(f); /* its pools may go */
			sc_unlink(f);
			return false;
		}
		log_info("userspace: closed %s", RELAY_FE_NAME(&f->fe));
		u->stats.listeners_closed++;
		res->listeners_changed = true;
	}
	user_unlink(f);
	sc_unlink(f);
	/* Ours; the record goes with the last reference (a worker may
	 * still hold one for a moment). */
	relay_frontend_unref(&f->fe);
	return true;
}

/* Tell the provider the redirects of every intercepted frontend (to the
 * shared relay socket of its family and protocol) and plan's guards of the
 * service range. 0 or -errno (the provider logged it; its previous rules
 * stay in force). */
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
		struct us_key k = us_frontend_key(f);
		const struct relay_frontend *relay = us_intercepted(u, &k) ? relay_for(u, &k) : NULL;

		if (!relay)
			continue;
		entries[n].addr = k.addr;
		entries[n].proto = k.proto;
		entries[n].port = k.port;
		entries[n].relay_port = relay->port;
		n++;
	}
	u->intercept_used = true;
	u->stats.intercept_pushes++;
	r = u->intercept->sync(u->intercept_priv, entries, n, &guards);
	free(entries);
	return r;
}

/* The order matters: a new frontend is in the table before the rules send
 * it traffic; a removed one has left it already (its connections are reset
 * until the rules follow). */
void us_settle(struct userspace *u, const struct plan *plan, bool health, bool push,
	       struct us_result *res)
{
	if (health)
		result_err(res, us_health_update(u));
	if (u->intercept && push)
		result_err(res, intercept_push(u, plan));
	if (res->listeners_changed)
		relay_pool_wait(&u->relay);
}
