/* Policy: the items one plan frontend stands for (see ipvs_items.h). */
#include "ipvs_items.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kobj.h"

/* Names (IPv4, IPv6) and types; at most 31 characters (IPSET_MAXNAMELEN). */
static const struct {
	const char *name[2];
	const char *type;
} set_defs[IPVS_SET_COUNT] = {
	[IPVS_SET_SERVICES] = { { "FERRY-SERVICES", "FERRY6-SERVICES" }, "hash:ip,port" },
	[IPVS_SET_CLUSTER_IP] = { { "FERRY-CLUSTER-IP", "FERRY6-CLUSTER-IP" }, "hash:ip,port" },
	[IPVS_SET_MASQ] = { { "FERRY-MASQ", "FERRY6-MASQ" }, "hash:ip,port" },
	[IPVS_SET_EMPTY_REJECT] = { { "FERRY-EMPTY-REJECT", "FERRY6-EMPTY-REJECT" }, "hash:ip,port" },
	[IPVS_SET_EMPTY_DROP] = { { "FERRY-EMPTY-DROP", "FERRY6-EMPTY-DROP" }, "hash:ip,port" },
	[IPVS_SET_FIREWALL] = { { "FERRY-LB-FIREWALL", "FERRY6-LB-FIREWALL" }, "hash:ip,port" },
	[IPVS_SET_SOURCES] = { { "FERRY-LB-SOURCES", "FERRY6-LB-SOURCES" }, "hash:ip,port,net" },
	[IPVS_SET_LOOPBACK] = { { "FERRY-LOOPBACK", "FERRY6-LOOPBACK" }, "hash:ip,port,ip" },
	[IPVS_SET_CLUSTER_ADDRS] = { { "FERRY-CLUSTER-ADDRS", "FERRY6-CLUSTER-ADDRS" }, "hash:ip" },
	[IPVS_SET_SERVICE_CIDRS] = { { "FERRY-SERVICE-CIDRS", "FERRY6-SERVICE-CIDRS" }, "hash:net" },
};

const char *ipvs_set_type(enum ipvs_set_id set)
{
	return (unsigned)set < IPVS_SET_COUNT ? set_defs[set].type : "?";
}

const char *ipvs_set_name(enum ipvs_set_id set, int family)
{
	return (unsigned)set < IPVS_SET_COUNT ? set_defs[set].name[family == AF_INET6] : "?";
}

int ipvs_set_parse_name(const char *name, enum ipvs_set_id *ret_set, int *ret_family)
{
	for (int f = 0; f < 2; f++)
		for (int s = 0; s < IPVS_SET_COUNT; s++)
			if (strcmp(name, ipvs_set_name((enum ipvs_set_id)s, f ? AF_INET6 : AF_INET)) == 0) {
				*ret_set = (enum ipvs_set_id)s;
				*ret_family = f ? AF_INET6 : AF_INET;
				return 0;
			}
	return -ENOENT;
}

static int cmp_u(unsigned a, unsigned b)
{
	return a < b ? -1 : a > b;
}

int ipvs_item_cmp(const struct ipvs_item *a, const struct ipvs_item *b)
{
	int c;

	if ((c = cmp_u(a->kind, b->kind)) || (c = cmp_u(a->set, b->set)) ||
	    (c = inet_addr_cmp(&a->addr, &b->addr)) || (c = cmp_u(a->proto, b->proto)) ||
	    (c = cmp_u(a->port, b->port)) || (c = inet_addr_cmp(&a->addr2, &b->addr2)) ||
	    (c = cmp_u(a->port2, b->port2)) || (c = cmp_u(a->plen, b->plen)))
		return c;
	return 0;
}

bool ipvs_item_options_differ(const struct ipvs_item *a, const struct ipvs_item *b)
{
	return strcmp(a->sched, b->sched) != 0 || a->persistent != b->persistent || a->timeout != b->timeout ||
	       a->weight != b->weight;
}

bool ipvs_item_is_shared(const struct ipvs_item *it)
{
	return it->kind == IPVS_ITEM_ADDR || (it->kind == IPVS_ITEM_MEMBER && it->set == IPVS_SET_LOOPBACK);
}

