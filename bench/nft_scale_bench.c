/* nft_scale_bench: helpers of bench/nft_scale.sh (the nftables scaling
 * benchmark). Subcommands:
 *
 *   nft_scale_bench connect ADDR:PORT N     N sequential TCP connects; prints
 *                                           "p50_us p99_us failures"
 *   nft_scale_bench interleave [-r ROUNDS] [-b BLOCK] [-t SECONDS]
 *                   FLOOR=ADDR:PORT NAME=ADDR:PORT...
 *                                           several paths measured under the
 *                                           same machine conditions: ROUNDS
 *                                           rounds (30), each BLOCK (100)
 *                                           connects to every target in turn,
 *                                           the order rotated per round; prints
 *                                           per target, in argument order,
 *                                           "NAME p50_us p99_us failures ratio"
 *                                           where ratio is the median over
 *                                           rounds of p50(NAME) / p50(FLOOR) in
 *                                           that round (drifting load cancels).
 *                                           Stops at SECONDS (600; the round
 *                                           then under way is cut short and
 *                                           is the last); a target whose whole
 *                                           block failed is skipped from then
 *                                           on (a failure costs 2 s)
 *   nft_scale_bench serve ADDR PORT COUNT   accept on COUNT ports, close at once
 *   nft_scale_bench gen-ferry DIR N EPS [NODES]  N services x EPS endpoints
 *                                           as JSON manifests (the target
 *                                           service last); with NODES > 0 the
 *                                           endpoints carry nodeName
 *                                           node-0..node-NODES-1 round-robin
 *                                           (the target's all on node-0)
 *   nft_scale_bench gen-iptables FILE N     kube-proxy iptables-mode NAT rules
 *                                           (iptables-restore input), target last
 *   nft_scale_bench gen-kube-nft FILE N EPS kube-proxy nftables-mode shape
 *                                           (nft -f input), target last
 *   nft_scale_bench gen-kube-nft-change FILE N EPS   the same shape's update
 *                                           of one endpoint of the target
 *   nft_scale_bench gen-ipvsadm FILE N EPS  the same N services x EPS real
 *                                           servers as ipvsadm-restore input
 *                                           (rr, masquerading), in ascending
 *                                           cluster-IP order (ferry's order)
 *   nft_scale_bench gen-addrs FILE N DEV    `ip -batch` input binding the N
 *                                           cluster IPs (/32) to DEV
 *   nft_scale_bench dump FAMILY TABLE SET...  the floor of reading sets
 *                                           back: a bare netlink dump of each
 *                                           set (ip or ip6 TABLE), counting
 *                                           elements and decoding nothing;
 *                                           prints "SET elements ms" per set
 *                                           and "total elements ms"
 *
 * Service i (0-based) has cluster IP 10.96.0.0/12 + i + 1, port 80; the
 * target is service N-1, whose endpoints are 10.0.2.2:9000+j (real, served
 * by `serve`); the others point at 10.1.x.y:9000 (never contacted).
 * Environment, for the generators (bench/ipvs_scale_guest.sh runs several
 * rulesets side by side, each behind its own node): NSB_SVC_BASE replaces
 * 10.96.0.0 as the base of the cluster IPs, NSB_SVC_STRIDE (1) is the step
 * between them, NSB_REVERSE=1 numbers them backwards (the target gets the
 * lowest), NSB_TARGET replaces 10.0.2.2 as the target's endpoint address.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The cluster IPs' base, step and order and the target's endpoint
 * address, from NSB_SVC_BASE, NSB_SVC_STRIDE, NSB_REVERSE and NSB_TARGET;
 * svc_n is the generator's N. Set in main. */
static uint32_t svc_base = 10u << 24 | 96u << 16;
static uint32_t svc_stride = 1;
static int svc_reverse;
static unsigned svc_n;
static const char *target_addr = "10.0.2.2";

/* Service i's cluster IP: base + 1 + k * stride, k = i (or N-1-i with
 * NSB_REVERSE, which gives the target, service N-1, the lowest address). */
