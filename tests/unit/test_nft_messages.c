/* nftables backend mechanism: messages built with nft_sets / nft_rules are
 * parsed back with libnftnl and compared (no root needed), the plan-to-
 * elements translation, and the rendered ruleset checked by `nft -c -f`
 * (needs the nft binary and root for a private network namespace). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "nft_batch.h"
#include "nft_elems.h"
#include "nft_rules.h"
#include "nft_sets.h"
#include "nftables.h"

static struct inet_addr addr(const char *s)
{
	struct inet_addr a;
	cr_assert_eq(inet_addr_parse(s, &a), 0);
	return a;
}

/* Call fn for every message of the batch. */
static void each_msg(struct nft_batch *b, void (*fn)(const struct nlmsghdr *, void *), void *ctx)
{
	size_t len;
	const void *data = nft_batch_data(b, &len);
	int left = (int)len;

	for (const struct nlmsghdr *nlh = data; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left))
		fn(nlh, ctx);
}

struct elem_seen {
	int n;
	char chain[64];
	uint32_t verdict;
	uint8_t key[64], data[64], key_end[64];
	uint32_t klen, dlen, kelen;
	char set[32];
};

static void parse_elems(const struct nlmsghdr *nlh, void *ctx)
{
	struct elem_seen *seen = ctx;
	struct nftnl_set *s = nftnl_set_alloc();
	struct nftnl_set_elems_iter *it;
	struct nftnl_set_elem *e;

	cr_assert_eq(NFNL_MSG_TYPE(nlh->nlmsg_type), NFT_MSG_NEWSETELEM);
	cr_assert_eq(nftnl_set_elems_nlmsg_parse(nlh, s), 0);
	snprintf(seen->set, sizeof(seen->set), "%s", nftnl_set_get_str(s, NFTNL_SET_NAME));
	it = nftnl_set_elems_iter_create(s);
	while ((e = nftnl_set_elems_iter_next(it))) {
		const void *p;
		seen->n++;
		p = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &seen->klen);
		memcpy(seen->key, p, seen->klen);
		if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_DATA)) {
			p = nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &seen->dlen);
			memcpy(seen->data, p, seen->dlen);
		}
		if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_KEY_END)) {
			p = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY_END, &seen->kelen);
			memcpy(seen->key_end, p, seen->kelen);
		}
		if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_VERDICT))
			seen->verdict = nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_VERDICT);
		if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN))
			snprintf(seen->chain, sizeof(seen->chain), "%s", nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN));
	}
	nftnl_set_elems_iter_destroy(it);
	nftnl_set_free(s);
}

Test(nft_sets, vmap_element_round_trip)
{
	struct nft_batch *b = nft_batch_new();
	struct inet_addr a = addr("10.96.0.10");
	struct nft_elem e;
	const struct nft_elem *pe = &e;
	struct elem_seen seen = { 0 };
	size_t off = 0;

	nft_elem_init(&e, NFT_SET_FE, AF_INET);
	nft_elem_key_addr(&e, &off, &a);
	nft_elem_key_proto(&e, &off, INET_PROTO_TCP);
	nft_elem_key_port(&e, &off, 80);
	e.verdict = 3;
	cr_assert_eq(off, nft_set_key_len(NFT_SET_FE, AF_INET));
	cr_assert_eq(nft_elems_msgs(b, true, &pe, 1), 0);
	cr_assert_eq(nft_batch_count(b), 1);
	each_msg(b, parse_elems, &seen);
	cr_assert_eq(seen.n, 1);
	cr_assert_str_eq(seen.set, "fe");
	cr_assert_eq(seen.klen, 12);
	cr_assert_eq(memcmp(seen.key, "\x0a\x60\x00\x0a" "\x06\0\0\0" "\x00\x50\0\0", 12), 0);
	cr_assert_eq(seen.verdict, (uint32_t)NFT_GOTO);
	cr_assert_str_eq(seen.chain, "lb_3");
	nft_batch_free(b);
}

