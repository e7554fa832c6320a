/* ferry.io annotations the chosen backend cannot honour: a warning naming
 * the service, never a silent substitute. A service is warned about when it
 * starts asking for something unsupported (each annotation once while the
 * request lasts), so a resync does not repeat the warning. */
#ifndef FERRY_ANNOTATIONS_H
#define FERRY_ANNOTATIONS_H

#include "backend.h"

struct annotation_warner;

/* A warner for backend ops; NULL on ENOMEM. */
struct annotation_warner *annotation_warner_new(const struct backend_ops *ops);
/* Warn about the plan's services whose annotations ops cannot honour and
 * that were not warned about before. diff NULL: look at the whole plan
 * (and forget the services that no longer ask); otherwise only at the sets
 * the diff added or changed (a sync's cost must follow the change).
 * Returns how many services are known to ask for something unsupported. */
size_t annotation_warner_check(struct annotation_warner *w, const struct plan *plan,
			       const struct plan_diff *diff);
/* Accepts NULL; returns NULL. */
struct annotation_warner *annotation_warner_free(struct annotation_warner *w);

#endif
