/* IPVS generic netlink mechanism (backends/ipvs/ipvs_genl.c), without root
 * and without the ip_vs module:
 *   - every builder's message is parsed back and compared with what went
 *     in, and its raw attributes are checked against the kernel's wire
 *     format (16-byte addresses, __be16 ports, {flags, mask ~0}, the
 *     netmask as a __be32 mask for IPv4 but a prefix length for IPv6);
 *   - replies shaped like the kernel's dumps (ip_vs_genl_fill_service /
 *     _fill_dest, with stats, tunnel attributes and connection counters)
 *     are parsed; malformed ones are refused with -EBADMSG;
 *   - the idempotence rule;
 *   - the socket exchange (acks, errors, dumps, a callback that stops
 *     early) against the kernel's "nlctrl" family, present everywhere
 *     (the exchange itself is ipvs_nl.c's: tests/unit/test_ipvs_nl.c);
 *   - ipvs_genl_open says -ENOENT on a kernel without IPVS.
 * The real IPVS round trip runs in the VM (tests/vm/guest/ipvs_smoke.sh). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <linux/genetlink.h>
#include <linux/ip_vs.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include "ipvs_genl.h"

#define FAMILY 0x42   /* any id: no kernel sees these messages */

static struct inet_addr addr(const char *s)
{
	struct inet_addr a;
	cr_assert_eq(inet_addr_parse(s, &a), 0, "%s", s);
	return a;
}

static struct ipvs_service tcp_v4(void)
{
	struct ipvs_service s = {
		.af = AF_INET, .protocol = IPPROTO_TCP, .addr = addr("10.96.0.10"), .port = 8080,
		.sched_name = "rr", .netmask = 32,
	};
	return s;
}

static void assert_service_eq(const struct ipvs_service *a, const struct ipvs_service *b)
{
	cr_assert_eq(a->af, b->af);
	cr_assert_eq(a->protocol, b->protocol);
	cr_assert_eq(inet_addr_cmp(&a->addr, &b->addr), 0);
	cr_assert_eq(a->port, b->port);
	cr_assert_eq(a->fwmark, b->fwmark);
	cr_assert_str_eq(a->sched_name, b->sched_name);
	cr_assert_eq(a->flags, b->flags, "flags %#x != %#x", a->flags, b->flags);
	cr_assert_eq(a->timeout, b->timeout);
	cr_assert_eq(a->netmask, b->netmask, "netmask %u != %u", a->netmask, b->netmask);
}

/* The nested attributes of top-level attribute type in msg, unvalidated. */
static void nested(struct nl_msg *msg, int type, struct nlattr **tb, int max)
{
	struct nlattr *top[IPVS_CMD_ATTR_MAX + 1];

	cr_assert_eq(genlmsg_parse(nlmsg_hdr(msg), 0, top, IPVS_CMD_ATTR_MAX, NULL), 0);
	cr_assert_not_null(top[type], "attribute %d missing", type);
	cr_assert_eq(nla_parse_nested(tb, max, top[type], NULL), 0);
}

static uint8_t genl_cmd(struct nl_msg *msg)
{
	return genlmsg_hdr(nlmsg_hdr(msg))->cmd;
}

Test(ipvs_genl, service_add_round_trip_and_wire_format)
{
	struct ipvs_service in = tcp_v4(), out;
	struct nlattr *sa[IPVS_SVC_ATTR_MAX + 1];
	struct nl_msg *msg = nlmsg_alloc();
	struct ip_vs_flags flags;
	uint8_t want_addr[16] = { 10, 96, 0, 10 };

	in.flags = IP_VS_SVC_F_PERSISTENT;
	in.timeout = 10800;
	in.netmask = 24;
	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, IPVS_GENL_ADD, &in), 0);
	cr_assert_eq(nlmsg_hdr(msg)->nlmsg_type, FAMILY);
	cr_assert(nlmsg_hdr(msg)->nlmsg_flags & NLM_F_ACK);
	cr_assert_eq(genl_cmd(msg), IPVS_CMD_NEW_SERVICE);
	cr_assert_eq(genlmsg_hdr(nlmsg_hdr(msg))->version, IPVS_GENL_VERSION);

	cr_assert_eq(ipvs_genl_parse_service(nlmsg_hdr(msg), &out), 0);
	assert_service_eq(&out, &in);

	nested(msg, IPVS_CMD_ATTR_SERVICE, sa, IPVS_SVC_ATTR_MAX);
	cr_assert_eq(nla_get_u16(sa[IPVS_SVC_ATTR_AF]), AF_INET);
	cr_assert_eq(nla_get_u16(sa[IPVS_SVC_ATTR_PROTOCOL]), IPPROTO_TCP);
	cr_assert_eq(nla_len(sa[IPVS_SVC_ATTR_ADDR]), 16, "a whole nf_inet_addr, as ipvsadm sends");
	cr_assert_eq(memcmp(nla_data(sa[IPVS_SVC_ATTR_ADDR]), want_addr, 16), 0);
	cr_assert_eq(nla_get_u16(sa[IPVS_SVC_ATTR_PORT]), htons(8080), "port in network order");
	cr_assert_null(sa[IPVS_SVC_ATTR_FWMARK]);
	cr_assert_str_eq(nla_get_string(sa[IPVS_SVC_ATTR_SCHED_NAME]), "rr");
	cr_assert_eq(nla_len(sa[IPVS_SVC_ATTR_FLAGS]), sizeof(flags));
	memcpy(&flags, nla_data(sa[IPVS_SVC_ATTR_FLAGS]), sizeof(flags));
	cr_assert_eq(flags.flags, IP_VS_SVC_F_PERSISTENT);
	cr_assert_eq(flags.mask, ~0u, "the flags given replace all of the old ones");
	cr_assert_eq(nla_get_u32(sa[IPVS_SVC_ATTR_TIMEOUT]), 10800);
	cr_assert_eq(nla_get_u32(sa[IPVS_SVC_ATTR_NETMASK]), htonl(0xffffff00), "IPv4: a __be32 mask");
	nlmsg_free(msg);
}