static void svc_ip(unsigned i, char *buf)
{
	uint32_t k = svc_reverse && i < svc_n ? svc_n - 1 - i : i;
	uint32_t a = svc_base + 1 + k * svc_stride;
	sprintf(buf, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

/* Endpoint j of service i: "addr" and port. Addresses from 10.1.0.0 on,
 * 16 per service and never wrapped, so that every endpoint of up to 16
 * per service has an address of its own (100k x 10: a million, up to
 * 10.25.x.x, below the service range): in the standalone layout each is
 * a hairpin pair of its own, as in a real cluster of that size. */
static void ep_of(unsigned i, unsigned j, unsigned n, char *addr, unsigned *port)
{
	if (i == n - 1) {
		strcpy(addr, target_addr);
		*port = 9000 + j;
		return;
	}
	uint32_t a = (10u << 24 | 1u << 16) + i * 16 + j;
	sprintf(addr, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
	*port = 9000;
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* "ADDR:PORT" into *ret_sa; 0 or -EINVAL. */
static int parse_addr_port(const char *s, struct sockaddr_in *ret_sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	port = strtoul(colon + 1, &end, 10);
	if (*end || port == 0 || port > 65535)
		return -EINVAL;
	*ret_sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, host, &ret_sa->sin_addr) != 1)
		return -EINVAL;
	return 0;
}

/* One TCP connect to sa, its time in µs in *ret_us; 0, or a negative errno
 * (a connect that hangs, no rule matched or a packet dropped twice, fails
 * after 2 s). The socket is closed with an RST (linger 0), so no TIME_WAIT
 * piles up on either side and the next connect gets a fresh tuple. */
static int connect_once(const struct sockaddr_in *sa, double *ret_us)
{
	struct linger lg = { 1, 0 };
	struct timeval tv = { 2, 0 };
	double t0;
	int fd, r;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	t0 = now_us();
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	if (r == 0)
		*ret_us = now_us() - t0;
	else
		r = -errno;
	close(fd);
	return r;
}

/* The median of v[0..n) (sorted in place), n > 0. */
static double median_of(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return (v[(n - 1) / 2] + v[n / 2]) / 2;
}

/* The 99th percentile of v[0..n), sorted, n > 0. */
static double p99_of(const double *v, unsigned n)
{
	return v[(size_t)((double)n * 0.99)];
}

static int do_connect(const char *target, unsigned n)
{
	struct sockaddr_in sa;
	double *lat = calloc(n ? n : 1, sizeof(*lat));
	unsigned ok = 0, fail = 0;

	if (!lat || parse_addr_port(target, &sa) < 0) {
		fprintf(stderr, "connect: bad target \"%s\"\n", target);
		free(lat);
		return 1;
	}
	for (unsigned i = 0; i < n; i++) {
		int r = connect_once(&sa, &lat[ok]);

		if (r == 0)
			ok++;
		else if (r == -EMFILE || r == -ENFILE || r == -ENOMEM)
			break; /* no socket at all: not the path's failure */
		else
			fail++;
	}
	if (ok) {
		double p50 = median_of(lat, ok); /* sorts: before p99_of */

		printf("%.1f %.1f %u\n", p50, p99_of(lat, ok), fail);
	} else {
		printf("-1.0 -1.0 %u\n", fail);
	}
	free(lat);
	return 0;
}

/* One target of `interleave`. */
struct il_target {
	const char *name;
	struct sockaddr_in sa;
	double *lat;       /* every successful connect, rounds x block at most */
	unsigned n_lat;
	double *round_p50; /* per round; < 0 when the round had no success */
	unsigned fails;
	int dead;          /* a whole block failed: skipped from then on */
};

#define IL_MAX_TARGETS 8
#define IL_MAX_CONNECTS 2000000u /* per run, all targets */

/* One block of `block` connects to t in round r, cut short at `deadline`
 * (now_us() time); block_lat is scratch of `block` doubles. Logs the first
 * few failures (errno) to stderr. */
static void il_block(struct il_target *t, unsigned r, unsigned block, double deadline, double *block_lat)
{
	unsigned ok = 0, i;

	for (i = 0; i < block && now_us() < deadline; i++) {
		double us;
		int e = connect_once(&t->sa, &us);

		if (e == 0) {
			block_lat[ok++] = us;
			t->lat[t->n_lat++] = us;
		} else if (++t->fails <= 5) {
			fprintf(stderr, "interleave: %s: round %u connect %u: %s\n", t->name, r, i, strerror(-e));
		}
	}
	t->round_p50[r] = ok ? median_of(block_lat, ok) : -1.0;
	if (!ok && i == block) {
		t->dead = 1;
		fprintf(stderr, "interleave: %s: a whole block failed, skipped from now on\n", t->name);
	}
}

/* `interleave`: see the header. targets[0] is the floor. */
static int do_interleave(int argc, char **argv)
{
	struct il_target t[IL_MAX_TARGETS] = { 0 };
	unsigned rounds = 30, block = 100, max_s = 600, nt, done = 0;
	double *scratch = NULL, t0, deadline;
	int opt, ret = 1;

	optind = 2;
	while ((opt = getopt(argc, argv, "r:b:t:")) != -1) {
		unsigned long v = optarg ? strtoul(optarg, NULL, 10) : 0;

		if (opt == 'r')
			rounds = (unsigned)v;
		else if (opt == 'b')
			block = (unsigned)v;
		else if (opt == 't')
			max_s = (unsigned)v;
		else
			return 2;
	}
	nt = (unsigned)(argc - optind);
	if (nt < 1 || nt > IL_MAX_TARGETS || !rounds || !block || rounds > 10000 || block > 100000 ||
	    (unsigned long long)rounds * block * nt > IL_MAX_CONNECTS) {
		fprintf(stderr, "interleave: 1..%d targets, rounds x block x targets up to %u\n", IL_MAX_TARGETS,
			IL_MAX_CONNECTS);
		return 2;
	}
	for (unsigned i = 0; i < nt; i++) {
		char *arg = argv[optind + (int)i], *eq = strchr(arg, '=');

		if (!eq || eq == arg || parse_addr_port(eq + 1, &t[i].sa) < 0) {
			fprintf(stderr, "interleave: bad target \"%s\" (NAME=ADDR:PORT)\n", arg);
			goto out;
		}
		*eq = 0;
		t[i].name = arg;
		t[i].lat = calloc((size_t)rounds * block, sizeof(double));
		t[i].round_p50 = calloc(rounds, sizeof(double));
		if (!t[i].lat || !t[i].round_p50) {
			fprintf(stderr, "interleave: out of memory\n");
			goto out;
		}
	}
	scratch = calloc((size_t)(block > rounds ? block : rounds), sizeof(double));
	if (!scratch)
		goto out;
	/* One unrecorded connect per target: neighbour entries resolved, code
	 * paths warm, before anything counts. */
	for (unsigned i = 0; i < nt; i++) {
		double us;
		(void)connect_once(&t[i].sa, &us);
	}
	t0 = now_us();
	deadline = t0 + (double)max_s * 1e6;
	for (unsigned r = 0; r < rounds && now_us() < deadline; r++) {
		for (unsigned k = 0; k < nt; k++) {
			struct il_target *x = &t[(r + k) % nt];

			if (x->dead)
				x->round_p50[r] = -1.0;
			else
				il_block(x, r, block, deadline, scratch);
		}
		done = r + 1;
	}
	fprintf(stderr, "interleave: %u of %u rounds x %u connects x %u targets in %.1f s\n", done, rounds, block, nt,
		(now_us() - t0) / 1e6);
	for (unsigned i = 0; i < nt; i++) {
		unsigned nr = 0;

		for (unsigned r = 0; r < done; r++)
			if (t[i].round_p50[r] > 0 && t[0].round_p50[r] > 0)
				scratch[nr++] = t[i].round_p50[r] / t[0].round_p50[r];
		printf("%s", t[i].name);
		if (t[i].n_lat) {
			double p50 = median_of(t[i].lat, t[i].n_lat); /* sorts: before p99_of */

			printf(" %.1f %.1f", p50, p99_of(t[i].lat, t[i].n_lat));
		} else {
			printf(" NA NA");
		}
		printf(" %u", t[i].fails);
		if (nr)
			printf(" %.3f\n", median_of(scratch, nr));
		else
			printf(" NA\n");
	}
	ret = 0;
out:
	for (unsigned i = 0; i < IL_MAX_TARGETS; i++) {
		free(t[i].lat);
		free(t[i].round_p50);
	}
	free(scratch);
	return ret;
}

static int do_serve(const char *addr, unsigned port, unsigned count)
{
	struct pollfd *p = calloc(count, sizeof(*p));

	for (unsigned i = 0; i < count; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)(port + i)) };
		int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		inet_pton(AF_INET, addr, &sa.sin_addr);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(fd, 4096) == -1) {
			perror("serve");
			return 1;
		}
		p[i] = (struct pollfd){ .fd = fd, .events = POLLIN };
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		if (poll(p, count, -1) < 0 && errno != EINTR)
			return 1;
		for (unsigned i = 0; i < count; i++)
			if (p[i].revents & POLLIN) {
				int c = accept(p[i].fd, NULL, NULL);
				if (c >= 0)
					close(c);
			}
	}
}

