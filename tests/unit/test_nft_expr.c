/* The shared nf_tables builders of netfilter/ (nft_expr.h, nft_set.h,
 * nft_table.h): messages are built into a batch buffer and parsed back
 * with libnftnl, then compared with what was asked for. No root needed:
 * nothing is sent. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "nft_batch.h"
#include "nft_expr.h"
#include "nft_set.h"
#include "nft_table.h"

/* The i-th message of b. */
static const struct nlmsghdr *msg_at(struct nft_batch *b, size_t i)
{
	size_t len;
	const void *data = nft_batch_data(b, &len);
	int left = (int)len;
	const struct nlmsghdr *nlh = data;

	for (size_t k = 0; k < i; k++)
		nlh = mnl_nlmsg_next(nlh, &left);
	cr_assert(mnl_nlmsg_ok(nlh, left), "no message %zu", i);
	return nlh;
}

static uint16_t msg_type(const struct nlmsghdr *nlh)
{
	return NFNL_MSG_TYPE(nlh->nlmsg_type);
}

static uint8_t msg_family(const struct nlmsghdr *nlh)
{
	const struct nfgenmsg *g = mnl_nlmsg_get_payload(nlh);

	return g->nfgen_family;
}

/* ---- rules ------------------------------------------------------------- */

/* The single rule message of b, parsed; its expressions into exprs (room
 * for max), their count returned. The caller frees *ret_rule. */
static size_t parse_rule(struct nft_batch *b, struct nftnl_rule **ret_rule, struct nftnl_expr **exprs, size_t max)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	const struct nlmsghdr *nlh;
	struct nftnl_expr_iter *it;
	struct nftnl_expr *e;
	size_t n = 0;

	cr_assert_eq(nft_batch_count(b), 1);
	nlh = msg_at(b, 0);
	cr_assert_eq(msg_type(nlh), NFT_MSG_NEWRULE);
	cr_assert(nlh->nlmsg_flags & NLM_F_CREATE);
	cr_assert(nlh->nlmsg_flags & NLM_F_APPEND);
	cr_assert_eq(nftnl_rule_nlmsg_parse(nlh, r), 0);
	it = nftnl_expr_iter_create(r);
	while ((e = nftnl_expr_iter_next(it))) {
		cr_assert_lt(n, max);
		exprs[n++] = e;
	}
	nftnl_expr_iter_destroy(it);
	*ret_rule = r;
	return n;
}

static void expect_name(struct nftnl_expr *e, const char *name)
{
	cr_assert_str_eq(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), name);
}

static void expect_payload(struct nftnl_expr *e, uint32_t base, uint32_t off, uint32_t len, unsigned word)
{
	expect_name(e, "payload");
	cr_assert_eq(nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE), base);
	cr_assert_eq(nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET), off);
	cr_assert_eq(nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN), len);
	cr_assert_eq(nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_DREG), NFT_REG32_00 + word);
}

static void expect_meta_load(struct nftnl_expr *e, uint32_t key, unsigned word)
{
	expect_name(e, "meta");
	cr_assert_eq(nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY), key);
	cr_assert_eq(nftnl_expr_get_u32(e, NFTNL_EXPR_META_DREG), NFT_REG32_00 + word);
	cr_assert_not(nftnl_expr_is_set(e, NFTNL_EXPR_META_SREG));
}

/* "ip daddr . meta l4proto . th dport vmap @fe" in both families: the
 * fields in consecutive words, the lookup reading from word 0. */