Test(ipvs_genl, service_ipv6_netmask_is_a_prefix_length)
{
	struct ipvs_service in = {
		.af = AF_INET6, .protocol = IPPROTO_UDP, .addr = addr("fd00::53"), .port = 53,
		.sched_name = "sh", .flags = IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_SCHED_SH_PORT,
		.timeout = 60, .netmask = 64,
	}, out;
	struct nlattr *sa[IPVS_SVC_ATTR_MAX + 1];
	struct nl_msg *msg = nlmsg_alloc();

	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, IPVS_GENL_ADD, &in), 0);
	cr_assert_eq(ipvs_genl_parse_service(nlmsg_hdr(msg), &out), 0);
	assert_service_eq(&out, &in);
	nested(msg, IPVS_CMD_ATTR_SERVICE, sa, IPVS_SVC_ATTR_MAX);
	cr_assert_eq(nla_get_u32(sa[IPVS_SVC_ATTR_NETMASK]), 64, "IPv6: the length itself");
	cr_assert_eq(memcmp(nla_data(sa[IPVS_SVC_ATTR_ADDR]), in.addr.u.bytes, 16), 0);
	nlmsg_free(msg);
}

Test(ipvs_genl, netmask_zero_means_a_whole_address)
{
	struct ipvs_service in = tcp_v4(), out;
	struct nl_msg *msg = nlmsg_alloc();

	in.netmask = 0;
	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, IPVS_GENL_ADD, &in), 0);
	cr_assert_eq(ipvs_genl_parse_service(nlmsg_hdr(msg), &out), 0);
	cr_assert_eq(out.netmask, 32);
	nlmsg_free(msg);

	in.af = AF_INET6;
	in.addr = addr("2001:db8::1");
	msg = nlmsg_alloc();
	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, IPVS_GENL_ADD, &in), 0);
	cr_assert_eq(ipvs_genl_parse_service(nlmsg_hdr(msg), &out), 0);
	cr_assert_eq(out.netmask, 128);
	nlmsg_free(msg);
}

Test(ipvs_genl, fwmark_service_sends_no_address)
{
	struct ipvs_service in = { .af = AF_INET6, .fwmark = 0x4000, .sched_name = "wlc", .netmask = 128 };
	struct ipvs_service out;
	struct nlattr *sa[IPVS_SVC_ATTR_MAX + 1];
	struct nl_msg *msg = nlmsg_alloc();

	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, IPVS_GENL_EDIT, &in), 0);
	cr_assert_eq(genl_cmd(msg), IPVS_CMD_SET_SERVICE);
	nested(msg, IPVS_CMD_ATTR_SERVICE, sa, IPVS_SVC_ATTR_MAX);
	cr_assert_eq(nla_get_u32(sa[IPVS_SVC_ATTR_FWMARK]), 0x4000);
	cr_assert_null(sa[IPVS_SVC_ATTR_ADDR]);
	cr_assert_null(sa[IPVS_SVC_ATTR_PORT]);
	cr_assert_null(sa[IPVS_SVC_ATTR_PROTOCOL]);
	cr_assert_eq(ipvs_genl_parse_service(nlmsg_hdr(msg), &out), 0);
	in.addr.family = AF_INET6;   /* parsers give fwmark services a zero address of their family */
	assert_service_eq(&out, &in);
	nlmsg_free(msg);
}

Test(ipvs_genl, delete_sends_only_the_key)
{
	struct ipvs_service in = tcp_v4(), out;
	struct nlattr *sa[IPVS_SVC_ATTR_MAX + 1];
	struct nl_msg *msg = nlmsg_alloc();

	in.sched_name[0] = '\0';   /* not needed to delete */
	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, IPVS_GENL_DEL, &in), 0);
	cr_assert_eq(genl_cmd(msg), IPVS_CMD_DEL_SERVICE);
	nested(msg, IPVS_CMD_ATTR_SERVICE, sa, IPVS_SVC_ATTR_MAX);
	cr_assert_not_null(sa[IPVS_SVC_ATTR_ADDR]);
	cr_assert_null(sa[IPVS_SVC_ATTR_SCHED_NAME]);
	cr_assert_null(sa[IPVS_SVC_ATTR_FLAGS]);
	cr_assert_null(sa[IPVS_SVC_ATTR_TIMEOUT]);
	cr_assert_null(sa[IPVS_SVC_ATTR_NETMASK]);
	cr_assert_eq(ipvs_genl_parse_service(nlmsg_hdr(msg), &out), 0);
	cr_assert_eq(out.port, 8080);
	cr_assert_str_eq(out.sched_name, "");
	nlmsg_free(msg);
}

