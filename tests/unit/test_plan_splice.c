/* Incremental planning (planner_update, plan_splice.c) against whole
 * plans: after random sequences of model changes, the incrementally kept
 * plan must equal a plan built from scratch, entry by entry, and its diff
 * must lead exactly from the previous plan to the new one. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intern.h"
#include "kobj.h"
#include "model.h"
#include "planner.h"

/* ---- a small deterministic generator ---- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static void addr(struct inet_addr *a, const char *s)
{
	cr_assert_eq(inet_addr_parse(s, a), 0, "%s", s);
}

static const char *const NAMES[] = { "s0", "s1", "s1-x", "s2", "s3", "s4", "s5", "s6", "s7", "s8" };
static const char *const NSS[] = { "a", "b" };
#define N_NAMES (sizeof(NAMES) / sizeof(NAMES[0]))

static char *pick_addr(char *buf, size_t len, const char *fmt, uint32_t n)
{
	snprintf(buf, len, fmt, 1 + rnd(n));
	return buf;
}

static struct kobj_service *random_service(const char *ns, const char *name)
{
	struct kobj_service *svc = kobj_service_new();
	char buf[64];
	uint32_t t = rnd(10);

	svc->ns = strdup(ns);
	svc->name = strdup(name);
	svc->source = strdup("test");
	svc->type = t < 4 ? SVC_TYPE_CLUSTER_IP : t < 6 ? SVC_TYPE_NODE_PORT : t < 9 ? SVC_TYPE_LOAD_BALANCER
										  : SVC_TYPE_EXTERNAL_NAME;
	svc->headless = rnd(20) == 0;
	svc->n_cluster_ips = 1 + (rnd(4) == 0);
	svc->cluster_ips = calloc(2, sizeof(*svc->cluster_ips));
	/* Small pools: services collide on addresses and ports now and then. */
	addr(&svc->cluster_ips[0], pick_addr(buf, sizeof(buf), "10.0.0.%u", 40));
	if (svc->n_cluster_ips == 2)
		addr(&svc->cluster_ips[1], pick_addr(buf, sizeof(buf), "fd00::%u", 4));
	svc->n_ports = 1 + rnd(2);
	svc->ports = calloc(svc->n_ports, sizeof(*svc->ports));
	for (size_t i = 0; i < svc->n_ports; i++) {
		struct svc_port *p = &svc->ports[i];
		static const char *const pn[] = { "http", "dns", "" };
		kobj_port_name(pn[rnd(3)], &p->name);
		if (i == 1 && kobj_str_eq(p->name, svc->ports[0].name)) {
			intern_release(p->name);
			kobj_port_name("alt", &p->name);
		}
		p->proto = rnd(3) == 0 ? INET_PROTO_UDP : INET_PROTO_TCP;
		p->port = (uint16_t)(80 + rnd(3));
		p->target_port = (uint16_t)(8080 + rnd(2));
		if (svc->type != SVC_TYPE_CLUSTER_IP)
			p->node_port = (uint16_t)(30000 + rnd(12));
	}
	if (rnd(3) == 0) {
		svc->n_external_ips = 1;
		svc->external_ips = calloc(1, sizeof(*svc->external_ips));
		addr(&svc->external_ips[0], pick_addr(buf, sizeof(buf), "192.0.2.%u", 3));
	}
	if (svc->type == SVC_TYPE_LOAD_BALANCER && rnd(2)) {
		svc->n_lb_ips = 1;
		svc->lb_ips = calloc(1, sizeof(*svc->lb_ips));
		addr(&svc->lb_ips[0], pick_addr(buf, sizeof(buf), "198.51.100.%u", 3));
		if (rnd(2)) {
			svc->n_source_ranges = 1;
			svc->source_ranges = calloc(1, sizeof(*svc->source_ranges));
			cr_assert_eq(inet_prefix_parse(rnd(2) ? "203.0.113.0/24" : "10.9.0.0/16",
						       &svc->source_ranges[0]), 0);
		}
	}
	svc->external_policy = rnd(2) ? TRAFFIC_POLICY_LOCAL : TRAFFIC_POLICY_CLUSTER;
	svc->internal_policy = rnd(4) == 0 ? TRAFFIC_POLICY_LOCAL : TRAFFIC_POLICY_CLUSTER;
	if (svc->external_policy == TRAFFIC_POLICY_LOCAL && svc->type == SVC_TYPE_LOAD_BALANCER)
		svc->health_check_node_port = (uint16_t)(32000 + rnd(5));
	svc->affinity_client_ip = rnd(3) == 0;
	svc->affinity_timeout_s = svc->affinity_client_ip ? 60 + rnd(2) : 0;
	svc->balance = (enum balance_algo)rnd(4);
	return svc;
}

