/* nftables backend state (nft_state.c): staged changes against the
 * committed elements, hairpin reference counts, discard and commit, the
 * UDP conntrack targets of a change, slot-table counts and sizing, and the
 * take-over rebase. Plain data: no netlink, no root. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "nft_sets.h"
#include "nft_state.h"

static struct inet_addr addr(const char *s)
{
	struct inet_addr a;

	cr_assert_eq(inet_addr_parse(s, &a), 0, "bad address %s", s);
	return a;
}

static struct nft_state_key key(const char *vip, enum inet_proto p, uint16_t port)
{
	struct plan_frontend fe = { .kind = FRONTEND_CLUSTER_IP, .addr = addr(vip), .proto = p, .port = port };
	struct nft_state_key k;

	nft_state_key_of(&fe, &k);
	return k;
}

/* The verdict-map element of frontend vip:port/p with slots slot chains. */
static struct nft_elem vmap(const char *vip, enum inet_proto p, uint16_t port, uint16_t slots)
{
	struct inet_addr a = addr(vip);
	struct nft_elem e;
	size_t off = 0;

	nft_elem_init(&e, NFT_SET_FE, a.family);
	nft_elem_key_addr(&e, &off, &a);
	nft_elem_key_proto(&e, &off, p);
	nft_elem_key_port(&e, &off, port);
	e.verdict = slots;
	return e;
}

/* Slot slot of frontend vip:port/p pointing at endpoint ep:ep_port. */
static struct nft_elem slot(const char *vip, enum inet_proto p, uint16_t port, uint32_t n, const char *ep,
			    uint16_t ep_port)
{
	struct inet_addr a = addr(vip), b = addr(ep);
	struct nft_elem e;
	size_t off = 0;

	nft_elem_init(&e, NFT_SET_SLOTS, a.family);
	nft_elem_key_addr(&e, &off, &a);
	nft_elem_key_proto(&e, &off, p);
	nft_elem_key_port(&e, &off, port);
	nft_elem_key_slot(&e, &off, n);
	nft_elem_data_endpoint(&e, &b, ep_port);
	return e;
}

/* The same in the wildcard node-port slot table (no address). */
static struct nft_elem np_slot(enum inet_proto p, uint16_t port, uint32_t n, const char *ep, uint16_t ep_port)
{
	struct inet_addr b = addr(ep);
	struct nft_elem e;
	size_t off = 0;

	nft_elem_init(&e, NFT_SET_NP_SLOTS, b.family);
	nft_elem_key_proto(&e, &off, p);
	nft_elem_key_port(&e, &off, port);
	nft_elem_key_slot(&e, &off, n);
	nft_elem_data_endpoint(&e, &b, ep_port);
	return e;
}

/* The hairpin pair of endpoint address ep. */
static struct nft_elem hairpin(const char *ep)
{
	struct inet_addr a = addr(ep);
	struct nft_elem e;
	size_t off = 0;

	nft_elem_init(&e, NFT_SET_HAIRPIN, a.family);
	nft_elem_key_addr(&e, &off, &a);
	nft_elem_key_addr(&e, &off, &a);
	return e;
}

/* The guard element of cluster IP vip. */
static struct nft_elem cluster_ip(const char *vip)
{
	struct inet_addr a = addr(vip);
	struct nft_elem e;
	size_t off = 0;

	nft_elem_init(&e, NFT_SET_CLUSTER_IPS, a.family);
	nft_elem_key_addr(&e, &off, &a);
	return e;
}

static int elem_cmp(const void *a, const void *b)
{
	return nft_elem_cmp(a, b, NULL);
}

/* Stage key with a sorted copy of elems[0..n). */
static int stage(struct nft_state *s, struct nft_state_key k, const struct nft_elem *elems, size_t n)
{
	struct nft_elem_vec v = { 0 };

	for (size_t i = 0; i < n; i++)
		*nft_elem_vec_push(&v) = elems[i];
	if (n > 1)
		qsort(v.v, v.n, sizeof(*v.v), elem_cmp);
	return nft_state_stage(s, &k, &v);
}

/* Does list[0..n) hold e (by value)? */
static bool has(const struct nft_elem *const *list, size_t n, const struct nft_elem *e)
{
	for (size_t i = 0; i < n; i++)
		if (nft_elem_cmp(list[i], e, NULL) == 0)
			return true;
	return false;
}

static size_t committed(struct nft_state *s, struct nft_state_key k)
{
	size_t n;

	nft_state_elems(s, &k, &n);
	return n;
}

static bool committed_has(struct nft_state *s, struct nft_state_key k, const struct nft_elem *e)
{
	size_t n;
	const struct nft_elem *v = nft_state_elems(s, &k, &n);

	for (size_t i = 0; i < n; i++)
		if (nft_elem_cmp(&v[i], e, NULL) == 0)
			return true;
	return false;
}

static struct nft_state st;

static void setup(void)
{
	nft_state_init(&st);
}

static void teardown(void)
{
	nft_state_done(&st);
}

TestSuite(nft_state, .init = setup, .fini = teardown);

Test(nft_state, new_frontend_added_only_on_commit)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_TCP, 80);
	struct nft_elem e[] = {
		vmap("10.96.0.1", INET_PROTO_TCP, 80, 2),
		slot("10.96.0.1", INET_PROTO_TCP, 80, 0, "10.0.0.1", 8080),
		slot("10.96.0.1", INET_PROTO_TCP, 80, 1, "10.0.0.2", 8080),
	};

	cr_assert_eq(stage(&st, a, e, 3), 0);
	cr_expect_eq(st.change.n_adds, 3);
	cr_expect_eq(st.change.n_dels, 0);
	for (size_t i = 0; i < 3; i++)
		cr_expect(has(st.change.adds, st.change.n_adds, &e[i]), "element %zu not queued", i);
	cr_expect_eq(nft_state_frontends(&st), 0, "staged is not committed");
	cr_expect_eq(committed(&st, a), 0);
	nft_state_commit(&st);
	cr_expect_eq(nft_state_frontends(&st), 1);
	cr_expect_eq(committed(&st, a), 3);
	cr_expect_eq(st.change.n_adds, 0, "the commit ends the change");
}

Test(nft_state, changed_frontend_sends_its_difference)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_TCP, 80);
	struct nft_elem before[] = {
		vmap("10.96.0.1", INET_PROTO_TCP, 80, 2),
		slot("10.96.0.1", INET_PROTO_TCP, 80, 0, "10.0.0.1", 8080),
		slot("10.96.0.1", INET_PROTO_TCP, 80, 1, "10.0.0.2", 8080),
	};
	struct nft_elem after[] = {
		vmap("10.96.0.1", INET_PROTO_TCP, 80, 2),
		slot("10.96.0.1", INET_PROTO_TCP, 80, 0, "10.0.0.1", 8080),
		slot("10.96.0.1", INET_PROTO_TCP, 80, 1, "10.0.0.3", 8080),
	};

	cr_assert_eq(stage(&st, a, before, 3), 0);
	nft_state_commit(&st);
	cr_assert_eq(stage(&st, a, after, 3), 0);
	cr_assert_eq(st.change.n_dels, 1);
	cr_assert_eq(st.change.n_adds, 1);
	cr_expect_eq(nft_elem_cmp(st.change.dels[0], &before[2], NULL), 0);
	cr_expect_eq(nft_elem_cmp(st.change.adds[0], &after[2], NULL), 0);
	/* Staged, not committed: the old endpoint is still what the state has. */
	cr_expect(committed_has(&st, a, &before[2]));
	nft_state_commit(&st);
	cr_expect(committed_has(&st, a, &after[2]));
	cr_expect_not(committed_has(&st, a, &before[2]));

	/* The same elements again: nothing to send. */
	cr_assert_eq(stage(&st, a, after, 3), 0);
	cr_expect_eq(st.change.n_dels + st.change.n_adds, 0);
	nft_state_commit(&st);
	cr_expect_eq(committed(&st, a), 3);
}

