/* --config FILE: kube-proxy's KubeProxyConfiguration into struct
 * cli_options. The field names, nesting and ranges are those of
 * k8s.io/kube-proxy/config/v1alpha1/types.go; durations are Go duration
 * strings (metav1.Duration). Every object is checked against the list of
 * its fields first, so an unknown one is an error however deep. */
#include "kube_proxy_config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "inet.h"
#include "ipvs.h"
#include "log.h"
#include "yaml_json.h"

#define KPC_API_VERSION "kubeproxy.config.k8s.io/v1alpha1"
#define KPC_KIND "KubeProxyConfiguration"

/* One object's fields: the ones ferry reads, and the ones kube-proxy has
 * that ferry does not implement (a warning when set). */
struct kpc_fields {
	const char *const *known;
	const char *const *unimplemented;
};

static int kpc_fail(struct kube_proxy_config *cfg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int kpc_fail(struct kube_proxy_config *cfg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cfg->error, sizeof(cfg->error), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static void kpc_warn(struct kube_proxy_config *cfg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void kpc_warn(struct kube_proxy_config *cfg, const char *fmt, ...)
{
	size_t used = strlen(cfg->warnings);
	va_list ap;

	if (used + 2 >= sizeof(cfg->warnings))
		return;
	va_start(ap, fmt);
	vsnprintf(cfg->warnings + used, sizeof(cfg->warnings) - used - 1, fmt, ap);
	va_end(ap);
	used = strlen(cfg->warnings);
	cfg->warnings[used] = '\n';
	cfg->warnings[used + 1] = '\0';
	cfg->n_warnings++;
}

/* "prefix.key" (or "key" at the top) into buf. */
static const char *kpc_path(char *buf, size_t size, const char *prefix, const char *key)
{
	snprintf(buf, size, "%s%s%s", prefix, *prefix ? "." : "", key);
	return buf;
}

static bool kpc_in(const char *const *list, const char *key)
{
	for (; list && *list; list++)
		if (strcmp(*list, key) == 0)
			return true;
	return false;
}

/* The zero value of a Go field as a config writer leaves it: null, "",
 * false, 0, "0s", and objects or lists of nothing else. */
static bool kpc_empty(const json_t *v)
{
	const char *k;
	json_t *m;
	size_t i;

	if (!v || json_is_null(v) || json_is_false(v))
		return true;
	if (json_is_string(v))
		return !*json_string_value(v) || strcmp(json_string_value(v), "0s") == 0 ||
		       strcmp(json_string_value(v), "0") == 0;
	if (json_is_integer(v))
		return json_integer_value(v) == 0;
	if (json_is_real(v))
		return json_real_value(v) == 0;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, m)
			if (!kpc_empty(m))
				return false;
		return true;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, m)
			if (!kpc_empty(m))
				return false;
		return true;
	}
	return false;
}

/* Check obj's keys against f: unknown is an error, unimplemented and set a
 * warning. obj NULL or null: nothing to check. */
static int kpc_check_fields(struct kube_proxy_config *cfg, const json_t *obj, const char *prefix,
			    const struct kpc_fields *f)
{
	const char *key;
	json_t *v;
	char path[128];

	json_object_foreach((json_t *)obj, key, v) {
		kpc_path(path, sizeof(path), prefix, key);
		if (kpc_in(f->unimplemented, key)) {
			if (!kpc_empty(v))
				kpc_warn(cfg, "%s: not implemented by ferry; ignored", path);
			continue;
		}
		if (!kpc_in(f->known, key))
			return kpc_fail(cfg, "%s: unknown field (not in %s %s)", path, KPC_API_VERSION, KPC_KIND);
	}
	return 0;
}

/* The object under key, NULL when absent or null; an error for another type. */
static int kpc_object(struct kube_proxy_config *cfg, const json_t *obj, const char *prefix, const char *key,
		      json_t **ret)
{
	json_t *v = json_object_get(obj, key);
	char path[128];

	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return kpc_fail(cfg, "%s: must be an object", kpc_path(path, sizeof(path), prefix, key));
	*ret = v;
	return 0;
}

/* A string into dst (size bytes). Returns 1 when set and not empty, 0 when
 * absent, null or "", -EINVAL on another type or when too long. */
static int kpc_string(struct kube_proxy_config *cfg, const json_t *obj, const char *prefix, const char *key,
		      char *dst, size_t size)
{
	json_t *v = json_object_get(obj, key);
	char path[128];

	if (!v || json_is_null(v))
		return 0;
	kpc_path(path, sizeof(path), prefix, key);
	if (!json_is_string(v))
		return kpc_fail(cfg, "%s: must be a string", path);
	if (json_string_length(v) >= size)
		return kpc_fail(cfg, "%s: longer than %zu characters", path, size - 1);
	snprintf(dst, size, "%s", json_string_value(v));
	return *dst ? 1 : 0;
}

/* A boolean. Returns 1 when present (value in *dst), 0 when absent or null. */
static int kpc_bool(struct kube_proxy_config *cfg, const json_t *obj, const char *prefix, const char *key,
		    bool *dst)
{
	json_t *v = json_object_get(obj, key);
	char path[128];

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return kpc_fail(cfg, "%s: must be true or false", kpc_path(path, sizeof(path), prefix, key));
	*dst = json_is_true(v);
	return 1;
}

/* An integer in [min, max]. Returns 1 when present, 0 when absent or null. */
static int kpc_int(struct kube_proxy_config *cfg, const json_t *obj, const char *prefix, const char *key,
		   long long min, long long max, long long *dst)
{
	json_t *v = json_object_get(obj, key);
	char path[128];

	if (!v || json_is_null(v))
		return 0;
	kpc_path(path, sizeof(path), prefix, key);
	if (!json_is_integer(v))
		return kpc_fail(cfg, "%s: must be an integer", path);
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return kpc_fail(cfg, "%s: %lld is out of range [%lld, %lld]", path,
				(long long)json_integer_value(v), min, max);
	*dst = json_integer_value(v);
	return 1;
}

