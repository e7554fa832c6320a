/* kube-proxy's metrics server: Prometheus text on metricsBindAddress
 * (/metrics) and the effective configuration (/configz, JSON).
 *
 * Names, types and buckets are kube-proxy's, so its dashboards work:
 * kubeproxy_sync_proxy_rules_duration_seconds and the full/partial
 * variants (histograms, every attempt), ..._last_timestamp_seconds,
 * ..._last_queued_timestamp_seconds, ..._no_local_endpoints_total,
 * ..._{service,endpoint}_changes_{pending,total},
 * kubeproxy_network_programming_duration_seconds (histogram),
 * kubeproxy_proxy_{healthz,livez}_total, the process_* metrics a Go
 * exporter has (from /proc/self), kube-proxy's sync failure counter of
 * the mode the backend stands for (nftables:
 * kubeproxy_sync_proxy_rules_nftables_sync_failures_total, ipvs:
 * ..._iptables_restore_failures_total), and ferry's own ferry_*: sync
 * attempts and failures, the plan in force on the backend (frontends,
 * endpoint sets, endpoints, health check ports), what the backend has
 * programmed (ops->counts), per service port relay traffic and per
 * endpoint health (ops->service_stats: ferry_relay_connections_total,
 * ferry_relay_active_connections, ferry_relay_bytes_total{direction},
 * ferry_endpoint_healthy, labelled namespace, service, port, protocol
 * and endpoint) and the API source's lists, relists, watch (re)starts,
 * events and request failures.
 * Control thread only (the event loop); no locking.
 */
#ifndef FERRY_METRICS_H
#define FERRY_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "cli.h"
#include "loop.h"
#include "model.h"
#include "plan-t.h"
#include "proxy_health.h"
#include "sync_runner.h"

struct metrics;

/* Make the metrics and serve them on bind ("ADDR:PORT"; NULL:
 * 127.0.0.1:10249; "": not served). o (for /configz) is rendered
 * now; loop, ops, model, runner and health (may be NULL) are borrowed and
 * must outlive the metrics. A server that cannot start is logged and
 * skipped. NULL on ENOMEM. */
struct metrics *metrics_new(struct loop *loop, const char *bind, const struct cli_options *o,
			    const struct backend_ops *ops, const struct model *model,
			    const struct sync_runner *runner, const struct proxy_health *health);
/* Stop serving and free. Accepts NULL; returns NULL. */
struct metrics *metrics_free(struct metrics *mx);

/* A sync attempt ended (sync_runner_config.on_attempt). NULL mx: nothing. */
void metrics_on_attempt(struct metrics *mx, bool full, int result, uint64_t duration_us);
/* A sync succeeded with plan now in force (sync_runner_config.on_synced).
 * NULL mx: nothing. */
void metrics_on_synced(struct metrics *mx, const struct plan *plan);

/* A good sync programmed the EndpointSlice changes whose
 * last-change-trigger-times (Unix seconds, model_take_triggers) are given:
 * observe kubeproxy_network_programming_duration_seconds (changes
 * triggered before ferry started are skipped, as kube-proxy does). NULL
 * mx: nothing. */
void metrics_on_programmed(struct metrics *mx, const double *trigger_times, size_t n);

/* The backend's private state, for ops->counts (ferry_backend_objects)
 * and ops->service_stats (ferry_relay_*, ferry_endpoint_healthy):
 * borrowed, must outlive mx. NULL mx: nothing. */
void metrics_set_backend(struct metrics *mx, void *backend_priv);

/* Where the API counters come from (ferry_api_*): src is borrowed and
 * must outlive mx; a directory source has none. NULL mx: nothing. */
void metrics_set_source(struct metrics *mx, const struct cli_source *src);

/* The whole /metrics text in a malloc'd buffer (*ret, *ret_len). 0 or
 * -ENOMEM. For the server and tests. */
int metrics_render(struct metrics *mx, char **ret, size_t *ret_len);

#endif
