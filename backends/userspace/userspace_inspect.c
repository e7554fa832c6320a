/* Introspection of the userspace backend's state, for tests and metrics:
 * an endpoint's usability, counters, snapshot identity, and a check that
 * the state is what a sync of a plan would leave (userspace.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "us_state.h"

void userspace_get_stats(void *priv, struct userspace_stats *ret)
{
	const struct userspace *u = priv;

	*ret = u->stats;
}

void userspace_counts(void *priv, backend_count_fn emit, void *userdata)
{
	const struct userspace *u = priv;

	uint64_t active = 0, healthy = 0, unhealthy = 0;

	emit(userdata, "listener_sets", u->stats.listeners_opened - u->stats.listeners_closed);
	emit(userdata, "intercepted_frontends", u->relay.table.n);
	/* Relayed connections and UDP flows now open, and the endpoints under
	 * active health checks by state, summed over the endpoint sets (an
	 * endpoint in two sets counts twice). Workers move these atomics. */
	for (size_t i = 0; i < u->n_pools; i++) {
		const struct us_pool_data *d = &u->pools[i]->d;

		for (size_t j = 0; j < d->balancer->n_eps; j++) {
			active += balancer_endpoint_active(balancer_ep(d->balancer, j));
			if (!d->health.enabled)
				continue;
			if (balancer_endpoint_usable(balancer_ep(d->balancer, j)))
				healthy++;
			else
				unhealthy++;
		}
	}
	emit(userdata, "relay_flows_active", active);
	emit(userdata, "endpoints_checked_healthy", healthy);
	emit(userdata, "endpoints_checked_unhealthy", unhealthy);
}

int userspace_endpoint_usable(void *priv, const char *epset_key, const struct inet_addr *addr,
			      uint16_t port)
{
	struct userspace *u = priv;
	struct us_pool *p = u && u->ready ? us_pool_find(u, epset_key) : NULL;
	const struct balancer *b = p ? p->d.balancer : NULL;

	for (size_t i = 0; b && i < b->n_eps; i++)
		if (balancer_ep(b, i)->port == port &&
		    inet_addr_cmp(&balancer_ep(b, i)->addr, addr) == 0)
			return balancer_endpoint_usable(balancer_ep(b, i)) ? 1 : 0;
	return -ENOENT;
}

const void *userspace_frontend_snapshot(void *priv, const struct inet_addr *addr,
					enum inet_proto proto, uint16_t port)
{
	struct userspace *u = priv;
	struct us_key k = { .addr = *addr, .proto = proto, .port = port };
	const struct us_frontend *f = u && u->ready ? us_fes_find(u, &k, NULL) : NULL;
	struct relay_service *s;

	if (!f)
		return NULL;
	/* Identity only: the frontend keeps its own reference. */
	s = relay_frontend_service((struct relay_frontend *)&f->fe);
	relay_service_unref(s);
	return s;
}

/* check_state's verdict on one disagreement: logged, -EUCLEAN. */
#define check_fail(...) log_warn_errno(-EUCLEAN, "userspace: state check: " __VA_ARGS__)

static int check_pool(const struct us_pool *p, const struct plan_epset *e)
{
	const struct us_pool_data *d = &p->d;

	if (d->balancer->n_eps != e->n_endpoints || d->balancer->algo != e->balance ||
	    !d->balancer->affinity != !e->affinity || d->health.enabled != e->health.enabled ||
	    p->in_checked != e->health.enabled)
		return check_fail("set %s: policy or size differs from the plan", p->key);
	for (size_t k = 0; k < d->balancer->n_eps; k++)
		if (balancer_ep(d->balancer, k)->port != e->endpoints[k].port ||
		    inet_addr_cmp(&balancer_ep(d->balancer, k)->addr, &e->endpoints[k].addr) != 0)
			return check_fail("set %s: endpoint %zu differs from the plan", p->key, k);
	return 0;
}

