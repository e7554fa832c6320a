/* The IPVS backend's constant rules against the real kernel: this
 * machine's kernel has nf_tables, nft_compat, xt_set and ipset (not IPVS),
 * so the rules' set matches are checked with real connections, inside a
 * network namespace each test makes (unshare in a child process). The
 * sets' members are added by hand here; which members a plan gives is
 * tests/unit/test_ipvs_state.c's business. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libmnl/libmnl.h>

#include "ipset.h"
#include "ipvs_items.h"
#include "ipvs_rules.h"
#include "nft_batch.h"

/* Printing needs no kernel: the text names every set it matches. */
Test(ipvs_rules, text)
{
	struct inet_prefix cidr;
	struct ipvs_rules_cfg cfg = { .masq_mark = 0x4000 };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert_eq(inet_prefix_parse("10.244.0.0/16", &cidr), 0);
	cfg.local.cluster_cidrs = &cidr;
	cfg.local.n_cluster_cidrs = 1;
	ipvs_rules_print(f, AF_INET, &cfg);
	ipvs_rules_print(f, AF_INET6, &cfg);
	fclose(f);
	cr_expect(strstr(buf, "xt match set FERRY-EMPTY-REJECT dst,dst reject"), "%s", buf);
	cr_expect(strstr(buf, "xt match set FERRY-LB-FIREWALL dst,dst xt match set ! FERRY-LB-SOURCES dst,dst,src drop"),
		  "%s", buf);
	cr_expect(strstr(buf, "xt match set FERRY-CLUSTER-IP dst,dst ip saddr != 10.244.0.0/16 meta mark set"), "%s",
		  buf);
	/* No IPv6 cluster CIDR: nothing is masqueraded by source there. */
	cr_expect(!strstr(buf, "FERRY6-CLUSTER-IP"), "%s", buf);
	cr_expect(strstr(buf, "xt match set FERRY6-LOOPBACK dst,dst,src masquerade"), "%s", buf);
	/* The service-range guards (kube-proxy's cluster-ips-check), in both
	 * families: an undefined port of a cluster IP refused, an address of
	 * the range that is no cluster IP (nor a virtual server) dropped. */
	cr_expect(strstr(buf, "meta l4proto tcp ct state new xt match set FERRY-CLUSTER-ADDRS dst "
			      "xt match set ! FERRY-SERVICES dst,dst reject with tcp reset"),
		  "%s", buf);
	cr_expect(strstr(buf, "\t\tct state new xt match set FERRY6-CLUSTER-ADDRS dst xt match set ! FERRY6-SERVICES "
			      "dst,dst reject\n"),
		  "%s", buf);
	cr_expect(strstr(buf, "ct state new xt match set FERRY-SERVICE-CIDRS dst xt match set ! FERRY-CLUSTER-ADDRS dst "
			      "xt match set ! FERRY-SERVICES dst,dst drop"),
		  "%s", buf);
	cr_expect(strstr(buf, "ct state new xt match set FERRY6-SERVICE-CIDRS dst xt match set ! FERRY6-CLUSTER-ADDRS "
			      "dst xt match set ! FERRY6-SERVICES dst,dst drop"),
		  "%s", buf);
	free(buf);
}

static int in_netns(void)
{
	if (geteuid() != 0 || unshare(CLONE_NEWNET) == -1)
		return -1;
	/* lo up, so that 127.0.0.0/8 works. */
	return system("ip link set lo up") == 0 ? 0 : -1;
}

/* A socket of type (SOCK_STREAM listening, or SOCK_DGRAM) bound to the
 * wildcard address of family on port, or -1. */