Test(ipvs_genl, builders_refuse_what_the_kernel_would)
{
	struct ipvs_service s;
	struct ipvs_dest d = { .addr = addr("10.0.0.1"), .port = 80, .weight = 1 };
	struct nl_msg *msg = nlmsg_alloc();
	uint32_t empty = nlmsg_hdr(msg)->nlmsg_len;

	s = tcp_v4();
	s.sched_name[0] = '\0';
	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, IPVS_GENL_ADD, &s), -EINVAL, "no scheduler");
	s = tcp_v4();
	memset(s.sched_name, 'x', sizeof(s.sched_name));
	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, IPVS_GENL_ADD, &s), -EINVAL, "unterminated name");
	s = tcp_v4();
	s.af = AF_UNIX;
	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, IPVS_GENL_ADD, &s), -EAFNOSUPPORT);
	s = tcp_v4();
	s.addr = addr("fd00::1");
	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, IPVS_GENL_ADD, &s), -EINVAL, "addr of another family");
	s = tcp_v4();
	s.protocol = 0;
	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, IPVS_GENL_DEL, &s), -EINVAL, "no protocol");
	s = tcp_v4();
	s.netmask = 33;
	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, IPVS_GENL_ADD, &s), -EINVAL, "netmask /33");
	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, (enum ipvs_genl_op)7, &s), -EINVAL);
	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, IPVS_GENL_ADD, NULL), -EINVAL);
	cr_assert_eq(ipvs_genl_build_service(NULL, FAMILY, IPVS_GENL_ADD, &s), -EINVAL);
	s = tcp_v4();
	d.weight = 0x80000000u;
	cr_assert_eq(ipvs_genl_build_dest(msg, FAMILY, IPVS_GENL_ADD, &s, &d), -EINVAL, "weight > INT32_MAX");
	d.weight = 1;
	d.addr.family = 0;
	cr_assert_eq(ipvs_genl_build_dest(msg, FAMILY, IPVS_GENL_ADD, &s, &d), -EAFNOSUPPORT);
	cr_assert_eq(ipvs_genl_build_dest(msg, FAMILY, IPVS_GENL_ADD, &s, NULL), -EINVAL);
	cr_assert_eq(ipvs_genl_build_set_timeouts(msg, FAMILY, NULL), -EINVAL);
	/* Refused objects wrote nothing. */
	cr_assert_eq(nlmsg_hdr(msg)->nlmsg_len, empty);
	nlmsg_free(msg);
}

Test(ipvs_genl, small_buffer_is_emsgsize)
{
	struct ipvs_service s = tcp_v4();
	struct nl_msg *msg = nlmsg_alloc_size(48);

	cr_assert_eq(ipvs_genl_build_service(msg, FAMILY, IPVS_GENL_ADD, &s), -EMSGSIZE);
	nlmsg_free(msg);
}

Test(ipvs_genl, dest_round_trip_and_wire_format)
{
	struct ipvs_service svc = tcp_v4(), key;
	struct ipvs_dest in = {
		.addr = addr("10.244.1.7"), .port = 9376, .weight = 3,
		.conn_flags = IP_VS_CONN_F_MASQ | IP_VS_CONN_F_ONE_PACKET,   /* only the method is sent */
		.u_threshold = 1000, .l_threshold = 800,
		.active_conns = 5,   /* ignored by builders */
	}, out;
	struct nlattr *da[IPVS_DEST_ATTR_MAX + 1], *sa[IPVS_SVC_ATTR_MAX + 1];
	struct nl_msg *msg = nlmsg_alloc();

	cr_assert_eq(ipvs_genl_build_dest(msg, FAMILY, IPVS_GENL_ADD, &svc, &in), 0);
	cr_assert_eq(genl_cmd(msg), IPVS_CMD_NEW_DEST);
	cr_assert_eq(ipvs_genl_parse_dest(nlmsg_hdr(msg), AF_INET6, &out), 0);
	cr_assert_eq(inet_addr_cmp(&out.addr, &in.addr), 0, "ADDR_FAMILY wins over the default");
	cr_assert_eq(out.port, 9376);
	cr_assert_eq(out.conn_flags, IP_VS_CONN_F_MASQ);
	cr_assert_eq(out.weight, 3);
	cr_assert_eq(out.u_threshold, 1000);
	cr_assert_eq(out.l_threshold, 800);
	cr_assert_eq(out.active_conns, 0);

	/* The service travels as a key only. */
	cr_assert_eq(ipvs_genl_parse_service(nlmsg_hdr(msg), &key), 0);
	cr_assert_eq(inet_addr_cmp(&key.addr, &svc.addr), 0);
	cr_assert_eq(key.port, 8080);
	nested(msg, IPVS_CMD_ATTR_SERVICE, sa, IPVS_SVC_ATTR_MAX);
	cr_assert_null(sa[IPVS_SVC_ATTR_SCHED_NAME]);

	nested(msg, IPVS_CMD_ATTR_DEST, da, IPVS_DEST_ATTR_MAX);
	cr_assert_eq(nla_len(da[IPVS_DEST_ATTR_ADDR]), 16);
	cr_assert_eq(nla_get_u16(da[IPVS_DEST_ATTR_PORT]), htons(9376));
	cr_assert_eq(nla_get_u16(da[IPVS_DEST_ATTR_ADDR_FAMILY]), AF_INET);
	cr_assert_eq(nla_get_u32(da[IPVS_DEST_ATTR_FWD_METHOD]), IP_VS_CONN_F_MASQ);
	cr_assert_null(da[IPVS_DEST_ATTR_ACTIVE_CONNS]);
	nlmsg_free(msg);
}

