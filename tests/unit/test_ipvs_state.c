/* The IPVS backend's translation (plan frontend -> items), its state
 * (committed items, changes, shared counts, draining) and what `ferry plan
 * --backend ipvs` prints. No root, no kernel. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipvs.h"
#include "ipvs_items.h"
#include "ipvs_state.h"

static struct inet_addr addr(const char *s)
{
	struct inet_addr a;

	cr_assert_eq(inet_addr_parse(s, &a), 0, "%s", s);
	return a;
}

static struct plan_endpoint eps2[2];
static struct plan_epset web = { .key = "default/web:http/TCP", .ns = "default", .svc_name = "web",
				 .proto = INET_PROTO_TCP };

static void fixture(void)
{
	eps2[0] = (struct plan_endpoint){ .addr = addr("10.1.0.1"), .port = 8080, .local = true };
	eps2[1] = (struct plan_endpoint){ .addr = addr("10.1.0.2"), .port = 8080 };
	web.endpoints = eps2;
	web.n_endpoints = 2;
	web.affinity = false;
	web.balance = BALANCE_ROUND_ROBIN;
}

/* A cluster IP vip:port/TCP frontend of web, masqueraded unless local:
 * the frontend most tests start from. */
static struct plan_frontend web_fe(const char *vip, uint16_t port)
{
	return (struct plan_frontend){ .kind = FRONTEND_CLUSTER_IP, .addr = addr(vip), .proto = INET_PROTO_TCP,
				       .port = port, .epset = &web, .masquerade = PLAN_MASQ_UNLESS_LOCAL };
}

/* Items of fe as text lines, sorted. */
static char *items_text(const struct plan_frontend *fe, const struct ipvs_items_cfg *cfg)
{
	struct ipvs_item_vec v = { 0 };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert(f);
	cr_assert_eq(ipvs_frontend_items(fe, cfg, &v), 0);
	ipvs_item_vec_sort(&v);
	for (size_t i = 0; i < v.n; i++) {
		ipvs_item_print(f, &v.v[i]);
		fputc('\n', f);
	}
	fclose(f);
	ipvs_item_vec_done(&v);
	return buf;
}

Test(ipvs_items, cluster_ip, .init = fixture)
{
	struct plan_frontend fe = web_fe("10.96.0.10", 80);
	struct ipvs_items_cfg cfg = { .scheduler = "wlc" };
	char *t = items_text(&fe, &cfg);

	cr_expect_str_eq(t, "address 10.96.0.10/32\n"
			    "service TCP 10.96.0.10:80 wlc\n"
			    "real-server TCP 10.96.0.10:80 -> 10.1.0.1:8080 masq weight 1\n"
			    "real-server TCP 10.96.0.10:80 -> 10.1.0.2:8080 masq weight 1\n"
			    "member FERRY-SERVICES 10.96.0.10,tcp:80\n"
			    "member FERRY-CLUSTER-IP 10.96.0.10,tcp:80\n"
			    "member FERRY-LOOPBACK 10.1.0.1,tcp:8080,10.1.0.1\n");
	free(t);
}

Test(ipvs_items, wildcard_node_port_expands_over_usable_node_addresses, .init = fixture)
{
	struct inet_addr node[] = { addr("192.0.2.10"), addr("127.0.0.1"), addr("fe80::1"), addr("2001:db8::10"),
				    addr("198.51.100.3") };
	struct plan_frontend fe = { .kind = FRONTEND_NODE_PORT, .addr = inet_addr_any(AF_INET),
				    .proto = INET_PROTO_UDP, .port = 30053, .epset = &web,
				    .masquerade = PLAN_MASQ_ALWAYS };
	struct ipvs_items_cfg cfg = { .scheduler = "rr", .node_addrs = node, .n_node_addrs = 5 };
	struct ipvs_item_vec v = { 0 };
	size_t services = 0, addrs = 0, masq = 0;

	cr_assert_eq(ipvs_frontend_items(&fe, &cfg, &v), 0);
	for (size_t i = 0; i < v.n; i++) {
		services += v.v[i].kind == IPVS_ITEM_SERVICE;
		addrs += v.v[i].kind == IPVS_ITEM_ADDR;
		masq += v.v[i].kind == IPVS_ITEM_MEMBER && v.v[i].set == IPVS_SET_MASQ;
		if (v.v[i].kind == IPVS_ITEM_SERVICE)
			cr_expect(inet_addr_cmp(&v.v[i].addr, &node[0]) == 0 ||
				  inet_addr_cmp(&v.v[i].addr, &node[4]) == 0);
	}
	cr_expect_eq(services, 2, "IPv4, not loopback: 192.0.2.10 and 198.51.100.3");
	cr_expect_eq(addrs, 0, "node addresses are the node's, not the dummy's");
	cr_expect_eq(masq, 2);
	ipvs_item_vec_done(&v);
}

