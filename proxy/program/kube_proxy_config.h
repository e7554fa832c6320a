/* kube-proxy's configuration file (--config FILE): a KubeProxyConfiguration
 * of kubeproxy.config.k8s.io/v1alpha1, YAML or JSON, as kube-proxy's Go
 * types (k8s.io/kube-proxy/config/v1alpha1/types.go) define it.
 *
 * The file is read into struct cli_options before the command-line flags,
 * so a flag overrides the file as in kube-proxy. An unknown field, a value
 * of the wrong type or out of range is an error naming the field; a known
 * field ferry does not implement, set to anything but its empty value, is
 * a warning naming it. Settings that are not options of the proxy itself
 * (conntrack sysctls, oom_score_adj) are applied by kube_proxy_host_apply at
 * `ferry run` start. */
#ifndef FERRY_KUBE_PROXY_CONFIG_H
#define FERRY_KUBE_PROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cli_options;
struct backend_ops;

/* conntrack: what kube-proxy sets with sysctls. 0 (or false) leaves the
 * kernel's value, as kube-proxy does for a zero field. The four fields
 * kube-proxy defaults have a flag saying whether the file or a flag gave
 * them (kube_proxy_conntrack_defaults fills the others). */
struct kube_proxy_conntrack {
	uint32_t max_per_core;         /* maxPerCore */
	uint32_t min;                  /* min */
	uint32_t tcp_established_ms;   /* tcpEstablishedTimeout */
	uint32_t tcp_close_wait_ms;    /* tcpCloseWaitTimeout */
	uint32_t udp_ms;               /* udpTimeout */
	uint32_t udp_stream_ms;        /* udpStreamTimeout */
	bool tcp_be_liberal;           /* tcpBeLiberal */
	bool max_per_core_set, min_set, tcp_established_set, tcp_close_wait_set;
	bool defaulted;                /* kube_proxy_conntrack_defaults applied */
};

/* kube-proxy's conntrack defaults (its flags' and its file's alike):
 * maxPerCore 32768, min 131072, tcpEstablishedTimeout 24h,
 * tcpCloseWaitTimeout 1h. */
#define KUBE_PROXY_CT_MAX_PER_CORE 32768u
#define KUBE_PROXY_CT_MIN 131072u
#define KUBE_PROXY_CT_TCP_ESTABLISHED_MS (24u * 3600u * 1000u)
#define KUBE_PROXY_CT_TCP_CLOSE_WAIT_MS (3600u * 1000u)

/* kube-proxy's healthz and metrics ports. */
#define KUBE_PROXY_HEALTHZ_PORT 10256
#define KUBE_PROXY_METRICS_PORT 10249

/* A loaded file: the storage the strings put into struct cli_options point
 * to, and what the loader found. Lives as long as the command. */
struct kube_proxy_config {
	char path[1024];
	/* Set by the caller before parsing: the mode a flag (--proxy-mode,
	 * --backend) chose, which picks the mode section used; "" for none. */
	char mode_override[16];
	char mode[16];            /* mode as written; "" for none */
	const char *section;      /* the section sync periods and masquerading came from */
	char hostname[256];
	char bind_address[64];
	char healthz_bind[80];
	char metrics_bind[80];
	char kubeconfig[1024];
	char interface_prefix[16];
	char bridge_interface[16];
	char scheduler[16];
	int verbosity;            /* logging.verbosity; -1 when unset */
	char error[512];          /* why the file was refused (names the field) */
	char warnings[4096];      /* one line per warning, each naming the field */
	unsigned n_warnings;
};

/* Parse the KubeProxyConfiguration in buf (len bytes, YAML or JSON) and put
 * its settings into o, which holds defaults (or earlier settings) only; cfg
 * receives the strings o then points to, the warnings and, on failure, the
 * error. Nothing is logged. Returns 0, or -EINVAL with cfg->error set
 * (o may then be partly changed). */
int kube_proxy_config_parse(struct kube_proxy_config *cfg, const char *buf, size_t len,
			    struct cli_options *o);

/* Read the file at path and kube_proxy_config_parse it; logs each warning.
 * Returns 0, -EINVAL (cfg->error says why) or -errno when the file cannot
 * be read (also in cfg->error). */
int kube_proxy_config_load(struct kube_proxy_config *cfg, const char *path, struct cli_options *o);

/* ferry stands in for kube-proxy (a --config file, or the API source):
 * give the conntrack fields neither the file nor a flag set kube-proxy's
 * defaults (KUBE_PROXY_CT_*), as kube-proxy's defaulting does for both.
 * A standalone balancer (a manifest directory, no --config) leaves the
 * host's conntrack settings alone. Call after the flags are parsed. */
void kube_proxy_conntrack_defaults(struct cli_options *o);

/* A healthz or metrics address as kube-proxy takes it: "IP:PORT" ("[V6]:PORT")
 * or an IP alone, which gets default_port (kube-proxy's AppendPortIfNeeded);
 * the port must be 1-65535 (kube-proxy's validation refuses 0). Writes
 * "HOST:PORT" to buf (size bytes). Returns 0 or -EINVAL. */
int kube_proxy_bind_normalize(const char *text, uint16_t default_port, char *buf, size_t size);

/* The healthz and metrics addresses when neither the file nor a flag gave
 * them, from bindAddress as kube-proxy's defaulting derives them:
 * "0.0.0.0:10256" and "127.0.0.1:10249" when bindAddress is unset or
 * IPv4, "[::]:10256" and "[::1]:10249" when it is IPv6 (even "::"). Call
 * after the flags are parsed. */
void kube_proxy_bind_defaults(struct cli_options *o);

/* Parse a Go duration ("30s", "1m0s", "1.5s", "250ms", "2h45m", "0") into
 * milliseconds, rounding a positive sub-millisecond rest up. Returns 0,
 * -EINVAL (not a duration or negative) or -ERANGE (over UINT32_MAX ms). */
int kube_proxy_parse_duration_ms(const char *text, uint32_t *ret_ms);

/* net.netfilter.nf_conntrack_max as kube-proxy computes it for ncpu CPUs:
 * max(maxPerCore * ncpu, min), or 0 (leave it) when maxPerCore is 0. */
uint64_t kube_proxy_conntrack_max(const struct kube_proxy_conntrack *c, unsigned ncpu);

/* The CPUs this process may run on (Go's runtime.NumCPU), at least 1. */
unsigned kube_proxy_ncpu(void);

/* Apply o's conntrack settings (sysctls under /proc/sys/net/netfilter;
 * nf_conntrack_max only when it must grow) and oom_score_adj, logging each
 * value set. A setting the kernel refuses is a warning, not a failure, as
 * in a container where /proc/sys is read-only. Returns 0. */
int kube_proxy_host_apply(const struct cli_options *o);

/* Print the effective settings (file, flags and defaults) for the backend
 * ops to out, one "name: value" line each, for `ferry plan --config`. */
void kube_proxy_config_print(const struct cli_options *o, const struct backend_ops *ops, FILE *out);

#endif
