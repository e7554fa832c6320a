/* Allocation and release of model objects. */
#include "kobj.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "intern.h"

void kobj_health_defaults(struct health_check_cfg *ret)
{
	ret->enabled = false;
	ret->interval_ms = 2000;
	ret->timeout_ms = 1000;
	ret->rise = 2;
	ret->fall = 3;
}

struct kobj_service *kobj_service_new(void)
{
	struct kobj_service *svc = calloc(1, sizeof(*svc));

	if (!svc)
		return NULL;
	svc->type = SVC_TYPE_CLUSTER_IP;
	svc->affinity_timeout_s = KOBJ_AFFINITY_TIMEOUT_DEFAULT_S;
	svc->external_policy = TRAFFIC_POLICY_CLUSTER;
	svc->internal_policy = TRAFFIC_POLICY_CLUSTER;
	svc->balance = BALANCE_ROUND_ROBIN;
	kobj_health_defaults(&svc->health);
	return svc;
}

struct kobj_service *kobj_service_free(struct kobj_service *svc)
{
	if (!svc)
		return NULL;
	if (svc->interned) {
		intern_release(svc->ns);
		intern_release(svc->source);
	} else {
		free(svc->ns);
		free(svc->source);
	}
	for (size_t i = 0; i < svc->n_ports; i++) {
		intern_release(svc->ports[i].name);
		intern_release(svc->ports[i].target_port_name);
	}
	free(svc->name);
	free(svc->proxy_name);
	free(svc->cluster_ips);
	free(svc->external_ips);
	free(svc->lb_ips);
	free(svc->source_ranges);
	free(svc->ports);
	free(svc);
	return NULL;
}

struct kobj_slice *kobj_slice_new(void)
{
	return calloc(1, sizeof(struct kobj_slice));
}

static void free_const(const char *p)
{
	free((void *)p);
}

struct kobj_slice *kobj_slice_free(struct kobj_slice *slice)
{
	if (!slice)
		return NULL;
	void (*release)(const char *) = slice->interned ? intern_release : free_const;

	for (size_t i = 0; i < slice->n_endpoints; i++) {
		struct kobj_endpoint *ep = &slice->endpoints[i];
		release(ep->node_name);
		for (size_t j = 0; j < ep->n_hint_zones; j++)
			free(ep->hint_zones[j]);
		free(ep->hint_zones);
	}
	free(slice->endpoints);
	for (size_t i = 0; i < slice->n_ports; i++)
		intern_release(slice->ports[i].name);
	free(slice->ports);
	release(slice->ns);
	free(slice->name);
	release(slice->source);
	release(slice->service_name);
	free(slice);
	return NULL;
}

/* The strings of one object to share: where each lives, and its copy. */
struct intern_job {
	char **fields[8];
	size_t n;
	char ***many;  /* further fields, for the endpoints */
	size_t n_many, cap_many;
};

static int job_add(struct intern_job *j, char **field)
{
	if (!*field)
		return 0;
	if (j->n < sizeof(j->fields) / sizeof(j->fields[0])) {
		j->fields[j->n++] = field;
		return 0;
	}
	if (j->n_many == j->cap_many) {
		size_t cap = j->cap_many ? j->cap_many * 2 : 32;
		char ***m = realloc(j->many, cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		j->many = m;
		j->cap_many = cap;
	}
	j->many[j->n_many++] = field;
	return 0;
}

static char **job_field(const struct intern_job *j, size_t i)
{
	return i < j->n ? j->fields[i] : j->many[i - j->n];
}

/* Share every field of j, or none. */
static int job_run(struct intern_job *j)
{
	size_t total = j->n + j->n_many, done;
	const char **copies = malloc((total + 1) * sizeof(*copies));

	if (!copies) {
		free(j->many);
		return -ENOMEM;
	}
	for (done = 0; done < total; done++)
		if (!(copies[done] = intern(*job_field(j, done))))
			break;
	if (done < total) {
		while (done--)
			intern_release(copies[done]);
		free(copies);
		free(j->many);
		return -ENOMEM;
	}
	for (size_t i = 0; i < total; i++) {
		char **field = job_field(j, i);
		free(*field);
		*field = (char *)copies[i]; /* shared: never written through */
	}
	free(copies);
	free(j->many);
	return 0;
}

int kobj_service_intern(struct kobj_service *svc)
{
	struct intern_job j = { .n = 0 };

	if (svc->interned)
		return 0;
	job_add(&j, &svc->ns);
	job_add(&j, &svc->source);
	if (job_run(&j) < 0)
		return -ENOMEM;
	svc->interned = true;
	return 0;
}

int kobj_slice_intern(struct kobj_slice *slice)
{
	struct intern_job j = { .n = 0 };

	if (slice->interned)
		return 0;
	job_add(&j, &slice->ns);
	job_add(&j, &slice->source);
	job_add(&j, &slice->service_name);
	for (size_t i = 0; i < slice->n_endpoints; i++) {
		if (job_add(&j, &slice->endpoints[i].node_name) < 0) {
			free(j.many);
			return -ENOMEM;
		}
	}
	if (job_run(&j) < 0)
		return -ENOMEM;
	slice->interned = true;
	return 0;
}

struct kobj_node *kobj_node_new(void)
{
	return calloc(1, sizeof(struct kobj_node));
}

struct kobj_node *kobj_node_free(struct kobj_node *node)
{
	if (!node)
		return NULL;
	free(node->name);
	free(node->zone);
	free(node->addrs);
	free(node);
	return NULL;
}

/* Annotation names, indexed by enum balance_algo. */
static const char *const balance_names[] = {
	[BALANCE_ROUND_ROBIN] = "round-robin",
	[BALANCE_LEAST_CONN] = "least-conn",
	[BALANCE_RANDOM_TWO] = "random-two",
	[BALANCE_MAGLEV] = "maglev",
};

const char *balance_algo_name(enum balance_algo algo)
{
	if ((size_t)algo >= sizeof(balance_names) / sizeof(balance_names[0]) || !balance_names[algo])
		return "?";
	return balance_names[algo];
}

int balance_algo_parse(const char *name, enum balance_algo *ret)
{
	for (size_t i = 0; i < sizeof(balance_names) / sizeof(balance_names[0]); i++)
		if (balance_names[i] && strcmp(name, balance_names[i]) == 0) {
			*ret = (enum balance_algo)i;
			return 0;
		}
	return -EINVAL;
}

const char *balance_algo_names(void)
{
	return "round-robin, least-conn, random-two, maglev";
}

int kobj_port_name(const char *s, const char **ret)
{
	*ret = NULL;
	if (!s || !*s)
		return 0;
	*ret = intern(s);
	return *ret ? 0 : -ENOMEM;
}

bool kobj_str_eq(const char *a, const char *b)
{
	/* Shared copies of equal names are one pointer; a hand-made object
	 * (a test) may still hold its own copy. */
	return a == b || (a && b && strcmp(a, b) == 0);
}
