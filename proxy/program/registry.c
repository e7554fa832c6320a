/* The backend registry: every dataplane ferry is built with, in the order
 * --backend auto tries them (nftables, ipvs, userspace; only those that
 * exist in this build are listed). Explicit on purpose: no constructors or
 * linker sections, so static linking and reading the code both stay simple. */
#include "registry.h"

#include <string.h>

#include "log.h"
#include "ipvs.h"
#include "nftables.h"
#include "userspace.h"

const struct backend_ops *const backend_registry[] = {
	&nftables_backend_ops,
	&ipvs_backend_ops,
	&userspace_backend_ops,
};

const size_t backend_registry_len = sizeof(backend_registry) / sizeof(backend_registry[0]);

const struct backend_ops *backend_find(const char *name)
{
	for (size_t i = 0; i < backend_registry_len; i++)
		if (strcmp(backend_registry[i]->name, name) == 0)
			return backend_registry[i];
	return NULL;
}

const struct backend_ops *backend_auto(void)
{
	for (size_t i = 0; i < backend_registry_len; i++) {
		const struct backend_ops *ops = backend_registry[i];
		char why[256] = "";

		if (!ops->probe || ops->probe(why, sizeof(why)) == 0)
			return ops;
		log_debug("backend %s not usable here: %s", ops->name, why);
	}
	return NULL;
}
