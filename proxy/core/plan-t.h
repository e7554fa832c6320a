/* Types of the forwarding plan: what the planner decides and backends program.
 *
 * A plan is a sorted array of frontends (address, protocol, port, kind), each
 * pointing at an endpoint set carrying the policy. Every Kubernetes rule
 * (traffic policies, terminating fallback, topology, headless/ExternalName
 * filtering) has already been applied: backends translate, never re-derive.
 *
 * What a backend may rely on (the planner guarantees it; tests pin it):
 * - frontends are sorted by (kind, addr, proto, port) with no duplicates;
 *   epsets by key; every frontend's epset points into the same plan;
 * - an epset's endpoints are sorted by (addr, port), without duplicates,
 *   and may be of either family: a frontend uses those of its own family;
 * - affinity_timeout_s is in 1..86400 whenever affinity is set (the
 *   Kubernetes default, 10800 s, is already applied): no backend defaults it;
 * - masquerade says who is source-NATed (--masquerade-all already folded
 *   in): a backend only decides, per packet, what "local" means for
 *   PLAN_MASQ_UNLESS_LOCAL (its --detect-local-mode);
 * - when_empty applies when the frontend's epset has no endpoint of the
 *   frontend's family;
 * - source_ranges are set on load-balancer frontends only;
 * - short_circuit, when set, points into the same plan's epsets.
 */
#ifndef FERRY_PLAN_T_H
#define FERRY_PLAN_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inet.h"
#include "model-t.h"

enum frontend_kind {
	FRONTEND_CLUSTER_IP = 0,
	FRONTEND_NODE_PORT,
	FRONTEND_EXTERNAL_IP,
	FRONTEND_LOAD_BALANCER,
};

/* What to do with a new connection when the endpoint set is empty. */
enum empty_verdict {
	EMPTY_REJECT = 0, /* TCP RST / ICMP port unreachable at once */
	EMPTY_DROP,       /* silently drop (externalTrafficPolicy Local, no local endpoint) */
};

/* Whether a new connection to a frontend is source-NATed to the node. */
enum plan_masquerade {
	PLAN_MASQ_NEVER = 0,     /* the endpoint sees the client (externalTrafficPolicy Local) */
	PLAN_MASQ_ALWAYS,        /* external kinds with externalTrafficPolicy Cluster; cluster IPs with --masquerade-all */
	PLAN_MASQ_UNLESS_LOCAL,  /* cluster IPs: traffic from outside the cluster's pods (the
				  * backend's local-traffic detection) is masqueraded, pods keep
				  * their address; a backend that cannot tell masquerades nothing */
};

/* One eligible endpoint (24 bytes: a million of them at 100k services). */
struct plan_endpoint {
	struct inet_addr addr;
	uint16_t port;
	bool terminating : 1; /* true when taken by the serving+terminating fallback */
	bool local : 1;       /* on this node (nodeName matches) */
	bool node_unknown : 1; /* the endpoint (or this node) has no nodeName: it
				* may be on this node, so local is only a lower
				* bound (backends that need "could be here", e.g.
				* for hairpin, use local || node_unknown) */
};

/* The endpoints one frontend forwards to, with the balancing policy. */
struct plan_epset {
	char *key;        /* unique: "ns/name:port/PROTO" plus "/local" for the local-only variant */
	char *ns;
	char *svc_name;
	char *port_name;  /* "" when unnamed; ns, svc_name and port_name share the key's allocation */
	enum inet_proto proto;
	struct plan_endpoint *endpoints; /* sorted by (addr, port), no duplicates */
	size_t n_endpoints;
	bool affinity;                /* ClientIP session affinity */
	uint32_t affinity_timeout_s;  /* 1..86400 when affinity is set */
	enum balance_algo balance;
	struct health_check_cfg health;
};

/* One address:port/proto that traffic arrives on. */
struct plan_frontend {
	enum frontend_kind kind;
	struct inet_addr addr;     /* node ports: the wildcard address means "every node address" */
	enum inet_proto proto;
	uint16_t port;
	const struct plan_epset *epset; /* points into the same plan's epsets */
	enum plan_masquerade masquerade;
	enum empty_verdict when_empty;
	struct inet_prefix *source_ranges; /* load-balancer frontends: allowed clients; n=0 allows all */
	size_t n_source_ranges;
	/* External kinds of an externalTrafficPolicy Local service: the
	 * service's cluster-wide set, for connections that start on this node
	 * (kube-proxy's "short-circuit"). Those from this cluster's pods (the
	 * backend's local-traffic detection) use it keeping their source; those
	 * from the node itself use it masqueraded. NULL for every other frontend. */
	const struct plan_epset *short_circuit;
};

/* A service's health check node port (externalTrafficPolicy Local with
 * healthCheckNodePort): the node answers HTTP on it with 200 while it has
 * local endpoints for the service and 503 otherwise, so an external load
 * balancer sends traffic only to nodes that can serve it. */
struct plan_health_check {
	uint16_t port;
	char *ns;
	char *svc_name;
	size_t local_endpoints; /* distinct local endpoint addresses in use */
};

struct plan {
	struct plan_frontend *frontends; /* sorted by (kind, addr, proto, port) */
	size_t n_frontends;
	struct plan_epset *epsets;       /* sorted by key */
	size_t n_epsets;
	struct plan_health_check *health_checks; /* sorted by port, one per port */
	size_t n_health_checks;
	/* The guards of the service range (kube-proxy's nftables mode): a new
	 * connection to one of cluster_ips on a port no frontend has is
	 * rejected; one to an address inside service_cidrs that is no cluster
	 * IP is dropped. Both sorted and distinct; n_service_cidrs=0 when the
	 * ranges are unknown (nothing is dropped then). */
	struct inet_addr *cluster_ips;
	size_t n_cluster_ips;
	struct inet_prefix *service_cidrs;
	size_t n_service_cidrs;
};

/* Difference between two successive plans. Pointers to "added", "changed"
 * and "touched" entries point into the new plan, "removed" into what the old
 * one held; all stay valid until the next planner run or
 * planner_release_previous (the sync runner calls it once the backend has
 * applied the diff). An epset is "changed" when its endpoints or policy
 * differ; a frontend is "changed" when its epset key, masquerade, empty
 * verdict, source ranges or short-circuit set differ (not when only its
 * epset's endpoints changed: that shows in eps_changed and fe_touched).
 * The three frontend lists added, changed and touched are disjoint. */
struct plan_diff {
	const struct plan_frontend **fe_added;
	size_t n_fe_added;
	const struct plan_frontend **fe_removed;
	size_t n_fe_removed;
	const struct plan_frontend **fe_changed;
	size_t n_fe_changed;
	const struct plan_epset **eps_added;
	size_t n_eps_added;
	const struct plan_epset **eps_removed;
	size_t n_eps_removed;
	const struct plan_epset **eps_changed;
	size_t n_eps_changed;
	/* Frontends of the new plan, neither added nor changed, whose epset or
	 * short-circuit set is in eps_changed: what a backend that programs
	 * per frontend reprograms, without a pass over the whole plan. */
	const struct plan_frontend **fe_touched;
	size_t n_fe_touched;
	bool guards_changed; /* cluster_ips or service_cidrs differ */
};

#endif