static void concat_vmap_rule(int family)
{
	struct nft_batch *b = nft_batch_new();
	struct nft_rule_builder rb;
	struct nftnl_rule *r;
	struct nftnl_expr *x[8];
	unsigned w, aw = family == AF_INET6 ? 4 : 1;
	char want[96];

	cr_assert_eq(nft_rule_builder_init(&rb, family, "tbl", "services"), 0);
	w = nft_expr_load_addr(&rb, true, 0);
	cr_assert_eq(w, aw);
	nft_expr_text(&rb, " . ");
	w = nft_expr_load_l4proto(&rb, w);
	nft_expr_text(&rb, " . ");
	w = nft_expr_load_dport(&rb, w);
	cr_assert_eq(w, aw + 2);
	nft_expr_lookup(&rb, 0, "fe", NFT_REG_VERDICT, false);
	nft_expr_text(&rb, " vmap @fe");
	cr_assert_eq(nft_rule_builder_msg(&rb, b), 0);
	nft_rule_builder_done(&rb);
	nft_rule_builder_done(&rb); /* idempotent */

	snprintf(want, sizeof(want), "%s daddr . meta l4proto . th dport vmap @fe", family == AF_INET6 ? "ip6" : "ip");
	cr_assert_str_eq(rb.text, want);
	cr_assert_eq(rb.text_len, strlen(want));
	cr_assert_eq(msg_family(msg_at(b, 0)), family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
	cr_assert_eq(parse_rule(b, &r, x, 8), 4);
	cr_assert_str_eq(nftnl_rule_get_str(r, NFTNL_RULE_TABLE), "tbl");
	cr_assert_str_eq(nftnl_rule_get_str(r, NFTNL_RULE_CHAIN), "services");
	expect_payload(x[0], NFT_PAYLOAD_NETWORK_HEADER, family == AF_INET6 ? 24 : 16, family == AF_INET6 ? 16 : 4, 0);
	expect_meta_load(x[1], NFT_META_L4PROTO, aw);
	expect_payload(x[2], NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, aw + 1);
	expect_name(x[3], "lookup");
	cr_assert_eq(nftnl_expr_get_u32(x[3], NFTNL_EXPR_LOOKUP_SREG), NFT_REG32_00);
	cr_assert_eq(nftnl_expr_get_u32(x[3], NFTNL_EXPR_LOOKUP_DREG), NFT_REG_VERDICT);
	cr_assert_str_eq(nftnl_expr_get_str(x[3], NFTNL_EXPR_LOOKUP_SET), "fe");
	cr_assert_not(nftnl_expr_is_set(x[3], NFTNL_EXPR_LOOKUP_FLAGS));
	nftnl_rule_free(r);
	nft_batch_free(b);
}

Test(nft_expr, concatenation_loads_fill_consecutive_words)
{
	concat_vmap_rule(AF_INET);
	concat_vmap_rule(AF_INET6);
}

/* "ct status dnat ip saddr != 10.0.0.0/8 meta mark set meta mark | 0x4000
 * masquerade fully-random comment "x"": loads, bitwise, compare, store,
 * masquerade flags and a comment survive the round trip. */
Test(nft_expr, operations_and_statements_round_trip)
{
	struct nft_batch *b = nft_batch_new();
	struct nft_rule_builder rb;
	struct nftnl_rule *r;
	struct nftnl_expr *x[12];
	uint32_t dnat = 0x20, zero = 0, mark = 0x4000, keep = ~mark;
	uint8_t mask[4] = { 0xff }, net[4] = { 10 }, zeros[4] = { 0 };
	uint32_t len;
	const uint8_t *d;

	cr_assert_eq(nft_rule_builder_init(&rb, AF_INET, "t", "post"), 0);
	cr_assert_eq(nft_expr_load_ct(&rb, NFT_CT_STATUS, 0), 1);
	nft_expr_bitwise(&rb, 0, &dnat, &zero, 4);
	nft_expr_cmp(&rb, 0, NFT_CMP_NEQ, &zero, 4);
	nft_expr_text(&rb, "ct status dnat ");
	nft_expr_load_addr(&rb, false, 0);
	nft_expr_bitwise(&rb, 0, mask, zeros, 4);
	nft_expr_cmp(&rb, 0, NFT_CMP_NEQ, net, 4);
	nft_expr_text(&rb, " != 10.0.0.0/8 ");
	nft_expr_load_meta(&rb, NFT_META_MARK, 0);
	nft_expr_bitwise(&rb, 0, &keep, &mark, 4);
	nft_expr_store_meta(&rb, NFT_META_MARK, 0);
	nft_expr_text(&rb, "meta mark set meta mark | 0x%08x ", mark);
	nft_expr_masquerade(&rb, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
	cr_assert_eq(nft_rule_builder_comment(&rb, "x"), 0);
	cr_assert_eq(nft_rule_builder_msg(&rb, b), 0);
	nft_rule_builder_done(&rb);
	cr_assert_str_eq(rb.text, "ct status dnat ip saddr != 10.0.0.0/8 meta mark set meta mark | 0x00004000 "
				  "masquerade fully-random comment \"x\"");
	cr_assert(strstr(nft_batch_desc(b, 0), "add rule ip t post ct status dnat"));

	cr_assert_eq(parse_rule(b, &r, x, 12), 10);
	cr_assert(nftnl_rule_is_set(r, NFTNL_RULE_USERDATA));
	expect_name(x[0], "ct");
	cr_assert_eq(nftnl_expr_get_u32(x[0], NFTNL_EXPR_CT_KEY), NFT_CT_STATUS);
	cr_assert_eq(nftnl_expr_get_u32(x[0], NFTNL_EXPR_CT_DREG), NFT_REG32_00);
	expect_name(x[1], "bitwise");
	cr_assert_eq(nftnl_expr_get_u32(x[1], NFTNL_EXPR_BITWISE_SREG), NFT_REG32_00);
	cr_assert_eq(nftnl_expr_get_u32(x[1], NFTNL_EXPR_BITWISE_DREG), NFT_REG32_00);
	d = nftnl_expr_get(x[1], NFTNL_EXPR_BITWISE_MASK, &len);
	cr_assert_eq(len, 4);
	cr_assert_eq(memcmp(d, &dnat, 4), 0);
	expect_name(x[2], "cmp");
	cr_assert_eq(nftnl_expr_get_u32(x[2], NFTNL_EXPR_CMP_OP), NFT_CMP_NEQ);
	expect_payload(x[3], NFT_PAYLOAD_NETWORK_HEADER, 12, 4, 0);
	d = nftnl_expr_get(x[5], NFTNL_EXPR_CMP_DATA, &len);
	cr_assert_eq(len, 4);
	cr_assert_eq(memcmp(d, net, 4), 0);
	expect_meta_load(x[6], NFT_META_MARK, 0);
	expect_name(x[8], "meta");
	cr_assert_eq(nftnl_expr_get_u32(x[8], NFTNL_EXPR_META_KEY), NFT_META_MARK);
	cr_assert_eq(nftnl_expr_get_u32(x[8], NFTNL_EXPR_META_SREG), NFT_REG32_00);
	cr_assert_not(nftnl_expr_is_set(x[8], NFTNL_EXPR_META_DREG));
	expect_name(x[9], "masq");
	cr_assert_eq(nftnl_expr_get_u32(x[9], NFTNL_EXPR_MASQ_FLAGS), NF_NAT_RANGE_PROTO_RANDOM_FULLY);
	nftnl_rule_free(r);
	nft_batch_free(b);
}

/* Statements: what each puts in the kernel and writes as text. */
Test(nft_expr, statements_text_and_attributes)
{
	static const struct {
		int kind;
		const char *text;
	} cases[] = {
		{ 0, "masquerade" },           /* no flags: no flags attribute */
		{ 1, "reject with tcp reset" },
		{ 2, "reject" },
		{ 3, "jump services" },
		{ 4, "goto lb_3" },
		{ 5, "return" },
		{ 6, "numgen random mod 5 offset 16384" },
		{ 7, "" },                     /* dnat, redirect, dynset: no text */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct nft_batch *b = nft_batch_new();
		struct nft_rule_builder rb;
		struct nftnl_rule *r;
		struct nftnl_expr *x[4];
		size_t n;

		cr_assert_eq(nft_rule_builder_init(&rb, AF_INET6, "t", "c"), 0);
		switch (cases[i].kind) {
		case 0:
			nft_expr_masquerade(&rb, 0);
			break;
		case 1:
			nft_expr_reject_tcp_reset(&rb);
			break;
		case 2:
			nft_expr_reject_port_unreachable(&rb);
			break;
		case 3:
			nft_expr_verdict(&rb, NFT_JUMP, "services");
			break;
		case 4:
			nft_expr_verdict(&rb, NFT_GOTO, "lb_3");
			break;
		case 5:
			nft_expr_verdict(&rb, NFT_RETURN, NULL);
			break;
		case 6:
			cr_assert_eq(nft_expr_load_numgen(&rb, 5, 0x4000, 2), 3);
			break;
		default:
			nft_expr_nat(&rb, NFT_NAT_DNAT, 0, 4);
			nft_expr_redirect(&rb, 0);
			nft_expr_dynset_update(&rb, "aff", 0, 6);
			break;
		}
		cr_assert_eq(nft_rule_builder_msg(&rb, b), 0);
		nft_rule_builder_done(&rb);
		cr_assert_str_eq(rb.text, cases[i].text);
		n = parse_rule(b, &r, x, 4);
		switch (cases[i].kind) {
		case 0:
			expect_name(x[0], "masq");
			cr_assert_not(nftnl_expr_is_set(x[0], NFTNL_EXPR_MASQ_FLAGS));
			break;
		case 1:
		case 2:
			expect_name(x[0], "reject");
			cr_assert_eq(nftnl_expr_get_u32(x[0], NFTNL_EXPR_REJECT_TYPE),
				     cases[i].kind == 1 ? NFT_REJECT_TCP_RST : NFT_REJECT_ICMP_UNREACH);
			/* ICMPv6 port unreachable */
			if (cases[i].kind == 2)
				cr_assert_eq(nftnl_expr_get_u8(x[0], NFTNL_EXPR_REJECT_CODE), 4);
			break;
		case 3:
		case 4:
		case 5:
			expect_name(x[0], "immediate");
			cr_assert_eq(nftnl_expr_get_u32(x[0], NFTNL_EXPR_IMM_DREG), NFT_REG_VERDICT);
			cr_assert_eq(nftnl_expr_is_set(x[0], NFTNL_EXPR_IMM_CHAIN), cases[i].kind != 5);
			break;
		case 6:
			expect_name(x[0], "numgen");
			cr_assert_eq(nftnl_expr_get_u32(x[0], NFTNL_EXPR_NG_MODULUS), 5);
			cr_assert_eq(nftnl_expr_get_u32(x[0], NFTNL_EXPR_NG_OFFSET), 0x4000);
			cr_assert_eq(nftnl_expr_get_u32(x[0], NFTNL_EXPR_NG_DREG), NFT_REG32_02);
			break;
		default:
			cr_assert_eq(n, 3);
			expect_name(x[0], "nat");
			cr_assert_eq(nftnl_expr_get_u32(x[0], NFTNL_EXPR_NAT_FAMILY), NFPROTO_IPV6);
			cr_assert_eq(nftnl_expr_get_u32(x[0], NFTNL_EXPR_NAT_REG_ADDR_MIN), NFT_REG32_00);
			cr_assert_eq(nftnl_expr_get_u32(x[0], NFTNL_EXPR_NAT_REG_PROTO_MIN), NFT_REG32_04);
			expect_name(x[1], "redir");
			cr_assert_eq(nftnl_expr_get_u32(x[1], NFTNL_EXPR_REDIR_FLAGS), NF_NAT_RANGE_PROTO_SPECIFIED);
			expect_name(x[2], "dynset");
			cr_assert_eq(nftnl_expr_get_u32(x[2], NFTNL_EXPR_DYNSET_OP), NFT_DYNSET_OP_UPDATE);
			cr_assert_eq(nftnl_expr_get_u32(x[2], NFTNL_EXPR_DYNSET_SREG_DATA), NFT_REG32_06);
			cr_assert_str_eq(nftnl_expr_get_str(x[2], NFTNL_EXPR_DYNSET_SET_NAME), "aff");
			break;
		}
		if (cases[i].kind != 7)
			cr_assert_eq(n, 1);
		nftnl_rule_free(r);
		nft_batch_free(b);
	}
}

/* "fib daddr type local" and "fib saddr type != local": the address type
 * of either address (RTN_*, host order) into one word, no text. */
Test(nft_expr, fib_address_type_loads)
{
	struct nft_batch *b = nft_batch_new();
	struct nft_rule_builder rb;
	struct nftnl_rule *r;
	struct nftnl_expr *x[4];
	uint32_t local = 2; /* RTN_LOCAL */

	cr_assert_eq(nft_rule_builder_init(&rb, AF_INET, "t", "c"), 0);
	cr_assert_eq(nft_expr_load_fib_daddr_type(&rb, 0), 1);
	cr_assert_eq(nft_expr_load_fib_saddr_type(&rb, 3), 4);
	nft_expr_cmp(&rb, 3, NFT_CMP_NEQ, &local, 4);
	cr_assert_str_eq(rb.text, "");
	cr_assert_eq(nft_rule_builder_msg(&rb, b), 0);
	nft_rule_builder_done(&rb);
	cr_assert_eq(parse_rule(b, &r, x, 4), 3);
	for (int i = 0; i < 2; i++) {
		expect_name(x[i], "fib");
		cr_assert_eq(nftnl_expr_get_u32(x[i], NFTNL_EXPR_FIB_RESULT), NFT_FIB_RESULT_ADDRTYPE);
		cr_assert_eq(nftnl_expr_get_u32(x[i], NFTNL_EXPR_FIB_FLAGS), i ? NFTA_FIB_F_SADDR : NFTA_FIB_F_DADDR);
		cr_assert_eq(nftnl_expr_get_u32(x[i], NFTNL_EXPR_FIB_DREG), i ? NFT_REG32_03 : NFT_REG32_00);
	}
	expect_name(x[2], "cmp");
	cr_assert_eq(nftnl_expr_get_u32(x[2], NFTNL_EXPR_CMP_SREG), NFT_REG32_03);
	nftnl_rule_free(r);
	nft_batch_free(b);
}

/* A text-only builder collects the same text and no rule; sending it is
 * refused. A NAT without a port register leaves the port alone. */
Test(nft_expr, text_only_builder)
{
	struct nft_batch *b = nft_batch_new();
	struct nft_rule_builder rb;

	nft_rule_builder_init_text(&rb, AF_INET);
	nft_expr_load_addr(&rb, false, 0);
	nft_expr_text(&rb, " ");
	nft_expr_verdict(&rb, NF_DROP, NULL);
	cr_assert_null(nft_expr_add(&rb, "meta"));
	cr_assert_str_eq(rb.text, "ip saddr drop");
	cr_assert_eq(nft_rule_builder_comment(&rb, "c"), 0);
	cr_assert_str_eq(rb.text, "ip saddr drop comment \"c\"");
	cr_assert_eq(nft_rule_builder_msg(&rb, b), -EINVAL);
	cr_assert_eq(nft_batch_count(b), 0);
	nft_rule_builder_done(&rb);
	nft_batch_free(b);
}

/* A text longer than the builder holds is cut, never overflowed. */
Test(nft_expr, long_text_is_cut)
{
	struct nft_rule_builder rb;

	nft_rule_builder_init_text(&rb, AF_INET);
	for (int i = 0; i < 200; i++)
		nft_expr_text(&rb, "ip daddr . ");
	cr_assert_eq(rb.text_len, NFT_RULE_TEXT_MAX - 1);
	cr_assert_eq(strlen(rb.text), NFT_RULE_TEXT_MAX - 1);
	nft_expr_text(&rb, "more");
	cr_assert_eq(rb.text_len, NFT_RULE_TEXT_MAX - 1);
}

/* ---- tables and chains ------------------------------------------------- */

Test(nft_table, table_and_chain_messages_round_trip)
{
	static const struct nft_base_chain hook = { "nat", NF_INET_PRE_ROUTING, -100 };
	struct nft_batch *b = nft_batch_new();
	struct nftnl_table *t = nftnl_table_alloc();
	struct nftnl_chain *c = nftnl_chain_alloc(), *rc = nftnl_chain_alloc();
	const struct nlmsghdr *nlh;
	const struct nlattr *a;
	size_t n_attrs = 0;

	cr_assert_eq(nft_table_add_msg(b, AF_INET6, "tbl"), 0);
	cr_assert_eq(nft_chain_add_msg(b, AF_INET6, "tbl", "pre", &hook), 0);
	cr_assert_eq(nft_chain_add_msg(b, AF_INET6, "tbl", "services", NULL), 0);
	cr_assert_eq(nft_chain_empty_msg(b, AF_INET6, "tbl", "pre"), 0);
	cr_assert_eq(nft_chain_remove_msg(b, AF_INET6, "tbl", "services"), 0);
	cr_assert_eq(nft_table_remove_msg(b, AF_INET6, "tbl"), 0);
	cr_assert_eq(nft_batch_count(b), 6);

	nlh = msg_at(b, 0);
	cr_assert_eq(msg_type(nlh), NFT_MSG_NEWTABLE);
	cr_assert(nlh->nlmsg_flags & NLM_F_CREATE);
	cr_assert_eq(msg_family(nlh), NFPROTO_IPV6);
	cr_assert_eq(nftnl_table_nlmsg_parse(nlh, t), 0);
	cr_assert_str_eq(nftnl_table_get_str(t, NFTNL_TABLE_NAME), "tbl");
	cr_assert_str_eq(nft_batch_desc(b, 0), "add table ip6 tbl");

	nlh = msg_at(b, 1);
	cr_assert_eq(msg_type(nlh), NFT_MSG_NEWCHAIN);
	cr_assert_eq(nftnl_chain_nlmsg_parse(nlh, c), 0);
	cr_assert_str_eq(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE), "tbl");
	cr_assert_str_eq(nftnl_chain_get_str(c, NFTNL_CHAIN_NAME), "pre");
	cr_assert_str_eq(nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE), "nat");
	cr_assert_eq(nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM), NF_INET_PRE_ROUTING);
	cr_assert_eq(nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO), -100);
	cr_assert_eq(nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY), NF_ACCEPT);

	nlh = msg_at(b, 2);
	cr_assert_eq(nftnl_chain_nlmsg_parse(nlh, rc), 0);
	cr_assert_str_eq(nftnl_chain_get_str(rc, NFTNL_CHAIN_NAME), "services");
	cr_assert_not(nftnl_chain_is_set(rc, NFTNL_CHAIN_HOOKNUM));
	cr_assert_not(nftnl_chain_is_set(rc, NFTNL_CHAIN_TYPE));

	/* Flush: a DELRULE naming the table and the chain, nothing else. */
	nlh = msg_at(b, 3);
	cr_assert_eq(msg_type(nlh), NFT_MSG_DELRULE);
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		uint16_t type = mnl_attr_get_type(a);

		cr_assert(type == NFTA_RULE_TABLE || type == NFTA_RULE_CHAIN);
		cr_assert_str_eq(mnl_attr_get_str(a), type == NFTA_RULE_TABLE ? "tbl" : "pre");
		n_attrs++;
	}
	cr_assert_eq(n_attrs, 2);
	cr_assert_eq(msg_type(msg_at(b, 4)), NFT_MSG_DELCHAIN);
	cr_assert_eq(msg_type(msg_at(b, 5)), NFT_MSG_DELTABLE);
	cr_assert_not(msg_at(b, 5)->nlmsg_flags & NLM_F_CREATE);
	cr_assert_str_eq(nft_hook_name(NF_INET_POST_ROUTING), "postrouting");
	nftnl_table_free(t);
	nftnl_chain_free(c);
	nftnl_chain_free(rc);
	nft_batch_free(b);
}

