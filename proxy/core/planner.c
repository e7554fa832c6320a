/* The planner: every Kubernetes Service rule, applied once.
 *
 * A run walks the services in (namespace, name) order. For each service
 * port and address family it collects the frontends (cluster IPs, external
 * IPs, load-balancer IPs, node ports) and the candidate endpoints from the
 * service's slices, then derives up to two endpoint sets: the "cluster" set
 * (all ready endpoints, topology-filtered, else serving+terminating ones)
 * and the "local" set (the same rules restricted to this node, no topology),
 * the way kube-proxy's CategorizeEndpoints does. Frontends that collide on
 * (address, protocol, port) are resolved in favour of the first service,
 * unreferenced sets are dropped, both arrays are sorted, and the new plan is
 * merged against the previous one to produce the diff.
 *
 * Epset keys: "ns/name:PORT/PROTO", where PORT is the service port's name,
 * or its number when unnamed (a port name always holds a letter, so the two
 * cannot collide); "/ipv6" is appended for the IPv6 sets of a service (so
 * the IPv4 key is the plain form), and "/local" last for the local variant.
 * Example: "default/web:http/TCP", "default/dns:53/UDP/ipv6/local".
 */
#include "planner.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kobj.h"
#include "log.h"
#include "plan.h"
#include "plan_splice.h"

/* Where node ports open in one address family: on every local address
 * (one wildcard frontend) or on the listed ones. */
struct np_where {
	bool any;
	struct inet_addr *addrs;
	size_t n;
};

struct planner {
	char *node_name;
	char *service_proxy_name;
	struct planner_config cfg; /* arrays borrowed (planner_new) */
	char *np_logged;   /* the node port addresses last logged */
	struct plan *cur;  /* the latest plan (empty before the first run) */
	struct plan *prev; /* the one before: "removed" diff entries point here */
	struct plan_diff diff;
	/* Incremental planning: the model and generation cur was planned
	 * from (model NULL: no plan to build on), the splice's state. */
	const struct model *model;
	uint64_t gen;
	struct plan_splice_state splice;
	/* Counters for tests and logs: whole plans and splices done. */
	uint64_t n_whole, n_spliced;
};

/* One endpoint a slice offers for the service port being planned. */
struct candidate {
	struct inet_addr addr;
	uint16_t port;
	bool ready;
	bool serving;
	bool terminating;
	bool local;
	bool node_unknown;
	const struct kobj_endpoint *ep; /* for the zone hints */
};

/* A frontend while the plan is built: the epset is still an index, and the
 * owner is kept to resolve and report conflicts. */
struct fe_build {
	struct plan_frontend fe;
	size_t epset;
	size_t sc_epset; /* the short-circuit set, or SIZE_MAX */
	size_t svc_seq; /* position of the owner in (ns, name) order */
	size_t seq;     /* creation order, to keep the first on ties */
	const struct kobj_service *svc;
};

struct build {
	const struct planner *p;
	const struct model *m;
	const struct kobj_node *node;
	struct np_where np[2];  /* node port addresses, [0] IPv4, [1] IPv6 */
	struct inet_addr node_ip[2]; /* this node's address per family (family 0: none) */
	struct fe_build *fes;
	size_t n_fes, cap_fes;
	struct plan_epset *epsets;
	size_t n_epsets, cap_epsets;
	struct candidate *cands;
	size_t n_cands, cap_cands;
	size_t svc_seq;
	/* what the slice callback is resolving */
	const struct svc_port *port;
	sa_family_t family;
	/* health check node ports, and the local endpoint addresses of the
	 * service being planned (to count them) */
	struct plan_health_check *hcs;
	size_t n_hcs, cap_hcs;
	struct inet_addr *hc_addrs;
	size_t n_hc_addrs, cap_hc_addrs;
	/* claims two services shared (frontend addresses, health check
	 * ports), for the splice to refuse later */
	struct plan_frontend *contested;
	size_t n_contested, cap_contested;
	uint16_t *hc_contested;
	size_t n_hc_contested, cap_hc_contested;
	bool oom; /* recording a claim failed */
};

/* ---- the planner ---- */

struct planner *planner_new(const struct planner_config *cfg)
{
	struct planner *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->cfg.topology_hints = true;
	if (cfg) {
		p->cfg = *cfg;
		p->cfg.node_name = p->cfg.service_proxy_name = NULL;
		if (cfg->node_name && !(p->node_name = strdup(cfg->node_name)))
			return planner_free(p);
		if (cfg->service_proxy_name &&
		    !(p->service_proxy_name = strdup(cfg->service_proxy_name)))
			return planner_free(p);
	}
	p->cur = calloc(1, sizeof(*p->cur));
	if (!p->cur)
		return planner_free(p);
	return p;
}

struct planner *planner_free(struct planner *p)
{
	if (!p)
		return NULL;
	plan_free(p->cur);
	plan_free(p->prev);
	plan_diff_clear(&p->diff);
	plan_splice_state_done(&p->splice);
	free(p->node_name);
	free(p->service_proxy_name);
	free(p->np_logged);
	free(p);
	return NULL;
}

const struct plan *planner_current(const struct planner *p)
{
	return p->cur;
}

/* ---- growth helpers ---- */

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t c;
	void *a;

	if (need <= *cap)
		return 0;
	c = *cap ? *cap : 16;
	while (c < need)
		c *= 2;
	a = realloc(*arr, c * elem);
	if (!a)
		return -ENOMEM;
	*arr = a;
	*cap = c;
	return 0;
}

/* ---- service filters ---- */

static bool service_wanted(const struct planner *p, const struct kobj_service *svc)
{
	if (svc->type == SVC_TYPE_EXTERNAL_NAME || svc->headless)
		return false;
	/* Without --service-proxy-name (kube-proxy's behaviour) we own the
	 * unlabelled services; with it, exactly the ones carrying that label. */
	if (!p->service_proxy_name)
		return svc->proxy_name == NULL;
	return svc->proxy_name && strcmp(svc->proxy_name, p->service_proxy_name) == 0;
}