/* ",\"nodeName\":\"node-K\"" for endpoint j of service i, into buf ("" when
 * nodes is 0: no node, the standalone-manifest shape). */
static const char *node_of(unsigned i, unsigned j, unsigned eps, unsigned nodes, char *buf, size_t len)
{
	if (!nodes)
		return "";
	snprintf(buf, len, ",\"nodeName\":\"node-%u\"", (i * eps + j) % nodes);
	return buf;
}

static int gen_ferry(const char *dir, unsigned n, unsigned eps, unsigned nodes)
{
	char path[512], ip[32], ep[32], node[48];
	FILE *f;
	unsigned port;

	f = NULL;
	for (unsigned i = 0; i < n; i++) {
		/* Files of 2000 services: the manifest source bounds file size
		 * (16 MiB) and list length (10000 items). */
		if (i % 2000 == 0) {
			if (f) {
				fprintf(f, "]}\n");
				fclose(f);
			}
			snprintf(path, sizeof(path), "%s/svc-%06u.json", dir, i / 2000);
			f = fopen(path, "w");
			if (!f)
				return 1;
			fprintf(f, "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[\n");
		}
		svc_ip(i, ip);
		fprintf(f, "%s{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"s%u\",\"namespace\":\"b\"},"
			   "\"spec\":{\"clusterIP\":\"%s\",\"clusterIPs\":[\"%s\"],\"ipFamilies\":[\"IPv4\"],"
			   "\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":80,\"targetPort\":9000}]}}\n",
			i % 2000 ? "," : "", i, ip, ip);
		fprintf(f, ",{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\","
			   "\"metadata\":{\"name\":\"s%u-1\",\"namespace\":\"b\",\"labels\":{\"kubernetes.io/service-name\":\"s%u\"}},"
			   "\"addressType\":\"IPv4\",\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":9000}],"
			   "\"endpoints\":[", i, i);
		for (unsigned j = 0; j < eps; j++) {
			ep_of(i, j, n, ep, &port);
			/* The target's endpoints differ by port: one slice per port
			 * would be truer to Kubernetes; ports differ here only for
			 * the target, so it gets one slice per endpoint below. */
			if (i == n - 1)
				break;
			fprintf(f, "%s{\"addresses\":[\"%s\"],\"conditions\":{\"ready\":true}%s}", j ? "," : "", ep,
				node_of(i, j, eps, nodes, node, sizeof(node)));
		}
		fprintf(f, "]}\n");
	}
	fprintf(f, "]}\n");
	fclose(f);
	/* The target: one slice per endpoint port (named port "http"). */
	snprintf(path, sizeof(path), "%s/target.json", dir);
	f = fopen(path, "w");
	if (!f)
		return 1;
	fprintf(f, "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[\n");
	for (unsigned j = 0; j < eps; j++) {
		ep_of(n - 1, j, n, ep, &port);
		fprintf(f, "%s{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\","
			   "\"metadata\":{\"name\":\"t-%u\",\"namespace\":\"b\",\"labels\":{\"kubernetes.io/service-name\":\"s%u\"}},"
			   "\"addressType\":\"IPv4\",\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":%u}],"
			   "\"endpoints\":[{\"addresses\":[\"%s\"],\"conditions\":{\"ready\":true}%s}]}\n",
			j ? "," : "", j, n - 1, port, ep, node_of(0, 0, eps, nodes, node, sizeof(node)));
	}
	fprintf(f, "]}\n");
	fclose(f);
	return 0;
}