Test(ipvs_genl, dest_edit_and_delete)
{
	struct ipvs_service svc = tcp_v4();
	struct ipvs_dest in = { .addr = addr("fd00:10::7"), .port = 443, .weight = 0,
				.conn_flags = IP_VS_CONN_F_TUNNEL }, out;
	struct nlattr *da[IPVS_DEST_ATTR_MAX + 1];
	struct nl_msg *msg = nlmsg_alloc();

	/* Weight 0 (draining) is a valid edit; a v6 destination of a v4
	 * service is the kernel's call (tunnel only), not the builder's. */
	cr_assert_eq(ipvs_genl_build_dest(msg, FAMILY, IPVS_GENL_EDIT, &svc, &in), 0);
	cr_assert_eq(genl_cmd(msg), IPVS_CMD_SET_DEST);
	cr_assert_eq(ipvs_genl_parse_dest(nlmsg_hdr(msg), AF_INET, &out), 0);
	cr_assert_eq(inet_addr_cmp(&out.addr, &in.addr), 0);
	cr_assert_eq(out.weight, 0);
	cr_assert_eq(out.conn_flags, IP_VS_CONN_F_TUNNEL);
	nlmsg_free(msg);

	msg = nlmsg_alloc();
	cr_assert_eq(ipvs_genl_build_dest(msg, FAMILY, IPVS_GENL_DEL, &svc, &in), 0);
	cr_assert_eq(genl_cmd(msg), IPVS_CMD_DEL_DEST);
	nested(msg, IPVS_CMD_ATTR_DEST, da, IPVS_DEST_ATTR_MAX);
	cr_assert_not_null(da[IPVS_DEST_ATTR_ADDR]);
	cr_assert_not_null(da[IPVS_DEST_ATTR_PORT]);
	cr_assert_not_null(da[IPVS_DEST_ATTR_ADDR_FAMILY]);
	cr_assert_null(da[IPVS_DEST_ATTR_WEIGHT]);
	cr_assert_null(da[IPVS_DEST_ATTR_FWD_METHOD]);
	nlmsg_free(msg);
}

/* A stats nest as ip_vs_genl_fill_stats writes it (values don't matter). */
static void put_stats(struct nl_msg *msg, int type)
{
	struct nlattr *st = nla_nest_start(msg, type);

	nla_put_u32(msg, IPVS_STATS_ATTR_CONNS, 12);
	nla_put_u64(msg, IPVS_STATS_ATTR_INBYTES, 123456789);
	nla_nest_end(msg, st);
}

/* A service dump reply as ip_vs_genl_dump_service sends it. */
static struct nl_msg *kernel_service_reply(void)
{
	struct nl_msg *msg = nlmsg_alloc();
	struct ip_vs_flags flags = { .flags = IP_VS_SVC_F_HASHED | IP_VS_SVC_F_PERSISTENT, .mask = ~0u };
	uint8_t a[16] = { 192, 168, 7, 1 };
	struct nlattr *svc;

	genlmsg_put(msg, 1, 7, FAMILY, 0, NLM_F_MULTI, IPVS_CMD_NEW_SERVICE, IPVS_GENL_VERSION);
	svc = nla_nest_start(msg, IPVS_CMD_ATTR_SERVICE);
	nla_put_u16(msg, IPVS_SVC_ATTR_AF, AF_INET);
	nla_put_u16(msg, IPVS_SVC_ATTR_PROTOCOL, IPPROTO_SCTP);
	nla_put(msg, IPVS_SVC_ATTR_ADDR, 16, a);
	nla_put_u16(msg, IPVS_SVC_ATTR_PORT, htons(3868));
	nla_put_string(msg, IPVS_SVC_ATTR_SCHED_NAME, "mh");
	nla_put(msg, IPVS_SVC_ATTR_FLAGS, sizeof(flags), &flags);
	nla_put_u32(msg, IPVS_SVC_ATTR_TIMEOUT, 300);
	nla_put_u32(msg, IPVS_SVC_ATTR_NETMASK, htonl(0xffff0000));
	put_stats(msg, IPVS_SVC_ATTR_STATS);
	put_stats(msg, IPVS_SVC_ATTR_STATS64);
	nla_nest_end(msg, svc);
	return msg;
}

