/* Informers for Services, EndpointSlices/Endpoints, the Node and the
 * ServiceCIDRs, decoding into the model. */
#include "kube_source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kdecode.h"
#include "kobj.h"
#include "kube_config.h"
#include "kube_http.h"
#include "log.h"

enum { INF_SERVICES, INF_SLICES, INF_NODE, INF_SERVICE_CIDRS, INF_COUNT };

/* One ServiceCIDR object's ranges (spec.cidrs). */
struct service_cidr_obj {
	char *name;
	struct inet_prefix cidrs[2]; /* the API allows one per family */
	size_t n;
};

struct kube_source {
	struct loop *loop;
	struct model *model;
	struct kube_config *kcfg;
	struct kube_http *http;
	struct kube_informer *inf[INF_COUNT];
	size_t n_inf;
	char *node_name;
	struct service_cidr_obj *scidrs; /* the ServiceCIDR objects, unordered */
	size_t n_scidrs;
	kube_source_fn on_synced, on_changed;
	kube_source_failure_fn on_failure;
	void *userdata;
	bool synced;
	size_t rejected;
};

static const struct kdecode_opts kube_decode_opts = { .allow_loopback = false, .source = "kube" };

static void log_rejected(struct kube_source *src, const struct kdecode_error *err)
{
	src->rejected++;
	if (err->field[0])
		log_error("kube: %s: %s: %s; skipped", err->object, err->field, err->message);
	else
		log_error("kube: %s: %s; skipped", err->object, err->message);
}

/* --- handlers ---------------------------------------------------------------- */

static int svc_upsert(void *userdata, unsigned variant, const json_t *obj, const char *ns,
		      const char *name, uint32_t *aux)
{
	struct kube_source *src = userdata;
	struct kobj_service *svc;
	struct kdecode_error err;
	int r;

	(void)variant;
	(void)ns;
	(void)name;
	(void)aux;
	r = kdecode_service(obj, &kube_decode_opts, &svc, &err);
	if (r == -EINVAL) {
		log_rejected(src, &err);
		return KUBE_INFORMER_REJECTED;
	}
	if (r < 0)
		return r;
	return model_upsert_service(src->model, svc);
}

static void svc_remove(void *userdata, unsigned variant, const char *ns, const char *name,
		       uint32_t aux)
{
	struct kube_source *src = userdata;

	(void)variant;
	(void)aux;
	model_delete_service(src->model, ns, name);
}

/* The slices an Endpoints object became are named NAME:SUBSET:FAMILY
 * (kdecode_endpoints); aux remembers how many subsets it had, so the stale
 * ones can be found again. */
static void endpoints_remove_stale(struct kube_source *src, const char *ns, const char *name,
				   uint32_t old_subsets, struct kobj_slice **keep, size_t n_keep)
{
	char sname[300];

	for (uint32_t i = 0; i < old_subsets; i++) {
		for (int f = 0; f < 2; f++) {
			bool kept = false;

			snprintf(sname, sizeof(sname), "%s:%u:%s", name, i, f ? "ipv6" : "ipv4");
			for (size_t k = 0; k < n_keep && !kept; k++)
				kept = strcmp(keep[k]->name, sname) == 0;
			if (!kept)
				model_delete_slice(src->model, ns, sname);
		}
	}
}

static int slice_upsert(void *userdata, unsigned variant, const json_t *obj, const char *ns,
			const char *name, uint32_t *aux)
{
	struct kube_source *src = userdata;
	struct kdecode_error err;
	int r;

	if (variant == 0) {
		struct kobj_slice *sl;

		r = kdecode_slice(obj, &kube_decode_opts, &sl, &err);
		if (r == -EINVAL) {
			log_rejected(src, &err);
			return KUBE_INFORMER_REJECTED;
		}
		if (r == KDECODE_IGNORED)
			return KUBE_INFORMER_IGNORED;
		if (r < 0)
			return r;
		return model_upsert_slice(src->model, sl);
	}
	/* v1 Endpoints fallback. */
	struct kobj_slice **slices = NULL;
	size_t n = 0;
	const json_t *subsets = json_object_get(obj, "subsets");
	uint32_t n_subsets = json_is_array(subsets) ? (uint32_t)json_array_size(subsets) : 0;

	r = kdecode_endpoints(obj, &kube_decode_opts, &slices, &n, &err);
	if (r == -EINVAL) {
		log_rejected(src, &err);
		return KUBE_INFORMER_REJECTED;
	}
	if (r < 0)
		return r;
	endpoints_remove_stale(src, ns, name, *aux, slices, n);
	for (size_t i = 0; i < n; i++) {
		if (r == 0)
			r = model_upsert_slice(src->model, slices[i]);
		else
			kobj_slice_free(slices[i]);
	}
	free(slices);
	*aux = n_subsets > *aux ? n_subsets : *aux;
	return r;
}