/* kube-proxy iptables mode: KUBE-SERVICES with one match per service,
 * KUBE-SVC-* with statistic to KUBE-SEP-*, each a DNAT (1 endpoint each
 * here but the target's, which has them all). */
static int gen_iptables(const char *file, unsigned n)
{
	FILE *f = fopen(file, "w");
	char ip[32], ep[32];
	unsigned port;

	if (!f)
		return 1;
	fprintf(f, "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n");
	for (unsigned i = 0; i < n; i++)
		fprintf(f, ":KUBE-SVC-%u - [0:0]\n:KUBE-SEP-%u - [0:0]\n", i, i);
	fprintf(f, "-A PREROUTING -j KUBE-SERVICES\n-A OUTPUT -j KUBE-SERVICES\n");
	for (unsigned i = 0; i < n; i++) {
		svc_ip(i, ip);
		ep_of(i, 0, n, ep, &port);
		fprintf(f, "-A KUBE-SERVICES -d %s/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-%u\n", ip, i);
		fprintf(f, "-A KUBE-SVC-%u -j KUBE-SEP-%u\n", i, i);
		fprintf(f, "-A KUBE-SEP-%u -p tcp -m tcp -j DNAT --to-destination %s:%u\n", i, ep, port);
	}
	fprintf(f, "COMMIT\n");
	fclose(f);
	return 0;
}