Test(ipvs_genl, parses_a_kernel_service_reply)
{
	struct nl_msg *msg = kernel_service_reply();
	struct ipvs_service s;

	cr_assert_eq(ipvs_genl_parse_service(nlmsg_hdr(msg), &s), 0);
	cr_assert_eq(s.af, AF_INET);
	cr_assert_eq(s.protocol, IPPROTO_SCTP);
	cr_assert_eq(inet_addr_cmp(&s.addr, &(struct inet_addr){ 0 }) != 0, 1);
	cr_assert_eq(inet_addr_cmp(&s.addr, &(struct inet_addr){ .family = AF_INET, .u.bytes = { 192, 168, 7, 1 } }), 0);
	cr_assert_eq(s.port, 3868);
	cr_assert_str_eq(s.sched_name, "mh");
	cr_assert_eq(s.flags, IP_VS_SVC_F_PERSISTENT, "HASHED is the kernel's, not ours");
	cr_assert_eq(s.timeout, 300);
	cr_assert_eq(s.netmask, 16);
	nlmsg_free(msg);
}

/* A destination dump reply as ip_vs_genl_fill_dest sends it. */
static struct nl_msg *kernel_dest_reply(bool with_family)
{
	struct nl_msg *msg = nlmsg_alloc();
	uint8_t a[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9 };
	struct nlattr *d;

	genlmsg_put(msg, 1, 7, FAMILY, 0, NLM_F_MULTI, IPVS_CMD_NEW_DEST, IPVS_GENL_VERSION);
	d = nla_nest_start(msg, IPVS_CMD_ATTR_DEST);
	nla_put(msg, IPVS_DEST_ATTR_ADDR, 16, a);
	nla_put_u16(msg, IPVS_DEST_ATTR_PORT, htons(8443));
	nla_put_u32(msg, IPVS_DEST_ATTR_FWD_METHOD, IP_VS_CONN_F_MASQ);
	nla_put_u32(msg, IPVS_DEST_ATTR_WEIGHT, 0);
	nla_put_u8(msg, IPVS_DEST_ATTR_TUN_TYPE, 0);
	nla_put_u16(msg, IPVS_DEST_ATTR_TUN_PORT, 0);
	nla_put_u16(msg, IPVS_DEST_ATTR_TUN_FLAGS, 0);
	nla_put_u32(msg, IPVS_DEST_ATTR_U_THRESH, 0);
	nla_put_u32(msg, IPVS_DEST_ATTR_L_THRESH, 0);
	nla_put_u32(msg, IPVS_DEST_ATTR_ACTIVE_CONNS, 4);
	nla_put_u32(msg, IPVS_DEST_ATTR_INACT_CONNS, 17);
	nla_put_u32(msg, IPVS_DEST_ATTR_PERSIST_CONNS, 2);
	if (with_family)
		nla_put_u16(msg, IPVS_DEST_ATTR_ADDR_FAMILY, AF_INET6);
	put_stats(msg, IPVS_DEST_ATTR_STATS);
	put_stats(msg, IPVS_DEST_ATTR_STATS64);
	nla_nest_end(msg, d);
	return msg;
}

Test(ipvs_genl, parses_connection_counts_of_a_kernel_dest_reply)
{
	struct nl_msg *msg = kernel_dest_reply(true);
	struct ipvs_dest d;

	cr_assert_eq(ipvs_genl_parse_dest(nlmsg_hdr(msg), AF_INET, &d), 0);
	cr_assert_eq(inet_addr_cmp(&d.addr, &(struct inet_addr){ .family = AF_INET6, .u.bytes = {
		0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9 } }), 0);
	cr_assert_eq(d.port, 8443);
	cr_assert_eq(d.weight, 0);
	cr_assert_eq(d.active_conns, 4);
	cr_assert_eq(d.inactive_conns, 17);
	cr_assert_eq(d.persist_conns, 2);
	nlmsg_free(msg);

	/* Before Linux 4.3 there was no ADDR_FAMILY: the service's is assumed. */
	msg = kernel_dest_reply(false);
	cr_assert_eq(ipvs_genl_parse_dest(nlmsg_hdr(msg), AF_INET6, &d), 0);
	cr_assert_eq(d.addr.family, AF_INET6);
	cr_assert_eq(d.addr.u.bytes[15], 9);
	nlmsg_free(msg);
}

/* A NEW_SERVICE message whose service nest the caller fills in, to make
 * it malformed; end it with parse_service_nest. */
static struct nl_msg *service_nest_begin(struct nlattr **ret_nest)
{
	struct nl_msg *msg = nlmsg_alloc();

	cr_assert_not_null(genlmsg_put(msg, 0, 0, FAMILY, 0, 0, IPVS_CMD_NEW_SERVICE, 1));
	*ret_nest = nla_nest_start(msg, IPVS_CMD_ATTR_SERVICE);
	cr_assert_not_null(*ret_nest);
	return msg;
}

/* Close the nest, parse msg as a service and free it: the parser's result. */
static int parse_service_nest(struct nl_msg *msg, struct nlattr *nest)
{
	struct ipvs_service s;
	int r;

	nla_nest_end(msg, nest);
	r = ipvs_genl_parse_service(nlmsg_hdr(msg), &s);
	nlmsg_free(msg);
	return r;
}

/* A service key of family af: protocol TCP, an address attribute of len
 * bytes (none when addr is NULL), the port when port is not 0. */
