/* Option parsing shared by `ferry run` and `ferry plan`: defaults,
 * durations, the options themselves. */
#include "cli_options.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube_proxy_config.h"
#include "log.h"

/* The --config file of this process: o's strings point into it, so it
 * lives as long as the command. */
static struct kube_proxy_config cli_config;
/* --healthz-bind-address and --metrics-bind-address as kube-proxy takes
 * them (an IP alone gets the default port): the normalized text. */
static char cli_healthz_bind[80], cli_metrics_bind[80];

void cli_options_defaults(struct cli_options *o)
{
	memset(o, 0, sizeof(*o));
	o->source = NULL;
	o->backend = "auto";
	o->format = PLAN_FORMAT_TEXT;
	o->workers = 2;
	o->udp_timeout_ms = 30000;
	o->min_sync_period_ms = 50;
	o->sync_period_ms = 30000;
	o->full_sync_period_ms = 3600000; /* kube-proxy's FullSyncPeriod */
}

int cli_parse_duration_ms(const char *text, uint32_t *ret_ms)
{
	uint64_t total = 0;
	const char *p = text;

	if (!text || !*text)
		return -EINVAL;
	while (*p) {
		char *end;
		uint64_t mult;

		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		errno = 0;
		unsigned long long v = strtoull(p, &end, 10);
		if (errno)
			return -EINVAL;
		if (strncmp(end, "ms", 2) == 0) {
			mult = 1;
			end += 2;
		} else if (*end == 's') {
			mult = 1000;
			end++;
		} else if (*end == 'm') {
			mult = 60000;
			end++;
		} else if (*end == 'h') {
			mult = 3600000;
			end++;
		} else if (*end == '\0' && p == text) {
			mult = 1; /* a bare number is milliseconds */
		} else {
			return -EINVAL;
		}
		if (v > UINT32_MAX / mult)
			return -EINVAL;
		total += v * mult;
		if (total > UINT32_MAX)
			return -EINVAL;
		p = end;
	}
	*ret_ms = (uint32_t)total;
	return 0;
}

enum {
	OPT_SOURCE = 1000,
	OPT_BACKEND,
	OPT_FORMAT,
	OPT_WORKERS,
	OPT_LOG_LEVEL,
	OPT_UDP_TIMEOUT,
	OPT_MIN_SYNC,
	OPT_SYNC,
	OPT_FULL_SYNC,
	OPT_HOSTNAME,
	OPT_NODEPORT_ADDRESSES,
	OPT_KUBECONFIG,
	OPT_MASTER,
	OPT_CONTEXT,
	OPT_SERVICE_PROXY_NAME,
	OPT_CLUSTER_CIDR,
	OPT_SERVICE_CIDRS,
	OPT_MASQUERADE_ALL,
	OPT_MASQUERADE_BIT,
	OPT_INTERCEPT,
	OPT_DETECT_LOCAL_MODE,
	OPT_POD_INTERFACE_NAME_PREFIX,
	OPT_POD_BRIDGE_INTERFACE,
	OPT_IPVS_SCHEDULER,
	OPT_IPVS_STRICT_ARP,
	OPT_CONFIG,
	OPT_PROXY_MODE,
	OPT_KP_SYNC,
	OPT_KP_MIN_SYNC,
	OPT_HEALTHZ_BIND,
	OPT_METRICS_BIND,
	OPT_BIND_ADDRESS,
	OPT_CLEANUP,
	OPT_VERBOSITY,
	OPT_OOM_SCORE_ADJ,
	OPT_CT_MAX_PER_CORE,
	OPT_CT_MIN,
	OPT_CT_TCP_ESTABLISHED,
	OPT_CT_TCP_CLOSE_WAIT,
	OPT_CT_UDP,
	OPT_CT_UDP_STREAM,
	OPT_CT_TCP_BE_LIBERAL,
	OPT_FEATURE_GATES,
	OPT_IPVS_EXCLUDE_CIDRS,
	OPT_IPVS_TCP_TIMEOUT,
	OPT_IPVS_TCPFIN_TIMEOUT,
	OPT_IPVS_UDP_TIMEOUT,
	OPT_HELP,
};

