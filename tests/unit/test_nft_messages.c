/* nftables backend mechanism: messages built with nft_sets / nft_rules are
 * parsed back with libnftnl and compared (no root needed), the plan-to-
 * elements translation, and the rendered ruleset checked by `nft -c -f`
 * (needs the nft binary and root for a private network namespace). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
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
	uint8_t key[64], data[64], key_end[64], udata[64];
	uint32_t klen, dlen, kelen, ulen;
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
		if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_USERDATA)) {
			p = nftnl_set_elem_get(e, NFTNL_SET_ELEM_USERDATA, &seen->ulen);
			memcpy(seen->udata, p, seen->ulen);
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

/* What a set dump would return for e: its add message parsed back. */
static void kernel_form(const struct nft_elem *e, struct elem_seen *seen, struct nft_kernel_elem *k)
{
	struct nft_batch *b = nft_batch_new();
	const struct nft_elem *pe = e;

	memset(seen, 0, sizeof(*seen));
	cr_assert_eq(nft_elems_msgs(b, true, &pe, 1), 0);
	each_msg(b, parse_elems, seen);
	nft_batch_free(b);
	*k = (struct nft_kernel_elem){ .key = seen->key, .key_len = seen->klen };
	if (seen->kelen) {
		k->key_end = seen->key_end;
		k->key_end_len = seen->kelen;
	}
	if (seen->dlen) {
		k->data = seen->data;
		k->data_len = seen->dlen;
	}
	if (seen->ulen) {
		k->udata = seen->udata;
		k->udata_len = seen->ulen;
	}
	if (nft_set_is_vmap(e->set)) {
		k->has_verdict = true;
		k->verdict_code = seen->verdict;
		k->chain = seen->chain[0] ? seen->chain : NULL;
	}
}

Test(nft_sets, elements_read_back_from_kernel_form)
{
	struct inet_addr svc = addr("10.96.0.10"), ep = addr("10.0.2.2"), net = addr("10.0.1.0"),
			 svc6 = addr("fd00:96::10"), net6 = addr("fd00:1::");
	struct nft_elem in[12], out;
	size_t n = 0, off;

	/* fe: plain slot chain, affinity chains (every masquerade mode), reject. */
	for (int i = 0; i < 5; i++) {
		off = 0;
		nft_elem_init(&in[n], i < 4 ? NFT_SET_FE : NFT_SET_EMPTY_FE, AF_INET);
		nft_elem_key_addr(&in[n], &off, &svc);
		nft_elem_key_proto(&in[n], &off, INET_PROTO_TCP);
		nft_elem_key_port(&in[n], &off, 80);
		in[n].verdict = i == 4 ? NFT_VERDICT_REJECT : (uint16_t)(i == 0 ? 3 : 1024);
		if (i >= 1 && i <= 3) {
			in[n].aff_timeout = 10800;
			in[n].aff_mode = (uint8_t)(i - 1);
		}
		n++;
	}
	/* np: affinity node port, drop when empty. */
	off = 0;
	nft_elem_init(&in[n], NFT_SET_NP, AF_INET);
	nft_elem_key_proto(&in[n], &off, INET_PROTO_UDP);
	nft_elem_key_port(&in[n], &off, 30053);
	in[n].verdict = 7;
	in[n].aff_timeout = 60;
	in[n].aff_mode = NFT_AFF_MASQ;
	n++;
	off = 0;
	nft_elem_init(&in[n], NFT_SET_EMPTY_NP, AF_INET);
	nft_elem_key_proto(&in[n], &off, INET_PROTO_TCP);
	nft_elem_key_port(&in[n], &off, 30080);
	in[n].verdict = NFT_VERDICT_DROP;
	n++;
	/* A slot, and source ranges of both families (the /24 start has a low
	 * bit set in its third byte: /23 would end at the same address). */
	off = 0;
	nft_elem_init(&in[n], NFT_SET_SLOTS, AF_INET);
	nft_elem_key_addr(&in[n], &off, &svc);
	nft_elem_key_proto(&in[n], &off, INET_PROTO_TCP);
	nft_elem_key_port(&in[n], &off, 80);
	nft_elem_key_slot(&in[n], &off, 5);
	nft_elem_data_endpoint(&in[n], &ep, 9000);
	n++;
	off = 0;
	nft_elem_init(&in[n], NFT_SET_RANGES, AF_INET);
	nft_elem_key_addr(&in[n], &off, &svc);
	nft_elem_key_proto(&in[n], &off, INET_PROTO_TCP);
	nft_elem_key_port(&in[n], &off, 80);
	nft_elem_key_addr(&in[n], &off, &net);
	in[n].plen = 24;
	n++;
	off = 0;
	nft_elem_init(&in[n], NFT_SET_RANGES, AF_INET6);
	nft_elem_key_addr(&in[n], &off, &svc6);
	nft_elem_key_proto(&in[n], &off, INET_PROTO_TCP);
	nft_elem_key_port(&in[n], &off, 80);
	nft_elem_key_addr(&in[n], &off, &net6);
	in[n].plen = 48;
	n++;

	/* Slot digests of a frontend and of a wildcard node port. */
	nft_elem_init_digest(&in[n++], &in[0], 0x0123456789abcdefull);
	nft_elem_init_digest(&in[n++], &in[5], 0xfedcba9876543210ull);

	for (size_t i = 0; i < n; i++) {
		struct elem_seen seen;
		struct nft_kernel_elem k;

		kernel_form(&in[i], &seen, &k);
		cr_assert_eq(nft_elem_from_kernel(&out, (enum nft_set_id)in[i].set, in[i].family, &k), 0,
			     "element %zu (set %s) not read back", i, nft_set_name((enum nft_set_id)in[i].set));
		cr_assert_eq(nft_elem_cmp(&in[i], &out, NULL), 0, "element %zu (set %s) read back differently", i,
			     nft_set_name((enum nft_set_id)in[i].set));
	}

	/* What ferry does not write is refused, not guessed. */
	{
		struct elem_seen seen;
		struct nft_kernel_elem k;

		kernel_form(&in[0], &seen, &k);
		k.chain = "empty_check";
		cr_assert_eq(nft_elem_from_kernel(&out, NFT_SET_FE, AF_INET, &k), -EPROTO);
		k.chain = "lb_0";
		cr_assert_eq(nft_elem_from_kernel(&out, NFT_SET_FE, AF_INET, &k), -EPROTO);
		k.chain = "nplb_3";  /* a node-port chain in the frontend map */
		cr_assert_eq(nft_elem_from_kernel(&out, NFT_SET_FE, AF_INET, &k), -EPROTO);
		k.chain = "lb_3";
		k.key_len = 8;
		cr_assert_eq(nft_elem_from_kernel(&out, NFT_SET_FE, AF_INET, &k), -EPROTO);
		kernel_form(&in[8], &seen, &k);
		seen.key_end[14] = 0;  /* ends at 10.0.0.255, before its start */
		cr_assert_eq(nft_elem_from_kernel(&out, NFT_SET_RANGES, AF_INET, &k), -EPROTO);
		/* ferry writes no comments: an element with one is not ferry's. */
		kernel_form(&in[0], &seen, &k);
		cr_assert_eq(seen.ulen, 0);
		k.udata = "\0\2x";
		k.udata_len = 4;
		cr_assert_eq(nft_elem_from_kernel(&out, NFT_SET_FE, AF_INET, &k), -EPROTO);
	}
}