static struct kobj_slice *random_slice(const char *ns, const char *name, const char *svc_name)
{
	struct kobj_slice *sl = kobj_slice_new();
	char buf[64];
	static const char *const nodes[] = { "n1", "n2", NULL };
	static const char *const pn[] = { "http", "dns", "", "alt" };

	sl->ns = strdup(ns);
	sl->name = strdup(name);
	sl->source = strdup("test");
	sl->service_name = strdup(svc_name);
	sl->family = rnd(5) == 0 ? AF_INET6 : AF_INET;
	sl->n_ports = 1 + rnd(2);
	sl->ports = calloc(sl->n_ports, sizeof(*sl->ports));
	for (size_t i = 0; i < sl->n_ports; i++) {
		kobj_port_name(pn[(i + rnd(4)) % 4], &sl->ports[i].name);
		sl->ports[i].proto = rnd(3) == 0 ? INET_PROTO_UDP : INET_PROTO_TCP;
		sl->ports[i].port = (uint16_t)(8080 + rnd(2));
	}
	sl->n_endpoints = rnd(4);
	sl->endpoints = calloc(sl->n_endpoints + 1, sizeof(*sl->endpoints));
	for (size_t i = 0; i < sl->n_endpoints; i++) {
		struct kobj_endpoint *ep = &sl->endpoints[i];
		if (sl->family == AF_INET6)
			addr(&ep->addr, pick_addr(buf, sizeof(buf), "fd01::%u", 4));
		else
			addr(&ep->addr, pick_addr(buf, sizeof(buf), "10.1.0.%u", 6));
		ep->ready = rnd(4) != 0;
		ep->serving = ep->ready || rnd(2);
		ep->terminating = !ep->ready && rnd(2);
		if (nodes[rnd(3)])
			ep->node_name = strdup(nodes[rnd(2)]);
	}
	return sl;
}

static void random_change(struct model *m)
{
	const char *ns = NSS[rnd(2)], *name = NAMES[rnd(N_NAMES)];
	char sname[64];

	if (getenv("SPLICE_DEBUG"))
		fprintf(stderr, "change %s/%s\n", ns, name);

	switch (rnd(10)) {
	case 0:
	case 1:
		cr_assert_eq(model_upsert_service(m, random_service(ns, name)), 0);
		break;
	case 2:
		model_delete_service(m, ns, name);
		break;
	case 3:
		snprintf(sname, sizeof(sname), "%s-%c", name, 'a' + (char)rnd(2));
		model_delete_slice(m, ns, sname);
		break;
	case 4: {
		/* A slice that moves to another service. */
		snprintf(sname, sizeof(sname), "%s-%c", name, 'a' + (char)rnd(2));
		cr_assert_eq(model_upsert_slice(m, random_slice(ns, sname, NAMES[rnd(N_NAMES)])), 0);
		break;
	}
	case 5:
		if (rnd(6) == 0) { /* this node: everything is replanned */
			struct kobj_node *node = kobj_node_new();
			node->name = strdup("n1");
			node->n_addrs = 1;
			node->addrs = calloc(1, sizeof(*node->addrs));
			addr(&node->addrs[0], rnd(2) ? "10.9.0.1" : "10.8.0.1");
			model_set_node(m, node);
			break;
		}
		/* fall through */
	default:
		snprintf(sname, sizeof(sname), "%s-%c", name, 'a' + (char)rnd(2));
		cr_assert_eq(model_upsert_slice(m, random_slice(ns, sname, name)), 0);
		break;
	}
}

/* ---- plan entries as text ---- */