Test(nft_state, removal_deletes_every_element)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_TCP, 80), b = key("10.96.0.2", INET_PROTO_TCP, 80);
	struct nft_elem e[] = {
		vmap("10.96.0.1", INET_PROTO_TCP, 80, 1),
		slot("10.96.0.1", INET_PROTO_TCP, 80, 0, "10.0.0.1", 8080),
	};

	cr_assert_eq(stage(&st, a, e, 2), 0);
	nft_state_commit(&st);
	cr_assert_eq(nft_state_stage_removal(&st, &b), 0, "an unknown frontend is no error");
	cr_expect_eq(st.change.n_dels, 0);
	cr_assert_eq(nft_state_stage_removal(&st, &a), 0);
	cr_expect_eq(st.change.n_dels, 2);
	cr_expect(has(st.change.dels, st.change.n_dels, &e[0]));
	cr_expect(has(st.change.dels, st.change.n_dels, &e[1]));
	cr_expect_eq(nft_state_stage_removal(&st, &a), -EALREADY);
	nft_state_commit(&st);
	cr_expect_eq(nft_state_frontends(&st), 0);
	cr_expect_eq(committed(&st, a), 0);
}

Test(nft_state, a_frontend_is_staged_once_per_change)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_TCP, 80);
	struct nft_elem e = vmap("10.96.0.1", INET_PROTO_TCP, 80, 1);

	cr_assert_eq(stage(&st, a, &e, 1), 0);
	nft_state_commit(&st);
	cr_assert_eq(stage(&st, a, &e, 1), 0);
	cr_expect_eq(stage(&st, a, &e, 1), -EALREADY);
	cr_expect_eq(nft_state_stage_removal(&st, &a), -EALREADY);
	nft_state_discard(&st);
	cr_expect_eq(stage(&st, a, &e, 1), 0, "a new change may stage it again");
	nft_state_commit(&st);
}

Test(nft_state, unstaged_frontends_go_in_a_sync)
{
	const char *vips[] = { "10.96.0.1", "10.96.0.2", "10.96.0.3" };
	struct nft_elem e[3];

	for (int i = 0; i < 3; i++) {
		e[i] = vmap(vips[i], INET_PROTO_TCP, 80, 1);
		cr_assert_eq(stage(&st, key(vips[i], INET_PROTO_TCP, 80), &e[i], 1), 0);
	}
	nft_state_commit(&st);
	cr_assert_eq(stage(&st, key(vips[0], INET_PROTO_TCP, 80), &e[0], 1), 0);
	cr_assert_eq(stage(&st, key(vips[2], INET_PROTO_TCP, 80), &e[2], 1), 0);
	cr_assert_eq(nft_state_stage_unstaged_removals(&st), 1, "one frontend left the plan");
	cr_assert_eq(st.change.n_dels, 1);
	cr_expect_eq(nft_elem_cmp(st.change.dels[0], &e[1], NULL), 0);
	nft_state_commit(&st);
	cr_expect_eq(nft_state_frontends(&st), 2);
	cr_expect_eq(committed(&st, key(vips[0], INET_PROTO_TCP, 80)), 1);
	cr_expect_eq(committed(&st, key(vips[1], INET_PROTO_TCP, 80)), 0);
	cr_expect_eq(committed(&st, key(vips[2], INET_PROTO_TCP, 80)), 1);
	/* The next sync stages both again: nothing else goes. */
	cr_assert_eq(stage(&st, key(vips[0], INET_PROTO_TCP, 80), &e[0], 1), 0);
	cr_assert_eq(stage(&st, key(vips[2], INET_PROTO_TCP, 80), &e[2], 1), 0);
	cr_expect_eq(nft_state_stage_unstaged_removals(&st), 0);
	nft_state_commit(&st);
}

Test(nft_state, hairpin_shared_by_two_frontends)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_TCP, 80), b = key("10.96.0.2", INET_PROTO_TCP, 443);
	struct nft_elem h = hairpin("10.0.0.1");
	struct nft_elem ea[] = { vmap("10.96.0.1", INET_PROTO_TCP, 80, 1),
				 slot("10.96.0.1", INET_PROTO_TCP, 80, 0, "10.0.0.1", 8080), h };
	struct nft_elem eb[] = { vmap("10.96.0.2", INET_PROTO_TCP, 443, 1),
				 slot("10.96.0.2", INET_PROTO_TCP, 443, 0, "10.0.0.1", 8443), h };

	/* Both in one change: the pair is added once. */
	cr_assert_eq(stage(&st, a, ea, 3), 0);
	cr_assert_eq(stage(&st, b, eb, 3), 0);
	cr_expect_eq(st.change.n_adds, 5);
	cr_expect(has(st.change.adds, st.change.n_adds, &h));
	cr_expect_eq(nft_state_hairpin_refs(&st, &h), 2);
	nft_state_commit(&st);
	cr_expect_eq(nft_state_hairpin_refs(&st, &h), 2);

	/* The first frontend goes: the pair stays. */
	cr_assert_eq(nft_state_stage_removal(&st, &a), 0);
	cr_expect_eq(st.change.n_dels, 2);
	cr_expect_not(has(st.change.dels, st.change.n_dels, &h), "deleted while b still uses it");
	nft_state_commit(&st);
	cr_expect_eq(nft_state_hairpin_refs(&st, &h), 1);

	/* a comes back, in another change: not added again. */
	cr_assert_eq(stage(&st, a, ea, 3), 0);
	cr_expect_not(has(st.change.adds, st.change.n_adds, &h));
	cr_expect_eq(st.change.n_adds, 2);
	nft_state_commit(&st);

	/* Both go; the last one deletes it, once. */
	cr_assert_eq(nft_state_stage_removal(&st, &b), 0);
	cr_expect_not(has(st.change.dels, st.change.n_dels, &h));
	cr_assert_eq(nft_state_stage_removal(&st, &a), 0);
	cr_expect(has(st.change.dels, st.change.n_dels, &h));
	cr_expect_eq(st.change.n_dels, 5);
	nft_state_commit(&st);
	cr_expect_eq(nft_state_hairpin_refs(&st, &h), 0);
	cr_expect_eq(nft_state_frontends(&st), 0);
}

/* A cluster IP's guard element is held by every port of the address: added
 * with the first, deleted with the last; a hairpin pair of the same bytes
 * is another element. */