Test(nft_rules, knows_its_own_chains)
{
	cr_assert(nft_ruleset_has_chain("nat_prerouting"));
	cr_assert(nft_ruleset_has_chain("services"));
	cr_assert(nft_ruleset_has_chain("lb_1"));
	cr_assert(nft_ruleset_has_chain("nplb_1024"));
	cr_assert(nft_ruleset_has_chain("aff_10800_3_m"));
	cr_assert(nft_ruleset_has_chain("npaff_60_2"));
	cr_assert_not(nft_ruleset_has_chain("lb_33"), "no chain for 33 slots");
	cr_assert_not(nft_ruleset_has_chain("filter_forward"), "an older version's chain");
	cr_assert_not(nft_ruleset_has_chain("empty_check"));
	/* The guards of the service range and the short-circuit. */
	cr_assert(nft_ruleset_has_chain("guard_forward"));
	cr_assert(nft_ruleset_has_chain("guard_output"));
	cr_assert(nft_ruleset_has_chain("cluster_ips_check"));
	cr_assert(nft_ruleset_has_chain(NFT_CIDRS_CHAIN));
	cr_assert(nft_ruleset_has_chain("sclb_1"));
	cr_assert(nft_ruleset_has_chain("scnplb_1024"));
	cr_assert(nft_ruleset_has_chain("scaff_60_2_l"));
	cr_assert(nft_ruleset_has_chain("scnpaff_60_2_l"));
	cr_assert_not(nft_ruleset_has_chain("sclb_33"));
}

/* The short-circuit maps jump (a connection their chain does not take
 * comes back to the frontend's own dispatch), to chains named for them;
 * the cluster-IP guard set holds bare addresses. Read back as written,
 * and what ferry does not write there is refused. */
Test(nft_sets, short_circuit_and_guard_elements)
{
	struct inet_addr vip = addr("10.99.0.1"), cip6 = addr("fd00:96::10");
	struct nft_elem in[4], out;
	size_t off = 0;
	static const char *const chains[] = { "sclb_2", "scnpaff_60_3_l", NULL, NULL };

	nft_elem_init(&in[0], NFT_SET_SC_FE, AF_INET);
	nft_elem_key_addr(&in[0], &off, &vip);
	nft_elem_key_proto(&in[0], &off, INET_PROTO_TCP);
	nft_elem_key_port(&in[0], &off, 80);
	in[0].verdict = 2;
	off = 0;
	nft_elem_init(&in[1], NFT_SET_SC_NP, AF_INET6);
	nft_elem_key_proto(&in[1], &off, INET_PROTO_UDP);
	nft_elem_key_port(&in[1], &off, 30053);
	in[1].verdict = 3;
	in[1].aff_timeout = 60;
	in[1].aff_mode = NFT_AFF_LOCAL;
	off = 0;
	nft_elem_init(&in[2], NFT_SET_CLUSTER_IPS, AF_INET6);
	nft_elem_key_addr(&in[2], &off, &cip6);
	cr_assert_eq(off, nft_set_key_len(NFT_SET_CLUSTER_IPS, AF_INET6));
	cr_assert_eq(nft_set_key_len(NFT_SET_CLUSTER_IPS, AF_INET), 4);
	cr_assert_eq(nft_set_data_len(NFT_SET_CLUSTER_IPS, AF_INET), 0);
	nft_elem_init_digest(&in[3], &in[1], 42);
	cr_assert_eq(in[3].set, NFT_SET_NP_DIGEST, "a short-circuit node port's digest is a node port's");
	for (size_t i = 0; i < 4; i++) {
		struct elem_seen seen;
		struct nft_kernel_elem k;

		kernel_form(&in[i], &seen, &k);
		if (chains[i]) {
			cr_assert_eq(seen.verdict, (uint32_t)NFT_JUMP);
			cr_assert_str_eq(seen.chain, chains[i]);
		}
		cr_assert_eq(nft_elem_from_kernel(&out, (enum nft_set_id)in[i].set, in[i].family, &k), 0,
			     "element %zu (set %s) not read back", i, nft_set_name((enum nft_set_id)in[i].set));
		cr_assert_eq(nft_elem_cmp(&in[i], &out, NULL), 0, "element %zu read back differently", i);
	}
	{
		struct elem_seen seen;
		struct nft_kernel_elem k;

		kernel_form(&in[0], &seen, &k);
		k.verdict_code = (uint32_t)NFT_GOTO;
		cr_assert_eq(nft_elem_from_kernel(&out, NFT_SET_SC_FE, AF_INET, &k), -EPROTO, "goto in @sc_fe");
		k.verdict_code = (uint32_t)NFT_JUMP;
		k.chain = "lb_2";
		cr_assert_eq(nft_elem_from_kernel(&out, NFT_SET_SC_FE, AF_INET, &k), -EPROTO, "lb chain in @sc_fe");
		k.chain = "do_reject";
		cr_assert_eq(nft_elem_from_kernel(&out, NFT_SET_SC_FE, AF_INET, &k), -EPROTO);
		k.chain = NULL;
		k.verdict_code = NF_DROP;
		cr_assert_eq(nft_elem_from_kernel(&out, NFT_SET_SC_FE, AF_INET, &k), -EPROTO, "drop in @sc_fe");
		k.chain = "sclb_2";
		k.verdict_code = (uint32_t)NFT_JUMP;
		cr_assert_eq(nft_elem_from_kernel(&out, NFT_SET_FE, AF_INET, &k), -EPROTO, "jump in @fe");
		k.verdict_code = (uint32_t)NFT_GOTO;
		cr_assert_eq(nft_elem_from_kernel(&out, NFT_SET_FE, AF_INET, &k), -EPROTO, "sclb chain in @fe");
	}
	/* The short-circuit's slot numbers avoid the masquerade bit. */
	cr_assert_eq(nft_sc_slot_base(0x4000), 0x10000);
	cr_assert_eq(nft_sc_slot_base(0x10000), 0x20000);
	cr_assert_gt(nft_sc_slot_base(0x4000), NFT_SLOTS_MAX);
}