static int listen_any(int family, int type, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	int fd = socket(family, type, 0), one = 1;

	if (fd == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
	} else {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
	}
	if (bind(fd, (struct sockaddr *)&ss, family == AF_INET6 ? sizeof(*a6) : sizeof(*a4)) == -1 ||
	    (type == SOCK_STREAM && listen(fd, 8) == -1)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int listen_on(uint16_t port)
{
	return listen_any(AF_INET, SOCK_STREAM, port);
}

/* The socket address of ip (v4 or v6 text) and port. */
static socklen_t sockaddr_of(const char *ip, uint16_t port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	struct inet_addr a;

	memset(ss, 0, sizeof(*ss));
	if (inet_addr_parse(ip, &a) < 0)
		return 0;
	if (a.family == AF_INET6) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		memcpy(&a6->sin6_addr, a.u.bytes, 16);
		return sizeof(*a6);
	}
	a4->sin_family = AF_INET;
	a4->sin_port = htons(port);
	memcpy(&a4->sin_addr, a.u.bytes, 4);
	return sizeof(*a4);
}

/* 0 when a TCP connection to ip:port is accepted, or -errno (ETIMEDOUT,
 * EINPROGRESS or EAGAIN: no answer within timeout_s). */
static int try_connect_to(const char *ip, uint16_t port, int timeout_s)
{
	struct sockaddr_storage ss;
	socklen_t len = sockaddr_of(ip, port, &ss);
	struct timeval tv = { .tv_sec = timeout_s };
	int fd = socket(ss.ss_family, SOCK_STREAM, 0), r = 0;

	if (fd == -1 || len == 0)
		return -EINVAL;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, len) == -1)
		r = -errno;
	close(fd);
	return r;
}

/* 0 when a connection to 127.0.0.2:port is accepted, or -errno. */
static int try_connect(uint16_t port)
{
	return try_connect_to("127.0.0.2", port, 2);
}

static bool silent(int r)
{
	return r == -EINPROGRESS || r == -ETIMEDOUT || r == -EAGAIN;
}

/* Child set-up: every set of both families, and the rules over them,
 * committed. 0, or the failing step's code. */
static int sets_and_rules(struct ipvs_ipset *s, struct mnl_socket *nl, struct nft_batch *b)
{
	struct ipvs_rules_cfg cfg = { .masq_mark = 0x4000 };
	struct nft_batch_error be = { 0 };
	int r;

	for (int f = 0; f < 2; f++)
		for (int i = 0; i < IPVS_SET_COUNT; i++) {
			int family = f ? AF_INET6 : AF_INET;
			struct ipvs_ipset_spec spec = { .family = (sa_family_t)family };

			if (ipvs_ipset_type_parse(ipvs_set_type((enum ipvs_set_id)i), &spec.type) < 0)
				return 9;
			snprintf(spec.name, sizeof(spec.name), "%s", ipvs_set_name((enum ipvs_set_id)i, family));
			if (ipvs_ipset_create(s, &spec) < 0) {
				fprintf(stderr, "ipset %s: %s\n", spec.name, ipvs_ipset_error(s));
				return 10;
			}
		}
	for (int f = 0; f < 2; f++) {
		int family = f ? AF_INET6 : AF_INET;

		for (int i = 0; i < IPVS_SET_COUNT; i++)
			if (ipvs_rules_set_index(ipvs_set_name((enum ipvs_set_id)i, family), &cfg.set_index[i]) < 0)
				return 11;
		if (ipvs_rules_msgs(b, family, &cfg) < 0)
			return 12;
	}
	r = nft_batch_commit(nl, b, 0, &be);
	if (r < 0) {
		fprintf(stderr, "rules refused: %s: %s\n", be.desc, strerror(-r));
		return 13;
	}
	return 0;
}

/* Child body: exit 0 on success, 77 to skip, another code naming the
 * failing step. */