/* Does the service serve family? ipFamilies and the cluster IPs say so;
 * a service with neither (a bare standalone manifest) is taken to be
 * IPv4-only for node ports and to serve whatever family its external and
 * load-balancer addresses have. */
static bool service_has_family(const struct kobj_service *svc, sa_family_t family,
			       bool addr_given)
{
	bool known = false;

	for (size_t i = 0; i < svc->n_ip_families; i++) {
		known = true;
		if (svc->ip_families[i] == family)
			return true;
	}
	for (size_t i = 0; i < svc->n_cluster_ips; i++) {
		known = true;
		if (svc->cluster_ips[i].family == family)
			return true;
	}
	if (known)
		return false;
	return addr_given || family == AF_INET;
}

/* ---- endpoints ---- */

static bool is_local(const struct planner *p, const struct kobj_endpoint *ep)
{
	return p->node_name && ep->node_name && strcmp(p->node_name, ep->node_name) == 0;
}

/* Which port of slice serves svc port sp? EndpointSlice ports are already
 * resolved by the endpoint controller (named targetPorts included, per
 * pod), so the slice port with the same name and protocol is the answer.
 * Slices without ports (hand-written standalone manifests) fall back to the
 * numeric targetPort. Returns 0 when the slice has nothing for sp. */
static uint16_t slice_port_for(const struct kobj_slice *slice, const struct svc_port *sp)
{
	if (slice->n_ports == 0) {
		if (sp->target_port_name)
			return 0;
		return sp->target_port ? sp->target_port : sp->port;
	}
	for (size_t i = 0; i < slice->n_ports; i++) {
		const struct slice_port *q = &slice->ports[i];
		if (q->proto == sp->proto && kobj_str_eq(q->name, sp->name))
			return q->port;
	}
	return 0;
}

static int collect_slice(const struct kobj_slice *slice, void *userdata)
{
	struct build *b = userdata;
	uint16_t port;

	if (slice->family != b->family)
		return 0;
	port = slice_port_for(slice, b->port);
	if (!port)
		return 0;
	if (grow((void **)&b->cands, &b->cap_cands, b->n_cands + slice->n_endpoints,
		 sizeof(*b->cands)) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < slice->n_endpoints; i++) {
		const struct kobj_endpoint *ep = &slice->endpoints[i];
		struct candidate *c;

		if (ep->addr.family != slice->family)
			continue;
		c = &b->cands[b->n_cands++];
		c->addr = ep->addr;
		c->port = port;
		c->ready = ep->ready;
		c->serving = ep->serving;
		c->terminating = ep->terminating;
		c->local = is_local(b->p, ep);
		c->node_unknown = !b->p->node_name || !b->p->node_name[0] || !ep->node_name || !ep->node_name[0];
		c->ep = ep;
	}
	return 0;
}

static bool hinted_for(const struct kobj_endpoint *ep, const char *zone)
{
	for (size_t i = 0; i < ep->n_hint_zones; i++)
		if (ep->hint_zones[i] && strcmp(ep->hint_zones[i], zone) == 0)
			return true;
	return false;
}

/* kube-proxy's canUseTopology: every ready endpoint carries a hint and at
 * least one is hinted for this node's zone; otherwise hints are ignored
 * (a half-hinted slice set must not starve the zone). */
static bool use_topology(const struct build *b)
{
	const char *zone = b->node ? b->node->zone : NULL;
	bool zone_served = false;

	if (!b->p->cfg.topology_hints || !zone)
		return false;
	for (size_t i = 0; i < b->n_cands; i++) {
		const struct candidate *c = &b->cands[i];
		if (!c->ready)
			continue;
		if (!c->ep->n_hint_zones)
			return false;
		if (hinted_for(c->ep, zone))
			zone_served = true;
	}
	return zone_served;
}

/* Pick the eligible endpoints among the candidates: ready ones (only local
 * ones when local_only, only zone-hinted ones when topo), else the serving
 * and terminating ones. Result sorted and de-duplicated; *ret_n may be 0. */
static int select_endpoints(const struct build *b, bool local_only, bool topo,
			    struct plan_endpoint **ret, size_t *ret_n)
{
	const char *zone = topo ? b->node->zone : NULL;
	struct plan_endpoint *eps;
	size_t n = 0, k;

	*ret = NULL;
	*ret_n = 0;
	if (!b->n_cands)
		return 0;
	eps = malloc(b->n_cands * sizeof(*eps));
	if (!eps)
		return -ENOMEM;
	for (int pass = 0; pass < 2 && n == 0; pass++) {
		for (size_t i = 0; i < b->n_cands; i++) {
			const struct candidate *c = &b->cands[i];
			bool ok;

			if (local_only && !c->local)
				continue;
			if (pass == 0)
				ok = c->ready && (!zone || hinted_for(c->ep, zone));
			else
				ok = c->serving && c->terminating;
			if (!ok)
				continue;
			eps[n].addr = c->addr;
			eps[n].port = c->port;
			eps[n].terminating = pass == 1;
			eps[n].local = c->local;
			eps[n].node_unknown = c->node_unknown;
			n++;
		}
	}
	if (!n) {
		free(eps);
		return 0;
	}
	qsort(eps, n, sizeof(*eps), plan_endpoint_cmp);
	/* The same pod may appear in two slices (e.g. during a slice split). */
	k = 1;
	for (size_t i = 1; i < n; i++) {
		if (plan_endpoint_cmp(&eps[i], &eps[k - 1]) == 0) {
			eps[k - 1].node_unknown |= eps[i].node_unknown;
			continue;
		}
		eps[k++] = eps[i];
	}
	*ret = eps;
	*ret_n = k;
	return 0;
}

/* ---- epsets ---- */

/* Write the epset key of (svc, sp, family, local) into buf (see the top
 * of this file for the format) and return its length (snprintf's: call
 * with len 0 to size buf). */
static size_t epset_key(char *buf, size_t len, const struct kobj_service *svc,
			const struct svc_port *sp, sa_family_t family, bool local)
{
	char port[8];

	snprintf(port, sizeof(port), "%u", sp->port);
	return (size_t)snprintf(buf, len, "%s/%s:%s/%s%s%s", svc->ns, svc->name,
				sp->name ? sp->name : port, inet_proto_name(sp->proto),
				family == AF_INET6 ? "/ipv6" : "", local ? "/local" : "");
}