Test(nft_rules, ruleset_tag_names_the_rules)
{
	struct nft_ruleset_cfg cfg = { .masq_mark = 0x4000 };
	char t1[NFT_RULESET_TAG_LEN], t2[NFT_RULESET_TAG_LEN], t3[NFT_RULESET_TAG_LEN];
	struct nft_batch *b = nft_batch_new();
	size_t len;
	const char *data;

	cr_assert_eq(nft_ruleset_tag(&cfg, t1), 0);
	cr_assert_eq(nft_ruleset_tag(&cfg, t2), 0);
	cr_assert_str_eq(t1, t2, "same configuration, same tag");
	cr_assert_eq(strncmp(t1, "ferry ruleset ", 14), 0);
	cfg.masq_mark = 0x2000;
	cr_assert_eq(nft_ruleset_tag(&cfg, t3), 0);
	cr_assert_str_neq(t1, t3, "another mark bit, another tag");
	/* The tag travels as the comment of one rule. */
	cfg.tag = t3;
	cr_assert_eq(nft_ruleset_msgs(b, AF_INET, &cfg), 0);
	data = nft_batch_data(b, &len);
	cr_assert(memmem(data, len, t3, strlen(t3) + 1) != NULL, "tag not in the messages");
	nft_batch_free(b);
}

Test(nft_sets, delete_messages_carry_no_data)
{
	struct nft_batch *b = nft_batch_new();
	static struct nft_elem e[3000];
	static const struct nft_elem *pe[3000];
	struct inet_addr a = addr("10.96.0.10");

	for (int i = 0; i < 3000; i++) {
		size_t off = 0;
		nft_elem_init(&e[i], NFT_SET_SLOTS, AF_INET);
		nft_elem_key_addr(&e[i], &off, &a);
		nft_elem_key_proto(&e[i], &off, INET_PROTO_TCP);
		nft_elem_key_port(&e[i], &off, 80);
		nft_elem_key_slot(&e[i], &off, (uint32_t)i);
		pe[i] = &e[i];
	}
	cr_assert_eq(nft_elems_msgs(b, false, pe, 3000), 0);
	/* Chunked: one element list attribute cannot exceed 64 KiB (3000
	 * slot keys of 28 bytes on the wire do not fit). */
	cr_assert_gt(nft_batch_count(b), 1);
	size_t len;
	const struct nlmsghdr *nlh = nft_batch_data(b, &len);
	cr_assert_eq(NFNL_MSG_TYPE(nlh->nlmsg_type), NFT_MSG_DELSETELEM);
	nft_batch_free(b);
}

/* The content digest: a hash that sees every field nft_elem_cmp compares,
 * and its element, which no frontend's digest element can be taken for. */
Test(nft_sets, content_digest_hash_and_element)
{
	struct inet_addr a = addr("10.96.0.10"), ep = addr("10.0.0.1");
	struct nft_elem e, f, d, fd;
	const struct nft_elem *pd = &d;
	struct elem_seen seen = { 0 };
	struct nft_batch *b = nft_batch_new();
	uint64_t got = 0, h;
	size_t off = 0;

	nft_elem_init(&e, NFT_SET_SLOTS, AF_INET);
	nft_elem_key_addr(&e, &off, &a);
	nft_elem_key_proto(&e, &off, INET_PROTO_TCP);
	nft_elem_key_port(&e, &off, 80);
	nft_elem_key_slot(&e, &off, 1);
	nft_elem_data_endpoint(&e, &ep, 9000);
	h = nft_elem_hash(&e);
	f = e;
	cr_expect_eq(nft_elem_hash(&f), h, "a pure function of the element");
	f.data[5] ^= 1; /* the endpoint's port */
	cr_expect_neq(nft_elem_hash(&f), h, "data counts");
	f = e;
	f.key[12] ^= 1; /* the slot number */
	cr_expect_neq(nft_elem_hash(&f), h, "the key counts");
	f = e;
	f.family = AF_INET6;
	cr_expect_neq(nft_elem_hash(&f), h, "the family counts");
	f = e;
	f.set = NFT_SET_AFF_SLOTS;
	cr_expect_neq(nft_elem_hash(&f), h, "the set counts");
	f = e;
	f.verdict = 3;
	cr_expect_neq(nft_elem_hash(&f), h, "the verdict counts");
	f = e;
	f.aff_timeout = 10800;
	cr_expect_neq(nft_elem_hash(&f), h, "the affinity timeout counts");
	f = e;
	f.plen = 24;
	cr_expect_neq(nft_elem_hash(&f), h, "the prefix length counts");

	nft_elem_init_content_digest(&d, 0x0123456789abcdefull);
	cr_assert(nft_elem_is_content_digest(&d, &got));
	cr_expect_eq(got, 0x0123456789abcdefull);
	/* A frontend's own digest element is none, even on 0.0.0.0. */
	off = 0;
	nft_elem_init(&f, NFT_SET_FE, AF_INET);
	nft_elem_key_addr(&f, &off, &(struct inet_addr){ .family = AF_INET });
	nft_elem_key_proto(&f, &off, INET_PROTO_TCP);
	nft_elem_key_port(&f, &off, 80);
	nft_elem_init_digest(&fd, &f, 0x0123456789abcdefull);
	cr_expect_not(nft_elem_is_content_digest(&fd, NULL));
	cr_expect_not(nft_elem_is_content_digest(&e, NULL));
	/* Sent and read back like any digest element. */
	cr_assert_eq(nft_elems_msgs(b, true, &pd, 1), 0);
	each_msg(b, parse_elems, &seen);
	cr_assert_eq(seen.n, 1);
	cr_assert_str_eq(seen.set, "digest");
	cr_assert_eq(seen.klen, nft_set_key_len(NFT_SET_DIGEST, AF_INET));
	cr_expect_eq(memcmp(seen.key, d.key, seen.klen), 0);
	cr_expect_eq(memcmp(seen.key, "\0\0\0\0" "\0\0\0\0" "\0\0\0\0", 12), 0, "no frontend's key");
	{
		struct nft_kernel_elem k = { .key = seen.key, .key_len = seen.klen };
		struct nft_elem back;

		cr_assert_eq(nft_elem_from_kernel(&back, NFT_SET_DIGEST, AF_INET, &k), 0);
		cr_expect_eq(nft_elem_cmp(&back, &d, NULL), 0);
		cr_expect(nft_elem_is_content_digest(&back, &got));
		cr_expect_eq(got, 0x0123456789abcdefull);
	}
	nft_batch_free(b);
}

/* The hairpin digest: another table digest element, told apart from the
 * content digest by its port; neither is a frontend's. */