/* ---- sets -------------------------------------------------------------- */

Test(nft_set, concatenation_layout_pads_each_field)
{
	struct inet_addr a4, a6;
	uint8_t key[40] = { 0 };
	size_t off = 0;
	const uint32_t types[] = { NFT_DTYPE_IPV4_ADDR, NFT_DTYPE_INET_PROTO, NFT_DTYPE_INET_SERVICE };

	cr_assert_eq(inet_addr_parse("10.96.0.10", &a4), 0);
	cr_assert_eq(inet_addr_parse("fd00::1", &a6), 0);
	nft_concat_put_addr(key, &off, &a4);
	nft_concat_put_proto(key, &off, INET_PROTO_UDP);
	nft_concat_put_port(key, &off, 53);
	nft_concat_put_u32(key, &off, 7);
	cr_assert_eq(off, 16);
	cr_assert_eq(memcmp(key, "\x0a\x60\x00\x0a" "\x11\0\0\0" "\x00\x35\0\0", 12), 0);
	cr_assert_eq(*(uint32_t *)(key + 12), 7, "host order");
	off = 0;
	nft_concat_put_addr(key, &off, &a6);
	nft_concat_put_proto(key, &off, INET_PROTO_SCTP);
	cr_assert_eq(off, 20);
	cr_assert_eq(key[15], 1);
	cr_assert_eq(key[16], IPPROTO_SCTP);
	/* nft's "ipv4_addr . inet_proto . inet_service" */
	cr_assert_eq(nft_concat_type(types, 3), (7u << 12) | (12u << 6) | 13u);
}

