/* ipset mechanism (backends/ipvs/ipset.c).
 *
 * Without root: the entry text ferry writes for libipset and reads back
 * from its listings, for all six set types and both families, including
 * the forms libipset itself prints (protocol names, "/len" only when not a
 * whole address) and the malformed ones it must refuse.
 *
 * As root, ONLY inside a network namespace each test creates for itself
 * (unshare(CLONE_NEWNET) in Criterion's per-test process; skipped with the
 * reason when not root or when unshare fails, so no set is ever made in the
 * host's namespace): create / add / test / list / del / flush / swap /
 * destroy against the kernel's ip_set, the idempotence rules, batches of
 * thousands of members with a member the kernel refuses in the middle,
 * and the errno of each refusal. */
#include <criterion/criterion.h>

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipset.h"

static struct inet_addr addr(const char *s)
{
	struct inet_addr a;
	cr_assert_eq(inet_addr_parse(s, &a), 0, "%s", s);
	return a;
}

static struct ipvs_ipset_entry ip_port(const char *ip, uint8_t proto, uint16_t port)
{
	struct ipvs_ipset_entry e = { .addr = addr(ip), .proto = proto, .port = port };
	return e;
}

static void assert_entry_eq(const struct ipvs_ipset_entry *a, const struct ipvs_ipset_entry *b)
{
	cr_assert_eq(inet_addr_cmp(&a->addr, &b->addr), 0);
	cr_assert_eq(a->proto, b->proto);
	cr_assert_eq(a->port, b->port);
	cr_assert_eq(inet_addr_cmp(&a->addr2, &b->addr2), 0);
	cr_assert_eq(a->cidr2, b->cidr2);
	cr_assert_eq(a->cidr, b->cidr);
}