Test(nft_sets, hairpin_digest_element)
{
	struct nft_elem c, h, f;
	enum nft_table_digest kind = NFT_DIGEST_CONTENT;
	uint64_t got = 0;
	uint16_t port_be;

	nft_elem_init_content_digest(&c, 42);
	nft_elem_init_table_digest(&h, NFT_DIGEST_HAIRPIN, 42);
	cr_expect_neq(nft_elem_cmp(&c, &h, NULL), 0, "two elements");
	cr_assert(nft_elem_is_table_digest(&h, &kind, &got));
	cr_expect_eq(kind, NFT_DIGEST_HAIRPIN);
	cr_expect_eq(got, 42);
	cr_expect_not(nft_elem_is_content_digest(&h, NULL));
	cr_assert(nft_elem_is_table_digest(&c, &kind, NULL));
	cr_expect_eq(kind, NFT_DIGEST_CONTENT);
	memcpy(&port_be, h.key + 8, 2);
	cr_expect_eq(ntohs(port_be), 1, "port 1 of no address, no protocol");
	/* Port 2 of no protocol is no kind of digest ferry writes. */
	f = h;
	port_be = htons(2);
	memcpy(f.key + 8, &port_be, 2);
	cr_expect_not(nft_elem_is_table_digest(&f, NULL, NULL));
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

/* Every rule of one chain, as expression names (one string per rule). */
struct chain_seen {
	const char *chain;
	char rules[8][200];
	int n;
	uint32_t numgen_offset;     /* the last numgen's offset */
	char lookups[8][32];        /* sets the chain looks up, in order */
	int n_lookups;
	struct {
		bool seen;
		uint32_t hook;
		int32_t prio;
		char type[16];
	} base;
};

static int chain_expr_cb(struct nftnl_expr *e, void *ctx)
{
	struct chain_seen *c = ctx;
	const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);

	expr_names(e, c->rules[c->n]);
	if (strcmp(name, "numgen") == 0)
		c->numgen_offset = nftnl_expr_get_u32(e, NFTNL_EXPR_NG_OFFSET);
	if (strcmp(name, "lookup") == 0 && c->n_lookups < 8)
		snprintf(c->lookups[c->n_lookups++], 32, "%s", nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET));
	return 0;
}

static void parse_chain(const struct nlmsghdr *nlh, void *ctx)
{
	struct chain_seen *c = ctx;

	if (NFNL_MSG_TYPE(nlh->nlmsg_type) == NFT_MSG_NEWCHAIN) {
		struct nftnl_chain *ch = nftnl_chain_alloc();

		cr_assert_eq(nftnl_chain_nlmsg_parse(nlh, ch), 0);
		if (strcmp(nftnl_chain_get_str(ch, NFTNL_CHAIN_NAME), c->chain) == 0 &&
		    nftnl_chain_is_set(ch, NFTNL_CHAIN_HOOKNUM)) {
			c->base.seen = true;
			c->base.hook = nftnl_chain_get_u32(ch, NFTNL_CHAIN_HOOKNUM);
			c->base.prio = nftnl_chain_get_s32(ch, NFTNL_CHAIN_PRIO);
			snprintf(c->base.type, sizeof(c->base.type), "%s", nftnl_chain_get_str(ch, NFTNL_CHAIN_TYPE));
		}
		nftnl_chain_free(ch);
		return;
	}
	if (NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWRULE)
		return;
	struct nftnl_rule *r = nftnl_rule_alloc();
	cr_assert_eq(nftnl_rule_nlmsg_parse(nlh, r), 0);
	if (strcmp(nftnl_rule_get_str(r, NFTNL_RULE_CHAIN), c->chain) == 0 && c->n < 8) {
		nftnl_expr_foreach(r, chain_expr_cb, c);
		c->n++;
	}
	nftnl_rule_free(r);
}

static struct chain_seen chain_of(struct nft_batch *b, const char *chain)
{
	struct chain_seen c = { .chain = chain };

	each_msg(b, parse_chain, &c);
	return c;
}

/* kube-proxy's cluster-ips-check (filter forward and output, after the
 * DNAT, new connections only) and the short-circuit chains, as the kernel
 * gets them. */
Test(nft_rules, guards_and_short_circuit_round_trip)
{
	struct nft_batch *b = nft_batch_new();
	struct inet_prefix cidr;
	struct nft_ruleset_cfg cfg = { .masq_mark = 0x4000 };
	struct chain_seen c;

	cr_assert_eq(inet_prefix_parse("10.244.0.0/16", &cidr), 0);
	cfg.cluster_cidrs = &cidr;
	cfg.n_cluster_cidrs = 1;
	cr_assert_eq(nft_ruleset_msgs(b, AF_INET, &cfg), 0);
	for (int i = 0; i < 2; i++) {
		c = chain_of(b, i ? "guard_output" : "guard_forward");
		cr_assert(c.base.seen);
		cr_assert_str_eq(c.base.type, "filter");
		cr_assert_eq(c.base.hook, i ? NF_INET_LOCAL_OUT : NF_INET_FORWARD);
		cr_assert_gt(c.base.prio, -100, "after the DNAT");
		cr_assert_eq(c.n, 1);
		cr_assert_str_eq(c.rules[0], "ct bitwise cmp immediate ", "ct state new jump cluster_ips_check");
	}
	c = chain_of(b, "cluster_ips_check");
	cr_assert_eq(c.n, 2);
	cr_assert_str_eq(c.rules[0], "payload lookup immediate ");
	cr_assert_str_eq(c.lookups[0], "cluster_ips");
	cr_assert_str_eq(c.rules[1], "immediate ");
	c = chain_of(b, NFT_CIDRS_CHAIN);
	cr_assert_eq(c.n, 0, "the CIDR rules are written apart (nft_service_cidrs_msgs)");
	/* The short-circuit dispatch comes before the frontend's own and its
	 * empty check. */
	c = chain_of(b, "services");
	cr_assert_eq(c.n_lookups, 7);
	cr_assert_str_eq(c.lookups[4], "sc_fe");
	cr_assert_str_eq(c.lookups[5], "fe");
	cr_assert_str_eq(c.lookups[6], "empty_fe");
	c = chain_of(b, "nodeports");
	cr_assert_str_eq(c.lookups[1], "sc_np");
	cr_assert_str_eq(c.lookups[2], "np");
	/* sclb_3: others return (pod detection, fib saddr type), the node is
	 * marked, then the slots from the base. */
	c = chain_of(b, "sclb_3");
	cr_assert_eq(c.n, 3);
	cr_assert_str_eq(c.rules[0], "payload bitwise cmp fib cmp immediate ");
	cr_assert_str_eq(c.rules[1], "payload bitwise cmp meta bitwise meta ");
	cr_assert_str_eq(c.rules[2], "payload meta payload numgen lookup nat ");
	cr_assert_eq(c.numgen_offset, nft_sc_slot_base(0x4000));
	c = chain_of(b, "scnplb_1024");
	cr_assert_eq(c.n, 3);
	cr_assert_str_eq(c.rules[2], "meta payload numgen lookup nat ");
	cr_assert_str_eq(c.lookups[0], "np_slots");
	/* No detection in the family: every connection but the node's returns. */
	nft_batch_clear(b);
	cr_assert_eq(nft_ruleset_msgs(b, AF_INET6, &cfg), 0);
	c = chain_of(b, "sclb_3");
	cr_assert_str_eq(c.rules[0], "fib cmp immediate ");
	cr_assert_str_eq(c.rules[1], "meta bitwise meta ");
	nft_batch_free(b);
}

/* The service CIDRs: one drop rule each in the family's table, the network
 * part compared, after emptying the chain. */