Test(nft_state, cluster_ip_shared_by_its_ports)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_TCP, 80), b = key("10.96.0.1", INET_PROTO_UDP, 53),
			     c = key("10.96.0.2", INET_PROTO_TCP, 80);
	struct nft_elem ip1 = cluster_ip("10.96.0.1"), ip2 = cluster_ip("10.96.0.2"), h = hairpin("10.96.0.1");
	struct nft_elem ea[] = { vmap("10.96.0.1", INET_PROTO_TCP, 80, 1), ip1 };
	struct nft_elem eb[] = { vmap("10.96.0.1", INET_PROTO_UDP, 53, 1), ip1, h };
	struct nft_elem ec[] = { vmap("10.96.0.2", INET_PROTO_TCP, 80, 1), ip2 };

	cr_assert(nft_state_is_shared_set(NFT_SET_CLUSTER_IPS));
	cr_assert(nft_state_is_shared_set(NFT_SET_HAIRPIN));
	cr_assert_not(nft_state_is_shared_set(NFT_SET_FE));
	cr_assert_eq(stage(&st, a, ea, 2), 0);
	cr_assert_eq(stage(&st, b, eb, 3), 0);
	cr_assert_eq(stage(&st, c, ec, 2), 0);
	cr_expect_eq(st.change.n_adds, 6, "3 vmaps, 2 cluster IPs, 1 hairpin");
	cr_expect_eq(nft_state_hairpin_refs(&st, &ip1), 2);
	cr_expect_eq(nft_state_hairpin_refs(&st, &h), 1, "counted apart from the cluster IP");
	nft_state_commit(&st);
	cr_expect_eq(nft_state_hairpin_refs(&st, &ip1), 2);
	cr_expect_eq(nft_state_hairpin_refs(&st, &ip2), 1);

	/* One port goes: the address stays guarded. */
	cr_assert_eq(nft_state_stage_removal(&st, &a), 0);
	cr_expect_not(has(st.change.dels, st.change.n_dels, &ip1));
	cr_expect_eq(st.change.n_dels, 1);
	nft_state_commit(&st);

	/* A discarded change gives its references back. */
	cr_assert_eq(nft_state_stage_removal(&st, &b), 0);
	cr_expect(has(st.change.dels, st.change.n_dels, &ip1));
	cr_expect_eq(nft_state_hairpin_refs(&st, &ip1), 0);
	nft_state_discard(&st);
	cr_expect_eq(nft_state_hairpin_refs(&st, &ip1), 1);

	/* The last port goes (a sync that no longer has it): so does the address. */
	cr_assert_eq(stage(&st, c, ec, 2), 0);
	cr_assert_eq(nft_state_stage_unstaged_removals(&st), 1);
	cr_expect(has(st.change.dels, st.change.n_dels, &ip1));
	cr_expect(has(st.change.dels, st.change.n_dels, &h));
	cr_expect_not(has(st.change.dels, st.change.n_dels, &ip2));
	nft_state_commit(&st);
	cr_expect_eq(nft_state_hairpin_refs(&st, &ip1), 0);
	cr_expect_eq(nft_state_hairpin_refs(&st, &ip2), 1);
	cr_expect_eq(nft_state_frontends(&st), 1);
}

/* A frontend with a short-circuit (plan_frontend.short_circuit): its slots
 * share the slot table (and its sizing), numbered from the base; a change
 * of the cluster-wide set touches those slots and the digest only. */
Test(nft_state, short_circuit_slots_share_the_slot_table)
{
	struct plan_endpoint local[1], all[2];
	struct plan_epset eps_local = { .key = "default/web:http/TCP/local", .endpoints = local, .n_endpoints = 1 };
	struct plan_epset eps_all = { .key = "default/web:http/TCP", .endpoints = all, .n_endpoints = 2 };
	struct plan_frontend fe = { .kind = FRONTEND_EXTERNAL_IP, .addr = addr("10.99.0.1"), .proto = INET_PROTO_TCP,
				    .port = 80, .epset = &eps_local, .short_circuit = &eps_all,
				    .when_empty = EMPTY_DROP };
	struct nft_elems_cfg cfg = { .masq_mark = 0x4000 };
	struct nft_elem_vec v = { 0 };
	struct nft_state_key k;
	size_t need[2], n_sc_fe = 0, n_slots = 0;

	local[0] = (struct plan_endpoint){ .addr = addr("10.0.2.3"), .port = 9000, .local = true };
	all[0] = (struct plan_endpoint){ .addr = addr("10.0.2.2"), .port = 9000 };
	all[1] = local[0];
	nft_state_key_of(&fe, &k);
	cr_assert_eq(nft_frontend_elems(&fe, &cfg, &v, NULL), 0);
	cr_assert_eq(nft_state_stage(&st, &k, &v), 0);
	nft_state_slots_need(&st, need);
	cr_expect_eq(need[0], 3, "1 own slot and 2 short-circuit slots");
	for (size_t i = 0; i < st.change.n_adds; i++) {
		n_sc_fe += st.change.adds[i]->set == NFT_SET_SC_FE;
		n_slots += st.change.adds[i]->set == NFT_SET_SLOTS;
	}
	cr_expect_eq(n_sc_fe, 1);
	cr_expect_eq(n_slots, 3);
	nft_state_commit(&st);
	cr_expect_eq(st.slots_count[0], 3);

	/* Another remote endpoint: one short-circuit slot and the digest. */
	all[0].addr = addr("10.0.2.1"); /* still sorted first */
	cr_assert_eq(nft_frontend_elems(&fe, &cfg, &v, NULL), 0);
	cr_assert_eq(nft_state_stage(&st, &k, &v), 0);
	cr_expect_eq(st.change.n_dels, 2);
	cr_expect_eq(st.change.n_adds, 2);
	for (size_t i = 0; i < st.change.n_adds; i++) {
		const struct nft_elem *e = st.change.adds[i];
		uint32_t slot;

		cr_expect(e->set == NFT_SET_SLOTS || e->set == NFT_SET_DIGEST, "set %s", nft_set_name(e->set));
		if (e->set != NFT_SET_SLOTS)
			continue;
		memcpy(&slot, e->key + 12, 4);
		cr_expect_eq(slot, nft_sc_slot_base(0x4000), "the short-circuit's first slot");
	}
	nft_state_commit(&st);
	cr_expect_eq(st.slots_count[0], 3);
}

Test(nft_state, hairpin_moves_between_frontends_in_one_change)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_TCP, 80), b = key("10.96.0.2", INET_PROTO_TCP, 80);
	struct nft_elem h = hairpin("10.0.0.7");
	struct nft_elem ea[] = { vmap("10.96.0.1", INET_PROTO_TCP, 80, 1), h };
	struct nft_elem eb[] = { vmap("10.96.0.2", INET_PROTO_TCP, 80, 1), h };

	cr_assert_eq(stage(&st, a, ea, 2), 0);
	nft_state_commit(&st);
	/* b takes it before a drops it (a sync's order): no delete, no add. */
	cr_assert_eq(stage(&st, b, eb, 2), 0);
	cr_assert_eq(nft_state_stage_removal(&st, &a), 0);
	cr_expect_not(has(st.change.adds, st.change.n_adds, &h));
	cr_expect_not(has(st.change.dels, st.change.n_dels, &h));
	nft_state_commit(&st);
	cr_expect_eq(nft_state_hairpin_refs(&st, &h), 1);
}

Test(nft_state, discard_leaves_the_state_as_it_was)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_UDP, 53), b = key("10.96.0.2", INET_PROTO_TCP, 80),
			     c = key("10.96.0.3", INET_PROTO_TCP, 80);
	struct nft_elem h = hairpin("10.0.0.1");
	struct nft_elem ea[] = { vmap("10.96.0.1", INET_PROTO_UDP, 53, 1),
				 slot("10.96.0.1", INET_PROTO_UDP, 53, 0, "10.0.0.1", 5353), h };
	struct nft_elem ea2[] = { vmap("10.96.0.1", INET_PROTO_UDP, 53, 1),
				  slot("10.96.0.1", INET_PROTO_UDP, 53, 0, "10.0.0.2", 5353) };
	struct nft_elem eb[] = { vmap("10.96.0.2", INET_PROTO_TCP, 80, 1),
				 slot("10.96.0.2", INET_PROTO_TCP, 80, 0, "10.0.0.1", 80), h };
	struct nft_elem ec[] = { vmap("10.96.0.3", INET_PROTO_TCP, 80, 1),
				 slot("10.96.0.3", INET_PROTO_TCP, 80, 0, "10.0.0.9", 80), hairpin("10.0.0.9") };
	struct nft_elem h9 = hairpin("10.0.0.9");
	const struct conntrack_target *gone;
	size_t n_gone, need[2];

	cr_assert_eq(stage(&st, a, ea, 3), 0);
	cr_assert_eq(stage(&st, b, eb, 3), 0);
	nft_state_commit(&st);
	cr_assert_eq(st.slots_count[0], 2);

	/* A change that touches everything, refused. */
	cr_assert_eq(stage(&st, a, ea2, 2), 0);
	cr_assert_eq(nft_state_stage_removal(&st, &b), 0);
	cr_assert_eq(stage(&st, c, ec, 3), 0);
	cr_expect(has(st.change.dels, st.change.n_dels, &h), "both users of h dropped it");
	cr_expect_eq(nft_state_hairpin_refs(&st, &h), 0);
	cr_expect_eq(nft_state_hairpin_refs(&st, &h9), 1);
	cr_assert_eq(nft_state_udp_gone(&st, &gone, &n_gone), 0);
	cr_expect_eq(n_gone, 1);
	nft_state_slots_need(&st, need);
	cr_expect_eq(need[0], 4);
	nft_state_discard(&st);

	cr_expect_eq(st.change.n_adds + st.change.n_dels, 0);
	cr_expect_eq(nft_state_frontends(&st), 2);
	cr_expect_eq(committed(&st, a), 3);
	cr_expect(committed_has(&st, a, &ea[1]), "a's old slot is still committed");
	cr_expect_eq(committed(&st, b), 3);
	cr_expect_eq(committed(&st, c), 0);
	cr_expect_eq(nft_state_hairpin_refs(&st, &h), 2);
	cr_expect_eq(nft_state_hairpin_refs(&st, &h9), 0);
	cr_expect_eq(st.slots_count[0], 2);
	cr_expect_eq(st.slots_count[1], 0);
	cr_assert_eq(nft_state_udp_gone(&st, &gone, &n_gone), 0);
	cr_expect_eq(n_gone, 0, "the discarded change's targets are gone");

	/* The next change sees the old state: dropping b alone keeps h. */
	cr_assert_eq(nft_state_stage_removal(&st, &b), 0);
	cr_expect_not(has(st.change.dels, st.change.n_dels, &h));
	cr_expect_eq(st.change.n_dels, 2);
	nft_state_commit(&st);
	cr_expect_eq(nft_state_hairpin_refs(&st, &h), 1);
	cr_expect_eq(st.slots_count[0], 1);
}