static void put_key(struct nl_msg *msg, uint16_t af, const void *addr, int len, uint16_t port)
{
	nla_put_u16(msg, IPVS_SVC_ATTR_AF, af);
	nla_put_u16(msg, IPVS_SVC_ATTR_PROTOCOL, IPPROTO_TCP);
	if (addr)
		nla_put(msg, IPVS_SVC_ATTR_ADDR, len, addr);
	if (port)
		nla_put_u16(msg, IPVS_SVC_ATTR_PORT, htons(port));
}

Test(ipvs_genl, malformed_messages_are_ebadmsg)
{
	struct ipvs_service s;
	struct ipvs_dest d;
	struct nl_msg *msg;
	struct nlattr *nest;
	uint8_t two[2] = { 1, 2 }, v4[4] = { 10, 0, 0, 1 };

	/* No service, no destination at all. */
	msg = nlmsg_alloc();
	genlmsg_put(msg, 0, 0, FAMILY, 0, 0, IPVS_CMD_NEW_SERVICE, 1);
	cr_assert_eq(ipvs_genl_parse_service(nlmsg_hdr(msg), &s), -EBADMSG);
	cr_assert_eq(ipvs_genl_parse_dest(nlmsg_hdr(msg), AF_INET, &d), -EBADMSG);
	nlmsg_free(msg);

	/* The control: a well-formed key parses. */
	msg = service_nest_begin(&nest);
	put_key(msg, AF_INET, v4, sizeof(v4), 80);
	cr_assert_eq(parse_service_nest(msg, nest), 0);

	/* An address of two bytes. */
	msg = service_nest_begin(&nest);
	put_key(msg, AF_INET, two, sizeof(two), 80);
	cr_assert_eq(parse_service_nest(msg, nest), -EBADMSG);

	/* An IPv6 service with a 4-byte address. */
	msg = service_nest_begin(&nest);
	put_key(msg, AF_INET6, v4, sizeof(v4), 80);
	cr_assert_eq(parse_service_nest(msg, nest), -EBADMSG);

	/* An unknown address family, and a key without a port. */
	msg = service_nest_begin(&nest);
	nla_put_u16(msg, IPVS_SVC_ATTR_AF, 99);
	cr_assert_eq(parse_service_nest(msg, nest), -EBADMSG);
	msg = service_nest_begin(&nest);
	put_key(msg, AF_INET, v4, sizeof(v4), 0);
	cr_assert_eq(parse_service_nest(msg, nest), -EBADMSG);

	/* A scheduler name without its NUL. */
	msg = service_nest_begin(&nest);
	nla_put_u16(msg, IPVS_SVC_ATTR_AF, AF_INET);
	nla_put_u32(msg, IPVS_SVC_ATTR_FWMARK, 1);
	nla_put(msg, IPVS_SVC_ATTR_SCHED_NAME, 2, "rr");
	cr_assert_eq(parse_service_nest(msg, nest), -EBADMSG);

	/* A message too short for its generic netlink header. */
	msg = nlmsg_alloc();
	cr_assert_eq(ipvs_genl_parse_service(nlmsg_hdr(msg), &s), -EBADMSG);
	cr_assert_eq(ipvs_genl_parse_service(NULL, &s), -EBADMSG);
	nlmsg_free(msg);
}

/* The request of a builder that takes no object, checked for its command;
 * the caller frees it. */
static struct nl_msg *plain_request(int (*build)(struct nl_msg *msg, int family), uint8_t cmd)
{
	struct nl_msg *msg = nlmsg_alloc();

	cr_assert_eq(build(msg, FAMILY), 0);
	cr_assert_eq(genl_cmd(msg), cmd);
	return msg;
}

Test(ipvs_genl, dump_requests)
{
	struct ipvs_service svc = tcp_v4(), key;
	struct nl_msg *msg = plain_request(ipvs_genl_build_get_services, IPVS_CMD_GET_SERVICE);

	cr_assert_eq(nlmsg_hdr(msg)->nlmsg_flags & NLM_F_DUMP, NLM_F_DUMP);
	cr_assert_eq(genlmsg_attrlen(genlmsg_hdr(nlmsg_hdr(msg)), 0), 0);
	nlmsg_free(msg);

	msg = nlmsg_alloc();
	cr_assert_eq(ipvs_genl_build_get_dests(msg, FAMILY, &svc), 0);
	cr_assert_eq(genl_cmd(msg), IPVS_CMD_GET_DEST);
	cr_assert_eq(nlmsg_hdr(msg)->nlmsg_flags & NLM_F_DUMP, NLM_F_DUMP);
	cr_assert_eq(ipvs_genl_parse_service(nlmsg_hdr(msg), &key), 0, "the service to dump is named");
	cr_assert_eq(key.port, svc.port);
	nlmsg_free(msg);

	nlmsg_free(plain_request(ipvs_genl_build_flush, IPVS_CMD_FLUSH));
	nlmsg_free(plain_request(ipvs_genl_build_get_info, IPVS_CMD_GET_INFO));
}

