/* Policy: what one plan frontend stands for in the kernel under the IPVS
 * backend, as a sorted list of plain items: dummy-interface addresses,
 * virtual servers, real servers and ipset members. The backend diffs these
 * lists (ipvs_state.h) and turns the difference into netlink messages; the
 * renderer prints them. No netlink here, so all of it is unit-tested
 * without root.
 *
 * A frontend on one address gives one virtual server; a node port on every
 * node address (the plan's wildcard) gives one per node address, as IPVS
 * has no wildcard virtual server (kube-proxy does the same).
 */
#ifndef FERRY_IPVS_ITEMS_H
#define FERRY_IPVS_ITEMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "inet.h"
#include "plan-t.h"

/* The ipsets the constant rules consult (ipvs_rules.h), per family. */
enum ipvs_set_id {
	IPVS_SET_SERVICES = 0, /* hash:ip,port: every virtual server ferry made (ownership) */
	IPVS_SET_CLUSTER_IP,   /* hash:ip,port: masquerade unless local (PLAN_MASQ_UNLESS_LOCAL) */
	IPVS_SET_MASQ,         /* hash:ip,port: always masquerade (PLAN_MASQ_ALWAYS) */
	IPVS_SET_EMPTY_REJECT, /* hash:ip,port: no endpoint, refuse at once */
	IPVS_SET_EMPTY_DROP,   /* hash:ip,port: no local endpoint (Local policy), drop */
	IPVS_SET_FIREWALL,     /* hash:ip,port: load-balancer frontends with source ranges */
	IPVS_SET_SOURCES,      /* hash:ip,port,net: their allowed sources */
	IPVS_SET_LOOPBACK,     /* hash:ip,port,ip: an endpoint reaching itself (hairpin) */
	/* The guards of the service range (plan.cluster_ips, plan.service_cidrs),
	 * last so that a change adds them after the virtual servers' members
	 * and deletes them first (ipvs_item_cmp's order). */
	IPVS_SET_CLUSTER_ADDRS, /* hash:ip: every cluster IP (new connections to
				 * another port are refused) */
	IPVS_SET_SERVICE_CIDRS, /* hash:net: the service ranges (new connections to
				 * an address that is no cluster IP are dropped) */
	IPVS_SET_COUNT
};

/* The ipset type of a set ("hash:ip,port"...). */
const char *ipvs_set_type(enum ipvs_set_id set);
/* The name of a set in family ("FERRY-CLUSTER-IP", "FERRY6-CLUSTER-IP"...),
 * at most 31 characters. */
const char *ipvs_set_name(enum ipvs_set_id set, int family);
/* The set called name and its family: 0, or -ENOENT for a name that is
 * not one of ferry's. */
int ipvs_set_parse_name(const char *name, enum ipvs_set_id *ret_set, int *ret_family);

enum ipvs_item_kind {
	IPVS_ITEM_ADDR = 0, /* a VIP on the dummy interface (shared: refcounted) */
	IPVS_ITEM_SERVICE,  /* a virtual server */
	IPVS_ITEM_DEST,     /* a real server of a virtual server */
	IPVS_ITEM_MEMBER,   /* an entry of an ipset */
};

/* Scheduler names are at most 15 characters. */
#define IPVS_ITEM_SCHED_MAX 16

/* One item. Plain data; the key is everything but the options. The field
 * names follow the kinds:
 *   ADDR     addr
 *   SERVICE  family, proto, addr, port        options: sched, persistent, timeout
 *   DEST     family, proto, addr, port (its virtual server), addr2, port2
 *                                             options: weight
 *   MEMBER   set, family, addr, proto, port, and addr2 + plen for the
 *            three-part sets (SOURCES: a net; LOOPBACK: an ip, plen full);
 *            CLUSTER-ADDRS: addr only; SERVICE-CIDRS: addr (the network
 *            address, host bits clear) and plen */