Test(ipvs_items, empty_sets_refuse_or_drop_and_policy_options, .init = fixture)
{
	struct plan_epset empty = { .key = "default/e:x/TCP", .proto = INET_PROTO_TCP };
	struct plan_frontend fe = { .kind = FRONTEND_LOAD_BALANCER, .addr = addr("203.0.113.5"),
				    .proto = INET_PROTO_TCP, .port = 443, .epset = &empty,
				    .when_empty = EMPTY_DROP, .masquerade = PLAN_MASQ_NEVER };
	struct inet_prefix ranges[2];
	struct ipvs_items_cfg cfg = { .scheduler = "rr" };
	char *t;

	cr_assert_eq(inet_prefix_parse("198.51.100.0/24", &ranges[0]), 0);
	cr_assert_eq(inet_prefix_parse("2001:db8::/32", &ranges[1]), 0);
	fe.source_ranges = ranges;
	fe.n_source_ranges = 2;
	t = items_text(&fe, &cfg);
	cr_expect_str_eq(t, "address 203.0.113.5/32\n"
			    "service TCP 203.0.113.5:443 rr\n"
			    "member FERRY-SERVICES 203.0.113.5,tcp:443\n"
			    "member FERRY-EMPTY-DROP 203.0.113.5,tcp:443\n"
			    "member FERRY-LB-FIREWALL 203.0.113.5,tcp:443\n"
			    "member FERRY-LB-SOURCES 203.0.113.5,tcp:443,198.51.100.0/24\n");
	free(t);
	fe.when_empty = EMPTY_REJECT;
	fe.n_source_ranges = 0;
	web.affinity = true;
	web.affinity_timeout_s = 600;
	web.balance = BALANCE_MAGLEV;
	empty.affinity = true;
	empty.affinity_timeout_s = 600;
	empty.balance = BALANCE_MAGLEV;
	t = items_text(&fe, &cfg);
	cr_expect_str_eq(t, "address 203.0.113.5/32\n"
			    "service TCP 203.0.113.5:443 mh persistent 600\n"
			    "member FERRY-SERVICES 203.0.113.5,tcp:443\n"
			    "member FERRY-EMPTY-REJECT 203.0.113.5,tcp:443\n");
	free(t);
}

Test(ipvs_items, scheduler_mapping)
{
	struct plan_epset e = { .balance = BALANCE_LEAST_CONN };
	bool unmapped;

	cr_expect_str_eq(ipvs_scheduler_for(&e, "rr", &unmapped), "lc");
	cr_expect(!unmapped);
	e.balance = BALANCE_MAGLEV;
	cr_expect_str_eq(ipvs_scheduler_for(&e, "rr", &unmapped), "mh");
	e.balance = BALANCE_ROUND_ROBIN;
	cr_expect_str_eq(ipvs_scheduler_for(&e, "sed", &unmapped), "sed", "the annotation's default follows --ipvs-scheduler");
	cr_expect(!unmapped);
	e.balance = BALANCE_RANDOM_TWO;
	cr_expect_str_eq(ipvs_scheduler_for(&e, "rr", &unmapped), "rr");
	cr_expect(unmapped, "an algorithm IPVS cannot do is reported, for a warning");
}

Test(ipvs_items, set_names)
{
	enum ipvs_set_id s;
	int fam;

	cr_expect_str_eq(ipvs_set_name(IPVS_SET_LOOPBACK, AF_INET6), "FERRY6-LOOPBACK");
	cr_expect_str_eq(ipvs_set_type(IPVS_SET_SOURCES), "hash:ip,port,net");
	cr_assert_eq(ipvs_set_parse_name("FERRY6-EMPTY-DROP", &s, &fam), 0);
	cr_expect_eq(s, IPVS_SET_EMPTY_DROP);
	cr_expect_eq(fam, AF_INET6);
	cr_expect_eq(ipvs_set_parse_name("KUBE-CLUSTER-IP", &s, &fam), -ENOENT);
	for (int i = 0; i < IPVS_SET_COUNT; i++)
		cr_expect_leq(strlen(ipvs_set_name((enum ipvs_set_id)i, AF_INET6)), 31);
}

