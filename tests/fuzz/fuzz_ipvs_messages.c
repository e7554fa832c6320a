/* Fuzz target: the IPVS generic netlink builders and parsers of
 * backends/ipvs/ipvs_genl.c. No socket, no kernel.
 *
 * Byte 0 chooses the mode. Odd: the rest of the input is a message as the
 * kernel would send it (its nlmsg_len forced to the input's length, as
 * libnl's receive path guarantees), given to every parser; what a parser
 * accepts must be a well-formed struct, and a service or destination it
 * accepts, built again, must parse back to itself. Even: the rest is read
 * as services, destinations and timeouts (fuzz_check.h's reader), each
 * built for every operation; the builder's result code must be the one
 * ipvs_genl.h documents for that object, and what it builds must parse
 * back to the object, with the documented normalisations (DEL sends the
 * key only, a fwmark service has no address, netmask 0 means the whole
 * address, HASHED is dropped, only the forwarding bits of conn_flags go).
 * Seeds: corpus/ipvs_messages/. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/ip_vs.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include "fuzz_check.h"
#include "inet.h"
#include "ipvs_genl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool af_ok(sa_family_t af)
{
	return af == AF_INET || af == AF_INET6;
}

static size_t addr_len(sa_family_t af)
{
	return af == AF_INET ? 4 : 16;
}

static void check_service_shape(const struct ipvs_service *s)
{
	FUZZ_CHECK(af_ok(s->af));
	FUZZ_CHECK(s->addr.family == s->af);
	FUZZ_CHECK(memchr(s->sched_name, '\0', sizeof(s->sched_name)) != NULL);
	FUZZ_CHECK(!(s->flags & IP_VS_SVC_F_HASHED));
	FUZZ_CHECK(s->netmask <= (s->af == AF_INET ? 32 : 128));
	if (s->fwmark)
		FUZZ_CHECK(s->protocol == 0 && s->port == 0 && inet_addr_is_any(&s->addr));
}

/* What the builders accept (ipvs_genl.h, "Builders"). */
static int expected_service_rc(int op, const struct ipvs_service *s, bool full)
{
	size_t n;

	if (op < IPVS_GENL_ADD || op > IPVS_GENL_DEL)
		return -EINVAL;
	if (!af_ok(s->af))
		return -EAFNOSUPPORT;
	if (!s->fwmark && (s->addr.family != s->af || s->protocol == 0))
		return -EINVAL;
	if (!full)
		return 0;
	n = strnlen(s->sched_name, sizeof(s->sched_name));
	if (n == 0 || n == sizeof(s->sched_name))
		return -EINVAL;
	if (s->netmask > (s->af == AF_INET ? 32 : 128))
		return -EINVAL;
	return 0;
}

/* The service a message built from s carries back (full: with options). */
static struct ipvs_service expected_service(const struct ipvs_service *s, bool full)
{
	struct ipvs_service e = { .af = s->af };

	e.addr.family = s->af;
	if (s->fwmark) {
		e.fwmark = s->fwmark;
	} else {
		e.protocol = s->protocol;
		e.port = s->port;
		memcpy(e.addr.u.bytes, s->addr.u.bytes, addr_len(s->af));
	}
	if (full) {
		memcpy(e.sched_name, s->sched_name, sizeof(e.sched_name));
		e.flags = s->flags & ~(uint32_t)IP_VS_SVC_F_HASHED;
		e.timeout = s->timeout;
		e.netmask = s->netmask ? s->netmask : (s->af == AF_INET ? 32 : 128);
	}
	return e;
}

static void check_service_eq(const struct ipvs_service *a, const struct ipvs_service *b)
{
	FUZZ_CHECK(a->af == b->af && a->protocol == b->protocol && a->port == b->port);
	FUZZ_CHECK(a->addr.family == b->addr.family);
	FUZZ_CHECK(memcmp(a->addr.u.bytes, b->addr.u.bytes, addr_len(a->af)) == 0);
	FUZZ_CHECK(a->fwmark == b->fwmark);
	FUZZ_CHECK(strcmp(a->sched_name, b->sched_name) == 0);
	FUZZ_CHECK(a->flags == b->flags && a->timeout == b->timeout && a->netmask == b->netmask);
}

