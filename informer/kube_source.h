/* The Kubernetes API source: Services, EndpointSlices (or v1 Endpoints on
 * servers without the discovery API) and this node's Node object, listed
 * and watched (kube_informer.c) and fed into the model.
 *
 * The selectors are kube-proxy's: services and slices labelled
 * service.kubernetes.io/headless are left out, and so are those labelled
 * service.kubernetes.io/service-proxy-name unless that label equals the
 * configured proxy name (then only those are taken). The Node is selected
 * by metadata.name.
 *
 * "Synced" means every informer has delivered its first complete list;
 * until then the caller must not program a backend, so a restart never
 * applies a half-loaded plan. Objects are decoded by kdecode.c with
 * loopback addresses refused and source "kube"; a bad object is logged
 * (kind, namespace/name, field) and skipped, the watch goes on.
 * Policy code: logs.
 */
#ifndef FERRY_KUBE_SOURCE_H
#define FERRY_KUBE_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kube_informer.h"
#include "loop.h"
#include "model.h"

struct kube_source_config {
	const char *kubeconfig;         /* kubeconfig file, or NULL */
	const char *master;             /* API URL (overrides the kubeconfig's), or NULL */
	const char *context;            /* kubeconfig context, or NULL for the current one */
	const char *node_name;          /* this node (the Node to watch); NULL: no Node watch */
	const char *service_proxy_name; /* --service-proxy-name, or NULL */
	const char *sa_dir;             /* service account dir; NULL: KUBE_SA_DIR */
	uint32_t page_size;             /* list page size; 0: 500 */
	uint32_t watch_timeout_s;       /* fixed watch timeout (tests); 0: random 300-600 s */
	uint32_t backoff_cap_ms;        /* 0: 30000 */
};

/* Called when every informer has synced (once), and after changes once
 * synced. */
typedef void (*kube_source_fn)(void *userdata);

struct kube_source;

/* Resolve the connection (kubeconfig when given, else in-cluster when
 * KUBERNETES_SERVICE_HOST is set, else --master alone) and prepare the
 * informers; nothing is requested until kube_source_start. m and loop are
 * borrowed. Returns 0 and *ret, or -errno after logging why (bad
 * kubeconfig, unsupported auth, no configuration at all). */
int kube_source_new(struct loop *loop, struct model *m, const struct kube_source_config *cfg,
		    kube_source_fn on_synced, kube_source_fn on_changed, void *userdata,
		    struct kube_source **ret);

/* Start listing. Returns 0 (failures are retried in the background). */
int kube_source_start(struct kube_source *src);

/* True when every informer has delivered its first list. */
bool kube_source_synced(const struct kube_source *src);

/* Objects rejected so far (each logged). */
size_t kube_source_rejected(const struct kube_source *src);

/* List every resource again (SIGHUP); the difference reaches the model. */
void kube_source_relist(struct kube_source *src);

/* Counters of the informers, summed. */
void kube_source_stats(const struct kube_source *src, struct kube_informer_stats *ret);

/* True when a failed request will fail the same way on every retry until
 * someone changes something (the CA, the credentials, the address, or
 * starts the API server): a TLS failure (including a certificate that does
 * not verify), HTTP 401 or 403, a refused connection (kube_http reports
 * a host name that does not resolve the same way), or a URL curl cannot
 * use (-EINVAL). Such failures are
 * still retried with backoff (a long-running proxy outlives a certificate
 * or RBAC fix); a one-shot command should give up at once. Pure. */
bool kube_source_failure_persists(const struct kube_http_result *res);

/* Called when a request fails in a way kube_source_failure_persists says
 * persists, with a one-line description ("services list: HTTP 401 (token
 * rejected)"; no secrets). */
typedef void (*kube_source_failure_fn)(void *userdata, const char *why);

/* Register fn (NULL: none) to hear of persistent failures; userdata is the
 * one given to kube_source_new. Retries go on regardless. */
void kube_source_set_failure_fn(struct kube_source *src, kube_source_failure_fn fn);

/* Stop and free. Model objects stay. Accepts NULL; returns NULL. */
struct kube_source *kube_source_free(struct kube_source *src);

#endif
