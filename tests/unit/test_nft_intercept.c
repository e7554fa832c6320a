/* Interception for the userspace relay (nft_intercept.c), against the real
 * kernel inside a private network namespace of the test process (needs
 * root; skipped otherwise): a connection to a cluster IP from this host is
 * redirected to the relay port, and SO_ORIGINAL_DST still names the
 * frontend, which is how a relay tells frontends apart. Thousands of
 * frontends are programmed in one sync and read back from the kernel; a
 * second sync converges; tables deleted or maps flushed behind ferry's back
 * are repaired. The messages of a full replace are parsed back without
 * root. Each test holds its own provider state (priv), as a relay backend
 * does. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "nft_batch.h"
#include "nft_intercept.h"

static void enter_private_netns(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root for a private network namespace");
	if (unshare(CLONE_NEWNET) == -1)
		cr_skip_test("cannot unshare a network namespace: %s", strerror(errno));
	if (system("ip link set lo up && ip route add 10.96.0.0/16 dev lo") != 0)
		cr_skip_test("iproute2 could not set up the namespace");
}

/* A provider's private state, allocated and initialised as a relay
 * backend does it; give it back with icpt_free. */
static void *icpt_new(void)
{
	void *priv = calloc(1, nftables_intercept_ops.priv_size);

	cr_assert(priv);
	cr_assert_eq(nftables_intercept_ops.init(priv), 0);
	return priv;
}

static void icpt_free(void *priv)
{
	nftables_intercept_ops.fini(priv);
	free(priv);
}

static int listen_on(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	cr_assert_geq(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 8), 0);
	return fd;
}

Test(nft_intercept, redirects_cluster_ip_to_relay_port)
{
	struct intercept_entry e = { .proto = INET_PROTO_TCP, .port = 80, .relay_port = 15001 };
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(80) }, orig;
	socklen_t len = sizeof(orig);
	int lfd, cfd, afd;
	void *priv;

	enter_private_netns();
	priv = icpt_new();
	cr_assert_eq(inet_addr_parse("10.96.0.10", &e.addr), 0);
	cr_assert_eq(nftables_intercept_ops.sync(priv, &e, 1, NULL), 0);
	/* Idempotent: the same set again is fine. */
	cr_assert_eq(nftables_intercept_ops.sync(priv, &e, 1, NULL), 0);
	lfd = listen_on(15001);
	inet_pton(AF_INET, "10.96.0.10", &dst.sin_addr);
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* Bounded: without the redirect nothing answers and connect would wait
	 * for the kernel's SYN retries. */
	struct timeval tv1 = { 2, 0 };
	setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv1, sizeof(tv1));
	cr_assert_eq(connect(cfd, (struct sockaddr *)&dst, sizeof(dst)), 0, "connect: %s", strerror(errno));
	afd = accept(lfd, NULL, NULL);
	cr_assert_geq(afd, 0);
	cr_assert_eq(getsockopt(afd, SOL_IP, SO_ORIGINAL_DST, &orig, &len), 0);
	cr_assert_eq(orig.sin_addr.s_addr, dst.sin_addr.s_addr);
	cr_assert_eq(ntohs(orig.sin_port), 80);
	close(afd);
	close(cfd);

	/* An empty set stops the redirect: the connection is refused now. */
	cr_assert_eq(nftables_intercept_ops.sync(priv, NULL, 0, NULL), 0);
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* Nothing answers for 10.96.0.10 any more: the connect fails (refused or
	 * timed out), and the relay port sees nothing. */
	struct timeval tv = { 0, 500000 };
	setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	cr_assert_neq(connect(cfd, (struct sockaddr *)&dst, sizeof(dst)), 0);
	close(cfd);
	close(lfd);
	cr_assert_eq(nftables_intercept_ops.cleanup(), 0);
	cr_assert_eq(nftables_intercept_ops.cleanup(), 0, "absent is success");
	icpt_free(priv);
}

/* ---- guards of the service range ---------------------------------------- */

/* A TCP connect from this host to addr:port, bounded by ms: 0 (connected),
 * or the errno it failed with (ETIMEDOUT when nothing came back). */