/* kube-proxy nftables mode: a chain per service and per endpoint, a
 * verdict map dispatching to the service chains. */
static void kube_nft_service(FILE *f, unsigned i, unsigned n, unsigned eps, unsigned shift)
{
	char ep[32];
	unsigned port;

	for (unsigned j = 0; j < eps; j++) {
		ep_of(i, j, n, ep, &port);
		fprintf(f, "add chain ip kube-proxy sep-%u-%u\nflush chain ip kube-proxy sep-%u-%u\n", i, j + shift, i,
			j + shift);
		fprintf(f, "add rule ip kube-proxy sep-%u-%u ip saddr %s jump mark-for-masquerade\n", i, j + shift, ep);
		fprintf(f, "add rule ip kube-proxy sep-%u-%u meta l4proto tcp dnat to %s:%u\n", i, j + shift, ep, port);
	}
	/* The service chain after its endpoint chains: it jumps to them. */
	fprintf(f, "add chain ip kube-proxy svc-%u\nflush chain ip kube-proxy svc-%u\n", i, i);
	fprintf(f, "add rule ip kube-proxy svc-%u numgen random mod %u vmap { ", i, eps);
	for (unsigned j = 0; j < eps; j++)
		fprintf(f, "%s%u : goto sep-%u-%u", j ? ", " : "", j, i, j + shift);
	fprintf(f, " }\n");
}

static int gen_kube_nft(const char *file, unsigned n, unsigned eps, int change)
{
	FILE *f = fopen(file, "w");
	char ip[32];

	if (!f)
		return 1;
	if (!change) {
		fprintf(f, "add table ip kube-proxy\n"
			   "add chain ip kube-proxy mark-for-masquerade\n"
			   "add rule ip kube-proxy mark-for-masquerade meta mark set meta mark or 0x4000\n"
			   "add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }\n"
			   "add chain ip kube-proxy services\n"
			   "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips\n"
			   "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority dstnat ; }\n"
			   "add rule ip kube-proxy nat-prerouting jump services\n"
			   "add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }\n"
			   "add rule ip kube-proxy nat-output jump services\n");
		for (unsigned i = 0; i < n; i++) {
			kube_nft_service(f, i, n, eps, 0);
			svc_ip(i, ip);
			fprintf(f, "add element ip kube-proxy service-ips { %s . tcp . 80 : goto svc-%u }\n", ip, i);
		}
	} else {
		/* One endpoint replaced: new endpoint chains, the service chain
		 * rewritten, the old endpoint chains deleted (kube-proxy's shape). */
		kube_nft_service(f, n - 1, n, eps, 1000);
		for (unsigned j = 0; j < eps; j++)
			fprintf(f, "flush chain ip kube-proxy sep-%u-%u\ndelete chain ip kube-proxy sep-%u-%u\n", n - 1, j,
				n - 1, j);
	}
	fclose(f);
	return 0;
}