/* A duration string. Returns 1 when present, 0 when absent or null. */
static int kpc_duration(struct kube_proxy_config *cfg, const json_t *obj, const char *prefix, const char *key,
			uint32_t *dst)
{
	json_t *v = json_object_get(obj, key);
	char path[128];
	int r;

	if (!v || json_is_null(v))
		return 0;
	kpc_path(path, sizeof(path), prefix, key);
	if (!json_is_string(v))
		return kpc_fail(cfg, "%s: must be a duration string such as \"30s\" or \"1m0s\"", path);
	r = kube_proxy_parse_duration_ms(json_string_value(v), dst);
	if (r == -ERANGE)
		return kpc_fail(cfg, "%s: '%s' is out of range (at most 49 days)", path, json_string_value(v));
	if (r < 0)
		return kpc_fail(cfg, "%s: '%s' is not a duration (e.g. \"30s\", \"1m0s\", \"250ms\"; not negative)",
				path, json_string_value(v));
	return 1;
}

int kube_proxy_parse_duration_ms(const char *text, uint32_t *ret_ms)
{
	const char *p = text;
	double total_ns = 0;

	if (!text || !*text)
		return -EINVAL;
	if (*p == '+')
		p++;
	else if (*p == '-')
		return -EINVAL;
	if (strcmp(p, "0") == 0) {
		*ret_ms = 0;
		return 0;
	}
	if (!*p)
		return -EINVAL;
	while (*p) {
		static const struct {
			const char *unit;
			double ns;
		} units[] = {
			{ "ns", 1 }, { "us", 1e3 }, { "\xc2\xb5s", 1e3 }, { "\xce\xbcs", 1e3 },
			{ "ms", 1e6 }, { "s", 1e9 }, { "m", 60e9 }, { "h", 3600e9 },
		};
		double v = 0, scale = 1;
		bool digits = false;
		size_t best = 0, best_len = 0;

		while (*p >= '0' && *p <= '9') {
			v = v * 10 + (*p++ - '0');
			digits = true;
		}
		if (*p == '.') {
			p++;
			while (*p >= '0' && *p <= '9') {
				scale /= 10;
				v += (*p++ - '0') * scale;
				digits = true;
			}
		}
		if (!digits)
			return -EINVAL;
		/* The longest unit that matches ("ms" before "m"). */
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t len = strlen(units[i].unit);
			if (strncmp(p, units[i].unit, len) == 0 && len > best_len) {
				best = i;
				best_len = len;
			}
		}
		if (!best_len)
			return -EINVAL;
		total_ns += v * units[best].ns;
		p += best_len;
	}
	if (ceil(total_ns / 1e6) > (double)UINT32_MAX)
		return -ERANGE;
	*ret_ms = (uint32_t)ceil(total_ns / 1e6);
	return 0;
}

static const char *const kpc_top_known[] = {
	"apiVersion", "kind", "clientConnection", "logging", "hostnameOverride", "bindAddress",
	"healthzBindAddress", "metricsBindAddress", "mode", "iptables", "ipvs", "nftables",
	"detectLocalMode", "detectLocal", "clusterCIDR", "nodePortAddresses", "oomScoreAdj",
	"conntrack", NULL,
};
static const char *const kpc_top_unimplemented[] = {
	"featureGates", "bindAddressHardFail", "enableProfiling", "showHiddenMetricsForVersion",
	"winkernel", "configSyncPeriod", "portRange", "windowsRunAsService", NULL,
};
static const char *const kpc_iptables_known[] = { "masqueradeBit", "masqueradeAll", "syncPeriod",
						  "minSyncPeriod", NULL };
static const char *const kpc_iptables_unimplemented[] = { "localhostNodePorts", "snatNodeInternalIP", NULL };
static const char *const kpc_nftables_known[] = { "masqueradeBit", "masqueradeAll", "syncPeriod",
						  "minSyncPeriod", NULL };
static const char *const kpc_ipvs_known[] = { "syncPeriod", "minSyncPeriod", "scheduler", "strictARP",
					      "excludeCIDRs", "tcpTimeout", "tcpFinTimeout", "udpTimeout", NULL };
static const char *const kpc_conntrack_known[] = { "maxPerCore", "min", "tcpEstablishedTimeout",
						   "tcpCloseWaitTimeout", "tcpBeLiberal", "udpTimeout",
						   "udpStreamTimeout", NULL };
static const char *const kpc_detect_known[] = { "bridgeInterface", "interfaceNamePrefix", NULL };
static const char *const kpc_client_known[] = { "kubeconfig", NULL };
static const char *const kpc_client_unimplemented[] = { "acceptContentTypes", "contentType", "qps", "burst",
							 NULL };
static const char *const kpc_logging_known[] = { "verbosity", "format", NULL };
static const char *const kpc_logging_unimplemented[] = { "flushFrequency", "vmodule", "options", NULL };

/* A mode section's masquerading and sync periods (iptables and nftables
 * share the shape; ipvs has only the periods). A zero period is unset:
 * kube-proxy's defaulting turns it into its default as ferry does. */
static int kpc_section(struct kube_proxy_config *cfg, const json_t *top, const char *name, bool use_masq,
		       bool use_sync, struct cli_options *o)
{
	json_t *sec;
	long long bit;
	bool all = false;
	uint32_t ms = 0;
	int r;

	if ((r = kpc_object(cfg, top, "", name, &sec)) < 0 || !sec)
		return r;
	if (strcmp(name, "ipvs") != 0) {
		r = kpc_int(cfg, sec, name, "masqueradeBit", 0, 31, &bit);
		if (r < 0)
			return r;
		if (r > 0 && use_masq)
			o->masquerade_mark = 1u << bit;
		if ((r = kpc_bool(cfg, sec, name, "masqueradeAll", &all)) < 0)
			return r;
		if (use_masq && all)
			o->masquerade_all = true;
	}
	if ((r = kpc_duration(cfg, sec, name, "syncPeriod", &ms)) < 0)
		return r;
	if (use_sync && ms)
		o->sync_period_ms = ms;
	ms = 0;
	if ((r = kpc_duration(cfg, sec, name, "minSyncPeriod", &ms)) < 0)
		return r;
	if (use_sync && ms)
		o->min_sync_period_ms = ms;
	return 0;
}