static int connect_outcome(const char *addr, uint16_t port, int ms)
{
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err = 0;
	socklen_t len = sizeof(err);
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };

	cr_assert_geq(fd, 0);
	inet_pton(AF_INET, addr, &dst.sin_addr);
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == -1) {
		err = errno;
		if (err == EINPROGRESS) {
			err = ETIMEDOUT;
			if (poll(&pfd, 1, ms) == 1)
				cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
		}
	}
	close(fd);
	return err;
}

/* A UDP datagram from this host to addr:port: 0 when nothing came back
 * within ms, else the error the socket reported: ECONNREFUSED for an ICMP
 * port unreachable, EPERM when a rule of the output hook refused it (the
 * sender learns at once). */
static int udp_outcome(const char *addr, uint16_t port, int ms)
{
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c;

	cr_assert_geq(fd, 0);
	inet_pton(AF_INET, addr, &dst.sin_addr);
	cr_assert_eq(connect(fd, (struct sockaddr *)&dst, sizeof(dst)), 0);
	/* From this host the ICMP error may come back within send itself. */
	if (send(fd, "x", 1, 0) == -1)
		err = errno;
	else if (poll(&pfd, 1, ms) == 1 && recv(fd, &c, 1, MSG_DONTWAIT) == -1)
		err = errno;
	close(fd);
	return err;
}

/* kube-proxy's guards, through the output chain (this host's own
 * connections): a cluster IP's undefined TCP port is reset at once and its
 * undefined UDP port answers port unreachable, while its defined port is
 * still redirected; an address of the service CIDRs that is no cluster IP
 * is dropped (the namespace holds 10.96.0.99 and listens on it, so it
 * would answer otherwise; it connects to itself from that address, so the
 * reset a guard would send back to it is a related packet the guards must
 * leave alone). The range is routed out of a veth whose far end answers
 * nobody. New cluster IPs travel as a difference; new CIDRs (rules)
 * replace everything, and none drops nothing. */
Test(nft_intercept, service_range_guards_reject_and_drop, .timeout = 30)
{
	struct intercept_entry e = { .proto = INET_PROTO_TCP, .port = 80, .relay_port = 15001 };
	struct inet_addr ips[2];
	struct inet_prefix range;
	struct intercept_guards g = { .cluster_ips = ips, .n_cluster_ips = 1, .service_cidrs = &range,
				      .n_service_cidrs = 1 };
	int relay, stray;
	void *priv;

	enter_private_netns();
	if (system("ip link add g0 type veth peer name g1 && ip link set g0 up && ip link set g1 up && "
		   "ip addr add 10.0.0.1/24 dev g0 && ip route replace 10.96.0.0/16 via 10.0.0.2 && "
		   "ip addr add 10.96.0.99/32 dev lo") != 0)
		cr_skip_test("iproute2 could not set up the namespace");
	relay = listen_on(15001);
	stray = listen_on(80); /* answers on 10.96.0.99:80 */
	cr_assert_eq(connect_outcome("10.96.0.99", 80, 1000), 0, "the setup does not answer");
	priv = icpt_new();
	cr_assert_eq(inet_addr_parse("10.96.0.10", &e.addr), 0);
	cr_assert_eq(inet_addr_parse("10.96.0.10", &ips[0]), 0);
	cr_assert_eq(inet_addr_parse("10.96.0.20", &ips[1]), 0);
	cr_assert_eq(inet_prefix_parse("10.96.0.0/16", &range), 0);
	cr_assert_eq(nftables_intercept_ops.sync(priv, &e, 1, &g), 0);
	cr_assert_eq(nft_intercept_replace_count(priv), 1);

	cr_assert_eq(connect_outcome("10.96.0.10", 80, 1000), 0, "the defined port is not redirected");
	cr_assert_eq(connect_outcome("10.96.0.10", 81, 1000), ECONNREFUSED, "an undefined port is not reset");
	{
		int u = udp_outcome("10.96.0.10", 54, 1000);

		cr_assert(u == ECONNREFUSED || u == EPERM, "UDP to an undefined port: %s", strerror(u));
	}
	cr_assert_eq(connect_outcome("10.96.0.99", 80, 300), ETIMEDOUT, "an unallocated address answered");
	cr_assert_eq(connect_outcome("10.96.0.20", 80, 300), ETIMEDOUT, "not yet a cluster IP: dropped");

	/* Another cluster IP: a difference, not a replace. */
	g.n_cluster_ips = 2;
	cr_assert_eq(nftables_intercept_ops.sync(priv, &e, 1, &g), 0);
	cr_assert_eq(nft_intercept_replace_count(priv), 1, "a new cluster IP replaced everything");
	cr_assert_eq(connect_outcome("10.96.0.20", 80, 1000), ECONNREFUSED);
	cr_assert_eq(connect_outcome("10.96.0.10", 80, 1000), 0);

	/* No service range known: the CIDR's rule goes (a replace), the
	 * cluster IPs stay guarded. */
	g.n_service_cidrs = 0;
	cr_assert_eq(nftables_intercept_ops.sync(priv, &e, 1, &g), 0);
	cr_assert_eq(nft_intercept_replace_count(priv), 2);
	cr_assert_eq(connect_outcome("10.96.0.99", 80, 1000), 0, "still dropped without a range");
	cr_assert_eq(connect_outcome("10.96.0.30", 80, 300), ETIMEDOUT, "routed on, nobody answers");
	cr_assert_eq(connect_outcome("10.96.0.20", 81, 1000), ECONNREFUSED);

	/* No guards at all: nothing rejected. */
	cr_assert_eq(nftables_intercept_ops.sync(priv, &e, 1, NULL), 0);
	cr_assert_eq(connect_outcome("10.96.0.20", 81, 300), ETIMEDOUT);
	cr_assert_eq(nftables_intercept_ops.cleanup(), 0);
	close(relay);
	close(stray);
	icpt_free(priv);
}

