/* IPVS host mechanism (backends/ipvs/ipvs_host.c) on a kernel without the
 * dummy driver and without IPVS, each kernel-facing test in a network
 * namespace of its own (Criterion runs every test in a fresh process):
 *   - argument checks that need no kernel;
 *   - the dummy calls: -EOPNOTSUPP when the driver is missing, -EBUSY for a
 *     name held by another kind of link (lo), removal of an absent name;
 *   - host addresses bound on lo (any link takes them): add and delete
 *     twice, the list of lo, the node addresses with and without lo
 *     excluded, -ENODEV for a stale ifindex;
 *   - the sysctl helpers on the namespace's own net/ipv4/ip_forward,
 *     -ENOENT for an absent one (net/ipv4/vs/... here), -ERANGE, bad paths.
 * The dummy itself and local delivery of its VIPs run in the VM
 * (tests/helpers/ipvs_host_check.c, tests/vm/guest/ipvs_host.sh). */
#include <criterion/criterion.h>

#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipvs_host.h"
#include "../helpers/ipvs_host_addrs.h"

static struct inet_addr addr(const char *s)
{
	struct inet_addr a;
	cr_assert_eq(inet_addr_parse(s, &a), 0, "%s", s);
	return a;
}

/* A private network namespace with lo up (and so 127.0.0.1 and ::1). */
static void enter_private_netns(void)
{
	struct ifreq ifr = { 0 };
	int fd;

	if (geteuid() != 0)
		cr_skip_test("needs root for a private network namespace");
	if (unshare(CLONE_NEWNET) == -1)
		cr_skip_test("cannot unshare a network namespace: %s", strerror(errno));
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	strcpy(ifr.ifr_name, "lo");
	cr_assert_eq(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	cr_assert_eq(ioctl(fd, SIOCSIFFLAGS, &ifr), 0, "lo up: %s", strerror(errno));
	close(fd);
}

static struct ipvs_host *open_host(void)
{
	struct ipvs_host *h = NULL;

	cr_assert_eq(ipvs_host_open(&h), 0);
	cr_assert_not_null(h);
	return h;
}

Test(ipvs_host, open_close_and_bad_arguments)
{
	struct ipvs_host *h = open_host();
	struct inet_addr none = { 0 }, v4 = addr("10.96.0.10");
	struct inet_addr *list;
	size_t n;
	char buf[8];
	int ifindex;

	cr_assert_null(ipvs_host_close(NULL));
	cr_assert_eq(ipvs_host_open(NULL), -EINVAL);
	cr_assert_eq(ipvs_host_dummy_ensure(NULL, "x", &ifindex), -EINVAL);
	cr_assert_eq(ipvs_host_dummy_ensure(h, "", &ifindex), -EINVAL);
	cr_assert_eq(ipvs_host_dummy_ensure(h, "sixteen-chars-xx", &ifindex), -EINVAL);
	cr_assert_eq(ipvs_host_dummy_ensure(h, "x", NULL), -EINVAL);
	cr_assert_eq(ipvs_host_dummy_remove(h, NULL), -EINVAL);
	cr_assert_eq(ipvs_host_addr_add(h, 0, &v4), -EINVAL);
	cr_assert_eq(ipvs_host_addr_add(h, 1, &none), -EINVAL);
	cr_assert_eq(ipvs_host_addr_del(h, 1, NULL), -EINVAL);
	cr_assert_eq(ipvs_host_addr_list(h, 1, NULL, NULL), -EINVAL);
	cr_assert_eq(ipvs_host_node_addrs(NULL, 0, &list, &n), -EINVAL);
	cr_assert_eq(ipvs_host_sysctl_get("", sizeof(buf), buf), -EINVAL);
	cr_assert_eq(ipvs_host_sysctl_get("/proc/sys/net/ipv4/ip_forward", sizeof(buf), buf), -EINVAL);
	cr_assert_eq(ipvs_host_sysctl_get("net/../../etc/passwd", sizeof(buf), buf), -EINVAL);
	cr_assert_eq(ipvs_host_sysctl_get("..", sizeof(buf), buf), -EINVAL);
	cr_assert_eq(ipvs_host_sysctl_get("net/ipv4/ip_forward", 0, buf), -EINVAL);
	cr_assert_eq(ipvs_host_sysctl_set("net/ipv4/ip_forward", ""), -EINVAL);
	cr_assert_eq(ipvs_host_sysctl_set("net/ipv4/ip_forward", NULL), -EINVAL);
	cr_assert_null(ipvs_host_close(h));
}

Test(ipvs_host, dummy_without_the_driver)
{
	struct ipvs_host *h;
	int ifindex = 0, r;

	enter_private_netns();
	h = open_host();
	r = ipvs_host_dummy_ensure(h, IPVS_HOST_DUMMY_NAME, &ifindex);
	if (r == 0) {
		/* A kernel with the driver: the VM test covers it; clean up. */
		cr_assert_gt(ifindex, 0);
		cr_assert_eq(ipvs_host_dummy_remove(h, IPVS_HOST_DUMMY_NAME), 0);
	} else {
		cr_assert_eq(r, -EOPNOTSUPP, "no dummy driver: expected -EOPNOTSUPP, got %d (%s)",
			     r, strerror(-r));
	}
	cr_assert_eq(if_nametoindex(IPVS_HOST_DUMMY_NAME), 0);
	/* Absent: removing is success, twice. */
	cr_assert_eq(ipvs_host_dummy_remove(h, IPVS_HOST_DUMMY_NAME), 0);
	cr_assert_eq(ipvs_host_dummy_remove(h, IPVS_HOST_DUMMY_NAME), 0);
	/* A name held by a link that is not a dummy is neither taken nor removed. */
	cr_assert_eq(ipvs_host_dummy_ensure(h, "lo", &ifindex), -EBUSY);
	cr_assert_eq(ipvs_host_dummy_remove(h, "lo"), -EBUSY);
	cr_assert_eq(if_nametoindex("lo"), 1);
	ipvs_host_close(h);
}

static int stop_at_first(const struct inet_addr *a, uint8_t prefix_len, void *ctx)
{
	(void)a;
	(void)prefix_len;
	++*(int *)ctx;
	return -ECANCELED;
}

/* Whether the address text is among v[0..n). */
static bool in_list(const struct inet_addr *v, size_t n, const char *text)
{
	return addr_find(v, n, addr(text)) >= 0;
}

Test(ipvs_host, host_addresses_on_lo)
{
	struct inet_addr v4 = addr("10.96.0.10"), v6 = addr("fd00:96::10");
	struct inet_addr *node = NULL;
	struct ipvs_host *h;
	struct seen s = { 0 };
	size_t n = 99;
	int calls = 0;

	enter_private_netns();
	h = open_host();

	cr_assert_eq(ipvs_host_addr_add(h, 1, &v4), 0);
	cr_assert_eq(ipvs_host_addr_add(h, 1, &v4), 0, "bound already: success");
	cr_assert_eq(ipvs_host_addr_add(h, 1, &v6), 0);
	cr_assert_eq(ipvs_host_addr_add(h, 1, &v6), 0, "bound already: success");

	cr_assert_eq(ipvs_host_addr_list(h, 1, seen_collect, &s), 0);
	cr_assert_eq(s.n, 4, "lo: 127.0.0.1, ::1 and the two VIPs, got %zu", s.n);
	cr_assert_eq(seen_plen(&s, addr("127.0.0.1")), 8);
	cr_assert_eq(seen_plen(&s, addr("::1")), 128);
	cr_assert_eq(seen_plen(&s, addr("10.96.0.10")), 32);
	cr_assert_eq(seen_plen(&s, addr("fd00:96::10")), 128);
	cr_assert_eq(ipvs_host_addr_list(h, 1, stop_at_first, &calls), -ECANCELED);
	cr_assert_eq(calls, 1);
	calls = 0;
	cr_assert_eq(ipvs_host_addr_list(h, 4242, stop_at_first, &calls), 0);
	cr_assert_eq(calls, 0, "no such link, no addresses");

	/* The node's addresses: lo is the only link here. */
	cr_assert_eq(ipvs_host_node_addrs(h, 0, &node, &n), 0);
	cr_assert_eq(n, 4);
	cr_assert(in_list(node, n, "127.0.0.1") && in_list(node, n, "::1"));
	cr_assert(in_list(node, n, "10.96.0.10") && in_list(node, n, "fd00:96::10"));
	free(node);
	cr_assert_eq(ipvs_host_node_addrs(h, 1, &node, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_null(node);

	cr_assert_eq(ipvs_host_addr_del(h, 1, &v4), 0);
	cr_assert_eq(ipvs_host_addr_del(h, 1, &v4), 0, "gone already: success");
	cr_assert_eq(ipvs_host_addr_del(h, 1, &v6), 0);
	cr_assert_eq(ipvs_host_addr_del(h, 1, &v6), 0, "gone already: success");
	memset(&s, 0, sizeof(s));
	cr_assert_eq(ipvs_host_addr_list(h, 1, seen_collect, &s), 0);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(seen_plen(&s, addr("10.96.0.10")), -1);

	/* Deleting only ever removes the host address: 127.0.0.1/8 stays. */
	v4 = addr("127.0.0.1");
	cr_assert_eq(ipvs_host_addr_del(h, 1, &v4), 0);
	memset(&s, 0, sizeof(s));
	cr_assert_eq(ipvs_host_addr_list(h, 1, seen_collect, &s), 0);
	cr_assert_eq(seen_plen(&s, addr("127.0.0.1")), 8);

	/* A stale ifindex is an error, not "already gone". */
	cr_assert_eq(ipvs_host_addr_add(h, 4242, &v6), -ENODEV);
	cr_assert_eq(ipvs_host_addr_del(h, 4242, &v6), -ENODEV);
	ipvs_host_close(h);
}

Test(ipvs_host, sysctls_in_a_private_netns)
{
	struct stat st;
	char buf[16];

	enter_private_netns();
	/* A new netns starts with forwarding off; its sysctl is its own. */
	cr_assert_eq(ipvs_host_sysctl_get("net/ipv4/ip_forward", sizeof(buf), buf), 0);
	cr_assert_str_eq(buf, "0");
	cr_assert_eq(ipvs_host_sysctl_set("net/ipv4/ip_forward", "1"), 0);
	cr_assert_eq(ipvs_host_sysctl_set("net/ipv4/ip_forward", "1"), 0, "same value again");
	cr_assert_eq(ipvs_host_sysctl_get("net/ipv4/ip_forward", sizeof(buf), buf), 0);
	cr_assert_str_eq(buf, "1");
	cr_assert_eq(ipvs_host_sysctl_set("net/ipv4/ip_forward", "not a number"), -EINVAL);
	cr_assert_eq(ipvs_host_sysctl_set("net/ipv4/conf/lo/arp_ignore", "1\n"), 0);
	cr_assert_eq(ipvs_host_sysctl_get("net/ipv4/conf/lo/arp_ignore", sizeof(buf), buf), 0);
	cr_assert_str_eq(buf, "1");

	/* Too small a buffer: the value is cut and said to be. */
	cr_assert_eq(ipvs_host_sysctl_get("net/ipv4/ip_forward", 1, buf), -ERANGE);
	cr_assert_str_eq(buf, "");
	cr_assert_eq(ipvs_host_sysctl_get("net/ipv4/ip_local_port_range", 4, buf), -ERANGE);
	cr_assert_eq(strlen(buf), 3);

	cr_assert_eq(ipvs_host_sysctl_get("net/ipv4/no_such_sysctl", sizeof(buf), buf), -ENOENT);
	cr_assert_eq(ipvs_host_sysctl_set("net/ipv4/no_such_sysctl", "1"), -ENOENT);
	if (stat("/proc/sys/net/ipv4/vs", &st) == 0)
		cr_log_info("this kernel has IPVS: its -ENOENT case is not checked");
	else {
		cr_assert_eq(ipvs_host_sysctl_get("net/ipv4/vs/conntrack", sizeof(buf), buf), -ENOENT);
		cr_assert_eq(ipvs_host_sysctl_set("net/ipv4/vs/conntrack", "1"), -ENOENT);
	}
}
