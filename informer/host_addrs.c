/* This host's addresses over rtnetlink (libmnl): an RTM_GETADDR dump for
 * the interface addresses, an RTM_GETROUTE lookup per family for the
 * default route's source, and a socket in the address and route multicast
 * groups that says when to read them again. A notification only says
 * "something changed": the whole list is read again (a few addresses, one
 * round trip), which cannot drift the way applying deltas could.
 */
#include "host_addrs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

#include "log.h"

struct host_addrs_watch {
	struct mnl_socket *events;
	struct model *model;
};

struct addr_list {
	struct inet_addr *a;
	size_t n, cap;
	int err;
};

static int addr_list_add(struct addr_list *l, const struct inet_addr *a)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct inet_addr *p = realloc(l->a, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		l->a = p;
		l->cap = cap;
	}
	l->a[l->n++] = *a;
	return 0;
}

/* Read an address attribute of family into *ret; false when it has
 * another length. */
static bool attr_addr(const struct nlattr *attr, int family, struct inet_addr *ret)
{
	size_t len = family == AF_INET ? 4 : 16;

	if (mnl_attr_get_payload_len(attr) != len)
		return false;
	memset(ret, 0, sizeof(*ret));
	ret->family = (sa_family_t)family;
	memcpy(ret->u.bytes, mnl_attr_get_payload(attr), len);
	return true;
}

static int on_addr(const struct nlmsghdr *nlh, void *data)
{
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	struct addr_list *l = data;
	struct inet_addr local = { 0 }, address = { 0 };
	const struct nlattr *attr;

	if (nlh->nlmsg_type != RTM_NEWADDR || (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6))
		return MNL_CB_OK;
	mnl_attr_for_each(attr, nlh, sizeof(*ifa)) {
		if (mnl_attr_get_type(attr) == IFA_LOCAL)
			attr_addr(attr, ifa->ifa_family, &local);
		else if (mnl_attr_get_type(attr) == IFA_ADDRESS)
			attr_addr(attr, ifa->ifa_family, &address);
	}
	/* IPv4 point-to-point links put the peer in IFA_ADDRESS and our own
	 * address in IFA_LOCAL; IPv6 has only IFA_ADDRESS. */
	if (local.family)
		l->err = addr_list_add(l, &local);
	else if (address.family)
		l->err = addr_list_add(l, &address);
	return l->err ? MNL_CB_ERROR : MNL_CB_OK;
}

/* Send one request on a fresh socket and run cb over the replies. */
static int rt_request(struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[32768]; /* a dump message fits (the kernel sends at most a page or 32 KiB) */
	struct mnl_socket *nl = mnl_socket_open(NETLINK_ROUTE);
	unsigned portid, seq = (unsigned)time(NULL);
	ssize_t n;
	int r = 0;

	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out;
	}
	portid = mnl_socket_get_portid(nl);
	nlh->nlmsg_seq = seq;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		r = -errno;
		goto out;
	}
	for (;;) {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0) {
			r = -errno;
			break;
		}
		r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
		if (r <= MNL_CB_STOP) {
			r = r < 0 ? -errno : 0;
			break;
		}
	}
out:
	mnl_socket_close(nl);
	return r;
}

static int on_route(const struct nlmsghdr *nlh, void *data)
{
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	struct inet_addr *src = data;
	const struct nlattr *attr;

	if (nlh->nlmsg_type != RTM_NEWROUTE)
		return MNL_CB_OK;
	mnl_attr_for_each(attr, nlh, sizeof(*rtm))
		if (mnl_attr_get_type(attr) == RTA_PREFSRC)
			attr_addr(attr, rtm->rtm_family, src);
	return MNL_CB_STOP;
}

/* The source address the kernel picks for the default route of family:
 * a route lookup (nothing is sent) towards a documentation address, which
 * only the default route covers on an ordinary host. *ret stays unset
 * (family 0) when the family has no default route. */
static void default_source(int family, struct inet_addr *ret)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;
	struct inet_addr dst;
	int r;

	memset(ret, 0, sizeof(*ret));
	inet_addr_parse(family == AF_INET ? "192.0.2.1" : "2001:db8::1", &dst);
	nlh->nlmsg_type = RTM_GETROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (unsigned char)family;
	rtm->rtm_dst_len = family == AF_INET ? 32 : 128;
	mnl_attr_put(nlh, RTA_DST, family == AF_INET ? 4 : 16, dst.u.bytes);
	r = rt_request(nlh, on_route, ret);
	/* ENETUNREACH: no default route, so no primary address. */
	if (r < 0 && r != -ENETUNREACH && r != -EHOSTUNREACH)
		log_debug("host addresses: route lookup (family %d) failed: %s", family, strerror(-r));
}

static int cmp_addr(const void *a, const void *b)
{
	return inet_addr_cmp(a, b);
}

int host_addrs_read(struct host_addrs *ret)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct addr_list l = { 0 };
	struct ifaddrmsg *ifa;
	size_t k = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	nlh->nlmsg_type = RTM_GETADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_UNSPEC;
	r = rt_request(nlh, on_addr, &l);
	if (r == 0 && l.err)
		r = l.err;
	if (r < 0) {
		free(l.a);
		return r;
	}
	if (l.n)
		qsort(l.a, l.n, sizeof(*l.a), cmp_addr);
	for (size_t i = 0; i < l.n; i++)
		if (k == 0 || inet_addr_cmp(&l.a[k - 1], &l.a[i]) != 0)
			l.a[k++] = l.a[i];
	ret->addrs = l.a;
	ret->n_addrs = k;
	default_source(AF_INET, &ret->default_src[0]);
	default_source(AF_INET6, &ret->default_src[1]);
	return 0;
}

/* Read the addresses and give them to the model. */
static int watch_refresh(struct host_addrs_watch *w)
{
	struct host_addrs h;
	int r = host_addrs_read(&h);

	if (r < 0)
		return log_errno(r, "host addresses: reading them failed");
	r = model_set_host_addrs(w->model, &h);
	host_addrs_done(&h);
	return r;
}

int host_addrs_watch_new(struct model *m, struct host_addrs_watch **ret)
{
	struct host_addrs_watch *w = calloc(1, sizeof(*w));
	unsigned groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
	int r;

	*ret = NULL;
	if (!w)
		return -ENOMEM;
	w->model = m;
	w->events = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!w->events || mnl_socket_bind(w->events, groups, MNL_SOCKET_AUTOPID) < 0) {
		r = log_errno(-errno, "host addresses: cannot subscribe to address changes");
		host_addrs_watch_free(w);
		return r;
	}
	/* Subscribed first, read second: a change in between is not lost. */
	r = watch_refresh(w);
	if (r < 0) {
		host_addrs_watch_free(w);
		return r;
	}
	*ret = w;
	return 0;
}

int host_addrs_watch_fd(const struct host_addrs_watch *w)
{
	return mnl_socket_get_fd(w->events);
}

int host_addrs_watch_process(struct host_addrs_watch *w)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	int drained = 0;

	/* Bounded: the socket is non-blocking, and a storm of notifications
	 * is read again as one list below. */
	while (drained < 1024 && mnl_socket_recvfrom(w->events, buf, sizeof(buf)) > 0)
		drained++;
	return watch_refresh(w);
}

struct host_addrs_watch *host_addrs_watch_free(struct host_addrs_watch *w)
{
	if (!w)
		return NULL;
	if (w->events)
		mnl_socket_close(w->events);
	free(w);
	return NULL;
}
