/* nft_scale_bench: helpers of bench/nft_scale.sh (the nftables scaling
 * benchmark). Subcommands:
 *
 *   nft_scale_bench connect ADDR:PORT N     N sequential TCP connects; prints
 *                                           "p50_us p99_us failures"
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
 *
 * Service i (0-based) has cluster IP 10.96.0.0/12 + i + 1, port 80; the
 * target is service N-1, whose endpoints are 10.0.2.2:9000+j (real, served
 * by `serve`); the others point at 10.1.x.y:9000 (never contacted).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void svc_ip(unsigned i, char *buf)
{
	uint32_t a = (10u << 24 | 96u << 16) + i + 1;
	sprintf(buf, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

/* Endpoint j of service i: "addr" and port. */
static void ep_of(unsigned i, unsigned j, unsigned n, char *addr, unsigned *port)
{
	if (i == n - 1) {
		strcpy(addr, "10.0.2.2");
		*port = 9000 + j;
		return;
	}
	uint32_t a = (10u << 24 | 1u << 16) + ((i * 16 + j) & 0xffff);
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

static int do_connect(const char *target, unsigned n)
{
	char host[64];
	const char *colon = strrchr(target, ':');
	struct sockaddr_in sa = { .sin_family = AF_INET };
	double *lat = calloc(n, sizeof(*lat));
	unsigned ok = 0, fail = 0;

	if (!colon || !lat || (size_t)(colon - target) >= sizeof(host))
		return 1;
	memcpy(host, target, (size_t)(colon - target));
	host[colon - target] = 0;
	inet_pton(AF_INET, host, &sa.sin_addr);
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	for (unsigned i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct linger lg = { 1, 0 };
		double t0 = now_us();
		int r;

		if (fd < 0)
			return 1;
		struct timeval tv = { 2, 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		/* A connect that hangs (no rule matched) fails after 2 s. */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		if (r == 0)
			lat[ok++] = now_us() - t0;
		else
			fail++;
		close(fd); /* RST: no TIME_WAIT piles up on either side */
	}
	qsort(lat, ok, sizeof(*lat), cmp_double);
	printf("%.1f %.1f %u\n", ok ? lat[ok / 2] : -1.0, ok ? lat[(size_t)((double)ok * 0.99)] : -1.0, fail);
	free(lat);
	return 0;
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

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "connect") == 0)
		return do_connect(argv[2], (unsigned)atoi(argv[3]));
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
	fprintf(stderr, "usage: see the header of bench/nft_scale_bench.c\n");
	return 2;
}