Test(ipvs_genl, timeouts_round_trip_and_zero_is_not_sent)
{
	struct ipvs_timeouts in = { .tcp = 900, .tcp_fin = 0, .udp = 300 }, out;
	struct nlattr *tb[IPVS_CMD_ATTR_MAX + 1];
	struct nl_msg *msg = nlmsg_alloc();

	cr_assert_eq(ipvs_genl_build_set_timeouts(msg, FAMILY, &in), 0);
	cr_assert_eq(genl_cmd(msg), IPVS_CMD_SET_CONFIG);
	cr_assert_eq(genlmsg_parse(nlmsg_hdr(msg), 0, tb, IPVS_CMD_ATTR_MAX, NULL), 0);
	cr_assert_null(tb[IPVS_CMD_ATTR_TIMEOUT_TCP_FIN], "0 leaves the kernel's value alone");
	cr_assert_eq(ipvs_genl_parse_timeouts(nlmsg_hdr(msg), &out), 0);
	cr_assert_eq(out.tcp, 900);
	cr_assert_eq(out.tcp_fin, 0);
	cr_assert_eq(out.udp, 300);
	nlmsg_free(msg);
	nlmsg_free(plain_request(ipvs_genl_build_get_timeouts, IPVS_CMD_GET_CONFIG));
}

Test(ipvs_genl, parses_an_info_reply)
{
	struct nl_msg *msg = nlmsg_alloc();
	struct ipvs_info info;

	genlmsg_put(msg, 1, 1, FAMILY, 0, 0, IPVS_CMD_SET_INFO, IPVS_GENL_VERSION);
	nla_put_u32(msg, IPVS_INFO_ATTR_VERSION, IP_VS_VERSION_CODE);
	nla_put_u32(msg, IPVS_INFO_ATTR_CONN_TAB_SIZE, 4096);
	cr_assert_eq(ipvs_genl_parse_info(nlmsg_hdr(msg), &info), 0);
	cr_assert_eq(info.version, 0x010201);
	cr_assert_eq(info.conn_tab_size, 4096);
	nlmsg_free(msg);

	msg = nlmsg_alloc();
	genlmsg_put(msg, 1, 1, FAMILY, 0, 0, IPVS_CMD_SET_INFO, IPVS_GENL_VERSION);
	cr_assert_eq(ipvs_genl_parse_info(nlmsg_hdr(msg), &info), -EBADMSG);
	nlmsg_free(msg);
}

Test(ipvs_genl, idempotence_rule)
{
	cr_assert_eq(ipvs_genl_idempotent(IPVS_GENL_ADD, -EEXIST), 0);
	cr_assert_eq(ipvs_genl_idempotent(IPVS_GENL_ADD, 0), 0);
	cr_assert_eq(ipvs_genl_idempotent(IPVS_GENL_ADD, -ESRCH), -ESRCH, "adding a dest to no service");
	cr_assert_eq(ipvs_genl_idempotent(IPVS_GENL_ADD, -ENOENT), -ENOENT, "unknown scheduler");
	cr_assert_eq(ipvs_genl_idempotent(IPVS_GENL_DEL, -ENOENT), 0);
	cr_assert_eq(ipvs_genl_idempotent(IPVS_GENL_DEL, -ESRCH), 0);
	cr_assert_eq(ipvs_genl_idempotent(IPVS_GENL_DEL, -EEXIST), -EEXIST);
	cr_assert_eq(ipvs_genl_idempotent(IPVS_GENL_EDIT, -ESRCH), -ESRCH, "editing nothing is an error");
	cr_assert_eq(ipvs_genl_idempotent(IPVS_GENL_EDIT, -ENOENT), -ENOENT);
	cr_assert_eq(ipvs_genl_idempotent(IPVS_GENL_DEL, -EPERM), -EPERM);
}

Test(ipvs_genl, open_says_enoent_without_ipvs)
{
	struct ipvs_genl *h = NULL;
	int r = ipvs_genl_open(&h);

	if (r == 0) {
		struct ipvs_info info;
		/* This kernel has IPVS: GET_INFO needs CAP_NET_ADMIN. */
		r = ipvs_genl_get_info(h, &info);
		cr_assert(r == 0 || r == -EPERM, "get_info: %s", strerror(-r));
		if (r == 0)
			cr_assert_eq(info.version >> 16, 1);
		ipvs_genl_close(h);
		cr_skip_test("this kernel has IPVS: the absent-IPVS answer cannot be checked here");
	}
	cr_assert_eq(r, -ENOENT, "open: %s", strerror(-r));
	cr_assert_null(h);
	cr_assert_null(ipvs_genl_close(NULL));
	cr_assert_eq(ipvs_genl_open_family("nosuchfamily", &h), -ENOENT);
}

/* ---- The exchange, against nlctrl (the genl controller). ---- */

struct counter {
	int msgs;
	int stop_at;     /* return -ECANCELED at this message (1-based), 0: never */
	int saw_nlctrl;
};

static int count_families(struct nlmsghdr *nlh, void *ctx)
{
	struct counter *c = ctx;
	struct nlattr *tb[CTRL_ATTR_MAX + 1];

	c->msgs++;
	if (genlmsg_parse(nlh, 0, tb, CTRL_ATTR_MAX, NULL) == 0 && tb[CTRL_ATTR_FAMILY_NAME] &&
	    strcmp(nla_get_string(tb[CTRL_ATTR_FAMILY_NAME]), "nlctrl") == 0)
		c->saw_nlctrl = 1;
	return c->stop_at && c->msgs == c->stop_at ? -ECANCELED : 0;
}