Test(nft_rules, service_cidrs_rules)
{
	struct nft_batch *b = nft_batch_new();
	struct inet_prefix p[3];
	struct chain_seen c;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	cr_assert_eq(inet_prefix_parse("10.96.0.0/16", &p[0]), 0);
	cr_assert_eq(inet_prefix_parse("fd00:96::/112", &p[1]), 0);
	cr_assert_eq(inet_prefix_parse("10.100.0.0/24", &p[2]), 0);
	cr_assert_eq(nft_service_cidrs_msgs(b, AF_INET, p, 3), 0);
	cr_assert_eq(nft_batch_count(b), 3, "the flush and one rule per IPv4 CIDR");
	c = chain_of(b, NFT_CIDRS_CHAIN);
	cr_assert_eq(c.n, 2);
	cr_assert_str_eq(c.rules[0], "payload bitwise cmp immediate ");
	nft_batch_clear(b);
	cr_assert_eq(nft_service_cidrs_msgs(b, AF_INET6, p, 0), 0);
	cr_assert_eq(nft_batch_count(b), 1, "no CIDR: the chain is emptied");
	nft_batch_free(b);

	f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	nft_service_cidrs_print(f, AF_INET6, p, 3);
	fclose(f);
	cr_assert_str_eq(text, "add rule ip6 ferry service_cidrs_check ip6 daddr fd00:96::/112 drop\n");
	free(text);
}

static struct plan_endpoint eps3[3];
static struct plan_epset epset3 = { .key = "default/web:http/TCP", .endpoints = eps3, .n_endpoints = 3 };

Test(nft_elems, frontend_translation)
{
	struct plan_frontend fe = { .kind = FRONTEND_CLUSTER_IP, .proto = INET_PROTO_TCP, .port = 80,
				    .epset = &epset3, .masquerade = PLAN_MASQ_UNLESS_LOCAL };
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
	cr_assert_eq(counts[NFT_SET_DIGEST], 1, "one slot digest per frontend");
	{
		/* The digest follows the slots: another endpoint port, another digest. */
		struct nft_elem before = vec.v[vec.n - 1];

		cr_assert_eq(before.set, NFT_SET_DIGEST, "the digest sorts last");
		nft_elem_vec_done(&vec);
		eps3[2].port = 9002;
		cr_assert_eq(nft_frontend_elems(&fe, &cfg, &vec, NULL), 0);
		cr_assert_eq(vec.v[vec.n - 1].set, NFT_SET_DIGEST);
		cr_assert_eq(memcmp(before.key, vec.v[vec.n - 1].key, 12), 0, "same frontend");
		cr_assert_neq(memcmp(before.key, vec.v[vec.n - 1].key, sizeof(before.key)), 0, "new digest");
		eps3[2].port = 9001;
	}
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

static const struct nft_elem *find_set(const struct nft_elem_vec *vec, enum nft_set_id set, size_t *ret_count);

/* The short-circuit of an externalTrafficPolicy Local frontend and the
 * cluster IP's guard element, as nft_frontend_elems translates them. */
Test(nft_elems, short_circuit_and_guard_translation)
{
	struct plan_endpoint all[2], local[1];
	struct plan_epset eps_all = { .key = "default/web:http/TCP", .endpoints = all, .n_endpoints = 2 };
	struct plan_epset eps_local = { .key = "default/web:http/TCP/local", .endpoints = local };
	struct plan_frontend fe = { .kind = FRONTEND_LOAD_BALANCER, .proto = INET_PROTO_TCP, .port = 80,
				    .epset = &eps_local, .short_circuit = &eps_all, .when_empty = EMPTY_DROP };
	struct nft_elems_cfg cfg = { .masq_mark = 0x4000 };
	struct nft_elem_vec vec = { 0 };
	const struct nft_elem *e, *d;
	uint32_t base = nft_sc_slot_base(0x4000), slot;
	size_t n;

	fe.addr = addr("10.98.0.1");
	all[0] = (struct plan_endpoint){ .addr = addr("10.0.2.2"), .port = 9000 };
	all[1] = (struct plan_endpoint){ .addr = addr("10.0.2.3"), .port = 9000, .local = true };
	local[0] = all[1];

	/* The Local set is empty: dropped, but the short-circuit forwards. */
	cr_assert_eq(nft_frontend_elems(&fe, &cfg, &vec, NULL), 0);
	e = find_set(&vec, NFT_SET_EMPTY_FE, &n);
	cr_assert_eq(n, 1);
	cr_assert_eq(e->verdict, NFT_VERDICT_DROP);
	cr_assert_null(find_set(&vec, NFT_SET_FE, &n));
	e = find_set(&vec, NFT_SET_SC_FE, &n);
	cr_assert_eq(n, 1);
	cr_assert_eq(e->verdict, 2);
	e = find_set(&vec, NFT_SET_SLOTS, &n);
	cr_assert_eq(n, 2);
	for (size_t i = 0; i < 2; i++) {
		memcpy(&slot, e[i].key + 12, 4);
		cr_assert_eq(slot, base + i, "slot %zu numbered from the base", i);
		cr_assert_eq(memcmp(e[i].data, all[i].addr.u.bytes, 4), 0);
	}
	find_set(&vec, NFT_SET_HAIRPIN, &n);
	cr_assert_eq(n, 1, "the local endpoint of the cluster-wide set");
	cr_assert_null(find_set(&vec, NFT_SET_CLUSTER_IPS, &n), "not a cluster IP");
	d = find_set(&vec, NFT_SET_DIGEST, &n);
	cr_assert_eq(n, 1, "a digest keyed by the frontend");
	cr_assert_eq(d, &vec.v[vec.n - 1], "the digest sorts last");
	for (size_t i = 1; i < vec.n; i++)
		cr_assert_lt(nft_elem_cmp(&vec.v[i - 1], &vec.v[i], NULL), 0, "sorted, unique");
	nft_elem_vec_done(&vec);

	/* With the local endpoint: both dispatches; one digest for all slots. */
	eps_local.n_endpoints = 1;
	cr_assert_eq(nft_frontend_elems(&fe, &cfg, &vec, NULL), 0);
	find_set(&vec, NFT_SET_FE, &n);
	cr_assert_eq(n, 1);
	find_set(&vec, NFT_SET_SC_FE, &n);
	cr_assert_eq(n, 1);
	find_set(&vec, NFT_SET_SLOTS, &n);
	cr_assert_eq(n, 3);
	find_set(&vec, NFT_SET_DIGEST, &n);
	cr_assert_eq(n, 1);
	find_set(&vec, NFT_SET_MASQ_FE, &n);
	cr_assert_eq(n, 0, "Local: never masqueraded by the frontend's own marks");
	nft_elem_vec_done(&vec);

	/* Affinity, on a wildcard node port: the short-circuit's slots in both
	 * forms (the node's marked, the pods' not), "local" mode. */
	eps_all.affinity = eps_local.affinity = true;
	eps_all.affinity_timeout_s = eps_local.affinity_timeout_s = 60;
	fe.kind = FRONTEND_NODE_PORT;
	fe.addr = inet_addr_any(AF_INET);
	fe.port = 30080;
	cr_assert_eq(nft_frontend_elems(&fe, &cfg, &vec, NULL), 0);
	e = find_set(&vec, NFT_SET_SC_NP, &n);
	cr_assert_eq(n, 1);
	cr_assert_eq(e->aff_mode, NFT_AFF_LOCAL);
	cr_assert_eq(e->aff_timeout, 60);
	{
		char chain[48];
		cr_assert_str_eq(nft_verdict_chain(e, chain, sizeof(chain)), "scnpaff_60_2_l");
	}
	e = find_set(&vec, NFT_SET_NP_AFF_SLOTS, &n);
	cr_assert_eq(n, 5, "1 own slot, 2 x 2 short-circuit slots");
	for (size_t i = 1; i < n; i++) {
		memcpy(&slot, e[i].key + 8, 4);
		cr_assert(slot == base + (i - 1) / 2 || slot == ((base + (i - 1) / 2) | 0x4000), "slot 0x%x", slot);
	}
	find_set(&vec, NFT_SET_NP_DIGEST, &n);
	cr_assert_eq(n, 1);
	nft_elem_vec_done(&vec);

	/* A cluster IP is guarded, with or without endpoints. */
	fe = (struct plan_frontend){ .kind = FRONTEND_CLUSTER_IP, .addr = addr("fd00:96::10"), .proto = INET_PROTO_UDP,
				     .port = 53, .epset = &eps_local };
	eps_local.n_endpoints = 0;
	cr_assert_eq(nft_frontend_elems(&fe, &cfg, &vec, NULL), 0);
	e = find_set(&vec, NFT_SET_CLUSTER_IPS, &n);
	cr_assert_eq(n, 1);
	cr_assert_eq(memcmp(e->key, fe.addr.u.bytes, 16), 0);
	find_set(&vec, NFT_SET_EMPTY_FE, &n);
	cr_assert_eq(n, 1);
	nft_elem_vec_done(&vec);
}

Test(nft_render, accepted_by_nft_check)
{
	struct plan_frontend fe[2] = {
		{ .kind = FRONTEND_CLUSTER_IP, .proto = INET_PROTO_TCP, .port = 80, .epset = &epset3,
		  .masquerade = PLAN_MASQ_UNLESS_LOCAL },
		{ .kind = FRONTEND_LOAD_BALANCER, .proto = INET_PROTO_TCP, .port = 80, .epset = &epset3,
		  .masquerade = PLAN_MASQ_ALWAYS },
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
	{
		/* Rendered with options, as `ferry plan --masquerade-bit 13
		 * --cluster-cidr 10.244.0.0/16` would. */
		struct inet_prefix cidr;
		struct nftables_options bcfg = { .masquerade_mark = 0x2000 };

		cr_assert_eq(inet_prefix_parse("10.244.0.0/16", &cidr), 0);
		bcfg.local.cluster_cidrs = &cidr;
		bcfg.local.n_cluster_cidrs = 1;
		nftables_render(&plan, &bcfg, PLAN_FORMAT_TEXT, f);
	}
	fclose(f);
	{
		/* The options show in the rules. */
		char *text = NULL;
		size_t tlen = 0;
		FILE *m = open_memstream(&text, &tlen);
		struct nftables_options bcfg = { .masquerade_mark = 0x2000 };

		cr_assert(m);
		nftables_render(&plan, &bcfg, PLAN_FORMAT_TEXT, m);
		fclose(m);
		cr_assert(strstr(text, "masquerade mark 0x2000") && strstr(text, "0x00002000"), "%s", text);
		free(text);
	}
	snprintf(cmd, sizeof(cmd), "unshare -n nft -c -f %s", path);
	int rc = system(cmd);
	unlink(path);
	if (WIFEXITED(rc) && WEXITSTATUS(rc) == 127)
		cr_skip_test("unshare not available");
	cr_assert_eq(rc, 0, "nft -c -f refused the rendered ruleset");
}

/* ---- local traffic by input interface (--detect-local-mode) ---- */

/* The rule of chain services that looks up local_fe, as the kernel gets it. */
struct local_seen {
	int rules;            /* every NEWRULE */
	int local_rules;      /* those looking up local_fe */
	char exprs[200];      /* expression names of that rule */
	uint8_t ifname[16];   /* data of the cmp after "meta load iifname" */
	uint32_t ifname_len, ifname_op;
	bool after_iifname, has_local;
};

static int local_expr_cb(struct nftnl_expr *e, void *ctx)
{
	struct local_seen *seen = ctx;
	const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);

	if (strcmp(name, "lookup") == 0 && strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET), "local_fe") == 0)
		seen->has_local = true;
	if (strcmp(name, "cmp") == 0 && seen->after_iifname) {
		const void *p = nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA, &seen->ifname_len);
		memcpy(seen->ifname, p, seen->ifname_len < 16 ? seen->ifname_len : 16);
		seen->ifname_op = nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP);
	}
	seen->after_iifname = strcmp(name, "meta") == 0 &&
			      nftnl_expr_is_set(e, NFTNL_EXPR_META_DREG) &&
			      nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY) == NFT_META_IIFNAME;
	return 0;
}