/* ipvsadm-restore input: a virtual server per service (rr), a masquerading
 * real server per endpoint. */
static int gen_ipvsadm(const char *file, unsigned n, unsigned eps)
{
	FILE *f = fopen(file, "w");
	char ip[32], ep[32];
	unsigned port;

	if (!f)
		return 1;
	for (unsigned k = 0; k < n; k++) {
		unsigned i = svc_reverse ? n - 1 - k : k;

		svc_ip(i, ip);
		fprintf(f, "-A -t %s:80 -s rr\n", ip);
		for (unsigned j = 0; j < eps; j++) {
			ep_of(i, j, n, ep, &port);
			fprintf(f, "-a -t %s:80 -r %s:%u -m -w 1\n", ip, ep, port);
		}
	}
	return fclose(f) ? 1 : 0;
}

/* `ip -batch` input: every cluster IP bound to dev (what kube-proxy's IPVS
 * mode does on kube-ipvs0, ferry's on ferry-ipvs0). */
static int gen_addrs(const char *file, unsigned n, const char *dev)
{
	FILE *f = fopen(file, "w");
	char ip[32];

	if (!f)
		return 1;
	for (unsigned i = 0; i < n; i++) {
		svc_ip(i, ip);
		fprintf(f, "address add %s/32 dev %s\n", ip, dev);
	}
	return fclose(f) ? 1 : 0;
}

/* Append attribute type with len bytes of data to the message at buf. */
static void nl_put(char *buf, uint16_t type, const void *data, size_t len)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
	struct nlattr *a = (struct nlattr *)(buf + NLMSG_ALIGN(nlh->nlmsg_len));

	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	memcpy((char *)a + NLA_HDRLEN, data, len);
	nlh->nlmsg_len = NLMSG_ALIGN(nlh->nlmsg_len) + NLA_ALIGN(a->nla_len);
}

/* Elements in one GETSETELEM reply: the items of its element list. */
static size_t dump_count(const struct nlmsghdr *nlh)
{
	const char *p = (const char *)NLMSG_DATA(nlh) + NLMSG_ALIGN(sizeof(struct nfgenmsg));
	const char *end = (const char *)nlh + nlh->nlmsg_len;
	size_t n = 0;

	while (p + NLA_HDRLEN <= end) {
		const struct nlattr *a = (const struct nlattr *)p;

		if (a->nla_len < NLA_HDRLEN || p + a->nla_len > end)
			break;
		if ((a->nla_type & NLA_TYPE_MASK) == NFTA_SET_ELEM_LIST_ELEMENTS) {
			const char *q = p + NLA_HDRLEN, *qend = p + a->nla_len;

			while (q + NLA_HDRLEN <= qend) {
				const struct nlattr *e = (const struct nlattr *)q;

				if (e->nla_len < NLA_HDRLEN)
					break;
				n++;
				q += NLA_ALIGN(e->nla_len);
			}
		}
		p += NLA_ALIGN(a->nla_len);
	}
	return n;
}

/* One set dumped as fast as the kernel answers: read into a buffer the
 * kernel fills up to its limit per message (32 KiB), count, nothing else.
 * Returns the element count, or -1 (message on stderr). */
static long dump_set(int fd, int family, const char *table, const char *set, unsigned seq)
{
	static char buf[256 * 1024];
	char req[512] = { 0 };
	struct nlmsghdr *nlh = (struct nlmsghdr *)req;
	struct nfgenmsg *g = NLMSG_DATA(nlh);
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	long n = 0;

	nlh->nlmsg_len = NLMSG_LENGTH(sizeof(*g));
	nlh->nlmsg_type = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETSETELEM;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	g->nfgen_family = (uint8_t)family;
	g->version = NFNETLINK_V0;
	nl_put(req, NFTA_SET_ELEM_LIST_TABLE, table, strlen(table) + 1);
	nl_put(req, NFTA_SET_ELEM_LIST_SET, set, strlen(set) + 1);
	if (sendto(fd, req, nlh->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		perror("dump: sendto");
		return -1;
	}
	for (;;) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);
		int left;

		if (len < 0) {
			if (errno == EINTR)
				continue;
			perror("dump: recv");
			return -1;
		}
		left = (int)len;
		for (nlh = (struct nlmsghdr *)buf; NLMSG_OK(nlh, left); nlh = NLMSG_NEXT(nlh, left)) {
			if (nlh->nlmsg_seq != seq)
				continue;
			if (nlh->nlmsg_type == NLMSG_DONE)
				return n;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(nlh);

				fprintf(stderr, "dump: %s %s: %s\n", table, set, strerror(-e->error));
				return -1;
			}
			n += (long)dump_count(nlh);
		}
	}
}