Test(nft_state, discard_after_many_hairpins_restores_every_count)
{
	/* Enough pairs to grow the tables while staged. */
	enum { N = 3000 };
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_TCP, 80), b = key("10.96.0.2", INET_PROTO_TCP, 80);
	struct nft_elem *ea = calloc(N, sizeof(*ea)), *eb = calloc(N, sizeof(*eb));
	char ip[32];

	cr_assert(ea && eb);
	for (int i = 0; i < N; i++) {
		snprintf(ip, sizeof(ip), "10.1.%d.%d", i / 250, i % 250 + 1);
		ea[i] = hairpin(ip);
		snprintf(ip, sizeof(ip), "10.2.%d.%d", i / 250, i % 250 + 1);
		eb[i] = hairpin(ip);
	}
	cr_assert_eq(stage(&st, a, ea, N), 0);
	nft_state_commit(&st);
	/* Drop a's pairs, add N new ones: discarded. */
	cr_assert_eq(nft_state_stage_removal(&st, &a), 0);
	cr_assert_eq(stage(&st, b, eb, N), 0);
	cr_expect_eq(st.change.n_dels, N);
	cr_expect_eq(st.change.n_adds, N);
	nft_state_discard(&st);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(nft_state_hairpin_refs(&st, &ea[i]), 1, "pair %d lost its reference", i);
		cr_assert_eq(nft_state_hairpin_refs(&st, &eb[i]), 0, "pair %d kept a discarded reference", i);
	}
	/* Committed this time. */
	cr_assert_eq(nft_state_stage_removal(&st, &a), 0);
	cr_assert_eq(stage(&st, b, eb, N), 0);
	nft_state_commit(&st);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(nft_state_hairpin_refs(&st, &ea[i]), 0);
		cr_assert_eq(nft_state_hairpin_refs(&st, &eb[i]), 1);
	}
	free(ea);
	free(eb);
}

Test(nft_state, many_frontends_stay_sorted_and_found)
{
	/* Frontends inserted and removed in scattered order over several
	 * changes: each is found with its own elements. */
	enum { N = 1000 };
	bool in[N] = { false };
	char vip[32];

	for (int round = 0; round < 5; round++) {
		for (int j = 0; j < N; j++) {
			int i = (j * 389 + round * 97) % N;
			struct nft_elem e;
			struct nft_state_key k;

			if ((i + round) % 3 == 0)
				continue;
			snprintf(vip, sizeof(vip), "10.96.%d.%d", i / 200, i % 200 + 1);
			k = key(vip, INET_PROTO_TCP, 80);
			if (in[i] && (i + round) % 2) {
				cr_assert_eq(nft_state_stage_removal(&st, &k), 0);
				in[i] = false;
			} else if (!in[i]) {
				e = vmap(vip, INET_PROTO_TCP, 80, (uint16_t)(round + 1));
				cr_assert_eq(stage(&st, k, &e, 1), 0);
				in[i] = true;
			}
		}
		nft_state_commit(&st);
		for (int i = 0, count = 0; i < N; i++) {
			snprintf(vip, sizeof(vip), "10.96.%d.%d", i / 200, i % 200 + 1);
			cr_assert_eq(committed(&st, key(vip, INET_PROTO_TCP, 80)), in[i] ? 1u : 0u,
				     "round %d frontend %d", round, i);
			count += in[i];
			if (i == N - 1)
				cr_assert_eq(nft_state_frontends(&st), (size_t)count);
		}
	}
	for (size_t i = 1; i < st.n_fes; i++)
		cr_assert_lt(memcmp(&st.fes[i - 1].key, &st.fes[i].key, sizeof(st.fes[i].key)), 0);
}

Test(nft_state, udp_conntrack_targets)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_UDP, 53), b = key("10.96.0.2", INET_PROTO_UDP, 53),
			     t = key("10.96.0.3", INET_PROTO_TCP, 80);
	struct nft_elem ea[] = {
		vmap("10.96.0.1", INET_PROTO_UDP, 53, 3),
		slot("10.96.0.1", INET_PROTO_UDP, 53, 0, "10.0.0.1", 5353),
		slot("10.96.0.1", INET_PROTO_UDP, 53, 1, "10.0.0.2", 5353),
		slot("10.96.0.1", INET_PROTO_UDP, 53, 2, "10.0.0.3", 5353),
	};
	/* 10.0.0.1 dropped; 10.0.0.3 moves from slot 2 to slot 1 (the table
	 * shrinks), 10.0.0.2 goes. */
	struct nft_elem ea2[] = {
		vmap("10.96.0.1", INET_PROTO_UDP, 53, 1),
		slot("10.96.0.1", INET_PROTO_UDP, 53, 0, "10.0.0.3", 5353),
	};
	struct nft_elem eb[] = {
		vmap("10.96.0.2", INET_PROTO_UDP, 53, 1),
		slot("10.96.0.2", INET_PROTO_UDP, 53, 0, "10.0.0.2", 5353),
	};
	struct nft_elem et[] = {
		vmap("10.96.0.3", INET_PROTO_TCP, 80, 1),
		slot("10.96.0.3", INET_PROTO_TCP, 80, 0, "10.0.0.5", 80),
	};
	struct conntrack_target want[2] = { { .family = AF_INET }, { .family = AF_INET } };
	const struct conntrack_target *gone;
	size_t n_gone;

	cr_assert_eq(stage(&st, a, ea, 4), 0);
	cr_assert_eq(stage(&st, b, eb, 2), 0);
	cr_assert_eq(stage(&st, t, et, 2), 0);
	cr_assert_eq(nft_state_udp_gone(&st, &gone, &n_gone), 0);
	cr_expect_eq(n_gone, 0, "adds remove nothing");
	nft_state_commit(&st);

	cr_assert_eq(stage(&st, a, ea2, 2), 0);
	cr_assert_eq(nft_state_stage_removal(&st, &b), 0);
	cr_assert_eq(nft_state_stage_removal(&st, &t), 0);
	cr_assert_eq(nft_state_udp_gone(&st, &gone, &n_gone), 0);
	/* 10.0.0.1 and 10.0.0.2 (dropped by a and by b: once); not 10.0.0.3
	 * (still in a slot), not 10.0.0.5 (TCP). */
	cr_assert_eq(n_gone, 2);
	memcpy(want[0].addr, addr("10.0.0.1").u.bytes, 4);
	memcpy(want[1].addr, addr("10.0.0.2").u.bytes, 4);
	want[0].port_be = want[1].port_be = htons(5353);
	cr_expect_eq(memcmp(&gone[0], &want[0], sizeof(want[0])), 0);
	cr_expect_eq(memcmp(&gone[1], &want[1], sizeof(want[1])), 0);
	nft_state_commit(&st);
}