static void parse_local(const struct nlmsghdr *nlh, void *ctx)
{
	struct local_seen *seen = ctx;
	char names[200] = "";

	if (NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWRULE)
		return;
	struct nftnl_rule *r = nftnl_rule_alloc();
	cr_assert_eq(nftnl_rule_nlmsg_parse(nlh, r), 0);
	seen->rules++;
	seen->has_local = false;
	nftnl_expr_foreach(r, local_expr_cb, seen);
	if (seen->has_local && strcmp(nftnl_rule_get_str(r, NFTNL_RULE_CHAIN), "services") == 0) {
		seen->local_rules++;
		nftnl_expr_foreach(r, expr_cb, names);
		snprintf(seen->exprs, sizeof(seen->exprs), "%s", names);
	}
	nftnl_rule_free(r);
}

static struct local_seen local_msgs(const struct nft_ruleset_cfg *cfg, int family)
{
	struct nft_batch *b = nft_batch_new();
	struct local_seen seen = { 0 };

	cr_assert_eq(nft_ruleset_msgs(b, family, cfg), 0);
	each_msg(b, parse_local, &seen);
	nft_batch_free(b);
	return seen;
}

Test(nft_rules, local_by_interface_round_trip)
{
	struct nft_ruleset_cfg none = { .masq_mark = 0x4000 }, cfg = none;
	struct inet_prefix cidr;
	static const uint8_t cbr0[16] = { 'c', 'b', 'r', '0' };

	cr_assert_eq(inet_prefix_parse("10.244.0.0/16", &cidr), 0);
	for (int fam = 0; fam < 2; fam++) {
		int family = fam ? AF_INET6 : AF_INET;
		struct local_seen base = local_msgs(&none, family), s;

		cr_assert_eq(base.local_rules, 0, "no detection: no local_fe rule");
		cr_assert_not(nft_ruleset_detects_local(&none, family));

		/* InterfaceNamePrefix: one more rule in either family (a v4 CIDR
		 * is not used then), matching the prefix bytes without the NUL. */
		cfg = none;
		cfg.cluster_cidrs = &cidr;
		cfg.n_cluster_cidrs = 1;
		snprintf(cfg.local_iifname, sizeof(cfg.local_iifname), "veth");
		cfg.local_iifname_prefix = true;
		cr_assert(nft_ruleset_detects_local(&cfg, family));
		s = local_msgs(&cfg, family);
		cr_assert_eq(s.rules, base.rules + 1, "a constant ruleset: one rule more");
		cr_assert_eq(s.local_rules, 1);
		cr_assert_str_eq(s.exprs, "payload meta payload lookup meta cmp meta bitwise meta ");
		cr_assert_eq(s.ifname_op, NFT_CMP_NEQ);
		cr_assert_eq(s.ifname_len, 4);
		cr_assert_eq(memcmp(s.ifname, "veth", 4), 0);

		/* BridgeInterface: the exact name, zero-padded to IFNAMSIZ. */
		snprintf(cfg.local_iifname, sizeof(cfg.local_iifname), "cbr0");
		cfg.local_iifname_prefix = false;
		s = local_msgs(&cfg, family);
		cr_assert_eq(s.rules, base.rules + 1);
		cr_assert_eq(s.ifname_op, NFT_CMP_NEQ);
		cr_assert_eq(s.ifname_len, 16);
		cr_assert_eq(memcmp(s.ifname, cbr0, 16), 0);
	}
	/* ClusterCIDR: per family. */
	cfg = none;
	cfg.cluster_cidrs = &cidr;
	cfg.n_cluster_cidrs = 1;
	cr_assert(nft_ruleset_detects_local(&cfg, AF_INET));
	cr_assert_not(nft_ruleset_detects_local(&cfg, AF_INET6));
	cr_assert_eq(local_msgs(&cfg, AF_INET6).local_rules, 0);
}