/* ---- many frontends ---------------------------------------------------- */

/* A redirect in a form both the entries and a kernel dump convert to. */
struct row {
	uint8_t family, proto;
	uint16_t port, relay;
	uint8_t addr[16];
};

static int row_cmp(const void *x, const void *y)
{
	const struct row *a = x, *b = y;

	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	int c = memcmp(a->addr, b->addr, 16);
	if (c)
		return c;
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	return a->relay < b->relay ? -1 : a->relay > b->relay;
}

/* Frontend i of a synthetic cluster: every fifth one IPv6 (fd00:96::i+1),
 * the others IPv4 (10.96.0.0 + i + 1, inside the route the namespace sends
 * to lo); even ones TCP port 80, odd ones UDP port 53; relay ports
 * 15000..15007, moved by shift. */
static struct intercept_entry frontend(size_t i, unsigned shift)
{
	struct intercept_entry e = { .proto = i % 2 ? INET_PROTO_UDP : INET_PROTO_TCP };
	uint32_t v = (uint32_t)(i + 1);

	e.port = i % 2 ? 53 : 80;
	e.relay_port = (uint16_t)(15000 + (i + shift) % 8);
	if (i % 5 == 4) {
		e.addr.family = AF_INET6;
		e.addr.u.bytes[0] = 0xfd;
		e.addr.u.bytes[3] = 0x96;
		e.addr.u.bytes[12] = (uint8_t)(v >> 24);
		e.addr.u.bytes[13] = (uint8_t)(v >> 16);
		e.addr.u.bytes[14] = (uint8_t)(v >> 8);
		e.addr.u.bytes[15] = (uint8_t)v;
	} else {
		e.addr.family = AF_INET;
		v += 0x0a600000; /* 10.96.0.0 */
		e.addr.u.v4.s_addr = htonl(v);
	}
	return e;
}

/* Frontends 0..n-1 (room for n + 1), in a calloc'd array the caller frees. */
static struct intercept_entry *frontends(size_t n)
{
	struct intercept_entry *a = calloc(n + 1, sizeof(*a));

	cr_assert(a);
	for (size_t i = 0; i < n; i++)
		a[i] = frontend(i, 0);
	return a;
}

