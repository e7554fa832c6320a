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
		"  version  print the version, the git commit and the backends compiled in\n"
		"  help     print this help ('ferry help COMMAND': that command's help)\n"
		"\n"
		"Run 'ferry COMMAND --help' for a command's options. Flags without a command\n"
		"(ferry --config FILE ...) are ferry run's, as kube-proxy is started.\n");
}

static int main_version(int argc, char **argv)
{
	if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
		printf("Usage: ferry version\n\nPrint ferry's version, the git commit it was built from and\n"
		       "the backends compiled in.\n");
		return CLI_EXIT_OK;
	}
	if (argc > 2) {
		fprintf(stderr, "ferry version: unexpected argument '%s'\n", argv[2]);
		return cli_usage_hint("version");
	}
	printf("ferry %s\ncommit %s\nbackends", FERRY_VERSION, FERRY_COMMIT);
	for (size_t i = 0; i < backend_registry_len; i++)
		printf(" %s", backend_registry[i]->name);
	printf("\n");
	return CLI_EXIT_OK;
}

/* Run one command with argv[0] its name. */
static int main_dispatch(const char *cmd, int argc, char **argv)
{
	if (strcmp(cmd, "run") == 0)
		return cli_run(argc, argv);
	if (strcmp(cmd, "plan") == 0)
		return cli_plan(argc, argv);
	if (strcmp(cmd, "cleanup") == 0)
		return cli_cleanup(argc, argv);
	fprintf(stderr, "ferry: unknown command '%s'\n", cmd);
	fprintf(stderr, "Run 'ferry help' for the commands.\n");
	return CLI_EXIT_REJECTED;
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
		/* ferry help COMMAND: the command's own --help. */
		if (argc > 2 && strcmp(cmd, "help") == 0) {
			char *args[] = { argv[2], "--help", NULL };

			if (strcmp(argv[2], "version") == 0) {
				char *vargs[] = { argv[0], argv[2], "--help", NULL };
				return main_version(3, vargs);
			}
			if (strcmp(argv[2], "help") == 0) {
				main_usage(stdout);
				return CLI_EXIT_OK;
			}
			return main_dispatch(argv[2], 2, args);
		}
		main_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0)
		return main_version(argc, argv);
	/* Flags first, as kube-proxy is started (`ferry --config FILE
	 * --hostname-override NODE`): ferry run, so a DaemonSet's arguments
	 * work unchanged. */
	if (cmd[0] == '-')
		return cli_run(argc, argv);
	return main_dispatch(cmd, argc - 1, argv + 1);
}