static char *fe_text(const struct plan_frontend *fe)
{
	char a[INET_ADDR_STRLEN], *s = NULL;
	size_t len;
	FILE *f = open_memstream(&s, &len);

	fprintf(f, "%d %s %s %u -> %s masq=%d empty=%d sc=%s ranges=", fe->kind, inet_addr_format(&fe->addr, a),
		inet_proto_name(fe->proto), fe->port, fe->epset->key, fe->masquerade, fe->when_empty,
		fe->short_circuit ? fe->short_circuit->key : "-");
	for (size_t i = 0; i < fe->n_source_ranges; i++)
		fprintf(f, "%s/%u,", inet_addr_format(&fe->source_ranges[i].addr, a), fe->source_ranges[i].len);
	fclose(f);
	return s;
}

static char *eps_text(const struct plan_epset *e)
{
	char a[INET_ADDR_STRLEN], *s = NULL;
	size_t len;
	FILE *f = open_memstream(&s, &len);

	fprintf(f, "%s ns=%s name=%s port=%s proto=%d aff=%d/%u bal=%d hc=%d:", e->key, e->ns, e->svc_name,
		e->port_name, e->proto, e->affinity, e->affinity_timeout_s, e->balance, e->health.enabled);
	for (size_t i = 0; i < e->n_endpoints; i++)
		fprintf(f, " %s:%u/%d%d%d", inet_addr_format(&e->endpoints[i].addr, a), e->endpoints[i].port,
			e->endpoints[i].terminating, e->endpoints[i].local, e->endpoints[i].node_unknown);
	fclose(f);
	return s;
}

/* The whole plan as text, one line per entry. */
static char *plan_text(const struct plan *p)
{
	char a[INET_ADDR_STRLEN], *s = NULL;
	size_t len;
	FILE *f = open_memstream(&s, &len);

	for (size_t i = 0; i < p->n_frontends; i++) {
		char *t = fe_text(&p->frontends[i]);
		cr_assert(p->frontends[i].epset >= p->epsets && p->frontends[i].epset < p->epsets + p->n_epsets,
			  "frontend %s points outside the plan's sets", t);
		fprintf(f, "F %s\n", t);
		free(t);
	}
	for (size_t i = 0; i < p->n_epsets; i++) {
		char *t = eps_text(&p->epsets[i]);
		fprintf(f, "E %s\n", t);
		free(t);
	}
	for (size_t i = 0; i < p->n_health_checks; i++)
		fprintf(f, "H %u %s/%s %zu\n", p->health_checks[i].port, p->health_checks[i].ns,
			p->health_checks[i].svc_name, p->health_checks[i].local_endpoints);
	for (size_t i = 0; i < p->n_cluster_ips; i++)
		fprintf(f, "C %s\n", inet_addr_format(&p->cluster_ips[i], a));
	fclose(f);
	return s;
}

/* ---- the diff, checked against text snapshots ---- */

struct snap {
	char **fe_keys, **fe_texts; /* frontend key text ("kind addr proto port") and full text */
	size_t n_fes;
	char **eps_keys, **eps_texts;
	size_t n_eps;
};

static char *fe_key(const struct plan_frontend *fe)
{
	char a[INET_ADDR_STRLEN], *s = NULL;

	cr_assert(asprintf(&s, "%d %s %d %u", fe->kind, inet_addr_format(&fe->addr, a), fe->proto, fe->port) > 0);
	return s;
}

static void snap_take(struct snap *sn, const struct plan *p)
{
	memset(sn, 0, sizeof(*sn));
	sn->n_fes = p->n_frontends;
	sn->fe_keys = calloc(p->n_frontends + 1, sizeof(char *));
	sn->fe_texts = calloc(p->n_frontends + 1, sizeof(char *));
	for (size_t i = 0; i < p->n_frontends; i++) {
		sn->fe_keys[i] = fe_key(&p->frontends[i]);
		sn->fe_texts[i] = fe_text(&p->frontends[i]);
	}
	sn->n_eps = p->n_epsets;
	sn->eps_keys = calloc(p->n_epsets + 1, sizeof(char *));
	sn->eps_texts = calloc(p->n_epsets + 1, sizeof(char *));
	for (size_t i = 0; i < p->n_epsets; i++) {
		sn->eps_keys[i] = strdup(p->epsets[i].key);
		sn->eps_texts[i] = eps_text(&p->epsets[i]);
	}
}

