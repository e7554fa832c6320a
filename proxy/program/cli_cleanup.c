/* `ferry cleanup`: remove whatever a backend installed, even after a crash. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_options.h"
#include "log.h"

int cli_cleanup(int argc, char **argv)
{
	struct cli_options o;
	bool help;
	int code = CLI_EXIT_OK;

	cli_options_defaults(&o);
	o.backend = "all";
	if (cli_options_parse(argc, argv, 0, &o, &help) < 0 || help) {
		fprintf(help ? stdout : stderr,
			"Usage: ferry cleanup [--backend NAME|all]\n\n"
			"Remove every rule, set and address the kernel backends installed.\n");
		return help ? CLI_EXIT_OK : CLI_EXIT_REJECTED;
	}
	for (size_t i = 0; i < backend_registry_len; i++) {
		const struct backend_ops *ops = backend_registry[i];
		if (strcmp(o.backend, "all") != 0 && strcmp(o.backend, ops->name) != 0)
			continue;
		if (!ops->cleanup)
			continue;
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