static void check_dest_eq(const struct ipvs_dest *got, const struct ipvs_dest *d, bool full)
{
	FUZZ_CHECK(got->addr.family == d->addr.family);
	FUZZ_CHECK(memcmp(got->addr.u.bytes, d->addr.u.bytes, addr_len(d->addr.family)) == 0);
	FUZZ_CHECK(got->port == d->port);
	FUZZ_CHECK(got->conn_flags == (full ? d->conn_flags & IP_VS_CONN_F_FWD_MASK : 0));
	FUZZ_CHECK(got->weight == (full ? d->weight : 0));
	FUZZ_CHECK(got->u_threshold == (full ? d->u_threshold : 0));
	FUZZ_CHECK(got->l_threshold == (full ? d->l_threshold : 0));
	FUZZ_CHECK(!got->active_conns && !got->inactive_conns && !got->persist_conns);
}

/* Build svc with op; when it builds, parse it back. */
static void service_roundtrip(int family, int op, const struct ipvs_service *svc)
{
	bool full = op != IPVS_GENL_DEL;
	struct nl_msg *msg = nlmsg_alloc();
	struct ipvs_service got, want;
	struct ipvs_dest dest;
	int r;

	FUZZ_CHECK(msg);
	r = ipvs_genl_build_service(msg, family, (enum ipvs_genl_op)op, svc);
	FUZZ_CHECK(r == expected_service_rc(op, svc, full));
	if (r == 0) {
		FUZZ_CHECK(ipvs_genl_parse_service(nlmsg_hdr(msg), &got) == 0);
		check_service_shape(&got);
		want = expected_service(svc, full);
		check_service_eq(&got, &want);
		FUZZ_CHECK(ipvs_genl_parse_dest(nlmsg_hdr(msg), AF_INET, &dest) == -EBADMSG);
	}
	nlmsg_free(msg);
}

static int expected_dest_rc(int op, const struct ipvs_service *svc, const struct ipvs_dest *d)
{
	int r = expected_service_rc(op, svc, false);

	if (r < 0)
		return r;
	if (!af_ok(d->addr.family))
		return -EAFNOSUPPORT;
	if (op != IPVS_GENL_DEL && d->weight > INT32_MAX)
		return -EINVAL;
	return 0;
}

static void dest_roundtrip(int family, int op, const struct ipvs_service *svc, const struct ipvs_dest *d)
{
	struct nl_msg *msg = nlmsg_alloc();
	struct ipvs_service got_svc, want;
	struct ipvs_dest got;
	int r;

	FUZZ_CHECK(msg);
	r = ipvs_genl_build_dest(msg, family, (enum ipvs_genl_op)op, svc, d);
	FUZZ_CHECK(r == expected_dest_rc(op, svc, d));
	if (r == 0) {
		/* The family attribute is sent: default_af must not matter. */
		FUZZ_CHECK(ipvs_genl_parse_dest(nlmsg_hdr(msg), AF_INET6 + AF_INET - d->addr.family, &got) == 0);
		check_dest_eq(&got, d, op != IPVS_GENL_DEL);
		FUZZ_CHECK(ipvs_genl_parse_service(nlmsg_hdr(msg), &got_svc) == 0);
		want = expected_service(svc, false);
		check_service_eq(&got_svc, &want);
	}
	nlmsg_free(msg);
}

static void read_service(struct fuzz_reader *in, struct ipvs_service *s)
{
	static const sa_family_t afs[] = { AF_INET, AF_INET6, AF_INET, AF_INET6, 0, AF_UNIX };
	uint8_t shape = fuzz_u8(in);

	memset(s, 0, sizeof(*s));
	s->af = afs[shape % 6];
	/* Mostly an address of the service's family. */
	s->addr.family = (shape & 0x08) ? afs[(shape >> 4) % 6] : s->af;
	fuzz_bytes(in, s->addr.u.bytes, 16);
	s->protocol = (shape & 0x40) ? fuzz_u16(in) : IPPROTO_TCP;
	s->port = fuzz_u16(in);
	s->fwmark = (shape & 0x80) ? fuzz_u32(in) : 0;
	fuzz_bytes(in, s->sched_name, (shape & 0x20) ? sizeof(s->sched_name) : fuzz_u8(in) % 4);
	s->flags = fuzz_u32(in);
	s->timeout = fuzz_u32(in);
	s->netmask = fuzz_u8(in);
}