static void snap_done(struct snap *sn)
{
	for (size_t i = 0; i < sn->n_fes; i++) {
		free(sn->fe_keys[i]);
		free(sn->fe_texts[i]);
	}
	for (size_t i = 0; i < sn->n_eps; i++) {
		free(sn->eps_keys[i]);
		free(sn->eps_texts[i]);
	}
	free(sn->fe_keys);
	free(sn->fe_texts);
	free(sn->eps_keys);
	free(sn->eps_texts);
}

static const char *lookup(char **keys, char **texts, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i], key) == 0)
			return texts[i];
	return NULL;
}

static bool listed(const void *const *arr, size_t n, const void *x)
{
	for (size_t i = 0; i < n; i++)
		if (arr[i] == x)
			return true;
	return false;
}

/* Does d lead from the plan of snapshot old to plan? Every entry that
 * differs is in exactly the right list, and nothing else is listed. */
static void check_diff(const struct snap *old, const struct plan *plan, const struct plan_diff *d, int step)
{
	struct snap now;
	size_t n_removed = 0;

	snap_take(&now, plan);
	for (size_t i = 0; i < now.n_eps; i++) {
		const char *was = lookup(old->eps_keys, old->eps_texts, old->n_eps, now.eps_keys[i]);
		const struct plan_epset *e = &plan->epsets[i];
		bool added = listed((const void *const *)d->eps_added, d->n_eps_added, e);
		bool changed = listed((const void *const *)d->eps_changed, d->n_eps_changed, e);

		cr_assert_eq(added, was == NULL, "step %d: set %s added=%d but was %s", step, e->key, added,
			     was ? was : "absent");
		cr_assert_eq(changed, was && strcmp(was, now.eps_texts[i]) != 0,
			     "step %d: set %s changed=%d\n was %s\n now %s", step, e->key, changed, was ? was : "-",
			     now.eps_texts[i]);
	}
	for (size_t i = 0; i < old->n_eps; i++)
		if (!lookup(now.eps_keys, now.eps_texts, now.n_eps, old->eps_keys[i]))
			n_removed++;
	cr_assert_eq(d->n_eps_removed, n_removed, "step %d: %zu sets removed, diff says %zu", step, n_removed,
		     d->n_eps_removed);
	for (size_t i = 0; i < d->n_eps_removed; i++)
		cr_assert_null(lookup(now.eps_keys, now.eps_texts, now.n_eps, d->eps_removed[i]->key),
			       "step %d: removed set %s is still there", step, d->eps_removed[i]->key);
	n_removed = 0;
	for (size_t i = 0; i < now.n_fes; i++) {
		const char *was = lookup(old->fe_keys, old->fe_texts, old->n_fes, now.fe_keys[i]);
		const struct plan_frontend *fe = &plan->frontends[i];
		bool added = listed((const void *const *)d->fe_added, d->n_fe_added, fe);
		bool changed = listed((const void *const *)d->fe_changed, d->n_fe_changed, fe);
		bool touched = listed((const void *const *)d->fe_touched, d->n_fe_touched, fe);
		bool sets_changed = listed((const void *const *)d->eps_changed, d->n_eps_changed, fe->epset) ||
				    (fe->short_circuit && listed((const void *const *)d->eps_changed,
								 d->n_eps_changed, fe->short_circuit));

		cr_assert_eq(added, was == NULL, "step %d: frontend %s added=%d", step, now.fe_texts[i], added);
		cr_assert_eq(changed, was && strcmp(was, now.fe_texts[i]) != 0,
			     "step %d: frontend changed=%d\n was %s\n now %s", step, changed, was ? was : "-",
			     now.fe_texts[i]);
		cr_assert_eq(touched, !added && !changed && sets_changed, "step %d: frontend %s touched=%d",
			     step, now.fe_texts[i], touched);
	}
	for (size_t i = 0; i < old->n_fes; i++)
		if (!lookup(now.fe_keys, now.fe_texts, now.n_fes, old->fe_keys[i]))
			n_removed++;
	cr_assert_eq(d->n_fe_removed, n_removed, "step %d: %zu frontends removed, diff says %zu", step, n_removed,
		     d->n_fe_removed);
	for (size_t i = 0; i < d->n_fe_removed; i++) {
		char *k = fe_key(d->fe_removed[i]);
		cr_assert(lookup(old->fe_keys, old->fe_texts, old->n_fes, k), "step %d: removed %s was not there",
			  step, k);
		cr_assert_null(lookup(now.fe_keys, now.fe_texts, now.n_fes, k), "step %d: removed %s is still there",
			       step, k);
		/* What a backend reads of a removed frontend must be alive. */
		cr_assert(strlen(d->fe_removed[i]->epset->key) > 0);
		free(k);
	}
	snap_done(&now);
}

