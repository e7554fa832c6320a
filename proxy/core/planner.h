/* The planner: compiles the model into a forwarding plan and its diff. */
#ifndef FERRY_PLANNER_H
#define FERRY_PLANNER_H

#include <stdint.h>
#include <stdio.h>

#include "model.h"
#include "plan-t.h"

struct planner_config {
	const char *node_name;          /* this node (for Local policies); NULL = unknown */
	const char *service_proxy_name; /* NULL: only services without the label */
	/* --nodeport-addresses, as kube-proxy reads it, per address family:
	 * node ports open on this host's addresses (model_host_addrs) inside
	 * the prefixes, plus the primary address with nodeport_primary, plus
	 * the loopback addresses with nodeport_localhost. A family that none
	 * of them names (no prefix of the family, no primary address known)
	 * opens on every local address of the family, and so does every
	 * family with nodeport_all or a /0 prefix: one wildcard frontend. The primary address
	 * is the Node object's first address of the family, or without a Node
	 * object the source of the host's default route. */
	const struct inet_prefix *nodeport_prefixes;
	size_t n_nodeport_prefixes;
	bool nodeport_primary;
	bool nodeport_localhost;
	bool nodeport_all;
	/* kube-proxy's bindAddress when it is a specific address: this
	 * node's address of its family (what "primary" and the load-balancer
	 * source ranges go by), before the Node object. family 0: none. */
	struct inet_addr node_ip_override;
	/* --service-cluster-ip-range: the service CIDRs (joined with the
	 * model's, from the API's ServiceCIDR objects): plan.service_cidrs. */
	const struct inet_prefix *service_cidrs;
	size_t n_service_cidrs;
	bool topology_hints;            /* honour hints.forZones (default true) */
	/* --masquerade-all: cluster IPs are PLAN_MASQ_ALWAYS (external kinds of
	 * externalTrafficPolicy Local services still keep the client's address). */
	bool masquerade_all;
};

struct planner;

/* Allocate a planner; cfg is copied (its arrays must outlive the planner). */
struct planner *planner_new(const struct planner_config *cfg);
/* Free the planner and the plans it holds. Accepts NULL; returns NULL. */
struct planner *planner_free(struct planner *p);

/* Build the plan for the model's current state and the diff from the previous
 * run (the first run diffs against an empty plan). *ret_plan and *ret_diff stay
 * owned by the planner and valid until the next planner_run or planner_free
 * (the diff: until planner_release_previous, which empties it).
 * Returns 0 or -ENOMEM. Conflicts (two services claiming one frontend) keep the
 * first in (namespace, name) order and log a warning naming the other. */
int planner_run(struct planner *p, const struct model *m,
		const struct plan **ret_plan, const struct plan_diff **ret_diff);

/* Like planner_run, but replan only the services the model's changes
 * since the last run touched (model_changes_since) and splice them into
 * the current plan (see plan_splice.h): the same plan and diff a whole
 * run would give, at a cost that follows the change, not the plan. Plans
 * everything (planner_run) on the first run, after a failed one, for
 * another model, when a change touches every service or a claim two
 * services share, and when the changes are too many to be worth it. */
int planner_update(struct planner *p, const struct model *m,
		   const struct plan **ret_plan, const struct plan_diff **ret_diff);

/* Free the last diff and what only its "removed" entries still use (the
 * plan before, the splice's trash): call it once the diff has been
 * applied, so that two whole plans do not stay in memory between syncs.
 * The diff a run returned reads as empty from then on; the plan stays. */
void planner_release_previous(struct planner *p);

/* How many whole plans and incremental updates were made (tests). */
void planner_counts(const struct planner *p, uint64_t *ret_whole, uint64_t *ret_spliced);

/* The most recent plan (an empty plan before the first run). */
const struct plan *planner_current(const struct planner *p);

enum plan_format {
	PLAN_FORMAT_TEXT = 0,
	PLAN_FORMAT_JSON,
	/* A backend's render only: what it would program, in its own tool's
	 * input syntax (nft -f, ipvsadm-restore), nothing else. */
	PLAN_FORMAT_RULES,
};

/* Print the plan (frontends, endpoint sets, policies) to out. In JSON the
 * output is one object {"frontends":[...],"endpointSets":[...]}. */
void plan_print(const struct plan *plan, enum plan_format fmt, FILE *out);

const char *frontend_kind_name(enum frontend_kind kind);

/* Write text[0..len) to out as one JSON string, quotes included (for
 * backends whose render slot wraps a text program in JSON). */
void plan_print_json_string(FILE *out, const char *text, size_t len);

#endif