static int reject_case(void)
{
	struct ipvs_ipset *s = NULL;
	struct mnl_socket *nl = NULL;
	struct nft_batch *b = nft_batch_new();
	struct ipvs_ipset_entry e = { .proto = IPPROTO_TCP, .port = 8080 };
	int lfd, r;

	if (in_netns() < 0)
		return 77;
	if (ipvs_ipset_open(&s) < 0 || nft_socket_open(&nl) < 0 || !b)
		return 77;
	if ((r = sets_and_rules(s, nl, b)) != 0)
		return r;
	lfd = listen_on(8080);
	if (lfd < 0)
		return 14;
	/* Not in the set: the listener answers. */
	if (try_connect(8080) != 0)
		return 15;
	/* In FERRY-EMPTY-REJECT: refused at once by the rule. */
	inet_addr_parse("127.0.0.2", &e.addr);
	if (ipvs_ipset_add(s, "FERRY-EMPTY-REJECT", &e) < 0)
		return 16;
	if ((r = try_connect(8080)) != -ECONNREFUSED) {
		fprintf(stderr, "connect with the reject member: %s\n", strerror(-r));
		return 17;
	}
	/* In FERRY-EMPTY-DROP instead: no answer (times out). */
	if (ipvs_ipset_del(s, "FERRY-EMPTY-REJECT", &e) < 0 || ipvs_ipset_add(s, "FERRY-EMPTY-DROP", &e) < 0)
		return 18;
	if (!silent(r = try_connect(8080))) {
		fprintf(stderr, "connect with the drop member: %s\n", strerror(-r));
		return 19;
	}
	/* A firewalled frontend admits only its sources. */
	if (ipvs_ipset_del(s, "FERRY-EMPTY-DROP", &e) < 0 || ipvs_ipset_add(s, "FERRY-LB-FIREWALL", &e) < 0)
		return 20;
	if ((r = try_connect(8080)) == 0)
		return 21;
	{
		struct ipvs_ipset_entry src = e;

		inet_addr_parse("127.0.0.0", &src.addr2);
		src.cidr2 = 8;
		if (ipvs_ipset_add(s, "FERRY-LB-SOURCES", &src) < 0)
			return 22;
	}
	if ((r = try_connect(8080)) != 0) {
		fprintf(stderr, "connect from an allowed source: %s\n", strerror(-r));
		return 23;
	}
	/* FERRY-MASQ sets the mark bit, and keeps it on a packet that has it
	 * already: a chain before ours (priority -150) marks, one after ours counts marked
	 * packets (an xor would have cleared the bit). */
	if (ipvs_ipset_del(s, "FERRY-LB-FIREWALL", &e) < 0 || ipvs_ipset_add(s, "FERRY-MASQ", &e) < 0)
		return 24;
	if (system("nft -f - <<'EOF'\n"
		   "table ip probe {\n"
		   " chain pre {\n  type nat hook output priority -150;\n"
		   "  ip daddr 127.0.0.2 tcp dport 8080 meta mark set 0x4000\n }\n"
		   " chain post {\n  type nat hook output priority -50;\n"
		   "  ip daddr 127.0.0.2 tcp dport 8080 meta mark & 0x4000 == 0x4000 counter\n }\n"
		   "}\n"
		   "EOF") != 0)
		return 77;
	/* The connection itself does not get through: postrouting's
	 * masquerade finds no address to use on lo and drops it. The SYN
	 * has been counted by then. */
	(void)try_connect(8080);
	{
		FILE *f = popen("nft list chain ip probe post", "r");
		char line[256];
		long packets = -1;

		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, "counter packets "))
				packets = strtol(strstr(line, "counter packets ") + 16, NULL, 10);
		if (f)
			pclose(f);
		/* Each SYN the masquerade dropped is new again, and counted. */
		if (packets < 1) {
			fprintf(stderr, "marked packets after the masquerade mark: %ld, want 1 or more\n", packets);
			return 26;
		}
	}
	close(lfd);
	nft_batch_free(b);
	mnl_socket_close(nl);
	ipvs_ipset_close(s);
	return 0;
}

Test(ipvs_rules, set_matches_refuse_drop_filter_and_mark_real_connections, .timeout = 60)
{
	pid_t pid = fork();
	int status;

	cr_assert_neq(pid, -1);
	if (pid == 0)
		_exit(reject_case());
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		cr_skip_test("needs root and network namespaces (unshare CLONE_NEWNET) with ipset");
	cr_assert_eq(WEXITSTATUS(status), 0, "step %d failed (see stderr)", WEXITSTATUS(status));
}