/* Create the epset for (svc, sp, family, local) from the current candidates
 * and return its index in *ret_idx. */
static int add_epset(struct build *b, const struct kobj_service *svc, const struct svc_port *sp,
		     sa_family_t family, bool local, size_t *ret_idx)
{
	const char *port_name = sp->name ? sp->name : "";
	size_t kl = epset_key(NULL, 0, svc, sp, family, local) + 1;
	size_t nsl = strlen(svc->ns) + 1, nl = strlen(svc->name) + 1, pl = strlen(port_name) + 1;
	struct plan_epset *e;
	char *mem;
	int r;

	if (grow((void **)&b->epsets, &b->cap_epsets, b->n_epsets + 1, sizeof(*b->epsets)) < 0)
		return -ENOMEM;
	/* One allocation of the exact size holds the key, then ns, name and
	 * port name: four strings per set at 100k sets is a lot of malloc
	 * calls (and bytes) for nothing. */
	mem = malloc(kl + nsl + nl + pl);
	if (!mem)
		return -ENOMEM;
	epset_key(mem, kl, svc, sp, family, local);
	e = &b->epsets[b->n_epsets];
	memset(e, 0, sizeof(*e));
	e->key = mem;
	e->ns = memcpy(mem + kl, svc->ns, nsl);
	e->svc_name = memcpy(mem + kl + nsl, svc->name, nl);
	e->port_name = memcpy(mem + kl + nsl + nl, port_name, pl);
	e->proto = sp->proto;
	e->affinity = svc->affinity_client_ip;
	/* plan-t.h promises a timeout whenever affinity is on. */
	e->affinity_timeout_s = svc->affinity_timeout_s ? svc->affinity_timeout_s : KOBJ_AFFINITY_TIMEOUT_DEFAULT_S;
	e->balance = svc->balance;
	e->health = svc->health;
	r = select_endpoints(b, local, !local && use_topology(b), &e->endpoints, &e->n_endpoints);
	if (r < 0) {
		free(mem);
		return r;
	}
	*ret_idx = b->n_epsets++;
	return 0;
}

/* ---- frontends ---- */

/* Does one of the service's source ranges hold this node's address of
 * family? kube-proxy then also admits the service's load-balancer IPs as
 * sources: traffic that the node sent out and the load balancer brought
 * back (hairpin through the load balancer). */
static bool ranges_admit_node(const struct build *b, const struct kobj_service *svc, sa_family_t family)
{
	const struct inet_addr *ip = &b->node_ip[family == AF_INET6];

	if (!ip->family)
		return false;
	for (size_t i = 0; i < svc->n_source_ranges; i++)
		if (svc->source_ranges[i].addr.family == family && inet_prefix_contains(&svc->source_ranges[i], ip))
			return true;
	return false;
}

/* A load-balancer frontend's allowed sources: the service's ranges, and
 * its load-balancer IPs of the family when a range holds the node. */
static int set_source_ranges(struct build *b, struct plan_frontend *fe, const struct kobj_service *svc)
{
	size_t n = svc->n_source_ranges, extra = 0;
	bool node = ranges_admit_node(b, svc, fe->addr.family);

	for (size_t i = 0; node && i < svc->n_lb_ips; i++)
		extra += svc->lb_ips[i].family == fe->addr.family;
	fe->source_ranges = malloc((n + extra) * sizeof(*fe->source_ranges));
	if (!fe->source_ranges)
		return -ENOMEM;
	memcpy(fe->source_ranges, svc->source_ranges, n * sizeof(*svc->source_ranges));
	for (size_t i = 0; node && i < svc->n_lb_ips; i++) {
		if (svc->lb_ips[i].family != fe->addr.family)
			continue;
		fe->source_ranges[n].addr = svc->lb_ips[i];
		fe->source_ranges[n].len = fe->addr.family == AF_INET ? 32 : 128;
		n++;
	}
	fe->n_source_ranges = n;
	return 0;
}

static int add_frontend(struct build *b, const struct kobj_service *svc, enum frontend_kind kind,
			const struct inet_addr *addr, const struct svc_port *sp, uint16_t port,
			size_t epset, size_t sc_epset, bool ext_cluster, enum empty_verdict when_empty)
{
	struct fe_build *f;

	if (grow((void **)&b->fes, &b->cap_fes, b->n_fes + 1, sizeof(*b->fes)) < 0)
		return -ENOMEM;
	f = &b->fes[b->n_fes];
	memset(f, 0, sizeof(*f));
	f->fe.kind = kind;
	f->fe.addr = *addr;
	f->fe.proto = sp->proto;
	f->fe.port = port;
	/* The one place that decides who is masqueraded. ext_cluster: an
	 * external kind of an externalTrafficPolicy Cluster service. As in
	 * kube-proxy, --masquerade-all reaches cluster IPs only: external
	 * traffic to an externalTrafficPolicy Local service keeps its client
	 * address whatever the flag says (that is what Local is for). */
	if (kind == FRONTEND_CLUSTER_IP)
		f->fe.masquerade = b->p->cfg.masquerade_all ? PLAN_MASQ_ALWAYS : PLAN_MASQ_UNLESS_LOCAL;
	else
		f->fe.masquerade = ext_cluster ? PLAN_MASQ_ALWAYS : PLAN_MASQ_NEVER;
	f->fe.when_empty = when_empty;
	if (kind == FRONTEND_LOAD_BALANCER && svc->n_source_ranges && set_source_ranges(b, &f->fe, svc) < 0)
		return -ENOMEM;
	f->epset = epset;
	f->sc_epset = kind == FRONTEND_CLUSTER_IP ? SIZE_MAX : sc_epset;
	f->svc_seq = b->svc_seq;
	f->seq = b->n_fes;
	f->svc = svc;
	b->n_fes++;
	return 0;
}

/* Remember the ready addresses of a local endpoint set, for the service's
 * health check node port count. Like kube-proxy, only ready endpoints
 * count: a node whose local pods are all terminating still forwards to
 * them (the fallback) but tells the load balancer to drain it. */
