/* The backend registry: which dataplanes this program is built with.
 *
 * Only the program knows the list; the core sees one backend_ops at a time.
 */
#ifndef FERRY_REGISTRY_H
#define FERRY_REGISTRY_H

#include <stddef.h>

#include "backend.h"

/* Backends in --backend auto order (nftables, ipvs, userspace: those built). */
extern const struct backend_ops *const backend_registry[];
extern const size_t backend_registry_len;

/* The backend named name, or NULL. */
const struct backend_ops *backend_find(const char *name);

/* The first backend in registry order whose probe passes; NULL if none.
 * Logs each failing probe's reason at debug level. */
const struct backend_ops *backend_auto(void);

#endif