static const struct option cli_long_options[] = {
	{ "source", required_argument, NULL, OPT_SOURCE },
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "udp-timeout", required_argument, NULL, OPT_UDP_TIMEOUT },
	{ "min-sync-period", required_argument, NULL, OPT_MIN_SYNC },
	{ "sync-period", required_argument, NULL, OPT_SYNC },
	{ "full-sync-period", required_argument, NULL, OPT_FULL_SYNC },
	{ "hostname-override", required_argument, NULL, OPT_HOSTNAME },
	{ "nodeport-addresses", required_argument, NULL, OPT_NODEPORT_ADDRESSES },
	{ "kubeconfig", required_argument, NULL, OPT_KUBECONFIG },
	{ "master", required_argument, NULL, OPT_MASTER },
	{ "context", required_argument, NULL, OPT_CONTEXT },
	{ "service-proxy-name", required_argument, NULL, OPT_SERVICE_PROXY_NAME },
	{ "cluster-cidr", required_argument, NULL, OPT_CLUSTER_CIDR },
	{ "service-cluster-ip-range", required_argument, NULL, OPT_SERVICE_CIDRS },
	{ "masquerade-all", no_argument, NULL, OPT_MASQUERADE_ALL },
	{ "masquerade-bit", required_argument, NULL, OPT_MASQUERADE_BIT },
	{ "iptables-masquerade-bit", required_argument, NULL, OPT_MASQUERADE_BIT },
	{ "intercept", required_argument, NULL, OPT_INTERCEPT },
	{ "detect-local-mode", required_argument, NULL, OPT_DETECT_LOCAL_MODE },
	{ "pod-interface-name-prefix", required_argument, NULL, OPT_POD_INTERFACE_NAME_PREFIX },
	{ "pod-bridge-interface", required_argument, NULL, OPT_POD_BRIDGE_INTERFACE },
	{ "ipvs-scheduler", required_argument, NULL, OPT_IPVS_SCHEDULER },
	{ "ipvs-strict-arp", no_argument, NULL, OPT_IPVS_STRICT_ARP },
	{ "config", required_argument, NULL, OPT_CONFIG },
	/* kube-proxy's names, so a DaemonSet's arguments start ferry unchanged. */
	{ "proxy-mode", required_argument, NULL, OPT_PROXY_MODE },
	{ "iptables-sync-period", required_argument, NULL, OPT_KP_SYNC },
	{ "ipvs-sync-period", required_argument, NULL, OPT_KP_SYNC },
	{ "iptables-min-sync-period", required_argument, NULL, OPT_KP_MIN_SYNC },
	{ "ipvs-min-sync-period", required_argument, NULL, OPT_KP_MIN_SYNC },
	{ "healthz-bind-address", required_argument, NULL, OPT_HEALTHZ_BIND },
	{ "metrics-bind-address", required_argument, NULL, OPT_METRICS_BIND },
	{ "bind-address", required_argument, NULL, OPT_BIND_ADDRESS },
	{ "cleanup", optional_argument, NULL, OPT_CLEANUP },
	{ "v", required_argument, NULL, OPT_VERBOSITY },
	{ "oom-score-adj", required_argument, NULL, OPT_OOM_SCORE_ADJ },
	{ "conntrack-max-per-core", required_argument, NULL, OPT_CT_MAX_PER_CORE },
	{ "conntrack-min", required_argument, NULL, OPT_CT_MIN },
	{ "conntrack-tcp-timeout-established", required_argument, NULL, OPT_CT_TCP_ESTABLISHED },
	{ "conntrack-tcp-timeout-close-wait", required_argument, NULL, OPT_CT_TCP_CLOSE_WAIT },
	{ "conntrack-udp-timeout", required_argument, NULL, OPT_CT_UDP },
	{ "conntrack-udp-timeout-stream", required_argument, NULL, OPT_CT_UDP_STREAM },
	{ "conntrack-tcp-be-liberal", optional_argument, NULL, OPT_CT_TCP_BE_LIBERAL },
	{ "feature-gates", required_argument, NULL, OPT_FEATURE_GATES },
	{ "ipvs-exclude-cidrs", required_argument, NULL, OPT_IPVS_EXCLUDE_CIDRS },
	{ "ipvs-tcp-timeout", required_argument, NULL, OPT_IPVS_TCP_TIMEOUT },
	{ "ipvs-tcpfin-timeout", required_argument, NULL, OPT_IPVS_TCPFIN_TIMEOUT },
	{ "ipvs-udp-timeout", required_argument, NULL, OPT_IPVS_UDP_TIMEOUT },
	{ "help", no_argument, NULL, OPT_HELP },
	{ 0 }
};

