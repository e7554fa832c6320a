/* Mechanism: IPVS over generic netlink with libnl-3. See ipvs_genl.h.
 *
 * The wire format is the kernel's (net/netfilter/ipvs/ip_vs_ctl.c): a
 * command carries a nested IPVS_CMD_ATTR_SERVICE and, for destination
 * commands, a nested IPVS_CMD_ATTR_DEST. Addresses travel as 16 bytes (a
 * union nf_inet_addr, IPv4 in the first 4), ports as __be16, the service
 * flags as a {flags, mask} pair, the persistence netmask as a __be32 mask for
 * IPv4 but as a plain prefix length for IPv6.
 */
#include "ipvs_genl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <linux/ip_vs.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include "ipvs_nl.h"

struct ipvs_genl {
	struct ipvs_nl nl;  /* the socket and its exchange (ipvs_nl.h) */
	int family;
};

/* Attribute checks for the parsers. Lengths the kernel always sends are
 * checked again by hand where a short attribute would be read past. */
static struct nla_policy cmd_policy[IPVS_CMD_ATTR_MAX + 1] = {
	[IPVS_CMD_ATTR_SERVICE] = { .type = NLA_NESTED },
	[IPVS_CMD_ATTR_DEST] = { .type = NLA_NESTED },
	[IPVS_CMD_ATTR_TIMEOUT_TCP] = { .type = NLA_U32 },
	[IPVS_CMD_ATTR_TIMEOUT_TCP_FIN] = { .type = NLA_U32 },
	[IPVS_CMD_ATTR_TIMEOUT_UDP] = { .type = NLA_U32 },
};

static struct nla_policy svc_policy[IPVS_SVC_ATTR_MAX + 1] = {
	[IPVS_SVC_ATTR_AF] = { .type = NLA_U16 },
	[IPVS_SVC_ATTR_PROTOCOL] = { .type = NLA_U16 },
	[IPVS_SVC_ATTR_ADDR] = { .type = NLA_UNSPEC, .minlen = 4, .maxlen = 16 },
	[IPVS_SVC_ATTR_PORT] = { .type = NLA_U16 },
	[IPVS_SVC_ATTR_FWMARK] = { .type = NLA_U32 },
	[IPVS_SVC_ATTR_SCHED_NAME] = { .type = NLA_STRING, .maxlen = IPVS_SCHED_NAME_MAX },
	[IPVS_SVC_ATTR_FLAGS] = { .type = NLA_UNSPEC, .minlen = sizeof(struct ip_vs_flags) },
	[IPVS_SVC_ATTR_TIMEOUT] = { .type = NLA_U32 },
	[IPVS_SVC_ATTR_NETMASK] = { .type = NLA_U32 },
	[IPVS_SVC_ATTR_STATS] = { .type = NLA_NESTED },
	[IPVS_SVC_ATTR_STATS64] = { .type = NLA_NESTED },
};

static struct nla_policy dest_policy[IPVS_DEST_ATTR_MAX + 1] = {
	[IPVS_DEST_ATTR_ADDR] = { .type = NLA_UNSPEC, .minlen = 4, .maxlen = 16 },
	[IPVS_DEST_ATTR_PORT] = { .type = NLA_U16 },
	[IPVS_DEST_ATTR_FWD_METHOD] = { .type = NLA_U32 },
	[IPVS_DEST_ATTR_WEIGHT] = { .type = NLA_U32 },
	[IPVS_DEST_ATTR_U_THRESH] = { .type = NLA_U32 },
	[IPVS_DEST_ATTR_L_THRESH] = { .type = NLA_U32 },
	[IPVS_DEST_ATTR_ACTIVE_CONNS] = { .type = NLA_U32 },
	[IPVS_DEST_ATTR_INACT_CONNS] = { .type = NLA_U32 },
	[IPVS_DEST_ATTR_PERSIST_CONNS] = { .type = NLA_U32 },
	[IPVS_DEST_ATTR_STATS] = { .type = NLA_NESTED },
	[IPVS_DEST_ATTR_ADDR_FAMILY] = { .type = NLA_U16 },
	[IPVS_DEST_ATTR_STATS64] = { .type = NLA_NESTED },
};