Test(nft_state, udp_conntrack_targets_of_node_ports_and_ipv6)
{
	struct nft_state_key np = key("0.0.0.0", INET_PROTO_UDP, 30053), v6 = key("fd00::1", INET_PROTO_UDP, 53);
	struct nft_elem enp[] = { np_slot(INET_PROTO_UDP, 30053, 0, "10.0.0.8", 53) };
	struct nft_elem ev6[] = { slot("fd00::1", INET_PROTO_UDP, 53, 0, "fd00:1::8", 53) };
	const struct conntrack_target *gone;
	size_t n_gone;

	cr_assert_eq(stage(&st, np, enp, 1), 0);
	cr_assert_eq(stage(&st, v6, ev6, 1), 0);
	nft_state_commit(&st);
	cr_assert_eq(nft_state_stage_removal(&st, &np), 0);
	cr_assert_eq(nft_state_stage_removal(&st, &v6), 0);
	cr_assert_eq(nft_state_udp_gone(&st, &gone, &n_gone), 0);
	cr_assert_eq(n_gone, 2);
	cr_expect_eq(gone[0].family, AF_INET);
	cr_expect_eq(memcmp(gone[0].addr, addr("10.0.0.8").u.bytes, 4), 0);
	cr_expect_eq(gone[1].family, AF_INET6);
	cr_expect_eq(memcmp(gone[1].addr, addr("fd00:1::8").u.bytes, 16), 0);
	cr_expect_eq(gone[1].port_be, htons(53));
	nft_state_discard(&st);
}

Test(nft_state, slot_counts_per_family)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_TCP, 80), b = key("fd00::1", INET_PROTO_TCP, 80),
			     np = key("0.0.0.0", INET_PROTO_TCP, 30080);
	struct nft_elem ea[] = {
		slot("10.96.0.1", INET_PROTO_TCP, 80, 0, "10.0.0.1", 80),
		slot("10.96.0.1", INET_PROTO_TCP, 80, 1, "10.0.0.2", 80),
		slot("10.96.0.1", INET_PROTO_TCP, 80, 2, "10.0.0.3", 80),
	};
	struct nft_elem ea2[] = { slot("10.96.0.1", INET_PROTO_TCP, 80, 0, "10.0.0.9", 80) };
	struct nft_elem eb[] = { slot("fd00::1", INET_PROTO_TCP, 80, 0, "fd00:1::1", 80) };
	/* Node-port slots live in another set, which is not sized. */
	struct nft_elem enp[] = { np_slot(INET_PROTO_TCP, 30080, 0, "10.0.0.1", 80) };
	size_t need[2];

	cr_assert_eq(stage(&st, a, ea, 3), 0);
	cr_assert_eq(stage(&st, b, eb, 1), 0);
	cr_assert_eq(stage(&st, np, enp, 1), 0);
	nft_state_slots_need(&st, need);
	cr_expect_eq(need[0], 3);
	cr_expect_eq(need[1], 1);
	nft_state_commit(&st);
	cr_expect_eq(st.slots_count[0], 3);
	cr_expect_eq(st.slots_count[1], 1);

	/* Replacing 3 slots by 1: the kernel holds 3 + 1 while it commits. */
	cr_assert_eq(stage(&st, a, ea2, 1), 0);
	nft_state_slots_need(&st, need);
	cr_expect_eq(need[0], 4);
	cr_expect_eq(need[1], 1);
	nft_state_commit(&st);
	cr_expect_eq(st.slots_count[0], 1);

	cr_assert_eq(nft_state_stage_removal(&st, &b), 0);
	nft_state_commit(&st);
	cr_expect_eq(st.slots_count[1], 0);

	nft_state_clear(&st);
	cr_expect_eq(st.slots_count[0], 0, "a cleared state has no slots");
}

Test(nft_state, slot_table_sizing_rule)
{
	size_t need[2];
	uint32_t size[2];

	cr_expect_eq(nft_state_slots_size(0), NFT_STATE_SLOTS_SIZE_MIN);
	cr_expect_eq(nft_state_slots_size(1000), NFT_STATE_SLOTS_SIZE_MIN);
	cr_expect_eq(nft_state_slots_size(43690), NFT_STATE_SLOTS_SIZE_MIN);
	cr_expect_eq(nft_state_slots_size(43691), 65536);
	cr_expect_eq(nft_state_slots_size(100000), 150000);
	cr_expect_eq(nft_state_slots_size(1000000), 1500000);
	cr_expect_eq(nft_state_slots_size((size_t)UINT32_MAX), UINT32_MAX);
	cr_expect_eq(nft_state_slots_size(SIZE_MAX), UINT32_MAX);

	/* Nothing declared yet: any need declares. */
	need[0] = 10;
	need[1] = 0;
	cr_expect(nft_state_slots_grow(&st, need, size));
	cr_expect_eq(size[0], NFT_STATE_SLOTS_SIZE_MIN);
	cr_expect_eq(size[1], 0);
	nft_state_slots_declared(&st, size);
	cr_expect_eq(st.slots_size[0], NFT_STATE_SLOTS_SIZE_MIN);
	cr_expect_eq(st.slots_size[1], 0);
	/* Up to the declared size: nothing to do. */
	need[0] = NFT_STATE_SLOTS_SIZE_MIN;
	cr_expect_not(nft_state_slots_grow(&st, need, size));
	cr_expect_eq(size[0], 0);
	/* One past it: half again as much. */
	need[0] = NFT_STATE_SLOTS_SIZE_MIN + 1;
	need[1] = 1;
	cr_expect(nft_state_slots_grow(&st, need, size));
	cr_expect_eq(size[0], (NFT_STATE_SLOTS_SIZE_MIN + 1) * 3 / 2);
	cr_expect_eq(size[1], NFT_STATE_SLOTS_SIZE_MIN);
	/* The declared size survives a clear (the kernel keeps the set). */
	nft_state_slots_declared(&st, size);
	nft_state_clear(&st);
	cr_expect_eq(st.slots_size[0], (NFT_STATE_SLOTS_SIZE_MIN + 1) * 3 / 2);
}

Test(nft_state, rebase_on_what_the_kernel_holds)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_UDP, 53), b = key("10.96.0.2", INET_PROTO_TCP, 80);
	struct nft_elem h = hairpin("10.0.0.1");
	struct nft_elem ea[] = { vmap("10.96.0.1", INET_PROTO_UDP, 53, 1),
				 slot("10.96.0.1", INET_PROTO_UDP, 53, 0, "10.0.0.1", 53), h };
	struct nft_elem eb[] = { vmap("10.96.0.2", INET_PROTO_TCP, 80, 1),
				 slot("10.96.0.2", INET_PROTO_TCP, 80, 0, "10.0.0.1", 80), h };
	/* The kernel: a as planned, b's verdict, h, and a stale UDP slot. */
	struct nft_elem kernel[] = { ea[0], ea[1], eb[0], h,
				     slot("10.96.0.9", INET_PROTO_UDP, 53, 0, "10.0.0.4", 53) };
	const struct conntrack_target *gone;
	size_t n_gone, need[2];

	qsort(kernel, 5, sizeof(kernel[0]), elem_cmp);
	cr_assert_eq(stage(&st, a, ea, 3), 0);
	cr_assert_eq(stage(&st, b, eb, 3), 0);
	cr_assert_eq(st.change.n_adds, 5, "h once");
	nft_state_sort_adds(&st);
	cr_assert_eq(nft_state_rebase(&st, kernel, 5), 0);
	cr_assert_eq(st.change.n_adds, 1, "only b's slot is missing");
	cr_expect_eq(nft_elem_cmp(st.change.adds[0], &eb[1], NULL), 0);
	cr_assert_eq(st.change.n_dels, 1);
	cr_expect_eq(nft_elem_cmp(st.change.dels[0], &kernel[4], NULL), 0);
	cr_assert_eq(nft_state_udp_gone(&st, &gone, &n_gone), 0);
	cr_assert_eq(n_gone, 1);
	cr_expect_eq(memcmp(gone[0].addr, addr("10.0.0.4").u.bytes, 4), 0);
	nft_state_slots_need(&st, need);
	cr_expect_eq(need[0], 2, "the plan's slots, whatever the kernel had");
	nft_state_commit(&st);
	/* The state is the plan's, not the difference. */
	cr_expect_eq(committed(&st, a), 3);
	cr_expect_eq(committed(&st, b), 3);
	cr_expect_eq(nft_state_hairpin_refs(&st, &h), 2);
	cr_expect_eq(st.slots_count[0], 2);

	/* Only a change against a cleared state can be rebased. */
	cr_assert_eq(nft_state_stage_removal(&st, &a), 0);
	cr_expect_eq(nft_state_rebase(&st, kernel, 5), -EINVAL);
	nft_state_discard(&st);
}

