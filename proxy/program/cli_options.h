/* Option parsing shared by the commands. */
#ifndef FERRY_CLI_OPTIONS_H
#define FERRY_CLI_OPTIONS_H

#include <stdbool.h>

#include "cli.h"

/* Which command-specific options a command accepts (the common ones, --source,
 * --backend, --log-level, --hostname-override, --nodeport-addresses,
 * --kubeconfig, --master, --context, --service-proxy-name, are always
 * accepted). */
enum {
	CLI_OPT_RUN = 1 << 0,    /* --workers, --udp-timeout, --min-sync-period, --sync-period,
				 * --full-sync-period, --intercept */
	CLI_OPT_FORMAT = 1 << 1, /* --format */
};

/* Parse argv (argv[0] is the command name) into o, which holds defaults.
 * Without --source, the source defaults to "kube" when KUBERNETES_SERVICE_HOST
 * is set or --kubeconfig/--master was given (cli_source_default).
 * Sets *ret_help on --help/-h. Returns 0, or -1 after printing the error. */
int cli_options_parse(int argc, char **argv, unsigned allowed, struct cli_options *o,
		      bool *ret_help);

/* The interface name the backend matches for o's --detect-local-mode
 * (--pod-interface-name-prefix or --pod-bridge-interface), or NULL for
 * ClusterCIDR. o must have passed cli_options_parse. */
const char *cli_local_interface(const struct cli_options *o);

#endif
