/* Mechanism: dummy interface, host addresses, node addresses and sysctls
 * for the IPVS backend, over rtnetlink with libnl-route-3. See ipvs_host.h.
 *
 * libnl-route builds the requests (rtnl_link_build_*_request,
 * rtnl_addr_build_*_request); the answers are read by the exchange that
 * ipvs_genl.c uses too (ipvs_nl.h), so that a refusal comes back as the
 * kernel's own errno (libnl folds several into one code: EADDRNOTAVAIL and
 * EEXIST are what the idempotence rules here hinge on). Dumps are small parsers of
 * their own rather than libnl caches: a cache keeps every object of the
 * netns, where these calls need one field or two of each.
 */
#include "ipvs_host.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>

#include "ipvs_nl.h"

struct ipvs_host {
	struct ipvs_nl nl;  /* an rtnetlink socket and its exchange (ipvs_nl.h) */
};

/* A dump that the kernel flags as inconsistent (NLM_F_DUMP_INTR: the list
 * changed while it was read) is repeated; a netns whose addresses change
 * this often for this long is not one ferry can make sense of anyway. */
#define DUMP_TRIES 5

/* ---- The handle ---- */

int ipvs_host_open(struct ipvs_host **ret)
{
	struct ipvs_host *h;
	int r;

	if (!ret)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	r = ipvs_nl_init(&h->nl, NETLINK_ROUTE);
	if (r < 0) {
		ipvs_host_close(h);
		return r;
	}
	*ret = h;
	return 0;
}

struct ipvs_host *ipvs_host_close(struct ipvs_host *h)
{
	if (!h)
		return NULL;
	ipvs_nl_done(&h->nl);
	free(h);
	return NULL;
}

/* ---- Links ---- */

static bool name_ok(const char *name)
{
	size_t n;

	if (!name)
		return false;
	n = strnlen(name, IFNAMSIZ);
	return n > 0 && n < IFNAMSIZ;
}

/* What link_get reads from an RTM_NEWLINK reply. */
struct link_found {
	int ifindex;
	bool is_dummy;
};

static int on_link(struct nlmsghdr *nlh, void *ctx)
{
	struct link_found *lf = ctx;
	struct nlattr *tb[IFLA_MAX + 1], *info[IFLA_INFO_MAX + 1];
	struct ifinfomsg *ifi;

	if (nlh->nlmsg_type != RTM_NEWLINK)
		return 0;
	if (nlmsg_parse(nlh, sizeof(*ifi), tb, IFLA_MAX, NULL) < 0)
		return -EBADMSG;
	ifi = nlmsg_data(nlh);
	lf->ifindex = ifi->ifi_index;
	lf->is_dummy = false;
	if (tb[IFLA_LINKINFO] &&
	    nla_parse_nested(info, IFLA_INFO_MAX, tb[IFLA_LINKINFO], NULL) == 0 &&
	    info[IFLA_INFO_KIND])
		lf->is_dummy = nla_strcmp(info[IFLA_INFO_KIND], "dummy") == 0;
	return 0;
}

/* Look a link up by name: 0 and *ret, -ENODEV when there is none, or
 * another -errno. */
static int link_get(struct ipvs_host *h, const char *name, struct link_found *ret)
{
	struct nl_msg *msg = NULL;
	int r;

	*ret = (struct link_found){ 0 };
	r = rtnl_link_build_get_request(0, name, &msg);
	if (r < 0)
		return ipvs_nl_errno(r);
	r = ipvs_nl_request(&h->nl, msg, on_link, ret);
	nlmsg_free(msg);
	if (r == 0 && ret->ifindex <= 0)
		r = -EBADMSG;   /* an ack without the link: not what the kernel does */
	return r;
}

/* RTM_NEWLINK with NLM_F_CREATE | NLM_F_EXCL: a dummy called name, and no
 * IFF_UP (see the top of ipvs_host.h). */
static int dummy_create(struct ipvs_host *h, const char *name)
{
	struct rtnl_link *link;
	struct nl_msg *msg = NULL;
	int r;

	link = rtnl_link_alloc();
	if (!link)
		return -ENOMEM;
	rtnl_link_set_name(link, name);
	r = rtnl_link_set_type(link, "dummy");
	if (r == 0)
		r = rtnl_link_build_add_request(link, NLM_F_CREATE | NLM_F_EXCL, &msg);
	rtnl_link_put(link);
	if (r < 0)
		return ipvs_nl_errno(r);
	r = ipvs_nl_request(&h->nl, msg, NULL, NULL);
	nlmsg_free(msg);
	return r;
}

int ipvs_host_dummy_ensure(struct ipvs_host *h, const char *name, int *ret_ifindex)
{
	struct link_found lf;
	int r;

	if (!h || !name_ok(name) || !ret_ifindex)
		return -EINVAL;
	r = link_get(h, name, &lf);
	if (r == -ENODEV) {
		r = dummy_create(h, name);
		/* -EEXIST: someone else made it in between; look at what. */
		if (r < 0 && r != -EEXIST)
			return r;
		r = link_get(h, name, &lf);
	}
	if (r < 0)
		return r;
	if (!lf.is_dummy)
		return -EBUSY;
	*ret_ifindex = lf.ifindex;
	return 0;
}