static int kpc_ipvs(struct kube_proxy_config *cfg, const json_t *top, struct cli_options *o)
{
	json_t *sec, *list, *v;
	uint32_t ms;
	size_t i;
	int r;

	if ((r = kpc_object(cfg, top, "", "ipvs", &sec)) < 0 || !sec)
		return r;
	if ((r = kpc_string(cfg, sec, "ipvs", "scheduler", cfg->scheduler, sizeof(cfg->scheduler))) < 0)
		return r;
	if (r > 0) {
		if (!ipvs_scheduler_known(cfg->scheduler))
			return kpc_fail(cfg, "ipvs.scheduler: unknown IPVS scheduler '%s' (rr, wrr, lc, wlc, lblc, "
					"lblcr, dh, sh, sed, nq, mh, fo, ovf, twos)", cfg->scheduler);
		o->ipvs_scheduler = cfg->scheduler;
	}
	if ((r = kpc_bool(cfg, sec, "ipvs", "strictARP", &o->ipvs_strict_arp)) < 0)
		return r;
	list = json_object_get(sec, "excludeCIDRs");
	if (list && !json_is_null(list)) {
		size_t max = sizeof(o->ipvs_exclude_cidrs) / sizeof(o->ipvs_exclude_cidrs[0]);

		if (!json_is_array(list))
			return kpc_fail(cfg, "ipvs.excludeCIDRs: must be a list of CIDRs");
		if (json_array_size(list) > max)
			return kpc_fail(cfg, "ipvs.excludeCIDRs: more than %zu CIDRs", max);
		o->n_ipvs_exclude_cidrs = 0;
		json_array_foreach(list, i, v) {
			if (!json_is_string(v) ||
			    inet_prefix_parse(json_string_value(v), &o->ipvs_exclude_cidrs[o->n_ipvs_exclude_cidrs]) < 0)
				return kpc_fail(cfg, "ipvs.excludeCIDRs[%zu]: not a CIDR", i);
			o->n_ipvs_exclude_cidrs++;
		}
	}
	/* IPVS's own timeouts (seconds); 0 or absent leaves the kernel's. */
	static const char *const timeouts[] = { "tcpTimeout", "tcpFinTimeout", "udpTimeout" };
	uint32_t *dst[] = { &o->ipvs_tcp_timeout_ms, &o->ipvs_tcp_fin_timeout_ms, &o->ipvs_udp_timeout_ms };
	for (i = 0; i < 3; i++) {
		ms = 0;
		if ((r = kpc_duration(cfg, sec, "ipvs", timeouts[i], &ms)) < 0)
			return r;
		if (r > 0)
			*dst[i] = ms;
	}
	return 0;
}

static int kpc_conntrack(struct kube_proxy_config *cfg, const json_t *top, struct cli_options *o)
{
	static const struct kpc_fields f = { kpc_conntrack_known, NULL };
	json_t *sec;
	long long v;
	int r;

	if ((r = kpc_object(cfg, top, "", "conntrack", &sec)) < 0 || !sec)
		return r;
	if ((r = kpc_check_fields(cfg, sec, "conntrack", &f)) < 0)
		return r;
	if ((r = kpc_int(cfg, sec, "conntrack", "maxPerCore", 0, INT32_MAX, &v)) < 0)
		return r;
	if (r) {
		o->conntrack.max_per_core = (uint32_t)v;
		o->conntrack.max_per_core_set = true;
	}
	if ((r = kpc_int(cfg, sec, "conntrack", "min", 0, INT32_MAX, &v)) < 0)
		return r;
	if (r) {
		o->conntrack.min = (uint32_t)v;
		o->conntrack.min_set = true;
	}
	/* A field written, even as 0s, is set: kube-proxy defaults only
	 * absent (nil) ones, and leaves the kernel's value for 0. */
	if ((r = kpc_duration(cfg, sec, "conntrack", "tcpEstablishedTimeout", &o->conntrack.tcp_established_ms)) < 0)
		return r;
	o->conntrack.tcp_established_set |= r > 0;
	if ((r = kpc_duration(cfg, sec, "conntrack", "tcpCloseWaitTimeout", &o->conntrack.tcp_close_wait_ms)) < 0)
		return r;
	o->conntrack.tcp_close_wait_set |= r > 0;
	if (kpc_duration(cfg, sec, "conntrack", "udpTimeout", &o->conntrack.udp_ms) < 0 ||
	    kpc_duration(cfg, sec, "conntrack", "udpStreamTimeout", &o->conntrack.udp_stream_ms) < 0 ||
	    kpc_bool(cfg, sec, "conntrack", "tcpBeLiberal", &o->conntrack.tcp_be_liberal) < 0)
		return -EINVAL;
	return 0;
}

int kube_proxy_bind_normalize(const char *text, uint16_t default_port, char *buf, size_t size)
{
	char a_text[INET_ADDR_STRLEN];
	struct inet_addr a;
	uint16_t port = default_port;
	int n;

	if (!text || !*text)
		return -EINVAL;
	if (inet_addr_parse(text, &a) < 0 && (inet_endpoint_parse(text, &a, &port) < 0 || port == 0))
		return -EINVAL;
	inet_addr_format(&a, a_text);
	n = snprintf(buf, size, a.family == AF_INET6 ? "[%s]:%u" : "%s:%u", a_text, port);
	return n < 0 || (size_t)n >= size ? -EINVAL : 0;
}