/* --nodeport-addresses: a comma-separated list of CIDRs and the keywords
 * primary, localhost and all (the planner says what each selects). */
static int cli_parse_nodeport_addresses(const char *text, struct cli_options *o)
{
	char *copy = strdup(text), *save = NULL;

	if (!copy)
		return -1;
	o->nodeport_set = true;
	o->n_nodeport_prefixes = 0;
	o->nodeport_primary = o->nodeport_localhost = o->nodeport_all = false;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct inet_prefix *p = &o->nodeport_prefixes[o->n_nodeport_prefixes];

		if (strcmp(tok, "primary") == 0) {
			o->nodeport_primary = true;
			continue;
		}
		if (strcmp(tok, "localhost") == 0) {
			o->nodeport_localhost = true;
			continue;
		}
		if (strcmp(tok, "all") == 0) {
			o->nodeport_all = true;
			continue;
		}
		if (o->n_nodeport_prefixes == sizeof(o->nodeport_prefixes) / sizeof(o->nodeport_prefixes[0]) ||
		    inet_prefix_parse(tok, p) < 0) {
			fprintf(stderr, "ferry: --nodeport-addresses: '%s' is neither a CIDR nor primary, "
					"localhost or all (or there are more than 16)\n", tok);
			free(copy);
			return -1;
		}
		o->n_nodeport_prefixes++;
	}
	free(copy);
	if (!o->n_nodeport_prefixes && !o->nodeport_primary && !o->nodeport_localhost && !o->nodeport_all) {
		fprintf(stderr, "ferry: --nodeport-addresses: empty list\n");
		return -1;
	}
	return 0;
}

/* A comma-separated CIDR list into prefixes[max]; *n set. name for errors. */
static int cli_parse_cidr_list(const char *name, const char *text, struct inet_prefix *prefixes,
			       size_t max, size_t *n)
{
	char *copy = strdup(text), *save = NULL;

	*n = 0;
	if (!copy)
		return -1;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (*n == max || inet_prefix_parse(tok, &prefixes[*n]) < 0) {
			fprintf(stderr, "ferry: %s: '%s' is not a CIDR (or there are more than %zu)\n", name, tok,
				max);
			free(copy);
			return -1;
		}
		(*n)++;
	}
	free(copy);
	return 0;
}

/* kube-proxy's --detect-local-mode names, indexed by enum local_detect_mode. */
static const char *const cli_local_modes[] = {
	[LOCAL_DETECT_CLUSTER_CIDR] = "ClusterCIDR",
	[LOCAL_DETECT_INTERFACE_NAME_PREFIX] = "InterfaceNamePrefix",
	[LOCAL_DETECT_BRIDGE_INTERFACE] = "BridgeInterface",
};

static int cli_parse_local_mode(const char *text, enum local_detect_mode *ret)
{
	/* kube-proxy takes an empty mode for the default. */
	if (!*text) {
		*ret = LOCAL_DETECT_CLUSTER_CIDR;
		return 0;
	}
	for (size_t i = 0; i < sizeof(cli_local_modes) / sizeof(cli_local_modes[0]); i++) {
		if (strcmp(text, cli_local_modes[i]) == 0) {
			*ret = (enum local_detect_mode)i;
			return 0;
		}
	}
	if (strcmp(text, "NodeCIDR") == 0)
		fprintf(stderr, "ferry: --detect-local-mode NodeCIDR is not supported by ferry; use ClusterCIDR "
			"with --cluster-cidr set to this node's pod CIDR (the same match), "
			"InterfaceNamePrefix or BridgeInterface\n");
	else
		fprintf(stderr, "ferry: --detect-local-mode must be ClusterCIDR, InterfaceNamePrefix or "
			"BridgeInterface, not '%s'\n", text);
	return -1;
}

