/* ferry's entry point: dispatch to a command. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "version.h"

static void main_usage(FILE *out)
{
	fprintf(out,
		"ferry: service proxy and L4 load balancer\n"
		"\n"
		"Usage: ferry COMMAND [OPTIONS]\n"
		"\n"
		"Commands:\n"
		"  run      program the dataplane from a source and keep it in sync\n"
		"  plan     print the forwarding plan and what a backend would program\n"
		"  cleanup  remove everything a kernel backend installed\n"
		"  version  print the version\n"
		"  help     print this help\n"
		"\n"
		"Run 'ferry COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2) {
		main_usage(stderr);
		return CLI_EXIT_REJECTED;
	}
	cmd = argv[1];
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		main_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
			printf("Usage: ferry version\n\nPrint ferry's version.\n");
			return CLI_EXIT_OK;
		}
		printf("ferry %s\n", FERRY_VERSION);
		return CLI_EXIT_OK;
	}
	if (strcmp(cmd, "run") == 0)
		return cli_run(argc - 1, argv + 1);
	if (strcmp(cmd, "plan") == 0)
		return cli_plan(argc - 1, argv + 1);
	if (strcmp(cmd, "cleanup") == 0)
		return cli_cleanup(argc - 1, argv + 1);
	fprintf(stderr, "ferry: unknown command '%s'\n\n", cmd);
	main_usage(stderr);
	return CLI_EXIT_REJECTED;
}