struct ipvs_item *ipvs_item_vec_push(struct ipvs_item_vec *vec)
{
	if (vec->n == vec->cap) {
		size_t cap = vec->cap ? vec->cap * 2 : 16;
		struct ipvs_item *v = realloc(vec->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		vec->v = v;
		vec->cap = cap;
	}
	memset(&vec->v[vec->n], 0, sizeof(vec->v[0]));
	return &vec->v[vec->n++];
}

static int item_qsort_cmp(const void *a, const void *b)
{
	return ipvs_item_cmp(a, b);
}

void ipvs_item_vec_sort(struct ipvs_item_vec *vec)
{
	size_t w = 0;

	if (vec->n < 2)
		return;
	qsort(vec->v, vec->n, sizeof(*vec->v), item_qsort_cmp);
	for (size_t i = 0; i < vec->n; i++)
		if (w == 0 || ipvs_item_cmp(&vec->v[w - 1], &vec->v[i]) != 0)
			vec->v[w++] = vec->v[i];
	vec->n = w;
}

void ipvs_item_vec_done(struct ipvs_item_vec *vec)
{
	free(vec->v);
	memset(vec, 0, sizeof(*vec));
}

const char *ipvs_scheduler_for(const struct plan_epset *eps, const char *cfg_default, bool *ret_unmapped)
{
	*ret_unmapped = false;
	switch (eps ? eps->balance : BALANCE_ROUND_ROBIN) {
	case BALANCE_ROUND_ROBIN:
		/* The annotation's default: the configured scheduler. */
		return cfg_default;
	case BALANCE_LEAST_CONN:
		return "lc";
	case BALANCE_MAGLEV:
		return "mh";
	case BALANCE_RANDOM_TWO:
		break;
	}
	*ret_unmapped = true;
	return cfg_default;
}

/* A node address a node port opens on in IPVS: not loopback (IPVS does not
 * serve it), not IPv6 link-local (scoped), not the wildcard. */
static bool node_addr_usable(const struct inet_addr *a, int family)
{
	if (a->family != family || inet_addr_is_any(a) || inet_addr_is_loopback(a))
		return false;
	return !(family == AF_INET6 && a->u.bytes[0] == 0xfe && (a->u.bytes[1] & 0xc0) == 0x80);
}

static struct ipvs_item *member(struct ipvs_item_vec *out, enum ipvs_set_id set, const struct inet_addr *a,
				enum inet_proto proto, uint16_t port)
{
	struct ipvs_item *it = ipvs_item_vec_push(out);

	if (!it)
		return NULL;
	it->kind = IPVS_ITEM_MEMBER;
	it->set = (uint8_t)set;
	it->addr = *a;
	it->proto = (uint8_t)proto;
	it->port = port;
	return it;
}

/* The items of fe on one virtual address vip. */
static int vip_items(const struct plan_frontend *fe, const struct inet_addr *vip, const char *sched,
		     struct ipvs_item_vec *out)
{
	const struct plan_epset *eps = fe->epset;
	int family = vip->family;
	size_t n_eps = 0;
	struct ipvs_item *it;

	/* Node addresses are the node's own; every other VIP is bound on the
	 * dummy interface, so that the kernel delivers it locally, to IPVS. */
	if (fe->kind != FRONTEND_NODE_PORT) {
		if (!(it = ipvs_item_vec_push(out)))
			return -ENOMEM;
		it->kind = IPVS_ITEM_ADDR;
		it->addr = *vip;
	}
	if (!(it = ipvs_item_vec_push(out)))
		return -ENOMEM;
	it->kind = IPVS_ITEM_SERVICE;
	it->addr = *vip;
	it->proto = (uint8_t)fe->proto;
	it->port = fe->port;
	snprintf(it->sched, sizeof(it->sched), "%s", sched);
	if (eps && eps->affinity) {
		it->persistent = true;
		it->timeout = eps->affinity_timeout_s; /* set: plan-t.h */
	}
	if (!member(out, IPVS_SET_SERVICES, vip, fe->proto, fe->port))
		return -ENOMEM;