static struct nla_policy info_policy[IPVS_INFO_ATTR_MAX + 1] = {
	[IPVS_INFO_ATTR_VERSION] = { .type = NLA_U32 },
	[IPVS_INFO_ATTR_CONN_TAB_SIZE] = { .type = NLA_U32 },
};

int ipvs_genl_idempotent(enum ipvs_genl_op op, int err)
{
	if (op == IPVS_GENL_ADD && err == -EEXIST)
		return 0;
	if (op == IPVS_GENL_DEL && (err == -ENOENT || err == -ESRCH))
		return 0;
	return err;
}

/* ---- Builders ---- */

static int put_header(struct nl_msg *msg, int family, uint8_t cmd, int flags)
{
	if (!msg)
		return -EINVAL;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, flags, cmd, IPVS_GENL_VERSION))
		return -EMSGSIZE;
	return 0;
}

static bool af_ok(sa_family_t af)
{
	return af == AF_INET || af == AF_INET6;
}

/* An address as the kernel's union nf_inet_addr: 16 bytes, IPv4 first. */
static void addr_to_wire(const struct inet_addr *a, uint8_t wire[16])
{
	memset(wire, 0, 16);
	memcpy(wire, a->u.bytes, a->family == AF_INET ? 4 : 16);
}

/* The persistence netmask attribute: a __be32 mask for IPv4, the prefix
 * length itself for IPv6 (ip_vs_add_service checks 1..128). */
static int netmask_to_wire(sa_family_t af, uint8_t len, uint32_t *ret)
{
	if (af == AF_INET) {
		if (len == 0)
			len = 32;
		if (len > 32)
			return -EINVAL;
		*ret = htonl(len == 32 ? 0xffffffffu : ~(0xffffffffu >> len));
		return 0;
	}
	if (len == 0)
		len = 128;
	if (len > 128)
		return -EINVAL;
	*ret = len;
	return 0;
}

static uint8_t netmask_from_wire(sa_family_t af, uint32_t wire)
{
	uint32_t m;
	uint8_t len = 0;

	if (af != AF_INET)
		return wire > 128 ? 128 : (uint8_t)wire;
	/* Leading one bits; a mask with holes (never sent by ipvsadm or ferry)
	 * counts up to its first hole. */
	for (m = ntohl(wire); m & 0x80000000u; m <<= 1)
		len++;
	return len;
}

/* Check a service; full: also the options ADD and EDIT send. */
static int service_check(const struct ipvs_service *svc, bool full)
{
	uint32_t mask;
	size_t n;

	if (!svc)
		return -EINVAL;
	if (!af_ok(svc->af))
		return -EAFNOSUPPORT;
	if (svc->fwmark == 0 && (svc->addr.family != svc->af || svc->protocol == 0))
		return -EINVAL;
	if (!full)
		return 0;
	n = strnlen(svc->sched_name, sizeof(svc->sched_name));
	if (n == 0 || n == sizeof(svc->sched_name))
		return -EINVAL;
	return netmask_to_wire(svc->af, svc->netmask, &mask);
}