/* Whether frontend i is IPv4 TCP (what connect_through checks). */
static bool frontend_is_v4_tcp(size_t i)
{
	return i % 5 != 4 && i % 2 == 0;
}

/* The expected map contents of family for entries (SCTP skipped, as the
 * relay serves none), sorted. Returns the count. */
static size_t rows_of_entries(const struct intercept_entry *e, size_t n, int family, struct row *out)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (e[i].addr.family != family || e[i].proto == INET_PROTO_SCTP)
			continue;
		memset(&out[k], 0, sizeof(out[k]));
		out[k].family = (uint8_t)family;
		out[k].proto = e[i].proto == INET_PROTO_TCP ? IPPROTO_TCP : IPPROTO_UDP;
		out[k].port = e[i].port;
		out[k].relay = e[i].relay_port;
		memcpy(out[k].addr, e[i].addr.u.bytes, family == AF_INET6 ? 16 : 4);
		k++;
	}
	qsort(out, k, sizeof(*out), row_cmp);
	return k;
}

/* A row from a map element's key (addr . proto . port, register padded) and
 * data (relay port). */
static void row_of_elem(struct nftnl_set_elem *el, int family, struct row *r)
{
	uint32_t klen = 0, dlen = 0;
	const uint8_t *key = nftnl_set_elem_get(el, NFTNL_SET_ELEM_KEY, &klen);
	const uint8_t *data = nftnl_set_elem_get(el, NFTNL_SET_ELEM_DATA, &dlen);
	size_t alen = family == AF_INET6 ? 16 : 4;
	uint16_t port, relay;

	cr_assert_eq(klen, alen + 8);
	cr_assert_geq(dlen, 2);
	memset(r, 0, sizeof(*r));
	r->family = (uint8_t)family;
	memcpy(r->addr, key, alen);
	r->proto = key[alen];
	memcpy(&port, key + alen + 4, 2);
	memcpy(&relay, data, 2);
	r->port = ntohs(port);
	r->relay = ntohs(relay);
}

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
	/* Each reply appends its elements to the set. */
	cr_assert_eq(nftnl_set_elems_nlmsg_parse(nlh, data), 0);
	return MNL_CB_OK;
}

/* What the kernel holds in family's relay_ports map, sorted, into out
 * (room for max). Returns the count, or -1 when the map does not exist. */
static long dump_map(int family, struct row *out, size_t max)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	size_t buflen = 1 << 17;
	char *buf = malloc(buflen);
	struct nftnl_set *s = nftnl_set_alloc();
	uint32_t seq = (uint32_t)time(NULL), portid;
	struct nlmsghdr *nlh;
	struct nftnl_set_elems_iter *it;
	struct nftnl_set_elem *el;
	long n = 0;
	int ret;

	cr_assert(nl && buf && s);
	cr_assert_eq(mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID), 0);
	portid = mnl_socket_get_portid(nl);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, NFT_INTERCEPT_TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, "relay_ports");
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4,
				    NLM_F_DUMP | NLM_F_ACK, seq);
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	cr_assert_geq(mnl_socket_sendto(nl, nlh, nlh->nlmsg_len), 0);
	/* Bounded: the dump ends with NLMSG_DONE or an error. */
	for (int i = 0; i < 100000; i++) {
		ssize_t len = mnl_socket_recvfrom(nl, buf, buflen);
		cr_assert_gt(len, 0, "recv: %s", strerror(errno));
		ret = mnl_cb_run(buf, (size_t)len, seq, portid, dump_cb, s);
		if (ret <= 0)
			break;
	}
	if (ret < 0) {
		cr_assert_eq(errno, ENOENT, "dump: %s", strerror(errno));
		n = -1;
		goto out;
	}
	it = nftnl_set_elems_iter_create(s);
	cr_assert(it);
	while ((el = nftnl_set_elems_iter_next(it))) {
		cr_assert_lt((size_t)n, max, "more elements than expected");
		row_of_elem(el, family, &out[n++]);
	}
	nftnl_set_elems_iter_destroy(it);
	if (out && n > 1)
		qsort(out, (size_t)n, sizeof(*out), row_cmp);