static struct nftnl_set *parse_set(const struct nlmsghdr *nlh)
{
	struct nftnl_set *s = nftnl_set_alloc();

	cr_assert_eq(msg_type(nlh), NFT_MSG_NEWSET);
	cr_assert_eq(nftnl_set_nlmsg_parse(nlh, s), 0);
	return s;
}

Test(nft_set, declarations_round_trip)
{
	static const uint8_t fields[] = { 4, 1, 2, 4 };
	const struct nft_set_spec data_map = {
		.table = "t", .name = "aff", .family = AF_INET,
		.flags = NFT_SET_MAP | NFT_SET_TIMEOUT, .key_len = 12, .key_type = 0x1234,
		.data_type = NFT_DTYPE_MARK, .data_len = 4, .size = 1000, .timeout_ms = 10800000, .id = 7,
	};
	const struct nft_set_spec ranges = {
		.table = "t", .name = "ranges", .family = AF_INET6,
		.flags = NFT_SET_INTERVAL | NFT_SET_CONCAT, .key_len = 16, .key_type = 1,
		.field_len = fields, .n_fields = 4, .id = 8,
	};
	const struct nft_set_spec vmap = {
		.table = "t", .name = "fe", .family = AF_INET,
		.flags = NFT_SET_MAP, .key_len = 12, .key_type = 2, .data_type = NFT_DATA_VERDICT, .id = 9,
	};
	struct nft_batch *b = nft_batch_new();
	struct nftnl_set *s;
	uint32_t len;
	const uint8_t *fl;

	cr_assert_eq(nft_set_spec_msg(b, &data_map, true), 0);
	cr_assert_eq(nft_set_spec_msg(b, &ranges, true), 0);
	cr_assert_eq(nft_set_spec_msg(b, &vmap, false), 0);

	s = parse_set(msg_at(b, 0));
	cr_assert(msg_at(b, 0)->nlmsg_flags & NLM_F_CREATE);
	cr_assert_str_eq(nftnl_set_get_str(s, NFTNL_SET_TABLE), "t");
	cr_assert_str_eq(nftnl_set_get_str(s, NFTNL_SET_NAME), "aff");
	cr_assert_eq(nftnl_set_get_u32(s, NFTNL_SET_FLAGS), NFT_SET_MAP | NFT_SET_TIMEOUT);
	cr_assert_eq(nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN), 12);
	cr_assert_eq(nftnl_set_get_u32(s, NFTNL_SET_KEY_TYPE), 0x1234);
	cr_assert_eq(nftnl_set_get_u32(s, NFTNL_SET_DATA_TYPE), NFT_DTYPE_MARK);
	cr_assert_eq(nftnl_set_get_u32(s, NFTNL_SET_DATA_LEN), 4);
	cr_assert_eq(nftnl_set_get_u32(s, NFTNL_SET_DESC_SIZE), 1000);
	cr_assert_eq(nftnl_set_get_u64(s, NFTNL_SET_TIMEOUT), 10800000);
	cr_assert_eq(nftnl_set_get_u32(s, NFTNL_SET_ID), 7);
	cr_assert_str_eq(nft_batch_desc(b, 0), "add map ip t aff");
	nftnl_set_free(s);

	s = parse_set(msg_at(b, 1));
	cr_assert_eq(msg_family(msg_at(b, 1)), NFPROTO_IPV6);
	cr_assert_not(nftnl_set_is_set(s, NFTNL_SET_DATA_TYPE));
	cr_assert_not(nftnl_set_is_set(s, NFTNL_SET_DESC_SIZE));
	cr_assert_not(nftnl_set_is_set(s, NFTNL_SET_TIMEOUT));
	fl = nftnl_set_get_data(s, NFTNL_SET_DESC_CONCAT, &len);
	cr_assert(fl);
	cr_assert_eq(memcmp(fl, fields, 4), 0);
	nftnl_set_free(s);

	/* The existence check: no NLM_F_CREATE; a verdict map has no data length. */
	s = parse_set(msg_at(b, 2));
	cr_assert_not(msg_at(b, 2)->nlmsg_flags & NLM_F_CREATE);
	cr_assert_eq(nftnl_set_get_u32(s, NFTNL_SET_DATA_TYPE), NFT_DATA_VERDICT);
	cr_assert_not(nftnl_set_is_set(s, NFTNL_SET_DATA_LEN));
	cr_assert_str_eq(nft_batch_desc(b, 2), "check map ip t fe exists");
	nftnl_set_free(s);
	nft_batch_free(b);
}

