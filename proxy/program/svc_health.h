/* Health check node ports: per-service HTTP endpoints that tell an external
 * load balancer whether this node has local endpoints for a service with
 * externalTrafficPolicy Local (the plan's health_checks).
 *
 * GET (any path) on the port answers 200 while the service has local
 * endpoints and the proxy is healthy (proxy_health.h), 503 otherwise, with
 * a JSON body like kube-proxy's:
 * {"service":{"namespace":"NS","name":"NAME"},"localEndpoints":N,"serviceProxyHealthy":B}.
 * Served with libmicrohttpd on the control thread's event loop (no thread).
 */
#ifndef FERRY_SVC_HEALTH_H
#define FERRY_SVC_HEALTH_H

#include <stdbool.h>

#include "loop.h"
#include "plan-t.h"

struct svc_health;

/* Allocate the server set, serving nothing yet. loop is borrowed. NULL on
 * ENOMEM. */
struct svc_health *svc_health_new(struct loop *loop);
/* Close every port and free. Accepts NULL; returns NULL. */
struct svc_health *svc_health_free(struct svc_health *h);

/* Serve exactly plan->health_checks: open ports that are new, close ports
 * that are gone, update the counts of the others. A port that cannot be
 * opened is logged and skipped (retried at the next update). Returns 0, or
 * the first -errno of a failed port. */
int svc_health_update(struct svc_health *h, const struct plan *plan);

/* Where serviceProxyHealthy comes from: fn(userdata) at each request
 * (kube-proxy's IsHealthy). fn NULL: always true. */
void svc_health_set_proxy_health(struct svc_health *h, bool (*fn)(void *userdata), void *userdata);

/* Number of ports being served (for tests and logs). */
size_t svc_health_count(const struct svc_health *h);

#endif