/* The service-range guards: a member per cluster IP, one per range with
 * its host bits cleared (the kernel keeps the network address, and what
 * is read back must compare equal), a /0 as its two halves. */
Test(ipvs_items, guard_members)
{
	struct inet_addr cips[2] = { addr("10.96.0.10"), addr("fd00:96::10") };
	struct inet_prefix cidrs[3];
	struct plan plan = { .cluster_ips = cips, .n_cluster_ips = 2, .service_cidrs = cidrs, .n_service_cidrs = 3 };
	struct ipvs_item_vec v = { 0 };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cidrs[0] = (struct inet_prefix){ .addr = addr("10.96.7.7"), .len = 16 };
	cidrs[1] = (struct inet_prefix){ .addr = addr("fd00:96::"), .len = 112 };
	cidrs[2] = (struct inet_prefix){ .addr = addr("::"), .len = 0 };
	cr_assert_eq(ipvs_guard_items(&plan, &v), 0);
	ipvs_item_vec_sort(&v);
	for (size_t i = 0; i < v.n; i++) {
		ipvs_item_print(f, &v.v[i]);
		fputc('\n', f);
	}
	fclose(f);
	cr_expect_str_eq(buf, "member FERRY-CLUSTER-ADDRS 10.96.0.10\n"
			      "member FERRY6-CLUSTER-ADDRS fd00:96::10\n"
			      "member FERRY-SERVICE-CIDRS 10.96.0.0/16\n"
			      "member FERRY6-SERVICE-CIDRS ::/1\n"
			      "member FERRY6-SERVICE-CIDRS 8000::/1\n"
			      "member FERRY6-SERVICE-CIDRS fd00:96::/112\n");
	cr_expect_str_eq(ipvs_set_type(IPVS_SET_CLUSTER_ADDRS), "hash:ip");
	cr_expect_str_eq(ipvs_set_type(IPVS_SET_SERVICE_CIDRS), "hash:net");
	free(buf);
	ipvs_item_vec_done(&v);
}

/* ---- state ---- */

static struct ipvs_items_cfg rr_cfg = { .scheduler = "rr" };

static void stage_fe(struct ipvs_state *st, const struct plan_frontend *fe)
{
	struct ipvs_item_vec v = { 0 };
	struct ipvs_fe_key k;

	cr_assert_eq(ipvs_frontend_items(fe, &rr_cfg, &v), 0);
	ipvs_item_vec_sort(&v);
	ipvs_fe_key_of(fe, &k);
	cr_assert_eq(ipvs_state_stage(st, &k, &v), 0);
}

static void unstage_fe(struct ipvs_state *st, const struct plan_frontend *fe)
{
	struct ipvs_fe_key k;

	ipvs_fe_key_of(fe, &k);
	cr_assert_eq(ipvs_state_stage_removal(st, &k), 0);
}

/* Compute the staged change and commit it, for the steps whose change a
 * test does not look at. */
static void change_and_commit(struct ipvs_state *st)
{
	struct ipvs_change c;

	cr_assert_eq(ipvs_state_change(st, &c), 0);
	ipvs_state_commit(st);
}

static size_t count_kind(const struct ipvs_item *const *v, size_t n, enum ipvs_item_kind kind)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += v[i]->kind == kind;
	return c;
}

