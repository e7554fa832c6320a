/* Policy: the IPVS backend's ops table. A plan or a diff becomes item
 * lists per frontend (ipvs_items.c), the state (ipvs_state.c) turns them
 * into a change, and the change is sent through the mechanism files:
 * virtual and real servers over generic netlink (ipvs_genl.c), VIPs on the
 * dummy interface (ipvs_host.c), ipset members (ipset.c). The constant
 * rules (ipvs_rules.c) are (re)written once per process, atomically.
 *
 * The first sync of a process, and the first after any failure, reads the
 * kernel back (the virtual servers ferry owns, as listed in its
 * FERRY-SERVICES sets, their real servers, every member of ferry's sets,
 * the dummy interface's addresses) and sends only the difference: a
 * restart flushes nothing and established connections keep their real
 * server. Later syncs diff against the state kept in memory.
 *
 * The guards of the service range (kube-proxy's cluster-ips-check) are
 * members of two more sets, FERRY-CLUSTER-ADDRS (plan.cluster_ips) and
 * FERRY-SERVICE-CIDRS (plan.service_cidrs), that constant rules consult:
 * staged as a frontend of their own at every sync, and by an apply whose
 * diff says guards_changed, read back and converged like the others.
 *
 * Real servers of TCP and SCTP services that leave the plan drain: weight
 * 0, deleted by a later sync once IPVS counts no connection on them (as
 * kube-proxy's graceful termination does). UDP ones are deleted at once.
 */
#include "ipvs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <netlink/msg.h>
#include <linux/ip_vs.h>

#include "ipset.h"
#include "ipvs_genl.h"
#include "ipvs_host.h"
#include "ipvs_items.h"
#include "ipvs_rules.h"
#include "ipvs_state.h"
#include "kobj.h"
#include "log.h"
#include "nft_batch.h"

struct ipvs {
	struct ipvs_genl *genl;
	struct ipvs_ipset *ipset;
	struct ipvs_host *host;
	struct mnl_socket *nl;         /* nf_tables, for the rules */
	struct nft_batch *batch;
	struct ipvs_state *state;
	struct ipvs_rules_cfg rcfg;
	struct inet_prefix *cidrs;     /* owned copies of the cluster CIDRs */
	struct inet_prefix *exclude;   /* owned copies of ipvs.excludeCIDRs */
	size_t n_exclude;
	char iface[16];                /* owned copy of the local interface name */
	char sched[IPVS_ITEM_SCHED_MAX];
	bool strict_arp;
	int dummy_ifindex;
	struct inet_addr *node_addrs;  /* refreshed at every full sync */
	size_t n_node_addrs;
	bool need_full;                /* next sync reads the kernel back */
	bool infra_done;               /* dummy, sets and rules made by this process */
	char **warned;                 /* epset keys warned about an unmapped algorithm */
	size_t n_warned;
};

static const char *const schedulers[] = { "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh",
					  "sh", "sed", "nq", "mh", "fo", "ovf", "twos" };