/* The nested IPVS_CMD_ATTR_SERVICE: the key, and with full the options. */
static int put_service(struct nl_msg *msg, const struct ipvs_service *svc, bool full)
{
	struct nlattr *nest;
	uint8_t wire[16];
	uint32_t mask = 0;
	int r;

	r = service_check(svc, full);
	if (r < 0)
		return r;
	if (full)
		(void)netmask_to_wire(svc->af, svc->netmask, &mask);   /* checked above */
	nest = nla_nest_start(msg, IPVS_CMD_ATTR_SERVICE);
	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u16(msg, IPVS_SVC_ATTR_AF, svc->af) < 0)
		return -EMSGSIZE;
	if (svc->fwmark) {
		if (nla_put_u32(msg, IPVS_SVC_ATTR_FWMARK, svc->fwmark) < 0)
			return -EMSGSIZE;
	} else {
		addr_to_wire(&svc->addr, wire);
		if (nla_put_u16(msg, IPVS_SVC_ATTR_PROTOCOL, svc->protocol) < 0 ||
		    nla_put(msg, IPVS_SVC_ATTR_ADDR, sizeof(wire), wire) < 0 ||
		    nla_put_u16(msg, IPVS_SVC_ATTR_PORT, htons(svc->port)) < 0)
			return -EMSGSIZE;
	}
	if (full) {
		/* mask ~0: the flags given are the whole truth, also on EDIT,
		 * where the kernel would otherwise keep bits outside the mask. */
		struct ip_vs_flags flags = { .flags = svc->flags, .mask = ~0u };

		if (nla_put_string(msg, IPVS_SVC_ATTR_SCHED_NAME, svc->sched_name) < 0 ||
		    nla_put(msg, IPVS_SVC_ATTR_FLAGS, sizeof(flags), &flags) < 0 ||
		    nla_put_u32(msg, IPVS_SVC_ATTR_TIMEOUT, svc->timeout) < 0 ||
		    nla_put_u32(msg, IPVS_SVC_ATTR_NETMASK, mask) < 0)
			return -EMSGSIZE;
	}
	if (nla_nest_end(msg, nest) < 0)
		return -EMSGSIZE;
	return 0;
}

static int op_cmd(enum ipvs_genl_op op, bool dest, uint8_t *ret)
{
	switch (op) {
	case IPVS_GENL_ADD:
		*ret = dest ? IPVS_CMD_NEW_DEST : IPVS_CMD_NEW_SERVICE;
		return 0;
	case IPVS_GENL_EDIT:
		*ret = dest ? IPVS_CMD_SET_DEST : IPVS_CMD_SET_SERVICE;
		return 0;
	case IPVS_GENL_DEL:
		*ret = dest ? IPVS_CMD_DEL_DEST : IPVS_CMD_DEL_SERVICE;
		return 0;
	}
	return -EINVAL;
}

int ipvs_genl_build_service(struct nl_msg *msg, int family, enum ipvs_genl_op op,
			    const struct ipvs_service *svc)
{
	uint8_t cmd;
	int r;

	r = op_cmd(op, false, &cmd);
	if (r < 0)
		return r;
	/* Check before writing anything, so a refused object leaves no header. */
	r = service_check(svc, op != IPVS_GENL_DEL);
	if (r < 0)
		return r;
	r = put_header(msg, family, cmd, NLM_F_ACK);
	if (r < 0)
		return r;
	return put_service(msg, svc, op != IPVS_GENL_DEL);
}

int ipvs_genl_build_dest(struct nl_msg *msg, int family, enum ipvs_genl_op op,
			 const struct ipvs_service *svc, const struct ipvs_dest *dest)
{
	bool full = op != IPVS_GENL_DEL;
	struct nlattr *nest;
	uint8_t wire[16], cmd;
	int r;

	r = op_cmd(op, true, &cmd);
	if (r < 0)
		return r;
	r = service_check(svc, false);
	if (r < 0)
		return r;
	if (!dest)
		return -EINVAL;
	if (!af_ok(dest->addr.family))
		return -EAFNOSUPPORT;
	if (full && dest->weight > INT32_MAX)
		return -EINVAL;
	r = put_header(msg, family, cmd, NLM_F_ACK);
	if (r < 0)
		return r;
	r = put_service(msg, svc, false);
	if (r < 0)
		return r;

	nest = nla_nest_start(msg, IPVS_CMD_ATTR_DEST);
	if (!nest)
		return -EMSGSIZE;
	addr_to_wire(&dest->addr, wire);
	if (nla_put(msg, IPVS_DEST_ATTR_ADDR, sizeof(wire), wire) < 0 ||
	    nla_put_u16(msg, IPVS_DEST_ATTR_PORT, htons(dest->port)) < 0 ||
	    nla_put_u16(msg, IPVS_DEST_ATTR_ADDR_FAMILY, dest->addr.family) < 0)
		return -EMSGSIZE;
	if (full &&
	    (nla_put_u32(msg, IPVS_DEST_ATTR_FWD_METHOD, dest->conn_flags & IP_VS_CONN_F_FWD_MASK) < 0 ||
	     nla_put_u32(msg, IPVS_DEST_ATTR_WEIGHT, dest->weight) < 0 ||
	     nla_put_u32(msg, IPVS_DEST_ATTR_U_THRESH, dest->u_threshold) < 0 ||
	     nla_put_u32(msg, IPVS_DEST_ATTR_L_THRESH, dest->l_threshold) < 0))
		return -EMSGSIZE;
	if (nla_nest_end(msg, nest) < 0)
		return -EMSGSIZE;
	return 0;
}