out:
	nftnl_set_free(s);
	free(buf);
	mnl_socket_close(nl);
	return n;
}

/* dump_map until a read has no key twice: a dump that walks a hash map
 * while the kernel resizes it in the background (after a big insert) can
 * return one element twice and miss another. Bounded. */
static long dump_map_consistent(int family, struct row *out, size_t max)
{
	long n = -1;

	for (int tries = 0; tries < 20; tries++) {
		bool dup = false;

		n = dump_map(family, out, max);
		for (long i = 1; i < n && !dup; i++)
			dup = out[i - 1].family == out[i].family && memcmp(out[i - 1].addr, out[i].addr, 16) == 0 &&
			      out[i - 1].proto == out[i].proto && out[i - 1].port == out[i].port;
		if (!dup)
			return n;
		usleep(50000);
	}
	cr_assert_fail("every read of the %s map had a key twice", family == AF_INET6 ? "ip6" : "ip");
	return n;
}

/* The kernel's maps hold exactly entries, in both families. */
static void expect_kernel_holds(const struct intercept_entry *e, size_t n)
{
	struct row *want = calloc(n + 1, sizeof(*want)), *got = calloc(n + 1, sizeof(*got));

	cr_assert(want && got);
	for (int f = 0; f < 2; f++) {
		int family = f ? AF_INET6 : AF_INET;
		size_t nw = rows_of_entries(e, n, family, want);
		long ng = dump_map_consistent(family, got, n + 1);

		cr_assert_eq(ng, (long)nw, "%s map: %ld elements in the kernel, %zu expected",
			     f ? "ip6" : "ip", ng, nw);
		for (size_t i = 0; i < nw; i++)
			cr_assert_eq(row_cmp(&want[i], &got[i]), 0, "%s map: element %zu differs (addr ..%u.%u port %u "
				     "relay %u vs addr ..%u.%u port %u relay %u)", f ? "ip6" : "ip", i,
				     want[i].addr[f ? 14 : 2], want[i].addr[f ? 15 : 3], want[i].port, want[i].relay,
				     got[i].addr[f ? 14 : 2], got[i].addr[f ? 15 : 3], got[i].port, got[i].relay);
	}
	free(want);
	free(got);
}

/* Eight relay listeners on 0.0.0.0:15000..15007, non-blocking. */
static void relays_open(int fds[8])
{
	for (int i = 0; i < 8; i++) {
		fds[i] = listen_on((uint16_t)(15000 + i));
		cr_assert_eq(fcntl(fds[i], F_SETFL, O_NONBLOCK), 0);
	}
}

static void relays_close(int fds[8])
{
	for (int i = 0; i < 8; i++)
		close(fds[i]);
}

/* Connect to frontend e (IPv4 TCP) from this host: it must arrive on the
 * listener of its relay port, with SO_ORIGINAL_DST naming the frontend. */
static void connect_through(const struct intercept_entry *e, int relays[8])
{
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(e->port), .sin_addr = e->addr.u.v4 },
			   orig;
	socklen_t len = sizeof(orig);
	struct timeval tv = { 2, 0 };
	struct pollfd pfd = { .fd = relays[e->relay_port - 15000], .events = POLLIN };
	char ip[INET_ADDRSTRLEN];
	int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), afd;

	inet_ntop(AF_INET, &dst.sin_addr, ip, sizeof(ip));
	cr_assert_geq(cfd, 0);
	setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	cr_assert_eq(connect(cfd, (struct sockaddr *)&dst, sizeof(dst)), 0, "connect %s:%u: %s", ip, e->port,
		     strerror(errno));
	cr_assert_eq(poll(&pfd, 1, 2000), 1, "%s:%u: nothing on relay port %u", ip, e->port, e->relay_port);
	afd = accept(pfd.fd, NULL, NULL);
	cr_assert_geq(afd, 0);
	cr_assert_eq(getsockopt(afd, SOL_IP, SO_ORIGINAL_DST, &orig, &len), 0);
	cr_assert_eq(orig.sin_addr.s_addr, dst.sin_addr.s_addr, "%s arrived with another original address", ip);
	cr_assert_eq(ntohs(orig.sin_port), e->port);
	close(afd);
	close(cfd);
}

