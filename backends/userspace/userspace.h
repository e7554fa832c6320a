/* The userspace backend: a splice(2) TCP relay and a UDP relay run by epoll
 * worker threads with SO_REUSEPORT listeners (see DESIGN.md, "Userspace
 * relay principles"). Register userspace_backend_ops in the backend
 * registry; everything else of this directory is private to it.
 */
#ifndef FERRY_USERSPACE_H
#define FERRY_USERSPACE_H

#include <stdio.h>

#include "backend.h"

extern const struct backend_ops userspace_backend_ops;

/* render slot of userspace_backend_ops: print the listeners the relay would
 * open for plan, one line each in text, one JSON object in JSON
 * ({"backend":"userspace","listeners":[...],"skipped":[...]}). */
void userspace_render(const struct plan *plan, const struct backend_config *cfg, enum plan_format fmt, FILE *out);

/* Introspection for tests and metrics: may endpoint addr:port of the
 * endpoint set epset_key (the plan's key) take new traffic? Returns 1 (yes),
 * 0 (health checks took it out) or -ENOENT (no such set or endpoint).
 * priv is the backend state given to init. Call from the control thread,
 * between syncs. */
int userspace_endpoint_usable(void *priv, const char *epset_key, const struct inet_addr *addr,
			      uint16_t port);

#endif