static int note_local_endpoints(struct build *b, const struct plan_epset *e)
{
	if (grow((void **)&b->hc_addrs, &b->cap_hc_addrs, b->n_hc_addrs + e->n_endpoints,
		 sizeof(*b->hc_addrs)) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < e->n_endpoints; i++)
		if (!e->endpoints[i].terminating)
			b->hc_addrs[b->n_hc_addrs++] = e->endpoints[i].addr;
	return 0;
}

static int cmp_addr(const void *a, const void *b)
{
	return inet_addr_cmp(a, b);
}

/* Add the service's health check node port, when it has one (Local external
 * policy on a NodePort or LoadBalancer service), counting the distinct local
 * endpoint addresses its ports use. */
static int add_health_check(struct build *b, const struct kobj_service *svc)
{
	struct plan_health_check *hc;
	size_t distinct = 0, nsl, nl;
	char *mem;

	if (!svc->health_check_node_port || svc->external_policy != TRAFFIC_POLICY_LOCAL ||
	    (svc->type != SVC_TYPE_LOAD_BALANCER && svc->type != SVC_TYPE_NODE_PORT))
		return 0;
	if (b->n_hc_addrs)
		qsort(b->hc_addrs, b->n_hc_addrs, sizeof(*b->hc_addrs), cmp_addr);
	for (size_t i = 0; i < b->n_hc_addrs; i++)
		if (i == 0 || inet_addr_cmp(&b->hc_addrs[i - 1], &b->hc_addrs[i]) != 0)
			distinct++;
	if (grow((void **)&b->hcs, &b->cap_hcs, b->n_hcs + 1, sizeof(*b->hcs)) < 0)
		return -ENOMEM;
	nsl = strlen(svc->ns) + 1;
	nl = strlen(svc->name) + 1;
	mem = malloc(nsl + nl);
	if (!mem)
		return -ENOMEM;
	hc = &b->hcs[b->n_hcs++];
	hc->port = svc->health_check_node_port;
	hc->ns = memcpy(mem, svc->ns, nsl);
	hc->svc_name = memcpy(mem + nsl, svc->name, nl);
	hc->local_endpoints = distinct;
	return 0;
}

/* Order health checks by port, then by service (ns, name): on a tie the
 * first service in model order keeps the port, as with frontends. */
static int cmp_hc(const void *a, const void *b)
{
	const struct plan_health_check *x = a, *y = b;
	int c;

	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	c = strcmp(x->ns, y->ns);
	return c ? c : strcmp(x->svc_name, y->svc_name);
}

/* Plan one (service port, family). */
static int plan_port_family(struct build *b, const struct kobj_service *svc,
			    const struct svc_port *sp, sa_family_t family)
{
	bool has_internal = false, has_external = false, lb, np, ext_local, int_local;
	size_t eps_cluster = SIZE_MAX, eps_local = SIZE_MAX, eps_int, eps_ext, eps_sc;
	const struct np_where *npw = &b->np[family == AF_INET6];
	enum empty_verdict int_empty, ext_empty;
	bool any_ready_or_serving = false;
	int r;

	lb = svc->type == SVC_TYPE_LOAD_BALANCER;
	np = sp->node_port && (svc->type == SVC_TYPE_NODE_PORT || lb) &&
	     service_has_family(svc, family, false);
	for (size_t i = 0; i < svc->n_cluster_ips; i++)
		if (svc->cluster_ips[i].family == family)
			has_internal = true;
	if (np)
		has_external = true;
	for (size_t i = 0; i < svc->n_external_ips && !has_external; i++)
		if (svc->external_ips[i].family == family && service_has_family(svc, family, true))
			has_external = true;
	for (size_t i = 0; lb && i < svc->n_lb_ips && !has_external; i++)
		if (svc->lb_ips[i].family == family && service_has_family(svc, family, true))
			has_external = true;
	if (!has_internal && !has_external)
		return 0;

	b->n_cands = 0;
	b->port = sp;
	b->family = family;
	r = model_foreach_slice_of(b->m, svc->ns, svc->name, collect_slice, b);
	if (r < 0)
		return r;
	for (size_t i = 0; i < b->n_cands; i++)
		if (b->cands[i].ready || (b->cands[i].serving && b->cands[i].terminating))
			any_ready_or_serving = true;

	int_local = svc->internal_policy == TRAFFIC_POLICY_LOCAL;
	ext_local = svc->external_policy == TRAFFIC_POLICY_LOCAL;
	/* The cluster-wide set also serves the short-circuit of an
	 * externalTrafficPolicy Local service's external frontends. */
	if ((has_internal && !int_local) || has_external) {
		r = add_epset(b, svc, sp, family, false, &eps_cluster);
		if (r < 0)
			return r;
	}
	if ((has_internal && int_local) || (has_external && ext_local)) {
		r = add_epset(b, svc, sp, family, true, &eps_local);
		if (r < 0)
			return r;
		r = note_local_endpoints(b, &b->epsets[eps_local]);
		if (r < 0)
			return r;
	}
	/* Like kube-proxy: a Local set without local endpoints drops (other
	 * nodes may serve the traffic), but a service port without any usable
	 * endpoint anywhere rejects, whatever the policy. */
	int_empty = int_local && any_ready_or_serving ? EMPTY_DROP : EMPTY_REJECT;
	ext_empty = ext_local && any_ready_or_serving ? EMPTY_DROP : EMPTY_REJECT;
	eps_int = int_local ? eps_local : eps_cluster;
	eps_ext = ext_local ? eps_local : eps_cluster;
	eps_sc = ext_local ? eps_cluster : SIZE_MAX;

	for (size_t i = 0; i < svc->n_cluster_ips; i++) {
		if (svc->cluster_ips[i].family != family)
			continue;
		r = add_frontend(b, svc, FRONTEND_CLUSTER_IP, &svc->cluster_ips[i], sp, sp->port,
				 eps_int, SIZE_MAX, false, int_empty);
		if (r < 0)
			return r;
	}
	if (!has_external)
		return 0;
	for (size_t i = 0; i < svc->n_external_ips; i++) {
		if (svc->external_ips[i].family != family || !service_has_family(svc, family, true))
			continue;
		r = add_frontend(b, svc, FRONTEND_EXTERNAL_IP, &svc->external_ips[i], sp, sp->port,
				 eps_ext, eps_sc, !ext_local, ext_empty);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; lb && i < svc->n_lb_ips; i++) {
		if (svc->lb_ips[i].family != family || !service_has_family(svc, family, true))
			continue;
		r = add_frontend(b, svc, FRONTEND_LOAD_BALANCER, &svc->lb_ips[i], sp, sp->port,
				 eps_ext, eps_sc, !ext_local, ext_empty);
		if (r < 0)
			return r;
	}
	if (!np)
		return 0;
	if (npw->any) {
		struct inet_addr any = inet_addr_any(family);
		return add_frontend(b, svc, FRONTEND_NODE_PORT, &any, sp, sp->node_port, eps_ext, eps_sc,
				    !ext_local, ext_empty);
	}
	for (size_t i = 0; i < npw->n; i++) {
		r = add_frontend(b, svc, FRONTEND_NODE_PORT, &npw->addrs[i], sp, sp->node_port, eps_ext,
				 eps_sc, !ext_local, ext_empty);
		if (r < 0)
			return r;
	}
	return 0;
}

