/* Allocation and release of model objects. */
#include "kobj.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
	free(svc->ns);
	free(svc->name);
	free(svc->source);
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

struct kobj_slice *kobj_slice_free(struct kobj_slice *slice)
{
	if (!slice)
		return NULL;
	for (size_t i = 0; i < slice->n_endpoints; i++) {
		struct kobj_endpoint *ep = &slice->endpoints[i];
		free(ep->node_name);
		free(ep->zone);
		for (size_t j = 0; j < ep->n_hint_zones; j++)
			free(ep->hint_zones[j]);
		free(ep->hint_zones);
	}
	free(slice->endpoints);
	free(slice->ports);
	free(slice->ns);
	free(slice->name);
	free(slice->source);
	free(slice->service_name);
	free(slice);
	return NULL;
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