Test(nft_sets, slot_and_range_elements_round_trip)
{
	struct nft_batch *b = nft_batch_new();
	struct inet_addr svc = addr("fd00:96::10"), ep = addr("fd00:2::2"), net = addr("fd00:1::");
	struct nft_elem e, r;
	const struct nft_elem *pe[1];
	struct elem_seen seen = { 0 };
	size_t off = 0;
	uint32_t slot = 2;

	nft_elem_init(&e, NFT_SET_SLOTS, AF_INET6);
	nft_elem_key_addr(&e, &off, &svc);
	nft_elem_key_proto(&e, &off, INET_PROTO_UDP);
	nft_elem_key_port(&e, &off, 53);
	nft_elem_key_slot(&e, &off, slot);
	nft_elem_data_endpoint(&e, &ep, 9053);
	pe[0] = &e;
	cr_assert_eq(nft_elems_msgs(b, true, pe, 1), 0);
	each_msg(b, parse_elems, &seen);
	cr_assert_eq(seen.klen, 28);
	cr_assert_eq(memcmp(seen.key + 24, &slot, 4), 0, "slot in host order, last");
	cr_assert_eq(seen.dlen, 20);
	cr_assert_eq(memcmp(seen.data, ep.u.bytes, 16), 0);
	cr_assert_eq(seen.data[16], 9053 >> 8);
	cr_assert_eq(seen.data[17], 9053 & 0xff);

	/* A source range: key_end is the last address of the prefix. */
	nft_batch_clear(b);
	memset(&seen, 0, sizeof(seen));
	off = 0;
	nft_elem_init(&r, NFT_SET_RANGES, AF_INET6);
	nft_elem_key_addr(&r, &off, &svc);
	nft_elem_key_proto(&r, &off, INET_PROTO_TCP);
	nft_elem_key_port(&r, &off, 80);
	nft_elem_key_addr(&r, &off, &net);
	r.plen = 64;
	pe[0] = &r;
	cr_assert_eq(nft_elems_msgs(b, true, pe, 1), 0);
	each_msg(b, parse_elems, &seen);
	cr_assert_eq(seen.kelen, 40);
	cr_assert_eq(memcmp(seen.key, seen.key_end, 32), 0);
	for (int i = 32; i < 40; i++)
		cr_assert_eq(seen.key_end[i], 0xff);
	nft_batch_free(b);
}

Test(nft_sets, delete_messages_carry_no_data)
{
	struct nft_batch *b = nft_batch_new();
	struct nft_elem e[300];
	const struct nft_elem *pe[300];
	struct inet_addr a = addr("10.96.0.10");

	for (int i = 0; i < 300; i++) {
		size_t off = 0;
		nft_elem_init(&e[i], NFT_SET_SLOTS, AF_INET);
		nft_elem_key_addr(&e[i], &off, &a);
		nft_elem_key_proto(&e[i], &off, INET_PROTO_TCP);
		nft_elem_key_port(&e[i], &off, 80);
		nft_elem_key_slot(&e[i], &off, (uint32_t)i);
		pe[i] = &e[i];
	}
	cr_assert_eq(nft_elems_msgs(b, false, pe, 300), 0);
	/* Chunked: one element list attribute cannot exceed 64 KiB. */
	cr_assert_gt(nft_batch_count(b), 1);
	size_t len;
	const struct nlmsghdr *nlh = nft_batch_data(b, &len);
	cr_assert_eq(NFNL_MSG_TYPE(nlh->nlmsg_type), NFT_MSG_DELSETELEM);
	nft_batch_free(b);
}

struct rule_seen {
	int rules, chains;
	char lb3[256];
};

static void expr_names(struct nftnl_expr *e, void *ctx)
{
	char *out = ctx;
	strncat(out, nftnl_expr_get_str(e, NFTNL_EXPR_NAME), 200 - strlen(out));
	strncat(out, " ", 200 - strlen(out));
}

static int expr_cb(struct nftnl_expr *e, void *ctx)
{
	expr_names(e, ctx);
	return 0;
}

static void parse_rules(const struct nlmsghdr *nlh, void *ctx)
{
	struct rule_seen *seen = ctx;

	if (NFNL_MSG_TYPE(nlh->nlmsg_type) == NFT_MSG_NEWCHAIN)
		seen->chains++;
	if (NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWRULE)
		return;
	struct nftnl_rule *r = nftnl_rule_alloc();
	cr_assert_eq(nftnl_rule_nlmsg_parse(nlh, r), 0);
	seen->rules++;
	if (strcmp(nftnl_rule_get_str(r, NFTNL_RULE_CHAIN), "lb_3") == 0)
		nftnl_expr_foreach(r, expr_cb, seen->lb3);
	nftnl_rule_free(r);
}

Test(nft_rules, constant_ruleset_round_trip)
{
	struct nft_batch *b = nft_batch_new();
	struct inet_prefix cidr;
	struct nft_ruleset_cfg cfg = { .masq_mark = 0x4000 };
	struct rule_seen seen = { 0 }, seen2 = { 0 };

	cr_assert_eq(nft_ruleset_msgs(b, AF_INET, &cfg), 0);
	each_msg(b, parse_rules, &seen);
	cr_assert_str_eq(seen.lb3, "payload meta payload numgen lookup nat ");
	/* Adding a cluster CIDR adds exactly one rule, whatever the plan. */
	cr_assert_eq(inet_prefix_parse("10.244.0.0/16", &cidr), 0);
	cfg.cluster_cidrs = &cidr;
	cfg.n_cluster_cidrs = 1;
	nft_batch_clear(b);
	cr_assert_eq(nft_ruleset_msgs(b, AF_INET, &cfg), 0);
	each_msg(b, parse_rules, &seen2);
	cr_assert_eq(seen2.rules, seen.rules + 1);
	cr_assert_eq(seen2.chains, seen.chains);
	nft_batch_free(b);
}

static struct plan_endpoint eps3[3];
static struct plan_epset epset3 = { .key = "default/web:http/TCP", .endpoints = eps3, .n_endpoints = 3 };

