/* planner_bench: the control path's planner at N services, in process.
 *
 *   planner_bench N [EPS] [ROUNDS] [NODES]
 *
 * Builds a model of N ClusterIP services (one TCP port each) with EPS
 * endpoints each (default 10; nodeName node-0..NODES-1 round-robin, 100 by
 * default, 0 for none: nft_scale.sh's two layouts), plans it whole once, then
 * makes ROUNDS (default 200) single-endpoint changes to random services
 * and times planner_update for each (what ferry run does since issue 12:
 * replan the touched service and splice it in), then up to 20 more changes
 * with planner_run (the whole replan every change cost before), in the
 * same run. Also reports the heap bytes (mallinfo2) the model
 * and the plan hold, per endpoint. One line per measure:
 *
 *   planner N=100000 eps=10: whole plan 812.3 ms
 *   planner N=100000 eps=10: one endpoint change, update p50 0.004 ms p99 0.010 ms; whole replan p50 ... max ...
 *   planner N=100000 eps=10: heap model 101.2 MB (106 B/endpoint), plan 28.0 MB (29 B/endpoint)
 */
#include <arpa/inet.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "intern.h"
#include "kobj.h"
#include "log.h"
#include "model.h"
#include "planner.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static struct kobj_service *service(int i)
{
	struct kobj_service *svc = kobj_service_new();
	char name[32];

	snprintf(name, sizeof(name), "svc-%d", i);
	svc->ns = strdup("default");
	svc->name = strdup(name);
	svc->source = strdup("bench");
	svc->n_cluster_ips = 1;
	svc->cluster_ips = calloc(1, sizeof(*svc->cluster_ips));
	svc->cluster_ips[0].family = AF_INET;
	svc->cluster_ips[0].u.v4.s_addr = htonl(0x0a600000u + (uint32_t)i + 1); /* 10.96.0.0/12 */
	svc->n_ports = 1;
	svc->ports = calloc(1, sizeof(*svc->ports));
	svc->ports[0].name = intern("http");
	svc->ports[0].proto = INET_PROTO_TCP;
	svc->ports[0].port = 80;
	svc->ports[0].target_port = 8080;
	return svc;
}

/* Service i's slice; shift moves one endpoint's address (a change). */
static struct kobj_slice *slice(int i, int eps, int nodes, uint32_t shift)
{
	struct kobj_slice *sl = kobj_slice_new();
	char name[40];

	snprintf(name, sizeof(name), "svc-%d-abcde", i);
	sl->ns = strdup("default");
	sl->name = strdup(name);
	sl->source = strdup("bench");
	snprintf(name, sizeof(name), "svc-%d", i);
	sl->service_name = strdup(name);
	sl->family = AF_INET;
	sl->n_ports = 1;
	sl->ports = calloc(1, sizeof(*sl->ports));
	sl->ports[0].name = intern("http");
	sl->ports[0].proto = INET_PROTO_TCP;
	sl->ports[0].port = 8080;
	sl->n_endpoints = (size_t)eps;
	sl->endpoints = calloc((size_t)eps, sizeof(*sl->endpoints));
	for (int e = 0; e < eps; e++) {
		struct kobj_endpoint *ep = &sl->endpoints[e];
		uint32_t a = 0x0b000000u + (uint32_t)i * (uint32_t)eps + (uint32_t)e + (e == 0 ? shift : 0);

		ep->addr.family = AF_INET;
		ep->addr.u.v4.s_addr = htonl(a);
		ep->ready = ep->serving = true;
		if (nodes > 0) {
			char node[32];
			snprintf(node, sizeof(node), "node-%d", (i * eps + e) % nodes);
			ep->node_name = strdup(node);
		}
	}
	return sl;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	int eps = argc > 2 ? atoi(argv[2]) : 10;
	int rounds = argc > 3 ? atoi(argv[3]) : 200;
	int nodes = argc > 4 ? atoi(argv[4]) : 100;
	int n_whole = rounds < 20 ? rounds : 20;
	struct planner_config cfg = { .node_name = "node-0" };
	double *upd = calloc((size_t)rounds, sizeof(double)), *whole = calloc((size_t)rounds, sizeof(double));
	struct planner *inc, *ref;
	struct model *m;
	const struct plan *plan;
	size_t h0, h1, h2, endpoints;
	double t0;