static void slice_remove(void *userdata, unsigned variant, const char *ns, const char *name,
			 uint32_t aux)
{
	struct kube_source *src = userdata;

	if (variant == 0)
		model_delete_slice(src->model, ns, name);
	else
		endpoints_remove_stale(src, ns, name, aux, NULL, 0);
}

static int node_upsert(void *userdata, unsigned variant, const json_t *obj, const char *ns,
		       const char *name, uint32_t *aux)
{
	struct kube_source *src = userdata;
	struct kobj_node *node;
	struct kdecode_error err;
	int r;

	(void)variant;
	(void)ns;
	(void)aux;
	/* The field selector should make this impossible; be sure anyway. */
	if (!src->node_name || strcmp(name, src->node_name) != 0)
		return KUBE_INFORMER_IGNORED;
	r = kdecode_node(obj, &kube_decode_opts, &node, &err);
	if (r == -EINVAL) {
		log_rejected(src, &err);
		return KUBE_INFORMER_REJECTED;
	}
	if (r < 0)
		return r;
	log_debug("kube: node %s: zone %s, %zu addresses", node->name, node->zone ? node->zone : "-",
		  node->n_addrs);
	model_set_node(src->model, node);
	return 0;
}

static void node_remove(void *userdata, unsigned variant, const char *ns, const char *name,
			uint32_t aux)
{
	struct kube_source *src = userdata;

	(void)variant;
	(void)ns;
	(void)name;
	(void)aux;
	model_set_node(src->model, NULL);
}

/* Hand the union of every ServiceCIDR object's ranges to the model. */
static int service_cidrs_publish(struct kube_source *src)
{
	struct inet_prefix all[64];
	size_t n = 0;

	for (size_t i = 0; i < src->n_scidrs; i++)
		for (size_t j = 0; j < src->scidrs[i].n && n < sizeof(all) / sizeof(all[0]); j++)
			all[n++] = src->scidrs[i].cidrs[j];
	return model_set_service_cidrs(src->model, all, n);
}

static struct service_cidr_obj *service_cidr_find(struct kube_source *src, const char *name)
{
	for (size_t i = 0; i < src->n_scidrs; i++)
		if (strcmp(src->scidrs[i].name, name) == 0)
			return &src->scidrs[i];
	return NULL;
}

/* A networking.k8s.io/v1 ServiceCIDR: spec.cidrs, at most one per family. */
static int service_cidr_upsert(void *userdata, unsigned variant, const json_t *obj, const char *ns,
			       const char *name, uint32_t *aux)
{
	struct kube_source *src = userdata;
	const json_t *cidrs = json_object_get(json_object_get(obj, "spec"), "cidrs"), *c;
	struct service_cidr_obj got = { 0 }, *slot;
	size_t i;

	(void)variant;
	(void)ns;
	(void)aux;
	if (cidrs && !json_is_array(cidrs)) {
		src->rejected++;
		log_error("kube: ServiceCIDR %s: spec.cidrs: not a list; skipped", name);
		return KUBE_INFORMER_REJECTED;
	}
	json_array_foreach(cidrs, i, c) {
		if (i >= 2 || !json_is_string(c) || inet_prefix_parse(json_string_value(c), &got.cidrs[got.n]) < 0) {
			src->rejected++;
			log_error("kube: ServiceCIDR %s: spec.cidrs[%zu]: %s; skipped", name, i,
				  i >= 2 ? "more than two ranges" : "not a CIDR");
			return KUBE_INFORMER_REJECTED;
		}
		got.n++;
	}
	slot = service_cidr_find(src, name);
	if (!slot) {
		struct service_cidr_obj *a = realloc(src->scidrs, (src->n_scidrs + 1) * sizeof(*a));
		if (!a)
			return -ENOMEM;
		src->scidrs = a;
		slot = &a[src->n_scidrs];
		if (!(slot->name = strdup(name)))
			return -ENOMEM;
		src->n_scidrs++;
	}
	memcpy(slot->cidrs, got.cidrs, sizeof(got.cidrs));
	slot->n = got.n;
	log_debug("kube: ServiceCIDR %s: %zu ranges", name, got.n);
	return service_cidrs_publish(src) < 0 ? -ENOMEM : 0;
}

static void service_cidr_remove(void *userdata, unsigned variant, const char *ns, const char *name,
				uint32_t aux)
{
	struct kube_source *src = userdata;
	struct service_cidr_obj *slot = service_cidr_find(src, name);

	(void)variant;
	(void)ns;
	(void)aux;
	if (!slot)
		return;
	free(slot->name);
	*slot = src->scidrs[--src->n_scidrs];
	service_cidrs_publish(src);
}