Test(ipvs_state, shared_address_added_once_deleted_with_the_last_user, .init = fixture)
{
	struct ipvs_state *st = ipvs_state_new();
	struct plan_frontend http = web_fe("10.96.0.10", 80), https = web_fe("10.96.0.10", 443);
	struct ipvs_change c;

	stage_fe(st, &http);
	stage_fe(st, &https);
	cr_assert_eq(ipvs_state_change(st, &c), 0);
	cr_expect_eq(count_kind(c.adds, c.n_adds, IPVS_ITEM_ADDR), 1, "one VIP for two ports");
	cr_expect_eq(count_kind(c.adds, c.n_adds, IPVS_ITEM_SERVICE), 2);
	cr_expect_eq(count_kind(c.adds, c.n_adds, IPVS_ITEM_DEST), 4);
	cr_expect_eq(c.adds[0]->kind, IPVS_ITEM_ADDR, "the address before the services");
	cr_expect_eq(c.n_dels + c.n_edits, 0);
	ipvs_state_commit(st);
	cr_expect_eq(ipvs_state_frontends(st), 2);

	/* An unchanged restage sends nothing. */
	stage_fe(st, &http);
	cr_assert_eq(ipvs_state_change(st, &c), 0);
	cr_expect_eq(c.n_adds + c.n_dels + c.n_edits, 0);
	ipvs_state_commit(st);

	unstage_fe(st, &https);
	cr_assert_eq(ipvs_state_change(st, &c), 0);
	cr_expect_eq(count_kind(c.dels, c.n_dels, IPVS_ITEM_ADDR), 0, "still used by :80");
	cr_expect_eq(count_kind(c.dels, c.n_dels, IPVS_ITEM_SERVICE), 1);
	cr_expect_eq(c.n_drains, 0, "real servers go with their service");
	ipvs_state_commit(st);

	unstage_fe(st, &http);
	cr_assert_eq(ipvs_state_change(st, &c), 0);
	cr_expect_eq(count_kind(c.dels, c.n_dels, IPVS_ITEM_ADDR), 1);
	cr_expect_eq(c.dels[c.n_dels - 1]->kind, IPVS_ITEM_ADDR, "the address after its services");
	ipvs_state_commit(st);
	cr_expect_eq(ipvs_state_frontends(st), 0);
	cr_expect_eq(ipvs_state_items(st), 0);
	ipvs_state_free(st);
}

Test(ipvs_state, removed_tcp_endpoint_drains_udp_goes, .init = fixture)
{
	struct ipvs_state *st = ipvs_state_new();
	struct plan_frontend fe = web_fe("10.96.0.10", 80);
	struct ipvs_change c;

	stage_fe(st, &fe);
	change_and_commit(st);

	web.n_endpoints = 1; /* 10.1.0.2 goes */
	stage_fe(st, &fe);
	cr_assert_eq(ipvs_state_change(st, &c), 0);
	cr_expect_eq(c.n_dels, 0, "a TCP real server is not deleted at once");
	cr_assert_eq(c.n_drains, 1);
	cr_expect_eq(c.drains[0]->weight, 0);
	cr_expect_eq(c.n_edits, 1, "it is edited to weight 0");
	cr_expect_eq(c.edits[0]->weight, 0);
	cr_expect_eq(inet_addr_cmp(&c.edits[0]->addr2, &eps2[1].addr), 0);
	/* Discarded: nothing moves. */
	ipvs_state_discard(st);
	cr_expect_eq(ipvs_state_drain_count(st), 0);
	stage_fe(st, &fe);
	cr_assert_eq(ipvs_state_change(st, &c), 0);
	cr_expect_eq(c.n_drains, 1, "the same change again after a discard");
	ipvs_state_commit(st);
	cr_assert_eq(ipvs_state_drain_count(st), 1);
	cr_expect(ipvs_state_draining(st, ipvs_state_drain_at(st, 0)));

	/* It comes back: an add, and no longer draining after the commit. */
	web.n_endpoints = 2;
	stage_fe(st, &fe);
	cr_assert_eq(ipvs_state_change(st, &c), 0);
	cr_expect_eq(count_kind(c.adds, c.n_adds, IPVS_ITEM_DEST), 1);
	ipvs_state_commit(st);
	cr_expect_eq(ipvs_state_drain_count(st), 0);

	/* UDP real servers go at once. */
	fe.proto = INET_PROTO_UDP;
	web.proto = INET_PROTO_UDP;
	stage_fe(st, &fe);
	change_and_commit(st);
	web.n_endpoints = 1;
	stage_fe(st, &fe);
	cr_assert_eq(ipvs_state_change(st, &c), 0);
	cr_expect_eq(c.n_drains, 0);
	cr_expect_eq(count_kind(c.dels, c.n_dels, IPVS_ITEM_DEST), 1);
	ipvs_state_commit(st);
	ipvs_state_free(st);
}