/* What one element list attribute of a NEWSETELEM/DELSETELEM holds. */
struct elem_list {
	const struct nlattr *list;
	size_t n;
};

/* The element list of nlh; checks that its length reaches the end of the
 * message, which an overflowed 16-bit length would not. */
static struct elem_list elem_list_of(const struct nlmsghdr *nlh)
{
	struct elem_list l = { 0 };
	const struct nlattr *a, *item;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		cr_assert_null(l.list, "two element lists");
		l.list = a;
		cr_assert_eq((const char *)a + mnl_attr_get_len(a), (const char *)nlh + nlh->nlmsg_len,
			     "the element list does not reach the end of its message");
		mnl_attr_for_each_nested(item, a)
			l.n++;
	}
	return l;
}

/* Parse the elements of nlh with libnftnl, into s. libnftnl numbers list
 * items 1..n when building but reads only items of type NFTA_LIST_ELEM,
 * so a copy is renumbered first. */
static void parse_elems(const struct nlmsghdr *nlh, struct nftnl_set *s)
{
	struct nlmsghdr *copy = malloc(nlh->nlmsg_len);
	struct nlattr *a, *item;

	cr_assert(copy);
	memcpy(copy, nlh, nlh->nlmsg_len);
	mnl_attr_for_each(a, copy, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		mnl_attr_for_each_nested(item, a)
			item->nla_type = (uint16_t)((item->nla_type & ~NLA_TYPE_MASK) | NFTA_LIST_ELEM);
	}
	cr_assert_eq(nftnl_set_elems_nlmsg_parse(copy, s), 0);
	free(copy);
}