static int plan_service(const struct kobj_service *svc, void *userdata)
{
	struct build *b = userdata;
	int r;

	b->svc_seq++;
	if (!service_wanted(b->p, svc))
		return 0;
	b->n_hc_addrs = 0;
	for (size_t i = 0; i < svc->n_ports; i++) {
		const struct svc_port *sp = &svc->ports[i];
		bool dup = false;

		/* Two ports with one name and protocol (invalid, but possible
		 * in a hand-written manifest) would share an epset key. */
		for (size_t j = 0; j < i && !dup; j++)
			dup = svc->ports[j].proto == sp->proto &&
			      kobj_str_eq(svc->ports[j].name, sp->name) &&
			      (sp->name || svc->ports[j].port == sp->port);
		if (dup) {
			log_warn("planner: service %s/%s: port %s/%s (%u) repeats an earlier port; ignored",
				 svc->ns, svc->name, sp->name ? sp->name : "", inet_proto_name(sp->proto), sp->port);
			continue;
		}
		r = plan_port_family(b, svc, sp, AF_INET);
		if (r < 0)
			return r;
		r = plan_port_family(b, svc, sp, AF_INET6);
		if (r < 0)
			return r;
	}
	return add_health_check(b, svc);
}

/* ---- assembling the plan ---- */

/* The build arrays are sorted through pointers: a struct fe_build is
 * large, and qsort moves whole elements. */
static int cmp_fe_ptr_conflict(const void *a, const void *b)
{
	const struct fe_build *x = *(const struct fe_build *const *)a;
	const struct fe_build *y = *(const struct fe_build *const *)b;
	int c = plan_frontend_addr_cmp(&x->fe, &y->fe);

	if (c)
		return c;
	if (x->svc_seq != y->svc_seq)
		return x->svc_seq < y->svc_seq ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

static int cmp_fe_ptr_final(const void *a, const void *b)
{
	const struct fe_build *x = *(const struct fe_build *const *)a;
	const struct fe_build *y = *(const struct fe_build *const *)b;

	return plan_frontend_cmp(&x->fe, &y->fe);
}

/* Keep the first claimant of each (addr, proto, port), in (ns, name)
 * order, whatever the kinds: the kernel can only send a packet one way.
 * ptrs[] holds every build frontend on entry and the survivors on return
 * (*n_ptrs updated); the losers' source ranges are released. */
static void note_contested(struct build *b, const struct plan_frontend *fe)
{
	if (b->n_contested && plan_frontend_addr_cmp(&b->contested[b->n_contested - 1], fe) == 0)
		return;
	if (grow((void **)&b->contested, &b->cap_contested, b->n_contested + 1, sizeof(*b->contested)) < 0) {
		b->oom = true;
		return;
	}
	b->contested[b->n_contested] = *fe;
	b->contested[b->n_contested].source_ranges = NULL;
	b->contested[b->n_contested++].n_source_ranges = 0;
}

static void note_hc_contested(struct build *b, uint16_t port)
{
	if (b->n_hc_contested && b->hc_contested[b->n_hc_contested - 1] == port)
		return;
	if (grow((void **)&b->hc_contested, &b->cap_hc_contested, b->n_hc_contested + 1,
		 sizeof(*b->hc_contested)) < 0) {
		b->oom = true;
		return;
	}
	b->hc_contested[b->n_hc_contested++] = port;
}

static void resolve_conflicts(struct build *b, struct fe_build **ptrs, size_t *n_ptrs)
{
	size_t k = 0;

	qsort(ptrs, *n_ptrs, sizeof(*ptrs), cmp_fe_ptr_conflict);
	for (size_t i = 0; i < *n_ptrs; i++) {
		struct fe_build *f = ptrs[i];

		if (k && plan_frontend_addr_cmp(&ptrs[k - 1]->fe, &f->fe) == 0) {
			const struct fe_build *keep = ptrs[k - 1];
			if (keep->svc != f->svc) {
				char ep[INET_ENDPOINT_STRLEN];
				note_contested(b, &f->fe);
				log_warn("planner: %s %s/%s of service %s/%s is already claimed by service %s/%s; dropped",
					 frontend_kind_name(f->fe.kind),
					 inet_endpoint_format(&f->fe.addr, f->fe.port, ep),
					 inet_proto_name(f->fe.proto), f->svc->ns, f->svc->name,
					 keep->svc->ns, keep->svc->name);
			}
			free(f->fe.source_ranges);
			f->fe.source_ranges = NULL;
			continue;
		}
		ptrs[k++] = f;
	}
	*n_ptrs = k;
}

/* Orders indexes into an epset array (the qsort_r argument) by key. */
static int cmp_epset_idx(const void *a, const void *b, void *arg)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	const struct plan_epset *e = arg;

	return strcmp(e[x].key, e[y].key);
}

/* Turn the build into a plan: drop conflicting frontends and unreferenced
 * sets, sort both arrays, link frontends to their sets. On success the
 * build's arrays are moved into *ret. */