/* The ruleset text of cfg for family, in a string to free. */
static char *ruleset_text(const struct nft_ruleset_cfg *cfg, int family)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	cr_assert_not_null(f);
	nft_ruleset_print(f, family, cfg);
	fclose(f);
	return text;
}

Test(nft_rules, local_by_interface_text)
{
	struct nft_ruleset_cfg cfg = { .masq_mark = 0x4000, .local_iifname = "veth", .local_iifname_prefix = true };

	for (int fam = 0; fam < 2; fam++) {
		char *text = ruleset_text(&cfg, fam ? AF_INET6 : AF_INET);
		cr_assert_not_null(strstr(text, "th dport @local_fe iifname != \"veth*\" meta mark set meta mark | 0x00004000"),
				   "%s", text);
		free(text);
	}
	cfg.local_iifname_prefix = false;
	snprintf(cfg.local_iifname, sizeof(cfg.local_iifname), "cbr0");
	char *text = ruleset_text(&cfg, AF_INET);
	cr_assert_not_null(strstr(text, "@local_fe iifname != \"cbr0\" meta mark set"), "%s", text);
	free(text);
}

static struct plan_endpoint aff_eps[2];
static struct plan_epset aff_epset = { .key = "default/web:http/TCP", .endpoints = aff_eps, .n_endpoints = 2,
				       .affinity = true, .affinity_timeout_s = 60 };

/* Elements of a cluster IP with ClientIP affinity and 2 endpoints. */
static void aff_elems(const char *vip, const char *ep0, const char *ep1, const struct nft_elems_cfg *cfg,
		      struct nft_elem_vec *vec)
{
	struct plan_frontend fe = { .kind = FRONTEND_CLUSTER_IP, .proto = INET_PROTO_TCP, .port = 80,
				    .epset = &aff_epset, .masquerade = PLAN_MASQ_UNLESS_LOCAL };

	fe.addr = addr(vip);
	aff_eps[0] = (struct plan_endpoint){ .addr = addr(ep0), .port = 9000 };
	aff_eps[1] = (struct plan_endpoint){ .addr = addr(ep1), .port = 9000 };
	cr_assert_eq(nft_frontend_elems(&fe, cfg, vec, NULL), 0);
}

static const struct nft_elem *find_set(const struct nft_elem_vec *vec, enum nft_set_id set, size_t *ret_count)
{
	const struct nft_elem *first = NULL;

	*ret_count = 0;
	for (size_t i = 0; i < vec->n; i++) {
		if (vec->v[i].set != set)
			continue;
		if (!first)
			first = &vec->v[i];
		(*ret_count)++;
	}
	return first;
}

Test(nft_elems, affinity_local_mode_follows_detection)
{
	struct nft_elems_cfg cfg = { .masq_mark = 0x4000 };
	struct nft_elem_vec vec = { 0 };
	const struct nft_elem *fe;
	size_t n;

	/* No detection in the family: the affinity chain never marks. */
	aff_elems("10.96.0.10", "10.0.2.2", "10.0.2.3", &cfg, &vec);
	fe = find_set(&vec, NFT_SET_FE, &n);
	cr_assert_eq(fe->aff_mode, NFT_AFF_PLAIN);
	find_set(&vec, NFT_SET_AFF_SLOTS, &n);
	cr_assert_eq(n, 2);
	nft_elem_vec_done(&vec);
	/* Detection (an interface: both families): marks non-local clients, so
	 * every slot exists with and without the masquerade bit. */
	cfg.local_v4 = cfg.local_v6 = true;
	aff_elems("fd00:96::10", "fd00:2::2", "fd00:2::3", &cfg, &vec);
	fe = find_set(&vec, NFT_SET_FE, &n);
	cr_assert_eq(fe->aff_mode, NFT_AFF_LOCAL);
	find_set(&vec, NFT_SET_AFF_SLOTS, &n);
	cr_assert_eq(n, 4);
	find_set(&vec, NFT_SET_LOCAL_FE, &n);
	cr_assert_eq(n, 1);
	nft_elem_vec_done(&vec);
}

/* nft -c -f on a file, which is then removed; skips when unshare is
 * missing. */
static void nft_check_file(const char *path)
{
	char cmd[256];
	int rc;

	snprintf(cmd, sizeof(cmd), "unshare -n nft -c -f %s", path);
	rc = system(cmd);
	unlink(path);
	if (WIFEXITED(rc) && WEXITSTATUS(rc) == 127)
		cr_skip_test("unshare not available");
	cr_assert_eq(rc, 0, "nft -c -f refused the ruleset with interface-based local detection");
}