/* A take-over that found its plan's content digest: nothing is sent, and
 * the commit installs the plan's state (counts, hairpin references, slot
 * counts) exactly as a rebase onto the same elements does. */
Test(nft_state, rebase_when_the_kernel_holds_the_whole_plan)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_UDP, 53), b = key("10.96.0.2", INET_PROTO_TCP, 80);
	struct nft_elem h = hairpin("10.0.0.1");
	struct nft_elem ea[] = { vmap("10.96.0.1", INET_PROTO_UDP, 53, 1),
				 slot("10.96.0.1", INET_PROTO_UDP, 53, 0, "10.0.0.1", 53), h };
	struct nft_elem eb[] = { vmap("10.96.0.2", INET_PROTO_TCP, 80, 1),
				 slot("10.96.0.2", INET_PROTO_TCP, 80, 0, "10.0.0.1", 80), h };
	const struct conntrack_target *gone;
	size_t n_gone, need[2];

	cr_assert_eq(stage(&st, a, ea, 3), 0);
	cr_assert_eq(stage(&st, b, eb, 3), 0);
	cr_assert_eq(st.change.n_adds, 5, "h once");
	nft_state_slots_need(&st, need);
	cr_assert_eq(nft_state_rebase_all_present(&st), 0);
	cr_expect_eq(st.change.n_adds, 0, "nothing to send");
	cr_expect_eq(st.change.n_dels, 0);
	cr_assert_eq(nft_state_udp_gone(&st, &gone, &n_gone), 0);
	cr_expect_eq(n_gone, 0);
	nft_state_commit(&st);
	cr_expect_eq(committed(&st, a), 3);
	cr_expect_eq(committed(&st, b), 3);
	cr_expect_eq(nft_state_hairpin_refs(&st, &h), 2);
	cr_expect_eq(st.slots_count[0], need[0]);
	cr_expect_eq(st.slots_count[0], 2);
	/* Later changes diff against it as usual: b loses its hairpin. */
	cr_assert_eq(stage(&st, b, eb, 2), 0);
	cr_expect_eq(st.change.n_adds + st.change.n_dels, 0, "h stays: a holds it");
	nft_state_commit(&st);
	cr_expect_eq(nft_state_hairpin_refs(&st, &h), 1);

	/* Only a change against a cleared state. */
	cr_assert_eq(nft_state_stage_removal(&st, &a), 0);
	cr_expect_eq(nft_state_rebase_all_present(&st), -EINVAL);
	nft_state_discard(&st);
}

/* Copies staged against an empty state go to the pool (one block for
 * thousands of frontends), later ones to arrays of their own; replacing,
 * removing and clearing mix both (ASan checks what is freed). */
Test(nft_state, staged_copies_pooled_then_malloced)
{
	enum { N = 3000 };
	struct nft_elem e[3];
	struct nft_state_key k;
	char vip[32];

	for (int i = 0; i < N; i++) {
		snprintf(vip, sizeof(vip), "10.96.%d.%d", i / 250, i % 250 + 1);
		k = key(vip, INET_PROTO_TCP, 80);
		e[0] = vmap(vip, INET_PROTO_TCP, 80, 1);
		e[1] = slot(vip, INET_PROTO_TCP, 80, 0, "10.0.0.1", 80);
		e[2] = hairpin("10.0.0.1");
		qsort(e, 3, sizeof(e[0]), elem_cmp);
		cr_assert_eq(nft_state_stage_copy(&st, &k, e, 3), 0);
		memset(e, 0, sizeof(e)); /* the state holds its own copy */
	}
	cr_assert_eq(st.change.n_adds, 2 * N + 1);
	cr_assert_not_null(st.chunks, "staged against nothing: pooled");
	nft_state_commit(&st);
	cr_expect_eq(nft_state_frontends(&st), N);
	k = key("10.96.4.8", INET_PROTO_TCP, 80);
	cr_expect_eq(committed(&st, k), 3);
	{
		struct nft_elem want = slot("10.96.4.8", INET_PROTO_TCP, 80, 0, "10.0.0.1", 80);

		cr_expect(committed_has(&st, k, &want));
	}
	/* A change: its own array, the pooled one left in the pool. */
	e[0] = vmap("10.96.4.8", INET_PROTO_TCP, 80, 1);
	e[1] = slot("10.96.4.8", INET_PROTO_TCP, 80, 0, "10.0.0.2", 80);
	qsort(e, 2, sizeof(e[0]), elem_cmp);
	cr_assert_eq(nft_state_stage_copy(&st, &k, e, 2), 0);
	cr_expect_eq(st.change.n_adds, 1);
	cr_expect_eq(st.change.n_dels, 1, "the old slot; the hairpin stays, others hold it");
	nft_state_commit(&st);
	cr_expect_eq(committed(&st, k), 2);
	/* Replaced again, then removed, then a discarded change. */
	e[1] = slot("10.96.4.8", INET_PROTO_TCP, 80, 0, "10.0.0.3", 80);
	qsort(e, 2, sizeof(e[0]), elem_cmp);
	cr_assert_eq(nft_state_stage_copy(&st, &k, e, 2), 0);
	nft_state_commit(&st);
	cr_assert_eq(nft_state_stage_removal(&st, &k), 0);
	nft_state_commit(&st);
	cr_expect_eq(nft_state_frontends(&st), N - 1);
	k = key("10.96.0.1", INET_PROTO_TCP, 80);
	cr_assert_eq(nft_state_stage_copy(&st, &k, e, 2), 0);
	nft_state_discard(&st);
	nft_state_clear(&st);
	cr_expect_null(st.chunks, "the pool goes with the state");
}

/* After a big change the working arrays go; the state and later changes
 * are as before. While a change is staged, trimming does nothing. */
Test(nft_state, trim_after_a_big_change)
{
	enum { N = 70000 };
	struct nft_elem *e = malloc(N * sizeof(*e));
	struct nft_state_key k = key("10.96.0.1", INET_PROTO_TCP, 80);

	cr_assert_not_null(e);
	e[0] = vmap("10.96.0.1", INET_PROTO_TCP, 80, 1);
	for (int i = 1; i < N; i++)
		e[i] = slot("10.96.0.1", INET_PROTO_TCP, 80, (uint32_t)i, "10.0.0.1", 80);
	qsort(e, N, sizeof(e[0]), elem_cmp);
	cr_assert_eq(nft_state_stage_copy(&st, &k, e, N), 0);
	nft_state_trim(&st);
	cr_expect_eq(st.change.n_adds, N, "a staged change is left alone");
	nft_state_commit(&st);
	cr_expect_gt(st.change.cap_adds, 65536);
	nft_state_trim(&st);
	cr_expect_eq(st.change.cap_adds, 0);
	cr_expect_eq(committed(&st, k), N);
	/* A small change after it. */
	cr_assert_eq(nft_state_stage_copy(&st, &k, e, N - 1), 0);
	cr_expect_eq(st.change.n_dels, 1);
	cr_expect_eq(st.change.n_adds, 0);
	nft_state_commit(&st);
	cr_expect_eq(committed(&st, k), N - 1);
	free(e);
}