static int assemble(struct build *b, struct plan **ret)
{
	size_t *order = NULL, *remap = NULL, n = 0, n_fes = b->n_fes;
	struct plan_epset *epsets = NULL;
	struct plan_frontend *fes = NULL;
	struct fe_build **ptrs;
	bool *used = NULL;
	struct plan *plan;

	ptrs = malloc((b->n_fes + 1) * sizeof(*ptrs));
	if (!ptrs)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_fes; i++)
		ptrs[i] = &b->fes[i];
	resolve_conflicts(b, ptrs, &n_fes);
	plan = calloc(1, sizeof(*plan));
	used = calloc(b->n_epsets + 1, sizeof(*used));
	order = malloc((b->n_epsets + 1) * sizeof(*order));
	remap = malloc((b->n_epsets + 1) * sizeof(*remap));
	epsets = malloc((b->n_epsets + 1) * sizeof(*epsets));
	fes = malloc((b->n_fes + 1) * sizeof(*fes));
	if (!plan || !used || !order || !remap || !epsets || !fes) {
		free(ptrs);
		free(plan);
		free(used);
		free(order);
		free(remap);
		free(epsets);
		free(fes);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_fes; i++) {
		used[ptrs[i]->epset] = true;
		if (ptrs[i]->sc_epset != SIZE_MAX)
			used[ptrs[i]->sc_epset] = true;
	}
	for (size_t i = 0; i < b->n_epsets; i++) {
		if (used[i])
			order[n++] = i;
		else
			plan_epset_done(&b->epsets[i]);
	}
	qsort_r(order, n, sizeof(*order), cmp_epset_idx, b->epsets);
	for (size_t i = 0; i < n; i++) {
		epsets[i] = b->epsets[order[i]];
		remap[order[i]] = i;
	}
	qsort(ptrs, n_fes, sizeof(*ptrs), cmp_fe_ptr_final);
	for (size_t i = 0; i < n_fes; i++) {
		fes[i] = ptrs[i]->fe;
		fes[i].epset = &epsets[remap[ptrs[i]->epset]];
		fes[i].short_circuit = ptrs[i]->sc_epset == SIZE_MAX ? NULL : &epsets[remap[ptrs[i]->sc_epset]];
	}
	plan->frontends = fes;
	plan->n_frontends = n_fes;
	plan->epsets = epsets;
	plan->n_epsets = n;
	/* Health check ports: one per port, the first service keeps it. */
	if (b->n_hcs) /* qsort's base must not be NULL, even for 0 items */
		qsort(b->hcs, b->n_hcs, sizeof(*b->hcs), cmp_hc);
	n = 0;
	for (size_t i = 0; i < b->n_hcs; i++) {
		if (n && b->hcs[n - 1].port == b->hcs[i].port) {
			log_warn("planner: health check node port %u of service %s/%s is already "
				 "claimed by service %s/%s; dropped", b->hcs[i].port, b->hcs[i].ns,
				 b->hcs[i].svc_name, b->hcs[n - 1].ns, b->hcs[n - 1].svc_name);
			note_hc_contested(b, b->hcs[i].port);
			free(b->hcs[i].ns);
			continue;
		}
		b->hcs[n++] = b->hcs[i];
	}
	plan->health_checks = b->hcs;
	plan->n_health_checks = n;
	b->hcs = NULL;
	b->n_hcs = b->cap_hcs = 0;
	/* Ownership has moved: the build keeps only empty arrays. */
	b->n_fes = 0;
	b->n_epsets = 0;
	free(ptrs);
	free(used);
	free(order);
	free(remap);
	*ret = plan;
	return 0;
}

static void build_done(struct build *b)
{
	free(b->np[0].addrs);
	free(b->np[1].addrs);
	for (size_t i = 0; i < b->n_fes; i++)
		free(b->fes[i].fe.source_ranges);
	for (size_t i = 0; i < b->n_epsets; i++)
		plan_epset_done(&b->epsets[i]);
	for (size_t i = 0; i < b->n_hcs; i++)
		free(b->hcs[i].ns);
	free(b->fes);
	free(b->epsets);
	free(b->cands);
	free(b->hcs);
	free(b->hc_addrs);
	free(b->contested);
	free(b->hc_contested);
}

/* ---- node port addresses ---- */

/* This node's address of family: kube-proxy's bindAddress when given
 * (node_ip_override), else the Node object's first (InternalIPs come
 * first), else the source of the host's default route. */
static struct inet_addr node_ip(const struct planner *p, const struct model *m, sa_family_t family)
{
	const struct kobj_node *node = model_node(m);
	const struct host_addrs *h = model_host_addrs(m);
	struct inet_addr none = { 0 };

	if (p->cfg.node_ip_override.family == family)
		return p->cfg.node_ip_override;

	for (size_t i = 0; node && i < node->n_addrs; i++)
		if (node->addrs[i].family == family && !inet_addr_is_loopback(&node->addrs[i]))
			return node->addrs[i];
	if (h->default_src[family == AF_INET6].family == family)
		return h->default_src[family == AF_INET6];
	return none;
}

