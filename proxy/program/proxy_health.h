/* kube-proxy's healthz server: /healthz and /livez on healthzBindAddress.
 *
 * Both answer 200 while the sync runner is healthy (sync_runner_healthy
 * with a timeout of 2 x syncPeriod: the oldest change queued since the
 * last good sync is not older than that) and 503 otherwise, with
 * {"lastUpdated": "...","currentTime": "..."} (/healthz adds
 * "nodeEligible"), times in Go's time.String() format as kube-proxy prints
 * them; lastUpdated is currentTime while healthy, as in kube-proxy.
 * /healthz also answers 503 while this node's Node object is being deleted
 * or tainted ToBeDeletedByClusterAutoscaler ("nodeEligible": false), as
 * kube-proxy does; /livez ignores the Node.
 */
#ifndef FERRY_PROXY_HEALTH_H
#define FERRY_PROXY_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"
#include "model.h"
#include "sync_runner.h"

struct proxy_health;

/* Answers counted by code, for the kubeproxy_proxy_{healthz,livez}_total
 * metrics. */
struct proxy_health_counts {
	uint64_t healthz_200, healthz_503, livez_200, livez_503;
};

/* Make the health state of runner with the given timeout; the Node comes
 * from model (NULL or no Node: eligible). Both are borrowed and must
 * outlive it; and serve it on bind ("ADDR:PORT"; NULL: 0.0.0.0:10256;
 * "": not served). A server that cannot be started is logged and
 * the state still works (proxy_health_ok). NULL on ENOMEM. */
struct proxy_health *proxy_health_new(struct loop *loop, const char *bind,
				      const struct sync_runner *runner, const struct model *model,
				      uint32_t timeout_ms);
/* Stop serving and free. Accepts NULL; returns NULL. */
struct proxy_health *proxy_health_free(struct proxy_health *ph);

/* The proxier's health without the node's state (kube-proxy's IsHealthy):
 * what the health check node ports report as serviceProxyHealthy. */
bool proxy_health_ok(const struct proxy_health *ph);

/* Copy the answer counts. */
void proxy_health_counts(const struct proxy_health *ph, struct proxy_health_counts *ret);

#endif
