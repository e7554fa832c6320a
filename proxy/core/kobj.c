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
	if (svc->packed) {
		free(svc->name); /* and everything packed after it */
		free(svc);
		return NULL;
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
	for (size_t i = 0; i < slice->n_ports; i++)
		intern_release(slice->ports[i].name);
	if (!slice->packed) {
		free(slice->endpoints);
		free(slice->ports);
	}
	free(slice->name); /* packed: and the endpoints and ports after it */
	release(slice->ns);
	release(slice->source);
	release(slice->service_name);
	free(slice);
	return NULL;
}

/* Packing: where each piece goes in the one allocation. A first pass
 * reserves room (pack_room), the second copies (pack_copy) in the same
 * order. */
struct pack {
	char *base;   /* NULL during the first pass */
	size_t size;
};

/* Room for n items of size at align; their offset. */
static size_t pack_room(struct pack *pk, size_t n, size_t size, size_t align)
{
	size_t at = (pk->size + align - 1) / align * align;

	pk->size = at + n * size;
	return at;
}

/* Copy n items of size from src (NULL stays NULL; a non-NULL empty array
 * stays non-NULL) and return their new place; in the first pass only
 * reserve the room. */
static void *pack_copy(struct pack *pk, const void *src, size_t n, size_t size, size_t align)
{
	size_t at;

	if (!src)
		return NULL;
	at = pack_room(pk, n, size, align);
	if (!pk->base)
		return NULL;
	if (n)
		memcpy(pk->base + at, src, n * size);
	return pk->base + at;
}

static char *pack_str(struct pack *pk, const char *s)
{
	return pack_copy(pk, s, s ? strlen(s) + 1 : 0, 1, 1);
}

/* The fields of svc placed by pk into out (first pass: out NULL). The
 * name comes first: it starts the allocation, and frees it. */
static void service_pack_fields(struct pack *pk, const struct kobj_service *svc, struct kobj_service *out)
{
	char *name = pack_str(pk, svc->name);
	char *proxy_name = pack_str(pk, svc->proxy_name);
	struct svc_port *ports = pack_copy(pk, svc->ports, svc->n_ports, sizeof(*svc->ports),
					   _Alignof(struct svc_port));
	struct inet_addr *cips = pack_copy(pk, svc->cluster_ips, svc->n_cluster_ips, sizeof(struct inet_addr),
					   _Alignof(struct inet_addr));
	struct inet_addr *eips = pack_copy(pk, svc->external_ips, svc->n_external_ips, sizeof(struct inet_addr),
					   _Alignof(struct inet_addr));
	struct inet_addr *lbips = pack_copy(pk, svc->lb_ips, svc->n_lb_ips, sizeof(struct inet_addr),
					    _Alignof(struct inet_addr));
	struct inet_prefix *ranges = pack_copy(pk, svc->source_ranges, svc->n_source_ranges,
					       sizeof(struct inet_prefix), _Alignof(struct inet_prefix));

	if (!out)
		return;
	out->name = name;
	out->proxy_name = proxy_name;
	out->ports = ports;
	out->cluster_ips = cips;
	out->external_ips = eips;
	out->lb_ips = lbips;
	out->source_ranges = ranges;
	out->packed = true;
}

int kobj_service_pack(struct kobj_service *svc)
{
	struct pack pk = { .base = NULL, .size = 0 };
	struct kobj_service old = *svc;

	if (svc->packed || !svc->name)
		return 0;
	service_pack_fields(&pk, svc, NULL);
	pk.base = malloc(pk.size);
	if (!pk.base)
		return -ENOMEM;
	pk.size = 0;
	service_pack_fields(&pk, &old, svc);
	/* The copies own what the originals pointed at (port names). */
	free(old.name);
	free(old.proxy_name);
	free(old.ports);
	free(old.cluster_ips);
	free(old.external_ips);
	free(old.lb_ips);
	free(old.source_ranges);
	return 0;
}

static void slice_pack_fields(struct pack *pk, const struct kobj_slice *slice, struct kobj_slice *out)
{
	char *name = pack_str(pk, slice->name);
	struct kobj_endpoint *eps = pack_copy(pk, slice->endpoints, slice->n_endpoints,
					      sizeof(*slice->endpoints), _Alignof(struct kobj_endpoint));
	struct slice_port *ports = pack_copy(pk, slice->ports, slice->n_ports, sizeof(*slice->ports),
					     _Alignof(struct slice_port));

	if (!out)
		return;
	out->name = name;
	out->endpoints = eps;
	out->ports = ports;
	out->packed = true;
}

int kobj_slice_pack(struct kobj_slice *slice)
{
	struct pack pk = { .base = NULL, .size = 0 };
	struct kobj_slice old = *slice;

	if (slice->packed || !slice->name)
		return 0;
	slice_pack_fields(&pk, slice, NULL);
	pk.base = malloc(pk.size);
	if (!pk.base)
		return -ENOMEM;
	pk.size = 0;
	slice_pack_fields(&pk, &old, slice);
	/* The copies own what the originals pointed at (node names, hint
	 * lists, port names). */
	free(old.name);
	free(old.endpoints);
	free(old.ports);
	return 0;
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