	for (size_t i = 0; eps && i < eps->n_endpoints; i++) {
		const struct plan_endpoint *ep = &eps->endpoints[i];

		if (ep->addr.family != family)
			continue;
		n_eps++;
		if (!(it = ipvs_item_vec_push(out)))
			return -ENOMEM;
		it->kind = IPVS_ITEM_DEST;
		it->addr = *vip;
		it->proto = (uint8_t)fe->proto;
		it->port = fe->port;
		it->addr2 = ep->addr;
		it->port2 = ep->port;
		it->weight = 1;
		/* Hairpin: only an endpoint that is (or may be) on this node
		 * can reach itself through this node's service. */
		if (ep->local || ep->node_unknown) {
			if (!(it = member(out, IPVS_SET_LOOPBACK, &ep->addr, fe->proto, ep->port)))
				return -ENOMEM;
			it->addr2 = ep->addr;
			it->plen = family == AF_INET6 ? 128 : 32;
		}
	}
	if (n_eps == 0) {
		if (!member(out, fe->when_empty == EMPTY_DROP ? IPVS_SET_EMPTY_DROP : IPVS_SET_EMPTY_REJECT, vip,
			    fe->proto, fe->port))
			return -ENOMEM;
	} else if (fe->masquerade == PLAN_MASQ_ALWAYS) {
		if (!member(out, IPVS_SET_MASQ, vip, fe->proto, fe->port))
			return -ENOMEM;
	} else if (fe->masquerade == PLAN_MASQ_UNLESS_LOCAL) {
		if (!member(out, IPVS_SET_CLUSTER_IP, vip, fe->proto, fe->port))
			return -ENOMEM;
	}
	if (fe->n_source_ranges) {
		for (size_t i = 0; i < fe->n_source_ranges; i++) {
			const struct inet_prefix *p = &fe->source_ranges[i];

			if (p->addr.family != family)
				continue;
			if (!(it = member(out, IPVS_SET_SOURCES, vip, fe->proto, fe->port)))
				return -ENOMEM;
			it->addr2 = p->addr;
			it->plen = p->len;
		}
		/* Ranges of the other family only: nobody of this family may
		 * connect, as with nftables (the firewall set without sources). */
		if (!member(out, IPVS_SET_FIREWALL, vip, fe->proto, fe->port))
			return -ENOMEM;
	}
	return 0;
}

/* kube-proxy's IPVS mode has no externalTrafficPolicy Local
 * "short-circuit": pods and the node reaching an eTP Local service's
 * external address get its local endpoints only, like any other client.
 * The IPVS backend keeps that parity on purpose: fe->short_circuit is
 * ignored here, and the virtual server of an eTP Local frontend holds the
 * local endpoints alone. Source ranges are taken as the plan gives them
 * (the planner already admits the load-balancer IPs where a range holds
 * the node's address). */
int ipvs_frontend_items(const struct plan_frontend *fe, const struct ipvs_items_cfg *cfg,
			struct ipvs_item_vec *out)
{
	bool unmapped;
	const char *sched = ipvs_scheduler_for(fe->epset, cfg->scheduler ? cfg->scheduler : "rr", &unmapped);
	int family = fe->addr.family;
	int r = 0;

