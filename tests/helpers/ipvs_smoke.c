/* ipvs_smoke: drives the IPVS mechanism (backends/ipvs/ipvs_genl.h) against
 * a kernel that has IPVS, for tests/vm/guest/ipvs_smoke.sh. Acts in the
 * network namespace it runs in.
 *
 *   ipvs_smoke check
 *       every call of ipvs_genl against the kernel, checked: add / edit /
 *       delete of IPv4, IPv6 and fwmark services and their destinations,
 *       dumps read back field by field, the idempotence rule, the kernel's
 *       exact errnos (ESRCH vs ENOENT), timeouts, info, flush. Starts and
 *       ends with an empty IPVS table (it flushes: use a namespace of its own).
 *   ipvs_smoke add VIP:PORT PROTO SCHED RS:PORT[@WEIGHT]...
 *       a service with masqueraded destinations (weight 1 by default)
 *   ipvs_smoke weight VIP:PORT PROTO RS:PORT WEIGHT
 *   ipvs_smoke del VIP:PORT PROTO
 *   ipvs_smoke show
 *       one line per service ("service PROTO VIP:PORT SCHED") and per
 *       destination ("dest RS:PORT weight W active A inactive I")
 *
 * PROTO is tcp, udp or sctp; addresses as "10.0.0.1:80" or "[fd00::1]:80".
 * Exit: 0 done, 1 a check or a call failed (reason on stderr), 77 the
 * kernel has no IPVS. */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/ip_vs.h>
#include <netlink/msg.h>

#include "ipvs_genl.h"

static int failures;

#define CHECK(cond, ...)                                              \
	do {                                                          \
		if (!(cond)) {                                        \
			fprintf(stderr, "ipvs_smoke: line %d: ", __LINE__); \
			fprintf(stderr, __VA_ARGS__);                 \
			fputc('\n', stderr);                          \
			failures++;                                   \
		}                                                     \
	} while (0)

/* CHECK that call returned want; print the errno names otherwise. */
#define EXPECT(call, want)                                                          \
	do {                                                                        \
		int r_ = (call);                                                    \
		CHECK(r_ == (want), "%s = %d (%s), expected %d (%s)", #call, r_,    \
		      strerror(-r_), (want), strerror(-(want)));                    \
	} while (0)

static struct ipvs_genl *h;

static int parse_proto(const char *s, uint16_t *ret)
{
	if (strcmp(s, "tcp") == 0)
		*ret = IPPROTO_TCP;
	else if (strcmp(s, "udp") == 0)
		*ret = IPPROTO_UDP;
	else if (strcmp(s, "sctp") == 0)
		*ret = IPPROTO_SCTP;
	else
		return -EINVAL;
	return 0;
}

static const char *proto_name(uint16_t p)
{
	return p == IPPROTO_TCP ? "tcp" : p == IPPROTO_UDP ? "udp" : p == IPPROTO_SCTP ? "sctp" : "?";
}

static struct ipvs_service service(const char *endpoint, uint16_t proto, const char *sched)
{
	struct ipvs_service s = { .protocol = proto };

	if (inet_endpoint_parse(endpoint, &s.addr, &s.port) < 0) {
		fprintf(stderr, "ipvs_smoke: bad address %s\n", endpoint);
		exit(1);
	}
	s.af = s.addr.family;
	snprintf(s.sched_name, sizeof(s.sched_name), "%s", sched);
	return s;
}

static struct ipvs_dest dest(const char *endpoint, uint32_t weight)
{
	struct ipvs_dest d = { .weight = weight, .conn_flags = IP_VS_CONN_F_MASQ };

	if (inet_endpoint_parse(endpoint, &d.addr, &d.port) < 0) {
		fprintf(stderr, "ipvs_smoke: bad address %s\n", endpoint);
		exit(1);
	}
	return d;
}

/* ---- Dumps into arrays ---- */

struct svc_list {
	struct ipvs_service s[16];
	int n;
};

static int keep_service(const struct ipvs_service *svc, void *ctx)
{
	struct svc_list *l = ctx;

	if (l->n < 16)
		l->s[l->n] = *svc;
	l->n++;
	return 0;
}

struct dest_list {
	struct ipvs_dest d[16];
	int n;
};

