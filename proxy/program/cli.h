/* The command line: one function per command, sharing option parsing and
 * source set-up. main.c dispatches on the first argument. */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "ipvs.h"
#include "kube_proxy_config.h"
#include "local_detect.h"
#include "loop.h"
#include "nftables.h"
#include "registry.h"
#include "userspace.h"
#include "model.h"
#include "planner.h"

/* Exit codes every command uses. */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAILURE = 1,
	CLI_EXIT_REJECTED = 2, /* ferry plan: some objects were rejected; or a usage error */
};

/* --intercept: whether a relay backend gets traffic to non-local VIPs
 * redirected to it with kernel rules (proxy/intercept.h). */
enum cli_intercept {
	CLI_INTERCEPT_AUTO,  /* on with --source kube, off with dir: */
	CLI_INTERCEPT_ON,
	CLI_INTERCEPT_OFF,
};

/* Options shared by the commands that load a source. */
struct cli_options {
	const char *source;        /* "dir:PATH" or "kube"; NULL until defaulted */
	const char *backend;       /* "auto" or a registry name */
	enum plan_format format;   /* ferry plan */
	unsigned workers;          /* userspace relay threads */
	uint32_t udp_timeout_ms;
	uint32_t min_sync_period_ms;
	uint32_t sync_period_ms;
	uint32_t full_sync_period_ms;
	const char *hostname;      /* node name; default: the host name */
	const char *kubeconfig;    /* --kubeconfig FILE (kube source) */
	const char *master;        /* --master URL (kube source) */
	const char *context;       /* --context NAME (kubeconfig context) */
	const char *service_proxy_name; /* --service-proxy-name NAME */
	struct inet_prefix nodeport_prefixes[16];
	size_t n_nodeport_prefixes;
	bool nodeport_set;         /* --nodeport-addresses given (else the backend's default) */
	bool nodeport_primary;     /* --nodeport-addresses primary */
	bool nodeport_localhost;   /* --nodeport-addresses localhost */
	bool nodeport_all;         /* --nodeport-addresses all (or 0.0.0.0/0 and ::/0) */
	struct inet_prefix service_cidrs[8]; /* --service-cluster-ip-range */
	size_t n_service_cidrs;
	struct inet_prefix cluster_cidrs[8]; /* --cluster-cidr (nftables local-traffic detection) */
	size_t n_cluster_cidrs;
	enum local_detect_mode detect_local_mode; /* --detect-local-mode (default ClusterCIDR) */
	const char *pod_interface_name_prefix; /* --pod-interface-name-prefix (InterfaceNamePrefix) */
	const char *pod_bridge_interface;      /* --pod-bridge-interface (BridgeInterface) */
	bool masquerade_all;         /* --masquerade-all */
	uint32_t masquerade_mark;    /* --masquerade-bit N: 1 << N; 0 = backend default */
	enum cli_intercept intercept; /* --intercept (ferry run) */
	const char *ipvs_scheduler;  /* --ipvs-scheduler NAME; NULL: rr */
	bool ipvs_strict_arp;        /* --ipvs-strict-arp */
	struct inet_prefix ipvs_exclude_cidrs[16]; /* ipvs.excludeCIDRs, --ipvs-exclude-cidrs */
	size_t n_ipvs_exclude_cidrs;
	uint32_t ipvs_tcp_timeout_ms;     /* ipvs.tcpTimeout, --ipvs-tcp-timeout; 0: unchanged */
	uint32_t ipvs_tcp_fin_timeout_ms; /* ipvs.tcpFinTimeout, --ipvs-tcpfin-timeout */
	uint32_t ipvs_udp_timeout_ms;     /* ipvs.udpTimeout, --ipvs-udp-timeout */
	/* kube-proxy's healthz and metrics servers, "HOST:PORT" (IPv6 in
	 * brackets) or NULL when not asked for: --healthz-bind-address,
	 * --metrics-bind-address or the --config file's healthzBindAddress,
	 * metricsBindAddress; "" when the flag was given empty (kube-proxy:
	 * server off). The string is owned by argv or the loaded config and
	 * lives as long as the command. */
	const char *healthz_bind;
	const char *metrics_bind;
	/* --config FILE: the loaded KubeProxyConfiguration, or NULL. */
	const struct kube_proxy_config *config;
	const char *bind_address;    /* bindAddress, --bind-address: a specific one is the node's address */
	bool cleanup;                /* --cleanup (kube-proxy's): ferry run cleans up and exits */
	struct kube_proxy_conntrack conntrack; /* conntrack.*, --conntrack-* */
	int oom_score_adj;           /* oomScoreAdj, --oom-score-adj */
	bool oom_score_adj_set;
};

/* Fill o with the defaults. */
void cli_options_defaults(struct cli_options *o);

