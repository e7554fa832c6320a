/* The IPVS backend's constant rules against the real kernel: this
 * machine's kernel has nf_tables, nft_compat, xt_set and ipset (not IPVS),
 * so the rules' set matches are checked with real connections, inside a
 * network namespace each test makes (unshare in a child process). */
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
	free(buf);
}

static int in_netns(void)
{
	if (geteuid() != 0 || unshare(CLONE_NEWNET) == -1)
		return -1;
	/* lo up, so that 127.0.0.0/8 works. */
	return system("ip link set lo up") == 0 ? 0 : -1;
}

static int listen_on(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd == -1 || bind(fd, (struct sockaddr *)&a, sizeof(a)) == -1 || listen(fd, 8) == -1)
		return -1;
	return fd;
}

/* 0 when a connection to 127.0.0.2:port is accepted, or -errno. */
static int try_connect(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { .tv_sec = 2 };
	int fd = socket(AF_INET, SOCK_STREAM, 0), r = 0;

	a.sin_addr.s_addr = htonl(0x7f000002);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == -1)
		r = -errno;
	close(fd);
	return r;
}

/* Child body: exit 0 on success, 77 to skip, another code naming the
 * failing step. */
static int reject_case(void)
{
	struct ipvs_ipset *s = NULL;
	struct mnl_socket *nl = NULL;
	struct nft_batch *b = nft_batch_new();
	struct nft_batch_error be = { 0 };
	struct ipvs_rules_cfg cfg = { .masq_mark = 0x4000 };
	struct ipvs_ipset_entry e = { .proto = IPPROTO_TCP, .port = 8080 };
	int lfd, r;

	if (in_netns() < 0)
		return 77;
	if (ipvs_ipset_open(&s) < 0 || nft_socket_open(&nl) < 0 || !b)
		return 77;
	for (int f = 0; f < 2; f++)
		for (int i = 0; i < IPVS_SET_COUNT; i++) {
			int family = f ? AF_INET6 : AF_INET;
			struct ipvs_ipset_spec spec = {
				.type = i == IPVS_SET_SOURCES ? IPVS_IPSET_HASH_IP_PORT_NET :
					i == IPVS_SET_LOOPBACK ? IPVS_IPSET_HASH_IP_PORT_IP : IPVS_IPSET_HASH_IP_PORT,
				.family = (sa_family_t)family,
			};

			snprintf(spec.name, sizeof(spec.name), "%s", ipvs_set_name((enum ipvs_set_id)i, family));
			if (ipvs_ipset_create(s, &spec) < 0)
				return 10;
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
	if ((r = try_connect(8080)) != -EINPROGRESS && r != -ETIMEDOUT && r != -EAGAIN) {
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
