/* The packed form of committed elements (nft_pack.c): every element
 * nft_frontend_elems makes comes back equal field by field, in order, and
 * small; elements of another shape come back verbatim; a damaged or
 * truncated form is refused. Plain data: no netlink, no root. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "nft_elems.h"
#include "nft_pack.h"
#include "nft_sets.h"
#include "nft_state.h"

static struct inet_addr addr(const char *s)
{
	struct inet_addr a;

	cr_assert_eq(inet_addr_parse(s, &a), 0, "bad address %s", s);
	return a;
}

/* Field by field, padding bytes of the struct aside. */
static void expect_same(const struct nft_elem *a, const struct nft_elem *b, size_t i)
{
	cr_expect_eq(a->set, b->set, "element %zu: set", i);
	cr_expect_eq(a->family, b->family, "element %zu: family", i);
	cr_expect_eq(a->plen, b->plen, "element %zu: plen", i);
	cr_expect_eq(a->aff_mode, b->aff_mode, "element %zu: aff_mode", i);
	cr_expect_eq(a->verdict, b->verdict, "element %zu: verdict", i);
	cr_expect_eq(a->aff_timeout, b->aff_timeout, "element %zu: aff_timeout", i);
	cr_expect_arr_eq(a->key, b->key, sizeof(a->key), "element %zu: key", i);
	cr_expect_arr_eq(a->data, b->data, sizeof(a->data), "element %zu: data", i);
	cr_expect_eq(nft_elem_cmp(a, b, NULL), 0, "element %zu", i);
}

/* Pack v[0..n), unpack, compare; returns the packed size. */
static size_t round_trip(const struct nft_elem *v, size_t n)
{
	uint8_t *buf = malloc(nft_pack_bound(n) + 1);
	struct nft_elem *back = calloc(n + 1, sizeof(*back));
	size_t len;

	cr_assert(buf && back);
	len = nft_pack_elems(v, n, buf);
	cr_assert_leq(len, nft_pack_bound(n));
	cr_assert_eq(nft_pack_unpack(buf, len, back, n), 0, "unpack of %zu elements", n);
	for (size_t i = 0; i < n; i++)
		expect_same(&v[i], &back[i], i);
	/* The count is checked: one more or one fewer is refused. */
	if (n) {
		cr_expect_eq(nft_pack_unpack(buf, len, back, n - 1), -EINVAL);
		cr_expect_eq(nft_pack_unpack(buf, len, back, n + 1), -EINVAL);
	}
	free(buf);
	free(back);
	return len;
}

/* An endpoint set of n endpoints from base (IPv4 or IPv6). */
static struct plan_epset *epset(const char *fmt, size_t n, bool local, bool affinity)
{
	struct plan_epset *eps = calloc(1, sizeof(*eps));
	char buf[64];

	cr_assert_not_null(eps);
	eps->endpoints = calloc(n, sizeof(*eps->endpoints));
	cr_assert_not_null(eps->endpoints);
	for (size_t i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), fmt, (unsigned)(i / 200), (unsigned)(i % 200 + 1));
		eps->endpoints[i].addr = addr(buf);
		eps->endpoints[i].port = (uint16_t)(8080 + i % 3);
		eps->endpoints[i].local = local;
	}
	eps->n_endpoints = n;
	eps->affinity = affinity;
	eps->affinity_timeout_s = affinity ? 10800 : 0;
	return eps;
}

static void epset_free(struct plan_epset *eps)
{
	if (eps)
		free(eps->endpoints);
	free(eps);
}

/* The elements of one frontend, round-tripped; returns the packed size. */
static size_t frontend_round_trip(const struct plan_frontend *fe, size_t *ret_n)
{
	struct nft_elems_cfg cfg = { .masq_mark = 0x4000, .local_v4 = true, .local_v6 = true };
	struct nft_elem_vec vec = { 0 };
	size_t len;

	cr_assert_eq(nft_frontend_elems(fe, &cfg, &vec, NULL), 0);
	len = round_trip(vec.v, vec.n);
	if (ret_n)
		*ret_n = vec.n;
	nft_elem_vec_done(&vec);
	return len;
}