Test(nft_state, clear_forgets_everything)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_TCP, 80);
	struct nft_elem h = hairpin("10.0.0.1");
	struct nft_elem ea[] = { vmap("10.96.0.1", INET_PROTO_TCP, 80, 1), h };

	cr_assert_eq(stage(&st, a, ea, 2), 0);
	nft_state_commit(&st);
	cr_assert_eq(stage(&st, a, ea, 1), 0); /* staged, then cleared */
	nft_state_clear(&st);
	cr_expect_eq(nft_state_frontends(&st), 0);
	cr_expect_eq(nft_state_hairpin_refs(&st, &h), 0);
	cr_expect_eq(st.change.n_adds + st.change.n_dels, 0);
	/* Staged against nothing: everything is added again. */
	cr_assert_eq(stage(&st, a, ea, 2), 0);
	cr_expect_eq(st.change.n_adds, 2);
	nft_state_commit(&st);
	cr_expect_eq(nft_state_hairpin_refs(&st, &h), 1);
}

/* The reference tables key hairpin pairs and cluster IPs by address: the
 * two sets of one address count apart, per family, and a shared element
 * of another shape (a pair of two addresses) has its own table. */
Test(nft_state, shared_elements_of_one_address_count_apart)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_TCP, 80), b = key("fd00::1", INET_PROTO_TCP, 80);
	struct nft_elem odd = hairpin("10.96.0.1");
	struct nft_elem ea[] = { cluster_ip("10.96.0.1"), hairpin("10.96.0.1"), hairpin("fd00::1"), odd };
	struct nft_elem eb[] = { cluster_ip("fd00::1"), hairpin("fd00::1") };
	struct inet_addr other = addr("10.0.0.9");
	size_t off = 4;

	nft_elem_key_addr(&ea[3], &off, &other); /* 10.96.0.1 . 10.0.0.9 */
	odd = ea[3];
	cr_assert_eq(stage(&st, a, ea, 4), 0);
	cr_assert_eq(stage(&st, b, eb, 2), 0);
	cr_expect_eq(st.change.n_adds, 5, "fd00::1's hairpin once");
	nft_state_commit(&st);
	cr_expect_eq(nft_state_hairpin_refs(&st, &ea[0]), 1);
	cr_expect_eq(nft_state_hairpin_refs(&st, &ea[1]), 1);
	cr_expect_eq(nft_state_hairpin_refs(&st, &ea[2]), 2);
	cr_expect_eq(nft_state_hairpin_refs(&st, &odd), 1);
	cr_expect_eq(nft_state_hairpin_refs(&st, &eb[0]), 1);
	/* a drops its cluster IP and its odd pair; b goes. */
	cr_assert_eq(stage(&st, a, &ea[1], 2), 0);
	cr_assert_eq(nft_state_stage_removal(&st, &b), 0);
	cr_expect_eq(st.change.n_dels, 3, "10.96.0.1, the odd pair, fd00::1: %zu", st.change.n_dels);
	cr_expect(has(st.change.dels, st.change.n_dels, &ea[0]));
	cr_expect(has(st.change.dels, st.change.n_dels, &odd));
	cr_expect(has(st.change.dels, st.change.n_dels, &eb[0]));
	nft_state_commit(&st);
	cr_expect_eq(nft_state_hairpin_refs(&st, &ea[0]), 0);
	cr_expect_eq(nft_state_hairpin_refs(&st, &ea[1]), 1, "the hairpin of the same address stays");
	cr_expect_eq(nft_state_hairpin_refs(&st, &ea[2]), 1);
	cr_expect_eq(nft_state_hairpin_refs(&st, &odd), 0);
}

/* Thousands of hairpins grow the tables while staging; the trim shrinks
 * them to their contents; every count survives both, and removing the
 * frontends deletes every pair once. */
Test(nft_state, hairpin_tables_grow_and_shrink)
{
	enum { N = 3000 };
	char vip[32], ep[32];
	struct nft_elem e[3];
	size_t cap;

	for (int i = 0; i < N; i++) {
		snprintf(vip, sizeof(vip), "10.96.%d.%d", i / 250, i % 250 + 1);
		snprintf(ep, sizeof(ep), "10.1.%d.%d", i / 250, i % 250 + 1);
		e[0] = vmap(vip, INET_PROTO_TCP, 80, 1);
		e[1] = slot(vip, INET_PROTO_TCP, 80, 0, ep, 80);
		e[2] = hairpin(ep);
		cr_assert_eq(stage(&st, key(vip, INET_PROTO_TCP, 80), e, 3), 0);
		/* Every other one also on port 81: two references. */
		if (i % 2 == 0) {
			e[0] = vmap(vip, INET_PROTO_TCP, 81, 1);
			e[1] = slot(vip, INET_PROTO_TCP, 81, 0, ep, 80);
			cr_assert_eq(stage(&st, key(vip, INET_PROTO_TCP, 81), e, 3), 0);
		}
	}
	nft_state_commit(&st);
	cap = st.refs[0].cap;
	cr_expect_geq(cap, N);
	nft_state_trim(&st);
	cr_expect_leq(st.refs[0].cap, cap, "not grown by the trim");
	cr_expect_lt(st.refs[0].cap, 2 * N);
	cr_expect_eq(st.refs[0].n, N);
	for (int i = 0; i < N; i++) {
		struct nft_elem h;

		snprintf(ep, sizeof(ep), "10.1.%d.%d", i / 250, i % 250 + 1);
		h = hairpin(ep);
		cr_assert_eq(nft_state_hairpin_refs(&st, &h), i % 2 == 0 ? 2u : 1u, "pair %d", i);
	}
	cr_assert_eq(nft_state_stage_unstaged_removals(&st), N + N / 2);
	cr_expect_eq(st.change.n_dels, 3 * N + N / 2 * 2, "slots, vmaps, and each pair once");
	nft_state_commit(&st);
	cr_expect_eq(st.refs[0].n, 0);
	cr_expect_eq(nft_state_frontends(&st), 0);
}

/* What is committed is what was staged, element for element, after the
 * packing: a frontend of every kind of element, then a change to it. */
Test(nft_state, committed_elements_are_the_staged_ones)
{
	struct nft_state_key k = key("fd00::96:1", INET_PROTO_UDP, 53);
	struct nft_elem e[40];
	size_t n = 0, got;
	const struct nft_elem *v;
	char ep[64];

	e[n] = vmap("fd00::96:1", INET_PROTO_UDP, 53, 1024);
	e[n].aff_timeout = 10800;
	e[n++].aff_mode = NFT_AFF_LOCAL;
	e[n++] = cluster_ip("fd00::96:1");
	for (uint32_t i = 0; i < 30; i++) {
		snprintf(ep, sizeof(ep), "fd00::1:%x", i % 7 + 1);
		e[n++] = slot("fd00::96:1", INET_PROTO_UDP, 53, i * 37 + (i % 2 ? 0x10000 : 0), ep, (uint16_t)(53 + i));
	}
	e[n++] = hairpin("fd00::1:1");
	e[n++] = np_slot(INET_PROTO_UDP, 53, 5, "fd00::1:2", 53);
	qsort(e, n, sizeof(e[0]), elem_cmp);
	cr_assert_eq(stage(&st, k, e, n), 0);
	nft_state_commit(&st);
	v = nft_state_elems(&st, &k, &got);
	cr_assert_eq(got, n);
	for (size_t i = 0; i < n; i++)
		cr_expect_eq(nft_elem_cmp(&v[i], &e[i], NULL), 0, "element %zu", i);
	/* One endpoint changes: one slot out, one in, the rest kept. */
	for (size_t i = 0; i < n; i++)
		if (e[i].set == NFT_SET_SLOTS) {
			e[i].data[15] ^= 0x40;
			break;
		}
	cr_assert_eq(stage(&st, k, e, n), 0);
	cr_expect_eq(st.change.n_dels, 1);
	cr_expect_eq(st.change.n_adds, 1);
	nft_state_commit(&st);
	v = nft_state_elems(&st, &k, &got);
	cr_assert_eq(got, n);
	for (size_t i = 0; i < n; i++)
		cr_expect_eq(nft_elem_cmp(&v[i], &e[i], NULL), 0, "element %zu", i);
}