Test(nft_render, local_by_interface_accepted_by_nft_check)
{
	struct nft_ruleset_cfg cfg = { .masq_mark = 0x4000, .local_iifname = "veth", .local_iifname_prefix = true };
	struct nft_elems_cfg ecfg = { .masq_mark = 0x4000, .local_v4 = true, .local_v6 = true };

	if (access("/usr/sbin/nft", X_OK) != 0 && access("/sbin/nft", X_OK) != 0)
		cr_skip_test("the nft binary is not installed");
	if (geteuid() != 0)
		cr_skip_test("checking with nft -c needs root (a private network namespace)");
	for (int mode = 0; mode < 2; mode++) {
		char path[] = "/tmp/ferry-nft-local.XXXXXX";
		int fd = mkstemp(path);
		FILE *f;

		if (mode == 1) {
			snprintf(cfg.local_iifname, sizeof(cfg.local_iifname), "cbr0");
			cfg.local_iifname_prefix = false;
		}
		cr_assert_geq(fd, 0);
		f = fdopen(fd, "w");
		for (int fam = 0; fam < 2; fam++) {
			struct nft_elem_vec vec = { 0 };
			size_t n;

			nft_ruleset_print(f, fam ? AF_INET6 : AF_INET, &cfg);
			if (fam)
				aff_elems("fd00:96::10", "fd00:2::2", "fd00:2::3", &ecfg, &vec);
			else
				aff_elems("10.96.0.10", "10.0.2.2", "10.0.2.3", &ecfg, &vec);
			/* The affinity chain's "local" rules use the same match. */
			char *text = NULL;
			size_t len = 0;
			FILE *mem = open_memstream(&text, &len);
			cr_assert_not_null(mem);
			nft_aff_chain_print(mem, &cfg, find_set(&vec, NFT_SET_FE, &n));
			fclose(mem);
			cr_assert_not_null(strstr(text, mode ? "iifname != \"cbr0\" meta mark set"
							     : "iifname != \"veth*\" meta mark set"), "%s", text);
			fputs(text, f);
			free(text);
			nft_elem_vec_done(&vec);
		}
		fclose(f);
		nft_check_file(path);
	}
}

/* `ferry plan --backend nftables` with the guards of the service range
 * (CIDRs of both families) and short-circuits (plain and affinity, by
 * address and on every address, both families): nft -c -f accepts it. */
Test(nft_render, guards_and_short_circuit_accepted_by_nft_check)
{
	struct plan_endpoint all4[2], all6[1], aff4[2];
	struct plan_epset eps[4] = {
		{ .key = "default/web:http/TCP", .endpoints = all4, .n_endpoints = 2 },
		{ .key = "default/web:http/TCP/local" },
		{ .key = "default/web6:http/TCP", .endpoints = all6, .n_endpoints = 1 },
		{ .key = "default/sticky:http/TCP", .endpoints = aff4, .n_endpoints = 2, .affinity = true,
		  .affinity_timeout_s = 60 },
	};
	struct plan_frontend fe[6] = {
		{ .kind = FRONTEND_CLUSTER_IP, .proto = INET_PROTO_TCP, .port = 80, .epset = &eps[0],
		  .masquerade = PLAN_MASQ_UNLESS_LOCAL },
		{ .kind = FRONTEND_CLUSTER_IP, .proto = INET_PROTO_UDP, .port = 53, .epset = &eps[0],
		  .masquerade = PLAN_MASQ_UNLESS_LOCAL },
		{ .kind = FRONTEND_NODE_PORT, .proto = INET_PROTO_TCP, .port = 30080, .epset = &eps[1],
		  .when_empty = EMPTY_DROP, .short_circuit = &eps[0] },
		{ .kind = FRONTEND_LOAD_BALANCER, .proto = INET_PROTO_TCP, .port = 80, .epset = &eps[1],
		  .when_empty = EMPTY_DROP, .short_circuit = &eps[3] },
		{ .kind = FRONTEND_NODE_PORT, .proto = INET_PROTO_TCP, .port = 30081, .epset = &eps[1],
		  .when_empty = EMPTY_DROP, .short_circuit = &eps[3] },
		{ .kind = FRONTEND_EXTERNAL_IP, .proto = INET_PROTO_TCP, .port = 80, .epset = &eps[1],
		  .when_empty = EMPTY_DROP, .short_circuit = &eps[2] },
	};
	struct inet_prefix cidrs[2], pods;
	struct plan plan = { .frontends = fe, .n_frontends = 6, .service_cidrs = cidrs, .n_service_cidrs = 2 };
	struct nftables_options opts = { .masquerade_mark = 0x4000 };
	char path[] = "/tmp/ferry-nft-guards.XXXXXX";
	char cmd[256], *text = NULL;
	size_t len = 0;
	FILE *f;
	int fd, rc;

	if (access("/usr/sbin/nft", X_OK) != 0 && access("/sbin/nft", X_OK) != 0)
		cr_skip_test("the nft binary is not installed");
	if (geteuid() != 0)
		cr_skip_test("checking with nft -c needs root (a private network namespace)");
	fe[0].addr = fe[1].addr = addr("10.96.0.10");
	fe[2].addr = inet_addr_any(AF_INET);
	fe[3].addr = addr("10.98.0.1");
	fe[4].addr = addr("10.0.1.1");
	fe[5].addr = addr("fd00:99::1");
	all4[0] = (struct plan_endpoint){ .addr = addr("10.0.2.2"), .port = 9000 };
	all4[1] = (struct plan_endpoint){ .addr = addr("10.0.2.3"), .port = 9000, .local = true };
	all6[0] = (struct plan_endpoint){ .addr = addr("fd00:2::2"), .port = 9000 };
	aff4[0] = all4[0];
	aff4[1] = all4[1];
	cr_assert_eq(inet_prefix_parse("10.96.0.0/16", &cidrs[0]), 0);
	cr_assert_eq(inet_prefix_parse("fd00:96::/112", &cidrs[1]), 0);
	cr_assert_eq(inet_prefix_parse("10.244.0.0/16", &pods), 0);
	opts.local.cluster_cidrs = &pods;
	opts.local.n_cluster_cidrs = 1;
	f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	nftables_render(&plan, &opts, PLAN_FORMAT_TEXT, f);
	fclose(f);
	cr_assert_not_null(strstr(text, "add rule ip ferry service_cidrs_check ip daddr 10.96.0.0/16 drop"), "%s", text);
	cr_assert_not_null(strstr(text, "add rule ip6 ferry service_cidrs_check ip6 daddr fd00:96::/112 drop"));
	cr_assert_not_null(strstr(text, "add element ip ferry cluster_ips {\n\t10.96.0.10\n}"), "one element per address");
	cr_assert_not_null(strstr(text, "\ttcp . 30080 : jump scnplb_2"), "the wildcard node port's short-circuit");
	cr_assert_not_null(strstr(text, "add chain ip ferry scaff_60_2_l"));
	cr_assert_not_null(strstr(text, "fd00:99::1 . tcp . 80 : jump sclb_1"));
	cr_assert_not_null(strstr(text, "ct state new jump cluster_ips_check"));
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	free(text);
	snprintf(cmd, sizeof(cmd), "unshare -n nft -c -f %s", path);
	rc = system(cmd);
	unlink(path);
	if (WIFEXITED(rc) && WEXITSTATUS(rc) == 127)
		cr_skip_test("unshare not available");
	cr_assert_eq(rc, 0, "nft -c -f refused the ruleset with guards and short-circuits");
}