/* 0 when a datagram to ip:port is sent without an error coming back
 * within 1 s, -ECONNREFUSED when an ICMP port unreachable answers it. */
static int udp_probe(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = sockaddr_of(ip, port, &ss);
	struct timeval tv = { .tv_sec = 1 };
	int fd = socket(ss.ss_family, SOCK_DGRAM, 0), r = 0;
	char c;

	if (fd == -1 || len == 0)
		return -EINVAL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* A datagram a local output rule drops fails its send with EPERM;
	 * the ICMP error of a reject arrives all the same. */
	if (connect(fd, (struct sockaddr *)&ss, len) == -1 || (send(fd, "x", 1, 0) != 1 && errno != EPERM))
		r = -errno;
	else if (recv(fd, &c, 1, 0) == -1 && errno != EAGAIN)
		r = -errno;
	close(fd);
	return r;
}

static int add_member(struct ipvs_ipset *s, enum ipvs_set_id set, const char *ip, uint8_t proto, uint16_t port,
		      uint8_t cidr)
{
	struct ipvs_ipset_entry e = { .proto = proto, .port = port, .cidr = cidr };

	if (inet_addr_parse(ip, &e.addr) < 0)
		return -EINVAL;
	return ipvs_ipset_add(s, ipvs_set_name(set, e.addr.family), &e);
}

/* Child body of the service-range guards (kube-proxy's nftables chain
 * cluster-ips-check): exit 0, 77 to skip, or the failing step. Local
 * processes listen on the wildcard address; 127.0.0.2 and fd00::2 are
 * cluster IPs with one service port, 8080/TCP; the ranges are
 * 127.0.0.0/24 and fd00::/112. This host has no IPVS: a local listener
 * stands in for a virtual server ("reaches its path" = the rules let the
 * connection through to where IPVS would take it). */