void kube_proxy_bind_defaults(struct cli_options *o)
{
	struct inet_addr a;
	bool v6 = o->bind_address && inet_addr_parse(o->bind_address, &a) == 0 && a.family == AF_INET6;

	if (!o->healthz_bind)
		o->healthz_bind = v6 ? "[::]:10256" : "0.0.0.0:10256";
	if (!o->metrics_bind)
		o->metrics_bind = v6 ? "[::1]:10249" : "127.0.0.1:10249";
}

void kube_proxy_conntrack_defaults(struct cli_options *o)
{
	struct kube_proxy_conntrack *c = &o->conntrack;

	if (!o->config && !(o->source && strcmp(o->source, "kube") == 0))
		return;
	if (!c->max_per_core_set)
		c->max_per_core = KUBE_PROXY_CT_MAX_PER_CORE;
	if (!c->min_set)
		c->min = KUBE_PROXY_CT_MIN;
	if (!c->tcp_established_set)
		c->tcp_established_ms = KUBE_PROXY_CT_TCP_ESTABLISHED_MS;
	if (!c->tcp_close_wait_set)
		c->tcp_close_wait_ms = KUBE_PROXY_CT_TCP_CLOSE_WAIT_MS;
	c->defaulted = true;
}

/* healthzBindAddress and metricsBindAddress: "IP:PORT", or an IP that
 * gets kube-proxy's port. "" is unset (kube-proxy's default), as in
 * kube-proxy's file. */
static int kpc_bind(struct kube_proxy_config *cfg, const json_t *top, const char *key, char *dst, size_t size,
		    uint16_t default_port, const char **ret)
{
	char text[80];
	int r = kpc_string(cfg, top, "", key, text, sizeof(text));

	if (r <= 0)
		return r;
	if (kube_proxy_bind_normalize(text, default_port, dst, size) < 0)
		return kpc_fail(cfg, "%s: '%s' is not IP:PORT with a port 1-65535, or an IP (e.g. 0.0.0.0:%u, "
				"[::]:%u, 0.0.0.0)", key, text, default_port, default_port);
	*ret = dst;
	return 0;
}

/* The mode: which backend, and which section holds its sync periods and
 * masquerading (kube-proxy's ipvs mode takes masquerading from iptables). */
static int kpc_mode(struct kube_proxy_config *cfg, const json_t *top, struct cli_options *o)
{
	int r = kpc_string(cfg, top, "", "mode", cfg->mode, sizeof(cfg->mode));

	if (r < 0)
		return r;
	if (strcmp(cfg->mode, "iptables") == 0)
		return kpc_fail(cfg, "mode: iptables is not supported by ferry; use mode: nftables (kube-proxy's "
				"successor to iptables mode; move the iptables section's settings to the "
				"nftables section) or mode: ipvs");
	if (strcmp(cfg->mode, "nftables") == 0 || strcmp(cfg->mode, "ipvs") == 0 ||
	    strcmp(cfg->mode, "userspace") == 0) {
		o->backend = cfg->mode;
	} else if (*cfg->mode) {
		return kpc_fail(cfg, "mode: '%s' is not a mode of ferry (nftables, ipvs, userspace)", cfg->mode);
	}
	/* The section of the mode in force: a flag's mode wins over the file's,
	 * as every flag does. No mode: kube-proxy's default is iptables, so a
	 * file without one was written for the iptables section; ferry picks
	 * its backend itself. */
	const char *mode = *cfg->mode_override ? cfg->mode_override : cfg->mode;
	if (strcmp(mode, "nftables") == 0)
		cfg->section = "nftables";
	else if (strcmp(mode, "ipvs") == 0)
		cfg->section = "ipvs";
	else
		cfg->section = "iptables";
	return 0;
}

static int kpc_nodeports(struct kube_proxy_config *cfg, const json_t *top, struct cli_options *o)
{
	json_t *list = json_object_get(top, "nodePortAddresses"), *v;
	size_t i, max = sizeof(o->nodeport_prefixes) / sizeof(o->nodeport_prefixes[0]);

	if (!list || json_is_null(list))
		return 0;
	if (!json_is_array(list))
		return kpc_fail(cfg, "nodePortAddresses: must be a list of CIDRs and primary, localhost, all");
	if (!json_array_size(list))
		return 0;
	o->nodeport_set = true;
	o->n_nodeport_prefixes = 0;
	o->nodeport_primary = o->nodeport_localhost = o->nodeport_all = false;
	json_array_foreach(list, i, v) {
		const char *s = json_is_string(v) ? json_string_value(v) : NULL;

		if (!s)
			return kpc_fail(cfg, "nodePortAddresses[%zu]: must be a string", i);
		if (strcmp(s, "primary") == 0)
			o->nodeport_primary = true;
		else if (strcmp(s, "localhost") == 0)
			o->nodeport_localhost = true;
		else if (strcmp(s, "all") == 0)
			o->nodeport_all = true;
		else if (o->n_nodeport_prefixes == max ||
			 inet_prefix_parse(s, &o->nodeport_prefixes[o->n_nodeport_prefixes++]) < 0)
			return kpc_fail(cfg, "nodePortAddresses[%zu]: '%s' is neither a CIDR nor primary, localhost "
					"or all (or there are more than %zu)", i, s, max);
	}
	return 0;
}

static int kpc_cluster_cidr(struct kube_proxy_config *cfg, const json_t *top, struct cli_options *o)
{
	char text[512], *save = NULL;
	size_t max = sizeof(o->cluster_cidrs) / sizeof(o->cluster_cidrs[0]);
	int r = kpc_string(cfg, top, "", "clusterCIDR", text, sizeof(text));

	if (r <= 0)
		return r;
	o->n_cluster_cidrs = 0;
	for (char *tok = strtok_r(text, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (o->n_cluster_cidrs == max || inet_prefix_parse(tok, &o->cluster_cidrs[o->n_cluster_cidrs]) < 0)
			return kpc_fail(cfg, "clusterCIDR: '%s' is not a CIDR (or there are more than %zu)", tok, max);
		o->n_cluster_cidrs++;
	}
	return 0;
}

static int kpc_ifname(struct kube_proxy_config *cfg, const char *path, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= ' ' || c >= 0x7f || strchr("/:\"\\*", c))
			return kpc_fail(cfg, "%s: '%s' is not an interface name", path, name);
	}
	return 0;
}