static int do_dump(int argc, char **argv)
{
	int family = strcmp(argv[2], "ip6") == 0 ? NFPROTO_IPV6 : NFPROTO_IPV4;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	int size = 64 << 20;
	long total = 0;
	double t_all = now_us();

	if (fd < 0) {
		perror("dump: socket");
		return 1;
	}
	/* As ferry's socket: a big receive buffer (needs CAP_NET_ADMIN). */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) == -1)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	for (int i = 4; i < argc; i++) {
		double t0 = now_us();
		long n = dump_set(fd, family, argv[3], argv[i], 0x6e730000u + (unsigned)i);

		if (n < 0) {
			close(fd);
			return 1;
		}
		total += n;
		printf("%s %ld %.1f\n", argv[i], n, (now_us() - t0) / 1000);
	}
	printf("total %ld %.1f\n", total, (now_us() - t_all) / 1000);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *base = getenv("NSB_SVC_BASE"), *target = getenv("NSB_TARGET");
	struct in_addr a;

	if (base && *base) {
		if (inet_pton(AF_INET, base, &a) != 1) {
			fprintf(stderr, "NSB_SVC_BASE: not an IPv4 address: %s\n", base);
			return 2;
		}
		svc_base = ntohl(a.s_addr);
	}
	if (getenv("NSB_SVC_STRIDE"))
		svc_stride = (uint32_t)strtoul(getenv("NSB_SVC_STRIDE"), NULL, 10);
	if (!svc_stride)
		svc_stride = 1;
	svc_reverse = getenv("NSB_REVERSE") && strcmp(getenv("NSB_REVERSE"), "1") == 0;
	if (argc >= 4 && strncmp(argv[1], "gen-", 4) == 0)
		svc_n = (unsigned)atoi(argv[3]);
	if (target && *target) {
		if (inet_pton(AF_INET, target, &a) != 1) {
			fprintf(stderr, "NSB_TARGET: not an IPv4 address: %s\n", target);
			return 2;
		}
		target_addr = target;
	}
	if (argc >= 5 && strcmp(argv[1], "dump") == 0)
		return do_dump(argc, argv);
	if (argc >= 4 && strcmp(argv[1], "connect") == 0)
		return do_connect(argv[2], (unsigned)atoi(argv[3]));
	if (argc >= 3 && strcmp(argv[1], "interleave") == 0)
		return do_interleave(argc, argv);
	if (argc >= 5 && strcmp(argv[1], "serve") == 0)
		return do_serve(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]));
	if (argc >= 5 && strcmp(argv[1], "gen-ferry") == 0)
		return gen_ferry(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]),
				 argc >= 6 ? (unsigned)atoi(argv[5]) : 0);
	if (argc >= 4 && strcmp(argv[1], "gen-iptables") == 0)
		return gen_iptables(argv[2], (unsigned)atoi(argv[3]));
	if (argc >= 5 && strcmp(argv[1], "gen-kube-nft") == 0)
		return gen_kube_nft(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]), 0);
	if (argc >= 5 && strcmp(argv[1], "gen-kube-nft-change") == 0)
		return gen_kube_nft(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]), 1);
	if (argc >= 5 && strcmp(argv[1], "gen-ipvsadm") == 0)
		return gen_ipvsadm(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]));
	if (argc >= 5 && strcmp(argv[1], "gen-addrs") == 0)
		return gen_addrs(argv[2], (unsigned)atoi(argv[3]), argv[4]);
	fprintf(stderr, "usage: see the header of bench/nft_scale_bench.c\n");
	return 2;
}