/* Connect to frontend e (IPv4 TCP): not redirected any more, so nothing
 * answers (bounded by a short timeout) and no relay sees it. */
static void connect_not_redirected(const struct intercept_entry *e, int relays[8])
{
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(e->port), .sin_addr = e->addr.u.v4 };
	struct timeval tv = { 0, 300000 };
	int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(cfd, 0);
	setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	cr_assert_neq(connect(cfd, (struct sockaddr *)&dst, sizeof(dst)), 0, "a removed frontend still connects");
	close(cfd);
	for (int i = 0; i < 8; i++)
		cr_assert_lt(accept(relays[i], NULL, NULL), 0, "relay %d got a removed frontend's connection", i);
}

/* The IPv4 TCP frontend at or below i. */
static size_t v4_tcp_at_or_below(size_t i)
{
	while (!frontend_is_v4_tcp(i))
		i--;
	return i;
}

static double elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Program n frontends (0..n-1) in one sync, check the kernel holds all of
 * them and that first, middle and last connect through; then sync a
 * shifted set (the first fifth gone, as many new ones, a tenth with new
 * relay ports) and check that it converges. */
static void many_frontends(size_t n)
{
	size_t lo = n / 5, hi = n + n / 5, moved_lo = n / 2, moved_hi = n / 2 + n / 10, moved;
	struct intercept_entry *a, *b;
	struct timespec t0;
	unsigned long replaces;
	int relays[8];
	void *priv;

	enter_private_netns();
	priv = icpt_new();
	a = frontends(n);
	b = calloc(n, sizeof(*b));
	cr_assert(b);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(nftables_intercept_ops.sync(priv, a, n, NULL), 0);
	cr_assert_eq(nft_intercept_replace_count(priv), 1, "the first sync replaces everything");
	cr_log_info("%zu frontends programmed in %.1f ms", n, elapsed_ms(&t0));
	expect_kernel_holds(a, n);
	relays_open(relays);
	connect_through(&a[0], relays);
	connect_through(&a[v4_tcp_at_or_below(n / 2)], relays);
	connect_through(&a[v4_tcp_at_or_below(n - 1)], relays);

	for (size_t i = lo; i < hi; i++)
		b[i - lo] = frontend(i, i >= moved_lo && i < moved_hi ? 1 : 0);
	replaces = nft_intercept_replace_count(priv);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(nftables_intercept_ops.sync(priv, b, n, NULL), 0);
	cr_assert_eq(nft_intercept_replace_count(priv), replaces, "the second sync replaced everything "
		     "instead of sending the difference");
	cr_log_info("%zu frontends updated (-%zu +%zu, %zu moved) in %.1f ms", n, lo, hi - n, moved_hi - moved_lo,
		    elapsed_ms(&t0));
	expect_kernel_holds(b, n);
	connect_not_redirected(&a[0], relays);
	/* Moved: arrives on its new relay port. */
	moved = v4_tcp_at_or_below(moved_lo + 10);
	cr_assert_neq(b[moved - lo].relay_port, a[moved].relay_port);
	connect_through(&b[moved - lo], relays);
	/* Added, and kept. */
	connect_through(&b[v4_tcp_at_or_below(hi - 1) - lo], relays);
	connect_through(&b[v4_tcp_at_or_below(lo + n / 10) - lo], relays);
	relays_close(relays);

	cr_assert_eq(nftables_intercept_ops.cleanup(), 0);
	cr_assert_eq(dump_map(AF_INET, NULL, 0), -1, "cleanup left the ip map");
	cr_assert_eq(dump_map(AF_INET6, NULL, 0), -1, "cleanup left the ip6 map");
	icpt_free(priv);
	free(a);
	free(b);
}

Test(nft_intercept, five_thousand_frontends_in_one_sync, .timeout = 60)
{
	many_frontends(5000);
}

Test(nft_intercept, twenty_thousand_frontends_in_one_sync, .timeout = 60)
{
	many_frontends(20000);
}