static int kpc_detect_local(struct kube_proxy_config *cfg, const json_t *top, struct cli_options *o)
{
	static const struct kpc_fields f = { kpc_detect_known, NULL };
	char mode[32] = "";
	json_t *sec;
	int r;

	if ((r = kpc_string(cfg, top, "", "detectLocalMode", mode, sizeof(mode))) < 0)
		return r;
	if (!*mode || strcmp(mode, "ClusterCIDR") == 0)
		o->detect_local_mode = LOCAL_DETECT_CLUSTER_CIDR;
	else if (strcmp(mode, "InterfaceNamePrefix") == 0)
		o->detect_local_mode = LOCAL_DETECT_INTERFACE_NAME_PREFIX;
	else if (strcmp(mode, "BridgeInterface") == 0)
		o->detect_local_mode = LOCAL_DETECT_BRIDGE_INTERFACE;
	else if (strcmp(mode, "NodeCIDR") == 0)
		return kpc_fail(cfg, "detectLocalMode: NodeCIDR is not supported by ferry; use ClusterCIDR with "
				"clusterCIDR set to this node's pod CIDR, InterfaceNamePrefix or BridgeInterface");
	else
		return kpc_fail(cfg, "detectLocalMode: must be ClusterCIDR, InterfaceNamePrefix or BridgeInterface, "
				"not '%s'", mode);
	if ((r = kpc_object(cfg, top, "", "detectLocal", &sec)) < 0 || !sec)
		return r;
	if ((r = kpc_check_fields(cfg, sec, "detectLocal", &f)) < 0)
		return r;
	r = kpc_string(cfg, sec, "detectLocal", "interfaceNamePrefix", cfg->interface_prefix,
		       sizeof(cfg->interface_prefix));
	if (r < 0 || (r > 0 && kpc_ifname(cfg, "detectLocal.interfaceNamePrefix", cfg->interface_prefix) < 0))
		return -EINVAL;
	/* Only the one the mode uses: kubeadm-style files often carry both. */
	if (r > 0 && o->detect_local_mode == LOCAL_DETECT_INTERFACE_NAME_PREFIX)
		o->pod_interface_name_prefix = cfg->interface_prefix;
	r = kpc_string(cfg, sec, "detectLocal", "bridgeInterface", cfg->bridge_interface,
		       sizeof(cfg->bridge_interface));
	if (r < 0 || (r > 0 && kpc_ifname(cfg, "detectLocal.bridgeInterface", cfg->bridge_interface) < 0))
		return -EINVAL;
	if (r > 0 && o->detect_local_mode == LOCAL_DETECT_BRIDGE_INTERFACE)
		o->pod_bridge_interface = cfg->bridge_interface;
	return 0;
}

static int kpc_small_sections(struct kube_proxy_config *cfg, const json_t *top, struct cli_options *o)
{
	static const struct kpc_fields client = { kpc_client_known, kpc_client_unimplemented };
	static const struct kpc_fields logging = { kpc_logging_known, kpc_logging_unimplemented };
	char format[16] = "";
	json_t *sec;
	long long v;
	int r;

	if ((r = kpc_object(cfg, top, "", "clientConnection", &sec)) < 0)
		return r;
	if (sec) {
		if ((r = kpc_check_fields(cfg, sec, "clientConnection", &client)) < 0)
			return r;
		r = kpc_string(cfg, sec, "clientConnection", "kubeconfig", cfg->kubeconfig, sizeof(cfg->kubeconfig));
		if (r < 0)
			return r;
		if (r > 0)
			o->kubeconfig = cfg->kubeconfig;
	}
	if ((r = kpc_object(cfg, top, "", "logging", &sec)) < 0)
		return r;
	if (sec) {
		if ((r = kpc_check_fields(cfg, sec, "logging", &logging)) < 0)
			return r;
		if ((r = kpc_int(cfg, sec, "logging", "verbosity", 0, INT32_MAX, &v)) < 0)
			return r;
		if (r > 0)
			cfg->verbosity = (int)v;
		if ((r = kpc_string(cfg, sec, "logging", "format", format, sizeof(format))) < 0)
			return r;
		if (r > 0 && strcmp(format, "text") != 0)
			kpc_warn(cfg, "logging.format: '%s' is not implemented by ferry (it logs text); ignored",
				 format);
	}
	return 0;
}