int ipvs_host_dummy_remove(struct ipvs_host *h, const char *name)
{
	struct link_found lf;
	struct rtnl_link *link;
	struct nl_msg *msg = NULL;
	int r;

	if (!h || !name_ok(name))
		return -EINVAL;
	r = link_get(h, name, &lf);
	if (r == -ENODEV)
		return 0;
	if (r < 0)
		return r;
	if (!lf.is_dummy)
		return -EBUSY;
	/* By index, so that a link renamed in between is not the one hit. */
	link = rtnl_link_alloc();
	if (!link)
		return -ENOMEM;
	rtnl_link_set_ifindex(link, lf.ifindex);
	r = rtnl_link_build_delete_request(link, &msg);
	rtnl_link_put(link);
	if (r < 0)
		return ipvs_nl_errno(r);
	r = ipvs_nl_request(&h->nl, msg, NULL, NULL);
	nlmsg_free(msg);
	return r == -ENODEV ? 0 : r;
}

/* ---- Addresses ---- */

static size_t addr_len(const struct inet_addr *a)
{
	if (a->family == AF_INET)
		return 4;
	if (a->family == AF_INET6)
		return 16;
	return 0;
}

/* RTM_NEWADDR (add) or RTM_DELADDR of addr as a host address on ifindex.
 * Returns the kernel's answer as is. */
static int addr_request(struct ipvs_host *h, int ifindex, const struct inet_addr *addr, bool add)
{
	struct rtnl_addr *ra = NULL;
	struct nl_addr *local = NULL;
	struct nl_msg *msg = NULL;
	size_t len;
	int r;

	if (!h || ifindex <= 0 || !addr)
		return -EINVAL;
	len = addr_len(addr);
	if (len == 0)
		return -EINVAL;
	ra = rtnl_addr_alloc();
	local = nl_addr_build(addr->family, addr->u.bytes, len);
	if (!ra || !local) {
		r = -ENOMEM;
		goto out;
	}
	rtnl_addr_set_ifindex(ra, ifindex);
	/* Sets the family too. libnl sends it as IFA_LOCAL and IFA_ADDRESS,
	 * which is how the kernel matches the address to delete (with the
	 * prefix length: only the /32 or /128 is ever removed). */
	r = rtnl_addr_set_local(ra, local);
	if (r < 0) {
		r = ipvs_nl_errno(r);
		goto out;
	}
	rtnl_addr_set_prefixlen(ra, (int)len * 8);
	if (add) {
		if (addr->family == AF_INET6)
			rtnl_addr_set_flags(ra, IFA_F_NODAD);
		r = rtnl_addr_build_add_request(ra, NLM_F_EXCL, &msg);
	} else {
		r = rtnl_addr_build_delete_request(ra, 0, &msg);
	}
	if (r < 0) {
		r = ipvs_nl_errno(r);
		goto out;
	}
	r = ipvs_nl_request(&h->nl, msg, NULL, NULL);
out:
	nlmsg_free(msg);
	nl_addr_put(local);
	rtnl_addr_put(ra);
	return r;
}

int ipvs_host_addr_add(struct ipvs_host *h, int ifindex, const struct inet_addr *addr)
{
	int r = addr_request(h, ifindex, addr, true);

	return r == -EEXIST ? 0 : r;
}

int ipvs_host_addr_del(struct ipvs_host *h, int ifindex, const struct inet_addr *addr)
{
	int r = addr_request(h, ifindex, addr, false);

	return r == -EADDRNOTAVAIL || r == -ENOENT ? 0 : r;
}

/* One address of a dump. */
struct addr_entry {
	struct inet_addr addr;
	uint8_t prefix_len;
	int ifindex;
};

struct addr_dump {
	struct addr_entry *v;
	size_t n, cap;
};

static int on_addr(struct nlmsghdr *nlh, void *ctx)
{
	struct addr_dump *d = ctx;
	struct nlattr *tb[IFA_MAX + 1], *a;
	struct ifaddrmsg *ifa;
	struct addr_entry *e;
	size_t len;

	if (nlh->nlmsg_type != RTM_NEWADDR)
		return 0;
	if (nlmsg_parse(nlh, sizeof(*ifa), tb, IFA_MAX, NULL) < 0)
		return -EBADMSG;
	ifa = nlmsg_data(nlh);
	if (ifa->ifa_family == AF_INET)
		len = 4;
	else if (ifa->ifa_family == AF_INET6)
		len = 16;
	else
		return 0;
	/* IFA_LOCAL is the interface's own address; IFA_ADDRESS is the same
	 * or, on a point-to-point link, the peer's. IPv6 sends IFA_LOCAL only
	 * with a peer. */
	a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	if (!a || (size_t)nla_len(a) != len)
		return 0;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct addr_entry *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	e = &d->v[d->n++];
	memset(e, 0, sizeof(*e));
	e->addr.family = ifa->ifa_family;
	memcpy(e->addr.u.bytes, nla_data(a), len);
	e->prefix_len = ifa->ifa_prefixlen;
	e->ifindex = (int)ifa->ifa_index;
	return 0;
}