Test(ipvs_state, full_sync_removes_unstaged_frontends, .init = fixture)
{
	struct ipvs_state *st = ipvs_state_new();
	struct plan_frontend a = web_fe("10.96.0.10", 80), b = web_fe("10.96.0.11", 80);
	struct ipvs_change c;

	stage_fe(st, &a);
	stage_fe(st, &b);
	change_and_commit(st);
	stage_fe(st, &a);
	cr_assert_eq(ipvs_state_stage_unstaged_removals(st), 0);
	cr_assert_eq(ipvs_state_change(st, &c), 0);
	cr_expect_eq(count_kind(c.dels, c.n_dels, IPVS_ITEM_SERVICE), 1);
	cr_expect_eq(count_kind(c.dels, c.n_dels, IPVS_ITEM_ADDR), 1);
	ipvs_state_commit(st);
	cr_expect_eq(ipvs_state_frontends(st), 1);
	ipvs_state_free(st);
}

Test(ipvs_state, adopt_converges_from_the_kernel, .init = fixture)
{
	struct ipvs_state *st = ipvs_state_new();
	struct plan_frontend fe = web_fe("10.96.0.10", 80);
	struct ipvs_item_vec have = { 0 };
	struct ipvs_item *stray;
	struct ipvs_change c;
	struct ipvs_item_vec all = { 0 };

	/* The kernel: what the plan wants, but one real server at weight 0
	 * (draining under the previous ferry), a stray member and a stray
	 * service of an earlier plan. */
	cr_assert_eq(ipvs_frontend_items(&fe, &rr_cfg, &have), 0);
	for (size_t i = 0; i < have.n; i++)
		if (have.v[i].kind == IPVS_ITEM_DEST && inet_addr_cmp(&have.v[i].addr2, &eps2[0].addr) == 0)
			have.v[i].weight = 0;
	stray = ipvs_item_vec_push(&have);
	*stray = (struct ipvs_item){ .kind = IPVS_ITEM_SERVICE, .addr = addr("10.96.0.99"), .port = 53,
				     .proto = INET_PROTO_UDP };
	snprintf(stray->sched, sizeof(stray->sched), "rr");
	stray = ipvs_item_vec_push(&have);
	*stray = (struct ipvs_item){ .kind = IPVS_ITEM_MEMBER, .set = IPVS_SET_MASQ, .addr = addr("10.96.0.99"),
				     .port = 53, .proto = INET_PROTO_UDP };
	ipvs_item_vec_sort(&have);

	stage_fe(st, &fe);
	cr_assert_eq(ipvs_state_change_from(st, have.v, have.n, &c), 0);
	cr_expect_eq(c.n_adds, 0, "everything the plan wants is there");
	cr_expect_eq(c.n_dels, 2, "the stray service and member");
	cr_assert_eq(c.n_edits, 1, "the weight-0 real server back to 1");
	cr_expect_eq(c.edits[0]->weight, 1);
	ipvs_state_commit(st);
	cr_expect_eq(ipvs_state_frontends(st), 1);
	cr_assert_eq(ipvs_state_all_items(st, &all), 0);
	cr_expect_eq(all.n, ipvs_state_items(st));

	/* After adopting, the shared items are counted: removing the frontend
	 * deletes its address and hairpin pair. */
	unstage_fe(st, &fe);
	cr_assert_eq(ipvs_state_change(st, &c), 0);
	cr_expect_eq(count_kind(c.dels, c.n_dels, IPVS_ITEM_ADDR), 1);
	ipvs_state_commit(st);
	ipvs_item_vec_done(&have);
	ipvs_item_vec_done(&all);
	ipvs_state_free(st);
}

/* The guards as the backend stages them (a frontend of their own): a
 * changed service range is a delete and an add, by difference and when a
 * restarted ferry adopts the kernel's sets; the cluster IPs stay. Deletes
 * of guard members come before the other members' (a frontend's
 * FERRY-SERVICES member outlives the guard that needs it), adds after. */
static void stage_guards(struct ipvs_state *st, const struct plan *plan)
{
	struct ipvs_fe_key k = { .kind = 0xff };
	struct ipvs_item_vec v = { 0 };

	cr_assert_eq(ipvs_guard_items(plan, &v), 0);
	ipvs_item_vec_sort(&v);
	cr_assert_eq(ipvs_state_stage(st, &k, &v), 0);
}

