/* Mechanism: stale UDP conntrack entries of removed endpoints, deleted
 * through raw ctnetlink messages built with libmnl. See conntrack.h.
 *
 * UDP has no connection end, so a client that keeps sending to a service
 * keeps its conntrack entry (and its DNAT to a dead endpoint) for as long as
 * it sends. kube-proxy deletes those entries; so do we: dump the table,
 * pick the entries whose reply tuple comes from a removed endpoint, and
 * delete them by their original tuple. */
#include "conntrack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include "log.h"

struct ct_dump {
	const struct conntrack_target *targets;
	size_t n_targets;
	uint8_t family;
	/* Original tuples (raw nested attributes) of the entries to delete. */
	char **tuples;
	uint16_t *tuple_lens;
	size_t n, cap;
};

/* Read the source address, proto and source port of a tuple attribute. */
static void tuple_src(const struct nlattr *tuple, uint8_t *addr, uint8_t *proto, uint16_t *port_be)
{
	const struct nlattr *a, *b;

	mnl_attr_for_each_nested(a, tuple) {
		if (mnl_attr_get_type(a) == CTA_TUPLE_IP) {
			mnl_attr_for_each_nested(b, a) {
				if (mnl_attr_get_type(b) == CTA_IP_V4_SRC && mnl_attr_get_payload_len(b) == 4)
					memcpy(addr, mnl_attr_get_payload(b), 4);
				else if (mnl_attr_get_type(b) == CTA_IP_V6_SRC && mnl_attr_get_payload_len(b) == 16)
					memcpy(addr, mnl_attr_get_payload(b), 16);
			}
		} else if (mnl_attr_get_type(a) == CTA_TUPLE_PROTO) {
			mnl_attr_for_each_nested(b, a) {
				if (mnl_attr_get_type(b) == CTA_PROTO_NUM)
					*proto = mnl_attr_get_u8(b);
				else if (mnl_attr_get_type(b) == CTA_PROTO_SRC_PORT)
					*port_be = mnl_attr_get_u16(b);
			}
		}
	}
}

static int ct_dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct ct_dump *d = data;
	const struct nlattr *a, *orig = NULL, *reply = NULL;
	uint8_t addr[16] = { 0 }, proto = 0;
	uint16_t port = 0;
	size_t alen = d->family == AF_INET6 ? 16 : 4;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) == CTA_TUPLE_ORIG)
			orig = a;
		else if (mnl_attr_get_type(a) == CTA_TUPLE_REPLY)
			reply = a;
	}
	if (!orig || !reply)
		return MNL_CB_OK;
	tuple_src(reply, addr, &proto, &port);
	if (proto != IPPROTO_UDP)
		return MNL_CB_OK;
	for (size_t i = 0; i < d->n_targets; i++) {
		const struct conntrack_target *t = &d->targets[i];
		if (t->family != d->family || t->port_be != port || memcmp(t->addr, addr, alen) != 0)
			continue;
		if (d->n == d->cap) {
			size_t c = d->cap ? d->cap * 2 : 16;
			char **tp = realloc(d->tuples, c * sizeof(*tp));
			uint16_t *lp;
			if (!tp)
				return MNL_CB_ERROR;
			d->tuples = tp;
			lp = realloc(d->tuple_lens, c * sizeof(*lp));
			if (!lp)
				return MNL_CB_ERROR;
			d->tuple_lens = lp;
			d->cap = c;
		}
		d->tuples[d->n] = malloc(mnl_attr_get_payload_len(orig));
		if (!d->tuples[d->n])
			return MNL_CB_ERROR;
		memcpy(d->tuples[d->n], mnl_attr_get_payload(orig), mnl_attr_get_payload_len(orig));
		d->tuple_lens[d->n] = mnl_attr_get_payload_len(orig);
		d->n++;
		break;
	}
	return MNL_CB_OK;
}

static struct nlmsghdr *ct_msg(char *buf, uint16_t type, uint16_t flags, uint8_t family, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = family;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	return nlh;
}

/* Send nlh and run the replies through cb until done. */
static int ct_talk(struct mnl_socket *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	static char buf[1 << 16];
	unsigned portid = mnl_socket_get_portid(nl);
	int r;

	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t len = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (len == -1)
			return -errno;
		r = mnl_cb_run(buf, (size_t)len, nlh->nlmsg_seq, portid, cb, data);
		if (r == MNL_CB_STOP)
			return 0;
		if (r == MNL_CB_ERROR)
			return -errno;
	}
}

static int ct_flush_family(struct mnl_socket *nl, uint8_t family, const struct conntrack_target *t, size_t n)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct ct_dump d = { .targets = t, .n_targets = n, .family = family };
	uint32_t seq = (uint32_t)time(NULL);
	int r, deleted = 0;

	r = ct_talk(nl, ct_msg(buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, family, seq), ct_dump_cb, &d);
	for (size_t i = 0; i < d.n; i++) {
		if (r == 0) {
			struct nlmsghdr *nlh = ct_msg(buf, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, family, ++seq);
			int rr;

			mnl_attr_put(nlh, CTA_TUPLE_ORIG | NLA_F_NESTED, d.tuple_lens[i], d.tuples[i]);
			rr = ct_talk(nl, nlh, NULL, NULL);
			if (rr == 0)
				deleted++;
			else if (rr != -ENOENT)
				r = rr;
		}
		free(d.tuples[i]);
	}
	free(d.tuples);
	free(d.tuple_lens);
	return r < 0 ? r : deleted;
}

int conntrack_flush_udp(const struct conntrack_target *targets, size_t n)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	int total = 0, r = 0;

	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		mnl_socket_close(nl);
		return r;
	}
	for (int fam = 0; fam < 2 && r >= 0; fam++) {
		r = ct_flush_family(nl, fam ? AF_INET6 : AF_INET, targets, n);
		if (r > 0)
			total += r;
	}
	mnl_socket_close(nl);
	if (r < 0)
		return r;
	log_debug("nftables: deleted %d stale UDP conntrack entries of %zu removed endpoints", total, n);
	return total;
}
