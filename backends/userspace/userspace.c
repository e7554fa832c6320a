/* The userspace backend's ops table and the translation of a plan into
 * relay state: endpoint pools (one per endpoint set, kept across syncs so
 * active counts, health and affinity survive), one service snapshot per
 * frontend, and one listener set per (address, protocol, port).
 *
 * Interception (cfg->intercept, proxy/intercept.h). A VIP listener only
 * sees packets the host delivers locally: a cluster IP or an external IP
 * that is not assigned here is routed on, not delivered. So when main hands
 * us an interception provider, every frontend except the wildcard node
 * ports gets a second listener set, the "relay" of that frontend: bound to
 * the wildcard address of its family on an ephemeral port, fed the same
 * service snapshot; after each sync the provider is told {VIP, proto, port
 * -> relay port} and redirects that traffic (forwarded and the node's own)
 * there. The VIP listener stays: it serves VIPs that are local (loopback,
 * a standalone balancer's own addresses) and works without interception.
 *
 * All of this runs on the control thread; the workers only ever see
 * refcounted snapshots (relay.h), so a sync never stops traffic.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "health.h"
#include "log.h"
#include "relay.h"
#include "userspace.h"

/* What is kept of one endpoint set between syncs. */
struct us_pool {
	char *key;                      /* NULL: unused slot (SCTP set) */
	struct balancer_endpoint **eps; /* references */
	size_t n_eps;
	struct balancer_affinity *affinity;
	struct balancer *balancer;
	struct health_check_cfg health;
	char label[200];
};

/* A frontend the plan asks for, while a sync is being worked out. */
struct us_wanted {
	struct inet_addr addr;
	enum inet_proto proto;
	uint16_t port;
	struct relay_service *svc;      /* reference */
};

/* SCTP frontends already warned about, so each is logged once. */
struct us_skipped {
	struct inet_addr addr;
	uint16_t port;
};

/* One open frontend: its VIP listener set and, when intercepted, its relay. */
struct us_frontend {
	struct relay_frontend *fe;      /* bound to the frontend's address */
	struct relay_frontend *relay;   /* wildcard, ephemeral port; NULL: none */
};

struct userspace {
	bool ready;
	unsigned n_workers;
	struct relay_pool relay;
	struct health *health;
	struct us_pool *pools;          /* sorted by key */
	size_t n_pools;
	struct us_frontend *fes;        /* sorted by (fe->addr, proto, port) */
	size_t n_fes;
	struct us_skipped *skipped;
	size_t n_skipped;
	const struct intercept_ops *intercept; /* NULL: no interception */
	bool intercept_used;            /* intercept->sync was called once */
	struct relay_frontend **stale;  /* relays whose close failed: retried */
	size_t n_stale;
};

static void pool_done(struct us_pool *p)
{
	for (size_t i = 0; i < p->n_eps; i++)
		balancer_endpoint_unref(p->eps[i]);
	free(p->eps);
	balancer_affinity_unref(p->affinity);
	balancer_unref(p->balancer);
	free(p->key);
	memset(p, 0, sizeof(*p));
}

static void pools_free(struct us_pool *pools, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pool_done(&pools[i]);
	free(pools);
}

static struct us_pool *pool_find(struct userspace *u, const char *key)
{
	size_t lo = 0, hi = u->n_pools;

	/* Old pools are in the order of the previous plan's epsets: by key. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = u->pools[mid].key ? strcmp(u->pools[mid].key, key) : -1;

		if (c == 0)
			return &u->pools[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Not found by bisection (e.g. unused slots broke the order): scan. */
	for (size_t i = 0; i < u->n_pools; i++)
		if (u->pools[i].key && strcmp(u->pools[i].key, key) == 0)
			return &u->pools[i];
	return NULL;
}

static void epset_label(const struct plan_epset *e, char *buf, size_t len)
{
	if (e->port_name[0])
		snprintf(buf, len, "%s/%s:%s", e->ns ? e->ns : "?", e->svc_name ? e->svc_name : "?",
			 e->port_name);
	else
		snprintf(buf, len, "%s/%s", e->ns ? e->ns : "?", e->svc_name ? e->svc_name : "?");
}