Test(ipvs_state, changed_service_range_converges_by_diff_and_by_adoption, .init = fixture)
{
	struct ipvs_state *st = ipvs_state_new();
	struct plan_frontend fe = web_fe("10.96.0.10", 80);
	struct inet_addr cip = addr("10.96.0.10");
	struct inet_prefix old = { .addr = addr("10.96.0.0"), .len = 16 }, now = { .addr = addr("10.100.0.0"), .len = 16 };
	struct plan plan = { .cluster_ips = &cip, .n_cluster_ips = 1, .service_cidrs = &old, .n_service_cidrs = 1 };
	struct ipvs_item_vec have = { 0 };
	struct ipvs_change c;

	stage_fe(st, &fe);
	stage_guards(st, &plan);
	cr_assert_eq(ipvs_state_change(st, &c), 0);
	cr_assert(c.n_adds >= 2);
	cr_expect_eq(c.adds[c.n_adds - 1]->set, IPVS_SET_SERVICE_CIDRS, "the drop guard is added last");
	cr_expect_eq(c.adds[c.n_adds - 2]->set, IPVS_SET_CLUSTER_ADDRS);
	ipvs_state_commit(st);

	/* By difference (an apply whose diff says guards_changed). */
	plan.service_cidrs = &now;
	stage_guards(st, &plan);
	cr_assert_eq(ipvs_state_change(st, &c), 0);
	cr_assert_eq(c.n_dels, 1);
	cr_assert_eq(c.n_adds, 1);
	cr_expect_eq(inet_addr_cmp(&c.dels[0]->addr, &old.addr), 0);
	cr_expect_eq(inet_addr_cmp(&c.adds[0]->addr, &now.addr), 0);
	ipvs_state_commit(st);

	/* By adoption: the kernel has the old range, the plan the new one. */
	plan.service_cidrs = &old;
	cr_assert_eq(ipvs_frontend_items(&fe, &rr_cfg, &have), 0);
	cr_assert_eq(ipvs_guard_items(&plan, &have), 0);
	ipvs_item_vec_sort(&have);
	ipvs_state_reset(st);
	plan.service_cidrs = &now;
	stage_fe(st, &fe);
	stage_guards(st, &plan);
	cr_assert_eq(ipvs_state_change_from(st, have.v, have.n, &c), 0);
	cr_assert_eq(c.n_dels, 1, "only the old range goes");
	cr_assert_eq(c.n_adds, 1, "only the new range comes");
	cr_expect_eq(c.dels[0]->plen, 16);
	cr_expect_eq(inet_addr_cmp(&c.adds[0]->addr, &now.addr), 0);
	ipvs_state_commit(st);

	/* The frontend goes: its FERRY-SERVICES member after the cluster IP's
	 * guard member. */
	unstage_fe(st, &fe);
	plan.n_cluster_ips = 0;
	stage_guards(st, &plan);
	cr_assert_eq(ipvs_state_change(st, &c), 0);
	for (size_t i = 0, g = SIZE_MAX, svc = SIZE_MAX; i < c.n_dels; i++) {
		if (c.dels[i]->kind == IPVS_ITEM_MEMBER && c.dels[i]->set == IPVS_SET_CLUSTER_ADDRS)
			g = i;
		if (c.dels[i]->kind == IPVS_ITEM_MEMBER && c.dels[i]->set == IPVS_SET_SERVICES)
			svc = i;
		if (i + 1 == c.n_dels)
			cr_expect(g < svc, "guard member %zu, FERRY-SERVICES member %zu", g, svc);
	}
	ipvs_state_commit(st);
	ipvs_item_vec_done(&have);
	ipvs_state_free(st);
}

/* ---- what `ferry plan --backend ipvs` prints ---- */