/* Format e, check the text, parse it back, compare. */
static void round_trip(enum ipvs_ipset_type type, sa_family_t family,
		       const struct ipvs_ipset_entry *e, const char *want)
{
	char buf[IPVS_IPSET_ENTRY_STRLEN];
	struct ipvs_ipset_entry back;

	cr_assert_eq(ipvs_ipset_entry_format(type, family, e, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, want);
	cr_assert_eq(ipvs_ipset_entry_parse(type, family, buf, &back), 0, "%s", buf);
	assert_entry_eq(&back, e);
}

Test(ipset_text, type_names)
{
	enum ipvs_ipset_type t;

	cr_assert_str_eq(ipvs_ipset_type_name(IPVS_IPSET_HASH_IP_PORT), "hash:ip,port");
	cr_assert_str_eq(ipvs_ipset_type_name(IPVS_IPSET_HASH_IP_PORT_IP), "hash:ip,port,ip");
	cr_assert_str_eq(ipvs_ipset_type_name(IPVS_IPSET_HASH_IP_PORT_NET), "hash:ip,port,net");
	cr_assert_str_eq(ipvs_ipset_type_name(IPVS_IPSET_BITMAP_PORT), "bitmap:port");
	cr_assert_str_eq(ipvs_ipset_type_name(IPVS_IPSET_HASH_IP), "hash:ip");
	cr_assert_str_eq(ipvs_ipset_type_name(IPVS_IPSET_HASH_NET), "hash:net");
	cr_assert_null(ipvs_ipset_type_name((enum ipvs_ipset_type)9));
	cr_assert_eq(ipvs_ipset_type_parse("hash:ip,port,net", &t), 0);
	cr_assert_eq(t, IPVS_IPSET_HASH_IP_PORT_NET);
	cr_assert_eq(ipvs_ipset_type_parse("hash:net", &t), 0);
	cr_assert_eq(t, IPVS_IPSET_HASH_NET);
	cr_assert_eq(ipvs_ipset_type_parse("hash:net,iface", &t), -EOPNOTSUPP);
	cr_assert_eq(ipvs_ipset_type_parse(NULL, &t), -EOPNOTSUPP);
}

Test(ipset_text, entries_round_trip_in_every_type_and_family)
{
	struct ipvs_ipset_entry e;

	e = ip_port("10.96.0.10", IPPROTO_TCP, 443);
	round_trip(IPVS_IPSET_HASH_IP_PORT, AF_INET, &e, "10.96.0.10,6:443");
	e = ip_port("fd00::a", IPPROTO_UDP, 53);
	round_trip(IPVS_IPSET_HASH_IP_PORT, AF_INET6, &e, "fd00::a,17:53");

	e = ip_port("10.244.0.5", IPPROTO_SCTP, 9);
	e.addr2 = addr("10.244.0.5");
	round_trip(IPVS_IPSET_HASH_IP_PORT_IP, AF_INET, &e, "10.244.0.5,132:9,10.244.0.5");
	e = ip_port("fd00::5", IPPROTO_TCP, 80);
	e.addr2 = addr("fd00::5");
	round_trip(IPVS_IPSET_HASH_IP_PORT_IP, AF_INET6, &e, "fd00::5,6:80,fd00::5");

	e = ip_port("203.0.113.7", IPPROTO_TCP, 80);
	e.addr2 = addr("192.168.0.0");
	e.cidr2 = 16;
	round_trip(IPVS_IPSET_HASH_IP_PORT_NET, AF_INET, &e, "203.0.113.7,6:80,192.168.0.0/16");
	e = ip_port("2001:db8::7", IPPROTO_UDP, 5353);
	e.addr2 = addr("2001:db8:1::");
	e.cidr2 = 48;
	round_trip(IPVS_IPSET_HASH_IP_PORT_NET, AF_INET6, &e, "2001:db8::7,17:5353,2001:db8:1::/48");

	memset(&e, 0, sizeof(e));
	e.port = 30080;
	round_trip(IPVS_IPSET_BITMAP_PORT, 0, &e, "30080");

	/* The guards: no protocol, no port. */
	memset(&e, 0, sizeof(e));
	e.addr = addr("10.96.0.10");
	round_trip(IPVS_IPSET_HASH_IP, AF_INET, &e, "10.96.0.10");
	e.addr = addr("fd00:96::a");
	round_trip(IPVS_IPSET_HASH_IP, AF_INET6, &e, "fd00:96::a");
	e.addr = addr("10.96.0.0");
	e.cidr = 12;
	round_trip(IPVS_IPSET_HASH_NET, AF_INET, &e, "10.96.0.0/12");
	e.addr = addr("fd00:96::");
	e.cidr = 112;
	round_trip(IPVS_IPSET_HASH_NET, AF_INET6, &e, "fd00:96::/112");
}

Test(ipset_text, net_of_a_whole_address)
{
	struct ipvs_ipset_entry e = ip_port("10.0.0.1", IPPROTO_TCP, 80), back;
	char buf[IPVS_IPSET_ENTRY_STRLEN];

	e.addr2 = addr("10.1.2.3");
	e.cidr2 = 0;
	cr_assert_eq(ipvs_ipset_entry_format(IPVS_IPSET_HASH_IP_PORT_NET, AF_INET, &e, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "10.0.0.1,6:80,10.1.2.3/32");
	/* ipset prints a whole address without "/len". */
	cr_assert_eq(ipvs_ipset_entry_parse(IPVS_IPSET_HASH_IP_PORT_NET, AF_INET, "10.0.0.1,tcp:80,10.1.2.3", &back), 0);
	cr_assert_eq(back.cidr2, 32);
	cr_assert_eq(ipvs_ipset_entry_parse(IPVS_IPSET_HASH_IP_PORT_NET, AF_INET6, "fd00::1,tcp:80,fd00::2", &back), 0);
	cr_assert_eq(back.cidr2, 128);
	/* The same for hash:net. */
	memset(&e, 0, sizeof(e));
	e.addr = addr("10.96.0.1");
	cr_assert_eq(ipvs_ipset_entry_format(IPVS_IPSET_HASH_NET, AF_INET, &e, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "10.96.0.1/32");
	cr_assert_eq(ipvs_ipset_entry_parse(IPVS_IPSET_HASH_NET, AF_INET, "10.96.0.1", &back), 0);
	cr_assert_eq(back.cidr, 32);
	cr_assert_eq(ipvs_ipset_entry_parse(IPVS_IPSET_HASH_NET, AF_INET6, "fd00::1", &back), 0);
	cr_assert_eq(back.cidr, 128);
}

Test(ipset_text, parses_what_libipset_prints)
{
	struct ipvs_ipset_entry e;

	cr_assert_eq(ipvs_ipset_entry_parse(IPVS_IPSET_HASH_IP_PORT, AF_INET, "10.0.0.1,tcp:80", &e), 0);
	cr_assert_eq(e.proto, IPPROTO_TCP);
	cr_assert_eq(ipvs_ipset_entry_parse(IPVS_IPSET_HASH_IP_PORT, AF_INET, "10.0.0.1,udp:53", &e), 0);
	cr_assert_eq(e.proto, IPPROTO_UDP);
	cr_assert_eq(ipvs_ipset_entry_parse(IPVS_IPSET_HASH_IP_PORT, AF_INET, "10.0.0.1,sctp:3868", &e), 0);
	cr_assert_eq(e.proto, IPPROTO_SCTP);
	cr_assert_eq(e.port, 3868);
	cr_assert_eq(ipvs_ipset_entry_parse(IPVS_IPSET_HASH_IP_PORT, AF_INET, "10.0.0.1,8080", &e), 0);
	cr_assert_eq(e.proto, IPPROTO_TCP, "a bare port is TCP, as ipset reads it");
	cr_assert_eq(ipvs_ipset_entry_parse(IPVS_IPSET_HASH_IP_PORT_IP, AF_INET6, "::1,udp:0,::1", &e), 0);
	cr_assert_eq(e.port, 0);
	cr_assert_eq(ipvs_ipset_entry_parse(IPVS_IPSET_BITMAP_PORT, 0, "tcp:65535", &e), 0);
	cr_assert_eq(e.port, 65535);
}

Test(ipset_text, refuses_malformed_entries)
{
	const struct { enum ipvs_ipset_type t; sa_family_t f; const char *text; } bad[] = {
		{ IPVS_IPSET_HASH_IP_PORT, AF_INET, "" },
		{ IPVS_IPSET_HASH_IP_PORT, AF_INET, "10.0.0.1" },
		{ IPVS_IPSET_HASH_IP_PORT, AF_INET, "10.0.0.1,tcp:80,10.0.0.2" },
		{ IPVS_IPSET_HASH_IP_PORT, AF_INET, "fd00::1,tcp:80" },          /* wrong family */
		{ IPVS_IPSET_HASH_IP_PORT, AF_INET, "10.0.0.1,tcp:65536" },
		{ IPVS_IPSET_HASH_IP_PORT, AF_INET, "10.0.0.1,tcp:-1" },
		{ IPVS_IPSET_HASH_IP_PORT, AF_INET, "10.0.0.1,tcp:8x" },
		{ IPVS_IPSET_HASH_IP_PORT, AF_INET, "10.0.0.1,gre:0" },
		{ IPVS_IPSET_HASH_IP_PORT, AF_INET, "10.0.0.1,0:80" },
		{ IPVS_IPSET_HASH_IP_PORT, AF_INET, "10.0.0.300,tcp:80" },
		{ IPVS_IPSET_HASH_IP_PORT_IP, AF_INET, "10.0.0.1,tcp:80" },
		{ IPVS_IPSET_HASH_IP_PORT_IP, AF_INET, "10.0.0.1,tcp:80,10.0.0.0/8" },
		{ IPVS_IPSET_HASH_IP_PORT_NET, AF_INET, "10.0.0.1,tcp:80,10.0.0.0/33" },
		{ IPVS_IPSET_HASH_IP_PORT_NET, AF_INET, "10.0.0.1,tcp:80,10.0.0.0/0" },
		{ IPVS_IPSET_HASH_IP_PORT_NET, AF_INET6, "fd00::1,tcp:80,fd00::/129" },
		{ IPVS_IPSET_HASH_IP_PORT, 0, "10.0.0.1,tcp:80" },                /* no family */
		{ IPVS_IPSET_HASH_IP, AF_INET, "10.0.0.1,tcp:80" },
		{ IPVS_IPSET_HASH_IP, AF_INET, "fd00::1" },
		{ IPVS_IPSET_HASH_NET, AF_INET, "10.0.0.0/0" },
		{ IPVS_IPSET_HASH_NET, AF_INET, "10.0.0.0/33" },
		{ IPVS_IPSET_HASH_NET, AF_INET6, "fd00::/129" },
		{ IPVS_IPSET_HASH_NET, AF_INET6, "fd00::/64,tcp:80" },
		{ IPVS_IPSET_BITMAP_PORT, 0, "http" },
		{ IPVS_IPSET_BITMAP_PORT, 0, "70000" },
		{ (enum ipvs_ipset_type)9, AF_INET, "80" },
	};
	struct ipvs_ipset_entry e;
	char huge[300];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(ipvs_ipset_entry_parse(bad[i].t, bad[i].f, bad[i].text, &e), -EINVAL,
			     "\"%s\" was accepted", bad[i].text);
	memset(huge, '1', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	cr_assert_eq(ipvs_ipset_entry_parse(IPVS_IPSET_BITMAP_PORT, 0, huge, &e), -EINVAL);
	cr_assert_eq(ipvs_ipset_entry_parse(IPVS_IPSET_BITMAP_PORT, 0, NULL, &e), -EINVAL);
}

Test(ipset_text, refuses_entries_a_set_cannot_hold)
{
	struct ipvs_ipset_entry e = ip_port("10.0.0.1", IPPROTO_TCP, 80);
	char buf[IPVS_IPSET_ENTRY_STRLEN];

	cr_assert_eq(ipvs_ipset_entry_format(IPVS_IPSET_HASH_IP_PORT, AF_INET6, &e, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(ipvs_ipset_entry_format(IPVS_IPSET_HASH_IP_PORT_IP, AF_INET, &e, buf, sizeof(buf)), -EINVAL,
		     "no second address");
	e.addr2 = addr("10.0.0.0");
	e.cidr2 = 33;
	cr_assert_eq(ipvs_ipset_entry_format(IPVS_IPSET_HASH_IP_PORT_NET, AF_INET, &e, buf, sizeof(buf)), -EINVAL);
	e.proto = 0;
	cr_assert_eq(ipvs_ipset_entry_format(IPVS_IPSET_HASH_IP_PORT, AF_INET, &e, buf, sizeof(buf)), -EINVAL);
	/* The guards need no protocol; a net's length must fit. */
	e.addr2 = (struct inet_addr){ 0 };
	cr_assert_eq(ipvs_ipset_entry_format(IPVS_IPSET_HASH_IP, AF_INET, &e, buf, sizeof(buf)), 0);
	cr_assert_eq(ipvs_ipset_entry_format(IPVS_IPSET_HASH_IP, AF_INET6, &e, buf, sizeof(buf)), -EINVAL);
	e.cidr = 33;
	cr_assert_eq(ipvs_ipset_entry_format(IPVS_IPSET_HASH_NET, AF_INET, &e, buf, sizeof(buf)), -EINVAL);
	e.cidr = 0;
	e.proto = IPPROTO_TCP;
	cr_assert_eq(ipvs_ipset_entry_format(IPVS_IPSET_HASH_IP_PORT, AF_INET, &e, buf, 8), -ENOSPC);
	cr_assert_eq(ipvs_ipset_entry_format(IPVS_IPSET_BITMAP_PORT, 0, &e, buf, 2), -ENOSPC);
}

/* ---- Against the kernel, in a private network namespace ---- */

static struct ipvs_ipset *h;

static void enter_private_netns(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to make a private network namespace for ipsets");
	if (unshare(CLONE_NEWNET) == -1)
		cr_skip_test("cannot unshare a network namespace: %s", strerror(errno));
}

static int count_name(const char *name, void *ctx)
{
	(void)name;
	(*(int *)ctx)++;
	return 0;
}

/* Enter a fresh netns and open a session there; every kernel test starts
 * here, so nothing below can touch the host's sets. */
static void open_in_netns(void)
{
	int n = 0, r;

	enter_private_netns();
	r = ipvs_ipset_open(&h);
	if (r == -EPROTONOSUPPORT || r == -EOPNOTSUPP)
		cr_skip_test("this kernel has no ip_set: %s", strerror(-r));
	cr_assert_eq(r, 0, "open: %s", strerror(-r));
	cr_assert_eq(ipvs_ipset_list_names(h, count_name, &n), 0);
	cr_assert_eq(n, 0, "a fresh namespace has no sets");
}

static void close_session(void)
{
	h = ipvs_ipset_close(h);
}

struct collected {
	struct ipvs_ipset_entry e[64];
	size_t n;
};

static int collect(const struct ipvs_ipset_entry *e, void *ctx)
{
	struct collected *c = ctx;

	cr_assert_lt(c->n, 64);
	c->e[c->n++] = *e;
	return 0;
}

static bool contains(const struct collected *c, const struct ipvs_ipset_entry *e)
{
	for (size_t i = 0; i < c->n; i++)
		if (inet_addr_cmp(&c->e[i].addr, &e->addr) == 0 && c->e[i].proto == e->proto &&
		    c->e[i].port == e->port && inet_addr_cmp(&c->e[i].addr2, &e->addr2) == 0 &&
		    c->e[i].cidr2 == e->cidr2)
			return true;
	return false;
}

TestSuite(ipset_kernel, .init = open_in_netns, .fini = close_session);

Test(ipset_kernel, lifecycle_and_idempotence)
{
	struct ipvs_ipset_spec spec = { .name = "FERRY-CLUSTER-IP", .type = IPVS_IPSET_HASH_IP_PORT,
					.family = AF_INET }, got, other;
	struct ipvs_ipset_entry e = ip_port("10.96.0.10", IPPROTO_TCP, 443);
	struct collected c = { .n = 0 };

	cr_assert_eq(ipvs_ipset_create(h, &spec), 0, "%s", ipvs_ipset_error(h));
	cr_assert_eq(ipvs_ipset_create(h, &spec), 0, "re-creating the same set is success");
	other = spec;
	other.type = IPVS_IPSET_HASH_IP_PORT_IP;
	cr_assert_eq(ipvs_ipset_create(h, &other), -EEXIST);
	cr_assert_str_neq(ipvs_ipset_error(h), "");
	other = spec;
	other.maxelem = 10;
	cr_assert_eq(ipvs_ipset_create(h, &other), -EEXIST, "same type, other options");

	cr_assert_eq(ipvs_ipset_test(h, spec.name, &e), 0);
	cr_assert_eq(ipvs_ipset_add(h, spec.name, &e), 0, "%s", ipvs_ipset_error(h));
	cr_assert_str_eq(ipvs_ipset_error(h), "");
	cr_assert_eq(ipvs_ipset_add(h, spec.name, &e), 0, "adding a member twice is success");
	cr_assert_eq(ipvs_ipset_test(h, spec.name, &e), 1);

	cr_assert_eq(ipvs_ipset_list(h, spec.name, &got, collect, &c), 0, "%s", ipvs_ipset_error(h));
	cr_assert_str_eq(got.name, spec.name);
	cr_assert_eq(got.type, IPVS_IPSET_HASH_IP_PORT);
	cr_assert_eq(got.family, AF_INET);
	cr_assert_eq(got.maxelem, 65536, "the kernel's default");
	cr_assert_gt(got.hashsize, 0);
	cr_assert_eq(c.n, 1);
	assert_entry_eq(&c.e[0], &e);

	cr_assert_eq(ipvs_ipset_del(h, spec.name, &e), 0);
	cr_assert_eq(ipvs_ipset_del(h, spec.name, &e), 0, "deleting a non-member is success");
	cr_assert_eq(ipvs_ipset_test(h, spec.name, &e), 0);

	cr_assert_eq(ipvs_ipset_add(h, spec.name, &e), 0);
	cr_assert_eq(ipvs_ipset_flush(h, spec.name), 0);
	cr_assert_eq(ipvs_ipset_test(h, spec.name, &e), 0);

	cr_assert_eq(ipvs_ipset_destroy(h, spec.name), 0);
	cr_assert_eq(ipvs_ipset_destroy(h, spec.name), 0, "destroying a gone set is success");
	cr_assert_eq(ipvs_ipset_list(h, spec.name, NULL, NULL, NULL), -ENOENT);
}

/* Create a set, add entries in one batch, read them back. */
static void batch_and_list_back(const struct ipvs_ipset_spec *spec, const struct ipvs_ipset_entry *e, size_t n)
{
	struct collected c = { .n = 0 };
	struct ipvs_ipset_spec got;
	size_t failed = 0;

	cr_assert_eq(ipvs_ipset_create(h, spec), 0, "%s: %s", spec->name, ipvs_ipset_error(h));
	cr_assert_eq(ipvs_ipset_add_many(h, spec->name, e, n, &failed), 0, "%s: %s", spec->name,
		     ipvs_ipset_error(h));
	cr_assert_eq(failed, n);
	cr_assert_eq(ipvs_ipset_list(h, spec->name, &got, collect, &c), 0, "%s", ipvs_ipset_error(h));
	cr_assert_eq(got.type, spec->type);
	cr_assert_eq(got.family, spec->type == IPVS_IPSET_BITMAP_PORT ? 0 : spec->family);
	cr_assert_eq(c.n, n, "%s: %zu members", spec->name, c.n);
	for (size_t i = 0; i < n; i++) {
		struct ipvs_ipset_entry want = e[i];

		if (spec->type == IPVS_IPSET_HASH_IP_PORT_NET && want.cidr2 == 0)
			want.cidr2 = spec->family == AF_INET ? 32 : 128;
		if (spec->type == IPVS_IPSET_HASH_NET && want.cidr == 0)
			want.cidr = spec->family == AF_INET ? 32 : 128;
		cr_assert(contains(&c, &want), "%s: member %zu missing", spec->name, i);
		cr_assert_eq(ipvs_ipset_test(h, spec->name, &e[i]), 1);
	}
	cr_assert_eq(ipvs_ipset_del_many(h, spec->name, e, n, NULL), 0);
	c.n = 0;
	cr_assert_eq(ipvs_ipset_list(h, spec->name, NULL, collect, &c), 0);
	cr_assert_eq(c.n, 0);
}

Test(ipset_kernel, every_type_and_family_kube_proxy_uses)
{
	struct ipvs_ipset_spec cip4 = { .name = "FERRY-CIP", .type = IPVS_IPSET_HASH_IP_PORT, .family = AF_INET };
	struct ipvs_ipset_spec cip6 = { .name = "FERRY-CIP6", .type = IPVS_IPSET_HASH_IP_PORT, .family = AF_INET6,
					.hashsize = 64, .maxelem = 1000 };
	struct ipvs_ipset_spec hp4 = { .name = "FERRY-HAIRPIN", .type = IPVS_IPSET_HASH_IP_PORT_IP, .family = AF_INET };
	struct ipvs_ipset_spec hp6 = { .name = "FERRY-HAIRPIN6", .type = IPVS_IPSET_HASH_IP_PORT_IP, .family = AF_INET6 };
	struct ipvs_ipset_spec src4 = { .name = "FERRY-SRC", .type = IPVS_IPSET_HASH_IP_PORT_NET, .family = AF_INET };
	struct ipvs_ipset_spec src6 = { .name = "FERRY-SRC6", .type = IPVS_IPSET_HASH_IP_PORT_NET, .family = AF_INET6 };
	struct ipvs_ipset_spec np = { .name = "FERRY-NODE-PORT-TCP", .type = IPVS_IPSET_BITMAP_PORT };
	struct ipvs_ipset_entry c4[] = { ip_port("10.96.0.1", IPPROTO_TCP, 443), ip_port("10.96.0.10", IPPROTO_UDP, 53),
					 ip_port("10.96.0.10", IPPROTO_TCP, 53), ip_port("10.96.7.7", IPPROTO_SCTP, 9) };
	struct ipvs_ipset_entry c6[] = { ip_port("fd00:96::1", IPPROTO_TCP, 443), ip_port("fd00:96::a", IPPROTO_UDP, 53) };
	struct ipvs_ipset_entry h4[2], h6[1], s4[3], s6[2], p[3] = { { .port = 30000 }, { .port = 30080 }, { .port = 32767 } };
	struct ipvs_ipset_spec got;

	h4[0] = ip_port("10.244.1.5", IPPROTO_TCP, 8080);
	h4[0].addr2 = h4[0].addr;
	h4[1] = ip_port("10.244.2.9", IPPROTO_UDP, 53);
	h4[1].addr2 = h4[1].addr;
	h6[0] = ip_port("fd00:244::5", IPPROTO_TCP, 8080);
	h6[0].addr2 = h6[0].addr;
	s4[0] = ip_port("203.0.113.10", IPPROTO_TCP, 80);
	s4[0].addr2 = addr("192.168.0.0");
	s4[0].cidr2 = 16;
	s4[1] = ip_port("203.0.113.10", IPPROTO_TCP, 80);
	s4[1].addr2 = addr("198.51.100.7");   /* cidr2 0: a whole address */
	s4[2] = ip_port("203.0.113.11", IPPROTO_UDP, 5000);
	s4[2].addr2 = addr("10.0.0.0");
	s4[2].cidr2 = 8;
	s6[0] = ip_port("2001:db8::10", IPPROTO_TCP, 443);
	s6[0].addr2 = addr("2001:db8:ff::");
	s6[0].cidr2 = 48;
	s6[1] = ip_port("2001:db8::10", IPPROTO_TCP, 443);
	s6[1].addr2 = addr("2001:db8:ee::1");

	batch_and_list_back(&cip4, c4, 4);
	batch_and_list_back(&cip6, c6, 2);
	cr_assert_eq(ipvs_ipset_list(h, cip6.name, &got, NULL, NULL), 0);
	cr_assert_eq(got.maxelem, 1000);
	cr_assert_eq(got.hashsize, 64);
	batch_and_list_back(&hp4, h4, 2);
	batch_and_list_back(&hp6, h6, 1);
	batch_and_list_back(&src4, s4, 3);
	batch_and_list_back(&src6, s6, 2);
	batch_and_list_back(&np, p, 3);
	cr_assert_eq(ipvs_ipset_list(h, np.name, &got, NULL, NULL), 0);
	cr_assert_eq(got.port_from, 0);
	cr_assert_eq(got.port_to, 65535);
}

/* The service-range guards' types: cluster IPs (hash:ip) and service
 * ranges (hash:net, a whole address listed without "/len"). */
Test(ipset_kernel, guard_types_hash_ip_and_hash_net)
{
	struct ipvs_ipset_spec ip4 = { .name = "FERRY-ADDRS", .type = IPVS_IPSET_HASH_IP, .family = AF_INET };
	struct ipvs_ipset_spec ip6 = { .name = "FERRY6-ADDRS", .type = IPVS_IPSET_HASH_IP, .family = AF_INET6 };
	struct ipvs_ipset_spec net4 = { .name = "FERRY-NETS", .type = IPVS_IPSET_HASH_NET, .family = AF_INET };
	struct ipvs_ipset_spec net6 = { .name = "FERRY6-NETS", .type = IPVS_IPSET_HASH_NET, .family = AF_INET6 };
	struct ipvs_ipset_entry a4[2] = { { .addr = addr("10.96.0.1") }, { .addr = addr("10.96.0.10") } };
	struct ipvs_ipset_entry a6[1] = { { .addr = addr("fd00:96::a") } };
	struct ipvs_ipset_entry n4[3] = { { .addr = addr("10.96.0.0"), .cidr = 16 }, { .addr = addr("10.97.0.5") },
					  { .addr = addr("128.0.0.0"), .cidr = 1 } };
	struct ipvs_ipset_entry n6[2] = { { .addr = addr("fd00:96::"), .cidr = 112 },
					  { .addr = addr("fd00:97::1"), .cidr = 128 } };

	batch_and_list_back(&ip4, a4, 2);
	batch_and_list_back(&ip6, a6, 1);
	batch_and_list_back(&net4, n4, 3);
	batch_and_list_back(&net6, n6, 2);
}

Test(ipset_kernel, a_refused_member_stops_a_batch_where_it_is)
{
	struct ipvs_ipset_spec np = { .name = "FERRY-NP", .type = IPVS_IPSET_BITMAP_PORT,
				      .port_from = 30000, .port_to = 32767 };
	struct ipvs_ipset_spec cip = { .name = "FERRY-CIP", .type = IPVS_IPSET_HASH_IP_PORT, .family = AF_INET };
	struct ipvs_ipset_entry ports[] = { { .port = 30001 }, { .port = 80 }, { .port = 30002 } };
	struct ipvs_ipset_entry mixed[] = { ip_port("10.96.0.1", IPPROTO_TCP, 80), ip_port("fd00::1", IPPROTO_TCP, 80) };
	struct ipvs_ipset_spec got;
	size_t failed = 99;

	cr_assert_eq(ipvs_ipset_create(h, &np), 0, "%s", ipvs_ipset_error(h));
	cr_assert_eq(ipvs_ipset_list(h, np.name, &got, NULL, NULL), 0);
	cr_assert_eq(got.port_from, 30000);
	cr_assert_eq(got.port_to, 32767);
	/* Port 80 is outside the bitmap: the kernel refuses it. */
	cr_assert_eq(ipvs_ipset_add_many(h, np.name, ports, 3, &failed), -ERANGE, "%s", ipvs_ipset_error(h));
	cr_assert_eq(failed, 1, "%s", ipvs_ipset_error(h));
	cr_assert_eq(ipvs_ipset_test(h, np.name, &ports[0]), 1, "members before it are applied");
	cr_assert_eq(ipvs_ipset_test(h, np.name, &ports[2]), 0, "members after it are not");

	/* An IPv6 entry for an IPv4 set is refused before anything is sent. */
	cr_assert_eq(ipvs_ipset_create(h, &cip), 0);
	cr_assert_eq(ipvs_ipset_add_many(h, cip.name, mixed, 2, &failed), -EINVAL);
	cr_assert_eq(failed, 1);
	cr_assert_eq(ipvs_ipset_test(h, cip.name, &mixed[0]), 0);
	cr_assert_eq(ipvs_ipset_add(h, cip.name, &mixed[1]), -EINVAL);
}

static int count_entry(const struct ipvs_ipset_entry *e, void *ctx)
{
	(void)e;
	(*(int *)ctx)++;
	return 0;
}

Test(ipset_kernel, thousands_of_members_in_one_call)
{
	enum { N = 5000 };
	struct ipvs_ipset_spec spec = { .name = "FERRY-BIG", .type = IPVS_IPSET_HASH_IP_PORT, .family = AF_INET };
	struct ipvs_ipset_entry *e = calloc(N, sizeof(*e));
	size_t failed;
	int count = 0;

	cr_assert_not_null(e);
	for (int i = 0; i < N; i++) {
		e[i].addr.family = AF_INET;
		e[i].addr.u.bytes[0] = 10;
		e[i].addr.u.bytes[1] = 96;
		e[i].addr.u.bytes[2] = (uint8_t)(i >> 8);
		e[i].addr.u.bytes[3] = (uint8_t)i;
		e[i].proto = i % 2 ? IPPROTO_UDP : IPPROTO_TCP;
		e[i].port = (uint16_t)(1000 + i);
	}
	cr_assert_eq(ipvs_ipset_create(h, &spec), 0);
	cr_assert_eq(ipvs_ipset_add_many(h, spec.name, e, N, &failed), 0, "%s", ipvs_ipset_error(h));
	cr_assert_eq(failed, N);
	cr_assert_eq(ipvs_ipset_add_many(h, spec.name, e, N, NULL), 0, "again: nothing to do, still success");
	cr_assert_eq(ipvs_ipset_test(h, spec.name, &e[N - 1]), 1);
	cr_assert_eq(ipvs_ipset_list(h, spec.name, NULL, count_entry, &count), 0);
	cr_assert_eq(count, N);
	free(e);
}

Test(ipset_kernel, listing_reads_every_member_of_a_large_set)
{
	enum { N = 3000 };
	struct ipvs_ipset_spec spec = { .name = "FERRY-BIG6", .type = IPVS_IPSET_HASH_IP_PORT_IP, .family = AF_INET6 };
	struct ipvs_ipset_entry *e = calloc(N, sizeof(*e));
	int count = 0;

	cr_assert_not_null(e);
	for (int i = 0; i < N; i++) {
		e[i] = ip_port("fd00:244::", IPPROTO_TCP, 8080);
		e[i].addr.u.bytes[14] = (uint8_t)(i >> 8);
		e[i].addr.u.bytes[15] = (uint8_t)i;
		e[i].addr2 = e[i].addr;
	}
	cr_assert_eq(ipvs_ipset_create(h, &spec), 0);
	cr_assert_eq(ipvs_ipset_add_many(h, spec.name, e, N, NULL), 0, "%s", ipvs_ipset_error(h));
	cr_assert_eq(ipvs_ipset_list(h, spec.name, NULL, count_entry, &count), 0, "%s", ipvs_ipset_error(h));
	cr_assert_eq(count, N, "every member, across the listing's many messages");
	cr_assert_eq(ipvs_ipset_del_many(h, spec.name, e, N, NULL), 0);
	count = 0;
	cr_assert_eq(ipvs_ipset_list(h, spec.name, NULL, count_entry, &count), 0);
	cr_assert_eq(count, 0);
	free(e);
}

Test(ipset_kernel, swap_exchanges_contents)
{
	struct ipvs_ipset_spec live = { .name = "FERRY-LIVE", .type = IPVS_IPSET_HASH_IP_PORT, .family = AF_INET };
	struct ipvs_ipset_spec next = live, v6 = live;
	struct ipvs_ipset_entry old = ip_port("10.96.0.1", IPPROTO_TCP, 80), new = ip_port("10.96.0.2", IPPROTO_TCP, 80);

	strcpy(next.name, "FERRY-LIVE-NEXT");
	strcpy(v6.name, "FERRY-LIVE6");
	v6.family = AF_INET6;
	cr_assert_eq(ipvs_ipset_create(h, &live), 0);
	cr_assert_eq(ipvs_ipset_create(h, &next), 0);
	cr_assert_eq(ipvs_ipset_create(h, &v6), 0);
	cr_assert_eq(ipvs_ipset_add(h, live.name, &old), 0);
	cr_assert_eq(ipvs_ipset_add(h, next.name, &new), 0);
	cr_assert_eq(ipvs_ipset_swap(h, live.name, next.name), 0, "%s", ipvs_ipset_error(h));
	cr_assert_eq(ipvs_ipset_test(h, live.name, &new), 1);
	cr_assert_eq(ipvs_ipset_test(h, live.name, &old), 0);
	cr_assert_eq(ipvs_ipset_test(h, next.name, &old), 1);
	cr_assert_eq(ipvs_ipset_destroy(h, next.name), 0);
	cr_assert_eq(ipvs_ipset_swap(h, live.name, next.name), -ENOENT);
	cr_assert_eq(ipvs_ipset_swap(h, live.name, v6.name), -EINVAL, "same type, other family");
	cr_assert_eq(ipvs_ipset_test(h, live.name, &new), 1, "a refused swap changes nothing");
}

static int stop_at_first(const char *name, void *ctx)
{
	(void)name;
	(void)ctx;
	return -ECANCELED;
}

struct names {
	int n;
	bool saw[3];
};

static int note_name(const char *name, void *ctx)
{
	struct names *ns = ctx;
	const char *want[] = { "FERRY-A", "FERRY-B", "FERRY-C" };

	ns->n++;
	for (int i = 0; i < 3; i++)
		if (strcmp(name, want[i]) == 0)
			ns->saw[i] = true;
	return 0;
}

Test(ipset_kernel, list_names_and_errors)
{
	struct ipvs_ipset_spec s = { .type = IPVS_IPSET_BITMAP_PORT };
	struct ipvs_ipset_entry e = { .port = 1 };
	struct names ns = { 0 };

	for (int i = 0; i < 3; i++) {
		snprintf(s.name, sizeof(s.name), "FERRY-%c", 'A' + i);
		cr_assert_eq(ipvs_ipset_create(h, &s), 0);
	}
	cr_assert_eq(ipvs_ipset_list_names(h, note_name, &ns), 0);
	cr_assert_eq(ns.n, 3);
	cr_assert(ns.saw[0] && ns.saw[1] && ns.saw[2]);
	cr_assert_eq(ipvs_ipset_list_names(h, stop_at_first, NULL), -ECANCELED);

	/* A set that is not there. */
	cr_assert_eq(ipvs_ipset_add(h, "FERRY-NONE", &e), -ENOENT);
	cr_assert_eq(ipvs_ipset_del(h, "FERRY-NONE", &e), -ENOENT);
	cr_assert_eq(ipvs_ipset_add_many(h, "FERRY-NONE", &e, 1, NULL), -ENOENT);
	cr_assert_eq(ipvs_ipset_test(h, "FERRY-NONE", &e), -ENOENT);
	cr_assert_eq(ipvs_ipset_flush(h, "FERRY-NONE"), -ENOENT);
	cr_assert_str_neq(ipvs_ipset_error(h), "");

	/* Names the kernel cannot hold, and nonsense. */
	memset(s.name, 'X', sizeof(s.name));
	cr_assert_eq(ipvs_ipset_create(h, &s), -EINVAL);
	cr_assert_eq(ipvs_ipset_destroy(h, ""), -EINVAL);
	cr_assert_eq(ipvs_ipset_add(h, NULL, &e), -EINVAL);
	s = (struct ipvs_ipset_spec){ .name = "FERRY-D", .type = IPVS_IPSET_HASH_IP_PORT };
	cr_assert_eq(ipvs_ipset_create(h, &s), -EINVAL, "a hash set needs a family");
	s = (struct ipvs_ipset_spec){ .name = "FERRY-D", .type = IPVS_IPSET_BITMAP_PORT, .port_from = 9, .port_to = 8 };
	cr_assert_eq(ipvs_ipset_create(h, &s), -EINVAL);
	cr_assert_eq(ipvs_ipset_create(NULL, &s), -EINVAL);
	cr_assert_null(ipvs_ipset_close(NULL));
}

Test(ipset_unprivileged, open_without_cap_net_admin_is_eperm)
{
	struct ipvs_ipset *u = NULL;
	int r;

	enter_private_netns();
	/* nobody: no capability left, in a namespace of our own. */
	if (setresgid(65534, 65534, 65534) == -1 || setresuid(65534, 65534, 65534) == -1)
		cr_skip_test("cannot drop privileges: %s", strerror(errno));
	r = ipvs_ipset_open(&u);
	cr_assert_eq(r, -EPERM, "open as nobody: %s", strerror(-r));
	cr_assert_null(u);
}