int ipvs_genl_build_flush(struct nl_msg *msg, int family)
{
	return put_header(msg, family, IPVS_CMD_FLUSH, NLM_F_ACK);
}

int ipvs_genl_build_get_services(struct nl_msg *msg, int family)
{
	return put_header(msg, family, IPVS_CMD_GET_SERVICE, NLM_F_DUMP);
}

int ipvs_genl_build_get_dests(struct nl_msg *msg, int family, const struct ipvs_service *svc)
{
	int r = service_check(svc, false);

	if (r < 0)
		return r;
	r = put_header(msg, family, IPVS_CMD_GET_DEST, NLM_F_DUMP);
	if (r < 0)
		return r;
	return put_service(msg, svc, false);
}

int ipvs_genl_build_get_timeouts(struct nl_msg *msg, int family)
{
	return put_header(msg, family, IPVS_CMD_GET_CONFIG, NLM_F_ACK);
}

int ipvs_genl_build_set_timeouts(struct nl_msg *msg, int family, const struct ipvs_timeouts *t)
{
	int r;

	if (!t)
		return -EINVAL;
	r = put_header(msg, family, IPVS_CMD_SET_CONFIG, NLM_F_ACK);
	if (r < 0)
		return r;
	/* The kernel reads the current values first and replaces only the
	 * attributes present, so a 0 is simply not sent. */
	if ((t->tcp && nla_put_u32(msg, IPVS_CMD_ATTR_TIMEOUT_TCP, t->tcp) < 0) ||
	    (t->tcp_fin && nla_put_u32(msg, IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, t->tcp_fin) < 0) ||
	    (t->udp && nla_put_u32(msg, IPVS_CMD_ATTR_TIMEOUT_UDP, t->udp) < 0))
		return -EMSGSIZE;
	return 0;
}

int ipvs_genl_build_get_info(struct nl_msg *msg, int family)
{
	return put_header(msg, family, IPVS_CMD_GET_INFO, NLM_F_ACK);
}

/* ---- Parsers ---- */

static int parse_top(struct nlmsghdr *nlh, struct nlattr **tb)
{
	if (!nlh || !genlmsg_valid_hdr(nlh, 0))
		return -EBADMSG;
	if (genlmsg_parse(nlh, 0, tb, IPVS_CMD_ATTR_MAX, cmd_policy) < 0)
		return -EBADMSG;
	return 0;
}

/* An optional u32 attribute: its value, or 0 when absent (the parsers
 * zero their result first, so absent and 0 read the same). */
static uint32_t opt_u32(const struct nlattr *a)
{
	return a ? nla_get_u32(a) : 0;
}

/* Read an address attribute of family af (4 or 16 bytes on the wire). */
static int addr_from_wire(const struct nlattr *a, sa_family_t af, struct inet_addr *ret)
{
	size_t need = af == AF_INET ? 4 : 16;

	memset(ret, 0, sizeof(*ret));
	if (!af_ok(af) || (size_t)nla_len(a) < need)
		return -EBADMSG;
	ret->family = af;
	memcpy(ret->u.bytes, nla_data(a), need);
	return 0;
}