Test(nft_elems, frontend_translation)
{
	struct plan_frontend fe = { .kind = FRONTEND_CLUSTER_IP, .proto = INET_PROTO_TCP, .port = 80,
				    .epset = &epset3 };
	struct nft_elems_cfg cfg = { 0 };
	struct nft_elem_vec vec = { 0 };
	int counts[NFT_SET_COUNT] = { 0 };

	fe.addr = addr("10.96.0.10");
	eps3[0] = (struct plan_endpoint){ .addr = addr("10.0.2.2"), .port = 9000, .local = true };
	eps3[1] = (struct plan_endpoint){ .addr = addr("10.0.2.3"), .port = 9000, .node_unknown = true };
	eps3[2] = (struct plan_endpoint){ .addr = addr("10.0.2.3"), .port = 9001, .node_unknown = true };
	cr_assert_eq(nft_frontend_elems(&fe, &cfg, &vec, NULL), 0);
	for (size_t i = 0; i < vec.n; i++)
		counts[vec.v[i].set]++;
	cr_assert_eq(counts[NFT_SET_FE], 1);
	cr_assert_eq(counts[NFT_SET_SLOTS], 3);
	cr_assert_eq(counts[NFT_SET_LOCAL_FE], 1);
	cr_assert_eq(counts[NFT_SET_HAIRPIN], 2, "one pair per address");
	cr_assert_eq(counts[NFT_SET_EMPTY_FE], 0);
	for (size_t i = 1; i < vec.n; i++)
		cr_assert_lt(nft_elem_cmp(&vec.v[i - 1], &vec.v[i], NULL), 0, "sorted, unique");
	nft_elem_vec_done(&vec);

	/* Endpoints known to be on other nodes cannot hairpin here: no pair. */
	eps3[0].local = false;
	eps3[1].node_unknown = eps3[2].node_unknown = false;
	memset(counts, 0, sizeof(counts));
	cr_assert_eq(nft_frontend_elems(&fe, &cfg, &vec, NULL), 0);
	for (size_t i = 0; i < vec.n; i++)
		counts[vec.v[i].set]++;
	cr_assert_eq(counts[NFT_SET_SLOTS], 3);
	cr_assert_eq(counts[NFT_SET_HAIRPIN], 0, "remote endpoints: no hairpin pair");
	nft_elem_vec_done(&vec);

	/* Empty and Local: drop; wildcard node port keys without address. */
	struct plan_epset empty = { .key = "default/web:http/TCP/local" };
	fe.kind = FRONTEND_NODE_PORT;
	fe.addr = inet_addr_any(AF_INET);
	fe.epset = &empty;
	fe.when_empty = EMPTY_DROP;
	cr_assert_eq(nft_frontend_elems(&fe, &cfg, &vec, NULL), 0);
	cr_assert_eq(vec.n, 1);
	cr_assert_eq(vec.v[0].set, NFT_SET_EMPTY_NP);
	cr_assert_eq(vec.v[0].verdict, NFT_VERDICT_DROP);
	nft_elem_vec_done(&vec);
	cr_assert_eq(nft_slots_for(7), 7);
	cr_assert_eq(nft_slots_for(33), NFT_SLOTS_MAX);
}

Test(nft_render, accepted_by_nft_check)
{
	struct plan_frontend fe[2] = {
		{ .kind = FRONTEND_CLUSTER_IP, .proto = INET_PROTO_TCP, .port = 80, .epset = &epset3 },
		{ .kind = FRONTEND_LOAD_BALANCER, .proto = INET_PROTO_TCP, .port = 80, .epset = &epset3,
		  .masquerade = true },
	};
	struct inet_prefix range;
	struct plan plan = { .frontends = fe, .n_frontends = 2 };
	char path[] = "/tmp/ferry-nft-render.XXXXXX";
	char cmd[256];
	FILE *f;
	int fd;

	if (access("/usr/sbin/nft", X_OK) != 0 && access("/sbin/nft", X_OK) != 0)
		cr_skip_test("the nft binary is not installed");
	if (geteuid() != 0)
		cr_skip_test("checking with nft -c needs root (a private network namespace)");
	fe[0].addr = addr("10.96.0.10");
	fe[1].addr = addr("10.98.0.1");
	cr_assert_eq(inet_prefix_parse("10.0.1.0/24", &range), 0);
	fe[1].source_ranges = &range;
	fe[1].n_source_ranges = 1;
	eps3[0] = (struct plan_endpoint){ .addr = addr("10.0.2.2"), .port = 9000 };
	eps3[1] = (struct plan_endpoint){ .addr = addr("10.0.2.3"), .port = 9000 };
	eps3[2] = (struct plan_endpoint){ .addr = addr("10.0.2.4"), .port = 9000 };
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	nftables_render(&plan, PLAN_FORMAT_TEXT, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "unshare -n nft -c -f %s", path);
	int rc = system(cmd);
	unlink(path);
	if (WIFEXITED(rc) && WEXITSTATUS(rc) == 127)
		cr_skip_test("unshare not available");
	cr_assert_eq(rc, 0, "nft -c -f refused the rendered ruleset");
}
