/* State: what the IPVS backend has committed to the kernel, per frontend,
 * and the change one sync or apply makes to it. No netlink here: the
 * policy (ipvs.c) stages frontends' new item lists, sends the change the
 * state computes, and commits it only when the kernel accepted all of it.
 * Unit-tested without root (tests/unit/test_ipvs_state.c).
 *
 * Items shared by several frontends (a VIP on the dummy interface used by
 * two ports, a hairpin pair) are reference counted: the first frontend to
 * want one adds it, the last to drop it deletes it.
 *
 * Real servers of TCP and SCTP services are not deleted when a plan drops
 * them: they drain (weight 0, still serving their connections) until the
 * kernel reports no connection on them; the drain list lives here too.
 */
#ifndef FERRY_IPVS_STATE_H
#define FERRY_IPVS_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipvs_items.h"
#include "plan-t.h"

/* A frontend's identity (plan order: kind, address, protocol, port). */
struct ipvs_fe_key {
	uint8_t kind;
	uint8_t proto;
	uint16_t port;
	struct inet_addr addr;
};

/* The frontend key of a plan frontend. */
void ipvs_fe_key_of(const struct plan_frontend *fe, struct ipvs_fe_key *ret);

/* The kernel operations of one staged change, pointers into the state's
 * own item arrays (valid until the next commit, reset or stage). dels are
 * in the order to send (real servers before their services, services
 * before addresses), adds too (addresses, services, real servers,
 * members); edits are the new versions of items whose options changed. */
struct ipvs_change {
	const struct ipvs_item **dels;
	size_t n_dels;
	const struct ipvs_item **adds;
	size_t n_adds;
	const struct ipvs_item **edits;
	size_t n_edits;
	/* Real servers of TCP/SCTP services the change drops: among edits
	 * (weight 0), not dels; the caller moves them to the drain list when
	 * the change commits. */
	const struct ipvs_item **drains;
	size_t n_drains;
};

/* kube-proxy's ipvs.excludeCIDRs: virtual servers whose address is in one
 * of ex[0..n_ex) are never deleted. Removes from c->dels the deletions of
 * such virtual servers, of the real servers of a virtual server deleted in
 * the same change, and of their addresses on the dummy interface, so the
 * kernel keeps them while ferry forgets them (their ipset members still
 * go: FERRY-SERVICES no longer lists them, and a restart or `ferry
 * cleanup` leaves them alone too). Real servers of a virtual server that
 * stays are deleted as usual. Pure; the order of the rest is kept.
 * Returns how many deletions were removed, or -ENOMEM (c unchanged). */
int ipvs_change_keep_excluded(struct ipvs_change *c, const struct inet_prefix *ex, size_t n_ex);

struct ipvs_state;

/* An empty state (nothing committed). NULL on ENOMEM. */
struct ipvs_state *ipvs_state_new(void);
/* Free it. Accepts NULL; returns NULL. */
struct ipvs_state *ipvs_state_free(struct ipvs_state *st);

/* Forget everything committed and staged (after a failed change: the
 * caller reads the kernel back before the next one). The drain list is
 * kept. */
void ipvs_state_reset(struct ipvs_state *st);

/* Stage frontend key's new items (sorted and deduplicated, see
 * ipvs_item_vec_sort); items is taken (emptied) whatever the result. A
 * frontend staged twice in one change keeps the last list. 0 or -ENOMEM
 * (the staged change is then dropped: call ipvs_state_discard). */
int ipvs_state_stage(struct ipvs_state *st, const struct ipvs_fe_key *key, struct ipvs_item_vec *items);

/* Stage the removal of frontend key (absent: nothing). 0 or -ENOMEM. */
int ipvs_state_stage_removal(struct ipvs_state *st, const struct ipvs_fe_key *key);

/* Stage the removal of every committed frontend not staged since the last
 * commit (a full sync: the plan lists all that stay). 0 or -ENOMEM. */
int ipvs_state_stage_unstaged_removals(struct ipvs_state *st);

/* Compute what the staged change sends, into *ret (owned by the state).
 * 0 or -ENOMEM. */
int ipvs_state_change(struct ipvs_state *st, struct ipvs_change *ret);

/* The kernel accepted the change: staged lists become committed, shared
 * item counts move, the drains join the drain list. */
void ipvs_state_commit(struct ipvs_state *st);

/* Drop the staged change (nothing was sent, or the caller resets). */
void ipvs_state_discard(struct ipvs_state *st);

/* Adopt: the kernel holds exactly have (sorted), nothing committed yet;
 * the staged frontends hold what the plan wants. Computes the change that
 * turns have into the plan's items, like ipvs_state_change. Items the
 * kernel has that no frontend wants are deleted (real servers drain).
 * 0 or -ENOMEM. */
int ipvs_state_change_from(struct ipvs_state *st, const struct ipvs_item *have, size_t n_have,
			   struct ipvs_change *ret);

/* The drain list: real servers at weight 0 waiting for their last
 * connection. */
size_t ipvs_state_drain_count(const struct ipvs_state *st);
const struct ipvs_item *ipvs_state_drain_at(const struct ipvs_state *st, size_t i);
/* Whether item (a DEST) is draining. */
bool ipvs_state_draining(const struct ipvs_state *st, const struct ipvs_item *item);
/* Remove item from the drain list (deleted, or wanted again). */
void ipvs_state_drain_remove(struct ipvs_state *st, const struct ipvs_item *item);

/* Number of committed frontends, and of committed items (shared ones once),
 * for logs and tests. */
size_t ipvs_state_frontends(const struct ipvs_state *st);
size_t ipvs_state_items(const struct ipvs_state *st);

/* Every committed item once, sorted, into out (appended). For the renderer
 * and tests. 0 or -ENOMEM. */
int ipvs_state_all_items(const struct ipvs_state *st, struct ipvs_item_vec *out);

#endif
