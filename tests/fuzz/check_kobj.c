/* Decoding checks shared by the decoder fuzz targets (see check_kobj.h).
 * Every property checked here is one that kdecode.h, model-t.h or the
 * Kubernetes rules they cite promise, restated independently of
 * informer/kdecode.c so that a decoder bug shows as a failed check. */
#include "check_kobj.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz_check.h"
#include "inet.h"
#include "kdecode.h"
#include "kobj.h"
#include "yaml_json.h"

static const char source_name[] = "fuzz/manifest.yaml";

/* DNS-1123: lower-case letters, digits, '-' (and '.' for subdomains),
 * starting and ending with a letter or digit. */
static bool dns_name(const char *s, size_t max, bool dots)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool alnum = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');

		if (!alnum && s[i] != '-' && !(dots && s[i] == '.'))
			return false;
		if (!alnum && (i == 0 || i == n - 1))
			return false;
	}
	return true;
}

static void check_error(const struct kdecode_error *err)
{
	FUZZ_CHECK_TERMINATED(err->object);
	FUZZ_CHECK_TERMINATED(err->field);
	FUZZ_CHECK_TERMINATED(err->message);
	/* Every rejection names the object (at least its kind) and says why. */
	FUZZ_CHECK(err->object[0] != '\0');
	FUZZ_CHECK(err->message[0] != '\0');
}

static void check_meta(const char *ns, const char *name, const char *source, bool loopback)
{
	FUZZ_CHECK(ns && dns_name(ns, 63, false));
	FUZZ_CHECK(name && dns_name(name, KDECODE_MAX_STRING, true));
	FUZZ_CHECK(source && strcmp(source, loopback ? source_name : "kube") == 0);
}

/* A usable address: a known family, not the wildcard, loopback only in
 * standalone mode. */
static void check_addr(const struct inet_addr *a, bool loopback)
{
	FUZZ_CHECK(a->family == AF_INET || a->family == AF_INET6);
	FUZZ_CHECK(!inet_addr_is_any(a));
	FUZZ_CHECK(loopback || !inet_addr_is_loopback(a));
}

/* A port name is NULL (unnamed) or a non-empty DNS label. */
static void check_port_name(const char *name)
{
	if (!name)
		return;
	FUZZ_CHECK(name[0] && memchr(name, '\0', KOBJ_PORT_NAME_MAX) != NULL);
	FUZZ_CHECK(dns_name(name, KOBJ_PORT_NAME_MAX - 1, false));
}

static void check_service(const struct kobj_service *svc, bool loopback)
{
	check_meta(svc->ns, svc->name, svc->source, loopback);
	FUZZ_CHECK(svc->type <= SVC_TYPE_EXTERNAL_NAME);
	FUZZ_CHECK(svc->n_cluster_ips <= 2);
	FUZZ_CHECK(!svc->n_cluster_ips || svc->cluster_ips);
	for (size_t i = 0; i < svc->n_cluster_ips; i++)
		check_addr(&svc->cluster_ips[i], loopback);
	if (svc->n_cluster_ips == 2)
		FUZZ_CHECK(svc->cluster_ips[0].family != svc->cluster_ips[1].family);
	for (size_t i = 0; i < svc->n_external_ips; i++)
		check_addr(&svc->external_ips[i], loopback);
	for (size_t i = 0; i < svc->n_lb_ips; i++)
		check_addr(&svc->lb_ips[i], loopback);
	for (size_t i = 0; i < svc->n_source_ranges; i++) {
		const struct inet_prefix *p = &svc->source_ranges[i];

		FUZZ_CHECK(p->addr.family == AF_INET || p->addr.family == AF_INET6);
		FUZZ_CHECK(p->len <= (p->addr.family == AF_INET ? 32 : 128));
	}
	for (size_t i = 0; i < svc->n_ports; i++) {
		const struct svc_port *p = &svc->ports[i];

		FUZZ_CHECK(p->proto <= INET_PROTO_SCTP);
		FUZZ_CHECK(p->port != 0);
		check_port_name(p->name);
		check_port_name(p->target_port_name);
		/* A target is a number or a name, never neither nor both. */
		FUZZ_CHECK((p->target_port != 0) != (p->target_port_name != NULL));
		for (size_t j = 0; j < i; j++) {
			FUZZ_CHECK(p->port != svc->ports[j].port || p->proto != svc->ports[j].proto);
			FUZZ_CHECK(!p->name || !kobj_str_eq(p->name, svc->ports[j].name));
		}
	}
	FUZZ_CHECK(svc->affinity_timeout_s >= 1 && svc->affinity_timeout_s <= 86400);
	FUZZ_CHECK(svc->external_policy <= TRAFFIC_POLICY_LOCAL);
	FUZZ_CHECK(svc->internal_policy <= TRAFFIC_POLICY_LOCAL);
	FUZZ_CHECK(svc->n_ip_families <= 2);
	for (size_t i = 0; i < svc->n_ip_families; i++)
		FUZZ_CHECK(svc->ip_families[i] == AF_INET || svc->ip_families[i] == AF_INET6);
	if (svc->n_ip_families == 2)
		FUZZ_CHECK(svc->ip_families[0] != svc->ip_families[1]);
	FUZZ_CHECK(strcmp(balance_algo_name(svc->balance), "?") != 0);
	FUZZ_CHECK(svc->health.rise >= 1 && svc->health.fall >= 1);
	FUZZ_CHECK(svc->health.interval_ms >= 1 && svc->health.timeout_ms >= 1);
}