Test(nft_pack, cluster_ip_with_ten_endpoints_is_small)
{
	struct plan_epset *eps = epset("10.1.%u.%u", 10, true, false);
	struct plan_frontend fe = { .kind = FRONTEND_CLUSTER_IP, .addr = addr("10.96.0.1"), .proto = INET_PROTO_TCP,
				    .port = 80, .epset = eps, .masquerade = PLAN_MASQ_UNLESS_LOCAL };
	size_t n, len = frontend_round_trip(&fe, &n);

	/* dispatch, 10 slots, 10 hairpins, local_fe, cluster IP, digest */
	cr_expect_eq(n, 24);
	/* 7 bytes a slot, 5 a hairpin, a few dozen for the rest: a tenth of
	 * the 72-byte elements. */
	cr_expect_leq(len, 200, "packed %zu elements in %zu bytes", n, len);
	epset_free(eps);
}

Test(nft_pack, every_kind_of_frontend)
{
	struct plan_epset *v4 = epset("10.1.%u.%u", 5, false, false), *v6 = epset("fd00::%x:%x", 4, true, false);
	struct plan_epset *aff = epset("10.2.%u.%u", 3, true, true), *big = epset("10.3.%u.%u", 300, false, false);
	struct plan_epset *aff6 = epset("fd01::%x:%x", 40, true, true), *empty = epset("10.4.%u.%u", 0, false, false);
	struct inet_prefix ranges[] = { { .addr = addr("192.168.0.0"), .len = 16 },
					{ .addr = addr("fd02::"), .len = 64 },
					{ .addr = addr("172.16.1.0"), .len = 24 } };
	struct plan_frontend fes[] = {
		{ .kind = FRONTEND_CLUSTER_IP, .addr = addr("fd00::96:1"), .proto = INET_PROTO_UDP, .port = 53,
		  .epset = v6, .masquerade = PLAN_MASQ_UNLESS_LOCAL },
		{ .kind = FRONTEND_CLUSTER_IP, .addr = addr("10.96.0.2"), .proto = INET_PROTO_TCP, .port = 443,
		  .epset = aff, .masquerade = PLAN_MASQ_UNLESS_LOCAL },
		{ .kind = FRONTEND_CLUSTER_IP, .addr = addr("10.96.0.3"), .proto = INET_PROTO_SCTP, .port = 9,
		  .epset = big, .masquerade = PLAN_MASQ_ALWAYS },
		{ .kind = FRONTEND_NODE_PORT, .addr = addr("0.0.0.0"), .proto = INET_PROTO_TCP, .port = 30080,
		  .epset = aff, .masquerade = PLAN_MASQ_ALWAYS },
		{ .kind = FRONTEND_NODE_PORT, .addr = addr("::"), .proto = INET_PROTO_TCP, .port = 30081,
		  .epset = aff6, .masquerade = PLAN_MASQ_NEVER, .short_circuit = aff6 },
		{ .kind = FRONTEND_LOAD_BALANCER, .addr = addr("198.51.100.7"), .proto = INET_PROTO_TCP, .port = 80,
		  .epset = v4, .masquerade = PLAN_MASQ_NEVER, .source_ranges = ranges, .n_source_ranges = 3,
		  .short_circuit = big },
		{ .kind = FRONTEND_EXTERNAL_IP, .addr = addr("198.51.100.8"), .proto = INET_PROTO_TCP, .port = 80,
		  .epset = empty, .when_empty = EMPTY_DROP },
		{ .kind = FRONTEND_NODE_PORT, .addr = addr("0.0.0.0"), .proto = INET_PROTO_UDP, .port = 30053,
		  .epset = empty },
	};

	for (size_t i = 0; i < sizeof(fes) / sizeof(fes[0]); i++) {
		size_t n, len = frontend_round_trip(&fes[i], &n);

		cr_expect_lt(len, n * 30, "frontend %zu: %zu elements in %zu bytes", i, n, len);
	}
	epset_free(v4);
	epset_free(v6);
	epset_free(aff);
	epset_free(big);
	epset_free(aff6);
	epset_free(empty);
}