static int kpc_top(struct kube_proxy_config *cfg, const json_t *top, struct cli_options *o)
{
	static const struct kpc_fields fields = { kpc_top_known, kpc_top_unimplemented };
	static const struct kpc_fields ipt = { kpc_iptables_known, kpc_iptables_unimplemented };
	static const struct kpc_fields nft = { kpc_nftables_known, NULL };
	static const struct kpc_fields ipvs = { kpc_ipvs_known, NULL };
	const struct {
		const char *name;
		const struct kpc_fields *f;
	} sections[] = { { "iptables", &ipt }, { "nftables", &nft }, { "ipvs", &ipvs } };
	char api[64] = "", kind[64] = "";
	long long oom;
	int r;

	if (!json_is_object(top))
		return kpc_fail(cfg, "the file is not a %s object", KPC_KIND);
	if (kpc_string(cfg, top, "", "apiVersion", api, sizeof(api)) < 0 ||
	    kpc_string(cfg, top, "", "kind", kind, sizeof(kind)) < 0)
		return -EINVAL;
	if (strcmp(kind, KPC_KIND) != 0)
		return kpc_fail(cfg, "kind: must be %s, not '%s'", KPC_KIND, kind);
	if (strcmp(api, KPC_API_VERSION) != 0)
		return kpc_fail(cfg, "apiVersion: must be %s, not '%s'", KPC_API_VERSION, api);
	if ((r = kpc_check_fields(cfg, top, "", &fields)) < 0)
		return r;
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		json_t *sec;
		if ((r = kpc_object(cfg, top, "", sections[i].name, &sec)) < 0)
			return r;
		if (sec && (r = kpc_check_fields(cfg, sec, sections[i].name, sections[i].f)) < 0)
			return r;
	}
	if ((r = kpc_mode(cfg, top, o)) < 0)
		return r;
	/* Every section is checked; only the mode's is used. */
	bool ipvs_mode = strcmp(cfg->section, "ipvs") == 0;
	if (kpc_section(cfg, top, "iptables", strcmp(cfg->section, "iptables") == 0 || ipvs_mode,
			strcmp(cfg->section, "iptables") == 0, o) < 0 ||
	    kpc_section(cfg, top, "nftables", strcmp(cfg->section, "nftables") == 0,
			strcmp(cfg->section, "nftables") == 0, o) < 0 ||
	    kpc_section(cfg, top, "ipvs", false, ipvs_mode, o) < 0 || kpc_ipvs(cfg, top, o) < 0)
		return -EINVAL;
	if ((r = kpc_string(cfg, top, "", "hostnameOverride", cfg->hostname, sizeof(cfg->hostname))) < 0)
		return r;
	if (r > 0)
		o->hostname = cfg->hostname;
	if ((r = kpc_string(cfg, top, "", "bindAddress", cfg->bind_address, sizeof(cfg->bind_address))) < 0)
		return r;
	if (r > 0) {
		struct inet_addr a;
		if (inet_addr_parse(cfg->bind_address, &a) < 0)
			return kpc_fail(cfg, "bindAddress: '%s' is not an IP address", cfg->bind_address);
		o->bind_address = cfg->bind_address; /* a specific one is the node's address (planner) */
	}
	if (kpc_bind(cfg, top, "healthzBindAddress", cfg->healthz_bind, sizeof(cfg->healthz_bind),
		     KUBE_PROXY_HEALTHZ_PORT, &o->healthz_bind) < 0 ||
	    kpc_bind(cfg, top, "metricsBindAddress", cfg->metrics_bind, sizeof(cfg->metrics_bind),
		     KUBE_PROXY_METRICS_PORT, &o->metrics_bind) < 0)
		return -EINVAL;
	if (kpc_cluster_cidr(cfg, top, o) < 0 || kpc_nodeports(cfg, top, o) < 0 ||
	    kpc_detect_local(cfg, top, o) < 0 || kpc_conntrack(cfg, top, o) < 0 ||
	    kpc_small_sections(cfg, top, o) < 0)
		return -EINVAL;
	if ((r = kpc_int(cfg, top, "", "oomScoreAdj", -1000, 1000, &oom)) < 0)
		return r;
	if (r > 0) {
		o->oom_score_adj = (int)oom;
		o->oom_score_adj_set = true;
	}
	return 0;
}

int kube_proxy_config_parse(struct kube_proxy_config *cfg, const char *buf, size_t len,
			    struct cli_options *o)
{
	struct yaml_json_doc *docs = NULL;
	struct yaml_json_error err = { 0 };
	size_t n = 0, i = 0;
	int r;

	cfg->error[0] = cfg->warnings[0] = '\0';
	cfg->n_warnings = 0;
	cfg->verbosity = -1;
	cfg->section = "iptables";
	while (i < len && strchr(" \t\r\n", buf[i]))
		i++;
	if (i < len && buf[i] == '{')
		r = yaml_json_parse_json(buf, len, NULL, &docs, &n, &err);
	else
		r = yaml_json_parse(buf, len, NULL, &docs, &n, &err);
	if (r < 0) {
		if (err.line)
			return kpc_fail(cfg, "line %u: %s", err.line, err.message);
		return kpc_fail(cfg, "%s", err.message[0] ? err.message : strerror(-r));
	}
	if (n != 1) {
		yaml_json_docs_free(docs, n);
		return kpc_fail(cfg, "holds %zu documents; one %s is expected", n, KPC_KIND);
	}
	r = kpc_top(cfg, docs[0].root, o);
	yaml_json_docs_free(docs, n);
	if (r == 0)
		o->config = cfg;
	return r;
}