/* One netlink transaction of one message built by fn, from the test. */
static void kernel_cmd(uint16_t type, int family, void (*fn)(struct nlmsghdr *))
{
	struct mnl_socket *nl = NULL;
	struct nft_batch *b = nft_batch_new();
	struct nlmsghdr *nlh;

	cr_assert_eq(nft_socket_open(&nl), 0);
	nlh = nft_batch_msg_begin(b, type, family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4, 0, "test");
	cr_assert(nlh);
	fn(nlh);
	nft_batch_msg_end(b, nlh);
	cr_assert_eq(nft_batch_commit(nl, b, 0, NULL), 0);
	nft_batch_free(b);
	mnl_socket_close(nl);
}

static void table_attrs(struct nlmsghdr *nlh)
{
	mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, NFT_INTERCEPT_TABLE);
}

static void map_flush_attrs(struct nlmsghdr *nlh)
{
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, NFT_INTERCEPT_TABLE);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, "relay_ports");
}

/* After the first sync only differences are sent: what someone else removed
 * must not stay missing. */
Test(nft_intercept, repairs_tables_deleted_or_flushed_behind_its_back, .timeout = 60)
{
	size_t n = 3000;
	struct intercept_entry *a;
	int relays[8];
	void *priv;

	enter_private_netns();
	priv = icpt_new();
	a = frontends(n);
	cr_assert_eq(nftables_intercept_ops.sync(priv, a, n, NULL), 0);
	cr_assert_eq(nft_intercept_replace_count(priv), 1);

	/* `nft delete table ip ferry_intercept` (or a flush ruleset): the same
	 * entries again put it back. */
	kernel_cmd(NFT_MSG_DELTABLE, AF_INET, table_attrs);
	cr_assert_eq(dump_map(AF_INET, NULL, 0), -1);
	cr_assert_eq(nftables_intercept_ops.sync(priv, a, n, NULL), 0);
	cr_assert_eq(nft_intercept_replace_count(priv), 2, "the update was not refused");
	expect_kernel_holds(a, n);
	relays_open(relays);
	connect_through(&a[v4_tcp_at_or_below(n / 3)], relays);

	/* `nft flush map ip ferry_intercept relay_ports`, then an update that
	 * deletes some of the vanished elements: converges all the same. */
	kernel_cmd(NFT_MSG_DELSETELEM, AF_INET, map_flush_attrs);
	cr_assert_eq(nftables_intercept_ops.sync(priv, a + 100, n - 100, NULL), 0);
	cr_assert_eq(nft_intercept_replace_count(priv), 3, "the update was not refused");
	expect_kernel_holds(a + 100, n - 100);
	connect_through(&a[v4_tcp_at_or_below(n - 1)], relays);

	/* After cleanup (which takes no priv) the next sync finds the tables
	 * gone and starts from scratch. */
	cr_assert_eq(nftables_intercept_ops.cleanup(), 0);
	cr_assert_eq(nftables_intercept_ops.sync(priv, a, n, NULL), 0);
	cr_assert_eq(nft_intercept_replace_count(priv), 4);
	expect_kernel_holds(a, n);
	connect_through(&a[0], relays);
	relays_close(relays);
	cr_assert_eq(nftables_intercept_ops.cleanup(), 0);
	icpt_free(priv);
	free(a);
}

/* Two providers share no state: each sends its own first full replace and
 * counts only its own syncs, and finishing one leaves the other working
 * (over its own socket, with its own record of what it committed). */
Test(nft_intercept, providers_share_no_state, .timeout = 30)
{
	size_t n = 100;
	struct intercept_entry *a;
	void *p1, *p2;

	enter_private_netns();
	p1 = icpt_new();
	p2 = icpt_new();
	a = frontends(n);
	cr_assert_eq(nftables_intercept_ops.sync(p1, a, n, NULL), 0);
	cr_assert_eq(nft_intercept_replace_count(p1), 1);
	cr_assert_eq(nft_intercept_replace_count(p2), 0);
	cr_assert_eq(nftables_intercept_ops.sync(p2, a, n, NULL), 0);
	cr_assert_eq(nft_intercept_replace_count(p2), 1, "p2 relied on what p1 committed");
	cr_assert_eq(nft_intercept_replace_count(p1), 1);
	icpt_free(p1);
	cr_assert_eq(nftables_intercept_ops.sync(p2, a + 10, n - 10, NULL), 0);
	cr_assert_eq(nft_intercept_replace_count(p2), 1, "p2's update was refused");
	expect_kernel_holds(a + 10, n - 10);
	cr_assert_eq(nftables_intercept_ops.cleanup(), 0);
	icpt_free(p2);
	free(a);
}