/* Elements ferry does not write come back verbatim: stray bytes past a
 * set's key or data, a hairpin pair of two addresses, a slot element with
 * verdict fields, unknown sets and families; runs break where the
 * frontend changes. */
Test(nft_pack, other_shapes_verbatim)
{
	struct inet_addr a = addr("10.0.0.1"), b = addr("10.0.0.2");
	struct nft_elem v[10];
	size_t off;

	nft_elem_init(&v[0], NFT_SET_SLOTS, AF_INET);
	off = 0;
	nft_elem_key_addr(&v[0], &off, &a);
	nft_elem_key_proto(&v[0], &off, INET_PROTO_TCP);
	nft_elem_key_port(&v[0], &off, 80);
	nft_elem_key_slot(&v[0], &off, 0x12345678);
	nft_elem_data_endpoint(&v[0], &b, 8080);
	v[1] = v[0];
	v[1].key[39] = 1;                  /* past the key */
	v[2] = v[0];
	v[2].data[19] = 7;                 /* past the data */
	v[3] = v[0];
	v[3].key[0] = 11;                  /* another frontend: a new run */
	v[4] = v[0];
	v[4].verdict = 3;                  /* verdict fields on a slot */
	nft_elem_init(&v[5], NFT_SET_HAIRPIN, AF_INET);
	off = 0;
	nft_elem_key_addr(&v[5], &off, &a);
	nft_elem_key_addr(&v[5], &off, &b); /* two addresses */
	v[6] = v[0];
	v[6].set = NFT_SET_COUNT;          /* no such set */
	v[7] = v[0];
	v[7].family = 7;                   /* no such family */
	nft_elem_init(&v[8], NFT_SET_MASQ_FE, AF_INET);
	v[8].plen = 24;                    /* plen outside the ranges set */
	nft_elem_init(&v[9], NFT_SET_FE, AF_INET6);
	v[9].verdict = NFT_VERDICT_REJECT;
	v[9].aff_timeout = 86400;
	v[9].aff_mode = NFT_AFF_LOCAL;
	round_trip(v, 10);
	round_trip(v, 1);
	round_trip(NULL, 0);
}

/* Cut short or stray bytes: refused, never read past the end. */
Test(nft_pack, damaged_forms_refused)
{
	struct plan_epset *eps = epset("10.1.%u.%u", 33, true, true);
	struct plan_frontend fe = { .kind = FRONTEND_CLUSTER_IP, .addr = addr("10.96.0.1"), .proto = INET_PROTO_TCP,
				    .port = 80, .epset = eps, .masquerade = PLAN_MASQ_UNLESS_LOCAL };
	struct nft_elems_cfg cfg = { .masq_mark = 0x4000, .local_v4 = true };
	struct nft_elem_vec vec = { 0 };
	uint8_t *buf;
	struct nft_elem *back;
	size_t len;

	cr_assert_eq(nft_frontend_elems(&fe, &cfg, &vec, NULL), 0);
	buf = malloc(nft_pack_bound(vec.n));
	back = calloc(vec.n, sizeof(*back));
	cr_assert(buf && back);
	len = nft_pack_elems(vec.v, vec.n, buf);
	for (size_t cut = 0; cut < len; cut++) {
		/* A copy of exactly cut bytes, so that ASan sees a read past it. */
		uint8_t *p = malloc(cut ? cut : 1);

		memcpy(p, buf, cut);
		cr_expect_eq(nft_pack_unpack(p, cut, back, vec.n), -EINVAL, "cut at %zu of %zu", cut, len);
		free(p);
	}
	buf[0] = (uint8_t)(1u << 6 | 31); /* a slot run of set 31 */
	cr_expect_eq(nft_pack_unpack(buf, len, back, vec.n), -EINVAL);
	free(buf);
	free(back);
	nft_elem_vec_done(&vec);
	epset_free(eps);
}