/* Every address of the netns, both families, into *d (which the caller
 * frees), repeating an inconsistent dump. */
static int addr_dump(struct ipvs_host *h, struct addr_dump *d)
{
	struct ifaddrmsg ifa = { .ifa_family = AF_UNSPEC };
	struct nl_msg *msg;
	int r = -EAGAIN, i;

	for (i = 0; i < DUMP_TRIES && r == -EAGAIN; i++) {
		d->n = 0;
		msg = nlmsg_alloc_simple(RTM_GETADDR, NLM_F_DUMP);
		if (!msg)
			return -ENOMEM;
		r = nlmsg_append(msg, &ifa, sizeof(ifa), NLMSG_ALIGNTO);
		if (r < 0) {
			nlmsg_free(msg);
			return ipvs_nl_errno(r);
		}
		r = ipvs_nl_request(&h->nl, msg, on_addr, d);
		nlmsg_free(msg);
	}
	return r;
}

int ipvs_host_addr_list(struct ipvs_host *h, int ifindex,
			int (*cb)(const struct inet_addr *addr, uint8_t prefix_len, void *ctx),
			void *ctx)
{
	struct addr_dump d = { 0 };
	size_t i;
	int r;

	if (!h || ifindex <= 0 || !cb)
		return -EINVAL;
	r = addr_dump(h, &d);
	for (i = 0; r == 0 && i < d.n; i++)
		if (d.v[i].ifindex == ifindex)
			r = cb(&d.v[i].addr, d.v[i].prefix_len, ctx);
	free(d.v);
	return r;
}

int ipvs_host_node_addrs(struct ipvs_host *h, int exclude_ifindex,
			 struct inet_addr **ret, size_t *ret_n)
{
	struct addr_dump d = { 0 };
	struct inet_addr *v = NULL;
	size_t i, n = 0;
	int r;

	if (!h || !ret || !ret_n)
		return -EINVAL;
	*ret = NULL;
	*ret_n = 0;
	r = addr_dump(h, &d);
	if (r == 0 && d.n > 0) {
		v = malloc(d.n * sizeof(*v));
		if (!v)
			r = -ENOMEM;
	}
	for (i = 0; r == 0 && i < d.n; i++)
		if (exclude_ifindex <= 0 || d.v[i].ifindex != exclude_ifindex)
			v[n++] = d.v[i].addr;
	free(d.v);
	if (r < 0 || n == 0) {
		free(v);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* ---- Sysctls ---- */

/* Open "/proc/sys/" + path with flags (O_CLOEXEC added), refusing paths
 * that would leave /proc/sys (-EINVAL). Returns the descriptor, or -errno. */
static int sysctl_open(const char *path, int flags)
{
	char file[PATH_MAX];
	const char *p, *end;
	int n, fd;

	if (!path || !*path || path[0] == '/')
		return -EINVAL;
	for (p = path; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, '/');
		if (end - p == 2 && p[0] == '.' && p[1] == '.')
			return -EINVAL;
	}
	n = snprintf(file, sizeof(file), "/proc/sys/%s", path);
	if (n <= 0 || n >= (int)sizeof(file))
		return -EINVAL;
	fd = open(file, flags | O_CLOEXEC);
	return fd == -1 ? -errno : fd;
}

int ipvs_host_sysctl_set(const char *path, const char *value)
{
	size_t len;
	ssize_t w;
	int fd, r;

	if (!value || !*value)
		return -EINVAL;
	fd = sysctl_open(path, O_WRONLY);
	if (fd < 0)
		return fd;
	/* One write: the kernel parses a sysctl value from a single call. */
	len = strlen(value);
	w = write(fd, value, len);
	r = w == -1 ? -errno : (size_t)w == len ? 0 : -EIO;
	close(fd);
	return r;
}

int ipvs_host_sysctl_get(const char *path, size_t size, char *ret)
{
	char buf[4096];
	size_t n = 0;
	bool full;
	ssize_t got;
	int fd, r = 0;

	if (!ret || size == 0)
		return -EINVAL;
	ret[0] = '\0';
	fd = sysctl_open(path, O_RDONLY);
	if (fd < 0)
		return fd;
	/* Values are short text; read to the end (a page at most). */
	while (n < sizeof(buf)) {
		got = read(fd, buf + n, sizeof(buf) - n);
		if (got == -1) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	if (r < 0)
		return r;
	full = n == sizeof(buf);
	if (!full && n > 0 && buf[n - 1] == '\n')
		n--;
	if (full || n >= size) {
		n = n < size - 1 ? n : size - 1;
		memcpy(ret, buf, n);
		ret[n] = '\0';
		return -ERANGE;
	}
	memcpy(ret, buf, n);
	ret[n] = '\0';
	return 0;
}