Test(ipvs_render, text_and_json, .init = fixture)
{
	struct plan_frontend fe[2] = { web_fe("10.96.0.10", 80), web_fe("10.96.0.11", 53) };
	struct inet_addr cips[2] = { addr("10.96.0.10"), addr("10.96.0.11") };
	struct inet_prefix cidr = { .addr = addr("10.96.0.0"), .len = 16 };
	struct plan plan = { .frontends = fe, .n_frontends = 2, .epsets = &web, .n_epsets = 1, .cluster_ips = cips,
			     .n_cluster_ips = 2, .service_cidrs = &cidr, .n_service_cidrs = 1 };
	struct ipvs_options opts = { .scheduler = "sh", .masquerade_mark = 0x2000 };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	fe[1].proto = INET_PROTO_UDP;
	web.affinity = true;
	web.affinity_timeout_s = 300;
	ipvs_render(&plan, &opts, PLAN_FORMAT_TEXT, f);
	fclose(f);
	cr_expect(strstr(buf, "TCP  10.96.0.10:80 sh persistent 300\n"), "%s", buf);
	cr_expect(strstr(buf, "UDP  10.96.0.11:53 sh persistent 300\n"), "%s", buf);
	cr_expect(strstr(buf, "  -> 10.1.0.2:8080"), "%s", buf);
	cr_expect(strstr(buf, "\n10.96.0.10/32\n"), "the VIPs on the dummy interface: %s", buf);
	cr_expect(strstr(buf, "add FERRY-CLUSTER-IP 10.96.0.11,udp:53\n"), "%s", buf);
	cr_expect(strstr(buf, "meta mark set meta mark or 0x00002000"), "the options reach the rules: %s", buf);
	/* The service-range guards: their sets, members and rules. */
	cr_expect(strstr(buf, "create FERRY-CLUSTER-ADDRS hash:ip family inet\nadd FERRY-CLUSTER-ADDRS 10.96.0.10\n"
			      "add FERRY-CLUSTER-ADDRS 10.96.0.11\n"),
		  "%s", buf);
	cr_expect(strstr(buf, "create FERRY-SERVICE-CIDRS hash:net family inet\nadd FERRY-SERVICE-CIDRS 10.96.0.0/16\n"),
		  "%s", buf);
	cr_expect(strstr(buf, "create FERRY6-SERVICE-CIDRS hash:net family inet6\n"), "%s", buf);
	cr_expect(strstr(buf, "xt match set FERRY-CLUSTER-ADDRS dst xt match set ! FERRY-SERVICES dst,dst reject"),
		  "%s", buf);
	free(buf);

	buf = NULL;
	f = open_memstream(&buf, &len);
	ipvs_render(&plan, &opts, PLAN_FORMAT_JSON, f);
	fclose(f);
	cr_expect(strncmp(buf, "{\"backend\":\"ipvs\",\"program\":\"", 29) == 0, "%s", buf);
	cr_expect(strstr(buf, "TCP  10.96.0.10:80 sh persistent 300\\n"), "%s", buf);
	free(buf);
}

/* ipvs.excludeCIDRs: the deletions of an excluded virtual server, of its
 * real servers and of its address are left undone; its ipset members,
 * other services' items and the real servers of an excluded service that
 * stays are deleted. */
Test(ipvs_state, excluded_virtual_servers_are_not_deleted)
{
	struct inet_prefix ex;
	struct ipvs_item in_addr = { .kind = IPVS_ITEM_ADDR, .addr = addr("10.200.0.1") };
	struct ipvs_item in_svc = { .kind = IPVS_ITEM_SERVICE, .proto = INET_PROTO_TCP, .port = 80,
				    .addr = addr("10.200.0.1") };
	struct ipvs_item in_dest = in_svc, kept_dest = in_svc;
	struct ipvs_item in_member = { .kind = IPVS_ITEM_MEMBER, .set = 0, .proto = INET_PROTO_TCP, .port = 80,
				       .addr = addr("10.200.0.1") };
	struct ipvs_item out_svc = { .kind = IPVS_ITEM_SERVICE, .proto = INET_PROTO_TCP, .port = 80,
				     .addr = addr("10.96.0.1") };
	struct ipvs_item out_addr = { .kind = IPVS_ITEM_ADDR, .addr = addr("10.96.0.1") };

	in_dest.kind = IPVS_ITEM_DEST;
	in_dest.addr2 = addr("10.1.0.1");
	in_dest.port2 = 8080;
	/* A real server of the excluded 10.200.0.1:81, which stays. */
	kept_dest.kind = IPVS_ITEM_DEST;
	kept_dest.port = 81;
	kept_dest.addr2 = addr("10.1.0.2");
	cr_assert_eq(inet_prefix_parse("10.200.0.0/16", &ex), 0);

	const struct ipvs_item *dels[] = { &in_member, &kept_dest, &in_dest, &out_svc, &in_svc, &out_addr, &in_addr };
	struct ipvs_change c = { .dels = dels, .n_dels = 7 };

	cr_assert_eq(ipvs_change_keep_excluded(&c, &ex, 0), 0, "no CIDR: nothing kept");
	cr_assert_eq(c.n_dels, 7);
	cr_assert_eq(ipvs_change_keep_excluded(&c, &ex, 1), 3);
	cr_assert_eq(c.n_dels, 4);
	cr_assert_eq(c.dels[0], &in_member);
	cr_assert_eq(c.dels[1], &kept_dest);
	cr_assert_eq(c.dels[2], &out_svc);
	cr_assert_eq(c.dels[3], &out_addr);
}
