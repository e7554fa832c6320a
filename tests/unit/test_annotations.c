/* The annotation warner (proxy/program/annotations.c): warned once per
 * service while it asks, also when it comes in an incremental update
 * (diff mode looks at the added and changed sets only). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "annotations.h"
#include "kobj.h"
#include "model.h"
#include "planner.h"

static const struct backend_ops no_balancing = { .name = "plain" };

static struct kobj_service *svc_with_balance(const char *name, const char *ip, enum balance_algo algo)
{
	struct kobj_service *svc = kobj_service_new();

	svc->ns = strdup("default");
	svc->name = strdup(name);
	svc->n_cluster_ips = 1;
	svc->cluster_ips = calloc(1, sizeof(*svc->cluster_ips));
	cr_assert_eq(inet_addr_parse(ip, &svc->cluster_ips[0]), 0);
	svc->n_ports = 1;
	svc->ports = calloc(1, sizeof(*svc->ports));
	svc->ports[0].proto = INET_PROTO_TCP;
	svc->ports[0].port = 80;
	svc->balance = algo;
	return svc;
}

/* Run fn with stderr going to a file; return what it wrote. */
static char *stderr_of(size_t (*fn)(void *), void *arg, size_t *ret)
{
	char path[] = "/tmp/ferry-annotations-XXXXXX", *text = calloc(1, 8192);
	int fd = mkstemp(path), saved = dup(2);

	cr_assert(fd >= 0 && saved >= 0 && text);
	fflush(stderr);
	dup2(fd, 2);
	*ret = fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	cr_assert(pread(fd, text, 8191, 0) >= 0);
	close(fd);
	unlink(path);
	return text;
}

struct call {
	struct annotation_warner *w;
	const struct plan *plan;
	const struct plan_diff *diff;
};

static size_t check(void *arg)
{
	struct call *c = arg;

	return annotation_warner_check(c->w, c->plan, c->diff);
}

static size_t count(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

Test(annotations, warned_once_also_after_an_update)
{
	struct model *m = model_new();
	struct planner *p = planner_new(NULL);
	struct call c = { .w = annotation_warner_new(&no_balancing) };
	size_t services;
	char *out;

	cr_assert_eq(model_upsert_service(m, svc_with_balance("a", "10.96.0.1", BALANCE_MAGLEV)), 0);
	cr_assert_eq(model_upsert_service(m, svc_with_balance("plain", "10.96.0.9", BALANCE_ROUND_ROBIN)), 0);
	cr_assert_eq(planner_run(p, m, &c.plan, NULL), 0);
	out = stderr_of(check, &c, &services);
	cr_assert_eq(services, 1);
	cr_assert_eq(count(out, "service default/a: ferry.io/balance: maglev is not honoured"), 1, "%s", out);
	free(out);

	/* A new service in an update: warned; the first one not again. */
	cr_assert_eq(model_upsert_service(m, svc_with_balance("b", "10.96.0.2", BALANCE_LEAST_CONN)), 0);
	cr_assert_eq(planner_update(p, m, &c.plan, &c.diff), 0);
	cr_assert_eq(c.diff->n_eps_added, 1);
	out = stderr_of(check, &c, &services);
	cr_assert_eq(services, 2);
	cr_assert_eq(count(out, "service default/b: ferry.io/balance: least-conn is not honoured"), 1, "%s", out);
	cr_assert_eq(count(out, "default/a"), 0, "%s", out);
	free(out);

	/* Its endpoints change (a changed set): no repeat. */
	{
		struct kobj_slice *sl = kobj_slice_new();
		sl->ns = strdup("default");
		sl->name = strdup("b-1");
		sl->service_name = strdup("b");
		sl->family = AF_INET;
		sl->n_endpoints = 1;
		sl->endpoints = calloc(1, sizeof(*sl->endpoints));
		cr_assert_eq(inet_addr_parse("10.1.0.1", &sl->endpoints[0].addr), 0);
		sl->endpoints[0].ready = sl->endpoints[0].serving = true;
		cr_assert_eq(model_upsert_slice(m, sl), 0);
	}
	cr_assert_eq(planner_update(p, m, &c.plan, &c.diff), 0);
	cr_assert_eq(c.diff->n_eps_changed, 1);
	out = stderr_of(check, &c, &services);
	cr_assert_eq(count(out, "not honoured"), 0, "%s", out);
	free(out);

	/* A whole pass forgets a service that stopped asking; asking again
	 * warns again. */
	cr_assert_eq(model_upsert_service(m, svc_with_balance("a", "10.96.0.1", BALANCE_ROUND_ROBIN)), 0);
	cr_assert_eq(planner_run(p, m, &c.plan, NULL), 0);
	c.diff = NULL;
	out = stderr_of(check, &c, &services);
	cr_assert_eq(services, 1);
	free(out);
	cr_assert_eq(model_upsert_service(m, svc_with_balance("a", "10.96.0.1", BALANCE_MAGLEV)), 0);
	cr_assert_eq(planner_update(p, m, &c.plan, &c.diff), 0);
	out = stderr_of(check, &c, &services);
	cr_assert_eq(services, 2);
	cr_assert_eq(count(out, "service default/a: ferry.io/balance: maglev"), 1, "%s", out);
	free(out);

	annotation_warner_free(c.w);
	planner_free(p);
	model_free(m);
}