static void read_dest(struct fuzz_reader *in, struct ipvs_dest *d)
{
	uint8_t shape = fuzz_u8(in);

	memset(d, 0, sizeof(*d));
	d->addr.family = shape & 1 ? AF_INET6 : (shape & 2) ? AF_INET : (sa_family_t)fuzz_u8(in);
	fuzz_bytes(in, d->addr.u.bytes, 16);
	d->port = fuzz_u16(in);
	d->conn_flags = fuzz_u32(in);
	d->weight = (shape & 4) ? fuzz_u32(in) : fuzz_u16(in);
	d->u_threshold = fuzz_u32(in);
	d->l_threshold = fuzz_u32(in);
	/* Counters are ignored by builders. */
	d->active_conns = fuzz_u32(in);
}

static void build_mode(struct fuzz_reader *in)
{
	int family = 16 + fuzz_u16(in) % 0xffe0;

	for (int round = 0; round < 8 && in->left; round++) {
		struct ipvs_service svc;
		struct ipvs_dest dest;
		struct ipvs_timeouts t = { 0 }, got;
		struct nl_msg *msg;

		read_service(in, &svc);
		read_dest(in, &dest);
		for (int op = IPVS_GENL_ADD; op <= IPVS_GENL_DEL + 1; op++) {
			service_roundtrip(family, op, &svc);
			dest_roundtrip(family, op, &svc, &dest);
		}

		msg = nlmsg_alloc();
		FUZZ_CHECK(msg);
		t.tcp = fuzz_bool(in) ? fuzz_u32(in) : 0;
		t.tcp_fin = fuzz_bool(in) ? fuzz_u32(in) : 0;
		t.udp = fuzz_bool(in) ? fuzz_u32(in) : 0;
		FUZZ_CHECK(ipvs_genl_build_set_timeouts(msg, family, &t) == 0);
		FUZZ_CHECK(ipvs_genl_parse_timeouts(nlmsg_hdr(msg), &got) == 0);
		FUZZ_CHECK(got.tcp == t.tcp && got.tcp_fin == t.tcp_fin && got.udp == t.udp);
		nlmsg_free(msg);

		msg = nlmsg_alloc();
		FUZZ_CHECK(msg);
		FUZZ_CHECK(ipvs_genl_build_get_dests(msg, family, &svc) == expected_service_rc(IPVS_GENL_DEL, &svc, false));
		nlmsg_free(msg);
	}
}

/* Every parser on one kernel-shaped message. */
static void parse_mode(const uint8_t *data, size_t size)
{
	struct nlmsghdr *nlh;
	struct ipvs_service svc;
	struct ipvs_dest dest;
	struct ipvs_timeouts t;
	struct ipvs_info info;
	sa_family_t default_af;
	int r;

	if (size < 1 + sizeof(struct nlmsghdr))
		return;
	default_af = data[0] & 2 ? AF_INET6 : AF_INET;
	data++;
	size--;
	nlh = malloc(size);
	FUZZ_CHECK(nlh);
	memcpy(nlh, data, size);
	nlh->nlmsg_len = (uint32_t)size;

	r = ipvs_genl_parse_service(nlh, &svc);
	FUZZ_CHECK(r == 0 || r == -EBADMSG);
	if (r == 0) {
		check_service_shape(&svc);
		/* What was accepted from the kernel goes back out the same. */
		if (svc.sched_name[0])
			service_roundtrip(0x42, IPVS_GENL_EDIT, &svc);
		service_roundtrip(0x42, IPVS_GENL_DEL, &svc);
	}
	r = ipvs_genl_parse_dest(nlh, default_af, &dest);
	FUZZ_CHECK(r == 0 || r == -EBADMSG);
	if (r == 0) {
		FUZZ_CHECK(af_ok(dest.addr.family));
		FUZZ_CHECK(dest.conn_flags <= IP_VS_CONN_F_FWD_MASK);
	}
	r = ipvs_genl_parse_timeouts(nlh, &t);
	FUZZ_CHECK(r == 0 || r == -EBADMSG);
	r = ipvs_genl_parse_info(nlh, &info);
	FUZZ_CHECK(r == 0 || r == -EBADMSG);
	free(nlh);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reader in = { data, size };

	if (size == 0)
		return 0;
	if (data[0] & 1) {
		parse_mode(data, size);
	} else {
		fuzz_u8(&in);
		build_mode(&in);
	}
	return 0;
}
