/* ipvs_host_check: the IPVS host mechanism (backends/ipvs/ipvs_host.c)
 * against a kernel with the dummy driver, i.e. in the test VM
 * (tests/vm/guest/ipvs_host.sh; this machine's kernel has no dummy).
 *
 *   ipvs_host_check [--node-addr ADDR]... [--ipvs] [--leave]
 *
 * Run it inside a network namespace the test made (ip netns exec): it
 * refuses to run in the namespace of pid 1. In that namespace it
 *   - creates ferry-ipvs0 (ipvs_host_dummy_ensure), checks that it is a
 *     DOWN link, that a second ensure finds the same one, and that a name
 *     held by another kind of link (lo) is refused both ways;
 *   - shows that connecting to the VIPs fails before they are bound (the
 *     control), binds 10.96.0.10 and fd00:96::10 (twice each), lists them,
 *     and proves each is delivered locally: a TCP listener on 0.0.0.0 /
 *     [::] accepts a connection to it, with the VIP as its local address,
 *     and data passes both ways;
 *   - lists the node's addresses without the dummy (each --node-addr,
 *     127.0.0.1 and ::1 present, the VIPs absent) and with it;
 *   - takes over as a restarted ferry would: a new handle, ensure gives the
 *     same ifindex, the list gives the VIPs, they still answer;
 *   - brings the dummy up behind ferry's back: ensure leaves it up, the
 *     VIPs answer, the list now has a link-local address; down again, the
 *     kernel drops the IPv6 VIP (reported), a new add brings it back;
 *   - deletes the VIPs (twice each), sees the list empty and the control
 *     fail again; removes the dummy (twice), gets -ENODEV for its stale
 *     ifindex, and creates and removes it once more;
 *   - sets and reads back the sysctls the backend uses (net/ipv4/vs/...
 *     only with --ipvs, which also requires them to exist; without it they
 *     must be absent or present, both fine);
 *   - with --leave, ends by binding the VIPs on a fresh dummy and leaves
 *     them, so the script can look at them with iproute2 and send traffic
 *     from another namespace.
 * Prints one "ok:" line per check. Exit 0 all passed, 1 a check failed, 2
 * usage or refusal, 77 the kernel has no dummy driver (skip). */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inet.h"
#include "ipvs_host.h"
#include "ipvs_host_addrs.h"

#define PORT 8080
#define MAX_NODE_ADDRS 8
#define VIP4 "10.96.0.10"
#define VIP6 "fd00:96::10"

static const char *dummy = IPVS_HOST_DUMMY_NAME;
static int listeners[2] = { -1, -1 };   /* TCP on 0.0.0.0:PORT and [::]:PORT */