static struct nl_msg *getfamily(int family, const char *name)
{
	struct nl_msg *msg = nlmsg_alloc();

	if (name) {
		genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, NLM_F_ACK, CTRL_CMD_GETFAMILY, 1);
		nla_put_string(msg, CTRL_ATTR_FAMILY_NAME, name);
	} else {
		genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, NLM_F_DUMP, CTRL_CMD_GETFAMILY, 1);
	}
	return msg;
}

Test(ipvs_genl, exchange_dump_reply_error_and_early_stop)
{
	struct ipvs_genl *h;
	struct counter all = { 0 }, one = { 0 }, stop = { .stop_at = 1 }, after = { 0 };
	struct nl_msg *msg;
	int fam, r;

	cr_assert_eq(ipvs_genl_open_family("nlctrl", &h), 0);
	fam = ipvs_genl_family_id(h);
	cr_assert_eq(fam, GENL_ID_CTRL);

	/* A dump: every family, one message each. */
	msg = getfamily(fam, NULL);
	cr_assert_eq(ipvs_genl_request(h, msg, count_families, &all), 0);
	nlmsg_free(msg);
	cr_assert_geq(all.msgs, 1);
	cr_assert(all.saw_nlctrl);

	/* A GET with one reply and an ack. */
	msg = getfamily(fam, "nlctrl");
	cr_assert_eq(ipvs_genl_request(h, msg, count_families, &one), 0);
	nlmsg_free(msg);
	cr_assert_eq(one.msgs, 1);

	/* The kernel's errno comes back as it is. */
	msg = getfamily(fam, "nosuchfamily");
	r = ipvs_genl_exec(h, msg);
	cr_assert_eq(r, -ENOENT, "%d %s", r, strerror(-r));
	nlmsg_free(msg);

	/* A callback that stops at once: its error is returned, the rest of
	 * the dump is drained, and the socket is in step for the next one. */
	msg = getfamily(fam, NULL);
	cr_assert_eq(ipvs_genl_request(h, msg, count_families, &stop), -ECANCELED);
	nlmsg_free(msg);
	cr_assert_eq(stop.msgs, 1);
	msg = getfamily(fam, NULL);
	cr_assert_eq(ipvs_genl_request(h, msg, count_families, &after), 0);
	nlmsg_free(msg);
	cr_assert_eq(after.msgs, all.msgs);

	/* exec of a GET discards its reply. */
	msg = getfamily(fam, "nlctrl");
	cr_assert_eq(ipvs_genl_exec(h, msg), 0);
	nlmsg_free(msg);

	cr_assert_eq(ipvs_genl_request(NULL, msg, NULL, NULL), -EINVAL);
	cr_assert_eq(ipvs_genl_request(h, NULL, NULL, NULL), -EINVAL);
	cr_assert_null(ipvs_genl_close(h));
}

struct nested {
	struct ipvs_genl *h;
	int inner;   /* what a request from inside the callback returned */
	int msgs;
};

static int request_from_callback(struct nlmsghdr *nlh, void *ctx)
{
	struct nested *n = ctx;
	struct nl_msg *msg = getfamily(ipvs_genl_family_id(n->h), "nlctrl");

	(void)nlh;
	n->msgs++;
	n->inner = ipvs_genl_request(n->h, msg, NULL, NULL);
	nlmsg_free(msg);
	return 0;
}

Test(ipvs_genl, a_request_inside_a_callback_is_ebusy)
{
	struct nested n = { 0 };
	struct counter after = { 0 };
	struct nl_msg *msg;

	cr_assert_eq(ipvs_genl_open_family("nlctrl", &n.h), 0);
	msg = getfamily(ipvs_genl_family_id(n.h), NULL);
	cr_assert_eq(ipvs_genl_request(n.h, msg, request_from_callback, &n), 0);
	nlmsg_free(msg);
	cr_assert_geq(n.msgs, 1);
	cr_assert_eq(n.inner, -EBUSY, "a nested request would read the dump's rest as its answer");
	/* The outer dump ended cleanly: the handle works on. */
	msg = getfamily(ipvs_genl_family_id(n.h), NULL);
	cr_assert_eq(ipvs_genl_request(n.h, msg, count_families, &after), 0);
	nlmsg_free(msg);
	cr_assert_eq(after.msgs, n.msgs);
	ipvs_genl_close(n.h);
}

Test(ipvs_genl, convenience_calls_refuse_before_sending)
{
	struct ipvs_genl *h;
	struct ipvs_service s = tcp_v4();

	cr_assert_eq(ipvs_genl_open_family("nlctrl", &h), 0);
	s.sched_name[0] = '\0';
	cr_assert_eq(ipvs_genl_apply_service(h, IPVS_GENL_ADD, &s), -EINVAL);
	cr_assert_eq(ipvs_genl_apply_dest(h, IPVS_GENL_ADD, &s, NULL), -EINVAL);
	cr_assert_eq(ipvs_genl_apply_service(NULL, IPVS_GENL_ADD, &s), -EINVAL);
	cr_assert_eq(ipvs_genl_dump_services(h, NULL, NULL), -EINVAL);
	cr_assert_eq(ipvs_genl_dump_dests(h, NULL, NULL, NULL), -EINVAL);
	ipvs_genl_close(h);
}