static int keep_dest(const struct ipvs_dest *d, void *ctx)
{
	struct dest_list *l = ctx;

	if (l->n < 16)
		l->d[l->n] = *d;
	l->n++;
	return 0;
}

static bool same_key(const struct ipvs_service *a, const struct ipvs_service *b)
{
	if (a->af != b->af || a->fwmark != b->fwmark)
		return false;
	if (a->fwmark)
		return true;
	return a->protocol == b->protocol && a->port == b->port && inet_addr_cmp(&a->addr, &b->addr) == 0;
}

/* The dumped service keyed like want, or NULL. */
static const struct ipvs_service *find_service(const struct svc_list *l, const struct ipvs_service *want)
{
	for (int i = 0; i < l->n && i < 16; i++)
		if (same_key(&l->s[i], want))
			return &l->s[i];
	return NULL;
}

static const struct ipvs_dest *find_dest(const struct dest_list *l, const struct ipvs_dest *want)
{
	for (int i = 0; i < l->n && i < 16; i++)
		if (l->d[i].port == want->port && inet_addr_cmp(&l->d[i].addr, &want->addr) == 0)
			return &l->d[i];
	return NULL;
}

static void dump_services(struct svc_list *l)
{
	l->n = 0;
	EXPECT(ipvs_genl_dump_services(h, keep_service, l), 0);
}

static void dump_dests(const struct ipvs_service *svc, struct dest_list *l)
{
	l->n = 0;
	EXPECT(ipvs_genl_dump_dests(h, svc, keep_dest, l), 0);
}

/* The dumped copy of want must equal it in every option. */
static void check_service_dumped(const struct ipvs_service *want)
{
	struct svc_list l;
	const struct ipvs_service *got;

	dump_services(&l);
	got = find_service(&l, want);
	CHECK(got, "service with port %u not in the dump", want->port);
	if (!got)
		return;
	CHECK(strcmp(got->sched_name, want->sched_name) == 0, "sched %s, want %s", got->sched_name,
	      want->sched_name);
	CHECK(got->flags == want->flags, "flags %#x, want %#x", got->flags, want->flags);
	CHECK(got->timeout == want->timeout, "timeout %u, want %u", got->timeout, want->timeout);
	CHECK(got->netmask == (want->netmask ? want->netmask : (want->af == AF_INET ? 32 : 128)),
	      "netmask %u, want %u", got->netmask, want->netmask);
}

static void check_dest_dumped(const struct ipvs_service *svc, const struct ipvs_dest *want)
{
	struct dest_list l;
	const struct ipvs_dest *got;

	dump_dests(svc, &l);
	got = find_dest(&l, want);
	CHECK(got, "destination port %u not in the dump", want->port);
	if (!got)
		return;
	CHECK(got->weight == want->weight, "weight %u, want %u", got->weight, want->weight);
	CHECK(got->conn_flags == want->conn_flags, "conn_flags %#x, want %#x", got->conn_flags,
	      want->conn_flags);
	CHECK(got->u_threshold == want->u_threshold && got->l_threshold == want->l_threshold,
	      "thresholds %u/%u, want %u/%u", got->u_threshold, got->l_threshold, want->u_threshold,
	      want->l_threshold);
	CHECK(got->active_conns == 0 && got->inactive_conns == 0, "no traffic yet, but %u/%u connections",
	      got->active_conns, got->inactive_conns);
}

/* Build and exec without the idempotence rule: the kernel's own answer. */
static int raw_service(enum ipvs_genl_op op, const struct ipvs_service *svc)
{
	struct nl_msg *msg = nlmsg_alloc();
	int r;

	if (!msg)
		return -ENOMEM;
	r = ipvs_genl_build_service(msg, ipvs_genl_family_id(h), op, svc);
	if (r == 0)
		r = ipvs_genl_exec(h, msg);
	nlmsg_free(msg);
	return r;
}

static int raw_dest(enum ipvs_genl_op op, const struct ipvs_service *svc, const struct ipvs_dest *d)
{
	struct nl_msg *msg = nlmsg_alloc();
	int r;

	if (!msg)
		return -ENOMEM;
	r = ipvs_genl_build_dest(msg, ipvs_genl_family_id(h), op, svc, d);
	if (r == 0)
		r = ipvs_genl_exec(h, msg);
	nlmsg_free(msg);
	return r;
}