static void ok(const char *fmt, ...)
{
	va_list ap;

	printf("ipvs_host_check: ok: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void info(const char *fmt, ...)
{
	va_list ap;

	printf("ipvs_host_check: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static __attribute__((noreturn)) void fail(const char *fmt, ...)
{
	va_list ap;

	printf("ipvs_host_check: FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(1);
}

/* Fail unless r is want; what names the call. */
static void expect(int r, int want, const char *what)
{
	if (r != want)
		fail("%s: got %d (%s), expected %d (%s)", what, r, strerror(-r), want, strerror(-want));
}

static struct inet_addr parse(const char *text)
{
	struct inet_addr a;

	if (inet_addr_parse(text, &a) < 0) {
		fprintf(stderr, "ipvs_host_check: not an address: %s\n", text);
		exit(2);
	}
	return a;
}

/* ---- Link flags through the old ioctls: independent of the code under test. */

static int link_flags(const char *name)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	r = ioctl(fd, SIOCGIFFLAGS, &ifr);
	close(fd);
	if (r == -1)
		fail("SIOCGIFFLAGS %s: %s", name, strerror(errno));
	return ifr.ifr_flags;
}

static void set_up(const char *name, bool up)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	r = ioctl(fd, SIOCGIFFLAGS, &ifr);
	if (r == 0) {
		ifr.ifr_flags = up ? ifr.ifr_flags | IFF_UP : ifr.ifr_flags & ~IFF_UP;
		r = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	if (r == -1)
		fail("set %s %s: %s", name, up ? "up" : "down", strerror(errno));
}

/* ---- Traffic ---- */

static void listen_all(void)
{
	struct inet_addr any[2] = { inet_addr_any(AF_INET), inet_addr_any(AF_INET6) };
	int i, one = 1;

	for (i = 0; i < 2; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = inet_to_sockaddr(&any[i], PORT, &ss);
		int fd = socket(any[i].family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd == -1)
			fail("socket: %s", strerror(errno));
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (i == 1)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&ss, sl) == -1 || listen(fd, 16) == -1)
			fail("listen on %s port %d: %s", i ? "[::]" : "0.0.0.0", PORT, strerror(errno));
		listeners[i] = fd;
	}
}

static int wait_for(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n = poll(&p, 1, ms);

	if (n == -1)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

/* Connect to [vip]:PORT and have the wildcard listener of its family
 * accept it, with vip as the accepted socket's local address, then pass a
 * byte each way. Returns 0, or the -errno of the first step that failed
 * (connect's own error for the control: ENETUNREACH before the VIP is
 * bound). *where says which step. */
static int deliver(const char *vip_text, const char **where)
{
	struct inet_addr vip = parse(vip_text), local;
	struct sockaddr_storage ss;
	socklen_t sl = inet_to_sockaddr(&vip, PORT, &ss);
	int lfd = listeners[vip.family == AF_INET6], c = -1, s = -1, r, err = 0;
	socklen_t el = sizeof(err);
	uint16_t port;
	char ch;

	*where = "socket";
	c = socket(vip.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c == -1)
		return -errno;
	*where = "connect";
	if (connect(c, (struct sockaddr *)&ss, sl) == -1) {
		if (errno != EINPROGRESS) {
			r = -errno;
			goto out;
		}
		r = wait_for(c, POLLOUT, 2000);
		if (r < 0)
			goto out;
		getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			r = -err;
			goto out;
		}
	}
	*where = "accept";
	r = wait_for(lfd, POLLIN, 2000);
	if (r < 0)
		goto out;
	s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (s == -1) {
		r = -errno;
		goto out;
	}
	*where = "the accepted socket's local address";
	sl = sizeof(ss);
	if (getsockname(s, (struct sockaddr *)&ss, &sl) == -1 ||
	    inet_from_sockaddr((struct sockaddr *)&ss, &local, &port) < 0 ||
	    inet_addr_cmp(&local, &vip) != 0 || port != PORT) {
		r = -EADDRNOTAVAIL;
		goto out;
	}
	*where = "data";
	if (write(c, "x", 1) != 1 || wait_for(s, POLLIN, 2000) < 0 || read(s, &ch, 1) != 1 ||
	    ch != 'x' || write(s, "y", 1) != 1 || wait_for(c, POLLIN, 2000) < 0 ||
	    read(c, &ch, 1) != 1 || ch != 'y') {
		r = -EIO;
		goto out;
	}
	r = 0;
out:
	if (s != -1)
		close(s);
	close(c);
	return r;
}

static void expect_delivered(const char *vip, const char *when)
{
	const char *where;
	int r = deliver(vip, &where);

	if (r < 0)
		fail("%s: TCP to %s port %d not delivered locally (%s: %s)", when, vip, PORT, where,
		     strerror(-r));
	ok("%s: TCP to %s port %d accepted by the wildcard listener, local address the VIP", when,
	   vip, PORT);
}

static void expect_not_delivered(const char *vip, const char *when)
{
	const char *where;
	int r = deliver(vip, &where);

	if (r == 0)
		fail("%s: TCP to %s port %d was accepted", when, vip, PORT);
	ok("%s: TCP to %s port %d not delivered (%s: %s)", when, vip, PORT, where, strerror(-r));
}

/* ---- Address lists ---- */

static struct seen list_of(struct ipvs_host *h, int ifindex)
{
	struct seen s = { 0 };

	expect(ipvs_host_addr_list(h, ifindex, seen_collect, &s), 0, "ipvs_host_addr_list");
	return s;
}

static void expect_vips_listed(struct ipvs_host *h, int ifindex, const char *when)
{
	struct seen s = list_of(h, ifindex);

	if (s.n != 2 || seen_plen(&s, parse(VIP4)) != 32 || seen_plen(&s, parse(VIP6)) != 128)
		fail("%s: the dummy lists %zu addresses, expected exactly %s/32 and %s/128", when,
		     s.n, VIP4, VIP6);
	ok("%s: the dummy lists exactly %s/32 and %s/128", when, VIP4, VIP6);
}

/* Add (add true) or delete both VIPs on ifindex, each twice: the second
 * call finds the kernel as wanted already, and is success too. */
static void vips_twice(struct ipvs_host *h, int ifindex, bool add)
{
	static const char *const vips[] = { VIP4, VIP6 };
	char what[64];

	for (size_t i = 0; i < sizeof(vips) / sizeof(vips[0]); i++) {
		struct inet_addr a = parse(vips[i]);

		for (int again = 0; again < 2; again++) {
			snprintf(what, sizeof(what), "%s%s %s", again ? "second " : "", add ? "add" : "del", vips[i]);
			expect(add ? ipvs_host_addr_add(h, ifindex, &a) : ipvs_host_addr_del(h, ifindex, &a), 0, what);
		}
	}
	ok("%s each VIP twice is success", add ? "adding" : "deleting");
}

/* Whether the address text is among v[0..n). */
static bool has(const struct inet_addr *v, size_t n, const char *text)
{
	return addr_find(v, n, parse(text)) >= 0;
}

/* ---- Sysctls ---- */

static void sysctl_roundtrip(const char *path, const char *value)
{
	char buf[64];
	int r;

	expect(ipvs_host_sysctl_set(path, value), 0, path);
	r = ipvs_host_sysctl_get(path, sizeof(buf), buf);
	expect(r, 0, path);
	if (strcmp(buf, value) != 0)
		fail("%s reads back '%s' after writing '%s'", path, buf, value);
	ok("sysctl %s = %s, read back", path, value);
}

/* The inode number of the initial network namespace, fixed since Linux 3.8
 * (PROC_NET_INIT_INO in include/linux/proc_ns.h, not a uapi header). */
#define NET_INIT_INO 0xEFFFFFF9u

/* Whether this process is in the initial network namespace: its inode is
 * the fixed one, or that of pid 1 (when /proc/1 may be read at all: some
 * sandboxes hide it). */
static bool in_initial_netns(void)
{
	struct stat self, init;

	if (stat("/proc/self/ns/net", &self) == -1)
		return true;   /* cannot tell: refuse */
	if (self.st_ino == NET_INIT_INO)
		return true;
	return stat("/proc/1/ns/net", &init) == 0 && self.st_ino == init.st_ino &&
	       self.st_dev == init.st_dev;
}

int main(int argc, char **argv)
{
	const char *node_addrs[MAX_NODE_ADDRS];
	size_t n_node = 0, n, i;
	bool want_ipvs = false, leave = false;
	struct inet_addr v4, v6, *node;
	struct ipvs_host *h;
	int ifindex, again, r;
	struct seen s;
	char buf[64];

	for (i = 1; i < (size_t)argc; i++) {
		if (strcmp(argv[i], "--node-addr") == 0 && i + 1 < (size_t)argc &&
		    n_node < MAX_NODE_ADDRS) {
			node_addrs[n_node++] = argv[++i];
			parse(node_addrs[n_node - 1]);
		} else if (strcmp(argv[i], "--ipvs") == 0) {
			want_ipvs = true;
		} else if (strcmp(argv[i], "--leave") == 0) {
			leave = true;
		} else {
			fprintf(stderr, "usage: ipvs_host_check [--node-addr ADDR]... [--ipvs] [--leave]\n");
			return 2;
		}
	}
	if (in_initial_netns()) {
		fprintf(stderr, "ipvs_host_check: refusing to run in the initial network namespace: "
				"run it with ip netns exec in a namespace the test made\n");
		return 2;
	}
	v4 = parse(VIP4);
	v6 = parse(VIP6);

	expect(ipvs_host_open(&h), 0, "ipvs_host_open");

	/* ---- The dummy. */
	expect(ipvs_host_dummy_remove(h, dummy), 0, "ipvs_host_dummy_remove of an absent dummy");
	ok("removing an absent dummy is success");
	r = ipvs_host_dummy_ensure(h, dummy, &ifindex);
	if (r == -EOPNOTSUPP) {
		printf("ipvs_host_check: SKIP: the kernel has no dummy driver\n");
		return 77;
	}
	expect(r, 0, "ipvs_host_dummy_ensure (create)");
	if (ifindex <= 0 || (int)if_nametoindex(dummy) != ifindex)
		fail("ensure gave ifindex %d, the kernel says %s is %u", ifindex, dummy,
		     if_nametoindex(dummy));
	if (link_flags(dummy) & IFF_UP)
		fail("the new dummy is up; it should be created down");
	ok("ensure created %s (ifindex %d), down", dummy, ifindex);
	expect(ipvs_host_dummy_ensure(h, dummy, &again), 0, "second ipvs_host_dummy_ensure");
	if (again != ifindex)
		fail("second ensure gave ifindex %d, first %d", again, ifindex);
	ok("a second ensure finds the same dummy");
	expect(ipvs_host_dummy_ensure(h, "lo", &again), -EBUSY, "ensure on lo (not a dummy)");
	expect(ipvs_host_dummy_remove(h, "lo"), -EBUSY, "remove of lo (not a dummy)");
	if (if_nametoindex("lo") == 0)
		fail("lo is gone");
	ok("a name held by a non-dummy (lo) is neither taken nor removed: -EBUSY");

	/* ---- VIPs and local delivery. */
	listen_all();
	expect_not_delivered(VIP4, "control, before binding");
	expect_not_delivered(VIP6, "control, before binding");
	vips_twice(h, ifindex, true);
	expect_vips_listed(h, ifindex, "dummy down");
	expect_delivered(VIP4, "dummy down");
	expect_delivered(VIP6, "dummy down");

	/* ---- Node addresses. */
	expect(ipvs_host_node_addrs(h, ifindex, &node, &n), 0, "ipvs_host_node_addrs");
	for (i = 0; i < n_node; i++)
		if (!has(node, n, node_addrs[i]))
			fail("node addresses lack %s", node_addrs[i]);
	if (!has(node, n, "127.0.0.1") || !has(node, n, "::1"))
		fail("node addresses lack 127.0.0.1 or ::1");
	if (has(node, n, VIP4) || has(node, n, VIP6))
		fail("node addresses without the dummy still hold a VIP");
	for (i = 0; i < n; i++) {
		char t[INET_ADDR_STRLEN];
		info("node address %s", inet_addr_format(&node[i], t));
	}
	free(node);
	ok("%zu node addresses without the dummy: the --node-addr ones, loopback, no VIP", n);
	expect(ipvs_host_node_addrs(h, 0, &node, &n), 0, "ipvs_host_node_addrs, nothing excluded");
	if (!has(node, n, VIP4) || !has(node, n, VIP6))
		fail("node addresses with nothing excluded lack a VIP");
	free(node);
	ok("with nothing excluded the VIPs are among them");

	/* ---- Take-over, as a restarted ferry. */
	h = ipvs_host_close(h);
	expect(ipvs_host_open(&h), 0, "ipvs_host_open again");
	expect(ipvs_host_dummy_ensure(h, dummy, &again), 0, "ensure on restart");
	if (again != ifindex)
		fail("ensure on restart gave ifindex %d, expected %d", again, ifindex);
	ok("restart: ensure finds the dummy (ifindex %d)", again);
	expect_vips_listed(h, ifindex, "restart");
	expect_delivered(VIP4, "restart");
	expect_delivered(VIP6, "restart");

	/* ---- Someone brings the dummy up: ensure leaves it so. */
	set_up(dummy, true);
	expect(ipvs_host_dummy_ensure(h, dummy, &again), 0, "ensure on an up dummy");
	if (again != ifindex || !(link_flags(dummy) & IFF_UP))
		fail("ensure changed an up dummy (ifindex %d, flags %#x)", again, link_flags(dummy));
	ok("ensure takes an up dummy as it is");
	expect_delivered(VIP4, "dummy up");
	expect_delivered(VIP6, "dummy up");
	s = list_of(h, ifindex);
	info("dummy up: it lists %zu addresses (an up link gets an IPv6 link-local one)", s.n);
	set_up(dummy, false);
	s = list_of(h, ifindex);
	info("dummy down again: %s/32 %s, %s/128 %s", VIP4,
	     seen_plen(&s, parse(VIP4)) == 32 ? "kept" : "gone", VIP6,
	     seen_plen(&s, parse(VIP6)) == 128 ? "kept" : "gone (keep_addr_on_down is 0)");
	expect(ipvs_host_addr_add(h, ifindex, &v4), 0, "add " VIP4 " after down");
	expect(ipvs_host_addr_add(h, ifindex, &v6), 0, "add " VIP6 " after down");
	expect_vips_listed(h, ifindex, "down again, VIPs added again");
	expect_delivered(VIP6, "down again, VIPs added again");

	/* ---- Deletion. */
	vips_twice(h, ifindex, false);
	s = list_of(h, ifindex);
	if (s.n != 0)
		fail("the dummy still lists %zu addresses", s.n);
	ok("the dummy lists no address");
	expect_not_delivered(VIP4, "after delete");
	expect_not_delivered(VIP6, "after delete");

	expect(ipvs_host_dummy_remove(h, dummy), 0, "ipvs_host_dummy_remove");
	if (if_nametoindex(dummy) != 0)
		fail("%s still exists after remove", dummy);
	expect(ipvs_host_dummy_remove(h, dummy), 0, "second ipvs_host_dummy_remove");
	ok("removing the dummy twice is success; it is gone");
	expect(ipvs_host_addr_del(h, ifindex, &v4), -ENODEV, "del on the removed dummy's ifindex");
	expect(ipvs_host_addr_add(h, ifindex, &v4), -ENODEV, "add on the removed dummy's ifindex");
	ok("a stale ifindex is -ENODEV");
	expect(ipvs_host_dummy_ensure(h, dummy, &ifindex), 0, "ensure after remove");
	expect(ipvs_host_dummy_remove(h, dummy), 0, "remove after the new ensure");
	ok("the dummy can be made again after removal");

	/* ---- Sysctls. */
	r = ipvs_host_sysctl_get("net/ipv4/vs/conntrack", sizeof(buf), buf);
	if (want_ipvs || r == 0) {
		expect(r, 0, "net/ipv4/vs/conntrack (IPVS loaded)");
		sysctl_roundtrip("net/ipv4/vs/conntrack", "1");
		sysctl_roundtrip("net/ipv4/vs/expire_nodest_conn", "1");
		sysctl_roundtrip("net/ipv4/vs/expire_quiescent_template", "1");
	} else {
		expect(r, -ENOENT, "net/ipv4/vs/conntrack without IPVS");
		ok("without IPVS net/ipv4/vs/conntrack is -ENOENT");
	}
	sysctl_roundtrip("net/ipv4/conf/all/arp_ignore", "1");
	sysctl_roundtrip("net/ipv4/conf/all/arp_announce", "2");
	expect(ipvs_host_sysctl_get("net/ipv4/vs/no_such", sizeof(buf), buf), -ENOENT,
	       "an absent sysctl");
	ok("an absent sysctl is -ENOENT");

	if (leave) {
		expect(ipvs_host_dummy_ensure(h, dummy, &ifindex), 0, "ensure (--leave)");
		expect(ipvs_host_addr_add(h, ifindex, &v4), 0, "add " VIP4 " (--leave)");
		expect(ipvs_host_addr_add(h, ifindex, &v6), 0, "add " VIP6 " (--leave)");
		ok("left %s (ifindex %d) with %s and %s", dummy, ifindex, VIP4, VIP6);
	}
	ipvs_host_close(h);
	close(listeners[0]);
	close(listeners[1]);
	printf("ipvs_host_check: PASS\n");
	return 0;
}