/* An interface name as the kernel and nft take it: 1-15 characters, none
 * that Linux refuses in a name ('/', ':', white space) nor that would need
 * quoting in nft text ('"', '\\', '*': a prefix is given without '*'). */
static int cli_check_ifname(const char *opt, const char *text)
{
	size_t len = strlen(text);
	bool ok = len >= 1 && len <= 15;

	for (size_t i = 0; ok && i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		ok = c > ' ' && c < 0x7f && !strchr("/:\"\\*", c);
	}
	if (!ok) {
		fprintf(stderr, "ferry: %s: '%s' is not an interface name (1-15 printable ASCII characters, "
			"without spaces or any of / : \" \\ *)\n", opt, text);
		return -1;
	}
	return 0;
}

/* The checks between options, once all are read (kube-proxy's: a mode that
 * needs an interface needs its flag). A flag the mode does not use is
 * accepted and ignored, as kube-proxy does, with a warning. */
static int cli_check_local_mode(const struct cli_options *o)
{
	const char *mode = cli_local_modes[o->detect_local_mode];

	if (o->detect_local_mode == LOCAL_DETECT_INTERFACE_NAME_PREFIX && !o->pod_interface_name_prefix) {
		fprintf(stderr, "ferry: --detect-local-mode InterfaceNamePrefix requires "
			"--pod-interface-name-prefix PREFIX (e.g. veth)\n");
		return -1;
	}
	if (o->detect_local_mode == LOCAL_DETECT_BRIDGE_INTERFACE && !o->pod_bridge_interface) {
		fprintf(stderr, "ferry: --detect-local-mode BridgeInterface requires "
			"--pod-bridge-interface NAME (e.g. cbr0)\n");
		return -1;
	}
	if (o->pod_interface_name_prefix && o->detect_local_mode != LOCAL_DETECT_INTERFACE_NAME_PREFIX)
		log_warn("--pod-interface-name-prefix is ignored: --detect-local-mode is %s, not "
			 "InterfaceNamePrefix", mode);
	if (o->pod_bridge_interface && o->detect_local_mode != LOCAL_DETECT_BRIDGE_INTERFACE)
		log_warn("--pod-bridge-interface is ignored: --detect-local-mode is %s, not BridgeInterface", mode);
	return 0;
}

const char *cli_local_interface(const struct cli_options *o)
{
	switch (o->detect_local_mode) {
	case LOCAL_DETECT_INTERFACE_NAME_PREFIX:
		return o->pod_interface_name_prefix;
	case LOCAL_DETECT_BRIDGE_INTERFACE:
		return o->pod_bridge_interface;
	default:
		return NULL;
	}
}

/* A Go boolean flag's optional value ("--cleanup", "--cleanup=false"). */
static int cli_parse_go_bool(const char *name, const char *text, bool *ret)
{
	if (!text || strcmp(text, "true") == 0 || strcmp(text, "1") == 0) {
		*ret = true;
		return 0;
	}
	if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0) {
		*ret = false;
		return 0;
	}
	fprintf(stderr, "ferry: %s must be true or false, not '%s'\n", name, text);
	return -1;
}

/* An integer in [min, max] for name. */
static int cli_parse_int(const char *name, const char *text, long min, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < min || v > max) {
		fprintf(stderr, "ferry: %s must be an integer in [%ld, %ld], not '%s'\n", name, min, max, text);
		return -1;
	}
	*ret = v;
	return 0;
}