/* ---- tests ---- */

static void run_sequence(uint64_t seed, int steps, uint64_t *ret_spliced, uint64_t *ret_whole)
{
	struct planner_config cfg = { .node_name = "n1" };
	struct planner *inc = planner_new(&cfg);
	struct model *m = model_new();
	const struct plan *plan;
	const struct plan_diff *diff;
	struct snap old;
	uint64_t whole, spliced;

	rng_state = seed;
	cr_assert(inc && m);
	for (int i = 0; i < 30; i++)
		random_change(m);
	cr_assert_eq(planner_run(inc, m, &plan, &diff), 0);
	snap_take(&old, plan);
	for (int step = 0; step < steps; step++) {
		struct planner *fresh = planner_new(&cfg);
		const struct plan *want;
		char *got_text, *want_text;
		int changes = 1 + (int)rnd(rnd(8) == 0 ? 12 : 3);

		if (getenv("SPLICE_DEBUG")) {
			char *t = plan_text(plan);
			fprintf(stderr, "step %d plan:\n%s", step, t);
			free(t);
		}
		for (int c = 0; c < changes; c++)
			random_change(m);
		cr_assert_eq(planner_update(inc, m, &plan, &diff), 0);
		cr_assert_eq(planner_run(fresh, m, &want, NULL), 0);
		got_text = plan_text(plan);
		want_text = plan_text(want);
		if (strcmp(got_text, want_text) != 0) {
			/* Leave both for a diff. */
			FILE *f = fopen("plan_splice_got.txt", "w");
			if (f) {
				fputs(got_text, f);
				fclose(f);
			}
			f = fopen("plan_splice_want.txt", "w");
			if (f) {
				fputs(want_text, f);
				fclose(f);
			}
		}
		cr_assert_str_eq(got_text, want_text, "seed %llu step %d: the incremental plan differs",
				 (unsigned long long)seed, step);
		check_diff(&old, plan, diff, step);
		snap_done(&old);
		snap_take(&old, plan);
		free(got_text);
		free(want_text);
		planner_free(fresh);
	}
	snap_done(&old);
	planner_counts(inc, &whole, &spliced);
	*ret_spliced = spliced;
	*ret_whole = whole;
	planner_free(inc);
	model_free(m);
}

Test(plan_splice, random_sequences_equal_whole_plans)
{
	uint64_t spliced_total = 0, whole_total = 0;
	/* SPLICE_SEEDS=N runs more sequences by hand (same checks). */
	uint64_t seeds = getenv("SPLICE_SEEDS") ? strtoull(getenv("SPLICE_SEEDS"), NULL, 10) : 40;

	for (uint64_t seed = 1; seed <= seeds; seed++) {
		uint64_t spliced, whole;
		run_sequence(seed * 0x9e3779b97f4a7c15ull, 60, &spliced, &whole);
		spliced_total += spliced;
		whole_total += whole;
	}
	/* Both paths ran: most updates were splices, and the shared claims
	 * and node changes sent some to whole plans. */
	cr_log_info("incremental updates %llu, whole plans %llu", (unsigned long long)spliced_total,
		    (unsigned long long)whole_total);
	cr_assert_gt(spliced_total, seeds * 60 / 2);
	cr_assert_gt(whole_total, seeds * 2);
}

/* An endpoint change in a big plan is spliced in place: the same arrays,
 * one set changed, its frontends touched, nothing replanned whole. */
