/* `ferry cleanup`: remove whatever a backend installed, even after a crash. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_options.h"
#include "log.h"

int cli_usage_hint(const char *command)
{
	fprintf(stderr, "Run 'ferry %s --help' for its options.\n", command);
	return CLI_EXIT_REJECTED;
}

static void cleanup_usage(FILE *out)
{
	fprintf(out, "Usage: ferry cleanup [--backend NAME|all]\n\n"
		     "Remove every rule, set and address the kernel backends installed (all by\n"
		     "default), and say what was removed. Backends:");
	for (size_t i = 0; i < backend_registry_len; i++)
		fprintf(out, " %s", backend_registry[i]->name);
	fprintf(out, ".\n");
}

int cli_cleanup_backends(const char *backend)
{
	int code = CLI_EXIT_OK;

	for (size_t i = 0; i < backend_registry_len; i++) {
		const struct backend_ops *ops = backend_registry[i];
		if (strcmp(backend, "all") != 0 && strcmp(backend, ops->name) != 0)
			continue;
		if (!ops->cleanup) {
			log_info("backend %s: nothing to remove (it installs nothing that outlives it)", ops->name);
			continue;
		}
		/* Each backend's cleanup logs what it removed. */
		int r = ops->cleanup();
		if (r < 0) {
			log_errno(r, "cleanup of backend %s failed", ops->name);
			code = CLI_EXIT_FAILURE;
		} else {
			log_info("backend %s cleaned up", ops->name);
		}
	}
	return code;
}

int cli_cleanup(int argc, char **argv)
{
	struct cli_options o;
	bool help, known = false;

	cli_options_defaults(&o);
	o.backend = "all";
	if (cli_options_parse(argc, argv, 0, &o, &help) < 0)
		return cli_usage_hint("cleanup");
	if (help) {
		cleanup_usage(stdout);
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < backend_registry_len; i++)
		known |= strcmp(o.backend, backend_registry[i]->name) == 0;
	if (!known && strcmp(o.backend, "all") != 0) {
		fprintf(stderr, "ferry cleanup: unknown backend '%s' (", o.backend);
		for (size_t i = 0; i < backend_registry_len; i++)
			fprintf(stderr, "%s%s", i ? ", " : "", backend_registry[i]->name);
		fprintf(stderr, " or all)\n");
		return cli_usage_hint("cleanup");
	}
	return cli_cleanup_backends(o.backend);
}