/* A Go duration ("30s", "1m0s", "1.5s") for kube-proxy's flags. */
static int cli_parse_go_duration(const char *name, const char *text, uint32_t *ret_ms)
{
	if (kube_proxy_parse_duration_ms(text, ret_ms) < 0) {
		fprintf(stderr, "ferry: %s: '%s' is not a duration (e.g. 30s, 1m0s, 250ms)\n", name, text);
		return -1;
	}
	return 0;
}

/* kube-proxy's -v/--v: 0-3 are ferry's info level, 4 and up debug (kube-proxy
 * logs each sync's details from 4 on). */
static void cli_set_verbosity(long v)
{
	log_set_level(v >= 4 ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
}

/* --config FILE (or --config=FILE) anywhere in argv: load it into o before
 * the flags are parsed, so a flag overrides the file. Returns 0 (also
 * without --config) or -1 after printing the error. */
static int cli_options_load_config(int argc, char **argv, struct cli_options *o)
{
	const char *path = NULL, *mode = NULL;

	/* The mode a flag sets decides which of the file's mode sections holds
	 * the sync periods and masquerading, so it is looked for too. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
		else if ((strcmp(argv[i], "--proxy-mode") == 0 || strcmp(argv[i], "--backend") == 0) && i + 1 < argc)
			mode = argv[++i];
		else if (strncmp(argv[i], "--proxy-mode=", 13) == 0)
			mode = argv[i] + 13;
		else if (strncmp(argv[i], "--backend=", 10) == 0)
			mode = argv[i] + 10;
	}
	if (!path)
		return 0;
	memset(&cli_config, 0, sizeof(cli_config));
	if (mode)
		snprintf(cli_config.mode_override, sizeof(cli_config.mode_override), "%s", mode);
	if (kube_proxy_config_load(&cli_config, path, o) < 0) {
		fprintf(stderr, "ferry: --config %s: %s\n", path, cli_config.error);
		return -1;
	}
	if (cli_config.verbosity >= 0)
		cli_set_verbosity(cli_config.verbosity);
	return 0;
}

int cli_options_parse(int argc, char **argv, unsigned allowed, struct cli_options *o,
		      bool *ret_help)
{
	int c;

	*ret_help = false;
	if (cli_options_load_config(argc, argv, o) < 0)
		return -1;
	optind = 1;
	opterr = 0;
	int longindex = -1;

	/* The leading ':' makes a missing value ':' rather than '?'. */
	while ((c = getopt_long(argc, argv, ":hv:", cli_long_options, &longindex)) != -1) {
		/* Name the option itself, not its value when it came separately
		 * ("--intercept on"). */
		char name[64];

		if (longindex >= 0)
			snprintf(name, sizeof(name), "--%s", cli_long_options[longindex].name);
		else
			snprintf(name, sizeof(name), "%s", optind > 1 ? argv[optind - 1] : "?");
		longindex = -1;

		switch (c) {
		case 'h':
		case OPT_HELP:
			*ret_help = true;
			return 0;
		case OPT_SOURCE:
			o->source = optarg;
			break;
		case OPT_BACKEND:
			o->backend = optarg;
			break;
		case OPT_FORMAT:
			if (!(allowed & CLI_OPT_FORMAT))
				goto not_allowed;
			if (strcmp(optarg, "text") == 0) {
				o->format = PLAN_FORMAT_TEXT;
			} else if (strcmp(optarg, "json") == 0) {
				o->format = PLAN_FORMAT_JSON;
			} else if (strcmp(optarg, "rules") == 0) {
				o->format = PLAN_FORMAT_RULES;
			} else {
				fprintf(stderr, "ferry: --format must be text, json or rules, not '%s'\n", optarg);
				return -1;
			}
			break;
		case OPT_WORKERS: {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (!(allowed & CLI_OPT_RUN))
				goto not_allowed;
			if (*end || v < 1 || v > 256) {
				fprintf(stderr, "ferry: --workers must be 1-256, not '%s'\n", optarg);
				return -1;
			}
			o->workers = (unsigned)v;
			break;
		}
		case OPT_LOG_LEVEL: {
			enum log_level level;
			if (log_level_parse(optarg, &level) < 0) {
				fprintf(stderr, "ferry: --log-level must be error, warn, info or debug, not '%s'\n",
					optarg);
				return -1;
			}
			log_set_level(level);
			break;
		}
		case OPT_UDP_TIMEOUT:
		case OPT_MIN_SYNC:
		case OPT_SYNC:
		case OPT_FULL_SYNC: {
			uint32_t *dst = c == OPT_UDP_TIMEOUT ? &o->udp_timeout_ms :
					c == OPT_MIN_SYNC    ? &o->min_sync_period_ms :
					c == OPT_SYNC        ? &o->sync_period_ms :
							       &o->full_sync_period_ms;
			if (!(allowed & CLI_OPT_RUN))
				goto not_allowed;
			if (cli_parse_duration_ms(optarg, dst) < 0) {
				fprintf(stderr, "ferry: %s: '%s' is not a duration (e.g. 250ms, 30s, 1m)\n",
					name, optarg);
				return -1;
			}
			break;
		}
		case OPT_HOSTNAME:
			o->hostname = optarg;
			break;
		case OPT_KUBECONFIG:
			o->kubeconfig = optarg;
			break;
		case OPT_MASTER:
			if (strncmp(optarg, "https://", 8) != 0 && strncmp(optarg, "http://", 7) != 0) {
				fprintf(stderr, "ferry: --master must be an http:// or https:// URL, not '%s'\n",
					optarg);
				return -1;
			}
			o->master = optarg;
			break;
		case OPT_CONTEXT:
			o->context = optarg;
			break;
		case OPT_SERVICE_PROXY_NAME:
			if (!*optarg || strlen(optarg) > 253) {
				fprintf(stderr, "ferry: --service-proxy-name must be 1-253 characters\n");
				return -1;
			}
			o->service_proxy_name = optarg;
			break;
		case OPT_CLUSTER_CIDR: {
			/* Comma-separated, one per family usually (dual stack). */
			char *copy = strdup(optarg), *save = NULL;
			o->n_cluster_cidrs = 0;
			for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
				if (o->n_cluster_cidrs == sizeof(o->cluster_cidrs) / sizeof(o->cluster_cidrs[0]) ||
				    inet_prefix_parse(tok, &o->cluster_cidrs[o->n_cluster_cidrs]) < 0) {
					fprintf(stderr, "ferry: --cluster-cidr: '%s' is not a CIDR (or too many)\n", tok);
					free(copy);
					return -1;
				}
				o->n_cluster_cidrs++;
			}
			free(copy);
			break;
		}
		case OPT_MASQUERADE_ALL:
			o->masquerade_all = true;
			break;
		case OPT_MASQUERADE_BIT: {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v > 31) {
				fprintf(stderr, "ferry: %s must be 0-31, not '%s'\n", name, optarg);
				return -1;
			}
			o->masquerade_mark = 1u << v;
			break;
		}
		case OPT_INTERCEPT:
			if (!(allowed & CLI_OPT_RUN))
				goto not_allowed;
			if (strcmp(optarg, "auto") == 0) {
				o->intercept = CLI_INTERCEPT_AUTO;
			} else if (strcmp(optarg, "on") == 0) {
				o->intercept = CLI_INTERCEPT_ON;
			} else if (strcmp(optarg, "off") == 0) {
				o->intercept = CLI_INTERCEPT_OFF;
			} else {
				fprintf(stderr, "ferry: --intercept must be auto, on or off, not '%s'\n", optarg);
				return -1;
			}
			break;
		case OPT_DETECT_LOCAL_MODE:
			if (cli_parse_local_mode(optarg, &o->detect_local_mode) < 0)
				return -1;
			break;
		case OPT_POD_INTERFACE_NAME_PREFIX:
			if (cli_check_ifname(name, optarg) < 0)
				return -1;
			o->pod_interface_name_prefix = optarg;
			break;
		case OPT_POD_BRIDGE_INTERFACE:
			if (cli_check_ifname(name, optarg) < 0)
				return -1;
			o->pod_bridge_interface = optarg;
			break;
		case OPT_NODEPORT_ADDRESSES:
			if (cli_parse_nodeport_addresses(optarg, o) < 0)
				return -1;
			break;
		case OPT_SERVICE_CIDRS:
			if (cli_parse_cidr_list(name, optarg, o->service_cidrs,
						sizeof(o->service_cidrs) / sizeof(o->service_cidrs[0]),
						&o->n_service_cidrs) < 0)
				return -1;
			break;
		case OPT_IPVS_SCHEDULER:
			if (!ipvs_scheduler_known(optarg)) {
				fprintf(stderr, "ferry: %s: unknown IPVS scheduler '%s' (rr, wrr, lc, wlc, lblc, lblcr, "
						"dh, sh, sed, nq, mh, fo, ovf, twos)\n", name, optarg);
				return -1;
			}
			o->ipvs_scheduler = optarg;
			break;
		case OPT_IPVS_STRICT_ARP:
			o->ipvs_strict_arp = true;
			break;
		case OPT_CONFIG:
			/* Loaded before the flags; getopt also takes an
			 * abbreviation (--conf) the early scan does not see. */
			if (!o->config || strcmp(cli_config.path, optarg) != 0) {
				fprintf(stderr, "ferry: --config: give it once, spelled in full (--config FILE or "
						"--config=FILE)\n");
				return -1;
			}
			break;
		case OPT_PROXY_MODE:
			if (strcmp(optarg, "iptables") == 0) {
				fprintf(stderr, "ferry: %s iptables is not supported by ferry; use --proxy-mode nftables "
						"(kube-proxy's successor to iptables mode) or ipvs\n", name);
				return -1;
			}
			if (!*optarg) {
				o->backend = "auto";
			} else if (strcmp(optarg, "nftables") == 0 || strcmp(optarg, "ipvs") == 0 ||
				   strcmp(optarg, "userspace") == 0) {
				o->backend = optarg;
			} else {
				fprintf(stderr, "ferry: %s must be nftables, ipvs or userspace, not '%s'\n", name, optarg);
				return -1;
			}
			break;
		case OPT_KP_SYNC:
		case OPT_KP_MIN_SYNC:
			if (!(allowed & CLI_OPT_RUN))
				goto not_allowed;
			if (cli_parse_go_duration(name, optarg, c == OPT_KP_SYNC ? &o->sync_period_ms :
										 &o->min_sync_period_ms) < 0)
				return -1;
			break;
		case OPT_HEALTHZ_BIND:
		case OPT_METRICS_BIND: {
			bool hz = c == OPT_HEALTHZ_BIND;
			char *buf = hz ? cli_healthz_bind : cli_metrics_bind;
			uint16_t port = hz ? KUBE_PROXY_HEALTHZ_PORT : KUBE_PROXY_METRICS_PORT;

			/* Empty: the server is off, as kube-proxy's flag says.
			 * Otherwise kube-proxy's IP or IP:PORT, port 1-65535. */
			if (*optarg && kube_proxy_bind_normalize(optarg, port, buf, sizeof(cli_healthz_bind)) < 0) {
				fprintf(stderr, "ferry: %s: '%s' is not IP:PORT with a port 1-65535, or an IP "
						"(e.g. 0.0.0.0:%u, [::]:%u, 0.0.0.0; empty: no server)\n",
					name, optarg, port, port);
				return -1;
			}
			*(hz ? &o->healthz_bind : &o->metrics_bind) = *optarg ? buf : optarg;
			break;
		}
		case OPT_BIND_ADDRESS: {
			struct inet_addr a;
			if (inet_addr_parse(optarg, &a) < 0) {
				fprintf(stderr, "ferry: %s: '%s' is not an IP address\n", name, optarg);
				return -1;
			}
			/* A specific address is this node's address of its
			 * family (cli_planner_config), as in kube-proxy. */
			o->bind_address = optarg;
			break;
		}
		case OPT_CLEANUP:
			if (!(allowed & CLI_OPT_RUN))
				goto not_allowed;
			if (cli_parse_go_bool(name, optarg, &o->cleanup) < 0)
				return -1;
			break;
		case 'v':
		case OPT_VERBOSITY: {
			long v;
			if (cli_parse_int(c == 'v' ? "-v" : "--v", optarg, 0, INT32_MAX, &v) < 0)
				return -1;
			cli_set_verbosity(v);
			break;
		}
		case OPT_OOM_SCORE_ADJ: {
			long v;
			if (cli_parse_int(name, optarg, -1000, 1000, &v) < 0)
				return -1;
			o->oom_score_adj = (int)v;
			o->oom_score_adj_set = true;
			break;
		}
		case OPT_CT_MAX_PER_CORE:
		case OPT_CT_MIN: {
			long v;
			if (cli_parse_int(name, optarg, 0, INT32_MAX, &v) < 0)
				return -1;
			*(c == OPT_CT_MIN ? &o->conntrack.min : &o->conntrack.max_per_core) = (uint32_t)v;
			*(c == OPT_CT_MIN ? &o->conntrack.min_set : &o->conntrack.max_per_core_set) = true;
			break;
		}
		case OPT_CT_TCP_ESTABLISHED:
		case OPT_CT_TCP_CLOSE_WAIT:
		case OPT_CT_UDP:
		case OPT_CT_UDP_STREAM: {
			uint32_t *dst = c == OPT_CT_TCP_ESTABLISHED ? &o->conntrack.tcp_established_ms :
					c == OPT_CT_TCP_CLOSE_WAIT  ? &o->conntrack.tcp_close_wait_ms :
					c == OPT_CT_UDP		    ? &o->conntrack.udp_ms :
								      &o->conntrack.udp_stream_ms;
			if (cli_parse_go_duration(name, optarg, dst) < 0)
				return -1;
			if (c == OPT_CT_TCP_ESTABLISHED)
				o->conntrack.tcp_established_set = true;
			if (c == OPT_CT_TCP_CLOSE_WAIT)
				o->conntrack.tcp_close_wait_set = true;
			break;
		}
		case OPT_CT_TCP_BE_LIBERAL:
			if (cli_parse_go_bool(name, optarg, &o->conntrack.tcp_be_liberal) < 0)
				return -1;
			break;
		case OPT_IPVS_EXCLUDE_CIDRS:
			if (cli_parse_cidr_list(name, optarg, o->ipvs_exclude_cidrs,
						sizeof(o->ipvs_exclude_cidrs) / sizeof(o->ipvs_exclude_cidrs[0]),
						&o->n_ipvs_exclude_cidrs) < 0)
				return -1;
			break;
		case OPT_IPVS_TCP_TIMEOUT:
		case OPT_IPVS_TCPFIN_TIMEOUT:
		case OPT_IPVS_UDP_TIMEOUT:
			if (cli_parse_go_duration(name, optarg, c == OPT_IPVS_TCP_TIMEOUT ? &o->ipvs_tcp_timeout_ms :
							      c == OPT_IPVS_TCPFIN_TIMEOUT ? &o->ipvs_tcp_fin_timeout_ms :
											      &o->ipvs_udp_timeout_ms) < 0)
				return -1;
			break;
		case OPT_FEATURE_GATES:
			/* kube-proxy's gates switch kube-proxy's code; ferry has
			 * none, but a DaemonSet passing them must still start. */
			if (*optarg)
				log_warn("%s %s: not implemented by ferry; ignored", name, optarg);
			break;
		case ':':
			fprintf(stderr, "ferry: option '%s' needs a value\n", name);
			return -1;
		case '?':
		default:
			fprintf(stderr, "ferry: unknown option '%s'\n", name);
			return -1;
		}
		continue;
not_allowed:
		fprintf(stderr, "ferry: option '%s' does not apply to this command\n", name);
		return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "ferry: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (cli_check_local_mode(o) < 0)
		return -1;
	cli_source_default(o);
	kube_proxy_conntrack_defaults(o);
	kube_proxy_bind_defaults(o);
	return 0;
}