static int count_services(void)
{
	struct svc_list l;

	dump_services(&l);
	return l.n;
}

static int cmd_check(void)
{
	struct ipvs_service v4 = service("10.96.0.10:80", IPPROTO_TCP, "rr");
	struct ipvs_service v6 = service("[fd00:96::10]:53", IPPROTO_UDP, "wlc");
	struct ipvs_service fw = { .af = AF_INET, .fwmark = 0x4000, .sched_name = "sh" };
	struct ipvs_service gone = service("10.96.9.9:9", IPPROTO_SCTP, "rr");
	struct ipvs_dest d1 = dest("10.0.2.2:9000", 1), d2 = dest("10.0.2.3:9000", 3);
	struct ipvs_dest d6 = dest("[fd00:2::2]:5353", 2), absent = dest("10.0.2.9:9000", 1);
	struct ipvs_timeouts t0, t1, t = { .tcp = 901 };
	struct ipvs_info info;
	struct dest_list dl;

	/* The kernel answers at all, and its table starts empty. */
	EXPECT(ipvs_genl_get_info(h, &info), 0);
	CHECK(info.version >> 16 == 1, "IPVS version %#x", info.version);
	printf("ipvs_smoke: IPVS %u.%u.%u, connection table %u\n", info.version >> 16,
	       (info.version >> 8) & 0xff, info.version & 0xff, info.conn_tab_size);
	EXPECT(ipvs_genl_flush(h), 0);
	CHECK(count_services() == 0, "services left after a flush");

	/* Services: add (twice: idempotent), read back. */
	EXPECT(ipvs_genl_apply_service(h, IPVS_GENL_ADD, &v4), 0);
	EXPECT(ipvs_genl_apply_service(h, IPVS_GENL_ADD, &v4), 0);
	EXPECT(ipvs_genl_apply_service(h, IPVS_GENL_ADD, &v6), 0);
	EXPECT(ipvs_genl_apply_service(h, IPVS_GENL_ADD, &fw), 0);
	CHECK(count_services() == 3, "%d services, expected 3", count_services());
	check_service_dumped(&v4);
	check_service_dumped(&v6);
	check_service_dumped(&fw);

	/* The raw answer the idempotence rule hides, straight from exec. */
	EXPECT(raw_service(IPVS_GENL_ADD, &v4), -EEXIST);
	EXPECT(raw_service(IPVS_GENL_DEL, &gone), -ESRCH);

	/* Edit: scheduler, persistence with timeout and netmask. */
	v4.flags = IP_VS_SVC_F_PERSISTENT;
	v4.timeout = 10800;
	v4.netmask = 24;
	snprintf(v4.sched_name, sizeof(v4.sched_name), "wrr");
	EXPECT(ipvs_genl_apply_service(h, IPVS_GENL_EDIT, &v4), 0);
	check_service_dumped(&v4);
	v6.flags = IP_VS_SVC_F_PERSISTENT;
	v6.timeout = 60;
	v6.netmask = 64;
	EXPECT(ipvs_genl_apply_service(h, IPVS_GENL_EDIT, &v6), 0);
	check_service_dumped(&v6);
	/* Back to no persistence: the flag must go (mask ~0). */
	v4.flags = 0;
	v4.timeout = 0;
	v4.netmask = 0;
	EXPECT(ipvs_genl_apply_service(h, IPVS_GENL_EDIT, &v4), 0);
	check_service_dumped(&v4);

	/* Destinations: add (twice), thresholds, read back with counters. */
	d2.u_threshold = 100;
	d2.l_threshold = 50;
	EXPECT(ipvs_genl_apply_dest(h, IPVS_GENL_ADD, &v4, &d1), 0);
	EXPECT(ipvs_genl_apply_dest(h, IPVS_GENL_ADD, &v4, &d1), 0);
	EXPECT(ipvs_genl_apply_dest(h, IPVS_GENL_ADD, &v4, &d2), 0);
	EXPECT(ipvs_genl_apply_dest(h, IPVS_GENL_ADD, &v6, &d6), 0);
	dump_dests(&v4, &dl);
	CHECK(dl.n == 2, "%d destinations of v4, expected 2", dl.n);
	check_dest_dumped(&v4, &d1);
	check_dest_dumped(&v4, &d2);
	check_dest_dumped(&v6, &d6);

	/* Graceful termination's first step: weight 0, still listed. */
	d1.weight = 0;
	EXPECT(ipvs_genl_apply_dest(h, IPVS_GENL_EDIT, &v4, &d1), 0);
	check_dest_dumped(&v4, &d1);

	/* The kernel's errnos, told apart: no such service is ESRCH, no such
	 * destination ENOENT, an unknown scheduler ENOENT on add. */
	EXPECT(ipvs_genl_apply_service(h, IPVS_GENL_EDIT, &gone), -ESRCH);
	EXPECT(ipvs_genl_apply_dest(h, IPVS_GENL_ADD, &gone, &d1), -ESRCH);
	EXPECT(ipvs_genl_apply_dest(h, IPVS_GENL_EDIT, &v4, &absent), -ENOENT);
	/* An IPv6 real server behind an IPv4 service needs tunnelling. */
	EXPECT(ipvs_genl_apply_dest(h, IPVS_GENL_EDIT, &v4, &d6), -EINVAL);
	snprintf(gone.sched_name, sizeof(gone.sched_name), "nosuch");
	EXPECT(ipvs_genl_apply_service(h, IPVS_GENL_ADD, &gone), -ENOENT);
	snprintf(gone.sched_name, sizeof(gone.sched_name), "rr");
	/* Dumping the destinations of no service is an empty dump. */
	dump_dests(&gone, &dl);
	CHECK(dl.n == 0, "destinations of a missing service: %d", dl.n);

	/* Timeouts: set one, the others stay; then restore. */
	EXPECT(ipvs_genl_get_timeouts(h, &t0), 0);
	CHECK(t0.tcp && t0.tcp_fin && t0.udp, "timeouts %u/%u/%u", t0.tcp, t0.tcp_fin, t0.udp);
	EXPECT(ipvs_genl_set_timeouts(h, &t), 0);
	EXPECT(ipvs_genl_get_timeouts(h, &t1), 0);
	CHECK(t1.tcp == 901 && t1.tcp_fin == t0.tcp_fin && t1.udp == t0.udp, "timeouts after set: %u/%u/%u",
	      t1.tcp, t1.tcp_fin, t1.udp);
	EXPECT(ipvs_genl_set_timeouts(h, &t0), 0);

	EXPECT(raw_dest(IPVS_GENL_DEL, &v4, &absent), -ENOENT);

	/* Deletes, each twice; a destination of a deleted service too. */
	EXPECT(ipvs_genl_apply_dest(h, IPVS_GENL_DEL, &v4, &d1), 0);
	EXPECT(ipvs_genl_apply_dest(h, IPVS_GENL_DEL, &v4, &d1), 0);
	dump_dests(&v4, &dl);
	CHECK(dl.n == 1, "%d destinations after a delete, expected 1", dl.n);
	EXPECT(ipvs_genl_apply_service(h, IPVS_GENL_DEL, &v4), 0);
	EXPECT(ipvs_genl_apply_service(h, IPVS_GENL_DEL, &v4), 0);
	EXPECT(ipvs_genl_apply_dest(h, IPVS_GENL_DEL, &v4, &d2), 0);
	EXPECT(ipvs_genl_apply_service(h, IPVS_GENL_DEL, &fw), 0);
	CHECK(count_services() == 1, "%d services, expected 1", count_services());
	EXPECT(ipvs_genl_flush(h), 0);
	CHECK(count_services() == 0, "services left after the last flush");

	if (failures)
		fprintf(stderr, "ipvs_smoke: %d checks failed\n", failures);
	else
		printf("ipvs_smoke: check passed\n");
	return failures ? 1 : 0;
}