/* Parse a duration: "250ms", "2s", "1m", "1h30m" or plain milliseconds.
 * Returns 0 or -EINVAL. */
int cli_parse_duration_ms(const char *text, uint32_t *ret_ms);

/* Resolve --backend (auto or a name) into an ops table; prints the error and
 * returns NULL when unknown or when a named backend's probe fails. */
const struct backend_ops *cli_pick_backend(const char *name);

/* The planner configuration the options ask for (ferry run and ferry
 * plan). Points into o. */
/* The planner's configuration from o, for backend ops (whose default
 * --nodeport-addresses applies when the option was not given). */
void cli_planner_config(const struct cli_options *o, const struct backend_ops *ops,
			struct planner_config *ret);

/* Room for the options of any backend in the registry. */
union cli_backend_options {
	struct nftables_options nftables;
	struct ipvs_options ipvs;
	struct userspace_options userspace;
};

/* The options ops' init and render take, built from o into *storage (ferry
 * run and ferry plan); intercept goes to a relay backend (NULL: none).
 * Returns a pointer into storage, which points into o. */
const void *cli_backend_options(const struct backend_ops *ops, const struct cli_options *o,
				const struct intercept_ops *intercept, union cli_backend_options *storage);

/* A loaded source: the model it fills, and how to keep it up to date. */
struct cli_source;

/* Open the source named by o->source ("dir:PATH" or "kube") and start
 * loading it into m. A directory is loaded completely before this returns;
 * the Kubernetes source only starts its lists here and completes them while
 * loop runs (see cli_source_synced). *ret_rejected counts objects and files
 * rejected so far (each already logged). loop and m are borrowed. Returns 0
 * or -errno (logged). */
int cli_source_open(const struct cli_options *o, struct loop *loop, struct model *m,
		    struct cli_source **ret, size_t *ret_rejected);
/* Callbacks of a source that completes in the background (kube): on_synced
 * once every first list is in the model, on_changed after later changes.
 * A directory source never calls them (it is synced at open; its changes
 * come through cli_source_fd). */
typedef void (*cli_source_fn)(void *userdata);
void cli_source_set_callbacks(struct cli_source *src, cli_source_fn on_synced,
			      cli_source_fn on_changed, void *userdata);
/* A background source (kube) failed in a way retrying will not fix by
 * itself (TLS verification, 401/403, connection refused: see
 * kube_source_failure_persists); why says what failed, without secrets.
 * Called with the userdata of cli_source_set_callbacks; the source keeps
 * retrying. `ferry plan` uses it to give up at once; `ferry run` does not
 * set it and waits for the fix. fn NULL: none. */
typedef void (*cli_source_failure_fn)(void *userdata, const char *why);
void cli_source_set_failure_callback(struct cli_source *src, cli_source_failure_fn fn);
/* True once the source's initial load is complete: the first backend sync
 * may happen only then. */
bool cli_source_synced(const struct cli_source *src);
/* The API informers' counters summed (lists, relists after a 410, watches
 * started, events, failures) into *ret, for the metrics. Returns false
 * (and leaves *ret alone) for a directory source. */
struct kube_informer_stats;
bool cli_source_api_stats(const struct cli_source *src, struct kube_informer_stats *ret);
/* Objects rejected so far by a source that loads in the background. */
size_t cli_source_rejected(const struct cli_source *src);
/* Pick the default --source when none was given: "kube" when
 * KUBERNETES_SERVICE_HOST is set or --kubeconfig/--master was given. */
void cli_source_default(struct cli_options *o);
/* An fd that becomes readable when the source has changes, or -1. */
int cli_source_fd(struct cli_source *src);
/* Apply pending changes to the model; *ret_changed tells whether any did.
 * Returns 0 or -errno. */
int cli_source_process(struct cli_source *src, bool *ret_changed);
/* Re-read the whole source (SIGHUP). Returns 0 or -errno. */
int cli_source_reload(struct cli_source *src, size_t *ret_rejected);
/* Close the source. Accepts NULL; returns NULL. */
struct cli_source *cli_source_free(struct cli_source *src);

/* Log every EndpointSlice whose Service is absent; returns how many. */
size_t cli_report_orphan_slices(const struct model *m);

int cli_run(int argc, char **argv);
int cli_plan(int argc, char **argv);
int cli_cleanup(int argc, char **argv);
/* Remove what backend ("all" or a registry name) installed; ferry cleanup
 * and kube-proxy's --cleanup. Returns CLI_EXIT_OK or CLI_EXIT_FAILURE. */
int cli_cleanup_backends(const char *backend);

/* After a usage error (already printed): one line pointing to the
 * command's help on stderr. Returns CLI_EXIT_REJECTED. */
int cli_usage_hint(const char *command);

#endif