int ipvs_genl_parse_service(struct nlmsghdr *nlh, struct ipvs_service *ret)
{
	struct nlattr *tb[IPVS_CMD_ATTR_MAX + 1], *sa[IPVS_SVC_ATTR_MAX + 1];
	int r;

	memset(ret, 0, sizeof(*ret));
	r = parse_top(nlh, tb);
	if (r < 0)
		return r;
	if (!tb[IPVS_CMD_ATTR_SERVICE] ||
	    nla_parse_nested(sa, IPVS_SVC_ATTR_MAX, tb[IPVS_CMD_ATTR_SERVICE], svc_policy) < 0)
		return -EBADMSG;
	if (!sa[IPVS_SVC_ATTR_AF])
		return -EBADMSG;
	ret->af = nla_get_u16(sa[IPVS_SVC_ATTR_AF]);
	if (!af_ok(ret->af))
		return -EBADMSG;

	if (sa[IPVS_SVC_ATTR_FWMARK] && nla_get_u32(sa[IPVS_SVC_ATTR_FWMARK])) {
		ret->fwmark = nla_get_u32(sa[IPVS_SVC_ATTR_FWMARK]);
		ret->addr.family = ret->af;
	} else {
		if (!sa[IPVS_SVC_ATTR_PROTOCOL] || !sa[IPVS_SVC_ATTR_ADDR] || !sa[IPVS_SVC_ATTR_PORT])
			return -EBADMSG;
		ret->protocol = nla_get_u16(sa[IPVS_SVC_ATTR_PROTOCOL]);
		ret->port = ntohs(nla_get_u16(sa[IPVS_SVC_ATTR_PORT]));
		r = addr_from_wire(sa[IPVS_SVC_ATTR_ADDR], ret->af, &ret->addr);
		if (r < 0)
			return r;
	}

	/* Options: present in dump replies and ADD/EDIT requests, absent in
	 * the key-only messages (DEL, destination commands). */
	if (sa[IPVS_SVC_ATTR_SCHED_NAME])
		nla_strlcpy(ret->sched_name, sa[IPVS_SVC_ATTR_SCHED_NAME], sizeof(ret->sched_name));
	if (sa[IPVS_SVC_ATTR_FLAGS]) {
		struct ip_vs_flags flags;

		memcpy(&flags, nla_data(sa[IPVS_SVC_ATTR_FLAGS]), sizeof(flags));
		ret->flags = flags.flags & ~(uint32_t)IP_VS_SVC_F_HASHED;
	}
	ret->timeout = opt_u32(sa[IPVS_SVC_ATTR_TIMEOUT]);
	if (sa[IPVS_SVC_ATTR_NETMASK])
		ret->netmask = netmask_from_wire(ret->af, nla_get_u32(sa[IPVS_SVC_ATTR_NETMASK]));
	return 0;
}