	if (fe->kind != FRONTEND_NODE_PORT || !inet_addr_is_any(&fe->addr))
		return vip_items(fe, &fe->addr, sched, out);
	for (size_t i = 0; i < cfg->n_node_addrs && r == 0; i++)
		if (node_addr_usable(&cfg->node_addrs[i], family))
			r = vip_items(fe, &cfg->node_addrs[i], sched, out);
	return r;
}

/* A SERVICE-CIDRS member for prefix (addr, len), host bits cleared. */
static int cidr_member(struct ipvs_item_vec *out, const struct inet_addr *addr, unsigned len)
{
	struct ipvs_item *it = ipvs_item_vec_push(out);
	size_t alen = addr->family == AF_INET6 ? 16 : 4;

	if (!it)
		return -ENOMEM;
	it->kind = IPVS_ITEM_MEMBER;
	it->set = IPVS_SET_SERVICE_CIDRS;
	it->addr = *addr;
	it->plen = (uint8_t)len;
	/* The kernel keeps the network address: a member read back must
	 * compare equal to the one staged. */
	for (size_t i = 0; i < alen; i++) {
		unsigned bit = (unsigned)i * 8;

		if (bit >= len)
			it->addr.u.bytes[i] = 0;
		else if (bit + 8 > len)
			it->addr.u.bytes[i] &= (uint8_t)(0xff << (8 - (len - bit)));
	}
	return 0;
}

int ipvs_guard_items(const struct plan *plan, struct ipvs_item_vec *out)
{
	for (size_t i = 0; i < plan->n_cluster_ips; i++) {
		struct ipvs_item *it = ipvs_item_vec_push(out);

		if (!it)
			return -ENOMEM;
		it->kind = IPVS_ITEM_MEMBER;
		it->set = IPVS_SET_CLUSTER_ADDRS;
		it->addr = plan->cluster_ips[i];
	}
	for (size_t i = 0; i < plan->n_service_cidrs; i++) {
		const struct inet_prefix *p = &plan->service_cidrs[i];
		struct inet_addr half = p->addr;
		int r;

		if (p->len > 0) {
			r = cidr_member(out, &p->addr, p->len);
		} else {
			/* hash:net holds /1 to /32 (/128): a whole family is
			 * its two halves. */
			memset(half.u.bytes, 0, sizeof(half.u.bytes));
			r = cidr_member(out, &half, 1);
			half.u.bytes[0] = 0x80;
			if (r == 0)
				r = cidr_member(out, &half, 1);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

void ipvs_member_print(FILE *out, const struct ipvs_item *m)
{
	char a[INET_ADDR_STRLEN], b[INET_ADDR_STRLEN];

	if (m->set == IPVS_SET_CLUSTER_ADDRS) {
		fprintf(out, "%s", inet_addr_format(&m->addr, a));
		return;
	}
	if (m->set == IPVS_SET_SERVICE_CIDRS) {
		fprintf(out, "%s/%u", inet_addr_format(&m->addr, a), m->plen);
		return;
	}

	fprintf(out, "%s,%s:%u", inet_addr_format(&m->addr, a),
		m->proto == INET_PROTO_TCP ? "tcp" : m->proto == INET_PROTO_UDP ? "udp" : "sctp", m->port);
	if (m->set == IPVS_SET_SOURCES)
		fprintf(out, ",%s/%u", inet_addr_format(&m->addr2, b), m->plen);
	else if (m->set == IPVS_SET_LOOPBACK)
		fprintf(out, ",%s", inet_addr_format(&m->addr2, b));
}

void ipvs_item_print(FILE *out, const struct ipvs_item *it)
{
	char a[INET_ENDPOINT_STRLEN], b[INET_ENDPOINT_STRLEN];
	int family = it->addr.family;

	switch ((enum ipvs_item_kind)it->kind) {
	case IPVS_ITEM_ADDR:
		fprintf(out, "address %s/%d", inet_addr_format(&it->addr, a), family == AF_INET6 ? 128 : 32);
		return;
	case IPVS_ITEM_SERVICE:
		fprintf(out, "service %s %s %s", inet_proto_name((enum inet_proto)it->proto),
			inet_endpoint_format(&it->addr, it->port, a), it->sched);
		if (it->persistent)
			fprintf(out, " persistent %u", it->timeout);
		return;
	case IPVS_ITEM_DEST:
		fprintf(out, "real-server %s %s -> %s masq weight %u", inet_proto_name((enum inet_proto)it->proto),
			inet_endpoint_format(&it->addr, it->port, a), inet_endpoint_format(&it->addr2, it->port2, b),
			it->weight);
		return;
	case IPVS_ITEM_MEMBER:
		fprintf(out, "member %s ", ipvs_set_name((enum ipvs_set_id)it->set, family));
		ipvs_member_print(out, it);
		return;
	}
	fprintf(out, "?");
}