static int cmd_add(int argc, char **argv)
{
	struct ipvs_service s;
	uint16_t proto;
	int r;

	if (argc < 4 || parse_proto(argv[1], &proto) < 0)
		return fprintf(stderr, "usage: ipvs_smoke add VIP:PORT PROTO SCHED RS:PORT[@W]...\n"), 1;
	s = service(argv[0], proto, argv[2]);
	r = ipvs_genl_apply_service(h, IPVS_GENL_ADD, &s);
	if (r < 0)
		return fprintf(stderr, "ipvs_smoke: add service %s: %s\n", argv[0], strerror(-r)), 1;
	for (int i = 3; i < argc; i++) {
		char ep[64], *at;
		uint32_t w = 1;

		snprintf(ep, sizeof(ep), "%s", argv[i]);
		at = strchr(ep, '@');
		if (at) {
			*at = '\0';
			w = (uint32_t)strtoul(at + 1, NULL, 10);
		}
		struct ipvs_dest d = dest(ep, w);
		r = ipvs_genl_apply_dest(h, IPVS_GENL_ADD, &s, &d);
		if (r < 0)
			return fprintf(stderr, "ipvs_smoke: add destination %s: %s\n", ep, strerror(-r)), 1;
	}
	return 0;
}

static int cmd_weight(int argc, char **argv)
{
	struct ipvs_service s;
	struct ipvs_dest d;
	uint16_t proto;
	int r;

	if (argc != 4 || parse_proto(argv[1], &proto) < 0)
		return fprintf(stderr, "usage: ipvs_smoke weight VIP:PORT PROTO RS:PORT WEIGHT\n"), 1;
	s = service(argv[0], proto, "rr");
	d = dest(argv[2], (uint32_t)strtoul(argv[3], NULL, 10));
	r = ipvs_genl_apply_dest(h, IPVS_GENL_EDIT, &s, &d);
	if (r < 0)
		return fprintf(stderr, "ipvs_smoke: weight %s: %s\n", argv[2], strerror(-r)), 1;
	return 0;
}