struct ipvs_item {
	uint8_t kind;    /* enum ipvs_item_kind */
	uint8_t set;     /* MEMBER: enum ipvs_set_id */
	uint8_t proto;   /* enum inet_proto */
	uint8_t plen;    /* MEMBER: prefix length of addr2 */
	uint16_t port;
	uint16_t port2;
	struct inet_addr addr;
	struct inet_addr addr2;
	/* Options: a changed option is an edit, not a remove + add. */
	char sched[IPVS_ITEM_SCHED_MAX];
	bool persistent;   /* ClientIP affinity */
	uint32_t timeout;  /* its timeout (s) */
	uint32_t weight;   /* DEST: 1, or 0 while draining */
};

/* Key order: kind first (ADDR < SERVICE < DEST < MEMBER, the order adds
 * must go in; deletes go in reverse), then the key fields. 0 means the
 * same kernel object. */
int ipvs_item_cmp(const struct ipvs_item *a, const struct ipvs_item *b);
/* Whether two items of the same key differ in their options. */
bool ipvs_item_options_differ(const struct ipvs_item *a, const struct ipvs_item *b);
/* Whether an item is shared between frontends (refcounted): dummy
 * addresses and hairpin pairs. */
bool ipvs_item_is_shared(const struct ipvs_item *it);

/* A growable array of items. */
struct ipvs_item_vec {
	struct ipvs_item *v;
	size_t n, cap;
};
/* Room for one more (zeroed) item at the end, or NULL on ENOMEM. */
struct ipvs_item *ipvs_item_vec_push(struct ipvs_item_vec *vec);
/* Sort by ipvs_item_cmp and drop duplicates (the first is kept). */
void ipvs_item_vec_sort(struct ipvs_item_vec *vec);
/* Free the storage and reset. */
void ipvs_item_vec_done(struct ipvs_item_vec *vec);

/* What the translation needs beyond the plan. */
struct ipvs_items_cfg {
	/* --ipvs-scheduler: for services whose ferry.io/balance does not map
	 * to a scheduler of its own. */
	const char *scheduler;
	/* The node's addresses, for node ports on every address (sorted or
	 * not; loopback and link-local addresses are ignored). */
	const struct inet_addr *node_addrs;
	size_t n_node_addrs;
};

/* The scheduler for an endpoint set: round-robin -> rr, least-conn -> lc,
 * maglev -> mh; anything else (random-two) gets cfg_default and
 * *ret_unmapped is set, so that the caller can warn naming the service. */
const char *ipvs_scheduler_for(const struct plan_epset *eps, const char *cfg_default, bool *ret_unmapped);

/* Append the items of fe to out (unsorted; sort with ipvs_item_vec_sort).
 * Returns 0 or -ENOMEM (out may hold part of them). */
int ipvs_frontend_items(const struct plan_frontend *fe, const struct ipvs_items_cfg *cfg,
			struct ipvs_item_vec *out);

/* Append the members of the service-range guards to out (unsorted): one
 * CLUSTER-ADDRS member per address of plan->cluster_ips, one SERVICE-CIDRS
 * member per prefix of plan->service_cidrs (host bits cleared; a /0, which
 * hash:net cannot hold, as its two halves). They belong to no frontend:
 * the backend stages them as a frontend of their own.
 * Returns 0 or -ENOMEM (out may hold part of them). */
int ipvs_guard_items(const struct plan *plan, struct ipvs_item_vec *out);

/* An ipset member as ipset writes it ("10.96.0.1,tcp:80", with ",NET/LEN"
 * or ",IP" for the three-part sets; "10.96.0.1" and "10.96.0.0/16" for the
 * guards), for logs and the renderer. */
void ipvs_member_print(FILE *out, const struct ipvs_item *m);

/* One item in words ("service TCP 10.96.0.1:80 rr persistent 10800s"),
 * for logs and the renderer. */
void ipvs_item_print(FILE *out, const struct ipvs_item *it);

#endif