/* Build the pool of e into p, reusing endpoints (and their state) and the
 * affinity table of old when it exists. 0 or -ENOMEM (p is then cleared). */
static int pool_build(struct us_pool *p, const struct plan_epset *e, struct us_pool *old)
{
	memset(p, 0, sizeof(*p));
	p->key = strdup(e->key ? e->key : "");
	if (!p->key)
		goto nomem;
	epset_label(e, p->label, sizeof(p->label));
	p->health = e->health;
	if (e->n_endpoints > 0) {
		p->eps = calloc(e->n_endpoints, sizeof(*p->eps));
		if (!p->eps)
			goto nomem;
	}
	for (size_t i = 0; i < e->n_endpoints; i++) {
		const struct plan_endpoint *pe = &e->endpoints[i];
		struct balancer_endpoint *ep = NULL;

		for (size_t k = 0; old && k < old->n_eps; k++) {
			if (old->eps[k]->port == pe->port &&
			    inet_addr_cmp(&old->eps[k]->addr, &pe->addr) == 0) {
				ep = balancer_endpoint_ref(old->eps[k]);
				break;
			}
		}
		if (!ep)
			ep = balancer_endpoint_new(&pe->addr, pe->port);
		if (!ep)
			goto nomem;
		p->eps[p->n_eps++] = ep;
	}
	if (e->affinity) {
		uint32_t t = e->affinity_timeout_s ? e->affinity_timeout_s : BALANCER_AFFINITY_DEFAULT_S;

		if (old && old->affinity && balancer_affinity_timeout(old->affinity) == t)
			p->affinity = balancer_affinity_ref(old->affinity);
		else
			p->affinity = balancer_affinity_new(t);
		if (!p->affinity)
			goto nomem;
	}
	p->balancer = balancer_new(e->balance, p->eps, p->n_eps, p->affinity);
	if (!p->balancer)
		goto nomem;
	return 0;
nomem:
	pool_done(p);
	return -ENOMEM;
}

static int wanted_cmp(const struct inet_addr *a1, enum inet_proto p1, uint16_t port1,
		      const struct inet_addr *a2, enum inet_proto p2, uint16_t port2)
{
	int c = inet_addr_cmp(a1, a2);

	if (c)
		return c;
	if (p1 != p2)
		return p1 < p2 ? -1 : 1;
	if (port1 != port2)
		return port1 < port2 ? -1 : 1;
	return 0;
}

static int wanted_qsort_cmp(const void *x, const void *y)
{
	const struct us_wanted *a = x, *b = y;

	return wanted_cmp(&a->addr, a->proto, a->port, &b->addr, b->proto, b->port);
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

static void note_skipped(struct userspace *u, const struct plan_frontend *f,
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
	if (now) {
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
	return r;
}

/* Open the listener set of a new frontend and hand it to the workers. */
static int frontend_open(struct userspace *u, const struct us_wanted *w,
			 struct relay_frontend **ret)
{
	struct relay_frontend *fe;
	char ep[INET_ENDPOINT_STRLEN];
	int r;

	fe = relay_frontend_new(&w->addr, w->proto, w->port, w->svc);
	r = fe ? listeners_open(u, fe) : -ENOMEM;
	if (r < 0) {
		relay_frontend_unref(fe);
		return log_warn_errno(r, "userspace: cannot listen on %s/%s for %s",
				      inet_endpoint_format(&w->addr, w->port, ep),
				      inet_proto_name(w->proto), w->svc->label);
	}
	log_info("userspace: listening on %s (%u workers) for %s", fe->name, u->n_workers,
		 w->svc->label);
	*ret = fe;
	return 0;
}

/* Whether traffic to w must be intercepted: everything but the wildcard
 * node ports, which already receive whatever reaches the host. */
static bool wants_relay(const struct userspace *u, const struct us_wanted *w)
{
	return u->intercept && !inet_addr_is_any(&w->addr);
}

/* Open the relay listener set of w: the wildcard of its family on an
 * ephemeral port, serving w's snapshot. 0 or -errno (logged). */
static int relay_open(struct userspace *u, const struct us_wanted *w,
		      struct relay_frontend **ret)
{
	struct inet_addr any = inet_addr_any(w->addr.family);
	struct relay_frontend *fe;
	char ep[INET_ENDPOINT_STRLEN];
	int r;

	fe = relay_frontend_new(&any, w->proto, 0, w->svc);
	r = fe ? listeners_open(u, fe) : -ENOMEM;
	if (r < 0) {
		relay_frontend_unref(fe);
		return log_warn_errno(r, "userspace: cannot open the relay of %s/%s for %s",
				      inet_endpoint_format(&w->addr, w->port, ep),
				      inet_proto_name(w->proto), w->svc->label);
	}
	log_info("userspace: relay %s receives intercepted %s/%s for %s", fe->name,
		 inet_endpoint_format(&w->addr, w->port, ep), inet_proto_name(w->proto),
		 w->svc->label);
	*ret = fe;
	return 0;
}

/* Tell the provider the redirects of every open relay. 0 or -errno (the
 * provider logged it; its previous rules stay in force). */
static int intercept_push(struct userspace *u, struct intercept_entry *entries)
{
	size_t n = 0;

	for (size_t i = 0; i < u->n_fes; i++) {
		const struct us_frontend *f = &u->fes[i];

		if (!f->relay)
			continue;
		entries[n].addr = f->fe->addr;
		entries[n].proto = f->fe->proto;
		entries[n].port = f->fe->port;
		entries[n].relay_port = f->relay->port;
		n++;
	}
	u->intercept_used = true;
	return u->intercept->sync(entries, n);
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
			relay_frontend_unref(fe);
		}
	}
	u->n_stale = keep;
	return err;
}