int ipvs_genl_parse_dest(struct nlmsghdr *nlh, sa_family_t default_af, struct ipvs_dest *ret)
{
	struct nlattr *tb[IPVS_CMD_ATTR_MAX + 1], *da[IPVS_DEST_ATTR_MAX + 1];
	sa_family_t af = default_af;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = parse_top(nlh, tb);
	if (r < 0)
		return r;
	if (!tb[IPVS_CMD_ATTR_DEST] ||
	    nla_parse_nested(da, IPVS_DEST_ATTR_MAX, tb[IPVS_CMD_ATTR_DEST], dest_policy) < 0)
		return -EBADMSG;
	if (!da[IPVS_DEST_ATTR_ADDR] || !da[IPVS_DEST_ATTR_PORT])
		return -EBADMSG;
	if (da[IPVS_DEST_ATTR_ADDR_FAMILY])
		af = nla_get_u16(da[IPVS_DEST_ATTR_ADDR_FAMILY]);
	r = addr_from_wire(da[IPVS_DEST_ATTR_ADDR], af, &ret->addr);
	if (r < 0)
		return r;
	ret->port = ntohs(nla_get_u16(da[IPVS_DEST_ATTR_PORT]));
	if (da[IPVS_DEST_ATTR_FWD_METHOD])
		ret->conn_flags = nla_get_u32(da[IPVS_DEST_ATTR_FWD_METHOD]) & IP_VS_CONN_F_FWD_MASK;
	ret->weight = opt_u32(da[IPVS_DEST_ATTR_WEIGHT]);
	ret->u_threshold = opt_u32(da[IPVS_DEST_ATTR_U_THRESH]);
	ret->l_threshold = opt_u32(da[IPVS_DEST_ATTR_L_THRESH]);
	ret->active_conns = opt_u32(da[IPVS_DEST_ATTR_ACTIVE_CONNS]);
	ret->inactive_conns = opt_u32(da[IPVS_DEST_ATTR_INACT_CONNS]);
	ret->persist_conns = opt_u32(da[IPVS_DEST_ATTR_PERSIST_CONNS]);
	return 0;
}

int ipvs_genl_parse_timeouts(struct nlmsghdr *nlh, struct ipvs_timeouts *ret)
{
	struct nlattr *tb[IPVS_CMD_ATTR_MAX + 1];
	int r;

	memset(ret, 0, sizeof(*ret));
	r = parse_top(nlh, tb);
	if (r < 0)
		return r;
	ret->tcp = opt_u32(tb[IPVS_CMD_ATTR_TIMEOUT_TCP]);
	ret->tcp_fin = opt_u32(tb[IPVS_CMD_ATTR_TIMEOUT_TCP_FIN]);
	ret->udp = opt_u32(tb[IPVS_CMD_ATTR_TIMEOUT_UDP]);
	return 0;
}

int ipvs_genl_parse_info(struct nlmsghdr *nlh, struct ipvs_info *ret)
{
	struct nlattr *tb[IPVS_INFO_ATTR_MAX + 1];

	memset(ret, 0, sizeof(*ret));
	/* GET_INFO replies use their own attribute space at the top level. */
	if (!nlh || !genlmsg_valid_hdr(nlh, 0) ||
	    genlmsg_parse(nlh, 0, tb, IPVS_INFO_ATTR_MAX, info_policy) < 0)
		return -EBADMSG;
	if (!tb[IPVS_INFO_ATTR_VERSION])
		return -EBADMSG;
	ret->version = nla_get_u32(tb[IPVS_INFO_ATTR_VERSION]);
	ret->conn_tab_size = opt_u32(tb[IPVS_INFO_ATTR_CONN_TAB_SIZE]);
	return 0;
}

/* ---- The socket ---- */

int ipvs_genl_open(struct ipvs_genl **ret)
{
	return ipvs_genl_open_family(IPVS_GENL_NAME, ret);
}

int ipvs_genl_open_family(const char *name, struct ipvs_genl **ret)
{
	struct ipvs_genl *h;
	int r;

	if (!name || !ret)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	r = ipvs_nl_init(&h->nl, NETLINK_GENERIC);
	if (r < 0) {
		/* A kernel without CONFIG_NETLINK's generic family refuses
		 * the socket itself. */
		if (r == -EPROTONOSUPPORT)
			r = -EAFNOSUPPORT;
		goto fail;
	}
	r = genl_ctrl_resolve(h->nl.sk, name);
	if (r < 0) {
		/* NLE_OBJ_NOTFOUND: no such family, i.e. no IPVS -> -ENOENT. */
		r = ipvs_nl_errno(r);
		goto fail;
	}
	h->family = r;
	*ret = h;
	return 0;
fail:
	ipvs_genl_close(h);
	return r;
}