static int np_add(struct np_where *w, const struct inet_addr *a)
{
	struct inet_addr *p;

	for (size_t i = 0; i < w->n; i++)
		if (inet_addr_cmp(&w->addrs[i], a) == 0)
			return 0;
	p = realloc(w->addrs, (w->n + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	w->addrs = p;
	w->addrs[w->n++] = *a;
	return 0;
}

/* Where node ports open in family (see planner_config). */
static int np_resolve(const struct planner *p, const struct model *m, sa_family_t family,
		      struct np_where *w)
{
	const struct host_addrs *h = model_host_addrs(m);
	struct inet_prefix loop;
	bool named = false;
	int r;

	memset(w, 0, sizeof(*w));
	if (p->cfg.nodeport_all) {
		w->any = true;
		return 0;
	}
	inet_prefix_parse(family == AF_INET ? "127.0.0.0/8" : "::1/128", &loop);
	for (size_t i = 0; i < p->cfg.n_nodeport_prefixes; i++) {
		const struct inet_prefix *np = &p->cfg.nodeport_prefixes[i];
		named |= np->addr.family == family;
		/* 0.0.0.0/0 or ::/0: the whole family, as a wildcard. */
		if (np->addr.family == family && np->len == 0) {
			w->any = true;
			return 0;
		}
	}
	named |= p->cfg.nodeport_localhost;
	if (p->cfg.nodeport_primary) {
		struct inet_addr ip = node_ip(p, m, family);
		if (ip.family) {
			named = true;
			if ((r = np_add(w, &ip)) < 0)
				return r;
		}
	}
	/* kube-proxy: a family no entry names is matched whole. */
	if (!named) {
		w->any = true;
		return 0;
	}
	for (size_t i = 0; i < h->n_addrs; i++) {
		const struct inet_addr *a = &h->addrs[i];
		bool want = a->family == family && p->cfg.nodeport_localhost && inet_prefix_contains(&loop, a);

		for (size_t j = 0; !want && j < p->cfg.n_nodeport_prefixes; j++)
			want = p->cfg.nodeport_prefixes[j].addr.family == family &&
			       inet_prefix_contains(&p->cfg.nodeport_prefixes[j], a);
		if (want && (r = np_add(w, a)) < 0)
			return r;
	}
	return 0;
}

/* Log where node ports open when that changed, and warn about each
 * --nodeport-addresses CIDR that matches no address of this host. */
static void np_log(struct planner *p, const struct model *m, const struct np_where np[2])
{
	const struct host_addrs *h = model_host_addrs(m);
	char line[1024], buf[INET_ADDR_STRLEN];
	size_t len = 0;

	for (int f = 0; f < 2; f++) {
		len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s", f ? "; IPv6 " : "IPv4 ",
					np[f].any ? "every local address" : np[f].n ? "" : "none");
		for (size_t i = 0; i < np[f].n && len < sizeof(line) - INET_ADDR_STRLEN - 8; i++)
			len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s", i ? ", " : "",
						inet_addr_format(&np[f].addrs[i], buf));
	}
	if (p->np_logged && strcmp(p->np_logged, line) == 0)
		return;
	free(p->np_logged);
	p->np_logged = strdup(line);
	log_info("planner: node ports open on %s", line);
	for (size_t i = 0; i < p->cfg.n_nodeport_prefixes; i++) {
		bool hit = false;
		for (size_t j = 0; j < h->n_addrs && !hit; j++)
			hit = h->addrs[j].family == p->cfg.nodeport_prefixes[i].addr.family &&
			      inet_prefix_contains(&p->cfg.nodeport_prefixes[i], &h->addrs[j]);
		if (!hit)
			log_warn("planner: --nodeport-addresses %s/%u matches no address of this host",
				 inet_addr_format(&p->cfg.nodeport_prefixes[i].addr, buf),
				 p->cfg.nodeport_prefixes[i].len);
	}
}

/* ---- guards of the service range ---- */

/* plan.cluster_ips from its cluster-IP frontends (sorted first by kind,
 * then by address), plan.service_cidrs from the config and the model. */
static int set_guards(const struct planner *p, const struct model *m, struct plan *plan)
{
	size_t n_model, n = 0, k = 0;
	const struct inet_prefix *from_model = model_service_cidrs(m, &n_model);

	plan->cluster_ips = malloc((plan->n_frontends + 1) * sizeof(*plan->cluster_ips));
	plan->service_cidrs = malloc((p->cfg.n_service_cidrs + n_model + 1) * sizeof(*plan->service_cidrs));
	if (!plan->cluster_ips || !plan->service_cidrs)
		return -ENOMEM;
	for (size_t i = 0; i < plan->n_frontends && plan->frontends[i].kind == FRONTEND_CLUSTER_IP; i++)
		if (n == 0 || inet_addr_cmp(&plan->cluster_ips[n - 1], &plan->frontends[i].addr) != 0)
			plan->cluster_ips[n++] = plan->frontends[i].addr;
	plan->n_cluster_ips = n;
	for (size_t i = 0; i < p->cfg.n_service_cidrs; i++)
		plan->service_cidrs[k++] = p->cfg.service_cidrs[i];
	for (size_t i = 0; i < n_model; i++)
		plan->service_cidrs[k++] = from_model[i];
	if (k)
		qsort(plan->service_cidrs, k, sizeof(*plan->service_cidrs), plan_prefix_cmp);
	n = 0;
	for (size_t i = 0; i < k; i++)
		if (n == 0 || plan_prefix_cmp(&plan->service_cidrs[n - 1], &plan->service_cidrs[i]) != 0)
			plan->service_cidrs[n++] = plan->service_cidrs[i];
	plan->n_service_cidrs = n;
	return 0;
}

static int cmp_fe_contested(const void *a, const void *b)
{
	return plan_frontend_addr_cmp(a, b);
}