bool ipvs_scheduler_known(const char *name)
{
	for (size_t i = 0; i < sizeof(schedulers) / sizeof(schedulers[0]); i++)
		if (strcmp(name, schedulers[i]) == 0)
			return true;
	return false;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int nfproto_of(enum inet_proto p)
{
	return p == INET_PROTO_UDP ? IPPROTO_UDP : p == INET_PROTO_SCTP ? IPPROTO_SCTP : IPPROTO_TCP;
}

static int inet_proto_of(int ipproto, enum inet_proto *ret)
{
	switch (ipproto) {
	case IPPROTO_TCP:
		*ret = INET_PROTO_TCP;
		return 0;
	case IPPROTO_UDP:
		*ret = INET_PROTO_UDP;
		return 0;
	case IPPROTO_SCTP:
		*ret = INET_PROTO_SCTP;
		return 0;
	}
	return -EPROTONOSUPPORT;
}

/* ---- items <-> mechanism structs ---- */

static void service_of(const struct ipvs_item *it, struct ipvs_service *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->af = it->addr.family;
	ret->protocol = (uint16_t)nfproto_of((enum inet_proto)it->proto);
	ret->addr = it->addr;
	ret->port = it->port;
	snprintf(ret->sched_name, sizeof(ret->sched_name), "%s", it->sched[0] ? it->sched : "rr");
	if (it->persistent) {
		ret->flags = IP_VS_SVC_F_PERSISTENT;
		ret->timeout = it->timeout;
	}
}

static void dest_of(const struct ipvs_item *it, struct ipvs_dest *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->addr = it->addr2;
	ret->port = it->port2;
	ret->conn_flags = IP_VS_CONN_F_MASQ;
	ret->weight = it->weight;
}

static enum ipvs_ipset_type set_type_of(enum ipvs_set_id set)
{
	switch (set) {
	case IPVS_SET_SOURCES:
		return IPVS_IPSET_HASH_IP_PORT_NET;
	case IPVS_SET_LOOPBACK:
		return IPVS_IPSET_HASH_IP_PORT_IP;
	case IPVS_SET_CLUSTER_ADDRS:
		return IPVS_IPSET_HASH_IP;
	case IPVS_SET_SERVICE_CIDRS:
		return IPVS_IPSET_HASH_NET;
	default:
		return IPVS_IPSET_HASH_IP_PORT;
	}
}

/* Whether set's members are addresses or networks alone (no port). */
static bool set_is_guard(unsigned set)
{
	return set == IPVS_SET_CLUSTER_ADDRS || set == IPVS_SET_SERVICE_CIDRS;
}

static void entry_of(const struct ipvs_item *it, struct ipvs_ipset_entry *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->addr = it->addr;
	if (set_is_guard(it->set)) {
		ret->cidr = it->set == IPVS_SET_SERVICE_CIDRS ? it->plen : 0;
		return;
	}
	ret->proto = (uint8_t)nfproto_of((enum inet_proto)it->proto);
	ret->port = it->port;
	if (it->set == IPVS_SET_SOURCES || it->set == IPVS_SET_LOOPBACK) {
		ret->addr2 = it->addr2;
		ret->cidr2 = it->set == IPVS_SET_SOURCES ? it->plen : 0;
	}
}

/* ---- logging helpers ---- */

static int log_item_error(int r, const char *what, const struct ipvs_item *it)
{
	char buf[256] = "";
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

	if (f) {
		ipvs_item_print(f, it);
		fclose(f);
	}
	return log_errno(r, "ipvs: %s %s refused", what, buf);
}

/* Warn once per endpoint set about a ferry.io/balance IPVS cannot do. */
static void warn_unmapped(struct ipvs *v, const struct plan_epset *eps, const char *sched)
{
	char **w;

	for (size_t i = 0; i < v->n_warned; i++)
		if (strcmp(v->warned[i], eps->key) == 0)
			return;
	log_warn("ipvs: service %s/%s asks for ferry.io/balance %s, which IPVS has no scheduler for; using %s",
		 eps->ns ? eps->ns : "?", eps->svc_name ? eps->svc_name : "?", balance_algo_name(eps->balance), sched);
	w = realloc(v->warned, (v->n_warned + 1) * sizeof(*w));
	if (!w)
		return;
	v->warned = w;
	if ((v->warned[v->n_warned] = strdup(eps->key)))
		v->n_warned++;
}

/* ---- set-up: dummy interface, sets, rules ---- */

static int sets_create(struct ipvs *v)
{
	for (int f = 0; f < 2; f++)
		for (int s = 0; s < IPVS_SET_COUNT; s++) {
			int family = f ? AF_INET6 : AF_INET;
			struct ipvs_ipset_spec spec = { .type = set_type_of((enum ipvs_set_id)s),
							.family = (sa_family_t)family };
			int r;

			snprintf(spec.name, sizeof(spec.name), "%s", ipvs_set_name((enum ipvs_set_id)s, family));
			r = ipvs_ipset_create(v->ipset, &spec);
			if (r < 0)
				return log_errno(r, "ipvs: cannot create ipset %s (%s): %s", spec.name,
						 ipvs_set_type((enum ipvs_set_id)s), ipvs_ipset_error(v->ipset));
		}
	return 0;
}

static int rules_commit(struct ipvs *v)
{
	struct nft_batch_error be = { 0 };
	int r = 0;

	nft_batch_clear(v->batch);
	for (int f = 0; f < 2 && r == 0; f++) {
		int family = f ? AF_INET6 : AF_INET;

		for (int s = 0; s < IPVS_SET_COUNT && r == 0; s++) {
			const char *name = ipvs_set_name((enum ipvs_set_id)s, family);

			r = ipvs_rules_set_index(name, &v->rcfg.set_index[s]);
			if (r < 0)
				return log_errno(r, "ipvs: cannot find the index of ipset %s", name);
		}
		r = ipvs_rules_msgs(v->batch, family, &v->rcfg);
		if (r < 0)
			return log_errno(r, "ipvs: out of memory building the rules");
	}
	r = nft_batch_commit(v->nl, v->batch, 0, &be);
	if (r < 0)
		return log_errno(r, "ipvs: the kernel refused the rules (%s%s)", be.desc,
				 r == -ENOENT || r == -EOPNOTSUPP ? "; is nft_compat or xt_set missing?" : "");
	return 0;
}

static int infra_ensure(struct ipvs *v)
{
	int r;

	if (v->infra_done)
		return 0;
	r = ipvs_host_dummy_ensure(v->host, IPVS_DUMMY_NAME, &v->dummy_ifindex);
	if (r < 0)
		return log_errno(r, "ipvs: cannot create the dummy interface %s", IPVS_DUMMY_NAME);
	r = sets_create(v);
	if (r == 0)
		r = rules_commit(v);
	if (r == 0)
		v->infra_done = true;
	return r;
}

static void node_addrs_refresh(struct ipvs *v)
{
	struct inet_addr *a = NULL;
	size_t n = 0;
	int r = ipvs_host_node_addrs(v->host, v->dummy_ifindex, &a, &n);

	if (r < 0) {
		log_warn_errno(r, "ipvs: cannot list the node's addresses; node ports keep the previous ones");
		return;
	}
	free(v->node_addrs);
	v->node_addrs = a;
	v->n_node_addrs = n;
}

/* ---- reading the kernel back ---- */

struct read_ctx {
	struct ipvs *v;
	struct ipvs_item_vec *have;
	const struct ipvs_item *want; /* sorted services the plan wants */
	size_t n_want;
	const struct ipvs_ipset_entry *owned[2]; /* FERRY(6)-SERVICES members, sorted */
	size_t n_owned[2];
	struct ipvs_service cur;      /* service whose dests are being read */
	enum inet_proto cur_proto;
	int err;
};

static int entry_cmp(const void *a, const void *b)
{
	const struct ipvs_ipset_entry *x = a, *y = b;
	int c = inet_addr_cmp(&x->addr, &y->addr);

	if (c)
		return c;
	if (x->proto != y->proto)
		return x->proto < y->proto ? -1 : 1;
	return x->port < y->port ? -1 : x->port > y->port;
}

struct entry_vec {
	struct ipvs_ipset_entry *v;
	size_t n, cap;
};

static int entry_collect(const struct ipvs_ipset_entry *e, void *ctx)
{
	struct entry_vec *ev = ctx;

	if (ev->n == ev->cap) {
		size_t cap = ev->cap ? ev->cap * 2 : 64;
		struct ipvs_ipset_entry *p = realloc(ev->v, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		ev->v = p;
		ev->cap = cap;
	}
	ev->v[ev->n++] = *e;
	return 0;
}

static int dest_read(const struct ipvs_dest *d, void *ctx)
{
	struct read_ctx *c = ctx;
	struct ipvs_item *it = ipvs_item_vec_push(c->have);

	if (!it)
		return -ENOMEM;
	it->kind = IPVS_ITEM_DEST;
	it->addr = c->cur.addr;
	it->proto = (uint8_t)c->cur_proto;
	it->port = c->cur.port;
	it->addr2 = d->addr;
	it->port2 = d->port;
	/* ferry writes weights 0 and 1: anything else is someone's edit,
	 * which the diff puts back to 1. */
	it->weight = d->weight;
	return 0;
}

static int item_bsearch_cmp(const void *a, const void *b)
{
	return ipvs_item_cmp(a, b);
}

static bool service_owned(const struct read_ctx *c, const struct ipvs_item *k)
{
	struct ipvs_ipset_entry e = { .addr = k->addr, .proto = (uint8_t)nfproto_of((enum inet_proto)k->proto),
				      .port = k->port };
	int f = k->addr.family == AF_INET6;

	if (c->n_owned[f] && bsearch(&e, c->owned[f], c->n_owned[f], sizeof(e), entry_cmp))
		return true;
	/* A service the plan wants is ferry's to converge, owned or not (a
	 * crash between adding it and recording it). */
	return c->n_want && bsearch(k, c->want, c->n_want, sizeof(*k), item_bsearch_cmp);
}

static int service_read(const struct ipvs_service *s, void *ctx)
{
	struct read_ctx *c = ctx;
	struct ipvs_item k = { .kind = IPVS_ITEM_SERVICE };
	struct ipvs_item *it;
	enum inet_proto p;

	if (s->fwmark || inet_proto_of(s->protocol, &p) < 0)
		return 0;
	k.proto = (uint8_t)p;
	k.addr = s->addr;
	k.port = s->port;
	if (!service_owned(c, &k))
		return 0;
	if (!(it = ipvs_item_vec_push(c->have)))
		return -ENOMEM;
	*it = k;
	snprintf(it->sched, sizeof(it->sched), "%s", s->sched_name);
	if (s->flags & IP_VS_SVC_F_PERSISTENT) {
		it->persistent = true;
		it->timeout = s->timeout;
	}
	return 0;
}

static int addr_read(const struct inet_addr *a, uint8_t prefix_len, void *ctx)
{
	struct read_ctx *c = ctx;
	struct ipvs_item *it = ipvs_item_vec_push(c->have);

	if (!it)
		return -ENOMEM;
	/* ferry binds host addresses only; another length is someone else's
	 * (and not ours to remove). */
	if (prefix_len != (a->family == AF_INET6 ? 128 : 32)) {
		c->have->n--;
		return 0;
	}
	it->kind = IPVS_ITEM_ADDR;
	it->addr = *a;
	return 0;
}

/* Every item of ferry's in the kernel, sorted, into have. want: the
 * sorted items the plan wants (for services not yet recorded as owned). */
static int kernel_items(struct ipvs *v, const struct ipvs_item *want, size_t n_want, struct ipvs_item_vec *have)
{
	struct read_ctx c = { .v = v, .have = have, .want = want, .n_want = n_want };
	struct entry_vec sets[2][IPVS_SET_COUNT];
	size_t n_services;
	int r = 0;

	memset(sets, 0, sizeof(sets));
	for (int f = 0; f < 2 && r == 0; f++)
		for (int s = 0; s < IPVS_SET_COUNT && r == 0; s++) {
			int family = f ? AF_INET6 : AF_INET;
			const char *name = ipvs_set_name((enum ipvs_set_id)s, family);

			r = ipvs_ipset_list(v->ipset, name, NULL, entry_collect, &sets[f][s]);
			if (r == -ENOENT)
				r = 0;
			else if (r < 0)
				log_errno(r, "ipvs: cannot read ipset %s: %s", name, ipvs_ipset_error(v->ipset));
			for (size_t i = 0; r == 0 && i < sets[f][s].n; i++) {
				const struct ipvs_ipset_entry *e = &sets[f][s].v[i];
				struct ipvs_item *it = ipvs_item_vec_push(have);
				enum inet_proto p;

				if (!it) {
					r = -ENOMEM;
					break;
				}
				if (set_is_guard((unsigned)s)) {
					it->kind = IPVS_ITEM_MEMBER;
					it->set = (uint8_t)s;
					it->addr = e->addr;
					it->plen = s == IPVS_SET_SERVICE_CIDRS ? e->cidr : 0;
					continue;
				}
				if (inet_proto_of(e->proto, &p) < 0) {
					have->n--;
					continue;
				}
				it->kind = IPVS_ITEM_MEMBER;
				it->set = (uint8_t)s;
				it->addr = e->addr;
				it->proto = (uint8_t)p;
				it->port = e->port;
				if (s == IPVS_SET_SOURCES) {
					it->addr2 = e->addr2;
					it->plen = e->cidr2;
				} else if (s == IPVS_SET_LOOPBACK) {
					it->addr2 = e->addr2;
					it->plen = family == AF_INET6 ? 128 : 32;
				}
			}
		}
	for (int f = 0; f < 2 && r == 0; f++) {
		struct entry_vec *o = &sets[f][IPVS_SET_SERVICES];

		if (o->n > 1)
			qsort(o->v, o->n, sizeof(*o->v), entry_cmp);
		c.owned[f] = o->v;
		c.n_owned[f] = o->n;
	}
	if (r == 0)
		r = ipvs_genl_dump_services(v->genl, service_read, &c);
	if (r < 0 && r != -ENOMEM)
		log_errno(r, "ipvs: cannot read the virtual servers back");
	/* Then the real servers of each service read. */
	n_services = have->n;
	for (size_t i = 0; i < n_services && r == 0; i++) {
		if (have->v[i].kind != IPVS_ITEM_SERVICE)
			continue;
		service_of(&have->v[i], &c.cur);
		c.cur_proto = (enum inet_proto)have->v[i].proto;
		r = ipvs_genl_dump_dests(v->genl, &c.cur, dest_read, &c);
	}
	if (r == 0 && v->dummy_ifindex > 0)
		r = ipvs_host_addr_list(v->host, v->dummy_ifindex, addr_read, &c);
	for (int f = 0; f < 2; f++)
		for (int s = 0; s < IPVS_SET_COUNT; s++)
			free(sets[f][s].v);
	if (r == 0)
		ipvs_item_vec_sort(have);
	return r;
}

/* ---- sending a change ---- */

/* Add a virtual server (dest NULL) or a real server; one that exists
 * already (a restart's leftover, a real server coming back while it
 * drains at weight 0) gets ferry's options instead. One round trip in the
 * common case. 0 or -errno. */
static int genl_put(struct ipvs *v, const struct ipvs_service *svc, const struct ipvs_dest *dest)
{
	struct nl_msg *msg = nlmsg_alloc();
	int family = ipvs_genl_family_id(v->genl), r;

	if (!msg)
		return -ENOMEM;
	r = dest ? ipvs_genl_build_dest(msg, family, IPVS_GENL_ADD, svc, dest)
		 : ipvs_genl_build_service(msg, family, IPVS_GENL_ADD, svc);
	if (r == 0)
		r = ipvs_genl_exec(v->genl, msg);
	nlmsg_free(msg);
	if (r == -EEXIST)
		r = dest ? ipvs_genl_apply_dest(v->genl, IPVS_GENL_EDIT, svc, dest)
			 : ipvs_genl_apply_service(v->genl, IPVS_GENL_EDIT, svc);
	return r;
}

static int send_item(struct ipvs *v, const struct ipvs_item *it, enum ipvs_genl_op op)
{
	struct ipvs_service svc;
	struct ipvs_dest dst;
	struct ipvs_ipset_entry e;
	const char *set;
	int r;

	switch ((enum ipvs_item_kind)it->kind) {
	case IPVS_ITEM_ADDR:
		r = op == IPVS_GENL_DEL ? ipvs_host_addr_del(v->host, v->dummy_ifindex, &it->addr)
					: ipvs_host_addr_add(v->host, v->dummy_ifindex, &it->addr);
		return r < 0 ? log_item_error(r, op == IPVS_GENL_DEL ? "removing" : "binding", it) : 0;
	case IPVS_ITEM_SERVICE:
		service_of(it, &svc);
		r = op == IPVS_GENL_ADD ? genl_put(v, &svc, NULL) : ipvs_genl_apply_service(v->genl, op, &svc);
		return r < 0 ? log_item_error(r, op == IPVS_GENL_DEL ? "deleting" : "programming", it) : 0;
	case IPVS_ITEM_DEST:
		service_of(it, &svc);
		dest_of(it, &dst);
		r = op == IPVS_GENL_ADD ? genl_put(v, &svc, &dst) : ipvs_genl_apply_dest(v->genl, op, &svc, &dst);
		return r < 0 ? log_item_error(r, op == IPVS_GENL_DEL ? "deleting" : "programming", it) : 0;
	case IPVS_ITEM_MEMBER:
		set = ipvs_set_name((enum ipvs_set_id)it->set, it->addr.family);
		entry_of(it, &e);
		r = op == IPVS_GENL_DEL ? ipvs_ipset_del(v->ipset, set, &e) : ipvs_ipset_add(v->ipset, set, &e);
		if (r < 0)
			log_errno(r, "ipvs: ipset %s: %s", set, ipvs_ipset_error(v->ipset));
		return r < 0 ? log_item_error(r, op == IPVS_GENL_DEL ? "removing" : "adding", it) : 0;
	}
	return -EINVAL;
}

/* Members of one set and family in a row go in one call. */
static int send_members(struct ipvs *v, const struct ipvs_item *const *items, size_t n, bool add)
{
	struct ipvs_ipset_entry *e = malloc((n ? n : 1) * sizeof(*e));
	const char *set = ipvs_set_name((enum ipvs_set_id)items[0]->set, items[0]->addr.family);
	size_t failed = n;
	int r;

	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		entry_of(items[i], &e[i]);
	r = add ? ipvs_ipset_add_many(v->ipset, set, e, n, &failed) : ipvs_ipset_del_many(v->ipset, set, e, n, &failed);
	free(e);
	if (r < 0) {
		log_errno(r, "ipvs: ipset %s: %s", set, ipvs_ipset_error(v->ipset));
		return log_item_error(r, add ? "adding" : "removing", items[failed < n ? failed : 0]);
	}
	return 0;
}

static int send_list(struct ipvs *v, const struct ipvs_item *const *items, size_t n, enum ipvs_genl_op op)
{
	static const char *const what[] = { [IPVS_GENL_ADD] = "ipvs: sending additions",
					    [IPVS_GENL_EDIT] = "ipvs: sending edits",
					    [IPVS_GENL_DEL] = "ipvs: sending deletions" };
	struct log_progress progress;
	int r = 0;

	/* One round trip per item: a full sync at scale takes seconds. */
	log_progress_start(&progress, what[op]);
	for (size_t i = 0, j; i < n && r == 0; i = j) {
		log_progress(&progress, i, n, "items");
		j = i + 1;
		if (items[i]->kind == IPVS_ITEM_MEMBER && op != IPVS_GENL_EDIT) {
			while (j < n && items[j]->kind == IPVS_ITEM_MEMBER && items[j]->set == items[i]->set &&
			       items[j]->addr.family == items[i]->addr.family)
				j++;
			r = send_members(v, items + i, j - i, op == IPVS_GENL_ADD);
			continue;
		}
		r = send_item(v, items[i], op);
	}
	return r;
}

/* Adds first (addresses, services, real servers, members), then edits
 * (options, drains to weight 0), then deletes (members, real servers,
 * services, addresses): a frontend is whole again as early as possible. */
static int send_change(struct ipvs *v, const struct ipvs_change *c)
{
	int r = send_list(v, c->adds, c->n_adds, IPVS_GENL_ADD);

	if (r == 0)
		r = send_list(v, c->edits, c->n_edits, IPVS_GENL_EDIT);
	if (r == 0)
		r = send_list(v, c->dels, c->n_dels, IPVS_GENL_DEL);
	return r;
}

/* ---- drained real servers ---- */

struct drain_probe {
	const struct ipvs_item *want;
	bool found;
	uint32_t conns;
};

static int drain_dest_cb(const struct ipvs_dest *d, void *ctx)
{
	struct drain_probe *p = ctx;

	if (d->port == p->want->port2 && inet_addr_cmp(&d->addr, &p->want->addr2) == 0) {
		p->found = true;
		p->conns = d->active_conns + d->inactive_conns;
	}
	return 0;
}

/* Delete the draining real servers that have no connection left. */
static void drains_reap(struct ipvs *v)
{
	for (size_t i = 0; i < ipvs_state_drain_count(v->state);) {
		const struct ipvs_item *d = ipvs_state_drain_at(v->state, i);
		struct drain_probe p = { .want = d };
		struct ipvs_service svc;
		struct ipvs_dest dst;
		int r;

		service_of(d, &svc);
		r = ipvs_genl_dump_dests(v->genl, &svc, drain_dest_cb, &p);
		if (r < 0 || (p.found && p.conns > 0)) {
			i++;
			continue;
		}
		if (p.found) {
			dest_of(d, &dst);
			r = ipvs_genl_apply_dest(v->genl, IPVS_GENL_DEL, &svc, &dst);
			if (r < 0) {
				log_item_error(r, "deleting drained", d);
				i++;
				continue;
			}
			log_info("ipvs: drained real server %s deleted",
				 inet_endpoint_format(&d->addr2, d->port2, (char[INET_ENDPOINT_STRLEN]){ 0 }));
		}
		ipvs_state_drain_remove(v->state, d); /* moves another entry to i */
	}
}

/* backend_ops.tick: a periodic sync with nothing to apply still reaps. */
static void ipvs_tick(void *priv)
{
	drains_reap(priv);
}

/* ---- staging a plan ---- */

/* Stage fe's items. want: NULL, or where to append fe's virtual servers
 * too (the read-back of ipvs_adopt keeps the services the plan wants). */
static int stage_frontend(struct ipvs *v, const struct plan_frontend *fe, struct ipvs_item_vec *want)
{
	struct ipvs_items_cfg cfg = { .scheduler = v->sched, .node_addrs = v->node_addrs,
				      .n_node_addrs = v->n_node_addrs };
	struct ipvs_item_vec vec = { 0 };
	struct ipvs_fe_key k;
	bool unmapped;
	int r;

	if (fe->epset) {
		const char *s = ipvs_scheduler_for(fe->epset, v->sched, &unmapped);

		if (unmapped)
			warn_unmapped(v, fe->epset, s);
	}
	r = ipvs_frontend_items(fe, &cfg, &vec);
	for (size_t i = 0; r == 0 && want && i < vec.n; i++) {
		struct ipvs_item *it;

		if (vec.v[i].kind != IPVS_ITEM_SERVICE)
			continue;
		if (!(it = ipvs_item_vec_push(want)))
			r = -ENOMEM;
		else
			*it = vec.v[i];
	}
	if (r < 0) {
		ipvs_item_vec_done(&vec);
		return r;
	}
	ipvs_item_vec_sort(&vec);
	ipvs_fe_key_of(fe, &k);
	return ipvs_state_stage(v->state, &k, &vec);
}

/* The guards of the service range (plan.cluster_ips, plan.service_cidrs)
 * are staged as one frontend of their own, under a key no plan frontend
 * has (a kind past the plan's), so that the state diffs, commits and
 * adopts their members like any frontend's. */
#define GUARDS_KIND 0xff

static int stage_guards(struct ipvs *v, const struct plan *plan)
{
	struct ipvs_fe_key k = { .kind = GUARDS_KIND };
	struct ipvs_item_vec vec = { 0 };
	int r = ipvs_guard_items(plan, &vec);

	if (r < 0) {
		ipvs_item_vec_done(&vec);
		return r;
	}
	ipvs_item_vec_sort(&vec);
	return ipvs_state_stage(v->state, &k, &vec);
}

/* Stage every frontend of plan and the guards; want as for
 * stage_frontend. */
static int stage_plan(struct ipvs *v, const struct plan *plan, struct ipvs_item_vec *want)
{
	int r = 0;

	for (size_t i = 0; i < plan->n_frontends && r == 0; i++)
		r = stage_frontend(v, &plan->frontends[i], want);
	if (r == 0)
		r = stage_guards(v, plan);
	return r;
}

/* Make the staged frontends the kernel's: compute the change (against the
 * committed state, or with have not NULL against the kernel's items read
 * back), send it, and commit it, or on any failure drop it and forget the
 * state so that the next sync reads the kernel back. r: the staging's
 * result (nothing is computed or sent unless it is 0). what and t0 are for
 * the log line. */
static int converge(struct ipvs *v, int r, const struct ipvs_item_vec *have, const char *what, double t0)
{
	struct ipvs_change c = { 0 };
	size_t n_fes;

	if (r == 0)
		r = have ? ipvs_state_change_from(v->state, have->v, have->n, &c) : ipvs_state_change(v->state, &c);
	if (r == 0 && v->n_exclude) {
		/* ipvs.excludeCIDRs: those virtual servers outlive their service. */
		int kept = ipvs_change_keep_excluded(&c, v->exclude, v->n_exclude);

		if (kept > 0)
			log_info("ipvs: %d deletions left undone: their virtual servers are in ipvs.excludeCIDRs", kept);
		r = kept < 0 ? kept : 0;
	}
	if (r == 0)
		r = send_change(v, &c);
	if (r < 0) {
		ipvs_state_discard(v->state);
		ipvs_state_reset(v->state);
		v->need_full = true;
		return r;
	}
	ipvs_state_commit(v->state);
	/* Every sync stages the guards, which the count leaves out. */
	n_fes = ipvs_state_frontends(v->state);
	log_info("ipvs: %s: %zu frontends, +%zu -%zu ~%zu items (%zu draining) in %.1f ms", what,
		 n_fes ? n_fes - 1 : 0, c.n_adds, c.n_dels, c.n_edits, c.n_drains, now_ms() - t0);
	drains_reap(v);
	return 0;
}

/* Read the kernel back and converge to plan by difference. */
static int ipvs_adopt(struct ipvs *v, const struct plan *plan)
{
	struct ipvs_item_vec want = { 0 }, have = { 0 };
	double t0 = now_ms();
	int r;

	r = infra_ensure(v);
	if (r < 0)
		return r;
	node_addrs_refresh(v);
	ipvs_state_reset(v->state);
	/* Staging also lists the services the plan wants, for the read-back. */
	r = stage_plan(v, plan, &want);
	if (r == 0) {
		ipvs_item_vec_sort(&want);
		r = kernel_items(v, want.v, want.n, &have);
	}
	r = converge(v, r, &have, "took over the kernel's IPVS table", t0);
	if (r == 0)
		v->need_full = false;
	ipvs_item_vec_done(&want);
	ipvs_item_vec_done(&have);
	return r;
}

static int ipvs_sync(void *priv, const struct plan *plan)
{
	struct ipvs *v = priv;
	double t0 = now_ms();
	int r;

	if (!v->genl)
		return -ENOTCONN;
	if (v->need_full)
		return ipvs_adopt(v, plan);
	node_addrs_refresh(v);
	r = stage_plan(v, plan, NULL);
	if (r == 0)
		r = ipvs_state_stage_unstaged_removals(v->state);
	return converge(v, r, NULL, "sync", t0);
}

static int ipvs_apply(void *priv, const struct plan *plan, const struct plan_diff *diff)
{
	struct ipvs *v = priv;
	double t0 = now_ms();
	int r = 0;

	/* No handle, or a state to read back first: ipvs_sync says so or
	 * takes the kernel over. */
	if (!v->genl || v->need_full)
		return ipvs_sync(priv, plan);
	for (size_t i = 0; i < diff->n_fe_added && r == 0; i++)
		r = stage_frontend(v, diff->fe_added[i], NULL);
	for (size_t i = 0; i < diff->n_fe_changed && r == 0; i++)
		r = stage_frontend(v, diff->fe_changed[i], NULL);
	for (size_t i = 0; i < diff->n_fe_removed && r == 0; i++) {
		struct ipvs_fe_key k;

		ipvs_fe_key_of(diff->fe_removed[i], &k);
		r = ipvs_state_stage_removal(v->state, &k);
	}
	if (r == 0 && diff->guards_changed)
		r = stage_guards(v, plan);
	/* Frontends whose endpoint set changed: the planner lists them. */
	for (size_t i = 0; i < diff->n_fe_touched && r == 0; i++)
		r = stage_frontend(v, diff->fe_touched[i], NULL);
	return converge(v, r, NULL, "update", t0);
}

/* ---- set-up and tear-down ---- */

static int ipvs_probe(char *why, size_t why_len)
{
	struct ipvs_genl *g = NULL;
	struct ipvs_ipset *s = NULL;
	int r = ipvs_genl_open(&g);

	if (r < 0) {
		snprintf(why, why_len, "%s", r == -ENOENT ? "the kernel has no IPVS (ip_vs)" : strerror(-r));
		return r;
	}
	ipvs_genl_close(g);
	r = ipvs_ipset_open(&s);
	if (r < 0) {
		snprintf(why, why_len, "the kernel has no ipset support (%s)", strerror(-r));
		return r;
	}
	ipvs_ipset_close(s);
	return 0;
}

static void sysctl_want(const char *path, const char *value)
{
	int r = ipvs_host_sysctl_set(path, value);

	if (r < 0)
		log_warn_errno(r, "ipvs: cannot set %s to %s", path, value);
}

static int ipvs_init(void *priv, const void *options)
{
	static const struct ipvs_options defaults = { 0 };
	const struct ipvs_options *o = options ? options : &defaults;
	struct ipvs *v = priv;
	int r;

	memset(v, 0, sizeof(*v));
	v->need_full = true;
	snprintf(v->sched, sizeof(v->sched), "%s", o->scheduler ? o->scheduler : IPVS_DEFAULT_SCHEDULER);
	if (!ipvs_scheduler_known(v->sched))
		return log_errno(-EINVAL, "ipvs: unknown scheduler '%s'", v->sched);
	v->strict_arp = o->strict_arp;
	v->rcfg.masq_mark = o->masquerade_mark ? o->masquerade_mark : IPVS_DEFAULT_MASQ_MARK;
	v->rcfg.local = o->local;
	if (o->local.n_cluster_cidrs) {
		v->cidrs = calloc(o->local.n_cluster_cidrs, sizeof(*v->cidrs));
		if (!v->cidrs)
			return -ENOMEM;
		memcpy(v->cidrs, o->local.cluster_cidrs, o->local.n_cluster_cidrs * sizeof(*v->cidrs));
		v->rcfg.local.cluster_cidrs = v->cidrs;
	}
	if (o->local.mode != LOCAL_DETECT_CLUSTER_CIDR) {
		size_t len = o->local.interface ? strlen(o->local.interface) : 0;

		if (len == 0 || len >= sizeof(v->iface))
			return log_errno(-EINVAL, "ipvs: local interface name '%s' must be 1-15 characters",
					 o->local.interface ? o->local.interface : "");
		memcpy(v->iface, o->local.interface, len + 1);
		v->rcfg.local.interface = v->iface;
	}
	if (o->n_exclude_cidrs) {
		v->exclude = calloc(o->n_exclude_cidrs, sizeof(*v->exclude));
		if (!v->exclude)
			return -ENOMEM;
		memcpy(v->exclude, o->exclude_cidrs, o->n_exclude_cidrs * sizeof(*v->exclude));
		v->n_exclude = o->n_exclude_cidrs;
	}
	if (!(v->state = ipvs_state_new()) || !(v->batch = nft_batch_new()))
		return -ENOMEM;
	r = ipvs_genl_open(&v->genl);
	if (r < 0)
		return log_errno(r, "ipvs: %s", r == -ENOENT ? "the kernel has no IPVS (ip_vs)" : "cannot open generic netlink");
	/* kube-proxy's ipvs timeouts: set once; a refusal is logged, as
	 * kube-proxy does, and the kernel's stay. */
	if (o->tcp_timeout_s || o->tcp_fin_timeout_s || o->udp_timeout_s) {
		struct ipvs_timeouts t = { .tcp = o->tcp_timeout_s, .tcp_fin = o->tcp_fin_timeout_s,
					   .udp = o->udp_timeout_s };

		r = ipvs_genl_set_timeouts(v->genl, &t);
		if (r < 0)
			log_warn_errno(r, "ipvs: cannot set the IPVS timeouts (tcp %us, tcpfin %us, udp %us)", t.tcp,
				       t.tcp_fin, t.udp);
		else
			log_info("ipvs: IPVS timeouts set: tcp %us, tcpfin %us, udp %us (0: unchanged)", t.tcp,
				 t.tcp_fin, t.udp);
	}
	r = ipvs_ipset_open(&v->ipset);
	if (r < 0)
		return log_errno(r, "ipvs: cannot open an ipset session");
	r = ipvs_host_open(&v->host);
	if (r < 0)
		return log_errno(r, "ipvs: cannot open an rtnetlink socket");
	r = nft_socket_open(&v->nl);
	if (r < 0)
		return log_errno(r, "ipvs: cannot open a NETLINK_NETFILTER socket");
	/* kube-proxy's IPVS settings: conntrack for IPVS connections (the
	 * masquerade rules need it), drop connections to deleted real
	 * servers and stale persistence templates at once. */
	sysctl_want("net/ipv4/vs/conntrack", "1");
	sysctl_want("net/ipv4/vs/expire_nodest_conn", "1");
	sysctl_want("net/ipv4/vs/expire_quiescent_template", "1");
	if (v->strict_arp) {
		sysctl_want("net/ipv4/conf/all/arp_ignore", "1");
		sysctl_want("net/ipv4/conf/all/arp_announce", "2");
	}
	log_info("ipvs: scheduler %s, masquerade mark 0x%x%s", v->sched, v->rcfg.masq_mark,
		 v->strict_arp ? ", strict ARP" : "");
	return 0;
}

static void ipvs_fini(void *priv)
{
	struct ipvs *v = priv;

	/* The kernel's tables stay: a restarted ferry takes them over;
	 * `ferry cleanup --backend ipvs` removes them. */
	v->state = ipvs_state_free(v->state);
	v->batch = nft_batch_free(v->batch);
	v->genl = ipvs_genl_close(v->genl);
	v->ipset = ipvs_ipset_close(v->ipset);
	v->host = ipvs_host_close(v->host);
	if (v->nl)
		mnl_socket_close(v->nl);
	for (size_t i = 0; i < v->n_warned; i++)
		free(v->warned[i]);
	free(v->warned);
	free(v->cidrs);
	free(v->exclude);
	free(v->node_addrs);
	memset(v, 0, sizeof(*v));
}

struct cleanup_ctx {
	struct ipvs_genl *genl;
	size_t deleted;
	int err;
};

static int cleanup_member(const struct ipvs_ipset_entry *e, void *ctx)
{
	struct cleanup_ctx *c = ctx;
	struct ipvs_service svc = { .af = e->addr.family, .protocol = e->proto, .addr = e->addr, .port = e->port };
	int r;

	if (!c->genl)
		return 0;
	r = ipvs_genl_apply_service(c->genl, IPVS_GENL_DEL, &svc);
	if (r < 0)
		c->err = r;
	else
		c->deleted++;
	return 0;
}

/* Remove what ferry made, and nothing else: the virtual servers its
 * FERRY-SERVICES sets list, its rule tables, its sets, its dummy
 * interface. Absent parts are fine. */
static int ipvs_cleanup(void)
{
	struct cleanup_ctx c = { 0 };
	struct ipvs_ipset *s = NULL;
	struct ipvs_host *h = NULL;
	struct mnl_socket *nl = NULL;
	struct nft_batch *b = nft_batch_new();
	size_t sets = 0, tables = 0;
	int r, ret = 0;

	if (!b)
		return -ENOMEM;
	if (ipvs_genl_open(&c.genl) < 0)
		c.genl = NULL; /* no IPVS: no virtual server of ours either */
	if (ipvs_ipset_open(&s) == 0)
		for (int f = 0; f < 2; f++)
			ipvs_ipset_list(s, ipvs_set_name(IPVS_SET_SERVICES, f ? AF_INET6 : AF_INET), NULL,
					cleanup_member, &c);
	if (c.err)
		ret = log_errno(c.err, "ipvs: cleanup: deleting a virtual server failed");
	/* The rules before the sets: a set match holds its set. */
	if (nft_socket_open(&nl) == 0) {
		for (int f = 0; f < 2; f++) {
			struct nft_batch_error be = { 0 };

			nft_batch_clear(b);
			r = ipvs_rules_delete_msg(b, f ? AF_INET6 : AF_INET);
			if (r == 0)
				r = nft_batch_commit(nl, b, 0, &be);
			if (r == 0)
				tables++;
			else if (r != -ENOENT)
				ret = log_errno(r, "ipvs: cleanup: %s refused", be.desc);
		}
		mnl_socket_close(nl);
	}
	if (s) {
		for (int f = 0; f < 2; f++)
			for (int i = 0; i < IPVS_SET_COUNT; i++) {
				struct ipvs_ipset_spec spec;
				const char *name = ipvs_set_name((enum ipvs_set_id)i, f ? AF_INET6 : AF_INET);

				if (ipvs_ipset_list(s, name, &spec, NULL, NULL) < 0)
					continue;
				r = ipvs_ipset_destroy(s, name);
				if (r < 0)
					ret = log_errno(r, "ipvs: cleanup: cannot destroy ipset %s: %s", name,
							ipvs_ipset_error(s));
				else
					sets++;
			}
		ipvs_ipset_close(s);
	}
	if (ipvs_host_open(&h) == 0) {
		r = ipvs_host_dummy_remove(h, IPVS_DUMMY_NAME);
		if (r < 0)
			ret = log_errno(r, "ipvs: cleanup: cannot remove %s", IPVS_DUMMY_NAME);
		ipvs_host_close(h);
	}
	log_info("ipvs: cleanup removed %zu virtual servers, %zu rule tables, %zu ipsets and the %s interface "
		 "(if present)", c.deleted, tables, sets, IPVS_DUMMY_NAME);
	ipvs_genl_close(c.genl);
	nft_batch_free(b);
	return ret;
}

/* Virtual servers (one per frontend), the items (virtual and real
 * servers) and the real servers draining. */
static void ipvs_counts(void *priv, backend_count_fn emit, void *userdata)
{
	const struct ipvs *v = priv;

	if (!v->state)
		return;
	emit(userdata, "virtual_servers", ipvs_state_frontends(v->state));
	emit(userdata, "items", ipvs_state_items(v->state));
	emit(userdata, "draining", ipvs_state_drain_count(v->state));
}

const struct backend_ops ipvs_backend_ops = {
	.name = "ipvs",
	/* ferry.io/balance least-conn is lc, maglev is mh (ipvs_scheduler_for). */
	.balance_algos = 1u << BALANCE_LEAST_CONN | 1u << BALANCE_MAGLEV,
	.priv_size = sizeof(struct ipvs),
	/* IPVS over generic netlink and ipset must answer. */
	.probe = ipvs_probe,
	/* Sockets, sysctls; no kernel object yet. */
	.init = ipvs_init,
	/* First: dummy, sets, rules, then the kernel read back and converged
	 * by difference; later: every frontend restaged, the difference
	 * sent. */
	.sync = ipvs_sync,
	/* Only the frontends the diff names. */
	.apply = ipvs_apply,
	/* Drained real servers without connections, between changes. */
	.tick = ipvs_tick,
	/* ipvs_render.c */
	.render = ipvs_render,
	/* Virtual servers ferry made, its rules, sets and dummy interface. */
	.cleanup = ipvs_cleanup,
	/* Sockets and memory; the kernel keeps serving. */
	.fini = ipvs_fini,
	/* ipvs_state's counts of what was committed. */
	.counts = ipvs_counts,
};
