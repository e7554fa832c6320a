/* Mechanism: a connection's original destination by its reply tuple, one
 * ctnetlink IPCTNL_MSG_CT_GET (see ct_origin.h). Nothing here logs. */
#include "ct_origin.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

/* What the answer's parser fills. */
struct origin_answer {
	int family;
	struct inet_addr dst;
	uint16_t port;   /* host order */
	int found;       /* 1: address seen, 2: port too */
};

/* Put one direction's tuple: src -> dst, proto, ports (host order). */
static void put_tuple(struct nlmsghdr *nlh, uint16_t type, const struct inet_addr *src, uint16_t sport,
		      const struct inet_addr *dst, uint16_t dport, uint8_t proto)
{
	struct nlattr *tuple = mnl_attr_nest_start(nlh, type), *n;
	bool v6 = src->family == AF_INET6;

	n = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	mnl_attr_put(nlh, v6 ? CTA_IP_V6_SRC : CTA_IP_V4_SRC, v6 ? 16 : 4, src->u.bytes);
	mnl_attr_put(nlh, v6 ? CTA_IP_V6_DST : CTA_IP_V4_DST, v6 ? 16 : 4, dst->u.bytes);
	mnl_attr_nest_end(nlh, n);
	n = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, proto);
	mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(sport));
	mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(dport));
	mnl_attr_nest_end(nlh, n);
	mnl_attr_nest_end(nlh, tuple);
}

/* Read the destination address and port of an original tuple. */
static void read_orig(const struct nlattr *tuple, struct origin_answer *a)
{
	const struct nlattr *x, *y;

	mnl_attr_for_each_nested(x, tuple) {
		if (mnl_attr_get_type(x) == CTA_TUPLE_IP) {
			mnl_attr_for_each_nested(y, x) {
				uint16_t t = mnl_attr_get_type(y), len = mnl_attr_get_payload_len(y);

				if ((t == CTA_IP_V4_DST && len == 4) || (t == CTA_IP_V6_DST && len == 16)) {
					memset(&a->dst, 0, sizeof(a->dst));
					a->dst.family = len == 4 ? AF_INET : AF_INET6;
					memcpy(a->dst.u.bytes, mnl_attr_get_payload(y), len);
					a->found |= 1;
				}
			}
		} else if (mnl_attr_get_type(x) == CTA_TUPLE_PROTO) {
			mnl_attr_for_each_nested(y, x) {
				if (mnl_attr_get_type(y) == CTA_PROTO_DST_PORT &&
				    mnl_attr_get_payload_len(y) == 2) {
					a->port = ntohs(mnl_attr_get_u16(y));
					a->found |= 2;
				}
			}
		}
	}
}

static int answer_cb(const struct nlmsghdr *nlh, void *data)
{
	struct origin_answer *a = data;
	const struct nlattr *attr;

	mnl_attr_for_each(attr, nlh, sizeof(struct nfgenmsg))
		if (mnl_attr_get_type(attr) == CTA_TUPLE_ORIG)
			read_orig(attr, a);
	return MNL_CB_OK;
}

int ct_origin_lookup(struct ct_origin *c, uint8_t proto, const struct inet_addr *local, uint16_t local_port,
		     const struct inet_addr *peer, uint16_t peer_port, struct inet_addr *ret_dst,
		     uint16_t *ret_port)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct origin_answer a = { .family = local->family };
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;
	uint32_t seq;
	ssize_t n;
	int r;

	if (local->family != peer->family || (local->family != AF_INET && local->family != AF_INET6))
		return -EAFNOSUPPORT;
	if (!c->nl) {
		c->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
		if (!c->nl)
			return -errno;
		if (mnl_socket_bind(c->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
			r = -errno;
			ct_origin_done(c);
			return r;
		}
	}
	seq = ++c->seq;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = (uint8_t)local->family;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	/* The reply direction runs from where the packet arrived back to
	 * its sender. */
	put_tuple(nlh, CTA_TUPLE_REPLY, local, local_port, peer, peer_port, proto);
	if (mnl_socket_sendto(c->nl, nlh, nlh->nlmsg_len) < 0) {
		r = -errno;
		ct_origin_done(c);
		return r;
	}
	/* The kernel answers a GET before sendto returns: one message, or an
	 * error (ENOENT when there is no such entry). */
	for (;;) {
		n = mnl_socket_recvfrom(c->nl, buf, sizeof(buf));
		if (n < 0) {
			r = -errno;
			ct_origin_done(c);
			return r;
		}
		r = mnl_cb_run(buf, (size_t)n, seq, mnl_socket_get_portid(c->nl), answer_cb, &a);
		if (r == MNL_CB_ERROR && errno == ESRCH)
			continue; /* an answer to an earlier request */
		if (r == MNL_CB_ERROR)
			return errno ? -errno : -EIO;
		if (r == MNL_CB_STOP || a.found)
			break;
	}
	if (a.found != 3)
		return -ENOENT;
	*ret_dst = a.dst;
	*ret_port = a.port;
	return 0;
}

void ct_origin_done(struct ct_origin *c)
{
	if (c->nl)
		mnl_socket_close(c->nl);
	c->nl = NULL;
}