static void wanted_free(struct us_wanted *wanted, size_t n)
{
	for (size_t i = 0; i < n; i++)
		relay_service_unref(wanted[i].svc);
	free(wanted);
}

/* Build the per-frontend wish list (sorted, deduplicated). 0 or -ENOMEM. */
static int plan_wanted(struct userspace *u, const struct plan *plan, struct us_pool *pools,
		       struct balancer *empty, struct us_wanted **ret, size_t *ret_n,
		       struct us_skipped *skipped, size_t *n_skipped)
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
		struct balancer *b = empty;
		char label[200] = "(no endpoint set)";

		if (f->proto == INET_PROTO_SCTP) {
			note_skipped(u, f, skipped, n_skipped);
			continue;
		}
		if (f->epset) {
			size_t idx = (size_t)(f->epset - plan->epsets);

			if (idx < plan->n_epsets && pools[idx].balancer)
				b = pools[idx].balancer;
			epset_label(f->epset, label, sizeof(label));
		}
		wanted[n].addr = bind_addr(f);
		wanted[n].proto = f->proto;
		wanted[n].port = f->port;
		wanted[n].svc = relay_service_new(b, f->when_empty, f->source_ranges,
						  f->n_source_ranges, label);
		if (!wanted[n].svc) {
			wanted_free(wanted, n);
			return -ENOMEM;
		}
		n++;
	}
	if (n > 0)
		qsort(wanted, n, sizeof(*wanted), wanted_qsort_cmp);
	/* Two frontends on one socket address: the planner should not emit
	 * them; the first wins. */
	for (size_t i = 0; i < n; i++) {
		if (out > 0 && wanted_qsort_cmp(&wanted[out - 1], &wanted[i]) == 0) {
			char ep[INET_ENDPOINT_STRLEN];

			log_warn("userspace: %s/%s is claimed by %s and %s; keeping the first",
				 inet_endpoint_format(&wanted[i].addr, wanted[i].port, ep),
				 inet_proto_name(wanted[i].proto), wanted[out - 1].svc->label,
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

/* Hand the health checker every endpoint of every set that asks for it;
 * endpoints of sets that do not are usable by definition. */
static int health_update(struct userspace *u)
{
	struct health_target *t;
	size_t n = 0, cap = 0;
	int r;

	for (size_t i = 0; i < u->n_pools; i++) {
		struct us_pool *p = &u->pools[i];

		if (p->health.enabled)
			cap += p->n_eps;
		else
			for (size_t k = 0; k < p->n_eps; k++)
				atomic_store(&p->eps[k]->healthy, true);
	}
	t = calloc(cap ? cap : 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < u->n_pools; i++) {
		struct us_pool *p = &u->pools[i];

		if (!p->health.enabled)
			continue;
		for (size_t k = 0; k < p->n_eps; k++) {
			t[n].ep = p->eps[k];
			t[n].cfg = p->health;
			t[n].label = p->label;
			n++;
		}
	}
	r = health_set_targets(u->health, t, n);
	free(t);
	return r;
}

static int userspace_sync(void *priv, const struct plan *plan)
{
	struct userspace *u = priv;
	struct us_pool *pools = NULL;
	struct us_wanted *wanted = NULL;
	struct us_skipped *skipped = NULL;
	struct us_frontend *fes = NULL;
	struct relay_frontend **stale = NULL;
	struct intercept_entry *entries = NULL;
	struct balancer *empty = NULL;
	size_t n_wanted = 0, n_fes = 0, n_skipped = 0, i, k;
	int r, err = 0;

	if (!u->ready)
		return -EINVAL;

	/* 1. Everything that can fail for lack of memory, before touching
	 *    what runs: pools, services, the wish list. */
	pools = calloc(plan->n_epsets ? plan->n_epsets : 1, sizeof(*pools));
	skipped = calloc(plan->n_frontends ? plan->n_frontends : 1, sizeof(*skipped));
	fes = calloc(plan->n_frontends + u->n_fes + 1, sizeof(*fes));
	/* Room for every relay that may be closed, and for every redirect. */
	stale = calloc(u->n_stale + u->n_fes + 1, sizeof(*stale));
	entries = calloc(plan->n_frontends + u->n_fes + 1, sizeof(*entries));
	empty = balancer_new(BALANCE_ROUND_ROBIN, NULL, 0, NULL);
	if (!pools || !skipped || !fes || !stale || !entries || !empty) {
		r = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < plan->n_epsets; i++) {
		const struct plan_epset *e = &plan->epsets[i];

		if (e->proto == INET_PROTO_SCTP)
			continue;
		r = pool_build(&pools[i], e, pool_find(u, e->key ? e->key : ""));
		if (r < 0)
			goto fail;
	}
	r = plan_wanted(u, plan, pools, empty, &wanted, &n_wanted, skipped, &n_skipped);
	if (r < 0)
		goto fail;

	/* 2. Merge the wish list with the open frontends (both sorted). */
	if (u->n_stale > 0)
		memcpy(stale, u->stale, u->n_stale * sizeof(*stale));
	free(u->stale);
	u->stale = stale;
	stale = NULL;
	for (i = 0, k = 0; i < n_wanted || k < u->n_fes;) {
		struct us_frontend *oldf = k < u->n_fes ? &u->fes[k] : NULL;
		struct relay_frontend *old = oldf ? oldf->fe : NULL;
		int c;

		if (i == n_wanted)
			c = 1;
		else if (!old)
			c = -1;
		else
			c = wanted_cmp(&wanted[i].addr, wanted[i].proto, wanted[i].port,
				       &old->addr, old->proto, old->port);
		if (c == 0) {
			/* Stays: same sockets, new snapshot for new connections. */
			relay_frontend_set_service(old, wanted[i].svc);
			if (oldf->relay)
				relay_frontend_set_service(oldf->relay, wanted[i].svc);
			else if (wants_relay(u, &wanted[i]) &&
				 (r = relay_open(u, &wanted[i], &oldf->relay)) < 0)
				err = err ? err : r;  /* retried next sync */
			fes[n_fes++] = *oldf;
			i++, k++;
		} else if (c < 0) {
			struct us_frontend nf = { NULL, NULL };

			r = frontend_open(u, &wanted[i], &nf.fe);
			if (r < 0) {
				err = err ? err : r;
			} else {
				if (wants_relay(u, &wanted[i]) &&
				    (r = relay_open(u, &wanted[i], &nf.relay)) < 0)
					err = err ? err : r;
				fes[n_fes++] = nf;
			}
			i++;
		} else {
			r = relay_pool_remove_listeners(&u->relay, old);
			if (r < 0) {
				/* Keep it (still serving its old snapshot) and retry. */
				err = err ? err : r;
				fes[n_fes++] = *oldf;
			} else {
				log_info("userspace: closed %s", old->name);
				relay_frontend_unref(old);
				/* Its relay closes once no redirect points to it. */
				if (oldf->relay)
					u->stale[u->n_stale++] = oldf->relay;
			}
			k++;
		}
	}
	free(u->fes);
	u->fes = fes;
	u->n_fes = n_fes;
	fes = NULL;

	/* 3. The old pools go; their endpoints live on in connections and in
	 *    the new pools that reused them. */
	pools_free(u->pools, u->n_pools);
	u->pools = pools;
	u->n_pools = plan->n_epsets;
	pools = NULL;
	free(u->skipped);
	u->skipped = skipped;
	u->n_skipped = n_skipped;
	skipped = NULL;

	r = health_update(u);
	if (r < 0)
		err = err ? err : r;
	/* 4. Redirects: new relays are listening already, removed ones close
	 *    only after the rules stop sending them traffic. */
	if (u->intercept) {
		r = intercept_push(u, entries);
		if (r < 0)
			err = err ? err : r;
	}
	r = stale_close(u);
	if (r < 0)
		err = err ? err : r;
	/* Removed listeners are closed when sync returns. */
	relay_pool_wait(&u->relay);
	wanted_free(wanted, n_wanted);
	free(entries);
	balancer_unref(empty);
	return err;
fail:
	if (pools)
		pools_free(pools, plan->n_epsets);
	free(skipped);
	free(fes);
	free(stale);
	free(entries);
	balancer_unref(empty);
	return log_warn_errno(r, "userspace: sync failed, previous state kept");
}

int userspace_endpoint_usable(void *priv, const char *epset_key, const struct inet_addr *addr,
			      uint16_t port)
{
	struct userspace *u = priv;
	struct us_pool *p = u && u->ready ? pool_find(u, epset_key) : NULL;

	for (size_t i = 0; p && i < p->n_eps; i++)
		if (p->eps[i]->port == port && inet_addr_cmp(&p->eps[i]->addr, addr) == 0)
			return balancer_endpoint_usable(p->eps[i]) ? 1 : 0;
	return -ENOENT;
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
		int r = u->intercept->cleanup ? u->intercept->cleanup() : u->intercept->sync(NULL, 0);

		if (r < 0)
			log_warn_errno(r, "userspace: removing the %s interception rules failed",
				       u->intercept->name);
	}
	/* Workers first: they hold references into pools and frontends. */
	relay_pool_done(&u->relay);
	u->health = health_free(u->health);
	for (size_t i = 0; i < u->n_fes; i++) {
		relay_frontend_unref(u->fes[i].fe);
		relay_frontend_unref(u->fes[i].relay);
	}
	free(u->fes);
	for (size_t i = 0; i < u->n_stale; i++)
		relay_frontend_unref(u->stale[i]);
	free(u->stale);
	pools_free(u->pools, u->n_pools);
	free(u->skipped);
	memset(u, 0, sizeof(*u));
}

static int userspace_init(void *priv, const struct backend_config *cfg)
{
	struct userspace *u = priv;
	int r;

	memset(u, 0, sizeof(*u));
	u->n_workers = cfg && cfg->workers ? cfg->workers : 1;
	r = relay_pool_init(&u->relay, u->n_workers, cfg ? cfg->udp_idle_timeout_ms : 0);
	if (r < 0)
		return log_errno(r, "userspace: cannot start %u relay workers", u->n_workers);
	u->health = health_new();
	if (!u->health) {
		relay_pool_done(&u->relay);
		return log_errno(-ENOMEM, "userspace: cannot start the health checker");
	}
	u->intercept = cfg ? cfg->intercept : NULL;
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
	/* Reconcile listeners and endpoint snapshots with the plan. */
	.sync = userspace_sync,
	/* No incremental path: a full sync is O(frontends) and cheap. */
	.apply = NULL,
	/* Listeners as the relay would open them (userspace_render.c). */
	.render = userspace_render,
	/* Nothing outlives the process (fini removes the interception). */
	.cleanup = NULL,
	/* Remove the interception rules, stop threads, close every socket, free. */
	.fini = userspace_fini,
};