/* ---- messages, no root ------------------------------------------------- */

struct elems_seen {
	size_t msgs, elems[2];
};

/* Count the elements of one NEWSETELEM message with libmnl alone
 * (libnftnl numbers list items 1..n when building but accepts only type 1
 * when parsing, so it cannot read its own multi-element messages back). */
static void count_elems(const struct nlmsghdr *nlh, struct elems_seen *seen)
{
	const struct nfgenmsg *g = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr, *item, *field;
	size_t k = 0, lists = 0;

	mnl_attr_for_each(attr, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(attr) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		lists++;
		/* The list's 16-bit length must hold all of it: an overflowed
		 * length would end the list early and leave the message
		 * unaccounted for. */
		cr_assert_eq((const char *)attr + mnl_attr_get_len(attr), (const char *)nlh + nlh->nlmsg_len,
			     "the element list does not reach the end of its message");
		mnl_attr_for_each_nested(item, attr) {
			bool key = false, data = false;

			mnl_attr_for_each_nested(field, item) {
				key |= mnl_attr_get_type(field) == NFTA_SET_ELEM_KEY;
				data |= mnl_attr_get_type(field) == NFTA_SET_ELEM_DATA;
			}
			cr_assert(key && data, "element %zu without key or data", k);
			k++;
		}
	}
	cr_assert_eq(lists, 1);
	seen->msgs++;
	seen->elems[g->nfgen_family == NFPROTO_IPV6] += k;
}

Test(nft_intercept, replace_splits_element_lists)
{
	size_t n = 40000, len;
	struct intercept_entry *e = frontends(n);
	struct nft_batch *b = nft_batch_new();
	struct elems_seen seen = { 0 };
	const void *data;
	int left;

	cr_assert(b);
	/* SCTP is not intercepted (the relay serves none). */
	e[n] = frontend(0, 0);
	e[n].proto = INET_PROTO_SCTP;
	e[n].port = 9;
	cr_assert_eq(nft_intercept_replace_msgs(b, e, n + 1, NULL), 0);
	data = nft_batch_data(b, &len);
	left = (int)len;
	for (const struct nlmsghdr *nlh = data; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left))
		if (NFNL_MSG_TYPE(nlh->nlmsg_type) == NFT_MSG_NEWSETELEM)
			count_elems(nlh, &seen);
	cr_assert_eq(seen.elems[0], n - n / 5, "IPv4 elements: %zu", seen.elems[0]);
	cr_assert_eq(seen.elems[1], n / 5, "IPv6 elements: %zu", seen.elems[1]);
	/* 40000 elements of up to 48 bytes cannot share a 64 KiB list. */
	cr_assert_geq(seen.msgs, 30);
	nft_batch_free(b);
	free(e);
}

Test(nft_intercept, refuses_past_the_sanity_bound_naming_it)
{
	size_t n = (size_t)NFT_INTERCEPT_MAX + 1;
	struct intercept_entry *e = calloc(n, sizeof(*e));
	struct nft_batch *b = nft_batch_new();
	void *priv = icpt_new();

	cr_assert(e && b);
	cr_assert_eq(nft_intercept_replace_msgs(b, e, n, NULL), -E2BIG);
	cr_assert_eq(nft_batch_count(b), 0);
	/* Refused before anything is sent: needs no root. */
	cr_assert_eq(nftables_intercept_ops.sync(priv, e, n, NULL), -E2BIG);
	cr_assert_eq(nft_intercept_replace_count(priv), 0);
	icpt_free(priv);
	nft_batch_free(b);
	free(e);
}