struct ipvs_genl *ipvs_genl_close(struct ipvs_genl *h)
{
	if (!h)
		return NULL;
	ipvs_nl_done(&h->nl);
	free(h);
	return NULL;
}

int ipvs_genl_family_id(const struct ipvs_genl *h)
{
	return h->family;
}

int ipvs_genl_request(struct ipvs_genl *h, struct nl_msg *msg, ipvs_genl_msg_cb cb, void *ctx)
{
	if (!h)
		return -EINVAL;
	return ipvs_nl_request(&h->nl, msg, cb, ctx);
}

int ipvs_genl_exec(struct ipvs_genl *h, struct nl_msg *msg)
{
	return ipvs_genl_request(h, msg, NULL, NULL);
}

/* A fresh message for a convenience call: -EINVAL without a handle. */
static int msg_new(struct ipvs_genl *h, struct nl_msg **ret)
{
	if (!h)
		return -EINVAL;
	*ret = nlmsg_alloc();
	return *ret ? 0 : -ENOMEM;
}

/* Send msg if building it succeeded (built == 0), then free it. */
static int send_free(struct ipvs_genl *h, struct nl_msg *msg, int built,
		     ipvs_genl_msg_cb cb, void *ctx)
{
	int r = built;

	if (r == 0)
		r = ipvs_genl_request(h, msg, cb, ctx);
	nlmsg_free(msg);
	return r;
}

/* Add, edit or delete svc, or dest in svc when is_dest (dest may then be
 * NULL: the builder refuses it), applying the idempotence rule. */
static int apply(struct ipvs_genl *h, enum ipvs_genl_op op, const struct ipvs_service *svc,
		 bool is_dest, const struct ipvs_dest *dest)
{
	struct nl_msg *msg;
	int r = msg_new(h, &msg);

	if (r < 0)
		return r;
	r = send_free(h, msg, is_dest ? ipvs_genl_build_dest(msg, h->family, op, svc, dest)
				      : ipvs_genl_build_service(msg, h->family, op, svc), NULL, NULL);
	return ipvs_genl_idempotent(op, r);
}

int ipvs_genl_apply_service(struct ipvs_genl *h, enum ipvs_genl_op op,
			    const struct ipvs_service *svc)
{
	return apply(h, op, svc, false, NULL);
}

int ipvs_genl_apply_dest(struct ipvs_genl *h, enum ipvs_genl_op op,
			 const struct ipvs_service *svc, const struct ipvs_dest *dest)
{
	return apply(h, op, svc, true, dest);
}

int ipvs_genl_flush(struct ipvs_genl *h)
{
	struct nl_msg *msg;
	int r = msg_new(h, &msg);

	if (r < 0)
		return r;
	return send_free(h, msg, ipvs_genl_build_flush(msg, h->family), NULL, NULL);
}

int ipvs_genl_set_timeouts(struct ipvs_genl *h, const struct ipvs_timeouts *t)
{
	struct nl_msg *msg;
	int r = msg_new(h, &msg);

	if (r < 0)
		return r;
	return send_free(h, msg, ipvs_genl_build_set_timeouts(msg, h->family, t), NULL, NULL);
}

/* ---- Typed reads ----
 *
 * Every typed read (the dumps, and the GETs of one reply) parses the whole
 * answer into an array first, and the caller's callback runs after the
 * exchange has ended, so it may use the handle (dump a service's
 * destinations, add, delete). */

/* The parsed replies of one answer: n objects of size bytes each. */
struct replies {
	void *v;
	size_t n, cap, size;
	/* One reply into ret (size bytes); af is the family of the service
	 * whose destinations are dumped (parsers of other objects ignore it). */
	int (*parse)(struct nlmsghdr *nlh, sa_family_t af, void *ret);
	sa_family_t af;
};

static int on_reply(struct nlmsghdr *nlh, void *ctx)
{
	struct replies *w = ctx;
	int r;

	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 16;
		void *v = realloc(w->v, cap * w->size);

		if (!v)
			return -ENOMEM;
		w->v = v;
		w->cap = cap;
	}
	r = w->parse(nlh, w->af, (char *)w->v + w->n * w->size);
	if (r == 0)
		w->n++;
	return r;
}