/* Deferred staging queues the shared elements' first references only;
 * completed, its adds are those of eager staging, and so is the state it
 * commits. Rebased on the kernel without completing: completed first.
 * Against a state with frontends: refused. */
Test(nft_state, deferred_staging_completes_to_the_eager_change)
{
	enum { N = 50 };
	struct nft_state eager;
	struct nft_elem e[4];
	char vip[32], ep[32];
	size_t n_shared = 0;

	nft_state_init(&eager);
	for (int i = 0; i < N; i++) {
		struct nft_state_key k;

		snprintf(vip, sizeof(vip), "10.96.0.%d", i + 1);
		snprintf(ep, sizeof(ep), "10.1.0.%d", i % 10 + 1); /* pairs shared by 5 */
		k = key(vip, INET_PROTO_TCP, 80);
		e[0] = vmap(vip, INET_PROTO_TCP, 80, 1);
		e[1] = slot(vip, INET_PROTO_TCP, 80, 0, ep, 80);
		e[2] = hairpin(ep);
		e[3] = cluster_ip(vip);
		qsort(e, 4, sizeof(e[0]), elem_cmp);
		cr_assert_eq(nft_state_stage_deferred(&st, &k, e, 4), 0);
		cr_assert_eq(nft_state_stage_copy(&eager, &k, e, 4), 0);
	}
	n_shared = st.change.n_adds;
	cr_expect_eq(n_shared, 10 + N, "10 pairs, %d cluster IPs", N);
	for (size_t i = 0; i < st.change.n_adds; i++)
		cr_expect(nft_state_is_shared_set(st.change.adds[i]->set));
	{
		size_t a[2], b[2];

		nft_state_slots_need(&st, a);
		nft_state_slots_need(&eager, b);
		cr_expect_eq(a[0], b[0], "slots counted while deferred");
	}
	cr_assert_eq(nft_state_complete_adds(&st), 0);
	cr_assert_eq(nft_state_complete_adds(&st), 0, "a second call adds nothing");
	cr_assert_eq(st.change.n_adds, eager.change.n_adds);
	nft_state_sort_adds(&st);
	nft_state_sort_adds(&eager);
	for (size_t i = 0; i < st.change.n_adds; i++)
		cr_expect_eq(nft_elem_cmp(st.change.adds[i], eager.change.adds[i], NULL), 0, "add %zu", i);
	nft_state_commit(&st);
	nft_state_commit(&eager);
	cr_expect_eq(nft_state_frontends(&st), N);
	for (int i = 0; i < N; i++) {
		size_t n1, n2;
		const struct nft_elem *v1, *v2;
		struct nft_elem copy[4];

		snprintf(vip, sizeof(vip), "10.96.0.%d", i + 1);
		{
			struct nft_state_key k = key(vip, INET_PROTO_TCP, 80);

			v1 = nft_state_elems(&st, &k, &n1);
			cr_assert_eq(n1, 4);
			memcpy(copy, v1, sizeof(copy));
			v2 = nft_state_elems(&eager, &k, &n2);
			cr_assert_eq(n2, 4);
			for (size_t j = 0; j < 4; j++)
				cr_expect_eq(nft_elem_cmp(&copy[j], &v2[j], NULL), 0);
		}
	}
	{
		struct nft_elem h = hairpin("10.1.0.3");

		cr_expect_eq(nft_state_hairpin_refs(&st, &h), 5);
	}
	/* Now the state has frontends: deferred staging is refused. */
	cr_expect_eq(nft_state_stage_deferred(&st, &(struct nft_state_key){ 0 }, e, 4), -EINVAL);
	nft_state_discard(&st);
	/* Rebase without completing: the deferred adds take part. */
	nft_state_clear(&st);
	{
		struct nft_state_key k = key("10.96.0.1", INET_PROTO_TCP, 80);
		struct nft_elem kernel[1];

		e[0] = vmap("10.96.0.1", INET_PROTO_TCP, 80, 1);
		e[1] = slot("10.96.0.1", INET_PROTO_TCP, 80, 0, "10.1.0.1", 80);
		e[2] = hairpin("10.1.0.1");
		qsort(e, 3, sizeof(e[0]), elem_cmp);
		cr_assert_eq(nft_state_stage_deferred(&st, &k, e, 3), 0);
		cr_expect_eq(st.change.n_adds, 1);
		kernel[0] = vmap("10.96.0.1", INET_PROTO_TCP, 80, 1);
		cr_assert_eq(nft_state_rebase(&st, kernel, 1), 0);
		cr_expect_eq(st.change.n_adds, 2, "the slot and the pair; the kernel has the vmap");
		cr_expect_eq(st.change.n_dels, 0);
		nft_state_commit(&st);
		cr_expect_eq(committed(&st, k), 3);
	}
	nft_state_done(&eager);
}

/* A rebase with adds known present: those stay out of change.adds though
 * the kernel list lacks them; the others are diffed as ever. Present
 * flags need the complete, sorted adds they were set against. */
Test(nft_state, rebase_with_adds_known_present)
{
	struct nft_state_key a = key("10.96.0.1", INET_PROTO_TCP, 80);
	struct nft_elem e[] = {
		vmap("10.96.0.1", INET_PROTO_TCP, 80, 2),
		slot("10.96.0.1", INET_PROTO_TCP, 80, 0, "10.0.0.1", 8080),
		slot("10.96.0.1", INET_PROTO_TCP, 80, 1, "10.0.0.2", 8080),
	};
	struct nft_elem kernel[2] = { vmap("10.96.0.1", INET_PROTO_TCP, 80, 3), cluster_ip("10.96.0.9") };
	uint8_t present[3] = { 0 };
	struct nft_elem want = e[2];

	qsort(kernel, 2, sizeof(kernel[0]), elem_cmp);
	cr_assert_eq(nft_state_stage_deferred(&st, &a, e, 3), 0);
	cr_expect_eq(nft_state_rebase_present(&st, kernel, 2, present), -EINVAL, "deferred adds");
	cr_assert_eq(nft_state_complete_adds(&st), 0);
	cr_expect_eq(nft_state_rebase_present(&st, kernel, 2, present), -EINVAL, "unsorted adds");
	nft_state_sort_adds(&st);
	for (size_t i = 0; i < st.change.n_adds; i++)
		if (nft_elem_cmp(st.change.adds[i], &e[1], NULL) == 0)
			present[i] = 1; /* slot 0: vouched for */
	cr_assert_eq(nft_state_rebase_present(&st, kernel, 2, present), 0);
	/* vmap (other verdict) and slot 1 added; slot 0 not; the kernel's
	 * vmap and stray cluster IP deleted. */
	cr_expect_eq(st.change.n_adds, 2);
	cr_expect(has(st.change.adds, st.change.n_adds, &e[0]));
	cr_expect(has(st.change.adds, st.change.n_adds, &want));
	cr_expect_not(has(st.change.adds, st.change.n_adds, &e[1]));
	cr_expect_eq(st.change.n_dels, 2);
	nft_state_commit(&st);
	cr_expect_eq(committed(&st, a), 3, "the commit installs the whole plan");
}