static void check_slice(const struct kobj_slice *sl, bool loopback)
{
	check_meta(sl->ns, sl->name, sl->source, loopback);
	FUZZ_CHECK(sl->service_name && dns_name(sl->service_name, KDECODE_MAX_STRING, true));
	FUZZ_CHECK(sl->family == AF_INET || sl->family == AF_INET6);
	for (size_t i = 0; i < sl->n_endpoints; i++) {
		const struct kobj_endpoint *ep = &sl->endpoints[i];

		check_addr(&ep->addr, loopback);
		FUZZ_CHECK(ep->addr.family == sl->family);
		for (size_t z = 0; z < ep->n_hint_zones; z++)
			FUZZ_CHECK(ep->hint_zones[z] != NULL);
	}
	for (size_t i = 0; i < sl->n_ports; i++) {
		FUZZ_CHECK(sl->ports[i].proto <= INET_PROTO_SCTP);
		FUZZ_CHECK(sl->ports[i].port != 0);
		check_port_name(sl->ports[i].name);
	}
}

/* The slices of a v1 Endpoints: NAME:SUBSET:FAMILY, each with endpoints,
 * each named after the object it came from. */
static void check_endpoints(struct kobj_slice **slices, size_t n, bool loopback)
{
	FUZZ_CHECK((n == 0) == (slices == NULL));
	for (size_t i = 0; i < n; i++) {
		const struct kobj_slice *sl = slices[i];
		size_t base;

		FUZZ_CHECK(sl != NULL);
		FUZZ_CHECK(sl->ns && sl->name && sl->service_name);
		base = strlen(sl->service_name);
		FUZZ_CHECK(strncmp(sl->name, sl->service_name, base) == 0 && sl->name[base] == ':');
		FUZZ_CHECK(strcmp(strrchr(sl->name, ':'), sl->family == AF_INET ? ":ipv4" : ":ipv6") == 0);
		FUZZ_CHECK(sl->n_endpoints > 0);
		FUZZ_CHECK(dns_name(sl->service_name, KDECODE_MAX_STRING, true));
		FUZZ_CHECK(dns_name(sl->ns, 63, false));
		FUZZ_CHECK(sl->source && strcmp(sl->source, loopback ? source_name : "kube") == 0);
		FUZZ_CHECK(sl->family == AF_INET || sl->family == AF_INET6);
		for (size_t e = 0; e < sl->n_endpoints; e++) {
			check_addr(&sl->endpoints[e].addr, loopback);
			FUZZ_CHECK(sl->endpoints[e].addr.family == sl->family);
		}
		for (size_t p = 0; p < sl->n_ports; p++)
			FUZZ_CHECK(sl->ports[p].port != 0);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(sl->name, slices[j]->name) != 0);
	}
}

static void check_node(const struct kobj_node *node)
{
	FUZZ_CHECK(node->name && dns_name(node->name, KDECODE_MAX_STRING, true));
	FUZZ_CHECK(!node->zone || node->zone[0]);
	FUZZ_CHECK(node->n_addrs <= 64);
	for (size_t i = 0; i < node->n_addrs; i++)
		check_addr(&node->addrs[i], false);
}

/* Decode obj as kind with loopback allowed or not; returns the result
 * code after checking what came with it. */