/* The parsers, in the shape struct replies calls. */
static int parse_service_any(struct nlmsghdr *nlh, sa_family_t af, void *ret)
{
	(void)af;
	return ipvs_genl_parse_service(nlh, ret);
}

static int parse_dest_any(struct nlmsghdr *nlh, sa_family_t af, void *ret)
{
	return ipvs_genl_parse_dest(nlh, af, ret);
}

static int parse_timeouts_any(struct nlmsghdr *nlh, sa_family_t af, void *ret)
{
	(void)af;
	return ipvs_genl_parse_timeouts(nlh, ret);
}

static int parse_info_any(struct nlmsghdr *nlh, sa_family_t af, void *ret)
{
	(void)af;
	return ipvs_genl_parse_info(nlh, ret);
}

/* Dump every service (svc NULL) or svc's destinations into w, which the
 * caller frees whatever the result. */
static int dump_read(struct ipvs_genl *h, const struct ipvs_service *svc, struct replies *w)
{
	struct nl_msg *msg;
	int r = msg_new(h, &msg);

	if (r < 0)
		return r;
	return send_free(h, msg, svc ? ipvs_genl_build_get_dests(msg, h->family, svc)
				     : ipvs_genl_build_get_services(msg, h->family), on_reply, w);
}

int ipvs_genl_dump_services(struct ipvs_genl *h,
			    int (*cb)(const struct ipvs_service *svc, void *ctx), void *ctx)
{
	struct replies w = { .size = sizeof(struct ipvs_service), .parse = parse_service_any };
	int r;

	if (!cb)
		return -EINVAL;
	r = dump_read(h, NULL, &w);
	for (size_t i = 0; r == 0 && i < w.n; i++)
		r = cb((const struct ipvs_service *)w.v + i, ctx);
	free(w.v);
	return r;
}

int ipvs_genl_dump_dests(struct ipvs_genl *h, const struct ipvs_service *svc,
			 int (*cb)(const struct ipvs_dest *dest, void *ctx), void *ctx)
{
	struct replies w = { .size = sizeof(struct ipvs_dest), .parse = parse_dest_any };
	int r;

	if (!cb || !svc)
		return -EINVAL;
	w.af = svc->af;
	r = dump_read(h, svc, &w);
	for (size_t i = 0; r == 0 && i < w.n; i++)
		r = cb((const struct ipvs_dest *)w.v + i, ctx);
	free(w.v);
	return r;
}

/* A GET built by build, whose reply (the last, were there several) parse
 * reads into ret (size bytes, zeroed first). -EBADMSG when the kernel
 * answers without one. */
static int get_one(struct ipvs_genl *h, int (*build)(struct nl_msg *msg, int family),
		   int (*parse)(struct nlmsghdr *nlh, sa_family_t af, void *ret), void *ret, size_t size)
{
	struct replies w = { .size = size, .parse = parse };
	struct nl_msg *msg;
	int r;

	memset(ret, 0, size);
	r = msg_new(h, &msg);
	if (r < 0)
		return r;
	r = send_free(h, msg, build(msg, h->family), on_reply, &w);
	if (r == 0 && w.n == 0)
		r = -EBADMSG;
	if (r == 0)
		memcpy(ret, (const char *)w.v + (w.n - 1) * size, size);
	free(w.v);
	return r;
}

int ipvs_genl_get_timeouts(struct ipvs_genl *h, struct ipvs_timeouts *ret)
{
	return get_one(h, ipvs_genl_build_get_timeouts, parse_timeouts_any, ret, sizeof(*ret));
}

int ipvs_genl_get_info(struct ipvs_genl *h, struct ipvs_info *ret)
{
	return get_one(h, ipvs_genl_build_get_info, parse_info_any, ret, sizeof(*ret));
}