static int cmd_del(int argc, char **argv)
{
	struct ipvs_service s;
	uint16_t proto;
	int r;

	if (argc != 2 || parse_proto(argv[1], &proto) < 0)
		return fprintf(stderr, "usage: ipvs_smoke del VIP:PORT PROTO\n"), 1;
	s = service(argv[0], proto, "rr");
	r = ipvs_genl_apply_service(h, IPVS_GENL_DEL, &s);
	if (r < 0)
		return fprintf(stderr, "ipvs_smoke: del %s: %s\n", argv[0], strerror(-r)), 1;
	return 0;
}

static int show_dest(const struct ipvs_dest *d, void *ctx)
{
	char ep[INET_ENDPOINT_STRLEN];

	(void)ctx;
	printf("dest %s weight %u active %u inactive %u\n", inet_endpoint_format(&d->addr, d->port, ep),
	       d->weight, d->active_conns, d->inactive_conns);
	return 0;
}

static int show_service(const struct ipvs_service *s, void *ctx)
{
	char ep[INET_ENDPOINT_STRLEN];

	(void)ctx;
	if (s->fwmark)
		printf("service fwmark %#x %s\n", s->fwmark, s->sched_name);
	else
		printf("service %s %s %s\n", proto_name(s->protocol),
		       inet_endpoint_format(&s->addr, s->port, ep), s->sched_name);
	return ipvs_genl_dump_dests(h, s, show_dest, NULL);
}

int main(int argc, char **argv)
{
	int r;

	if (argc < 2)
		return fprintf(stderr, "usage: ipvs_smoke check|add|weight|del|show ...\n"), 1;
	r = ipvs_genl_open(&h);
	if (r == -ENOENT)
		return fprintf(stderr, "ipvs_smoke: this kernel has no IPVS\n"), 77;
	if (r < 0)
		return fprintf(stderr, "ipvs_smoke: open: %s\n", strerror(-r)), 1;

	if (strcmp(argv[1], "check") == 0)
		r = cmd_check();
	else if (strcmp(argv[1], "add") == 0)
		r = cmd_add(argc - 2, argv + 2);
	else if (strcmp(argv[1], "weight") == 0)
		r = cmd_weight(argc - 2, argv + 2);
	else if (strcmp(argv[1], "del") == 0)
		r = cmd_del(argc - 2, argv + 2);
	else if (strcmp(argv[1], "show") == 0)
		r = ipvs_genl_dump_services(h, show_service, NULL) < 0;
	else
		r = (fprintf(stderr, "ipvs_smoke: unknown command %s\n", argv[1]), 1);
	ipvs_genl_close(h);
	return r;
}