Test(plan_splice, endpoint_change_is_in_place)
{
	struct planner *p = planner_new(NULL);
	struct model *m = model_new();
	const struct plan *plan;
	const struct plan_diff *diff;
	const struct plan_frontend *fes_before;
	uint64_t whole, spliced;
	char buf[64];

	for (int i = 0; i < 2000; i++) {
		struct kobj_service *svc = kobj_service_new();
		struct kobj_slice *sl = kobj_slice_new();
		char name[32];

		snprintf(name, sizeof(name), "svc%d", i);
		svc->ns = strdup("default");
		svc->name = strdup(name);
		svc->n_cluster_ips = 1;
		svc->cluster_ips = calloc(1, sizeof(*svc->cluster_ips));
		snprintf(buf, sizeof(buf), "10.96.%d.%d", i / 250, 1 + i % 250);
		addr(&svc->cluster_ips[0], buf);
		svc->n_ports = 1;
		svc->ports = calloc(1, sizeof(*svc->ports));
		svc->ports[0].proto = INET_PROTO_TCP;
		svc->ports[0].port = 80;
		svc->ports[0].target_port = 8080;
		cr_assert_eq(model_upsert_service(m, svc), 0);
		sl->ns = strdup("default");
		sl->name = strdup(name);
		sl->service_name = strdup(name);
		sl->family = AF_INET;
		sl->n_endpoints = 1;
		sl->endpoints = calloc(1, sizeof(*sl->endpoints));
		addr(&sl->endpoints[0].addr, "10.1.0.1");
		sl->endpoints[0].ready = sl->endpoints[0].serving = true;
		cr_assert_eq(model_upsert_slice(m, sl), 0);
	}
	cr_assert_eq(planner_update(p, m, &plan, &diff), 0);
	cr_assert_eq(plan->n_frontends, 2000);
	fes_before = plan->frontends;
	{
		struct kobj_slice *sl = kobj_slice_new();
		sl->ns = strdup("default");
		sl->name = strdup("svc1234");
		sl->service_name = strdup("svc1234");
		sl->family = AF_INET;
		sl->n_endpoints = 2;
		sl->endpoints = calloc(2, sizeof(*sl->endpoints));
		addr(&sl->endpoints[0].addr, "10.1.0.1");
		addr(&sl->endpoints[1].addr, "10.1.0.2");
		for (int i = 0; i < 2; i++)
			sl->endpoints[i].ready = sl->endpoints[i].serving = true;
		cr_assert_eq(model_upsert_slice(m, sl), 0);
	}
	cr_assert_eq(planner_update(p, m, &plan, &diff), 0);
	planner_counts(p, &whole, &spliced);
	cr_assert_eq(whole, 1);
	cr_assert_eq(spliced, 1);
	cr_assert_eq(plan->frontends, fes_before, "an endpoint change rebuilt the frontend array");
	cr_assert_eq(diff->n_eps_changed, 1);
	cr_assert_str_eq(diff->eps_changed[0]->key, "default/svc1234:80/TCP");
	cr_assert_eq(diff->eps_changed[0]->n_endpoints, 2);
	cr_assert_eq(diff->n_fe_touched, 1);
	cr_assert_eq(diff->fe_touched[0]->epset, diff->eps_changed[0]);
	cr_assert_eq(diff->n_fe_added + diff->n_fe_removed + diff->n_fe_changed + diff->n_eps_added +
			     diff->n_eps_removed, 0);
	/* A service deleted: the arrays are rebuilt without it. */
	model_delete_service(m, "default", "svc7");
	cr_assert_eq(planner_update(p, m, &plan, &diff), 0);
	cr_assert_eq(plan->n_frontends, 1999);
	cr_assert_eq(diff->n_fe_removed, 1);
	cr_assert_eq(diff->n_eps_removed, 1);
	cr_assert_str_eq(diff->eps_removed[0]->key, "default/svc7:80/TCP");
	cr_assert(diff->guards_changed, "the cluster IP left the guard list");
	planner_counts(p, &whole, &spliced);
	cr_assert_eq(whole, 1);
	planner_free(p);
	model_free(m);
}
