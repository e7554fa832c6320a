/* Capabilities after start, with libcap-ng (privileges.h says what is kept
 * and why). */
#include "privileges.h"

#include <cap-ng.h>
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "inet.h"
#include "log.h"

/* A healthz or metrics address ("HOST:PORT") bound below 1024. NULL or ""
 * (no server, or the defaults 10256 and 10249) is not. */
static bool privileges_low_port(const char *bind)
{
	struct inet_addr a;
	uint16_t port;

	return bind && *bind && inet_endpoint_parse(bind, &a, &port) == 0 && port > 0 && port < 1024;
}

static void privileges_add(unsigned *caps, size_t *n, unsigned cap)
{
	for (size_t i = 0; i < *n; i++)
		if (caps[i] == cap)
			return;
	if (*n == PRIVILEGES_MAX)
		return;
	size_t i = *n;
	while (i > 0 && caps[i - 1] > cap) {
		caps[i] = caps[i - 1];
		i--;
	}
	caps[i] = cap;
	(*n)++;
}

size_t privileges_wanted(const struct backend_ops *ops, const struct cli_options *o, unsigned *ret)
{
	size_t n = 0;

	privileges_add(ret, &n, CAP_NET_ADMIN);
	privileges_add(ret, &n, CAP_NET_RAW);
	/* The relay opens listeners on the services' ports for as long as it
	 * runs; a kernel backend only programs rules. */
	if (ops && strcmp(ops->name, "userspace") == 0)
		privileges_add(ret, &n, CAP_NET_BIND_SERVICE);
	if (o && (privileges_low_port(o->healthz_bind) || privileges_low_port(o->metrics_bind)))
		privileges_add(ret, &n, CAP_NET_BIND_SERVICE);
	return n;
}

int privileges_drop(const unsigned *caps, size_t n)
{
	char kept[256] = "";
	size_t used = 0;
	bool bound;
	int r;

	if (capng_get_caps_process() != 0) {
		log_warn("privileges: cannot read this process's capabilities; keeping them");
		return -EIO;
	}
	if (capng_have_capabilities(CAPNG_SELECT_CAPS) == CAPNG_NONE) {
		log_debug("privileges: no capabilities to drop");
		return 0;
	}
	/* PR_CAPBSET_DROP needs CAP_SETPCAP; without it (a container) the
	 * runtime has bounded the set already and only the others shrink. */
	bound = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP);
	bool have[PRIVILEGES_MAX] = { false };
	for (size_t i = 0; i < n && i < PRIVILEGES_MAX; i++)
		have[i] = capng_have_capability(CAPNG_PERMITTED, caps[i]);
	capng_clear(bound ? CAPNG_SELECT_BOTH : CAPNG_SELECT_CAPS);
	for (size_t i = 0; i < n && i < PRIVILEGES_MAX; i++) {
		const char *name;

		if (!have[i])
			continue;
		if (capng_update(CAPNG_ADD,
				 CAPNG_EFFECTIVE | CAPNG_PERMITTED | (bound ? CAPNG_BOUNDING_SET : 0),
				 caps[i]) != 0)
			return log_warn_errno(-EINVAL, "privileges: libcap-ng refused capability %u", caps[i]);
		name = capng_capability_to_name(caps[i]);
		used += (size_t)snprintf(kept + used, sizeof(kept) - used, "%scap_%s", used ? ", " : "",
					 name ? name : "?");
		if (used >= sizeof(kept))
			used = sizeof(kept) - 1;
	}
	r = capng_apply(bound ? CAPNG_SELECT_BOTH : CAPNG_SELECT_CAPS);
	if (r != 0)
		return log_warn_errno(-EPERM, "privileges: the kernel refused to drop capabilities (libcap-ng %d); "
					 "running with those of the start", r);
	log_info("privileges: keeping only %s%s", used ? kept : "no capability",
		 bound ? " (bounding set too)" : " (the bounding set stays the one ferry was started with)");
	return 0;
}
