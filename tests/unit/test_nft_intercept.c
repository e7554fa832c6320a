/* Interception for the userspace relay (nft_intercept.c), against the real
 * kernel inside a private network namespace of the test process (needs
 * root; skipped otherwise): a connection to a cluster IP from this host is
 * redirected to the relay port, and SO_ORIGINAL_DST still names the
 * frontend, which is how a relay tells frontends apart. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

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

	enter_private_netns();
	cr_assert_eq(inet_addr_parse("10.96.0.10", &e.addr), 0);
	cr_assert_eq(nftables_intercept_ops.sync(&e, 1), 0);
	/* Idempotent: the same set again is fine. */
	cr_assert_eq(nftables_intercept_ops.sync(&e, 1), 0);
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
	cr_assert_eq(nftables_intercept_ops.sync(NULL, 0), 0);
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
}