static int check_frontend(const struct userspace *u, const struct us_frontend *uf,
			  const struct plan_frontend *f, const struct us_pool *pool, const struct us_pool *sc)
{
	struct relay_service *s = relay_frontend_service((struct relay_frontend *)&uf->fe), *ts = NULL;
	struct us_key k = us_frontend_key(uf);
	struct relay_service_scope scope = s->scope ? *s->scope : (struct relay_service_scope){ 0 };
	int r = 0;

	if (us_intercepted(u, &k))
		ts = relay_table_service(&((struct userspace *)u)->relay.table, &k.addr, k.proto, k.port);
	if (uf->pool != pool)
		r = check_fail("%s serves the wrong set", RELAY_FE_NAME(&uf->fe));
	else if (s->balancer != (pool ? pool->d.balancer : u->empty))
		r = check_fail("%s: its snapshot is not over its set's pool", RELAY_FE_NAME(&uf->fe));
	else if (uf->sc_pool != sc || relay_service_short_circuit(s) != (sc ? sc->d.balancer : NULL))
		r = check_fail("%s: its short-circuit set differs from the plan", RELAY_FE_NAME(&uf->fe));
	else if (sc && (scope.n_local_cidrs != u->n_local_cidrs ||
			(u->n_local_cidrs &&
			 memcmp(scope.local_cidrs, u->local_cidrs, u->n_local_cidrs * sizeof(*u->local_cidrs)))))
		r = check_fail("%s: its snapshot's cluster CIDRs differ", RELAY_FE_NAME(&uf->fe));
	else if (s->when_empty != f->when_empty || scope.n_source_ranges != f->n_source_ranges ||
		 (f->n_source_ranges &&
		  memcmp(scope.source_ranges, f->source_ranges, f->n_source_ranges * sizeof(*f->source_ranges))))
		r = check_fail("%s: its snapshot's policy differs from the plan", RELAY_FE_NAME(&uf->fe));
	else if (us_intercepted(u, &k) && ts != s)
		r = check_fail("%s: the service table has another snapshot", RELAY_FE_NAME(&uf->fe));
	relay_service_unref(ts);
	relay_service_unref(s);
	return r;
}

int userspace_check_state(void *priv, const struct plan *plan)
{
	struct userspace *u = priv;
	size_t n_pools = 0, n_fes = 0, n_users = 0, n_linked = 0, n_sc_users = 0, n_sc_linked = 0;
	size_t n_table = 0;
	int r;

	if (!u || !u->ready)
		return -EINVAL;
	for (size_t i = 0; i < plan->n_epsets; i++) {
		const struct plan_epset *e = &plan->epsets[i];
		const struct us_pool *p;

		if (e->proto == INET_PROTO_SCTP)
			continue;
		p = us_pool_find(u, us_epset_key(e));
		if (!p)
			return check_fail("no pool for set %s", us_epset_key(e));
		r = check_pool(p, e);
		if (r < 0)
			return r;
		n_pools++;
	}
	if (n_pools != u->n_pools || !us_pools_sorted(u->pools, u->n_pools))
		return check_fail("%zu pools for %zu sets, or out of order", u->n_pools, n_pools);
	for (size_t i = 0; i < plan->n_frontends; i++) {
		const struct plan_frontend *f = &plan->frontends[i];
		const struct us_pool *pool = NULL, *sc = NULL;
		struct us_key k = us_key_of(f);
		const struct us_frontend *uf;

		if (f->proto == INET_PROTO_SCTP || us_plan_fe_owner(plan, &k) != f)
			continue;
		uf = us_fes_find(u, &k, NULL);
		if (!uf)
			return check_fail("frontend %s/%u is not open", inet_proto_name(k.proto), k.port);
		if (f->epset && f->epset->proto != INET_PROTO_SCTP)
			pool = us_pool_find(u, us_epset_key(f->epset));
		if (f->short_circuit && f->short_circuit->proto != INET_PROTO_SCTP)
			sc = us_pool_find(u, us_epset_key(f->short_circuit));
		r = check_frontend(u, uf, f, pool, sc);
		if (r < 0)
			return r;
		n_fes++;
	}
	if (n_fes != u->n_fes)
		return check_fail("%zu frontends open, the plan has %zu", u->n_fes, n_fes);
	for (size_t i = 0; i < u->n_fes; i++) {
		struct us_key k = us_frontend_key(u->fes[i]);

		n_table += us_intercepted(u, &k);
	}
	if (n_table != u->relay.table.n)
		return check_fail("%zu frontends in the service table, %zu intercepted", u->relay.table.n,
				  n_table);
	for (size_t i = 0; i < u->n_fes; i++) {
		n_linked += u->fes[i]->pool != NULL;
		n_sc_linked += u->fes[i]->sc_pool != NULL;
		struct us_key prev = i > 0 ? us_frontend_key(u->fes[i - 1]) : (struct us_key){ 0 };

		if (i > 0 && us_key_cmp_frontend(&prev, u->fes[i]) >= 0)
			return check_fail("frontends out of order at %s", RELAY_FE_NAME(&u->fes[i]->fe));
	}
	for (size_t i = 0; i < u->n_pools; i++)
		for (const struct us_frontend *f = u->pools[i]->users; f; f = f->user_next, n_users++)
			if (f->pool != u->pools[i])
				return check_fail("set %s lists a frontend of another", u->pools[i]->key);
	if (n_users != n_linked)
		return check_fail("%zu frontends linked to sets, %zu listed by them", n_linked, n_users);
	for (size_t i = 0; i < u->n_pools; i++)
		for (const struct us_frontend *f = u->pools[i]->sc_users; f; f = f->sc_next, n_sc_users++)
			if (f->sc_pool != u->pools[i])
				return check_fail("set %s lists a short-circuit of another", u->pools[i]->key);
	if (n_sc_users != n_sc_linked)
		return check_fail("%zu frontends short-circuit to sets, %zu listed by them", n_sc_linked,
				  n_sc_users);
	for (const struct us_pool *p = u->checked; p; p = p->checked_next)
		if (!p->d.health.enabled)
			return check_fail("set %s is checked without asking", p->key);
	return 0;
}