/* Element i of the writer test: an IPv6 key and port in set "a" for the
 * first 3000, then keys with a verdict in set "b". */
static void test_elem(size_t i, uint8_t key[24], uint16_t *data, struct nft_setelem *e)
{
	memset(key, 0, 24);
	key[0] = 0xfd;
	key[14] = (uint8_t)(i >> 8);
	key[15] = (uint8_t)i;
	key[16] = IPPROTO_TCP;
	*data = htons((uint16_t)(15000 + i % 8));
	*e = (struct nft_setelem){ .key = key, .key_len = 24 };
	if (i < 3000) {
		e->data = data;
		e->data_len = 2;
	} else {
		e->has_verdict = true;
		e->verdict = (uint32_t)NFT_GOTO;
		e->chain = i % 2 ? "lb_3" : "a_longer_chain_name";
	}
}

/* Many elements of two sets through one writer: each message holds one
 * set's elements, no list overflows its attribute, the writer's size
 * accounting matches the bytes, and every element parses back in order,
 * with its value on adds only. */
static void writer_round_trip(bool add, size_t cap)
{
	size_t n = 5000, seen = 0, total_msgs;
	struct nft_batch *b = nft_batch_new();
	struct nft_setelem_writer w;
	uint8_t key[24];
	uint16_t data;
	struct nft_setelem e;

	nft_setelem_writer_init(&w, b, add, cap);
	for (size_t i = 0; i < n; i++) {
		test_elem(i, key, &data, &e);
		cr_assert_eq(nft_setelem_writer_add(&w, AF_INET6, "t", i < 3000 ? "a" : "b", &e), 0);
	}
	cr_assert_eq(nft_setelem_writer_finish(&w), 0);
	total_msgs = nft_batch_count(b);
	/* 3000 elements of 48 bytes cannot share one 64 KiB list; a cap
	 * splits each set's run by itself. */
	if (cap)
		cr_assert_eq(total_msgs, (3000 + cap - 1) / cap + (n - 3000 + cap - 1) / cap);
	else
		cr_assert_geq(total_msgs, 4);

	for (size_t m = 0; m < total_msgs; m++) {
		const struct nlmsghdr *nlh = msg_at(b, m);
		struct elem_list l = elem_list_of(nlh);
		struct nftnl_set *s = nftnl_set_alloc();
		struct nftnl_set_elems_iter *it;
		struct nftnl_set_elem *el;
		size_t bytes = 0, first = seen;

		cr_assert_eq(msg_type(nlh), add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
		cr_assert_eq(msg_family(nlh), NFPROTO_IPV6);
		cr_assert(l.list && l.n > 0);
		cr_assert_leq(mnl_attr_get_len(l.list), UINT16_MAX);
		if (cap)
			cr_assert_leq(l.n, cap);
		parse_elems(nlh, s);
		cr_assert_str_eq(nftnl_set_get_str(s, NFTNL_SET_TABLE), "t");
		cr_assert_str_eq(nftnl_set_get_str(s, NFTNL_SET_NAME), first < 3000 ? "a" : "b", "message %zu", m);
		it = nftnl_set_elems_iter_create(s);
		while ((el = nftnl_set_elems_iter_next(it))) {
			uint32_t len;
			const void *k = nftnl_set_elem_get(el, NFTNL_SET_ELEM_KEY, &len);

			test_elem(seen, key, &data, &e);
			bytes += nft_setelem_list_bytes(&e, add);
			cr_assert_eq(len, 24);
			cr_assert_eq(memcmp(k, key, 24), 0, "element %zu", seen);
			cr_assert_eq(nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_DATA), add && seen < 3000);
			cr_assert_eq(nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_VERDICT), add && seen >= 3000);
			if (add && seen < 3000)
				cr_assert_eq(memcmp(nftnl_set_elem_get(el, NFTNL_SET_ELEM_DATA, &len), &data, 2), 0);
			if (add && seen >= 3000)
				cr_assert_str_eq(nftnl_set_elem_get_str(el, NFTNL_SET_ELEM_CHAIN), e.chain);
			seen++;
		}
		nftnl_set_elems_iter_destroy(it);
		cr_assert_eq(seen - first, l.n);
		cr_assert_eq(bytes, mnl_attr_get_payload_len(l.list), "message %zu: the writer counted %zu bytes, "
			     "the list has %u", m, bytes, mnl_attr_get_payload_len(l.list));
		nftnl_set_free(s);
	}
	cr_assert_eq(seen, n);
	nft_batch_free(b);
}