static int guard_case(void)
{
	struct ipvs_ipset *s = NULL;
	struct mnl_socket *nl = NULL;
	struct nft_batch *b = nft_batch_new();
	int l8080, l9090, l6, u9091, r;
	char c;

	if (in_netns() < 0)
		return 77;
	if (system("ip -6 addr add fd00::2/128 dev lo nodad && ip -6 addr add fd00::3/128 dev lo nodad") != 0)
		return 77;
	if (ipvs_ipset_open(&s) < 0 || nft_socket_open(&nl) < 0 || !b)
		return 77;
	if ((r = sets_and_rules(s, nl, b)) != 0)
		return r;
	l8080 = listen_any(AF_INET, SOCK_STREAM, 8080);
	l9090 = listen_any(AF_INET, SOCK_STREAM, 9090);
	l6 = listen_any(AF_INET6, SOCK_STREAM, 9090);
	u9091 = listen_any(AF_INET, SOCK_DGRAM, 9091);
	if (l8080 < 0 || l9090 < 0 || l6 < 0 || u9091 < 0)
		return 30;
	/* Control: with empty sets the wildcard listeners answer on every
	 * address, the cluster IP's undefined port and the range's free
	 * addresses included (what the previous rules let through). */
	if (try_connect_to("127.0.0.2", 9090, 2) != 0 || try_connect_to("127.0.0.3", 9090, 2) != 0 ||
	    try_connect_to("fd00::2", 9090, 2) != 0)
		return 31;
	if (add_member(s, IPVS_SET_CLUSTER_ADDRS, "127.0.0.2", 0, 0, 0) < 0 ||
	    add_member(s, IPVS_SET_SERVICES, "127.0.0.2", IPPROTO_TCP, 8080, 0) < 0 ||
	    add_member(s, IPVS_SET_SERVICE_CIDRS, "127.0.0.0", 0, 0, 24) < 0 ||
	    add_member(s, IPVS_SET_CLUSTER_ADDRS, "fd00::2", 0, 0, 0) < 0 ||
	    add_member(s, IPVS_SET_SERVICES, "fd00::2", IPPROTO_TCP, 8080, 0) < 0 ||
	    add_member(s, IPVS_SET_SERVICE_CIDRS, "fd00::", 0, 0, 112) < 0) {
		fprintf(stderr, "guard members: %s\n", ipvs_ipset_error(s));
		return 32;
	}
	/* kube-proxy (cluster-ips-check: "Reject traffic to invalid ports of
	 * ClusterIPs"): a cluster IP on a port no service defines is refused
	 * at once, although a local process listens on that port on the
	 * wildcard address and would otherwise answer for the VIP. */
	if ((r = try_connect_to("127.0.0.2", 9090, 2)) != -ECONNREFUSED) {
		fprintf(stderr, "TCP to an undefined port of a cluster IP: %s, want refused\n", strerror(-r));
		return 33;
	}
	if ((r = try_connect_to("fd00::2", 9090, 2)) != -ECONNREFUSED) {
		fprintf(stderr, "TCP to an undefined port of an IPv6 cluster IP: %s, want refused\n", strerror(-r));
		return 34;
	}
	/* The same for UDP: ICMP port unreachable, the listener gets nothing. */
	if ((r = udp_probe("127.0.0.2", 9091)) != -ECONNREFUSED) {
		fprintf(stderr, "UDP to an undefined port of a cluster IP: %s, want refused\n", strerror(-r));
		return 35;
	}
	if (recv(u9091, &c, 1, MSG_DONTWAIT) != -1)
		return 36;
	/* kube-proxy: a defined service port of the cluster IP reaches its
	 * path (here the listener, in the VM IPVS). */
	if ((r = try_connect_to("127.0.0.2", 8080, 2)) != 0) {
		fprintf(stderr, "TCP to the cluster IP's service port: %s, want answered\n", strerror(-r));
		return 37;
	}
	/* kube-proxy (cluster-ips-check: "Drop traffic to unallocated
	 * ClusterIPs"): an address of the service range that is no cluster
	 * IP gets no answer at all, though the listener would answer it. */
	if (!silent(r = try_connect_to("127.0.0.3", 9090, 1))) {
		fprintf(stderr, "TCP to an unallocated address of the range: %s, want no answer\n", strerror(-r));
		return 38;
	}
	if (!silent(r = try_connect_to("fd00::3", 9090, 1))) {
		fprintf(stderr, "TCP to an unallocated IPv6 address of the range: %s, want no answer\n", strerror(-r));
		return 39;
	}
	/* Outside the range nothing changes; a virtual server ferry made
	 * inside it (an external IP there) is not dropped, as kube-proxy's
	 * check, after DNAT, never sees a serviced connection. */
	if (try_connect_to("127.0.1.3", 9090, 2) != 0)
		return 40;
	if (add_member(s, IPVS_SET_SERVICES, "127.0.0.3", IPPROTO_TCP, 9090, 0) < 0)
		return 41;
	if ((r = try_connect_to("127.0.0.3", 9090, 2)) != 0) {
		fprintf(stderr, "TCP to a virtual server inside the range: %s, want answered\n", strerror(-r));
		return 42;
	}
	close(l8080);
	close(l9090);
	close(l6);
	close(u9091);
	nft_batch_free(b);
	mnl_socket_close(nl);
	ipvs_ipset_close(s);
	return 0;
}

Test(ipvs_rules, service_range_guards_refuse_undefined_ports_and_drop_unallocated_addresses, .timeout = 60)
{
	pid_t pid = fork();
	int status;

	cr_assert_neq(pid, -1);
	if (pid == 0)
		_exit(guard_case());
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		cr_skip_test("needs root and network namespaces (unshare CLONE_NEWNET) with ipset");
	cr_assert_eq(WEXITSTATUS(status), 0, "step %d failed (see stderr)", WEXITSTATUS(status));
}