int kube_proxy_config_load(struct kube_proxy_config *cfg, const char *path, struct cli_options *o)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, r = 0;

	snprintf(cfg->path, sizeof(cfg->path), "%s", path);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1) {
		r = -errno;
		snprintf(cfg->error, sizeof(cfg->error), "cannot open: %s", strerror(-r));
		return r;
	}
	for (;;) {
		if (len == cap) {
			char *nbuf;
			if (cap >= (1u << 20)) {
				r = -EFBIG;
				snprintf(cfg->error, sizeof(cfg->error), "larger than 1 MiB");
				break;
			}
			cap = cap ? cap * 2 : 8192;
			nbuf = realloc(buf, cap);
			if (!nbuf) {
				r = -ENOMEM;
				snprintf(cfg->error, sizeof(cfg->error), "out of memory");
				break;
			}
			buf = nbuf;
		}
		ssize_t got = read(fd, buf + len, cap - len);
		if (got == -1) {
			r = -errno;
			snprintf(cfg->error, sizeof(cfg->error), "cannot read: %s", strerror(-r));
			break;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	if (r == 0) {
		r = kube_proxy_config_parse(cfg, buf, len, o);
		/* Each warning names its field; one log line each. */
		for (char *line = cfg->warnings, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
			*nl = '\0';
			log_warn("--config %s: %s", path, line);
			*nl = '\n';
		}
	}
	free(buf);
	return r;
}

uint64_t kube_proxy_conntrack_max(const struct kube_proxy_conntrack *c, unsigned ncpu)
{
	uint64_t scaled;

	if (!c->max_per_core)
		return 0;
	scaled = (uint64_t)c->max_per_core * ncpu;
	return scaled > c->min ? scaled : c->min;
}

unsigned kube_proxy_ncpu(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	return 1;
}

/* Write value (decimal) to the file at path; returns 0 or -errno. */
static int kpc_sysctl_write(const char *path, long long value)
{
	char text[32];
	int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;
	int len = snprintf(text, sizeof(text), "%lld\n", value);

	if (fd == -1)
		return -errno;
	if (write(fd, text, (size_t)len) != len)
		r = len < 0 ? -EIO : -errno;
	close(fd);
	return r;
}

static int kpc_sysctl_read(const char *path, uint64_t *ret)
{
	char text[32] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t got;

	if (fd == -1)
		return -errno;
	got = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (got <= 0)
		return -EIO;
	*ret = strtoull(text, NULL, 10);
	return 0;
}

#define KPC_NF "/proc/sys/net/netfilter/"
#define KPC_HASHSIZE "/sys/module/nf_conntrack/parameters/hashsize"

static void kpc_set(const char *name, uint64_t value, const char *field)
{
	int r = kpc_sysctl_write(name, (long long)value);

	if (r < 0)
		log_warn("conntrack.%s: cannot set %s to %llu: %s%s", field, name, (unsigned long long)value,
			 strerror(-r), r == -ENOENT ? " (is nf_conntrack loaded?)" : "");
	else
		log_info("conntrack.%s: set %s to %llu", field, name, (unsigned long long)value);
}

int kube_proxy_host_apply(const struct cli_options *o)
{
	const struct kube_proxy_conntrack *c = &o->conntrack;
	uint64_t want = kube_proxy_conntrack_max(c, kube_proxy_ncpu()), have = 0;

	if (want) {
		/* nf_conntrack_max is global: only ever raised, as kube-proxy
		 * leaves a larger limit alone. */
		if (kpc_sysctl_read(KPC_NF "nf_conntrack_max", &have) == 0 && have >= want)
			log_info("conntrack.maxPerCore: nf_conntrack_max is %llu, at least the %llu asked for; unchanged",
				 (unsigned long long)have, (unsigned long long)want);
		else
			kpc_set(KPC_NF "nf_conntrack_max", want, "maxPerCore");
		/* kube-proxy keeps the hash table at least a quarter of the
		 * limit (four entries a bucket), raising it likewise. */
		if (kpc_sysctl_read(KPC_HASHSIZE, &have) == 0 && have < want / 4)
			kpc_set(KPC_HASHSIZE, want / 4, "maxPerCore");
	}
	if (c->tcp_established_ms)
		kpc_set(KPC_NF "nf_conntrack_tcp_timeout_established", c->tcp_established_ms / 1000,
			"tcpEstablishedTimeout");
	if (c->tcp_close_wait_ms)
		kpc_set(KPC_NF "nf_conntrack_tcp_timeout_close_wait", c->tcp_close_wait_ms / 1000,
			"tcpCloseWaitTimeout");
	if (c->tcp_be_liberal)
		kpc_set(KPC_NF "nf_conntrack_tcp_be_liberal", 1, "tcpBeLiberal");
	if (c->udp_ms)
		kpc_set(KPC_NF "nf_conntrack_udp_timeout", c->udp_ms / 1000, "udpTimeout");
	if (c->udp_stream_ms)
		kpc_set(KPC_NF "nf_conntrack_udp_timeout_stream", c->udp_stream_ms / 1000, "udpStreamTimeout");
	if (o->oom_score_adj_set) {
		int r = kpc_sysctl_write("/proc/self/oom_score_adj", o->oom_score_adj);

		if (r < 0)
			log_warn("oomScoreAdj: cannot set oom_score_adj to %d: %s", o->oom_score_adj, strerror(-r));
		else
			log_info("oomScoreAdj: oom_score_adj set to %d", o->oom_score_adj);
	}
	return 0;
}

/* A duration as "30s" or "250ms". */
static const char *kpc_ms(uint32_t ms, char *buf, size_t size)
{
	if (ms && ms % 1000 == 0)
		snprintf(buf, size, "%us", ms / 1000);
	else
		snprintf(buf, size, "%ums", ms);
	return buf;
}

void kube_proxy_config_print(const struct cli_options *o, const struct backend_ops *ops, FILE *out)
{
	static const char *const local_modes[] = {
		[LOCAL_DETECT_CLUSTER_CIDR] = "ClusterCIDR",
		[LOCAL_DETECT_INTERFACE_NAME_PREFIX] = "InterfaceNamePrefix",
		[LOCAL_DETECT_BRIDGE_INTERFACE] = "BridgeInterface",
	};
	const struct kube_proxy_config *cfg = o->config;
	const struct kube_proxy_conntrack *c = &o->conntrack;
	char buf[INET_ADDR_STRLEN + 8], d[32];
	unsigned ncpu = kube_proxy_ncpu();
	uint64_t max = kube_proxy_conntrack_max(c, ncpu);

	fprintf(out, "# effective settings (--config file, then flags, then defaults)\n");
	fprintf(out, "config: %s\n", cfg ? cfg->path : "(none)");
	fprintf(out, "mode: %s (backend %s)\n", cfg && *cfg->mode ? cfg->mode : "(none)", ops ? ops->name : o->backend);
	if (cfg)
		fprintf(out, "mode section used: %s\n", cfg->section);
	fprintf(out, "source: %s\n", o->source ? o->source : "(none)");
	fprintf(out, "clientConnection.kubeconfig: %s\n", o->kubeconfig ? o->kubeconfig : "(none)");
	fprintf(out, "hostnameOverride: %s\n", o->hostname ? o->hostname : "(none)");
	fprintf(out, "clusterCIDR:");
	for (size_t i = 0; i < o->n_cluster_cidrs; i++)
		fprintf(out, "%s%s/%u", i ? "," : " ", inet_addr_format(&o->cluster_cidrs[i].addr, buf),
			o->cluster_cidrs[i].len);
	fprintf(out, "%s\n", o->n_cluster_cidrs ? "" : " (none)");
	fprintf(out, "nodePortAddresses:");
	if (!o->nodeport_set) {
		fprintf(out, " %s (the backend's default)\n", ops && ops->nodeport_default_primary ? "primary" : "all");
	} else {
		const char *sep = " ";
		if (o->nodeport_primary) { fprintf(out, "%sprimary", sep); sep = ","; }
		if (o->nodeport_localhost) { fprintf(out, "%slocalhost", sep); sep = ","; }
		if (o->nodeport_all) { fprintf(out, "%sall", sep); sep = ","; }
		for (size_t i = 0; i < o->n_nodeport_prefixes; i++, sep = ",")
			fprintf(out, "%s%s/%u", sep, inet_addr_format(&o->nodeport_prefixes[i].addr, buf),
				o->nodeport_prefixes[i].len);
		fprintf(out, "\n");
	}
	fprintf(out, "detectLocalMode: %s\n", local_modes[o->detect_local_mode]);
	if (o->pod_interface_name_prefix)
		fprintf(out, "detectLocal.interfaceNamePrefix: %s\n", o->pod_interface_name_prefix);
	if (o->pod_bridge_interface)
		fprintf(out, "detectLocal.bridgeInterface: %s\n", o->pod_bridge_interface);
	fprintf(out, "masqueradeAll: %s\n", o->masquerade_all ? "true" : "false");
	if (o->masquerade_mark)
		fprintf(out, "masqueradeBit: %d\n", __builtin_ctz(o->masquerade_mark));
	else
		fprintf(out, "masqueradeBit: 14 (default)\n");
	fprintf(out, "syncPeriod: %s\n", kpc_ms(o->sync_period_ms, d, sizeof(d)));
	fprintf(out, "minSyncPeriod: %s\n", kpc_ms(o->min_sync_period_ms, d, sizeof(d)));
	fprintf(out, "ipvs.scheduler: %s\n", o->ipvs_scheduler ? o->ipvs_scheduler : "rr (default)");
	fprintf(out, "ipvs.strictARP: %s\n", o->ipvs_strict_arp ? "true" : "false");
	fprintf(out, "ipvs.excludeCIDRs:");
	for (size_t i = 0; i < o->n_ipvs_exclude_cidrs; i++)
		fprintf(out, "%s%s/%u", i ? "," : " ", inet_addr_format(&o->ipvs_exclude_cidrs[i].addr, buf),
			o->ipvs_exclude_cidrs[i].len);
	fprintf(out, "%s\n", o->n_ipvs_exclude_cidrs ? "" : " (none)");
	fprintf(out, "ipvs.tcpTimeout: %s\n", o->ipvs_tcp_timeout_ms ? kpc_ms(o->ipvs_tcp_timeout_ms, d, sizeof(d)) : "unchanged");
	fprintf(out, "ipvs.tcpFinTimeout: %s\n",
		o->ipvs_tcp_fin_timeout_ms ? kpc_ms(o->ipvs_tcp_fin_timeout_ms, d, sizeof(d)) : "unchanged");
	fprintf(out, "ipvs.udpTimeout: %s\n", o->ipvs_udp_timeout_ms ? kpc_ms(o->ipvs_udp_timeout_ms, d, sizeof(d)) : "unchanged");
	fprintf(out, "healthzBindAddress: %s\n", !o->healthz_bind ? "(not set)" : *o->healthz_bind ? o->healthz_bind : "(off)");
	fprintf(out, "metricsBindAddress: %s\n", !o->metrics_bind ? "(not set)" : *o->metrics_bind ? o->metrics_bind : "(off)");
	if (o->bind_address)
		fprintf(out, "bindAddress: %s\n", o->bind_address);
	if (max)
		fprintf(out, "conntrack.max: %llu (max(maxPerCore %u x %u CPUs, min %u); set only if larger)\n",
			(unsigned long long)max, c->max_per_core, ncpu, c->min);
	else
		fprintf(out, "conntrack.max: unchanged\n");
	fprintf(out, "conntrack.tcpEstablishedTimeout: %s\n",
		c->tcp_established_ms ? kpc_ms(c->tcp_established_ms, d, sizeof(d)) : "unchanged");
	fprintf(out, "conntrack.tcpCloseWaitTimeout: %s\n",
		c->tcp_close_wait_ms ? kpc_ms(c->tcp_close_wait_ms, d, sizeof(d)) : "unchanged");
	fprintf(out, "conntrack.udpTimeout: %s\n", c->udp_ms ? kpc_ms(c->udp_ms, d, sizeof(d)) : "unchanged");
	fprintf(out, "conntrack.udpStreamTimeout: %s\n",
		c->udp_stream_ms ? kpc_ms(c->udp_stream_ms, d, sizeof(d)) : "unchanged");
	fprintf(out, "conntrack.tcpBeLiberal: %s\n", c->tcp_be_liberal ? "true" : "unchanged");
	if (c->defaulted)
		fprintf(out, "conntrack defaults: kube-proxy's for the fields not given (maxPerCore %u, min %u, "
			"tcpEstablishedTimeout 24h, tcpCloseWaitTimeout 1h)\n", KUBE_PROXY_CT_MAX_PER_CORE,
			KUBE_PROXY_CT_MIN);
	else
		fprintf(out, "conntrack defaults: none (standalone: the host's conntrack settings are left alone)\n");
	if (o->oom_score_adj_set)
		fprintf(out, "oomScoreAdj: %d\n", o->oom_score_adj);
	else
		fprintf(out, "oomScoreAdj: unchanged\n");
	if (cfg && cfg->verbosity >= 0)
		fprintf(out, "logging.verbosity: %d (%s)\n", cfg->verbosity, cfg->verbosity >= 4 ? "debug" : "info");
	if (cfg && cfg->n_warnings)
		fprintf(out, "warnings: %u (on stderr)\n", cfg->n_warnings);
	fprintf(out, "\n");
}