Test(nft_set, writer_splits_adds_by_attribute_size)
{
	writer_round_trip(true, 0);
}

Test(nft_set, writer_keeps_the_callers_cap)
{
	writer_round_trip(true, 256);
}

Test(nft_set, writer_deletes_carry_keys_only)
{
	writer_round_trip(false, 0);
}

Test(nft_set, writer_without_elements_sends_nothing)
{
	struct nft_batch *b = nft_batch_new();
	struct nft_setelem_writer w;

	nft_setelem_writer_init(&w, b, true, 0);
	cr_assert_eq(nft_setelem_writer_finish(&w), 0);
	cr_assert_eq(nft_batch_count(b), 0);
	nft_batch_free(b);
}

/* Flush: a DELSETELEM naming the set, with no element list. */
Test(nft_set, flush_names_the_set_only)
{
	struct nft_batch *b = nft_batch_new();
	const struct nlmsghdr *nlh;

	cr_assert_eq(nft_setelem_flush_msg(b, AF_INET, "t", "fe"), 0);
	nlh = msg_at(b, 0);
	cr_assert_eq(msg_type(nlh), NFT_MSG_DELSETELEM);
	cr_assert_null(elem_list_of(nlh).list);
	cr_assert_str_eq(nft_batch_desc(b, 0), "flush set ip t fe");
	nft_batch_free(b);
}

/* nft keeps at most 127 bytes of comment (128 with the NUL): a longer one
 * is -EINVAL, for message and text builders alike (found by
 * fuzz/nft_messages: the user data buffer took up to 133). */
Test(nft_expr, comment_length_is_nfts)
{
	char c127[128], c128[129];
	struct nft_rule_builder rb;

	memset(c127, 'a', 127);
	c127[127] = '\0';
	memset(c128, 'a', 128);
	c128[128] = '\0';
	cr_assert_eq(nft_rule_builder_init(&rb, AF_INET, "t", "c"), 0);
	cr_expect_eq(nft_rule_builder_comment(&rb, c127), 0);
	nft_rule_builder_done(&rb);
	cr_assert_eq(nft_rule_builder_init(&rb, AF_INET, "t", "c"), 0);
	cr_expect_eq(nft_rule_builder_comment(&rb, c128), -EINVAL);
	nft_rule_builder_done(&rb);
	nft_rule_builder_init_text(&rb, AF_INET);
	cr_expect_eq(nft_rule_builder_comment(&rb, c128), -EINVAL);
	nft_rule_builder_done(&rb);
}