static int decode_as(enum kdecode_kind kind, const json_t *obj, bool loopback)
{
	struct kdecode_opts opts = { .allow_loopback = loopback, .source = loopback ? source_name : "kube" };
	struct kdecode_error err;
	int r = -EINVAL;

	switch (kind) {
	case KDECODE_KIND_SERVICE: {
		struct kobj_service *svc = (void *)1;

		r = kdecode_service(obj, &opts, &svc, &err);
		FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
		FUZZ_CHECK((r == 0) == (svc != NULL));
		if (svc)
			check_service(svc, loopback);
		kobj_service_free(svc);
		break;
	}
	case KDECODE_KIND_SLICE: {
		struct kobj_slice *sl = (void *)1;

		r = kdecode_slice(obj, &opts, &sl, &err);
		FUZZ_CHECK(r == 0 || r == KDECODE_IGNORED || r == -EINVAL || r == -ENOMEM);
		FUZZ_CHECK((r == 0) == (sl != NULL));
		if (sl)
			check_slice(sl, loopback);
		kobj_slice_free(sl);
		break;
	}
	case KDECODE_KIND_ENDPOINTS: {
		struct kobj_slice **slices = (void *)1;
		size_t n = 1;

		r = kdecode_endpoints(obj, &opts, &slices, &n, &err);
		FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
		if (r == 0)
			check_endpoints(slices, n, loopback);
		else
			FUZZ_CHECK(slices == NULL && n == 0);
		kdecode_slices_free(slices, n);
		break;
	}
	default: { /* a Node */
		struct kobj_node *node = (void *)1;

		r = kdecode_node(obj, &opts, &node, &err);
		FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
		FUZZ_CHECK((r == 0) == (node != NULL));
		if (node)
			check_node(node);
		kobj_node_free(node);
		break;
	}
	}
	if (r == -EINVAL)
		check_error(&err);
	return r;
}

void check_kobj_manifest_value(const json_t *v, const json_t *list)
{
	enum kdecode_kind kind = kdecode_classify(v, list);
	const json_t *item;
	size_t i;

	switch (kind) {
	case KDECODE_KIND_INVALID:
		FUZZ_CHECK(!json_is_object(v) || list || json_object_get(v, "kind") == NULL ||
			   !json_is_string(json_object_get(v, "kind")));
		return;
	case KDECODE_KIND_OTHER:
		return;
	case KDECODE_KIND_LIST:
		FUZZ_CHECK(json_is_array(json_object_get(v, "items")));
		if (list)
			return; /* a list in a list is rejected */
		json_array_foreach(json_object_get(v, "items"), i, item)
			check_kobj_manifest_value(item, v);
		return;
	default: {
		int cluster = decode_as(kind, v, false);
		int standalone = decode_as(kind, v, true);

		/* Standalone mode only adds loopback addresses to what is valid. */
		if (cluster == 0 || cluster == KDECODE_IGNORED)
			FUZZ_CHECK(standalone == cluster);
		return;
	}
	}
}

void check_kobj_api_object(const json_t *obj)
{
	decode_as(KDECODE_KIND_SERVICE, obj, false);
	decode_as(KDECODE_KIND_SLICE, obj, false);
	decode_as(KDECODE_KIND_ENDPOINTS, obj, false);
	decode_as(KDECODE_KIND_INVALID, obj, false); /* the Node decoder */
}

/* Nesting depth of v: 0 for a scalar. */
static size_t depth_of(const json_t *v)
{
	const json_t *item;
	const char *key;
	size_t i, d = 0;

	if (json_is_array(v)) {
		json_array_foreach(v, i, item) {
			size_t k = depth_of(item);
			d = k > d ? k : d;
		}
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, item) {
			size_t k = depth_of(item);
			d = k > d ? k : d;
		}
	} else {
		return 0;
	}
	return d + 1;
}

void check_kobj_json_roundtrip(const json_t *v)
{
	struct yaml_json_doc *docs = NULL;
	struct yaml_json_error err;
	size_t n = 0;
	char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	int r;

	if (!text)
		return; /* out of memory in the encoder: nothing to compare */
	r = yaml_json_parse_json(text, strlen(text), NULL, &docs, &n, &err);
	/* yaml_json_parse bounds the nesting aliases make too, so what it
	 * produced is never too deep for the JSON reader. */
	FUZZ_CHECK(r == 0 || r == -ENOMEM);
	FUZZ_CHECK(depth_of(v) <= YAML_JSON_MAX_DEPTH);
	if (r == 0) {
		FUZZ_CHECK(n == (json_is_null(v) ? 0u : 1u));
		if (n)
			FUZZ_CHECK(json_equal(docs[0].root, (json_t *)v));
	}
	yaml_json_docs_free(docs, n);
	free(text);
}