static int cmp_port(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

/* The build's start: this node, node port addresses. */
static int build_init(struct build *b, struct planner *p, const struct model *m)
{
	int r;

	memset(b, 0, sizeof(*b));
	b->p = p;
	b->m = m;
	b->node = model_node(m);
	b->node_ip[0] = node_ip(p, m, AF_INET);
	b->node_ip[1] = node_ip(p, m, AF_INET6);
	r = np_resolve(p, m, AF_INET, &b->np[0]);
	if (r == 0)
		r = np_resolve(p, m, AF_INET6, &b->np[1]);
	return r;
}

/* Make diff the current one and hand both out. */
static void publish(struct planner *p, const struct model *m, const struct plan_diff *diff,
		    const struct plan **ret_plan, const struct plan_diff **ret_diff)
{
	plan_diff_clear(&p->diff);
	p->diff = *diff;
	p->model = m;
	p->gen = model_generation(m);
	if (ret_plan)
		*ret_plan = p->cur;
	if (ret_diff)
		*ret_diff = &p->diff;
}

int planner_run(struct planner *p, const struct model *m,
		const struct plan **ret_plan, const struct plan_diff **ret_diff)
{
	struct build b;
	struct plan *plan = NULL;
	struct plan_diff diff;
	int r;

	p->model = NULL; /* until this run succeeds, nothing to build on */
	r = build_init(&b, p, m);
	if (r == 0) {
		np_log(p, m, b.np);
		r = model_foreach_service(m, plan_service, &b);
	}
	if (r == 0)
		r = assemble(&b, &plan);
	if (r == 0)
		r = set_guards(p, m, plan);
	if (r == 0 && b.oom)
		r = -ENOMEM;
	if (r == 0)
		r = plan_splice_index(&p->splice, plan);
	if (r < 0) {
		build_done(&b);
		plan_free(plan);
		return log_errno(r, "planner: building the plan failed");
	}
	r = plan_diff_whole(p->cur, plan, &diff);
	if (r < 0) {
		build_done(&b);
		plan_free(plan);
		return log_errno(r, "planner: computing the plan diff failed");
	}
	/* What a later splice must leave to a whole plan. */
	free(p->splice.contested);
	free(p->splice.hc_contested);
	p->splice.contested = b.contested;
	p->splice.n_contested = b.n_contested;
	p->splice.hc_contested = b.hc_contested;
	p->splice.n_hc_contested = b.n_hc_contested;
	b.contested = NULL;
	b.hc_contested = NULL;
	if (p->splice.n_contested)
		qsort(p->splice.contested, p->splice.n_contested, sizeof(*p->splice.contested), cmp_fe_contested);
	if (p->splice.n_hc_contested)
		qsort(p->splice.hc_contested, p->splice.n_hc_contested, sizeof(*p->splice.hc_contested), cmp_port);
	build_done(&b);
	/* Commit: the previous plan stays alive for the "removed" pointers. */
	plan_splice_empty_trash(&p->splice);
	plan_free(p->prev);
	p->prev = p->cur;
	p->cur = plan;
	p->n_whole++;
	publish(p, m, &diff, ret_plan, ret_diff);
	return 0;
}

/* The replanned services, collected from the model's journal. */
struct dirty {
	struct plan_svc_ref *svcs;
	size_t n, cap;
	size_t max;
};

static int note_dirty(const char *ns, const char *name, void *userdata)
{
	struct dirty *d = userdata;

	if (d->n == d->max)
		return MODEL_CHANGES_ALL; /* so many that a whole plan is cheaper */
	if (grow((void **)&d->svcs, &d->cap, d->n + 1, sizeof(*d->svcs)) < 0)
		return -ENOMEM;
	d->svcs[d->n].ns = ns;
	d->svcs[d->n++].name = name;
	return 0;
}

/* Plan the services of d alone (each once) into *ret. */
static int plan_part(struct planner *p, const struct model *m, struct dirty *d, struct plan **ret)
{
	struct build b;
	size_t k = 0;
	int r;

	if (d->n)
		qsort(d->svcs, d->n, sizeof(*d->svcs), plan_svc_ref_cmp);
	for (size_t i = 0; i < d->n; i++)
		if (k == 0 || plan_svc_ref_cmp(&d->svcs[k - 1], &d->svcs[i]) != 0)
			d->svcs[k++] = d->svcs[i];
	d->n = k;
	r = build_init(&b, p, m);
	for (size_t i = 0; i < d->n && r == 0; i++) {
		const struct kobj_service *svc = model_find_service(m, d->svcs[i].ns, d->svcs[i].name);
		if (svc)
			r = plan_service(svc, &b);
	}
	if (r == 0)
		r = assemble(&b, ret);
	/* Two replanned services claiming one address or port: the
	 * first-claimant rule needs every claimant, so plan it all. */
	if (r == 0 && (b.n_contested || b.n_hc_contested)) {
		plan_free(*ret);
		*ret = NULL;
		r = PLAN_SPLICE_REPLAN;
	}
	if (r == 0 && b.oom) {
		plan_free(*ret);
		*ret = NULL;
		r = -ENOMEM;
	}
	build_done(&b);
	return r;
}

int planner_update(struct planner *p, const struct model *m,
		   const struct plan **ret_plan, const struct plan_diff **ret_diff)
{
	struct dirty d = { .max = MODEL_JOURNAL_MAX };
	struct plan *part = NULL;
	struct plan_diff diff;
	bool stale_index = false;
	int r;

	memset(&diff, 0, sizeof(diff));
	if (p->model != m)
		return planner_run(p, m, ret_plan, ret_diff);
	/* Past an eighth of the services, one whole plan costs less. */
	if (model_n_services(m) / 8 + 64 < d.max)
		d.max = model_n_services(m) / 8 + 64;
	r = model_changes_since(m, p->gen, note_dirty, &d);
	if (r == 0)
		r = plan_part(p, m, &d, &part);
	if (r == 0) {
		/* Removed entries of the last diff may be dropped now. */
		plan_splice_empty_trash(&p->splice);
		plan_free(p->prev);
		p->prev = NULL;
		r = plan_splice(p->cur, part, d.svcs, d.n, &p->splice, &diff);
	}
	/* The splice is done: its diff must reach the backend even when the
	 * index cannot follow (the next run then plans everything). */
	if (r == 0 && (diff.n_fe_added || diff.n_fe_removed || diff.n_eps_added || diff.n_eps_removed))
		stale_index = plan_splice_index(&p->splice, p->cur) < 0;
	plan_free(part);
	free(d.svcs);
	if (r == -ENOMEM)
		log_warn("planner: out of memory in an incremental update; planning everything");
	if (r != 0) /* cur is unchanged */
		return planner_run(p, m, ret_plan, ret_diff);
	p->n_spliced++;
	publish(p, m, &diff, ret_plan, ret_diff);
	if (stale_index)
		p->model = NULL;
	return 0;
}

void planner_release_previous(struct planner *p)
{
	plan_splice_empty_trash(&p->splice);
	p->prev = plan_free(p->prev);
	/* The diff's removed entries pointed there, and the rest has been
	 * applied: its arrays (six of them sized for both plans after a whole
	 * run, 4.8 MB at 100k frontends) need not wait for the next run. */
	plan_diff_clear(&p->diff);
}

void planner_counts(const struct planner *p, uint64_t *ret_whole, uint64_t *ret_spliced)
{
	*ret_whole = p->n_whole;
	*ret_spliced = p->n_spliced;
}