/* The pool of key's other variant (the cluster-wide set of a "/local"
 * key, the "/local" set of another), or NULL. */
static const struct us_pool *sibling_pool(const struct userspace *u, const char *key)
{
	static const char local[] = "/local";
	size_t len = strlen(key), ll = sizeof(local) - 1;
	char buf[512];

	if (len >= ll && strcmp(key + len - ll, local) == 0) {
		if (len - ll >= sizeof(buf))
			return NULL;
		memcpy(buf, key, len - ll);
		buf[len - ll] = '\0';
	} else if (snprintf(buf, sizeof(buf), "%s%s", key, local) >= (int)sizeof(buf)) {
		return NULL;
	}
	return us_pool_find(u, buf);
}

static bool key_is_local(const char *key)
{
	size_t len = strlen(key);

	return len >= 6 && strcmp(key + len - 6, "/local") == 0;
}

/* The names of port p split into *buf (grown as needed, *cap bytes; the
 * caller frees it). false on ENOMEM. */
static bool port_names(const struct relay_svcport *p, char **buf, size_t *cap,
		       struct relay_svcport_names *ret)
{
	size_t need = strlen(p->label) + 1;

	if (need > *cap) {
		char *b = realloc(*buf, need);

		if (!b)
			return false;
		*buf = b;
		*cap = need;
	}
	relay_svcport_names(p, *buf, ret);
	return true;
}

void userspace_service_stats(void *priv, backend_service_stats_fn emit_stats,
			     backend_endpoint_health_fn emit_health, void *userdata)
{
	const struct userspace *u = priv;
	struct relay_svcport_names names;
	char *buf = NULL;
	size_t cap = 0;

	if (!u || !u->ready)
		return;
	for (size_t i = 0; i < u->n_pools; i++) {
		const struct us_pool *p = u->pools[i], *sib = sibling_pool(u, p->key);
		const struct relay_svcport *ports[2] = { p->port, sib ? sib->port : NULL };
		struct backend_service_stats st = { .proto = p->port->proto };

		/* One line per service port: a Local set is summed into its
		 * cluster-wide sibling when both are planned. */
		if (!emit_stats || (sib && key_is_local(p->key)))
			continue;
		if (!port_names(p->port, &buf, &cap, &names))
			break;
		st.ns = names.ns;
		st.name = names.name;
		st.port_name = names.port_name;
		for (int k = 0; k < 2 && ports[k]; k++) {
			st.connections += atomic_load_explicit(&ports[k]->connections, memory_order_relaxed);
			st.active += atomic_load_explicit(&ports[k]->active, memory_order_relaxed);
			st.bytes_in += atomic_load_explicit(&ports[k]->bytes_in, memory_order_relaxed);
			st.bytes_out += atomic_load_explicit(&ports[k]->bytes_out, memory_order_relaxed);
		}
		emit_stats(userdata, &st);
	}
	for (const struct us_pool *p = u->checked; emit_health && p; p = p->checked_next) {
		if (!port_names(p->port, &buf, &cap, &names))
			break;
		for (size_t k = 0; k < p->d.balancer->n_eps; k++) {
			const struct balancer_endpoint *ep = balancer_ep(p->d.balancer, k);
			struct backend_endpoint_health h = {
				.ns = names.ns, .name = names.name, .port_name = names.port_name,
				.proto = p->port->proto, .addr = &ep->addr, .port = ep->port,
				.healthy = balancer_endpoint_usable(ep),
			};

			emit_health(userdata, &h);
		}
	}
	free(buf);
}