	if (n <= 0 || eps <= 0 || rounds <= 0 || !upd || !whole) {
		fprintf(stderr, "usage: %s N [EPS] [ROUNDS] [NODES]\n", argv[0]);
		return 2;
	}
	log_set_level(LOG_LEVEL_WARN);
	srand(1);
	h0 = heap_bytes();
	m = model_new();
	for (int i = 0; i < n; i++)
		if (model_upsert_service(m, service(i)) < 0 || model_upsert_slice(m, slice(i, eps, nodes, 0)) < 0)
			return 1;
	h1 = heap_bytes();
	inc = planner_new(&cfg);
	ref = planner_new(&cfg);
	t0 = now_ms();
	if (!inc || !ref || planner_update(inc, m, &plan, NULL) < 0)
		return 1;
	planner_release_previous(inc);
	printf("planner N=%d eps=%d: whole plan %.1f ms\n", n, eps, now_ms() - t0);
	h2 = heap_bytes();
	endpoints = (size_t)n * (size_t)eps;
	printf("planner N=%d eps=%d: heap model %.1f MB (%.0f B/endpoint), plan %.1f MB (%.0f B/endpoint)\n", n,
	       eps, (double)(h1 - h0) / 1048576.0, (double)(h1 - h0) / (double)endpoints,
	       (double)(h2 - h1) / 1048576.0, (double)(h2 - h1) / (double)endpoints);
	/* The updates first, then the whole replans (fewer: each costs the
	 * whole plan), so that neither evicts the other's memory from the
	 * caches between two changes. */
	for (int r = 0; r < rounds; r++) {
		int i = rand() % n;

		if (model_upsert_slice(m, slice(i, eps, nodes, (uint32_t)(r + 1) * 0x100000u)) < 0)
			return 1;
		t0 = now_ms();
		if (planner_update(inc, m, NULL, NULL) < 0)
			return 1;
		planner_release_previous(inc); /* as the sync runner does after a sync */
		upd[r] = now_ms() - t0;
	}
	if (planner_run(ref, m, NULL, NULL) < 0)
		return 1;
	for (int r = 0; r < n_whole; r++) {
		int i = rand() % n;

		if (model_upsert_slice(m, slice(i, eps, nodes, (uint32_t)(r + 1) * 0x1000000u)) < 0)
			return 1;
		t0 = now_ms();
		if (planner_run(ref, m, NULL, NULL) < 0)
			return 1;
		planner_release_previous(ref);
		whole[r] = now_ms() - t0;
	}
	qsort(upd, (size_t)rounds, sizeof(double), cmp_d);
	qsort(whole, (size_t)n_whole, sizeof(double), cmp_d);
	printf("planner N=%d eps=%d: one endpoint change, update p50 %.4f ms p99 %.4f ms; "
	       "whole replan p50 %.2f ms max %.2f ms (%d and %d changes)\n",
	       n, eps, upd[rounds / 2], upd[(rounds * 99) / 100], whole[n_whole / 2], whole[n_whole - 1],
	       rounds, n_whole);
	{
		uint64_t w, s;
		planner_counts(inc, &w, &s);
		if (w != 1 || s != (uint64_t)rounds) {
			fprintf(stderr, "planner_bench: expected 1 whole plan and %d updates, got %llu and %llu\n",
				rounds, (unsigned long long)w, (unsigned long long)s);
			return 1;
		}
	}
	planner_free(inc);
	planner_free(ref);
	model_free(m);
	free(upd);
	free(whole);
	return 0;
}