static void on_inf_synced(void *userdata)
{
	struct kube_source *src = userdata;

	if (src->synced)
		return;
	for (size_t i = 0; i < src->n_inf; i++)
		if (!kube_informer_synced(src->inf[i]))
			return;
	src->synced = true;
	log_info("kube: all informers synced: %zu services, %zu endpoint slices%s",
		 model_n_services(src->model), model_n_slices(src->model),
		 model_node(src->model) ? "" : " (this node's Node object not found)");
	if (src->on_synced)
		src->on_synced(src->userdata);
}

static void on_inf_changed(void *userdata)
{
	struct kube_source *src = userdata;

	if (src->synced && src->on_changed)
		src->on_changed(src->userdata);
}

bool kube_source_failure_persists(const struct kube_http_result *res)
{
	if (!res)
		return false;
	if (res->error)
		return res->error == -EPROTO || res->error == -ECONNREFUSED || res->error == -EINVAL;
	return res->status == 401 || res->status == 403;
}

/* An informer's request failed: tell the caller when retrying will not
 * help by itself. The informer has logged the failure already. */
static void on_inf_failed(void *userdata, const char *name, const char *what,
			  const struct kube_http_result *res)
{
	struct kube_source *src = userdata;
	char why[400];

	if (!src->on_failure || !kube_source_failure_persists(res))
		return;
	if (res->error)
		snprintf(why, sizeof(why), "%s %s: %s", name, what, res->message);
	else
		snprintf(why, sizeof(why), "%s %s: HTTP %ld (%s)", name, what, res->status,
			 res->status == 401 ? "token or certificate rejected" : "access forbidden");
	src->on_failure(src->userdata, why);
}

void kube_source_set_failure_fn(struct kube_source *src, kube_source_failure_fn fn)
{
	src->on_failure = fn;
}

/* --- set-up ------------------------------------------------------------------ */

static int resolve_config(const struct kube_source_config *cfg, struct kube_config **ret)
{
	char err[512] = "";
	int r;

	if (cfg->kubeconfig) {
		r = kube_config_load(cfg->kubeconfig, cfg->context, ret, err, sizeof(err));
	} else if (getenv("KUBERNETES_SERVICE_HOST") && *getenv("KUBERNETES_SERVICE_HOST")) {
		r = kube_config_in_cluster(cfg->sa_dir ? cfg->sa_dir : KUBE_SA_DIR, ret, err,
					   sizeof(err));
	} else if (cfg->master) {
		r = kube_config_for_master(cfg->master, ret, err, sizeof(err));
	} else {
		log_error("kube: no API server: give --kubeconfig or --master, or run in a pod "
			  "(KUBERNETES_SERVICE_HOST)");
		return -EINVAL;
	}
	if (r < 0) {
		log_error("kube: %s", err); /* err already says why */
		return r;
	}
	if (cfg->master && (cfg->kubeconfig || getenv("KUBERNETES_SERVICE_HOST"))) {
		r = kube_config_set_server(*ret, cfg->master);
		if (r < 0) {
			*ret = kube_config_free(*ret);
			log_error("kube: --master '%s' is not an http:// or https:// URL", cfg->master);
			return r;
		}
	}
	return 0;
}

int kube_source_new(struct loop *loop, struct model *m, const struct kube_source_config *cfg,
		    kube_source_fn on_synced, kube_source_fn on_changed, void *userdata,
		    struct kube_source **ret)
{
	static const struct kube_informer_handler svc_hd = {
		.upsert = svc_upsert, .remove = svc_remove,
		.synced = on_inf_synced, .changed = on_inf_changed, .failed = on_inf_failed,
	};
	static const struct kube_informer_handler slice_hd = {
		.upsert = slice_upsert, .remove = slice_remove,
		.synced = on_inf_synced, .changed = on_inf_changed, .failed = on_inf_failed,
	};
	static const struct kube_informer_handler scidr_hd = {
		.upsert = service_cidr_upsert, .remove = service_cidr_remove,
		.synced = on_inf_synced, .changed = on_inf_changed, .failed = on_inf_failed,
	};
	static const struct kube_informer_handler node_hd = {
		.upsert = node_upsert, .remove = node_remove,
		.synced = on_inf_synced, .changed = on_inf_changed, .failed = on_inf_failed,
	};
	struct kube_source *src;
	char selector[400], field[320];
	int r;

