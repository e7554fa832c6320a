/* Active TCP health checks of endpoints, on one thread of their own.
 *
 * The control thread hands over the complete list of endpoints to check
 * after every sync (and every apply that changed a checked set); the
 * checker connects to each every interval_ms (a
 * connect not done within timeout_ms fails), and flips the endpoint's
 * `healthy` flag after `fall` failures or `rise` successes in a row,
 * logging each transition at info level.
 */
#ifndef FERRY_USERSPACE_HEALTH_H
#define FERRY_USERSPACE_HEALTH_H

#include <stddef.h>

#include "balancer.h"
#include "model-t.h"

/* One endpoint to check. */
struct health_target {
	struct balancer_endpoint *ep; /* borrowed: health_set_targets takes its own ref */
	struct health_check_cfg cfg;
	const char *label;            /* "ns/svc:port", copied */
};

struct health;

/* Start the checker thread with nothing to check. NULL on failure (errno-less:
 * out of memory or fds; the caller reports -ENOMEM). */
struct health *health_new(void);
/* Replace the list of targets. Endpoints that stay keep their counters and
 * any check in flight; those that leave stop being checked (their flag is
 * left as it is: the caller resets flags of endpoints it stops checking).
 * Returns 0 or -ENOMEM (the previous list then stays in force). */
int health_set_targets(struct health *h, const struct health_target *targets, size_t n);
/* Stop the thread, close probes, drop every reference. Accepts NULL;
 * returns NULL. */
struct health *health_free(struct health *h);

#endif