	*ret = NULL;
	if (cfg->service_proxy_name && strlen(cfg->service_proxy_name) > 253) {
		log_error("kube: --service-proxy-name is too long");
		return -EINVAL;
	}
	if (cfg->node_name && strlen(cfg->node_name) > 253) {
		log_error("kube: the node name is too long");
		return -EINVAL;
	}
	src = calloc(1, sizeof(*src));
	if (!src)
		return log_errno(-ENOMEM, "kube source");
	src->loop = loop;
	src->model = m;
	src->on_synced = on_synced;
	src->on_changed = on_changed;
	src->userdata = userdata;
	r = resolve_config(cfg, &src->kcfg);
	if (r < 0)
		goto fail;
	src->http = kube_http_new(loop, src->kcfg);
	if (!src->http) {
		r = log_errno(-ENOMEM, "kube: HTTP client");
		goto fail;
	}
	/* kube-proxy's selectors: no headless services, and only ours. */
	if (cfg->service_proxy_name && *cfg->service_proxy_name)
		snprintf(selector, sizeof(selector),
			 "!service.kubernetes.io/headless,service.kubernetes.io/service-proxy-name=%s",
			 cfg->service_proxy_name);
	else
		snprintf(selector, sizeof(selector),
			 "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name");

	struct kube_informer_config base = {
		.label_selector = selector,
		.page_size = cfg->page_size,
		.watch_min_s = cfg->watch_timeout_s,
		.watch_max_s = cfg->watch_timeout_s,
		.backoff_cap_ms = cfg->backoff_cap_ms,
	};
	struct kube_informer_config ic = base;

	ic.name = "services";
	ic.path = "/api/v1/services";
	ic.default_namespace = KDECODE_DEFAULT_NAMESPACE;
	src->inf[src->n_inf++] = kube_informer_new(src->http, loop, &ic, &svc_hd, src);
	ic = base;
	ic.name = "endpointslices";
	ic.path = "/apis/discovery.k8s.io/v1/endpointslices";
	ic.fallback_path = "/api/v1/endpoints";
	ic.default_namespace = KDECODE_DEFAULT_NAMESPACE;
	src->inf[src->n_inf++] = kube_informer_new(src->http, loop, &ic, &slice_hd, src);
	/* The cluster's service ranges (kube-proxy's cluster-ips-check drops
	 * traffic to their unallocated addresses); API servers before 1.33
	 * may not serve them. */
	ic = base;
	ic.name = "servicecidrs";
	ic.path = "/apis/networking.k8s.io/v1/servicecidrs";
	ic.label_selector = NULL;
	ic.optional = true;
	src->inf[src->n_inf++] = kube_informer_new(src->http, loop, &ic, &scidr_hd, src);
	if (cfg->node_name && *cfg->node_name) {
		src->node_name = strdup(cfg->node_name);
		snprintf(field, sizeof(field), "metadata.name=%s", cfg->node_name);
		ic = base;
		ic.name = "node";
		ic.path = "/api/v1/nodes";
		ic.label_selector = NULL;
		ic.field_selector = field;
		src->inf[src->n_inf++] = kube_informer_new(src->http, loop, &ic, &node_hd, src);
		if (!src->node_name)
			src->inf[src->n_inf - 1] = kube_informer_free(src->inf[src->n_inf - 1]);
	}
	for (size_t i = 0; i < src->n_inf; i++) {
		if (!src->inf[i]) {
			r = log_errno(-ENOMEM, "kube: informers");
			goto fail;
		}
	}
	log_info("kube: API server %s%s", src->kcfg->server,
		 src->kcfg->insecure ? " (TLS verification off)" : "");
	*ret = src;
	return 0;
fail:
	kube_source_free(src);
	return r;
}

int kube_source_start(struct kube_source *src)
{
	for (size_t i = 0; i < src->n_inf; i++)
		kube_informer_start(src->inf[i]);
	return 0;
}

bool kube_source_synced(const struct kube_source *src)
{
	return src->synced;
}

size_t kube_source_rejected(const struct kube_source *src)
{
	return src->rejected;
}

void kube_source_relist(struct kube_source *src)
{
	for (size_t i = 0; i < src->n_inf; i++)
		kube_informer_relist(src->inf[i]);
}

void kube_source_stats(const struct kube_source *src, struct kube_informer_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	for (size_t i = 0; i < src->n_inf; i++) {
		const struct kube_informer_stats *s = kube_informer_stats(src->inf[i]);

		ret->lists += s->lists;
		ret->relists += s->relists;
		ret->watches += s->watches;
		ret->events += s->events;
		ret->upserts += s->upserts;
		ret->removes += s->removes;
		ret->rejected += s->rejected;
		ret->skipped_events += s->skipped_events;
		ret->failures += s->failures;
	}
}

struct kube_source *kube_source_free(struct kube_source *src)
{
	if (!src)
		return NULL;
	for (size_t i = 0; i < src->n_inf; i++)
		kube_informer_free(src->inf[i]);
	kube_http_free(src->http);
	kube_config_free(src->kcfg);
	free(src->node_name);
	for (size_t i = 0; i < src->n_scidrs; i++)
		free(src->scidrs[i].name);
	free(src->scidrs);
	free(src);
	return NULL;
}
